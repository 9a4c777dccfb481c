"""The nodes of a search space: leaf decisions (Choice, Integer, Subset) and Conditional fields (`Repeat`, which
holds a `Space`, lives in `nas.spaces.space`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from nas.errors import InvalidArchitectureError, SpaceDefinitionError
from nas.jsonio import python_scalar

Scalar = Union[str, int, float, bool]


def is_number(x: Any) -> bool:
    """An int or float, numpy's included (values read from a DataFrame or an array); not a bool."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _option_key(x: Any) -> tuple[int, Any]:
    """What `Choice.index` matches on: a bool equals only the same bool, a number any equal number."""
    x = python_scalar(x)
    return (0, x) if isinstance(x, bool) else (1, x) if is_number(x) else (2, x)


def _listed(values: Any) -> Any:
    """An array-like (a numpy array; a pandas Series, Index or column's `.unique()`, which under pandas 3 is an
    ExtensionArray for strings) as a list, since what is read from a DataFrame means its Python twin; else as it is."""
    if isinstance(values, (str, bytes, np.generic)) or not hasattr(values, "tolist"):
        return values
    return values.tolist()


def _monotone(numbers: Sequence[Any]) -> bool:
    pairs = list(zip(numbers, numbers[1:]))
    return all(a < b for a, b in pairs) or all(a > b for a, b in pairs)


@dataclass(frozen=True, init=False)
class Choice:
    """A categorical or ordinal decision among a fixed list of JSON scalars.

    `ordered` defaults to True when every option is a number and the list runs one way (kernel sizes, widths,
    learning rates high to low), so that neighbourhoods and encodings can use the order; numbers out of order
    (`[64, 32, 128]`) are categorical by default, since the list order is the order those would use. Pass it
    explicitly to override.
    """

    options: tuple[Scalar, ...]
    ordered: bool

    def __init__(self, options: Sequence[Scalar], ordered: bool | None = None) -> None:
        options = _listed(options)
        # numpy scalars become Python scalars (np.int64 and np.float64 alike; ids and specs are unchanged)
        opts = tuple(python_scalar(o) for o in options) if isinstance(options, (list, tuple, range)) else None
        object.__setattr__(self, "options", opts if opts is not None else options)
        if ordered is None:
            ordered = bool(opts) and all(is_number(o) for o in opts) and _monotone(opts)
        object.__setattr__(self, "ordered", python_scalar(ordered))

    def check(self, path: str) -> None:
        if not isinstance(self.options, tuple):
            raise SpaceDefinitionError(f"{path}: Choice options must be a list, got {self.options!r}")
        if not isinstance(self.ordered, bool):
            raise SpaceDefinitionError(f"{path}: Choice ordered must be True or False (or left out), "
                                       f"got {self.ordered!r}")
        if not self.options:
            raise SpaceDefinitionError(f"{path}: Choice has no options (an empty choice is not a space)")
        for o in self.options:
            if not isinstance(o, (str, int, float, bool)) or (isinstance(o, float) and not math.isfinite(o)):
                raise SpaceDefinitionError(f"{path}: Choice option {o!r} is not a JSON scalar (str, int, finite float, bool)")
        seen: list[Scalar] = []
        for o in self.options:
            same = [s for s in seen if _option_key(o) == _option_key(s)]  # 1 and 1.0 are one option to `index`
            if same:
                raise SpaceDefinitionError(f"{path}: Choice option {o!r} appears twice"
                                           + ("" if type(same[0]) is type(o) else f" (as {same[0]!r})"))
            seen.append(o)

    @property
    def cardinality(self) -> int:
        return len(self.options)

    def value(self, index: int) -> Scalar:
        return self.options[index]

    def index(self, value: Any, path: str) -> int:
        """The option's position: booleans match only booleans, numbers only numbers (1 == 1.0), so an
        encoding never confuses True with 1. A dict built on first use makes this O(1) (encodings call it
        once per decision per architecture)."""
        lookup = self.__dict__.get("_lookup")
        if lookup is None:
            lookup = {}
            for i, o in enumerate(self.options):
                lookup.setdefault(_option_key(o), i)
            object.__setattr__(self, "_lookup", lookup)  # a cache, not a field: equality and specs ignore it
        try:
            return lookup[_option_key(value)]
        except (KeyError, TypeError):  # TypeError: an unhashable value (a list where a scalar belongs)
            raise InvalidArchitectureError(path, f"{value!r} is not one of {list(self.options)}") from None

    def adjacent(self, index: int) -> list[int]:
        """Indices one step away: every other option (categorical choices have no order to walk)."""
        return [i for i in range(self.cardinality) if i != index]


