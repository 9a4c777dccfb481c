"""Predictors learn what they should, treat isomorphic twins alike, restore from plain data; the harness
splits and scores correctly; zero-cost proxies match hand-computed values; learning curves extrapolate."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau
from torch import nn

from nas.errors import ConfigError
from nas.predictors import PREDICTORS, make_predictor, predictor_from_state
from nas.predictors.base import RankTarget
from nas.predictors.embedding import GraphEmbedding
from nas.predictors.harness import evaluate, format_table, held_out_split, plot, scores, summarize
from nas.predictors.learning_curves import EarlyStopRule, LearningCurveModel, extrapolate
from nas.predictors.zero_cost import compute_proxies, jacov, naswot, synflow
from nas.spaces import Choice, Space
from nas.spaces.nasbench_graph import NASBenchGraphSpace

WEIGHTS = np.array([[0.3, 1.0, 0.1, 0.7, 0.5], [0.9, 0.2, 0.4, 0.0, 0.6], [0.1, 0.3, 0.8, 0.5, 0.2],
                    [0.6, 0.6, 0.9, 0.1, 0.3], [0.2, 0.7, 0.5, 0.4, 1.0], [0.8, 0.1, 0.3, 0.6, 0.4]])
SPACE = Space({f"x{i}": Choice(list(range(5)), ordered=False) for i in range(6)})
NBG = NASBenchGraphSpace()
FAST = {"mlp-ensemble": {"members": 3, "epochs": 150}, "gcn": {"members": 2, "epochs": 60},
        "gbm": {"members": 2, "n_estimators": 100}, "gp": {"restarts": 0}}


pytestmark = pytest.mark.usefixtures("one_thread")


def separable(arch) -> float:
    return float(sum(WEIGHTS[i, arch[f"x{i}"]] for i in range(6)))


def synthetic(n: int, seed: int):
    rng = np.random.default_rng(seed)
    archs = [SPACE.sample(rng) for _ in range(n)]
    return archs, np.array([separable(a) for a in archs])


def nbg_target(arch) -> float:
    """A graph-level target on NAS-Bench-Graph: GCN nodes count, a node feeding the output as 'gat' counts more."""
    g = NBG.to_graph(arch)
    return sum(g.nodes[v]["op"] == "gcn" for v in g if isinstance(v, int)) + \
        2.0 * sum(g.nodes[u]["op"] == "gat" for u in g.predecessors("output"))


# ---------------------------------------------------------------------------------------------- contract
def test_rank_target_round_trips_and_is_monotone():
    y = np.array([0.3, 0.9, 0.5, 0.1, 0.7])
    rt = RankTarget().fit(y)
    q = rt.transform(y)
    assert np.allclose(rt.inverse(q), y)
    assert list(np.argsort(q)) == list(np.argsort(y))
    assert np.all(np.diff(rt.inverse(np.linspace(0, 1, 11))) >= 0)


@pytest.mark.parametrize("name", ["rf", "gbm", "gp", "mlp-ensemble", "wl-gp"])
def test_vector_predictors_rank_an_additive_target(name):
    archs, y = synthetic(350, 0)
    p = make_predictor(name, SPACE, 0, **FAST.get(name, {}))
    mean, std = p.fit(archs[:150], y[:150]).predict(archs[150:])
    assert mean.shape == std.shape == (200,) and np.all(std >= 0)
    assert kendalltau(mean, y[150:])[0] > 0.6, name
    assert y[:150].min() - 1e-4 <= mean.min() and mean.max() <= y[:150].max() + 1e-4  # rank targets map back into range


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown predictor 'nope'"):
        make_predictor("nope", SPACE)
    with pytest.raises(ConfigError, match="has no option 'depth'"):
        make_predictor("rf", SPACE, depth=3)
    p = make_predictor("rf", SPACE)
    with pytest.raises(ConfigError, match="call fit before predict"):
        p.predict([SPACE.default()])
    with pytest.raises(ConfigError, match="3 architectures but 2 targets"):
        p.fit([SPACE.default()] * 3, [1.0, 2.0])
    with pytest.raises(ConfigError, match="needs space capabilities"):
        make_predictor("zero-cost", SPACE)  # a plain Space builds no models


# ---------------------------------------------------------------------------------------------- graphs
def _twins():
    """Link 0-0-0-0 puts all four ops side by side: permuting them gives isomorphic networks."""
    a = NBG.validate({"link": "0-0-0-0", "op1": "gcn", "op2": "gat", "op3": "sage", "op4": "fc"})
    b = NBG.validate({"link": "0-0-0-0", "op1": "fc", "op2": "sage", "op3": "gcn", "op4": "gat"})
    return a, b


def test_wl_embedding_is_isomorphism_invariant_and_graded():
    a, b = _twins()
    c = NBG.validate({"link": "0-0-0-0", "op1": "gcn", "op2": "gat", "op3": "sage", "op4": "gin"})
    far = NBG.validate({"link": "0-1-2-3", "op1": "cheb", "op2": "arma", "op3": "graph", "op4": "skip"})
    emb = GraphEmbedding(NBG, iterations=2, onehot=False).fit([a, b, c, far])
    x = emb.transform([a, b, c, far]).toarray() / math.sqrt(emb.blocks)
    assert np.allclose(x[0], x[1])
    sim = x @ x.T
    assert sim[0, 2] > sim[0, 3] and math.isclose(sim[0, 0], 1.0)


def test_wl_gp_learns_a_graph_target_on_the_heterogeneous_transformer_space():
    from nas.spaces.transformer import FlexiBertSpace

    space = FlexiBertSpace()
    rng = np.random.default_rng(4)
    archs = [space.sample(rng) for _ in range(160)]

    def heads_and_width(arch) -> float:  # attention heads count double; wider FFNs add a little
        return float(sum(2 * lay.get("heads", 0) + sum(f["dim"] for f in lay["ffn"]) / 256 for lay in arch["layers"]))

    y = np.array([heads_and_width(a) for a in archs])
    p = make_predictor("wl-gp", space, 0).fit(archs[:100], y[:100])
    assert kendalltau(p.predict(archs[100:])[0], y[100:])[0] > 0.5
    x = p.embed(archs[:3]).toarray()
    assert np.allclose((x * x).sum(axis=1), 1.0)  # unit rows: dot products are graph similarities


@pytest.mark.parametrize("name", ["wl-gp", "gcn"])
def test_graph_predictors_give_isomorphic_twins_one_prediction(name):
    rng = np.random.default_rng(1)
    archs = [NBG.sample(rng) for _ in range(80)]
    y = np.array([nbg_target(a) for a in archs])
    opts = {"onehot": False} if name == "wl-gp" else FAST["gcn"]
    p = make_predictor(name, NBG, 0, **opts).fit(archs, y)
    mean, _ = p.predict(list(_twins()))
    assert mean[0] == pytest.approx(mean[1], abs=1e-5)
    fitted, _ = p.predict(archs)
    assert kendalltau(fitted, y)[0] > 0.6


def test_gcn_pairwise_loss_ranks_a_graph_target():
    rng = np.random.default_rng(2)
    archs = [NBG.sample(rng) for _ in range(260)]
    y = np.array([nbg_target(a) for a in archs])
    p = make_predictor("gcn", NBG, 0, members=2, epochs=80, loss="pairwise").fit(archs[:160], y[:160])
    assert kendalltau(p.predict(archs[160:])[0], y[160:])[0] > 0.5


# ---------------------------------------------------------------------------------------------- state
@pytest.mark.parametrize("name", ["rf", "wl-gp", "gcn", "mlp-pretrained"])
def test_state_dict_is_plain_json_and_restores_the_predictions(name):
    archs, y = synthetic(60, 3)
    space = SPACE
    if name == "gcn":  # gcn refuses a plain Space (one node per architecture): its graphs come from NAS-Bench-Graph
        space, rng = NBG, np.random.default_rng(3)
        archs = [NBG.sample(rng) for _ in range(60)]
        y = np.array([nbg_target(a) for a in archs])
    opts = dict(FAST.get(name, {}))
    if name == "mlp-pretrained":
        opts = {"proxy": lambda a: float(a["x0"] + a["x1"]), "pretrain_size": 50, "pretrain_epochs": 20,
                "members": 2, "epochs": 40}
    p = make_predictor(name, space, 4, **opts).fit(archs[:40], y[:40])
    state = json.loads(json.dumps(p.state_dict()))
    q = predictor_from_state(space, state)  # the pretrained one needs no proxy: its data is in the state
    assert np.allclose(p.predict(archs[40:])[0], q.predict(archs[40:])[0], atol=1e-6)
    assert q.config() == p.config() and q.seed == 4


def test_pretraining_on_a_correlated_proxy_helps_at_small_n():
    archs, y = synthetic(300, 5)
    proxy = lambda a: separable(a) + 0.3 * a["x2"]  # noqa: E731 - a cheap signal correlated with the target
    cache: dict = {}
    taus = {}
    for name, opts in (("mlp-ensemble", {}), ("mlp-pretrained", {"proxy": proxy, "pretrain_size": 400,
                                                                   "pretrain_epochs": 100, "pretrain_cache": cache})):
        p = make_predictor(name, SPACE, 0, members=3, epochs=100, **opts).fit(archs[:15], y[:15])
        taus[name] = kendalltau(p.predict(archs[100:])[0], y[100:])[0]
    assert taus["mlp-pretrained"] > taus["mlp-ensemble"] + 0.1, taus
    assert len(cache) == 3  # one pretrained state per member, reusable by the next fit


def test_average_predictor_is_the_mean_of_its_members():
    archs, y = synthetic(80, 6)
    avg = make_predictor("average", SPACE, 1, members=["rf", {"name": "gp", "options": {"restarts": 0}}])
    avg.fit(archs[:50], y[:50])
    rf = make_predictor("rf", SPACE, 1).fit(archs[:50], y[:50])
    gp = make_predictor("gp", SPACE, 1, restarts=0).fit(archs[:50], y[:50])
    expect = (rf.predict(archs[50:])[0] + gp.predict(archs[50:])[0]) / 2
    assert np.allclose(avg.predict(archs[50:])[0], expect)
    assert avg.needs == {"vector"} and json.loads(json.dumps(avg.state_dict()))["config"]["members"][1]["name"] == "gp"


def test_registry_names_match_classes():
    from nas.predictors import predictor_class

    assert all(predictor_class(n).name == n for n in PREDICTORS)


# ---------------------------------------------------------------------------------------------- small N, collapsed fits
NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
NB201_EDGES = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


def _nb201_plain() -> Space:
    return Space({f"edge_{i}_{j}": Choice(NB201_OPS, ordered=False) for i, j in NB201_EDGES})


def test_gp_flags_a_length_scale_too_short_to_reach_an_unseen_architecture(caplog):
    """The audit's case (N = 10): a length scale of 0.33 beside one-hot codes at least sqrt(2) apart, so every
    unseen architecture got the prior mean, unflagged. Now `degenerate`, and the warning says what happened."""
    space = _nb201_plain()
    rng = np.random.default_rng(0)
    pool = [space.sample(rng) for _ in range(60)]

    def score(a) -> float:
        return sum(a[f"edge_{i}_{j}"] == "nor_conv_3x3" for i, j in NB201_EDGES) + \
            0.5 * sum(a[f"edge_{i}_{j}"] == "none" for i, j in NB201_EDGES)

    y = np.array([score(a) for a in pool[:10]])
    p = make_predictor("gp", space, 0)
    with caplog.at_level(logging.DEBUG, logger="nas.predictors"):
        p.fit(pool[:10], y)
    assert p.degenerate
    assert np.ptp(p.predict(pool[30:])[0]) < 1e-6 * np.ptp(y)  # what the flag says: one constant away from training
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "collapsed to a near-constant prediction" in warned[0].getMessage()
    assert "kernel correlation" in warned[0].getMessage() and "noise" not in warned[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="nas.predictors"):
        p.fit(pool[:10], y)  # the same predictor refitted (as a search does): said again at DEBUG only
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    archs, ys = synthetic(60, 2)  # a real signal at N = 60: a long length scale, not flagged
    assert not make_predictor("gp", SPACE, 0).fit(archs, ys).degenerate


def test_wl_gp_says_once_that_its_means_shrink_and_keeps_its_degenerate_flag(caplog):
    """A kernel GP with its signal variance at the lower bound still ranks (its means shrink towards the mean): the
    warning says so, once per predictor, and `degenerate` (which `selection.choose` reads) is set as before."""
    from nas.predictors.kernel_gp import _BOUNDS, collapsed

    rng = np.random.default_rng(1)
    archs = [SPACE.sample(rng) for _ in range(10)]
    p = make_predictor("wl-gp", SPACE)
    with caplog.at_level(logging.DEBUG, logger="nas.predictors"):
        for _ in range(3):  # a search refits its predictor on every batch
            p.fit(archs, rng.normal(size=10))
            assert p.degenerate and p.degenerate == collapsed(p._gp.signal, p._gp.noise, np.exp(_BOUNDS[0][0]))
    levels = [r.levelno for r in caplog.records if r.name.startswith("nas.predictors")]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    message = caplog.records[0].getMessage()
    assert "signal variance" in message and "lower bound" in message and "ranking is kept" in message
    assert "noise," not in message and "ranking is noise" not in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nas.predictors"):
        make_predictor("wl-gp", SPACE).fit(archs, rng.normal(size=10))  # another predictor: it warns once too
    assert len(caplog.records) == 1


def test_the_once_per_predictor_warning_is_a_declared_field_of_the_predictor(caplog):
    """`Predictor.warn_once` keeps its state in the declared `warned` field (kernel_gp.log_once set an undeclared
    `_warned` attribute on whatever object it was given): WARNING on a predictor's first collapsed fit, DEBUG on
    its later ones, and a fresh predictor warns again."""
    from nas.predictors import kernel_gp

    assert not hasattr(kernel_gp, "log_once")
    rng = np.random.default_rng(1)
    archs, y = [SPACE.sample(rng) for _ in range(10)], rng.normal(size=10)
    first, second = make_predictor("wl-gp", SPACE), make_predictor("wl-gp", SPACE)
    assert not first.warned and not second.warned
    with caplog.at_level(logging.DEBUG, logger="nas.predictors"):
        for p in (first, first, second):
            p.fit(archs, y)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.DEBUG, logging.WARNING]
    assert first.warned and second.warned and "_warned" not in vars(first)
    assert "later fits of this predictor log it at DEBUG" in caplog.records[0].getMessage()


def test_wl_gp_reads_operations_on_edges_by_default():
    """On an NB201 cell (operations on edges) two cells with the same wiring and different operations no longer
    embed alike with `onehot=False`; `edge_attr=None` keeps the old, wiring-only WL blocks."""
    from nas.spaces import CellGraph
    from nas.spaces.cell import NasBench201Space

    declared = _nb201_plain().with_graph(
        CellGraph(nodes=3, edge_ops={(i, j): f"edge_{i}_{j}" for i, j in NB201_EDGES}, output="last"))
    a = {"edge_0_1": "nor_conv_3x3", "edge_0_2": "none", "edge_1_2": "nor_conv_3x3", "edge_0_3": "none",
         "edge_1_3": "none", "edge_2_3": "nor_conv_3x3"}
    b = {k: "avg_pool_3x3" if v == "nor_conv_3x3" else v for k, v in a.items()}
    rng = np.random.default_rng(0)
    train = [a, b] + [declared.sample(rng) for _ in range(20)]
    y = [1.0, 0.0] + list(rng.uniform(size=20))
    for space in (declared, NasBench201Space(channels=4, cells_per_stage=1)):
        default = make_predictor("wl-gp", space, 0, onehot=False)
        assert default.edge_attr == "auto"
        ea, eb = default.fit(train, y).embed([a, b]).toarray()
        assert not np.allclose(ea, eb)
        mean = default.predict([a, b])[0]
        assert mean[0] > mean[1]
        blind = make_predictor("wl-gp", space, 0, onehot=False, edge_attr=None).fit(train, y)
        ea, eb = blind.embed([a, b]).toarray()
        assert np.allclose(ea, eb)
    g = declared.to_graph(a)
    g.add_edge(3, "sink")  # a graph with an edge that carries no operation: a named edge_attr reads it as ""
    assert len(GraphEmbedding(declared, edge_attr="label").features([declared.validate(a)])[0]) == 4
    from nas.predictors.embedding import wl_features

    assert sum(wl_features(g, 2, "label")[0].values()) == g.number_of_nodes()
    with pytest.raises(ConfigError, match="edge_attr"):
        make_predictor("wl-gp", declared, edge_attr=3)


def test_wl_features_are_unchanged_where_operations_sit_on_nodes():
    """NAS-Bench-Graph (built-in and the declared plain space): no edge carries an operation, so the default
    `edge_attr="auto"` gives exactly the features and predictions of `edge_attr=None` (recorded figures stand)."""
    from nas.predictors.embedding import wl_features
    from nas.spaces.nasbench_graph import plain_space

    for space in (NBG, plain_space(graph=True)):
        rng = np.random.default_rng(5)
        archs = [space.sample(rng) for _ in range(60)]
        for arch in archs:
            g = space.to_graph(arch)
            assert wl_features(g, 3) == wl_features(g, 3, None)
        y = np.array([nbg_target(NBG.validate(dict(a))) for a in archs])
        auto = make_predictor("wl-gp", space, 0).fit(archs[:40], y[:40]).predict(archs[40:])
        old = make_predictor("wl-gp", space, 0, edge_attr=None).fit(archs[:40], y[:40]).predict(archs[40:])
        assert np.array_equal(auto[0], old[0]) and np.array_equal(auto[1], old[1])


def test_gbm_learns_from_two_architectures_and_is_unchanged_from_ten():
    """At N = 2 a stage that sees 80 % of the rows sees one, cannot split, and every member predicted one constant,
    even on its own training points; tiny sets are now boosted whole. From N = 3 the bag is subsampled as before."""
    from sklearn.ensemble import GradientBoostingRegressor

    archs, y = synthetic(40, 7)
    p = make_predictor("gbm", SPACE, 0).fit(archs[:2], y[:2])
    assert np.allclose(p.predict(archs[:2])[0], y[:2], atol=0.05 * np.ptp(y[:2]))
    assert len(np.unique(np.round(p.predict(archs[20:])[0], 9))) > 1
    for n in (10, 25):  # the sizes benchmarks use: the same bag of subsampled ensembles as before
        p = make_predictor("gbm", SPACE, 3, members=2, n_estimators=30).fit(archs[:n], y[:n])
        x, t = p._encode(archs[:n]), RankTarget().transform(y[:n])
        expect = np.mean([GradientBoostingRegressor(n_estimators=30, learning_rate=0.05, max_depth=3, subsample=0.8,
                                                    random_state=3000 + k).fit(x, t).predict(p._encode(archs[20:]))
                          for k in range(2)], axis=0)
        assert np.array_equal(p._predict_model(p._encode(archs[20:]))[0], expect)


# ---------------------------------------------------------------------------------------------- harness
def test_scores_of_a_perfect_and_a_reversed_prediction():
    y = np.arange(100, dtype=float)
    assert scores(y, y) == pytest.approx({"kendall_tau": 1.0, "spearman_rho": 1.0, "mae": 0.0, "top_precision": 1.0})
    rev = scores(y, -y)
    assert rev["kendall_tau"] == -1.0 and rev["top_precision"] == 0.0
    assert scores(y, y + 1.0)["mae"] == 1.0
    assert scores(y, np.zeros(100))["kendall_tau"] == 0.0  # a constant prediction ranks nothing


def test_held_out_split_keeps_groups_apart_and_test_groups_distinct():
    groups = [i // 3 for i in range(300)]  # 100 groups of 3 twins
    test, train = held_out_split(300, 40, np.random.default_rng(0), groups)
    tg = [groups[i] for i in test]
    assert len(tg) == len(set(tg)) == 40
    assert not set(tg) & {groups[i] for i in train}
    assert len(train) == 300 - 3 * 40
    with pytest.raises(ConfigError, match="only 100 distinct groups"):
        held_out_split(300, 101, np.random.default_rng(0), groups)


def test_evaluate_is_nested_and_reports_every_cell(tmp_path):
    archs, y = synthetic(400, 7)
    fit_sizes: list[int] = []

    class Oracle:
        def fit(self, a, t):
            fit_sizes.append(len(a))

        def predict(self, a):
            return np.array([separable(x) for x in a]), np.zeros(len(a))

    recs = evaluate({"oracle": lambda s: Oracle(), "rf": lambda s: make_predictor("rf", SPACE, s)}, archs, y,
                    sizes=[20, 50], seeds=[0, 1], n_test=100, averages={"both": ["oracle", "rf"]})
    assert len(recs) == 2 * 2 * 3 and fit_sizes == [20, 50, 20, 50]
    summary = summarize(recs)
    assert summary["oracle"][50]["kendall_tau_mean"] == 1.0 and summary["oracle"][20]["seeds"] == 2
    assert summary["rf"][50]["kendall_tau_mean"] > summary["rf"][20]["kendall_tau_mean"] - 0.05
    assert "oracle" in format_table(recs) and "N=50" in format_table(recs)
    png = plot(recs, tmp_path / "p.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    y[3] = float("nan")  # a failed evaluation: held out, it was scored silently as tau nan
    with pytest.raises(ConfigError, match=r"y: targets \[3\] are not finite"):
        evaluate({"oracle": lambda s: Oracle()}, archs, y, sizes=[20], seeds=[0], n_test=100)


# ---------------------------------------------------------------------------------------------- zero-cost
def test_zero_cost_proxies_match_hand_computed_values_on_a_linear_model():
    torch.manual_seed(0)
    lin = nn.Linear(4, 3)
    x = torch.randn(8, 4)
    w, b = lin.weight.detach(), lin.bias.detach()
    # SynFlow on a linear map with |theta| and 8 all-ones rows: R = 8 (sum_ij |w_ij| + sum_i |b_i|), score = R
    assert synflow(lin, x) == pytest.approx(8 * float(w.abs().sum() + b.abs().sum()), rel=1e-9)
    # every row's Jacobian of sum(outputs) is the column sums of w: correlation matrix of ones
    n = 8
    expected = -(math.log(n + 1e-5) + 1 / (n + 1e-5)) - (n - 1) * (math.log(1e-5) + 1e5)
    assert jacov(lin, x) == pytest.approx(expected, rel=1e-6)
    y = torch.randn(8, 3)
    s = compute_proxies(lin, x, y, F.mse_loss, ["grad_norm", "snip", "params", "flops"])
    err = 2 * (lin(x) - y).detach() / y.numel()
    gw, gb = err.T @ x, err.sum(0)
    assert s["grad_norm"] == pytest.approx(float(gw.norm() + gb.norm()), rel=1e-5)
    assert s["snip"] == pytest.approx(float((w * gw).abs().sum() + (b * gb).abs().sum()), rel=1e-5)
    assert s["params"] == 15 and s["flops"] == 2 * 8 * 4 * 3
    assert lin.weight.grad is None  # the model is left untouched


def test_naswot_is_the_log_determinant_of_the_hamming_kernel():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
    x = torch.randn(6, 5)
    c = (net[0](x) > 0).double()
    k = c @ c.T + (1 - c) @ (1 - c).T
    assert naswot(net, x, jitter=0.0) == pytest.approx(float(torch.linalg.slogdet(k)[1]), rel=1e-9)
    assert naswot(net, x) == pytest.approx(float(torch.linalg.slogdet(k + torch.eye(6, dtype=k.dtype))[1]), rel=1e-9)
    narrow = nn.Sequential(nn.Linear(5, 2), nn.ReLU(), nn.Linear(2, 2))  # 2 units, 6 rows: K is singular
    assert naswot(narrow, x, jitter=0.0) == float("-inf") and np.isfinite(naswot(narrow, x))


def test_zero_cost_proxies_run_on_a_gnn_with_tuple_inputs():
    from torch_geometric.datasets import KarateClub

    from nas.spaces.gnn import GNNSpace

    data = KarateClub()[0]
    space = GNNSpace(data.num_features, 4, layers=(1,), hidden=(8, 32), ops=("gcn", "sage"), example_graph=data)
    arch = space.default()
    torch.manual_seed(0)
    model = space.build(arch)
    before = [p.clone() for p in model.parameters()]
    s = compute_proxies(model, (data.x, data.edge_index), data.y, F.cross_entropy)
    assert set(s) == {"grad_norm", "snip", "synflow", "jacov", "naswot", "params", "flops"}
    assert all(np.isfinite(v) for k, v in s.items() if k != "naswot") and s["params"] == space.count(arch)["params"]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    zc = make_predictor("zero-cost", space, 0, proxy="params")
    archs = [space.sample(np.random.default_rng(i)) for i in range(6)]
    widths = np.array([a["hidden_layers"][0].get("hidden", 0) for a in archs], dtype=float)
    mean, _ = zc.fit(archs, widths).predict(archs)
    assert kendalltau(mean, widths)[0] > 0.5  # wider layers, more parameters


# ---------------------------------------------------------------------------------------------- curves
def test_learning_curve_recovers_an_exact_power_law_and_stops_hopeless_runs():
    t = np.arange(1, 51, dtype=float)
    v = 0.9 - 0.5 * t ** -0.7
    mean, std = LearningCurveModel().fit(t[:10], v[:10]).predict(50)
    assert mean[0] == pytest.approx(v[-1], abs=1e-4) and std[0] < 1e-3
    rule = EarlyStopRule(target_epoch=50)
    assert rule.should_stop(t[:10], v[:10], incumbent=0.95)
    assert not rule.should_stop(t[:10], v[:10], incumbent=0.85)
    assert not rule.should_stop(t[:3], v[:3], incumbent=0.95)  # too few points to judge
    loss = 0.2 + 2.0 * np.exp(-0.2 * t)
    m, _ = extrapolate(t[:15], loss[:15], 50, direction="min")
    assert m == pytest.approx(loss[-1], abs=0.02)
    with pytest.raises(ConfigError, match="at least 3 points"):
        extrapolate([1, 2], [0.1, 0.2], 10)


# ---------------------------------------------------------------------------------------------- predictor search
def _drive(strategy, steps: int, asked: list) -> None:
    from nas.strategies.base import TrialResult

    for _ in range(steps):
        (arch,) = strategy.ask(1)
        asked.append(arch.id)
        strategy.tell(arch, TrialResult({"score": separable(arch)}))


def _guided(seed: int):
    from nas.objectives import Problem
    from nas.strategies.predictor_search import PredictorSearch

    return PredictorSearch(SPACE, Problem.make({"score": "max"}), seed, population_size=20, generations=4,
                           predictor="rf", predictor_options={"n_estimators": 30})


def test_predictor_search_resumes_exactly_from_plain_json_state():
    whole: list = []
    _drive(_guided(3), 45, whole)
    first: list = []
    s = _guided(3)
    _drive(s, 27, first)  # mid-way through a batch
    state = json.loads(json.dumps(s.state_dict()))
    resumed = _guided(99)
    resumed.load_state_dict(state)
    _drive(resumed, 18, first)
    assert first == whole
    assert len(set(whole)) == len(whole)  # never asks an architecture twice


def test_predictor_search_beats_plain_evolution_on_a_separable_space():
    import nas

    optimum = float(WEIGHTS.max(axis=1).sum())
    gaps = {}
    for name in ("evolution", "guided"):
        best = []
        for seed in range(3):
            strategy = _guided(seed) if name == "guided" else "evolution"
            r = nas.search(SPACE, lambda a: {"score": separable(a)}, {"score": "max"}, strategy=strategy, budget=60,
                           seed=seed)
            best.append(r.best().metrics["score"])
        gaps[name] = optimum - float(np.mean(best))
    assert gaps["guided"] < 0.5 * gaps["evolution"], gaps


def test_predictor_search_rejects_bad_options_and_unfit_spaces():
    from nas.objectives import Problem
    from nas.strategies.predictor_search import PredictorSearch

    with pytest.raises(ConfigError, match="invalid n_init"):
        PredictorSearch(SPACE, Problem.make({"score": "max"}), 0, n_init=1)
    with pytest.raises(ConfigError, match="unknown predictor"):
        PredictorSearch(SPACE, Problem.make({"score": "max"}), 0, predictor="oracle")


def test_predictor_search_is_registered_under_its_old_name_too_and_ends_on_an_exhausted_space():
    import nas
    from nas.objectives import Problem
    from nas.strategies import STRATEGIES, make_strategy

    assert STRATEGIES["predictor-search"].__name__ == "PredictorSearch" and "guided-evolution" not in STRATEGIES
    tiny = Space(a=Choice([1, 2, 3]), b=Choice(["x", "y"]))
    s = make_strategy("guided-evolution", tiny, Problem.make({"v": "max"}), seed=0, n_init=2, population_size=8,
                      predictor="rf", predictor_options={"n_estimators": 10})
    assert type(s).__name__ == "PredictorSearch"
    r = nas.search(tiny, lambda a: {"v": float(a["a"])}, {"v": "max"}, strategy=s, budget=50, seed=0)
    assert r.stop_reason == "exhausted" and len(r.trials) == 6 and r.best().metrics["v"] == 3.0


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_predictors_eval_writes_table_json_and_plot(nbg_dir, tmp_path):
    from typer.testing import CliRunner

    from nas.cli import app

    out = tmp_path / "eval"
    res = CliRunner().invoke(app, ["predictors", "eval", "--dataset", "cora", "--predictors", "rf,wl-gp",
                                   "--sizes", "10,30", "--seeds", "2", "--n-test", "60", "--rows", "200",
                                   "--out", str(out), "--data-root", str(nbg_dir)])
    assert res.exit_code == 0, res.output
    assert "kendall_tau" in res.output and "wl-gp" in res.output and "N=30" in res.output
    data = json.loads((out / "predictors_cora.json").read_text())
    assert data["meta"]["rows"] == 200 and data["summary"]["rf"]["30"]["seeds"] == 2
    assert len(data["records"]) == 2 * 2 * 2
    assert (out / "predictors_cora.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message", [
    (["--predictors", "oracle"], "unknown predictor 'oracle'"),
    (["--sizes", "10,big"], "sizes: expected comma-separated integers"),
    (["--rows", "50"], "rows: 50 is fewer than n_test"),
    (["--predictors", "zero-cost"], "needs space capabilities"),
])
def test_cli_predictors_eval_reports_bad_input_on_one_line(nbg_dir, args, message):
    from typer.testing import CliRunner

    from nas.cli import app

    res = CliRunner().invoke(app, ["predictors", "eval", "--data-root", str(nbg_dir), *args])
    assert res.exit_code == 2 and message in res.output, res.output
