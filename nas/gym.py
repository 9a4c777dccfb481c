"""The benchmark gym, after ArchGym (Krishnan et al., ISCA 2023): every registered strategy against every
environment through one ask/tell loop (`nas.search`), each with the same number of its own hyper-parameter
settings, reporting the distribution of outcomes over settings x seeds rather than a best run, so that no
strategy wins the "hyperparameter lottery" by having been tuned more.

`Environment` (built in: NAS-Bench-Graph tables, the analytic hardware `CostModel`, real training on digits,
and any environment behind a `ProxyCostModel`), `HYPERPARAMETERS` / `draw_settings`, `run_gym -> GymResult`.
Nothing here prints: `experiments/reporting.py` renders tables and plots; docs/gym.md walks through it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import logging
import math
import multiprocessing
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.objectives import Problem
from nas.result import SearchResult
from nas.search import search
from nas.spaces import Architecture, Choice, Repeat, Space
from nas.spaces.model_space import ModelSpace
from nas.strategies import STRATEGIES, FidelitySpace, make_strategy

Metrics = Mapping[str, float]


# ---------------------------------------------------------------------------------------- environments
@dataclass
class Environment:
    """One search problem of the gym: `nas.search(space, evaluate, {objective: direction}, constraints)`.

    `fidelity` (ascending levels, e.g. epochs) lets multi-fidelity strategies run here: `evaluate` must
    then accept `budget=` and the gym wraps the space in `FidelitySpace(space, fidelity, fidelity_field)`
    for strategies that need one; their budget counts full-fidelity evaluations (one at level l costs
    l / top), and only trials at the top level count as outcomes. `final(arch)` is what is reported of the architecture
    a run returns (test accuracy, the real cost of a proxy's pick); None means the objective itself.
    `cost_metric` names a metric holding each evaluation's cost in seconds (e.g. training time charged
    also on a memoised repeat); without it the search cost is the trials' wall time. `optimum` is the
    best objective value of the whole space where known (tabular), for regret.
    """

    name: str
    space: Space
    evaluate: Any
    objective: str
    direction: str = "max"
    constraints: tuple[str, ...] = ()
    budget: int = 50
    fidelity: tuple[float, ...] = ()
    fidelity_field: str = "epochs"
    final: Callable[[Architecture], float | None] | None = None
    final_name: str = ""
    optimum: float | None = None
    cost_metric: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ConfigError(f"environment {self.name!r}: direction must be 'max' or 'min', got {self.direction!r}")
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 1:
            raise ConfigError(f"environment {self.name!r}: budget must be a positive int, got {self.budget!r}")
        self.constraints = tuple(self.constraints)
        self.fidelity = tuple(sorted(self.fidelity))

    @property
    def problem(self) -> Problem:
        return Problem.make({self.objective: self.direction}, list(self.constraints))

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts about the environment (recorded beside its results)."""
        size = self.space.size() if hasattr(self.space, "size") else None
        return {"name": self.name, "objective": self.objective, "direction": self.direction,
                "constraints": list(self.constraints), "budget": self.budget, "fidelity": list(self.fidelity),
                "final": self.final_name or self.objective, "optimum": self.optimum, "space": type(self.space).__name__,
                "space_size": int(size) if size is not None else None, "description": self.description}


def tabular_environment(dataset: str = "cora", budget: int = 60, root: str | Path | None = None) -> Environment:
    """NAS-Bench-Graph (cora, citeseer, pubmed): max valid_acc; reported: test_acc of the returned architecture.

    Raises ConfigError naming the missing file when the table is absent (set NAS_DATA_DIR)."""
    from nas.tabular import nas_bench_graph

    bench = nas_bench_graph(dataset, root)

    def test_acc(arch: Architecture) -> float | None:
        try:
            return bench(arch)["test_acc"]
        except LookupError:
            return None

    return Environment(f"nbg-{dataset}", bench.space, bench, "valid_acc", "max", budget=budget, final=test_acc,
                       final_name="test_acc", optimum=bench.optimum("valid_acc"),
                       description=f"NAS-Bench-Graph {dataset} table lookup ({len(bench)} rows)")


class CNN1dSpace(ModelSpace):
    """A plain 1-D CNN space written field by field: `blocks` conv blocks (conv, batch norm, ReLU, max-pool 2),
    each with its own width and kernel, then global average pooling and a linear head; MNIST-1D-shaped input."""

    def __init__(self, blocks: int = 3, widths: Sequence[int] = (8, 16, 24, 32, 48, 64),
                 kernels: Sequence[int] = (3, 5, 7, 9), length: int = 40, num_classes: int = 10) -> None:
        super().__init__(blocks=Repeat(blocks, width=Choice(list(widths)), kernel=Choice(list(kernels))))
        self.length, self.num_classes = length, num_classes

    def build(self, arch: Mapping[str, Any]) -> Any:
        from torch import nn

        layers: list[Any] = []
        c = 1
        for b in self.validate(arch)["blocks"]:
            layers += [nn.Conv1d(c, b["width"], b["kernel"], padding=b["kernel"] // 2), nn.BatchNorm1d(b["width"]),
                       nn.ReLU(), nn.MaxPool1d(2)]
            c = b["width"]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(c, self.num_classes))

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> Any:
        import torch

        return torch.zeros(batch_size, 1, self.length)

    def largest(self) -> Architecture:
        """Every block at its widest and largest kernel."""
        block = self.fields["blocks"]
        top = {name: max(leaf.options) for name, leaf in block.block.fields.items()}
        return self.validate({"blocks": [top] * block.count})


