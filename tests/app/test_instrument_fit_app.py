"""A clinician uses an instrument that does not fit, and a child's form leaves out what does not
apply, against the real sandbox FHIR server (the ``launch_as`` fixture of test_assess).

The sandbox's child is 9 (seed ``AGE:9:140``); the shipped reading age is 12 and the ECR-RS's
romantic-partner section applies from 12 (docs/instrument-fit.md).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attach_fhir.canonical import USED_ALTHOUGH_NOT_FITTING_EXT
from attach_fhir.writeback import SUBMISSION_SYSTEM, identifier_value
from ehr_sandbox.fhir_process import FhirServerProcess
from smart_app import stop as stop_app
from tests.app.test_assess import (  # noqa: F401 (launch_as, transport: fixtures)
    ALL,
    Session,
    Wrapped,
    article,
    fhir,
    launch_as,
    transport,
)
from tests.fixtures.launched_app import launched_app
from tests.lib.scoring_examples import cycle, rs_target

REASON = (
    "A self-report questionnaire: the patient is 9, under the reading age of 12 set for "
    "self-report."
)
NOT_FITTING = "You chose to use this questionnaire although it does not fit this patient. "


def fields(answers: dict[str, object]) -> dict[str, str]:
    """Form fields for ECR-RS answers (gates as "true"/"false")."""
    return {
        f"q:{k}": (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in answers.items()
    }


def use_anyway(session: Session, instrument: str) -> tuple[str, str]:
    """Press "Use anyway": the form's page and its submission id."""
    posted = session.client.post(
        session.url(f"{instrument}/use-anyway"), data={"csrf_token": session.csrf}
    )
    assert posted.status_code == 303, posted.text
    location = posted.headers["location"]
    match = re.search(r"\?anyway=([0-9a-f-]+)$", location)
    assert match, location
    page = session.client.get(location)
    assert page.status_code == 200
    return page.text, match.group(1)


def test_use_anyway_needs_the_csrf_token_and_only_starts_what_does_not_fit(
    launch_as: Callable[..., Session],  # noqa: F811
) -> None:
    child = launch_as("sandbox-child-9")
    ecr_rs = article(child.client.get(child.url()).text, "ecr-rs")
    assert "Does not fit this patient." in ecr_rs and REASON in ecr_rs
    assert 'action="/app/' in ecr_rs and "/assess/ecr-rs/use-anyway" in ecr_rs
    refused = child.client.post(child.url("ecr-rs/use-anyway"))
    assert refused.status_code == 400  # no CSRF token
    opened = child.client.get(child.url("ecr-rs/"))  # the form's URL without "Use anyway"
    assert opened.status_code == 303
    assert opened.headers["location"].endswith("/assess/#instrument-ecr-rs")
    adult = launch_as("sandbox-adult-29")
    posted = adult.client.post(adult.url("ecr-r/use-anyway"), data={"csrf_token": adult.csrf})
    assert posted.status_code == 303  # it fits: straight to the form, nothing to record
    assert posted.headers["location"].endswith("/assess/ecr-r/")


def test_a_child_answers_the_ecr_rs_without_the_partner_section_and_the_choice_is_recorded(
    launch_as: Callable[..., Session],  # noqa: F811
    fhir_server: FhirServerProcess,
) -> None:
    child = launch_as("sandbox-child-9")
    page, sid = use_anyway(child, "ecr-rs")
    assert NOT_FITTING + REASON in page
    assert f'name="submission_id" value="{sid}"' in page
    assert "the romantic partner section" in page
    assert 'name="q:mother.1"' in page and 'name="q:friend.9"' in page
    assert "q:partner." not in page and "romantic partner)" not in page  # nor its scores
    answers = {
        **rs_target("mother", True, [2, 3, 1, 5, 6, 4, 7, 5, 3]),
        **rs_target("father", False, None),
        **rs_target("friend", True, [4] * 9),
        # posted anyway (a tampered form): a section not shown is never taken
        **rs_target("partner", True, [7] * 9),
    }
    posted = child.post("ecr-rs", fields(answers), "submit", sid)
    assert posted.status_code == 303, posted.text
    value = identifier_value(sid, "QuestionnaireResponse")
    with fhir(fhir_server) as client:
        found = client.get(
            "QuestionnaireResponse", params={"identifier": f"{SUBMISSION_SYSTEM}|{value}"}
        ).json()
    (entry,) = found["entry"]
    qr = entry["resource"]
    assert qr["extension"] == [{"url": USED_ALTHOUGH_NOT_FITTING_EXT, "valueString": REASON}]
    assert [i["linkId"] for i in qr["item"]] == ["mother", "father", "friend", "scores"]
    scores = {
        i["linkId"].removeprefix("scores.ecr-rs-"): i["answer"][0]["valueDecimal"]
        for i in qr["item"][-1]["item"]
    }
    assert sorted(scores) == [
        "friend-anxiety",
        "friend-avoidance",
        "mother-anxiety",
        "mother-avoidance",
    ]  # nothing for the father (skipped) or the partner (not shown)
    # mother: avoidance mean(8-2, 8-3, 8-1, 8-5, 6, 4) = 31/6; anxiety mean(7, 5, 3) = 5
    assert abs(scores["mother-avoidance"] - 31 / 6) < 1e-9
    assert scores["mother-anxiety"] == 5
    # friend: every item 4, and a reversed 4 is 8 - 4 = 4: both means 4
    assert scores["friend-avoidance"] == 4 and scores["friend-anxiety"] == 4


