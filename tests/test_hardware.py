"""Hardware costs: counts per leaf, device profiles, measured latency (CPU; CUDA events mocked), energy meters
(RAPL on a fake powercap tree, NVML through a fake pynvml), roofline and analytic energy, and `CostModel`."""

from __future__ import annotations

import json
import math
import sys
import time
import types

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas.errors import ConfigError
from nas.hardware import (CostModel, measure_latencies, DeviceProfile, LeafCount, NvmlMeter, RaplMeter, analytic_energy, cost,
                          count_flops, count_leaves, list_devices, load_device, measure_energy, measure_latency,
                          pinned_threads, roofline)
from nas.hardware.cost import resolve_device
from nas.hardware.devices import calibrate_cpu
from nas.hardware.energy import integrate, rapl_domains
from nas.hardware.latency import summarise, time_cuda
from nas.spaces.cell import NasBench201Space
from nas.spaces.ofa import OFAConfig, OFASpace

TINY_OFA = OFAConfig(stem_channels=4, stage_channels=(4, 6), stage_strides=(2, 2), depths=(1, 2), kernels=(3, 5),
                     expands=(1, 2), widths=(0.5, 1.0), head_channels=8, resolutions=(32, 40))


pytestmark = pytest.mark.usefixtures("one_thread")


def nb201() -> NasBench201Space:
    return NasBench201Space(channels=4, cells_per_stage=1, stages=2)


# ---------------------------------------------------------------------------------------------- counts
def test_leaf_counts_give_exact_bytes_and_flops_of_a_linear_layer():
    lin = nn.Linear(10, 5)
    (leaf,) = count_leaves(lin, torch.zeros(4, 10))
    assert leaf.flops == 2 * 4 * 10 * 5 and leaf.params == 55
    assert (leaf.weight_bytes, leaf.input_bytes, leaf.output_bytes) == (55 * 4, 4 * 10 * 4, 4 * 5 * 4)
    assert leaf.bytes_moved == 220 + 160 + 80


def test_leaf_counts_sum_to_the_network_and_identity_moves_nothing():
    net = nn.Sequential(nn.Conv1d(2, 8, 3, padding=1), nn.BatchNorm1d(8), nn.Identity(), nn.ReLU())
    x = torch.zeros(3, 2, 16)
    leaves = count_leaves(net, x)
    assert [x.type for x in leaves] == ["Conv1d", "BatchNorm1d", "Identity", "ReLU"]
    assert sum(x.flops for x in leaves) == count_flops(net, x)["flops"] == 2 * 3 * 8 * 16 * 2 * 3
    assert leaves[2].bytes_moved == 0
    assert leaves[1].weight_bytes == 4 * 8 * 4 + 8  # weight, bias, running mean/var, num_batches_tracked (int64)


def test_functional_flops_inside_composite_modules_are_kept_and_shared_modules_counted_once():
    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 8, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = self.proj(x)
            k = self.proj(x)  # the same module twice
            return q @ k.transpose(-1, -2)

    x = torch.zeros(2, 5, 8)
    leaves = count_leaves(Attn(), x)
    assert [x.type for x in leaves] == ["Linear", "Linear", "functional"]
    assert leaves[0].flops == leaves[1].flops == 2 * 10 * 8 * 8
    assert sum(x.params for x in leaves) == 64
    assert leaves[2].flops == 2 * 2 * 5 * 5 * 8
    assert sum(x.flops for x in leaves) == count_flops(Attn(), x)["flops"]


# ---------------------------------------------------------------------------------------------- devices
def test_builtin_profiles_load_with_consistent_figures():
    names = list_devices()
    assert {"local_cpu", "h100_sxm", "a100_sxm", "pixel4_a76", "jetson_orin_nano"} <= set(names)
    for name in names:
        d = load_device(name)
        assert d.name == name and d.memory_bandwidth > 0 and d.peak("float32") > 0 and d.source
    h100, a100 = load_device("h100_sxm"), load_device("a100_sxm")
    assert h100.peak("bfloat16") > h100.peak("float32") > a100.peak("float32")
    cpu = load_device("local_cpu")
    assert cpu.peak("float32", threads=1) == pytest.approx(cpu.peak("float32") / 2)
    assert h100.pj_per_flop("float32") == pytest.approx(700 / 67e12 * 1e12)


