"""Canonical URLs: the project base and every URL the instruments and results are named by."""

from __future__ import annotations

BASE = "http://attach-fhir.org/fhir"

#: Score codes (``ecr-r-anxiety`` ...), file ``questionnaires/codesystem-attach-scores.json``.
SCORES_SYSTEM = f"{BASE}/CodeSystem/attach-scores"
#: Points of a 7-point agreement scale, codes ``"1"`` to ``"7"``.
AGREEMENT_7_SYSTEM = f"{BASE}/CodeSystem/agreement-7"
#: Attachment patterns (``secure``, ``fearful``, ``preoccupied``, ``dismissing``): the ECR
#: category and the RQ forced choice.
ATTACHMENT_PATTERN_SYSTEM = f"{BASE}/CodeSystem/attachment-pattern"

#: Root extension whose ``valueString`` is the scoring-model JSON (docs/scoring-model.md).
SCORING_MODEL_EXT = f"{BASE}/StructureDefinition/scoring-model"
#: Root extension, repeatable, ``valueString``: a use restriction the app must show.
USE_RESTRICTION_EXT = f"{BASE}/StructureDefinition/use-restriction"
#: Item extension, ``valueCode`` ``attach-fhir``: the item wording is ours, not the instrument's.
WORDING_SOURCE_EXT = f"{BASE}/StructureDefinition/wording-source"
#: Root extension, ``valueString``: the Questionnaire is ours and not a validated instrument; it
#: has no scoring model and yields no scores (e.g. the attachment journal).
NOT_VALIDATED_EXT = f"{BASE}/StructureDefinition/not-a-validated-instrument"
#: Root extension, repeatable, ``valueString``: an earlier version of this Questionnaire whose
#: responses this version scores identically (same scored items, answer codes, ordinal values
#: and scoring model); the library answers ``url|<that version>`` with this one.
SCORES_EARLIER_VERSION_EXT = f"{BASE}/StructureDefinition/scores-earlier-version"
#: Root extension, ``valueCode``: who answers (``self``, ``parent-caregiver``).
RESPONDENT_EXT = f"{BASE}/StructureDefinition/respondent"
#: QuestionnaireResponse extension, ``valueString``: the clinician chose to use the instrument
#: although it did not fit the patient (the fit rules' reason, as shown at the time).
USED_ALTHOUGH_NOT_FITTING_EXT = f"{BASE}/StructureDefinition/used-although-not-fitting"

ORDINAL_VALUE_EXT = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
VARIABLE_EXT = "http://hl7.org/fhir/StructureDefinition/variable"
CALCULATED_EXPRESSION_EXT = (
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
)
USAGE_CONTEXT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/usage-context-type"


def questionnaire_url(instrument_id: str) -> str:
    """The canonical URL of the Questionnaire with this id."""
    return f"{BASE}/Questionnaire/{instrument_id}"
