"""Uniform single-path one-shot training (`SinglePath`, SPOS) of a user model's supernet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nas import nn as nnn
from nas.datasets import digits_splits
from nas.errors import ConfigError
from nas.spaces.training import InheritedAccuracy, SinglePath

pytestmark = pytest.mark.usefixtures("one_thread")


class Net(nnn.ModelSpace):
    """Width, kernel and a LayerChoice per block: single-path training samples all of them."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        width = nnn.Choice("width", [8, 16])
        self.stem = nnn.Conv2d(1, width, nnn.Choice("k", [3, 5]), padding="same")
        self.bn = nnn.BatchNorm2d(width)
        self.blocks = nnn.Repeat(lambda i: nnn.LayerChoice({"conv": nnn.Conv2d(width, width, 3, padding=1),
                                                            "skip": nn.Identity()}, label="op"),
                                 depth=nnn.Choice("depth", [1, 2]))
        self.head = nnn.Linear(width * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(torch.relu(self.blocks(torch.relu(self.bn(self.stem(x))))), 1))


def test_single_path_training_lifts_random_subnets_above_chance():
    data = digits_splits(seed=0)
    (x, y), (xv, yv) = data["train"], data["valid"]
    space = Net.space()
    archs = [space.sample_subnet(np.random.default_rng(i)) for i in range(4)]
    torch.manual_seed(0)
    supernet = Net.supernet()
    before = [InheritedAccuracy(supernet, xv, yv, calib_x=x[:200])(a)["accuracy"] for a in archs]
    log = SinglePath(epochs=2, batch_size=64, seed=0).fit(supernet, x, y)
    after = [InheritedAccuracy(supernet, xv, yv, calib_x=x[:200])(a)["accuracy"] for a in archs]
    assert log.phases[0].name == "single-path" and log.phases[0].steps == 2 * (len(x) // 64)
    assert log.phases[0].epoch_losses[1] < log.phases[0].epoch_losses[0]
    assert max(before) < 0.25 and min(after) > 0.35  # chance is 0.1: every sampled subnet learned


def test_single_path_trains_one_path_per_step():
    """A step touches only the sampled architecture's weights: the unused LayerChoice candidate keeps its own."""
    data = digits_splits(seed=0)
    x, y = data["train"]
    torch.manual_seed(0)
    supernet = Net.supernet()

    class OnlySkip:  # the space, but its sampler always picks the skip in every block
        def __init__(self, space):
            self.space = space

        def __getattr__(self, name):
            return getattr(self.space, name)

        def sample_subnet(self, rng):
            a = self.space.sample_subnet(rng).to_dict()
            return self.space.validate({**a, "blocks": [{"op": "skip"} for _ in a["blocks"]]})

    supernet.space = OnlySkip(Net.space())
    conv = supernet.net.blocks.blocks()[0].candidate("conv").dynamic.weight.detach().clone()
    stem = supernet.net.stem.dynamic.weight.detach().clone()
    SinglePath(epochs=1, batch_size=64, seed=0).fit(supernet, x[:256], y[:256])
    assert torch.equal(supernet.net.blocks.blocks()[0].candidate("conv").dynamic.weight, conv)
    assert not torch.equal(supernet.net.stem.dynamic.weight, stem)


def test_single_path_checks_its_batch():
    with pytest.raises(ConfigError, match="batch_size"):
        SinglePath(epochs=1, batch_size=1).fit(Net.supernet(), torch.zeros(4, 1, 8, 8),
                                               torch.zeros(4, dtype=torch.long))
