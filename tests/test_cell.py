"""Cell spaces (NAS-Bench-201, DARTS): strings/genotypes, graphs, networks, counts, and the supernet and its hooks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from tests.docs import python_blocks

from nas.errors import ConfigError, InvalidArchitectureError, SpaceDefinitionError
from nas.spaces.cell import (NB201_EDGES, BinaryGates, DartsSpace, MixedOp, MixWeights, NasBench201Space,
                             ReLUConvBN)

pytestmark = pytest.mark.usefixtures("one_thread")
DOC = Path(__file__).resolve().parents[1] / "docs" / "cell.md"
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
DARTS_V2 = {
    "normal": [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
               ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
               ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
}


def nb201(**kw) -> NasBench201Space:
    return NasBench201Space(**{"channels": 4, "cells_per_stage": 1, "stages": 2, **kw})


def darts(**kw) -> DartsSpace:
    return DartsSpace(**{"channels": 4, "cells_per_stage": 1, "stages": 2, **kw})


def one_hot_mixing(space, arch):
    """A mixing that puts weight 1 on `arch`'s op of every edge (0 elsewhere, `none` on unchosen DARTS edges)."""
    ops = space.edge_ops(arch)

    def mixing_for(supernet):
        def mix(alpha):
            kind = next(k for k, a in supernet.alphas.items() if a is alpha)
            w = torch.zeros_like(alpha)
            for e, (i, j) in enumerate(supernet.edges):
                w[e, supernet.ops.index(ops[kind].get(f"{i}_{j}", "none"))] = 1.0
            return MixWeights(w, w.bool())
        return mix
    return mixing_for


# ------------------------------------------------------------------------------------------- NAS-Bench-201
def test_nb201_string_round_trip_and_size():
    space = nb201()
    assert space.size() == 5 ** 6 and len(space.slots()) == 6
    arch = space.from_string(EXAMPLE)
    assert dict(arch) == {"edge_0_1": "nor_conv_3x3", "edge_0_2": "nor_conv_3x3", "edge_1_2": "avg_pool_3x3",
                          "edge_0_3": "skip_connect", "edge_1_3": "nor_conv_3x3", "edge_2_3": "skip_connect"}
    assert space.to_string(arch) == EXAMPLE
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = space.sample(rng)
        assert space.from_string(space.to_string(a)) == a
        assert space.from_vector(space.to_vector(a)) == a
        assert space.validate(space.mutate(a, rng)) != a


@pytest.mark.parametrize("text, where", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "node 2"),
    ("|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "node 1"),
    ("|conv~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "edge_0_1"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "arch_str"),
])
def test_nb201_bad_strings_name_the_node(text, where):
    with pytest.raises(InvalidArchitectureError) as err:
        nb201().from_string(text)
    assert err.value.path == where


