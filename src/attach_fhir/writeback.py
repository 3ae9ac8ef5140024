"""Build the resources a scored submission writes back: pure functions of their inputs.

One submission is the ``completed`` QuestionnaireResponse, one Observation per score that has a
value, and a Provenance naming the app and the user. Every resource carries an identifier derived
from the submission id and its role (uuid5), and is created with ``ifNoneExist`` on it, so a
retry rebuilds the same identifiers and the server writes nothing twice.

Decisions (docs/outbox.md):

- Provenance has no ``identifier`` in R4, so it carries the same system|value as a ``meta.tag``
  and its ``ifNoneExist`` searches ``_tag``.
- ECR-RS: ``focus`` is the RelatedPerson when the context knows one for the target; otherwise
  ``focus`` is omitted (a bare name is not a resource) and a ``note`` names the target; the score
  code names it as well (``ecr-rs-mother-anxiety``).
- A category score (ECR ``argmax``) becomes an Observation with ``valueCodeableConcept``; the
  Observations of the scores it is computed from carry the category as ``interpretation``. No
  numeric score gets an interpretation: the instruments publish no cut-offs.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from attach_fhir.canonical import BASE, SCORES_SYSTEM, USED_ALTHOUGH_NOT_FITTING_EXT
from attach_fhir.errors import AttachError
from attach_fhir.fhir_models import (
    Bundle,
    CarePlan,
    Goal,
    Observation,
    Provenance,
    QuestionnaireResponse,
    QuestionnaireResponseItem,
)
from attach_fhir.scoring import FINAL, PRORATED, Score, ScoreResult
from attach_fhir.scoring_model import compile_model

SUBMISSION_SYSTEM = f"{BASE}/identifier/submission"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

#: The v3-DataOperation codes a Provenance names, with that code system's displays (THO
#: CodeSystem v3-DataOperation: UPDATE is "revise", not "update"): displays come from the code
#: system, never from the code.
DATA_OPERATIONS = {"CREATE": "create", "UPDATE": "revise"}
DataOperation = Literal["CREATE", "UPDATE"]

SECURITY_LABELS = (
    {"system": ACT_CODE, "code": "BH", "display": "behavioral health information sensitivity"},
    {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"},
)
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, SUBMISSION_SYSTEM)


class InvalidWriteback(AttachError):
    """A built resource did not parse as FHIR R4; ``problems`` lists why."""

    code = "invalid_writeback"
    description = "The results could not be turned into valid FHIR resources."
    status_code = 500


@dataclass(frozen=True)
class WritebackContext:
    """Who, where and when: everything besides the answers and scores."""

    submission_id: str
    patient: str
    author: str
    authored: str
    encounter: str | None = None
    #: The respondent (QuestionnaireResponse.source); defaults to the patient.
    source: str | None = None
    #: Reference to the app for Provenance (a Device reference, or a display-only reference).
    app: Mapping[str, str] = field(default_factory=lambda: {"display": "attach-fhir"})
    organization: str | None = None
    security_labels: bool = False
    #: ECR-RS target (``mother``, ``partner`` ...) -> RelatedPerson reference, where known.
    related_persons: Mapping[str, str] = field(default_factory=dict)
    include_provenance: bool = True
    #: Observation.status: ``preliminary`` for a patient's own submission until a clinician
    #: has reviewed it (docs/care-plan-rules.md, "The patient's side").
    observation_status: str = "final"


def identifier_value(submission_id: str, role: str) -> str:
    """The deterministic identifier value (a UUID) of one resource of a submission."""
    return str(uuid.uuid5(_NAMESPACE, f"{submission_id}/{role}"))


def _ref(reference: str, display: str | None = None) -> dict[str, str]:
    out = {"reference": reference}
    if display:
        out["display"] = display
    return out


def _meta(ctx: WritebackContext) -> dict[str, Any]:
    return {"security": [dict(label) for label in SECURITY_LABELS]} if ctx.security_labels else {}


def _walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _walk(item.get("item") or [])


def _score_items(questionnaire: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Score code -> the Questionnaire item that shows it."""
    out: dict[str, dict[str, Any]] = {}
    for item in _walk(list(questionnaire.get("item") or [])):
        for coding in item.get("code") or []:
            if coding.get("system") == SCORES_SYSTEM and coding.get("code"):
                out[coding["code"]] = item
    return out


