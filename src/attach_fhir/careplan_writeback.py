"""Write-back of care plans: the approved plan, its revisions and goal re-assessment (pure).

Every builder returns a transaction Bundle for the outbox (``attach_fhir.io.outbox``), like the
assessment write-back it reuses (``writeback.create_entry``, ``writeback.provenance_resource``):

- Approval: the clinician-edited draft from ``careplan_fhir.build_resources`` becomes an
  ``active`` CarePlan with ``active`` Goals and a Provenance (author: the clinician; assembler:
  the app). Each is a conditional create on its client-generated identifier, so a retried
  approval writes nothing twice.
- Revision: ``PUT`` of the CarePlan and of each changed Goal with ``If-Match`` on the version the
  clinician edited; a removed Goal is ``cancelled``, never deleted. A 412/409 means someone else
  changed the plan: the caller shows ``careplan_diff.plan_changes`` instead of overwriting.
- Re-assessment: each ``active`` Goal measured by a score with a new ``final`` Observation gets
  ``achievementStatus`` (``goal_target.assess_achievement``) and an ``outcomeReference`` to the
  Observation, as an update with ``If-Match``.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from attach_fhir.canonical import SCORES_SYSTEM
from attach_fhir.careplan_fhir import (
    CAREPLAN_SYSTEM,
    PlanResources,
    achievement_status,
    goal_measure,
)
from attach_fhir.goal_target import InvalidScoreScale, ReliableChange, assess_achievement
from attach_fhir.history import parse_time
from attach_fhir.writeback import (
    SECURITY_LABELS,
    DataOperation,
    WritebackContext,
    create_entry,
    provenance_resource,
    validate,
)

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, CAREPLAN_SYSTEM)


@dataclass(frozen=True)
class PlanContext:
    """Who writes the plan, for whom, when, and where the server lives."""

    #: The plan's UUID (``build_resources(plan_id=...)``); also the outbox submission id.
    plan_id: str
    patient: str
    #: The clinician approving or revising (``Practitioner/...``): CarePlan author, Provenance.
    clinician: str
    recorded: str
    #: The FHIR base URL: update entries carry the resource's absolute URL as ``fullUrl``.
    base_url: str = ""
    encounter: str | None = None
    app: Mapping[str, str] = field(default_factory=lambda: {"display": "attach-fhir"})
    organization: str | None = None
    security_labels: bool = False

    def writeback(self) -> WritebackContext:
        """The assessment write-back's context for the same people (Provenance building)."""
        return WritebackContext(
            submission_id=self.plan_id,
            patient=self.patient,
            author=self.clinician,
            authored=self.recorded,
            encounter=self.encounter,
            app=self.app,
            organization=self.organization,
            security_labels=self.security_labels,
        )


@dataclass(frozen=True, slots=True)
class ObservedScore:
    """A score Observation on the server: its reference, value and date."""

    reference: str
    value: float
    effective: str = ""


def _labelled(resource: dict[str, Any], ctx: PlanContext) -> dict[str, Any]:
    if ctx.security_labels:
        meta = resource.setdefault("meta", {})
        have = {(s.get("system"), s.get("code")) for s in meta.get("security", [])}
        meta["security"] = meta.get("security", []) + [
            dict(label) for label in SECURITY_LABELS if (label["system"], label["code"]) not in have
        ]
    return resource


def _identifier(resource: Mapping[str, Any]) -> str:
    for ident in resource.get("identifier") or []:
        if ident.get("system") == CAREPLAN_SYSTEM and ident.get("value"):
            return str(ident["value"])
    raise ValueError(f"{resource.get('resourceType')} has no {CAREPLAN_SYSTEM} identifier")


def _provenance_entry(
    ctx: PlanContext, role: str, targets: list[str], activity: DataOperation
) -> dict[str, Any]:
    value = str(uuid.uuid5(_NAMESPACE, f"{ctx.plan_id}/{role}"))
    resource = provenance_resource(
        ctx.writeback(), targets, tag=(CAREPLAN_SYSTEM, value), activity=activity
    )
    return create_entry(resource, CAREPLAN_SYSTEM, value)


