"""Care-plan write-back: approval, revision with If-Match, goal re-assessment, the clinician's
edits, the plan diff, journal entries and assignments.

Numbers by hand: shipped rules move an ECR-R anxiety baseline of 5.5 a quarter of the way to
the favourable end 1 (5.5 - 0.25 * 4.5 = 4.375), rounded down to 4.37, due 24 weeks after
6 January 2025 (23 June 2025). Identifiers are computed here with ``uuid.uuid5`` from the
documented names, not by calling the code under test.
"""

from __future__ import annotations

import copy
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from attach_fhir.assignments import (
    Assignment,
    assignments,
    journal_activity,
    last_done,
    plan_activities,
)
from attach_fhir.careplan_diff import plan_changes
from attach_fhir.careplan_edit import InvalidPlanEdit, WorkingPlan, add_goal, apply_form
from attach_fhir.careplan_fhir import PlanResources, build_resources
from attach_fhir.careplan_proposal import ProposalInputs, propose
from attach_fhir.careplan_writeback import (
    ObservedScore,
    PlanContext,
    approval_transaction,
    latest_scores,
    reassessment_transaction,
    revision_transaction,
)
from attach_fhir.goal_target import ReliableChange, ScoreScale
from attach_fhir.instruments import library
from attach_fhir.journal import CAREPLAN_ACTIVITY_EXT, journal_transaction
from attach_fhir.result_review import confirmation_transaction
from attach_fhir.scoring import score_response
from attach_fhir.writeback import WritebackContext, build_transaction

CAREPLAN_SYSTEM = "http://attach-fhir.org/fhir/identifier/careplan"
SUBMISSION_SYSTEM = "http://attach-fhir.org/fhir/identifier/submission"
SCORES = "http://attach-fhir.org/fhir/CodeSystem/attach-scores"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r|1.0.0"
AGREEMENT = "http://attach-fhir.org/fhir/CodeSystem/agreement-7"
PLAN_ID = "0b5a8a52-1d44-4b0e-9d3c-6f1d2a3b4c5d"
GOAL_ID = str(uuid.uuid5(uuid.UUID(PLAN_ID), "goal/ecr-r-anxiety"))
NS = uuid.uuid5(uuid.NAMESPACE_URL, CAREPLAN_SYSTEM)
BASE = "http://fhir.example/r4"
SCALE = ScoreScale("ecr-r-anxiety", 1, 7, "lower", "ECR-R attachment anxiety", ECR_R)
CTX = PlanContext(
    plan_id=PLAN_ID,
    patient="Patient/pt1",
    clinician="Practitioner/p1",
    recorded="2025-01-06T10:00:00Z",
    base_url=BASE,
    encounter="Encounter/e1",
)


def draft() -> WorkingPlan:
    proposal = propose(
        ProposalInputs(
            scores={"ecr-r-anxiety": {"value": 5.5, "observation": "Observation/a1"}},
            scales={"ecr-r-anxiety": SCALE},
            start_date=date(2025, 1, 6),
            birth_date="1990-04-02",
            clinician="Practitioner/p1",
        )
    )
    built = build_resources(proposal, plan_id=PLAN_ID, subject="Patient/pt1")
    return WorkingPlan(built.careplan, dict(built.goals))


def resources(plan: WorkingPlan) -> PlanResources:
    return PlanResources(f"urn:uuid:{PLAN_ID}", plan.careplan, tuple(plan.goals.items()))


def form_for(plan: WorkingPlan, **changes: str) -> dict[str, str]:
    """The form as the page posts it, unchanged except for ``changes``."""
    form = {}
    for n, (key, goal) in enumerate(plan.goals.items()):
        form[f"goal-{n}-key"] = key
        form[f"goal-{n}-description"] = goal["description"]["text"]
        form[f"goal-{n}-target"] = str(goal["target"][0]["detailRange"]["high"]["value"])
        form[f"goal-{n}-due"] = goal["target"][0]["dueDate"]
    for n, activity in enumerate(plan.careplan["activity"]):
        form[f"activity-{n}-description"] = activity["detail"]["description"]
        form[f"activity-{n}-status"] = activity["detail"]["status"]
    form.update({k.replace("_", "-"): v for k, v in changes.items()})
    return form


# -- approval ---------------------------------------------------------------------------------


