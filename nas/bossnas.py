"""BossNAS (Li et al., ICCV 2021): block-wise self-supervised supernet training on a hybrid CNN/attention space.

The space (`HybridSpace`): a stem, then `blocks` blocks of `layers` layers each; every layer is a residual
convolution or a self-attention over positions (`conv` / `attn`), and every block chooses where it halves the
resolution (`none`, or before one of its layers: the searchable downsampling position).

Training needs no labels. The supernet is trained block by block (progressively, as the paper does): block b
sees the features of the blocks before it, frozen on their best-rated paths. Each step draws two augmented
views of a batch and `paths` block paths; the online network (the supernet) runs each path on both views and
projects and predicts (BYOL heads); the target network (an exponential moving average of the online one) runs
the same paths, and its projections averaged over the paths are the *ensemble target* of a view. Each online
path's prediction of one view is pulled to the ensemble target of the other view (2 - 2 cos, symmetrised).

Rating, label-free too: a block path's distance is that loss on held-out inputs (fixed views) against the
ensemble of all of the block's paths; an architecture's rating is the sum of its block paths' distances
(lower is better). `search_bossnas` journals every rating as a trial (objectives: `ssl_distance` min, `flops`
min), then retrains the Pareto-optimal architectures from scratch with labels (as the paper retrains the
found architecture), so `nas status`, `nas pareto` and `nas export` work on the workdir.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas import jsonio
from nas.architecture import Architecture
from nas.errors import ConfigError, check_count, check_number, check_seed
from nas.experiment import (SAME_SEARCH, check_options, check_recorded_digest, check_workdir,
                            open_experiment, search_config)
from nas.measure import accuracy_metric, count_metric
from nas.modelspec import TRIAL_WEIGHTS, DataRef, record_model, save_trial_weights
from nas.objectives import Problem
from nas.result import SearchResult
from nas.seeding import torch_seeded
from nas.spaces.model_space import ModelSpace
from nas.spaces.params import Choice
from nas.spaces.training import PlainTraining, accuracy
from nas.splits import DIGEST_KEY, check_splits, splits_digest
from nas.store import Trial

log = logging.getLogger(__name__)

__all__ = ["AttnLayer", "BossOptions", "BossSupernet", "ConvLayer", "HybridConfig", "HybridNet", "HybridSpace",
           "HybridSupernet", "augment", "byol_distance", "search_bossnas", "train_bossnas"]

OPS = ("conv", "attn")
NO_DOWN = "none"
STATE_FILE = "bossnas.json"
LABELS_KEY = "labels_sha1"  # in bossnas.json: the labels that retrain (the journal's data digest covers inputs only)
Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


# ---------------------------------------------------------------------------------------- the space
@dataclass(frozen=True)
class HybridConfig:
    """The frame of the hybrid space: input, width (the same in every layer), blocks x layers, attention heads."""

    input_shape: tuple[int, int, int] = (1, 8, 8)
    num_classes: int = 10
    channels: int = 16
    blocks: int = 2
    layers: int = 2  # per block
    heads: int = 2

    def __post_init__(self) -> None:
        """Every field a positive int (numpy ints taken as Python ints): a float or string size was truncated or
        compared with ints, and failed later against the data's shape or as a TypeError."""
        shape = tuple(self.input_shape) if isinstance(self.input_shape, Iterable) and \
            not isinstance(self.input_shape, str) else ()
        if len(shape) != 3 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
                                      for v in shape):
            raise ConfigError(f"HybridConfig.input_shape: expected (channels, height, width) of positive ints, got "
                              f"{self.input_shape!r}")
        object.__setattr__(self, "input_shape", tuple(int(v) for v in shape))
        for name in ("num_classes", "channels", "blocks", "layers", "heads"):
            object.__setattr__(self, name, check_count(getattr(self, name), f"HybridConfig.{name}"))
        if self.channels % self.heads:
            raise ConfigError(f"HybridConfig.heads: {self.heads} heads do not divide {self.channels} channels")
        side = min(self.input_shape[1:])
        if side < 2 ** self.blocks:
            raise ConfigError(f"HybridConfig.blocks: {self.blocks} downsamplings do not fit a {side}-pixel input")

    def to_dict(self) -> dict[str, Any]:
        return jsonio.plain(asdict(self), "HybridConfig")

    def downs(self) -> tuple[str, ...]:
        """A block's downsampling positions: `none`, or before layer l (`l0`, `l1`, ...)."""
        return (NO_DOWN,) + tuple(f"l{i}" for i in range(self.layers))


