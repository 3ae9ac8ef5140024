"""Each error code names one kind of error: one class per code, wherever it is raised."""

from __future__ import annotations

import importlib
import pkgutil
from collections import defaultdict

import attach_fhir
import ehr_sandbox
import smart_app
from attach_fhir.errors import AttachError


def every_error_type() -> list[type[AttachError]]:
    """AttachError and every subclass in the project's packages (each module imported)."""
    for package in (attach_fhir, smart_app, ehr_sandbox):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(info.name)
    found: list[type[AttachError]] = []
    todo: list[type[AttachError]] = [AttachError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_no_two_error_types_share_a_code() -> None:
    by_code: dict[str, list[str]] = defaultdict(list)
    for cls in every_error_type():
        if "code" in vars(cls) and cls.__module__.split(".")[0] != "tests":
            by_code[cls.code].append(f"{cls.__module__}.{cls.__qualname__}")
    assert len(by_code) > 20, sorted(by_code)  # the walk found the project's errors
    assert {code: names for code, names in by_code.items() if len(names) > 1} == {}
