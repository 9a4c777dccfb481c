"""A plain `Space` with its cell declared (`CellGraph`) draws the same DAG as the built-in cell spaces, round-trips
through its spec and a resumed search, refuses a wrong declaration naming the field, and gives graph predictors
the wiring they need: they fit (no refusal) and rank a real table better than on the undeclared space."""

from __future__ import annotations

import json
import re

import networkx as nx
import numpy as np
import pytest
from scipy.stats import kendalltau

import nas
from nas.errors import ConfigError, SpaceDefinitionError
from nas.predictors import make_predictor
from nas.predictors.embedding import wl_features
from nas.spaces import Architecture, CellGraph, Choice, Conditional, Space
from nas.spaces.nasbench_graph import LINKS, OPS, NASBenchGraphSpace, plain_space

NBG_CELL = CellGraph(nodes=4, node_ops={i: f"op{i}" for i in range(1, 5)}, links="link")
NB201_EDGES = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]

pytestmark = pytest.mark.usefixtures("one_thread")


def same_labels(a: dict, b: dict) -> bool:
    return a.get("label") == b.get("label")


def nb201_plain() -> Space:
    return Space(**{f"edge_{i}_{j}": Choice(NB201_OPS) for i, j in NB201_EDGES}).with_graph(
        CellGraph(nodes=3, edge_ops={(i, j): f"edge_{i}_{j}" for i, j in NB201_EDGES}, output="last"))


def test_declared_nas_bench_graph_is_the_built_in_dag():
    builtin, declared = NASBenchGraphSpace(), plain_space().with_graph(NBG_CELL)
    rng = np.random.default_rng(0)
    for _ in range(60):
        a = builtin.sample(rng)
        g, h = builtin.to_graph(a), declared.to_graph(a)
        assert nx.is_isomorphic(g, h, node_match=same_labels, edge_match=same_labels)
        assert wl_features(g) == wl_features(h)  # what the WL kernel reads: identical
        assert declared.from_graph(h) == a
    # the wiring is read from `link`: node 4 reads node 2, nodes 3 and 4 feed the output
    h = declared.to_graph({"link": "0-0-1-2", "op1": "gcn", "op2": "gat", "op3": "sage", "op4": "fc"})
    assert sorted(h.edges, key=str) == sorted([(0, 1), (0, 2), (1, 3), (2, 4), (3, "output"), (4, "output")], key=str)
    assert [h.nodes[n]["label"] for n in range(5)] == ["input", "gcn", "gat", "sage", "fc"]
    assert plain_space().to_graph(a).number_of_nodes() == 1  # undeclared: one node, as before


def test_declared_nb201_is_the_built_in_dag_with_none_edges_removed():
    from nas.spaces.cell import NasBench201Space

    builtin, declared = NasBench201Space(), nb201_plain()
    rng = np.random.default_rng(1)
    for _ in range(60):
        a = builtin.sample(rng)
        assert nx.is_isomorphic(builtin.to_graph(a), declared.to_graph(a), node_match=same_labels,
                                edge_match=same_labels)
        assert declared.from_graph(declared.to_graph(a)) == a
    g = declared.to_graph({f"edge_{i}_{j}": "none" if j == 3 else "skip_connect" for i, j in NB201_EDGES})
    assert set(g.edges) == {(0, 1), (0, 2), (1, 2)} and g.nodes[3]["label"] == "output"


def test_inputs_fields_nested_paths_and_undeclared_fields():
    space = Space(lr=Choice([0.1, 0.01]), cell=Space(
        in2=Choice(["0", "1"]), in3=Choice(["0,1", "0,2", "1,2"]), op2=Choice(["a", "b"]), op3=Choice(["a", "b"])))
    space = space.with_graph(CellGraph(nodes=3, node_ops={2: "cell.op2", 3: "cell.op3"},
                                       inputs={1: 0, 2: "cell.in2", 3: "cell.in3"}, output="all"))
    a = {"lr": 0.01, "cell": {"in2": "1", "in3": "0,2", "op2": "b", "op3": "a"}}
    g = space.to_graph(a)
    assert {(0, 1), (1, 2), (0, 3), (2, 3)} <= set(g.edges)
    assert {u for u in g.predecessors("output")} == {1, 2, 3, ("field", "lr")}  # 'all': every node is concatenated
    assert g.nodes[("field", "lr")]["label"] == "lr=0.01"  # an undeclared decision is a node of its own
    assert space.from_graph(g) == space.validate(a)
    for arch in space:
        assert space.from_graph(space.to_graph(arch)) == arch


