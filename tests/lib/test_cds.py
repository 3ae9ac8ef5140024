"""CDS Hooks cards and prefetch: hand-written prefetch in, the cards a clinician should see out."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from attach_fhir.cds_cards import CardSettings, Offer, build_cards, escape_markdown
from attach_fhir.instruments import library
from attach_fhir.io.cds_prefetch import (
    PREFETCH,
    DataUnavailable,
    PatientData,
    PrefetchInvalid,
    fill,
    gather,
)

SCORES = "http://attach-fhir.org/fhir/CodeSystem/attach-scores"
Q = "http://attach-fhir.org/fhir/Questionnaire"
PID = "pat-1"
HOOK = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
TODAY = dt.date(2025, 12, 1)
SETTINGS = CardSettings(
    app_name="attach-fhir",
    launch_url="https://app.example.org/launch",
    docs_url="https://docs.example.org/cds-hooks",
)
CONTEXT = {"userId": "Practitioner/pr-1", "patientId": PID}


def obs(code: str, value: float | str, when: str, qr: str, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{qr}-{code}",
        "status": "final",
        "code": {"coding": [{"system": SCORES, "code": code}]},
        "subject": {"reference": f"Patient/{PID}"},
        "effectiveDateTime": when,
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{qr}"}],
    }
    if isinstance(value, str):
        pattern = "http://attach-fhir.org/fhir/CodeSystem/attachment-pattern"
        resource["valueCodeableConcept"] = {"coding": [{"system": pattern, "code": value}]}
    else:
        resource["valueQuantity"] = {"value": value}
    resource.update(extra)
    return resource


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def patient(birth: str = "1990-05-01") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": PID, "birthDate": birth}


def draft(qid: str, authored: str, status: str = "in-progress", rid: str = "d1") -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": rid,
        "questionnaire": f"{Q}/{qid}|1.0.0",
        "status": status,
        "subject": {"reference": f"Patient/{PID}"},
        "authored": authored,
    }


def cards_for(prefetch: dict[str, Any], settings: CardSettings = SETTINGS) -> list[dict[str, Any]]:
    data, fetched = gather(CONTEXT, prefetch, None)
    assert fetched == []
    offers = [Offer("Some instrument", "For 18+ years", ("Not for <b>individual</b> use.",))]
    return build_cards(HOOK, data, offers, settings, TODAY, library())


ECR_R_TWICE = bundle(
    # Given newest first (as _sort=-date returns them), and the older submission second.
    obs("ecr-r-anxiety", 4.166666666666667, "2025-03-01T10:00:00Z", "qr-2"),
    obs("ecr-r-avoidance", 3.0833333333333335, "2025-03-01T10:00:00Z", "qr-2"),
    obs("ecr-r-anxiety", 5.5, "2024-01-10T09:00:00Z", "qr-1"),
    obs("ecr-r-avoidance", 6.0, "2024-01-10T09:00:00Z", "qr-1"),
)


def test_prefetch_templates_follow_the_spec_token_syntax() -> None:
    assert PREFETCH == {
        "patient": "Patient/{{context.patientId}}",
        "scores": f"Observation?patient={{{{context.patientId}}}}&code={SCORES}|"
        "&_sort=-date&_count=200",
        "drafts": "QuestionnaireResponse?patient={{context.patientId}}&status=in-progress"
        "&_count=50",
    }
    assert fill(PREFETCH["patient"], {"patientId": "a b/c"}) == "Patient/a%20b%2Fc"
    with pytest.raises(PrefetchInvalid):
        fill(PREFETCH["patient"], {"encounterId": "e"})


def test_latest_ecr_r_card_states_values_and_their_meaning_without_cut_offs() -> None:
    cards = cards_for({"patient": patient(), "scores": ECR_R_TWICE, "drafts": None})
    assert [c["summary"] for c in cards] == [
        "Latest ECR-R (2025-03-01): attachment anxiety 4.17, attachment avoidance 3.08"
    ]
    card = cards[0]
    assert card["indicator"] == "info"
    assert card["source"] == {"label": "attach-fhir", "url": "https://docs.example.org/cds-hooks"}
    assert card["links"] == [
        {"label": "Review in attach-fhir", "url": "https://app.example.org/launch", "type": "smart"}
    ]
    assert card["detail"] == (
        "**Experiences in Close Relationships - Revised (ECR-R)**, completed 2025-03-01:\n"
        "\n"
        "- ECR-R attachment anxiety: **4.17** (range 1 to 7; higher = more attachment anxiety)\n"
        "- ECR-R attachment avoidance: **3.08** (range 1 to 7; higher = more attachment "
        "avoidance)\n"
        "\n"
        "Use restriction: Licence unconfirmed. Reference note: 'Treat research/clinical "
        "non-commercial use as customary but UNCONFIRMED; read the current ecrr.htm FAQ (and "
        "contact the author) before any commercial or product deployment.'\n"
        "\n"
        "No cut-off or norm is applied; open the app for the history and the meaning."
    )


def test_of_two_submissions_in_one_second_the_one_stored_last_is_the_latest() -> None:
    second = "2025-03-01T10:00:00Z"
    stored = [
        {"lastUpdated": "2025-03-01T10:00:00.900Z"},
        {"lastUpdated": "2025-03-01T10:00:00.100Z"},
    ]
    scores = bundle(
        # qr-a sorts first by name but was stored last: it is the newer submission.
        obs("ecr-r-anxiety", 2.0, second, "qr-a", meta=stored[0]),
        obs("ecr-r-avoidance", 3.0, second, "qr-a", meta=stored[0]),
        obs("ecr-r-anxiety", 6.0, second, "qr-b", meta=stored[1]),
        obs("ecr-r-avoidance", 5.0, second, "qr-b", meta=stored[1]),
    )
    cards = cards_for({"patient": patient(), "scores": scores, "drafts": None})
    assert [c["summary"] for c in cards] == [
        "Latest ECR-R (2025-03-01): attachment anxiety 2.00, attachment avoidance 3.00"
    ]


def test_observations_of_other_patients_or_not_final_are_left_out() -> None:
    other = obs("ecr-r-anxiety", 1.0, "2025-06-01T00:00:00Z", "qr-9")
    other["subject"] = {"reference": "Patient/someone-else"}
    wrong = obs("ecr-r-anxiety", 2.0, "2025-07-01T00:00:00Z", "qr-8", status="entered-in-error")
    scores = bundle(other, wrong, *(e["resource"] for e in ECR_R_TWICE["entry"]))
    cards = cards_for({"patient": patient(), "scores": scores, "drafts": None})
    assert cards[0]["summary"].endswith("attachment anxiety 4.17, attachment avoidance 3.08")


def test_no_scores_gives_the_never_done_card_with_what_the_app_offers() -> None:
    cards = cards_for({"patient": patient(), "scores": None, "drafts": bundle()})
    assert len(cards) == 1
    assert cards[0]["summary"] == "No attachment assessment on record"
    assert cards[0]["links"][0]["label"] == "Start an assessment in attach-fhir"
    assert cards[0]["detail"] == (
        "No score from an attachment instrument is recorded for this patient.\n\n"
        "attach-fhir offers this patient:\n- Some instrument: For 18+ years\n"
        "  - Use restriction: Not for \\<b\\>individual\\</b\\> use."
    )


def test_a_draft_of_ours_gets_a_card_and_others_do_not() -> None:
    drafts = bundle(
        draft("ecr-r", "2025-04-02T08:00:00Z", rid="d1"),
        draft("ecr-r", "2025-04-03T08:00:00Z", status="completed", rid="d2"),
        {**draft("ecr-r", "2025-04-04T08:00:00Z", rid="d3"), "questionnaire": "http://x/Q/1"},
    )
    cards = cards_for({"patient": patient(), "scores": ECR_R_TWICE, "drafts": drafts})
    assert [c["summary"] for c in cards][1:] == ["Unfinished ECR-R saved 2025-04-02"]
    assert cards[1]["detail"] == (
        "An unfinished Experiences in Close Relationships - Revised (ECR-R) for this patient "
        "was saved 2025-04-02. Open attach-fhir to resume it."
    )


def test_reassessment_due_only_with_a_local_interval() -> None:
    local = CardSettings(SETTINGS.app_name, SETTINGS.launch_url, None, reassess_after_days=180)
    cards = cards_for({"patient": patient(), "scores": ECR_R_TWICE, "drafts": None}, local)
    # 2025-03-01 to 2025-12-01: 30 + 30 + 31 + 30 + 31 + 31 + 30 + 31 + 30 + 1 = 275 days.
    assert cards[1]["summary"] == "ECR-R reassessment due: last completed 275 days ago"
    assert "source" in cards[1] and "url" not in cards[1]["source"]
    later = CardSettings(SETTINGS.app_name, SETTINGS.launch_url, None, reassess_after_days=275)
    assert len(cards_for({"patient": patient(), "scores": ECR_R_TWICE}, later)) == 1


def test_many_scores_keep_the_summary_under_140_characters() -> None:
    targets = ("mother", "father", "partner", "friend")
    rs = [
        obs(f"ecr-rs-{t}-{d}", 2.5, "2025-05-05T00:00:00Z", "qr-rs")
        for t in targets
        for d in ("avoidance", "anxiety")
    ]
    category = [
        obs("ecr-anxiety", 5.0, "2025-01-01T00:00:00Z", "qr-e"),
        obs("ecr-avoidance", 4.0, "2025-01-01T00:00:00Z", "qr-e"),
        obs("ecr-category", "fearful", "2025-01-01T00:00:00Z", "qr-e"),
    ]
    cards = cards_for({"patient": patient(), "scores": bundle(*rs, *category)})
    assert [c["summary"] for c in cards] == [
        "Latest ECR-RS (2025-05-05): 8 scores, see the details",
        "Latest ECR (2025-01-01): attachment anxiety 5.00, attachment avoidance 4.00, "
        "attachment category Fearful",
    ]
    assert all(len(c["summary"]) < 140 for c in cards)
    assert "- ECR attachment category: **Fearful**\n" in cards[1]["detail"]


def test_card_uuids_are_deterministic_and_distinct() -> None:
    prefetch = {"patient": patient(), "scores": ECR_R_TWICE, "drafts": bundle(draft("rq", "2025"))}
    first, again = cards_for(prefetch), cards_for(prefetch)
    ids = [c["uuid"] for c in first]
    assert ids == [c["uuid"] for c in again]
    assert len(set(ids)) == len(ids) == 2
    assert all(uuid.UUID(i).version == 5 for i in ids)
    data, _ = gather(CONTEXT, prefetch, None)
    other = build_cards(str(uuid.uuid4()), data, [], SETTINGS, TODAY, library())
    assert not {c["uuid"] for c in other} & set(ids)


@pytest.mark.parametrize(
    ("prefetch", "message"),
    [
        ({"patient": {"resourceType": "Patient", "id": "other"}}, "another patient"),
        ({"patient": {"resourceType": "Practitioner", "id": PID}}, "not a Patient"),
        ({"scores": {"resourceType": "Observation"}}, "not a searchset Bundle"),
        ({"scores": {"resourceType": "Bundle", "type": "transaction"}}, "type 'transaction'"),
        ({"scores": bundle({"resourceType": "Condition"})}, "holds a Condition"),
    ],
)
def test_prefetch_that_does_not_answer_its_template_is_refused(
    prefetch: dict[str, Any], message: str
) -> None:
    full = {"patient": patient(), "scores": None, "drafts": None} | prefetch
    with pytest.raises(PrefetchInvalid) as caught:
        gather(CONTEXT, full, None)
    assert message in caught.value.description


def test_missing_scores_without_a_fhir_server_is_a_412() -> None:
    with pytest.raises(DataUnavailable) as caught:
        gather(CONTEXT, {"patient": patient()}, None)
    assert caught.value.status_code == 412
    data, _ = gather(CONTEXT, {"scores": None}, None)
    assert data == PatientData(patient=None, observations=[], drafts=None)


def test_markdown_from_elsewhere_is_inert() -> None:
    assert escape_markdown("a*b_[x](y)<img>|~`&") == r"a\*b\_\[x\](y)\<img\>\|\~\`\&"
