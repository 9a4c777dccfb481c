"""The NAS-Bench-201 and Once-for-All spaces written in the `nas.nn` language, as tested equivalents.

The source of truth stays `nas.spaces.cell.NasBench201Space` and `nas.spaces.ofa.OFASpace`: the supernet
features the toolkit's drivers use (DARTS alphas, partial channels, progressive shrinking, channel sorting,
the LUT layer adapters) live there, and `nas.spaces` sits below `nas.nn` in the layers, so the built-in
classes cannot be built on this language. These classes derive a space of the same size and, given the
same weights (`nb201_weights`, `ofa_weights`), compute the same outputs (tests/test_nn_builtins.py); they
reuse the built-ins' operations, so only the choice points are written anew. See docs/model_space.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nas import nn as nnn
from nas.nn.model_space import ModuleSpace
from nas.nn.mutable import Context, Freeze, Mutable
from nas.nn.values import Value
from nas.spaces.cell import NB201_CELL, NB201_EDGES, NB201_OPS, CellNetConfig, NB201Cell, ResidualReduction, _Head, \
    _check_ops, _stem as cell_stem, make_op
from nas.spaces.ofa import MBConv1d, OFAConfig, _prepare, _stem as ofa_stem

__all__ = ["NB201Net", "NB201NetSpace", "OFANet", "Resample", "nb201_weights", "ofa_arch_from_nn", "ofa_arch_to_nn",
           "ofa_subnet_weights", "ofa_weights"]


# ---------------------------------------------------------------------------------------- NAS-Bench-201
class NB201ChoiceCell(NB201Cell):
    """The NB201 cell with a `LayerChoice` on each edge, labelled `edge_i_j` (one decision shared by every cell,
    as in `NasBench201Space`); the forward is the standalone cell's."""

    def __init__(self, ops: Sequence[str], channels: int, dims: int, affine: bool) -> None:
        nn.Module.__init__(self)
        self.edges = nn.ModuleDict({
            f"{i}_{j}": nnn.LayerChoice({o: make_op(o, channels, 1, dims, affine) for o in ops}, label=f"edge_{i}_{j}")
            for i, j in NB201_EDGES})


class NB201Net(nnn.ModelSpace):
    """`NasBench201Space(...)` in `nas.nn`: same arguments (plus `affine`, the ops' batch norms: today's
    `build` uses True, its supernet False), same field names, same module paths as its `CellNetwork`."""

    def __init__(self, input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10, channels: int = 16,
                 cells_per_stage: int = 5, stages: int = 3, ops: Sequence[str] = NB201_OPS,
                 affine: bool = True) -> None:
        super().__init__()
        cfg = CellNetConfig(tuple(input_shape), num_classes, channels, cells_per_stage, stages)
        ops, c, layers = _check_ops(ops), channels, []
        for stage in range(stages):
            if stage:
                layers.append(ResidualReduction(c, 2 * c, cfg.dims))
                c *= 2
            layers += [NB201ChoiceCell(ops, c, cfg.dims, affine) for _ in range(cells_per_stage)]
        self.stem, self.layers, self.head = cell_stem(cfg, channels), nn.ModuleList(layers), _Head(c, num_classes,
                                                                                                  cfg.dims)

    @classmethod
    def space(cls, *args: Any, **kwargs: Any) -> "NB201NetSpace":
        """The derived space with NB201's cell declared (`NB201NetSpace`)."""
        return NB201NetSpace(cls, args, kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


class NB201NetSpace(ModuleSpace):
    """`NB201Net.space()`: the derived space with the cell declared as `NasBench201Space`'s (`NB201_CELL`), so
    `canonical_key` is its key (isomorphic twins are evaluated once) and `to_graph` the cell DAG."""

    def __init__(self, model: type[nnn.ModelSpace] = NB201Net, args: Sequence[Any] = (),
                 kwargs: Mapping[str, Any] | None = None, probe: bool = True) -> None:
        super().__init__(model, args, kwargs, probe)
        self._declare_graph(NB201_CELL)


_MIXED_OP = re.compile(r"^(layers\.\d+\.edges\.\d+_\d+)\.ops\.(\d+)\.(.+)$")


def nb201_weights(cell_supernet_state: Mapping[str, torch.Tensor], ops: Sequence[str] = NB201_OPS
                  ) -> dict[str, torch.Tensor]:
    """A `CellSupernet`'s state_dict (of `NasBench201Space(...).supernet()`) as `NB201Net.supernet()`'s: op `n`
    of an edge's MixedOp becomes that edge's LayerChoice candidate `ops[n]`; alphas and betas have no place.
    (A built network's state_dict needs no mapping: `NB201Net.build` has `CellNetwork`'s module paths.)"""
    out = {}
    for key, value in cell_supernet_state.items():
        if key.startswith(("alphas.", "betas.")):
            continue
        m = _MIXED_OP.match(key)
        out["net." + (f"{m[1]}.{ops[int(m[2])]}.{m[3]}" if m else key)] = value
    return out


# ---------------------------------------------------------------------------------------- Once-for-All
class Resample(Mutable):
    """The OFA input step with a choice of `length`: (N, L) or (N, C, L) resampled to (N, C, length). The one
    choice read by forward code rather than a layer argument, so it is a small `Mutable` of its own."""

    def __init__(self, length: Value, in_channels: int) -> None:
        super().__init__()
        self.length, self.in_channels = length, in_channels

    def value_args(self) -> dict[str, Any]:
        return {"length": self.length}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _prepare(x, self.active()["length"], self.in_channels)

    def export(self, ctx: Context, freeze: Freeze, fresh: bool) -> nn.Module:
        return FixedResample(int(ctx.resolve(self.length)), self.in_channels)


class FixedResample(nn.Module):
    """`Resample` frozen at one length."""

    def __init__(self, length: int, in_channels: int) -> None:
        super().__init__()
        self.length, self.in_channels = length, in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _prepare(x, self.length, self.in_channels)


class OFANet(nnn.ModelSpace):
    """`OFASpace(config)` in `nas.nn`. The stages are unrolled (fields `stage{s}_depth`, `stage{s}_width`,
    `stage{s}_blocks`) because a stage's first block reads the previous stage's width, and a choice made in
    one block of a `Repeat` cannot be read by the next; `ofa_arch_to_nn` / `ofa_arch_from_nn` convert."""

    def __init__(self, config: OFAConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        cfg = config if isinstance(config, OFAConfig) else OFAConfig(**(config or {}))
        self.resample = Resample(nnn.Choice("resolution", list(cfg.resolutions)), cfg.in_channels)
        self.stem = ofa_stem(cfg)
        stages, cin = [], cfg.stem_channels
        for s in range(len(cfg.stage_channels)):
            width = nnn.Choice(f"stage{s}_width", list(cfg.widths))
            cout = nnn.Expr(functools.partial(cfg.stage_width, s), (width,), f"stage_width({s}, {width.label})")

            def block(i: int, s: int = s, cin: Any = cin, cout: Any = cout) -> nn.Module:
                return MBConv1d(cin if i == 0 else cout, cout, nnn.Choice("kernel", list(cfg.kernels)),
                                nnn.Choice("expand", list(cfg.expands)), cfg.stage_strides[s] if i == 0 else 1,
                                residual=i > 0, conv=nnn.Conv1d, bn=nnn.BatchNorm1d)

            stages.append(nnn.Repeat(block, depth=nnn.Choice(f"stage{s}_depth", list(cfg.depths)),
                                     label=f"stage{s}_blocks"))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nnn.Conv1d(cin, cfg.head_channels, 1, bias=False),
                                  nn.BatchNorm1d(cfg.head_channels), nn.Hardswish())
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.head_channels, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.resample(x))
        for stage in self.stages:
            x = stage(x)
        return self.classifier(self.dropout(self.head(x).mean(dim=-1)))


