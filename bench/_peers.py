"""The peer renderers form_bench.py measures beside our page, in the same run and browser.

LHC-Forms is the ``lforms`` package's published web component; Smart Forms is
``@aehrc/smart-forms-renderer`` built for the browser with vite (bench/peers/smart-forms). Both
are installed under bench/peers by ``scripts/bootstrap --bench``: nothing is downloaded here.
A loopback server in the bench process serves each peer's page, its files and the packaged
ECR-R Questionnaire, twice: as packaged (each renderer picks its own control for a choice item:
both draw a drop-down) and with the SDC ``questionnaire-itemControl`` ``radio-button`` added to
the 36 choice items (a rendering hint only: the widget our page draws, so clicks compare like for
like).
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _page_metrics import Renderer
from flask import Flask, Response, abort, request, send_from_directory
from playwright.sync_api import Locator, Page
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / "peers"
NODE_MODULES = PEERS / "node_modules"
INSTALL = "scripts/bootstrap --bench"
QUESTIONNAIRES = ROOT / "questionnaires"
ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
RADIO_BUTTON = {
    "url": ITEM_CONTROL,
    "valueCodeableConcept": {
        "coding": [
            {"system": "http://hl7.org/fhir/questionnaire-item-control", "code": "radio-button"}
        ]
    },
}
# The answers a QuestionnaireResponse holds, as {linkId: code}, nested items included.
QR_ANSWERS = """(qr) => { const out = {}; const walk = (items) => { for (const i of items || []) {
  for (const a of i.answer || []) { if (a.valueCoding) out[i.linkId] = a.valueCoding.code;
    walk(a.item); } walk(i.item); } }; walk(qr.item); return out; }"""


def version(package: str) -> str:
    """The installed version of an npm package under bench/peers, or SystemExit naming the fix."""
    manifest = NODE_MODULES / package / "package.json"
    if not manifest.is_file():
        raise SystemExit(f"{package} is not installed under bench/peers: run {INSTALL}")
    pinned = json.loads((PEERS / "package.json").read_text(encoding="utf-8"))["dependencies"]
    found = str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    if found != pinned[package]:
        raise SystemExit(f"{package} {found} is installed, {pinned[package]} pinned: run {INSTALL}")
    return found


def radio_variant(questionnaire: dict[str, Any]) -> dict[str, Any]:
    """The Questionnaire with the radio-button item control on every choice item."""
    radio = copy.deepcopy(questionnaire)

    def mark(items: list[dict[str, Any]]) -> None:
        for item in items:
            if item["type"] == "choice":
                item["extension"] = [*item.get("extension", []), RADIO_BUTTON]
            mark(item.get("item", []))

    mark(radio["item"])
    return radio


def _lhc_dropdown(page: Page, n: int, k: int) -> list[Locator]:
    return [
        page.locator(f'input[id="{n}/1"]'),
        page.locator("#lhc-tools-searchResults li").nth(k),
    ]


def _lhc_radio(page: Page, n: int, k: int) -> list[Locator]:
    return [page.locator(f'[id="item-{n}/1"] label:has(input[type=radio])').nth(k)]


def _sf_dropdown(page: Page, n: int, k: int) -> list[Locator]:
    return [
        page.locator(f'[data-linkid="{n}"] input[role=combobox]'),
        page.locator("[role=listbox] [role=option]").nth(k),
    ]


def _sf_radio(page: Page, n: int, k: int) -> list[Locator]:
    return [page.locator(f'[data-linkid="{n}"] label:has(input[type=radio])').nth(k)]


LHC = f"({QR_ANSWERS})(LForms.Util.getFormFHIRData('QuestionnaireResponse', 'R4', '#form'))"
SMART = f"({QR_ANSWERS})(window.smartFormsResponse())"


def renderers(base: str) -> list[Renderer]:
    """The peer pages under base, after checking each peer is installed as pinned."""
    lforms = version("lforms")
    smart = version("@aehrc/smart-forms-renderer")
    built = PEERS / "smart-forms" / "dist" / "index.html"
    sources = [p for p in (PEERS / "smart-forms").iterdir() if p.is_file()]
    if not built.is_file() or any(p.stat().st_mtime > built.stat().st_mtime for p in sources):
        raise SystemExit(
            f"the Smart Forms page (bench/peers/smart-forms) is not built: run {INSTALL}"
        )
    lhc, sf = f"LHC-Forms {lforms}", f"Smart Forms {smart}"
    lhc_list, lhc_radio = "lhc-item input.ansList", "lhc-item input[type=radio]"
    sf_list, sf_radio = "[data-linkid] input[role=combobox]", "[data-linkid] input[type=radio]"
    return [
        Renderer(f"{lhc}, drop-down", f"{base}lhc-forms/as-is/", lhc_list, 36, _lhc_dropdown, LHC),
        Renderer(f"{lhc}, radio", f"{base}lhc-forms/radio/", lhc_radio, 252, _lhc_radio, LHC),
        Renderer(f"{sf}, drop-down", f"{base}smart-forms/as-is/", sf_list, 36, _sf_dropdown, SMART),
        Renderer(f"{sf}, radio", f"{base}smart-forms/radio/", sf_radio, 252, _sf_radio, SMART),
    ]


def _code_systems() -> dict[str, dict[str, Any]]:
    systems = {}
    for path in QUESTIONNAIRES.glob("codesystem-*.json"):
        resource = json.loads(path.read_text(encoding="utf-8"))
        systems[resource["url"]] = resource
    return systems


def peer_app(questionnaire_file: Path) -> Flask:
    """Static pages and files of the peers, the Questionnaire both ways, and CodeSystem/$lookup
    answered from the packaged CodeSystems (Smart Forms looks up displays the options leave out).
    """
    app = Flask(__name__)
    packaged = questionnaire_file.read_bytes()
    radio = json.dumps(radio_variant(json.loads(packaged))).encode()
    systems = _code_systems()
    roots = {
        "lhc-forms": {"": PEERS / "lhc-forms", "lforms/": NODE_MODULES / "lforms/dist/lforms"},
        "smart-forms": {"": PEERS / "smart-forms" / "dist"},
    }

    @app.get("/<renderer>/<variant>/ecr-r.json")
    def questionnaire(renderer: str, variant: str) -> Response:
        if renderer not in roots or variant not in ("as-is", "radio"):
            abort(404)
        body = packaged if variant == "as-is" else radio
        return Response(body, mimetype="application/fhir+json")

    @app.get("/<renderer>/<variant>/fhir/CodeSystem/$lookup")
    def lookup(renderer: str, variant: str) -> tuple[dict[str, Any], int]:
        system = systems.get(request.args.get("system", ""))
        code = request.args.get("code")
        concept = next((c for c in (system or {}).get("concept", []) if c["code"] == code), None)
        if system is None or concept is None:
            issue = {"severity": "error", "code": "not-found"}
            return {"resourceType": "OperationOutcome", "issue": [issue]}, 404
        parameter = [{"name": "name", "valueString": system["name"]}]
        parameter.append({"name": "version", "valueString": system["version"]})
        if "display" in concept:
            parameter.append({"name": "display", "valueString": concept["display"]})
        return {"resourceType": "Parameters", "parameter": parameter}, 200

    @app.get("/<renderer>/<variant>/", defaults={"name": "index.html"})
    @app.get("/<renderer>/<variant>/<path:name>")
    def static_file(renderer: str, variant: str, name: str) -> Response:
        if renderer not in roots or variant not in ("as-is", "radio"):
            abort(404)
        prefix = max((p for p in roots[renderer] if name.startswith(p)), key=len)
        return send_from_directory(roots[renderer][prefix], name[len(prefix) :])

    return app


@contextmanager
def serve_peers(questionnaire_file: Path) -> Iterator[str]:
    """The peers' pages on a loopback port (werkzeug, threaded, as our page is served): base URL."""
    server = make_server("127.0.0.1", 0, peer_app(questionnaire_file), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
