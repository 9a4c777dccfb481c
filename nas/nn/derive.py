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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nas.errors import SpaceDefinitionError
from nas.nn.mutable import Context, InputChoice, LayerChoice, Mutable, Repeat, ScopeDefaults
from nas.nn.values import Choice, Value
from nas.spaces.params import Choice as ChoiceField, Conditional
from nas.spaces.space import Repeat as RepeatField, Space

__all__ = ["Derivation", "bind", "derive", "freeze", "probe_shapes"]

Chain = tuple[tuple[int, int], ...]  # (id of a Repeat module, block index), outermost first
Scope = tuple[tuple[str, int], ...]  # the same by the Repeats' labels: where a scope's fields sit in an architecture


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
    """The walk's findings: `fields` of the space, each LayerChoice decision's keys by parameter count (most
    first, for the largest/smallest architectures), keyed by (scope, label): a label is one decision per scope,
    so two Repeats' blocks (or two blocks of one Repeat) rank their own candidates; and each label's first
    option (the probe's fallback), per scope."""

    fields: dict[str, Any] = field(default_factory=dict)
    ranks: dict[tuple[Scope, str], list[Any]] = field(default_factory=dict)
    defaults: ScopeDefaults = field(default_factory=ScopeDefaults)
    stored: str | None = None  # a choice kept on a plain module that no choice point uses (deferred: see derive)
    points: dict[str, list[tuple[str, nn.Module]]] = field(default_factory=dict)  # label -> (path, module) using it


@dataclass
class _Walk:
    uses: dict[int, list[Use]] = field(default_factory=dict)
    leaves: dict[int, Choice] = field(default_factory=dict)
    nodes: dict[int, Any] = field(default_factory=dict)  # a decision's own space node (InputChoice: a Subset)
    repeats: list[tuple[Repeat, Use]] = field(default_factory=list)
    sizes: list[tuple[Chain, LayerChoice, dict[Any, int]]] = field(default_factory=list)  # candidates' sizes
    stored: list[tuple[str, nn.Module, str, Value]] = field(default_factory=list)  # choices kept on plain modules
    auto: list[tuple[Any, str]] = field(default_factory=list)  # labelled here (a Choice or Repeat), its origin
    origins: list[tuple[Any, str]] = field(default_factory=list)  # every use of a label: (Choice or Repeat, origin)
    points: list[tuple[Any, str, nn.Module]] = field(default_factory=list)  # (Choice or Repeat, path, module using it)

    def add(self, leaf: Choice, use: Use) -> None:
        self.leaves[id(leaf)] = leaf
        self.uses.setdefault(id(leaf), []).append(use)


def _auto_label(path: str, scope_root: str) -> str:
    rel = path[len(scope_root) + 1:] if scope_root else path
    label = rel.replace(".", "_") or "choice"
    return label if label.isidentifier() else f"layer_{label}"


def _unique_labels(walk: _Walk) -> None:
    """One automatic label per choice point (per origin: the blocks of a Repeat share theirs). Two that came out
    alike in one scope or nested ones (`conv.1` and `conv_1`; `op` at the top and `op` in a Repeat's blocks), or
    like a label the user gave there, would silently be one decision or be refused for a label nobody wrote: the
    later one takes its full path (`blocks_op`), then a number. Alike labels in separate Repeats stay."""
    auto = {id(obj) for obj, _ in walk.auto}
    held = [(obj.label, origin) for obj, origin in walk.origins if id(obj) not in auto]
    given: dict[str, str] = {}  # origin -> its label

    def clash(label: str, origin: str) -> bool:
        return any(lab == label and o != origin and _nested(_scope(o), _scope(origin)) for lab, o in held)

    for obj, origin in walk.auto:
        if origin not in given:
            label = obj.label
            if clash(label, origin):
                label = base = _auto_label(origin.replace(".*", ""), "")
                n = 1
                while clash(label, origin):
                    n += 1
                    label = f"{base}_{n}"
            given[origin] = label
            held.append((label, origin))
        obj.label = given[origin]


