"""Learning-curve extrapolation (Domhan et al. 2015, simplified): fit parametric curves to the first epochs,
predict the value at a later epoch, and stop runs that cannot beat the incumbent.

Curves (t = epoch >= 1), each fitted by bounded least squares (`scipy.optimize.curve_fit`):
  pow3       c - a * t^-alpha
  exp3       c - a * exp(-b * t)
  ilog2      c - a / log(t + 1)
  janoschek  alpha - (alpha - beta) * exp(-kappa * t^delta)
They are combined with weights from their BIC on the observed points; the predictive std adds the
spread of the curves' predictions to the residual noise. Curves are for metrics that grow with training
(accuracy); pass `direction="min"` for losses.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from nas.errors import ConfigError, check_int, check_number

CurveFn = Callable[..., np.ndarray]


def _pow3(t: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
    return c - a * np.power(t, -alpha)


def _exp3(t: np.ndarray, c: float, a: float, b: float) -> np.ndarray:
    return c - a * np.exp(-b * t)


def _ilog2(t: np.ndarray, c: float, a: float) -> np.ndarray:
    return c - a / np.log(t + 1.0)


def _janoschek(t: np.ndarray, alpha: float, beta: float, kappa: float, delta: float) -> np.ndarray:
    return alpha - (alpha - beta) * np.exp(-kappa * np.power(t, delta))


@dataclass(frozen=True)
class CurveFamily:
    """A parametric curve with an initial guess and bounds derived from the observed values."""

    name: str
    fn: CurveFn
    n_params: int

    def guess(self, t: np.ndarray, v: np.ndarray) -> tuple[list[float], tuple[list[float], list[float]]]:
        span = max(float(np.ptp(v)), 1e-3)
        top, first = float(v.max()), float(v[0])
        hi = top + 10 * span
        if self.name == "pow3":
            return [top + 0.1 * span, max(top - first, 1e-3) + 0.1 * span, 0.5], ([first - span, 0, 1e-3], [hi, 20 * span + 1, 5])
        if self.name == "exp3":
            return [top + 0.1 * span, max(top - first, 1e-3) + 0.1 * span, 0.3], ([first - span, 0, 1e-4], [hi, 20 * span + 1, 5])
        if self.name == "ilog2":
            return [top + 0.1 * span, span], ([first - span, 0], [hi, 50 * span + 1])
        return [top + 0.1 * span, first - 0.1 * span, 0.3, 1.0], ([first - span, first - 10 * span, 1e-4, 0.05], [hi, hi, 10, 5])


FAMILIES = {f.name: f for f in (CurveFamily("pow3", _pow3, 3), CurveFamily("exp3", _exp3, 3),
                                 CurveFamily("ilog2", _ilog2, 2), CurveFamily("janoschek", _janoschek, 4))}


@dataclass(frozen=True)
class CurveFit:
    """One fitted family: its parameters, mean squared residual and BIC weight."""

    name: str
    params: tuple[float, ...]
    mse: float
    weight: float

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        return FAMILIES[self.name].fn(np.asarray(t, dtype=float), *self.params)


def check_epochs(t: np.ndarray, name: str) -> None:
    """ConfigError naming `name` unless every epoch is finite and >= 1 (the curves are defined from epoch 1: at 0,
    pow3 and ilog2 divide by zero)."""
    bad = np.flatnonzero(~np.isfinite(t) | (t < 1))
    if len(bad):
        raise ConfigError(f"{name}: expected finite epochs >= 1, got {t[bad[:5]].tolist()} at positions "
                          f"{bad[:5].tolist()}")


class LearningCurveModel:
    """`fit(epochs, values)` on a partial curve, then `predict(epoch) -> (mean, std)` at any later epoch."""

    def __init__(self, families: Sequence[str] = tuple(FAMILIES), direction: Literal["max", "min"] = "max") -> None:
        unknown = [f for f in families if f not in FAMILIES]
        if unknown or not families:
            raise ConfigError(f"families: unknown {unknown} (known: {', '.join(FAMILIES)})")
        if direction not in ("max", "min"):
            raise ConfigError(f"direction: expected 'max' or 'min', got {direction!r}")
        self.families, self.direction = tuple(families), direction
        self.fits: list[CurveFit] = []

    def fit(self, epochs: Sequence[float], values: Sequence[float]) -> "LearningCurveModel":
        t, v = np.asarray(epochs, dtype=float), np.asarray(values, dtype=float)
        if t.shape != v.shape or t.ndim != 1:
            raise ConfigError(f"epochs and values: expected two equal-length sequences, got {t.shape} and {v.shape}")
        if len(t) < 3:
            raise ConfigError(f"a learning curve needs at least 3 points to extrapolate, got {len(t)}")
        check_epochs(t, "epochs")  # a NaN epoch used to pass: every curve fit then failed and the mean was returned
        bad = np.flatnonzero(~np.isfinite(v))
        if len(bad):
            raise ConfigError(f"values: expected finite values, got {v[bad[:5]].tolist()} at positions "
                              f"{bad[:5].tolist()}")
        sign = 1.0 if self.direction == "max" else -1.0
        v = sign * v
        raw: list[tuple[str, tuple[float, ...], float]] = []
        for name in self.families:
            fam = FAMILIES[name]
            if len(t) <= fam.n_params:
                continue
            p0, bounds = fam.guess(t, v)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", OptimizeWarning)
                    warnings.simplefilter("ignore", RuntimeWarning)
                    params, _ = curve_fit(fam.fn, t, v, p0=np.clip(p0, *bounds), bounds=bounds, maxfev=5000)
            except (RuntimeError, ValueError):
                continue
            mse = float(np.mean((fam.fn(t, *params) - v) ** 2))
            if np.isfinite(mse):
                raw.append((name, tuple(float(p) for p in params), mse))
        if not raw:
            mean = float(v.mean())
            raw = [("constant", (mean,), float(np.var(v)))]
        n = len(t)
        bic = np.array([n * math.log(max(mse, 1e-12)) + self._k(name) * math.log(n) for name, _, mse in raw])
        w = np.exp(-0.5 * (bic - bic.min()))
        w /= w.sum()
        self._sign = sign
        self.fits = [CurveFit(name, params, mse, float(wi)) for (name, params, mse), wi in zip(raw, w)]
        return self

    @staticmethod
    def _k(name: str) -> int:
        return FAMILIES[name].n_params if name in FAMILIES else 1

    def predict(self, epoch: float | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean over fitted curves and a std (model spread + residual noise), in the metric's units."""
        if not self.fits:
            raise ConfigError("LearningCurveModel: call fit before predict")
        t = np.atleast_1d(np.asarray(epoch, dtype=float))
        check_epochs(t, "epoch")
        preds = np.stack([f(t) if f.name in FAMILIES else np.full_like(t, f.params[0]) for f in self.fits])
        w = np.array([f.weight for f in self.fits])[:, None]
        mean = (w * preds).sum(axis=0)
        var = (w * (preds - mean) ** 2).sum(axis=0) + sum(f.weight * f.mse for f in self.fits)
        return self._sign * mean, np.sqrt(var)


