"""Every Coding the project ships (questionnaires/*.json) or writes (the resources the writeback,
care-plan, review and document builders make) names a code its CodeSystem defines, with that
CodeSystem's display.

Our own CodeSystems are read from questionnaires/; a display may also be one of the concept's
designations (the agreement-7 points, which each instrument labels in its own verified words).
External code systems are checked against EXTERNAL below, a small table of the codes we use with
their official displays, copied by hand from the published code systems, so a display made up
from the code (``activity.lower()`` gave UPDATE "update") fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from attach_fhir.careplan_writeback import (
    ObservedScore,
    approval_transaction,
    reassessment_transaction,
    revision_transaction,
)
from attach_fhir.document_reference import SummaryDocument, document_reference
from attach_fhir.result_review import confirmation_transaction
from attach_fhir.scoring import score_response
from attach_fhir.writeback import WritebackContext, build_transaction
from tests.lib.instrument_data import QUESTIONNAIRES, load
from tests.lib.scoring_examples import EXAMPLES
from tests.lib.scoring_responses import from_answers
from tests.lib.test_careplan_writeback import CTX, resources, server_copy
from tests.lib.test_careplan_writeback import draft as careplan_draft

Json = dict[str, Any]
THO = "http://terminology.hl7.org/CodeSystem"

#: system -> code -> official display, for the external codes the project ships or writes.
#: Sources (HL7 Terminology, terminology.hl7.org, R4 code systems):
#: - CodeSystem-v3-DataOperation: CREATE "create", UPDATE "revise"
#: - CodeSystem-provenance-participant-type: author "Author", assembler "Assembler"
#: - CodeSystem-observation-category: survey "Survey"
#: - CodeSystem-v3-ActCode: BH "behavioral health information sensitivity"
#: - CodeSystem-v3-Confidentiality: R "restricted"
#: - CodeSystem-goal-achievement: the statuses goal_target.AchievementStatus assigns
#: - CodeSystem-usage-context-type: age "Age Range"
EXTERNAL: dict[str, dict[str, str]] = {
    f"{THO}/v3-DataOperation": {"CREATE": "create", "UPDATE": "revise"},
    f"{THO}/provenance-participant-type": {"author": "Author", "assembler": "Assembler"},
    f"{THO}/observation-category": {"survey": "Survey"},
    f"{THO}/v3-ActCode": {"BH": "behavioral health information sensitivity"},
    f"{THO}/v3-Confidentiality": {"R": "restricted"},
    f"{THO}/goal-achievement": {
        "improving": "Improving",
        "worsening": "Worsening",
        "no-change": "No Change",
        "achieved": "Achieved",
    },
    f"{THO}/usage-context-type": {"age": "Age Range"},
}


def own_codesystems() -> dict[str, dict[str, set[str]]]:
    """system -> code -> the displays the concept allows (its display and designations)."""
    out: dict[str, dict[str, set[str]]] = {}
    for path in sorted(QUESTIONNAIRES.glob("codesystem-*.json")):
        resource = load(path)
        concepts: dict[str, set[str]] = {}
        stack = list(resource.get("concept", []))
        while stack:
            concept = stack.pop()
            allowed = {d["value"] for d in concept.get("designation", [])}
            if "display" in concept:
                allowed.add(concept["display"])
            concepts[concept["code"]] = allowed
            stack.extend(concept.get("concept", []))
        out[resource["url"]] = concepts
    return out


KNOWN: dict[str, dict[str, set[str]]] = {
    **{system: {c: {d} for c, d in codes.items()} for system, codes in EXTERNAL.items()},
    **own_codesystems(),
}


def codings(value: object, path: str = "") -> Iterator[tuple[str, Json]]:
    """Every Coding in a resource: a JSON object with ``system`` and ``code`` (not a Quantity)."""
    if isinstance(value, dict):
        if isinstance(value.get("system"), str) and "code" in value and "value" not in value:
            yield path, value
        for key, child in value.items():
            yield from codings(child, f"{path}.{key}")
    elif isinstance(value, list):
        for n, child in enumerate(value):
            yield from codings(child, f"{path}[{n}]")


def problems(resource: Json) -> list[str]:
    """Each Coding whose code its CodeSystem lacks, or whose display is not the CodeSystem's."""
    out = []
    for path, coding in codings(resource):
        if path.startswith(".meta.tag["):
            continue  # a Provenance's identity (docs/outbox.md): a namespace, not a CodeSystem
        system, code = coding["system"], coding["code"]
        if system not in KNOWN:
            out.append(f"{path}: system {system} is neither ours nor in EXTERNAL")
        elif code not in KNOWN[system]:
            out.append(f"{path}: {system} has no code {code!r}")
        elif "display" in coding and coding["display"] not in KNOWN[system][code]:
            allowed = sorted(KNOWN[system][code]) or "no display"
            out.append(f"{path}: {system}#{code} display {coding['display']!r}, not {allowed}")
    return out


