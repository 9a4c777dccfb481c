"""Edges of the space language (nas.spaces.Space, params, CellGraph): nested cell declarations, empty repeats
through from_graph, non-finite vectors, scores in from_onehot, identity on the output node of a 'last' cell,
definition errors that name the field, numpy scalars; and ids/fingerprints that journals on disk depend on."""

from __future__ import annotations

import collections
import itertools
import json

import numpy as np
import pytest

from nas.errors import InvalidArchitectureError, SpaceDefinitionError
from nas.spaces import CellGraph, Choice, Conditional, Integer, Repeat, Space, Subset

OPS = ["a", "b", "skip"]
LINKS3 = ["0-0-0", "0-0-1", "0-1-2"]


def _cell(**graph) -> Space:
    return Space(link=Choice(LINKS3), op1=Choice(OPS), op2=Choice(OPS), op3=Choice(OPS)).with_graph(
        CellGraph(nodes=3, node_ops={1: "op1", 2: "op2", 3: "op3"}, links="link", **graph))


def _representative() -> dict[str, Space]:
    net = Space(stem=Integer(16, 64, step=16), op=Choice(["conv", "pool"]),
                kernel=Conditional("op", "conv", Choice([3, 5])), stages=Choice([1, 2]),
                stage=Repeat(count="stages", width=Choice([32, 64]),
                             act=Space(fn=Choice(["relu", "gelu"]), inplace=Choice([True, False]))))
    joint = Space(steps=Subset(n=1000, k=10), skip=Repeat(count=8, on=Choice([True, False])),
                  names=Subset(["a", "b", "c", "d"], k=2), evens=Subset(range(0, 20, 2), k=3))
    mixed = Space(m=Choice([1, True, "1", 2.5]), t=Conditional("m", True, Choice(["x", "y"])),
                  r=Conditional("m", 1, Repeat(count=0, a=Choice([1, 2]))), lr=Choice([0.1, 0.01]))
    loose = Space(link=Choice(LINKS3), op1=Choice(OPS), op2=Choice(OPS), op3=Choice(OPS), lr=Choice([0.1, 0.01])
                  ).with_graph(CellGraph(nodes=3, node_ops={1: "op1", 2: "op2", 3: "op3"}, links="link",
                                         identity=["skip"]))
    edges = Space(e01=Choice(["none", "conv", "skip"]), e02=Choice(["none", "conv"]), e12=Choice(["conv", "pool"]),
                  n=Choice([0, 1])).with_graph(CellGraph(nodes=2, edge_ops={(0, 1): "e01", (0, 2): "e02",
                                                                            (1, 2): "e12"}, output="last"))
    nested = Space(lr=Choice([0.1, 0.01]), cell=Space(link=Choice(LINKS3), op1=Choice(OPS), op2=Choice(OPS),
                                                      op3=Choice(OPS))).with_graph(
        CellGraph(nodes=3, node_ops={1: "cell.op1", 2: "cell.op2", 3: "cell.op3"}, links="cell.link"))
    return dict(net=net, joint=joint, mixed=mixed, loose=loose, last=_cell(output="last", identity=["skip"]),
                edges=edges, nested=nested)


# computed with the code before these fixes: journals on disk hold these fingerprints and ids
FINGERPRINTS = {"net": "47df405d06e3dff4", "joint": "961e6f3fe0421675", "mixed": "1d7285c430f46c35",
                "loose": "e5229fbd79aca54c", "last": "eee6d213f51a4d5c", "edges": "6e6d4759f6db0e1b",
                "nested": "e74868fb267023f1"}