def test_nb201_graph_is_the_cell_dag():
    space = nb201()
    arch = space.from_string("|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
    g = space.to_graph(arch)
    assert sorted(g.edges) == [(0, 2), (0, 3), (2, 3)]  # `none` edges are absent
    assert g.edges[0, 2]["op"] == "nor_conv_3x3" and g.nodes[3]["label"] == "output"
    assert space.from_graph(g) == arch
    rng = np.random.default_rng(1)
    for _ in range(30):
        a = space.sample(rng)
        assert space.from_graph(space.to_graph(a)) == a


def test_nb201_param_count_follows_the_ops():
    """conv3x3 -> conv1x1 on one edge removes 8 c^2 weights in every cell of width c."""
    space = NasBench201Space(channels=4, cells_per_stage=1, stages=3)
    a = space.from_string(EXAMPLE)
    b = space.validate({**a.to_dict(), "edge_0_1": "nor_conv_1x1"})
    pa, pb = space.count(a)["params"], space.count(b)["params"]
    assert pa - pb == 8 * (4 ** 2 + 8 ** 2 + 16 ** 2)
    assert pa == sum(p.numel() for p in space.build(a).parameters())
    flops_none = space.count(space.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))["flops"]
    assert 0 < flops_none < space.count(a)["flops"]


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 40), (3, 7, 7)])
def test_nb201_random_networks_forward_backward(shape):
    space = nb201(input_shape=shape, num_classes=5)
    rng = np.random.default_rng(2)
    torch.manual_seed(0)
    for _ in range(3):
        arch = space.sample(rng)
        net = space.build(arch)
        out = net(space.example_input(arch, 3))
        assert out.shape == (3, 5)
        out.square().sum().backward()
        assert net.stem[0].weight.grad is not None and net.stem[0].weight.grad.abs().sum() > 0
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------------------- DARTS
def test_darts_size_genotype_and_graph():
    space = darts()
    assert space.size() == (1 * 3 * 6 * 10 * 7 ** 8) ** 2
    arch = space.from_genotype(DARTS_V2)
    assert arch["normal"]["node4"] == {"inputs": "0,1", "op_a": "skip_connect", "op_b": "sep_conv_3x3"}
    assert arch["reduce"]["node5"] == {"inputs": "1,2", "op_a": "max_pool_3x3", "op_b": "skip_connect"}
    g = space.to_genotype(arch)
    assert g["normal_concat"] == [2, 3, 4, 5]
    for kind in ("normal", "reduce"):  # same (op, input) pairs per node, listed by input
        for n in range(4):
            assert sorted(g[kind][2 * n:2 * n + 2], key=lambda p: p[1]) == \
                sorted(DARTS_V2[kind][2 * n:2 * n + 2], key=lambda p: p[1])
    graph = space.to_graph(arch)
    assert graph.in_degree(("normal", 5)) == 2 and graph.edges[("normal", 2), ("normal", 5)]["op"] == "dil_conv_3x3"
    assert graph.in_degree(("normal", "out")) == 4
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = space.sample(rng)
        assert space.from_graph(space.to_graph(a)) == a
        assert space.from_genotype(space.to_genotype(a)) == a


def test_darts_graph_tells_the_two_cell_inputs_apart():
    """Inputs 0 and 1 are labelled c_{k-2} and c_{k-1} (both were "input"): cells that differ only in reading the
    cell before last or the last one had one path code, and often one WL hash; the canonical key (its own exact
    form) is unchanged, and the new labels only split what the old ones merged."""
    import networkx as nx

    from nas.predictors.embedding import wl_features
    from nas.predictors.encodings import path_code

    space = darts()
    g = space.to_graph(space.from_genotype(DARTS_V2))
    assert [g.nodes[("reduce", i)]["label"] for i in (0, 1)] == ["reduce:c_{k-2}", "reduce:c_{k-1}"]
    base = space.from_genotype(DARTS_V2).to_dict()
    base["normal"]["node2"] = {"inputs": "0,1", "op_a": "sep_conv_3x3", "op_b": "sep_conv_3x3"}
    base["normal"]["node3"] = {"inputs": "0,2", "op_a": "skip_connect", "op_b": "max_pool_3x3"}
    other = json.loads(json.dumps(base))
    other["normal"]["node3"]["inputs"] = "1,2"  # reads the last cell instead of the one before
    assert space.canonical_key(base) != space.canonical_key(other)
    assert space.canonical_key(base) == "62ee49333772b13f"  # unchanged by the relabelling (recorded before it)
    assert not np.array_equal(path_code(space, base), path_code(space, other))
    assert wl_features(space.to_graph(base)) != wl_features(space.to_graph(other))

    def old_labels(graph):
        for kind in space.KINDS:
            for i in (0, 1):
                graph.nodes[(kind, i)]["label"] = f"{kind}:input"
        return graph

    small = darts(nodes=2, ops=("skip_connect", "max_pool_3x3"))
    reduce = small.sample(np.random.default_rng(7))["reduce"]
    groups: dict[str, set[str]] = {}  # new WL hash -> old WL hashes: never two (a refinement)
    keys = set()
    for cell in small.fields["normal"]:  # all 48 normal cells
        keys.add(small.canonical_key({"normal": cell, "reduce": reduce}))
        new_g = small.to_graph({"normal": cell, "reduce": reduce})
        new_h = nx.weisfeiler_lehman_graph_hash(new_g, node_attr="label", edge_attr="label")
        groups.setdefault(new_h, set()).add(
            nx.weisfeiler_lehman_graph_hash(old_labels(new_g.copy()), node_attr="label", edge_attr="label"))
    assert all(len(old) == 1 for old in groups.values())
    assert len(groups) == len(keys) == 42 and len(set().union(*groups.values())) == 23  # one WL class a network


