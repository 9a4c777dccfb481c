"""Optuna interop edges: a user's pruner instance is left as given (each search judges with its own copy), and a
`sampler_options` value of the wrong type is a ConfigError naming it when the strategy is made."""

from __future__ import annotations

import warnings

import optuna
import pytest

import nas
from nas.errors import ConfigError
from nas.spaces import Choice, Integer, Repeat, Space

SPACE = Space(depth=Choice([1, 2, 3]), blocks=Repeat(count="depth", k=Choice([3, 5, 7]), e=Choice([1, 2, 4])))
FIXED = Space(a=Integer(0, 20), b=Choice([1, 2, 4, 8]))


def train(arch) -> dict[str, float]:
    quality = 0.4 + sum(b["k"] * b["e"] for b in arch["blocks"]) / 100
    err = 1.0
    for epoch in range(6):
        err = 1 - quality * (1 - 0.5 ** (epoch + 1))
        nas.report_metrics({"err": err})
    return {"err": err}


def pruned(result) -> list[tuple[str, int | None]]:
    return [(t.arch_id, t.extra.get("pruned_after")) for t in result.trials]


@pytest.mark.parametrize("make", [optuna.pruners.SuccessiveHalvingPruner, optuna.pruners.HyperbandPruner])
def test_one_pruner_instance_in_two_seeded_searches_prunes_alike_and_is_left_as_given(tmp_path, make):
    """Successive halving's and Hyperband's `min_resource="auto"` was estimated onto the user's object by the first
    search, so a second identical search (or a resume with the same object) pruned from its first trial."""
    pruner = make()
    before = repr(vars(pruner))
    kw = dict(objectives={"err": "min"}, strategy="random", seed=2)
    first = nas.search(SPACE, train, budget=16, pruner=pruner, **kw)
    assert sum(p is not None for _, p in pruned(first)) >= 3
    assert repr(vars(pruner)) == before  # the search judged with its own copy
    assert pruned(nas.search(SPACE, train, budget=16, pruner=pruner, **kw)) == pruned(first)
    assert pruned(nas.search(SPACE, train, budget=16, pruner=nas.Pruner(pruner), **kw)) == pruned(first)
    nas.search(SPACE, train, budget=6, pruner=pruner, workdir=tmp_path / "split", **kw)  # interrupted, resumed
    assert pruned(nas.search(SPACE, train, budget=16, pruner=pruner, workdir=tmp_path / "split", **kw)) == \
        pruned(first)
    assert repr(vars(pruner)) == before


def test_a_study_judges_with_its_own_copy_of_the_pruner():
    pruner = optuna.pruners.SuccessiveHalvingPruner()
    study = nas.Study(SPACE, {"err": "min"}, strategy="random", seed=0, pruner=pruner)
    for _ in range(4):
        arch = study.ask()
        err = 1.0
        for epoch in range(4):
            err = (1 + arch["depth"]) / (epoch + 2)
            if study.report(arch, {"err": err}):
                break
        study.tell(arch, {"err": err})
    assert pruner._min_resource is None


@pytest.mark.parametrize(("strategy", "space", "options", "want"), [
    ("tpe", SPACE, {"n_startup_trials": "5"}, "an int"),
    ("gp", SPACE, {"n_startup_trials": "5"}, "an int"),
    ("cmaes", FIXED, {"n_startup_trials": "5"}, "an int"),
    ("tpe", SPACE, {"multivariate": "true"}, "true or false"),
    ("tpe", SPACE, {"n_ei_candidates": 2.5}, "an int"),
    ("nsga2-optuna", SPACE, {"crossover_prob": "0.9"}, "a number"),
    ("qmc", SPACE, {"qmc_type": 1}, "a string"),
    ("cmaes", FIXED, {"with_margin": 1}, "true or false"),
])
def test_a_wrongly_typed_sampler_option_is_a_config_error_naming_it_before_any_evaluation(strategy, space, options,
                                                                                          want):
    calls = []

    def evaluate(arch):
        calls.append(arch)
        return {"acc": 1.0}

    (key, value), = options.items()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError) as err:
            nas.search(space, evaluate, {"acc": "max"}, strategy=strategy, budget=4, seed=0,
                       strategy_options={"sampler_options": options})
    message = str(err.value)
    assert f"strategy {strategy!r}" in message and "sampler_options" in message
    assert f"{key}={value!r}" in message and want in message
    assert calls == []


def test_well_typed_sampler_options_reach_the_sampler_as_given():
    """The check only refuses: a named strategy with options proposes what the sampler built with them does."""
    from nas.objectives import Problem
    from nas.strategies import make_strategy

    options = {"n_startup_trials": 5, "multivariate": True, "n_ei_candidates": 12, "prior_weight": 2,
               "consider_endpoints": True, "gamma": lambda n: min(n, 3)}
    named = make_strategy("tpe", FIXED, Problem.make({"acc": "max"}), 4, sampler_options=options)
    given = nas.strategies.optuna_sampler.OptunaSampler(FIXED, Problem.make({"acc": "max"}), 4,
                                                        optuna.samplers.TPESampler(seed=4, **options))
    for strategy in (named, given):
        for _ in range(12):
            arch = strategy.ask()[0]
            strategy.tell(arch, nas.strategies.TrialResult({"acc": -(arch["a"] - 7) ** 2 - arch["b"]}))
    assert [t.params for t in named.study.trials] == [t.params for t in given.study.trials]
    sampler = named.study.sampler
    assert (sampler._n_startup_trials, sampler._n_ei_candidates) == (5, 12)
    # an integral float and None where the sampler takes None are accepted, as before
    make_strategy("tpe", SPACE, Problem.make({"acc": "max"}), 0, sampler_options={"n_startup_trials": 5.0})
    make_strategy("nsga2-optuna", SPACE, Problem.make({"acc": "max"}), 0, sampler_options={"mutation_prob": None})
