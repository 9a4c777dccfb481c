"""Function-preserving network transformations (Net2Net, Chen et al. 2016, as used by EAS, Cai et al. 2018)
on layer stacks, and `StackSpace`: conv/fc stacks whose architectures grow by them.

* `widen(stack, index, width, rng)`: Net2Wider. The Conv2d/Linear at `stack[index]` gets `width` outputs; the
  new units copy random existing ones (weights, bias and the following BatchNorm's affine parameters and
  running statistics), and the next Conv2d/Linear (through ReLU, pooling and Flatten) divides each copied
  unit's outgoing weights by its number of copies, so the stack computes the same function.
* `deepen(stack, index, inputs)`: Net2Deeper. After the ReLU at `stack[index]` an identity Conv2d/Linear is
  inserted (+ a BatchNorm whose running statistics are those of its input and whose affine parameters undo
  them, when the producing block has one; + a ReLU, idempotent on the ReLU's non-negative output).

A stack is an `nn.Sequential` of Conv2d, Linear, BatchNorm1d/2d, ReLU, pooling, Dropout and Flatten.
Transformations return a new stack and leave the given one unchanged; both hold in eval mode (and widening
also in train mode: copies have the batch statistics of their originals).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ConfigError, InvalidArchitectureError, check_count, check_number
from nas.spaces.model_space import ModelSpace
from nas.spaces.params import Integer
from nas.spaces.space import Repeat

__all__ = ["Action", "StackConfig", "StackSpace", "deepen", "max_output_change", "widen"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_LAYERS = (nn.Conv2d, nn.Linear)
_PASS = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout)
"""Per-unit (channel-wise) modules a widened unit's copies pass through unchanged."""
_KEEP_NONNEGATIVE = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Flatten)


def _units(layer: nn.Module) -> int:
    return layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features


