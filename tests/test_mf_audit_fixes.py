"""Fixes from the audit of multi-fidelity, warm start/transfer and predictor-search (session 23)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import pytest

import nas
from nas.spaces import Choice, Conditional, Integer, Repeat, Space
from nas.strategies.multifidelity import FidelitySpace

SPACE = Space(depth=Choice([1, 2, 3]), blocks=Repeat(count="depth", kernel=Choice([3, 5, 7]), expand=Choice([2, 4, 6])),
              act=Choice(["relu", "gelu", "tanh"]), dropout=Choice([False, True]),
              rate=Conditional("dropout", True, Integer(1, 5)))
FS = FidelitySpace(SPACE, [1, 3, 9], field="epochs")


def toy(arch: Any) -> dict[str, float]:
    """The toy evaluator of docs/strategies.md."""
    cap = sum(b["kernel"] * b["expand"] for b in arch["blocks"])
    acc = 90 - 300 / (6 + cap) + (1.0 if arch["act"] == "gelu" else 0.0) - 0.2 * arch.get("rate", 0)
    return {"accuracy": acc, "latency_ms": 1 + 0.05 * cap}


def noisy_train(arch: Any, budget: float) -> dict[str, float]:
    """Accuracy whose noise shrinks with the budget (epochs)."""
    m = toy(arch)
    return {"accuracy": m["accuracy"] + np.random.default_rng(int(arch.id[:8], 16)).normal(0, 3.0 / budget),
            "latency_ms": m["latency_ms"]}


def ids(result: Any) -> list[str]:
    return [t.arch_id for t in result.trials]


# ---------------------------------------------------------------- 1: SH quotas count only completed results
# computed on the code before the fix (715b65e): a search without failures or cheap rejections draws the same
PINNED = {
    "successive-halving": ['f9d69708@1', '7e1d2346@1', 'fef3d638@1', '9cfda1c3@3', '43f14d4f@1', '1b48d17c@1',
                           'ff6a9f63@1', 'ffbd6bdb@3', 'ffe8f545@1', '6823fcc0@1', '52646972@1', '8d5fe61e@3',
                           '789e4e55@9', 'c083932d@1', '98cbc2d1@1', 'a2864657@3', '648ae66d@1', '85f95bf1@3',
                           'a45981a1@9', 'a9864b16@1', '523b12e1@1', 'a132c193@1', '0e22513a@3', '1b09f09e@9',
                           'b0c491bd@1', 'b40e1271@1', 'ec322572@3', 'ff17497e@1', '9e6bfcd6@3', 'cd71495a@1'],
    "hyperband": ['f9d69708@1', '789e4e55@9', 'fef3d638@1', 'eb6aed92@9', '1b48d17c@1', '8d5fe61e@3', 'ff6a9f63@1',
                  'cfd18fab@9', '6823fcc0@1', '85f95bf1@3', 'c083932d@1', 'ffbd6bdb@3', 'a2864657@3', '648ae66d@1',
                  'a9864b16@1', '367531db@3', '1b09f09e@9', 'a132c193@1', '0e22513a@3', '8e9b95d2@9', 'b0c491bd@1',
                  '9e6bfcd6@3', 'a45981a1@9', 'b40e1271@1', 'ec322572@3', 'ff17497e@1', 'cd71495a@1', '3448fe6b@1',
                  '81a13cfe@3', 'fb9eed1b@9'],
}


@pytest.mark.parametrize("strategy", sorted(PINNED))
def test_a_search_without_failures_or_rejections_draws_as_before(strategy):
    r = nas.search(FS, FS.evaluator(noisy_train), {"accuracy": "max", "latency_ms": "min"}, strategy=strategy,
                   budget=30, seed=1)
    assert [f"{t.arch_id[:8]}@{t.arch['epochs']}" for t in r.trials] == PINNED[strategy]


def test_cheap_rejections_neither_fill_a_rung_nor_move_up():
    lat = nas.cheap(lambda a: {"latency_ms": toy(FS.strip(a))["latency_ms"]})
    r = nas.search(FS, [lat, FS.evaluator(lambda a, budget: {"accuracy": noisy_train(a, budget)["accuracy"]})],
                   {"accuracy": "max"}, constraints=["latency_ms <= 2.5"], strategy="successive-halving",
                   budget=30, seed=0)
    count = Counter((t.arch["epochs"], t.status) for t in r.trials)
    assert count[(1, "infeasible")] > 0
    assert not any(t.arch["epochs"] > 1 and t.status == "infeasible" for t in r.trials)
    ok = {e: count[(e, "ok")] for e in (1, 3, 9)}
    assert ok[3] <= ok[1] // 2 and ok[9] < ok[3]  # eta=3: about one in three moves up (ASHA)
    assert ok[9] >= 1


def test_a_failed_trial_is_never_promoted():
    baseline = {"depth": 3, "blocks": [{"kernel": 7, "expand": 6}] * 3, "act": "gelu", "dropout": False, "epochs": 1}
    first = FS.validate(baseline).id

    def train(a: Any, budget: float) -> dict[str, float]:  # three in four 1-epoch runs diverge
        if budget == 1 and FS.at(a, 1).id != first and int(FS.at(a, 1).id[:2], 16) % 4:
            raise RuntimeError("diverged")
        return {"accuracy": toy(a)["accuracy"]}

    r = nas.search(FS, FS.evaluator(train), {"accuracy": "max"}, strategy="successive-halving", budget=40, seed=0,
                   enqueue=[baseline])
    failed = {FS.strip(t.arch).id for t in r.trials if t.status == "failed"}
    assert failed
    promoted = {FS.strip(t.arch).id for t in r.trials if t.arch["epochs"] > 1}
    assert promoted and not promoted & failed


# ---------------------------------------------------------------- 3: Ctrl-C inside ask resumes exactly
def _interrupt_once(monkeypatch: pytest.MonkeyPatch, cls: type, method: str, at: int) -> dict[str, int]:
    """Patch `cls.method` to raise KeyboardInterrupt on its `at`-th call (once), as a user's Ctrl-C would."""
    real = getattr(cls, method)
    calls = {"n": 0, "at": at}

    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == calls["at"]:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, patched)
    return calls


