"""``attach-fhir score`` through the installed console script, run from a scratch directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from attach_fhir.canonical import questionnaire_url
from attach_fhir.instruments import library
from tests.lib.scoring_examples import cycle
from tests.lib.scoring_responses import build_response, from_answers

Json = dict[str, Any]
SCRIPT = Path(sys.executable).with_name("attach-fhir")
ALL_SEVEN = cycle(1, 36, {n: 7 for n in range(1, 37)})


def instrument(qid: str) -> Json:
    return library().questionnaire(questionnaire_url(qid))


def run(
    cwd: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), "the package must be installed (scripts/bootstrap)"
    return subprocess.run(
        [str(SCRIPT), "score", *args],
        cwd=cwd,
        input=stdin,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write(path: Path, document: object) -> str:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path.name


def test_scores_a_response_from_the_packaged_library(tmp_path: Path) -> None:
    name = write(tmp_path / "r.json", from_answers(instrument("ecr-r"), ALL_SEVEN))
    done = run(tmp_path, name)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    packaged = library().questionnaire(questionnaire_url("ecr-r"))
    assert out["questionnaire"] == f"{packaged['url']}|{packaged['version']}"
    # all 7: anxiety (16 x 7 + 2 x 1) / 18, avoidance (6 x 7 + 12 x 1) / 18 (scoring_examples)
    assert out["scores"]["ecr-r-anxiety"]["value"] == pytest.approx(114 / 18)
    assert out["scores"]["ecr-r-anxiety"]["status"] == "final"
    assert out["scores"]["ecr-r-avoidance"]["value"] == pytest.approx(3.0)


def test_an_invalid_response_exits_1_with_every_problem(tmp_path: Path) -> None:
    response = from_answers(instrument("ecr-r"), ALL_SEVEN)
    response["item"][0]["answer"][0]["valueCoding"]["code"] = "8"
    del response["item"][1]
    done = run(tmp_path, write(tmp_path / "r.json", response))
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "invalid_response"
    assert [(p["code"], p["path"]) for p in error["problems"]] == [
        ("invalid-answer", "QuestionnaireResponse.item[0].answer[0].valueCoding"),
        ("missing-required", "QuestionnaireResponse.item.where(linkId='2')"),
    ]


def test_an_unknown_questionnaire_and_unreadable_input_exit_1(tmp_path: Path) -> None:
    response = from_answers(instrument("ecr-r"), ALL_SEVEN)
    response["questionnaire"] = "http://example.org/Questionnaire/other|1"
    done = run(tmp_path, write(tmp_path / "r.json", response))
    assert (done.returncode, json.loads(done.stdout)["error"]["code"]) == (1, "unknown_instrument")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    done = run(tmp_path, "bad.json")
    assert (done.returncode, json.loads(done.stdout)["error"]["code"]) == (1, "invalid_json")


def test_questionnaire_file_and_prorate(tmp_path: Path) -> None:
    questionnaire = instrument("prfq")
    answers = cycle(1, 18, {11: 1, 18: 7})
    del answers["4"]
    response = from_answers(questionnaire, answers, status="in-progress")
    q_name = write(tmp_path / "q.json", questionnaire)
    r_name = write(tmp_path / "r.json", response)

    plain = json.loads(run(tmp_path, r_name, "--questionnaire", q_name).stdout)
    assert plain["scores"]["prfq-pre-mentalizing"]["status"] == "not-scored"
    assert plain["scores"]["prfq-pre-mentalizing"]["missing"] == ["4"]

    done = run(tmp_path, r_name, "--questionnaire", q_name, "--prorate", "--min-answered", "0.8")
    pm = json.loads(done.stdout)["scores"]["prfq-pre-mentalizing"]
    # PM items 1,7,10,13,16 answered 1,7,3,6,2 = 19 over 5 answered (5/6 = 0.83 >= 0.8)
    assert pm == {
        "value": pytest.approx(19 / 5),
        "status": "prorated",
        "prorated": True,
        "answered": 5,
        "expected": 6,
    }
    refused = run(tmp_path, r_name, "--prorate", "--min-answered", "0.9")
    assert json.loads(refused.stdout)["scores"]["prfq-pre-mentalizing"]["status"] == "not-scored"


def ndjson_lines() -> list[str]:
    ecr_r = instrument("ecr-r")
    rq = instrument("rq")
    return [
        json.dumps(from_answers(ecr_r, ALL_SEVEN)),
        "{this is not json",
        json.dumps({**from_answers(ecr_r, ALL_SEVEN), "status": "done"}),
        json.dumps(
            from_answers(rq, {"secure": "6", "fearful": "2", "preoccupied": "3", "dismissing": "5"})
        ),
    ]


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_ndjson_goes_on_past_bad_lines(tmp_path: Path, source: str) -> None:
    text = "\n".join(ndjson_lines()) + "\n"
    if source == "file":
        (tmp_path / "in.ndjson").write_text(text, encoding="utf-8")
        done = run(tmp_path, "--ndjson", "in.ndjson")
    else:
        done = run(tmp_path, "--ndjson", "-", stdin=text)
    assert done.returncode == 1  # some lines failed
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 4
    assert lines[0]["scores"]["ecr-r-anxiety"]["value"] == pytest.approx(114 / 18)
    assert lines[1]["line"] == 2
    assert lines[1]["error"]["code"] == "invalid_json"
    assert lines[2]["line"] == 3
    assert lines[2]["error"]["problems"][0]["path"] == "QuestionnaireResponse.status"
    # RQ: model of self = (6 + 5) - (2 + 3) = 6
    assert lines[3]["scores"]["rq-model-of-self"]["value"] == 6.0
    assert "done: 4 responses (2 scored, 2 errors)" in done.stderr
    assert "responses/s" in done.stderr


def test_ndjson_progress_goes_to_stderr_only(tmp_path: Path) -> None:
    line = json.dumps(from_answers(instrument("ecr-r"), ALL_SEVEN))
    (tmp_path / "in.ndjson").write_text((line + "\n") * 600, encoding="utf-8")
    done = run(tmp_path, "--ndjson", "in.ndjson", "--progress-seconds", "0")
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == 600
    assert all(json.loads(out)["scores"] for out in done.stdout.splitlines())
    progress = [x for x in done.stderr.splitlines() if x.startswith("progress: ")]
    assert len(progress) == 2  # every 256 lines: after 256 and 512
    assert done.stderr.splitlines()[-1].startswith("done: 600 responses (600 scored, 0 errors)")


# -- joining results to inputs, stable problems, error codes ----------------------------------


def test_ndjson_lines_carry_the_input_id_and_subject_or_the_line_number(tmp_path: Path) -> None:
    """Each output line names its input: id and subject (without the display, a name), and the
    line number when the input has no id, so results join to inputs without counting lines."""
    ecr_r = instrument("ecr-r")
    with_id = {
        **from_answers(ecr_r, ALL_SEVEN),
        "id": "qr-1",
        "subject": {"reference": "Patient/p-1", "display": "Jane Example"},
    }
    no_id = {**from_answers(ecr_r, ALL_SEVEN), "subject": {"reference": "Patient/p-2"}}
    bad_status = {**with_id, "id": "qr-3", "status": "done"}
    text = "\n".join([json.dumps(with_id), "", json.dumps(no_id), json.dumps(bad_status)]) + "\n"
    done = run(tmp_path, "--ndjson", "-", stdin=text)
    assert done.returncode == 1
    first, second, third = (json.loads(line) for line in done.stdout.splitlines())
    assert (first["id"], first["subject"]) == ("qr-1", {"reference": "Patient/p-1"})
    assert "line" not in first and "Jane" not in done.stdout
    assert first["scores"]["ecr-r-anxiety"]["value"] == pytest.approx(114 / 18)
    assert (second["line"], second["subject"]) == (3, {"reference": "Patient/p-2"})
    assert "id" not in second and second["scores"]["ecr-r-avoidance"]["value"] == 3.0
    assert (third["id"], third["line"], third["error"]["code"]) == ("qr-3", 4, "invalid_response")
    assert third["subject"] == {"reference": "Patient/p-1"}


def preorder(items: list[Json]) -> list[str]:
    """The Questionnaire's linkIds in document order."""
    return [link for item in items for link in [item["linkId"], *preorder(item.get("item", []))]]


