"""Strategy edges from the 36th exploratory report: successive halving on a space smaller than eta^(levels - 1),
torch seeds beyond 2**64, numpy integers as strategy options, and the raw ask/tell API's unchecked inputs."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import pytest

import nas
from nas.errors import ConfigError
from nas.objectives import Problem
from nas.spaces import Choice, Integer, Space
from nas.strategies import Deduplicate, TrialResult, make_strategy, plain_options
from nas.strategies.base import torch_seed
from nas.strategies.multifidelity import FidelitySpace


def small(n: int, levels: list[int]) -> FidelitySpace:
    return FidelitySpace(Space(x=Choice(list(range(n)))), levels, field="epochs")


def grows(arch: Any, budget: float) -> dict[str, float]:
    return {"acc": float(arch["x"] * budget)}


# ---------------------------------------------------------------- 1. successive halving on a small space
@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_successive_halving_on_a_small_space_ends_with_its_best_at_the_top_level(n):
    """Before: with fewer than eta^2 = 9 architectures and 3 levels nothing reached epochs=9 (2 archs: 2 trials, both
    at level 1), and the search stopped "exhausted" with `best()` None and 90+ evaluations of budget left."""
    fs = small(n, [1, 3, 9])
    r = nas.search(fs, fs.evaluator(grows), {"acc": "max"}, strategy="successive-halving", budget=100, seed=0)
    assert r.stop_reason == "exhausted"
    best = r.best()
    assert best is not None and best.arch == {"x": n - 1, "epochs": 9}
    started: dict[int, list[int]] = {}
    for t in r.trials:  # promoted one level at a time, each (architecture, level) once
        started.setdefault(t.arch["x"], []).append(t.arch["epochs"])
    assert all(lv == [1, 3, 9][:len(lv)] for lv in started.values())
    assert len({t.arch_id for t in r.trials}) == len(r.trials)


def test_successive_halving_promotes_max_1_n_over_eta_per_rung_once_exhausted_with_four_levels():
    """10 architectures, 4 levels: 10 -> 3 -> 1 -> 1, as synchronous halving's max(1, n // eta); before, nothing
    reached the top level (fewer than 27 architectures)."""
    fs = small(10, [1, 3, 9, 27])
    r = nas.search(fs, fs.evaluator(grows), {"acc": "max"}, strategy="successive-halving", budget=100, seed=0)
    levels = [t.arch["epochs"] for t in r.trials]
    assert levels.count(1) == 10 and levels.count(27) == 1 and levels.count(9) == 1
    assert r.best() is not None and r.best().arch == {"x": 9, "epochs": 27}


def test_final_promotions_wait_for_the_results_still_out():
    """Driven by hand with both starts in flight: nothing is promoted until both are told (a result still out may
    be the rung's best), then the better one moves up, level by level, and the strategy ends with nothing left."""
    fs = small(2, [1, 3, 9])
    problem = Problem.make({"acc": "max"})
    s = Deduplicate(make_strategy("successive-halving", fs, problem, 0))
    first = s.ask(2)
    assert sorted(a["epochs"] for a in first) == [1, 1]
    assert s.ask(1) == []  # both still out: no promotion yet
    for a in first:
        s.tell(a, TrialResult(fs.evaluator(grows)(a)))
    moved = []
    while asked := s.ask(1):
        moved.append(dict(asked[0]))
        s.tell(asked[0], TrialResult(fs.evaluator(grows)(asked[0])))
    assert moved == [{"x": 1, "epochs": 3}, {"x": 1, "epochs": 9}]
    assert json.loads(json.dumps(s.state_dict()))  # plain data still


def test_hyperband_on_a_small_space_promotes_in_every_bracket():
    fs = small(2, [1, 3, 9])
    r = nas.search(fs, fs.evaluator(grows), {"acc": "max"}, strategy="hyperband", budget=100, seed=0)
    assert r.best() is not None and r.best().arch == {"x": 1, "epochs": 9}


def test_successive_halving_on_a_large_space_proposes_what_it_did_before():
    """The final promotions start only once the inner strategy is exhausted: on 1000 architectures the first 60
    trials are those recorded before the change (a journal of such a search replays identically)."""
    fs = FidelitySpace(Space(a=Choice(list(range(10))), b=Choice(list(range(10))), c=Choice(list(range(10)))),
                       [1, 3, 9, 27], field="epochs")
    ev = fs.evaluator(lambda a, budget: {"acc": (a["a"] * 7 + a["b"] * 3 + a["c"]) % 17 + 0.1 * budget})
    expected = {"successive-halving": "c1fa3d7fd23024f4", "hyperband": "9f3df09c3c607fa1"}
    for strategy, digest in expected.items():
        r = nas.search(fs, ev, {"acc": "max"}, strategy=strategy, budget=60, seed=0)
        assert hashlib.sha256(" ".join(t.arch_id for t in r.trials).encode()).hexdigest()[:16] == digest, strategy


# ---------------------------------------------------------------- 2. seeds beyond torch's range
SPACE = Space(a=Integer(0, 9), b=Choice(["x", "y"]))


@pytest.mark.parametrize("strategy", ["rl", "autognn"])
def test_torch_strategies_take_a_seed_beyond_2_64(strategy):
    """Before: seed=2**70 failed inside torch.manual_seed with "Overflow when unpacking long long". (`nas.search`
    now refuses seeds from 2**63 on, `test_a_seed_beyond_torchs_range_is_refused_naming_it`; a strategy made by
    hand still takes them.)"""
    s = make_strategy(strategy, SPACE, Problem.make({"y": "max"}), 2**70)
    assert len(s.ask(4)) == 4


def test_torch_seed_is_unchanged_below_2_64():
    """Seeds torch took before are passed on as they were (recorded runs replay); larger ones wrap."""
    assert [torch_seed(s) for s in (None, 0, 7, 2**63 - 1, 2**63, 2**64 - 1)] == [0, 0, 7, 2**63 - 1, 2**63, 2**64 - 1]
    assert torch_seed(2**64 + 5) == 5 and 0 <= torch_seed(2**70) < 2**64
    problem = Problem.make({"y": "max"})
    a, b = make_strategy("rl", SPACE, problem, 2**64 + 3), make_strategy("rl", SPACE, problem, 3)
    for pa, pb in zip(a.policy.modules.parameters(), b.policy.modules.parameters()):
        assert bool((pa == pb).all())


# ---------------------------------------------------------------- 3. numpy scalars as strategy options
def test_strategy_options_take_numpy_integers_as_ints():
    """Before: population_size=np.int64(10) (a np.arange sweep) was refused: "expects an int, got np.int64(10)"."""
    problem = Problem.make({"y": "max"})
    for p in np.arange(10, 30, 10):
        s = make_strategy("evolution", SPACE, problem, 0, population_size=p)
        assert s.population_size == int(p) and type(s.population_size) is int
    s = make_strategy("successive-halving", FidelitySpace(SPACE, [1, 3]), problem, 0, eta=np.int32(2),
                      inner="evolution", inner_options={"population_size": np.int64(4)})
    assert s.eta == 2 and type(s.eta) is int and s.inner.population_size == 4


def test_plain_options_are_json_data():
    options = {"population_size": np.int64(10), "mutation_bias": np.float32(0.5), "flag": np.bool_(True),
               "inner_options": {"n": np.int16(3), "levels": [np.int64(1), 2]}}
    plain = plain_options(options)
    assert json.loads(json.dumps(plain)) == {"population_size": 10, "mutation_bias": 0.5, "flag": True,
                                             "inner_options": {"n": 3, "levels": [1, 2]}}
    assert type(plain["population_size"]) is int and type(plain["flag"]) is bool


def test_numpy_options_are_still_checked():
    with pytest.raises(ConfigError, match="population_size expects an int"):
        make_strategy("evolution", SPACE, Problem.make({"y": "max"}), 0, population_size=np.float64(5.5))


# ---------------------------------------------------------------- 4. the raw ask/tell API's inputs
def test_trial_result_refuses_an_unknown_status():
    """Before: status="faild" was kept and ranked as a success."""
    with pytest.raises(ConfigError, match="status.*'ok', 'failed', 'infeasible'.*'faild'"):
        TrialResult({"y": 1.0}, status="faild")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="status"):
        TrialResult.from_dict({"metrics": {}, "status": "done"})
    assert TrialResult({}, "infeasible").status == "infeasible"


