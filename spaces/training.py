"""Training schedules for weight-sharing supernets, batch-norm recalibration and the weight-inheritance evaluator.

* `ProgressiveShrinking` (Once-for-All, Cai et al. 2020): train the full network, then make one more
  dimension elastic per phase (kernel -> depth -> width), distilling from the frozen full network and
  sorting channels by importance before widths become elastic.
* `SandwichRule` (BigNAS, Yu et al. 2020): one stage; each step trains the largest subnet on the labels
  and the smallest plus `n_random` random subnets on the largest one's predictions (in-place distillation).
* `SinglePath` (SPOS, Guo et al. 2020): each step trains one architecture sampled uniformly, on the labels.
* `PlainTraining`: ordinary training of one standalone network (the from-scratch baseline).
* `recalibrate_bn`: batch-norm statistics of one subnet (calibration batches weighted by their samples), needed
  because shared running statistics mix all the subnets trained.
* `InheritedAccuracy`: the evaluator `evaluate(arch) -> {"accuracy": ...}` of a subnet with weights
  inherited from a trained supernet (BN recalibrated, no training).

A supernet here is any module called as `supernet(x, arch)` with `supernet.subnet(arch)` and a `space`
offering `largest()`, `smallest()` and `sample_subnet(rng, elastic)` (see `nas.spaces.ofa.OFASpace`;
`ProgressiveShrinking` refuses a space whose `sample_subnet` takes no `elastic`, or names none it knows).

Every `fit` runs under a fork of torch's global generator seeded with the schedule's `seed`, so random ops of the
network (dropout) repeat with the seed and the caller's global generator is left as it was; empty data, non-finite
inputs, inputs of another float dtype than the network's and labels that are not a 1-D int64 vector of class
indices >= 0 are refused up front (a ConfigError naming `x` or `y`), and a step whose loss is not finite stops the training (a ConfigError naming the epoch, the step
and the architecture) before the optimiser steps on it.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError, NASError, check_int, check_number
from nas.seeding import torch_seeded

__all__ = ["InheritedAccuracy", "Phase", "PhaseLog", "PlainTraining", "ProgressiveShrinking", "SandwichRule",
           "SinglePath", "TrainLog", "accuracy", "distillation_loss", "diverged", "ofa_phases", "recalibrate_bn"]

log = logging.getLogger(__name__)

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
SHARED_PER_STEP = frozenset({"resolution"})
"""Top-level decisions drawn once per training step and shared by all its subnets when `per_step` is None (a space
without them ignores them)."""


@dataclass
class PhaseLog:
    """What one training phase did: mean loss per epoch and wall/CPU seconds."""

    name: str
    epochs: int
    steps: int
    seconds: float
    cpu_seconds: float
    epoch_losses: list[float]


@dataclass
class TrainLog:
    """The phases of one training run, in order."""

    phases: list[PhaseLog] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    @property
    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds for p in self.phases)


# ---------------------------------------------------------------------------------------- setting checks
def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: expected True or False, got {value!r}")


def _check_training(owner: str, schedule: Any, fields: Iterable[str] = ("epochs", "batch_size", "lr",
                                                                         "weight_decay", "seed")) -> None:
    """The settings schedules share: epochs >= 1, batch_size >= 2 (batch norm), lr and temperature > 0,
    weight_decay >= 0, seed >= 0 (numpy refuses negative seeds)."""
    minimum = {"epochs": 1, "batch_size": 2, "seed": 0}
    for name in fields:
        value, where = getattr(schedule, name), f"{owner}.{name}"
        if name in minimum:
            check_int(value, where, minimum[name])
        else:
            check_number(value, where, positive=name != "weight_decay")


def check_sandwich(owner: str, schedule: Any) -> None:
    """The sandwich rule's settings (`SandwichRule`'s, shared with `nas.ray.train.DistributedSandwich`): those of
    `_check_training` plus temperature > 0 and n_random >= 0, each error naming `owner.<field>`."""
    _check_training(owner, schedule, ("epochs", "batch_size", "lr", "weight_decay", "temperature", "seed"))
    check_int(schedule.n_random, f"{owner}.n_random", 0)


def _names(owner: str, value: Any) -> frozenset[str] | None:
    """`value` (a collection of decision names, or None) as a frozenset; a bare string is refused."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{owner}: expected a collection of decision names such as {{'resolution'}}, got {value!r}")
    names = frozenset(value)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise ConfigError(f"{owner}: expected decision names (str), got {bad[0]!r}")
    return names


