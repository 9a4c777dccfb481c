"""The gym's hyper-parameter settings: each strategy's declared option grid and the settings drawn from it."""

from __future__ import annotations

import inspect
import itertools
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.strategies import STRATEGIES


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
    "predictor-search": Hyperparameters({"n_init": (5, 10, 20), "batch_size": (1, 2, 4, 8),
                                         "population_size": (20, 30, 50), "generations": (4, 8, 12),
                                         "kappa": (0.0, 0.5, 1.0), "crossover_prob": (0.5, 0.9)}),
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
