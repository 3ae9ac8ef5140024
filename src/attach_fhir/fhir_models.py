"""The one place the FHIR version is pinned: R4-compatible models (fhir.resources.R4B)."""

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.codesystem import CodeSystem
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.goal import Goal
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse,
    QuestionnaireResponseItem,
)
from fhir.resources.R4B.task import Task

FHIR_VERSION = "4.0.1"

__all__ = [
    "FHIR_VERSION",
    "Bundle",
    "CarePlan",
    "CodeSystem",
    "DocumentReference",
    "Goal",
    "Observation",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "QuestionnaireResponseItem",
    "Task",
]
