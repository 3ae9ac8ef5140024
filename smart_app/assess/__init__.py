"""The assess flow: choose, fill, draft, submit (docs/architecture.md)."""

from smart_app.assess.routes import bp

__all__ = ["bp"]
