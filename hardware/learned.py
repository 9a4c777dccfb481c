"""Learned latency (nn-Meter style) and few-shot onboarding of a new device.

* `LayerLatencyModel`: one random forest per layer group (kind, plus string options such as the op name)
  on per-layer features (numeric options, input shape, batch, log FLOPs / parameters / bytes moved),
  trained on measured layer samples (e.g. the entries of a lookup table) and predicting layers never
  measured. An architecture's latency is the sum over its layers, as in nn-Meter's kernel-level model.
* `LayerwiseLatency`: sums any per-layer latency (a table's, a learned model's) over an architecture,
  optionally through a `Calibration` fitted on N measured architectures: per-kind scale factors and a
  constant overhead, which is how a model built on one device is onboarded to another (few-shot).
"""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.errors import ConfigError, check_int
from nas.hardware.layers import LayerAdapter, LayerConfig
from nas.hardware.lut import LatencyTable, adapter_differences, check_profile

Counts = tuple[int, int, int]  # flops, params, bytes moved
ZERO_MS = 1e-6  # what a table's 0 ms entry (a layer that launched no GPU work) is trained as: 1 ns, so its log exists


class DegenerateFitError(ConfigError):
    """A latency fit refused because it would not rank architectures (constant predictions, near-zero
    targets, a relative error close to 1); the message names which."""


class LatencyFitWarning(UserWarning):
    """A latency fit went ahead but dropped samples or fits poorly; the message names what."""


def _numbers(value: Any) -> list[float] | None:
    """A numeric option as numbers (bools as 0/1, lists and tuples of numbers flattened); None when it is not one."""
    if isinstance(value, (bool, int, float)):
        return [float(value)]
    if isinstance(value, (list, tuple)):
        parts = [_numbers(v) for v in value]
        return None if any(p is None for p in parts) else [x for p in parts if p is not None for x in p]
    return None


def layer_group(layer: LayerConfig) -> str:
    """The model a layer belongs to: its kind plus its string options (e.g. `op/sep_conv_3x3`), and any other option
    that is not numeric (`None`, a list holding a string) as `name=JSON` (`align_corners=null`)."""
    names = [str(v) if isinstance(v, str) else f"{k}={json.dumps(v)}"
             for k, v in layer.options if isinstance(v, str) or _numbers(v) is None]
    return "/".join([layer.kind, *names])


def layer_features(layer: LayerConfig, counts: Counts, batch_size: int) -> np.ndarray:
    """Numeric options (bools as 0/1, sequences such as `kernel_size=[3, 3]` flattened), input shape, batch size,
    and log1p of FLOPs, parameters and bytes; non-numeric options are in the layer's group (`layer_group`)."""
    opts = [x for _, v in layer.options for x in (_numbers(v) or [])]
    flops, params, moved = counts
    return np.array([*opts, *map(float, layer.input_shape), float(batch_size),
                     math.log1p(flops), math.log1p(params), math.log1p(moved)])


def feature_names(layer: LayerConfig) -> list[str]:
    """Names of `layer_features(layer, ...)`'s entries, in order: `kernel_size[0]`, `input_shape[1]`,
    `batch_size`, `log1p(flops)` (for messages and the extrapolation record)."""
    opts = []
    for k, v in layer.options:
        numbers = _numbers(v) or []
        opts += [k] if isinstance(v, (bool, int, float)) else [f"{k}[{i}]" for i in range(len(numbers))]
    return [*opts, *(f"input_shape[{i}]" for i in range(len(layer.input_shape))), "batch_size",
            "log1p(flops)", "log1p(params)", "log1p(bytes_moved)"]


def _check_counts(layer: LayerConfig, counts: Any) -> None:
    """ConfigError naming the layer when its counts are not three whole numbers >= 0 (their log is a feature)."""
    ok = (isinstance(counts, (tuple, list)) and len(counts) == 3
          and all(not isinstance(c, bool) and isinstance(c, (int, np.integer)) and c >= 0 for c in counts))
    if not ok:
        raise ConfigError(f"fit: layer {layer.key}: counts must be (flops, params, bytes_moved), whole numbers "
                          f">= 0, got {counts!r}")


