"""The discovery cache every instance shares: SMART configurations and JWKS in PostgreSQL.

Table ``attach_discovery`` (the sessions component's version 2, made by ``attach-fhir db
upgrade``): one JSON document per ``(kind, key)`` with the instant it expires. Public documents
only (an EHR's endpoints and signing keys): nothing here is sealed.
"""

from __future__ import annotations

import json
from typing import Any

from attach_fhir.errors import AttachError
from attach_fhir.io import migrations
from attach_fhir.io.sql_store import SqlStore


class DiscoveryStoreError(AttachError):
    """The shared discovery cache could not be opened."""

    code = "discovery_store_error"
    description = "The shared discovery cache could not be opened."
    status_code = 500


class PostgresDiscoveryStore(SqlStore):
    """Get, put and forget JSON documents with an expiry (seconds since the epoch)."""

    def __init__(self, dsn: str) -> None:
        self.engine = migrations.postgres_engine(
            dsn, None, migrations.SESSIONS, DiscoveryStoreError, "discovery cache"
        )

    def get(self, kind: str, key: str, now: float) -> Any | None:
        """The document for ``(kind, key)`` unless it expired at ``now`` (None: none)."""
        rows, _ = self._run(
            "SELECT value FROM attach_discovery WHERE kind = ? AND key = ? AND expires_at > ?",
            (kind, key, now),
        )
        return json.loads(rows[0][0]) if rows else None

    def put(self, kind: str, key: str, value: Any, expires_at: float) -> None:
        """Keep ``value`` for ``(kind, key)`` until ``expires_at`` (replacing an older one)."""
        self._run(
            "INSERT INTO attach_discovery (kind, key, value, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value, "
            "expires_at = EXCLUDED.expires_at",
            (kind, key, json.dumps(value, separators=(",", ":")), expires_at),
            durable=False,  # a lost entry is fetched again
        )

    def forget(self, kind: str, key: str) -> None:
        """Drop the document for ``(kind, key)``."""
        self._run("DELETE FROM attach_discovery WHERE kind = ? AND key = ?", (kind, key))
