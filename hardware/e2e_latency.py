"""End-to-end latency learned from (architecture, measured latency) pairs, for any space (HELP / BRP-NAS direction).

A per-layer table only knows the device it was timed on; a phone, an FPGA or a remote GPU gives whole-network
latencies instead. `EndToEndLatency` regresses those on the space's own encodings (one-hot for linear models,
the index vector for trees), optionally with extra named features (a lookup table's sum, log FLOPs / params:
`cost_features`). It is robust to measurement glitches: out-of-fold residuals of a ridge regression on log
latency (two passes, the second trained without the first's outliers) screen near-zero or spiking samples,
which are dropped with a `LatencyFitWarning`; and
the regressor is chosen by cross-validated relative error among ridge, a random forest, gradient boosting
and their averages (the simplest within one standard error of the lowest: a more complex model only when the same
held-out samples show it better), of those that rank held-out samples (a cross-validated Kendall tau significantly above 0,
`TAU_LEVEL`, so the bar depends on the number of samples). A fit that cannot rank anything is refused
(`DegenerateFitError`, naming why): too few distinct architectures, most samples screened, latencies all
(nearly) equal, no candidate that ranks, constant predictions, or a cross-validated MAPE close to 1.
Repeated timings of one architecture are one architecture: they count once towards the minimum and
cross-validation keeps them in one fold, so no copy of a held-out network is trained on.
A prediction for an architecture using a field value no kept training sample used is an extrapolation (its
one-hot weight was never fitted, and cross-validation never tested it): it is warned of once per model
(`UnseenValueWarning`) and recorded in `provenance()["extrapolation"]`.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import ConfigError, InvalidArchitectureError, check_count, check_int, check_number
from nas.hardware.devices import DeviceProfile, load_device
from nas.hardware.learned import DegenerateFitError, LatencyFitWarning, check_latencies
from nas.hardware.lut import check_profile
from nas.spaces import Architecture, Choice, Conditional, Space

log = logging.getLogger(__name__)

Feature = Callable[[Architecture], float]
# simplest first (the order breaks near-ties, `simplest_within_se`): linear models, averages with a tree model, a
# tree model alone (the most variance, and no extrapolation beyond the values it was trained on)
CANDIDATES = ("extras", "stacked", "ridge", "ridge-log", "stacked+forest", "ridge+forest", "ridge+boosting", "forest",
              "boosting")
DEFAULT_CANDIDATES = ("extras", "stacked", "ridge", "ridge-log", "stacked+forest", "ridge+forest", "forest")
MIN_SAMPLES = 5  # distinct architectures
FLAT_LOG_STD = 1e-3  # latencies whose log varies less (about 0.1 %) carry no ranking: the fit is refused
TAU_LEVEL = 0.05  # a candidate ranks when its cross-validated Kendall tau is above 0 at this one-sided level


class UnseenValueWarning(LatencyFitWarning):
    """An end-to-end latency model predicted an architecture using a field value absent from its training
    samples: an extrapolation its cross-validated error says nothing about. Warned once per model."""


def cost_features(space: Space, batch_size: int = 1, table: Any = None) -> dict[str, Feature]:
    """Named extra features: MFLOPs and millions of parameters (from the space's layer decomposition when it
    has one, else by building the network), plus `table_ms`, the sum of a per-layer model's values, when
    `table` (a `LayerwiseLatency`, e.g. `lut_latency(...)`) is given. Counts are memoised per architecture."""
    from nas.counts import count_leaves, count_params

    if table is not None and getattr(table, "batch_size", batch_size) != batch_size:
        raise ConfigError(f"table: the {getattr(table, 'model', 'table')} model is for batch size "
                          f"{table.batch_size}, the features are at batch_size {batch_size}")

    adapter = None
    try:
        from nas.hardware.adapters import adapter_for

        adapter = adapter_for(space)  # type: ignore[arg-type]
    except ConfigError:
        pass
    memo: dict[str, tuple[float, float]] = {}

    def counts(arch: Architecture) -> tuple[float, float]:
        if arch.id not in memo:
            if adapter is not None:
                leaves = adapter.arch_counts(arch, batch_size)
                params = sum(x.params for x in leaves)
            else:
                build = getattr(space, "build", None)
                if not callable(build) or not callable(getattr(space, "example_input", None)):
                    raise ConfigError(f"cost features: space {type(space).__name__} cannot build networks to count "
                                      "(it needs build() and example_input())")
                module = build(arch)
                inputs = space.example_input(arch, batch_size)  # type: ignore[attr-defined]
                leaves, params = count_leaves(module, inputs), count_params(module)
            memo[arch.id] = (float(sum(x.flops for x in leaves)), float(params))
        return memo[arch.id]

    out: dict[str, Feature] = {"mflops": lambda a: counts(a)[0] / 1e6, "mparams": lambda a: counts(a)[1] / 1e6}
    if table is not None:
        out["table_ms"] = table.latency_ms
    return out


@dataclass(frozen=True)
class Candidate:
    """One regressor's cross-validated record: MAPE, Kendall tau (and its one-sided p-value against no ranking)
    and fraction within +-10 % out of fold."""

    name: str
    cv_mape: float
    cv_tau: float
    cv_within_10pct: float
    cv_tau_p: float = 1.0


@dataclass
class EndToEndLatency:
    """latency_ms(arch) learned from measured (architecture, latency) pairs of one device and batch size.

    `features`: extra named features (see `cost_features`); `candidates`: the regressors cross-validation
    chooses from (`extras`: least squares on the smallest subset of the extra features whose leave-one-out
    error is within one standard error of the lowest; `stacked`: that, plus ridge on one-hot for its residuals (both skipped without extras); `ridge`:
    ridge on one-hot and extras; these three by relative least squares; `ridge-log`: ridge on log latency;
    `forest`, `boosting`: on the index vector and extras, log latency; `a+b`: the mean of both); `screen`:
    drop outliers (out-of-fold |log residual| above `outlier_factor` robust standard deviations and more than
    a factor 3 off, or below 1e-3 of the median) before fitting; `max_screened`: refuse when a larger fraction is screened; `max_mape`: refuse when the
    cross-validated MAPE reaches it (warn from a third of it); `min_tau`: a candidate ranks held-out samples only
    when its cross-validated Kendall tau is above it and above 0 at the one-sided `TAU_LEVEL` (of those that
    rank, the simplest, in `CANDIDATES` order, whose cross-validated MAPE is within one standard error of the
    lowest is chosen; none: refused); `feature_sources`: JSON-ready records of where
    extra features come from (e.g. the lookup table behind `table_ms`), kept in provenance and `to_dict`;
    `device`: a device profile name, path or `DeviceProfile` (checked; kept as the profile's name, and a profile
    not built in is kept whole, `device_profile`, so `to_dict` / `from_dict` reload it wherever its file went).
    Usable as `CostModel(space, latency=model)`; `model` is "e2e".
    """

    space: Space
    device: str | None = None  # given as a name, a .json path or a DeviceProfile; stored as the profile's name
    batch_size: int = 1
    features: Mapping[str, Feature] = field(default_factory=dict)
    candidates: Sequence[str] = DEFAULT_CANDIDATES
    folds: int = 5
    screen: bool = True
    outlier_factor: float = 5.0
    max_screened: float = 0.2
    max_mape: float = 0.9
    min_tau: float = 0.05
    seed: int = 0
    feature_sources: Mapping[str, Any] = field(default_factory=dict)
    model: str = "e2e"
    cheap: bool = True
    device_profile: DeviceProfile | None = field(default=None, init=False)  # a profile not built in, kept whole
    chosen: str | None = field(default=None, init=False)
    cv: dict[str, Candidate] = field(default_factory=dict, init=False)
    screened: list[dict[str, Any]] = field(default_factory=list, init=False)
    fit_mape: float | None = field(default=None, init=False)
    n_samples: int = field(default=0, init=False)
    n_archs: int = field(default=0, init=False)
    extrapolation: dict[str, Any] = field(default_factory=lambda: {"unseen_values": {}, "predictions": 0},
                                          init=False)
    _seen: list[set[float]] = field(default_factory=list, init=False, repr=False)
    _warned_unseen: bool = field(default=False, init=False, repr=False)
    _fitted: list["_Part"] = field(default_factory=list, init=False, repr=False)
    _samples: list[tuple[dict[str, Any], float]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = [c for c in self.candidates if c not in CANDIDATES]
        if unknown or not self.candidates:
            raise ConfigError(f"candidates: unknown or none {unknown or list(self.candidates)} "
                              f"(known: {', '.join(CANDIDATES)})")
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"folds: expected an int >= 2, got {self.folds!r}")
        if not 0 <= self.max_screened < 1:
            raise ConfigError(f"max_screened: expected 0 <= max_screened < 1, got {self.max_screened!r}")
        # NaN compares False: a NaN bound would turn its check off silently
        check_number(self.max_mape, "max_mape")
        check_number(self.outlier_factor, "outlier_factor")
        if check_number(self.min_tau, "min_tau", positive=False) >= 1:
            raise ConfigError(f"min_tau: expected 0 <= min_tau < 1 (a Kendall tau), got {self.min_tau!r}")
        check_count(self.batch_size, "batch_size")
        if check_int(self.seed, "seed", 0) >= 2**32:  # scikit-learn's random_state range
            raise ConfigError(f"seed: expected an int below 2**32, got {self.seed!r}")
        if self.device is not None:
            given: Any = self.device
            self.device = check_profile(given, "device")  # recorded in the model: a typo makes it unusable
            if isinstance(given, DeviceProfile) or str(given).endswith(".json"):
                # a path or an object: its name alone is no built-in profile, so `from_dict` reloads it from here
                self.device_profile = load_device(given)

    # ------------------------------------------------------------------ features
    def _columns(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """(linear design: one-hot + extras, tree design: index vector + extras)."""
        extra = np.array([[float(f(a)) for f in self.features.values()] for a in archs]).reshape(len(archs), -1)
        if not np.all(np.isfinite(extra)):
            bad = [n for j, n in enumerate(self.features) if not np.all(np.isfinite(extra[:, j]))]
            raise ConfigError(f"features: {', '.join(bad)} gave non-finite values")
        onehot = np.array([self.space.to_features(a) for a in archs], dtype=float).reshape(len(archs), -1)
        vector = np.array([self.space.to_vector(a) for a in archs], dtype=float).reshape(len(archs), -1)
        return np.hstack([onehot, extra]), np.hstack([vector, extra])

    # ------------------------------------------------------------------ fit
    def fit(self, archs: Sequence[Mapping[str, Any]], latency_ms: Sequence[float]) -> "EndToEndLatency":
        """Screen outliers, choose a regressor by cross-validation, refit it on every kept sample."""
        if len(archs) != len(latency_ms):
            raise ConfigError(f"fit: {len(archs)} architectures but {len(latency_ms)} latencies")
        valid = [self.space.validate(a) for a in archs]
        ids = np.array([a.id for a in valid])
        distinct = len(set(ids))
        if distinct < MIN_SAMPLES:
            raise DegenerateFitError(f"fit: {distinct} distinct architectures ({len(archs)} samples); an end-to-end "
                                     f"latency model needs at least {MIN_SAMPLES} (repeated timings of one network "
                                     "count once)")
        y = check_latencies(latency_ms, "latency_ms")
        lin, tree = self._columns(valid)
        keep = self._screen(lin, y, ids) if self.screen else np.ones(len(y), dtype=bool)
        lin, tree, y_in = lin[keep], tree[keep], y[keep]
        if len(set(ids[keep])) < 2:
            raise DegenerateFitError(f"fit: after screening, the kept samples are of {len(set(ids[keep]))} "
                                     "architecture(s); cross-validation needs at least 2")
        if np.std(np.log(y_in)) < FLAT_LOG_STD:
            spread = 100 * (float(np.max(y_in)) / float(np.min(y_in)) - 1)
            raise DegenerateFitError(f"end-to-end latency: all {len(y_in)} kept latencies are within {spread:.2g} % "
                                     f"of each other ({float(np.min(y_in)):.4g} to {float(np.max(y_in)):.4g} ms): "
                                     "they carry no ranking information, and a model fitted to them would price "
                                     "every architecture the same, so a latency constraint could not tell them "
                                     "apart (was one value written for every sample?)")
        self.cv, errors = self._cross_validate(lin, tree, y_in, len(self.features), ids[keep])
        self.chosen, self._fitted, pred = self._choose(lin, tree, y_in, errors)
        self.fit_mape = float(np.mean(np.abs(pred / y_in - 1)))
        self.n_samples = int(len(y))
        self.n_archs = distinct
        self._samples = [(a.to_dict(), float(t)) for a, t in zip(valid, y)]
        slots = tree[:, :tree.shape[1] - len(self.features)]  # the index vector of the kept samples
        self._seen = [set(slots[:, j].tolist()) for j in range(slots.shape[1])]
        self.extrapolation = {"unseen_values": {}, "predictions": 0}
        self._warned_unseen = False
        self._check_mape()
        return self

    def _screen(self, lin: np.ndarray, y: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Inlier mask: out-of-fold ridge residuals on log latency, MAD-scaled, in two passes (the second
        trained without the first pass's outliers, so glitches cannot pull it); near-zero samples always out."""
        logy = np.log(y)
        out = y < 1e-3 * float(np.median(y))
        for _ in range(2):
            resid = logy - self._out_of_fold_log(lin, logy, ~out, ids)
            resid -= np.median(resid[~out])
            scale = max(1.4826 * float(np.median(np.abs(resid[~out]))), 0.01)
            out = (np.abs(resid) > max(self.outlier_factor * scale, math.log(3.0))) | (y < 1e-3 * float(np.median(y)))
            if out.mean() > self.max_screened:
                break
        self.screened = [{"index": int(i), "latency_ms": float(y[i]), "log_residual": float(resid[i])}
                         for i in np.flatnonzero(out)]
        if out.mean() > self.max_screened:
            raise DegenerateFitError(
                f"end-to-end latency: {int(out.sum())} of {len(y)} samples look like measurement glitches "
                f"(near-zero or far off the rest; more than max_screened={self.max_screened:.0%}): "
                f"e.g. {[round(s['latency_ms'], 6) for s in self.screened[:5]]} ms against a median of "
                f"{np.median(y):.4g} ms; re-measure them")
        if out.any():
            warnings.warn(f"end-to-end latency: dropped {int(out.sum())} of {len(y)} samples as outliers "
                          f"(near-zero or far off the rest), at indices {[s['index'] for s in self.screened][:10]} "
                          f"with {[round(s['latency_ms'], 6) for s in self.screened][:10]} ms",
                          LatencyFitWarning, stacklevel=3)
        return ~out

    def _out_of_fold_log(self, lin: np.ndarray, logy: np.ndarray, train: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Out-of-fold ridge predictions of log latency for every sample, each fold trained on `train` samples."""
        pred = np.zeros(len(logy))
        for tr, te in group_folds(ids, self.folds, self.seed):
            tr = tr[train[tr]]
            pred[te] = _ridge(lin[tr], logy[tr]).predict(lin[te]) if len(tr) >= 2 else np.median(logy[train])
        return pred

    def _cross_validate(self, lin: np.ndarray, tree: np.ndarray, y: np.ndarray,
                        n_extra: int, ids: np.ndarray) -> tuple[dict[str, Candidate], dict[str, np.ndarray]]:
        """Out-of-fold predictions of every base regressor (once), averaged for the ensembles, and scored: each
        candidate's record and its per-sample relative errors (simplest first)."""
        from scipy.stats import kendalltau

        names = sorted((c for c in set(self.candidates) if n_extra or not {"extras", "stacked"} & set(c.split("+"))),
                       key=CANDIDATES.index)  # simplest first, whatever order they were given in
        if not names:
            raise ConfigError(f"candidates: {list(self.candidates)} all need extra features; none were given")
        parts = sorted({p for name in names for p in name.split("+")})
        oof = {p: np.zeros(len(y)) for p in parts}
        for tr, te in group_folds(ids, self.folds, self.seed):
            for p in parts:
                oof[p][te] = _predict(_fit(p, lin[tr], tree[tr], y[tr], self.seed, n_extra), lin[te], tree[te])
        out, errors = {}, {}
        for name in names:
            pred = np.mean([oof[p] for p in name.split("+")], axis=0)
            rel = np.abs(pred / y - 1)
            errors[name] = rel
            test = kendalltau(pred, y, alternative="greater")
            tau, p = float(test.statistic), float(test.pvalue)
            out[name] = Candidate(name, float(np.mean(rel)), tau if math.isfinite(tau) else 0.0,
                                  float(np.mean(rel <= 0.1)), p if math.isfinite(p) else 1.0)
        return out, errors

    def _ranks(self, c: Candidate) -> bool:
        """Whether out of fold `c` ranks the samples: tau above `min_tau` and significantly above 0 (`TAU_LEVEL`),
        so the bar falls as samples grow (chance taus of about +-0.2 pass a fixed 0.05 at N = 40)."""
        return c.cv_tau > self.min_tau and c.cv_tau_p < TAU_LEVEL

    def _choose(self, lin: np.ndarray, tree: np.ndarray, y: np.ndarray,
                errors: Mapping[str, np.ndarray]) -> tuple[str, list["_Part"], np.ndarray]:
        """(name, fitted parts, predictions on `y`'s samples) of the chosen candidate: among those that rank out of
        fold and whose refit is not near-constant, the simplest (in `CANDIDATES` order) whose cross-validated
        relative `errors` are within one standard error of the lowest MAPE's (`simplest_within_se`); none: refused
        naming what the lowest-MAPE candidate lacks."""
        order = sorted(self.cv.values(), key=lambda c: c.cv_mape)
        fits: dict[str, tuple[list[_Part], np.ndarray]] = {}

        def refit(name: str) -> tuple[list[_Part], np.ndarray]:
            if name not in fits:
                parts = _fit(name, lin, tree, y, self.seed, len(self.features))
                fits[name] = (parts, _predict(parts, lin, tree))
            return fits[name]

        eligible = [name for name in self.cv if self._ranks(self.cv[name])]  # simplest first (`CANDIDATES`)
        while eligible:
            name = eligible[simplest_within_se([errors[n] for n in eligible])]
            if np.std(refit(name)[1]) >= 0.05 * np.std(y):
                return name, *refit(name)
            eligible.remove(name)
        best = order[0]
        pred = refit(best.name)[1]
        if np.std(pred) < 0.05 * np.std(y):
            raise DegenerateFitError(f"end-to-end latency: the fitted {best.name} predicts a near-constant "
                                     f"{np.mean(pred):.4g} ms (spread {np.std(pred):.3g} ms against the samples' "
                                     f"{np.std(y):.3g} ms): it cannot rank architectures, nor can any other "
                                     "candidate")
        raise DegenerateFitError(f"end-to-end latency: out of fold the best regressor ({best.name}) does not rank "
                                 f"the samples (cross-validated Kendall tau {best.cv_tau:.2f}, one-sided p = "
                                 f"{best.cv_tau_p:.2g}: not above min_tau={self.min_tau} and 0 at the {TAU_LEVEL} "
                                 f"level, with {len(y)} samples), nor does any other candidate: the latencies do not "
                                 "follow the architectures, or too few samples were measured to show it")

    def _check_mape(self) -> None:
        assert self.chosen is not None
        cv = self.cv[self.chosen]
        if cv.cv_mape >= self.max_mape:
            raise DegenerateFitError(f"end-to-end latency: cross-validated MAPE {cv.cv_mape:.2f} of the best "
                                     f"regressor ({self.chosen}) is at or above max_mape={self.max_mape}: the "
                                     "samples do not determine latency (too few, or not one device's data)")
        if cv.cv_mape >= self.max_mape / 3:
            warnings.warn(f"end-to-end latency: cross-validated MAPE {cv.cv_mape:.2f} ({self.chosen}) is high",
                          LatencyFitWarning, stacklevel=3)

    # ------------------------------------------------------------------ use
    def predict(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predicted latency (ms) of each architecture."""
        if self.chosen is None:
            raise ConfigError("end-to-end latency: the model is not fitted (call fit)")
        lin, tree = self._columns([self.space.validate(a) for a in archs])
        self._check_coverage(tree)
        return _predict(self._fitted, lin, tree)

    def _check_coverage(self, tree: np.ndarray) -> None:
        """Record (and warn once per model) field values of `tree`'s architectures that no training sample used."""
        slots = self.space.slots()
        unseen = np.zeros(len(tree), dtype=bool)
        new: list[str] = []
        for j, seen in enumerate(self._seen):
            column = tree[:, j]
            for v in set(column.tolist()) - seen:
                unseen |= column == v
                name, shown = _slot_value(slots[j], v)
                values = self.extrapolation["unseen_values"].setdefault(name, [])
                if shown not in values:
                    values.append(shown)
                    new.append(f"{name}={shown!r}")
        if not unseen.any():
            return
        self.extrapolation["predictions"] += int(unseen.sum())
        if new and not self._warned_unseen:
            self._warned_unseen = True
            warnings.warn(f"end-to-end latency: predicting architectures with field values absent from the "
                          f"{self.n_samples} training samples ({', '.join(new[:8])}{', ...' if len(new) > 8 else ''}):"
                          f" the model extrapolates there, and its cross-validated MAPE "
                          f"{self.cv[self.chosen].cv_mape:.3f} says nothing about them; measure samples that use "
                          "them. Warned once per model; every such value is listed in "
                          "provenance()['extrapolation']", UnseenValueWarning, stacklevel=3)

    def latency_ms(self, arch: Mapping[str, Any]) -> float:
        return float(self.predict([arch])[0])

    def provenance(self) -> dict[str, Any]:
        return {"model": self.model, "device": self.device, "batch_size": self.batch_size,
                "samples": self.n_samples, "architectures": self.n_archs, "features": ["onehot/vector", *self.features],
                "feature_sources": dict(self.feature_sources), "chosen": self.chosen,
                "cv": {n: vars(c) for n, c in self.cv.items()}, "fit_mape": self.fit_mape,
                "screened": list(self.screened),
                "extrapolation": self.extrapolation}  # updated in place by predict: a provenance held elsewhere
                                                     # (CostModel's) shows later extrapolations too

    def to_dict(self) -> dict[str, Any]:
        """Plain data that refits the same model (`from_dict`): the samples and the settings, no pickles."""
        profile = {"device_profile": self.device_profile.to_dict()} if self.device_profile is not None else {}
        return {"device": self.device, **profile, "batch_size": self.batch_size, "seed": self.seed, "folds": self.folds,
                "candidates": list(self.candidates), "features": list(self.features), "screen": self.screen,
                "outlier_factor": self.outlier_factor, "max_screened": self.max_screened,
                "max_mape": self.max_mape, "min_tau": self.min_tau, "feature_sources": dict(self.feature_sources),
                "samples": [{"arch": a, "latency_ms": t} for a, t in self._samples], "provenance": self.provenance()}

    @classmethod
    def from_dict(cls, space: Space, data: Mapping[str, Any],
                  features: Mapping[str, Feature] | None = None) -> "EndToEndLatency":
        """Refit from `to_dict` output; `features` must supply the same names it was fitted with."""
        names = list(data.get("features", []))
        given = dict(features or {})
        if sorted(names) != sorted(given):
            raise ConfigError(f"features: the model was fitted with {names}, got {sorted(given)}")
        settings = {k: data[k] for k in ("outlier_factor", "max_screened", "max_mape", "min_tau") if k in data}
        device = data.get("device")
        if data.get("device_profile") is not None:  # a profile given by path or object: reloaded from its record
            try:
                device = DeviceProfile.from_dict(data["device_profile"])
            except (ConfigError, TypeError) as e:
                raise ConfigError(f"device_profile: not a valid device profile ({e})") from None
        model = cls(space, device, int(data.get("batch_size", 1)), {n: given[n] for n in names},
                    tuple(data.get("candidates", DEFAULT_CANDIDATES)), int(data.get("folds", 5)),
                    screen=bool(data.get("screen", True)), seed=int(data.get("seed", 0)),
                    feature_sources=dict(data.get("feature_sources") or {}),
                    **{k: float(v) for k, v in settings.items()})
        samples = data.get("samples") or []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LatencyFitWarning)  # warned at the original fit
            return model.fit([s["arch"] for s in samples], [s["latency_ms"] for s in samples])


def _slot_value(slot: Any, index: float) -> tuple[str, Any]:
    """(field name, JSON-ready value) of index-vector entry `index` of `slot` (see `Space.to_vector`)."""
    from nas.spaces.params import SubsetBit

    if index < 0:
        return slot.name, "inactive"
    if isinstance(slot.leaf, SubsetBit):
        return slot.name, "kept" if index == 1 else "dropped"
    return slot.name, slot.leaf.value(int(index))


def group_folds(ids: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) sample indices of a shuffled K-fold over distinct architecture ids (a group K-fold).

    Every copy of an architecture sits in one test fold, never in its own training fold; with all samples
    distinct this is exactly `KFold(shuffle=True)` on the samples.
    """
    from sklearn.model_selection import KFold

    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=int)
    rank[np.argsort(first)] = np.arange(len(first))  # groups numbered by first appearance
    group = rank[inverse.reshape(-1)]
    splitter = KFold(n_splits=min(folds, len(first)), shuffle=True, random_state=seed)
    out = []
    for _, test_groups in splitter.split(np.zeros(len(first))):
        test = np.isin(group, test_groups)
        out.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return out


# ---------------------------------------------------------------------------------------- regressors
def _ridge(x: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None) -> Any:
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    return model.fit(x, target, ridgecv__sample_weight=weight)


@dataclass
class _SubsetLinear:
    """Weighted least squares on the subset of the extra features with the smallest leave-one-out error.

    No shrinkage: the few extra features are collinear (FLOPs and parameters) and a ridge penalty would pull
    their weights together; an irrelevant one (another device's table) is left out by the subset choice.
    """

    columns: tuple[int, ...] = ()
    model: Any = None

    def fit(self, x: np.ndarray, target: np.ndarray, weight: np.ndarray) -> "_SubsetLinear":
        from sklearn.linear_model import LinearRegression

        k = x.shape[1]
        subsets = [c for r in range(1, k + 1) for c in itertools.combinations(range(k), r)] if k <= 4 \
            else [tuple(range(k))]
        self.columns = subsets[simplest_within_se([_loo_errors(x[:, c], target, weight) for c in subsets])]
        self.model = LinearRegression().fit(x[:, self.columns], target, sample_weight=weight)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x[:, self.columns])


def _loo_errors(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-sample weighted leave-one-out squared errors of least squares with an intercept (closed form, hat
    matrix)."""
    sw = np.sqrt(w)
    xw = np.hstack([x, np.ones((len(y), 1))]) * sw[:, None]
    hat = xw @ np.linalg.pinv(xw)
    lev = np.minimum(np.diag(hat), 1 - 1e-9)
    return ((sw * y - hat @ (sw * y)) / (1 - lev)) ** 2


def simplest_within_se(errors: Sequence[np.ndarray]) -> int:
    """Index of the first (simplest) option whose mean held-out error is within one standard error of the paired
    difference from the lowest (the one-standard-error rule, paired): a more complex option is taken only when
    the same samples show it better, not for a difference noise makes. `errors`: per-sample errors, simplest
    option first."""
    means = [float(np.mean(e)) for e in errors]
    best = int(np.argmin(means))
    for i, e in enumerate(errors[:best]):
        diff = e - errors[best]
        if float(np.mean(diff)) <= float(np.std(diff, ddof=1)) / math.sqrt(len(diff)):
            return i
    return best


def _relative(y: np.ndarray) -> np.ndarray:
    """Least-squares weights 1/y^2 (mean 1): squared error on raw latency becomes squared relative error."""
    w = 1.0 / y**2
    return w / w.mean()


@dataclass
class _Part:
    """One base regressor of a candidate: `kind` names its design and target (see `EndToEndLatency`)."""

    kind: str
    n_extra: int
    seed: int
    models: list[Any] = field(default_factory=list)

    def fit(self, lin: np.ndarray, tree: np.ndarray, y: np.ndarray) -> "_Part":
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

        extra, onehot = lin[:, lin.shape[1] - self.n_extra:], lin[:, :lin.shape[1] - self.n_extra]
        if self.kind == "extras":
            self.models = [_SubsetLinear().fit(extra, y, _relative(y))]
        elif self.kind == "stacked":  # extras first, then one-hot (shrunk) for what they leave
            base = _SubsetLinear().fit(extra, y, _relative(y))
            self.models = [base, _ridge(onehot, y - base.predict(extra), _relative(y))]
        elif self.kind == "ridge":
            self.models = [_ridge(lin, y, _relative(y))]
        elif self.kind == "ridge-log":
            self.models = [_ridge(lin, np.log(y))]
        elif self.kind == "forest":
            self.models = [RandomForestRegressor(n_estimators=64, max_features=0.5, random_state=self.seed,
                                                 n_jobs=1).fit(tree, np.log(y))]
        else:
            self.models = [GradientBoostingRegressor(loss="huber", n_estimators=100, max_depth=3, learning_rate=0.1,
                                                     subsample=0.8, random_state=self.seed).fit(tree, np.log(y))]
        return self

    def predict(self, lin: np.ndarray, tree: np.ndarray) -> np.ndarray:
        extra, onehot = lin[:, lin.shape[1] - self.n_extra:], lin[:, :lin.shape[1] - self.n_extra]
        if self.kind == "extras":
            return self.models[0].predict(extra)
        if self.kind == "stacked":
            return self.models[0].predict(extra) + self.models[1].predict(onehot)
        if self.kind == "ridge":
            return self.models[0].predict(lin)
        if self.kind == "ridge-log":
            return np.exp(self.models[0].predict(lin))
        return np.exp(self.models[0].predict(tree))


def _fit(name: str, lin: np.ndarray, tree: np.ndarray, y: np.ndarray, seed: int, n_extra: int) -> list[_Part]:
    """The fitted base regressors of candidate `name` ("a" or "a+b": the mean of both)."""
    return [_Part(kind, n_extra, seed).fit(lin, tree, y) for kind in name.split("+")]


def _predict(parts: Sequence[_Part], lin: np.ndarray, tree: np.ndarray) -> np.ndarray:
    pred = np.mean([p.predict(lin, tree) for p in parts], axis=0)
    return np.maximum(pred, 1e-6)  # a linear model can go below zero far from its data; latency cannot


# ---------------------------------------------------------------------------------------- sample files
def load_samples(path: str | Path, space: Space) -> tuple[list[Architecture], list[float]]:
    """(architectures, latencies) from a CSV, JSON Lines or JSON file of measured samples.

    CSV (UTF-8, with or without the byte-order mark Excel writes): a `latency_ms` column and either an `arch`
    column holding the architecture as a JSON object or one column per field (a cell is read as JSON where that
    gives a value its field accepts, else as text; the empty or `null` cell of a `Conditional` field inactive
    in that row is left out, an empty cell of an active field is an error naming it: `_row_arch`). JSON Lines
    (`.jsonl`, or `.json`): one object per line with `arch` and `latency_ms`. A `.json` file may instead hold
    one JSON array of such objects. Errors name the file, line (or array element) and field.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"samples: {p} does not exist")
    rows: list[tuple[str, Mapping[str, Any], Any]] = []
    if p.suffix in (".jsonl", ".json"):
        text = p.read_text(encoding="utf-8-sig")
        whole: Any = None
        if p.suffix == ".json":
            try:
                whole = json.loads(text)
            except json.JSONDecodeError:
                whole = None  # not one JSON document: read it as JSON Lines below
        if isinstance(whole, list):
            for n, obj in enumerate(whole):
                if not isinstance(obj, dict) or "arch" not in obj or "latency_ms" not in obj:
                    raise ConfigError(f"samples: {p} array element {n} needs 'arch' and 'latency_ms'")
                rows.append((f"array element {n}", obj["arch"], obj["latency_ms"]))
        else:
            hint = (" (a .json file of samples is JSON Lines, one {\"arch\": ..., \"latency_ms\": ...} object per "
                    "line, or one JSON array of such objects)") if p.suffix == ".json" else \
                " (JSON Lines: one {\"arch\": ..., \"latency_ms\": ...} object per line)"
            for n, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConfigError(f"samples: {p} line {n} is not JSON ({e}){hint}") from None
                if not isinstance(obj, dict) or "arch" not in obj or "latency_ms" not in obj:
                    raise ConfigError(f"samples: {p} line {n} needs 'arch' and 'latency_ms'{hint}")
                rows.append((f"line {n}", obj["arch"], obj["latency_ms"]))
    else:
        with p.open(newline="", encoding="utf-8-sig") as fh:  # utf-8-sig: Excel's "CSV UTF-8" starts with a BOM
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "latency_ms" not in reader.fieldnames:
                raise ConfigError(f"samples: {p} needs a 'latency_ms' column (has {reader.fieldnames})")
            for n, row in enumerate(reader, start=2):
                if None in row and any(c.strip() for c in row[None]):  # DictReader: cells beyond the header
                    raise ConfigError(f"samples: {p} line {n} has {len(row[None])} more cell(s) than the header "
                                      f"({', '.join(reader.fieldnames)})")
                if "arch" in row:
                    try:
                        arch = json.loads(row["arch"])
                    except (json.JSONDecodeError, TypeError) as e:
                        raise ConfigError(f"samples: {p} line {n}: 'arch' is not a JSON object ({e})") from None
                else:
                    cells = {k: v for k, v in row.items() if k is not None and k != "latency_ms"}
                    try:
                        arch = _row_arch(cells, space)
                    except ConfigError as e:
                        raise ConfigError(f"samples: {p} line {n}: {e}") from None
                rows.append((f"line {n}", arch, row["latency_ms"]))
    archs, ms = [], []
    for where, arch, value in rows:
        try:
            archs.append(space.validate(arch))
        except ConfigError as e:
            raise ConfigError(f"samples: {p} {where}: {e}") from None
        except Exception as e:  # InvalidArchitectureError names the field
            raise ConfigError(f"samples: {p} {where}: {e}") from None
        try:
            ms.append(float(value))
        except (TypeError, ValueError):
            raise ConfigError(f"samples: {p} {where}: latency_ms {value!r} is not a number") from None
        if not (math.isfinite(ms[-1]) and ms[-1] > 0):  # said here, the fit could only name a sample index
            raise ConfigError(f"samples: {p} {where}: latency_ms {value!r} is not a positive finite number of ms")
    if not archs:
        raise ConfigError(f"samples: {p} holds no samples")
    return archs, ms


def _row_arch(cells: Mapping[str, str | None], space: Space) -> dict[str, Any]:
    """The architecture in one CSV row of one column per field.

    Each cell is read by its field: as JSON where that parses to a value the field accepts, else as the raw text
    (a Choice of the strings "1" or "true" gets the string, which JSON would read as a number or a bool). A
    `Conditional` field inactive in this row (its controller has another value) is left out when its cell is
    empty or `null`: a CSV column cannot be removed for one row. An empty cell of an active field is an error
    naming the field, and so is a value in a field the row makes inactive. Anything else wrong (a missing
    column, a value that is not an option) is left to `space.validate`, which names the field.
    """
    fields: Mapping[str, Any] = getattr(space, "fields", None) or {}
    values = {k: _field_cell(fields.get(k), v) for k, v in cells.items()}
    arch: dict[str, Any] = {}
    for name, value in values.items():
        node = fields.get(name)
        empty = _is_empty(cells[name], value)
        active_because = ""
        if isinstance(node, Conditional):
            known, ctrl = _controller_value(fields, values, cells, node.on)
            if not known:  # the controller is missing or not an option: validate names it, not this field
                if not empty:
                    arch[name] = value
                continue
            if not node.active(ctrl):
                if empty:
                    continue
                raise ConfigError(f"{name}: {value!r} given, but the field is inactive because {node.on}={ctrl!r} "
                                  f"(active only for {list(node.values)}); leave its cell empty")
            active_because = f", but the field is active because {node.on}={ctrl!r}"
        if empty and node is not None:
            shown = "null" if value is None and cells[name] and cells[name].strip() else "empty"
            raise ConfigError(f"{name}: the cell is {shown}{active_because}")
        arch[name] = value
    return arch


def _controller_value(fields: Mapping[str, Any], values: Mapping[str, Any], cells: Mapping[str, str | None],
                      on: str) -> tuple[bool, Any]:
    """(whether the row gives controller `on` a valid value, that value)."""
    if on not in values or _is_empty(cells[on], values[on]):
        return False, None
    try:
        fields[on].index(values[on], on)
    except (InvalidArchitectureError, AttributeError):
        return False, None
    return True, values[on]


def _is_empty(text: str | None, value: Any) -> bool:
    """Whether a CSV cell holds nothing: blank, missing (a short row), or JSON null."""
    return text is None or not text.strip() or value is None


def _field_cell(node: Any, text: str | None) -> Any:
    """One CSV cell as the value of field `node`: JSON where it parses, unless only the raw text is an option."""
    if text is None:
        return None
    value = _cell(text)
    inner = node.node if isinstance(node, Conditional) else node
    if isinstance(inner, Choice) and value != text:
        try:
            inner.index(value, "")
        except InvalidArchitectureError:
            try:
                inner.index(text, "")
                return text
            except InvalidArchitectureError:
                pass
    return value


def _cell(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text
