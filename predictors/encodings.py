"""Fixed-length encodings of architectures for vector regressors: the space's one-hot or index vector, or the
path encoding of its DAG (BANANAS, White et al. 2021: how often each sequence of labels runs from an input to an
output of `space.to_graph`), hashed into `PATH_WIDTH` columns so it needs no vocabulary. The path code is the
same for isomorphic twins and needs a graph with structure (a built-in cell space, or a plain `Space` whose cell
is declared with `Space.with_graph`); for a forest on NAS-Bench-Graph it ranks worse than one-hot
(experiments/README.md, `predictors_user_space.py`)."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

import networkx as nx
import numpy as np

from nas.errors import ConfigError
from nas.spaces import Architecture, Space

Encoding = Literal["onehot", "vector", "onehot+vector", "path"]
CACHE_SIZE = 100_000
PATH_WIDTH = 1024  # hashed columns: a NAS-Bench-Graph cell has 1-4 of its 7,380 possible paths


def paths(graph: nx.DiGraph) -> Counter[str]:
    """Every path from a node without predecessors to one without successors, as its node and edge labels joined
    by '>', counted (a DAG's paths, by dynamic programming in topological order)."""
    def label(data: dict) -> str:
        return str(data.get("label", data.get("op", "")))

    ending: dict[Any, Counter[str]] = {}
    for v in nx.topological_sort(graph):
        here = label(graph.nodes[v])
        preds = list(graph.predecessors(v))
        ending[v] = Counter({here: 1}) if not preds else Counter()
        for u in preds:
            edge = label(graph.edges[u, v])
            for path, n in ending[u].items():
                ending[v][f"{path}>{edge}>{here}" if edge else f"{path}>{here}"] += n
    out: Counter[str] = Counter()
    for v in graph:
        if graph.out_degree(v) == 0:
            out.update(ending[v])
    return out


def single_node_graphs(space: Space, samples: int = 3) -> bool:
    """True when the space's graphs are a single node (a plain `Space`): no structure for a graph network or the
    path encoding to use."""
    if "sample" not in space.capabilities:
        return False
    rng = np.random.default_rng(0)
    return all(space.to_graph(space.sample(rng)).number_of_nodes() <= 1 for _ in range(samples))


def single_path_graphs(space: Space, samples: int = 3) -> bool:
    """True when each architecture's graph is one path (a single node, or a chain): the path code then names the
    whole architecture, which no other architecture shares."""
    if "sample" not in space.capabilities:
        return False
    rng = np.random.default_rng(0)
    return all(len(paths(space.to_graph(space.sample(rng)))) <= 1 for _ in range(samples))


def path_code(space: Space, arch: Any) -> np.ndarray:
    """The path encoding of `arch`: path counts hashed (CRC-32, stable across runs) into PATH_WIDTH columns."""
    code = np.zeros(PATH_WIDTH)
    for path, n in paths(space.to_graph(arch)).items():
        code[zlib.crc32(path.encode()) % PATH_WIDTH] += n
    return code


def encoding_width(space: Space, encoding: str) -> int:
    """The number of columns `encoder(space, encoding)` gives (the input width of a network on that code)."""
    widths = {"onehot": space.features_size, "vector": lambda: len(space.slots()),
              "onehot+vector": lambda: space.features_size() + len(space.slots()), "path": lambda: PATH_WIDTH}
    width = widths.get(encoding)
    if width is None:
        raise ConfigError(f"encoding: unknown {encoding!r} (known: {', '.join(widths)})")
    return width()


def encoder(space: Space, encoding: str) -> Callable[[Sequence[Architecture]], np.ndarray]:
    """A function archs -> (n, d) matrix for "onehot" (`space.to_features`: the one-hot code, a wide ordered decision
    such as `Integer(1, 100000)` one scaled column), "vector" (`space.to_vector`), both
    side by side ("onehot+vector": a tree can then split one option from the rest or the options in their
    declared order) or "path" (`path_code`)."""
    fns: dict[str, Callable[[Any], np.ndarray]] = {
        "onehot": space.to_features, "vector": space.to_vector,
        "onehot+vector": lambda a: np.concatenate([space.to_features(a), space.to_vector(a)]),
        "path": lambda a: path_code(space, a)}
    fn = fns.get(encoding)
    if fn is None:
        raise ConfigError(f"encoding: unknown {encoding!r} (known: {', '.join(fns)})")
    if encoding == "path" and single_path_graphs(space):
        raise ConfigError(f"encoding: 'path' needs a DAG with several paths, but {type(space).__name__}.to_graph gives "
                          "one path per architecture (one node labelled by the whole architecture, as a plain Space "
                          "without a declared cell, or a chain), so every architecture is its own column and the "
                          "prediction for unseen ones is constant; declare its cell with "
                          "space.with_graph(nas.spaces.CellGraph(...)) (docs/predictors.md), or use 'onehot'")

    width = encoding_width(space, encoding)
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
