"""``attach-fhir sandbox``: bring up the sandbox EHR with the app and print the URL to open."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TextIO

from attach_fhir.io.outbox_store import default_data_dir as shared_data_dir

DEFAULT_PORT_BASE = 8700


def default_data_dir() -> Path:
    """Where keys and seed data live between runs (outside any checkout): ``sandbox/`` in the
    data directory the app and ``attach-fhir outbox`` use, so that ``outbox status`` finds the
    sandbox's app's outbox (``commands.outbox.SANDBOX_OUTBOX``)."""
    return shared_data_dir() / "sandbox"


def open_browser(
    url: str, out: TextIO | None = None, opener: Callable[[str], bool] = webbrowser.open
) -> bool:
    """Open ``url`` in a browser, else say on ``out`` that none could be, and the URL to open."""
    try:
        opened = opener(url)
    except webbrowser.Error:
        opened = False
    if not opened:
        # Without a display (a server, SSH, a container) webbrowser finds no browser: it returns
        # False or raises. The URL is printed above too; this says why nothing opened.
        print(f"No browser could be opened (no display?). Open {url} yourself.", file=out)
    return opened


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sandbox`` command."""
    p = sub.add_parser(
        "sandbox",
        help="start the local sandbox EHR with the app registered",
        description=(
            "Start a sandbox EHR on this machine: a FHIR server (Medplum) with seeded patients, "
            "a SMART authorization server and EHR pages, and the app registered with it. Prints "
            "the EHR page to open; everything stops on Ctrl-C. Nothing leaves loopback."
        ),
    )
    p.add_argument(
        "--open",
        action="store_true",
        help="open the EHR page in a browser (without a display: prints the URL to open)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keys, seed data and the app's stores, kept between runs (created; default: "
        "$ATTACH_DATA_DIR/sandbox, else ~/.local/share/attach-fhir/sandbox)",
    )
    p.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help="FHIR server on N, EHR/authorization server on N+1, app on N+2 (0: any free ports)",
    )
    p.add_argument("--v1-only", action="store_true", help="simulate an EHR with SMART v1 only")
    p.set_defaults(func=_sandbox)


def _sandbox(args: argparse.Namespace) -> int:
    from ehr_sandbox.runner import Sandbox

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    data_dir = args.data_dir or default_data_dir()
    port_base = args.port_base or None
    with Sandbox(data_dir, port_base=port_base, v1_only=args.v1_only) as sandbox:
        assert sandbox.urls is not None
        print(f"Sandbox EHR: open {sandbox.urls.ehr}", flush=True)
        print(f"  FHIR base:  {sandbox.urls.fhir_base}", flush=True)
        print(f"  app:        {sandbox.urls.app}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        if args.open:
            open_browser(sandbox.urls.ehr, sys.stdout)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("Sandbox stopped.", file=sys.stderr)
    return 0
