"""HAWQ: Hessian-aware mixed-precision allocation (Dong et al. 2019, HAWQ; 2020, HAWQ-V2; Yao et al. 2021, V3).

* `hessian_vector_product`: H v of the loss with respect to chosen parameters, by differentiating the
  gradient a second time (Pearlmutter's trick; no Hessian is formed).
* `hessian_top_eigenvalue`: the eigenvalue of largest magnitude, by power iteration on H v (HAWQ).
* `hessian_trace`: Hutchinson's estimate E[v^T H v] over Rademacher vectors v (HAWQ-V2), with its standard error.
* `layer_sensitivity`: per Linear / Conv layer, the weight's Hessian trace (and/or top eigenvalue).
* `allocate`: per-layer formats minimising HAWQ-V2's perturbation
  Omega = sum_i Tr(H_i) / n_i * ||Q_i(W_i) - W_i||^2 (the second-order loss change of a random-direction
  perturbation of that size) under a bit budget, solved exactly (a knapsack over layers, by dynamic
  programming over Pareto-optimal partial allocations). `granularity="tensor"` quantizes (and sizes) every layer
  with one scale per weight tensor instead of one per output channel.

`data` is one `(x, y)` batch or an iterable of them; the loss is the size-weighted mean of `loss_fn(model(x), y)`
over batches, so the Hessian is that of the mean loss over all examples (exact for a mean-reduced `loss_fn`).
The model is put in eval mode for every Hessian-vector product (HAWQ measures the trained network as it is used);
each module's train/eval mode is restored afterwards.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from nas.errors import ConfigError, check_count, check_number
from nas.hardware.quantization import (NumberFormat, get_format, layer_bits, perturbation, quantizable_layers)

__all__ = ["Allocation", "EigenResult", "LayerSensitivity", "TraceResult", "allocate", "allocation_size",
           "hessian_top_eigenvalue", "hessian_trace", "hessian_vector_product", "layer_sensitivity"]

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _batches(data: Batch | Iterable[Batch]) -> list[Batch]:
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return [data]
    batches = list(data)
    if not batches or not all(isinstance(b, (tuple, list)) and len(b) == 2 for b in batches):
        raise ConfigError("data: expected an (x, y) batch or a non-empty iterable of (x, y) batches")
    return [tuple(b) for b in batches]  # type: ignore[misc]


def _params(model: nn.Module, params: str | Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
    """The parameters: all that require grad (None), a layer's weight by its path, or the tensors given."""
    if params is None:
        out = [p for p in model.parameters() if p.requires_grad]
    elif isinstance(params, str):
        layers = quantizable_layers(model)
        if params not in layers:
            raise ConfigError(f"params: no Linear/Conv layer {params!r} (layers: {', '.join(layers) or 'none'})")
        out = [layers[params].weight]
    else:
        out = list(params)
    if not out or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in out):
        raise ConfigError("params: expected tensors that require grad (or a layer path), got none usable")
    return out


def hessian_vector_product(model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch],
                           params: Sequence[torch.Tensor], vector: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """H v: the Hessian of the mean loss with respect to `params` times `vector` (one tensor per parameter), in
    eval mode; every module's own train/eval mode is restored."""
    batches = _batches(data)
    total = sum(len(y) for _, y in batches)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    out = [torch.zeros_like(p) for p in params]
    try:
        for x, y in batches:
            loss = loss_fn(model(x), y) * (len(y) / total)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            dot = sum((g * v).sum() for g, v in zip(grads, vector))
            hv = torch.autograd.grad(dot, params)
            out = [o + h.detach() for o, h in zip(out, hv)]
    finally:
        for m, training in modes.items():
            m.training = training
    return out


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return float(sum((x.double() * y.double()).sum() for x, y in zip(a, b)))


@dataclass(frozen=True)
class EigenResult:
    """The largest-magnitude Hessian eigenvalue found by power iteration, and whether it converged."""

    value: float
    iterations: int
    converged: bool


