"""Shared pytest set-up. Fixtures that start real servers live in tests/fixtures/, one plug-in
module per server, so each can be used alone."""

import os
import tempfile

import pytest
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


# scripts/test's second pass moves the clock with libfaketime (Debian 0.9.10). There a timed wait
# on a condition (threading.Event.wait(timeout), what a background outbox worker sleeps on) never
# times out: the library adds its offset to the monotonic deadline, so the wait lasts 400 days;
# with FAKETIME_DONT_FAKE_MONOTONIC instead, time.sleep fails with EINVAL. Tests that need a
# background thread to wake on its own timer are marked ``timed_thread_wait`` and run only in the
# first pass; they do not depend on the date.
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("FAKETIME"):
        return
    skip = pytest.mark.skip(
        reason="needs a thread's timed wait, which libfaketime's moved clock never ends"
    )
    for item in items:
        if item.get_closest_marker("timed_thread_wait"):
            item.add_marker(skip)
