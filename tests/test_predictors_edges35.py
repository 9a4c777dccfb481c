"""Edge cases of the predictors and of how predictor-search uses them (audit 35): each test pins one fixed defect (it
failed on the code before the fix). Small fits and tiny models, so the file runs in seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from nas.errors import ConfigError
from nas.objectives import Problem
from nas.predictors import make_predictor, predictor_from_state
from nas.predictors.zero_cost import naswot
from nas.spaces import Choice, GNNSpace, Space
from nas.strategies import make_strategy


def plain_space(fields: int = 4) -> Space:
    return Space({f"x{i}": Choice(list(range(4)), ordered=False) for i in range(fields)})


def samples(space: Space, n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def cheap(arch) -> float:
    return float(arch["x0"] + arch["x1"])


PRETRAINED = {"proxy": cheap, "pretrain_size": 20, "pretrain_epochs": 5, "members": 1, "epochs": 5}


# ---------------------------------------------------------------------------------------------- D1. naswot rows
class Readout(nn.Module):
    """A per-row layer, a mean readout, then a head with its own ReLU: the head's codes have one row."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.a, self.r1, self.b, self.r2 = nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 16), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.r2(self.b(self.r1(self.a(x)).mean(0, keepdim=True)))


def test_naswot_compares_rows_and_leaves_out_codes_of_another_leading_dim():
    torch.manual_seed(0)
    x = torch.randn(100, 8)
    model = Readout(4)
    c = (model.a(x) > 0).double()  # the per-row codes: the head's (1, 16) codes are not rows of x
    expected = torch.linalg.slogdet(c @ c.T + (1 - c) @ (1 - c).T + torch.eye(100, dtype=c.dtype))[1]
    assert naswot(model, x) == pytest.approx(float(expected), rel=1e-12)  # old: log(1 + 4 + 16), whatever x was


def test_naswot_warns_when_no_code_has_the_rows_of_the_input():
    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.act = nn.Linear(8, 4), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.fc(x.mean(0, keepdim=True)))

    with pytest.warns(UserWarning, match="naswot: no activation"):
        assert naswot(Head(), torch.randn(10, 8)) == float("-inf")  # old: log(1 + 4), silently


def test_naswot_tells_arma_output_networks_apart():
    space = GNNSpace(16, 3, hidden=(8, 16), heads=(1, 2), layers=(1, 2))
    base = {"layers": 1, "hidden_layers": ({"op": "mlp", "hidden": 8, "activation": "relu", "residual": False},)}
    arch = space.validate({**base, "output": {"op": "arma"}})
    scores = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = space.build(arch)
        x, edge_index = space.example_input(arch, 4)[:2]
        scores.append(naswot(model, (torch.randn_like(x), edge_index)))
    assert np.all(np.isfinite(scores)) and np.ptp(scores) > 0.1  # old: log(1 + 8 + 384) = 5.9738 for every draw


def test_naswot_of_an_ordinary_network_is_the_kernel_over_all_its_codes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 2))
    x = torch.randn(20, 8)
    h1 = model[0](x)
    h2 = model[2](model[1](h1))
    c = torch.cat([(h1 > 0).double(), (h2 > 0).double()], dim=1)
    expected = torch.linalg.slogdet(c @ c.T + (1 - c) @ (1 - c).T + torch.eye(20, dtype=c.dtype))[1]
    assert naswot(model, x) == float(expected)


# ---------------------------------------------------------------------------------------------- D2. rf max_features
def test_rf_max_features_int_one_means_all_features():
    space = plain_space(6)
    archs = samples(space, 40)
    y = np.array([a["x0"] * a["x1"] - a["x2"] for a in archs], dtype=float)
    p_int = make_predictor("rf", space, 0, n_estimators=20, max_features=1).fit(archs, y)
    p_float = make_predictor("rf", space, 0, n_estimators=20, max_features=1.0).fit(archs, y)
    assert p_int._model.estimators_[0].max_features_ == p_int._model.n_features_in_  # old: 1 feature per split
    assert np.array_equal(p_int.predict(archs)[0], p_float.predict(archs)[0])


# ---------------------------------------------------------------------------------------------- D4. average pretraining
def test_predictor_search_refuses_an_average_with_an_unpretrainable_member_up_front():
    space = plain_space()
    problem = Problem.make({"score": "max"})
    with pytest.raises(ConfigError, match=r"predictor-search: .*members\[0\].*mlp-pretrained.*proxy"):
        make_strategy("predictor-search", space, problem, seed=0, predictor="average",
                      predictor_options={"members": ["mlp-pretrained", "rf"]})
    # with its proxy (on a strategy instance) the same average is accepted
    make_strategy("predictor-search", space, problem, seed=0, predictor="average",
                  predictor_options={"members": [{"name": "mlp-pretrained", "options": {"proxy": cheap}}, "rf"]})


