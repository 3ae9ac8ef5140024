"""Generation of questionnaires/*.json (used by scripts/build_questionnaires.py only)."""
