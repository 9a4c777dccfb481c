"""The nodes of a search space: leaf decisions (Choice, Integer) and Conditional fields (`Repeat`, which
holds a `Space`, lives in `nas.spaces.space`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from nas.errors import InvalidArchitectureError, SpaceDefinitionError

Scalar = Union[str, int, float, bool]


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclass(frozen=True, init=False)
class Choice:
    """A categorical or ordinal decision among a fixed list of JSON scalars.

    `ordered` defaults to True when every option is a number (kernel sizes, widths), so that
    neighbourhoods and encodings can use the order; pass it explicitly to override.
    """

    options: tuple[Scalar, ...]
    ordered: bool

    def __init__(self, options: Sequence[Scalar], ordered: bool | None = None) -> None:
        opts = tuple(options) if isinstance(options, (list, tuple, range)) else None
        object.__setattr__(self, "options", opts if opts is not None else options)
        if ordered is None:
            ordered = bool(opts) and all(_is_number(o) for o in opts)
        object.__setattr__(self, "ordered", ordered)

    def check(self, path: str) -> None:
        if not isinstance(self.options, tuple):
            raise SpaceDefinitionError(f"{path}: Choice options must be a list, got {self.options!r}")
        if not self.options:
            raise SpaceDefinitionError(f"{path}: Choice has no options (an empty choice is not a space)")
        for o in self.options:
            if not isinstance(o, (str, int, float, bool)) or (isinstance(o, float) and not math.isfinite(o)):
                raise SpaceDefinitionError(f"{path}: Choice option {o!r} is not a JSON scalar (str, int, finite float, bool)")
        seen: list[Scalar] = []
        for o in self.options:
            if any(o == s and type(o) is type(s) for s in seen):
                raise SpaceDefinitionError(f"{path}: Choice option {o!r} appears twice")
            seen.append(o)

    @property
    def cardinality(self) -> int:
        return len(self.options)

    def value(self, index: int) -> Scalar:
        return self.options[index]

    def index(self, value: Any, path: str) -> int:
        for i, o in enumerate(self.options):
            if isinstance(o, bool) or isinstance(value, bool):
                if isinstance(o, bool) and isinstance(value, bool) and o is value:
                    return i
            elif o == value and (_is_number(o) == _is_number(value)):
                return i
        raise InvalidArchitectureError(path, f"{value!r} is not one of {list(self.options)}")

    def adjacent(self, index: int) -> list[int]:
        """Indices one step away: every other option (categorical choices have no order to walk)."""
        return [i for i in range(self.cardinality) if i != index]


@dataclass(frozen=True)
class Integer:
    """An integer range low..high (inclusive) in steps of `step`; ordered."""

    low: int
    high: int
    step: int = 1
    ordered: bool = field(default=True, init=False)

    def check(self, path: str) -> None:
        for name in ("low", "high", "step"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise SpaceDefinitionError(f"{path}: Integer {name} must be an int, got {v!r}")
        if self.step <= 0:
            raise SpaceDefinitionError(f"{path}: Integer step must be positive, got {self.step}")
        if self.high < self.low:
            raise SpaceDefinitionError(f"{path}: Integer range is empty (low={self.low} > high={self.high})")

    @property
    def cardinality(self) -> int:
        return (self.high - self.low) // self.step + 1

    @property
    def options(self) -> range:
        return range(self.low, self.high + 1, self.step)

    def value(self, index: int) -> int:
        return self.low + index * self.step

    def index(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not _is_number(value) or value != int(value):
            raise InvalidArchitectureError(path, f"{value!r} is not an integer")
        v = int(value)
        if not self.low <= v <= self.high or (v - self.low) % self.step:
            raise InvalidArchitectureError(path, f"{v} is outside {self.low}..{self.high} (step {self.step})")
        return (v - self.low) // self.step

    def adjacent(self, index: int) -> list[int]:
        """Indices one step away in the range (large ranges make an all-values neighbourhood useless)."""
        return [i for i in (index - 1, index + 1) if 0 <= i < self.cardinality]


Leaf = Union[Choice, Integer]


@dataclass(frozen=True, init=False)
class Conditional:
    """A field present only while sibling leaf `on` takes one of `values` (absent otherwise)."""

    on: str
    values: tuple[Scalar, ...]
    node: Any

    def __init__(self, on: str, values: Sequence[Scalar] | Scalar, node: Any) -> None:
        vals = tuple(values) if isinstance(values, (list, tuple)) else (values,)
        object.__setattr__(self, "on", on)
        object.__setattr__(self, "values", vals)
        object.__setattr__(self, "node", node)

    def active(self, controller_value: Any) -> bool:
        return any(controller_value == v and type(controller_value) is type(v) or
                   (_is_number(controller_value) and _is_number(v) and controller_value == v)
                   for v in self.values)
