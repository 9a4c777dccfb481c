"""Number formats and fake quantization: per-layer int4, int8, fp8-e4m3, fp8-e5m2 or fp32 weights (and an extra
int2), trainable.

* `NumberFormat` records (`FORMATS`, `get_format`): bits per weight, how a weight tensor is mapped onto the
  format's grid, and which device-profile dtypes can execute it (`compute_dtypes`, widest last).
* `quantize(w, fmt)`: the weights a layer computes with. Integers: symmetric, per output channel, scale from
  the channel's max-abs (`max|w| / (2^(b-1) - 1)`), round to nearest. fp8: per output channel, a power-of-two
  scale bringing the channel's max-abs to at most the format's largest finite value, then torch's
  `float8_e4m3fn` / `float8_e5m2` cast (round to nearest even, subnormals kept) after clamping to the finite
  range (saturation: e4m3fn has no infinity, and torch's e5m2 cast would give one). A power-of-two scale is
  exact, so the error is the cast's rounding alone, and the channel's largest weight lands in the format's
  top binade (at most one binade of range unused).
* Granularity: every quantizer, `FakeQuant`, `quantize_model`, `layer_bits` and `model_size` take
  `granularity="channel"` (the default above: one scale per output channel) or `"tensor"` (one scale for the
  whole weight, from its max-abs: what many accelerators support; a channel of small weights then shares the
  step of the largest one). A per-tensor layer stores one float32 scale. `nas.hardware.packing` and the export
  write per-channel scales only.
* `fake_quant(w, fmt)`: `quantize` with a straight-through estimator (forward quantized, gradient identity),
  so a network keeps training through its quantized weights (QAT, and the one-shot supernet of
  `nas.hardware.precision_space`).
* `FakeQuant(layer, fmt)`: a Linear / Conv1d / Conv2d computing with fake-quantized weights (and, with
  `activations=True`, an input fake-quantized at the format's `activation_bits`, the width the cost model
  charges: per-tensor, dynamic max-abs scale); `quantize_model(model,
  {layer path: format})` wraps the named layers of a copy of `model`.
* `model_size(model, formats)` / `model_size_bits`: the bits the packed model stores (`nas.hardware.packing`
  writes exactly these): codes at the format's width (int4 / int2 two / four to a byte, a row padded to
  whole bytes), one float32 scale per output channel, everything else its state_dict holds (biases, unlisted
  layers, BatchNorm statistics and their int64 `num_batches_tracked`) at its own width.
* `precision_cost(model, formats, inputs, device)`: size plus a per-format roofline latency and analytic
  energy from a device profile; a format the profile has no peak for runs at the next wider dtype it lists.
"""

from __future__ import annotations

import copy
import io
import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.counts import count_leaves, is_layer, layer_modules
from nas.errors import ConfigError, check_count, check_number
from nas.hardware.devices import DeviceProfile, load_device

__all__ = ["FORMATS", "FORMAT_NAMES", "GRANULARITIES", "FakeQuant", "ModelSize", "NumberFormat", "PrecisionCost",
           "activation_format", "check_formats", "fake_quant", "get_format", "model_size", "model_size_bits",
           "perturbation", "precision_cost", "quantizable_layers", "quantize", "quantize_model"]

QUANTIZABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)
SCALE_BITS = 32  # one float32 scale per output channel (per tensor: one for the weight)
GRANULARITIES: tuple[str, ...] = ("channel", "tensor")
"""Scale granularities: one scale per output channel (the default) or one per weight tensor."""
KINDS: tuple[str, ...] = ("int", "float", "fp32")