def ofa_arch_to_nn(arch: Mapping[str, Any]) -> dict[str, Any]:
    """An `OFASpace` architecture as an `OFANet.space()` one (`stages[s].depth` -> `stage{s}_depth`, ...)."""
    out: dict[str, Any] = {"resolution": arch["resolution"]}
    for s, stage in enumerate(arch["stages"]):
        out.update({f"stage{s}_depth": stage["depth"], f"stage{s}_width": stage["width"],
                    f"stage{s}_blocks": [dict(b) for b in stage["blocks"]]})
    return out


def ofa_arch_from_nn(arch: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `ofa_arch_to_nn`."""
    n = sum(1 for k in arch if k.endswith("_depth"))
    return {"resolution": arch["resolution"],
            "stages": [{"depth": arch[f"stage{s}_depth"], "width": arch[f"stage{s}_width"],
                        "blocks": [dict(b) for b in arch[f"stage{s}_blocks"]]} for s in range(n)]}


_OFA_BLOCK = {"expand_conv.": "expand.0.dynamic.", "expand_bn.": "expand.1.dynamic.",
              "dw_conv.": "depthwise.0.dynamic.", "dw_bn.": "depthwise.1.dynamic.",
              "project_conv.": "project.0.dynamic.", "project_bn.": "project.1.dynamic."}
_OFA_HEAD = {"head_conv.": "head.0.dynamic.", "head_bn.": "head.1."}


def ofa_weights(ofa_supernet_state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
                ) -> dict[str, torch.Tensor]:
    """An `OFASupernet`'s state_dict as the `OFANet` supernet's whose state_dict is `target`: renamed, and cut
    to the leading slice where `OFANet` allocates less (a widest multiplier below 1; slicing never reads the
    rest). A subnet's state_dict maps with `ofa_subnet_weights`."""
    out = {}
    for key, value in ofa_supernet_state.items():
        m = re.match(r"^stages\.(\d+)\.(\d+)\.(.+)$", key)
        new_key = f"net.stages.{m[1]}.{m[2]}.{_rename(m[3], _OFA_BLOCK)}" if m else f"net.{_rename(key, _OFA_HEAD)}"
        if new_key not in target:
            raise KeyError(f"{key}: no place for it in the OFANet supernet (looked for {new_key})")
        out[new_key] = value[tuple(slice(0, n) for n in target[new_key].shape)] if value.dim() else value
    return out


def _rename(key: str, prefixes: Mapping[str, str]) -> str:
    return next((new + key[len(old):] for old, new in prefixes.items() if key.startswith(old)), key)


def ofa_subnet_weights(ofa_subnet_state: Mapping[str, torch.Tensor], arch: Mapping[str, Any]
                       ) -> dict[str, torch.Tensor]:
    """An `OFASubnet`'s state_dict (of `OFASpace.build(arch)` or `supernet.subnet(arch)`) as `OFANet.build`'s:
    the flat `blocks.{j}` become `stages.{s}.{i}` (`arch` in `OFASpace`'s layout)."""
    where = [(s, i) for s, stage in enumerate(arch["stages"]) for i in range(len(stage["blocks"]))]
    out = {}
    for key, value in ofa_subnet_state.items():
        m = re.match(r"^blocks\.(\d+)\.(.+)$", key)
        out[f"stages.{where[int(m[1])][0]}.{where[int(m[1])][1]}.{m[2]}" if m else key] = value
    return out
