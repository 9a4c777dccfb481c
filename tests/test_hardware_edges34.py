"""Hardware cost-model edges found by the hwflow explorer: learned latency on `nas.nn` layer options, tables from
another machine, dtypes a profile has no peak for, corrupt table timings, per-call FLOPs of a reused layer,
`round_min` through `MeasuredLatency`, `CostModel` settings, build chunks, training-only OFA settings, and the
thread check of onboarded models."""

from __future__ import annotations

import json
import math
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError
from nas.hardware import (CostModel, LatencyTable, LayerConfig, LayerLatencyModel, MeasuredLatency, adapter_for,
                          build_table, cost, count_flops, count_leaves, lut_latency)
from nas.hardware import lut
from nas.hardware.latency import host_info
from nas.hardware.learned import layer_features, layer_group
from nas.hardware.lut import HostMismatchWarning, TableEntry
from nas.spaces.cell import NasBench201Space
from nas.spaces.ofa import OFAConfig, OFASpace

pytestmark = pytest.mark.usefixtures("one_thread")

NB201_TINY = {"channels": 4, "cells_per_stage": 1, "stages": 2}
SMALL_OFA = dict(stage_channels=(8, 8, 8), head_channels=16, expands=(2, 3), kernels=(3, 5), widths=(0.5, 1.0),
                 resolutions=(32, 40))


def _entries(adapter, per_layer_ms: float = 0.01, conv_ms: float = 0.0) -> list[TableEntry]:
    """Stand-in timings for every distinct layer of `adapter`'s space (no counts: none are needed here)."""
    return [TableEntry(layer, ms, ms, ms, ms, ms, 0, 0, 0, None, ms)
            for layer in adapter.distinct_layers()
            for ms in [per_layer_ms + conv_ms * ("conv" in layer.key)]]


def _table(space, **header) -> LatencyTable:
    adapter = adapter_for(space)
    return LatencyTable({"adapter": adapter.describe(), "batch_size": 1, "device": "local_cpu", "threads": 1,
                         **header}, _entries(adapter, conv_ms=0.02), statistic="round_min")