def hardware_environment(device: str = "jetson_orin_nano", budget: int = 60, latency_fraction: float = 0.3,
                         space: "CNN1dSpace | None" = None, name: str = "hw-cnn1d") -> Environment:
    """The analytic hardware cost model: max `params` (a capacity stand-in for accuracy) subject to
    `latency_roofline_ms <= latency_fraction x` that of the largest network, on `device`'s roofline.

    Metrics come from `nas.hardware.CostModel(space, device=device, energy="analytic")` (torch
    FlopCounterMode counts of the built network, the profile's roofline and pJ/FLOP, pJ/byte energy), each
    query building the network and counting it (tens of ms); results are cached per architecture.
    """
    from nas.hardware import CostModel

    space = space if space is not None else CNN1dSpace()
    model = CostModel(space, device=device, energy="analytic", cache=max(4096, int(min(space.size(), 10 ** 6))))
    bound = latency_fraction * model(space.largest())["latency_roofline_ms"]
    return Environment(name, space, model, "params", "max",
                       constraints=(f"latency_roofline_ms <= {bound:.6g}",), budget=budget,
                       description=f"analytic CostModel ({device} roofline + energy) of a {type(space).__name__}, "
                                   f"latency bound {latency_fraction:g} x the largest network's")


class DigitsMLPTraining:
    """Real training: an MLP (arch: depth, per-layer width, activation, learning rate) trained from scratch on
    scikit-learn's digits (900 train / 450 valid / 447 test) for `budget` epochs (AdamW, cosine schedule,
    batch 64, one fixed seed). Training is deterministic, so each (architecture, epochs) is trained once
    per process and repeats return the memoised metrics, with the original `train_seconds` charged again."""

    def __init__(self, epochs: int = 9, seed: int = 0, batch_size: int = 64) -> None:
        from nas.datasets import digits_splits

        self.epochs, self.seed, self.batch_size = epochs, seed, batch_size
        self.data = {k: (x.flatten(1), y) for k, (x, y) in digits_splits(seed).items()}
        self.cache: dict[tuple[str, int], dict[str, float]] = {}
        self.trained = 0
        self._warm_up()

    def _warm_up(self) -> None:
        """One throw-away epoch, so torch's first-call costs are not charged to the first architecture."""
        from nas.spaces.training import PlainTraining

        arch = {"layers": [{"width": 16}], "act": "relu", "lr": 0.01}
        PlainTraining(epochs=1, batch_size=self.batch_size, seed=self.seed).fit(self.build(arch), *self.data["train"])

    def build(self, arch: Mapping[str, Any]) -> Any:
        import torch
        from torch import nn

        act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[arch["act"]]
        layers: list[Any] = []
        c = self.data["train"][0].shape[1]
        for layer in arch["layers"]:
            layers += [nn.Linear(c, layer["width"]), act()]
            c = layer["width"]
        torch.manual_seed(self.seed)
        return nn.Sequential(*layers, nn.Linear(c, 10))

    def __call__(self, arch: Mapping[str, Any], budget: float | None = None) -> dict[str, float]:
        import torch

        from nas.spaces.training import PlainTraining, accuracy

        epochs = int(budget) if budget is not None else self.epochs
        key = (Architecture(arch).id, epochs)
        if key not in self.cache:
            model = self.build(arch)
            t0 = time.perf_counter()
            PlainTraining(epochs=epochs, batch_size=self.batch_size, lr=float(arch["lr"]), seed=self.seed).fit(
                model, *self.data["train"])
            seconds = time.perf_counter() - t0
            model.eval()
            with torch.no_grad():
                self.cache[key] = {"valid_acc": accuracy(model, *self.data["valid"]),
                                   "test_acc": accuracy(model, *self.data["test"]), "train_seconds": seconds,
                                   "params": float(sum(p.numel() for p in model.parameters()))}
            self.trained += 1
        return dict(self.cache[key])


def digits_mlp_space() -> Space:
    """depth 1-3, a width per layer, one activation and a learning rate: 1,008 architectures."""
    return Space(depth=Choice([1, 2, 3]), layers=Repeat(count="depth", width=Choice([16, 32, 64, 128])),
                 act=Choice(["relu", "tanh", "gelu"]), lr=Choice([0.001, 0.003, 0.01, 0.03]))


