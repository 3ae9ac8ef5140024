"""EHR registrations: which ``iss`` may launch the app and how the app authenticates to each.

The file is JSON validated at start-up against ``schema/registrations.schema.json``; every
problem is reported with the path of the bad key. ``iss`` values are matched exactly, with no
normalisation (case, trailing slash, default port): a look-alike is simply not on the list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator

from attach_fhir.io.config_files import read_config_json
from smart_app.web import netguard
from smart_app.web.errors import ConfigurationError, ForbiddenAddress, UnknownIssuer
from smart_app.web.signing_keys import SigningKey, load_signing_key, public_jwks

CLIENT_TYPES = ("public", "confidential-symmetric", "confidential-asymmetric")


@dataclass(frozen=True)
class Registration:
    """One EHR's registration of the app."""

    name: str
    iss: tuple[str, ...]
    client_id: str
    client_type: str
    client_secret: str | None = None
    signing_key: SigningKey | None = None
    published_keys: tuple[SigningKey, ...] = ()
    scopes: str | None = None
    #: Scopes added to the request (default or ``scopes``) of every launch from this EHR.
    extra_scopes: str | None = None
    allow_addresses: tuple[str, ...] = ()
    frame_ancestors: tuple[str, ...] = ()
    #: Create the packaged Questionnaire on the server when it has no copy (where allowed).
    create_questionnaires: bool = False
    #: Mark written resources with ``meta.security`` (sensitive behavioural-health data).
    security_labels: bool = False

    @property
    def auth_method(self) -> str:
        """The token endpoint auth method this client type uses."""
        return {
            "public": "none",
            "confidential-symmetric": "client_secret_basic",
            "confidential-asymmetric": "private_key_jwt",
        }[self.client_type]

    def __repr__(self) -> str:  # never print the secret
        return f"Registration(name={self.name!r}, client_type={self.client_type!r})"


@dataclass(frozen=True)
class Registrations:
    """All registrations, indexed by exact ``iss``."""

    items: tuple[Registration, ...]
    by_iss: dict[str, Registration] = field(default_factory=dict)

    def lookup(self, iss: str) -> Registration:
        """The registration listing exactly ``iss``; UnknownIssuer otherwise (no I/O)."""
        registration = self.by_iss.get(iss)
        if registration is None:
            raise UnknownIssuer()
        return registration

    def jwks(self) -> dict[str, Any]:
        """The app's public JWKS: signing keys plus keys published for rotation."""
        keys: list[SigningKey] = []
        for reg in self.items:
            if reg.signing_key is not None:
                keys.append(reg.signing_key)
            keys.extend(reg.published_keys)
        return public_jwks(keys)

    def frame_ancestors(self) -> list[str]:
        """Every origin some registration allows to embed the app."""
        return sorted({o for reg in self.items for o in reg.frame_ancestors})


def schema() -> dict[str, Any]:
    """The registrations JSON schema shipped with the app."""
    text = files("smart_app").joinpath("schema/registrations.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def schema_errors(data: Any) -> list[str]:
    """Every schema violation in ``data`` as ``"<json path>: <message>"``, in document order."""
    validator = Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{e.json_path}: {e.message}" for e in errors]


def load(path: str | Path) -> Registrations:
    """Read, validate and index a registrations file; ConfigurationError names each bad key."""
    path = Path(path)
    data = read_config_json(path, "registrations file", ConfigurationError)
    return parse(data, base_dir=path.parent, source=str(path))


def parse(data: Any, base_dir: Path, source: str = "registrations") -> Registrations:
    """Validate already-parsed registrations; key files resolve against ``base_dir``."""
    problems = schema_errors(data)
    if problems:
        raise ConfigurationError(f"{source}: " + "; ".join(problems), problems=problems)
    items: list[Registration] = []
    by_iss: dict[str, Registration] = {}
    names: set[str] = set()
    for i, raw in enumerate(data["registrations"]):
        where = f"$.registrations[{i}]"
        reg = _build(raw, base_dir, where)
        if reg.name in names:
            raise ConfigurationError(f"{source}: {where}.name: duplicate name {reg.name!r}")
        names.add(reg.name)
        for j, iss in enumerate(reg.iss):
            _check_iss(iss, reg.allow_addresses, f"{source}: {where}.iss[{j}]")
            if iss in by_iss:
                raise ConfigurationError(f"{source}: {where}.iss[{j}]: {iss} is listed twice")
            by_iss[iss] = reg
        items.append(reg)
    return Registrations(items=tuple(items), by_iss=by_iss)


def _client_secret(raw: dict[str, Any], base_dir: Path, where: str) -> str | None:
    """The shared secret: written in the file (``client_secret``), or read from the file
    ``client_secret_file`` names (a mounted secret, kept out of the registrations file)."""
    if "client_secret_file" not in raw:
        secret: str | None = raw.get("client_secret")
        return secret
    path = base_dir / raw["client_secret_file"]
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"{where}.client_secret_file: cannot read {path} ({type(exc).__name__})"
        ) from exc
    if len(secret) < 16:
        raise ConfigurationError(f"{where}.client_secret_file: the secret in {path} is too short")
    return secret


def _build(raw: dict[str, Any], base_dir: Path, where: str) -> Registration:
    signing_key = None
    if "private_key" in raw:
        signing_key = load_signing_key(
            base_dir / raw["private_key"], raw.get("private_key_alg"), f"{where}.private_key"
        )
    published = tuple(
        load_signing_key(base_dir / p, None, f"{where}.published_keys[{k}]")
        for k, p in enumerate(raw.get("published_keys", []))
    )
    return Registration(
        name=raw["name"],
        iss=tuple(raw["iss"]),
        client_id=raw["client_id"],
        client_type=raw["client_type"],
        client_secret=_client_secret(raw, base_dir, where),
        signing_key=signing_key,
        published_keys=published,
        scopes=raw.get("scopes"),
        extra_scopes=raw.get("extra_scopes"),
        allow_addresses=tuple(raw.get("allow_addresses", [])),
        frame_ancestors=tuple(raw.get("frame_ancestors", [])),
        create_questionnaires=bool(raw.get("create_questionnaires", False)),
        security_labels=bool(raw.get("security_labels", False)),
    )


def _check_iss(iss: str, allow: tuple[str, ...], where: str) -> None:
    """Refuse at start-up what no launch could use: plain http off loopback, forbidden IPs."""
    parts = urlsplit(iss)
    host = parts.hostname or ""
    literal = netguard.literal_address(host)
    loopback_name = host == "localhost" or (
        literal is not None and netguard.address_class(literal) == "loopback"
    )
    if parts.scheme == "http" and not loopback_name:
        raise ConfigurationError(f"{where}: {iss} must use https (http only on loopback)")
    if literal is not None:
        try:
            netguard.check_address(literal, allow, iss)
        except ForbiddenAddress as exc:
            raise ConfigurationError(f"{where}: {exc.description}") from exc
