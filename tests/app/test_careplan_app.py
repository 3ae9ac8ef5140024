"""The care-plan rules a clinic configures (``ATTACH_CAREPLAN_RULES``) are checked at start-up,
and the app uses them; the journal is no instrument the choose page would offer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from attach_fhir.careplan_rules import InvalidCarePlanRules, shipped_rules
from attach_fhir.instruments import library
from smart_app import create_app
from smart_app import stop as stop_app

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "attach_fhir" / "data"


def rules_file(tmp_path: Path, change: dict[str, Any]) -> Path:
    data = json.loads((SHIPPED / "careplan-rules.json").read_text(encoding="utf-8"))
    data.update(change)
    path = tmp_path / "clinic-rules.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_clinics_rules_file_replaces_the_shipped_rules(tmp_path: Path) -> None:
    path = rules_file(tmp_path, {"version": "2.7.0"})
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "CAREPLAN_RULES": str(path)})
    assert app.extensions["attach_careplan"].version == "2.7.0"
    stop_app(app)
    default = create_app({"DATA_DIR": str(tmp_path / "data2")})
    assert default.extensions["attach_careplan"] is shipped_rules()
    stop_app(default)


def test_bad_rules_stop_the_app_and_name_the_key(tmp_path: Path) -> None:
    path = rules_file(tmp_path, {"horizonWeeks": 4})  # not a key of the schema's root
    with pytest.raises(InvalidCarePlanRules) as caught:
        create_app({"DATA_DIR": str(tmp_path / "data"), "CAREPLAN_RULES": str(path)})
    assert "horizonWeeks" in caught.value.description
    assert str(path) in caught.value.description


def test_the_journal_is_found_by_canonical_but_offered_as_no_instrument() -> None:
    url = "http://attach-fhir.org/fhir/Questionnaire/attachment-journal"
    assert library().questionnaire(url)["id"] == "attachment-journal"
    assert "attachment-journal" not in {i.id for i in library().instruments()}