def _targets(entries: list[dict[str, Any]]) -> list[str]:
    """What a Provenance targets: a created entry's fullUrl, an updated one's ``Type/id``."""
    return [
        e["request"]["url"] if e["request"]["method"] == "PUT" else e["fullUrl"] for e in entries
    ]


def _bundle(entries: list[dict[str, Any]]) -> dict[str, Any]:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    validate(bundle)
    return bundle


def merge_references(
    existing: Iterable[Mapping[str, Any]], more: Iterable[str]
) -> list[dict[str, Any]]:
    """``existing`` references followed by each of ``more`` not already among them."""
    out = [dict(r) for r in existing]
    seen = {r.get("reference") for r in out}
    for ref in more:
        if ref not in seen:
            out.append({"reference": ref})
            seen.add(ref)
    return out


def approval_transaction(
    plan: PlanResources, ctx: PlanContext, supporting: Sequence[str] = ()
) -> dict[str, Any]:
    """The approved plan: active Goals, the active CarePlan and a Provenance, idempotently.

    ``supporting`` are the QuestionnaireResponse and Observations the plan was made from; they
    join the draft's own ``supportingInfo``.
    """
    entries = []
    for url, draft in plan.goals:
        goal = _labelled(copy.deepcopy(draft), ctx)
        goal["lifecycleStatus"] = "active"
        goal.setdefault("expressedBy", {"reference": ctx.clinician})
        entry = create_entry(goal, CAREPLAN_SYSTEM, _identifier(goal))
        if entry["fullUrl"] != url:
            raise ValueError(f"Goal fullUrl {url} does not match its identifier")
        entries.append(entry)
    careplan = _labelled(copy.deepcopy(plan.careplan), ctx)
    careplan.update(
        status="active",
        intent="plan",
        subject={"reference": ctx.patient},
        author={"reference": ctx.clinician},
    )
    if ctx.encounter:
        careplan["encounter"] = {"reference": ctx.encounter}
    info = merge_references(careplan.get("supportingInfo", ()), supporting)
    if info:
        careplan["supportingInfo"] = info
    entries.append(create_entry(careplan, CAREPLAN_SYSTEM, _identifier(careplan)))
    targets = [e["fullUrl"] for e in entries]
    entries.append(_provenance_entry(ctx, "approval", targets, "CREATE"))
    return _bundle(entries)


def update_entry(resource: dict[str, Any], version: str, base_url: str) -> dict[str, Any]:
    """A transaction entry updating ``resource`` only if the server still has ``version``."""
    ref = f"{resource['resourceType']}/{resource['id']}"
    return {
        "fullUrl": f"{base_url.rstrip('/')}/{ref}",
        "resource": resource,
        "request": {"method": "PUT", "url": ref, "ifMatch": f'W/"{version}"'},
    }


def version_of(resource: Mapping[str, Any]) -> str:
    """``meta.versionId`` of a resource read from the server (ValueError when it has none)."""
    version = (resource.get("meta") or {}).get("versionId")
    if not version:
        raise ValueError(f"{resource.get('resourceType')} has no meta.versionId")
    return str(version)


_SERVER_META = frozenset({"versionId", "lastUpdated", "source", "author", "project"})


