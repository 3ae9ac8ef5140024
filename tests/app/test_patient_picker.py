"""The patient picker's rules (criteria, search parameters, result rows, who may pick) and its
pages through Flask's test client, against a small real HTTP server playing the FHIR server's
answers a real one does not give on demand (a declared GET-only search mode, a 500, a read that
answers with another Patient). The whole flow against the sandbox:
tests/e2e/test_patient_picker_e2e.py.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Request, Response

from attach_fhir.fhir_url import is_fhir_id
from ehr_sandbox.runner import ServerThread
from smart_app import create_app
from smart_app.picker.search import (
    PAGE_SIZE,
    Criteria,
    PatientRow,
    Results,
    results,
)
from smart_app.web.security import COOKIE_NAME

CSRF = "t" * 43
SID = "b" * 43
CTX = "ctx-" + "c" * 20
SEARCH_MODE = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-mode"


class Fhir:
    """Fixed answers by (method, path) over real HTTP; records method, path, query and body."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, Any]] = {}
        self.seen: list[tuple[str, str, str, str]] = []
        self._lock = threading.Lock()
        self.thread = ServerThread(0)
        self.base = f"http://127.0.0.1:{self.thread.port}/fhir"
        self.thread.start(self._app)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.seen.append(
                (
                    request.method,
                    request.path,
                    request.query_string.decode(),
                    request.get_data(as_text=True),
                )
            )
        status, body = self.routes.get((request.method, request.path), (404, {}))
        return Response(json.dumps(body), status, mimetype="application/fhir+json")(
            environ, start_response
        )

    def answer(self, method: str, path: str, status: int, body: Any) -> None:
        self.routes[(method, f"/fhir/{path}")] = (status, body)


@pytest.fixture(scope="module")
def served() -> Iterator[Fhir]:
    server = Fhir()
    yield server
    server.thread.stop()


@pytest.fixture
def fhir(served: Fhir) -> Fhir:
    served.routes.clear()
    served.seen.clear()
    return served


def make_app(fhir: Fhir, tmp_path: Path) -> Flask:
    registration = {
        "name": "stub",
        "iss": [fhir.base],
        "client_id": "attach",
        "client_type": "public",
        "allow_addresses": ["loopback"],
    }
    return create_app(
        {"REGISTRATIONS_DATA": {"registrations": [registration]}, "DATA_DIR": str(tmp_path)}
    )


def seed(app: Flask, client: FlaskClient, fhir: Fhir, **record: Any) -> None:
    """A browser session and a finished launch (user/ scopes, no patient unless given)."""
    store = app.extensions["attach_fhir"].store
    store.put("browser", SID, {"created": 0, "csrf": CSRF}, 600)
    client.set_cookie(COOKIE_NAME, SID)
    base = {
        "sid": SID,
        "iss": fhir.base,
        "kind": "clinician",
        "registration": "stub",
        "fhir_user": f"{fhir.base}/Practitioner/dr",
        "token_endpoint": f"{fhir.base}/token",
        "token": {"access_token": "tok", "expires_at": 4_000_000_000, "scope": "user/Patient.rs"},
    }
    store.put("launch", CTX, {**base, **record}, 600)


def launched(fhir: Fhir, tmp_path: Path, **record: Any) -> tuple[Flask, FlaskClient]:
    """An app registered with ``fhir`` and a browser with a launch ``seed``-ed in it."""
    app = make_app(fhir, tmp_path)
    client = app.test_client()
    seed(app, client, fhir, **record)
    return app, client


def search(client: FlaskClient, **criteria: str) -> Any:
    """Post the picker's search form."""
    return client.post(f"/app/{CTX}/patients/", data={"csrf_token": CSRF, **criteria})


def choose(client: FlaskClient, patient_id: str) -> Any:
    """Post the picker's choice of a patient."""
    return client.post(
        f"/app/{CTX}/patients/choose", data={"csrf_token": CSRF, "patient_id": patient_id}
    )


