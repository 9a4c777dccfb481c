"""Objectives and constraints as data: names, directions, bounds; never code paths."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nas.errors import ConfigError

if TYPE_CHECKING:
    from nas.store import Trial

Direction = Literal["min", "max"]
_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


OPTUNA_DIRECTIONS = {"minimize": "min", "maximize": "max"}
"""Optuna's direction names, taken as ours."""


@dataclass(frozen=True)
class Objective:
    """A metric to optimise, in a direction ("min" or "max")."""

    name: str
    direction: Direction

    def __post_init__(self) -> None:
        _check_name(self.name, "objective")
        direction = OPTUNA_DIRECTIONS.get(self.direction, self.direction) if isinstance(self.direction, str) else None
        if direction not in ("min", "max"):
            raise ConfigError(f"objective {self.name!r}: direction must be 'min' or 'max' (or Optuna's 'minimize' / "
                              f"'maximize'), got {self.direction!r}")
        object.__setattr__(self, "direction", direction)  # one spelling in journals, so both resume one search

    def minimised(self, value: float) -> float:
        """The value in minimisation form (maximised objectives are negated)."""
        return value if self.direction == "min" else -value


def _number(text: str) -> float | None:
    """`text` as a float ("20", "-1.5e3", "inf"), or None ("1e", "20ms", "")."""
    try:
        return float(text)
    except ValueError:
        return None


