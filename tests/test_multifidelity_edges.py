"""Edges of successive halving / Hyperband, FidelitySpace and the multi-fidelity parts of results and the gym
(the multi-fidelity audit: items 1, 5, 6, 7, 8, 9 and 11)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

import nas
from nas.errors import ConfigError
from nas.gym import Environment, draw_settings, run_gym
from nas.objectives import Problem
from nas.result import SearchResult
from nas.spaces import Choice, Integer, Space
from nas.strategies import make_strategy
from nas.strategies.base import TrialResult
from nas.strategies.multifidelity import FidelitySpace

GRID = Space(a=Choice(list(range(6))), b=Choice(list(range(6))), c=Choice(list(range(3))))  # 108 architectures
GRID_FS = FidelitySpace(GRID, [1, 3, 9], "epochs")
LINE = FidelitySpace(Space(x=Integer(0, 11)), [1, 3, 9], "epochs")


def grid_train(arch: Any, budget: float) -> dict[str, float]:
    return {"acc": arch["a"] * 3 + arch["b"] * 2 + arch["c"] + budget * 0.01}


def line_train(arch: Any, budget: float) -> dict[str, float]:
    return {"loss": arch["x"] + budget * 0.001}


def lost_promotions(s: Any) -> list[tuple[int, int, str]]:
    """(bracket, rung, base id) of each promotion its bracket's next rung does not hold."""
    return [(b, r, pid) for b in range(s.brackets) for r in range(len(s.fspace.levels) - 1)
            for pid in s.promoted[b][r] if pid not in {a.id for a, _ in s.rungs[b][r + 1]}]


# ---------------------------------------------------------------- 1: hyperband spends its budget
def test_hyperband_is_not_exhausted_before_every_architecture_was_started():
    """Promotions another bracket had evaluated were answered from the search's cache, each using up one of its
    100 rounds, so the 100-repeat patience was never reached and the search ended 'exhausted' (281 of 324, 105
    of the 108 architectures started, at seed 2)."""
    r = nas.search(GRID_FS, GRID_FS.evaluator(grid_train), {"acc": "max"}, strategy="hyperband",
                   strategy_options={"inner": "evolution"}, budget=3 * GRID.size(), seed=2)
    assert r.stop_reason == "budget" and r.used == 324
    assert len({GRID_FS.strip(t.arch).id for t in r.trials}) == GRID.size()


# ---------------------------------------------------------------- 7: a promotion answered from the cache is filed
@pytest.mark.parametrize("workers", [1, 3])
def test_every_promotion_reaches_the_next_rung_of_its_bracket(workers):
    """One worker: the promotion's twin was evaluated by another bracket (filed at once). Three: it may still be in
    flight, and the search's cache answers when it ends (filed then)."""
    s = make_strategy("hyperband", LINE, Problem.make({"loss": "min"}), seed=0)
    nas.search(LINE, LINE.evaluator(line_train), {"loss": "min"}, strategy=s, budget=30, seed=0,
               executor=nas.SimulatedClockExecutor(workers=workers, duration=lambda a, m: float(a["epochs"])))
    assert sum(len(p) for b in s.promoted for p in b) > 5
    assert lost_promotions(s) == []


def test_a_restored_hyperband_files_known_promotions_as_the_running_one_does():
    problem = Problem.make({"loss": "min"})
    first = make_strategy("hyperband", LINE, problem, seed=0)
    nas.search(LINE, LINE.evaluator(line_train), {"loss": "min"}, strategy=first, budget=15, seed=0)
    second = make_strategy("hyperband", LINE, problem, seed=0)
    second.load_state_dict(first.state_dict())
    seen: dict[str, TrialResult] = {}
    for s in (first, second):
        asked = []
        for _ in range(15):
            batch = s.ask(1)
            if not batch:
                break
            arch = batch[0]
            asked.append(arch.id)
            result = seen.get(arch.id)
            cached = result is not None
            result = result or TrialResult(line_train(LINE.strip(arch), arch["epochs"]))
            seen[arch.id] = result
            s.tell(arch, TrialResult(result.metrics, result.status, cached=cached))
        s.asked_after = asked  # type: ignore[attr-defined]
    assert first.asked_after == second.asked_after  # type: ignore[attr-defined]
    assert lost_promotions(first) == lost_promotions(second) == []