def _field(block: int, layer: int) -> str:
    return f"b{block}_l{layer}"


def _down_field(block: int) -> str:
    return f"b{block}_down"


class ConvLayer(nn.Module):
    """A residual convolution layer: relu(x + bn(conv(relu(bn(conv(x))))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class AttnLayer(nn.Module):
    """Self-attention over the positions of a (N, C, H, W) map (a transformer layer, pre-norm), with a
    depthwise-convolution position encoding, so it works at any resolution."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.pos = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.norm1 = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        t = (x + self.pos(x)).flatten(2).transpose(1, 2)
        q = self.norm1(t)
        t = t + self.attn(q, q, q, need_weights=False)[0]
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape(n, c, h, w)


def _make_op(kind: str, cfg: HybridConfig) -> nn.Module:
    return ConvLayer(cfg.channels) if kind == "conv" else AttnLayer(cfg.channels, cfg.heads)


def _stem(cfg: HybridConfig) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cfg.input_shape[0], cfg.channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(cfg.channels), nn.ReLU())


class HybridNet(nn.Module):
    """One architecture of a `HybridSpace` as plain torch modules (stem, layers with their pooling, head)."""

    def __init__(self, arch: Mapping[str, Any], config: HybridConfig) -> None:
        super().__init__()
        self.stem = _stem(config)
        layers: list[nn.Module] = []
        for b in range(config.blocks):
            for i in range(config.layers):
                op = _make_op(arch[_field(b, i)], config)
                layers.append(nn.Sequential(nn.AvgPool2d(2), op) if arch[_down_field(b)] == f"l{i}" else op)
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(config.channels, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)).mean(dim=(2, 3)))


class HybridSupernet(nn.Module):
    """Every candidate of every layer side by side (no weight shared between conv and attention; pooling has
    no weights): `supernet(x, arch)`, `run_block(b, h, arch)` and `subnet(arch)`."""

    def __init__(self, space: "HybridSpace") -> None:
        super().__init__()
        self.space, cfg = space, space.config
        self.stem = _stem(cfg)
        self.blocks = nn.ModuleList(nn.ModuleList(nn.ModuleDict({k: _make_op(k, cfg) for k in OPS})
                                                  for _ in range(cfg.layers)) for _ in range(cfg.blocks))
        self.head = nn.Linear(cfg.channels, cfg.num_classes)

    def run_block(self, b: int, h: torch.Tensor, arch: Mapping[str, Any]) -> torch.Tensor:
        """Block `b` of `arch` (only its own fields are read) on features `h`."""
        down = arch[_down_field(b)]
        for i, layer in enumerate(self.blocks[b]):
            if down == f"l{i}":
                h = F.avg_pool2d(h, 2)
            h = layer[arch[_field(b, i)]](h)
        return h

    def features(self, x: torch.Tensor, arch: Mapping[str, Any], blocks: int | None = None) -> torch.Tensor:
        """The feature map after the first `blocks` blocks (all by default) of `arch`."""
        h = self.stem(x)
        for b in range(self.space.config.blocks if blocks is None else blocks):
            h = self.run_block(b, h, arch)
        return h

    def forward(self, x: torch.Tensor, arch: Mapping[str, Any]) -> torch.Tensor:
        return self.head(self.features(x, arch).mean(dim=(2, 3)))

    @torch.no_grad()
    def subnet(self, arch: Mapping[str, Any]) -> HybridNet:
        """A standalone `HybridNet` holding copies of `arch`'s weights."""
        cfg = self.space.config
        a = self.space.validate(arch)
        net = HybridNet(a, cfg)
        net.stem.load_state_dict(self.stem.state_dict())
        for k, (b, i) in enumerate(itertools.product(range(cfg.blocks), range(cfg.layers))):
            target = net.layers[k][1] if isinstance(net.layers[k], nn.Sequential) else net.layers[k]
            target.load_state_dict(self.blocks[b][i][a[_field(b, i)]].state_dict())
        net.head.load_state_dict(self.head.state_dict())
        return net.train(self.training)


