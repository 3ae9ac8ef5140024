"""Values derived once from frozen (packaged) Questionnaires, and never from anything else."""

from __future__ import annotations

import copy
import json
from typing import Any

from attach_fhir.canonical import SCORING_MODEL_EXT
from attach_fhir.frozen import derived, freeze, is_frozen
from attach_fhir.instruments import library
from attach_fhir.scoring_model import compile_model

ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r|1.0.0"


def counter() -> tuple[list[int], Any]:
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    return calls, compute


def test_a_frozen_object_is_computed_once_and_an_equal_copy_every_time() -> None:
    frozen = {"id": "x"}
    freeze(frozen)
    calls, compute = counter()
    assert [derived(frozen, "n", compute) for _ in range(3)] == [1, 1, 1]
    twin = dict(frozen)  # equal, but not declared unchanging
    assert not is_frozen(twin)
    assert [derived(twin, "n", compute) for _ in range(2)] == [2, 3]
    assert len(calls) == 3


def test_the_packaged_library_is_frozen_and_its_model_compiled_once() -> None:
    packaged = library().questionnaire(ECR_R)
    assert is_frozen(packaged)
    assert compile_model(packaged) is compile_model(packaged)


def test_an_edited_copy_of_a_packaged_questionnaire_gets_its_own_model() -> None:
    packaged = library().questionnaire(ECR_R)
    edited = copy.deepcopy(packaged)
    ext = next(e for e in edited["extension"] if e["url"] == SCORING_MODEL_EXT)
    document = json.loads(ext["valueString"])
    document["algorithm"]["version"] = "9.9.9"
    ext["valueString"] = json.dumps(document)
    assert compile_model(edited).algorithm_version == "9.9.9"
    assert compile_model(packaged).algorithm_version == "1.0.0"  # the file's own version
