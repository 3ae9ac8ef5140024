"""The patient picker (docs/architecture.md)."""

from smart_app.picker.routes import bp

__all__ = ["bp"]