# ---------------------------------------------------------------- 6: FidelitySpace.evaluator keeps nas.cheap
def test_a_cheap_evaluator_stays_cheap_and_screens_before_training():
    fs = FidelitySpace(Space(x=Integer(0, 999)), [1, 3, 9], "epochs")
    calls: Counter[str] = Counter()

    def lat(arch: Any) -> dict[str, float]:  # no budget=: a cost that does not depend on the fidelity
        calls["lat"] += 1
        return {"lat": arch["x"] / 100}

    def train(arch: Any, budget: float) -> dict[str, float]:
        calls["train"] += 1
        return {"acc": arch["x"] + budget}

    cheap = fs.evaluator(nas.cheap(lat))
    assert isinstance(cheap, nas.Evaluator) and cheap.cheap
    assert not fs.evaluator(train).cheap
    r = nas.search(fs, [cheap, fs.evaluator(train)], {"acc": "max"}, constraints=["lat <= 2"],
                   strategy="successive-halving", budget=20, seed=0)
    statuses = Counter(t.status for t in r.trials)
    assert statuses["ok"] == 20 and statuses["infeasible"] > 0 and "failed" not in statuses
    assert calls["train"] == 20  # only feasible candidates were trained
    assert all(t.metrics["lat"] <= 2 and t.metrics["epochs"] == t.arch["epochs"] for t in r.trials if t.status == "ok")


def test_an_expensive_evaluator_without_budget_is_still_refused():
    with pytest.raises(ConfigError, match="takes no budget= argument"):
        LINE.evaluator(lambda arch: {"loss": 0.0})


# ---------------------------------------------------------------- 11: FidelitySpace levels
@pytest.mark.parametrize("levels, match", [
    (["1", "3"], "levels must be positive finite numbers, got '1'"),
    (3, "levels must be a sequence of numbers"),
    ("13", "levels must be a sequence of numbers"),
    ([True, 3], "levels must be positive finite numbers, got True"),
    ([1, math.nan], "levels must be positive finite numbers, got nan"),
    ([1, math.inf], "levels must be positive finite numbers, got inf"),
    ([0, 3], "levels must be positive finite numbers, got 0"),
    ([3], "at least two distinct"),
    ([3, 3.0], "at least two distinct"),
])
def test_bad_levels_are_config_errors_naming_them(levels, match):
    with pytest.raises(ConfigError, match=match):
        FidelitySpace(Space(x=Integer(0, 9)), levels)


def test_levels_in_any_order_and_numpy_numbers_are_accepted_sorted():
    assert FidelitySpace(Space(x=Integer(0, 9)), (9, 1, 3)).levels == [1, 3, 9]
    assert FidelitySpace(Space(x=Integer(0, 9)), np.array([0.5, 0.25])).levels == [0.25, 0.5]


# ---------------------------------------------------------------- 8: the inner strategy learns from unasked results
def _recording(s: Any) -> list[Any]:
    told: list[Any] = []
    tell = s.inner.tell

    def record(arch: Any, result: TrialResult) -> None:
        told.append(arch)
        tell(arch, result)

    s.inner.tell = record
    return told


def test_the_inner_strategy_learns_from_a_warm_start_at_the_lowest_level(tmp_path):
    fs = FidelitySpace(Space(x=Integer(0, 999)), [1, 3, 9], "epochs")
    train = lambda a, budget: {"acc": a["x"] + budget}  # noqa: E731
    old = nas.search(fs, fs.evaluator(train), {"acc": "max"}, strategy="successive-halving",
                     strategy_options={"inner": "tpe"}, budget=20, seed=0, workdir=tmp_path / "old")
    s = make_strategy("successive-halving", fs, Problem.make({"acc": "max"}), seed=1, inner="tpe")
    nas.search(fs, fs.evaluator(train), {"acc": "max"}, strategy=s, budget=3, seed=1, workdir=tmp_path / "new",
               warm_start=tmp_path / "old")
    lowest = sum(t.arch["epochs"] == 1 for t in old.trials)
    assert lowest > 5
    assert len(s.inner.study.trials) > lowest  # every warm lowest-level result, plus its own asks (was: those only)