def test_the_device_table_in_docs_states_each_profiles_fp32_peak_and_bandwidth():
    """docs/hardware.md's table of built-in profiles is checked against the profile files (within 1 %: the
    page rounds), so a changed profile cannot leave a stale figure behind."""
    from pathlib import Path

    units = {"GFLOP/s": 1e9, "TFLOP/s": 1e12, "GB/s": 1e9, "TB/s": 1e12}
    page = (Path(__file__).resolve().parents[1] / "docs" / "hardware.md").read_text()
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[0].strip("`") in list_devices():
            rows[cells[0].strip("`")] = cells

    def figure(text: str) -> float:
        value, unit = text.split()[:2]
        return float(value) * units[unit]

    assert set(rows) == set(list_devices())
    for name, (_, _, peak, bandwidth, _) in rows.items():
        prof = load_device(name)
        assert figure(peak) == pytest.approx(prof.peak("float32"), rel=0.01), name
        assert figure(bandwidth) == pytest.approx(prof.memory_bandwidth, rel=0.01), name


def test_profile_errors_name_the_field_and_a_file_path_adds_a_device(tmp_path):
    with pytest.raises(ConfigError, match="no such profile.*h100_sxm"):
        load_device("tpu_v9")
    with pytest.raises(ConfigError, match=r"'tpu': neither a torch device \(cpu, cuda, cuda:N, mps\) nor a device prof"):
        resolve_device("tpu")  # the cost models' --device takes either, so the message names both
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['peak_tflops'\]"):
        DeviceProfile.from_dict({"name": "x", "description": "", "kind": "npu", "peak_flops": {"float32": 1},
                                 "memory_bandwidth": 1, "peak_tflops": 3})
    with pytest.raises(ConfigError, match="no peak FLOP/s for dtype 'int8'"):
        load_device("local_cpu").peak("int8")
    path = tmp_path / "npu.json"
    path.write_text(json.dumps({"name": "npu", "description": "d", "kind": "npu", "peak_flops": {"int8": 4e12},
                                "memory_bandwidth": 1e10}))
    assert load_device(path).peak("int8") == 4e12
    with pytest.raises(ConfigError, match="memory_bandwidth must be positive"):
        DeviceProfile.from_dict({"name": "x", "description": "", "kind": "npu", "peak_flops": {"int8": 1},
                                 "memory_bandwidth": 0})


def test_local_cpu_spec_peak_is_above_what_this_cpu_achieves():
    got = calibrate_cpu(threads=1, seconds=0.3)
    prof = load_device("local_cpu")
    assert 0 < got["float32_flops"] <= prof.peak("float32", threads=1)
    assert 0 < got["memory_bandwidth"] <= prof.memory_bandwidth