def test_declaration_round_trips_through_the_spec_and_a_resumed_search(tmp_path):
    declared = plain_space().with_graph(NBG_CELL)
    rebuilt = Space.from_spec(json.loads(json.dumps(declared.to_spec())))
    assert rebuilt.cell_graph == declared.cell_graph and rebuilt.fingerprint() == declared.fingerprint()
    assert declared.fingerprint() != plain_space().fingerprint()  # the encoding differs: another search
    assert plain_space().to_spec().get("graph") is None  # undeclared specs (and fingerprints) are unchanged
    a = declared.sample(np.random.default_rng(3))
    assert nx.is_isomorphic(rebuilt.to_graph(a), declared.to_graph(a), node_match=same_labels)
    assert "with_graph(CellGraph(nodes=4" in repr(declared)

    def score(arch):
        return {"score": float(OPS.index(arch["op1"]) + LINKS.index(arch["link"]))}

    first = nas.search(declared, score, {"score": "max"}, budget=4, seed=0, workdir=tmp_path / "w")
    resumed = nas.search(Space.from_spec(declared.to_spec()), score, {"score": "max"}, budget=6, seed=0,
                         workdir=tmp_path / "w")
    assert first.used == 4 and resumed.used == 6 and resumed.trials[:4] == first.trials


@pytest.mark.parametrize("cell, field", [
    (CellGraph(nodes=4, node_ops={1: "op9"}, links="link"), "graph.node_ops[1]: 'op9' is not a field"),
    (CellGraph(nodes=4, node_ops={1: "op1"}, links="op2"), "graph.links: option 'gat' of 'op2'"),
    (CellGraph(nodes=3, node_ops={1: "op1"}, links="link"), "gives 4 inputs for 3 computing nodes"),
    (CellGraph(nodes=4, inputs={2: "link"}), "graph.inputs[2]: option '0-0-1-2' of 'link': gives node 2 the input 2"),
])
def test_bad_declarations_name_the_field(cell, field):
    with pytest.raises(SpaceDefinitionError, match=re.escape(field)):
        plain_space().with_graph(cell)


@pytest.mark.parametrize("kwargs, message", [
    ({"nodes": 4, "node_ops": {5: "op1"}}, r"graph.node_ops: node 5 is not a computing node \(1..4\)"),
    ({"nodes": 4, "node_ops": {0: "op1"}}, r"graph.node_ops: node 0 is not a computing node"),
    ({"nodes": 3, "edge_ops": {(2, 1): "e"}}, r"graph.edge_ops: edge 2->1 does not go to a later node"),
    ({"nodes": 3, "edge_ops": {(0, 9): "e"}}, r"graph.edge_ops: node 9"),
    ({"nodes": 3, "inputs": {2: 2}}, r"graph.inputs\[2\]: gives node 2 the input 2"),
    ({"nodes": 3, "inputs": {2: "a"}, "links": "b"}, r"graph.inputs: give a node's inputs either"),
    ({"nodes": 3, "inputs": {2: "a"}, "edge_ops": {(1, 2): "e"}}, r"graph.edge_ops: node 2 gets its inputs"),
    ({"nodes": 0}, r"graph.nodes: expected a positive int"),
    ({"nodes": 2, "output": "sum"}, r"graph.output: expected one of"),
    ({"nodes": 2, "node_ops": {1: 3}}, r"graph.node_ops\[1\]: expected a field name"),
])
def test_malformed_declarations_name_the_entry(kwargs, message):
    with pytest.raises(SpaceDefinitionError, match=message):
        CellGraph(**kwargs)


