"""The chain supernet NEAS searches, and ensembles of its subnets as one space, one supernet and one module.

* `ChainSpace(ChainConfig)`: a chain of inverted-residual layers (MBConv, 1-D) with one operation per layer,
  named `k{kernel}e{expand}` or `skip` (identity, where the layer keeps its shape). `ChainConfig.allowed`
  restricts each layer's candidates (the shrunk space) without changing the supernet's weights.
* `ChainSupernet`: one `DynamicMBConv1d` (OFA's elastic block) per layer, so a layer's candidates share
  weights (kernel and expand are slices); `subnet(arch)` extracts a standalone `ChainNet`.
* `EnsembleSpace(EnsembleConfig)`: K members of a `ChainSpace`; `build(arch)` and the supernet's
  `subnet(arch)` give an `Ensemble`, whose output is the mean of its members' softmax outputs (probabilities).
* `save_ensemble` / `load_ensemble`: an ensemble as a standalone directory (model.json + weights.pt
  [+ model.onnx]), rebuilt from JSON and a tensor-only state_dict.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas import jsonio
from nas.architecture import Architecture, canonical_json
from nas.counts import count_flops
from nas.errors import ConfigError
from nas.spaces.model_space import ModelSpace
from nas.spaces.ofa import DynamicMBConv1d, MBConv1d
from nas.spaces.params import Choice
from nas.spaces.space import Repeat, Space

__all__ = ["SKIP", "ChainConfig", "ChainNet", "ChainSpace", "ChainSupernet", "Ensemble", "EnsembleConfig",
           "EnsembleSpace", "EnsembleSupernet", "load_ensemble", "op_name", "parse_op", "save_ensemble"]

SKIP = "skip"
ENSEMBLE_FORMAT = "nas-subnet"  # the exported-model format of nas.modelspec, so nas.load_subnet reads it too


def op_name(kernel: int, expand: int) -> str:
    return f"k{kernel}e{expand}"


def parse_op(op: str) -> tuple[int, int] | None:
    """(kernel, expand) of an MBConv op name, None for `skip`."""
    if op == SKIP:
        return None
    k, _, e = op[1:].partition("e")
    return int(k), int(e)


@dataclass(frozen=True)
class ChainConfig:
    """The frame of the chain (channels and strides per layer, op options) and, optionally, each layer's
    allowed candidates (`allowed[i]`, a subset of layer i's ops: the shrunk space; None = all)."""

    in_length: int = 40
    in_channels: int = 1
    num_classes: int = 10
    stem_channels: int = 16
    channels: tuple[int, ...] = (16, 16, 24, 24, 32, 32)
    strides: tuple[int, ...] = (2, 1, 2, 1, 2, 1)
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (2, 4)
    skip: bool = True
    head_channels: int = 48
    allowed: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
                object.__setattr__(self, f.name, v)
        for name in ("in_length", "in_channels", "num_classes", "stem_channels", "head_channels"):
            if isinstance(getattr(self, name), bool) or int(getattr(self, name)) < 1:
                raise ConfigError(f"ChainConfig.{name}: must be a positive int, got {getattr(self, name)!r}")
        for name in ("channels", "strides", "kernels", "expands"):
            v = getattr(self, name)
            if not v or any(int(x) < 1 for x in v):
                raise ConfigError(f"ChainConfig.{name}: needs at least one positive int, got {v!r}")
        if len(self.channels) != len(self.strides):
            raise ConfigError(f"ChainConfig.strides: {len(self.strides)} strides for {len(self.channels)} layers")
        if any(k % 2 == 0 for k in self.kernels):
            raise ConfigError(f"ChainConfig.kernels: kernel sizes must be odd, got {self.kernels!r}")
        if self.allowed is not None:
            if len(self.allowed) != len(self.channels):
                raise ConfigError(f"ChainConfig.allowed: {len(self.allowed)} lists for {len(self.channels)} layers")
            for i, ops in enumerate(self.allowed):
                bad = [o for o in ops if o not in self.layer_ops(i)]
                if not ops or bad or len(set(ops)) != len(ops):
                    raise ConfigError(f"ChainConfig.allowed[{i}]: expected distinct ops of {self.layer_ops(i)}, "
                                      f"got {list(ops)!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; `ChainConfig(**d)` rebuilds it."""
        return jsonio.plain({f.name: getattr(self, f.name) for f in fields(self)}, "ChainConfig")

    def residual(self, layer: int) -> bool:
        """Whether layer `layer` keeps its input's shape (identity shortcut, and `skip` is a candidate)."""
        cin = self.stem_channels if layer == 0 else self.channels[layer - 1]
        return self.strides[layer] == 1 and cin == self.channels[layer]

    def layer_ops(self, layer: int) -> tuple[str, ...]:
        """Every op of the frame at `layer`, cheapest first (skip, then by expand and kernel)."""
        mb = tuple(op_name(k, e) for e in sorted(self.expands) for k in sorted(self.kernels))
        return ((SKIP,) if self.skip and self.residual(layer) else ()) + mb

    def candidates(self, layer: int) -> tuple[str, ...]:
        """The ops layer `layer` may use in this (possibly shrunk) space."""
        return self.layer_ops(layer) if self.allowed is None else self.allowed[layer]

    def shrunk(self, allowed: Sequence[Sequence[str]]) -> "ChainConfig":
        """The same frame with other allowed candidates (kept in the frame's order)."""
        ordered = tuple(tuple(o for o in self.layer_ops(i) if o in set(ops)) for i, ops in enumerate(allowed))
        return ChainConfig(**{**{f.name: getattr(self, f.name) for f in fields(self)}, "allowed": ordered})

    def frame(self) -> "ChainConfig":
        """This config without the restriction (what the supernet's weights depend on)."""
        return self.shrunk([self.layer_ops(i) for i in range(len(self.channels))]) if self.allowed else self


def _layer_name(i: int) -> str:
    return f"layer{i}"


def _stem(cfg: ChainConfig) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cfg.in_channels, cfg.stem_channels, 3, padding=1, bias=False),
                         nn.BatchNorm1d(cfg.stem_channels), nn.Hardswish())


