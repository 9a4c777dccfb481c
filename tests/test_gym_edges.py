"""Edge cases of nas.gym and recorded tables: fidelity environments, merging results, effective tuning draws,
non-finite table cells, proxies over a gym workdir, the budget override, and tables with a byte-order mark."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path

import pytest

import nas
from nas.errors import ConfigError
from nas.gym import Environment, GymResult, ProxyCostModel, Setting, draw_settings, run_gym, run_one
from nas.objectives import Objective
from nas.spaces import Choice, Space
from nas.strategies import STRATEGIES
from nas.tabular import recorded_table

SPACE = Space(x=Choice([0, 1, 2, 3, 4]), y=Choice([0, 1, 2, 3, 4]))


def _score(arch) -> dict[str, float]:
    return {"score": float(-abs(arch["x"] - 3) - abs(arch["y"] - 1))}


def _toy(budget: int = 6) -> Environment:
    return Environment("toy", SPACE, _score, "score", budget=budget)


def _table(path: Path, rows: list[tuple[int, str, str]], encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding) as f:
        f.write("arch,seed,acc,lat\n")
        for x, acc, lat in rows:
            f.write('"' + json.dumps({"x": x}).replace('"', '""') + f'",0,{acc},{lat}\n')
    return path


# 1. a fidelity environment whose evaluator has no default budget -----------------------------------------------
def test_a_single_fidelity_strategy_trains_at_the_top_level_of_a_fidelity_environment() -> None:
    budgets: list[float] = []

    def train(arch, budget):  # as docs/strategies.md writes a fidelity evaluator: budget has no default
        budgets.append(budget)
        return {"score": _score(arch)["score"] - 1.0 / budget}

    env = Environment("toyf", SPACE, train, objective="score", budget=4, fidelity=(1, 3, 9))
    rec = run_one(env, "random", Setting("random", 0, {}), seed=0)
    assert rec.error is None and rec.evaluations == 4 and rec.value is not None
    assert budgets and set(budgets) == {9.0}  # full training, the level multi-fidelity runs' outcomes have


# 2. merging results ------------------------------------------------------------------------------------------------
def test_merge_keeps_each_parts_summaries_and_refuses_a_pair_both_hold() -> None:
    env = _toy()
    a = run_gym([env], ["random"], settings=1, seeds=2)
    b = run_gym([env], ["evolution"], settings=2, seeds=1, include_default=False)
    ab = a.merge(b)
    assert {s.strategy: s for s in ab.summaries()} == {s.strategy: s for s in a.summaries() + b.summaries()}
    assert ab.config["strategies"] == ["random", "evolution"]
    assert ab.config["include_default"] == {"random": True, "evolution": False}
    assert GymResult.from_dict(json.loads(json.dumps(ab.to_dict()))).summaries() == ab.summaries()
    with pytest.raises(ConfigError, match=r"both results hold runs of \('toy', 'random'\)"):
        a.merge(a)
    other = run_gym([Environment("toy2", SPACE, _score, "score", budget=6)], ["evolution"], settings=1, seeds=1)
    # evolution's settings drawn otherwise: its setting indices would mean two things
    with pytest.raises(ConfigError, match="strategy 'evolution' ran with other settings"):
        b.merge(other)


# 3. equal tuning: draws differ in what takes effect ---------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["bayesian", "smbo"])
def test_drawn_settings_differ_from_the_defaults_and_each_other_in_effect(strategy: str) -> None:
    defaults = {k: p.default for k, p in inspect.signature(STRATEGIES[strategy].__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    for seed in range(25):  # bayesian seed 16 drew the defaults, smbo seed 22 two settings differing in kappa only
        settings, _ = draw_settings(strategy, 5, seed=seed)
        effective = []
        for s in settings:
            full = {**defaults, **s.options}
            if full["acquisition"] == "ei":  # kappa is read by UCB only (one objective, as in every gym environment)
                full.pop("kappa")
            effective.append(repr(sorted(full.items())))
        assert len(set(effective)) == 5, (seed, [s.options for s in settings])


# 4. a non-finite table cell -------------------------------------------------------------------------------------
def test_an_inf_cell_is_left_out_of_the_optimum_and_the_true_front(tmp_path: Path) -> None:
    bench = recorded_table(_table(tmp_path / "t.csv", [(0, "0.5", "1.0"), (1, "0.7", "2.0"), (2, "inf", "3.0")]),
                           Space(x=Choice([0, 1, 2])))
    assert bench.optimum("acc") == 0.7 and bench.optimum("lat", "min") == 1.0
    front = bench.pareto_points([Objective("acc", "max"), Objective("lat", "min")]).tolist()
    assert sorted(front) == [[-0.7, 2.0], [-0.5, 1.0]]
    r = nas.search(bench.space, bench, {"acc": "max"}, strategy="random", budget=3, seed=0)
    assert bench.optimum("acc") == r.best().metrics["acc"]  # regret 0, not inf


# 5. a proxy learned from a gym workdir with a fidelity environment ------------------------------------------------
def test_from_journals_leaves_out_the_journals_of_a_fidelity_space(tmp_path: Path, caplog) -> None:
    def score(arch, budget=9):
        return {"score": _score(arch)["score"] - 3.0 / budget}

    env = Environment("toyf", SPACE, score, objective="score", budget=4, fidelity=(1, 3, 9))
    res = run_gym([env], ["random", "successive-halving"], settings=1, seeds=1, workdir=tmp_path)
    assert [r.error for r in res.runs] == [None, None]
    with caplog.at_level(logging.WARNING, logger="nas.gym.proxy"):
        proxy = ProxyCostModel.from_journals(SPACE, [tmp_path], ["score"])
    assert proxy.n_train == 4  # random's 4 distinct architectures, at full training
    assert "1 journals of another space left out" in proxy.source
    assert "successive-halving" in caplog.text and "epochs" in caplog.text
    with pytest.raises(ConfigError, match="every journal searched another space.*successive-halving"):
        ProxyCostModel.from_journals(SPACE, [tmp_path / "toyf" / "successive-halving"], ["score"])


# 6. the budget override is what the result states -----------------------------------------------------------------
def test_run_gym_records_the_budget_it_ran_with() -> None:
    result = run_gym([_toy(budget=15)], ["random"], settings=1, seeds=1, budget=5)
    assert [r.evaluations for r in result.runs] == [5]
    assert result.environments["toy"]["budget"] == 5 and result.to_dict()["environments"]["toy"]["budget"] == 5
    assert run_gym([_toy(budget=3)], ["random"], settings=1, seeds=1).environments["toy"]["budget"] == 3


# 7. a table saved as "CSV UTF-8" ---------------------------------------------------------------------------------
def test_a_table_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = _table(tmp_path / "bom.csv", [(0, "0.5", "1.0"), (1, "0.7", "2.0")], encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    bench = recorded_table(path, Space(x=Choice([0, 1, 2])))
    assert len(bench) == 2 and bench.optimum("acc") == 0.7
