"""``attach-fhir score``: score QuestionnaireResponses, one JSON file or an NDJSON stream.

The Questionnaire comes from the response's ``questionnaire`` canonical, looked up in the packaged
library, unless ``--questionnaire FILE`` names one. Results and errors go to stdout as JSON;
progress and the throughput summary go to stderr only. Each NDJSON output line names its input
(``id``, ``subject`` without its display, and ``line`` when there is no id), so results join to
inputs without counting lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from attach_fhir.errors import AttachError
from attach_fhir.instruments import library
from attach_fhir.response_check import InvalidResponse
from attach_fhir.scoring import DEFAULT_MIN_ANSWERED, Scorer

#: Check the clock every this many lines, so the loop does not pay for it on every line.
CLOCK_EVERY = 256


class UnreadableInput(AttachError):
    """The input is not a readable JSON document."""

    code = "invalid_json"
    description = "The input is not valid JSON."


class InputNotFound(AttachError):
    """A file named on the command line does not exist."""

    code = "file_not_found"
    description = "The file was not found."


class NotAResponse(AttachError):
    """The input is JSON, but not a QuestionnaireResponse resource."""

    code = "not_a_questionnaire_response"
    description = "The input is not a QuestionnaireResponse."


def _what(document: object) -> str:
    """What a JSON document is, in words, for an error message."""
    if isinstance(document, list):
        return "a JSON array"
    if not isinstance(document, dict):
        return f"a JSON {type(document).__name__}"
    kind = document.get("resourceType")
    return f"a {kind} resource" if isinstance(kind, str) else "an object with no resourceType"


def require_response(document: object) -> dict[str, Any]:
    """``document`` if it is a QuestionnaireResponse, else NotAResponse saying what it is."""
    if isinstance(document, dict) and document.get("resourceType") == "QuestionnaireResponse":
        return document
    raise NotAResponse(f"The input is not a QuestionnaireResponse: it is {_what(document)}.")


class Scorers:
    """Scorers by Questionnaire canonical, each compiled once per run."""

    def __init__(self, questionnaire_file: Path | None) -> None:
        self.fixed = Scorer(_read_json(questionnaire_file)) if questionnaire_file else None
        self.by_canonical: dict[str, Scorer] = {}

    def for_response(self, response: object) -> Scorer:
        """The scorer for this response's Questionnaire (raises AttachError)."""
        canonical = require_response(response).get("questionnaire")
        if self.fixed is not None:
            return self.fixed
        if not isinstance(canonical, str):
            raise InvalidResponse(
                [
                    {
                        "code": "wrong-questionnaire",
                        "path": "QuestionnaireResponse.questionnaire",
                        "message": "names no Questionnaire (or pass --questionnaire FILE)",
                    }
                ]
            )
        scorer = self.by_canonical.get(canonical)
        if scorer is None:
            scorer = self.by_canonical[canonical] = Scorer(library().questionnaire(canonical))
        return scorer


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise _not_found(path) from exc
    except (OSError, ValueError) as exc:
        raise UnreadableInput(f"{path}: {exc}", file=str(path)) from exc


