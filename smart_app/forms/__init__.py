"""Questionnaire forms shared by the flows: render, parse, enableWhen (docs/architecture.md)."""
