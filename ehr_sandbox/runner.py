"""Run the whole sandbox on loopback: FHIR server, SMART authorization server/EHR, and the app.

``Sandbox`` is a context manager. The EHR and its authorization server listen on 127.0.0.1, the
app on ``localhost`` (another origin, so the iframe launch crosses origins as in a real EHR).
Keys live in the data directory, created at first start and never committed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from attach_fhir.errors import AttachError
from attach_fhir.io.private_files import write_private
from ehr_sandbox.authz import AuthzState, create_authz_app, smart_configuration
from ehr_sandbox.authz.config import load_client
from ehr_sandbox.authz.keys import import_signing_key, load_or_create_private_jwk, public_jwks
from ehr_sandbox.fhir_process import FhirServerOptions, FhirServerProcess
from ehr_sandbox.lifetime import Lifetime

APP_CLIENT_ID = "attach-fhir"
#: Scopes the sandbox registration adds to the app's least-privilege request, so that a new
#: user sees every flow the README advertises (docs/sandbox-ehr.md).
SANDBOX_EXTRA_SCOPES = "patient/Task.crus user/Practitioner.r"
LOOPBACK = "127.0.0.1"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SandboxError(AttachError):
    """The sandbox could not start."""

    code = "sandbox_error"
    description = "The sandbox EHR could not start."
    status_code = 500


@dataclasses.dataclass(frozen=True)
class SandboxUrls:
    """Where the sandbox's parts answer."""

    ehr: str
    issuer: str
    fhir_base: str
    app: str | None = None


class _LateApp:
    """A WSGI app set after the socket is bound (the port goes into the app's config)."""

    def __init__(self) -> None:
        self.app: WSGIApp | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.app is not None, "served before the app was set"
        return self.app(environ, start_response)


class _QuietHandler(WSGIRequestHandler):
    """No access log: request lines carry codes, launch tokens and state."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing per request."""


class ServerThread:
    """A threaded werkzeug server on a loopback port, in a daemon thread."""

    def __init__(self, port: int) -> None:
        self.app = _LateApp()
        self.server: BaseWSGIServer = make_server(
            LOOPBACK, port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.port: int = self.server.server_port
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self, app: WSGIApp) -> None:
        """Serve ``app``."""
        self.app.app = app
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


