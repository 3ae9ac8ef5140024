"""What sharing costs per operation: a discovery-cache hit per process vs in PostgreSQL, and one
system-client audit record (the backend-services commands write one per FHIR request) in
SQLite vs PostgreSQL.

Run: ``.venv/bin/python bench/shared_state_bench.py [--ops 2000] [--rounds 5]``
(``--dsn``, default ``$ATTACH_TEST_POSTGRES_DSN`` or ``postgresql://postgres@127.0.0.1:5432/test``).

PostgreSQL work happens in a schema of the bench's own, made by the migrations and dropped at
the end. Rounds interleave the peers so machine load hits both alike; each figure is the median
of the rounds' mean per operation (wall clock: most of a PostgreSQL round trip is waiting).
The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from attach_fhir.io import migrations
from attach_fhir.io.audit_store import PostgresAuditStore, SqliteAuditStore
from attach_fhir.io.discovery_store import PostgresDiscoveryStore
from attach_fhir.io.sql_store import in_schema
from attach_fhir.io.system_audit import SystemAudit
from smart_app.web.discovery_cache import DiscoveryCache, SharedDiscoveryCache, SmartConfiguration

DSN = os.environ.get("ATTACH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
CONFIG = SmartConfiguration(
    authorization_endpoint="https://ehr.example/auth/authorize",
    token_endpoint="https://ehr.example/auth/token",
    source="smart-configuration",
    issuer="https://ehr.example/auth",
    jwks_uri="https://ehr.example/auth/jwks",
    scopes_supported=("openid", "fhirUser", "launch", "user/*.rs"),
    capabilities=("launch-ehr", "client-confidential-asymmetric", "context-ehr-patient"),
    code_challenge_methods_supported=("S256",),
    iss_parameter_supported=True,
    raw={"issuer": "https://ehr.example/auth", "grant_types_supported": ["authorization_code"]},
)
ISS = "https://ehr.example/fhir"


def per_op(action: Callable[[], object], ops: int) -> float:
    """Mean wall seconds of ``action`` over ``ops`` calls."""
    start = time.perf_counter()
    for _ in range(ops):
        action()
    return (time.perf_counter() - start) / ops


def record(audit: SystemAudit) -> Callable[[], None]:
    def one() -> None:
        audit.record(
            "search-type",
            "0",
            ISS,
            "attach-bulk",
            resource="QuestionnaireResponse",
            query="questionnaire=http://example.org/q&status=completed&_count=100",
            request_id=uuid.uuid4().hex,
        )

    return one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dsn", default=DSN)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    dsn = in_schema(args.dsn, schema)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for component in migrations.STEPS:
                migrations.upgrade(conn, "postgres", component)
        local = DiscoveryCache(3600.0)
        shared = SharedDiscoveryCache(PostgresDiscoveryStore(dsn), 3600.0)
        for cache in (local, shared):
            cache.get_or_fetch("smart", ISS, lambda: CONFIG)  # filled: every lookup is a hit
        folder = Path(tempfile.mkdtemp(prefix="attach-bench-"))
        on_sqlite = SystemAudit(SqliteAuditStore(folder / "audit.sqlite3"))
        on_postgres = SystemAudit(PostgresAuditStore(dsn))
        peers: dict[str, Callable[[], object]] = {
            "discovery hit, per process": lambda: local.get_or_fetch("smart", ISS, lambda: CONFIG),
            "discovery hit, PostgreSQL": lambda: shared.get_or_fetch("smart", ISS, lambda: CONFIG),
            "audit record, SQLite": record(on_sqlite),
            "audit record, PostgreSQL": record(on_postgres),
        }
        rounds: dict[str, list[float]] = {name: [] for name in peers}
        for _ in range(args.rounds):
            for name, action in peers.items():
                rounds[name].append(per_op(action, args.ops))
        assert shared.get_or_fetch("smart", ISS, lambda: None) == CONFIG  # a real round trip
        for name, figures in rounds.items():
            print(f"{name:<28} {statistics.median(figures) * 1e6:9.1f} us/op")
        local_hit = statistics.median(rounds["discovery hit, per process"])
        shared_hit = statistics.median(rounds["discovery hit, PostgreSQL"])
        print(f"discovery hit PostgreSQL / per process: {shared_hit / local_hit:.0f}x")
        on_sqlite.close()
        on_postgres.close()
        shared.close()
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.ops} ops x {args.rounds} rounds, interleaved")


if __name__ == "__main__":
    main()