def hessian_top_eigenvalue(model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch],
                           params: str | Sequence[torch.Tensor] | None = None, iterations: int = 100,
                           tol: float = 1e-4, seed: int = 0) -> EigenResult:
    """Power iteration on H v from a seeded Gaussian start: v <- Hv / ||Hv||, eigenvalue v^T H v, until its
    relative change is below `tol` (or `iterations`). Converges to the eigenvalue of largest magnitude (for a
    trained network's nearly positive semi-definite Hessian, the top one); slowly when the top two are close."""
    check_count(iterations, "iterations")
    ps = _params(model, params)
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in ps]
    norm = math.sqrt(_dot(v, v))
    v = [x / norm for x in v]
    value = 0.0
    for i in range(1, iterations + 1):
        hv = hessian_vector_product(model, loss_fn, data, ps, v)
        new = _dot(v, hv)
        norm = math.sqrt(_dot(hv, hv))
        if norm == 0:
            return EigenResult(0.0, i, True)
        v = [x / norm for x in hv]
        if i > 1 and abs(new - value) <= tol * max(abs(new), 1e-12):
            return EigenResult(new, i, True)
        value = new
    return EigenResult(value, iterations, False)


@dataclass(frozen=True)
class TraceResult:
    """Hutchinson's trace estimate: the mean of v^T H v over `samples` Rademacher vectors, its standard error."""

    value: float
    std_error: float
    samples: int


def hessian_trace(model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch],
                  params: str | Sequence[torch.Tensor] | None = None, samples: int = 100, seed: int = 0,
                  rtol: float | None = None) -> TraceResult:
    """Tr(H) by Hutchinson: mean of v^T H v for `samples` seeded Rademacher v (unbiased; variance
    2 * sum of squared off-diagonal entries per sample). With `rtol`, stops early once the standard error
    is below `rtol` x |estimate| (after at least 10 samples)."""
    check_count(samples, "samples")
    ps = _params(model, params)
    gen = torch.Generator().manual_seed(seed)
    draws: list[float] = []
    for i in range(samples):
        v = [torch.randint(0, 2, p.shape, generator=gen).to(p.dtype) * 2 - 1 for p in ps]
        draws.append(_dot(v, hessian_vector_product(model, loss_fn, data, ps, v)))
        if rtol is not None and i >= 9:
            mean, se = _mean_se(draws)
            if se <= rtol * abs(mean):
                break
    mean, se = _mean_se(draws)
    return TraceResult(mean, se, len(draws))


def _mean_se(xs: Sequence[float]) -> tuple[float, float]:
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return mean, float("inf")
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, math.sqrt(var / n)


@dataclass(frozen=True)
class LayerSensitivity:
    """One layer's Hessian figures for its weight: trace (Hutchinson), its standard error, top eigenvalue
    (None unless asked for), and the number of weights (for the average trace Tr / n)."""

    layer: str
    weights: int
    trace: float
    trace_std_error: float
    eigenvalue: float | None = None

    @property
    def mean_trace(self) -> float:
        return self.trace / self.weights

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean_trace": self.mean_trace}


def layer_sensitivity(model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch],
                      layers: Sequence[str] | None = None, samples: int = 100, eigenvalue: bool = False,
                      seed: int = 0, rtol: float | None = None) -> dict[str, LayerSensitivity]:
    """{layer path: LayerSensitivity} for `layers` (default: every Linear / Conv), each on its weight alone
    (HAWQ's per-layer blocks of the Hessian)."""
    known = quantizable_layers(model)
    names = list(known) if layers is None else list(layers)
    out = {}
    for name in names:
        if name not in known:
            raise ConfigError(f"layers: no Linear/Conv layer {name!r} (layers: {', '.join(known) or 'none'})")
        tr = hessian_trace(model, loss_fn, data, name, samples, seed, rtol)
        eig = hessian_top_eigenvalue(model, loss_fn, data, name, seed=seed).value if eigenvalue else None
        out[name] = LayerSensitivity(name, known[name].weight.numel(), tr.value, tr.std_error, eig)
    return out


# ---------------------------------------------------------------------------------------- allocation
@dataclass(frozen=True)
class Allocation:
    """Formats per layer, their total code bits and the predicted perturbation Omega they minimise; `clamped`
    names the layers whose negative sensitivity was taken as 0 (see `allocate`)."""

    formats: dict[str, str]
    bits: int
    omega: float
    candidates: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # layer -> format -> bits, omega
    clamped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def allocation_size(shapes: Mapping[str, tuple[int, ...]], formats: Mapping[str, str | NumberFormat],
                    with_scales: bool = False, granularity: str = "channel") -> int:
    """Code bits (plus scales when `with_scales`: per output channel, or one per layer with
    `granularity="tensor"`) of layers of `shapes` stored in `formats`."""
    total = 0
    for name, shape in shapes.items():
        code, scale = layer_bits(shape, get_format(formats[name], f"formats[{name!r}]"), granularity)
        total += code + (scale if with_scales else 0)
    return total


