"""A clinician's review of scores a patient submitted themselves (pure).

A patient's own submission writes its score Observations as ``preliminary`` (the assessment
write-back's ``observation_status``): nobody has reviewed them yet, and goals are not judged on
them. When the clinician has looked at them, each becomes ``final`` by an update with
``If-Match``, and a Provenance names the clinician as the author of that change.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from attach_fhir.careplan_writeback import (
    PlanContext,
    update_entry,
    version_of,
    without_version,
)
from attach_fhir.writeback import SUBMISSION_SYSTEM, create_entry, provenance_resource, validate

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, f"{SUBMISSION_SYSTEM}/review")


def confirmation_transaction(
    observations: Iterable[Mapping[str, Any]], ctx: PlanContext
) -> dict[str, Any] | None:
    """Each ``preliminary`` Observation made ``final``; ``None`` when there is none."""
    entries = []
    for obs in observations:
        if obs.get("status") != "preliminary":
            continue
        final = copy.deepcopy(without_version(obs))
        final["status"] = "final"
        entries.append(update_entry(final, version_of(obs), ctx.base_url))
    if not entries:
        return None
    targets = [e["request"]["url"] for e in entries]
    value = str(uuid.uuid5(_NAMESPACE, f"{ctx.clinician}/{','.join(sorted(targets))}"))
    provenance = provenance_resource(
        ctx.writeback(), targets, tag=(SUBMISSION_SYSTEM, value), activity="UPDATE"
    )
    entries.append(create_entry(provenance, SUBMISSION_SYSTEM, value))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    validate(bundle)
    return bundle
