"""The sandbox EHR as a CDS Client: opening a patient's record calls the patient-view hook.

For each configured discovery URL (``cds_services`` in the config) the EHR reads the services,
and for each ``patient-view`` service it (CDS Hooks 2.0, "Calling a CDS Service"):

- satisfies the prefetch templates it can from its FHIR server (a failed one is left out, one
  with no data is ``null``), with a token minted for the service's read scopes;
- passes ``fhirServer`` and ``fhirAuthorization`` (that token) so the service can fetch more;
- signs the call with its own key (the one its JWKS publishes): ``iss``, ``aud`` = the service
  URL, ``exp``, ``iat``, ``jti``, header ``kid`` and ``typ: JWT``.

The record page shows the cards (Jinja autoescaping keeps every text inert); a ``smart`` link
launches the registered app whose launch URL it names, through the EHR's own launch.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from flask import Blueprint, redirect, render_template, request
from joserfc import jwt
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from . import card_markdown
from .keys import SIGNING_ALG
from .state import AuthzState
from .storage import new_token
from .views import state

bp = Blueprint("ehr_cds", __name__)

#: What the EHR grants a CDS service (read only, the patient in view).
CDS_SCOPE = "patient/Patient.rs patient/Observation.rs patient/QuestionnaireResponse.rs"
CDS_TOKEN_LIFETIME = 300
CDS_JWT_LIFETIME = 120
CDS_SUBJECT = "attach-fhir"


@dataclasses.dataclass(frozen=True)
class LinkView:
    """A card link as the page shows it; ``app`` is the client id a smart link launches."""

    label: str
    url: str
    type: str
    app: str | None = None


@dataclasses.dataclass(frozen=True)
class CardView:
    """One card from one service."""

    service: str
    summary: str
    indicator: str
    detail: str = ""
    source_label: str = ""
    source_url: str | None = None
    links: tuple[LinkView, ...] = ()

    @property
    def detail_html(self) -> Markup:
        """The markdown ``detail`` as sanitized HTML (card_markdown)."""
        return card_markdown.render(self.detail)


def signed_jwt(st: AuthzState, audience: str) -> str:
    """The EHR's CDS Hooks JWT for one call."""
    now = int(time.time())
    claims = {
        "iss": st.config.issuer,
        "aud": audience,
        "iat": now,
        "exp": now + CDS_JWT_LIFETIME,
        "jti": new_token(16),
    }
    header = {"alg": SIGNING_ALG, "kid": st.key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, st.key, algorithms=[SIGNING_ALG])


def access_token(st: AuthzState, patient: str, user: str) -> str:
    """A short access token for the service: read scopes confined to the patient in view."""
    now = int(time.time())
    claims = {
        "iss": st.config.issuer,
        "aud": st.config.fhir_base,
        "iat": now,
        "exp": now + CDS_TOKEN_LIFETIME,
        "jti": new_token(16),
        "scope": CDS_SCOPE,
        "client_id": CDS_SUBJECT,
        "sub": user,
        "patient": patient,
    }
    header = {"alg": SIGNING_ALG, "kid": st.key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, st.key, algorithms=[SIGNING_ALG])


def _fill(template: str, context: dict[str, str]) -> str:
    for name, value in context.items():
        template = template.replace(f"{{{{context.{name}}}}}", quote(value, safe=""))
    return template


def prefetch(
    st: AuthzState, templates: dict[str, Any], context: dict[str, str], token: str
) -> dict[str, Any]:
    """The prefetch the EHR can satisfy: resource, ``None`` for no data; failures left out."""
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    for key, template in templates.items():
        url = _fill(str(template), context)
        if "{{" in url:
            continue  # a token this EHR does not fill
        try:
            response = st.server.http.get(f"{st.config.fhir_internal_base}/{url}", headers=headers)
        except httpx.HTTPError:
            continue
        if response.status_code == 404:
            out[key] = None
        elif response.status_code == 200:
            body = response.json()
            empty = body.get("resourceType") == "Bundle" and not body.get("entry")
            out[key] = None if empty else body
    return out