def test_the_inner_strategy_is_told_an_enqueued_architecture_at_the_lowest_level():
    fs = FidelitySpace(Space(x=Integer(0, 999)), [1, 3, 9], "epochs")
    s = make_strategy("successive-halving", fs, Problem.make({"loss": "min"}), seed=0, inner="evolution")
    told = _recording(s)
    nas.search(fs, fs.evaluator(line_train), {"loss": "min"}, strategy=s, budget=6, seed=0,
               enqueue=[{"x": 7, "epochs": 1}, {"x": 5, "epochs": 3}])
    ids = [a.id for a in told]
    assert fs.base.validate({"x": 7}).id in ids  # the lowest level: learnt from
    assert fs.base.validate({"x": 5}).id not in ids  # a higher level: filed, not told (an inner start is at 1)


# ---------------------------------------------------------------- 9: best and front of a multi-fidelity search
def noisy(arch: Any, budget: float) -> dict[str, float]:
    """Short trainings are noisy and may look better than any full one."""
    noise = np.random.default_rng(int(arch.id[:8], 16)).normal(0, 30.0 / budget)
    return {"acc": arch["a"] * 3 + arch["b"] * 2 + arch["c"] + noise, "params": float(arch["a"] + arch["b"])}


def test_best_front_hypervolume_and_history_rank_the_top_level_only(tmp_path):
    r = nas.search(GRID_FS, GRID_FS.evaluator(noisy), {"acc": "max"}, strategy="hyperband", budget=60, seed=0,
                   workdir=tmp_path / "wd")
    assert r.top_fidelity == ("epochs", 9)
    top = [t for t in r.trials if t.arch["epochs"] == 9]
    assert top and len(top) < len(r.trials)
    assert max(t.metrics["acc"] for t in r.trials) > max(t.metrics["acc"] for t in top)  # a lucky short run
    for res in (r, SearchResult.load(tmp_path / "wd")):
        assert len(res.completed) == len(r.trials)  # every level still counts as completed
        assert res.best().number == max(top, key=lambda t: (t.metrics["acc"], -t.number)).number
        front = res.pareto_front(["acc", "params:min"])
        assert front and all(t.arch["epochs"] == 9 for t in front)
        assert res.history()[-1][1] == res.best().metrics["acc"]
        assert res.hypervolume([0.0]) == res.best().metrics["acc"]


def test_a_search_over_a_plain_space_ranks_every_trial():
    r = nas.search(GRID, lambda a: {"acc": float(a["a"])}, {"acc": "max"}, strategy="random", budget=5, seed=0)
    assert r.top_fidelity is None and len(r.feasible_with(list(r.problem.objectives))) == 5
    assert SearchResult(r.trials, r.problem).top_fidelity is None


# ---------------------------------------------------------------- 5: hyperband's gym grid on two levels
def test_hyperband_draws_only_brackets_every_environment_accepts():
    space = Space(x=Integer(0, 99), y=Choice([0, 1, 2, 3, 4]))

    def score(arch: Any, budget: float = 9) -> dict[str, float]:
        return {"score": -abs(arch["x"] - 37) - abs(arch["y"] - 1) + 0.01 * budget}

    two = Environment("two-levels", space, score, objective="score", direction="max", budget=4, fidelity=(1, 9))
    res = run_gym([two], ["hyperband", "random"], settings=5, seeds=1)
    assert [r.error for r in res.runs] == [None] * 10
    assert all(s.options.get("brackets", 2) <= 2 for s in res.settings["hyperband"])
    assert len({repr(sorted(s.options.items())) for s in res.settings["hyperband"]}) == 5  # distinct settings
    assert {s.strategy: s.n for s in res.summaries()} == {"hyperband": 5, "random": 5}
    assert any("brackets must be in 1..2" in n for n in res.notes)


def test_a_refusal_that_refuses_nothing_draws_as_before():
    for strategy in ("hyperband", "evolution", "qmc"):
        assert draw_settings(strategy, 5, 3, refuses=lambda o: None) == draw_settings(strategy, 5, 3)
    kept, notes = draw_settings("hyperband", 5, 3, refuses=lambda o: "no" if o.get("brackets") == 3 else None)
    before = [s.options for s in draw_settings("hyperband", 19, 3)[0] if s.options.get("brackets") != 3]  # all 18
    assert [s.options for s in kept] == before[:5] and notes == ["hyperband: draws an environment refuses are left "
                                                                  "out (no)"]
