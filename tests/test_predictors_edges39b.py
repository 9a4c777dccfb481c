"""Session 39 edges of the predictors (second set): a saved state records its space and refuses another one, a
malformed state is a ConfigError naming the missing key, `choose` validates its inputs even with one candidate,
zero-cost proxies refuse non-finite inputs, and bool targets are refused. Each test failed before its fix."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from torch import nn

from nas.errors import ConfigError, InvalidArchitectureError
from nas.predictors import make_predictor, predictor_from_state
from nas.predictors.selection import choose
from nas.predictors.zero_cost import compute_proxies, jacov, naswot
from nas.spaces import Choice, Integer, ModelSpace, Space

A = Space(width=Integer(16, 128, step=16), opt=Choice(["sgd", "adam", "rmsprop"]),
          act=Choice(["relu", "gelu", "tanh"]))


def _fitted(space: Space = A, name: str = "rf", **options):
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(20)]
    y = [a["width"] / 128 + (a["opt"] == "adam") + 0.5 * (a["act"] == "gelu") for a in archs]
    return make_predictor(name, space, 0, **options).fit(archs, y), archs


# ------------------------------------------------------------------------------------------- 1. state and its space
@pytest.mark.parametrize("other, field", [
    (Space(width=Integer(16, 512, step=16), opt=Choice(["sgd", "adam", "rmsprop"]),
           act=Choice(["relu", "gelu", "tanh"])), "width"),
    (Space(width=Integer(16, 128, step=16), opt=Choice(["adam", "rmsprop", "sgd"]),
           act=Choice(["relu", "gelu", "tanh"])), "opt"),
    (Space(width=Integer(16, 128, step=16), opt=Choice(["sgd", "adam", "rmsprop"])), "act"),
], ids=["wider-range", "reordered-options", "field-removed"])
def test_a_state_refuses_a_space_with_another_fingerprint(other, field):
    """Old: the state held no space, so it refitted silently with the other space's encoding."""
    p, _ = _fitted()
    state = json.loads(json.dumps(p.state_dict()))
    assert state["space"] == A.fingerprint()
    with pytest.raises(ConfigError, match=rf"different space.*{A.fingerprint()}.*{other.fingerprint()}.*{field}"):
        predictor_from_state(other, state)
    q = make_predictor("rf", other, 0)
    with pytest.raises(ConfigError, match=rf"different space.*field {field}"):
        q.load_state_dict(state)


def test_the_same_space_rebuilt_loads_and_predicts_the_same():
    p, archs = _fitted()
    same = Space(width=Integer(16, 128, step=16), opt=Choice(["sgd", "adam", "rmsprop"]),
                 act=Choice(["relu", "gelu", "tanh"]))
    q = predictor_from_state(same, json.loads(json.dumps(p.state_dict())))
    assert np.array_equal(q.predict(archs)[0], p.predict(archs)[0])


def test_a_state_from_before_the_fingerprint_still_loads(caplog):
    p, archs = _fitted()
    state = {k: v for k, v in p.state_dict().items() if k not in ("space", "space_spec")}
    with caplog.at_level(logging.DEBUG, logger="nas.predictors.base"):
        q = predictor_from_state(A, state)
    assert np.array_equal(q.predict(archs)[0], p.predict(archs)[0])
    assert "no space fingerprint" in caplog.text


def test_an_average_and_a_pretrained_state_refuse_another_space_first():
    """The subclasses that read their state before the base class (members, the pretraining set) check it first."""
    wider = Space(width=Integer(16, 512, step=16), opt=Choice(["sgd", "adam", "rmsprop"]),
                  act=Choice(["relu", "gelu", "tanh"]))
    avg, _ = _fitted(name="average", members=[{"name": "rf", "options": {"n_estimators": 5}},
                                                  {"name": "gbm", "options": {"n_estimators": 5}}])
    with pytest.raises(ConfigError, match="different space.*field width"):
        predictor_from_state(wider, json.loads(json.dumps(avg.state_dict())))
    narrow = Space(width=Integer(16, 64, step=16), opt=Choice(["sgd", "adam", "rmsprop"]),
                   act=Choice(["relu", "gelu", "tanh"]))
    pre = make_predictor("mlp-pretrained", narrow, 0, proxy=lambda a: a["width"] / 64, pretrain_size=20,
                         pretrain_epochs=1, epochs=1, members=1)
    pre.pretraining_set()
    state = pre.state_dict()
    assert state["pretrain"]["archs"]
    with pytest.raises(ConfigError, match="different space.*field width"):  # old: InvalidArchitectureError or a fit
        predictor_from_state(Space(width=Integer(32, 64, step=16), opt=Choice(["sgd", "adam", "rmsprop"]),
                                   act=Choice(["relu", "gelu", "tanh"])), state)


@pytest.mark.parametrize("key", ["type", "config", "train"])
def test_a_state_missing_a_key_is_a_config_error_naming_it(key):
    """Old: a bare KeyError 'train' (or 'config', 'type')."""
    p, _ = _fitted()
    state = {k: v for k, v in p.state_dict().items() if k != key}
    with pytest.raises(ConfigError, match=f"predictor state: .*'{key}'"):
        predictor_from_state(A, state)
    if key != "type":
        with pytest.raises(ConfigError, match=f"predictor state: .*'{key}'"):
            make_predictor("rf", A, 0).load_state_dict(state)