def _scope(origin: str) -> str:
    """The Repeat blocks a label at `origin` belongs to (`s1.*` for `s1.*.op`; '' at the top)."""
    i = origin.rfind(".*")
    return origin[:i + 2] if i >= 0 else ""


def _nested(a: str, b: str) -> bool:
    return not a or not b or a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _walk(module: nn.Module, path: str, chain: Chain, candidates: tuple, root: str, out: _Walk,
          origin: str = "") -> None:
    """Record every choice point under `module` (`origin`: its path with each Repeat block index as `*`)."""
    if not isinstance(module, Mutable):
        out.stored.extend((path, module, attr, value) for attr, value in _stored_values(module))
        for name, child in module.named_children():
            _walk(child, f"{path}.{name}" if path else name, chain, candidates, root, out,
                  f"{origin}.{name}" if origin else name)
        return
    module.check(path or "<model>")
    use = Use(path, "", chain, candidates)
    for arg, value in module.value_args().items():
        at = f"{origin}.{arg}" if origin else arg  # not the module's own origin: a Repeat's label is not its depth's
        unlabelled = 0
        for leaf in value.leaves():
            if leaf.label is None:  # labelled by its module path and argument: conv_kernel_size
                unlabelled += 1
                suffix = f"_{unlabelled}" if unlabelled > 1 else ""
                leaf.label = _auto_label(f"{path}.{arg}{suffix}", root)
                out.auto.append((leaf, at + suffix))
            out.add(leaf, Use(path, arg, chain, candidates))
            out.origins.append((leaf, at))
            out.points.append((leaf, path, module))
    for choice, node in module.decisions():
        if choice.label is None:
            choice.label = _auto_label(path, root)
            out.auto.append((choice, origin))
        out.add(choice, use)
        out.origins.append((choice, origin))
        out.points.append((choice, path, module))
        if node is not None:
            out.nodes[id(choice)] = node
    if isinstance(module, Repeat):
        if module.label is None:
            module.label = _auto_label(path, root)
            out.auto.append((module, origin))
        out.repeats.append((module, use))
        out.origins.append((module, origin))
        out.points.append((module, path, module))
        for i, block in enumerate(module.blocks()):
            _walk(block, f"{path}.{i}", chain + ((id(module), i),), candidates, f"{path}.{i}", out, f"{origin}.*")
    elif isinstance(module, LayerChoice):
        sizes = {k: sum(p.numel() for p in module.candidate(k).parameters()) for k in module.keys}
        out.sizes.append((chain, module, sizes))
        for k in module.keys:
            _walk(module.candidate(k), f"{path}.{k}", chain, candidates + ((module, k, chain),), root, out,
                  f"{origin}.{k}")


def _stored_values(module: nn.Module) -> Iterator[tuple[str, Value]]:
    """The choices a plain module keeps among its attributes (directly, or in a list, tuple or dict)."""
    for attr, value in vars(module).items():
        if attr in ("_modules", "_parameters", "_buffers"):
            continue
        items = value.items() if isinstance(value, dict) else enumerate(value) \
            if isinstance(value, (list, tuple)) else [(None, value)]
        for k, v in items:
            if isinstance(v, Value):
                yield (attr if k is None else f"{attr}[{k!r}]"), v


def _check_stored(walk: _Walk) -> str | None:
    """A choice kept on a plain module is a decision only where a choice point uses it: a plain torch layer built
    with one (nn.MaxPool2d(Choice(...))) or one read by forward code alone (F.avg_pool2d(x, self.k)) would
    silently drop out of the space, or fail at run time naming nothing. The problem, or None."""
    labels = {leaf.label for leaf in walk.leaves.values()}
    for path, module, attr, value in walk.stored:
        where = f"{path}.{attr}" if path else f"{type(module).__name__}.{attr}"
        cls = type(module)
        if cls.__module__.startswith("torch."):
            return (
                f"{where}: {value!r} is an argument of a plain {cls.__module__.split('.modules')[0]}.{cls.__name__}, "
                "which takes plain numbers (the search would never set it); use a layer of nas.nn that takes a "
                "choice there, or a Mutable of your own that reads the choice in forward (docs/model_space.md)")
        unused = [leaf for leaf in value.leaves() if id(leaf) not in walk.leaves and leaf.label not in labels]
        if unused:
            return (
                f"{where}: {unused[0]!r} is kept on a plain module and no choice point uses it, so it would not "
                "be a decision of the space (a torch.nn.functional call or plain torch layer given it in forward "
                "fails at run time); pass it to a layer of nas.nn, or read it in forward through a Mutable of your "
                "own (value_args / active(), docs/model_space.md)")
    return None


