"""Care plans end to end: a real EHR launch, the app over HTTP, the sandbox FHIR server.

A clinician submits an ECR-R, proposes a plan, edits and approves it; the CarePlan, Goals and
Provenance are read back with their links. A second ECR-R, once delivered, moves the goals'
achievement status by itself (the manual button then finds nothing newer); where the grant does
not allow the goal update, the submission is still delivered and the page says why.
A revision that meets someone else's change (412) shows that change and overwrites nothing.

Scores by hand from the published key (reverse items 9, 11 on anxiety; 20, 22, 26-31, 33-36 on
avoidance; reversed = 8 - raw):
- baseline: anxiety items raw 6 (9 and 11 raw 2 -> 6): mean 6; avoidance raw 4 (reversed 4):
  mean 4. Targets (shipped rules: a quarter of the way to 1, rounded down to 2 decimals):
  anxiety 6 - 0.25 * 5 = 4.75; avoidance 4 - 0.25 * 3 = 3.25.
- re-assessment: anxiety raw 5 (9, 11 raw 3 -> 5): mean 5, lower than 6 but above 4.75:
  improving; avoidance plain items raw 2, reversed items raw 6 (-> 2): mean 2 <= 3.25: achieved.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from attach_fhir.careplan_fhir import CAREPLAN_SYSTEM
from ehr_sandbox.runner import Sandbox
from tests.fixtures.sandbox import SandboxFactory
from tests.fixtures.shared_pool import pooled_app
from tests.fixtures.smart_app_server import AppServer, Browser, ehr_launch_url

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"
ROWAN = "Practitioner/sandbox-practitioner-rowan"
SCOPES = (
    "launch openid fhirUser user/Patient.r user/Questionnaire.rs "
    "user/QuestionnaireResponse.crus user/Observation.crus user/Provenance.crs "
    "user/CarePlan.crus user/Goal.crus offline_access"
)
ECR_R_ANXIETY_REVERSED = {9, 11}
ECR_R_AVOIDANCE_REVERSED = {20, 22, 26, 27, 28, 29, 30, 31, 33, 34, 35, 36}
ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
SCORES = "http://attach-fhir.org/fhir/CodeSystem/attach-scores"
SURVEY = "http://terminology.hl7.org/CodeSystem/observation-category"
JOURNAL_URL = "http://attach-fhir.org/fhir/Questionnaire/attachment-journal"


def ecr_r_answers(anxiety: int, avoidance: int) -> dict[str, str]:
    """Answers whose keyed item values are all ``anxiety`` (1-18) and ``avoidance`` (19-36)."""
    out = {}
    for n in range(1, 37):
        keyed, reversed_ = (
            (anxiety, ECR_R_ANXIETY_REVERSED) if n <= 18 else (avoidance, ECR_R_AVOIDANCE_REVERSED)
        )
        out[f"q:{n}"] = str(8 - keyed if n in reversed_ else keyed)
    return out


@pytest.fixture(scope="module")
def app_env(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sandbox, AppServer]]:
    """A sandbox of its own and an app granted care-plan scopes."""
    sandbox = sandbox_factory(with_app=False)
    data_dir: Path = tmp_path_factory.mktemp("careplan-app")
    with pooled_app(sandbox, data_dir, "careplan-e2e", SCOPES) as server:
        yield sandbox, server


@pytest.fixture(scope="module")
def create_only_app(
    app_env: tuple[Sandbox, AppServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppServer]:
    """A second app on the same sandbox whose grant lets it create plans but not update them."""
    sandbox, _ = app_env
    data_dir: Path = tmp_path_factory.mktemp("careplan-create-only")
    scopes = SCOPES.replace("CarePlan.crus", "CarePlan.crs").replace("Goal.crus", "Goal.crs")
    with pooled_app(sandbox, data_dir, "careplan-create-only", scopes) as server:
        yield server


#: A portal's grant that would let the patient's own launch update Goals: only the app's rule
#: (goals are judged on a clinician's final scores) keeps a patient's submission from doing so.
PATIENT_SCOPES = (
    "launch/patient openid fhirUser patient/Patient.r patient/Questionnaire.rs "
    "patient/QuestionnaireResponse.crus patient/Observation.crs patient/CarePlan.crus "
    "patient/Goal.crus patient/Task.rs offline_access"
)


@pytest.fixture(scope="module")
def patient_app(
    app_env: tuple[Sandbox, AppServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppServer]:
    """A third app on the same sandbox for the patient's standalone launch from a portal."""
    sandbox, _ = app_env
    data_dir: Path = tmp_path_factory.mktemp("careplan-patient")
    with pooled_app(sandbox, data_dir, "careplan-patient", PATIENT_SCOPES) as server:
        yield server


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no {name} field"
    return match.group(1)


