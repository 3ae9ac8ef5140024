"""A sandbox EHR on loopback: a real FHIR R4 server (Medplum's router), a SMART authorization
server built on authlib, seeded synthetic patients, and the app registered against them."""