def _split_constraint(text: str) -> tuple[str, str, str]:
    """"metric OP bound" as (metric, op, bound text), split at the last comparison operator, so a metric name
    may hold any character (`top-1`, `acc@1`, `val acc`, even `a<b`): the bound, a number, holds none of
    `<`, `>`. ConfigError saying which part is wrong: no operator, no metric, an operator run into the name
    (`x => 3`, `x=<3`: where does the name end?) or a bound that is not a number."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"constraint {text!r} is not of the form 'metric <= number' (also >=, <, >): {why}")

    at = max(text.rfind("<"), text.rfind(">"))
    if at < 0:
        raise bad("it has no comparison operator" + (" ('=' and '==' are not ones)" if "=" in text else ""))
    op = text[at:at + 2] if text[at + 1:at + 2] == "=" else text[at]
    before, bound = text[:at], text[at + len(op):].strip()
    metric = before.strip()
    if not metric:
        raise bad(f"no metric name before {op!r}")
    if before[-1] in "<>=":  # "x => 3", "x=<3", "a<<3": an operator written otherwise, or a name ending in one
        raise bad(f"the metric name {metric!r} runs into the operator {op!r}, so where the name ends is "
                  f"ambiguous (a name that ends in {before[-1]!r} needs a space before the operator)")
    if _number(bound) is None:
        raise bad(f"the bound {bound!r} after {op!r} is not a number")
    return metric, op, bound


def _check_name(name: Any, what: str) -> None:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ConfigError(f"{what}: the metric name must be a non-empty string without surrounding spaces, "
                          f"got {name!r}")


@dataclass(frozen=True)
class Constraint:
    """A hard bound on a metric, e.g. `Constraint("latency_ms", "<=", 20)` or parsed from "latency_ms <= 20"."""

    metric: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        _check_name(self.metric, "constraint")
        if self.op not in _OPS:
            raise ConfigError(f"constraint on {self.metric!r}: op must be one of {', '.join(_OPS)}, got {self.op!r}")
        if isinstance(self.bound, bool) or not isinstance(self.bound, (int, float)) or math.isnan(self.bound):
            raise ConfigError(f"constraint on {self.metric!r}: bound must be a number, got {self.bound!r}")
        object.__setattr__(self, "bound", float(self.bound))

    @classmethod
    def parse(cls, text: str) -> "Constraint":
        """From "metric OP number": any metric name an objective may have ("top-1 <= 3"), split at the last
        operator; it reads back every `str(constraint)` (the journal stores that text)."""
        if not isinstance(text, str):
            raise ConfigError(f"constraint {text!r}: expected a string like 'latency_ms <= 20' or a Constraint")
        metric, op, bound = _split_constraint(text)
        return cls(metric, op, float(bound))

    def satisfied(self, metrics: Mapping[str, float]) -> bool:
        return self.violation(metrics) == 0.0

    def violation(self, metrics: Mapping[str, float]) -> float:
        """How far the metric is beyond the bound (0 when satisfied; strict bounds count equality as tiny)."""
        value = float(metrics[self.metric])
        if math.isnan(value):
            return math.inf
        if _OPS[self.op](value, self.bound):
            return 0.0
        gap = abs(value - self.bound)
        return gap if gap > 0 else 1e-12

    def __str__(self) -> str:
        short = f"{self.bound:g}"  # exact: the journal stores this text, and a reload judges feasibility by it
        exact = str(int(self.bound)) if self.bound.is_integer() and abs(self.bound) < 1e15 else repr(self.bound)
        return f"{self.metric} {self.op} {short if float(short) == self.bound else exact}"


@dataclass(frozen=True)
class Problem:
    """What a search optimises: objectives (order matters for display) and constraints."""

    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()

    def __post_init__(self) -> None:
        objectives, constraints = tuple(self.objectives), tuple(self.constraints)
        if not objectives:
            raise ConfigError("objectives: at least one objective is needed, e.g. {'accuracy': 'max'}")
        seen: set[str] = set()
        for i, o in enumerate(objectives):
            if not isinstance(o, Objective):
                raise ConfigError(f"objectives[{i}]: expected an Objective, got {o!r}")
            if o.name in seen:
                raise ConfigError(f"objectives: {o.name!r} is given twice")
            seen.add(o.name)
        for i, c in enumerate(constraints):
            if not isinstance(c, Constraint):
                raise ConfigError(f"constraints[{i}]: expected a Constraint, got {c!r}")
        object.__setattr__(self, "objectives", objectives)
        object.__setattr__(self, "constraints", constraints)

    @classmethod
    def make(cls, objectives: Mapping[str, str] | Sequence[Objective] | str,
             constraints: Iterable[str | Constraint] | str = ()) -> "Problem":
        """From the user-facing forms: {"accuracy": "max"} or "accuracy" (max) and ["latency_ms <= 20"]."""
        if isinstance(objectives, str):
            objectives = {objectives: "max"}
        if isinstance(objectives, Mapping):
            objs = [Objective(name, direction) for name, direction in objectives.items()]
        elif isinstance(objectives, (list, tuple)):
            objs = []
            for i, o in enumerate(objectives):
                if isinstance(o, str):
                    raise ConfigError(f"objectives[{i}]: {o!r} has no direction; give a dict such as "
                                      f"{{{o!r}: 'max'}} or Objective({o!r}, 'max')")
                objs.append(o)
        else:
            raise ConfigError(f"objectives: expected a dict of name -> 'min'/'max' (e.g. {{'accuracy': 'max'}}), "
                              f"got {type(objectives).__name__}")
        if isinstance(constraints, (str, Constraint)):
            constraints = [constraints]
        elif not isinstance(constraints, Iterable):
            raise ConfigError(f"constraints: expected a list such as ['latency_ms <= 20'], got {constraints!r}")
        cons = tuple(c if isinstance(c, Constraint) else Constraint.parse(c) for c in constraints)
        return cls(tuple(objs), cons)

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def metrics_needed(self) -> list[str]:
        return self.names + [c.metric for c in self.constraints if c.metric not in self.names]

    def missing(self, metrics: Mapping[str, Any]) -> list[str]:
        """The objective and constraint metrics that `metrics` lacks."""
        return [m for m in self.metrics_needed if m not in metrics]

    def names_error(self, metrics: Mapping[str, Any]) -> str | None:
        """The message when a result lacks a metric an objective or constraint names (on a search's first
        result: most likely a typo in those names), or None."""
        for o in self.objectives:
            if o.name not in metrics:
                return (f"objective {o.name!r} is not among the metrics evaluate returned "
                        f"({', '.join(sorted(metrics)) or 'none'})")
        for c in self.constraints:
            if c.metric not in metrics:
                return (f"constraint '{c}' names metric {c.metric!r}, which evaluate did not return "
                        f"(it returned: {', '.join(sorted(metrics)) or 'nothing'})")
        return None

    def completed(self, trial: Trial) -> bool:
        """Whether `trial` counts as a result: evaluated, trained to the end (not pruned: a pruned trial's metrics
        are a partial training's), with every objective and constraint metric present and finite."""
        return trial.status == "ok" and trial.pruned_after is None and self.result_error(trial.metrics) is None

    def result_error(self, metrics: Mapping[str, float]) -> str | None:
        """Why a result cannot count as completed (a missing or non-finite objective/constraint metric), or None."""
        missing = self.missing(metrics)
        if missing:
            return (f"evaluate did not return {', '.join(map(repr, missing))} (it returned: "
                    f"{', '.join(sorted(metrics)) or 'nothing'})")
        return self.non_finite(metrics)

    def non_finite(self, metrics: Mapping[str, float]) -> str | None:
        """Which objective or constraint metrics among `metrics` are NaN or infinite (None when none is)."""
        bad = [m for m in self.metrics_needed if m in metrics and not math.isfinite(float(metrics[m]))]
        if bad:
            return "non-finite " + ", ".join(f"{m} = {float(metrics[m])}" for m in bad) + \
                " (an objective or constraint metric must be a finite number)"
        return None

    def vector(self, metrics: Mapping[str, float]) -> tuple[float, ...]:
        """Objective values in minimisation form, NaN-safe (NaN becomes +inf: worst)."""
        out = []
        for o in self.objectives:
            v = o.minimised(float(metrics[o.name]))
            out.append(math.inf if math.isnan(v) else v)
        return tuple(out)

    def violation(self, metrics: Mapping[str, float]) -> float:
        """Total constraint violation: 0 for feasible results; metrics missing count as infinite."""
        total = 0.0
        for c in self.constraints:
            total += c.violation(metrics) if c.metric in metrics else math.inf
        return total

    def feasible(self, metrics: Mapping[str, float]) -> bool:
        return self.violation(metrics) == 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"objectives": {o.name: o.direction for o in self.objectives},
                "constraints": [str(c) for c in self.constraints]}
