"""`predictor-search` (issue 19): beats random at a small budget, resumes exactly, computes cheap objectives instead of
predicting them; and the predictor defects it exposed: gcn on a plain Space, Gaussian processes that collapse."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import nas
from nas.errors import ConfigError
from nas.objectives import Problem
from nas.pareto import hypervolume
from nas.predictors import make_predictor
from nas.spaces import Choice, Space
from nas.strategies import TrialResult, make_strategy
from nas.strategies.predictor_search import PredictorSearch

SPACE = Space({f"x{i}": Choice(list(range(4)), ordered=False) for i in range(5)})
W = np.random.default_rng(7).normal(size=(5, 4))
SMALL = {"population_size": 16, "generations": 4, "predictor": "rf", "predictor_options": {"n_estimators": 20}}


def score(arch) -> float:
    """Additive with one interaction: learnable from a few dozen results, not found by chance."""
    return float(sum(W[i, arch[f"x{i}"]] for i in range(5)) + 0.5 * (arch["x0"] == arch["x1"]))


def cost(arch) -> float:
    return float(sum(arch[f"x{i}"] for i in range(5)))


def two(arch) -> dict[str, float]:
    return {"score": score(arch), "cost": cost(arch)}


def test_beats_random_at_an_equal_small_budget_on_one_and_two_objectives():
    best, hv = {}, {}
    for name in ("predictor-search", "random"):
        opts = SMALL if name == "predictor-search" else {}
        best[name] = np.mean([nas.search(SPACE, lambda a: {"score": score(a)}, {"score": "max"}, strategy=name,
                                         strategy_options=opts, budget=30, seed=s).best().metrics["score"]
                              for s in (0, 1, 2)])
        vals = []
        for s in (0, 1, 2):
            r = nas.search(SPACE, two, {"score": "max", "cost": "min"}, strategy=name, strategy_options=opts,
                           budget=30, seed=s)
            vals.append(hypervolume([[-t.metrics["score"], t.metrics["cost"]] for t in r.completed], [0.0, 15.0]))
        hv[name] = np.mean(vals)
    assert best["predictor-search"] > best["random"] and hv["predictor-search"] > hv["random"], (best, hv)


def _drive(strategy: PredictorSearch, steps: int, asked: list[str]) -> None:
    for _ in range(steps):
        (arch,) = strategy.ask(1)
        asked.append(arch.id)
        strategy.tell(arch, TrialResult(two(arch)))


def test_resumes_from_plain_json_state_with_the_same_asks():
    problem = Problem.make({"score": "max", "cost": "min"}, ["cost <= 9"])
    whole: list[str] = []
    _drive(PredictorSearch(SPACE, problem, 5, batch_size=3, **SMALL), 26, whole)
    first: list[str] = []
    s = PredictorSearch(SPACE, problem, 5, batch_size=3, **SMALL)
    _drive(s, 15, first)  # 10 initial samples, then a batch of 3 and 2 of the next: its third is still queued
    state = json.loads(json.dumps(s.state_dict()))
    assert len(state["queue"]) == 1
    resumed = PredictorSearch(SPACE, problem, 123, batch_size=3, **SMALL)
    resumed.load_state_dict(state)
    _drive(resumed, 11, first)
    assert first == whole and len(set(whole)) == len(whole)


def test_cheap_objectives_and_constraints_are_computed_never_predicted(monkeypatch):
    fitted: list[set[str]] = []
    original = PredictorSearch._fit

    def spy(self):
        models = original(self)
        fitted.append(set(models))
        return models

    monkeypatch.setattr(PredictorSearch, "_fit", spy)
    computed: set[str] = set()

    def cheap_cost(arch):
        computed.add(arch.id)
        return {"cost": cost(arch)}

    strategy = make_strategy("predictor-search", SPACE, Problem.make({"score": "max", "cost": "min"}, ["cost <= 8"]), 0,
                             **SMALL)
    r = nas.search(SPACE, [nas.cheap(cheap_cost), lambda a: {"score": score(a)}], {"score": "max", "cost": "min"},
                   constraints=["cost <= 8"], strategy=strategy, budget=25, seed=0)
    assert strategy.predicted_metrics == ["score"]
    assert fitted and all(f == {"score"} for f in fitted)  # one predictor, for the expensive objective only
    assert len(computed) > len(r.trials)  # candidates of the inner search got their cost computed too
    # the inner search sees the true cost, so the proposals after the initial samples all keep the bound
    assert all(cost(t.arch) <= 8 for t in r.trials[10:]), [cost(t.arch) for t in r.trials[10:]]


def test_auto_predictor_is_chosen_per_metric_by_cross_validation_and_kept_in_the_state(monkeypatch):
    import nas.strategies.predictor_search as ps

    # first candidate: a GP whose kernel only knows identical configurations (a one-node graph, no one-hot block), so
    # it predicts the mean for every unseen architecture; the forest must win out of fold although it is not the prior
    monkeypatch.setattr(ps, "default_candidates",
                        lambda space: {"wl-gp": {"iterations": 1, "onehot": False}, "rf": {"n_estimators": 20}})
    # wl-gp refuses onehot=False on a one-node graph (it would predict a constant): here that constant is the point
    monkeypatch.setattr("nas.predictors.embedding.single_node_graphs", lambda space: False)
    rng = np.random.default_rng(0)
    s = PredictorSearch(SPACE, Problem.make({"score": "max"}), 0)
    for _ in range(20):
        a = SPACE.sample(rng)
        s.tell(a, TrialResult({"score": score(a)}))
    s._fit()
    assert s.choice == {"score": "rf"} and s.chosen_at == 20
    assert json.loads(json.dumps(s.state_dict()))["choice"] == {"score": "rf"}
    with pytest.raises(ConfigError, match="need a named predictor"):
        PredictorSearch(SPACE, Problem.make({"score": "max"}), 0, predictor_options={"n_estimators": 5})


def test_old_name_is_an_alias_and_bad_options_name_the_field():
    s = make_strategy("guided-evolution", SPACE, Problem.make({"score": "max"}), 0)
    assert isinstance(s, PredictorSearch)
    with pytest.raises(ConfigError, match="invalid batch_size"):
        PredictorSearch(SPACE, Problem.make({"score": "max"}), 0, batch_size=0)
    with pytest.raises(ConfigError, match="has no option 'candidates'"):
        make_strategy("predictor-search", SPACE, Problem.make({"score": "max"}), 0, candidates=10)


def test_restarts_from_uniform_samples_after_results_without_improvement_and_resumes_exactly(monkeypatch):
    """A flat objective never improves after its first result: the search restarts after `restart_after` results, takes
    `n_init` uniform samples before its next batch, never asks an architecture twice, and resumes across a restart."""
    problem = Problem.make({"score": "max"})
    batches: list[int] = []
    original = PredictorSearch._batch

    def spy(self, size):
        batches.append(len(self.history))
        return original(self, size)

    monkeypatch.setattr(PredictorSearch, "_batch", spy)

    def drive(strategy: PredictorSearch, steps: int, asked: list[str]) -> None:
        for _ in range(steps):
            (arch,) = strategy.ask(1)
            asked.append(arch.id)
            strategy.tell(arch, TrialResult({"score": 1.0}))

    whole: list[str] = []
    s = PredictorSearch(SPACE, problem, 3, batch_size=3, restart_after=15, **SMALL)
    drive(s, 60, whole)
    assert s.restarts and s.restarts[0] == 16, s.restarts  # the first result improves, the next 15 do not
    assert len(s.restarts) >= 2 and len(set(whole)) == len(whole)
    for r in s.restarts:
        assert not [n for n in batches if r <= n < r + s.n_init], (r, batches)  # uniform samples first
    assert any(n >= s.restarts[0] + s.n_init for n in batches)  # then batches chosen on the new run's results

    part: list[str] = []
    first = PredictorSearch(SPACE, problem, 3, batch_size=3, restart_after=15, **SMALL)
    drive(first, 30, part)
    state = json.loads(json.dumps(first.state_dict()))
    assert state["restarts"] == [16]
    resumed = PredictorSearch(SPACE, problem, 99, batch_size=3, restart_after=15, **SMALL)
    resumed.load_state_dict(state)
    drive(resumed, 30, part)
    assert part == whole

    never = PredictorSearch(SPACE, problem, 3, batch_size=3, restart_after=None, **SMALL)
    drive(never, 40, [])
    assert never.restarts == []
    with pytest.raises(ConfigError, match="invalid restart_after"):
        PredictorSearch(SPACE, problem, 0, restart_after=0)


def test_an_improving_search_does_not_restart():
    """Every feasible result that no earlier one weakly dominates resets the count, with one objective or two."""
    for objectives in ({"score": "max"}, {"score": "max", "cost": "min"}):
        s = PredictorSearch(SPACE, Problem.make(objectives), 0, restart_after=5, **SMALL)
        rng = np.random.default_rng(1)
        for k in range(30):
            a = SPACE.sample(rng)
            s.tell(a, TrialResult({"score": float(k), "cost": 1.0}))  # each result beats every earlier one
        assert s._stale() == 0
        s.ask(1)
        assert s.restarts == []


# ---------------------------------------------------------------------------------------------- predictor defects
def test_gcn_refuses_a_plain_space_and_average_leaves_it_out_with_a_warning(caplog):
    with pytest.raises(ConfigError, match="one node"):
        make_predictor("gcn", SPACE)
    with caplog.at_level(logging.WARNING, logger="nas.predictors"):
        avg = make_predictor("average", SPACE)
    assert [m.name for m in avg._members] == ["wl-gp"]
    assert any("'gcn' left out" in r.getMessage() for r in caplog.records)


def test_the_path_encoding_refuses_a_plain_space_and_the_list_shows_what_average_needs():
    """On a plain Space each architecture is one node, so one path of its own: the path code of every unseen
    architecture is a column no training row has, and any model on it predicts a constant."""
    from typer.testing import CliRunner

    from nas.cli import app
    from nas.spaces import CellGraph, NasBench201Space

    chain = SPACE.with_graph(CellGraph(nodes=5, node_ops={i: f"x{i - 1}" for i in range(1, 6)},
                                       inputs={i: i - 1 for i in range(1, 6)}, output="last"))
    for space in (SPACE, chain):  # one node, or one path through five: either way one column per architecture
        with pytest.raises(ConfigError, match="encoding: 'path' needs a DAG with several paths"):
            make_predictor("rf", space, encoding="path")
    cell = NasBench201Space()  # a cell with several paths: paths are shared and the code generalises
    rng = np.random.default_rng(0)
    archs = [cell.sample(rng) for _ in range(60)]
    y = [sum(op == "nor_conv_3x3" for op in a.values()) for a in archs]
    p = make_predictor("rf", cell, encoding="path").fit(archs[:40], y[:40])
    assert np.ptp(p.predict(archs[40:])[0]) > 0
    out = CliRunner().invoke(app, ["predictors", "list"])
    assert out.exit_code == 0
    assert [line.split()[1:3] for line in out.stdout.splitlines() if line.startswith("average")] == [["its", "members'"]]


@pytest.mark.parametrize("name", ["wl-gp", "gp"])
def test_gaussian_processes_warn_when_they_collapse_to_a_constant(name, caplog):
    rng = np.random.default_rng(1)
    archs = [SPACE.sample(rng) for _ in range(10)]
    with caplog.at_level(logging.WARNING, logger="nas.predictors"):
        p = make_predictor(name, SPACE).fit(archs, rng.normal(size=10))  # targets unrelated to the architectures
    assert any("collapsed to a near-constant prediction" in r.getMessage() for r in caplog.records)
    assert np.ptp(p.predict([SPACE.sample(rng) for _ in range(20)])[0]) < 0.01  # what the warning says
    caplog.clear()
    archs = [SPACE.sample(rng) for _ in range(40)]
    with caplog.at_level(logging.WARNING, logger="nas.predictors"):
        p = make_predictor(name, SPACE).fit(archs, [score(a) for a in archs])  # a real signal: no warning
    assert not any("collapsed" in r.getMessage() for r in caplog.records)
    assert np.ptp(p.predict([SPACE.sample(rng) for _ in range(20)])[0]) > 0.1


@pytest.mark.slow
def test_the_constrained_supernet_experiment_runs_end_to_end(tmp_path, one_thread):
    """experiments/constrained_ofa.py --quick: a sandwich supernet, a timed lookup table, the cheap latency bound
    and the three searches; every pick respects the bound and queries count only what passed it."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "constrained_ofa.py"
    spec = importlib.util.spec_from_file_location("constrained_ofa", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "report.json"
    assert module.main(["--quick", "--runs", str(tmp_path / "runs.json"), "--work", str(tmp_path), "--out", str(out)]) == 0
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert len(runs) == 6
    for rec in runs.values():
        assert rec["pick_latency_ms"] <= rec["bound_ms"] and rec["queries"] == len(rec["curve"])
        assert rec["curve"] == sorted(rec["curve"])  # best so far
    report = json.loads(out.read_text())
    assert set(report["methods"]) == {"evolution", "predictor-search", "random"} and "target" in report
