"""Layer decomposition of the cell spaces (`nas.spaces.cell`): NAS-Bench-201 and DARTS.

A cell is decomposed into its edge operations (`op`: name, channels, stride, input shape), the node
sums (`add`) and, for DARTS, the input preprocessing (`pre`) and the output concatenation (`concat`);
stem, NB201's residual reduction blocks and the head are layers of their own. The same op at the same
shape is one lookup-table entry wherever it occurs, so NB201's 15,625 cells need 5 ops x stages entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.hardware.layers import AddN, ConcatN, LayerAdapter, LayerConfig, conv_length, unique
from nas.spaces.cell import (NB201_EDGES, DartsSpace, FactorizedReduce, NasBench201Space, ReLUConvBN,
                             ResidualReduction, make_op)


def _nn(dims: int) -> tuple[type, type]:
    return (nn.Conv1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d)


def _half(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Spatial shape after a stride-2 op of the cell spaces (3x3 pad 1, 1x1, pools: all ceil(n / 2))."""
    return tuple(conv_length(n, 3, 2, 1) for n in shape)


class Head(nn.Module):
    """BN -> ReLU -> global average pool -> linear (the cell networks' head)."""

    def __init__(self, channels: int, num_classes: int, dims: int) -> None:
        super().__init__()
        self.bn = _nn(dims)[1](channels)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.bn(x)).flatten(2).mean(-1))


class _CellLayers(LayerAdapter):
    """Shared parts: stem, op, add, concat, head layers of a cell space."""

    space: NasBench201Space | DartsSpace

    def describe(self) -> dict[str, Any]:
        net = self.space.net
        return {**super().describe(), "input_shape": list(net.input_shape), "num_classes": net.num_classes,
                "channels": net.channels, "cells_per_stage": net.cells_per_stage, "stages": net.stages}

    def _stem(self, cout: int) -> LayerConfig:
        shape = self.space.net.input_shape
        return LayerConfig.make("stem", shape, cin=shape[0], cout=cout)

    def moves_bytes(self, layer: LayerConfig) -> bool:
        """Node sums and the output concatenation are tensor arithmetic in the network, not module calls: their
        bytes are left out of an architecture's counts, as `count_leaves` leaves them out of the network's."""
        return layer.kind not in ("add", "concat")

    @staticmethod
    def _op(name: str, channels: int, stride: int, spatial: tuple[int, ...]) -> LayerConfig:
        return LayerConfig.make("op", (channels, *spatial), op=name, stride=stride)

    def build_layer(self, layer: LayerConfig) -> nn.Module:
        dims = len(layer.input_shape) - 1
        channels = layer.input_shape[0]
        if layer.kind == "stem":
            conv, bn = _nn(dims)
            return nn.Sequential(conv(layer["cin"], layer["cout"], 3, 1, 1, bias=False), bn(layer["cout"]))
        if layer.kind == "op":
            return make_op(layer["op"], channels, layer["stride"], dims)
        if layer.kind == "add":
            return AddN(layer["n"])
        if layer.kind == "concat":
            return ConcatN(layer["n"])
        if layer.kind == "reduction":
            return ResidualReduction(channels, layer["cout"], dims)
        if layer.kind == "pre":
            if layer["reduce"]:
                return FactorizedReduce(channels, layer["cout"], dims)
            return ReLUConvBN(channels, layer["cout"], 1, 1, dims)
        if layer.kind == "head":
            return Head(channels, layer["classes"], dims)
        raise KeyError(f"{type(self).__name__}: unknown layer kind {layer.kind!r}")


