"""Patterns a user's own model meets (found by trying them from outside): a module with a choice shared by a
Repeat's blocks, colliding automatic labels, choices inside tuple arguments, a choice passed to one block of a
Repeat, nested LayerChoices under a latency loss, InputChoice subnets in TorchScript, and a model class in a
module beside the user's script."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from nas import nn as nnn
from nas.errors import ConfigError, SpaceDefinitionError
from nas.objectives import Problem
from nas.strategies import STRATEGIES, make_strategy

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def _same_outputs(model: type[nnn.ModelSpace], x: torch.Tensor) -> int:
    """Every architecture's subnet computes what the supernet computes for it (eval mode); how many were checked."""
    torch.manual_seed(0)
    supernet = model.supernet().eval()
    archs = list(model.space())
    for arch in archs:
        with torch.no_grad():
            torch.testing.assert_close(supernet.subnet(arch).eval()(x), supernet(x, arch), atol=1e-6, rtol=0)
    return len(archs)


# ------------------------------------------------------------------------- a module shared in several places
class _Block(nn.Module):
    def __init__(self, shared: nn.Module) -> None:
        super().__init__()
        self.shared, self.own = shared, nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.own(self.shared(x))


class SharedInBlocks(nnn.ModelSpace):
    """One conv with a kernel choice, shared by every block of a Repeat of depth 1-3."""

    input_shape = (4, 6, 6)

    def __init__(self) -> None:
        super().__init__()
        shared = nnn.Conv2d(4, 4, nnn.Choice("k", [1, 3]), padding="same")
        self.blocks = nnn.Repeat(lambda i: _Block(shared), depth=nnn.Choice("d", [1, 2, 3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class UsedTwice(nnn.ModelSpace):
    """A layer with a choice, used directly and as one candidate of a LayerChoice."""

    input_shape = (4, 6, 6)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nnn.Conv2d(4, 4, nnn.Choice("k", [1, 3]), padding="same")
        self.op = nnn.LayerChoice({"a": self.conv, "b": nn.Identity()}, label="op")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(self.conv(x))


def test_a_module_shared_by_blocks_or_candidates_runs_wherever_one_of_its_places_is_on():
    """Blocks past the depth (or a candidate not picked) were bound after the block that runs it, switching it
    off: the supernet failed for every depth below the largest, and deriving with input_shape failed too."""
    x = torch.randn(2, 4, 6, 6)
    assert SharedInBlocks.space().size() == 6 and _same_outputs(SharedInBlocks, x) == 6
    assert UsedTwice.space().size() == 4 and _same_outputs(UsedTwice, x) == 4
    sub = SharedInBlocks.supernet().subnet({"k": 3, "d": 2})
    assert sub.blocks[0].shared is sub.blocks[1].shared  # still one module in the subnet


# ------------------------------------------------------------------------------------ automatic labels
def _ops() -> list[nn.Module]:
    return [nn.Conv2d(4, 4, 3, padding=1), nn.Identity()]


class AlikeLabels(nnn.ModelSpace):
    """Unlabelled LayerChoices at `conv.1` and `conv_1`: both came out as 'conv_1', one decision."""

    input_shape = (4, 6, 6)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(4, 4, 1), nnn.LayerChoice(_ops()))
        self.conv_1 = nnn.LayerChoice(_ops())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1(self.conv(x))


class _OpBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.op = nnn.LayerChoice(_ops())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class OuterAndBlockOp(nnn.ModelSpace):
    """Unlabelled `op` at the top and in each block of a Repeat: refused for a label the user never wrote."""

    input_shape = (4, 6, 6)

    def __init__(self) -> None:
        super().__init__()
        self.op = nnn.LayerChoice(_ops())
        self.blocks = nnn.Repeat(lambda i: _OpBlock(), depth=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.op(x))


class UserAndAutoLabel(nnn.ModelSpace):
    """A user's label 'conv_1' and an unlabelled LayerChoice at `conv.1` (automatically 'conv_1')."""

    input_shape = (4, 6, 6)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(4, 4, 1), nnn.LayerChoice(_ops()))
        self.other = nnn.LayerChoice({"x": nn.Identity(), "y": nn.Conv2d(4, 4, 1)}, label="conv_1")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.other(self.conv(x))


def test_automatic_labels_never_merge_two_choice_points_or_clash_with_a_label_given():
    x = torch.randn(2, 4, 6, 6)
    space = AlikeLabels.space()
    assert list(space.fields) == ["conv_1", "conv_1_2"] and space.size() == 4
    assert _same_outputs(AlikeLabels, x) == 4
    space = OuterAndBlockOp.space()
    assert list(space.fields) == ["op", "blocks"] and list(space.fields["blocks"].block.fields) == ["blocks_op"]
    assert space.size() == 8 and _same_outputs(OuterAndBlockOp, x) == 8
    space = UserAndAutoLabel.space()
    assert sorted(space.fields) == ["conv_1", "conv_1_2"] and space.fields["conv_1"].options == ("x", "y")
    assert space.size() == 4 and _same_outputs(UserAndAutoLabel, x) == 4


# ------------------------------------------------------------------------------- choices in tuple arguments
class TupleArgs(nnn.ModelSpace):
    """stride=(s, s), kernel_size=(k, k) from two Choice objects of one label, padding=(p, 1)."""

    input_shape = (4, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        s = nnn.Choice("s", [1, 2])
        self.a = nnn.Conv2d(4, 4, 3, stride=(s, s), padding=1)
        self.b = nnn.Conv2d(4, 4, (nnn.Choice("k", [1, 3]), nnn.Choice("k", [1, 3])), padding="same")
        self.c = nnn.Conv2d(4, 4, 3, padding=(nnn.Choice("p", [1, 2]), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.b(self.a(x))).mean((2, 3))


def test_choices_inside_tuple_arguments_are_decisions_not_silently_plain_layers():
    """`stride=(s, s)` gave a plain torch layer (then 'has no choice points', or a raw torch error)."""
    space = TupleArgs.space()
    assert sorted(space.fields) == ["k", "p", "s"] and space.size() == 8
    assert _same_outputs(TupleArgs, torch.randn(2, 4, 8, 8)) == 8
    sub = TupleArgs.supernet().subnet({"s": 2, "k": 3, "p": 2})
    assert (sub.a.stride, sub.b.kernel_size, sub.c.padding) == ((2, 2), (3, 3), (2, 1))

    class NonSquare(nnn.ModelSpace):
        input_shape = (4, 8, 8)

        def __init__(self) -> None:
            super().__init__()
            self.a = nnn.Conv2d(4, 4, (nnn.Choice("kh", [1, 3]), nnn.Choice("kw", [1, 3])))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x)

    with pytest.raises(SpaceDefinitionError, match=r"^a\.kernel_size: options .* are not positive ints"):
        NonSquare.space()


# ----------------------------------------------------------------- a choice passed to one block of a Repeat
class _StrideBlock(nn.Module):
    def __init__(self, stride: object) -> None:
        super().__init__()
        self.conv = nnn.Conv2d(4, 4, 3, stride=stride, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class FirstStride(nnn.ModelSpace):
    """A stage whose first block's stride is searched: the choice is made outside the factory."""

    input_shape = (4, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        stride = nnn.Choice("stride", [1, 2])
        self.blocks = nnn.Repeat(lambda i: _StrideBlock(stride if i == 0 else 1), depth=nnn.Choice("depth", [1, 2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class _KernelBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nnn.Conv2d(4, 4, nnn.Choice("k", [1, 3]), padding="same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PerBlockKernel(nnn.ModelSpace):
    """A choice the factory makes for every block stays one decision per block."""

    input_shape = (4, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nnn.Repeat(lambda i: _KernelBlock(), depth=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def test_a_choice_given_to_one_block_of_a_repeat_is_one_decision_of_the_model():
    """It was taken for a per-block choice of block 0, and the space refused: 'the blocks of a Repeat must hold
    the same choices'."""
    space = FirstStride.space()
    assert sorted(space.fields) == ["depth", "stride"] and space.size() == 4
    assert _same_outputs(FirstStride, torch.randn(2, 4, 8, 8)) == 4
    sub = FirstStride.supernet().subnet({"stride": 2, "depth": 2})
    assert sub.blocks[0].conv.stride == (2, 2) and sub.blocks[1].conv.stride == (1, 1)
    blocks = PerBlockKernel.space().fields["blocks"]
    assert list(blocks.block.fields) == ["k"] and PerBlockKernel.space().size() == 4


class SecondStride(nnn.ModelSpace):
    """The choice goes to block 1, which depth 1 leaves out."""

    input_shape = (4, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        stride = nnn.Choice("stride", [1, 2])
        self.blocks = nnn.Repeat(lambda i: _StrideBlock(stride if i == 1 else 1), depth=nnn.Choice("depth", [1, 2, 3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def test_a_choice_given_to_a_block_the_depth_can_leave_out_is_a_decision_only_where_the_block_runs():
    """At depth 1 the stride changed nothing, yet was a field: twin architectures under two ids (6, not 5)."""
    space = SecondStride.space()
    assert space.size() == 5 and space.validate({"depth": 1}).to_dict() == {"depth": 1}
    assert _same_outputs(SecondStride, torch.randn(2, 4, 8, 8)) == 5
    assert SecondStride.supernet().subnet({"depth": 2, "stride": 2}).blocks[1].conv.stride == (2, 2)


# ------------------------------------------------------------------------------------------ clear errors
class Reshaped(nnn.ModelSpace):
    """Reads its width choice in forward, in a reshape (torch says 'but got Choice' there)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nnn.Choice("w", [2, 4])
        self.conv = nnn.Conv2d(1, self.w, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return h.reshape(h.shape[0], self.w, -1)


def test_an_empty_choice_and_a_choice_read_by_reshape_name_the_users_line():
    with pytest.raises(SpaceDefinitionError, match=r"Choice\('width'\): options are empty \(at .*test_nn_user_patterns"):
        nnn.Conv2d(1, nnn.Choice("width", []), 3)

    with pytest.raises(SpaceDefinitionError, match=r"a choice is used as a plain number \(at .*test_nn_user_patterns"
                                                   r"\.py:\d+\) \(torch: reshape\(\)"):
        Reshaped.supernet()(torch.zeros(2, 1, 8, 8), {"w": 2})


# --------------------------------------------------------------------- nested LayerChoices, latency loss
class Nested(nnn.ModelSpace):
    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        inner = nnn.LayerChoice({"c3": nn.Conv2d(8, 8, 3, padding=1), "c1": nn.Conv2d(8, 8, 1)}, label="inner")
        self.op = nnn.LayerChoice({"nest": inner, "pool": nn.MaxPool2d(3, 1, 1), "id": nn.Identity()}, label="outer")
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.op(torch.relu(self.stem(x))).mean((2, 3)))


def test_a_latency_loss_prices_a_layerchoice_nested_in_anothers_candidate():
    """It was refused ('candidate c1 never runs in the priced architectures'); each candidate is now priced in an
    architecture that runs it, and the outer candidate without the inner choice it holds (priced on its own)."""
    from nas.darts import DartsOptions
    from nas.hardware.nn_layers import NNLayers
    from nas.strategies.oneshot_modules import ModuleOneShotTrainer, candidate_costs, priced_archs

    trainer = ModuleOneShotTrainer(Nested.space(), DartsOptions(latency="flops"))
    archs = [a.to_dict() for a in priced_archs(trainer.supernet)]
    assert {"outer": "nest", "inner": "c3"} in archs and {"outer": "nest", "inner": "c1"} in archs
    costs = candidate_costs(trainer.supernet, NNLayers(Nested.space())).costs
    mflops = 2 * 8 * 8 * 64 / 1e6  # a 1x1 conv, 8 -> 8 channels on 8x8: 8 multiply-adds per output
    assert costs["inner"][0].tolist() == pytest.approx([9 * mflops, mflops], rel=1e-6)
    assert costs["outer"][0, 0].item() == pytest.approx(0.0, abs=1e-9)  # the nest holds nothing but the inner choice


# ----------------------------------------------------------------------------- InputChoice: strategies, script
class Picks(nnn.ModelSpace):
    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nnn.Conv2d(1, nnn.Choice("width", [4, 8]), 3, padding=1)
        self.pick = nnn.InputChoice(3, 2, reduction="sum", label="pick")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.pick([h, 2 * h, torch.relu(h)])


def test_strategies_refused_on_an_inputchoice_are_the_ones_docs_list():
    documented = {"rl", "autognn", "mcts", "tpe", "gp", "cmaes", "qmc", "nsga2-optuna"}
    text = (ROOT / "docs" / "model_space.md").read_text()
    assert all(f"`{name}`" in text for name in documented)
    space = Picks.space()
    refused = set()
    for name in sorted(STRATEGIES):
        if name in ("hyperband", "successive-halving"):  # need a FidelitySpace
            continue
        try:
            make_strategy(name, space, Problem.make({"w": "max"}), seed=0)
        except ConfigError as e:
            assert "a Subset field, 'pick'" in str(e)
            refused.add(name)
    assert refused == documented


def test_a_subnet_with_chosen_inputs_scripts_and_computes_the_same():
    torch.manual_seed(0)
    sub = Picks.supernet().eval().subnet({"width": 4, "pick": [0, 2]})
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(torch.jit.script(sub)(x), sub(x))


# ---------------------------------------------------------------------- a model class in the user's folder
def test_nas_export_finds_a_model_class_in_a_module_beside_the_users_script(tmp_path):
    """`python train.py` imports `mymodel` from its folder; `nas export` run there failed to ('no such module')."""
    (tmp_path / "mymodel.py").write_text(textwrap.dedent("""
        from torch import nn
        from nas import nn as nnn

        class Tiny(nnn.ModelSpace):
            input_shape = (4,)

            def __init__(self):
                super().__init__()
                width = nnn.Choice("width", [3, 5])
                self.body = nn.Sequential(nnn.Linear(4, width), nn.ReLU(), nnn.Linear(width, 2))

            def forward(self, x):
                return self.body(x)
        """))
    (tmp_path / "train.py").write_text(textwrap.dedent("""
        import nas
        from nas.modelspec import record_model
        from mymodel import Tiny

        space = Tiny.space()
        record_model("run", space, supernet=Tiny.supernet())
        nas.search(space, nas.cheap(lambda a: {"params": space.count(a)["params"]}), {"params": "min"},
                   strategy="random", budget=2, seed=0, workdir="run")
        """))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "train.py"], cwd=tmp_path, env=env, check=True, capture_output=True)
    nas_cli = str(Path(sys.executable).with_name("nas"))
    done = subprocess.run([nas_cli, "export", "run", "--out", "models"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "models").glob("*/model.onnx"))) >= 1


def test_nas_export_of_a_nas_run_search_finds_the_scripts_model_module_from_any_folder(tmp_path):
    """`nas run` and `nas resume` worked from anywhere, `nas export` only from the script's folder."""
    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    proj.mkdir()
    elsewhere.mkdir()
    (proj / "my_model.py").write_text(textwrap.dedent("""
        import torch
        from nas import nn as nnn

        class Net(nnn.ModelSpace):
            input_shape = (1, 8, 8)

            def __init__(self):
                super().__init__()
                w = nnn.Choice("w", [4, 8])
                self.conv = nnn.Conv2d(1, w, 3, padding=1)
                self.head = nnn.Linear(w, 10)

            def forward(self, x):
                return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))
        """))
    (proj / "job.py").write_text(textwrap.dedent("""
        import nas
        from nas.measure import count_metric
        from nas.modelspec import record_model, save_trial_weights
        from my_model import Net

        space = Net.space()
        objectives = {"params": "min"}
        budget = 2
        seed = 0
        record_model(nas.run_workdir(), space, metrics={"params": count_metric("params")})

        def evaluate(arch):
            save_trial_weights(nas.run_workdir(), arch, Net.build(arch).eval())
            return {"params": float(space.count(arch)["params"])}
        """))
    nas_cli = str(Path(sys.executable).with_name("nas"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    wd = str(proj / "runs" / "job")
    for cmd in (["run", str(proj / "job.py"), "--workdir", wd], ["export", wd, "--out", str(proj / "models"),
                                                                 "--no-onnx"]):
        done = subprocess.run([nas_cli, *cmd], cwd=elsewhere, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert len(list((proj / "models").glob("trial-*/model.json"))) >= 1