def test_darts_bad_input_names_the_field():
    bad = {"normal": list(DARTS_V2["normal"]), "reduce": DARTS_V2["reduce"]}
    bad["normal"][3] = ("sep_conv_3x3", 0)  # node 3 takes input 0 twice
    with pytest.raises(InvalidArchitectureError) as err:
        darts().from_genotype(bad)
    assert err.value.path == "normal.node3.inputs"
    with pytest.raises(SpaceDefinitionError, match="ops"):
        DartsSpace(ops=["none", "sep_conv_3x3"])
    with pytest.raises(ConfigError, match="input_shape"):
        DartsSpace(input_shape=(8, 8, 8, 8))


def test_darts_random_networks_forward_backward():
    rng = np.random.default_rng(4)
    torch.manual_seed(0)
    for shape in [(1, 8, 8), (1, 40)]:
        space = darts(input_shape=shape)
        arch = space.sample(rng)
        net = space.build(arch)
        out = net(space.example_input(arch, 2))
        assert out.shape == (2, 10)
        out.sum().backward()
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert space.count(arch)["params"] == sum(p.numel() for p in net.parameters())


# ------------------------------------------------------------------------------------------- supernet
@pytest.mark.parametrize("make", [nb201, darts])
def test_supernet_parameters_forward_backward(make):
    space = make()
    torch.manual_seed(0)
    net = space.supernet()
    arch_params, weights = net.arch_parameters(), net.weight_parameters()
    assert {id(p) for p in arch_params}.isdisjoint(id(p) for p in weights)
    assert len(arch_params) + len(weights) == len(list(net.parameters()))
    n_ops = len(net.ops)
    assert all(p.shape == (len(net.edges), n_ops) for p in arch_params)
    assert len(net.edges) == (6 if isinstance(space, NasBench201Space) else 14)
    out = net(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in arch_params)


def test_derive_follows_the_alphas():
    space = nb201()
    net = space.supernet()
    target = space.from_string(EXAMPLE)
    with torch.no_grad():
        for e, (i, j) in enumerate(NB201_EDGES):
            net.alphas["cell"][e, space.ops.index(target[f"edge_{i}_{j}"])] += 1.0
    assert net.derive() == target

    dspace = darts()
    dnet = dspace.supernet()
    darch = dspace.from_genotype(DARTS_V2)
    ops = dspace.edge_ops(darch)
    with torch.no_grad():
        for kind in ("normal", "reduce"):
            dnet.alphas[kind][:, 0] += 5.0  # `none` is strongest everywhere but never chosen
            for e, (i, k) in enumerate(dnet.edges):
                if f"{i}_{k}" in ops[kind]:
                    dnet.alphas[kind][e, dnet.ops.index(ops[kind][f"{i}_{k}"])] += 1.0
    assert dnet.derive() == darch


