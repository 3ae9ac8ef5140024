"""The assign flow: ask the patient to fill in a questionnaire at home (docs/architecture.md)."""

from smart_app.assign.routes import bp

__all__ = ["bp"]