# (space, architecture, id, canonical key); the key is None where it may change (identity on a 'last' output)
ARCHS = [
    ("net", {"kernel": 3, "op": "conv", "stage": [{"act": {"fn": "relu", "inplace": True}, "width": 32}],
             "stages": 1, "stem": 16}, "b1f5ac054c984818", "b1f5ac054c984818"),
    ("net", {"op": "pool", "stage": [{"act": {"fn": "gelu", "inplace": True}, "width": 64}], "stages": 1,
             "stem": 64}, "2ab4a977d4104cae", "2ab4a977d4104cae"),
    ("joint", {"evens": [2, 10, 14], "names": ["b", "c"], "skip": [{"on": v} for v in
                                                                   (False, False, True, False, False, False, False,
                                                                    False)],
               "steps": [5, 8, 28, 79, 124, 297, 401, 420, 478, 536]}, "3b5348af67bcf4c0", "3b5348af67bcf4c0"),
    ("mixed", {"lr": 0.1, "m": 1, "r": []}, "4cde4eaf8047d3ac", "4cde4eaf8047d3ac"),
    ("mixed", {"lr": 0.01, "m": "1"}, "ac464bd9d094c950", "ac464bd9d094c950"),
    ("mixed", {"lr": 0.01, "m": True, "t": "y"}, "4d100922ec6d331d", "4d100922ec6d331d"),
    ("mixed", {"lr": 0.1, "m": 2.5}, "6e6ea1ed949cf8d8", "6e6ea1ed949cf8d8"),
    ("loose", {"link": "0-1-2", "lr": 0.1, "op1": "b", "op2": "b", "op3": "a"}, "878cef2d3e475f37",
     "bbbc14964a439511888b30ab62f5b03b"),
    ("loose", {"link": "0-0-1", "lr": 0.01, "op1": "skip", "op2": "b", "op3": "b"}, "5719d0e7a2928d63",
     "eb9d8a72c925bcc23b51d0d94cfd1e9f"),
    ("last", {"link": "0-0-0", "op1": "a", "op2": "a", "op3": "a"}, "028d5d05d03c9663",
     "0c7c2f3c115bdeb544cc074e156f6b2a"),
    ("last", {"link": "0-1-2", "op1": "b", "op2": "b", "op3": "a"}, "83c73a8edc2a9831",
     "6d3c239026b349c20a60980c504c72cb"),
    ("last", {"link": "0-1-2", "op1": "skip", "op2": "a", "op3": "b"}, "6984122b44e8de4d",
     "e62d4f86b02605239a0a3c6009cecaeb"),
    ("last", {"link": "0-0-0", "op1": "skip", "op2": "b", "op3": "skip"}, "d98ad360ef0524d2", None),
    ("edges", {"e01": "skip", "e02": "conv", "e12": "pool", "n": 0}, "f277b4d60fb68b67",
     "fe115762074afeae7c60d188187b0d70"),
    ("edges", {"e01": "none", "e02": "conv", "e12": "pool", "n": 1}, "626791f595dc06c9",
     "72f2e00c531df2b9dd034f1191b92351"),
    ("nested", {"cell": {"link": "0-0-1", "op1": "b", "op2": "a", "op3": "a"}, "lr": 0.01}, "197a15533a5be1ff",
     "0841da1328c4ba721a6b4a16d446450a"),
    ("nested", {"cell": {"link": "0-1-2", "op1": "b", "op2": "b", "op3": "skip"}, "lr": 0.01}, "e60b4392554a3976",
     "0e0186035987ee609302ec42e7de4d33"),
]


def test_fingerprints_ids_and_keys_of_existing_spaces_are_unchanged():
    spaces = _representative()
    for name, space in spaces.items():
        assert space.fingerprint() == FINGERPRINTS[name], name
        back = Space.from_spec(json.loads(json.dumps(space.to_spec())))
        assert back.fingerprint() == FINGERPRINTS[name], name
    for name, config, aid, key in ARCHS:
        arch = spaces[name].validate(config)
        assert arch.id == aid, (name, config)
        if key is not None:
            assert spaces[name].canonical_key(arch) == key, (name, config)


# ---------------------------------------------------------------- 1: a cell declared on a nested space
@pytest.mark.parametrize("build, where", [
    (lambda c: Space(lr=Choice([0.1, 0.01]), cell=c), "cell.graph"),
    (lambda c: Space(r=Repeat(count=2, block=c)), "r[].graph"),
    (lambda c: Space(n=Choice([1, 2]), r=Repeat(count="n", inner=c)), "r[].inner.graph"),
    (lambda c: Space(f=Choice([True, False]), cell=Conditional("f", True, c)), "cell.graph"),
])
def test_a_cell_declared_on_a_nested_space_is_refused_naming_it(build, where):
    with pytest.raises(SpaceDefinitionError, match="declare it on the top-level space") as e:
        build(_cell())
    assert str(e.value).startswith(where)


def test_a_journal_spec_with_a_nested_cell_is_refused_not_dropped():
    top = _cell()
    spec = {"type": "Space", "fields": {"lr": {"choice": [0.1, 0.01], "ordered": True}, "cell": top.to_spec()}}
    with pytest.raises(SpaceDefinitionError, match=r"^cell\.graph: .*top-level"):
        Space.from_spec(spec)
    spec = {"type": "Space", "fields": {"r": {"repeat": 2, "block": top.to_spec()}}}
    with pytest.raises(SpaceDefinitionError, match=r"^r\[\]\.graph: "):
        Space.from_spec(spec)
    # the supported form: the top-level space declares the cell, naming nested fields by slot name
    ok = _representative()["nested"]
    assert Space.from_spec(json.loads(json.dumps(ok.to_spec()))).fingerprint() == ok.fingerprint()


