"""Edge cases of the seed systems (explore35): NEAS's returned supernet on resume and its evaluator's arguments,
Net2Net's `widen` width check, and the Subset out-of-order hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ConfigError, InvalidArchitectureError
from nas.modelspec import DataRef, record_model
from nas.neas import ChainConfig, EnsembleSupernet, search_neas
from nas.spaces import Space, Subset
from nas.spaces.net2net import widen
from tests.test_neas import _data  # signals whose class is the position of a bump

TINY = ChainConfig(stem_channels=4, channels=(4, 8), strides=(2, 2), kernels=(3, 5), expands=(1, 2),
                   head_channels=8)
N = 64  # signals per split
OPTS = dict(warmup_epochs=1, epochs_per_round=1, rounds=1, drop=1, paths=6, groups=1, batch_size=16,
            calib_size=32, budget=3)


def _record(wd, result) -> None:
    record_model(wd, result.space, supernet=EnsembleSupernet(result.space, result.supernet),
                 data=DataRef.of(_data, n=N, seed=0), calibration={"split": "train", "size": 32, "batch_size": 16},
                 metrics={"accuracy": {"kind": "accuracy", "split": "valid"}})


# ---------------------------------------------------------------------------------------- D1
def test_a_resumed_neas_search_returns_the_same_supernet_and_records_again(tmp_path, one_thread):
    """The final search rates architectures (recalibrating batch norm) without changing the returned supernet, so
    calling again on the finished workdir returns the same one, and the docs' record_model works on the rerun."""
    wd = tmp_path / "run"
    fresh = search_neas(_data(N), TINY, seed=0, workdir=wd, **OPTS)
    first = {k: v.clone() for k, v in fresh.supernet.state_dict().items()}
    _record(wd, fresh)
    again = search_neas(_data(N), TINY, seed=0, workdir=wd, **OPTS)  # finished: resumes and rates nothing
    second = again.supernet.state_dict()
    assert first.keys() == second.keys()
    differ = [k for k in first if not torch.equal(first[k], second[k])]
    assert differ == []
    _record(wd, again)  # the same weights: accepted


def test_the_neas_evaluator_leaves_the_supernet_unchanged(tmp_path, one_thread):
    result = search_neas(_data(N), TINY, seed=0, **OPTS)
    before = {k: v.clone() for k, v in result.supernet.state_dict().items()}
    member = result.space.member_space.sample(np.random.default_rng(3))
    result.evaluator.accuracy(member)
    assert all(torch.equal(before[k], v) for k, v in result.supernet.state_dict().items())


# ---------------------------------------------------------------------------------------- D2
def test_the_neas_evaluator_rates_a_plain_dict_member_and_points_an_ensemble_elsewhere(one_thread):
    result = search_neas(_data(N), TINY, seed=0, **OPTS)
    member = result.best.to_dict()["members"][0]
    assert isinstance(member, dict)
    ev = result.evaluator
    assert ev.accuracy(member) == ev.accuracy(Architecture(member))
    assert ev.accuracy(member, "test") == ev.accuracy(Architecture(member), "test")
    members = result.best.to_dict()["members"]
    assert ev.ensemble_accuracy(members) == ev.ensemble_accuracy([Architecture(m) for m in members])
    with pytest.raises(ConfigError, match=r"^arch: .*ensemble.*ensemble_accuracy"):
        ev.accuracy(result.best)
    with pytest.raises(ConfigError, match=r"^arch: .*ensemble_accuracy"):
        ev.accuracy(result.best.to_dict())
    with pytest.raises(InvalidArchitectureError, match=r"^layer0: "):
        ev.accuracy({**member, "layer0": "k9e9"})


# ---------------------------------------------------------------------------------------- D5
def _stack() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


@pytest.mark.parametrize("width", [6.5, "8", np.float64(6.0), True, None, 0, -2])
def test_widen_refuses_a_width_that_is_not_a_positive_int_naming_it(width):
    with pytest.raises(ConfigError, match=r"^width: expected a positive int"):
        widen(_stack(), 0, width, np.random.default_rng(0))


def test_widen_takes_a_numpy_int_width():
    stack = _stack()
    out = widen(stack, 0, np.int64(5), np.random.default_rng(0))
    assert out[0].out_features == 5 and out[2].in_features == 5
    x = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.allclose(out(x), stack(x), atol=1e-6)


# ---------------------------------------------------------------------------------------- D6
def test_a_string_subset_out_of_order_names_the_items_order():
    sp = Space(s=Subset(["c", "a", "b", "d"], k=2))
    with pytest.raises(InvalidArchitectureError) as err:
        sp.validate({"s": ["a", "c"]})
    message = str(err.value)
    assert "sorted" not in message
    assert "['c', 'a', 'b', 'd']" in message and "['c', 'a']" in message
    assert list(sp.validate({"s": ["c", "a"]})["s"]) == ["c", "a"]


def test_an_int_subset_out_of_order_suggests_sorting():
    sp = Space(s=Subset([1, 4, 7], k=2))
    with pytest.raises(InvalidArchitectureError, match=r"e\.g\. sorted.*\[1, 7\]"):
        sp.validate({"s": [7, 1]})
    assert list(sp.validate({"s": [1, 7]})["s"]) == [1, 7]