class HybridSpace(ModelSpace):
    """`b{block}_l{layer}` in {conv, attn} and `b{block}_down` in {none, l0, l1, ...} for every block."""

    def __init__(self, config: HybridConfig | None = None) -> None:
        cfg = config or HybridConfig()
        fields: dict[str, Choice] = {}
        for b in range(cfg.blocks):
            for i in range(cfg.layers):
                fields[_field(b, i)] = Choice(list(OPS), ordered=False)
            fields[_down_field(b)] = Choice(list(cfg.downs()), ordered=False)
        super().__init__(fields)
        self.config = cfg

    def build(self, arch: Mapping[str, Any]) -> HybridNet:
        return HybridNet(self.validate(arch), self.config)

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> torch.Tensor:
        return torch.zeros(batch_size, *self.config.input_shape)

    def supernet(self) -> HybridSupernet:
        return HybridSupernet(self)

    def block_fields(self, b: int) -> list[str]:
        return [_field(b, i) for i in range(self.config.layers)] + [_down_field(b)]

    def block_paths(self, b: int) -> list[dict[str, str]]:
        """Every path of block `b` (its fields only): len(OPS) ** layers x (layers + 1) of them."""
        names = self.block_fields(b)
        return [dict(zip(names, (*ops, down))) for ops in itertools.product(OPS, repeat=self.config.layers)
                for down in self.config.downs()]

    def block_key(self, arch: Mapping[str, Any], b: int) -> str:
        """`arch`'s path in block `b` as a short string, e.g. `conv-attn@l1`."""
        return "-".join(arch[_field(b, i)] for i in range(self.config.layers)) + f"@{arch[_down_field(b)]}"


