"""Regressors from scikit-learn on the space's fixed-length encoding: random forest, gradient boosting, GP.

Each returns an uncertainty: the spread of the forest's trees, of a small bag of boosted ensembles,
or the Gaussian process posterior. Targets are regressed as quantiles by default (`target="rank"`).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from nas.errors import ConfigError, check_count, check_int
from nas.spaces import Architecture, Space
from nas.predictors.base import Predictor, RankTarget, Target
from nas.predictors.encodings import encoder
from nas.predictors.kernel_gp import collapsed

logger = logging.getLogger(__name__)
SUBSAMPLE = 0.8  # gbm: the fraction of the rows each boosting stage sees
REACH = 1e-3  # gp: below this kernel correlation between the closest distinct training codes the fit is blind


def reach(kernel, x: np.ndarray) -> float:
    """The correlation `kernel` (a fitted stationary kernel, 1 at distance 0) gives the two closest distinct rows of
    `x`: near 0, no training code informs another, nor an unseen code at least that far from them all (the usual
    case: two one-hot codes are at least sqrt(2) apart), whose posterior mean is then the prior mean. 1 when `x`
    has fewer than two distinct rows."""
    from scipy.spatial.distance import pdist, squareform

    u = np.unique(np.asarray(x, dtype=float), axis=0)
    if len(u) < 2:
        return 1.0
    d = squareform(pdist(u))
    np.fill_diagonal(d, np.inf)
    i, j = np.unravel_index(np.argmin(d), d.shape)
    return float(kernel(u[i : i + 1], u[j : j + 1])[0, 0])


class _EncodedRegressor(Predictor):
    """Shared plumbing: encode, transform the target, fit, and map predictions back."""

    needs = frozenset({"vector"})

    def __init__(self, space: Space, seed: int = 0, encoding: str = "onehot", target: Target = "rank") -> None:
        super().__init__(space, seed)
        if target not in ("rank", "raw"):
            raise ConfigError(f"target: expected 'rank' or 'raw', got {target!r}")
        self.encoding, self.target = encoding, target
        self._encode = encoder(space, encoding)

    def _fit(self, archs: list[Architecture], y: np.ndarray) -> None:
        self._rank = RankTarget().fit(y) if self.target == "rank" else None
        # raw targets are standardised: scikit-learn's trees stop splitting below a float-eps impurity, so targets
        # varying on a tiny scale (1e-9) would be fitted by one constant; quantiles are on the unit scale already
        self._mu, self._sd = (0.0, 1.0) if self._rank is not None else (float(y.mean()), float(y.std()) or 1.0)
        t = self._rank.transform(y) if self._rank is not None else (y - self._mu) / self._sd
        self._fit_model(self._encode(archs), t)

    def _predict(self, archs: list[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self._predict_model(self._encode(archs))
        if self._rank is None:
            return mean * self._sd + self._mu, std * self._sd
        return self._rank.inverse(mean), self._rank.inverse_std(mean, std)

    def _fit_model(self, x: np.ndarray, t: np.ndarray) -> None:
        raise NotImplementedError

    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class RandomForestPredictor(_EncodedRegressor):
    """`RandomForestRegressor`; std = spread of the individual trees' predictions."""

    name = "rf"

    def __init__(self, space: Space, seed: int = 0, encoding: str = "onehot", target: Target = "rank",
                 n_estimators: int = 200, min_samples_leaf: int = 1, max_features: float = 1.0) -> None:
        super().__init__(space, seed, encoding, target)
        check_count(n_estimators, "rf: n_estimators", " (trees in the forest)")
        check_count(min_samples_leaf, "rf: min_samples_leaf")
        if isinstance(max_features, bool) or not isinstance(max_features, (int, float)) or not 0 < max_features <= 1:
            raise ConfigError(f"rf: max_features: expected a fraction of the features in (0, 1], got {max_features!r}")
        self.n_estimators, self.min_samples_leaf, self.max_features = n_estimators, min_samples_leaf, max_features

    def _fit_model(self, x: np.ndarray, t: np.ndarray) -> None:
        from sklearn.ensemble import RandomForestRegressor

        # a float: scikit-learn reads an int as a number of features, so max_features=1 would split on one feature
        self._model = RandomForestRegressor(self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                            max_features=float(self.max_features), random_state=self.seed,
                                            n_jobs=1).fit(x, t)

    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)  # the trees' own dtype: no per-tree input check (10x faster)
        per_tree = np.stack([tree.predict(x, check_input=False) for tree in self._model.estimators_])
        return per_tree.mean(axis=0), per_tree.std(axis=0)


