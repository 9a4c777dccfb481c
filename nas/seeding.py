"""Seeded torch randomness that leaves the caller's generator alone: building a network or training it draws from
torch's global generator, and a search must neither depend on what ran before it nor disturb what runs after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Torch's global (CPU) generator seeded with `seed` inside the block and restored after it, e.g.
    `with torch_seeded(0): net = space.build(arch)` builds the same initial weights whatever ran before."""
    import torch  # here, not at the top: strategies that need no torch import this module too

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
