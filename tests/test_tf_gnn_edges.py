"""Edge cases of the transformer and GNN spaces: fourier padding invariance, NaN logits scored as failures,
config checks limited to the ops a space uses, and inputs refused up front with the field named."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch_geometric.data import Data

from nas.errors import ConfigError, SpaceDefinitionError
from nas.spaces.gnn import GNNSpace, NodeClassificationEvaluator, check_node_data, random_graph
from nas.spaces.training import accuracy
from nas.spaces.transformer import FlexiBertConfig, FlexiBertSpace
from nas.tabular import TRANSFORMER_TABLE_OPTIONS

FOURIER = {"depth": 2, "layers": [{"op": "fourier", "hidden": 16, "ffn_depth": 1, "ffn": [{"dim": 32}]}] * 2}


def _small_space(**kw: object) -> FlexiBertSpace:
    return FlexiBertSpace(FlexiBertConfig(vocab_size=50, max_len=16, hidden=(16,), heads=(2,), ffn_dims=(32,),
                                          depths=(2,), ffn_depths=(1,), **kw))


def _node_data() -> Data:
    data = random_graph(20, 4, seed=0)
    data.y = torch.arange(20) % 3
    data.train_mask = torch.arange(20) < 10
    data.val_mask = data.test_mask = torch.arange(20) >= 10
    return data


# ---------------------------------------------------------------------------------------- (1) fourier padding
def test_fourier_logits_do_not_depend_on_padding_or_batch() -> None:
    torch.manual_seed(0)
    model = _small_space().build(FOURIER).eval()
    sentence = torch.tensor([[5, 6, 7, 8, 9]])
    other = torch.randint(1, 50, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        alone = model(sentence)
        padded = model(nn.functional.pad(sentence, (0, 3)))
        at_max_len = model(nn.functional.pad(sentence, (0, 11)))
        in_batch = model(torch.cat([nn.functional.pad(sentence, (0, 7)), other]))[:1]
    for out in (padded, at_max_len, in_batch):
        assert (alone - out).abs().max().item() < 1e-5


def test_fourier_exported_program_agrees_with_the_model_on_shorter_input() -> None:
    torch.manual_seed(0)
    space = _small_space()
    model = space.build(FOURIER).eval()
    program = torch.export.export(model, (space.example_input(FOURIER, batch_size=4),)).module()  # at max_len
    x = torch.randint(1, 50, (4, 9), generator=torch.Generator().manual_seed(2))
    x[:, 6:] = 0
    with torch.no_grad():
        diff = (model(x) - program(nn.functional.pad(x, (0, 16 - 9)))).abs().max().item()
    assert diff < 1e-5


# ---------------------------------------------------------------------------------------- (2) NaN logits
def test_diverged_gnn_training_reports_nan_not_class_zero_accuracy() -> None:
    data = _node_data()
    space = GNNSpace(4, 3, hidden=(16,), layers=(1,), ops=("gcn",))
    metrics = NodeClassificationEvaluator(space, data, epochs=5, lr=1e30)(space.default())
    for name in ("train_acc", "valid_acc", "test_acc", "best_epoch"):
        assert math.isnan(metrics[name]), (name, metrics)


def test_check_node_data_refuses_non_finite_features() -> None:
    data = _node_data()
    data.x[3, 2] = float("nan")
    with pytest.raises(ConfigError, match=r"data\.x: 1 feature values are NaN or infinite, the first at node 3, "
                                          r"feature 2"):
        check_node_data(data)
    data.x = data.x.nan_to_num(0.0)
    data.x[0, 1] = float("inf")
    with pytest.raises(ConfigError, match=r"data\.x: .*node 0, feature 1"):
        check_node_data(data.clone().update({"x": data.x.to_sparse()}))


def test_training_accuracy_is_nan_for_non_finite_logits() -> None:
    x, y = torch.randn(6, 4), torch.zeros(6, dtype=torch.long)
    assert math.isnan(accuracy(lambda xb: torch.full((len(xb), 3), float("nan")), x, y))
    assert math.isnan(accuracy(lambda xb: torch.zeros(len(xb), 3).index_fill(0, torch.tensor([0]), float("inf")),
                               x, y, batch_size=4))
    assert accuracy(lambda xb: torch.eye(3)[torch.zeros(len(xb), dtype=torch.long)], x, y) == 1.0


# ---------------------------------------------------------------------------------------- (3) unused options
def test_heads_and_kernels_checked_only_when_their_op_is_in_the_space() -> None:
    assert FlexiBertSpace(FlexiBertConfig(ops=("conv", "fourier"), hidden=(6, 12))).size() > 0
    assert FlexiBertSpace(FlexiBertConfig(ops=("attention", "linear"), kernels=(4,))).size() > 0
    with pytest.raises(ConfigError, match="heads: 4 heads do not divide hidden size 6"):
        FlexiBertConfig(ops=("attention",), hidden=(6, 12))
    with pytest.raises(ConfigError, match="kernels: expected odd sizes"):
        FlexiBertConfig(ops=("conv",), kernels=(4,))


def test_default_and_table_space_ids_are_unchanged() -> None:
    """Recorded before the checks were limited to their ops: journals and tables keep matching."""
    got = []
    for cfg in (FlexiBertConfig(), FlexiBertConfig(**TRANSFORMER_TABLE_OPTIONS)):
        space = FlexiBertSpace(cfg)
        got.append((space.fingerprint(), space.default().id, space.sample(np.random.default_rng(0)).id))
    assert got == [("1905fb8a0f98562a", "ea776edfec7fbc26", "b110e024cd18006d"),
                   ("85c26d70fc657a77", "e433f79790197434", "692f6c259d554f73")]


# ---------------------------------------------------------------------------------------- (4) refused up front
def test_vocab_size_below_two_is_refused_when_the_config_is_made() -> None:
    with pytest.raises(ConfigError, match="vocab_size"):
        FlexiBertConfig(vocab_size=1)
    space = FlexiBertSpace(FlexiBertConfig(vocab_size=2, max_len=8, hidden=(16,), ffn_dims=(32,)))
    assert space.count(space.default())["params"] > 0


def test_one_dimensional_tokens_are_refused_naming_the_shape() -> None:
    space = _small_space()
    model = space.build(space.default())
    with pytest.raises(ConfigError, match=r"tokens: expected token ids \[batch, length\], got shape \(3,\)"):
        model(torch.tensor([3, 4, 5]))


def test_example_graph_without_edges_is_refused_naming_edge_index() -> None:
    with pytest.raises(SpaceDefinitionError, match=r"example_graph\.edge_index"):
        GNNSpace(4, 2, example_graph=Data(x=torch.randn(5, 4)))
    with pytest.raises(SpaceDefinitionError, match=r"example_graph\.edge_index"):
        GNNSpace(4, 2, example_graph=Data(x=torch.randn(5, 4), edge_index=torch.tensor([[0, 1], [1, 5]])))
    space = GNNSpace(4, 2, example_graph=Data(x=torch.randn(5, 4), edge_index=torch.empty(2, 0, dtype=torch.long)))
    assert space.count(space.default())["params"] > 0
