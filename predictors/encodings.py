"""Fixed-length encodings of architectures for vector regressors: the space's one-hot or index vector."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from nas.errors import ConfigError
from nas.spaces import Architecture, Space

Encoding = Literal["onehot", "vector"]
CACHE_SIZE = 100_000


def encoder(space: Space, encoding: str) -> Callable[[Sequence[Architecture]], np.ndarray]:
    """A function archs -> (n, d) matrix for "onehot" (`space.to_onehot`) or "vector" (`space.to_vector`)."""
    fns: dict[str, Callable[[Any], np.ndarray]] = {"onehot": space.to_onehot, "vector": space.to_vector}
    fn = fns.get(encoding)
    if fn is None:
        raise ConfigError(f"encoding: unknown {encoding!r} (known: {', '.join(fns)})")

    width = space.onehot_size() if encoding == "onehot" else len(space.slots())
    cache: dict[str, np.ndarray] = {}  # arch id -> code: searches re-encode the same candidates at every refit

    def code(a: Architecture) -> np.ndarray:
        v = cache.get(a.id)
        if v is None:
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            v = cache[a.id] = np.asarray(fn(a), dtype=float)
        return v

    def encode(archs: Sequence[Architecture]) -> np.ndarray:
        return np.array([code(a) for a in archs], dtype=float).reshape(len(archs), width)

    return encode
