"""The ``attach-fhir`` console script.

Domain commands live here; the web app and the sandbox EHR add theirs (``serve``, ``sandbox``)
through the ``attach_fhir.commands`` entry-point group, so this library never imports them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from importlib.metadata import entry_points

from attach_fhir import __version__

#: A command module exposes ``register(subparsers)`` and sets ``func`` on its parser; ``func``
#: takes the parsed namespace and returns the process exit code.
Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

#: Domain commands by name. Only the module of the command being run is imported, so
#: ``attach-fhir score`` does not pay for the FHIR models that ``questionnaires`` loads.
DOMAIN_COMMANDS: dict[str, str] = {
    "questionnaires": "attach_fhir.commands.questionnaires",
    "outbox": "attach_fhir.commands.outbox",
    "score": "attach_fhir.commands.score",
    "bulk-score": "attach_fhir.commands.bulk",
    "conformance": "attach_fhir.commands.conformance",
    "outcomes": "attach_fhir.commands.outcomes",
    "db": "attach_fhir.commands.db",
    "audit": "attach_fhir.commands.audit",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser: every command, or only ``command`` when it names a known one."""
    parser = argparse.ArgumentParser(
        prog="attach-fhir",
        description="Attachment instruments as FHIR Questionnaires: validate, score, serve.",
    )
    parser.add_argument("--version", action="version", version=f"attach-fhir {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    plugins = {ep.name: ep for ep in entry_points(group="attach_fhir.commands")}
    known = DOMAIN_COMMANDS.keys() | plugins.keys()
    wanted = [command] if command in known else sorted(known)
    for name in wanted:
        if name in DOMAIN_COMMANDS:
            import_module(DOMAIN_COMMANDS[name]).register(sub)
        else:
            plugins[name].load()(sub)
    return parser


def _command_name(argv: Sequence[str]) -> str | None:
    """The first argument that is not an option: the command the user asked for."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_name(args_list))
    args = parser.parse_args(args_list)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return int(func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
