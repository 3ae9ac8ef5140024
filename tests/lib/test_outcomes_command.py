"""``attach-fhir outcomes --ndjson`` as a user runs it: files in, report and rows out."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import subprocess
import sys
from pathlib import Path

from tests.lib.test_outcomes import population


def run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "attach_fhir.cli", "outcomes", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def inputs(tmp_path: Path) -> list[str]:
    resources = [json.dumps(r) for r in population()]
    half = len(resources) // 2
    first, second = tmp_path / "part-1.ndjson", tmp_path / "part-2.ndjson"
    first.write_text("\n".join(resources[:half]) + "\n{not json\n\n", encoding="utf-8")
    second.write_text("\n".join(resources[half:]) + "\n", encoding="utf-8")
    return [str(first), str(second)]


def test_de_identified_report_and_rows_from_ndjson(tmp_path: Path) -> None:
    key = tmp_path / "pseudonym.key"
    key.write_bytes(b"clinic secret\n")
    out = tmp_path / "report"
    args = ["--ndjson", *inputs(tmp_path), "--out", str(out), "--as-of", "2026-04-01"]
    result = run(*args, "--pseudonym-key-file", str(key))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["patients"] == 7  # A-G
    assert summary["left_aside"] == {
        "QuestionnaireResponse not completed": 1,
        "line that is not JSON": 1,
        "not a resource": 1,
    }
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Patient/" not in page and " src=" not in page and "<link" not in page
    rows = list(csv.DictReader(io.StringIO((out / "patients.csv").read_text(encoding="utf-8"))))
    expected = hmac.new(b"clinic secret", b"Patient/D", hashlib.sha256).hexdigest()[:16]
    (d,) = [r for r in rows if r["patient"] == expected]
    assert (d["first_value"], d["latest_value"], d["assessments"]) == ("6.0", "4.0", "3")
    lines = (out / "patients.ndjson").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["patient"] for line in lines] == [r["patient"] for r in rows]

    again = run(
        *args[:-4],
        "--out",
        str(tmp_path / "again"),
        "--as-of",
        "2026-04-01",
        "--pseudonym-key-file",
        str(key),
    )
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "patients.csv").read_text() == (out / "patients.csv").read_text()


def test_identified_rows_name_the_patient(tmp_path: Path) -> None:
    out = tmp_path / "identified"
    result = run("--ndjson", *inputs(tmp_path), "--out", str(out), "--identified")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO((out / "patients.csv").read_text(encoding="utf-8"))))
    assert {r["patient"] for r in rows} == {f"Patient/{p}" for p in "ABCDEFG"}


def test_a_missing_file_is_said_plainly(tmp_path: Path) -> None:
    result = run("--ndjson", str(tmp_path / "nope.ndjson"), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "No such file" in result.stderr and "Traceback" not in result.stderr
