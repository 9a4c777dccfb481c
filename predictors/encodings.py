"""Fixed-length encodings of architectures for vector regressors: the space's one-hot or index vector."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from nas.errors import ConfigError
from nas.spaces import Architecture, Space

Encoding = Literal["onehot", "vector"]


def encoder(space: Space, encoding: str) -> Callable[[Sequence[Architecture]], np.ndarray]:
    """A function archs -> (n, d) matrix for "onehot" (`space.to_onehot`) or "vector" (`space.to_vector`)."""
    fns: dict[str, Callable[[Any], np.ndarray]] = {"onehot": space.to_onehot, "vector": space.to_vector}
    fn = fns.get(encoding)
    if fn is None:
        raise ConfigError(f"encoding: unknown {encoding!r} (known: {', '.join(fns)})")

    def encode(archs: Sequence[Architecture]) -> np.ndarray:
        width = space.onehot_size() if encoding == "onehot" else len(space.slots())
        return np.array([fn(a) for a in archs], dtype=float).reshape(len(archs), width)

    return encode
