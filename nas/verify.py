"""Re-measuring exported models: accuracy on held-out data, latency on the device, against the search's values.

`remeasure(module, space, arch, recipes, data)` applies a model spec's metric recipes to a standalone
module; `remeasure_all` does it for several, timing their latencies together. `verify(out)` reloads
every model of an export directory with `load_subnet` (as a user would), re-measures it, reports predicted-vs-measured error per objective, and flags picks that break a
constraint or are dominated by another pick once the measured values replace the searched ones.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.errors import ConfigError
from nas.modelspec import DataRef, Splits, load_subnet, read_subnet_json, space_from_json, split
from nas.objectives import Constraint, Objective
from nas.pareto import pareto_mask

log = logging.getLogger(__name__)

EXPORT_INDEX = "export.json"
VERIFY_REPORT = "verify.json"


def remeasure(module: nn.Module, space: Any, arch: Mapping[str, Any], recipes: Mapping[str, Mapping[str, Any]],
              data: Splits | None) -> dict[str, float]:
    """Every metric that has a recipe, measured on `module` now (accuracy, latency on the device, counts)."""
    return remeasure_all([(module, space, arch)], recipes, data)[0]


def remeasure_all(models: Sequence[tuple[nn.Module, Any, Mapping[str, Any]]],
                  recipes: Mapping[str, Mapping[str, Any]], data: Splits | None) -> list[dict[str, float]]:
    """`remeasure` for several `(module, space, arch)` at once: each latency recipe times all of them together.

    With `rounds` > 1 in the recipe the models are timed in interleaved rounds (`measure_latencies`), so a
    slow phase of a shared machine slows every model alike instead of one model's whole block.
    """
    from nas.hardware.counts import count
    from nas.hardware.latency import measure_latencies
    from nas.spaces.training import accuracy

    for module, _, _ in models:
        module.eval()
    outs: list[dict[str, float]] = [{} for _ in models]
    for name, r in recipes.items():
        kind = r["kind"]
        if kind == "latency":
            timed = measure_latencies([(m, space.example_input(a, int(r.get("batch_size", 1))))
                                       for m, space, a in models],
                                      device=r.get("device", "cpu"), warmup=int(r.get("warmup", 10)),
                                      repeats=int(r.get("repeats", 50)), rounds=int(r.get("rounds", 1)),
                                      threads=r.get("threads", 1))
            for out, t in zip(outs, timed):
                out[name] = t.value(r.get("statistic", "median"))
            continue
        for out, (module, space, arch) in zip(outs, models):
            if kind == "accuracy":
                if data is None:
                    raise ConfigError(f"metrics.{name}: re-measuring accuracy needs the data")
                x, y = split(data, r["split"], f"metrics.{name}.split")
                out[name] = accuracy(module, x, y, int(r.get("batch_size", 250))) * float(r.get("scale", 1.0))
            elif kind == "count":
                with torch.no_grad():
                    out[name] = count(module, space.example_input(arch, int(r.get("batch_size", 1))))[r["count"]]
    return outs


@dataclass
class Check:
    """One exported model, re-measured: searched and measured values, their error, and what went wrong."""

    trial: int
    path: str
    searched: dict[str, float]
    measured: dict[str, float]
    error: dict[str, float]          # measured - searched, per metric measured
    rel_error: dict[str, float]      # (measured - searched) / |searched|
    flags: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.flags


@dataclass
class VerifyReport:
    """`verify`'s result: one `Check` per exported model, the objectives and constraints checked."""

    out: Path
    checks: list[Check]
    objectives: list[Objective]
    constraints: list[Constraint]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def flagged(self) -> list[Check]:
        return [c for c in self.checks if c.flags]

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "ok": self.ok,
                "objectives": {o.name: o.direction for o in self.objectives},
                "constraints": [str(c) for c in self.constraints],
                "models": [asdict(c) for c in self.checks]}


def read_index(out: str | Path) -> dict[str, Any]:
    """The `export.json` of an export directory."""
    path = Path(out) / EXPORT_INDEX
    if not path.is_file():
        raise ConfigError(f"{out}: not an export directory ({EXPORT_INDEX} not found; run `nas export` first)")
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not JSON ({e})") from None
    for key in ("objectives", "constraints", "models"):
        if key not in index:
            raise ConfigError(f"{path}: field {key!r} is missing")
    return index


