"""Layer decompositions (OFA, NB201, DARTS), latency lookup tables (build, resume, predict), learned latency,
few-shot onboarding, the `nas hardware` CLI and the examples of docs/hardware.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import nas
from nas.errors import ConfigError
from nas.hardware import (CostModel, LatencyTable, LayerConfig, LayerLatencyModel, adapter_for, build_table,
                          check_decomposition, fit_calibration, learned_latency, lut_latency, make_space)
from nas.cli.hardware import app
from nas.hardware.layers import LayerAdapter
from nas.hardware.lut import TableEntry
from nas.spaces import Choice
from nas.spaces.cell import DartsSpace, NasBench201Space
from nas.spaces.model_space import ModelSpace
from nas.spaces.ofa import OFAConfig, OFASpace

DOC = Path(__file__).resolve().parents[1] / "docs" / "hardware.md"
TINY_OFA = OFAConfig(stem_channels=4, stage_channels=(4, 6), stage_strides=(2, 2), depths=(1, 2), kernels=(3, 5),
                     expands=(1, 2), widths=(0.5, 1.0), head_channels=8, resolutions=(32, 40))
NB201_TINY = {"channels": 4, "cells_per_stage": 1, "stages": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


SPACES = {
    "ofa-default": lambda: OFASpace(),
    "ofa-tiny": lambda: OFASpace(TINY_OFA),
    "nb201-2d": lambda: NasBench201Space(**NB201_TINY),
    "nb201-1d": lambda: NasBench201Space(input_shape=(1, 40), channels=4, cells_per_stage=2, stages=3),
    "darts-2d-odd": lambda: DartsSpace(input_shape=(3, 7, 9), channels=4, cells_per_stage=1, stages=3),
    "darts-1d": lambda: DartsSpace(input_shape=(1, 40), channels=4, cells_per_stage=2, stages=2),
}


def synthetic_table(adapter: LayerAdapter, per_layer_ms: float = 0.02, per_flop_ms: float = 1e-6,
                    device: str = "local_cpu") -> LatencyTable:
    """A table from a stand-in device whose layers cost a fixed overhead plus a time per FLOP."""
    entries = []
    for layer in adapter.distinct_layers():
        leaves = adapter.layer_counts(layer)
        flops = sum(x.flops for x in leaves)
        ms = per_layer_ms + per_flop_ms * flops
        entries.append(TableEntry(layer, ms, 0.9 * ms, ms, 0.9 * ms, 1.1 * ms, flops,
                                  sum(x.params for x in leaves), sum(x.bytes_moved for x in leaves)))
    return LatencyTable({"adapter": adapter.describe(), "batch_size": 1, "device": device}, entries)


# ---------------------------------------------------------------------------------------------- decompositions
@pytest.mark.parametrize("name", list(SPACES))
def test_layers_add_up_to_the_network_exactly(name):
    space = SPACES[name]()
    adapter = adapter_for(space)
    rng = np.random.default_rng(0)
    distinct = {layer.key for layer in adapter.distinct_layers()}
    archs = [space.sample(rng) for _ in range(3)]
    if isinstance(space, OFASpace):
        archs += [space.largest(), space.smallest()]
    for arch in archs:
        d = check_decomposition(adapter, arch)
        assert d.exact and d.layer_flops > 0, (arch, d)
        assert {layer.key for layer in adapter.layers(arch)} <= distinct
    for _ in range(200):  # every layer any architecture uses is among the distinct ones (what a LUT profiles)
        assert {layer.key for layer in adapter.layers(space.sample(rng))} <= distinct


def test_ofa_decomposition_lists_blocks_in_order():
    space = OFASpace()
    arch = space.sample_subnet(np.random.default_rng(3))
    layers = adapter_for(space).layers(arch)
    depths = [s["depth"] for s in arch["stages"]]
    assert [layer.kind for layer in layers] == ["resample", "stem"] + ["mbconv"] * sum(depths) + ["head"]
    first = layers[2]
    assert (first["cin"], first["stride"], first["residual"], first.input_shape) == (16, 2, False,
                                                                                     (16, arch["resolution"]))
    distinct = adapter_for(space).distinct_layers()
    assert len({layer.key for layer in distinct}) == len(distinct)


def test_layer_config_key_is_canonical_and_round_trips():
    a = LayerConfig.make("op", (4, 8, 8), stride=1, op="nor_conv_3x3")
    b = LayerConfig.make("op", [4, 8, 8], op="nor_conv_3x3", stride=1)
    assert a == b and a.key == b.key == 'op(op="nor_conv_3x3",stride=1)@4x8x8'
    assert LayerConfig.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    with pytest.raises(KeyError, match=r"no option .*kernel"):
        a["kernel"]


def test_adapter_lookup_and_space_names():
    class Toy(ModelSpace):
        def __init__(self) -> None:
            super().__init__(width=Choice([1, 2]))

    with pytest.raises(ConfigError, match="no layer decomposition"):
        adapter_for(Toy())

    class WithHook(Toy):
        def layer_adapter(self) -> LayerAdapter:
            return LayerAdapter(self)

    assert type(adapter_for(WithHook())) is LayerAdapter
    assert isinstance(make_space("nb201", '{"channels": 4}'), NasBench201Space)
    assert make_space("ofa", {"stage_channels": [8, 8, 8]}).config.stage_channels == (8, 8, 8)
    with pytest.raises(ConfigError, match="unknown.*ofa, nb201, darts"):
        make_space("resnet")
    with pytest.raises(ConfigError, match="bad options"):
        make_space("nb201", {"chanels": 4})


# ---------------------------------------------------------------------------------------------- lookup tables
def test_build_table_profiles_every_layer_once_and_resumes(tmp_path):
    space = NasBench201Space(**NB201_TINY)
    adapter = adapter_for(space)
    path = tmp_path / "t.jsonl"
    first = build_table(adapter, path, warmup=1, repeats=3, limit=5)
    assert len(first) == 5
    head = path.read_text().splitlines()[:6]
    calls = []
    table = build_table(adapter, path, warmup=1, repeats=3, progress=lambda done, n: calls.append((done, n)))
    distinct = adapter.distinct_layers()
    assert len(table) == len(distinct) and calls[-1] == (len(distinct) - 5, len(distinct) - 5)
    lines = path.read_text().splitlines()
    assert lines[:6] == head and len(lines) == 1 + len(distinct)  # resumed: nothing re-measured
    header = json.loads(lines[0])
    assert (header["batch_size"], header["threads"], header["repeats"], header["device"]) == (1, 1, 3, "local_cpu")
    for entry in table.entries.values():
        assert entry.min_ms <= entry.median_ms <= entry.p90_ms and entry.flops >= 0
    arch = space.sample(np.random.default_rng(0))
    loaded = LatencyTable.load(path)
    assert loaded.predict(adapter.layers(arch)) == pytest.approx(
        sum(loaded.entries[layer.key].median_ms for layer in adapter.layers(arch)))
    assert loaded.with_statistic("min").predict(adapter.layers(arch)) <= loaded.predict(adapter.layers(arch))
    with pytest.raises(ConfigError, match="built with repeats=3, this build has 4"):
        build_table(adapter, path, warmup=1, repeats=4)


def test_a_torn_last_line_is_dropped_and_rewritten_on_resume(tmp_path):
    space = NasBench201Space(**NB201_TINY)
    adapter = adapter_for(space)
    path = tmp_path / "t.jsonl"
    build_table(adapter, path, warmup=0, repeats=2, limit=3)
    with open(path, "a") as f:
        f.write('{"key": "op(op=\\"none\\"')  # killed mid-write
    assert len(LatencyTable.load(path)) == 3
    table = build_table(adapter, path, warmup=0, repeats=2)
    assert len(table) == len(adapter.distinct_layers()) == len(LatencyTable.load(path))


def test_table_errors_name_the_layer_and_the_frame(tmp_path):
    adapter = adapter_for(NasBench201Space(**NB201_TINY))
    path = tmp_path / "t.jsonl"
    table = build_table(adapter, path, warmup=0, repeats=2, limit=2)
    missing = adapter.distinct_layers()[-1]
    with pytest.raises(ConfigError, match=re.escape(missing.key)):
        table.layer_ms(missing)
    with pytest.raises(ConfigError, match="was built for"):
        lut_latency(table, adapter_for(NasBench201Space(channels=8, cells_per_stage=1, stages=2)))
    (tmp_path / "bad.jsonl").write_text('{"format": "something else"}\n')
    with pytest.raises(ConfigError, match="not a latency table"):
        LatencyTable.load(tmp_path / "bad.jsonl")


def test_lut_cost_model_checks_batch_and_device_and_drives_a_constrained_search():
    space = OFASpace(TINY_OFA)
    adapter = adapter_for(space)
    table = synthetic_table(adapter)
    with pytest.raises(ConfigError, match="batch size 1"):
        CostModel(space, latency=table, batch_size=4)
    with pytest.raises(ConfigError, match="device 'local_cpu'"):
        CostModel(space, device="h100_sxm", latency=table)
    c = CostModel(space, latency=table)
    assert c.cheap and c.provenance["latency_ms"]["model"] == "lut"
    arch = space.smallest()
    assert c(arch)["latency_ms"] == pytest.approx(table.predict(adapter.layers(arch)))
    bound = float(np.median([c(space.sample(np.random.default_rng(i)))["latency_ms"] for i in range(20)]))
    result = nas.search(space, [c.evaluator()], {"params": "max"}, constraints=[f"latency_ms <= {bound}"],
                        budget=12, seed=0)
    assert result.feasible and all(t.metrics["latency_ms"] <= bound for t in result.feasible)
    assert all(t.metrics["latency_ms"] > bound for t in result.trials if t.status == "infeasible")
    with pytest.raises(ConfigError, match="needs an architecture"):
        c(torch.nn.Linear(2, 2), torch.zeros(1, 2))


# ---------------------------------------------------------------------------------------------- learned, onboarding
def test_learned_model_predicts_layers_it_never_saw():
    space = OFASpace(TINY_OFA)
    adapter = adapter_for(space)
    table = synthetic_table(adapter)
    model = LayerLatencyModel.from_table(table, fraction=0.5, seed=0, n_estimators=100)
    assert set(model.samples) == {"resample", "stem", "mbconv", "head"}  # at least one of each group
    assert model.source["samples"] < len(table)
    learned = learned_latency(model, adapter)
    lut = lut_latency(table, adapter)
    archs = [space.sample(np.random.default_rng(i)) for i in range(30)]
    err = np.array([learned.latency_ms(a) / lut.latency_ms(a) - 1 for a in archs])
    assert np.mean(np.abs(err)) < 0.05
    prov = CostModel(space, latency=model).provenance["latency_ms"]
    assert prov["model"] == "learned" and prov["trained_on"]["fraction"] == 0.5
    with pytest.raises(ConfigError, match="no samples of layer group 'op/none'"):
        model.predict(LayerConfig.make("op", (4, 8, 8), op="none", stride=1), (0, 0, 0))


def test_calibration_recovers_per_kind_scales_and_overhead():
    rng = np.random.default_rng(0)
    truth = {"a": 2.5, "b": 1.5, "c": 0.7}
    x = [{"a": rng.uniform(0.1, 1), "b": rng.uniform(0.05, 0.5), "c": rng.uniform(0, 0.3)} for _ in range(20)]
    y = [sum(truth[k] * v for k, v in d.items()) + 0.1 for d in x]
    cal = fit_calibration(x, y)
    assert cal.scales == pytest.approx(truth, rel=0.02) and cal.intercept_ms == pytest.approx(0.1, abs=0.01)
    few = fit_calibration(x[:3], y[:3])  # too few for per-kind scales: one shared scale
    assert len(set(few.scales.values())) == 1
    with pytest.raises(ConfigError, match="positive"):
        fit_calibration(x[:2], [1.0, 0.0])


def test_onboarding_a_new_device_from_a_few_measured_architectures():
    space = OFASpace(TINY_OFA)
    adapter = adapter_for(space)
    here = lut_latency(synthetic_table(adapter), adapter)
    # the other device: convolution blocks 3x slower, the rest 1.5x, plus 0.2 ms fixed overhead
    other = lut_latency(synthetic_table(adapter, per_layer_ms=0.03, per_flop_ms=3e-6), adapter)

    def measured(arch):
        parts = here.by_kind(arch)
        return 3 * parts["mbconv"] + 1.5 * (sum(parts.values()) - parts["mbconv"]) + 0.2

    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(40)]
    onboarded = here.onboard(archs[:10], [measured(a) for a in archs[:10]], device="pixel4_a76")
    assert onboarded.model == "learned" and onboarded.device == "pixel4_a76"
    assert onboarded.provenance()["calibration"]["n_archs"] == 10
    errors = [onboarded.latency_ms(a) / measured(a) - 1 for a in archs[10:]]
    assert max(map(abs, errors)) < 0.03
    assert other.latency_ms(archs[0]) > here.latency_ms(archs[0])


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_builds_resumes_and_measures(tmp_path):
    runner = CliRunner()
    out = tmp_path / "nb.jsonl"
    args = ["build-lut", "nb201", "--options", json.dumps(NB201_TINY), "--out", str(out), "--repeats", "3",
            "--warmup", "1"]
    first = runner.invoke(app, args + ["--limit", "4"])
    assert first.exit_code == 0, first.output
    assert "4 layers measured" in first.output and "holds 4 of 19" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "4 already in" in second.output and "holds 19 of 19" in second.output
    measured = runner.invoke(app, ["measure", "nb201", "--options", json.dumps(NB201_TINY), "--table", str(out),
                                   "--random", "2", "--repeats", "3"])
    assert measured.exit_code == 0 and "LUT ms" in measured.output and measured.output.count("│") > 10
    bad = runner.invoke(app, ["build-lut", "resnet"])
    assert bad.exit_code == 2 and "error: space 'resnet': unknown" in bad.output
    devices = runner.invoke(app, ["devices"])
    assert devices.exit_code == 0 and all(n in devices.output for n in ("h100_sxm", "pixel4_a76", "local_cpu"))


# ---------------------------------------------------------------------------------------------- docs
def test_doc_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {"__name__": "__doc_example__"})


# ---------------------------------------------------------------------------------------------- real timing (slow)
@pytest.mark.slow
def test_lookup_table_predicts_measured_latency_on_this_cpu(tmp_path):
    from scipy import stats

    from nas.hardware import measure_latencies

    space = OFASpace(TINY_OFA)
    adapter = adapter_for(space)
    table = build_table(adapter, tmp_path / "t.jsonl", warmup=2, repeats=3, rounds=20).with_statistic("min")
    rng = np.random.default_rng(0)
    archs = list({a.id: a for a in (space.sample_subnet(rng) for _ in range(20))}.values())
    # whole networks timed together in interleaved rounds, like the table's layers: a slow phase of a shared
    # machine then slows every network alike instead of a few networks' whole blocks
    measured = [m.min_ms for m in measure_latencies([(space.build(a), space.example_input(a, 1)) for a in archs],
                                                    warmup=2, repeats=3, rounds=20)]
    lut = lut_latency(table, adapter)
    predicted = np.array([lut.latency_ms(a) for a in archs])
    err = np.abs(predicted / np.array(measured) - 1)
    assert np.median(err) < 0.2  # the min statistic resists other jobs on the machine; the median does not
    assert stats.kendalltau(predicted, measured).statistic > 0.5
    calibrated = lut.onboard(archs[:6], measured[:6])  # absorbs the framework overhead between layers
    err = np.abs(np.array([calibrated.latency_ms(a) for a in archs[6:]]) / np.array(measured[6:]) - 1)
    assert np.median(err) < 0.1
