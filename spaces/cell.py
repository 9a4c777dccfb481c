"""Cell-based DAG spaces: NAS-Bench-201 (an op on every edge of a 4-node cell) and DARTS (2 inputs per node).

Each space builds a standalone network (stem -> stages of stacked cells joined by reduction blocks ->
head) for small 1-D or 2-D inputs, and a weight-sharing supernet with a mixed op per edge whose
architecture parameters (alphas) drive the DARTS family; `supernet.derive()` returns the argmax
architecture and `supernet.subnet(arch)` a standalone network holding the supernet's weights.
This is the implementation of NB201; `nas.nn.builtin_spaces.NB201Net` is a tested equivalent in `nas.nn`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError, InvalidArchitectureError, SpaceDefinitionError
from nas.architecture import Architecture, canonical_json
from nas.spaces.cell_graph import CellGraph
from nas.spaces.model_space import ModelSpace
from nas.spaces.params import Choice
from nas.spaces.space import Space

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DARTS_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
             "dil_conv_3x3", "dil_conv_5x5")
DARTS_INPUTS = ("c_{k-2}", "c_{k-1}")  # a DARTS cell's inputs 0 and 1: the outputs of the cell before last and the last
NB201_EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (from, to), in the order of NB201 strings
# the NB201 cell as a declared DAG: its canonical key is the one a plain Space declared field by field gets
NB201_CELL = CellGraph(nodes=3, edge_ops={(i, j): f"edge_{i}_{j}" for i, j in NB201_EDGES}, output="last")


# ---------------------------------------------------------------------------------------- operations
def _nn(dims: int) -> tuple[type, type, type, type]:
    """Conv, BatchNorm, AvgPool, MaxPool classes for 1-D (sequences) or 2-D (images) inputs."""
    if dims == 1:
        return nn.Conv1d, nn.BatchNorm1d, nn.AvgPool1d, nn.MaxPool1d
    return nn.Conv2d, nn.BatchNorm2d, nn.AvgPool2d, nn.MaxPool2d


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv -> BN (NB201's `nor_conv_kxk`, also used as the cells' 1x1 preprocessing)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dims: int, affine: bool = True,
                 dilation: int = 1) -> None:
        conv, bn, _, _ = _nn(dims)
        super().__init__(nn.ReLU(), conv(c_in, c_out, kernel, stride, dilation * (kernel - 1) // 2,
                                         dilation=dilation, bias=False), bn(c_out, affine=affine))


class DilConv(nn.Sequential):
    """ReLU -> depthwise (dilated) conv -> pointwise conv -> BN (DARTS `dil_conv_kxk`, and half of `sep_conv`)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int, dims: int,
                 affine: bool = True) -> None:
        conv, bn, _, _ = _nn(dims)
        super().__init__(nn.ReLU(), conv(c_in, c_in, kernel, stride, dilation * (kernel - 1) // 2, dilation=dilation,
                                         groups=c_in, bias=False),
                         conv(c_in, c_out, 1, bias=False), bn(c_out, affine=affine))


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convs, the first with the stride (DARTS `sep_conv_kxk`)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dims: int, affine: bool = True) -> None:
        super().__init__(DilConv(c_in, c_in, kernel, stride, 1, dims, affine),
                         DilConv(c_in, c_out, kernel, 1, 1, dims, affine))


