"""The reader's remembered verdicts: a resource met again reads exactly as it did the first
time, when every part was checked against the models.

Each case reads a value twice: once with the memo emptied (the full check, round after round of
the pydantic models) and once more from an equal copy, which must be answered from the memo
(a hit counted) and give the same resource, the same count of dropped parts, and the caller's
JSON untouched.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attach_fhir.fhir_reader import VERDICTS, Reading, read_resource
from ehr_sandbox.seed import build_seed_bundle
from tests.lib.test_fhir_reader import _JSON, _KEYS, _TYPES

QUESTIONNAIRES = Path(__file__).resolve().parents[2] / "questionnaires"
#: Any fixed day: the seed's dates are resolved against it, never against today.
SEED_DAY = dt.date(2024, 3, 10)


def _packaged() -> list[dict[str, Any]]:
    """Every packaged Questionnaire and CodeSystem, and every resource the sandbox seeds."""
    found = [
        json.loads(p.read_text(encoding="utf-8")) for p in sorted(QUESTIONNAIRES.glob("*.json"))
    ]
    found += [e["resource"] for e in build_seed_bundle(SEED_DAY)["entry"]]
    return found


PACKAGED = _packaged()


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def read_twice(raw: Any) -> tuple[Reading, Reading]:
    """(read with nothing remembered, read again from an equal copy), checking that the second
    one was answered from the memo when the first was judged at all."""
    VERDICTS.clear()
    sent = _copy(raw)
    misses = VERDICTS.misses
    first = read_resource(raw)
    judged = VERDICTS.misses - misses
    hits = VERDICTS.hits
    again = read_resource(_copy(raw))
    assert VERDICTS.hits - hits == judged  # a resource judged once is remembered
    assert raw == sent  # the caller's JSON is left as it was, either way
    return first, again


def assert_same(first: Reading, again: Reading) -> None:
    assert again == first
    if first.dropped_parts:  # a pruned copy of its own, not the first one's
        assert again.resource is not first.resource


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_TYPES), st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=5))
def test_any_resource_reads_the_same_from_the_memo(
    resource_type: str, fields: dict[str, Any]
) -> None:
    assert_same(*read_twice({"resourceType": resource_type, **fields}))


@settings(max_examples=100, deadline=None)
@given(_JSON)
def test_any_json_reads_the_same_from_the_memo(raw: Any) -> None:
    assert_same(*read_twice(raw))


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON tree below its root."""
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        if path == () and key == "resourceType":
            continue
        yield (*path, key)
        yield from _paths(child, (*path, key))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_packaged_resource_broken_anywhere_reads_the_same_from_the_memo(
    data: st.DataObject,
) -> None:
    resource = _copy(data.draw(st.sampled_from(PACKAGED)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(_paths(resource))))
        node = resource
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = data.draw(_JSON)
    first, again = read_twice(resource)
    assert_same(first, again)


@pytest.mark.parametrize("raw", PACKAGED, ids=lambda r: f"{r['resourceType']}/{r.get('id')}")
def test_every_packaged_and_seeded_resource_reads_whole_and_the_same_from_the_memo(
    raw: dict[str, Any],
) -> None:
    first, again = read_twice(raw)
    assert first == Reading(raw, 0)  # valid R4: nothing dropped
    assert_same(first, again)


def test_a_different_resource_is_judged_afresh() -> None:
    good = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Example"}]}
    bad = {"resourceType": "Patient", "id": "p1", "name": ["Example"]}
    VERDICTS.clear()
    assert read_resource(good) == Reading(good, 0)
    misses = VERDICTS.misses
    assert read_resource(bad) == Reading({"resourceType": "Patient", "id": "p1"}, 1)
    assert VERDICTS.misses == misses + 1
    # 2 and "2" print alike but are different JSON, and a code must be a string
    assert read_resource({"resourceType": "Patient", "gender": "2"}).dropped_parts == 0
    assert read_resource({"resourceType": "Patient", "gender": 2}).dropped_parts == 1
