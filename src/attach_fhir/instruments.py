"""The instrument library: Questionnaires and CodeSystems packaged as attach_fhir.questionnaires.

Look-ups go by canonical URL (the newest version) or by ``url|version``; an earlier version that
a newer one declares it scores identically is answered by the newer one. Each Questionnaire also
yields an :class:`Instrument` summary: what the app shows before anyone starts answering it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from attach_fhir.canonical import (
    CALCULATED_EXPRESSION_EXT,
    NOT_VALIDATED_EXT,
    RESPONDENT_EXT,
    SCORES_EARLIER_VERSION_EXT,
    SCORES_SYSTEM,
    USE_RESTRICTION_EXT,
    WORDING_SOURCE_EXT,
)
from attach_fhir.errors import AttachError
from attach_fhir.frozen import freeze

Json = dict[str, Any]
PACKAGE = "attach_fhir.questionnaires"
#: ``copyright`` is "<citation> Licence status: <status>. <licence note>" (scripts/qbuild).
LICENCE_MARK = " Licence status: "


class UnknownInstrument(AttachError):
    """No Questionnaire in the library has this canonical URL (and version)."""

    code = "unknown_instrument"
    description = "No instrument in the library has this canonical URL."
    status_code = 404


class LibraryError(AttachError):
    """A packaged library file cannot be read."""

    code = "library_error"
    description = "The packaged instrument library is damaged."
    status_code = 500


@dataclass(frozen=True, slots=True)
class Instrument:
    """What the app needs to offer an instrument: identity, size, audience, restrictions."""

    id: str
    url: str
    version: str
    title: str
    item_count: int
    age_range: str
    respondent: str
    restrictions: tuple[str, ...]
    citation: str
    licence_status: str
    licence_note: str
    score_codes: tuple[str, ...]


def _walk(items: list[Json]) -> list[Json]:
    out: list[Json] = []
    for item in items:
        out.append(item)
        out.extend(_walk(item.get("item", [])))
    return out


def _ext_values(resource: Json, url: str) -> list[Any]:
    return [
        next((v for k, v in ext.items() if k.startswith("value")), None)
        for ext in resource.get("extension", [])
        if ext.get("url") == url
    ]


def _age(questionnaire: Json) -> str:
    for context in questionnaire.get("useContext", []):
        if context.get("code", {}).get("code") != "age":
            continue
        if "valueRange" in context:
            low = context["valueRange"].get("low", {}).get("value")
            high = context["valueRange"].get("high", {}).get("value")
            if high is None:
                return f"{low}+ years"
            return f"{low if low is not None else 0}-{high} years"
        return str(context.get("valueCodeableConcept", {}).get("text", ""))
    return ""


def summarize(questionnaire: Json) -> Instrument:
    """The :class:`Instrument` summary of one Questionnaire."""
    items = _walk(questionnaire.get("item", []))
    own = [
        i
        for i in items
        if i.get("type") == "choice"
        and not i.get("readOnly")
        and WORDING_SOURCE_EXT not in {e.get("url") for e in i.get("extension", [])}
    ]
    codes = tuple(
        c["code"]
        for i in items
        if any(e.get("url") == CALCULATED_EXPRESSION_EXT for e in i.get("extension", []))
        for c in i.get("code", [])
        if c.get("system") == SCORES_SYSTEM
    )
    citation, _, licence = questionnaire.get("copyright", "").partition(LICENCE_MARK)
    status, _, note = licence.partition(". ")
    respondent = _ext_values(questionnaire, RESPONDENT_EXT)
    return Instrument(
        id=questionnaire.get("id", ""),
        url=questionnaire["url"],
        version=questionnaire.get("version", ""),
        title=str(questionnaire.get("title") or questionnaire.get("name") or ""),
        item_count=len(own),
        age_range=_age(questionnaire),
        respondent=str(respondent[0]) if respondent else "self",
        restrictions=tuple(str(v) for v in _ext_values(questionnaire, USE_RESTRICTION_EXT)),
        citation=citation.strip(),
        licence_status=status.strip() or "not recorded",
        licence_note=note.strip(),
        score_codes=codes,
    )


def _unscored(questionnaire: Json) -> bool:
    return any(e.get("url") == NOT_VALIDATED_EXT for e in questionnaire.get("extension", []))


def earlier_versions(questionnaire: Json) -> tuple[str, ...]:
    """The earlier versions whose responses this Questionnaire scores identically."""
    return tuple(
        str(v) for v in _ext_values(questionnaire, SCORES_EARLIER_VERSION_EXT) if isinstance(v, str)
    )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))


class Library:
    """Questionnaires and CodeSystems, indexed by canonical URL."""

    def __init__(self, resources: dict[str, Json]) -> None:
        #: file name -> resource, as loaded.
        self.files = resources
        self._by_url: dict[str, list[Json]] = {}
        self._instruments: list[Instrument] | None = None
        self.codesystems: dict[str, Json] = {}
        for resource in resources.values():
            if resource.get("resourceType") == "Questionnaire":
                self._by_url.setdefault(resource["url"], []).append(resource)
            elif resource.get("resourceType") == "CodeSystem":
                self.codesystems[resource["url"]] = resource
        for versions in self._by_url.values():
            versions.sort(key=lambda q: _version_key(q.get("version", "")), reverse=True)

    def questionnaire(self, canonical: str) -> Json:
        """The Questionnaire for ``url`` (newest version) or ``url|version``."""
        url, _, version = canonical.partition("|")
        versions = self._by_url.get(url, [])
        for candidate in versions:
            if not version or candidate.get("version") == version:
                return candidate
        for candidate in versions:  # newest first
            if version in earlier_versions(candidate):
                return candidate
        raise UnknownInstrument(
            f"No instrument in the library has the canonical {canonical!r}.", canonical=canonical
        )

    def instruments(self) -> list[Instrument]:
        """A summary of the newest version of every instrument, in title order."""
        if self._instruments is None:  # the resources are fixed at construction
            # An unscored Questionnaire (the journal) is no instrument: the plan offers it.
            scored = (v[0] for v in self._by_url.values() if not _unscored(v[0]))
            self._instruments = sorted((summarize(q) for q in scored), key=lambda i: i.title)
        return list(self._instruments)

    def score_codes(self) -> dict[str, Json]:
        """Score code -> its CodeSystem concept (display, definition)."""
        system = self.codesystems.get(SCORES_SYSTEM, {})
        return {c["code"]: c for c in system.get("concept", [])}


def read_packaged() -> dict[str, Json]:
    """Every ``*.json`` file of the packaged library, by file name."""
    out: dict[str, Json] = {}
    for entry in sorted(files(PACKAGE).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            try:
                out[entry.name] = json.loads(entry.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise LibraryError(f"{entry.name}: {exc}", file=entry.name) from exc
    return out


@cache
def library() -> Library:
    """The packaged library, loaded once per process; its resources are frozen (never changed,
    so what is derived from them, e.g. a scoring model, is computed once)."""
    found = Library(read_packaged())
    for resource in found.files.values():
        freeze(resource)
    return found
