"""Edges of a user's own model (`nas.nn`): a model class defined in a notebook or REPL, or made by a factory
function (supernet, search and one-shot search in one process; the fingerprint that names its search), a choice
in a plain torch RNN, and torch's own keyword arguments of the `nas.nn` layers."""

from __future__ import annotations

import hashlib
import logging
import sys
import types

import pytest
import torch
from torch import nn

import nas
from nas import nn as nnn
from nas.architecture import canonical_json
from nas.darts import DartsOptions, search_darts
from nas.datasets import digits_splits
from nas.errors import ConfigError, JournalError, SpaceDefinitionError
from nas.modelspec import record_model
from nas.spaces.space import Space

pytestmark = pytest.mark.usefixtures("one_thread")

NOTEBOOK_CELL = '''
import torch
from torch import nn
from nas import nn as nnn

class {name}(nnn.ModelSpace):
    input_shape = (1, 8, 8)

    def __init__(self):
        super().__init__()
        self.mix = nnn.LayerChoice({{"conv": nn.Conv2d(1, 4, 3, padding=1),
                                    "pool": nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(1, 4, 1))}}, label="mix")
        self.head = nnn.Linear(4, nnn.Choice("w", [10, 12]))

    def forward(self, x):
        return self.head(self.mix(x).mean((2, 3)))[:, :10]
'''


@pytest.fixture
def notebook(monkeypatch: pytest.MonkeyPatch):
    """Runs a cell as a notebook or REPL does: in `__main__`, a module without `__file__`."""
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))

    def run(name: str = "Net") -> type[nnn.ModelSpace]:
        namespace: dict = {"__name__": "__main__"}
        exec(compile(NOTEBOOK_CELL.format(name=name), "<ipython-input-1>", "exec"), namespace)
        return namespace[name]

    return run


def _evaluate(arch: dict) -> dict[str, float]:
    return {"acc": 1.0 if arch["mix"] == "conv" else 0.5}


# ---------------------------------------------------------------------------------------- 1. a notebook's class
def test_a_notebook_class_gives_a_supernet_that_runs_and_copies_out_subnets(notebook):
    Net = notebook()
    supernet = Net.supernet()
    arch = {"mix": "pool", "w": 12}
    x = torch.randn(3, 1, 8, 8)
    supernet.eval()
    assert torch.allclose(supernet.subnet(arch)(x), supernet(x, arch))


def test_a_notebook_class_is_searched_and_its_workdir_resumes_when_the_cell_runs_again(notebook, tmp_path):
    workdir = tmp_path / "search"
    first = nas.search(notebook().space(), _evaluate, {"acc": "max"}, strategy="random", budget=2, seed=0,
                       workdir=workdir)
    assert len(first.trials) == 2
    again = nas.search(notebook().space(), _evaluate, {"acc": "max"}, strategy="random", budget=3, seed=0,
                       workdir=workdir)  # the cell run again: a new class object, the same search
    assert len(again.trials) == 3 and [t.arch for t in again.trials[:2]] == [t.arch for t in first.trials]
    with pytest.raises(JournalError):  # another class of the same decisions is another search
        nas.search(notebook("Other").space(), _evaluate, {"acc": "max"}, strategy="random", budget=3, seed=0,
                   workdir=workdir)


def test_a_notebook_class_gets_no_model_json_naming_why(notebook, tmp_path):
    space = notebook().space()
    with pytest.raises(ConfigError, match="interactive session"):
        record_model(tmp_path, space)
    assert not (tmp_path / "model.json").exists()


def test_search_darts_on_a_notebook_class_runs_and_only_warns_about_the_export(notebook, tmp_path, caplog):
    splits = {k: (xs[:64], ys[:64]) for k, (xs, ys) in digits_splits(seed=0).items()}
    with caplog.at_level(logging.WARNING):
        result = search_darts(notebook().space(), splits, method="darts", epochs=1, seed=0,
                              options=DartsOptions(batch_size=32, retrain_epochs=1), workdir=tmp_path / "darts")
    assert result.trials and result.best().arch["mix"] in ("conv", "pool")
    assert not (tmp_path / "darts" / "model.json").exists()
    assert "interactive session" in caplog.text


