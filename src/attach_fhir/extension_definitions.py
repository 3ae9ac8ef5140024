"""The project's own extensions and code sets, as FHIR R4 StructureDefinitions and ValueSets.

Every extension URL under ``{BASE}/StructureDefinition/`` that the Questionnaires carry or the
app writes is defined here once (context, value type, short definition), so a validator can check
it and an integrator can read what it means. A ``valueCode`` extension binds (required) to a
ValueSet of a small CodeSystem defined here too; every project CodeSystem gets an all-codes
ValueSet, so each binding resolves inside the FHIR package (``attach_fhir.fhir_package``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from attach_fhir.canonical import (
    BASE,
    NOT_VALIDATED_EXT,
    RESPONDENT_EXT,
    SCORES_EARLIER_VERSION_EXT,
    SCORING_MODEL_EXT,
    USE_RESTRICTION_EXT,
    USED_ALTHOUGH_NOT_FITTING_EXT,
    WORDING_SOURCE_EXT,
)
from attach_fhir.careplan_fhir import GOAL_BASELINE_EXT, GOAL_DIRECTION_EXT
from attach_fhir.careplan_rules import ACTIVITIES_SYSTEM
from attach_fhir.journal import CAREPLAN_ACTIVITY_EXT

Json = dict[str, Any]

#: Version of the definitions below; bump when a definition's meaning changes.
DEFINITIONS_VERSION = "1.0.0"
PUBLISHER = "attach-fhir contributors"
FHIR_VERSION = "4.0.1"
EXTENSION_BASE = "http://hl7.org/fhir/StructureDefinition/Extension"


@dataclass(frozen=True)
class CodeSet:
    """A small CodeSystem of ours, with the ValueSet that binds to all of its codes."""

    id: str
    name: str
    title: str
    description: str
    #: (code, display, definition)
    concepts: tuple[tuple[str, str, str], ...]

    @property
    def system(self) -> str:
        """The CodeSystem's canonical URL."""
        return f"{BASE}/CodeSystem/{self.id}"


@dataclass(frozen=True)
class ExtensionSpec:
    """What one of our extensions means: where it goes, what it holds, how often."""

    url: str
    name: str
    title: str
    definition: str
    #: FHIRPath element contexts (``Questionnaire``, ``Goal.target`` ...).
    contexts: tuple[str, ...]
    #: The one R4 type of ``value[x]``.
    value_type: str
    #: Cardinality at its context: "1" (at most once) or "*" (repeatable).
    max: str = "1"
    #: Canonical of the ValueSet a code or Coding value is bound to (required).
    binding: str | None = None

    @property
    def id(self) -> str:
        """The StructureDefinition id: the last segment of the URL."""
        return self.url.rsplit("/", 1)[1]


RESPONDENT = CodeSet(
    "respondent",
    "Respondent",
    "attach-fhir respondents",
    "Who answers a Questionnaire of the attach-fhir library.",
    (
        ("self", "Self-report", "The person the answers are about answers for themselves."),
        (
            "parent-caregiver",
            "Parent or caregiver report",
            "A parent or caregiver answers about their own parenting of a child.",
        ),
    ),
)
WORDING_SOURCE = CodeSet(
    "wording-source",
    "WordingSource",
    "attach-fhir wording sources",
    "Who wrote the wording of a Questionnaire item that is not the published instrument's.",
    (
        (
            "attach-fhir",
            "Written by attach-fhir",
            "The item wording was written by the attach-fhir project (an instruction or a "
            "heading), not taken from the published instrument; it is never scored.",
        ),
    ),
)
GOAL_DIRECTION = CodeSet(
    "goal-direction",
    "GoalDirection",
    "attach-fhir goal directions",
    "Which way a score must move for a care-plan Goal to count as progress.",
    (
        ("lower", "Lower is better", "The goal is met when the score falls to the target."),
        ("higher", "Higher is better", "The goal is met when the score rises to the target."),
    ),
)
CODE_SETS = (RESPONDENT, WORDING_SOURCE, GOAL_DIRECTION)


def value_set_url(codesystem_id: str) -> str:
    """The canonical of the all-codes ValueSet of the project CodeSystem with this id."""
    return f"{BASE}/ValueSet/{codesystem_id}"