def test_declarations_on_fields_some_architectures_lack_or_on_built_in_graphs_are_refused():
    space = Space(kind=Choice(["a", "b"]), op=Conditional("kind", ["a"], Choice(["x", "y"])))
    with pytest.raises(SpaceDefinitionError, match="graph.node_ops\\[1\\]: 'op' is not a decision every architecture"):
        space.with_graph(CellGraph(nodes=1, node_ops={1: "op"}))
    with pytest.raises(SpaceDefinitionError, match="NASBenchGraphSpace draws its own graph"):
        NASBenchGraphSpace().with_graph(NBG_CELL)
    with pytest.raises(SpaceDefinitionError, match="graph: not a CellGraph description"):
        Space.from_spec({**plain_space().to_spec(), "graph": {"nodes": 4, "node_ops": [[1]]}})


def test_graph_predictors_use_the_declared_dag(cora):
    """On cora rows, N = 100 and 500 held-out: wl-gp on the declared space ranks better than on the undeclared one in
    each seed (measured over 10 seeds: +0.04 to +0.11 tau, declared tau 0.27-0.41; the thresholds keep a margin),
    and the GCN, which refuses the undeclared space, fits the declared one (10 seeds: tau 0.30-0.40)."""
    declared, plain = plain_space().with_graph(NBG_CELL), plain_space()
    keys = list(cora.rows)
    with pytest.raises(ConfigError, match="one node"):
        make_predictor("gcn", plain, 0)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        rows = [keys[i] for i in rng.choice(len(keys), 600, replace=False)]
        archs = [Architecture(dict(zip(plain.fields, k))) for k in rows]
        y = np.array([cora.rows[k]["valid_acc"] for k in rows])
        tau = {name: kendalltau(make_predictor("wl-gp", space, seed).fit(archs[:100], y[:100])
                                .predict(archs[100:])[0], y[100:])[0]
               for name, space in (("declared", declared), ("plain", plain))}
        assert tau["declared"] > 0.25 and tau["declared"] > tau["plain"], (seed, tau)
        if seed == 2:
            gcn = make_predictor("gcn", declared, seed, members=2, epochs=60).fit(archs[:100], y[:100])
            assert kendalltau(gcn.predict(archs[100:])[0], y[100:])[0] > 0.25


def test_path_encoding_of_a_declared_cell_counts_input_to_output_paths_and_ignores_renumbering():
    from nas.predictors.encodings import PATH_WIDTH, encoder, paths

    declared = plain_space().with_graph(NBG_CELL)
    a = {"link": "0-0-1-2", "op1": "gcn", "op2": "gat", "op3": "sage", "op4": "fc"}
    assert paths(declared.to_graph(a)) == {"input>gcn>sage>output": 1, "input>gat>fc>output": 1}
    twin = {"link": "0-0-1-2", "op1": "gat", "op2": "gcn", "op3": "fc", "op4": "sage"}  # the same network renumbered
    edges = {"edge_0_1": "nor_conv_3x3", "edge_0_2": "none", "edge_1_2": "skip_connect", "edge_0_3": "none",
             "edge_1_3": "none", "edge_2_3": "avg_pool_3x3"}
    assert paths(nb201_plain().to_graph(edges)) == {"input>nor_conv_3x3>node>skip_connect>node>avg_pool_3x3>output": 1}
    code = encoder(declared, "path")([declared.validate(a), declared.validate(twin)])
    assert code.shape == (2, PATH_WIDTH) and code[0].sum() == 2 and np.array_equal(code[0], code[1])
    assert not np.array_equal(code[0], encoder(declared, "path")([declared.validate({**a, "op4": "gin"})])[0])


def test_gcn_reads_operations_on_edges_of_a_declared_cell():
    """Edge operations become nodes for the GCN (`ops_as_nodes`). On an edge-operation target (weights per op,
    edges into the output count double), 80 training architectures, 220 held out: tau 0.69-0.82 over seeds 0-4;
    before, reading node labels only, 0.35-0.40 (2 members, 100 epochs, seeds 0-2)."""
    from nas.predictors.graph import ops_as_nodes

    space = nb201_plain()
    g = ops_as_nodes(space.to_graph({f"edge_{i}_{j}": "none" if j == 3 else "nor_conv_3x3" for i, j in NB201_EDGES}))
    assert g.nodes[("edge", 1, 2)]["label"] == "nor_conv_3x3" and set(g.predecessors(2)) == {("edge", 0, 2),
                                                                                           ("edge", 1, 2)}
    weight = {"none": 0.0, "skip_connect": 0.3, "nor_conv_1x1": 0.6, "nor_conv_3x3": 1.0, "avg_pool_3x3": 0.2}
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(300)]
    y = np.array([sum(weight[a[f"edge_{i}_{j}"]] * (1.0 if j == 3 else 0.5) for i, j in NB201_EDGES) for a in archs])
    gcn = make_predictor("gcn", space, 0, members=1, epochs=60).fit(archs[:80], y[:80])
    assert kendalltau(gcn.predict(archs[80:])[0], y[80:])[0] > 0.6


