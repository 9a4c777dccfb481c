"""Graph-similarity embedding (FlexiBERT-style) from Weisfeiler-Lehman subtree features, and a GP on it.

Each architecture's DAG (`space.to_graph`) is relabelled by networkx's WL subtree hashing (node labels
plus sorted predecessor and successor labels, `iterations` rounds). The embedding holds one L2-normalised
count vector per round, plus the space's one-hot code as a positional block, so the dot product of two
embeddings is their average cosine similarity over blocks: isomorphic architectures embed identically
in the WL blocks and graph-similar ones lie close. It works for any space whose `to_graph` labels nodes,
including heterogeneous ones (transformers whose layers differ in kind and width).
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np
from scipy import sparse

from nas.errors import ConfigError, check_int
from nas.spaces import Architecture, Space
from nas.predictors.base import Predictor, RankTarget, Target, as_architectures
from nas.predictors.encodings import single_node_graphs
from nas.predictors.kernel_gp import KernelGP, warn_shrunk

CACHE_SIZE = 100_000
AUTO = "auto"  # edge_attr: operations on edges become nodes of their own where the graph has them
logger = logging.getLogger(__name__)


def node_labels(graph: nx.DiGraph) -> dict[Any, str]:
    """A string label per node: its 'label' attribute, else 'op', else empty (structure only)."""
    return {n: str(d.get("label", d.get("op", ""))) for n, d in graph.nodes(data=True)}


def ops_as_nodes(graph: nx.DiGraph) -> nx.DiGraph:
    """`graph` with each labelled edge u -> v replaced by u -> ('edge', u, v) -> v, the new node labelled by the
    edge's label (its operation): a network that reads node labels then sees operations that sit on edges."""
    labelled = [(u, v, d) for u, v, d in graph.edges(data=True) if "label" in d or "op" in d]
    if not labelled:
        return graph
    g = graph.copy()
    for u, v, d in labelled:
        g.remove_edge(u, v)
        g.add_node(("edge", u, v), label=str(d.get("label", d.get("op"))))
        g.add_edges_from([(u, ("edge", u, v)), (("edge", u, v), v)])
    return g


def labelled_edges(graph: nx.DiGraph) -> bool:
    """True when some edge carries an operation (a `label` or `op`: NAS-Bench-201, DARTS, `CellGraph(edge_ops=...)`)."""
    return any("label" in d or "op" in d for _, _, d in graph.edges(data=True))


def wl_features(graph: nx.DiGraph, iterations: int = 3, edge_attr: str | None = AUTO) -> list[Counter[str]]:
    """WL subtree-pattern counts per round (round 0: the node labels), via networkx's WL hashing.

    `edge_attr`: `"auto"` makes each edge that carries an operation a node of its own labelled by it (`ops_as_nodes`,
    as `gcn` reads them), so the hash sees operations on edges and keeps the edges' direction; a graph without such
    edges (NAS-Bench-Graph: operations on nodes) is hashed as it is. `None` ignores edge attributes. Another name
    prefixes each neighbour's label with that edge attribute (networkx's `edge_attr`; an edge without it: nothing);
    networkx 3.6 then drops its successor / predecessor marks, so the hash no longer sees which way an edge points."""
    g = graph.copy()
    if edge_attr == AUTO:
        if labelled_edges(graph):
            g = ops_as_nodes(graph)
        edge_attr = None
    elif edge_attr is not None:
        nx.set_edge_attributes(g, {(u, v): str(d.get(edge_attr, "")) for u, v, d in graph.edges(data=True)}, "_wl_edge")
        edge_attr = "_wl_edge"
    nx.set_node_attributes(g, node_labels(g), "_wl_label")
    with warnings.catch_warnings():  # networkx warns that directed hashes changed in 3.5: ours stay within a run
        warnings.simplefilter("ignore", UserWarning)
        hashes = nx.weisfeiler_lehman_subgraph_hashes(g, node_attr="_wl_label", edge_attr=edge_attr,
                                                      iterations=iterations, include_initial_labels=True)
    rounds: list[Counter[str]] = [Counter() for _ in range(iterations + 1)]
    for per_node in hashes.values():
        for r, h in enumerate(per_node[: iterations + 1]):
            rounds[r][h] += 1
    return rounds


def edge_attributes(space: Space, samples: int = 8) -> set[str] | None:
    """The attribute names on the edges of a few sampled graphs of `space` (None when it cannot sample)."""
    if "sample" not in space.capabilities:
        return None
    rng = np.random.default_rng(0)
    return {k for _ in range(samples) for _, _, d in space.to_graph(space.sample(rng)).edges(data=True) for k in d}


