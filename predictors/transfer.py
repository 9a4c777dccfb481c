"""Transfer from a related task's results: another search's journal or another table's rows as a predictor prior.

A related task (the same space on another data set, a cheaper proxy task, another device) ranks architectures
roughly as the target does: on NAS-Bench-Graph the tables' latencies agree to Kendall tau 0.65-0.78 and their
validation accuracies to 0.32-0.39. `TransferPrior` holds such results, looked up by architecture id and
then by the space's canonical key (isomorphic twins share a value), each metric mapped to its quantile
within its source so sources of any scale combine. `TransferPredictor` regresses the target's quantiles
on that prior (least squares, so a useless prior gets a slope near 0) and fits its base predictor on what
the prior leaves unexplained (or ranks by the prior alone). `predictor-search` (option `transfer`) cross-validates
both against its default predictor and uses one only where its out-of-fold ranking is clearly better
(nas.predictors.selection's one-standard-error rule): a prior is used when it helps, and not otherwise.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import ConfigError, NASError
from nas.spaces import Architecture, Space
from nas.predictors.base import Predictor, RankTarget

logger = logging.getLogger(__name__)

Source = str | os.PathLike[str]


class TransferPrior:
    """Per metric, each known architecture's quantile within its source (mean over sources that have it).

    Build it from records (`TransferPrior(space, [(config, metrics), ...])`) or `TransferPrior.load(space,
    paths)`: a search workdir (its completed trials) or a JSON-lines file of {"config": ..., "metrics": ...}
    records, per path. Architectures the sources lack get the neutral quantile 0.5 (`coverage` says how many
    were found).
    """

    def __init__(self, space: Space, sources: Sequence[Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]],
                 names: Sequence[str] | None = None) -> None:
        self.space = space
        self.names = list(names) if names is not None else [f"source {i}" for i in range(len(sources))]
        quantiles: dict[str, dict[str, list[float]]] = {}  # metric -> arch id -> its quantile in each source
        self._archs: dict[str, Architecture] = {}  # id -> architecture (canonical keys are computed on a miss)
        for s, records in enumerate(sources):
            values: dict[str, dict[str, float]] = {}  # metric -> arch id -> value
            for i, (config, metrics) in enumerate(records):
                try:
                    arch = space.validate(config)  # an Architecture of another space is refused here too
                except NASError as e:
                    raise ConfigError(f"transfer: {self.names[s]}, record {i}: {e}") from None
                self._archs[arch.id] = arch
                for metric, v in metrics.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
                        values.setdefault(metric, {})[arch.id] = float(v)
            for metric, by_id in values.items():
                q = RankTarget().transform(np.fromiter(by_id.values(), dtype=float, count=len(by_id)))
                for arch_id, qi in zip(by_id, q):
                    quantiles.setdefault(metric, {}).setdefault(arch_id, []).append(float(qi))
        if not sources:
            raise ConfigError("transfer: give at least one source (a search workdir or a file of records)")
        if not quantiles:
            raise ConfigError(f"transfer: {', '.join(self.names)} {'holds' if len(sources) == 1 else 'hold'} no finite "
                              "metric values")
        self._by_id = {m: {k: sum(v) / len(v) for k, v in by_id.items()} for m, by_id in quantiles.items()}
        self._by_key: dict[str, dict[str, float]] = {}  # metric -> canonical key -> quantile, built on a miss

    @classmethod
    def load(cls, space: Space, paths: Source | Sequence[Source]) -> "TransferPrior":
        """Sources from paths: a search workdir (its completed trials) or a .jsonl/.json file of records."""
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else paths
        if (not isinstance(paths, Sequence) or not paths
                or not all(isinstance(p, (str, os.PathLike)) for p in paths)):
            raise ConfigError(f"transfer: expected a workdir or records file path, or a list of them, got {paths!r}")
        return cls(space, [_records(Path(p), space) for p in paths], [str(p) for p in paths])

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(self._by_id)

    def _key_table(self, metric: str) -> dict[str, float]:
        """Canonical key -> quantile (the mean over an isomorphism class), computed once on the first miss."""
        table = self._by_key.get(metric)
        if table is None:
            sums: dict[str, list[float]] = {}
            for arch_id, q in self._by_id[metric].items():
                sums.setdefault(self.space.canonical_key(self._archs[arch_id]), []).append(q)
            table = self._by_key[metric] = {k: float(np.mean(v)) for k, v in sums.items()}
        return table

    def _lookup(self, metric: str, archs: Sequence[Architecture]) -> np.ndarray:
        """The prior quantile of each architecture for `metric`, by id, then by canonical key; NaN where none."""
        by_id = self._by_id.get(metric)
        if by_id is None:
            raise ConfigError(f"transfer: no source has metric {metric!r} (they have {sorted(self._by_id)})")
        out = np.array([by_id.get(a.id, np.nan) for a in archs], dtype=float)
        missing = np.flatnonzero(np.isnan(out))
        if len(missing):
            table = self._key_table(metric)
            for i in missing:
                out[i] = table.get(self.space.canonical_key(archs[i]), np.nan)
        return out

    def values(self, metric: str, archs: Sequence[Architecture]) -> np.ndarray:
        """The prior quantile of each architecture for `metric` (0.5 where no source has it)."""
        out = self._lookup(metric, archs)
        return np.where(np.isnan(out), 0.5, out)

    def coverage(self, metric: str, archs: Sequence[Architecture]) -> float:
        """The fraction of `archs` some source has a `metric` value for (by id or canonical key)."""
        return float(np.mean(~np.isnan(self._lookup(metric, archs)))) if archs else 0.0


def _field_difference(spec: Any, space: Space) -> str:
    """The first top-level field at which a recorded `Space.to_spec()` differs from `space` (or its type)."""
    mine = space.to_spec()
    if not isinstance(spec, Mapping) or spec.get("type") != mine.get("type"):
        return "its type"
    theirs, ours = spec.get("fields") or {}, mine.get("fields") or {}
    for name in list(ours) + [k for k in theirs if k not in ours]:
        if theirs.get(name) != ours.get(name):
            return f"field {name}"
    return "its settings"


def _records(path: Path, space: Space) -> list[tuple[Mapping[str, Any], dict[str, Any]]]:
    """(config, metrics) pairs: a workdir's completed trials (over `space`: checked like `warm_start`), or the
    records of a JSON(-lines) file (each config validated against `space`)."""
    from nas import jsonio
    from nas.store import Journal

    if path.is_dir():
        journal = Journal(path)
        if not journal.exists():
            raise ConfigError(f"transfer: {path} holds no search journal")
        contents = journal.read()
        if contents.config.get("space") != space.fingerprint():
            raise ConfigError(f"transfer: {path} searched a different space (it differs at "
                              f"{_field_difference(contents.config.get('space_spec'), space)})")
        return [(t.architecture, dict(t.metrics)) for t in contents.trials if t.status == "ok"]
    if not path.exists():
        raise ConfigError(f"transfer: {path} does not exist (a search workdir or a .jsonl file of records)")
    rows = (jsonio.read_json(path, "transfer records") if path.suffix == ".json"
            else [r for _, r in jsonio.read_jsonl(path, "transfer records").records])
    if not isinstance(rows, list):
        raise ConfigError(f"transfer: {path} must hold a list of {{'config': ..., 'metrics': ...}} records")
    out = []
    for i, r in enumerate(rows):
        if not (isinstance(r, Mapping) and isinstance(r.get("config"), Mapping) and isinstance(r.get("metrics"), Mapping)):
            raise ConfigError(f"transfer: {path}, record {i}: expected {{'config': {{...}}, 'metrics': {{...}}}}")
        out.append((dict(r["config"]), dict(r["metrics"])))
    return out


def _private_copy(predictor: Predictor) -> Predictor:
    """A deep copy of an (unfitted or fitted) predictor that still shares its space and any `pretrain_cache` (shared
    on purpose); kept across refits, so its caches persist, and fitting it leaves the caller's predictor as it was."""
    shared: list[Any] = [predictor.space, getattr(predictor, "pretrain_cache", None)]
    return copy.deepcopy(predictor, {id(obj): obj for obj in shared if obj is not None})