# ---------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class BossOptions:
    """Settings of block-wise self-supervised training (small CPU defaults) and of the label-free rating."""

    epochs: int = 12  # per block (passes over the training inputs)
    batch_size: int = 64
    paths: int = 4  # block paths per step: the target network's ensemble
    lr: float = 2e-3  # AdamW, cosine-annealed per block
    weight_decay: float = 1e-4
    momentum: float = 0.99  # EMA of the target network, raised to 1 along each block's steps (cosine)
    proj_dim: int = 32
    hidden: int = 64
    shift: float = 1.0  # views: random translations of up to this many pixels,
    rotate: float = 10.0  # rotations of up to this many degrees, scaling by 1 +- `scale`,
    scale: float = 0.1
    noise: float = 0.2  # and additive Gaussian noise (inputs are standardised)
    rating_views: int = 2  # fixed view pairs the rating averages over
    retrain_epochs: int = 10  # `search_bossnas`: supervised retraining of the Pareto-optimal architectures (0: none)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "paths", "proj_dim", "hidden", "rating_views"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: expected a positive int, got {v!r}")
        if isinstance(self.retrain_epochs, bool) or not isinstance(self.retrain_epochs, int) or self.retrain_epochs < 0:
            raise ConfigError(f"retrain_epochs: expected an int >= 0, got {self.retrain_epochs!r}")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size: batch norm needs >= 2, got {self.batch_size}")
        check_number(self.lr, "lr")  # finite: inf and NaN failed only as 'config: not plain JSON'
        for name in ("weight_decay", "shift", "rotate", "scale", "noise"):
            check_number(getattr(self, name), name, positive=False)
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum: expected 0 <= momentum < 1, got {self.momentum!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def augment(x: torch.Tensor, options: BossOptions, generator: torch.Generator) -> torch.Tensor:
    """A random view of every image in `x` (N, C, H, W): an affine jitter (shift, rotation, scale) and noise."""
    n, _, h, w = x.shape
    u = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731  uniform in [-1, 1]
    angle = u() * math.radians(options.rotate)
    s = 1 + u() * options.scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = s * torch.cos(angle), -s * torch.sin(angle)
    theta[:, 1, 0], theta[:, 1, 1] = s * torch.sin(angle), s * torch.cos(angle)
    theta[:, 0, 2], theta[:, 1, 2] = u() * 2 * options.shift / w, u() * 2 * options.shift / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    return out + options.noise * torch.randn(out.shape, generator=generator)


def byol_distance(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(prediction, target) per row: the BYOL regression loss (0 when aligned, 4 when opposite)."""
    return 2 - 2 * F.cosine_similarity(prediction, target.detach(), dim=-1)


def _mlp(cin: int, options: BossOptions) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, options.hidden), nn.BatchNorm1d(options.hidden), nn.ReLU(),
                         nn.Linear(options.hidden, options.proj_dim))


class _Heads(nn.Module):
    """A block's projector (pooled features -> embedding) and predictor (online only)."""

    def __init__(self, channels: int, options: BossOptions) -> None:
        super().__init__()
        self.projector = _mlp(channels, options)
        self.predictor = _mlp(options.proj_dim, options)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return self.projector(h.mean(dim=(2, 3)))


@dataclass(eq=False)
class BossSupernet:
    """The trained online supernet, its per-block heads and target copies, the best path of every block, the
    loss of every epoch per block, and the label-free block distances (`rate`)."""

    space: HybridSpace
    supernet: HybridSupernet
    heads: nn.ModuleList
    targets: list[tuple[nn.Module, _Heads]]  # per block: (EMA supernet, EMA heads) as they ended that block
    best: dict[str, str]  # the best-rated path of every block, fields of all blocks together
    losses: list[list[float]]  # per block, the mean loss of each epoch
    distances: list[dict[str, float]] = field(default_factory=list)  # per block: block_key -> distance
    seconds: float = 0.0

    def rate(self, arch: Mapping[str, Any]) -> dict[str, float]:
        """`ssl_distance` (the sum over blocks, lower is better) and each `block{b}_distance` of `arch`."""
        arch = self.space.validate(arch)
        per = [self.distances[b][self.space.block_key(arch, b)] for b in range(self.space.config.blocks)]
        return {"ssl_distance": float(sum(per)), **{f"block{b}_distance": d for b, d in enumerate(per)}}

    def summary(self) -> dict[str, Any]:
        return {"best": dict(self.best), "losses": self.losses, "distances": self.distances,
                "seconds": round(self.seconds, 2)}


def _check_inputs(x: Any, space: HybridSpace, name: str, batch_size: int | None = None) -> torch.Tensor:
    """`x` as inputs of `space`; with `batch_size`, at least that many (else the batch size is named), without
    it at least 2 (the rating's batch norm; else `name` is)."""
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != space.config.input_shape:
        got = tuple(x.shape[1:]) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"{name}: expected a tensor of inputs shaped (N, {', '.join(map(str, space.config.input_shape))})"
                          f", got {got}")
    if batch_size is not None and len(x) < batch_size:
        raise ConfigError(f"batch_size: {batch_size} exceeds the {len(x)} inputs of {name}")
    if len(x) < 2:
        raise ConfigError(f"{name}: {len(x)} input; the label-free rating needs >= 2 (batch norm)")
    return x


def train_bossnas(space: HybridSpace, x: torch.Tensor, x_rate: torch.Tensor,
                  options: BossOptions | Mapping[str, Any] | None = None, seed: int = 0) -> BossSupernet:
    """Train the supernet block by block without labels on the inputs `x`, rating each block's paths on the
    inputs `x_rate` when it is done (its best path then feeds the next block). Labels are never seen."""
    options = check_options(options, BossOptions)
    seed = check_seed(seed)
    if not isinstance(space, HybridSpace):
        raise ConfigError(f"space: BossNAS trains a HybridSpace, got {type(space).__name__}")
    x = _check_inputs(x, space, "x", options.batch_size)
    x_rate = _check_inputs(x_rate, space, "x_rate")
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    with torch_seeded(seed):
        online = space.supernet()
        heads = nn.ModuleList(_Heads(space.config.channels, options) for _ in range(space.config.blocks))
    online.train()
    heads.train()
    best: dict[str, str] = {}
    losses: list[list[float]] = []
    distances: list[dict[str, float]] = []
    targets: list[tuple[nn.Module, _Heads]] = []
    per_epoch = len(x) // options.batch_size
    for b in range(space.config.blocks):
        paths = space.block_paths(b)
        trained = ([online.stem] if b == 0 else []) + [online.blocks[b], heads[b]]
        params = [p for m in trained for p in m.parameters()]
        opt = torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay)
        total = max(1, options.epochs * per_epoch)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
        target, target_heads = copy.deepcopy(online), copy.deepcopy(heads[b])
        for p in itertools.chain(target.parameters(), target_heads.parameters()):
            p.requires_grad_(False)
        step, epoch_losses = 0, []
        for _ in range(options.epochs):
            order, running = torch.randperm(len(x), generator=gen), 0.0
            for k in range(per_epoch):
                xb = x[order[k * options.batch_size:(k + 1) * options.batch_size]]
                v1, v2 = augment(xb, options, gen), augment(xb, options, gen)
                hs, ths = _block_inputs(online, target, b, best, v1, v2)
                chosen = [paths[i] for i in rng.choice(len(paths), min(options.paths, len(paths)), replace=False)]
                loss = _distances(online, heads[b], target, target_heads, b, hs, ths, chosen, chosen).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                tau = 1 - (1 - options.momentum) * (math.cos(math.pi * step / total) + 1) / 2
                _ema(target, online, tau)
                _ema(target_heads, heads[b], tau)
                running += float(loss.detach())
            epoch_losses.append(running / max(1, per_epoch))
            log.info("BossNAS block %d epoch %d/%d loss %.4f", b, len(epoch_losses), options.epochs, epoch_losses[-1])
        losses.append(epoch_losses)
        targets.append((target, target_heads))
        dist = _rate_block(space, online, heads[b], target, target_heads, b, best, x_rate, options, seed)
        distances.append(dist)
        key = min(dist, key=lambda k: (dist[k], k))
        best.update(next(p for p in paths if space.block_key({**best, **p}, b) == key))
        log.info("BossNAS block %d: best path %s (distance %.4f)", b, key, dist[key])
    return BossSupernet(space, online, heads, targets, best, losses, distances, time.perf_counter() - t0)