class Sandbox(Lifetime):
    """FHIR server + authorization server/EHR (+ the app as a confidential-asymmetric client)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port_base: int | None = None,
        clients: Iterable[Mapping[str, Any]] = (),
        knobs: Mapping[str, Any] | None = None,
        v1_only: bool = False,
        with_app: bool = True,
        fhir_auth: bool = True,
        fhir_limits: Mapping[str, Any] | None = None,
        today: dt.date | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port_base = port_base
        self.clients = [dict(c) for c in clients]
        self.knobs = dict(knobs or {})
        self.v1_only = v1_only
        self.with_app = with_app
        self.fhir_auth = fhir_auth
        #: Extra FhirServerOptions (``read_only_types``, ``no_transaction``): a limited EHR.
        self.fhir_limits = dict(fhir_limits or {})
        #: The day the seed's ages and "days ago" dates count from (default: the day it starts).
        self.today = today
        self.fhir: FhirServerProcess | None = None
        self._servers: list[ServerThread] = []
        self._authz_app: Any = None
        self.urls: SandboxUrls | None = None

    def _port(self, offset: int) -> int:
        return 0 if self.port_base is None else self.port_base + offset

    @property
    def state(self) -> AuthzState:
        """The running authorization server's state (config, knobs, store)."""
        found: AuthzState = self._authz_app.extensions["smart_authz"]
        return found

    def _start(self) -> None:
        """Bring everything up (``start()`` tears down what started on any failure)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        signing_jwk = load_or_create_private_jwk(self.data_dir / "authz-signing-key.json")
        jwks_file = _write_json(
            self.data_dir / "authz-jwks.json", public_jwks(import_signing_key(signing_jwk))
        )
        authz = ServerThread(self._port(1))
        self._servers.append(authz)
        issuer = f"http://{LOOPBACK}:{authz.port}"
        smart_file = _write_json(
            self.data_dir / "smart-configuration.json", smart_configuration(issuer)
        )
        app_server: ServerThread | None = None
        if self.with_app:
            app_server = ServerThread(self._port(2))
            self._servers.append(app_server)
        from ehr_sandbox.seed import write_seed_bundle

        seed = write_seed_bundle(self.data_dir / "seed.json", self.today or dt.date.today())
        options = FhirServerOptions(
            port=self._port(0),
            seed=seed,
            auth_jwks=jwks_file if self.fhir_auth else None,
            smart_config=smart_file,
            v1_only=self.v1_only,
            **self.fhir_limits,
        )
        self.fhir = FhirServerProcess(options).start()
        fhir_base = self.fhir.base_url.rstrip("/")
        clients = list(self.clients)
        app_url = None
        if app_server is not None:
            app_url = f"http://localhost:{app_server.port}"
            clients.append(self._app_client(app_url, fhir_base))
            self._app_key()
        config = {
            "issuer": issuer,
            "fhir_base": fhir_base,
            "signing_key": signing_jwk,
            "clients": clients,
            "knobs": self.knobs,
            "v1_only": self.v1_only,
        }
        if app_url is not None:
            config["cds_services"] = [f"{app_url}/cds-services"]  # the app's CDS Hooks service
        self._authz_app = create_authz_app(config)
        authz.start(self._authz_app)
        if app_server is not None and app_url is not None:
            app_server.start(self._create_app(app_url, fhir_base, issuer))
        self.urls = SandboxUrls(
            ehr=f"{issuer}/ehr", issuer=issuer, fhir_base=fhir_base, app=app_url
        )

    def _app_key(self) -> Path:
        """The app's private key (RS384), generated into the data dir at first start."""
        path = self.data_dir / "app-private-key.json"
        if not path.exists():
            from joserfc.jwk import RSAKey

            key = RSAKey.generate_key(2048, parameters={"alg": "RS384"}, private=True)
            key.ensure_kid()
            write_private(path, json.dumps(key.as_dict(private=True)))
        return path

    def _app_client(self, app_url: str, fhir_base: str) -> dict[str, Any]:
        """The app's registration: its keys come from the JWKS URL it publishes."""
        return {
            "client_id": APP_CLIENT_ID,
            "name": "attach-fhir",
            "type": "confidential-asymmetric",
            "redirect_uris": [f"{app_url}/callback"],
            "jwks_url": f"{app_url}/jwks.json",
            "launch_url": f"{app_url}/launch",
            "standalone_url": f"{app_url}/launch/standalone?iss={quote(fhir_base, safe='')}",
        }

    def _create_app(self, app_url: str, fhir_base: str, ehr_origin: str) -> WSGIApp:
        """The attach-fhir app, registered with this sandbox (imported lazily: E owns it)."""
        from smart_app import create_app

        registrations = {
            "registrations": [
                {
                    "name": "sandbox",
                    "iss": [fhir_base],
                    "client_id": APP_CLIENT_ID,
                    "client_type": "confidential-asymmetric",
                    "private_key": str(self._app_key()),
                    "private_key_alg": "RS384",
                    "allow_addresses": ["loopback"],
                    "frame_ancestors": [ehr_origin],
                    # Every advertised flow: Tasks to send questionnaires to the patient, and
                    # the signed-in clinician's (or the requesting clinician's) name.
                    "extra_scopes": SANDBOX_EXTRA_SCOPES,
                }
            ]
        }
        reg_file = _write_json(self.data_dir / "app-registrations.json", registrations)
        app_data = self.data_dir / "app"
        app_data.mkdir(exist_ok=True)
        app: WSGIApp = create_app(
            {
                "REGISTRATIONS": str(reg_file),
                "DATA_DIR": str(app_data),
                "PUBLIC_URL": app_url,
                "SECRET_KEY": os.urandom(32).hex(),
                # The EHR calls the app's CDS Hooks service, signing with its published key.
                "CDS_CLIENTS_DATA": {
                    "cds_clients": [
                        {
                            "name": "sandbox EHR",
                            "iss": ehr_origin,
                            "jwks_url": f"{ehr_origin}/jwks.json",
                            "fhir_servers": [fhir_base],
                            "allow_addresses": ["loopback"],
                            "origins": [ehr_origin],
                        }
                    ]
                },
            }
        )
        return app

    def register_client(self, client: Mapping[str, Any]) -> None:
        """Register another client (an app under test) with the running server."""
        self.state.server.register_client(load_client(client))

    def stop(self) -> None:
        """Stop the servers and the FHIR process."""
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()
        if self._authz_app is not None:
            self.state.server.http.close()
            self._authz_app = None
        if self.fhir is not None:
            self.fhir.close()
            self.fhir = None

    close = stop  # the end of a ``with`` block
