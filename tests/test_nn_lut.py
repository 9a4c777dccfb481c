"""Lookup-table latency for a model space written with `nas.nn` (hardware/nn_layers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
from torch import nn
from typer.testing import CliRunner

from nas import nn as nnn
from nas.cli.hardware import app
from nas.errors import ConfigError
from nas.hardware import adapter_for, build_table, check_decomposition, lut_latency, measure_latencies
from nas.hardware.nn_layers import NNLayers, TracingWarning, covering_archs, module_layers

pytestmark = pytest.mark.usefixtures("one_thread")


class Block(nn.Module):
    """conv k -> BN -> ReLU, plus the input."""

    def __init__(self, width: nnn.Choice) -> None:
        super().__init__()
        self.body = nn.Sequential(nnn.Conv1d(width, width, nnn.Choice("kernel", [3, 7]), padding="same"),
                                  nnn.BatchNorm1d(width), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Net(nnn.ModelSpace):
    """Sizes spread wide (width 4..96, 1..4 blocks, a conv or a pool mixer): latencies differ clearly."""

    input_shape = (2, 64)

    def __init__(self) -> None:
        super().__init__()
        width = nnn.Choice("width", [4, 24, 96])
        self.stem = nnn.Conv1d(2, width, 3, padding=1)
        self.blocks = nnn.Repeat(lambda i: Block(width), depth=nnn.Choice("depth", [1, 2, 4]))
        self.mix = nnn.LayerChoice({"conv": nnn.Conv1d(width, width, 5, padding=2), "pool": nn.MaxPool1d(3, 1, 1)},
                                   label="mix")
        self.head = nnn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(self.blocks(self.stem(x))).mean(-1))


class Attention(nn.Module):
    def __init__(self, width: nnn.Choice) -> None:
        super().__init__()
        self.att = nnn.MultiheadAttention(width, 2, batch_first=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        t = h.transpose(1, 2)
        return self.att(t, t, t)[0].transpose(1, 2)


class Cell(nnn.ModelSpace):
    """Layers called with several tensors (attention) or a list (InputChoice), and a choice inside a candidate."""

    input_shape = (3, 10)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("w", [4, 8])
        self.inp = nnn.Conv1d(3, w, 1)
        self.op = nnn.LayerChoice({"conv": nnn.Conv1d(w, w, nnn.Choice("k", [3, 5]), padding="same"),
                                   "attn": Attention(w)}, label="op")
        self.pick = nnn.InputChoice(3, 2, reduction="sum")
        self.head = nnn.Linear(w, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        o = self.op(h)
        return self.head(self.pick([h, o, h * o]).mean(-1))


def test_layers_are_the_leaf_calls_of_the_frozen_subnet():
    space = Net.space()
    adapter = adapter_for(space)
    assert isinstance(adapter, NNLayers)
    arch = space.validate({"width": 24, "depth": 2, "mix": "conv", "blocks": [{"kernel": 3}, {"kernel": 7}]})
    kinds = [layer.kind for layer in adapter.layers(arch)]     # leaf modules and the functions of each forward
    assert kinds == ["Conv1d"] + ["Conv1d", "BatchNorm1d", "ReLU", "fn:_operator.add"] * 2 + \
        ["Conv1d", "method:mean", "Linear"]
    second = adapter.layers(arch)[5]
    assert second["kernel_size"] == (7,) and second["in_channels"] == 24 and second.input_shape == (24, 64)
    assert check_decomposition(adapter, arch).exact           # the layers' FLOPs and params are the network's
    net = Net.build(arch)
    assert [layer.key for layer in module_layers(net, torch.zeros(1, 2, 64))] == \
        [layer.key for layer in adapter.layers(arch)]


def test_the_covering_architectures_hold_every_layer_of_every_architecture():
    space = Net.space()
    adapter = NNLayers(space)
    assert len(covering_archs(space)) == 3 * (2 + 2 + 2) * 2      # width x (kernel per depth, blocks alike) x mix
    distinct = {layer.key for layer in adapter.distinct_layers()}
    rng = np.random.default_rng(0)
    for arch in [space.sample(rng) for _ in range(30)]:
        assert {layer.key for layer in adapter.layers(arch)} <= distinct, arch


def test_lut_latency_ranks_architectures_like_measured_latency(tmp_path):
    space = Net.space()
    adapter = NNLayers(space)
    table = build_table(adapter, tmp_path / "net.jsonl", warmup=2, repeats=5, rounds=3).with_statistic("min")
    assert len(table) == len(adapter.distinct_layers())
    rng = np.random.default_rng(1)
    pool = {a.id: a for a in (space.sample(rng) for _ in range(200))}.values()
    by_size = sorted(pool, key=lambda a: space.count(a)["flops"])
    archs = [by_size[int(i)] for i in np.linspace(0, len(by_size) - 1, 10)]   # smallest to largest
    assert space.count(archs[-1])["flops"] > 100 * space.count(archs[0])["flops"]
    assert all(not table.missing(adapter.layers(a)) for a in archs)
    latency = lut_latency(table, adapter)
    predicted = [latency.latency_ms(a) for a in archs]
    items = [(space.build(a).eval(), space.example_input(a, 1)) for a in archs]
    measured = [m.min_ms for m in measure_latencies(items, warmup=2, repeats=5, rounds=5)]
    tau = kendalltau(predicted, measured).statistic
    assert tau >= 0.6, (predicted, measured)


def test_choice_latency_is_each_candidates_share_of_the_table(tmp_path):
    space = Net.space()
    adapter = NNLayers(space)
    table = build_table(adapter, tmp_path / "net.jsonl", warmup=0, repeats=1, rounds=1)
    latency = lut_latency(table, adapter)
    arch = {"width": 96, "depth": 1, "mix": "pool", "blocks": [{"kernel": 7}]}
    (choice,) = adapter.choice_layers(arch)
    assert (choice.path, choice.label, choice.chosen) == ("mix", "mix", "pool")
    assert isinstance(Net.supernet().net.get_submodule(choice.path), nnn.LayerChoice)
    per = adapter.choice_latency(table, arch)["mix"]
    total = {k: latency.latency_ms({**arch, "mix": k}) for k in ("conv", "pool")}
    assert per["conv"] - per["pool"] == pytest.approx(total["conv"] - total["pool"], abs=1e-9)
    assert [layer.kind for layer in choice.candidates["conv"]] == ["Conv1d"]
    assert choice.candidates["conv"][0].input_shape == (96, 64)


def test_layers_with_several_inputs_and_choices_inside_candidates(tmp_path):
    space = Cell.space()
    adapter = NNLayers(space)
    table = build_table(adapter, tmp_path / "cell.jsonl", warmup=0, repeats=1, rounds=1)
    kinds = {layer.kind for layer in adapter.distinct_layers()}
    assert {"MultiheadAttention", "nas.nn.frozen.ChosenInputs", "Conv1d", "Linear"} <= kinds
    rng = np.random.default_rng(0)
    assert all(not table.missing(adapter.layers(space.sample(rng))) for _ in range(20))
    arch = space.validate({"w": 8, "op": "attn", "pick": [0, 2]})
    (choice,) = adapter.choice_layers(arch)       # "conv" is not in arch: its kernel takes the first option
    assert choice.candidates["conv"][0]["kernel_size"] == (3,)
    assert [layer.kind for layer in choice.candidates["attn"]] == \
        ["method:transpose", "MultiheadAttention", "method:transpose"]
    # self-attention: query, key and value are one tensor (so the table times MHA's fused path, as the network)
    assert json.loads(dict(choice.candidates["attn"][1].options)["call"]) == \
        [{"shape": [1, 10, 8]}, {"same": 0}, {"same": 0}]
    assert lut_latency(table, adapter).latency_ms(arch) > 0


class Branchy(nn.Module):
    """A forward with data-dependent control flow, which torch.fx cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.act(h) if h.sum() > 0 else -h


