"""`smbo`: sequential model-based optimisation with a random-forest surrogate (DeepArchitect's SMBO, SMAC-style).

After `n_init` uniform samples, every ask fits a scikit-learn random forest on the one-hot encoding of
every result so far (`space.to_features`: one column per option of every decision plus an 'inactive' column
for slots a `Repeat` or `Conditional` can switch off, so any space works; a wide ordered decision such as
`Integer(1, 100000)` is one scaled column) and proposes the candidate with
the highest expected improvement. The target is ordinal and so works for any problem: results are ranked
(one objective: by `scalar_key`, so infeasible results come after every feasible one, ordered by their
violation, and failed ones last; several objectives: by `pareto_ranks`) and the ranks turned into normal
scores (robust to collapsed architectures, the same scale on every problem). The forest's prediction is the
mean over its trees and its uncertainty their spread (SMAC); EI is taken over the best score seen.

Candidates: `n_random` uniform samples plus `n_local` mutations (`space.mutate`, one or two steps) of the
`top` best results, so the acquisition is searched both globally and around the incumbents. Nothing
asked or told before (by `space.canonical_key`) is proposed again.

The model is refitted from the stored results, seeded by the strategy seed and the number of results,
whenever results arrived since the last fit; the state is therefore just the results, the asks and the
RNG, and a resumed search refits and continues exactly. Defaults (50 trees, `min_samples_leaf=2`,
`max_features=0.5`, 10 initial samples, 200 + 100 candidates, EI) were checked on the cora table with
seeds 100..119 against one change at a time (UCB, 20 initial samples, all features per split, leaves of
one, no mutated candidates, 100 trees): every variant landed within the noise of 20 seeds of the
defaults, the random-only pool a little worse (experiments/README.md). A fit on 100 results takes
about 0.05 s, an ask after 1,000 results about 0.1 s.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.errors import ConfigError, check_int, check_number
from nas.objectives import Problem
from nas.spaces import Architecture, Space
from nas.strategies.base import (SeenArchitectures, Strategy, TrialResult, arch_record, check_count, from_record,
                                 pareto_ranks, scalar_key)
from nas.strategies.bayesian import normal_scores


def ordinal_scores(problem: Problem, results: Sequence[TrialResult]) -> np.ndarray:
    """Normal scores of the results' ranks, lower is better (ties share their mean rank).

    One objective: ranked by (constraint violation, value), failed results last; several: by
    constraint-domination rank (`pareto_ranks`).
    """
    if len(problem.objectives) == 1:
        keys = [scalar_key(problem, r) for r in results]
        order = sorted(range(len(keys)), key=lambda i: keys[i])
        ranks = np.empty(len(keys))
        r = 0
        for j, i in enumerate(order):  # dense rank by key: equal keys share one
            if j and keys[i] != keys[order[j - 1]]:
                r = j
            ranks[i] = r
    else:
        ranks = pareto_ranks(problem, results)
    return normal_scores(ranks)


class SequentialModelBasedOptimisation(Strategy):
    """SMBO: a random-forest surrogate on the one-hot encoding (`space.to_features`), expected improvement over sampled and mutated candidates."""

    name = "smbo"
    requires = frozenset({"sample", "mutate", "encode"})

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0, n_init: int = 10, trees: int = 50,
                 min_samples_leaf: int = 2, max_features: float = 0.5, acquisition: str = "ei",
                 kappa: float = 1.0, n_random: int = 200, n_local: int = 100, top: int = 5) -> None:
        super().__init__(space, problem, seed)
        # each error names the option, its rule and the value given, as evolution's, nsga2's and mcts's do
        n_init, trees = check_int(n_init, "smbo: invalid n_init", 2), check_int(trees, "smbo: invalid trees", 2)
        min_samples_leaf = check_int(min_samples_leaf, "smbo: invalid min_samples_leaf", 1)
        if isinstance(max_features, bool) or not isinstance(max_features, numbers.Real) or not 0 < max_features <= 1:
            raise ConfigError(f"smbo: invalid max_features: expected a number in (0, 1], got {max_features!r}")
        if acquisition not in ("ei", "ucb"):
            raise ConfigError(f"smbo: invalid acquisition: expected 'ei' or 'ucb', got {acquisition!r}")
        kappa = check_number(kappa, "smbo: invalid kappa", positive=False)
        n_random = check_int(n_random, "smbo: invalid n_random", 0)
        n_local = check_int(n_local, "smbo: invalid n_local", 0)
        top = check_int(top, "smbo: invalid top", 1)
        if n_random + n_local < 1:
            raise ConfigError(f"smbo: invalid n_random + n_local: expected at least 1 candidate, got {n_random} + "
                              f"{n_local}")
        self.n_init, self.trees, self.min_samples_leaf = n_init, trees, min_samples_leaf
        self.max_features = float(max_features)  # a fraction: scikit-learn reads an int 1 as one feature
        self.acquisition, self.kappa = acquisition, kappa
        self.n_random, self.n_local, self.top = n_random, n_local, top
        self.model_seed = 0 if seed is None else int(seed)
        self.history: list[tuple[Architecture, TrialResult]] = []  # every result told (not cached), in order
        self.asked: list[dict[str, Any]] = []
        self.known = SeenArchitectures(space)  # asked or told: never proposed again
        self._features: dict[str, np.ndarray] = {}
        self._forest: Any = None
        self._fitted_on = -1
        self._y = np.zeros(0)

    # ------------------------------------------------------------------ helpers
    def _encode(self, archs: Sequence[Architecture]) -> np.ndarray:
        rows = []
        for a in archs:
            v = self._features.get(a.id)
            if v is None:
                v = self._features[a.id] = self.space.to_features(a).astype(np.float32)
            rows.append(v)
        return np.stack(rows)

    # ------------------------------------------------------------------ ask/tell
    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        if len(self.history) < self.n_init:
            picks = [self._fresh() for _ in range(n)]
        else:
            picks = self._optimise(n)
        for arch in picks:
            self.asked.append(arch.to_dict())
            self.known.add(arch)
        return picks

    def _fresh(self) -> Architecture:
        """An unseen uniform sample, marked at once so a batch of asks holds no repeat."""
        arch = self.known.fresh_sample(self.rng)
        self.known.add(arch)
        return arch

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        if result.cached:
            return
        self.history.append((arch, result))
        self.known.add(arch)

    # ------------------------------------------------------------------ surrogate
    def fit(self) -> None:
        """Fit the forest on every result so far (a no-op when nothing arrived since the last fit)."""
        n = len(self.history)
        if self._fitted_on == n:
            return
        from sklearn.ensemble import RandomForestRegressor

        self._y = ordinal_scores(self.problem, [r for _, r in self.history])
        seed = (self.model_seed * 1_000_003 + n) % 2 ** 32
        self._forest = RandomForestRegressor(n_estimators=self.trees, min_samples_leaf=self.min_samples_leaf,
                                             max_features=self.max_features, random_state=seed, n_jobs=1)
        self._forest.fit(self._encode([a for a, _ in self.history]), self._y)
        self._fitted_on = n

    def predict(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """The forest's mean and spread over its trees per architecture (normal-score units, lower is better)."""
        self.fit()
        x = self._encode(archs)
        per_tree = np.stack([t.predict(x, check_input=False) for t in self._forest.estimators_])
        return per_tree.mean(axis=0), per_tree.std(axis=0)

    def acquisition_values(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Expected improvement over the best score seen (or the negated lower confidence bound); higher is better."""
        from scipy.stats import norm

        mean, std = self.predict(archs)
        if self.acquisition == "ucb":
            return -(mean - self.kappa * std)
        sd = std + 1e-9
        z = (self._y.min() - mean) / sd
        return sd * (z * norm.cdf(z) + norm.pdf(z))

    def _best(self) -> list[Architecture]:
        order = np.argsort(self._y, kind="stable")
        return [self.history[int(i)][0] for i in order[: self.top]]

    def _optimise(self, n: int) -> list[Architecture]:
        self.fit()
        pool: dict[str, Architecture] = {}
        for _ in range(self.n_random):
            a = self.space.sample(self.rng)
            pool.setdefault(a.id, a)
        parents = self._best()
        for i in range(self.n_local):
            a = self.space.mutate(parents[i % len(parents)], self.rng)
            if self.rng.random() < 0.5:
                a = self.space.mutate(a, self.rng)
            pool.setdefault(a.id, a)
        cands = [a for a in pool.values() if a.id not in self.known.ids]
        out: list[Architecture] = []
        if cands:
            scores = self.acquisition_values(cands)
            for j in np.argsort(-scores, kind="stable"):
                a = cands[int(j)]
                if a not in self.known:
                    out.append(a)
                    self.known.add(a)
                    if len(out) == n:
                        break
        while len(out) < n:
            out.append(self._fresh())
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": [arch_record(a, r) for a, r in self.history],
                "asked": list(self.asked), "model_seed": self.model_seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = [from_record(r) for r in state["history"]]
        self.asked = [dict(a) for a in state["asked"]]
        self.model_seed = int(state["model_seed"])
        self.known.clear()
        for a in [Architecture(a) for a in self.asked] + [a for a, _ in self.history]:
            self.known.add(a)
        self._fitted_on = -1  # refitted from the history at the next ask
