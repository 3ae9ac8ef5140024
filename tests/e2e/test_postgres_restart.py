"""PostgreSQL restarted under a running app (a private cluster: the shared server is never
restarted). While it is down every store says so with StoreUnavailable, which a user sees as a
503 page that carries the posted answers back to send again, never a 500; afterwards the stores
reconnect, the outbox worker (alive throughout) delivers what waited, once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from flask import Flask

from attach_fhir.io.audit_store import PostgresAuditStore
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.outbox import Outbox
from attach_fhir.io.outbox_store import PostgresOutboxStore
from attach_fhir.io.sql_store import StoreUnavailable
from attach_fhir.writeback import identifier_value
from smart_app.web.audit import AuditTrail
from smart_app.web.session_store import PostgresStore
from smart_app.web.token_keys import RecordCipher, new_key
from tests.fixtures.clinicians import (
    SUBMISSION_URL,
    Clinician,
    Tally,
    Unavailable,
    _hidden,
    in_own_loop,
)
from tests.fixtures.load_world import World
from tests.fixtures.postgres import Schema, fresh_schema
from tests.fixtures.private_postgres import PrivateCluster, private_cluster
from tests.lib.outbox_cases import count, ecr_r_payload, seeded_patient, sid

# The outbox worker's own poll timer delivers what waited through the restart.
pytestmark = [pytest.mark.e2e, pytest.mark.timed_thread_wait]

T0 = 1_700_000_000.0
CIPHER = RecordCipher([new_key().encode()])


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with private_cluster() as made:
        yield made


@pytest.fixture
def schema(cluster: PrivateCluster) -> Iterator[Schema]:
    with fresh_schema(server=cluster.dsn) as made:
        yield made


def test_each_store_is_unavailable_while_down_and_reconnects_after(
    cluster: PrivateCluster, schema: Schema
) -> None:
    sessions = PostgresStore(schema.dsn, CIPHER)
    outbox = PostgresOutboxStore(schema.dsn)
    audit = PostgresAuditStore(schema.dsn)
    trail = AuditTrail(audit, clock=lambda: T0)
    app = Flask(__name__)
    sessions.put("ns", "k", {"v": 1}, 600)
    outbox.enqueue("s-1", "http://ehr.test/fhir", {"mode": "transaction"}, T0)
    with app.app_context():
        trail.record("launch", "0")
        trail.flush()  # as the app does when the context ends
    assert audit.count() == 1  # each pool now holds a connection the restart will cut
    cluster.stop("fast")
    try:
        for call in (
            lambda: sessions.get("ns", "k"),
            lambda: sessions.lock("x").__enter__(),
            lambda: outbox.get("s-1"),
            lambda: audit.count(),
        ):
            with pytest.raises(StoreUnavailable) as down:
                call()
            assert (down.value.status_code, down.value.code) == (503, "store_unavailable")
        with app.app_context():
            trail.record("token-refresh", "0")
            trail.flush()  # fails: the record is kept for the next write
    finally:
        cluster.start()
    assert sessions.get("ns", "k") == {"v": 1}
    with sessions.lock("x"):
        pass
    item = outbox.get("s-1")
    assert item is not None and item.status == "queued"
    with app.app_context():
        trail.record("launch", "0")
        trail.flush()
    assert audit.count() == 3
    for store in (sessions, outbox, audit):
        store.close()


# -- the app under gunicorn, restarted under a clinician ---------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.close()


async def open_form(clinician: Clinician, urls: dict[str, str], patient: str) -> tuple[str, str]:
    """An EHR launch for ``patient`` up to the ECR-R form: its URL and page."""
    form_url, form = await clinician.open_form(urls, patient)
    return form_url, form.text


def answers(page: str, seed: int) -> dict[str, str]:
    """Every item answered (a different pattern per seed), with the page's hidden fields."""
    fields = {f"q:{n}": str((n * seed) % 7 + 1) for n in range(1, 37)}
    for name in ("csrf_token", "submission_id"):
        fields[name] = _hidden(page, name)
    fields["action"] = "submit"
    return fields


def saved(response: httpx.Response) -> bool:
    """The POST was answered as stored: 303 to the submission's page."""
    location = urlsplit(response.headers.get("location", "")).path
    return response.status_code == 303 and bool(SUBMISSION_URL.search(location))


