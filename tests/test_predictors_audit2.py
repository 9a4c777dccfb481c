"""Second audit of `nas.predictors`: each test pins one fixed defect (it failed on the code before the fix).

Small spaces and tiny torch models, so the file runs in seconds.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas import nn as nnn
from nas.errors import ConfigError, InvalidArchitectureError
from nas.predictors import make_predictor
from nas.predictors.base import RankTarget
from nas.spaces import Architecture, CellGraph, Choice, Space

SPACE = Space({f"x{i}": Choice(list(range(4)), ordered=False) for i in range(4)})
OPS = ["gcn", "gat", "sage", "fc"]
CELL = Space(link=Choice(["0-0-0-0", "0-0-1-2", "0-1-2-3"]), op1=Choice(OPS), op2=Choice(OPS), op3=Choice(OPS),
             op4=Choice(OPS)).with_graph(CellGraph(nodes=4, node_ops={i: f"op{i}" for i in range(1, 5)}, links="link"))


def additive(arch) -> float:
    return float(arch["x0"] + 2 * arch["x1"] - arch["x2"])


def sample(space: Space, n: int, seed: int = 0) -> list[Architecture]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


class Zero(nn.Module):
    """The 'none' operation of cell spaces: the output ignores the input (jacov is -inf)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class ZeroOpNet(nnn.ModelSpace):
    input_shape = (8,)

    def __init__(self) -> None:
        super().__init__()
        width = nnn.Choice("width", [4, 8, 16])
        self.fc1 = nnn.Linear(8, width)
        self.op = nnn.LayerChoice({"relu": nn.ReLU(), "tanh": nn.Tanh(), "zero": Zero()}, label="op")
        self.fc2 = nnn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.op(self.fc1(x)))


class DropoutNet(nnn.ModelSpace):
    input_shape = (8,)

    def __init__(self) -> None:
        super().__init__()
        width = nnn.Choice("width", [8, 16, 32])
        self.fc1 = nnn.Linear(8, width)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nnn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


# ---------------------------------------------------------------------------------------------- 1. zero-cost failures
@pytest.mark.parametrize("direction", [-1.0, 1.0])
def test_zero_cost_networks_the_proxy_fails_on_are_predicted_last_whatever_the_sign(direction):
    space = ZeroOpNet.space()
    archs = list(space)
    zero = [a for a in archs if a["op"] == "zero"]
    live = [a for a in archs if a["op"] != "zero"]
    from nas.predictors.zero_cost import compute_proxies

    assert compute_proxies(space.build(zero[0]), space.example_input(zero[0], 16), proxies=["jacov"])["jacov"] == -np.inf
    p = make_predictor("zero-cost", space, 0, proxy="jacov")
    y = np.array([direction * p.score(a) for a in live])
    p.fit(live, y)
    assert p._sign == direction
    mean_live, _ = p.predict(live)
    mean_zero, _ = p.predict(zero)
    assert np.all(np.isfinite(mean_zero))
    assert mean_zero.max() < mean_live.min()  # old: with sign -1 the broken nets were predicted the best


# ---------------------------------------------------------------------------------------------- 2. Architecture objects
def test_architecture_objects_are_validated_like_dicts():
    space = Space(x0=Choice([1, 2, 4, 8]), x1=Choice(["a", "b"]), x2=Choice([0, 1]))
    archs = list(space)
    y = [a["x0"] * 10.0 + (a["x1"] == "b") for a in archs]
    rf = make_predictor("rf", space, 0, n_estimators=10).fit(archs, y)
    partial = Architecture({"x1": "b", "x2": 1})  # a record from an older space without x0
    with pytest.raises(InvalidArchitectureError, match="x0: missing"):
        rf.predict([partial])
    with pytest.raises(InvalidArchitectureError, match="x0: missing"):
        make_predictor("rf", space, 0, n_estimators=10).fit(archs[:5] + [partial], y[:5] + [99.0])
    foreign = Architecture({"a": "p", "b": 10})  # from another space: was an IndexError deep in the encoder
    with pytest.raises(InvalidArchitectureError, match="unknown field"):
        rf.predict([foreign])
    assert rf.predict([archs[3]])[0].shape == (1,)  # valid Architecture objects still go through