def _services(st: AuthzState, discovery: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {signed_jwt(st, discovery)}"}
    response = st.server.http.get(discovery, headers=headers)
    response.raise_for_status()
    found = response.json().get("services") or []
    return [s for s in found if isinstance(s, dict) and s.get("hook") == "patient-view"]


def _launchable(st: AuthzState) -> dict[str, str]:
    return {
        c.config.launch_url: c.config.client_id for c in st.server.clients() if c.config.launch_url
    }


def _cards(service: dict[str, Any], answer: dict[str, Any], apps: dict[str, str]) -> list[CardView]:
    out = []
    for card in answer.get("cards") or []:
        source = card.get("source") or {}
        links = tuple(
            LinkView(
                label=str(link.get("label", "")),
                url=str(link.get("url", "")),
                type=str(link.get("type", "")),
                app=apps.get(str(link.get("url"))) if link.get("type") == "smart" else None,
            )
            for link in card.get("links") or []
        )
        out.append(
            CardView(
                service=str(service.get("title") or service.get("id")),
                summary=str(card.get("summary", "")),
                indicator=str(card.get("indicator", "info")),
                detail=str(card.get("detail", "")),
                source_label=str(source.get("label", "")),
                source_url=source.get("url")
                if str(source.get("url", "")).startswith("http")
                else None,
                links=links,
            )
        )
    return out


def patient_view(st: AuthzState, patient: str, user: str) -> tuple[list[CardView], list[str]]:
    """Call every patient-view service; the cards, and a line per service that failed."""
    cards: list[CardView] = []
    problems: list[str] = []
    context = {"userId": user, "patientId": patient}
    apps = _launchable(st)
    for discovery in st.config.cds_services:
        try:
            services = _services(st, discovery)
        except (httpx.HTTPError, ValueError):
            problems.append(f"{discovery}: discovery failed")
            continue
        for service in services:
            url = f"{discovery.rstrip('/')}/{quote(str(service.get('id', '')), safe='')}"
            token = access_token(st, patient, user)
            body = {
                "hook": "patient-view",
                "hookInstance": str(uuid.uuid4()),
                "fhirServer": st.config.fhir_base,
                "fhirAuthorization": {
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": CDS_TOKEN_LIFETIME,
                    "scope": CDS_SCOPE,
                    "subject": CDS_SUBJECT,
                },
                "context": context,
                "prefetch": prefetch(st, service.get("prefetch") or {}, context, token),
            }
            headers = {"Authorization": f"Bearer {signed_jwt(st, url)}"}
            try:
                response = st.server.http.post(url, json=body, headers=headers)
            except httpx.HTTPError:
                problems.append(f"{url}: no answer")
                continue
            if response.status_code != 200:
                problems.append(f"{url}: HTTP {response.status_code}")
                continue
            cards.extend(_cards(service, response.json(), apps))
    return cards, problems


@bp.get("/ehr/record")
def open_record() -> BaseResponse:
    """The home page's record form: to the record page of the chosen patient."""
    patient = quote(request.args.get("patient", ""), safe="")
    practitioner = urlencode({"practitioner": request.args.get("practitioner", "")})
    return redirect(f"/ehr/patients/{patient}?{practitioner}", code=303)


@bp.get("/ehr/patients/<patient_id>")
def record(patient_id: str) -> tuple[str, int] | str:
    """The patient's record: banner, and the CDS Hooks cards of the patient-view hook."""
    st = state()
    patient = st.directory.person(f"Patient/{patient_id}")
    practitioner = st.directory.person(f"Practitioner/{request.args.get('practitioner', '')}")
    if patient is None or practitioner is None:
        page = render_template(
            "authz/error.html",
            error="invalid_request",
            description="Choose a patient and a practitioner.",
        )
        return page, 400
    cards, problems = patient_view(st, patient.id, practitioner.ref)
    return render_template(
        "ehr/patient.html",
        patient=patient,
        practitioner=practitioner,
        cards=cards,
        problems=problems,
    )
