"""Multi-fidelity search: asynchronous successive halving and Hyperband brackets around any strategy.

The fidelity (epochs for a training evaluator, a fidelity column for a tabular one) is a field of the
architecture: `FidelitySpace(base, levels)` adds it, so the journal, deduplication and resume see one
trial per (architecture, fidelity) and every trial records the budget it was evaluated at.
`space.evaluator(fn)` calls `fn(base_arch, budget=level)` for each such trial. `result.best()` and
`pareto_front()` of such a search rank the trials at the top level only (`SearchResult.top_fidelity`).

`successive-halving` (ASHA, Li et al. 2020) starts new architectures, proposed by an inner strategy on
the base space, at the lowest level; a result among the best ⌊n / eta⌋ of the n results at its rung that has
not been promoted yet is promoted one level up (so a rung can send up more than ⌊n / eta⌋ in all, as in ASHA). Only completed results count towards k and are promoted: a failed evaluation or a proposal the
cheap stage rejected (`infeasible`) stays where it is. `hyperband` runs several such brackets starting at
successively higher levels, picking a bracket for each new architecture with Hyperband's weights. A bracket
promoting an architecture to a level another bracket already evaluated it at files that result (at once, or when
the twin in flight ends) instead of evaluating it again. "Best" is constraint-domination ranking: non-dominated sorting plus crowding distance with
several objectives, so promotion is multi-objective.
The inner strategy is told the result at the level it was started at, and every result it did not propose at the
lowest level (a warm start's, an enqueued architecture's). When the inner strategy has proposed only
architectures already started at their level `repeat_patience` (100) times in a row (a converged inner strategy
on a small space), each further such proposal is replaced by an unknown base architecture near it, started at
its bracket's level like any new one: the search's own fallback (`Deduplicate`) cannot do this without bypassing
the rungs, and would end it "exhausted" with most of the space unseen. Once none is left (every base architecture
started at every bracket's level) and no result asked for is still out, each rung promotes its best
`max(1, n // eta)` as synchronous halving does, so a space smaller than `eta ** (levels - 1)` still reaches the top.
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from nas.errors import ConfigError
from nas.evaluators import Evaluator
from nas.objectives import Problem
from nas.pareto import ParetoFronts, crowding_distance
from nas.spaces import Architecture, Choice, Space
from nas.strategies.base import (SeenArchitectures, Strategy, TrialResult, Unseen, arch_record, check_count,
                                 from_record, on_front, pareto_ranks, scalar_key, unknown_near)


class FidelitySpace(Space):
    """`base` plus one ordered fidelity field (default `budget`) holding the evaluation budget."""

    def __init__(self, base: Space, levels: Sequence[float], field: str = "budget") -> None:
        lv = check_levels(levels)
        if field in base.fields:
            raise ConfigError(f"FidelitySpace: field {field!r} already exists in the base space")
        super().__init__({**base.fields, field: Choice(lv)})
        self.base, self.field, self.levels = base, field, lv

    def strip(self, arch: Mapping[str, Any]) -> Architecture:
        """The architecture without its fidelity."""
        return self.base.validate({k: v for k, v in dict(arch).items() if k != self.field})

    def at(self, base_arch: Mapping[str, Any], level: float) -> Architecture:
        return self.validate({**dict(base_arch), self.field: level})

    def canonical_key(self, arch: Mapping[str, Any]) -> str:
        return f"{self.base.canonical_key(self.strip(arch))}@{arch[self.field]}"

    def evaluator(self, evaluate: Callable[..., Mapping[str, float]]) -> Evaluator:
        """An evaluator of this space's architectures: `evaluate(base_arch, budget=arch[field])`, with the fidelity
        added to the metrics. A cheap one (`nas.cheap(fn)`) stays cheap, so the search screens candidates with it
        before training; it may take no `budget=` and does not record the fidelity (the training evaluator does:
        two evaluators returning it would clash)."""
        ev = evaluate if isinstance(evaluate, Evaluator) else Evaluator(evaluate)
        if not ev.cheap and not ev.takes_budget:
            raise ConfigError(f"FidelitySpace.evaluator: {getattr(ev.fn, '__name__', ev.fn)!r} takes no budget= "
                              "argument (add one; a cost that does not depend on the fidelity can be nas.cheap)")

        def run(arch: Architecture) -> Mapping[str, float]:
            level = arch[self.field]
            metrics = ev(self.strip(arch), budget=level)
            return metrics if ev.cheap else {**dict(metrics), self.field: float(level)}

        return Evaluator(run, cheap=ev.cheap)


def check_levels(levels: Any, where: str = "FidelitySpace: levels") -> list[Any]:
    """`levels` checked (at least two distinct positive finite numbers) and sorted; else a ConfigError naming
    `where` (the gym's environments say theirs)."""
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Iterable):
        raise ConfigError(f"{where} must be a sequence of numbers (e.g. epochs), got {levels!r}")
    values = list(levels)
    bad = [x for x in values
           if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x) or x <= 0]
    if bad:
        raise ConfigError(f"{where} must be positive finite numbers, got {bad[0]!r} in {values}")
    if len(values) < 2 or len(set(values)) != len(values):
        raise ConfigError(f"{where} must be at least two distinct positive numbers, got {values}")
    return sorted(values)


