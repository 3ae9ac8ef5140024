"""The instrument library as an NPM-format FHIR package (``attach-fhir.instruments``).

Pure: the package is a mapping of file names (``package/...``) to bytes, and a ``.tgz`` of it,
built from the packaged library and the project's definitions; nothing here touches a disk or a
socket. It holds the Questionnaires, CodeSystems, ValueSets and StructureDefinitions, an
ImplementationGuide listing them, ``package/package.json`` and ``package/.index.json``.
:func:`unresolved` lists every canonical reference that resolves neither inside the package nor
in a dependency's list of the canonicals we use (:data:`R4_CORE_CANONICALS` ...).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from attach_fhir.canonical import BASE
from attach_fhir.extension_definitions import FHIR_VERSION, PUBLISHER, definitions

Json = dict[str, Any]

PACKAGE_NAME = "attach-fhir.instruments"
#: The package's version: bump with any change of its content (and the changed resources').
PACKAGE_VERSION = "1.2.0"
IG_ID = "attach-fhir-instruments"
LICENSE = "Apache-2.0"

#: The R4 core canonicals the package references (checked against Medplum's R4 definitions by
#: tests/lib/test_fhir_package.py). Resolving inside ``hl7.fhir.r4.core`` 4.0.1.
R4_CORE_CANONICALS = frozenset(
    {
        "http://hl7.org/fhir/StructureDefinition/Extension",
        "http://hl7.org/fhir/StructureDefinition/ordinalValue",
        "http://hl7.org/fhir/StructureDefinition/rendering-xhtml",
        "http://hl7.org/fhir/StructureDefinition/variable",
        "http://terminology.hl7.org/CodeSystem/usage-context-type",
    }
)
SDC_PACKAGE = ("hl7.fhir.uv.sdc", "3.0.0")
#: The SDC canonicals the package references, resolving inside ``hl7.fhir.uv.sdc`` 3.0.0.
SDC_CANONICALS = frozenset(
    {
        "http://hl7.org/fhir/uv/sdc/ImplementationGuide/hl7.fhir.uv.sdc",
        "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire",
        "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression",
    }
)
#: Code systems named by URI that are not FHIR resources in any package (UCUM).
EXTERNAL_SYSTEMS = frozenset({"http://unitsofmeasure.org"})
DEPENDENCIES = {"hl7.fhir.r4.core": FHIR_VERSION, SDC_PACKAGE[0]: SDC_PACKAGE[1]}

#: Library files that go into the package, by resource type.
PACKAGED_TYPES = ("Questionnaire", "CodeSystem")
#: Keys of a canonical resource that name it, for ``.index.json``.
INDEX_KEYS = ("id", "url", "version", "kind", "type", "content")


def package_resources(library_files: Mapping[str, Mapping[str, Any]]) -> list[Json]:
    """Every resource of the package but the ImplementationGuide, in a stable order."""
    ours = [
        json.loads(json.dumps(r))  # a plain, mutable copy of a frozen library resource
        for _, r in sorted(library_files.items())
        if r.get("resourceType") in PACKAGED_TYPES
    ]
    codesystems = [r for r in ours if r["resourceType"] == "CodeSystem"]
    return [*ours, *definitions(codesystems)]


#: What ``load`` writes to a server, in this order: a definition before what uses it. The
#: ImplementationGuide describes the package and stays out of the server.
LOAD_ORDER = ("CodeSystem", "ValueSet", "StructureDefinition", "Questionnaire")


def loadable(resources: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The resources ``load`` puts into a server, definitions first."""
    wanted = [r for r in resources if r.get("resourceType") in LOAD_ORDER]
    return sorted(wanted, key=lambda r: LOAD_ORDER.index(str(r["resourceType"])))


def implementation_guide(resources: Iterable[Mapping[str, Any]]) -> Json:
    """The ImplementationGuide resource that lists every resource of the package."""
    listed = [
        {
            "reference": {"reference": f"{r['resourceType']}/{r['id']}"},
            "name": str(r.get("title") or r.get("name") or r["id"]),
            "exampleBoolean": False,
        }
        for r in resources
    ]
    return {
        "resourceType": "ImplementationGuide",
        "id": IG_ID,
        "url": f"{BASE}/ImplementationGuide/{IG_ID}",
        "version": PACKAGE_VERSION,
        "name": "AttachFhirInstruments",
        "title": "attach-fhir attachment instruments",
        "status": "active",
        "publisher": PUBLISHER,
        "description": (
            "Published attachment instruments as SDC Questionnaires with their scoring, and the "
            "CodeSystems, ValueSets and extension definitions they use."
        ),
        "packageId": PACKAGE_NAME,
        "license": LICENSE,
        "fhirVersion": [FHIR_VERSION],
        "dependsOn": [
            {
                "uri": "http://hl7.org/fhir/uv/sdc/ImplementationGuide/hl7.fhir.uv.sdc",
                "packageId": SDC_PACKAGE[0],
                "version": SDC_PACKAGE[1],
            }
        ],
        "definition": {"resource": listed},
    }


