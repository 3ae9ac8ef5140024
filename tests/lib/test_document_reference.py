"""The DocumentReference filing a submission's PDF summary: every field checked by hand, the hash
and size computed here independently of the builder."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest

from attach_fhir.document_reference import (
    SummaryDocument,
    attachment,
    document_reference,
    document_transaction,
)
from attach_fhir.fhir_models import DocumentReference
from attach_fhir.writeback import InvalidWriteback, WritebackContext
from tests.lib.instrument_data import QUESTIONNAIRES, load

SYSTEM = "http://attach-fhir.org/fhir/identifier/submission"
DOCUMENTS = "http://attach-fhir.org/fhir/CodeSystem/attach-documents"
#: A tiny but real PDF header plus bytes that are not UTF-8.
PDF_BYTES = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def ident(role: str, sid: str = "sub-1") -> str:
    """uuid5(uuid5(URL namespace, system), "<sid>/<role>"): the scheme of docs/outbox.md."""
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, SYSTEM)
    return str(uuid.uuid5(namespace, f"{sid}/{role}"))


def context(**changes: object) -> WritebackContext:
    fields: dict[str, object] = {
        "submission_id": "sub-1",
        "patient": "Patient/p1",
        "author": "Practitioner/rowan",
        "authored": "2026-03-04T09:30:00Z",
        "encounter": "Encounter/e1",
        "source": "Patient/p1",
    }
    fields.update(changes)
    return WritebackContext(**fields)  # type: ignore[arg-type]


DOC = SummaryDocument(
    pdf=PDF_BYTES,
    title="ECR-R 1.0.0: summary 2026-03-04",
    description="Answers and scores of the ECR-R, completed 2026-03-04.",
)


def test_the_attachment_carries_the_pdf_its_size_and_sha1_hash() -> None:
    found = attachment(DOC, "2026-03-04T09:30:00Z")
    assert found["contentType"] == "application/pdf"
    assert base64.b64decode(found["data"]) == PDF_BYTES
    assert found["size"] == 54  # by hand, line by line: 9 + 6 + 8 + 5 + 7 + 8 + 5 + 6 bytes
    assert len(PDF_BYTES) == 54
    # SHA-1, base64 (R4 Attachment.hash), computed with hashlib here.
    assert found["hash"] == base64.b64encode(hashlib.sha1(PDF_BYTES).digest()).decode()
    assert len(base64.b64decode(found["hash"])) == 20
    assert found["title"] == "ECR-R 1.0.0: summary 2026-03-04"
    assert found["creation"] == "2026-03-04T09:30:00Z"
    assert found["language"] == "en"


def test_the_document_reference_fields() -> None:
    doc = document_reference(DOC, context())
    assert doc["resourceType"] == "DocumentReference"
    assert doc["identifier"] == [{"system": SYSTEM, "value": ident("DocumentReference")}]
    assert doc["status"] == "current"
    assert doc["docStatus"] == "final"
    assert doc["type"]["coding"] == [
        {
            "system": DOCUMENTS,
            "code": "assessment-summary",
            "display": "Attachment assessment summary",
        }
    ]
    assert doc["category"] == [
        {"coding": [{"system": DOCUMENTS, "code": "assessment", "display": "Assessment"}]}
    ]
    assert doc["subject"] == {"reference": "Patient/p1"}
    assert doc["context"] == {"encounter": [{"reference": "Encounter/e1"}]}
    assert doc["author"] == [{"reference": "Practitioner/rowan"}]
    assert doc["date"] == "2026-03-04T09:30:00Z"
    assert doc["description"] == "Answers and scores of the ECR-R, completed 2026-03-04."
    assert len(doc["content"]) == 1
    assert "meta" not in doc and "relatesTo" not in doc and "custodian" not in doc
    DocumentReference.model_validate(doc)


def test_codes_are_defined_in_the_project_codesystem() -> None:
    system = load(QUESTIONNAIRES / "codesystem-attach-documents.json")
    assert system["url"] == DOCUMENTS
    concepts = {c["code"]: c["display"] for c in system["concept"]}
    doc = document_reference(DOC, context())
    for coding in [*doc["type"]["coding"], *doc["category"][0]["coding"]]:
        assert concepts[coding["code"]] == coding["display"]


def test_optional_parts_security_labels_custodian_and_relates_to() -> None:
    ctx = context(encounter=None, security_labels=True, organization="Organization/clinic")
    doc = document_reference(DOC, ctx, relates_to=[("replaces", "DocumentReference/old")])
    assert "context" not in doc
    codes = [(s["system"].rsplit("/", 1)[1], s["code"]) for s in doc["meta"]["security"]]
    assert codes == [("v3-ActCode", "BH"), ("v3-Confidentiality", "R")]
    assert doc["custodian"] == {"reference": "Organization/clinic"}
    assert doc["relatesTo"] == [
        {"code": "replaces", "target": {"reference": "DocumentReference/old"}}
    ]
    DocumentReference.model_validate(doc)


def test_the_transaction_creates_it_conditionally_with_a_provenance() -> None:
    bundle = document_transaction(DOC, context())
    assert bundle["type"] == "transaction"
    doc_entry, prov_entry = bundle["entry"]
    value = ident("DocumentReference")
    assert doc_entry["fullUrl"] == f"urn:uuid:{value}"
    assert doc_entry["request"] == {
        "method": "POST",
        "url": "DocumentReference",
        "ifNoneExist": f"identifier={SYSTEM}|{value}",
    }
    prov = prov_entry["resource"]
    assert prov["target"] == [{"reference": f"urn:uuid:{value}"}]
    assert prov["meta"]["tag"] == [{"system": SYSTEM, "code": ident("Provenance")}]
    assert prov_entry["request"]["ifNoneExist"] == f"_tag={SYSTEM}|{ident('Provenance')}"
    # A retry rebuilds the very same Bundle: same identifiers, same conditions, same bytes.
    assert json.dumps(document_transaction(DOC, context())) == json.dumps(bundle)


def test_without_provenance_only_the_document_is_sent() -> None:
    bundle = document_transaction(DOC, context(include_provenance=False))
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["DocumentReference"]


def test_another_submission_gets_another_identifier() -> None:
    first = document_reference(DOC, context())
    second = document_reference(DOC, context(submission_id="sub-2"))
    assert second["identifier"][0]["value"] == ident("DocumentReference", "sub-2")
    assert first["identifier"] != second["identifier"]


def test_a_document_that_is_not_fhir_is_refused() -> None:
    with pytest.raises(InvalidWriteback) as caught:
        document_transaction(DOC, context(authored="yesterday"))
    problems = caught.value.details["problems"]
    assert any("'resource', 'date'): Value error, Instant value" in p for p in problems)
    assert any("'attachment', 'creation'): Value error, DateTime" in p for p in problems)
