"""The SMART launch flow (docs/architecture.md)."""

from smart_app.launch.routes import bp

__all__ = ["bp"]
