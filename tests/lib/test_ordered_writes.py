"""Ordered delivery of a submission whose response completes a draft: the first step is a
conditional update on the draft's identifier, the rest conditional creates, in Bundle order."""

from __future__ import annotations

import uuid
from typing import Any

from attach_fhir.writeback import ordered_creates

SYSTEM = "http://attach-fhir.org/fhir/identifier/submission"


def ident(role: str) -> str:
    """uuid5(uuid5(URL namespace, system), "<sid>/<role>") (docs/outbox.md)."""
    return str(uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, SYSTEM), f"sub-1/{role}"))


def bundle() -> dict[str, Any]:
    """By hand: the completed response as a conditional PUT, one Observation as a create."""
    qr, obs = ident("QuestionnaireResponse"), ident("rq-secure")
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{qr}",
                "resource": {"resourceType": "QuestionnaireResponse", "status": "completed"},
                "request": {
                    "method": "PUT",
                    "url": f"QuestionnaireResponse?identifier={SYSTEM}|{qr}",
                },
            },
            {
                "fullUrl": f"urn:uuid:{obs}",
                "resource": {"resourceType": "Observation", "status": "final"},
                "request": {
                    "method": "POST",
                    "url": "Observation",
                    "ifNoneExist": f"identifier={SYSTEM}|{obs}",
                },
            },
        ],
    }


def test_a_conditional_put_becomes_a_conditional_update_step() -> None:
    steps = ordered_creates(bundle())
    qr, obs = ident("QuestionnaireResponse"), ident("rq-secure")
    assert steps == [
        {
            "fullUrl": f"urn:uuid:{qr}",
            "resource": {"resourceType": "QuestionnaireResponse", "status": "completed"},
            "conditionalUrl": f"QuestionnaireResponse?identifier={SYSTEM}|{qr}",
        },
        {
            "fullUrl": f"urn:uuid:{obs}",
            "resource": {"resourceType": "Observation", "status": "final"},
            "ifNoneExist": f"identifier={SYSTEM}|{obs}",
        },
    ]


def test_the_steps_are_copies() -> None:
    source = bundle()
    steps = ordered_creates(source)
    steps[0]["resource"]["status"] = "amended"
    assert source["entry"][0]["resource"]["status"] == "completed"
