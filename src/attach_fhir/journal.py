"""Attachment journal entries: a patient's QuestionnaireResponse linked to the plan (pure).

An entry answers the unscored ``attachment-journal`` Questionnaire (not a validated
instrument). It is written as a ``completed`` QuestionnaireResponse whose author and source are
the patient, ``basedOn`` the CarePlan, and whose ``careplan-activity`` extension names the
journaling activity's coding (R4 has no reference to one activity of a plan). A Provenance says
the patient wrote it through the app. Identifiers and ``ifNoneExist`` as in ``writeback``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from attach_fhir.canonical import BASE, questionnaire_url
from attach_fhir.writeback import (
    SECURITY_LABELS,
    SUBMISSION_SYSTEM,
    WritebackContext,
    create_entry,
    identifier_value,
    provenance_resource,
    validate,
)

JOURNAL_URL = questionnaire_url("attachment-journal")
#: QuestionnaireResponse extension, ``valueCoding``: the CarePlan activity the entry belongs to.
CAREPLAN_ACTIVITY_EXT = f"{BASE}/StructureDefinition/careplan-activity"


def journal_transaction(
    response: Mapping[str, Any],
    questionnaire: Mapping[str, Any],
    *,
    careplan: str | None,
    activity: Mapping[str, str] | None,
    ctx: WritebackContext,
) -> dict[str, Any]:
    """The entry (and its Provenance unless ``ctx.include_provenance`` is off) as a transaction;
    the author is ``ctx.author``, the patient."""
    value = identifier_value(ctx.submission_id, "QuestionnaireResponse")
    entry: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "identifier": {"system": SUBMISSION_SYSTEM, "value": value},
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "completed",
        "subject": {"reference": ctx.patient},
        "authored": ctx.authored,
        "author": {"reference": ctx.author},
        "source": {"reference": ctx.source or ctx.patient},
        "item": copy.deepcopy(list(response.get("item") or [])),
    }
    if ctx.security_labels:
        entry["meta"] = {"security": [dict(label) for label in SECURITY_LABELS]}
    if careplan:
        entry["basedOn"] = [{"reference": careplan}]
    if activity:
        entry["extension"] = [{"url": CAREPLAN_ACTIVITY_EXT, "valueCoding": dict(activity)}]
    if not entry["item"]:
        del entry["item"]
    entries = [create_entry(entry, SUBMISSION_SYSTEM, value)]
    if ctx.include_provenance:
        tag = identifier_value(ctx.submission_id, "Provenance")
        targets = [entries[0]["fullUrl"]]
        provenance = provenance_resource(ctx, targets, tag=(SUBMISSION_SYSTEM, tag))
        entries.append(create_entry(provenance, SUBMISSION_SYSTEM, tag))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    validate(bundle)
    return bundle


def answers(entry: Mapping[str, Any], questionnaire: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(prompt, answer) pairs of an entry, in the Questionnaire's order, for reading."""
    given = {
        i.get("linkId"): " ".join(str(a.get("valueString", "")) for a in i.get("answer") or [])
        for i in entry.get("item") or []
    }
    return [
        (str(item.get("text", "")), given[item["linkId"]])
        for item in questionnaire.get("item") or []
        if given.get(item.get("linkId"))
    ]
