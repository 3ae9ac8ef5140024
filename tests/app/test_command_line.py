"""The web app's and the sandbox's commands as a new user meets them: ``sandbox --open`` without
a display."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import webbrowser
from pathlib import Path

from ehr_sandbox.cli import open_browser

URL = "http://127.0.0.1:8701/ehr"


def test_open_says_so_when_webbrowser_finds_no_browser() -> None:
    out = io.StringIO()
    assert open_browser(URL, out, opener=lambda url: False) is False
    assert out.getvalue() == f"No browser could be opened (no display?). Open {URL} yourself.\n"


def test_open_says_so_when_webbrowser_raises() -> None:
    def raising(url: str) -> bool:
        raise webbrowser.Error("could not locate runnable browser")

    out = io.StringIO()
    assert open_browser(URL, out, opener=raising) is False
    assert "No browser could be opened" in out.getvalue() and URL in out.getvalue()


def test_open_is_quiet_when_a_browser_opened() -> None:
    out = io.StringIO()
    opened: list[str] = []
    assert open_browser(URL, out, opener=lambda url: opened.append(url) or True) is True
    assert (opened, out.getvalue()) == ([URL], "")


def test_the_real_webbrowser_on_a_machine_without_a_display(tmp_path: Path) -> None:
    """Python's own webbrowser, with no display, no $BROWSER and no console browser on PATH."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    }
    env["PATH"] = str(tmp_path)  # an empty directory: no xdg-open, no lynx, no www-browser
    probe = f"from ehr_sandbox.cli import open_browser; open_browser({URL!r})"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"No browser could be opened (no display?). Open {URL} yourself.\n"
