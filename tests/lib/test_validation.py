"""The validator reports every problem with its path; the CLI exits 1 on any. (That the wheel
ships the library: tests/test_packaging.py.)"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from attach_fhir.expressions import check_expression
from attach_fhir.validation import validate_questionnaire
from tests.lib.instrument_data import QUESTIONNAIRES, load, questionnaire

SCORES_CS = load(QUESTIONNAIRES / "codesystem-attach-scores.json")
SCORE_CODES = {c["code"] for c in SCORES_CS["concept"]}
CONSOLE_SCRIPT = Path(sys.executable).parent / "attach-fhir"


def problems(q: dict[str, Any]) -> dict[str, str]:
    """path -> message for every problem (at most one per path in these tests)."""
    return {p.path: p.message for p in validate_questionnaire(q, SCORE_CODES)}


def _model_ext_index(q: dict[str, Any]) -> int:
    return next(n for n, e in enumerate(q["extension"]) if e["url"].endswith("/scoring-model"))


def broken_ecr_r() -> dict[str, Any]:
    """ECR-R with seven independent defects."""
    q = copy.deepcopy(questionnaire("ecr-r"))
    q["status"] = "finished"
    q["item"][1]["linkId"] = "1"  # duplicate; item "2" vanishes from the model's view
    del q["item"][8]["answerOption"][2]["extension"]  # item 9 option 3 has no ordinalValue
    q["item"][20]["answerOption"][0]["valueCoding"]["code"] = "one"  # item 21: code != ordinal
    m = _model_ext_index(q)
    model = json.loads(q["extension"][m]["valueString"])
    model["scores"][1]["code"] = "ecr-r-unheard-of"
    q["extension"][m]["valueString"] = json.dumps(model)
    variables = [n for n, e in enumerate(q["extension"]) if e["url"].endswith("/variable")]
    q["extension"][variables[0]]["valueExpression"]["expression"] = "iif(%resource.item, 1"
    scores = q["item"][-1]["item"]
    scores[1]["extension"][0]["valueExpression"]["expression"] = "%later.ordinal()"
    return q


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    q = broken_ecr_r()
    m = _model_ext_index(q)
    v = next(n for n, e in enumerate(q["extension"]) if e["url"].endswith("/variable"))
    found = problems(q)
    model = f"extension[{m}].valueString.scores"
    assert set(found) == {
        "status",
        "item[1].linkId",
        f"{model}[0].items[1].linkId",
        f"{model}[0].items[8].linkId",
        f"{model}[1].items[2].linkId",
        f"{model}[1].code",
        f"{model}[1].linkId",
        f"extension[{v}].valueExpression.expression",
        "item[36].item[1].extension[0].valueExpression.expression",
    }
    assert found["item[1].linkId"] == "duplicate linkId '1' (first at item[0])"
    assert found[f"{model}[0].items[1].linkId"] == "no item has linkId '2'"
    assert "no ordinalValue" in found[f"{model}[0].items[8].linkId"]
    assert "'one' differs from its ordinalValue 1" in found[f"{model}[1].items[2].linkId"]
    assert "not in the CodeSystem" in found[f"{model}[1].code"]
    assert found[f"extension[{v}].valueExpression.expression"].startswith("FHIRPath: column")


def test_an_expression_reports_every_defect() -> None:
    q = broken_ecr_r()
    messages = [
        p.message
        for p in validate_questionnaire(q, SCORE_CODES)
        if p.path == "item[36].item[1].extension[0].valueExpression.expression"
    ]
    assert messages == [
        "FHIRPath: function ordinal() is not implemented by fhirpathpy",
        "%later is not defined before it is used",
    ]


def test_a_schema_violation_names_the_place_in_the_model() -> None:
    q = copy.deepcopy(questionnaire("rq"))
    m = _model_ext_index(q)
    model = json.loads(q["extension"][m]["valueString"])
    model["algorithm"]["version"] = "one"
    model["scores"][4]["terms"][0]["weight"] = "1"
    q["extension"][m]["valueString"] = json.dumps(model)
    found = problems(q)
    assert set(found) == {
        f"extension[{m}].valueString.algorithm.version",
        f"extension[{m}].valueString.scores[4]",
    }


def test_a_model_using_a_score_before_defining_it_is_refused() -> None:
    q = copy.deepcopy(questionnaire("rq"))
    m = _model_ext_index(q)
    model = json.loads(q["extension"][m]["valueString"])
    model["scores"] = model["scores"][4:] + model["scores"][:4]
    q["extension"][m]["valueString"] = json.dumps(model)
    messages = [
        p.message
        for p in validate_questionnaire(q, SCORE_CODES)
        if p.path == f"extension[{m}].valueString.scores[0]"
    ]
    assert messages == [
        f"uses score 'rq-{style}' before it is defined"
        for style in ("dismissing", "fearful", "preoccupied", "secure")
    ]


def test_the_library_files_have_no_problem() -> None:
    for qid in ("ecr-r", "ecr-rs", "ecr", "rq", "prfq"):
        assert problems(questionnaire(qid)) == {}, qid


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("1 +", "column 4: mismatched input '<EOF>'"),
        ("1 2", "column 3: extraneous input '2'"),
        ("answer.weight()", "function weight() is not implemented by fhirpathpy"),
    ],
)
def test_fhirpath_syntax_errors_are_caught(expression: str, problem: str) -> None:
    found, _ = check_expression(expression)
    assert found and found[0].startswith(problem)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script, run from ``cwd``."""
    assert CONSOLE_SCRIPT.exists(), CONSOLE_SCRIPT
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "questionnaires", "validate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_accepts_the_packaged_library_from_another_directory(tmp_path: Path) -> None:
    done = run_cli(cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    count = len(list(QUESTIONNAIRES.glob("*.json")))
    assert f"{count} file(s) checked, 0 problem(s)" in done.stderr


def test_cli_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text(json.dumps(broken_ecr_r()))
    (tmp_path / "not-json.json").write_text("{")
    done = run_cli("broken.json", "not-json.json", str(QUESTIONNAIRES / "rq.json"), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("not-json.json: cannot read JSON")
    assert "broken.json#item[1].linkId: duplicate linkId '1' (first at item[0])" in lines
    assert len([line for line in lines if line.startswith("broken.json#")]) == 10
    assert not [line for line in lines if "rq.json" in line]
