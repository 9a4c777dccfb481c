"""Precision search (issue 21 part 3): number formats and fake quantization, packed export, HAWQ Hessian figures
and allocation, the joint precision space, and reduced runs of the experiment, the example and docs/precision.md."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError
from nas.hardware import (FORMATS, FakeQuant, PrecisionMLPSpace, allocate, exported_size, fake_quant,
                          hessian_top_eigenvalue, hessian_trace, model_size, model_size_bits, pack_model,
                          precision_cost, quantize, quantize_model)
from nas.hardware.hawq import allocation_size
from nas.hardware.packing import _DecodeFloat8
from nas.hardware.precision_space import PrecisionMLPConfig
from nas.hardware.quantization import float_scale, int_scale, perturbation

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")
FP8 = {"fp8-e4m3": torch.float8_e4m3fn, "fp8-e5m2": torch.float8_e5m2}


def load_module(path: Path) -> object:
    """A script (experiment or example) as a module, without running its __main__ block."""
    import importlib.util
    import sys

    sys.path.insert(0, str(path.parent))  # experiments import their sibling `reporting`
    spec = importlib.util.spec_from_file_location(f"precision_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mlp(*sizes: int, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.Tanh()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------- formats
@pytest.mark.parametrize("name", list(FP8))
def test_fp8_is_torchs_float8_cast_after_a_power_of_two_scale(name):
    fmt, dtype = FORMATS[name], FP8[name]
    w = torch.randn(6, 40, generator=torch.Generator().manual_seed(1)) * torch.logspace(-3, 2, 6)[:, None]
    s = float_scale(w, fmt)
    assert torch.equal(torch.log2(s), torch.round(torch.log2(s)))  # powers of two: scaling is exact
    assert torch.equal(quantize(w, fmt), (w / s[:, None]).to(dtype).float() * s[:, None])
    assert bool(((w.abs().amax(1) / s) <= fmt.max_value).all()) and bool(((w.abs().amax(1) / s) > fmt.max_value / 2).all())
    # with a channel maximum at the format's largest value the scale is 1: quantize is the plain cast
    w[:, 0] = fmt.max_value
    w = w.clamp(-fmt.max_value, fmt.max_value)
    assert torch.equal(quantize(w, fmt), w.to(dtype).float())


@pytest.mark.parametrize("name", list(FP8))
def test_every_finite_fp8_code_decodes_exactly_and_values_saturate(name):
    fmt, dtype = FORMATS[name], FP8[name]
    bits = torch.arange(256, dtype=torch.uint8).reshape(1, 256)
    want = bits.view(dtype).float()
    finite = torch.isfinite(want)
    got = _DecodeFloat8.forward(None, bits, torch.ones(1), name)
    assert torch.equal(got[finite], want[finite])
    # torch's e5m2 cast overflows to inf and e4m3fn has no inf: quantize clamps to the finite range first
    assert torch.isinf(torch.tensor([1e6]).to(torch.float8_e5m2).float()).all()
    from nas.hardware.quantization import float_codes

    assert float_codes(torch.tensor([[1e9, -1e9]]), fmt, torch.ones(1)).float().abs().max() == fmt.max_value


@pytest.mark.parametrize("name", ["int8", "int4", "int2"])
def test_integer_error_is_at_most_half_a_step_and_the_channel_maximum_is_exact(name):
    fmt = FORMATS[name]
    w = torch.randn(8, 33, generator=torch.Generator().manual_seed(2)) * torch.linspace(0.01, 3, 8)[:, None]
    q, s = quantize(w, fmt), int_scale(w, fmt)
    assert torch.allclose(s, w.abs().amax(1) / fmt.max_value)
    assert bool(((q - w).abs() <= s[:, None] / 2 * (1 + 1e-6)).all())
    steps = q / s[:, None]
    assert torch.allclose(steps, steps.round(), atol=1e-4) and steps.abs().max() <= fmt.max_value + 1e-4
    peak = w.abs().argmax(1)
    assert torch.allclose(q.gather(1, peak[:, None]), w.gather(1, peak[:, None]), rtol=1e-6)
    assert len(torch.unique(steps.round())) <= 2 ** fmt.bits - 1  # symmetric: 2^b - 1 levels
    assert perturbation(w, "int8") < perturbation(w, "int4") < perturbation(w, "int2")


def test_straight_through_gradient_passes_and_a_fake_quant_layer_trains():
    w = torch.randn(5, 7, requires_grad=True)
    (fake_quant(w, "int4") * torch.arange(7.0)).sum().backward()
    assert torch.equal(w.grad, torch.arange(7.0).expand(5, 7))
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    layer = FakeQuant(nn.Linear(8, 3), "int4", activations=True)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    first = F.cross_entropy(layer(x), y).item()
    for _ in range(30):
        opt.zero_grad()
        F.cross_entropy(layer(x), y).backward()
        opt.step()
    assert F.cross_entropy(layer(x), y).item() < first
    conv = FakeQuant(nn.Conv2d(2, 4, 3), "fp8-e4m3")
    img = torch.randn(1, 2, 6, 6)
    want = F.conv2d(img, quantize(conv.layer.weight.detach(), "fp8-e4m3"), conv.layer.bias)
    assert torch.allclose(conv(img), want, atol=1e-6)
    conv(img).sum().backward()
    assert conv.layer.weight.grad is not None and conv.layer.weight.grad.abs().sum() > 0


def test_bad_formats_raise_config_errors_naming_the_layer():
    model = mlp(4, 6, 2)
    with pytest.raises(ConfigError, match=r"formats\['0'\].*int3.*known"):
        quantize_model(model, {"0": "int3"})
    with pytest.raises(ConfigError, match=r"formats\['fc9'\].*no Linear/Conv layer.*0, 2"):
        quantize_model(model, {"fc9": "int8"})
    with pytest.raises(ConfigError, match=r"formats\['2'\]"):
        model_size_bits(model, {"2": 8})
    with pytest.raises(ConfigError, match="PrecisionMLPConfig.formats\\[1\\]"):
        PrecisionMLPConfig(formats=("int8", "bf4"))


# ---------------------------------------------------------------------------------------- packing and size
def test_packed_model_computes_the_fake_quant_outputs_and_stores_exactly_model_size_bits(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 7), nn.ReLU(), nn.Linear(7, 5),
                          nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 3), nn.ReLU(), nn.Unflatten(1, (1, 3)),
                          nn.Conv1d(1, 2, 3), nn.Flatten())
    formats = {"1": "int4", "3": "int8", "5": "fp8-e4m3", "7": "fp8-e5m2", "9": "int2", "12": "int8"}
    packed = pack_model(model, formats).eval()
    fq = quantize_model(model, formats).eval()
    x = torch.randn(4, 1, 12)
    with torch.no_grad():
        assert torch.equal(packed(x), fq(x))
    size = model_size(model, formats)
    state = packed.state_dict()
    assert sum(8 * t.numel() * t.element_size() for t in state.values()) == size.total_bits
    assert size.weight_bits == 9 * 8 * 6 + 7 * 9 * 8 + 5 * 7 * 8 + 5 * 5 * 8 + 3 * 8 * 2 + 2 * 3 * 8
    assert state["1.codes"].dtype == torch.uint8 and state["3.codes"].dtype == torch.int8
    # ONNX the way nas.export writes it (TorchScript exporter, opset 17, constant folding on): packed initializers
    from nas.export import _onnx

    torch.save(state, tmp_path / "weights.pt")
    info = _onnx(packed, x[:2], tmp_path / "model.onnx", x)
    assert info["checker"] == "passed" and info["onnxruntime_max_abs_diff"] < 1e-5
    measured = exported_size(tmp_path)
    assert measured.onnx_missing == ()
    assert measured.onnx_parameter_bits == measured.state_tensor_bits == size.total_bits
    assert measured.onnx_dtypes["1.codes"] == "UINT8" and measured.onnx_dtypes["3.codes"] == "INT8"


def test_precision_cost_charges_each_format_at_its_device_dtype():
    model, x = mlp(64, 64, 10), torch.zeros(1, 64)
    full = precision_cost(model, {}, x, "h100_sxm")
    int8 = precision_cost(model, {"0": "int8", "2": "int8"}, x, "h100_sxm")
    orin = precision_cost(model, {"0": "fp8-e4m3", "2": "int4"}, x, "jetson_orin_nano")
    assert int8.size_bits < full.size_bits and int8.latency_ms < full.latency_ms and int8.energy_uj < full.energy_uj
    assert orin.dtypes == {"0": "float16", "2": "int8"}  # no fp8 or int4 units on the Orin: next wider dtype
    assert set(orin.metrics()) == {"size_bits", "latency_ms", "energy_uj"}
    assert "energy_uj" not in precision_cost(model, {}, x, "pixel4_a76").metrics()  # no energy figures


# ---------------------------------------------------------------------------------------- HAWQ
def _exact_hessian(model: nn.Module, layer: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    w = model.get_submodule(layer).weight

    def loss(flat: torch.Tensor) -> torch.Tensor:
        params = {**dict(model.named_parameters()), f"{layer}.weight": flat.reshape(w.shape)}
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss, w.detach().flatten()).double()


def test_power_iteration_and_hutchinson_match_the_exact_hessian_of_a_small_mlp():
    model = mlp(8, 16, 4, seed=0)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=gen), torch.randint(0, 4, (64,), generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for layer in ("0", "2"):
        h = _exact_hessian(model, layer, x, y)
        top = float(torch.linalg.eigvalsh(h).abs().max())
        eig = hessian_top_eigenvalue(model, F.cross_entropy, (x, y), params=layer, seed=0)
        assert eig.converged and abs(eig.value - top) <= 0.05 * top
        tr = hessian_trace(model, F.cross_entropy, [(x[:32], y[:32]), (x[32:], y[32:])], params=layer,
                           samples=200, seed=0)
        assert abs(tr.value - float(h.trace())) <= 0.10 * float(h.trace())
        assert tr.std_error < 0.04 * tr.value  # the estimate's own error is small, not a lucky draw
        again = hessian_trace(model, F.cross_entropy, (x, y), params=layer, samples=200, seed=0)
        assert again.value == pytest.approx(tr.value, rel=1e-9)  # deterministic (batches vs one batch: same H)


def test_allocation_is_the_exact_knapsack_optimum():
    gen = torch.Generator().manual_seed(3)
    weights = {f"l{i}": torch.randn(4 + 3 * i, 10, generator=gen) for i in range(4)}
    sens = {n: float(s) for n, s in zip(weights, [5.0, 0.1, 2.0, 0.7])}
    shapes = {n: tuple(w.shape) for n, w in weights.items()}
    fmts = ["int2", "int4", "int8"]
    budget = 4.5 * sum(w.numel() for w in weights.values())
    got = allocate(weights, sens, fmts, budget)
    best = min((sum(sens[n] * perturbation(weights[n], f) for n, f in zip(weights, c)), c)
               for c in itertools.product(fmts, repeat=4)
               if allocation_size(shapes, dict(zip(weights, c))) <= budget)
    assert got.omega == pytest.approx(best[0]) and tuple(got.formats.values()) == best[1]
    assert got.bits == allocation_size(shapes, got.formats) <= budget
    with pytest.raises(ConfigError, match="budget_bits"):
        allocate(weights, sens, fmts, 10)


# ---------------------------------------------------------------------------------------- the space
def test_precision_space_supernet_subnet_and_size_agree():
    space = PrecisionMLPSpace(PrecisionMLPConfig(hidden=(16, 12), widths=(0.5, 1.0)))
    supernet = space.supernet()
    x = torch.randn(5, 1, 8, 8)
    rng = np.random.default_rng(0)
    for arch in [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(6))]:
        sub = supernet.subnet(arch)
        with torch.no_grad():
            assert torch.allclose(supernet(x, arch), sub(x), atol=1e-6)
        bits = sum(8 * t.numel() * t.element_size() for t in sub.state_dict().values())
        assert bits == space.size_bits(arch) == space.cost(arch, "h100_sxm").size_bits
        assert type(space.build(arch)) is type(sub)
        space.build(arch).load_state_dict(sub.state_dict(), strict=True)
    assert space.largest()["head_format"] == "fp32" and space.smallest()["head_format"] == "int4"


# ---------------------------------------------------------------------------------------- reduced runs
def test_reduced_hawq_experiment_writes_its_report(tmp_path):
    exp = load_module(ROOT / "experiments" / "precision_hawq.py")
    with pytest.warns(UserWarning):  # the protocol warns about fewer than 10 seeds
        report = exp.main(["--seeds", "2", "--random", "3", "--samples", "5", "--epochs", "2",
                           "--probe-seeds", "1", "--joint-seeds", "1", "--joint-epochs", "1", "--trials", "4",
                           "--workdir", str(tmp_path / "runs"), "--out", str(tmp_path / "hawq.json")])
    assert (tmp_path / "hawq.json").is_file()
    for setting in exp.SETTINGS:
        c = report["comparisons"][setting]
        assert set(c) >= {"hawq-trace", "hawq-eigen", "mse-only", "random", "protocol"}
        assert 0 <= c["hawq-trace"]["seeds_beating_random_mean"] <= 2
        for seed in report["seeds"]:
            res = seed["settings"][setting]
            assert all(r["bits_per_weight"] <= exp.SETTINGS[setting]["bits"] + 1e-9
                       for r in [*res["random"]["allocations"], *res["methods"].values()])
    assert "| low-bit | hawq-trace |" in report["table"]
    assert "| narrow-per-tensor | hawq-trace |" in report["table"]
    assert set(report["width_probe"]) == {str(w) for w in exp.PROBE_WIDTHS}
    joint = report["joint"]
    assert joint["all_sizes_match_onnx"] and joint["all_sizes_match_state_dict"] and joint["all_within_budget"]
    assert set(joint["runs"]) == {"nsga2", "random"} and "all-int4" in joint["baselines"]


def test_reduced_precision_search_exports_a_model_of_the_measured_size(tmp_path):
    example = load_module(ROOT / "examples" / "precision_search.py")
    out = example.main(tmp_path / "run", budget_bits=30_000, trials=8, epochs=1)
    size = out["exported"]
    assert out["searched"]["size_bits"] <= 30_000
    assert not size["onnx_missing"]
    assert size["onnx_state_bits"] == size["state_tensor_bits"] == out["searched"]["size_bits"]
    assert out["onnx"]["onnxruntime_max_abs_diff"] < 1e-4 and out["supernet_max_abs_diff"] < 1e-5
    assert out["measured_accuracy_pct"] == pytest.approx(out["searched"]["accuracy_pct"])


def test_precision_doc_examples_run(tmp_path, monkeypatch):
    from tests.docs import python_blocks

    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "precision_doc"}
    for block in python_blocks(ROOT / "docs" / "precision.md"):
        exec(compile(block, "docs/precision.md", "exec"), namespace)
    assert math.isfinite(namespace["eig"].value)
