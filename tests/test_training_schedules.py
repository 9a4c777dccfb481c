"""Training schedules refuse nonsense settings with a ConfigError naming the field, before any training."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from nas.errors import ConfigError
from nas.spaces.ofa import OFAConfig, OFASpace
from nas.spaces.training import (Phase, PlainTraining, ProgressiveShrinking, SandwichRule, SinglePath, accuracy,
                                 ofa_phases, run_phase)

TINY = OFAConfig(stem_channels=4, stage_channels=(4, 6), stage_strides=(2, 2), depths=(1, 2), kernels=(3, 5),
                 expands=(1, 2), widths=(0.5, 1.0), head_channels=8, resolutions=(32, 40))

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 40, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def _weights(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _unchanged(module: nn.Module, before: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("make, match", [
    (lambda: SandwichRule(epochs=-1), r"SandwichRule\.epochs: expected an int >= 1, got -1"),
    (lambda: SandwichRule(epochs=0), r"SandwichRule\.epochs"),
    (lambda: SandwichRule(epochs=2.5), r"SandwichRule\.epochs"),
    (lambda: SandwichRule(n_random=-1), r"SandwichRule\.n_random: expected an int >= 0, got -1"),
    (lambda: SandwichRule(batch_size=1), r"SandwichRule\.batch_size"),
    (lambda: SandwichRule(lr=0.0), r"SandwichRule\.lr"),
    (lambda: SandwichRule(lr=float("nan")), r"SandwichRule\.lr"),
    (lambda: SandwichRule(weight_decay=-1e-4), r"SandwichRule\.weight_decay"),
    (lambda: SandwichRule(temperature=0), r"SandwichRule\.temperature"),
    (lambda: SandwichRule(seed=-1), r"SandwichRule\.seed"),
    (lambda: SandwichRule(per_step="resolution"), r"SandwichRule\.per_step: expected a collection"),
    (lambda: SandwichRule(per_step=(1,)), r"SandwichRule\.per_step: expected decision names"),
    (lambda: PlainTraining(-3), r"PlainTraining\.epochs: expected an int >= 1, got -3"),
    (lambda: PlainTraining(batch_size=True), r"PlainTraining\.batch_size"),
    (lambda: PlainTraining(lr=-1.0), r"PlainTraining\.lr"),
    (lambda: SinglePath(epochs=-1), r"SinglePath\.epochs"),
    (lambda: SinglePath(seed=-1), r"SinglePath\.seed"),
    (lambda: ofa_phases(-1, 1, 1, 1), r"ofa_phases\.full: expected an int >= 1, got -1"),
    (lambda: ofa_phases(1, 1, 0, 1), r"ofa_phases\.depth"),
    (lambda: ofa_phases(lr=0), r"ofa_phases\.lr"),
    (lambda: Phase("full", frozenset({"resolution"}), -1, 1e-3), r"Phase 'full'\.epochs"),
    (lambda: Phase("full", "kernel", 1, 1e-3), r"Phase 'full'\.elastic"),
    (lambda: Phase("full", frozenset(), 1, 0.0), r"Phase 'full'\.lr"),
    (lambda: Phase("full", frozenset(), 1, 1e-3, sort_channels=1), r"Phase 'full'\.sort_channels"),
    (lambda: ProgressiveShrinking(phases=()), r"ProgressiveShrinking\.phases: give at least one phase"),
    (lambda: ProgressiveShrinking(phases=("full",)), r"ProgressiveShrinking\.phases: expected Phase"),
    (lambda: ProgressiveShrinking(subnets_per_step=0), r"ProgressiveShrinking\.subnets_per_step"),
    (lambda: ProgressiveShrinking(kd_ratio=-1.0), r"ProgressiveShrinking\.kd_ratio"),
    (lambda: ProgressiveShrinking(include_largest=1), r"ProgressiveShrinking\.include_largest"),
    (lambda: ProgressiveShrinking(batch_size=0), r"ProgressiveShrinking\.batch_size"),
    (lambda: ProgressiveShrinking(temperature=-1.0), r"ProgressiveShrinking\.temperature"),
    (lambda: ProgressiveShrinking(per_step="resolution"), r"ProgressiveShrinking\.per_step"),
    (lambda: ProgressiveShrinking(after_phase="print"), r"ProgressiveShrinking\.after_phase"),
])
def test_schedules_refuse_bad_settings_at_construction(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_good_settings_are_kept_and_normalised():
    rule = SandwichRule(epochs=1, n_random=0, batch_size=32, lr=np.float32(1e-2), per_step=["resolution"])
    assert rule.per_step == frozenset({"resolution"}) and rule.n_random == 0
    ps = ProgressiveShrinking(list(ofa_phases(1, 1, 1, 1)), per_step=())
    assert isinstance(ps.phases, tuple) and ps.per_step == frozenset()
    assert Phase("p", ["kernel"], 1, 1e-3).elastic == frozenset({"kernel"})


@pytest.mark.parametrize("make", [
    lambda: SandwichRule(epochs=1, batch_size=32, per_step=("resolutoin",)),
    lambda: ProgressiveShrinking(ofa_phases(1, 1, 1, 1), batch_size=32, per_step=("resolutoin",)),
    lambda: SandwichRule(epochs=1, batch_size=32, per_step=("kernel",)),  # not a top-level decision
])
def test_per_step_typo_is_refused_before_training(make):
    net = OFASpace(TINY).supernet()
    before = _weights(net)
    with pytest.raises(ConfigError, match=r"per_step: unknown decision '(resolutoin|kernel)'.*resolution, stages"):
        make().fit(net, *_data())
    assert _unchanged(net, before)


def test_explicit_per_step_trains_like_the_default():
    space = OFASpace(TINY)
    torch.manual_seed(0)
    a = space.supernet()
    b = copy.deepcopy(a)
    x, y = _data()
    SandwichRule(epochs=1, n_random=1, batch_size=32).fit(a, x, y)
    SandwichRule(epochs=1, n_random=1, batch_size=32, per_step=("resolution",)).fit(b, x, y)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_unknown_elastic_dimension_fails_before_the_first_phase_trains():
    net = OFASpace(TINY).supernet()
    before = _weights(net)
    phases = (Phase("full", frozenset({"resolution"}), 1, 1e-3), Phase("kernel", frozenset({"kernal"}), 1, 1e-3))
    with pytest.raises(ConfigError, match=r"Phase 'kernel': elastic: unknown dimensions \['kernal'\]"):
        ProgressiveShrinking(phases, batch_size=32).fit(net, *_data())
    assert _unchanged(net, before)


def test_run_phase_refuses_epochs_below_one():
    net = nn.Sequential(nn.Linear(40, 10))
    with pytest.raises(ConfigError, match=r"^epochs: expected an int >= 1, got 0"):
        run_phase("p", net, *_data(), 0, 32, 1e-3, 0.0, torch.Generator(), lambda xb, yb: torch.zeros(()))


def test_accuracy_refuses_an_empty_split():
    net = nn.Linear(40, 10).eval()
    x, y = _data()
    with pytest.raises(ConfigError, match="at least one input"):
        accuracy(net, x[:0], y[:0])
    with pytest.raises(ConfigError, match="10 labels for 64 inputs"):
        accuracy(net, x, y[:10])
