"""Edge cases of the cost models and predictors: counting a module that returns a view of its own parameter,
timing that leaves the caller's module as it was, non-finite measured latencies, per-field CSV samples of a
space with a Conditional field, all-equal end-to-end latencies, and predictor seeds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.counts import count, count_flops, count_leaves
from nas.errors import ConfigError
from nas.hardware import (CostModel, DegenerateFitError, EndToEndLatency, LayerLatencyModel, adapter_for,
                          measure_latencies, measure_latency)
from nas.hardware.e2e_latency import load_samples
from nas.hardware.energy import measure_energy
from nas.hardware.learned import fit_calibration
from nas.predictors import make_predictor
from nas.spaces import Choice, Conditional, Space


# ------------------------------------------------------------------------------------------ 1. counting
class LearnedPos(nn.Module):
    """A learned positional embedding: its forward returns a slice (a view) of its own parameter."""

    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, length, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight[:, : x.size(1)]


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.pos, self.head = nn.Linear(8, 16), LearnedPos(32, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        return self.head(h + self.pos(h)).mean(1)


class Slice(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :2]


def _torch_flops(module: nn.Module, x: Any) -> int:
    with FlopCounterMode(display=False) as fc:
        module(x)
    return int(fc.get_total_flops())


def test_counts_a_module_returning_a_view_of_its_parameter() -> None:
    net, x = Tiny(), torch.randn(2, 10, 8)
    net.train()
    net.pos.eval()  # a mixed mode, restored submodule by submodule
    expected = _torch_flops(net, x)
    assert count(net, x) == {"params": float(sum(p.numel() for p in net.parameters())),
                             "flops": float(expected), "macs": float(expected // 2)}
    assert count_flops(net, x)["flops"] == expected
    assert sum(leaf.flops for leaf in count_leaves(net, x)) == expected
    # nothing about the module changed: modes, requires_grad, no gradient, and grad mode is back on
    assert net.training and net.emb.training and not net.pos.training
    assert all(p.requires_grad and p.grad is None for p in net.parameters())
    assert torch.is_grad_enabled()


def test_counts_an_input_that_requires_grad() -> None:
    x = torch.randn(3, 4, requires_grad=True)
    assert count(Slice(), x)["flops"] == 0.0
    assert x.requires_grad and x.grad is None


# ---------------------------------------------------------------------- 2. timing restores the module
def _training_net() -> nn.Module:
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5)).train()
    net[1].eval()  # a frozen batch norm inside a model in training: kept as it is too
    return net


def _modes(net: nn.Module) -> list[bool]:
    return [m.training for m in net.modules()]


@pytest.mark.parametrize("measure", [
    lambda n, x: measure_latency(n, x, warmup=0, repeats=2),
    lambda n, x: measure_latencies([(n, x), (n, x)], warmup=0, repeats=1, rounds=2),
    lambda n, x: CostModel(latency="measured", repeats=2, warmup=0)(n, x),
], ids=["measure_latency", "measure_latencies", "CostModel-measured"])
def test_timing_restores_train_mode(measure: Any) -> None:
    net, x = _training_net(), torch.randn(8, 4)
    before = _modes(net)
    measure(net, x)
    assert _modes(net) == before == [True, True, False, True]


class _Meter:
    source = "fake"

    def start(self) -> None:
        pass

    def stop(self) -> float:
        return 1.0


def test_energy_restores_train_mode() -> None:
    net = _training_net()
    measure_energy(net, torch.randn(8, 4), meter=_Meter(), min_seconds=0.0, warmup=0)
    assert _modes(net) == [True, True, False, True]


class _Fails(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            raise RuntimeError("boom")
        return x


def test_timing_restores_train_mode_after_an_error() -> None:
    net = nn.Sequential(nn.Linear(4, 4), _Fails()).train()
    with pytest.raises(RuntimeError, match="boom"):
        measure_latency(net, torch.randn(2, 4), warmup=0, repeats=1)
    assert _modes(net) == [True, True, True]


# --------------------------------------------------------------------- 3. non-finite measured latencies
@pytest.mark.parametrize("bad", [math.inf, math.nan, 0.0, -1.0])
def test_calibration_refuses_non_finite_latency_naming_the_sample(bad: float) -> None:
    by_kind = [{"conv": 1.0 + i} for i in range(5)]
    with pytest.raises(ConfigError, match=r"measured_ms: .*positive finite.*sample 2: " + repr(bad)):
        fit_calibration(by_kind, [2.0, 3.0, bad, 5.0, 6.0])


def test_lut_onboard_refuses_an_infinite_latency() -> None:
    from nas.spaces.cell import NasBench201Space

    from tests.synthetic_lut import synthetic_lut

    space = NasBench201Space(channels=4, cells_per_stage=1, stages=2)
    lut = synthetic_lut(space)
    rng = np.random.default_rng(0)
    archs = list({a.id: a for a in (space.sample(rng) for _ in range(40))}.values())[:3]
    true = [2.0 * lut.latency_ms(a) + 0.05 for a in archs]
    for n in (3, 2):  # at N = 3 the inf sample got weight 0 and the fit was accepted; at N = 2 a misleading error
        with pytest.raises(ConfigError, match=r"positive finite milliseconds \(sample 0: inf\)"):
            lut.onboard(archs[:n], [math.inf] + true[1:n])


def test_layer_model_refuses_an_infinite_latency_naming_the_sample() -> None:
    from nas.spaces.cell import NasBench201Space

    adapter = adapter_for(NasBench201Space(channels=4, cells_per_stage=1, stages=2))
    layers = list(adapter.distinct_layers())[:3]
    with pytest.raises(ConfigError, match=r"latency_ms: .*sample 1: inf"):
        LayerLatencyModel(n_estimators=2).fit(layers, [(1000, 10, 100)] * 3, [0.1, math.inf, 0.2], batch_size=1)


# ------------------------------------------------------------------- 4. per-field CSV with a Conditional
COND = Space(op=Choice(["conv", "pool"]), kernel=Conditional("op", "conv", Choice([3, 5])), width=Choice([16, 32]))


@pytest.mark.parametrize("inactive", ["", "null"])
def test_csv_drops_an_inactive_fields_empty_cell(tmp_path: Path, inactive: str) -> None:
    f = tmp_path / "s.csv"
    f.write_text(f"op,kernel,width,latency_ms\nconv,3,16,1.0\npool,{inactive},32,0.5\n")
    archs, ms = load_samples(f, COND)
    assert [dict(a) for a in archs] == [{"op": "conv", "kernel": 3, "width": 16}, {"op": "pool", "width": 32}]
    assert ms == [1.0, 0.5]


@pytest.mark.parametrize("row, message", [
    ("conv,,16,1.0", r"line 3: kernel: the cell is empty, but the field is active because op='conv'"),
    ("conv,3,,1.0", r"line 3: width: the cell is empty"),
    ("pool,5,16,1.0", r"line 3: kernel: 5 given, but the field is inactive because op='pool'"),
])
def test_csv_names_an_empty_active_field_or_a_value_in_an_inactive_one(tmp_path: Path, row: str,
                                                                       message: str) -> None:
    f = tmp_path / "s.csv"
    f.write_text(f"op,kernel,width,latency_ms\nconv,3,16,1.0\n{row}\n")
    with pytest.raises(ConfigError, match=message):
        load_samples(f, COND)


def test_csv_reads_string_options_that_look_like_json(tmp_path: Path) -> None:
    space = Space(act=Choice(["1", "2"]), flag=Choice(["true", "false"]), w=Choice([1, 2]))
    f = tmp_path / "s.csv"
    f.write_text('act,flag,w,latency_ms\n"1",true,2,1.0\n2,"false",1,2.0\n')
    archs, _ = load_samples(f, space)
    assert [dict(a) for a in archs] == [{"act": "1", "flag": "true", "w": 2}, {"act": "2", "flag": "false", "w": 1}]


# ------------------------------------------------------------------- 5. all-equal end-to-end latencies
E2E = Space(width=Choice([16, 32, 64, 128]), depth=Choice([1, 2, 3, 4]), k=Choice([3, 5]))


def _distinct(n: int) -> list[Any]:
    rng = np.random.default_rng(0)
    return list({a.id: a for a in (E2E.sample(rng) for _ in range(200))}.values())[:n]


def test_end_to_end_refuses_all_equal_latencies() -> None:
    archs = _distinct(20)
    with pytest.raises(DegenerateFitError, match=r"all 20 kept latencies are within 0 % of each other"):
        EndToEndLatency(E2E).fit(archs, [2.0] * len(archs))


def test_end_to_end_still_ranks_varying_latencies() -> None:
    archs = _distinct(30)
    y = [0.1 + a["width"] * a["depth"] * 0.01 * (1.1 if a["k"] == 5 else 1.0) for a in archs]
    model = EndToEndLatency(E2E, candidates=("ridge",)).fit(archs, y)
    small, large = model.predict([{"width": 16, "depth": 1, "k": 3}, {"width": 128, "depth": 4, "k": 5}])
    assert large > 2 * small


# ------------------------------------------------------------------------------------ 6. predictor seeds
SEED_SPACE = Space({f"x{i}": Choice(list(range(4)), ordered=False) for i in range(4)})


@pytest.mark.parametrize("seed", [None, "a", 1.5, True, -1])
def test_predictor_seed_must_be_a_non_negative_int(seed: Any) -> None:
    with pytest.raises(ConfigError, match=r"^seed: expected an int >= 0"):
        make_predictor("rf", SEED_SPACE, seed)


def test_predictor_seed_accepts_numpy_ints() -> None:
    p = make_predictor("rf", SEED_SPACE, np.int64(3), n_estimators=5)
    assert p.seed == 3 and type(p.seed) is int
