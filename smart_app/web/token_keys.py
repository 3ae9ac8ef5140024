"""The keys that encrypt session records at rest, access and refresh tokens among them.

Every record the session store writes is sealed with Fernet (``cryptography``: AES-128-CBC with
an HMAC-SHA256 over it), so a copied ``sessions.sqlite3``, a database dump or a backup holds no
token text. Keys come, newest first, from ``ATTACH_TOKEN_KEYS`` (comma separated) or from the
file ``ATTACH_TOKEN_KEY_FILE`` (one key a line); with neither, a single instance on the embedded
SQLite store makes its own key file, ``token-keys`` (0600) in the data directory. MultiFernet
seals with the first key and opens with any, which is what rotation needs: put a new key first,
keep the old one after it until ``attach-fhir token-keys rotate`` has resealed the records (or
they have expired), then drop it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from attach_fhir.io.private_files import write_private
from smart_app.web.errors import ConfigurationError

log = logging.getLogger(__name__)

#: The key file a single instance generates in its data directory when no key is configured.
DEFAULT_KEY_FILE = "token-keys"
KEYS_SETTING = "ATTACH_TOKEN_KEYS"
FILE_SETTING = "ATTACH_TOKEN_KEY_FILE"


class RecordCipher:
    """Seals text with the newest key; opens text sealed with any of the keys."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        self.key_count = len(keys)

    def seal(self, text: str) -> str:
        """``text`` encrypted and authenticated with the newest key."""
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def unseal(self, sealed: str) -> str | None:
        """The text, or None when no key opens it (another key, tampered, or never sealed)."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            return None

    def reseal(self, sealed: str) -> str | None:
        """The same text sealed with the newest key; None when no key opens it."""
        try:
            return self._fernet.rotate(sealed.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            return None


def new_key() -> str:
    """A fresh random Fernet key (32 bytes, url-safe base64)."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(text: str, source: str, separator: str) -> list[bytes]:
    """The keys in ``text``, newest first; ConfigurationError naming ``source``, never a key."""
    entries = [e.strip() for e in text.split(separator)]
    keys = [e for e in entries if e and not e.startswith("#")]
    if not keys:
        raise ConfigurationError(f"{source}: no key given")
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ConfigurationError(
                f"{source}: key {number} is not a Fernet key (32 bytes, url-safe base64; "
                "`attach-fhir token-keys new` makes one)"
            ) from None
    return [key.encode("ascii") for key in keys]


def load_cipher(config: Mapping[str, Any], data_dir: str | Path, shared: bool) -> RecordCipher:
    """The cipher from ``TOKEN_KEYS`` or ``TOKEN_KEY_FILE``; else (one instance, ``shared``
    false) from the data directory's own key file, made at first start."""
    listed = str(config.get("TOKEN_KEYS") or "")
    key_file = str(config.get("TOKEN_KEY_FILE") or "")
    if listed and key_file:
        raise ConfigurationError(f"Set {KEYS_SETTING} or {FILE_SETTING}, not both.")
    if listed:
        return RecordCipher(parse_keys(listed, KEYS_SETTING, ","))
    if key_file:
        return RecordCipher(parse_keys(_read(Path(key_file), FILE_SETTING), FILE_SETTING, "\n"))
    if shared:
        # Processes sharing a PostgreSQL store must read each other's records: one key for all.
        raise ConfigurationError(
            f"A PostgreSQL session store needs {KEYS_SETTING} or {FILE_SETTING}, "
            "the same for every app process."
        )
    path = Path(data_dir) / DEFAULT_KEY_FILE
    try:
        write_private(path, new_key() + "\n")
        log.info("token_keys.created file=%s", path.name)
    except FileExistsError:
        pass  # made at an earlier start (or by a process starting beside this one)
    return RecordCipher(parse_keys(_read(path, str(path)), str(path), "\n"))


def _read(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
        raise ConfigurationError(f"{source}: cannot read {path}: {reason}") from exc
