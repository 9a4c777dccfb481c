"""A user's torch model with choice points (`nas.nn`): derived space, supernet, frozen subnets, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas import nn as nnn
from nas.errors import ConfigError, SpaceDefinitionError
from nas.nn.mutable import Mutable
from nas.spaces.model_space import ModelSpace as SpaceWithModels
from nas.spaces.training import InheritedAccuracy, SandwichRule
from tests.docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


class Block(nn.Module):
    """A residual block whose kernel is one decision per block; its middle width follows `width * 2`."""

    def __init__(self, width: nnn.Choice) -> None:
        super().__init__()
        self.conv = nnn.Conv2d(width, width * 2, nnn.Choice("k", [3, 5]), padding="same")
        self.bn = nnn.BatchNorm2d(width * 2)
        self.proj = nnn.Conv2d(width * 2, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(torch.relu(self.bn(self.conv(x))))


class Net(nnn.ModelSpace):
    """The issue's example, on 8x8 single-channel images."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        width = nnn.Choice("width", [16, 32, 48])
        self.stem = nnn.Conv2d(1, width, kernel_size=nnn.Choice("stem_k", [3, 5]), padding="same")
        self.blocks = nnn.Repeat(lambda i: Block(width), depth=nnn.Choice("depth", [1, 2, 3]))
        self.mix = nnn.LayerChoice({"conv": nnn.Conv2d(width, width, nnn.Choice("mix_k", [3, 5]), padding="same"),
                                    "pool": nn.MaxPool2d(3, 1, 1), "skip": nn.Identity()}, label="mix")
        self.head = nnn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(self.blocks(self.stem(x))).mean(dim=(2, 3)))


