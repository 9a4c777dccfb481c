"""Few-shot NAS with gradient-matching splits (Hu et al., "Generalizing Few-Shot NAS with Gradient Matching",
ICLR 2022) on the NAS-Bench-201 cell supernet.

One weight-sharing supernet ranks architectures poorly because every op of an edge trains the same shared
weights in different directions. Few-shot NAS splits the supernet into sub-supernets, each holding a subset
of one edge's ops, warm-started from the parent. Gradient matching picks where to split: for an edge, the
gradient of the shared weights (every weight outside that edge's ops) is computed with each candidate op
on the edge (other edges on one sampled path, the same for every op); ops whose gradients point apart
(low cosine similarity) go to different sub-supernets. Each sub-supernet splits on the edge whose best
balanced partition has the lowest mean cross-group similarity, `levels` times (so on <= `levels` edges).

Training is uniform single-path sampling (one op per edge per step, as SPOS) within each sub-supernet's
subspace; the total number of supernet steps is the same for every `splitter` ("none" is one-shot): the
budget is cut into `levels + 1` equal phases (or `parent_fraction` of it before the first split and the rest
in `levels` equal phases), and a phase's steps are shared evenly by the sub-supernets alive in it. An
architecture is rated by the one sub-supernet whose subspace contains it (batch norm recalibrated for its
path). `search_few_shot` journals the ratings as trials (`nas.load`, `nas status`, `nas pareto`) and keeps each
rated architecture's weights (its sub-supernet's, as `FewShotSupernets.subnet` gives them), so `nas export` turns
any of them into a standalone model.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nas import jsonio
from nas.errors import ConfigError, check_count, check_number, check_seed
from nas.experiment import (SAME_SEARCH, check_options, check_recorded_digest, open_experiment,
                            search_config)
from nas.modelspec import record_model, save_trial_weights
from nas.objectives import Problem
from nas.result import SearchResult
from nas.seeding import torch_seeded
from nas.spaces import Architecture
from nas.spaces.cell import NB201_EDGES, CellSupernet, MixWeights, NasBench201Space
from nas.spaces.training import accuracy, diverged, recalibrate_bn
from nas.splits import DIGEST_KEY, check_splits, splits_digest
from nas.store import Trial

log = logging.getLogger(__name__)

Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]
SPLITTERS = ("gradient", "random", "none")
SPLITS_FILE = "few_shot.json"

__all__ = ["FewShotOptions", "FewShotSupernets", "PathMixing", "SPLITTERS", "Split", "SubSupernet", "Subspace",
           "best_partition", "choose_split", "gradient_similarity", "phase_steps", "search_few_shot", "train_few_shot"]


# ---------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class FewShotOptions:
    """Settings of a few-shot supernet run (the same budget `epochs` for every `splitter`)."""

    splitter: str = "gradient"  # "gradient" (matching), "random" (random edge and partition), "none" (one-shot)
    levels: int = 2  # split rounds: up to 2**levels sub-supernets, each split on <= levels edges
    epochs: int = 48  # total supernet-training epochs (passes over "train"), summed over all sub-supernets
    batch_size: int = 64
    lr: float = 0.05  # SGD, cosine-annealed to lr_min along each sub-supernet's lineage (parent steps included)
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    gm_batches: int = 4  # batches whose gradients are summed per op before the cosine similarity
    balanced: bool = True  # partitions of k ops into k//2 and k - k//2 (else any two non-empty groups)
    calibration_size: int = 900  # training samples that recalibrate batch norm before rating an architecture
    parent_fraction: float | None = None  # share of the steps before the first split (None: levels + 1 equal phases)

    def __post_init__(self) -> None:
        if self.splitter not in SPLITTERS:
            raise ConfigError(f"splitter: expected one of {', '.join(SPLITTERS)}, got {self.splitter!r}")
        for name in ("epochs", "batch_size", "gm_batches", "calibration_size"):  # numpy ints taken, as Python ints
            object.__setattr__(self, name, check_count(getattr(self, name), name))
        if self.batch_size < 2:
            raise ConfigError(f"batch_size: expected an int >= 2 (batch norm needs 2 samples), got {self.batch_size}")
        if isinstance(self.levels, bool) or not isinstance(self.levels, numbers.Integral) or not 0 <= self.levels <= 4:
            raise ConfigError(f"levels: expected an int in 0..4, got {self.levels!r}")
        object.__setattr__(self, "levels", int(self.levels))
        fraction = self.parent_fraction
        if fraction is not None:
            if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
                raise ConfigError(f"parent_fraction: expected a number in (0, 1) or None, got {fraction!r}")
            object.__setattr__(self, "parent_fraction", float(fraction))
        if self.splitter == "none" and self.levels:
            raise ConfigError("levels: the one-shot splitter 'none' takes levels=0")
        # the checked values are kept (Python floats: a numpy float failed at the journal as 'config: not plain
        # JSON'); finite: inf and NaN failed there too
        for name in ("lr", "lr_min", "grad_clip"):
            object.__setattr__(self, name, check_number(getattr(self, name), name))
        for name in ("weight_decay", "momentum"):
            object.__setattr__(self, name, check_number(getattr(self, name), name, positive=False))
        if self.momentum >= 1:
            raise ConfigError(f"momentum: expected 0 <= momentum < 1, got {self.momentum!r}")
        if self.lr_min > self.lr:  # the cosine schedule anneals lr down to lr_min, never up
            raise ConfigError(f"lr_min: expected at most lr ({self.lr!r}), got {self.lr_min!r}")
        balanced = jsonio.python_scalar(self.balanced)  # np.bool_ is taken as a bool
        if not isinstance(balanced, bool):
            raise ConfigError(f"balanced: expected True or False, got {self.balanced!r}")
        object.__setattr__(self, "balanced", balanced)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------- subspaces
@dataclass(frozen=True)
class Subspace:
    """The ops each edge field (`edge_i_j`) may take in one sub-supernet; the parent allows every op."""

    allowed: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def full(cls, space: NasBench201Space) -> "Subspace":
        """Every op on every edge, the fields in the supernet's edge order."""
        return cls(tuple((f"edge_{i}_{j}", tuple(space.ops)) for i, j in NB201_EDGES))

    def ops(self, name: str) -> tuple[str, ...]:
        return dict(self.allowed)[name]

    def contains(self, arch: Mapping[str, Any]) -> bool:
        return all(arch[name] in ops for name, ops in self.allowed)

    def split(self, name: str, groups: Sequence[Sequence[str]]) -> list["Subspace"]:
        """One subspace per group of `name`'s ops (the groups must partition its allowed ops)."""
        ops = self.ops(name)
        flat = [o for g in groups for o in g]
        if sorted(flat) != sorted(ops) or any(not g for g in groups):
            raise ConfigError(f"groups: {groups!r} is not a partition of {name}'s ops {ops}")
        return [Subspace(tuple((n, tuple(o for o in ops if o in g) if n == name else allowed)
                               for n, allowed in self.allowed)) for g in groups]

    def sample(self, rng: np.random.Generator) -> dict[str, str]:
        """A uniform architecture of this subspace (one allowed op per edge)."""
        return {name: ops[int(rng.integers(len(ops)))] for name, ops in self.allowed}

    def size(self) -> int:
        return math.prod(len(ops) for _, ops in self.allowed)

    def to_dict(self) -> dict[str, list[str]]:
        return {name: list(ops) for name, ops in self.allowed}


