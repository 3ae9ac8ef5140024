"""A documents-only EHR end to end: the sandbox FHIR server with QuestionnaireResponse and
Observation read-only (``--read-only-types``), a real EHR launch, the app over HTTP.

The choose page says before anyone starts that the results will be filed as a PDF summary; a
submission becomes one DocumentReference whose PDF holds the hand-computed scores; a connection
dropped after the server committed, then a double click and the retry, still leave exactly one.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader

from attach_fhir.writeback import SUBMISSION_SYSTEM, identifier_value
from smart_app.records import delivery
from tests.e2e.test_assess_e2e import (
    ADULT,
    PER_INSTRUMENT,
    QUICK_RETRIES,
    ROWAN,
    Clinician,
    Env,
    app_env,
    fields,
    outbox_item,
    post_with_answer_dropped,
    search,
)
from tests.fixtures.sandbox import SandboxFactory
from tests.lib.instrument_data import shared

pytestmark = pytest.mark.e2e

READ_ONLY = ("QuestionnaireResponse", "Observation")
SCOPES = (
    "launch openid fhirUser user/Patient.r user/Questionnaire.rs user/QuestionnaireResponse.rs "
    "user/Observation.rs user/DocumentReference.crs user/Provenance.crs offline_access"
)
DOC = "DocumentReference"


@pytest.fixture(scope="module")
def docs_env(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    """A sandbox whose FHIR server takes no answers or scores, and an app asking for documents."""
    sandbox = sandbox_factory(with_app=False, fhir_limits={"read_only_types": READ_ONLY})
    data_dir: Path = tmp_path_factory.mktemp("docs-app")
    with app_env(sandbox, data_dir, "docs-e2e", SCOPES, **QUICK_RETRIES) as found:
        yield found


@pytest.fixture
def clinician(docs_env: Env) -> Iterator[Clinician]:
    """A fresh browser."""
    c = Clinician(docs_env)
    yield c
    c.close()


def pdf_text(pdf: bytes) -> str:
    """The PDF's text, whitespace collapsed."""
    pages = PdfReader(io.BytesIO(pdf)).pages
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in pages))


def test_the_choose_page_says_results_are_filed_as_a_pdf_summary(clinician: Clinician) -> None:
    clinician.launch(ADULT)
    page = clinician.get()
    assert page.status_code == 200, page.text
    assert 'id="document-reference"' in page.text
    assert "will be filed in the record as a PDF summary document" in page.text
    form, _, _ = clinician.open_form("ecr-r")
    assert 'id="draft-button" disabled' in form  # no draft: QuestionnaireResponse is read-only


def test_a_submission_is_one_document_reference_with_the_pdf_even_after_a_retry(
    docs_env: Env, clinician: Clinician
) -> None:
    clinician.launch(ADULT)
    example = PER_INSTRUMENT["ecr-r"]  # every item answered 7
    _, csrf, sid = clinician.open_form("ecr-r")
    first, dropped = post_with_answer_dropped(
        docs_env, clinician, "ecr-r", fields(example), sid, csrf
    )
    assert dropped == ["200"]
    assert first.status_code == 303, first.text
    assert outbox_item(docs_env, sid).status == "queued"
    again = clinician.post("ecr-r", fields(example), "submit", sid, csrf)  # a double click
    assert again.status_code == 303 and again.headers["location"] == first.headers["location"]
    time.sleep(0.6)  # past the (test-sized) backoff
    with docs_env.server.app.app_context():
        delivery.outbox_services(docs_env.server.app).outbox.drain()
    item = outbox_item(docs_env, sid)
    assert item.status == "delivered", item.last_error

    with clinician.fhir() as client:
        value = identifier_value(sid, DOC)
        docs = search(client, DOC, identifier=f"{SUBMISSION_SYSTEM}|{value}")
        assert len(docs) == 1  # the retry after the dropped answer wrote nothing new
        doc = docs[0]
        provenance = search(
            client, "Provenance", _tag=f"{SUBMISSION_SYSTEM}|{identifier_value(sid, 'Provenance')}"
        )
        assert len(provenance) == 1
        assert provenance[0]["target"] == [{"reference": f"{DOC}/{doc['id']}"}]
        qr_value = identifier_value(sid, "QuestionnaireResponse")
        assert (
            search(client, "QuestionnaireResponse", identifier=f"{SUBMISSION_SYSTEM}|{qr_value}")
            == []
        )
        assert search(client, "Observation", subject=f"Patient/{ADULT}") == []

    assert doc["status"] == "current" and doc["docStatus"] == "final"
    assert doc["subject"] == {"reference": f"Patient/{ADULT}"}
    assert doc["author"] == [{"reference": ROWAN}]
    assert doc["type"]["coding"][0]["code"] == "assessment-summary"
    attachment = doc["content"][0]["attachment"]
    pdf = base64.b64decode(attachment["data"])
    assert attachment["contentType"] == "application/pdf"
    assert attachment["size"] == len(pdf)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(pdf).digest()).decode()
    text = pdf_text(pdf)
    # By hand (scoring_examples): all 7 -> anxiety (16 x 7 + 2 x 1) / 18 = 114 / 18 = 6.33;
    # avoidance (6 x 7 + 12 x 1) / 18 = 54 / 18 = 3.00.
    assert "ECR-R attachment anxiety: 6.33" in text
    assert "ECR-R attachment avoidance: 3.00" in text
    for item_ref in shared("ecr-r")["items"]:
        assert f"{item_ref['number']}. {item_ref['text']}" in text
    assert text.count("Answer: 7 - Strongly agree") == 36
    assert f"Entered by: {ROWAN}" in text
    assert f"Patient/{ADULT}" in text

    status = clinician.get(f"submissions/{sid}")
    assert 'data-state="delivered"' in status.text
    assert f'id="document-reference">{DOC}/{doc["id"]}<' in status.text
    assert 'id="summary-pdf"' in status.text
    download = clinician.get(f"submissions/{sid}/summary.pdf")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert download.content == pdf  # the same bytes as the document filed (deterministic PDF)
