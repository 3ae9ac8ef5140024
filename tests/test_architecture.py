"""The house rules that keep the layers apart."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "attach_fhir"


def imported_top_level_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_library_never_imports_the_web_layer() -> None:
    offenders = {
        str(p.relative_to(SRC)): sorted(imported_top_level_modules(p) & {"flask", "smart_app"})
        for p in SRC.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
