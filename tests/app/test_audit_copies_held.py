"""Failed authorizations held for a browser session's next launch (``AUDIT_TO_EHR``): kept per
session and EHR in the real session store, the newest ``MAX_HELD`` only, taken once."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from smart_app import create_app, stop
from smart_app.records import audit_copies
from smart_app.web.services import get_services

ISS = "https://ehr.example/fhir"


def event(n: int) -> dict[str, Any]:
    return {"resourceType": "AuditEvent", "outcomeDesc": f"try-{n}"}


def test_held_records_are_kept_per_session_and_ehr_newest_first_and_taken_once(
    tmp_path: Path,
) -> None:
    app = create_app({"DATA_DIR": str(tmp_path), "AUDIT_TO_EHR": True})
    try:
        tries = audit_copies.MAX_HELD + 5
        with app.test_request_context():
            for n in range(tries):
                audit_copies._hold(event(n), ISS, "session-a")
            audit_copies._hold(event(99), ISS + "/", "session-b")
            audit_copies._hold(event(98), "https://other.example/fhir", "session-a")
            store = get_services().store

            def launch(sid: str, iss: str = ISS) -> Any:
                return SimpleNamespace(
                    record={"sid": sid}, iss=iss, services=SimpleNamespace(store=store)
                )

            taken = audit_copies._take_held(launch("session-a"))
            assert taken == [event(n) for n in range(tries - audit_copies.MAX_HELD, tries)]
            assert audit_copies._take_held(launch("session-a")) == []  # taken: not sent twice
            assert audit_copies._take_held(launch("session-b")) == [event(99)]  # trailing / alike
            assert audit_copies._take_held(launch("session-a", "https://other.example/fhir")) == [
                event(98)
            ]
            assert audit_copies._take_held(launch("")) == []
    finally:
        stop(app)
