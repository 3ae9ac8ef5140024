"""How form_bench.py measures a form page in headless Chromium, the same way for every renderer.

- **bytes on the wire**: ``responseHeadersSize + responseBodySize`` of every request the page
  made from navigation until it was interactive and quiet (below), fresh browser context (cold
  caches) each load.
  Neither server compresses; **gzip'd** is what the same responses would weigh from one that
  does: each body gzip-compressed (level 6, kept as sent where that is not smaller), headers as
  sent.
- **time to interactive**: from navigation start to the latest of (a) the end of the load event,
  (b) the moment all 36 items' answer controls are in the document (a MutationObserver added
  before the page's own scripts checks after every DOM change) and (c) the end of the last long
  task (main thread busy > 50 ms, Long Tasks API) before a quiet second with none. For a
  server-rendered page (b) comes before (a); a client-side renderer draws the form after its
  scripts and data arrive, and may keep the main thread busy after.
- **per answer**: mouse clicks at the centre of what a user clicks to give item n its answer
  (one radio's label; or a drop-down, then the option in its list), each timed from sending the
  click until the browser has produced the next frame (for a drop-down's first click: until
  its list is visible, then the next frame), summed per answer.
- **in the page**: from each click's ``click`` event to the next animation frame, measured
  inside the page (no Playwright round trip).

Every page is checked before its figures count: no page errors, no failed or 4xx/5xx requests
(the browser's favicon probe aside), all 36 items' answer controls present, the text of
every item shown, and after the 36 answers the renderer itself (its form data, read through its
API) must hold exactly the answers clicked.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Locator, Page, Response

NEXT_FRAME = "() => new Promise(r => requestAnimationFrame(() => setTimeout(r)))"
QUIET_MS = 1000
PROBE = """(() => {
  const probe = { controls: null, longTaskEnd: 0, frames: [] };
  window.__probe = probe;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      probe.longTaskEnd = Math.max(probe.longTaskEnd, e.startTime + e.duration);
    }
  }).observe({ type: "longtask", buffered: true });
  const observer = new MutationObserver(() => {
    if (document.querySelectorAll(SELECTOR).length >= COUNT) {
      probe.controls = performance.now();
      observer.disconnect();
    }
  });
  observer.observe(document, { childList: true, subtree: true });
})();"""
LOAD_END = "performance.getEntriesByType('navigation')[0].loadEventEnd"
READY = f"() => __probe.controls !== null && {LOAD_END} > 0"
SETTLED = (
    f"() => performance.now() - Math.max({LOAD_END}, __probe.controls, __probe.longTaskEnd)"
    f" >= {QUIET_MS}"
)
INTERACTIVE = f"Math.max({LOAD_END}, __probe.controls, __probe.longTaskEnd)"
FRAMES = """() => document.addEventListener('click', () => { const t0 = performance.now();
  requestAnimationFrame(() => setTimeout(() => __probe.frames.push(performance.now() - t0)));
}, true)"""


@dataclass(frozen=True)
class Renderer:
    """One form page to measure, and how to answer its items the way a user would."""

    name: str
    url: str
    # The answer controls of the 36 items: the page is interactive once they are all there.
    controls: str
    controls_count: int
    # What to click, in order, to give item n (1-based) its answer option k (0-based).
    targets: Callable[[Page, int, int], list[Locator]]
    # A JavaScript expression: the {linkId: code} answers the page holds.
    answers: str


class BrokenPage(SystemExit):
    """A page that did not render or answer as it should: its figures would mean nothing."""


@dataclass
class Load:
    """One cold load: bytes as sent, bytes if gzip'd, requests, ms to interactive."""

    wire: int
    gzipped: int
    requests: int
    tti: float


def _open(browser: Browser, r: Renderer) -> tuple[BrowserContext, Page, list[str]]:
    context = browser.new_context()
    probe = PROBE.replace("SELECTOR", json.dumps(r.controls))
    context.add_init_script(probe.replace("COUNT", str(r.controls_count)))
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    page.on("response", lambda res: _check_status(res, problems))
    return context, page, problems


def _check_status(response: Response, problems: list[str]) -> None:
    # The browser's own favicon probe is not the page's: a 404 there breaks nothing.
    if response.status >= 400 and not response.url.endswith("/favicon.ico"):
        problems.append(f"{response.url} answered {response.status}")


def _interactive(page: Page, r: Renderer, problems: list[str]) -> float:
    page.goto(r.url, wait_until="load")
    try:
        page.wait_for_function(READY, timeout=30_000)
        page.wait_for_function(SETTLED, timeout=60_000, polling=100)
    except Exception as exc:  # a timeout: report what the page said, not a stack
        found = page.evaluate(f"document.querySelectorAll({json.dumps(r.controls)}).length")
        problems.append(
            f"not interactive ({found} of {r.controls_count} answer controls):"
            f" {str(exc).splitlines()[0]}"
        )
    if problems:
        raise BrokenPage(f"{r.name}: " + "; ".join(dict.fromkeys(problems)))
    return float(page.evaluate(INTERACTIVE))


def page_load(browser: Browser, r: Renderer) -> Load:
    """One cold load in a fresh context, until the page is interactive."""
    context, page, problems = _open(browser, r)
    finished = []
    page.on("requestfinished", lambda req: finished.append(req))
    tti = _interactive(page, r, problems)
    wire = gzipped = 0
    for req in finished:
        sizes, response = req.sizes(), req.response()
        body = response.body() if response is not None else b""
        wire += sizes["responseHeadersSize"] + sizes["responseBodySize"]
        gzipped += sizes["responseHeadersSize"] + min(len(body), len(gzip.compress(body, 6)))
    context.close()
    return Load(wire, gzipped, len(finished), tti)


def answer_all(
    browser: Browser, r: Renderer, texts: list[str], expected: dict[str, str]
) -> tuple[list[float], list[float], int]:
    """Answer item n with option (3n mod 7) on all 36 items, as a user would, and check the
    renderer holds exactly those answers: (ms per answer, in-page ms per answer, clicks each)."""
    context, page, problems = _open(browser, r)
    _interactive(page, r, problems)
    shown = page.evaluate("document.body.innerText")
    missing = [t for t in texts if " ".join(t.split()) not in " ".join(shown.split())]
    if missing:
        raise BrokenPage(f"{r.name}: {len(missing)} items not shown, first {missing[0]!r}")
    page.evaluate(FRAMES)
    wall, steps = [], 0
    for n in range(1, len(texts) + 1):
        targets = r.targets(page, n, (3 * n) % 7)
        steps = len(targets)
        total = 0.0
        for i, target in enumerate(targets):
            target.scroll_into_view_if_needed()
            box = target.bounding_box()
            assert box is not None, (r.name, n, i)
            start = time.perf_counter()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            if i + 1 < len(targets):
                targets[i + 1].wait_for(state="visible")
            page.evaluate(NEXT_FRAME)
            total += time.perf_counter() - start
        wall.append(total * 1000)
    page.wait_for_timeout(200)  # the last click's in-page timing lands after its frame
    frames = [float(x) for x in page.evaluate("__probe.frames")]
    held: dict[str, Any] = page.evaluate(r.answers)
    context.close()
    if problems:
        raise BrokenPage(f"{r.name}: " + "; ".join(dict.fromkeys(problems)))
    if held != expected:
        wrong = sorted(set(expected.items()) ^ set(held.items()), key=lambda kv: int(kv[0]))
        raise BrokenPage(f"{r.name}: answers held differ from those clicked: {wrong[:6]}")
    in_page = [sum(frames[i : i + steps]) for i in range(0, len(frames), steps)]
    return wall, in_page, steps
