"""Pieces of the launch checked in isolation: colours, scopes, addresses, names."""

from __future__ import annotations

import ipaddress

import pytest

from attach_fhir.human_names import human_name
from smart_app.launch import style
from smart_app.launch.authorization import _is_our_issuer
from smart_app.web.discovery_cache import SmartConfiguration
from smart_app.web.netguard import address_class
from smart_app.web.scopes import Granted, default_scopes, request_scopes, server_is_v1_only, to_v1


@pytest.mark.parametrize(
    "value",
    ["#fff", "#FFFFFF", "#12345678", "rgb(1, 2, 3)", "rgba(10,20,30,0.5)", "rgb(10%,20%,30%)"],
)
def test_colours_that_pass(value: str) -> None:
    assert style.is_colour(value)


@pytest.mark.parametrize(
    "value",
    [
        "red",  # named colours are harmless but not needed; the pattern stays strict
        "#fff;background:url(https://evil.example/x)",
        "#fff}body{display:none",
        "expression(alert(1))",
        "rgb(1,2,3);x:y",
        "url(javascript:alert(1))",
        "#ggg",
        "var(--x)",
        "rgb(1,2,3)\n",
        12,
        None,
    ],
)
def test_colours_that_fail(value: object) -> None:
    assert not style.is_colour(value)


def test_only_valid_colours_reach_the_stylesheet() -> None:
    doc = {
        "color_background": "#edeae3",
        "color_text": "#303030;}*{display:none",
        "color_highlight": "rgb(105, 181, 206)",
        "font_family_body": "Georgia, serif",
        "dim_border_radius": "6px",
    }
    values = style.colours(doc)
    assert values == {"--ehr-background": "#edeae3", "--ehr-highlight": "rgb(105, 181, 206)"}
    # The highlight is made readable on the background (tests/app/test_style.py): rgb(105, 181,
    # 206) x 0.6 = (63, 109, 124), the first 5% step towards black reaching 4.5:1 on #edeae3.
    assert style.stylesheet(values) == (
        ":root {\n  --ehr-background: #edeae3;\n  --ehr-highlight: #3f6d7c;\n}\n"
    )


def _config(capabilities: tuple[str, ...], scopes: tuple[str, ...]) -> SmartConfiguration:
    return SmartConfiguration(
        authorization_endpoint="https://a.example/authorize",
        token_endpoint="https://a.example/token",
        source="smart-configuration",
        capabilities=capabilities,
        scopes_supported=scopes,
    )


def test_v1_detection() -> None:
    assert not server_is_v1_only(_config(("permission-v2", "permission-v1"), ()))
    assert not server_is_v1_only(_config((), ("patient/Patient.rs", "patient/*.read")))
    assert server_is_v1_only(_config(("permission-v1",), ()))
    assert server_is_v1_only(_config((), ("user/*.read", "openid")))
    assert not server_is_v1_only(_config((), ()))  # nothing said: speak v2
    only_capability_statement = SmartConfiguration(
        authorization_endpoint="https://a.example/authorize",
        token_endpoint="https://a.example/token",
        source="capability-statement",
    )
    assert server_is_v1_only(only_capability_statement)  # SMART 2 servers have the well-known


def test_to_v1_by_hand() -> None:
    assert to_v1(["launch", "patient/Patient.r", "user/Goal.crus", "patient/Observation.c"]) == [
        "launch",
        "patient/Patient.read",
        "user/Goal.read",
        "user/Goal.write",
        "patient/Observation.write",
    ]


def test_clinician_scopes_without_a_server_picker_drop_launch_patient() -> None:
    with_picker = request_scopes("clinician", None, _config(("context-standalone-patient",), ()))
    without = request_scopes("clinician", None, _config(("launch-standalone",), ()))
    assert with_picker[0] == "launch/patient" and "launch/patient" not in without
    assert default_scopes("clinician")[3] == "user/Patient.rs"


