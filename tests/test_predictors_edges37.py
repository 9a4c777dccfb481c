"""Edge cases of the predictors' harness, the zero-cost predictor and predictor state found in session 37."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from nas.errors import ConfigError
from nas.objectives import Problem
from nas.predictors import make_predictor
from nas.predictors.harness import evaluate, main_eval, scores
from nas.spaces import Choice, ModelSpace, Space
from nas.strategies import make_strategy

SPACE = Space({f"x{i}": Choice(list(range(3)), ordered=False) for i in range(3)})
POOL = list(SPACE)
Y = [a["x0"] - a["x2"] for a in POOL]


class ByX0:
    """A scorer predicting x0: enough for the harness's argument checks."""

    def __init__(self, seed: int) -> None:
        pass

    def fit(self, archs, y):
        return self

    def predict(self, archs):
        return np.array([a["x0"] for a in archs], float), np.zeros(len(archs))


def test_top_precision_counts_a_pick_tied_with_the_kth_best_as_a_hit_whatever_the_row_order():
    """A predicted top-k member whose true value is at least the k-th best true value is a hit: the score is the
    same for every order of the rows (a stable argsort on tied truths followed the row index)."""
    y_true, y_pred = np.array([0.8, 0.8, 0.1, 0.2]), np.array([0.5, 0.9, 0.1, 0.2])
    assert scores(y_true, y_pred, 0.25)["top_precision"] == 1.0
    perm = [1, 0, 2, 3]
    assert scores(y_true[perm], y_pred[perm], 0.25)["top_precision"] == 1.0
    assert scores(np.ones(8), np.arange(8.0), 0.25)["top_precision"] == 1.0  # every pick is a true best
    # predictions tied at the cut: the tied group's picks count at its share of hits, in any order
    y_true, y_pred = np.array([1.0, 0.0, 0.0, 0.0]), np.array([0.5, 0.5, 0.5, 0.5])
    got = {scores(y_true[p], y_pred[p], 0.25)["top_precision"] for p in ([0, 1, 2, 3], [3, 2, 1, 0])}
    assert got == {0.25}


def test_rank_scores_are_zero_for_a_constant_truth_as_for_a_constant_prediction():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's ConstantInputWarning
        truth = scores(np.ones(4), np.arange(4.0))
    pred = scores(np.arange(4.0), np.ones(4))
    for s in (truth, pred):
        assert s["kendall_tau"] == 0.0 and s["spearman_rho"] == 0.0


@pytest.mark.parametrize("seeds", [[-1], [0.5], ["3"], [True]])
def test_evaluate_refuses_bad_seeds_naming_seeds(seeds):
    with pytest.raises(ConfigError, match=r"^seeds: "):
        evaluate({"p": ByX0}, POOL, Y, sizes=[5], seeds=seeds, n_test=10)


def test_evaluate_takes_numpy_seeds_as_python_ints():
    recs = evaluate({"p": ByX0}, POOL, Y, sizes=[5], seeds=np.arange(2), n_test=10)
    assert [type(r.seed) for r in recs] == [int, int]


@pytest.mark.parametrize("what", ["sizes", "seeds"])
def test_evaluate_refuses_an_empty_list(what):
    kw = {"sizes": [5], "seeds": [0], what: []}
    with pytest.raises(ConfigError, match=rf"^{what}: "):
        evaluate({"p": ByX0}, POOL, Y, n_test=10, **kw)


@pytest.mark.parametrize("name", ["random", "evolution", "predictor-search", "smbo"])
@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_strategies_refuse_a_bad_seed_naming_it(name, seed):
    with pytest.raises(ConfigError, match=r"^seed: "):
        make_strategy(name, SPACE, Problem.make({"score": "max"}), seed=seed)


def test_strategies_take_a_numpy_seed_and_none():
    problem = Problem.make({"score": "max"})
    a = make_strategy("random", SPACE, problem, seed=np.int64(3)).ask(4)
    assert a == make_strategy("random", SPACE, problem, seed=3).ask(4)
    make_strategy("random", SPACE, problem, seed=None).ask(1)


@pytest.mark.parametrize("name,options", [("rf", {"n_estimators": np.int64(5)}),
                                          ("gbm", {"n_estimators": np.int64(5)})])