# ---------------------------------------------------------------------------------------------- latency
class Sleep(nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.threads_seen = seconds, set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.threads_seen.add(torch.get_num_threads())
        time.sleep(self.seconds)
        return x


def test_measured_latency_times_each_run_and_records_conditions():
    before = torch.get_num_threads()
    mod = Sleep(0.002)
    m = measure_latency(mod, torch.zeros(3, 7), warmup=2, repeats=15, threads=2)
    assert m.min_ms >= 2.0 and m.median_ms < 100
    assert m.min_ms <= m.p10_ms <= m.median_ms <= m.p90_ms and m.spread_ms == m.p90_ms - m.p10_ms
    assert (m.repeats, m.warmup, m.batch_size, m.input_shapes, m.threads) == (15, 2, 3, ((3, 7),), 2)
    assert mod.threads_seen == {2} and torch.get_num_threads() == before
    assert m.device == "cpu" and m.timer == "perf_counter" and m.value("min") == m.min_ms


class Slow(nn.Module):
    """Sleeps `seconds` per forward while `phase[0]` is set: a stand-in for another tenant's busy spell."""

    def __init__(self, name: str, log: list, phase: list) -> None:
        super().__init__()
        self.name, self.log, self.phase = name, log, phase

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append(self.name)
        time.sleep(0.004 if self.phase[0] else 0.001)
        return x


def test_interleaved_rounds_pool_runs_and_escape_a_slow_phase():
    log: list[str] = []
    phase = [True]
    a, b = Slow("a", log, phase), Slow("b", log, phase)
    x = torch.zeros(1, 2)
    # one block per network: `a` is timed entirely inside the slow phase
    block = measure_latency(a, x, warmup=0, repeats=4)
    assert block.min_ms >= 4.0
    # interleaved: the slow phase ends after the first round, and each network's minimum comes from later rounds
    calls = {"n": 0}

    def end_phase_after_first_round(module, inputs, output):
        calls["n"] += 1
        if calls["n"] == 2 * 4:
            phase[0] = False

    hooks = [m.register_forward_hook(end_phase_after_first_round) for m in (a, b)]
    log.clear()
    timed = measure_latencies([(a, x), (b, x)], warmup=0, repeats=4, rounds=3, seed=1)
    for h in hooks:
        h.remove()
    assert [m.repeats for m in timed] == [4, 4] and [m.rounds for m in timed] == [3, 3]
    assert all(m.min_ms < 4.0 and m.p90_ms >= 4.0 for m in timed)  # pooled: slow and fast runs both seen
    runs = [log[i * 4] for i in range(6)]  # the network of each 4-run block, in order
    assert sorted(runs[:2]) == sorted(runs[2:4]) == sorted(runs[4:]) == ["a", "b"]  # every round times each once
    with pytest.raises(ConfigError, match="rounds"):
        measure_latencies([(a, x)], rounds=0)


def test_summary_statistics_and_thread_pinning_validation():
    m = summarise(list(range(1, 101)), warmup=0, batch_size=1, input_shapes=((1,),), device="cpu", threads=1,
                  timer="perf_counter")
    assert (m.min_ms, m.median_ms, m.mean_ms) == (1, 50.5, 50.5)
    assert m.p10_ms == pytest.approx(10.9) and m.p90_ms == pytest.approx(90.1)
    with pytest.raises(ConfigError, match="threads"):
        with pinned_threads(0):
            pass
    with pytest.raises(ConfigError, match="statistic"):
        m.value("p99")


def test_cuda_timing_uses_events_and_synchronises_before_reading(monkeypatch):
    log = []

    class FakeEvent:
        clock = 0.0

        def __init__(self, enable_timing: bool) -> None:
            assert enable_timing
            self.t = None

        def record(self) -> None:
            FakeEvent.clock += 1.5
            self.t = FakeEvent.clock
            log.append("record")

        def elapsed_time(self, end: "FakeEvent") -> float:
            assert log[-1] == "sync", "events read before synchronising"
            return end.t - self.t

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: log.append("sync"))
    calls = []
    times = time_cuda(lambda: calls.append(1), warmup=3, repeats=4)
    assert times == [1.5] * 4 and len(calls) == 7
    assert log[0] == "sync" and log.count("record") == 8


def test_cuda_measurement_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        m = measure_latency(nn.Linear(8, 8), torch.zeros(2, 8), device="cuda", repeats=5)
        assert m.timer == "cuda_event" and m.threads is None
    else:
        with pytest.raises(ConfigError, match="CUDA is not available"):
            measure_latency(nn.Linear(8, 8), torch.zeros(2, 8), device="cuda")


# ---------------------------------------------------------------------------------------------- energy
def fake_powercap(root, value: int, max_range: int = 10**9):
    for name in ("intel-rapl:0", "intel-rapl:0:0"):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "energy_uj").write_text(str(value))
        (d / "max_energy_range_uj").write_text(str(max_range))