def _head(cin: int, cfg: ChainConfig) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cfg.head_channels, 1, bias=False), nn.BatchNorm1d(cfg.head_channels),
                         nn.Hardswish())


def _input(x: torch.Tensor, cfg: ChainConfig) -> torch.Tensor:
    """(N, L) -> (N, 1, L) for single-channel signals; (N, C, L) as is."""
    return x.unsqueeze(1) if x.dim() == 2 and cfg.in_channels == 1 else x


class ChainNet(nn.Module):
    """One architecture of a `ChainSpace` as plain torch modules; `ChainNet(arch, config)` needs nothing else."""

    def __init__(self, arch: Mapping[str, Any], config: ChainConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = _stem(config)
        layers, cin = [], config.stem_channels
        for i, cout in enumerate(config.channels):
            op = parse_op(arch[_layer_name(i)])
            layers.append(nn.Identity() if op is None else
                          MBConv1d(cin, cout, op[0], op[1], config.strides[i], config.residual(i)))
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = _head(cin, config)
        self.classifier = nn.Linear(config.head_channels, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(self.layers(self.stem(_input(x, self.config))))
        return self.classifier(h.mean(dim=-1))


class ChainSupernet(nn.Module):
    """Every architecture of a `ChainSpace` in one set of weights: `supernet(x, arch)` runs one of them."""

    def __init__(self, space: "ChainSpace") -> None:
        super().__init__()
        self.space = space
        cfg = space.config
        self.stem = _stem(cfg)
        layers, cin = [], cfg.stem_channels
        for i, cout in enumerate(cfg.channels):
            layers.append(DynamicMBConv1d(cin, cout, cfg.kernels, max(cfg.expands), cfg.strides[i], cfg.residual(i)))
            cin = cout
        self.layers = nn.ModuleList(layers)
        self.head = _head(cin, cfg)
        self.classifier = nn.Linear(cfg.head_channels, cfg.num_classes)

    def forward(self, x: torch.Tensor, arch: Mapping[str, Any]) -> torch.Tensor:
        cfg = self.space.config
        h = self.stem(_input(x, cfg))
        for i, layer in enumerate(self.layers):
            op = parse_op(arch[_layer_name(i)])
            if op is not None:
                h = layer(h, cfg.channels[i], op[0], op[1])
        return self.classifier(self.head(h).mean(dim=-1))

    @torch.no_grad()
    def subnet(self, arch: Mapping[str, Any]) -> ChainNet:
        """A standalone `ChainNet` holding copies of this architecture's sliced (and transformed) weights."""
        cfg = self.space.config
        a = self.space.validate(arch)
        net = ChainNet(a, cfg)
        net.stem.load_state_dict(self.stem.state_dict())
        cin = cfg.stem_channels
        for i, layer in enumerate(self.layers):
            op = parse_op(a[_layer_name(i)])
            if op is not None:
                net.layers[i] = layer.export(cin, cfg.channels[i], op[0], op[1])
            cin = cfg.channels[i]
        net.head.load_state_dict(self.head.state_dict())
        net.classifier.load_state_dict(self.classifier.state_dict())
        return net.train(self.training)


class ChainSpace(ModelSpace):
    """layer0 .. layer{L-1}, each a Choice of that layer's candidate ops (see `ChainConfig`)."""

    def __init__(self, config: ChainConfig | None = None) -> None:
        cfg = config or ChainConfig()
        super().__init__(chain_fields(cfg))
        self.config = cfg
        self._flops: dict[tuple[int, str], float] | None = None
        self._base_flops = 0.0

    @property
    def num_layers(self) -> int:
        return len(self.config.channels)

    def build(self, arch: Mapping[str, Any]) -> ChainNet:
        """A freshly initialised standalone network."""
        return ChainNet(self.validate(arch), self.config)

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> torch.Tensor:
        return torch.zeros(batch_size, self.config.in_channels, self.config.in_length)

    def supernet(self) -> ChainSupernet:
        """A freshly initialised weight-sharing supernet over the frame (the same weights for any `allowed`)."""
        return ChainSupernet(self)

    def shrunk(self, allowed: Sequence[Sequence[str]]) -> "ChainSpace":
        return ChainSpace(self.config.shrunk(allowed))

    def flops(self, arch: Mapping[str, Any]) -> float:
        """FLOPs of one forward pass (batch 1), from a per-layer table: equal to `count(arch)["flops"]`."""
        table = self._flop_table()
        return self._base_flops + sum(table[(i, arch[_layer_name(i)])] for i in range(self.num_layers))

    def op_flops(self, layer: int, op: str) -> float:
        """FLOPs of `op` at layer `layer` (batch 1)."""
        return self._flop_table()[(layer, op)]

    def _flop_table(self) -> dict[tuple[int, str], float]:
        """FLOPs of every (layer, op) and of the fixed stem + head, counted once with torch's FlopCounterMode."""
        if self._flops is None:
            cfg = self.config
            x = self.example_input({})
            length, cin, table = cfg.in_length, cfg.stem_channels, {}
            for i, cout in enumerate(cfg.channels):
                inp = torch.zeros(1, cin, length)
                for op in cfg.layer_ops(i):
                    ke = parse_op(op)
                    table[(i, op)] = 0.0 if ke is None else float(count_flops(
                        MBConv1d(cin, cout, ke[0], ke[1], cfg.strides[i], cfg.residual(i)), inp)["flops"])
                length = (length - 1) // cfg.strides[i] + 1  # odd kernels, 'same' padding
                cin = cout
            arch = {_layer_name(i): cfg.layer_ops(i)[-1] for i in range(self.num_layers)}
            total = float(count_flops(ChainNet(arch, cfg), x)["flops"])
            self._base_flops = total - sum(table[(i, op)] for i, op in enumerate(arch.values()))
            self._flops = table
        return self._flops

    def sample_within(self, rng: np.random.Generator, n: int, max_flops: float | None, tries: int = 50
                      ) -> list[Architecture]:
        """Up to `n` architectures of `sample_balanced` draws whose FLOPs are at most `max_flops` (all of the
        first draw when None), from at most `tries` draws of `n`."""
        out: list[Architecture] = []
        for _ in range(tries if max_flops is not None else 1):
            out += [a for a in self.sample_balanced(rng, n) if max_flops is None or self.flops(a) <= max_flops]
            if len(out) >= n:
                break
        return out[:n]

    def smallest(self, fixed: Mapping[str, str] | None = None) -> Architecture:
        """The architecture with the fewest FLOPs, among those whose layers in `fixed` take the ops given."""
        fixed = dict(fixed or {})
        return self.validate({_layer_name(i): fixed.get(_layer_name(i)) or min(
            self.config.candidates(i), key=lambda op, i=i: self.op_flops(i, op)) for i in range(self.num_layers)})

    def sample_capped(self, rng: np.random.Generator, max_flops: float,
                      fixed: Mapping[str, str] | None = None) -> Architecture:
        """One architecture with at most `max_flops` FLOPs and the `fixed` layer ops: the other layers, in random
        order, each take a uniform one of their candidates that leaves the layers still open room for their
        cheapest (so it always succeeds when `smallest(fixed)` fits; ConfigError otherwise)."""
        arch = dict(self.smallest(fixed))
        room = max_flops - self.flops(arch)
        if room < 0:
            raise ConfigError(f"max_flops: {max_flops:.4g} is below the {self.flops(arch):.4g} FLOPs of the smallest "
                              f"architecture with {dict(fixed or {})}")
        for i in rng.permutation(self.num_layers):
            name = _layer_name(int(i))
            if fixed and name in fixed:
                continue
            base = self.op_flops(int(i), arch[name])
            fits = [op for op in self.config.candidates(int(i)) if self.op_flops(int(i), op) - base <= room]
            arch[name] = fits[int(rng.integers(len(fits)))]
            room -= self.op_flops(int(i), arch[name]) - base
        return self.validate(arch)

    def sample_balanced(self, rng: np.random.Generator, n: int) -> list[Architecture]:
        """`n` architectures in which every candidate of every layer appears floor(n / #candidates) or more
        times (each layer cycles through a fresh shuffle of its candidates), for unbiased per-candidate scores."""
        cols = {}
        for i in range(self.num_layers):
            ops = list(self.config.candidates(i))
            seq: list[str] = []
            while len(seq) < n:
                seq += [ops[j] for j in rng.permutation(len(ops))]
            cols[_layer_name(i)] = seq[:n]
        return [self.validate({k: v[j] for k, v in cols.items()}) for j in range(n)]


def chain_fields(cfg: ChainConfig) -> dict[str, Choice]:
    return {_layer_name(i): Choice(list(cfg.candidates(i)), ordered=False) for i in range(len(cfg.channels))}


# ---------------------------------------------------------------------------------------- ensembles
@dataclass(frozen=True)
class EnsembleConfig:
    """K members of the chain space `chain` (a `ChainConfig`, or its dict in JSON)."""

    chain: ChainConfig = ChainConfig()
    members: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.chain, Mapping):
            object.__setattr__(self, "chain", ChainConfig(**self.chain))
        if not isinstance(self.chain, ChainConfig):
            raise ConfigError(f"EnsembleConfig.chain: expected a ChainConfig, got {type(self.chain).__name__}")
        if isinstance(self.members, bool) or not isinstance(self.members, int) or self.members < 1:
            raise ConfigError(f"EnsembleConfig.members: expected a positive int, got {self.members!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"chain": self.chain.to_dict(), "members": self.members}


class Ensemble(nn.Module):
    """Members run on the same input; the output is the mean of their softmax outputs (class probabilities)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.softmax(m(x), dim=-1) for m in self.members]).mean(dim=0)


class EnsembleSupernet(nn.Module):
    """A `ChainSupernet` seen as the supernet of an `EnsembleSpace`: `subnet(arch)` is the members' `Ensemble`."""

    def __init__(self, space: "EnsembleSpace", chain: ChainSupernet | None = None) -> None:
        super().__init__()
        self.space = space
        self.chain = chain if chain is not None else ChainSupernet(space.member_space)

    def forward(self, x: torch.Tensor, arch: Mapping[str, Any]) -> torch.Tensor:
        return torch.stack([F.softmax(self.chain(x, m), dim=-1) for m in arch["members"]]).mean(dim=0)

    def subnet(self, arch: Mapping[str, Any]) -> Ensemble:
        a = self.space.validate(arch)
        return Ensemble([self.chain.subnet(m) for m in a["members"]])


class EnsembleSpace(ModelSpace):
    """members: Repeat(K) of the chain space's layers; architectures equal up to member order are one ensemble."""

    def __init__(self, config: EnsembleConfig | None = None) -> None:
        cfg = config or EnsembleConfig()
        super().__init__(members=Repeat(cfg.members, block=Space(chain_fields(cfg.chain))))
        self.config = cfg
        self.member_space = ChainSpace(cfg.chain)

    def build(self, arch: Mapping[str, Any]) -> Ensemble:
        return Ensemble([self.member_space.build(m) for m in self.validate(arch)["members"]])

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> torch.Tensor:
        return self.member_space.example_input(arch, batch_size)

    def supernet(self) -> EnsembleSupernet:
        return EnsembleSupernet(self)

    def flops(self, arch: Mapping[str, Any]) -> float:
        """Total FLOPs of the members (the averaging is not counted)."""
        return sum(self.member_space.flops(m) for m in arch["members"])

    def of(self, members: Sequence[Mapping[str, Any]]) -> Architecture:
        return self.validate({"members": [dict(m) for m in members]})

    def canonical_key(self, arch: Mapping[str, Any]) -> str:
        members = sorted(canonical_json(dict(m)) for m in self.validate(arch)["members"])
        return hashlib.sha256("|".join(members).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------- files
def save_ensemble(ensemble: nn.Module, space: EnsembleSpace, arch: Mapping[str, Any], out: str | Path,
                  onnx: bool = True) -> Path:
    """`out`/model.json (space class + config + architecture, in `nas.modelspec`'s exported-model format),
    weights.pt (a tensor-only state_dict) and, with `onnx`, model.onnx traced from the module. Returns `out`."""
    a = space.validate(arch)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "weights.pt.tmp"
    torch.save({k: v.detach().cpu().clone() for k, v in ensemble.state_dict().items()}, tmp)
    os.replace(tmp, folder / "weights.pt")
    shape = list(space.example_input(a).shape)
    spec = {"format": ENSEMBLE_FORMAT, "version": 1,
            "space": {"class": _path(type(space)), "config_class": _path(EnsembleConfig),
                      "config": space.config.to_dict()},
            "arch": a.to_dict(), "arch_id": a.id,
            "module": {"class": _path(type(ensemble)), "built_by": "space.build(arch)"},
            "weights": "weights.pt", "input": {"shape": shape, "dtype": "float32", "batch_dim": 0},
            "evaluation": {"output": "mean of the members' softmax outputs", "members": len(a["members"])}}
    jsonio.write_json(folder / "model.json", spec)
    if onnx:
        ensemble.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(ensemble, (torch.zeros(shape),), str(folder / "model.onnx"), dynamo=False,
                              input_names=["input"], output_names=["probabilities"],
                              dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}})
    return folder


def load_ensemble(path: str | Path) -> Ensemble:
    """The ensemble `save_ensemble` wrote to `path`, in eval mode (weights read with weights_only=True)."""
    folder = Path(path)
    spec = jsonio.read_json(folder / "model.json", "ensemble model.json")
    if not isinstance(spec, Mapping) or spec.get("format") != ENSEMBLE_FORMAT or "arch" not in spec:
        raise ConfigError(f"{folder / 'model.json'}: format: not a saved ensemble")
    space = EnsembleSpace(EnsembleConfig(**spec["space"]["config"]))
    module = space.build(spec["arch"])
    module.load_state_dict(torch.load(folder / str(spec["weights"]), map_location="cpu", weights_only=True))
    return module.eval()


def _path(obj: Any) -> str:
    path = f"{obj.__module__}.{obj.__qualname__}"
    module, _, name = path.rpartition(".")
    if getattr(importlib.import_module(module), name, None) is not obj:
        raise ConfigError(f"{path}: not importable by that name")
    return path
