"""Outbox test cases shared by both stores: tests/lib/test_outbox.py runs them on SQLite,
tests/e2e/test_outbox_postgres.py on the real local PostgreSQL. Each module provides a
``store_spec`` fixture. Deliveries go to the real sandbox FHIR server; httpx.MockTransport
stands in only for faults (a 503 with Retry-After, a 429, a refused connection, a 401)."""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from attach_fhir.cli import main
from attach_fhir.commands import outbox as command
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.outbox import Backoff, Outbox, StuckWatch, payload
from attach_fhir.io.outbox_store import SqlOutboxStore
from attach_fhir.scoring import Score, ScoreResult
from attach_fhir.writeback import (
    SUBMISSION_SYSTEM,
    WritebackContext,
    build_transaction,
    identifier_value,
)

QUESTIONNAIRES = Path(__file__).resolve().parents[2] / "questionnaires"
FAULT_BASE = "http://fhir.fault.test/fhir"
T0 = 1_700_000_000.0
EMPTY = {"mode": "transaction", "bundle": {"resourceType": "Bundle", "type": "transaction"}}
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "transient", "diagnostics": "Patient Jane busy"}],
}


@dataclass
class StoreSpec:
    """Opens (and reopens) one store; ``dsn`` and ``env`` reach the same store from the CLI."""

    open: Callable[[], SqlOutboxStore]
    dsn: str
    env: dict[str, str] = field(default_factory=dict)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def fault(status: int | None, headers: dict[str, str] | None = None) -> Callable[[str], Any]:
    """A client factory whose server answers ``status`` (None: the connection is refused)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if status is None:
            raise httpx.ConnectError("Connection refused")
        return httpx.Response(status, json=OUTCOME, headers=headers or {})

    client = FhirClient(FAULT_BASE, httpx.Client(transport=httpx.MockTransport(handler)))
    return lambda base_url: client


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def store(store_spec: StoreSpec) -> Iterator[SqlOutboxStore]:
    opened = store_spec.open()
    yield opened
    opened.close()


def ecr_r_payload(patient: str, submission_id: str, mode: str = "transaction") -> dict[str, Any]:
    """A real submission: the ECR-R built by the write-back builder for a seeded patient."""
    questionnaire = json.loads((QUESTIONNAIRES / "ecr-r.json").read_text(encoding="utf-8"))
    result = ScoreResult(
        "http://attach-fhir.org/fhir/Questionnaire/ecr-r|1.0.0",
        "ecr-r-subscale-means",
        "1.0.0",
        {
            "ecr-r-anxiety": Score("ecr-r-anxiety", 2.5, "final", 18, 18),
            "ecr-r-avoidance": Score("ecr-r-avoidance", 3.5, "final", 18, 18),
        },
    )
    ctx = WritebackContext(
        submission_id=submission_id,
        patient=patient,
        author=patient,
        authored="2024-05-01T10:15:00+02:00",
    )
    bundle = build_transaction({"item": []}, questionnaire, result, ctx)
    return payload(bundle, mode)  # type: ignore[arg-type]


def seeded_patient(client: FhirClient) -> str:
    return "Patient/" + next(client.search("Patient", {"_count": "1"}))["id"]


def count(client: FhirClient, kind: str, value: str) -> int:
    search = "_tag" if kind == "Provenance" else "identifier"
    return len(list(client.search(kind, {search: f"{SUBMISSION_SYSTEM}|{value}"})))


def sid() -> str:
    return f"test-{uuid.uuid4()}"


# -- the store ----------------------------------------------------------------------------------


def test_enqueue_is_once_per_submission(store: SqlOutboxStore) -> None:
    first = store.enqueue("s-1", FAULT_BASE + "/", {"mode": "transaction", "n": 1}, T0)
    again = store.enqueue("s-1", FAULT_BASE, {"mode": "transaction", "n": 2}, T0 + 5)
    assert again == first
    assert (first.target, first.status, first.attempts, first.payload) == (
        FAULT_BASE,
        "queued",
        0,
        {"mode": "transaction", "n": 1},
    )
    assert store.counts() == {"queued": 1, "delivering": 0, "delivered": 0, "failed-permanent": 0}


def test_only_the_oldest_pending_item_of_each_target_is_due(store: SqlOutboxStore) -> None:
    for name, target in (("a1", "http://a/fhir"), ("b1", "http://b/fhir"), ("a2", "http://a/fhir")):
        store.enqueue(name, target, {}, T0)
    assert [i.submission_id for i in store.due(T0)] == ["a1", "b1"]
    assert [i.submission_id for i in store.due(T0, "http://a/fhir")] == ["a1"]
    store.mark_failed("a1", "refused", "fhir_unprocessable http=422", T0)
    assert [i.submission_id for i in store.due(T0)] == ["b1", "a2"]


def test_a_claim_is_exclusive_until_its_lease_runs_out(store: SqlOutboxStore) -> None:
    item = store.enqueue("s-1", FAULT_BASE, {}, T0)
    claimed = store.claim(item, T0, lease=60)
    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.lease_until) == ("delivering", 1, T0 + 60)
    assert store.claim(item, T0 + 1, lease=60) is None
    assert store.due(T0 + 59) == []
    # The worker died mid-delivery: after the lease the item is claimable again.
    assert [i.submission_id for i in store.due(T0 + 60)] == ["s-1"]
    assert store.claim(item, T0 + 60, lease=60) is not None


def test_a_worker_that_outlived_its_lease_cannot_record_its_result(
    store: SqlOutboxStore,
) -> None:
    item = store.enqueue("s-1", FAULT_BASE, {}, T0)
    stalled = store.claim(item, T0, lease=60)
    taken_over = store.claim(item, T0 + 60, lease=60)
    assert stalled is not None and taken_over is not None
    assert (stalled.fence, taken_over.fence, taken_over.attempts) == (1, 2, 2)
    late = {"urn:uuid:a": "Observation/late"}
    assert not store.mark_delivered("s-1", late, T0 + 61, stalled.fence)
    assert not store.mark_retry("s-1", T0 + 99, "x", "x", T0 + 61, stalled.fence)
    after = store.get("s-1")
    assert after is not None and (after.status, after.receipt, after.payload) == (
        "delivering",
        None,
        {},
    )
    assert store.mark_delivered("s-1", {"urn:uuid:a": "Observation/1"}, T0 + 62, taken_over.fence)
    done = store.get("s-1")
    assert done is not None and (done.status, done.receipt, done.fence) == (
        "delivered",
        {"urn:uuid:a": "Observation/1"},
        2,
    )


def test_an_item_waiting_past_five_minutes_is_warned_about_once(
    store: SqlOutboxStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.enqueue("s-old", FAULT_BASE, {}, T0)
    store.enqueue("s-new", FAULT_BASE, {}, T0 + 200)
    watch = StuckWatch(after=300)
    assert watch.check(store, T0 + 300) == []  # not past it yet
    with caplog.at_level("WARNING", logger="attach_fhir.io.outbox"):
        assert [i.submission_id for i in watch.check(store, T0 + 301)] == ["s-old"]
        assert watch.check(store, T0 + 400) == []  # s-old told once; s-new waited 200 s
        assert [i.submission_id for i in watch.check(store, T0 + 501)] == ["s-new"]
    assert [r.getMessage() for r in caplog.records] == [
        "outbox.stuck submission=s-old target=fhir.fault.test waiting=301s attempts=0 last_error=-",
        "outbox.stuck submission=s-new target=fhir.fault.test waiting=301s attempts=0 last_error=-",
    ]


def test_a_queued_item_is_not_due_before_its_time(store: SqlOutboxStore) -> None:
    store.enqueue("s-1", FAULT_BASE, {}, T0)
    store.mark_retry("s-1", T0 + 30, "wait", "fhir_server_error http=503", T0)
    assert store.due(T0 + 29.9) == []
    assert [i.submission_id for i in store.due(T0 + 30)] == ["s-1"]


def test_wake_makes_the_waiting_items_of_one_fhir_base_due(store: SqlOutboxStore) -> None:
    base = "http://a.test/fhir"
    targets = {
        "user-1": f"{base}#cred=1",
        "audit-2": f"{base}#cred=2;audit",
        "plain": base,
        "longer-base": "http://a.test/fhirx#cred=3",  # shares the prefix, not the base
        "other-ehr": "http://b.test/fhir#cred=1",
    }
    for name, target in targets.items():
        store.enqueue(name, target, {}, T0)
        store.mark_retry(name, T0 + 500, "down", "fhir_transport_error", T0)
    store.enqueue("later", f"{base}#cred=1", {}, T0)  # behind user-1: stays behind it
    assert store.due(T0 + 10) == []
    assert store.wake(base + "/", T0 + 10) == 3
    assert sorted(i.submission_id for i in store.due(T0 + 10)) == ["audit-2", "plain", "user-1"]
    for name in ("longer-base", "other-ehr"):
        item = store.get(name)
        assert item is not None and item.next_attempt_at == T0 + 500
    assert store.wake(base, T0 + 20) == 0  # nothing waits past T0 + 20 any more


def test_a_delivery_wakes_what_an_outage_left_waiting_for_the_same_ehr(
    store: SqlOutboxStore, fhir_server: Any, http: httpx.Client
) -> None:
    up = FhirClient(fhir_server.base_url, http)
    # Nothing listens on port 9 (discard): a real refused connection, the EHR down.
    down = FhirClient("http://127.0.0.1:9/fhir", http)
    ehr: list[FhirClient] = [down]
    clock = Clock()
    backoff = Backoff(base=5, cap=600, draw=lambda: 0.9)
    outbox = Outbox(store, lambda target: ehr[0], backoff=backoff, clock=clock)
    patient = seeded_patient(up)
    first, behind, other = sid(), sid(), sid()
    one, two = f"{up.base_url}#cred=one", f"{up.base_url}#cred=two"
    assert outbox.submit(first, one, ecr_r_payload(patient, first)).status == "queued"
    for _ in range(5):  # the outage goes on: the head of queue one fails again and again
        head = store.get(first)
        assert head is not None
        clock.now = head.next_attempt_at
        assert outbox.drain().retrying == [first]
    head = store.get(first)
    assert head is not None and head.attempts == 6
    held_until = head.next_attempt_at
    assert held_until - clock.now == pytest.approx(0.9 * 5 * 2**5)  # its sixth back-off
    assert outbox.submit(behind, one, ecr_r_payload(patient, behind)).status == "queued"
    assert outbox.submit(other, two, ecr_r_payload(patient, other)).status == "queued"
    ehr[0] = up  # the EHR answers again
    clock.now = store.get(other).next_attempt_at  # type: ignore[union-attr]
    assert clock.now < held_until
    # Queue two's head is due first; its delivery shows the EHR is back, so queue one goes too.
    assert outbox.drain().delivered == [other, first, behind]
    for submission in (first, behind, other):
        assert count(up, "Provenance", identifier_value(submission, "Provenance")) == 1


# -- the worker ---------------------------------------------------------------------------------


def test_submit_delivers_at_once_and_keeps_only_the_receipt(
    store: SqlOutboxStore, fhir_server: Any, http: httpx.Client
) -> None:
    client = FhirClient(fhir_server.base_url, http)
    submission = sid()
    data = ecr_r_payload(seeded_patient(client), submission)
    item = Outbox(store, lambda base: client).submit(submission, client.base_url, data)
    assert (item.status, item.attempts, item.payload, item.last_error) == (
        "delivered",
        1,
        None,
        None,
    )
    entries = data["bundle"]["entry"]
    assert item.receipt is not None
    assert list(item.receipt) == [e["fullUrl"] for e in entries]
    for entry in entries:
        kind = entry["resource"]["resourceType"]
        reference = item.receipt[entry["fullUrl"]]
        assert reference.startswith(f"{kind}/")
        assert client.read_reference(reference)["resourceType"] == kind


@pytest.mark.parametrize(
    ("status", "headers", "code", "delay"),
    [
        (503, {"Retry-After": "120"}, "fhir_server_error http=503 issues=transient", 120.0),
        (429, {"Retry-After": "7"}, "fhir_rate_limited http=429 issues=transient", 7.0),
        # Without Retry-After: the draw (0.5) times the first ceiling (base 5).
        (502, {}, "fhir_server_error http=502 issues=transient", 2.5),
        (None, {}, "fhir_transport_error", 2.5),
        (401, {}, "fhir_unauthorized http=401 issues=transient", 2.5),
    ],
)
def test_transient_failures_stay_queued(
    store: SqlOutboxStore,
    status: int | None,
    headers: dict[str, str],
    code: str,
    delay: float,
) -> None:
    clock = Clock()
    backoff = Backoff(base=5, cap=60, draw=lambda: 0.5)
    outbox = Outbox(store, fault(status, headers), backoff=backoff, clock=clock)
    item = outbox.submit("s-1", FAULT_BASE, EMPTY)
    assert (item.status, item.attempts, item.next_attempt_at) == ("queued", 1, T0 + delay)
    assert item.last_error_code == code
    assert "Jane" not in item.last_error_code
    if status is not None:  # what the user is shown quotes the server
        assert item.last_error is not None and "Patient Jane busy" in item.last_error


def test_backoff_draws_each_wait_below_a_ceiling_that_doubles_up_to_its_cap(
    store: SqlOutboxStore,
) -> None:
    clock = Clock()
    backoff = Backoff(base=5, cap=30, draw=random.Random(14).random)
    outbox = Outbox(store, fault(None), backoff=backoff, clock=clock)
    outbox.submit("s-1", FAULT_BASE, EMPTY)
    waits = []
    for _ in range(5):
        item = store.get("s-1")
        assert item is not None
        waits.append(item.next_attempt_at - clock.now)
        assert outbox.drain().delivered == []
        clock.now = item.next_attempt_at - 0.001
        assert outbox.drain().retrying == []  # not due yet: nothing is sent
        clock.now = item.next_attempt_at
        outbox.drain()
    same_draws = random.Random(14)
    assert waits == pytest.approx([same_draws.random() * c for c in (5, 10, 20, 30, 30)])
    final = store.get("s-1")
    assert final is not None and final.attempts == 6


def test_no_credentials_waits_without_sending(store: SqlOutboxStore) -> None:
    clock = Clock()
    backoff = Backoff(draw=lambda: 0.75)  # of the default first ceiling, 5 s
    outbox = Outbox(store, lambda base: None, backoff=backoff, clock=clock)
    item = outbox.submit("s-1", FAULT_BASE, EMPTY)
    assert (item.status, item.last_error_code, item.next_attempt_at) == (
        "queued",
        "no_credentials",
        T0 + 3.75,
    )


def test_a_malformed_payload_fails_for_good(store: SqlOutboxStore) -> None:
    item = Outbox(store, fault(200)).submit("s-1", FAULT_BASE, {"mode": "transaction"})
    assert (item.status, item.last_error_code) == ("failed-permanent", "invalid_payload KeyError")


def test_a_4xx_fails_for_good_with_the_outcome_and_blocks_nothing(
    store: SqlOutboxStore, fhir_server: Any, http: httpx.Client
) -> None:
    client = FhirClient(fhir_server.base_url, http)
    patient = seeded_patient(client)
    bad_id, good_id = sid(), sid()
    bad = ecr_r_payload(patient, bad_id)
    del bad["bundle"]["entry"][1]["resource"]["status"]  # the server requires it: 422
    store.enqueue(bad_id, client.base_url, bad, T0)
    store.enqueue(good_id, client.base_url, ecr_r_payload(patient, good_id), T0)
    outbox = Outbox(store, lambda base: client)
    report = outbox.drain()
    assert (report.failed, report.delivered, report.retrying) == ([bad_id], [good_id], [])
    failed = store.get(bad_id)
    assert failed is not None
    assert failed.status == "failed-permanent"
    assert failed.last_error_code == "fhir_unprocessable http=422 issues=structure"
    assert failed.last_error == (
        "The FHIR server could not accept the data.\n"
        "error: Missing required property (at Observation.status)"
    )
    # Never retried, not even as something else.
    assert outbox.drain().failed == []
    assert store.get(bad_id) == failed


def test_items_queued_before_a_restart_drain_after_it_once(
    store_spec: StoreSpec, fhir_server: Any, http: httpx.Client
) -> None:
    client = FhirClient(fhir_server.base_url, http)
    first_id, second_id = sid(), sid()
    patient = seeded_patient(client)
    before = store_spec.open()
    down = Outbox(before, fault(None))
    for submission in (first_id, second_id):
        item = down.submit(submission, client.base_url, ecr_r_payload(patient, submission))
        assert item.status == "queued"
    before.close()

    after = store_spec.open()  # a new process would open the store the same way
    try:
        outbox = Outbox(after, lambda base: client, clock=lambda: T0 * 2)
        assert outbox.drain().delivered == [first_id, second_id]
        assert outbox.drain().delivered == []
    finally:
        after.close()
    for submission in (first_id, second_id):
        for kind, role in (
            ("QuestionnaireResponse", "QuestionnaireResponse"),
            ("Observation", "ecr-r-anxiety"),
            ("Observation", "ecr-r-avoidance"),
            ("Provenance", "Provenance"),
        ):
            assert count(client, kind, identifier_value(submission, role)) == 1


def test_the_worker_thread_delivers_and_stops(
    store: SqlOutboxStore, fhir_server: Any, http: httpx.Client
) -> None:
    client = FhirClient(fhir_server.base_url, http)
    submission = sid()
    store.enqueue(
        submission, client.base_url, ecr_r_payload(seeded_patient(client), submission), T0
    )
    stop = threading.Event()
    worker = threading.Thread(target=Outbox(store, lambda base: client).run, args=(stop, 0.05))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            item = store.get(submission)
            if item is not None and item.status == "delivered":
                break
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()
    assert store.get(submission).status == "delivered"  # type: ignore[union-attr]
    assert count(client, "Provenance", identifier_value(submission, "Provenance")) == 1


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_status_and_drain(
    store_spec: StoreSpec,
    fhir_server: Any,
    http: httpx.Client,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in store_spec.env.items():
        monkeypatch.setenv(key, value)
    client = FhirClient(fhir_server.base_url, http)
    patient = seeded_patient(client)
    store = store_spec.open()
    good, bad = sid(), sid()
    store.enqueue(good, client.base_url, ecr_r_payload(patient, good), T0)
    # Nothing listens on port 9 (discard): a real refused connection.
    store.enqueue(bad, "http://127.0.0.1:9/fhir", ecr_r_payload(patient, bad), T0)
    store.close()

    assert main(["outbox", "drain", "--dsn", store_spec.dsn]) == 75
    err = capsys.readouterr().err
    assert f"delivered {good} 127.0.0.1:" in err
    retrying = f"retrying {bad} 127.0.0.1:9 attempt=1 fhir_transport_error; next attempt in "
    assert re.search(re.escape(retrying) + "[0-5]s", err), err  # a draw below the 5 s ceiling
    assert "delivered 1, retrying 1, failed 0" in err

    assert main(["outbox", "status", "--dsn", store_spec.dsn, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"queued": 1, "delivering": 0, "delivered": 1, "failed-permanent": 0}
    assert report["oldest_pending_age_seconds"] > 0
    assert [(e["submission_id"], e["target"], e["error"]) for e in report["recent_errors"]] == [
        (bad, "127.0.0.1:9", "fhir_transport_error")
    ]


# -- pruning ------------------------------------------------------------------------------------

DAY = 86400.0


def _aged_items(store: SqlOutboxStore) -> dict[str, str]:
    """Items in every state, each last updated at T0 ("old") or at T0 + 20 days ("young");
    returns submission id -> what it is."""
    kinds = {
        "old-delivered-1": (T0, "delivered"),
        "old-delivered-2": (T0, "delivered"),
        "old-failed": (T0, "failed"),
        "old-queued": (T0, "queued"),
        "old-delivering": (T0, "delivering"),
        "young-delivered": (T0 + 20 * DAY, "delivered"),
        "young-failed": (T0 + 20 * DAY, "failed"),
    }
    for name, (when, state) in kinds.items():
        # one target each: every item is the head of its own target, so any can be claimed
        item = store.enqueue(name, f"http://{name}.test/fhir", EMPTY, when)
        if state == "queued":
            continue
        claimed = store.claim(item, when, 60)
        assert claimed is not None
        if state == "delivered":
            assert store.mark_delivered(name, {}, when, claimed.fence)
        elif state == "failed":
            assert store.mark_failed(name, "refused", "fhir_http_400", when, claimed.fence)
    return {name: state for name, (_, state) in kinds.items()}


@pytest.mark.parametrize("batch", [1, 2, 1000])
def test_prune_deletes_only_final_items_not_updated_since(
    store: SqlOutboxStore, batch: int
) -> None:
    names = _aged_items(store)
    cutoff = T0 + 10 * DAY  # the old items are older than it, the young ones not
    assert store.prunable(cutoff) == {"delivered": 2, "failed-permanent": 1}
    assert store.prune(cutoff, batch=batch) == {"delivered": 2, "failed-permanent": 1}
    kept = {name for name in names if store.get(name) is not None}
    assert kept == {"old-queued", "old-delivering", "young-delivered", "young-failed"}
    assert store.prune(cutoff, batch=batch) == {"delivered": 0, "failed-permanent": 0}
    # An item updated exactly at the cutoff is not older than it: kept.
    assert store.prune(T0 + 20 * DAY) == {"delivered": 0, "failed-permanent": 0}
    assert store.prune(T0 + 20 * DAY + 1) == {"delivered": 1, "failed-permanent": 1}
    assert store.counts() == {"queued": 1, "delivering": 1, "delivered": 0, "failed-permanent": 0}


def test_cli_prune_dry_run_then_prune(
    store_spec: StoreSpec, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in store_spec.env.items():
        monkeypatch.setenv(key, value)
    store = store_spec.open()
    names = _aged_items(store)
    store.close()
    monkeypatch.setattr(command, "clock", lambda: T0 + 40 * DAY)  # 30 days ago: T0 + 10 days
    args = ["outbox", "prune", "--dsn", store_spec.dsn, "--older-than", "30"]

    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "would delete 3 items not updated for 30 days",
        "delivered         2",
        "failed-permanent  1",
    ]
    store = store_spec.open()
    try:
        assert all(store.get(name) is not None for name in names)  # the dry run deleted nothing
    finally:
        store.close()

    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("outbox ")
    assert out[1:] == [
        "deleted 3 items not updated for 30 days",
        "delivered         2",
        "failed-permanent  1",
    ]
    store = store_spec.open()
    try:
        kept = {name for name in names if store.get(name) is not None}
    finally:
        store.close()
    assert kept == {"old-queued", "old-delivering", "young-delivered", "young-failed"}

    # 19.5 days: the young items (updated 20 days before "now" = T0 + 40 days) go too.
    assert main([*args[:-1], "19.5"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "deleted 2 items not updated for 19.5 days"


@pytest.mark.parametrize("days", ["0", "-1", "abc", "nan", "inf"])
def test_cli_prune_needs_a_positive_number_of_days(
    store_spec: StoreSpec, days: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["outbox", "prune", "--dsn", store_spec.dsn, "--older-than", days])
    assert exit_.value.code == 2
    assert "--older-than: must be a positive number of days" in capsys.readouterr().err


def test_cli_prune_requires_older_than(
    store_spec: StoreSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["outbox", "prune", "--dsn", store_spec.dsn])
    assert exit_.value.code == 2
    assert "--older-than" in capsys.readouterr().err