# ---------------------------------------------------------------- 2: empty repeats through to_graph/from_graph
def test_from_graph_inverts_to_graph_with_empty_repeats():
    cell = CellGraph(nodes=2, node_ops={1: "op1", 2: "op2"}, links="link")
    base = dict(link=Choice(["0-0", "0-1"]), op1=Choice(["a", "b"]), op2=Choice(["a", "b"]))
    spaces = [
        Space(**base, n=Choice([0, 1, 2]), r=Repeat(count="n", k=Choice([1, 2]))).with_graph(cell),
        Space(**base, r=Repeat(count=0, k=Choice([1, 2]))).with_graph(cell),
        Space(**base, s=Space(r=Repeat(count=0, k=Choice([1])))).with_graph(cell),
        Space(**base, f=Choice([True, False]), r=Conditional("f", True, Repeat(count=0, k=Choice([1])))
              ).with_graph(cell),
        Space(**base, n=Choice([1, 2]), r=Repeat(count="n", m=Choice([0, 1]), q=Repeat(count="m", k=Choice([1])))
              ).with_graph(cell),
        Space(f=Choice([True, False]), r=Conditional("f", True, Repeat(count=0, a=Choice([1, 2])))),
        Space(f=Choice([True, False]), n=Choice([0, 1]),
              s=Conditional("f", True, Space(r=Repeat(count=0, a=Choice([1]))))),
    ]
    for space in spaces:
        archs = list(space)
        assert any("[]" in a.to_json() for a in archs)
        for a in archs:
            assert space.from_graph(space.to_graph(a)) == a, a.to_json()


# ---------------------------------------------------------------- 3: from_vector on NaN and inf
@pytest.mark.parametrize("vector, slot", [([np.nan, 0, -1], "a"), ([np.inf, 0, -1], "a"), ([0, 0, -np.inf], "r[0].k"),
                                          ([0, np.nan, -1], "n")])
def test_from_vector_refuses_non_finite_entries_naming_the_slot(vector, slot):
    space = Space(a=Choice([1, 2, 3]), n=Choice([0, 1]), r=Repeat(count="n", k=Choice([3, 5])))
    with pytest.raises(InvalidArchitectureError) as e:
        space.from_vector(vector)
    assert str(e.value).startswith(f"{slot}: ")


# ---------------------------------------------------------------- 4: from_onehot on scores
def test_from_onehot_decodes_scores_whose_inactive_column_wins_on_an_active_slot():
    space = Space(n=Choice([1, 2]), r=Repeat(count="n", k=Choice([3, 5])))
    assert space.from_onehot([0.1, 0.9, 0.8, 0.2, 0.3, 0.2, 0.5]).to_dict() == {"n": 2, "r": [{"k": 3}, {"k": 3}]}
    assert space.from_onehot([0.1, 0.9, 0.8, 0.2, 0.2, 0.3, 0.5]).to_dict() == {"n": 2, "r": [{"k": 3}, {"k": 5}]}
    assert space.from_onehot([0.9, 0.1, 0.8, 0.2, 0.3, 0.2, 0.5]).to_dict() == {"n": 1, "r": [{"k": 3}]}
    cond = Space(op=Choice(["conv", "pool"]), k=Conditional("op", "conv", Choice([3, 5])))
    assert cond.from_onehot([0.6, 0.4, 0.2, 0.1, 0.7]).to_dict() == {"op": "conv", "k": 3}
    for s in (space, cond):  # a one-hot still round-trips
        for a in s:
            assert s.from_onehot(s.to_onehot(a)) == a


# ---------------------------------------------------------------- 5: identity on a 'last' output node
def _network(arch, nodes: int, output: str, identity=("skip",)) -> str:
    """An independent 'same network': the computation as a rooted tree (each node reads one earlier node), identity
    nodes replaced by what they pass on, only what reaches an output kept, with how often each node is an output."""
    reads = [None] + [int(x) for x in arch["link"].split("-")]
    op = {n: arch[f"op{n}"] for n in range(1, nodes + 1)}
    src = {0: 0}
    for n in range(1, nodes + 1):
        src[n] = src[reads[n]] if op[n] in identity else n
    if output == "loose":
        outs = [n for n in range(1, nodes + 1) if n not in set(reads[1:])]
    else:
        outs = list(range(1, nodes + 1)) if output == "all" else [nodes]
    times = collections.Counter(src[n] for n in outs)
    parent = {n: src[reads[n]] for n in range(1, nodes + 1) if op[n] not in identity}
    live: set[int] = set()
    for x in times:
        while x != 0 and x not in live:
            live.add(x)
            x = parent[x]

    def tree(n: int) -> str:
        kids = sorted(tree(c) for c in live if parent[c] == n)
        return f"{op[n] if n else 'x'}#{times.get(n, 0)}[{','.join(kids)}]"

    others = sorted((k, v) for k, v in arch.items() if k != "link" and not k.startswith("op"))
    return f"{tree(0)}|{others}"


