"""The audit trail of the patient picker through Flask's test client, against the picker tests'
small real FHIR server: a search by name, birth date and MRN is recorded without them, and a
server error as a serious failure."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask

from attach_fhir.fhir_models import AuditEvent
from tests.app.test_patient_picker import (  # noqa: F401  (fixtures)
    CTX,
    Fhir,
    fhir,
    launched,
    search,
    searchset,
    served,
    statement,
)


def records(app: Flask) -> list[dict[str, Any]]:
    return list(app.extensions["attach_audit"].store.since(0.0))


def test_a_picker_search_is_recorded_without_its_criteria(
    fhir: Fhir,  # noqa: F811
    tmp_path: Path,
) -> None:
    fhir.answer("GET", "metadata", 200, statement(None))
    fhir.answer("POST", "Patient/_search", 200, searchset())
    app, client = launched(fhir, tmp_path)
    page = search(client, name="Ada Lovelace", birth_date="1990-01-02", identifier="MRN-77")
    assert page.status_code == 200, page.get_data(as_text=True)
    sent = parse_qsl(fhir.seen[-1][3])
    assert ("birthdate", "1990-01-02") in sent  # the server did get the criteria

    events = records(app)
    assert [e["subtype"][0]["code"] for e in events] == ["capabilities", "search-type"]
    for event in events:
        AuditEvent.model_validate(event)
    query = next(e for e in events[1]["entity"] if e.get("role", {}).get("code") == "24")
    assert query["what"] == {"type": "Patient"}
    recorded = parse_qsl(base64.b64decode(query["query"]).decode())
    assert recorded == [(name, "20" if name == "_count" else "*") for name, _ in sent]
    assert events[1]["agent"][0]["who"] == {"reference": f"{fhir.base}/Practitioner/dr"}
    assert not any(e.get("role", {}).get("code") == "1" for e in events[1]["entity"])  # no patient

    raw = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("audit.sqlite3*")))
    for value in ("Lovelace", "1990-01-02", "MRN-77"):
        assert value.encode() not in raw


def test_a_server_error_is_recorded_as_a_serious_failure(
    fhir: Fhir,  # noqa: F811
    tmp_path: Path,
) -> None:
    fhir.answer("GET", "metadata", 200, statement(None))
    fhir.answer("POST", "Patient/_search", 500, {"resourceType": "OperationOutcome"})
    app, client = launched(fhir, tmp_path)
    search(client, name="Ada")
    (event,) = [e for e in records(app) if e["subtype"][0]["code"] == "search-type"]
    assert event["outcome"] == "8"


def test_a_refused_token_refresh_is_recorded_with_its_code(
    fhir: Fhir,  # noqa: F811
    tmp_path: Path,
) -> None:
    token = {
        "access_token": "old",
        "refresh_token": "r",
        "expires_at": 0,
        "scope": "user/Patient.rs",
    }
    app, client = launched(
        fhir, tmp_path, patient="p-1", token=token, token_endpoint="http://127.0.0.1:9/token"
    )
    page = client.get(f"/app/{CTX}/")
    assert page.status_code == 401, page.get_data(as_text=True)
    (event,) = records(app)
    AuditEvent.model_validate(event)
    assert [c["code"] for c in event["subtype"]] == ["ITI-71", "token-refresh"]
    assert (event["outcome"], event["outcomeDesc"]) == ("4", "authorization_expired")
    assert {"reference": "Patient/p-1"} in [e.get("what") for e in event["entity"]]
    assert fhir.seen == []  # nothing was sent with the expired token
