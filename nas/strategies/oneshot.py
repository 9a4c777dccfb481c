"""The training loop of the one-shot (DARTS-family) strategies on a cell supernet, with plain-data checkpoints.

`OneShotTrainer` owns a `CellSupernet`, its two optimisers and its random generators, and runs the
bilevel search one epoch at a time: network weights on the train split (SGD, cosine schedule), the
architecture parameters on the valid split (Adam), either first-order (alternating) or second-order
(DARTS's unrolled step with the finite-difference Hessian-vector product), or RARTS's single-level relaxed
step (a second copy of the weights on the valid split, coupled by a penalty). An optional differentiable
latency term (ProxylessNAS) adds `latency_weight * E[cost] / E_uniform[cost]` to the architecture loss.
`cosine_power_annealing` (sharpDARTS) can replace the cosine schedule of the weights' learning rate and of
the hard Gumbel-softmax temperature.
`state_dict()` holds tensors and plain data only, so `torch.load(..., weights_only=True)` restores it.
Each epoch runs under a fork of torch's global generator seeded from the trainer's own (`torch_generator`,
checkpointed), so random ops of a user's model (dropout) repeat with the seed and on resume, and the caller's
global generator is left as it was.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from nas.errors import ConfigError, check_number, check_seed
from nas.jsonio import python_scalar
from nas.seeding import torch_seeded
from nas.spaces.cell import BinaryGates, CellSupernet, DartsSpace, MixWeights, NasBench201Space, softmax_mixing
from nas.strategies.oneshot_latency import EdgeCosts, latency_scale

log = logging.getLogger(__name__)

Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]
PARAMETER_FREE = frozenset({"none", "skip_connect", "avg_pool_3x3", "max_pool_3x3"})


class Synchroniser(Protocol):
    """How data-parallel workers stay in step (Ray Train): averaged gradients, buffers and statistics."""

    def gradients(self, params: list[torch.Tensor]) -> None:
        """Replace each parameter's gradient by its mean over the workers."""

    def buffers(self, module: torch.nn.Module) -> None:
        """Make the module's buffers (batch-norm statistics) equal on every worker."""

    def mean(self, value: float) -> float:
        """The mean of a scalar over the workers."""


@dataclass(frozen=True)
class Method:
    """What distinguishes one member of the DARTS family (looked up by name in `METHODS`)."""

    name: str
    description: str
    second_order: bool = False
    partial_channels: bool = False  # PC-DARTS: 1/K of the channels through the mixed ops ...
    edge_normalisation: bool = False  # ... and per-edge betas
    binary_gates: bool = False  # ProxylessNAS: one sampled path per edge, straight-through gradient
    gumbel: bool = False  # GDAS-style: one path per edge from a hard Gumbel-softmax, straight-through gradient
    relaxed: bool = False  # RARTS: single-level relaxed problem, a second weight copy on the valid split


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("darts", "DARTS, first order (Liu et al. 2019): alternate weight and alpha steps"),
    Method("darts2", "DARTS, second order: alpha gradient through one unrolled weight step", second_order=True),
    Method("pc-darts", "PC-DARTS (Xu et al. 2020): partial channel connections and edge normalisation",
           partial_channels=True, edge_normalisation=True),
    Method("proxyless", "ProxylessNAS (Cai et al. 2019): binarised sampled paths, differentiable latency loss",
           binary_gates=True),
    Method("rarts", "RARTS (Xue et al. 2021): single-level relaxed search, weights w on train and y on valid "
           "coupled by a penalty, first order", relaxed=True),
    Method("gumbel-hard", "Hard Gumbel-softmax (GDAS, Dong & Yang 2019): one path per edge from "
           "argmax(alpha + Gumbel noise), straight-through gradient, annealed temperature", gumbel=True),
)}


def cosine_power_annealing(t: float, total: float, high: float, low: float, power: float = 10.0) -> float:
    """sharpDARTS's cosine power annealing (Hundt et al. 2019) of a value from `high` (t = 0) to `low` (t = total).

    With c(t) = (1 + cos(pi * t / total)) / 2 and power p > 1:
    value(t) = low + (high - low) * (p ** (c(t) + 1) - p) / (p ** 2 - p); p = 1 is the limit, plain cosine
    annealing low + (high - low) * c(t). A larger p drops faster early and flattens late.
    """
    if total <= 0 or power < 1:
        raise ConfigError(f"cosine_power_annealing: expected total > 0 and power >= 1, got {total!r}, {power!r}")
    c = (1 + math.cos(math.pi * min(max(t, 0.0), total) / total)) / 2
    share = c if power == 1 else (power ** (c + 1) - power) / (power ** 2 - power)
    return low + (high - low) * share