# ---------------------------------------------------------------------------------------------- 3. wl-gp onehot=False
def test_wl_gp_without_onehot_is_refused_on_one_node_graphs():
    with pytest.raises(ConfigError, match="onehot=False"):
        make_predictor("wl-gp", SPACE, 0, onehot=False)
    make_predictor("wl-gp", SPACE, 0)  # the one-hot block gives it something to go on
    make_predictor("wl-gp", CELL, 0, onehot=False)  # a declared cell has structure


# ---------------------------------------------------------------------------------------------- 4. harness groups
class Recorder:
    """A scorer that records which architectures it was trained and tested on."""

    log: list[tuple[set[str], list[str]]] = []

    def fit(self, archs, y):
        self.train = {a.id for a in archs}
        return self

    def predict(self, archs):
        Recorder.log.append((self.train, [a.id for a in archs]))
        return np.arange(len(archs), dtype=float), np.zeros(len(archs))


def test_harness_keeps_a_repeated_architecture_on_one_side_by_default():
    from nas.predictors.harness import evaluate

    archs = list(SPACE) * 2  # every network measured twice
    y = [additive(a) for a in archs]
    Recorder.log = []
    evaluate({"rec": lambda seed: Recorder()}, archs, y, sizes=[100], seeds=[0, 1], n_test=60)
    assert len(Recorder.log) == 2
    for train, test in Recorder.log:
        assert len(set(test)) == len(test) == 60  # distinct networks in the test set
        assert not train & set(test)  # and none of them trained on (old: ~10 of them)


# ---------------------------------------------------------------------------------------------- 5. std with tied targets
def test_rank_target_std_keeps_its_scale_when_targets_tie():
    rt = RankTarget().fit(np.array([0.1] * 7 + [0.8]))
    std = rt.inverse_std(np.array([0.45, 0.6]), np.array([0.2, 0.2]))
    assert np.all(std > 0.05)  # old: ~1e-7 (the map is flat across the tied block)
    untied = np.random.default_rng(0).normal(size=30)  # without ties the map is the one the means use
    rt = RankTarget().fit(untied)
    q, s = np.linspace(0.1, 0.9, 9), np.full(9, 0.05)
    old = 0.5 * np.abs(rt.inverse(q + s) - rt.inverse(q - s))
    assert np.allclose(rt.inverse_std(q, s), old, atol=1e-5 * np.ptp(untied))


def test_predictor_std_on_tied_targets_is_on_the_targets_scale():
    train, far = sample(SPACE, 8, 0), sample(SPACE, 5, 1)
    y = [0.1] * 7 + [0.8]  # one success among runs that all diverged to chance accuracy
    gp = make_predictor("gp", SPACE, 0, restarts=0).fit(train, y)
    _, std = gp.predict(far)
    assert std.max() > 0.05  # target="raw" gives 0.25 here; the old rank mapping gave ~1e-7


# ---------------------------------------------------------------------------------------------- 6. MLP input width
@pytest.mark.parametrize("name, space, encoding", [("mlp-ensemble", SPACE, "onehot+vector"),
                                                    ("mlp-ensemble", CELL, "path"),
                                                    ("mlp-pretrained", SPACE, "onehot+vector")])
def test_mlp_input_width_follows_the_encoding(name, space, encoding):
    archs = sample(space, 12)
    y = np.arange(12.0)
    extra = {"proxy": lambda a: 1.0, "pretrain_size": 10, "pretrain_epochs": 2} if name == "mlp-pretrained" else {}
    p = make_predictor(name, space, 0, members=1, epochs=3, hidden=[8], encoding=encoding, **extra).fit(archs, y)
    mean, std = p.predict(archs[:4])
    assert mean.shape == std.shape == (4,) and np.all(np.isfinite(mean))


