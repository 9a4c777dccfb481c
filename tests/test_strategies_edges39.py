"""Optuna sampler options out of range are ConfigErrors naming `sampler_options.<name>` before a search writes
anything (values Optuna accepts and uses stay accepted), and the gym draws no hyperband setting that runs as the
defaults on an environment (brackets=3 on three fidelity levels is hyperband's default)."""

from __future__ import annotations

import inspect
import sys
import warnings
from pathlib import Path

import pytest

import nas
from nas.errors import ConfigError
from nas.gym import Environment, draw_settings, run_gym
from nas.gym.settings import HYPERPARAMETERS
from nas.objectives import Problem
from nas.spaces import Choice, Integer, Repeat, Space
from nas.strategies import FidelitySpace, make_strategy
from nas.strategies.optuna_sampler import OPTUNA_STRATEGIES

SPACE = Space(depth=Choice([1, 2, 3]), blocks=Repeat(count="depth", k=Choice([3, 5, 7]), e=Choice([1, 2, 4])))
FIXED = Space(a=Integer(0, 20), b=Choice([1, 2, 4, 8]), c=Choice([0.1, 0.2, 0.3]))


def score(arch) -> dict[str, float]:
    if "a" in arch:
        return {"acc": -(arch["a"] - 7) ** 2 - arch["b"]}
    return {"acc": sum(b["k"] * b["e"] for b in arch["blocks"]) / 10}


def space_for(strategy: str) -> Space:
    return FIXED if strategy == "cmaes" else SPACE  # CMA-ES needs fixed slots


# 1. numeric sampler options ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("strategy", "key", "value"), [
    ("tpe", "n_startup_trials", -1),
    ("tpe", "n_ei_candidates", 0),
    ("tpe", "n_ei_candidates", -3),
    ("tpe", "prior_weight", -0.5),
    ("gp", "n_startup_trials", -1),
    ("cmaes", "n_startup_trials", -2),
    ("cmaes", "popsize", 1),
    ("cmaes", "popsize", 0),
    ("cmaes", "sigma0", 0.0),
    ("cmaes", "sigma0", -1.0),
    ("nsga2-optuna", "population_size", 1),
    ("nsga2-optuna", "mutation_prob", 1.5),
    ("nsga2-optuna", "crossover_prob", -0.1),
    ("nsga2-optuna", "swapping_prob", 2),
])
def test_an_out_of_range_sampler_option_is_a_config_error_naming_it_before_anything_is_written(tmp_path, strategy,
                                                                                               key, value):
    """`n_startup_trials=-1` ran as 0, `n_ei_candidates=0` failed mid-search with an IndexError, `popsize=1` with an
    AssertionError from cmaes, `sigma0<=0` was clamped to 1e-10: none named the option."""
    calls = []

    def evaluate(arch):
        calls.append(arch)
        return score(arch)

    workdir = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sigma0 is deprecated in Optuna
        with pytest.raises(ConfigError, match=rf"sampler_options\.{key}={value!r}") as err:
            nas.search(space_for(strategy), evaluate, {"acc": "max"}, strategy=strategy, budget=6, seed=0,
                       workdir=workdir, strategy_options={"sampler_options": {key: value}})
    assert f"strategy {strategy!r}" in str(err.value)
    assert calls == []
    assert not workdir.exists() or not any(workdir.iterdir())


@pytest.mark.parametrize(("strategy", "options"), [
    ("tpe", {"n_startup_trials": 0, "prior_weight": 0.0, "n_ei_candidates": 1}),  # Optuna: prior_weight >= 0
    ("tpe", {"n_startup_trials": 2, "prior_weight": 3}),
    ("gp", {"n_startup_trials": 0}),
    ("cmaes", {"n_startup_trials": 0, "popsize": 2, "sigma0": 0.5}),
    ("cmaes", {"popsize": None, "sigma0": None}),
    ("nsga2-optuna", {"population_size": 2, "mutation_prob": 0.0, "crossover_prob": 1.0, "swapping_prob": 0}),
    ("nsga2-optuna", {"population_size": 4, "mutation_prob": 1, "crossover_prob": 0, "swapping_prob": 1.0}),
])
def test_boundary_values_optuna_accepts_still_run(strategy, options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = nas.search(space_for(strategy), score, {"acc": "max"}, strategy=strategy, budget=8, seed=0,
                            strategy_options={"sampler_options": options})
    assert result.used == 8 and all(t.status == "ok" for t in result.trials)


def test_every_bounded_option_is_a_parameter_of_the_installed_sampler():
    """The bounds name options of the installed Optuna's constructors (a renamed one would go unchecked)."""
    import importlib

    bounded = 0
    for cls in OPTUNA_STRATEGIES:
        module, name = cls.sampler_class.split(":")
        try:
            sampler = getattr(importlib.import_module(module), name)
        except ImportError:
            continue
        params = inspect.signature(sampler.__init__).parameters
        for key in cls.option_bounds:
            assert key in params, (cls.name, key)
            bounded += 1
    assert bounded >= 10


def test_every_optuna_setting_of_the_gym_grids_is_accepted():
    """Item 3: the gym's built-in grids stay within the bounds (every drawable setting builds its strategy)."""
    problem = Problem.make({"acc": "max"})
    for cls in OPTUNA_STRATEGIES:
        if cls.name not in HYPERPARAMETERS:
            continue
        settings, _ = draw_settings(cls.name, 64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for s in settings:
                make_strategy(cls.name, space_for(cls.name), problem, 0, **s.options)


# 2. the gym's hyperband draws --------------------------------------------------------------------------------
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_gym import TOY, toy  # noqa: E402


def test_a_hyperband_draw_that_runs_as_the_defaults_is_recognised_on_its_space():
    from nas.gym.settings import same_as_defaults

    three, four = FidelitySpace(TOY, (1.0, 3.0, 9.0)), FidelitySpace(TOY, (1.0, 2.0, 4.0, 8.0))
    defaults = {"brackets": 3, "eta": 3, "inner": "random"}
    assert same_as_defaults("hyperband", defaults, three)  # brackets=None is one bracket per level: 3 here
    assert not same_as_defaults("hyperband", defaults, four)  # 4 brackets by default there
    assert not same_as_defaults("hyperband", {**defaults, "brackets": 2}, three)
    assert not same_as_defaults("hyperband", {**defaults, "eta": 4}, three)
    # a strategy without space-dependent defaults: compared with its own defaults (evolution's population is 50)
    assert same_as_defaults("evolution", {"population_size": 50}, TOY)
    assert not same_as_defaults("evolution", {"population_size": 20, "mutation_bias": 0.5}, TOY)


def test_the_gym_draws_no_second_default_setting_of_hyperband():
    """With 5 settings on three fidelity levels, setting 4 was {'brackets': 3, 'eta': 3, 'inner': 'random'}: the
    defaults again (brackets=None means one per level), so two of the five settings were the same."""
    env = Environment("toy-fidelity", TOY, toy, "score", "max", budget=2, fidelity=(1.0, 3.0, 9.0))
    result = run_gym([env], ["hyperband"], settings=5, seeds=1)
    settings = result.settings["hyperband"]
    assert settings[0].options == {}
    drawn = [s.options for s in settings[1:]]
    assert {"brackets": 3, "eta": 3, "inner": "random"} not in drawn
    assert len({repr(sorted(o.items())) for o in drawn}) == 4
    assert any("hyperband" in n and "defaults" in n for n in result.notes)
    assert all(r.error is None for r in result.runs)