def _stack_features(group: str, layers: Sequence[LayerConfig], counts: Sequence[Counts], batch_size: int) -> np.ndarray:
    """The features of one group's layers as a matrix; ConfigError naming two layers whose features differ in length
    (an option or input shape of another length: the group's regressor needs one feature vector shape)."""
    rows = [layer_features(layer, c, batch_size) for layer, c in zip(layers, counts)]
    odd = next((i for i, r in enumerate(rows) if r.shape != rows[0].shape), None)
    if odd is not None:
        raise ConfigError(f"fit: layers of group {group!r} have features of different lengths ({layers[0].key}: "
                          f"{rows[0].size}, {layers[odd].key}: {rows[odd].size}): an option or the input shape has "
                          "another number of entries")
    return np.stack(rows)


class LayerLatencyModel:
    """Per-group random-forest regressors of log latency from layer features (nn-Meter's kernel predictors)."""

    def __init__(self, n_estimators: int = 200, min_samples_leaf: int = 1, seed: int = 0) -> None:
        self.n_estimators, self.min_samples_leaf, self.seed = n_estimators, min_samples_leaf, seed
        self.models: dict[str, Any] = {}
        self.samples: dict[str, int] = {}
        self.batch_size: int | None = None
        self.threads: int | None = None  # CPU threads the samples were timed with (None: not recorded, or a GPU)
        self.source: dict[str, Any] = {}
        self.space_description: Any = None  # the space description of the table trained on (`from_table`), else None
        self.ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # per group: training features' min and max
        # layers predicted with features outside their group's training range (key -> feature -> value, range);
        # shared with `learned_latency`'s provenance, which shows later predictions too
        self.extrapolation: dict[str, Any] = {"layers": {}}
        self._warned = False

    def fit(self, layers: Sequence[LayerConfig], counts: Sequence[Counts], latency_ms: Sequence[float],
            batch_size: int, source: Mapping[str, Any] | None = None,
            threads: int | None = None) -> "LayerLatencyModel":
        """Train on measured layers (each with its counts) at one batch size, timed on `threads` CPU threads."""
        from sklearn.ensemble import RandomForestRegressor

        if not (len(layers) == len(counts) == len(latency_ms)) or not layers:
            raise ConfigError("fit: give equally many layers, counts and latencies (at least one)")
        check_latencies(latency_ms, "fit: latency_ms")
        for layer, c in zip(layers, counts):
            _check_counts(layer, c)
        if threads is not None:
            check_int(threads, "threads", 1)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, layer in enumerate(layers):
            groups[layer_group(layer)].append(i)
        self.models, self.samples = {}, {}
        for g, idx in groups.items():
            x = _stack_features(g, [layers[i] for i in idx], [counts[i] for i in idx], batch_size)
            y = np.log(np.asarray([latency_ms[i] for i in idx], dtype=float))
            rf = RandomForestRegressor(n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                       random_state=self.seed, n_jobs=1)
            self.models[g] = rf.fit(x, y)
            self.samples[g] = len(idx)
            self.ranges[g] = (x.min(axis=0), x.max(axis=0))
        self.batch_size, self.threads = batch_size, threads
        self.source = {**dict(source or {}), "threads": threads}
        self.space_description, self.extrapolation, self._warned = None, {"layers": {}}, False
        return self

    @classmethod
    def from_table(cls, table: LatencyTable, fraction: float = 1.0, seed: int = 0,
                   **kwargs: Any) -> "LayerLatencyModel":
        """Train on a lookup table's entries, or a random `fraction` of each layer group's (at least one each)."""
        if not 0 < fraction <= 1:
            raise ConfigError(f"fraction: expected 0 < fraction <= 1, got {fraction!r}")
        table.check_host()
        by_group: dict[str, list[Any]] = defaultdict(list)
        for e in table.entries.values():
            by_group[layer_group(e.layer)].append(e)
        rng = np.random.default_rng(seed)
        entries = []
        for group in by_group.values():
            keep = rng.choice(len(group), size=max(1, round(fraction * len(group))), replace=False)
            entries += [group[i] for i in sorted(keep)]
        threads = table.header.get("threads")
        source = {"table": str(table.path) if table.path else None, "statistic": table.statistic,
                  "samples": len(entries), "fraction": fraction, "device": table.device}
        counts = [(e.flops, e.params, e.bytes_moved) for e in entries]
        where = f"from_table: latency table {table.path or '(in memory)'}"
        values = []
        for e in entries:
            v = e.value(table.statistic)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{where}: layer {e.layer.key}: {table.statistic}_ms {v!r} is not a finite number "
                                  "of milliseconds >= 0")
            values.append(v)
        zeros = sum(v == 0 for v in values)
        if zeros:  # a layer that launched no work timed at 0 (allowed in a table): trained as ZERO_MS, so log exists
            source["zero_ms_entries"] = zeros
        try:
            model = cls(seed=seed, **kwargs).fit([e.layer for e in entries], counts,
                                                 [max(v, ZERO_MS) for v in values], table.batch_size, source,
                                                 threads if isinstance(threads, int) and not isinstance(threads, bool)
                                                 else None)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        model.space_description = table.header.get("adapter")
        return model

    def predict(self, layer: LayerConfig, counts: Counts) -> float:
        """Predicted latency (ms) of one layer."""
        g = layer_group(layer)
        if g not in self.models:
            raise ConfigError(f"learned latency: no samples of layer group {g!r} were seen in training "
                              f"(trained on: {', '.join(sorted(self.models)) or 'nothing'})")
        assert self.batch_size is not None
        x = layer_features(layer, counts, self.batch_size)[None, :]
        if x.shape[1] != self.models[g].n_features_in_:
            raise ConfigError(f"learned latency: layer {layer.key} has {x.shape[1]} numeric features, the layers of "
                              f"group {g!r} it was trained on {self.models[g].n_features_in_} (an option or the "
                              "input shape has another length)")
        self._check_range(layer, g, x[0])
        return float(np.exp(self.models[g].predict(x)[0]))

    def _check_range(self, layer: LayerConfig, group: str, x: np.ndarray) -> None:
        """Record (and warn once per model, `LatencyFitWarning`) a layer whose features fall outside the range of
        its group's training samples: a random forest cannot extrapolate, it prices such a layer as the nearest
        trained ones (a 64-channel conv as a 4-channel one), so a latency constraint cannot tell them apart."""
        if group not in self.ranges:  # a model fitted before ranges were kept
            return
        lo, hi = self.ranges[group]
        tol = 1e-9 * np.maximum(np.abs(lo), np.abs(hi))
        out = np.flatnonzero((x < lo - tol) | (x > hi + tol))
        if not out.size or layer.key in self.extrapolation["layers"]:
            return
        names = feature_names(layer)
        outside = {names[i] if i < len(names) else f"feature[{i}]":
                   {"value": float(x[i]), "trained": [float(lo[i]), float(hi[i])]} for i in out}
        self.extrapolation["layers"][layer.key] = outside
        if not self._warned:
            self._warned = True
            shown = ", ".join(f"{k} {v['value']:.4g} (trained {v['trained'][0]:.4g} to {v['trained'][1]:.4g})"
                              for k, v in list(outside.items())[:4])
            warnings.warn(f"learned latency: layer {layer.key} lies outside the {self.samples[group]} training "
                          f"sample(s) of group {group!r}: {shown}. A random forest cannot extrapolate; it prices "
                          "such a layer as the nearest trained ones. Train on layers that cover it (a table of this "
                          "space). Warned once per model; every such layer is listed in model.extrapolation "
                          "(provenance()['extrapolation'] of its learned latency)", LatencyFitWarning, stacklevel=3)


