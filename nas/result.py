"""`SearchResult`: the trials of a search, with best, Pareto front and hypervolume over its objectives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.objectives import Objective, Problem
from nas.pareto import hypervolume, pareto_mask
from nas.store import Journal, Trial


@dataclass
class SearchResult:
    """Every trial of a search (journal order) and the problem it optimised."""

    trials: list[Trial]
    problem: Problem
    workdir: Path | None = None
    stop_reason: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # the journal header: strategy, seed, budget, ...

    @classmethod
    def load(cls, workdir: str | Path) -> "SearchResult":
        """Read a (finished, running or killed) search back from its workdir."""
        config, trials = Journal(workdir).read()
        problem = Problem.make(config["problem"]["objectives"], config["problem"]["constraints"])
        return cls(trials, problem, Path(workdir), "loaded", config)

    @property
    def completed(self) -> list[Trial]:
        """Evaluated trials whose metrics include every objective and constraint metric."""
        need = self.problem.metrics_needed
        return [t for t in self.trials if t.status == "ok" and all(m in t.metrics for m in need)]

    @property
    def feasible(self) -> list[Trial]:
        return [t for t in self.completed if self.problem.feasible(t.metrics)]

    def objective(self, name: str | None = None) -> Objective:
        """The objective called `name` (default: the first); ConfigError for other names."""
        if name is None:
            return self.problem.objectives[0]
        for o in self.problem.objectives:
            if o.name == name:
                return o
        raise ConfigError(f"{name!r} is not an objective of this search ({', '.join(self.problem.names)})")

    def best(self, objective: str | None = None) -> Trial | None:
        """The feasible trial best on `objective` (default: the first); None when no trial is feasible."""
        obj = self.objective(objective)
        feasible = self.feasible
        if not feasible:
            return None
        return min(feasible, key=lambda t: (obj.minimised(t.metrics[obj.name]), t.number))

    def pareto_front(self, objectives: Sequence[str] | None = None) -> list[Trial]:
        """Feasible trials not dominated on the objectives (non-dominated sorting, not a convex hull)."""
        objs = [self.objective(n) for n in objectives] if objectives else list(self.problem.objectives)
        feasible = self.feasible
        if not feasible:
            return []
        pts = np.array([[o.minimised(t.metrics[o.name]) for o in objs] for t in feasible], dtype=float)
        mask = pareto_mask(pts)
        front = [t for t, m in zip(feasible, mask) if m]
        return sorted(front, key=lambda t: [objs[0].minimised(t.metrics[objs[0].name]), t.number])

    def hypervolume(self, reference: Sequence[float], objectives: Sequence[str] | None = None) -> float:
        """Hypervolume of the feasible trials against `reference`, given in the objectives' own units."""
        objs = [self.objective(n) for n in objectives] if objectives else list(self.problem.objectives)
        if len(reference) != len(objs):
            raise ConfigError(f"reference has {len(reference)} values for {len(objs)} objectives")
        ref = [o.minimised(r) for o, r in zip(objs, reference)]
        pts = np.array([[o.minimised(t.metrics[o.name]) for o in objs] for t in self.feasible], dtype=float)
        return hypervolume(pts.reshape(-1, len(objs)), ref)

    def export(self, out: str | Path, top: int | None = None, constraint: Any = None, **options: Any) -> Any:
        """Export the Pareto-optimal trials as standalone models to `out` (`nas.export.export`)."""
        from nas.export import export

        return export(self, out, top, constraint, **options)