def without_version(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource without what the server sets (version, last update); labels and tags stay."""
    out = {k: v for k, v in resource.items() if k != "meta"}
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in _SERVER_META}
    if meta:
        out["meta"] = meta
    return out


def _content(resource: Mapping[str, Any]) -> dict[str, Any]:
    return without_version(resource)


def revision_transaction(
    base_plan: Mapping[str, Any],
    base_goals: Mapping[str, Mapping[str, Any]],
    plan: Mapping[str, Any],
    goals: Mapping[str, Mapping[str, Any]],
    ctx: PlanContext,
) -> dict[str, Any]:
    """Updates with ``If-Match`` from the versions the clinician edited (``base_*``).

    ``goals`` maps ``Goal/<id>`` (kept, maybe edited) or ``urn:uuid:<identifier>`` (added) to
    the Goal; a key of ``base_goals`` missing from ``goals`` was removed: it becomes
    ``cancelled``. ``plan`` is the edited CarePlan (same id); its goal list is rebuilt.
    """
    version = version_of(base_plan)
    entries: list[dict[str, Any]] = []
    for ref, goal in goals.items():
        if ref.startswith("urn:uuid:"):
            new = _labelled(copy.deepcopy(dict(goal)), ctx)
            new.setdefault("lifecycleStatus", "active")
            entries.append(create_entry(new, CAREPLAN_SYSTEM, _identifier(new)))
        elif _content(goal) != _content(base_goals[ref]):
            changed = _content(copy.deepcopy(dict(goal)))
            entries.append(update_entry(changed, version_of(base_goals[ref]), ctx.base_url))
    for ref, goal in base_goals.items():
        if ref not in goals and goal.get("lifecycleStatus") != "cancelled":
            cancelled = _content(copy.deepcopy(dict(goal)))
            cancelled["lifecycleStatus"] = "cancelled"
            entries.append(update_entry(cancelled, version_of(goal), ctx.base_url))
    careplan = _content(copy.deepcopy(dict(plan)))
    careplan["id"] = base_plan["id"]
    careplan["goal"] = [{"reference": ref} for ref in goals]
    if not careplan["goal"]:
        del careplan["goal"]
    entries.append(update_entry(careplan, version, ctx.base_url))
    targets = _targets(entries)
    role = f"revision/{base_plan['id']}/{version}"
    entries.append(_provenance_entry(ctx, role, targets, "UPDATE"))
    return _bundle(entries)


def _order(obs: Mapping[str, Any]) -> tuple[dt.datetime, str]:
    """Effective time, then the server's write time (two submissions in one second)."""
    try:
        when = parse_time(str(obs.get("effectiveDateTime") or ""))
    except ValueError:
        when = dt.datetime.min.replace(tzinfo=dt.UTC)
    return when, str((obs.get("meta") or {}).get("lastUpdated") or "")


def latest_scores(observations: Iterable[Mapping[str, Any]]) -> dict[str, ObservedScore]:
    """The latest ``final`` (or amended/corrected) numeric score Observation per score code."""
    best: dict[str, tuple[tuple[dt.datetime, str], ObservedScore]] = {}
    for obs in observations:
        if obs.get("status") not in ("final", "amended", "corrected") or not obs.get("id"):
            continue
        value = (obs.get("valueQuantity") or {}).get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        order = _order(obs)
        found = ObservedScore(
            f"Observation/{obs['id']}", float(value), str(obs.get("effectiveDateTime") or "")
        )
        for coding in (obs.get("code") or {}).get("coding") or []:
            code = coding.get("code")
            if coding.get("system") == SCORES_SYSTEM and code:
                if code not in best or order > best[code][0]:
                    best[code] = (order, found)
    return {code: found for code, (_, found) in best.items()}


def reassessment_transaction(
    goals: Iterable[Mapping[str, Any]],
    scores: Mapping[str, ObservedScore],
    ctx: PlanContext,
    reliable: Mapping[str, ReliableChange] | None = None,
) -> dict[str, Any] | None:
    """Achievement status and outcome reference for each active Goal with a new score.

    A Goal already referring to the Observation is left alone (re-running changes nothing);
    ``None`` when no Goal changes. ``reliable`` holds the clinic's reliable-change figures.
    """
    entries = []
    used = []
    for goal in goals:
        if goal.get("lifecycleStatus") != "active":
            continue
        try:
            measure = goal_measure(goal)
        except InvalidScoreScale:
            continue  # not a goal this app measures
        score = scores.get(measure.score)
        outcomes = goal.get("outcomeReference") or []
        if score is None or any(o.get("reference") == score.reference for o in outcomes):
            continue
        achievement = assess_achievement(measure, score.value, (reliable or {}).get(measure.score))
        updated = _content(copy.deepcopy(dict(goal)))
        updated["achievementStatus"] = achievement_status(achievement)
        updated["outcomeReference"] = merge_references(outcomes, [score.reference])
        entries.append(update_entry(updated, version_of(goal), ctx.base_url))
        used.append(score.reference)
    if not entries:
        return None
    targets = _targets(entries)
    role = "reassessment/" + ",".join(sorted(set(used)))
    entries.append(_provenance_entry(ctx, role, targets, "UPDATE"))
    return _bundle(entries)
