"""Lines per second end to end (download + score) of ``bulk-score --export``, its peak RSS, and
the ratio against the search-based ``bulk-score`` on the same generated ECR-R responses.

Run: ``.venv/bin/python bench/bulk_export_bench.py [--lines 1000000] [--search-lines 20000]``.

A loopback server (its own process, so its memory is not counted) answers ``$export`` with 202,
its status URL with a manifest, and streams ``--lines`` ECR-R responses as NDJSON, generated on
the fly from 1,000 seeded answer sets with distinct ids. The same server answers the search path's
``QuestionnaireResponse?questionnaire=...`` pages (100 a page) and ``Observation?derived-from``
(none). The client is ``BulkExportRun`` (no writes, checkpoint every 5,000 lines into a fresh
``bulk-exports.sqlite3``) in this single-threaded process; the search path is ``BulkScoring`` on
``--search-lines`` responses (it is slow: a smaller sample, its rate per response). Rates are per
CPU second of the client process (one core: other engineers share this machine, so wall time
says more about them); wall figures are printed too.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

TARGET_RATE = 20_000
TARGET_RSS_MB = 100
VARIANTS = 1000


def templates(seed: int = 7) -> list[tuple[bytes, bytes]]:
    """(prefix, suffix) byte pairs of ECR-R responses; the id goes between them."""
    from attach_fhir.instruments import library

    questionnaire = next(
        library().questionnaire(i.url) for i in library().instruments() if i.id == "ecr-r"
    )
    canonical = f"{questionnaire['url']}|{questionnaire['version']}"
    items = [i for i in questionnaire["item"] if i["type"] == "choice" and not i.get("readOnly")]
    rng = random.Random(seed)
    out = []
    for n in range(VARIANTS):
        response = {
            "resourceType": "QuestionnaireResponse",
            "id": "ID",
            "questionnaire": canonical,
            "status": "completed",
            "subject": {"reference": f"Patient/p{n}"},
            "authored": "2024-05-01T10:15:00Z",
            "item": [
                {
                    "linkId": item["linkId"],
                    "answer": [
                        {"valueCoding": dict(rng.choice(item["answerOption"])["valueCoding"])}
                    ],
                }
                for item in items
            ],
        }
        prefix, suffix = json.dumps(response, separators=(",", ":")).split('"ID"')
        out.append((prefix.encode() + b'"', b'"' + suffix.encode()))
    return out


def serve(port_file: Path, lines: int, ecr_r_url: str) -> None:
    """The loopback server (runs in a child process until killed)."""
    parts = templates()

    def line(i: int) -> bytes:
        prefix, suffix = parts[i % VARIANTS]
        return prefix + b"qr-%d" % i + suffix

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            base = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
            query = parse_qs(url.query)
            if url.path == "/fhir/$export":
                self._json(202, None, {"Content-Location": f"{base}/status/1"})
            elif url.path == "/fhir/status/1":
                file = {"type": "QuestionnaireResponse", "url": f"{base}/files/qr.ndjson"}
                manifest = {
                    "transactionTime": "2024-05-02T00:00:00Z",
                    "request": f"{base}/$export",
                    "requiresAccessToken": False,
                    "output": [{**file, "count": lines}],
                    "error": [],
                }
                self._json(200, manifest)
            elif url.path == "/fhir/files/qr.ndjson":
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                batch = 500
                for start in range(0, lines, batch):
                    chunk = b"".join(
                        line(i) + b"\n" for i in range(start, min(lines, start + batch))
                    )
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            elif url.path == "/fhir/QuestionnaireResponse":
                wanted = query.get("questionnaire", [""])[0]
                offset = int(query.get("_offset", ["0"])[0])
                count = int(query.get("_count", ["100"])[0])
                total = lines if wanted == ecr_r_url else 0
                entries = [
                    {"resource": json.loads(line(i)), "search": {"mode": "match"}}
                    for i in range(offset, min(total, offset + count))
                ]
                bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
                bundle["entry"] = entries
                if offset + count < total:
                    nxt = f"{base}/QuestionnaireResponse?questionnaire={wanted}"
                    nxt += f"&_count={count}&_offset={offset + count}"
                    bundle["link"] = [{"relation": "next", "url": nxt}]
                self._json(200, bundle)
            elif url.path == "/fhir/Observation":
                self._json(200, {"resourceType": "Bundle", "type": "searchset", "entry": []})
            else:
                self._json(404, {"resourceType": "OperationOutcome", "issue": []})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_server(lines: int) -> tuple[subprocess.Popen[bytes], str]:
    from attach_fhir.instruments import library

    ecr_r = next(i.url for i in library().instruments() if i.id == "ecr-r")
    folder = Path(tempfile.mkdtemp(prefix="bulk-bench-"))
    port_file = folder / "port"
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port_file), "--lines", str(lines), "--url", ecr_r]
    )
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return process, f"http://127.0.0.1:{port_file.read_text()}/fhir"
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the loopback server did not start")


def export_rate(base: str) -> tuple[int, float, float]:
    """(lines handled, CPU seconds of this process, wall seconds) of one --export run."""
    from attach_fhir.io.bulk_export import BulkExportRun, ExportOptions, ExportRequest
    from attach_fhir.io.export_store import ExportStore
    from attach_fhir.io.fhir_client import FhirClient

    with tempfile.TemporaryDirectory() as data, httpx.Client(timeout=60) as http:
        store = ExportStore(data)
        request = ExportRequest(base, "system", types=("QuestionnaireResponse",))
        job = BulkExportRun(FhirClient(base, http), http, store, request, ExportOptions())
        start, cpu = time.perf_counter(), time.process_time()
        tally = job.run()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        store.close()
    assert tally.invalid == 0 and tally.scored == tally.exported, tally.to_json()
    return tally.exported, cpu, seconds


def search_rate(base: str) -> tuple[int, float, float]:
    """(responses handled, CPU seconds, wall seconds) of the search-based bulk-score."""
    from attach_fhir.io.bulk_scoring import BulkScoring
    from attach_fhir.io.fhir_client import FhirClient

    with httpx.Client(timeout=60) as http:
        job = BulkScoring(FhirClient(base, http))
        start, cpu = time.perf_counter(), time.process_time()
        report = job.run()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert not report.problems and report.scored == report.found, report.to_json()
    return report.found, cpu, seconds


def main() -> int:
    """Run both paths and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--search-lines", type=int, default=20_000)
    parser.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve), args.lines, args.url)
        return 0

    process, base = start_server(args.lines)
    try:
        lines, cpu, wall = export_rate(base)
        rss = peak_rss_mb()
    finally:
        process.kill()
    rate = lines / cpu
    print(
        f"--export: {lines:,} lines end to end (download + score): {rate:,.0f} lines/s of one "
        f"core ({cpu:.1f} CPU s); wall {wall:.1f} s, {lines / wall:,.0f} lines/s"
    )
    print(f"peak RSS of the client process: {rss:.0f} MB")
    process, base = start_server(args.search_lines)
    try:
        found, search_cpu, search_wall = search_rate(base)
    finally:
        process.kill()
    search = found / search_cpu
    print(
        f"search path: {found:,} responses: {search:,.0f}/s of one core ({search_cpu:.1f} CPU s); "
        f"wall {search_wall:.1f} s, {found / search_wall:,.0f}/s"
    )
    print(f"ratio --export / search (per CPU second): {rate / search:.1f}x")
    ok = rate >= TARGET_RATE and rss < TARGET_RSS_MB
    print(f"target >= {TARGET_RATE:,} lines/s, < {TARGET_RSS_MB} MB: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
