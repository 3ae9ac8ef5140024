"""One launch's context, as every blueprint sees it: ``/app/<ctx>/...`` names the launch.

The context id in the URL path (never the patient id) selects the launch; it must also belong
to this browser's session, so a copied URL is useless elsewhere, and two tabs with two launches
each read only their own patient. Tokens stay in the store: views get a ``FhirClient`` whose
token source refreshes before expiry and on 401, once, under a per-launch lock.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, g, request

from attach_fhir.io.fhir_client import FhirClient
from smart_app.web import audit, smart_client
from smart_app.web.errors import AuthorizationExpired, LaunchNotFound
from smart_app.web.record_reading import ReadingClient
from smart_app.web.scopes import Granted
from smart_app.web.security import browser_session
from smart_app.web.services import Services, get_services

log = logging.getLogger(__name__)

LAUNCH_NS = "launch"
#: Set on a launch record whose patient the app's picker chose (the EHR gave none).
CHOSEN_BY = "patient_chosen_by"
#: Who may pick: a user/ (or system/) grant to search and read patients; patient/ scopes are
#: confined to a patient the token already names.
_COMPARTMENT_WIDE = ("user/", "system/")
#: ``fhirUser`` types that may pick: anyone else (a Patient, RelatedPerson or Person, or a
#: sign-in that names no user) could otherwise move a launch onto any patient the token reads.
_CLINICIANS = ("Practitioner", "PractitionerRole")
#: The WSGI environ key under which ``current_launch`` keeps the request's launch.
_CURRENT = "attach_fhir.launch"


@dataclass
class LaunchContext:
    """A launch's record in the store plus the operations views need."""

    id: str
    record: dict[str, Any]
    services: Services
    _client: FhirClient | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, ctx_id: str) -> LaunchContext:
        """The launch ``ctx_id`` if it is live and belongs to this browser; else LaunchNotFound."""
        services = get_services()
        record = services.store.get(LAUNCH_NS, ctx_id) if len(ctx_id) <= 100 else None
        session = browser_session(create=False)
        if record is None or session is None or record.get("sid") != session[0]:
            raise LaunchNotFound()
        return cls(id=ctx_id, record=record, services=services)

    # -- context ------------------------------------------------------------------------------

    @property
    def iss(self) -> str:
        """The FHIR base URL of this launch."""
        return str(self.record["iss"])

    @property
    def patient_id(self) -> str | None:
        """The patient in context, if any."""
        value = self.record.get("patient")
        return str(value) if value else None

    @property
    def encounter_id(self) -> str | None:
        """The encounter in context, if any."""
        value = self.record.get("encounter")
        return str(value) if value else None

    @property
    def fhir_user(self) -> str | None:
        """The ``fhirUser`` claim of the verified id_token (a FHIR reference or URL)."""
        value = self.record.get("fhir_user")
        return str(value) if value else None

    @property
    def intent(self) -> str | None:
        """The EHR's ``intent`` (e.g. ``reconcile-medications``), for flows that honour it."""
        value = self.record.get("intent")
        return str(value) if value else None

    def context_references(self, resource_type: str, role: str = "launch") -> list[str]:
        """``Type/id`` of the EHR's ``fhirContext`` entries of ``resource_type`` in ``role``
        (SMART: an entry without a role is in the ``launch`` role), as ``flow`` checked them."""
        return [
            str(entry["reference"])
            for entry in self.record.get("fhir_context") or []
            if str(entry["reference"]).partition("/")[0] == resource_type
            and entry.get("role", "launch") == role
        ]

    @property
    def granted(self) -> Granted:
        """The scopes the EHR granted (the UI disables what they do not cover)."""
        return Granted.parse(self.record["token"].get("scope"))

    def can(self, resource: str, interaction: str) -> bool:
        """True when the granted scopes allow ``interaction`` (c r u d s) on ``resource``."""
        return self.granted.allows(resource, interaction)

    @property
    def show_patient_banner(self) -> bool:
        """Show our own patient banner unless the EHR said it shows one (never for a patient
        the app chose: the EHR's banner, if any, shows no patient or another one)."""
        if self.patient_chosen_in_app:
            return True
        return self.record.get("need_patient_banner") is not False

    @property
    def patient_chosen_in_app(self) -> bool:
        """True when the app's patient picker chose the patient, not the EHR."""
        return self.record.get(CHOSEN_BY) == "app"

    @property
    def patient_choice_refused(self) -> str | None:
        """Why this launch's user may not choose the patient in the app; None when they may."""
        if self.record.get("kind") == "patient":
            return (
                "This is a patient's own launch: its patient is the person who signed in and "
                "cannot be changed in the app."
            )
        if self.fhir_user is None:
            return (
                "Only clinicians choose a patient in the app; this sign-in did not say who it is."
            )
        if _user_type(self.fhir_user) not in _CLINICIANS:
            return "Only clinicians choose a patient in the app; this sign-in is not a clinician's."
        if self.patient_id and not self.patient_chosen_in_app:
            return (
                "The EHR chose this launch's patient. To work with another patient, choose them "
                "in the EHR and launch the app again."
            )
        wide = Granted(tuple(s for s in self.granted.scopes if s.startswith(_COMPARTMENT_WIDE)))
        if not (wide.allows("Patient", "s") and wide.allows("Patient", "r")):
            return "The EHR has not allowed this app to search for and read patients."
        return None

    def choose_patient(self, patient_id: str) -> LaunchContext:
        """This launch with ``patient_id`` chosen in the app, under a new context id.

        The old id stops working at once, so a page or form still open for the previous patient
        can neither read nor write for the new one. The record (and its token) moves under the
        refresh lock, so a refresh racing the move cannot leave the rotated token behind.
        """
        store = self.services.store
        with store.lock(f"refresh:{self.id}"):
            fresh = store.get(LAUNCH_NS, self.id)
            if fresh is None:
                raise LaunchNotFound()
            record = {**fresh, "patient": patient_id, CHOSEN_BY: "app"}
            record.pop("encounter", None)  # the EHR's encounter is no chosen patient's
            new_id = secrets.token_urlsafe(18)
            store.put(LAUNCH_NS, new_id, record, current_app.config["LAUNCH_TTL"])
            store.delete(LAUNCH_NS, self.id)
        return LaunchContext(id=new_id, record=record, services=self.services)

    def save(self) -> None:
        """Write the record back (keeps its remaining lifetime policy)."""
        self.services.store.put(LAUNCH_NS, self.id, self.record, current_app.config["LAUNCH_TTL"])

    # -- tokens -------------------------------------------------------------------------------

    def token_source(self, rejected: str | None) -> str | None:
        """The bearer token: refreshed first when it is about to expire, or when ``rejected``."""
        token = self.record["token"]
        if rejected is not None:
            return self._refresh(seen=rejected)
        leeway = float(current_app.config["TOKEN_REFRESH_LEEWAY"])
        if isinstance(token.get("expires_in"), int | float):  # short-lived tokens: a quarter
            leeway = min(leeway, token["expires_in"] / 4)
        expires_at = token.get("expires_at")
        if expires_at is not None and float(expires_at) - leeway <= time.time():
            return self._refresh(seen=str(token["access_token"]))
        return str(token["access_token"])

    def _refresh(self, seen: str) -> str:
        store = self.services.store
        with store.lock(f"refresh:{self.id}"):
            fresh = store.get(LAUNCH_NS, self.id)
            if fresh is None:
                raise LaunchNotFound()
            self.record = fresh
            token = fresh["token"]
            if token["access_token"] != seen:  # another request refreshed while we waited
                return str(token["access_token"])
            refresh_token = token.get("refresh_token")
            if not refresh_token:
                raise AuthorizationExpired()
            reg = self.services.registrations.lookup(self.iss)
            try:
                new = smart_client.refresh(
                    reg, fresh["token_endpoint"], refresh_token, self.services.transport
                )
            except AuthorizationExpired as exc:
                log.info("launch.refresh outcome=failed registration=%s", reg.name)
                audit.record("token-refresh", "4", self.who, detail=exc.code)
                fresh["refresh_failed"] = True
                self.save()
                raise
            fresh["token"] = {
                "access_token": new["access_token"],
                "refresh_token": new.get("refresh_token") or refresh_token,
                "expires_at": new.get("expires_at"),
                "expires_in": new.get("expires_in"),
                "scope": new.get("scope") or token.get("scope"),
            }
            fresh["refresh_count"] = int(fresh.get("refresh_count", 0)) + 1
            self.save()
            log.info("launch.refresh outcome=ok registration=%s", reg.name)
            audit.record("token-refresh", "0", self.who)
            return str(new["access_token"])

    @property
    def who(self) -> audit.Who:
        """This launch as the audit trail names it: server, client id, user, patient."""
        reg = self.services.registrations.lookup(self.iss)
        patient = f"Patient/{self.patient_id}" if self.patient_id else None
        return audit.Who(self.iss, reg.client_id, self.fhir_user, patient, self)

    def fhir(self) -> FhirClient:
        """A FHIR client for this launch's server (one per request); the token never leaves
        its base URL, and reads every page repeats come from the launch's read cache."""
        if self._client is None:
            reg = self.services.registrations.lookup(self.iss)
            http = self.services.launch_http(reg, self.id, self.iss, self.who)
            g.setdefault("attach_http", []).append(http)  # closed at app-context teardown
            self._client = ReadingClient(self.iss, http, token_source=self.token_source)
        return self._client


def current_launch() -> LaunchContext:
    """The launch named by the ``ctx`` URL parameter of the current request, loaded once per
    request (the audience check and the view share it, and its one FHIR client)."""
    ctx_id = (request.view_args or {}).get("ctx")
    if not isinstance(ctx_id, str):
        raise LaunchNotFound()
    # Kept in the request's own environ, not on ``g``: an app context may outlive a request.
    loaded = request.environ.get(_CURRENT)
    if isinstance(loaded, LaunchContext) and loaded.id == ctx_id:
        return loaded
    launch = LaunchContext.load(ctx_id)
    request.environ[_CURRENT] = launch
    return launch


def _user_type(fhir_user: str | None) -> str | None:
    """The resource type ``fhirUser`` names (``[base/]Type/id[/_history/v]``, absolute or not)."""
    path = urlsplit(fhir_user or "").path.split("/_history/")[0].strip("/").split("/")
    return path[-2] if len(path) >= 2 else None
