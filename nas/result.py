"""`SearchResult`: the trials of a search, with best, Pareto front and hypervolume over its objectives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import ConfigError, JournalError
from nas.objectives import Objective, Problem
from nas.pareto import hypervolume, pareto_mask
from nas.store import Journal, Trial, evaluations_used


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
        journal = Journal(workdir)
        contents = journal.read()
        config = contents.config
        try:
            problem = Problem.make(config["problem"]["objectives"], config["problem"]["constraints"])
        except (KeyError, TypeError) as e:
            raise JournalError(f"{journal.path}:1: the header names no objectives ({e!r} missing)") from None
        return cls(contents.trials, problem, Path(workdir), "still being written" if contents.still_writing
                   else "loaded", config)

    @property
    def completed(self) -> list[Trial]:
        """Evaluated trials whose metrics include every objective and constraint metric, all finite."""
        return [t for t in self.trials if t.status == "ok" and self.problem.result_error(t.metrics) is None]

    @property
    def used(self) -> int:
        """Evaluations spent (every trial but cheap rejections and re-checked copies)."""
        return evaluations_used(self.trials)

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
