"""``attach-fhir questionnaires package|load``: the FHIR package, on disk or into a server.

``package --out DIR`` writes ``DIR/package/...`` and ``DIR/<name>-<version>.tgz``.
``load --iss URL`` puts the package's resources into a FHIR server (conditional update by
``url|version``), authorized as a SMART Backend Services client (``--backend FILE`` /
``$ATTACH_BACKEND_CONFIG``) or with a plain bearer token from ``$ATTACH_FHIR_TOKEN`` or
``--token-file`` (a sandbox); never a token on the command line, where ``ps`` would show it.
Progress goes to stderr; a summary (canonicals and counts only) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from attach_fhir.errors import AttachError
from attach_fhir.fhir_package import loadable, package_files, tarball, tarball_name
from attach_fhir.instruments import read_packaged
from attach_fhir.io.backend_services import (
    BackendConfig,
    backend_fhir_client,
    backend_for,
    load_backend_config,
)
from attach_fhir.io.fhir_client import FhirClient
from attach_fhir.io.package_loader import Loaded, load_package
from attach_fhir.io.system_audit import audited_client

EXIT_ERROR = 2
TOKEN_ENV = "ATTACH_FHIR_TOKEN"  # noqa: S105 (the variable's name, not a token)


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``package`` and ``load`` to the ``questionnaires`` command's actions."""
    package = actions.add_parser(
        "package",
        help="write the instruments as an NPM-format FHIR package",
        description=(
            "Write the FHIR package attach-fhir.instruments (Questionnaires, CodeSystems, "
            "ValueSets, StructureDefinitions, an ImplementationGuide, package.json and "
            ".index.json) to DIR/package/, and the same as DIR/<name>-<version>.tgz."
        ),
    )
    package.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    package.set_defaults(func=run_package)
    load = actions.add_parser(
        "load",
        help="put the FHIR package's resources into a FHIR server, idempotently",
        description=(
            "PUT every CodeSystem, ValueSet, StructureDefinition and Questionnaire of the package "
            "into the FHIR server as a conditional update on url and version; a copy that "
            "already matches is left alone. Authorizes with --backend (SMART Backend Services) "
            f"or a bearer token from ${TOKEN_ENV} or --token-file; with neither, unauthorized."
        ),
    )
    load.add_argument("--iss", required=True, metavar="URL", help="the FHIR base URL")
    load.add_argument(
        "--backend",
        metavar="FILE",
        default=os.environ.get("ATTACH_BACKEND_CONFIG"),
        help="backend-services config (default: $ATTACH_BACKEND_CONFIG)",
    )
    load.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help=f"a file holding a bearer token (default: ${TOKEN_ENV}), e.g. for a sandbox",
    )
    load.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout, seconds")
    load.set_defaults(func=run_load)


def run_package(args: argparse.Namespace) -> int:
    """Write the package folder and its .tgz; refuse a folder that already holds a package."""
    out: Path = args.out
    if (out / "package").exists():
        print(f"error: {out / 'package'} exists; choose a new or empty folder", file=sys.stderr)
        return EXIT_ERROR
    files = package_files(read_packaged())
    for name, data in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (out / tarball_name()).write_bytes(tarball(files))
    print(f"{len(files)} files written to {out / 'package'} and {out / tarball_name()}")
    return 0


def _plain_token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        return args.token_file.read_text(encoding="utf-8").strip() or None
    return os.environ.get(TOKEN_ENV) or None


def _backend(args: argparse.Namespace) -> BackendConfig | None:
    """The backend-services entry that authorizes the load, unless a plain token does."""
    if _plain_token(args) is None and args.backend:
        return backend_for(load_backend_config(args.backend), args.iss)
    return None


def _client(
    args: argparse.Namespace, http: httpx.Client, backend: BackendConfig | None
) -> FhirClient:
    token = _plain_token(args)
    if token is not None:
        return FhirClient(args.iss, http, token_source=lambda rejected: None if rejected else token)
    if backend is not None:
        return backend_fhir_client(backend, http)
    print("load: no token given; writing unauthorized", file=sys.stderr)
    return FhirClient(args.iss, http)


def _progress(loaded: Loaded) -> None:
    print(f"load: {loaded.action} {loaded.url}|{loaded.version}", file=sys.stderr, flush=True)


def run_load(args: argparse.Namespace) -> int:
    """Load the package into the server; the summary on stdout, JSON."""
    resources: list[dict[str, Any]] = [
        json.loads(data) for name, data in package_files(read_packaged()).items()
    ]
    try:
        backend = _backend(args)
        client_id = backend.client_id if backend is not None else None
        with audited_client(args.iss, client_id, args.timeout) as http:
            done = load_package(_client(args, http, backend), loadable(resources), _progress)
    except (AttachError, OSError) as exc:
        error = (
            exc.to_dict()
            if isinstance(exc, AttachError)
            else {"code": "io_error", "description": f"{exc.strerror}: {exc.filename}"}
        )
        print(f"error: {json.dumps(error)}", file=sys.stderr)
        return EXIT_ERROR
    counts = Counter(d.action for d in done)
    print(json.dumps({"loaded": len(done), **{a: counts[a] for a in sorted(counts)}}))
    return 0
