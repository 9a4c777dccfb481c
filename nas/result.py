"""`SearchResult`: the trials of a search, with best, Pareto front and hypervolume over its objectives."""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import ConfigError, JournalError
from nas.objectives import OPTUNA_DIRECTIONS, Objective, Problem
from nas.pareto import hypervolume, pareto_mask
from nas.store import Journal, Trial, evaluations_used


def outcome(problem: Problem, t: Trial) -> str:
    """How a trial ended for `problem`: "feasible", "infeasible" (breaks a constraint: rejected by a cheap one
    before evaluation, status "infeasible", or evaluated and violating one, status "ok"), "failed", or, for an
    ok result lacking a needed metric, "incomplete", or "pruned" for an ok result a pruner stopped (its metrics
    are a partial training's); another status is returned as is."""
    if t.status != "ok":
        return t.status
    if problem.result_error(t.metrics) is not None:
        return "incomplete"
    if t.pruned_after is not None:
        return "pruned"
    return "feasible" if problem.feasible(t.metrics) else "infeasible"


@dataclass(frozen=True)
class TrialCounts:
    """Trials by `outcome`; `infeasible` = `rejected` (cheap stage) + `violating` (evaluated)."""

    trials: int
    feasible: int
    rejected: int
    violating: int
    failed: int
    other: dict[str, int] = field(default_factory=dict)  # "pruned", "incomplete" and any other status

    @property
    def infeasible(self) -> int:
        return self.rejected + self.violating


def fidelity_levels(config: Mapping[str, Any]) -> tuple[str, list[Any], Any] | None:
    """(field, levels, top level) when the journal header `config` is a search over a `FidelitySpace` (its space
    spec says so; the class appends its field last), else None."""
    spec = config.get("space_spec")
    if not isinstance(spec, Mapping) or spec.get("type") != "FidelitySpace" or not spec.get("fields"):
        return None
    name, node = list(spec["fields"].items())[-1]
    levels = node.get("choice") if isinstance(node, Mapping) else None
    return (name, levels, max(levels)) if isinstance(levels, list) and levels else None


