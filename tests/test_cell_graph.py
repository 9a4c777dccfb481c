"""`CellGraph` declarations the space's options contradict are refused at bind time, naming the entry: an
`identity` op no node field offers, a "no edge" option spelled unlike `none=`, a node nothing can feed, two
`inputs` options naming one set. An input read twice is kept as such (from_graph inverts to_graph, and the key
tells it from one read). The canonical key tells edge directions apart."""

from __future__ import annotations

import re

import networkx as nx
import pytest

from nas.errors import SpaceDefinitionError
from nas.spaces import CellGraph, Choice, Space

NB201_EDGES = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
NBG_OPS = ["gcn", "gat", "sage", "skip"]


def nbg_like() -> Space:
    return Space(link=Choice(["0-0-0-0", "0-0-1-2", "0-1-2-3"]), **{f"op{i}": Choice(NBG_OPS) for i in range(1, 5)})


def edge_cell(**kw) -> CellGraph:
    return CellGraph(nodes=3, edge_ops={(i, j): f"edge_{i}_{j}" for i, j in NB201_EDGES}, output="last", **kw)


def edge_space(ops: list) -> Space:
    return Space(**{f"edge_{i}_{j}": Choice(ops, ordered=False) for i, j in NB201_EDGES})


@pytest.mark.parametrize("space, cell, message", [
    (nbg_like(), CellGraph(nodes=4, node_ops={i: f"op{i}" for i in range(1, 5)}, links="link", identity=["Skip"]),
     "graph.identity: 'Skip' is not an option of any node_ops field (options: 'gcn', 'gat', 'sage', 'skip')"),
    (edge_space(NB201_OPS), edge_cell(identity=["skip_connect"]),
     "graph.identity: 'skip_connect' is an operation on edges ('edge_0_1', edge_ops[0, 1])"),
    (Space(src=Choice([0, 1]), op=Choice(["a", "b"])),
     CellGraph(nodes=1, n_inputs=2, inputs={2: "src"}, identity=["a"]),
     "graph.identity: 'a': this cell declares no node_ops field"),
])
def test_identity_must_be_an_option_of_a_node_operation_field(space, cell, message):
    with pytest.raises(SpaceDefinitionError, match=re.escape(message)):
        space.with_graph(cell)


def test_identity_naming_a_node_operation_is_accepted_and_contracts():
    good = nbg_like().with_graph(CellGraph(nodes=4, node_ops={i: f"op{i}" for i in range(1, 5)}, links="link",
                                           identity=["skip"]))
    chain = {"link": "0-1-2-3", "op1": "gcn", "op2": "skip", "op3": "gat", "op4": "sage"}
    assert good.canonical_key(chain) == good.canonical_key({**chain, "op2": "gat", "op3": "skip"})


def test_none_must_be_the_no_edge_option_the_fields_offer():
    zops = ["zero", "skip_connect", "nor_conv_3x3"]
    with pytest.raises(SpaceDefinitionError, match=re.escape(
            "graph.edge_ops[0, 1]: option 'zero' of 'edge_0_1' reads as 'no edge', but the cell removes an edge on "
            "none='none'")):
        edge_space(zops).with_graph(edge_cell())
    with pytest.raises(SpaceDefinitionError, match="option 'None' of 'edge_0_1' .* declare none='None'"):
        edge_space(["None", "conv"]).with_graph(edge_cell())
    with pytest.raises(SpaceDefinitionError, match=re.escape(
            "graph.none: 'zeros' is not an option of any edge_ops field (options: 'zero', 'skip_connect'")):
        edge_space(zops).with_graph(edge_cell(none="zeros"))
    with pytest.raises(SpaceDefinitionError, match="graph.none: 'zero' is set but the cell declares no edge_ops"):
        nbg_like().with_graph(CellGraph(nodes=4, node_ops={i: f"op{i}" for i in range(1, 5)}, links="link",
                                        none="zero"))
    # spelled as declared, 'zero' removes the edge
    declared = edge_space(zops).with_graph(edge_cell(none="zero"))
    assert declared.to_graph({f"edge_{i}_{j}": "zero" for i, j in NB201_EDGES}).number_of_edges() == 0
    # a cell whose every edge is always there (no "no edge" option at all) is legitimate
    always = edge_space(["skip_connect", "conv"]).with_graph(edge_cell())
    assert always.to_graph({f"edge_{i}_{j}": "conv" for i, j in NB201_EDGES}).number_of_edges() == 6


