"""NEAS (Chen et al., CVPR 2021): one-shot ensemble search with diversity-guided search-space shrinking.

1. K-path supernet training: each step trains K paths drawn uniformly from the current (shrunk) chain space,
   each on the labels (one optimizer step on their summed gradients).
2. Shrinking rounds: `paths` architectures (at least any layer's candidates) are drawn so that every candidate
   of every layer is used equally often (with a FLOPs budget: kept only when a member fits its share, budget /
   K, so a candidate's scores are those of the paths it can be part of; a candidate no kept draw uses gets a
   path within the share when one exists; and each layer keeps its cheapest candidate); each is rated with
   inherited weights (batch norm recalibrated, no training) on the valid split.
   A candidate's potential is the mean accuracy of the paths using it; its diversity is how often those paths'
   top-1 predictions disagree with the averaged prediction of K-1 other sampled paths (the rest of an
   ensemble). The `drop` candidates with the lowest z(potential) + diversity_weight * z(diversity) are removed
   from every layer, and the supernet trains on in the shrunk space.
3. The final ensemble is searched in the shrunk space by a black-box strategy over `EnsembleSpace`
   (K members), rated by the valid accuracy of the averaged softmax outputs, under an optional total-FLOPs
   budget, through `nas.search`: the standard journal, so `nas.load`, `nas status` and `nas pareto` read it.

A workdir holds the supernet after each round with the rounds so far (`neas_supernet.pt`, one checkpoint
replaced atomically; `neas_state.json` is a readable copy); calling `search_neas` again with it resumes after
the last finished round (other frame, candidates, options, seed or data are refused, naming the field), and
the final search resumes from its journal (`budget` and `strategy` shape only that search: a larger budget
continues it). Batch norm is recalibrated on the first `calib_size` training samples in batches of
`batch_size`, as the model spec says. Once the model spec is recorded (data given as a `DataRef`), its
`supernet.pt` holds the final weights and `neas_supernet.pt` is removed (one copy per workdir).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nas import jsonio
from nas.architecture import Architecture
from nas.errors import ConfigError, check_count, check_int, check_number, check_seed
from nas.evaluators import cheap
from nas.experiment import check_options
from nas.spaces.spec_difference import first_difference
from nas.measure import accuracy_metric
from nas.modelspec import SUPERNET, DataRef, load_state_dict, record_model
from nas.neas.chain import ChainConfig, ChainSpace, ChainSupernet, EnsembleConfig, EnsembleSpace, EnsembleSupernet
from nas.result import SearchResult
from nas.search import prepare
from nas.search import search as run_search
from nas.seeding import torch_seeded
from nas.splits import check_splits, splits_digest
from nas.spaces.training import recalibrate_bn, run_phase
from nas.strategies.base import torch_seed

log = logging.getLogger(__name__)

__all__ = ["CandidateScore", "NeasOptions", "NeasResult", "PathEvaluator", "RoundRecord", "disagreement",
           "ensemble_probs", "score_candidates", "search_neas", "shrink", "train_kpath"]

SUPERNET_FILE, STATE_FILE = "neas_supernet.pt", "neas_state.json"
STAGES_FORMAT = "neas-stages"
"""`neas_supernet.pt` holds {"format": STAGES_FORMAT, "state": the stages' record, "weights": a state_dict}."""
FINAL_ONLY = ("budget", "strategy")
"""Options only the final `nas.search` uses: its own journal checks them on resume (and lets the budget grow)."""
Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class NeasOptions:
    """Settings of a NEAS search (small CPU defaults; the paper trains 120 epochs on ImageNet)."""

    members: int = 3  # K
    warmup_epochs: int = 6  # K-path training before the first shrinking round
    rounds: int = 2
    drop: int = 2  # candidates removed from every layer per round
    epochs_per_round: int = 2  # K-path training in the space each round leaves
    paths: int = 42  # architectures rated per round
    groups: int = 4  # random (K-1)-path partners per rated path, for its diversity
    diversity_weight: float = 0.5
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    calib_size: int = 500  # the first training samples batch norm is recalibrated on, per rated architecture
    budget: int = 50  # ensembles evaluated by the final search
    strategy: str = "evolution"
    flops_budget: float | None = None  # the ensemble's total FLOPs (batch 1) must stay below this

    def __post_init__(self) -> None:
        # the checked values are kept: numpy scalars become the Python numbers the journal and the constraint take
        for name in ("members", "rounds", "drop", "paths", "groups", "batch_size", "calib_size", "budget"):
            object.__setattr__(self, name, check_count(getattr(self, name), name))
        for name in ("warmup_epochs", "epochs_per_round"):
            object.__setattr__(self, name, check_int(getattr(self, name), name, 0))
        for name in ("batch_size", "calib_size"):  # batch norm (and the model spec's calibration) needs 2
            v = getattr(self, name)
            if v < 2:
                raise ConfigError(f"{name}: expected an int >= 2 (batch norm needs 2 samples), got {v}")
        if not isinstance(self.strategy, str):
            raise ConfigError(f"strategy: expected a strategy name, got {self.strategy!r}")
        if self.members < 2:
            raise ConfigError(f"members: an ensemble needs at least 2, got {self.members}")
        if self.paths < self.members:
            raise ConfigError(f"paths: {self.paths} rated paths cannot form ensembles of {self.members}")
        # finite: inf trained to NaN scores and failed only at the final search's journal
        object.__setattr__(self, "lr", check_number(self.lr, "lr"))
        for name in ("diversity_weight", "weight_decay"):
            object.__setattr__(self, name, check_number(getattr(self, name), name, positive=False))
        if self.flops_budget is not None:  # a float: np.float64 was written into the constraint as 'np.float64(...)'
            object.__setattr__(self, "flops_budget", check_number(self.flops_budget, "flops_budget"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CandidateScore:
    """One candidate of one layer in one round: its rated paths, potential, diversity, combined score."""

    paths: int
    potential: float
    diversity: float
    score: float


@dataclass
class RoundRecord:
    """What one shrinking round rated and removed (plain data; kept in `neas_state.json` and the journal)."""

    round: int
    removed: dict[str, list[str]]  # layer -> ops removed
    kept: dict[str, list[str]]  # layer -> ops left
    scores: dict[str, dict[str, dict[str, float]]]  # layer -> op -> CandidateScore fields
    train_loss: float | None  # mean K-path loss of the last epoch before the round (None: no epoch trained)

    @property
    def removed_per_layer(self) -> list[int]:
        return [len(v) for v in self.removed.values()]


@dataclass
class NeasResult:
    """The final search (a `SearchResult`), its best ensemble, the rounds, and what rated them."""

    search: SearchResult
    best: Architecture | None
    rounds: list[RoundRecord]
    space: EnsembleSpace  # the shrunk ensemble space the final search ran in
    supernet: ChainSupernet
    evaluator: "PathEvaluator"
    train_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- training
def train_kpath(supernet: ChainSupernet, space: ChainSpace, x: torch.Tensor, y: torch.Tensor, epochs: int,
                options: NeasOptions, seed: int) -> list[float]:
    """K-path training in `space` (the current shrunk space) for `epochs`; the mean loss of each epoch. `seed` is any
    non-negative int (`search_neas` gives stage r `seed * 1000 + r`; one beyond torch's range is reduced into it)."""
    if epochs == 0:
        return []
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(torch_seed(seed))

    def step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(())
        for arch in (space.sample(rng) for _ in range(options.members)):
            loss = F.cross_entropy(supernet(xb, arch), yb) / options.members
            loss.backward()
            total = total + loss.detach()
        return total

    return run_phase("neas-kpath", supernet, x, y, epochs, options.batch_size, options.lr, options.weight_decay,
                     gen, step).epoch_losses


# ---------------------------------------------------------------------------------------- rating paths
class PathEvaluator:
    """Class probabilities on "valid" (and "test") of chain architectures with inherited weights (batch norm
    recalibrated on `calib_x` in batches of `calib_batch_size`, default `batch_size`; no training), cached per
    architecture. `search_neas` calibrates as its model spec says, so `nas export` re-measures the same accuracy.
    The supernet's batch-norm statistics are put back after each rating: rating leaves the supernet as it was
    (a fresh and a resumed search return the same one)."""

    def __init__(self, supernet: ChainSupernet, data: Splits, calib_x: torch.Tensor, batch_size: int = 250,
                 calib_batch_size: int | None = None) -> None:
        self.supernet, self.calib_x, self.batch_size = supernet, calib_x, batch_size
        self.calib_batch_size = calib_batch_size if calib_batch_size is not None else batch_size
        self.data = {k: v for k, v in data.items() if k in ("valid", "test")}
        self._cache: dict[tuple[str, str], torch.Tensor] = {}

    def member(self, arch: Mapping[str, Any]) -> Architecture:
        """`arch` (a member: an `Architecture` or a plain dict) validated with the supernet's chain space; an
        ensemble is refused with a ConfigError pointing to `ensemble_accuracy`."""
        if isinstance(arch, Mapping) and "members" in arch:
            raise ConfigError("arch: an ensemble (it has 'members'), not one chain member: rate it with "
                              "evaluator.ensemble_accuracy(arch['members'])")
        return self.supernet.space.validate(arch)

    @torch.no_grad()
    def probs(self, arch: Mapping[str, Any], split: str = "valid") -> torch.Tensor:
        if split not in self.data:
            raise ConfigError(f"split: {split!r} is not one of {sorted(self.data)}")
        member = self.member(arch)
        if (member.id, split) not in self._cache:
            net, bs = self.supernet, self.batch_size
            saved = {k: v.clone() for k, v in net.named_buffers()}  # batch-norm statistics, restored below
            training = net.training
            try:
                recalibrate_bn(net, self.calib_x.split(self.calib_batch_size), lambda b: net(b, member))
                for name, (x, _) in self.data.items():  # every split at once: one recalibration per architecture
                    self._cache[(member.id, name)] = torch.cat([F.softmax(net(xb, member), dim=-1)
                                                                for xb in x.split(bs)])
            finally:
                for k, v in net.named_buffers():
                    v.copy_(saved[k])
                net.train(training)
        return self._cache[(member.id, split)]

    def accuracy(self, arch: Mapping[str, Any], split: str = "valid") -> float:
        """The valid (or `split`) accuracy of one member (an `Architecture` or a plain dict of the chain space)."""
        return _accuracy(self.probs(arch, split), self.data[split][1])

    def ensemble_accuracy(self, members: Sequence[Mapping[str, Any]], split: str = "valid") -> float:
        """The accuracy of the mean of `members`' class probabilities (each an `Architecture` or a plain dict)."""
        return _accuracy(ensemble_probs([self.probs(m, split) for m in members]), self.data[split][1])


def _accuracy(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Correct / total in float64, as the model spec's accuracy recipe counts it (a float32 mean is off by 1e-8); NaN
    for non-finite probabilities (a diverged network: argmax over NaNs is class 0, which would score its share)."""
    if not bool(torch.isfinite(probs).all()):
        return math.nan
    return int((probs.argmax(-1) == y).sum()) / len(y)


def ensemble_probs(member_probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The ensemble's prediction: the mean of its members' class probabilities."""
    return torch.stack(list(member_probs)).mean(dim=0)


def disagreement(probs: torch.Tensor, others: Sequence[torch.Tensor]) -> float:
    """Fraction of samples where `probs`' top-1 class differs from the averaged prediction of `others`."""
    return float((probs.argmax(-1) != ensemble_probs(others).argmax(-1)).float().mean())


def _z(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return (values - values.mean()) / std if std > 1e-12 else np.zeros_like(values)


def score_candidates(archs: Sequence[Mapping[str, Any]], probs: Sequence[torch.Tensor], y: torch.Tensor,
                     members: int, groups: int, diversity_weight: float, rng: np.random.Generator
                     ) -> dict[str, dict[str, CandidateScore]]:
    """Per layer field and candidate op: potential (mean accuracy of the paths using it), diversity (mean
    disagreement of those paths with `groups` random ensembles of `members`-1 other paths) and the score
    z(potential) + diversity_weight * z(diversity), z-scored over the layer's candidates."""
    n = len(archs)
    if n != len(probs) or n < members:
        raise ConfigError(f"archs, probs: need as many probabilities as architectures and >= {members}, got "
                          f"{n} and {len(probs)}")
    acc = np.array([float((p.argmax(-1) == y).float().mean()) for p in probs])
    div = np.zeros(n)
    for j in range(n):
        others = [i for i in range(n) if i != j]
        div[j] = np.mean([disagreement(probs[j], [probs[i] for i in rng.choice(others, members - 1, replace=False)])
                          for _ in range(groups)])
    out: dict[str, dict[str, CandidateScore]] = {}
    for layer in archs[0]:
        ops = sorted({a[layer] for a in archs})
        pot = np.array([acc[[a[layer] == op for a in archs]].mean() for op in ops])
        dv = np.array([div[[a[layer] == op for a in archs]].mean() for op in ops])
        score = _z(pot) + diversity_weight * _z(dv)
        out[layer] = {op: CandidateScore(sum(a[layer] == op for a in archs), float(p), float(d), float(s))
                      for op, p, d, s in zip(ops, pot, dv, score)}
    return out


def shrink(space: ChainSpace, scores: Mapping[str, Mapping[str, CandidateScore]], drop: int,
           keep_cheapest: bool = False) -> tuple[ChainSpace, dict[str, list[str]]]:
    """`space` without the `drop` lowest-scoring candidates of each layer (candidates without a score go
    first); with `keep_cheapest`, each layer's cheapest candidate stays, so the smallest architecture (and a
    FLOPs budget it meets) survives every round. ConfigError when a layer would be left empty.
    Returns (shrunk space, removed per layer)."""
    allowed, removed = [], {}
    for i in range(space.num_layers):
        name = f"layer{i}"
        ops = list(space.config.candidates(i))
        if len(ops) <= drop + keep_cheapest:
            raise ConfigError(f"drop: layer {name} has {len(ops)} candidates left, cannot remove {drop}")
        layer_scores = scores.get(name, {})
        cheapest = min(ops, key=lambda op: space.op_flops(i, op)) if keep_cheapest else None
        order = sorted((op for op in ops if op != cheapest),
                       key=lambda op: layer_scores[op].score if op in layer_scores else -np.inf)
        removed[name] = order[:drop]
        allowed.append([op for op in ops if op not in removed[name]])
    return space.shrunk(allowed), removed


# ---------------------------------------------------------------------------------------- the search
def search_neas(data: Splits | DataRef, config: ChainConfig | None = None,
                options: NeasOptions | Mapping[str, Any] | None = None, seed: int = 0,
                workdir: str | Path | None = None, **overrides: Any) -> NeasResult:
    """Train the chain supernet K paths at a time, shrink it `rounds` times by potential + diversity, then
    search K-member ensembles in the shrunk space (journaled in `workdir`). The shrinking starts from
    `config`'s allowed candidates (the supernet covers its whole frame). `options` is a `NeasOptions` or a dict
    of its fields; `overrides` replace fields of it. `data` maps "train" and "valid" (and optionally "test")
    to (x, y) tensors, or is a `DataRef` naming such splits: then the workdir also records its model spec, so
    `nas export` rebuilds ensembles. Everything is checked before any training (each error names its field)."""
    options = _options(options, overrides)
    seed = check_seed(seed)  # a numpy int as a Python int: `seed * 1000` must not wrap, torch and JSON take it
    ref = data if isinstance(data, DataRef) else None
    data = ref.load() if ref is not None else data
    if config is not None and not isinstance(config, ChainConfig):
        raise ConfigError(f"config: expected a ChainConfig, got {type(config).__name__}")
    given = config or ChainConfig()
    frame = replace(given, allowed=None)  # what the supernet's weights depend on
    _check_data(data, frame)
    space = ChainSpace(given)  # the search starts from the given candidates (`ChainConfig.allowed`)
    _check_options(space, options, seed, len(data["train"][0]))
    wd = Path(workdir) if workdir is not None else None
    x, y = data["train"]
    calib_x = x[:options.calib_size]  # what the model spec records: the first calib_size samples of "train"
    with torch_seeded(seed):
        supernet = ChainSpace(frame).supernet()
    run = {"frame": frame.to_dict(), "allowed": _allowed(given), "options": options.to_dict(), "seed": seed,
           "data": splits_digest(data)}
    rounds, done, seconds = _load_state(wd, supernet, run)
    if rounds:
        space = space.shrunk([rounds[-1].kept[f"layer{i}"] for i in range(space.num_layers)])
    while done <= options.rounds:  # stage r trains (warm-up when r == 0) and then shrinks unless it is the last
        t0 = time.perf_counter()
        epochs = options.warmup_epochs if done == 0 else options.epochs_per_round
        losses = train_kpath(supernet, space, x, y, epochs, options, seed * 1000 + done)
        if done < options.rounds:
            space, record = _round(supernet, space, data, calib_x, options, seed, done + 1,
                                   losses[-1] if losses else None)
            rounds.append(record)
        done += 1
        seconds += time.perf_counter() - t0
        _save_state(wd, supernet, {**run, "rounds": [asdict(r) for r in rounds], "done": done, "seconds": seconds})
    supernet.eval()
    evaluator = PathEvaluator(supernet, data, calib_x, calib_batch_size=options.batch_size)
    ens_space = EnsembleSpace(EnsembleConfig(space.config, options.members))
    if wd is not None and ref is not None:  # how `nas export` rebuilds an ensemble: sliced from the supernet
        record_model(wd, ens_space, supernet=EnsembleSupernet(ens_space, supernet), data=ref,
                     calibration={"split": "train", "size": options.calib_size, "batch_size": options.batch_size},
                     metrics={"accuracy": accuracy_metric("valid", scale=1.0)},
                     notes={"search": "neas"})
        (wd / SUPERNET_FILE).unlink(missing_ok=True)  # the spec's supernet.pt now holds the same weights
    elif wd is not None:
        log.info("%s: no model spec recorded (data is not a DataRef); nas export needs "
                 "nas.modelspec.record_model(workdir, result.space, supernet=EnsembleSupernet(...), data=...)", wd)
    result = _final_search(ens_space, evaluator, options, seed, wd, rounds)
    if options.flops_budget is not None and not result.feasible and result.stop_reason == "exhausted":
        smallest = ens_space.of([space.smallest()] * options.members)  # fits: checked up front, kept by `shrink`
        log.warning("NEAS: the final search found no ensemble within flops_budget %.4g; it goes on from the "
                    "smallest one (%.4g FLOPs)", options.flops_budget, ens_space.flops(smallest))
        result = _final_search(ens_space, evaluator, options, seed, wd, rounds, [smallest])
    feasible = result.feasible
    best = ens_space.validate(max(feasible, key=lambda t: t.metrics["accuracy"]).arch) if feasible else None
    return NeasResult(result, best, rounds, ens_space, supernet, evaluator, seconds,
                      {"space_size": ens_space.member_space.size(), "frame_size": ChainSpace(frame).size(),
                       "given_size": ChainSpace(given).size()})


def _options(options: NeasOptions | Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> NeasOptions:
    """`options` (default `NeasOptions()`; a dict of its fields is taken too) with `overrides` replacing its
    fields; a misspelt field is named."""
    options = check_options(options, NeasOptions)
    names = [f.name for f in fields(NeasOptions)]
    unknown = [k for k in overrides if k not in names]
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a NEAS option (options: {', '.join(names)})")
    return replace(options, **overrides)


def _allowed(config: ChainConfig) -> list[list[str]] | None:
    """`config.allowed` as plain data, None when it allows every op of the frame (in the frame's order)."""
    cands = [list(config.candidates(i)) for i in range(len(config.channels))]
    return None if cands == [list(config.layer_ops(i)) for i in range(len(config.channels))] else cands


def _check_data(data: Any, frame: ChainConfig) -> None:
    """The splits: "train" and "valid" given, none misspelt or empty, inputs shaped as the chain takes them
    ((in_length,) or (in_channels, in_length)), one class index below `num_classes` per input."""
    check_splits(data, required=("train", "valid"))  # first the structure: then data["train"][0] is a tensor
    one_channel = frame.in_channels == 1 and data["train"][0].dim() != 3  # (N, L) signals, as `_input` takes
    check_splits(data, required=("train", "valid"),
                 input_shape=(frame.in_length,) if one_channel else (frame.in_channels, frame.in_length),
                 num_classes=frame.num_classes, classes_field="ChainConfig.num_classes")


def _check_options(space: ChainSpace, options: NeasOptions, seed: int, train_size: int) -> None:
    """The options against the given space and the data, and the final search's strategy, budget and FLOPs
    constraint as `nas.search` will check them: a mistake is found before the supernet trains, not after."""
    cfg, layers = space.config, range(space.num_layers)
    least = min(len(cfg.candidates(i)) for i in layers)
    if least - options.rounds * options.drop - (options.flops_budget is not None) < 1:
        raise ConfigError(f"rounds, drop: {options.rounds} rounds removing {options.drop} would empty a layer "
                          f"with {least} candidates")
    most = max(layers, key=lambda i: len(cfg.candidates(i)))
    if options.paths < len(cfg.candidates(most)):
        raise ConfigError(f"paths: {options.paths} rated paths cannot rate the {len(cfg.candidates(most))} "
                          f"candidates of layer{most} (a candidate is removed only on its scores: give paths >= "
                          f"{len(cfg.candidates(most))})")
    if options.flops_budget is not None:
        smallest = space.flops(space.smallest())  # every round rates K members within budget / K when it fits
        if options.members * smallest > options.flops_budget:
            raise ConfigError(f"flops_budget: {options.flops_budget:.4g} is below the {options.members} smallest "
                              f"members' {options.members * smallest:.4g} FLOPs")
    if options.batch_size > train_size:
        raise ConfigError(f"batch_size: {options.batch_size} exceeds the {train_size} samples of 'train'")
    ens_space = EnsembleSpace(EnsembleConfig(cfg, options.members))
    prepare(ens_space, [cheap(lambda arch: {"flops": 0.0}), lambda arch: {"accuracy": 0.0}], {"accuracy": "max"},
            _constraints(options), options.strategy, options.budget, seed)


def _constraints(options: NeasOptions) -> list[str]:
    return [f"flops <= {options.flops_budget!r}"] if options.flops_budget is not None else []


def _round(supernet: ChainSupernet, space: ChainSpace, data: Splits, calib_x: torch.Tensor, options: NeasOptions,
           seed: int, number: int, train_loss: float | None) -> tuple[ChainSpace, RoundRecord]:
    rng = np.random.default_rng([seed, number])
    archs = _round_paths(space, rng, options, number)
    supernet.eval()
    evaluator = PathEvaluator(supernet, {"valid": data["valid"]}, calib_x, calib_batch_size=options.batch_size)
    probs = [evaluator.probs(a) for a in archs]
    scores = score_candidates(archs, probs, data["valid"][1], options.members, options.groups,
                              options.diversity_weight, rng)
    shrunk, removed = shrink(space, scores, options.drop, keep_cheapest=options.flops_budget is not None)
    kept = {f"layer{i}": list(shrunk.config.candidates(i)) for i in range(shrunk.num_layers)}
    log.info("NEAS round %d removed %s; kept %s", number, removed, kept)
    return shrunk, RoundRecord(number, removed, kept, {layer: {op: asdict(s) for op, s in ops.items()}
                                                       for layer, ops in scores.items()}, train_loss)


def _round_paths(space: ChainSpace, rng: np.random.Generator, options: NeasOptions, number: int
                 ) -> list[Architecture]:
    """The paths round `number` rates: `paths` balanced draws (`paths` >= every layer's candidates, so each is
    used). Under a FLOPs budget only draws within budget / K are kept (`ChainSpace.sample_within`); then a
    candidate no kept draw uses gets a path within that cap of its own when it can be in one at all, and paths
    are added until there are K: every candidate that fits is rated, and a round never lacks members."""
    if options.flops_budget is None:
        return space.sample_balanced(rng, options.paths)
    cap = options.flops_budget / options.members
    archs = space.sample_within(rng, options.paths, cap)
    unfit = []
    for i in range(space.num_layers):
        name = f"layer{i}"
        for op in space.config.candidates(i):
            if any(a[name] == op for a in archs):
                continue
            if space.flops(space.smallest({name: op})) > cap:
                unfit.append(f"{name}:{op}")
            else:
                archs.append(space.sample_capped(rng, cap, {name: op}))
    while len(archs) < options.members:
        archs.append(space.sample_capped(rng, cap))
    if unfit:
        log.info("NEAS round %d: %s fit no path within budget / K = %.4g FLOPs (unrated, removed first)", number,
                 ", ".join(unfit), cap)
    return archs


def _final_search(space: EnsembleSpace, evaluator: PathEvaluator, options: NeasOptions, seed: int,
                  wd: Path | None, rounds: list[RoundRecord], enqueue: list[Architecture] | None = None
                  ) -> SearchResult:
    def flops(arch: Mapping[str, Any]) -> dict[str, float]:
        return {"flops": space.flops(arch)}

    def evaluate(arch: Mapping[str, Any]) -> dict[str, float]:
        members = [Architecture(m) for m in arch["members"]]
        accs = [evaluator.accuracy(m) for m in members]
        out = {"accuracy": evaluator.ensemble_accuracy(members), "best_member_accuracy": max(accs),
               "mean_member_accuracy": float(np.mean(accs)),
               "disagreement": float(np.mean([disagreement(evaluator.probs(m), [evaluator.probs(o)])
                                              for i, m in enumerate(members) for o in members[i + 1:]]))}
        if "test" in evaluator.data:
            out["test_accuracy"] = evaluator.ensemble_accuracy(members, "test")
        return out

    plain = [{**asdict(r), "train_loss": None if r.train_loss is None or np.isnan(r.train_loss) else r.train_loss}
             for r in rounds]  # a NaN from an older workdir is not JSON
    metadata = {"neas": {"options": options.to_dict(), "rounds": plain}}
    return run_search(space, [cheap(flops), evaluate], {"accuracy": "max"}, _constraints(options), options.strategy,
                      options.budget, seed, wd, metadata=metadata,
                      enqueue=[a.to_dict() for a in enqueue] if enqueue else None)


def _load_state(wd: Path | None, supernet: ChainSupernet, run: Mapping[str, Any]
                ) -> tuple[list[RoundRecord], int, float]:
    """The rounds, stages done and seconds of the run in `wd` (nothing without one), its weights loaded into
    `supernet`; ConfigError when it ran with other `run` settings (`_check_same`). The checkpoint holds the
    stage counter with the weights; `neas_state.json` is its readable copy (the record of older workdirs)."""
    if wd is None:
        return [], 0, 0.0
    state, weights = None, None
    if (wd / SUPERNET_FILE).is_file():
        saved = torch.load(wd / SUPERNET_FILE, map_location="cpu", weights_only=True)
        if isinstance(saved, Mapping) and saved.get("format") == STAGES_FORMAT:
            state, weights = saved["state"], saved["weights"]
        else:  # a workdir of an older version: the weights alone, the stages in neas_state.json
            weights = saved
    from_checkpoint = state is not None
    if state is None:
        if not (wd / STATE_FILE).is_file():
            return [], 0, 0.0
        state = jsonio.read_json(wd / STATE_FILE, "NEAS state")
    _check_same(wd, state, run)
    if from_checkpoint and (not (wd / STATE_FILE).is_file() or
                            jsonio.read_json(wd / STATE_FILE, "NEAS state") != state):
        jsonio.write_json(wd / STATE_FILE, state, allow_nan=True)  # a stop between the two writes left it behind
    if weights is None:  # every stage done and the model spec recorded: its supernet.pt holds the same weights
        weights = {k.removeprefix("chain."): v for k, v in load_state_dict(wd / SUPERNET).items()}
    supernet.load_state_dict(weights)
    log.info("resuming NEAS in %s after stage %d", wd, state["done"])
    return [RoundRecord(**r) for r in state["rounds"]], int(state["done"]), float(state["seconds"])


def _check_same(wd: Path, state: Mapping[str, Any], run: Mapping[str, Any]) -> None:
    """ConfigError naming the first frame field, allowed candidates, option, seed or data split the supernet
    stages in `wd` were run with that this call changes; `FINAL_ONLY` options are left to the final search's
    journal. A state without `allowed` (older versions ignored it) ran on the whole frame; one without `data`
    is accepted with a warning."""
    def stages(opts: Any) -> Any:
        return {k: v for k, v in opts.items() if k not in FINAL_ONLY} if isinstance(opts, Mapping) else opts

    for key, value in run.items():
        now, was = jsonio.plain(value, key), state.get(key)
        if key == "options":
            now, was = stages(now), stages(was)
        elif key == "frame" and isinstance(was, Mapping):
            was = {**was, "allowed": None}  # older versions recorded a restricted config's frame with every op
        elif key == "data" and was is None:
            log.warning("%s: its NEAS state predates data digests, so this call cannot check that its data is the "
                        "one the supernet stages used", wd)
            continue
        if now == was:
            continue
        name, before, after = key, was, now
        if isinstance(was, Mapping) and isinstance(now, Mapping):  # the first field that differs
            where, before, after = first_difference(was, now)
            name = ".".join((key, *(where or ())))
        raise ConfigError(f"{name}: the workdir {wd} has {before!r}, this call {after!r} (the supernet stages "
                          "ran with it: call with the recorded value or use a new workdir)")


def _save_state(wd: Path | None, supernet: ChainSupernet, state: Mapping[str, Any]) -> None:
    """Commit a finished stage: the weights and `state` (rounds, stages done) in one checkpoint, replaced
    atomically, then its readable copy `neas_state.json`."""
    if wd is None:
        return
    wd.mkdir(parents=True, exist_ok=True)
    tmp = wd / (SUPERNET_FILE + ".tmp")
    torch.save({"format": STAGES_FORMAT, "state": dict(state), "weights": supernet.state_dict()}, tmp)
    os.replace(tmp, wd / SUPERNET_FILE)
    jsonio.write_json(wd / STATE_FILE, state, allow_nan=True)
