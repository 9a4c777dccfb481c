"""Hardware cost-model edges from exploratory test report 38: lookup-table keys of `nas.nn` layers whose constructor
arguments cannot all be read back (`nn.GRU` / `nn.LSTM` / `nn.RNN`, a custom leaf module), a latency table that
holds one layer key twice, and the documented `python -m` form of `nas hardware`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas import nn as nnn
from nas.errors import ConfigError
from nas.hardware import LatencyTable, adapter_for, check_decomposition, count
from nas.hardware.layers import LayerConfig
from nas.hardware.lut import FORMAT, VERSION, TableEntry, build_table
from nas.hardware.nn_layers import NNLayers, module_layers

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]


class First(nn.Module):
    """An RNN's output sequence (drops its final hidden state)."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class RnnNet(nnn.ModelSpace):
    """A one-layer or a four-layer GRU: the same input shape, 4x the work."""

    input_shape = (6, 8)

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nnn.LayerChoice({"small": First(nn.GRU(8, 8, batch_first=True)),
                                    "big": First(nn.GRU(8, 8, num_layers=4, batch_first=True))}, label="cell")
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x).mean(dim=1))


class Mixer(nn.Module):
    """A leaf module that keeps none of its constructor arguments (only weights sized by them)."""

    def __init__(self, dim: int, expansion: int) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(dim * expansion, dim) * 0.1)
        self.w2 = nn.Parameter(torch.randn(dim, dim * expansion) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(torch.relu(F.linear(x, self.w1)), self.w2)


class MixNet(nnn.ModelSpace):
    input_shape = (8,)

    def __init__(self) -> None:
        super().__init__()
        self.mix = nnn.LayerChoice({"x1": Mixer(8, 1), "x8": Mixer(8, 8)}, label="mix")
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(x))


class Settings:
    """A constructor argument that is no plain value (the key cannot carry it)."""

    def __init__(self, times: int) -> None:
        self.times = times


class Repeated(nn.Module):
    """ReLU applied `settings.times` times: no weights, so nothing in its key tells two of them apart."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.settings.times):
            x = torch.relu(x) * 1.5
        return x

    def extra_repr(self) -> str:
        return f"times={self.settings.times}"


class RepeatNet(nnn.ModelSpace):
    input_shape = (8,)

    def __init__(self) -> None:
        super().__init__()
        self.body = nnn.LayerChoice({"once": Repeated(Settings(1)), "often": Repeated(Settings(20))}, label="body")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Scale(nn.Module):
    """A custom leaf that keeps its constructor argument under its own name: its key carries it."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.w = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w


def _table(adapter: NNLayers) -> LatencyTable:
    """Stand-in timings for every distinct layer: 1 ns per FLOP."""
    entries = []
    for layer in adapter.distinct_layers():
        leaves = adapter.layer_counts(layer)
        flops, params, moved = (sum(getattr(x, f) for x in leaves) for f in ("flops", "params", "bytes_moved"))
        ms = 1e-6 * flops
        entries.append(TableEntry(layer, ms, ms, ms, ms, ms, flops, params, moved, None, ms))
    return LatencyTable({"batch_size": 1, "threads": 1, "adapter": adapter.describe()}, entries)


# -- defect 1: layers whose constructor arguments cannot all be read back


def test_rnn_keys_carry_their_constructor_arguments():
    x = torch.zeros(1, 6, 8)
    one = module_layers(nn.GRU(8, 8, batch_first=True), x)[0]
    four = module_layers(nn.GRU(8, 8, num_layers=4, batch_first=True), x)[0]
    assert one.key != four.key
    assert one["num_layers"] == 1 and four["num_layers"] == 4 and four["hidden_size"] == 8
    lstm = nn.LSTM(8, 6, proj_size=3, bidirectional=True, batch_first=True)
    relu = nn.RNN(8, 6, nonlinearity="relu", batch_first=True)
    for module in (lstm, relu, nn.GRU(8, 5, bias=False, batch_first=True)):
        layer = module_layers(module, x)[0]
        assert "_state" not in dict(layer.options)
        assert repr(NNLayers._rebuild(layer)) == repr(module)  # the key alone rebuilds the layer


def test_rnn_choice_counts_and_latency_are_each_candidates_own():
    space = RnnNet.space()
    adapter = adapter_for(space)
    small, big = space.validate({"cell": "small"}), space.validate({"cell": "big"})
    assert adapter.layers(small)[0].key != adapter.layers(big)[0].key
    for arch in (small, big):  # one adapter, the small GRU counted first
        assert check_decomposition(adapter, arch).exact
    x = torch.zeros(1, 6, 8)
    flops = [sum(leaf.flops for leaf in adapter.arch_counts(a)) for a in (small, big)]
    assert flops == [count(RnnNet.build(a), x)["flops"] for a in (small, big)]
    costs = adapter.choice_latency(_table(adapter), small)["rnn"]
    assert costs["big"] > 3 * costs["small"] > 0


def test_custom_leaf_without_its_arguments_gets_its_weight_shapes_in_the_key():
    space = MixNet.space()
    adapter = adapter_for(space)
    narrow, wide = space.validate({"mix": "x1"}), space.validate({"mix": "x8"})
    k1, k8 = adapter.layers(narrow)[0], adapter.layers(wide)[0]
    assert k1.key != k8.key
    assert dict(k8.options)["_state"] == ("w1:64x8", "w2:8x64")
    for arch in (narrow, wide):
        assert check_decomposition(adapter, arch).exact
    assert sum(leaf.flops for leaf in adapter.arch_counts(wide)) == count(MixNet.build(wide), torch.zeros(1, 8))["flops"]