class PathMixing:
    """A `Mixing` computing exactly one op per edge: the op indices in `path` (set before each forward)."""

    def __init__(self, edges: int) -> None:
        self.path = torch.zeros(edges, dtype=torch.long)

    def __call__(self, alpha: torch.Tensor) -> MixWeights:
        hot = F.one_hot(self.path, alpha.shape[-1]).to(alpha.dtype)
        return MixWeights(hot, hot.bool())


@dataclass(frozen=True)
class Split:
    """One split of a sub-supernet: the edge, its op groups, and the scores that chose them (gradient only)."""

    parent: int  # index of the split sub-supernet in its level
    level: int
    edge: str
    groups: tuple[tuple[str, ...], ...]
    score: float | None = None  # mean cross-group cosine similarity of the chosen partition
    edge_scores: dict[str, float] = field(default_factory=dict)  # every candidate edge's best score
    similarity: list[list[float]] = field(default_factory=list)  # the chosen edge's op x op cosine matrix

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(eq=False)
class SubSupernet:
    """A supernet restricted to `subspace`, with its optimiser, its data order and the splits that made it."""

    subspace: Subspace
    supernet: CellSupernet
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    steps: int = 0  # steps trained along the lineage (the parent's included)
    lineage: tuple[str, ...] = ()  # the edges split on the way here
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def path_of(self, arch: Mapping[str, Any]) -> torch.Tensor:
        ops = self.supernet.ops
        return torch.tensor([ops.index(arch[name]) for name, _ in self.subspace.allowed], dtype=torch.long)

    def use(self, arch: Mapping[str, Any]) -> None:
        """Make the supernet compute `arch`'s path."""
        self.supernet.mixing.path = self.path_of(arch)

    def next_batch(self, n: int, batch_size: int) -> np.ndarray:
        """The next `batch_size` indices of a reshuffled-every-epoch order of `n` samples (last partial dropped)."""
        if len(self.order) < batch_size:
            self.order = self.rng.permutation(n)
        idx, self.order = self.order[:batch_size], self.order[batch_size:]
        if len(self.order) < batch_size:
            self.order = self.order[:0]
        return idx

    def child(self, subspace: Subspace, seed: Sequence[int], edge: str) -> "SubSupernet":
        """A warm-started copy (weights, batch-norm statistics, momentum) restricted to `subspace`."""
        net = copy.deepcopy(self.supernet)
        opt = _optimizer(net, self.optimizer.defaults)
        opt.load_state_dict(self.optimizer.state_dict())
        return SubSupernet(subspace, net, opt, np.random.default_rng(list(seed)), self.steps,
                           self.lineage + (edge,))