@pytest.mark.parametrize(
    ("scope", "resource", "interaction", "expected"),
    [
        ("patient/Observation.cs", "Observation", "c", True),
        ("patient/Observation.cs", "Observation", "u", False),
        ("patient/Observation.cs", "Goal", "c", False),
        ("patient/*.rs", "Goal", "r", True),
        ("patient/*.rs", "Goal", "c", False),
        ("patient/Goal.write", "Goal", "u", True),
        ("patient/Goal.write", "Goal", "r", False),
        ("patient/Goal.read", "Goal", "s", True),
        ("user/*.*", "CarePlan", "d", True),
        ("patient/Observation.rs?category=survey", "Observation", "r", True),
        ("launch openid", "Patient", "r", False),
    ],
)
def test_granted_scopes(scope: str, resource: str, interaction: str, expected: bool) -> None:
    assert Granted.parse(scope).allows(resource, interaction) is expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "private"),
        ("0.0.0.0", "reserved"),
        ("224.0.0.1", "reserved"),
        ("8.8.8.8", "public"),
        ("2001:4860:4860::8888", "public"),
    ],
)
def test_address_classes(address: str, expected: str) -> None:
    assert address_class(ipaddress.ip_address(address)) == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([{"text": "Alex Synthetic", "given": ["A"], "family": "S"}], "Alex Synthetic"),
        ([{"given": ["Noor", "J"], "family": "Synthetic"}], "Noor J Synthetic"),
        ([{"use": "nickname", "text": "Al"}, {"use": "official", "text": "Alex"}], "Alex"),
        ([{"family": "<b>Only</b>"}], "<b>Only</b>"),  # escaping is the template's job
        ([], ""),
        (None, ""),
        ("Alex", ""),
    ],
)
def test_human_name(names: object, expected: str) -> None:
    assert human_name(names) == expected


@pytest.mark.parametrize(
    ("issuer", "callback_iss", "expected"),
    [
        ("https://a.example/auth", "https://a.example/auth", True),
        ("https://a.example/auth", "https://a.example/auth/", False),
        ("https://a.example/auth", "https://a.example", False),
        (None, "https://a.example", True),  # v1 server: the authorize endpoint's own base
        (None, "https://a.example/as", True),
        (None, "https://a.example/a", False),  # not a path-segment prefix of /as/authorize
        (None, "https://b.example", False),
        (None, "http://a.example", False),
    ],
)
def test_rfc9207_issuer_rule(issuer: str | None, callback_iss: str, expected: bool) -> None:
    pending = {"issuer": issuer, "authorization_endpoint": "https://a.example/as/authorize"}
    assert _is_our_issuer(callback_iss, pending) is expected


def test_default_scopes_create_provenance_in_v2_and_v1() -> None:
    """The write-back's Provenance needs create, in the launch's compartment, in both syntaxes."""
    assert default_scopes("ehr")[-2:] == ["patient/Provenance.c", "offline_access"]
    assert "patient/Provenance.c" in default_scopes("patient")
    assert default_scopes("clinician")[-2] == "user/Provenance.c"
    v1 = to_v1(default_scopes("clinician"))
    assert "user/Provenance.write" in v1 and "user/Provenance.read" not in v1


def test_patients_read_and_close_their_tasks_but_cannot_confirm_scores() -> None:
    """A patient's launch reads its assigning Tasks and marks one completed by its response;
    only clinicians update (confirm) scores."""
    patient = default_scopes("patient")
    assert "patient/Task.rus" in patient
    assert "patient/Task.write" in to_v1(patient) and "patient/Task.read" in to_v1(patient)
    assert "patient/Observation.crs" in patient and "patient/Observation.crus" not in patient
    assert "patient/Observation.crus" in default_scopes("ehr")
    assert "user/Observation.crus" in default_scopes("clinician")
    assert not any("/Task." in s for s in default_scopes("ehr") + default_scopes("clinician"))