def _per_step_keys(owner: str, space: Any, per_step: frozenset[str] | None) -> frozenset[str]:
    """The decisions shared per step: `per_step`, each a top-level single decision of the space's architectures
    (not one holding others, such as a list of stages, nor one deciding another field's block count or
    existence); None: `SHARED_PER_STEP` (the input resolution), which a space without it ignores."""
    if per_step is None:
        return SHARED_PER_STEP  # as drawn before per_step was checked, so seeded runs repeat exactly
    largest = space.largest()
    offered = frozenset(largest.keys())
    unknown = sorted(per_step - offered)
    if unknown:
        raise ConfigError(f"{owner}: unknown decision {unknown[0]!r} (the space's architectures have "
                          f"{', '.join(sorted(offered))})")
    for name in sorted(per_step):
        if isinstance(largest[name], (Mapping, list, tuple)):  # a Repeat's list of blocks, a nested Space
            raise ConfigError(f"{owner}: decision {name!r} holds other decisions (its value is a "
                              f"{type(largest[name]).__name__} of them), so sharing it would give every subnet of a "
                              "step the same random one: the largest and smallest networks would never be trained; "
                              "share single decisions no other field depends on, such as the input resolution")
    for name, node in getattr(space, "fields", {}).items():
        on = getattr(node, "on", None)  # a Conditional's controller
        count = getattr(getattr(node, "node", node), "count", None)  # a Repeat's (maybe under a Conditional)
        for controller, what in ((count, f"how many blocks {name!r} has"), (on, f"whether {name!r} exists")):
            if isinstance(controller, str) and controller in per_step:
                raise ConfigError(f"{owner}: per_step decision {controller!r} decides {what}, so one value "
                                  "cannot be shared by a step's subnets (its largest and smallest differ in it); "
                                  "share decisions no other field depends on, such as the input resolution")
    return per_step


# ---------------------------------------------------------------------------------------- shared parts
def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Soft-target cross entropy of student logits against (detached) teacher logits, scaled by T^2."""
    t = temperature
    target = F.softmax(teacher.detach() / t, dim=-1)
    return -(target * F.log_softmax(student / t, dim=-1)).sum(dim=-1).mean() * (t * t)


def _optimizer(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW without weight decay on batch-norm weights and biases (1-D parameters)."""
    decay = [p for p in module.parameters() if p.requires_grad and p.dim() > 1]
    rest = [p for p in module.parameters() if p.requires_grad and p.dim() <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr)


def check_labels(y: Any, n: int, name: str = "y") -> None:
    """`y` as `n` class indices: a 1-D integer (not bool) tensor; ConfigError naming `name` otherwise (a [n, 1]
    column or one-hot [n, C] labels would broadcast against the predictions and miscount)."""
    if not isinstance(y, torch.Tensor):
        raise ConfigError(f"{name}: expected a tensor of class indices, got {type(y).__name__}")
    if y.dim() != 1:
        raise ConfigError(f"{name}: labels must be a 1-D vector of class indices, got shape {tuple(y.shape)} "
                          "(squeeze a [n, 1] column; argmax one-hot labels)")
    if y.dtype == torch.bool or y.dtype.is_floating_point or y.dtype.is_complex:
        raise ConfigError(f"{name}: labels must be integer class indices (int64), got {y.dtype}")
    if len(y) != n:
        raise ConfigError(f"{name}: {len(y)} labels for {n} inputs")


