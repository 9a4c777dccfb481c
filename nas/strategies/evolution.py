"""Regularized (aging) evolution, Real et al. 2019: tournament selection, mutation, oldest member dies."""

from __future__ import annotations

import bisect
import inspect
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.spaces import Architecture, Space
from nas.objectives import Problem
from nas.pareto import ParetoFronts
from nas.strategies.base import (Strategy, TrialResult, arch_record, check_count, from_record, on_front,
                                 pareto_ranks, scalar_key)

logger = logging.getLogger(__name__)


class RegularizedEvolution(Strategy):
    """Aging evolution; with several objectives the tournament winner is picked by Pareto rank.

    Cached (duplicate) results are ignored so the population holds distinct architectures. The tournament
    samples half the population by default (`sample_size=None`: 25 of 50, stronger selection than the
    paper's 10 of 100). With probability `mutation_bias` a mutation copies the changed decision's new
    value from a random member of the best quarter of every result so far (`Space.mutate(guide=...)`),
    so values that keep appearing in good architectures are tried more often; 0 gives the paper's
    uniform mutation. Both defaults are measured in experiments/core_benchmark.py (experiments/README.md).
    """

    name = "evolution"
    requires = frozenset({"sample", "mutate"})

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0,
                 population_size: int = 50, sample_size: int | None = None, mutation_bias: float = 0.5) -> None:
        super().__init__(space, problem, seed)
        if population_size < 2:
            raise ConfigError(f"evolution: population_size must be >= 2, got {population_size}")
        if sample_size is None:
            sample_size = population_size // 2
        if not 1 <= sample_size <= population_size:
            raise ConfigError(f"evolution: sample_size must be in 1..population_size, got {sample_size}")
        if not 0.0 <= mutation_bias <= 1.0:
            raise ConfigError(f"evolution: mutation_bias must be in [0, 1], got {mutation_bias}")
        if mutation_bias > 0 and "guide" not in inspect.signature(space.mutate).parameters:
            logger.info("evolution: %s.mutate takes no guide; mutation stays uniform", type(space).__name__)
            mutation_bias = 0.0
        self.population_size = population_size
        self.sample_size = sample_size
        self.mutation_bias = mutation_bias
        self.history: list[tuple[Architecture, TrialResult]] = []  # every non-cached result, oldest first
        self._ranked: list[tuple[tuple[float, float], int]] = []  # one objective: (key, -index), sorted
        # several objectives, kept as results arrive (a cache, rebuilt on load): the feasible results' Pareto fronts
        # by history index, the others as (violation, history index) sorted, and how many did not fail
        self._fronts = ParetoFronts()
        self._infeasible: list[tuple[float, int]] = []
        self._done = 0
        self.population: deque[tuple[Architecture, TrialResult]] = deque(maxlen=population_size)
        self.random_asked = 0
        self._listed = "listed" in space.capabilities
        self._seen: set[str] = set()  # ids asked or told (a listed space's mutation avoids them; rebuilt on load)

    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        out = []
        for _ in range(n):
            if len(self.population) < self.population_size and self.random_asked < self.population_size:
                self.random_asked += 1
                out.append(self.space.sample(self.rng))
            elif not self.population:
                out.append(self.space.sample(self.rng))
            else:
                parent = self._tournament()
                # a listed space (a sampled table) lands a mutation on a recorded architecture: an unseen one
                extra = {"exclude": self._seen} if self._listed else {}
                if self.mutation_bias > 0 and self.rng.random() < self.mutation_bias:
                    out.append(self.space.mutate(parent, self.rng, guide=self._elite(), **extra))
                else:
                    out.append(self.space.mutate(parent, self.rng, **extra))
            self._seen.add(out[-1].id)
        return out

    def _elite(self) -> list[Architecture]:
        """The best quarter of every completed result (one objective: by key; several: by Pareto rank)."""
        if len(self.problem.objectives) == 1:  # the same as best_quarter, kept sorted as results arrive
            return [self.history[-neg][0] for _, neg in self._ranked[:len(self._ranked) // 4]]
        # the same as best_quarter from the fronts kept in _record: by front, the youngest first, then the rest
        quota, out = self._done // 4, []
        for ids in self._fronts.ids:
            if len(out) >= quota:
                break
            out.extend(self.history[i][0] for i in reversed(ids))
        out.extend(self.history[i][0] for _, i in self._infeasible[:max(quota - len(out), 0)])
        return out[:quota]

    def _record(self, arch: Architecture, result: TrialResult, rank: bool = True) -> None:
        """Append to the history and, unless `rank` is False (a load ranks all at once), to the ranking."""
        self.history.append((arch, result))
        if result.status == "failed" or not rank:
            return
        i = len(self.history) - 1
        if len(self.problem.objectives) == 1:
            # (key, -index): equal keys sort the youngest first; history[-(-index)] is the result
            bisect.insort(self._ranked, (scalar_key(self.problem, result), -i))
            return
        self._done += 1
        if on_front(self.problem, result):
            self._fronts.add(self.problem.vector(result.metrics), i)
        else:
            bisect.insort(self._infeasible, (scalar_key(self.problem, result)[0], i))

    def _tournament(self) -> Architecture:
        return tournament(self.problem, self.population, self.sample_size, self.rng)

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        self._seen.add(arch.id)
        if not result.cached:
            self._record(arch, result)
            self.population.append((arch, result))

    def state_dict(self) -> dict[str, Any]:
        """The population is the youngest `population_size` of the history, so only the history is stored."""
        return {**super().state_dict(), "random_asked": self.random_asked,
                "history": [arch_record(a, r) for a, r in self.history]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.random_asked = int(state["random_asked"])
        records = state["history"] if "history" in state else state["population"]  # before 2026-11-30: no history
        self.history, self._ranked = [], []
        multi = len(self.problem.objectives) > 1
        for a, r in (from_record(rec) for rec in records):
            self._record(a, r, rank=not multi)
        if multi:
            self._rank_history()
        self.population = deque(self.history[-self.population_size:], maxlen=self.population_size)
        self._seen = {a.id for a, _ in self.history}

    def _rank_history(self) -> None:
        """Several objectives: the ranking of the whole history at once (one non-dominated sort)."""
        done = [(i, r) for i, (_, r) in enumerate(self.history) if r.status != "failed"]
        feas = [(i, r) for i, r in done if on_front(self.problem, r)]
        self._fronts = ParetoFronts(np.array([self.problem.vector(r.metrics) for _, r in feas], dtype=float),
                                    [i for i, _ in feas])
        self._infeasible = sorted((scalar_key(self.problem, r)[0], i) for i, r in done
                                  if not on_front(self.problem, r))
        self._done = len(done)


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


def best_quarter(problem: Problem, history: Sequence[tuple[Architecture, TrialResult]]) -> list[Architecture]:
    """The best quarter of the completed results, the guide of biased mutation (`Space.mutate(guide=...)`).

    One objective: by (constraint violation, value); several: by constraint-domination rank. Ties go to
    the youngest.
    """
    done = [(a, r) for a, r in history if r.status != "failed"]
    if len(problem.objectives) == 1:
        keys = [scalar_key(problem, r) for _, r in done]
    else:
        keys = [(float(k), 0.0) for k in pareto_ranks(problem, [r for _, r in done])]
    order = sorted(range(len(done)), key=lambda i: (keys[i], -i))
    return [done[i][0] for i in order[:len(done) // 4]]