@dataclass(frozen=True)
class Calibration:
    """latency = sum over kinds of scale[kind] x (base latency of that kind's layers) + intercept_ms; a kind no
    calibration architecture used gets `shared_scale` (with a `LatencyFitWarning`)."""

    scales: dict[str, float]
    intercept_ms: float
    n_archs: int
    device: str | None = None
    fit_mape: float | None = None
    excluded: tuple[int, ...] = ()  # indices of measured samples screened out as glitches
    shared_scale: float | None = None  # for kinds no calibration architecture used; None: the mean of `scales`

    @property
    def unseen_scale(self) -> float:
        """The scale of a kind absent from the calibration: the shared scale (the mean scale when not stored)."""
        if self.shared_scale is not None:
            return self.shared_scale
        return float(np.mean(list(self.scales.values()))) if self.scales else 1.0

    def apply(self, by_kind: Mapping[str, float]) -> float:
        unseen = sorted(k for k, v in by_kind.items() if k not in self.scales and v)
        if unseen:
            warnings.warn(f"calibration: layer kind(s) {', '.join(unseen)} were in no calibration architecture; "
                          f"they get the shared scale {self.unseen_scale:.4g} (onboard with architectures using "
                          "them to fit their own)", LatencyFitWarning, stacklevel=3)
        return float(sum(self.scales.get(k, self.unseen_scale) * v for k, v in by_kind.items()) + self.intercept_ms)

    def to_dict(self) -> dict[str, Any]:
        return {"scales": dict(self.scales), "intercept_ms": self.intercept_ms, "n_archs": self.n_archs,
                "device": self.device, "fit_mape": self.fit_mape, "excluded": list(self.excluded),
                "shared_scale": self.shared_scale}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        """From `to_dict` output; one written before `shared_scale` was stored uses the mean scale for unseen kinds."""
        shared = data.get("shared_scale")
        return cls({str(k): float(v) for k, v in data["scales"].items()}, float(data["intercept_ms"]),
                   int(data["n_archs"]), data.get("device"), data.get("fit_mape"),
                   tuple(int(i) for i in data.get("excluded", ())), None if shared is None else float(shared))


