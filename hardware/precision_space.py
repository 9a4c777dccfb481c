"""A joint architecture x precision space: an MLP whose every layer picks a width and a number format.

* `PrecisionMLPSpace(config)`: a `ModelSpace` with `hidden = Repeat(n, width=Choice, format=Choice)` and
  `head_format = Choice`; formats are names from `nas.hardware.quantization.FORMAT_NAMES`. `build(arch)` gives
  a `PrecisionMLP` whose quantized layers are stored packed (`PackedLinear`), so its state_dict and its ONNX
  export hold `size_bits(arch)` bits of tensors; `cost(arch, device)` gives size, roofline latency and
  analytic energy for cheap objectives and constraints; `count(arch)` counts every weight and bias whatever
  its format (of the float twin, as `size_bits` and `cost` read it).
* `PrecisionMLPSupernet`: one-shot weight sharing in the spirit of FLIQS (Dotzel et al. 2023): the largest
  float weights are shared; `supernet(x, arch)` slices each layer to its width and fake-quantizes it to its
  format (straight-through), so sandwich training (`nas.spaces.training.SandwichRule`) trains all widths and
  formats at once; `subnet(arch)` packs the sliced weights into a standalone `PrecisionMLP` computing the
  same outputs.

It sits in the hardware layer because it builds on the quantization modules here (the layer contract lets
hardware import spaces, not the reverse).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.architecture import Architecture
from nas.counts import count as count_module
from nas.errors import ConfigError
from nas.hardware.devices import DeviceProfile
from nas.hardware.packing import PackedLinear, check_packable
from nas.hardware.quantization import (FORMAT_NAMES, FORMATS, NumberFormat, PrecisionCost, fake_quant, get_format,
                                       model_size_bits, precision_cost)
from nas.spaces.model_space import ModelSpace
from nas.spaces.params import Choice
from nas.spaces.space import Repeat

__all__ = ["PrecisionMLP", "PrecisionMLPConfig", "PrecisionMLPSpace", "PrecisionMLPSupernet"]


def _positive_int(value: Any) -> bool:
    """Whether `value` is an int >= 1 (bools, floats and strings are not: `int()` would round or parse them)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class PrecisionMLPConfig:
    """The frame: input shape, classes, the largest width of each hidden layer, the width multipliers and
    the formats every layer chooses from."""

    input_shape: tuple[int, ...] = (1, 8, 8)
    num_classes: int = 10
    hidden: tuple[int, ...] = (64, 64)
    widths: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    formats: tuple[str, ...] = FORMAT_NAMES

    def __post_init__(self) -> None:
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        if (not isinstance(self.input_shape, tuple) or not self.input_shape
                or not all(_positive_int(x) for x in self.input_shape)):
            raise ConfigError(f"PrecisionMLPConfig.input_shape: expected positive int sizes, got {self.input_shape!r}")
        if not _positive_int(self.num_classes) or self.num_classes < 2:
            raise ConfigError(f"PrecisionMLPConfig.num_classes: expected an int >= 2, got {self.num_classes!r}")
        if not isinstance(self.hidden, tuple) or not self.hidden or not all(_positive_int(h) for h in self.hidden):
            raise ConfigError(f"PrecisionMLPConfig.hidden: expected positive int widths, got {self.hidden!r}")
        if not self.widths or any(not 0 < w <= 1 for w in self.widths):
            raise ConfigError(f"PrecisionMLPConfig.widths: expected multipliers in (0, 1], got {self.widths!r}")
        if not self.formats:
            raise ConfigError("PrecisionMLPConfig.formats: expected at least one format")
        if not isinstance(self.formats, tuple):
            raise ConfigError(f"PrecisionMLPConfig.formats: expected a tuple of format names, got {self.formats!r}")
        names = []
        for i, fmt in enumerate(self.formats):
            where = f"PrecisionMLPConfig.formats[{i}]"
            if isinstance(fmt, NumberFormat):
                # a Choice option is a JSON scalar, so the space holds names: a record stands for its registered name
                if FORMATS.get(fmt.name) != fmt:
                    raise ConfigError(f"{where}: the space chooses among format names, and {fmt.name!r} is not "
                                      "registered as this record; add it to nas.hardware.quantization.FORMATS and "
                                      "pass its name")
                fmt = fmt.name
            check_packable(fmt, where)  # build() packs every quantized layer: refuse now, not after a search
            names.append(fmt)
        object.__setattr__(self, "formats", tuple(names))

    @property
    def in_features(self) -> int:
        return math.prod(self.input_shape)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def width(self, layer: int, multiplier: float) -> int:
        return max(1, int(round(multiplier * self.hidden[layer])))


def layer_plan(arch: Mapping[str, Any], cfg: PrecisionMLPConfig) -> list[tuple[int, int, str]]:
    """(in_features, out_features, format) of every layer, the head last."""
    plan, cin = [], cfg.in_features
    for i, layer in enumerate(arch["hidden"]):
        cout = cfg.width(i, layer["width"])
        plan.append((cin, cout, layer["format"]))
        cin = cout
    plan.append((cin, cfg.num_classes, arch["head_format"]))
    return plan