def manifest() -> Json:
    """``package/package.json``."""
    return {
        "name": PACKAGE_NAME,
        "version": PACKAGE_VERSION,
        "canonical": BASE,
        "url": BASE,
        "title": "attach-fhir attachment instruments",
        "description": (
            "Attachment instruments (ECR-R, ECR-RS, ECR, RQ, PRFQ) as FHIR R4 SDC Questionnaires "
            "with their CodeSystems, ValueSets and extension definitions."
        ),
        "fhirVersions": [FHIR_VERSION],
        "dependencies": dict(DEPENDENCIES),
        "type": "fhir.ig",
        "author": PUBLISHER,
        "license": LICENSE,
    }


def file_name(resource: Mapping[str, Any]) -> str:
    """The file of a resource inside ``package/``: ``Type-id.json``."""
    return f"{resource['resourceType']}-{resource['id']}.json"


def index(resources: Iterable[Mapping[str, Any]]) -> Json:
    """``package/.index.json``: one entry per resource file."""
    files = []
    for r in resources:
        entry = {"filename": file_name(r), "resourceType": r["resourceType"]}
        entry.update({k: r[k] for k in INDEX_KEYS if isinstance(r.get(k), str)})
        files.append(entry)
    return {"index-version": 1, "files": files}


def _dump(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def package_files(library_files: Mapping[str, Mapping[str, Any]]) -> dict[str, bytes]:
    """Every file of the package, ``package/...`` -> content."""
    resources = package_resources(library_files)
    resources.append(implementation_guide(resources))
    out = {
        "package/package.json": _dump(manifest()),
        "package/.index.json": _dump(index(resources)),
    }
    out.update({f"package/{file_name(r)}": _dump(r) for r in resources})
    return out


def tarball(files: Mapping[str, bytes]) -> bytes:
    """The files as a gzipped tar, byte-for-byte the same for the same files (mtime 0)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return gzip.compress(raw.getvalue(), mtime=0)


def tarball_name() -> str:
    """The conventional name of the package's ``.tgz``."""
    return f"{PACKAGE_NAME}-{PACKAGE_VERSION}.tgz"


def read_tarball(data: bytes) -> dict[str, bytes]:
    """The files of a package ``.tgz`` (regular files only), name -> content."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                out[member.name] = handle.read()
    return out


# --- canonical references ----------------------------------------------------------------------

#: Keys whose value is a canonical URL (or a list of them) wherever they occur.
CANONICAL_KEYS = frozenset(
    {"profile", "targetProfile", "valueSet", "answerValueSet", "baseDefinition", "derivedFrom"}
)


def canonical_references(resource: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(path, canonical) of every canonical reference in a resource: extension URLs, profiles,
    bindings, code systems of Codings and ValueSet includes, base definitions, IG dependencies."""
    yield from _walk(resource, str(resource.get("resourceType", "")), top=True)


def _walk(node: Any, path: str, *, top: bool = False) -> Iterator[tuple[str, str]]:
    if isinstance(node, list):
        for n, item in enumerate(node):
            yield from _walk(item, f"{path}[{n}]")
        return
    if not isinstance(node, Mapping):
        return
    for key in ("extension", "modifierExtension"):
        for n, ext in enumerate(node.get(key) or []):
            if isinstance(ext, Mapping) and isinstance(ext.get("url"), str):
                yield f"{path}.{key}[{n}].url", ext["url"]
    # A Coding, a Quantity or a ValueSet include names its code system by ``system``; an
    # Identifier's ``system`` is a namespace, not a resource: it has a value and no code.
    if isinstance(node.get("system"), str) and ("code" in node or "value" not in node):
        yield f"{path}.system", node["system"]
    for n, dependency in enumerate(node.get("dependsOn") or [] if top else []):
        if isinstance(dependency, Mapping) and isinstance(dependency.get("uri"), str):
            yield f"{path}.dependsOn[{n}].uri", dependency["uri"]
    for key, value in node.items():
        if key in CANONICAL_KEYS:
            for n, v in enumerate(value if isinstance(value, list) else [value]):
                if isinstance(v, str):
                    yield f"{path}.{key}" + (f"[{n}]" if isinstance(value, list) else ""), v
        if isinstance(value, (Mapping, list)):
            yield from _walk(value, f"{path}.{key}")


def unresolved(resources: Iterable[Mapping[str, Any]]) -> list[str]:
    """``path: canonical`` of every reference that resolves neither to a resource among
    ``resources`` (``url`` or ``url|version``) nor to a listed dependency canonical; literal IG
    references (``Type/id``) must name a resource among them."""
    listed = list(resources)
    known = {(r.get("url"), None) for r in listed} | {
        (r.get("url"), r.get("version")) for r in listed
    }
    literal = {f"{r.get('resourceType')}/{r.get('id')}" for r in listed}
    outside = R4_CORE_CANONICALS | SDC_CANONICALS | EXTERNAL_SYSTEMS
    problems = []
    for resource in listed:
        where = f"{resource.get('resourceType')}/{resource.get('id')}"
        for path, canonical in canonical_references(resource):
            url, _, version = canonical.partition("|")
            if (url, version or None) not in known and url not in outside:
                problems.append(f"{where} {path}: {canonical}")
        if resource.get("resourceType") == "ImplementationGuide":
            for entry in resource.get("definition", {}).get("resource", []):
                ref = entry.get("reference", {}).get("reference")
                if ref not in literal:
                    problems.append(f"{where} definition.resource: {ref}")
    return problems
