"""What a new user of ``scripts/demo`` sees, in headless Chromium: the sandbox's registration
grants what the advertised flows need (the signed-in clinician's name, sending a questionnaire
to the patient), and ``scripts/screenshots`` regenerates the README's five pictures."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.e2e.test_form_browser import AXE, axe_violations
from tests.fixtures.sandbox import SandboxFactory

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
ADULT = "sandbox-adult-29"
ROWAN = "sandbox-practitioner-rowan"
ROWAN_NAME = "Dr. Rowan Example"  # ehr_sandbox/seed/sandbox-patients.json, name.text
PICTURES = ("ehr-launch.png", "form.png", "review.png", "careplan-proposal.png", "patient-plan.png")


def test_a_new_user_sees_every_advertised_flow(
    sandbox_factory: SandboxFactory, chromium: Browser
) -> None:
    sandbox = sandbox_factory(with_app=True)
    assert sandbox.urls is not None and AXE.is_file()
    context = chromium.new_context(bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(sandbox.urls.ehr)
        page.select_option("#launch-form select[name=patient]", ADULT)
        page.select_option("#launch-form select[name=practitioner]", ROWAN)
        page.check("#launch-form input[name=mode][value=window]")
        with context.expect_page() as popup:
            page.click("#launch-form button[type=submit]")
        app = popup.value
        app.wait_for_selector("#page-title")
        assert app.locator("#user-name").inner_text() == ROWAN_NAME  # Practitioner read
        for width, height in ((1280, 800), (320, 640)):
            app.set_viewport_size({"width": width, "height": height})
            assert axe_violations(app) == []
            assert app.evaluate("document.documentElement.scrollWidth") <= width
        app.locator("a[href$='/assess/']").first.click()
        app.wait_for_load_state()
        send = app.locator("summary", has_text="Ask the patient to complete this at home")
        assert send.count() >= 1  # Task create granted: "send to the patient" is offered
        assert "not allowed" not in send.first.inner_text()
    finally:
        context.close()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_screenshots_command_rewrites_the_five_pictures(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(PICTURES)
    for name in PICTURES:
        width, height = png_size(tmp_path / name)
        assert width == 1280 and height >= 800, (name, width, height)
