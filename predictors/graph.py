"""A GCN predictor over the architecture's DAG (BRP-NAS / NASLib style), from PyG's dense GCN layers.

Nodes are one-hot codes of their labels (vocabulary from the training graphs, plus 'unknown'; a labelled edge,
an operation on an edge as in NAS-Bench-201 or DARTS, becomes a node of its own: `ops_as_nodes`); each
residual layer adds a GCN propagation along the edges and one against them, with separate weights
(information flows both ways in a DAG), and the graph embedding is the mean over nodes, so isomorphic
architectures get one prediction. With `loss="pairwise"` the net is trained to order pairs (a logistic ranking loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from nas.errors import ConfigError, check_count
from nas.spaces import Architecture, Space
from nas.predictors.embedding import node_labels, ops_as_nodes
from nas.predictors.encodings import single_node_graphs
from nas.predictors.ensemble import Loss, _TorchPredictor

if TYPE_CHECKING:
    import torch

UNKNOWN = "<unknown>"


def _gcn_module(n_labels: int, hidden: int, layers: int) -> "torch.nn.Module":
    import torch
    import torch.nn as nn
    from torch_geometric.nn import DenseGCNConv

    class DirectedGCN(nn.Module):
        """Residual layers h += relu(GCN along the edges + GCN against them); masked mean readout; MLP head."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(n_labels, hidden)
            self.fwd = nn.ModuleList(DenseGCNConv(hidden, hidden) for _ in range(layers))
            self.bwd = nn.ModuleList(DenseGCNConv(hidden, hidden) for _ in range(layers))
            self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def forward(self, x: torch.Tensor, a_in: torch.Tensor, a_out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.embed(x))
            for f, b in zip(self.fwd, self.bwd):
                h = h + torch.relu(f(h, a_in, mask) + b(h, a_out, mask))
            m = mask.unsqueeze(-1).float()
            return self.head((h * m).sum(1) / m.sum(1).clamp(min=1.0))

    return DirectedGCN()


class GCNPredictor(_TorchPredictor):
    """An ensemble of `members` directed GCNs on `space.to_graph`; std = spread across members."""

    name = "gcn"
    needs = frozenset({"graph"})

    def __init__(self, space: Space, seed: int = 0, members: int = 3, hidden: int = 64, layers: int = 3,
                 epochs: int = 200, lr: float = 3e-3, weight_decay: float = 1e-4, loss: Loss = "mse") -> None:
        super().__init__(space, seed, members, epochs, lr, weight_decay, loss)
        if single_node_graphs(space):
            raise ConfigError(f"predictor {self.name!r}: {type(space).__name__}.to_graph gives one node labelled by the "
                              "whole architecture (a plain Space without a declared cell), so every architecture not "
                              "seen in training looks alike and the prediction is constant; declare its cell with "
                              "space.with_graph(nas.spaces.CellGraph(...)) (docs/predictors.md), or use 'rf', 'gp' "
                              "or 'wl-gp'")
        self.hidden = check_count(hidden, f"{self.name}: hidden", " (the width of a node's state)")
        self.layers = check_count(layers, f"{self.name}: layers", " (GCN propagation layers)")
        self._vocab: dict[str, int] = {}

    def _prepare(self, archs: list[Architecture]) -> None:
        labels = sorted({lab for a in archs for lab in node_labels(ops_as_nodes(self.space.to_graph(a))).values()})
        self._vocab = {lab: i for i, lab in enumerate([UNKNOWN, *labels])}

    def _tensors(self, archs: Sequence[Architecture]) -> list["torch.Tensor"]:
        import torch

        graphs = [ops_as_nodes(self.space.to_graph(a)) for a in archs]
        n_max = max(g.number_of_nodes() for g in graphs)
        x = np.zeros((len(graphs), n_max, len(self._vocab)), dtype=np.float32)
        adj = np.zeros((len(graphs), n_max, n_max), dtype=np.float32)
        mask = np.zeros((len(graphs), n_max), dtype=bool)
        for b, g in enumerate(graphs):
            index = {node: i for i, node in enumerate(g.nodes)}
            for node, lab in node_labels(g).items():
                x[b, index[node], self._vocab.get(lab, 0)] = 1.0
                mask[b, index[node]] = True
            for u, v in g.edges:
                adj[b, index[u], index[v]] = 1.0
        a_in = np.ascontiguousarray(adj.transpose(0, 2, 1))  # row v: the nodes feeding v
        return [torch.from_numpy(x), torch.from_numpy(a_in), torch.from_numpy(adj), torch.from_numpy(mask)]

    def _network(self) -> "torch.nn.Module":
        return _gcn_module(len(self._vocab), self.hidden, self.layers)
