"""Objectives and constraints as data: names, directions, bounds; never code paths."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nas.errors import ConfigError

Direction = Literal["min", "max"]
_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+|inf|-inf)\s*$")


@dataclass(frozen=True)
class Objective:
    """A metric to optimise, in a direction."""

    name: str
    direction: Direction

    def minimised(self, value: float) -> float:
        """The value in minimisation form (maximised objectives are negated)."""
        return value if self.direction == "min" else -value


@dataclass(frozen=True)
class Constraint:
    """A hard bound on a metric, e.g. `Constraint("latency_ms", "<=", 20)` or parsed from "latency_ms <= 20"."""

    metric: str
    op: str
    bound: float

    @classmethod
    def parse(cls, text: str) -> "Constraint":
        m = _CONSTRAINT.match(text)
        if not m:
            raise ConfigError(f"constraint {text!r} is not of the form 'metric <= number' (also >=, <, >)")
        return cls(m.group(1), m.group(2), float(m.group(3)))

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
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class Problem:
    """What a search optimises: objectives (order matters for display) and constraints."""

    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()

    @classmethod
    def make(cls, objectives: Mapping[str, str] | Sequence[Objective] | str,
             constraints: Iterable[str | Constraint] = ()) -> "Problem":
        """From the user-facing forms: {"accuracy": "max"} or "accuracy" (max) and ["latency_ms <= 20"]."""
        if isinstance(objectives, str):
            objectives = {objectives: "max"}
        if isinstance(objectives, Mapping):
            objs = []
            for name, direction in objectives.items():
                if direction not in ("min", "max"):
                    raise ConfigError(f"objective {name!r}: direction must be 'min' or 'max', got {direction!r}")
                objs.append(Objective(str(name), direction))
        else:
            objs = list(objectives)
        if not objs:
            raise ConfigError("objectives: at least one objective is needed, e.g. {'accuracy': 'max'}")
        cons = tuple(c if isinstance(c, Constraint) else Constraint.parse(c) for c in constraints)
        return cls(tuple(objs), cons)

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def metrics_needed(self) -> list[str]:
        return self.names + [c.metric for c in self.constraints if c.metric not in self.names]

    def check_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Raise ConfigError when a result lacks a metric that an objective or constraint names."""
        for o in self.objectives:
            if o.name not in metrics:
                raise ConfigError(f"objective {o.name!r} is not among the metrics evaluate returned "
                                  f"({', '.join(sorted(metrics)) or 'none'})")
        for c in self.constraints:
            if c.metric not in metrics:
                raise ConfigError(f"constraint '{c}' names metric {c.metric!r}, which evaluate did not return "
                                  f"(it returned: {', '.join(sorted(metrics)) or 'nothing'})")

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
