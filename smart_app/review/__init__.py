"""The review flow: scores, history, print (docs/architecture.md)."""

from smart_app.review.routes import bp

__all__ = ["bp"]
