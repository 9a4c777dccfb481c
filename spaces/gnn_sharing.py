"""Auto-GNN's constrained parameter sharing (Zhou et al., 2019) as a training evaluator for `GNNSpace`.

`SharedWeightsEvaluator` keeps trained weights per layer under a key: the layer's position, op, attention
variant, activation, residual flag and every parameter's shape. A child network inherits a layer's weights only
when its key matches a stored one exactly (the Auto-GNN constraint: same shapes, same attention, same
activation), then trains for a few epochs (`epochs`, 10) instead of the full schedule; a child that inherits
nothing trains `scratch_epochs`. Only a child that learned something shares its weights: one whose validation
accuracy does not beat predicting the majority class is never stored, so its children cannot inherit a failed
training. The trial's metrics say which layers were inherited. `GNN_ACTION_CLASSES` is
Auto-GNN's grouping of the space's fields into action classes, for the `autognn` strategy.

The store is one search's. `nas.search` tells the evaluator when a search starts or resumes (its `begin`
hook, with the workdir and the journaled trials): the store becomes the one the journaled evaluations left,
rebuilt from the files each evaluation writes to `<workdir>/shared_weights/<arch id>.pt` (empty for a new
search, or one without a workdir), so a resumed search continues with the store an uninterrupted one had.
"""

from __future__ import annotations

