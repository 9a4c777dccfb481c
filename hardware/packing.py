"""Packed low-precision layers: weights stored as int8 / int4 / int2 / float8 codes, for export (state_dict, ONNX).

`FakeQuant` (nas.hardware.quantization) trains with float weights; `pack_model(model, formats)` turns the
named layers into `PackedLinear` / `PackedConv` modules whose buffers hold exactly what
`model_size(model, formats)` counts: int8 codes (`torch.int8`); int4 and int2 codes offset by 2^(b-1) to be
non-negative and packed two / four to a byte (`torch.uint8`, lowest bits first, a row padded to whole bytes);
float8 codes as their bit patterns (`torch.uint8`); a float32 scale per output channel; the float32 bias.
Forward decodes them to the same float weights `quantize` gives, bit for bit, so a packed model computes what
its fake-quantized twin computed.

Exporting to ONNX (opset 17, TorchScript exporter, as `nas.export` does): each decode is an autograd
function with an ONNX `symbolic`, so the graph keeps the packed tensors as initializers and decodes them at
run time: int8 by `DequantizeLinear` (per-axis scale); int4 / int2 by `BitShift` / `Mod` unpacking, the
offset removed in int32, then `DequantizeLinear`; float8 by its sign / exponent / mantissa fields (`BitShift`,
`Mod`) and a power-of-two table (float8 ONNX types need opset 19; `nas.export` writes 17). The exporter's
constant folding does not fold those ops, so the initializers stay packed: `exported_size` measures it on the
files. Packed modules quantize weights only (activations stay float32).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError
from nas.hardware.quantization import (FORMATS, NumberFormat, check_formats, float_codes, get_format, int_codes,
                                       quantizable_layers, scale_of)

__all__ = ["ExportedSize", "PackedConv", "PackedLinear", "check_packable", "exported_size", "pack_model",
           "pack_weight", "unpack_weight"]



# ---------------------------------------------------------------------------------------- codes
def pack_weight(w: torch.Tensor, fmt: NumberFormat) -> dict[str, torch.Tensor]:
    """{"codes", "scale"}: `w` (out, ...) packed in a quantized `fmt` (see module doc)."""
    scale = scale_of(w, fmt).to(torch.float32)
    rows = w.shape[0]
    if fmt.kind == "int":
        q = int_codes(w, fmt, scale)
        if fmt.bits == 8:
            return {"codes": q.to(torch.int8), "scale": scale}
        per_byte, offset = 8 // fmt.bits, 1 << (fmt.bits - 1)
        u = (q + offset).to(torch.uint8)
        pad = -u.shape[1] % per_byte
        if pad:
            u = torch.cat([u, torch.full((rows, pad), offset, dtype=torch.uint8)], dim=1)
        packed = torch.zeros(rows, u.shape[1] // per_byte, dtype=torch.uint8)
        for j in range(per_byte):
            packed |= u[:, j::per_byte] << (j * fmt.bits)
        return {"codes": packed, "scale": scale}
    if fmt.kind == "float":
        return {"codes": float_codes(w, fmt, scale).view(torch.uint8), "scale": scale}
    raise ConfigError(f"format: {fmt.name} is not a packed format")


class _DequantizeInt(torch.autograd.Function):
    """int8 codes * scale per row; ONNX DequantizeLinear (axis 0, zero point 0)."""

    @staticmethod
    def forward(ctx: Any, codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return codes.to(torch.float32) * scale[:, None]

    @staticmethod
    def symbolic(g: Any, codes: Any, scale: Any) -> Any:
        return g.op("DequantizeLinear", codes, scale, axis_i=0)


class _UnpackSubByte(torch.autograd.Function):
    """uint8 (rows, ceil(k / per_byte)) -> int8 codes (rows, k) for 2- or 4-bit codes: lowest bits first, minus
    the offset 2^(bits-1); ONNX BitShift / Mod, then Cast and Sub in int32 (Sub has no int8 kernel everywhere)."""

    @staticmethod
    def forward(ctx: Any, packed: torch.Tensor, k: int, bits: int) -> torch.Tensor:
        fields = [(packed >> (j * bits)) % (1 << bits) for j in range(8 // bits)]
        codes = torch.stack(fields, dim=-1).reshape(packed.shape[0], -1)[:, :k]
        return (codes.to(torch.int32) - (1 << (bits - 1))).to(torch.int8)

    @staticmethod
    def symbolic(g: Any, packed: Any, k: int, bits: int) -> Any:
        def u8(v: int) -> Any:
            return g.op("Constant", value_t=torch.tensor(v, dtype=torch.uint8))

        last = g.op("Constant", value_t=torch.tensor([-1]))
        fields = []
        for j in range(8 // bits):
            shifted = g.op("BitShift", packed, u8(j * bits), direction_s="RIGHT") if j else packed
            fields.append(g.op("Unsqueeze", g.op("Mod", shifted, u8(1 << bits)), last))
        stacked = g.op("Concat", *fields, axis_i=-1)
        rows = g.op("Slice", g.op("Shape", packed), g.op("Constant", value_t=torch.tensor([0])),
                    g.op("Constant", value_t=torch.tensor([1])))
        flat = g.op("Reshape", stacked, g.op("Concat", rows, last, axis_i=0))
        codes = g.op("Slice", flat, g.op("Constant", value_t=torch.tensor([0])),
                     g.op("Constant", value_t=torch.tensor([k])), g.op("Constant", value_t=torch.tensor([1])))
        offset = g.op("Constant", value_t=torch.tensor(1 << (bits - 1), dtype=torch.int32))
        return g.op("Cast", g.op("Sub", g.op("Cast", codes, to_i=6), offset), to_i=3)  # int32, then int8


def _pow2_table(fmt: NumberFormat) -> torch.Tensor:
    """Per biased exponent e: the value of one mantissa unit, 2^(max(e, 1) - bias - mantissa_bits)."""
    e = torch.arange(2 ** fmt.exponent_bits, dtype=torch.float64).clamp(min=1)
    return torch.exp2(e - fmt.exponent_bias - fmt.mantissa_bits).to(torch.float32)


class _DecodeFloat8(torch.autograd.Function):
    """float8 bit patterns (uint8) times per-row scale -> float32; ONNX: fields by BitShift / Mod, 2^e by table."""

    @staticmethod
    def forward(ctx: Any, bits: torch.Tensor, scale: torch.Tensor, name: str) -> torch.Tensor:
        # the same arithmetic as the ONNX graph (the tracer cannot trace `bits.view(float8 dtype)`); equal to
        # `bits.view(dtype).float()` for every finite code (tests check all 256)
        fmt = FORMATS[name]
        sign = (bits >> 7).to(torch.float32)
        exponent = (bits >> fmt.mantissa_bits) % (2 ** fmt.exponent_bits)
        mantissa = (bits % (2 ** fmt.mantissa_bits)).to(torch.float32)
        unit = _pow2_table(fmt)[exponent.long()]
        value = (mantissa + (exponent > 0).to(torch.float32) * float(2 ** fmt.mantissa_bits)) * unit
        return value * (1.0 - 2.0 * sign) * scale[:, None]

    @staticmethod
    def symbolic(g: Any, bits: Any, scale: Any, name: str) -> Any:
        fmt = FORMATS[name]
        m_bits, e_bits = fmt.mantissa_bits, fmt.exponent_bits

        def u8(v: int) -> Any:
            return g.op("Constant", value_t=torch.tensor(v, dtype=torch.uint8))

        def f32(v: float) -> Any:
            return g.op("Constant", value_t=torch.tensor(v, dtype=torch.float32))

        float_ = 1  # TensorProto.FLOAT
        sign = g.op("Cast", g.op("BitShift", bits, u8(7), direction_s="RIGHT"), to_i=float_)
        exponent = g.op("Mod", g.op("BitShift", bits, u8(m_bits), direction_s="RIGHT"), u8(2 ** e_bits))
        mantissa = g.op("Cast", g.op("Mod", bits, u8(2 ** m_bits)), to_i=float_)
        unit = g.op("Gather", g.op("Constant", value_t=_pow2_table(fmt)), g.op("Cast", exponent, to_i=7), axis_i=0)
        normal = g.op("Cast", g.op("Greater", g.op("Cast", exponent, to_i=float_), f32(0.0)), to_i=float_)
        value = g.op("Mul", g.op("Add", mantissa, g.op("Mul", normal, f32(float(2 ** m_bits)))), unit)
        signed = g.op("Mul", value, g.op("Sub", f32(1.0), g.op("Mul", sign, f32(2.0))))
        # (rows, k) x scale (rows,): broadcast through transposes, so the scale initializer is used as it is
        # (an Unsqueeze of it would be constant-folded into a renamed copy)
        return g.op("Transpose", g.op("Mul", g.op("Transpose", signed, perm_i=[1, 0]), scale), perm_i=[1, 0])


def unpack_weight(codes: torch.Tensor, scale: torch.Tensor, fmt: NumberFormat, shape: tuple[int, ...]) -> torch.Tensor:
    """The float32 weight of `shape` that packed `codes` stand for (exactly `quantize(w, fmt)`)."""
    k = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
    if fmt.kind == "int":
        if fmt.bits < 8:
            codes = _UnpackSubByte.apply(codes, k, fmt.bits)
        w = _DequantizeInt.apply(codes, scale)
    else:
        w = _DecodeFloat8.apply(codes, scale, fmt.name)
    return w.reshape(shape)


# ---------------------------------------------------------------------------------------- modules
def check_packable(fmt: str | NumberFormat, field_name: str = "format") -> NumberFormat:
    """The format `fmt` names if a packed layer can store it (fp32 passes: it stays a float layer); ConfigError
    naming `field_name` otherwise, so a space can refuse it when it is made rather than at export."""
    fmt = get_format(fmt, field_name)
    if fmt.kind == "int" and fmt.bits not in (2, 4, 8):
        # 1-bit codes cannot exist: a symmetric 1-bit grid has max_value 0 (NumberFormat refuses it)
        raise ConfigError(f"{field_name}: {fmt.name} ({fmt.bits}-bit int) cannot be packed: codes are packed whole "
                          "into bytes, so 2, 4 or 8 bits (model_size and fake quantization take any width)")
    if fmt.kind == "float" and (fmt.bits != 8 or FORMATS.get(fmt.name) != fmt):
        known = ", ".join(n for n, f in FORMATS.items() if f.kind == "float")
        raise ConfigError(f"{field_name}: {fmt.name} ({fmt.bits}-bit float) cannot be packed: the packed layer "
                          f"decodes the bit layouts of 8-bit float formats registered in FORMATS ({known})")
    return fmt


class _Packed(nn.Module):
    """Buffers `codes` and `scale`, parameter `bias`; `weight()` decodes them."""

    def _init_packed(self, shape: tuple[int, ...], fmt: str | NumberFormat, bias: bool) -> None:
        self.format = check_packable(fmt)
        if not self.format.quantized:
            raise ConfigError(f"format: {self.format.name} is not packed; keep the float layer")
        self.weight_shape = tuple(int(s) for s in shape)
        for name, t in pack_weight(torch.zeros(self.weight_shape), self.format).items():
            self.register_buffer(name, t)
        self.bias = nn.Parameter(torch.zeros(self.weight_shape[0])) if bias else None

    def load_weight(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> "_Packed":
        """Pack `weight` (and copy `bias`) into this module's buffers; returns the module."""
        if tuple(weight.shape) != self.weight_shape:
            raise ConfigError(f"weight: expected shape {self.weight_shape}, got {tuple(weight.shape)}")
        for name, t in pack_weight(weight.detach().to(torch.float32), self.format).items():
            getattr(self, name).copy_(t)
        if bias is not None and self.bias is not None:
            with torch.no_grad():
                self.bias.copy_(bias.detach())
        return self

    def weight(self) -> torch.Tensor:
        return unpack_weight(self.codes, self.scale, self.format, self.weight_shape)

    def extra_repr(self) -> str:
        return f"{self.weight_shape}, format={self.format.name}, bias={self.bias is not None}"


