"""Auto-GNN's constrained parameter sharing (Zhou et al., 2019) as a training evaluator for `GNNSpace`.

`SharedWeightsEvaluator` keeps trained weights per layer under a key: the layer's position, op, attention
variant, activation, residual flag and every parameter's shape. A child network inherits a layer's weights only
when its key matches a stored one exactly (the Auto-GNN constraint: same shapes, same attention, same
activation), then trains for a few epochs (`epochs`, 10) instead of the full schedule; a child that inherits
nothing trains `scratch_epochs`. Only a child that learned something shares its weights: one whose validation
accuracy does not beat predicting the majority class is never stored, so its children cannot inherit a failed
training. The trial's metrics say which layers were inherited. `GNN_ACTION_CLASSES` is
Auto-GNN's grouping of the space's fields into action classes, for the `autognn` strategy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch_geometric.data import Data

from nas.errors import ConfigError
from nas.spaces.gnn import GNN, GNNSpace, train_node_classifier

log = logging.getLogger(__name__)

# Auto-GNN's action classes over GNNSpace's fields (class -> field names; each class spans every layer):
# the number of layers, the aggregation / message-passing op, the attention variant, the attention heads,
# the hidden width, the activation and the skip (residual) connection.
GNN_ACTION_CLASSES: dict[str, list[str]] = {
    "depth": ["layers"], "aggregation": ["op"], "attention": ["attention"], "heads": ["heads"],
    "hidden": ["hidden"], "activation": ["activation"], "skip": ["residual"]}

LayerKey = tuple[Any, ...]


def layer_keys(space: GNNSpace, arch: Mapping[str, Any], model: GNN) -> list[tuple[str, LayerKey]]:
    """(position, key) per layer of `model` = `space.build(arch)`: 'hidden_layers[i]' (skips left out) or 'output'.

    The key is (position, op, attention, activation, residual, parameter names and shapes); the shapes carry
    the input and output widths and the head count.
    """
    a = space.validate(arch)
    blocks = [(f"hidden_layers[{i}]", b) for i, b in enumerate(a["hidden_layers"]) if b["op"] != "skip"]
    blocks.append(("output", {**a["output"], "activation": "identity", "residual": False}))
    if len(blocks) != len(model.layers):
        raise ConfigError(f"model: {len(model.layers)} layers, but the architecture has {len(blocks)}")
    out = []
    for (pos, b), layer in zip(blocks, model.layers):
        shapes = tuple((name, tuple(p.shape)) for name, p in layer.state_dict().items())
        out.append((pos, (pos, b["op"], b.get("attention"), b["activation"], bool(b["residual"]), shapes)))
    return out


@dataclass
class SharedWeightsEvaluator:
    """`evaluate(arch, budget=None)`: build `arch`, inherit every layer whose key matches a stored one, train.

    A child that inherited at least one layer trains `epochs` (or `budget`) epochs, one that inherited none
    `scratch_epochs` (None: `epochs`), both with `train_node_classifier` (Adam lr, weight decay, early-stopping
    `patience`). Afterwards each layer's weights are stored under its key: always (`keep="latest"`) or when the
    child's validation accuracy is at least the stored weights' (`keep="best"`, default); in both cases only if
    that accuracy beats `min_valid_acc` (None: the majority class's share of the validation nodes, what a
    constant prediction scores). Metrics are
    `train_node_classifier`'s plus params, `layers`, `inherited_layers` and `inherited.<position>` (1.0 or 0.0
    per layer). Seeded like `NodeClassificationEvaluator`; the store lives in memory, one per search.
    """

    space: GNNSpace
    data: Data
    epochs: int = 10
    scratch_epochs: int | None = 200
    lr: float = 0.01
    weight_decay: float = 5e-4
    patience: int | None = 20
    seed: int = 0
    keep: str = "best"
    min_valid_acc: float | None = None
    store: dict[LayerKey, tuple[float, dict[str, torch.Tensor]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.keep not in ("best", "latest"):
            raise ConfigError(f"keep: expected 'best' or 'latest', got {self.keep!r}")
        for name in ("epochs", "scratch_epochs"):
            v = getattr(self, name)
            if not (v is None and name == "scratch_epochs") and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name}: expected a positive int, got {v!r}")
        if self.min_valid_acc is None:
            labels = self.data.y[self.data.val_mask]
            self.min_valid_acc = float(torch.bincount(labels).max()) / len(labels) if len(labels) else 0.0
        elif not 0.0 <= self.min_valid_acc <= 1.0:
            raise ConfigError(f"min_valid_acc: expected a number in [0, 1] or None, got {self.min_valid_acc!r}")

    def __call__(self, arch: Mapping[str, Any], budget: float | None = None) -> dict[str, float]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.space.build(arch)
            keys = layer_keys(self.space, arch, model)
            inherited = {}
            for (pos, key), layer in zip(keys, model.layers):
                entry = self.store.get(key)
                inherited[pos] = entry is not None
                if entry is not None:
                    layer.load_state_dict(entry[1])
            if any(inherited.values()):
                epochs = self.epochs if budget is None else max(1, int(round(budget)))
            else:
                epochs = self.scratch_epochs if self.scratch_epochs is not None else self.epochs
            metrics = train_node_classifier(model, self.data, epochs, self.lr, self.weight_decay, self.patience)
        learned = metrics["valid_acc"] > self.min_valid_acc  # type: ignore[operator]
        for (pos, key), layer in zip(keys, model.layers):
            old = self.store.get(key)
            if learned and (self.keep == "latest" or old is None or metrics["valid_acc"] >= old[0]):
                self.store[key] = (metrics["valid_acc"], {k: v.detach().clone() for k, v in layer.state_dict().items()})
        metrics["params"] = float(sum(p.numel() for p in model.parameters()))
        metrics["layers"] = float(len(keys))
        metrics["inherited_layers"] = float(sum(inherited.values()))
        metrics.update({f"inherited.{pos}": float(v) for pos, v in inherited.items()})
        log.debug("%s: inherited %s", getattr(arch, "id", "arch"), [p for p, v in inherited.items() if v])
        return metrics
