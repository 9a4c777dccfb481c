"""Evaluator, recipe, measure and split edge cases (outside test, wave 36): labels that would broadcast in
`accuracy`, unchecked recipe fields, the recipe training's RNG, GNN evaluator settings, training data checks,
numpy recipe values and split-helper arguments."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data

from nas.datasets import digits_splits, mnist1d_splits
from nas.errors import ConfigError
from nas.measure import accuracy_metric, check_recipe, count_metric, latency_metric
from nas.spaces.gnn import GNNSpace, NodeClassificationEvaluator, train_node_classifier
from nas.spaces.recipe import Recipe, recipe_fields, train_with_recipe
from nas.spaces.training import PlainTraining, accuracy


class Fixed(nn.Module):
    """Logits whose argmax is the given prediction per input index (x holds the index)."""

    def __init__(self, predictions: list[int], classes: int = 3) -> None:
        super().__init__()
        self.table = F.one_hot(torch.tensor(predictions), classes).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x.long().flatten()]


def _data(n: int = 64, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 8, generator=gen), torch.randint(0, classes, (n,), generator=gen)


def _mlp(classes: int = 3, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, classes))


# ---------------------------------------------------------------------------------------- 1: accuracy labels
def test_accuracy_refuses_labels_that_would_broadcast() -> None:
    model, x = Fixed([0, 1, 0, 1]), torch.arange(4)
    y = torch.tensor([0, 1, 1, 1])
    assert accuracy(model, x, y) == 0.75
    with pytest.raises(ConfigError, match=r"^y: .*1-D.*\(4, 1\)"):
        accuracy(model, x, y[:, None])  # was 2.0: [4] == [4, 1] broadcast to [4, 4]
    with pytest.raises(ConfigError, match=r"^y: .*1-D.*\(4, 3\)"):
        accuracy(model, x, F.one_hot(y, 3))  # one-hot labels
    with pytest.raises(ConfigError, match=r"^y: labels must be integer class indices"):
        accuracy(model, x, y.float())


# ---------------------------------------------------------------------------------------- 2: batch sizes, recipes
def test_accuracy_refuses_batch_size_below_one() -> None:
    model, x = Fixed([0, 1, 0, 1]), torch.arange(4)
    y = torch.tensor([0, 1, 0, 1])
    for bad in (0, -1):
        with pytest.raises(ConfigError, match=r"^batch_size: expected an int >= 1"):
            accuracy(model, x, y, batch_size=bad)  # -1 was 0.0 on a set predicted perfectly
    assert accuracy(model, x, y, batch_size=np.int64(3)) == 1.0


@pytest.mark.parametrize("recipe, field", [
    (accuracy_metric(batch_size=-1), "batch_size"), (accuracy_metric(batch_size=0), "batch_size"),
    (accuracy_metric(scale="100"), "scale"), (accuracy_metric(scale=-100), "scale"), (accuracy_metric(scale=0), "scale"),
    (latency_metric(batch_size=0), "batch_size"), (latency_metric(threads=0), "threads"),
    (latency_metric(threads=-2), "threads"), (latency_metric(device="tpu"), "device"),
    (latency_metric(device=1), "device"), (count_metric(batch_size=0), "batch_size"),
])
def test_check_recipe_names_the_bad_field(recipe: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^metrics\.m\.{field}"):
        check_recipe("m", recipe)


def test_check_recipe_takes_numpy_scalars_as_python_values() -> None:
    out = check_recipe("m", accuracy_metric(scale=np.float64(100), batch_size=np.int64(250)))
    assert out == accuracy_metric(scale=100.0, batch_size=250) and type(out["batch_size"]) is int
    assert check_recipe("m", latency_metric(threads=None, device="cuda:0"))["threads"] is None  # name only


# ---------------------------------------------------------------------------------------- 3: recipe RNG
def test_train_with_recipe_seeds_dropout_and_leaves_the_global_generator() -> None:
    x, y = _data()
    start, recipe, losses = _mlp(dropout=0.5), Recipe(epochs=2, batch_size=16), []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        before = torch.random.get_rng_state()
        run = train_with_recipe(copy.deepcopy(start), (x, y), recipe, seed=0)
        assert torch.equal(torch.random.get_rng_state(), before)  # the caller's generator is left as it was
        losses.append(run.log.phases[0].epoch_losses)
    assert losses[0] == losses[1]  # dropout draws come from the seed, not from what ran before


# ---------------------------------------------------------------------------------------- 4: GNN settings
def _graph() -> Data:
    gen = torch.Generator().manual_seed(0)
    n = 12
    y = torch.arange(n) % 3
    x = F.one_hot(y, 3).float() + 0.1 * torch.randn(n, 3, generator=gen)
    ring = torch.arange(n)
    edge_index = torch.stack([torch.cat([ring, (ring + 1) % n]), torch.cat([(ring + 1) % n, ring])])
    idx = torch.arange(n)
    return Data(x=x, edge_index=edge_index, y=y, train_mask=idx < 6, val_mask=(idx >= 6) & (idx < 9),
                test_mask=idx >= 9)


@pytest.mark.parametrize("settings, field", [
    ({"lr": 0}, "lr"), ({"lr": -1}, "lr"), ({"lr": "0.01"}, "lr"), ({"lr": float("nan")}, "lr"),
    ({"weight_decay": -1}, "weight_decay"), ({"patience": -3}, "patience"), ({"patience": 0}, "patience"),
    ({"seed": 1.5}, "seed"), ({"seed": -1}, "seed"), ({"epochs": 0}, "epochs"), ({"epochs": 2.5}, "epochs"),
])
def test_node_evaluator_refuses_bad_settings_when_made(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^NodeClassificationEvaluator\.{field}"):
        NodeClassificationEvaluator(GNNSpace(3, 3), _graph(), **settings)


def test_node_training_settings_checked_and_numpy_accepted() -> None:
    space, data = GNNSpace(3, 3), _graph()
    for settings, field in (({"lr": -1}, "lr"), ({"lr": "0.01"}, "lr"), ({"weight_decay": -1}, "weight_decay"),
                            ({"patience": 0}, "patience")):  # lr 0 is allowed here: it evaluates the network as is
        with pytest.raises(ConfigError, match=rf"^{field}"):
            train_node_classifier(space.build(space.sample(np.random.default_rng(0))), data, 2, **settings)
    ev = NodeClassificationEvaluator(space, data, epochs=np.int64(2), lr=np.float64(0.01), patience=np.int64(5),
                                     seed=np.int64(0))
    assert (type(ev.epochs), type(ev.lr), type(ev.patience), type(ev.seed)) == (int, float, int, int)
    assert ev(space.sample(np.random.default_rng(0)))["epochs"] <= 2


# ---------------------------------------------------------------------------------------- 5: training data
@pytest.mark.parametrize("case, message", [
    ("label 3", r"^y: label 3 is out of range for a network with 3 outputs"),
    ("label -1", r"^y: label -1 is negative"),
    ("float labels", r"^y: labels must be integer class indices \(int64\)"),
    ("int32 labels", r"^y: labels must be integer class indices \(int64\)"),
    ("column labels", r"^y: labels must be a 1-D vector"),
    ("float64 x", r"^x: torch.float64 inputs for a torch.float32 network"),
    ("numpy x", r"^x: expected a tensor"),
    ("empty", r"^x: the training data is empty"),
])
@pytest.mark.parametrize("trainer", ["recipe", "plain"])
def test_training_data_errors_name_x_or_y(case: str, message: str, trainer: str) -> None:
    x, y = _data()
    if case == "label 3":
        y = y.clone(); y[5] = 3
    elif case == "label -1":
        y = y.clone(); y[5] = -1
    elif case == "float labels":
        y = y.float()
    elif case == "int32 labels":
        y = y.int()
    elif case == "column labels":
        y = y[:, None]
    elif case == "float64 x":
        x = x.double()
    elif case == "numpy x":
        x = x.numpy()
    elif case == "empty":
        x, y = x[:0], y[:0]
    with pytest.raises(ConfigError, match=message):
        if trainer == "recipe":
            train_with_recipe(_mlp(), (x, y), Recipe(epochs=1, batch_size=16), seed=0)
        else:
            PlainTraining(epochs=1, batch_size=16).fit(_mlp(), x, y)


def test_train_with_recipe_checks_seed_and_recipe() -> None:
    data = _data()
    for seed in (-1, 1.5, "0"):
        with pytest.raises(ConfigError, match=r"^seed: expected an int >= 0"):
            train_with_recipe(_mlp(), data, Recipe(epochs=1, batch_size=16), seed=seed)
    for recipe in ({"epochs": 1}, None):
        with pytest.raises(ConfigError, match=r"^recipe: expected a Recipe"):
            train_with_recipe(_mlp(), data, recipe)  # type: ignore[arg-type]
    a = train_with_recipe(_mlp(), data, Recipe(epochs=1, batch_size=16), seed=np.int64(3)).log.phases[0].epoch_losses
    b = train_with_recipe(_mlp(), data, Recipe(epochs=1, batch_size=16), seed=3).log.phases[0].epoch_losses
    assert a == b


# ---------------------------------------------------------------------------------------- 6: numpy recipe values
def test_recipe_takes_numpy_values_as_their_python_twins() -> None:
    assert recipe_fields({"epochs": np.arange(8, 13, 2)})["epochs"].options == (8, 10, 12)
    assert recipe_fields({"batch_size": np.array([32, 64])})["batch_size"].options == (32, 64)
    assert Recipe.from_arch({"epochs": np.int64(8)}).epochs == 8
    assert type(Recipe.from_arch({"epochs": np.int64(8)}).epochs) is int
    assert Recipe(lr=np.float32(0.01)).lr == pytest.approx(0.01)
    with pytest.raises(ConfigError, match=r"^epochs: expected an int >= 1"):
        Recipe(epochs=np.int64(0))


def test_recipe_fields_refuses_a_bare_value() -> None:
    for bad in (0.01, "abc", {"a": 0.01}):
        with pytest.raises(ConfigError, match=r"^lr: expected a list of values"):
            recipe_fields({"lr": bad})


# ---------------------------------------------------------------------------------------- 7: split helpers
@pytest.mark.parametrize("kwargs, field", [
    ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"valid_size": 2.5}, "valid_size"),
    ({"valid_size": True}, "valid_size"), ({"test_size": 1.5}, "test_size"),
])
def test_digits_splits_name_bad_arguments(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: expected an int >= 0"):
        digits_splits(**kwargs)


@pytest.mark.parametrize("kwargs, field", [
    ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"valid_size": 2.5}, "valid_size"),
    ({"valid_size": True}, "valid_size"),
])
def test_mnist1d_splits_name_bad_arguments(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: expected an int >= 0"):
        mnist1d_splits(**kwargs)


def test_split_helpers_take_numpy_ints() -> None:
    a, b = digits_splits(seed=np.int64(1), valid_size=np.int64(400)), digits_splits(seed=1, valid_size=400)
    assert all(torch.equal(a[k][0], b[k][0]) and torch.equal(a[k][1], b[k][1]) for k in a)
