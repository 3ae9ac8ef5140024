"""CDS Hooks reads are audited too: a patient-view call without prefetch reads the record from
the sandbox with the EHR's token, and each of those reads is one AuditEvent naming the hook's
user and patient."""

from __future__ import annotations

from collections import Counter

import pytest
from flask.testing import FlaskClient

from attach_fhir.fhir_models import AuditEvent
from ehr_sandbox.runner import Sandbox
from tests.e2e.test_cds_e2e import (  # noqa: F401  (fixtures)
    PATIENT,
    READ_SCOPE,
    access_token,
    hook,
    post,
    sandbox,
    service,
    transport,
)
from tests.fixtures.smart_app_server import RecordingTransport

pytestmark = pytest.mark.e2e


def test_the_hooks_fhir_reads_are_recorded_with_its_user_and_patient(
    sandbox: Sandbox,  # noqa: F811
    service: FlaskClient,  # noqa: F811
    transport: RecordingTransport,  # noqa: F811
) -> None:
    assert sandbox.urls is not None
    token = access_token(sandbox, READ_SCOPE, patient=PATIENT)
    answer = post(service, sandbox, hook(sandbox, token))
    assert answer.status_code == 200, answer.json
    app = service.application
    events = list(app.extensions["attach_audit"].store.since(0.0))
    fhir_reads = [u for _m, u in transport.requests if u.startswith(sandbox.urls.fhir_base + "/")]
    assert len(events) == len(fhir_reads) == 3  # the Patient, its scores, its drafts
    for event in events:
        AuditEvent.model_validate(event)
        assert event["outcome"] == "0"
        assert event["agent"][0]["who"] == {"reference": "Practitioner/sandbox-practitioner-rowan"}
        patient = next(e for e in event["entity"] if e.get("role", {}).get("code") == "1")
        assert patient["what"] == {"reference": f"Patient/{PATIENT}"}
        assert token not in str(event)
    kinds = Counter(e["subtype"][0]["code"] for e in events)
    assert kinds == Counter({"read": 1, "search-type": 2})
