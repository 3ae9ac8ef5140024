"""Asking the patient to complete a questionnaire at home: the Task, written out by hand from SDC.

SDC's ``sdc-task`` profile (Task Questionnaire): ``code`` from its task-code value set,
``http://hl7.org/fhir/uv/sdc/CodeSystem/temp#complete-questionnaire``; ``authoredOn`` and
``requester`` required; ``owner`` "who should complete questionnaire"; the ``questionnaire``
input slice typed ``temp#questionnaire`` (display "Questionnaire") with a ``valueCanonical``;
invariant sdc-t1: with that code, no ``focus`` and the questionnaire input present. The patient's
side (attach_fhir.assignments, attach_fhir.task_completion) must read what is written here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attach_fhir.assignment_request import (
    CHANGED,
    NOT_AN_ASSIGNMENT,
    AssignmentRequest,
    build_task,
    clean_note,
    if_none_exist,
    is_ours,
    note_markdown,
    note_text,
    patient_note,
    read_form,
    sent_assignments,
    task_changes,
    withdraw,
)
from attach_fhir.assignments import Assignment, from_tasks
from attach_fhir.task_completion import CLOSED, REFUSED, UPDATE, assignment_problem, decide

ECR_R = "http://attach-fhir.org/fhir/Questionnaire/ecr-r"
RQ = "http://attach-fhir.org/fhir/Questionnaire/rq"
SDC = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"
WHEN = "2026-03-04T05:06:07Z"
TODAY = dt.date(2026, 3, 4)
#: uuid5 under the namespace of the identifier system's URL, of "<form id>/Task", by hand.
NS = uuid.uuid5(uuid.NAMESPACE_URL, "http://attach-fhir.org/fhir/identifier/assignment")


def request(**changes: Any) -> AssignmentRequest:
    base: dict[str, Any] = {
        "request_id": "form-1",
        "patient": "Patient/pt1",
        "requester": "Practitioner/dr1",
        "questionnaire": f"{ECR_R}|1.0.0",
        "title": "Experiences in Close Relationships - Revised (ECR-R)",
        "authored": WHEN,
    }
    return AssignmentRequest(**(base | changes))


def test_the_task_has_every_sdc_element_written_by_hand() -> None:
    task = build_task(
        request(
            due=dt.date(2026, 3, 31),
            note="Before our next session, please.",
            careplan="CarePlan/cp1",
            encounter="Encounter/e1",
            security_labels=True,
        )
    )
    assert task == {
        "resourceType": "Task",
        "meta": {
            "security": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "BH",
                    "display": "behavioral health information sensitivity",
                },
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                    "code": "R",
                    "display": "restricted",
                },
            ]
        },
        "identifier": [
            {
                "system": "http://attach-fhir.org/fhir/identifier/assignment",
                "value": str(uuid.uuid5(NS, "form-1/Task")),
            }
        ],
        "basedOn": [{"reference": "CarePlan/cp1"}],
        "status": "requested",
        "intent": "order",
        "code": {
            "coding": [
                {
                    "system": SDC,
                    "code": "complete-questionnaire",
                    "display": "Complete Questionnaire",
                }
            ]
        },
        "description": "Experiences in Close Relationships - Revised (ECR-R)",
        "for": {"reference": "Patient/pt1"},
        "encounter": {"reference": "Encounter/e1"},
        "authoredOn": WHEN,
        "requester": {"reference": "Practitioner/dr1"},
        "owner": {"reference": "Patient/pt1"},
        "restriction": {"period": {"end": "2026-03-31"}},
        "input": [
            {
                "type": {
                    "coding": [{"system": SDC, "code": "questionnaire", "display": "Questionnaire"}]
                },
                "valueCanonical": f"{ECR_R}|1.0.0",
            }
        ],
        "note": [
            {
                "authorReference": {"reference": "Practitioner/dr1"},
                "time": WHEN,
                "text": "Before our next session, please.",
            }
        ],
    }
    assert "focus" not in task  # sdc-t1


def test_without_due_date_note_plan_encounter_or_labels_those_elements_are_absent() -> None:
    task = build_task(request())
    assert set(task) == {
        "resourceType", "identifier", "status", "intent", "code", "description", "for",
        "authoredOn", "requester", "owner", "input",
    }  # fmt: skip


def test_the_patients_side_reads_the_task_and_would_close_it() -> None:
    written = build_task(request(due=dt.date(2026, 3, 31)))
    stored = {**written, "id": "t9", "meta": {"versionId": "1"}}
    assert from_tasks([stored]) == [
        Assignment(
            questionnaire=f"{ECR_R}|1.0.0",
            source="Task/t9",
            title="Experiences in Close Relationships - Revised (ECR-R)",
            due="2026-03-31",
            since=WHEN,
        )
    ]
    assert assignment_problem(stored, "Patient/pt1", ECR_R) is None
    decision = decide(stored, "QuestionnaireResponse/q1", "Patient/pt1", ECR_R, WHEN)
    assert (decision.action, decision.version) == (UPDATE, "1")


def test_the_same_form_gives_the_same_identifier_and_condition_another_form_another() -> None:
    one, again, other = (build_task(request(request_id=r)) for r in ("form-1", "form-1", "form-2"))
    assert one["identifier"] == again["identifier"] != other["identifier"]
    value = str(uuid.uuid5(NS, "form-1/Task"))
    assert (
        if_none_exist("form-1")
        == f"identifier=http://attach-fhir.org/fhir/identifier/assignment|{value}"
    )
    assert is_ours(one, "form-1") and not is_ours(one, "form-2")
    assert not is_ours({"identifier": "not a list"}, "form-1")


def test_a_note_with_markup_is_written_so_a_markdown_renderer_shows_it_as_typed() -> None:
    typed = "See <b>this</b> ![x](http://t.example/p.png) [here](javascript:alert(1)) & \\o/"
    text = build_task(request(note=typed))["note"][0]["text"]
    assert text == (
        "See \\<b\\>this\\</b\\> \\!\\[x\\](http://t.example/p.png) "
        "\\[here\\](javascript:alert(1)) \\& \\\\o/"
    )
    assert note_text(text) == typed


@given(st.text())
def test_the_note_escaping_round_trips_and_leaves_no_unescaped_markup(typed: str) -> None:
    written = note_markdown(typed)
    assert note_text(written) == typed
    unescaped = written.replace("\\\\", "").replace("\\<", "").replace("\\[", "")
    assert "<" not in unescaped and "[" not in unescaped


PAST = "The due date is in the past: choose today or a later day."
NOT_A_DATE = "Enter the due date as a real date, for example 2030-01-31."
TOO_LONG = "The note is 501 characters long: shorten it to 500 or fewer."


@pytest.mark.parametrize(
    ("due", "note", "expected"),
    [
        ("", "", (None, None, {})),
        ("  ", "  \n ", (None, None, {})),
        ("2026-03-04", "", (dt.date(2026, 3, 4), None, {})),  # today is fine
        ("2027-01-31", "One\r\nline\ttwo\x00\x07", (dt.date(2027, 1, 31), "One\nline two", {})),
        ("2026-03-03", "", (None, None, {"due": PAST})),
        ("2026-02-30", "", (None, None, {"due": NOT_A_DATE})),
        ("31/03/2026", "", (None, None, {"due": NOT_A_DATE})),
        ("20260331", "", (None, None, {"due": NOT_A_DATE})),
        ("", "x" * 500, (None, "x" * 500, {})),
        ("", "x" * 501, (None, "x" * 501, {"note": TOO_LONG})),
    ],
)
def test_the_form_reads_an_optional_future_due_date_and_a_short_note(
    due: str, note: str, expected: tuple[Any, Any, dict[str, str]]
) -> None:
    form = read_form(due, note, TODAY)
    assert (form.due, form.note, dict(form.errors)) == expected


def test_clean_note_drops_control_characters_but_keeps_line_breaks() -> None:
    assert clean_note("\u2028a\r b\rc\x1b[31m\x7f ") == "a\n b\nc[31m"


def stored(task_id: str, **changes: Any) -> dict[str, Any]:
    """A Task as the server holds it: written by the app for pt1, with an id and version."""
    base = build_task(request(note="Hello"))
    return (
        base
        | {"id": task_id, "meta": {"versionId": "3", "lastUpdated": "2026-03-01T10:00:00Z"}}
        | changes
    )


def test_the_note_for_the_patient_is_the_requesters_only() -> None:
    clinic = {"text": "Internal: moved to Thursday"}  # no author: the clinic's own note
    other = {"authorReference": {"reference": "Practitioner/someone"}, "text": "Other's note"}
    mine = {
        "authorReference": {"reference": "http://ehr/fhir/Practitioner/dr1"},
        "text": "a \\<b\\>",
    }
    assert patient_note(stored("t1", note=[clinic, other, mine])) == "a <b>"
    assert patient_note(stored("t1", note=[clinic])) is None
    assert patient_note(stored("t1", requester="x", note="y")) is None
    long = {"authorReference": {"reference": "Practitioner/dr1"}, "text": "y" * 900}
    assert patient_note(stored("t1", note=[long])) == "y" * 499 + "\u2026"


def test_the_clinicians_list_has_the_open_ones_and_those_completed_lately() -> None:
    qr = {
        "type": {"coding": [{"system": SDC, "code": "questionnaire-response"}]},
        "valueReference": {"reference": "QuestionnaireResponse/qr5"},
    }
    tasks = [
        stored("open-old", authoredOn="2026-02-01T00:00:00Z"),
        stored("open-new", authoredOn="2026-03-02T00:00:00Z", status="in-progress",
               restriction={"period": {"end": "2026-04-01"}}),
        stored("done", status="completed", output=[qr], lastModified="2026-03-03T09:00:00Z"),
        stored("done-long-ago", status="completed", output=[qr], lastModified="2026-02-01T09:00"),
        stored("done-without-output", status="completed", lastModified="2026-03-03T09:00:00Z"),
        stored("cancelled", status="cancelled"),
        stored("theirs", **{"for": {"reference": "Patient/pt2"}}),
        stored("another-form", input=[{"valueCanonical": "http://example.org/Questionnaire/phq9"}]),
        stored("bad id/x"),
        {"resourceType": "Task", "id": "junk", "status": ["requested"], "for": "Patient/pt1"},
    ]  # fmt: skip
    open_, done = sent_assignments(tasks, "Patient/pt1", [ECR_R, RQ], TODAY)
    assert [(a.task_id, a.status, a.due, a.note, a.version) for a in open_] == [
        ("open-new", "in-progress", "2026-04-01", "Hello", "3"),
        ("open-old", "requested", None, "Hello", "3"),
    ]
    assert [(a.task_id, a.questionnaire, a.response, a.closed) for a in done] == [
        ("done", ECR_R, "QuestionnaireResponse/qr5", "2026-03-03")
    ]


def test_withdrawing_an_open_task_seen_at_its_version_writes_it_cancelled() -> None:
    task = stored("t1", text={"status": "generated", "div": "<div>requested</div>"})
    decision = withdraw(task, "Patient/pt1", [ECR_R], "3", WHEN)
    assert (decision.action, decision.version) == (UPDATE, "3")
    expected = {k: v for k, v in task.items() if k not in ("meta", "text")}
    expected |= {
        "status": "cancelled",
        "statusReason": {"text": "Withdrawn by the clinician who asked for it."},
        "lastModified": WHEN,
    }
    assert decision.task == expected


def test_a_task_changed_closed_or_not_the_patients_is_not_withdrawn() -> None:
    assert withdraw(stored("t1"), "Patient/pt1", [ECR_R], "2", WHEN).action == CHANGED
    closed = withdraw(stored("t1", status="completed"), "Patient/pt1", [ECR_R], "3", WHEN)
    assert (closed.action, closed.reason) == (
        CLOSED,
        "The EHR already shows this request as completed.",
    )
    theirs = withdraw(stored("t1"), "Patient/pt2", [ECR_R], "3", WHEN)
    assert (theirs.action, theirs.reason) == (REFUSED, NOT_AN_ASSIGNMENT)
    assert withdraw(stored("t1"), "Patient/pt1", [RQ], "3", WHEN).reason == NOT_AN_ASSIGNMENT
    unversioned = withdraw(stored("t1", meta={}), "Patient/pt1", [ECR_R], "3", WHEN)
    assert unversioned.action == REFUSED and unversioned.task is None


def test_what_changed_is_said_in_sentences() -> None:
    before = stored("t1", restriction={"period": {"end": "2026-03-31"}})
    after = stored(
        "t1",
        status="in-progress",
        restriction={"period": {"end": "2026-04-15"}},
        note=[{"authorReference": {"reference": "Practitioner/dr1"}, "text": "Take your time"}],
        owner={"reference": "RelatedPerson/rp1"},
        input=[{"valueCanonical": RQ}],
    )
    assert task_changes(before, after) == [
        "Its status changed from requested to in-progress.",
        "Its due date changed from 2026-03-31 to 2026-04-15.",
        "The note for the patient now reads: Take your time",
        "It now asks for a different questionnaire.",
        "It is now assigned to someone else.",
    ]
    assert task_changes(
        stored("t1"), stored("t1", restriction={"period": {"end": "2026-04-01"}})
    ) == ["A due date was set: 2026-04-01."]
    assert task_changes(before, stored("t1", note=[])) == [
        "Its due date was removed.",
        "The note for the patient was removed.",
    ]
    assert task_changes(
        stored("t1"), stored("t1", note=[{"text": "clinic"}, *stored("t1")["note"]])
    ) == ["Other details of it were changed in the EHR."]
    assert task_changes(None, stored("t1")) == [
        "It was changed in the EHR after this page was shown."
    ]
