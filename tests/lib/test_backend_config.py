"""The backend-services configuration file: valid files load, every bad key is named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from attach_fhir.io.backend_services import (
    BackendConfigError,
    UnknownBackend,
    backend_for,
    load_backend_config,
)

ISS = "https://ehr.example.org/fhir"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    rsa = RSAKey.generate_key(2048, private=True)
    (folder / "rsa.pem").write_bytes(rsa.as_pem(private=True))
    ec = ECKey.generate_key("P-384", private=True, parameters={"kid": "ec-1"})
    (folder / "ec.json").write_text(json.dumps(ec.as_dict(private=True)))
    p256 = ECKey.generate_key("P-256", private=True)
    (folder / "p256.json").write_text(json.dumps(p256.as_dict(private=True)))
    (folder / "rsa-thumbprint.txt").write_text(rsa.thumbprint())
    return folder


def entry(**overrides: Any) -> dict[str, Any]:
    base = {
        "iss": ISS,
        "client_id": "attach-fhir-backend",
        "private_key": "rsa.pem",
        "alg": "RS384",
        "scopes": ["system/QuestionnaireResponse.rs", "system/Observation.cs"],
    }
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def write(folder: Path, data: Any) -> Path:
    path = folder / "backend.json"
    path.write_text(json.dumps(data))
    return path


def error(folder: Path, data: Any) -> str:
    with pytest.raises(BackendConfigError) as caught:
        load_backend_config(write(folder, data))
    return caught.value.description


def test_a_valid_file_loads_pem_and_jwk_keys(keys: Path) -> None:
    configs = load_backend_config(
        write(
            keys,
            [
                entry(iss=ISS + "/"),
                entry(iss="https://other.example/r4", private_key="ec.json", alg="ES384"),
            ],
        )
    )
    assert [c.iss for c in configs] == [ISS, "https://other.example/r4"]
    assert configs[0].scope == "system/QuestionnaireResponse.rs system/Observation.cs"
    assert configs[0].key.kid == (keys / "rsa-thumbprint.txt").read_text()  # no kid: thumbprint
    assert (configs[1].key.alg, configs[1].key.kid) == ("ES384", "ec-1")
    assert backend_for(configs, ISS + "/") is configs[0]
    with pytest.raises(UnknownBackend):
        backend_for(configs, "https://ehr.example.org/fhir2")


def test_a_configured_kid_wins(keys: Path) -> None:
    (config,) = load_backend_config(write(keys, [entry(kid="2025-rotation")]))
    assert config.key.kid == "2025-rotation"


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ([entry(client_id=None)], "$[0].client_id: required"),
        ([entry(alg="RS256")], "$[0].alg: 'RS256' is not one of ['RS384', 'ES384']"),
        ([entry(scopes=["patient/Observation.rs"])], "$[0].scopes[0]: 'patient/Observation.rs'"),
        ([entry(scopes=[])], "$[0].scopes: [] should be non-empty"),
        ([entry(iss="ehr.example.org/fhir")], "$[0].iss: 'ehr.example.org/fhir' does not match"),
        ([{**entry(), "secret": "x"}], "$[0]: Additional properties are not allowed ('secret'"),
        ({"iss": ISS}, "is not of type 'array'"),
    ],
)
def test_schema_errors_name_the_key(keys: Path, document: Any, named: str) -> None:
    assert named in error(keys, document)


def test_key_problems_name_the_key(keys: Path) -> None:
    assert "$[0].private_key: alg RS384 does not fit the key" in error(
        keys, [entry(private_key="ec.json")]
    )
    assert "$[0].private_key: EC key" in error(keys, [entry(private_key="p256.json", alg="ES384")])
    assert "$[0].private_key: cannot read key file" in error(
        keys, [entry(private_key="missing.pem")]
    )
    assert "$[1].iss: https://ehr.example.org/fhir is listed twice" in error(
        keys, [entry(), entry(iss=ISS + "/")]
    )


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "backend.json"
    path.write_text("[{")
    with pytest.raises(BackendConfigError, match="invalid JSON"):
        load_backend_config(path)
