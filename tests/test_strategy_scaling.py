"""Multi-objective evolution, mcts and successive halving rank incrementally (nas.pareto.ParetoFronts): the same
proposals as the full re-ranking they replace (checked against it, and across a state round trip), at a cost per
ask and tell that does not grow with the number of results (counted, not timed)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pytest

import nas
from nas.objectives import Problem
from nas.pareto import ParetoFronts, non_dominated_sort
from nas.spaces import Architecture, Integer, Space
from nas.strategies import TrialResult, make_strategy
from nas.strategies.base import pareto_ranks, scalar_key
from nas.strategies.evolution import RegularizedEvolution, best_quarter
from nas.strategies.mcts import MonteCarloTreeSearch
from nas.strategies.multifidelity import FidelitySpace, Hyperband, SuccessiveHalving

SPACE = Space(**{f"x{i}": Integer(0, 9) for i in range(6)})
FSPACE = FidelitySpace(SPACE, [1, 3, 9], "epochs")
TWO = Problem.make({"acc": "max", "lat": "min"})
CONSTRAINED = Problem.make({"acc": "max", "lat": "min"}, ["lat <= 3"])


def evaluate(arch: Architecture) -> TrialResult:
    """Coarse values (ties, duplicates on the fronts), some failures, NaNs and violations of `lat <= 3`."""
    v = [arch[f"x{i}"] for i in range(6)]
    if sum(v) % 17 == 0:
        return TrialResult({}, "failed")
    acc = float("nan") if sum(v) % 13 == 0 else float(sum(v[:3]) % 7 + arch.get("epochs", 1))
    return TrialResult({"acc": acc, "lat": float((v[3] * v[4] + v[5]) % 6)})


# ---------------------------------------------------------------- the full re-ranking the caches replace
class FullEvolution(RegularizedEvolution):
    def _elite(self) -> list[Architecture]:
        return best_quarter(self.problem, self.history)


class FullMCTS(MonteCarloTreeSearch):
    def _loss(self, result: TrialResult, new: bool) -> float | None:
        violation, value = scalar_key(self.problem, result)
        if violation != 0 or not math.isfinite(value):
            return None
        if len(self.problem.objectives) == 1:
            return float(value)
        if not all(math.isfinite(v) for v in self.problem.vector(result.metrics)):
            return None
        ranks = pareto_ranks(self.problem, [TrialResult(m) for m in self.feasible] + [result])
        if new:
            self.feasible.append(dict(result.metrics))
        return float(ranks[-1])


class FullRungs:
    def _promotable(self, b: int, r: int) -> Architecture | None:
        rung = [m for m in self.rungs[b][r] if m[1].status == "ok"]
        done = set(self.promoted[b][r])
        for i in self._order(rung)[:len(rung) // self.eta]:
            if rung[i][0].id not in done:
                return rung[i][0]
        return None


class FullSuccessiveHalving(FullRungs, SuccessiveHalving):
    pass


class FullHyperband(FullRungs, Hyperband):
    pass


def drive(strategy, steps: int, start: int = 0, cache: dict | None = None) -> list[str]:
    """`steps` rounds of ask (1-3 at a time) and tell, a repeat told as cached; the ids asked."""
    cache = {} if cache is None else cache
    asked = []
    for step in range(start, start + steps):
        archs = strategy.ask(1 + step % 3)
        for arch in archs:
            asked.append(arch.id)
            known = cache.get(arch.id)
            result = evaluate(arch) if known is None else TrialResult(known.metrics, known.status, cached=True)
            cache.setdefault(arch.id, result)
            strategy.tell(arch, result)
    return asked


CASES = [
    (FullEvolution, RegularizedEvolution, SPACE, CONSTRAINED, {"population_size": 20}),
    (FullEvolution, RegularizedEvolution, SPACE, TWO, {"population_size": 20, "mutation_bias": 1.0}),
    (FullMCTS, MonteCarloTreeSearch, SPACE, TWO, {}),
    (FullMCTS, MonteCarloTreeSearch, SPACE, CONSTRAINED, {}),
    (FullSuccessiveHalving, SuccessiveHalving, FSPACE, TWO, {}),
    (FullSuccessiveHalving, SuccessiveHalving, FSPACE, CONSTRAINED, {"eta": 2}),
    (FullHyperband, Hyperband, FSPACE, CONSTRAINED, {}),
]


@pytest.mark.parametrize("full, fast, space, problem, options", CASES,
                         ids=[f"{c[1].name}-{len(c[3].constraints)}c-{i}" for i, c in enumerate(CASES)])
def test_incremental_ranking_proposes_what_the_full_re_ranking_proposed(full, fast, space, problem, options):
    reference = drive(full(space, problem, seed=3, **options), 300)
    assert len(set(reference)) > 200
    assert drive(fast(space, problem, seed=3, **options), 300) == reference
    # a state round trip mid-run (the caches rebuilt on load) continues the same
    first, cache = fast(space, problem, seed=3, **options), {}
    head = drive(first, 150, cache=cache)
    resumed = fast(space, problem, seed=99, **options)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert head + drive(resumed, 150, start=150, cache=cache) == reference


def test_pareto_fronts_kept_point_by_point_equal_a_full_sort():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n, d = int(rng.integers(1, 60)), int(rng.integers(2, 5))
        pts = rng.integers(0, 4, size=(n, d)).astype(float)  # ties and duplicates
        pts[rng.random((n, d)) < 0.05] = np.inf
        fronts = ParetoFronts()
        for i in range(n):
            rank = fronts.add(pts[i], i)
            full = [f.tolist() for f in non_dominated_sort(pts[:i + 1])]
            assert fronts.ids == full
            assert i in full[rank]
        assert ParetoFronts(pts).ids == fronts.ids


def _counted_vectors(monkeypatch) -> list[int]:
    calls = [0]
    vector = Problem.vector

    def counting(self, metrics):
        calls[0] += 1
        return vector(self, metrics)

    monkeypatch.setattr(Problem, "vector", counting)
    return calls


def _vectors_per_step(strategy, calls: list[int], space: Space, marks: Sequence[int]) -> dict[int, float]:
    """Mean `Problem.vector` calls per ask + tell over 50 steps after `marks` results."""
    out, told = {}, 0
    for mark in marks:
        while told < mark:
            arch = strategy.ask(1)[0]
            strategy.tell(arch, fresh(arch))
            told += 1
        before = calls[0]
        for _ in range(50):
            arch = strategy.ask(1)[0]
            strategy.tell(arch, fresh(arch))
            told += 1
        out[mark] = (calls[0] - before) / 50
    return out


def fresh(arch: Architecture) -> TrialResult:
    v = [arch[f"x{i}"] for i in range(8)]
    return TrialResult({"acc": float(sum(x ** 0.5 for x in v) + arch.get("epochs", 1)), "lat": float(sum(v))})


WIDE = Space(**{f"x{i}": Integer(0, 63) for i in range(8)})


@pytest.mark.parametrize("name, space", [("evolution", WIDE), ("mcts", WIDE),
                                         ("successive-halving", FidelitySpace(WIDE, [1, 3, 9], "epochs"))])
def test_multi_objective_ranking_work_per_ask_does_not_grow_with_the_results(monkeypatch, name, space):
    """Re-ranking every result computed every result's objective vector on each ask (evolution, successive
    halving) or tell (mcts): a quadratic search. Now each result's vector is computed once, when it is told (plus
    evolution's tournament, which ranks its 25 members)."""
    strategy = make_strategy(name, space, nas.Problem.make({"acc": "max", "lat": "min"}), seed=0)
    calls = _counted_vectors(monkeypatch)
    per_step = _vectors_per_step(strategy, calls, space, (200, 2000))
    assert per_step[2000] <= per_step[200] + 1 and per_step[2000] < 40, per_step