def _block_inputs(online: HybridSupernet, target: HybridSupernet, b: int, best: Mapping[str, str], v1: torch.Tensor,
                  v2: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Block `b`'s inputs for the views (online, target): block 0 trains with the stem (each network its own);
    a later block gets the features of the blocks before it, frozen on their best paths (the same for both)."""
    if b == 0:
        return (online.stem(v1), online.stem(v2)), (target.stem(v1), target.stem(v2))
    with torch.no_grad():
        hs = (online.features(v1, best, b), online.features(v2, best, b))
    return hs, hs


def _distances(online: HybridSupernet, heads: _Heads, target: HybridSupernet, target_heads: _Heads, b: int,
               hs: tuple[torch.Tensor, torch.Tensor], ths: tuple[torch.Tensor, torch.Tensor],
               paths: Sequence[Mapping[str, Any]], ensemble: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """[paths, N]: each online path's prediction of one view against the ensemble target of the other view (the
    target network's projections averaged over `ensemble`), symmetrised. `hs` / `ths`: the two views' inputs
    to block `b` of the online / target network."""
    with torch.no_grad():
        t1 = torch.stack([target_heads.project(target.run_block(b, ths[0], q)) for q in ensemble]).mean(0)
        t2 = torch.stack([target_heads.project(target.run_block(b, ths[1], q)) for q in ensemble]).mean(0)
    rows = []
    for p in paths:
        z1 = heads.predictor(heads.project(online.run_block(b, hs[0], p)))
        z2 = heads.predictor(heads.project(online.run_block(b, hs[1], p)))
        rows.append((byol_distance(z1, t2) + byol_distance(z2, t1)) / 2)
    return torch.stack(rows)


@torch.no_grad()
def _ema(target: nn.Module, online: nn.Module, tau: float) -> None:
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(tau).add_(o.detach(), alpha=1 - tau)
    for t, o in zip(target.buffers(), online.buffers()):
        t.copy_(o)


@torch.no_grad()
def _rate_block(space: HybridSpace, online: HybridSupernet, heads: _Heads, target: HybridSupernet,
                target_heads: _Heads, b: int, best: Mapping[str, str], x: torch.Tensor, options: BossOptions,
                seed: int) -> dict[str, float]:
    """Every path of block `b`: the mean distance of its online predictions to the ensemble target of all the
    block's paths, over `rating_views` fixed view pairs of `x` (batch statistics in batch norm: no labels, no
    recalibration set)."""
    paths = space.block_paths(b)
    gen = torch.Generator().manual_seed(10_000 + seed)
    sums = np.zeros(len(paths))
    for _ in range(options.rating_views):
        v1, v2 = augment(x, options, gen), augment(x, options, gen)
        hs, ths = _block_inputs(online, target, b, best, v1, v2)
        sums += _distances(online, heads, target, target_heads, b, hs, ths, paths, paths).mean(1).numpy()
    return {space.block_key({**best, **p}, b): float(s / options.rating_views) for p, s in zip(paths, sums)}


# ---------------------------------------------------------------------------------------- the driver
def _inputs(data: Mapping[str, Any], split: str) -> torch.Tensor:
    """The inputs of `split`, given as (x, y) or as x alone (unlabelled)."""
    if split not in data:
        raise ConfigError(f"data: missing the {split!r} split (give {{'train': x or (x, y), 'valid': ...}})")
    value = data[split]
    return value[0] if isinstance(value, (tuple, list)) else value


def _labelled(data: Mapping[str, Any], split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(x, y) of `split`, or None when it has no labels (given as x alone or as (x, None))."""
    value = data.get(split)
    paired = isinstance(value, (tuple, list)) and len(value) == 2 and value[1] is not None
    return (value[0], value[1]) if paired else None


