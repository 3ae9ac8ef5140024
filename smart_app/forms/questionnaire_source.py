"""Which copy of a Questionnaire the app shows: the EHR's, when it has the same url and version
and means the same.

The packaged copy (``attach_fhir.instruments``) is always the one that scores, so the EHR's copy
with the same canonical ``url|version`` is shown only when its items and answer options (codes,
displays, ordinal values) are the packaged ones (:mod:`attach_fhir.questionnaire_copy`): a copy
with edited labels would show one meaning and score another. Otherwise the packaged copy is
shown, with a notice saying why. Where the server allows it and
the registration asks for it (``create_questionnaires``), the packaged Questionnaire is created
on the server conditionally on url and version, so the EHR can resolve the canonical itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from attach_fhir.capabilities import ServerCapabilities
from attach_fhir.errors import AttachError
from attach_fhir.instruments import Instrument, UnknownInstrument, library
from attach_fhir.questionnaire_copy import differences
from smart_app.web.context import LaunchContext
from smart_app.web.server_profile import WritePlan

log = logging.getLogger(__name__)

#: How many Questionnaires a url+version search may return before the app stops looking.
MAX_CANDIDATES = 20

Source = Literal["ehr", "packaged", "created"]
RegistrationOption = Literal["create_questionnaires", "security_labels"]


@dataclass(frozen=True)
class Resolved:
    """The Questionnaire to render, the packaged one that scores, and where the first came from."""

    instrument: Instrument
    questionnaire: dict[str, Any]
    packaged: dict[str, Any]
    source: Source
    #: Why the EHR's copy is not shown, in a sentence for the clinician; None when it is.
    notice: str | None = None

    @property
    def canonical(self) -> str:
        """``url|version`` of the instrument."""
        return f"{self.instrument.url}|{self.instrument.version}"


def instrument(instrument_id: str) -> Instrument:
    """The packaged instrument with this id (UnknownInstrument, a 404, otherwise)."""
    for candidate in library().instruments():
        if candidate.id == instrument_id:
            return candidate
    raise UnknownInstrument(f"No instrument {instrument_id!r} in the library.")


def packaged(inst: Instrument) -> dict[str, Any]:
    """The packaged Questionnaire of ``inst``."""
    return library().questionnaire(f"{inst.url}|{inst.version}")


def registration_option(launch: LaunchContext, name: RegistrationOption) -> bool:
    """A per-registration switch of the launch's EHR (``create_questionnaires``,
    ``security_labels``), from its entry in the registrations file."""
    reg = launch.services.registrations.lookup(launch.iss)
    if name == "create_questionnaires":
        return reg.create_questionnaires
    return reg.security_labels


def resolve(
    launch: LaunchContext, plan: WritePlan, caps: ServerCapabilities | None, inst: Instrument
) -> Resolved:
    """The EHR's copy with the same url and version if readable, else the packaged one."""
    ours = packaged(inst)
    if plan.can_read_questionnaires:
        try:
            matches = launch.fhir().search(
                "Questionnaire", {"url": inst.url, "version": inst.version}
            )
            # A server that ignores the filter would page through every Questionnaire it has:
            # look at the first few only (a real match is the first or nothing).
            for found in islice(matches, MAX_CANDIDATES):
                if found.get("url") == inst.url and found.get("version") == inst.version:
                    return _ehr_copy(inst, found, ours)
        except AttachError as exc:
            log.info("assess.questionnaire search outcome=%s", exc.code)
    if (
        caps is not None
        and caps.can_conditional_create("Questionnaire")
        and launch.can("Questionnaire", "c")
        and registration_option(launch, "create_questionnaires")
    ):
        try:
            condition = f"url={inst.url}&version={inst.version}"
            launch.fhir().create(_without_id(ours), if_none_exist=condition)
            return Resolved(inst, ours, ours, "created")
        except AttachError as exc:
            log.info("assess.questionnaire create outcome=%s", exc.code)
    return Resolved(inst, ours, ours, "packaged")


def _ehr_copy(inst: Instrument, found: dict[str, Any], ours: dict[str, Any]) -> Resolved:
    """The EHR's copy when it means what the packaged one means, else the packaged one with the
    reason (never created on the server: a copy under this url and version is already there)."""
    found_differences = list(differences(found, ours))
    if not found_differences:
        return Resolved(inst, found, ours, "ehr")
    log.info("assess.questionnaire ehr_copy=differs differences=%d", len(found_differences))
    return Resolved(inst, ours, ours, "packaged", notice=differing_copy_notice(found_differences))


def differing_copy_notice(found: list[str]) -> str:
    """The sentence a clinician reads when the EHR's copy is set aside for the packaged one."""
    first = found[0]
    others = len(found) - 1
    more = f"; {others} more difference{'s' if others > 1 else ''}" if others else ""
    return (
        f"The EHR's copy of this questionnaire differs from the published instrument ({first}"
        f"{more}), so this form shows the published wording, which is what the scores are "
        "computed from."
    )


def _without_id(questionnaire: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in questionnaire.items() if k not in ("id", "meta")}