class PackedLinear(_Packed):
    """A Linear layer whose weight is stored packed in a quantized format (see module doc)."""

    def __init__(self, in_features: int, out_features: int, fmt: str | NumberFormat, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self._init_packed((self.out_features, self.in_features), fmt, bias)

    @classmethod
    def from_linear(cls, layer: nn.Linear, fmt: str | NumberFormat) -> "PackedLinear":
        return cls(layer.in_features, layer.out_features, fmt, layer.bias is not None).load_weight(layer.weight,
                                                                                                  layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)


class PackedConv(_Packed):
    """A Conv1d / Conv2d layer whose weight is stored packed in a quantized format (see module doc)."""

    def __init__(self, dims: int, weight_shape: tuple[int, ...], fmt: str | NumberFormat, bias: bool = True,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1) -> None:
        super().__init__()
        if dims not in (1, 2) or len(weight_shape) != dims + 2:
            raise ConfigError(f"dims: expected 1 or 2 with a weight of rank dims + 2, got {dims}, {weight_shape}")
        self.dims, self.stride, self.padding, self.dilation, self.groups = dims, stride, padding, dilation, groups
        self._init_packed(tuple(weight_shape), fmt, bias)

    @classmethod
    def from_conv(cls, layer: nn.Conv1d | nn.Conv2d, fmt: str | NumberFormat) -> "PackedConv":
        if not isinstance(layer.padding, (int, tuple)) or layer.padding_mode != "zeros":
            raise ConfigError(f"layer: PackedConv takes numeric zero padding, got {layer.padding!r} "
                              f"({layer.padding_mode})")
        dims = 1 if isinstance(layer, nn.Conv1d) else 2
        out = cls(dims, tuple(layer.weight.shape), fmt, layer.bias is not None, layer.stride, layer.padding,
                  layer.dilation, layer.groups)
        return out.load_weight(layer.weight, layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = F.conv1d if self.dims == 1 else F.conv2d
        return conv(x, self.weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)


def pack_model(model: nn.Module, formats: Mapping[str, str | NumberFormat]) -> nn.Module:
    """A copy of `model` with each layer named in `formats` (and not fp32) replaced by its packed twin.

    The copy's state_dict holds exactly `model_size(model, formats)` bits of tensors."""
    import copy

    resolved = check_formats(model, formats)
    out = copy.deepcopy(model)
    layers = quantizable_layers(out)
    for path, fmt in resolved.items():
        if not fmt.quantized:
            continue
        layer = layers[path]
        packed = PackedLinear.from_linear(layer, fmt) if isinstance(layer, nn.Linear) else PackedConv.from_conv(layer, fmt)
        parent_path, _, name = path.rpartition(".")
        setattr(out.get_submodule(parent_path) if parent_path else out, name, packed)
    return out


# ---------------------------------------------------------------------------------------- measuring exports
@dataclass(frozen=True)
class ExportedSize:
    """Sizes read from exported files (bits unless named bytes).

    `onnx_parameter_bits`: ONNX initializers named like the module's state_dict entries (the model's own
    tensors, each stored once); `onnx_other_bits`: the remaining initializers (constants of the decoding graph,
    shape tensors); `state_tensor_bits`: the tensors of the saved state_dict; `*_file_bytes`: the files on disk
    (with the containers' own overhead). The TorchScript exporter stores identical tensors once: `onnx_shared`
    maps a state_dict entry with no initializer of its own to the initializer holding the same data (reached by
    `Identity` nodes, or an equal tensor), `onnx_shared_bits` is what those entries take in the state_dict.
    `onnx_missing`: entries with no initializer and no shared data (folded; then the sizes are not comparable).
    """

    onnx_file_bytes: int | None
    onnx_parameter_bits: int | None
    onnx_other_bits: int | None
    onnx_dtypes: dict[str, str]
    state_file_bytes: int | None
    state_tensor_bits: int | None
    onnx_missing: tuple[str, ...] = ()  # state_dict entries with no initializer of that name nor shared data
    onnx_shared: dict[str, str] = field(default_factory=dict)  # state_dict entry -> initializer holding its data
    onnx_shared_bits: int = 0  # state_dict bits of the `onnx_shared` entries (stored once in the ONNX file)

    @property
    def onnx_state_bits(self) -> int | None:
        """The state_dict's tensors as the ONNX file holds them, a shared tensor counted for every entry using it:
        comparable with `state_tensor_bits` and a searched `size_bits`; None if an entry is missing."""
        if self.onnx_parameter_bits is None or self.onnx_missing:
            return None
        return self.onnx_parameter_bits + self.onnx_shared_bits

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "onnx_state_bits": self.onnx_state_bits}


def _initializer_bits(tensor: Any) -> int:
    from onnx import helper, numpy_helper

    if tensor.raw_data:
        return 8 * len(tensor.raw_data)
    array = numpy_helper.to_array(tensor)
    return int(array.size * 8 * array.itemsize) if helper.tensor_dtype_to_np_dtype(tensor.data_type) else 0


def _same_data(initializer: Any, tensor: torch.Tensor | None) -> bool:
    """Whether an ONNX initializer holds exactly `tensor` (dtype, shape and values); False without a tensor."""
    from onnx import numpy_helper

    if tensor is None:
        return False
    array = numpy_helper.to_array(initializer)
    expected = tensor.detach().cpu().numpy()
    return array.dtype == expected.dtype and array.shape == expected.shape and bool((array == expected).all())


def _shared_source(name: str, identity: dict[str, str], own: dict[str, Any], tensor: torch.Tensor | None) -> str | None:
    """The initializer among `own` that holds the data of state entry `name`, which has no initializer: the
    start of a chain of `identity` nodes (output -> input) producing `name`, else (the name gone from the graph)
    an equal initializer."""
    source, seen = name, set()
    while source in identity and source not in seen:
        seen.add(source)
        source = identity[source]
    if source != name:
        ok = source in own and (tensor is None or _same_data(own[source], tensor))
        return source if ok else None
    return next((key for key, init in sorted(own.items()) if _same_data(init, tensor)), None)


def exported_size(folder: str | Path, onnx_file: str = "model.onnx", weights_file: str = "weights.pt",
                  state_keys: Any = None) -> ExportedSize:
    """Measure an exported model directory (as `nas.export` writes it): its ONNX initializers and state_dict.

    `state_keys` (default: the keys of the saved state_dict) say which ONNX initializers are the model's own.
    """
    folder = Path(folder)
    weights = folder / weights_file
    state = torch.load(weights, map_location="cpu", weights_only=True) if weights.is_file() else None
    keys = set(state_keys if state_keys is not None else (state or {}))
    state_bits = None if state is None else sum(8 * t.numel() * t.element_size() for t in state.values())
    onnx_path = folder / onnx_file
    if not onnx_path.is_file():
        return ExportedSize(None, None, None, {}, weights.stat().st_size if state is not None else None, state_bits)
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    own_bits = other = 0
    dtypes = {}
    own: dict[str, Any] = {}
    for init in graph.initializer:
        bits = _initializer_bits(init)
        if init.name in keys:
            own_bits += bits
            own[init.name] = init
            dtypes[init.name] = onnx.TensorProto.DataType.Name(init.data_type)
        else:
            other += bits
    shared: dict[str, str] = {}
    missing = []
    identity = {out: node.input[0] for node in graph.node if node.op_type == "Identity" for out in node.output}
    for name in sorted(keys - set(own)):
        tensor = state.get(name) if state is not None else None
        source = _shared_source(name, identity, own, tensor)
        if source is None or (tensor is None and state is not None):
            missing.append(name)
        else:
            shared[name] = source
    shared_bits = sum(8 * state[k].numel() * state[k].element_size() if state is not None and k in state
                      else _initializer_bits(own[v]) for k, v in shared.items())
    return ExportedSize(onnx_path.stat().st_size, own_bits, other, dtypes,
                        weights.stat().st_size if state is not None else None, state_bits, tuple(missing), shared,
                        shared_bits)
