"""The sandbox EHR's own pages and the ``attach-fhir sandbox`` command, over real HTTP."""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ehr_sandbox.authz.config import Knobs
from ehr_sandbox.runner import Sandbox
from tests.fixtures.sandbox import LAUNCH_URL, SANDBOX_CLIENTS
from tests.fixtures.smart_app_server import Browser

pytestmark = pytest.mark.e2e

ADULT = "sandbox-adult-29"
ROWAN = "sandbox-practitioner-rowan"


def test_ehr_page_lists_seeded_people_and_launchable_apps(authz_server: Sandbox) -> None:
    assert authz_server.urls is not None
    page = httpx.get(authz_server.urls.ehr).text
    patients = re.findall(r'<option value="(sandbox-[a-z0-9-]+)"', page)
    assert {ADULT, "sandbox-child-4", "sandbox-adolescent-15", ROWAN} <= set(patients)
    assert 'name="fhir_context"' in page  # a Task (or more) the launch names in fhirContext
    apps = set(re.findall(r'name="app" value="([^"]+)"', page))
    assert apps >= {c.client_id for c in SANDBOX_CLIENTS.values()}  # tests may add their own


def test_iframe_launch_page_embeds_the_app_under_a_patient_banner(authz_server: Sandbox) -> None:
    assert authz_server.urls is not None
    client = SANDBOX_CLIENTS["rs384"]
    response = httpx.post(
        f"{authz_server.urls.issuer}/ehr/launch",
        data={"app": client.client_id, "patient": ADULT, "practitioner": ROWAN, "mode": "iframe"},
    )
    assert response.status_code == 200
    banner = re.search(r'id="patient-banner" data-patient="([^"]+)"', response.text)
    assert banner is not None and banner.group(1) == ADULT
    src = re.search(r'<iframe[^>]*src="([^"]+)"', response.text)
    assert src is not None
    url = urlsplit(html.unescape(src.group(1)))
    assert f"{url.scheme}://{url.netloc}{url.path}" == LAUNCH_URL
    query = parse_qs(url.query)
    assert query["iss"] == [authz_server.urls.fhir_base]
    record = authz_server.state.store.get_launch(query["launch"][0])
    assert record is not None
    assert (record.grantee.patient, record.grantee.user_ref) == (ADULT, f"Practitioner/{ROWAN}")
    assert record.grantee.embedded is True


def test_knobs_form_changes_the_knobs(authz_server: Sandbox, authz_knobs: Knobs) -> None:
    assert authz_server.urls is not None
    response = httpx.post(
        f"{authz_server.urls.issuer}/ehr/settings",
        data={
            "access_token_lifetime": "7",
            "refresh_fails": "true",
            "grant_only": "patient/Patient.rs patient/Goal.crus",
            "need_patient_banner": "false",
            "smart_style": "false",
            "auto_approve": "true",
            "standalone_patient_picker": "false",
        },
    )
    assert response.status_code == 303
    assert vars(authz_knobs) == {
        "access_token_lifetime": 7,
        "refresh_fails": True,
        "grant_only": ["patient/Patient.rs", "patient/Goal.crus"],
        "need_patient_banner": False,
        "smart_style": False,
        "auto_approve": True,
        "standalone_patient_picker": False,
    }
    bad = httpx.post(f"{authz_server.urls.issuer}/ehr/settings", json={"access_token_lifetime": 0})
    assert bad.status_code == 400
    assert authz_knobs.access_token_lifetime == 7


def test_sandbox_command_prints_the_ehr_url_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "attach_fhir.cli", "sandbox", "--port-base", "0"]
    stderr = tmp_path / "stderr.txt"
    with (
        stderr.open("w") as err,
        subprocess.Popen(
            [*command, "--data-dir", str(tmp_path / "data")],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            match = re.match(r"Sandbox EHR: open (http://127\.0\.0\.1:\d+/ehr)$", first.strip())
            assert match is not None, first + stderr.read_text()
            ehr_page = httpx.get(match.group(1), timeout=15)
            assert ehr_page.status_code == 200
            portal_sign_in(ehr_page.text)
            key = tmp_path / "data" / "app-private-key.json"
            assert key.stat().st_mode & 0o077 == 0
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, stderr.read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(match.group(1), timeout=2)


def portal_sign_in(ehr_page: str) -> None:
    """The EHR page's patient-portal link starts the app's standalone launch: a patient who
    signs in lands on the app with themselves in context (what a demo user clicks through)."""
    links = re.findall(r'<a href="([^"]+)"[^>]*>sign in as a patient</a>', ehr_page)
    assert len(links) == 1
    link = html.unescape(links[0])
    fhir_base = re.search(r"FHIR base: <code>([^<]+)</code>", ehr_page)
    assert fhir_base is not None
    start = httpx.URL(link)
    assert start.path == "/launch/standalone"
    assert dict(start.params) == {"iss": fhir_base.group(1), "role": "patient"}
    browser = Browser(sign_in_as=f"Patient/{ADULT}")
    try:
        landing = browser.go(link)
    finally:
        browser.close()
    assert landing.status_code == 200, landing.text
    assert "/app/" in browser.visited[-1]
    assert "Alex Synthetic" in landing.text
