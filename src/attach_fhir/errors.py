"""Typed errors: one base with a machine-readable ``code`` and a human ``description``."""

from __future__ import annotations

from typing import Any


class AttachError(Exception):
    """Base of every error attach-fhir raises on purpose."""

    code: str = "attach_error"
    description: str = "An error occurred."
    status_code: int = 400

    def __init__(self, description: str | None = None, **details: Any) -> None:
        if description is not None:
            self.description = description
        self.details = details
        super().__init__(self.description)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for CLI output and error pages (never carries PHI or tokens)."""
        return {"code": self.code, "description": self.description, **self.details}