def _optimizer(net: CellSupernet, settings: Mapping[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.weight_parameters(), lr=settings["lr"], momentum=settings["momentum"],
                           weight_decay=settings["weight_decay"])


# ---------------------------------------------------------------------------------------- gradient matching
def best_partition(similarity: np.ndarray, balanced: bool = True) -> tuple[float, tuple[tuple[int, ...], ...]]:
    """The 2-way partition of the ops (indices into `similarity`) with the lowest mean cross-group similarity.

    A minimum cut by enumeration (an edge has a handful of ops): balanced partitions put k//2 ops in one
    group, otherwise any non-empty pair of groups is allowed. Returns (score, (group_a, group_b)).
    """
    k = len(similarity)
    if k < 2:
        raise ConfigError(f"similarity: an edge needs >= 2 ops to split, got {k}")
    sizes = [k // 2] if balanced else range(1, k // 2 + 1)
    best: tuple[float, tuple[tuple[int, ...], ...]] | None = None
    for size in sizes:
        for a in itertools.combinations(range(k), size):
            b = tuple(i for i in range(k) if i not in a)
            score = float(np.mean(similarity[np.ix_(a, b)]))
            if best is None or score < best[0] - 1e-12:
                best = (score, (a, b))
    assert best is not None
    return best


def _shared_parameters(net: CellSupernet, edge: str) -> list[torch.nn.Parameter]:
    """The weights every op of `edge` shares: all but those of the edge's own ops (in every cell)."""
    key = edge.removeprefix("edge_")
    own = {id(p) for layer, kind in zip(net.layers, net.kinds) if kind for p in layer.edges[key].parameters()}
    return [p for p in net.weight_parameters() if id(p) not in own]


def gradient_similarity(sub: SubSupernet, edge: str, x: torch.Tensor, y: torch.Tensor, batches: int,
                        batch_size: int) -> np.ndarray:
    """Cosine similarity [k, k] of the shared weights' gradients with each of `edge`'s k allowed ops active.

    Gradients are summed over `batches` training batches; in each batch the other edges follow one path
    sampled from the subspace, the same for every op, so only the op on `edge` differs.
    """
    ops = sub.subspace.ops(edge)
    params = _shared_parameters(sub.supernet, edge)
    sums = [torch.zeros(sum(p.numel() for p in params)) for _ in ops]
    sub.supernet.train()
    for _ in range(batches):
        idx = torch.as_tensor(sub.next_batch(len(x), batch_size))
        arch = sub.subspace.sample(sub.rng)
        for total, op in zip(sums, ops):
            sub.use({**arch, edge: op})
            loss = F.cross_entropy(sub.supernet(x[idx]), y[idx])
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            total += torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])
    g = torch.stack(sums)
    if not bool(torch.isfinite(g).all()):  # a NaN similarity would score the split, then fail as JSON
        raise ConfigError(f"lr: the gradients of {edge}'s ops are not finite: the supernet diverged (lower lr)")
    g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (g @ g.T).numpy().astype(float)