def _not_found(path: str | Path) -> InputNotFound:
    return InputNotFound(f"{path}: file not found.", file=str(path))


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("must be a fraction in (0, 1]")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``score`` command."""
    parser = sub.add_parser(
        "score",
        help="score QuestionnaireResponses against their Questionnaire",
        description=(
            "Score a QuestionnaireResponse (JSON file) and print {questionnaire, algorithm, "
            "scores}, or stream NDJSON with --ndjson (one result or error line per input line). "
            "Exit 1 if the input (or any NDJSON line) cannot be scored."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "response",
        nargs="?",
        type=Path,
        metavar="RESPONSE.json",
        help="a QuestionnaireResponse JSON file",
    )
    source.add_argument("--ndjson", metavar="FILE|-", help="NDJSON responses; - reads stdin")
    parser.add_argument(
        "--questionnaire", type=Path, metavar="FILE", help="score against this Questionnaire"
    )
    parser.add_argument(
        "--prorate",
        action="store_true",
        help="local convention, not an author rule: score a subscale with items missing as "
        "the mean of those answered (status 'prorated'), see docs/scoring-model.md",
    )
    parser.add_argument(
        "--min-answered",
        type=_fraction,
        default=DEFAULT_MIN_ANSWERED,
        metavar="FRACTION",
        help=f"with --prorate: least fraction of a subscale answered (default "
        f"{DEFAULT_MIN_ANSWERED})",
    )
    parser.add_argument(
        "--progress-seconds",
        type=float,
        default=1.0,
        metavar="S",
        help="with --ndjson: at most one progress line on stderr per S seconds (default 1)",
    )
    parser.set_defaults(func=run_score)


def run_score(args: argparse.Namespace) -> int:
    """Score one file or an NDJSON stream; the process exit code."""
    try:
        scorers = Scorers(args.questionnaire)
    except AttachError as exc:
        _emit(sys.stdout, {"error": exc.to_dict()}, indent=2)
        return 1
    options = {"prorate": args.prorate, "min_answered": args.min_answered}
    if args.ndjson is None:
        try:
            response = _read_json(args.response)
            result = scorers.for_response(response).score(response, **options)
        except AttachError as exc:
            _emit(sys.stdout, {"error": exc.to_dict()}, indent=2)
            return 1
        _emit(sys.stdout, result.to_json(), indent=2)
        return 0
    if args.ndjson == "-":
        return stream(sys.stdin, sys.stdout, sys.stderr, scorers, options, args.progress_seconds)
    try:
        with open(args.ndjson, encoding="utf-8") as lines:
            return stream(lines, sys.stdout, sys.stderr, scorers, options, args.progress_seconds)
    except FileNotFoundError:
        _emit(sys.stdout, {"error": _not_found(args.ndjson).to_dict()}, indent=2)
        return 1
    except OSError as exc:
        _emit(sys.stdout, {"error": UnreadableInput(f"{args.ndjson}: {exc}").to_dict()}, indent=2)
        return 1


def stream(
    lines: Iterable[str],
    out: TextIO,
    err: TextIO,
    scorers: Scorers,
    options: dict[str, Any],
    progress_seconds: float,
) -> int:
    """Score each NDJSON line; a bad line gives an error line and the run goes on."""
    start = last = time.perf_counter()
    scored = failed = 0
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        response: Any = None
        try:
            try:
                response = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise UnreadableInput(f"line {number}: {exc}") from exc
            result = scorers.for_response(response).score(response, **options)
        except AttachError as exc:
            # An error line always carries its line number: the input may have no id to join on.
            source = {**source_of(response, number), "line": number}
            out.write(dumps({**source, "error": exc.to_dict()}) + "\n")
            failed += 1
        else:
            out.write(dumps({**source_of(response, number), **result.to_json()}) + "\n")
            scored += 1
        if number % CLOCK_EVERY == 0:
            now = time.perf_counter()
            if now - last >= progress_seconds:
                last = now
                _progress(err, "progress", scored, failed, now - start)
    out.flush()
    _progress(err, "done", scored, failed, time.perf_counter() - start)
    return 1 if failed else 0


def source_of(response: object, number: int) -> dict[str, Any]:
    """What names an input line: its ``id`` (else its 1-based ``line``) and its ``subject``
    Reference without the display, which may be a name."""
    source: dict[str, Any] = {}
    if not isinstance(response, dict):
        return {"line": number}
    resource_id = response.get("id")
    if isinstance(resource_id, str):
        source["id"] = resource_id
    else:
        source["line"] = number
    subject = response.get("subject")
    if isinstance(subject, dict):
        source["subject"] = {k: v for k, v in subject.items() if k != "display"}
    return source


def _progress(err: TextIO, what: str, scored: int, failed: int, seconds: float) -> None:
    rate = (scored + failed) / seconds if seconds > 0 else 0.0
    err.write(
        f"{what}: {scored + failed} responses ({scored} scored, {failed} errors) in "
        f"{seconds:.2f} s, {rate:,.0f} responses/s\n"
    )
    err.flush()


def _emit(out: TextIO, document: Any, indent: int | None = None) -> None:
    out.write(json.dumps(document, indent=indent) + "\n")