def training_environment(budget: int = 30, levels: Sequence[int] = (1, 3, 9), seed: int = 0) -> Environment:
    """Real training on digits (`DigitsMLPTraining`): max valid_acc after `levels[-1]` epochs; multi-fidelity
    strategies see `levels` as the epochs field. Reported: test accuracy of the returned architecture."""
    trainer = DigitsMLPTraining(epochs=int(levels[-1]), seed=seed)

    def test_acc(arch: Architecture) -> float:
        return trainer(arch)["test_acc"]

    return Environment("digits-mlp", digits_mlp_space(), trainer, "valid_acc", "max", budget=budget,
                       fidelity=tuple(float(x) for x in levels), final=test_acc, final_name="test_acc",
                       cost_metric="train_seconds",
                       description=f"MLP trained on scikit-learn digits for {levels[-1]} epochs (memoised per process)")


def proxy_environment(base: Environment, proxy: "ProxyCostModel", real: Callable[[Architecture], Metrics] | None = None
                      ) -> Environment:
    """`base` with its evaluator replaced by `proxy`. What a run returns is reported at its real objective
    value (`real`, default `base.evaluate`), or None when the real function says it breaks a constraint."""
    real_fn = real if real is not None else base.evaluate
    problem = base.problem

    def real_value(arch: Architecture) -> float | None:
        m = real_fn(arch)
        return float(m[base.objective]) if problem.feasible(m) else None

    return Environment(f"{base.name}-proxy", base.space, proxy, base.objective, base.direction, base.constraints,
                       base.budget, base.fidelity, base.fidelity_field, real_value, f"real {base.objective}",
                       base.optimum, None, f"random-forest proxy of {base.name} ({proxy.n_train} logged trials)")


ENVIRONMENTS: dict[str, Callable[..., Environment]] = {
    "nbg-cora": functools.partial(tabular_environment, "cora"),
    "nbg-citeseer": functools.partial(tabular_environment, "citeseer"),
    "nbg-pubmed": functools.partial(tabular_environment, "pubmed"),
    "hw-cnn1d": hardware_environment,
    "digits-mlp": training_environment,
}
"""Built-in environments by name; each factory takes `budget=` (and its own options)."""


def environment(name: str, **options: Any) -> Environment:
    """A built-in environment by name (see `ENVIRONMENTS`); unknown names are ConfigErrors listing them."""
    factory = ENVIRONMENTS.get(name)
    if factory is None:
        raise ConfigError(f"unknown environment {name!r}; available: {', '.join(ENVIRONMENTS)}")
    return factory(**options)


# ---------------------------------------------------------------------------------------- hyper-parameters
@dataclass(frozen=True)
class Hyperparameters:
    """A strategy's option grid: option -> candidate values (`a.b` sets key `b` of dict option `a`), with an
    optional validity check of a drawn setting."""

    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    valid: Callable[[Mapping[str, Any]], bool] | None = None


HYPERPARAMETERS: dict[str, Hyperparameters] = {
    "random": Hyperparameters(),
    "local": Hyperparameters(),
    "evolution": Hyperparameters({"population_size": (10, 20, 30, 50, 100),
                                  "mutation_bias": (0.0, 0.25, 0.5, 0.75, 1.0)}),
    "nsga2": Hyperparameters({"population_size": (8, 12, 20, 30, 50), "crossover_prob": (0.5, 0.7, 0.9, 1.0)}),
    "guided-evolution": Hyperparameters({"population_size": (10, 20, 40), "sample_size": (5, 10),
                                         "candidates": (50, 100, 200), "warmup": (10, 20), "kappa": (0.0, 0.5, 1.0),
                                         "crossover_prob": (0.25, 0.5, 0.75)},
                                        lambda o: o.get("sample_size", 10) <= o.get("population_size", 20)),
    "rl": Hyperparameters({"hidden": (16, 32, 64), "lr": (0.01, 0.03, 0.05, 0.1), "batch_size": (5, 10, 20),
                           "baseline_decay": (0.8, 0.9, 0.95), "entropy_weight": (0.0, 0.01, 0.05)}),
    "bayesian": Hyperparameters({"acquisition": ("ei", "ucb"), "kappa": (0.5, 1.0, 2.0), "warmup": (5, 10, 20),
                                 "members": (3, 5), "hidden": (16, 32, 64)}),
    "mcts": Hyperparameters({"exploration": (0.05, 0.1, 0.3, 0.5, 1.0), "resample": (2, 5, 10)}),
    "smbo": Hyperparameters({"n_init": (5, 10, 20), "trees": (25, 50, 100), "min_samples_leaf": (1, 2, 4),
                             "max_features": (0.3, 0.5, 1.0), "acquisition": ("ei", "ucb"), "kappa": (0.5, 1.0, 2.0)}),
    "tpe": Hyperparameters({"sampler_options.n_startup_trials": (5, 10, 20),
                            "sampler_options.multivariate": (False, True),
                            "sampler_options.n_ei_candidates": (12, 24, 48)}),
    "gp": Hyperparameters({"sampler_options.n_startup_trials": (5, 10, 20),
                           "sampler_options.deterministic_objective": (False, True)}),
    "cmaes": Hyperparameters({"sampler_options.n_startup_trials": (1, 5, 10, 20),
                              "sampler_options.with_margin": (False, True),
                              "sampler_options.use_separable_cma": (False, True)},
                             lambda o: not (o.get("sampler_options", {}).get("with_margin")
                                            and o.get("sampler_options", {}).get("use_separable_cma"))),
    "nsga2-optuna": Hyperparameters({"sampler_options.population_size": (10, 20, 50),
                                     "sampler_options.crossover_prob": (0.5, 0.9),
                                     "sampler_options.mutation_prob": (None, 0.1, 0.3)}),
    "qmc": Hyperparameters({"sampler_options.qmc_type": ("sobol", "halton"),
                            "sampler_options.scramble": (True, False)}),
    "successive-halving": Hyperparameters({"eta": (2, 3, 4), "inner": ("random", "evolution", "tpe")}),
    "hyperband": Hyperparameters({"eta": (2, 3, 4), "inner": ("random", "evolution", "tpe"), "brackets": (2, 3)}),
}
"""Declared option grids, one per registered strategy; a strategy missing here runs with its defaults and
differs between runs by seed only (the result says so)."""