def test_approval_writes_active_goals_the_active_plan_and_a_provenance() -> None:
    bundle = approval_transaction(resources(draft()), CTX, ["QuestionnaireResponse/q1"])
    goal, plan, provenance = (e["resource"] for e in bundle["entry"])
    requests = [e["request"] for e in bundle["entry"]]
    prov_id = str(uuid.uuid5(NS, f"{PLAN_ID}/approval"))
    assert requests == [
        {"method": "POST", "url": "Goal", "ifNoneExist": f"identifier={CAREPLAN_SYSTEM}|{GOAL_ID}"},
        {
            "method": "POST",
            "url": "CarePlan",
            "ifNoneExist": f"identifier={CAREPLAN_SYSTEM}|{PLAN_ID}",
        },
        {"method": "POST", "url": "Provenance", "ifNoneExist": f"_tag={CAREPLAN_SYSTEM}|{prov_id}"},
    ]
    assert [e["fullUrl"] for e in bundle["entry"]] == [
        f"urn:uuid:{GOAL_ID}",
        f"urn:uuid:{PLAN_ID}",
        f"urn:uuid:{prov_id}",
    ]
    assert goal["lifecycleStatus"] == "active"
    assert goal["expressedBy"] == {"reference": "Practitioner/p1"}
    assert goal["target"][0]["detailRange"]["high"]["value"] == 4.37
    assert goal["target"][0]["dueDate"] == "2025-06-23"
    assert (plan["status"], plan["intent"]) == ("active", "plan")
    assert plan["subject"] == {"reference": "Patient/pt1"}
    assert plan["encounter"] == {"reference": "Encounter/e1"}
    assert plan["author"] == {"reference": "Practitioner/p1"}
    assert plan["period"] == {"start": "2025-01-06", "end": "2025-06-23"}
    assert plan["goal"] == [{"reference": f"urn:uuid:{GOAL_ID}"}]
    # The proposal's baseline Observation first, then the QR the plan was made from.
    assert plan["supportingInfo"] == [
        {"reference": "Observation/a1"},
        {"reference": "QuestionnaireResponse/q1"},
    ]
    codes = [a["detail"]["code"]["coding"][0]["code"] for a in plan["activity"]]
    assert codes == [
        "attachment-psychoeducation",
        "attachment-reassessment",
        "mindfulness-practice",
        "attachment-journaling",
    ]
    assert provenance["target"] == [
        {"reference": f"urn:uuid:{GOAL_ID}"},
        {"reference": f"urn:uuid:{PLAN_ID}"},
    ]
    assert provenance["activity"]["coding"][0]["code"] == "CREATE"
    assert [(a["type"]["coding"][0]["code"], a["who"]) for a in provenance["agent"]] == [
        ("author", {"reference": "Practitioner/p1"}),
        ("assembler", {"display": "attach-fhir"}),
    ]


def test_approval_is_rebuilt_identically_for_a_retry_and_leaves_the_draft_alone() -> None:
    plan = draft()
    before = copy.deepcopy(plan.to_json())
    first = approval_transaction(resources(plan), CTX)
    assert approval_transaction(resources(plan), CTX) == first
    assert plan.to_json() == before
    assert plan.careplan["status"] == "draft"


# -- the clinician's edits ----------------------------------------------------------------------


def test_edits_change_the_target_and_remove_an_activity() -> None:
    plan = draft()
    form = form_for(plan, goal_0_target="4.0", goal_0_due="2025-05-01", activity_2_remove="1")
    form["goal-0-description"] = "Feel less worried about being left"
    edited = apply_form(plan, form)
    goal = edited.goals[f"urn:uuid:{GOAL_ID}"]
    assert goal["description"] == {"text": "Feel less worried about being left"}
    assert goal["target"][0]["detailRange"] == {
        "low": {"value": 1.0, "unit": "score", "system": "http://unitsofmeasure.org",
                "code": "{score}"},
        "high": {"value": 4.0, "unit": "score", "system": "http://unitsofmeasure.org",
                 "code": "{score}"},
    }  # fmt: skip
    assert goal["target"][0]["dueDate"] == "2025-05-01"
    codes = [a["detail"]["code"]["coding"][0]["code"] for a in edited.careplan["activity"]]
    assert "mindfulness-practice" not in codes and len(codes) == 3


def test_every_bad_edit_is_reported_at_once() -> None:
    plan = draft()
    form = form_for(plan, goal_0_target="6", activity_0_status="maybe")
    form["activity-1-description"] = "  "
    with pytest.raises(InvalidPlanEdit) as caught:
        apply_form(plan, form)
    assert caught.value.errors == {
        # Lower is favourable: between the scale's end 1 and the baseline 5.5.
        "goal-0-target": "Enter a target at least 1.0 and at most 5.5 (the baseline is 5.5)",
        "activity-0-status": "Choose one of the listed statuses",
        "activity-1-description": "Describe the activity",
    }


