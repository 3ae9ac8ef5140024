"""The one place the FHIR version is pinned: R4-compatible models (fhir.resources.R4B)."""

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.auditevent import AuditEvent
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
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

FHIR_VERSION = "4.0.1"


def model_for(resource_type: Any) -> Any:
    """The model class of a FHIR resource type name, or None for a name it does not know."""
    if not isinstance(resource_type, str) or resource_type in _ABSTRACT:
        return None
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None
    # Data types (HumanName, ...) have models too; only resources are read as resources.
    return model if isinstance(model, type) and issubclass(model, Resource) else None


_ABSTRACT = frozenset({"Resource", "DomainResource"})

__all__ = [
    "FHIR_VERSION",
    "AuditEvent",
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
    "model_for",
]
