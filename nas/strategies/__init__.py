"""Search strategies behind one ask/tell interface, looked up by name in `STRATEGIES`."""

from __future__ import annotations

import inspect
from typing import Any

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
    for key in options:
        if key not in params or key in ("self", "space", "problem", "seed"):
            allowed = [p for p in params if p not in ("self", "space", "problem", "seed")]
            raise ConfigError(f"strategy {name!r} has no option {key!r} (options: {', '.join(allowed) or 'none'})")
    return cls(space, problem, seed, **options)


__all__ = ["STRATEGIES", "BayesianOptimisation", "ConservativeController", "Deduplicate", "FidelitySpace", "Hyperband",
           "LocalSearch", "MonteCarloTreeSearch", "NSGA2", "OptunaStrategy", "PredictorSearch", "RandomSearch",
           "RegularizedEvolution", "ReinforceController", "SequentialModelBasedOptimisation", "Strategy",
           "SuccessiveHalving", "TrialResult", "Wrapper", "make_strategy", "pareto_ranks", "scalar_key"]
