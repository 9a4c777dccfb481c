"""Edges of a user's own model (`nas.nn`): unsorted sizes, head counts, list LayerChoices, ModuleDict candidates,
iterator and numpy options, Repeat label clashes, unlabelled value choices, one-shot failures of one architecture,
and the export of a workdir whose model changed since the search."""

from __future__ import annotations

import ast
import json
import re

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas import nn as nnn
from nas.errors import ConfigError, SpaceDefinitionError
from nas.export import export
from nas.modelspec import record_model
from nas.spaces.training import SandwichRule, SinglePath
from nas.strategies.optuna_sampler import distribution

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------- 1. unsorted sizes
class Unsorted(nnn.ModelSpace):
    """A width and a kernel listed out of order (numbers out of order are categorical to the encodings)."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("width", [32, 16, 64])
        self.c = nnn.Conv2d(1, w, nnn.Choice("k", [5, 3, 7]), padding="same")
        self.o = nnn.Linear(w, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(self.c(x).mean((2, 3)))


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_largest_and_smallest_take_sizes_by_value_whatever_their_listing_order():
    space = Unsorted.space()
    assert not space.fields["width"].ordered  # the space (its encodings, ids) is as before
    assert space.largest().to_dict() == {"width": 64, "k": 7}
    assert space.smallest().to_dict() == {"width": 16, "k": 3}
    counts = [_params(Unsorted.build(a)) for a in space]
    assert _params(Unsorted.build(space.largest())) == max(counts)
    assert _params(Unsorted.build(space.smallest())) == min(counts)


def _kernels(options: list[int]) -> type[nnn.ModelSpace]:
    class Kernels(nnn.ModelSpace):
        input_shape = (1, 6, 6)

        def __init__(self) -> None:
            super().__init__()
            self.c = nnn.Conv2d(1, 4, nnn.Choice("k", options))  # no padding: a 7x7 kernel does not fit 6x6
            self.o = nnn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.o(self.c(x).mean((2, 3)))

    return Kernels


@pytest.mark.parametrize("options", [[3, 5, 7], [5, 3, 7], [7, 5, 3]])
def test_the_shape_probe_runs_the_largest_kernel_whatever_the_listing_order(options):
    with pytest.raises(SpaceDefinitionError, match="the model fails on input_shape"):
        _kernels(options).space()


# ---------------------------------------------------------------------------------------- 2. head counts
def _attention(heads: object) -> type[nnn.ModelSpace]:
    class Attention(nnn.ModelSpace):
        input_shape = (4, 12)

        def __init__(self) -> None:
            super().__init__()
            e = nnn.Choice("e", [8, 12])
            self.inp = nnn.Linear(12, e)
            self.att = nnn.MultiheadAttention(e, heads(e) if callable(heads) else heads, batch_first=True)
            self.o = nnn.Linear(e, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.inp(x)
            return self.o(self.att(h, h, h)[0].mean(1))

    return Attention


def test_head_counts_that_do_not_divide_every_embed_dim_are_refused_naming_num_heads():
    with pytest.raises(SpaceDefinitionError, match=r"^att\.num_heads: 3 heads do not divide embed_dim 8 "):
        _attention(nnn.Choice("h", [2, 3])).space()
    with pytest.raises(SpaceDefinitionError, match=r"^att\.num_heads: 3 heads do not divide embed_dim 8 "):
        _attention(3).space()
    with pytest.raises(SpaceDefinitionError, match=r"^att\.num_heads: 0 is not a positive int"):
        _attention(nnn.Choice("h", [0, 2])).space()


def test_head_counts_tied_to_embed_dim_divide_it_in_every_architecture():
    net = _attention(lambda e: e // 4)
    space = net.space()
    assert space.size() == 2
    for arch in space:
        assert net.build(arch)(torch.zeros(2, 4, 12)).shape == (2, 2)
    assert _attention(nnn.Choice("h", [1, 2, 4])).space().size() == 6


# ---------------------------------------------------------------------------------------- 3, 4. LayerChoice keys
def _choosing(candidates: object) -> type[nnn.ModelSpace]:
    class Choosing(nnn.ModelSpace):
        input_shape = (8,)

        def __init__(self) -> None:
            super().__init__()
            self.op = nnn.LayerChoice(candidates(), label="op")
            self.o = nnn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.o(self.op(x))

    return Choosing


def test_a_list_of_candidates_is_a_categorical_decision():
    field = _choosing(lambda: [nn.ReLU(), nn.Tanh(), nn.Identity()]).space().fields["op"]
    assert field.options == (0, 1, 2) and field.ordered is False
    assert type(distribution(field)).__name__ == "CategoricalDistribution"
    keyed = _choosing(lambda: {3: nn.ReLU(), 5: nn.Tanh()}).space().fields["op"]  # int keys may mean sizes
    assert keyed.options == (3, 5) and keyed.ordered is True


def test_a_module_dict_of_candidates_is_taken_as_a_mapping():
    net = _choosing(lambda: nn.ModuleDict({"relu": nn.ReLU(), "tanh": nn.Tanh()}))
    space = net.space()
    assert space.fields["op"].options == ("relu", "tanh")
    assert isinstance(net.build({"op": "tanh"}).op, nn.Tanh)


# ---------------------------------------------------------------------------------------- 5, 8. option values
def _width(options: object, features: object = 8) -> type[nnn.ModelSpace]:
    class Width(nnn.ModelSpace):
        input_shape = (8,)

        def __init__(self) -> None:
            super().__init__()
            w = nnn.Choice("w", options() if callable(options) else options)
            self.a = nnn.Linear(features, w)
            self.o = nnn.Linear(w, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.o(self.a(x))

    return Width


PLAIN = _width([8, 16, 32]).space().fields


@pytest.mark.parametrize("options", [lambda: (2 ** i for i in range(3, 6)), lambda: map(int, "8 16 32".split()),
                                     lambda: {8: "a", 16: "b", 32: "c"}.keys()], ids=["generator", "map", "keys"])
def test_options_given_as_an_iterator_are_read_once_as_a_list(options):
    assert _width(options).space().fields == PLAIN


@pytest.mark.parametrize("options", [8, "wide"])
def test_options_that_are_no_list_are_refused_naming_the_label(options):
    with pytest.raises(SpaceDefinitionError, match=r"^Choice\('w'\): options must be a list"):
        _width(options).space()


@pytest.mark.parametrize("options", [lambda: np.array([8, 16, 32]), lambda: [np.int64(8), np.int64(16), np.int64(32)]],
                         ids=["array", "scalars"])
def test_numpy_options_and_sizes_mean_their_python_twins(options):
    net = _width(options, features=np.int64(8))
    assert net.space().fields == PLAIN
    assert net.build({"w": 16})(torch.zeros(2, 8)).shape == (2, 2)


# ---------------------------------------------------------------------------------------- 6, 7. labels
class RepeatLikeChoice(nnn.ModelSpace):
    """A Repeat whose blocks hold no choices, labelled like a width choice."""

    input_shape = (8,)

    def __init__(self) -> None:
        super().__init__()
        self.r = nnn.Repeat(lambda i: nnn.Linear(8, 8), depth=nnn.Choice("d", [1, 2]), label="w")
        self.l = nnn.Linear(8, nnn.Choice("w", [4, 8]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l(self.r(x))


def test_a_repeat_labelled_like_a_choice_is_refused_also_without_choices_in_its_blocks():
    with pytest.raises(SpaceDefinitionError, match=r"^r: the Repeat's label 'w' is also the label of a choice "
                                                   r"\(at l\.out_features\); give one of them another label"):
        RepeatLikeChoice.space()


def _depth_named_like_repeat(block_choice: bool) -> type[nnn.ModelSpace]:
    class Blocks(nnn.ModelSpace):
        input_shape = (8,)

        def __init__(self) -> None:
            super().__init__()
            width = (lambda: nnn.Choice("w", [8])) if block_choice else (lambda: 8)
            self.blocks = nnn.Repeat(lambda i: nnn.Linear(8, width()), depth=nnn.Choice("blocks", [1, 2]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.blocks(x)

    return Blocks


@pytest.mark.parametrize("block_choice", [False, True])
def test_an_unlabelled_repeat_does_not_take_the_label_of_its_own_depth(block_choice):
    net = _depth_named_like_repeat(block_choice)
    space = net.space()
    assert list(space.fields) == (["blocks", "blocks_2"] if block_choice else ["blocks"])
    arch = space.largest()
    assert len(net.build(arch).blocks) == 2


class Unlabelled(nnn.ModelSpace):
    """Value choices without labels: one object is one decision, each labelled by its module path and argument."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice(None, [4, 8])
        self.conv = nnn.Conv2d(1, w, nnn.Choice(None, [1, 3]), padding="same")
        self.blocks = nnn.Repeat(lambda i: nnn.Conv2d(w, w, nnn.Choice(None, [1, 3]), padding="same"),
                                 depth=nnn.Choice(None, [1, 2]))
        self.o = nnn.Linear(w, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(self.blocks(self.conv(x)).mean((2, 3)))


def test_unlabelled_value_choices_are_labelled_by_module_path_and_argument():
    space = Unlabelled.space()
    assert list(space.fields) == ["conv_out_channels", "conv_kernel_size", "blocks_depth", "blocks"]
    assert list(space.fields["blocks"].block.fields) == ["kernel_size"]
    assert space.size() == 2 * 2 * (2 + 4)
    arch = {"conv_out_channels": 8, "conv_kernel_size": 3, "blocks_depth": 2,
            "blocks": [{"kernel_size": 1}, {"kernel_size": 3}]}
    model = Unlabelled.build(arch)
    assert model.conv.kernel_size == (3, 3) and model.blocks[1].kernel_size == (3, 3) and model.o.in_features == 8


# ---------------------------------------------------------------------------------------- 9. one-shot failures
class TwoWidths(nnn.ModelSpace):
    """Two width labels added in a residual: runs only where they are equal (the largest and the smallest)."""

    input_shape = (8,)

    def __init__(self) -> None:
        super().__init__()
        self.a = nnn.Linear(8, nnn.Choice("a", [8, 16]))
        self.b = nnn.Linear(nnn.Choice("a", [8, 16]), nnn.Choice("b", [8, 16]))
        self.skip = nnn.Linear(8, nnn.Choice("a", [8, 16]))
        self.o = nnn.Linear(nnn.Choice("b", [8, 16]), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(self.b(self.a(x)) + self.skip(x))


@pytest.mark.parametrize("trainer", [SinglePath(epochs=3, batch_size=16, seed=0),
                                     SandwichRule(epochs=3, n_random=2, batch_size=16, seed=0)],
                         ids=["single-path", "sandwich"])
def test_a_training_step_failing_for_one_architecture_names_it(trainer):
    x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
    with pytest.raises(RuntimeError) as info:
        trainer.fit(TwoWidths.supernet(), x, y)
    said = str(info.value)
    found = re.match(rf"{type(trainer).__name__}: training architecture (\{{.*?\}}) failed: RuntimeError: The size "
                     r"of tensor a", said)
    assert found, said
    arch = ast.literal_eval(found.group(1))  # the dict the message shows
    assert arch["a"] != arch["b"]
    assert isinstance(info.value.__cause__, RuntimeError) and "size of tensor" in str(info.value.__cause__)


class Interrupted(nnn.ModelSpace):
    input_shape = (8,)

    def __init__(self) -> None:
        super().__init__()
        self.a = nnn.Linear(8, nnn.Choice("a", [4, 8]))
        self.o = nnn.Linear(nnn.Choice("a", [4, 8]), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:  # the shape probe runs in eval mode; the first training step is interrupted
            raise KeyboardInterrupt
        return self.o(self.a(x))


def test_an_interrupt_during_training_passes_as_it_is():
    supernet = Interrupted.supernet()
    with pytest.raises(KeyboardInterrupt):
        SinglePath(epochs=1, batch_size=16, seed=0).fit(supernet, torch.randn(64, 8), torch.randint(0, 2, (64,)))


# ---------------------------------------------------------------------------------------- 10. export
class Sized(nnn.ModelSpace):
    """A width whose options are a constructor argument, so that model.json can describe another space."""

    input_shape = (8,)

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.a = nnn.Linear(8, nnn.Choice("w", widths))
        self.o = nnn.Linear(nnn.Choice("w", widths), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(self.a(x))


def test_export_of_a_workdir_whose_model_changed_names_the_field_that_differs(tmp_path):
    space, wd = Sized.space([4, 8]), tmp_path / "wd"
    record_model(wd, space)
    nas.search(space, lambda a: {"params": float(a["w"])}, {"params": "min"}, strategy="random", budget=2, seed=0,
               workdir=wd)
    spec = json.loads((wd / "model.json").read_text())
    spec["space"]["config"]["args"] = [[4, 8, 16]]  # the model's options edited since the search
    (wd / "model.json").write_text(json.dumps(spec))
    said = "not the space the journal's search used (it differs at field w: the journal has choice [4, 8], " \
        "model.json's space [4, 8, 16])"
    with pytest.raises(ConfigError, match=re.escape(said)):
        export(wd, tmp_path / "models", onnx=False)
