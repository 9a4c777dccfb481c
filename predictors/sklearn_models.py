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
        t = self._rank.transform(y) if self._rank is not None else y
        self._fit_model(self._encode(archs), t)

    def _predict(self, archs: list[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self._predict_model(self._encode(archs))
        if self._rank is None:
            return mean, std
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

        self._model = RandomForestRegressor(self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                            max_features=self.max_features, random_state=self.seed, n_jobs=1).fit(x, t)

    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)  # the trees' own dtype: no per-tree input check (10x faster)
        per_tree = np.stack([tree.predict(x, check_input=False) for tree in self._model.estimators_])
        return per_tree.mean(axis=0), per_tree.std(axis=0)


class GradientBoostingPredictor(_EncodedRegressor):
    """A bag of `GradientBoostingRegressor`s (row-subsampled, different seeds); std = their spread."""

    name = "gbm"

    def __init__(self, space: Space, seed: int = 0, encoding: str = "onehot", target: Target = "rank",
                 n_estimators: int = 200, members: int = 5) -> None:
        super().__init__(space, seed, encoding, target)
        check_count(n_estimators, "gbm: n_estimators", " (boosting stages)")
        check_count(members, "gbm: members", " (boosted ensembles in the bag)")
        self.n_estimators, self.members = n_estimators, members

    def _fit_model(self, x: np.ndarray, t: np.ndarray) -> None:
        from sklearn.ensemble import GradientBoostingRegressor

        self._models = [GradientBoostingRegressor(n_estimators=self.n_estimators, learning_rate=0.05, max_depth=3,
                                                  subsample=0.8, random_state=self.seed * 1000 + k).fit(x, t)
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
        self.degenerate = collapsed(signal, noise, 1e-3) or not 1.01e-2 < length < 0.99e3  # a scale at a bound
        if self.degenerate:  # no correlation or no variation
            logger.warning("gp on %d points collapsed to a near-constant prediction (signal variance %.2g, length "
                           "scale %.2g, noise %.2g): the kernel explains none of the targets' variation, so its "
                           "ranking is noise", len(t), signal, length, noise)

    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self._model.predict(x, return_std=True)
        return mean, std
