"""A choice point that never runs in forward changes nothing: deriving the space warns, naming its label and
module path, so a search does not silently spend evaluations on architectures that are one network."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from nas import nn as nnn

pytestmark = pytest.mark.usefixtures("one_thread")


class Unused(nnn.ModelSpace):
    """`spare` (a LayerChoice) and `extra`'s kernel are never called in forward; `width` and `depth` are used."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        width = nnn.Choice("width", [8, 16])
        self.stem = nnn.Conv2d(1, width, 3, padding=1)
        self.blocks = nnn.Repeat(lambda i: nnn.Conv2d(width, width, 3, padding=1), depth=nnn.Choice("depth", [1, 2]))
        self.spare = nnn.LayerChoice({"conv": nnn.Conv2d(width, width, 3, padding=1), "skip": nn.Identity()},
                                     label="spare")
        self.extra = nnn.Conv2d(width, width, nnn.Choice("extra_k", [3, 5]), padding="same")
        self.head = nnn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class Used(Unused):
    """The same layers, all of them called."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.extra(self.spare(self.blocks(self.stem(x)))).mean((2, 3)))


class Bypassed(Unused):
    """The Repeat's first block is called directly, so its depth choice never takes effect."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks.blocks()[0](self.stem(x))
        return self.head(self.extra(self.spare(h)).mean((2, 3)))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "nas.nn.model_space"]


def test_unused_choice_points_are_named(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nas.nn.model_space"):
        space = Unused.space()
    assert {"spare", "extra_k", "depth"} <= set(space.fields)
    said = warnings_of(caplog)
    assert len(said) == 1, said
    assert "'spare' (at spare)" in said[0] and "'extra_k' (at extra)" in said[0]
    assert "'width'" not in said[0] and "'depth'" not in said[0]
    assert said[0].startswith("Unused: the choice points of")


def test_a_model_calling_every_choice_point_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nas.nn.model_space"):
        Used.space()
    assert warnings_of(caplog) == []


def test_a_repeat_whose_forward_never_runs_is_named(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nas.nn.model_space"):
        Bypassed.space()
    said = warnings_of(caplog)
    assert len(said) == 1 and "'depth' (at blocks)" in said[0] and "'spare'" not in said[0], said
