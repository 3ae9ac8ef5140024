"""FHIR requests per page of a clinician's walk and a patient's page, against the real sandbox.

Run: ``.venv/bin/python bench/request_count.py [--json]``.

The sandbox EHR (FHIR server + authorization server) runs on loopback and the real app
(``create_app``, SQLite session store in a temporary directory) is served over HTTP with the
e2e tests' ``RecordingTransport``: every outbound request the app makes is sent for real and
recorded. A clinician launches from the sandbox's EHR page (the 29-year-old sandbox patient) and
walks landing, choose, form, submit, review, care plan and history; then the patient signs in
(standalone launch) and opens their own page. Requests are counted from the moment the browser
asks for a page until its answer, by method and resource type (``metadata`` for the
CapabilityStatement, ``(base)`` for a transaction or batch); the launch's own discovery and token
requests are left out.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # tests.fixtures: the sandbox launch helpers the e2e tests use

from app_overhead import ecr_r_answers, hidden  # noqa: E402  (this folder: the same walk's helpers)

from ehr_sandbox.runner import Sandbox  # noqa: E402
from tests.fixtures.smart_app_server import (  # noqa: E402
    AppServer,
    Browser,
    RecordingTransport,
    app_registration,
    ehr_launch_url,
    register_app,
    start_app,
)

ADULT = "sandbox-adult-29"
#: How long the walk waits for the outbox to deliver a submission (it is usually at once).
DELIVERY_WAIT = 30.0


@dataclass
class PageCount:
    """The FHIR requests one page made, by ``METHOD type``."""

    label: str
    requests: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """All requests of the page."""
        return sum(self.requests.values())


def kind(method: str, url: str, fhir_base: str) -> str:
    """``GET Patient``, ``GET metadata``, ``POST (base)``; ``GET other:/path`` off the base."""
    base = fhir_base.rstrip("/")
    if not url.startswith(base):
        return f"{method} other:{urlsplit(url).path}"
    path = urlsplit(url[len(base) :]).path.strip("/")
    return f"{method} {path.split('/')[0] or '(base)'}"


def counted(label: str, transport: RecordingTransport, fhir_base: str, since: int) -> PageCount:
    """The requests recorded after index ``since``, as one page's count."""
    page = PageCount(label)
    for method, url in transport.requests[since:]:
        page.requests[kind(method, url, fhir_base)] += 1
    return page


def launch(browser: Browser, url: str, server: AppServer) -> str:
    """Walk a launch up to (not into) the landing page; the launch's context id."""
    stop = browser.go(url, stop_at=f"{server.url}/app/")
    location = stop.headers.get("location", "")
    if stop.status_code != 303 or "/app/" not in location:
        raise RuntimeError(f"the launch did not reach the app ({stop.status_code})")
    return urlsplit(location).path.split("/")[2]


def clinician_walk(sandbox: Sandbox, server: AppServer) -> list[PageCount]:
    """The clinician's pages, each counted: landing .. history."""
    assert sandbox.urls is not None
    fhir = sandbox.urls.fhir_base
    browser = Browser()
    pages: list[PageCount] = []

    def get(label: str, path: str, status: int = 200) -> str:
        since = len(server.transport.requests)
        answer = browser.request("GET", f"{server.url}{path}")
        if answer.status_code != status:
            raise RuntimeError(f"{label}: {answer.status_code}")
        pages.append(counted(label, server.transport, fhir, since))
        return answer.text if status == 200 else answer.headers["location"]

    try:
        ctx = launch(browser, ehr_launch_url(sandbox, server.client_id, ADULT), server)
        base = f"/app/{ctx}"
        get("landing", f"{base}/")
        get("choose", f"{base}/assess/")
        form = get("form GET (ECR-R)", f"{base}/assess/ecr-r/")
        post = {
            **ecr_r_answers(),
            "csrf_token": hidden(form, "csrf_token"),
            "submission_id": hidden(form, "submission_id"),
            "action": "submit",
        }
        since = len(server.transport.requests)
        posted = browser.request("POST", f"{server.url}{base}/assess/ecr-r/", data=post)
        if posted.status_code != 303:
            raise RuntimeError(f"submit: {posted.status_code}")
        review = ""
        deadline = time.monotonic() + DELIVERY_WAIT
        while not review:  # the status page sends the browser to the review once delivered
            status = browser.request("GET", f"{server.url}{posted.headers['location']}")
            review = status.headers.get("location", "") if status.status_code == 303 else ""
            if not review and time.monotonic() > deadline:
                raise RuntimeError("the submission was not delivered")
            if not review:
                time.sleep(0.2)
        pages.append(counted("submit (POST + status)", server.transport, fhir, since))
        get("review scores", urlsplit(review).path)
        get("care plan", f"{base}/careplan/")
        get("history", f"{base}/review/")
    finally:
        browser.close()
    return pages


def patient_walk(sandbox: Sandbox, server: AppServer) -> list[PageCount]:
    """A patient's standalone launch: their landing page and their own page."""
    assert sandbox.urls is not None
    fhir = sandbox.urls.fhir_base
    browser = Browser(sign_in_as=f"Patient/{ADULT}")
    pages: list[PageCount] = []
    try:
        start = f"{server.url}/launch/standalone?iss={fhir}&role=patient"
        ctx = launch(browser, start, server)
        for label, path in (
            ("patient: landing", f"/app/{ctx}/"),
            ("patient: own page", f"/app/{ctx}/patient/"),
        ):
            since = len(server.transport.requests)
            answer = browser.request("GET", f"{server.url}{path}")
            if answer.status_code != 200:
                raise RuntimeError(f"{label}: {answer.status_code}")
            pages.append(counted(label, server.transport, fhir, since))
    finally:
        browser.close()
    return pages


def walk(work: Path) -> list[PageCount]:
    """Sandbox + app over HTTP; both walks, counted."""
    sandbox = Sandbox(work / "sandbox", with_app=False).start()
    server = None
    try:
        assert sandbox.urls is not None
        data_dir = work / "app"
        data_dir.mkdir()
        reg, client = app_registration("public", sandbox.urls.fhir_base, data_dir)
        server = start_app(reg, data_dir)
        register_app(sandbox, server, client)
        return clinician_walk(sandbox, server) + patient_walk(sandbox, server)
    finally:
        if server is not None:
            server.stop()
        sandbox.stop()


def report(pages: list[PageCount]) -> str:
    """One line per page: total, then each ``METHOD type`` count; then the walk's totals."""
    lines = [f"{'page':<26} {'FHIR':>4}  by method and resource type"]
    for page in pages:
        detail = ", ".join(f"{k} {n}" for k, n in sorted(page.requests.items()))
        lines.append(f"{page.label:<26} {page.total:>4}  {detail}")
    clinician = [p for p in pages if not p.label.startswith("patient")]
    overall: Counter[str] = Counter()
    for page in clinician:
        overall.update(page.requests)
    lines.append(
        f"clinician walk: {sum(p.total for p in clinician)} requests; GET Patient "
        f"{overall['GET Patient']}, GET Questionnaire {overall['GET Questionnaire']}, "
        f"GET metadata {overall['GET metadata']}"
    )
    return "\n".join(lines)


def main() -> int:
    """Run both walks against a fresh sandbox and print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with TemporaryDirectory() as work:
        pages = walk(Path(work))
    if args.json:
        print(json.dumps({p.label: dict(sorted(p.requests.items())) for p in pages}, indent=2))
    else:
        print(report(pages))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
