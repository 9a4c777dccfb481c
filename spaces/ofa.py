"""The Once-for-All / BigNAS elastic CNN space for 1-D signals (MNIST-1D sized): space, supernet, subnets.

An architecture picks an input resolution (the signal is resampled to that length) and, per stage, a
depth, a width multiplier (the stage's output channels) and for each block a depthwise kernel size and
an expand ratio. Blocks are MobileNetV3-style inverted residuals (1x1 expand, depthwise kxk, 1x1 project;
Hardswish; identity shortcut after a stage's first block; no squeeze-excite, to stay CPU-cheap).

* `OFASpace`: the `ModelSpace` (Choice/Repeat fields); `build(arch)` gives a freshly initialised
  `OFASubnet`, `supernet()` the weight-sharing `OFASupernet`.
* `OFASupernet(x, arch)`: elastic depth (first d blocks of a stage), width and expand (first channels,
  sorted by importance with `sort_channels`), kernel (OFA kernel transformation); `subnet(arch)` extracts
  a standalone `OFASubnet` whose outputs equal the supernet's for that architecture.
* `OFASubnet(arch, config)`: plain Conv1d/BatchNorm1d/Linear modules, rebuilt from the architecture and
  `OFAConfig` alone, so `state_dict()` reloads without the supernet.

This is the implementation of the space; `nas.nn.builtin_spaces.OFANet` is a tested equivalent in `nas.nn`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError, check_count, check_number
from nas.architecture import Architecture
from nas.spaces.dynamic import DynamicBatchNorm, DynamicConv1d, importance_order
from nas.spaces.model_space import ModelSpace
from nas.spaces.params import Choice
from nas.spaces.space import Repeat, Space

__all__ = ["ELASTIC", "MBConv1d", "OFAConfig", "OFASpace", "OFASubnet", "OFASupernet"]

ELASTIC = frozenset({"resolution", "kernel", "depth", "expand", "width"})
"""The elastic dimensions; a training phase samples some of them and fixes the rest to their largest value."""


@dataclass(frozen=True)
class OFAConfig:
    """The fixed frame of the space: largest channel counts, strides, and the options of every decision."""

    in_length: int = 40
    in_channels: int = 1
    num_classes: int = 10
    resolutions: tuple[int, ...] = (32, 36, 40)
    stem_channels: int = 16
    stage_channels: tuple[int, ...] = (16, 24, 32)
    stage_strides: tuple[int, ...] = (2, 2, 2)
    depths: tuple[int, ...] = (1, 2, 3)
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (2, 3, 4)
    widths: tuple[float, ...] = (0.5, 0.75, 1.0)
    head_channels: int = 64
    dropout: float = 0.0
    zero_init_residual: bool = False  # BigNAS: residual blocks start as the identity (their last BN scale is 0)

    def __post_init__(self) -> None:
        """Each field as its annotation says (ints positive ints, bools refused; option lists non-empty lists or
        tuples, not strings), errors naming `OFAConfig.<field>`; lists become tuples."""
        for f in fields(self):
            v, kind = getattr(self, f.name), str(f.type)
            if kind.startswith("tuple"):
                if not isinstance(v, (list, tuple)) or not v:
                    raise ConfigError(f"OFAConfig.{f.name}: expected a non-empty list of options, got {v!r}")
                object.__setattr__(self, f.name, tuple(v))
                for x in v:
                    if "int" in kind:
                        check_count(x, f"OFAConfig.{f.name}", f" per option (of {v!r})")
                    else:
                        check_number(x, f"OFAConfig.{f.name}")
            elif kind == "int":
                check_count(v, f"OFAConfig.{f.name}")
        if len(self.stage_channels) != len(self.stage_strides):
            raise ConfigError(f"OFAConfig.stage_strides: {len(self.stage_strides)} strides for "
                              f"{len(self.stage_channels)} stages")
        if any(k % 2 == 0 for k in self.kernels):
            raise ConfigError(f"OFAConfig.kernels: kernel sizes must be odd, got {self.kernels!r}")
        if any(w > 1 for w in self.widths):
            raise ConfigError(f"OFAConfig.widths: multipliers must be <= 1 (of stage_channels), got {self.widths!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"OFAConfig.dropout: must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.zero_init_residual, bool):
            raise ConfigError(f"OFAConfig.zero_init_residual: expected True or False, got {self.zero_init_residual!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; `OFAConfig(**d)` rebuilds it."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def stage_width(self, stage: int, multiplier: float) -> int:
        """Output channels of `stage` at a width multiplier."""
        return max(1, int(round(multiplier * self.stage_channels[stage])))


def _prepare(x: torch.Tensor, resolution: int, in_channels: int) -> torch.Tensor:
    """(N, L) or (N, C, L) -> (N, C, resolution), resampled linearly when the length differs."""
    if x.dim() == 2 and in_channels == 1:
        x = x.unsqueeze(1)
    if x.dim() != 3 or x.shape[1] != in_channels:
        raise ValueError(f"expected input of shape (N, {in_channels}, L)" + (" or (N, L)" if in_channels == 1 else "")
                         + f", got {tuple(x.shape)}")
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=resolution, mode="linear", align_corners=False)
    return x


def _stem(cfg: OFAConfig) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cfg.in_channels, cfg.stem_channels, 3, padding=1, bias=False),
                         nn.BatchNorm1d(cfg.stem_channels), nn.Hardswish())


# ---------------------------------------------------------------------------------------- standalone
class MBConv1d(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise k -> 1x1 project, identity shortcut when `residual`.
    (`conv`/`bn` are the layer classes: `nas.nn`'s elastic ones make it `OFANet`'s block, sizes being choices.)"""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, expand: int, stride: int,
                 residual: bool, conv: type[nn.Module] = nn.Conv1d, bn: type[nn.Module] = nn.BatchNorm1d) -> None:
        super().__init__()
        mid = in_channels * expand
        self.residual = residual
        self.expand = nn.Sequential(conv(in_channels, mid, 1, bias=False), bn(mid), nn.Hardswish())
        self.depthwise = nn.Sequential(conv(mid, mid, kernel_size, stride, kernel_size // 2, groups=mid, bias=False),
                                       bn(mid), nn.Hardswish())
        self.project = nn.Sequential(conv(mid, out_channels, 1, bias=False), bn(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


class OFASubnet(nn.Module):
    """One architecture of the space as plain torch modules; `OFASubnet(arch, config)` needs nothing else."""

    def __init__(self, arch: Mapping[str, Any], config: OFAConfig | None = None) -> None:
        super().__init__()
        cfg = config or OFAConfig()
        arch = OFASpace(cfg).validate(arch).to_dict()  # an error names the field (a depth its blocks do not match)
        self.resolution, self.in_channels = int(arch["resolution"]), cfg.in_channels
        self.stem = _stem(cfg)
        blocks, cin = [], cfg.stem_channels
        for s, stage in enumerate(arch["stages"]):
            cout = cfg.stage_width(s, stage["width"])
            for i, b in enumerate(stage["blocks"]):
                blocks.append(MBConv1d(cin, cout, int(b["kernel"]), int(b["expand"]),
                                       cfg.stage_strides[s] if i == 0 else 1, residual=i > 0))
                cin = cout
        if cfg.zero_init_residual:
            for block in blocks:
                if block.residual:
                    nn.init.zeros_(block.project[1].weight)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv1d(cin, cfg.head_channels, 1, bias=False),
                                  nn.BatchNorm1d(cfg.head_channels), nn.Hardswish())
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.head_channels, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(_prepare(x, self.resolution, self.in_channels))))
        return self.classifier(self.dropout(x.mean(dim=-1)))