@pytest.mark.parametrize("make", [nb201, darts])
def test_subnet_equals_supernet_with_one_hot_weights(make):
    space = make()
    rng = np.random.default_rng(5)
    torch.manual_seed(0)
    for _ in range(2):
        arch = space.sample(rng)
        net = space.supernet()
        net.mixing = one_hot_mixing(space, arch)(net)
        x = torch.randn(4, 1, 8, 8)
        net.train()
        for _ in range(2):
            net(torch.randn(4, 1, 8, 8))  # move BN statistics away from their initial values
        sub = net.subnet(arch)
        torch.testing.assert_close(sub.train()(x), net.train()(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sub.eval()(x), net.eval()(x), atol=1e-5, rtol=1e-5)
        fresh = space.build(arch)
        fresh.load_state_dict(sub.state_dict())  # the subnet is the standalone network's structure


def test_binary_gates_compute_only_the_sampled_path():
    space = nb201(ops=["skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"])  # no all-`none` cells
    torch.manual_seed(0)
    sampled = []
    gates = BinaryGates(torch.Generator().manual_seed(1))

    def mixing(alpha):
        sampled.append(gates(alpha))
        return sampled[-1]

    net = space.supernet(mixing=mixing)
    out = net(torch.randn(2, 1, 8, 8))
    (out * torch.randn_like(out)).sum().backward()
    mix = sampled[0]
    assert mix.active.sum(dim=-1).tolist() == [1] * 6
    assert torch.equal(mix.weights.detach(), mix.active.float())
    assert net.alphas["cell"].grad.abs().sum() > 0
    for cell in (net.layers[0], net.layers[2]):
        for e, (i, j) in enumerate(NB201_EDGES):
            for o, op in enumerate(cell.edges[f"{i}_{j}"].ops):
                for p in op.parameters():
                    assert (p.grad is not None) == bool(mix.active[e, o])


def test_pc_darts_partial_channels_and_edge_normalisation():
    space = darts(channels=8)
    torch.manual_seed(0)
    net = space.supernet(partial_channels=4, edge_normalisation=True)
    assert len(net.arch_parameters()) == 4
    mixed = next(m for m in net.modules() if isinstance(m, MixedOp))
    conv = next(m for m in mixed.modules() if isinstance(m, nn.Conv2d))
    assert conv.in_channels == 2  # 8 channels / K=4
    scales = net.edge_scales("normal")
    for node in range(2, 6):
        idx = [e for e, (_, k) in enumerate(net.edges) if k == node]
        assert float(scales[idx].sum().detach()) == pytest.approx(1.0)
    out = net(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert net.betas["normal"].grad.abs().sum() > 0
    assert space.validate(net.derive()) == net.derive()
    with pytest.raises(ConfigError, match="partial_channels"):
        net.subnet(net.derive())
    with pytest.raises(ConfigError, match="partial_channels"):
        space.supernet(partial_channels=3)


def test_mixed_op_partial_channels_keeps_bypass_channels():
    op = MixedOp(["skip_connect"], 8, 1, 2, partial_channels=4)
    x = torch.randn(1, 8, 3, 3)
    y = op(x, torch.tensor([0.5]))
    # channel shuffle with 4 groups of 2: processed channels (0, 1) land at 0 and 4
    assert torch.allclose(y[:, [0, 4]], 0.5 * x[:, :2])
    assert torch.allclose(y[:, [1, 5, 2, 6, 3, 7]], x[:, 2:])
    assert isinstance(ReLUConvBN(2, 2, 3, 1, 1)[1], nn.Conv1d)


# ------------------------------------------------------------------------------------------- learning
@pytest.mark.slow
def test_nb201_network_learns_digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16.0
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    space = NasBench201Space(channels=8, cells_per_stage=1)
    net = space.build(space.from_string(EXAMPLE))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    perm = torch.randperm(len(y))
    train, test = perm[:1500], perm[1500:]
    for _ in range(4):
        for idx in train.split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(x[test]).argmax(1) == y[test]).float().mean().item()
    assert acc > 0.85


# ------------------------------------------------------------------------------------------- docs
def test_doc_examples_run():
    blocks = python_blocks(DOC)
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {"__name__": "__doc_example__"})


def test_cell_spaces_round_trip_through_the_model_spec_json():
    """`nas export` rebuilds a search's space from model.json: a non-default width, depth, input or op list must
    survive, or the recorded weights would not fit the rebuilt networks."""
    from nas.modelspec import space_from_json, space_to_json

    for space in (NasBench201Space(input_shape=(1, 40), channels=4, cells_per_stage=1, stages=1,
                                   ops=["skip_connect", "nor_conv_3x3"]),
                  DartsSpace(input_shape=(1, 8, 8), channels=8, cells_per_stage=1, stages=2, nodes=3, stem_multiplier=2)):
        rebuilt = space_from_json(json.loads(json.dumps(space_to_json(space))))
        arch = space.sample(np.random.default_rng(0))
        assert type(rebuilt) is type(space) and rebuilt.to_config() == space.to_config()
        assert {k: v.shape for k, v in rebuilt.build(arch).state_dict().items()} == \
            {k: v.shape for k, v in space.build(arch).state_dict().items()}


