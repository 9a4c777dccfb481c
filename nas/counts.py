"""Parameter, FLOP and memory-traffic counts of a module, via torch's FlopCounterMode (no hand-written counter)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters (trainable or not) the module holds. A weight stored packed in buffers (a module with
    `weight_shape` and no weight parameter, as `nas.hardware.packing`'s) counts as the weights it holds, so a
    quantized network has the parameter count of its float twin."""
    packed = sum(math.prod(m.weight_shape) for m in module.modules()
                 if hasattr(m, "weight_shape") and m._parameters.get("weight") is None)
    return sum(p.numel() for p in module.parameters()) + packed


def forward(module: torch.nn.Module, inputs: Any) -> Any:
    """Call `module` on `inputs`: a tensor, a tuple of positional args, or a dict of keyword args."""
    if isinstance(inputs, Mapping):
        return module(**inputs)
    if isinstance(inputs, tuple):
        return module(*inputs)
    return module(inputs)


def _counted_forward(module: torch.nn.Module, inputs: Any) -> FlopCounterMode:
    """One no-grad, eval-mode forward pass under torch's FlopCounterMode; the module's mode is restored."""
    was_training = module.training
    module.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            forward(module, inputs)
    finally:
        module.train(was_training)
    return counter


def count_flops(module: torch.nn.Module, inputs: Any, per_module: bool = False) -> dict[str, Any]:
    """FLOPs of one forward pass on `inputs` (a tensor, a tuple of args or a dict of kwargs).

    FLOPs count a multiply-add as 2 (torch's convention); MACs = FLOPs / 2. With `per_module`, also a
    {module name: flops} breakdown.
    """
    counter = _counted_forward(module, inputs)
    total = int(counter.get_total_flops())
    out: dict[str, Any] = {"flops": total, "macs": total // 2}
    if per_module:
        out["per_module"] = {name: int(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}
    return out


def count(module: torch.nn.Module, inputs: Any) -> dict[str, float]:
    """{"params", "flops", "macs"} for a module and an example input."""
    flops = count_flops(module, inputs)
    return {"params": float(count_params(module)), "flops": float(flops["flops"]), "macs": float(flops["macs"])}


def _tensor_bytes(value: Any) -> int:
    """Bytes held by the tensors in `value` (a tensor, or a tuple/list/dict nesting them)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Mapping):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _same_tensor(a: Any, b: Any) -> bool:
    first = a[0] if isinstance(a, tuple) and len(a) == 1 else a
    return isinstance(first, torch.Tensor) and first is b


@dataclass(frozen=True)
class LeafCount:
    """Counts of one leaf module's forward call: FLOPs (FlopCounterMode), parameters, and bytes it reads/writes.

    `bytes_moved` = weight bytes (parameters and buffers) + input bytes + output bytes: the traffic if every
    operand comes from and goes to main memory once (a roofline's memory term). Identity-like calls move 0.
    """

    name: str
    type: str
    flops: int
    params: int
    weight_bytes: int
    input_bytes: int
    output_bytes: int

    @property
    def bytes_moved(self) -> int:
        return self.weight_bytes + self.input_bytes + self.output_bytes


def count_leaves(module: torch.nn.Module, inputs: Any) -> list[LeafCount]:
    """Per leaf-module call (in execution order): FLOPs, parameters and bytes moved, for one forward in eval mode.

    FLOPs that FlopCounterMode attributes to no leaf (a functional matmul inside a composite module) form
    one last entry of type "functional" with no bytes, so the FLOPs add up to the network's total. Bytes of
    work outside leaf modules (functional adds, `x.mean`, concatenation) are left out, keeping roofline
    bounds low.
    """
    names = {m: n for n, m in module.named_modules()}
    root = type(module).__name__
    calls: list[tuple[str, torch.nn.Module, int, int]] = []

    def hook(mod: torch.nn.Module, args: Any, output: Any) -> None:
        moved_nothing = _same_tensor(args, output)
        calls.append((names[mod], mod, 0 if moved_nothing else _tensor_bytes(args),
                      0 if moved_nothing else _tensor_bytes(output)))

    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        counter = _counted_forward(module, inputs)
    finally:
        for h in handles:
            h.remove()
    flops = {k: int(sum(v.values())) for k, v in counter.get_flop_counts().items()}
    total = int(counter.get_total_flops())
    seen: dict[str, int] = {}
    out = []
    for name, mod, in_bytes, out_bytes in calls:
        # FlopCounterMode sums a module's calls; split it evenly over the calls of a module used twice.
        n_calls = sum(c[0] == name for c in calls)
        key = f"{root}.{name}" if name else root
        params = sum(p.numel() for p in mod.parameters(recurse=False))
        first = seen.setdefault(name, 0) == 0
        seen[name] += 1
        out.append(LeafCount(name, type(mod).__name__, flops.get(key, 0) // n_calls,
                             params if first else 0,
                             sum(_tensor_bytes(t) for t in (*mod.parameters(recurse=False),
                                                            *mod.buffers(recurse=False))),
                             in_bytes, out_bytes))
    rest = total - sum(x.flops for x in out)
    if rest > 0:  # FLOPs of functional calls inside non-leaf modules (e.g. attention matmuls): one pseudo-leaf
        out.append(LeafCount("", "functional", rest, 0, 0, 0, 0))
    return out


def count_bytes(module: torch.nn.Module, inputs: Any) -> int:
    """Bytes moved by one forward pass, summed over leaf modules (see `LeafCount.bytes_moved`)."""
    return sum(leaf.bytes_moved for leaf in count_leaves(module, inputs))