def _check_data(splits: Any, space: HybridSpace, options: BossOptions) -> None:
    """Before any training: known split names, train and valid present, none empty, inputs of the space's
    shape, a batch's worth of train inputs, 2 valid inputs, and one class index of the space per input where a split
    is (x, y) (a label out of range was an IndexError at retraining, after the whole supernet had trained)."""
    check_splits(splits, ("train", "valid"), input_shape=space.config.input_shape, labels=None,
                 min_size=options.batch_size, size_field="batch_size", sized=("train",),
                 num_classes=space.config.num_classes, classes_field="HybridConfig.num_classes")
    n = len(_inputs(splits, "valid"))
    if n < 2:
        raise ConfigError(f"data['valid']: {n} input; the label-free rating needs >= 2 (batch norm)")


def _no_retraining(splits: Mapping[str, Any], options: BossOptions) -> str | None:
    """Why `search_bossnas` retrains (and so can export) no architecture, or None when it retrains the front."""
    if options.retrain_epochs == 0:
        why = "retrain_epochs is 0"
    elif _labelled(splits, "train") is None or _labelled(splits, "valid") is None:
        why = "the data has no labels (give 'train' and 'valid' as (x, y) to retrain)"
    else:
        return None
    return (f"no architecture was retrained: {why}; the workdir holds the label-free ratings only, so "
            "`nas export` has no trained model to write")