@pytest.mark.parametrize("output", ["last", "loose", "all"])
def test_canonical_keys_are_exactly_the_networks(output):
    """Brute force over every wiring of a 4-node cell: two cells share a key iff they are the same network."""
    nodes = 4
    links = ["-".join(map(str, p)) for p in itertools.product(*[range(k) for k in range(1, nodes + 1)])]
    space = Space(link=Choice(links), **{f"op{i}": Choice(OPS) for i in range(1, nodes + 1)}).with_graph(
        CellGraph(nodes=nodes, node_ops={i: f"op{i}" for i in range(1, nodes + 1)}, links="link", identity=["skip"],
                  output=output))
    by_key, by_net = collections.defaultdict(set), collections.defaultdict(set)
    for a in space:
        by_key[space.canonical_key(a)].add(a.id)
        by_net[_network(a, nodes, output)].add(a.id)
    assert {frozenset(v) for v in by_key.values()} == {frozenset(v) for v in by_net.values()}
    if output == "last":
        assert len(by_key) == 31


def test_identity_on_a_last_output_with_other_fields_and_two_inputs():
    space = Space(link=Choice(LINKS3), op1=Choice(OPS), op2=Choice(OPS), op3=Choice(OPS), lr=Choice([1, 2])
                  ).with_graph(CellGraph(nodes=3, node_ops={1: "op1", 2: "op2", 3: "op3"}, links="link",
                                         output="last", identity=["skip"]))
    by_key, by_net = collections.defaultdict(set), collections.defaultdict(set)
    for a in space:
        by_key[space.canonical_key(a)].add(a.id)
        by_net[_network(a, 3, "last")].add(a.id)
    assert {frozenset(v) for v in by_key.values()} == {frozenset(v) for v in by_net.values()}
    x = {"link": "0-0-0", "op1": "b", "op2": "b", "op3": "a", "lr": 1}
    assert space.canonical_key(x) == space.canonical_key({"link": "0-0-1", "op1": "a", "op2": "b", "op3": "skip",
                                                          "lr": 1})
    # two inputs: a skip output passes input 0 or input 1 on, two different networks
    two = Space(in2=Choice(["0", "1"]), op2=Choice(["conv", "skip"])).with_graph(
        CellGraph(nodes=1, n_inputs=2, node_ops={2: "op2"}, inputs={2: "in2"}, output="last", identity=["skip"]))
    keys = {two.canonical_key(a) for a in two}
    assert len(keys) == 4


# ---------------------------------------------------------------- 6: definition errors name the field
@pytest.mark.parametrize("build, message", [
    (lambda: Space(w=Choice([1, 2]), steps=Subset(n=0, k=1)), "steps: Subset n must be a positive int"),
    (lambda: Space(w=Choice([1, 2]), steps=Subset(n=True, k=1)), "steps: Subset n must be a positive int"),
    (lambda: Space(w=Choice([1, 2]), steps=Subset([1, 2], k=1, n=2)), "steps: Subset takes its items"),
    (lambda: Space(w=Choice([1, 2]), steps=Subset(k=1)), "steps: Subset takes its items"),
    (lambda: Space(b=Repeat(2, block=Space(a=Choice([1])), c=Choice([2]))),
     "b: Repeat takes either block= or keyword fields"),
    (lambda: Space(n=Choice([1]), b=Repeat("n", inner=Repeat(1, steps=Subset(n=-3, k=1)))),
     "b[].inner[].steps: Subset n must be a positive int"),
])
def test_constructor_mistakes_name_the_field(build, message):
    with pytest.raises(SpaceDefinitionError) as e:
        build()
    assert str(e.value).startswith(message)


# ---------------------------------------------------------------- 7: numpy scalars
def test_numpy_scalars_mean_their_python_twins():
    assert Space(r=Repeat(count=np.int64(2), k=Choice([1, 2]))).fingerprint() == \
        Space(r=Repeat(count=2, k=Choice([1, 2]))).fingerprint()
    assert Space(r=Repeat(count=np.str_("n"), k=Choice([1])), n=Choice([1, 2])).size() == 2
    assert Subset(n=np.int64(5), k=np.int64(2)) == Subset(n=5, k=2)
    assert Space(s=Subset(n=np.int64(5), k=np.int64(2))).fingerprint() == Space(s=Subset(n=5, k=2)).fingerprint()
    space = Space(s=Subset(["a", "b", "c"], k=2), t=Subset(n=4, k=2))
    arch = space.validate({"s": [np.str_("a"), np.str_("c")], "t": [np.int64(1), np.int64(3)]})
    assert arch == space.validate({"s": ["a", "c"], "t": [1, 3]})
    with pytest.raises(InvalidArchitectureError, match="item np.True_ is not one of|item True is not one of"):
        space.validate({"s": ["a", "c"], "t": [np.bool_(True), 3]})
