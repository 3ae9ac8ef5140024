"""Typed errors of the FHIR client, each carrying the server's OperationOutcome when it sent one.

``retryable`` says whether the same request may succeed later unchanged (transport faults, 429,
5xx); everything else is the server's considered answer and is shown to the user as it is.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from typing import Any

from attach_fhir.errors import AttachError


@dataclass(frozen=True)
class OutcomeIssue:
    """One ``OperationOutcome.issue``: severity, code, diagnostics and details text."""

    severity: str
    code: str
    diagnostics: str | None = None
    details: str | None = None
    expression: tuple[str, ...] = ()

    def text(self) -> str:
        """The issue in one line, as a person reads it."""
        words = self.diagnostics or self.details or self.code
        where = f" (at {', '.join(self.expression)})" if self.expression else ""
        return f"{self.severity}: {words}{where}"


@dataclass(frozen=True)
class OperationOutcome:
    """The parsed issues of an OperationOutcome (empty when the server sent none)."""

    issues: tuple[OutcomeIssue, ...] = ()

    @classmethod
    def from_resource(cls, resource: Any) -> OperationOutcome:
        """Parse an OperationOutcome dict; anything else yields an empty outcome."""
        if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
            return cls()
        issues = []
        for issue in resource.get("issue") or []:
            if not isinstance(issue, dict):
                continue
            details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
            issues.append(
                OutcomeIssue(
                    severity=str(issue.get("severity", "error")),
                    code=str(issue.get("code", "unknown")),
                    diagnostics=issue.get("diagnostics"),
                    details=(details or {}).get("text"),
                    expression=tuple(issue.get("expression") or ()),
                )
            )
        return cls(tuple(issues))

    @classmethod
    def from_body(cls, body: bytes) -> OperationOutcome:
        """Parse a response body that may or may not be an OperationOutcome."""
        try:
            return cls.from_resource(json.loads(body))
        except (ValueError, UnicodeDecodeError):
            return cls()

    def text(self) -> str:
        """All issues, one per line (may quote server diagnostics: show it, never log it)."""
        return "\n".join(issue.text() for issue in self.issues)

    def codes(self) -> list[str]:
        """The issue codes only: safe to log, carries no patient data."""
        return [issue.code for issue in self.issues]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class FhirError(AttachError):
    """A FHIR interaction failed."""

    code = "fhir_error"
    description = "The FHIR server request failed."
    status_code = 502
    retryable = False

    def __init__(
        self,
        description: str | None = None,
        *,
        http_status: int | None = None,
        outcome: OperationOutcome | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(description)
        self.http_status = http_status
        self.outcome = outcome or OperationOutcome()
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: code, status and issue codes only (diagnostics may hold PHI)."""
        return {
            "code": self.code,
            "description": self.description,
            "http_status": self.http_status,
            "issues": self.outcome.codes(),
        }

    def user_text(self) -> str:
        """What to show the user: the description and the server's own words."""
        outcome = self.outcome.text()
        return f"{self.description}\n{outcome}" if outcome else self.description

    def log_text(self) -> str:
        """What may be logged: error code, HTTP status and issue codes, no diagnostics."""
        status = f" http={self.http_status}" if self.http_status else ""
        codes = ",".join(self.outcome.codes())
        return f"{self.code}{status}" + (f" issues={codes}" if codes else "")


class FhirUrlRefused(FhirError):
    """A URL outside the client's base was refused (nothing was sent)."""

    code = "fhir_url_refused"
    description = "Refused to follow a URL outside the FHIR server's base."


class FhirReferenceRefused(FhirUrlRefused):
    """A reference or id that is not a FHIR resource type and id was refused (nothing sent)."""

    code = "fhir_reference_refused"
    description = "This is not a FHIR resource reference, so it was not looked up."
    status_code = 404


class FhirTransportError(FhirError):
    """No usable HTTP answer: connection refused or dropped, protocol error."""

    code = "fhir_transport_error"
    description = "The FHIR server could not be reached."
    retryable = True


class FhirTimeout(FhirTransportError):
    """The FHIR server did not answer in time."""

    code = "fhir_timeout"
    description = "The FHIR server did not answer in time."


class FhirClientError(FhirError):
    """A 4xx answer not covered by a more specific class."""

    code = "fhir_client_error"
    description = "The FHIR server rejected the request."
    status_code = 400


class FhirUnauthorized(FhirClientError):
    """401: the token is missing, expired or revoked (after one refresh attempt)."""

    code = "fhir_unauthorized"
    description = "The FHIR server did not accept the app's authorization."
    status_code = 401


class FhirForbidden(FhirClientError):
    """403: authorized but not allowed."""

    code = "fhir_forbidden"
    description = "The FHIR server does not allow this action."
    status_code = 403


class FhirNotFound(FhirClientError):
    """404: no such resource or type."""

    code = "fhir_not_found"
    description = "The FHIR resource was not found."
    status_code = 404


class FhirConflict(FhirClientError):
    """409: version conflict or duplicate."""

    code = "fhir_conflict"
    description = "The FHIR server reported a conflict."
    status_code = 409


class FhirGone(FhirClientError):
    """410: the resource was deleted."""

    code = "fhir_gone"
    description = "The FHIR resource was deleted."
    status_code = 410


class FhirPreconditionFailed(FhirClientError):
    """412: If-Match failed or a conditional create matched several resources."""

    code = "fhir_precondition_failed"
    description = "The FHIR resource changed on the server or the condition matched several."
    status_code = 412


class FhirUnprocessable(FhirClientError):
    """422: the resource broke a server rule (profile, invariant, business rule)."""

    code = "fhir_unprocessable"
    description = "The FHIR server could not accept the data."
    status_code = 422


class FhirRateLimited(FhirError):
    """429: too many requests; honour ``retry_after``."""

    code = "fhir_rate_limited"
    description = "The FHIR server asked the app to slow down."
    status_code = 503
    retryable = True


class FhirServerError(FhirError):
    """5xx: the server failed; the same request may succeed later."""

    code = "fhir_server_error"
    description = "The FHIR server had a problem."
    status_code = 502
    retryable = True


_BY_STATUS: dict[int, type[FhirError]] = {
    401: FhirUnauthorized,
    403: FhirForbidden,
    404: FhirNotFound,
    409: FhirConflict,
    410: FhirGone,
    412: FhirPreconditionFailed,
    422: FhirUnprocessable,
    429: FhirRateLimited,
}


def error_for_status(
    status: int, body: bytes, retry_after: str | None = None, now: float | None = None
) -> FhirError:
    """The typed error for an HTTP error status, with the parsed OperationOutcome."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = FhirServerError if status >= 500 else FhirClientError
    return cls(
        http_status=status,
        outcome=OperationOutcome.from_body(body),
        retry_after=parse_retry_after(retry_after, now),
    )
