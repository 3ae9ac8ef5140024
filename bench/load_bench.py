"""Load and faults: N simulated clinicians EHR-launch the app, fill the ECR-R, submit and open
the review, on 2 gunicorn instances on PostgreSQL behind a round-robin proxy and on 1 on SQLite.

    .venv/bin/python bench/load_bench.py [--users 50] [--duration 300] [--think 180]
    .venv/bin/python bench/load_bench.py --fault kill|fhir-down|drop-after-commit|pg-restart \
        [--duration 120]

Without ``--fault`` it runs three phases: the paced run (2 instances, each clinician thinking
``--think`` seconds on average on the form and between visits: what users see), then the
closed-loop capacity runs (no think time) on 2 instances and on 1. Per phase it prints
launches/s, requests/s, p50/p95/p99 of launch-to-form and of submit, errors by status, the CPU
of the app, the FHIR server, the sandbox EHR and the driver, and the FHIR requests per visit by
kind with their times; then the ratio of requests/s (2 instances / 1) of the capacity runs.
With a fault (2 instances on PostgreSQL only) it counts, by identifier on the FHIR server,
the submissions users were told were saved: delivered once, duplicated or lost, the outbox's
drain time, and any 500 a user saw. bench/README.md: method.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures import load_world
from tests.fixtures.clinicians import Tally, drive

#: The paced run's mean think time: the ECR-R's 36 seven-point items at about 5 s each to read
#: and answer (bench/README.md, "Load and faults"); the same again between two visits.
THINK = 36 * 5.0


class World:
    """The driver's handle on the world, run in a process of its own
    (``tests/fixtures/load_world.py``): the sandbox and proxies take no CPU from the driver."""

    def __init__(self, workdir: str, knobs: dict[str, Any] | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=load_world.serve, args=(child, workdir, knobs), daemon=True)
        self.proc.start()
        self.urls: dict[str, str] = self._answer()

    def _answer(self) -> Any:
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(value)
        return value

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> Any:
            self.conn.send((name, args))
            return self._answer()

        return call

    def close(self) -> None:
        """Stop the world and wait for its process."""
        self.conn.send(("close", ()))
        self._answer()
        self.proc.join(60)


def quantiles(values: list[float]) -> str:
    """p50 / p95 / p99 in milliseconds."""
    if len(values) < 2:
        return "n/a"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"{cuts[49] * 1000:.0f} / {cuts[94] * 1000:.0f} / {cuts[98] * 1000:.0f} ms"


def own_cpu() -> float:
    """CPU seconds of the driver (this process) so far."""
    times = os.times()
    return times.user + times.system


def measure(
    world: World, label: str, count: int, postgres: bool, args: Any, think: float = 0.0
) -> float:
    """One topology for ``args.duration`` seconds; prints its figures, returns requests/s."""
    world.topology(count, postgres, args.workers)
    load = os.getloadavg()[0]
    world.fhir_requests_by_kind()  # forget the set-up's
    cpu0, fhir0, t0 = world.cpu(), world.fhir_requests(), time.monotonic()
    fhir_cpu0, world_cpu0, own0 = world.fhir_cpu(), world.world_cpu(), own_cpu()
    tally = asyncio.run(drive(world.urls, args.patients, args.duration, args.seed, think))
    elapsed, cpu = time.monotonic() - t0, world.cpu() - cpu0
    fhir_cpu, world_cpu = world.fhir_cpu() - fhir_cpu0, world.world_cpu() - world_cpu0
    driver_cpu = own_cpu() - own0
    fhir = world.fhir_requests() - fhir0
    kinds = world.fhir_requests_by_kind()
    app_requests = tally.app_requests
    rps = tally.requests / elapsed
    after = os.getloadavg()[0]
    pace = f"think {think:.0f} s" if think else "closed loop"
    print(f"\n{label}, {pace}: {args.users} users, {elapsed:.0f} s, load {load:.1f} -> {after:.1f}")
    print(f"  launches/s          {tally.launches / elapsed:.2f} ({tally.launches} launches)")
    print(f"  requests/s          {rps:.1f} (users' requests, EHR pages included)")
    print(f"  launch-to-form      p50/p95/p99 {quantiles(tally.launch_to_form)}")
    print(f"  submit              p50/p95/p99 {quantiles(tally.submit)}")
    per_visit = fhir / max(1, tally.launches)
    print(f"  FHIR server         {fhir / elapsed:.1f} requests/s, {per_visit:.0f} a visit")
    print(f"  errors              {sum(tally.statuses.values())} {dict(tally.statuses)}")
    print(
        f"  app CPU             {cpu:.1f} s over {app_requests} app requests: "
        f"{cpu / max(1, app_requests) * 1000:.1f} ms/request, {cpu / elapsed:.0%} of a core"
    )
    print(
        f"  other CPU           FHIR server {fhir_cpu / elapsed:.0%}, sandbox EHR and proxies "
        f"{world_cpu / elapsed:.0%}, driver {driver_cpu / elapsed:.0%} of a core"
    )
    visits = max(1, tally.launches)
    for kind, times in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"    {kind:<34} {len(times) / visits:5.2f} a visit, p50/p95 "
            f"{quantiles(times).rsplit(' / ', 1)[0]} ms, {sum(times):.0f} s in all"
        )
    return rps


def fault_run(world: World, args: Any) -> None:
    """Load on 2 instances with one fault in the middle, then the exactly-once count."""
    if args.fault == "pg-restart":
        world.private_postgres()  # never the shared server: other runs use it
    world.topology(2, True, args.workers)
    t0, fhir0 = time.monotonic(), world.fhir_requests()
    fault_ended = [0.0]  # wall clock (the outbox's own), when an outage ends

    async def with_fault() -> Tally:
        load = asyncio.create_task(drive(world.urls, args.patients, args.duration, args.seed))
        await asyncio.sleep(args.duration / 3)
        if args.fault == "kill":
            print(f"t={time.monotonic() - t0:.0f} s: SIGKILL instance 2")
            await asyncio.to_thread(world.kill, 1)
        elif args.fault == "fhir-down":
            print(f"t={time.monotonic() - t0:.0f} s: FHIR server refuses connections for 30 s")
            await asyncio.to_thread(world.fhir_down, True)
            await asyncio.sleep(30)
            await asyncio.to_thread(world.fhir_down, False)
            fault_ended[0] = time.time()
        elif args.fault == "pg-restart":
            print(f"t={time.monotonic() - t0:.0f} s: PostgreSQL stopped (-m fast) for 15 s")
            await asyncio.to_thread(world.pg_stop, "fast")
            await asyncio.sleep(15)
            await asyncio.to_thread(world.pg_start)
            fault_ended[0] = time.time()
            print(f"t={time.monotonic() - t0:.0f} s: PostgreSQL started again")
        else:
            print(f"t={time.monotonic() - t0:.0f} s: every 3rd transaction's answer dropped")
            await asyncio.to_thread(world.drop_every, 3)
        return await load

    tally = asyncio.run(with_fault())
    world.drop_every(0)
    ended = time.monotonic()
    print(f"load ended at t={ended - t0:.0f} s; proxy {world.faults()}")
    drained = None
    while time.monotonic() - ended < args.drain_timeout:
        statuses = world.outbox()
        if set(statuses) <= {"delivered"}:
            drained = time.monotonic() - ended
            break
        time.sleep(2)
    counts = world.count(tally.told_saved)
    unconfirmed = world.count(tally.unconfirmed)
    five_hundreds = sum(v for k, v in tally.statuses.items() if k.endswith("500"))
    print(f"\nfault {args.fault}: {args.users} users, {ended - t0:.0f} s")
    print(f"  submissions told saved  {len(tally.told_saved)}")
    print(f"  delivered once          {sum(1 for c in counts.values() if c == 1)}")
    print(f"  duplicates              {sum(1 for c in counts.values() if c > 1)}")
    print(f"  lost                    {sum(1 for c in counts.values() if c == 0)}")
    print(
        f"  unconfirmed (the POST failed) {len(unconfirmed)}: on the server "
        f"{sum(1 for c in unconfirmed.values() if c >= 1)}, twice "
        f"{sum(1 for c in unconfirmed.values() if c > 1)}"
    )
    print(f"  outbox                  {world.outbox()}")
    drain = f"{drained:.0f} s" if drained is not None else f"not drained in {args.drain_timeout} s"
    print(f"  time to drain           {drain}")
    waits = world.outbox_waits()
    print(
        f"  retried items           {waits['retried']} (attempts up to "
        f"{waits['most_attempts']}), longest stored-to-delivered {waits['longest']:.0f} s"
    )
    if fault_ended[0] and waits["retried"]:
        after = waits["last"] - fault_ended[0]
        print(f"  last retried delivered  {after:.0f} s after the outage ended")
    print(f"  errors users saw        {dict(tally.statuses)}")
    print(f"  500s users saw          {five_hundreds}")
    print(
        f'  submits sent again      {tally.resent} (from a 503\'s "Try again"; '
        f"{tally.resent_changed} without the answers intact)"
    )
    print(f"  launch-to-form          p50/p95/p99 {quantiles(tally.launch_to_form)}")
    fhir = world.fhir_requests() - fhir0
    print(f"  FHIR requests           {fhir}, {fhir / max(1, tally.launches):.0f} a visit")


def main(argv: list[str] | None = None) -> int:
    """Parse the options, build the world, run the topologies or the fault."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per instance")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--think",
        type=float,
        default=THINK,
        help="mean seconds a clinician spends on the form, and again between visits; 0: no "
        "paced run (default: 36 items at 5 s each)",
    )
    parser.add_argument("--paced-only", action="store_true", help="no closed-loop capacity runs")
    parser.add_argument("--fault", choices=("kill", "fhir-down", "drop-after-commit", "pg-restart"))
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="load-bench-") as workdir:
        world = World(workdir)
        try:
            args.patients = world.make_patients(args.users)
            print(f"bench/load_bench.py {' '.join(sys.argv[1:])}; {time.strftime('%Y-%m-%d')}")
            print(f"cores {os.cpu_count()}, load {os.getloadavg()}")
            if args.fault:
                fault_run(world, args)
                return 0
            two_pg = "2 instances, PostgreSQL, round-robin proxy"
            if args.think > 0:
                measure(world, two_pg, 2, True, args, think=args.think)
            if not args.paced_only:
                two = measure(world, two_pg, 2, True, args)
                one = measure(world, "1 instance, SQLite", 1, False, args)
                print(f"\nrequests/s (closed loop), 2 instances / 1: {two / one:.2f}")
        finally:
            world.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