def _todo(space: HybridSpace, archs: Sequence[Mapping[str, Any]] | int | None, seed: int) -> list[Architecture]:
    if archs is None:
        return list(space)
    if isinstance(archs, numbers.Integral):  # numpy ints too
        if isinstance(archs, bool) or archs < 1:
            raise ConfigError(f"archs: expected a positive number, a list of architectures or None, got {archs!r}")
        archs = int(archs)
        rng, chosen = np.random.default_rng(seed), {}
        for _ in range(100 * archs):  # bounded: a space smaller than `archs` gives all it has
            a = space.sample(rng)
            chosen.setdefault(a.id, a)
            if len(chosen) == min(archs, space.size()):
                break
        return list(chosen.values())
    if not isinstance(archs, Iterable) or isinstance(archs, (str, Mapping)):
        raise ConfigError(f"archs: expected a positive number, a list of architectures or None, got "
                          f"{type(archs).__name__}")
    unique: dict[str, Architecture] = {}
    for a in archs:  # a repeat is rated once
        arch = space.validate(a)
        unique.setdefault(arch.id, arch)
    if not unique:  # as archs=0: else the whole supernet trained to rate nothing
        raise ConfigError("archs: expected a positive number, a list of architectures or None, got an empty list")
    return list(unique.values())


def search_bossnas(space: HybridSpace, data: Mapping[str, Any] | DataRef, archs: Sequence[Mapping[str, Any]] | int |
                   None = None, options: BossOptions | Mapping[str, Any] | None = None, seed: int = 0,
                   workdir: str | Path | None = None, metadata: Mapping[str, Any] | None = None) -> SearchResult:
    """Train the supernet without labels, journal every architecture's rating as a trial, then retrain the
    Pareto-optimal ones from scratch with labels (when `data` has them and `options.retrain_epochs` > 0).

    `data` maps "train" and "valid" to (x, y) or to inputs x alone, or is a `DataRef` naming such splits
    (then `nas export` re-measures validation accuracy). The supernet trains on the train inputs and rates
    on the valid inputs. `archs`: the architectures to rate (a repeat is rated once), a number of distinct
    samples, or None for the whole space; the journal's budget is the number of distinct architectures rated in
    the workdir. `options` may be a dict of `BossOptions` fields. Each trial holds `ssl_distance` (lower is
    better), `block{b}_distance`, `params`, `flops`, `macs`; the objectives are `ssl_distance` (min) and `flops`
    (min). The best block paths, the losses and every block distance go to `bossnas.json` as soon as every
    rating is journaled, the retrained accuracies as each network is done. Rerunning on the same workdir
    retrains the supernet (deterministic for a seed) only when an architecture is not yet journaled or
    `bossnas.json` lacks the supernet's results; other data (even of the same size) is refused, naming the
    split. Without labels (or with `retrain_epochs` 0) nothing is retrained, no model spec is recorded, and
    `bossnas.json` says so under `not_retrained`.
    """
    options = check_options(options, BossOptions)
    seed = check_seed(seed)
    if not isinstance(space, HybridSpace):
        raise ConfigError(f"space: BossNAS trains a HybridSpace, got {type(space).__name__}")
    ref = data if isinstance(data, DataRef) else None
    splits = data.load() if ref is not None else data
    _check_data(splits, space, options)
    x, x_rate = _inputs(splits, "train"), _inputs(splits, "valid")
    skipped = _no_retraining(splits, options)
    todo = _todo(space, archs, seed)
    problem = Problem.make({"ssl_distance": "min", "flops": "min"})
    meta = {"one_shot": True, "bossnas": True, "data": {k: len(_inputs(splits, k)) for k in splits},
            DIGEST_KEY: splits_digest({k: _inputs(splits, k) for k in splits}), **dict(metadata or {})}
    config = search_config(space, problem, "bossnas", options.to_dict(), seed, len(todo), None, meta)
    wd = Path(workdir) if workdir is not None else None
    recorded = check_recorded_digest(wd, config, DIGEST_KEY, "data")
    if recorded is not None:  # the budget: every architecture rated once, those journaled by earlier calls too
        config["budget"] = len({t.arch_id for t in recorded.trials} | {a.id for a in todo})
    labels = None if skipped is not None else splits_digest({k: _labelled(splits, k) for k in ("train", "valid")})
    if labels is not None and wd is not None and (wd / STATE_FILE).is_file():  # labels may come later, not change
        check_workdir(wd, config, SAME_SEARCH + ("metadata",))  # other inputs are named first
        was_state = jsonio.read_json(wd / STATE_FILE, "BossNAS state")
        was = was_state.get(LABELS_KEY)  # binding once a network retrained on them: before, other labels may come
        if was is not None and was_state.get("retrained") and was != labels:
            split = next(k for k in labels if was.get(k) != labels[k])
            raise ConfigError(f"data[{split!r}]: its labels differ from those that retrained the networks in {wd} "
                              f"(use a new workdir, or the same labels)")
    with open_experiment(wd, config, compare=SAME_SEARCH + ("metadata",), lower_budget=True) as experiment:
        if wd is not None and skipped is None:  # how `nas export` rebuilds the retrained networks
            metrics = {"params": count_metric("params"), "flops": count_metric("flops")}
            if ref is not None:
                metrics["accuracy"] = accuracy_metric("valid", scale=1.0)
            record_model(wd, space, data=ref, metrics=metrics, notes={"search": "bossnas"})
        done = {t.arch_id for t in experiment.trials}
        state: dict[str, Any] = jsonio.read_json(wd / STATE_FILE, "BossNAS state") \
            if wd is not None and (wd / STATE_FILE).is_file() else {}
        if any(a.id not in done for a in todo) or (wd is not None and "best" not in state):
            boss = train_bossnas(space, x, x_rate, options, seed)
            state = {**state, **boss.summary()}  # merged: retrained networks of an earlier run stay
            for arch in todo:
                if arch.id in done:
                    continue
                started = time.time()
                metrics = {**boss.rate(arch), **space.count(arch)}
                extra = {"blocks": [space.block_key(arch, b) for b in range(space.config.blocks)],
                         "best_paths": dict(boss.best)}
                experiment.record(Trial(len(experiment.trials), arch.to_dict(), arch.id, metrics, "ok", started,
                                        time.time(), "local", None, extra))
                done.add(arch.id)
        result = SearchResult(list(experiment.trials), problem, wd, "rated", experiment.config)
        if wd is not None:
            state["retrained"] = dict(state.get("retrained", {}))
            state.pop("not_retrained", None)
            if not state["retrained"]:  # `_retrain` records the labels with the first network they retrain
                state.pop(LABELS_KEY, None)
            if skipped is not None and not state["retrained"]:
                state["not_retrained"] = skipped
                log.warning("BossNAS: %s", skipped)
            jsonio.write_json(wd / STATE_FILE, state)  # the search's results first: a kill while retraining keeps them
            if skipped is None:
                _retrain(space, splits, result, options, seed, wd, state, labels)
        return result


