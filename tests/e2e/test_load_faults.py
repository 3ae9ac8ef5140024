"""CI's short fault run (bench/load_bench.py --fault kill at small scale): clinicians submit on two
gunicorn instances on PostgreSQL, one instance is SIGKILLed mid-run, and afterwards every
submission they were told was saved is on the FHIR server exactly once, and nobody saw a 500."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.clinicians import Tally, drive, in_own_loop
from tests.fixtures.load_world import World

# The killed worker's claims come back when their lease runs out: the outbox worker's own timer.
pytestmark = [pytest.mark.e2e, pytest.mark.timed_thread_wait]

USERS = 10
DURATION = 40.0
KILL_AT = 12.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.close()


async def load_with_a_kill(world: World, patients: list[str]) -> Tally:
    running = asyncio.create_task(drive(world.urls(), patients, DURATION, seed=12))
    await asyncio.sleep(KILL_AT)
    served_before = len(world.proxy.served)
    await asyncio.to_thread(world.kill, 1)
    tally = await running
    # past the requests in flight at the kill (at most two per clinician: a GET retried)
    after = world.proxy.served[served_before + 2 * USERS :]
    assert after and {index for _, index in after} == {0}, "the survivor served the rest"
    return tally


@pytest.mark.timeout(900)
def test_a_killed_instance_loses_no_submission_and_writes_none_twice(world: World) -> None:
    patients = world.make_patients(USERS)
    world.topology(2, True, 1)
    tally = in_own_loop(lambda: load_with_a_kill(world, patients))
    assert world.instances[1].proc.returncode == -signal.SIGKILL
    assert tally.told_saved, "the clinicians submitted something"
    # The lease of an item the killed worker held is 120 s: then the survivor delivers it.
    deadline = time.monotonic() + 400
    while set(world.outbox()) != {"delivered"} and time.monotonic() < deadline:
        time.sleep(2)
    outbox = world.outbox()
    assert set(outbox) == {"delivered"}, outbox
    on_server = world.count(tally.told_saved)
    assert on_server == dict.fromkeys(tally.told_saved, 1)
    # A POST cut off by the kill told its user nothing: saved at most once, or not at all.
    assert all(n <= 1 for n in world.count(tally.unconfirmed).values())
    assert outbox["delivered"] >= len(tally.told_saved)
    assert not [status for status in tally.statuses if status.endswith("500")], tally.statuses
