"""DARTS and ProxylessNAS on a user's model (`nas.nn.ModuleSpace`): architecture parameters on its choice points.

`MixedModuleSupernet` wraps the model's weight-sharing supernet (`nas.nn.Supernet`) and gives every searched
`LayerChoice` and `InputChoice` a row of architecture parameters (alphas): DARTS (and darts2, RARTS) runs all
candidates weighted by softmax(alpha), ProxylessNAS and hard Gumbel paths one sampled candidate with a
straight-through gate (the cell supernet's `softmax_mixing` / `BinaryGates` / `GumbelHardGates`; k sampled
inputs for an InputChoice picking k). Every other choice (elastic widths and kernels, a `Repeat`'s
depth, any value choice) is held at one value during the search: the largest option of an ordered choice,
the first of a categorical one, unless `fixed` names it (a LayerChoice named in `fixed` is not searched).
`ModuleOneShotTrainer` is `OneShotTrainer`'s bilevel loop on it; `candidate_costs` prices each candidate
for the latency loss (`EdgeCosts`, one row per searched LayerChoice) from a lookup table through the
user-model layer adapter `nas.hardware.nn_layers.NNLayers`, or from FLOPs.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.architecture import Architecture
from nas.errors import ConfigError, InvalidArchitectureError
from nas.hardware.layers import LayerConfig, unique
from nas.hardware.learned import lut_latency
from nas.hardware.lut import LatencyTable
from nas.hardware.nn_layers import NNLayers
from nas.nn.derive import bind
from nas.nn.frozen import reduce_inputs
from nas.nn.model_space import ModuleSpace, Supernet
from nas.nn.mutable import Context, InputChoice, LayerChoice, Repeat
from nas.spaces.cell import BinaryGates, MixWeights, Mixing, softmax_mixing
from nas.spaces.params import Choice as ChoiceField, Conditional, Integer, Subset
from nas.spaces.space import Repeat as RepeatField, Space
from nas.strategies.oneshot import METHODS, DartsOptions, GumbelHardGates, OneShotTrainer
from nas.strategies.oneshot_latency import EdgeCosts, ensure_table

__all__ = ["MixedModuleSupernet", "ModuleOneShotTrainer", "Point", "candidate_costs", "held_values", "module_costs",
           "priced_archs", "table_layers"]


@dataclass(frozen=True)
class Point:
    """One searched choice point: the module, where its value sits in an architecture (`where`, joined by "/": its
    alpha's key; choice points of one label in one scope share it), its module path and the context it runs in."""

    module: LayerChoice | InputChoice
    where: tuple[str | int, ...]
    path: str
    ctx: Context

    @property
    def key(self) -> str:
        return "/".join(str(w) for w in self.where)

    @property
    def options(self) -> list[Any]:
        m = self.module
        return list(m.keys) if isinstance(m, LayerChoice) else list(range(m.n_candidates))


def held_values(space: ModuleSpace, fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every label of `space` at the value the one-shot search holds it at (inactive conditional fields
    included, so that every candidate can run): `fixed[label]`, else the largest option of an ordered
    choice, else the first option; a label inside a `Repeat` takes it in every block."""
    fixed = dict(fixed or {})
    known: set[str] = set()

    def values(fields: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        repeats = {}
        for name, node in fields.items():
            known.add(name)
            node = node.node if isinstance(node, Conditional) else node
            if isinstance(node, (RepeatField, Space)) and name in fixed:
                inner = node.block.fields if isinstance(node, RepeatField) else node.fields
                raise ConfigError(f"fixed: {name!r} is a group of choices, not one; fix the labels inside it "
                                  f"({', '.join(inner)}), which then hold in every block")
            if isinstance(node, RepeatField):
                repeats[name] = node
            elif isinstance(node, Space):
                out[name] = values(node.fields)
            elif name in fixed:
                out[name] = fixed[name]
            elif isinstance(node, Subset):
                out[name] = node.default()
            elif isinstance(node, Integer) or (isinstance(node, ChoiceField) and node.ordered):
                out[name] = max(node.options)
            else:
                out[name] = node.options[0]
        for name, node in repeats.items():
            count = node.count if isinstance(node.count, int) else out[node.count]
            out[name] = [values(node.block.fields) for _ in range(count)]
        return out

    held = values(space.fields)
    unknown = sorted(set(fixed) - known)
    if unknown:
        raise ConfigError(f"fixed: {unknown[0]!r} is not a label of this space (labels: {', '.join(sorted(known))})")
    return held


def active_values(fields: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` without the fields that are inactive in it (conditionals switched off, blocks past the depth)."""
    out: dict[str, Any] = {}
    for name, node in fields.items():
        if isinstance(node, Conditional):
            if not node.active(values[node.on]):
                continue
            node = node.node
        value = values[name]
        if isinstance(node, RepeatField):
            count = node.count if isinstance(node.count, int) else values[node.count]
            value = [active_values(node.block.fields, b) for b in value[:count]]
        elif isinstance(node, Space):
            value = active_values(node.fields, value)
        out[name] = value
    return out


def _points(module: nn.Module, ctx: Context, where: tuple, path: str, fixed: Mapping[str, Any],
            out: list[Point]) -> None:
    """The searched choice points in `module` that run in `ctx` (blocks past a Repeat's depth do not)."""
    if isinstance(module, Repeat):
        for i, block in enumerate(module.blocks()[:module.current_depth(ctx)]):
            _points(block, ctx.block(module.label, i), where + (module.label, i), f"{path}.{i}", fixed, out)
        return
    if isinstance(module, (LayerChoice, InputChoice)) and module.choice.label not in fixed:
        out.append(Point(module, where + (module.choice.label,), path, ctx))
    for name, child in module.named_children():
        _points(child, ctx, where, f"{path}.{name}" if path else name, fixed, out)


def _set(values: dict[str, Any], where: tuple, value: Any) -> None:
    for step in where[:-1]:
        values = values[step]
    values[where[-1]] = value


def _drop(values: dict[str, Any], where: tuple) -> None:
    for step in where[:-1]:
        values = values[step]
    values.pop(where[-1], None)


class MixedModuleSupernet(nn.Module):
    """A user model's supernet with architecture parameters: `forward(x)` mixes (or samples) the candidates
    of every searched LayerChoice / InputChoice; `derive()` is the argmax architecture; `subnet(arch)` the
    wrapped supernet's standalone module."""

    def __init__(self, supernet: Supernet, mixing: Mixing, fixed: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.inner, self.space, self.mixing = supernet, supernet.space, mixing
        self.fixed = dict(fixed or {})
        self.held = held_values(self.space, self.fixed)
        points: list[Point] = []
        _points(supernet.net, Context(self.held, defaults=self.space.defaults), (), "", self.fixed, points)
        if not points:
            try:  # a bad fixed value is named first: fixing it may leave a point to search
                self.space.validate(active_values(self.space.fields, self.held))
            except InvalidArchitectureError as e:
                raise ConfigError(f"fixed: {e}") from None
            raise ConfigError(f"space: {self.space.model.__name__} has no LayerChoice or InputChoice left to search "
                              "(DARTS searches those; search the other choices with nas.search)")
        self.points = points
        sizes: dict[str, int] = {}
        for p in points:
            m = p.module
            if isinstance(m, InputChoice) and m.reduction == "concat" and m.n_chosen < m.n_candidates:
                raise ConfigError(f"{p.path}: an InputChoice that concatenates {m.n_chosen} of {m.n_candidates} "
                                  "inputs has no continuous relaxation (use reduction 'sum' or 'mean', or fix it)")
            sizes.setdefault(p.key, len(p.options))
        self.picks = {p.key: getattr(p.module, "n_chosen", 1) for p in points}
        self.alphas = nn.ParameterDict({k: nn.Parameter(1e-3 * torch.randn(1, n)) for k, n in sizes.items()})
        self.betas = None  # no edge normalisation (PC-DARTS) here
        try:
            self.architecture(self.choices())  # the held and fixed values form an architecture of the space
        except InvalidArchitectureError as e:
            raise ConfigError(f"fixed: {e}") from None

    def held_choices(self) -> dict[str, Any]:
        """The held values without the searched points' places: what the journal and model cards call held."""
        values = copy.deepcopy(self.held)
        for p in self.points:
            _drop(values, p.where)
        return values

    # -- the DARTS interface of OneShotTrainer
    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        """The weights the search trains: frozen ones (requires_grad=False, a pretrained backbone) are left out,
        so second-order DARTS differentiates only what it steps."""
        return [p for p in self.inner.parameters() if p.requires_grad]

    def edge_scales(self, kind: str) -> None:
        return None

    def op_weights(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) per decision, shaped [1, options]."""
        return {k: F.softmax(a.detach(), dim=-1) for k, a in self.alphas.items()}

    def choices(self, weights: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
        """Each decision's argmax: a LayerChoice's candidate key, an InputChoice's `n_chosen` best inputs."""
        weights = weights if weights is not None else self.op_weights()
        out: dict[str, Any] = {}
        for p in self.points:
            w = weights[p.key][0]
            if isinstance(p.module, LayerChoice):
                out[p.key] = p.options[int(w.argmax())]
            else:
                out[p.key] = sorted(int(i) for i in w.topk(p.module.n_chosen).indices)
        return out

    def derive(self) -> Architecture:
        """The architecture the alphas point at (the held values for everything not searched), validated."""
        return self.architecture(self.choices())

    def architecture(self, choices: Mapping[str, Any]) -> Architecture:
        """The held values with `choices` ({decision key: value}) filled in, validated by the space."""
        values = held_values(self.space, self.fixed)
        for p in self.points:
            _set(values, p.where, choices[p.key])
        return self.space.validate(active_values(self.space.fields, values))

    def subnet(self, arch: Mapping[str, Any]) -> nn.Module:
        return self.inner.subnet(arch)

    # -- forward
    @contextmanager
    def bound(self, mixes: Mapping[str, MixWeights]) -> Iterator[nn.Module]:
        """Within the block the wrapped network runs the held values, every searched point mixing its
        candidates (or inputs) by `mixes[key]`."""
        modules = {id(p.module): p for p in self.points}
        for p in modules.values():
            if isinstance(p.module, LayerChoice):
                p.module.probe = True  # bind every candidate, not only the held one
            p.module.forward = partial(_mixed_forward, p.module, mixes[p.key])
        bind(self.inner.net, Context(self.held, defaults=self.space.defaults))
        try:
            yield self.inner.net
        finally:
            bind(self.inner.net, None)
            for p in modules.values():
                p.module.__dict__.pop("forward", None)
                if isinstance(p.module, LayerChoice):
                    p.module.probe = False

    def forward(self, x: Any) -> Any:
        mixes = {k: self.mix(k, a) for k, a in self.alphas.items()}
        with self.bound(mixes) as net:
            return net(*x) if isinstance(x, tuple) else net(x)

    def mix(self, key: str, alpha: torch.Tensor) -> MixWeights:
        """The mixing of one decision; ProxylessNAS and hard Gumbel paths on an InputChoice picking k > 1 sample k
        distinct inputs, so the supernet trains the k-input sum (or concatenation) the derived architecture runs."""
        k = self.picks[key]
        if k > 1 and isinstance(self.mixing, GumbelHardGates):
            return self.mixing(alpha, k)
        if k == 1 or not isinstance(self.mixing, BinaryGates):
            return self.mixing(alpha)
        probs = F.softmax(alpha, dim=-1)
        index = torch.multinomial(probs.detach(), k, generator=self.mixing.generator)
        hard = torch.zeros_like(probs).scatter_(-1, index, 1.0)
        return MixWeights(hard - probs.detach() + probs, hard.bool())


def _mixed_forward(module: LayerChoice | InputChoice, mix: MixWeights, *args: Any, **kwargs: Any) -> Any:
    """A searched point's output: its candidates (or inputs) weighted by `mix`, only the active ones computed."""
    weights, active = mix.weights[0], mix.active_row(0)
    if isinstance(module, InputChoice):
        (inputs,) = args
        picked = [weights[i] * x for i, x in enumerate(inputs) if active is None or active[i]]
        if active is not None:  # sampled: the k chosen inputs, each gated straight-through
            return reduce_inputs(picked, module.reduction)
        if module.reduction == "concat":  # all n inputs (k < n is refused): each weighted, times n to keep its size
            return reduce_inputs([module.n_chosen * x for x in picked], "concat")
        scale = module.n_chosen if module.reduction == "sum" else 1  # weights sum to 1: the size of k inputs
        return scale * reduce_inputs(picked, "sum")
    out = None
    for i, key in enumerate(module.keys):
        if active is None or active[i]:
            y = module.candidate(key)(*args, **kwargs)
            if isinstance(y, torch.Tensor) and (out is None or isinstance(out, torch.Tensor)):
                y = weights[i] * y
                out = y if out is None else out + y
            else:  # a tuple, list or dict of tensors (nn.GRU / nn.RNN: (output, h_n)): mixed element-wise
                if out is not None and _structure(out) != _structure(y):
                    raise ConfigError(
                        f"{module._path}: LayerChoice candidate {key!r} returns a {_structure(y)} where an earlier "
                        f"candidate returns a {_structure(out)}; a one-shot search mixes the candidates' outputs, "
                        "which must have one structure: hold this LayerChoice with fixed=, or search it with "
                        "nas.search")
                y = _structured(module, key, y, lambda t, w=weights[i]: w * t)
                out = y if out is None else _add(out, y)
    return out


def _structured(module: LayerChoice, key: Any, y: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """`fn` applied to every tensor of a candidate's output (tensors, or tuples, lists and dicts of them)."""
    if isinstance(y, torch.Tensor):
        return fn(y)
    if isinstance(y, (tuple, list)):
        items = [_structured(module, key, v, fn) for v in y]
        return type(y)(*items) if hasattr(y, "_fields") else type(y)(items)
    if isinstance(y, Mapping):
        return {k: _structured(module, key, v, fn) for k, v in y.items()}
    raise ConfigError(f"{module._path}: LayerChoice candidate {key!r} returns a {type(y).__name__}; a one-shot "
                      "search mixes the candidates' outputs, which must be tensors (or tuples, lists or dicts of "
                      "tensors of the same structure): hold this LayerChoice with fixed=, or search it with nas.search")


def _add(a: Any, b: Any) -> Any:
    """The element-wise sum of two candidates' outputs of one structure."""
    if isinstance(a, torch.Tensor):
        return a + b
    if isinstance(a, (tuple, list)):
        items = [_add(x, y) for x, y in zip(a, b)]
        return type(a)(*items) if hasattr(a, "_fields") else type(a)(items)
    return {k: _add(a[k], b[k]) for k in a}


def _finite(value: Any) -> bool:
    """Whether every floating tensor in `value` (a tensor, or tuples, lists and dicts of them) is finite."""
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    if isinstance(value, Mapping):
        return all(_finite(v) for v in value.values())
    return True


def _structure(y: Any) -> str:
    if isinstance(y, torch.Tensor):
        return "tensor"
    if isinstance(y, (tuple, list)):
        return f"{type(y).__name__} ({', '.join(_structure(v) for v in y)})"
    if isinstance(y, Mapping):
        return f"dict ({', '.join(f'{k}: {_structure(v)}' for k, v in y.items())})"
    return type(y).__name__


class ModuleOneShotTrainer(OneShotTrainer):
    """`OneShotTrainer` on a user model: the same bilevel loop, optimisers, checkpoints and latency loss,
    over a `MixedModuleSupernet` (every method but pc-darts, whose partial channels need cells)."""

    def __init__(self, space: ModuleSpace, options: DartsOptions, seed: int = 0, costs: EdgeCosts | None = None,
                 fixed: Mapping[str, Any] | None = None) -> None:
        if not isinstance(space, ModuleSpace):
            raise ConfigError(f"space: expected a nas.nn ModuleSpace (Net.space()), got {type(space).__name__}")
        if options.spec.partial_channels:
            raise ConfigError(f"method: {options.method!r} splits a cell's channels; on a user model use one of "
                              + ", ".join(repr(m) for m, spec in METHODS.items() if not spec.partial_channels))
        self.fixed = dict(fixed or {})
        super().__init__(space, options, seed, costs)

    def build_supernet(self, mixing: Mixing) -> MixedModuleSupernet:
        return MixedModuleSupernet(self.space.supernet(), mixing, self.fixed)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.space.example_input({}, 1).shape[1:])

    def num_classes(self) -> int | None:
        """The size of dimension 1 of the supernet's output on one example, from a copy in eval mode (the supernet,
        its modules' generators and the path sampler's are left untouched); None for an output of another form."""
        probe = copy.deepcopy(self.supernet).eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = probe(self.space.example_input({}, 1))
        return int(out.shape[1]) if isinstance(out, torch.Tensor) and out.dim() >= 2 else None

    def non_finite_source(self, x: torch.Tensor, module: nn.Module | None = None) -> str | None:
        """The first submodule (a LayerChoice's candidate named by label and key) whose output is not finite though
        its inputs are, in one forward of `x` through a copy of the supernet (or RARTS's twin, `module`) running
        every candidate; None when every submodule's output is finite or its inputs were already not."""
        net = copy.deepcopy(module if module is not None else self.supernet)
        net.mixing = softmax_mixing  # every candidate runs, not only a sampled one
        names = {id(m): name for name, m in net.inner.net.named_modules()}
        found: list[nn.Module] = []

        def check(m: nn.Module, args: Any, out: Any) -> None:
            if not found and _finite(args) and not _finite(out):
                found.append(m)

        handles = [m.register_forward_hook(check) for m in net.inner.net.modules()]
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                net(x)
        except Exception:  # the diagnosis is best effort: the divergence itself is what gets reported
            return None
        finally:
            for h in handles:
                h.remove()
        if not found:
            return None
        path = names.get(id(found[0]), "")
        owned = any(True for _ in found[0].parameters())
        advice = "; if its weights grew too large, lower w_lr ({}) or grad_clip ({})".format(
            self.options.w_lr, self.options.grad_clip) if owned else ""
        for p in net.points:
            if not isinstance(p.module, LayerChoice):
                continue
            for k in p.options:
                if f"{path}.".startswith(f"{p.path}.{k}."):
                    inner = "" if path == f"{p.path}.{k}" else f" (its submodule {path!r})"
                    return (f"LayerChoice {p.module.choice.label!r} (at {p.path!r}): candidate {k!r}{inner} outputs "
                            "NaN or infinite values from finite inputs; fix that candidate, or hold "
                            f"{p.module.choice.label!r} at another candidate with fixed={advice}")
        what = f"module {path!r} ({type(found[0]).__name__})" if path else \
            f"{type(found[0]).__name__}.forward (outside its submodules)"
        return f"{what} outputs NaN or infinite values from finite inputs{advice}"

    def chosen_ops(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """{decision key: its value in `arch`} for every searched point active in it."""
        out = {}
        for p in self.supernet.points:
            value: Any = arch
            try:
                for step in p.where:
                    value = value[step]
            except (KeyError, IndexError):
                continue
            out[p.key] = value
        return out

    def op_shares(self, arch: Mapping[str, Any]) -> tuple[float, float]:
        """Shares of the derived LayerChoices whose candidate has no parameters, and that are `nn.Identity`."""
        ops = self.chosen_ops(arch)
        chosen = [p.module.candidate(ops[p.key]) for p in self.supernet.points
                  if isinstance(p.module, LayerChoice) and p.key in ops]
        if not chosen:
            return 0.0, 0.0
        free = sum(not any(True for _ in m.parameters()) for m in chosen)
        return free / len(chosen), sum(isinstance(m, nn.Identity) for m in chosen) / len(chosen)


# ---------------------------------------------------------------------------------------- candidate costs
# The per-candidate layers come from `nas.hardware.nn_layers.NNLayers` (the lookup-table adapter of user
# models): the one place that decides what a candidate costs.
def priced_archs(supernet: MixedModuleSupernet) -> list[Architecture]:
    """Architectures (held values elsewhere) in which every value of every searched point is picked (each
    candidate of a LayerChoice, each subset of an InputChoice's inputs): the layers of every architecture the
    search can derive, since a candidate's input shape does not depend on the other decisions."""
    values = {p.key: p.options if isinstance(p.module, LayerChoice) else
              [list(c) for c in itertools.combinations(p.options, p.module.n_chosen)] for p in supernet.points}
    n = max(len(v) for v in values.values())
    rows = [{k: v[min(i, len(v) - 1)] for k, v in values.items()} for i in range(n)]
    for p in supernet.points:  # a LayerChoice nested in another's candidate runs only where that one is picked
        outer = {q.key: k for q in supernet.points if isinstance(q.module, LayerChoice)
                 for k in q.options if f"{p.path}.".startswith(f"{q.path}.{k}.")}
        if not outer:
            continue
        for value in values[p.key]:
            want = {**outer, p.key: value}
            if not any(all(row[k] == v for k, v in want.items()) for row in rows):
                rows.append({**rows[0], **want})
    return [supernet.architecture(row) for row in rows]


def table_layers(adapter: NNLayers, archs: list[Architecture]) -> list[LayerConfig]:
    """Every layer a lookup table must hold for the search: those of the whole networks of `archs` and of
    every candidate of their LayerChoices, each once."""
    return unique([layer for arch in archs for layer in adapter.layers(arch)]
                  + [layer for arch in archs for c in adapter.choice_layers(arch)
                     for layers in c.candidates.values() for layer in layers])


def candidate_costs(supernet: MixedModuleSupernet, adapter: NNLayers, table: LatencyTable | None = None) -> EdgeCosts:
    """Each searched LayerChoice's candidates priced for the latency loss, summed over the points sharing a
    decision: the table's latency of the candidate's layers (ms), or without a table their FLOPs (MFLOPs of
    one input, an analytic proxy). Each candidate is priced in an architecture that picks it."""
    if table is not None:
        cost: Callable[[list[LayerConfig]], float] = table.predict
    else:
        def cost(layers: list[LayerConfig]) -> float:
            return sum(leaf.flops for layer in layers for leaf in adapter.layer_counts(layer)) / 1e6

    def inside(a: Any, b: Any) -> bool:  # choice point `a` sits in the candidate `b` picks
        return f"{a.path}.".startswith(f"{b.path}.{b.chosen}.")

    prices: dict[str, dict[Any, float]] = {}
    for arch in priced_archs(supernet):
        points = adapter.choice_layers(arch)
        full = {c.path: cost(c.candidates[c.chosen]) for c in points}
        for c in points:  # a candidate holding LayerChoices is priced without them: they carry their own prices
            nested = [d for d in points if inside(d, c)]
            direct = [d for d in nested if not any(inside(d, e) for e in nested if e is not d)]
            prices.setdefault(c.path, {})[c.chosen] = full[c.path] - sum(full[d.path] for d in direct)
    rows: dict[str, list[list[float]]] = {}
    for p in supernet.points:
        if isinstance(p.module, LayerChoice):
            missing = [k for k in p.options if k not in prices.get(p.path, {})]
            if missing:
                raise ConfigError(f"{p.path}: candidate {missing[0]!r} never runs in the priced architectures (a "
                                  "LayerChoice nested in another's candidate): hold the outer one with fixed=")
            rows.setdefault(p.key, []).append([prices[p.path][k] for k in p.options])
    costs = {k: torch.tensor(r, dtype=torch.float32).sum(dim=0, keepdim=True) for k, r in rows.items()}
    return EdgeCosts(costs, "lut" if table is not None else "flops", "ms" if table is not None else "mflops")


def module_costs(supernet: MixedModuleSupernet, options: DartsOptions, table: LatencyTable | str | os.PathLike | None,
                 path: Path | None) -> tuple[EdgeCosts | None, Callable[[Mapping[str, Any]], float] | None]:
    """`search_darts`'s latency-loss costs (`options.latency_source` "lut": `table`, or one profiled now at
    `path` holding the layers of every architecture the search can derive; "flops"; "off": none) and, with a
    table, the whole network's latency. No costs where no LayerChoice is searched (InputChoices only)."""
    source = options.latency_source
    if source == "off":
        return None, None
    archs = priced_archs(supernet)
    adapter = NNLayers(supernet.space, archs=archs)
    latency_of = None
    if source == "lut":
        if isinstance(table, (str, os.PathLike)):
            table = LatencyTable.load(table)
        if table is None:
            if path is None:
                raise ConfigError("latency_table: a lookup-table latency needs a table or a workdir to build one in")
            table = ensure_table(adapter, path, layers=table_layers(adapter, archs))
        table.check_adapter(adapter)
        missing = table.missing(table_layers(adapter, archs))
        if missing:
            raise ConfigError(f"latency table {table.path or '(in memory)'}: lacks {len(missing)} layers of this "
                              f"model, e.g. {missing[0].key} (extend it with build_table(NNLayers(space), path))")
        latency_of = lut_latency(table, adapter).latency_ms
    costs = candidate_costs(supernet, adapter, table if source == "lut" else None)
    if options.latency_weight > 0 and not any(bool(c.any()) for c in costs.costs.values()):
        raise ConfigError("latency_weight: no searched LayerChoice candidate costs anything by this measure (none "
                          "is searched, or all are parameter-free under latency='flops'): nothing to weigh")
    return (costs if costs.costs else None), latency_of
