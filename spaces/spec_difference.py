"""Where two space descriptions (`Space.to_spec()`) differ, named as the user wrote the space: what a journal, an
export, a comparison or a saved predictor says when it refuses another space."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def first_difference(a: Any, b: Any, path: tuple[str, ...] = ()) -> tuple[tuple[str, ...] | None, Any, Any]:
    """The path to the first place two JSON values differ, and the values there; (None, a, b) when equal."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return path + (str(key),), a.get(key, "<absent>"), b.get(key, "<absent>")
            found = first_difference(a[key], b[key], path + (str(key),))
            if found[0] is not None:
                return found
        return None, a, b
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, path + (str(i),))
            if found[0] is not None:
                return found
        return None, a, b
    return (None, a, b) if a == b else (path, a, b)


def space_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(field, old value, new value) of the first place two space specs (`Space.to_spec()`) differ, as a message
    reads them ("choice [4, 8]", then "[4, 8, 16]"), or None when they agree."""
    where = first_difference(old, new)[0]
    if where is None:
        return None
    field, attribute = space_path(where)
    what = f"{attribute[-1]} " if attribute and attribute[-1] in _SPEC_KEYS else ""
    return field, f"{what}{_at(old, attribute)!r}", repr(_at(new, attribute))


_SPEC_KEYS = ("choice", "ordered", "integer", "subset", "repeat", "if", "type")


def space_path(path: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """A `Space.to_spec()` difference as the user wrote the space: ("field blocks.k", the spec path of the
    differing node's attribute, e.g. (..., "k", "choice"))."""
    names: list[str] = []
    for i, part in enumerate(path):
        if part in _SPEC_KEYS:
            return ("field " + ".".join(names) if names else "its top level"), tuple(path[:i + 1])
        if part not in ("fields", "block", "then"):
            names.append(part)
    return ("field " + ".".join(names) if names else "its top level"), tuple(path)


def _at(value: Any, path: Sequence[str]) -> Any:
    """The part of a JSON value at `path` ("<absent>" where it has none)."""
    for part in path:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return "<absent>"
    return value
