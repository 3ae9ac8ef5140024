"""Headless Chromium for the benchmarks: Debian's /usr/bin/chromium with the options the
browser tests use (tests/fixtures/browser.py), so figures come from the same browser."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Launch headless Chromium; SystemExit naming the fix when the binary is missing."""
    if not CHROMIUM.is_file():
        raise SystemExit(f"{CHROMIUM} is missing: run scripts/bootstrap (installs chromium)")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()