class TransferPredictor(Predictor):
    """`base` fitted on what a related task's values leave unexplained: in normal scores of the quantiles,
    target = a + b x prior + base (least squares for a and b); without a base, the prior alone (a + b x prior).

    Not in the registry: it needs a live `TransferPrior` and a metric (`predictor-search` builds it). It fits a copy
    of `base` (the caller's predictor keeps its seed and fit). Its state is the base predictor's configuration and
    the training set, like every predictor's.
    """

    name = "transfer"

    def __init__(self, space: Space, seed: int = 0, base: Predictor | None = None,
                 prior: TransferPrior | None = None, metric: str = "") -> None:
        if prior is None:
            raise ConfigError("transfer: give a TransferPrior")
        if metric not in prior.metrics:
            raise ConfigError(f"transfer: no source has metric {metric!r} (they have {sorted(prior.metrics)})")
        self.needs = base.needs if base is not None else frozenset()  # type: ignore[misc]
        super().__init__(space, seed)
        self.base = None if base is None else _private_copy(base)
        self.prior, self.metric = prior, metric
        self.slope = self.intercept = 0.0

    def config(self) -> dict[str, Any]:
        base = None if self.base is None else {"type": self.base.name, "config": self.base.config()}
        return {"seed": self.seed, "metric": self.metric, "base": base}

    def _scores(self, archs: list[Architecture]) -> np.ndarray:
        """The prior as normal scores: the tails, where a search works, stay spread out (0.98 and 0.999 -> 2.1, 3.1)."""
        from scipy.stats import norm

        return norm.ppf(self.prior.values(self.metric, archs))

    def _fit(self, archs: list[Architecture], y: np.ndarray) -> None:
        from scipy.stats import norm

        z = norm.ppf(RankTarget().transform(y))  # the targets' normal scores (a Gaussian copula with the prior's)
        order = np.argsort(z, kind="stable")
        self._z, self._y = z[order], y[order]
        # back to the target's scale: through the training points, linearly beyond them (a prediction above the best
        # result so far must stay above it: the search looks for exactly those)
        self._scale = max(float(np.polyfit(z, y, 1)[0]), 0.0) if np.ptp(z) > 0 else 0.0
        p = self._scores(archs)
        if np.ptp(p) > 0:
            self.slope, self.intercept = (float(v) for v in np.polyfit(p, z, 1))
        else:  # the prior tells these architectures apart in nothing: no transfer
            self.slope, self.intercept = 0.0, float(z.mean())
        residual = z - (self.intercept + self.slope * p)
        self._residual_sd = float(np.sqrt(np.mean(residual**2)))
        if self.base is not None:
            self.base.seed = self.seed
            self.base.fit(archs, residual + np.linspace(0.0, 1e-12, len(residual)) * (np.ptp(residual) == 0))

    def _predict(self, archs: list[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        if self.base is None:  # the prior alone; its uncertainty is the residual spread of the fit
            mean, std = np.zeros(len(archs)), np.full(len(archs), self._residual_sd)
        else:
            mean, std = self.base.predict(archs)
        z = self.intercept + self.slope * self._scores(archs) + mean
        y = np.interp(z, self._z, self._y)
        y = y + self._scale * (np.minimum(z - self._z[0], 0.0) + np.maximum(z - self._z[-1], 0.0))
        return y, self._scale * np.asarray(std, dtype=float)
