"""Hardware cost-model edges from exploratory test report 36: a device profile given by path (end-to-end model round
trip, `fit-latency` and `build-lut --profile PATH`), a learned layer model priced outside its training range or on
another space, latency-table headers, 0 ms and negative counts in tables, the roofline of an architecture against
its built network, and timing a module on the meta device."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from nas.cli.hardware import app
from nas.errors import ConfigError
from nas.hardware import (CostModel, EndToEndLatency, LatencyFitWarning, LatencyTable, LayerLatencyModel, adapter_for,
                          check_decomposition, measure_latency)
from nas.hardware import lut
from nas.hardware.lut import FORMAT, VERSION, TableEntry
from nas.spaces.cell import DartsSpace, NasBench201Space

pytestmark = pytest.mark.usefixtures("one_thread")

NB201_TINY = {"channels": 4, "cells_per_stage": 1, "stages": 2}
OP_MS = {"none": 0.0, "skip_connect": 0.02, "nor_conv_1x1": 0.3, "nor_conv_3x3": 0.9, "avg_pool_3x3": 0.15}


def _nb201(channels: int = 4) -> NasBench201Space:
    return NasBench201Space(**{**NB201_TINY, "channels": channels})


def _archs(space, n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return list({a.id: a for a in (space.sample(rng) for _ in range(10 * n))}.values())[:n]


def _profile(tmp_path: Path, name: str = "mydev", **fields) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, "description": "my board", "kind": "cpu",
                                "peak_flops": {"float32": 1e11}, "memory_bandwidth": 1e10,
                                "energy_pj_per_byte": 10.0, **fields}))
    return path


def _entries(space, zero: str | None = None) -> list[TableEntry]:
    """Stand-in timings for every distinct layer of `space`: 10 µs plus 1 ns per FLOP (`zero`: that layer at 0)."""
    adapter = adapter_for(space)
    out = []
    for layer in adapter.distinct_layers():
        leaves = adapter.layer_counts(layer)
        flops, params, moved = (sum(getattr(x, f) for x in leaves) for f in ("flops", "params", "bytes_moved"))
        ms = 0.0 if layer.key == zero else 0.01 + 1e-6 * flops
        out.append(TableEntry(layer, ms, ms, ms, ms, ms, flops, params, moved, None, ms))
    return out


def _header(space, **changes) -> dict:
    header = {"format": FORMAT, "version": VERSION, "adapter": adapter_for(space).describe(), "torch_device": "cpu",
              "device": "local_cpu", "batch_size": 1, "threads": 1, "dtype": "float32"}
    return {k: v for k, v in {**header, **changes}.items() if v is not ...}


def _write_table(path: Path, header: dict, entries: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in [header, *entries]))
    return path


# ---------------------------------------------------------------------------------------------- 1: profile by path
def test_an_e2e_model_on_a_profile_given_by_path_reloads_from_its_dict(tmp_path):
    space = _nb201()
    archs = _archs(space, 30)
    ms = [0.5 + sum(OP_MS[v] for v in a.values()) for a in archs]
    path = _profile(tmp_path)
    model = EndToEndLatency(space, device=str(path), candidates=("ridge",)).fit(archs, ms)
    assert model.device == "mydev" and model.device_profile is not None
    data = json.loads(json.dumps(model.to_dict()))
    path.unlink()  # the record holds the profile: it reloads wherever the file went
    again = EndToEndLatency.from_dict(space, data)  # raised "device 'mydev': no such profile"
    assert again.device == "mydev" and again.device_profile == model.device_profile
    assert again.latency_ms(archs[0]) == pytest.approx(model.latency_ms(archs[0]))
    assert "device_profile" not in EndToEndLatency(space, device="pixel4_a76").to_dict()  # a built-in: its name


def test_fit_latency_and_build_lut_take_a_profile_path(tmp_path, monkeypatch):
    space = _nb201()
    archs = _archs(space, 30)
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"arch": a.to_dict(), "latency_ms": 0.5 + sum(OP_MS[v] for v in a.values())})
                               + "\n" for a in archs))
    path, out = _profile(tmp_path), tmp_path / "model.json"
    runner = CliRunner()
    fit = runner.invoke(app, ["fit-latency", "nb201", str(samples), "--options", json.dumps(NB201_TINY), "--profile",
                              str(path), "--out", str(out)])
    assert fit.exit_code == 0, fit.output  # was rc 2: "device: device 'mydev': no such profile"
    assert json.loads(out.read_text())["device"] == "mydev"
    # a machine without a built-in profile (an unlisted GPU, simulated on this CPU) accepts the user's own file
    monkeypatch.setattr(lut, "default_device", lambda device: None)
    table = tmp_path / "t.jsonl"
    build = runner.invoke(app, ["build-lut", "nb201", "--options", json.dumps(NB201_TINY), "--out", str(table),
                                "--limit", "0", "--profile", str(path)])
    assert build.exit_code == 0, build.output  # was rc 2: the bare name 'mydev' checked as a built-in one
    assert LatencyTable.load(table).device == "mydev"


# ---------------------------------------------------------------------------------------------- 2: learned range
def test_a_learned_model_of_another_spaces_table_is_refused():
    small, big = _nb201(4), _nb201(16)
    model = LayerLatencyModel.from_table(LatencyTable(_header(small), _entries(small)), n_estimators=5)
    CostModel(small, latency=model)  # its own space: fine
    with pytest.raises(ConfigError, match=r"another space: channels: table 4, space 16"):
        CostModel(big, latency=model)  # priced every 16-channel layer as a 4-channel one, silently


def test_a_learned_model_warns_once_and_records_layers_outside_its_training_range():
    small, big = _nb201(4), _nb201(16)
    entries = _entries(small)
    model = LayerLatencyModel(n_estimators=5).fit([e.layer for e in entries],
                                                   [(e.flops, e.params, e.bytes_moved) for e in entries],
                                                   [e.median_ms for e in entries], 1)  # no space: usable anywhere
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CostModel(small, latency=model)(small.sample(np.random.default_rng(0)))  # inside the range: silent
    cost = CostModel(big, latency=model)
    arch = {k: "nor_conv_3x3" for k in big.fields}
    with pytest.warns(LatencyFitWarning, match=r"outside the .* training sample.*cannot extrapolate") as caught:
        cost(arch)
        cost(big.sample(np.random.default_rng(1)))
    assert len([w for w in caught if issubclass(w.category, LatencyFitWarning)]) == 1  # once per model
    record = cost.provenance["latency_ms"]["extrapolation"]["layers"]
    conv = next(k for k in record if "nor_conv_3x3" in k)
    assert record[conv]["input_shape[0]"] == {"value": 16.0, "trained": [4.0, 8.0]}


# ---------------------------------------------------------------------------------------------- 3: table header
@pytest.mark.parametrize("field, value, message", [
    ("batch_size", ..., r"batch_size must be a positive int .*got nothing"),
    ("batch_size", "1", r"batch_size must be a positive int .*got '1'"),
    ("threads", "4", r"threads must be a positive int .*got '4'"),
    ("device", 3, r"device must be a string or null, got 3"),
    ("adapter", ..., r"adapter must be an object .*got nothing"),
])
def test_a_table_header_missing_or_mistyping_a_field_is_refused_at_load(tmp_path, field, value, message):
    space = _nb201()
    path = _write_table(tmp_path / "t.jsonl", _header(space, **{field: value}),
                        [e.to_dict() for e in _entries(space)])
    with pytest.raises(ConfigError, match=f"latency table {path}: header field {message}"):
        LatencyTable.load(path)  # loaded, then a bare KeyError, or the thread check silently off


def test_measure_names_a_bad_table_header_in_one_error_line(tmp_path):
    space = _nb201()
    path = _write_table(tmp_path / "t.jsonl", _header(space, batch_size=...), [e.to_dict() for e in _entries(space)])
    result = CliRunner().invoke(app, ["measure", "nb201", "--options", json.dumps(NB201_TINY), "--random", "1",
                                      "--warmup", "0", "--repeats", "1", "--table", str(path)])
    assert result.exit_code == 2 and "header field batch_size" in result.output, result.output  # was a traceback


def test_a_cost_model_refuses_a_latency_model_recording_threads_it_cannot_read():
    space = _nb201()
    with pytest.raises(ConfigError, match=r"threads must be a positive int .*got '4'"):
        CostModel(space, latency=LatencyTable({**_header(space), "threads": "4"}, _entries(space)))


# ---------------------------------------------------------------------------------------------- 4: 0 ms, counts
def test_a_learned_model_trains_on_a_table_with_a_0_ms_entry():
    space = _nb201()
    zero = next(layer.key for layer in adapter_for(space).distinct_layers() if '"none"' in layer.key)
    model = LayerLatencyModel.from_table(LatencyTable(_header(space), _entries(space, zero=zero)), n_estimators=5)
    assert model.source["zero_ms_entries"] == 1  # raised "sample 1: 0.0"
    assert 0 < CostModel(space, latency=model)(space.sample(np.random.default_rng(0)))["latency_ms"] < 1


def test_negative_or_fractional_counts_are_refused_naming_the_line_or_layer(tmp_path):
    space = _nb201()
    entries = [e.to_dict() for e in _entries(space)]
    for field, value in (("flops", -5), ("params", 1.5), ("bytes_moved", "9")):
        bad = [dict(e) for e in entries]
        bad[1][field] = value
        path = _write_table(tmp_path / f"{field}.jsonl", _header(space), bad)
        with pytest.raises(ConfigError, match=rf"line 3 is not a valid entry \({field}: expected a whole number >= 0"):
            LatencyTable.load(path)  # -5 loaded, then "math domain error"; 1.5 and "9" were int()ed silently
    first = _entries(space)[0]
    with pytest.raises(ConfigError, match=rf"layer {re.escape(first.layer.key)}: counts must be"):
        LayerLatencyModel(n_estimators=2).fit([first.layer], [(-5, 0, 0)], [0.1], 1)


# ---------------------------------------------------------------------------------------------- 5: roofline
@pytest.mark.parametrize("space", [_nb201(), DartsSpace(channels=4, cells_per_stage=1, stages=2)],
                         ids=["nb201", "darts"])
def test_an_architecture_and_its_built_network_get_one_roofline_and_energy(space):
    arch = space.validate(space.sample(np.random.default_rng(1)))
    cost = CostModel(space, device="h100_sxm", energy="analytic")
    by_arch, by_module = cost(arch), cost(space.build(arch), space.example_input(arch, 1))
    for metric in ("flops", "params", "latency_roofline_ms", "energy_est_mj"):
        assert by_arch[metric] == pytest.approx(by_module[metric], rel=1e-12), metric  # 15 % apart on NB201
    d = check_decomposition(adapter_for(space), arch)
    assert d.exact and d.layer_bytes == d.network_bytes > 0


# ---------------------------------------------------------------------------------------------- 6: meta device
def test_timing_a_module_on_the_meta_device_is_a_config_error():
    with torch.device("meta"):
        net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    x = torch.zeros(2, 8)
    with pytest.raises(ConfigError, match=r"on 'meta' \(no data: 0\.weight, 0\.bias, 2\.weight, \.\.\.\)"):
        measure_latency(net, x, warmup=0, repeats=1)  # torch's NotImplementedError "Cannot copy out of meta tensor"
    meta_x = torch.empty(2, 8, device="meta")
    assert CostModel(device="cpu")(net, meta_x)["flops"] == 2 * 2 * (8 * 16 + 16 * 2)  # counting needs no data
    with pytest.raises(ConfigError, match=r"module has 4 parameter\(s\)/buffer\(s\) on 'meta'"):
        CostModel(device="cpu", latency="measured", warmup=0, repeats=1)(net, meta_x)
    with pytest.raises(ConfigError, match=r"inputs: a tensor is on 'meta'"):
        measure_latency(nn.Linear(8, 2), meta_x, warmup=0, repeats=1)