def extrapolate(epochs: Sequence[float], values: Sequence[float], target_epoch: float,
                direction: Literal["max", "min"] = "max") -> tuple[float, float]:
    """(mean, std) of the metric at `target_epoch` from a partial learning curve."""
    check_epochs(np.atleast_1d(np.asarray(target_epoch, dtype=float)), "target_epoch")
    mean, std = LearningCurveModel(direction=direction).fit(epochs, values).predict(target_epoch)
    return float(mean[0]), float(std[0])


@dataclass(frozen=True)
class EarlyStopRule:
    """Stop a run when even its optimistic extrapolation (mean + z*std at `target_epoch`) cannot beat
    the incumbent. Plain data, so a multi-fidelity scheduler can keep it in its state."""

    target_epoch: float
    z: float = 1.0
    min_points: int = 4
    direction: Literal["max", "min"] = "max"

    def __post_init__(self) -> None:
        """Every setting checked now, not at the first `should_stop`: a NaN `z` would silently never stop a run."""
        if isinstance(self.target_epoch, bool) or not isinstance(self.target_epoch, numbers.Real):
            raise ConfigError(f"target_epoch: expected a finite epoch >= 1, got {self.target_epoch!r}")
        check_epochs(np.array([self.target_epoch], dtype=float), "target_epoch")
        check_number(self.z, "z", positive=False)
        check_int(self.min_points, "min_points", 1)
        if self.direction not in ("max", "min"):
            raise ConfigError(f"direction: expected 'max' or 'min', got {self.direction!r}")

    def should_stop(self, epochs: Sequence[float], values: Sequence[float], incumbent: float | None) -> bool:
        """True when the optimistic extrapolation cannot beat `incumbent` (None: nothing to beat yet, never stop)."""
        if incumbent is not None and (isinstance(incumbent, bool) or not isinstance(incumbent, numbers.Real)
                                      or not math.isfinite(incumbent)):
            raise ConfigError(f"incumbent: expected a finite number or None, got {incumbent!r}")
        if incumbent is None or len(values) < max(self.min_points, 3):
            return False
        mean, std = extrapolate(epochs, values, self.target_epoch, self.direction)
        if self.direction == "max":
            return mean + self.z * std < incumbent
        return mean - self.z * std > incumbent
