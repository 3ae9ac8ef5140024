"""Whole resources: the Questionnaire around its items and scores, and the project CodeSystems."""

from __future__ import annotations

import json

from attach_fhir.canonical import (
    BASE,
    RESPONDENT_EXT,
    SCORES_EARLIER_VERSION_EXT,
    SCORING_MODEL_EXT,
    USAGE_CONTEXT_TYPE_SYSTEM,
    USE_RESTRICTION_EXT,
    questionnaire_url,
)

from .parts import (
    CODESYSTEM_VERSIONS,
    CONTENT_VERSIONS,
    ENCODING_VERSION,
    PATTERNS,
    PUBLISHER,
    SCORES_EARLIER_VERSIONS,
    Json,
    pattern_display,
    score_item,
    score_variables,
    variable_ext,
)


def age_context(age: Json) -> Json:
    """``useContext`` for age: a Range when the data gives numbers, else its text."""
    coding = {"system": USAGE_CONTEXT_TYPE_SYSTEM, "code": "age", "display": "Age Range"}
    if "range" in age:
        low, high = age["range"]
        years = {"unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}
        value: Json = {}
        if low is not None:
            value["low"] = {"value": low, **years}
        if high is not None:
            value["high"] = {"value": high, **years}
        return {"code": coding, "valueRange": value}
    return {"code": coding, "valueCodeableConcept": {"text": age["text"]}}


def copyright_text(data: Json) -> str:
    """Citation and licence status exactly as recorded in the reference data."""
    lic = data["license_note"]
    return f"{data['citation']} Licence status: {lic['confidence']}. {lic['text']}"


def build_questionnaire(
    data: Json,
    *,
    qid: str,
    name: str,
    title: str,
    description: str,
    purpose: str,
    age: Json,
    respondent: str,
    restrictions: list[str],
    items: list[Json],
    entries: list[Json],
    displays: dict[str, str],
    algorithm: str,
) -> Json:
    """The Questionnaire: metadata, answer items, the scores group, variables and the model."""
    model = {"algorithm": {"id": algorithm, "version": ENCODING_VERSION}, "scores": entries}
    extensions: list[Json] = [
        {"url": SCORING_MODEL_EXT, "valueString": json.dumps(model, separators=(",", ":"))},
        {"url": RESPONDENT_EXT, "valueCode": respondent},
    ]
    extensions += [
        {"url": SCORES_EARLIER_VERSION_EXT, "valueString": v}
        for v in SCORES_EARLIER_VERSIONS.get(qid, [])
    ]
    extensions += [{"url": USE_RESTRICTION_EXT, "valueString": text} for text in restrictions]
    extensions += [variable_ext(n, e) for n, e in score_variables(entries)]
    scores = {
        "linkId": "scores",
        "text": "Scores",
        "type": "group",
        "readOnly": True,
        "item": [score_item(e, displays[e["code"]]) for e in entries],
    }
    return {
        "resourceType": "Questionnaire",
        "id": qid,
        "meta": {"profile": ["http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"]},
        "extension": extensions,
        "url": questionnaire_url(qid),
        "version": CONTENT_VERSIONS.get(qid, ENCODING_VERSION),
        "name": name,
        "title": title,
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": PUBLISHER,
        "description": description,
        "useContext": [age_context(age)],
        "purpose": purpose,
        "copyright": copyright_text(data),
        "item": [*items, scores],
    }


def codesystem(cid: str, name: str, title: str, description: str, concepts: list[Json]) -> Json:
    """A complete CodeSystem published by the project."""
    return {
        "resourceType": "CodeSystem",
        "id": cid,
        "url": f"{BASE}/CodeSystem/{cid}",
        "version": CODESYSTEM_VERSIONS.get(cid, ENCODING_VERSION),
        "name": name,
        "title": title,
        "status": "active",
        "publisher": PUBLISHER,
        "description": description,
        "caseSensitive": True,
        "content": "complete",
        "count": len(concepts),
        "concept": concepts,
    }


def codesystem_agreement_7(labels: dict[str, set[str]]) -> Json:
    """Points of a 7-point agreement scale; each instrument's verified label is a designation.

    The instruments word the same point differently ("Strongly disagree", "Disagree strongly"),
    so a point has no one display: every label an option displays is one of its designations.
    """
    concepts: list[Json] = []
    for p in range(1, 8):
        concept: Json = {
            "code": str(p),
            "definition": f"Scale point {p} of 7 (1 = most disagreement, 7 = most agreement).",
        }
        if labels.get(str(p)):
            concept["designation"] = [
                {"language": "en", "value": label} for label in sorted(labels[str(p)])
            ]
        concepts.append(concept)
    return codesystem(
        "agreement-7",
        "Agreement7",
        "7-point agreement scale",
        "Points 1-7 of the agreement scales used by the attachment instruments. The code is the "
        "scale point; each instrument labels the points it has verified labels for.",
        concepts,
    )


def codesystem_attachment_pattern() -> Json:
    """The four attachment patterns (Bartholomew's prototypes; the ECR's categories)."""
    return codesystem(
        "attachment-pattern",
        "AttachmentPattern",
        "Attachment patterns",
        "The four attachment patterns named by the RQ prototypes and the ECR classification.",
        [
            {"code": p, "display": pattern_display(p), "definition": f"The {p} attachment pattern."}
            for p in PATTERNS
        ],
    )


def codesystem_scores(concepts: list[Json]) -> Json:
    """Every score code the instruments produce."""
    return codesystem(
        "attach-scores",
        "AttachScores",
        "attach-fhir instrument scores",
        "Scores computed from the attachment instruments' published keys.",
        concepts,
    )
