"""The console script: every command is listed, and running one loads only that one."""

import argparse
import subprocess
import sys
from collections.abc import Iterator

from attach_fhir.cli import DOMAIN_COMMANDS, build_parser


def test_help_lists_every_domain_and_plugin_command() -> None:
    help_text = build_parser().format_help()
    for name in [*DOMAIN_COMMANDS, "serve", "sandbox"]:
        assert name in help_text


def test_running_one_command_imports_no_other_command_module() -> None:
    probe = (
        "import sys; from attach_fhir.cli import build_parser; "
        "build_parser('conformance').parse_args(['conformance', 'http://x.test/fhir']); "
        "print(sorted(m for m in sys.modules if m.startswith('attach_fhir.commands.')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['attach_fhir.commands.conformance']"


def parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser under ``parser``, named by its command path, sub-commands included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, (*path, name))


def test_every_command_has_a_description_and_every_option_a_help_line() -> None:
    found = dict(parsers(build_parser()))
    assert {("serve",), ("sandbox",), ("outbox", "status"), ("score",)} <= found.keys()
    undescribed = [path for path, parser in found.items() if path and not parser.description]
    unexplained = [
        (path, action.option_strings or action.dest)
        for path, parser in found.items()
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert undescribed == []
    assert unexplained == []
