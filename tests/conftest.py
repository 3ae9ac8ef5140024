"""Shared pytest set-up. Fixtures that start real servers live in tests/fixtures/, one plug-in
module per server, so each can be used alone."""

pytest_plugins: list[str] = [
    "tests.fixtures.browser",
    "tests.fixtures.fhir_server",
    "tests.fixtures.sandbox",
    "tests.fixtures.smart_app_server",
]
