"""The GNN space: exact size, conditional fields, PyG models that train, counts, graph form, Planetoid data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_geometric.nn as pyg
from torch import nn
from torch_geometric.data import Data
from torch_geometric.datasets import KarateClub
from torch_geometric.utils import stochastic_blockmodel_graph
from tests.docs import python_blocks

import nas
from nas.errors import ConfigError, InvalidArchitectureError, SpaceDefinitionError
from nas.spaces.gnn import GNNSpace, NodeClassificationEvaluator, feature_dropout, train_node_classifier
from nas.tabular import data_dir

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "gnn.md"
GCN = {"layers": 1, "hidden_layers": [{"op": "gcn", "hidden": 16, "activation": "relu", "residual": False}],
       "output": {"op": "gcn"}}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def karate() -> Data:
    return KarateClub()[0]


def tiny_space() -> GNNSpace:
    return GNNSpace(4, 3, layers=(1, 2), hidden=(8, 16), ops=("gcn", "gat", "skip"), heads=(1, 2),
                    attentions=("gat", "gatv2"), activations=("relu", "elu"))


def sbm_graph(seed: int = 0, per_class: int = 40, classes: int = 3) -> Data:
    """A stochastic block model whose classes are the blocks; features are noisy class indicators."""
    gen = torch.Generator().manual_seed(seed)
    probs = [[0.2 if i == j else 0.01 for j in range(classes)] for i in range(classes)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # stochastic_blockmodel_graph draws from the global RNG
        edge_index = stochastic_blockmodel_graph([per_class] * classes, probs)
    y = torch.arange(classes).repeat_interleave(per_class)
    signal = F.one_hot(y, classes).float() + torch.randn(len(y), classes, generator=gen)
    x = torch.cat([signal, torch.randn(len(y), 5, generator=gen)], dim=1)
    perm = torch.randperm(len(y), generator=gen)
    masks = [torch.zeros(len(y), dtype=torch.bool) for _ in range(3)]
    for mask, idx in zip(masks, (perm[:30], perm[30:70], perm[70:])):
        mask[idx] = True
    return Data(x=x, edge_index=edge_index, y=y, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2])


# ---------------------------------------------------------------------------------------------- the space
def test_size_is_exact_and_matches_enumeration():
    space = tiny_space()
    per_layer = 2 * 2 * 2 + 2 * 2 * (2 * 2 * 2) + 1  # gcn: hidden*act*res; gat: attention*heads*(...); skip
    output = 1 + 2 * 2  # gcn; gat with attention*heads
    assert space.size() == output * (per_layer + per_layer**2) == 8610
    assert len({a.id for a in space}) == 8610


def test_default_is_the_two_layer_gcn():
    space = GNNSpace(1433, 7)
    assert space.default() == GCN
    model = space.build(space.default())
    convs = [layer.conv for layer in model.layers]
    assert [type(c) for c in convs] == [pyg.GCNConv, pyg.GCNConv]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1433, 16), (16, 7)]
    assert sum(p.numel() for p in model.parameters()) == 1433 * 16 + 16 + 16 * 7 + 7


def test_conditional_fields_follow_the_op():
    space = GNNSpace(8, 3)
    rng = np.random.default_rng(0)
    seen_ops, ops = set(), []
    for _ in range(300):
        arch = space.sample(rng)
        assert len(arch["hidden_layers"]) == arch["layers"]
        for layer in [*arch["hidden_layers"], arch["output"]]:
            seen_ops.add(layer["op"])
            assert ("heads" in layer) == ("attention" in layer) == (layer["op"] == "gat")
        for layer in arch["hidden_layers"]:
            ops.append(layer["op"])
            width = {"hidden", "activation", "residual"} & set(layer)
            assert width == (set() if layer["op"] == "skip" else {"hidden", "activation", "residual"})
        assert arch["output"]["op"] != "skip" and set(arch["output"]) <= {"op", "attention", "heads"}
    assert seen_ops >= {"gcn", "gat", "sage", "gin", "cheb", "arma", "kgnn", "mlp"}
    # uniform over architectures: a hidden layer is one of 7 * 48 plain-op, 384 GAT and 1 skip configurations
    assert abs(ops.count("gat") / len(ops) - 384 / 721) < 0.07


def test_validation_names_the_bad_field():
    space = GNNSpace(8, 3)
    bad = {**GCN, "hidden_layers": [{**GCN["hidden_layers"][0], "heads": 2}]}
    with pytest.raises(InvalidArchitectureError, match=r"hidden_layers\[0\]\.heads: is inactive because op='gcn'"):
        space.validate(bad)
    with pytest.raises(InvalidArchitectureError, match=r"output\.op: 'skip' is not one of"):
        space.validate({**GCN, "output": {"op": "skip"}})
    with pytest.raises(InvalidArchitectureError, match=r"hidden_layers\[0\]\.heads: missing"):
        space.validate({**GCN, "hidden_layers": [{"op": "gat", "attention": "gat", "hidden": 16,
                                                   "activation": "relu", "residual": False}]})
    with pytest.raises(InvalidArchitectureError, match=r"hidden_layers: has 1 blocks but layers=2"):
        space.validate({**GCN, "layers": 2})


@pytest.mark.parametrize("kwargs, message", [
    ({"ops": ("gcn", "transformer")}, r"ops: unknown option 'transformer'"),
    ({"ops": ("skip",)}, r"ops: the output layer needs an op other than 'skip'"),
    ({"hidden": (12, 16), "heads": (1, 8)}, r"heads: 8 heads do not divide hidden width 12"),
    ({"activations": ("gelu",)}, r"activations: unknown option 'gelu'"),
    ({"hidden": (16, 0)}, r"hidden: options must be positive ints, got \[16, 0\]"),
    ({"layers": (1, -1)}, r"hidden_layers: count field 'layers' has options \[-1\]"),
    ({"example_graph": Data(x=torch.zeros(5, 3), edge_index=torch.zeros(2, 0, dtype=torch.long))},
     r"example_graph: node features must be \[N, 8\], got \(5, 3\)"),
])
def test_space_definition_errors(kwargs, message):
    with pytest.raises(SpaceDefinitionError, match=message):
        GNNSpace(8, 3, **kwargs)


def test_opt_in_appnp_op_and_searched_dropout(karate):
    from nas.spaces.gnn import EXTRA_OPS, OPS

    assert "dropout" not in GNNSpace(8, 3).fields and "appnp" not in GNNSpace(8, 3).ops  # the default is unchanged
    space = GNNSpace(karate.num_features, 4, ops=OPS + EXTRA_OPS, dropouts=(0.5, 0.8), example_graph=karate)
    assert space.size() == 2 * GNNSpace(karate.num_features, 4, ops=OPS + EXTRA_OPS, example_graph=karate).size()
    arch = space.validate({**GCN, "output": {"op": "appnp"}, "dropout": 0.8})
    model = space.build(arch)
    assert model.dropout == 0.8
    with pytest.raises(InvalidArchitectureError, match="dropout"):
        space.validate({**GCN, "dropout": 0.3})
    with pytest.raises(InvalidArchitectureError, match="dropout"):
        space.validate(GCN)  # the searched rate is a required field
    # APPNP: the linear map, then 10 steps of h <- 0.9 * A_hat h + 0.1 * z on the graph
    head = model.layers[1].conv
    model.eval()
    x = torch.randn(34, 16)
    z = head.lin(x)
    edge_index, weight = pyg.conv.gcn_conv.gcn_norm(karate.edge_index, num_nodes=34, add_self_loops=True)
    a_hat = torch.zeros(34, 34).index_put_((edge_index[1], edge_index[0]), weight, accumulate=True)  # target <- source
    h = z
    for _ in range(10):
        h = 0.9 * a_hat @ h + 0.1 * z
    torch.testing.assert_close(head(x, karate.edge_index), h, atol=1e-5, rtol=1e-4)
    g = space.to_graph(arch)
    assert g.nodes["input"]["dropout"] == 0.8 and "dropout=0.8" in g.nodes["input"]["label"]
    assert space.from_graph(g) == arch


@pytest.mark.parametrize("dropouts", [(), (0.5, 1.0), (0.5, True), ("0.5",)])
def test_searched_dropout_rates_are_checked(dropouts):
    with pytest.raises(SpaceDefinitionError, match="dropouts"):
        GNNSpace(8, 3, dropouts=dropouts)


def test_hidden_width_need_not_divide_by_heads_without_gat():
    per_layer = 1 * 6 * 2 + 1  # gcn: hidden * activation * residual; skip
    assert GNNSpace(8, 3, ops=("gcn", "skip"), hidden=(12,), heads=(8,)).size() == per_layer + per_layer**2


def test_spec_records_the_task():
    assert GNNSpace(8, 3).fingerprint() != GNNSpace(9, 3).fingerprint() != GNNSpace(8, 4).fingerprint()
    assert GNNSpace(8, 3).fingerprint() == GNNSpace(8, 3).fingerprint()


# ---------------------------------------------------------------------------------------------- models
def test_random_samples_build_run_forward_and_backward(karate):
    space = GNNSpace(karate.num_features, 4)
    rng = np.random.default_rng(1)
    for _ in range(25):
        arch = space.sample(rng)
        torch.manual_seed(0)
        model = space.build(arch)
        out = model(karate.x, karate.edge_index)
        assert out.shape == (34, 4)
        F.cross_entropy(out, karate.y).backward()
        for name, p in model.named_parameters():
            if isinstance(model.get_submodule(name.rsplit(".", 1)[0]), pyg.ARMAConv) and name.endswith(".weight"):
                assert p.grad is None  # PyG allocates ARMAConv.weight even with num_layers=1, where it is unused
                continue
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{arch.to_dict()}: {name}"
        model.eval()
        with torch.no_grad():
            assert torch.equal(model(karate.x, karate.edge_index), model(karate.x, karate.edge_index))


def test_layers_use_the_chosen_pyg_classes_and_widths():
    space = GNNSpace(10, 3)
    arch = space.validate({"layers": 2, "hidden_layers": [
        {"op": "gat", "attention": "gatv2", "heads": 4, "hidden": 32, "activation": "elu", "residual": True},
        {"op": "kgnn", "hidden": 16, "activation": "tanh", "residual": True}],
        "output": {"op": "gat", "attention": "gat", "heads": 2}})
    first, second, head = space.build(arch).layers
    assert type(first.conv) is pyg.GATv2Conv and (first.conv.heads, first.conv.out_channels) == (4, 8)
    assert isinstance(first.activation, nn.ELU) and isinstance(first.residual, nn.Linear)
    assert (first.residual.in_features, first.residual.out_features) == (10, 32)
    assert type(second.conv) is pyg.GraphConv and isinstance(second.residual, nn.Linear)
    assert type(head.conv) is pyg.GATConv and not head.conv.concat and head.conv.out_channels == 3
    assert head.residual is None and isinstance(head.activation, nn.Identity)


def test_residual_layer_adds_its_input(karate):
    space = GNNSpace(34, 4, hidden=(34,), ops=("sage", "mlp"), dropout=0.0)
    arch = space.validate({"layers": 1, "hidden_layers": [
        {"op": "sage", "hidden": 34, "activation": "tanh", "residual": True}], "output": {"op": "mlp"}})
    layer = space.build(arch).layers[0]
    assert isinstance(layer.residual, nn.Identity)
    x, ei = karate.x, karate.edge_index
    assert torch.allclose(layer(x, ei), torch.tanh(layer.conv(x, ei) + x))


def test_skip_layers_are_identities(karate):
    space = GNNSpace(34, 4)
    body = GCN["hidden_layers"][0]
    with_skip = {"layers": 2, "hidden_layers": [{"op": "skip"}, body], "output": {"op": "sage"}}
    without = {"layers": 1, "hidden_layers": [body], "output": {"op": "sage"}}
    outs = []
    for arch in (with_skip, without):
        torch.manual_seed(3)
        model = space.build(arch).eval()
        outs.append(model(karate.x, karate.edge_index))
    assert torch.equal(outs[0], outs[1])


def test_sparse_feature_dropout_matches_dense_dropout():
    x = (torch.rand(200, 300, generator=torch.Generator().manual_seed(0)) < 0.05).float()
    sparse = x.to_sparse()
    assert torch.equal(feature_dropout(sparse, 0.5, training=False), x)
    torch.manual_seed(0)
    out = feature_dropout(sparse, 0.5, training=True)
    assert torch.equal(out[x == 0], torch.zeros(int((x == 0).sum())))  # zeros stay zeros
    kept = out[x != 0]
    assert set(kept.unique().tolist()) <= {0.0, 2.0}  # kept values are scaled by 1 / (1 - p)
    assert abs(float((kept > 0).float().mean()) - 0.5) < 0.05


# ---------------------------------------------------------------------------------------------- counts
def test_count_gives_params_and_flops_with_message_passing():
    space = GNNSpace(1433, 7)
    counts = space.count(space.default())
    x, edges = space.example_input(space.default())
    n, pairs = 32, edges.shape[1] + 32  # the default example graph; GCN adds a self-loop per node
    assert counts["params"] == 1433 * 16 + 16 + 16 * 7 + 7
    # the two GCN linear maps, then per layer: its degrees (an add per pair) and its sum aggregation (an add per
    # pair and channel); the edge weights are elementwise products, uncounted like every elementwise op
    assert counts["flops"] == 2 * n * (1433 * 16 + 16 * 7) + 2 * pairs + pairs * (16 + 7)
    assert space.count(space.default(), batch_size=3)["flops"] == 3 * counts["flops"]


def test_count_on_a_given_graph(karate):
    space = GNNSpace(34, 4, example_graph=karate)
    gat = space.validate({"layers": 1, "hidden_layers": [
        {"op": "gat", "attention": "gat", "heads": 2, "hidden": 16, "activation": "relu", "residual": False}],
        "output": {"op": "mlp"}})
    edges, pairs = 156, 156 + 34  # karate's directed edges; with a self-loop per node
    # attention scores are elementwise (uncounted); the softmax sums an add per pair and head, the aggregation
    # an add per pair and channel (2 heads x 8)
    assert space.count(gat)["flops"] == 2 * 34 * (34 * 16 + 16 * 4) + pairs * 2 + pairs * 16
    cheb = space.validate({**GCN, "hidden_layers": [{**GCN["hidden_layers"][0], "op": "cheb"}]})
    # ChebConv K=2: two maps, the Laplacian's degrees and one propagation of the 34 input channels; GCN head:
    # degrees and aggregation of its 4 channels
    assert space.count(cheb)["flops"] == 2 * 34 * (2 * 34 * 16 + 16 * 4) + edges + pairs * 34 + pairs + pairs * 4


# ---------------------------------------------------------------------------------------------- graph form
def test_graph_roundtrip_and_residual_edges():
    space = GNNSpace(8, 3, layers=(1, 2, 3))
    rng = np.random.default_rng(2)
    for _ in range(200):
        arch = space.sample(rng)
        g = space.to_graph(arch)
        assert space.from_graph(g) == arch
        layers = arch["hidden_layers"]
        assert set(g.nodes) == {"input", "output", *range(len(layers))}
        residual = [(u, w) for u, w, kind in g.edges(data="kind") if kind == "residual"]
        assert len(residual) == sum(bool(b.get("residual")) for b in layers)
        for i, block in enumerate(layers):
            assert g.nodes[i]["op"] == block["op"] and g.nodes[i].get("hidden") == block.get("hidden")


def test_graph_of_a_residual_stack():
    space = GNNSpace(8, 3)
    arch = space.validate({"layers": 2, "hidden_layers": [
        {"op": "gcn", "hidden": 16, "activation": "relu", "residual": True},
        {"op": "sage", "hidden": 32, "activation": "elu", "residual": True}], "output": {"op": "gcn"}})
    g = space.to_graph(arch)
    assert sorted(g.edges(data="kind"), key=str) == sorted(
        [("input", 0, "sequential"), (0, 1, "sequential"), (1, "output", "sequential"),
         ("input", 1, "residual"), (0, "output", "residual")], key=str)


def test_zero_hidden_layers_is_a_single_layer(karate):
    space = GNNSpace(34, 4, layers=(0, 1))
    arch = space.validate({"layers": 0, "hidden_layers": [], "output": {"op": "sage"}})
    assert list(space.to_graph(arch).edges) == [("input", "output")]
    assert space.from_graph(space.to_graph(arch)) == arch
    (layer,) = space.build(arch).layers
    assert type(layer.conv) is pyg.SAGEConv and layer.conv(karate.x, karate.edge_index).shape == (34, 4)


def test_from_graph_errors():
    space = GNNSpace(8, 3)
    g = space.to_graph(space.default())
    broken = g.copy()
    broken.remove_node("output")
    with pytest.raises(InvalidArchitectureError, match="graph.output: node missing"):
        space.from_graph(broken)
    skip = space.to_graph({"layers": 1, "hidden_layers": [{"op": "skip"}], "output": {"op": "gcn"}})
    skip.add_edge("input", "output", kind="residual")
    with pytest.raises(InvalidArchitectureError, match=r"hidden_layers\[0\]\.residual: is inactive"):
        space.from_graph(skip)


def test_vector_and_onehot_roundtrip():
    space = GNNSpace(8, 3)
    rng = np.random.default_rng(3)
    for _ in range(100):
        arch = space.sample(rng)
        assert space.from_vector(space.to_vector(arch)) == arch
        assert space.from_onehot(space.to_onehot(arch)) == arch
        assert space.validate(space.mutate(arch, rng)) != arch


# ---------------------------------------------------------------------------------------------- training
def test_training_learns_and_is_reproducible():
    data = sbm_graph()
    space = GNNSpace(data.num_features, 3, example_graph=data)
    state = torch.get_rng_state()
    evaluate = NodeClassificationEvaluator(space, data, epochs=100, seed=0)
    first, second = evaluate(space.default()), evaluate(space.default())
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert first["valid_acc"] >= 0.9 and first["test_acc"] >= 0.9  # chance is 1/3
    first.pop("train_seconds"), second.pop("train_seconds")
    assert first == second
    assert first["params"] == space.count(space.default())["params"]
    assert 1 <= first["best_epoch"] <= first["epochs"] <= 100


def test_budget_sets_the_epochs_and_patience_stops_early():
    data = sbm_graph()
    space = GNNSpace(data.num_features, 3)
    assert NodeClassificationEvaluator(space, data, patience=None)(space.default(), budget=7)["epochs"] == 7
    torch.manual_seed(0)
    model = space.build(space.default())
    stopped = train_node_classifier(model, data, epochs=500, lr=0.05, patience=5)
    assert stopped["epochs"] < 500


def test_training_needs_masks(karate):
    with pytest.raises(ConfigError, match="data.val_mask: missing"):
        train_node_classifier(GNNSpace(34, 4).build(GCN), karate, epochs=1)


def test_random_search_over_the_space():
    data = sbm_graph(seed=1)
    space = GNNSpace(data.num_features, 3, hidden=(8, 16))
    result = nas.search(space, NodeClassificationEvaluator(space, data, epochs=30), {"valid_acc": "max"},
                        strategy="random", budget=4, seed=0)
    assert len(result.completed) == 4
    best = result.best()
    assert best.metrics["valid_acc"] == max(t.metrics["valid_acc"] for t in result.completed)


def karate_split() -> Data:
    data = KarateClub()[0]
    data.val_mask = data.test_mask = ~data.train_mask
    return data


@pytest.mark.parametrize("mask", ["train_mask", "val_mask", "test_mask"])
def test_a_mask_that_selects_no_node_is_named_before_training(mask):
    """An empty val_mask used to give valid_acc -1.0 as an 'ok' result, an empty train_mask a NaN loss."""
    from nas.spaces.gnn_sharing import SharedWeightsEvaluator

    data = karate_split()
    setattr(data, mask, torch.zeros(data.num_nodes, dtype=torch.bool))
    space = GNNSpace(data.num_features, 4, hidden=(16,))
    for make in (NodeClassificationEvaluator, SharedWeightsEvaluator):
        with pytest.raises(ConfigError, match=f"data.{mask}: selects no node"):
            make(space, data, epochs=2)
    with pytest.raises(ConfigError, match=f"data.{mask}: selects no node"):
        train_node_classifier(space.build(GCN), data, epochs=2)
    setattr(data, mask, torch.tensor([], dtype=torch.long))  # an index mask with no node
    with pytest.raises(ConfigError, match=f"data.{mask}: selects no node"):
        train_node_classifier(space.build(GCN), data, epochs=2)


def test_data_that_does_not_fit_the_space_is_named_before_training():
    """Classes, features and unlabelled nodes used to fail deep inside torch, naming no field."""
    from nas.spaces.gnn_sharing import SharedWeightsEvaluator

    data = karate_split()  # 34 features, 4 classes
    cases = [(GNNSpace(34, 3), data, r"num_classes: the space has 3 classes, but data.y holds label 3"),
             (GNNSpace(100, 4), data, r"in_channels: the space takes 100 features per node, but data.x has 34")]
    unlabelled = karate_split()
    unlabelled.y = torch.where(unlabelled.train_mask | (torch.arange(34) % 2 == 0), unlabelled.y, -1)
    cases.append((GNNSpace(34, 4), unlabelled, r"data.y: label -1 on a node of val_mask"))
    flat = karate_split()
    flat.y = flat.y.float()
    cases.append((GNNSpace(34, 4), flat, r"data.y: expected one integer class per node"))
    short = karate_split()
    short.val_mask = short.val_mask[:10]
    cases.append((GNNSpace(34, 4), short, r"data.val_mask: expected a boolean mask over the 34 nodes"))
    for space, graph, message in cases:
        for make in (NodeClassificationEvaluator, SharedWeightsEvaluator):
            with pytest.raises(ConfigError, match=message):
                make(space, graph, epochs=2)
    with pytest.raises(ConfigError, match=r"data.y: label -1 on a node of val_mask"):
        train_node_classifier(GNNSpace(34, 4).build(GCN), unlabelled, epochs=2)
    outside = karate_split()  # unlabelled nodes outside every mask are fine
    outside.train_mask = outside.train_mask.clone()
    outside.val_mask, outside.test_mask = torch.arange(34) % 2 == 1, torch.arange(34) % 2 == 1
    outside.val_mask[outside.train_mask] = False
    outside.test_mask = outside.val_mask.clone()
    keep = outside.train_mask | outside.val_mask
    outside.y = torch.where(keep, outside.y, -1)
    metrics = NodeClassificationEvaluator(GNNSpace(34, 4), outside, epochs=3)(GCN)
    assert 0.0 <= metrics["valid_acc"] <= 1.0


# ---------------------------------------------------------------------------------------------- Planetoid
def planetoid_root() -> Path:
    root = data_dir() / "planetoid"
    if not (root / "Cora" / "raw").is_dir():
        pytest.skip(f"Planetoid raw files not found under {root} (../shared/data is absent)")
    return root


@pytest.mark.parametrize("name, nodes, features, classes, train", [
    ("cora", 2708, 1433, 7, 140), ("CiteSeer", 3327, 3703, 6, 120)])
def test_planetoid_public_split(name, nodes, features, classes, train):
    from nas.datasets import planetoid

    root = planetoid_root()
    data = planetoid(name)
    assert tuple(data.x.shape) == (nodes, features) and int(data.y.max()) + 1 == classes
    assert [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)] == [train, 500, 1000]
    sums = data.x.sum(dim=1)
    assert torch.allclose(sums[sums > 0], torch.ones(int((sums > 0).sum())))  # row-normalised
    assert planetoid(name, normalize_features=False).x.max() == 1.0
    assert not any(p.name == "processed" for p in root.rglob("*"))  # the shared tree is never written


def test_planetoid_errors(tmp_path):
    from nas.datasets import planetoid

    with pytest.raises(ConfigError, match="name: unknown Planetoid graph 'reddit'"):
        planetoid("reddit", root=tmp_path)
    with pytest.raises(ConfigError, match="planetoid Cora: raw files not found"):
        planetoid("cora", root=tmp_path)


@pytest.mark.slow
def test_two_layer_gcn_from_the_space_on_cora():
    from nas.datasets import planetoid

    planetoid_root()
    data = planetoid("cora")
    space = GNNSpace(data.num_features, 7)
    metrics = NodeClassificationEvaluator(space, data, seed=0)(GCN)
    assert metrics["test_acc"] > 0.70, metrics


# ---------------------------------------------------------------------------------------------- docs
def test_doc_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks(DOC)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc_example__"}
    have_planetoid = (data_dir() / "planetoid" / "Cora" / "raw").is_dir()
    for i, block in enumerate(blocks):
        if "planetoid(" in block and not have_planetoid:
            continue  # needs ../shared/data
        exec(compile(block, f"docs/gnn.md python block {i + 1}", "exec"), namespace)
