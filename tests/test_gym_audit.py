"""Gym audit fixes: duplicate names, errors recorded per run, checked fidelity, the protocol's search cost,
defaults never drawn again (also inside sampler_options), and bad run_gym/environment() arguments named."""

from __future__ import annotations

import inspect
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from nas.errors import ConfigError
from nas.gym import (HYPERPARAMETERS, Environment, Hyperparameters, ProxyCostModel, Setting, applicability,
                     draw_settings, environment, proxy_environment, run_gym, run_one)
from nas.spaces import Choice, Space
from nas.strategies import STRATEGIES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from reporting import ProtocolWarning, gym_reports, gym_table  # noqa: E402

SPACE = Space(x=Choice([0, 1, 2, 3, 4]), y=Choice([0, 1, 2, 3, 4]))


def score(arch, budget=None) -> dict[str, float]:
    return {"score": float(arch["x"] + arch["y"])}


def plain(arch) -> dict[str, float]:
    return {"score": float(arch["x"] + arch["y"])}


def toy(name: str = "toy", **kw) -> Environment:
    return Environment(name, SPACE, kw.pop("evaluate", score), "score", budget=kw.pop("budget", 3), **kw)


# 1. duplicate names ---------------------------------------------------------------------------------------
def test_run_gym_refuses_two_environments_with_one_name() -> None:
    with pytest.raises(ConfigError, match=r"environments\[1\]: name 'toy' is also that of environments\[0\]"):
        run_gym([toy(), toy(evaluate=lambda a: {"score": 100.0 + a["y"]})], ["random"], settings=1, seeds=1)


def test_run_gym_refuses_a_strategy_listed_twice() -> None:
    with pytest.raises(ConfigError, match=r"strategies\[2\]: name 'random' is also that of strategies\[0\]"):
        run_gym([toy()], ["random", "local", "random"], settings=1, seeds=1)


# 2. errors are recorded on the run ------------------------------------------------------------------------
def test_an_error_in_final_is_recorded_with_its_run_and_the_gym_goes_on() -> None:
    def final(arch) -> float:
        raise LookupError(f"{arch} is not in the table")

    result = run_gym([toy(final=final)], ["random", "local"], settings=1, seeds=2)
    assert len(result.runs) == 4
    for r in result.runs:
        assert r.value is not None and r.final is None
        assert r.error is not None and r.error.startswith("final: LookupError")


def _proxy(space: Space) -> ProxyCostModel:
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(20)]
    return ProxyCostModel.fit(space, archs, {"score": [float(a["x"] + a["y"]) for a in archs]}, n_estimators=3)


def test_proxy_environment_reports_none_for_a_pick_its_real_table_lacks() -> None:
    def table(arch) -> dict[str, float]:
        if arch["x"] == 4:
            raise KeyError(f"architecture {dict(arch)} is not in the table")
        return plain(arch)

    penv = proxy_environment(toy(evaluate=table), _proxy(SPACE))
    assert penv.final(SPACE.validate({"x": 4, "y": 4})) is None
    assert penv.final(SPACE.validate({"x": 3, "y": 4})) == 7.0


# 3. fidelity ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [(1, 1, 3), "13", (3,), (0, 3), (1, -3), (1, math.inf), (1, math.nan), (True, 3),
                                    ("1", "3"), 5])
def test_environment_refuses_bad_fidelity_levels_naming_the_field(levels: object) -> None:
    with pytest.raises(ConfigError, match="environment 'toy': fidelity"):
        toy(fidelity=levels)


def test_environment_sorts_its_fidelity_levels() -> None:
    assert toy(fidelity=[9, 1, 3]).fidelity == (1, 3, 9)


def test_environment_refuses_fidelity_with_an_evaluator_that_takes_no_budget() -> None:
    with pytest.raises(ConfigError, match="environment 'toy': fidelity .* takes budget=, and plain takes none"):
        toy(evaluate=plain, fidelity=(1, 3))


