"""Which instruments fit a patient, by the shipped fit rules, worked out by hand for fixed days.

Every date is written out: ages are counted by hand from the birth date to ``TODAY`` (the
injected day), never from the calendar. Ranges come from /work/shared/instruments: the PRFQ is
validated for children 0-3 (Luyten et al. 2017) and was used with 42-60 months (Anis et al.
2020) and 0-12 years (De Roo et al. 2019); the ECR-R, ECR and RQ are for adults; the ECR-RS was
validated with adults, its author writes the items suit a variety of age groups.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from attach_fhir.instrument_fit import (
    InvalidFitRules,
    PatientFacts,
    age_in,
    fit,
    hidden_sections,
    load_rules,
    parse_rules,
    shipped_rules,
    without_items,
    without_sections,
)
from attach_fhir.instruments import library

TODAY = date(2026, 3, 15)
FOUR = "2021-09-10"  # 4 years on TODAY (5th birthday 2026-09-10); 54 months
NINE = "2016-11-02"  # 9 years (10th birthday 2026-11-02); 112 months
FIFTEEN = "2010-07-20"  # 15 years (16th birthday 2026-07-20)
ADULT = "1996-05-01"  # 29 years (30th birthday 2026-05-01)
SELF_REPORT = ("ecr-r", "ecr", "rq", "ecr-rs")


def level(instrument: str, birth: str | None, children: tuple[str, ...] | None = ()) -> str:
    return fit(shipped_rules(), instrument, PatientFacts(birth, children), TODAY).level


def shipped_document() -> dict[str, Any]:
    path = Path(__file__).resolve().parents[2] / "src/attach_fhir/data/fit-rules.json"
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def test_ages_in_completed_years_and_months() -> None:
    assert age_in(date(2021, 9, 10), TODAY, "years") == 4
    assert age_in(date(2021, 9, 10), TODAY, "months") == 54  # Sep 2021 -> Mar 2026, day 15 >= 10
    assert age_in(date(2021, 3, 16), TODAY, "months") == 59  # one day short of 60
    assert age_in(date(2021, 3, 15), TODAY, "months") == 60


def test_a_four_year_old_fits_no_self_report_and_may_fit_the_prfq() -> None:
    for instrument in SELF_REPORT:
        verdict = fit(shipped_rules(), instrument, PatientFacts(FOUR, ()), TODAY)
        assert verdict.level == "no"
        assert "the patient is 4, under the reading age of 12" in verdict.reason
    prfq = fit(shipped_rules(), "prfq", PatientFacts(FOUR, ()), TODAY)
    # validated 0-3: a 4-year-old does not "fit"; 54 months is inside Anis et al.'s 42-60
    # months and De Roo et al.'s 0-12 years, so it may fit, naming both
    assert prfq.level == "may-fit"
    assert prfq.respondent == "caregiver"
    assert "Anis et al. 2020" in prfq.reason and "De Roo et al. 2019" in prfq.reason
    assert "Luyten et al. 2017" in prfq.reason and "The child is 4." in prfq.reason


def test_a_nine_year_old_is_under_the_reading_age_and_may_fit_the_prfq_by_de_roo_only() -> None:
    assert [level(i, NINE) for i in SELF_REPORT] == ["no", "no", "no", "no"]
    prfq = fit(shipped_rules(), "prfq", PatientFacts(NINE, ()), TODAY)
    assert prfq.level == "may-fit"
    assert "De Roo et al. 2019" in prfq.reason
    assert "Anis" not in prfq.reason  # 112 months is beyond 42-60


def test_a_fifteen_year_old_may_fit_the_ecr_rs_only() -> None:
    verdict = fit(shipped_rules(), "ecr-rs", PatientFacts(FIFTEEN, ()), TODAY)
    assert verdict.level == "may-fit"
    assert "Validated for 18+ years (Fraley et al. 2011" in verdict.reason
    assert "variety of age groups" in verdict.reason and "The patient is 15." in verdict.reason
    assert [level(i, FIFTEEN) for i in ("ecr-r", "ecr", "rq", "prfq")] == ["no"] * 4


def test_an_adult_fits_the_adult_instruments() -> None:
    assert [level(i, ADULT) for i in SELF_REPORT] == ["fits"] * 4
    reason = fit(shipped_rules(), "ecr-r", PatientFacts(ADULT, ()), TODAY).reason
    assert reason.endswith("the patient is 29.")


def test_the_prfq_for_an_adult_follows_the_children_on_record() -> None:
    assert level("prfq", ADULT, ()) == "no"  # no child on record
    assert level("prfq", ADULT, None) == "unknown"  # the children could not be read
    parent = fit(shipped_rules(), "prfq", PatientFacts(ADULT, ("2024-01-01",)), TODAY)
    assert parent.level == "fits"  # the child is 2
    assert parent.respondent == "patient"  # the patient answers, about their child
    assert level("prfq", ADULT, (NINE,)) == "may-fit"
    assert level("prfq", ADULT, (FIFTEEN, "2024-01-01")) == "fits"  # the best child counts


def test_the_prfq_fits_up_to_the_day_before_the_fourth_birthday() -> None:
    assert level("prfq", "2022-03-16") == "fits"  # 3 until 2026-03-16
    assert level("prfq", "2022-03-15") == "may-fit"  # 4 today


def test_an_unknown_or_imprecise_age_cannot_tell() -> None:
    assert level("ecr-r", None) == "unknown"
    assert level("ecr-r", "2008") == "unknown"  # born in 2008: 17 or 18 on TODAY
    assert level("ecr-r", "2000") == "fits"  # 25 or 26: adult either way
    assert level("ecr-r", "1996-05") == "fits"


def test_sections_that_do_not_apply_are_hidden_for_a_child() -> None:
    rules = shipped_rules()
    hidden = hidden_sections(rules, "ecr-rs", PatientFacts(NINE), TODAY)
    assert [(s.link_id, s.label) for s in hidden] == [("partner", "romantic partner")]
    assert hidden_sections(rules, "ecr-rs", PatientFacts(FIFTEEN), TODAY) == ()
    assert hidden_sections(rules, "ecr-rs", PatientFacts(None), TODAY) == ()  # cannot tell
    assert hidden_sections(rules, "ecr-r", PatientFacts(NINE), TODAY) == ()


def test_without_items_drops_a_section_and_leaves_the_questionnaire_alone() -> None:
    q = library().questionnaire("http://attach-fhir.org/fhir/Questionnaire/ecr-rs")
    trimmed = without_items(q, ["partner"])
    top = [i["linkId"] for i in q["item"]]
    assert "partner" in top  # the library's copy is not changed
    assert [i["linkId"] for i in trimmed["item"]] == [t for t in top if t != "partner"]


def test_without_sections_also_drops_the_scores_about_them() -> None:
    q = library().questionnaire("http://attach-fhir.org/fhir/Questionnaire/ecr-rs")
    (partner,) = shipped_rules().instruments["ecr-rs"].sections
    trimmed = without_sections(q, [partner])
    scores = next(i for i in trimmed["item"] if i["linkId"] == "scores")
    assert [i["linkId"].removeprefix("scores.ecr-rs-") for i in scores["item"]] == [
        "mother-avoidance",
        "mother-anxiety",
        "father-avoidance",
        "father-anxiety",
        "friend-avoidance",
        "friend-anxiety",
    ]


def test_a_clinic_sets_its_own_reading_age(tmp_path: Path) -> None:
    document = shipped_document()
    document["readingAge"]["years"] = 8
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    rules = load_rules(path)
    verdict = fit(rules, "ecr-rs", PatientFacts(NINE, ()), TODAY)
    assert verdict.level == "may-fit"  # 9 is over 8: the author's "variety of age groups"
    assert fit(rules, "ecr-r", PatientFacts(NINE, ()), TODAY).level == "no"  # still 18+


def test_bad_rules_name_every_bad_key(tmp_path: Path) -> None:
    document = shipped_document()
    del document["readingAge"]
    document["instruments"]["prfq"]["validated"]["unit"] = "weeks"
    with pytest.raises(InvalidFitRules) as caught:
        parse_rules(document, "clinic.json")
    assert caught.value.problems == [
        "(root): 'readingAge' is a required property",
        "instruments/prfq/validated/unit: 'weeks' is not one of ['years', 'months']",
    ]
    document = shipped_document()
    document["instruments"]["prfq"]["usedBeyond"][0]["min"] = 70
    with pytest.raises(InvalidFitRules) as caught:
        parse_rules(document)
    assert caught.value.problems == ["instruments/prfq/usedBeyond/0: min 70 > max 60"]
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(InvalidFitRules, match="cannot be read as JSON"):
        load_rules(bad)


def test_every_packaged_instrument_has_a_rule_and_its_visible_restriction_exists() -> None:
    rules = shipped_rules()
    for inst in library().instruments():
        rule = rules.instruments[inst.id]
        key, other = rule.splits(inst.restrictions)
        if rule.visible_restriction:
            assert len(key) == 1, inst.id  # the words match one restriction of the Questionnaire
        assert set(key) | set(other) == set(inst.restrictions)
    rq = rules.instruments["rq"].splits(library().instruments()[-1].restrictions)
    assert library().instruments()[-1].id == "rq"
    assert "not appropriate for use in individual assessments" in rq[0][0]
    assert "commercial purposes" in rq[1][0]  # a licence note: one click away
