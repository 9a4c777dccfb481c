"""An exact Gaussian process on a precomputed kernel matrix (for kernels on graphs, which sklearn's GP cannot take).

Covariance = signal * (K + 1) + noise * I on standardised targets (the constant 1 is a bias term on
the scale of a normalised kernel, whose diagonal is 1). Signal and noise maximise the log marginal
likelihood; one eigendecomposition of K + 1 makes every likelihood evaluation O(n).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import minimize

if TYPE_CHECKING:
    from nas.predictors.base import Predictor

_BOUNDS = [(-8.0, 8.0), (-12.0, 4.0)]  # log signal, log noise


def collapsed(signal: float, noise: float, lower: float) -> bool:
    """A fitted GP whose signal variance sits at its lower bound, or is negligible beside the noise: its predicted
    means shrink towards the training mean (the scale of their variation is lost and the std dominates them), though
    their order still follows a kernel-weighted vote of the training targets."""
    return signal <= 1.01 * lower or signal < 1e-3 * noise


def warn_shrunk(gp: "KernelGP", n: int, owner: "Predictor", log: logging.Logger) -> None:
    """Say (once per `owner`, `Predictor.warn_once`) that a fit's signal variance is at its lower bound, and what
    that does and does not mean."""
    owner.warn_once(log, "%s on %d points: the kernel GP's signal variance %.2g is at its lower bound %.2g or "
                    "below 1e-3 x the noise %.2g, so it collapsed to a near-constant prediction in scale: the "
                    "predicted means shrink towards the training mean and the std dominates them, but their order "
                    "still follows the kernel's similarity to the training targets (the ranking is kept); marked "
                    "degenerate, so the default predictor lets the other model family compete",
                    owner.name or "kernel GP", n, gp.signal, np.exp(_BOUNDS[0][0]), gp.noise)


class KernelGP:
    """GP regression given kernel matrices: `fit(K, y)`, `predict(K_cross, k_diag) -> (mean, std)`."""

    def fit(self, k: np.ndarray, y: np.ndarray) -> "KernelGP":
        y = np.asarray(y, dtype=float)
        self.mu, self.sd = float(y.mean()), float(y.std()) or 1.0
        t = (y - self.mu) / self.sd
        lam, self._u = np.linalg.eigh(np.asarray(k, dtype=float) + 1.0)
        lam = np.maximum(lam, 0.0)
        tt = self._u.T @ t

        def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
            s, e = np.exp(theta)
            d = s * lam + e + 1e-10
            a = tt**2 / d**2
            value = 0.5 * np.sum(tt**2 / d) + 0.5 * np.sum(np.log(d))
            grad = 0.5 * np.array([s * np.sum(lam * (1 / d - a)), e * np.sum(1 / d - a)])
            return float(value), grad

        starts = [np.log([1.0, 0.1]), np.log([1.0, 1e-3]), np.log([0.1, 1.0])]
        best = min((minimize(nll, x0, jac=True, method="L-BFGS-B", bounds=_BOUNDS) for x0 in starts),
                   key=lambda r: r.fun)
        self.signal, self.noise = (float(v) for v in np.exp(best.x))
        self.collapsed = collapsed(self.signal, self.noise, np.exp(_BOUNDS[0][0]))  # its owner says so: `warn_shrunk`
        self._d = self.signal * lam + self.noise + 1e-10
        self._alpha = self._u @ (tt / self._d)
        return self

    def predict(self, k_cross: np.ndarray, k_diag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`k_cross`: (m, n) kernel between new and training points; `k_diag`: (m,) self-similarities."""
        kx = self.signal * (np.asarray(k_cross, dtype=float) + 1.0)
        mean = kx @ self._alpha
        proj = kx @ self._u
        var = self.signal * (np.asarray(k_diag, dtype=float) + 1.0) - np.sum(proj**2 / self._d, axis=1)
        return mean * self.sd + self.mu, np.sqrt(np.maximum(var, 0.0)) * self.sd