def _ranks(walk: _Walk) -> dict[tuple[Scope, str], list[Any]]:
    """Each LayerChoice decision's keys, most parameters first, keyed by (scope, label); the LayerChoices that
    share a label in one scope (one decision) rank by their summed parameters."""
    labels = {id(r): r.label for r, _ in walk.repeats}
    totals: dict[tuple[Scope, str], dict[Any, int]] = {}
    for chain, choice, sizes in walk.sizes:
        total = totals.setdefault((tuple((labels[rid], i) for rid, i in chain), choice.choice.label), {})
        for k, n in sizes.items():
            total[k] = total.get(k, 0) + n
    return {key: sorted(total, key=lambda k: -total[k]) for key, total in totals.items()}


def _common(chains: list[Chain]) -> Chain:
    first = chains[0]
    n = 0
    while n < len(first) and all(len(c) > n and c[n] == first[n] for c in chains):
        n += 1
    return first[:n]


def _lift(placed: dict[int, Chain], walk: _Walk) -> tuple[dict[int, Chain], dict[int, tuple[int, int]]]:
    """Each choice's scope. A choice used in one block of a Repeat is that block's own decision when the other
    blocks have theirs (the factory made one per block); when none of them has that label, it was passed in from
    outside for that block alone (a stage's first stride), so it is a decision of the scope around the Repeat.
    Also, per choice lifted out of exactly one Repeat, that (Repeat id, block index): it counts only where the
    block runs."""
    blocks = {id(r): len(r.blocks()) for r, _ in walk.repeats}
    labelled = {(scope, walk.leaves[key].label) for key, scope in placed.items()}
    out, lifted = {}, {}
    for key, scope in placed.items():
        label, start = walk.leaves[key].label, scope
        while scope and blocks[scope[-1][0]] > 1 and not any(
                (scope[:-1] + ((scope[-1][0], j),), label) in labelled
                for j in range(blocks[scope[-1][0]]) if j != scope[-1][1]):
            scope = scope[:-1]
        out[key] = scope
        if len(start) == len(scope) + 1:
            lifted[key] = start[-1]
    return out, lifted


def _block_condition(scope: Chain, entries: list[tuple[Choice, list[Use]]], lifted: Mapping[int, tuple[int, int]],
                     walk: _Walk) -> tuple[str, list[Any]] | None:
    """(depth label, depths that run the block) for a choice lifted out of one block of a Repeat of this scope whose
    choice depth can leave that block out: at a lower depth the choice changes nothing, so it is no decision there
    (twin architectures otherwise)."""
    origins = {lifted.get(id(leaf)) for leaf, _ in entries}
    if len(origins) != 1 or None in origins:
        return None
    (repeat_id, index), = origins
    for repeat, use in walk.repeats:
        if id(repeat) == repeat_id and use.chain == scope and isinstance(repeat.depth, Choice):
            runs = [d for d in repeat.depth.options if d > index]
            return (repeat.depth.label, runs) if len(runs) < len(repeat.depth.options) else None
    return None


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


