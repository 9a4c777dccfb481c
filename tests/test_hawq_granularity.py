"""Per-tensor scale granularity: quantizers, FakeQuant, size accounting and HAWQ allocation (issue 21 part 3)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError
from nas.hardware.hawq import allocate, allocation_size
from nas.hardware.quantization import (FakeQuant, get_format, layer_bits, model_size, perturbation, quantize,
                                       quantize_model, scale_of)


def _outlier_weight() -> torch.Tensor:
    """Row 0 holds weights 100x larger than row 1: one scale for both wipes row 1 out in int4."""
    gen = torch.Generator().manual_seed(0)
    w = torch.rand(2, 16, generator=gen) * 0.9 + 0.1
    w[0] *= 100.0
    return w


def test_per_tensor_int_scale_is_one_max_abs_step_for_every_row():
    w = _outlier_weight()
    fmt = get_format("int4")
    q = quantize(w, "int4", "tensor")
    step = float(w.abs().max()) / 7
    assert torch.allclose(scale_of(w, fmt, "tensor"), torch.full((2,), step))
    assert torch.allclose(q / step, torch.round(w / step), atol=1e-5)  # codes on one grid for the whole tensor
    assert torch.equal(q[1], torch.zeros(16))  # the small row rounds to zero (its weights are < step / 2)
    per_channel = quantize(w, "int4")
    assert torch.equal(per_channel, quantize(w, "int4", "channel"))  # the default is per channel
    assert (per_channel[1] != 0).all()
    row_error = float(((per_channel[1] - w[1]) ** 2).sum())
    assert float((w[1] ** 2).sum()) > 100 * row_error  # per channel, the small row keeps its values
    assert perturbation(w, "int4", "tensor") - perturbation(w, "int4") > 0.9 * float((w[1] ** 2).sum())


def test_per_tensor_float8_scale_is_the_tensor_power_of_two():
    w = _outlier_weight()
    fmt = get_format("fp8-e4m3")
    scale = 2.0 ** torch.ceil(torch.log2(w.abs().max() / fmt.max_value))
    expected = (w / scale).to(torch.float8_e4m3fn).float() * scale
    assert torch.equal(quantize(w, "fp8-e4m3", "tensor"), expected)
    assert torch.equal(scale_of(w, fmt, "tensor"), scale.expand(2))


def test_fake_quant_and_quantize_model_use_the_granularity():
    torch.manual_seed(0)
    layer = nn.Linear(16, 2)
    with torch.no_grad():
        layer.weight.copy_(_outlier_weight())
    x = torch.randn(5, 16, requires_grad=True)
    fq = FakeQuant(layer, "int4", granularity="tensor")
    out = fq(x)
    assert torch.allclose(out, F.linear(x, quantize(layer.weight, "int4", "tensor"), layer.bias))
    out.sum().backward()  # straight-through: the weight's gradient is that of the float layer
    assert torch.allclose(layer.weight.grad, x.detach().sum(0).expand(2, 16))
    assert "granularity=tensor" in repr(fq) and "granularity" not in repr(FakeQuant(layer, "int4"))
    model = nn.Sequential(nn.Linear(16, 2))
    with torch.no_grad():
        model[0].weight.copy_(_outlier_weight())
    q = quantize_model(model, {"0": "int4"}, granularity="tensor")
    assert q[0].granularity == "tensor"
    assert torch.allclose(q(x.detach()), fq(x.detach()).detach() - layer.bias + model[0].bias)


def test_size_counts_one_scale_per_tensor():
    fmt = get_format("int4")
    assert layer_bits((6, 10), fmt) == (6 * 8 * 5, 6 * 32)
    assert layer_bits((6, 10), fmt, "tensor") == (6 * 8 * 5, 32)
    assert layer_bits((6, 10), get_format("fp32"), "tensor") == (6 * 10 * 32, 0)
    model = nn.Sequential(nn.Linear(10, 6), nn.ReLU(), nn.Linear(6, 3))
    formats = {"0": "int8", "2": "int4"}
    per_channel, per_tensor = model_size(model, formats), model_size(model, formats, granularity="tensor")
    assert per_channel.scale_bits == (6 + 3) * 32 and per_tensor.scale_bits == 2 * 32
    assert per_tensor.weight_bits == per_channel.weight_bits and per_tensor.other_bits == per_channel.other_bits
    shapes = {"0": (6, 10), "2": (3, 6)}
    assert allocation_size(shapes, formats, with_scales=True, granularity="tensor") == per_tensor.weight_bits + 64
    assert allocation_size(shapes, formats, granularity="tensor") == allocation_size(shapes, formats)


def test_per_tensor_allocation_is_the_exact_knapsack_optimum_with_its_own_errors_and_scales():
    gen = torch.Generator().manual_seed(5)
    weights = {f"l{i}": torch.randn(4 + 2 * i, 12, generator=gen) for i in range(4)}
    weights["l1"][0] *= 5.0  # an outlier row: one scale for l1 coarsens its other rows' grid 5x
    sens = {"l0": 1.0, "l1": 0.1, "l2": 2.0, "l3": 0.3}
    shapes = {n: tuple(w.shape) for n, w in weights.items()}
    fmts = ["int4", "int8", "fp8-e4m3", "fp8-e5m2"]
    budget = 6 * sum(w.numel() for w in weights.values()) + 32 * sum(w.shape[0] for w in weights.values())
    for gran in ("channel", "tensor"):
        got = allocate(weights, sens, fmts, budget, with_scales=True, granularity=gran)
        best = min((sum(sens[n] * perturbation(weights[n], f, gran) for n, f in zip(weights, c)), c)
                   for c in itertools.product(fmts, repeat=4)
                   if allocation_size(shapes, dict(zip(weights, c)), True, gran) <= budget)
        assert got.omega == pytest.approx(best[0]) and tuple(got.formats.values()) == best[1]
        assert got.bits == allocation_size(shapes, got.formats, True, gran) <= budget
    code_budget = 6 * sum(w.numel() for w in weights.values())  # the granularity changes what l1 gets
    assert allocate(weights, sens, fmts, code_budget).formats["l1"] == "int4"
    assert allocate(weights, sens, fmts, code_budget, granularity="tensor").formats["l1"] == "int8"


@pytest.mark.parametrize("call", [
    lambda: quantize(torch.ones(2, 2), "int4", "row"),
    lambda: FakeQuant(nn.Linear(2, 2), "int4", granularity="row"),
    lambda: quantize_model(nn.Sequential(nn.Linear(2, 2)), {"0": "int4"}, granularity="row"),
    lambda: layer_bits((2, 2), get_format("int4"), "row"),
    lambda: allocate({"a": torch.ones(2, 2)}, {"a": 1.0}, ["int4"], 100, granularity="row"),
])
def test_unknown_granularity_is_a_config_error_naming_the_field(call):
    with pytest.raises(ConfigError, match="granularity"):
        call()
