"""Outbox workers on several processes share one PostgreSQL outbox: each item is delivered once
(claims skip rows another worker holds), and a worker killed mid-delivery has its item taken
over when its lease runs out. Real processes, the real sandbox FHIR server, real PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.outbox import Outbox
from attach_fhir.io.outbox_store import PostgresOutboxStore
from attach_fhir.writeback import identifier_value
from tests.fixtures.postgres import DSN, Schema, fresh_schema
from tests.lib.outbox_cases import T0, count, ecr_r_payload, seeded_patient, sid

pytestmark = pytest.mark.e2e


@pytest.fixture
def schema() -> Iterator[Schema]:
    with fresh_schema(prefix="workers") as made:
        yield made


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def worker_env(schema: Schema) -> dict[str, str]:
    return {**os.environ, "ATTACH_OUTBOX_SCHEMA": schema.name}


def test_two_worker_processes_deliver_each_item_exactly_once(
    schema: Schema, fhir_server: Any, http: httpx.Client
) -> None:
    client = FhirClient(fhir_server.base_url, http)
    patient = seeded_patient(client)
    # Two targets (two names of one server), so that both workers find work at once.
    targets = [client.base_url, client.base_url.replace("127.0.0.1", "localhost")]
    assert targets[0] != targets[1]
    store = PostgresOutboxStore(DSN, schema.name)
    submissions = [sid() for _ in range(16)]
    for n, submission in enumerate(submissions):
        store.enqueue(submission, targets[n % 2], ecr_r_payload(patient, submission), T0 + n)
    store.close()

    command = [sys.executable, "-m", "attach_fhir.cli", "outbox", "drain", "--dsn", DSN]
    workers = [
        subprocess.Popen(command, env=worker_env(schema), stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    delivered_by: list[list[str]] = []
    for worker in workers:
        _, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err
        delivered_by.append(re.findall(r"^delivered (test-\S+) ", err, flags=re.MULTILINE))

    first, second = delivered_by
    assert sorted(first + second) == sorted(submissions)  # every item, and none twice
    store = PostgresOutboxStore(DSN, schema.name)
    try:
        items = [store.get(submission) for submission in submissions]
    finally:
        store.close()
    assert [(i.status, i.attempts, i.fence) for i in items if i is not None] == [
        ("delivered", 1, 1)
    ] * 16  # each claimed once
    for submission in submissions:
        assert count(client, "Provenance", identifier_value(submission, "Provenance")) == 1


CLAIM_AND_HANG = """
import sys, time
from attach_fhir.io.outbox_store import PostgresOutboxStore
store = PostgresOutboxStore(sys.argv[1], sys.argv[2])
item = store.claim(store.due(time.time())[0], time.time(), lease=300)
print(item.fence, flush=True)
time.sleep(600)
"""


def test_a_killed_workers_item_is_taken_over_after_its_lease(
    schema: Schema, fhir_server: Any, http: httpx.Client
) -> None:
    client = FhirClient(fhir_server.base_url, http)
    submission = sid()
    store = PostgresOutboxStore(DSN, schema.name)
    store.enqueue(
        submission, client.base_url, ecr_r_payload(seeded_patient(client), submission), T0
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_HANG, DSN, schema.name],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "1\n"  # claimed, mid-delivery
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        if worker.stdout is not None:
            worker.stdout.close()
    held = store.get(submission)
    assert held is not None and held.status == "delivering" and held.lease_until is not None
    lease_end = held.lease_until
    try:
        assert (
            Outbox(store, lambda base: client, clock=lambda: lease_end - 1).drain().delivered == []
        )
        taken = Outbox(store, lambda base: client, clock=lambda: lease_end).drain()
        assert taken.delivered == [submission]
        done = store.get(submission)
        assert done is not None and (done.status, done.attempts, done.fence) == ("delivered", 2, 2)
    finally:
        store.close()
    assert count(client, "Provenance", identifier_value(submission, "Provenance")) == 1