# ---------------------------------------------------------------------------------------- supernet
class DynamicMBConv1d(nn.Module):
    """Elastic inverted residual: middle channels = active in-channels x expand, elastic kernel and out-channels."""

    def __init__(self, in_channels: int, out_channels: int, kernels: tuple[int, ...], max_expand: int, stride: int,
                 residual: bool) -> None:
        super().__init__()
        mid = in_channels * max_expand
        self.stride, self.residual = stride, residual
        self.expand_conv, self.expand_bn = DynamicConv1d(in_channels, mid, 1), DynamicBatchNorm(mid)
        self.dw_conv = DynamicConv1d(mid, mid, kernels, stride, depthwise=True)
        self.dw_bn = DynamicBatchNorm(mid)
        self.project_conv, self.project_bn = DynamicConv1d(mid, out_channels, 1), DynamicBatchNorm(out_channels)

    def forward(self, x: torch.Tensor, out_channels: int, kernel_size: int, expand: int) -> torch.Tensor:
        h = F.hardswish(self.expand_bn(self.expand_conv(x, x.shape[1] * expand)))
        h = F.hardswish(self.dw_bn(self.dw_conv(h, kernel_size=kernel_size)))
        h = self.project_bn(self.project_conv(h, out_channels))
        return x + h if self.residual else h

    def export(self, in_channels: int, out_channels: int, kernel_size: int, expand: int) -> MBConv1d:
        """The plain `MBConv1d` of this configuration, holding copies of the sliced weights."""
        mid = in_channels * expand
        block = MBConv1d(in_channels, out_channels, kernel_size, expand, self.stride, self.residual)
        block.expand[0] = self.expand_conv.export(in_channels, mid)
        block.expand[1] = self.expand_bn.export(mid)
        block.depthwise[0] = self.dw_conv.export(mid, mid, kernel_size)
        block.depthwise[1] = self.dw_bn.export(mid)
        block.project[0] = self.project_conv.export(mid, out_channels)
        block.project[1] = self.project_bn.export(out_channels)
        return block

    def sort_middle(self) -> None:
        """Reorder the expanded channels by the L1 importance of the projection's input weights (OFA)."""
        perm = importance_order(self.project_conv.weight, dim=1)
        self.project_conv.reorder_in(perm)
        for layer in (self.dw_bn, self.expand_bn):
            layer.reorder(perm)
        self.dw_conv.reorder_out(perm)
        self.expand_conv.reorder_out(perm)