def test_keys_of_layers_rebuilt_from_their_arguments_stay_as_they_were():
    x, q = torch.zeros(1, 3, 8, 8), torch.zeros(1, 5, 8)
    assert module_layers(nn.Conv2d(3, 4, 3), x)[0].key == \
        "Conv2d(bias=true,dilation=[1, 1],groups=1,in_channels=3,kernel_size=[3, 3],out_channels=4,padding=[0, 0]," \
        "padding_mode=\"zeros\",stride=[1, 1])@3x8x8"
    assert module_layers(nn.Sigmoid(), x)[0].key == "Sigmoid()@3x8x8"  # declares *args, **kwargs
    assert module_layers(nn.Embedding(10, 4), torch.zeros(1, 5, dtype=torch.long))[0].key.endswith(
        ",embedding_dim=4,max_norm=null,norm_type=2.0,num_embeddings=10,padding_idx=null,"
        "scale_grad_by_freq=false,sparse=false)@5")  # `_weight`, `_freeze` are not read back
    mha = module_layers(nn.MultiheadAttention(8, 2, batch_first=True), q, q, q)[0]
    assert mha.key.startswith("MultiheadAttention(add_zero_attn=false,batch_first=true,call=")
    assert module_layers(Scale(8), q)[0].key == f"{Scale.__module__}.Scale(dim=8)@5x8"
    # bias=False is not read back: the weight shapes separate it from the default MultiheadAttention
    no_bias = module_layers(nn.MultiheadAttention(8, 2, bias=False, batch_first=True), q, q, q)[0]
    assert "_state" in dict(no_bias.options) and no_bias.key != mha.key


def test_reading_the_key_leaves_torch_random_stream_alone():
    mixer = Mixer(8, 3)  # its key rebuilds it once (`Mixer()` fails), `Scale(dim=8)` rebuilds: both draw weights
    torch.manual_seed(0)
    module_layers(mixer, torch.zeros(1, 8))
    module_layers(Scale(5), torch.zeros(1, 5))
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), after)


def test_check_decomposition_refuses_two_different_layers_under_one_key():
    space = RepeatNet.space()
    adapter = adapter_for(space)
    once, often = space.validate({"body": "once"}), space.validate({"body": "often"})
    assert check_decomposition(adapter, once).exact
    with pytest.raises(ConfigError, match=r"'body'.*one lookup-table key .*Repeated\(\)@8"):
        check_decomposition(adapter, often)


# -- defect 2: one layer key twice in a table file


def _write_table(path: Path, entries: list[dict]) -> None:
    header = {"format": FORMAT, "version": VERSION, "adapter": {"adapter": "test"}, "batch_size": 1, "threads": 1}
    path.write_text("".join(json.dumps(r) + "\n" for r in [header, *entries]))


def _entry(kind: str, ms: float) -> dict:
    return TableEntry(LayerConfig.make(kind, (4,)), ms, ms, ms, ms, ms, 10, 2, 40, 0.5, ms).to_dict()


def test_a_key_repeated_with_another_value_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    _write_table(path, [_entry("a", 0.3), _entry("b", 0.2), _entry("a", 99.0)])
    with pytest.raises(ConfigError) as e:
        LatencyTable.load(path)
    assert str(path) in str(e.value) and "lines 2 and 4" in str(e.value) and "a()@4" in str(e.value)


def test_a_key_repeated_identically_loads_once(tmp_path):
    path = tmp_path / "t.jsonl"
    _write_table(path, [_entry("a", 0.3), _entry("b", 0.2), _entry("a", 0.3)])
    table = LatencyTable.load(path)
    assert len(table) == 2 and table.layer_ms(LayerConfig.make("a", (4,))) == 0.3


def test_resuming_a_table_with_a_conflicting_repeat_is_refused(tmp_path):
    space = MixNet.space()
    adapter = adapter_for(space)
    path = tmp_path / "mix.jsonl"
    build_table(adapter, path, repeats=1, rounds=1, warmup=0, limit=1)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [json.dumps({**json.loads(lines[1]), "median_ms": 1e3})]) + "\n")
    with pytest.raises(ConfigError, match="lines 2 and 3"):
        build_table(adapter, path, repeats=1, rounds=1, warmup=0)


def test_a_table_made_in_code_refuses_a_conflicting_repeat():
    a, b = TableEntry.from_dict(_entry("a", 0.3)), TableEntry.from_dict(_entry("a", 0.4))
    with pytest.raises(ConfigError, match=r"a\(\)@4"):
        LatencyTable({"batch_size": 1}, [a, b])
    assert len(LatencyTable({"batch_size": 1}, [a, a])) == 1


# -- defect 3: the documented `python -m` form of `nas hardware`


def test_documented_module_form_runs_without_a_runpy_warning():
    text = (ROOT / "docs" / "hardware.md").read_text()
    forms = re.findall(r"`python -m ([\w.]+(?: hardware)?) \.\.\.`", text)
    assert forms, "docs/hardware.md names no `python -m ... ...` form of the hardware commands"
    for form in forms:
        done = subprocess.run([sys.executable, "-m", *form.split(), "devices"], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "RuntimeWarning" not in done.stderr, (form, done.stderr)
        assert "local_cpu" in done.stdout