def test_problems_come_in_the_questionnaires_item_order_whatever_the_hash_seed(
    tmp_path: Path,
) -> None:
    """ECR-RS with the mother and father gates answered 'no' but their items answered (18
    disabled-answered problems) and a friend item outside the options, the groups in reverse:
    the problems follow the Questionnaire, the same on every run."""
    questionnaire = instrument("ecr-rs")
    response = build_response(
        questionnaire, lambda item: True if item["type"] == "boolean" else "1"
    )
    response["item"].reverse()
    for group in response["item"]:
        gate = group["item"][0]
        if gate["linkId"] in ("mother.applies", "father.applies"):
            gate["answer"] = [{"valueBoolean": False}]
        if group["linkId"] == "friend":
            group["item"][1]["answer"][0]["valueCoding"]["code"] = "99"
    (tmp_path / "in.ndjson").write_text(json.dumps(response) + "\n", encoding="utf-8")
    order = preorder(questionnaire["item"])
    expected = [f"mother.{n}" for n in range(1, 10)] + [f"father.{n}" for n in range(1, 10)]
    expected.append("friend.1")
    assert sorted(expected, key=order.index) == expected  # the Questionnaire's own order
    seen = set()
    for seed in ("0", "1", "2", "3", "4"):
        done = run(tmp_path, "--ndjson", "in.ndjson", env={"PYTHONHASHSEED": seed})
        problems = json.loads(done.stdout)["error"]["problems"]
        named = []
        for problem in problems:
            if problem["code"] == "disabled-answered":
                named.append(problem["message"].split("'")[1])
            else:
                assert problem["code"] == "invalid-answer"
                named.append("friend.1")
        assert named == expected, seed
        seen.add(done.stdout)
    assert len(seen) == 1


