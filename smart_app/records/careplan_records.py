"""What the care-plan pages read from the EHR: the active plan and its Goals, the latest scores,
journal entries and a patient's own (preliminary) results. Every search names the patient."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from attach_fhir.careplan_edit import WorkingPlan
from attach_fhir.careplan_fhir import CAREPLAN_SYSTEM
from attach_fhir.careplan_writeback import ObservedScore, latest_scores
from attach_fhir.errors import AttachError
from attach_fhir.fhir_errors import FhirError
from attach_fhir.goal_target import packaged_scales
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.journal import JOURNAL_URL
from smart_app.records import score_records

log = logging.getLogger(__name__)

Json = dict[str, Any]


class NoActivePlan(AttachError):
    """The patient has no active care plan written by this app."""

    code = "no_active_plan"
    description = "The patient has no active care plan from attach-fhir to revise."
    status_code = 404


@dataclass
class PlanOnServer:
    """The active CarePlan with its Goals as read (with their versions)."""

    careplan: Json
    goals: dict[str, Json] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """``CarePlan/<id>``."""
        return f"CarePlan/{self.careplan['id']}"

    @property
    def unread_goals(self) -> int:
        """How many of the plan's goal references could not be read (the page says so)."""
        listed = {
            str(ref.get("reference") or "")
            for ref in self.careplan.get("goal") or []
            if isinstance(ref, dict)
        }
        return len(listed - set(self.goals))

    def working(self) -> WorkingPlan:
        """An editable copy."""
        return WorkingPlan.from_json({"careplan": self.careplan, "goals": self.goals.items()})


def _ours(careplan: Mapping[str, Any]) -> bool:
    return any(i.get("system") == CAREPLAN_SYSTEM for i in careplan.get("identifier") or [])


def active_plan(client: FhirClient, patient_id: str) -> PlanOnServer | None:
    """The newest active CarePlan this app wrote for the patient, and its Goals."""
    params = {"subject": f"Patient/{patient_id}", "status": "active", "_count": "50"}
    plans = [p for p in client.search("CarePlan", params) if _ours(p)]
    if not plans:
        return None
    plan = max(plans, key=lambda p: str((p.get("meta") or {}).get("lastUpdated") or ""))
    return PlanOnServer(plan, read_goals(client, plan))


def version_count(client: FhirClient, careplan_id: str) -> int | None:
    """How many versions the plan's history holds; None when the server will not say."""
    try:
        bundle = client.history("CarePlan", careplan_id)
    except FhirError:
        return None
    total = bundle.get("total")
    if isinstance(total, int) and not isinstance(total, bool) and total > 0:
        return total
    entries = bundle.get("entry")
    return len(entries) if isinstance(entries, list) and entries else None


def read_goals(client: FhirClient, careplan: Mapping[str, Any]) -> dict[str, Json]:
    """The plan's Goals by reference, in plan order (a Goal that cannot be read is skipped)."""
    goals: dict[str, Json] = {}
    for ref in careplan.get("goal") or []:
        reference = str(ref.get("reference") or "")
        if not reference.startswith("Goal/"):
            continue
        try:
            goals[reference] = client.read_reference(reference)
        except AttachError as exc:
            log.info("careplan.goal outcome=%s", exc.code)
    return goals


def refresh(client: FhirClient, careplan_id: str) -> PlanOnServer:
    """The server's current version of a plan and its Goals."""
    plan = client.read("CarePlan", careplan_id)
    return PlanOnServer(plan, read_goals(client, plan))


def score_observations(client: FhirClient, patient_id: str) -> list[Json]:
    """Every score Observation of the patient (any status)."""
    return score_records.patient_observations(client, patient_id, sorted(packaged_scales()))


def latest(client: FhirClient, patient_id: str) -> dict[str, ObservedScore]:
    """The latest final value of each score."""
    return latest_scores(score_observations(client, patient_id))


def preliminary(observations: list[Json]) -> list[Json]:
    """Scores the patient submitted that no clinician has reviewed yet."""
    return [o for o in observations if o.get("status") == "preliminary" and o.get("id")]


def journal_entries(client: FhirClient, patient_id: str) -> list[Json]:
    """The patient's journal entries, newest first."""
    return journal_of(completed_responses(client, patient_id))


def completed_responses(client: FhirClient, patient_id: str) -> list[Json]:
    """The patient's completed QuestionnaireResponses."""
    params = {"subject": f"Patient/{patient_id}", "status": "completed", "_count": "100"}
    return list(client.search("QuestionnaireResponse", params))


def journal_of(responses: list[Json]) -> list[Json]:
    """The journal entries among ``responses``, newest first."""
    found = [
        r for r in responses if str(r.get("questionnaire") or "").partition("|")[0] == JOURNAL_URL
    ]
    return sorted(found, key=lambda r: str(r.get("authored") or ""), reverse=True)


def plan_identifier(careplan: Mapping[str, Any]) -> str:
    """The plan's client-generated id (its ``CAREPLAN_SYSTEM`` identifier value)."""
    for ident in careplan.get("identifier") or []:
        if ident.get("system") == CAREPLAN_SYSTEM and ident.get("value"):
            return str(ident["value"])
    raise NoActivePlan()
