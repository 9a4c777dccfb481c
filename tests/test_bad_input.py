"""Bad input, table-driven: each case raises the toolkit's own error (a `nas.NASError`) naming the bad field.

The first six rows are the cases that once slipped through (an AttributeError, a silently accepted
direction or operator, a duplicate objective, numpy's TypeError for a string seed); the rest were already
caught and must stay caught. A case is (id, call, error class, text the message must contain).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import nas
from nas.errors import ConfigError, InvalidArchitectureError, NASError, SpaceDefinitionError
from nas.objectives import Constraint, Objective, Problem
from nas.spaces import Choice, Integer, Repeat, Space
from nas.strategies import RandomSearch


def space() -> Space:
    return Space(depth=Choice([1, 2]), blocks=Repeat("depth", k=Choice([3, 5])), act=Choice(["relu", "gelu"]))


def evaluate(arch: Any) -> dict[str, float]:
    return {"accuracy": float(sum(b["k"] for b in arch["blocks"])), "latency_ms": float(arch["depth"])}


def run(**kwargs: Any) -> Callable[[], Any]:
    """A `nas.search` call on the toy problem with `kwargs` replacing its arguments."""
    args: dict[str, Any] = dict(space=space(), evaluate=evaluate, objectives={"accuracy": "max"}, budget=4)
    args.update(kwargs)
    return lambda: nas.search(**args)


CASES: list[tuple[str, Callable[[], Any], type[NASError], str]] = [
    # once slipped through
    ("objectives as bare names", run(objectives=["acc", "lat"]), ConfigError,
     "objectives[0]: 'acc' has no direction"),
    ("Objective direction 'up'", lambda: Objective("acc", "up"), ConfigError,
     "objective 'acc': direction must be 'min' or 'max' (or Optuna's 'minimize' / 'maximize'), got 'up'"),
    ("two objectives with one name", lambda: Problem((Objective("acc", "max"), Objective("acc", "min"))),
     ConfigError, "objectives: 'acc' is given twice"),
    ("the same name twice through search", run(objectives=[Objective("accuracy", "max"), Objective("accuracy", "min")]),
     ConfigError, "objectives: 'accuracy' is given twice"),
    ("Constraint operator '=='", lambda: Constraint("lat", "==", 3), ConfigError,
     "constraint on 'lat': op must be one of <=, >=, <, >, got '=='"),
    ("seed 'zero'", run(seed="zero"), ConfigError, "seed: expected a non-negative int, got 'zero'"),
    # objectives and constraints
    ("direction 'up' through search", run(objectives={"accuracy": "up"}), ConfigError,
     "objective 'accuracy': direction must be 'min' or 'max'"),
    ("no objectives", run(objectives={}), ConfigError, "objectives: at least one objective is needed"),
    ("objectives of the wrong type", run(objectives=42), ConfigError, "objectives: expected a dict"),
    ("an objective that is not an Objective", lambda: Problem((("acc", "max"),)), ConfigError,
     "objectives[0]: expected an Objective"),
    ("empty objective name", lambda: Objective("", "max"), ConfigError,
     "objective: the metric name must be a non-empty string"),
    ("constraint text without a number", run(constraints=["latency_ms < twenty"]), ConfigError,
     "constraint 'latency_ms < twenty' is not of the form"),
    ("constraint that is not text", run(constraints=[42]), ConfigError, "constraint 42: expected a string"),
    ("constraint bound not a number", lambda: Constraint("lat", "<=", "3"), ConfigError,
     "constraint on 'lat': bound must be a number, got '3'"),
    ("constraint bound NaN", lambda: Constraint("lat", "<=", math.nan), ConfigError,
     "constraint on 'lat': bound must be a number"),
    ("constraints of the wrong type", run(constraints=3), ConfigError, "constraints: expected a list"),
    ("objective typo found by the first result", run(objectives={"acc": "max"}), ConfigError,
     "objective 'acc' is not among the metrics evaluate returned (accuracy, latency_ms)"),
    ("constraint on a metric evaluate never returns", run(constraints=["energy_mj <= 3"]), ConfigError,
     "constraint 'energy_mj <= 3' names metric 'energy_mj', which evaluate did not return"),
    # budget, seed, snapshots
    ("budget 0", run(budget=0), ConfigError, "budget: expected a positive int"),
    ("budget as text", run(budget="10"), ConfigError, "budget: expected a positive int (number of evaluations), got '10'"),
    ("budget True", run(budget=True), ConfigError, "budget: expected a positive int"),
    ("seed True", run(seed=True), ConfigError, "seed: expected a non-negative int, got True"),
    ("seed 1.5", run(seed=1.5), ConfigError, "seed: expected a non-negative int, got 1.5"),
    ("seed -1", run(seed=-1), ConfigError, "seed: expected a non-negative int, got -1"),  # was numpy's ValueError
    ("snapshot_every 0", run(snapshot_every=0), ConfigError, "snapshot_every: expected a positive int"),
    ("fidelity as text", run(fidelity="5"), ConfigError, "fidelity: expected a positive number"),  # blamed evaluate
    ("negative fidelity", run(fidelity=-1), ConfigError, "fidelity: expected a positive number"),  # was accepted
    # strategies, evaluators, executors, spaces
    ("unknown strategy", run(strategy="annealing"), ConfigError, "unknown strategy 'annealing'; available: "),
    ("strategy of the wrong type", run(strategy=42), ConfigError, "strategy: expected a name, a Strategy or an Optuna sampler, got int"),
    ("unknown strategy option", run(strategy="evolution", strategy_options={"popsize": 3}), ConfigError,
     "strategy 'evolution' has no option 'popsize'"),
    ("strategy option out of range", run(strategy="evolution", strategy_options={"mutation_bias": 2}), ConfigError,
     "mutation_bias must be in [0, 1], got 2"),
    ("options beside a Strategy instance",
     lambda: run(strategy=RandomSearch(space(), Problem.make({"accuracy": "max"})), strategy_options={"x": 1})(),
     ConfigError, "strategy_options: only for strategies given by name"),
    ("strategy options not a dict", run(strategy_options=[("population_size", 4)]), ConfigError,
     "strategy_options: expected a dict of option -> value"),
    ("int option given a float", run(strategy="evolution", strategy_options={"population_size": 5.5}), ConfigError,
     "strategy 'evolution': option population_size expects an int, got 5.5"),
    ("int option given text", run(strategy="evolution", strategy_options={"population_size": "ten"}), ConfigError,
     "strategy 'evolution': option population_size expects an int, got 'ten'"),
    ("dict option given a number", run(strategy="tpe", strategy_options={"sampler_options": 5}), ConfigError,
     "strategy 'tpe': option sampler_options expects a dict, got 5"),
    ("a Strategy made for other objectives",  # it would optimise those, silently
     run(strategy=RandomSearch(space(), Problem.make({"latency_ms": "min"}))), ConfigError,
     "strategy: the 'random' instance was made for {'objectives': {'latency_ms': 'min'}"),
    ("a Strategy made for another space",
     run(strategy=RandomSearch(Space(depth=Choice([1, 2, 3])), Problem.make({"accuracy": "max"}))), ConfigError,
     "strategy: the 'random' instance was made for another space"),
    ("no evaluator", run(evaluate=[]), ConfigError, "evaluate: give at least one evaluator"),
    ("evaluator not callable", run(evaluate=[evaluate, "accuracy"]), ConfigError, "evaluate[1]: 'accuracy' is not callable"),
    ("unknown executor", run(executor="dask"), ConfigError, "unknown executor 'dask'"),
    ("space of the wrong type", run(space={"a": [1, 2]}), ConfigError, "space: expected a nas.spaces.Space"),
    ("empty Choice", lambda: Space(a=Choice([])), SpaceDefinitionError, "a: Choice has no options"),
    ("1 and 1.0 in one Choice", lambda: Space(a=Choice([1, 1.0])), SpaceDefinitionError,  # counted 2, validated as 1
     "a: Choice option 1.0 appears twice (as 1)"),
    ("Integer with an empty range", lambda: Space(n=Integer(5, 2)), SpaceDefinitionError,
     "n: Integer range is empty"),
    ("architecture outside its space", lambda: space().validate({"depth": 3, "blocks": [], "act": "relu"}),
     InvalidArchitectureError, "depth: 3 is not one of [1, 2]"),
]


@pytest.mark.parametrize("case, call, error, text", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_the_toolkits_error_naming_the_field(case, call, error, text):
    with pytest.raises(error) as e:
        call()
    assert isinstance(e.value, NASError)
    assert text in str(e.value), f"{case}: {e.value}"


def test_the_table_holds_at_least_thirty_cases():
    assert len(CASES) >= 30


def test_numpy_numbers_validate_as_the_python_numbers_they_equal():
    """Values read from a DataFrame or an array (np.int64) were refused: 'np.int64(3) is not one of [1, 2]'."""
    import json

    import numpy as np

    wide = Space(depth=Choice([1, 2]), n=Integer(1, 8), scale=Choice([0.5, 1.0]))
    arch = wide.validate({"depth": np.int64(2), "n": np.int32(4), "scale": np.float32(0.5)})
    assert arch.to_dict() == {"depth": 2, "n": 4, "scale": 0.5} and type(arch["depth"]) is int
    assert json.loads(json.dumps(arch.to_dict())) == arch.to_dict()
    with pytest.raises(InvalidArchitectureError, match=r"depth: np.int64\(3\) is not one of \[1, 2\]"):
        wide.validate({"depth": np.int64(3), "n": 4, "scale": 0.5})


def test_a_workdir_that_is_a_file_is_refused_naming_it(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="workdir: .*notes.txt is a file, not a folder"):
        run(workdir=tmp_path / "notes.txt")()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bad_input_leaves_no_workdir_behind(tmp_path):
    """Everything checkable before the first evaluation fails before the workdir is created or locked."""
    for kwargs in (dict(seed="zero"), dict(objectives=["acc"]), dict(strategy="annealing"), dict(budget=0),
                   dict(executor="dask"), dict(evaluate=[])):
        with pytest.raises(ConfigError):
            run(workdir=tmp_path / "wd", **kwargs)()
        assert not (tmp_path / "wd").exists()


@pytest.mark.parametrize("name,options,message", [
    ("rf", {"n_estimators": 0}, "rf: n_estimators: expected a positive int (trees in the forest), got 0"),
    ("rf", {"max_features": "sqrt"}, "rf: max_features: expected a fraction"),
    ("gbm", {"n_estimators": "200"}, "gbm: n_estimators: expected a positive int"),
    ("gp", {"restarts": -1}, "gp: restarts: expected an int >= 0, got -1"),
    ("mlp-ensemble", {"lr": 0.0}, "mlp-ensemble: lr: expected a finite number > 0, got 0.0"),
    ("mlp-ensemble", {"weight_decay": -1e-4}, "mlp-ensemble: weight_decay: expected a finite number >= 0"),
    ("mlp-ensemble", {"epochs": 2.5}, "mlp-ensemble: epochs: expected a positive int"),
    ("wl-gp", {"iterations": 0}, "iterations: expected an int >= 1, got 0"),
])
def test_predictor_options_are_checked_when_the_predictor_is_made(name, options, message):
    # these passed construction and failed at the first fit, deep inside sklearn / torch / networkx (or lr=0 trained
    # nothing without a word)
    from nas.predictors import make_predictor

    space = Space(a=Choice([0, 1, 2]), b=Choice([0, 1]))
    with pytest.raises(ConfigError) as e:
        make_predictor(name, space, **options)
    assert message in str(e.value)