def _ask_interrupted_then_resumed(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, strategy: str,
                                  options: dict[str, Any], cls: type, method: str, at: int) -> tuple[list, list]:
    lat = nas.cheap(lambda a: {"latency_ms": toy(a)["latency_ms"]})

    def go(workdir: Any) -> Any:
        return nas.search(SPACE, [lat, lambda a: {"accuracy": toy(a)["accuracy"]}],
                          {"accuracy": "max", "latency_ms": "min"}, constraints=["latency_ms <= 3"],
                          strategy=strategy, strategy_options=options, budget=18, seed=0, workdir=workdir,
                          snapshot_every=2, snapshot_interval_s=0.0)

    ref = go(tmp_path / "ref")
    calls = _interrupt_once(monkeypatch, cls, method, at)
    with pytest.raises(KeyboardInterrupt):
        go(tmp_path / "int")
    assert calls["n"] == at
    journaled = len(nas.load(tmp_path / "int").trials)
    assert 0 < journaled < len(ref.trials)
    return ids(ref), ids(go(tmp_path / "int"))


def test_ctrl_c_inside_predictor_search_ask_resumes_exactly(tmp_path, monkeypatch):
    from nas.strategies.predictor_search import PredictorSearch

    # the 2nd batch: the predictor is fitted, the RNG advanced, the batch not queued yet
    ref, resumed = _ask_interrupted_then_resumed(
        tmp_path, monkeypatch, "predictor-search",
        {"n_init": 5, "batch_size": 3, "population_size": 10, "generations": 2},
        PredictorSearch, "_cheap_metrics", 3)
    assert resumed == ref


def test_ctrl_c_inside_bayesian_ask_resumes_exactly(tmp_path, monkeypatch):
    from nas.strategies.bayesian import BayesianOptimisation

    # inside the acquisition's local search: the surrogate refitted, the RNG advanced by the random pool
    ref, resumed = _ask_interrupted_then_resumed(
        tmp_path, monkeypatch, "bayesian", {"warmup": 4, "epochs": 20, "n_random": 20, "rounds": 1},
        BayesianOptimisation, "_score_new", 7)
    assert resumed == ref