def _relative_nnls(cols: np.ndarray, y: np.ndarray, offset: np.ndarray | float = 0.0,
                   prior: np.ndarray | None = None, strength: float = 0.0) -> np.ndarray:
    """Non-negative [scales..., intercept] minimising sum(((cols @ s + b + offset) / y - 1)^2) + strength |s - prior|^2."""
    from scipy.optimize import nnls

    a = np.hstack([cols, np.ones((len(y), 1))]) / y[:, None]
    b = 1.0 - np.broadcast_to(offset, y.shape) / y
    if prior is not None and strength > 0:
        k, lam = cols.shape[1], math.sqrt(strength)
        a = np.vstack([a, np.hstack([lam * np.eye(k), np.zeros((k, 1))])])
        b = np.concatenate([b, lam * prior])
    return nnls(a, b)[0]


def screen_glitches(base_ms: np.ndarray, measured_ms: np.ndarray, factor: float = 10.0) -> np.ndarray:
    """Indices of measurements that look like glitches: their ratio to the uncalibrated prediction is more
    than `factor` times (or 5 robust standard deviations) off the median ratio, e.g. a near-zero latency."""
    logr = np.log(measured_ms / np.maximum(base_ms, 1e-12))
    dev = np.abs(logr - np.median(logr))
    scale = 1.4826 * float(np.median(dev))
    return np.flatnonzero(dev > max(math.log(factor), 5 * scale))


def check_latencies(values: Sequence[Any], name: str) -> np.ndarray:
    """`values` as an array of positive finite milliseconds; ConfigError naming `name` and the bad samples otherwise.

    NaN, 0, negatives and infinity are all refused: an infinite sample would pass a `> 0` test and then get
    weight 0 in a relative loss (onboarding recorded a fit over the other samples as if nothing were wrong) or
    fail deep inside scikit-learn ("Input y contains infinity") without saying which sample it was.
    """
    bad: list[tuple[int, Any]] = []
    out = np.empty(len(values), dtype=float)
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            bad.append((i, v))
            continue
        if isinstance(v, bool) or not (math.isfinite(out[i]) and out[i] > 0):
            bad.append((i, v))
    if bad:
        shown = ", ".join(f"sample {i}: {v!r}" for i, v in bad[:5])
        shown += f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ConfigError(f"{name}: measured latencies must be positive finite milliseconds ({shown})")
    return out