def patient(pid: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"text": name}], **extra}


def searchset(*resources: dict[str, Any], **extra: Any) -> dict[str, Any]:
    entry = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    return {"resourceType": "Bundle", "type": "searchset", "entry": entry, **extra}


def statement(mode: str | None) -> dict[str, Any]:
    patient_entry: dict[str, Any] = {"type": "Patient", "interaction": [{"code": "search-type"}]}
    if mode:
        patient_entry["extension"] = [{"url": SEARCH_MODE, "valueCode": mode}]
    return {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "resource": [patient_entry]}],
    }


# -- the pure rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({}, "Enter a name, a birth date or an identifier."),
        ({"name": "   "}, "Enter a name, a birth date or an identifier."),
        ({"name": "A"}, "Enter at least 2 letters of the name."),
        ({"birth_date": "22/10/1997"}, "Enter the birth date as a date in the past"),
        ({"birth_date": "1997-02-30"}, "Enter the birth date as a date in the past"),
        ({"birth_date": "2999-01-01"}, "Enter the birth date as a date in the past"),
        ({"name": "x" * 101}, "The name is too long or holds characters it cannot."),
        ({"identifier": "MRN\x001"}, "The identifier is too long or holds characters it cannot."),
    ],
)
def test_criteria_problems(form: dict[str, str], problem: str) -> None:
    _, problems = Criteria.from_form(form)
    assert len(problems) == 1 and problems[0].startswith(problem)


def test_criteria_become_search_parameters_each_word_a_name_and_specials_escaped() -> None:
    criteria, problems = Criteria.from_form(
        {"name": "  O,Neil   Ada$ ", "birth_date": "1997-10-22", "identifier": "sys|MRN\\1"}
    )
    assert problems == []
    assert criteria == Criteria("O,Neil Ada$", "1997-10-22", "sys|MRN\\1")
    assert criteria.params() == [
        ("name", "O\\,Neil"),  # a bare comma would mean "O or Neil"
        ("name", "Ada\\$"),
        ("birthdate", "1997-10-22"),
        ("identifier", "sys\\|MRN\\\\1"),  # a value in any system, not system|value
        ("_count", "20"),
    ]
    today = dt.date.today().isoformat()
    assert Criteria.from_form({"birth_date": today})[1] == []


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("sandbox-adult-29", True),
        ("A.b-9", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("", False),
        ("../Observation/1", False),
        ("p1/_history/2", False),
        ("p1?_format=xml", False),
        ("p 1", False),
        (None, False),
    ],
)
def test_fhir_ids(value: Any, ok: bool) -> None:
    assert is_fhir_id(value) is ok


def test_rows_keep_only_patient_matches_prefer_the_mrn_and_cap_the_page() -> None:
    mrn = {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
        },
        "value": "MRN-7",
    }
    first = patient(
        "p0",
        "<b>Ada</b>",
        birthDate="1990-01-02",
        gender="female",
        identifier=[{"value": "SSN-1"}, mrn],
    )
    others = [patient(f"p{i}", f"Name {i}") for i in range(1, PAGE_SIZE + 1)]
    bundle = searchset(first, *others)
    bundle["entry"] += [
        {"resource": {"resourceType": "Organization", "id": "o1"}},
        {"resource": patient("inc", "Included"), "search": {"mode": "include"}},
        {"resource": patient("../x", "Bad id")},
    ]
    found = results(bundle)
    assert len(found.rows) == PAGE_SIZE and found.more  # 21 matches, 20 shown
    assert found.rows[0] == PatientRow("p0", "<b>Ada</b>", "1990-01-02", "female", "MRN-7")
    assert [r.id for r in found.rows[1:]] == [f"p{i}" for i in range(1, PAGE_SIZE)]
    assert results(searchset(patient("p1", "One"))).more is False
    next_page = {"link": [{"relation": "next", "url": "x"}]}
    assert results(searchset(patient("p1", "One"), **next_page)).more is True
    assert results(searchset(patient("p1", "One"), total=3)).more is True
    assert results(searchset({"resourceType": "Patient", "id": "p9"})).rows == (
        PatientRow("p9", "(no name recorded)", "", "", ""),
    )


