"""Reading what an EHR sends: keep what parses as FHIR R4, drop what does not, count the drops.

An EHR's JSON is data from outside. A ``name`` that is a list of strings, a Bundle entry that is
not an object or an Observation ``code`` that is a string would otherwise reach code that reads
FHIR-shaped values and fail there. Each resource is checked against the pinned models
(:mod:`attach_fhir.fhir_models`); where a part does not parse, the smallest enclosing list
element (or top-level field) is dropped and counted, and the rest is checked again. A top-level
field the spec requires may be absent (readers treat every field as optional); a list element
missing one is dropped. A resource that breaks a rule about the whole of it (two ``value[x]``)
cannot be read at all. What is kept is the EHR's own JSON,
not a re-serialisation, so everything downstream sees the values the server sent.

Pure functions of their inputs: nothing here does IO or logs record data. Checking a resource
against the models takes milliseconds (a 36-item QuestionnaireResponse is some 90 nested models;
a Questionnaire 10-100 ms), and a launch reads the same Patient, Questionnaire and earlier
responses on page after page, so the verdict on a resource's JSON is remembered (see
:class:`VerdictMemo`): a resource met again is copied and pruned as before, without the models.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from attach_fhir.fhir_models import model_for
from attach_fhir.fhir_url import is_fhir_id
from attach_fhir.writeback import json_copy

Json = dict[str, Any]
#: Rounds of "drop what failed, check again" before a resource is given up as unreadable.
_MAX_ROUNDS = 8
#: Verdicts remembered: each is a digest and the paths dropped (field names and positions, no
#: values), so a few thousand weigh well under a megabyte.
_MEMO_ENTRIES = 4096


@dataclass(frozen=True)
class Reading:
    """One resource as read: the parts that parse (None when nothing usable did) and how many
    parts were dropped."""

    resource: Json | None
    dropped_parts: int = 0


@dataclass(frozen=True)
class Matches:
    """The match resources of a searchset page that could be read, and how many could not."""

    readings: tuple[Reading, ...]
    unreadable: int = 0

    @property
    def resources(self) -> list[Json]:
        """The readable resources."""
        return [r.resource for r in self.readings if r.resource is not None]


def read_resource(raw: Any) -> Reading:
    """``raw`` with every part that does not parse as FHIR R4 dropped (a copy; ``raw`` itself
    when nothing is); None if it is not a resource of a known type, or breaks a rule about the
    whole resource."""
    if not isinstance(raw, dict):
        return Reading(None)
    model = model_for(raw.get("resourceType"))
    if model is None:
        return Reading(None)
    key = _digest(raw)
    verdict = VERDICTS.get(key) if key is not None else None
    if verdict is None:
        pruned = json_copy(raw)  # pruned in place: the caller's JSON is left as it was
        verdict = _judge(model, pruned)
        if key is not None:
            VERDICTS.put(key, verdict)
    elif verdict.rounds:
        pruned = json_copy(raw)
        for paths in verdict.rounds:  # the same drops, in the same order, on an equal copy
            _prune(pruned, list(paths))
    if verdict.rounds is None:
        return Reading(None)
    if not verdict.rounds:
        # Nothing dropped: the EHR's JSON as it came (copying a Questionnaire would cost as
        # much as recognising it).
        return Reading(raw)
    return Reading(pruned, verdict.dropped)


@dataclass(frozen=True)
class _Verdict:
    """What reading one resource's JSON came to: the paths dropped, round by round (None when
    it cannot be read at all), and how many parts that was."""

    rounds: tuple[tuple[tuple[Any, ...], ...], ...] | None
    dropped: int = 0


def _judge(model: Any, resource: Json) -> _Verdict:
    """Check ``resource`` against ``model``, dropping what fails (in place) until it parses."""
    rounds: list[tuple[tuple[Any, ...], ...]] = []
    dropped = 0
    for _ in range(_MAX_ROUNDS):
        try:
            model.model_validate(resource)
        except ValidationError as exc:
            errors = [e for e in exc.errors(include_url=False) if not _absent_field(e)]
            if not errors:
                return _Verdict(tuple(rounds), dropped)
            paths = _prunable(resource, errors)
            if paths is None:
                return _Verdict(None)
            dropped += _prune(resource, paths)
            rounds.append(tuple(paths))
            continue
        return _Verdict(tuple(rounds), dropped)
    return _Verdict(None)


def _digest(raw: Json) -> bytes | None:
    """A digest of the exact JSON (key order, and ``1`` apart from ``1.0`` and ``true``), or
    None for a value JSON cannot hold: that one is judged every time."""
    try:
        text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=32).digest()


class VerdictMemo:
    """The last ``size`` verdicts by digest (thread-safe). Whether a resource can be read
    depends on its JSON alone (the models have no rule reaching outside it), so a verdict holds
    for every later copy of the same JSON, whoever reads it; only the digest is kept, no value
    from the record."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Verdict] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: bytes) -> _Verdict | None:
        """The verdict on this digest, if remembered."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(key)
            return found

    def put(self, key: bytes, verdict: _Verdict) -> None:
        """Remember a verdict, forgetting the least recently used beyond the bound."""
        with self._lock:
            self._entries[key] = verdict
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every verdict (the bench's cold figures, the tests' misses)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


VERDICTS = VerdictMemo(_MEMO_ENTRIES)


def search_matches(bundle: Any) -> Matches:
    """The readable ``match`` resources (each with a FHIR id) of a searchset page; entries that
    are not objects, and resources that cannot be read, are counted as unreadable."""
    kept: list[Reading] = []
    unreadable = 0
    for entry in _list(bundle.get("entry") if isinstance(bundle, dict) else None):
        if not isinstance(entry, dict):
            unreadable += 1
            continue
        search = entry.get("search")
        mode = search.get("mode", "match") if isinstance(search, dict) else "match"
        if mode != "match":
            continue  # an include or an OperationOutcome about the search, not a result
        reading = read_resource(entry.get("resource"))
        if reading.resource is None or not is_fhir_id(reading.resource.get("id")):
            unreadable += 1
            continue
        kept.append(reading)
    return Matches(tuple(kept), unreadable)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _absent_field(error: Mapping[str, Any]) -> bool:
    """A top-level field the FHIR spec requires is absent: the resource says less, but what it
    says parses (consumers read every field as optional)."""
    return str(error.get("type", "")).endswith("missing") and len(error.get("loc") or ()) == 1


def _prunable(resource: Json, errors: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]] | None:
    """The parts to drop for these errors, or None when one of them cannot be dropped."""
    paths: set[tuple[Any, ...]] = set()
    for error in errors:
        path = _part_of(tuple(error.get("loc") or ()))
        if path is None or not _exists(resource, path):
            return None  # a rule about the whole resource, or a name the JSON does not use
        paths.add(path)
    return sorted(paths, key=_deepest_last_index_first) or None


def _part_of(loc: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The droppable part enclosing an error: up to its deepest list index, else the
    top-level field; None for an error about the resource as a whole."""
    indexes = [n for n, step in enumerate(loc) if isinstance(step, int)]
    if indexes:
        return loc[: indexes[-1] + 1]
    return loc[:1] if loc and isinstance(loc[0], str) and loc[0] != "resourceType" else None