def fit_calibration(by_kind: Sequence[Mapping[str, float]], measured_ms: Sequence[float], *, per_kind: bool = True,
                    min_variation: float = 0.2, shrink: float = 1e-5, device: str | None = None,
                    screen: bool = True, max_mape: float = 0.5) -> Calibration:
    """Fit scales (>= 0) and an intercept (>= 0) minimising the relative squared error of the prediction.

    First one scale shared by all kinds, plus the intercept. Then, with `per_kind`, kinds whose latency
    varies between the architectures (coefficient of variation >= `min_variation`) get scales of their
    own, pulled towards the shared one with weight `shrink` per architecture, when there are at least
    4 architectures per fitted coefficient; kinds that barely vary are confounded with the intercept,
    so they keep the shared scale.

    With `screen`, measurements whose ratio to the uncalibrated sum is far off the others' (near-zero
    glitches, spikes; `screen_glitches`) are left out with a `LatencyFitWarning`: a relative loss would
    otherwise bend every scale towards 0 to fit them. A fit that still predicts a constant (every scale 0)
    or whose MAPE on the kept samples reaches `max_mape` raises `DegenerateFitError`, and so do samples
    whose uncalibrated sums do not vary (one architecture, or copies of it): nothing determines the scales.
    """
    if len(by_kind) != len(measured_ms) or not by_kind:
        raise ConfigError("onboarding: give as many measured latencies as architectures (at least one)")
    y = check_latencies(measured_ms, "onboarding: measured_ms")
    kinds = sorted({k for d in by_kind for k in d})
    cols = np.array([[d.get(k, 0.0) for k in kinds] for d in by_kind])
    excluded: tuple[int, ...] = ()
    if screen and len(y) >= 4:
        excluded = tuple(int(i) for i in screen_glitches(cols.sum(axis=1), y))
        if len(excluded) > len(y) // 4:
            shown = [float(y[i]) for i in excluded[:5]]
            raise DegenerateFitError(f"onboarding: {len(excluded)} of {len(y)} measured latencies are far off the "
                                     f"others relative to the base model (e.g. {shown} ms against a median of "
                                     f"{np.median(y):.4g} ms): re-measure them")
        if excluded:
            warnings.warn(f"onboarding: left out {len(excluded)} of {len(y)} measured latencies as glitches "
                          f"(indices {list(excluded)[:10]}, {[float(y[i]) for i in excluded[:10]]} ms; median "
                          f"{np.median(y):.4g} ms)", LatencyFitWarning, stacklevel=3)
            kept = np.setdiff1d(np.arange(len(y)), excluded)
            y, cols = y[kept], cols[kept]
    base = cols.sum(axis=1)
    if np.ptp(base) <= 1e-9 * max(float(np.max(np.abs(base))), 1e-12):
        raise DegenerateFitError(f"onboarding: the {len(y)} measurement(s) all have one uncalibrated latency, "
                                 f"{float(base[0]):.4g} ms (one architecture, or copies of it): scales cannot be "
                                 "fitted; measure at least 2 different architectures")
    shared, b0 = _relative_nnls(cols.sum(axis=1, keepdims=True), y)
    scales, intercept = {k: float(shared) for k in kinds}, float(b0)
    mean, std = cols.mean(axis=0), cols.std(axis=0)
    own = [i for i in range(len(kinds)) if mean[i] > 0 and std[i] / mean[i] >= min_variation]
    if per_kind and own and len(y) >= 4 * (len(own) + 1):
        rest = shared * cols[:, [i for i in range(len(kinds)) if i not in own]].sum(axis=1)
        coef = _relative_nnls(cols[:, own], y, rest, np.full(len(own), shared), shrink * len(y))
        scales.update({kinds[i]: float(c) for i, c in zip(own, coef[:-1])})
        intercept = float(coef[-1])
    pred = cols @ np.array([scales[k] for k in kinds]) + intercept
    mape = float(np.mean(np.abs(pred / y - 1)))
    if np.ptp(pred) <= 1e-9 * max(float(np.max(np.abs(pred))), 1e-12):
        raise DegenerateFitError(f"onboarding: every scale fitted to 0, the calibrated model predicts the constant "
                                 f"{intercept:.4g} ms (MAPE {mape:.2f}); are some measured latencies near zero?")
    if mape >= max_mape:
        raise DegenerateFitError(f"onboarding: the calibrated model's MAPE on its own {len(y)} samples is {mape:.2f} "
                                 f"(>= max_mape={max_mape}): the base model cannot explain these measurements")
    return Calibration(scales, intercept, int(len(measured_ms)), device, mape, excluded, float(shared))


_SAME = object()  # onboard's default threads: the base model's on its own device