class SuccessiveHalving(Strategy):
    """Asynchronous successive halving with `brackets` Hyperband brackets; new architectures from `inner`."""

    name = "successive-halving"
    explore_on_repeats = False  # an unasked (architecture, fidelity) would bypass the rungs
    default_brackets = 1
    # inner proposals in a row already started at their level before one is replaced by an unknown base architecture
    # (as many as `Deduplicate` asks before giving up, so a search that never ran out of proposals is unchanged)
    repeat_patience: ClassVar[int] = 100

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0, inner: str = "random",
                 inner_options: Mapping[str, Any] | None = None, eta: int = 3, brackets: int | None = None) -> None:
        if not isinstance(space, FidelitySpace):
            raise ConfigError(f"strategy {self.name!r} needs a FidelitySpace (nas.strategies.multifidelity."
                              f"FidelitySpace(space, levels)); got {type(space).__name__}")
        super().__init__(space, problem, seed)
        from nas.strategies import make_strategy

        brackets = self.default_brackets if brackets is None else brackets
        if eta < 2:
            raise ConfigError(f"{self.name}: eta must be >= 2, got {eta}")
        if not 1 <= brackets <= len(space.levels):
            raise ConfigError(f"{self.name}: brackets must be in 1..{len(space.levels)} (the number of levels), got {brackets}")
        if inner in ("successive-halving", "hyperband"):
            raise ConfigError(f"{self.name}: inner strategy cannot itself be {inner!r}")
        self.fspace: FidelitySpace = space
        self.eta, self.brackets = eta, brackets
        self.inner_name, self.inner_options = inner, dict(inner_options or {})
        self.inner = make_strategy(inner, space.base, problem, seed, **self.inner_options)
        k = len(space.levels)
        w = np.array([eta ** (k - 1 - s) / (k - s) for s in range(brackets)], dtype=float)
        self.bracket_p = w / w.sum()
        # rungs[b][r]: results at level r of bracket b; promoted[b][r]: base ids promoted from there
        self.rungs: list[list[list[tuple[Architecture, TrialResult]]]] = [[[] for _ in range(k)] for _ in range(brackets)]
        self.promoted: list[list[list[str]]] = [[[] for _ in range(k)] for _ in range(brackets)]
        self.pending: dict[str, list[list[Any]]] = {}  # asked arch id -> [[bracket, from_inner], ...]
        self.known = SeenArchitectures(space)  # (architecture, level) pairs asked or told
        self.known_archs: list[Architecture] = []  # the same, in order (state)
        self.repeats = 0  # inner proposals in a row that were known at their level
        self._unseen = [Unseen(space.base) for _ in range(brackets)]  # per bracket's level: listings (a cache)
        self._keys_at: dict[tuple[str, float], str] = {}  # (base arch id, level) -> canonical key (a cache)
        self._results: dict[str, TrialResult] = {}  # canonical key -> the result filed (a cache of the rungs)
        self._leaders: dict[tuple[int, int, bool], tuple[int, list[Architecture]]] = {}  # (b, r, final) -> (size, best)
        self._ranked: dict[tuple[int, int], RungRanking] = {}  # (b, r) -> its completed results ranked (a cache)

    # ------------------------------------------------------------------ ask/tell
    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        out = []
        for _ in range(n):
            arch, bracket, from_inner = self._next()
            if arch is None:
                break
            self.pending.setdefault(arch.id, []).append([bracket, from_inner])
            self._know(arch)
            out.append(arch)
        return out

    def _know(self, arch: Architecture) -> None:
        if arch not in self.known:
            self.known.add(arch)
            self.known_archs.append(arch)

    def _next(self) -> tuple[Architecture | None, int, bool]:
        levels = self.fspace.levels
        promoted = self._promote(self._promotion)
        if promoted is not None:
            return promoted
        b = int(self.rng.choice(self.brackets, p=self.bracket_p)) if self.brackets > 1 else 0
        asked = self.inner.ask(1)
        if not asked:
            return self._promote(self._final_promotion) or (None, b, True)
        arch = self.fspace.at(asked[0], levels[b])
        if arch not in self.known:
            self.repeats = 0
            return arch, b, True
        self.repeats += 1
        if self.repeats >= self.repeat_patience:
            fresh = self._unknown_start(asked[0], b)
            if fresh is not None:
                return fresh[0], fresh[1], True
            # every base architecture was started at every bracket's level: nothing new will come
            promoted = self._promote(self._final_promotion)
            if promoted is not None:
                return promoted
        return arch, b, True  # answered from the search's cache (and told to the inner strategy as cached)

    def _promote(self, find: Callable[[], tuple[Architecture, int, int] | None]
                 ) -> tuple[Architecture, int, bool] | None:
        """The next promotion `find` makes, at its level, as `_next` answers; None when there is none. One evaluated
        there already (by another bracket) is filed at once, not asked of the search, whose cache answer would use
        up one of its rounds (enough of them and it gives up before `repeat_patience`)."""
        levels = self.fspace.levels
        while (promotion := find()) is not None:
            cand, b, r = promotion
            known = self._results.get(self._key_at(cand, levels[r]))
            if known is None:
                return self.fspace.at(cand, levels[r]), b, False
            self._file(b, r, cand, TrialResult(known.metrics, known.status, cached=True))
        return None

    def _unknown_start(self, base: Architecture, bracket: int) -> tuple[Architecture, int] | None:
        """A base architecture near `base` not yet started at the level of `bracket` (else of another bracket), drawn
        from this strategy's generator (`unknown_near`), at that level; None when every one is known there."""
        for b in [bracket] + [c for c in range(self.brackets) if c != bracket]:
            level = self.fspace.levels[b]

            def unknown(a: Architecture, level: float = level) -> bool:
                return self._key_at(a, level) not in self.known.keys

            unseen = self._unseen[b]
            if unseen.listed and unseen.draw(np.random.default_rng(0), unknown) is None:
                continue  # every one listed is known at this level (checked without drawing from self.rng)
            found = unknown_near(self.fspace.base, base, self.rng, unknown, unseen=unseen)
            if found is not None:
                return self.fspace.at(found, level), b
        return None

    def _promotion(self) -> tuple[Architecture, int, int] | None:
        """The next promotion, marked as made: (base architecture, bracket, rung it moves to), highest rung first."""
        for b in range(self.brackets):
            for r in range(len(self.fspace.levels) - 2, b - 1, -1):  # highest rung first: finish good ones early
                cand = self._promotable(b, r)
                if cand is not None:
                    self.promoted[b][r].append(cand.id)
                    return cand, b, r + 1
        return None

    def _final_promotion(self) -> tuple[Architecture, int, int] | None:
        """Once no new architecture can start (the inner strategy is exhausted) and nothing asked is still out: the
        next promotion of synchronous successive halving, `max(1, n // eta)` of a rung's `n` completed results, lowest
        rung first (each rung is then complete), marked as made. So a space smaller than `eta ** (levels - 1)`
        still ends with results at the top level, instead of rungs holding fewer than `eta` results each."""
        if self.pending:
            return None  # a result still to come may change a rung's best: asked again once it is told
        for b in range(self.brackets):
            for r in range(b, len(self.fspace.levels) - 1):
                cand = self._promotable(b, r, final=True)
                if cand is not None:
                    self.promoted[b][r].append(cand.id)
                    return cand, b, r + 1
        return None

    def _file(self, b: int, r: int, base: Architecture, result: TrialResult) -> None:
        """Put `base`'s result at level `r` into bracket `b`'s rung."""
        self.rungs[b][r].append((base, result))
        self._results.setdefault(self._key_at(base, self.fspace.levels[r]), result)

    def _key_at(self, base: Architecture, level: float) -> str:
        """The canonical key of `base` at `level` (memoised: listings are scanned once per draw)."""
        k = self._keys_at.get((base.id, level))
        if k is None:
            k = self._keys_at[(base.id, level)] = self.known.key(self.fspace.at(base, level))
        return k

    def _promotable(self, b: int, r: int, final: bool = False) -> Architecture | None:
        """The next architecture to promote from rung `r` of bracket `b`: only completed results count and move up,
        the best `n // eta` of `n` (`final`: at least one, as when the rung is complete in synchronous halving)."""
        size = len(self.rungs[b][r])
        leaders = self._leaders.get((b, r, final))
        if leaders is None or leaders[0] != size:  # the rung grew (rungs only grow): rank what is new
            ranked = self._ranked.get((b, r))
            if ranked is None:
                ranked = self._ranked[(b, r)] = RungRanking(self.problem)
            ranked.extend(self.rungs[b][r][ranked.seen:])
            n = len(ranked.archs)
            quota = max(1, n // self.eta) if final and n else n // self.eta
            leaders = self._leaders[(b, r, final)] = (size, ranked.best(quota))
        done = set(self.promoted[b][r])
        for arch in leaders[1]:
            if arch.id not in done:
                return arch
        return None

    def _order(self, rung: Sequence[tuple[Architecture, TrialResult]]) -> list[int]:
        """Best first: constraint-domination rank, then crowding distance (largest first) within a front (the order
        `RungRanking` keeps as a rung grows)."""
        results = [r for _, r in rung]
        ranks = pareto_ranks(self.problem, results)
        crowd = np.zeros(len(rung))
        for k in np.unique(ranks):
            idx = np.flatnonzero(ranks == k)
            if all(results[i].status == "ok" and self.problem.feasible(results[i].metrics) for i in idx):
                pts = np.array([self.problem.vector(results[i].metrics) for i in idx], dtype=float)
                crowd[idx] = crowding_distance(pts)
        return sorted(range(len(rung)), key=lambda i: (ranks[i], -crowd[i], i))

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        entries = self.pending.get(arch.id)
        asked = bool(entries)
        if entries:
            bracket, from_inner = entries.pop(0)
            if not entries:
                del self.pending[arch.id]
        else:  # not asked by us (replay, warm start, enqueued): its level's rung of the first bracket it fits
            bracket, from_inner = 0, False
        self._know(arch)
        level = arch[self.fspace.field]
        r = self.fspace.levels.index(level)
        base = self.fspace.strip(arch)
        if from_inner or (not asked and r == 0 and not result.cached):
            self.inner.tell(base, result)  # unasked at the lowest level: learnt from like the inner's own starts
        if result.cached and (from_inner or not asked):
            return  # a repeat: filed where it was evaluated
        self._file(min(bracket, r), r, base, result)  # a promotion answered from the cache is filed too

    def top_level(self) -> list[tuple[Architecture, TrialResult]]:
        """Results at the highest fidelity (all brackets)."""
        return [m for b in self.rungs for m in b[-1]]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "inner": self.inner.state_dict(),
                "rungs": [[[arch_record(a, r) for a, r in rung] for rung in b] for b in self.rungs],
                "promoted": [[list(p) for p in b] for b in self.promoted],
                "pending": {k: [list(e) for e in v] for k, v in self.pending.items()},
                "known": [a.to_dict() for a in self.known_archs], "repeats": self.repeats}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.inner.load_state_dict(state["inner"])
        self.rungs = [[[from_record(m) for m in rung] for rung in b] for b in state["rungs"]]
        self.promoted = [[list(p) for p in b] for b in state["promoted"]]
        self.pending = {k: [[int(e[0]), bool(e[1])] for e in v] for k, v in state["pending"].items()}
        self.known, self.known_archs = SeenArchitectures(self.fspace), []
        levels = self.fspace.levels
        known = ([Architecture(a) for a in state["known"]] if "known" in state else  # before: what the rungs hold
                 [self.fspace.at(a, levels[r]) for b in self.rungs for r, rung in enumerate(b) for a, _ in rung])
        for a in known:
            self._know(a)
        self.repeats = int(state.get("repeats", 0))
        self._unseen = [Unseen(self.fspace.base) for _ in range(self.brackets)]
        self._leaders, self._ranked = {}, {}
        self._results = {}
        for r, level in enumerate(levels):
            for b in self.rungs:
                for a, res in b[r]:
                    self._results.setdefault(self._key_at(a, level), res)


