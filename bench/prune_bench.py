"""What ``outbox prune`` costs without an index on ``updated_at``: the first prune of a backlog,
and the daily prune once the table holds only the kept days (nothing to delete).

Run: ``.venv/bin/python bench/prune_bench.py [--rows 200000] [--kept 0.1]``
(``--dsn``, default ``$ATTACH_TEST_POSTGRES_DSN`` or ``postgresql://postgres@127.0.0.1:5432/test``).

Rows are stored oldest first (``seq`` follows time, as the app stores them): the first
``1 - kept`` of them delivered or failed long ago (one in 100 still queued: kept), the rest
delivered recently. PostgreSQL work happens in a schema of the bench's own, dropped at the end.
Wall clock per prune; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from attach_fhir.io import migrations
from attach_fhir.io.outbox_store import PostgresOutboxStore, SqliteOutboxStore, SqlOutboxStore
from attach_fhir.io.sql_store import in_schema

DSN = os.environ.get("ATTACH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DAY = 86400.0
T0 = 1_700_000_000.0
#: Row n (1-based) of ``rows``: old (updated at T0) for n <= old, else recent (T0 + 60 days);
#: an old row is queued when n % 100 == 0, failed-permanent when n % 10 == 5, else delivered.
FILL = (
    "INSERT INTO outbox (submission_id, target, payload, status, attempts, next_attempt_at, "
    "created_at, updated_at, receipt) "
    "SELECT 'b-' || n, 'http://ehr.test/fhir', NULL, "
    "CASE WHEN n > {old} THEN 'delivered' WHEN n % 100 = 0 THEN 'queued' "
    "WHEN n % 10 = 5 THEN 'failed-permanent' ELSE 'delivered' END, 1, {t0}, {t0}, "
    "CASE WHEN n > {old} THEN {t0} + 60 * 86400 ELSE {t0} END, "
    '\'{{"urn:uuid:x": "Observation/1"}}\' FROM {series}'
)


def fill(run: Callable[[str], object], rows: int, old: int, series: str) -> None:
    run(FILL.format(old=old, t0=T0, series=series.format(rows=rows)))


def measure(store: SqlOutboxStore, label: str) -> None:
    cutoff = T0 + 30 * DAY
    for what in ("backlog", "daily"):
        start = time.perf_counter()
        deleted = store.prune(cutoff)
        took = time.perf_counter() - start
        print(f"{label:10} {what:8} {took:7.2f} s  deleted {deleted}  left {store.counts()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--kept", type=float, default=0.1, help="share of recent rows")
    parser.add_argument("--dsn", default=DSN)
    args = parser.parse_args()
    old = int(args.rows * (1 - args.kept))
    print(f"load before {os.getloadavg()}; {args.rows} rows, {old} old")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outbox.sqlite3"
        store = SqliteOutboxStore(path)
        with store.engine.connection() as db:
            fill(
                db.execute,
                args.rows,
                old,
                "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s "
                "WHERE n < {rows}) SELECT n FROM s)",
            )
        measure(store, "sqlite")
        store.close()

    schema = f"prune_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        with psycopg.connect(in_schema(args.dsn, schema), autocommit=True) as conn:
            migrations.upgrade(conn, "postgres", migrations.OUTBOX)
            fill(lambda q: conn.execute(q.encode()), args.rows, old, "generate_series(1, {rows}) n")
            conn.execute("ANALYZE outbox")
        pg = PostgresOutboxStore(args.dsn, schema)
        measure(pg, "postgres")
        pg.close()
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
