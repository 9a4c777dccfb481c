"""Roofline lower bound on latency from a device profile: a layer takes at least max(FLOPs / peak, bytes / bandwidth).

Summed over the leaf modules of one forward pass (layers run one after another). It ignores launch and
framework overhead and assumes every operand streams from main memory once, so it is the time the
hardware could not beat under those assumptions; caches can beat the memory term for tiny layers, so
`compute_ms` (all FLOPs at peak) is also given as the unconditional bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from nas.counts import LeafCount
from nas.hardware.devices import DeviceProfile

DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.int8: "int8",
               torch.float64: "float64"}


@dataclass(frozen=True)
class Roofline:
    """bound_ms: sum over layers of max(compute, memory) time; compute_ms / memory_ms: the two terms alone."""

    bound_ms: float
    compute_ms: float
    memory_ms: float
    device: str
    dtype: str
    threads: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def module_dtype(module: torch.nn.Module) -> str:
    """The dtype name of a module's first floating parameter (float32 when it has none)."""
    for p in module.parameters():
        if p.is_floating_point():
            return DTYPE_NAMES.get(p.dtype, str(p.dtype).removeprefix("torch."))
    return "float32"


def roofline(leaves: Sequence[LeafCount], device: DeviceProfile, dtype: str = "float32",
             threads: int | None = None) -> Roofline:
    """The roofline bound of a forward pass given its per-leaf counts (see `counts.count_leaves`)."""
    peak, bw = device.peak(dtype, threads), device.memory_bandwidth
    bound = sum(max(x.flops / peak, x.bytes_moved / bw) for x in leaves)
    compute = sum(x.flops for x in leaves) / peak
    memory = sum(x.bytes_moved for x in leaves) / bw
    return Roofline(bound * 1e3, compute * 1e3, memory * 1e3, device.name, dtype, threads)