def _check_data(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    """The training data: x a non-empty tensor of finite inputs, y one int64 class index >= 0 per input, and a
    batch size that batch norm can train on (2..len(x))."""
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"x: expected a tensor of inputs, got {type(x).__name__} (torch.as_tensor(x))")
    if len(x) == 0:
        raise ConfigError("x: the training data is empty")
    check_labels(y, len(x))
    if y.dtype != torch.long:  # cross entropy takes int64 targets
        raise ConfigError(f"y: labels must be integer class indices (int64), got {y.dtype} (convert with y.long())")
    if int(y.min()) < 0:
        raise ConfigError(f"y: label {int(y.min())} is negative (class indices are >= 0)")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):  # every step would train the weights to NaN
        raise ConfigError("x: the inputs hold NaN or infinite values (clean or impute them)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2 or batch_size > len(x):
        raise ConfigError(f"batch_size: expected 2..{len(x)} (batch norm needs >= 2), got {batch_size}")


def check_logits(logits: torch.Tensor, classes: int) -> torch.Tensor:
    """`logits` when it scores at least `classes` classes (the largest label + 1); ConfigError naming `y` otherwise,
    instead of cross entropy's "Target 3 is out of bounds"."""
    if logits.dim() < 1 or logits.shape[-1] < classes:
        raise ConfigError(f"y: label {classes - 1} is out of range for a network with "
                          f"{logits.shape[-1] if logits.dim() else 0} outputs (labels are 0..outputs-1)")
    return logits


def diverged(field: str, value: float, where: str, lr: float) -> ConfigError:
    """The error for a training loss that is NaN or infinite at `where` (e.g. "epoch 3, step 7"): it names `field`
    (the setting to change, or the module that diverged) and asks for a lower `lr`. One wording for every trainer."""
    return ConfigError(f"{field}: the training loss is {value} at {where}; lower lr ({lr})")


class _Diverged(ConfigError):
    """A step's loss is not finite (raised by `_finite_loss` inside a step, before its backward pass)."""

    def __init__(self, value: float, arch: Any) -> None:
        super().__init__(f"the training loss is {value}")
        self.value, self.arch = value, arch


def _finite_loss(loss: torch.Tensor, arch: Any = None) -> None:
    """`_Diverged` when `loss` (of the architecture `arch`; None: the only one) is NaN or infinite."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise _Diverged(value, arch)


_NEEDS_FLOAT = re.compile(r"must have the same dtype|type \(.*\) and (bias|weight) type|does not match weight dtype|"
                          r"not implemented for '(Long|Int|Short|Byte|Char|Bool)'")


def _integer_inputs(x: torch.Tensor, error: Exception) -> ConfigError | None:
    """The ConfigError naming `x` when integer inputs reached a layer that computes in floating point (torch:
    "mat1 and mat2 must have the same dtype"); None for any other error. Token ids are integers, so integer x is
    only wrong for a network that does not embed them first: found when the first layer refuses it."""
    if x.is_floating_point() or x.is_complex() or not _NEEDS_FLOAT.search(str(error)):
        return None
    said = str(error).splitlines()[0]
    return ConfigError(f"x: {x.dtype} inputs reached a layer that computes in floating point (torch: {said}); "
                       "convert them (x.float()), unless the network should embed them as token ids first")


def run_phase(name: str, module: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int,
              lr: float, weight_decay: float, generator: torch.Generator,
              step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], owner: str | None = None) -> PhaseLog:
    """AdamW with a per-step cosine schedule; `step(xb, yb)` runs the backward passes and returns the loss. A
    non-finite loss (returned, or raised as `_Diverged` by the step) is a ConfigError naming `owner` (default:
    `name`), the epoch, the step and the architecture, raised before the optimiser steps on it."""
    check_int(epochs, "epochs", 1)
    _check_data(x, y, batch_size)
    kinds = {p.dtype for p in module.parameters() if p.is_floating_point()}
    if x.is_floating_point() and kinds and x.dtype not in kinds:  # torch: "mat1 and mat2 must have the same dtype"
        raise ConfigError(f"x: {x.dtype} inputs for a {'/'.join(sorted(map(str, kinds)))} network (convert x, "
                          "e.g. x.float(), or the network)")
    per_epoch = len(x) // batch_size  # drop the last partial batch (reshuffled every epoch)
    opt = _optimizer(module, lr, weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * per_epoch))
    module.train()
    t0, c0, losses = time.perf_counter(), time.process_time(), []
    for epoch in range(epochs):
        order, total = torch.randperm(len(x), generator=generator), 0.0
        for b in range(per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            opt.zero_grad(set_to_none=True)
            try:
                value, arch = float(step(x[idx], y[idx])), None
            except _Diverged as e:
                value, arch = e.value, e.arch
            except (RuntimeError, NotImplementedError, ValueError) as e:
                refused = _integer_inputs(x, e)
                if refused is None:
                    raise
                raise refused from e
            if not math.isfinite(value):
                shown = arch.to_dict() if callable(getattr(arch, "to_dict", None)) else arch
                raise diverged(owner or name, value, f"epoch {epoch + 1}, step {b + 1}"
                               f"{'' if arch is None else f' (architecture {shown})'}", lr)
            total += value
            opt.step()
            sched.step()
        losses.append(total / max(1, per_epoch))
        log.info("%s epoch %d/%d loss %.4f", name, epoch + 1, epochs, losses[-1])
    return PhaseLog(name, epochs, epochs * per_epoch, time.perf_counter() - t0, time.process_time() - c0, losses)


def _random_subnet(space: Any, rng: np.random.Generator, elastic: Any = None) -> Any:
    """A random subnet: the space's `sample_subnet(rng[, elastic])`, else `sample(rng)` (no `elastic` then)."""
    sample = getattr(space, "sample_subnet", None)
    if sample is None:
        if elastic is not None:
            raise ConfigError(_no_elastic(space))
        return space.sample(rng)
    return sample(rng) if elastic is None else sample(rng, elastic)


def _no_elastic(space: Any) -> str:
    return (f"elastic: {type(space).__name__} has no sample_subnet(rng, elastic) to sample named dimensions "
            "(progressive shrinking needs one, as OFASpace and ElasticTransformerSpace have); train its supernet "
            "with SandwichRule or SinglePath")


def _check_elastic(space: Any, supernet: nn.Module, phase: "Phase") -> None:
    """Refuse, before any training, a phase the space cannot honour: no `sample_subnet(rng, elastic)`, an
    `elastic` name it does not know, or `sort_channels` on a supernet without `sort_channels()`."""
    sample = getattr(space, "sample_subnet", None)
    try:
        if sample is None:
            raise ConfigError(_no_elastic(space))
        try:
            inspect.signature(sample).bind(None, None)
        except TypeError:
            raise ConfigError(_no_elastic(space)) from None
        except ValueError:  # no signature to inspect (a builtin): let the call below tell
            pass
        _random_subnet(space, np.random.default_rng(0), phase.elastic)
    except ConfigError as e:
        raise ConfigError(f"Phase {phase.name!r}: {e}") from None
    if phase.sort_channels and not callable(getattr(supernet, "sort_channels", None)):
        raise ConfigError(f"Phase {phase.name!r}.sort_channels: {type(supernet).__name__} has no sort_channels() "
                          "to reorder channels by importance")


def _share(space: Any, arch: Any, shared: Mapping[str, Any]) -> Any:
    """`arch` with the step's shared top-level decisions (e.g. the input resolution) overriding its own."""
    values = {k: v for k, v in shared.items() if k in arch}
    return space.validate({**arch.to_dict(), **values}) if values else arch


def _draw_shared(space: Any, rng: np.random.Generator, keys: frozenset[str], elastic: Any = None) -> dict[str, Any]:
    """The decisions in `keys` drawn once for a step, as OFA draws one input resolution per batch."""
    if not keys:
        return {}
    ref = _random_subnet(space, rng, elastic)
    return {k: ref[k] for k in keys if k in ref}


def sandwich_subnets(space: Any, rng: np.random.Generator, n_random: int,
                     per_step: frozenset[str] = SHARED_PER_STEP) -> list[Any]:
    """One sandwich step's subnets: largest (the teacher), smallest, `n_random` random, sharing `per_step`."""
    shared = _draw_shared(space, rng, per_step)
    children = [space.smallest()] + [_random_subnet(space, rng) for _ in range(n_random)]
    return [_share(space, a, shared) for a in (space.largest(), *children)]


@contextmanager
def _training(owner: str, arch: Any) -> Iterator[None]:
    """A failure while `arch` runs forward and backward names it (a model may fail for some architectures only: a
    user model's derivation runs its largest and smallest), the model's error chained; a NASError, which says what
    is wrong itself, and KeyboardInterrupt pass as they are."""
    try:
        yield
    except NASError:
        raise
    except Exception as e:
        said = str(e).splitlines()[0] if str(e) else ""
        shown = arch.to_dict() if callable(getattr(arch, "to_dict", None)) else arch
        raise RuntimeError(f"{owner}: training architecture {shown} failed: {type(e).__name__}: {said}") from e


# ---------------------------------------------------------------------------------------- schedules
@dataclass
class PlainTraining:
    """Ordinary supervised training of one network (cross entropy, AdamW, cosine schedule)."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        _check_training("PlainTraining", self)

    def fit(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> TrainLog:
        gen = torch.Generator().manual_seed(self.seed)
        _check_data(x, y, self.batch_size)
        classes = int(y.max()) + 1

        def step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            loss = F.cross_entropy(check_logits(model(xb), classes), yb)
            _finite_loss(loss)
            loss.backward()
            return loss.detach()

        with torch_seeded(self.seed):
            return TrainLog([run_phase("plain", model, x, y, self.epochs, self.batch_size, self.lr,
                                       self.weight_decay, gen, step, "PlainTraining")])


@dataclass
class SandwichRule:
    """BigNAS single-stage training: per step the largest subnet learns from labels, the smallest and
    `n_random` random subnets from the largest's soft predictions (in-place distillation); one optimizer step.

    The decisions named in `per_step` (None: the input resolution, where the space has one) are drawn once
    per step and shared by all its subnets, as OFA resizes a whole batch: each child then distils from the
    largest network at its own input. A name the space's architectures lack is refused when `fit` starts.
    """

    epochs: int = 30
    n_random: int = 2
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    temperature: float = 1.0
    per_step: frozenset[str] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_sandwich("SandwichRule", self)
        self.per_step = _names("SandwichRule.per_step", self.per_step)

    def fit(self, supernet: nn.Module, x: torch.Tensor, y: torch.Tensor) -> TrainLog:
        space = supernet.space
        per_step = _per_step_keys("SandwichRule.per_step", space, self.per_step)
        _check_data(x, y, self.batch_size)
        classes = int(y.max()) + 1
        rng, gen = np.random.default_rng(self.seed), torch.Generator().manual_seed(self.seed)

        def step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            teacher, *children = sandwich_subnets(space, rng, self.n_random, per_step)
            with _training("SandwichRule", teacher):
                logits = supernet(xb, teacher)
                loss = F.cross_entropy(check_logits(logits, classes), yb)
                _finite_loss(loss, teacher)
                loss.backward()
            soft, total = logits.detach(), loss.detach()
            for arch in children:
                with _training("SandwichRule", arch):
                    kd = distillation_loss(supernet(xb, arch), soft, self.temperature)
                    _finite_loss(kd, arch)
                    kd.backward()
                total = total + kd.detach()
            return total

        with torch_seeded(self.seed):
            return TrainLog([run_phase("sandwich", supernet, x, y, self.epochs, self.batch_size, self.lr,
                                       self.weight_decay, gen, step, "SandwichRule")])


@dataclass
class SinglePath:
    """Uniform single-path one-shot training (SPOS, Guo et al. 2020): each step samples one architecture
    uniformly (the space's `sample_subnet`, else `sample`) and trains only its path on the labels."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        _check_training("SinglePath", self)

    def fit(self, supernet: nn.Module, x: torch.Tensor, y: torch.Tensor) -> TrainLog:
        space = supernet.space
        _check_data(x, y, self.batch_size)
        classes = int(y.max()) + 1
        rng, gen = np.random.default_rng(self.seed), torch.Generator().manual_seed(self.seed)

        def step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            arch = _random_subnet(space, rng)
            with _training("SinglePath", arch):
                loss = F.cross_entropy(check_logits(supernet(xb, arch), classes), yb)
                _finite_loss(loss, arch)
                loss.backward()
            return loss.detach()

        with torch_seeded(self.seed):
            return TrainLog([run_phase("single-path", supernet, x, y, self.epochs, self.batch_size, self.lr,
                                       self.weight_decay, gen, step, "SinglePath")])


@dataclass(frozen=True)
class Phase:
    """One progressive-shrinking phase: which dimensions are sampled (the rest at their largest value)."""

    name: str
    elastic: frozenset[str]
    epochs: int
    lr: float
    sort_channels: bool = False  # reorder channels by importance first (entering elastic width, as in OFA)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"Phase.name: expected a non-empty str, got {self.name!r}")
        owner = f"Phase {self.name!r}"
        object.__setattr__(self, "elastic", _names(f"{owner}.elastic", self.elastic))
        if self.elastic is None:
            raise ConfigError(f"{owner}.elastic: expected a collection of dimension names, got None")
        check_int(self.epochs, f"{owner}.epochs", 1)
        check_number(self.lr, f"{owner}.lr")
        _check_bool(f"{owner}.sort_channels", self.sort_channels)


def ofa_phases(full: int = 10, kernel: int = 6, depth: int = 6, width: int = 8, lr: float = 3e-3) -> tuple[Phase, ...]:
    """OFA's order: full network (elastic resolution) -> + kernel -> + depth -> + expand and width.

    Later phases start from a trained network, so they use a third of the full phase's learning rate.
    """
    for name, epochs in (("full", full), ("kernel", kernel), ("depth", depth), ("width", width)):
        check_int(epochs, f"ofa_phases.{name}", 1)
    check_number(lr, "ofa_phases.lr")
    dims = ["resolution"]
    phases = [Phase("full", frozenset(dims), full, lr)]
    for name, extra, epochs in (("kernel", ["kernel"], kernel), ("depth", ["depth"], depth),
                                ("width", ["expand", "width"], width)):
        dims = dims + extra
        phases.append(Phase(name, frozenset(dims), epochs, lr / 3, sort_channels=name == "width"))
    return tuple(phases)


@dataclass
class ProgressiveShrinking:
    """Once-for-All progressive shrinking. After the first phase the full network is frozen as the
    teacher; each later step trains `subnets_per_step` sampled subnets on labels + `kd_ratio` x distillation.
    With `include_largest`, the largest subnet joins every later step's sample as well (BigNAS's sandwich
    rule inside the phases), so shrinking cannot drift the weights away from it.
    The `per_step` decisions (None: the input resolution, where the space has one) are drawn once per step,
    for the teacher too.
    `after_phase(phase, supernet)`, when given, runs after each phase (e.g. to measure the largest subnet
    before shrinking starts); it must leave the supernet's weights alone."""

    phases: tuple[Phase, ...] = field(default_factory=ofa_phases)
    subnets_per_step: int = 2
    include_largest: bool = False
    kd_ratio: float = 1.0
    batch_size: int = 128
    weight_decay: float = 1e-4
    temperature: float = 1.0
    per_step: frozenset[str] | None = None
    seed: int = 0
    after_phase: Callable[[Phase, nn.Module], None] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.phases, (str, Mapping)) or not isinstance(self.phases, Iterable):
            raise ConfigError(f"ProgressiveShrinking.phases: expected a sequence of Phase, got {self.phases!r}")
        self.phases = tuple(self.phases)
        if not self.phases:
            raise ConfigError("ProgressiveShrinking.phases: give at least one phase")
        bad = [p for p in self.phases if not isinstance(p, Phase)]
        if bad:
            raise ConfigError(f"ProgressiveShrinking.phases: expected Phase entries, got {bad[0]!r}")
        check_int(self.subnets_per_step, "ProgressiveShrinking.subnets_per_step", 1)
        _check_bool("ProgressiveShrinking.include_largest", self.include_largest)
        check_number(self.kd_ratio, "ProgressiveShrinking.kd_ratio", positive=False)
        _check_training("ProgressiveShrinking", self, ("batch_size", "weight_decay", "temperature", "seed"))
        self.per_step = _names("ProgressiveShrinking.per_step", self.per_step)
        if self.after_phase is not None and not callable(self.after_phase):
            raise ConfigError(f"ProgressiveShrinking.after_phase: expected a callable or None, got {self.after_phase!r}")

    def fit(self, supernet: nn.Module, x: torch.Tensor, y: torch.Tensor) -> TrainLog:
        with torch_seeded(self.seed):
            return self._fit(supernet, x, y)

    def _fit(self, supernet: nn.Module, x: torch.Tensor, y: torch.Tensor) -> TrainLog:
        space = supernet.space
        per_step = _per_step_keys("ProgressiveShrinking.per_step", space, self.per_step)
        for phase in self.phases:  # an unknown elastic dimension fails now, not after the phases before it trained
            _check_elastic(space, supernet, phase)
        _check_data(x, y, self.batch_size)
        classes = int(y.max()) + 1
        rng, gen = np.random.default_rng(self.seed), torch.Generator().manual_seed(self.seed)
        largest, teacher, out = space.largest(), None, TrainLog()
        for i, phase in enumerate(self.phases):
            if phase.sort_channels:
                supernet.sort_channels()
            n = 1 if i == 0 else self.subnets_per_step
            owner = f"ProgressiveShrinking phase {phase.name!r}"

            def step(xb: torch.Tensor, yb: torch.Tensor, phase: Phase = phase, n: int = n, later: bool = i > 0,
                     owner: str = owner) -> torch.Tensor:
                shared = _draw_shared(space, rng, per_step, phase.elastic)
                soft = None
                if teacher is not None and self.kd_ratio > 0:
                    with torch.no_grad():
                        soft = teacher(xb, _share(space, largest, shared))
                archs = [_random_subnet(space, rng, phase.elastic) for _ in range(n)]
                if self.include_largest and later:
                    archs.insert(0, largest)
                total = torch.zeros(())
                for arch in archs:
                    with _training(owner, arch):
                        logits = supernet(xb, _share(space, arch, shared))
                        loss = F.cross_entropy(check_logits(logits, classes), yb)
                        if soft is not None:
                            loss = loss + self.kd_ratio * distillation_loss(logits, soft, self.temperature)
                        _finite_loss(loss, arch)
                        loss.backward()
                    total = total + loss.detach()
                return total / len(archs)

            out.phases.append(run_phase(phase.name, supernet, x, y, phase.epochs, self.batch_size, phase.lr,
                                        self.weight_decay, gen, step, owner))
            if self.after_phase is not None:
                self.after_phase(phase, supernet)
            if i == 0 and self.kd_ratio > 0:
                teacher = copy.deepcopy(supernet).train()  # batch statistics, as the full net was trained
                teacher.requires_grad_(False)
        return out


# ---------------------------------------------------------------------------------------- evaluation
def _chunks(x: torch.Tensor, batch_size: int) -> Iterable[torch.Tensor]:
    return (x[i:i + batch_size] for i in range(0, len(x), batch_size))


def _samples(batch: Any) -> int:
    """How many samples a calibration batch holds: the length of the tensor, or of the first tensor in a tuple, list
    or dict of them (x, mask); 1 when it holds no tensor (each such batch then counts the same)."""
    parts = (list(batch.values()) if isinstance(batch, Mapping) else batch if isinstance(batch, (tuple, list))
             else [batch])
    for part in parts:
        if isinstance(part, torch.Tensor):
            return len(part) if part.dim() > 0 else 1
    return 1


@torch.no_grad()
def recalibrate_bn(module: nn.Module, inputs: Iterable[Any], call: Callable[[Any], Any] | None = None) -> nn.Module:
    """Reset the running statistics of every batch-norm layer that trains and re-estimate them over the batches in
    `inputs`, run in train mode by `call(batch)` (default `module(batch)`), each batch weighted by its number of
    samples (`_samples`): a cumulative average with momentum n / (seen + n), as OFA's `set_running_statistics`
    weights them, so a short last batch counts for its size, not as much as a full one. The running mean is the
    exact mean over the calibration set (of the values each layer saw, given equal lengths per sample); the
    running variance is the sample-weighted average of the per-batch (unbiased) variances, the variance within
    batches: the spread of the batch means about the overall mean is left out (in one batch it is the exact
    variance). Equal-sized batches give exactly torch's plain average (momentum=None), as before. A layer run
    several times per batch (shared) counts each run; one run by a wrapper that reads its momentum instead of
    calling it (`DynamicBatchNorm`) counts once per batch.

    Which batch norms train is the model's own mode setup. A module in eval mode is switched with `module.train()`
    (a model whose `train()` keeps a frozen pretrained backbone in eval keeps it so). A module that comes in train
    mode (`model.train(); model.backbone.eval()`) runs as it is: its batch norms in eval mode stay in eval, whether
    or not any other batch norm trains. A module whose leaf modules are all in eval mode counts as in eval mode,
    whatever its containers say (a new `nn.ModuleList` or ensemble wrapped around subnets in eval mode). A batch
    norm left in eval mode is never touched: its pretrained statistics stay. The module is returned in eval mode,
    ready to evaluate with statistics of exactly this (sub)network. `inputs` holding no batch, or a first batch
    of no samples, is refused with a ConfigError before anything changes.
    """
    batches = iter(inputs)
    first = next(batches, None)
    if first is None or (isinstance(first, torch.Tensor) and first.dim() > 0 and len(first) == 0):
        raise ConfigError("inputs: no calibration batch to re-estimate batch-norm statistics on (an empty "
                          "calibration set?); the statistics were left as they were")
    entry = [m for m in module.modules() if isinstance(m, _BN)]
    leaves = [m for m in module.modules() if next(m.children(), None) is None]  # the modules that compute
    in_train = module.training and any(m.training for m in leaves)
    kept = [m for m in entry if not m.training] if in_train else []
    module.train()
    for m in kept:
        m.eval()
    bns = [m for m in module.modules() if isinstance(m, _BN) and m.training]
    saved = [m.momentum for m in bns]
    n, total = 0, 0  # samples of the batch running, and of all batches so far
    seen = {id(m): 0 for m in bns}  # samples each layer called as a module has averaged (once per run)

    def weigh(m: nn.Module, args: tuple[Any, ...]) -> None:
        """Before a batch norm runs as a module: momentum n / (seen + n), this run's weight among its runs."""
        seen[id(m)] += n
        m.momentum = n / seen[id(m)] if seen[id(m)] else 0.0

    hooks = [m.register_forward_pre_hook(weigh) for m in bns]
    for m in bns:
        m.reset_running_stats()
    try:
        for batch in itertools.chain((first,), batches):
            n = _samples(batch)
            total += n
            for m in bns:  # the momentum a wrapper reads (DynamicBatchNorm); a layer's own run sets it in `weigh`
                m.momentum = n / total if total else 0.0
            (call or module)(batch)
    finally:
        for hook in hooks:
            hook.remove()
        for m, momentum in zip(bns, saved):
            m.momentum = momentum
    return module.eval()


@torch.no_grad()
def accuracy(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             batch_size: int = 500) -> float:
    """Top-1 accuracy of `model` (called as is: put a module in eval mode first). NaN when some logits are not
    finite (a diverged network: argmax of NaNs is class 0, a plausible-looking score), so a search records the
    trial as failed. `y` must be a 1-D integer vector with one class index per input (a [n, 1] column or one-hot
    labels are refused, never broadcast) and `batch_size` >= 1."""
    if len(x) == 0:
        raise ConfigError("x: accuracy needs at least one input, got 0")
    check_labels(y, len(x))  # never broadcast: [n, 1] or one-hot labels against [n] predictions miscount
    batch_size = check_int(batch_size, "batch_size", 1)
    correct = 0
    for xb, yb in zip(_chunks(x, batch_size), _chunks(y, batch_size)):
        logits = model(xb)
        if not bool(torch.isfinite(logits).all()):
            return float("nan")
        predicted = logits.argmax(dim=-1)
        if predicted.shape != yb.shape:
            raise ConfigError(f"model: expected logits [batch, classes] ({len(yb)} predictions for {len(yb)} labels), "
                              f"got logits of shape {tuple(logits.shape)}")
        correct += int((predicted == yb).sum())
    return correct / len(x)


@dataclass(eq=False)
class InheritedAccuracy:
    """Evaluator: accuracy of `supernet.subnet(arch)` with inherited weights and BN statistics recalibrated
    on `calib_x` (a training subset), without any training. `nas.search(space, evaluator, {"accuracy": "max"})`."""

    supernet: Any
    x: torch.Tensor
    y: torch.Tensor
    calib_x: torch.Tensor
    batch_size: int = 250
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        if len(self.calib_x) == 0:
            raise ConfigError("InheritedAccuracy.calib_x: no calibration inputs (0 rows); batch-norm statistics "
                              "would be reset and never re-estimated")
        # calib_x is cut into batches of batch_size, each a batch norm trains on: at least 2 samples
        self.batch_size = check_int(self.batch_size, "InheritedAccuracy.batch_size", 2)

    def __call__(self, arch: Mapping[str, Any]) -> dict[str, float]:
        sub = self.supernet.subnet(arch)
        recalibrate_bn(sub, _chunks(self.calib_x, self.batch_size))
        return {self.metric: accuracy(sub, self.x, self.y, self.batch_size)}