@dataclass
class GumbelHardGates:
    """Hard Gumbel-softmax paths (GDAS): per edge the op argmax(alpha + g), g ~ Gumbel(0, 1), is the only one
    computed; its weight is one in value with the gradient of softmax((alpha + g) / tau) (straight through).
    `k > 1` (an InputChoice picking k inputs) takes the top k of alpha + g: k distinct options sampled from
    softmax(alpha) without replacement (the Gumbel-top-k trick), each gated the same way."""

    generator: torch.Generator | None = None
    tau: float = 1.0

    def __call__(self, alpha: torch.Tensor, k: int = 1) -> MixWeights:
        u = torch.rand(alpha.shape, generator=self.generator).clamp_(1e-10, 1.0 - 1e-7)
        soft = F.softmax((alpha - torch.log(-torch.log(u))) / self.tau, dim=-1)
        index = soft.detach().argmax(-1, keepdim=True) if k == 1 else soft.detach().topk(k, dim=-1).indices
        hard = torch.zeros_like(soft).scatter_(-1, index, 1.0)
        return MixWeights(hard - soft.detach() + soft, hard.bool())


@dataclass(frozen=True)
class DartsOptions:
    """Settings of a one-shot search (defaults follow DARTS / PC-DARTS, scaled to small CPU runs)."""

    method: str = "darts"
    epochs: int = 20
    batch_size: int = 64
    w_lr: float = 0.025  # SGD on the weights, cosine-annealed to w_lr_min over `epochs`
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    a_lr: float = 3e-4  # Adam on the architecture parameters
    a_weight_decay: float = 1e-3
    warmup_epochs: int = 0  # epochs of weight training before the alphas move (PC-DARTS uses 15 of 50); < epochs
    partial_channels: int = 2  # K for pc-darts
    latency_weight: float = 0.0  # lambda of the latency loss (relative to the uniform-alpha expected cost)
    latency: str = "auto"  # "lut" (lookup table, ms), "flops" (analytic proxy), "off"; auto: lut if weighted
    early_stop: str = "none"  # "none" or "eigenvalue" (DARTS-ES, Zela et al. 2020)
    es_window: int = 5  # epochs averaged for the smoothed dominant eigenvalue (Zela et al.: 5)
    es_lag: int = 5  # compare with the smoothed eigenvalue this many epochs back (k = 5) ...
    es_ratio: float = 0.75  # ... stop when old / new < es_ratio, returning the architecture of that epoch
    hessian_batch: int = 128  # valid samples for the Hessian eigenvalue
    hessian_iters: int = 8  # power iterations
    track_eigenvalue: bool = False  # compute it every epoch even without early stopping
    retrain_epochs: int = 30  # stand-alone training of a derived architecture (the default evaluator)
    retrain_lr: float = 3e-3
    record: str = "final"  # journal the final architecture, or "epochs": every distinct one derived per epoch
    schedule: str = "cosine"  # w_lr (and the gumbel-hard temperature) annealing: "cosine" or "cosine-power"
    schedule_power: float = 10.0  # p of cosine power annealing (sharpDARTS)
    tau_max: float = 10.0  # gumbel-hard temperature, annealed from tau_max to tau_min over `epochs` (GDAS)
    tau_min: float = 0.1
    relax_weight: float = 1.0  # RARTS: lambda of the valid loss of the second weight copy y ...
    relax_penalty: float = 0.1  # ... and beta of the coupling (beta / 2) * ||w - y||^2
    hvp_radius: float = 0.01  # darts2's finite-difference step eps = hvp_radius / ||dL_val/dw'|| (DARTS: 0.01);
    # 0: the exact hypergradient by a double backward instead (exact_unrolled_grads)

    def __post_init__(self) -> None:
        for f in fields(self):  # numpy scalars (np.int64(3), np.float32(0.01)) as their Python twins: checked, JSON
            if isinstance(getattr(self, f.name), np.generic):
                object.__setattr__(self, f.name, python_scalar(getattr(self, f.name)))
        if self.method not in METHODS:
            raise ConfigError(f"method: unknown {self.method!r} (known: {', '.join(METHODS)})")
        for name in ("epochs", "batch_size", "partial_channels", "es_window", "es_lag", "hessian_batch",
                     "hessian_iters", "retrain_epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}: expected a positive int, got {v!r}")
        v = self.warmup_epochs
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"warmup_epochs: expected a non-negative int, got {v!r}")
        if v >= self.epochs:
            raise ConfigError(f"warmup_epochs: {v} >= epochs ({self.epochs}): the alphas would never take a step, and "
                              "the derived architecture would be the argmax of their random initialisation")
        if self.grad_clip == math.inf:  # the journal holds the options as JSON, which has no infinity
            raise ConfigError("grad_clip: expected a finite number > 0, got inf (a large value such as 1e6 leaves the "
                              "gradients unclipped)")
        for name in ("w_lr", "w_lr_min", "a_lr", "retrain_lr", "grad_clip", "tau_max", "tau_min", "relax_weight",
                     "schedule_power"):
            check_number(getattr(self, name), name)
        for name in ("w_momentum", "w_weight_decay", "a_weight_decay", "latency_weight", "relax_penalty",
                     "hvp_radius", "es_ratio"):
            check_number(getattr(self, name), name, positive=False)
        for high, low, what in (("w_lr", "w_lr_min", "the weights' learning rate"),
                                ("tau_max", "tau_min", "gumbel-hard's temperature")):
            if getattr(self, high) < getattr(self, low):
                raise ConfigError(f"{high}, {low}: {what} is annealed from {high} down to {low}, but {high} "
                                  f"({getattr(self, high)!r}) < {low} ({getattr(self, low)!r}) would raise it over "
                                  f"the search; give {low} <= {high} (equal values hold it constant)")
        if self.w_momentum >= 1:
            raise ConfigError(f"w_momentum: expected 0 <= w_momentum < 1, got {self.w_momentum!r}")
        if self.latency not in ("auto", "lut", "flops", "off"):
            raise ConfigError(f"latency: expected 'auto', 'lut', 'flops' or 'off', got {self.latency!r}")
        if self.latency == "off" and self.latency_weight > 0:
            raise ConfigError("latency: 'off' but latency_weight > 0 needs a cost ('lut' or 'flops')")
        if self.early_stop not in ("none", "eigenvalue"):
            raise ConfigError(f"early_stop: expected 'none' or 'eigenvalue', got {self.early_stop!r}")
        if self.spec.binary_gates or self.spec.gumbel:
            for name, on in (("early_stop", self.early_stop == "eigenvalue"),
                             ("track_eigenvalue", self.track_eigenvalue)):
                if on:
                    raise ConfigError(f"{name}: the Hessian eigenvalue needs a deterministic supernet; "
                                      f"{self.method} samples paths")
        if not 0 < self.es_ratio < 1:
            raise ConfigError(f"es_ratio: expected 0 < es_ratio < 1, got {self.es_ratio!r}")
        if self.record not in ("final", "epochs"):
            raise ConfigError(f"record: expected 'final' or 'epochs', got {self.record!r}")
        if self.schedule not in ("cosine", "cosine-power"):
            raise ConfigError(f"schedule: expected 'cosine' or 'cosine-power', got {self.schedule!r}")
        if not self.schedule_power >= 1:
            raise ConfigError(f"schedule_power: expected >= 1, got {self.schedule_power!r}")

    @property
    def spec(self) -> Method:
        return METHODS[self.method]

    def annealed(self, epoch: int, high: float, low: float) -> float:
        """A value annealed from `high` (epoch 0) to `low` (epoch `epochs`) by `schedule`."""
        power = self.schedule_power if self.schedule == "cosine-power" else 1.0
        return cosine_power_annealing(epoch, self.epochs, high, low, power)

    @property
    def latency_source(self) -> str:
        """The resolved cost source: 'lut', 'flops' or 'off'."""
        if self.latency == "auto":
            return "lut" if self.latency_weight > 0 or self.spec.binary_gates else "off"
        return self.latency

    def to_dict(self) -> dict[str, Any]:
        """Every setting, except those added later (`LATER_OPTIONS`) while at their defaults: a workdir
        journaled before they existed still resumes as the same search."""
        defaults = DartsOptions()
        return {k: v for k, v in asdict(self).items() if k not in LATER_OPTIONS or v != getattr(defaults, k)}


