"""Which Questionnaire the fill page renders: the EHR's copy with the same url and version, else
the packaged one; a server that ignores the search's filter is not paged through to the end."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from attach_fhir.instruments import library
from attach_fhir.io.fhir_client import FhirClient
from smart_app.forms.questionnaire_source import MAX_CANDIDATES, resolve

BASE = "http://ehr.test/fhir"


@dataclasses.dataclass
class Plan:
    can_read_questionnaires: bool = True


class Launch:
    """What ``resolve`` uses of a launch: its FHIR client."""

    def __init__(self, client: FhirClient) -> None:
        self.client = client

    def fhir(self) -> FhirClient:
        return self.client


def test_a_server_that_ignores_the_filter_is_not_paged_through() -> None:
    """Every page holds five other Questionnaires and a next link, without end (a fault no real
    server in the test set produces on demand, hence the mock transport)."""
    ecr_r = next(i for i in library().instruments() if i.id == "ecr-r")
    pages: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        pages.append(str(request.url))
        n = len(pages)
        entries = [
            {"resource": {"resourceType": "Questionnaire", "url": f"urn:other:{n}:{k}"}}
            for k in range(5)
        ]
        link = [{"relation": "next", "url": f"{BASE}/Questionnaire?page={n + 1}"}]
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries, "link": link}
        return httpx.Response(200, json=bundle)

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        launch: Any = Launch(FhirClient(BASE, http))
        resolved = resolve(launch, Plan(), None, ecr_r)  # type: ignore[arg-type]
    assert resolved.source == "packaged"
    assert len(pages) == MAX_CANDIDATES // 5  # 20 candidates looked at: four pages of five