def _sensitivity(value: Any, name: str) -> float:
    """One layer's sensitivity as a finite float (a diverged network's NaN or infinite trace would leave no
    allocation to compare, and read as a budget too small); ConfigError naming the layer otherwise."""
    out = math.nan
    if not isinstance(value, (str, bytes, bool)):
        try:
            out = float(value)
        except (TypeError, ValueError):
            pass
    if not math.isfinite(out):
        raise ConfigError(f"sensitivity[{name!r}]: expected a finite number, got {value!r}")
    return out


def allocate(weights: Mapping[str, torch.Tensor], sensitivity: Mapping[str, float], formats: Sequence[str],
             budget_bits: float, with_scales: bool = False, granularity: str = "channel") -> Allocation:
    """Formats minimising sum_i sensitivity_i * ||Q(W_i) - W_i||^2 with total bits <= `budget_bits`.

    `weights` {layer: weight tensor}; `sensitivity` {layer: Hessian factor}, for HAWQ-V2 the average trace
    Tr(H_i) / n_i (pass 1.0 everywhere for the Hessian-free ablation); `formats` the candidates. Bits are code
    bits (plus scales with `with_scales`); Q and the scales use `granularity` ("channel" or "tensor"). Exact:
    dynamic programming over layers keeping, for each total size, only allocations no other beats in both size
    and Omega. ConfigError when even the smallest formats exceed the budget.

    A negative sensitivity (a Hutchinson estimate of a near-zero trace, or a network not at a minimum, where the
    Hessian is not positive semi-definite) is taken as 0, with a warning naming the layer and the layer listed in
    `Allocation.clamped`: a negative factor would make Omega reward quantization error, and the second-order model
    predicts no loss change there. The layer is then insensitive: it gets its smallest format.
    """
    if not weights:
        raise ConfigError("weights: no layers to allocate")
    missing = [n for n in weights if n not in sensitivity]
    if missing:
        raise ConfigError(f"sensitivity: no value for layer(s) {missing}")
    factors = {name: _sensitivity(sensitivity[name], name) for name in weights}
    clamped = tuple(name for name, f in factors.items() if f < 0)
    if clamped:
        listed = ", ".join(f"{n!r} ({factors[n]:.3g})" for n in clamped)
        warnings.warn(f"sensitivity: negative for layer(s) {listed}, taken as 0 (a Hessian trace is >= 0 at a "
                      "minimum; a negative estimate is sampling noise or a network not at a minimum); those layers "
                      "get their smallest format. Train to convergence or take more Hutchinson samples",
                      stacklevel=2)
        factors.update({n: 0.0 for n in clamped})
    check_number(budget_bits, "budget_bits", positive=False, unit=" (bits)")
    fmts = [get_format(f, "formats") for f in formats]
    if not fmts:
        raise ConfigError("formats: no candidate formats")
    options: dict[str, list[tuple[str, int, float]]] = {}
    for name, w in weights.items():
        rows = []
        for f in fmts:
            code, scale = layer_bits(tuple(w.shape), f, granularity)
            error = perturbation(w, f, granularity)
            omega = factors[name] * error
            if not math.isfinite(omega):
                raise ConfigError(f"weights[{name!r}]: Omega in {f.name} is not finite (sensitivity "
                                  f"{factors[name]:g} x squared quantization error {error:g})")
            rows.append((f.name, code + (scale if with_scales else 0), omega))
        options[name] = rows
    front: list[tuple[int, float, tuple[str, ...]]] = [(0, 0.0, ())]
    for name in weights:
        grown = sorted((b + ob, o + oo, picks + (fname,)) for b, o, picks in front for fname, ob, oo in options[name]
                       if b + ob <= budget_bits)
        front, best = [], math.inf
        for item in grown:  # keep the Pareto front over (bits, omega)
            if item[1] < best:
                front.append(item)
                best = item[1]
        if not front:
            smallest = sum(min(b for _, b, _ in options[n]) for n in weights)
            raise ConfigError(f"budget_bits: {budget_bits:.0f} is below the smallest allocation ({smallest} bits)")
    bits, omega, picks = min(front, key=lambda t: (t[1], t[0]))
    chosen = dict(zip(weights, picks))
    table = {n: {f: {"bits": float(b), "omega": o} for f, b, o in rows} for n, rows in options.items()}
    return Allocation(chosen, bits, omega, table, clamped)
