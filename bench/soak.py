"""The soak: a paced load on 2 instances on PostgreSQL for half an hour, with short launch,
session and access-token lifetimes so that purging and refreshes happen, sampled every minute.

    .venv/bin/python bench/soak.py [--users 10] [--duration 1800] [--think 30] [--every 60]

Each sample prints the session-store rows by namespace (live + expired), the outbox by status,
token refreshes and launches in the minute, and the RSS of every app process and of the FHIR
server; the end prints the samples as a Markdown table (bench/README.md, "Soak").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load_bench import World, quantiles
from tests.fixtures.clinicians import Tally, drive


def row(minute: float, sample: dict[str, Any], refreshes: int, launches: int) -> list[str]:
    """One line of the table."""
    sessions = sample["sessions"]
    by_ns = " ".join(
        f"{ns} {live}+{gone}" for ns, (live, gone) in sorted(sessions.items()) if live or gone
    )
    total = sum(live + gone for live, gone in sessions.values())
    outbox = " ".join(f"{k} {v}" for k, v in sorted(sample["outbox"].items())) or "-"
    app_mb = " / ".join(f"{kb / 1024:.0f}" for kb in sample["app_rss_kb"])
    return [
        f"{minute:.1f}",
        str(total),
        by_ns or "-",
        outbox,
        str(refreshes),
        str(launches),
        app_mb,
        f"{sample['fhir_rss_kb'] / 1024:.0f}",
        f"{os.getloadavg()[0]:.1f}",
    ]


HEADER = [
    "min",
    "session rows",
    "by namespace (live+expired)",
    "outbox",
    "refreshes since last",
    "launches since last",
    "app RSS MB (per process)",
    "FHIR RSS MB",
    "load",
]


async def soak(world: World, args: Any) -> tuple[Tally, list[list[str]]]:
    """Drive the load and sample the world every ``args.every`` seconds until it ends."""
    t0 = time.monotonic()
    tally = Tally()
    tally_task = asyncio.create_task(
        drive(world.urls, args.patients, args.duration, args.seed, args.think, tally)
    )
    rows: list[list[str]] = []
    refreshes = launches = 0
    while True:
        sample = await asyncio.to_thread(world.sample)
        launches_now = tally.launches
        line = row(
            (time.monotonic() - t0) / 60,
            sample,
            sample["refreshes"] - refreshes,
            launches_now - launches,
        )
        refreshes, launches = sample["refreshes"], launches_now
        rows.append(line)
        print(" | ".join(line), flush=True)
        if tally_task.done():
            return tally_task.result(), rows
        await asyncio.wait({tally_task}, timeout=args.every)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, build the world with short lifetimes, soak, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--duration", type=float, default=1800.0)
    parser.add_argument("--think", type=float, default=30.0, help="mean seconds, form and between")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--launch-ttl", type=int, default=120, help="launch and browser session")
    parser.add_argument("--token-lifetime", type=int, default=40, help="access tokens, seconds")
    parser.add_argument("--purge", type=int, default=60, help="session purge interval, seconds")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    lifetimes = {
        "ATTACH_LAUNCH_TTL": str(args.launch_ttl),
        "ATTACH_BROWSER_SESSION_TTL": str(args.launch_ttl),
        "ATTACH_SESSION_PURGE_INTERVAL": str(args.purge),
    }
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        world = World(workdir, knobs={"access_token_lifetime": args.token_lifetime})
        try:
            args.patients = world.make_patients(args.users)
            print(f"bench/soak.py {' '.join(sys.argv[1:])}; {time.strftime('%Y-%m-%d %H:%M %Z')}")
            print(f"cores {os.cpu_count()}, load {os.getloadavg()}; {lifetimes}")
            world.topology(2, True, args.workers, lifetimes)
            print(" | ".join(HEADER), flush=True)
            tally, rows = asyncio.run(soak(world, args))
        finally:
            world.close()
    print(f"\n| {' | '.join(HEADER)} |\n|{'---|' * len(HEADER)}")
    for line in rows:
        print(f"| {' | '.join(line)} |")
    print(f"\nlaunches {tally.launches}, submits {len(tally.submit)}, told saved")
    print(f"{len(tally.told_saved)}, errors {dict(tally.statuses)}")
    print(f"launch-to-form p50/p95/p99 {quantiles(tally.launch_to_form)}")
    print(f"submit p50/p95/p99 {quantiles(tally.submit)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
