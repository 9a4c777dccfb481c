"""Edge cases of the text recipe (experiments/transformer_mr.py), `train_with_recipe` on token ids, the FlexiBERT /
elastic transformer configs and `MPCLatency` (exploratory report 37)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.datasets import TextSplits
from nas.errors import ConfigError
from nas.hardware.mpc import MPCLatency
from nas.spaces.recipe import Recipe, train_with_recipe
from nas.spaces.transformer import ElasticTransformerConfig, FlexiBertConfig, FlexiBertSpace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import transformer_mr  # noqa: E402
from transformer_mr import TextRecipe, recipe_splits, train, train_recipe  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
ARCH = {"depth": 1, "layers": [{"op": "attention", "hidden": 16, "heads": 2, "ffn_depth": 1, "ffn": [{"dim": 16}]}]}
TINY = FlexiBertConfig(vocab_size=20, max_len=8, depths=(1,), hidden=(16,), heads=(2,), ffn_depths=(1,), ffn_dims=(16,),
                       dropout=0.0)


def toy() -> TextSplits:
    """300 sentences of 8 filler words; the first word says the label ("good": 1, "bad": 0)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(4, 20, (300, 8), generator=g)
    y = torch.randint(0, 2, (300,), generator=g)
    x[:, 0] = torch.where(y == 1, 2, 3)
    return TextSplits(x[:240], y[:240], x[240:], y[240:], ("<pad>", "<unk>", "good", "bad", *(f"w{i}" for i in range(4, 20))))


def splits_and_model(**recipe_options: object) -> tuple[object, TextRecipe, nn.Module]:
    options = {"min_count": 1, "max_len": 8, "max_epochs": 2, "batch_size": 32, "warmup": 0.0, **recipe_options}
    recipe = TextRecipe(**options)
    splits = recipe_splits(recipe, toy(), valid_fraction=0.2, seed=0)
    torch.manual_seed(0)
    return splits, recipe, FlexiBertSpace(recipe.config(TINY, len(splits.vocab))).build(ARCH)


# ---------------------------------------------------------------------------------------- 1: diverged training
class NaNLogits(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), 2), float("nan"))


def test_accuracy_is_nan_for_non_finite_logits():
    x, y = torch.zeros(5, 3, dtype=torch.long), torch.zeros(5, dtype=torch.long)
    assert math.isnan(transformer_mr.accuracy(NaNLogits(), x, y))  # not 1.0: the argmax of NaNs is class 0


def test_accuracy_keeps_the_float32_value_the_recorded_tables_hold():
    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.one_hot(x[:, 0], 2).float()

    x, y = torch.tensor([[0], [1], [1]]), torch.tensor([0, 1, 0])
    assert transformer_mr.accuracy(Fixed(), x, y) == float(torch.tensor([1.0, 1.0, 0.0]).mean())


def test_train_recipe_refuses_a_diverged_training():
    splits, recipe, model = splits_and_model(lr=1e6)
    with pytest.raises(ConfigError, match=r"^lr: the training loss is (nan|inf|-inf) at epoch \d+, step \d+"):
        train_recipe(model, splits, recipe, seed=0)


def test_train_refuses_a_diverged_training():
    data = toy()
    space = FlexiBertSpace(TINY)
    with pytest.raises(ConfigError, match=r"^lr: the training loss is (nan|inf|-inf) at epoch \d+, step \d+"):
        train(space, space.validate(ARCH), data, epochs=1, seed=0, batch_size=32, lr=1e6)


# ---------------------------------------------------------------------------------------- 2: the teacher
@pytest.mark.parametrize("make", [
    lambda n: torch.full((n, 3), 1 / 3),  # three classes for a two-class model
    lambda n: torch.ones(n, 1),  # one column, broadcast over both classes
    lambda n: torch.tensor([[2.0, -1.0]]).repeat(n, 1),  # logits, not probabilities
    lambda n: torch.full((n, 2), 0.3),  # rows that do not sum to 1
    lambda n: torch.full((n, 2), float("nan")),
    lambda n: np.full((n, 2), 0.5),  # not a tensor
    lambda n: torch.full((3, 2), 0.5),  # not one row per training sentence
    lambda n: None,  # distill > 0 without a teacher
], ids=["3 classes", "1 column", "logits", "not summing to 1", "nan", "numpy", "3 rows", "missing"])
def test_train_recipe_checks_the_teacher(make):
    splits, recipe, model = splits_and_model(lr=1e-3, distill=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match=r"^teacher: .*distill"):
        train_recipe(model, splits, recipe, seed=0, teacher=make(len(splits.train_y)))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # refused before training