@dataclass(frozen=True)
class Setting:
    """One hyper-parameter setting of a strategy (index 0 is the strategy's defaults when included)."""

    strategy: str
    index: int
    options: dict[str, Any]


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, tail = key.partition(".")
        if tail:
            out.setdefault(head, {})[tail] = value
        else:
            out[head] = value
    return out


def draw_settings(strategy: str, n: int, seed: int = 0, include_default: bool = True,
                  hyperparameters: Mapping[str, Hyperparameters] | None = None) -> tuple[list[Setting], list[str]]:
    """`n` settings of `strategy`'s options: its defaults (when `include_default`), then distinct random draws
    from its declared grid (cycled when the grid is smaller). Returns (settings, notes): notes say which
    declared options the strategy does not take (dropped) and when it has no grid at all."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; available: {', '.join(sorted(STRATEGIES))}")
    hp = (hyperparameters or HYPERPARAMETERS).get(strategy)
    notes: list[str] = []
    params = set(inspect.signature(STRATEGIES[strategy].__init__).parameters) - {"self", "space", "problem", "seed"}
    grid = dict(hp.grid) if hp else {}
    dropped = sorted(k for k in grid if k.partition(".")[0] not in params)
    if dropped:
        notes.append(f"{strategy}: declared options {dropped} are not options of the strategy; dropped")
        grid = {k: v for k, v in grid.items() if k not in dropped}
    if hp is None:
        notes.append(f"{strategy}: no declared hyper-parameter grid; its runs differ by seed only")
    keys = sorted(grid)
    points = [_nest(dict(zip(keys, values))) for values in itertools.product(*(grid[k] for k in keys))] if grid else []
    defaults = {k: p.default for k, p in inspect.signature(STRATEGIES[strategy].__init__).parameters.items()}
    points = [p for p in points if (hp is None or hp.valid is None or hp.valid(p))
              and not all(k in defaults and defaults[k] == v for k, v in p.items())]   # the defaults: setting 0
    if not points:
        return [Setting(strategy, i, {}) for i in range(n)], notes
    rng = np.random.default_rng([seed, zlib.crc32(strategy.encode())])
    order = [points[i] for i in rng.permutation(len(points))]
    chosen: list[dict[str, Any]] = [{}] if include_default else []
    while len(chosen) < n:
        chosen += order[: n - len(chosen)]
    return [Setting(strategy, i, options) for i, options in enumerate(chosen[:n])], notes


# ---------------------------------------------------------------------------------------- results
@dataclass
class RunRecord:
    """One search: which environment, strategy, setting and seed, and what it found."""

    environment: str
    strategy: str
    setting: int
    options: dict[str, Any]
    seed: int
    budget: int                      # in full evaluations (fidelity environments: l / top per evaluation at level l)
    value: float | None = None       # best feasible objective value found (at the top fidelity)
    final: float | None = None       # the environment's `final` of the returned architecture
    arch: dict[str, Any] | None = None
    evaluations: int = 0             # evaluations spent, at any fidelity
    budget_used: float = 0.0         # the same in full-evaluation equivalents
    failed: int = 0
    infeasible: int = 0
    seconds: float = 0.0             # wall time of the whole search (strategy + evaluations)
    cost_s: float = 0.0              # evaluation cost: `cost_metric` summed, else the trials' wall time
    stop_reason: str = ""
    fidelity: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Skip:
    """A strategy that does not apply to an environment, and why."""

    environment: str
    strategy: str
    reason: str


@dataclass(frozen=True)
class Summary:
    """The distribution of one strategy's outcomes on one environment over all its settings x seeds."""

    environment: str
    strategy: str
    direction: str
    n: int                  # runs with a value
    missing: int            # runs without one (no feasible architecture found, or an error)
    median: float
    q1: float
    q3: float
    min: float
    max: float
    mean: float
    default_median: float | None   # setting 0 (the defaults, when included) alone
    best_setting_median: float     # what picking the best setting after the fact would report
    worst_setting_median: float
    final_median: float | None
    seconds_mean: float
    cost_s_mean: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