class OFASupernet(nn.Module):
    """All architectures of an `OFASpace` in one set of weights: `supernet(x, arch)` runs one of them."""

    def __init__(self, space: "OFASpace") -> None:
        super().__init__()
        self.space = space
        cfg = space.config
        self.stem = _stem(cfg)
        stages, cin = [], cfg.stem_channels
        for s, cout in enumerate(cfg.stage_channels):
            stages.append(nn.ModuleList([
                DynamicMBConv1d(cin if i == 0 else cout, cout, cfg.kernels, max(cfg.expands),
                                cfg.stage_strides[s] if i == 0 else 1, residual=i > 0)
                for i in range(max(cfg.depths))]))
            cin = cout
        if cfg.zero_init_residual:
            for block in (b for stage in stages for b in stage if b.residual):
                nn.init.zeros_(block.project_bn.bn.weight)
        self.stages = nn.ModuleList(stages)
        self.head_conv = DynamicConv1d(cin, cfg.head_channels, 1)
        self.head_bn = nn.BatchNorm1d(cfg.head_channels)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.head_channels, cfg.num_classes)

    def forward(self, x: torch.Tensor, arch: Mapping[str, Any]) -> torch.Tensor:
        a, cfg = self.space.validate(arch), self.space.config
        x = self.stem(_prepare(x, a["resolution"], cfg.in_channels))
        for s, stage in enumerate(a["stages"]):
            cout = cfg.stage_width(s, stage["width"])
            for block, b in zip(self.stages[s], stage["blocks"]):
                x = block(x, cout, b["kernel"], b["expand"])
        x = F.hardswish(self.head_bn(self.head_conv(x)))
        return self.classifier(self.dropout(x.mean(dim=-1)))

    @torch.no_grad()
    def subnet(self, arch: Mapping[str, Any]) -> OFASubnet:
        """A standalone `OFASubnet` holding copies of this architecture's sliced (and transformed) weights."""
        a, cfg = self.space.validate(arch), self.space.config
        sub = OFASubnet(a, cfg)
        blocks, cin = [], cfg.stem_channels
        for s, stage in enumerate(a["stages"]):
            cout = cfg.stage_width(s, stage["width"])
            for block, b in zip(self.stages[s], stage["blocks"]):
                blocks.append(block.export(cin, cout, b["kernel"], b["expand"]))
                cin = cout
        state = {f"stem.{k}": v for k, v in self.stem.state_dict().items()}
        for j, block in enumerate(blocks):
            state.update({f"blocks.{j}.{k}": v for k, v in block.state_dict().items()})
        state.update({f"head.0.{k}": v for k, v in self.head_conv.export(cin).state_dict().items()})
        state.update({f"head.1.{k}": v for k, v in self.head_bn.state_dict().items()})
        state.update({f"classifier.{k}": v for k, v in self.classifier.state_dict().items()})
        sub.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True)
        return sub.train(self.training)

    def sort_channels(self) -> None:
        """Reorder channels by importance so that elastic width keeps the important ones (function-preserving).

        Each block's expanded channels are sorted by its projection's input weights (OFA); each stage's
        output channels by the L1 norm of its blocks' projection outputs, permuting every reader of the
        stage's residual stream alike.
        """
        n = len(self.stages)
        for s, stage in enumerate(self.stages):
            for block in stage:
                block.sort_middle()
            perm = importance_order(torch.cat([b.project_conv.weight for b in stage], dim=1), dim=0)
            for i, block in enumerate(stage):
                block.project_conv.reorder_out(perm)
                block.project_bn.reorder(perm)
                if i > 0:
                    block.expand_conv.reorder_in(perm)
            reader = self.stages[s + 1][0].expand_conv if s + 1 < n else self.head_conv
            reader.reorder_in(perm)