def nb201_class(arch) -> tuple:
    """The NB201 cell's isomorphism / dead-node class, found independently of any hash: `none` edges and the
    edges of nodes that cannot reach node 3 dropped, then the smaller of the cell and its 1 <-> 2 relabelling
    (the only one the fixed input and output allow, valid when no edge joins nodes 1 and 2)."""
    edges = {(i, j): arch[f"edge_{i}_{j}"] for i, j in NB201_EDGES if arch[f"edge_{i}_{j}"] != "none"}
    alive = {3}
    for n in (2, 1, 0):
        if any((n, m) in edges for m in alive):
            alive.add(n)
    edges = {(i, j): op for (i, j), op in edges.items() if i in alive and j in alive}
    forms = [tuple(sorted(edges.items()))]
    if (1, 2) not in edges:
        swap = {0: 0, 1: 2, 2: 1, 3: 3}
        forms.append(tuple(sorted(((swap[i], swap[j]), op) for (i, j), op in edges.items())))
    return min(forms)


def test_nb201_canonical_key_is_one_per_isomorphism_and_dead_node_class():
    """Twins (nodes 1 and 2 swapped, dead nodes) share a key, as the cell declared field by field does (the same
    key); a seeded sample, with a twin of each cell added, splits by key exactly as by class: no key holds two
    different networks (checked once over all 15,625 cells too: 11,155 keys, 11,155 classes)."""
    from nas.spaces import CellGraph, Choice, Space

    space = nb201()
    a = {"edge_0_1": "nor_conv_3x3", "edge_0_2": "avg_pool_3x3", "edge_1_2": "none", "edge_0_3": "none",
         "edge_1_3": "nor_conv_1x1", "edge_2_3": "skip_connect"}
    swapped = {**a, "edge_0_1": "avg_pool_3x3", "edge_0_2": "nor_conv_3x3", "edge_1_3": "skip_connect",
               "edge_2_3": "nor_conv_1x1"}
    assert space.canonical_key(a) == space.canonical_key(swapped)
    dead = {**a, "edge_1_3": "none"}  # node 1 no longer reaches the output: its input edge does not matter
    assert space.canonical_key(dead) == space.canonical_key({**dead, "edge_0_1": "skip_connect"})
    assert space.canonical_key(a) != space.canonical_key({**a, "edge_0_1": "skip_connect"})
    declared = Space(**{f"edge_{i}_{j}": Choice(list(space.ops), ordered=False) for i, j in NB201_EDGES}).with_graph(
        CellGraph(nodes=3, edge_ops={(i, j): f"edge_{i}_{j}" for i, j in NB201_EDGES}, output="last"))
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(1500)]
    archs += [space.mutate(x, rng) for x in archs[:300]]
    archs += [{**x, "edge_0_1": x["edge_0_2"], "edge_0_2": x["edge_0_1"], "edge_1_3": x["edge_2_3"],
               "edge_2_3": x["edge_1_3"]} for x in archs[:300] if x["edge_1_2"] == "none"]  # swap twins
    classes_of: dict[str, set] = {}
    keys_of: dict[tuple, set] = {}
    for x in archs:
        k, c = space.canonical_key(x), nb201_class(x)
        assert k == declared.canonical_key(x)
        classes_of.setdefault(k, set()).add(c)
        keys_of.setdefault(c, set()).add(k)
    assert all(len(c) == 1 for c in classes_of.values())  # no key merges two networks
    assert all(len(k) == 1 for k in keys_of.values())  # no class is split
    assert len(keys_of) < len({json.dumps(dict(x), sort_keys=True) for x in archs})  # twins were there to merge


def test_nb201_search_never_evaluates_a_twin():
    import nas

    space = nb201()
    seen: list[tuple] = []

    def evaluate(arch):
        seen.append(nb201_class(arch))
        return {"acc": float(len(seen))}

    nas.search(space, evaluate, {"acc": "max"}, strategy="random", budget=200, seed=0)
    assert len(seen) == 200 and len(set(seen)) == 200


def darts_renumbered(cell: dict, order: list[int]) -> dict:
    """`cell` (a DARTS cell config) with intermediate node k renamed order[k - 2] (inputs 0 and 1 stay)."""
    new = {0: 0, 1: 1, **{k: order[k - 2] for k in range(2, len(cell) + 2)}}
    out = {}
    for k in range(2, len(cell) + 2):
        node = cell[f"node{k}"]
        ins = [int(t) for t in node["inputs"].split(",")]
        (i, op_i), (j, op_j) = sorted(zip((new[v] for v in ins), (node["op_a"], node["op_b"])))
        out[f"node{new[k]}"] = {"inputs": f"{i},{j}", "op_a": op_i, "op_b": op_j}
    return out