def _retrain(space: HybridSpace, splits: Mapping[str, Any], result: SearchResult, options: BossOptions, seed: int,
             wd: Path, state: dict[str, Any], labels: Mapping[str, str] | None) -> None:
    """Train every Pareto-optimal architecture not yet retrained from scratch with labels (weights saved for
    `nas export`), adding {arch_id: {"trial", "valid_accuracy"}} to `state["retrained"]`, with the labels' digest
    `labels` under `LABELS_KEY`, and rewriting `bossnas.json` after each one (labels and `retrain_epochs` > 0 are
    checked by the caller)."""
    train, valid = _labelled(splits, "train"), _labelled(splits, "valid")
    if train is None or valid is None:
        return
    out = state["retrained"]
    for trial in result.pareto_front():
        if trial.arch_id in out and (wd / TRIAL_WEIGHTS / f"{trial.arch_id}.pt").is_file():
            continue
        with torch_seeded(seed):
            net = space.build(trial.arch)
        PlainTraining(options.retrain_epochs, min(options.batch_size, len(train[0])), seed=seed).fit(net, *train)
        net.eval()
        save_trial_weights(wd, trial.arch, net)
        out[trial.arch_id] = {"trial": trial.number, "valid_accuracy": accuracy(net, *valid)}
        state[LABELS_KEY] = labels  # from now on other labels are refused (`search_bossnas`)
        jsonio.write_json(wd / STATE_FILE, state)
