"""The gym's hyper-parameter settings: each strategy's declared option grid and the settings drawn from it."""

from __future__ import annotations

import functools
import importlib
import inspect
import itertools
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.errors import ConfigError, check_seed
from nas.objectives import Problem
from nas.spaces import Choice, Space
from nas.strategies import STRATEGIES, FidelitySpace, OptunaStrategy


@dataclass(frozen=True)
class Hyperparameters:
    """A strategy's option grid: option -> candidate values (`a.b` sets key `b` of dict option `a`), with an
    optional validity check of a drawn setting."""

    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    valid: Callable[[Mapping[str, Any]], bool] | None = None


_REINFORCE_GRID: dict[str, tuple[Any, ...]] = {
    "hidden": (16, 32, 64), "lr": (0.01, 0.03, 0.05, 0.1), "batch_size": (5, 10, 20),
    "baseline_decay": (0.8, 0.9, 0.95), "entropy_weight": (0.0, 0.01, 0.05)}
"""The REINFORCE controller's grid, shared by `rl` and `autognn` (which takes `rl`'s options, same defaults)."""

HYPERPARAMETERS: dict[str, Hyperparameters] = {
    "random": Hyperparameters(),
    "local": Hyperparameters(),
    "evolution": Hyperparameters({"population_size": (10, 20, 30, 50, 100),
                                  "mutation_bias": (0.0, 0.25, 0.5, 0.75, 1.0)}),
    "nsga2": Hyperparameters({"population_size": (8, 12, 20, 30, 50), "crossover_prob": (0.5, 0.7, 0.9, 1.0)}),
    "predictor-search": Hyperparameters({"n_init": (5, 10, 20), "batch_size": (1, 2, 4, 8),
                                         "population_size": (20, 30, 50), "generations": (4, 8, 12),
                                         "kappa": (0.0, 0.5, 1.0), "crossover_prob": (0.5, 0.9)}),
    "rl": Hyperparameters(_REINFORCE_GRID),
    "autognn": Hyperparameters(_REINFORCE_GRID),  # rl's controller options (its own `classes` stays per slot)
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


INERT_OPTIONS: dict[str, Callable[[Mapping[str, Any]], tuple[str, ...]]] = {
    "bayesian": lambda o: ("kappa", "kappa_aleatoric") if o.get("acquisition") == "ei" else (),
    "smbo": lambda o: ("kappa",) if o.get("acquisition") == "ei" else (),
}
"""Per strategy: the flat options a setting (its defaults filled in) leaves unread, e.g. kappa beside
acquisition='ei' (bayesian reads it there only with several objectives; a gym environment has one). They
are dropped from a drawn setting before draws are compared, so that draws differ in what takes effect."""


SPACE_DEFAULTS: dict[str, Callable[[Space], dict[str, Any]]] = {
    "hyperband": lambda space: {"brackets": len(space.levels)} if isinstance(space, FidelitySpace) else {},
}
"""Per strategy: the values that options left at their default (None) take on a space, e.g. hyperband's one
bracket per fidelity level, so that a draw naming them (brackets=3 on three levels) is seen to be the defaults."""


def same_as_defaults(strategy: str, options: Mapping[str, Any], space: Space) -> bool:
    """Whether a drawn setting (nested options) runs as `strategy`'s defaults on `space`, `SPACE_DEFAULTS` resolved:
    a second setting 0 there, which the gym's draws leave out (`nas.gym.runs._refusal`)."""
    defaults = {**_defaults(STRATEGIES[strategy]), **SPACE_DEFAULTS.get(strategy, lambda _: {})(space)}
    return all(defaults.get(k, _UNKNOWN) == v for k, v in _flatten(options).items())


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


def _flatten(nested: Mapping[str, Any]) -> dict[str, Any]:
    """`_nest` undone for a setting's options: key `b` of dict option `sampler_options` as `sampler_options.b`."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        if key == "sampler_options" and isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


_UNKNOWN = object()  # an option whose default is not known: no drawn value equals it


def _sampler_parameters(cls: type) -> Mapping[str, inspect.Parameter] | None:
    """The keyword parameters of an Optuna strategy's sampler class (None for another strategy, or when the
    sampler's module is not installed)."""
    if not (isinstance(cls, type) and issubclass(cls, OptunaStrategy) and cls.sampler_class):
        return None
    module, name = cls.sampler_class.split(":")
    try:
        sampler = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return {k: p for k, p in inspect.signature(sampler.__init__).parameters.items() if k not in ("self", "seed")}


@functools.cache
def _defaults(cls: type) -> dict[str, Any]:
    """Flat option -> the value the strategy runs with when the option is not given (`a.b` for key `b` of dict
    option `a`): its `__init__` defaults and, for an Optuna strategy's `sampler_options`, the sampler's own
    defaults overridden by those the strategy sets itself (qmc's scramble=True), so a drawn setting equal to
    the defaults is recognised also inside `sampler_options`."""
    out = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
           if p.default is not inspect.Parameter.empty}
    sampler = _sampler_parameters(cls)
    if sampler is not None:
        own: Mapping[str, Any] = {}
        try:  # what the strategy passes the sampler when given no sampler_options
            own = cls(Space(x=Choice([0, 1])), Problem.make({"y": "max"}), 0).sampler_options
        except Exception:  # not buildable on a toy space (a missing extra such as cmaes): the sampler's defaults alone
            pass
        out.update({f"sampler_options.{k}": p.default for k, p in sampler.items()
                    if p.default is not inspect.Parameter.empty})
        out.update({f"sampler_options.{k}": v for k, v in own.items()})
    return out


