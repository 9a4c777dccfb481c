"""Layer decomposition of a space's architectures: the protocol lookup tables and learned models build on.

A `LayerAdapter` turns an architecture into the list of `LayerConfig`s its network executes, in order,
builds each layer as a standalone module, and enumerates every distinct layer configuration the space
can produce (what a lookup-table builder profiles once). By default a layer takes one tensor of
`(batch, *layer.input_shape)`, the batch in dim 0, as in the built-in adapters' layers; an adapter whose
layers take other inputs (several tensors, a batch in another dimension, a tensor without one) overrides
`layer_input` (`NNLayers` records each input's batch dimension). `check_decomposition` verifies an adapter
against the space's own network: the layers' FLOPs, parameters (every parameter of the network, once) and
bytes moved must add up to the network's exactly.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.errors import ConfigError
from nas.counts import LeafCount, count_leaves
from nas.spaces.model_space import ModelSpace


@dataclass(frozen=True)
class LayerConfig:
    """One layer as a lookup table sees it: a kind, its options, and its input shape without the batch."""

    kind: str
    input_shape: tuple[int, ...]
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def make(cls, kind: str, input_shape: Iterable[int], **options: Any) -> "LayerConfig":
        return cls(kind, tuple(int(s) for s in input_shape), tuple(sorted(options.items())))

    def __getitem__(self, name: str) -> Any:
        for k, v in self.options:
            if k == name:
                return v
        raise KeyError(f"layer {self.key}: no option {name!r}")

    @property
    def key(self) -> str:
        """Canonical text, e.g. `mbconv(cin=16,cout=24,expand=3,kernel=5,residual=false,stride=2)@16x40`."""
        opts = ",".join(f"{k}={json.dumps(v)}" for k, v in self.options)
        return f"{self.kind}({opts})@{'x'.join(str(s) for s in self.input_shape)}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "input_shape": list(self.input_shape), "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LayerConfig":
        return cls.make(data["kind"], data["input_shape"], **data.get("options", {}))


class LayerAdapter:
    """How one space's architectures decompose into layers (subclass per space; see `ofa_layers`, `cell_layers`)."""

    name = "layers"
    # Dotted fields of `describe()` (`config.dropout`) that change no layer shape and no inference latency (training
    # settings): a subclass leaves them out of `describe()`, and table checks ignore them in headers that hold them.
    training_only: tuple[str, ...] = ()

    def __init__(self, space: ModelSpace) -> None:
        self.space = space
        self._counts: dict[tuple[str, int], list[LeafCount]] = {}

    def layers(self, arch: Mapping[str, Any]) -> list[LayerConfig]:
        """The layers `space.build(arch)` runs, in execution order."""
        raise NotImplementedError(f"{type(self).__name__}.layers")

    def build_layer(self, layer: LayerConfig) -> nn.Module:
        """A freshly initialised module computing `layer` on a `(batch, *layer.input_shape)` tensor."""
        raise NotImplementedError(f"{type(self).__name__}.build_layer")

    def distinct_layers(self) -> list[LayerConfig]:
        """Every layer configuration an architecture of the space can contain, each once."""
        raise NotImplementedError(f"{type(self).__name__}.distinct_layers")

    def describe(self) -> dict[str, Any]:
        """What fixes the layer shapes (recorded in lookup tables, compared when one is loaded)."""
        return {"adapter": self.name, "space": self.space.fingerprint()}

    def layer_input(self, layer: LayerConfig, batch_size: int = 1, seed: int = 0) -> Any:
        """A random input batch for `layer`: one `(batch_size, *layer.input_shape)` tensor (override for layers
        that take anything else)."""
        g = torch.Generator().manual_seed(seed)
        return torch.randn((batch_size, *layer.input_shape), generator=g)

    def layer_counts(self, layer: LayerConfig, batch_size: int = 1) -> list[LeafCount]:
        """FLOPs, parameters and bytes moved by the layer's leaf modules (see `counts.count_leaves`); memoised."""
        key = (layer.key, batch_size)
        if key not in self._counts:
            self._counts[key] = count_leaves(self.build_layer(layer), self.layer_input(layer, batch_size))
        return self._counts[key]

    def moves_bytes(self, layer: LayerConfig) -> bool:
        """Whether `layer` is a module call of the network, whose bytes count; False for work the network does
        outside modules (a node sum, a concatenation, a function call), which `counts.count_leaves` leaves out of
        bytes moved: `arch_counts` does too, so an architecture's roofline and energy equal its built network's."""
        return True

    def arch_counts(self, arch: Mapping[str, Any], batch_size: int = 1) -> list[LeafCount]:
        """The leaf counts of a whole architecture, assembled from its layers' (equal to counting the network:
        FLOPs, parameters, and bytes moved, those of layers that are no module call of the network left out)."""
        return [leaf if self.moves_bytes(layer) else no_bytes(leaf)
                for layer in self.layers(arch) for leaf in self.layer_counts(layer, batch_size)]


def no_bytes(leaf: LeafCount) -> LeafCount:
    """`leaf` without bytes moved (its FLOPs and parameters kept): work `count_leaves` counts no traffic for."""
    return dataclasses.replace(leaf, weight_bytes=0, input_bytes=0, output_bytes=0)


def unique(layers: Iterable[LayerConfig]) -> list[LayerConfig]:
    """Layers in first-seen order, each key once."""
    seen: dict[str, LayerConfig] = {}
    for layer in layers:
        seen.setdefault(layer.key, layer)
    return list(seen.values())


@dataclass(frozen=True)
class Decomposition:
    """Totals of an architecture's layers next to those of the space's own network."""

    layer_flops: int
    network_flops: int
    layer_params: int
    network_params: int
    layer_bytes: int = 0
    network_bytes: int = 0

    @property
    def exact(self) -> bool:
        """FLOPs, parameters and bytes moved all equal: the roofline and energy of the architecture are those of
        its built network."""
        return (self.layer_flops == self.network_flops and self.layer_params == self.network_params
                and self.layer_bytes == self.network_bytes)


def check_decomposition(adapter: LayerAdapter, arch: Mapping[str, Any], batch_size: int = 2) -> Decomposition:
    """Count FLOPs, parameters and bytes moved of `adapter.arch_counts(arch)` and of `space.build(arch)`; `exact`
    when all three are equal."""
    space = adapter.space
    arch = space.validate(arch)
    net = count_leaves(space.build(arch), space.example_input(arch, batch_size))
    parts = adapter.arch_counts(arch, batch_size)
    return Decomposition(sum(x.flops for x in parts), sum(x.flops for x in net),
                         sum(x.params for x in parts), sum(x.params for x in net),
                         sum(x.bytes_moved for x in parts), sum(x.bytes_moved for x in net))


def conv_length(length: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a convolution or pooling along one axis."""
    out = (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ConfigError(f"a layer with kernel {kernel}, stride {stride} cannot take length {length}")
    return out


class AddN(nn.Module):
    """`n` elementwise tensor additions: a node summing its inputs (`sum` of n tensors from 0, or `a + b` for n=1)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for _ in range(self.n):
            out = out + x
        return out


class ConcatN(nn.Module):
    """Concatenate `n` tensors shaped like the input along the channels."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x] * self.n, dim=1)
