"""First-improvement local search with random restarts (White et al. 2021: strong on NAS benchmarks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.spaces import Architecture
from nas.strategies.base import (Strategy, TrialResult, arch_record, check_count, from_record, pareto_ranks,
                                 scalar_key)


class LocalSearch(Strategy):
    """Walk to the first neighbour that improves on the current architecture; restart at a local optimum.

    With several objectives "improves" means constraint-dominates.
    """

    name = "local"
    requires = frozenset({"sample", "neighbours"})

    def __init__(self, space, problem, seed: int | None = 0) -> None:
        super().__init__(space, problem, seed)
        self.current: tuple[Architecture, TrialResult] | None = None
        self.queue: list[Architecture] = []  # the current's neighbours still to ask, in `order` (asked from the end)
        self.order: list[int] = []  # the shuffled positions of the current's neighbours (`space.neighbours`)
        self.starts: list[str] = []  # ids of asked restart points

    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        out = []
        for _ in range(n):
            if self.current is not None and self.queue:
                out.append(self.queue.pop())
            else:
                start = self.space.sample(self.rng)
                self.starts.append(start.id)
                out.append(start)
        return out

    def _better(self, a: TrialResult, b: TrialResult) -> bool:
        if len(self.problem.objectives) == 1:
            return scalar_key(self.problem, a) < scalar_key(self.problem, b)
        ranks = pareto_ranks(self.problem, [a, b])
        return bool(ranks[0] < ranks[1])

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        if arch.id in self.starts:
            self.starts.remove(arch.id)
            if self.current is None or not self.queue:
                self._move(arch, result)
                return
        if self.current is not None and self._better(result, self.current[1]):
            self._move(arch, result)
        elif self.current is not None and not self.queue:
            self.current = None  # local optimum: the next ask restarts

    def _move(self, arch: Architecture, result: TrialResult) -> None:
        self.current = (arch, result)
        nbs = self.space.neighbours(arch)
        self.order = [int(i) for i in self.rng.permutation(len(nbs))]
        self.queue = [nbs[i] for i in self.order]

    def state_dict(self) -> dict[str, Any]:
        """The queue as the shuffle of the current's neighbours and how many are left, not the architectures: on a
        600-field space those were 11.7 MB after 11 trials (restoring recomputes the neighbours once)."""
        return {**super().state_dict(),
                "current": arch_record(*self.current) if self.current else None,
                "order": list(self.order), "remaining": len(self.queue), "starts": list(self.starts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.current = from_record(state["current"]) if state["current"] else None
        self.starts = list(state["starts"])
        if "queue" in state:  # written before session 39: the architectures themselves
            self.queue, self.order = [Architecture(a) for a in state["queue"]], []
            return
        self.order = [int(i) for i in state["order"]]
        remaining = int(state["remaining"])
        if not 0 <= remaining <= len(self.order) or (remaining and self.current is None):
            raise ValueError(f"remaining: {remaining} neighbours left of {len(self.order)}")
        nbs = self.space.neighbours(self.current[0]) if remaining and self.current is not None else []
        if remaining and len(nbs) != len(self.order):
            raise ValueError(f"order: {len(self.order)} positions for {len(nbs)} neighbours of the current")
        self.queue = [nbs[i] for i in self.order[:remaining]]
