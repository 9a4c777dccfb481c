"""Random search: uniform samples from the space (the baseline every strategy must beat)."""

from __future__ import annotations

from nas.spaces import Architecture
from nas.strategies.base import Strategy


class RandomSearch(Strategy):
    """Uniform random sampling of the space: the baseline every other strategy is measured against."""

    name = "random"
    requires = frozenset({"sample"})

    def ask(self, n: int = 1) -> list[Architecture]:
        return [self.space.sample(self.rng) for _ in range(n)]
