"""The analytic accelerator model (nas.hardware.accelerator) against hand-computed cases, its monotonicity, its
errors, the NAS-Bench-Graph -> GEMM mapping and the co-exploration of experiments/accelerator_coexplore.py (reduced)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nas.errors import ConfigError
from nas.hardware.accelerator import (OUTPUT_STATIONARY, WEIGHT_STATIONARY, Gemm, HeterogeneousAccelerator,
                                      SubAccelerator, Technology, Template, array_shape, as_workloads, conv_gemm,
                                      map_gemm, module_workloads, template)
from nas.hardware.coexplore import GRAPHS, CoExploration, nasbench_graph_workloads

ROOT = Path(__file__).resolve().parents[1]
TECH = Technology()
FAST = 1e15  # bytes/s: DRAM never the bound


def sub(tmpl: Template | str, rows: int, cols: int, buffer_bytes: float = 1 << 20, share: float = 1.0) -> SubAccelerator:
    return SubAccelerator(template(tmpl), rows, cols, share, buffer_bytes / 1024)


# ---------------------------------------------------------------------------------------------- hand-computed cases
def test_weight_stationary_4x4_on_an_8x8x8_gemm_by_hand():
    # WS: rows = K = 8, cols = N = 8, time = M = 8 on a 4 x 4 array.
    # folds = ceil(8/4) * ceil(8/4) = 2 * 2 = 4; cycles per fold = 2R + C + T - 2 = 2*4 + 4 + 8 - 2 = 18;
    # cycles = 4 * 18 = 72; utilisation = MACs / (cycles * PEs) = 512 / (72 * 16) = 0.444.
    # (Smaller tiles only add folds: r = 3 gives ceil(8/3) = 3 row folds, 3*2*(6+4+6) = 96 cycles.)
    cost = map_gemm(Gemm(8, 8, 8), sub("ws", 4, 4), FAST)
    assert (cost.tile_rows, cost.tile_cols, cost.folds, cost.cycles_per_fold, cost.cycles) == (4, 4, 4, 18, 72)
    assert cost.macs == 512 and cost.utilization == pytest.approx(512 / (72 * 16))
    assert cost.latency_s == cost.compute_s == pytest.approx(72 / TECH.clock_hz) and cost.bound == "compute"


def test_dram_and_sram_traffic_with_a_buffer_too_small_to_hold_an_operand_by_hand():
    # Same GEMM and array, 1-byte operands of 64 B each, a 64 B buffer: 32 B per streamed operand.
    # WS: B (k x n) is stationary: 64 B once. Streamed: A (rows dim k + time) and C (cols dim n + time).
    #  rows-outer (k folds outside): A's tile 64/2 = 32 B fits -> 1 pass, 64 B; C whole (64 B) does not ->
    #    f_r = 2 passes of partial sums: (2*2 - 1) * 64 = 192 B; total 64 + 64 + 192 = 320 B.
    #  cols-outer (n folds outside): C's tile 32 B fits -> written once, 64 B; A whole does not -> f_c = 2
    #    passes: 128 B; total 64 + 128 + 64 = 256 B  <- the mapper's choice (same cycles, less traffic).
    # SRAM (array side): B 64 + A once per n fold 2*64 + C (2*2 - 1)*64 = 384 B, plus the 256 DRAM bytes = 640 B.
    ws = map_gemm(Gemm(8, 8, 8), sub("ws", 4, 4, buffer_bytes=64), FAST)
    assert (ws.loop_order, ws.dram_bytes, ws.sram_bytes) == ("cols-outer", 256, 640)
    assert ws.energy_j == pytest.approx((512 * 0.23 + 640 * 1.25 + 256 * 160.0) * 1e-12)
    # OS: C (m x n) stationary, written once: 64 B. Streamed: A (rows dim m) and B (cols dim n), both inputs.
    #  rows-outer: A's tile 32 B fits -> 64 B; B whole does not -> f_r = 2 passes: 128 B; total 256 B.
    #  SRAM: C 64 + A 2*64 + B 2*64 = 320 B, plus 256 = 576 B.
    os_ = map_gemm(Gemm(8, 8, 8), sub("os", 4, 4, buffer_bytes=64), FAST)
    assert (os_.cycles, os_.loop_order, os_.dram_bytes, os_.sram_bytes) == (72, "rows-outer", 256, 576)
    # A buffer that holds everything: every operand moves once, 3 * 64 = 192 B.
    assert map_gemm(Gemm(8, 8, 8), sub("ws", 4, 4, buffer_bytes=1024), FAST).dram_bytes == 192


def test_the_dataflows_differ_on_a_tall_gemm_by_hand():
    # M = 100, N = 4, K = 4 on 4 x 4. WS: rows = K, cols = N -> 1 fold, T = M = 100: 2*4 + 4 + 100 - 2 = 110.
    # OS: rows = M -> 25 folds of 4 rows, T = K = 4: 25 * (2*4 + 4 + 4 - 2) = 350 (r = 3: 34 * 12 = 408).
    assert map_gemm(Gemm(100, 4, 4), sub("ws", 4, 4), FAST).cycles == 110
    assert map_gemm(Gemm(100, 4, 4), sub("os", 4, 4), FAST).cycles == 350
    assert WEIGHT_STATIONARY.stationary == "b" and OUTPUT_STATIONARY.stationary == "c"
    assert template("is").stationary == "a"


def test_a_memory_bound_layer_takes_its_dram_bytes_over_the_bandwidth():
    # 192 B at 1,000 B/s = 0.192 s >> 72 cycles at 500 MHz.
    cost = map_gemm(Gemm(8, 8, 8), sub("ws", 4, 4, buffer_bytes=1024), 1000.0)
    assert cost.bound == "memory" and cost.latency_s == pytest.approx(0.192)


def test_count_repeats_the_gemm_and_conv_and_linear_map_to_gemms():
    g = conv_gemm(16, 32, (3, 3), (8, 8), batch=2, groups=4)  # m = 2*64, k = 16/4*9, n = 32/4, 4 groups
    assert (g.m, g.k, g.n, g.count, g.macs) == (128, 36, 8, 4, 4 * 128 * 36 * 8)
    one = map_gemm(Gemm(128, 8, 36), sub("ws", 8, 8), FAST)
    assert map_gemm(g, sub("ws", 8, 8), FAST).cycles == 4 * one.cycles
    assert [x.shape()[:3] for x in as_workloads([(2, 3, 4), {"m": 5, "n": 6, "k": 7}, Gemm(1, 1, 1)])] == \
        [(2, 3, 4), (5, 6, 7), (1, 1, 1)]


def test_module_workloads_reads_conv_and_linear_layers_from_a_forward_pass():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                        nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    convs = module_workloads(net, torch.zeros(2, 3, 6, 6))
    assert [(g.name, g.m, g.n, g.k, g.count) for g in convs] == [
        ("0", 2 * 36, 8, 27, 1), ("2", 2 * 36, 1, 9, 8), ("4", 2, 10, 288, 1)]
    seq = module_workloads(nn.Conv1d(4, 6, 5), torch.zeros(1, 4, 20))
    assert [(g.m, g.n, g.k) for g in seq] == [(16, 6, 20)]


def test_area_energy_and_a_two_task_schedule_by_hand():
    subs = (SubAccelerator(WEIGHT_STATIONARY, 32, 32, 0.5, 256), SubAccelerator(OUTPUT_STATIONARY, 16, 32, 0.5, 128))
    acc = HeterogeneousAccelerator(subs, 2048, 10e9)
    # area = (1024 + 512) PEs * 0.0006 + (256 + 128) KB * 0.006 = 0.9216 + 2.304 mm2
    assert acc.area_mm2 == pytest.approx(1536 * 0.0006 + 384 * 0.006)
    a, b = [Gemm(64, 64, 64)], [Gemm(256, 32, 128)]
    apart = acc.run({"x": (0, a), "y": (1, b)})
    assert apart.latency_s == {"x": acc.network(0, a).latency_s, "y": acc.network(1, b).latency_s}
    shared = acc.run({"x": (0, a), "y": (0, b)})  # one array runs both, one after the other
    both = acc.network(0, a).latency_s + acc.network(0, b).latency_s
    assert shared.latency_s == {"x": pytest.approx(both), "y": pytest.approx(both)}
    m = apart.metrics()
    assert m["energy_mj"] == pytest.approx((acc.network(0, a).energy_j + acc.network(1, b).energy_j) * 1e3)
    assert set(m) == {"latency_x_ms", "latency_y_ms", "energy_x_mj", "energy_y_mj", "energy_mj", "area_mm2"}


# ---------------------------------------------------------------------------------------------- monotonicity
gemms = st.builds(Gemm, m=st.integers(1, 3000), n=st.integers(1, 600), k=st.integers(1, 600),
                  b_elements=st.one_of(st.none(), st.integers(1, 10**6)))


@settings(max_examples=60, deadline=None)
@given(g=gemms, tmpl=st.sampled_from(["ws", "os", "is"]), rows=st.integers(1, 64), cols=st.integers(1, 64),
       more_rows=st.integers(0, 64), more_cols=st.integers(0, 64), buffer_kb=st.sampled_from([1, 16, 256]),
       bandwidth=st.floats(1e8, 1e11))
def test_more_pes_more_bandwidth_or_more_buffer_are_never_slower(g, tmpl, rows, cols, more_rows, more_cols,
                                                                 buffer_kb, bandwidth):
    base = map_gemm(g, SubAccelerator(template(tmpl), rows, cols, 1.0, buffer_kb), bandwidth).latency_s
    bigger = SubAccelerator(template(tmpl), rows + more_rows, cols + more_cols, 1.0, buffer_kb)
    assert map_gemm(g, bigger, bandwidth).latency_s <= base * (1 + 1e-12)
    assert map_gemm(g, SubAccelerator(template(tmpl), rows, cols, 1.0, buffer_kb), bandwidth * 2).latency_s \
        <= base * (1 + 1e-12)
    assert map_gemm(g, SubAccelerator(template(tmpl), rows, cols, 1.0, buffer_kb * 4), bandwidth).latency_s \
        <= base * (1 + 1e-12)


def test_a_bigger_pe_share_never_slows_a_gnn_down():
    co = CoExploration()
    arch = {**{f"a_{k}": v for k, v in {"link": "0-0-1-2", "op1": "gcn", "op2": "gat", "op3": "sage",
                                         "op4": "cheb"}.items()},
            **{f"b_{k}": v for k, v in {"link": "0-1-2-3", "op1": "fc", "op2": "gin", "op3": "arma",
                                         "op4": "skip"}.items()},
            "a_template": "os", "b_template": "ws", "bw_split": 0.5, "a_buffer_kb": 256, "b_buffer_kb": 256}
    lat = [co.hardware({**arch, "pe_split": f})["latency_a_ms"] for f in (0.25, 0.5)]  # 32x32 -> 32x64
    assert lat[1] <= lat[0]


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, field", [
    (lambda: Gemm(0, 1, 1), "Gemm.m"),
    (lambda: Gemm(1, 1, 1, bytes_per_element=0), "Gemm.bytes_per_element"),
    (lambda: Gemm(1, 1, 1, b_elements=-3), "Gemm.b_elements"),
    (lambda: Template("xx", "m", "m", "k"), "Template 'xx'"),
    (lambda: template("nvdla"), "template"),
    (lambda: SubAccelerator("ws", 0, 4, 0.5, 64), "SubAccelerator.rows"),
    (lambda: SubAccelerator("ws", 4, 4, 1.5, 64), "SubAccelerator.bandwidth_share"),
    (lambda: SubAccelerator("ws", 4, 4, 0.5, 0), "SubAccelerator.buffer_kb"),
    (lambda: Technology(clock_hz=0), "Technology.clock_hz"),
    (lambda: Technology(e_dram_pj_per_byte=-1), "Technology.e_dram_pj_per_byte"),
    (lambda: HeterogeneousAccelerator((SubAccelerator("ws", 64, 64, 0.5, 64),), 1024, 1e9), "pe_budget 1024"),
    (lambda: HeterogeneousAccelerator((SubAccelerator("ws", 4, 4, 0.7, 64),) * 2, 1024, 1e9), "bandwidth shares"),
    (lambda: HeterogeneousAccelerator((SubAccelerator("ws", 4, 4, 0.5, 64),), 1024, 0), "dram_bandwidth"),
    (lambda: HeterogeneousAccelerator((SubAccelerator("ws", 4, 4, 0.5, 64),), 64, 1e9).network(1, []), "sub"),
    (lambda: array_shape(1000), "pes"),
    (lambda: conv_gemm(6, 8, (3,), (4,), groups=4), "in_channels"),
    (lambda: as_workloads([(1, 2)]), r"shapes\[0\]"),
    (lambda: map_gemm(Gemm(1, 1, 1), SubAccelerator("ws", 4, 4, 0.5, 64), 0), "bandwidth"),
    (lambda: CoExploration(pe_fractions=(0.5, 1.5)), "pe_fractions"),
    (lambda: CoExploration(pe_budget=1000, pe_fractions=(0.5,)), "pe_fractions: 0.5 of pe_budget 1000"),
    (lambda: CoExploration(templates=("ws", "tpu")), "template"),
    (lambda: nasbench_graph_workloads({"link": "0-0-0-0", "op1": "mlp", "op2": "gcn", "op3": "gcn", "op4": "gcn"},
                                      GRAPHS["cora"]), "op1"),
])
def test_bad_input_raises_a_config_error_naming_the_field(make, field):
    with pytest.raises(ConfigError, match=field):
        make()


# ---------------------------------------------------------------------------------------------- NAS-Bench-Graph mapping
def test_a_nas_bench_graph_architecture_maps_to_the_documented_gemms():
    cora = GRAPHS["cora"]
    assert (cora.degree(), cora.degree(self_loops=False)) == (5, 4)  # ceil(13264 / 2708), ceil(10556 / 2708)
    chain = {"link": "0-1-2-3", "op1": "gcn", "op2": "fc", "op3": "skip", "op4": "skip"}
    got = [(g.name, g.m, g.n, g.k, g.count, g.b_elements) for g in nasbench_graph_workloads(chain, cora)]
    assert got == [("node1.gcn.lin", 2708, 256, 1433, 1, None), ("node1.gcn.agg", 2708, 256, 5, 1, 2708 * 256),
                   ("node2.fc.lin", 2708, 256, 256, 1, None), ("output.classifier", 2708, 7, 256, 1, None)]
    # skips straight off the raw features reach the output at width F: one projection F -> h is charged
    skips = {"link": "0-0-0-0", "op1": "skip", "op2": "skip", "op3": "sage", "op4": "skip"}
    names = [g.name for g in nasbench_graph_workloads(skips, cora)]
    assert names == ["node3.sage.agg", "node3.sage.lin", "output.project", "output.classifier"]


def test_the_joint_space_and_its_hardware_metrics():
    co = CoExploration()
    space = co.space()
    assert len(space.fields) == 16 and len(co.hardware_designs()) == 4 * 5 * 5 * 4 * 4
    assert set(co.architecture_space().fields) == {f"{t}_{f}" for t in "ab" for f in
                                                   ("link", "op1", "op2", "op3", "op4")}
    import numpy as np

    arch = space.sample(np.random.default_rng(0))
    acc = co.accelerator({**arch, "pe_split": 0.375})
    assert [(s.rows, s.cols) for s in acc.subs] == [(32, 48), (32, 80)]
    m = co.hardware(arch)
    assert set(m) == {"latency_a_ms", "latency_b_ms", "energy_a_mj", "energy_b_mj", "energy_mj", "area_mm2"}
    assert m["energy_mj"] == pytest.approx(m["energy_a_mj"] + m["energy_b_mj"])


# ---------------------------------------------------------------------------------------------- the experiment, reduced
def load_experiment():
    path = ROOT / "experiments" / "accelerator_coexplore.py"
    sys.path.insert(0, str(path.parent))  # it imports its sibling `reporting`
    spec = importlib.util.spec_from_file_location("accelerator_coexplore_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_joint_search_is_feasible_where_nas_first_is_not(nbg_dir):
    """(a) every design returned meets the specs; (b) the table-optimum networks fit no hardware design while
    the joint search finds feasible designs, better than fixing the hardware first; (c) each search in seconds."""
    from nas.tabular import nas_bench_graph

    ex = load_experiment()
    co = CoExploration()
    tables = (nas_bench_graph("cora", nbg_dir), nas_bench_graph("citeseer", nbg_dir))
    oracle = ex.nas_first_oracle(co, tables, ex.SPECS)
    assert not oracle["feasible"] and all(p["feasible_designs"] == 0 for p in oracle["pairs"])
    joint = [ex.run_joint(co, tables, "evolution", seed, 300, ex.SPECS) for seed in (0, 1)]
    hw_first = [ex.run_hw_first(co, tables, seed, 300, ex.SPECS) for seed in (0, 1)]
    for r in joint + hw_first:
        assert "metrics" in r and ex.feasible(r["metrics"], ex.SPECS)  # (a)
        assert r["seconds"] < 60  # (c), with a wide margin for a loaded machine
    top = max(p["valid_acc"] for p in oracle["pairs"])
    for j, h in zip(joint, hw_first):  # (b)
        assert h["metrics"]["valid_acc"] < j["metrics"]["valid_acc"] < top
