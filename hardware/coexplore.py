"""Accelerator co-exploration after NASAIC (Yang et al., DAC 2020): two tasks' GNNs and their accelerator, searched jointly.

The joint space (a plain `nas.spaces.Space`) holds, for tasks a and b, a NAS-Bench-Graph architecture
(`a_link`, `a_op1`..`a_op4`, `b_link`, ...), the dataflow template of each task's sub-accelerator
(`a_template`, `b_template`), the split of a PE budget and of the DRAM bandwidth (`pe_split`, `bw_split`:
the fraction given to a; b gets the rest) and each sub-accelerator's SRAM buffer (`a_buffer_kb`,
`b_buffer_kb`). Each task runs on its own sub-accelerator (`nas.hardware.accelerator`); `hardware(arch)`
returns latency_a_ms, latency_b_ms, energy_a_mj, energy_b_mj, energy_mj (both tasks) and area_mm2, and
`accuracy(tables)` looks the two architectures up in their NAS-Bench-Graph tables.

NAS-Bench-Graph records accuracy and a measured GPU latency, not layer shapes, so an architecture is mapped to
GEMMs analytically (an approximation; `OP_LAYERS` and docs/hardware.md give every op's mapping). A graph of n
nodes, E directed edges and F input features; d = ceil((E + n) / n) neighbours per node with the self-loop,
d' = ceil(E / n) without; hidden width h = 256 (the benchmark's); 1-byte operands. A node whose input is the
raw features (directly or through skips) has input width c = F, every other c = h. A sparse aggregation
(sum over neighbours of c-wide rows) is a GEMM m = n, k = d, n = c whose B is the gathered n x c feature
matrix (`Gemm.b_elements`): it has the MACs of the sparse product (n d c) and reads the features once when
they fit in the buffer. Per-edge softmax (gat) and element-wise work are not charged. The leaves' sum goes to
a classifier n x h x classes; a skip chain from the raw features that reaches the output is first projected
(n x F x h).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError, InvalidArchitectureError, check_count, check_number
from nas.evaluators import Evaluator, cheap
from nas.hardware.accelerator import Gemm, HeterogeneousAccelerator, SubAccelerator, Technology, template
from nas.objectives import Constraint
from nas.spaces import Choice, Space
from nas.spaces.nasbench_graph import LINKS, OPS

TASKS = ("a", "b")
ARCH_FIELDS = ("link", "op1", "op2", "op3", "op4")
HIDDEN = 256
FRACTIONS = (0.25, 0.375, 0.5, 0.625, 0.75)
BUFFERS_KB = (128, 256, 512, 1024)


@dataclass(frozen=True)
class GraphData:
    """The size of a node-classification graph: nodes, input features, classes, directed edges (no self-loops)."""

    name: str
    nodes: int
    features: int
    classes: int
    edges: int

    def degree(self, self_loops: bool = True) -> int:
        """Neighbours aggregated per node, rounded up: ceil((E + n) / n) with self-loops, ceil(E / n) without."""
        return -(-(self.edges + (self.nodes if self_loops else 0)) // self.nodes)


# Planetoid splits as in PyG (Yang et al., 2016; Kipf & Welling, 2017): nodes, features, classes, directed edges.
GRAPHS = {g.name: g for g in (GraphData("cora", 2708, 1433, 7, 10556), GraphData("citeseer", 3327, 3703, 6, 9104),
                              GraphData("pubmed", 19717, 500, 3, 88648))}


# ---------------------------------------------------------------------------------------------- op -> GEMMs
def _dense(g: GraphData, c_in: int, c_out: int, name: str, b: int, count: int = 1) -> Gemm:
    return Gemm(g.nodes, c_out, c_in, b, count, name)


def _aggregate(g: GraphData, width: int, name: str, b: int, self_loops: bool = True) -> Gemm:
    return Gemm(g.nodes, width, g.degree(self_loops), b, 1, name, b_elements=g.nodes * width)


def _gcn(g: GraphData, c: int, h: int, name: str, b: int) -> list[Gemm]:
    """GCNConv: X W, then the normalised aggregation at width h."""
    return [_dense(g, c, h, f"{name}.lin", b), _aggregate(g, h, f"{name}.agg", b)]


def _gat(g: GraphData, c: int, h: int, name: str, b: int) -> list[Gemm]:
    """GATConv, 2 heads concatenated: X W, the attention logits (source and target per head), the aggregation."""
    return [_dense(g, c, h, f"{name}.lin", b), _dense(g, h, 4, f"{name}.att", b), _aggregate(g, h, f"{name}.agg", b)]


def _gin(g: GraphData, c: int, h: int, name: str, b: int) -> list[Gemm]:
    """GINConv: (1 + eps) x + sum of neighbours at width c, then a 2-layer MLP."""
    return [_aggregate(g, c, f"{name}.agg", b), _dense(g, c, h, f"{name}.mlp1", b), _dense(g, h, h, f"{name}.mlp2", b)]


def _cheb(g: GraphData, c: int, h: int, name: str, b: int) -> list[Gemm]:
    """ChebConv, K = 2: T1 = L x (one aggregation at width c), then T0 W0 + T1 W1."""
    return [_aggregate(g, c, f"{name}.agg", b), _dense(g, c, h, f"{name}.lin", b, count=2)]


def _two_linear(g: GraphData, c: int, h: int, name: str, b: int) -> list[Gemm]:
    """SAGEConv (mean) and GraphConv (sum): aggregation of neighbours at width c, then lin(agg) + lin(x)."""
    return [_aggregate(g, c, f"{name}.agg", b, self_loops=False), _dense(g, c, h, f"{name}.lin", b, count=2)]


def _arma(g: GraphData, c: int, h: int, name: str, b: int) -> list[Gemm]:
    """ARMAConv, 1 stack, 1 layer: L (X W) + X V."""
    return [_dense(g, c, h, f"{name}.init", b), _aggregate(g, h, f"{name}.agg", b), _dense(g, c, h, f"{name}.root", b)]


def _fc(g: GraphData, c: int, h: int, name: str, b: int) -> list[Gemm]:
    return [_dense(g, c, h, f"{name}.lin", b)]


def _skip(g: GraphData, c: int, h: int, name: str, b: int) -> list[Gemm]:
    return []


OP_LAYERS: dict[str, Callable[[GraphData, int, int, str, int], list[Gemm]]] = {
    "gcn": _gcn, "gat": _gat, "gin": _gin, "cheb": _cheb, "sage": _two_linear, "graph": _two_linear, "arma": _arma,
    "fc": _fc, "skip": _skip}
"""Each NAS-Bench-Graph operation as GEMMs: fn(graph, input width, hidden width, layer name, bytes) -> layers."""


def nasbench_graph_workloads(arch: Mapping[str, Any], graph: GraphData, hidden: int = HIDDEN,
                             bytes_per_element: int = 1) -> list[Gemm]:
    """The GEMMs of one NAS-Bench-Graph architecture ({link, op1..op4}) on `graph`, in execution order."""
    return list(_workloads(tuple(arch[f] for f in ARCH_FIELDS), graph, hidden,
                           bytes_per_element))


@functools.lru_cache(maxsize=4096)
def _workloads(key: tuple[str, ...], graph: GraphData, hidden: int, b: int) -> tuple[Gemm, ...]:
    link, *ops = key
    if link not in LINKS:
        raise ConfigError(f"link: expected one of {', '.join(LINKS)}, got {link!r}")
    inputs = [int(x) for x in link.split("-")]
    width = [graph.features]  # width[i]: output width of node i (0 = the raw features)
    out: list[Gemm] = []
    for i, (src, op) in enumerate(zip(inputs, ops), start=1):
        if op not in OP_LAYERS:
            raise ConfigError(f"op{i}: expected one of {', '.join(OP_LAYERS)}, got {op!r}")
        out += OP_LAYERS[op](graph, width[src], hidden, f"node{i}.{op}", b)
        width.append(width[src] if op == "skip" else hidden)
    leaves = [i for i in range(1, 5) if i not in inputs]
    if any(width[i] != hidden for i in leaves):
        out.append(Gemm(graph.nodes, hidden, graph.features, b, 1, "output.project"))
    out.append(Gemm(graph.nodes, graph.classes, hidden, b, 1, "output.classifier"))
    return tuple(out)


# ---------------------------------------------------------------------------------------------- the joint problem
@dataclass(frozen=True)
class CoExploration:
    """Two tasks (NAS-Bench-Graph on `graphs[0]` as task a, `graphs[1]` as b) on a two-way heterogeneous accelerator.

    `pe_budget` PEs and `dram_bandwidth` bytes/s are split by `pe_split` / `bw_split` (a's fraction); each
    sub-accelerator's array is `array_shape(PEs)`; `templates`, `pe_fractions`, `bw_fractions` and
    `buffers_kb` are the hardware choices of the space.
    """

    graphs: tuple[GraphData, GraphData] = (GRAPHS["cora"], GRAPHS["citeseer"])
    pe_budget: int = 4096
    dram_bandwidth: float = 25.6e9
    tech: Technology = Technology()
    templates: tuple[str, ...] = ("ws", "os")
    pe_fractions: tuple[float, ...] = FRACTIONS
    bw_fractions: tuple[float, ...] = FRACTIONS
    buffers_kb: tuple[int, ...] = BUFFERS_KB
    hidden: int = HIDDEN
    bytes_per_element: int = 1

    def __post_init__(self) -> None:
        if len(self.graphs) != 2 or not all(isinstance(g, GraphData) for g in self.graphs):
            raise ConfigError(f"graphs: expected two GraphData (tasks a and b), got {self.graphs!r}")
        check_count(self.pe_budget, "pe_budget", " (PEs)")
        check_count(self.hidden, "hidden", " (GNN hidden width)")
        check_count(self.bytes_per_element, "bytes_per_element", " (bytes per operand)")
        check_number(self.dram_bandwidth, "dram_bandwidth", unit=" (bytes/s)")
        if not isinstance(self.tech, Technology):
            raise ConfigError(f"tech: expected a Technology, got {self.tech!r}")
        for t in self.templates:
            template(t)
        for name in ("pe_fractions", "bw_fractions"):
            values = getattr(self, name)
            if not values or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1
                                 for f in values):
                raise ConfigError(f"{name}: expected fractions in (0, 1), got {values!r}")
        if not self.buffers_kb or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0
                                      for x in self.buffers_kb):
            raise ConfigError(f"buffers_kb: expected positive sizes in KB, got {self.buffers_kb!r}")
        for f in self.pe_fractions:  # every split must give both arrays a valid shape
            for pes in (round(f * self.pe_budget), self.pe_budget - round(f * self.pe_budget)):
                try:
                    SubAccelerator.with_pes("ws", pes, 0.5, 1)
                except ConfigError as e:
                    raise ConfigError(f"pe_fractions: {f} of pe_budget {self.pe_budget} leaves an array of {pes} "
                                      f"PEs ({e})") from None

    # -- the space
    def space(self) -> Space:
        """The joint space: both architectures, both templates, the PE and bandwidth splits, both buffers.

        As in `NASBenchGraphSpace`, each task's architectures include the 9 all-skip networks (no GNN layer) that
        NAS-Bench-Graph has no rows for: `accuracy`'s lookup fails them with a LookupError saying so (a failed
        trial that counts against the budget, as in the recorded experiment)."""
        fields: dict[str, Any] = {}
        for t in TASKS:
            fields[f"{t}_link"] = Choice(list(LINKS), ordered=False)
            for i in range(1, 5):
                fields[f"{t}_op{i}"] = Choice(list(OPS), ordered=False)
        for t in TASKS:
            fields[f"{t}_template"] = Choice(list(self.templates), ordered=False)
        fields["pe_split"] = Choice(list(self.pe_fractions))
        fields["bw_split"] = Choice(list(self.bw_fractions))
        for t in TASKS:
            fields[f"{t}_buffer_kb"] = Choice(list(self.buffers_kb))
        return Space(fields)

    def architecture_space(self) -> Space:
        """The joint space without its hardware fields: both architectures only (for NAS first, hardware first)."""
        keep = {f"{t}_{f}" for t in TASKS for f in ARCH_FIELDS}
        return Space({k: v for k, v in self.space().fields.items() if k in keep})

    def hardware_designs(self) -> list[dict[str, Any]]:
        """Every hardware choice of the space (templates x splits x buffers), for exhaustive fitting."""
        keys = ("a_template", "b_template", "pe_split", "bw_split", "a_buffer_kb", "b_buffer_kb")
        grid = itertools.product(self.templates, self.templates, self.pe_fractions, self.bw_fractions,
                                 self.buffers_kb, self.buffers_kb)
        return [dict(zip(keys, values)) for values in grid]

    @staticmethod
    def task_arch(arch: Mapping[str, Any], task: str) -> dict[str, str]:
        """Task `task`'s NAS-Bench-Graph architecture {link, op1..op4} out of a joint architecture."""
        return {f: arch[f"{task}_{f}"] for f in ARCH_FIELDS}

    # -- the hardware
    def workloads(self, arch: Mapping[str, Any], task: str) -> list[Gemm]:
        graph = self.graphs[TASKS.index(task)]
        return nasbench_graph_workloads(self.task_arch(arch, task), graph, self.hidden, self.bytes_per_element)

    def accelerator(self, arch: Mapping[str, Any]) -> HeterogeneousAccelerator:
        """The heterogeneous accelerator `arch` describes: sub-accelerator 0 runs task a, 1 runs task b."""
        pes_a = round(arch["pe_split"] * self.pe_budget)
        subs = (SubAccelerator.with_pes(arch["a_template"], pes_a, arch["bw_split"], arch["a_buffer_kb"]),
                SubAccelerator.with_pes(arch["b_template"], self.pe_budget - pes_a, 1 - arch["bw_split"],
                                        arch["b_buffer_kb"]))
        return HeterogeneousAccelerator(subs, self.pe_budget, self.dram_bandwidth, self.tech)

    def hardware(self, arch: Mapping[str, Any]) -> dict[str, float]:
        """latency_a_ms, latency_b_ms, energy_a_mj, energy_b_mj, energy_mj, area_mm2 of a joint architecture."""
        report = self.accelerator(arch).run({t: (i, self.workloads(arch, t)) for i, t in enumerate(TASKS)})
        return report.metrics()

    def accuracy(self, tables: Sequence[Callable[[Mapping[str, Any]], Mapping[str, float]]]) -> Callable[..., dict]:
        """An evaluator: valid_acc_a/b, test_acc_a/b and their means valid_acc, test_acc, from the two tables
        (`tables[0]` for task a: e.g. `nas.tabular.nas_bench_graph("cora")`)."""
        if len(tables) != 2 or not all(callable(t) for t in tables):
            raise ConfigError(f"tables: expected two lookups (task a, task b), got {tables!r}")
        for i, (table, graph) in enumerate(zip(tables, self.graphs)):
            name = getattr(table, "name", None)  # a NAS-Bench-Graph table is named "nas-bench-graph/<data set>"
            dataset = name.rsplit("/", 1)[-1] if isinstance(name, str) else None
            if dataset in GRAPHS and graph.name in GRAPHS and dataset != graph.name:
                raise ConfigError(f"tables[{i}]: {name!r} is a table of {dataset!r}, but task {TASKS[i]} is priced on "
                                  f"graphs[{i}] {graph.name!r}; give the tables in the order of `graphs`")

        def evaluate(arch: Mapping[str, Any]) -> dict[str, float]:
            out: dict[str, float] = {}
            for t, table in zip(TASKS, tables):
                net = self.task_arch(arch, t)
                try:
                    row = table(net)
                except LookupError as e:
                    if any(net[f"op{i}"] != "skip" for i in range(1, 5)):
                        raise
                    raise LookupError(f"task {t}: every op is skip, a network without a GNN layer, and "
                                      f"NAS-Bench-Graph has no rows for the 9 all-skip networks ({e})") from None
                out[f"valid_acc_{t}"], out[f"test_acc_{t}"] = float(row["valid_acc"]), float(row["test_acc"])
            out["valid_acc"] = (out["valid_acc_a"] + out["valid_acc_b"]) / 2
            out["test_acc"] = (out["test_acc_a"] + out["test_acc_b"]) / 2
            return out

        return evaluate

    def evaluator(self, tables: Sequence[Callable[[Mapping[str, Any]], Mapping[str, float]]],
                  design: Mapping[str, Any] | None = None) -> Callable[[Mapping[str, Any]], dict[str, float]]:
        """One evaluator, hardware and accuracy together: every proposal costs one evaluation and the strategy
        sees how far an infeasible one is from the specs. With `design` (the hardware fields, as in
        `hardware_designs()`), the evaluated architectures hold only the a_* / b_* fields (`architecture_space`)
        and run on that fixed hardware."""
        accuracy = self.accuracy(tables)
        fixed = self._design(design) if design is not None else {}

        def evaluate(arch: Mapping[str, Any]) -> dict[str, float]:
            full = {**arch, **fixed}
            return {**self.hardware(full), **accuracy(full)}

        return evaluate

    def _design(self, design: Mapping[str, Any]) -> dict[str, Any]:
        """`design` checked against the space's hardware fields (every one given, each one of its options);
        ConfigError naming the bad field otherwise."""
        nets = self.architecture_space().fields
        keep = {k: v for k, v in self.space().fields.items() if k not in nets}
        try:
            return dict(Space(keep).validate(design))
        except InvalidArchitectureError as e:
            raise ConfigError(f"design: {e}") from None

    def evaluators(self, tables: Sequence[Callable[[Mapping[str, Any]], Mapping[str, float]]]) -> list[Evaluator]:
        """[cheap hardware model, table lookup]: `nas.search` checks the hardware specs before the (in real life,
        expensive) accuracy evaluation and spends no budget on designs that break them. Where feasible designs
        are rare (under ~1 % of the space), the search stops after 1000 consecutive rejections before it
        learns anything: use `evaluator` there."""
        return [cheap(self.hardware), Evaluator(self.accuracy(tables))]

    def fit_hardware(self, archs: Mapping[str, Any], constraints: Sequence[str | Constraint],
                     objective: str = "energy_mj") -> tuple[dict[str, Any] | None, dict[str, float] | None, int]:
        """Exhaustive hardware search for fixed architectures (`archs` holds the a_* and b_* fields): the feasible
        design with the least `objective` (None when none meets `constraints`), its metrics, and how many of
        the `len(hardware_designs())` designs are feasible. A metric name that `hardware` does not return, in
        `objective` or a constraint, is a ConfigError naming it, as is an architecture field that is missing."""
        cons = [c if isinstance(c, Constraint) else Constraint.parse(c) for c in constraints]
        space = self.architecture_space()
        nets = {k: v for k, v in archs.items() if k in space.fields}
        try:
            space.validate(nets)
        except InvalidArchitectureError as e:
            raise ConfigError(f"archs: {e}") from None
        designs = self.hardware_designs()
        known = sorted(self.hardware({**nets, **designs[0]}))
        if objective not in known:
            raise ConfigError(f"objective: {objective!r} is not a hardware metric (known: {', '.join(known)})")
        for c in cons:
            if c.metric not in known:
                raise ConfigError(f"constraints: '{c}' names {c.metric!r}, not a hardware metric "
                                  f"(known: {', '.join(known)})")
        best: tuple[float, dict[str, Any], dict[str, float]] | None = None
        feasible = 0
        for design in designs:
            arch = {**nets, **design}
            metrics = self.hardware(arch)
            if all(c.satisfied(metrics) for c in cons):
                feasible += 1
                if best is None or metrics[objective] < best[0]:
                    best = (metrics[objective], arch, metrics)
        return (best[1], best[2], feasible) if best else (None, None, feasible)

    def violation(self, metrics: Mapping[str, float], constraints: Sequence[str | Constraint]) -> dict[str, float]:
        """Each broken constraint with how far beyond its bound the metric is, relative to the bound."""
        cons = [c if isinstance(c, Constraint) else Constraint.parse(c) for c in constraints]
        return {str(c): c.violation(metrics) / abs(c.bound) if c.bound else math.inf
                for c in cons if not c.satisfied(metrics)}
