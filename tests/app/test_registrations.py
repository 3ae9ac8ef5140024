"""Registrations: schema validation naming the bad key, exact iss matching, keys and JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from attach_fhir.cli import main as cli_main
from smart_app import create_app
from smart_app.web.errors import ConfigurationError, UnknownIssuer
from smart_app.web.registrations import load, parse

ISS = "https://ehr.example.org/fhir/R4"


def reg(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Example EHR",
        "iss": [ISS],
        "client_id": "attach-fhir",
        "client_type": "public",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def problems(data: Any, tmp_path: Path) -> str:
    with pytest.raises(ConfigurationError) as caught:
        parse(data, base_dir=tmp_path)
    return caught.value.description


def test_a_valid_file_loads_and_matches_its_iss(tmp_path: Path) -> None:
    path = tmp_path / "registrations.json"
    path.write_text(json.dumps({"registrations": [reg()]}))
    regs = load(path)
    assert regs.lookup(ISS).client_id == "attach-fhir"
    assert regs.lookup(ISS).auth_method == "none"


@pytest.mark.parametrize(
    "look_alike",
    [
        ISS + "/",
        ISS.upper(),
        "https://EHR.example.org/fhir/R4",
        "https://ehr.example.org:443/fhir/R4",
        "https://ehr.example.org./fhir/R4",
        "https://ehr.example.org.evil.test/fhir/R4",
        "https://evil.test/ehr.example.org/fhir/R4",
        "https://ehr.example.org@evil.test/fhir/R4",
        "http://ehr.example.org/fhir/R4",
        "https://ehr.example.org/fhir/R4?",
        "https://ehr.example.org/fhir/R4#",
        "https://ehr.example.org/fhir/r4",
        "https://ehr.example.org/fhir/R4 ",
        "https://ehr.example.org/fhir/./R4",
        "https://ehr.example.org/fhir%2FR4",
        "https://ehr.exampIe.org/fhir/R4",  # capital i for l
        "https://ehr.еxample.org/fhir/R4",  # Cyrillic e
        "",
    ],
)
def test_look_alikes_are_not_the_registered_iss(look_alike: str, tmp_path: Path) -> None:
    regs = parse({"registrations": [reg()]}, base_dir=tmp_path)
    with pytest.raises(UnknownIssuer):
        regs.lookup(look_alike)


def test_schema_errors_name_every_bad_key(tmp_path: Path) -> None:
    data = {
        "registrations": [
            reg(client_type="confidential"),
            reg(name="Other", iss=["ftp://x.example/fhir"], clientid="typo"),
        ]
    }
    text = problems(data, tmp_path)
    assert "$.registrations[0].client_type: 'confidential' is not one of" in text
    assert "$.registrations[1].iss[0]: 'ftp://x.example/fhir' does not match" in text
    assert "$.registrations[1]: Additional properties are not allowed ('clientid'" in text


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"client_type": "confidential-symmetric"}, "'client_secret' is a required property"),
        ({"client_type": "confidential-asymmetric"}, "'private_key' is a required property"),
        ({"client_secret": "0123456789abcdef0123"}, "$.registrations[0]"),
        ({"client_type": "confidential-symmetric", "client_secret": "short"}, "too short"),
        ({"allow_addresses": ["link-local"]}, "$.registrations[0].allow_addresses[0]"),
        ({"scopes": "launch  openid"}, "$.registrations[0].scopes"),
        ({"frame_ancestors": ["https://ehr.example.org/path"]}, "frame_ancestors[0]"),
    ],
)
def test_client_type_rules(fields: dict[str, Any], needle: str, tmp_path: Path) -> None:
    assert needle in problems({"registrations": [reg(**fields)]}, tmp_path)


def test_a_client_secret_can_come_from_a_mounted_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("  s3cret-from-a-file-0123\n", encoding="utf-8")
    symmetric = {"client_type": "confidential-symmetric", "client_secret_file": "secret"}
    loaded = parse({"registrations": [reg(**symmetric)]}, base_dir=tmp_path)
    assert loaded.items[0].client_secret == "s3cret-from-a-file-0123"
    both = {**symmetric, "client_secret": "0123456789abcdef0123"}
    assert "$.registrations[0]" in problems({"registrations": [reg(**both)]}, tmp_path)
    missing = {**symmetric, "client_secret_file": "absent"}
    assert "client_secret_file: cannot read" in problems(
        {"registrations": [reg(**missing)]}, tmp_path
    )
    (tmp_path / "short").write_text("short\n", encoding="utf-8")
    short = {**symmetric, "client_secret_file": "short"}
    assert "too short" in problems({"registrations": [reg(**short)]}, tmp_path)
    public = {"client_secret_file": "secret"}
    assert "$.registrations[0]" in problems({"registrations": [reg(**public)]}, tmp_path)


@pytest.mark.parametrize(
    ("iss", "allow", "needle"),
    [
        ("http://ehr.example.org/fhir", [], "must use https"),
        ("https://169.254.169.254/fhir", ["private", "loopback"], "link-local"),
        ("https://[fe80::1]/fhir", ["private", "loopback"], "link-local"),
        ("https://10.1.2.3/fhir", [], "private"),
        ("https://[::ffff:192.168.0.9]/fhir", [], "private"),
        ("http://127.0.0.1:8080/fhir", [], "loopback"),
        ("https://0.0.0.0/fhir", ["private", "loopback"], "reserved"),
    ],
)
def test_forbidden_literal_addresses_fail_at_start_up(
    iss: str, allow: list[str], needle: str, tmp_path: Path
) -> None:
    text = problems({"registrations": [reg(iss=[iss], allow_addresses=allow)]}, tmp_path)
    assert "$.registrations[0].iss[0]" in text and needle in text


@pytest.mark.parametrize(
    ("iss", "allow"),
    [
        ("https://10.1.2.3/fhir", ["private"]),
        ("http://127.0.0.1:8080/fhir", ["loopback"]),
        ("http://localhost:8080/fhir", ["loopback"]),
    ],
)
def test_listed_address_classes_are_allowed(iss: str, allow: list[str], tmp_path: Path) -> None:
    regs = parse({"registrations": [reg(iss=[iss], allow_addresses=allow)]}, base_dir=tmp_path)
    assert regs.lookup(iss).allow_addresses == tuple(allow)


def test_duplicates_are_refused(tmp_path: Path) -> None:
    twice = {"registrations": [reg(), reg(name="Second")]}
    assert "$.registrations[1].iss[0]" in problems(twice, tmp_path)
    same_name = {"registrations": [reg(), reg(iss=["https://other.example/fhir"])]}
    assert "$.registrations[1].name: duplicate name" in problems(same_name, tmp_path)


def thumbprint(public: dict[str, str], members: tuple[str, ...]) -> str:
    """RFC 7638, computed by hand: SHA-256 of the required members, sorted, no spaces."""
    canonical = json.dumps({k: public[k] for k in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_jwks_publishes_public_members_of_both_keys_during_rotation(tmp_path: Path) -> None:
    current = RSAKey.generate_key(2048, private=True)
    (tmp_path / "current.pem").write_bytes(current.as_pem(private=True))
    following = ECKey.generate_key("P-384", private=True)
    (tmp_path / "next.json").write_text(json.dumps(following.as_dict(private=True)))
    data = {
        "registrations": [
            reg(
                client_type="confidential-asymmetric",
                private_key="current.pem",
                published_keys=["next.json"],
            )
        ]
    }
    app = create_app(
        {
            "REGISTRATIONS_DATA": data,
            "REGISTRATIONS_BASE_DIR": str(tmp_path),
            "DATA_DIR": str(tmp_path),
        }
    )
    response = app.test_client().get("/jwks.json")
    keys = {k["kid"]: k for k in response.get_json()["keys"]}

    rsa_public = current.as_dict(private=False)
    ec_public = following.as_dict(private=False)
    rsa_kid = thumbprint(rsa_public, ("e", "kty", "n"))
    ec_kid = thumbprint(ec_public, ("crv", "kty", "x", "y"))
    assert set(keys) == {rsa_kid, ec_kid}
    assert keys[rsa_kid] == {
        "kty": "RSA",
        "n": rsa_public["n"],
        "e": rsa_public["e"],
        "kid": rsa_kid,
        "alg": "RS384",
        "use": "sig",
        "key_ops": ["verify"],
    }
    assert keys[ec_kid]["alg"] == "ES384" and keys[ec_kid]["x"] == ec_public["x"]
    private_members = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
    assert not any(private_members & set(k) for k in keys.values())
    assert response.headers["Cache-Control"] == "public, max-age=300"


@pytest.mark.parametrize(
    ("key", "alg", "needle"),
    [
        (lambda: ECKey.generate_key("P-256", private=True), None, "must use curve P-384"),
        (lambda: RSAKey.generate_key(2048, private=True), "ES384", "does not fit"),
        (lambda: RSAKey.generate_key(2048, private=False), None, "must hold a private"),
    ],
)
def test_unsuitable_keys_fail_at_start_up(
    key: Any, alg: str | None, needle: str, tmp_path: Path
) -> None:
    made = key()
    (tmp_path / "key.json").write_text(json.dumps(made.as_dict(private=made.is_private)))
    data = {
        "registrations": [
            reg(client_type="confidential-asymmetric", private_key="key.json", private_key_alg=alg)
        ]
    }
    text = problems(data, tmp_path)
    assert "$.registrations[0].private_key" in text and needle in text


def test_missing_key_file_names_the_key(tmp_path: Path) -> None:
    data = {"registrations": [reg(client_type="confidential-asymmetric", private_key="no.pem")]}
    text = problems(data, tmp_path)
    assert "$.registrations[0].private_key: cannot read key file" in text


def test_serve_refuses_a_bad_file_and_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "registrations.json"
    path.write_text(json.dumps({"registrations": [reg(client_type="nope")]}))
    assert cli_main(["serve", "--registrations", str(path)]) == 2
    assert "$.registrations[0].client_type" in capsys.readouterr().err


def test_write_back_switches_default_off_and_must_be_booleans(tmp_path: Path) -> None:
    plain = parse({"registrations": [reg()]}, base_dir=tmp_path).lookup(ISS)
    assert (plain.create_questionnaires, plain.security_labels) == (False, False)
    both = reg(create_questionnaires=True, security_labels=True)
    asked = parse({"registrations": [both]}, base_dir=tmp_path).lookup(ISS)
    assert (asked.create_questionnaires, asked.security_labels) == (True, True)
    text = problems({"registrations": [reg(security_labels="yes")]}, tmp_path)
    assert "$.registrations[0].security_labels: 'yes' is not of type 'boolean'" in text
    text = problems({"registrations": [reg(create_questionnaires=1)]}, tmp_path)
    assert "$.registrations[0].create_questionnaires: 1 is not of type 'boolean'" in text