# ---------------------------------------------------------------- 5: fail-fast counts only real failures
def _lut_latency(fail_log: list[str], interrupt_after: int | None = None):
    """A latency lookup that cannot price blocks (k=3, e=2): Ctrl-C once `interrupt_after` lookups failed."""

    def latency(a: Any) -> dict[str, float]:
        if (a["blocks"][0]["kernel"], a["blocks"][0]["expand"]) == (3, 2):
            if interrupt_after is not None and len(fail_log) == interrupt_after:
                raise KeyboardInterrupt
            fail_log.append(a.id)
            raise KeyError("no LUT entry for block (k=3, e=2)")
        return {"latency_ms": toy(a)["latency_ms"]}

    return latency


def _lut_search(latency: Any, workdir: Any = None) -> Any:
    return nas.search(SPACE, [nas.cheap(latency), lambda a: {"accuracy": toy(a)["accuracy"]}], {"accuracy": "max"},
                      constraints=["latency_ms <= 2"], strategy="random", budget=20, seed=0, workdir=workdir)


def test_cheap_failures_among_cheap_rejections_do_not_abort_the_search():
    fails: list[str] = []
    r = _lut_search(_lut_latency(fails))
    statuses = [t.status for t in r.trials]
    first_ok = statuses.index("ok")
    assert statuses[:first_ok].count("failed") >= 3  # the old code stopped at the third
    assert "infeasible" in statuses[:first_ok]
    assert r.used == 20 and r.stop_reason == "budget"


def test_resuming_a_workdir_with_failures_and_cheap_rejections_does_not_abort(tmp_path):
    fails: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _lut_search(_lut_latency(fails, interrupt_after=2), tmp_path)
    trials = nas.load(tmp_path).trials
    assert [t.status for t in trials].count("failed") == 2 and not any(t.status == "ok" for t in trials)
    r = _lut_search(_lut_latency(fails), tmp_path)
    assert r.used == 20 and r.stop_reason == "budget"
    assert [t.status for t in r.trials].count("failed") >= 3


# ---------------------------------------------------------------- 2: fidelity= needs an evaluator taking budget
def test_fidelity_without_a_budget_parameter_is_refused_naming_the_function():
    def train(arch: Any, epochs: int = 1) -> dict[str, float]:
        return {"accuracy": toy(arch)["accuracy"] + epochs}

    with pytest.raises(nas.ConfigError, match=r"fidelity=50.*budget.*'train'"):
        nas.search(SPACE, train, {"accuracy": "max"}, strategy="random", budget=3, seed=0, fidelity=50)


def test_fidelity_reaches_the_evaluator_that_takes_budget_beside_one_that_does_not():
    seen: list[float] = []

    def train(arch: Any, budget: float) -> dict[str, float]:
        seen.append(budget)
        return {"accuracy": toy(arch)["accuracy"]}

    lat = nas.cheap(lambda a: {"latency_ms": toy(a)["latency_ms"]})
    nas.search(SPACE, [lat, train], {"accuracy": "max"}, strategy="random", budget=3, seed=0, fidelity=7)
    assert seen == [7, 7, 7]


# ---------------------------------------------------------------- 9: an unusable warm start is named
def test_a_warm_start_with_other_metric_names_warns_how_many_were_usable(tmp_path, caplog):
    nas.search(SPACE, lambda a: {"acc": toy(a)["accuracy"]}, {"acc": "max"}, strategy="random", budget=6, seed=0,
               workdir=tmp_path / "src")
    with caplog.at_level(logging.WARNING, logger="nas.search"):
        nas.search(SPACE, lambda a: {"accuracy": toy(a)["accuracy"]}, {"accuracy": "max"}, strategy="random",
                   budget=3, seed=1, workdir=tmp_path / "dst", warm_start=tmp_path / "src")
    msg = " ".join(r.getMessage() for r in caplog.records if "warm_start" in r.getMessage())
    assert "0 of the 6" in msg and "'accuracy'" in msg and "acc" in msg