def _flags(checks: Sequence[Check], objectives: Sequence[Objective], constraints: Sequence[Constraint]) -> None:
    """Constraint breaks and domination among the picks, on measured values (searched where not re-measured)."""
    values = [{**c.searched, **c.measured} for c in checks]
    for c, v in zip(checks, values):
        for con in constraints:
            if con.metric in v and not con.satisfied(v):
                c.flags.append(f"breaks {con} after re-measurement ({con.metric} = {v[con.metric]:.4g})")
    usable = [i for i, v in enumerate(values) if all(o.name in v for o in objectives)]
    if len(usable) < 2 or not objectives:
        return
    pts = np.array([[o.minimised(values[i][o.name]) for o in objectives] for i in usable], dtype=float)
    mask = pareto_mask(pts)
    for k, i in enumerate(usable):
        if mask[k]:
            continue
        by = [checks[usable[j]].trial for j in range(len(usable))
              if j != k and np.all(pts[j] <= pts[k]) and np.any(pts[j] < pts[k])]
        checks[i].flags.append("left the Pareto front after re-measurement (dominated by trial "
                               + ", ".join(map(str, by)) + ")")


def verify(out: str | Path, data: Splits | None = None, write: bool = True) -> VerifyReport:
    """Reload every model of the export directory `out`, re-measure it, and check it (see module doc).

    `data` (the spec's {split: (x, y)}) saves loading the dataset again; the report goes to
    `out/verify.json` unless `write` is False.
    """
    out = Path(out)
    index = read_index(out)
    objectives = [Objective(n, d) for n, d in index["objectives"].items()]
    constraints = [Constraint.parse(c) for c in index["constraints"]]
    loaded: list[tuple[dict[str, Any], nn.Module, Any, Any, dict[str, Any]]] = []
    for entry in index["models"]:
        folder, sub = read_subnet_json(out / entry["path"])
        evaluation = sub.get("evaluation") or {}
        recipes = evaluation.get("metrics") or {}
        if data is None and any(r["kind"] == "accuracy" for r in recipes.values()):
            ref = evaluation.get("data")
            if not ref:
                raise ConfigError(f"{folder}: evaluation.data is missing, so accuracy cannot be re-measured")
            data = DataRef(ref["function"], dict(ref.get("kwargs") or {})).load()
        space = space_from_json(sub["space"])
        loaded.append((entry, load_subnet(folder), space, space.validate(sub["arch"]), recipes))
    groups: dict[str, list[int]] = {}  # models sharing recipes are re-measured (timed) together
    for i, x in enumerate(loaded):
        groups.setdefault(json.dumps(x[4], sort_keys=True), []).append(i)
    measured: list[dict[str, float]] = [{} for _ in loaded]
    for idx in groups.values():
        for i, m in zip(idx, remeasure_all([loaded[i][1:4] for i in idx], loaded[idx[0]][4], data)):
            measured[i] = m
    checks: list[Check] = []
    for (entry, *_), values in zip(loaded, measured):
        searched = {k: float(v) for k, v in entry["searched"].items()}
        error = {k: values[k] - searched[k] for k in values if k in searched}
        rel = {k: (e / abs(searched[k]) if searched[k] else math.inf if e else 0.0) for k, e in error.items()}
        checks.append(Check(int(entry["trial"]), entry["path"], searched, values, error, rel))
    _flags(checks, objectives, constraints)
    report = VerifyReport(out, checks, objectives, constraints)
    if write:
        (out / VERIFY_REPORT).write_text(json.dumps(report.to_json(), indent=1, allow_nan=True))
    for c in report.flagged:
        log.warning("trial %d: %s", c.trial, "; ".join(c.flags))
    return report


def verify_table(report: VerifyReport) -> Any:
    """The report as a rich table: per model and objective, searched -> measured (error), then flags."""
    from rich.table import Table

    from nas.cli import fmt

    names = [o.name for o in report.objectives]
    extra = sorted({k for c in report.checks for k in c.measured} - set(names))
    table = Table(title=f"verify: {len(report.checks)} exported models re-measured, "
                        f"{len(report.flagged)} flagged", title_justify="left")
    table.add_column("trial", justify="right")
    for n in names + extra:
        table.add_column(f"{n}\nsearched → measured", justify="right")
    table.add_column("flags", overflow="fold")

    def cell(c: Check, n: str) -> str:
        if n not in c.measured:
            return fmt(c.searched.get(n, float("nan"))) + " (not re-measured)"
        if n not in c.searched:
            return fmt(c.measured[n])
        return f"{fmt(c.searched[n])} → {fmt(c.measured[n])} ({c.rel_error[n]:+.1%})"

    for c in report.checks:
        table.add_row(str(c.trial), *(cell(c, n) for n in names + extra), "; ".join(c.flags) or "ok")
    return table