def _scored(score: Score) -> bool:
    return score.status in (FINAL, PRORATED) and score.value is not None


def _answer(score: Score) -> dict[str, Any]:
    if score.category is not None:
        return {"valueCoding": dict(score.category)}
    return {"valueDecimal": score.value}


def _response(
    qr: Mapping[str, Any],
    questionnaire: Mapping[str, Any],
    result: ScoreResult,
    ctx: WritebackContext,
    score_items: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """The completed QuestionnaireResponse, with the scores group filled from the result."""
    items = [json_copy(i) for i in qr.get("item") or [] if i.get("linkId") != "scores"]
    scores_group = next(
        (i for i in questionnaire.get("item") or [] if i.get("linkId") == "scores"), None
    )
    answered = [
        {
            "linkId": score_items[code]["linkId"],
            "text": score_items[code].get("text"),
            "answer": [_answer(score)],
        }
        for code, score in result.scores.items()
        if _scored(score) and code in score_items
    ]
    if scores_group is not None and answered:
        items.append({"linkId": "scores", "text": scores_group.get("text"), "item": answered})
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "meta": _meta(ctx),
        # the clinician's "use anyway" (the only extension of the form's response kept)
        "extension": [
            json_copy(e)
            for e in qr.get("extension") or []
            if e.get("url") == USED_ALTHOUGH_NOT_FITTING_EXT
        ],
        "identifier": {
            "system": SUBMISSION_SYSTEM,
            "value": identifier_value(ctx.submission_id, "QuestionnaireResponse"),
        },
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "completed",
        "subject": _ref(ctx.patient),
        "encounter": _ref(ctx.encounter) if ctx.encounter else None,
        "authored": ctx.authored,
        "author": _ref(ctx.author),
        "source": _ref(ctx.source or ctx.patient),
        "item": items,
    }
    return _prune(response)


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars) in under a third of the time of
    ``copy.deepcopy``, whose memo bookkeeping trees without shared or cyclic parts never need."""
    if isinstance(value, dict):
        return {key: json_copy(member) for key, member in value.items()}
    if isinstance(value, list):
        return [json_copy(member) for member in value]
    return value


def _prune(resource: dict[str, Any]) -> dict[str, Any]:
    """Drop empty members (FHIR forbids empty objects and arrays) and None-valued keys."""
    for key, value in list(resource.items()):
        if isinstance(value, dict):
            _prune(value)
        elif isinstance(value, list):
            for element in value:
                if isinstance(element, dict):
                    _prune(element)
        if value is None or value == {} or value == []:
            del resource[key]
    return resource


def _observation(
    code: str,
    score: Score,
    result: ScoreResult,
    ctx: WritebackContext,
    qr_url: str,
    item: Mapping[str, Any] | None,
    interpretation: Mapping[str, str] | None,
    inputs: list[str],
) -> dict[str, Any]:
    coding = {"system": SCORES_SYSTEM, "code": code}
    display = next(
        (c.get("display") for c in (item or {}).get("code") or [] if c.get("code") == code), None
    )
    if display:
        coding["display"] = display
    notes = []
    focus = None
    if score.focus is not None:
        related = ctx.related_persons.get(score.focus)
        if related:
            focus = [_ref(related, score.focus)]
        else:
            notes.append({"text": f"Relationship target: {score.focus}"})
    if score.status == PRORATED:
        notes.append(
            {
                "text": f"Prorated: mean of the {score.answered} of {score.expected} items "
                "answered (local convention, not an author rule)"
            }
        )
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": _meta(ctx),
        "identifier": [
            {"system": SUBMISSION_SYSTEM, "value": identifier_value(ctx.submission_id, code)}
        ],
        "status": ctx.observation_status,
        "category": [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}
        ],
        "code": {"coding": [coding], "text": display or code},
        "subject": _ref(ctx.patient),
        "focus": focus,
        "encounter": _ref(ctx.encounter) if ctx.encounter else None,
        "effectiveDateTime": ctx.authored,
        "performer": [_ref(ctx.author)],
        "derivedFrom": [_ref(qr_url)] + [_ref(url) for url in inputs],
        "method": {"text": f"{result.algorithm_id} {result.algorithm_version}"},
        "note": notes,
    }
    if score.category is not None:
        concept = {"coding": [dict(score.category)], "text": score.category.get("display")}
        obs["valueCodeableConcept"] = concept
        obs["interpretation"] = [json_copy(concept)]
    else:
        obs["valueQuantity"] = {
            "value": score.value,
            "unit": "{score}",
            "system": UCUM,
            "code": "{score}",
        }
        if interpretation is not None:
            obs["interpretation"] = [
                {"coding": [dict(interpretation)], "text": interpretation.get("display")}
            ]
    return _prune(obs)


def _provenance(ctx: WritebackContext, targets: list[str]) -> dict[str, Any]:
    value = identifier_value(ctx.submission_id, "Provenance")
    return provenance_resource(ctx, targets, tag=(SUBMISSION_SYSTEM, value))


def provenance_resource(
    ctx: WritebackContext,
    targets: list[str],
    *,
    tag: tuple[str, str],
    activity: DataOperation = "CREATE",
) -> dict[str, Any]:
    """A Provenance: ``ctx.author`` as author, the app as assembler; ``tag`` is its identity."""
    meta = _meta(ctx)
    meta["tag"] = [{"system": tag[0], "code": tag[1]}]
    app_agent: dict[str, Any] = {
        "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "assembler"}]},
        "who": dict(ctx.app),
    }
    if ctx.organization:
        app_agent["onBehalfOf"] = _ref(ctx.organization)
    return {
        "resourceType": "Provenance",
        "meta": meta,
        "target": [_ref(url) for url in targets],
        "recorded": ctx.authored,
        "activity": {
            "coding": [
                {"system": DATA_OPERATION, "code": activity, "display": DATA_OPERATIONS[activity]}
            ]
        },
        "agent": [
            {
                "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author"}]},
                "who": _ref(ctx.author),
            },
            app_agent,
        ],
    }


def _entry(resource: dict[str, Any], role: str, ctx: WritebackContext) -> dict[str, Any]:
    return create_entry(resource, SUBMISSION_SYSTEM, identifier_value(ctx.submission_id, role))


def create_entry(resource: dict[str, Any], system: str, value: str) -> dict[str, Any]:
    """A transaction entry creating ``resource`` unless ``system|value`` already exists.

    The resource must carry that identifier (a Provenance: that ``meta.tag``); the fullUrl is
    ``urn:uuid:<value>``, so ``value`` must be a UUID.
    """
    search = "_tag" if resource["resourceType"] == "Provenance" else "identifier"
    return {
        "fullUrl": f"urn:uuid:{value}",
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource["resourceType"],
            "ifNoneExist": f"{search}={system}|{value}",
        },
    }


def build_transaction(
    questionnaire_response: Mapping[str, Any],
    questionnaire: Mapping[str, Any],
    result: ScoreResult,
    ctx: WritebackContext,
) -> dict[str, Any]:
    """The transaction Bundle of one submission (raises InvalidWriteback if not valid FHIR)."""
    score_items = _score_items(questionnaire)
    inputs = {spec.code: spec.inputs for spec in compile_model(questionnaire).scores}
    qr = _response(questionnaire_response, questionnaire, result, ctx, score_items)
    entries = [_entry(qr, "QuestionnaireResponse", ctx)]
    qr_url = entries[0]["fullUrl"]
    # An argmax category interprets the scores it is computed from.
    interpretation: dict[str, Mapping[str, str]] = {}
    for code, score in result.scores.items():
        if _scored(score) and score.category is not None:
            for source in inputs.get(code, ()):
                interpretation[source] = score.category
    urls: dict[str, str] = {}
    for code, score in result.scores.items():
        if not _scored(score):
            continue
        needs = inputs.get(code, ()) if score.category is not None else ()
        sources = [url for source, url in urls.items() if source in needs]
        obs = _observation(
            code,
            score,
            result,
            ctx,
            qr_url,
            score_items.get(code),
            interpretation.get(code),
            sources,
        )
        entries.append(_entry(obs, code, ctx))
        urls[code] = entries[-1]["fullUrl"]
    if ctx.include_provenance:
        targets = [e["fullUrl"] for e in entries]
        entries.append(_entry(_provenance(ctx, targets), "Provenance", ctx))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    validate(bundle)
    return bundle


_MODELS: dict[str, Any] = {
    "QuestionnaireResponse": QuestionnaireResponse,
    "Observation": Observation,
    "Provenance": Provenance,
    "CarePlan": CarePlan,
    "Goal": Goal,
}


def validate(bundle: Mapping[str, Any]) -> None:
    """Parse the Bundle and each resource with the R4B models; raise InvalidWriteback if not.

    Each resource is parsed once, by its own model (problems named by its type); the Bundle is
    parsed without the resources those models already checked (parsing them twice doubled the
    time of a submission). A QuestionnaireResponse's top-level items are parsed one by one
    through :func:`item_problems`, which remembers its verdict per item (see there).
    """
    problems: list[str] = []
    entries = bundle.get("entry") or []
    envelope = {
        **bundle,
        "entry": [
            {k: v for k, v in e.items() if k != "resource"}
            if (e.get("resource") or {}).get("resourceType") in _MODELS
            else e
            for e in entries
        ],
    }
    try:
        Bundle.model_validate(envelope)
    except ValidationError as exc:
        problems.extend(f"Bundle: {e['loc']}: {e['msg']}" for e in exc.errors())
    for entry in entries:
        resource = entry["resource"]
        kind = resource.get("resourceType")
        model = _MODELS.get(kind)
        if model is None:
            continue
        items: list[Any] = []
        if kind == "QuestionnaireResponse" and isinstance(resource.get("item"), list):
            items = resource["item"]
            resource = {k: v for k, v in resource.items() if k != "item"}
        try:
            model.model_validate(resource)
        except ValidationError as exc:
            problems.extend(f"{kind}: {e['loc']}: {e['msg']}" for e in exc.errors())
        for index, item in enumerate(items):
            key = json.dumps(item, sort_keys=True, separators=(",", ":"))
            problems.extend(
                f"{kind}: {('item', index, *loc)}: {msg}" for loc, msg in item_problems(key)
            )
    if problems:
        raise InvalidWriteback(problems=problems)


@functools.lru_cache(maxsize=4096)
def item_problems(item_json: str) -> tuple[tuple[tuple[int | str, ...], str], ...]:
    """Why one QuestionnaireResponse item (as canonical JSON) is not valid R4: (loc, message).

    Parsing an item is a pure function of its content (the R4B models have no rule linking an
    item to its siblings or its resource), so the verdict is remembered: an instrument's items
    take a small set of values (the ECR-R's 36 items x 7 points), and parsing the 36 items
    anew was two thirds of the time a submission spent in validation. Free-text items are
    parsed each time they differ. A non-dict item is refused by the model like any other.
    """
    try:
        QuestionnaireResponseItem.model_validate(json.loads(item_json))
    except ValidationError as exc:
        return tuple((tuple(e["loc"]), e["msg"]) for e in exc.errors())
    return ()


def ordered_creates(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The transaction as ordered conditional writes, one step per entry, in order.

    A create is ``{fullUrl, resource, ifNoneExist}``; a conditional update (``PUT Type?search``,
    e.g. the completed response taking over its draft) is ``{fullUrl, resource, conditionalUrl}``.
    """
    steps = []
    for entry in bundle.get("entry") or []:
        request = entry["request"]
        step = {"fullUrl": entry["fullUrl"], "resource": json_copy(entry["resource"])}
        if request["method"] == "PUT" and "?" in request["url"]:
            step["conditionalUrl"] = request["url"]
        else:
            step["ifNoneExist"] = request["ifNoneExist"]
        steps.append(step)
    return steps


def resolve_references(resource: Any, resolved: Mapping[str, str]) -> Any:
    """A copy of ``resource`` with every ``reference`` found in ``resolved`` replaced."""
    if isinstance(resource, dict):
        return {
            key: (
                resolved.get(value, value)
                if key == "reference" and isinstance(value, str)
                else resolve_references(value, resolved)
            )
            for key, value in resource.items()
        }
    if isinstance(resource, list):
        return [resolve_references(value, resolved) for value in resource]
    return resource
