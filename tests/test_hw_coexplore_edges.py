"""Edge cases of precision cost, the accelerator workloads, HAWQ allocation, number formats, co-exploration and the MPC
cost model (the hardware co-exploration review's defects 1-7 and its minor items)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from nas.cli.hardware import app
from nas.errors import ConfigError
from nas.hardware import CoExploration, allocate, model_size, pack_model, precision_cost, quantize_model
from nas.hardware.accelerator import Technology, module_workloads
from nas.hardware.mpc import MPCLatency, NetworkProfile, Protocol, compare
from nas.hardware.quantization import NumberFormat, check_formats, get_format, quantizable_layers


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn, self.head = nn.MultiheadAttention(16, 2, batch_first=True), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(x, x, x)[0])


# -- 1: Linear layers inside torch composite layers
@pytest.mark.parametrize("make, inner, outer", [
    (lambda: _Attention(), "attn.out_proj", "MultiheadAttention"),
    (lambda: nn.Sequential(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0), nn.Linear(16, 4)),
     "0.linear1", "TransformerEncoderLayer")])
def test_linear_inside_a_torch_composite_layer_is_refused_naming_it(make, inner, outer):
    """Old code: accepted, priced at int4 for size but fp32 for latency / energy, and crashed in eval mode."""
    torch.manual_seed(0)
    model, x = make().eval(), torch.randn(1, 5, 16)
    head = "head" if isinstance(model, _Attention) else "1"
    assert list(quantizable_layers(model)) == [head]
    for call in (lambda: check_formats(model, {inner: "int4"}), lambda: model_size(model, {inner: "int4"}),
                 lambda: precision_cost(model, {inner: "int4"}, x, "jetson_orin_nano"),
                 lambda: quantize_model(model, {inner: "int4"}), lambda: pack_model(model, {inner: "int4"})):
        with pytest.raises(ConfigError, match=rf"formats\['{inner}'\]: not quantizable.*\({outer}\)"):
            call()
    fp32 = precision_cost(model, {}, x, "jetson_orin_nano")
    cost = precision_cost(model, {head: "int8"}, x, "jetson_orin_nano")  # the layers outside still price
    assert cost.dtypes == {head: "int8"} and cost.size_bits < fp32.size_bits and cost.latency_ms != fp32.latency_ms
    assert quantize_model(model, {head: "int4"})(x).shape == pack_model(model, {head: "int4"})(x).shape == (1, 5, 4)


# -- 2: convolutions on unbatched input
@pytest.mark.parametrize("conv, x", [(nn.Conv1d(4, 6, 3), torch.randn(4, 10)),
                                     (nn.Conv2d(4, 6, 3, groups=2), torch.randn(4, 10, 10))])
def test_module_workloads_of_an_unbatched_convolution_match_a_batch_of_one(conv, x):
    """Old code: the output's channels taken as the batch and one spatial dimension dropped (m=6, not 8)."""
    [unbatched], [batched] = module_workloads(conv, x), module_workloads(conv, x[None])
    assert (unbatched.m, unbatched.n, unbatched.k, unbatched.count) == (batched.m, batched.n, batched.k, batched.count)
    assert unbatched.macs == batched.macs


# -- 3: HAWQ with a non-finite sensitivity
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "high"])
def test_allocate_refuses_a_sensitivity_that_is_not_finite_naming_the_layer(bad):
    """Old code: NaN / inf blamed budget_bits ('1280 is below the smallest allocation (320 bits)'); a string gave
    a bare ValueError."""
    torch.manual_seed(0)
    w = {"a": torch.randn(8, 16), "b": torch.randn(4, 8)}
    with pytest.raises(ConfigError, match=r"sensitivity\['a'\]: expected a finite number"):
        allocate(w, {"a": bad, "b": 1.0}, ["int2", "int4", "int8"], budget_bits=8 * 160)
    assert allocate(w, {"a": 1.0, "b": 1.0}, ["int2", "int4", "int8"], 8 * 160).formats == {"a": "int8", "b": "int8"}
    with pytest.raises(ConfigError, match=r"budget_bits: expected a finite number >= 0 \(bits\), got nan"):
        allocate(w, {"a": 1.0, "b": 1.0}, ["int2", "int4", "int8"], float("nan"))


# -- 4: user-defined number formats
@pytest.mark.parametrize("args, field", [
    (("int0", "int", 0, 0.0, 8, ("int8",)), "bits"),
    (("intneg", "int", -4, 7.0, 8, ("float32",)), "bits"),
    (("zero", "int", 4, 0.0, 8, ("int8",)), "max_value"),
    (("wide", "int", 4, 8.0, 8, ("int8",)), "max_value"),  # codes -8..8 do not fit 4 bits
    (("half", "int", 4, 6.5, 8, ("int8",)), "max_value"),
    (("act0", "int", 4, 7.0, 0, ("int8",)), "activation_bits"),
    (("what", "posit", 8, 7.0, 8, ()), "kind"),
    (("f8", "float", 8, 448.0, 8, ("float8",)), "torch_dtype")])