# ---------------------------------------------------------------------------------------------- 7. zero-cost side effects
def test_labelled_proxies_leave_the_model_and_the_rng_alone_and_repeat():
    from nas.predictors.zero_cost import compute_proxies

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    x, labels = torch.randn(16, 8) * 3 + 1, torch.randint(0, 3, (16,))
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    first = compute_proxies(model, x, labels, F.cross_entropy, proxies=["grad_norm", "snip"])
    after = model.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []  # old: BN running stats moved
    assert torch.equal(rng, torch.get_rng_state())  # old: the caller's RNG advanced
    assert model.training
    again = compute_proxies(model, x, labels, F.cross_entropy, proxies=["grad_norm", "snip"])
    assert again == first  # old: dropout drew new masks each call


def test_zero_cost_predictor_with_dropout_is_reproducible():
    space = DropoutNet.space()
    archs = list(space)
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
    p = make_predictor("zero-cost", space, 0, proxy="grad_norm", batch=lambda a: (x, t), loss_fn=F.cross_entropy)
    assert len({p.score(archs[0]) for _ in range(3)}) == 1
    p.fit(archs, [1.0, 2.0, 3.0])
    assert np.array_equal(p.predict(archs)[0], p.predict(archs)[0])


# ---------------------------------------------------------------------------------------------- 8. targets copied
def test_fit_copies_the_callers_targets():
    archs = sample(SPACE, 20)
    y = np.array([additive(a) for a in archs])
    rf = make_predictor("rf", SPACE, 0, n_estimators=10).fit(archs, y)
    kept = y.copy()
    y[:] = 0.0  # the caller reuses its buffer
    assert np.array_equal(rf.train_y, kept)
    assert rf.state_dict()["train"]["y"] == kept.tolist()


# ---------------------------------------------------------------------------------------------- 9. learning curves
def test_learning_curves_refuse_non_finite_epochs_and_values_and_epoch_zero():
    from nas.predictors.learning_curves import EarlyStopRule, LearningCurveModel, extrapolate

    e = np.arange(1.0, 11.0)
    acc = 0.9 - 0.5 * e**-0.7
    for bad in (np.nan, np.inf):
        ee = e.copy()
        ee[4] = bad
        with pytest.raises(ConfigError, match="epochs"):  # old: fell back to the mean of the values silently
            LearningCurveModel().fit(ee, acc)
        vv = acc.copy()
        vv[2] = bad
        with pytest.raises(ConfigError, match="values"):
            LearningCurveModel().fit(e, vv)
    with pytest.raises(ConfigError, match="target_epoch"):  # old: (-inf, nan)
        extrapolate(e, acc, 0)
    with pytest.raises(ConfigError, match="target_epoch"):
        EarlyStopRule(target_epoch=0)
    with pytest.raises(ConfigError, match="epoch"):
        LearningCurveModel().fit(e, acc).predict(float("nan"))
    mean, _ = extrapolate(e, acc, 50)
    assert mean == pytest.approx(0.9 - 0.5 * 50**-0.7, abs=1e-3)


# ---------------------------------------------------------------------------------------------- 10. average specs
@pytest.mark.parametrize("members, field", [([{"name": "rf", "option": {"n_estimators": 3}}], "option"),
                                            ([{"nme": "rf"}], "nme"),
                                            ([{"options": {}}], "name"),
                                            ([{"name": "rf", "options": None}], "options"),
                                            ([3], r"members\[0\]"),
                                            ("rf", "members")])
def test_average_member_specs_are_checked(members, field):
    with pytest.raises(ConfigError, match=field):
        make_predictor("average", SPACE, 0, members=members)


def test_average_member_options_are_applied():
    avg = make_predictor("average", SPACE, 0, members=[{"name": "rf", "options": {"n_estimators": 3}}, "gp"])
    assert avg._members[0].n_estimators == 3