def choose_split(sub: SubSupernet, x: torch.Tensor, y: torch.Tensor, options: FewShotOptions, index: int = 0,
                 level: int = 1) -> Split | None:
    """Where to split `sub` (None when no edge has two ops left): by gradient matching on training batches of
    (x, y) or, for `splitter="random"`, a random edge and partition. `index` and `level` only label the record."""
    edges = [name for name, ops in sub.subspace.allowed if len(ops) > 1]
    if not edges:
        return None
    if options.splitter == "random":
        edge = edges[int(sub.rng.integers(len(edges)))]
        ops = list(sub.subspace.ops(edge))
        order = sub.rng.permutation(len(ops))
        size = len(ops) // 2 if options.balanced else int(sub.rng.integers(1, len(ops) // 2 + 1))
        groups = (tuple(ops[i] for i in sorted(order[:size])), tuple(ops[i] for i in sorted(order[size:])))
        return Split(index, level, edge, groups)
    scored = {}
    for edge in edges:
        sim = gradient_similarity(sub, edge, x, y, options.gm_batches, options.batch_size)
        scored[edge] = (*best_partition(sim, options.balanced), sim)
    edge = min(edges, key=lambda e: (scored[e][0], edges.index(e)))
    score, (a, b), sim = scored[edge]
    ops = sub.subspace.ops(edge)
    log.info("level %d sub-supernet %d: split %s into %s | %s (score %.3f)", level, index, edge,
             [ops[i] for i in a], [ops[i] for i in b], score)
    return Split(index, level, edge, (tuple(ops[i] for i in a), tuple(ops[i] for i in b)), score,
                 {e: round(v[0], 6) for e, v in scored.items()}, np.round(sim, 6).tolist())