async def restart_under_clinicians(world: World, patients: list[str]) -> dict[str, Any]:
    urls = world.urls()
    tally = Tally(app_origin=urlsplit(urls["app"]).netloc)
    async with httpx.AsyncClient(timeout=60) as http:
        queued_by, blocked_by = Clinician(http, tally), Clinician(http, tally)
        queued_url, queued_page = await open_form(queued_by, urls, patients[0])
        blocked_url, blocked_page = await open_form(blocked_by, urls, patients[1])
        queued, blocked = answers(queued_page, 3), answers(blocked_page, 5)

        # The EHR stops answering: a submission is stored, told "waiting to sync".
        await asyncio.to_thread(world.fhir_down, True)
        first = await queued_by.request("POST", queued_url, data=queued)
        assert saved(first), first.status_code
        waiting = await queued_by.go(urljoin(queued_url, first.headers["location"]))
        assert "waiting" in waiting[1].text.lower()

        await asyncio.to_thread(world.pg_stop, "fast")
        with pytest.raises(Unavailable) as down:
            await blocked_by.request("POST", blocked_url, data=blocked)
        # A page of the form's own launch, while down: 503 too, nothing to resend.
        with pytest.raises(Unavailable) as page_down:
            await blocked_by.request("GET", blocked_url)
        await asyncio.sleep(8)  # the worker's drains fail meanwhile
        await asyncio.to_thread(world.pg_start)
        await asyncio.to_thread(world.fhir_down, False)

        # "Try again": the fields the 503 page carried back, posted as they are.
        again = await blocked_by.request("POST", blocked_url, data=dict(down.value.resend))
        return {
            "resend": down.value.resend,
            "page_resend": page_down.value.resend,
            "again": again,
            "queued": queued["submission_id"],
            "blocked": blocked,
            "tally": tally,
        }


@pytest.mark.timeout(300)
def test_a_restart_loses_no_answers_shows_no_500_and_the_worker_delivers_after(
    world: World,
) -> None:
    world.private_postgres()
    world.app_env = {"ATTACH_OUTBOX_POLL": "1"}
    patients = world.make_patients(2)
    world.topology(1, True, 1)
    seen = in_own_loop(lambda: restart_under_clinicians(world, patients))
    blocked = seen["blocked"]

    # The 503 page carried every field back, the answers and the CSRF token as they were sent.
    assert sorted(seen["resend"]) == sorted(blocked.items())
    assert seen["page_resend"] == []  # a GET has nothing to send again
    again = seen["again"]
    assert saved(again), again.status_code  # once the store answered again: stored
    statuses = seen["tally"].statuses
    assert statuses == {"503": 2}, statuses  # the two requests made while it was down, no 500

    # The worker lived through the restart and delivers the item queued before it: once each.
    deadline = time.monotonic() + 60
    while set(world.outbox()) != {"delivered"} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert world.outbox() == {"delivered": 2}
    submissions = [seen["queued"], blocked["submission_id"]]
    assert world.count(submissions) == dict.fromkeys(submissions, 1)
    instance = world.instances[0]
    assert instance.proc.poll() is None, "the instance lives on"
    instance.log.flush()
    log = Path(instance.log.name).read_text(errors="replace")
    assert "outbox.worker drain failed" in log, "the worker met the outage"
    assert "StoreUnavailable" in log


def test_a_delivery_the_store_was_down_to_record_is_recorded_by_the_next_drain(
    cluster: PrivateCluster, schema: Schema, fhir_server: Any
) -> None:
    store = PostgresOutboxStore(schema.dsn)
    with httpx.Client(timeout=30) as http:
        client = FhirClient(fhir_server.base_url, http)
        submission = sid()
        store.enqueue(
            submission, client.base_url, ecr_r_payload(seeded_patient(client), submission), T0
        )

        def store_dies(target: str) -> FhirClient:  # while the EHR writes the submission
            cluster.stop("fast")
            return client

        outbox = Outbox(store, store_dies, clock=lambda: T0)
        try:
            with pytest.raises(StoreUnavailable):
                outbox.drain()
        finally:
            cluster.start()
        outbox.clients = lambda target: client
        # Still inside the claim's lease (the clock stands still): only the kept result can
        # make it delivered, and the EHR is not written to again. A drain of another target
        # (a request's) leaves it to a drain of its own or of all (the worker's).
        assert outbox.drain(target="http://other.test/fhir").delivered == []
        assert outbox.drain().delivered == [submission]
        item = store.get(submission)
        assert item is not None
        assert (item.status, item.attempts, item.payload) == ("delivered", 1, None)
        assert count(client, "Provenance", identifier_value(submission, "Provenance")) == 1
    store.close()