def test_rapl_meter_reads_package_counters_and_handles_wraparound(tmp_path):
    fake_powercap(tmp_path, 1_000_000)
    assert [d.name for d in rapl_domains(tmp_path)] == ["intel-rapl:0"]  # sub-domains are parts of the package
    meter = RaplMeter(tmp_path)
    meter.start()
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("3500000")
    assert meter.stop() == pytest.approx(2.5)
    fake_powercap(tmp_path, 10**9 - 1_000_000)
    meter.start()
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("500000")
    assert meter.stop() == pytest.approx(1.5)
    with pytest.raises(ConfigError, match="no readable package energy counter"):
        RaplMeter(tmp_path / "absent")


def fake_pynvml(watts: float, counter_mj: list[int] | None) -> types.ModuleType:
    mod = types.ModuleType("pynvml")
    state = {"init": 0}
    mod.nvmlInit = lambda: state.__setitem__("init", state["init"] + 1)
    mod.nvmlShutdown = lambda: state.__setitem__("init", state["init"] - 1)
    mod.nvmlDeviceGetHandleByIndex = lambda i: f"gpu{i}"
    mod.nvmlDeviceGetPowerUsage = lambda h: int(watts * 1000)

    def energy(h):
        if counter_mj is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        counter_mj[0] += 250
        return counter_mj[0]

    mod.nvmlDeviceGetTotalEnergyConsumption = energy
    mod.state = state
    return mod


def test_nvml_meter_integrates_sampled_power_and_reads_the_energy_counter(monkeypatch):
    fake = fake_pynvml(150.0, None)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = NvmlMeter(interval_s=0.002)
    t0 = time.perf_counter()
    meter.start()
    started = time.perf_counter()
    deadline = t0 + 60
    while len(meter.samples) < 3:  # wait for the sampling thread's samples, not for a length of time
        assert time.perf_counter() < deadline, "the sampling thread took fewer than 3 samples in 60 s"
        time.sleep(0.002)
    stopping = time.perf_counter()
    joules = meter.stop()
    t1 = time.perf_counter()
    times = [t for t, _ in meter.samples]
    assert meter.used == "sampling" and len(meter.samples) >= 4 and fake.state["init"] == 0
    assert [w for _, w in meter.samples] == [150.0] * len(times)
    # the samples are in order between start and stop, the last taken by stop itself; at constant power the
    # trapezoids sum to power x the span the samples cover, whatever timing the machine's load produced
    # the first sample is taken by start itself, so the integral covers from start to stop
    assert t0 <= times[0] <= started and times == sorted(times) and stopping <= times[-1] <= t1
    assert joules == pytest.approx(150.0 * (times[-1] - times[0]), rel=1e-9)
    assert 150.0 * (stopping - started) <= joules <= 150.0 * (t1 - t0)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(150.0, [1000]))
    counter = NvmlMeter(method="counter")
    counter.start()
    assert counter.stop() == pytest.approx(0.25) and counter.used == "counter"
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(150.0, None))
    with pytest.raises(ConfigError, match="no total-energy counter"):
        NvmlMeter(method="counter").start()


def test_nvml_needs_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(ConfigError, match="nvidia-ml-py"):
        NvmlMeter().start()


def test_measure_energy_divides_the_meter_reading_by_the_runs():
    class FixedMeter:
        source = "fake"

        def start(self) -> None:
            pass

        def stop(self) -> float:
            return 2.0

    e = measure_energy(nn.Linear(4, 4), torch.zeros(2, 4), meter=FixedMeter(), min_seconds=0.02, warmup=1)
    assert e.runs >= 1 and e.energy_mj == pytest.approx(2000.0 / e.runs) and e.seconds >= 0.02
    assert e.mean_power_w == pytest.approx(2.0 / e.seconds) and e.source == "fake" and e.batch_size == 2


