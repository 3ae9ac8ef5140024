"""``attach-fhir token-keys``: make a key, and reseal the session records with the newest one.

Rotation: ``token-keys new`` prints a key; put it first in ``ATTACH_TOKEN_KEYS`` (or the first
line of the key file), keep the old key after it, restart every app process; then
``token-keys rotate`` (same environment) reseals the live records with the new key, after which
the old key can be dropped. Records sealed with no configured key read as absent (the user
launches again); the command counts them and leaves them to expire.
"""

from __future__ import annotations

import argparse
import os
import sys

from attach_fhir.errors import AttachError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``token-keys`` command."""
    p = sub.add_parser(
        "token-keys",
        help="make and rotate the keys that encrypt session records (tokens) at rest",
        description="Make and rotate the Fernet keys that encrypt every session record (access "
        "and refresh tokens included) at rest, in SQLite and PostgreSQL alike. See "
        "docs/ehr-registration.md, 'Data at rest'.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    new = actions.add_parser(
        "new",
        help="print a fresh random key",
        description="Print a fresh random key, to put first in ATTACH_TOKEN_KEYS or the key file.",
    )
    new.set_defaults(func=_new)
    rotate = actions.add_parser(
        "rotate",
        help="reseal every live session record with the newest key (reads the ATTACH_* "
        "environment the app reads: SESSION_STORE, DATA_DIR, TOKEN_KEYS or TOKEN_KEY_FILE)",
        description="Reseal every live session record with the newest key, so the older keys "
        "can be dropped. Records no configured key opens are counted and left to expire.",
    )
    rotate.set_defaults(func=_rotate)


def _new(args: argparse.Namespace) -> int:
    from smart_app.web.token_keys import new_key

    print(new_key())
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from flask import Config

    from smart_app import DEFAULTS
    from smart_app.web.session_store import open_configured

    config = Config(os.getcwd())
    config.from_mapping(DEFAULTS)
    config.from_prefixed_env("ATTACH")
    try:
        store = open_configured(config)
    except AttachError as exc:
        print(f"attach-fhir token-keys: {exc.description}", file=sys.stderr)
        return 2
    resealed, unreadable = store.reseal_all()
    print(f"resealed {resealed} session records with the newest key")
    if unreadable:
        print(f"{unreadable} records open with no configured key: left to expire")
    return 0