class Seq(nnn.ModelSpace):
    """1-D: depthwise conv, LayerNorm, multi-head attention with a head-count choice, an InputChoice."""

    input_shape = (6, 16)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("w", [8, 16])
        self.inp = nnn.Conv1d(6, w, 1)
        self.dw = nnn.Conv1d(w, w, nnn.Choice("k", [3, 5, 7]), groups=w, padding="same")
        self.ln = nnn.LayerNorm(w)
        self.att = nnn.MultiheadAttention(w, nnn.Choice("heads", [1, 2, 4]), batch_first=True)
        self.pick = nnn.InputChoice(3, 2, reduction="mean")
        self.bn = nnn.BatchNorm1d(w)
        self.head = nnn.Linear(w, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dw(self.inp(x))
        t = self.ln(h.transpose(1, 2))
        t, _ = self.att(t, t, t)
        return self.head(self.bn(self.pick([h, t.transpose(1, 2), h * 2])).mean(-1))


def test_the_derived_space_has_the_exact_size_and_the_structure_of_the_model():
    space = Net.space()
    assert isinstance(space, SpaceWithModels) and {"model", "supernet"} <= space.capabilities
    # width 3 x stem_k 2 x (mix: conv with mix_k 2, pool, skip = 4) x sum over depth d of 2^d blocks' kernels
    assert space.size() == 3 * 2 * 4 * (2 + 4 + 8) == sum(1 for _ in space)
    assert set(space.fields) == {"width", "stem_k", "depth", "mix", "mix_k", "blocks"}
    assert space.fields["mix_k"].on == "mix" and space.fields["mix_k"].values == ("conv",)
    assert space.fields["blocks"].count == "depth"
    arch = space.validate({"width": 32, "stem_k": 5, "depth": 2, "mix": "pool", "blocks": [{"k": 3}, {"k": 5}]})
    assert space.from_vector(space.to_vector(arch)) == arch and space.from_graph(space.to_graph(arch)) == arch
    assert space.largest()["mix"] == "conv" and space.smallest()["depth"] == 1
    assert Seq.space().size() == 2 * 3 * 3 * 3  # w, k, heads, 2 of 3 inputs


class Nested(nnn.ModelSpace):
    """Two stages (a fixed Repeat), each with its own depth choice over blocks with their own kernel choice;
    the last layer is one module repeated: a copied module shares its choices among the copies."""

    input_shape = (4, 8)

    def __init__(self) -> None:
        super().__init__()

        def stage(i: int) -> nn.Module:
            return nnn.Repeat(lambda j: nnn.Conv1d(4, 4, nnn.Choice("k", [1, 3]), padding="same"),
                              depth=nnn.Choice("blocks", [1, 2]), label="layers")

        self.stages = nnn.Repeat(stage, depth=2)
        self.tail = nnn.Repeat(nnn.Conv1d(4, 4, nnn.Choice("tail_k", [1, 3, 5]), padding="same"), depth=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.stages(x)).mean(-1)


def test_nested_repeats_give_nested_fields_and_a_copied_module_shares_its_choices():
    space = Nested.space()
    stage = space.fields["stages"].block
    assert space.fields["stages"].count == 2 and stage.fields["layers"].count == "blocks"
    assert set(space.fields) == {"stages", "tail_k"}  # tail's kernel: one decision for both copies
    assert space.size() == (2 + 4) ** 2 * 3
    _check_equal(Nested, torch.randn(8, 4, 8), 6, 3)


class Shadowed(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nnn.Linear(4, nnn.Choice("k", [4, 8]))
        self.rep = nnn.Repeat(lambda i: nnn.Linear(8, nnn.Choice("k", [4, 8])), depth=2)


def test_a_label_made_in_a_repeat_factory_and_used_outside_is_refused():
    with pytest.raises(SpaceDefinitionError, match=r"rep\.0\.out_features: label 'k' is created inside a Repeat's "
                                                   r"block and also used outside it \(at stem\.out_features\)"):
        Shadowed.space()


def _check_equal(model_space: type[nnn.ModelSpace], x: torch.Tensor, n: int, seed: int) -> None:
    space, supernet = model_space.space(), model_space.supernet()
    SandwichRule(epochs=1, n_random=1, batch_size=8, seed=seed).fit(supernet, x, torch.zeros(len(x), dtype=torch.long))
    rng = np.random.default_rng(seed)
    for _ in range(n):
        arch = space.sample(rng)
        for training in (False, True):
            supernet.train(training)
            sub = supernet.subnet(arch)
            assert sub.training == training
            torch.testing.assert_close(sub(x), supernet(x, arch), atol=1e-5, rtol=0)


def test_subnets_compute_what_the_supernet_computes_for_20_random_architectures():
    _check_equal(Net, torch.randn(16, 1, 8, 8), 20, 0)
    _check_equal(Seq, torch.randn(16, 6, 16), 8, 1)


def _plain(model: nn.Module, user: tuple[type, ...]) -> None:
    for name, m in model.named_modules():
        assert not isinstance(m, Mutable), name
        assert type(m).__module__.startswith("torch.") or isinstance(m, (*user, nnn.ChosenInputs)), (name, type(m))


def test_build_and_subnet_are_plain_torch_modules_of_the_architecture():
    space, supernet = Net.space(), Net.supernet()
    rng = np.random.default_rng(2)
    for _ in range(5):
        arch = space.sample(rng)
        built, sub = Net.build(arch), supernet.subnet(arch)
        for model in (built, sub):
            _plain(model, (Net, Block))
        assert {k: v.shape for k, v in built.state_dict().items()} == {k: v.shape for k, v in sub.state_dict().items()}
        assert len(built.blocks) == arch["depth"] and built.stem.out_channels == arch["width"]
        assert built.blocks[0].conv.out_channels == 2 * arch["width"]  # the derived expression width * 2
        assert built.blocks[-1].conv.kernel_size == (arch["blocks"][-1]["k"],) * 2
        assert isinstance(built.mix, {"conv": nn.Conv2d, "pool": nn.MaxPool2d, "skip": nn.Identity}[arch["mix"]])
        assert built(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    _plain(Seq.build(Seq.space().default()), (Seq,))
    assert type(nnn.Linear(3, 4)) is nn.Linear  # nothing to choose: the plain layer itself


class Reused(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.a = nnn.Linear(4, nnn.Choice("w", [8, 16]))
        self.b = nnn.Linear(nnn.Choice("w", [8, 32]), 2)


class Shapes(nnn.ModelSpace):
    input_shape = (4, 8)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("w", [4, 8])
        self.cell = nn.Sequential(nnn.Conv1d(4, w, 3, padding=1),
                                  nnn.LayerChoice([nnn.Conv1d(w, w, 3, padding=1), nnn.Conv1d(w, w, 3)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cell(x)


class Picks(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nnn.Linear(4, nnn.Choice("w", [4, 8])), nnn.InputChoice(3, 4))


class NotElastic(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.ModuleDict({"conv": nnn.Conv2d(4, nnn.Choice("w", [4, 8]), 3, groups=nnn.Choice("g", [1, 2]))})


class PlainTorch(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, nnn.Choice("w", [4, 8]), 3)


class EvenKernels(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nnn.Conv1d(4, 4, nnn.Choice("k", [2, 3]))


class PlainLinear(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, nnn.Choice("w", [4, 8]))  # torch's C++ parser rejects the choice itself


class PlainBatchNorm(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(nnn.Choice("w", [4, 8]))


class Equals(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("w", [16, 32])
        self.fc = nnn.Linear(4, w)
        self.act = nn.Identity() if w == 32 else nn.ReLU()  # would compare identity: one branch for every arch


class TwoRepeats(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.r1 = nnn.Repeat(lambda i: nnn.Linear(4, nnn.Choice("w", [4, 8])), depth=2, label="blocks")
        self.r2 = nnn.Repeat(lambda i: nnn.Linear(4, nnn.Choice("w", [4, 8])), depth=3, label="blocks")


class DottedKey(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.op = nnn.LayerChoice({"conv.bn": nn.Identity(), "skip": nn.Identity()}, label="op")


class WrongInput(nnn.ModelSpace):
    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)  # wants 3 channels; input_shape gives 1
        self.head = nnn.Linear(4, nnn.Choice("w", [2, 3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("model, message", [
    (PlainLinear, "a choice is used as a plain number in torch.nn.Linear (at "),
    (PlainBatchNorm, "a choice is used as a plain number in torch.nn.BatchNorm1d (at "),
    (Equals, "Choice('w'): a choice is used in a comparison (==, != or in) (at "),
    (TwoRepeats, "r2: the Repeat's label 'blocks' is also the label of another Repeat (at r1)"),
    (DottedKey, "LayerChoice 'op': candidate key 'conv.bn' must be an int or a non-empty string without '.'"),
    (WrongInput, "WrongInput: the model fails on input_shape (1, 8, 8) (a batch of 2, run while deriving the space"),
    (Reused, "b.in_features: label 'w' is reused with different options ([8, 32] here, [8, 16] at a.out_features)"),
    (Shapes, "cell.1: LayerChoice candidates give different output shapes: 0 -> (2, 8, 8), 1 -> (2, 8, 6)"),
    (Picks, "trunk.1: InputChoice picks 4 of 3 inputs"),
    (NotElastic, "body.conv.groups: a choice can set groups only for a depthwise conv"),
    (PlainTorch, "Choice('w'): a choice is used with % in torch.nn.Conv2d (at "),
    (EvenKernels, "conv.kernel_size: options [2, 3] cannot share one weight"),
])
def test_bad_definitions_give_one_clear_error_naming_the_module_path(model, message):
    with pytest.raises(SpaceDefinitionError) as info:
        model.space()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


class Tied(nnn.ModelSpace):
    """One layer registered under two names (tied weights), a choice layer among them; int LayerChoice keys; a
    plain square kernel given as a tuple beside elastic channels; a flatten that reads the batch size."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("w", [4, 8])
        self.conv = nnn.Conv2d(1, w, (3, 3), padding=1)
        self.pick = nnn.LayerChoice({3: nnn.Conv2d(w, w, 3, padding=1), 5: nnn.Conv2d(w, w, 5, padding=2)},
                                    label="k")
        self.pick_again = self.pick
        self.mid = nnn.Linear(w * 64, w * 64)
        self.mid_again = self.mid
        self.shared = nn.Linear(10, 10)
        self.shared_again = self.shared
        self.head = nnn.Linear(w * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.pick_again(self.pick(self.conv(x))))
        h = h.view(h.size(0), -1)
        return self.shared_again(self.shared(self.head(torch.relu(self.mid_again(self.mid(h))))))


def test_tied_layers_stay_tied_in_subnets_and_int_keys_stay_ints():
    space = Tied.space()
    assert space.fields["k"].options == (3, 5) and space.size() == 4
    torch.manual_seed(0)
    supernet = Tied.supernet().eval()
    x = torch.randn(5, 1, 8, 8)
    for arch in space:
        sub = supernet.subnet(arch).eval()
        with torch.no_grad():
            assert torch.allclose(sub(x), supernet(x, arch), atol=1e-6)
        assert sub.mid is sub.mid_again and sub.pick is sub.pick_again and sub.shared is sub.shared_again
        assert sub.shared is not supernet.net.shared  # the subnet's own copy, tied within itself
        assert type(sub.pick) is nn.Conv2d and sub.pick.kernel_size == (arch["k"],) * 2
        built = Tied.build(arch)
        assert built.mid is built.mid_again and built(x).shape == (5, 10)


class Digits(nnn.ModelSpace):
    """Digits (8x8 images); both reshapes read the batch size from the input."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("w", [4, 8])
        self.conv = nnn.Conv2d(1, w, 3, padding=1)
        self.head = nnn.Linear(w * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x.reshape(x.size(0), 1, 8, 8)))
        return self.head(h.view(h.size(0), -1))



def test_a_model_that_reads_the_batch_size_exports_onnx_with_a_dynamic_batch(tmp_path):
    """The ONNX file comes from the eager module, not the loaded program (which fixed the trace's batch of 2)."""
    ort = pytest.importorskip("onnxruntime")
    from nas.datasets import digits_splits
    from nas.export import export
    from nas.measure import accuracy_metric
    from nas.modelspec import DataRef, record_model

    torch.manual_seed(0)
    space, data = Digits.space(), digits_splits(seed=0)
    supernet = space.supernet().eval()
    record_model(tmp_path / "run", space, supernet=supernet, data=DataRef.of(digits_splits, seed=0),
                 metrics={"accuracy": accuracy_metric("valid", scale=1)})
    result = nas.search(space, lambda a: {"w": float(a["w"])}, {"w": "min"}, strategy="random", budget=2, seed=0,
                        workdir=tmp_path / "run")
    report = export(result, tmp_path / "models", data=data)
    x = data["valid"][0][:7]
    for model in report.models:
        session = ort.InferenceSession(str(Path(model.path) / "model.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            want = supernet(x, result.trials[model.trial].arch).numpy()
        assert got.shape == (7, 10) and np.abs(got - want).max() < 1e-4


def test_one_shot_fixed_refuses_a_repeat_and_names_the_labels_to_fix():
    from nas.strategies.oneshot_modules import held_values

    with pytest.raises(ConfigError, match=r"fixed: 'blocks' is a group of choices, not one; fix the labels inside "
                                          r"it \(k\)"):
        held_values(Net.space(), {"blocks": [{"k": 3}] * 3})  # was accepted and ignored
    assert [b["k"] for b in held_values(Net.space(), {"k": 3})["blocks"]] == [3, 3, 3]


def test_a_choice_point_run_without_an_architecture_says_so():
    with pytest.raises(SpaceDefinitionError, match="Conv2d: runs without an active architecture"):
        Net()(torch.zeros(1, 1, 8, 8))


def test_sandwich_training_trains_the_supernet_and_inherited_accuracy_evaluates_its_subnets():
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    supernet = Net.supernet()
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    log = SandwichRule(epochs=2, n_random=2, batch_size=16, seed=0).fit(supernet, x, y)
    assert len(log.phases[0].epoch_losses) == 2 and all(np.isfinite(log.phases[0].epoch_losses))
    changed = [k for k, v in supernet.state_dict().items() if not torch.equal(v, before[k])]
    assert any("stem" in k for k in changed) and any("mix.conv" in k for k in changed)
    score = InheritedAccuracy(supernet, x, y, x[:32], batch_size=16)(supernet.space.smallest())
    assert 0.0 <= score["accuracy"] <= 1.0
    with pytest.raises(ConfigError, match="elastic"):
        supernet.space.sample_subnet(np.random.default_rng(0), {"kernel"})


def test_any_strategy_searches_the_derived_space(tmp_path):
    space = Net.space()
    result = nas.search(space, lambda arch: {"params": space.count(arch)["params"]}, {"params": "min"},
                        strategy="evolution", budget=10, seed=0, workdir=tmp_path / "run")
    assert len(result.trials) == 10 and all(t.status == "ok" for t in result.trials)
    best = result.best()
    assert best.metrics["params"] == min(t.metrics["params"] for t in result.trials)
    assert nas.load(tmp_path / "run").trials == result.trials


def test_the_space_describes_itself_for_model_specs():
    space = Net.space()
    config = space.to_config()
    assert config["model"] == {"class": f"{__name__}.Net"}
    assert nnn.ModuleSpace.from_config(config).to_spec() == space.to_spec()


def test_a_model_defined_in_a_script_is_recorded_by_path_and_rebuilt_in_another_process(tmp_path):
    """What `nas run job.py` then `nas export` does: the class lives in the script, not an importable module."""
    script = tmp_path / "job.py"
    script.write_text(
        "from torch import nn\n"
        "from nas import nn as nnn\n"
        "class Tiny(nnn.ModelSpace):\n"
        "    input_shape = (4,)\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        width = nnn.Choice('width', [3, 5])\n"
        "        self.body = nn.Sequential(nnn.Linear(4, width), nn.ReLU(), nnn.Linear(width, 2))\n"
        "    def forward(self, x):\n"
        "        return self.body(x)\n"
        "import json, sys\n"
        "if __name__ == '__main__':\n"
        "    json.dump(Tiny.space().to_config(), sys.stdout)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, cwd=tmp_path)
    config = json.loads(out.stdout)
    assert config["model"] == {"class": "Tiny", "script": str(script.resolve())}
    space = nnn.ModuleSpace.from_config(config)
    assert space.size() == 2 and space.build({"width": 5}).body[0].out_features == 5


def test_docs_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks(ROOT / "docs" / "model_space.md")
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc_example__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/model_space.md python block {i + 1}", "exec"), namespace)