def test_a_usable_warm_start_is_silent(tmp_path, caplog):
    nas.search(SPACE, lambda a: toy(a), {"accuracy": "max"}, strategy="random", budget=4, seed=0,
               workdir=tmp_path / "src")
    with caplog.at_level(logging.WARNING, logger="nas.search"):
        nas.search(SPACE, lambda a: toy(a), {"accuracy": "max"}, strategy="random", budget=3, seed=1,
                   workdir=tmp_path / "dst", warm_start=tmp_path / "src")
    assert not [r for r in caplog.records if "warm_start" in r.getMessage()]


# ---------------------------------------------------------------- 7: transfer= checks the source's space up front
def test_transfer_from_another_spaces_journal_is_refused_at_construction(tmp_path):
    from nas.strategies import make_strategy

    other = Space(width=Choice([8, 16, 32]), act=Choice(["relu", "gelu", "tanh"]))
    nas.search(other, lambda a: {"accuracy": a["width"] / 4}, {"accuracy": "max"}, strategy="random", budget=4,
               seed=0, workdir=tmp_path / "other")
    nas.search(FS, FS.evaluator(noisy_train), {"accuracy": "max"}, strategy="random", budget=4, seed=0,
               workdir=tmp_path / "fidelity")
    problem = nas.Problem.make({"accuracy": "max"})
    with pytest.raises(nas.ConfigError, match=r"transfer: .*other searched a different space \(it differs at field"):
        make_strategy("predictor-search", SPACE, problem, seed=0, transfer=str(tmp_path / "other"))
    with pytest.raises(nas.ConfigError, match=r"transfer: .*fidelity searched a different space"):
        make_strategy("predictor-search", SPACE, problem, seed=0, transfer=str(tmp_path / "fidelity"))


def test_transfer_from_the_same_space_is_accepted(tmp_path):
    from nas.strategies import make_strategy

    nas.search(SPACE, toy, {"accuracy": "max"}, strategy="random", budget=4, seed=0, workdir=tmp_path / "src")
    s = make_strategy("predictor-search", SPACE, nas.Problem.make({"accuracy": "max"}), seed=0,
                      transfer=str(tmp_path / "src"))
    assert "accuracy" in s.transfer.metrics


# ---------------------------------------------------------------- 8: predictor-search learns its cheap metrics robustly
def _ps_search(latency: Any, budget: int = 16) -> tuple[Any, Any]:
    from nas.strategies import make_strategy

    problem = nas.Problem.make({"accuracy": "max", "latency_ms": "min"}, ["latency_ms <= 3"])
    s = make_strategy("predictor-search", SPACE, problem, seed=0, n_init=6, population_size=10, generations=2)
    r = nas.search(SPACE, [nas.cheap(latency), lambda a: {"accuracy": toy(a)["accuracy"]}],
                   {"accuracy": "max", "latency_ms": "min"}, constraints=["latency_ms <= 3"], strategy=s,
                   budget=budget, seed=0)
    return s, r


def test_a_probe_the_cheap_evaluator_cannot_measure_leaves_its_metric_computed():
    probe = SPACE.sample(np.random.default_rng(0))  # the first architecture use_cheap measures (seed 0)
    missing = (probe["blocks"][0]["kernel"], probe["blocks"][0]["expand"])

    def latency(a: Any) -> dict[str, float]:
        if (a["blocks"][0]["kernel"], a["blocks"][0]["expand"]) == missing:
            raise KeyError(f"no LUT entry for block {missing}")
        return {"latency_ms": toy(a)["latency_ms"]}

    s, _ = _ps_search(latency)
    assert s.predicted_metrics == ["accuracy"]


def test_cheap_metric_names_are_learnt_from_results_when_every_probe_fails():
    import nas.strategies.predictor_search as ps

    probes = getattr(ps, "PROBES", 10)  # the architectures use_cheap measures before it leaves the names unknown
    calls = {"n": 0}

    def latency(a: Any) -> dict[str, float]:  # fails on every probe, then works
        calls["n"] += 1
        if calls["n"] <= probes:
            raise RuntimeError("warming up")
        return {"latency_ms": toy(a)["latency_ms"]}

    s, r = _ps_search(latency)
    assert calls["n"] > probes and s.predicted_metrics == ["accuracy"]
    assert len(r.trials) >= 16