def test_declared_identity_ops_give_the_built_in_canonical_key_partition(nbg_dir):
    """With `identity=["skip"]` declared, the plain space's canonical keys split NAS-Bench-Graph's rows exactly as
    the built-in space's do (each key one benchmark canonical id), so deduplication sees the same twins."""
    import csv

    declared, builtin = plain_space(graph=True), NASBenchGraphSpace()
    assert declared.cell_graph.identity == ("skip",)
    rows = list(csv.DictReader(open(nbg_dir / "cora.csv", newline="")))
    rng = np.random.default_rng(0)
    ids_of: dict[str, set] = {}
    pairs = set()
    for i in rng.choice(len(rows), 3000, replace=False):
        r = rows[i]
        cfg = {k: r[k] for k in ("link", "op1", "op2", "op3", "op4")}
        key = declared.canonical_key(cfg)
        ids_of.setdefault(key, set()).add(r["canonical_id"])
        pairs.add((key, builtin.canonical_key(cfg)))
    assert all(len(ids) == 1 for ids in ids_of.values())  # no key spans two benchmark ids
    assert len({k for k, _ in pairs}) == len(pairs) == len({b for _, b in pairs})  # the same partition
    # the two twins the contraction is for: a skip anywhere on a chain, and a skip feeding the output
    twin = {"link": "0-1-2-3", "op1": "gcn", "op2": "skip", "op3": "gat", "op4": "sage"}
    assert declared.canonical_key(twin) == declared.canonical_key({**twin, "op2": "gat", "op3": "skip"})
    assert declared.canonical_key(twin) != declared.canonical_key({**twin, "op2": "gat", "op3": "gat"})
    assert plain_space().canonical_key(twin) == plain_space().validate(twin).id  # undeclared: the id


def test_canonical_key_drops_dead_nodes_and_tells_inputs_apart():
    nb201 = nb201_plain()
    base = {f"edge_{i}_{j}": "nor_conv_3x3" for i, j in NB201_EDGES}
    # node 1 reaches the output only through edges 1->2 and 1->3: cut both, and its own input no longer matters
    dead = {**base, "edge_1_2": "none", "edge_1_3": "none"}
    assert nb201.canonical_key(dead) == nb201.canonical_key({**dead, "edge_0_1": "avg_pool_3x3"})
    assert nb201.canonical_key(base) != nb201.canonical_key({**base, "edge_0_1": "avg_pool_3x3"})
    # no identity declared: a skip edge is an operation like any other
    assert nb201.canonical_key(base) != nb201.canonical_key({**base, "edge_0_1": "skip_connect"})
    # a two-input cell reading input 0 differs from one reading input 1 (both inputs are labelled 'input')
    two = Space(src=Choice([0, 1]), op=Choice(["a", "b"])).with_graph(
        CellGraph(nodes=1, n_inputs=2, node_ops={2: "op"}, inputs={2: "src"}))
    assert two.canonical_key({"src": 0, "op": "a"}) != two.canonical_key({"src": 1, "op": "a"})


def test_identity_declaration_round_trips_and_bad_values_are_named():
    declared = plain_space(graph=True)
    rebuilt = Space.from_spec(json.loads(json.dumps(declared.to_spec())))
    assert rebuilt.cell_graph.identity == ("skip",) and rebuilt.fingerprint() == declared.fingerprint()
    assert "identity" not in NBG_CELL.spec()  # specs (and fingerprints) of cells without it are unchanged
    with pytest.raises(SpaceDefinitionError, match="graph.identity: expected a list of operation names"):
        CellGraph(nodes=4, identity="skip")


