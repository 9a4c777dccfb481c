"""Search strategies behind one ask/tell interface, looked up by name in `STRATEGIES`."""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping
from typing import Any

from nas import jsonio
from nas.jsonio import plain_value
from nas.errors import ConfigError
from nas.objectives import Problem
from nas.spaces import Space
from nas.strategies.autognn import ConservativeController
from nas.strategies.base import Strategy, TrialResult, pareto_ranks, scalar_key
from nas.strategies.bayesian import BayesianOptimisation
from nas.strategies.evolution import RegularizedEvolution
from nas.strategies.local_search import LocalSearch
from nas.strategies.mcts import MonteCarloTreeSearch
from nas.strategies.multifidelity import FidelitySpace, Hyperband, SuccessiveHalving
from nas.strategies.nsga2 import NSGA2
from nas.strategies.optuna_sampler import OPTUNA_STRATEGIES, OptunaStrategy
from nas.strategies.predictor_search import PredictorSearch
from nas.strategies.random_search import RandomSearch
from nas.strategies.rl import ReinforceController
from nas.strategies.smbo import SequentialModelBasedOptimisation
from nas.strategies.wrappers import Deduplicate, Wrapper

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RandomSearch, RegularizedEvolution, NSGA2, LocalSearch, PredictorSearch,
                              ReinforceController, ConservativeController, BayesianOptimisation, MonteCarloTreeSearch,
                              SequentialModelBasedOptimisation, *OPTUNA_STRATEGIES, SuccessiveHalving, Hyperband)
}
ALIASES: dict[str, str] = {"guided-evolution": "predictor-search"}  # old names, still accepted (not listed twice)


def make_strategy(name: str, space: Space, problem: Problem, seed: int | None = 0, **options: Any) -> Strategy:
    """Build a registered strategy by name; unknown names and options are ConfigErrors naming them."""
    cls = STRATEGIES.get(ALIASES.get(name, name))
    if cls is None:
        raise ConfigError(f"unknown strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}")
    params = inspect.signature(cls.__init__).parameters
    options = plain_options(options)
    for key in options:
        if key not in params or key in ("self", "space", "problem", "seed"):
            allowed = [p for p in params if p not in ("self", "space", "problem", "seed")]
            raise ConfigError(f"strategy {name!r} has no option {key!r} (options: {', '.join(allowed) or 'none'})")
        _check_option(name, key, options[key], params[key])
    return cls(space, problem, seed, **options)


def plain_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Strategy options (`strategy_options`) with numpy scalars as Python ones (`plain_value`): what a search builds
    its strategy from and journals."""
    return {key: plain_value(value) for key, value in (options or {}).items()}


def default_options(name: Any) -> dict[str, Any]:
    """The options the strategy registered as `name` (or an alias) takes when they are left out: its constructor's
    defaults that are plain JSON data; {} for a name that is not registered. A resumed search compares
    `strategy_options` with these filled in, so `{}` and `{"population_size": 50}` are the same evolution."""
    cls = STRATEGIES.get(ALIASES.get(name, name)) if isinstance(name, str) else None
    if cls is None:
        return {}
    out: dict[str, Any] = {}
    for key, param in inspect.signature(cls.__init__).parameters.items():
        if key in ("self", "space", "problem", "seed") or param.default is inspect.Parameter.empty:
            continue
        try:
            out[key] = jsonio.plain(param.default, key)
        except ConfigError:  # a live object as default: a given value (plain JSON) never equals it anyway
            continue
    return out


def _check_option(strategy: str, key: str, value: Any, param: inspect.Parameter) -> None:
    """An option's value against its declared type (annotation, else default value): a ConfigError naming the
    option instead of a TypeError deep in the strategy (`population_size=5.5`, `sampler_options=5`)."""
    annotation = str(param.annotation) if param.annotation is not inspect.Parameter.empty else ""
    kinds = {k for k in annotation.replace(" ", "").split("|") if k} - {"None"}
    if not annotation and param.default is not inspect.Parameter.empty and param.default is not None:
        kinds = {type(param.default).__name__}
    if value is None and (param.default is None or "None" in annotation):
        return
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if number and not math.isfinite(value):  # the journal holds options as JSON, which has no inf or NaN
        raise ConfigError(f"strategy {strategy!r}: option {key} must be a finite number, got {value!r}")
    checks: list[tuple[bool, bool, str]] = [
        (kinds == {"bool"}, isinstance(value, bool), "true or false"),
        (kinds == {"int"}, number and isinstance(value, numbers.Integral), "an int"),
        (bool(kinds) and kinds <= {"int", "float"}, number, "a number"),
        (kinds == {"str"}, isinstance(value, str), "a string"),
        (len(kinds) == 1 and next(iter(kinds)).startswith(("Mapping", "dict")), isinstance(value, Mapping), "a dict"),
    ]
    for applies, ok, want in checks:
        if applies:
            if not ok:
                raise ConfigError(f"strategy {strategy!r}: option {key} expects {want}, got {value!r}")
            return


__all__ = ["STRATEGIES", "BayesianOptimisation", "ConservativeController", "Deduplicate", "FidelitySpace", "Hyperband",
           "LocalSearch", "MonteCarloTreeSearch", "NSGA2", "OptunaStrategy", "PredictorSearch", "RandomSearch",
           "RegularizedEvolution", "ReinforceController", "SequentialModelBasedOptimisation", "Strategy",
           "SuccessiveHalving", "TrialResult", "Wrapper", "default_options", "make_strategy", "pareto_ranks",
           "plain_options", "plain_value", "scalar_key"]