def test_trapezoid_integration_is_exact_for_linear_power():
    assert integrate([(0.0, 100.0), (1.0, 200.0), (3.0, 200.0)]) == pytest.approx(150.0 + 400.0)


# ---------------------------------------------------------------------------------------------- roofline, analytic
def leaf(flops: int, moved: int) -> LeafCount:
    return LeafCount("x", "Conv1d", flops, 0, moved, 0, 0)


def test_roofline_takes_the_slower_of_compute_and_memory_per_layer():
    dev = DeviceProfile("d", "", "npu", {"float32": 1e9}, memory_bandwidth=1e9)
    r = roofline([leaf(2_000_000, 1_000), leaf(1_000, 3_000_000)], dev)
    assert r.bound_ms == pytest.approx(2.0 + 3.0)
    assert r.compute_ms == pytest.approx(2.001) and r.memory_ms == pytest.approx(3.001)
    assert r.bound_ms >= max(r.compute_ms, r.memory_ms)


def test_roofline_is_below_the_measured_latency_of_a_real_layer():
    net, x = nn.Linear(512, 512), torch.randn(64, 512)
    bound = roofline(count_leaves(net, x), load_device("local_cpu"), threads=1)
    assert bound.bound_ms < measure_latency(net, x, warmup=3, repeats=10).min_ms


def test_analytic_energy_charges_flops_and_bytes_and_needs_figures():
    dev = DeviceProfile("d", "", "npu", {"float32": 1e12}, memory_bandwidth=1e9, tdp_w=10.0,
                        energy_pj_per_byte=50.0, static_power_w=2.0)
    e = analytic_energy([leaf(1_000_000, 10_000)], dev, latency_ms=3.0)
    assert e.compute_mj == pytest.approx(1e6 * 10.0 * 1e-9) and e.memory_mj == pytest.approx(1e4 * 50 * 1e-9)
    assert e.static_mj == pytest.approx(6.0) and e.energy_mj == pytest.approx(e.compute_mj + e.memory_mj + 6.0)
    assert e.estimate
    with pytest.raises(ConfigError, match="no energy_pj_per_byte"):
        analytic_energy([leaf(1, 1)], load_device("pixel4_a76"))


# ---------------------------------------------------------------------------------------------- cost model
def test_cost_counts_match_the_space_for_architectures_and_modules():
    for space in (OFASpace(TINY_OFA), nb201()):
        c = CostModel(space, batch_size=2)
        for arch in (space.sample(np.random.default_rng(s)) for s in range(3)):
            want = space.count(arch, batch_size=2)
            got = c(arch)
            assert {k: got[k] for k in want} == want
            assert got["latency_roofline_ms"] > 0
    net, x = nn.Linear(16, 4), torch.zeros(5, 16)
    assert cost(net, inputs=x, device="a100_sxm") == {
        "params": 68.0, "flops": 640.0, "macs": 320.0,
        "latency_roofline_ms": pytest.approx(1e3 * (68 * 4 + 5 * 16 * 4 + 5 * 4 * 4) / 2.039e12)}


def test_cost_names_and_provenance_say_which_model_and_device():
    space = OFASpace(TINY_OFA)
    arch = space.smallest()
    c = CostModel(space, device="h100_sxm", energy="analytic")
    m = c(arch)
    assert set(m) == {"params", "flops", "macs", "latency_roofline_ms", "energy_est_mj"} and c.cheap
    assert c.provenance["energy_est_mj"]["estimate"] is True and c.provenance["energy_est_mj"]["model"] == "analytic"
    assert c.provenance["latency_roofline_ms"] == {**c.provenance["latency_roofline_ms"], "model": "roofline",
                                                  "device": "h100_sxm", "lower_bound": True}
    q = CostModel(space, latency="measured", qualify=True, repeats=3, warmup=1)
    mq = q(arch)
    assert {"latency_ms.measured.local_cpu", "latency_roofline_ms.roofline.local_cpu"} <= set(mq)
    assert not q.cheap and not q.evaluator().cheap and c.evaluator().cheap
    prov = q.provenance["latency_ms.measured.local_cpu"]
    assert (prov["model"], prov["device"], prov["threads"], prov["batch_size"]) == ("measured", "local_cpu", 1, 1)
    assert mq["latency_roofline_ms.roofline.local_cpu"] < mq["latency_ms.measured.local_cpu"]
    assert json.loads(json.dumps(c.provenance)) == c.provenance


