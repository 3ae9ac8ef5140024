"""The house rules that keep the layers apart (docs/architecture.md).

Every import statement is read with ``ast``, those inside functions included: a deferred import
hides a cycle from Python, not from these checks. Each rule has a test that plants a violation
in a tiny package and shows the checker finds it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "attach_fhir"
PACKAGES = {
    "attach_fhir": SRC,
    "smart_app": ROOT / "smart_app",
    "ehr_sandbox": ROOT / "ehr_sandbox",
}
#: The app's flows: each a blueprint with its helpers; none imports another.
FLOWS = ("launch", "assess", "review", "careplan", "patient", "assign", "picker", "cds")
#: Libraries that touch a socket, a database or the web: never in attach_fhir's pure core.
IO_LIBRARIES = {"httpx", "sqlite3", "psycopg", "flask", "socket", "urllib.request"}
#: attach_fhir's modules allowed IO: the io package and the command line around it.
IO_SHELL = ("attach_fhir.io", "attach_fhir.cli", "attach_fhir.commands")
#: Delivery's one home: the only app module that queues bundles and holds the outbox.
DELIVERY = "smart_app.records.delivery"
#: What queues or opens an outbox: the app reaches it through ``delivery`` only.
OUTBOX_MAKERS = {
    "attach_fhir.io.outbox.Outbox",
    "attach_fhir.io.outbox.payload",
    "attach_fhir.io.outbox_store.open_outbox_store",
}
#: The outbox's key on the Flask app, named by nothing but ``delivery``.
OUTBOX_KEY = "attach_outbox"

# Violations measured when the rules were written; each list shrinks to empty as the
# restructuring (issue 11) moves the code. A fixed violation must leave its list.
KNOWN_CYCLES: set[frozenset[str]] = set()
KNOWN_FLOW_IMPORTS: set[tuple[str, str]] = set()
KNOWN_IMPURE: set[str] = set()


# --- the checker -------------------------------------------------------------------------------


def modules(packages: Mapping[str, Path]) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__), for every module of the packages."""
    found: dict[str, tuple[Path, bool]] = {}
    for name, folder in packages.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder)
            if "node_modules" in rel.parts:
                continue
            parts = [name, *rel.with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_statements(
    module: str, is_package: bool, tree: ast.AST
) -> Iterator[tuple[str, list[str]]]:
    """(source, names) of every import statement, relative sources made absolute; ``import x``
    gives (x, [])."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            yield source, [alias.name for alias in node.names]


def imported_names(module: str, is_package: bool, tree: ast.AST) -> set[str]:
    """Every dotted name the module's imports name: ``from p import n`` names ``p`` and ``p.n``."""
    names: set[str] = set()
    for source, items in import_statements(module, is_package, tree):
        names.add(source)
        names.update(f"{source}.{item}" for item in items)
    return names


def _nearest(name: str, found: Mapping[str, object]) -> str | None:
    while name and name not in found:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(packages: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports. ``from p import m`` of a submodule ``m`` is an
    edge to ``p.m`` only: a package's ``__init__`` importing its own modules is no cycle."""
    found = modules(packages)
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges: set[str | None] = set()
        for source, items in import_statements(module, is_package, tree):
            for item in items or [""]:
                sub = f"{source}.{item}"
                edges.add(sub if item and sub in found else _nearest(source, found))
        graph[module] = {e for e in edges if e is not None and e != module}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.add(frozenset(component))
    return found


def flow_of(module: str, app: str = "smart_app") -> str | None:
    """The flow a module belongs to (``smart_app.assess.routes`` -> assess), else None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == app and parts[1] in FLOWS else None


def flow_imports(graph: Mapping[str, set[str]], app: str = "smart_app") -> set[tuple[str, str]]:
    """(importer, imported flow module) where the importer is not in that flow; only the app
    factory (``smart_app`` itself) may import a flow, to register its blueprint."""
    return {
        (module, target)
        for module, targets in graph.items()
        if module != app
        for target in targets
        if flow_of(target, app) is not None and flow_of(target, app) != flow_of(module, app)
    }


def impure_core(packages: Mapping[str, Path], package: str = "attach_fhir") -> dict[str, set[str]]:
    """Core module -> the IO libraries and io modules it imports (directly, deferred included)."""
    shell = tuple(prefix.replace("attach_fhir", package, 1) for prefix in IO_SHELL)
    found = modules(packages)
    offenders: dict[str, set[str]] = {}
    for module, (path, is_package) in found.items():
        if not module.startswith(f"{package}.") and module != package:
            continue
        if module.startswith(shell):
            continue
        names = imported_names(module, is_package, ast.parse(path.read_text("utf-8")))
        bad = {
            lib
            for name in names
            for lib in [*IO_LIBRARIES, f"{package}.io"]
            if name == lib or name.startswith(f"{lib}.")
        }
        if bad:
            offenders[module] = bad
    return offenders


def delivery_elsewhere(
    packages: Mapping[str, Path], home: str = DELIVERY, app: str = "smart_app"
) -> set[tuple[str, str]]:
    """(module, what) for each app module but ``home`` that imports what queues or opens an
    outbox, or names the outbox's key on the app (a string constant)."""
    found: set[tuple[str, str]] = set()
    for module, (path, is_package) in modules(packages).items():
        if module == home or not (module == app or module.startswith(f"{app}.")):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found.update((module, n) for n in imported_names(module, is_package, tree) & OUTBOX_MAKERS)
        found.update(
            (module, OUTBOX_KEY)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value == OUTBOX_KEY
        )
    return found


# --- the rules, on the project -----------------------------------------------------------------


def test_no_import_cycles_except_the_known_ones() -> None:
    assert cycles(import_graph(PACKAGES)) == KNOWN_CYCLES


def test_no_flow_imports_another_flow_except_the_known_ones() -> None:
    assert flow_imports(import_graph(PACKAGES)) == KNOWN_FLOW_IMPORTS


def test_the_pure_core_imports_no_io_except_the_known_modules() -> None:
    assert set(impure_core(PACKAGES)) == KNOWN_IMPURE


def test_only_delivery_queues_bundles_and_holds_the_outbox() -> None:
    assert delivery_elsewhere(PACKAGES) == set()
    # the tests reach the outbox through delivery.outbox_services(app) too (this file names it)
    in_tests = delivery_elsewhere({"tests": ROOT / "tests"}, app="tests")
    assert {m for m, what in in_tests if what == OUTBOX_KEY} == {"tests.test_architecture"}


def test_domain_library_never_imports_the_web_layer() -> None:
    graph = import_graph({"attach_fhir": SRC})
    names: dict[str, set[str]] = {}
    for module, (path, is_package) in modules({"attach_fhir": SRC}).items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {n.split(".")[0] for n in imported_names(module, is_package, tree)}
        names[module] = top & {"flask", "smart_app"}
    assert graph  # the walk found the package
    assert {k: sorted(v) for k, v in names.items() if v} == {}


# --- each rule catches a planted violation -----------------------------------------------------


def plant(tmp_path: Path, files: Mapping[str, str]) -> dict[str, Path]:
    """A tiny package tree in tmp_path; returns {top-level package: folder}."""
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return {p.name: p for p in tmp_path.iterdir() if p.is_dir()}


def test_a_cycle_hidden_by_a_deferred_relative_import_is_found(tmp_path: Path) -> None:
    packages = plant(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg import a\n",
            "pkg/a.py": "from pkg.b import helper\n",
            "pkg/b.py": "def helper():\n    from . import a\n    return a\n",
            "pkg/c.py": "from pkg import a, b\n",
        },
    )
    assert cycles(import_graph(packages)) == {frozenset({"pkg.a", "pkg.b"})}


def test_a_package_importing_its_own_modules_is_no_cycle(tmp_path: Path) -> None:
    packages = plant(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg import a\nVALUE = 1\n",
            "pkg/a.py": "from pkg.b import helper\n",
            "pkg/b.py": "from pkg import c\n",
            "pkg/c.py": "",
        },
    )
    assert cycles(import_graph(packages)) == set()
    # ... but a module reading a name of the package's __init__ closes the circle
    (packages["pkg"] / "c.py").write_text("from pkg import VALUE\n", encoding="utf-8")
    assert cycles(import_graph(packages)) == {frozenset({"pkg", "pkg.a", "pkg.b", "pkg.c"})}