class Zero(nn.Module):
    """The `none` op: zeros shaped like the op's output (strided when the edge reduces)."""

    def __init__(self, stride: int, dims: int) -> None:
        super().__init__()
        self.stride, self.dims = stride, dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[(slice(None), slice(None)) + (slice(None, None, self.stride),) * self.dims].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1 stride-2 convs, concatenated (skip_connect on reducing edges)."""

    def __init__(self, c_in: int, c_out: int, dims: int, affine: bool = True) -> None:
        super().__init__()
        conv, bn, _, _ = _nn(dims)
        self.dims = dims
        self.conv_a = conv(c_in, c_out // 2, 1, 2, bias=False)
        self.conv_b = conv(c_in, c_out - c_out // 2, 1, 2, bias=False)
        self.bn = bn(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x, (0, 1) * self.dims)[(slice(None), slice(None)) + (slice(1, None),) * self.dims]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


def _pool(kind: str, stride: int, dims: int) -> nn.Module:
    _, _, avg, mx = _nn(dims)
    return avg(3, stride, 1, count_include_pad=False) if kind == "avg" else mx(3, stride, 1)


OpBuilder = Callable[[int, int, int, bool], nn.Module]  # (channels, stride, dims, affine) -> module
OPS: Mapping[str, OpBuilder] = {
    "none": lambda c, s, d, a: Zero(s, d),
    "skip_connect": lambda c, s, d, a: nn.Identity() if s == 1 else FactorizedReduce(c, c, d, a),
    "nor_conv_1x1": lambda c, s, d, a: ReLUConvBN(c, c, 1, s, d, a),
    "nor_conv_3x3": lambda c, s, d, a: ReLUConvBN(c, c, 3, s, d, a),
    "avg_pool_3x3": lambda c, s, d, a: _pool("avg", s, d),
    "max_pool_3x3": lambda c, s, d, a: _pool("max", s, d),
    "sep_conv_3x3": lambda c, s, d, a: SepConv(c, c, 3, s, d, a),
    "sep_conv_5x5": lambda c, s, d, a: SepConv(c, c, 5, s, d, a),
    "dil_conv_3x3": lambda c, s, d, a: DilConv(c, c, 3, s, 2, d, a),
    "dil_conv_5x5": lambda c, s, d, a: DilConv(c, c, 5, s, 2, d, a),
}


def make_op(name: str, channels: int, stride: int, dims: int, affine: bool = True) -> nn.Module:
    """The module for op `name` on `channels` channels (same channels out; resolution / stride)."""
    if name not in OPS:
        raise SpaceDefinitionError(f"ops: unknown operation {name!r} (known: {', '.join(OPS)})")
    return OPS[name](channels, stride, dims, affine)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave `groups` channel groups (PC-DARTS mixes the bypassed and the processed channels)."""
    b, c = x.shape[:2]
    return x.view(b, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


class MixedOp(nn.Module):
    """All candidate ops of one edge, summed with per-op weights; `active` limits which ops are computed.

    With `partial_channels=K` (PC-DARTS) only the first C/K channels go through the ops; the rest bypass
    them (max-pooled on reducing edges) and the two parts are channel-shuffled back together.
    """

    def __init__(self, ops: Sequence[str], channels: int, stride: int, dims: int, affine: bool = False,
                 partial_channels: int = 1) -> None:
        super().__init__()
        self.k, self.stride, self.dims = partial_channels, stride, dims
        self.ops = nn.ModuleList(make_op(o, channels // partial_channels, stride, dims, affine) for o in ops)
        self.zero = Zero(stride, dims)
        self.bypass = _pool("max", stride, dims) if partial_channels > 1 and stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: Sequence[bool] | None = None) -> torch.Tensor:
        rest = None
        if self.k > 1:
            c = x.shape[1] // self.k
            x, rest = x[:, :c], x[:, c:]
        out = None
        for i, op in enumerate(self.ops):
            if active is None or active[i]:
                y = weights[i] * op(x)
                out = y if out is None else out + y
        if out is None:
            out = self.zero(x)
        if rest is not None:
            out = channel_shuffle(torch.cat([out, self.bypass(rest)], dim=1), self.k)
        return out


# ---------------------------------------------------------------------------------------- macro networks
@dataclass(frozen=True)
class CellNetConfig:
    """Macro skeleton: input (C, L) or (C, H, W), classes, first-stage width, cells per stage, stages."""

    input_shape: tuple[int, ...] = (1, 8, 8)
    num_classes: int = 10
    channels: int = 16
    cells_per_stage: int = 5
    stages: int = 3

    def __post_init__(self) -> None:
        shape = tuple(self.input_shape)
        object.__setattr__(self, "input_shape", shape)
        if len(shape) not in (2, 3) or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ConfigError(f"input_shape: expected (channels, length) or (channels, height, width) of positive "
                              f"ints, got {self.input_shape!r}")
        for name in ("num_classes", "channels", "cells_per_stage", "stages"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name}: expected a positive int, got {v!r}")

    @property
    def dims(self) -> int:
        return len(self.input_shape) - 1


def _example_input(net: CellNetConfig, batch_size: int) -> torch.Tensor:
    """A standard-normal batch shaped like the network's input, the same on every call (a fixed seed on a generator
    of its own: exports are reproducible, and the caller's global random stream is left untouched)."""
    return torch.randn(batch_size, *net.input_shape, generator=torch.Generator().manual_seed(0))


def _net_config(net: CellNetConfig) -> dict[str, Any]:
    """A cell space's macro skeleton as constructor arguments."""
    return {"input_shape": list(net.input_shape), "num_classes": net.num_classes, "channels": net.channels,
            "cells_per_stage": net.cells_per_stage, "stages": net.stages}


def _stem(cfg: CellNetConfig, c_out: int) -> nn.Sequential:
    conv, bn, _, _ = _nn(cfg.dims)
    return nn.Sequential(conv(cfg.input_shape[0], c_out, 3, 1, 1, bias=False), bn(c_out))


class _Head(nn.Module):
    """BN -> ReLU -> global average pool -> linear classifier."""

    def __init__(self, c_in: int, num_classes: int, dims: int) -> None:
        super().__init__()
        self.bn = _nn(dims)[1](c_in)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.bn(x)).flatten(2).mean(-1))