def test_a_node_nothing_can_feed_is_refused_naming_it():
    pairs3 = ["0,1", "0,2", "1,2"]
    cell = Space(node2=Space(inputs=Choice(["0,1"]), op=Choice(["conv", "pool"])),
                 node3=Space(inputs=Choice(pairs3), op=Choice(["conv", "pool"])))
    with pytest.raises(SpaceDefinitionError, match=re.escape(
            "graph: node 4 has no possible input (no inputs, links or edge_ops into it); the computing nodes are "
            "2..4 (nodes=3, n_inputs=2)")):
        cell.with_graph(CellGraph(nodes=3, n_inputs=2, inputs={2: "node2.inputs", 3: "node3.inputs"}, output="all"))
    assert cell.with_graph(CellGraph(nodes=2, n_inputs=2, inputs={2: "node2.inputs", 3: "node3.inputs"},
                                     output="all")).cell_graph.nodes == 2
    # an edge field that only offers `none` feeds nothing either
    space = Space(e01=Choice(["conv", "none"]), e02=Choice(["none"]), e12=Choice(["none"]))
    with pytest.raises(SpaceDefinitionError, match="graph: node 2 has no possible input \\(its edge_ops fields "
                                                   "\\('e02', 'e12'\\) only offer 'none'\\)"):
        space.with_graph(CellGraph(nodes=2, edge_ops={(0, 1): "e01", (0, 2): "e02", (1, 2): "e12"}, output="last"))


def test_an_input_read_twice_is_two_edges_and_round_trips():
    space = Space(in2=Choice(["1", "0,1", "1,1", "0,0"]), op1=Choice(["conv", "pool"]),
                  op2=Choice(["conv", "pool"])).with_graph(
        CellGraph(nodes=2, node_ops={1: "op1", 2: "op2"}, inputs={1: 0, 2: "in2"}))
    a = space.validate({"in2": "1,1", "op1": "conv", "op2": "pool"})
    g = space.to_graph(a)
    assert list(g.in_edges(2)) == [(1, 2)] and g.edges[1, 2]["n"] == 2 and g.edges[1, 2]["label"] == "x2"
    assert space.from_graph(g) == a
    for arch in space:
        assert space.from_graph(space.to_graph(arch)) == arch
    keys = {space.canonical_key({**a, "in2": v}) for v in ("1", "0,1", "1,1", "0,0")}
    assert len(keys) == 4  # node 1 twice is not node 1 once
    # an identity node that reads one node twice does not pass one input on: not contracted
    skip = Space(in2=Choice(["1", "1,1"]), op1=Choice(["conv"]), op2=Choice(["skip", "conv"])).with_graph(
        CellGraph(nodes=2, node_ops={1: "op1", 2: "op2"}, inputs={1: 0, 2: "in2"}, output="last", identity=["skip"]))
    assert skip.canonical_key({"in2": "1,1", "op1": "conv", "op2": "skip"}) != skip.canonical_key(
        {"in2": "1", "op1": "conv", "op2": "skip"})


def test_two_inputs_options_naming_one_set_are_refused():
    space = Space(in2=Choice(["0,1", "1,0"]), op_a=Choice(["conv", "pool"]), op_b=Choice(["conv", "pool"]))
    with pytest.raises(SpaceDefinitionError, match=re.escape(
            "graph.inputs[2]: option '1,0' of 'in2' reads the same inputs as option '0,1' ([0, 1])")):
        space.with_graph(CellGraph(nodes=1, n_inputs=2, inputs={2: "in2"}))


def test_canonical_key_tells_edge_directions_apart():
    """networkx's directed WL hash with edge labels hashes 1 -skip-> 2, 1 -a-> 3, 2 -b-> 3 like its mirror with a and
    b exchanged; the key does not (these two cells' node 1 reads nothing, but the hash must not rely on that)."""
    from nas.spaces.cell_graph import wl_hash

    def mirror(a: str, b: str) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from([(1, {"label": "node"}), (2, {"label": "node"}), (3, {"label": "output"})])
        g.add_edges_from([(1, 2, {"label": "skip"}), (1, 3, {"label": a}), (2, 3, {"label": b})])
        return g

    assert wl_hash(mirror("a", "b")) != wl_hash(mirror("b", "a"))
    assert not nx.is_isomorphic(mirror("a", "b"), mirror("b", "a"), edge_match=lambda x, y: x == y)
    space = edge_space(NB201_OPS).with_graph(edge_cell())
    cell = {f"edge_{i}_{j}": "none" for i, j in NB201_EDGES}
    cell.update(edge_1_2="skip_connect", edge_1_3="nor_conv_3x3", edge_2_3="nor_conv_1x1")
    twin = {**cell, "edge_1_3": "nor_conv_1x1", "edge_2_3": "nor_conv_3x3"}
    assert space.canonical_key(cell) != space.canonical_key(twin)