class GraphEmbedding:
    """WL-feature blocks (+ optional one-hot block), each row divided by its full norm; the vocabulary comes from
    `fit`.

    Patterns never seen in `fit` are dropped at `transform` (no regressor fitted on the same set could use them), but
    still count in the row's norm: an architecture made mostly of new patterns is then *less* similar to every
    training one, as the WL kernel on the full counts says, instead of looking like its few familiar parts alone.
    """

    def __init__(self, space: Space, iterations: int = 3, onehot: bool = True, edge_attr: str | None = AUTO) -> None:
        check_int(iterations, "iterations", 1)  # networkx's WL hash needs at least one round
        if not isinstance(onehot, bool):
            raise ConfigError(f"onehot: expected True or False, got {onehot!r}")
        if edge_attr is not None and not isinstance(edge_attr, str):
            raise ConfigError(f"edge_attr: expected 'auto', None or an edge attribute's name, got {edge_attr!r}")
        if edge_attr not in (None, AUTO):
            known = edge_attributes(space)
            if known is not None and edge_attr not in known:  # a typo would hash every edge as unlabelled
                raise ConfigError(f"edge_attr: no edge of {type(space).__name__}.to_graph has an attribute "
                                  f"{edge_attr!r} (its edges have: {', '.join(sorted(known)) or 'none'}; or 'auto', "
                                  "None)")
        self.space, self.iterations, self.onehot, self.edge_attr = space, iterations, onehot, edge_attr
        self.vocab: list[dict[str, int]] = []
        self._cache: dict[str, list[Counter[str]]] = {}  # arch id -> WL counts (searches re-score many children)

    def features(self, archs: Sequence[Architecture]) -> list[list[Counter[str]]]:
        if len(self._cache) > CACHE_SIZE:
            self._cache.clear()
        out = []
        for a in archs:
            f = self._cache.get(a.id)
            if f is None:
                f = self._cache[a.id] = wl_features(self.space.to_graph(a), self.iterations, self.edge_attr)
            out.append(f)
        return out

    def fit(self, archs: Sequence[Architecture]) -> "GraphEmbedding":
        self.vocab = [{} for _ in range(self.iterations + 1)]
        for rounds in self.features(archs):
            for r, counts in enumerate(rounds):
                for key in counts:
                    self.vocab[r].setdefault(key, len(self.vocab[r]))
        return self

    def transform(self, archs: Sequence[Architecture]) -> sparse.csr_matrix:
        """(n, d) sparse matrix; a row's squared norm is the number of blocks for an architecture whose patterns were
        all seen in `fit`, less for one with new patterns (`self_similarity` is what the full counts give)."""
        from sklearn.preprocessing import normalize

        if not self.vocab:
            raise ConfigError("GraphEmbedding: call fit before transform")
        feats = self.features(archs)
        blocks = []
        for r, vocab in enumerate(self.vocab):
            rows, cols, vals = [], [], []
            norms = np.ones(len(archs))
            for i, rounds in enumerate(feats):
                norms[i] = np.sqrt(sum(float(c) ** 2 for c in rounds[r].values())) or 1.0
                for key, c in rounds[r].items():
                    j = vocab.get(key)
                    if j is not None:
                        rows.append(i), cols.append(j), vals.append(float(c))
            block = sparse.csr_matrix((vals, (rows, cols)), shape=(len(archs), max(len(vocab), 1)))
            blocks.append(sparse.csr_matrix(sparse.diags(1.0 / norms) @ block))
        if self.onehot:
            blocks.append(sparse.csr_matrix(normalize(np.array([self.space.to_features(a) for a in archs]))))
        return sparse.hstack(blocks, format="csr")

    def self_similarity(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Each architecture's kernel value with itself on its full counts: the number of its non-empty blocks."""
        feats = self.features(archs)
        wl = np.array([sum(bool(rounds[r]) for r in range(len(self.vocab))) for rounds in feats], dtype=float)
        if self.onehot:
            wl += np.array([bool(np.any(self.space.to_features(a))) for a in archs], dtype=float)
        return wl

    @property
    def blocks(self) -> int:
        return len(self.vocab) + int(self.onehot)


class GraphSimilarityPredictor(Predictor):
    """GP regression with the WL graph-similarity kernel (NAS-BOWL style), plus a one-hot positional block.

    k(a, b) = mean over blocks of the cosine similarity of their WL (and one-hot) vectors.
    """

    name = "wl-gp"
    needs = frozenset({"graph", "vector"})

    def __init__(self, space: Space, seed: int = 0, iterations: int = 3, onehot: bool = True,
                 target: Target = "rank", edge_attr: str | None = AUTO) -> None:
        super().__init__(space, seed)
        if target not in ("rank", "raw"):
            raise ConfigError(f"target: expected 'rank' or 'raw', got {target!r}")
        self.iterations, self.onehot, self.target, self.edge_attr = iterations, onehot, target, edge_attr
        self.embedding = GraphEmbedding(space, iterations, onehot, edge_attr)
        if not onehot and single_node_graphs(space):
            raise ConfigError(f"predictor {self.name!r}: onehot=False on {type(space).__name__}, whose to_graph gives "
                              "one node labelled by the whole architecture (a plain Space without a declared cell): "
                              "the WL blocks then tell no architecture not seen in training from another, and the "
                              "prediction is constant; keep onehot=True, or declare its cell with "
                              "space.with_graph(nas.spaces.CellGraph(...)) (docs/predictors.md)")

    def embed(self, archs: Sequence[Any]) -> sparse.csr_matrix:
        """The fitted embedding of `archs` (dot products are graph similarities; rows of norm 1 for architectures
        whose WL patterns were all seen in `fit`, shorter for ones with new patterns)."""
        return self._embed(as_architectures(self.space, archs, self._valid_ids))

    def _embed(self, archs: Sequence[Architecture]) -> sparse.csr_matrix:
        return self.embedding.transform(archs) / np.sqrt(self.embedding.blocks)

    def _fit(self, archs: list[Architecture], y: np.ndarray) -> None:
        self.embedding.fit(archs)
        self._x = self._embed(archs)
        self._rank = RankTarget().fit(y) if self.target == "rank" else None
        t = self._rank.transform(y) if self._rank is not None else y
        self._gp = KernelGP().fit((self._x @ self._x.T).toarray(), t)
        self.degenerate = self._gp.collapsed
        if self.degenerate:
            warn_shrunk(self._gp, len(t), self, logger)

    def _predict(self, archs: list[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        x = self._embed(archs)  # validated by `predict`
        diag = self.embedding.self_similarity(archs) / self.embedding.blocks  # not x . x: new patterns count
        mean, std = self._gp.predict((x @ self._x.T).toarray(), diag)
        if self._rank is None:
            return mean, std
        return self._rank.inverse(mean), self._rank.inverse_std(mean, std)
