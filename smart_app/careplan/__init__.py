"""The care-plan flow (docs/architecture.md)."""

from smart_app.careplan.routes import bp

__all__ = ["bp"]
