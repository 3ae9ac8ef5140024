"""What this launch may write where: the server's CapabilityStatement plus the granted scopes.

The CapabilityStatement is read once per server (:class:`attach_fhir.capabilities.CapabilityCache`
kept on the app); the scopes come from the launch. The result is a :class:`WritePlan` the pages
show before the user starts ("results cannot be written here: keep and export") and the views
obey (buttons disabled with the reason next to them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from attach_fhir.capabilities import CapabilityCache, ServerCapabilities, WriteMode
from attach_fhir.errors import AttachError
from smart_app.web.context import LaunchContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WritePlan:
    """How drafts and submissions go to this launch's server, and what the user is told."""

    mode: WriteMode
    can_draft: bool
    draft_reason: str | None
    can_submit: bool
    submit_reason: str | None
    provenance: bool
    can_search_responses: bool
    can_read_questionnaires: bool
    notices: tuple[str, ...] = field(default_factory=tuple)
    #: Whether the server takes transactions (otherwise ordered conditional writes).
    transaction: bool = True

    @property
    def writes(self) -> bool:
        """True when a submission is written to the record (not kept and exported)."""
        return self.mode in ("transaction", "ordered-creates")


def capabilities(cache: CapabilityCache, launch: LaunchContext) -> ServerCapabilities | None:
    """The server's capabilities (cached), or None when its metadata cannot be read."""
    try:
        return cache.get(launch.fhir())
    except AttachError as exc:
        log.info("assess.capabilities outcome=%s", exc.code)
        return None


def plan(caps: ServerCapabilities | None, launch: LaunchContext) -> WritePlan:
    """Combine what the server declares with what the EHR granted this launch."""
    if caps is None:  # no CapabilityStatement: assume the common case, let the server decide
        caps = _assumed(launch.iss)
    notices: list[str] = []
    mode: WriteMode = caps.write_mode
    scope_qr, scope_obs = launch.can("QuestionnaireResponse", "c"), launch.can("Observation", "c")
    can_file = caps.can_create("DocumentReference") and launch.can("DocumentReference", "c")
    if mode in ("transaction", "ordered-creates") and not (scope_qr and scope_obs) and can_file:
        mode = "document-reference"
        notices.append(
            "The EHR did not grant the app permission to save answers and scores as data "
            "(QuestionnaireResponse and Observation create): when you submit, they will be filed "
            "in the record as a PDF summary document (DocumentReference) instead."
        )
    elif mode in ("transaction", "ordered-creates") and not (scope_qr and scope_obs):
        mode = "keep-and-export"
        notices.append(
            "The EHR did not grant the app permission to save answers and scores "
            "(QuestionnaireResponse and Observation create): you can complete the questionnaire, "
            "see the scores and download the results, but nothing is written to the record."
        )
    elif mode == "document-reference" and can_file:
        notices.append(
            "This EHR does not accept questionnaire answers or scores as data "
            "(QuestionnaireResponse or Observation cannot be created): when you submit, the "
            "answers and scores will be filed in the record as a PDF summary document "
            "(DocumentReference), and you can download it."
        )
    elif mode in ("document-reference", "keep-and-export"):
        mode = "keep-and-export"
        notices.append(
            "This EHR does not accept questionnaire answers or scores "
            "(QuestionnaireResponse or Observation cannot be created): you can complete the "
            "questionnaire, see the scores and download the results to file them yourself."
        )
    provenance = caps.writes_provenance and launch.can("Provenance", "c")
    if mode != "keep-and-export" and not provenance:
        notices.append("Results are written without a Provenance record (not permitted here).")
    if mode == "ordered-creates":
        notices.append("This EHR takes no transactions: results are written one at a time.")
    can_update = caps.supports("QuestionnaireResponse", "update") and launch.can(
        "QuestionnaireResponse", "u"
    )
    can_draft = scope_qr and can_update and caps.can_create("QuestionnaireResponse")
    draft_reason = (
        None
        if can_draft
        else "Saving a draft needs permission to create and update QuestionnaireResponse, "
        "which this EHR did not give."
    )
    can_search = caps.supports("QuestionnaireResponse", "search-type") and launch.can(
        "QuestionnaireResponse", "s"
    )
    if not can_search:
        notices.append("Earlier responses and drafts cannot be listed from this EHR.")
    return WritePlan(
        mode=mode,
        can_draft=can_draft,
        draft_reason=draft_reason,
        can_submit=True,  # keep-and-export always works: the user sees scores and downloads
        submit_reason=None,
        provenance=provenance,
        can_search_responses=can_search,
        can_read_questionnaires=caps.supports("Questionnaire", "search-type")
        and launch.can("Questionnaire", "s"),
        notices=tuple(notices),
        transaction=caps.transaction,
    )


def _assumed(base_url: str) -> ServerCapabilities:
    """A server whose metadata is unreadable: assume create/update/search on what we use."""
    everything = frozenset({"create", "read", "update", "search-type"})
    types = ("QuestionnaireResponse", "Observation", "Provenance", "Questionnaire")
    return ServerCapabilities(
        base_url=base_url,
        transaction=True,
        interactions=dict.fromkeys(types, everything),
        conditional_create=frozenset(types),
    )