class PrecisionMLP(nn.Module):
    """One architecture as a standalone network: flatten, Linear + ReLU per hidden layer, Linear head.

    Quantized layers are `PackedLinear` (weights stored as codes) unless `packed` is False (plain float
    `nn.Linear` everywhere: the float twin that `model_size` and `precision_cost` read shapes from)."""

    def __init__(self, arch: Mapping[str, Any], config: PrecisionMLPConfig | None = None, packed: bool = True) -> None:
        super().__init__()
        cfg = config or PrecisionMLPConfig()
        layers: list[nn.Module] = []
        for cin, cout, fmt in layer_plan(arch, cfg):
            layer = nn.Linear(cin, cout)
            layers.append(PackedLinear.from_linear(layer, fmt) if packed and get_format(fmt).quantized else layer)
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class PrecisionMLPSupernet(nn.Module):
    """The largest float MLP; `forward(x, arch)` runs a subnet with its widths sliced and weights fake-quantized."""

    def __init__(self, space: "PrecisionMLPSpace") -> None:
        super().__init__()
        self.space = space
        cfg = space.config
        sizes = [cfg.in_features, *cfg.hidden, cfg.num_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def _sliced(self, arch: Mapping[str, Any]) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
        return [(layer.weight[:cout, :cin], layer.bias[:cout], fmt)
                for layer, (cin, cout, fmt) in zip(self.layers, layer_plan(arch, self.space.config))]

    def forward(self, x: torch.Tensor, arch: Mapping[str, Any]) -> torch.Tensor:
        x = x.flatten(1)
        sliced = self._sliced(arch)
        for i, (w, b, fmt) in enumerate(sliced):
            x = F.linear(x, fake_quant(w, fmt), b)
            if i < len(sliced) - 1:
                x = F.relu(x)
        return x

    @torch.no_grad()
    def subnet(self, arch: Mapping[str, Any]) -> PrecisionMLP:
        """The standalone packed network of `arch` with the supernet's (sliced) weights, in eval mode."""
        arch = self.space.validate(arch)
        net = PrecisionMLP(arch, self.space.config)
        for target, (w, b, _) in zip(net.layers, self._sliced(arch)):
            if isinstance(target, PackedLinear):
                target.load_weight(w, b)
            else:
                target.weight.copy_(w)
                target.bias.copy_(b)
        return net.eval()


class PrecisionMLPSpace(ModelSpace):
    """hidden[n] x (width, format) and head_format; see `PrecisionMLPConfig` for the options."""

    def __init__(self, config: PrecisionMLPConfig | None = None) -> None:
        cfg = config or PrecisionMLPConfig()
        super().__init__(hidden=Repeat(len(cfg.hidden), width=Choice(list(cfg.widths)),
                                       format=Choice(list(cfg.formats))),
                         head_format=Choice(list(cfg.formats)))
        self.config = cfg

    def build(self, arch: Mapping[str, Any]) -> PrecisionMLP:
        """A freshly initialised network, quantized layers packed."""
        return PrecisionMLP(self.validate(arch), self.config)

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> torch.Tensor:
        return torch.zeros(batch_size, *self.config.input_shape)

    def supernet(self) -> PrecisionMLPSupernet:
        return PrecisionMLPSupernet(self)

    def formats(self, arch: Mapping[str, Any]) -> dict[str, str]:
        """{layer path of the built network: format name} (`layers.0`, ..., the head last)."""
        return {f"layers.{i}": fmt for i, (_, _, fmt) in enumerate(layer_plan(self.validate(arch), self.config))}

    def size_bits(self, arch: Mapping[str, Any]) -> int:
        """Bits the built network stores (codes, scales, zero points, biases): what its export holds."""
        arch = self.validate(arch)
        return model_size_bits(PrecisionMLP(arch, self.config, packed=False), self.formats(arch))

    def count(self, arch: Mapping[str, Any], batch_size: int = 1) -> dict[str, float]:
        """{"params", "flops", "macs"} of the float twin: packed weights are buffers, yet weights all the same."""
        arch = self.validate(arch)
        return count_module(PrecisionMLP(arch, self.config, packed=False), self.example_input(arch, batch_size))

    def cost(self, arch: Mapping[str, Any], device: str | DeviceProfile, batch_size: int = 1,
             threads: int | None = None) -> PrecisionCost:
        """Size, roofline latency and analytic energy of one forward pass of `batch_size` on `device`."""
        arch = self.validate(arch)
        return precision_cost(PrecisionMLP(arch, self.config, packed=False), self.formats(arch),
                              self.example_input(arch, batch_size), device, threads)

    def _extreme(self, widest: bool) -> Architecture:
        pick_width = max if widest else min
        by_bits = sorted(self.config.formats, key=lambda f: get_format(f).bits)
        fmt = by_bits[-1] if widest else by_bits[0]
        return self.validate({"hidden": [{"width": pick_width(self.config.widths), "format": fmt}
                                         for _ in self.config.hidden], "head_format": fmt})

    def largest(self) -> Architecture:
        """Widest layers in the widest format (the sandwich rule's teacher)."""
        return self._extreme(True)

    def smallest(self) -> Architecture:
        """Narrowest layers in the narrowest format."""
        return self._extreme(False)

    def sample_subnet(self, rng: np.random.Generator) -> Architecture:
        """Uniform over architectures (every decision independent)."""
        return self.sample(rng)
