"""Regularized (aging) evolution, Real et al. 2019: tournament selection, mutation, oldest member dies."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.spaces import Architecture, Space
from nas.objectives import Problem
from nas.strategies.base import Strategy, TrialResult, arch_record, from_record, pareto_ranks, scalar_key


class RegularizedEvolution(Strategy):
    """Aging evolution; with several objectives the tournament winner is picked by Pareto rank.

    Cached (duplicate) results are ignored so the population holds distinct architectures. The tournament
    samples half the population by default (`sample_size=None`: 25 of 50, stronger selection than the
    paper's 10 of 100; measured in experiments/core_benchmark.py and experiments/README.md).
    """

    name = "evolution"
    requires = frozenset({"sample", "mutate"})

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0,
                 population_size: int = 50, sample_size: int | None = None) -> None:
        super().__init__(space, problem, seed)
        if population_size < 2:
            raise ConfigError(f"evolution: population_size must be >= 2, got {population_size}")
        if sample_size is None:
            sample_size = population_size // 2
        if not 1 <= sample_size <= population_size:
            raise ConfigError(f"evolution: sample_size must be in 1..population_size, got {sample_size}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: deque[tuple[Architecture, TrialResult]] = deque(maxlen=population_size)
        self.random_asked = 0

    def ask(self, n: int = 1) -> list[Architecture]:
        out = []
        for _ in range(n):
            if len(self.population) < self.population_size and self.random_asked < self.population_size:
                self.random_asked += 1
                out.append(self.space.sample(self.rng))
            elif not self.population:
                out.append(self.space.sample(self.rng))
            else:
                out.append(self.space.mutate(self._tournament(), self.rng))
        return out

    def _tournament(self) -> Architecture:
        return tournament(self.problem, self.population, self.sample_size, self.rng)

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        if not result.cached:
            self.population.append((arch, result))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "random_asked": self.random_asked,
                "population": [arch_record(a, r) for a, r in self.population]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.random_asked = int(state["random_asked"])
        self.population = deque((from_record(r) for r in state["population"]), maxlen=self.population_size)


def tournament(problem: Problem, population: Sequence[tuple[Architecture, TrialResult]], sample_size: int,
               rng: np.random.Generator) -> Architecture:
    """The winner of `sample_size` members drawn without replacement (`population` ordered oldest first).

    One objective: the best scalar key, ties to the youngest, so the search drifts across plateaus of
    equal scores (frequent with accuracies on small validation sets) instead of re-mutating an old parent.
    Several objectives: a random member of the best Pareto rank.
    """
    k = min(sample_size, len(population))
    idx = rng.choice(len(population), size=k, replace=False)
    if len(problem.objectives) == 1:
        best = min((int(i) for i in idx), key=lambda i: (scalar_key(problem, population[i][1]), -i))
        return population[best][0]
    members = [population[int(i)] for i in idx]
    ranks = pareto_ranks(problem, [m[1] for m in members])
    best = [m for m, r in zip(members, ranks) if r == ranks.min()]
    return best[int(rng.integers(len(best)))][0]
