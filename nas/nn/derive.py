"""From a module holding choice points to the fields of a `Space`; binding and freezing an architecture.

The derivation walks the module tree once. Every choice (a value choice in a layer argument, the decision
of a `LayerChoice` / `InputChoice`) is recorded with its uses: module path, argument, the `Repeat` blocks
and the `LayerChoice` candidates around it. A choice object used in one block of a `Repeat` only (it was
created by the block's factory) belongs to that block, so it becomes a field of the Repeat's block space;
any other belongs to the innermost scope holding all its uses. Within a scope one label is one decision.
A decision used only inside some candidates of a `LayerChoice` is a `Conditional` on that choice.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nas.errors import SpaceDefinitionError
from nas.nn.mutable import Context, LayerChoice, Mutable, Repeat
from nas.nn.values import Choice
from nas.spaces.params import Choice as ChoiceField, Conditional
from nas.spaces.space import Repeat as RepeatField, Space

__all__ = ["Derivation", "bind", "derive", "freeze", "probe_shapes"]

Chain = tuple[tuple[int, int], ...]  # (id of a Repeat module, block index), outermost first


@dataclass(frozen=True)
class Use:
    """Where a choice is used: module path and argument ('' for a module's own decision)."""

    path: str
    arg: str
    chain: Chain
    candidates: tuple[tuple[LayerChoice, Any, Chain], ...]  # enclosing LayerChoice candidates, outermost first

    @property
    def where(self) -> str:
        return f"{self.path}.{self.arg}" if self.arg else self.path


@dataclass
class Derivation:
    """The walk's findings: `fields` of the space, each LayerChoice label's keys by parameter count (most
    first, for the largest/smallest architectures) and each label's first option (the probe's fallback)."""

    fields: dict[str, Any] = field(default_factory=dict)
    ranks: dict[str, list[Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Walk:
    uses: dict[int, list[Use]] = field(default_factory=dict)
    leaves: dict[int, Choice] = field(default_factory=dict)
    nodes: dict[int, Any] = field(default_factory=dict)  # a decision's own space node (InputChoice: a Subset)
    repeats: list[tuple[Repeat, Use]] = field(default_factory=list)
    ranks: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, leaf: Choice, use: Use) -> None:
        self.leaves[id(leaf)] = leaf
        self.uses.setdefault(id(leaf), []).append(use)


def _auto_label(path: str, scope_root: str) -> str:
    rel = path[len(scope_root) + 1:] if scope_root else path
    label = rel.replace(".", "_") or "choice"
    return label if label.isidentifier() else f"layer_{label}"


def _walk(module: nn.Module, path: str, chain: Chain, candidates: tuple, root: str, out: _Walk) -> None:
    if not isinstance(module, Mutable):
        for name, child in module.named_children():
            _walk(child, f"{path}.{name}" if path else name, chain, candidates, root, out)
        return
    module.check(path or "<model>")
    use = Use(path, "", chain, candidates)
    for arg, value in module.value_args().items():
        for leaf in value.leaves():
            out.add(leaf, Use(path, arg, chain, candidates))
    for choice, node in module.decisions():
        if choice.label is None:
            choice.label = _auto_label(path, root)
        out.add(choice, use)
        if node is not None:
            out.nodes[id(choice)] = node
    if isinstance(module, Repeat):
        if module.label is None:
            module.label = _auto_label(path, root)
        out.repeats.append((module, use))
        for i, block in enumerate(module.blocks()):
            _walk(block, f"{path}.{i}", chain + ((id(module), i),), candidates, f"{path}.{i}", out)
    elif isinstance(module, LayerChoice):
        sizes = {k: sum(p.numel() for p in module.candidate(k).parameters()) for k in module.keys}
        out.ranks.setdefault(module.choice.label, sorted(module.keys, key=lambda k: -sizes[k]))
        for k in module.keys:
            _walk(module.candidate(k), f"{path}.{k}", chain, candidates + ((module, k, chain),), root, out)


def _common(chains: list[Chain]) -> Chain:
    first = chains[0]
    n = 0
    while n < len(first) and all(len(c) > n and c[n] == first[n] for c in chains):
        n += 1
    return first[:n]


def _node(leaf: Choice, nodes: Mapping[int, Any], where: str) -> Any:
    node = nodes.get(id(leaf))
    if node is None:
        if not isinstance(leaf.options, tuple):
            raise SpaceDefinitionError(f"{where}: Choice {leaf.label!r} options must be a list, got {leaf.options!r}")
        node = ChoiceField(list(leaf.options))
    node.check(f"{where} (label {leaf.label!r})")
    return node


def _same(a: Any, b: Any) -> bool:
    return Space._unchecked({"x": a}).to_spec() == Space._unchecked({"x": b}).to_spec()


def _condition(scope: Chain, uses: list[Use]) -> tuple[str, list[Any]] | None:
    """(label, keys) when every use lies inside some (not all) candidates of one LayerChoice of this scope."""
    outer = []
    for u in uses:
        inside = [(lc, k) for lc, k, chain in u.candidates if chain == scope]
        if not inside:
            return None
        outer.append(inside[0])
    labels = {lc.choice.label for lc, _ in outer}
    if len(labels) != 1:
        return None
    lc = outer[0][0]
    keys = [k for k in lc.keys if any(k == kk for _, kk in outer)]
    return None if len(keys) == len(lc.keys) else (lc.choice.label, keys)  # used by every candidate: always on


def derive(net: nn.Module) -> Derivation:
    """The space fields of `net`'s choice points (and validation of every one, naming its module path)."""
    walk = _Walk()
    _walk(net, "", (), (), "", walk)
    scopes: dict[Chain, dict[str, list[tuple[Choice, list[Use]]]]] = {}
    for key, uses in walk.uses.items():
        leaf = walk.leaves[key]
        where = uses[0].where
        if not isinstance(leaf.label, str) or not leaf.label.isidentifier():
            raise SpaceDefinitionError(f"{where}: choice label {leaf.label!r} must be an identifier "
                                       "(it names a field of the space)")
        scopes.setdefault(_common([u.chain for u in uses]), {}).setdefault(leaf.label, []).append((leaf, uses))
    for scope, labels in scopes.items():
        for label, entries in labels.items():
            for k in range(len(scope)):
                if label in scopes.get(scope[:k], {}):
                    outer = scopes[scope[:k]][label][0][1][0].where
                    raise SpaceDefinitionError(
                        f"{entries[0][1][0].where}: label {label!r} is created inside a Repeat's block and also used "
                        f"outside it (at {outer}); a choice made by a Repeat's factory is one decision per block: "
                        "give it another label, or create it outside the factory to share it")
    out = Derivation(ranks=walk.ranks)
    out.fields = _fields((), scopes, walk, out)
    if not out.fields:
        raise SpaceDefinitionError(f"{type(net).__name__}: has no choice points (no Choice, LayerChoice, "
                                   "InputChoice or Repeat with a choice depth)")
    return out


def _fields(scope: Chain, scopes: Mapping[Chain, Any], walk: _Walk, out: Derivation) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    where: dict[str, str] = {}
    for label, entries in scopes.get(scope, {}).items():
        leaf, uses = entries[0]
        node = _node(leaf, walk.nodes, uses[0].where)
        for other, other_uses in entries[1:]:
            other_node = _node(other, walk.nodes, other_uses[0].where)
            if not _same(node, other_node):
                raise SpaceDefinitionError(
                    f"{other_uses[0].where}: label {label!r} is reused with different options "
                    f"({_describe(other_node)} here, {_describe(node)} at {uses[0].where})")
        out.defaults.setdefault(label, _first(node))
        cond = _condition(scope, [u for _, us in entries for u in us])
        fields[label] = Conditional(cond[0], cond[1], node) if cond else node
        where[label] = uses[0].where
    for repeat, use in walk.repeats:
        if use.chain != scope:
            continue
        blocks = [_fields(scope + ((id(repeat), i),), scopes, walk, out) for i in range(len(repeat.blocks()))]
        for i, b in enumerate(blocks[1:], 1):
            if Space._unchecked(b).to_spec() != Space._unchecked(blocks[0]).to_spec():
                raise SpaceDefinitionError(f"{use.path}.{i}: the blocks of a Repeat must hold the same choices "
                                           f"(block 0 has {sorted(blocks[0])}, block {i} has {sorted(b)})")
        if not blocks or not blocks[0]:
            continue
        count = repeat.depth.label if isinstance(repeat.depth, Choice) else repeat.depth
        node: Any = RepeatField(count, block=Space._unchecked(blocks[0]))
        cond = _condition(scope, [use])
        if cond:
            if isinstance(count, str):
                raise SpaceDefinitionError(f"{use.path}.depth: a Repeat with a choice depth cannot sit inside a "
                                           "LayerChoice candidate (give it a fixed depth there)")
            node = Conditional(cond[0], cond[1], node)
        if repeat.label in fields:
            other = "another Repeat" if isinstance(fields[repeat.label], RepeatField) else "a choice"
            raise SpaceDefinitionError(f"{use.path}: the Repeat's label {repeat.label!r} is also the label of {other} "
                                       f"(at {where[repeat.label]}); give one of them another label")
        fields[repeat.label] = node
        where[repeat.label] = use.path
    return fields


def _first(node: Any) -> Any:
    return node.default() if hasattr(node, "default") else node.options[0]


def _describe(node: Any) -> str:
    return repr(list(node.options)) if isinstance(node, ChoiceField) else repr(node)


# ---------------------------------------------------------------------------------------- architecture at work
def bind(module: nn.Module, ctx: Context | None) -> None:
    """Make every choice point under `module` take its value in `ctx` (None: unbind, or switched off)."""
    if isinstance(module, Mutable):
        module.bind(ctx)
        for child, child_ctx in module.child_contexts(ctx):
            bind(child, child_ctx)
    else:
        for child in module.children():
            bind(child, ctx)


def freeze(module: nn.Module, ctx: Context, fresh: bool = False,
           memo: dict[tuple[int, int], nn.Module] | None = None) -> nn.Module:
    """A copy of `module` for the architecture of `ctx` made of plain modules: each choice point replaced by its
    export (`fresh`: newly initialised layers instead of copies of the shared weights). A module registered
    under several names (tied weights) becomes one copy under all of them."""
    memo = {} if memo is None else memo
    key = (id(module), id(ctx))
    if key in memo:
        return memo[key]
    if isinstance(module, Mutable):
        new = module.export(ctx, lambda m, c: freeze(m, c, fresh, memo), fresh)
    else:
        children = {name: c for name, c in module._modules.items() if c is not None}  # every name, shared or not
        new = copy.deepcopy(module, {id(c): c for c in children.values()})  # its own tensors; children below
        for name, child in children.items():
            new._modules[name] = freeze(child, ctx, fresh, memo)
    memo[key] = new
    return new


@torch.no_grad()
def probe_shapes(net: nn.Module, archs: list[Mapping[str, Any]], x: Any, defaults: Mapping[str, Any]) -> None:
    """Run `net` on `x` for each architecture with every LayerChoice running all its candidates, so that
    candidates giving different output shapes are found now (SpaceDefinitionError naming the module path)."""
    choices = [m for m in net.modules() if isinstance(m, LayerChoice)]
    was = net.training
    net.eval()
    try:
        for m in choices:
            m.probe = True
        for arch in archs:
            bind(net, Context(arch, defaults=defaults))
            net(*x) if isinstance(x, tuple) else net(x)
    finally:
        for m in choices:
            m.probe = False
        bind(net, None)
        net.train(was)