def test_number_format_refuses_records_the_quantizers_cannot_use(args, field):
    """Old code: zero bits gave NaN weights and ZeroDivisionError, negative bits a negative model size."""
    with pytest.raises(ConfigError, match=rf"NumberFormat\('{args[0]}'\)\.{field}"):
        NumberFormat(*args)


def test_a_valid_custom_int16_format_is_sized_at_its_width():
    int16 = NumberFormat("int16", "int", 16, 32767.0, 16, ("float32",))
    model = nn.Sequential(nn.Linear(16, 8))
    assert model_size(model, {"0": int16}).weight_bits == 16 * 16 * 8
    from nas.hardware.packing import pack_model

    with pytest.raises(ConfigError, match=r"format: int16 \(16-bit int\) cannot be packed"):  # was ZeroDivisionError
        pack_model(model, {"0": int16})


def test_unknown_format_lists_every_known_format_including_int2():
    with pytest.raises(ConfigError, match=r"known: int2, int4, int8, fp8-e4m3, fp8-e5m2, fp32"):
        get_format("int3")


# -- 5: CoExploration's own settings
@pytest.mark.parametrize("kw, field", [
    (dict(pe_budget=4096.0), "pe_budget"), (dict(pe_budget=-4096), "pe_budget"), (dict(pe_budget="4096"), "pe_budget"),
    (dict(dram_bandwidth="25.6e9"), "dram_bandwidth"), (dict(dram_bandwidth=-1.0), "dram_bandwidth"),
    (dict(tech="45nm"), "tech")])
def test_coexploration_checks_its_pe_budget_bandwidth_and_tech_at_construction(kw, field):
    """Old code: blamed pe_fractions, a bare TypeError, or accepted and failed at the first co.hardware(arch)."""
    with pytest.raises(ConfigError, match=rf"^{field}: expected"):
        CoExploration(**kw)
    co = CoExploration(pe_budget=2048, dram_bandwidth=12.8e9, tech=Technology(clock_hz=1e9))
    assert co.hardware(co.space().sample(np.random.default_rng(0)))["area_mm2"] > 0


def test_coexploration_evaluator_checks_the_fixed_design():
    """Old code: a partial design gave a bare KeyError on every trial; a value outside the space was used."""
    co = CoExploration()
    tables = [lambda net: {"valid_acc": 0.5, "test_acc": 0.5}] * 2
    design = co.hardware_designs()[0]
    arch = {k: v for k, v in co.space().sample(np.random.default_rng(0)).items() if k in co.architecture_space().fields}
    assert co.evaluator(tables, design)(arch)["valid_acc"] == 0.5
    partial = {k: v for k, v in design.items() if k != "b_template"}
    with pytest.raises(ConfigError, match=r"design: b_template: missing"):
        co.evaluator(tables, partial)
    with pytest.raises(ConfigError, match=r"design: bw_split"):
        co.evaluator(tables, {**design, "bw_split": 0.9})


# -- 6: MPCLatency's profile and protocol
@pytest.mark.parametrize("kw, field", [
    (dict(profile=3), "profile"), (dict(profile={"round_latency_s": 0.04, "bandwidth_bytes_s": 12.5e6}), "profile"),
    (dict(protocol={"ring_bits": 64}), "protocol")])
def test_mpc_latency_refuses_a_profile_or_protocol_of_the_wrong_type(kw, field):
    """Old code: constructed, then AttributeError at the first architecture."""
    with pytest.raises(ConfigError, match=rf"^{field}: expected"):
        MPCLatency(None, seq_len=4, **kw)
    mine = MPCLatency(None, NetworkProfile("metro", 5e-3, 1e9 / 8), Protocol(ring_bits=32), seq_len=4)
    assert mine(nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 2)))["mpc_rounds"] == 2.0


# -- 7: ring sizes
@pytest.mark.parametrize("bits", [4, 12, 63])
def test_protocol_refuses_a_ring_that_is_not_whole_bytes(bits):
    """Old code: ring_bits=4 sent 0 bytes, 12 was charged as 8-bit words."""
    with pytest.raises(ConfigError, match=rf"ring_bits: expected a multiple of 8.*got {bits}"):
        Protocol(ring_bits=bits)


@pytest.mark.parametrize("bits, levels", [(8, 3), (16, 4), (48, 6), (64, 6), (72, 7)])
def test_compare_uses_a_ceil_log2_level_adder(bits, levels):
    """Old code: int(log2 48) = 5 levels; a 48-bit carry-lookahead adder needs 6."""
    cost = compare(Protocol(ring_bits=bits), 1)
    ands = 1 + 2 * levels
    assert (cost.rounds, cost.bytes) == (levels + 2, (2 * ands + 1) * bits // 8)


# -- minor: the calibrate command
def test_calibrate_refuses_a_non_positive_duration():
    """Old code: --seconds -1 was accepted and printed a single-shot measurement."""
    out = CliRunner().invoke(app, ["calibrate", "--seconds=-1"])
    assert out.exit_code == 2 and "--seconds: expected a finite number > 0" in out.output, out.output
