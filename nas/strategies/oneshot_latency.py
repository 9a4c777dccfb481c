"""Per-op cost of every edge of a cell supernet, for ProxylessNAS's differentiable latency loss.

Each mixed-op edge of a `CellSupernet` is looked up as the `op` layer the hardware lookup tables use
(`nas.hardware.cell_layers`: op name, stride, input shape); the cost of op `o` on edge `e` of a cell kind
is summed over every cell of that kind (cells of one kind share their alphas). The expected cost of
`softmax(alpha)` is then differentiable in the alphas. Costs come from a latency lookup table (ms), or,
labelled as such, from FLOPs (an analytic proxy, in MFLOPs) where no table is wanted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from nas.errors import ConfigError
from nas.hardware.layers import LayerAdapter, LayerConfig
from nas.hardware.lut import LatencyTable, build_table
from nas.spaces.cell import CellSupernet, MixedOp, softmax_mixing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeCosts:
    """Cost of each op on each edge, per cell kind (`[edges, ops]`, summed over the cells of that kind)."""

    costs: dict[str, torch.Tensor]
    source: str  # "lut" (measured lookup table) or "flops" (analytic proxy)
    unit: str  # "ms" or "mflops"

    def expected(self, op_weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Expected cost of the cell ops under per-edge op probabilities (differentiable in them)."""
        return sum((op_weights[k] * c).sum() for k, c in self.costs.items())  # type: ignore[return-value]

    def uniform(self) -> float:
        """The expected cost with every op equally likely: the scale the latency loss is divided by."""
        return float(sum(c.mean(dim=1).sum() for c in self.costs.values()))


def latency_scale(costs: EdgeCosts | None, latency_weight: float) -> float:
    """The latency loss's divisor E_uniform[cost] (1.0 without costs); a ConfigError, before any training, when a
    weighted loss would divide by a cost that is not positive (every candidate free by this measure)."""
    if costs is None:
        return 1.0
    scale = costs.uniform()
    if latency_weight > 0 and not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"latency_weight: {latency_weight} weighs E[cost] / E_uniform[cost], but every candidate "
                          f"op costs 0 by latency={costs.source!r} (E_uniform[cost] = {scale}): the latency loss is "
                          "undefined; use another cost source (latency='lut') or latency_weight=0")
    return scale


def edge_layers(supernet: CellSupernet) -> dict[str, list[list[LayerConfig]]]:
    """{kind: [[layer per op] per edge of each cell of that kind]}: the lookup-table layers every edge can run."""
    shapes: dict[int, tuple[int, ...]] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args: shapes.__setitem__(id(mod), tuple(args[0].shape[1:])))
             for m in supernet.modules() if isinstance(m, MixedOp)]
    was_training, mixing = supernet.training, supernet.mixing
    try:
        supernet.eval()
        supernet.mixing = softmax_mixing  # every op runs, and a sampling mixing's generator is left untouched
        with torch.no_grad():
            supernet(torch.zeros(2, *supernet.space.net.input_shape))
    finally:
        for h in hooks:
            h.remove()
        supernet.train(was_training)
        supernet.mixing = mixing
    out: dict[str, list[list[LayerConfig]]] = {}
    for layer, kind in zip(supernet.layers, supernet.kinds):
        if not kind:
            continue
        for i, j in supernet.edges:
            mixed = layer.edges[f"{i}_{j}"]
            shape = shapes[id(mixed)]
            out.setdefault(kind, []).append([LayerConfig.make("op", shape, op=o, stride=mixed.stride)
                                             for o in supernet.ops])
    return out


def _costs(supernet: CellSupernet, layer_cost) -> dict[str, torch.Tensor]:  # noqa: ANN001
    per_kind: dict[str, torch.Tensor] = {}
    n_edges = len(supernet.edges)
    for kind, rows in edge_layers(supernet).items():
        values = torch.tensor([[layer_cost(layer) for layer in row] for row in rows], dtype=torch.float32)
        per_kind[kind] = values.view(-1, n_edges, len(supernet.ops)).sum(dim=0)  # sum over the kind's cells
    return per_kind


def lut_costs(supernet: CellSupernet, table: LatencyTable) -> EdgeCosts:
    """Edge costs (ms) from a lookup table; `none` costs 0 where the table lacks it (DARTS adds it to the supernet)."""

    def cost(layer: LayerConfig) -> float:
        if layer["op"] == "none" and layer not in table:
            return 0.0
        return table.layer_ms(layer)

    return EdgeCosts(_costs(supernet, cost), "lut", "ms")


def flops_costs(supernet: CellSupernet, adapter: LayerAdapter) -> EdgeCosts:
    """Edge costs from FLOPs (MFLOPs of one input): an analytic stand-in for latency, not a measurement."""

    def cost(layer: LayerConfig) -> float:
        if layer["op"] == "none":
            return 0.0
        return sum(x.flops for x in adapter.layer_counts(layer)) / 1e6

    return EdgeCosts(_costs(supernet, cost), "flops", "mflops")


def ensure_table(adapter: LayerAdapter, path: str | Path, *, warmup: int = 1, repeats: int = 1,
                 rounds: int = 10, layers: list[LayerConfig] | None = None) -> LatencyTable:
    """A lookup table of every distinct layer of the adapter's space (or just `layers`) at `path`, profiled
    now where missing.

    Resumable (see `build_table`); on one CPU thread, batch 1, the small cell spaces take seconds.
    """
    path = Path(path)
    before = len(LatencyTable.load(path)) if path.exists() else 0
    table = build_table(adapter, path, warmup=warmup, repeats=repeats, rounds=rounds, threads=1, layers=layers)
    if len(table) > before:
        log.info("latency table %s: profiled %d layers", path, len(table) - before)
    return table


def check_table(table: LatencyTable, adapter: LayerAdapter, supernet: CellSupernet) -> None:
    """ConfigError when `table` was built for another space frame or lacks an op layer of the supernet."""
    table.check_adapter(adapter)
    missing = [layer for rows in edge_layers(supernet).values() for row in rows for layer in row
               if layer not in table and layer["op"] != "none"]
    if missing:
        raise ConfigError(f"latency table {table.path or '(in memory)'}: lacks {len(missing)} op layers of this "
                          f"supernet, e.g. {missing[0].key}")
