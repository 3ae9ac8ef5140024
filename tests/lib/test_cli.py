"""The console script: every command is listed, and running one loads only that one."""

import subprocess
import sys

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