def _check_grid(strategy: str, grid: Mapping[str, Sequence[Any]]) -> None:
    """Every grid key must be an option of the strategy (`sampler_options.k` a keyword of an Optuna strategy's
    sampler): a misspelt key is a ConfigError naming it, as `nas.search` refuses unknown options. Each value must
    be a non-empty list or tuple of candidates (a bare value or a string would not be a set of candidates)."""
    cls = STRATEGIES[strategy]
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "space", "problem", "seed")]
    sampler = _sampler_parameters(cls)
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"hyperparameters[{strategy!r}]: {key!r}: expected a non-empty list or tuple of "
                              f"candidate values, got {values!r}")
        head, _, tail = key.partition(".")
        if head not in params:
            raise ConfigError(f"hyperparameters[{strategy!r}]: {key!r} is not an option of strategy {strategy!r} "
                              f"(options: {', '.join(params) or 'none'})")
        if tail and head == "sampler_options" and sampler is not None and tail not in sampler \
                and not any(p.kind is p.VAR_KEYWORD for p in sampler.values()):
            raise ConfigError(f"hyperparameters[{strategy!r}]: {key!r}: {tail!r} is not an option of the sampler of "
                              f"strategy {strategy!r} (options: {', '.join(sampler)})")


def draw_settings(strategy: str, n: int, seed: int = 0, include_default: bool = True,
                  hyperparameters: Mapping[str, Hyperparameters | Mapping[str, Sequence[Any]]] | None = None,
                  refuses: Callable[[Mapping[str, Any]], str | None] | None = None) -> tuple[list[Setting], list[str]]:
    """`n` settings of `strategy`'s options: its defaults (when `include_default`), then distinct random draws
    from its declared grid (cycled when the grid is smaller), none of them equal to the defaults; options a draw
    leaves unread (`INERT_OPTIONS`) are dropped from it first, so draws differ in what takes effect. Grids in
    `hyperparameters` replace the built-in ones (`HYPERPARAMETERS`) of the strategies they name; the others
    keep theirs (giving one strategy's grid used to leave every other strategy with none); a grid may be given
    as `Hyperparameters` or as a plain mapping option -> candidates. A grid key that is not an option of the
    strategy, a `hyperparameters` key that is not a registered strategy (`user_grids`) and a `seed` that is not
    a non-negative int are ConfigErrors naming them. `refuses(options)` (the gym's: why an
    environment refuses them, or None) leaves out the draws it refuses; the others keep their draw order.
    Returns (settings, notes): notes say when the strategy has no grid at all, when its grid is
    too small for `n` distinct settings, and why draws were left out."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; available: {', '.join(sorted(STRATEGIES))}")
    seed = check_seed(seed)
    hp = {**HYPERPARAMETERS, **user_grids(hyperparameters)}.get(strategy)  # the user's grids replace the built-in ones
    notes: list[str] = []
    grid = dict(hp.grid) if hp else {}
    _check_grid(strategy, grid)
    if hp is None:
        notes.append(f"{strategy}: no declared hyper-parameter grid; its runs differ by seed only")
    keys = sorted(grid)
    flat = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))] if grid else []
    defaults = _defaults(STRATEGIES[strategy])
    inert = INERT_OPTIONS.get(strategy)
    if inert is not None:  # compare what takes effect: points differing only in unread options are one setting
        effective = ({k: v for k, v in p.items() if k not in inert({**defaults, **p})} for p in flat)
        flat = list({repr(sorted(p.items())): p for p in effective}.values())
    flat = [p for p in flat if not all(defaults.get(k, _UNKNOWN) == v for k, v in p.items())]  # setting 0
    points = [p for p in map(_nest, flat) if hp is None or hp.valid is None or hp.valid(p)]
    if not points:
        return [Setting(strategy, i, {}) for i in range(n)], notes
    rng = np.random.default_rng([seed, zlib.crc32(strategy.encode())])
    order = [points[i] for i in rng.permutation(len(points))]
    chosen: list[dict[str, Any]] = [{}] if include_default else []
    if refuses is not None:
        order, why = _accepted(order, n - len(chosen), refuses)
        if why is not None:
            notes.append(f"{strategy}: draws an environment refuses are left out ({why})")
        if not order:
            return [Setting(strategy, i, {}) for i in range(n)], notes
    if len(chosen) + len(order) < n:
        notes.append(f"{strategy}: its grid gives {len(order)} settings besides the defaults, so {n} settings "
                     "repeat some (each run still has its own seed)")
    while len(chosen) < n:
        chosen += order[: n - len(chosen)]
    return [Setting(strategy, i, options) for i, options in enumerate(chosen[:n])], notes


def user_grids(hyperparameters: Mapping[str, Hyperparameters | Mapping[str, Sequence[Any]]] | None
               ) -> dict[str, Hyperparameters]:
    """A user's grids by strategy, checked: a key that is not a registered strategy (a misspelt one would leave that
    strategy its built-in grid, silently) and a value that is neither `Hyperparameters` nor a plain mapping
    option -> candidates (taken as `Hyperparameters(grid)`) are ConfigErrors naming them, as are the grid keys
    `_check_grid` refuses."""
    if hyperparameters is None:
        return {}
    if not isinstance(hyperparameters, Mapping):
        raise ConfigError("hyperparameters: expected a mapping strategy name -> Hyperparameters (or None), got "
                          f"{hyperparameters!r}")
    out: dict[str, Hyperparameters] = {}
    for name, hp in hyperparameters.items():
        if name not in STRATEGIES:
            raise ConfigError(f"hyperparameters: {name!r} is not a registered strategy; available: "
                              f"{', '.join(sorted(STRATEGIES))}")
        if isinstance(hp, Mapping):
            hp = Hyperparameters(dict(hp))
        elif not isinstance(hp, Hyperparameters):
            raise ConfigError(f"hyperparameters[{name!r}]: expected Hyperparameters or a mapping option -> candidate "
                              f"values, got {type(hp).__name__} {hp!r}")
        _check_grid(name, hp.grid)
        out[name] = hp
    return out


def _accepted(order: list[dict[str, Any]], wanted: int,
              refuses: Callable[[Mapping[str, Any]], str | None]) -> tuple[list[dict[str, Any]], str | None]:
    """The first `wanted` points of `order` that `refuses` lets through (all of them when they are fewer: they are
    cycled), and its first reason for refusing one (None when it refused none of those it was asked about)."""
    taken: list[dict[str, Any]] = []
    why: str | None = None
    for point in order:
        if len(taken) >= wanted:
            break
        reason = refuses(point)
        if reason is None:
            taken.append(point)
        elif why is None:
            why = reason
    return taken, why