def test_a_flow_importing_another_flow_is_found(tmp_path: Path) -> None:
    packages = plant(
        tmp_path,
        {
            "app/__init__.py": "from app.assess import routes\nfrom app.review import routes\n",
            "app/web/__init__.py": "",
            "app/web/clock.py": "",
            "app/assess/__init__.py": "",
            "app/assess/routes.py": "from app.web import clock\nfrom app.assess import forms\n",
            "app/assess/forms.py": "",
            "app/review/__init__.py": "",
            "app/review/routes.py": "def f():\n    from ..assess.forms import x\n",
            "app/web/people.py": "import app.launch.names\n",
            "app/launch/__init__.py": "",
            "app/launch/names.py": "",
        },
    )
    assert flow_imports(import_graph(packages), app="app") == {
        ("app.review.routes", "app.assess.forms"),
        ("app.web.people", "app.launch.names"),
    }


def test_io_in_the_pure_core_is_found_and_allowed_in_io(tmp_path: Path) -> None:
    packages = plant(
        tmp_path,
        {
            "lib/__init__.py": "",
            "lib/scoring.py": "import json\n",
            "lib/reader.py": "def read():\n    import urllib.request\n",
            "lib/pages.py": "from lib.io.client import Client\n",
            "lib/store.py": "from psycopg import sql\n",
            "lib/io/__init__.py": "",
            "lib/io/client.py": "import httpx\nimport sqlite3\n",
            "lib/cli.py": "import socket\n",
        },
    )
    assert impure_core(packages, package="lib") == {
        "lib.reader": {"urllib.request"},
        "lib.pages": {"lib.io"},
        "lib.store": {"psycopg"},
    }


def test_queueing_or_opening_an_outbox_outside_delivery_is_found(tmp_path: Path) -> None:
    packages = plant(
        tmp_path,
        {
            "app/__init__.py": "from app.records import delivery\n",
            "app/records/__init__.py": "",
            "app/records/delivery.py": (
                "from attach_fhir.io.outbox import Outbox, payload\nKEY = 'attach_outbox'\n"
            ),
            "app/records/submission.py": "from attach_fhir.io.outbox import Mode, payload\n",
            "app/journal/__init__.py": "",
            "app/journal/routes.py": (
                "def f(app):\n"
                "    from attach_fhir.io import outbox_store\n"
                "    from attach_fhir.io.outbox_store import open_outbox_store\n"
                "    return app.extensions['attach_outbox']\n"
            ),
        },
    )
    assert delivery_elsewhere(packages, home="app.records.delivery", app="app") == {
        ("app.records.submission", "attach_fhir.io.outbox.payload"),
        ("app.journal.routes", "attach_fhir.io.outbox_store.open_outbox_store"),
        ("app.journal.routes", OUTBOX_KEY),
    }