def test_a_malformed_train_entry_is_a_config_error():
    p, _ = _fitted()
    state = {**p.state_dict(), "train": {"archs": []}}
    with pytest.raises(ConfigError, match=r"predictor state: .*train.*'y'"):
        predictor_from_state(A, state)
    with pytest.raises(ConfigError, match="predictor state: expected a dict"):
        predictor_from_state(A, [1, 2])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- 2. choose validates
SMALL = Space(width=Integer(16, 128, step=16), opt=Choice(["sgd", "adam"]))


def _make(name):
    return make_predictor(name, SMALL, 0, n_estimators=10)


def _small():
    rng = np.random.default_rng(0)
    return [SMALL.sample(rng) for _ in range(20)]


def test_choose_with_one_candidate_refuses_non_finite_targets():
    """Old: the single-candidate shortcut returned before looking at archs or y."""
    y = np.arange(20.0)
    y[5] = np.nan
    with pytest.raises(ConfigError, match=r"choose: targets \[5\] are not finite"):
        choose(_make, ["rf"], _small(), y)
    with pytest.raises(ConfigError, match=r"choose: targets \[5\] are not finite"):
        choose(_make, ["rf", "gbm"], _small(), y)


def test_choose_with_one_candidate_refuses_an_architecture_outside_the_space():
    bad = _small()[:19] + [{"width": 17, "opt": "lion"}]
    with pytest.raises(InvalidArchitectureError, match="width"):
        choose(_make, ["rf"], bad, np.arange(20.0))


def test_choose_with_one_candidate_still_takes_the_shortcut():
    sel = choose(_make, ["rf"], _small(), np.arange(20.0))
    assert (sel.name, sel.prior, sel.n, sel.fitted) == ("rf", "rf", 20, None)


# ------------------------------------------------------------------------------------------- 3. non-finite inputs
def _net(width: int = 16) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 3))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("proxy", ["jacov", "naswot"])
def test_non_finite_inputs_are_refused_naming_inputs(proxy, bad):
    """Old: jacov gave every network the same huge negative score on NaN inputs, with no warning."""
    x = torch.randn(16, 8)
    x[3, 2] = bad
    with pytest.raises(ConfigError, match=rf"inputs: .*not finite.*row 3.*{proxy}"):
        compute_proxies(_net(), x, None, None, [proxy])
    with pytest.raises(ConfigError, match=r"inputs: .*not finite"):
        {"jacov": jacov, "naswot": naswot}[proxy](_net(), (x,))


def test_non_finite_inputs_are_refused_for_the_labelled_proxies():
    x = torch.full((4, 8), float("nan"))
    with pytest.raises(ConfigError, match=r"inputs: .*not finite.*grad_norm"):
        compute_proxies(_net(), {"input": x}, torch.zeros(4, dtype=torch.long), nn.functional.cross_entropy,
                        ["grad_norm"])


def test_data_free_proxies_do_not_read_the_input_values():
    """synflow scores all-ones inputs of the given shape, params and flops no values at all: NaN inputs are fine."""
    scores = compute_proxies(_net(), torch.full((4, 8), float("nan")), None, None, ["synflow", "params", "flops"])
    assert all(np.isfinite(v) for v in scores.values())


class NaNBatch(ModelSpace):
    def __init__(self) -> None:
        super().__init__(width=Choice([4, 16, 64]))

    def build(self, arch):
        return nn.Sequential(nn.Linear(8, arch["width"]), nn.ReLU(), nn.Linear(arch["width"], 3))

    def example_input(self, arch, batch_size=1):
        return torch.randn(batch_size, 8)


def test_the_zero_cost_predictor_refuses_a_batch_of_nan_inputs():
    space = NaNBatch()
    p = make_predictor("zero-cost", space, 0, proxy="snip", batch=lambda a: (torch.full((4, 8), float("nan")),
                                                                              torch.zeros(4, dtype=torch.long)),
                       loss_fn=nn.functional.cross_entropy)
    with pytest.raises(ConfigError, match=r"inputs: .*not finite.*snip"):
        p.fit([{"width": 4}, {"width": 16}, {"width": 64}], [1.0, 2.0, 3.0])


# ------------------------------------------------------------------------------------------- 4. bool targets
@pytest.mark.parametrize("y", [[True, False, True, False], np.array([True, False, True, False]),
                               [1.0, np.bool_(True), 2.0, 3.0]], ids=["bools", "numpy-bools", "one-numpy-bool"])
def test_bool_targets_are_refused_naming_the_indices(y):
    """Old: True and False were taken as 1.0 and 0.0 (while `check_seed` refuses a bool seed)."""
    archs = _small()[:4]
    indices = "[0, 1, 2, 3]" if len(set(map(type, list(y)))) == 1 else "[1]"
    with pytest.raises(ConfigError, match=rf"fit: targets {indices.replace('[', '.').replace(']', '.')} .*bool"):
        make_predictor("rf", SMALL, 0, n_estimators=5).fit(archs, y)


def test_numeric_targets_of_every_dtype_still_fit():
    archs = _small()[:4]
    for y in ([1, 2, 3, 4], np.arange(4, dtype=np.int8), np.arange(4, dtype=np.float32), (1.0, 2.0, 3.0, 4.0)):
        make_predictor("rf", SMALL, 0, n_estimators=5).fit(archs, y)