class ResidualReduction(nn.Module):
    """NB201's reduction block between stages: a stride-2 residual block doubling the channels."""

    def __init__(self, c_in: int, c_out: int, dims: int) -> None:
        super().__init__()
        conv, _, avg, _ = _nn(dims)
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, dims)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, dims)
        self.shortcut = nn.Sequential(avg(2, 2, ceil_mode=True), conv(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Cell(nn.Module):
    """A standalone NB201 cell: node j = sum over i < j of op_ij(node i); the output is node 3."""

    def __init__(self, ops: Mapping[tuple[int, int], str], channels: int, dims: int, affine: bool = True) -> None:
        super().__init__()
        self.edges = nn.ModuleDict({f"{i}_{j}": make_op(ops[(i, j)], channels, 1, dims, affine)
                                    for i, j in NB201_EDGES})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            nodes.append(sum(self.edges[f"{i}_{j}"](nodes[i]) for i in range(j)))
        return nodes[-1]


class NB201SearchCell(nn.Module):
    """The NB201 cell with a MixedOp on every edge; weights come from the supernet."""

    def __init__(self, ops: Sequence[str], channels: int, dims: int, affine: bool, partial_channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict({f"{i}_{j}": MixedOp(ops, channels, 1, dims, affine, partial_channels)
                                    for i, j in NB201_EDGES})

    def forward(self, x: torch.Tensor, mix: "MixWeights", scales: torch.Tensor | None) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            total = 0
            for e, (i, jj) in enumerate(NB201_EDGES):
                if jj == j:
                    y = self.edges[f"{i}_{j}"](nodes[i], mix.weights[e], mix.active_row(e))
                    total = total + (y if scales is None else scales[e] * y)
            nodes.append(total)
        return nodes[-1]


class _Preprocess(nn.Module):
    """Bring a DARTS cell's two inputs to `c` channels (and the older one down a resolution after a reduction)."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction_prev: bool, dims: int, affine: bool) -> None:
        super().__init__()
        self.pre0 = (FactorizedReduce(c_pp, c, dims, affine) if reduction_prev
                     else ReLUConvBN(c_pp, c, 1, 1, dims, affine))
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, dims, affine)


class DartsCell(_Preprocess):
    """A standalone DARTS cell: each of the nodes adds two ops of earlier states; output = concat of the nodes."""

    def __init__(self, cell: Mapping[str, Any], c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 dims: int, affine: bool = True) -> None:
        super().__init__(c_pp, c_p, c, reduction_prev, dims, affine)
        self.plan: list[tuple[int, int]] = []
        edges = {}
        for k, (inputs, ops) in enumerate(_darts_nodes(cell), start=2):
            for i, op in zip(inputs, ops):
                edges[f"{i}_{k}"] = make_op(op, c, 2 if reduction and i < 2 else 1, dims, affine)
            self.plan.append(inputs)
        self.edges = nn.ModuleDict(edges)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for k, (i, j) in enumerate(self.plan, start=2):
            states.append(self.edges[f"{i}_{k}"](states[i]) + self.edges[f"{j}_{k}"](states[j]))
        return torch.cat(states[2:], dim=1)


class DartsSearchCell(_Preprocess):
    """The DARTS search cell: a MixedOp on every edge (j -> k for all j < k)."""

    def __init__(self, ops: Sequence[str], nodes: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, dims: int, affine: bool, partial_channels: int) -> None:
        super().__init__(c_pp, c_p, c, reduction_prev, dims, affine)
        self.nodes, self.plan = nodes, _darts_edges(nodes)
        self.edges = nn.ModuleDict({f"{i}_{k}": MixedOp(ops, c, 2 if reduction and i < 2 else 1, dims, affine,
                                                        partial_channels) for i, k in self.plan})

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, mix: "MixWeights",
                scales: torch.Tensor | None) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for k in range(2, self.nodes + 2):
            total = 0
            for e, (i, kk) in enumerate(self.plan):
                if kk == k:
                    y = self.edges[f"{i}_{k}"](states[i], mix.weights[e], mix.active_row(e))
                    total = total + (y if scales is None else scales[e] * y)
            states.append(total)
        return torch.cat(states[2:], dim=1)


def _darts_edges(nodes: int) -> list[tuple[int, int]]:
    """Every (input, node) pair of a DARTS search cell, grouped by node: (0,2),(1,2),(0,3),(1,3),(2,3),..."""
    return [(i, k) for k in range(2, nodes + 2) for i in range(k)]


def _darts_nodes(cell: Mapping[str, Any]) -> list[tuple[tuple[int, int], tuple[str, str]]]:
    """[(inputs, ops)] per node of a validated DARTS cell config."""
    out = []
    for k in range(2, len(cell) + 2):
        node = cell[f"node{k}"]
        a, b = (int(t) for t in node["inputs"].split(","))
        out.append(((a, b), (node["op_a"], node["op_b"])))
    return out


Signature = tuple[tuple[int, str], ...]  # a node's (input number, op) pairs, sorted


def darts_canonical(nodes: Sequence[tuple[tuple[int, ...], tuple[str, ...]]], n_inputs: int = 2
                    ) -> list[list[list[Any]]]:
    """The canonical form of a DARTS-style cell (`_darts_nodes`: per intermediate node, its inputs and their ops;
    nodes numbered from `n_inputs`): over every renumbering of the intermediate nodes in which each node reads
    earlier ones, the lexicographically smallest list of node signatures [[input, op], ...] (inputs sorted). Two
    cells get the same form exactly when they are isomorphic with the inputs fixed.

    Found greedily: step t numbers a node whose inputs are all numbered and whose signature is smallest; only ties
    branch, and of two tied nodes whose exchange maps the cell onto itself only one is tried."""
    plan = {k: tuple(zip(ins, ops)) for k, (ins, ops) in enumerate(nodes, start=n_inputs)}
    edges = {k: sorted(pairs) for k, pairs in plan.items()}

    def swapped_is_same(x: int, y: int) -> bool:  # exchanging x and y maps the cell onto itself
        swap = {x: y, y: x}
        return all(edges[swap.get(k, k)] == sorted((swap.get(i, i), op) for i, op in pairs)
                   for k, pairs in plan.items())

    best: list[Signature] | None = None

    def search(number: dict[int, int], prefix: list[Signature]) -> None:
        nonlocal best
        if best is not None and prefix > best[:len(prefix)]:
            return
        left = [k for k in plan if k not in number]
        if not left:
            best = list(prefix) if best is None or prefix < best else best
            return
        ready = {k: tuple(sorted((number[i], op) for i, op in plan[k]))
                 for k in left if all(i in number for i, _ in plan[k])}
        low = min(ready.values())
        tried: list[int] = []
        for k in (k for k, sig in ready.items() if sig == low):
            if any(swapped_is_same(k, t) for t in tried):
                continue
            tried.append(k)
            search({**number, k: len(number)}, prefix + [low])

    search({i: i for i in range(n_inputs)}, [])
    assert best is not None
    return [[list(p) for p in sig] for sig in best]


class CellNetwork(nn.Module):
    """stem -> `layers` (cells and reduction blocks) -> head; the standalone network of a cell space."""

    def __init__(self, stem: nn.Module, layers: Sequence[nn.Module], head: nn.Module, two_inputs: bool) -> None:
        super().__init__()
        self.stem, self.layers, self.head, self.two_inputs = stem, nn.ModuleList(layers), head, two_inputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for layer in self.layers:
            if self.two_inputs:
                s0, s1 = s1, layer(s0, s1)
            else:
                s1 = layer(s1)
        return self.head(s1)


# ---------------------------------------------------------------------------------------- supernet
@dataclass(frozen=True)
class MixWeights:
    """Per-edge op weights [edges, ops] for one forward, and optionally which ops to compute (bool, same shape)."""

    weights: torch.Tensor
    active: torch.Tensor | None = None

    def active_row(self, edge: int) -> list[bool] | None:
        return None if self.active is None else self.active[edge].tolist()


Mixing = Callable[[torch.Tensor], MixWeights]


def softmax_mixing(alpha: torch.Tensor) -> MixWeights:
    """DARTS: every op of an edge, weighted by softmax(alpha)."""
    return MixWeights(F.softmax(alpha, dim=-1))


@dataclass
class BinaryGates:
    """ProxylessNAS/GDAS-style binarised paths: one sampled op per edge is computed.

    The gate is one-hot in value with a straight-through gradient to softmax(alpha), so alphas still
    learn while only the sampled path runs (and holds activations in memory).
    """

    generator: torch.Generator | None = None

    def __call__(self, alpha: torch.Tensor) -> MixWeights:
        probs = F.softmax(alpha, dim=-1)
        index = torch.multinomial(probs.detach(), 1, generator=self.generator)
        hard = torch.zeros_like(probs).scatter_(-1, index, 1.0)
        return MixWeights(hard - probs.detach() + probs, hard.bool())


class CellSupernet(nn.Module):
    """Weight-sharing supernet of a cell space: mixed ops on every edge, driven by architecture parameters.

    Hooks for the DARTS family (see docs/cell.md): `mixing` turns alphas into `MixWeights` (softmax for
    DARTS; `BinaryGates` for ProxylessNAS-style sampled paths); `partial_channels` and
    `edge_normalisation` are PC-DARTS's two additions.
    """

    def __init__(self, space: "NasBench201Space | DartsSpace", stem: nn.Module, layers: Sequence[nn.Module],
                 head: nn.Module, ops: Sequence[str], edges: Sequence[tuple[int, int]], kinds: Sequence[str],
                 mixing: Mixing, affine: bool, partial_channels: int, edge_normalisation: bool) -> None:
        super().__init__()
        self.space, self.ops, self.edges = space, tuple(ops), tuple(edges)
        self.stem, self.layers, self.head = stem, nn.ModuleList(layers), head
        self.mixing, self.affine, self.partial_channels = mixing, affine, partial_channels
        self.kinds = tuple(kinds)  # per layer: a cell kind ("cell", "normal", "reduce") or "" for a fixed block
        names = sorted({k for k in kinds if k})
        self.alphas = nn.ParameterDict({k: nn.Parameter(1e-3 * torch.randn(len(edges), len(ops))) for k in names})
        self.betas = nn.ParameterDict({k: nn.Parameter(torch.zeros(len(edges))) for k in names}) \
            if edge_normalisation else None

    def supernet_kwargs(self) -> dict[str, Any]:
        """The arguments of `space.supernet(...)` that shape its weights, so export rebuilds this supernet from JSON
        (`nas.modelspec.record_model`); `mixing` is left out: it holds no weights, and subnets do not use it."""
        return {"affine": self.affine, "partial_channels": self.partial_channels,
                "edge_normalisation": self.betas is not None}

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters (alphas, plus betas with edge normalisation): the DARTS outer problem."""
        return list(self.alphas.values()) + (list(self.betas.values()) if self.betas is not None else [])

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every other parameter: the network weights of the DARTS inner problem."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def edge_scales(self, kind: str) -> torch.Tensor | None:
        """PC-DARTS edge normalisation: softmax of betas over each node's incoming edges (None when off)."""
        if self.betas is None:
            return None
        beta, out = self.betas[kind], torch.empty_like(self.betas[kind])
        for node in sorted({k for _, k in self.edges}):
            idx = [e for e, (_, k) in enumerate(self.edges) if k == node]
            out[idx] = F.softmax(beta[idx], dim=0)
        return out

    def forward(self, x: torch.Tensor, arch: Mapping[str, Any] | None = None) -> torch.Tensor:
        """The mixed network; with `arch`, only that architecture's ops (one-hot weights, no edge normalisation):
        the outputs of `subnet(arch)`, as other supernets' `supernet(x, arch)` (export checks subnets with it)."""
        if arch is None:
            mixes = {k: self.mixing(a) for k, a in self.alphas.items()}
            scales = {k: self.edge_scales(k) for k in self.alphas}
        else:
            mixes, scales = self._one_hot(arch), {k: None for k in self.alphas}
        s0 = s1 = self.stem(x)
        for layer, kind in zip(self.layers, self.kinds):
            if isinstance(layer, DartsSearchCell):
                s0, s1 = s1, layer(s0, s1, mixes[kind], scales[kind])
            elif kind:
                s1 = layer(s1, mixes[kind], scales[kind])
            else:
                s1 = layer(s1)
        return self.head(s1)

    def _one_hot(self, arch: Mapping[str, Any]) -> dict[str, MixWeights]:
        """Per cell kind, weight 1 on `arch`'s op of each edge it uses (an unused DARTS edge computes nothing)."""
        ops = self.space.edge_ops(self.space.validate(arch))
        out = {}
        for kind, alpha in self.alphas.items():
            w = torch.zeros_like(alpha.detach())
            for e, (i, j) in enumerate(self.edges):
                if f"{i}_{j}" in ops[kind]:
                    w[e, self.ops.index(ops[kind][f"{i}_{j}"])] = 1.0
            out[kind] = MixWeights(w, w.bool())
        return out

    def op_weights(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) per cell kind, times the normalised betas when edge normalisation is on (for derive)."""
        out = {}
        for kind, alpha in self.alphas.items():
            w = F.softmax(alpha.detach(), dim=-1)
            scales = self.edge_scales(kind)
            out[kind] = w if scales is None else w * scales.detach()[:, None]
        return out

    def derive(self) -> Architecture:
        """The argmax architecture of the current alphas, validated by the space."""
        return self.space.derive_from_weights(self.op_weights())

    def subnet(self, arch: Mapping[str, Any]) -> CellNetwork:
        """A standalone network for `arch` holding this supernet's weights (same outputs as one-hot alphas)."""
        if self.partial_channels > 1:
            raise ConfigError("partial_channels: a PC-DARTS supernet's ops see 1/K of the channels; "
                              "train space.build(arch) from scratch instead of extracting a subnet")
        arch = self.space.validate(arch)
        net = self.space.build(arch)
        ops = self.space.edge_ops(arch)
        pairs = [(net.stem, self.stem), (net.head, self.head)]
        for mine, theirs, kind in zip(net.layers, self.layers, self.kinds):
            if not kind:
                pairs.append((mine, theirs))
                continue
            if isinstance(theirs, _Preprocess):
                pairs += [(mine.pre0, theirs.pre0), (mine.pre1, theirs.pre1)]
            for key, module in mine.edges.items():
                pairs.append((module, theirs.edges[key].ops[self.ops.index(ops[kind][key])]))
        for mine, theirs in pairs:
            _load_into(mine, theirs.state_dict())
        return net


def _load_into(module: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load `state`; the only keys it may lack are affine BN weights/biases (left at identity 1/0)."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    bn = {n for n, m in module.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    bad = [k for k in missing if k.rsplit(".", 1)[0] not in bn or not k.endswith(("weight", "bias"))]
    if bad or unexpected:
        raise RuntimeError(f"subnet weights do not fit: missing {bad}, unexpected {list(unexpected)}")


# ---------------------------------------------------------------------------------------- spaces
class NasBench201Space(ModelSpace):
    """NAS-Bench-201: per edge of a 4-node cell, an op from none, skip_connect, nor_conv_1x1/3x3, avg_pool_3x3.

    Fields are `edge_i_j` (op from node i to node j); `to_string`/`from_string` speak NB201's
    `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` format, so tabular results can be looked up by architecture.
    """

    def __init__(self, input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10, channels: int = 16,
                 cells_per_stage: int = 5, stages: int = 3, ops: Sequence[str] = NB201_OPS) -> None:
        self.net = CellNetConfig(tuple(input_shape), num_classes, channels, cells_per_stage, stages)
        self.ops = _check_ops(ops)
        super().__init__(**{f"edge_{i}_{j}": Choice(list(self.ops), ordered=False) for i, j in NB201_EDGES})

    def to_config(self) -> dict[str, Any]:
        """The constructor's arguments as plain data (`nas.modelspec` rebuilds the space from them for export)."""
        return {**_net_config(self.net), "ops": list(self.ops)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "NasBench201Space":
        return cls(**config)

    # -- NB201 strings
    def to_string(self, arch: Mapping[str, Any]) -> str:
        """NB201's architecture string, e.g. `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|`."""
        a = self.validate(arch)
        return "+".join("|" + "|".join(f"{a[f'edge_{i}_{j}']}~{i}" for i in range(j)) + "|" for j in range(1, 4))

    def from_string(self, text: str) -> Architecture:
        """Parse an NB201 architecture string (InvalidArchitectureError names the bad node or token)."""
        parts = text.strip().split("+") if isinstance(text, str) else []
        if len(parts) != 3:
            raise InvalidArchitectureError("arch_str", f"expected 3 '+'-separated nodes, got {text!r}")
        config: dict[str, Any] = {}
        for j, part in enumerate(parts, start=1):
            tokens = [t for t in part.strip().strip("|").split("|")]
            seen = []
            for tok in tokens:
                m = re.fullmatch(r"(\w+)~(\d+)", tok.strip())
                if m is None:
                    raise InvalidArchitectureError(f"node {j}", f"token {tok!r} is not 'op~input'")
                i = int(m.group(2))
                if i >= j or i in seen:
                    raise InvalidArchitectureError(f"node {j}", f"input {i} is repeated or not an earlier node")
                seen.append(i)
                config[f"edge_{i}_{j}"] = m.group(1)
            if len(seen) != j:
                raise InvalidArchitectureError(f"node {j}", f"needs one op from each of nodes 0..{j - 1}, got {part!r}")
        return self.validate(config)

    # -- models
    def edge_ops(self, arch: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        """{cell kind: {edge key 'i_j': op}} (one kind, 'cell', for NB201)."""
        return {"cell": {f"{i}_{j}": arch[f"edge_{i}_{j}"] for i, j in NB201_EDGES}}

    def _layers(self, make_cell: Callable[[int], nn.Module]) -> tuple[list[nn.Module], list[str], int]:
        c, layers, kinds = self.net.channels, [], []
        for stage in range(self.net.stages):
            if stage:
                layers.append(ResidualReduction(c, 2 * c, self.net.dims))
                kinds.append("")
                c *= 2
            for _ in range(self.net.cells_per_stage):
                layers.append(make_cell(c))
                kinds.append("cell")
        return layers, kinds, c

    def build(self, arch: Mapping[str, Any]) -> CellNetwork:
        a = self.validate(arch)
        ops = {(i, j): a[f"edge_{i}_{j}"] for i, j in NB201_EDGES}
        layers, _, c = self._layers(lambda ch: NB201Cell(ops, ch, self.net.dims))
        head = _Head(c, self.net.num_classes, self.net.dims)
        return CellNetwork(_stem(self.net, self.net.channels), layers, head, False)

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> torch.Tensor:
        return _example_input(self.net, batch_size)

    def supernet(self, mixing: Mixing = softmax_mixing, partial_channels: int = 1, edge_normalisation: bool = False,
                 affine: bool = False) -> CellSupernet:
        """A supernet with a MixedOp per edge; alphas [6 edges, ops] under the kind 'cell'."""
        _check_partial(partial_channels, self.net.channels)
        layers, kinds, c = self._layers(
            lambda ch: NB201SearchCell(self.ops, ch, self.net.dims, affine, partial_channels))
        head = _Head(c, self.net.num_classes, self.net.dims)
        return CellSupernet(self, _stem(self.net, self.net.channels), layers, head, self.ops, NB201_EDGES, kinds,
                            mixing, affine, partial_channels, edge_normalisation)

    def derive_from_weights(self, weights: Mapping[str, torch.Tensor]) -> Architecture:
        """Argmax op per edge (NB201's rule: `none` included)."""
        best = weights["cell"].argmax(dim=-1).tolist()
        return self.validate({f"edge_{i}_{j}": self.ops[b] for (i, j), b in zip(NB201_EDGES, best)})

    # -- graph form
    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        """The cell DAG: nodes 0 (input), 1, 2, 3 (output); an edge i -> j with attribute `op` unless it is `none`."""
        a = self.validate(arch)
        g = nx.DiGraph()
        for n in range(4):
            g.add_node(n, label="input" if n == 0 else "output" if n == 3 else "node")
        for i, j in NB201_EDGES:
            if a[f"edge_{i}_{j}"] != "none":
                g.add_edge(i, j, op=a[f"edge_{i}_{j}"], label=a[f"edge_{i}_{j}"])
        return g

    def canonical_key(self, arch: Mapping[str, Any]) -> str:
        """Equal for cells that are one network: isomorphic (nodes 1 and 2 swapped where no edge joins them) or
        differing only in nodes that cannot reach the output. The declared cell's key (`NB201_CELL`, the same as
        `Space(edge_i_j=...).with_graph(CellGraph(nodes=3, edge_ops=..., output="last"))`); over all 15,625
        cells each key is exactly one such class (11,155 keys). It does not merge a skip edge into its
        endpoints or a node with no input into zero (NB201's own `to_unique_str`), so some equivalent cells
        still get two keys: dedup costs the odd evaluation but never merges two different networks."""
        return NB201_CELL.canonical_key(self.to_graph(arch))

    def from_graph(self, graph: nx.DiGraph) -> Architecture:
        """Inverse of `to_graph` (a missing edge is `none`; explicit `none` edges are accepted too)."""
        extra = [(u, v) for u, v in graph.edges if (u, v) not in NB201_EDGES]
        if extra:
            raise InvalidArchitectureError(f"edge {extra[0][0]}->{extra[0][1]}", "is not an edge of the NB201 cell")
        return self.validate({f"edge_{i}_{j}": graph.edges[i, j].get("op") if graph.has_edge(i, j) else "none"
                              for i, j in NB201_EDGES})


class DartsSpace(ModelSpace):
    """DARTS: a normal and a reduction cell; each intermediate node k takes two distinct earlier states with an op each.

    `normal.node3.inputs` is a choice of input pairs such as "0,2" (0 and 1 are the outputs of the two
    previous cells); `op_a` applies to the first input, `op_b` to the second. The cell outputs the
    concatenation of its nodes. `to_genotype`/`from_genotype` speak DARTS's Genotype format.
    """

    KINDS = ("normal", "reduce")

    def __init__(self, input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10, channels: int = 16,
                 cells_per_stage: int = 2, stages: int = 3, nodes: int = 4, ops: Sequence[str] = DARTS_OPS,
                 stem_multiplier: int = 3) -> None:
        self.net = CellNetConfig(tuple(input_shape), num_classes, channels, cells_per_stage, stages)
        if stages == 1:
            raise ConfigError("stages: a DartsSpace needs stages >= 2, got 1: its reduction cells sit between stages, "
                              "so with one stage the space's 'reduce' cell would not change the network (and a "
                              "one-shot search has no 'reduce' alphas to derive it from); use NasBench201Space for "
                              "a single stage")
        self.ops = _check_ops(ops)
        if "none" in self.ops:
            raise SpaceDefinitionError("ops: 'none' is not a DARTS cell op (the supernet adds it to every edge)")
        for name, v in (("nodes", nodes), ("stem_multiplier", stem_multiplier)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpaceDefinitionError(f"{name}: expected a positive int, got {v!r}")
        self.nodes, self.stem_multiplier = nodes, stem_multiplier
        op = Choice(list(self.ops), ordered=False)

        def cell() -> Space:
            pairs = {k: [f"{i},{j}" for j in range(k) for i in range(j)] for k in range(2, nodes + 2)}
            return Space(**{f"node{k}": Space(inputs=Choice(pairs[k], ordered=False), op_a=op, op_b=op)
                            for k in range(2, nodes + 2)})

        super().__init__(normal=cell(), reduce=cell())

    def to_config(self) -> dict[str, Any]:
        """The constructor's arguments as plain data (`nas.modelspec` rebuilds the space from them for export)."""
        return {**_net_config(self.net), "nodes": self.nodes, "ops": list(self.ops),
                "stem_multiplier": self.stem_multiplier}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DartsSpace":
        return cls(**config)

    # -- DARTS genotypes
    def to_genotype(self, arch: Mapping[str, Any]) -> dict[str, list]:
        """{"normal": [(op, input), ...], "normal_concat": [2..], "reduce": ..., "reduce_concat": ...}."""
        a, out = self.validate(arch), {}
        for kind in self.KINDS:
            out[kind] = [(op, i) for inputs, ops in _darts_nodes(a[kind]) for i, op in zip(inputs, ops)]
            out[f"{kind}_concat"] = list(range(2, self.nodes + 2))
        return out

    def from_genotype(self, genotype: Any) -> Architecture:
        """From a DARTS `Genotype` (or a mapping with `normal` and `reduce` lists of (op, input) pairs)."""
        config: dict[str, Any] = {}
        for kind in self.KINDS:
            pairs = genotype.get(kind) if isinstance(genotype, Mapping) else getattr(genotype, kind, None)
            if pairs is None:
                raise InvalidArchitectureError(kind, "missing from the genotype (it needs 'normal' and 'reduce')")
            if not isinstance(pairs, Sequence) or len(pairs) != 2 * self.nodes:
                got = len(pairs) if isinstance(pairs, Sequence) else repr(pairs)
                raise InvalidArchitectureError(kind, f"expected {2 * self.nodes} (op, input) pairs, got {got}")
            for i, pair in enumerate(pairs):
                if (not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2
                        or not isinstance(pair[0], str) or isinstance(pair[1], bool) or not isinstance(pair[1], int)):
                    raise InvalidArchitectureError(f"{kind}[{i}]", f"expected an (op name, input index) pair, got "
                                                                   f"{pair!r}")
            cell = {}
            for n in range(self.nodes):
                (op1, i1), (op2, i2) = sorted(pairs[2 * n: 2 * n + 2], key=lambda p: p[1])
                cell[f"node{n + 2}"] = {"inputs": f"{i1},{i2}", "op_a": op1, "op_b": op2}
            config[kind] = cell
        return self.validate(config)

    # -- models
    def edge_ops(self, arch: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        """{"normal"/"reduce": {edge key 'i_k': op}} for the 2 x nodes chosen edges of each cell."""
        return {kind: {f"{i}_{k}": op for k, (inputs, ops) in enumerate(_darts_nodes(arch[kind]), start=2)
                       for i, op in zip(inputs, ops)} for kind in self.KINDS}

    def _layers(self, make_cell: Callable[[str, int, int, int, bool, bool], nn.Module]
                ) -> tuple[list[nn.Module], list[str], int]:
        c = self.net.channels
        c_pp = c_p = self.stem_multiplier * c
        layers, kinds, reduction_prev = [], [], False
        for stage in range(self.net.stages):
            plan = (["reduce"] if stage else []) + ["normal"] * self.net.cells_per_stage
            for kind in plan:
                reduction = kind == "reduce"
                c = 2 * c if reduction else c
                layers.append(make_cell(kind, c_pp, c_p, c, reduction, reduction_prev))
                kinds.append(kind)
                c_pp, c_p, reduction_prev = c_p, self.nodes * c, reduction
        return layers, kinds, c_p

    def build(self, arch: Mapping[str, Any]) -> CellNetwork:
        a = self.validate(arch)
        layers, _, c = self._layers(lambda kind, *shape: DartsCell(a[kind], *shape, dims=self.net.dims))
        return CellNetwork(_stem(self.net, self.stem_multiplier * self.net.channels), layers,
                           _Head(c, self.net.num_classes, self.net.dims), True)

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> torch.Tensor:
        return _example_input(self.net, batch_size)

    def supernet(self, mixing: Mixing = softmax_mixing, partial_channels: int = 1, edge_normalisation: bool = False,
                 affine: bool = False) -> CellSupernet:
        """A supernet with a MixedOp (the space's ops plus `none`) on each of the cell's edges, per kind."""
        _check_partial(partial_channels, self.net.channels)
        ops = ("none",) + self.ops
        layers, kinds, c = self._layers(lambda kind, *shape: DartsSearchCell(
            ops, self.nodes, *shape, dims=self.net.dims, affine=affine, partial_channels=partial_channels))
        return CellSupernet(self, _stem(self.net, self.stem_multiplier * self.net.channels), layers,
                            _Head(c, self.net.num_classes, self.net.dims), ops, _darts_edges(self.nodes), kinds,
                            mixing, affine, partial_channels, edge_normalisation)

    def derive_from_weights(self, weights: Mapping[str, torch.Tensor]) -> Architecture:
        """DARTS's rule: per node, the two incoming edges with the strongest non-`none` op, each with that op."""
        edges = _darts_edges(self.nodes)
        config: dict[str, Any] = {}
        for kind in self.KINDS:
            w = weights[kind][:, 1:]  # column 0 is `none`
            cell = {}
            for k in range(2, self.nodes + 2):
                rows = [e for e, (_, kk) in enumerate(edges) if kk == k]
                top = sorted(rows, key=lambda e: (-float(w[e].max()), e))[:2]
                (i1, e1), (i2, e2) = sorted((edges[e][0], e) for e in top)
                cell[f"node{k}"] = {"inputs": f"{i1},{i2}", "op_a": self.ops[int(w[e1].argmax())],
                                    "op_b": self.ops[int(w[e2].argmax())]}
            config[kind] = cell
        return self.validate(config)

    # -- graph form
    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        """Both cells' DAGs: nodes (kind, i) for inputs 0, 1 and intermediate nodes, (kind, 'out'); ops on edges.
        Node labels carry the cell kind, so exchanging the cells changes WL hashes and paths, and tell the inputs
        apart ("normal:c_{k-2}", "normal:c_{k-1}": the cell before last and the last), as the network does."""
        a = self.validate(arch)
        g = nx.DiGraph()
        for kind in self.KINDS:
            for n in range(self.nodes + 2):
                g.add_node((kind, n), cell=kind, label=f"{kind}:{DARTS_INPUTS[n]}" if n < 2 else f"{kind}:node")
            g.add_node((kind, "out"), cell=kind, label=f"{kind}:output")
            for k, (inputs, ops) in enumerate(_darts_nodes(a[kind]), start=2):
                for i, op in zip(inputs, ops):
                    g.add_edge((kind, i), (kind, k), op=op, label=op)
                g.add_edge((kind, k), (kind, "out"), op="concat", label="concat")
        return g

    def canonical_key(self, arch: Mapping[str, Any]) -> str:
        """Equal for architectures whose normal cells are isomorphic and whose reduction cells are too: the
        intermediate nodes renumbered (the inputs 0 and 1 stay), which only permutes the concatenated output's
        channels, and the next layer's 1x1 convolution (or the head) absorbs that. Exact, not a hash of a
        hash: each cell's smallest renumbering (`darts_canonical`)."""
        a = self.validate(arch)
        form = {kind: darts_canonical(_darts_nodes(a[kind])) for kind in self.KINDS}
        return hashlib.sha256(canonical_json(form).encode()).hexdigest()[:16]

    def from_graph(self, graph: nx.DiGraph) -> Architecture:
        config: dict[str, Any] = {}
        for kind in self.KINDS:
            cell = {}
            for k in range(2, self.nodes + 2):
                if (kind, k) not in graph:
                    raise InvalidArchitectureError(f"{kind}.node{k}", "missing from the graph")
                preds = sorted((u[1], graph.edges[u, (kind, k)]["op"]) for u in graph.predecessors((kind, k)))
                if len(preds) != 2:
                    raise InvalidArchitectureError(f"{kind}.node{k}", f"needs exactly two inputs, has {len(preds)}")
                cell[f"node{k}"] = {"inputs": f"{preds[0][0]},{preds[1][0]}", "op_a": preds[0][1], "op_b": preds[1][1]}
            config[kind] = cell
        return self.validate(config)


def _check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    ops = tuple(ops)
    unknown = [o for o in ops if o not in OPS]
    if unknown or not ops:
        raise SpaceDefinitionError(f"ops: unknown operation {unknown[0]!r} (known: {', '.join(OPS)})" if unknown
                                   else "ops: give at least one operation")
    return ops


def _check_partial(k: int, channels: int) -> None:
    if not isinstance(k, int) or k < 1 or channels % k:
        raise ConfigError(f"partial_channels: expected a positive int dividing channels={channels}, got {k!r}")
