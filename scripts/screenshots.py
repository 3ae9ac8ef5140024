"""Regenerate the README's pictures: drive the sandbox EHR and the app in headless Chromium.

Run ``scripts/screenshots`` (after ``scripts/bootstrap``). It starts a throwaway sandbox, signs in
as the practitioner, launches the app inside the EHR, fills in the ECR-R, opens the review and a
care-plan proposal, approves it, sends the ECR-R to the patient, then signs in as the patient;
each step is a PNG in docs/images.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from ehr_sandbox.runner import Sandbox

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ADULT = "sandbox-adult-29"
ROWAN = "sandbox-practitioner-rowan"
#: ECR-R items keyed in reverse (published key); answers chosen to score anxiety 5, avoidance 3.
REVERSED = {9, 11, 20, 22, 26, 27, 28, 29, 30, 31, 33, 34, 35, 36}
LEVELS = {"anxiety": 5, "avoidance": 3}
SHOTS = {
    "ehr-launch.png": "the app launched inside the sandbox EHR (iframe)",
    "form.png": "the ECR-R form",
    "review.png": "the review with the anxiety x avoidance plane",
    "careplan-proposal.png": "a care-plan proposal from the scores",
    "patient-plan.png": "the patient's plan after a patient's own launch",
}


def answer(n: int) -> str:
    level = LEVELS["anxiety"] if n <= 18 else LEVELS["avoidance"]
    return str(8 - level if n in REVERSED else level)


def launch_in_ehr(page: Page, ehr: str, mode: str) -> None:
    page.goto(ehr)
    page.select_option("#launch-form select[name=patient]", ADULT)
    page.select_option("#launch-form select[name=practitioner]", ROWAN)
    page.check(f"#launch-form input[name=mode][value={mode}]")


def run(out: Path) -> list[Path]:
    written = []
    with tempfile.TemporaryDirectory() as tmp, Sandbox(Path(tmp)) as sandbox:
        assert sandbox.urls is not None and sandbox.urls.app is not None
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = context.new_page()

            def shot(target: Page, name: str, full: bool = False) -> None:
                path = out / name
                target.screenshot(path=str(path), full_page=full)
                written.append(path)

            # 1. The launch inside the EHR.
            launch_in_ehr(page, sandbox.urls.ehr, "iframe")
            page.click("#launch-form button[type=submit]")
            page.frame_locator("#app-frame").locator("#page-title").wait_for()
            shot(page, "ehr-launch.png")

            # 2-4. The same launch in a window of its own: form, review, proposal.
            launch_in_ehr(page, sandbox.urls.ehr, "window")
            with context.expect_page() as popup:
                page.click("#launch-form button[type=submit]")
            app = popup.value
            app.wait_for_selector("#page-title")
            base = app.url.split("/app/")[0] + "/app/" + app.url.split("/app/")[1].split("/")[0]
            app.goto(f"{base}/assess/ecr-r/")
            app.wait_for_selector("input[name='q:1']")
            for n in range(1, 4):
                app.check(f"input[name='q:{n}'][value='{answer(n)}']")
            shot(app, "form.png")
            for n in range(4, 37):
                app.check(f"input[name='q:{n}'][value='{answer(n)}']")
            app.click("#submit-button")
            app.wait_for_url("**/review/responses/**")
            shot(app, "review.png", full=True)
            app.goto(f"{base}/careplan/propose")
            app.click("#propose-button")
            app.wait_for_selector("#approve-button")
            shot(app, "careplan-proposal.png", full=True)
            app.click("#approve-button")
            app.wait_for_url("**/careplan/**")
            # ... and send the ECR-R to the patient, due in two weeks (the demo's own clock).
            app.goto(f"{base}/assess/")
            form = app.locator("#assign-ecr-r")
            form.locator("summary").click()
            due = dt.date.today() + dt.timedelta(days=14)
            form.locator("input[name=due]").fill(due.isoformat())
            form.locator("textarea[name=note]").fill("Before our next session, if you can.")
            form.get_by_role("button", name="Send to the patient").click()
            app.wait_for_load_state()

            # 5. The patient, from the portal: their own plan.
            patient = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
            patient.goto(f"{sandbox.urls.app}/")
            patient.locator("a[href*='role=patient']").first.click()
            patient.locator(f"button[data-ref='Patient/{ADULT}']").click()
            patient.wait_for_load_state()
            approve = patient.get_by_role("button", name="Approve")
            if approve.count():
                approve.click()
            patient.wait_for_url("**/patient/")
            shot(patient, "patient-plan.png", full=True)
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in run(args.out):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
              f"{SHOTS[path.name]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
