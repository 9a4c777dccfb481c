"""Random search: uniform samples from the space (the baseline every strategy must beat)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.objectives import Problem
from nas.spaces import Architecture, Space
from nas.strategies.base import SeenArchitectures, Strategy, TrialResult, check_count


class RandomSearch(Strategy):
    """Uniform random sampling of the space: the baseline every other strategy is measured against.

    On a space that lists its architectures (capability `listed`, a recorded table) it also keeps the ones it
    asked or was told and draws `SeenArchitectures.fresh_sample`: uniform redraws of a repeat, as the search's
    deduplication would make, then a uniform pick among the unseen ones, so `budget=len(table)` covers the
    whole table instead of stopping "exhausted" when 100 redraws miss its last few. Elsewhere each ask is a
    plain uniform sample, and the search's deduplication redraws repeats.
    """

    name = "random"
    requires = frozenset({"sample"})

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0) -> None:
        super().__init__(space, problem, seed)
        self.seen = SeenArchitectures(space) if "listed" in space.capabilities else None

    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        if self.seen is None:
            return [self.space.sample(self.rng) for _ in range(n)]
        out = []
        for _ in range(n):
            arch = self.seen.fresh_sample(self.rng)
            self.seen.add(arch)
            out.append(arch)
        return out

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        if self.seen is not None:
            self.seen.add(arch)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.seen is not None:
            state["seen"] = sorted(self.seen.ids)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.seen is not None:  # keys recomputed from the listed architectures (a snapshot without "seen": none)
            ids = set(state.get("seen", ()))
            self.seen.clear()
            for arch in self.space:
                if arch.id in ids:
                    self.seen.add(arch)
            self.seen.ids |= ids