def test_proxy_environment_drops_the_fidelity_so_multi_fidelity_strategies_are_skipped() -> None:
    base = toy(fidelity=(1.0, 3.0))
    penv = proxy_environment(base, _proxy(SPACE))
    assert penv.fidelity == ()
    assert applicability(penv, "successive-halving")[0] is None
    result = run_gym([penv], ["random", "successive-halving"], settings=1, seeds=1)
    assert [(r.strategy, r.error) for r in result.runs] == [("random", None)]
    assert [s.strategy for s in result.skipped] == ["successive-halving"]


def test_a_fidelity_whose_evaluator_lost_budget_is_skipped_and_run_one_records_it() -> None:
    env = toy(fidelity=(1.0, 3.0))
    env.evaluate = plain  # changed after construction
    space, why = applicability(env, "hyperband")
    assert space is None and "takes no budget=" in why
    rec = run_one(env, "hyperband", Setting("hyperband", 0, {}), seed=0)
    assert rec.value is None and rec.error is not None and "takes no budget=" in rec.error


# 5. the protocol's search cost ----------------------------------------------------------------------------
def test_the_protocols_search_cost_is_cost_s_not_wall_seconds() -> None:
    def trained(arch) -> dict[str, float]:  # a memoised training: no wall time, 100 s charged each time
        return {**plain(arch), "train_seconds": 100.0}

    env = toy(evaluate=trained, cost_metric="train_seconds")
    result = run_gym([env], ["random", "local"], settings=1, seeds=2)
    assert all(r.cost_s == 100.0 * r.evaluations and r.seconds < r.cost_s for r in result.runs)
    with pytest.warns(ProtocolWarning):
        report = gym_reports(result)["toy"]
    for strategy in ("random", "local"):
        costs = [r.cost_s for r in result.runs if r.strategy == strategy]
        assert report.method(strategy).cost_s == pytest.approx(float(np.mean(costs)))
    with pytest.warns(ProtocolWarning):
        table = gym_table(result)
    assert "| search cost s | wall s |" in table and "| 300.00 |" in table


# 6. the defaults are never drawn again --------------------------------------------------------------------
def _sampler_defaults(strategy: str) -> dict[str, object]:
    """The options an Optuna strategy's sampler runs with when given none, from the sampler's signature and the
    strategy's own documented defaults (qmc: scrambled Sobol)."""
    import optuna

    cls = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler, "qmc": optuna.samplers.QMCSampler,
           "cmaes": optuna.samplers.CmaEsSampler, "nsga2-optuna": optuna.samplers.NSGAIISampler}[strategy]
    out = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    return {**out, "scramble": True} if strategy == "qmc" else out