def test_removing_the_goal_unlinks_it_from_the_activities() -> None:
    plan = draft()
    edited = apply_form(plan, form_for(plan, goal_0_remove="1"))
    assert edited.goals == {}
    assert "goal" not in edited.careplan
    assert all("goal" not in a["detail"] for a in edited.careplan["activity"])


def test_a_goal_added_by_the_clinician_carries_their_target() -> None:
    plan = draft()
    new_id = uuid.UUID("11111111-2222-4333-8444-555555555555")
    scale = ScoreScale("ecr-r-avoidance", 1, 7, "lower", "ECR-R avoidance", ECR_R)
    key = add_goal(
        plan,
        scale=scale,
        baseline=3.0,
        target=Decimal("2.5"),
        due=date(2025, 6, 1),
        start=date(2025, 1, 6),
        subject="Patient/pt1",
        clinician="Practitioner/p1",
        identifier=new_id,
    )
    assert key == f"urn:uuid:{new_id}"
    goal = plan.goals[key]
    assert goal["target"][0]["detailRange"]["low"]["value"] == 1.0
    assert goal["target"][0]["detailRange"]["high"]["value"] == 2.5
    assert plan.careplan["goal"][-1] == {"reference": key}
    with pytest.raises(InvalidPlanEdit):
        add_goal(plan, scale=scale, baseline=3.0, target=Decimal("8"), due=date(2025, 6, 1),
                 start=date(2025, 1, 6), subject="Patient/pt1", clinician=None,
                 identifier=uuid.uuid4())  # fmt: skip


# -- revision -----------------------------------------------------------------------------------


