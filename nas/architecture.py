"""Immutable, hashable architectures with a stable id (hash of canonical JSON)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces: the form ids are computed from."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _freeze(value: Any) -> Any:
    """Mappings as FrozenDicts, lists as tuples, numpy scalars as their Python twins (what JSON and ids take;
    `nas.jsonio.python_scalar` does the same, but the import-linter layers keep that sibling module out of reach)."""
    if isinstance(value, Mapping):
        return FrozenDict(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


class FrozenDict(Mapping[str, Any]):
    """A read-only mapping; nested mappings and lists are frozen too."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = {str(k): _freeze(v) for k, v in data.items()}
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getstate__(self) -> dict[str, Any]:
        """The slots without the cached hash: a str hash differs between processes (PYTHONHASHSEED), so a copy
        unpickled elsewhere must compute its own."""
        slots = [s for c in type(self).__mro__ for s in getattr(c, "__slots__", ()) if s != "_hash"]
        return {s: getattr(self, s) for s in slots if hasattr(self, s)}

    def __setstate__(self, state: Any) -> None:
        """Restore the slots, dropping a cached hash (pickles written before `__getstate__` carry one, as
        `(None, slots)`)."""
        slots = state[1] if isinstance(state, tuple) else state
        for name, value in (slots or {}).items():
            if name != "_hash":
                setattr(self, name, value)
        self._hash = None

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(canonical_json(self.to_dict()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return _thaw(self) == _thaw(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    def to_dict(self) -> dict[str, Any]:
        """A deep plain copy (dicts and lists), safe to mutate and to dump as JSON."""
        return _thaw(self)


class Architecture(FrozenDict):
    """One point of a search space. Equality and hashing go by `id`."""

    __slots__ = ("id",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.id = hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:16]

    def __hash__(self) -> int:
        return hash(self.id)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Architecture):
            return self.id == other.id
        return super().__eq__(other)

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        return cls(json.loads(text))


def as_sequence(value: Any) -> Sequence[Any] | None:
    """The value as a list-like, or None when it is not one (strings are not)."""
    if isinstance(value, (list, tuple)):
        return value
    return None