@dataclass
class GymResult:
    """Every run, every skip, the settings used and the environments' facts; `summaries()` per pair."""

    runs: list[RunRecord]
    skipped: list[Skip]
    settings: dict[str, list[Setting]]
    environments: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def values(self, environment: str, strategy: str, what: str = "value") -> list[float]:
        """The outcomes of one pair (runs without one left out), in run order."""
        return [getattr(r, what) for r in self.runs if r.environment == environment and r.strategy == strategy
                and getattr(r, what) is not None]

    def strategies(self, environment: str | None = None) -> list[str]:
        seen = dict.fromkeys(r.strategy for r in self.runs if environment in (None, r.environment))
        return list(seen)

    def summaries(self) -> list[Summary]:
        defaults = self.config.get("include_default", True)  # setting 0 is the defaults only when included
        out = []
        for env, facts in self.environments.items():
            direction = facts["direction"]
            for strat in self.strategies(env):
                runs = [r for r in self.runs if r.environment == env and r.strategy == strat]
                vals = np.array([r.value for r in runs if r.value is not None], dtype=float)
                if not len(vals):
                    continue
                per_setting: dict[int, list[float]] = {}
                for r in runs:
                    if r.value is not None:
                        per_setting.setdefault(r.setting, []).append(r.value)
                medians = [float(np.median(v)) for v in per_setting.values()]
                pick = max if direction == "max" else min
                other = min if direction == "max" else max
                finals = [r.final for r in runs if r.final is not None]
                q1, med, q3 = np.percentile(vals, [25, 50, 75])
                out.append(Summary(env, strat, direction, len(vals), len(runs) - len(vals), float(med), float(q1),
                                   float(q3), float(vals.min()), float(vals.max()), float(vals.mean()),
                                   float(np.median(per_setting[0])) if 0 in per_setting and defaults else None,
                                   pick(medians), other(medians), float(np.median(finals)) if finals else None,
                                   float(np.mean([r.seconds for r in runs])), float(np.mean([r.cost_s for r in runs]))))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [asdict(r) for r in self.runs], "skipped": [asdict(s) for s in self.skipped],
                "settings": {k: [asdict(s) for s in v] for k, v in self.settings.items()},
                "environments": self.environments, "notes": list(self.notes), "config": dict(self.config),
                "summaries": [asdict(s) for s in self.summaries()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GymResult":
        return cls([RunRecord(**r) for r in data["runs"]], [Skip(**s) for s in data["skipped"]],
                   {k: [Setting(**s) for s in v] for k, v in data["settings"].items()},
                   dict(data["environments"]), list(data.get("notes", [])), dict(data.get("config", {})))

    def merge(self, other: "GymResult") -> "GymResult":
        """This result and `other` (other environments, or other strategies) as one."""
        return GymResult(self.runs + other.runs, self.skipped + other.skipped, {**self.settings, **other.settings},
                         {**self.environments, **other.environments}, self.notes + [n for n in other.notes
                                                                                   if n not in self.notes],
                         {**self.config, **other.config})


# ---------------------------------------------------------------------------------------- running
def applicability(env: Environment, strategy: str) -> tuple[Space | None, str]:
    """(the space `strategy` runs on in `env`, or None; why not). A strategy whose `requires` the space lacks
    is skipped; one that refuses the space at construction (a multi-fidelity strategy on a space without a
    fidelity) gets the environment's `FidelitySpace` when it declares fidelity levels, else is skipped."""
    cls = STRATEGIES[strategy]
    missing = cls.requires - env.space.capabilities
    if missing:
        return None, f"needs space capabilities {sorted(missing)}, which {type(env.space).__name__} lacks"
    try:
        make_strategy(strategy, env.space, env.problem, 0)
        return env.space, ""
    except ConfigError as e:
        reason = str(e)
    if env.fidelity:
        fspace = FidelitySpace(env.space, env.fidelity, env.fidelity_field)
        try:
            make_strategy(strategy, fspace, env.problem, 0)
            return fspace, ""
        except ConfigError as e:
            reason = str(e)
    return None, reason + ("" if env.fidelity else " (this environment has no fidelity levels)")


def run_one(env: Environment, strategy: str, setting: Setting, seed: int, budget: int | None = None,
            workdir: str | Path | None = None) -> RunRecord:
    """One `nas.search` of `strategy` with `setting` on `env`; errors are recorded, not raised."""
    budget = budget or env.budget
    rec = RunRecord(env.name, strategy, setting.index, setting.options, seed, budget)
    space, why = applicability(env, strategy)
    if space is None:
        rec.error = f"not applicable: {why}"
        return rec
    fid = isinstance(space, FidelitySpace) and space is not env.space
    evaluate = space.evaluator(env.evaluate) if fid else env.evaluate
    t0 = time.perf_counter()
    try:
        if fid:
            result, rec.budget_used = _fidelity_search(env, space, evaluate, strategy, setting, seed, budget, workdir)
        else:
            result = search(space, evaluate, {env.objective: env.direction}, list(env.constraints), strategy=strategy,
                            strategy_options=setting.options, budget=budget, seed=seed, workdir=workdir)
            rec.budget_used = float(result.used)
    except Exception as e:  # a strategy's bug must not end the whole gym: it is recorded with the run
        rec.seconds, rec.error = time.perf_counter() - t0, f"{type(e).__name__}: {e}"
        return rec
    rec.seconds = time.perf_counter() - t0
    rec.fidelity, rec.stop_reason, rec.evaluations = fid, result.stop_reason, result.used
    rec.failed = sum(t.status == "failed" for t in result.trials)
    candidates = result.feasible
    if fid:
        top = space.levels[-1]
        candidates = [t for t in candidates if float(t.arch[space.field]) == float(top)]
    rec.infeasible = len(result.completed) - len(result.feasible)
    if env.cost_metric:
        rec.cost_s = float(sum(t.metrics.get(env.cost_metric, 0.0) for t in result.trials))
    else:
        rec.cost_s = float(sum(t.duration for t in result.trials))
    if candidates:
        pick = max if env.direction == "max" else min
        best = pick(candidates, key=lambda t: t.metrics[env.objective])
        arch = space.strip(best.arch) if fid else Architecture(best.arch)
        rec.value, rec.arch = float(best.metrics[env.objective]), arch.to_dict()
        final = env.final(arch) if env.final is not None else rec.value
        rec.final = None if final is None else float(final)
    return rec


def _fidelity_search(env: Environment, space: FidelitySpace, evaluate: Any, strategy: str, setting: Setting,
                     seed: int, budget: int, workdir: str | Path | None) -> tuple[SearchResult, float]:
    """A search whose budget counts full-fidelity evaluations: one at level l costs l / top. `nas.search`
    budgets count evaluations, so the search is resumed (its own journal, the toolkit's resume) with more
    evaluations until `budget` full-evaluation equivalents are spent (overshooting by less than one)."""
    top = float(space.levels[-1])

    def spent(res: SearchResult) -> float:
        return sum(float(t.arch[space.field]) / top for t in res.trials if t.is_evaluation)

    with contextlib.ExitStack() as stack:
        wd = workdir if workdir is not None else stack.enter_context(tempfile.TemporaryDirectory(prefix="nas-gym-"))
        evaluations = budget
        while True:
            result = search(space, evaluate, {env.objective: env.direction}, list(env.constraints), strategy=strategy,
                            strategy_options=setting.options, budget=evaluations, seed=seed, workdir=wd)
            cost = spent(result)
            if cost >= budget - 1e-9 or result.stop_reason != "budget":
                return result, cost
            evaluations = result.used + max(1, math.ceil(budget - cost))


_POOL_ENVS: list[Environment] = []  # inherited by forked workers (environments need not pickle)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    logging.getLogger("nas").setLevel(logging.ERROR)


def _pool_task(task: tuple[int, str, Setting, int, int | None, str | None]) -> RunRecord:
    env_i, strategy, setting, seed, budget, workdir = task
    return run_one(_POOL_ENVS[env_i], strategy, setting, seed, budget, workdir)


def run_gym(environments: Sequence[Environment | str], strategies: Sequence[str] | None = None, settings: int = 5,
            seeds: int = 2, seed: int = 0, budget: int | None = None, include_default: bool = True,
            hyperparameters: Mapping[str, Hyperparameters] | None = None, jobs: int = 1,
            workdir: str | Path | None = None,
            progress: Callable[[RunRecord, int, int], None] | None = None) -> GymResult:
    """Run every strategy (default: all registered) on every environment, `settings` x `seeds` runs each.

    Every strategy gets `settings` settings from `draw_settings` (the same ones on every environment) and
    each setting `seeds` runs; run k of every strategy uses seed `seed + k`, so all strategies see the same
    seeds. `budget` overrides each environment's own. Names in `environments` are built with
    `environment(name)`; one that cannot be built (a missing table) is skipped with its error in `notes`.
    `jobs` > 1 runs searches in forked worker processes (torch on one thread each). With `workdir`, each
    run journals to `workdir/<environment>/<strategy>/<setting>-<seed>` (the logged trials a
    `ProxyCostModel.from_journals` learns from). `progress(record, done, total)` follows the runs.
    """
    notes: list[str] = []
    envs: list[Environment] = []
    for e in environments:
        if isinstance(e, Environment):
            envs.append(e)
            continue
        try:
            envs.append(environment(e))
        except ConfigError as err:
            notes.append(f"environment {e!r} skipped: {err}")
    names = list(strategies) if strategies is not None else sorted(STRATEGIES)
    drawn: dict[str, list[Setting]] = {}
    for name in names:
        drawn[name], extra = draw_settings(name, settings, seed, include_default, hyperparameters)
        notes += extra
    tasks: list[tuple[int, str, Setting, int, int | None, str | None]] = []
    skipped: list[Skip] = []
    for i, env in enumerate(envs):
        for name in names:
            space, why = applicability(env, name)
            if space is None:
                skipped.append(Skip(env.name, name, why))
                continue
            for s in drawn[name]:
                for k in range(seeds):
                    run_seed = seed + s.index * seeds + k
                    wd = (str(Path(workdir) / env.name / name / f"{s.index}-{run_seed}") if workdir is not None
                          else None)
                    tasks.append((i, name, s, run_seed, budget, wd))
    runs: list[RunRecord] = []
    if jobs <= 1:
        for task in tasks:
            runs.append(run_one(envs[task[0]], *task[1:]))
            if progress:
                progress(runs[-1], len(runs), len(tasks))
    else:
        global _POOL_ENVS
        _POOL_ENVS = envs
        try:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker) as pool:
                for rec in pool.map(_pool_task, tasks, chunksize=1):
                    runs.append(rec)
                    if progress:
                        progress(rec, len(runs), len(tasks))
        finally:
            _POOL_ENVS = []
    config = {"settings": settings, "seeds": seeds, "seed": seed, "budget": budget, "include_default": include_default,
              "strategies": names, "runs_per_pair": settings * seeds,
              "seed_rule": "run k (setting k // seeds) of every strategy uses seed + k"}
    return GymResult(runs, skipped, drawn, {e.name: e.describe() for e in envs}, notes, config)


