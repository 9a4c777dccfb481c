"""Edge cases of the GNN space, its evaluators (plain and with parameter sharing), `autognn` and `rl` found by the
37th exploration: sparse and non-float32 features, unchecked sharing settings, cached repeats, numpy options,
`batch_size`, rl's option errors and the GNN table README's figures."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.datasets import KarateClub

from nas.errors import ConfigError, SpaceDefinitionError
from nas.objectives import Problem
from nas.spaces.gnn import GNNSpace, NodeClassificationEvaluator
from nas.spaces.gnn_sharing import SharedWeightsEvaluator
from nas.strategies import TrialResult, make_strategy

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
GCN = {"layers": 1, "hidden_layers": [{"op": "gcn", "hidden": 16, "activation": "relu", "residual": False}],
       "output": {"op": "gcn"}}


def karate():
    data = KarateClub()[0]
    data.val_mask = data.test_mask = ~data.train_mask
    return data


def without_time(metrics):
    return {k: v for k, v in metrics.items() if k != "train_seconds"}


# ---------------------------------------------------------------------------------------------- features
def test_sparse_features_train_as_dense_ones_do():
    """docs/gnn.md: node features may be a sparse COO tensor; the sparsity test called count_nonzero on it."""
    space = GNNSpace(34, 4, hidden=(16,))
    dense, sparse = karate(), karate()
    sparse.x = sparse.x.to_sparse()
    for make, more in ((NodeClassificationEvaluator, {}), (SharedWeightsEvaluator, {"scratch_epochs": 3})):
        got = make(space, sparse, epochs=3, patience=None, **more)(GCN)
        want = make(space, dense, epochs=3, patience=None, **more)(GCN)  # KarateClub's one-hot x goes in sparse anyway
        assert got["epochs"] == 3.0 and without_time(got) == without_time(want), make


@pytest.mark.parametrize("dtype", [torch.float64, torch.long])
def test_features_of_another_dtype_are_a_config_error_naming_data_x(dtype):
    data = karate()
    data.x = data.x.to(dtype)
    space = GNNSpace(34, 4, hidden=(16,))
    for make in (NodeClassificationEvaluator, SharedWeightsEvaluator):
        with pytest.raises(ConfigError, match=rf"data.x: expected float32 features.*got {dtype}"):
            make(space, data, epochs=2)
    data.x = data.x.to_sparse()  # sparse ones too
    with pytest.raises(ConfigError, match=rf"data.x: expected float32 features.*got {dtype}"):
        NodeClassificationEvaluator(space, data, epochs=2)


# ---------------------------------------------------------------------------------------------- sharing settings
@pytest.mark.parametrize("kwargs, field", [
    ({"lr": 0}, "lr"), ({"lr": -1}, "lr"), ({"lr": float("nan")}, "lr"), ({"lr": "0.01"}, "lr"),
    ({"weight_decay": -1}, "weight_decay"), ({"patience": 0}, "patience"), ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"), ({"epochs": 0}, "epochs"), ({"scratch_epochs": 0}, "scratch_epochs"),
    ({"scratch_epochs": 2.5}, "scratch_epochs"), ({"min_valid_acc": "x"}, "min_valid_acc"),
    ({"min_valid_acc": float("nan")}, "min_valid_acc"), ({"keep": "first"}, "keep"),
])
def test_shared_weights_evaluator_checks_its_settings_when_made(kwargs, field):
    """As NodeClassificationEvaluator does: lr 0 recorded untrained networks as `ok` results."""
    value = next(iter(kwargs.values()))
    with pytest.raises(ConfigError, match=rf"^SharedWeightsEvaluator\.{field}\b.*got {re.escape(repr(value))}"):
        SharedWeightsEvaluator(GNNSpace(34, 4, hidden=(16,)), karate(), **kwargs)


def test_shared_weights_evaluator_takes_numpy_settings_as_python_values():
    ev = SharedWeightsEvaluator(GNNSpace(34, 4, hidden=(16,)), karate(), epochs=np.int64(2),
                                scratch_epochs=np.int64(3), lr=np.float32(0.01), patience=np.int64(5),
                                seed=np.int64(1), min_valid_acc=np.float64(0.5))
    settings = (ev.epochs, ev.scratch_epochs, ev.lr, ev.patience, ev.seed, ev.min_valid_acc)
    assert [type(v) for v in settings] == [int, int, float, int, int, float]
    assert ev(GCN)["epochs"] == 3.0


# ---------------------------------------------------------------------------------------------- cached repeats
def test_autognn_does_not_reward_cached_repeats_as_rl_does():
    space = GNNSpace(8, 3)
    problem = Problem.make({"valid_acc": "max"})
    for name in ("rl", "autognn"):
        s = make_strategy(name, space, problem, seed=0, batch_size=100)
        a = s.ask(1)[0]
        s.tell(a, TrialResult({"valid_acc": 0.9}))
        baseline = s.baseline
        for _ in range(5):
            s.tell(a, TrialResult({"valid_acc": 0.9}, cached=True))
        assert (len(s.utility.keys), len(s.batch), s.baseline) == (1, 1, baseline), name
        assert len(getattr(s, "class_batch", [])) == 0


# ---------------------------------------------------------------------------------------------- space options
def test_space_takes_numpy_scalars_in_every_option():
    space = GNNSpace(np.int64(8), np.int64(3), layers=[np.int64(1), np.int64(2)], hidden=[np.int64(16), np.int64(32)],
                     heads=[np.int64(1), np.int64(2)], dropouts=[np.float32(0.5), np.float64(0.6)],
                     dropout=np.float32(0.5))
    assert (type(space.in_channels), type(space.num_classes)) == (int, int)
    want = GNNSpace(8, 3, layers=[1, 2], hidden=[16, 32], heads=[1, 2], dropouts=[float(np.float32(0.5)), 0.6])
    assert space.size() == want.size() and space.default() == want.default()
    assert space.build(space.default())(*space.example_input(space.default())).shape == (32, 3)


def test_space_hint_for_an_array_of_options_says_list():
    with pytest.raises(SpaceDefinitionError, match=r"hidden: expected a list of options, got .*\(e\.g\. hidden=list\("):
        GNNSpace(8, 3, hidden=np.arange(16, 65, 16))
    with pytest.raises(SpaceDefinitionError, match=r"ops: expected a list of options, got 'gcn' \(e\.g\. ops=\['gcn'\]"):
        GNNSpace(8, 3, ops="gcn")


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_count_and_example_input_name_a_bad_batch_size(batch_size):
    space = GNNSpace(8, 3)
    for call in (space.example_input, space.count):
        with pytest.raises(ConfigError, match=r"batch_size: expected a positive int"):
            call(space.default(), batch_size=batch_size)
    assert space.example_input(space.default(), batch_size=np.int64(2))[0].shape == (64, 8)


# ---------------------------------------------------------------------------------------------- rl options
@pytest.mark.parametrize("option, value, rule", [
    ("hidden", 0, "an int >= 1"), ("lr", -0.1, "> 0"), ("batch_size", 0, "an int >= 1"),
    ("baseline_decay", 1.0, r"in \[0, 1\)"), ("entropy_weight", -1.0, ">= 0"), ("resample", -1, "an int >= 0"),
])
def test_rl_option_errors_say_the_value_given(option, value, rule):
    """As evolution, nsga2 and mcts do: the option, its rule and the value given."""
    problem = Problem.make({"valid_acc": "max"})
    for name in ("rl", "autognn"):
        with pytest.raises(ConfigError, match=rf"^{name}: {option} must be {rule}, got {re.escape(repr(value))}$"):
            make_strategy(name, GNNSpace(8, 3), problem, seed=0, **{option: value})


# ---------------------------------------------------------------------------------------------- table README
def test_gnn_table_readme_training_time_matches_the_csv():
    folder = ROOT / "nas" / "tables" / "gnn_planetoid"
    readme = (folder / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| training time, recorded"))
    for name in ("cora", "citeseer"):
        seconds = [float(r["train_seconds"]) for r in csv.DictReader(open(folder / f"{name}.csv"))]
        figure = f"{round(sum(seconds)):,} s / {round(sum(seconds) / len(seconds))} s"
        assert figure in row, (name, figure, row)
