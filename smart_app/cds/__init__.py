"""The CDS Hooks service (docs/architecture.md)."""

from smart_app.cds.routes import bp

__all__ = ["bp"]
