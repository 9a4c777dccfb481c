"""A GNN macro space after Auto-GNN (Zhou et al., 2019), built from PyTorch Geometric layers.

An architecture is `layers` hidden message-passing layers (op, attention variant and heads for GAT,
width, activation, residual) followed by an output layer (op, attention and heads) that maps to the
classes. `NodeClassificationEvaluator` trains one on a transductive node-classification graph.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import torch
import torch.nn.functional as F
import torch_geometric.nn as pyg
from torch import nn
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from nas.errors import ConfigError, InvalidArchitectureError, SpaceDefinitionError, check_count, check_int, check_number
from nas.architecture import Architecture
from nas.jsonio import python_scalar
from nas.seeding import torch_seeded
from nas.spaces.model_space import ModelSpace
from nas.spaces.params import Choice, Conditional
from nas.spaces.space import Repeat, Space

log = logging.getLogger(__name__)

OPS = ("gcn", "gat", "sage", "gin", "cheb", "arma", "kgnn", "mlp", "skip")  # the default space's ops
EXTRA_OPS = ("appnp",)  # known ops a space takes only when asked: `GNNSpace(..., ops=OPS + EXTRA_OPS)`
KNOWN_OPS = OPS + EXTRA_OPS
APPNP_K, APPNP_ALPHA = 10, 0.1  # APPNP's propagation steps and teleport probability (Gasteiger et al., 2019)
ATTENTIONS = ("gat", "gatv2")
ACTIVATIONS = ("relu", "elu", "leaky_relu", "tanh", "softplus", "identity")
HIDDEN = (16, 32, 64, 128)
HEADS = (1, 2, 4, 8)
LAYERS = (1, 2)
SPARSE_BELOW = 0.1  # train_node_classifier feeds features this sparse as a sparse tensor (same maths, faster)
DECISIONS = ("op", "attention", "heads", "hidden", "activation")  # per-layer node attributes in to_graph


@dataclass(frozen=True)
class LayerSpec:
    """What one message-passing layer needs to be built: op, widths and the GAT options."""

    op: str
    c_in: int
    c_out: int
    attention: str = "gat"
    heads: int = 1
    concat: bool = True  # hidden GAT layers concatenate heads (c_out // heads each); the output one averages
    dropout: float = 0.0  # attention-coefficient dropout (GAT only)


class NodeWise(nn.Module):
    """A module applied to each node alone (the 'mlp' op): takes and ignores `edge_index`."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def _attention(s: LayerSpec) -> nn.Module:
    cls = {"gat": pyg.GATConv, "gatv2": pyg.GATv2Conv}[s.attention]
    out = s.c_out // s.heads if s.concat else s.c_out
    return cls(s.c_in, out, heads=s.heads, concat=s.concat, dropout=s.dropout)


class Propagated(nn.Module):
    """The 'appnp' op: a linear map, then `APPNP_K` steps of personalised-PageRank propagation (APPNP)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.lin, self.propagate = nn.Linear(c_in, c_out), pyg.APPNP(APPNP_K, APPNP_ALPHA)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.propagate(self.lin(x), edge_index)


def _gin(s: LayerSpec) -> nn.Module:
    return pyg.GINConv(nn.Sequential(nn.Linear(s.c_in, s.c_out), nn.ReLU(), nn.Linear(s.c_out, s.c_out)))


CONVS: dict[str, Callable[[LayerSpec], nn.Module]] = {
    "gcn": lambda s: pyg.GCNConv(s.c_in, s.c_out),
    "gat": _attention,
    "sage": lambda s: pyg.SAGEConv(s.c_in, s.c_out),
    "gin": _gin,
    "cheb": lambda s: pyg.ChebConv(s.c_in, s.c_out, K=2),
    "arma": lambda s: pyg.ARMAConv(s.c_in, s.c_out),
    "kgnn": lambda s: pyg.GraphConv(s.c_in, s.c_out),
    "mlp": lambda s: NodeWise(nn.Linear(s.c_in, s.c_out)),
    "appnp": lambda s: Propagated(s.c_in, s.c_out),
}
ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "softplus": nn.Softplus,
    "identity": nn.Identity,
}


class GNNLayer(nn.Module):
    """activation(conv(x, edge_index) + residual(x)); residual is the identity or a linear projection."""

    def __init__(self, conv: nn.Module, activation: nn.Module, residual: nn.Module | None = None) -> None:
        super().__init__()
        self.conv, self.activation, self.residual = conv, activation, residual

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.conv(x, edge_index)
        if self.residual is not None:
            h = h + self.residual(x)
        return self.activation(h)


def feature_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout that also takes sparse COO features: it drops stored values, then densifies.

    Dropping a zero leaves a zero, so this equals dense dropout in distribution while touching only
    the non-zeros (Cora's features are 1.3 % dense; dense dropout there costs more than the layer).
    """
    if not x.is_sparse:
        return F.dropout(x, p=p, training=training)
    x = x.coalesce()
    values = F.dropout(x.values(), p=p, training=training)
    return torch.sparse_coo_tensor(x.indices(), values, x.shape, is_coalesced=True, check_invariants=False).to_dense()


