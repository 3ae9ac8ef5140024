"""In-memory storage for the sandbox (one process, thread-safe; nothing survives a restart)."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Protocol, TypeVar

from .models import (
    AuthorizationCode,
    Grantee,
    LaunchRecord,
    PendingAuthorization,
    RefreshRecord,
)

LAUNCH_LIFETIME = 600
CODE_LIFETIME = 120


class _Expiring(Protocol):
    expires_at: float


E = TypeVar("E", bound=_Expiring)


def new_token(nbytes: int = 32) -> str:
    """An unguessable URL-safe value."""
    return secrets.token_urlsafe(nbytes)


class MemoryStore:
    """Launch tokens, pending requests, codes, refresh tokens and seen assertion ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._launches: dict[str, LaunchRecord] = {}
        self._pending: dict[str, PendingAuthorization] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._refresh: dict[str, RefreshRecord] = {}
        self._jtis: dict[str, float] = {}
        self._nonces: set[tuple[str, str]] = set()

    def _live(self, kept: dict[str, E], key: str) -> E | None:
        """The record under ``key`` unless it is missing or past its ``expires_at``."""
        with self._lock:
            record = kept.get(key)
        if record is None or time.time() >= record.expires_at:
            return None
        return record

    def create_launch(self, client_id: str, grantee: Grantee) -> LaunchRecord:
        """Issue a launch token bound to a client and an EHR context."""
        record = LaunchRecord(new_token(), client_id, grantee, time.time() + LAUNCH_LIFETIME)
        with self._lock:
            self._launches[record.token] = record
        return record

    def get_launch(self, token: str) -> LaunchRecord | None:
        """The live launch record for a token, if any."""
        return self._live(self._launches, token)

    def save_pending(self, pending: PendingAuthorization) -> None:
        """Keep an authorization request that waits for the user."""
        with self._lock:
            self._pending[pending.id] = pending

    def get_pending(self, pending_id: str) -> PendingAuthorization | None:
        """A live pending request."""
        return self._live(self._pending, pending_id)

    def drop_pending(self, pending_id: str) -> None:
        """Forget a pending request once its code is issued."""
        with self._lock:
            self._pending.pop(pending_id, None)

    def save_code(self, code: AuthorizationCode) -> None:
        """Keep an issued authorization code."""
        with self._lock:
            self._codes[code.code] = code
            if code.nonce:
                self._nonces.add((code.client_id, code.nonce))

    def nonce_seen(self, client_id: str, nonce: str) -> bool:
        """Whether the client already used this OpenID nonce."""
        with self._lock:
            return (client_id, nonce) in self._nonces

    def take_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """Spend the code: it is returned once; a replayed code revokes the grant it started."""
        with self._lock:
            record = self._codes.get(code)
            if record is None or record.client_id != client_id:
                return None
            if record.used:
                for refresh in self._refresh.values():
                    if refresh.family == record.code:
                        refresh.revoked = True
                return None
            record.used = True
            if time.time() >= record.expires_at:
                return None
            return record

    def save_refresh(self, record: RefreshRecord) -> None:
        """Keep a refresh token."""
        with self._lock:
            self._refresh[record.token] = record

    def get_refresh(self, token: str) -> RefreshRecord | None:
        """A usable refresh token record."""
        with self._lock:
            record = self._refresh.get(token)
        if record is None or not record.is_usable():
            return None
        return record

    def revoke_refresh(self, record: RefreshRecord) -> None:
        """Invalidate a refresh token (rotation)."""
        with self._lock:
            record.revoked = True

    def use_jti(self, client_id: str, jti: str, expires_at: float) -> bool:
        """Record a client assertion id; false if it was seen before (replay)."""
        now = time.time()
        key = f"{client_id}\x00{jti}"
        with self._lock:
            for old in [k for k, exp in self._jtis.items() if exp < now - 600]:
                del self._jtis[old]
            if key in self._jtis:
                return False
            self._jtis[key] = expires_at
            return True