class RungRanking:
    """A rung's completed results in `SuccessiveHalving._order`'s order, kept as the rung grows: the Pareto fronts
    (`ParetoFronts`), each front's crowding order redone only when the front changes, then the results off the fronts
    by (violation, age). Ranking the whole rung on every ask made a search quadratic."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.seen = 0  # rung entries looked at
        self.archs: list[Architecture] = []  # the completed ones, oldest first (their index is their key)
        self.fronts = ParetoFronts()
        self.order: list[list[int] | None] = []  # per front: its keys best first; None: to redo
        self.rest: list[tuple[float, int]] = []  # off the fronts: (violation, key), sorted

    def extend(self, entries: Sequence[tuple[Architecture, TrialResult]]) -> None:
        for arch, result in entries:
            if result.status == "ok":  # not failed, not rejected by the cheap stage
                if on_front(self.problem, result):
                    self.fronts.add(self.problem.vector(result.metrics), len(self.archs))
                    self.order[len(self.order):] = [None] * (len(self.fronts.ids) - len(self.order))
                    for j in self.fronts.touched:
                        self.order[j] = None
                elif self.problem.feasible(result.metrics):  # an objective is missing: _order fails the same way
                    self.problem.vector(result.metrics)
                else:
                    bisect.insort(self.rest, (scalar_key(self.problem, result)[0], len(self.archs)))
                self.archs.append(arch)
            self.seen += 1

    def best(self, quota: int) -> list[Architecture]:
        """The first `quota` completed results in order."""
        out: list[Architecture] = []
        for j, ids in enumerate(self.fronts.ids):
            if len(out) >= quota:
                break
            if self.order[j] is None:
                crowd = crowding_distance(self.fronts.points[j])
                self.order[j] = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-crowd[i], ids[i]))]
            out.extend(self.archs[i] for i in self.order[j])
        out.extend(self.archs[i] for _, i in self.rest[:max(quota - len(out), 0)])
        return out[:quota]


class Hyperband(SuccessiveHalving):
    """Hyperband-style: one asynchronous successive-halving bracket per starting level (all by default)."""

    name = "hyperband"
    default_brackets = None  # type: ignore[assignment]

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0, inner: str = "random",
                 inner_options: Mapping[str, Any] | None = None, eta: int = 3, brackets: int | None = None) -> None:
        if brackets is None and isinstance(space, FidelitySpace):
            brackets = len(space.levels)
        super().__init__(space, problem, seed, inner, inner_options, eta, brackets)
