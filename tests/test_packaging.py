"""The wheel builds without setuptools warnings, ships every file the installed app reads (and
no node_modules), and an install of it serves the app from another directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Source folder -> where its files sit inside the wheel.
ROOTS = {
    "src/attach_fhir": "attach_fhir",
    "questionnaires": "attach_fhir/questionnaires",
    "smart_app": "smart_app",
    "ehr_sandbox": "ehr_sandbox",
}
NOT_SHIPPED = {"node_modules", "__pycache__"}

pytestmark = pytest.mark.slow


def source_files() -> set[str]:
    """Every file of the packaged folders, named as in the wheel."""
    names: set[str] = set()
    for folder, prefix in ROOTS.items():
        for path in (REPO / folder).rglob("*"):
            rel = path.relative_to(REPO / folder)
            if path.is_file() and not NOT_SHIPPED & set(rel.parts):
                names.add(f"{prefix}/{rel.as_posix()}")
    return names


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(wheel, build output), built from a clean copy: a stale build/ cannot hide a gap."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src-copy"
    skip = shutil.ignore_patterns(*NOT_SHIPPED, "*.egg-info")
    for folder in ["src", "questionnaires", "smart_app", "ehr_sandbox"]:
        shutil.copytree(REPO / folder, src / folder, ignore=skip)
    for name in ["pyproject.toml", "README.md", "LICENSE"]:
        shutil.copy2(REPO / name, src / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "-w", str(tmp / "dist"),
         "--no-deps", "--no-build-isolation", "--no-index"],
        capture_output=True, text=True, check=True, timeout=120, cwd=tmp,
    )  # fmt: skip
    [wheel] = (tmp / "dist").glob("attach_fhir-*.whl")
    return wheel, done.stdout + done.stderr


def test_the_build_warns_of_no_unlisted_data_folder(built: tuple[Path, str]) -> None:
    _, output = built
    assert "absent from the `packages` configuration" not in output
    assert "BuildBackendWarning" not in output


def test_the_wheel_ships_every_packaged_file_and_nothing_else(built: tuple[Path, str]) -> None:
    wheel, _ = built
    names = {n for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n}
    assert names == source_files()
    for expected in [
        "attach_fhir/questionnaires/ecr-r.json",
        "attach_fhir/schema/scoring-model.schema.json",
        "attach_fhir/data/careplan-rules.json",
        "smart_app/templates/base.html",
        "smart_app/assess/templates/assess/fill.html",
        "smart_app/static/app.css",
        "smart_app/schema/registrations.schema.json",
        "ehr_sandbox/templates/authz/sign_in.html",
        "ehr_sandbox/seed/sandbox-patients.json",
        "ehr_sandbox/fhir_server/server.mjs",
        "ehr_sandbox/fhir_server/package.json",
        "ehr_sandbox/fhir_server/package-lock.json",
    ]:
        assert expected in names
    assert not [n for n in names if "node_modules" in n]


INSTALLED_CHECK = """
import json, sys, tempfile
import attach_fhir, ehr_sandbox, smart_app
from attach_fhir.instruments import read_packaged
from ehr_sandbox.authz import TEMPLATES
from ehr_sandbox.fhir_process import SERVER_SCRIPT
from ehr_sandbox.seed import build_seed_bundle

app = smart_app.create_app({"SECRET_KEY": "k", "DATA_DIR": tempfile.mkdtemp()})
client = app.test_client()
page = client.get("/launch")
json.dump({
    "modules": [attach_fhir.__file__, ehr_sandbox.__file__, smart_app.__file__],
    "templates": sorted(app.jinja_env.list_templates()),
    "launch_status": page.status_code,
    "launch_page": page.get_data(as_text=True),
    "css": client.get("/static/app.css").get_data(as_text=True),
    "library": sorted(read_packaged()),
    "seed_entries": len(build_seed_bundle()["entry"]),
    "authz_templates": sorted(p.name for p in TEMPLATES.rglob("*.html")),
    "server_script": SERVER_SCRIPT.read_text(encoding="utf-8"),
}, sys.stdout)
"""


def test_an_installed_wheel_serves_the_app_from_another_directory(
    built: tuple[Path, str], tmp_path: Path
) -> None:
    wheel, _ = built
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
         "--target", str(site), str(wheel)],
        check=True, timeout=120,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # PYTHONPATH comes before site-packages, so the wheel's copy wins over the editable install.
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    done = subprocess.run(
        [sys.executable, "-c", INSTALLED_CHECK],
        capture_output=True, text=True, check=True, timeout=60, cwd=elsewhere, env=env,
    )  # fmt: skip
    seen = json.loads(done.stdout)
    assert all(Path(m).is_relative_to(site) for m in seen["modules"]), seen["modules"]
    # the app's own templates, and each flow's under smart_app/<flow>/templates/<flow>/
    folders = [REPO / "smart_app" / "templates", *(REPO / "smart_app").glob("*/templates")]
    assert seen["templates"] == sorted(
        p.relative_to(folder).as_posix() for folder in folders for p in folder.rglob("*.html")
    )
    assert seen["launch_status"] == 400
    assert 'data-error-code="bad_launch_request"' in seen["launch_page"]
    assert seen["css"] == (REPO / "smart_app" / "static" / "app.css").read_text(encoding="utf-8")
    assert seen["library"] == sorted(p.name for p in (REPO / "questionnaires").glob("*.json"))
    seed = json.loads((REPO / "ehr_sandbox" / "seed" / "sandbox-patients.json").read_text())
    assert seen["seed_entries"] == len(seed["entry"])
    assert seen["authz_templates"] == sorted(
        p.name for p in (REPO / "ehr_sandbox" / "templates").rglob("*.html")
    )
    server = REPO / "ehr_sandbox" / "fhir_server" / "server.mjs"
    assert seen["server_script"] == server.read_text(encoding="utf-8")
