"""DARTS and ProxylessNAS on a user model's LayerChoice / InputChoice points (`search_darts` on a nas.nn space)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import nas
from nas import nn as nnn
from nas.cli import app
from nas.darts import DartsOptions, search_darts
from nas.datasets import digits_splits
from nas.errors import ConfigError
from nas.export import export
from nas.hardware.lut import LatencyTable, TableEntry
from nas.modelspec import load_subnet
from nas.hardware.nn_layers import NNLayers
from nas.strategies.oneshot_modules import ModuleOneShotTrainer, candidate_costs, priced_archs, table_layers

pytestmark = pytest.mark.usefixtures("one_thread")


class Noise(nn.Module):
    """A candidate that throws its input away: noise of the input's shape (its own generator, so runs repeat)."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self.generator)


class Picky(nnn.ModelSpace):
    """One LayerChoice where the right answer is known: 'noise' destroys the features, 'conv' and 'keep' do not."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        width = nnn.Choice("width", [4, 8])
        self.stem = nnn.Conv2d(1, width, 3, padding=1)
        self.mix = nnn.LayerChoice({"conv": nnn.Conv2d(width, width, 3, padding=1), "keep": nn.Identity(),
                                    "noise": Noise()}, label="mix")
        self.head = nnn.Linear(width * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(torch.relu(self.mix(torch.relu(self.stem(x)))), 1))


class Costly(nnn.ModelSpace):
    """Candidates of very different cost, all useful: a kernel per LayerChoice and, per block, conv or skip."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.first = nnn.LayerChoice({"k5": nn.Conv2d(8, 8, 5, padding=2), "k3": nn.Conv2d(8, 8, 3, padding=1),
                                      "k1": nn.Conv2d(8, 8, 1)}, label="first")
        self.blocks = nnn.Repeat(lambda i: nnn.LayerChoice({"conv": nn.Conv2d(8, 8, 3, padding=1),
                                                            "skip": nn.Identity()}, label="op"), depth=2)
        self.head = nn.Linear(8 * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(torch.relu(self.blocks(self.first(torch.relu(self.stem(x))))), 1))


