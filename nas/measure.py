"""Measurement: re-measure recipes (how a searched metric is measured again on a standalone model) and applying them.

A recipe is plain JSON stored in a workdir's model spec and in every exported model: `accuracy_metric()`
(top-1 on a data split), `latency_metric()` (one forward pass on a device, with the statistic, warm-up,
repeats and interleaved rounds), `count_metric()` (parameters, FLOPs, MACs). `remeasure_all` applies
recipes to several models at once, timing their latencies together, and returns each value with its
repeatability and the conditions it was timed under (`Remeasured`), so export and verify measure the same
way; `time_architectures` times whole architectures the same way (the measurements a latency model is
onboarded on), so a search's latency estimate is calibrated on what export and verify will measure.

Every latency is timed on the same input (`timing_input`: a `TimingInput` of the model's per-example shape
and dtype, as an exported model.json records them), in eval mode under `torch.inference_mode`, on the
recipe's threads, warm-up, repeats and rounds, and read by the recipe's statistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nas import jsonio
from nas.counts import count
from nas.errors import ConfigError, check_int, check_number
from nas.jsonio import python_scalar

if TYPE_CHECKING:
    from nas.hardware.latency import LatencyMeasurement

METRIC_KINDS = ("accuracy", "latency", "count")
COUNTS = ("params", "flops", "macs")

Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


def accuracy_metric(split: str = "valid", scale: float = 100.0, batch_size: int = 250) -> dict[str, Any]:
    """Recipe: top-1 accuracy on `split` of the spec's data, times `scale` (100: percent)."""
    return {"kind": "accuracy", "split": split, "scale": scale, "batch_size": batch_size}


def latency_metric(batch_size: int = 1, threads: int | None = 1, statistic: str = "median", warmup: int = 10,
                   repeats: int = 50, device: str = "cpu", rounds: int = 1) -> dict[str, Any]:
    """Recipe: latency (ms) of one forward pass, measured on `device` (how the search's value is re-measured).

    With `rounds` > 1, export and verify time all models together in that many interleaved rounds of
    `warmup` + `repeats` runs each (`nas.hardware.measure_latencies`), which shared machines need; there
    `statistic="round_min"` (median over rounds of each round's fastest run) is the one that holds from one
    pass to the next (docs/hardware.md). `statistic` is one of `nas.hardware.latency.STATISTICS`.
    """
    return {"kind": "latency", "device": device, "batch_size": batch_size, "threads": threads,
            "statistic": statistic, "warmup": warmup, "repeats": repeats, "rounds": rounds}


def count_metric(what: str = "params", batch_size: int = 1) -> dict[str, Any]:
    """Recipe: parameter count, FLOPs or MACs of the module (FlopCounterMode)."""
    return {"kind": "count", "count": what, "batch_size": batch_size}


def check_recipe(name: str, recipe: Any) -> dict[str, Any]:
    """`recipe` as plain JSON; ConfigError naming `metrics.<name>.<field>` when a field is wrong: batch sizes are
    ints >= 1, an accuracy's scale a finite number > 0, a latency's threads None or an int >= 1 and its device a
    torch device name (numpy scalars are taken as their Python twins)."""
    where = f"metrics.{name}"
    if not isinstance(recipe, Mapping):
        raise ConfigError(f"{where}: expected a recipe dict such as accuracy_metric(), got {recipe!r}")
    kind = recipe.get("kind")
    if kind not in METRIC_KINDS:
        raise ConfigError(f"{where}.kind: expected one of {', '.join(METRIC_KINDS)}, got {kind!r}")
    recipe = {k: python_scalar(v) for k, v in recipe.items()}
    if kind == "accuracy" and not isinstance(recipe.get("split"), str):
        raise ConfigError(f"{where}.split: name the data split the accuracy is measured on, got {recipe.get('split')!r}")
    if kind == "accuracy":
        check_number(recipe.get("scale", 1.0), f"{where}.scale")
    check_int(recipe.get("batch_size", 1), f"{where}.batch_size", 1)
    if kind == "latency":
        from nas.hardware.latency import STATISTICS

        if recipe.get("statistic", "median") not in STATISTICS:
            raise ConfigError(f"{where}.statistic: expected one of {', '.join(STATISTICS)}, got "
                              f"{recipe.get('statistic')!r}")
        for key, low in (("warmup", 0), ("repeats", 1), ("rounds", 1)):
            check_int(recipe.get(key, low), f"{where}.{key}", low)
        if recipe.get("threads", 1) is not None:
            check_int(recipe.get("threads", 1), f"{where}.threads (None: torch's own count)", 1)
        device = recipe.get("device", "cpu")
        try:
            if not isinstance(device, str):
                raise TypeError(device)
            torch.device(device)  # the name only: whether this machine has the device is the measurement's to say
        except (RuntimeError, TypeError, ValueError):
            raise ConfigError(f"{where}.device: expected a torch device such as cpu, cuda or cuda:0, got "
                              f"{device!r}") from None
    if kind == "count" and recipe.get("count") not in COUNTS:
        raise ConfigError(f"{where}.count: expected one of {', '.join(COUNTS)}, got {recipe.get('count')!r}")
    return jsonio.plain(dict(recipe), where)


