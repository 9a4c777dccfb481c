"""`Space`: a tree of named decisions that samples, validates, encodes and varies architectures.

Fields are leaf decisions (`Choice`, `Integer`, `Subset`: k ordered distinct items out of T), nested
`Space`s, `Repeat`ed blocks whose count is a fixed int or a sibling leaf, and `Conditional` fields that exist
only for some values of a sibling.
"""

from __future__ import annotations

import copy
import functools
import itertools
import logging
import math
import reprlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from nas.errors import InvalidArchitectureError, SpaceDefinitionError
from nas.architecture import Architecture, as_sequence, canonical_json
from nas.jsonio import python_scalar
from nas.spaces.cell_graph import CellGraph
from nas.spaces.params import WIDE_ORDINAL, Choice, Conditional, Integer, Leaf, Subset, SubsetBit

Path = tuple[str | int, ...]
log = logging.getLogger(__name__)
_ABSENT = object()


def path_str(path: Path) -> str:
    """('blocks', 2, 'kernel') -> 'blocks[2].kernel'."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def get_path(config: Any, path: Path) -> Any:
    """The value at `path` in a plain or frozen config, or `_ABSENT`."""
    cur = config
    for p in path:
        if isinstance(p, int):
            seq = as_sequence(cur)
            if seq is None or p >= len(seq):
                return _ABSENT
            cur = seq[p]
        else:
            try:  # cheaper than an isinstance(cur, Mapping) check on every step (encodings call this per slot)
                cur = cur[p]
            except (KeyError, TypeError, IndexError):  # TypeError: a scalar or a list where a mapping belongs
                return _ABSENT
    return cur


def _put_path(config: dict, path: Path, value: Any) -> None:
    """Set `value` at `path` in a nested plain config, creating the dicts and lists on the way."""
    cur: Any = config
    for p, nxt in zip(path[:-1], path[1:]):
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(p, int):
            cur.extend([None] * (p + 1 - len(cur)))
            cur[p] = empty if cur[p] is None else cur[p]
            cur = cur[p]
        else:
            cur = cur.setdefault(p, empty)
    if isinstance(path[-1], int):
        cur.extend([None] * (path[-1] + 1 - len(cur)))
    cur[path[-1]] = value


def _set_path(config: dict, path: Path, value: Any) -> None:
    cur: Any = config
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value


@dataclass(frozen=True)
class Slot:
    """One entry of the fixed-length encoding: a leaf decision, or one bit of a Subset's T-bit mask (leaf
    `SubsetBit`, named `steps@17` for position 17); `optional` when it can be inactive."""

    path: Path
    leaf: Leaf | SubsetBit
    optional: bool

    @functools.cached_property
    def name(self) -> str:
        if isinstance(self.leaf, SubsetBit):
            return f"{path_str(self.path)}@{self.leaf.position}"
        return path_str(self.path)

    @property
    def width(self) -> int:
        """Columns in the one-hot encoding: one per option, plus one for 'inactive' when optional; a Subset's
        bit is one column (the mask itself, all zeros while the subset is inactive)."""
        if isinstance(self.leaf, SubsetBit):
            return 1
        return self.leaf.cardinality + int(self.optional)

    @property
    def scaled(self) -> bool:
        """An ordered decision (an `Integer`, a numeric `Choice`) of more than `WIDE_ORDINAL` options: one column in
        `to_features`."""
        return not isinstance(self.leaf, SubsetBit) and self.leaf.ordered and self.leaf.cardinality > WIDE_ORDINAL

    @property
    def feature_width(self) -> int:
        """Columns in `Space.to_features`: the one-hot `width`, or 1 (+1 for 'inactive') for a `scaled` slot."""
        return 1 + int(self.optional) if self.scaled else self.width


@dataclass(frozen=True, init=False)
class Repeat:
    """A block repeated `count` times: `count` is a fixed int or the name of a sibling leaf field.

    Its value in an architecture is a sequence of mappings, one per block.
    """

    count: int | str
    block: "Space"

    def __init__(self, count: int | str, block: "Space | Mapping[str, Any] | None" = None, **fields: Any) -> None:
        # both forms at once is refused by the parent's check, which knows the field's path
        problem = "Repeat takes either block= or keyword fields, not both" if block is not None and fields else None
        body = block if isinstance(block, Space) else Space._unchecked(block or fields)
        object.__setattr__(self, "count", python_scalar(count))  # np.int64(2) means 2
        object.__setattr__(self, "block", body)
        object.__setattr__(self, "_problem", problem)  # not a field: equality and specs ignore it


class Space:
    """A search space: `Space(depth=Choice([2, 3]), blocks=Repeat(count="depth", k=Choice([3, 5])))`.

    Subclasses may override `to_graph`/`from_graph` with a domain-specific DAG and add `build` (a
    `torch.nn.Module` for an architecture); strategies check `capabilities` at construction.
    """

    def __init__(self, fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        self._init_fields(fields, kwargs)
        self._check("")

    def __getstate__(self) -> dict[str, Any]:
        """The attributes, less the controllers' draw tables (up to 8 MB each; rebuilt on the next sample)."""
        state = dict(self.__dict__)
        state.pop("_draw_cache", None)
        return state

    # ------------------------------------------------------------------ construction
    @classmethod
    def _unchecked(cls, fields: Mapping[str, Any]) -> "Space":
        """A nested space whose parent checks it with the full path (so errors name it)."""
        space = cls.__new__(cls)
        space._init_fields(fields, {})
        return space

    def _init_fields(self, fields: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> None:
        merged = dict(fields or {})
        for k, v in kwargs.items():
            if k in merged:
                raise SpaceDefinitionError(f"{k}: field given twice")
            merged[k] = v
        self.fields: dict[str, Any] = merged
        self._controllers: dict[str, list[str]] = {}
        self._controller_of: dict[str, str] = {}
        self._slots: list[Slot] | None = None
        self.cell_graph: CellGraph | None = None  # declared by `with_graph`
        self._cell_slots: dict[str, Slot] = {}

    def _check(self, prefix: str) -> None:
        if not self.fields:
            raise SpaceDefinitionError(f"{prefix or '<space>'}: a space needs at least one field")
        self._controllers, self._controller_of = {}, {}
        for name, node in self.fields.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise SpaceDefinitionError(f"{_join(prefix, str(name))}: field names must be identifiers")
            path = _join(prefix, name)
            ref = None
            if isinstance(node, Conditional):
                ref = node.on
                if not isinstance(node.values, tuple):
                    raise SpaceDefinitionError(f"{path}: Conditional values must be a scalar or a list of options of "
                                               f"{node.on!r}, got {node.values!r}")
                if isinstance(node.node, Repeat) and isinstance(node.node.count, str):
                    raise SpaceDefinitionError(f"{path}: a conditional Repeat needs a fixed count (a field depends on one sibling at most)")
                if not node.values:
                    raise SpaceDefinitionError(f"{path}: Conditional needs at least one value of {node.on!r}")
                self._check_node(node.node, path)
            elif isinstance(node, Repeat) and isinstance(node.count, str):
                ref = node.count
                self._check_node(node, path)
            else:
                self._check_node(node, path)
            if ref is None:
                continue
            ctrl = self.fields.get(ref)
            if not isinstance(ctrl, (Choice, Integer)):
                what = "is not a field of this space" if ctrl is None else "is not a plain Choice/Integer field"
                raise SpaceDefinitionError(f"{path}: refers to sibling {ref!r}, which {what}")
            if isinstance(node, Repeat):
                bad = [o for o in ctrl.options if not isinstance(o, int) or isinstance(o, bool) or o < 0]
                if bad:
                    raise SpaceDefinitionError(f"{path}: count field {ref!r} has options {bad} that are not non-negative ints")
            else:
                for v in node.values:
                    try:
                        ctrl.index(v, _join(prefix, ref))
                    except InvalidArchitectureError as e:
                        raise SpaceDefinitionError(f"{path}: condition value {v!r} is not an option of {ref!r}") from e
            self._controllers.setdefault(ref, []).append(name)
            self._controller_of[name] = ref

    def _check_node(self, node: Any, path: str) -> None:
        if isinstance(node, (Choice, Integer, Subset)):
            node.check(path)
        elif isinstance(node, Space):
            _refuse_nested_cell(node, path)
            node._check(path)
        elif isinstance(node, Repeat):
            problem = node.__dict__.get("_problem")
            if problem is not None:
                raise SpaceDefinitionError(f"{path}: {problem}")
            _refuse_nested_cell(node.block, f"{path}[]")
            if isinstance(node.count, int) and not isinstance(node.count, bool):
                if node.count < 0:
                    raise SpaceDefinitionError(f"{path}: Repeat count must be >= 0, got {node.count}")
            elif not isinstance(node.count, str):
                raise SpaceDefinitionError(f"{path}: Repeat count must be an int or a sibling field name, got {node.count!r}")
            node.block._check(f"{path}[]")
        elif isinstance(node, Conditional):
            raise SpaceDefinitionError(f"{path}: Conditional cannot wrap another Conditional")
        else:
            raise SpaceDefinitionError(
                f"{path}: {node!r} is not a Choice, Integer, Subset, Repeat, Conditional or Space")

    # ------------------------------------------------------------------ size and sampling
    @property
    def capabilities(self) -> frozenset[str]:
        """What strategies may rely on: sample/mutate/encode/graph always; model/supernet when built.

        `independent-slots`: every slot is a decision of its own, so any option per active slot spells an
        architecture (what strategies that choose slot by slot need: rl, mcts, the Optuna samplers). A space
        with a `Subset` lacks it: its T mask bits are valid only with exactly k ones.
        `fixed-slots`: every slot is active in every architecture, so all architectures have the same decisions
        (what a sampler of fixed dimension needs: cmaes). A `Repeat` whose count field has several options, or
        a `Conditional`, takes it away (`varying_fields` names them).
        """
        caps = {"sample", "mutate", "crossover", "neighbours", "encode", "graph"}
        if not any(isinstance(s.leaf, SubsetBit) for s in self.slots()):
            caps.add("independent-slots")
        if not any(s.optional for s in self.slots()):
            caps.add("fixed-slots")
        if callable(getattr(self, "build", None)):
            caps.add("model")
        if callable(getattr(self, "supernet", None)):
            caps.add("supernet")
        return frozenset(caps)

    def _count_of(self, node: Repeat, config: Mapping[str, Any]) -> int:
        return node.count if isinstance(node.count, int) else int(config[node.count])

    def _dependent_size(self, name: str, ctrl_value: Any) -> int:
        node = self.fields[name]
        if isinstance(node, Conditional):
            return _node_size(node.node) if node.active(ctrl_value) else 1
        return node.block.size() ** int(ctrl_value)

    def _weights(self, ctrl: str) -> _Weights:
        """Number of architectures of this space's controller group for each controller option, computed once
        per space: a controller whose dependents are all Conditionals counts its condition values one by one and
        the other options as one group (each of them has every dependent absent), so a wide controller
        (`Integer(0, 10**9)`) costs as much as a narrow one; a Repeat count field's options are counted one by one
        (`block.size() ** count` differs per count)."""
        cached = self.__dict__.get("_weight_cache")
        if cached is None or cached[0] is not self._controllers:  # `_check` rebuilds the controllers
            cached = (self._controllers, {})
            self._weight_cache = cached
        weights = cached[1].get(ctrl)
        if weights is None:
            weights = cached[1][ctrl] = self._count_weights(ctrl)
        return weights

    def _count_weights(self, ctrl: str) -> _Weights:
        leaf, dependents = self.fields[ctrl], self._controllers[ctrl]

        def weight(v: Any) -> int:
            return math.prod(self._dependent_size(d, v) for d in dependents)

        conditionals = [self.fields[d] for d in dependents]
        if not all(isinstance(c, Conditional) for c in conditionals):
            return _Weights(leaf.cardinality, {i: weight(v) for i, v in enumerate(leaf.options)}, 0)
        # an option is a condition value of a dependent iff `index` finds it there (Conditional.active matches
        # as `index` does: a bool only the same bool, a number any equal number)
        special = sorted({leaf.index(v, ctrl) for c in conditionals for v in c.values})
        rest = next((i for i, j in enumerate(special) if i != j), len(special))  # the first other option
        return _Weights(leaf.cardinality, {i: weight(leaf.value(i)) for i in special},
                        weight(leaf.value(rest)) if rest < leaf.cardinality else 0)

    def _draw_controller(self, ctrl: str, rng: np.random.Generator) -> Any:
        """A controller's value, with probability proportional to its architectures (`_weights`)."""
        cached = self.__dict__.get("_draw_cache")
        if cached is None or cached[0] is not self._controllers:
            cached = (self._controllers, {})
            self._draw_cache = cached
        draw = cached[1].get(ctrl)
        if draw is None:
            draw = cached[1][ctrl] = _Draw(self._weights(ctrl))
        return self.fields[ctrl].value(draw(rng))

    def size(self) -> int:
        """Exact number of distinct architectures."""
        total = 1
        for name, node in self.fields.items():
            if name in self._controller_of:
                continue
            total *= self._weights(name).total if name in self._controllers else _node_size(node)
        return total

    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random architecture (uniform over all `size()` architectures)."""
        return Architecture(self._sample(rng))

    def _sample(self, rng: np.random.Generator) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for ctrl in self._controllers:
            values[ctrl] = self._draw_controller(ctrl, rng)
        out: dict[str, Any] = {}
        for name, node in self.fields.items():
            if name in values:
                out[name] = values[name]
            elif isinstance(node, Conditional):
                if node.active(values[node.on]):
                    out[name] = _sample_node(node.node, rng, out)
            elif isinstance(node, Repeat):
                out[name] = [node.block._sample(rng) for _ in range(self._count_of(node, values))]
            else:
                out[name] = _sample_node(node, rng, out)
        return out

    def default(self) -> Architecture:
        """The architecture taking the first option of every decision."""
        return Architecture(self._default())

    def _default(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._ordered_names():
            node = self.fields[name]
            if isinstance(node, Conditional):
                if node.active(out[node.on]):
                    out[name] = _default_node(node.node, out)
            elif isinstance(node, Repeat):
                out[name] = [node.block._default() for _ in range(self._count_of(node, out))]
            else:
                out[name] = _default_node(node, out)
        return {k: out[k] for k in self.fields if k in out}

    def _ordered_names(self) -> list[str]:
        """Field names with controllers first (they decide what their dependents look like)."""
        return list(self._controllers) + [n for n in self.fields if n not in self._controllers]

    def __iter__(self) -> Iterator[Architecture]:
        """Every architecture, for small spaces (tests, exhaustive baselines)."""
        for cfg in self._iter():
            yield Architecture(cfg)

    def _iter(self) -> Iterator[dict[str, Any]]:
        names = self._ordered_names()

        def rec(i: int, cur: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if i == len(names):
                yield {k: cur[k] for k in self.fields if k in cur}
                return
            name = names[i]
            node = self.fields[name]
            if isinstance(node, Conditional) and not node.active(cur[node.on]):
                yield from rec(i + 1, cur)
                return
            inner = node.node if isinstance(node, Conditional) else node
            if isinstance(inner, Repeat):
                options: Iterator[Any] = (list(p) for p in itertools.product(
                    list(inner.block._iter()), repeat=self._count_of(inner, cur)))
            else:
                options = _iter_node(inner)
            for v in options:
                cur[name] = v
                yield from rec(i + 1, cur)
            cur.pop(name, None)

        yield from rec(0, {})

    # ------------------------------------------------------------------ validation
    def validate(self, config: Mapping[str, Any]) -> Architecture:
        """The canonical architecture for `config`, or InvalidArchitectureError naming the bad field."""
        return Architecture(self._validate(config, ""))

    def _validate(self, config: Any, prefix: str) -> dict[str, Any]:
        if not isinstance(config, Mapping):
            raise InvalidArchitectureError(prefix, f"expected a mapping of fields, got {type(config).__name__} {config!r}")
        unknown = [k for k in config if k not in self.fields]
        if unknown:
            raise InvalidArchitectureError(_join(prefix, str(unknown[0])),
                                           f"unknown field (this space has: {', '.join(self.fields)})")
        out: dict[str, Any] = {}
        for name in self._ordered_names():
            node, path = self.fields[name], _join(prefix, name)
            if isinstance(node, Conditional):
                ctrl = out[node.on]
                if not node.active(ctrl):
                    if name in config:
                        raise InvalidArchitectureError(
                            path, f"is inactive because {node.on}={ctrl!r} (active only for {list(node.values)}); remove it")
                    continue
                node = node.node
            if name not in config:
                raise InvalidArchitectureError(path, "missing")
            out[name] = self._validate_node(node, config[name], path, out)
        return {k: out[k] for k in self.fields if k in out}

    def _validate_node(self, node: Any, value: Any, path: str, siblings: Mapping[str, Any]) -> Any:
        if isinstance(node, (Choice, Integer)):
            return node.value(node.index(value, path))
        if isinstance(node, Subset):
            return node.validate(value, path)
        if isinstance(node, Space):
            return node._validate(value, path)
        n = self._count_of(node, siblings)
        seq = as_sequence(value)
        if seq is None:
            raise InvalidArchitectureError(path, f"expected a list of {n} blocks, got {value!r}")
        if len(seq) != n:
            why = f"{node.count}={n}" if isinstance(node.count, str) else f"the fixed count {n}"
            raise InvalidArchitectureError(path, f"has {len(seq)} blocks but {why} requires {n}")
        return [node.block._validate(b, f"{path}[{i}]") for i, b in enumerate(seq)]

    def contains(self, config: Mapping[str, Any]) -> bool:
        try:
            self.validate(config)
            return True
        except InvalidArchitectureError:
            return False

    # ------------------------------------------------------------------ encodings
    def to_dict(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """A plain JSON-ready dict (validated)."""
        return self.validate(arch).to_dict()

    def from_dict(self, data: Mapping[str, Any]) -> Architecture:
        return self.validate(data)

    def slots(self) -> list[Slot]:
        """The fixed-length list of leaf decisions (repeats expanded to their largest count).

        A `Subset` of T items takes T slots, one `SubsetBit` per item in item order: `to_vector` gives its
        T-bit mask (1 = kept, -1 everywhere while inactive) and `to_onehot` the same mask as T columns, so
        column t always means "item t is kept" whatever else is kept, and the encoding of
        `Subset(n=1000, k=10)` is 1,000 entries, not C(1000, 10) options or 10 x 1,000 one-hot columns.
        """
        if self._slots is None:
            self._slots = self._make_slots((), False)
        return self._slots

    def _make_slots(self, prefix: Path, optional: bool) -> list[Slot]:
        out: list[Slot] = []
        for name, node in self.fields.items():
            opt = optional or isinstance(node, Conditional)
            inner = node.node if isinstance(node, Conditional) else node
            path = prefix + (name,)
            if isinstance(inner, (Choice, Integer)):
                out.append(Slot(path, inner, opt))
            elif isinstance(inner, Subset):
                out.extend(Slot(path, SubsetBit(inner, t), opt) for t in range(inner.n))
            elif isinstance(inner, Space):
                out.extend(inner._make_slots(path, opt))
            else:
                if isinstance(inner.count, int):
                    lo = hi = inner.count
                else:
                    counts = list(self.fields[inner.count].options)
                    lo, hi = min(counts), max(counts)
                for i in range(hi):
                    out.extend(inner.block._make_slots(path + (i,), opt or i >= lo))
        return out

    def varying_fields(self) -> list[str]:
        """The fields whose decisions some architectures lack, each with why: `'blocks' (1-3 blocks, count
        field 'depth')`, `'extra' (a Conditional on 'op')`: why a space lacks `fixed-slots`."""
        return self._varying(())

    def _varying(self, prefix: Path) -> list[str]:
        out: list[str] = []
        for name, node in self.fields.items():
            path = prefix + (name,)
            if isinstance(node, Conditional):
                out.append(f"{path_str(path)!r} (a Conditional on {path_str(prefix + (node.on,))!r})")
            elif isinstance(node, Space):
                out += node._varying(path)
            elif isinstance(node, Repeat):
                counts = [node.count] if isinstance(node.count, int) else list(self.fields[node.count].options)
                lo, hi = min(counts), max(counts)
                if lo != hi:  # the slots of blocks lo.. are optional (see _make_slots)
                    count = path_str(prefix + (node.count,))
                    out.append(f"{path_str(path)!r} ({lo}-{hi} blocks, count field {count!r})")
                for i in range(lo):
                    out += node.block._varying(path + (i,))
        return out

    def _check_encodable(self, arch: Mapping[str, Any]) -> None:
        """InvalidArchitectureError naming the field unless `arch` has this space's fields (a misspelt or missing
        field would otherwise encode as 'inactive'). The check is `Space`'s structural one (a subclass's own
        `validate`, such as a table's membership test, is not asked); an `Architecture`'s id, once checked, is
        remembered, so encoding the same architectures again costs a set lookup."""
        aid = arch.id if isinstance(arch, Architecture) else None
        checked: set[str] | None = self.__dict__.get("_encodable_ids")
        if checked is None:
            checked = self._encodable_ids = set()
        if aid is not None and aid in checked:
            return
        Space._validate(self, arch, "")
        if aid is not None:
            if len(checked) >= 1_000_000:  # a bound on the memo, not on what can be encoded
                checked.clear()
            checked.add(aid)

    def to_vector(self, arch: Mapping[str, Any]) -> np.ndarray:
        """One number per slot: the option's index (a Subset's mask bit), or -1 (the placeholder `from_vector`
        ignores) where the slot is inactive; InvalidArchitectureError naming a misspelt, missing or bad field."""
        self._check_encodable(arch)
        vec = np.full(len(self.slots()), -1.0)
        masks: dict[Path, list[int]] = {}
        for i, slot in enumerate(self.slots()):
            v = get_path(arch, slot.path)
            if v is _ABSENT:
                continue
            if isinstance(slot.leaf, SubsetBit):
                bits = masks.get(slot.path)
                if bits is None:
                    bits = masks[slot.path] = slot.leaf.subset.mask(v, path_str(slot.path))
                vec[i] = bits[slot.leaf.position]
            else:
                vec[i] = slot.leaf.index(v, slot.name)
        return vec

    def from_vector(self, vector: Any) -> Architecture:
        """The architecture of one index per slot (`to_vector`'s form). A slot inactive in the decoded architecture
        is ignored: any index in its range or -1 there decodes alike, so a sampler that fills every slot (cmaes, a
        continuous optimiser) decodes; an active slot must hold an option's index (-1 is refused)."""
        vec = _numbers(vector, "vector")
        slots = self.slots()
        if vec.shape[0] != len(slots):
            raise InvalidArchitectureError("", f"vector has length {vec.shape[0]}, the space has {len(slots)} slots")
        lookup: dict[Path, Any] = {}
        for slot, x in zip(slots, vec):
            if not math.isfinite(x) or x != int(x) or not -1 <= x < slot.leaf.cardinality:
                raise InvalidArchitectureError(slot.name, f"index {x} is not -1 or in 0..{slot.leaf.cardinality - 1}")
            if isinstance(slot.leaf, SubsetBit):
                lookup.setdefault(slot.path, []).append(int(x))
            else:
                lookup[slot.path] = int(x)
        return self.validate(self._from_indices(lookup, ()))

    def _from_indices(self, lookup: Mapping[Path, Any], prefix: Path) -> dict[str, Any]:
        """The config whose active slots hold these indices (a Subset's path holds its list of T bits)."""
        out: dict[str, Any] = {}
        for name in self._ordered_names():
            node, path = self.fields[name], prefix + (name,)
            if isinstance(node, Conditional):
                if not node.active(out[node.on]):
                    continue
                node = node.node
            if isinstance(node, (Choice, Integer)):
                idx = lookup[path]
                if idx < 0:
                    raise InvalidArchitectureError(path_str(path), "is active but encoded as inactive (-1)")
                out[name] = node.value(idx)
            elif isinstance(node, Subset):
                bits = lookup[path]
                if not isinstance(bits, list):
                    raise InvalidArchitectureError(path_str(path), "a Subset is read from its whole T-bit mask "
                                                   "(from_vector); one index for the field cannot encode it")
                if any(b < 0 for b in bits):
                    raise InvalidArchitectureError(path_str(path), "is active but encoded as inactive (-1)")
                out[name] = node.from_mask(bits, path_str(path))
            elif isinstance(node, Space):
                out[name] = node._from_indices(lookup, path)
            else:
                n = self._count_of(node, out)
                out[name] = [node.block._from_indices(lookup, path + (i,)) for i in range(n)]
        return {k: out[k] for k in self.fields if k in out}

    def onehot_size(self) -> int:
        return sum(s.width for s in self.slots())

    def to_onehot(self, arch: Mapping[str, Any]) -> np.ndarray:
        """Concatenated one-hot blocks, one per slot (optional slots have a last 'inactive' column); a Subset
        contributes its T-bit mask (k ones; zeros while inactive). Checked like `to_vector`."""
        return self._blocks(arch, scale_wide=False)

    def features_size(self) -> int:
        return sum(s.feature_width for s in self.slots())

    def to_features(self, arch: Mapping[str, Any]) -> np.ndarray:
        """A surrogate's inputs (`bayesian`, `smbo`, the vector predictors): `to_onehot`, except that an ordered
        decision with more than `WIDE_ORDINAL` options is one column, its option's position scaled to [0, 1] (then
        the 'inactive' column where optional). One-hot would make `Integer(1, 100000)` 100,000 inputs, between which
        no surrogate can generalise; on spaces without such a decision the two codes are equal."""
        return self._blocks(arch, scale_wide=True)

    def _blocks(self, arch: Mapping[str, Any], scale_wide: bool) -> np.ndarray:
        slots = self.slots()
        widths = [s.feature_width if scale_wide else s.width for s in slots]
        out = np.zeros(sum(widths))
        offset = 0
        for slot, idx, width in zip(slots, self.to_vector(arch), widths):
            if isinstance(slot.leaf, SubsetBit):
                out[offset] = float(idx == 1)
            elif scale_wide and slot.scaled and idx >= 0:
                out[offset] = idx / (slot.leaf.cardinality - 1)
            elif scale_wide and slot.scaled:
                out[offset + 1] = 1.0  # inactive
            else:
                out[offset + (int(idx) if idx >= 0 else slot.leaf.cardinality)] = 1.0
            offset += width
        return out

    def from_onehot(self, onehot: Any) -> Architecture:
        """The architecture of the largest column of every slot (scores, e.g. a predictor's, decode too);
        a Subset keeps its `k` highest-scoring items, so its decoding is always a valid subset. An optional
        slot's 'inactive' column is not read: whether it is active follows from the decoded controllers, and an
        active one takes its largest option column."""
        x = _numbers(onehot, "one-hot")
        if x.shape[0] != self.onehot_size():
            raise InvalidArchitectureError("", f"one-hot has length {x.shape[0]}, the space needs {self.onehot_size()}")
        vec: list[int] = []
        offset = 0
        subsets: dict[Path, tuple[Subset, int, int]] = {}  # path -> (subset, first vec index, first column)
        if np.isnan(x).any():  # argmax would pick the first option of a slot whose scores are NaN
            col = int(np.flatnonzero(np.isnan(x))[0])
            ends = np.cumsum([s.width for s in self.slots()])
            slot = self.slots()[int(np.searchsorted(ends, col, side="right"))]
            raise InvalidArchitectureError(slot.name, f"one-hot column {col} is NaN (a score must be a number)")
        for slot in self.slots():
            if isinstance(slot.leaf, SubsetBit):
                subsets.setdefault(slot.path, (slot.leaf.subset, len(vec), offset))
                vec.append(0)
            else:  # the option columns only: an inactive slot's index is never read (`_from_indices`)
                vec.append(int(np.argmax(x[offset:offset + slot.leaf.cardinality])))
            offset += slot.width
        for path, (subset, start, col) in subsets.items():
            bits = subset.mask(subset.top_k(x[col:col + subset.n]), path_str(path))
            vec[start:start + subset.n] = bits
        return self.from_vector(vec)

    def with_graph(self, cell: CellGraph) -> "Space":
        """This space with its cell DAG declared (`nas.spaces.CellGraph`: which fields are operations on which
        nodes or edges, which are input indices): `to_graph` then gives that DAG, so graph predictors and WL
        kernels see the wiring. SpaceDefinitionError names a field or node the declaration gets wrong."""
        space = copy.copy(self)
        space._declare_graph(cell)
        return space

    def _declare_graph(self, cell: CellGraph) -> None:
        """`with_graph` in place: for a subclass whose constructor declares its own cell (`NB201Net.space()`)."""
        if not isinstance(cell, CellGraph):
            raise SpaceDefinitionError(f"graph: expected a CellGraph, got {type(cell).__name__}")
        if type(self).to_graph is not Space.to_graph:
            raise SpaceDefinitionError(f"graph: {type(self).__name__} draws its own graph (to_graph); a declared "
                                       "cell is for a space written field by field")
        self._cell_slots = cell.bind(self.slots())
        self.cell_graph = cell

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        """A DiGraph: the declared cell DAG (`with_graph`), else a node per (sub)space and per repeated block,
        chained in order, with leaf values as attributes."""
        cfg = self.validate(arch).to_dict()
        if self.cell_graph is not None:
            declared = {s.path for s in self._cell_slots.values()}
            others: dict[str, Any] = {}  # every other active decision (a Subset once), by name
            for slot in self.slots():
                v = get_path(cfg, slot.path)
                if slot.path not in declared and v is not _ABSENT:
                    others.setdefault(path_str(slot.path), v)
            return self.cell_graph.graph({n: get_path(cfg, s.path) for n, s in self._cell_slots.items()},
                                         list(others.items()))
        g = nx.DiGraph()
        self._add_graph(g, cfg, "", None)
        return g

    def _add_graph(self, g: nx.DiGraph, cfg: Mapping[str, Any], path: str, parent: str | None) -> None:
        leaves = {k: v for k, v in cfg.items() if not isinstance(_inner(self.fields[k]), (Space, Repeat))}
        g.add_node(path or "<root>", path=path, values=leaves,
                   label=",".join(f"{k}={_display(self.fields[k], v)}" for k, v in sorted(leaves.items())))
        if parent is not None:
            g.add_edge(parent, path or "<root>")
        me = path or "<root>"
        for name, v in cfg.items():
            node = self.fields[name]
            inner = node.node if isinstance(node, Conditional) else node
            if isinstance(inner, Space):
                inner._add_graph(g, v, _join(path, name), me)
            elif isinstance(inner, Repeat):
                prev = me
                for i, block in enumerate(v):
                    bpath = f"{_join(path, name)}[{i}]"
                    inner.block._add_graph(g, block, bpath, prev)
                    prev = bpath

    def from_graph(self, graph: nx.DiGraph) -> Architecture:
        if self.cell_graph is not None:
            paths = {path_str(s.path): s.path for s in self.slots()}
            cfg: dict[str, Any] = {}
            for name, value in self.cell_graph.values(graph, self._cell_slots).items():
                if name not in paths:
                    raise InvalidArchitectureError(name, "a node of the graph names no field of this space")
                _put_path(cfg, paths[name], value)
            self._add_empty_repeats(cfg)
            return self.validate(cfg)
        by_path = {data.get("path"): data.get("values", {}) for _, data in graph.nodes(data=True)}
        if "" not in by_path:
            raise InvalidArchitectureError("", "graph has no root node (path '')")
        return self.validate(self._from_graph(by_path, ""))

    def _from_graph(self, by_path: Mapping[str, Mapping[str, Any]], path: str) -> dict[str, Any]:
        out: dict[str, Any] = dict(by_path.get(path, {}))
        for name, node in self.fields.items():
            inner = node.node if isinstance(node, Conditional) else node
            sub = _join(path, name)
            if isinstance(inner, Space) and sub in by_path:
                out[name] = inner._from_graph(by_path, sub)
            elif isinstance(inner, Repeat):
                blocks = []
                while f"{sub}[{len(blocks)}]" in by_path:
                    blocks.append(inner.block._from_graph(by_path, f"{sub}[{len(blocks)}]"))
                if blocks or not isinstance(node, Conditional) or (node.on in out and node.active(out[node.on])):
                    out[name] = blocks
        return out

    def _add_empty_repeats(self, cfg: dict[str, Any]) -> None:
        """Put `[]` for every active Repeat of 0 blocks that `cfg` lacks: it has no slot, so a declared cell's graph
        has no node for it (`from_graph`); the nested spaces holding only such repeats are added too."""
        for name in self._ordered_names():
            node = self.fields[name]
            if isinstance(node, Conditional):
                if node.on not in cfg or not node.active(cfg[node.on]):
                    continue
                node = node.node
            if isinstance(node, Space):
                sub = cfg.get(name, {})
                if isinstance(sub, dict):
                    node._add_empty_repeats(sub)
                    if sub:
                        cfg[name] = sub
            elif isinstance(node, Repeat):
                if name not in cfg:
                    count = node.count if isinstance(node.count, int) else cfg.get(node.count)
                    if count == 0 and not isinstance(count, bool):  # else validate names what is wrong
                        cfg[name] = []
                else:
                    for block in cfg[name] if isinstance(cfg[name], list) else ():
                        if isinstance(block, dict):
                            node.block._add_empty_repeats(block)

    # ------------------------------------------------------------------ variation operators
    def mutate(self, arch: Mapping[str, Any], rng: np.random.Generator,
               guide: Sequence[Mapping[str, Any]] = ()) -> Architecture:
        """Change one active decision to another value; structure (repeats, conditionals) follows.

        With `guide` (e.g. the best architectures so far), the new value is copied from one guide
        architecture drawn at random when it holds a different value there; otherwise it is uniform.
        The decision is drawn uniformly, except that a Subset weighs as its k items (`Subset.mutate`
        moves or replaces items), so a few kept time steps are not drowned by many boolean fields.
        """
        cfg = self.validate(arch).to_dict()
        active = [s for s in self.decision_slots()
                  if _choices(s) > 1 and get_path(cfg, s.path) is not _ABSENT]
        if not active:
            return Architecture(cfg)
        links = self._links_path()
        weights = [s.leaf.subset.k if isinstance(s.leaf, SubsetBit) else
                   self.cell_graph.rewire_decisions() if s.path == links else 1 for s in active]
        pick = int(rng.integers(sum(weights)))
        slot = active[int(np.searchsorted(np.cumsum(weights), pick, side="right"))]
        edits = list(self._rewirings(cfg).values()) if slot.path == links else []
        if edits:  # one node's input changes (the declared cell's graph edit), not the whole wiring pattern
            node = edits[int(rng.integers(len(edits)))]
            self._set_cell_values(cfg, node[int(rng.integers(len(node)))])
        elif isinstance(slot.leaf, SubsetBit):
            _set_path(cfg, slot.path, new_subset(self, slot, get_path(cfg, slot.path), guide, rng))
        else:
            cur = slot.leaf.index(get_path(cfg, slot.path), slot.name)
            _set_path(cfg, slot.path, slot.leaf.value(new_index(self, slot, cur, guide, rng)))
        self._repair(cfg, rng)
        return self.validate(cfg)

    def _links_path(self) -> Path | None:
        """The path of the declared cell's `links` slot when mutation edits it one node at a time
        (`CellGraph.rewirable`), else None."""
        cell = self.cell_graph
        return self._cell_slots[cell.links].path if cell is not None and cell.rewirable() else None

    def _rewirings(self, cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
        values = {n: get_path(cfg, s.path) for n, s in self._cell_slots.items()}
        return self.cell_graph.rewirings(values, self._cell_slots)

    def _set_cell_values(self, cfg: dict[str, Any], values: Mapping[str, Any]) -> None:
        for name, v in values.items():
            _set_path(cfg, self._cell_slots[name].path, v)

    def decision_slots(self) -> list[Slot]:
        """The slots that are decisions on their own: every slot, except that a Subset's T bits are one
        decision (represented by its first bit's slot): what mutation and neighbours pick from."""
        slots = self.slots()
        cached = self.__dict__.get("_decision_cache")
        if cached is None or cached[0] is not slots:
            cached = (slots, [s for s in slots if not isinstance(s.leaf, SubsetBit) or s.leaf.position == 0])
            self._decision_cache = cached
        return cached[1]

    def neighbours(self, arch: Mapping[str, Any]) -> list[Architecture]:
        """Every architecture one decision away (added blocks copy the last block; see `Choice.adjacent` and
        `Subset.neighbours`)."""
        base_arch = self.validate(arch)
        base = base_arch.to_dict()
        seen: dict[str, Architecture] = {}
        links = self._links_path()
        for slot in self.decision_slots():
            value = get_path(base, slot.path)
            if value is _ABSENT:
                continue
            if slot.path == links:  # the declared cell's one-node rewirings
                for edit in (e for node in self._rewirings(base).values() for e in node):
                    cfg = base_arch.to_dict()
                    self._set_cell_values(cfg, edit)
                    nb = self.validate(cfg)
                    seen.setdefault(nb.id, nb)
                continue
            if isinstance(slot.leaf, SubsetBit):
                values = slot.leaf.subset.neighbours(value)
            else:
                values = [slot.leaf.value(j) for j in slot.leaf.adjacent(slot.leaf.index(value, slot.name))]
            for v in values:
                cfg = base_arch.to_dict()
                _set_path(cfg, slot.path, v)
                self._repair(cfg, None)
                nb = self.validate(cfg)
                seen.setdefault(nb.id, nb)
        return list(seen.values())

    def _repair(self, cfg: dict[str, Any], rng: np.random.Generator | None) -> None:
        """Make repeats and conditionals agree with their controllers (new parts sampled, or defaults)."""
        for name in self._ordered_names():
            node = self.fields[name]
            if isinstance(node, Conditional):
                if not node.active(cfg[node.on]):
                    cfg.pop(name, None)
                    continue
                if name not in cfg:
                    cfg[name] = _sample_node(node.node, rng, cfg) if rng is not None else _default_node(node.node, cfg)
                node = node.node
            if isinstance(node, Space):
                node._repair(cfg[name], rng)
            elif isinstance(node, Repeat):
                n, blocks = self._count_of(node, cfg), cfg[name]
                del blocks[n:]
                while len(blocks) < n:
                    if rng is not None:
                        blocks.append(node.block._sample(rng))
                    else:
                        blocks.append(dict(blocks[-1]) if blocks else node.block._default())
                for b in blocks:
                    node.block._repair(b, rng)

    def crossover(self, a: Mapping[str, Any], b: Mapping[str, Any], rng: np.random.Generator) -> Architecture:
        """Uniform crossover: each decision from either parent (a Subset's items from the union of both
        parents', `Subset.crossover`); blocks and conditionals stay consistent."""
        return self.validate(self._cross(self.validate(a).to_dict(), self.validate(b).to_dict(), rng))

    def _cross(self, x: Mapping[str, Any], y: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._ordered_names():
            node = self.fields[name]
            if isinstance(node, Conditional):
                if not node.active(out[node.on]):
                    continue
                node = node.node
            have = [c[name] for c in (x, y) if name in c]
            if len(have) == 1:
                out[name] = have[0]
            elif isinstance(node, Space):
                out[name] = node._cross(have[0], have[1], rng)
            elif isinstance(node, Repeat):
                n = self._count_of(node, out)
                blocks = []
                for i in range(n):
                    pair = [s[i] for s in have if i < len(s)]
                    blocks.append(node.block._cross(pair[0], pair[1], rng) if len(pair) == 2 else pair[0])
                out[name] = blocks
            elif isinstance(node, Subset):
                out[name] = node.crossover(have[0], have[1], rng)
            else:
                out[name] = have[int(rng.integers(2))]
        return {k: out[k] for k in self.fields if k in out}

    # ------------------------------------------------------------------ description
    def to_spec(self) -> dict[str, Any]:
        """A plain-data description of the space (stored in journals to detect a changed space)."""
        spec = {"type": type(self).__name__, "fields": {n: _spec(v) for n, v in self.fields.items()}}
        if self.cell_graph is not None:
            spec["graph"] = self.cell_graph.spec()
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "Space":
        """The plain `Space` a `to_spec()` described, e.g. read back from a journal header; a subclass's
        spec is refused (its own structure, such as a cell's DAG, is not in the description)."""
        if not isinstance(spec, Mapping) or spec.get("type") != "Space" or not isinstance(spec.get("fields"), Mapping):
            kind = spec.get("type") if isinstance(spec, Mapping) else type(spec).__name__
            raise SpaceDefinitionError(f"<space>: a {kind!r} spec cannot be rebuilt from its description "
                                       "(only a plain Space's can)")
        space = Space({name: _from_spec(node, name) for name, node in spec["fields"].items()})
        return space.with_graph(CellGraph.from_spec(spec["graph"])) if spec.get("graph") is not None else space

    def canonical_key(self, arch: Mapping[str, Any]) -> str:
        """Equal for architectures that compute the same function, so deduplication does not spend budget on
        twins: the declared cell's canonical hash (`CellGraph.canonical_key`: isomorphic cells share it), else
        the id; spaces with their own isomorphic encodings override it."""
        if self.cell_graph is not None:
            return self.cell_graph.canonical_key(self.to_graph(arch))
        return self.validate(arch).id

    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(canonical_json(self.to_spec()).encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        text = f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.fields.items())})"
        return text if self.cell_graph is None else f"{text}.with_graph({self.cell_graph!r})"


@dataclass(frozen=True)
class _Weights:
    """Architectures of a controller group per controller option: `special` {option index: count} for the options
    counted one by one, `rest` for each of the other `n - len(special)` options (which all count alike)."""

    n: int
    special: dict[int, int]
    rest: int

    @property
    def total(self) -> int:
        return sum(self.special.values()) + self.rest * (self.n - len(self.special))


EXACT_DRAW_MAX = 2 ** 20
"""Controllers with at most this many options are drawn with the floats numpy's weighted `choice` used over one
weight per option (the same architectures for a seed as before the grouping); wider ones draw their condition
values against the other options as groups (a `choice` over more options took over a second per sample)."""


class _Draw:
    """Draws a controller option index with probability weight / total from `_Weights`, its tables built once."""

    def __init__(self, weights: _Weights) -> None:
        total, n = weights.total, weights.n
        self.grouped = n > EXACT_DRAW_MAX and len(weights.special) < n
        if not self.grouped:
            # exactly `rng.choice(n, p=p / p.sum())` for p = [w / total per option]: numpy's cdf, divided by its
            # last entry, searched with one `rng.random()` (only the cumulative sum is kept between draws)
            p = np.full(n, weights.rest / total, dtype=float)
            for i, x in weights.special.items():
                p[i] = x / total
            p = p / p.sum()
            cdf = p.cumsum()
            cdf /= cdf[-1]
            self.cdf = cdf
            return
        self.special = sorted(weights.special)  # then one group: the other options, uniform among themselves
        self.others = n - len(self.special)
        p = np.array([weights.special[i] / total for i in self.special]
                     + [weights.rest * self.others / total], dtype=float)
        cdf = p.cumsum()
        cdf /= cdf[-1]
        self.cdf = cdf

    def __call__(self, rng: np.random.Generator) -> int:
        i = int(self.cdf.searchsorted(rng.random(), side="right"))
        if not self.grouped:
            return i
        if i < len(self.special):
            return self.special[i]
        index = int(rng.integers(self.others))  # the index-th option that is not special
        for s in self.special:
            if s <= index:
                index += 1
        return index


def _refuse_nested_cell(space: Space, path: str) -> None:
    """A cell is declared on the top-level space only (its fields named by slot name, `cell.op1`): a nested
    space's declaration would be ignored by the outer `to_graph` and `canonical_key`, so it is refused."""
    cell = getattr(space, "cell_graph", None)
    if cell is None:
        return
    refs = cell._references()
    slot = _join(path.replace("[]", "[0]"), refs[0][1] if refs else "op1")
    raise SpaceDefinitionError(
        f"{path}.graph: a cell declared (with_graph) on a nested space or a Repeat block is not used by the outer "
        f"space's to_graph and canonical_key; declare it on the top-level space, naming the fields by slot name "
        f"(e.g. {slot!r})")


def _integer_from_spec(args: Any, path: str) -> Integer:
    """An `Integer` from its spec. A `high` off the step grid, which journals written before it was refused can
    hold, is moved down to the range's last value: `range(low, high + 1, step)` holds the same values either way."""
    if isinstance(args, list) and len(args) == 3 and all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        low, high, step = args
        if step > 0 and high > low and (high - low) % step:
            top = low + (high - low) // step * step
            log.warning("%s: Integer(%d, %d, step=%d) from an older journal read as Integer(%d, %d, step=%d), the same "
                        "values", path, low, high, step, low, top, step)
            return Integer(low, top, step)
    return Integer(*args)


def _numbers(values: Any, what: str) -> np.ndarray:
    """`values` as a flat float array; InvalidArchitectureError when they are not numbers (a string, a dict)."""
    try:
        return np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise InvalidArchitectureError("", f"{what} must be numbers (option indices or scores), "
                                           f"got {reprlib.repr(values)}") from None


def _from_spec(node: Any, path: str) -> Any:
    """The inverse of `_spec` for one field (`path` names it in errors)."""
    if not isinstance(node, Mapping):
        raise SpaceDefinitionError(f"{path}: not a field description ({node!r})")
    if "choice" in node:
        return Choice(node["choice"], ordered=node.get("ordered"))
    if "integer" in node:
        return _integer_from_spec(node["integer"], path)
    if "subset" in node:
        return Subset.from_spec(node, path)
    if "repeat" in node:
        return Repeat(node["repeat"], block=_nested_from_spec(node["block"], f"{path}[]"))
    if "if" in node:
        on, values = node["if"]
        return Conditional(on, values, _from_spec(node["then"], path))
    if node.get("type") == "Space":
        return _nested_from_spec(node, path)
    raise SpaceDefinitionError(f"{path}: a {node.get('type', 'field')!r} description cannot be rebuilt")


def _nested_from_spec(spec: Mapping[str, Any], path: str) -> Space:
    """A nested space from its spec, its cell declaration kept (written before nested cells were refused) so that
    the parent's check refuses it by name instead of silently dropping it."""
    space = Space._unchecked({n: _from_spec(v, _join(path, n)) for n, v in spec["fields"].items()})
    if spec.get("graph") is not None:
        space.cell_graph = CellGraph.from_spec(spec["graph"])
    return space


def _inner(node: Any) -> Any:
    return node.node if isinstance(node, Conditional) else node


def _display(node: Any, value: Any) -> Any:
    """A leaf value as graph labels show it (a Subset compactly: `Subset.describe`)."""
    inner = _inner(node)
    return inner.describe(value) if isinstance(inner, Subset) else value


def _choices(slot: Slot) -> int:
    """How many values the decision at `slot` has (a Subset's: C(T, k))."""
    return slot.leaf.subset.cardinality if isinstance(slot.leaf, SubsetBit) else slot.leaf.cardinality


def _node_size(node: Any) -> int:
    if isinstance(node, (Choice, Integer, Subset)):
        return node.cardinality
    if isinstance(node, Space):
        return node.size()
    return node.block.size() ** node.count  # Repeat with a fixed count


def _sample_node(node: Any, rng: np.random.Generator | None, siblings: Mapping[str, Any]) -> Any:
    if isinstance(node, (Choice, Integer)):
        return node.value(int(rng.integers(node.cardinality)))
    if isinstance(node, Subset):
        return node.sample(rng)
    if isinstance(node, Space):
        return node._sample(rng)
    return [node.block._sample(rng) for _ in range(node.count)]


def _default_node(node: Any, siblings: Mapping[str, Any]) -> Any:
    if isinstance(node, (Choice, Integer)):
        return node.value(0)
    if isinstance(node, Subset):
        return node.default()
    if isinstance(node, Space):
        return node._default()
    return [node.block._default() for _ in range(node.count)]


def _iter_node(node: Any) -> Iterator[Any]:
    if isinstance(node, (Choice, Integer)):
        return iter(node.options)
    if isinstance(node, Subset):
        return iter(node)
    if isinstance(node, Space):
        return node._iter()
    return (list(p) for p in itertools.product(list(node.block._iter()), repeat=node.count))


def _spec(node: Any) -> Any:
    if isinstance(node, Choice):
        return {"choice": list(node.options), "ordered": node.ordered}
    if isinstance(node, Integer):
        return {"integer": [node.low, node.high, node.step]}
    if isinstance(node, Subset):
        return node.spec()
    if isinstance(node, Space):
        return node.to_spec()
    if isinstance(node, Repeat):
        return {"repeat": node.count, "block": node.block.to_spec()}
    return {"if": [node.on, list(node.values)], "then": _spec(node.node)}


def new_index(space: Space, slot: Slot, current: int, guide: Sequence[Mapping[str, Any]],
              rng: np.random.Generator) -> int:
    """A mutation's new option index at `slot`: the value one random guide architecture holds there when it
    has one other than `current`, otherwise uniform over the other options."""
    if guide:
        g = space.validate(guide[int(rng.integers(len(guide)))]).to_dict()
        value = get_path(g, slot.path)
        if value is not _ABSENT:
            idx = slot.leaf.index(value, slot.name)
            if idx != current:
                return idx
    new = int(rng.integers(slot.leaf.cardinality - 1))
    return new + (new >= current)


def new_subset(space: Space, slot: Slot, current: Any, guide: Sequence[Mapping[str, Any]],
               rng: np.random.Generator) -> list[Any]:
    """A mutation's new value for the Subset at `slot` (`new_index`'s counterpart): one item swapped toward a
    random guide architecture's subset when it differs, otherwise `Subset.mutate`'s uniform moves."""
    toward = None
    if guide:
        g = space.validate(guide[int(rng.integers(len(guide)))]).to_dict()
        value = get_path(g, slot.path)
        if value is not _ABSENT:
            toward = value
    return slot.leaf.subset.mutate(current, rng, toward=toward)
