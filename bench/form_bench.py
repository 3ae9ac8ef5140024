"""The ECR-R fill form in headless Chromium: bytes on the wire, time to interactive, time per
answer, for our page and for the peer renderers (LHC-Forms, Smart Forms) measured in the same
run and browser, with the ratio ours/peer; plus the app's own render and parse time per request.

Run: ``.venv/bin/python bench/form_bench.py [--runs 7]`` after ``scripts/bootstrap --bench``
(installs the peers under bench/peers). Method: bench/_page_metrics.py and bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from _browser import chromium
from _page_metrics import Load, Renderer, answer_all, page_load
from _peers import renderers, serve_peers
from flask import Blueprint, Flask, render_template, request
from playwright.sync_api import Locator, Page
from werkzeug.serving import make_server

from smart_app import create_app
from smart_app.forms.form_response import parse_form
from smart_app.forms.questionnaire_form import build_form

ROOT = Path(__file__).resolve().parents[1]
ECR_R_FILE = ROOT / "questionnaires" / "ecr-r.json"
ECR_R = json.loads(ECR_R_FILE.read_text(encoding="utf-8"))
CHOICES = [i for i in ECR_R["item"] if i["type"] == "choice"]
TEXTS = [i["text"] for i in CHOICES]
# Item n gets answer option (3n mod 7): every scale point used, no two neighbours alike.
EXPECTED = {
    i["linkId"]: i["answerOption"][(3 * n) % 7]["valueCoding"]["code"]
    for n, i in enumerate(CHOICES, 1)
}
REGISTRATIONS = {
    "registrations": [
        {
            "name": "bench",
            "iss": ["http://127.0.0.1:9/fhir"],
            "client_id": "bench",
            "client_type": "public",
            "allow_addresses": ["loopback"],
        }
    ]
}
# Issue 4's targets for our page.
TARGETS = {"bytes": 50 * 1024, "tti": 700.0, "answer": 100.0}

PATH = "/bench/ecr-r"
OUR_ANSWERS = """Object.fromEntries([...document.querySelectorAll("input[name^='q:']:checked")]
  .map((i) => [i.name.slice(2), i.value]))"""

bp = Blueprint("form_bench", __name__)


@bp.route(PATH, methods=["GET", "POST"])
def ecr_r_page() -> Any:
    if request.method == "POST":
        parsed = parse_form(ECR_R, request.form)
        assert parsed.ok, parsed.errors
        return parsed.response
    return render_template("assess/form.html", form=build_form(ECR_R))


@contextmanager
def serve(data_dir: str) -> Iterator[tuple[Flask, str]]:
    """The real app (CSP, CSRF, cookies) plus the bench page on a loopback port."""
    app = create_app({"REGISTRATIONS_DATA": REGISTRATIONS, "DATA_DIR": data_dir})
    app.register_blueprint(bp)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}{PATH}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def _our_targets(page: Page, n: int, k: int) -> list[Locator]:
    return [page.locator(f"input[name='q:{n}']").nth(k).locator("xpath=..")]


def ours(url: str) -> Renderer:
    """Our server-rendered page: 7 labelled radios per item, one click per answer."""
    controls = "input[type=radio][name^='q:']"
    return Renderer("ours, server-rendered", url, controls, 252, _our_targets, OUR_ANSWERS)


def server_times(app: Flask, runs: int) -> tuple[float, float, float]:
    """p50 ms of whole app requests (WSGI, no sockets, no FHIR): GET the form, POST 36 answers."""
    client = app.test_client()
    page = client.get(PATH).get_data(as_text=True)  # sets the session cookie
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    post = {f"q:{n}": str((3 * n) % 7 + 1) for n in range(1, 37)}
    post |= {"csrf_token": token.group(1), "action": "submit"}
    get_ms, post_ms, base_ms = [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        base_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        assert client.get(PATH).status_code == 200
        get_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        assert client.post(PATH, data=post).status_code == 200
        post_ms.append((time.perf_counter() - start) * 1000)
    return statistics.median(get_ms), statistics.median(post_ms), statistics.median(base_ms)


@dataclass
class Figures:
    """One page's medians: bytes, bytes if gzip'd, requests, ms to interactive, ms per answer,
    clicks per answer, in-page ms per answer."""

    wire: float
    gzipped: float
    requests: float
    tti: float
    answer: float
    clicks: int
    in_page: float

    @classmethod
    def of(cls, loads: list[Load], wall: list[float], in_page: list[float], clicks: int) -> Figures:
        """Medians of the cold loads and of the 36 answers."""
        med = statistics.median
        wire, gzipped = med(x.wire for x in loads), med(x.gzipped for x in loads)
        requests, tti = med(x.requests for x in loads), med(x.tti for x in loads)
        return cls(wire, gzipped, requests, tti, med(wall), clicks, med(in_page))


def table(figures: dict[str, Figures]) -> list[str]:
    """Each page's figures, then each peer's ratio ours/peer, then ours against issue 4."""
    cols = f"{'wire':>10} {'gzip`d':>10} {'requests':>8} {'interactive':>11} {'per answer':>10}"
    lines = [f"{'page':<30} {cols} {'clicks':>6} {'in page':>8}".replace("`", "'")]
    for name, f in figures.items():
        lines.append(
            f"{name:<30} {f.wire / 1024:>7.1f} KB {f.gzipped / 1024:>7.1f} KB {f.requests:>8.0f}"
            f" {f.tti:>8.0f} ms {f.answer:>7.0f} ms {f.clicks:>6} {f.in_page:>5.1f} ms"
        )
    mine = next(iter(figures.values()))
    lines.append("ratio ours/peer (below 1: ours is smaller or faster)")
    for name, f in list(figures.items())[1:]:
        lines.append(
            f"  {name:<28} {mine.wire / f.wire:>10.3f} {mine.gzipped / f.gzipped:>10.3f} {'':>8}"
            f" {mine.tti / f.tti:>11.2f} {mine.answer / f.answer:>10.2f}"
        )
    met = [
        "meets" if v <= TARGETS[k] else "MISSES"
        for k, v in (("bytes", mine.wire), ("tti", mine.tti), ("answer", mine.answer))
    ]
    lines.append(
        f"{'ours vs issue 4 target':<30} {met[0]:>10} {'':>10} {'':>8} {met[1]:>11} {met[2]:>10}"
        "  (<= 50 KB, <= 700 ms, <= 100 ms)"
    )
    return lines


def main() -> int:
    """Measure our page and the peers in one run and browser; print figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="cold loads per page (median)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log on the console
    with (
        TemporaryDirectory() as data_dir,
        serve(data_dir) as (app, url),
        serve_peers(ECR_R_FILE) as peers_url,
    ):
        pages = [ours(url), *renderers(peers_url)]
        with chromium() as browser:
            for page in pages:
                page_load(browser, page)  # warm-up: the first load pays for disk caches
            loads: dict[str, list[Load]] = {page.name: [] for page in pages}
            for _ in range(args.runs):  # interleaved, so load on the machine hits all alike
                for page in pages:
                    loads[page.name].append(page_load(browser, page))
            figures = {}
            for page in pages:
                wall, in_page, clicks = answer_all(browser, page, TEXTS, EXPECTED)
                figures[page.name] = Figures.of(loads[page.name], wall, in_page, clicks)
            chromium_version = browser.version
        get_ms, post_ms, base_ms = server_times(app, 50)
    print(
        f"ECR-R fill form, headless Chromium {chromium_version}: median of {args.runs} cold loads"
        " per page (interleaved) and of 36 answers; every page checked to show all 36 items and"
        " to hold the 36 answers clicked"
    )
    print("\n".join(table(figures)))
    print(
        f"{'app: GET the form':<22} {get_ms:>6.1f} ms  (p50 of 50, whole request, target <= 5 ms)"
    )
    print(f"{'app: POST 36 answers':<22} {post_ms:>6.1f} ms  (p50 of 50, parse + validate)")
    print(f"{'app: GET /healthz':<22} {base_ms:>6.1f} ms  (p50 of 50, the app's floor per request)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