# ---------------------------------------------------------------------------------------- proxy cost model
@dataclass
class PackedForest:
    """The trees of fitted scikit-learn forests flattened into a few arrays, so that one query walks all trees
    at once, one tree level per step (scikit-learn's `predict` costs milliseconds per call, whatever the batch).
    `children[2 i]` / `children[2 i + 1]` are node i's left / right child (a leaf points at itself);
    `groups[k]` trees, in order, belong to output k, whose prediction is their mean, as in the forest."""

    children: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    groups: list[int]
    depth: int

    @classmethod
    def from_forests(cls, forests: Sequence[Any]) -> "PackedForest":
        children, feat, thr, val, roots, groups = [], [], [], [], [], []
        offset, depth = 0, 0
        for forest in forests:
            groups.append(len(forest.estimators_))
            for est in forest.estimators_:
                t = est.tree_
                leaf = t.children_left < 0
                idx = np.arange(t.node_count)
                pair = np.empty(2 * t.node_count, dtype=np.int64)
                pair[0::2] = np.where(leaf, idx, t.children_left) + offset
                pair[1::2] = np.where(leaf, idx, t.children_right) + offset
                children.append(pair)
                feat.append(np.where(leaf, 0, t.feature))
                thr.append(np.where(leaf, np.inf, t.threshold))
                val.append(t.value[:, 0, 0])
                roots.append(offset)
                offset += t.node_count
                depth = max(depth, int(t.max_depth))
        index = np.int32 if 2 * offset < 2 ** 31 else np.int64
        return cls(np.concatenate(children).astype(index), np.concatenate(feat).astype(index), np.concatenate(thr),
                   np.concatenate(val), np.array(roots, dtype=index), groups, depth)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs for one feature vector [F] -> [outputs], or a batch [S, F] -> [S, outputs]."""
        x = np.asarray(x, dtype=np.float32).astype(np.float64)  # scikit-learn compares float32 inputs
        starts = np.cumsum([0] + self.groups[:-1])
        counts = np.asarray(self.groups, dtype=float)
        if x.ndim == 1:
            node = self.roots
            for _ in range(self.depth):
                node = self.children.take(2 * node + (x.take(self.feature.take(node)) > self.threshold.take(node)))
            return np.add.reduceat(self.value.take(node), starts) / counts
        flat, base = x.ravel(), (np.arange(len(x)) * x.shape[1])[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots)))
        for _ in range(self.depth):
            go_right = flat.take(base + self.feature.take(node)) > self.threshold.take(node)
            node = self.children.take(2 * node + go_right)
        return np.add.reduceat(self.value.take(node), starts, axis=1) / counts


@dataclass(frozen=True)
class ProxyAccuracy:
    """How a proxy predicts one metric on held-out architectures: RMSE as a percentage of the held-out
    truth's range (max - min), the measure ArchGym reports, plus Kendall tau."""

    metric: str
    n_train: int
    n_test: int
    rmse: float
    target_range: float
    rmse_pct_of_range: float
    mae: float
    kendall_tau: float


