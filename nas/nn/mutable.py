"""Choice points that are modules: `LayerChoice`, `InputChoice`, `Repeat`, and the `Mutable` base they share
with the elastic layers.

A mutable module runs inside a supernet: before each forward the supernet binds it to the active
architecture (`bind(context)`), and `export(...)` turns it into the plain torch module of that
architecture. `check(path)` validates it when the space is derived, so errors name the module path.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.errors import SpaceDefinitionError
from nas.nn.frozen import REDUCTIONS, ChosenInputs, reduce_inputs
from nas.nn.values import Choice, Value, evaluate, plain_number, possible_values

__all__ = ["Context", "InputChoice", "LayerChoice", "Mutable", "Repeat", "ScopeDefaults"]

Freeze = Callable[[nn.Module, "Context | None"], nn.Module]


class Inactive(KeyError):
    """A label has no value in this architecture (its choice point is switched off)."""


class ScopeDefaults(dict):
    """A value for each label of one scope (the root, or a `Repeat`'s blocks), for the labels an architecture
    lacks (the shape probe, the one-shot search's held values), and `blocks[repeat label]` the defaults of that
    Repeat's blocks: a label reused in two scopes with other options (two Repeats' LayerChoices labelled
    'op') has a default of its own in each."""

    def __init__(self, values: Mapping[str, Any] | None = None,
                 blocks: Mapping[str, "ScopeDefaults"] | None = None) -> None:
        super().__init__(values or {})
        self.blocks: dict[str, ScopeDefaults] = dict(blocks or {})


@dataclass(frozen=True)
class Context:
    """The values of one scope of an architecture (the root, or one block of a `Repeat`) and its parent's."""

    values: Mapping[str, Any]
    parent: "Context | None" = None
    defaults: Mapping[str, Any] | None = None  # values for labels the architecture lacks (the shape probe)

    def lookup(self, label: str) -> Any:
        ctx: Context | None = self
        while ctx is not None:
            if label in ctx.values:
                return ctx.values[label]
            ctx = ctx.parent
        ctx = self
        while ctx is not None:  # the innermost scope's default (a plain mapping: the same one in every scope)
            if ctx.defaults is not None and label in ctx.defaults:
                return ctx.defaults[label]
            ctx = ctx.parent
        raise Inactive(label)

    def resolve(self, x: Any) -> Any:
        """`x` with every choice replaced by its value (plain values pass through)."""
        return evaluate(x, lambda leaf: self.lookup(leaf.label))

    def block(self, label: str, index: int) -> "Context":
        """The context of block `index` of the `Repeat` whose field is `label`."""
        blocks = self.values.get(label) or []
        defaults = self.defaults.blocks.get(label) if isinstance(self.defaults, ScopeDefaults) else self.defaults
        return Context(blocks[index] if index < len(blocks) else {}, self, defaults)


class Mutable(nn.Module):
    """A module holding choice points. `_active` is what the bound architecture resolved (None: not bound, or
    this module is switched off in the architecture); `_path` is its module path, set by the derivation."""

    def __init__(self) -> None:
        super().__init__()
        self._active: dict[str, Any] | None = None
        self._path = type(self).__name__

    def value_args(self) -> dict[str, Any]:
        """The constructor arguments that are choices (name -> Value), as the derivation sees them."""
        return {}

    def decisions(self) -> list[tuple[Choice | None, Any]]:
        """Decisions this module makes itself (LayerChoice, InputChoice): (its Choice, the space node)."""
        return []

    def check(self, path: str) -> None:
        """SpaceDefinitionError naming `path` when this choice point is declared wrongly."""
        self._path = path

    def bind(self, ctx: Context | None) -> None:
        """Resolve this module's choices in `ctx` (None, or a label without a value: it does not run)."""
        try:
            self._active = None if ctx is None else self.resolve(ctx)
        except Inactive:
            self._active = None

    def resolve(self, ctx: Context) -> dict[str, Any]:
        """This module's choices at their values in `ctx` (Inactive when one has none)."""
        return {k: ctx.resolve(v) for k, v in self.value_args().items()}

    def child_contexts(self, ctx: Context | None) -> Iterator[tuple[nn.Module, Context | None]]:
        """Each child module with the context it runs in."""
        for child in self.children():
            yield child, ctx

    def export(self, ctx: Context, freeze: Freeze, fresh: bool) -> nn.Module:
        """The plain module of this choice point in `ctx` (`fresh`: newly initialised, not copied weights)."""
        raise NotImplementedError

    def active(self) -> dict[str, Any]:
        """The bound values, or a clear error when the module runs without a bound architecture."""
        if self._active is None:
            raise SpaceDefinitionError(f"{self._path}: runs without an active architecture: call the supernet as "
                                       "supernet(x, arch) (or inside `with supernet.active(arch):`)")
        return self._active


def _keys(candidates: Mapping[Any, nn.Module] | Sequence[nn.Module], label: str | None
          ) -> tuple[list[Any], list[nn.Module]]:
    """The candidates' keys as the choice's options (a mapping's own keys, str or int, an `nn.ModuleDict`'s
    included; a list's indices)."""
    if not isinstance(candidates, (Mapping, nn.ModuleDict)):
        return list(range(len(candidates))), list(candidates)
    where = f"LayerChoice {label!r}" if label is not None else "LayerChoice"
    for k in candidates:
        if isinstance(k, bool) or not isinstance(k, (str, int)) or str(k) == "" or "." in str(k):
            raise SpaceDefinitionError(f"{where}: candidate key {k!r} must be an int or a non-empty string without "
                                       "'.' (keys name the candidate modules and are the choice's options)")
    names = [str(k) for k in candidates]
    if len(set(names)) < len(names):
        raise SpaceDefinitionError(f"{where}: candidate keys {list(candidates)} name the same module twice")
    return list(candidates), list(candidates.values())


class LayerChoice(Mutable):
    """One of several candidate modules: `LayerChoice({"conv": ..., "pool": ...}, label="mix")`. In a supernet
    every candidate is kept side by side and the active one runs."""

    def __init__(self, candidates: Mapping[Any, nn.Module] | Sequence[nn.Module], label: str | None = None) -> None:
        super().__init__()
        keys, modules = _keys(candidates, label)
        self.keys = keys
        self.indexed = not isinstance(candidates, (Mapping, nn.ModuleDict))  # keys 0, 1, ...: positions, no sizes
        self.choice = Choice(label, keys)
        self.probe = False  # derivation: run every candidate and compare their output shapes
        for k, m in zip(keys, modules):
            if not isinstance(m, nn.Module):
                raise SpaceDefinitionError(f"LayerChoice candidate {k!r}: expected a torch module, got {type(m).__name__}")
            self.add_module(str(k), m)

    def decisions(self) -> list[tuple[Choice | None, Any]]:
        """Its choice; a list's candidates (keys 0, 1, ...) are a categorical decision, not the ordered numbers
        their indices look like (a dict's int keys, `{3: conv3, 5: conv5}`, keep the order they may mean)."""
        if not self.indexed:
            return [(self.choice, None)]
        from nas.spaces.params import Choice as ChoiceField

        return [(self.choice, ChoiceField(list(self.keys), ordered=False))]

    def check(self, path: str) -> None:
        super().check(path)
        if not self.keys:
            raise SpaceDefinitionError(f"{path}: LayerChoice needs at least one candidate")

    def resolve(self, ctx: Context) -> dict[str, Any]:
        return {"choice": ctx.lookup(self.choice.label)}

    def candidate(self, key: Any) -> nn.Module:
        return self._modules[str(key)]

    def child_contexts(self, ctx: Context | None) -> Iterator[tuple[nn.Module, Context | None]]:
        chosen = self._active["choice"] if self._active is not None else None
        for k in self.keys:
            yield self.candidate(k), (ctx if (self.probe and ctx is not None) or k == chosen else None)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        chosen = self.active()["choice"]
        if not self.probe:
            return self.candidate(chosen)(*args, **kwargs)
        outs = {k: self.candidate(k)(*args, **kwargs) for k in self.keys}
        shapes = {k: _shapes(v) for k, v in outs.items()}
        if len({repr(s) for s in shapes.values()}) > 1:
            raise SpaceDefinitionError(f"{self._path}: LayerChoice candidates give different output shapes: "
                                       + ", ".join(f"{k} -> {s}" for k, s in shapes.items()))
        return outs[chosen]

    def export(self, ctx: Context, freeze: Freeze, fresh: bool) -> nn.Module:
        return freeze(self.candidate(ctx.lookup(self.choice.label)), ctx)


def _shapes(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    if isinstance(x, (list, tuple)):
        return [_shapes(v) for v in x]
    if isinstance(x, Mapping):
        return {k: _shapes(v) for k, v in x.items()}
    return type(x).__name__


class InputChoice(Mutable):
    """Pick `n_chosen` of `n_candidates` inputs and reduce them: `choice([a, b, c])`. Its decision is a Subset."""

    def __init__(self, n_candidates: int, n_chosen: int = 1, reduction: str = "sum", label: str | None = None) -> None:
        super().__init__()
        self.n_candidates, self.n_chosen, self.reduction = n_candidates, n_chosen, reduction
        self.choice = Choice(label, None)  # no options of its own: its space node is a Subset (decisions)
        self.probe = False  # derivation: compare the shapes of all the inputs, chosen or not

    def decisions(self) -> list[tuple[Choice | None, Any]]:
        from nas.spaces.params import Subset

        return [(self.choice, Subset(n=self.n_candidates, k=self.n_chosen))]

    def check(self, path: str) -> None:
        super().check(path)
        for name in ("n_candidates", "n_chosen"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpaceDefinitionError(f"{path}.{name}: expected a positive int, got {v!r}")
        if self.n_chosen > self.n_candidates:
            raise SpaceDefinitionError(f"{path}: InputChoice picks {self.n_chosen} of {self.n_candidates} inputs "
                                       "(n_chosen must not exceed n_candidates)")
        if self.reduction not in REDUCTIONS:
            raise SpaceDefinitionError(f"{path}.reduction: expected one of {REDUCTIONS}, got {self.reduction!r}")

    def resolve(self, ctx: Context) -> dict[str, Any]:
        return {"chosen": list(ctx.lookup(self.choice.label))}

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(inputs) != self.n_candidates:
            raise ValueError(f"{self._path}: got {len(inputs)} inputs, the InputChoice has {self.n_candidates}")
        if self.probe:
            self._check_shapes(inputs)
        return reduce_inputs([inputs[i] for i in self.active()["chosen"]], self.reduction)

    def _check_shapes(self, inputs: Sequence[Any]) -> None:
        """SpaceDefinitionError naming this InputChoice when some pick of its inputs cannot be reduced, or gives
        an output shape another pick does not: every input the same shape ('concat': all but dim 1, and dim 1
        too when it picks fewer than all)."""
        shapes = [_shapes(x) for x in inputs]
        keyed = [s[:1] + s[2:] if isinstance(s, tuple) and len(s) > 1 and self.reduction == "concat"
                 and self.n_chosen == self.n_candidates else s for s in shapes]
        if len({repr(s) for s in keyed}) > 1:
            what = "shapes" if self.reduction != "concat" else (
                "shapes (concat: all but dim 1)" if self.n_chosen == self.n_candidates else
                "shapes (concat of some of them: the channel counts must agree too, or the output's depends on "
                "the pick)")
            raise SpaceDefinitionError(f"{self._path}: InputChoice {self.choice.label!r} inputs have different "
                                       f"{what}: " + ", ".join(f"{i} -> {s}" for i, s in enumerate(shapes)))

    def export(self, ctx: Context, freeze: Freeze, fresh: bool) -> nn.Module:
        return ChosenInputs(ctx.lookup(self.choice.label), self.reduction)


class Repeat(Mutable):
    """`depth` blocks in sequence, `depth` an int or a choice: `Repeat(lambda i: Block(width), depth=Choice(...))`.

    The factory builds the largest number of blocks (a module given instead is copied, its value choices
    shared by all blocks); a subnet runs the first `depth`. A choice created inside the factory is one
    decision per block (a field of the space's `Repeat`)."""

    def __init__(self, factory: Callable[[int], nn.Module] | nn.Module, depth: int | Value,
                 label: str | None = None) -> None:
        super().__init__()
        self.depth, self.label = plain_number(depth), label
        options = possible_values(self.depth)
        self._problem = None
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in options):
            self._problem = f"depth options {options} are not all non-negative ints"
            options = [0]
        for i in range(max(options)):
            block = _copy_sharing_choices(factory) if isinstance(factory, nn.Module) else factory(i)
            if not isinstance(block, nn.Module):
                raise SpaceDefinitionError(f"Repeat factory: block {i} is a {type(block).__name__}, not a torch module")
            self.add_module(str(i), block)

    def value_args(self) -> dict[str, Any]:
        return {"depth": self.depth} if isinstance(self.depth, Value) else {}

    def check(self, path: str) -> None:
        super().check(path)
        if self._problem:
            raise SpaceDefinitionError(f"{path}.depth: {self._problem}")
        if isinstance(self.depth, Value) and not isinstance(self.depth, Choice):
            raise SpaceDefinitionError(f"{path}.depth: an expression cannot set a Repeat's depth; use a Choice")

    def blocks(self) -> list[nn.Module]:
        return list(self.children())

    def current_depth(self, ctx: Context) -> int:
        return int(ctx.resolve(self.depth))

    def resolve(self, ctx: Context) -> dict[str, Any]:
        return {"depth": self.current_depth(ctx)}

    def child_contexts(self, ctx: Context | None) -> Iterator[tuple[nn.Module, Context | None]]:
        depth = self._active["depth"] if self._active is not None else 0
        for i, block in enumerate(self.blocks()):
            yield block, (ctx.block(self.label, i) if ctx is not None and i < depth else None)

    def forward(self, x: Any) -> Any:
        for block in self.blocks()[:self.active()["depth"]]:
            x = block(x)
        return x

    def export(self, ctx: Context, freeze: Freeze, fresh: bool) -> nn.Module:
        depth = self.current_depth(ctx)
        return nn.Sequential(*(freeze(b, ctx.block(self.label, i)) for i, b in enumerate(self.blocks()[:depth])))


def _copy_sharing_choices(module: nn.Module) -> nn.Module:
    """A deep copy of `module` whose layers keep the very value choices of the original: a module built once
    and repeated shares its choices among the blocks (a factory makes new ones per block)."""
    memo: dict[int, Any] = {}
    for m in module.modules():
        if isinstance(m, Mutable):
            for value in m.value_args().values():
                memo[id(value)] = value
                memo.update((id(leaf), leaf) for leaf in value.leaves())
    return copy.deepcopy(module, memo)
