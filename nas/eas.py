"""EAS (Cai et al., "Efficient Architecture Search by Network Transformation", AAAI 2018) on conv/fc stacks.

`search_eas(data, space, seed_arch, options, workdir)` trains a seed network, then runs `options.episodes`
episodes. Each episode a REINFORCE controller picks `options.steps` Net2Net actions (widen or deepen one
block, `nas.spaces.net2net`), applies them to the current best network (weights inherited, function
preserved), trains the child `options.child_epochs` epochs and uses its validation accuracy as reward; a child
that beats the best becomes the next episodes' parent. Every network is a journal trial carrying its own
training `epochs` and `scratch_epochs` (the epochs its weights have seen along its lineage: what training it
from scratch to the same epochs costs), so `epoch_totals(trials)` compares the two costs, and `nas status`,
`nas pareto` and `nas export` work on the workdir (weights per trial, `nas.modelspec`). A killed search resumes
from its journal (the controller's state rides on each trial, the best network's weights are in the workdir), and
calling it again with more `episodes` continues it.

The controller is deliberately small (the paper's bi-LSTM encoder and actor networks are replaced by a
table): one logit per action (kind x part x block position), a softmax over the actions the network admits,
and REINFORCE with an exponential-moving-average baseline. `policy="random"` samples the same actions
uniformly and learns nothing (the random-transformation control).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.architecture import Architecture
from nas.seeding import torch_seeded
from nas.splits import DIGEST_KEY, check_splits, splits_digest
from nas.errors import ConfigError, check_number, check_seed
from nas.experiment import (SAME_SEARCH, check_options, check_recorded_digest, open_experiment,
                            search_config)
from nas.measure import accuracy_metric, count_metric
from nas.modelspec import TRIAL_WEIGHTS, DataRef, load_state_dict, record_model, save_trial_weights
from nas.objectives import Problem
from nas.result import SearchResult
from nas.spaces.net2net import Action, StackSpace, max_output_change
from nas.spaces.training import PlainTraining, accuracy
from nas.store import Trial

log = logging.getLogger(__name__)

Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]
POLICIES = ("reinforce", "random")

__all__ = ["Controller", "EASOptions", "EpochTotals", "POLICIES", "epoch_totals", "search_eas"]


@dataclass(frozen=True)
class EASOptions:
    """Settings of an EAS search (small CPU defaults; the paper trains each child 20 epochs on CIFAR-10)."""

    episodes: int = 10
    steps: int = 2               # transformations per episode
    seed_epochs: int = 10        # training of the seed network
    child_epochs: int = 3        # training of each child, from its inherited weights
    lr: float = 3e-3
    batch_size: int = 64
    policy: str = "reinforce"    # or "random": uniform actions, no learning
    policy_lr: float = 50.0      # REINFORCE step per unit of advantage: +1 % accuracy moves a logit ~0.5
    baseline_decay: float = 0.7  # the baseline is an EMA of rewards, started at the seed's accuracy
    noise: float = 0.01          # Net2Wider symmetry-breaking noise on copied weights (x their std)
    widen_factor: float = 2.0

    def __post_init__(self) -> None:
        for name in ("episodes", "steps", "seed_epochs", "child_epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "episodes" else 1):
                raise ConfigError(f"options.{name}: expected a positive int, got {value!r}")
        if self.batch_size < 2:
            raise ConfigError(f"options.batch_size: expected an int >= 2 (batch norm needs 2 samples), got "
                              f"{self.batch_size}")
        check_number(self.lr, "options.lr")
        if self.policy not in POLICIES:
            raise ConfigError(f"options.policy: expected one of {', '.join(POLICIES)}, got {self.policy!r}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ConfigError(f"options.baseline_decay: expected 0 <= decay < 1, got {self.baseline_decay}")
        for name in ("policy_lr", "noise"):  # finite: inf and NaN failed only as 'config: not plain JSON'
            check_number(getattr(self, name), f"options.{name}", positive=False)
        if check_number(self.widen_factor, "options.widen_factor") <= 1.0:
            raise ConfigError(f"options.widen_factor: expected > 1, got {self.widen_factor}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Controller:
    """REINFORCE over a table of logits, one per action (kind x part x position); `state` is plain data."""

    space: StackSpace
    lr: float = 50.0
    decay: float = 0.7
    learn: bool = True
    logits: np.ndarray = field(default=None)  # type: ignore[assignment]
    baseline: float | None = None

    def __post_init__(self) -> None:
        cfg = self.space.config
        self.table = [Action(kind, part, i) for part, n in (("conv", cfg.max_conv), ("fc", cfg.max_fc))
                      for kind in ("widen", "deepen") for i in range(n)]
        if self.logits is None:
            self.logits = np.zeros(len(self.table))

    def probabilities(self, allowed: list[Action]) -> np.ndarray:
        """The policy over `allowed` (a softmax of their logits; uniform when not learning)."""
        z = self.logits[[self.table.index(a) for a in allowed]] if self.learn else np.zeros(len(allowed))
        p = np.exp(z - z.max())
        return p / p.sum()

    def sample(self, arch: Architecture, steps: int, rng: np.random.Generator, visited: set[str],
               widen_factor: float) -> tuple[list[Action], np.ndarray] | None:
        """`steps` actions from `arch` to an architecture not in `visited` and the gradient of their log-probability;
        None only when every architecture `steps` actions away is visited.

        The policy draws over every admitted action, the last step avoiding visited architectures; when that draw
        reaches a dead end (every last step visited), it draws again with the actions that lead to no unvisited
        architecture masked out at every step (the gradient is then that masked policy's)."""
        drawn = self._draw(arch, steps, rng, visited, widen_factor, None)
        return drawn if drawn is not None else self._draw(arch, steps, rng, visited, widen_factor, {})

    def _draw(self, arch: Architecture, steps: int, rng: np.random.Generator, visited: set[str], widen_factor: float,
              masked: dict[tuple[str, int], bool] | None) -> tuple[list[Action], np.ndarray] | None:
        """One draw of `sample`: unmasked but at the last step when `masked` is None, else masked at every step
        (`masked` caches whether an architecture has an unvisited one some number of steps away)."""
        grad, actions, cache = np.zeros(len(self.table)), [], masked if masked is not None else {}
        for step in range(steps):
            allowed = self.space.actions(arch, widen_factor)
            if masked is not None or step == steps - 1:
                allowed = [a for a in allowed if self._open(self.space.transformed(arch, a, widen_factor),
                                                            steps - step - 1, visited, widen_factor, cache)]
            if not allowed:
                return None
            p = self.probabilities(allowed)
            k = int(rng.choice(len(allowed), p=p))
            for a, pa in zip(allowed, p):
                grad[self.table.index(a)] -= pa
            grad[self.table.index(allowed[k])] += 1.0
            actions.append(allowed[k])
            arch = self.space.transformed(arch, allowed[k], widen_factor)
        return actions, grad

    def _open(self, arch: Architecture, steps: int, visited: set[str], widen_factor: float,
              cache: dict[tuple[str, int], bool]) -> bool:
        """Whether some architecture `steps` actions from `arch` (itself when 0) is not in `visited`."""
        if steps == 0:
            return arch.id not in visited
        key = (arch.id, steps)
        if key not in cache:
            cache[key] = any(self._open(self.space.transformed(arch, a, widen_factor), steps - 1, visited,
                                        widen_factor, cache) for a in self.space.actions(arch, widen_factor))
        return cache[key]

    def update(self, reward: float, grad: np.ndarray) -> float:
        """One REINFORCE step with the baseline, then the baseline follows the reward; the advantage used."""
        baseline = reward if self.baseline is None else self.baseline
        advantage = reward - baseline
        if self.learn:
            self.logits = self.logits + self.lr * advantage * grad
        self.baseline = self.decay * baseline + (1 - self.decay) * reward
        return advantage

    def state(self) -> dict[str, Any]:
        return {"logits": [float(v) for v in self.logits], "baseline": self.baseline}


@dataclass(frozen=True)
class EpochTotals:
    """Training epochs a search spent, and what training every network it visited from scratch would spend."""

    search: int
    scratch: int
    networks: int


def epoch_totals(trials: list[Trial]) -> EpochTotals:
    """`EpochTotals` of an EAS journal's trials (their `epochs` and `scratch_epochs` metrics)."""
    done = [t for t in trials if t.status == "ok"]
    return EpochTotals(int(sum(t.metrics["epochs"] for t in done)), int(sum(t.metrics["scratch_epochs"] for t in done)),
                       len(done))


def _accuracies(net: torch.nn.Module, data: Splits) -> dict[str, float]:
    out = {"accuracy": accuracy(net.eval(), *data["valid"])}
    if "test" in data:
        out["test_accuracy"] = accuracy(net, *data["test"])
    return out


@dataclass
class _Best:
    trial: Trial
    arch: Architecture
    accuracy: float
    scratch_epochs: int
    net: torch.nn.Module


def search_eas(data: Splits | DataRef, space: StackSpace | None = None, seed_arch: Mapping[str, Any] | None = None,
               options: EASOptions | Mapping[str, Any] | None = None, workdir: str | Path | None = None,
               seed: int = 0, progress: Callable[[Trial], None] | None = None) -> SearchResult:
    """Run EAS (module doc) and return its trials as a `SearchResult` (objectives: accuracy max, params min).

    `data` is {"train", "valid"[, "test"]: (x, y)} or a `DataRef` naming it (then the workdir's model spec
    records it, and `nas export` re-measures validation accuracy); a workdir refuses other data, even of the same
    size, naming the split. `seed_arch` defaults to one conv block of 8 channels and one fc block of 16 units.
    `options` may be a dict of `EASOptions` fields. `progress(trial)` is called after each trial is journaled.
    """
    check_seed(seed)
    space = StackSpace() if space is None else space
    if not isinstance(space, StackSpace):
        raise ConfigError(f"space: EAS transforms conv/fc stacks, a nas.spaces.net2net.StackSpace; got "
                          f"{type(space).__name__}")
    options = check_options(options, EASOptions)
    ref = data if isinstance(data, DataRef) else None
    splits = data.load() if ref is not None else data
    check_splits(splits, input_shape=space.config.input_shape, min_size=options.batch_size,
                 size_field="options.batch_size", sized=("train",), num_classes=space.config.num_classes,
                 classes_field="StackConfig.num_classes")
    seed_arch = space.validate(seed_arch if seed_arch is not None else space.make([8], [16]))
    problem = Problem.make({"accuracy": "max", "params": "min"})
    settings = {k: v for k, v in options.to_dict().items() if k != "episodes"}  # the budget: a resume may grow it
    config = search_config(space, problem, "eas", {**settings, "seed_arch": seed_arch.to_dict()}, seed,
                           options.episodes + 1, None, {"data": {k: len(v[0]) for k, v in splits.items()},
                                                        DIGEST_KEY: splits_digest(splits)})
    wd = Path(workdir) if workdir is not None else None
    check_recorded_digest(wd, config, DIGEST_KEY, "data")
    controller = Controller(space, options.policy_lr, options.baseline_decay, options.policy == "reinforce")
    with open_experiment(wd, config, compare=SAME_SEARCH + ("metadata",)) as experiment:
        if wd is not None:  # how `nas export` rebuilds the networks: space.build(arch) + weights/<arch_id>.pt
            metrics = {"params": count_metric("params")}
            if ref is not None:
                metrics["accuracy"] = accuracy_metric("valid", scale=1.0)
            record_model(wd, space, data=ref, metrics=metrics, notes={"search": "eas"})
        if experiment.trials:
            best = _resume(space, experiment.trials, controller, Path(experiment.workdir))
        else:
            best = _seed(space, seed_arch, splits, options, seed, wd)
            _record(experiment, best.trial, progress)
            controller.baseline = best.accuracy
        visited = {t.arch_id for t in experiment.trials}
        x_train = splits["train"][0]
        while len(experiment.trials) < experiment.budget:
            episode = len(experiment.trials)
            rng = np.random.default_rng([seed, episode])
            sampled = controller.sample(best.arch, options.steps, rng, visited, options.widen_factor)
            if sampled is None:
                log.info("episode %d: every network %d actions from the best was visited; stopping", episode,
                         options.steps)
                return SearchResult(list(experiment.trials), problem, wd, "no unvisited child", experiment.config)
            actions, grad = sampled
            started, arch, child = time.time(), best.arch, best.net
            for action in actions:
                arch, child = space.apply(arch, child, action, rng, x_train[:256], options.noise, options.widen_factor)
            change = max_output_change(best.net, child, splits["valid"][0][:100])
            t0 = time.perf_counter()
            PlainTraining(options.child_epochs, options.batch_size, options.lr, seed=seed * 1000 + episode).fit(
                child, *splits["train"])
            metrics = {**_accuracies(child, splits), "train_seconds": time.perf_counter() - t0}
            advantage = controller.update(metrics["accuracy"], grad)
            scratch = best.scratch_epochs + options.child_epochs
            metrics.update(_counts(space, arch), epochs=float(options.child_epochs), scratch_epochs=float(scratch))
            extra = {"episode": episode, "parent": best.trial.number, "actions": [str(a) for a in actions],
                     "function_change": change, "advantage": advantage, "controller": controller.state(),
                     "policy": options.policy}
            trial = Trial(episode, arch.to_dict(), arch.id, metrics, "ok", started, time.time(), "local", None, extra)
            if wd is not None:
                save_trial_weights(wd, arch, child)
            _record(experiment, trial, progress)
            visited.add(arch.id)
            if metrics["accuracy"] > best.accuracy:
                best = _Best(trial, arch, metrics["accuracy"], scratch, child)
        return SearchResult(list(experiment.trials), problem, wd, "episodes", experiment.config)


def _record(experiment: Any, trial: Trial, progress: Callable[[Trial], None] | None) -> None:
    experiment.record(trial)
    log.info("trial %d %s: accuracy %.4f", trial.number, trial.extra.get("actions", "seed"), trial.metrics["accuracy"])
    if progress is not None:
        progress(trial)


def _counts(space: StackSpace, arch: Architecture) -> dict[str, float]:
    counts = space.count(arch)
    return {"params": float(counts["params"]), "flops": float(counts["flops"])}


def _seed(space: StackSpace, arch: Architecture, data: Splits, options: EASOptions, seed: int,
          wd: Path | None) -> _Best:
    """Trial 0: the seed network trained `seed_epochs` from scratch (its weights saved for the children)."""
    started = time.time()
    with torch_seeded(seed):
        net = space.build(arch)
    t0 = time.perf_counter()
    PlainTraining(options.seed_epochs, options.batch_size, options.lr, seed=seed * 1000).fit(net, *data["train"])
    metrics = {**_accuracies(net, data), "train_seconds": time.perf_counter() - t0, **_counts(space, arch),
               "epochs": float(options.seed_epochs), "scratch_epochs": float(options.seed_epochs)}
    if wd is not None:
        save_trial_weights(wd, arch, net)
    trial = Trial(0, arch.to_dict(), arch.id, metrics, "ok", started, time.time(), "local", None,
                  {"episode": 0, "parent": None, "actions": [], "policy": options.policy})
    return _Best(trial, arch, metrics["accuracy"], options.seed_epochs, net)


def _resume(space: StackSpace, trials: list[Trial], controller: Controller, wd: Path) -> _Best:
    """From a journal: the best network so far (the first with the highest accuracy, its weights from the
    workdir) and the controller's state after the last trial."""
    top = trials[0]
    for t in trials[1:]:
        if t.metrics["accuracy"] > top.metrics["accuracy"]:
            top = t
    last = trials[-1].extra.get("controller")
    controller.baseline = last["baseline"] if last is not None else trials[0].metrics["accuracy"]
    if last is not None:
        controller.logits = np.asarray(last["logits"], dtype=float)
    arch = space.validate(top.arch)
    net = space.build(arch)
    net.load_state_dict(load_state_dict(wd / TRIAL_WEIGHTS / f"{arch.id}.pt"))
    log.info("resuming %s after trial %d (best: trial %d)", wd, trials[-1].number, top.number)
    return _Best(top, arch, top.metrics["accuracy"], int(top.metrics["scratch_epochs"]), net)
