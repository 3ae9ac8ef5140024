"""The discovery cache on PostgreSQL: two app instances on one schema, one sandbox EHR. What
instance A discovered, instance B uses without asking the EHR; an entry expires ``DISCOVERY_TTL``
after it was fetched by the (injected) clock; a forgotten JWKS is forgotten for both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ehr_sandbox.runner import Sandbox
from smart_app import create_app
from smart_app.web.discovery_cache import DiscoveryCache, SharedDiscoveryCache
from smart_app.web.services import Services, get_services
from smart_app.web.token_keys import new_key
from tests.fixtures.postgres import Schema, fresh_schema

pytestmark = pytest.mark.e2e

TTL = 600.0
KEY = new_key()  # every instance seals and opens the store's records with the same keys
START = 1_800_000_000.0  # any instant: the cache reads only the injected clock


class Counting(httpx.BaseTransport):
    """A real HTTP transport that keeps each request's path (to see which reached the EHR)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return self.inner.handle_request(request)

    def discovery(self) -> int:
        return sum(p.endswith("/.well-known/smart-configuration") for p in self.paths)

    def close(self) -> None:
        self.inner.close()

    def jwks(self, uri: str) -> int:
        path = httpx.URL(uri).path
        return sum(p == path for p in self.paths)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def counting() -> Iterator[list[Counting]]:
    """Two counting transports, closed after the test."""
    made = [Counting(), Counting()]
    yield made
    for each in made:
        each.close()


@pytest.fixture
def schema() -> Iterator[Schema]:
    with fresh_schema() as made:
        yield made


def instance(
    sandbox: Sandbox, schema: Schema, folder: Path, clock: Clock, transport: Counting
) -> Any:
    assert sandbox.urls is not None
    folder.mkdir()
    registration = {
        "name": "sandbox",
        "iss": [sandbox.urls.fhir_base],
        "client_id": "discovery-test",
        "client_type": "public",
        "allow_addresses": ["loopback"],
    }
    return create_app(
        {
            "REGISTRATIONS_DATA": {"registrations": [registration]},
            "DATA_DIR": str(folder),
            "DATABASE_URL": schema.dsn,
            "TOKEN_KEYS": KEY,
            "DISCOVERY_TTL": TTL,
            "DISCOVERY_CLOCK": clock,
            "HTTP_TRANSPORT": transport,
        }
    )


def two_instances(
    sandbox: Sandbox, schema: Schema, tmp_path: Path, counting: list[Counting]
) -> tuple[str, Clock, Any, Any]:
    """The sandbox's iss, one clock, and instances A and B on one schema (each counted by its
    own transport in ``counting``)."""
    assert sandbox.urls is not None
    clock = Clock()
    a = instance(sandbox, schema, tmp_path / "a", clock, counting[0])
    b = instance(sandbox, schema, tmp_path / "b", clock, counting[1])
    return sandbox.urls.fhir_base, clock, a, b


def discover(app: Any, iss: str) -> Any:
    with app.app_context():
        services: Services = get_services()
        return services.smart_configuration(iss, services.registrations.lookup(iss))


def jwks(app: Any, iss: str, uri: str, refetch: bool = False) -> dict[str, Any]:
    with app.app_context():
        services: Services = get_services()
        return services.jwks(uri, services.registrations.lookup(iss), refetch)


def test_instance_b_uses_what_instance_a_discovered_until_it_expires(
    launch_sandbox: Sandbox, schema: Schema, tmp_path: Path, counting: list[Counting]
) -> None:
    iss, clock, a, b = two_instances(launch_sandbox, schema, tmp_path, counting)
    seen_a, seen_b = counting
    with a.app_context():
        assert isinstance(get_services().cache, SharedDiscoveryCache)

    found_a = discover(a, iss)
    assert seen_a.discovery() == 1
    # What the EHR publishes, read here without the app: B must answer the same.
    published = httpx.get(f"{iss}/.well-known/smart-configuration").json()
    assert found_a.token_endpoint == published["token_endpoint"]

    found_b = discover(b, iss)
    assert seen_b.discovery() == 0  # B asked the database, not the EHR
    assert found_b == found_a
    assert found_b.raw == published
    assert found_b.scopes_supported == tuple(published.get("scopes_supported", ()))

    clock.now = START + TTL - 1  # still fresh for both
    discover(b, iss)
    discover(a, iss)
    assert (seen_a.discovery(), seen_b.discovery()) == (1, 0)

    clock.now = START + TTL  # expired: the next instance to ask fetches, the other uses it
    assert discover(b, iss) == found_a
    assert seen_b.discovery() == 1
    discover(a, iss)
    assert seen_a.discovery() == 1


def test_a_jwks_one_instance_refetched_serves_the_other(
    launch_sandbox: Sandbox, schema: Schema, tmp_path: Path, counting: list[Counting]
) -> None:
    iss, _clock, a, b = two_instances(launch_sandbox, schema, tmp_path, counting)
    seen_a, seen_b = counting
    uri = discover(a, iss).jwks_uri
    assert uri
    keys = jwks(a, iss, uri)
    assert keys == httpx.get(uri).json()
    assert jwks(b, iss, uri) == keys
    assert (seen_a.jwks(uri), seen_b.jwks(uri)) == (1, 0)

    jwks(a, iss, uri, refetch=True)  # an unknown kid: A drops the copy and fetches anew
    assert seen_a.jwks(uri) == 2
    jwks(b, iss, uri)
    assert seen_b.jwks(uri) == 0  # B uses A's fresh copy


def test_sqlite_keeps_a_cache_per_process(
    launch_sandbox: Sandbox, tmp_path: Path, counting: list[Counting]
) -> None:
    assert launch_sandbox.urls is not None
    iss = launch_sandbox.urls.fhir_base
    registration = {
        "name": "sandbox",
        "iss": [iss],
        "client_id": "discovery-test",
        "client_type": "public",
        "allow_addresses": ["loopback"],
    }
    seen = counting[0]
    app = create_app(
        {
            "REGISTRATIONS_DATA": {"registrations": [registration]},
            "DATA_DIR": str(tmp_path),
            "HTTP_TRANSPORT": seen,
        }
    )
    with app.app_context():
        assert isinstance(get_services().cache, DiscoveryCache)
    assert discover(app, iss) == discover(app, iss)
    assert seen.discovery() == 1