def test_state_dict_is_json_ready_with_numpy_options(name, options):
    p = make_predictor(name, SPACE, np.int64(0), **options).fit(POOL[:10], Y[:10])
    cfg = p.config()
    assert all(type(cfg[k]) is int for k in options) and type(cfg["seed"]) is int
    json.dumps(p.state_dict())


class Tiny(ModelSpace):
    """MLPs whose parameter count grows with width and depth."""

    def __init__(self) -> None:
        super().__init__(width=Choice([2, 4, 8, 16]), depth=Choice([1, 2, 3]))

    def build(self, a):
        layers, d = [], 3
        for _ in range(a["depth"]):
            layers += [nn.Linear(d, a["width"]), nn.ReLU()]
            d = a["width"]
        return nn.Sequential(*layers, nn.Linear(d, 1))

    def example_input(self, a, batch_size=1):
        return torch.zeros(batch_size, 3)


def test_zero_cost_state_dict_is_json_ready_with_a_numpy_batch_size():
    p = make_predictor("zero-cost", Tiny(), 0, proxy="params", batch_size=np.int64(4))
    assert type(p.config()["batch_size"]) is int
    archs = list(p.space)[:3]
    json.dumps(p.fit(archs, [1.0, 2.0, 3.0]).state_dict())


def test_zero_cost_keeps_the_proxys_order_beyond_the_training_scores():
    """Scores above (below) every training score are predicted in the proxy's order, above (below) every in-range
    prediction, with a std growing with the distance beyond the range (np.interp clamped them to one value)."""
    space = Tiny()
    archs = list(space)
    train = [a for a in archs if a["width"] in (4, 8)]
    y = [float(sum(p.numel() for p in space.build(a).parameters())) for a in train]
    p = make_predictor("zero-cost", space, 0, proxy="params").fit(train, y)
    lo, hi = min(map(p.score, train)), max(map(p.score, train))
    above = sorted((a for a in archs if p.score(a) > hi), key=p.score)
    below = sorted((a for a in archs if p.score(a) < lo), key=p.score)
    assert len(above) >= 2 and len(below) >= 2
    m_train, s_train = p.predict(train)
    m_above, s_above = p.predict(above)
    m_below, s_below = p.predict(below)
    assert np.all(np.diff(m_above) > 0) and m_above[0] > m_train.max()
    assert np.all(np.diff(m_below) > 0) and m_below[-1] < m_train.min()
    assert np.all(np.diff(s_above) > 0) and s_above[0] > s_train.max()
    assert np.all(np.diff(s_below) < 0) and s_below[-1] > s_train.max()
    # the JSON state restores the same predictions
    q = make_predictor("zero-cost", space, 0, proxy="params")
    q.load_state_dict(json.loads(json.dumps(p.state_dict())))
    assert np.array_equal(q.predict(above)[0], m_above)


def test_main_eval_refuses_a_bare_string_and_repeated_predictors():
    base = dict(dataset="cora", sizes=[10], seeds=1, n_test=20, rows=100, data_root="/nonexistent")
    with pytest.raises(ConfigError, match=r"^predictors: .*\['rf'\]"):
        main_eval(predictors="rf", **base)
    with pytest.raises(ConfigError, match=r"^predictors: \['rf'\] given more than once"):
        main_eval(predictors=["rf", "rf"], **base)


def test_main_eval_names_predictors_for_an_unknown_one(monkeypatch):
    """The unknown name is refused before the table is read, and the message starts with the field (the CLI maps
    it to --predictors)."""
    import nas.tabular

    monkeypatch.setattr(nas.tabular, "nas_bench_graph", lambda *a, **k: pytest.fail("table read before the check"))
    with pytest.raises(ConfigError, match=r"^predictors: unknown predictor 'nope'"):
        main_eval("cora", ["nope"], [10], 1, 20, rows=100)


def test_cli_names_the_predictors_flag_for_an_unknown_one(tmp_path):
    from typer.testing import CliRunner

    from nas.cli.predictors import app

    out = CliRunner().invoke(app, ["eval", "--predictors", "nope", "--sizes", "10", "--seeds", "1", "--n-test", "20",
                                   "--rows", "100", "--out", str(tmp_path / "o")])
    assert out.exit_code == 2
    assert "--predictors: unknown predictor 'nope'" in out.output