def _check_kernel(value: object, name: str) -> int:
    """An odd positive int kernel size (same padding keeps the resolution, the centre tap makes the identity)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1 and value % 2 == 1
    if not ok:
        raise ConfigError(f"{name}: expected an odd positive int (same padding, identity init), got {value!r}")
    return int(value)  # type: ignore[call-overload]


@contextmanager
def _evaluating(*modules: nn.Module) -> Iterator[None]:
    """The modules in eval mode inside the block; every submodule's own mode restored after it, also on an error
    (a frozen BatchNorm in a training stack stays frozen)."""
    given = [(m, m.training) for module in modules for m in module.modules()]
    try:
        for module in modules:
            module.eval()
        yield
    finally:
        for m, training in given:
            m.training = training


def _check_layer(stack: nn.Sequential, index: int) -> nn.Module:
    if not isinstance(stack, nn.Sequential):
        raise ConfigError(f"stack: expected an nn.Sequential, got {type(stack).__name__}")
    if not -len(stack) <= index < len(stack):
        raise ConfigError(f"index: {index} is outside the stack of {len(stack)} modules")
    return stack[index]


def _consumer(stack: nn.Sequential, index: int) -> tuple[int | None, int, bool]:
    """(the following BatchNorm's index or None, the next Conv2d/Linear's index, whether a Flatten lies between)."""
    bn, flattened = None, False
    for j in range(index + 1, len(stack)):
        m = stack[j]
        if isinstance(m, _LAYERS):
            return bn, j, flattened
        if isinstance(m, _BN) and bn is None and j == index + 1:
            bn = j
        elif isinstance(m, nn.Flatten):
            flattened = True
        elif not isinstance(m, _PASS):
            raise ConfigError(f"index: {type(m).__name__} at stack[{j}] between stack[{index}] and its consumer is "
                              "not per-unit (Net2Wider passes ReLU, pooling, Dropout, Flatten and one BatchNorm)")
    raise ConfigError(f"index: stack[{index}] has no Conv2d/Linear after it (the output layer cannot be widened)")


@torch.no_grad()
def widen(stack: nn.Sequential, index: int, width: int, rng: np.random.Generator, noise: float = 0.0) -> nn.Sequential:
    """Net2Wider: `stack[index]` (Conv2d or Linear) with `width` output units, the function unchanged.

    `noise` > 0 adds Gaussian noise of `noise` x the weights' std to the copies' incoming weights, which breaks
    the symmetry between a unit and its copies (so they can learn apart) at a small change of the function.
    """
    width = check_count(width, "width", " (the new number of units)")
    noise = check_number(noise, "noise", positive=False)
    layer = _check_layer(stack, index)
    if not isinstance(layer, _LAYERS):
        raise ConfigError(f"index: stack[{index}] is a {type(layer).__name__}, not a Conv2d or Linear")
    if isinstance(layer, nn.Conv2d) and layer.groups != 1:
        raise ConfigError(f"index: stack[{index}] is a grouped convolution (groups={layer.groups}), not supported")
    index %= len(stack)
    old = _units(layer)
    if width < old:
        raise ConfigError(f"width: {width} is narrower than the {old} units of stack[{index}] (Net2Wider only widens)")
    bn_at, next_at, flattened = _consumer(stack, index)
    out = copy.deepcopy(stack)
    if width == old:
        return out
    mapping = torch.as_tensor(np.concatenate([np.arange(old), rng.integers(0, old, width - old)]))
    copies = torch.bincount(mapping, minlength=old).to(layer.weight.dtype)
    new = _resized(layer, out_units=width)
    new.weight.copy_(layer.weight[mapping])
    if noise > 0:
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        extra = torch.randn(new.weight[old:].shape, generator=gen, dtype=new.weight.dtype)
        spread = float(layer.weight.std()) if layer.weight.numel() > 1 else float(layer.weight.abs().mean())
        new.weight[old:] += noise * spread * extra
    if layer.bias is not None:
        new.bias.copy_(layer.bias[mapping])
    out[index] = new
    if bn_at is not None:
        out[bn_at] = _widened_bn(stack[bn_at], mapping)
    nxt = stack[next_at]
    if isinstance(nxt, nn.Conv2d) and nxt.groups != 1:
        raise ConfigError(f"index: the consumer stack[{next_at}] is a grouped convolution, not supported")
    inputs = nxt.in_channels if isinstance(nxt, nn.Conv2d) else nxt.in_features
    if inputs % old:
        raise ConfigError(f"index: stack[{next_at}] takes {inputs} inputs, not a multiple of the {old} units widened")
    per_unit = inputs // old  # spatial positions per channel after a Flatten, else 1
    if per_unit != 1 and not flattened:
        raise ConfigError(f"index: stack[{next_at}] takes {inputs} inputs from {old} units without a Flatten between")
    w = nxt.weight.reshape(nxt.weight.shape[0], old, per_unit, *nxt.weight.shape[2:])
    scale = (1.0 / copies[mapping]).reshape(1, width, *([1] * (w.dim() - 2)))
    widened = (w[:, mapping] * scale).reshape(nxt.weight.shape[0], width * per_unit, *nxt.weight.shape[2:])
    consumer = _resized(nxt, in_units=width * per_unit)
    consumer.weight.copy_(widened)
    if nxt.bias is not None:
        consumer.bias.copy_(nxt.bias)
    out[next_at] = consumer
    return out


def _resized(layer: nn.Module, out_units: int | None = None, in_units: int | None = None) -> nn.Module:
    """A fresh copy of a Conv2d/Linear with other input/output sizes (same options, dtype and device)."""
    kw = {"dtype": layer.weight.dtype, "device": layer.weight.device, "bias": layer.bias is not None}
    if isinstance(layer, nn.Conv2d):
        new: nn.Module = nn.Conv2d(in_units or layer.in_channels, out_units or layer.out_channels, layer.kernel_size,
                                   layer.stride, layer.padding, layer.dilation, padding_mode=layer.padding_mode, **kw)
    else:
        new = nn.Linear(in_units or layer.in_features, out_units or layer.out_features, **kw)
    return new.train(layer.training)


def _widened_bn(bn: nn.Module, mapping: torch.Tensor) -> nn.Module:
    new = type(bn)(len(mapping), bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                   dtype=bn.running_mean.dtype if bn.running_mean is not None else None)
    state = {}
    for name, value in bn.state_dict().items():
        state[name] = value if name == "num_batches_tracked" else value[mapping].clone()
    new.load_state_dict(state)
    return new.train(bn.training)


@torch.no_grad()
def deepen(stack: nn.Sequential, index: int, inputs: torch.Tensor | None = None, kernel: int = 3) -> nn.Sequential:
    """Net2Deeper: an identity block inserted after the ReLU at `stack[index]` (pooling, Dropout or Flatten may
    follow the ReLU), the function unchanged.

    The block copies the producing block's form: Conv2d (`kernel` x `kernel`, same padding) or Linear, with a
    bias when the producer has one, a BatchNorm when the producer is followed by one, and a ReLU. The BatchNorm's
    running statistics are those of its input on `inputs` (a batch for the stack; mean 0, variance 1 without),
    and its weight and bias undo them, so it is the identity in eval mode and close to it in train mode. `inputs`
    must give each unit at least 2 values (2 samples for an fc block; one image has H x W per channel).
    """
    kernel = _check_kernel(kernel, "kernel")
    _check_layer(stack, index)
    index %= len(stack)
    j = index
    while j >= 0 and isinstance(stack[j], _KEEP_NONNEGATIVE):
        j -= 1
    if j < 0 or not isinstance(stack[j], nn.ReLU):
        raise ConfigError(f"index: Net2Deeper inserts after a ReLU; stack[{index}] is a {type(stack[index]).__name__} "
                          "not preceded by one")
    producer_at = max((k for k in range(j) if isinstance(stack[k], _LAYERS)), default=None)
    if producer_at is None:
        raise ConfigError(f"index: no Conv2d/Linear before stack[{index}] to copy the block's form from")
    producer = stack[producer_at]
    flat_between = any(isinstance(stack[k], nn.Flatten) for k in range(producer_at + 1, index + 1))
    if flat_between:
        raise ConfigError(f"index: a Flatten lies between stack[{producer_at}] and stack[{index}]; insert the block "
                          "before the Flatten or after the next Linear's ReLU")
    units = _units(producer)
    bias = producer.bias is not None
    kw = {"dtype": producer.weight.dtype, "device": producer.weight.device}
    if isinstance(producer, nn.Conv2d):
        layer: nn.Module = nn.Conv2d(units, units, kernel, padding=kernel // 2, bias=bias, **kw)
        layer.weight.zero_()
        layer.weight[torch.arange(units), torch.arange(units), kernel // 2, kernel // 2] = 1.0
    else:
        layer = nn.Linear(units, units, bias=bias, **kw)
        layer.weight.copy_(torch.eye(units, **kw))
    if bias:
        layer.bias.zero_()
    block = [layer]
    after = stack[producer_at + 1] if producer_at + 1 < len(stack) else None
    if isinstance(after, _BN):
        bn = type(after)(units, after.eps, after.momentum, **kw)
        if inputs is not None:
            with _evaluating(stack):
                h = stack[:index + 1](inputs)
            dims = [d for d in range(h.dim()) if d != 1]
            values = h.numel() // max(h.shape[1], 1)
            if values < 2:  # the unbiased variance of one value is NaN, and so would be the whole network
                raise ConfigError(f"inputs: {len(h)} sample(s) give each unit at stack[{index}] {values} value; the "
                                  "BatchNorm's variance needs >= 2 (give a larger batch, or None for mean 0, "
                                  "variance 1)")
            mean, var = h.mean(dims), h.var(dims)
            if not bool(torch.isfinite(mean).all() and torch.isfinite(var).all()):
                raise ConfigError(f"inputs: the statistics at stack[{index}] are not finite (NaN or infinite "
                                  "inputs or activations)")
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(bn.running_var + bn.eps))
        bn.bias.copy_(bn.running_mean)
        block.append(bn)
    block.append(nn.ReLU())
    out = copy.deepcopy(stack)
    modules = list(out)
    return nn.Sequential(*modules[:index + 1], *[m.train(stack.training) for m in block], *modules[index + 1:])


@torch.no_grad()
def max_output_change(before: nn.Module, after: nn.Module, inputs: torch.Tensor) -> float:
    """max |after(x) - before(x)| over `inputs`, both modules in eval mode (every submodule's mode restored)."""
    with _evaluating(before, after):
        return float((after(inputs) - before(inputs)).abs().max())


# ---------------------------------------------------------------------------------------- the space
@dataclass(frozen=True)
class StackConfig:
    """A conv/fc stack: `conv` blocks (Conv2d k x k without bias, BatchNorm2d, ReLU) at the input resolution, an
    average pool of `pool`, Flatten, `fc` blocks (Linear without bias, BatchNorm1d, ReLU), a Linear classifier."""

    input_shape: tuple[int, int, int] = (1, 8, 8)
    num_classes: int = 10
    max_conv: int = 4
    max_fc: int = 3
    min_width: int = 4
    max_width: int = 128
    kernel: int = 3
    pool: int = 2

    def __post_init__(self) -> None:
        """Every field a positive int (numpy ints taken as Python ints), so a bad one is named here, not by torch
        in the middle of a search."""
        object.__setattr__(self, "input_shape", _shape(self.input_shape, "StackConfig.input_shape"))
        for name in ("num_classes", "max_conv", "max_fc", "min_width", "max_width", "pool"):
            object.__setattr__(self, name, check_count(getattr(self, name), f"StackConfig.{name}"))
        object.__setattr__(self, "kernel", _check_kernel(self.kernel, "StackConfig.kernel"))
        if self.max_width < self.min_width:
            raise ConfigError(f"StackConfig.max_width: {self.max_width} is below min_width {self.min_width}")
        if self.input_shape[1] % self.pool or self.input_shape[2] % self.pool:
            raise ConfigError(f"StackConfig.pool: {self.pool} does not divide the input's {self.input_shape[1:]}")


def _shape(value: object, name: str) -> tuple[int, int, int]:
    """(channels, height, width) as positive Python ints; ConfigError naming `name` otherwise."""
    shape = tuple(value) if isinstance(value, Iterable) and not isinstance(value, str) else ()
    if len(shape) != 3:
        raise ConfigError(f"{name}: expected (channels, height, width), got {value!r}")
    try:
        return tuple(check_count(v, name) for v in shape)  # type: ignore[return-value]
    except ConfigError:
        raise ConfigError(f"{name}: expected (channels, height, width) of positive ints, got {value!r}") from None


@dataclass(frozen=True)
class Action:
    """One transformation: widen or deepen the block `position` of `part` ("conv" or "fc")."""

    kind: str
    part: str
    position: int

    def __str__(self) -> str:
        return f"{self.kind} {self.part}[{self.position}]"


class StackSpace(ModelSpace):
    """Conv/fc stacks (`StackConfig`) as architectures {"n_conv", "conv": [{"width"}], "n_fc", "fc": [{"width"}]};
    `build(arch)` is an `nn.Sequential`, and `apply(arch, stack, action, rng)` grows one by Net2Net."""

    def __init__(self, config: StackConfig | None = None) -> None:
        cfg = config or StackConfig()
        width = Integer(cfg.min_width, cfg.max_width)
        super().__init__(n_conv=Integer(1, cfg.max_conv), conv=Repeat("n_conv", width=width),
                         n_fc=Integer(1, cfg.max_fc), fc=Repeat("n_fc", width=width))
        self.config = cfg

    def to_spec(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**super().to_spec(), "config": {**asdict(self.config), "input_shape": list(self.config.input_shape)}}

    def make(self, conv: list[int], fc: list[int]) -> Architecture:
        """The architecture with these conv and fc block widths."""
        return self.validate({"n_conv": len(conv), "conv": [{"width": w} for w in conv],
                              "n_fc": len(fc), "fc": [{"width": w} for w in fc]})

    def build(self, arch: Mapping[str, Any]) -> nn.Sequential:
        arch, cfg = self.validate(arch), self.config
        layers: list[nn.Module] = []
        channels = cfg.input_shape[0]
        for block in arch["conv"]:
            layers += [nn.Conv2d(channels, block["width"], cfg.kernel, padding=cfg.kernel // 2, bias=False),
                       nn.BatchNorm2d(block["width"]), nn.ReLU()]
            channels = block["width"]
        layers += [nn.AvgPool2d(cfg.pool), nn.Flatten()]
        features = channels * (cfg.input_shape[1] // cfg.pool) * (cfg.input_shape[2] // cfg.pool)
        for block in arch["fc"]:
            layers += [nn.Linear(features, block["width"], bias=False), nn.BatchNorm1d(block["width"]), nn.ReLU()]
            features = block["width"]
        return nn.Sequential(*layers, nn.Linear(features, cfg.num_classes))

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> torch.Tensor:
        return torch.zeros(batch_size, *self.config.input_shape)

    def _index(self, arch: Architecture, part: str, position: int) -> int:
        """The stack index of block `position`'s Conv2d/Linear (each block is 3 modules; pool + Flatten between)."""
        return 3 * position if part == "conv" else 3 * arch["n_conv"] + 2 + 3 * position

    def actions(self, arch: Mapping[str, Any], widen_factor: float = 2.0) -> list[Action]:
        """Every transformation `arch` admits: widening a block below max_width, deepening while below max depth."""
        arch, cfg = self.validate(arch), self.config
        widen_factor = _check_factor(widen_factor)
        out = []
        for part, limit in (("conv", cfg.max_conv), ("fc", cfg.max_fc)):
            for i, block in enumerate(arch[part]):
                if self._wider(block["width"], widen_factor) > block["width"]:
                    out.append(Action("widen", part, i))
            if arch[f"n_{part}"] < limit:
                out += [Action("deepen", part, i) for i in range(arch[f"n_{part}"])]
        return out

    def _wider(self, width: int, factor: float) -> int:
        """`width` x `factor` (> 1, checked by the callers), at least one more, capped at max_width."""
        return min(self.config.max_width, max(width + 1, int(round(width * factor))))

    def transformed(self, arch: Mapping[str, Any], action: Action, widen_factor: float = 2.0) -> Architecture:
        """The architecture `action` turns `arch` into (InvalidArchitectureError when it does not apply)."""
        arch, widen_factor = self.validate(arch), _check_factor(widen_factor)
        if action not in self.actions(arch, widen_factor):
            raise InvalidArchitectureError("action", f"{action} does not apply to {arch.to_dict()}")
        widths = {p: [b["width"] for b in arch[p]] for p in ("conv", "fc")}
        ws = widths[action.part]
        if action.kind == "widen":
            ws[action.position] = self._wider(ws[action.position], widen_factor)
        else:
            ws.insert(action.position + 1, ws[action.position])
        return self.make(widths["conv"], widths["fc"])

    def apply(self, arch: Mapping[str, Any], stack: nn.Sequential, action: Action, rng: np.random.Generator,
              inputs: torch.Tensor | None = None, noise: float = 0.0,
              widen_factor: float = 2.0) -> tuple[Architecture, nn.Sequential]:
        """(the new architecture, its stack computing `stack`'s function) after `action`; `inputs` set a deepened
        block's BatchNorm statistics, `noise` breaks a widened block's symmetry (see `widen`)."""
        arch = self.validate(arch)
        new = self.transformed(arch, action, widen_factor)
        index = self._index(arch, action.part, action.position)
        if action.kind == "widen":
            out = widen(stack, index, new[action.part][action.position]["width"], rng, noise)
        else:
            out = deepen(stack, index + 2, inputs, self.config.kernel)
        return new, out


def _check_factor(value: object) -> float:
    """A widening factor: a finite number > 1 (`EASOptions.widen_factor` is checked the same way)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 1:  # type: ignore[operator]
        raise ConfigError(f"widen_factor: expected a finite number > 1, got {value!r}")
    return float(value)  # type: ignore[arg-type]
