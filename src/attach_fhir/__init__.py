"""attach-fhir domain library: instruments, scoring, FHIR resources, care-plan rules, outbox.

Knows nothing of Flask or the browser; the web app lives in ``smart_app``.
"""

__version__ = "0.1.0"
