"""The printable summary (PDF) after any submission: kept and exported, delivered as data, and
for a completed response in the record; and a documents-only server said before starting.

Uses the assess tests' ``launch_as`` (a launch put into the session store) against the real open
sandbox FHIR server; the CapabilityStatement of a documents-only EHR is a rewrite of the real one.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import httpx
import pytest
from pypdf import PdfReader

from smart_app.records import delivery
from tests.app import test_assess
from tests.app.test_assess import ALL, READ_ONLY, RQ, Session, Wrapped

# The assess tests' fixtures, shared by name.
launch_as = test_assess.launch_as
transport = test_assess.transport

pytestmark = pytest.mark.e2e  # starts the sandbox FHIR server process

ADULT = "sandbox-adult-29"
#: By hand from the RQ key (RQ = secure 6, fearful 2, preoccupied 3, dismissing 5):
#: self = (6 + 5) - (2 + 3) = 6, other = (6 + 3) - (2 + 5) = 2.
RQ_LINES = (
    "RQ secure rating: 6.00",
    "RQ fearful rating: 2.00",
    "RQ preoccupied rating: 3.00",
    "RQ dismissing rating: 5.00",
    "RQ model of self: 6.00",
    "RQ model of other: 2.00",
)


def pdf_text(pdf: bytes) -> str:
    """The PDF's text, whitespace collapsed."""
    pages = PdfReader(io.BytesIO(pdf)).pages
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in pages))


def submit_rq(session: Session) -> str:
    """Submit the RQ answers; the submission id."""
    _, sid = session.form("rq")
    done = session.post("rq", RQ, "submit", sid)
    assert done.status_code == 303, done.text
    return sid


def assert_rq_summary(pdf: bytes) -> None:
    """The PDF is the RQ summary with the hand-computed scores and the answers."""
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    assert "Relationship Questionnaire (RQ), version 1.1.0" in text
    for line in RQ_LINES:
        assert line in text
    # The ratings are unlabelled points of the 1-7 scale (only the ends carry words).
    for rating in ("6", "2", "3", "5"):
        assert f"Answer: {rating} " in text
    assert "Use restriction: Author (single source)" in text


def test_kept_and_exported_results_offer_the_pdf_summary(
    launch_as: Callable[..., Session],
) -> None:
    session = launch_as(ADULT, READ_ONLY)
    choose = session.client.get(session.url()).text
    assert "with a printable PDF summary" in choose
    sid = submit_rq(session)
    status = session.client.get(session.url(f"submissions/{sid}")).text
    assert 'data-state="kept"' in status and 'id="export"' in status
    assert (
        f'href="/app/{session.ctx}/assess/submissions/{sid}/summary.pdf" id="summary-pdf"' in status
    )
    pdf = session.client.get(session.url(f"submissions/{sid}/summary.pdf"))
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert f'filename="attach-fhir-summary-{sid}.pdf"' in pdf.headers["Content-Disposition"]
    assert_rq_summary(pdf.data)


def test_a_delivered_submission_and_its_response_offer_the_pdf_summary(
    launch_as: Callable[..., Session],
) -> None:
    session = launch_as(ADULT, ALL)
    sid = submit_rq(session)
    item = delivery.outbox_services(session.app).outbox.store.get(sid)
    assert item.status == "delivered"
    assert item.payload is None  # the app keeps no answers once written: read back from the EHR
    from_record = session.client.get(session.url(f"submissions/{sid}/summary.pdf"))
    assert from_record.status_code == 200
    assert_rq_summary(from_record.data)
    qr_ref = next(v for v in item.receipt.values() if v.startswith("QuestionnaireResponse/"))
    qr_id = qr_ref.rpartition("/")[2]
    review = session.client.get(f"/app/{session.ctx}/review/responses/{qr_id}")
    assert review.status_code == 200
    link = f"/app/{session.ctx}/assess/responses/{qr_id}/summary.pdf"
    assert f'href="{link}" id="summary-pdf"' in review.text
    rescored = session.client.get(link)
    assert rescored.status_code == 200
    assert_rq_summary(rescored.data)


def test_another_patients_response_or_submission_has_no_summary(
    launch_as: Callable[..., Session],
) -> None:
    owner = launch_as(ADULT, ALL)
    sid = submit_rq(owner)
    item = delivery.outbox_services(owner.app).outbox.store.get(sid)
    qr_ref = next(v for v in item.receipt.values() if v.startswith("QuestionnaireResponse/"))
    qr = qr_ref.rpartition("/")[2]
    other = launch_as("sandbox-adolescent-15", ALL)
    assert other.client.get(other.url(f"responses/{qr}/summary.pdf")).status_code == 404
    assert other.client.get(other.url(f"submissions/{sid}/summary.pdf")).status_code == 404


def test_a_documents_only_server_is_said_before_starting(
    launch_as: Callable[..., Session],
    transport: Wrapped,
) -> None:
    def documents_only(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if not request.url.path.endswith("/metadata"):
            return response
        statement = response.json()
        for res in statement["rest"][0]["resource"]:
            if res["type"] in ("QuestionnaireResponse", "Observation"):
                res["interaction"] = [i for i in res["interaction"] if i["code"] != "create"]
        return httpx.Response(
            200, json=statement, headers={"Content-Type": "application/fhir+json"}
        )

    transport.rewrite = documents_only
    filing = launch_as(ADULT, ALL + " user/DocumentReference.c")
    page = filing.client.get(filing.url()).text
    assert 'id="document-reference"' in page
    assert "filed in the record as a PDF summary document (DocumentReference)" in page
    without_scope = launch_as(ADULT, ALL)
    page = without_scope.client.get(without_scope.url()).text
    assert 'id="keep-and-export"' in page and 'id="document-reference"' not in page