@pytest.mark.filterwarnings("ignore:The hashes produced for directed graphs changed")
def test_darts_canonical_key_merges_isomorphic_cells_only():
    """Renumbering a cell's intermediate nodes (where each still reads earlier ones) keeps the key; any other
    change does not. The greedy canonical form equals the brute-force one (the smallest over every renumbering)
    on a seeded sample, and its classes are exactly networkx's isomorphism classes on every 3-node cell over
    two ops (inputs 0 and 1 told apart)."""
    import itertools

    import networkx as nx

    from nas.spaces.cell import _darts_nodes, darts_canonical

    space = darts()
    arch = space.from_genotype(DARTS_V2)
    normal = arch["normal"]
    # DARTS_V2's normal nodes 2 and 3 both read inputs 0 and 1: exchanging them is one network
    twin = {**arch.to_dict(), "normal": darts_renumbered(normal, [3, 2, 4, 5])}
    assert twin != arch.to_dict() and space.canonical_key(twin) == space.canonical_key(arch)
    assert space.canonical_key({**arch.to_dict(), "normal": arch["reduce"], "reduce": normal}) != \
        space.canonical_key(arch)
    other = {**arch.to_dict(), "normal": {**normal, "node5": {**normal["node5"], "op_b": "sep_conv_5x5"}}}
    assert space.canonical_key(other) != space.canonical_key(arch)

    def brute(nodes):  # the smallest form over every renumbering in which each node reads earlier ones
        forms = []
        for perm in itertools.permutations(range(2, len(nodes) + 2)):
            new = {0: 0, 1: 1, **dict(zip(range(2, len(nodes) + 2), perm))}
            if all(new[i] < new[k] for k, (ins, _) in enumerate(nodes, start=2) for i in ins):
                form = [()] * len(nodes)
                for k, (ins, ops) in enumerate(nodes, start=2):
                    form[new[k] - 2] = tuple(sorted((new[i], op) for i, op in zip(ins, ops)))
                forms.append(form)
        return [[list(p) for p in sig] for sig in min(forms)]

    rng = np.random.default_rng(0)
    for nodes in (4, 5):
        big = darts(nodes=nodes, ops=("skip_connect", "max_pool_3x3"))
        for _ in range(300):
            cell = big.sample(rng)["normal"]
            assert darts_canonical(_darts_nodes(cell)) == brute(_darts_nodes(cell))
            order = list(rng.permutation(range(2, nodes + 2)))
            renamed = darts_renumbered(cell, order)
            if all(int(t) < int(k[4:]) for k, v in renamed.items() for t in v["inputs"].split(",")):
                assert darts_canonical(_darts_nodes(renamed)) == darts_canonical(_darts_nodes(cell))

    small = darts(nodes=3, ops=("skip_connect", "max_pool_3x3"))

    def graph(cell):
        g = small.to_graph({"normal": cell, "reduce": cell})
        g = g.subgraph([n for n in g if n[0] == "normal"]).copy()
        for i in (0, 1):
            g.nodes[("normal", i)]["label"] = f"input{i}"
        return g

    def same(x, y):
        return x["label"] == y["label"]

    forms: dict[str, list] = {}
    for cell in small.fields["normal"]:
        forms.setdefault(json.dumps(darts_canonical(_darts_nodes(cell))), []).append(graph(cell))
    assert sum(map(len, forms.values())) == 1152 and len(forms) == 712
    for graphs in forms.values():
        assert all(nx.is_isomorphic(graphs[0], g, node_match=same, edge_match=same) for g in graphs[1:])
    by_hash: dict[str, list] = {}
    for graphs in forms.values():
        by_hash.setdefault(nx.weisfeiler_lehman_graph_hash(graphs[0], node_attr="label"), []).append(graphs[0])
    for group in by_hash.values():
        assert not any(nx.is_isomorphic(x, y, node_match=same, edge_match=same)
                       for x, y in itertools.combinations(group, 2))