import logging
import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from nas.errors import ConfigError, check_int
from nas.jsonio import python_scalar
from nas.seeding import torch_seeded
from nas.store import JOURNAL, Journal, Trial
from nas.spaces.gnn import GNN, GNNSpace, check_node_data, check_node_training, train_node_classifier

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
    per layer). Seeded like `NodeClassificationEvaluator`, and checked like it when made (epochs an int >= 1,
    lr > 0, weight_decay >= 0, patience None or >= 1, seed an int >= 0; numpy scalars taken as their Python twins).

    The store is one search's. `nas.search` calls `begin(workdir, trials)` when a search starts or resumes:
    the store becomes the one its journaled evaluations left, rebuilt from the layers each evaluation writes
    to `workdir/shared_weights/<arch id>.pt` (in journal order), or from memory when it already holds exactly
    those; a new search (or one without a workdir) starts from the store given at construction (empty by
    default), so a second search with the same evaluator equals the first, and a resumed one, even in a new
    process, continues exactly. Resume is exact with the in-process executors; with worker processes or Ray,
    each worker gets a copy of the store the journal left and then inherits only from its own evaluations
    (they write their files to the workdir, which must then be on a filesystem the workers share).
    Outside `nas.search` the store lives in memory; an architecture evaluated again is logged once.
    `workdir` is deprecated: the search's own workdir is used (a different one is refused).
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
    workdir: str | os.PathLike[str] | None = None  # deprecated: nas.search gives the evaluator its workdir
    _base: dict[LayerKey, Entry] = field(default_factory=dict, init=False, repr=False)  # a new search's store
    _folder: Path | None = field(default=None, init=False, repr=False)  # where evaluations write their layers
    _begun: bool = field(default=False, init=False, repr=False)  # begin() was called (by nas.search)
    _evaluated: set[str] = field(default_factory=set, init=False, repr=False)  # arch ids since the store began
    _warned: bool = field(default=False, init=False, repr=False)
    _applied: list[str] = field(default_factory=list, init=False, repr=False)  # ids whose writes the store holds

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name, value in check_node_training(self.epochs, self.lr, self.weight_decay, self.patience, owner).items():
            setattr(self, name, value)  # lr 0 refused: it would record untrained networks as results
        if self.scratch_epochs is not None:
            self.scratch_epochs = check_int(self.scratch_epochs, f"{owner}.scratch_epochs (None: epochs)", 1)
        self.seed = check_int(self.seed, f"{owner}.seed", 0)
        check_node_data(self.data, self.space.in_channels, self.space.num_classes)
        if self.workdir is not None:
            if not isinstance(self.workdir, (str, os.PathLike)):
                raise ConfigError(f"workdir: expected a folder (the search's workdir) or None, got {self.workdir!r}")
            self.workdir = Path(self.workdir)
            warnings.warn("SharedWeightsEvaluator(workdir=...) is deprecated and not needed: nas.search gives the "
                          "evaluator its workdir, and the store lives in <workdir>/shared_weights by itself; drop "
                          "workdir= (until then it is checked against the search's)", DeprecationWarning, stacklevel=3)
        if self.keep not in ("best", "latest"):
            raise ConfigError(f"{owner}.keep: expected 'best' or 'latest', got {self.keep!r}")
        bar = python_scalar(self.min_valid_acc)
        if bar is None:
            labels = self.data.y[self.data.val_mask]
            self.min_valid_acc = float(torch.bincount(labels).max()) / len(labels) if len(labels) else 0.0
        elif isinstance(bar, bool) or not isinstance(bar, numbers.Real) or not 0.0 <= bar <= 1.0:
            raise ConfigError(f"{owner}.min_valid_acc: expected a number in [0, 1] or None, got {bar!r}")
        else:
            self.min_valid_acc = float(bar)
        self._base = dict(self.store)

    def reset(self) -> None:
        """Start an empty store (what `nas.search` does by itself when a new search begins)."""
        self.store, self._base, self._folder = {}, {}, None
        self._evaluated, self._warned, self._applied, self._begun = set(), False, [], False

    # ------------------------------------------------------------------ the store kept in the search's workdir
    def begin(self, workdir: Path | None, trials: Sequence[Trial]) -> None:
        """A search starts or resumes (`nas.search` calls this): the store becomes what its journaled `trials`
        left, and each evaluation from now on writes its layers under `workdir/shared_weights`."""
        if self.workdir is not None and (workdir is None or Path(workdir).resolve() != Path(self.workdir).resolve()):
            raise ConfigError(f"workdir: the evaluator was given {self.workdir}, but the search runs in "
                              f"{workdir if workdir is not None else 'no workdir'}; drop workdir= (the store "
                              "follows the search's workdir by itself)")
        self._folder = Path(workdir) / STORE_DIR if workdir is not None else None
        self._begun = True
        ids = list(dict.fromkeys(t.arch_id for t in trials))  # first occurrences, in journal order
        self._evaluated, self._warned = set(ids), False
        journaled = [i for i in ids if self._folder is not None and self._file(i).exists()]
        if journaled == self._applied:
            return  # memory holds exactly these evaluations' writes (a resume in this process, or a fresh store)
        store = dict(self._base)
        for arch_id in journaled:
            record = torch.load(self._file(arch_id), weights_only=True)
            for key, acc, state in record["writes"]:
                store[tuple(key)] = (float(acc), state)
        log.info("%s: weight store rebuilt from the %d journaled evaluations (%d layers; it held %d)",
                 workdir if workdir is not None else "a search without a workdir", len(journaled), len(store),
                 len(self.store))
        self.store, self._applied = store, journaled

    def _begin_from_journal(self) -> None:
        """Called directly with the deprecated `workdir`: begin from the trials its journal holds now."""
        assert isinstance(self.workdir, Path)
        journal = Journal(self.workdir)
        if not journal.exists():
            raise ConfigError(f"workdir: {self.workdir} holds no journal ({JOURNAL} is missing or empty); give the "
                              "evaluator the workdir of the search that uses it, or none")
        self.begin(self.workdir, journal.read().trials)

    def _file(self, arch_id: str) -> Path:
        assert self._folder is not None
        return self._folder / f"{arch_id}.pt"

    def _save(self, arch_id: str, writes: list[tuple[LayerKey, Entry]]) -> None:
        """Write the layers this evaluation stored (atomically: a killed write leaves no file)."""
        path = self._file(arch_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save({"arch_id": arch_id, "writes": [[key, acc, state] for key, (acc, state) in writes]}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def __call__(self, arch: Mapping[str, Any], budget: float | None = None) -> dict[str, float]:
        arch_id = self.space.validate(arch).id
        if not self._begun and self.workdir is not None:
            self._begin_from_journal()
        if self._folder is not None:
            self._file(arch_id).unlink(missing_ok=True)  # a failed evaluation leaves no stale file behind
        if arch_id in self._evaluated and not self._warned:
            self._warned = True
            log.warning("%s evaluated again with the same weight store: a search evaluates each architecture once, "
                        "so this store is reused (a repeated call, or a search that does not call begin()) and its "
                        "children inherit from earlier evaluations; nas.search starts each search's store by "
                        "itself, elsewhere make one SharedWeightsEvaluator per search, or call reset() between "
                        "searches", arch_id)
        self._evaluated.add(arch_id)
        with torch_seeded(self.seed):
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
                writes.append((key, (metrics["valid_acc"],
                                     {k: v.detach().clone() for k, v in layer.state_dict().items()})))
        if self._folder is not None:
            self._save(arch_id, writes)  # before the store changes: what memory holds is always on disk too
        self.store.update(writes)
        self._applied.append(arch_id)
        metrics["params"] = float(sum(p.numel() for p in model.parameters()))
        metrics["layers"] = float(len(keys))
        metrics["inherited_layers"] = float(sum(inherited.values()))
        metrics.update({f"inherited.{pos}": float(v) for pos, v in inherited.items()})
        log.debug("%s: inherited %s", getattr(arch, "id", "arch"), [p for p, v in inherited.items() if v])
        return metrics