def test_an_untraceable_model_gives_its_leaf_modules_with_a_warning():
    with pytest.warns(TracingWarning, match="Branchy: torch.fx cannot trace it"):
        layers = module_layers(Branchy(), torch.ones(1, 2, 8))
    assert [layer.kind for layer in layers][0] == "Conv1d" and all(":" not in layer.kind for layer in layers)


def test_the_cli_builds_a_table_for_a_model_in_a_script(tmp_path):
    runner = CliRunner()
    out = tmp_path / "net.jsonl"
    target = f"{Path(__file__)}:Net"
    result = runner.invoke(app, ["build-lut", target, "--out", str(out), "--repeats", "1", "--warmup", "0",
                                 "--rounds", "1"])
    assert result.exit_code == 0, result.output
    assert f"holds {len(NNLayers(Net.space()).distinct_layers())} of" in result.output
    bad = runner.invoke(app, ["build-lut", f"{Path(__file__)}:Block", "--out", str(out)])
    assert bad.exit_code == 2 and "is not a nas.nn.ModelSpace subclass" in bad.output
    with pytest.raises(ConfigError, match="NNLayers decomposes a nas.nn ModuleSpace"):
        NNLayers(object())  # type: ignore[arg-type]


class OtherHead(Net):
    """Net's decisions with another head: the same space fields, other layers."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nnn.Linear(nnn.Choice("width", [4, 24, 96]), 5)


def test_a_table_built_from_the_script_path_serves_the_imported_class(tmp_path):
    from nas.hardware import LatencyTable

    out = tmp_path / "net.jsonl"
    result = CliRunner().invoke(app, ["build-lut", f"{Path(__file__)}:Net", "--out", str(out), "--repeats", "1",
                                      "--warmup", "0", "--rounds", "1"])
    assert result.exit_code == 0, result.output
    table = LatencyTable.load(out)
    arch = Net.space().largest()
    assert lut_latency(table, adapter_for(Net.space())).latency_ms(arch) > 0   # the class as this module imports it
    OtherHead.__qualname__ = "Net"
    with pytest.raises(ConfigError, match="model.structure"):
        lut_latency(table, adapter_for(OtherHead.space()))
