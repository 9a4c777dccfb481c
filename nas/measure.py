"""Measurement: re-measure recipes (how a searched metric is measured again on a standalone model) and applying them.

A recipe is plain JSON stored in a workdir's model spec and in every exported model: `accuracy_metric()`
(top-1 on a data split), `latency_metric()` (one forward pass on a device, with the statistic, warm-up,
repeats and interleaved rounds), `count_metric()` (parameters, FLOPs, MACs). `remeasure_all` applies
recipes to several models at once, timing their latencies together, and returns each value with its
repeatability (`Remeasured`), so export and verify measure the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nas import jsonio
from nas.counts import count
from nas.errors import ConfigError, check_int

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
    `warmup` + `repeats` runs each (`nas.hardware.measure_latencies`), which shared machines need.
    """
    return {"kind": "latency", "device": device, "batch_size": batch_size, "threads": threads,
            "statistic": statistic, "warmup": warmup, "repeats": repeats, "rounds": rounds}


def count_metric(what: str = "params", batch_size: int = 1) -> dict[str, Any]:
    """Recipe: parameter count, FLOPs or MACs of the module (FlopCounterMode)."""
    return {"kind": "count", "count": what, "batch_size": batch_size}


def check_recipe(name: str, recipe: Any) -> dict[str, Any]:
    """`recipe` as plain JSON; ConfigError naming `metrics.<name>.<field>` when a field is wrong."""
    where = f"metrics.{name}"
    if not isinstance(recipe, Mapping):
        raise ConfigError(f"{where}: expected a recipe dict such as accuracy_metric(), got {recipe!r}")
    kind = recipe.get("kind")
    if kind not in METRIC_KINDS:
        raise ConfigError(f"{where}.kind: expected one of {', '.join(METRIC_KINDS)}, got {kind!r}")
    if kind == "accuracy" and not isinstance(recipe.get("split"), str):
        raise ConfigError(f"{where}.split: name the data split the accuracy is measured on, got {recipe.get('split')!r}")
    if kind == "latency":
        if recipe.get("statistic", "median") not in ("median", "min", "mean"):
            raise ConfigError(f"{where}.statistic: expected median, min or mean, got {recipe.get('statistic')!r}")
        for key, low in (("warmup", 0), ("repeats", 1), ("rounds", 1)):
            check_int(recipe.get(key, low), f"{where}.{key}", low)
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
    repeatability (relative gap between its first and second half of rounds, a lower bound on the noise)."""

    values: dict[str, float]
    repeatability: dict[str, float] = field(default_factory=dict)


def remeasure(module: nn.Module, space: Any, arch: Mapping[str, Any], recipes: Mapping[str, Mapping[str, Any]],
              data: Splits | None) -> Remeasured:
    """Every metric that has a recipe, measured on `module` now (accuracy, latency on the device, counts)."""
    return remeasure_all([(module, space, arch)], recipes, data)[0]


def remeasure_all(models: Sequence[tuple[nn.Module, Any, Mapping[str, Any]]],
                  recipes: Mapping[str, Mapping[str, Any]], data: Splits | None) -> list[Remeasured]:
    """`remeasure` for several `(module, space, arch)` at once: each latency recipe times all of them together.

    Export and verify both measure through here, so their figures differ only by the machine's noise. With
    `rounds` > 1 in the recipe the models are timed in interleaved rounds (`measure_latencies`), so a slow
    phase of a shared machine shorter than the measurement slows every model alike.
    """
    from nas.hardware.latency import measure_latencies
    from nas.spaces.training import accuracy

    for module, _, _ in models:
        module.eval()
    outs = [Remeasured({}) for _ in models]
    for name, r in recipes.items():
        kind = r["kind"]
        if kind == "latency":
            statistic = r.get("statistic", "median")
            timed = measure_latencies([(m, space.example_input(a, int(r.get("batch_size", 1))))
                                       for m, space, a in models],
                                      device=r.get("device", "cpu"), warmup=int(r.get("warmup", 10)),
                                      repeats=int(r.get("repeats", 50)), rounds=int(r.get("rounds", 1)),
                                      threads=r.get("threads", 1))
            for out, t in zip(outs, timed):
                out.values[name] = t.value(statistic)
                out.repeatability[name] = t.repeatability(statistic)
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


def plus_minus(repeatability: float | None) -> str:
    """" ±4%": a measurement's relative repeatability as printed beside its value ("" when there is none)."""
    return "" if repeatability is None or not math.isfinite(repeatability) else f" ±{repeatability:.0%}"
