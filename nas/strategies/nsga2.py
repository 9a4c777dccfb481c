"""NSGA-II (Deb et al. 2002) as ask/tell: constraint-domination, crowding distance, elitist selection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.objectives import Problem
from nas.pareto import crowding_distance
from nas.spaces import Architecture, Space
from nas.strategies.base import Strategy, TrialResult, arch_record, check_count, from_record, pareto_ranks

Member = tuple[Architecture, TrialResult]


class NSGA2(Strategy):
    """Generations of `population_size` children; parents = best of parents + children by (rank, crowding).

    Asynchronous: children are bred from the current parents whenever asked, and a generation closes as
    soon as `population_size` results have been told, whichever architectures they belong to.
    """

    name = "nsga2"
    requires = frozenset({"sample", "mutate", "crossover"})

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0,
                 population_size: int = 20, crossover_prob: float = 0.9) -> None:
        super().__init__(space, problem, seed)
        if population_size < 2:
            raise ConfigError(f"nsga2: population_size must be >= 2, got {population_size}")
        if not 0.0 <= crossover_prob <= 1.0:
            raise ConfigError(f"nsga2: crossover_prob must be in [0, 1], got {crossover_prob}")
        self.population_size = population_size
        self.crossover_prob = crossover_prob
        self.parents: list[Member] = []
        self.children: list[Member] = []
        self._rank = np.zeros(0)
        self._crowding = np.zeros(0)

    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        out = []
        for _ in range(n):
            if not self.parents:
                out.append(self.space.sample(self.rng))
                continue
            a = self._binary_tournament()
            if self.rng.random() < self.crossover_prob:
                child = self.space.crossover(a, self._binary_tournament(), self.rng)
            else:
                child = a
            out.append(self.space.mutate(child, self.rng))
        return out

    def _binary_tournament(self) -> Architecture:
        i, j = (int(x) for x in self.rng.integers(len(self.parents), size=2))
        if (self._rank[i], -self._crowding[i]) <= (self._rank[j], -self._crowding[j]):
            return self.parents[i][0]
        return self.parents[j][0]

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        if result.cached:
            return
        self.children.append((arch, result))
        if len(self.children) >= self.population_size:
            self._set_parents(self._select(self.parents + self.children))
            self.children = []

    def _select(self, pool: Sequence[Member]) -> list[Member]:
        """Elitist environmental selection: whole fronts, the last one cut by crowding distance."""
        ranks = pareto_ranks(self.problem, [m[1] for m in pool])
        chosen: list[int] = []
        for r in np.unique(ranks):
            front = np.flatnonzero(ranks == r)
            if len(chosen) + len(front) <= self.population_size:
                chosen.extend(front.tolist())
                continue
            crowd = self._front_crowding(pool, front)
            order = np.argsort(-crowd, kind="stable")
            chosen.extend(front[order[: self.population_size - len(chosen)]].tolist())
            break
        return [pool[i] for i in chosen]

    def _front_crowding(self, pool: Sequence[Member], front: np.ndarray) -> np.ndarray:
        res = [pool[int(i)][1] for i in front]
        if not all(r.status == "ok" and self.problem.feasible(r.metrics) for r in res):
            return np.zeros(len(front))  # infeasible ranks are by violation; no crowding among them
        pts = np.array([self.problem.vector(r.metrics) for r in res], dtype=float)
        return crowding_distance(pts)

    def _set_parents(self, parents: list[Member]) -> None:
        self.parents = parents
        self._rank = pareto_ranks(self.problem, [m[1] for m in parents])
        self._crowding = np.zeros(len(parents))
        for r in np.unique(self._rank):
            front = np.flatnonzero(self._rank == r)
            self._crowding[front] = self._front_crowding(parents, front)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(),
                "parents": [arch_record(a, r) for a, r in self.parents],
                "children": [arch_record(a, r) for a, r in self.children]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self._set_parents([from_record(r) for r in state["parents"]])
        self.children = [from_record(r) for r in state["children"]]