def _unescape(value: str) -> str:
    """A FHIR search value read back: ``\\x`` is x; a bare ``,``, ``$`` or ``|`` would split it."""
    out, chars = [], iter(value)
    for c in chars:
        assert c not in ",$|", value
        out.append(next(chars) if c == "\\" else c)
    return "".join(out)


_TYPED = st.lists(
    st.sampled_from(["&_include=Patient:link", ",b", "$x|y", "name:exact=", "\\", " ", "%26"])
    | st.text(max_size=6),
    max_size=6,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_TYPED, _TYPED)
def test_typed_criteria_never_become_other_search_parameters(name: str, ident: str) -> None:
    criteria, problems = Criteria.from_form({"name": name, "identifier": ident})
    if problems:
        return
    sent = parse_qsl(urlencode(criteria.params()), keep_blank_values=True)
    assert sent == criteria.params()  # what the server parses is what was built
    words = criteria.name.split()
    keys = ["name"] * len(words) + ["identifier"] * bool(criteria.identifier) + ["_count"]
    assert [k for k, _ in sent] == keys
    assert [_unescape(v) for k, v in sent if k == "name"] == words
    assert [_unescape(v) for k, v in sent if k == "identifier"] == (
        [criteria.identifier] if criteria.identifier else []
    )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["use", "text", "given", "family", "type", "coding", "code", "value"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)
_PATIENT_FIELDS = ["name", "identifier", "birthDate", "gender"]


def test_a_malformed_searchset_gives_the_rows_it_can() -> None:
    odd = patient("p1", "x", identifier=[{"value": "M-1", "type": "MR"}, 7])
    odd["name"] = [{"given": True, "family": "Example"}]
    bundle = {"entry": [{"resource": odd, "search": "match"}, True], "link": 3, "total": "9"}
    assert results(bundle) == Results((PatientRow("p1", "Example", "", "", "M-1"),), False)
    assert results({"entry": True}) == Results((), False)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.dictionaries(st.sampled_from(_PATIENT_FIELDS), _JSON), max_size=3),
    st.dictionaries(st.sampled_from(["entry", "link", "total"]), _JSON),
)
def test_any_searchset_a_server_sends_is_read_without_raising(
    patients: list[dict[str, Any]], rest: dict[str, Any]
) -> None:
    entries = [
        {"resource": {"resourceType": "Patient", "id": f"p{n}", **fields}}
        for n, fields in enumerate(patients)
    ]
    found = results({**rest, "entry": [*entries, *_as_list(rest.get("entry"))]})
    assert [row.id for row in found.rows] == [f"p{n}" for n in range(len(patients))]
    assert all(isinstance(v, str) for row in found.rows for v in vars(row).values())


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- the pages --------------------------------------------------------------------------------


def test_results_are_inert_and_searched_by_post(fhir: Fhir, tmp_path: Path) -> None:
    fhir.answer("GET", "metadata", 200, statement(None))
    hostile = patient(
        "p1",
        '<script>alert(1)</script>"><img src=x onerror=alert(2)>',
        birthDate="1990-01-02",
        gender='"><svg onload=alert(3)>',
        identifier=[{"value": "<i>MRN</i>"}],
    )
    fhir.answer("POST", "Patient/_search", 200, searchset(hostile))
    _, client = launched(fhir, tmp_path)
    page = search(client, name="Ada <b>")
    text = page.get_data(as_text=True)
    assert page.status_code == 200, text
    assert "<script>" not in text and "<img" not in text and "<svg" not in text
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in text
    )
    assert "<dd>&lt;i&gt;MRN&lt;/i&gt;</dd>" in text
    assert 'value="Ada &lt;b&gt;"' in text  # the criteria shown again, escaped
    assert '<button type="submit" name="patient_id" value="p1"' in text
    method, path, query, body = fhir.seen[-1]
    assert (method, path, query) == ("POST", "/fhir/Patient/_search", "")
    assert parse_qsl(body) == [("name", "Ada"), ("name", "<b>"), ("_count", "20")]


