"""Regression tests for the hardware cost-model audit (thread check, e2e round trip, plain spaces, device typos,
fit-latency tables, calibration of unseen kinds, static energy)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import nas.nn as nnn
from nas.cli.hardware import app
from nas.errors import ConfigError
from nas.hardware import (Calibration, CostModel, EndToEndLatency, LatencyFitWarning, LatencyTable, adapter_for,
                          build_table)
from nas.spaces.cell import NasBench201Space
from nas.spaces.space import Choice, Space
from tests.synthetic_lut import synthetic_lut

NB201_TINY = {"channels": 4, "cells_per_stage": 1, "stages": 2}
OP_MS = {"none": 0.0, "skip_connect": 0.02, "nor_conv_1x1": 0.3, "nor_conv_3x3": 0.9, "avg_pool_3x3": 0.15}


def _nb201() -> NasBench201Space:
    return NasBench201Space(**NB201_TINY)


def _archs(space, n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return list({a.id: a for a in (space.sample(rng) for _ in range(10 * n))}.values())[:n]


def test_e2e_to_dict_round_trips_every_setting():
    space = _nb201()
    archs = _archs(space, 40)
    rng = np.random.default_rng(0)
    ms = np.array([0.5 + sum(OP_MS[v] for v in a.values()) for a in archs]) * rng.lognormal(0, 0.03, len(archs))
    ms[[5, 17]] *= 4.0  # kept on purpose: screen=False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatencyFitWarning)
        model = EndToEndLatency(space, screen=False, outlier_factor=3.0, max_screened=0.3, max_mape=0.8,
                                min_tau=0.1, candidates=("ridge", "ridge-log")).fit(archs, ms)
        again = EndToEndLatency.from_dict(space, json.loads(json.dumps(model.to_dict())))
    for name in ("screen", "outlier_factor", "max_screened", "max_mape", "min_tau", "candidates", "folds", "seed"):
        assert getattr(again, name) == getattr(model, name), name
    assert again.screened == model.screened == []
    np.testing.assert_allclose(again.predict(archs), model.predict(archs))


def test_threads_none_table_records_the_count_used_and_cost_models_check_it(tmp_path):
    space = _nb201()
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        table = build_table(adapter_for(space), tmp_path / "auto.jsonl", threads=None, warmup=0, repeats=1, rounds=1,
                            limit=2)
        assert table.header["threads"] == 2
        assert LatencyTable.load(tmp_path / "auto.jsonl").header["threads"] == 2
        with pytest.raises(ConfigError, match="threads"):
            CostModel(space, latency=table, threads=1)  # 1-thread names for 2-thread figures
        CostModel(space, latency=table, threads=None)  # torch's count now is the count it was timed with
        torch.set_num_threads(1)
        with pytest.raises(ConfigError, match="threads=2"):
            CostModel(space, latency=table, threads=None)
        assert CostModel(space, latency=table, threads=2, qualify=True).provenance.keys() >= {
            "latency_ms.lut.local_cpu.t2"}
    finally:
        torch.set_num_threads(old)


class _MLPSpace(Space):
    def build(self, arch):
        return nn.Sequential(nn.Linear(16, arch["width"]), nn.ReLU(), nn.Linear(arch["width"], 2))


def test_plain_space_with_build_but_no_example_input():
    space = _MLPSpace(width=Choice([8, 16, 32, 64, 128, 256]), depth=Choice([1, 2, 3]))
    archs = _archs(space, 18)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatencyFitWarning)
        e2e = EndToEndLatency(space).fit(archs, [0.01 * a["width"] * a["depth"] + 0.05 for a in archs])
    cost = CostModel(space, latency=e2e)  # the plain-space path: latency_ms only
    assert not cost.counted
    assert set(cost(archs[0])) == {"latency_ms"}
    with pytest.raises(ConfigError, match="example_input"):
        CostModel(space, latency="measured")
    with pytest.raises(ConfigError, match="example_input"):
        CostModel(space)


def test_device_typos_are_refused_by_onboard_and_e2e():
    space = _nb201()
    lut = synthetic_lut(space)
    archs = _archs(space, 12)
    phone = [2.5 * lut.latency_ms(a) + 0.1 for a in archs]
    with pytest.raises(ConfigError, match=r"device.*pixel4_a76"):
        lut.onboard(archs, phone, device="pixel4-a76")
    with pytest.raises(ConfigError, match=r"device.*pixel4_a76"):
        EndToEndLatency(space, device="pixel_4a76")
    assert lut.onboard(archs, phone, device="pixel4_a76").device == "pixel4_a76"
    assert EndToEndLatency(space, device="pixel4_a76").device == "pixel4_a76"


def test_fit_latency_refuses_a_table_of_another_batch_size_and_records_the_table(tmp_path):
    space = _nb201()
    table = tmp_path / "b2.jsonl"
    build_table(adapter_for(space), table, batch_size=2, warmup=0, repeats=1, rounds=1)
    samples = tmp_path / "samples.jsonl"
    rng = np.random.default_rng(0)
    samples.write_text("".join(json.dumps({"arch": a.to_dict(), "latency_ms": 0.5 + sum(OP_MS[v] for v in a.values())
                                           * float(rng.lognormal(0, 0.03))}) + "\n" for a in _archs(space, 30)))
    args = ["fit-latency", "nb201", str(samples), "--options", json.dumps(NB201_TINY), "--table", str(table)]
    runner = CliRunner()
    bad = runner.invoke(app, args + ["--batch-size", "1"])
    assert bad.exit_code == 2 and "--table" in bad.output and "--batch-size" in bad.output, bad.output
    out = tmp_path / "model.json"
    good = runner.invoke(app, args + ["--batch-size", "2", "--out", str(out)])
    assert good.exit_code == 0, good.output
    data = json.loads(out.read_text())
    source = data["feature_sources"]["table_ms"]
    assert source["table"] == str(table) and source["batch_size"] == 2 and source["statistic"] == "median"
    assert data["provenance"]["feature_sources"]["table_ms"]["threads"] == 1


class _PoolNet(nnn.ModelSpace):
    input_shape = (4, 32)

    def __init__(self):
        super().__init__()
        w = nnn.Choice("w", [8, 16, 24, 32])
        self.inp = nnn.Conv1d(4, w, 3, padding=1)
        self.op = nnn.LayerChoice({"conv": nnn.Conv1d(w, w, 3, padding=1),
                                   "pool": nn.MaxPool1d(3, stride=1, padding=1)}, label="op")
        self.head = nnn.Linear(w, 3)

    def forward(self, x):
        return self.head(self.op(self.inp(x)).mean(-1))


def test_calibration_gives_unseen_kinds_the_shared_scale():
    space = _PoolNet.space()
    lut = synthetic_lut(space)
    calib = [space.validate({"w": w, "op": "conv"}) for w in (8, 16, 24, 32)]  # no architecture uses "pool"
    onboarded = lut.onboard(calib, [3.0 * lut.latency_ms(a) for a in calib])
    assert onboarded.calibration.shared_scale == pytest.approx(3.0, rel=1e-6)
    pool = space.validate({"w": 8, "op": "pool"})
    with pytest.warns(LatencyFitWarning, match="MaxPool1d"):
        got = onboarded.latency_ms(pool)
    assert got == pytest.approx(3.0 * lut.latency_ms(pool), rel=1e-4)
    data = json.loads(json.dumps(onboarded.calibration.to_dict()))
    assert Calibration.from_dict(data) == onboarded.calibration
    del data["shared_scale"]  # a calibration written before it was stored: the mean scale
    old = Calibration.from_dict(data)
    assert old.shared_scale is None and old.unseen_scale == pytest.approx(np.mean(list(data["scales"].values())))


def test_analytic_energy_charges_static_power_over_the_roofline_bound_without_a_latency_model(tmp_path):
    path = tmp_path / "npu.json"
    path.write_text(json.dumps({"name": "npu", "description": "an NPU", "kind": "npu", "torch_device": "cpu",
                                "peak_flops": {"float32": 2e12}, "memory_bandwidth": 50e9, "tdp_w": 5,
                                "energy_pj_per_byte": 20, "static_power_w": 2.0}))
    net = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    cost = CostModel(device=str(path), energy="analytic")
    rep = cost.report(net, inputs=torch.randn(8, 256))
    energy, bound = rep.details["energy"], rep.metrics["latency_roofline_ms"]
    assert energy["static_mj"] == pytest.approx(2.0 * bound)
    assert energy["static_latency_from"] == "roofline lower bound"
    assert rep.metrics["energy_est_mj"] == pytest.approx(energy["compute_mj"] + energy["memory_mj"] + 2.0 * bound)
    assert rep.provenance["energy_est_mj"]["static_latency"] == "roofline lower bound"