def derive(net: nn.Module, defer: bool = False) -> Derivation:
    """The space fields of `net`'s choice points (and validation of every one, naming its module path). `defer`:
    a choice kept on a plain module and used by no choice point is left in `stored` for the caller to raise
    (after a run of the model that may name the forward line that reads it), not raised here."""
    walk = _Walk()
    _walk(net, "", (), (), "", walk)
    _unique_labels(walk)
    placed: dict[int, Chain] = {}
    for key, uses in walk.uses.items():
        leaf = walk.leaves[key]
        if not isinstance(leaf.label, str) or not leaf.label.isidentifier():
            raise SpaceDefinitionError(f"{uses[0].where}: choice label {leaf.label!r} must be an identifier "
                                       "(it names a field of the space)")
        placed[key] = _common([u.chain for u in uses])
    scopes: dict[Chain, dict[str, list[tuple[Choice, list[Use]]]]] = {}
    scoped, lifted = _lift(placed, walk)
    for key, scope in scoped.items():
        scopes.setdefault(scope, {}).setdefault(walk.leaves[key].label, []).append((walk.leaves[key], walk.uses[key]))
    for scope, labels in scopes.items():
        for label, entries in labels.items():
            for k in range(len(scope)):
                if label in scopes.get(scope[:k], {}):
                    outer = scopes[scope[:k]][label][0][1][0].where
                    raise SpaceDefinitionError(
                        f"{entries[0][1][0].where}: label {label!r} is created inside a Repeat's block and also used "
                        f"outside it (at {outer}); a choice made by a Repeat's factory is one decision per block: "
                        "give it another label, or create it outside the factory to share it")
    stored = _check_stored(walk)
    if stored is not None and not defer:
        raise SpaceDefinitionError(stored)
    out = Derivation(ranks=_ranks(walk), stored=stored)
    for obj, path, module in walk.points:
        out.points.setdefault(obj.label, []).append((path or "<model>", module))
    out.fields = _fields((), scopes, walk, out.defaults, lifted)
    if not out.fields:
        raise SpaceDefinitionError(f"{type(net).__name__}: has no choice points (no Choice, LayerChoice, "
                                   "InputChoice or Repeat with a choice depth)")
    return out


def _fields(scope: Chain, scopes: Mapping[Chain, Any], walk: _Walk, defaults: ScopeDefaults,
            lifted: Mapping[int, tuple[int, int]]) -> dict[str, Any]:
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
        defaults.setdefault(label, _first(node))
        cond = _condition(scope, [u for _, us in entries for u in us]) or _block_condition(scope, entries, lifted, walk)
        fields[label] = Conditional(cond[0], cond[1], node) if cond else node
        where[label] = uses[0].where
    for repeat, use in walk.repeats:
        if use.chain != scope:
            continue
        block_defaults = [ScopeDefaults() for _ in repeat.blocks()]
        blocks = [_fields(scope + ((id(repeat), i),), scopes, walk, block_defaults[i], lifted)
                  for i in range(len(repeat.blocks()))]
        for i, b in enumerate(blocks[1:], 1):
            if Space._unchecked(b).to_spec() != Space._unchecked(blocks[0]).to_spec():
                raise SpaceDefinitionError(f"{use.path}.{i}: the blocks of a Repeat must hold the same choices "
                                           f"(block 0 has {sorted(blocks[0])}, block {i} has {sorted(b)})")
        if repeat.label in fields:  # also for blocks without choices: their contexts would read the other's value
            other = "another Repeat" if isinstance(fields[repeat.label], RepeatField) else "a choice"
            raise SpaceDefinitionError(f"{use.path}: the Repeat's label {repeat.label!r} is also the label of {other} "
                                       f"(at {where[repeat.label]}); give one of them another label")
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
        fields[repeat.label] = node
        where[repeat.label] = use.path
        defaults.blocks[repeat.label] = block_defaults[0]  # the blocks hold the same choices
    return fields


def _first(node: Any) -> Any:
    return node.default() if hasattr(node, "default") else node.options[0]


def _describe(node: Any) -> str:
    return repr(list(node.options)) if isinstance(node, ChoiceField) else repr(node)


# ---------------------------------------------------------------------------------------- architecture at work
def bind(module: nn.Module, ctx: Context | None) -> None:
    """Make every choice point under `module` take its value in `ctx` (None: unbind, or switched off).

    A module reached in several places (one instance shared by a Repeat's blocks, or used directly and as a
    LayerChoice candidate) runs wherever one of them is on, so once bound to a value it keeps it: a block beyond
    the depth or a candidate not chosen, visited later, does not switch it off."""
    _bind(module, ctx, set(), set())


