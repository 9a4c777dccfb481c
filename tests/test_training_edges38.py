"""Training edges (session 38): integer inputs fed to a network that computes in floating point are a ConfigError
naming `x` (torch's own message kept), while token ids embedded first still train and other errors pass through."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.errors import ConfigError
from nas.spaces.recipe import Recipe, train_with_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

X = torch.randint(0, 5, (64, 8), generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(1))
RECIPE = Recipe(epochs=1, batch_size=16, mixup=0.0)


@pytest.mark.parametrize("model, said", [
    (nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), "mat1 and mat2 must have the same dtype"),
    (nn.Sequential(nn.BatchNorm1d(8), nn.Linear(8, 3)), "not implemented for 'Long'"),
    (nn.Sequential(nn.Unflatten(1, (1, 8)), nn.Conv1d(1, 3, 8), nn.Flatten()), "and bias type"),
])
def test_integer_inputs_to_a_float_network_name_x(model: nn.Module, said: str) -> None:
    with pytest.raises(ConfigError, match=r"^x: torch.int64 inputs reached a layer that computes in floating point "
                                          rf"\(torch: .*{said}.*\); convert them \(x.float\(\)\)"):
        train_with_recipe(model, (X, Y), RECIPE)


def test_token_ids_embedded_first_train() -> None:
    model = nn.Sequential(nn.Embedding(5, 4), nn.Flatten(), nn.Linear(32, 3))
    run = train_with_recipe(model, (X, Y), RECIPE)
    assert run.log.phases[0].steps == 4


def test_other_errors_pass_through_unchanged() -> None:
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        train_with_recipe(nn.Linear(7, 3), (X.float(), Y), RECIPE)