# ---------------------------------------------------------------- 4: bayesian screens candidates by cheap constraints
BAYES = {"warmup": 4, "epochs": 20, "n_random": 20, "rounds": 1}
# computed on the code before the fix: without a constraint on a cheap metric, bayesian draws the same
PINNED_BAYES = ['80e5074d', '97ee4066', '9d57ec19', 'b6ad61e0', 'c861703b', '4fec736d', 'bcd83be4', '3b55fd15',
                '298a3065', 'f77a6e1c', 'd75148cf', 'bb2c87df', '326354ba', '3709ffb4']
PINNED_BAYES_EXPENSIVE_BOUND = ['80e5074d', '97ee4066', '9d57ec19', 'b6ad61e0', 'd0adf2a8', 'd1e89262', '4a88ff9e',
                                '8082f73c', '797cd13e', '56a63c0c', 'e1c4754c', 'e47eb944', '48eac881', '298a3065']


def test_bayesian_without_a_cheap_constraint_draws_as_before():
    r = nas.search(SPACE, toy, {"accuracy": "max", "latency_ms": "min"}, strategy="bayesian", strategy_options=BAYES,
                   budget=14, seed=0)
    assert [i[:8] for i in ids(r)] == PINNED_BAYES
    params = nas.cheap(lambda a: {"params": toy(a)["latency_ms"] * 10})  # cheap, but no constraint on it
    r = nas.search(SPACE, [params, toy], {"accuracy": "max"}, constraints=["latency_ms <= 2.5"], strategy="bayesian",
                   strategy_options=BAYES, budget=14, seed=0)
    assert [i[:8] for i in ids(r)] == PINNED_BAYES_EXPENSIVE_BOUND


def test_bayesian_proposes_only_what_passes_a_tight_cheap_constraint():
    lat = nas.cheap(lambda a: {"latency_ms": toy(a)["latency_ms"]})
    r = nas.search(SPACE, [lat, lambda a: {"accuracy": toy(a)["accuracy"]}], {"accuracy": "max"},
                   constraints=["latency_ms <= 1.6"], strategy="bayesian", strategy_options=BAYES, budget=12, seed=0)
    assert r.used == 12 and r.stop_reason == "budget"
    assert sum(t.status == "infeasible" for t in r.trials) <= 2  # the old code: hundreds
    assert all(t.metrics["latency_ms"] <= 1.6 for t in r.trials if t.status == "ok")


def test_ctrl_c_inside_ask_leaves_the_last_snapshot_as_it_was_even_when_finished_evaluations_are_drained(
        tmp_path, monkeypatch):
    """Parallel workers: the drain journals and tells the evaluations that had finished; neither it nor the loop's end
    snapshots the strategy half way through its ask."""
    from nas.strategies.bayesian import BayesianOptimisation
    from tests.test_search_drain import Uncollected

    real = BayesianOptimisation._score_new
    seen: dict[str, Any] = {"n": 0}

    def interrupted(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen["n"] += 1
        if seen["n"] == 5:  # Ctrl-C half way through an ask: remember the snapshot on disk now
            seen["snapshot"] = (tmp_path / "strategy.json").read_bytes()
            seen["trials"] = len(nas.load(tmp_path).trials)
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(BayesianOptimisation, "_score_new", interrupted)
    with pytest.raises(KeyboardInterrupt):
        nas.search(SPACE, toy, {"accuracy": "max", "latency_ms": "min"}, strategy="bayesian", strategy_options=BAYES,
                   budget=14, seed=0, workdir=tmp_path, executor=Uncollected(3), snapshot_every=1,
                   snapshot_interval_s=0.0)
    assert len(nas.load(tmp_path).trials) > seen["trials"]  # finished evaluations were drained and journaled
    assert (tmp_path / "strategy.json").read_bytes() == seen["snapshot"]