# ---------------------------------------------------------------------------------------------- D5. average state
def test_average_state_is_json_ready_and_restores_a_pretrained_member():
    space = plain_space()
    archs = samples(space, 12)
    y = np.array([cheap(a) + 0.1 * i for i, a in enumerate(archs)])
    avg = make_predictor("average", space, 0, members=[{"name": "mlp-pretrained", "options": PRETRAINED}, "rf"])
    avg.fit(archs, y)
    state = json.loads(json.dumps(avg.state_dict()))  # old: TypeError, the proxy function was in the config
    assert state["config"]["members"][0]["options"] == {k: v for k, v in PRETRAINED.items() if k != "proxy"}
    again = predictor_from_state(space, state)  # old: the pretraining set was not in the state, so no proxy to use
    test = samples(space, 8, seed=1)
    assert np.array_equal(again.predict(test)[0], avg.predict(test)[0])
    # a member left out on a plain Space (a graph network) keeps its plain options only
    left_out = make_predictor("average", space, 0, members=[{"name": "gcn-pretrained", "options": PRETRAINED}, "rf"])
    state = json.loads(json.dumps(left_out.fit(archs, y).state_dict()))
    assert np.array_equal(predictor_from_state(space, state).predict(test)[0], left_out.predict(test)[0])


# ---------------------------------------------------------------------------------------------- D6. jacov inputs
def test_zero_cost_jacov_refuses_a_space_whose_models_take_only_integer_inputs():
    from nas.spaces import FlexiBertSpace

    space = FlexiBertSpace()
    with pytest.raises(ConfigError, match="proxy: 'jacov' .*floating-point input.*FlexiBertSpace"):
        make_predictor("zero-cost", space, 0, proxy="jacov")
    with pytest.raises(ConfigError, match="proxy: 'jacov' .*floating"):  # old: accepted, failed after n_init
        make_strategy("predictor-search", space, Problem.make({"acc": "max"}), seed=0, predictor="zero-cost",
                      predictor_options={"proxy": "jacov"})
    make_predictor("zero-cost", space, 0, proxy="naswot")  # activation codes need no floating input


# ---------------------------------------------------------------------------------------------- D7. bad targets
@pytest.mark.parametrize("bad, shown", [(float("nan"), "nan"), (None, "None"), ("n/a", "'n/a'"),
                                        (float("inf"), "inf")])
def test_fit_names_the_targets_that_are_not_finite_numbers(bad, shown):
    space = plain_space()
    archs = list(space)[:30]
    y: list = [float(i) for i in range(30)]
    y[17] = bad
    with pytest.raises(ConfigError, match=rf"fit: targets \[17\] are not finite numbers \({shown}\)"):
        make_predictor("rf", space, 0, n_estimators=5).fit(archs, y)


# ---------------------------------------------------------------------------------------------- D8. member seed
def test_average_refuses_a_seed_among_a_members_options():
    with pytest.raises(ConfigError, match=r"members\[0\]\.options: .*'seed'"):
        make_predictor("average", plain_space(), 0, members=[{"name": "rf", "options": {"seed": 3}}, "gp"])


# ---------------------------------------------------------------------------------------------- D9. one arch
def test_predict_and_fit_refuse_one_architecture_where_a_list_is_expected():
    space = plain_space()
    archs = list(space)[:10]
    p = make_predictor("rf", space, 0, n_estimators=5).fit(archs, np.arange(10.0))
    with pytest.raises(ConfigError, match="archs: expected a list of architectures, got one architecture"):
        p.predict(archs[0])
    with pytest.raises(ConfigError, match="archs: expected a list of architectures"):
        p.predict(dict(archs[0]))
    with pytest.raises(ConfigError, match="archs: expected a list of architectures"):
        make_predictor("rf", space, 0).fit(archs[0], [1.0, 2.0])
    assert p.predict(archs[:1])[0].shape == (1,)



@pytest.mark.parametrize("bad", [None, "n/a", float("nan")])
def test_a_pretraining_proxy_value_that_is_not_a_finite_number_names_the_architecture(bad):
    space = plain_space()
    first = space.sample(np.random.default_rng(10_007))  # the first pretraining architecture of seed 0

    def proxy(arch):
        return bad if arch.id == first.id else cheap(arch)

    archs = samples(space, 12)
    model = make_predictor("mlp-pretrained", space, 0, proxy=proxy, pretrain_size=20)
    with pytest.raises(ConfigError, match=r"proxy: returned .* for pretraining architecture 0 \(\{"):
        model.fit(archs, [cheap(a) for a in archs])