class GradientBoostingPredictor(_EncodedRegressor):
    """A bag of `GradientBoostingRegressor`s (row-subsampled, different seeds); std = their spread.

    Each stage sees 80 % of the rows, except on sets so small that this leaves fewer than 2 (N = 2), which are
    boosted whole."""

    name = "gbm"

    def __init__(self, space: Space, seed: int = 0, encoding: str = "onehot", target: Target = "rank",
                 n_estimators: int = 200, members: int = 5) -> None:
        super().__init__(space, seed, encoding, target)
        check_count(n_estimators, "gbm: n_estimators", " (boosting stages)")
        check_count(members, "gbm: members", " (boosted ensembles in the bag)")
        self.n_estimators, self.members = n_estimators, members

    def _fit_model(self, x: np.ndarray, t: np.ndarray) -> None:
        from sklearn.ensemble import GradientBoostingRegressor

        # sklearn draws int(subsample * N) rows per stage (at least 1): at N = 2 that is one row, no stage can split
        # and every member predicts one constant, so tiny sets are boosted whole (the members still differ in which
        # of the tied features their trees split on); from N = 3 (two rows a stage) the bag is row-subsampled
        subsample = SUBSAMPLE if int(SUBSAMPLE * len(t)) >= 2 else 1.0
        self._models = [GradientBoostingRegressor(n_estimators=self.n_estimators, learning_rate=0.05, max_depth=3,
                                                  subsample=subsample, random_state=self.seed * 1000 + k).fit(x, t)
                        for k in range(self.members)]

    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        preds = np.stack([m.predict(x) for m in self._models])
        return preds.mean(axis=0), preds.std(axis=0)


class GaussianProcessPredictor(_EncodedRegressor):
    """`GaussianProcessRegressor` with constant x Matern(5/2) + white noise, hyperparameters by marginal likelihood.

    The length scale starts at sqrt(number of decisions), the distance between two random one-hot codes.
    """

    name = "gp"

    def __init__(self, space: Space, seed: int = 0, encoding: str = "onehot", target: Target = "rank",
                 restarts: int = 2) -> None:
        super().__init__(space, seed, encoding, target)
        self.restarts = check_int(restarts, "gp: restarts", 0)

    def _fit_model(self, x: np.ndarray, t: np.ndarray) -> None:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        from sklearn.exceptions import ConvergenceWarning

        scale = float(np.sqrt(max(len(self.space.slots()), 1)))
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(scale, (1e-2, 1e3), nu=2.5) + WhiteKernel(0.1, (1e-6, 1e1))
        with warnings.catch_warnings():  # noise at its lower bound is expected: quantile targets are noise-free
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._model = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=self.restarts,
                                                   random_state=self.seed).fit(x, t)
        fitted = self._model.kernel_
        signal, length, noise = fitted.k1.k1.constant_value, fitted.k1.k2.length_scale, fitted.k2.noise_level
        correlation = reach(fitted.k1.k2, x)
        blind = correlation < REACH  # no training code informs another: every unseen code gets the prior mean
        shrunk = collapsed(signal, noise, 1e-3)
        self.degenerate = blind or shrunk or not 1.01e-2 < length < 0.99e3  # or a length scale at a bound
        if blind:
            self.warn_once(logger, "gp on %d points collapsed to a near-constant prediction: its length scale "
                           "%.2g is short beside the distance between the two closest distinct training codes (kernel "
                           "correlation %.1g), so every architecture it was not trained on gets nearly the prior "
                           "mean: the predicted means barely vary away from the training points, the std dominates "
                           "them, and their order rests on correlations that small", len(t), length, correlation)
        elif self.degenerate:
            why = ("the signal at its lower bound or below 1e-3 x the noise" if shrunk else
                   "the length scale at its upper bound: the kernel is nearly flat across the codes" if length > 1 else
                   "the length scale at its lower bound")
            self.warn_once(logger, "gp on %d points collapsed to a near-constant prediction in scale (signal "
                           "variance %.2g, length scale %.2g, noise %.2g: %s): the predicted means shrink towards the "
                           "training mean and the std dominates them, though their order still follows the kernel's "
                           "similarity to the training targets", len(t), signal, length, noise, why)

    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self._model.predict(x, return_std=True)
        return mean, std