class Clinician:
    """Rowan, launched from the EHR for the adult patient, using the app like a browser."""

    def __init__(self, sandbox: Sandbox, server: AppServer, patient: str = ADULT) -> None:
        self.sandbox, self.server = sandbox, server
        self.browser = Browser()
        page = self.browser.go(ehr_launch_url(sandbox, server.client_id, patient))
        assert page.status_code == 200, page.text
        self.ctx = urlsplit(self.browser.visited[-1]).path.split("/")[2]
        self.app = f"{server.url}/app/{self.ctx}"
        assert sandbox.urls is not None
        self.fhir_base = sandbox.urls.fhir_base

    def get(self, path: str) -> httpx.Response:
        return self.browser.request("GET", self.app + path)

    @property
    def csrf(self) -> str:
        """This browser's CSRF token (the same on every page)."""
        return hidden(self.get("/careplan/propose").text, "csrf_token")

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        data = {"csrf_token": self.csrf, **data}
        return self.browser.request("POST", self.app + path, data=data)

    def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code == 303, response.text
        url = httpx.URL(self.app).join(response.headers["location"])
        return self.browser.request("GET", str(url))

    def submit_ecr_r(self, anxiety: int, avoidance: int) -> httpx.Response:
        form = self.get("/assess/ecr-r/")
        assert form.status_code == 200, form.text
        data = {
            **ecr_r_answers(anxiety, avoidance),
            "submission_id": hidden(form.text, "submission_id"),
            "action": "submit",
        }
        posted = self.post("/assess/ecr-r/", data)
        assert posted.status_code == 303, posted.text
        return posted

    def fhir(self) -> httpx.Client:
        app = self.server.app
        with app.app_context():
            record = app.extensions["attach_fhir"].store.get("launch", self.ctx)
        assert record is not None
        token = record["token"]["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
        return httpx.Client(base_url=self.fhir_base + "/", headers=headers, timeout=30)

    def close(self) -> None:
        self.browser.close()


class PatientAtHome(Clinician):
    """The adult patient, launched standalone from the portal (no EHR, no practitioner)."""

    def __init__(self, sandbox: Sandbox, server: AppServer) -> None:
        self.sandbox, self.server = sandbox, server
        assert sandbox.urls is not None
        self.fhir_base = sandbox.urls.fhir_base
        self.browser = Browser(sign_in_as=f"Patient/{ADULT}")
        page = self.browser.go(f"{server.url}/launch/standalone?iss={self.fhir_base}&role=patient")
        assert page.status_code == 200, page.text
        self.ctx = urlsplit(self.browser.visited[-1]).path.split("/")[2]
        self.app = f"{server.url}/app/{self.ctx}"

    @property
    def csrf(self) -> str:
        """This browser's CSRF token, from a page a patient may open."""
        return hidden(self.get("/assess/ecr-r/").text, "csrf_token")


def edit_form(page: str) -> dict[str, str]:
    """Every field of the edit page as the browser would post it unchanged."""
    fields: dict[str, str] = {}
    for name in re.findall(r'name="((?:goal|activity)-\d+-key)"', page):
        fields[name] = hidden(page, name)
    for name, value in re.findall(
        r'name="((?:goal|activity)-\d+-(?:target|due))"[^>]*value="([^"]*)"', page
    ):
        fields[name] = value
    for name, value in re.findall(
        r'name="((?:goal|activity)-\d+-description)"[^>]*>([^<]*)</textarea>', page
    ):
        fields[name] = value.replace("&amp;", "&").replace("&#39;", "'").replace("&#34;", '"')
    for name, value in re.findall(
        r'name="(activity-\d+-status)">.*?<option value="([^"]*)" selected', page, re.S
    ):
        fields[name] = value
    return fields  # fmt: skip


def search(client: httpx.Client, kind: str, **params: str) -> list[dict[str, Any]]:
    response = client.get(kind, params=params)
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry") or []]


def active_plan(client: httpx.Client, patient: str = ADULT) -> dict[str, Any]:
    (plan,) = [
        p
        for p in search(client, "CarePlan", subject=f"Patient/{patient}", status="active")
        if p["identifier"][0]["system"] == CAREPLAN_SYSTEM
    ]
    return plan


def test_propose_edit_approve_reassess_and_revise(app_env: tuple[Sandbox, AppServer]) -> None:
    sandbox, server = app_env
    rowan = Clinician(sandbox, server)
    try:
        rowan.submit_ecr_r(anxiety=6, avoidance=4)
        assert 'id="careplan-link"' in rowan.get("/review/").text
        assert 'id="no-plan"' in rowan.get("/careplan/").text

        # Propose: nothing is written yet; the draft shows the hand-computed targets.
        draft = rowan.follow(rowan.post("/careplan/propose", {}))
        assert draft.status_code == 200, draft.text
        fields = edit_form(draft.text)
        targets = {fields[f"goal-{n}-target"] for n in range(2)}
        assert targets == {"4.75", "3.25"}
        with rowan.fhir() as client:
            assert search(client, "CarePlan", subject=f"Patient/{ADULT}") == []
        anxiety = next(n for n in range(2) if fields[f"goal-{n}-target"] == "4.75")
        activities = len(re.findall(r'name="activity-\d+-description"', draft.text))

        # Edit: a gentler anxiety target, the last activity removed; then approve.
        fields[f"goal-{anxiety}-target"] = "4.5"
        fields[f"activity-{activities - 1}-remove"] = "1"
        draft_path = urlsplit(str(draft.url)).path.removeprefix(f"/app/{rowan.ctx}")
        done = rowan.follow(rowan.post(draft_path, {**fields, "action": "approve"}))
        assert 'data-status="delivered"' in done.text, done.text

        with rowan.fhir() as client:
            plan = active_plan(client)
            assert (plan["status"], plan["intent"]) == ("active", "plan")
            assert plan["subject"]["reference"] == f"Patient/{ADULT}"
            assert plan["author"]["reference"] == ROWAN
            assert plan["period"]["start"] == dt.date.today().isoformat()
            assert len(plan["activity"]) == activities - 1
            goals = {g["reference"]: client.get(g["reference"]).json() for g in plan["goal"]}
            assert sorted(g["lifecycleStatus"] for g in goals.values()) == ["active", "active"]
            highs = sorted(g["target"][0]["detailRange"]["high"]["value"] for g in goals.values())
            assert highs == [3.25, 4.5]
            linked = {g["reference"] for a in plan["activity"] for g in a["detail"].get("goal", [])}
            assert linked == set(goals)  # the re-assessment activity serves both goals
            scores = [client.get(s["reference"]).json() for s in plan["supportingInfo"]]
            assert sorted(o["valueQuantity"]["value"] for o in scores) == [4, 6]
            provenance = search(client, "Provenance", target=f"CarePlan/{plan['id']}")
            assert len(provenance) == 1
            assert provenance[0]["agent"][0]["who"]["reference"] == ROWAN
            assert {t["reference"] for t in provenance[0]["target"]} == {
                f"CarePlan/{plan['id']}",
                *goals,
            }

        # Approving the same draft again (a double click) writes nothing new.
        again = rowan.post(draft_path, {**fields, "action": "approve"})
        assert again.status_code == 303
        with rowan.fhir() as client:
            assert len(search(client, "CarePlan", subject=f"Patient/{ADULT}")) == 1
            assert len(search(client, "Goal", subject=f"Patient/{ADULT}")) == 2

        # Re-assess: anxiety 5 > 4.5 but below 6: improving; avoidance 2 <= 3.25: achieved.
        # Delivered as a clinician's final scores, the submission judges the goals by itself.
        rowan.submit_ecr_r(anxiety=5, avoidance=2)
        with rowan.fhir() as client:
            plan = active_plan(client)
            after = [client.get(g["reference"]).json() for g in plan["goal"]]
            by_code = {g["target"][0]["measure"]["coding"][0]["code"]: g for g in after}
            status = {c: g["achievementStatus"]["coding"][0] for c, g in by_code.items()}
            assert status == {
                "ecr-r-anxiety": {"system": ACHIEVEMENT, "code": "improving"},
                "ecr-r-avoidance": {"system": ACHIEVEMENT, "code": "achieved"},
            }
            for code, value in (("ecr-r-anxiety", 5), ("ecr-r-avoidance", 2)):
                (outcome,) = by_code[code]["outcomeReference"]
                observation = client.get(outcome["reference"]).json()
                assert observation["valueQuantity"]["value"] == value
                assert observation["code"]["coding"][0]["code"] == code
        page = rowan.get("/careplan/")
        assert page.text.count('class="achievement" data-code="Improving"') == 1
        assert page.text.count('class="achievement" data-code="Achieved"') == 1
        assert page.text.count('class="series-point"') == 4  # two points on each goal's line
        # The manual button (the fallback) finds nothing newer: judging again changes nothing.
        with rowan.fhir() as client:
            versions = {g["reference"]: client.get(g["reference"]).json() for g in plan["goal"]}
        unchanged = rowan.follow(rowan.post("/careplan/reassess", {}))
        assert 'id="no-new-scores"' in unchanged.text
        with rowan.fhir() as client:
            for ref, goal in versions.items():
                assert client.get(ref).json()["meta"]["versionId"] == goal["meta"]["versionId"]

        # Revise while someone else changes the plan in the EHR: 412, shown, nothing overwritten.
        revising = rowan.follow(rowan.get("/careplan/revise"))
        mine = edit_form(revising.text)
        mine["activity-0-description"] = "Sessions about attachment, every fortnight."
        with rowan.fhir() as client:
            theirs = active_plan(client)
            theirs["activity"][1]["detail"]["status"] = "in-progress"
            changed = client.put(
                f"CarePlan/{theirs['id']}",
                json=theirs,
                headers={"Content-Type": "application/fhir+json"},
            )
            assert changed.status_code == 200, changed.text
        revise_path = urlsplit(str(revising.url)).path.removeprefix(f"/app/{rowan.ctx}")
        conflict = rowan.post(revise_path, {**mine, "action": "approve"})
        assert conflict.status_code == 409, conflict.text
        title = theirs["activity"][1]["detail"]["code"]["text"]
        assert (
            f"Activity \u201c{title}\u201d: status changed from not-started to in-progress."
            in conflict.text.replace("&#8220;", "\u201c").replace("&#8221;", "\u201d")
        )
        assert "Sessions about attachment, every fortnight." in conflict.text
        with rowan.fhir() as client:
            now = active_plan(client)
            assert now["meta"]["versionId"] == changed.json()["meta"]["versionId"]
            assert now["activity"][1]["detail"]["status"] == "in-progress"
            assert now["activity"][0]["detail"]["description"] != mine["activity-0-description"]

        # Start again from the current version: the revision is written with If-Match.
        fresh = rowan.follow(rowan.get("/careplan/revise"))
        again_fields = edit_form(fresh.text)
        again_fields["activity-0-description"] = "Sessions about attachment, every fortnight."
        fresh_path = urlsplit(str(fresh.url)).path.removeprefix(f"/app/{rowan.ctx}")
        written = rowan.follow(rowan.post(fresh_path, {**again_fields, "action": "approve"}))
        assert 'data-status="delivered"' in written.text, written.text
        with rowan.fhir() as client:
            final = active_plan(client)
            assert (
                final["activity"][0]["detail"]["description"]
                == again_fields["activity-0-description"]
            )
            assert final["activity"][1]["detail"]["status"] == "in-progress"  # theirs kept
            assert final["meta"]["versionId"] != now["meta"]["versionId"]
    finally:
        rowan.close()


def test_a_patients_own_submission_judges_no_goal(
    app_env: tuple[Sandbox, AppServer], patient_app: AppServer
) -> None:
    sandbox, server = app_env
    rowan = Clinician(sandbox, server)
    patient = PatientAtHome(sandbox, patient_app)
    try:
        with rowan.fhir() as client:
            before = [client.get(g["reference"]).json() for g in active_plan(client)["goal"]]
        assert len(before) == 2  # the plan approved and judged in the first test
        # Anxiety 1 would be "achieved" for the anxiety goal (target at most 4.5), if judged.
        shown = patient.follow(patient.submit_ecr_r(anxiety=1, avoidance=1))
        assert shown.status_code == 303  # delivered: straight on to the patient's home
        assert "/patient/?sid=" in shown.headers["location"]
        with rowan.fhir() as client:
            own = [
                o
                for o in search(client, "Observation", subject=f"Patient/{ADULT}")
                if o["status"] == "preliminary" and o["valueQuantity"]["value"] == 1
            ]
            assert len(own) == 2  # anxiety and avoidance, both the patient's own
            for goal in before:
                now = client.get(f"Goal/{goal['id']}").json()
                assert now["meta"]["versionId"] == goal["meta"]["versionId"]
                assert now["achievementStatus"] == goal["achievementStatus"]
                refs = {o["reference"] for o in now["outcomeReference"]}
                assert refs.isdisjoint({f"Observation/{o['id']}" for o in own})
    finally:
        patient.close()
        rowan.close()


def test_the_clinician_reads_journal_entries_and_confirms_a_patients_own_scores(
    app_env: tuple[Sandbox, AppServer],
) -> None:
    sandbox, server = app_env
    rowan = Clinician(sandbox, server)
    try:
        with rowan.fhir() as client:
            entry: dict[str, Any] = {
                "resourceType": "QuestionnaireResponse",
                "questionnaire": f"{JOURNAL_URL}|1.0.0",
                "status": "completed",
                "subject": {"reference": f"Patient/{ADULT}"},
                "author": {"reference": f"Patient/{ADULT}"},
                "authored": "2025-02-03T20:00:00Z",
                "item": [
                    {"linkId": "moment", "answer": [{"valueString": "Dinner with my partner."}]}
                ],
            }
            own: dict[str, Any] = {
                "resourceType": "Observation",
                "status": "preliminary",
                "category": [{"coding": [{"system": SURVEY, "code": "survey"}]}],
                "code": {"coding": [{"system": SCORES, "code": "ecr-r-anxiety"}]},
                "subject": {"reference": f"Patient/{ADULT}"},
                "effectiveDateTime": "2025-02-03T20:00:00Z",
                "performer": [{"reference": f"Patient/{ADULT}"}],
                "valueQuantity": {"value": 3.5},
            }
            for resource in (entry, own):
                made = client.post(
                    resource["resourceType"],
                    json=resource,
                    headers={"Content-Type": "application/fhir+json"},
                )
                assert made.status_code == 201, made.text
            own_id = made.json()["id"]
        page = rowan.get("/careplan/")
        assert "Describe a moment in the last few days with someone close to you." in page.text
        assert "Dinner with my partner." in page.text
        assert f'value="Observation/{own_id}"' in page.text
        done = rowan.follow(
            rowan.post("/careplan/results/confirm", {"observation": f"Observation/{own_id}"})
        )
        assert 'data-status="delivered"' in done.text, done.text
        with rowan.fhir() as client:
            confirmed = client.get(f"Observation/{own_id}").json()
            assert confirmed["status"] == "final"
            assert confirmed["valueQuantity"]["value"] == 3.5
            (provenance,) = search(client, "Provenance", target=f"Observation/{own_id}")
            assert provenance["agent"][0]["who"]["reference"] == ROWAN
            assert provenance["activity"]["coding"][0]["code"] == "UPDATE"
        assert f'value="Observation/{own_id}"' not in rowan.get("/careplan/").text
    finally:
        rowan.close()


def test_what_the_grant_does_not_allow_is_said_before_and_refused_when_tried(
    app_env: tuple[Sandbox, AppServer], create_only_app: AppServer
) -> None:
    sandbox, _ = app_env
    rowan = Clinician(sandbox, create_only_app)
    try:
        page = rowan.get("/careplan/")
        assert page.status_code == 200, page.text
        # The plan written by the first test is there to read, not to revise or judge.
        assert 'id="update-problem"' in page.text
        assert "The EHR did not grant the app permission to update CarePlan." in page.text
        assert 'id="revise-link"' not in page.text
        refused = rowan.post("/careplan/reassess", {})
        assert refused.status_code == 409
        assert "permission to update CarePlan" in refused.text
        # A new ECR-R is delivered, but the goals cannot be updated: the page says so and why.
        with rowan.fhir() as client:
            before = [client.get(g["reference"]).json() for g in active_plan(client)["goal"]]
        shown = rowan.follow(rowan.submit_ecr_r(anxiety=4, avoidance=2))
        assert shown.status_code == 200, shown.text
        assert 'data-state="delivered"' in shown.text
        assert 'id="goals-not-updated"' in shown.text
        assert "permission to update CarePlan" in shown.text
        assert 'id="careplan-fallback"' in shown.text
        with rowan.fhir() as client:
            for goal in before:
                now = client.get(f"Goal/{goal['id']}").json()
                assert now["meta"]["versionId"] == goal["meta"]["versionId"]
        # A new plan is only creates: the approve button is enabled.
        draft = rowan.follow(rowan.post("/careplan/propose", {}))
        assert 'id="approve-button">' in draft.text and 'id="write-problem"' not in draft.text
    finally:
        rowan.close()


def test_the_clinician_adds_a_goal_and_an_activity_before_approving(
    app_env: tuple[Sandbox, AppServer],
) -> None:
    sandbox, server = app_env
    parent = "sandbox-parent-41"
    rowan = Clinician(sandbox, server, patient=parent)
    try:
        rowan.submit_ecr_r(anxiety=6, avoidance=4)
        draft = rowan.follow(rowan.post("/careplan/propose", {}))
        path = urlsplit(str(draft.url)).path.removeprefix(f"/app/{rowan.ctx}")
        fields = edit_form(draft.text)
        avoidance = next(n for n in range(2) if fields[f"goal-{n}-target"] == "3.25")
        # Remove the avoidance goal: its score becomes one a goal can be added for.
        removed = rowan.post(path, {**fields, f"goal-{avoidance}-remove": "1", "action": "update"})
        assert removed.status_code == 200, removed.text
        assert 'option value="ecr-r-avoidance"' in removed.text
        assert 'option value="life-story"' in removed.text
        # Add it back with the clinician's own target, and the life-story work.
        fields = edit_form(removed.text)
        added = rowan.post(
            path,
            {**fields, "new-goal-score": "ecr-r-avoidance", "new-goal-target": "3.5",
             "new-goal-due": "2031-01-31", "action": "add-goal"},
        )  # fmt: skip
        assert added.status_code == 200, added.text
        fields = edit_form(added.text)
        added = rowan.post(path, {**fields, "new-activity": "life-story", "action": "add-activity"})
        # A target on the wrong side of the baseline is refused with the field named.
        fields = edit_form(added.text)
        wrong = rowan.post(path, {**fields, "goal-1-target": "5", "action": "approve"})
        assert wrong.status_code == 422
        assert 'id="goal-1-target-error"' in wrong.text
        assert "at most 4.0 (the baseline is 4.0)" in wrong.text
        done = rowan.follow(rowan.post(path, {**fields, "action": "approve"}))
        assert 'data-status="delivered"' in done.text, done.text
        with rowan.fhir() as client:
            plan = active_plan(client, parent)
            goals = [client.get(g["reference"]).json() for g in plan["goal"]]
            targets = {
                g["target"][0]["measure"]["coding"][0]["code"]: (
                    g["target"][0]["detailRange"]["high"]["value"],
                    g["target"][0]["dueDate"],
                )
                for g in goals
            }
            assert targets["ecr-r-avoidance"] == (3.5, "2031-01-31")
            assert targets["ecr-r-anxiety"][0] == 4.75
            codes = [a["detail"]["code"]["coding"][0]["code"] for a in plan["activity"]]
            assert codes[-1] == "life-story-narrative"
    finally:
        rowan.close()