STRATEGIES = ["random", "evolution", "nsga2", "local", "smbo", "bayesian", "mcts", "rl", "autognn", "tpe",
              "predictor-search"]


@pytest.mark.parametrize("strategy", STRATEGIES + ["successive-halving"])
def test_ask_refuses_a_negative_or_fractional_count(strategy):
    """Before: ask(-1) returned [] and ask(2.5) failed with a bare TypeError."""
    space = FidelitySpace(SPACE, [1, 3]) if strategy == "successive-halving" else SPACE
    s = make_strategy(strategy, space, Problem.make({"y": "max"}), 0)
    for bad in (-1, 2.5, True, "2"):
        with pytest.raises(ConfigError, match="ask: n .* int >= 0"):
            s.ask(bad)  # type: ignore[arg-type]
    assert s.ask(0) == [] and len(s.ask(np.int64(2))) == 2


def test_deduplicate_refuses_a_negative_count():
    with pytest.raises(ConfigError, match="ask: n"):
        Deduplicate(make_strategy("random", SPACE, Problem.make({"y": "max"}), 0)).ask(-1)


def holds_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, dict):
        return any(holds_nan(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_nan(v) for v in value)
    return False


@pytest.mark.parametrize("strategy", STRATEGIES + ["successive-halving", "hyperband"])
def test_a_nan_ok_result_is_taken_as_failed_as_the_search_does(strategy, caplog):
    """Before: TrialResult({"y": nan}) was an ok result (ranked, kept as a parent), and the state then held the NaN."""
    fidelity = strategy in ("successive-halving", "hyperband")
    space = FidelitySpace(SPACE, [1, 3]) if fidelity else SPACE
    s = Deduplicate(make_strategy(strategy, space, Problem.make({"y": "max"}), 0))
    bad = {"y": math.nan, "epochs_seen": math.nan} if not fidelity else {"y": -math.inf}
    asked = s.ask(3)
    s.tell(asked[0], TrialResult(bad))
    s.tell(asked[1], TrialResult({"y": 1.0}))
    s.tell(asked[2], TrialResult({"y": math.inf}, "infeasible"))
    assert not holds_nan(s.state_dict())  # the failure is kept, not the NaN (snapshots may hold inf: rl's utility)
    assert s.results[s.key(asked[0])][1] == TrialResult({}, "failed")
    assert s.results[s.key(asked[2])][1] == TrialResult({}, "failed")
    assert "taken as failed" in caplog.text and "status=\"failed\"" in caplog.text


def test_a_nan_result_is_failed_in_the_strategys_own_history():
    problem = Problem.make({"y": "max"})
    s = make_strategy("evolution", SPACE, problem, 0)
    s.tell(SPACE.validate({"a": 3, "b": "x"}), TrialResult({"y": 1.0}))
    s.tell(SPACE.validate({"a": 4, "b": "x"}), TrialResult({"y": float("nan")}))
    assert [r.status for _, r in s.history] == ["ok", "failed"]
    json.dumps(s.state_dict(), allow_nan=False)  # strict JSON again
    # a NaN in a metric no objective or constraint names is left alone, as the search leaves it
    s.tell(SPACE.validate({"a": 5, "b": "x"}), TrialResult({"y": 2.0, "note": float("nan")}))
    assert s.history[-1][1].status == "ok"


def test_final_promotions_resume_exactly():
    """A snapshot taken while the final promotions run continues with the same ones."""
    fs = small(5, [1, 3, 9, 27])
    problem = Problem.make({"acc": "max"})

    def drive(s: Deduplicate, steps: int) -> list[str]:
        ids = []
        for _ in range(steps):
            asked = s.ask(1)
            if not asked:
                break
            s.tell(asked[0], TrialResult(fs.evaluator(grows)(asked[0])))
            ids.append(f"{asked[0]['x']}@{asked[0]['epochs']}")
        return ids

    whole = drive(Deduplicate(make_strategy("successive-halving", fs, problem, 0)), 20)
    assert whole == ["4@1", "3@1", "2@1", "4@3", "1@1", "0@1", "4@9", "4@27"]  # 4@9 and 4@27: final promotions
    for k in (6, 7):  # before the final promotions, and between them
        a = Deduplicate(make_strategy("successive-halving", fs, problem, 0))
        first = drive(a, k)
        b = Deduplicate(make_strategy("successive-halving", fs, problem, 0))
        b.load_state_dict(json.loads(json.dumps(a.state_dict())))
        assert first + drive(b, 20) == whole


def test_a_seed_beyond_torchs_range_is_refused_naming_it():
    """Seeds reach torch.manual_seed (one-shot, DARTS, BossNAS trainers, with small offsets): 2**70 failed inside
    torch; now it is refused when the search starts, and 2**63 - 1 still runs."""
    import nas
    from nas.errors import ConfigError
    from nas.spaces import Choice, Space

    space = Space(x=Choice([0, 1, 2]))
    with pytest.raises(ConfigError, match=r"seed: expected a non-negative int below 2\*\*63, got 1180591620717411303424"):
        nas.search(space, lambda a: {"y": float(a["x"])}, {"y": "max"}, budget=2, seed=2 ** 70)
    assert nas.search(space, lambda a: {"y": float(a["x"])}, {"y": "max"}, budget=2, seed=2 ** 63 - 1).used == 2


def test_a_search_takes_numpy_integer_strategy_options_and_journals_them_as_ints(tmp_path):
    """A sweep over np.arange gave "option population_size expects an int" through nas.search as well."""
    import numpy as np

    import nas

    r = nas.search(SPACE, lambda a: {"y": float(a["a"])}, {"y": "max"}, strategy="evolution", budget=4, seed=0,
                   strategy_options={"population_size": np.int64(4)}, workdir=tmp_path / "w")
    assert r.config["strategy_options"]["population_size"] == 4
    assert type(r.config["strategy_options"]["population_size"]) is int