# ---------------------------------------------------------------------------------------------- 1: learned options
def test_learned_latency_takes_sequence_and_none_options_of_nn_layers():
    """A `nas.nn` model's layers carry tuples/lists (`kernel_size=[3]`) and None (`align_corners=null`): sequences
    are flattened into features, None goes into the group; `float()` on them raised a raw TypeError."""
    conv = [LayerConfig.make("Conv1d", (4, 40), in_channels=4, out_channels=c, kernel_size=(k,), padding=[k // 2],
                             bias=False, padding_mode="zeros") for c in (8, 16) for k in (3, 5, 7)]
    up = [LayerConfig.make("Upsample", (4, n), scale_factor=2.0, mode="linear", align_corners=None)
          for n in (10, 20, 40)]
    assert layer_group(up[0]) == "Upsample/align_corners=null/linear"
    assert layer_group(conv[0]) == "Conv1d/zeros"  # numeric sequences are features, not groups
    assert layer_features(conv[0], (100, 10, 1000), 1).tolist()[:5] == [0.0, 4.0, 3.0, 8.0, 1.0]
    layers = conv + up
    counts = [(100 * (i + 1), 10, 1000) for i in range(len(layers))]
    model = LayerLatencyModel(n_estimators=5).fit(layers, counts, [0.01 * (i + 1) for i in range(len(layers))], 1)
    assert model.samples == {"Conv1d/zeros": 6, "Upsample/align_corners=null/linear": 3}
    assert model.predict(conv[0], counts[0]) > 0 and model.predict(up[1], counts[7]) > 0


def test_learned_latency_names_a_group_whose_layers_have_features_of_different_lengths():
    layers = [LayerConfig.make("Pool", (4, 40), kernel_size=[3]), LayerConfig.make("Pool", (4, 40), kernel_size=[3, 3])]
    with pytest.raises(ConfigError, match=r"group 'Pool' have features of different lengths "
                       r"\(Pool\(kernel_size=\[3\]\)@4x40: 7, Pool\(kernel_size=\[3, 3\]\)@4x40: 8\)"):
        LayerLatencyModel(n_estimators=5).fit(layers, [(1, 1, 1)] * 2, [0.1, 0.2], 1)


# ---------------------------------------------------------------------------------------------- 2: another host
def test_a_table_timed_on_another_machine_warns_once_naming_both():
    space = NasBench201Space(**NB201_TINY)
    laptop = f"Apple M2 Max {uuid.uuid4().hex[:6]}"  # unique: each message is given once per process
    table = _table(space, host={"cpu": laptop, "torch": "1.13.1", "platform": "macOS"}, torch_device="cpu")
    with pytest.warns(HostMismatchWarning) as caught:
        CostModel(space, device="cpu", latency=table)
    text = str(caught[0].message)
    assert laptop in text and host_info()["cpu"] in text and "torch: table 1.13" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error", HostMismatchWarning)
        CostModel(space, device="cpu", latency=table)  # once
        # this machine's own host, a header without host (made in code), another device's table: no warning
        CostModel(space, device="cpu", latency=_table(space, host=host_info(), torch_device="cpu"))
        CostModel(space, device="cpu", latency=_table(space))
        lut_latency(_table(space, host={"cpu": laptop + "x"}, device="pixel4_a76"), adapter_for(space))


def test_a_table_from_another_torch_version_warns():
    space = NasBench201Space(**NB201_TINY)
    here = host_info()
    old = "0." + uuid.uuid4().hex[:4]  # a torch major.minor nobody runs
    with pytest.warns(HostMismatchWarning, match=rf"torch: table {old}, here"):
        LayerLatencyModel.from_table(_table(space, host={**here, "torch": old + ".1"}), n_estimators=5)


# ---------------------------------------------------------------------------------------------- 3: dtypes
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_counts_come_back_for_a_dtype_the_profile_has_no_peak_for(dtype):
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(dtype)
    x = torch.randn(8, 64, dtype=dtype)
    name = str(dtype).removeprefix("torch.")
    with pytest.warns(UserWarning, match=f"left out for a {name} network"):
        metrics = cost(net, inputs=x)
    assert metrics == {"params": 4810.0, "flops": 75776.0, "macs": 37888.0}
    model = CostModel(device="cpu", energy="analytic")
    with pytest.warns(UserWarning):
        report = model.report(net, inputs=x)
    assert "latency_roofline_ms" not in report.metrics and "energy_est_mj" not in report.metrics
    assert report.metrics["flops"] == 75776.0
    assert "no peak FLOP/s for dtype" in report.details["roofline"]["skipped"]
    assert name in model.provenance["latency_roofline_ms"]["skipped"]  # recorded, per dtype
    assert name in model.provenance["energy_est_mj"]["skipped"]
    fp32 = model.report(net.float(), inputs=x.float())  # float32 is still priced
    assert fp32.metrics["latency_roofline_ms"] > 0 and fp32.metrics["energy_est_mj"] > 0


# ---------------------------------------------------------------------------------------------- 4: corrupt timings
@pytest.mark.parametrize("bad", [-5.0, float("nan"), float("inf"), "1.5", True])
def test_a_table_line_with_a_bad_timing_is_refused_naming_line_and_field(tmp_path, bad):
    space = NasBench201Space(**NB201_TINY)
    adapter = adapter_for(space)
    rows = [e.to_dict() for e in _entries(adapter)]
    rows[1]["p90_ms"] = bad
    header = {"format": lut.FORMAT, "version": lut.VERSION, "adapter": adapter.describe(), "batch_size": 1,
              "device": "local_cpu", "threads": 1}
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [header, *rows]) + "\n")
    with pytest.raises(ConfigError, match=rf"{path.name}: line 3 is not a valid entry \(p90_ms: expected a finite"):
        LatencyTable.load(path)
    rows[1]["p90_ms"] = 0.0  # 0 is a timing (a layer that launches no GPU work)
    path.write_text("\n".join(json.dumps(r) for r in [header, *rows]) + "\n")
    assert len(LatencyTable.load(path)) == len(rows)