def test_a_missing_file_is_not_found_rather_than_invalid_json(tmp_path: Path) -> None:
    for args in (["nowhere.json"], ["--ndjson", "nowhere.ndjson"]):
        done = run(tmp_path, *args)
        error = json.loads(done.stdout)["error"]
        assert (done.returncode, error["code"]) == (1, "file_not_found"), args
        assert "not found" in error["description"] and args[-1] in error["description"]
    name = write(tmp_path / "r.json", from_answers(instrument("ecr-r"), ALL_SEVEN))
    done = run(tmp_path, name, "--questionnaire", "no-such-q.json")
    assert json.loads(done.stdout)["error"]["code"] == "file_not_found"


@pytest.mark.parametrize(
    ("document", "what"),
    [
        ({"resourceType": "Patient", "id": "p-1"}, "a Patient"),
        ([{"resourceType": "QuestionnaireResponse"}], "a JSON array"),
        ({"questionnaire": "x", "status": "completed"}, "no resourceType"),
    ],
)
def test_anything_but_a_questionnaire_response_says_so(
    tmp_path: Path, document: object, what: str
) -> None:
    for extra in ([], ["--questionnaire", write(tmp_path / "q.json", instrument("rq"))]):
        done = run(tmp_path, write(tmp_path / "r.json", document), *extra)
        error = json.loads(done.stdout)["error"]
        assert (done.returncode, error["code"]) == (1, "not_a_questionnaire_response")
        assert "not a QuestionnaireResponse" in error["description"]
        assert what in error["description"]
        assert "names no Questionnaire" not in done.stdout
    line = run(tmp_path, "--ndjson", "-", stdin=json.dumps(document) + "\n")
    assert json.loads(line.stdout)["error"]["code"] == "not_a_questionnaire_response"