# ---------------------------------------------------------------------------------------- training
def phase_steps(total: int, levels: int, parent_fraction: float | None = None) -> list[list[int]]:
    """Steps per sub-supernet in each phase, phase p shared by 2**p sub-supernets: `levels + 1` equal phases, or
    `parent_fraction` of the steps for the parent and the rest in `levels` equal phases (a late split)."""
    if parent_fraction is None or levels == 0:
        phases = [total // (levels + 1) + (1 if p < total % (levels + 1) else 0) for p in range(levels + 1)]
    else:
        first = int(round(parent_fraction * total))
        rest = total - first
        phases = [first] + [rest // levels + (1 if p < rest % levels else 0) for p in range(levels)]
    return [[b // 2 ** p + (1 if k < b % 2 ** p else 0) for k in range(2 ** p)] for p, b in enumerate(phases)]


def _train(sub: SubSupernet, x: torch.Tensor, y: torch.Tensor, steps: int, lineage_steps: float,
           options: FewShotOptions) -> float:
    """`steps` single-path steps (uniform over the subspace); the mean loss. A non-finite loss is a ConfigError naming
    `lr` and the step, raised before the optimiser steps on it (as `nas.spaces.training.run_phase` does)."""
    net, total = sub.supernet, 0.0
    net.train()
    params = net.weight_parameters()
    for _ in range(steps):
        t = min(1.0, sub.steps / max(1.0, lineage_steps))
        lr = options.lr_min + 0.5 * (options.lr - options.lr_min) * (1 + math.cos(math.pi * t))
        for group in sub.optimizer.param_groups:
            group["lr"] = lr
        idx = torch.as_tensor(sub.next_batch(len(x), options.batch_size))
        sub.use(sub.subspace.sample(sub.rng))
        sub.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        value = float(loss.detach())
        if not math.isfinite(value):  # stop now, not after the budget with NaN ratings and split scores
            which = (f"the sub-supernet split on {', '.join(sub.lineage)} (steps counted along its lineage)"
                     if sub.lineage else "the parent supernet")
            raise diverged("lr", value, f"step {sub.steps + 1} of {which} (the supernet diverged)", options.lr)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, options.grad_clip)
        sub.optimizer.step()
        sub.steps += 1
        total += value
    return total / max(1, steps)


@dataclass(eq=False)
class FewShotSupernets:
    """The trained sub-supernets (their subspaces partition the space), the splits made and the steps used."""

    space: NasBench201Space
    subs: list[SubSupernet]
    splits: list[Split]
    steps: int  # total supernet-training steps, all sub-supernets together
    seconds: float
    calibration: torch.Tensor  # training inputs for batch-norm recalibration

    def owner(self, arch: Mapping[str, Any]) -> int:
        """The index of the one sub-supernet whose subspace contains `arch`."""
        arch = self.space.validate(arch)
        found = [k for k, s in enumerate(self.subs) if s.subspace.contains(arch)]
        if len(found) != 1:
            raise ConfigError(f"arch: contained in {len(found)} sub-supernets, expected exactly one")
        return found[0]

    @torch.no_grad()
    def _calibrated(self, arch: Mapping[str, Any]) -> tuple[int, CellSupernet]:
        """The index of `arch`'s sub-supernet and that supernet set to `arch`'s path, batch norm recalibrated for it
        (eval mode)."""
        k = self.owner(arch)
        sub = self.subs[k]
        sub.use(arch)
        return k, recalibrate_bn(sub.supernet, self.calibration.split(300))

    @torch.no_grad()
    def rate(self, arch: Mapping[str, Any], x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Supernet accuracy and loss of `arch` on (x, y) in its sub-supernet, batch norm recalibrated."""
        k, net = self._calibrated(arch)
        loss = float(sum(F.cross_entropy(net(xb), yb, reduction="sum") for xb, yb in zip(x.split(500), y.split(500))))
        return {"supernet_accuracy": accuracy(net, x, y), "supernet_loss": loss / len(x), "sub_supernet": float(k)}

    @torch.no_grad()
    def subnet(self, arch: Mapping[str, Any]) -> torch.nn.Module:
        """`arch` as a standalone network holding its sub-supernet's weights, batch norm recalibrated for its path
        (what `rate` scores; what `nas export` rebuilds). Eval mode."""
        return self._calibrated(arch)[1].subnet(arch).eval()

    def summary(self) -> dict[str, Any]:
        """Plain data: the splits, each sub-supernet's subspace, lineage and steps."""
        return {"steps": self.steps, "seconds": round(self.seconds, 2), "splits": [s.to_dict() for s in self.splits],
                "sub_supernets": [{"subspace": s.subspace.to_dict(), "size": s.subspace.size(),
                                   "lineage": list(s.lineage), "steps": s.steps} for s in self.subs]}


def _check_inputs(space: NasBench201Space, data: Splits, options: FewShotOptions,
                  required: Sequence[str] = ("train",)) -> None:
    """The `required` splits are there, none is misspelt or empty, inputs have the space's input shape (a 1-D space
    takes (N, channels, length), e.g. MNIST-1D unsqueezed to (N, 1, 40)), labels are class indices of the space,
    one per input, and "train" holds a batch (`nas.splits.check_splits`), before any training."""
    if not isinstance(space, NasBench201Space):
        raise ConfigError(f"space: few-shot splitting needs a NasBench201Space, got {type(space).__name__}")
    check_splits(data, required, input_shape=space.net.input_shape, min_size=options.batch_size,
                 size_field="batch_size", sized=("train",), num_classes=space.net.num_classes,
                 classes_field="space.net.num_classes")


def _splittable(sub: SubSupernet) -> bool:
    """Whether some edge of `sub`'s subspace still has two ops (a subspace that has none never changes again)."""
    return any(len(ops) > 1 for _, ops in sub.subspace.allowed)


def train_few_shot(space: NasBench201Space, data: Splits, options: FewShotOptions | Mapping[str, Any] | None = None,
                   seed: int = 0) -> FewShotSupernets:
    """Train the parent supernet, split it `options.levels` times (warm-started children), train the children.

    `data["train"]` = (x, y) trains the weights and scores the splits. The total number of steps is
    `options.epochs * (len(x) // batch_size)` whatever the splitter, so runs compare at equal budget: a
    sub-supernet with nothing left to split (every edge down to one op) trains its children's share too.
    """
    options = check_options(options, FewShotOptions)
    seed = check_seed(seed)
    _check_inputs(space, data, options)
    x, y = data["train"]
    t0 = time.perf_counter()
    with torch_seeded(seed):
        net = space.supernet(mixing=PathMixing(len(NB201_EDGES)))
    settings = {"lr": options.lr, "momentum": options.momentum, "weight_decay": options.weight_decay}
    subs = [SubSupernet(Subspace.full(space), net, _optimizer(net, settings), np.random.default_rng([seed, 0, 0]))]
    total = options.epochs * (len(x) // options.batch_size)
    plan = phase_steps(total, options.levels, options.parent_fraction)
    lineage_steps = sum(sum(p) / len(p) for p in plan)  # the cosine schedule's length along a lineage that splits

    def lifetime(sub: SubSupernet, level: int, slots: tuple[int, int]) -> float:
        """The steps `sub` trains in all, when it never splits again: it keeps its slots' share of every phase."""
        return float(sub.steps + sum(sum(plan[q][slots[0] << (q - level):slots[1] << (q - level)])
                                     for q in range(level, len(plan))))

    # each sub-supernet owns the slots [a, b) of its phase's plan (a split halves them, no split keeps them all)
    # and a cosine-schedule length (`lineage_steps`, or all the steps it will train when it cannot split)
    owned, horizons = [(0, 1)], [lineage_steps]
    if options.levels and not _splittable(subs[0]):
        log.warning("few-shot: no edge of the space has two ops, so nothing splits; one supernet trains all %d steps",
                    total)
        horizons = [lifetime(subs[0], 0, owned[0])]
    splits: list[Split] = []
    trained = 0
    for level, steps in enumerate(plan):
        if level:
            children, slots, lengths = [], [], []
            for k, (sub, (a, b), length) in enumerate(zip(subs, owned, horizons)):
                a, b = 2 * a, 2 * b
                split = choose_split(sub, x, y, options, k, level)
                if split is None:  # nothing left to split: it trains on with its would-be children's steps
                    children.append(sub)
                    slots.append((a, b))
                    lengths.append(lifetime(sub, level, (a, b)))
                    continue
                splits.append(split)
                halves = [(a, (a + b) // 2), ((a + b) // 2, b)]
                for g, subspace in enumerate(sub.subspace.split(split.edge, split.groups)):
                    children.append(sub.child(subspace, (seed, level, len(children) + g), split.edge))
                    slots.append(halves[g])
                    lengths.append(lineage_steps)
            subs, owned, horizons = children, slots, lengths
        for sub, (a, b), length in zip(subs, owned, horizons):
            n = sum(steps[a:b])
            loss = _train(sub, x, y, n, length, options)
            trained += n
            log.info("level %d: %d steps on a subspace of %d architectures, loss %.4f", level, n, sub.subspace.size(),
                     loss)
    return FewShotSupernets(space, subs, splits, trained, time.perf_counter() - t0, x[:options.calibration_size])


# ---------------------------------------------------------------------------------------- the driver
def search_few_shot(space: NasBench201Space, data: Splits, archs: Sequence[Mapping[str, Any]] | int = 50,
                    options: FewShotOptions | Mapping[str, Any] | None = None, seed: int = 0,
                    workdir: str | Path | None = None, metadata: Mapping[str, Any] | None = None) -> SearchResult:
    """Train few-shot supernets and journal every architecture's rating as a trial.

    `archs` is the list to rate (a repeat is rated once), or a number of distinct uniform samples (drawn from
    `seed`); the journal's budget is the number of distinct architectures rated in the workdir. Each trial holds
    `supernet_accuracy` and `supernet_loss` on `data["valid"]`, the architecture's `params` and `flops`, and in
    `extra` its sub-supernet and that subspace. The objectives are `supernet_accuracy` (max) and `flops` (min).
    The splits go to `few_shot.json` in the workdir. Rerunning on the same workdir retrains (deterministic
    for a seed) and rates only the architectures not yet journaled; other data (even of the same size) is refused,
    naming the split. `options` may be a dict of `FewShotOptions` fields.
    """
    options = check_options(options, FewShotOptions)
    seed = check_seed(seed)  # a numpy int as the Python int the journal header takes
    _check_inputs(space, data, options, ("train", "valid"))  # "valid" rates the architectures
    chosen: dict[str, Architecture] = {}
    if isinstance(archs, numbers.Integral) and not isinstance(archs, bool):
        archs = int(archs)
        if archs < 1:
            raise ConfigError(f"archs: expected a positive number or a list of architectures, got {archs!r}")
        rng = np.random.default_rng(seed)
        for _ in range(100 * archs):  # bounded: the space has 15,625 members
            a = space.sample(rng)
            chosen.setdefault(a.id, a)
            if len(chosen) == archs:
                break
    elif isinstance(archs, Iterable) and not isinstance(archs, (str, Mapping)):
        for a in archs:  # a repeat is rated once
            arch = space.validate(a)
            chosen.setdefault(arch.id, arch)
        if not chosen:  # a journal with budget 0 would read as a finished search
            raise ConfigError("archs: expected a positive number or a non-empty list of architectures, got an empty "
                              "list")
    else:
        raise ConfigError(f"archs: expected a positive number or a list of architectures, got {type(archs).__name__}")
    todo: list[Architecture] = list(chosen.values())
    problem = Problem.make({"supernet_accuracy": "max", "flops": "min"})
    meta = {"one_shot": True, "few_shot": True, "net": repr(space.net),
            "data": {k: len(v[0]) for k, v in data.items()}, DIGEST_KEY: splits_digest(data), **dict(metadata or {})}
    wd = Path(workdir) if workdir is not None else None
    config = search_config(space, problem, f"few-shot-{options.splitter}", options.to_dict(), seed, len(todo),
                           None, meta)
    recorded = check_recorded_digest(wd, config, DIGEST_KEY, "data")
    if recorded is not None:  # the budget: every architecture rated once, those journaled by earlier calls too
        config["budget"] = len({t.arch_id for t in recorded.trials} | set(chosen))
    with open_experiment(wd, config, compare=SAME_SEARCH + ("metadata",), lower_budget=True) as experiment:
        done = {t.arch_id for t in experiment.trials}
        if any(a.id not in done for a in todo):
            nets = train_few_shot(space, data, options, seed)
            if wd is not None:
                jsonio.write_json(wd / SPLITS_FILE, nets.summary())
                record_model(wd, space, notes={"search": f"search_few_shot ({options.splitter})",
                                               "weights": "each architecture's sub-supernet's, batch norm recalibrated "
                                                          "on training inputs; not retrained"})
            for arch in todo:
                if arch.id in done:
                    continue
                started = time.time()
                metrics = {**nets.rate(arch, *data["valid"]), **space.count(arch)}
                k = int(metrics.pop("sub_supernet"))
                extra = {"sub_supernet": k, "subspace": nets.subs[k].subspace.to_dict(),
                         "lineage": list(nets.subs[k].lineage), "splitter": options.splitter}
                if wd is not None:  # before the trial: a journaled architecture always has its weights
                    save_trial_weights(wd, arch, nets.subnet(arch))
                experiment.record(Trial(len(experiment.trials), arch.to_dict(), arch.id, metrics, "ok", started,
                                        time.time(), "local", None, extra))
                done.add(arch.id)
        return SearchResult(list(experiment.trials), problem, wd, "rated", experiment.config)