EXTENSIONS = (
    ExtensionSpec(
        SCORING_MODEL_EXT,
        "ScoringModel",
        "Scoring model",
        "The instrument's scoring model as JSON text (score codes, items, reverse keys, "
        "aggregation, missing-data rule), valid against attach-fhir's scoring-model JSON schema; "
        "the Python scorer reads it, the calculatedExpressions mirror it.",
        ("Questionnaire",),
        "string",
    ),
    ExtensionSpec(
        SCORES_EARLIER_VERSION_EXT,
        "ScoresEarlierVersion",
        "Scores an earlier version",
        "An earlier version of this Questionnaire whose responses this version scores "
        "identically: the same scored items, answer codes, ordinal values and scoring model. "
        "Only wording, displays or display items changed, so a response naming that version is "
        "checked and scored by this one.",
        ("Questionnaire",),
        "string",
        max="*",
    ),
    ExtensionSpec(
        USE_RESTRICTION_EXT,
        "UseRestriction",
        "Use restriction",
        "A restriction on the use of the instrument (licence, author's conditions) that an "
        "application must show to the clinician before the instrument is used.",
        ("Questionnaire",),
        "string",
        max="*",
    ),
    ExtensionSpec(
        NOT_VALIDATED_EXT,
        "NotAValidatedInstrument",
        "Not a validated instrument",
        "The Questionnaire was written by the attach-fhir project and is not a validated "
        "instrument: it has no scoring model and yields no scores. The text says so to a reader.",
        ("Questionnaire",),
        "string",
    ),
    ExtensionSpec(
        RESPONDENT_EXT,
        "Respondent",
        "Respondent",
        "Who answers the Questionnaire: the person it is about, or their parent or caregiver.",
        ("Questionnaire",),
        "code",
        binding=value_set_url(RESPONDENT.id),
    ),
    ExtensionSpec(
        WORDING_SOURCE_EXT,
        "WordingSource",
        "Wording source",
        "The item's wording is not the published instrument's (e.g. an instruction written by "
        "the project); such an item is never scored.",
        ("Questionnaire.item",),
        "code",
        binding=value_set_url(WORDING_SOURCE.id),
    ),
    ExtensionSpec(
        USED_ALTHOUGH_NOT_FITTING_EXT,
        "UsedAlthoughNotFitting",
        "Used although not fitting",
        "The clinician chose to use the instrument although it did not fit the patient by the "
        "app's fit rules (outside the validated age range, or under the reading age for "
        "self-report); the value is the reason shown to the clinician at the time.",
        ("QuestionnaireResponse",),
        "string",
    ),
    ExtensionSpec(
        GOAL_BASELINE_EXT,
        "GoalBaseline",
        "Goal baseline",
        "The score the Goal starts from (the assessment that proposed it), so that progress "
        "can be judged from the Goal alone.",
        ("Goal.target",),
        "Quantity",
    ),
    ExtensionSpec(
        GOAL_DIRECTION_EXT,
        "GoalDirection",
        "Goal direction",
        "Whether a lower or a higher score is progress towards the Goal's target.",
        ("Goal.target",),
        "code",
        binding=value_set_url(GOAL_DIRECTION.id),
    ),
    ExtensionSpec(
        CAREPLAN_ACTIVITY_EXT,
        "CarePlanActivity",
        "Care-plan activity",
        "The care-plan activity (attach-activities code) a journal entry belongs to.",
        ("QuestionnaireResponse",),
        "Coding",
        binding=value_set_url(ACTIVITIES_SYSTEM.rsplit("/", 1)[1]),
    ),
)


def structure_definition(spec: ExtensionSpec) -> Json:
    """The StructureDefinition of one extension (a differential on Extension)."""
    value: Json = {
        "id": "Extension.value[x]",
        "path": "Extension.value[x]",
        "min": 1,
        "type": [{"code": spec.value_type}],
    }
    if spec.binding:
        value["binding"] = {"strength": "required", "valueSet": spec.binding}
    return {
        "resourceType": "StructureDefinition",
        "id": spec.id,
        "url": spec.url,
        "version": DEFINITIONS_VERSION,
        "name": spec.name,
        "title": spec.title,
        "status": "active",
        "publisher": PUBLISHER,
        "description": spec.definition,
        "fhirVersion": FHIR_VERSION,
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": c} for c in spec.contexts],
        "type": "Extension",
        "baseDefinition": EXTENSION_BASE,
        "derivation": "constraint",
        "differential": {
            "element": [
                {
                    "id": "Extension",
                    "path": "Extension",
                    "short": spec.title,
                    "definition": spec.definition,
                    "min": 0,
                    "max": spec.max,
                },
                {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
                {"id": "Extension.url", "path": "Extension.url", "fixedUri": spec.url},
                value,
            ]
        },
    }


def codesystem(code_set: CodeSet) -> Json:
    """The CodeSystem of one of the extensions' code sets."""
    return {
        "resourceType": "CodeSystem",
        "id": code_set.id,
        "url": code_set.system,
        "version": DEFINITIONS_VERSION,
        "name": code_set.name,
        "title": code_set.title,
        "status": "active",
        "experimental": False,
        "publisher": PUBLISHER,
        "description": code_set.description,
        "caseSensitive": True,
        "valueSet": value_set_url(code_set.id),
        "content": "complete",
        "count": len(code_set.concepts),
        "concept": [
            {"code": code, "display": display, "definition": definition}
            for code, display, definition in code_set.concepts
        ],
    }


def value_set(codesystem_resource: Mapping[str, Any]) -> Json:
    """The ValueSet of every code of a project CodeSystem (same id, ``/ValueSet/`` URL)."""
    cid = str(codesystem_resource["id"])
    return {
        "resourceType": "ValueSet",
        "id": cid,
        "url": value_set_url(cid),
        "version": str(codesystem_resource["version"]),
        "name": str(codesystem_resource["name"]),
        "title": f"All codes of {codesystem_resource.get('title') or cid}",
        "status": "active",
        "experimental": False,
        "publisher": PUBLISHER,
        "description": f"Every code of the CodeSystem {codesystem_resource['url']}.",
        "compose": {
            "include": [
                {
                    "system": str(codesystem_resource["url"]),
                    "version": str(codesystem_resource["version"]),
                }
            ]
        },
    }


def definitions(library_codesystems: Iterable[Mapping[str, Any]]) -> list[Json]:
    """Our StructureDefinitions, the extensions' CodeSystems, and a ValueSet per CodeSystem
    (those of the library and the extensions' own)."""
    own = [codesystem(c) for c in CODE_SETS]
    every_codesystem = [*library_codesystems, *own]
    return [
        *(structure_definition(spec) for spec in EXTENSIONS),
        *own,
        *(value_set(cs) for cs in every_codesystem),
    ]
