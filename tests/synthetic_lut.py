"""A synthetic per-layer latency table for tests: a fixed cost per layer plus a cost per FLOP, batch 1, this
machine's profile, so a table-based latency model is exact and known without timing anything."""

from __future__ import annotations

from typing import Any

from nas.hardware import LatencyTable, adapter_for, lut_latency
from nas.hardware.lut import TableEntry


def synthetic_lut(space: Any, per_layer_ms: float = 0.02, per_flop_ms: float = 1e-6) -> Any:
    """`lut_latency` over a table giving every distinct layer of `space` `per_layer_ms + per_flop_ms * flops`."""
    adapter = adapter_for(space)
    entries = []
    for layer in adapter.distinct_layers():
        leaves = adapter.layer_counts(layer)
        flops, params, moved = (sum(getattr(x, k) for x in leaves) for k in ("flops", "params", "bytes_moved"))
        ms = per_layer_ms + per_flop_ms * flops
        entries.append(TableEntry(layer, ms, ms, ms, ms, ms, flops, params, moved))
    header = {"adapter": adapter.describe(), "batch_size": 1, "device": "local_cpu"}
    return lut_latency(LatencyTable(header, entries), adapter)