def test_a_server_declaring_get_only_is_searched_by_get(fhir: Fhir, tmp_path: Path) -> None:
    fhir.answer("GET", "metadata", 200, statement("GET"))
    fhir.answer("GET", "Patient", 200, searchset())
    _, client = launched(fhir, tmp_path)
    page = search(client, identifier="M-1")
    assert page.status_code == 200
    assert 'id="no-match"' in page.get_data(as_text=True)
    assert [(m, p, q) for m, p, q, _ in fhir.seen] == [
        ("GET", "/fhir/metadata", ""),
        ("GET", "/fhir/Patient", "identifier=M-1&_count=20"),
    ]


def test_a_server_error_is_shown_on_the_picker(fhir: Fhir, tmp_path: Path) -> None:
    fhir.answer("POST", "Patient/_search", 500, {"resourceType": "OperationOutcome"})
    _, client = launched(fhir, tmp_path)
    page = search(client, name="Ada")
    text = page.get_data(as_text=True)
    assert page.status_code == 502
    assert 'id="search-error" data-error-code="fhir_server_error"' in text
    assert "The FHIR server had a problem." in text
    assert 'id="patient-search"' in text  # the form stays, to try again


def test_criteria_problems_are_listed_and_nothing_is_sent(fhir: Fhir, tmp_path: Path) -> None:
    _, client = launched(fhir, tmp_path)
    page = search(client, name="A")
    assert page.status_code == 422
    assert "<li>Enter at least 2 letters of the name.</li>" in page.get_data(as_text=True)
    assert fhir.seen == []


def test_a_read_answering_another_patient_is_not_chosen(fhir: Fhir, tmp_path: Path) -> None:
    fhir.answer("GET", "Patient/p1", 200, patient("p2", "Someone else"))
    app, client = launched(fhir, tmp_path)
    page = choose(client, "p1")
    assert page.status_code == 403
    assert 'data-error-code="patient_not_readable"' in page.get_data(as_text=True)
    record = app.extensions["attach_fhir"].store.get("launch", CTX)
    assert "patient" not in record


