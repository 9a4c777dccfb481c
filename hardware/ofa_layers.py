"""Layer decomposition of the OFA/BigNAS elastic 1-D CNN (`nas.spaces.ofa.OFASpace`).

An architecture runs: `resample` (input length -> resolution), `stem`, one `mbconv` per block (inverted
residual; the first of a stage strided, the others residual), and `head` (1x1 conv, global pooling,
classifier). A block's configuration is (in/out channels, kernel, expand, stride, residual, input length),
so the space's ~4.4e10 architectures share a few hundred distinct layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.hardware.layers import LayerAdapter, LayerConfig, conv_length, unique
from nas.spaces.ofa import MBConv1d, OFASpace


class Resample(nn.Module):
    """(N, C, L) -> (N, C, resolution) by linear interpolation; the identity when the length already matches."""

    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == self.resolution:
            return x
        return F.interpolate(x, size=self.resolution, mode="linear", align_corners=False)


class Head(nn.Module):
    """1x1 conv -> BN -> Hardswish -> mean over the length -> dropout -> linear classifier (the OFA subnet's head)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Conv1d(in_channels, channels, 1, bias=False), nn.BatchNorm1d(channels),
                                  nn.Hardswish())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.head(x).mean(dim=-1)))


class OFALayers(LayerAdapter):
    """`LayerAdapter` for `OFASpace`: resample, stem, mbconv blocks, head."""

    name = "ofa"
    # dropout is the identity in eval mode and zero_init_residual only sets initial weights: neither changes a layer
    # shape or its latency, so a table serves spaces differing in them
    training_only = ("config.dropout", "config.zero_init_residual")

    def __init__(self, space: OFASpace) -> None:
        super().__init__(space)
        self.config = space.config

    def describe(self) -> dict[str, Any]:
        config = {k: v for k, v in self.config.to_dict().items() if f"config.{k}" not in self.training_only}
        return {**super().describe(), "config": config}

    def _stem(self, resolution: int) -> LayerConfig:
        cfg = self.config
        return LayerConfig.make("stem", (cfg.in_channels, resolution), cin=cfg.in_channels, cout=cfg.stem_channels)

    def _block(self, cin: int, cout: int, kernel: int, expand: int, stride: int, residual: bool,
               length: int) -> tuple[LayerConfig, int]:
        layer = LayerConfig.make("mbconv", (cin, length), cin=cin, cout=cout, kernel=int(kernel), expand=int(expand),
                                 stride=stride, residual=residual)
        return layer, conv_length(length, kernel, stride, kernel // 2)

    def _head(self, cin: int, length: int) -> LayerConfig:
        cfg = self.config
        return LayerConfig.make("head", (cin, length), cin=cin, channels=cfg.head_channels, classes=cfg.num_classes)

    def layers(self, arch: Mapping[str, Any]) -> list[LayerConfig]:
        a, cfg = self.space.validate(arch), self.config
        res = int(a["resolution"])
        out = [LayerConfig.make("resample", (cfg.in_channels, cfg.in_length), resolution=res), self._stem(res)]
        cin, length = cfg.stem_channels, res
        for s, stage in enumerate(a["stages"]):
            cout = cfg.stage_width(s, stage["width"])
            for i, b in enumerate(stage["blocks"]):
                layer, length = self._block(cin, cout, b["kernel"], b["expand"], cfg.stage_strides[s] if i == 0 else 1,
                                            i > 0, length)
                out.append(layer)
                cin = cout
        out.append(self._head(cin, length))
        return out

    def distinct_layers(self) -> list[LayerConfig]:
        cfg = self.config
        out: list[LayerConfig] = []
        for res in cfg.resolutions:
            out += [LayerConfig.make("resample", (cfg.in_channels, cfg.in_length), resolution=res), self._stem(res)]
            states = {(cfg.stem_channels, res)}  # (channels, length) entering a stage
            for s in range(len(cfg.stage_channels)):
                nxt = set()
                for cin, length in sorted(states):
                    for width in cfg.widths:
                        cout = cfg.stage_width(s, width)
                        for k in cfg.kernels:
                            for e in cfg.expands:
                                first, after = self._block(cin, cout, k, e, cfg.stage_strides[s], False, length)
                                out.append(first)
                                nxt.add((cout, after))
                                if max(cfg.depths) > 1:
                                    out.append(self._block(cout, cout, k, e, 1, True, after)[0])
                states = nxt
            out += [self._head(c, length) for c, length in sorted(states)]
        return unique(out)

    def moves_bytes(self, layer: LayerConfig) -> bool:
        """The input resampling is a function call in the network (`F.interpolate`), not a module: its bytes are
        left out of an architecture's counts, as `count_leaves` leaves them out of the network's."""
        return layer.kind != "resample"

    def build_layer(self, layer: LayerConfig) -> nn.Module:
        if layer.kind == "resample":
            return Resample(layer["resolution"])
        if layer.kind == "stem":
            return nn.Sequential(nn.Conv1d(layer["cin"], layer["cout"], 3, padding=1, bias=False),
                                 nn.BatchNorm1d(layer["cout"]), nn.Hardswish())
        if layer.kind == "mbconv":
            return MBConv1d(layer["cin"], layer["cout"], layer["kernel"], layer["expand"], layer["stride"],
                            layer["residual"])
        if layer.kind == "head":
            return Head(layer["cin"], layer["channels"], layer["classes"], self.config.dropout)
        raise KeyError(f"OFALayers: unknown layer kind {layer.kind!r}")
