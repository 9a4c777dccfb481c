"""Surrogate predictors, zero-cost proxies, learning-curve extrapolation and one evaluation harness.

Every predictor follows `fit(archs, y)` / `predict(archs) -> (mean, std)` with a plain-data
`state_dict`; `make_predictor(name, space, seed, **options)` builds one by its registry name. Modules
load lazily, so importing `nas.predictors` does not import torch or scikit-learn. Your own `Predictor` subclass
joins the registry as `PREDICTORS[name] = MyPredictor` (or `"my_module:MyPredictor"`, imported on first use).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from nas.errors import ConfigError
from nas.predictors.base import Predictor, RankTarget, check_state

# registry name -> "module:Class" (imported on first use), or a Predictor subclass registered by the user
PREDICTORS: dict[str, str | type[Predictor]] = {
    "rf": "nas.predictors.sklearn_models:RandomForestPredictor",
    "gbm": "nas.predictors.sklearn_models:GradientBoostingPredictor",
    "gp": "nas.predictors.sklearn_models:GaussianProcessPredictor",
    "mlp-ensemble": "nas.predictors.ensemble:MLPEnsemble",
    "gcn": "nas.predictors.graph:GCNPredictor",
    "wl-gp": "nas.predictors.embedding:GraphSimilarityPredictor",
    "mlp-pretrained": "nas.predictors.pretraining:PretrainedMLP",
    "gcn-pretrained": "nas.predictors.pretraining:PretrainedGCN",
    "zero-cost": "nas.predictors.zero_cost:ZeroCostPredictor",
    "average": "nas.predictors.combined:AveragePredictor",
}


def predictor_class(name: str) -> type[Predictor]:
    """The class registered under `name` (ConfigError listing the names otherwise)."""
    target = PREDICTORS.get(name)
    if target is None:
        raise ConfigError(f"unknown predictor {name!r}; available: {', '.join(sorted(PREDICTORS))}")
    if isinstance(target, type):  # registered as a class (one defined in a notebook or a search script)
        return target
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_predictor(name: str, space: Any, seed: int = 0, **options: Any) -> Predictor:
    """Build a registered predictor; unknown options are ConfigErrors naming the allowed ones."""
    cls = predictor_class(name)
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "space", "seed")]
    for key in options:
        if key not in allowed:
            raise ConfigError(f"predictor {name!r} has no option {key!r} (options: {', '.join(allowed)})")
    return cls(space, seed, **options)


def predictor_from_state(space: Any, state: dict[str, Any]) -> Predictor:
    """Rebuild a predictor from its `state_dict` (refits on the stored training set); ConfigError for a malformed
    state or one saved on another space (`check_state`)."""
    check_state(space, state)
    config = dict(state["config"])
    seed = config.pop("seed", 0)
    predictor = make_predictor(state["type"], space, seed, **config)
    predictor.load_state_dict(state)
    return predictor


__all__ = ["PREDICTORS", "Predictor", "RankTarget", "make_predictor", "predictor_class", "predictor_from_state"]
