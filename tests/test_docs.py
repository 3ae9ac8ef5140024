"""The docs say only what the code does: links, paths, names, settings and commands they name.

An integration engineer reads README.md, docs/*.md and bench/README.md before the code. Each
check below reads the Markdown, pulls out what can be checked mechanically and compares it with
the repository: relative links and their #anchors, file paths and Python names in backticks,
``ATTACH_*`` settings (both ways), the keys of each validated configuration file, the sandbox
knobs, and every ``attach-fhir`` command line shown. No server is started.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import fnmatch
import importlib
import importlib.util
import json
import os
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").glob("*.md")])
#: Never walked: dependencies, caches and build output (not part of the repository).
PRUNED = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", "dist"}
PRUNED_PREFIXES = ("build", "instance", ".pytest_cache", ".hypothesis")
PACKAGES = ("attach_fhir", "smart_app", "ehr_sandbox")
#: File name endings that make a backticked word a path to check.
FILE_EXTENSIONS = ("py", "json", "md", "mjs", "js", "css", "html", "toml", "txt")
#: Named in backticks as files of the pinned peer renderers that `scripts/bootstrap --bench`
#: installs under bench/peers/node_modules (git-ignored, so absent from a fresh checkout).
PEER_PACKAGE_FILES = {
    "webcomponent/styles.css",
    "assets/lib/zone.min.js",
    "runtime.js",
    "polyfills.js",
    "main.js",
    "fhir/R4/lformsFHIR.min.js",
}
#: Keys create_app sets or reads that are no operator setting, each with the reason.
NOT_SETTINGS = {
    "ATTACH_CSP": "computed by security.init_app from the frame ancestors, never read from input",
    "ATTACH_ATTACH_CSP": "the same key, as from_prefixed_env would name it",
    "ATTACH_HTTP_TRANSPORT": "tests inject an httpx transport object; no text value makes one",
    "ATTACH_AUDIT_CLOCK": "tests inject the audit trail's clock, a function; no text makes one",
    "ATTACH_SECRET_KEY": "Flask's own key, in DEFAULTS but unused: the app keeps no Flask session",
    "ATTACH_SESSION_COOKIE_HTTPONLY": "Flask's own key; the app's cookie is always HttpOnly",
}


# --- reading Markdown --------------------------------------------------------------------------

FENCE = re.compile(r"^[ ]{0,3}(```|~~~).*?^[ ]{0,3}\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`]+)`")
LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@cache
def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def prose(path: Path) -> str:
    """The page without its fenced code blocks (headings and links live outside them)."""
    return FENCE.sub("", text_of(path))


def fences(path: Path) -> list[str]:
    return [m.group(0) for m in FENCE.finditer(text_of(path))]


def code_spans(path: Path) -> list[str]:
    """Inline code in the prose, whitespace (a span broken over two lines) made single spaces."""
    return [" ".join(m.group(1).split()) for m in CODE_SPAN.finditer(prose(path))]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: link text kept, lower case, punctuation dropped."""
    text = LINK.sub(r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every heading anchor of a page, repeats numbered as GitHub numbers them (-1, -2, ...)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for match in HEADING.finditer(prose(path)):
        slug = github_slug(match.group(2))
        out.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return frozenset(out)


# --- the repository ----------------------------------------------------------------------------


@cache
def repo_paths() -> frozenset[str]:
    """Every file and directory of the working tree, relative, without dependencies and caches."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        here = Path(dirpath).relative_to(ROOT)
        dirnames[:] = [
            d
            for d in dirnames
            if d not in PRUNED and not (here == Path(".") and d.startswith(PRUNED_PREFIXES))
        ]
        found.update((here / name).as_posix() for name in [*dirnames, *filenames])
    return frozenset(found)


def path_exists(token: str) -> bool:
    """A backticked path names something here: from the root, or as the end of a path (the docs
    write `attach_fhir/io/outbox.py`, `static/autosave.js`, `server.mjs` beside their folder)."""
    name = token.rstrip("/")
    if any(ch in name for ch in "*?["):
        return any(
            fnmatch.fnmatch(p, name) or fnmatch.fnmatch(p, f"*/{name}") for p in repo_paths()
        )
    return name in repo_paths() or any(p.endswith(f"/{name}") for p in repo_paths())


PATH_TOKEN = re.compile(r"^[\w.*-]+(/[\w.*-]+)*/?$")


def path_tokens(path: Path) -> Iterator[str]:
    """Backticked words that are repository paths: under a top-level folder of the repository or
    of a package, or ending in a source file extension. Scopes (`patient/Task.ru`), resource
    references (`Task/123`), URL paths (`/launch`) and MIME types are not paths."""
    top = {p.split("/")[0] for p in repo_paths()}
    for token in code_spans(path):
        if not PATH_TOKEN.match(token) or token.startswith(("../", "./")):
            continue
        first = token.split("/")[0]
        if first in ("patient", "user", "system", "launch") or first[:1].isupper():
            continue
        is_file = token.endswith(tuple(f".{ext}" for ext in FILE_EXTENSIONS))
        if is_file or ("/" in token and (first in top or first in PACKAGES)):
            yield token


@cache
def modules() -> dict[str, str]:
    """Importable module names of the three packages, by their last part(s) and in full."""
    out: dict[str, str] = {}
    for package in PACKAGES:
        base = ROOT / "src" / package if package == "attach_fhir" else ROOT / package
        for file in base.rglob("*.py"):
            parts = file.relative_to(base.parent).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            full = ".".join(parts)
            out[full] = full
            for i in range(1, len(parts)):
                out.setdefault(".".join(parts[i:]), full)
    return out


#: Backticked lower-case dotted words that are FHIR element paths, not Python names.
FHIR_ELEMENT_PATHS = {"context.encounter"}  # DocumentReference.context.encounter


@cache
def classes() -> dict[str, list[str]]:
    """Class name -> the modules defining it, in our packages and the test fixtures."""
    out: dict[str, list[str]] = {}
    files = [*code_files(), *(ROOT / "tests" / "fixtures").glob("*.py")]
    for file in files:
        parts = file.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[1:] if parts[0] == "src" else parts)
        for node in ast.walk(ast.parse(text_of(file))):
            if isinstance(node, ast.ClassDef):
                out.setdefault(node.name, []).append(module)
    return out


def is_fhir_type(name: str) -> bool:
    return importlib.util.find_spec(f"fhir.resources.R4B.{name.lower()}") is not None


def python_names(path: Path) -> Iterator[str]:
    """Backticked `module.name`, `package.module`, `module:callable` or `Class.member` whose first
    part is one of our modules or classes (`attach_fhir.task_completion`,
    `writeback.build_transaction`, `Scorer.score(...)`: a call's arguments are dropped). FHIR
    paths (`Goal.target`, `Task.rus`) start with a resource type and are left alone."""
    for token in code_spans(path):
        token = re.sub(r"\(.*\)$", "", token)
        if token.endswith(tuple(f".{ext}" for ext in (*FILE_EXTENSIONS, "sqlite3", "pem"))):
            continue
        if token in FHIR_ELEMENT_PATHS:
            continue
        if not re.fullmatch(r"[A-Za-z_][\w]*([.:][A-Za-z_]\w*)+", token):
            continue
        first = re.split(r"[.:]", token)[0]
        if first in modules() or (first in classes() and not is_fhir_type(first)):
            yield token


def has_member(obj: object, name: str) -> bool:
    """An attribute, or a dataclass field / annotated attribute without a class-level value."""
    if hasattr(obj, name):
        return True
    return isinstance(obj, type) and any(
        name in vars(klass).get("__annotations__", {}) for klass in obj.__mro__
    )


def resolve_python_name(token: str) -> str | None:
    """None when `token` names a module, class or something reachable from one; else why not."""
    parts = re.split(r"[.:]", token)
    starts: list[tuple[object, list[str]]] = []
    for i in range(len(parts), 0, -1):
        mod = modules().get(".".join(parts[:i]))
        if mod:
            module = importlib.import_module(mod)
            starts.append((module, parts[i:]))
            # A flow's endpoints (`review.scores`) are the view functions of its routes module.
            if hasattr(module, "__path__") and importlib.util.find_spec(f"{mod}.routes"):
                starts.append((importlib.import_module(f"{mod}.routes"), parts[i:]))
    for mod in classes().get(parts[0], []) if parts[0][:1].isupper() else []:
        starts.append((getattr(importlib.import_module(mod), parts[0]), parts[1:]))
    for obj, attrs in starts:
        for attr in attrs:
            if not has_member(obj, attr):
                break
            obj = getattr(obj, attr, None)
        else:
            return None
    return f"nothing of that name (tried from {[getattr(o, '__name__', o) for o, _ in starts]})"


# --- settings ----------------------------------------------------------------------------------

SETTING_WORD = re.compile(r"\b(ATTACH_[A-Z][A-Z0-9_]*)\b")
CONFIG_READ = re.compile(r"""config(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']""")


def code_files() -> Iterator[Path]:
    """The Python files of our three packages (not the npm packages' own scripts)."""
    for package in ("smart_app", "src", "ehr_sandbox"):
        for file in (ROOT / package).rglob("*.py"):
            if not PRUNED.intersection(file.relative_to(ROOT).parts):
                yield file


@cache
def settings_in_code() -> dict[str, str]:
    """`ATTACH_*` settings the code reads, each with where: the app's DEFAULTS and its
    ``config[...]`` / ``config.get(...)`` reads (``from_prefixed_env("ATTACH")`` makes each an
    ``ATTACH_`` variable), and every ``ATTACH_*`` the code names (``os.environ`` reads)."""
    from smart_app import DEFAULTS

    found = dict.fromkeys((f"ATTACH_{key}" for key in DEFAULTS), "smart_app/__init__.py DEFAULTS")
    for file in code_files():
        source = text_of(file)
        for name in SETTING_WORD.findall(source):
            found.setdefault(name, rel(file))
        if file.is_relative_to(ROOT / "smart_app"):
            for key in CONFIG_READ.findall(source):
                found.setdefault(f"ATTACH_{key}", rel(file))
    # the shell scripts' own knobs (scripts/test), and the deployment files' (deploy/)
    for script in [*(ROOT / "scripts").iterdir(), *(ROOT / "deploy").iterdir()]:
        if script.is_file() and (script.suffix != ".py" or script.parent.name == "deploy"):
            for name in SETTING_WORD.findall(text_of(script)):
                found.setdefault(name, rel(script))
    return {k: v for k, v in found.items() if k not in NOT_SETTINGS}


def documented_settings() -> dict[str, set[str]]:
    """Setting names in the docs' code (inline and fenced), with and without the prefix, by page.
    A page may name an app setting without `ATTACH_` (`CDS_APP_NAME`, `OUTBOX_POLL`)."""
    out: dict[str, set[str]] = {}
    for doc in DOCS:
        code = " ".join([*code_spans(doc), *fences(doc)])
        for word in re.findall(r"\b[A-Z][A-Z0-9_]*[A-Z0-9]\b", code):
            out.setdefault(word, set()).add(rel(doc))
    return out


# --- tables ------------------------------------------------------------------------------------


def table_first_column(doc: Path, header: str) -> set[str]:
    """The backticked names in the first column of the one table whose header row is ``header``."""
    lines = prose(doc).splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == header]
    assert len(starts) == 1, f"{rel(doc)}: expected one table headed {header!r}, found {starts}"
    names: set[str] = set()
    for line in lines[starts[0] + 2 :]:
        if not line.startswith("|"):
            break
        names.update(CODE_SPAN.findall(line.split("|")[1]))
    return names


def schema_properties(path: Path, pointer: tuple[str, ...]) -> set[str]:
    node = json.loads(text_of(path))
    for key in pointer:
        node = node[key]
    return set(node["properties"])


# --- commands ----------------------------------------------------------------------------------


def command_lines() -> Iterator[tuple[Path, str]]:
    """`attach-fhir ...` lines shown in the docs: inline code, and shell blocks (continuation
    lines joined, `VAR=value` prefixes and `$` prompts and comments dropped)."""
    for doc in DOCS:
        candidates = list(code_spans(doc))
        for block in fences(doc):
            candidates.extend(block.replace("\\\n", " ").splitlines()[1:-1])
        for line in candidates:
            line = line.strip().removeprefix("$ ")
            line = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", line)
            line = line.split(" #", 1)[0].strip()
            if line.startswith(("attach-fhir ", ".venv/bin/attach-fhir ")):
                yield doc, line


@cache
def cli_parser() -> argparse.ArgumentParser:
    from attach_fhir.cli import build_parser

    return build_parser()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_problem(line: str) -> str | None:
    """None when every subcommand and option of the line exists; else what does not."""
    words = [w.strip("[]") for w in shlex.split(line.replace("...", ""))[1:]]
    parser, path = cli_parser(), ["attach-fhir"]
    for word in words:
        if word.startswith("-"):
            option = word.split("=", 1)[0]
            if option not in parser._option_string_actions:
                return f"{' '.join(path)} has no option {option}"
            continue
        sub = subcommands(parser)
        if word in sub:
            parser, path = sub[word], [*path, word]
        elif sub:
            return f"{' '.join(path)} has no subcommand {word}"
    return None


# --- the tests ---------------------------------------------------------------------------------


def test_the_pages_checked_are_the_docs() -> None:
    names = {rel(d) for d in DOCS}
    assert {"README.md", "bench/README.md", "docs/ehr-registration.md"} <= names
    assert len(names) >= 10, names


def test_relative_links_and_anchors_resolve() -> None:
    checked, broken = 0, []
    for doc in DOCS:
        for _text, target in LINK.findall(prose(doc)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            checked += 1
            file_part, _, anchor = target.partition("#")
            dest = (doc.parent / file_part).resolve() if file_part else doc
            if not dest.exists():
                broken.append(f"{rel(doc)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{rel(doc)}: {target} (no heading #{anchor} in {rel(dest)})")
    assert checked >= 20, f"only {checked} relative links found: is the link pattern right?"
    assert not broken, "\n" + "\n".join(broken)


def test_github_slug_matches_githubs_rules() -> None:
    assert github_slug("When the EHR gives no patient") == "when-the-ehr-gives-no-patient"
    assert github_slug("Launching from a Task (fhirContext)") == "launching-from-a-task-fhircontext"
    assert github_slug("`attach-fhir outbox drain --backend FILE`") == (
        "attach-fhir-outbox-drain---backend-file"
    )
    assert github_slug("Written once: identifiers and conditional creates") == (
        "written-once-identifiers-and-conditional-creates"
    )


def test_backticked_paths_exist() -> None:
    checked, missing = set(), []
    for doc in DOCS:
        for token in path_tokens(doc):
            checked.add(token)
            if token not in PEER_PACKAGE_FILES and not path_exists(token):
                missing.append(f"{rel(doc)}: `{token}`")
    assert {"smart_app/picker/routes.py", "smart_app/schema/registrations.schema.json"} <= checked
    assert len(checked) >= 40, sorted(checked)
    assert not missing, "\n" + "\n".join(missing)


def test_backticked_python_names_exist() -> None:
    checked, missing = set(), []
    for doc in DOCS:
        for token in python_names(doc):
            checked.add(token)
            problem = resolve_python_name(token)
            if problem:
                missing.append(f"{rel(doc)}: `{token}`: {problem}")
    assert {
        "attach_fhir.task_completion",
        "smart_app.launch.authorization.fhir_context",
        "Scorer.score",
    } <= checked
    assert len(checked) >= 30, sorted(checked)
    assert not missing, "\n" + "\n".join(missing)


def test_every_setting_the_code_reads_is_documented() -> None:
    in_code = settings_in_code()
    assert {"ATTACH_DATA_DIR", "ATTACH_OUTBOX_DSN", "ATTACH_CDS_CLIENTS"} <= in_code.keys()
    assert len(in_code) >= 25, sorted(in_code)
    documented = documented_settings()
    missing = sorted(
        f"{name} (read in {where})"
        for name, where in in_code.items()
        if name not in documented and name.removeprefix("ATTACH_") not in documented
    )
    assert not missing, "\n" + "\n".join(missing)


def test_every_documented_setting_exists() -> None:
    in_code = settings_in_code()
    named = {w: pages for w, pages in documented_settings().items() if w.startswith("ATTACH_")}
    assert len(named) >= 10, sorted(named)
    unknown = sorted(f"{w} in {sorted(pages)}" for w, pages in named.items() if w not in in_code)
    assert not unknown, "\n" + "\n".join(unknown)


def test_settings_tables_name_only_real_settings() -> None:
    """A table row that lists an upper-case setting, with or without the prefix, names one the
    code reads (the assess flow's and CDS pages' config tables)."""
    in_code = settings_in_code()
    rows: set[str] = set()
    for doc in DOCS:
        for line in prose(doc).splitlines():
            if line.startswith("|"):
                rows.update(
                    w
                    for w in CODE_SPAN.findall(line.split("|")[1])
                    if re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", w)
                )
    assert {"OUTBOX_POLL", "CDS_APP_NAME", "ATTACH_SESSION_STORE"} <= rows
    unknown = sorted(w for w in rows if f"ATTACH_{w.removeprefix('ATTACH_')}" not in in_code)
    assert not unknown, "\n" + "\n".join(unknown)


@pytest.mark.parametrize(
    ("doc", "header", "schema", "pointer"),
    [
        (
            "docs/ehr-registration.md",
            "| key | meaning |",
            "smart_app/schema/registrations.schema.json",
            ("$defs", "registration"),
        ),
        (
            "docs/cds-hooks.md",
            "| key | required | meaning |",
            "smart_app/schema/cds-clients.schema.json",
            ("$defs", "client"),
        ),
        (
            "docs/backend-services.md",
            "| key | meaning |",
            "src/attach_fhir/schema/backend-services.schema.json",
            ("items",),
        ),
    ],
)
def test_config_file_keys_match_their_schema(
    doc: str, header: str, schema: str, pointer: tuple[str, ...]
) -> None:
    properties = schema_properties(ROOT / schema, pointer)
    assert len(properties) >= 6, properties
    documented = table_first_column(ROOT / doc, header)
    assert {
        "undocumented": sorted(properties - documented),
        "not in the schema": sorted(documented - properties),
    } == {"undocumented": [], "not in the schema": []}


def test_sandbox_knobs_table_matches_the_knobs() -> None:
    from ehr_sandbox.authz.config import Knobs

    knobs = {f.name for f in dataclasses.fields(Knobs)}
    assert "standalone_patient_picker" in knobs
    documented = table_first_column(ROOT / "docs" / "sandbox-ehr.md", "| Knob | Default | Effect |")
    assert {
        "undocumented": sorted(knobs - documented),
        "not a knob": sorted(documented - knobs),
    } == {"undocumented": [], "not a knob": []}


def test_command_lines_use_real_commands_and_options() -> None:
    lines = list(command_lines())
    shown = {line.split()[1] for _doc, line in lines}
    assert {"serve", "outbox", "bulk-score", "conformance", "sandbox", "score"} <= shown
    problems = [f"{rel(doc)}: `{line}`: {p}" for doc, line in lines if (p := command_problem(line))]
    assert not problems, "\n" + "\n".join(problems)


def test_script_options_shown_exist() -> None:
    """`scripts/<name> --option` and `bench/<name>.py --option` in the docs (comments after the
    command included): the script handles that option. `scripts/test` passes its arguments to
    pytest, so it is left out."""
    shown: list[tuple[str, str]] = []
    for doc in DOCS:
        lines = [*code_spans(doc), *(line for b in fences(doc) for line in b.splitlines())]
        for line in lines:
            match = re.search(r"\b((?:scripts/(?!test\b)\w+)|(?:bench/\w+\.py))\b(.*)", line)
            if match:
                shown += [(match.group(1), opt) for opt in re.findall(r"--[\w-]+", match.group(2))]
    assert ("scripts/bootstrap", "--bench") in shown
    assert ("bench/form_bench.py", "--runs") in shown
    missing = sorted({f"{s} {o}" for s, o in shown if o not in text_of(ROOT / s)})
    assert not missing, "\n" + "\n".join(missing)


#: Paths written in plain prose: they start with one of these top-level folders.
PROSE_PATH = re.compile(
    r"(?<![\w/.-])((?:\.ci|docs|tests|smart_app|src|scripts|bench|ehr_sandbox|questionnaires)"
    r"/[\w./*-]*[\w*/])"
)


def test_paths_in_prose_exist() -> None:
    """`tests/e2e/test_cds_e2e.py`-like paths written without backticks exist too."""
    checked, missing = set(), []
    for doc in DOCS:
        for match in PROSE_PATH.finditer(CODE_SPAN.sub("", prose(doc))):
            checked.add(match.group(1))
            if not path_exists(match.group(1)):
                missing.append(f"{rel(doc)}: {match.group(1)}")
    assert "tests/e2e/test_backend_services_e2e.py" in checked
    assert not missing, "\n" + "\n".join(missing)


def test_backticked_test_names_exist() -> None:
    tests_text = "\n".join(text_of(f) for f in (ROOT / "tests").rglob("test_*.py"))
    named = {t for doc in DOCS for t in code_spans(doc) if re.fullmatch(r"test_\w+", t)}
    assert named, "no test named in the docs: is the pattern right?"
    missing = sorted(t for t in named if f"def {t}(" not in tests_text)
    assert not missing, "\n" + "\n".join(missing)


def test_sandbox_client_fields_are_listed() -> None:
    """docs/sandbox-ehr.md lists every field of a sandbox client registration."""
    from ehr_sandbox.authz.config import SCHEMA

    fields = set(SCHEMA["$defs"]["client"]["properties"])
    paragraph = next(
        p for p in prose(ROOT / "docs" / "sandbox-ehr.md").split("\n- ") if "register_client" in p
    )
    listed = set(CODE_SPAN.findall(paragraph))
    assert "client_id" in fields
    assert not fields - listed, f"not listed: {sorted(fields - listed)}"


def test_sandbox_fhir_server_options_table_matches_the_server() -> None:
    """docs/sandbox-fhir-server.md's option table names exactly the options server.mjs parses."""
    source = text_of(ROOT / "ehr_sandbox" / "fhir_server" / "server.mjs")
    block = re.search(r"parseArgs\(\{.*?options: \{(.*?)\n    \},", source, re.DOTALL)
    assert block, "server.mjs no longer parses its options with parseArgs({options: {...}})"
    parsed = {f"--{name}" for name in re.findall(r"^\s*'?([\w-]+)'?: \{", block.group(1), re.M)}
    assert {"--port", "--read-only-types", "--no-transaction"} <= parsed
    column = table_first_column(ROOT / "docs" / "sandbox-fhir-server.md", "| option | meaning |")
    documented = {w.split()[0] for w in column}
    assert {
        "undocumented": sorted(parsed - documented),
        "not an option": sorted(documented - parsed),
    } == {"undocumented": [], "not an option": []}
