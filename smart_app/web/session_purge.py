"""Expired session records deleted now and then: a request's teardown purges the store at most
once every ``SESSION_PURGE_INTERVAL`` seconds per process, so the table stays flat."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask

from smart_app.web.session_store import SessionStore

log = logging.getLogger(__name__)


class Purger:
    """Purges ``store`` when ``interval`` seconds have passed since the last purge (0: never)."""

    def __init__(
        self, store: SessionStore, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store, self.interval, self.clock = store, interval, clock
        self._due = clock()  # the first request of a process purges
        self._lock = threading.Lock()

    def maybe_purge(self) -> int | None:
        """Purge if due (one thread at a time); how many records went, or None if not due."""
        if self.interval <= 0:
            return None
        with self._lock:
            now = self.clock()
            if now < self._due:
                return None
            self._due = now + self.interval
        purged = self.store.purge_expired()
        log.info("session.purge records=%d", purged)
        return purged


def init_app(app: Flask, store: SessionStore, interval: float) -> Purger:
    """Purge after requests (teardown: the user has their answer) when due."""
    purger = Purger(store, interval)

    @app.teardown_request
    def purge_expired(_exc: BaseException | None) -> None:
        try:
            purger.maybe_purge()
        except Exception:  # a purge that failed is tried again at the next interval
            log.warning("session.purge outcome=failed", exc_info=True)

    return purger