def test_a_fifteen_year_old_sees_the_partner_section(
    launch_as: Callable[..., Session],  # noqa: F811
) -> None:
    teen = launch_as("sandbox-adolescent-15")
    ecr_rs = article(teen.client.get(teen.url()).text, "ecr-rs")
    assert "May fit this patient." in ecr_rs and "variety of age groups" in ecr_rs
    page, _ = teen.form("ecr-rs")
    assert 'name="q:partner.1"' in page and "hidden-sections" not in page


def child_launch(
    fhir_server: FhirServerProcess, tmp_path: Path, outbound: Wrapped, client_id: str
) -> Any:
    """A patient's own launch: the 9-year-old, signed in as herself."""
    return launched_app(
        fhir_server.base_url,
        tmp_path / "app",
        outbound,
        client_id=client_id,
        kind="patient",
        patient="sandbox-child-9",
        user="Patient/sandbox-child-9",
        scope=ALL,
    )


def test_a_patients_launch_cannot_use_anyway(
    fhir_server: FhirServerProcess,
    tmp_path: Path,
    transport: Wrapped,  # noqa: F811
) -> None:
    launched = child_launch(fhir_server, tmp_path, transport, "fit-patient-test")
    try:
        # The Choose page is the clinician's (smart_app.web.audience): a patient never sees it.
        page = launched.client.get(f"/app/{launched.ctx}/assess/")
        assert page.status_code == 403
        assert "Use anyway" not in page.text
        posted = launched.client.post(
            f"/app/{launched.ctx}/assess/ecr-rs/use-anyway", data={"csrf_token": launched.csrf}
        )
        assert posted.status_code == 403
    finally:
        stop_app(launched.app)


def test_a_form_posted_without_use_anyway_is_recorded_all_the_same(
    launch_as: Callable[..., Session],  # noqa: F811
    fhir_server: FhirServerProcess,
) -> None:
    child = launch_as("sandbox-child-9")
    sid = str(uuid.uuid4())  # a form never shown: posted straight to the fill URL
    posted = child.post("ecr-r", fields(cycle(1, 36)), "submit", sid)
    assert posted.status_code == 303, posted.text
    value = identifier_value(sid, "QuestionnaireResponse")
    with fhir(fhir_server) as client:
        found = client.get(
            "QuestionnaireResponse", params={"identifier": f"{SUBMISSION_SYSTEM}|{value}"}
        ).json()
    (entry,) = found["entry"]
    extension = entry["resource"]["extension"]
    assert extension == [{"url": USED_ALTHOUGH_NOT_FITTING_EXT, "valueString": REASON}]


def test_a_child_filling_in_meets_no_clinicians_note_about_what_is_left_out(
    fhir_server: FhirServerProcess,
    tmp_path: Path,
    transport: Wrapped,  # noqa: F811
) -> None:
    launched = child_launch(fhir_server, tmp_path, transport, "fit-patient-words")
    try:
        page = launched.client.get(f"/app/{launched.ctx}/assess/ecr-rs/")
        assert page.status_code == 200, page.text
        # The partner section is left out, and the clinician's third-person note with it.
        assert 'name="q:partner.1"' not in page.text and 'name="q:mother.1"' in page.text
        assert 'id="hidden-sections"' not in page.text
        assert "this patient" not in page.text
    finally:
        stop_app(launched.app)