# ---------------------------------------------------------------------------------------------- 5: per-call FLOPs
def test_count_leaves_gives_each_call_of_a_reused_layer_its_own_flops():
    class Pyramid(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv2d(3, 3, 1)
            self.head = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self.c(x).mean(dim=(2, 3))
            b = self.c(F.avg_pool2d(x, 2)).mean(dim=(2, 3))
            return self.head(a + b)

    x = torch.randn(1, 3, 8, 8)
    leaves = count_leaves(Pyramid(), x)
    assert [(leaf.type, leaf.flops) for leaf in leaves] == [("Conv2d", 2 * 3 * 3 * 64), ("Conv2d", 2 * 3 * 3 * 16),
                                                            ("Linear", 2 * 3 * 2)]
    assert sum(leaf.flops for leaf in leaves) == count_flops(Pyramid(), x)["flops"]
    assert [leaf.params for leaf in leaves] == [12, 0, 8]  # the shared conv's parameters once


# ---------------------------------------------------------------------------------------------- 6: round_min
def test_measured_latency_round_min_needs_rounds_and_times_them():
    with pytest.raises(ConfigError, match="statistic: 'round_min' over one round is the plain min; give rounds"):
        MeasuredLatency(None, statistic="round_min")
    with pytest.raises(ConfigError, match="rounds"):
        MeasuredLatency(None, rounds=0)
    ml = MeasuredLatency(None, statistic="round_min", rounds=3, warmup=0, repeats=2)
    model = CostModel(device="cpu", latency=ml)
    net, x = nn.Linear(8, 8), torch.zeros(1, 8)
    report = model.report(net, inputs=x)
    assert report.details["latency"]["rounds"] == 3 and report.details["latency"]["repeats"] == 2
    assert len(model.latency.last.times_ms) == 6
    assert report.metrics["latency_ms"] == pytest.approx(model.latency.last.round_min_ms)
    assert model.provenance["latency_ms"]["device"] == "local_cpu"  # was None when given a MeasuredLatency
    assert model.provenance["latency_ms"]["rounds"] == 3


def test_a_measured_latency_on_another_torch_device_is_refused():
    ml = MeasuredLatency(None, torch_device="cuda:0")
    with pytest.raises(ConfigError, match="MeasuredLatency times on 'cuda:0', this cost model is on 'cpu'"):
        CostModel(device="cpu", latency=ml)


# ---------------------------------------------------------------------------------------------- 7: settings
@pytest.mark.parametrize("kw, field", [({"latency": "measured", "repeats": 0}, "repeats"),
                                       ({"latency": "measured", "warmup": -1}, "warmup"),
                                       ({"cache": -5}, "cache"),
                                       ({"energy": "analytic", "energy_seconds": -1.0}, "energy_seconds"),
                                       ({"energy_seconds": float("nan")}, "energy_seconds"),
                                       ({"repeats": 2.5}, "repeats")])
def test_cost_model_refuses_bad_settings_at_construction(kw, field):
    space = NasBench201Space(**NB201_TINY)
    with pytest.raises(ConfigError, match=rf"^{field}: expected"):
        CostModel(space, device="cpu", **kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_measured_latency_on_cuda_without_a_gpu_is_refused_at_construction():
    with pytest.raises(ConfigError, match="device 'cuda': CUDA is not available"):
        CostModel(NasBench201Space(**NB201_TINY), device="cuda", latency="measured")


# ---------------------------------------------------------------------------------------------- 8: build chunks
def test_an_interrupted_build_keeps_its_timed_chunks_and_reports_progress_every_round(tmp_path, monkeypatch):
    """The bar stayed at 0/795 for a whole OFA build (one 1,024-layer chunk): it moves each interleaved round now,
    and an interrupted build keeps the chunks it wrote (64 layers here, to interrupt mid-build cheaply)."""
    adapter = adapter_for(OFASpace())
    total = len(adapter.distinct_layers())
    calls = []

    def fake_measure(adapter, layers, rounds=20, on_round=None, **kwargs):  # instant timings; Ctrl-C in chunk 3
        calls.append(len(layers))
        for r in range(1, rounds + 1):
            on_round(r)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return [TableEntry(layer, 0.01, 0.01, 0.01, 0.01, 0.01, 0, 0, 0, None, 0.01) for layer in layers]

    monkeypatch.setattr(lut, "measure_layers", fake_measure)
    monkeypatch.setattr(lut, "CHUNK", 64)
    seen = []
    path = tmp_path / "ofa.jsonl"
    with pytest.raises(KeyboardInterrupt):
        build_table(adapter, path, rounds=4, progress=lambda done, n: seen.append((done, n)))
    assert seen[:5] == [(0 + 64 * r // 4, total) for r in range(1, 4)] + [(64, total), (64 + 16, total)]
    assert len(LatencyTable.load(path)) == 2 * 64
    table = build_table(adapter, path, rounds=4)  # resumed: the rest, every layer once
    assert len(table) == total and len(path.read_text().splitlines()) == total + 1


# ---------------------------------------------------------------------------------------------- 9: training-only
def test_an_ofa_table_serves_spaces_differing_only_in_training_settings(tmp_path, monkeypatch):
    base = OFASpace(OFAConfig(**SMALL_OFA))
    table = _table(base)
    old_header = {**table.header, "adapter": {**table.header["adapter"],  # as tables recorded before: the whole config
                                              "config": base.config.to_dict()}}
    old = LatencyTable(old_header, table.entries.values())
    arch = base.sample(np.random.default_rng(0))
    for change in ({"dropout": 0.2}, {"zero_init_residual": True}):
        space = OFASpace(OFAConfig(**SMALL_OFA, **change))
        for t in (table, old):
            assert CostModel(space, device="cpu", latency=t)(arch)["latency_ms"] > 0
    wider = OFASpace(OFAConfig(**{**SMALL_OFA, "head_channels": 24}))  # a shape field still counts
    with pytest.raises(ConfigError, match="config.head_channels: table 16, space 24"):
        CostModel(wider, device="cpu", latency=old)
    # resuming a file whose header holds dropout 0.0 for a space with dropout 0.2
    monkeypatch.setattr(lut, "measure_layers", lambda adapter, layers, **kw: _entries_for(layers))
    path = tmp_path / "ofa.jsonl"
    build_table(adapter_for(base), path, limit=3)
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    header["adapter"]["config"] = base.config.to_dict()
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    dropped = OFASpace(OFAConfig(**SMALL_OFA, dropout=0.2))
    assert len(build_table(adapter_for(dropped), path, limit=2)) == 5
    with pytest.raises(ConfigError, match="built for another space.*head_channels"):
        build_table(adapter_for(wider), path, limit=1)


def _entries_for(layers):
    return [TableEntry(layer, 0.01, 0.01, 0.01, 0.01, 0.01, 0, 0, 0, None, 0.01) for layer in layers]


# ---------------------------------------------------------------------------------------------- 10: onboarded threads
def test_an_onboarded_model_keeps_the_thread_check():
    space = NasBench201Space(**NB201_TINY)
    lut_model = lut_latency(_table(space), adapter_for(space))
    rng = np.random.default_rng(0)
    archs = list({a.id: a for a in (space.sample(rng) for _ in range(100))}.values())[:12]
    measured = [1.2 * lut_model.latency_ms(a) + 0.05 for a in archs]
    onboarded = lut_model.onboard(archs, measured)  # same device: the base table's 1 thread
    assert onboarded.provenance()["threads"] == 1
    with pytest.raises(ConfigError, match=r"timed with threads=1.*onboard\(\.\.\., threads=4\)"):
        CostModel(space, device="cpu", latency=onboarded, threads=4, qualify=True)
    assert CostModel(space, device="cpu", latency=onboarded)(archs[0])["latency_ms"] > 0
    on4 = lut_model.onboard(archs, measured, threads=4)  # measured on 4 threads: priced on 4, refused on 1
    assert CostModel(space, device="cpu", latency=on4, threads=4)(archs[0])["latency_ms"] > 0
    with pytest.raises(ConfigError, match="timed with threads=4"):
        CostModel(space, device="cpu", latency=on4)
    phone = lut_model.onboard(archs, measured, device="pixel4_a76")  # another device: threads unknown unless given
    assert phone.provenance()["threads"] is None and phone.provenance()["base_threads"] == 1
    assert CostModel(space, device="pixel4_a76", latency=phone, threads=4)(archs[0])["latency_ms"] > 0
    with pytest.raises(ConfigError, match="threads"):
        lut_model.onboard(archs, measured, threads=0)
    assert math.isfinite(onboarded.latency_ms(archs[1]))


def test_doc_examples_of_this_page_include_measure_latency_count_flops_and_list_devices():
    page = (Path(__file__).resolve().parents[1] / "docs" / "hardware.md").read_text()
    import re

    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    for name in ("measure_latency(", "count_flops(", "list_devices()"):
        assert any(name in b for b in blocks), name
