"""Predictor-guided evolution (OFA / DyNAS-T style): breed many candidates, evaluate only those a surrogate likes.

Candidates are bred from an aging population (tournament parents, uniform crossover with probability
`crossover_prob`, then one mutation) into a pool of up to `candidates` architectures never asked or
told (by the space's canonical key, so isomorphic twins count once); each ask tops the pool up with
at least `candidates // 5` fresh children, scores them with a predictor fitted on every result so far,
and hands out the best by an optimistic acquisition: predicted value (minimisation form) minus
`kappa` x predicted std. Unchosen candidates stay in the pool for later asks. With several objectives there is one predictor per objective and
candidates are taken front by front (non-dominated sorting of the optimistic vectors), at random
within a front. The first `warmup` asks are uniform samples; the predictors refit whenever
`refit_every` new results have arrived. Defaults (population 20, greedy `kappa=0`) come from a pilot on
the NAS-Bench-Graph cora table (seeds 0-5, budget 150), where they beat population 50 and `kappa=0.5`.

State is plain data: the population, every result (architecture dict + metrics), the keys already
asked, the candidate pool, the RNG and how many results the last fit used; on load the predictors are refitted on exactly
those results, so a resumed search continues as the uninterrupted one would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.objectives import Problem
from nas.pareto import non_dominated_sort
from nas.spaces import Architecture, Space
from nas.strategies.base import Strategy, TrialResult, arch_record, from_record
from nas.strategies.evolution import tournament


class PredictorGuidedEvolution(Strategy):
    """Aging evolution whose children are screened by a surrogate predictor before evaluation."""

    name = "guided-evolution"
    requires = frozenset({"sample", "mutate", "crossover"})

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0, population_size: int = 20,
                 sample_size: int = 10, candidates: int = 200, warmup: int = 20, refit_every: int = 10,
                 kappa: float = 0.0, crossover_prob: float = 0.5, predictor: str = "wl-gp",
                 predictor_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(space, problem, seed)
        checks = {"population_size": population_size >= 2, "sample_size": 1 <= sample_size <= population_size,
                  "candidates": candidates >= 1, "warmup": warmup >= 2, "refit_every": refit_every >= 1,
                  "kappa": kappa >= 0, "crossover_prob": 0.0 <= crossover_prob <= 1.0}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"guided-evolution: invalid {bad[0]} "
                              f"(population_size >= 2, 1 <= sample_size <= population_size, candidates >= 1, "
                              f"warmup >= 2, refit_every >= 1, kappa >= 0, crossover_prob in [0, 1])")
        self.population_size, self.sample_size, self.candidates = population_size, sample_size, candidates
        self.warmup, self.refit_every, self.kappa, self.crossover_prob = warmup, refit_every, kappa, crossover_prob
        self.predictor_name, self.predictor_options = predictor, dict(predictor_options or {})
        self.predictor_seed = 0 if seed is None else int(seed)
        self._predictors = self._make_predictors()  # ConfigError now, not mid-search, if the space lacks a need
        self.population: deque[tuple[Architecture, TrialResult]] = deque(maxlen=population_size)
        self.history: list[tuple[Architecture, TrialResult]] = []
        self.seen: set[str] = set()
        self.random_asked = 0
        self.fitted_on = 0  # results the predictors were last fitted on (history[:fitted_on], usable ones)
        self._fitted = False
        self.pool: list[Architecture] = []  # bred, scored, not yet asked (kept across asks)
        self._keys: dict[str, str] = {}  # arch id -> canonical key (a cache, not state)
        self._scores: dict[str, tuple[float, ...]] = {}  # arch id -> acquisition under the current fit

    def _make_predictors(self) -> list[Any]:
        """One predictor per objective."""
        from nas.predictors import make_predictor

        return [make_predictor(self.predictor_name, self.space, self.predictor_seed, **self.predictor_options)
                for _ in self.problem.objectives]

    # ------------------------------------------------------------------ ask/tell
    def ask(self, n: int = 1) -> list[Architecture]:
        out: list[Architecture] = []
        while len(out) < n and self.random_asked < self.warmup:
            self.random_asked += 1
            out.append(self._remember(self.space.sample(self.rng)))
        if len(out) < n:
            if not self._ready():
                out += [self._remember(self.space.sample(self.rng)) for _ in range(n - len(out))]
            else:
                out += self._screened(n - len(out))
        return out

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        self.seen.add(self._key(arch))
        if result.cached:
            return
        self.population.append((arch, result))
        self.history.append((arch, result))

    # ------------------------------------------------------------------ internals
    def _key(self, arch: Architecture) -> str:
        key = self._keys.get(arch.id)
        if key is None:
            key = self._keys[arch.id] = self.space.canonical_key(arch)
        return key

    def _remember(self, arch: Architecture) -> Architecture:
        self.seen.add(self._key(arch))
        return arch

    def _usable(self, upto: int) -> list[tuple[Architecture, TrialResult]]:
        names = self.problem.names
        return [(a, r) for a, r in self.history[:upto]
                if r.status != "failed" and all(k in r.metrics and np.isfinite(r.metrics[k]) for k in names)]

    def _ready(self) -> bool:
        """Refit when due; True when the predictors can be used (enough usable results and a population)."""
        if not self._fitted and self.fitted_on > 0:
            self._fit(self.fitted_on)  # restored from a snapshot: the predictors the original run had
        if not self._fitted or len(self.history) - self.fitted_on >= self.refit_every:
            self._fit(len(self.history))
        return self._fitted and bool(self.population)

    def _fit(self, upto: int) -> None:
        data = self._usable(upto)
        if len(data) < 2:
            return
        archs = [a for a, _ in data]
        targets = np.array([self.problem.vector(r.metrics) for _, r in data], dtype=float)
        for k, predictor in enumerate(self._predictors):
            if np.ptp(targets[:, k]) == 0:
                targets[:, k] += np.linspace(0, 1e-12, len(targets))  # constant targets: keep fits well-posed
            predictor.fit(archs, targets[:, k])
        self.fitted_on, self._fitted = upto, True
        self._scores = {}

    def _tournament(self) -> Architecture:
        return tournament(self.problem, self.population, self.sample_size, self.rng)

    def _child(self) -> Architecture:
        parent = self._tournament()
        if self.rng.random() < self.crossover_prob:
            parent = self.space.crossover(parent, self._tournament(), self.rng)
        return self.space.mutate(parent, self.rng)

    def _screened(self, n: int) -> list[Architecture]:
        """Top up the candidate pool with fresh children, score what is new, hand out the best `n`."""
        self.pool = [a for a in self.pool if self._key(a) not in self.seen]
        keys = {self._key(a) for a in self.pool}
        fresh = max(self.candidates - len(self.pool), self.candidates // 5)
        for _ in range(3 * fresh):  # bounded: a converged population breeds few new children
            if fresh <= 0:
                break
            child = self._child()
            key = self._key(child)
            if key not in self.seen and key not in keys:
                keys.add(key)
                self.pool.append(child)
                fresh -= 1
        for _ in range(4 * n + 20):  # the neighbourhood is exhausted: fall back to fresh samples (bounded)
            if len(self.pool) >= n:
                break
            child = self.space.sample(self.rng)
            if self._key(child) not in keys:
                keys.add(self._key(child))
                self.pool.append(child)
        new = [a for a in self.pool if a.id not in self._scores]
        if new:
            preds = [p.predict(new) for p in self._predictors]
            for i, a in enumerate(new):
                self._scores[a.id] = tuple(float(m[i] - self.kappa * sd[i]) for m, sd in preds)
        order = self._order(np.array([self._scores[a.id] for a in self.pool], dtype=float))
        picked = set(order[:n])
        chosen = [self.pool[i] for i in order[:n]]
        self.pool = [a for i, a in enumerate(self.pool) if i not in picked][-self.candidates:]
        return [self._remember(a) for a in chosen]

    def _order(self, scores: np.ndarray) -> list[int]:
        """Candidate indices best first: by score (one objective) or front by front, random within fronts."""
        if scores.shape[1] == 1:
            return [int(i) for i in np.argsort(scores[:, 0], kind="stable")]
        out: list[int] = []
        for front in non_dominated_sort(scores):
            out += [int(i) for i in self.rng.permutation(front)]
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "random_asked": self.random_asked, "fitted_on": self.fitted_on,
                "predictor_seed": self.predictor_seed,
                "seen": sorted(self.seen), "pool": [a.to_dict() for a in self.pool],
                "population": [arch_record(a, r) for a, r in self.population],
                "history": [arch_record(a, r) for a, r in self.history]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.random_asked = int(state["random_asked"])
        self.seen = set(state["seen"])
        self.population = deque((from_record(r) for r in state["population"]), maxlen=self.population_size)
        self.history = [from_record(r) for r in state["history"]]
        self.pool = [Architecture(a) for a in state["pool"]]
        if int(state["predictor_seed"]) != self.predictor_seed:
            self.predictor_seed = int(state["predictor_seed"])
            self._predictors = self._make_predictors()
        self.fitted_on, self._fitted, self._scores = int(state["fitted_on"]), False, {}