def test_choosing_moves_the_launch_and_marks_the_app_as_the_chooser(
    fhir: Fhir, tmp_path: Path
) -> None:
    fhir.answer("GET", "Patient/p1", 200, patient("p1", "Ada Example", birthDate="1990-01-02"))
    app, client = launched(fhir, tmp_path, encounter="e1", need_patient_banner=False)
    chosen = choose(client, "p1")
    assert chosen.status_code == 303
    new_ctx = chosen.headers["Location"].split("/")[2]
    store = app.extensions["attach_fhir"].store
    assert store.get("launch", CTX) is None
    record = store.get("launch", new_ctx)
    assert (record["patient"], record["patient_chosen_by"]) == ("p1", "app")
    assert "encounter" not in record  # the EHR's encounter belongs to no chosen patient
    landing = client.get(chosen.headers["Location"]).get_data(as_text=True)
    # need_patient_banner false, but the EHR's banner cannot show a patient it did not choose
    assert 'id="patient-name">Ada Example<' in landing
    assert f'href="/app/{new_ctx}/patients/" id="change-patient">Change patient</a>' in landing


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        # a patient's own launch gets the friendly page of every clinician page (web.audience)
        ({"kind": "patient", "patient": "p1"}, "This page is for your care team"),
        ({"kind": "patient"}, "This page is for your care team"),
        ({"fhir_user": "https://x/fhir/RelatedPerson/r1"}, "Only clinicians choose a patient"),
        # a patient's fhirUser however it is written, and users that are no clinician
        ({"fhir_user": "https://x/fhir/Patient/p1/_history/2"}, "is not a clinician&#39;s."),
        ({"fhir_user": "Patient/p1/"}, "is not a clinician&#39;s."),
        ({"fhir_user": "https://x/fhir/Person/u1"}, "is not a clinician&#39;s."),
        ({"fhir_user": "https://x/fhir/Device/d1"}, "is not a clinician&#39;s."),
        ({"fhir_user": None}, "this sign-in did not say who it is."),
        ({"patient": "p1"}, "The EHR chose this launch&#39;s patient."),
        (
            {"token": {"access_token": "t", "expires_at": 4e9, "scope": "patient/Patient.rs"}},
            "The EHR has not allowed this app to search for and read patients.",
        ),
        (
            {"token": {"access_token": "t", "expires_at": 4e9, "scope": "user/Patient.r"}},
            "The EHR has not allowed this app to search for and read patients.",
        ),
    ],
)
def test_who_may_not_pick(fhir: Fhir, tmp_path: Path, record: dict[str, Any], reason: str) -> None:
    _, client = launched(fhir, tmp_path, **record)
    for response in (
        client.get(f"/app/{CTX}/patients/"),
        search(client, name="Ada"),
        choose(client, "p2"),
    ):
        text = response.get_data(as_text=True)
        assert response.status_code == 403
        code = "clinician_page" if record.get("kind") == "patient" else "patient_choice_refused"
        assert f'data-error-code="{code}"' in text and reason in text
    assert [s for s in fhir.seen if "/Patient" in s[1]] == []


@pytest.mark.parametrize(
    "fhir_user", ["Practitioner/dr", "https://x/fhir/PractitionerRole/r1/_history/3"]
)
def test_a_clinician_however_written_may_pick(fhir: Fhir, tmp_path: Path, fhir_user: str) -> None:
    _, client = launched(fhir, tmp_path, fhir_user=fhir_user)
    page = client.get(f"/app/{CTX}/patients/")
    assert page.status_code == 200 and 'id="patient-search"' in page.get_data(as_text=True)


def test_a_landing_without_a_patient_offers_the_search_only_where_allowed(
    fhir: Fhir, tmp_path: Path
) -> None:
    app, client = launched(fhir, tmp_path)
    page = client.get(f"/app/{CTX}/").get_data(as_text=True)
    assert '<section class="find-patient" id="find-patient"' in page
    assert f'action="/app/{CTX}/patients/"' in page and f'value="{CSRF}"' in page
    narrow = {"access_token": "t", "expires_at": 4e9, "scope": "patient/Patient.rs"}
    seed(app, client, fhir, token=narrow)
    page = client.get(f"/app/{CTX}/").get_data(as_text=True)
    assert 'id="find-patient"' not in page
    assert (
        '<p class="notice" id="no-patient">No patient was selected in the EHR. The EHR has not '
        "allowed this app to search for and read patients.</p>"
    ) in page


def test_a_search_after_the_launch_expired_keeps_nothing(fhir: Fhir, tmp_path: Path) -> None:
    expired = {"access_token": "old", "expires_at": 1, "scope": "user/Patient.rs"}  # no refresh
    app, client = launched(fhir, tmp_path, token=expired)
    page = search(client, name="Ada", birth_date="")
    text = page.get_data(as_text=True)
    assert page.status_code == 401 and 'data-error-code="authorization_expired"' in text
    assert 'id="kept-note"' not in text  # no promise that the criteria were kept
    path = Path(app.extensions["attach_fhir"].store.path)
    with sqlite3.connect(path) as db:
        kept = db.execute("SELECT COUNT(*) FROM attach_session WHERE ns = 'kept_form'").fetchone()
    assert kept == (0,)
    assert [s for s in fhir.seen if "/Patient" in s[1]] == []