def server_copy() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The approved plan as a server returns it: ids, versions, references resolved."""
    bundle = approval_transaction(resources(draft()), CTX)
    goal = bundle["entry"][0]["resource"] | {"id": "g1", "meta": {"versionId": "2"}}
    plan = copy.deepcopy(bundle["entry"][1]["resource"])
    plan |= {"id": "cp1", "meta": {"versionId": "3"}, "goal": [{"reference": "Goal/g1"}]}
    for activity in plan["activity"]:
        if "goal" in activity["detail"]:
            activity["detail"]["goal"] = [{"reference": "Goal/g1"}]
    return plan, {"Goal/g1": goal}


def test_revision_updates_with_if_match_on_the_edited_versions() -> None:
    plan, goals = server_copy()
    working = WorkingPlan(copy.deepcopy(plan), copy.deepcopy(goals))
    edited = apply_form(working, form_for(working, goal_0_target="4.1", activity_3_remove="1"))
    bundle = revision_transaction(plan, goals, edited.careplan, edited.goals, CTX)
    requests = [e["request"] for e in bundle["entry"]]
    prov_id = str(uuid.uuid5(NS, f"{PLAN_ID}/revision/cp1/3"))
    assert requests == [
        {"method": "PUT", "url": "Goal/g1", "ifMatch": 'W/"2"'},
        {"method": "PUT", "url": "CarePlan/cp1", "ifMatch": 'W/"3"'},
        {"method": "POST", "url": "Provenance", "ifNoneExist": f"_tag={CAREPLAN_SYSTEM}|{prov_id}"},
    ]
    assert bundle["entry"][0]["fullUrl"] == f"{BASE}/Goal/g1"
    goal, careplan, provenance = (e["resource"] for e in bundle["entry"])
    assert goal["target"][0]["detailRange"]["high"]["value"] == 4.1
    assert "meta" not in goal and "meta" not in careplan  # the server sets versions
    assert len(careplan["activity"]) == 3
    assert provenance["target"] == [{"reference": "Goal/g1"}, {"reference": "CarePlan/cp1"}]
    assert provenance["activity"]["coding"][0]["code"] == "UPDATE"


def test_revision_cancels_a_removed_goal_and_creates_an_added_one() -> None:
    plan, goals = server_copy()
    working = WorkingPlan(copy.deepcopy(plan), copy.deepcopy(goals))
    edited = apply_form(working, form_for(working, goal_0_remove="1"))
    new_id = uuid.UUID("11111111-2222-4333-8444-555555555555")
    add_goal(edited, scale=SCALE, baseline=5.5, target=Decimal("5"), due=date(2025, 6, 1),
             start=date(2025, 1, 6), subject="Patient/pt1", clinician="Practitioner/p1",
             identifier=new_id)  # fmt: skip
    bundle = revision_transaction(plan, goals, edited.careplan, edited.goals, CTX)
    (created, cancelled, careplan, _) = bundle["entry"]
    assert created["request"] == {
        "method": "POST",
        "url": "Goal",
        "ifNoneExist": f"identifier={CAREPLAN_SYSTEM}|{new_id}",
    }
    assert created["resource"]["lifecycleStatus"] == "proposed"  # as built; see the e2e test
    assert cancelled["request"]["url"] == "Goal/g1"
    assert cancelled["resource"]["lifecycleStatus"] == "cancelled"
    assert careplan["resource"]["goal"] == [{"reference": f"urn:uuid:{new_id}"}]


# -- re-assessment ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reliable", "status"),
    [
        (4.0, None, "achieved"),  # 4.0 <= 4.37
        (4.37, None, "achieved"),  # the target itself
        (5.0, None, "improving"),  # lower than 5.5, plain comparison
        (5.5, None, "no-change"),
        (6.0, None, "worsening"),
        (5.0, ReliableChange(0.8, "test figure"), "no-change"),  # 0.5 < 0.8
        (4.6, ReliableChange(0.8, "test figure"), "improving"),  # 0.9 >= 0.8
        (6.5, ReliableChange(0.8, "test figure"), "worsening"),  # -1.0 <= -0.8
    ],
)
def test_reassessment_sets_achievement_and_links_the_observation(
    value: float, reliable: ReliableChange | None, status: str
) -> None:
    _, goals = server_copy()
    scores = {"ecr-r-anxiety": ObservedScore("Observation/n1", value, "2025-03-01")}
    figures = {"ecr-r-anxiety": reliable} if reliable else None
    bundle = reassessment_transaction(goals.values(), scores, CTX, figures)
    assert bundle is not None
    goal = bundle["entry"][0]["resource"]
    assert bundle["entry"][0]["request"] == {"method": "PUT", "url": "Goal/g1", "ifMatch": 'W/"2"'}
    assert goal["achievementStatus"]["coding"] == [{"system": ACHIEVEMENT, "code": status}]
    assert goal["outcomeReference"] == [{"reference": "Observation/n1"}]


def test_reassessment_skips_linked_inactive_and_unmeasured_goals() -> None:
    _, goals = server_copy()
    goal = goals["Goal/g1"]
    scores = {"ecr-r-anxiety": ObservedScore("Observation/n1", 4.0)}
    linked = goal | {"outcomeReference": [{"reference": "Observation/n1"}]}
    assert reassessment_transaction([linked], scores, CTX) is None
    assert reassessment_transaction([goal | {"lifecycleStatus": "cancelled"}], scores, CTX) is None
    assert reassessment_transaction([goal], {}, CTX) is None
    foreign = {"resourceType": "Goal", "id": "x", "lifecycleStatus": "active", "target": [{}]}
    assert reassessment_transaction([foreign], scores, CTX) is None


def obs(oid: str, code: str, value: float, when: str, status: str = "final") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": {"coding": [{"system": SCORES, "code": code}]},
        "valueQuantity": {"value": value},
        "effectiveDateTime": when,
    }


def test_latest_scores_take_the_newest_final_value_per_code() -> None:
    found = latest_scores(
        [
            obs("1", "ecr-r-anxiety", 5.5, "2025-01-06"),
            obs("2", "ecr-r-anxiety", 4.9, "2025-03-03"),
            obs("3", "ecr-r-anxiety", 3.0, "2025-04-01", status="preliminary"),
            obs("4", "ecr-r-avoidance", 3.1, "2025-01-06"),
        ]
    )
    assert found == {
        "ecr-r-anxiety": ObservedScore("Observation/2", 4.9, "2025-03-03"),
        "ecr-r-avoidance": ObservedScore("Observation/4", 3.1, "2025-01-06"),
    }


def test_latest_scores_compare_instants_then_the_servers_write_time() -> None:
    # 10:00+02:00 is 08:00Z, earlier than 09:00Z although its text sorts later.
    east = obs("e", "ecr-r-anxiety", 5.0, "2025-03-03T10:00:00+02:00")
    utc = obs("u", "ecr-r-anxiety", 4.0, "2025-03-03T09:00:00Z")
    assert latest_scores([utc, east])["ecr-r-anxiety"].reference == "Observation/u"
    # Two submissions in the same second: the one the server wrote last is the latest.
    first = obs("b", "ecr-r-avoidance", 3.0, "2025-03-03T09:00:00Z")
    second = obs("a", "ecr-r-avoidance", 2.0, "2025-03-03T09:00:00Z")
    first["meta"] = {"lastUpdated": "2025-03-03T09:00:00.120Z"}
    second["meta"] = {"lastUpdated": "2025-03-03T09:00:00.870Z"}
    assert latest_scores([second, first])["ecr-r-avoidance"].value == 2.0
    assert latest_scores([first, second])["ecr-r-avoidance"].value == 2.0


# -- what changed on the server -------------------------------------------------------------------


def test_plan_changes_read_as_sentences() -> None:
    plan, goals = server_copy()
    theirs_plan, theirs_goals = copy.deepcopy(plan), copy.deepcopy(goals)
    theirs_goals["Goal/g1"]["target"][0]["detailRange"]["high"]["value"] = 4.0
    theirs_plan["activity"] = theirs_plan["activity"][:3]
    theirs_plan["activity"][0]["detail"]["status"] = "in-progress"
    assert plan_changes(plan, goals, theirs_plan, theirs_goals) == [
        "Goal \u201cLower your ECR-R attachment anxiety score from 5.5 to 4.37 or less by "
        "2025-06-23\u201d: target changed from 1.0\u20134.37 to 1.0\u20134.0.",
        "Activity \u201cPsychoeducation on attachment\u201d: status changed from not-started "
        "to in-progress.",
        "Activity \u201cAttachment journaling\u201d was removed.",
    ]
    assert plan_changes(plan, goals, plan, goals) == []


# -- the patient's side ---------------------------------------------------------------------------


def test_a_journal_entry_is_the_patients_own_and_linked_to_the_activity() -> None:
    questionnaire = {"url": "http://attach-fhir.org/fhir/Questionnaire/attachment-journal",
                     "version": "1.0.0"}  # fmt: skip
    answer = {"item": [{"linkId": "moment", "answer": [{"valueString": "A call with my sister"}]}]}
    ctx = WritebackContext(
        submission_id="j-1",
        patient="Patient/pt1",
        author="Patient/pt1",
        authored="2025-02-01T20:00:00Z",
    )
    activity = {"system": "http://attach-fhir.org/fhir/CodeSystem/attach-activities",
                "code": "attachment-journaling"}  # fmt: skip
    bundle = journal_transaction(
        answer, questionnaire, careplan="CarePlan/cp1", activity=activity, ctx=ctx
    )
    entry, provenance = (e["resource"] for e in bundle["entry"])
    ns = uuid.uuid5(uuid.NAMESPACE_URL, SUBMISSION_SYSTEM)
    assert entry["identifier"] == {
        "system": SUBMISSION_SYSTEM,
        "value": str(uuid.uuid5(ns, "j-1/QuestionnaireResponse")),
    }
    assert entry["questionnaire"] == f"{questionnaire['url']}|1.0.0"
    assert (entry["author"], entry["source"]) == ({"reference": "Patient/pt1"},) * 2
    assert entry["basedOn"] == [{"reference": "CarePlan/cp1"}]
    assert entry["extension"] == [{"url": CAREPLAN_ACTIVITY_EXT, "valueCoding": activity}]
    assert entry["item"] == answer["item"]
    assert provenance["agent"][0]["who"] == {"reference": "Patient/pt1"}
    assert provenance["target"] == [{"reference": bundle["entry"][0]["fullUrl"]}]


def test_tasks_come_before_the_plans_reassessment_activity() -> None:
    plan, _ = server_copy()
    task = {
        "resourceType": "Task",
        "id": "t1",
        "status": "requested",
        "description": "Please fill in the RQ",
        "input": [{"type": {"text": "questionnaire"},
                   "valueCanonical": "http://attach-fhir.org/fhir/Questionnaire/rq|1.1.0"}],
        "restriction": {"period": {"end": "2025-02-01"}},
    }  # fmt: skip
    done = task | {"id": "t2", "status": "completed"}
    assert assignments([task, done], [plan]) == [
        Assignment(
            "http://attach-fhir.org/fhir/Questionnaire/rq|1.1.0",
            "Task/t1",
            "Please fill in the RQ",
            "2025-02-01",
        )
    ]
    assert assignments([done], [plan]) == [
        Assignment(
            ECR_R, "CarePlan/cp1", "Re-assessment with the same questionnaire", None, "2025-01-06"
        )
    ]
    assert assignments([], [plan | {"status": "completed"}]) == []


def test_the_patient_reads_every_activity_and_finds_the_journal() -> None:
    plan, _ = server_copy()
    activities = plan_activities([plan])
    assert [a.title for a in activities] == [
        "Psychoeducation on attachment",
        "Re-assessment with the same questionnaire",
        "Mindfulness practice",
        "Attachment journaling",
    ]
    assert activities[1].description.startswith("You fill in the same questionnaire again every 8")
    journal = journal_activity([plan])
    assert journal is not None and journal.careplan == "CarePlan/cp1"
    assert journal.coding == {
        "system": "http://attach-fhir.org/fhir/CodeSystem/attach-activities",
        "code": "attachment-journaling",
    }


# -- a patient's own scores ---------------------------------------------------------------------


def test_a_patients_submission_writes_preliminary_scores_authored_by_the_patient() -> None:
    questionnaire = library().questionnaire("http://attach-fhir.org/fhir/Questionnaire/rq")
    # RQ ratings: secure 6, fearful 2, preoccupied 3, dismissing 5 (the forced choice skipped).
    ratings = {"secure": 6, "fearful": 2, "preoccupied": 3, "dismissing": 5}
    response = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://attach-fhir.org/fhir/Questionnaire/rq|1.1.0",
        "status": "completed",
        "item": [
            {"linkId": link, "answer": [{"valueCoding": {"system": AGREEMENT, "code": str(v)}}]}
            for link, v in ratings.items()
        ],
    }
    ctx = WritebackContext(
        submission_id="p-1",
        patient="Patient/pt1",
        author="Patient/pt1",
        authored="2025-02-01T20:00:00Z",
        observation_status="preliminary",
    )
    bundle = build_transaction(
        response, questionnaire, score_response(questionnaire, response), ctx
    )
    resources = [e["resource"] for e in bundle["entry"]]
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    values = {o["code"]["coding"][0]["code"]: o["valueQuantity"]["value"] for o in observations}
    # model of self = (6 + 5) - (2 + 3) = 6; model of other = (6 + 3) - (2 + 5) = 2
    assert values["rq-model-of-self"] == 6 and values["rq-model-of-other"] == 2
    assert {o["status"] for o in observations} == {"preliminary"}
    assert {o["performer"][0]["reference"] for o in observations} == {"Patient/pt1"}
    assert resources[0]["author"] == {"reference": "Patient/pt1"}


def test_the_clinicians_review_makes_only_preliminary_scores_final() -> None:
    pending = obs("7", "rq-secure", 6, "2025-02-01", status="preliminary") | {
        "meta": {"versionId": "4", "lastUpdated": "2025-02-01T20:00:01Z",
                 "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                               "code": "BH"}]},
    }  # fmt: skip
    final = obs("8", "rq-secure", 5, "2025-01-01") | {"meta": {"versionId": "1"}}
    bundle = confirmation_transaction([pending, final], CTX)
    assert bundle is not None
    update, provenance = bundle["entry"]
    assert update["request"] == {"method": "PUT", "url": "Observation/7", "ifMatch": 'W/"4"'}
    assert update["resource"]["status"] == "final"
    assert update["resource"]["valueQuantity"] == {"value": 6}
    # The server's version fields go; the security label stays.
    assert update["resource"]["meta"] == {
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "BH"}]
    }
    assert provenance["resource"]["target"] == [{"reference": "Observation/7"}]
    assert provenance["resource"]["agent"][0]["who"] == {"reference": "Practitioner/p1"}
    assert provenance["resource"]["activity"]["coding"][0]["code"] == "UPDATE"
    assert confirmation_transaction([final], CTX) is None


def test_an_assignment_is_done_by_a_completed_response_since_it_was_given() -> None:
    task = Assignment(ECR_R, "Task/t1", "ECR-R", since="2025-02-01T09:00:00Z")
    url = ECR_R.partition("|")[0]

    def qr(status: str, questionnaire: str, authored: str) -> dict[str, str]:
        return {"status": status, "questionnaire": questionnaire, "authored": authored}

    responses = [
        qr("completed", f"{url}|1.0.0", "2025-01-20T10:00:00Z"),
        qr("in-progress", url, "2025-02-05T10:00:00Z"),
        qr("completed", f"{url}|1.0.0", "2025-02-03T18:00:00Z"),
        qr("completed", "http://x/Questionnaire/rq", "2025-03-01"),
    ]
    assert last_done(task, responses) == "2025-02-03T18:00:00Z"
    assert last_done(task, responses[:2]) is None  # before the task, or not completed