def test_train_recipe_takes_a_probability_teacher():
    splits, recipe, model = splits_and_model(lr=1e-3, distill=0.5, max_epochs=1)
    teacher = nn.functional.one_hot(splits.train_y, 2).double() * 0.8 + 0.1  # float64 rows summing to 1
    out = train_recipe(model, splits, recipe, seed=0, teacher=teacher)
    assert 0.0 <= out["valid_accuracy"] <= 1.0 and all(math.isfinite(v) for v in out["train_loss"])


# ---------------------------------------------------------------------------------------- 3: mixup on token ids
def test_mixup_is_refused_on_token_ids_before_training():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(1, 20, (64, 8), generator=g), torch.randint(0, 2, (64,), generator=g)
    torch.manual_seed(0)
    model = FlexiBertSpace(TINY).build(ARCH)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match=r"^mixup: .*floating-point.*torch\.int64"):
        train_with_recipe(model, (x, y), Recipe(epochs=1, batch_size=32, mixup=0.1), seed=0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    run = train_with_recipe(model, (x, y), Recipe(epochs=1, batch_size=32, mixup=0.0, ema=0.9), seed=0)  # no mixup: fine
    assert run.ema is not None


def test_mixup_is_refused_on_integer_features_of_an_mlp():
    x, y = torch.randint(0, 5, (64, 4)), torch.arange(64) % 2
    with pytest.raises(ConfigError, match=r"^mixup: "):
        train_with_recipe(nn.Linear(4, 2), (x, y), Recipe(epochs=1, batch_size=32, mixup=0.3), seed=0)


# ---------------------------------------------------------------------------------------- 4: duplicate options
@pytest.mark.parametrize("config, field, value", [
    (lambda: FlexiBertConfig(ops=("attention", "attention", "conv")), "ops", "'attention'"),
    (lambda: FlexiBertConfig(hidden=(64, 64, 128)), "hidden", "64"),
    (lambda: FlexiBertConfig(hidden=(64, np.int64(64))), "hidden", "64"),
    (lambda: ElasticTransformerConfig(heads=(1, 2, 2)), "heads", "2"),
    (lambda: ElasticTransformerConfig(depths=[3, 3]), "depths", "3"),
])
def test_config_refuses_duplicate_options_under_its_own_field(config, field, value):
    with pytest.raises(ConfigError, match=rf"^{field}: {value} appears twice"):
        config()


# ---------------------------------------------------------------------------------------- 5: numpy scalars
def test_configs_take_numpy_scalars_as_their_python_twins():
    cfg = FlexiBertConfig(vocab_size=np.int64(100), max_len=np.percentile([8, 12, 16], 95).astype(int),
                          hidden=(np.int32(32), 64), heads=(np.int64(2),), dropout=np.float32(0.25))
    assert (cfg.vocab_size, cfg.max_len, cfg.hidden, cfg.heads, cfg.dropout) == (100, 15, (32, 64), (2,), 0.25)
    assert all(type(v) is int for v in (cfg.vocab_size, cfg.max_len, *cfg.hidden, *cfg.heads))
    assert type(cfg.dropout) is float
    elastic = ElasticTransformerConfig(hidden=np.int64(32), head_dim=np.int64(8), depths=(np.int64(1), 2))
    assert type(elastic.hidden) is int and type(elastic.head_dim) is int and elastic.depths == (1, 2)
    with pytest.raises(ConfigError, match="^max_len: expected positive ints"):
        FlexiBertConfig(max_len=np.int64(0))
    with pytest.raises(ConfigError, match="^dropout: "):
        FlexiBertConfig(dropout=np.float64(1.0))
    with pytest.raises(ConfigError, match="^hidden: expected positive ints"):
        FlexiBertConfig(hidden=(np.float64(64.0),))  # a float stays a float, even from numpy


def test_mpc_latency_takes_a_numpy_seq_len():
    space = FlexiBertSpace(TINY)
    mpc = MPCLatency(space, seq_len=np.int64(4))
    assert mpc.seq_len == 4 and type(mpc.seq_len) is int
    assert mpc(ARCH) == MPCLatency(space, seq_len=4)(ARCH)
    for bad in (np.int64(0), np.float64(4.0), True, np.int64(9)):
        with pytest.raises(ConfigError, match="^seq_len: "):
            MPCLatency(space, seq_len=bad)