class Inputs(nnn.ModelSpace):
    """Two InputChoices: one of [noise, features, noise], two of [noise, features, 2 * features]."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.noise = Noise()
        self.one = nnn.InputChoice(3, 1, label="one")
        self.two = nnn.InputChoice(3, 2, reduction="mean", label="two")
        self.head = nn.Linear(8 * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        h = self.one([self.noise(h), h, self.noise(h)])
        h = self.two([self.noise(h), h, 2 * h])
        return self.head(torch.flatten(h, 1))


@pytest.fixture(scope="module")
def data():
    return {k: (x[:384], y[:384]) for k, (x, y) in digits_splits(seed=0).items()}


def _options(**kw):
    return DartsOptions(**{"batch_size": 64, "a_lr": 0.05, "retrain_epochs": 1, **kw})


def test_darts_turns_away_from_the_candidate_that_destroys_the_signal(data, tmp_path):
    result = search_darts(Picky.space(), data, method="darts", epochs=3, seed=0, options=_options(),
                          workdir=tmp_path / "wd")
    trial = result.best()
    weights = trial.extra["alphas"]["mix"][0]
    assert trial.arch == {"width": 8, "mix": trial.arch["mix"]} and trial.arch["mix"] in ("conv", "keep")
    assert weights[2] < min(weights[:2])  # the noise candidate's alpha fell below both others
    assert trial.extra["ops"] == {"mix": trial.arch["mix"]}
    assert 0.0 <= trial.metrics["accuracy"] <= 1.0 and trial.metrics["flops"] > 0
    config = nas.load(tmp_path / "wd").config
    assert config["metadata"]["held"] == {"width": 8} and config["metadata"]["searched"] == ["mix"]  # not "mix" too
    assert json.loads((tmp_path / "wd" / "model.json").read_text())["notes"]["held"] == {"width": 8}


def test_second_order_darts_and_the_hessian_eigenvalue_run_on_a_user_model(data):
    small = {k: (x[:256], y[:256]) for k, (x, y) in data.items()}
    result = search_darts(Picky.space(), small, method="darts2", epochs=2, seed=0, evaluate=lambda a: {"accuracy": 0.0},
                          options=_options(track_eigenvalue=True, hessian_iters=2))
    alphas = result.best().extra["alphas"]["mix"][0]
    assert alphas[2] < min(alphas[:2]) and result.best().arch["mix"] != "noise"
    trainer = ModuleOneShotTrainer(Picky.space(), _options(track_eigenvalue=True, hessian_iters=2))
    record = trainer.train_epoch(small)
    assert record.eigenvalue is not None and torch.isfinite(torch.tensor(record.eigenvalue))


def test_fixed_holds_a_size_choice_and_is_checked(data):
    trainer = ModuleOneShotTrainer(Picky.space(), _options(), fixed={"width": 4})
    assert trainer.supernet.held["width"] == 4 and trainer.supernet.derive()["width"] == 4
    with pytest.raises(ConfigError, match="fixed: 'depth' is not a label"):
        ModuleOneShotTrainer(Picky.space(), _options(), fixed={"depth": 2})
    with pytest.raises(ConfigError, match="width"):
        ModuleOneShotTrainer(Picky.space(), _options(), fixed={"width": 5})
    with pytest.raises(ConfigError, match="pc-darts"):
        ModuleOneShotTrainer(Picky.space(), _options(method="pc-darts"))


def test_proxyless_with_a_strong_latency_weight_picks_the_cheapest_candidates(data):
    options = _options(latency_weight=20.0, latency="flops", a_lr=0.1)
    trial = search_darts(Costly.space(), data, method="proxyless", epochs=2, seed=0, options=options,
                         evaluate=lambda arch: {"accuracy": 0.0}).best()
    assert trial.arch == {"first": "k1", "blocks": [{"op": "skip"}, {"op": "skip"}]}
    assert trial.extra["ops"] == {"first": "k1", "blocks/0/op": "skip", "blocks/1/op": "skip"}


def test_the_lookup_table_prices_the_candidates(data):
    """A made-up table where a layer's latency falls with its FLOPs (a 5x5 kernel is cheapest, an identity
    free): ProxylessNAS follows the table, not the FLOPs, and the journal reports the whole network's latency."""
    trainer = ModuleOneShotTrainer(Costly.space(), _options())
    adapter = NNLayers(Costly.space(), archs=priced_archs(trainer.supernet))

    def ms(layer) -> float:
        flops = sum(leaf.flops for leaf in adapter.layer_counts(layer))
        return 0.0 if flops == 0 else 1e5 / (flops + 1e3)

    layers = table_layers(adapter, priced_archs(trainer.supernet))
    table = LatencyTable({"adapter": adapter.describe(), "batch_size": 1},
                         [TableEntry(layer, ms(layer), ms(layer), ms(layer), 0, 0, 0, 0, 0) for layer in layers])
    costs = candidate_costs(trainer.supernet, adapter, table)
    first = costs.costs["first"][0].tolist()
    assert costs.source == "lut" and 0 < first[0] < first[1] < first[2]  # k5 < k3 < k1 by the table
    assert costs.costs["blocks/1/op"][0].tolist()[1] == 0.0 < costs.costs["blocks/1/op"][0].tolist()[0]
    flops = candidate_costs(trainer.supernet, adapter).costs["first"][0]
    assert flops[0] > flops[1] > flops[2] > 0  # 5x5 > 3x3 > 1x1 convolutions by FLOPs
    trial = search_darts(Costly.space(), data, method="proxyless", epochs=2, seed=0, latency_table=table,
                         options=_options(latency_weight=20.0, a_lr=0.1),
                         evaluate=lambda arch: {"accuracy": 0.0}).best()
    assert trial.arch["first"] == "k5" and trial.arch["blocks"] == [{"op": "skip"}, {"op": "skip"}]
    assert trial.metrics["latency_ms"] == pytest.approx(table.predict(adapter.layers(trial.arch)))
    assert trial.metrics["latency_ms"] > first[0]  # the whole network: stem and head too
    with pytest.raises(ConfigError, match="built for"):
        search_darts(Picky.space(), data, method="proxyless", epochs=1, latency_table=table)