@dataclass
class LayerwiseLatency:
    """An architecture's latency as the (calibrated) sum of per-layer latencies: a lookup table's or a learned model's.

    `model` is "lut" or "learned" (a calibrated model is "learned": it was fitted to measurements).
    """

    adapter: LayerAdapter
    layer_ms: Callable[[LayerConfig], float]
    model: str
    device: str | None
    batch_size: int
    details: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None
    cheap: bool = True

    def by_kind(self, arch: Mapping[str, Any]) -> dict[str, float]:
        """Uncalibrated latency (ms) summed per layer kind."""
        out: dict[str, float] = defaultdict(float)
        for layer in self.adapter.layers(arch):
            out[layer.kind] += self.layer_ms(layer)
        return dict(out)

    def latency_ms(self, arch: Mapping[str, Any]) -> float:
        parts = self.by_kind(arch)
        return self.calibration.apply(parts) if self.calibration else float(sum(parts.values()))

    def onboard(self, archs: Sequence[Mapping[str, Any]], measured_ms: Sequence[float], device: str | None = None,
                per_kind: bool = True, threads: int | None | object = _SAME) -> "LayerwiseLatency":
        """This model calibrated on N architectures measured on `device` (default: the same device).

        Few-shot onboarding: a table or learned model from one device plus a handful of end-to-end
        measurements on another gives a predictor for the other (per-kind scales and a fixed overhead).
        `threads`: the CPU threads the measurements ran on, recorded (`details["threads"]`) so a `CostModel` on
        other threads refuses the model; by default the base model's on its own device, unknown (None) on another.
        """
        if device is not None:
            device = check_profile(device, "device")  # recorded in the model: a typo makes it unusable
        target = device if device is not None else self.device
        if threads is _SAME:
            threads = self.details.get("threads") if target == self.device else None
        elif threads is not None:
            check_int(threads, "threads", 1)
        cal = fit_calibration([self.by_kind(a) for a in archs], measured_ms, per_kind=per_kind, device=target)
        details = {**self.details, "base_model": self.model, "base_device": self.device,
                   "base_threads": self.details.get("threads"), "threads": threads}
        return LayerwiseLatency(self.adapter, self.layer_ms, "learned", cal.device, self.batch_size, details, cal)

    def provenance(self) -> dict[str, Any]:
        out = {"model": self.model, "device": self.device, "batch_size": self.batch_size, **self.details}
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        return out


def lut_latency(table: LatencyTable, adapter: LayerAdapter) -> LayerwiseLatency:
    """Lookup-table latency: the sum of the table's per-layer values (checks the table fits the adapter)."""
    table.check_adapter(adapter)
    table.check_host()
    details = {"table": str(table.path) if table.path else None, "statistic": table.statistic,
               "entries": len(table), "threads": table.header.get("threads"),
               "torch_device": table.header.get("torch_device"), "host": (table.header.get("host") or {}).get("cpu"),
               "built": table.header.get("created")}
    return LayerwiseLatency(adapter, table.layer_ms, "lut", table.device, table.batch_size, details)


def learned_latency(model: LayerLatencyModel, adapter: LayerAdapter) -> LayerwiseLatency:
    """Learned latency: the sum of a `LayerLatencyModel`'s per-layer predictions (cached per layer configuration).

    A model trained on a table (`from_table`) must be of `adapter`'s space, as `lut_latency` checks a table: a
    ConfigError names the differing fields (a model `fit` on layers directly carries no space description and is
    not checked). Layers outside the training range warn (`LayerLatencyModel._check_range`)."""
    if model.batch_size is None:
        raise ConfigError("learned latency: the model is not trained (call fit or from_table)")
    if model.space_description is not None:
        diff = adapter_differences(model.space_description, adapter.describe(), getattr(adapter, "training_only", ()))
        if diff:
            raise ConfigError(f"learned latency: the model was trained on a latency table "
                              f"({model.source.get('table') or 'in memory'}) built for another space: {diff}; train "
                              "it on a table of this space (or fit it on layers directly to use it across spaces)")
    cache: dict[str, float] = {}
    batch = model.batch_size

    def layer_ms(layer: LayerConfig) -> float:
        if layer.key not in cache:
            leaves = adapter.layer_counts(layer, batch)
            counts = (sum(x.flops for x in leaves), sum(x.params for x in leaves), sum(x.bytes_moved for x in leaves))
            cache[layer.key] = model.predict(layer, counts)
        return cache[layer.key]

    details = {"regressor": "random forest per layer group", "groups": dict(model.samples),
               "trained_on": dict(model.source), "threads": model.threads,
               "extrapolation": model.extrapolation}  # the model's record, updated in place by later predictions
    return LayerwiseLatency(adapter, layer_ms, "learned", model.source.get("device"), batch, details)
