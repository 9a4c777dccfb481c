"""The NAS-Bench-Graph macro space (Qin et al., NeurIPS 2022): 4 computing nodes, a link pattern, an op each.

`link` gives, per computing node, the index of its input (0 = graph features, k = k-th node); nodes
without successors are summed into the output. Its graph form is that DAG, so graph predictors see
the real wiring. Mutation and neighbours are graph edits (one node's operation, or one node's input),
relabelled into the benchmark's canonical link pattern, so operations stay on their nodes; changing
`link` as a label would rewire every node at once.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from nas.errors import InvalidArchitectureError
from nas.architecture import Architecture
from nas.spaces.cell_graph import CellGraph
from nas.spaces.params import Choice
from nas.spaces.space import Space, new_index

LINKS = ("0-0-0-0", "0-0-0-1", "0-0-1-1", "0-0-1-2", "0-0-1-3", "0-1-1-1", "0-1-1-2", "0-1-2-2", "0-1-2-3")
OPS = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
_RELABELLINGS = tuple(itertools.permutations(range(1, 5)))


class NASBenchGraphSpace(Space):
    """link × op1..op4 (9 × 9^4 configs; the benchmark omits the 9 all-skip ones)."""

    def __init__(self) -> None:
        super().__init__(link=Choice(list(LINKS), ordered=False),
                         **{f"op{i}": Choice(list(OPS), ordered=False) for i in range(1, 5)})

    def mutate(self, arch: Mapping[str, Any], rng: np.random.Generator,
               guide: Sequence[Mapping[str, Any]] = ()) -> Architecture:
        """One graph edit, uniform over the 7 decisions: a node's operation (4) or the input of node 2-4 (3).

        With `guide`, a new operation is copied from one random guide architecture's same node when it differs.
        """
        a = self.validate(arch)
        while True:  # a rewiring can renumber back into `arch` itself (two equal operations swap): draw again
            child = self._edit(a, rng, guide)
            if child.id != a.id:
                return child

    def _edit(self, a: Architecture, rng: np.random.Generator, guide: Sequence[Mapping[str, Any]]) -> Architecture:
        inputs, ops = wiring(a)
        k = int(rng.integers(7))
        if k < 4:
            slot = self.slots()[k + 1]  # slots: link, op1..op4
            ops[k] = slot.leaf.value(new_index(self, slot, slot.leaf.index(ops[k], slot.name), guide, rng))
        else:
            node = k - 2  # 2..4; node 1 always reads the input features
            others = [j for j in range(node) if j != inputs[node - 1]]
            inputs[node - 1] = others[int(rng.integers(len(others)))]
        return self.validate(relabel(inputs, ops))

    def neighbours(self, arch: Mapping[str, Any]) -> list[Architecture]:
        """Every architecture one graph edit away: 32 operation changes and 6 rewirings."""
        a = self.validate(arch)
        inputs, ops = wiring(a)
        edits = [(inputs, ops[:k] + [o] + ops[k + 1:]) for k in range(4) for o in OPS if o != ops[k]]
        edits += [(inputs[:node - 1] + [j] + inputs[node:], ops)
                  for node in range(2, 5) for j in range(node) if j != inputs[node - 1]]
        seen: dict[str, Architecture] = {}
        for ins, os_ in edits:
            nb = self.validate(relabel(ins, os_))
            if nb.id != a.id:
                seen.setdefault(nb.id, nb)
        return list(seen.values())

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        """Nodes: 'input', 1..4 (attribute op), 'output'; edges follow the link pattern."""
        inputs, ops = wiring(self.validate(arch))
        g = nx.DiGraph()
        g.add_node("input", op="input", label="input")
        for i in range(1, 5):
            g.add_node(i, op=ops[i - 1], label=ops[i - 1])
        for i, src in enumerate(inputs, start=1):
            g.add_edge("input" if src == 0 else src, i)
        g.add_node("output", op="output", label="output")
        for i in range(1, 5):
            if g.out_degree(i) == 0:
                g.add_edge(i, "output")
        return g

    def canonical_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        """The DAG with skip nodes contracted (a skip passes its input on) and edge multiplicities counted."""
        inputs, ops = wiring(self.validate(arch))

        def source(i: int) -> int | str:
            while i > 0 and ops[i - 1] == "skip":
                i = inputs[i - 1]
            return "input" if i == 0 else i

        g = nx.DiGraph()
        g.add_node("input", label="input")
        g.add_node("output", label="output")

        def add(u: int | str, v: int | str) -> None:
            n = g.edges[u, v]["n"] + 1 if g.has_edge(u, v) else 1
            g.add_edge(u, v, n=n, label=str(n))

        for i in range(1, 5):
            if ops[i - 1] != "skip":
                g.add_node(i, label=ops[i - 1])
                add(source(inputs[i - 1]), i)
        for i in range(1, 5):
            if i not in inputs:
                add(source(i), "output")
        return g

    def canonical_key(self, arch: Mapping[str, Any]) -> str:
        """Weisfeiler-Lehman hash of the skip-contracted DAG: isomorphic rows share it.

        Checked on the cora table: 27,934 keys, none spanning two of the benchmark's 26,206 canonical ids.
        """
        with warnings.catch_warnings():  # networkx notes that directed hashes changed in 3.5: ours are only compared within a run
            warnings.simplefilter("ignore", UserWarning)
            return nx.weisfeiler_lehman_graph_hash(self.canonical_graph(arch), node_attr="label",
                                                   edge_attr="label", iterations=4)

    def from_graph(self, graph: nx.DiGraph) -> Architecture:
        config: dict[str, Any] = {}
        links = []
        for i in range(1, 5):
            if i not in graph:
                raise InvalidArchitectureError(f"node {i}", "missing from the graph")
            preds = [p for p in graph.predecessors(i)]
            if len(preds) != 1:
                raise InvalidArchitectureError(f"node {i}", f"needs exactly one input, has {preds}")
            links.append("0" if preds[0] == "input" else str(preds[0]))
            config[f"op{i}"] = graph.nodes[i]["op"]
        config["link"] = "-".join(links)
        return self.validate(config)


def wiring(arch: Mapping[str, Any]) -> tuple[list[int], list[str]]:
    """(inputs, ops) of a validated architecture: node i reads inputs[i-1] and applies ops[i-1]."""
    return [int(x) for x in arch["link"].split("-")], [arch[f"op{i}"] for i in range(1, 5)]


def relabel(inputs: Sequence[int], ops: Sequence[str]) -> dict[str, str]:
    """The config of the DAG `inputs` (node i reads inputs[i-1]) with its nodes renumbered into a LINKS pattern.

    Every forest of 4 nodes hanging off the input has exactly one of the 9 patterns as a numbering
    (the patterns are its isomorphism classes); operations move with their nodes.
    """
    for perm in _RELABELLINGS:  # perm[i - 1] = new number of node i
        new = {0: 0, **{i: perm[i - 1] for i in range(1, 5)}}
        link, op = [0] * 4, [""] * 4
        for i in range(1, 5):
            link[new[i] - 1], op[new[i] - 1] = new[inputs[i - 1]], ops[i - 1]
        pattern = "-".join(map(str, link))
        if pattern in LINKS:
            return {"link": pattern, **{f"op{i}": op[i - 1] for i in range(1, 5)}}
    raise InvalidArchitectureError("link", f"inputs {list(inputs)} are not a DAG of 4 nodes on the input")



PLAIN_CELL = CellGraph(nodes=4, node_ops={i: f"op{i}" for i in range(1, 5)}, links="link", identity=["skip"])
"""NAS-Bench-Graph's cell over `plain_space()`'s fields: node i applies `op{i}`, `link` lists the nodes' inputs,
`skip` passes its input on."""


def plain_space(graph: bool = False) -> Space:
    """NAS-Bench-Graph as a user writes it, field by field: one categorical choice per decision, no graph
    awareness (no canonical ids for isomorphic twins, label mutation). The benchmark's lookup accepts its
    architectures; benchmarks use it to check that a result does not come from the built-in encoding.
    `graph=True` declares the cell (`PLAIN_CELL`, `Space.with_graph`), as a user would, so graph predictors can
    read it and deduplication recognises isomorphic twins (the built-in space's canonical keys, exactly)."""
    space = Space(link=Choice(list(LINKS)), op1=Choice(list(OPS)), op2=Choice(list(OPS)), op3=Choice(list(OPS)),
                  op4=Choice(list(OPS)))
    return space.with_graph(PLAIN_CELL) if graph else space
