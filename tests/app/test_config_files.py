"""Configuration files read through one function: each loader's error names its file."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attach_fhir.errors import AttachError
from attach_fhir.io.backend_services import BackendConfigError, load_backend_config
from smart_app.cds.auth import load_clients
from smart_app.web.errors import ConfigurationError
from smart_app.web.registrations import load

LOADERS: list[tuple[Callable[[Path], Any], type[AttachError], str]] = [
    (load_backend_config, BackendConfigError, "backend config"),
    (load, ConfigurationError, "registrations file"),
    (load_clients, ConfigurationError, "CDS clients file"),
]


@pytest.mark.parametrize(("loader", "error", "what"), LOADERS)
def test_a_missing_file_is_named_with_the_system_s_reason(
    tmp_path: Path, loader: Callable[[Path], Any], error: type[AttachError], what: str
) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(error) as raised:
        loader(path)
    assert raised.value.description == f"{what} {path}: {os.strerror(errno.ENOENT)}"


@pytest.mark.parametrize(("loader", "error", "what"), LOADERS)
def test_a_file_that_is_not_json_is_named(
    tmp_path: Path, loader: Callable[[Path], Any], error: type[AttachError], what: str
) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"a": ', encoding="utf-8")
    with pytest.raises(error) as raised:
        loader(path)
    assert raised.value.description.startswith(f"{what} {path}: invalid JSON (")
    assert "line 1 column 7" in raised.value.description  # where the parser stopped