def _bind(module: nn.Module, ctx: Context | None, on: set[int], off: set[int]) -> None:
    """`bind`'s walk: `on` holds the modules bound to a value in this walk, `off` those visited switched off."""
    key = id(module)
    if key in on or (ctx is None and key in off):
        return
    if isinstance(module, Mutable):
        module.bind(ctx)
        (on if module._active is not None else off).add(key)
        for child, child_ctx in module.child_contexts(ctx):
            _bind(child, child_ctx, on, off)
    else:
        if ctx is None:
            off.add(key)
        for child in module.children():
            _bind(child, ctx, on, off)


def freeze(module: nn.Module, ctx: Context, fresh: bool = False,
           memo: dict[int, nn.Module] | None = None,
           tensors: dict[int, torch.Tensor] | None = None) -> nn.Module:
    """A copy of `module` for the architecture of `ctx` made of plain modules: each choice point replaced by its
    export (`fresh`: newly initialised layers instead of copies of the shared weights). A module registered
    under several names (tied weights) becomes one copy under all of them, and a parameter or buffer shared by
    several modules (`decoder.weight = embed.weight`) one tensor (`tensors`: original id -> copy). Every module
    keeps the train/eval mode of the module it comes from (an export, its choice point's).

    `memo` is keyed by the module alone: a module reached in several contexts (one instance shared by the blocks
    of a Repeat) holds only choices of a scope around all of them (the derivation puts them there), so it
    freezes alike in each, to one copy."""
    memo = {} if memo is None else memo
    tensors = {} if tensors is None else tensors
    key = id(module)
    if key in memo:
        return memo[key]
    if isinstance(module, Mutable):
        inner: list[nn.Module] = []

        def below(m: nn.Module, c: Context) -> nn.Module:
            inner.append(freeze(m, c, fresh, memo, tensors))
            return inner[-1]

        new = module.export(ctx, below, fresh)
        _set_mode(new, module.training, {id(m) for m in inner})
    else:
        children = {name: c for name, c in module._modules.items() if c is not None}  # every name, shared or not
        own = [(store, name, t) for store in ("_parameters", "_buffers")
               for name, t in getattr(module, store).items() if t is not None]
        seen = {id(t): tensors[id(t)] for _, _, t in own if id(t) in tensors}  # copied already: shared
        new = copy.deepcopy(module, {**seen, **{id(c): c for c in children.values()}})  # its tensors; children below
        for store, name, t in own:
            tensors.setdefault(id(t), getattr(new, store)[name])
        for name, child in children.items():
            new._modules[name] = freeze(child, ctx, fresh, memo, tensors)
    memo[key] = new
    return new


def _set_mode(module: nn.Module, training: bool, frozen: set[int]) -> None:
    """`training` for `module` and its submodules, except those in `frozen` (they keep their own source's)."""
    if id(module) in frozen:
        return
    module.training = training
    for child in module.children():
        _set_mode(child, training, frozen)


@torch.no_grad()
def probe_shapes(net: nn.Module, archs: list[Mapping[str, Any]], x: Any, defaults: Mapping[str, Any]) -> set[int]:
    """Run `net` on `x` for each architecture with every LayerChoice running all its candidates and every
    InputChoice comparing all its inputs, so that candidates giving different output shapes are found now
    (SpaceDefinitionError naming the module path). Returns the ids of the modules that ran."""
    choices = [m for m in net.modules() if isinstance(m, (LayerChoice, InputChoice))]
    ran: set[int] = set()
    hooks = [m.register_forward_pre_hook(lambda module, args: ran.add(id(module))) for m in net.modules()]
    was = net.training
    net.eval()
    try:
        for m in choices:
            m.probe = True
        for arch in archs:
            bind(net, Context(arch, defaults=defaults))
            net(*x) if isinstance(x, tuple) else net(x)
    finally:
        for hook in hooks:
            hook.remove()
        for m in choices:
            m.probe = False
        bind(net, None)
        net.train(was)
    return ran
