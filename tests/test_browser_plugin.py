"""One way to drive Chromium: tests/fixtures/browser.py for tests, bench/_browser.py for benches.

Playwright's sync API cannot be started twice in one thread, so a test module starting its own
``sync_playwright()`` next to the session's ``chromium`` fixture breaks whichever runs second.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCHERS = {ROOT / "tests" / "fixtures" / "browser.py", ROOT / "bench" / "_browser.py"}


def starts_playwright(path: Path) -> bool:
    """True when the module calls ``sync_playwright`` or launches a browser itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name == "sync_playwright" or (
                name == "launch" and any(k.arg == "executable_path" for k in node.keywords)
            ):
                return True
    return False


def test_only_the_shared_helpers_start_playwright() -> None:
    modules = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").glob("*.py")]
    offenders = sorted(
        str(p.relative_to(ROOT)) for p in modules if p not in LAUNCHERS and starts_playwright(p)
    )
    assert offenders == []
    assert all(starts_playwright(p) for p in LAUNCHERS)


def test_a_missing_chromium_fails_with_the_fix_named(tmp_path: Path) -> None:
    """Not a skip: the browser tests error, and the message says how to install chromium."""
    (tmp_path / "conftest.py").write_text(
        "from pathlib import Path\n"
        "import tests.fixtures.browser as browser\n"
        "browser.CHROMIUM = Path('/nonexistent/chromium')\n"
        "pytest_plugins = ['tests.fixtures.browser']\n"
    )
    (tmp_path / "test_uses_chromium.py").write_text(
        "def test_page(chromium):\n    chromium.new_context()\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "/nonexistent/chromium is missing: browser tests need Debian's chromium" in run.stdout
    assert "1 error" in run.stdout and "skipped" not in run.stdout
