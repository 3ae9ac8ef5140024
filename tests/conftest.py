"""Shared pytest set-up. Fixtures that start real servers live in tests/fixtures/, one plug-in
module per server, so each can be used alone."""

import os
import tempfile

from hypothesis import settings

pytest_plugins: list[str] = [
    "tests.fixtures.browser",
    "tests.fixtures.fhir_server",
    "tests.fixtures.sandbox",
    "tests.fixtures.smart_app_server",
]

# CI runs the same examples every time (a red CI names a reproducible case); local runs keep
# exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# An app made without DATA_DIR keeps its stores in $ATTACH_DATA_DIR, else in the user's data
# directory: never let a test write there.
if not os.environ.get("ATTACH_DATA_DIR"):
    os.environ["ATTACH_DATA_DIR"] = tempfile.mkdtemp(prefix="attach-fhir-tests-")