SHIPPED = sorted(p.name for p in QUESTIONNAIRES.glob("*.json"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_coding_matches_its_codesystem(name: str) -> None:
    resource = load(QUESTIONNAIRES / name)
    assert problems(resource) == []


def test_the_shipped_files_have_codings_to_check() -> None:
    # The walk finds what it must: the ECR category options and the RQ forced-choice options.
    ecr = [c for _, c in codings(load(QUESTIONNAIRES / "ecr.json"))]
    rq = [c for _, c in codings(load(QUESTIONNAIRES / "rq.json"))]
    pattern = "http://attach-fhir.org/fhir/CodeSystem/attachment-pattern"
    assert [c["display"] for c in ecr if c["system"] == pattern] == [
        "Secure",
        "Fearful",
        "Preoccupied",
        "Dismissing",
    ]
    assert sum(c["system"] == pattern for c in rq) == 4


def writeback_context(**changes: Any) -> WritebackContext:
    return WritebackContext(  # type: ignore[misc]
        submission_id="sub-1",
        patient="Patient/p1",
        author="Practitioner/dr1",
        authored="2024-05-01T10:15:00+02:00",
        encounter="Encounter/e1",
        app={"reference": "Device/attach-fhir", "display": "attach-fhir"},
        organization="Organization/clinic",
        security_labels=True,
        **changes,
    )


def written() -> Iterator[tuple[str, Json]]:
    """(label, resource) for everything the builders write, as the tests build it."""
    for example in EXAMPLES:
        questionnaire = load(QUESTIONNAIRES / f"{example.instrument}.json")
        response = from_answers(questionnaire, example.answers)
        result = score_response(questionnaire, response)
        bundle = build_transaction(response, questionnaire, result, writeback_context())
        for entry in bundle["entry"]:
            yield f"{example.name}: {entry['resource']['resourceType']}", entry["resource"]
    document = SummaryDocument(pdf=b"%PDF-1.4\n%%EOF\n", title="t", description="d")
    yield "DocumentReference", document_reference(document, writeback_context())
    approval = approval_transaction(resources(careplan_draft()), CTX, ["QuestionnaireResponse/q"])
    plan, goals = server_copy()
    revised = {key: goal | {"description": {"text": "changed"}} for key, goal in goals.items()}
    revision = revision_transaction(plan, goals, plan, revised, CTX)
    scores = {"ecr-r-anxiety": ObservedScore("Observation/n1", 4.0, "2025-03-01")}
    reassessment = reassessment_transaction(goals.values(), scores, CTX)
    # A clinician confirms an ECR category written as preliminary (as the EHR returns it).
    ecr = load(QUESTIONNAIRES / "ecr.json")
    response = from_answers(ecr, next(e for e in EXAMPLES if e.instrument == "ecr").answers)
    held = writeback_context(observation_status="preliminary")
    pending = [
        e["resource"] | {"id": str(n), "meta": {"versionId": "1"}}
        for n, e in enumerate(
            build_transaction(response, ecr, score_response(ecr, response), held)["entry"]
        )
        if e["resource"]["resourceType"] == "Observation"
    ]
    confirmation = confirmation_transaction(pending, CTX)
    for name, bundle in [
        ("approval", approval),
        ("revision", revision),
        ("reassessment", reassessment),
        ("confirmation", confirmation),
    ]:
        assert bundle is not None, name
        for entry in bundle["entry"]:
            yield f"{name}: {entry['resource']['resourceType']}", entry["resource"]


def test_every_written_coding_matches_its_codesystem() -> None:
    found = {label: problems(resource) for label, resource in written()}
    assert {label: p for label, p in found.items() if p} == {}


def test_revisions_name_the_data_operation_revise() -> None:
    # An UPDATE Provenance is what the displays-from-the-code bug got wrong ("update").
    updates = [
        coding
        for label, resource in written()
        if resource["resourceType"] == "Provenance"
        for coding in resource["activity"]["coding"]
        if coding["code"] == "UPDATE"
    ]
    assert len(updates) == 3  # the care-plan revision and reassessment, the confirmation
    assert {c["display"] for c in updates} == {"revise"}
