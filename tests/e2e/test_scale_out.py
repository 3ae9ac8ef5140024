"""Two app instances on one PostgreSQL database behind a round-robin proxy: a launch begun on
one instance is finished on the other, and the pages after it work on either (tokens, launch
state, the CSRF secret and the session all come from the shared store)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ehr_sandbox.runner import Sandbox
from smart_app.records import delivery
from smart_app.web.token_keys import new_key
from tests.fixtures.postgres import fresh_schema
from tests.fixtures.round_robin import RoundRobinProxy
from tests.fixtures.seed import seeded_patient
from tests.fixtures.smart_app_server import (
    AppServer,
    Browser,
    app_registration,
    ehr_launch_url,
    start_app,
)

pytestmark = pytest.mark.e2e

PATIENT = "sandbox-adult-29"


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no {name} field"
    return match.group(1)


@pytest.fixture
def proxy() -> Iterator[RoundRobinProxy]:
    made = RoundRobinProxy()
    yield made
    made.stop()


def test_a_launch_begun_on_one_instance_finishes_on_the_other(
    launch_sandbox: Sandbox, tmp_path: Path, proxy: RoundRobinProxy
) -> None:
    assert launch_sandbox.urls is not None
    reg, client = app_registration("symmetric", launch_sandbox.urls.fhir_base, tmp_path, "e2e-ha")
    key = new_key()  # every instance seals and opens the store's records with the same keys
    instances: list[AppServer] = []
    with fresh_schema() as schema:
        try:
            for name in ("a", "b"):
                (tmp_path / name).mkdir()
                instances.append(
                    start_app(
                        reg,
                        tmp_path / name,
                        DATABASE_URL=schema.dsn,
                        TOKEN_KEYS=key,
                        PUBLIC_URL=proxy.url,
                    )
                )
            proxy.backends = [instance.url for instance in instances]
            launch_sandbox.register_client(
                {
                    **client,
                    "redirect_uris": [f"{proxy.url}/callback"],
                    "launch_url": f"{proxy.url}/launch",
                }
            )
            browser = Browser()
            try:
                page = browser.go(ehr_launch_url(launch_sandbox, "e2e-ha", PATIENT))
                assert page.status_code == 200, page.text
                name = seeded_patient(PATIENT)["name"][0]["text"]
                assert f'id="patient-name">{name}<' in page.text
                app = urlsplit(browser.visited[-1]).path.rstrip("/")  # /app/<launch context>
                # The launch page, its callback and the first page: each on the other instance.
                first = [("/launch", 0), ("/launch", 1), ("/callback", 0), (app + "/", 1)]
                assert proxy.served == first
                form = browser.request("GET", f"{proxy.url}{app}/assess/ecr-r/")  # on A
                assert form.status_code == 200, form.text
                fields = {f"q:{n}": "4" for n in range(1, 37)}  # every item at the midpoint
                fields["csrf_token"] = hidden(form.text, "csrf_token")
                fields["submission_id"] = hidden(form.text, "submission_id")
                fields["action"] = "submit"
                posted = browser.request("POST", f"{proxy.url}{app}/assess/ecr-r/", data=fields)
                assert posted.status_code == 303, posted.text  # on B: its CSRF check passed
                assert proxy.served[-2:] == [
                    (app + "/assess/ecr-r/", 0),
                    (app + "/assess/ecr-r/", 1),
                ]
                outbox = delivery.outbox_services(instances[0].app).outbox.store
                item = outbox.get(fields["submission_id"])  # B stored and sent it; A sees it
                assert item is not None and item.status == "delivered", item
                written = sorted(ref.split("/")[0] for ref in (item.receipt or {}).values())
                # the response, the anxiety and avoidance means, and who wrote them
                assert written == [
                    "Observation",
                    "Observation",
                    "Provenance",
                    "QuestionnaireResponse",
                ]
            finally:
                browser.close()
        finally:
            for instance in instances:
                instance.stop()