def test_a_search_on_the_declared_space_never_evaluates_a_twin(cora):
    """Evolution's mutations make skip twins often; declared, each is answered from the cache instead of spending
    an evaluation (undeclared, the same search evaluates some networks twice). Twins by the built-in space's key
    (the table itself merges a few more, such as a skip from the input to the output: not the same function)."""
    builtin = NASBenchGraphSpace()

    def evaluated(space: Space) -> list[str]:
        seen: list[str] = []

        def evaluate(arch):
            seen.append(builtin.canonical_key(arch))
            return cora(arch)

        nas.search(space, evaluate, {"valid_acc": "max"}, strategy="evolution", budget=150, seed=0,
                   executor=nas.SimulatedClockExecutor())
        return seen

    declared, undeclared = evaluated(plain_space(graph=True)), evaluated(plain_space())
    assert len(declared) == 150 and len(set(declared)) == 150
    assert len(set(undeclared)) < len(undeclared)


def test_declared_links_mutate_one_node_input_like_the_built_in_space():
    """A `links` field names whole wiring patterns, so a label change rewires every node at once; declared, mutation
    and neighbours change one node's input and renumber into a pattern, moving operations along, exactly the
    built-in space's graph edits (compared by its canonical keys)."""
    builtin, declared = NASBenchGraphSpace(), plain_space(graph=True)
    rng = np.random.default_rng(2)
    for _ in range(40):
        a = builtin.sample(rng)
        assert ({builtin.canonical_key(n) for n in declared.neighbours(a)}
                == {builtin.canonical_key(n) for n in builtin.neighbours(a)})
    a = {"link": "0-0-1-2", "op1": "gcn", "op2": "gat", "op3": "sage", "op4": "fc"}
    counts = {}
    for space in (builtin, declared):
        draws = [builtin.canonical_key(space.mutate(a, rng)) for _ in range(4000)]
        counts[space] = {k: draws.count(k) / len(draws) for k in set(draws)}
    assert counts[builtin].keys() == counts[declared].keys()
    assert max(abs(counts[builtin][k] - counts[declared][k]) for k in counts[builtin]) < 0.03
    # undeclared, a `link` change is a label change: most such children rewire more than one node
    plain = plain_space()
    rewired = [plain.mutate(a, rng) for _ in range(400)]
    rewired = [c for c in rewired if c["link"] != a["link"]]
    assert not {builtin.canonical_key(c) for c in rewired} <= {builtin.canonical_key(n) for n in builtin.neighbours(a)}


def test_rewiring_keeps_to_the_declared_patterns():
    """A user's `links` field listing only some patterns: edits with no numbering among them are left out, and
    mutation falls back to a label change when a node has none."""
    links = ["0-0-0-0", "0-0-1-2", "0-1-2-3"]
    space = Space(link=Choice(links), op1=Choice(["a", "b"]), op2=Choice(["a", "b"]), op3=Choice(["a", "b"]),
                  op4=Choice(["a", "b"])).with_graph(
        CellGraph(nodes=4, node_ops={i: f"op{i}" for i in range(1, 5)}, links="link"))
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = space.sample(rng)
        child = space.mutate(a, rng)
        assert child != a and child["link"] in links
        assert all(n["link"] in links for n in space.neighbours(a))


def test_a_deduplicate_snapshot_with_keys_of_an_older_release_still_answers_twins():
    """Keys are recomputed on load (a snapshot taken before the space had canonical keys stored ids as keys), so a
    twin of a stored result is answered from the cache, not evaluated again."""
    from nas.objectives import Problem
    from nas.strategies import Deduplicate, TrialResult, make_strategy

    space, problem = plain_space(graph=True), Problem.make({"valid_acc": "max"})
    old = Deduplicate(make_strategy("random", space, problem, seed=0))
    a = space.validate({"link": "0-1-2-3", "op1": "gcn", "op2": "skip", "op3": "gat", "op4": "sage"})
    old.tell(a, TrialResult({"valid_acc": 0.8}))
    state = json.loads(json.dumps(old.state_dict()))
    state["results"][0][0] = a.id  # what an older release stored
    new = Deduplicate(make_strategy("random", space, problem, seed=0))
    new.load_state_dict(state)
    twin = space.validate({**a.to_dict(), "op2": "gat", "op3": "skip"})
    assert not new._admit(twin)  # answered from the cache