LATER_OPTIONS = ("schedule", "schedule_power", "tau_max", "tau_min", "relax_weight", "relax_penalty", "hvp_radius")
"""`DartsOptions` fields added after searches were first journaled (2026-12-04)."""


@dataclass
class EpochRecord:
    """What one search epoch did and left: losses, accuracies, alphas, the derived architecture (plain data)."""

    epoch: int
    train_loss: float
    train_acc: float
    valid_loss: float
    valid_acc: float
    alphas: dict[str, list[list[float]]]
    op_weights: dict[str, list[list[float]]]
    derived: dict[str, Any]
    parameter_free: float  # fraction of the derived cell's ops that are none / skip / pooling
    skip: float  # fraction that are skip_connect
    expected_cost: float | None = None
    eigenvalue: float | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cell_ops(space: NasBench201Space | DartsSpace, arch: Mapping[str, Any]) -> list[str]:
    """Every op of the derived cell(s), over all cell kinds."""
    return [op for kind in space.edge_ops(arch).values() for op in kind.values()]


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


class OneShotTrainer:
    """A cell supernet under search: weights, alphas, optimisers, generators and per-epoch history."""

    def __init__(self, space: NasBench201Space | DartsSpace, options: DartsOptions, seed: int = 0,
                 costs: EdgeCosts | None = None) -> None:
        spec = options.spec
        seed = check_seed(seed)  # a numpy integer as its int, which torch's generators take
        self.space, self.options, self.costs, self.seed = space, options, costs, seed
        self.gate_generator = torch.Generator().manual_seed(seed + 1)
        self.data_generator = torch.Generator().manual_seed(seed)
        # the global generator's state while an epoch runs (dropout and other random ops of a user's model)
        self.torch_generator = torch.Generator().manual_seed(seed + 2)
        mixing = BinaryGates(self.gate_generator) if spec.binary_gates else \
            GumbelHardGates(self.gate_generator, options.tau_max) if spec.gumbel else softmax_mixing
        with torch_seeded(seed):  # seeded initial weights without touching the global generator
            self.supernet = self.build_supernet(mixing)
        self.weights = self.supernet.weight_parameters()
        self.arch = self.supernet.arch_parameters()
        self.twin: torch.nn.Module | None = None  # RARTS's second weight copy y (sharing the alphas), trained on valid
        self.twin_weights: list[torch.Tensor] = []
        if spec.relaxed:
            self.twin = copy.deepcopy(self.supernet)
            self.twin.alphas, self.twin.betas = self.supernet.alphas, self.supernet.betas
            self.twin_weights = self.twin.weight_parameters()
        self.w_opt = torch.optim.SGD(self.weights, lr=options.w_lr, momentum=options.w_momentum,
                                     weight_decay=options.w_weight_decay)
        if self.twin_weights:  # y: a second group of the same SGD, so one schedule anneals both
            self.w_opt.add_param_group({"params": self.twin_weights})
        self.a_opt = torch.optim.Adam(self.arch, lr=options.a_lr, betas=(0.5, 0.999),
                                      weight_decay=options.a_weight_decay)
        self.schedule: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_opt, options.epochs, eta_min=options.w_lr_min) if options.schedule == "cosine" else \
            torch.optim.lr_scheduler.LambdaLR(self.w_opt, lambda e: options.annealed(
                e, options.w_lr, options.w_lr_min) / options.w_lr)
        self.cost_scale = latency_scale(costs, options.latency_weight)
        self.epoch = 0
        self.history: list[EpochRecord] = []
        self.sync: Synchroniser | None = None  # set by data-parallel training (nas.ray.train.train_oneshot)

    def build_supernet(self, mixing: Any) -> CellSupernet:
        """The supernet under search (a subclass searches another kind: `nas.strategies.oneshot_modules`)."""
        if not isinstance(self.space, (NasBench201Space, DartsSpace)):
            raise ConfigError(f"space: {type(self.space).__name__} has no cell supernet "
                              "(use NasBench201Space, DartsSpace or a nas.nn model's space)")
        spec = self.options.spec
        return self.space.supernet(mixing=mixing, partial_channels=self.options.partial_channels
                                   if spec.partial_channels else 1, edge_normalisation=spec.edge_normalisation)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape, as the data must have it."""
        return tuple(self.space.net.input_shape)

    def num_classes(self) -> int | None:
        """How many class scores the supernet outputs (labels must be below it); None when not known."""
        return int(self.space.net.num_classes)

    def chosen_ops(self, arch: Mapping[str, Any]) -> Any:
        """What the derived architecture chose, for the journal: every op of its cell(s)."""
        return cell_ops(self.space, arch)

    def op_shares(self, arch: Mapping[str, Any]) -> tuple[float, float]:
        """Shares of the derived cell's ops that are parameter-free, and that are skip connections."""
        ops = cell_ops(self.space, arch)
        return sum(o in PARAMETER_FREE for o in ops) / len(ops), sum(o == "skip_connect" for o in ops) / len(ops)

    # -- architecture weights and losses
    def op_probabilities(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) per kind (times the normalised betas with edge normalisation), differentiable."""
        out = {}
        for kind, alpha in self.supernet.alphas.items():
            w = F.softmax(alpha, dim=-1)
            scales = self.supernet.edge_scales(kind)
            out[kind] = w if scales is None else w * scales[:, None]
        return out

    def expected_cost(self) -> torch.Tensor | None:
        """E[cost] of the cell ops under the current alphas (ms from a table, or MFLOPs), or None without costs."""
        if self.costs is None:
            return None
        return self.costs.expected({k: F.softmax(a, dim=-1) for k, a in self.supernet.alphas.items()})

    def _arch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(self.supernet(x), y)
        if self.options.latency_weight > 0 and self.costs is not None:
            loss = loss + self.options.latency_weight * self.expected_cost() / self.cost_scale
        return loss

    # -- steps
    def weight_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        self.w_opt.zero_grad(set_to_none=True)
        logits = self.supernet(x)
        loss = F.cross_entropy(logits, y)
        self._guard(loss, "train loss", x)
        loss.backward()
        if self.sync is not None:
            self.sync.gradients(self.weights)
        torch.nn.utils.clip_grad_norm_(self.weights, self.options.grad_clip)
        self.w_opt.step()
        return float(loss.detach()), float((logits.argmax(-1) == y).float().mean())

    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor) -> None:
        """One update of the alphas on a valid batch (second order: through a virtual weight step on `xt`)."""
        self.a_opt.zero_grad(set_to_none=True)
        if self.options.spec.second_order:
            grads = self._unrolled_grads(xt, yt, xv, yv) if self.options.hvp_radius > 0 else \
                self.exact_unrolled_grads(xt, yt, xv, yv)
            for p, g in zip(self.arch, grads):
                if not bool(torch.isfinite(g).all()) and self._finite_arch():
                    raise _NonFinite("architecture gradient", math.nan, xv)
                p.grad = g
        else:
            loss = self._arch_loss(xv, yv)
            self._guard(loss, "valid loss", xv)
            loss.backward()
        if self.sync is not None:
            self.sync.gradients(self.arch)
        self.a_opt.step()
        for p in self.weights:  # the weights' gradients from the alpha problem are not theirs to use
            p.grad = None

    def relaxed_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor
                     ) -> tuple[float, float]:
        """RARTS on L(w, y, a) = L_train(w, a) + lambda * L_val(y, a) + (beta / 2) * ||w - y||^2, Gauss-Seidel in
        w then y; the alpha gradient is collected from the same two passes, so no second derivatives."""
        o, twin = self.options, self.twin
        if twin is None:
            raise ConfigError(f"method: relaxed_step is RARTS's step, this trainer runs {o.method!r}")
        self.w_opt.zero_grad(set_to_none=True)
        self.a_opt.zero_grad(set_to_none=True)
        logits = self.supernet(xt)
        loss = F.cross_entropy(logits, yt)
        self._guard(loss, "train loss", xt)
        (loss + o.relax_penalty / 2 * _distance(self.weights, self.twin_weights)).backward()
        self._clipped_step(self.weights)
        valid = o.relax_weight * F.cross_entropy(twin(xv), yv)
        self._guard(valid, "valid loss", xv, twin)
        if o.latency_weight > 0 and self.costs is not None:
            valid = valid + o.latency_weight * self.expected_cost() / self.cost_scale
        (valid + o.relax_penalty / 2 * _distance(self.twin_weights, self.weights)).backward()
        self._clipped_step(self.twin_weights)
        if self.sync is not None:
            self.sync.gradients(self.arch)
        self.a_opt.step()
        return float(loss.detach()), float((logits.argmax(-1) == yt).float().mean())

    def _guard(self, loss: torch.Tensor, what: str, x: torch.Tensor, module: torch.nn.Module | None = None) -> None:
        """`_NonFinite` when `loss` (from the batch `x`, by `module`: None for the supernet) is not finite though the
        alphas are, so the search stops before the step that would spread it (alphas that are already not finite are
        reported as such after the batch)."""
        value = float(loss.detach())
        if not math.isfinite(value) and self._finite_arch():
            raise _NonFinite(what, value, x, module)

    def _finite_arch(self) -> bool:
        return all(bool(torch.isfinite(a).all()) for a in self.arch)

    def _clipped_step(self, params: list[torch.Tensor]) -> None:
        """Step the SGD on `params` (the others have no gradient, so SGD leaves them), then clear their grads."""
        if self.sync is not None:
            self.sync.gradients(params)
        torch.nn.utils.clip_grad_norm_(params, self.options.grad_clip)
        self.w_opt.step()
        for p in params:
            p.grad = None

    def _unrolled_grads(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor
                        ) -> list[torch.Tensor]:
        """DARTS eq. 7-8: dL_val(w', a)/da - xi * (dL_train(w+, a)/da - dL_train(w-, a)/da) / (2 eps)."""
        w, a = self.weights, self.arch
        xi = self.w_opt.param_groups[0]["lr"]
        momentum, decay = self.options.w_momentum, self.options.w_weight_decay
        saved = [p.detach().clone() for p in w]
        g_train = _grads(F.cross_entropy(self.supernet(xt), yt), w)
        with torch.no_grad():  # the virtual step w' = w - xi * (momentum buffer + grad + decay * w)
            for p, g in zip(w, g_train):
                buf = self.w_opt.state.get(p, {}).get("momentum_buffer")
                step = g + decay * p + (momentum * buf if buf is not None else 0.0)
                p.sub_(xi * step)
        g_val = _grads(self._arch_loss(xv, yv), a + w)
        da, dw = g_val[:len(a)], g_val[len(a):]
        eps = self.options.hvp_radius / max(float(torch.sqrt(sum((g * g).sum() for g in dw))), 1e-12)
        grads_pm = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, s, d in zip(w, saved, dw):
                    p.copy_(s + sign * eps * d)
            grads_pm.append(_grads(F.cross_entropy(self.supernet(xt), yt), a))
        with torch.no_grad():
            for p, s in zip(w, saved):
                p.copy_(s)
        return [d - xi * (gp - gn) / (2 * eps) for d, gp, gn in zip(da, *grads_pm)]

    def exact_unrolled_grads(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor
                             ) -> list[torch.Tensor]:
        """What `_unrolled_grads` approximates, d L_val(w - xi * step(w, a), a) / da with the same virtual SGD step,
        by autograd through that step (exact second derivatives, a double backward): the reference to check it by."""
        w, a = self.weights, self.arch
        xi = self.w_opt.param_groups[0]["lr"]
        momentum, decay = self.options.w_momentum, self.options.w_weight_decay
        names = {id(p): n for n, p in self.supernet.named_parameters()}
        g_train = torch.autograd.grad(F.cross_entropy(self.supernet(xt), yt), w, create_graph=True, allow_unused=True)
        virtual = {}
        for p, g in zip(w, g_train):
            buf = self.w_opt.state.get(p, {}).get("momentum_buffer")
            step = (0.0 if g is None else g) + decay * p + (momentum * buf if buf is not None else 0.0)
            virtual[names[id(p)]] = p - xi * step
        loss = F.cross_entropy(torch.func.functional_call(self.supernet, virtual, (xv,)), yv)
        if self.options.latency_weight > 0 and self.costs is not None:
            loss = loss + self.options.latency_weight * self.expected_cost() / self.cost_scale
        return _grads(loss, a)

    # -- epochs
    def train_epoch(self, data: Splits) -> EpochRecord:
        """One epoch over the train split (alphas stepped on valid batches after the warm-up), then evaluation,
        with torch's global generator at `torch_generator`'s state (restored for the caller afterwards)."""
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.torch_generator.get_state())
            record = self._train_epoch(data)
            self.torch_generator.set_state(torch.get_rng_state())
        return record

    def _train_epoch(self, data: Splits) -> EpochRecord:
        t0 = time.perf_counter()
        (xt, yt), (xv, yv) = data["train"], data["valid"]
        bs = self.options.batch_size
        train_batches = _batches(len(xt), bs, self.data_generator)
        valid_batches = _batches(len(xv), bs, self.data_generator)
        search_alphas = self.epoch >= self.options.warmup_epochs
        if isinstance(self.supernet.mixing, GumbelHardGates):
            self.supernet.mixing.tau = self.options.annealed(self.epoch, self.options.tau_max, self.options.tau_min)
        self.supernet.train()
        losses, accs = [], []
        for b, idx in enumerate(train_batches):
            jdx = valid_batches[b % len(valid_batches)]
            where = f"epoch {self.epoch + 1}, batch {b + 1}"
            used = [("train", xt[idx])] + ([("valid", xv[jdx])] if search_alphas else [])
            try:
                if search_alphas and self.twin is not None:
                    loss, acc = self.relaxed_step(xt[idx], yt[idx], xv[jdx], yv[jdx])
                else:
                    if search_alphas:
                        self.arch_step(xt[idx], yt[idx], xv[jdx], yv[jdx])
                    loss, acc = self.weight_step(xt[idx], yt[idx])
            except _NonFinite as e:  # caught before the step that would have spread it into the weights
                self._check_finite(where, e.value, used, e.what, e.x, e.module)
                raise  # not reached: the value is not finite, so _check_finite raised
            self._check_finite(where, loss, used)
            losses.append(loss)
            accs.append(acc)
        self.schedule.step()
        self.epoch += 1
        if self.sync is not None:
            self.sync.buffers(self.supernet)
            if self.twin is not None:
                self.sync.buffers(self.twin)
        valid_loss, valid_acc = self.evaluate(xv, yv)
        self._check_finite(f"epoch {self.epoch}, on the valid split", valid_loss, [("valid", xv)], "valid loss")
        eig = None
        if self.options.early_stop == "eigenvalue" or self.options.track_eigenvalue:
            eig = self.hessian_eigenvalue(xv[:self.options.hessian_batch], yv[:self.options.hessian_batch])
        train_loss, train_acc = sum(losses) / len(losses), sum(accs) / len(accs)
        if self.sync is not None:  # every worker records (and early-stops on) the same numbers
            train_loss, train_acc, valid_loss, valid_acc = (self.sync.mean(v) for v in
                                                            (train_loss, train_acc, valid_loss, valid_acc))
            eig = None if eig is None else self.sync.mean(eig)
        derived = self.supernet.derive()
        parameter_free, skip = self.op_shares(derived)
        cost = self.expected_cost()
        record = EpochRecord(
            epoch=self.epoch, train_loss=train_loss, train_acc=train_acc,
            valid_loss=valid_loss, valid_acc=valid_acc,
            alphas={k: a.detach().tolist() for k, a in self.supernet.alphas.items()},
            op_weights={k: w.tolist() for k, w in self.supernet.op_weights().items()},
            derived=derived.to_dict(), parameter_free=parameter_free, skip=skip,
            expected_cost=None if cost is None else float(cost.detach()), eigenvalue=eig,
            seconds=time.perf_counter() - t0)
        self.history.append(record)
        log.info("epoch %d: train loss %.3f acc %.3f, valid loss %.3f acc %.3f, parameter-free %.2f, derived %s",
                 record.epoch, record.train_loss, record.train_acc, valid_loss, valid_acc, record.parameter_free,
                 record.derived)
        return record

    def _check_finite(self, where: str, loss: float, inputs: list[tuple[str, torch.Tensor]],
                      what: str = "train loss", batch: torch.Tensor | None = None,
                      module: torch.nn.Module | None = None) -> None:
        """ConfigError as soon as the search diverges (a NaN or infinite loss or architecture parameter), naming the
        epoch and the cause: non-finite inputs in a split, a part of the model whose output is not finite on
        `batch` (the inputs of the loss, checked before its step), else the step sizes. Raised before the epoch is
        recorded or checkpointed, so no NaN architecture is derived, journaled or resumed from."""
        bad = [f"the {what} is {loss}"] if not math.isfinite(loss) else []
        if not self._finite_arch():
            bad.append("the architecture parameters are not finite")
        if not bad:
            return
        diverged = f"the one-shot search diverged at {where} ({' and '.join(bad)})"
        for split, x in inputs:
            if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                raise ConfigError(f"data[{split!r}]: the inputs hold NaN or infinite values, so {diverged}; clean or "
                                  "impute the data")
        source = self.non_finite_source(batch, module) if batch is not None else None
        if source is not None:
            raise ConfigError(f"{diverged}: {source}")
        o = self.options
        raise ConfigError(f"{diverged}; lower w_lr ({o.w_lr}), a_lr ({o.a_lr}) or grad_clip ({o.grad_clip})")

    def non_finite_source(self, x: torch.Tensor, module: torch.nn.Module | None = None) -> str | None:
        """What in the supernet turns the finite batch `x` into non-finite values, in words (None: not known; a
        subclass over a user's model names the candidate)."""
        return None

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> tuple[float, float]:
        """(mean cross entropy, accuracy) of the supernet in eval mode."""
        self.supernet.eval()
        loss = correct = 0.0
        for i in range(0, len(x), batch_size):
            logits = self.supernet(x[i:i + batch_size])
            loss += float(F.cross_entropy(logits, y[i:i + batch_size], reduction="sum"))
            correct += float((logits.argmax(-1) == y[i:i + batch_size]).sum())
        self.supernet.train()
        return loss / len(x), correct / len(x)

    def hessian_eigenvalue(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """The largest (dominant positive) eigenvalue of the valid loss's Hessian in the alphas, DARTS-ES's signal.

        Power iteration finds the eigenvalue of largest magnitude; when that is negative (a saddle: early in a search
        the curvature is noise around 0 of either sign), a second power iteration on the shifted H - value * I,
        whose eigenvalues are then >= 0, finds the largest, value + its dominant one. `hessian_iters` each."""
        self.supernet.eval()
        alphas = list(self.supernet.alphas.values())
        gen = torch.Generator().manual_seed(self.epoch)
        try:
            grads = torch.autograd.grad(F.cross_entropy(self.supernet(x), y), alphas, create_graph=True)

            def dominant(shift: float) -> float:
                """The eigenvalue of largest magnitude of H - shift * I, from a random start."""
                v = [torch.randn(a.shape, generator=gen) for a in alphas]
                value = 0.0
                for _ in range(self.options.hessian_iters):
                    norm = math.sqrt(sum(float((t * t).sum()) for t in v))
                    if norm == 0:  # v is in the null space: its Rayleigh quotient, 0, is the value
                        break
                    v = [t / norm for t in v]
                    hv = [h.detach() for h in torch.autograd.grad(grads, alphas, grad_outputs=v, retain_graph=True)]
                    if shift:
                        hv = [h - shift * t for h, t in zip(hv, v)]
                    value = float(sum((h * t).sum() for h, t in zip(hv, v)))
                    v = hv
                return value

            value = dominant(0.0)
            if value < 0:
                value += dominant(value)
        finally:
            self.supernet.train()
        return value

    def early_stop_epoch(self) -> int | None:
        """DARTS-ES: the epoch whose architecture to return once the smoothed eigenvalue grew by 1/es_ratio (over the
        epochs after the warm-up only)."""
        if self.options.early_stop != "eigenvalue":
            return None
        o = self.options
        return darts_es_stop([r.eigenvalue for r in self.history], o.es_window, o.es_lag, o.es_ratio,
                             o.warmup_epochs)

    # -- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain data only: loadable with `torch.load(path, weights_only=True)`."""
        return {"epoch": self.epoch, "supernet": self.supernet.state_dict(), "w_opt": self.w_opt.state_dict(),
                "a_opt": self.a_opt.state_dict(), "schedule": self.schedule.state_dict(),
                "data_generator": self.data_generator.get_state(), "gate_generator": self.gate_generator.get_state(),
                "torch_generator": self.torch_generator.get_state(), "history": [r.to_dict() for r in self.history],
                **({"twin": self.twin.state_dict()} if self.twin is not None else {})}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.supernet.load_state_dict(state["supernet"])
        if self.twin is not None:
            self.twin.load_state_dict(state["twin"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.schedule.load_state_dict(state["schedule"])
        self.data_generator.set_state(state["data_generator"])
        self.gate_generator.set_state(state["gate_generator"])
        if "torch_generator" in state:  # a checkpoint written before it was kept resumes with the seeded state
            self.torch_generator.set_state(state["torch_generator"])
        self.epoch = int(state["epoch"])
        self.history = [EpochRecord(**r) for r in state["history"]]


def darts_es_stop(eigenvalues: list[float | None], window: int, lag: int, ratio: float,
                  warmup: int = 0) -> int | None:
    """Zela et al.'s rule on the largest eigenvalues of epochs 1..n: with mean(e) the average over `window` epochs
    ending at epoch e, stop when both means are positive and mean(n - lag) / mean(n) < ratio, and return epoch
    n - lag (None: keep going). Only epochs after the `warmup` ones count (their alphas moved), so the epoch returned
    is never a warm-up one, whose architecture is the alphas' random initial argmax; a mean that is not positive is
    no growing curvature (noise around 0 of either sign early in a search), so it never stops the search."""
    searched = eigenvalues[warmup:]
    n = len(searched)
    if n < window + lag or any(e is None for e in searched):
        return None

    def smooth(end: int) -> float:
        return sum(searched[end - window:end]) / window  # type: ignore[arg-type]

    now, then = smooth(n), smooth(n - lag)
    return warmup + n - lag if now > 0 and then > 0 and then / now < ratio else None


def saved_activation_bytes(run: Callable[[], Any], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd saves for the backward of what `run()` computes, less those of
    `exclude` (pass the parameters): the activation memory a training step keeps alive, counted not sampled."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()  # the graph under `out` keeps every saved storage alive, so no address is reused mid-run
    del out
    return sum(saved.values())


class _NonFinite(Exception):
    """A step's loss (or architecture gradient) is not finite: raised before the optimiser steps on it."""

    def __init__(self, what: str, value: float, x: torch.Tensor, module: torch.nn.Module | None = None) -> None:
        super().__init__(f"the {what} is {value}")
        self.what, self.value, self.x, self.module = what, value, x, module


def _distance(params: list[torch.Tensor], others: list[torch.Tensor]) -> torch.Tensor:
    """||params - others||^2 with `others` held constant (RARTS's coupling, differentiated in `params` only)."""
    return sum(((p - q.detach()) ** 2).sum() for p, q in zip(params, others))  # type: ignore[return-value]


def _grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """d loss / d params, zeros for parameters the loss does not use."""
    gs = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]
