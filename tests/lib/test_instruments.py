"""The packaged instrument library: look-ups by canonical and the summaries the app shows."""

from __future__ import annotations

import pytest

from attach_fhir.instruments import Library, UnknownInstrument, library, read_packaged
from tests.lib.instrument_data import QUESTIONNAIRES, SOURCES, load, questionnaire, shared

BASE = "http://attach-fhir.org/fhir/Questionnaire"


def test_the_package_holds_exactly_the_files_of_questionnaires() -> None:
    packaged = read_packaged()
    assert sorted(packaged) == sorted(p.name for p in QUESTIONNAIRES.glob("*.json"))
    assert packaged["rq.json"] == load(QUESTIONNAIRES / "rq.json")


def test_lookup_by_url_and_by_url_and_version() -> None:
    lib = library()
    assert lib.questionnaire(f"{BASE}/ecr-r")["id"] == "ecr-r"
    assert lib.questionnaire(f"{BASE}/prfq|1.1.0")["id"] == "prfq"
    with pytest.raises(UnknownInstrument) as caught:
        lib.questionnaire(f"{BASE}/prfq|9.9.9")
    assert caught.value.to_dict()["canonical"] == f"{BASE}/prfq|9.9.9"
    with pytest.raises(UnknownInstrument):
        lib.questionnaire(f"{BASE}/ecr-s")


def test_without_a_version_the_newest_wins() -> None:
    old = questionnaire("rq") | {"version": "1.0.0", "title": "old"}
    new = questionnaire("rq") | {"version": "1.10.0", "title": "new"}
    lib = Library({"a.json": new, "b.json": old})
    assert lib.questionnaire(f"{BASE}/rq")["title"] == "new"
    assert lib.questionnaire(f"{BASE}/rq|1.0.0")["title"] == "old"


def test_instrument_summaries() -> None:
    found = {i.id: i for i in library().instruments()}
    assert sorted(found) == ["ecr", "ecr-r", "ecr-rs", "prfq", "rq"]
    # Item counts of the instruments themselves: 36, 9 per target x 4, 36, 4 prototypes, 18.
    counts = {qid: i.item_count for qid, i in found.items()}
    assert counts == {"ecr-r": 36, "ecr-rs": 36, "ecr": 36, "rq": 4, "prfq": 18}
    assert found["ecr-r"].age_range == "18+ years"
    assert found["prfq"].respondent == "parent-caregiver"
    assert found["rq"].respondent == "self"
    assert found["ecr-r"].score_codes == ("ecr-r-anxiety", "ecr-r-avoidance")
    assert found["ecr"].score_codes[-1] == "ecr-category"


def test_rq_carries_the_authors_use_restrictions() -> None:
    rq = next(i for i in library().instruments() if i.id == "rq")
    assert len(rq.restrictions) == 2
    assert "not appropriate for use in individual assessments" in rq.restrictions[0]
    assert "You cannot use these measures for commercial purposes." in rq.restrictions[1]


@pytest.mark.parametrize("qid", sorted(SOURCES))
def test_citation_and_licence_status_are_the_recorded_ones(qid: str) -> None:
    data = shared(qid)
    summary = next(i for i in library().instruments() if i.id == qid)
    assert summary.citation == data["citation"]
    assert summary.licence_status == data["license_note"]["confidence"]
    assert summary.licence_note == data["license_note"]["text"]
    assert summary.restrictions  # every instrument's licence is at best single source


def test_score_codes_have_displays() -> None:
    codes = library().score_codes()
    assert codes["rq-model-of-self"]["display"] == "RQ model of self"
    assert len(codes) == 22
