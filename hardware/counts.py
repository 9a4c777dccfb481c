"""Parameter and FLOP counts of a module, via torch's FlopCounterMode (no hand-written counter)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters (trainable or not) the module holds."""
    return sum(p.numel() for p in module.parameters())


def _call(module: torch.nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
        return module(**inputs)
    if isinstance(inputs, tuple):
        return module(*inputs)
    return module(inputs)


def count_flops(module: torch.nn.Module, inputs: Any, per_module: bool = False) -> dict[str, Any]:
    """FLOPs of one forward pass on `inputs` (a tensor, a tuple of args or a dict of kwargs).

    FLOPs count a multiply-add as 2 (torch's convention); MACs = FLOPs / 2. With `per_module`, also a
    {module name: flops} breakdown.
    """
    was_training = module.training
    module.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            _call(module, inputs)
    finally:
        module.train(was_training)
    total = int(counter.get_total_flops())
    out: dict[str, Any] = {"flops": total, "macs": total // 2}
    if per_module:
        out["per_module"] = {name: int(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}
    return out


def count(module: torch.nn.Module, inputs: Any) -> dict[str, float]:
    """{"params", "flops", "macs"} for a module and an example input."""
    flops = count_flops(module, inputs)
    return {"params": float(count_params(module)), "flops": float(flops["flops"]), "macs": float(flops["macs"])}