def test_cost_model_refuses_what_it_cannot_do():
    space = nb201()
    with pytest.raises(ConfigError, match="latency: expected None, 'measured'"):
        CostModel(space, latency="lut")
    with pytest.raises(ConfigError, match="pass its inputs"):
        CostModel(space)(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="needs the space"):
        CostModel()(space.default())
    with pytest.raises(ConfigError, match="'pixel4_a76' is not this machine's cpu"):
        CostModel(space, device="pixel4_a76", latency="measured")
    with pytest.raises(ConfigError, match="energy figures"):
        CostModel(space, device="pixel4_a76", energy="analytic")
    if not rapl_domains():
        with pytest.raises(ConfigError, match="RAPL"):
            CostModel(space, energy="measured")
        auto = CostModel(space, energy="auto")
        assert auto.energy == "analytic" and "energy_est_mj" in auto.provenance


def test_measured_energy_cost_on_cpu_uses_rapl(monkeypatch, tmp_path):
    fake_powercap(tmp_path, 0)
    monkeypatch.setattr("nas.hardware.energy.POWERCAP", tmp_path)
    c = CostModel(nb201(), energy="measured", energy_seconds=0.01)
    assert c.provenance["energy_mj"]["meter"] == "rapl" and not c.cheap
    assert c(nb201().default())["energy_mj"] == 0.0  # the fake counter never moves


def test_cheap_cost_model_as_search_evaluator_enforces_a_constraint_before_evaluating():
    space = OFASpace(TINY_OFA)
    c = CostModel(space)
    flops = sorted(c(space.sample(np.random.default_rng(i)))["flops"] for i in range(30))
    bound = flops[len(flops) // 2]
    seen = []

    def expensive(arch):
        seen.append(arch)
        return {"accuracy": float(c(arch)["params"])}

    result = nas.search(space, [c.evaluator(), expensive], {"accuracy": "max"}, constraints=[f"flops <= {bound}"],
                        budget=10, seed=0, metadata={"hardware": c.provenance})
    assert seen and all(c(a)["flops"] <= bound for a in seen)
    assert any(t.status == "infeasible" for t in result.trials)
    assert result.config["metadata"]["hardware"]["flops"]["model"] == "count"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (none on this machine)")
def test_nvml_energy_of_a_real_gpu_run():
    pytest.importorskip("pynvml", reason="needs nvidia-ml-py")
    e = measure_energy(nn.Linear(1024, 1024), torch.randn(256, 1024), device="cuda", min_seconds=0.5)
    assert e.source == "nvml" and e.energy_mj > 0 and 10 < e.mean_power_w < 1500


def test_repeatability_compares_the_two_halves_of_the_rounds_in_time():
    from nas.hardware.latency import summarise

    kw = dict(warmup=0, batch_size=1, input_shapes=((1, 2),), device="cpu", threads=1, timer="perf_counter")
    steady = summarise([1.0, 1.1] * 8, rounds=4, **kw)
    assert steady.repeatability("min") == 0.0 and steady.repeatability("median") == pytest.approx(0.0)
    phase = summarise([1.0] * 8 + [1.5] * 8, rounds=4, **kw)  # the last two rounds in a slow phase
    assert phase.repeatability("min") == pytest.approx(0.5) and phase.to_dict()["repeatability"] == pytest.approx(0.5)
    assert "times_ms" not in phase.to_dict() and math.isnan(summarise([1.0], **kw).repeatability())
    with pytest.raises(ConfigError, match="statistic"):
        phase.repeatability("p99")