# ---------------------------------------------------------------------------------------- 2. a factory's class
def make_model(n_in: int) -> type[nnn.ModelSpace]:
    class Local(nnn.ModelSpace):
        input_shape = (n_in,)

        def __init__(self) -> None:
            super().__init__()
            self.fc = nnn.Linear(n_in, nnn.Choice("w", [4, 8]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    return Local


def test_a_class_made_by_a_factory_function_gives_a_supernet_and_is_searched(tmp_path):
    Local = make_model(5)
    supernet = Local.supernet()
    assert supernet(torch.randn(2, 5), {"w": 4}).shape == (2, 4)
    result = nas.search(Local.space(), lambda a: {"acc": a["w"] / 8}, {"acc": "max"}, strategy="random", budget=2,
                        seed=0, workdir=tmp_path / "local")
    assert {t.arch["w"] for t in result.trials} <= {4, 8} and len(result.trials) == 2
    with pytest.raises(ConfigError, match="no other process can load it"):
        record_model(tmp_path / "local", Local.space())


def test_factory_classes_of_one_name_but_other_networks_do_not_share_a_fingerprint():
    five, three = make_model(5).space(), make_model(3).space()
    assert five.to_spec()["fields"] == three.to_spec()["fields"]  # the same decisions, other networks
    assert five.fingerprint() != three.fingerprint()
    assert make_model(5).space().fingerprint() == five.fingerprint()  # a new class of the same network: one search


class Importable(nnn.ModelSpace):
    input_shape = (3,)

    def __init__(self) -> None:
        super().__init__()
        self.fc = nnn.Linear(3, nnn.Choice("w", [4, 8]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_an_importable_class_keeps_its_spec_config_and_fingerprint():
    space = Importable.space()
    ref = {"class": f"{__name__}.Importable"}
    spec = {**Space._unchecked(space.fields).to_spec(), "type": "ModuleSpace", "model": ref}
    assert space.to_spec() == spec
    assert space.fingerprint() == hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:16]
    assert space.to_config() == {"model": ref, "args": [], "kwargs": {}}


# ---------------------------------------------------------------------------------------- 3. a choice in a plain RNN
class Gru(nnn.ModelSpace):
    input_shape = (5, 3)

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, nnn.Choice("h", [8, 16]), batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class Lstm(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(8, nnn.Choice("h", [8, 16]), num_layers=nnn.Choice("L", [1, 2]))


@pytest.mark.parametrize("model, layer", [(Gru, "GRU"), (Lstm, "LSTM")])
def test_a_choice_in_a_plain_rnn_is_a_space_definition_error_naming_the_layer_and_line(model, layer):
    with pytest.raises(SpaceDefinitionError, match=rf"a choice is used as a plain number in torch\.nn\.{layer} "
                                                   rf"\(at .*test_nn_edges38\.py:\d+\)"):
        model.space()


# ---------------------------------------------------------------------------------------- 4. torch's own arguments
def test_plain_values_with_torch_keyword_arguments_give_the_plain_torch_layer():
    linear = nnn.Linear(3, 4, device="cpu")
    assert type(linear) is nn.Linear and linear.weight.device.type == "cpu"
    conv = nnn.Conv2d(3, 4, 3, dtype=torch.float64)
    assert type(conv) is nn.Conv2d and conv.weight.dtype == torch.float64
    norm = nnn.LayerNorm(8, dtype=torch.float64)
    assert type(norm) is nn.LayerNorm and norm.weight.dtype == torch.float64
    att = nnn.MultiheadAttention(8, 2, kdim=4, vdim=6, add_bias_kv=True, add_zero_attn=True)
    assert type(att) is nn.MultiheadAttention and (att.kdim, att.vdim, att.add_zero_attn) == (4, 6, True)
    assert att.bias_k is not None


def test_an_unknown_argument_names_the_layer_and_the_line():
    with pytest.raises(SpaceDefinitionError, match=r"nas\.nn\.Linear \(at .*test_nn_edges38\.py:\d+\): .*'foo'"):
        nnn.Linear(3, nnn.Choice("w", [4, 8]), foo=1)


class Cross(nnn.ModelSpace):
    def __init__(self, **kwargs: object) -> None:
        super().__init__()
        self.att = nnn.MultiheadAttention(nnn.Choice("d", [8, 16]), nnn.Choice("h", [1, 2]), **kwargs)


@pytest.mark.parametrize("kwargs, said", [
    ({"kdim": 4, "vdim": 4}, r"att\.kdim: .*cross-attention with kdim/vdim is not elastic"),
    ({"add_bias_kv": True}, r"att\.add_bias_kv: .*not elastic"),
    ({"device": nnn.Choice("dev", ["cpu", "meta"])}, r"att\.device: a choice cannot set device"),
])
def test_torch_arguments_an_elastic_layer_does_not_support_are_refused_naming_them(kwargs, said):
    with pytest.raises(SpaceDefinitionError, match=said):
        Cross.space(**kwargs)


class Double(nnn.ModelSpace):
    input_shape = (3,)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("w", [4, 8])
        self.fc = nnn.Linear(3, w, dtype=torch.float64)
        self.bn = nnn.BatchNorm1d(w, dtype=torch.float64)
        self.out = nnn.Linear(w, 2, bias=False, device="cpu", dtype=torch.float64)

    @classmethod
    def example_input(cls, batch_size: int = 1) -> torch.Tensor:
        return torch.zeros(batch_size, 3, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.bn(self.fc(x)))


def test_elastic_layers_take_dtype_and_device_for_the_supernet_subnets_and_built_models():
    supernet = Double.supernet().eval()
    assert {p.dtype for p in supernet.parameters()} == {torch.float64}
    x = torch.randn(4, 3, dtype=torch.float64)
    sub = supernet.subnet({"w": 4})
    assert {p.dtype for p in sub.parameters()} == {torch.float64}
    assert sub.bn.running_mean.dtype == torch.float64
    assert torch.allclose(sub(x), supernet(x, {"w": 4}))
    built = Double.build({"w": 8})
    assert {p.dtype for p in built.parameters()} == {torch.float64} and built.out.bias is None


class ZeroAttn(nnn.ModelSpace):
    input_shape = (5, 3)

    def __init__(self) -> None:
        super().__init__()
        d = nnn.Choice("d", [4, 8])
        self.inp = nnn.Linear(3, d)
        self.att = nnn.MultiheadAttention(d, 2, add_zero_attn=True, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        return self.att(h, h, h)[0]


def test_add_zero_attn_beside_a_choice_runs_as_the_plain_layer_with_it():
    supernet = ZeroAttn.supernet().eval()
    x = torch.randn(3, 5, 3)
    for arch in ({"d": 4}, {"d": 8}):
        sub = supernet.subnet(arch)
        assert isinstance(sub.att, nn.MultiheadAttention) and sub.att.add_zero_attn
        assert torch.allclose(sub(x), supernet(x, arch), atol=1e-6)
