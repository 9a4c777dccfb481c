"""`CellGraph`: which fields of a plain `Space` spell a cell DAG, so graph predictors and WL kernels see its wiring.

A cell written field by field (`Space(link=Choice([...]), op1=Choice([...]), ...)`) has, by default, a graph of
one node labelled by the whole config: a graph predictor has nothing to propagate. `space.with_graph(CellGraph(...))`
declares the structure instead, and `space.to_graph` returns the real DAG, labelled like the built-in cell spaces'
(a node's label is its operation, else 'input', 'node' or 'output'; an edge's label is its operation).

Nodes are numbered as cell papers number them: 0 .. n_inputs-1 are the cell's inputs, then the `nodes` computing
nodes in order. Fields are named by their slot name (`op1`, `cell.op1`, `blocks[0].op`); the fields the declaration
does not name become one node each (`name=value`) feeding the output, so no decision is hidden from a predictor.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx

from nas.architecture import canonical_json
from nas.errors import InvalidArchitectureError, SpaceDefinitionError
from nas.spaces.params import SubsetBit

Output = Literal["loose", "all", "last"]
OUTPUTS = ("loose", "all", "last")
OUTPUT = "output"


@dataclass(frozen=True)
class CellGraph:
    """A cell DAG over a space's fields (plain data; `spec`/`from_spec` round-trip it through JSON).

    nodes: the number of computing nodes. node_ops: {node: field} the operation a node applies (NAS-Bench-Graph).
    edge_ops: {(i, j): field} the operation on the edge i -> j; the value `none` removes the edge (NAS-Bench-201).
    inputs: {node: field or index} the node's input node(s): a field whose values are an index (2), indices
    ("0,2", [0, 2]; "1,1" reads node 1 twice: one edge with n=2), or a fixed int. links: one field whose value
    lists every computing node's input in order ("0-0-1-2": node 1 reads node 0, node 4 reads node 2).
    output: 'loose' (an output node sums the nodes no other node reads), 'all' (an output node concatenates every
    computing node) or 'last' (the last node is the output).
    identity: node operations that pass their one input on unchanged (NAS-Bench-Graph's 'skip'); `canonical_key`
    contracts such nodes, so cells that differ only in where a pass-through sits count as one network.
    `bind` checks the declaration against the space: every name a field, `identity` options of a `node_ops` field,
    `none` the "no edge" option of the `edge_ops` fields, every computing node with a possible input.
    """

    nodes: int
    node_ops: Mapping[int, str] = field(default_factory=dict)
    edge_ops: Mapping[tuple[int, int], str] = field(default_factory=dict)
    inputs: Mapping[int, str | int | Sequence[int]] = field(default_factory=dict)
    links: str | None = None
    n_inputs: int = 1
    output: Output = "loose"
    none: str = "none"
    identity: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in ("nodes", "n_inputs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpaceDefinitionError(f"graph.{name}: expected a positive int, got {v!r}")
        if isinstance(self.identity, str) or not all(isinstance(v, str) for v in self.identity):
            raise SpaceDefinitionError(f"graph.identity: expected a list of operation names, got {self.identity!r}")
        object.__setattr__(self, "identity", tuple(self.identity))
        if self.output not in OUTPUTS:
            raise SpaceDefinitionError(f"graph.output: expected one of {', '.join(OUTPUTS)}, got {self.output!r}")
        object.__setattr__(self, "node_ops", {self._node(n, "node_ops"): f for n, f in dict(self.node_ops).items()})
        object.__setattr__(self, "inputs", {self._node(n, "inputs"): f for n, f in dict(self.inputs).items()})
        edges = {}
        for e, f in dict(self.edge_ops).items():
            if not isinstance(e, (tuple, list)) or len(e) != 2:
                raise SpaceDefinitionError(f"graph.edge_ops: {e!r} is not a pair of nodes (i, j)")
            i, j = self._any_node(e[0], "edge_ops"), self._node(e[1], "edge_ops")
            if i >= j:
                raise SpaceDefinitionError(f"graph.edge_ops: edge {i}->{j} does not go to a later node")
            edges[(i, j)] = f
        object.__setattr__(self, "edge_ops", edges)
        for where, ref in self._references():
            if not isinstance(ref, str) or not ref:
                raise SpaceDefinitionError(f"graph.{where}: expected a field name, got {ref!r}")
        for n, f in self.inputs.items():
            if not isinstance(f, str):
                _check_indices(_indices(f, f"graph.inputs[{n}]"), n, f"graph.inputs[{n}]")
        wired = set(self.inputs) | ({*self.computing} if self.links is not None else set())
        if self.links is not None and self.inputs:
            raise SpaceDefinitionError("graph.inputs: give a node's inputs either in `links` or in `inputs`, not both")
        both = sorted(j for _, j in self.edge_ops if j in wired)
        if both:
            raise SpaceDefinitionError(f"graph.edge_ops: node {both[0]} gets its inputs from `inputs`/`links` too; "
                                       "declare each node's incoming edges one way")

    @property
    def computing(self) -> range:
        return range(self.n_inputs, self.n_inputs + self.nodes)

    def _node(self, n: Any, where: str) -> int:
        if isinstance(n, bool) or not isinstance(n, int) or n not in self.computing:
            raise SpaceDefinitionError(f"graph.{where}: node {n!r} is not a computing node "
                                       f"({self.computing.start}..{self.computing.stop - 1})")
        return n

    def _any_node(self, n: Any, where: str) -> int:
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < self.computing.stop:
            raise SpaceDefinitionError(f"graph.{where}: node {n!r} is not a node of the cell "
                                       f"(0..{self.computing.stop - 1})")
        return n

    # ------------------------------------------------------------------ against a space
    def bind(self, space_slots: Sequence[Any]) -> dict[str, Any]:
        """The slots (`Space.slots()`) the declaration names, checked against them (SpaceDefinitionError naming
        the field)."""
        slots = {s.name: s for s in space_slots}
        bound: dict[str, Any] = {}
        for where, name in self._references():
            slot = slots.get(name)
            if slot is None:
                raise SpaceDefinitionError(f"graph.{where}: {name!r} is not a field of this space "
                                           f"(fields: {', '.join(slots)})")
            if slot.optional or isinstance(slot.leaf, SubsetBit):
                raise SpaceDefinitionError(f"graph.{where}: {name!r} is not a decision every architecture has "
                                           "(a Conditional, a varying Repeat or a Subset); a cell's fields must be")
            bound[name] = slot
        for n, f in self.inputs.items():
            if isinstance(f, str):
                seen: dict[tuple[int, ...], Any] = {}
                for option in bound[f].leaf.options:
                    where = f"graph.inputs[{n}]: option {option!r} of {f!r}"
                    idx = _indices(option, where)
                    _check_indices(idx, n, where)
                    same = seen.setdefault(tuple(sorted(idx)), option)
                    if same != option:
                        raise SpaceDefinitionError(
                            f"{where} reads the same inputs as option {same!r} ({sorted(idx)}): the graph and the "
                            "canonical key hold a node's inputs as a set (with repeats), so they cannot tell the two "
                            "apart; list each set once (with an operation field per input, the other order is the "
                            "same network with those fields exchanged)")
        if self.links is not None:
            for option in bound[self.links].leaf.options:
                where = f"graph.links: option {option!r} of {self.links!r}"
                idx = _indices(option, where)
                if len(idx) != self.nodes:
                    raise SpaceDefinitionError(f"{where} gives {len(idx)} inputs for {self.nodes} computing nodes")
                for node, i in zip(self.computing, idx):
                    _check_indices([i], node, where)
        self._check_identity(bound)
        self._check_none(bound)
        self._check_fed(bound)
        return bound

    def _check_identity(self, bound: Mapping[str, Any]) -> None:
        """Each `identity` entry must be an option of a `node_ops` field: a typo, or an edge operation (identity
        contracts nodes, not edges), would silently switch twin deduplication off."""
        node_options = _options(bound, self.node_ops.values())
        for op in self.identity:
            if op in node_options:
                continue
            where = f"graph.identity: {op!r}"
            edge = next((e for e, f in self.edge_ops.items() if op in bound[f].leaf.options), None)
            if edge is not None:
                raise SpaceDefinitionError(f"{where} is an operation on edges ({self.edge_ops[edge]!r}, edge_ops"
                                           f"[{edge[0]}, {edge[1]}]); identity names node operations (node_ops) that "
                                           "pass their input on, and cannot contract an edge")
            if not self.node_ops:
                raise SpaceDefinitionError(f"{where}: this cell declares no node_ops field, and identity names node "
                                           "operations that pass their input on")
            raise SpaceDefinitionError(f"{where} is not an option of any node_ops field (options: "
                                       f"{', '.join(map(repr, node_options))})")

    def _check_none(self, bound: Mapping[str, Any]) -> None:
        """`none` must be the value that removes an edge: refused when no `edge_ops` field offers it and it was set
        explicitly, or when a field offers a differently spelled "no edge" option (`zero`), which would become a
        real edge in every graph and key. A field without any such option is a cell whose edge is always there."""
        if not self.edge_ops:
            if self.none != "none":
                raise SpaceDefinitionError(f"graph.none: {self.none!r} is set but the cell declares no edge_ops field "
                                           "(none is the edge operation that removes an edge)")
            return
        offered = _options(bound, self.edge_ops.values())
        if self.none != "none" and self.none not in offered:
            raise SpaceDefinitionError(f"graph.none: {self.none!r} is not an option of any edge_ops field (options: "
                                       f"{', '.join(map(repr, offered))})")
        for (i, j), f in self.edge_ops.items():
            options = bound[f].leaf.options
            if self.none in options:
                continue
            alike = [o for o in options if isinstance(o, str) and re.sub(r"[^a-z]", "", o.lower()) in NO_EDGE]
            if alike:
                raise SpaceDefinitionError(
                    f"graph.edge_ops[{i}, {j}]: option {alike[0]!r} of {f!r} reads as 'no edge', but the cell removes "
                    f"an edge on none={self.none!r}, so {alike[0]!r} would be a real edge; declare "
                    f"none={alike[0]!r} (options: {', '.join(map(repr, options))})")

    def _check_fed(self, bound: Mapping[str, Any]) -> None:
        """Every computing node needs a possible input: an `inputs` entry, the `links` field, or an `edge_ops` field
        into it with an option other than `none` (else it is a node nothing can feed, e.g. `nodes` one too many)."""
        for n in self.computing:
            if n in self.inputs or self.links is not None:
                continue
            fields = [f for (_, j), f in self.edge_ops.items() if j == n]
            if any(o != self.none for f in fields for o in bound[f].leaf.options):
                continue
            why = (f"its edge_ops fields ({', '.join(map(repr, fields))}) only offer {self.none!r}" if fields
                   else "no inputs, links or edge_ops into it")
            raise SpaceDefinitionError(f"graph: node {n} has no possible input ({why}); the computing nodes are "
                                       f"{self.computing.start}..{self.computing.stop - 1} (nodes={self.nodes}, "
                                       f"n_inputs={self.n_inputs})")

    def _references(self) -> list[tuple[str, str]]:
        return [*((f"node_ops[{n}]", f) for n, f in self.node_ops.items()),
                *((f"edge_ops[{i}, {j}]", f) for (i, j), f in self.edge_ops.items()),
                *((f"inputs[{n}]", f) for n, f in self.inputs.items() if isinstance(f, str)),
                *([("links", self.links)] if self.links is not None else [])]

    def graph(self, values: Mapping[str, Any], others: Sequence[tuple[str, Any]] = ()) -> nx.DiGraph:
        """The DAG of one architecture: `values` holds the declared fields' values by name, `others` the
        (name, value) of every other active decision (each becomes a node `name=value` feeding the output)."""
        value = values.__getitem__
        g = nx.DiGraph()
        last = self.computing.stop - 1
        for n in range(self.n_inputs):
            g.add_node(n, label="input")
        for n in self.computing:
            if n in self.node_ops:
                op = value(self.node_ops[n])
                g.add_node(n, op=op, label=show(op))
            else:
                g.add_node(n, label=OUTPUT if self.output == "last" and n == last else "node")
        for (i, j), f in self.edge_ops.items():
            op = value(f)
            if op != self.none:
                g.add_edge(i, j, op=op, label=show(op))
        for n, f in self.inputs.items():
            reads = Counter(_indices(value(f) if isinstance(f, str) else f, f"inputs[{n}]"))
            for i, count in reads.items():  # an input read twice ("1,1"): one edge with n=2
                g.add_edge(i, n, **({"n": count, "label": f"x{count}"} if count > 1 else {}))
        if self.links is not None:
            g.add_edges_from(zip(_indices(value(self.links), "links"), self.computing))
        sink = last
        if self.output != "last":
            feeds = [n for n in self.computing
                     if self.output == "all" or not any(v in self.computing for v in g.successors(n))]
            g.add_node(OUTPUT, label=OUTPUT)
            g.add_edges_from((n, OUTPUT) for n in feeds)
            sink = OUTPUT
        for name, v in others:  # the other decisions: a node each, so a predictor sees them too
            g.add_node(("field", name), field=name, value=v, label=f"{name}={show(v)}")
            g.add_edge(("field", name), sink)
        return g

    def canonical_key(self, graph: nx.DiGraph) -> str:
        """An exact canonical hash (`canonical_hash`) of `graph` (from `graph()`) with `identity` nodes contracted,
        the nodes that cannot reach the output dropped, parallel edges counted (an input read twice too), inputs
        told apart and edge directions kept: equal for two cells iff those reduced graphs are isomorphic (labels,
        counts and directions respected), so searches do not spend evaluations on isomorphic twins and never merge
        two different networks. Operations and other fields' values enter as canonical JSON, so 1 and "1" differ.
        (A Weisfeiler-Lehman hash until 2027-01: it merged some non-isomorphic cells of 6 nodes.)"""
        sink = OUTPUT if OUTPUT in graph else self.computing.stop - 1
        source: dict[Any, Any] = {}  # contracted identity node -> the node it passes on
        for n in self.computing:  # the last node too (output='last'): the node it passes on becomes the output
            preds = [p for p in graph.predecessors(n) if isinstance(p, int)]  # not the other fields' nodes
            if (graph.nodes[n].get("op") in self.identity and len(preds) == 1
                    and "op" not in graph.edges[preds[0], n] and graph.edges[preds[0], n].get("n", 1) == 1):
                source[n] = source.get(preds[0], preds[0])
        h = nx.DiGraph()
        for n, data in graph.nodes(data=True):
            if n not in source:
                h.add_node(n, label=_key_label(n, data, self.n_inputs))
        for u, v, data in graph.edges(data=True):
            if v in source:
                if isinstance(u, int):
                    continue  # the contracted node's input: the node itself is its input now
                v = source[v]  # another field's node feeding a contracted output feeds what it passes on
            u = source.get(u, u)
            op = canonical_json(data["op"]) if "op" in data else ""
            count = (h.edges[u, v]["n"] if h.has_edge(u, v) else 0) + data.get("n", 1)
            h.add_edge(u, v, n=count, op=op, label=f"{op}*{count}")
        sink = source.get(sink, sink)
        return canonical_hash(h.subgraph(nx.ancestors(h, sink) | {sink}))

    # ------------------------------------------------------------------ graph edits (a `links` field)
    MAX_RENUMBERED = 7  # renumbering tries every order of the computing nodes: 5,040 at 7 nodes

    def rewirable(self) -> bool:
        """Whether mutation can edit one node's input (`rewirings`): the wiring is one `links` field, whose
        options name whole wiring patterns, so changing its label would rewire every node at once."""
        return self.links is not None and not self.edge_ops and self.nodes <= self.MAX_RENUMBERED

    def rewire_decisions(self) -> int:
        """How many one-node input decisions the `links` field holds (nodes with more than one possible input)."""
        return sum(n > 1 for n in self.computing) if self.rewirable() else 1

    def rewirings(self, values: Mapping[str, Any], bound: Mapping[str, Any]) -> dict[int, list[dict[str, Any]]]:
        """{node: every declared-field assignment with that node's input changed}, from `values` (node ops move
        with their nodes when the new wiring is renumbered into an option of the `links` field; edits with no
        such option, or that renumber back into `values`, are left out)."""
        inputs = _indices(values[self.links], "links")
        options = {tuple(_indices(o, "links")): o for o in bound[self.links].leaf.options}
        out: dict[int, list[dict[str, Any]]] = {}
        for pos, node in enumerate(self.computing):
            for j in range(node):
                if j != inputs[pos]:
                    edited = self._renumbered(values, options, inputs[:pos] + [j] + inputs[pos + 1:], bound)
                    if edited is not None and edited != dict(values):
                        out.setdefault(node, []).append(edited)
        return out

    def _renumbered(self, values: Mapping[str, Any], options: Mapping[tuple[int, ...], Any],
                    inputs: Sequence[int], bound: Mapping[str, Any]) -> dict[str, Any] | None:
        """`values` with the wiring `inputs` (node k reads inputs[k - first]), its computing nodes renumbered so
        the wiring is one of `options` (the `links` field's, by their indices), node ops moved along; None when
        no numbering is. A numbering that moves an op onto a node whose field (in `bound`) does not offer it is
        skipped, so every edit is a valid architecture (a fixed classifier on the last node stays there)."""
        first = self.n_inputs
        for perm in itertools.permutations(self.computing):  # perm[k - first]: the new number of node k
            new = {**{i: i for i in range(first)}, **{k: perm[k - first] for k in self.computing}}
            if any((k in self.node_ops) != (new[k] in self.node_ops) for k in self.computing):
                continue  # a node with an operation field would land on one without
            link = [0] * self.nodes
            for k, src in zip(self.computing, inputs):
                link[new[k] - first] = new[src]
            option = options.get(tuple(link))
            if option is None:
                continue
            if not all(self._offers(bound, new[k], values[self.node_ops[k]]) for k in self.node_ops):
                continue  # an op would land on a node whose field lacks it: try the next numbering
            out = dict(values)
            out[self.links] = option
            for k in self.computing:
                if k in self.node_ops and new[k] in self.node_ops:
                    out[self.node_ops[new[k]]] = values[self.node_ops[k]]
            return out
        return None

    def _offers(self, bound: Mapping[str, Any], node: int, op: Any) -> bool:
        """Whether the operation field of `node` has `op` as an option (as its `index` matches: True is not 1)."""
        slot = bound[self.node_ops[node]]
        try:
            slot.leaf.index(op, slot.name)
        except InvalidArchitectureError:
            return False
        return True

    def values(self, graph: nx.DiGraph, bound: Mapping[str, Any]) -> dict[str, Any]:
        """{field name: value} that `graph` shows, the other decisions' nodes included (the inverse of `graph`;
        InvalidArchitectureError naming a bad node)."""
        cfg: dict[str, Any] = {}

        def wiring_preds(j: int) -> list[int]:
            if j not in graph:
                raise InvalidArchitectureError(f"node {j}", "missing from the graph")
            return sorted(u for u in graph.predecessors(j) if isinstance(u, int) and "op" not in graph.edges[u, j]
                          for _ in range(graph.edges[u, j].get("n", 1)))

        for n, f in self.node_ops.items():
            if n not in graph or "op" not in graph.nodes[n]:
                raise InvalidArchitectureError(f"node {n}", "missing from the graph or without an 'op'")
            cfg[f] = graph.nodes[n]["op"]
        for (i, j), f in self.edge_ops.items():
            cfg[f] = graph.edges[i, j].get("op") if graph.has_edge(i, j) else self.none
        for n, f in self.inputs.items():
            if isinstance(f, str):
                cfg[f] = _option(bound[f], wiring_preds(n), sort=True, where=f"node {n}")
        if self.links is not None:
            preds = [wiring_preds(n) for n in self.computing]
            bad = [n for n, p in zip(self.computing, preds) if len(p) != 1]
            if bad:
                raise InvalidArchitectureError(f"node {bad[0]}", "needs exactly one input")
            cfg[self.links] = _option(bound[self.links], [p[0] for p in preds], False, "links")
        for node, data in graph.nodes(data=True):
            if isinstance(node, tuple) and node[0] == "field":
                cfg[node[1]] = data["value"]
        return cfg

    # ------------------------------------------------------------------ plain data
    def spec(self) -> dict[str, Any]:
        """JSON-ready description (stored in the space's spec, so journals and resume see the declaration)."""
        return {"nodes": self.nodes, "n_inputs": self.n_inputs, "output": self.output, "none": self.none,
                "node_ops": [[n, f] for n, f in self.node_ops.items()],
                "edge_ops": [[i, j, f] for (i, j), f in self.edge_ops.items()],
                "inputs": [[n, list(f) if isinstance(f, (list, tuple)) else f] for n, f in self.inputs.items()],
                "links": self.links, **({"identity": list(self.identity)} if self.identity else {})}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "CellGraph":
        if not isinstance(spec, Mapping) or "nodes" not in spec:
            raise SpaceDefinitionError(f"graph: not a CellGraph description ({spec!r})")
        try:
            return cls(spec["nodes"], {n: f for n, f in spec.get("node_ops", [])},
                       {(i, j): f for i, j, f in spec.get("edge_ops", [])}, {n: f for n, f in spec.get("inputs", [])},
                       spec.get("links"), spec.get("n_inputs", 1), spec.get("output", "loose"),
                       spec.get("none", "none"), spec.get("identity", ()))
        except (TypeError, ValueError) as e:
            raise SpaceDefinitionError(f"graph: not a CellGraph description ({e})") from None


def _indices(value: Any, where: str) -> list[int]:
    """A field's value as input node indices: 2, "2", "0,2", "0-0-1-2" or [0, 2]."""
    if isinstance(value, str):
        parts = [p for p in re.split(r"[\s,;\-]+", value.strip()) if p]
        if parts and all(p.isdigit() for p in parts):
            return [int(p) for p in parts]
    elif isinstance(value, int) and not isinstance(value, bool):
        return [value]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    raise SpaceDefinitionError(f"{where}: {value!r} is not node indices (2, '0,2', '0-0-1-2' or [0, 2])")


def _check_indices(indices: Sequence[int], node: int, where: str) -> None:
    bad = [i for i in indices if not 0 <= i < node]
    if bad or not indices:
        raise SpaceDefinitionError(f"{where}: gives node {node} the input {bad[0] if bad else 'none'}, "
                                   f"not an earlier node (0..{node - 1})")


def _option(slot: Any, indices: list[int], sort: bool, where: str) -> Any:
    """The option of `slot` whose indices are `indices` (sorted first when `sort`: a node's inputs are a set)."""
    for option in slot.leaf.options:
        got = _indices(option, slot.name)
        if (sorted(got) if sort else got) == indices:
            return option
    raise InvalidArchitectureError(where, f"inputs {indices} are not an option of {slot.name!r}")


NO_EDGE = {"none", "zero", "zeros", "zeroize", "null", "noedge", "noconnection"}  # "no edge" spellings, letters only


def _options(bound: Mapping[str, Any], fields: Any) -> list[Any]:
    """The options of `fields` (names of bound slots), each once, in order."""
    out: list[Any] = []
    for f in dict.fromkeys(fields):
        out += [o for o in bound[f].leaf.options if o not in out]
    return out


def show(value: Any) -> str:
    """A value as a graph label: as printed, except that a string which a number or bool prints as ('1', '0.5',
    'True') or which starts with a quote is quoted, so 1 and "1" label differently (other labels are unchanged)."""
    if not isinstance(value, str):
        return str(value)
    return json.dumps(value) if _prints_as_scalar(value) else value


def _prints_as_scalar(text: str) -> bool:
    """Whether `text` is how str() prints some non-string JSON scalar (or starts with a quote, like a quoted one)."""
    if text in ("True", "False", "None") or text.startswith('"'):
        return True
    for kind in (int, float):
        try:
            if str(kind(text)) == text:
                return True
        except (ValueError, OverflowError):
            pass
    return False


def _key_label(node: Any, data: Mapping[str, Any], n_inputs: int) -> str:
    """A node's label in the canonical key, typed and as canonical JSON (an operation named like a field's node,
    or 1 and "1", never read alike): inputs by index, operations, other fields' (name, value), plain nodes."""
    if isinstance(node, int) and node < n_inputs:
        return canonical_json(["input", node])
    if "field" in data:
        return canonical_json(["field", data["field"], data["value"]])
    if "op" in data:
        return canonical_json(["op", data["op"]])
    return canonical_json([data.get("label", "")])


MAX_CANONICAL_LEAVES = 100_000  # numberings `canonical_hash` compares at most (a cell of ~10 nodes needs < 100)


def canonical_hash(graph: nx.DiGraph) -> str:
    """An exact canonical hash of a directed graph whose nodes and edges carry a string `label`: equal for two
    graphs iff they are isomorphic with labels and directions respected (up to a 128-bit hash collision).

    Colour refinement (a node's colour: its label, then the colours and edge labels of its successors and
    predecessors, until stable), then individualisation: one node of the first colour class with several nodes
    is given a colour of its own and refinement runs again, for each node of that class in turn, down to one
    node per colour. Each such numbering spells the graph; the smallest spelling is the canonical form. Nodes
    an automorphism already relates to a tried one are skipped (twins, nodes with the same neighbours, and the
    automorphisms found as two numberings spelling the graph alike). About 0.1 ms on a 6-node cell, 10 ms on 8
    identical parallel chains of 2 nodes (17 nodes); graphs needing more than `MAX_CANONICAL_LEAVES` numberings
    are refused (a SpaceDefinitionError)."""
    nodes = list(graph.nodes)
    n = len(nodes)
    index = {node: i for i, node in enumerate(nodes)}
    labels = [str(graph.nodes[node].get("label", "")) for node in nodes]
    succ: list[list[tuple[int, str]]] = [[] for _ in nodes]
    pred: list[list[tuple[int, str]]] = [[] for _ in nodes]
    for u, v, data in graph.edges(data=True):
        el = str(data.get("label", ""))
        succ[index[u]].append((index[v], el))
        pred[index[v]].append((index[u], el))
    twins = [(tuple(sorted(succ[i])), tuple(sorted(pred[i]))) for i in range(n)]
    best: list[Any] = []  # [smallest spelling, its numbering (nodes in order)]
    automorphisms: list[list[int]] = []
    leaves = [0]

    def refine(colours: list[int]) -> list[int]:
        count = len(set(colours))
        while True:
            sigs = [(colours[i], tuple(sorted((el, colours[j]) for j, el in succ[i])),
                     tuple(sorted((el, colours[j]) for j, el in pred[i]))) for i in range(n)]
            order = {sig: r for r, sig in enumerate(sorted(set(sigs)))}
            colours = [order[sig] for sig in sigs]
            if len(order) == count:
                return colours
            count = len(order)

    def orbit_root(fixed: tuple[int, ...]) -> list[int]:
        """Union-find roots of the orbits of the automorphisms found that fix every node of `fixed`."""
        root = list(range(n))

        def find(x: int) -> int:
            while root[x] != x:
                root[x] = root[root[x]]
                x = root[x]
            return x

        for sigma in automorphisms:
            if all(sigma[f] == f for f in fixed):
                for x in range(n):
                    root[find(x)] = find(sigma[x])
        return [find(x) for x in range(n)]

    def search(colours: list[int], fixed: tuple[int, ...]) -> None:
        colours = refine(colours)
        sizes = Counter(colours)
        target = min((c for c, k in sizes.items() if k > 1), default=None)
        if target is None:
            leaves[0] += 1
            if leaves[0] > MAX_CANONICAL_LEAVES:
                raise SpaceDefinitionError(f"graph: the cell is too symmetric for an exact canonical key (more than "
                                           f"{MAX_CANONICAL_LEAVES} numberings to compare, {n} nodes)")
            order = sorted(range(n), key=colours.__getitem__)
            form = (tuple(labels[i] for i in order),
                    tuple(sorted((colours[i], colours[j], el) for i in range(n) for j, el in succ[i])))
            if not best or form < best[0]:
                best[:] = [form, order]
            elif form == best[0]:  # two numberings spell the graph alike: node best[1][r] <-> order[r]
                sigma = [0] * n
                for a, b in zip(best[1], order):
                    sigma[a] = b
                automorphisms.append(sigma)
            return
        tried: list[int] = []
        seen_twins: set[Any] = set()
        for i in range(n):
            if colours[i] != target or twins[i] in seen_twins:
                continue
            if tried and automorphisms:
                roots = orbit_root(fixed)
                if any(roots[i] == roots[t] for t in tried):
                    continue
            tried.append(i)
            seen_twins.add(twins[i])
            search([2 * c + (j != i) for j, c in enumerate(colours)], fixed + (i,))

    rank = {lab: r for r, lab in enumerate(sorted(set(labels)))}
    search([rank[lab] for lab in labels], ())
    text = canonical_json([list(best[0][0]), [list(e) for e in best[0][1]]]) if best else "[]"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def wl_hash(graph: nx.DiGraph) -> str:
    """Weisfeiler-Lehman hash of a DAG whose nodes and edges carry a `label`, telling edge directions apart: a
    fast fingerprint, not exact (some non-isomorphic graphs share one; `canonical_hash` is exact).

    networkx's directed hash with `edge_attr` writes a node's successors and predecessors one after the other
    with the same edge prefix, so a node with two successors reads like one with a successor and a predecessor:
    1 -skip-> 2, 1 -a-> 3, 2 -b-> 3 hashed like its mirror 1 -skip-> 2, 1 -b-> 3, 2 -a-> 3. Here every edge is a
    node of its own (labelled by the edge) and every label a fixed-length digest, so networkx's `s_` / `p_`
    prefixes keep direction and no two concatenations of labels read alike."""
    def tag(kind: str, label: Any) -> str:
        return hashlib.blake2b(f"{kind}:{label}".encode(), digest_size=16).hexdigest()

    g = nx.DiGraph()
    for n, data in graph.nodes(data=True):
        g.add_node(("node", n), label=tag("node", data.get("label", "")))
    for u, v, data in graph.edges(data=True):
        g.add_node(("edge", u, v), label=tag("edge", data.get("label", "")))
        g.add_edges_from([(("node", u), ("edge", u, v)), (("edge", u, v), ("node", v))])
    with warnings.catch_warnings():  # networkx notes that directed hashes changed in 3.5: keys stay within a run
        warnings.simplefilter("ignore", UserWarning)
        return nx.weisfeiler_lehman_graph_hash(g, node_attr="label", iterations=max(3, g.number_of_nodes()))