def _deepest_last_index_first(path: tuple[Any, ...]) -> tuple[Any, ...]:
    # Dropping list elements from the end keeps the indexes of the others valid.
    return tuple((0, -step) if isinstance(step, int) else (1, step) for step in path)


def _exists(resource: Json, path: tuple[Any, ...]) -> bool:
    node: Any = resource
    for step in path:
        if isinstance(step, int) and isinstance(node, list) and 0 <= step < len(node):
            node = node[step]
        elif isinstance(step, str) and isinstance(node, dict) and step in node:
            node = node[step]
        else:
            return False
    return True


def _prune(resource: Json, paths: list[tuple[Any, ...]]) -> int:
    """Drop each part (deepest, highest index first); how many were dropped."""
    dropped = 0
    for path in _outermost(paths):
        if not _exists(resource, path):
            continue
        nodes: list[Any] = [resource]
        for step in path[:-1]:
            nodes.append(nodes[-1][step])
        del nodes[-1][path[-1]]
        dropped += 1
        # FHIR has no empty arrays: a list emptied here goes with its field.
        if len(path) >= 2 and nodes[-1] == [] and isinstance(path[-2], str):
            del nodes[-2][path[-2]]
    return dropped


def _outermost(paths: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """The paths not inside another one being dropped (that one takes them with it)."""
    for path in paths:
        if not any(other != path and path[: len(other)] == other for other in paths):
            yield path