# ---------------------------------------------------------------------------------------- space
class OFASpace(ModelSpace):
    """resolution x per stage (depth, width, blocks[depth] x (kernel, expand)); see `OFAConfig` for the options."""

    def __init__(self, config: OFAConfig | None = None) -> None:
        cfg = config or OFAConfig()
        stage = Space(depth=Choice(list(cfg.depths)), width=Choice(list(cfg.widths)),
                      blocks=Repeat("depth", kernel=Choice(list(cfg.kernels)), expand=Choice(list(cfg.expands))))
        super().__init__(resolution=Choice(list(cfg.resolutions)), stages=Repeat(len(cfg.stage_channels), block=stage))
        self.config = cfg

    def build(self, arch: Mapping[str, Any]) -> OFASubnet:
        """A freshly initialised standalone network (for training from scratch)."""
        return OFASubnet(self.validate(arch), self.config)

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> torch.Tensor:
        return torch.zeros(batch_size, self.config.in_channels, self.config.in_length)

    def supernet(self) -> OFASupernet:
        """A freshly initialised weight-sharing supernet over this space."""
        return OFASupernet(self)

    def sample_subnet(self, rng: np.random.Generator, elastic: frozenset[str] | set[str] = ELASTIC) -> Architecture:
        """OFA's training distribution: each decision uniform on its own (every stage depth equally likely),
        with dimensions outside `elastic` at their largest value. (`sample` is uniform over architectures,
        which puts most mass on the deepest ones.) A bare string is refused, not read as a set of letters."""
        if isinstance(elastic, str) or not isinstance(elastic, Iterable):
            raise ConfigError(f"elastic: expected a collection of dimension names such as {{'depth'}}, got {elastic!r}")
        unknown = set(elastic) - ELASTIC
        if unknown:
            raise ConfigError(f"elastic: unknown dimensions {sorted(unknown)} (known: {sorted(ELASTIC)})")
        cfg = self.config

        def pick(name: str, options: tuple[Any, ...]) -> Any:
            return options[int(rng.integers(len(options)))] if name in elastic else max(options)

        stages = []
        for _ in cfg.stage_channels:
            depth = pick("depth", cfg.depths)
            stages.append({"depth": depth, "width": pick("width", cfg.widths),
                           "blocks": [{"kernel": pick("kernel", cfg.kernels), "expand": pick("expand", cfg.expands)}
                                      for _ in range(depth)]})
        return self.validate({"resolution": pick("resolution", cfg.resolutions), "stages": stages})

    def largest(self, resolution: int | None = None) -> Architecture:
        """Every decision at its largest value (at `resolution` when given)."""
        return self._extreme(max, resolution)

    def smallest(self, resolution: int | None = None) -> Architecture:
        """Every decision at its smallest value (at `resolution` when given)."""
        return self._extreme(min, resolution)

    def _extreme(self, fn: Any, resolution: int | None) -> Architecture:
        cfg = self.config
        d = fn(cfg.depths)
        stage = {"depth": d, "width": fn(cfg.widths),
                 "blocks": [{"kernel": fn(cfg.kernels), "expand": fn(cfg.expands)}] * d}
        res = fn(cfg.resolutions) if resolution is None else resolution
        return self.validate({"resolution": res, "stages": [stage] * len(cfg.stage_channels)})