class ProxyCostModel:
    """A random forest per metric (scikit-learn) on the space's numeric encoding (`space.to_vector`), trained
    on logged trials; `proxy(arch) -> {metric: prediction}` makes it a drop-in evaluator."""

    def __init__(self, space: Space, metrics: Sequence[str], forests: Sequence[Any], n_train: int,
                 source: str = "") -> None:
        self.space, self.metrics, self.forests, self.n_train, self.source = space, list(metrics), list(forests), n_train, source
        self.packed = PackedForest.from_forests(self.forests)

    def features(self, archs: Iterable[Mapping[str, Any]]) -> np.ndarray:
        return np.array([self.space.to_vector(a) for a in archs], dtype=float)

    @classmethod
    def fit(cls, space: Space, archs: Sequence[Mapping[str, Any]], targets: Mapping[str, Sequence[float]],
            n_estimators: int = 50, min_samples_leaf: int = 1, max_features: float = 1.0, seed: int = 0,
            source: str = "") -> "ProxyCostModel":
        from sklearn.ensemble import RandomForestRegressor

        if not archs:
            raise ConfigError("ProxyCostModel.fit: no architectures to learn from")
        x = np.array([space.to_vector(a) for a in archs], dtype=float)
        forests = []
        for metric, y in targets.items():
            if len(y) != len(x):
                raise ConfigError(f"ProxyCostModel.fit: {len(y)} values of {metric!r} for {len(x)} architectures")
            rf = RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=min_samples_leaf,
                                       max_features=max_features, random_state=seed, n_jobs=1)
            forests.append(rf.fit(x, np.asarray(y, dtype=float)))
        return cls(space, list(targets), forests, len(x), source)

    @classmethod
    def from_trials(cls, space: Space, trials: Iterable[Any], metrics: Sequence[str], **options: Any) -> "ProxyCostModel":
        """Learn from journaled trials (`nas.Trial`): every distinct architecture with all `metrics`, once."""
        seen: dict[str, tuple[dict[str, Any], dict[str, float]]] = {}
        for t in trials:
            if t.status == "failed" or not all(m in t.metrics and math.isfinite(t.metrics[m]) for m in metrics):
                continue
            seen.setdefault(t.arch_id, (t.arch, {m: float(t.metrics[m]) for m in metrics}))
        archs = [space.validate(a) for a, _ in seen.values()]
        return cls.fit(space, archs, {m: [v[m] for _, v in seen.values()] for m in metrics}, **options)

    @classmethod
    def from_journals(cls, space: Space, workdirs: Iterable[str | Path], metrics: Sequence[str],
                      **options: Any) -> "ProxyCostModel":
        """Learn from the journals of earlier searches (any folders holding a `journal.jsonl`, searched below)."""
        dirs = sorted({p.parent for d in workdirs for p in Path(d).rglob("journal.jsonl")})
        if not dirs:
            raise ConfigError(f"ProxyCostModel.from_journals: no journal.jsonl under {list(map(str, workdirs))}")
        trials = [t for d in dirs for t in SearchResult.load(d).trials]
        options.setdefault("source", f"{len(trials)} trials in {len(dirs)} journals")
        return cls.from_trials(space, trials, metrics, **options)

    def __call__(self, arch: Mapping[str, Any]) -> dict[str, float]:
        pred = self.packed.predict(self.space.to_vector(arch))
        return {m: float(v) for m, v in zip(self.metrics, pred)}

    def predict(self, archs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        pred = self.packed.predict(self.features(archs))
        return {m: pred[:, i] for i, m in enumerate(self.metrics)}

    def accuracy(self, archs: Sequence[Mapping[str, Any]], truth: Mapping[str, Sequence[float]]) -> list[ProxyAccuracy]:
        """RMSE (and % of range), MAE and Kendall tau per metric against `truth` on held-out `archs`."""
        from scipy.stats import kendalltau

        pred = self.predict(archs)
        out = []
        for m in self.metrics:
            y = np.asarray(truth[m], dtype=float)
            err = pred[m] - y
            rmse, rng = float(np.sqrt(np.mean(err ** 2))), float(y.max() - y.min())
            tau = float(kendalltau(pred[m], y).statistic) if len(y) > 1 else float("nan")
            out.append(ProxyAccuracy(m, self.n_train, len(y), rmse, rng, 100.0 * rmse / rng if rng > 0 else float("nan"),
                                     float(np.mean(np.abs(err))), tau))
        return out


def time_per_query(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    """Median wall seconds of `fn(item)` over `items`, one call each (a search queries one at a time)."""
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


__all__ = ["CNN1dSpace", "DigitsMLPTraining", "ENVIRONMENTS", "Environment", "GymResult", "HYPERPARAMETERS",
           "Hyperparameters", "PackedForest", "ProxyAccuracy", "ProxyCostModel", "RunRecord", "Setting", "Skip",
           "Summary", "applicability", "digits_mlp_space", "draw_settings", "environment", "hardware_environment",
           "proxy_environment", "run_gym", "run_one", "tabular_environment", "time_per_query", "training_environment"]