def test_input_choices_pick_the_informative_inputs(data, tmp_path):
    for method in ("darts", "proxyless"):  # proxyless: the table (profiled into the workdir) prices every pick
        trial = search_darts(Inputs.space(), data, method=method, epochs=3, seed=0, options=_options(a_lr=0.1),
                             workdir=tmp_path / method, evaluate=lambda arch: {"accuracy": 0.0}).best()
        assert ("latency_ms" in trial.metrics) == (method == "proxyless")
        assert trial.arch["one"] == [1], method
        # DARTS weighs all three inputs and keeps both informative ones; ProxylessNAS's sampled softmax
        # concentrates on one input, which it keeps (the second pick is then weakly determined)
        assert (trial.arch["two"] == [1, 2]) if method == "darts" else (1 in trial.arch["two"]), method


class Concat(nnn.ModelSpace):
    """An InputChoice concatenating 2 of 3 inputs: no continuous relaxation."""

    input_shape = (2, 4)

    def __init__(self) -> None:
        super().__init__()
        self.pick = nnn.InputChoice(3, 2, reduction="concat")
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pick([x, x, x]), 1))


def test_concatenating_input_choice_is_refused_with_its_path():
    with pytest.raises(ConfigError, match="pick: an InputChoice that concatenates 2 of 3"):
        ModuleOneShotTrainer(Concat.space(), _options())


def test_the_derived_architecture_exports_and_loads(data, tmp_path):
    wd, out = tmp_path / "wd", tmp_path / "models"
    result = search_darts(Picky.space(), data, method="darts", epochs=1, seed=0, options=_options(), workdir=wd)
    assert (wd / "model.json").is_file() and list((wd / "weights").glob("*.pt"))
    runner = CliRunner()
    for args in (["status", str(wd)], ["pareto", str(wd)]):
        shown = runner.invoke(app, args)
        assert shown.exit_code == 0, shown.output
    report = export(wd, out, onnx=False)
    (model,) = report.models
    loaded = load_subnet(model.path)
    trained = Picky.build(result.best().arch)
    trained.load_state_dict(torch.load(wd / "weights" / f"{result.best().arch_id}.pt", weights_only=True))
    x = data["valid"][0][:16]
    with torch.no_grad():
        assert torch.allclose(loaded(x), trained.eval()(x), atol=1e-5)
    exported = runner.invoke(app, ["export", str(wd), "--out", str(tmp_path / "cli"), "--no-onnx"])
    assert exported.exit_code == 0, exported.output
    # resuming the finished search journals nothing new and keeps the same architecture
    again = search_darts(Picky.space(), data, method="darts", epochs=1, seed=0, options=_options(), workdir=wd)
    assert [t.arch_id for t in again.trials] == [t.arch_id for t in result.trials]


def test_supernet_weights_are_exported_when_another_evaluator_scores(data, tmp_path):
    """ProxylessNAS without a table profiles the layers it needs into the workdir; a custom evaluator means the
    export slices the one-shot supernet's weights."""
    wd = tmp_path / "wd"
    result = search_darts(Costly.space(), data, method="proxyless", epochs=1, seed=0, options=_options(),
                          workdir=wd, evaluate=lambda arch: {"accuracy": 0.5})
    assert (wd / "supernet.pt").is_file() and not (wd / "weights").exists()
    assert len(LatencyTable.load(wd / "latency_table.jsonl")) > 0 and result.best().metrics["latency_ms"] > 0
    assert nas.load(wd).config["metadata"]["latency"] == "lut"
    (model,) = export(wd, tmp_path / "models", onnx=False).models
    arch = result.best().arch
    supernet = Costly.supernet()
    supernet.load_state_dict(torch.load(wd / "supernet.pt", weights_only=True))
    x = data["valid"][0][:8]
    with torch.no_grad():
        assert torch.allclose(load_subnet(model.path)(x), supernet.eval()(x, arch), atol=1e-5)
