"""The gym's proxy cost model: random forests learned from logged trials, queried through onnxruntime."""

from __future__ import annotations

import logging
import math
import numbers
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import ConfigError, InvalidArchitectureError
from nas.result import SearchResult
from nas.spaces import Space

log = logging.getLogger(__name__)


class OnnxForests:
    """Fitted scikit-learn forests compiled into one ONNX graph (skl2onnx's TreeEnsembleRegressor, one output
    per forest) and run by onnxruntime on one thread: a single query costs about 10-20 us, where scikit-learn's
    `predict` costs milliseconds per call whatever the batch. Predictions equal the forests' up to float32
    rounding (scikit-learn also compares float32 features)."""

    def __init__(self, forests: Sequence[Any], n_features: int) -> None:
        import onnx
        from onnx import compose, helper
        from skl2onnx import to_onnx

        if not forests:
            raise ConfigError("OnnxForests: no forest to compile")
        example = np.zeros((1, n_features), dtype=np.float32)
        models = [compose.add_prefix(to_onnx(rf, example, target_opset={"": 17, "ai.onnx.ml": 3}), f"f{i}_",
                                     rename_inputs=False)
                  for i, rf in enumerate(forests)]
        graph = helper.make_graph([n for m in models for n in m.graph.node], "forests", list(models[0].graph.input),
                                  [o for m in models for o in m.graph.output],
                                  [t for m in models for t in m.graph.initializer])
        model = helper.make_model(graph, opset_imports=list(models[0].opset_import))
        onnx.checker.check_model(model)
        self.model, self.n_features = model.SerializeToString(), n_features
        self._open()

    def _open(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.model, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __getstate__(self) -> dict[str, Any]:  # an onnxruntime session does not pickle: send the model bytes
        return {"model": self.model, "n_features": self.n_features}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.model, self.n_features = state["model"], state["n_features"]
        self._open()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs for one feature vector [F] -> [outputs], or a batch [S, F] -> [S, outputs]."""
        x = np.asarray(x, dtype=np.float32)
        single = x.ndim == 1
        outs = self.session.run(None, {self.input: x.reshape(1, -1) if single else x})
        pred = np.concatenate([o.reshape(len(o), -1) for o in outs], axis=1).astype(np.float64)
        return pred[0] if single else pred


@dataclass(frozen=True)
class ProxyAccuracy:
    """How a proxy predicts one metric on held-out architectures: RMSE as a percentage of the held-out
    truth's range (max - min), the measure ArchGym reports, plus Kendall tau."""

    metric: str
    n_train: int
    n_test: int
    rmse: float
    target_range: float
    rmse_pct_of_range: float
    mae: float
    kendall_tau: float


class ProxyCostModel:
    """A random forest per metric (scikit-learn) on the space's numeric encoding (`space.to_vector`), trained
    on logged trials; `proxy(arch) -> {metric: prediction}` makes it a drop-in evaluator."""

    def __init__(self, space: Space, metrics: Sequence[str], forests: Sequence[Any], n_train: int,
                 source: str = "") -> None:
        self.space, self.metrics, self.forests, self.n_train, self.source = space, list(metrics), list(forests), n_train, source
        self.compiled = OnnxForests(self.forests, int(self.forests[0].n_features_in_))

    def features(self, archs: Iterable[Mapping[str, Any]]) -> np.ndarray:
        return np.array([self.space.to_vector(a) for a in archs], dtype=float)

    @classmethod
    def fit(cls, space: Space, archs: Sequence[Mapping[str, Any]], targets: Mapping[str, Sequence[float]],
            n_estimators: int = 50, min_samples_leaf: int = 1, max_features: float = 1.0, seed: int = 0,
            source: str = "") -> "ProxyCostModel":
        from sklearn.ensemble import RandomForestRegressor

        if not targets:
            raise ConfigError("ProxyCostModel.fit: targets: expected at least one metric")
        if not archs:
            raise ConfigError("ProxyCostModel.fit: no architectures to learn from")
        x = np.array([space.to_vector(a) for a in archs], dtype=float)
        forests = []
        for metric, y in targets.items():
            if len(y) != len(x):
                raise ConfigError(f"ProxyCostModel.fit: {len(y)} values of {metric!r} for {len(x)} architectures")
            rf = RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=min_samples_leaf,
                                       max_features=max_features, random_state=seed, n_jobs=1)
            forests.append(rf.fit(x, np.asarray(y, dtype=float)))
        return cls(space, list(targets), forests, len(x), source)

    @classmethod
    def from_trials(cls, space: Space, trials: Iterable[Any], metrics: Sequence[str], **options: Any) -> "ProxyCostModel":
        """Learn from journaled trials (`nas.Trial`): every distinct architecture with all `metrics`, once."""
        metrics = _metric_names(metrics)
        trials = [t for t in trials if t.status != "failed"]
        missing = [m for m in metrics if not any(_finite(t.metrics.get(m)) for t in trials)]
        if missing:
            recorded = sorted({m for t in trials for m in t.metrics})
            raise ConfigError(f"metrics: no finished trial records {', '.join(map(repr, missing))} "
                              f"(recorded: {', '.join(recorded) or 'nothing'})")
        seen: dict[str, tuple[dict[str, Any], dict[str, float]]] = {}
        for t in trials:
            if not all(_finite(t.metrics.get(m)) for m in metrics):
                continue
            seen.setdefault(t.arch_id, (t.arch, {m: float(t.metrics[m]) for m in metrics}))
        if not seen:
            raise ConfigError(f"metrics: no finished trial records all of {', '.join(map(repr, metrics))}")
        archs = [space.validate(a) for a, _ in seen.values()]
        return cls.fit(space, archs, {m: [v[m] for _, v in seen.values()] for m in metrics}, **options)

    @classmethod
    def from_journals(cls, space: Space, workdirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                      metrics: Sequence[str], **options: Any) -> "ProxyCostModel":
        """Learn from the journals of earlier searches: every `journal.jsonl` in or below one folder or several.
        A journal holding an architecture `space` refuses searched another space (a gym's multi-fidelity runs on
        a `FidelitySpace`, whose low-fidelity metrics would mislead the proxy anyway): it is left out, logged
        with its path; when every journal is, a ConfigError names one and why."""
        single = isinstance(workdirs, (str, os.PathLike))
        folders = [workdirs] if single else list(workdirs)
        if not folders:
            raise ConfigError("workdirs: expected at least one folder")
        found: set[Path] = set()
        for i, d in enumerate(folders):
            field = "workdirs" if single else f"workdirs[{i}]"
            if not isinstance(d, (str, os.PathLike)):
                raise ConfigError(f"{field}: expected a folder path, got {d!r}")
            if not os.fspath(d) or not Path(d).is_dir():
                raise ConfigError(f"{field}: {os.fspath(d)!r} is not a folder")
            journals = {p.parent for p in Path(d).rglob("journal.jsonl")}
            if not journals:
                raise ConfigError(f"{field}: no journal.jsonl in or below {os.fspath(d)!r}")
            found |= journals
        trials: list[Any] = []
        used: list[Path] = []
        other: list[tuple[Path, str]] = []  # journals of another space (a gym's FidelitySpace runs), and why
        for d in sorted(found):
            logged = SearchResult.load(d).trials
            try:
                for t in logged:
                    space.validate(t.arch)
            except (ConfigError, InvalidArchitectureError) as e:
                other.append((d, str(e)))
                continue
            trials += logged
            used.append(d)
        if not used:
            raise ConfigError(f"workdirs: every journal searched another space than this {type(space).__name__}, "
                              f"e.g. {other[0][0]}: {other[0][1]}")
        if other:
            log.warning("ProxyCostModel.from_journals: %d journal(s) of another space left out (their architectures "
                        "are not this %s's), e.g. %s: %s", len(other), type(space).__name__, *other[0])
        skipped = f", {len(other)} journals of another space left out" if other else ""
        options.setdefault("source", f"{len(trials)} trials in {len(used)} journals{skipped}")
        return cls.from_trials(space, trials, metrics, **options)

    def __call__(self, arch: Mapping[str, Any]) -> dict[str, float]:
        pred = self.compiled.predict(self.space.to_vector(arch))
        return {m: float(v) for m, v in zip(self.metrics, pred)}

    def predict(self, archs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        pred = self.compiled.predict(self.features(archs))
        return {m: pred[:, i] for i, m in enumerate(self.metrics)}

    def accuracy(self, archs: Sequence[Mapping[str, Any]], truth: Mapping[str, Sequence[float]]) -> list[ProxyAccuracy]:
        """RMSE (and % of range), MAE and Kendall tau per metric against `truth` on held-out `archs`."""
        from scipy.stats import kendalltau

        pred = self.predict(archs)
        out = []
        for m in self.metrics:
            y = np.asarray(truth[m], dtype=float)
            err = pred[m] - y
            rmse, rng = float(np.sqrt(np.mean(err ** 2))), float(y.max() - y.min())
            tau = float(kendalltau(pred[m], y).statistic) if len(y) > 1 else float("nan")
            out.append(ProxyAccuracy(m, self.n_train, len(y), rmse, rng, 100.0 * rmse / rng if rng > 0 else float("nan"),
                                     float(np.mean(np.abs(err))), tau))
        return out


def _finite(value: Any) -> bool:
    """Whether a recorded metric value is a finite number (a missing one is None)."""
    return isinstance(value, numbers.Real) and math.isfinite(value)


def _metric_names(metrics: str | Sequence[str]) -> list[str]:
    """`metrics` as a non-empty list of names (one name may be given as a string)."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names or not all(isinstance(m, str) for m in names):
        raise ConfigError(f"metrics: expected one or more metric names, got {metrics!r}")
    return names


def time_per_query(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    """Median wall seconds of `fn(item)` over `items`, one call each (a search queries one at a time)."""
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