INT64 = 2 ** 63
MAX_INTEGER_VALUES = 2 ** 53  # an Integer's values: the fixed-length encodings hold indices as float64
WIDE_ORDINAL = 32
"""An ordered decision with more options than this is wide: one scaled column in `Space.to_features` instead of a
one-hot block, and (an `Integer`) neighbours 1, 2, 4, ... steps away instead of 1."""


@dataclass(frozen=True)
class Integer:
    """An integer range low..high (inclusive) in steps of `step`; ordered. `high` must be a value of the range
    (Integer(0, 10, step=3) is refused: high=9), low and high fit int64, and at most 2**53 values."""

    low: int
    high: int
    step: int = 1
    ordered: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        for name in ("low", "high", "step"):  # numpy ints (read from an array) as Python ints
            v = getattr(self, name)
            if isinstance(v, np.integer):
                object.__setattr__(self, name, int(v))

    def check(self, path: str) -> None:
        for name in ("low", "high", "step"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise SpaceDefinitionError(f"{path}: Integer {name} must be an int, got {v!r}")
        if self.step <= 0:
            raise SpaceDefinitionError(f"{path}: Integer step must be positive, got {self.step}")
        if self.high < self.low:
            raise SpaceDefinitionError(f"{path}: Integer range is empty (low={self.low} > high={self.high})")
        if (self.high - self.low) % self.step:
            top = self.low + (self.high - self.low) // self.step * self.step
            raise SpaceDefinitionError(f"{path}: Integer high={self.high} is not reached in steps of {self.step} "
                                       f"from low={self.low} (the last value would be {top}); use high={top}")
        for name in ("low", "high"):
            if not -INT64 <= getattr(self, name) < INT64:
                raise SpaceDefinitionError(f"{path}: Integer {name}={getattr(self, name)} is outside the int64 range "
                                           "(samplers and encodings hold values as 64-bit numbers)")
        if self.cardinality > MAX_INTEGER_VALUES:
            raise SpaceDefinitionError(f"{path}: Integer {self.low}..{self.high} (step {self.step}) has "
                                       f"{self.cardinality} values, more than 2**53 (encodings hold a value's index as "
                                       "a float64, exact only up to 2**53): use a larger step or a narrower range")

    @property
    def cardinality(self) -> int:
        return (self.high - self.low) // self.step + 1

    @property
    def options(self) -> range:
        return range(self.low, self.high + 1, self.step)

    def value(self, index: int) -> int:
        return self.low + index * self.step

    def index(self, value: Any, path: str) -> int:
        if (isinstance(value, (bool, np.bool_)) or not is_number(value)
                or (isinstance(value, (float, np.floating)) and not math.isfinite(value)) or value != int(value)):
            raise InvalidArchitectureError(path, f"{value!r} is not an integer")
        v = int(value)
        if not self.low <= v <= self.high or (v - self.low) % self.step:
            raise InvalidArchitectureError(path, f"{v} is outside {self.low}..{self.high} (step {self.step})")
        return (v - self.low) // self.step

    def adjacent(self, index: int) -> list[int]:
        """Indices one step away in the range (large ranges make an all-values neighbourhood useless); in a range
        of more than `WIDE_ORDINAL` values also 2, 4, 8, ... steps away, so a local search crosses it in a few moves."""
        if self.cardinality <= WIDE_ORDINAL:
            return [i for i in (index - 1, index + 1) if 0 <= i < self.cardinality]
        steps = [2 ** k for k in range(self.cardinality.bit_length())]
        return [i for d in steps for i in (index - d, index + d) if 0 <= i < self.cardinality]


Item = Union[int, str]


@dataclass(frozen=True, init=False, repr=False)
class Subset:
    """`k` distinct items out of `items` (T of them), listed in the items' order: which of T diffusion time
    steps a sampler keeps, which layers a model skips. `Subset(n=1000, k=10)` (items 0..999) or
    `Subset(range(0, 1000, 10), k=10)`; items are ints in increasing order (stored as a `range` when evenly
    spaced) or distinct strings (their given order is the order).

    A value is a list of `k` items in that order, e.g. `[0, 120, 250, ...]`; there are `math.comb(T, k)`
    values, sampled uniformly. In the fixed-length encodings a Subset is its T-bit mask (`SubsetBit` slots,
    see `Space.slots`); mutation, crossover and neighbours keep values sorted, distinct and of length `k`.
    """

    items: Union[range, tuple[Item, ...]]
    k: int

    def __init__(self, items: Sequence[Item] | range | None = None, k: int | None = None, *,
                 n: int | None = None) -> None:
        n, k = python_scalar(n), python_scalar(k)  # numpy ints (read from an array) as Python ints
        problem = None  # raised by `check`, which knows the field's path
        if (items is None) == (n is None):
            problem = ("Subset takes its items (a list or range) or n= (items 0..n-1), one of them: "
                       f"got items={items!r}, n={n!r}")
        elif n is not None:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                problem = f"Subset n must be a positive int (the number of items), got {n!r}"
            else:
                items = range(n)
        elif isinstance(_listed(items), (list, tuple)):  # numpy and pandas arrays too
            items = _as_range(tuple(int(x) if isinstance(x, np.integer) else str(x) if isinstance(x, str) else x
                                    for x in _listed(items)))
        object.__setattr__(self, "items", items if problem is None else ())
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "_problem", problem)  # not a field: equality and specs ignore it

    def check(self, path: str) -> None:
        problem = self.__dict__.get("_problem")  # absent from a Subset pickled before it existed
        if problem is not None:
            raise SpaceDefinitionError(f"{path}: {problem}")
        items = self.items
        if isinstance(items, range):
            if items.step < 0:
                raise SpaceDefinitionError(f"{path}: Subset items must increase, got {items!r}")
        elif not isinstance(items, tuple):
            hint = f" (use n={items} for the items 0..{items - 1})" if isinstance(items, int) else ""
            raise SpaceDefinitionError(f"{path}: Subset items must be a list or range, got {items!r}{hint}")
        if not items:
            raise SpaceDefinitionError(f"{path}: Subset has no items to choose from")
        if isinstance(items, tuple):
            if all(isinstance(x, str) for x in items):
                seen: set[str] = set()
                for x in items:
                    if x in seen:
                        raise SpaceDefinitionError(f"{path}: Subset item {x!r} appears twice")
                    seen.add(x)
            elif all(isinstance(x, int) and not isinstance(x, bool) for x in items):
                for a, b in zip(items, items[1:]):
                    if b <= a:
                        raise SpaceDefinitionError(f"{path}: Subset int items must strictly increase; {b} follows {a}")
            else:
                kind = str if isinstance(items[0], str) else int
                bad = next(x for x in items if isinstance(x, bool) or not isinstance(x, kind))
                raise SpaceDefinitionError(f"{path}: Subset items must be all ints or all strings, got {bad!r} "
                                           f"among {_short(items)}")
        k = self.k
        if isinstance(k, bool) or not isinstance(k, int):
            raise SpaceDefinitionError(f"{path}: Subset k (how many items to keep) must be an int, got {k!r}")
        if not 0 <= k <= len(items):
            raise SpaceDefinitionError(f"{path}: Subset k={k} is outside 0..{len(items)} (the number of items)")

    # ------------------------------------------------------------------ counting and values
    @property
    def n(self) -> int:
        """T, the number of items to choose from."""
        return len(self.items)

    @property
    def cardinality(self) -> int:
        """The number of distinct values, C(T, k) (an exact int: C(1000, 10) has 24 digits)."""
        return math.comb(len(self.items), self.k)

    def position(self, item: Any) -> int | None:
        """Where `item` stands among the items, or None when it is not one."""
        items = self.items
        if type(item) is not int and type(item) is not str:
            item = python_scalar(item)  # np.int64 -> int, np.str_ -> str (np.bool_ -> bool, refused below)
            if type(item) is not int and type(item) is not str:
                return None  # bools, floats, None, lists...
        if isinstance(items, range):
            if type(item) is not int:
                return None
            q, r = divmod(item - items.start, items.step)
            return q if r == 0 and 0 <= q < len(items) else None
        pos = self.__dict__.get("_pos")
        if pos is None:
            pos = {x: i for i, x in enumerate(self.items)}
            object.__setattr__(self, "_pos", pos)
        return pos.get(item) if type(item) is type(self.items[0]) else None

    def positions(self, value: Any, path: str) -> list[int]:
        """The sorted item positions of a value, or InvalidArchitectureError naming `path` and the problem."""
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, (list, tuple)):
            raise InvalidArchitectureError(path, f"expected a list of {self.k} distinct items out of {self._what()}, "
                                                 f"got {value!r}")
        out: list[int] = []
        for item in value:
            p = self.position(item)
            if p is None:
                raise InvalidArchitectureError(path, f"item {item!r} is not one of the {self._what()}")
            out.append(p)
        seen: set[int] = set()
        for item, p in zip(value, out):
            if p in seen:
                raise InvalidArchitectureError(path, f"item {item!r} appears twice (the items must be distinct)")
            seen.add(p)
        if len(out) != self.k:
            raise InvalidArchitectureError(path, f"has {len(out)} items but k={self.k} (keep exactly {self.k})")
        for i in range(1, len(out)):
            if out[i] < out[i - 1]:
                fixed = [self.items[p] for p in sorted(out)]
                # int items increase, so their order is the sorted one; string items keep the order they were given
                ints = isinstance(self.items, range) or isinstance(self.items[0], int)
                hint = f"e.g. sorted: {_short(fixed)}" if ints else f"{_short(self.items)}, e.g. {_short(fixed)}"
                raise InvalidArchitectureError(path, f"items out of order: {value[i]!r} comes after {value[i - 1]!r} "
                                                     f"(list them in the order of the items, {hint})")
        return out

    def validate(self, value: Any, path: str) -> list[Item]:
        """The canonical value (a list) of a valid value, or InvalidArchitectureError."""
        return self.value(self.positions(value, path))

    def value(self, positions: Sequence[int]) -> list[Item]:
        """The items at sorted `positions`."""
        return [self.items[int(p)] for p in positions]

    def default(self) -> list[Item]:
        """The first `k` items."""
        return list(self.items[:self.k])

    def sample(self, rng: np.random.Generator) -> list[Item]:
        """A uniformly random value: every one of the C(T, k) subsets equally likely."""
        return self.value(sorted(int(p) for p in rng.choice(len(self.items), size=self.k, replace=False)))

    def __iter__(self) -> Iterator[list[Item]]:
        """Every value, in lexicographic order of positions (small subsets only)."""
        return (list(c) for c in itertools.combinations(self.items, self.k))

    # ------------------------------------------------------------------ encodings
    def mask(self, value: Any, path: str) -> list[int]:
        """The T-bit mask of a value: 1 at the position of every kept item."""
        bits = [0] * len(self.items)
        for p in self.positions(value, path):
            bits[p] = 1
        return bits

    def from_mask(self, bits: Sequence[Any], path: str) -> list[Item]:
        """The value a T-bit mask spells; InvalidArchitectureError unless it is 0/1 with exactly `k` ones."""
        if len(bits) != len(self.items):
            raise InvalidArchitectureError(path, f"mask has {len(bits)} bits, the subset has {len(self.items)} items")
        bad = [b for b in bits if b not in (0, 1)]
        if bad:
            raise InvalidArchitectureError(path, f"mask entry {bad[0]!r} is not 0 or 1")
        kept = [p for p, b in enumerate(bits) if b == 1]
        if len(kept) != self.k:
            raise InvalidArchitectureError(path, f"mask keeps {len(kept)} items but k={self.k}")
        return self.value(kept)

    def top_k(self, scores: Sequence[float]) -> list[Item]:
        """The value keeping the `k` highest-scoring items (ties to the earlier item): how a soft mask, such as
        a predictor's output, decodes to a valid subset."""
        order = sorted(range(len(self.items)), key=lambda p: (-float(scores[p]), p))
        return self.value(sorted(order[:self.k]))

    def describe(self, value: Any, limit: int = 16) -> str:
        """A compact display: every item up to `limit` of them, else the ends and a short hash of the whole."""
        vals = list(value)
        shown = ",".join(map(str, vals)) if len(vals) <= limit else \
            ",".join(map(str, vals[:limit // 2])) + ",…," + ",".join(map(str, vals[-limit // 4:]))
        tail = f"{len(vals)} of {len(self.items)}"
        if len(vals) > limit:
            import hashlib

            tail += ", #" + hashlib.sha256(",".join(map(str, vals)).encode()).hexdigest()[:6]
        return f"[{shown}] ({tail})"

    # ------------------------------------------------------------------ variation
    def mutate(self, value: Any, rng: np.random.Generator, toward: Any = None) -> list[Item]:
        """A different valid value (the same one only when C(T, k) = 1).

        With a different `toward` value (a guide architecture's), one item not in it is replaced by one of
        its items. Otherwise, with probability 1/2, one item moves to a free position between its two
        neighbours (its order is kept); else (or when that item has no room) r items are replaced by unused
        ones, r = 1, 2, 3... with probability 1/2, 1/4, 1/8... (at most min(k, T - k)).
        """
        p = self.positions(value, "")
        size, k = len(self.items), self.k
        if k in (0, size):
            return self.value(p)
        if toward is not None:
            g, kept = set(self.positions(toward, "")), set(p)  # sets built once: O(k), not O(k^2)
            leave, enter = [x for x in p if x not in g], [x for x in sorted(g) if x not in kept]
            if leave:
                out = set(p)
                out.discard(leave[int(rng.integers(len(leave)))])
                out.add(enter[int(rng.integers(len(enter)))])
                return self.value(sorted(out))
        if rng.random() < 0.5:
            i = int(rng.integers(k))
            lo = p[i - 1] + 1 if i > 0 else 0
            hi = p[i + 1] - 1 if i < k - 1 else size - 1
            if hi > lo:  # free positions in lo..hi other than p[i]
                j = lo + int(rng.integers(hi - lo))
                q = list(p)
                q[i] = j + (j >= p[i])
                return self.value(q)
        r = min(int(rng.geometric(0.5)), k, size - k)
        drop = {p[int(i)] for i in rng.choice(k, size=r, replace=False)}
        add = [_nth_unused(p, int(j)) for j in rng.choice(size - k, size=r, replace=False)]
        return self.value(sorted([x for x in p if x not in drop] + add))

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> list[Item]:
        """A child drawn from the union of both parents' items: the items they share, plus the rest drawn
        uniformly from the items only one of them keeps; sorted."""
        pa, pb = set(self.positions(a, "")), set(self.positions(b, ""))
        common, pool = pa & pb, sorted(pa ^ pb)
        need = self.k - len(common)
        picked = [pool[int(i)] for i in rng.choice(len(pool), size=need, replace=False)] if need else []
        return self.value(sorted(common | set(picked)))

    def neighbours(self, value: Any) -> list[list[Item]]:
        """Values one item-move away, at most 4k of them (`moves`, in its order). Each is a copy of the value
        with one item changed (a C-level list copy, not O(k) Python steps per neighbour)."""
        p = self.positions(value, "")
        base, items = self.value(p), self.items
        out = []
        for i, y in self.moves(p):
            q = base.copy()
            q[i] = items[y]
            out.append(q)
        return out

    def moves(self, positions: Sequence[int]) -> list[tuple[int, int]]:
        """The moves of `neighbours` for a value's sorted item `positions`: (i, y), the i-th kept item moved to
        position y, which is the next free position on either side or halfway into the free gap towards its
        neighbour on either side (the item order is kept; the full one-swap neighbourhood, k (T - k) values, is
        too large for T = 1000)."""
        p, size, out = positions, len(self.items), []
        for i, x in enumerate(p):
            lo = p[i - 1] + 1 if i > 0 else 0
            hi = p[i + 1] - 1 if i < len(p) - 1 else size - 1
            seen: set[int] = set()
            for y in (x - 1, (lo + x - 1) // 2, x + 1, (x + 1 + hi) // 2):
                if lo <= y <= hi and y != x and y not in seen:
                    seen.add(y)
                    out.append((i, y))
        return out

    # ------------------------------------------------------------------ description
    def spec(self) -> dict[str, Any]:
        """Plain data for `Space.to_spec` (compact for ranges: no list of 1,000 steps in every journal)."""
        items = self.items
        if isinstance(items, range):
            desc: dict[str, Any] = {"n": len(items)} if items.start == 0 and items.step == 1 else \
                {"range": [items.start, items.stop, items.step]}
        else:
            desc = {"items": list(items)}
        return {"subset": {**desc, "k": self.k}}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], path: str) -> "Subset":
        d = spec.get("subset")
        if not isinstance(d, Mapping) or "k" not in d or sum(key in d for key in ("n", "range", "items")) != 1:
            raise SpaceDefinitionError(f"{path}: a subset description needs k and one of n, range, items; got {d!r}")
        if "n" in d:
            return cls(n=d["n"], k=d["k"])
        if "range" in d:
            return cls(range(*d["range"]), k=d["k"])
        return cls(list(d["items"]), k=d["k"])

    def _what(self) -> str:
        items = self.items
        if isinstance(items, range):
            step = f" step {items.step}" if items.step != 1 else ""
            return f"{len(items)} items {items.start}..{items[-1]}{step}" if items else "0 items"
        return f"{len(items)} items {_short(items)}"

    def __repr__(self) -> str:
        items = self.items
        if isinstance(items, range) and items.start == 0 and items.step == 1:
            return f"Subset(n={len(items)}, k={self.k})"
        return f"Subset({items!r}, k={self.k})" if isinstance(items, range) else f"Subset({_short(items)}, k={self.k})"


@dataclass(frozen=True)
class SubsetBit:
    """One column of a Subset's T-bit mask in the fixed-length encodings (`Space.slots`): 1 when the item at
    `position` is kept. `index(value)` reads the bit from the whole subset value; `value(index)` is the bit
    itself (a Subset is rebuilt from all T bits, never from one)."""

    subset: Subset
    position: int
    ordered: bool = field(default=True, init=False)

    @property
    def cardinality(self) -> int:
        return 2

    @property
    def options(self) -> tuple[int, int]:
        return (0, 1)

    def value(self, index: int) -> int:
        return int(index)

    def index(self, value: Any, path: str) -> int:
        return int(self.position in self.subset.positions(value, path))

    def adjacent(self, index: int) -> list[int]:
        return [1 - index]


def _nth_unused(used: Sequence[int], j: int) -> int:
    """The `j`-th (from 0) non-negative int not in the sorted list `used` (no rejection loop)."""
    v = j
    for u in used:
        if u > v:
            break
        v += 1
    return v


def _as_range(items: tuple[Any, ...]) -> "range | tuple[Any, ...]":
    """Evenly increasing ints as a range (one canonical form: Subset(list(range(9)), k) == Subset(n=9, k))."""
    if not items or not all(isinstance(x, int) and not isinstance(x, bool) for x in items):
        return items
    step = items[1] - items[0] if len(items) > 1 else 1
    if step > 0 and all(b - a == step for a, b in zip(items, items[1:])):
        return range(items[0], items[-1] + step, step)
    return items


def _short(items: Sequence[Any], limit: int = 8) -> str:
    return repr(list(items)) if len(items) <= limit else "[" + ", ".join(map(repr, items[:limit])) + ", ...]"


Leaf = Union[Choice, Integer]


@dataclass(frozen=True, init=False)
class Conditional:
    """A field present only while sibling leaf `on` takes one of `values` (absent otherwise)."""

    on: str
    values: tuple[Scalar, ...]
    node: Any

    def __init__(self, on: str, values: Sequence[Scalar] | Scalar, node: Any) -> None:
        values = python_scalar(_listed(values))
        # anything else (a set, a dict, None) is kept as it is, for `Space` to refuse naming the field
        vals = tuple(python_scalar(v) for v in values) if isinstance(values, (list, tuple, range)) else \
            (values,) if isinstance(values, (str, int, float, bool)) else values
        object.__setattr__(self, "on", on)
        object.__setattr__(self, "values", vals)
        object.__setattr__(self, "node", node)

    def active(self, controller_value: Any) -> bool:
        return any(controller_value == v and type(controller_value) is type(v) or
                   (is_number(controller_value) and is_number(v) and controller_value == v)
                   for v in self.values)
