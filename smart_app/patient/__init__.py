"""The patient's own pages after a standalone launch (docs/architecture.md)."""

from smart_app.patient.routes import bp

__all__ = ["bp"]
