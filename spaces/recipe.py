"""Training recipes as search decisions (FBNetV3, Dai et al. 2021): learning rate, weight decay, epochs, label
smoothing, mixup and an EMA of the weights, searched in the same space as the architecture.

* `Recipe`: one validated recipe (frozen); `Recipe.from_arch(arch)` reads the recipe fields of an architecture.
* `recipe_fields()`: the recipe's decisions as `Choice` fields to merge with your own,
  `Space(depth=..., **recipe_fields())`.
* `train_with_recipe(model, (x, y), recipe, seed)`: AdamW with a per-step cosine schedule, label smoothing,
  mixup and an EMA copy of the weights (used for evaluation when on); deterministic for a seed.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError, check_int
from nas.seeding import torch_seeded
from nas.spaces.params import Choice
from nas.spaces.training import TrainLog, _check_data, check_logits, run_phase

__all__ = ["DEFAULT_OPTIONS", "EMA", "Recipe", "RecipeRun", "recipe_fields", "train_with_recipe"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """A training recipe. The defaults are the recipe this repository's MNIST-1D trainers use (AdamW lr 1e-2,
    weight decay 1e-4, cosine, batch 64, 10 epochs) with label smoothing, mixup and EMA off.

    `mixup` is the Beta(alpha, alpha) parameter (0: off); `ema` the EMA decay (0: off), warmed up as
    min(ema, (1 + t) / (10 + t)) at step t so that the first, untrained weights fade quickly.
    """

    lr: float = 1e-2
    weight_decay: float = 1e-4
    epochs: int = 10
    label_smoothing: float = 0.0
    mixup: float = 0.0
    ema: float = 0.0
    batch_size: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):  # numpy scalars (a DataFrame row, np.arange options) mean their Python twins
            v = getattr(self, f.name)
            if isinstance(v, np.generic):
                object.__setattr__(self, f.name, v.item())

        def number(name: str) -> float:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"{name}: expected a finite number, got {v!r}")
            return float(v)

        def integer(name: str, low: int) -> None:
            check_int(getattr(self, name), name, low)

        if number("lr") <= 0:
            raise ConfigError(f"lr: expected a positive learning rate, got {self.lr!r}")
        if number("weight_decay") < 0:
            raise ConfigError(f"weight_decay: expected >= 0, got {self.weight_decay!r}")
        if not 0 <= number("label_smoothing") < 1:
            raise ConfigError(f"label_smoothing: expected a value in [0, 1), got {self.label_smoothing!r}")
        if number("mixup") < 0:
            raise ConfigError(f"mixup: expected a Beta alpha >= 0 (0: off), got {self.mixup!r}")
        if not 0 <= number("ema") < 1:
            raise ConfigError(f"ema: expected a decay in [0, 1) (0: off), got {self.ema!r}")
        integer("epochs", 1)
        integer("batch_size", 2)

    @classmethod
    def from_arch(cls, arch: Mapping[str, Any], base: Recipe | None = None) -> Recipe:
        """The recipe of `arch`: its recipe fields (those of `recipe_fields`) over `base` (default `Recipe()`);
        other fields (the architecture's own) are ignored."""
        values = {f.name: arch[f.name] for f in fields(cls) if f.name in arch}
        return replace(base if base is not None else cls(), **values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_OPTIONS: dict[str, tuple[float | int, ...]] = {
    "lr": (3e-3, 1e-2, 3e-2),
    "weight_decay": (1e-4, 1e-2, 1e-1),
    "epochs": (8, 10, 12),
    "label_smoothing": (0.0, 0.05, 0.1),
    "mixup": (0.0, 0.1, 0.3),
    "ema": (0.0, 0.99, 0.998),
}
"""What `recipe_fields()` searches by default: three values per knob around `Recipe()`'s, which each includes
(so the default recipe is one point of the space); epochs stay within +-20 % of the default's."""


def recipe_fields(options: Mapping[str, Sequence[float | int]] | None = None) -> dict[str, Choice]:
    """The recipe's search decisions as ordered `Choice` fields named after `Recipe`'s fields, to merge into a
    space: `Space(width=Choice([16, 32]), **recipe_fields())`. `options` (field -> values) replaces
    `DEFAULT_OPTIONS`; every value is checked as a `Recipe` would check it (the error names the field). Values
    may be any collection (list, tuple, 1-D numpy array); numpy scalars become their Python twins."""
    chosen = DEFAULT_OPTIONS if options is None else options
    known = {f.name for f in fields(Recipe)}
    out = {}
    for name, values in chosen.items():
        if name not in known:
            raise ConfigError(f"options: unknown recipe field {name!r} (known: {', '.join(sorted(known))})")
        if isinstance(values, np.ndarray) and values.ndim == 1:
            values = values.tolist()
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Collection):
            raise ConfigError(f"{name}: expected a list of values to choose from, such as [{getattr(Recipe, name)!r}], "
                              f"got {values!r}")
        values = tuple(v.item() if isinstance(v, np.generic) else v for v in values)
        if not values:
            raise ConfigError(f"{name}: give at least one value")
        for v in values:
            Recipe(**{name: v})  # raises ConfigError naming the field
        out[name] = Choice(sorted(values))
    return out


class EMA:
    """An exponential moving average of a module's floating-point parameters and buffers (batch-norm running
    statistics included; integer buffers are copied), with the decay warmed up as min(decay, (1+t)/(10+t))."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ConfigError(f"ema: expected a decay in (0, 1), got {decay!r}")
        self.decay, self.updates = decay, 0
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        for avg, cur in zip(self.module.state_dict().values(), module.state_dict().values()):
            if avg.is_floating_point():
                avg.lerp_(cur.detach(), 1.0 - d)
            else:
                avg.copy_(cur)


@dataclass
class RecipeRun:
    """What `train_with_recipe` produced: the trained network, its EMA copy (None when the recipe's ema is 0)
    and the training log. `final` is the network to evaluate (the EMA copy when there is one)."""

    model: nn.Module
    ema: nn.Module | None
    log: TrainLog

    @property
    def final(self) -> nn.Module:
        return self.ema if self.ema is not None else self.model


def train_with_recipe(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], recipe: Recipe,
                      seed: int = 0) -> RecipeRun:
    """Train `model` in place on `train` = (x, y) by `recipe`: AdamW (no decay on 1-D parameters) with a
    per-step cosine schedule, cross entropy with label smoothing, mixup of each batch with a shuffled copy of
    itself (lambda ~ Beta(alpha, alpha)) and an EMA of the weights. Batch order, mixup partners and lambdas
    come from `seed` (the initial weights are the caller's), and so do the network's own random draws (dropout):
    the training runs under a fork of torch's global generator seeded with `seed`, which leaves the caller's as
    it was. Both returned modules are in eval mode. Mixup on integer inputs (token ids) is a ConfigError naming
    `mixup`, raised before training."""
    if not isinstance(recipe, Recipe):
        raise ConfigError(f"recipe: expected a Recipe (Recipe(**fields) or Recipe.from_arch(arch)), got "
                          f"{type(recipe).__name__}")
    seed = check_int(seed, "seed", 0)
    if not isinstance(train, Sequence) or len(train) != 2:
        raise ConfigError(f"train: expected the pair (x, y), got {type(train).__name__}")
    x, y = train
    _check_data(x, y, recipe.batch_size)
    if recipe.mixup > 0 and not (x.is_floating_point() or x.is_complex()):  # blended token ids are not ids
        raise ConfigError(f"mixup: mixup blends inputs, so it needs floating-point x, got {x.dtype} inputs (token "
                          "ids?); use mixup=0 for such a network (in a joint search, leave 'mixup' out of recipe_fields' "
                          "options; see docs/recipe.md)")
    classes = int(y.max()) + 1
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    ema = EMA(model, recipe.ema) if recipe.ema > 0 else None
    smoothing = recipe.label_smoothing

    def step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if ema is not None:  # the weights after the previous optimizer step (a no-op at step 0)
            ema.update(model)
        if recipe.mixup > 0:
            lam = float(rng.beta(recipe.mixup, recipe.mixup))
            perm = torch.randperm(len(xb), generator=gen)
            logits = check_logits(model(lam * xb + (1 - lam) * xb[perm]), classes)
            loss = (lam * F.cross_entropy(logits, yb, label_smoothing=smoothing)
                    + (1 - lam) * F.cross_entropy(logits, yb[perm], label_smoothing=smoothing))
        else:
            loss = F.cross_entropy(check_logits(model(xb), classes), yb, label_smoothing=smoothing)
        loss.backward()
        return loss.detach()

    with torch_seeded(seed):
        phase = run_phase("recipe", model, x, y, recipe.epochs, recipe.batch_size, recipe.lr, recipe.weight_decay,
                          gen, step)
    if ema is not None:
        ema.update(model)  # the last optimizer step's weights
    model.eval()
    return RecipeRun(model, ema.module if ema is not None else None, TrainLog([phase]))