@dataclass(frozen=True)
class NumberFormat:
    """One number format a layer's weights can be stored and computed in.

    `kind` is "int" (symmetric integer, `bits` wide), "float" (a torch float8 dtype named by `torch_dtype`,
    `exponent_bits` / `mantissa_bits` / `exponent_bias` describing its bit layout) or "fp32" (unchanged).
    `max_value` is the largest finite value of the grid before scaling (2^(b-1) - 1 for integers).
    `activation_bits` is the width the cost model charges for a layer's inputs and outputs when it runs in
    this format (int4 weights run with int8 activations, W4A8). `compute_dtypes` are device-profile dtype
    names that can execute it, preferred first (`precision_cost` takes the first one a profile lists).
    """

    name: str
    kind: str
    bits: int
    max_value: float
    activation_bits: int
    compute_dtypes: tuple[str, ...]
    torch_dtype: str | None = None
    exponent_bits: int = 0
    mantissa_bits: int = 0
    exponent_bias: int = 0

    def __post_init__(self) -> None:
        """Refuse a record the quantizers and `layer_bits` cannot use (zero bits would divide by zero, a
        non-positive `max_value` gives NaN weights, integer codes wider than `bits` would be sized wrong)."""
        where = f"NumberFormat({self.name!r})"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"NumberFormat.name: expected a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ConfigError(f"{where}.kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        check_count(self.bits, f"{where}.bits")
        check_count(self.activation_bits, f"{where}.activation_bits")
        check_number(self.max_value, f"{where}.max_value")
        if not isinstance(self.compute_dtypes, tuple) or not all(isinstance(d, str) for d in self.compute_dtypes):
            raise ConfigError(f"{where}.compute_dtypes: expected a tuple of dtype names, got {self.compute_dtypes!r}")
        if self.kind == "int":
            qmax = 2 ** (self.bits - 1) - 1
            if not float(self.max_value).is_integer() or self.max_value > qmax:
                raise ConfigError(f"{where}.max_value: integer codes -max_value..max_value must be whole numbers "
                                  f"that fit in {self.bits} bits (at most {qmax}), got {self.max_value!r}")
        elif self.kind == "float" and not isinstance(self.torch_dtype, str):
            raise ConfigError(f"{where}.torch_dtype: a float format names its torch float8 dtype, "
                              f"got {self.torch_dtype!r}")
        elif self.kind == "fp32" and self.bits != 32:
            raise ConfigError(f"{where}.bits: an fp32 format is 32 bits, got {self.bits!r}")

    @property
    def quantized(self) -> bool:
        """False for fp32 (stored and computed as is)."""
        return self.kind != "fp32"

    def dtype(self) -> torch.dtype:
        """The torch float8 dtype of a "float" format."""
        if self.torch_dtype is None:
            raise ConfigError(f"format {self.name!r}: not a float8 format")
        dtype = getattr(torch, self.torch_dtype, None)
        if dtype is None:
            raise ConfigError(f"format {self.name!r}: this torch ({torch.__version__}) has no torch.{self.torch_dtype}")
        return dtype

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FORMATS: dict[str, NumberFormat] = {f.name: f for f in (
    NumberFormat("int2", "int", 2, 1.0, 8, ("int4", "int8", "float16", "bfloat16", "float32")),
    NumberFormat("int4", "int", 4, 7.0, 8, ("int4", "int8", "float16", "bfloat16", "float32")),
    NumberFormat("int8", "int", 8, 127.0, 8, ("int8", "float16", "bfloat16", "float32")),
    NumberFormat("fp8-e4m3", "float", 8, 448.0, 8, ("float8", "float16", "bfloat16", "float32"),
                 "float8_e4m3fn", 4, 3, 7),
    NumberFormat("fp8-e5m2", "float", 8, 57344.0, 8, ("float8", "float16", "bfloat16", "float32"),
                 "float8_e5m2", 5, 2, 15),
    NumberFormat("fp32", "fp32", 32, float(torch.finfo(torch.float32).max), 32, ("float32",)),
)}
FORMAT_NAMES: tuple[str, ...] = ("int4", "int8", "fp8-e4m3", "fp8-e5m2", "fp32")
"""The formats of issue 21 (a space's default `format` options). `FORMATS` also has int2 (ternary codes
{-1, 0, 1} x scale, four to a byte), the low end HAWQ allocates, for settings where int4 is already lossless."""


def get_format(fmt: str | NumberFormat, field_name: str = "format") -> NumberFormat:
    """The `NumberFormat` named `fmt` (records pass through); ConfigError naming `field_name` otherwise."""
    if isinstance(fmt, NumberFormat):
        return fmt
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ConfigError(f"{field_name}: unknown number format {fmt!r} (known: {', '.join(FORMATS)})")
    return FORMATS[fmt]