@pytest.mark.parametrize("strategy", ["tpe", "gp", "qmc", "cmaes", "nsga2-optuna"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_drawn_setting_equals_the_samplers_defaults(strategy: str, seed: int) -> None:
    settings, _ = draw_settings(strategy, 5, seed=seed)
    defaults = _sampler_defaults(strategy)
    assert settings[0].options == {}
    for s in settings[1:]:
        drawn = s.options["sampler_options"]
        assert drawn != {k: defaults[k] for k in drawn}, f"setting {s.index} {drawn} is the defaults again"


@pytest.mark.parametrize("strategy", ["gp", "cmaes"])
def test_optuna_strategies_with_a_large_enough_grid_get_distinct_settings(strategy: str) -> None:
    settings, notes = draw_settings(strategy, 5, seed=0)
    defaults = _sampler_defaults(strategy)
    effective = [repr(sorted({**defaults, **s.options.get("sampler_options", {})}.items())) for s in settings]
    assert len(set(effective)) == 5 and notes == []


def test_a_grid_too_small_for_distinct_settings_says_so() -> None:
    settings, notes = draw_settings("qmc", 5, seed=0)   # 2 x 2 points, one of them the defaults
    assert [n for n in notes if "qmc: its grid gives 3 settings besides the defaults" in n]
    assert len({repr(s.options) for s in settings}) == 4


# 9. bad arguments -----------------------------------------------------------------------------------------
def test_run_gym_refuses_an_unknown_environment_name_naming_its_index() -> None:
    with pytest.raises(ConfigError, match=r"environments\[1\]: unknown environment 'nbg-coraa'"):
        run_gym([toy(), "nbg-coraa"], ["random"], settings=1, seeds=1)


def test_run_gym_still_skips_a_builtin_environment_whose_table_is_missing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    result = run_gym([toy(), "nbg-cora"], ["random"], settings=1, seeds=1)
    assert len(result.runs) == 1 and any("environment 'nbg-cora' skipped" in n for n in result.notes)


@pytest.mark.parametrize("field", ["environments", "strategies"])
def test_run_gym_refuses_a_single_string_instead_of_a_list(field: str) -> None:
    args = {"environments": [toy()], "strategies": ["random"], field: "random" if field == "strategies" else "toy"}
    with pytest.raises(ConfigError, match=f"{field}: pass a list"):
        run_gym(args["environments"], args["strategies"], settings=1, seeds=1)


def test_run_gym_refuses_a_single_environment_instead_of_a_list() -> None:
    with pytest.raises(ConfigError, match="environments: pass a list"):
        run_gym(toy(), ["random"], settings=1, seeds=1)  # type: ignore[arg-type]


def test_run_gym_names_an_unknown_strategy_by_its_index() -> None:
    with pytest.raises(ConfigError, match=r"strategies\[1\]: unknown strategy 'evolutoin'"):
        run_gym([toy()], ["random", "evolutoin"], settings=1, seeds=1)


@pytest.mark.parametrize("budget", [0, -1, 2.5, True, "5"])
def test_run_gym_and_run_one_refuse_a_bad_budget(budget: object) -> None:
    with pytest.raises(ConfigError, match="budget"):
        run_gym([toy()], ["random"], settings=1, seeds=1, budget=budget)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="budget"):
        run_one(toy(), "random", Setting("random", 0, {}), 0, budget=budget)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["settings", "seeds"])
def test_run_gym_refuses_zero_settings_or_seeds(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        run_gym([toy()], ["random"], **{"settings": 1, "seeds": 1, field: 0})


def test_environment_refuses_an_unknown_option_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="environment 'nbg-cora': unknown option 'budgett'; options: budget, root"):
        environment("nbg-cora", budgett=10)


def test_a_misspelt_key_of_a_user_grid_is_an_error_naming_it() -> None:
    hp = {**HYPERPARAMETERS, "evolution": Hyperparameters({"populaton_size": (10, 20)})}
    with pytest.raises(ConfigError, match="'populaton_size' is not an option of strategy 'evolution'"):
        run_gym([toy()], ["evolution"], settings=3, seeds=1, hyperparameters=hp)
    hp = {**HYPERPARAMETERS, "tpe": Hyperparameters({"sampler_options.n_startup_trails": (5, 10)})}
    with pytest.raises(ConfigError, match="'sampler_options.n_startup_trails'"):
        draw_settings("tpe", 3, hyperparameters=hp)


def test_every_built_in_grid_names_only_options_of_its_strategy() -> None:
    for strategy in HYPERPARAMETERS:
        if strategy in STRATEGIES:
            draw_settings(strategy, 2)


def test_a_users_grid_for_one_strategy_leaves_the_others_their_built_in_grids():
    """Giving one strategy's grid used to take every other strategy's grid away: their settings were all defaults."""
    grid = {"evolution": Hyperparameters({"population_size": (6, 8, 12)})}
    ours, _ = draw_settings("evolution", 3, hyperparameters=grid)
    assert sorted(s.options["population_size"] for s in ours[1:]) in ([6, 8], [6, 12], [8, 12])  # the user's grid
    others, _ = draw_settings("nsga2", 3, hyperparameters=grid)
    built_in, _ = draw_settings("nsga2", 3)
    assert [s.options for s in others] == [s.options for s in built_in] and others[1].options != {}


def test_hardware_environment_refuses_a_latency_fraction_no_network_can_meet():
    from nas.gym import hardware_environment

    for bad in (-1, 0, float("nan"), "0.3"):
        with pytest.raises(ConfigError, match="^latency_fraction: "):
            hardware_environment(latency_fraction=bad)