@dataclass
class SearchResult:
    """Every trial of a search (journal order) and the problem it optimised."""

    trials: list[Trial]
    problem: Problem
    workdir: Path | None = None
    stop_reason: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # the journal header: strategy, seed, budget, ...
    _completed: tuple[tuple[int, int], int, list[Trial], list[Trial]] | None = field(
        default=None, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, workdir: str | Path) -> "SearchResult":
        """Read a (finished, running or killed) search back from its workdir."""
        journal = Journal(workdir)
        contents = journal.read()
        config = contents.config
        try:
            problem = Problem.make(config["problem"]["objectives"], config["problem"]["constraints"])
        except (KeyError, TypeError) as e:
            raise JournalError(f"{journal.path}:1: the header names no objectives ({e!r} missing)") from None
        writing = contents.still_writing and journal.search_running()
        stop = "still being written" if writing else contents.stop_reason or "loaded"
        return cls(contents.trials, problem, Path(workdir), stop, config)

    @property
    def completed(self) -> list[Trial]:
        """Evaluated trials whose metrics include every objective and constraint metric, all finite, and which
        trained to the end: a pruned trial's metrics are a partial training's (Optuna's best trials hold only
        complete ones too)."""
        return list(self._sorted()[0])

    @property
    def top_fidelity(self) -> tuple[str, Any] | None:
        """(field, level) of the top fidelity when the search ran over a `FidelitySpace`, else None: best, front,
        hypervolume and history rank the trials at that level only, as a lower level's metrics are a shorter
        training's (as a pruned trial's are)."""
        found = fidelity_levels(self.config)
        return (found[0], found[2]) if found is not None else None

    @property
    def used(self) -> int:
        """Evaluations spent (every trial but cheap rejections and re-checked copies)."""
        return evaluations_used(self.trials)

    @property
    def feasible(self) -> list[Trial]:
        """Completed trials that satisfy every constraint."""
        return list(self._sorted()[1])

    def _sorted(self) -> tuple[list[Trial], list[Trial]]:
        """(completed, feasible), kept between calls (best, front and history each ask for them) and only
        extended when `trials` grew, as under a dashboard following a running search: `trials` is appended
        to, never edited in place."""
        key = (id(self.trials), id(self.problem))
        cached = self._completed
        if cached is None or cached[0] != key or cached[1] > len(self.trials):
            cached = (key, 0, [], [])
        new = [t for t in self.trials[cached[1]:] if self.problem.completed(t)]
        self._completed = (key, len(self.trials), cached[2] + new,
                           cached[3] + [t for t in new if self.problem.feasible(t.metrics)])
        return self._completed[2], self._completed[3]

    def counts(self) -> TrialCounts:
        """The trials by `outcome`: feasible, infeasible (rejected in the cheap stage or evaluated and
        violating a constraint), failed."""
        kinds = Counter(outcome(self.problem, t) for t in self.trials)
        rejected = sum(t.status == "infeasible" for t in self.trials)
        return TrialCounts(len(self.trials), kinds.pop("feasible", 0), rejected, kinds.pop("infeasible", 0) - rejected,
                           kinds.pop("failed", 0), dict(kinds))

    def objective(self, name: str | Objective | None = None) -> Objective:
        """The objective called `name` (default: the first). Any recorded metric counts with its direction,
        "params_m:min" or `Objective("params_m", "min")`; another bare name is a ConfigError saying so. An
        objective's own name is matched first, so a name holding ":" ("val:acc") is that objective."""
        if name is None:
            return self.problem.objectives[0]
        if isinstance(name, Objective):
            return name
        for o in self.problem.objectives:
            if o.name == name:
                return o
        metric, sep, direction = str(name).rpartition(":")
        direction = OPTUNA_DIRECTIONS.get(direction, direction)  # Optuna's maximize / minimize too
        if sep and direction in ("min", "max"):
            metric = metric.strip()
            known = set(self.problem.names) | {m for t in self.trials for m in t.metrics}
            if self.trials and metric not in known:  # a typo would give an empty front and no error
                raise ConfigError(f"{metric!r} is not a metric any trial recorded (recorded: "
                                  f"{', '.join(sorted(known)) or 'none'})")
            return Objective(metric, direction)  # type: ignore[arg-type]
        recorded = sorted({m for t in self.completed for m in t.metrics} - set(self.problem.names))
        if name in recorded:
            hint = f"; to use the recorded metric, give its direction: {name}:min or {name}:max"
        elif sep and metric.strip():
            hint = f"; the direction after ':' must be min or max, got {direction!r}"
        else:
            hint = f"; other recorded metrics: {', '.join(recorded)} (as NAME:min or NAME:max)" if recorded else ""
        raise ConfigError(f"{name!r} is not an objective of this search ({', '.join(self.problem.names)}){hint}")

    def feasible_with(self, objs: Sequence[Objective]) -> list[Trial]:
        """Feasible trials that recorded every metric of `objs` (a non-objective metric may be missing); of a
        multi-fidelity search, those at the top level (`top_fidelity`). Best, front, hypervolume and history
        rank these."""
        top = self.top_fidelity
        return [t for t in self.feasible if all(o.name in t.metrics and np.isfinite(t.metrics[o.name]) for o in objs)
                and (top is None or t.arch.get(top[0]) == top[1])]

    def best(self, objective: str | Objective | None = None) -> Trial | None:
        """The feasible trial best on `objective` (default: the first); None when no trial is feasible. Of a
        multi-fidelity search, only trials at the top level count (`feasible_with`)."""
        obj = self.objective(objective)
        feasible = self.feasible_with([obj])
        if not feasible:
            return None
        return min(feasible, key=lambda t: (obj.minimised(t.metrics[obj.name]), t.number))

    def _objectives(self, objectives: Sequence[str | Objective] | str | Objective | None) -> list[Objective]:
        """The objectives named (one name or `Objective` counts as a list of one, as `best` takes it); default all."""
        if isinstance(objectives, (str, Objective)):
            objectives = [objectives]
        return [self.objective(n) for n in objectives] if objectives else list(self.problem.objectives)

    def pareto_front(self, objectives: Sequence[str | Objective] | str | Objective | None = None) -> list[Trial]:
        """Feasible trials not dominated on the objectives (non-dominated sorting, not a convex hull); any
        recorded metric may join with its direction ("params_m:min")."""
        objs = self._objectives(objectives)
        Problem(tuple(objs))  # its checks: an objective given twice is an error, not a front shown twice
        feasible = self.feasible_with(objs)
        if not feasible:
            return []
        pts = np.array([[o.minimised(t.metrics[o.name]) for o in objs] for t in feasible], dtype=float)
        mask = pareto_mask(pts)
        front = [t for t, m in zip(feasible, mask) if m]
        return sorted(front, key=lambda t: [objs[0].minimised(t.metrics[objs[0].name]), t.number])

    def hypervolume(self, reference: Sequence[float],
                    objectives: Sequence[str | Objective] | str | Objective | None = None) -> float:
        """Hypervolume of the feasible trials against `reference`, given in the objectives' own units."""
        objs = self._objectives(objectives)
        try:
            values = None if isinstance(reference, str) else list(reference)
        except TypeError:  # one number, or a 0-d array
            values = None
        if values is None or not all(isinstance(r, numbers.Real) and not isinstance(r, bool) and math.isfinite(r)
                                     for r in values):
            raise ConfigError(f"reference: expected one finite number per objective ({', '.join(o.name for o in objs)})"
                              f", got {reference!r}")
        if len(values) != len(objs):
            raise ConfigError(f"reference has {len(values)} values for {len(objs)} objectives")
        ref = [o.minimised(r) for o, r in zip(objs, values)]
        pts = np.array([[o.minimised(t.metrics[o.name]) for o in objs] for t in self.feasible_with(objs)], dtype=float)
        return hypervolume(pts.reshape(-1, len(objs)), ref)

    def history(self, objective: str | Objective | None = None) -> list[tuple[int, float]]:
        """(evaluations used, best feasible value so far) after each trial that improved `objective`."""
        obj = self.objective(objective)
        out: list[tuple[int, float]] = []
        feasible = {t.number for t in self.feasible_with([obj])}
        used = 0
        for t in self.trials:
            used += t.is_evaluation
            if t.number in feasible:
                v = t.metrics[obj.name]
                if not out or obj.minimised(v) < obj.minimised(out[-1][1]):
                    out.append((used, v))
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per trial: number, status, arch_id, `feasible` (an evaluated trial satisfying every
        constraint: an evaluated one that breaks a constraint has status "ok" but feasible False, as has a trial a
        cheap constraint rejected, status "infeasible"), timings, worker, error, `pruned_after` (when a pruner
        stopped any trial), each metric, each architecture decision as `arch.<path>` (e.g. `arch.blocks.0.k`) and
        each user attribute as `user_attrs.<key>` (`nas.set_user_attr`); what `to_dataframe` holds. A metric named
        like one of those columns (`duration`, `arch.x`) is `metric.<name>`, so it overwrites nothing."""
        rows = []
        pruned = any(t.pruned_after is not None for t in self.trials)
        for t in self.trials:
            row: dict[str, Any] = {"number": t.number, "status": t.status, "arch_id": t.arch_id,
                                   "feasible": outcome(self.problem, t) == "feasible",
                                   "started": t.started, "finished": t.finished, "duration": t.duration,
                                   "worker": t.worker, "error": t.error}
            if pruned:
                row["pruned_after"] = t.pruned_after
            row.update({f"metric.{k}" if k in row or k.startswith(("arch.", "metric.", "user_attrs.")) else k: v
                        for k, v in t.metrics.items()})
            row.update(_flatten(t.arch, "arch"))
            row.update({f"user_attrs.{k}": v for k, v in t.user_attrs.items()})  # as Optuna's trials_dataframe
            rows.append(row)
        return rows

    def to_dataframe(self) -> Any:
        """The trials as a pandas DataFrame (`to_records`), one row per trial in journal order. Integer decisions
        some trials lack (blocks past a shallower depth) stay integers (pandas' nullable Int64), not 3.0. With no trial
        yet it is empty but keeps the fixed columns and the objectives, so its CSV still has a header line."""
        import pandas as pd

        records = self.to_records()
        if not records:  # no trial yet: still the columns every row has, so a CSV of it has its header line
            columns = [*_RECORD_COLUMNS, *(f"metric.{n}" if n in _RECORD_COLUMNS or n.startswith(
                ("arch.", "metric.", "user_attrs.")) else n for n in self.problem.names)]  # as to_records names them
            return pd.DataFrame(columns=columns)
        frame = pd.DataFrame.from_records(records)
        for column in frame.columns:
            values = [r[column] for r in records if r.get(column) is not None]
            if ((column.startswith("arch.") or column == "pruned_after") and values and len(values) < len(records)
                    and all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
                frame[column] = frame[column].astype("Int64")
        return frame


_RECORD_COLUMNS = ("number", "status", "arch_id", "feasible", "started", "finished", "duration", "worker", "error")
"""The columns `to_records` gives every trial, before its metrics, decisions and user attributes."""


def decisions(arch: Mapping[str, Any]) -> dict[str, Any]:
    """An architecture's decisions by dotted path, {"depth": 2, "blocks.0.k": 3, ...}: `to_records`' `arch.` columns."""
    return {k[1:]: v for k, v in _flatten(dict(arch), "").items()}


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    """{"arch.blocks.0.k": 3, ...}: nested dicts and lists as dotted paths."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}.{key}").items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}.{i}").items()}
    return {prefix: value}
