"""Edge cases of the zero-cost proxies and `ZeroCostPredictor`, and of raw targets in the tree predictors: each test
pins one fixed defect (it failed on the code before the fix). Tiny models, so the file runs in seconds."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
import torch.nn.functional as F
from torch import nn

from nas import nn as nnn
from nas.errors import ConfigError
from nas.predictors import make_predictor, predictor_from_state
from nas.predictors.zero_cost import compute_proxies, jacov, naswot, synflow
from nas.spaces import Choice, ModelSpace, NasBench201Space, Space


class ZerosNet(nnn.ModelSpace):
    """A `nas.nn` model space: its `example_input` is all zeros, every row the same."""

    input_shape = (8,)

    def __init__(self) -> None:
        super().__init__()
        width = nnn.Choice("width", [4, 16, 64])
        self.fc1 = nnn.Linear(8, width)
        self.act = nnn.LayerChoice({"relu": nn.ReLU(), "tanh": nn.Tanh()}, label="act")
        self.fc2 = nnn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Tiny(ModelSpace):
    def __init__(self) -> None:
        super().__init__(width=Choice([4, 16, 64]))

    def build(self, arch):
        return nn.Sequential(nn.Linear(6, arch["width"]), nn.ReLU(), nn.Linear(arch["width"], 2))

    def example_input(self, arch, batch_size=1):
        return torch.randn(batch_size, 6)


class GRUNet(nn.Module):
    """Makes its initial state in float32 inside forward: the float64 copy synflow scores fails on it."""

    def __init__(self, explicit_state: bool = True) -> None:
        super().__init__()
        self.rnn, self.out, self.explicit_state = nn.GRU(8, 16, batch_first=True), nn.Linear(16, 3), explicit_state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = torch.zeros(1, x.shape[0], 16) if self.explicit_state else None
        o, _ = self.rnn(x, h0)
        return self.out(o[:, -1])


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


# ---------------------------------------------------------------------------------------------- 1. reproducible
@pytest.mark.parametrize("proxy", ["naswot", "jacov"])
def test_zero_cost_predictor_is_reproducible_and_leaves_the_callers_rng_alone(proxy):
    space = NasBench201Space(channels=4, cells_per_stage=1)  # example_input draws torch.randn
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(6)]
    p = make_predictor("zero-cost", space, seed=0, proxy=proxy).fit(archs[:4], np.arange(4.0))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    assert p.score(archs[4]) == p.score(archs[4])  # old: the inputs came from the caller's RNG, unseeded
    assert torch.equal(before, torch.get_rng_state())
    again = predictor_from_state(space, json.loads(json.dumps(p.state_dict())))
    assert np.array_equal(again.predict(archs[4:])[0], p.predict(archs[4:])[0])


# ---------------------------------------------------------------------------------------------- 2. identical rows
def test_row_proxies_tell_networks_apart_on_all_zero_example_inputs():
    space = ZerosNet.space()
    archs = list(space)
    assert bool((space.example_input(archs[0], 16) == 0).all())  # the space's example input itself is unchanged
    for proxy in ("jacov", "naswot"):
        p = make_predictor("zero-cost", space, 0, proxy=proxy)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the predictor draws distinct rows itself: nothing to warn about
            scores = [p.score(a) for a in archs]
        assert np.ptp(scores) > 1.0  # old: jacov gave every network -1499830.14 (+- 1e-8)


def test_row_proxies_warn_on_identical_rows_only():
    model, zeros = mlp(), torch.zeros(10, 8)
    with pytest.warns(UserWarning, match="jacov: .*all 10 rows identical"):
        jacov(model, zeros)
    with pytest.warns(UserWarning, match="naswot: .*only counts"):
        naswot(model, zeros)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_proxies(model, torch.randn(10, 8), proxies=["jacov", "naswot"])


# ---------------------------------------------------------------------------------------------- 3. submodule modes
@pytest.mark.parametrize("proxy", ["jacov", "naswot"])
def test_row_proxies_restore_each_submodules_own_mode(proxy):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    compute_proxies(model, torch.randn(10, 8), proxies=[proxy])
    assert model.training and model[0].training
    assert not model[1].training  # old: switched back to train mode with the top module


# ---------------------------------------------------------------------------------------------- 4. synflow dtype
def test_synflow_scores_a_model_that_makes_float32_tensors_in_forward():
    x = torch.randn(4, 5, 8)
    torch.manual_seed(0)
    explicit = GRUNet()
    implicit = GRUNet(explicit_state=False)
    implicit.load_state_dict(explicit.state_dict())
    with pytest.warns(UserWarning, match="synflow: .*float64 copy.*float32 copy"):
        score = synflow(explicit, x)  # old: RuntimeError "mat1 and mat2 must have the same dtype"
    assert score == pytest.approx(synflow(implicit, x), rel=1e-4)  # the same network, scored in float64


def test_synflow_still_raises_a_models_own_error():
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) @ torch.ones(4, 4, dtype=x.dtype)  # wrong shape in any dtype

    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        synflow(Broken(), torch.randn(2, 8))


# ---------------------------------------------------------------------------------------------- 5. arguments
def test_compute_proxies_checks_its_arguments():
    model, x, y = mlp(), torch.randn(10, 8), torch.randint(0, 3, (10,))
    for rows in (0, 1, -3, "16", True):  # old: max_rows=0 gave jacov -0.0, the best possible score
        with pytest.raises(ConfigError, match="max_rows"):
            compute_proxies(model, x, proxies=["jacov"], max_rows=rows)
    with pytest.raises(ConfigError, match="max_rows"):
        jacov(model, x, max_rows=0)
    with pytest.raises(ConfigError, match=r"proxies: expected a list .*'synflow'"):
        compute_proxies(model, x, proxies="synflow")  # old: "unknown ['s', 'y', 'n', ...]"
    assert set(compute_proxies(model, x, proxies=("synflow", "params"))) == {"synflow", "params"}
    with pytest.raises(ConfigError, match="seed"):
        compute_proxies(model, x, y, F.cross_entropy, proxies=["grad_norm"], seed=None)
    frozen = mlp().requires_grad_(False)
    for proxy in ("grad_norm", "snip", "synflow"):  # old: torch's "`inputs` argument to `grad()` cannot be empty"
        with pytest.raises(ConfigError, match=f"model: .*{proxy}.*frozen"):
            compute_proxies(frozen, x, y, F.cross_entropy, proxies=[proxy])


@pytest.mark.parametrize("batch_size", [0, -1, "16", 2.0, True])
def test_zero_cost_predictor_checks_batch_size(batch_size):
    with pytest.raises(ConfigError, match="zero-cost: batch_size"):  # old: accepted, then a torch error on score
        make_predictor("zero-cost", Tiny(), 0, proxy="naswot", batch_size=batch_size)


# ---------------------------------------------------------------------------------------------- 6. raw tiny targets
@pytest.mark.parametrize("name", ["rf", "gbm"])
def test_tree_predictors_with_raw_targets_do_not_depend_on_their_scale(name):
    space = Space({f"x{i}": Choice(list(range(4)), ordered=False) for i in range(4)})
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(40)]
    y = np.array([a["x0"] + 2 * a["x1"] - a["x2"] for a in archs], dtype=float)
    big = make_predictor(name, space, 0, target="raw", n_estimators=20).fit(archs[:20], y[:20]).predict(archs[20:])
    small = make_predictor(name, space, 0, target="raw", n_estimators=20).fit(archs[:20], 1e-9 * y[:20])
    mean, std = small.predict(archs[20:])
    assert np.ptp(mean) > 0  # old: one constant, the trees stopped splitting below a float-eps impurity
    # the same fit up to the rounding that breaks ties between equally good splits
    assert kendalltau(mean, big[0])[0] > 0.95 and np.allclose(mean / 1e-9, big[0], atol=0.3)
    assert np.allclose(std / 1e-9, big[1], atol=0.3)
