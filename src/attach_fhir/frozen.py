"""Objects declared unchanging, and what is derived from them computed once.

The packaged library's Questionnaires are loaded once per process and never changed; what the
app derives from them on every request (a scoring model, a form's items) can then be computed
once. Only objects passed to :func:`freeze` are memoised, by identity (the object is kept, so its
id cannot be reused); anything else, e.g. an EHR's copy parsed from a response, is computed every
time, so a caller that changes its own dict never sees a stale result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_FROZEN: dict[int, tuple[object, dict[str, Any]]] = {}
_GUARD = threading.Lock()


def freeze(obj: object) -> None:
    """Declare that ``obj`` will never change (so values derived from it may be kept)."""
    with _GUARD:
        _FROZEN.setdefault(id(obj), (obj, {}))


def is_frozen(obj: object) -> bool:
    """True when ``obj`` itself (not an equal copy) was declared unchanging."""
    entry = _FROZEN.get(id(obj))
    return entry is not None and entry[0] is obj


def derived(obj: object, name: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per frozen ``obj`` and ``name``; for any other object every time."""
    entry = _FROZEN.get(id(obj))
    if entry is None or entry[0] is not obj:
        return compute()
    memo = entry[1]
    if name not in memo:
        value = compute()  # outside the lock: two threads may both compute, one value is kept
        with _GUARD:
            memo.setdefault(name, value)
    found: T = memo[name]
    return found