class GNN(nn.Module):
    """A stack of `GNNLayer`s with dropout on every layer's input; returns class logits per node.

    Node features may be dense or sparse COO (see `feature_dropout`).
    """

    def __init__(self, layers: Sequence[GNNLayer], dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(feature_dropout(x, self.dropout, self.training), edge_index)
        return x


def random_graph(num_nodes: int, in_channels: int, avg_degree: int = 4, seed: int = 0) -> Data:
    """A small reproducible undirected random graph with Gaussian features (for shapes and counts)."""
    gen = torch.Generator().manual_seed(seed)
    num_edges = num_nodes * avg_degree // 2
    edge_index = torch.randint(num_nodes, (2, num_edges), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    x = torch.randn(num_nodes, in_channels, generator=gen)
    return Data(x=x, edge_index=to_undirected(edge_index, num_nodes=num_nodes))


def _check_names(field: str, given: Sequence[str], known: Sequence[str]) -> None:
    if not given:
        raise SpaceDefinitionError(f"{field}: give at least one option")
    for name in given:
        if name not in known:
            raise SpaceDefinitionError(f"{field}: unknown option {name!r} (known: {', '.join(known)})")


class GNNSpace(ModelSpace):
    """Node-classification GNNs: `layers` hidden layers (Repeat `hidden_layers`) and an `output` layer.

    Each hidden layer chooses `op` among `ops`; GAT layers also choose `attention` (GATConv or
    GATv2Conv) and `heads`; every op but 'skip' chooses `hidden` width, `activation` and `residual`.
    The output layer chooses `op` (no 'skip') and, for GAT, `attention` and `heads` (averaged).
    `dropout` is the rate on every layer's input (and GAT's attention); `dropouts` makes it a searched
    top-level field `dropout` instead (regularisation matters as much as the layers on small graphs).
    `ops` may add `EXTRA_OPS` ('appnp': linear, then APPNP propagation) to the default `OPS`. Numpy scalars, in
    the options or as numbers, are taken as their Python twins.
    """

    def __init__(self, in_channels: int, num_classes: int, *, layers: Sequence[int] = LAYERS,
                 hidden: Sequence[int] = HIDDEN, ops: Sequence[str] = OPS, heads: Sequence[int] = HEADS,
                 attentions: Sequence[str] = ATTENTIONS, activations: Sequence[str] = ACTIVATIONS,
                 dropout: float = 0.5, dropouts: Sequence[float] | None = None,
                 example_graph: Data | None = None) -> None:
        in_channels, num_classes, dropout = (python_scalar(v) for v in (in_channels, num_classes, dropout))
        for name, v in (("in_channels", in_channels), ("num_classes", num_classes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpaceDefinitionError(f"{name}: expected a positive int, got {v!r}")
        for name, given in (("layers", layers), ("hidden", hidden), ("ops", ops), ("heads", heads),
                            ("attentions", attentions), ("activations", activations), ("dropouts", dropouts)):
            if given is not None and (isinstance(given, str) or not isinstance(given, Sequence)):
                hint = "list(...)" if hasattr(given, "__iter__") and not isinstance(given, str) else f"[{given!r}]"
                raise SpaceDefinitionError(f"{name}: expected a list of options, got {given!r} (e.g. {name}={hint})")
        layers, hidden, ops, heads, attentions, activations = (
            [python_scalar(v) for v in given] for given in (layers, hidden, ops, heads, attentions, activations))
        dropouts = None if dropouts is None else [python_scalar(v) for v in dropouts]
        for name, rates in (("dropout", [dropout]), ("dropouts", list(dropouts or []))):
            for v in rates:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
                    raise SpaceDefinitionError(f"{name}: expected probabilities in [0, 1), got {v!r}")
        if dropouts is not None and not list(dropouts):
            raise SpaceDefinitionError("dropouts: give at least one rate, or None for the fixed `dropout`")
        for name, values in (("hidden", hidden), ("heads", heads)):
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 1]
            if bad or not values:
                raise SpaceDefinitionError(f"{name}: options must be positive ints, got {list(values)!r}")
        _check_names("ops", ops, KNOWN_OPS)
        _check_names("attentions", attentions, ATTENTIONS)
        _check_names("activations", activations, ACTIVATIONS)
        width_ops = [o for o in ops if o != "skip"]
        if not width_ops:
            raise SpaceDefinitionError("ops: the output layer needs an op other than 'skip'")
        if "gat" in ops:
            for h in hidden:
                for k in heads:
                    if h % k:
                        raise SpaceDefinitionError(
                            f"heads: {k} heads do not divide hidden width {h} (GAT layers concatenate heads)")
        self.in_channels, self.num_classes, self.dropout = in_channels, num_classes, float(dropout)
        self.ops, self.width_ops = tuple(ops), tuple(width_ops)

        def attention_fields(op_names: Sequence[str]) -> dict[str, Any]:
            if "gat" not in op_names:
                return {}
            return {"attention": Conditional("op", ["gat"], Choice(list(attentions), ordered=False)),
                    "heads": Conditional("op", ["gat"], Choice(list(heads)))}

        block = {"op": Choice(list(ops), ordered=False), **attention_fields(ops),
                 "hidden": Conditional("op", width_ops, Choice(list(hidden))),
                 "activation": Conditional("op", width_ops, Choice(list(activations), ordered=False)),
                 "residual": Conditional("op", width_ops, Choice([False, True]))}
        output = {"op": Choice(width_ops, ordered=False), **attention_fields(width_ops)}
        searched = {} if dropouts is None else {"dropout": Choice([float(v) for v in dropouts])}
        super().__init__(layers=Choice(list(layers)), hidden_layers=Repeat("layers", block), output=Space(output),
                         **searched)
        graph = example_graph if example_graph is not None else random_graph(32, in_channels)
        if graph.x is None or graph.x.dim() != 2 or graph.x.shape[1] != in_channels:
            shape = None if graph.x is None else tuple(graph.x.shape)
            raise SpaceDefinitionError(f"example_graph: node features must be [N, {in_channels}], got {shape}")
        edges = graph.edge_index
        if (not isinstance(edges, torch.Tensor) or edges.dim() != 2 or edges.shape[0] != 2
                or edges.dtype.is_floating_point or edges.dtype.is_complex or edges.dtype == torch.bool
                or (edges.numel() > 0 and not 0 <= int(edges.min()) <= int(edges.max()) < len(graph.x))):
            got = f"{tuple(edges.shape)} {edges.dtype}" if isinstance(edges, torch.Tensor) else edges
            raise SpaceDefinitionError(f"example_graph.edge_index: expected integer node ids [2, edges] below the "
                                       f"{len(graph.x)} nodes, got {got}")
        self.example_graph = Data(x=graph.x, edge_index=graph.edge_index)

    def to_spec(self) -> dict[str, Any]:
        spec = super().to_spec()
        spec["model"] = {"in_channels": self.in_channels, "num_classes": self.num_classes, "dropout": self.dropout}
        return spec

    # ------------------------------------------------------------------ models
    def build(self, arch: Mapping[str, Any]) -> GNN:
        """A freshly initialised `GNN` (PyG layers; 'skip' layers are left out) for `arch`."""
        a = self.validate(arch)
        dropout = float(a.get("dropout", self.dropout))
        layers: list[GNNLayer] = []
        width = self.in_channels
        for block in a["hidden_layers"]:
            if block["op"] == "skip":
                continue
            out = block["hidden"]
            spec = LayerSpec(block["op"], width, out, block.get("attention", "gat"), block.get("heads", 1),
                             concat=True, dropout=dropout)
            residual = None
            if block["residual"]:
                residual = nn.Identity() if width == out else nn.Linear(width, out, bias=False)
            layers.append(GNNLayer(CONVS[spec.op](spec), ACTIVATION_MODULES[block["activation"]](), residual))
            width = out
        head = a["output"]
        spec = LayerSpec(head["op"], width, self.num_classes, head.get("attention", "gat"), head.get("heads", 1),
                         concat=False, dropout=dropout)
        layers.append(GNNLayer(CONVS[spec.op](spec), nn.Identity()))
        return GNN(layers, dropout)

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, edge_index) of `batch_size` disjoint copies of the example graph (default: 32 random nodes);
        ConfigError naming `batch_size` unless it is an int >= 1 (`count` passes its own here)."""
        batch_size = check_count(batch_size, "batch_size")
        x, edge_index = self.example_graph.x, self.example_graph.edge_index
        n = x.shape[0]
        return (torch.cat([x] * batch_size),
                torch.cat([edge_index + i * n for i in range(batch_size)], dim=1))

    # ------------------------------------------------------------------ graph form
    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        """The layer DAG: 'input' → 0 … layers-1 → 'output', plus a 'residual' edge around each residual layer.

        Layer nodes carry their decisions (op, attention, heads, hidden, activation) and a role; an edge
        u → w of kind 'residual' says the layer between u and w adds its input to its output. A searched
        `dropout` is an attribute of the input node (and part of its label, which WL kernels read).
        """
        a = self.validate(arch)
        g = nx.DiGraph()
        g.add_node("input", op="input", role="input", hidden=self.in_channels, label="input")
        if "dropout" in a:
            g.nodes["input"].update(dropout=a["dropout"], label=f"input,dropout={a['dropout']}")
        chain: list[Any] = ["input"]
        for i, block in enumerate(a["hidden_layers"]):
            attrs = {k: block[k] for k in DECISIONS if k in block}
            g.add_node(i, role="hidden", label=_label(attrs), **attrs)
            chain.append(i)
        out_attrs = {k: a["output"][k] for k in DECISIONS if k in a["output"]}
        g.add_node("output", role="output", label=_label(out_attrs), **out_attrs)
        chain.append("output")
        for u, w in zip(chain, chain[1:]):
            g.add_edge(u, w, kind="sequential")
        for i, block in enumerate(a["hidden_layers"]):
            if block.get("residual"):
                g.add_edge(chain[i], chain[i + 2], kind="residual")
        return g

    def from_graph(self, graph: nx.DiGraph) -> Architecture:
        for name in ("input", "output"):
            if name not in graph:
                raise InvalidArchitectureError(f"graph.{name}", "node missing")
        n = sum(1 for v in graph.nodes if isinstance(v, int) and not isinstance(v, bool))
        chain: list[Any] = ["input", *range(n), "output"]
        blocks = []
        for i in range(n):
            if i not in graph:
                raise InvalidArchitectureError(f"graph.{i}", f"layer node missing (layer nodes must be 0..{n - 1})")
            cfg = {k: graph.nodes[i][k] for k in DECISIONS if k in graph.nodes[i]}
            has_residual = graph.has_edge(chain[i], chain[i + 2])
            if has_residual or cfg.get("op") in self.width_ops:
                cfg["residual"] = has_residual
            blocks.append(cfg)
        output = {k: graph.nodes["output"][k] for k in DECISIONS if k in graph.nodes["output"]}
        searched = {"dropout": graph.nodes["input"]["dropout"]} if "dropout" in graph.nodes["input"] else {}
        return self.validate({"layers": n, "hidden_layers": blocks, "output": output, **searched})


def _label(attrs: Mapping[str, Any]) -> str:
    return ",".join(str(attrs[k]) for k in DECISIONS if k in attrs)


# ---------------------------------------------------------------------- training
def _accuracy(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    """Accuracy on the `mask` nodes; NaN when their logits are not all finite (argmax of NaNs is class 0, which
    would score a diverged network as a plausible constant predictor). An exact ratio of counts: a float32 mean
    would record 0.8100000023841858 for 0.81."""
    selected = logits[mask]
    if len(selected) == 0 or not bool(torch.isfinite(selected).all()):
        return float("nan")
    return int((selected.argmax(dim=-1) == y[mask]).sum()) / len(selected)


def check_node_data(data: Data, in_channels: int | None = None, num_classes: int | None = None,
                    dtype: torch.dtype = torch.float32) -> None:
    """Check that `data` is a node-classification graph that training can use, before any training.

    `data.x` holds finite [nodes, features] of `dtype` (the model's: float32 for `GNNSpace`'s), dense or sparse
    COO; `data.y` one integer class per node; `train_mask`, `val_mask` and `test_mask` each select at least one
    node, and every node they select has a label in 0..num_classes-1 (unlabelled nodes, e.g. -1, may sit outside
    the masks). With `in_channels` / `num_classes` (a space's), the features and labels must fit them. Each error
    is a ConfigError naming the field. Costs one pass over the features and labels: evaluators call it once, when
    made, and `train_node_classifier` once per training.
    """
    for mask in ("train_mask", "val_mask", "test_mask"):
        if getattr(data, mask, None) is None:
            raise ConfigError(f"data.{mask}: missing (node classification needs train/val/test masks)")
    x, y = getattr(data, "x", None), getattr(data, "y", None)
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ConfigError(f"data.x: expected node features [nodes, features], got "
                          f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if x.dtype != dtype:  # float64 (torch.from_numpy's) or integer features failed inside the first layer
        raise ConfigError(f"data.x: expected {str(dtype).removeprefix('torch.')} features (the model's dtype), got "
                          f"{x.dtype}; convert them with data.x = data.x.to({dtype})")
    sparse = x.coalesce() if x.is_sparse else None
    values = x if sparse is None else sparse.values()
    if values.dtype.is_floating_point and not bool(torch.isfinite(values).all()):  # the logits would all be NaN
        bad = ~torch.isfinite(values)
        first = int(bad.flatten().nonzero()[0])
        node, feature = divmod(first, x.shape[1]) if sparse is None else sparse.indices()[:, first].tolist()
        raise ConfigError(f"data.x: {int(bad.sum())} feature values are NaN or infinite, the first at node {node}, "
                          f"feature {feature} ({float(values.flatten()[first])}); clean or impute them")
    if in_channels is not None and x.shape[1] != in_channels:
        raise ConfigError(f"in_channels: the space takes {in_channels} features per node, but data.x has "
                          f"{x.shape[1]} (make the space with in_channels={x.shape[1]})")
    if (not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x) or y.dtype.is_floating_point
            or y.dtype.is_complex or y.dtype == torch.bool):
        got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ConfigError(f"data.y: expected one integer class per node ({len(x)}), got {got}")
    for mask in ("train_mask", "val_mask", "test_mask"):
        m = getattr(data, mask)
        boolean = isinstance(m, torch.Tensor) and m.dtype == torch.bool and m.shape == (len(x),)
        index = (isinstance(m, torch.Tensor) and m.dim() == 1 and not m.dtype.is_floating_point
                 and not m.dtype.is_complex and m.dtype != torch.bool
                 and (m.numel() == 0 or (int(m.min()) >= 0 and int(m.max()) < len(x))))
        if not (boolean or index):
            got = f"{tuple(m.shape)} {m.dtype}" if isinstance(m, torch.Tensor) else type(m).__name__
            raise ConfigError(f"data.{mask}: expected a boolean mask over the {len(x)} nodes (or node indices), "
                              f"got {got}")
        labels = y[m]
        if len(labels) == 0:
            raise ConfigError(f"data.{mask}: selects no node (give it at least one node)")
        low, high = int(labels.min()), int(labels.max())
        if low < 0:
            raise ConfigError(f"data.y: label {low} on a node of {mask} (class indices are >= 0; leave unlabelled "
                              "nodes out of the masks)")
        if num_classes is not None and high >= num_classes:
            raise ConfigError(f"num_classes: the space has {num_classes} classes, but data.y holds label {high} on "
                              f"a node of {mask} (make the space with num_classes={high + 1} or more)")


def check_node_training(epochs: Any, lr: Any, weight_decay: Any, patience: Any, owner: str = "",
                        zero_lr: bool = False) -> dict[str, Any]:
    """The training settings as Python values (numpy scalars accepted): epochs an int >= 1, lr finite > 0 (>= 0
    with `zero_lr`), weight_decay finite >= 0, patience None or an int >= 1; ConfigError naming `<owner>.<field>`
    otherwise (an evaluator with lr 0 would record untrained networks as results; a negative lr fails every
    training inside torch)."""
    where = f"{owner}." if owner else ""
    return {"epochs": check_int(epochs, f"{where}epochs", 1),
            "lr": check_number(lr, f"{where}lr", positive=not zero_lr),
            "weight_decay": check_number(weight_decay, f"{where}weight_decay", positive=False),
            "patience": None if patience is None else check_int(patience, f"{where}patience (None: never stop)", 1)}


def train_node_classifier(model: nn.Module, data: Data, epochs: int = 200, lr: float = 0.01,
                          weight_decay: float = 5e-4, patience: int | None = 20) -> dict[str, float]:
    """Full-batch Adam on `data.train_mask`; metrics at the epoch of best validation accuracy.

    Ties in validation accuracy go to the lower validation loss. An epoch whose logits are not finite has NaN
    accuracies and is never the best; if no epoch is finite (training diverged at once), every accuracy and
    `best_epoch` are NaN, so a search records the trial as failed. Training stops early once the
    validation loss has not improved for `patience` epochs (None: never). Sparse COO features go in as they are,
    dense ones sparser than `SPARSE_BELOW` as a sparse tensor. Dropout draws from torch's global RNG: seed it (or
    wrap the call in `torch.random.fork_rng`) for reproducible runs. The settings (`check_node_training`; lr 0
    allowed: the network is evaluated as it is) and `data` (`check_node_data`) are checked first.
    """
    settings = check_node_training(epochs, lr, weight_decay, patience, zero_lr=True)  # 0: evaluate as it is
    epochs, lr, weight_decay, patience = (settings[k] for k in ("epochs", "lr", "weight_decay", "patience"))
    check_node_data(data, dtype=next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32))
    model = model.to(data.x.device)
    x = data.x
    if not x.is_sparse and x.count_nonzero() <= SPARSE_BELOW * x.numel():  # sparse COO features go in as they are
        x = x.to_sparse()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    best = {"valid_acc": -1.0, "valid_loss": float("inf")}
    lowest_loss, since_lowest, epoch = float("inf"), 0, 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        optimizer.zero_grad()
        out = model(x, data.edge_index)
        loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            out = model(x, data.edge_index)
            valid_loss = float(F.cross_entropy(out[data.val_mask], data.y[data.val_mask]))
            valid_acc = _accuracy(out, data.y, data.val_mask)
            if (valid_acc, -valid_loss) > (best["valid_acc"], -best["valid_loss"]):
                best = {"train_acc": _accuracy(out, data.y, data.train_mask), "valid_acc": valid_acc,
                        "test_acc": _accuracy(out, data.y, data.test_mask), "valid_loss": valid_loss,
                        "best_epoch": float(epoch)}
        if valid_loss < lowest_loss:
            lowest_loss, since_lowest = valid_loss, 0
        else:
            since_lowest += 1
            if patience is not None and since_lowest >= patience:
                break
    if "best_epoch" not in best:  # no epoch gave finite logits on the validation nodes
        nan = float("nan")
        best = {"train_acc": nan, "valid_acc": nan, "test_acc": nan, "valid_loss": valid_loss, "best_epoch": nan}
    best["epochs"] = float(epoch)
    best["train_seconds"] = time.perf_counter() - start
    return best


@dataclass
class NodeClassificationEvaluator:
    """`evaluate(arch, budget=None)`: build `arch` from `space` with `seed` and train it on `data`.

    `budget` overrides `epochs`. Returns train/valid/test accuracy at the best-validation epoch,
    valid_loss, best_epoch, epochs run, train_seconds and params. The global RNG is left untouched.
    `data` must fit `space` (`check_node_data`, checked when the evaluator is made), and so must the settings:
    epochs an int >= 1, lr > 0, weight_decay >= 0, patience None or >= 1, seed an int >= 0 (numpy scalars taken
    as their Python twins).
    """

    space: GNNSpace
    data: Data
    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 5e-4
    patience: int | None = 20
    seed: int = 0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name, value in check_node_training(self.epochs, self.lr, self.weight_decay, self.patience, owner).items():
            setattr(self, name, value)
        self.seed = check_int(self.seed, f"{owner}.seed", 0)
        check_node_data(self.data, self.space.in_channels, self.space.num_classes)

    def __call__(self, arch: Mapping[str, Any], budget: float | None = None) -> dict[str, float]:
        epochs = self.epochs if budget is None else max(1, int(round(budget)))
        with torch_seeded(self.seed):
            model = self.space.build(arch)
            metrics = train_node_classifier(model, self.data, epochs, self.lr, self.weight_decay, self.patience)
        metrics["params"] = float(sum(p.numel() for p in model.parameters()))
        log.debug("%s: %s", getattr(arch, "id", "arch"), metrics)
        return metrics