def split(data: Splits, name: str, field_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The (x, y) of split `name`; ConfigError naming `field_name` and the splits there are."""
    if name not in data:
        raise ConfigError(f"{field_name}: no split {name!r} in the data (it has {', '.join(map(str, data))})")
    return data[name]


@dataclass
class Remeasured:
    """One model's metrics measured again by their recipes; for each latency also the measurement's own
    repeatability (relative gap between its first and second half of rounds, a lower bound on the noise)
    and the conditions it was timed under (`timing_conditions`)."""

    values: dict[str, float]
    repeatability: dict[str, float] = field(default_factory=dict)
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class TimingInput:
    """The input latencies are timed on: per-example `shape` and `dtype`, filled with seeded standard normals
    (floats) or zeros (integers), the same tensor for every path and every call (as `RecordedInput` fills it)."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def fill(self) -> str:
        return "normal, seed 0" if getattr(torch, self.dtype).is_floating_point else "zeros"

    def example_input(self, arch: Mapping[str, Any] | None = None, batch_size: int = 1) -> torch.Tensor:
        dtype = getattr(torch, self.dtype)
        if dtype.is_floating_point:
            return torch.randn(batch_size, *self.shape, generator=torch.Generator().manual_seed(0)).to(dtype)
        return torch.zeros(batch_size, *self.shape, dtype=dtype)


def timing_input(source: Any, arch: Mapping[str, Any]) -> Any:
    """What a latency of `arch` is timed on: a `TimingInput` of the per-example shape and dtype that `source`
    records (an exported model's `RecordedInput`, as verify reads it from model.json) or gives (a space's
    example input, as export and `time_architectures` have it), so every path times the same tensor.

    A space whose example input is not one tensor keeps its own (export refuses such models anyway)."""
    shape, dtype = getattr(source, "shape", None), getattr(source, "dtype", None)
    if not hasattr(source, "validate") and isinstance(shape, tuple) and isinstance(dtype, str):  # not a space
        return TimingInput(tuple(int(n) for n in shape), dtype)
    example = source.example_input(arch, 1)
    if not isinstance(example, torch.Tensor) or example.dim() < 1:
        return source
    return TimingInput(tuple(int(n) for n in example.shape[1:]), str(example.dtype).removeprefix("torch."))


def timing_conditions(m: LatencyMeasurement, recipe: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """The conditions a latency was timed under, as recorded beside it (export.json, verify.json): comparing
    two passes' records says whether they timed the same thing the same way."""
    fill = source.fill if isinstance(source, TimingInput) else f"{type(source).__name__}.example_input"
    return {"device": m.device, "threads": m.threads, "batch_size": m.batch_size,
            "input_shapes": [list(x) for x in m.input_shapes], "input": fill, "mode": "eval",
            "autograd": "inference_mode", "warmup": m.warmup, "repeats": m.repeats, "rounds": m.rounds,
            "statistic": recipe.get("statistic", "median"), "timer": m.timer}


def time_models(models: Sequence[tuple[nn.Module, Any, Mapping[str, Any]]],
                recipe: Mapping[str, Any]) -> list[LatencyMeasurement]:
    """`(module, space or RecordedInput, arch)` timed together by one latency recipe, each on its
    `timing_input`: how export, verify and `time_architectures` all time a network."""
    from nas.hardware.latency import measure_latencies

    batch = int(recipe.get("batch_size", 1))
    return measure_latencies([(m, timing_input(space, a).example_input(a, batch)) for m, space, a in models],
                             device=recipe.get("device", "cpu"), warmup=int(recipe.get("warmup", 10)),
                             repeats=int(recipe.get("repeats", 50)), rounds=int(recipe.get("rounds", 1)),
                             threads=recipe.get("threads", 1))


def time_architectures(space: Any, archs: Sequence[Mapping[str, Any]], recipe: Mapping[str, Any],
                       build: Callable[[Mapping[str, Any]], nn.Module] | None = None) -> list[float]:
    """Latency (ms) of each architecture, timed together exactly as export and verify re-measure by `recipe`
    (input, threads, warm-up, repeats, rounds, statistic): the measurements to onboard a latency model on,
    `LayerwiseLatency.onboard(archs, time_architectures(space, archs, recipe))`. `build` makes the network
    (default `space.build`; weights do not change its time)."""
    recipe = check_recipe("latency", recipe)
    if recipe["kind"] != "latency":
        raise ConfigError(f"recipe: expected a latency recipe (latency_metric()), got kind {recipe['kind']!r}")
    from nas.hardware.latency import check_statistic

    make = build or space.build
    archs = [space.validate(a) for a in archs]
    timed = time_models([(make(a), space, a) for a in archs], recipe)
    statistic = check_statistic(recipe.get("statistic", "median"), "recipe.statistic")
    return [t.value(statistic) for t in timed]


def remeasure(module: nn.Module, space: Any, arch: Mapping[str, Any], recipes: Mapping[str, Mapping[str, Any]],
              data: Splits | None) -> Remeasured:
    """Every metric that has a recipe, measured on `module` now (accuracy, latency on the device, counts)."""
    return remeasure_all([(module, space, arch)], recipes, data)[0]


def remeasure_all(models: Sequence[tuple[nn.Module, Any, Mapping[str, Any]]],
                  recipes: Mapping[str, Mapping[str, Any]], data: Splits | None) -> list[Remeasured]:
    """`remeasure` for several `(module, space or RecordedInput, arch)` at once: each latency recipe times all
    of them together (`time_models`).

    Export and verify both measure through here, on the same input, so their figures differ only by the
    machine's noise. With `rounds` > 1 in the recipe the models are timed in interleaved rounds
    (`measure_latencies`), so a slow phase of a shared machine shorter than the measurement slows every
    model alike.
    """
    from nas.spaces.training import accuracy

    for module, _, _ in models:
        module.eval()
    outs = [Remeasured({}) for _ in models]
    for name, r in recipes.items():
        kind = r["kind"]
        if kind == "latency":
            statistic = r.get("statistic", "median")
            timed = time_models(models, r)
            for out, t, (_, space, arch) in zip(outs, timed, models):
                out.values[name] = t.value(statistic)
                repeatability = t.repeatability(statistic)
                if math.isfinite(repeatability):  # nan under 2 runs: left out (JSON has no nan)
                    out.repeatability[name] = repeatability
                out.conditions[name] = timing_conditions(t, r, timing_input(space, arch))
            continue
        for out, (module, space, arch) in zip(outs, models):
            if kind == "accuracy":
                if data is None:
                    raise ConfigError(f"metrics.{name}: re-measuring accuracy needs the data")
                x, y = split(data, r["split"], f"metrics.{name}.split")
                out.values[name] = accuracy(module, x, y, int(r.get("batch_size", 250))) * float(r.get("scale", 1.0))
            elif kind == "count":
                with torch.no_grad():
                    out.values[name] = count(module, space.example_input(arch, int(r.get("batch_size", 1))))[r["count"]]
    return outs


ACCURACY_TOLERANCE = 0.005
"""Of an accuracy recipe's scale: accuracy re-measures exactly, so an error larger than this (far more than an argmax
tie flipped by float summation order) means the weights, the data or the recipe are not those the search scored."""


def accuracy_mismatches(recipes: Mapping[str, Mapping[str, Any]], searched: Mapping[str, float],
                        measured: Mapping[str, float]) -> list[str]:
    """One line per accuracy metric re-measured further from its searched value than `ACCURACY_TOLERANCE` allows."""
    return [f"{name} re-measured {measured[name]:.4g}, searched {searched[name]:.4g}: accuracy re-measures exactly, "
            "so the weights, data or recipe differ from those the search scored"
            for name, recipe in recipes.items()
            if recipe.get("kind") == "accuracy" and name in measured and name in searched
            and not abs(measured[name] - searched[name]) <= ACCURACY_TOLERANCE * abs(float(recipe.get("scale", 1.0)))]


def count_mismatches(recipes: Mapping[str, Mapping[str, Any]], searched: Mapping[str, float],
                     measured: Mapping[str, float]) -> list[str]:
    """One line per count metric (params, FLOPs, MACs) re-measured to any other value than its searched one: a
    count is exact, so a difference means the network is not the one the search counted."""
    return [f"{name} re-measured {measured[name]:.10g}, searched {searched[name]:.10g}: counts re-measure exactly, "
            "so the network differs from the one the search counted"
            for name, recipe in recipes.items()
            if recipe.get("kind") == "count" and name in measured and name in searched
            and measured[name] != searched[name]]


def plus_minus(repeatability: float | None) -> str:
    """" ±4%": a measurement's relative repeatability as printed beside its value ("" when there is none)."""
    return "" if repeatability is None or not math.isfinite(repeatability) else f" ±{repeatability:.0%}"