def _check_granularity(granularity: str) -> str:
    """`granularity` if it is one of `GRANULARITIES`; ConfigError naming the field otherwise."""
    if granularity not in GRANULARITIES:
        raise ConfigError(f"granularity: expected one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    return granularity


# ---------------------------------------------------------------------------------------- quantizers
def _rows(w: torch.Tensor) -> torch.Tensor:
    """The weight as (output channels, everything else); a 1-D tensor is one channel."""
    return w.reshape(1, -1) if w.dim() < 2 else w.reshape(w.shape[0], -1)


def _amax(w: torch.Tensor, granularity: str) -> torch.Tensor:
    """max|w| per output channel, or the whole tensor's max|w| repeated per channel; shape (channels,)."""
    amax = _rows(w).detach().abs().amax(dim=1)
    return amax if _check_granularity(granularity) == "channel" else amax.max().expand_as(amax).clone()


def int_scale(w: torch.Tensor, fmt: NumberFormat, granularity: str = "channel") -> torch.Tensor:
    """Scale max|w| / qmax per output channel (or one for the tensor, repeated), shape (channels,); an all-zero
    channel (tensor) gets scale 1."""
    amax = _amax(w, granularity)
    return torch.where(amax > 0, amax / fmt.max_value, torch.ones_like(amax))


def float_scale(w: torch.Tensor, fmt: NumberFormat, granularity: str = "channel") -> torch.Tensor:
    """Power-of-two scale 2^ceil(log2(max|w| / max_value)) per output channel (or one for the tensor,
    repeated), shape (channels,). Dividing by it is exact, and the max-abs lands in (max_value / 2, max_value]."""
    amax = _amax(w, granularity).to(torch.float32)
    exponent = torch.ceil(torch.log2(torch.where(amax > 0, amax, torch.ones_like(amax)) / fmt.max_value))
    return torch.exp2(exponent)


def scale_of(w: torch.Tensor, fmt: NumberFormat, granularity: str = "channel") -> torch.Tensor:
    """The scale `quantize` uses for `w` in `fmt` at `granularity`, one per output channel (shape (channels,))."""
    return int_scale(w, fmt, granularity) if fmt.kind == "int" else float_scale(w, fmt, granularity)


def int_codes(w: torch.Tensor, fmt: NumberFormat, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Integer codes round(w / scale) clamped to [-qmax, qmax], as float, shaped like `_rows(w)`."""
    s = int_scale(w, fmt) if scale is None else scale
    return torch.clamp(torch.round(_rows(w).detach() / s[:, None]), -fmt.max_value, fmt.max_value)


def float_codes(w: torch.Tensor, fmt: NumberFormat, scale: torch.Tensor | None = None) -> torch.Tensor:
    """`w / scale` cast to the float8 dtype after clamping to its finite range, shaped like `_rows(w)`."""
    s = float_scale(w, fmt) if scale is None else scale
    x = _rows(w).detach().to(torch.float32) / s[:, None]
    return torch.clamp(x, -fmt.max_value, fmt.max_value).to(fmt.dtype())


def quantize(w: torch.Tensor, fmt: str | NumberFormat, granularity: str = "channel") -> torch.Tensor:
    """The values `w` takes in `fmt` with scales per output channel or per tensor (`granularity`); same shape
    and dtype, no gradient. fp32 returns `w` itself."""
    fmt = get_format(fmt)
    _check_granularity(granularity)
    if fmt.kind == "fp32":
        return w
    if fmt.kind == "int":
        s = int_scale(w, fmt, granularity)
        q = int_codes(w, fmt, s) * s[:, None]
    else:
        s = float_scale(w, fmt, granularity)
        q = float_codes(w, fmt, s).to(torch.float32) * s[:, None]
    return q.reshape(w.shape).to(w.dtype)


def fake_quant(w: torch.Tensor, fmt: str | NumberFormat, granularity: str = "channel") -> torch.Tensor:
    """`quantize(w, fmt, granularity)` in the forward pass, identity in the backward pass (straight-through)."""
    fmt = get_format(fmt)
    if fmt.kind == "fp32":
        return w
    return w + (quantize(w.detach(), fmt, granularity) - w).detach()


def activation_format(fmt: str | NumberFormat) -> NumberFormat:
    """The format a layer in `fmt` takes its inputs in: `fmt.activation_bits` wide, as the cost model charges
    them (int2 / int4 / int8 weights: int8 activations, W4A8; fp8: the same fp8 format; fp32: fp32)."""
    fmt = get_format(fmt)
    if fmt.kind == "fp32" or fmt.activation_bits >= 32:
        return FORMATS["fp32"]
    if fmt.activation_bits == fmt.bits:
        return fmt
    if fmt.kind == "int":
        bits = fmt.activation_bits
        return FORMATS.get(f"int{bits}") or NumberFormat(f"int{bits}", "int", bits, 2.0 ** (bits - 1) - 1, bits, ())
    raise ConfigError(f"format {fmt.name!r}: no {fmt.activation_bits}-bit activation format for a {fmt.kind} format")


def fake_quant_activation(x: torch.Tensor, fmt: NumberFormat) -> torch.Tensor:
    """The input of a layer in `fmt`, in `activation_format(fmt)` (the width the cost model charges) with one
    dynamic scale for the whole tensor (its max-abs), straight-through."""
    act = activation_format(fmt)
    if act.kind == "fp32":
        return x
    flat = x.detach().reshape(1, -1)
    return x + (quantize(flat, act).reshape(x.shape) - x).detach()


def perturbation(w: torch.Tensor, fmt: str | NumberFormat, granularity: str = "channel") -> float:
    """||quantize(w) - w||^2 (at `granularity`): the squared quantization error HAWQ weighs by the Hessian."""
    w = w.detach()
    return float((quantize(w, fmt, granularity) - w).double().pow(2).sum())


# ---------------------------------------------------------------------------------------- modules
class FakeQuant(nn.Module):
    """A Linear / Conv1d / Conv2d computing with `fake_quant(weight, format)`; trainable (straight-through).

    The wrapped layer stays as `self.layer` (its parameters keep their names under `layer.`), so a model can
    be trained quantized and its float weights read back. With `activations`, the layer's input is also
    fake-quantized, at the format's `activation_bits` (`activation_format`: int8 for int2 / int4 / int8 weights,
    W4A8 as `precision_cost` charges it; per tensor, dynamic max-abs scale). `granularity` is the weights' scale
    granularity ("channel" or "tensor").
    """

    def __init__(self, layer: nn.Module, fmt: str | NumberFormat, activations: bool = False,
                 granularity: str = "channel") -> None:
        super().__init__()
        if not isinstance(layer, QUANTIZABLE):
            raise ConfigError(f"layer: FakeQuant wraps {', '.join(t.__name__ for t in QUANTIZABLE)}, "
                              f"got {type(layer).__name__}")
        self.layer, self.format, self.activations = layer, get_format(fmt), bool(activations)
        self.granularity = _check_granularity(granularity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activations:
            x = fake_quant_activation(x, self.format)
        w = fake_quant(self.layer.weight, self.format, self.granularity)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        return self.layer._conv_forward(x, w, self.layer.bias)

    def extra_repr(self) -> str:
        return (f"format={self.format.name}" + (", activations" if self.activations else "")
                + (f", granularity={self.granularity}" if self.granularity != "channel" else ""))


def quantizable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """{path: layer} of every Linear / Conv1d / Conv2d in `model` (paths as `named_modules` gives them), except
    those inside a torch layer with children (`nas.counts.is_layer`: `MultiheadAttention`,
    `TransformerEncoderLayer`), whose forward reads their weights directly and which is counted as one layer."""
    return {name: m for name, m in layer_modules(model) if isinstance(m, QUANTIZABLE) and name}


def _holding_layer(model: nn.Module, path: str) -> tuple[str, nn.Module] | None:
    """(path, module) of the torch layer with children (`nas.counts.is_layer`) that holds the module at `path`."""
    parts = path.split(".")
    for i in range(len(parts)):
        prefix = ".".join(parts[:i])
        try:
            sub = model.get_submodule(prefix)
        except AttributeError:
            return None
        if next(sub.children(), None) is not None and is_layer(sub):
            return prefix, sub
    return None


def check_formats(model: nn.Module, formats: Mapping[str, str | NumberFormat]) -> dict[str, NumberFormat]:
    """`formats` resolved to records; ConfigError naming the layer whose path or format name is wrong."""
    if not isinstance(formats, Mapping):
        raise ConfigError(f"formats: expected {{layer path: format name}}, got {type(formats).__name__}")
    layers = quantizable_layers(model)
    out = {}
    for path, fmt in formats.items():
        holder = _holding_layer(model, path) if isinstance(path, str) and path not in layers else None
        if holder is not None:
            where, outer = holder
            where = repr(where) if where else "the model"
            raise ConfigError(f"formats[{path!r}]: not quantizable: it is inside {where} "
                              f"({type(outer).__name__}), a torch layer whose forward reads its weights directly "
                              f"and which is counted and priced as one layer (layers: {', '.join(layers) or 'none'})")
        if path not in layers:
            raise ConfigError(f"formats[{path!r}]: no Linear/Conv layer at this path "
                              f"(layers: {', '.join(layers) or 'none'})")
        out[path] = get_format(fmt, f"formats[{path!r}]")
    return out


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, new)


def quantize_model(model: nn.Module, formats: Mapping[str, str | NumberFormat], activations: bool = False,
                   copy_model: bool = True, granularity: str = "channel") -> nn.Module:
    """`model` (a deep copy unless `copy_model` is False) with each layer named in `formats` wrapped in
    `FakeQuant` (scales at `granularity`); layers not named stay fp32. ConfigError names a bad layer path,
    format or granularity."""
    resolved = check_formats(model, formats)
    _check_granularity(granularity)
    out = copy.deepcopy(model) if copy_model else model
    for path, fmt in resolved.items():
        _replace(out, path, FakeQuant(out.get_submodule(path), fmt, activations, granularity))
    return out


# ---------------------------------------------------------------------------------------- size
@dataclass(frozen=True)
class ModelSize:
    """Bits a packed model stores: weight codes, per-channel float32 scales, every other state tensor at its width."""

    weight_bits: int
    scale_bits: int
    other_bits: int
    weights: int  # quantizable weights, all layers
    per_layer: dict[str, int] = field(default_factory=dict)  # codes + scales of each quantizable layer

    @property
    def total_bits(self) -> int:
        return self.weight_bits + self.scale_bits + self.other_bits

    @property
    def bits_per_weight(self) -> float:
        """Code bits per quantizable weight (the allocation budget's unit; scales not included)."""
        return self.weight_bits / max(1, self.weights)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_bits": self.total_bits, "bits_per_weight": self.bits_per_weight}


def layer_bits(shape: torch.Size | tuple[int, ...], fmt: NumberFormat,
               granularity: str = "channel") -> tuple[int, int]:
    """(code bits, scale bits) of one weight of `shape` stored packed in `fmt`: one float32 scale per output
    channel, or one for the tensor with `granularity="tensor"`."""
    rows = shape[0] if len(shape) > 1 else 1
    per_row = math.prod(shape) // rows
    scales = SCALE_BITS * (rows if _check_granularity(granularity) == "channel" else 1)
    if fmt.kind == "fp32":
        return 32 * rows * per_row, 0
    if fmt.bits < 8:  # sub-byte codes packed 8 // bits to a byte, each row padded to whole bytes
        return rows * 8 * math.ceil(per_row / (8 // fmt.bits)), scales
    return rows * per_row * fmt.bits, scales


def model_size(model: nn.Module, formats: Mapping[str, str | NumberFormat],
               granularity: str = "channel") -> ModelSize:
    """The exact size of `model` packed with `formats` (layers not named stay fp32); see `ModelSize`. With
    `granularity="tensor"` each quantized layer counts one scale (the size `pack_model` would write if it
    stored per-tensor scales; it stores per-channel ones)."""
    resolved = check_formats(model, formats)
    layers = quantizable_layers(model)
    weight_ids = {id(m.weight) for m in layers.values()}
    code = scale = weights = 0
    per_layer = {}
    for path, layer in layers.items():
        c, s = layer_bits(tuple(layer.weight.shape), resolved.get(path, FORMATS["fp32"]), granularity)
        code, scale, weights = code + c, scale + s, weights + layer.weight.numel()
        per_layer[path] = c + s
    other = sum(8 * t.element_size() * t.numel() for t in _state_tensors(model) if id(t) not in weight_ids)
    return ModelSize(code, scale, other, weights, per_layer)


def _state_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The distinct parameters and persistent buffers: the tensors `model.state_dict()` (and `pack_model`'s) holds."""
    seen: dict[int, torch.Tensor] = {id(p): p for p in model.parameters()}
    for m in model.modules():
        for name, b in m._buffers.items():
            if b is not None and name not in m._non_persistent_buffers_set:
                seen.setdefault(id(b), b)
    return list(seen.values())


def model_size_bits(model: nn.Module, formats: Mapping[str, str | NumberFormat]) -> int:
    """Total bits of `model` packed with `formats` (`model_size(...).total_bits`)."""
    return model_size(model, formats).total_bits


# ---------------------------------------------------------------------------------------- device cost
@dataclass(frozen=True)
class PrecisionCost:
    """Size, roofline latency and analytic energy of one forward pass with per-layer formats on a device.

    `dtypes` says which profile dtype each quantized layer was charged at (a fallback when the profile has
    no peak for the format's own dtype). `energy_uj` is None when the profile has no energy figures.
    """

    size_bits: int
    latency_ms: float
    energy_uj: float | None
    device: str
    dtypes: dict[str, str]

    def metrics(self) -> dict[str, float]:
        """As search metrics: size_bits, latency_ms and (when known) energy_uj."""
        out = {"size_bits": float(self.size_bits), "latency_ms": self.latency_ms}
        if self.energy_uj is not None:
            out["energy_uj"] = self.energy_uj
        return out


def compute_dtype(fmt: NumberFormat, device: DeviceProfile) -> str:
    """The first of `fmt.compute_dtypes` the device has a peak for (ConfigError when none)."""
    for dtype in fmt.compute_dtypes:
        if dtype in device.peak_flops:
            return dtype
    raise ConfigError(f"device {device.name!r}: no peak FLOP/s for format {fmt.name!r} (tried "
                      f"{', '.join(fmt.compute_dtypes)}; it has {', '.join(sorted(device.peak_flops))})")


def precision_cost(model: nn.Module, formats: Mapping[str, str | NumberFormat], inputs: Any,
                   device: str | DeviceProfile, threads: int | None = None) -> PrecisionCost:
    """Roofline latency and analytic energy of one forward pass of `inputs`, each layer in its format.

    A quantized layer does its FLOPs at the device's peak for the format (`compute_dtype`) and moves its
    packed weights plus inputs and outputs at `activation_bits`; every other leaf is charged as float32.
    Latency is the sum over leaves of max(compute, memory) time (as `nas.hardware.roofline`); energy is
    FLOPs x pJ/FLOP of the charged dtype + bytes x pJ/byte (`DeviceProfile.pj_per_flop`).
    """
    profile = load_device(device)
    resolved = check_formats(model, formats)
    layers = quantizable_layers(model)
    by_name = {name: m for name, m in model.named_modules()}
    sizes = model_size(model, resolved)
    latency = energy = 0.0
    has_energy = profile.energy_pj_per_byte is not None and (profile.tdp_w is not None or profile.energy_pj_per_flop)
    dtypes = {}
    for leaf in count_leaves(model, inputs):
        fmt = resolved.get(leaf.name, FORMATS["fp32"]) if leaf.name in layers else FORMATS["fp32"]
        dtype = compute_dtype(fmt, profile)
        if fmt.quantized:
            dtypes[leaf.name] = dtype
            layer = by_name[leaf.name]
            bias = 32 * layer.bias.numel() if getattr(layer, "bias", None) is not None else 0
            moved = (sizes.per_layer[leaf.name] + bias) / 8 + (leaf.input_bytes + leaf.output_bytes) * fmt.activation_bits / 32
        else:
            moved = leaf.bytes_moved
        compute_s, memory_s = leaf.flops / profile.peak(dtype, threads), moved / profile.memory_bandwidth
        latency += max(compute_s, memory_s)
        if has_energy:
            energy += leaf.flops * profile.pj_per_flop(dtype) + moved * profile.energy_pj_per_byte
    return PrecisionCost(sizes.total_bits, latency * 1e3, energy * 1e-6 if has_energy else None, profile.name, dtypes)


# ---------------------------------------------------------------------------------------- dynamic int8 (CPU)
def dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` for CPU inference in torch's dynamic int8: Linear weights int8 with activations quantized
    per batch at run time, Embedding tables int8 per row (weight only; they dominate a small text model's size).

    torch 2.13 deprecates eager-mode quantization in favour of torchao (not a dependency); it still works, and
    its warnings are silenced here."""
    q = torch.ao.quantization
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
        return q.quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear: q.default_dynamic_qconfig,
                                                                nn.Embedding: q.float_qparams_weight_only_qconfig},
                                  dtype=torch.qint8)


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of `torch.save(model.state_dict())`: the size of the file a user ships."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes
