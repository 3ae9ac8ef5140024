"""Everything of attach_fhir that touches a socket or a disk (docs/architecture.md)."""
