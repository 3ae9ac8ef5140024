"""Where a bulk export's job URL and progress are kept between runs: ``bulk-exports.sqlite3``
(0600) in the data directory, so an interrupted ``bulk-score --export`` continues."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attach_fhir.io.private_files import private_dir, private_sqlite

STORE_NAME = "bulk-exports.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    status_url TEXT NOT NULL,
    manifest TEXT,
    counts TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS files (
    key TEXT NOT NULL,
    url TEXT NOT NULL,
    lines INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key, url)
);
"""


@dataclass(frozen=True)
class SavedJob:
    """An export started earlier: its status URL, its manifest once complete, its counters."""

    status_url: str
    manifest: dict[str, Any] | None
    counts: dict[str, int]


class ExportStore:
    """The export jobs of one data directory (one row per export request)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        folder = private_dir(data_dir)
        self.path = private_sqlite(Path(folder) / STORE_NAME)
        self._conn = sqlite3.connect(self.path)
        self._conn.executescript(_SCHEMA)

    def job(self, key: str) -> SavedJob | None:
        """The saved job of an export request, if one was started and not finished."""
        row = self._conn.execute(
            "SELECT status_url, manifest, counts FROM jobs WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        manifest = json.loads(row[1]) if row[1] else None
        return SavedJob(row[0], manifest, json.loads(row[2]))

    def started(self, key: str, status_url: str) -> None:
        """Remember a job the server accepted (its status URL)."""
        with self._conn:
            self._conn.execute("DELETE FROM files WHERE key = ?", (key,))
            self._conn.execute(
                "INSERT OR REPLACE INTO jobs (key, status_url) VALUES (?, ?)", (key, status_url)
            )

    def completed(self, key: str, manifest: dict[str, Any]) -> None:
        """Remember the manifest of a completed job."""
        with self._conn:
            self._conn.execute(
                "UPDATE jobs SET manifest = ? WHERE key = ?", (json.dumps(manifest), key)
            )

    def lines_done(self, key: str, url: str) -> tuple[int, bool]:
        """(lines already handled, whether the whole file is) for one output file."""
        row = self._conn.execute(
            "SELECT lines, done FROM files WHERE key = ? AND url = ?", (key, url)
        ).fetchone()
        return (int(row[0]), bool(row[1])) if row else (0, False)

    def checkpoint(
        self, key: str, url: str, lines: int, counts: dict[str, int], done: bool = False
    ) -> None:
        """Save, in one transaction, how far a file got and the run's counters at that point."""
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO files (key, url, lines, done) VALUES (?, ?, ?, ?)",
                (key, url, lines, int(done)),
            )
            self._conn.execute(
                "UPDATE jobs SET counts = ? WHERE key = ?", (json.dumps(counts), key)
            )

    def forget(self, key: str) -> None:
        """Drop a job (finished, cancelled, or gone from the server)."""
        with self._conn:
            self._conn.execute("DELETE FROM files WHERE key = ?", (key,))
            self._conn.execute("DELETE FROM jobs WHERE key = ?", (key,))

    def close(self) -> None:
        """Close the database."""
        self._conn.close()
