"""Auto-GNN's constrained parameter sharing (Zhou et al., 2019) as a training evaluator for `GNNSpace`.

`SharedWeightsEvaluator` keeps trained weights per layer under a key: the layer's position, op, attention
variant, activation, residual flag and every parameter's shape. A child network inherits a layer's weights only
when its key matches a stored one exactly (the Auto-GNN constraint: same shapes, same attention, same
activation), then trains for a few epochs (`epochs`, 10) instead of the full schedule; a child that inherits
nothing trains `scratch_epochs`. Only a child that learned something shares its weights: one whose validation
accuracy does not beat predicting the majority class is never stored, so its children cannot inherit a failed
training. The trial's metrics say which layers were inherited. `GNN_ACTION_CLASSES` is
Auto-GNN's grouping of the space's fields into action classes, for the `autognn` strategy.

The store is one search's: make one evaluator per search (or call `reset()` between searches). It lives in
memory unless the evaluator is given the search's `workdir`; then every evaluation's stored layers are also
written there (`shared_weights/<arch id>.pt`), and the store is rebuilt from the journaled trials whenever it
differs from them, so a resumed search continues with the store an uninterrupted one would have.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from nas.errors import ConfigError, JournalError
from nas.store import Journal, JournalFollower
from nas.spaces.gnn import GNN, GNNSpace, check_node_data, train_node_classifier

log = logging.getLogger(__name__)

# Auto-GNN's action classes over GNNSpace's fields (class -> field names; each class spans every layer):
# the number of layers, the aggregation / message-passing op, the attention variant, the attention heads,
# the hidden width, the activation and the skip (residual) connection.
GNN_ACTION_CLASSES: dict[str, list[str]] = {
    "depth": ["layers"], "aggregation": ["op"], "attention": ["attention"], "heads": ["heads"],
    "hidden": ["hidden"], "activation": ["activation"], "skip": ["residual"]}

LayerKey = tuple[Any, ...]
Entry = tuple[float, dict[str, torch.Tensor]]  # (validation accuracy of the child that stored it, layer state)
STORE_DIR = "shared_weights"  # under a search's workdir: the layers each evaluation stored, one file per evaluation


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
    per layer). Seeded like `NodeClassificationEvaluator`.

    The store is one search's: use a new evaluator (or `reset()`) for each search. A search never evaluates an
    architecture twice, so an evaluation of one already evaluated since the store began means the store is
    being reused (another search, or a manual re-evaluation): it is logged as a warning once. Without
    `workdir` the store lives in memory only, so a resumed search starts with an empty one (its children
    inherit less than in an uninterrupted run). With `workdir` (the same folder `nas.search` is given; the
    in-process executor) each evaluation also writes the layers it stored to `workdir/shared_weights/`, and
    before each evaluation the store is rebuilt from the files of the journaled trials, in journal order,
    whenever it differs from them: a resumed search, even in a new process, continues exactly.
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
    store: dict[LayerKey, Entry] = field(default_factory=dict, repr=False)
    workdir: str | os.PathLike[str] | None = None
    _evaluated: set[str] = field(default_factory=set, init=False, repr=False)  # arch ids since the store began
    _warned: bool = field(default=False, init=False, repr=False)
    _applied: list[str] = field(default_factory=list, init=False, repr=False)  # workdir: ids whose files are in store
    _follower: JournalFollower | None = field(default=None, init=False, repr=False)
    _last: str | None = field(default=None, init=False, repr=False)  # workdir: the previous evaluation's arch id
    _missed: int = field(default=0, init=False, repr=False)  # workdir: previous evaluations the journal lacked

    def __post_init__(self) -> None:
        check_node_data(self.data, self.space.in_channels, self.space.num_classes)
        if self.workdir is not None:
            if not isinstance(self.workdir, (str, os.PathLike)):
                raise ConfigError(f"workdir: expected a folder (the search's workdir) or None, got {self.workdir!r}")
            self.workdir = Path(self.workdir)
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

    def reset(self) -> None:
        """Start an empty store, for the next search with this evaluator (with `workdir` the store is always
        rebuilt from that search's journal, so there it only drops what memory holds)."""
        self.store = {}
        self._evaluated, self._warned, self._applied, self._last, self._missed = set(), False, [], None, 0

    # ------------------------------------------------------------------ the store kept in the search's workdir
    def _file(self, arch_id: str) -> Path:
        assert isinstance(self.workdir, Path)
        return self.workdir / STORE_DIR / f"{arch_id}.pt"

    def _sync(self) -> None:
        """Make the store the one the journaled trials left: rebuilt from their files when memory differs."""
        assert isinstance(self.workdir, Path)
        if self._follower is None:
            self._follower = JournalFollower(Journal(self.workdir))
        try:
            replaced = self._follower.poll()
        except JournalError as e:
            raise ConfigError(f"workdir: {e}; give the evaluator the workdir of the search that uses it") from None
        ids = [t.arch_id for t in self._follower.trials]
        if self._last is not None and self._last not in ids and not replaced:
            self._missed += 1  # one is an interrupted evaluation; more mean another search calls this evaluator
            if self._missed >= 2:
                raise ConfigError(f"workdir: the last {self._missed} evaluations are not in {self.workdir}'s journal; "
                                  "give the evaluator the workdir of the search that uses it (run in-process, with "
                                  "the default executor)")
        else:
            self._missed = 0
        self._evaluated = set(ids)
        journaled: list[str] = []
        for arch_id in dict.fromkeys(ids):  # first occurrences, in journal order
            if self._file(arch_id).exists():
                journaled.append(arch_id)
        if journaled == self._applied:
            return
        store: dict[LayerKey, Entry] = {}
        for arch_id in journaled:
            record = torch.load(self._file(arch_id), weights_only=True)
            for key, acc, state in record["writes"]:
                store[tuple(key)] = (float(acc), state)
        log.info("%s: weight store rebuilt from the %d journaled evaluations (%d layers; it held %d)",
                 self.workdir, len(journaled), len(store), len(self.store))
        self.store, self._applied = store, journaled

    def _save(self, arch_id: str, writes: list[tuple[LayerKey, Entry]]) -> None:
        """Write the layers this evaluation stored (atomically: a killed write leaves no file)."""
        path = self._file(arch_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save({"arch_id": arch_id, "writes": [[key, acc, state] for key, (acc, state) in writes]}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._applied.append(arch_id)

    def __call__(self, arch: Mapping[str, Any], budget: float | None = None) -> dict[str, float]:
        arch_id = self.space.validate(arch).id
        if self.workdir is not None:
            self._sync()
            self._file(arch_id).unlink(missing_ok=True)  # a failed evaluation leaves no stale file behind
            self._last = arch_id
        if arch_id in self._evaluated and not self._warned:
            self._warned = True
            log.warning("%s evaluated again with the same weight store: a search evaluates each architecture once, "
                        "so this store is reused (another search, or a repeated call) and its children inherit from "
                        "earlier evaluations; make one SharedWeightsEvaluator per search, or call reset() between "
                        "searches", arch_id)
        self._evaluated.add(arch_id)
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
        writes: list[tuple[LayerKey, Entry]] = []
        for (pos, key), layer in zip(keys, model.layers):
            old = self.store.get(key)
            if learned and (self.keep == "latest" or old is None or metrics["valid_acc"] >= old[0]):
                self.store[key] = (metrics["valid_acc"], {k: v.detach().clone() for k, v in layer.state_dict().items()})
                writes.append((key, self.store[key]))
        if self.workdir is not None:
            self._save(arch_id, writes)
        metrics["params"] = float(sum(p.numel() for p in model.parameters()))
        metrics["layers"] = float(len(keys))
        metrics["inherited_layers"] = float(sum(inherited.values()))
        metrics.update({f"inherited.{pos}": float(v) for pos, v in inherited.items()})
        log.debug("%s: inherited %s", getattr(arch, "id", "arch"), [p for p, v in inherited.items() if v])
        return metrics