# ---------------------------------------------------------------------------------------------- smaller defects
@pytest.mark.parametrize("name, space, options, field", [
    ("gcn", CELL, {"hidden": 0}, "hidden"),
    ("gcn", CELL, {"layers": -3}, "layers"),
    ("gcn", CELL, {"hidden": 16.5}, "hidden"),
    ("mlp-ensemble", SPACE, {"hidden": [0]}, "hidden"),
    ("mlp-ensemble", SPACE, {"hidden": 64}, "hidden"),
    ("wl-gp", CELL, {"onehot": "no"}, "onehot"),
    ("wl-gp", CELL, {"edge_attr": "lable"}, "edge_attr"),
    ("wl-gp", SPACE, {"edge_attr": "label"}, "edge_attr"),
    ("mlp-pretrained", SPACE, {"proxy": lambda a: 1.0, "pretrain_size": 10.5}, "pretrain_size"),
    ("mlp-pretrained", SPACE, {"proxy": "params"}, "proxy"),
])
def test_degenerate_or_mistyped_options_are_refused_at_construction(name, space, options, field):
    with pytest.raises(ConfigError, match=field):
        make_predictor(name, space, 0, **options)


def test_wl_gp_accepts_an_edge_attribute_the_graphs_have():
    from nas.spaces.cell import NasBench201Space

    p = make_predictor("wl-gp", NasBench201Space(channels=4, cells_per_stage=1), 0, edge_attr="label")
    assert p.edge_attr == "label"


def test_choose_refuses_a_misspelt_fallback():
    from nas.predictors.selection import choose

    archs = sample(SPACE, 12)
    y = [additive(a) for a in archs]
    make = lambda name: make_predictor(name, SPACE, 0, n_estimators=10) if name == "rf" else make_predictor(name, SPACE)
    with pytest.raises(ConfigError, match="fallback: 'wl_gp'"):
        choose(make, ["rf"], archs, y, fallback=["wl_gp"])
    assert choose(make, ["rf"], archs, y).name == "rf"


@pytest.mark.parametrize("options, field", [({"n_test": 0}, "n_test"), ({"n_test": -5}, "n_test"),
                                            ({"top_fraction": 0}, "top_fraction"),
                                            ({"top_fraction": 2.0}, "top_fraction"),
                                            ({"averages": {"rec": ["rec"]}}, "averages"),
                                            ({"seeds": [0, 0]}, "seeds"), ({"sizes": [10, 10]}, "sizes")])
def test_harness_refuses_degenerate_settings(options, field):
    from nas.predictors.harness import evaluate

    archs = list(SPACE)
    args = {"sizes": [10], "seeds": [0], "n_test": 20, **options}
    with pytest.raises(ConfigError, match=field):
        evaluate({"rec": lambda seed: Recorder()}, archs, [additive(a) for a in archs], **args)


def test_transfer_predictor_fits_a_copy_of_its_base():
    from nas.predictors.transfer import TransferPredictor, TransferPrior

    prior = TransferPrior(SPACE, [[(a, {"acc": additive(a)}) for a in SPACE]])
    base = make_predictor("rf", SPACE, 5, n_estimators=10)
    tp = TransferPredictor(SPACE, 0, base, prior, "acc")
    few = sample(SPACE, 8)
    tp.fit(few, [additive(a) + 0.1 * a["x3"] for a in few])
    assert base.seed == 5 and base.train_archs == []  # old: reseeded to 0 and refitted
    mean, _ = tp.predict([{"x0": 3, "x1": 3, "x2": 0, "x3": 0}, {"x0": 0, "x1": 0, "x2": 3, "x3": 0}])
    assert mean[0] > mean[1]


def test_transfer_prior_without_sources_says_so():
    from nas.predictors.transfer import TransferPrior

    with pytest.raises(ConfigError, match="give at least one source") as info:
        TransferPrior(SPACE, [])
    assert "no source holds no" not in str(info.value)
    with pytest.raises(ConfigError, match="source 0 holds no finite metric values"):
        TransferPrior(SPACE, [[(next(iter(SPACE)), {"acc": float("nan")})]])
