"""How the care-plan pages write: the plan context, what this EHR allows, and the outbox.

An approved plan is all creates, so a server without transactions still takes it as ordered
conditional creates. Revisions, goal judgements and result reviews update several resources with
``If-Match`` at once; they need a transaction, and are refused up front where there is none.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app

from attach_fhir.careplan_rules import CarePlanRules, load_rules, shipped_rules
from attach_fhir.careplan_writeback import PlanContext
from attach_fhir.errors import AttachError
from attach_fhir.io.outbox import Mode
from attach_fhir.io.outbox_store import OutboxItem
from smart_app.forms.questionnaire_source import registration_option
from smart_app.records import delivery
from smart_app.web.clock import now
from smart_app.web.context import LaunchContext
from smart_app.web.server_profile import capabilities

log = logging.getLogger(__name__)

#: Where the app keeps the clinic's care-plan rules; present only where the care-plan flow is.
EXTENSION = "attach_careplan"

#: (resource, interaction) the EHR must allow for each kind of write.
NEEDS = {
    "approve": (("CarePlan", "c"), ("Goal", "c")),
    "update": (("CarePlan", "u"), ("Goal", "u")),
    "results": (("Observation", "u"),),
}


class PlanNotWritable(AttachError):
    """The EHR does not let the app write this change."""

    code = "plan_not_writable"
    description = "This EHR does not let the app write this change to the care plan."
    status_code = 409


def context(launch: LaunchContext, plan_id: str, clinician: str) -> PlanContext:
    """Who writes, for whom, when, and to which server."""
    return PlanContext(
        plan_id=plan_id,
        patient=f"Patient/{launch.patient_id}",
        clinician=clinician,
        recorded=now(),
        base_url=launch.iss,
        encounter=f"Encounter/{launch.encounter_id}" if launch.encounter_id else None,
        security_labels=registration_option(launch, "security_labels"),
    )


def problem(launch: LaunchContext, kind: str) -> str | None:
    """Why this launch cannot write a change of ``kind`` (``approve``, ``update``,
    ``results``), in words for the clinician; None when it can."""
    caps = capabilities(delivery.outbox_services().capabilities, launch)
    for resource, interaction in NEEDS[kind]:
        verb = {"c": "create", "u": "update"}[interaction]
        if not launch.can(resource, interaction):
            return f"The EHR did not grant the app permission to {verb} {resource}."
        if caps is not None and not caps.supports(resource, verb):
            return f"This EHR does not accept {verb}s of {resource}."
    if kind != "approve" and caps is not None and not caps.transaction:
        return (
            "This EHR takes no transactions, so changes to several resources of an existing "
            "plan cannot be written safely together."
        )
    return None


def require(launch: LaunchContext, kind: str) -> None:
    """Refuse (PlanNotWritable, with the reason) a change this launch cannot write."""
    reason = problem(launch, kind)
    if reason:
        raise PlanNotWritable(reason)


def send(
    launch: LaunchContext, submission_id: str, bundle: dict[str, Any], kind: str
) -> OutboxItem:
    """Hand the change to the outbox (delivered now if the server answers)."""
    require(launch, kind)
    caps = capabilities(delivery.outbox_services().capabilities, launch)
    mode: Mode = "ordered-creates" if caps is not None and not caps.transaction else "transaction"
    item = delivery.send(launch, submission_id, bundle, mode)
    log.info("careplan.send kind=%s outcome=%s mode=%s", kind, item.status, mode)
    return item


def init_rules(app: Flask) -> None:
    """Load the clinic's rules (``ATTACH_CAREPLAN_RULES``, else the shipped ones) onto ``app``;
    bad rules stop the start."""
    path = app.config.get("CAREPLAN_RULES")
    app.extensions[EXTENSION] = load_rules(path) if path else shipped_rules()


def rules() -> CarePlanRules:
    """The clinic's care-plan rules (or the shipped ones)."""
    found: CarePlanRules = current_app.extensions[EXTENSION]
    return found


def enabled() -> bool:
    """Whether this app runs the care-plan flow (and so has its rules)."""
    return EXTENSION in current_app.extensions
