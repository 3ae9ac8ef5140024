"""Errors the web app raises on purpose; each maps to one error page (see ``create_app``)."""

from __future__ import annotations

from attach_fhir.errors import AttachError


class ConfigurationError(AttachError):
    """The app's configuration (e.g. the registrations file) is invalid; raised at start-up."""

    code = "configuration_error"
    description = "The app is misconfigured."
    status_code = 500


class UnknownIssuer(AttachError):
    """The launch named an ``iss`` that no registration lists (exact match)."""

    code = "unknown_issuer"
    description = "This FHIR server is not registered with the app, so the launch was refused."
    status_code = 403


class ForbiddenAddress(AttachError):
    """An outbound URL points at an address class the registration does not allow."""

    code = "forbidden_address"
    description = "The server address is not allowed (private, link-local or unresolvable)."
    status_code = 403


class BadLaunchRequest(AttachError):
    """The launch or callback request is malformed."""

    code = "bad_launch_request"
    description = "The launch request is incomplete or malformed."
    status_code = 400


class NoPatient(AttachError):
    """The launch has no patient in context; each flow says what it then cannot do."""

    code = "no_patient"
    description = "No patient was selected in the EHR."
    status_code = 400


class StateInvalid(AttachError):
    """The callback's ``state`` is missing, unknown, already used, or from another browser."""

    code = "state_invalid"
    description = (
        "This sign-in response does not belong to a launch started in this browser, or it was "
        "already used. Please launch the app again from your EHR."
    )
    status_code = 400


class AuthorizationDenied(AttachError):
    """The authorization server answered the callback with an OAuth error."""

    code = "authorization_denied"
    description = "The EHR did not authorize the app."
    status_code = 403


class IssuerMismatch(AttachError):
    """RFC 9207: the callback's ``iss`` is not this launch's authorization server."""

    code = "issuer_mismatch"
    description = "The sign-in response came from an unexpected authorization server."
    status_code = 400


class TokenExchangeFailed(AttachError):
    """The token endpoint refused the code (replayed code, wrong PKCE verifier, bad client)."""

    code = "token_exchange_failed"
    description = "The EHR refused to issue an access token. Please launch the app again."
    status_code = 502


class IdTokenInvalid(AttachError):
    """The id_token failed verification (signature, iss, aud, exp or nonce)."""

    code = "id_token_invalid"
    description = "The EHR's identity token could not be verified, so the launch was refused."
    status_code = 502


class LaunchNotFound(AttachError):
    """The launch context in the URL is unknown, expired or belongs to another browser."""

    code = "launch_not_found"
    description = "This launch has ended or belongs to another browser. Please launch again."
    status_code = 404


class AuthorizationExpired(AttachError):
    """The access token expired and could not be refreshed; the user must launch again."""

    code = "authorization_expired"
    description = (
        "Your connection to the EHR has expired and could not be renewed. "
        "Please launch the app again from your EHR to continue."
    )
    kept_note = "What you typed has been kept: it will be there when you open the form again."
    status_code = 401


class ScopeNotGranted(AttachError):
    """The action needs a scope the EHR did not grant."""

    code = "scope_not_granted"
    description = "The EHR did not grant the app permission for this action."
    status_code = 403


class FhirRequestRefused(AttachError):
    """A FHIR request would leave the launch's FHIR server (the bearer token stays with iss)."""

    code = "fhir_request_refused"
    description = "The app refused to send a request outside the EHR's FHIR server."
    status_code = 400


class CsrfFailed(AttachError):
    """A form post arrived without this browser's CSRF token."""

    code = "csrf_failed"
    description = "The form has expired or did not come from this app. Please try again."
    status_code = 400