class NB201Layers(_CellLayers):
    """`LayerAdapter` for `NasBench201Space`: stem, per cell 6 edge ops and 3 node sums, reductions, head."""

    name = "nb201"

    def __init__(self, space: NasBench201Space) -> None:
        super().__init__(space)

    def _plan(self) -> list[tuple[str, int, tuple[int, ...]]]:
        """("cell" | "reduction" | "head", channels in, spatial shape in) for the macro skeleton."""
        net = self.space.net
        c, spatial, plan = net.channels, tuple(net.input_shape[1:]), []
        for stage in range(net.stages):
            if stage:
                plan.append(("reduction", c, spatial))
                c, spatial = 2 * c, _half(spatial)
            plan += [("cell", c, spatial)] * net.cells_per_stage
        return plan + [("head", c, spatial)]

    def _fixed(self, what: str, c: int, spatial: tuple[int, ...]) -> LayerConfig:
        if what == "reduction":
            return LayerConfig.make("reduction", (c, *spatial), cout=2 * c)
        return LayerConfig.make("head", (c, *spatial), classes=self.space.net.num_classes)

    def layers(self, arch: Mapping[str, Any]) -> list[LayerConfig]:
        a = self.space.validate(arch)
        out = [self._stem(self.space.net.channels)]
        for what, c, spatial in self._plan():
            if what != "cell":
                out.append(self._fixed(what, c, spatial))
                continue
            for j in range(1, 4):
                out += [self._op(a[f"edge_{i}_{j}"], c, 1, spatial) for i, jj in NB201_EDGES if jj == j]
                out.append(LayerConfig.make("add", (c, *spatial), n=j))
        return out

    def distinct_layers(self) -> list[LayerConfig]:
        out = [self._stem(self.space.net.channels)]
        for what, c, spatial in self._plan():
            if what != "cell":
                out.append(self._fixed(what, c, spatial))
                continue
            out += [self._op(op, c, 1, spatial) for op in self.space.ops]
            out += [LayerConfig.make("add", (c, *spatial), n=j) for j in range(1, 4)]
        return unique(out)


class DartsLayers(_CellLayers):
    """`LayerAdapter` for `DartsSpace`: stem; per cell 2 preprocessing layers, 2 ops + an add per node, concat; head."""

    name = "darts"

    def __init__(self, space: DartsSpace) -> None:
        super().__init__(space)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "nodes": self.space.nodes, "stem_multiplier": self.space.stem_multiplier}

    def _cells(self) -> list[dict[str, Any]]:
        """Per cell: kind, channels c, the two preprocessing layers, and the spatial shapes in and out."""
        sp, net = self.space, self.space.net
        c = net.channels
        c_pp = c_p = sp.stem_multiplier * c
        s_pp = s_p = tuple(net.input_shape[1:])
        cells, reduction_prev = [], False
        for stage in range(net.stages):
            for kind in (["reduce"] if stage else []) + ["normal"] * net.cells_per_stage:
                reduction = kind == "reduce"
                c = 2 * c if reduction else c
                pre0 = LayerConfig.make("pre", (c_pp, *s_pp), cout=c, reduce=reduction_prev)
                pre1 = LayerConfig.make("pre", (c_p, *s_p), cout=c, reduce=False)
                out_spatial = _half(s_p) if reduction else s_p
                cells.append({"kind": kind, "c": c, "pre": [pre0, pre1], "in": s_p, "out": out_spatial})
                c_pp, c_p, reduction_prev = c_p, sp.nodes * c, reduction
                s_pp, s_p = s_p, out_spatial
        return cells

    def layers(self, arch: Mapping[str, Any]) -> list[LayerConfig]:
        a, sp = self.space.validate(arch), self.space
        out = [self._stem(sp.stem_multiplier * sp.net.channels)]
        cells = self._cells()
        for cell in cells:
            out += cell["pre"]
            c, reduction = cell["c"], cell["kind"] == "reduce"
            for k in range(2, sp.nodes + 2):
                node = a[cell["kind"]][f"node{k}"]
                for i, op in zip((int(t) for t in node["inputs"].split(",")), (node["op_a"], node["op_b"])):
                    strided = reduction and i < 2
                    out.append(self._op(op, c, 2 if strided else 1, cell["in"] if strided else cell["out"]))
                out.append(LayerConfig.make("add", (c, *cell["out"]), n=1))
            out.append(LayerConfig.make("concat", (c, *cell["out"]), n=sp.nodes))
        last = cells[-1]
        out.append(LayerConfig.make("head", (sp.nodes * last["c"], *last["out"]), classes=sp.net.num_classes))
        return out

    def distinct_layers(self) -> list[LayerConfig]:
        sp = self.space
        out = [self._stem(sp.stem_multiplier * sp.net.channels)]
        cells = self._cells()
        for cell in cells:
            out += cell["pre"]
            c = cell["c"]
            out += [self._op(op, c, 1, cell["out"]) for op in sp.ops]
            if cell["kind"] == "reduce":
                out += [self._op(op, c, 2, cell["in"]) for op in sp.ops]
            out += [LayerConfig.make("add", (c, *cell["out"]), n=1),
                    LayerConfig.make("concat", (c, *cell["out"]), n=sp.nodes)]
        last = cells[-1]
        out.append(LayerConfig.make("head", (sp.nodes * last["c"], *last["out"]), classes=sp.net.num_classes))
        return unique(out)
