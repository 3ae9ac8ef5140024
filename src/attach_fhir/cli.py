"""The ``attach-fhir`` console script.

Domain commands live here; the web app and the sandbox EHR add theirs (``serve``, ``sandbox``)
through the ``attach_fhir.commands`` entry-point group, so this library never imports them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from attach_fhir import __version__

#: A command module exposes ``register(subparsers)`` and sets ``func`` on its parser; ``func``
#: takes the parsed namespace and returns the process exit code.
Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

DOMAIN_COMMANDS: list[str] = [
    "attach_fhir.commands.questionnaires",
    "attach_fhir.commands.outbox",
    "attach_fhir.commands.score",
    "attach_fhir.commands.bulk",
    "attach_fhir.commands.conformance",
]


def build_parser() -> argparse.ArgumentParser:
    """The full parser: domain commands plus every installed plug-in command."""
    parser = argparse.ArgumentParser(
        prog="attach-fhir",
        description="Attachment instruments as FHIR Questionnaires: validate, score, serve.",
    )
    parser.add_argument("--version", action="version", version=f"attach-fhir {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in DOMAIN_COMMANDS:
        module = __import__(module_name, fromlist=["register"])
        module.register(sub)
    for ep in sorted(entry_points(group="attach_fhir.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return int(func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
