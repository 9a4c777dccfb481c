"""BossNAS (nas.bossnas): the hybrid space and its supernet, block-wise self-supervised training whose loss
falls, a rating that never sees labels and ranks a broken path last, and a journal that `nas status`,
`nas pareto` and `nas export` read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import nas
from nas.bossnas import (BossOptions, HybridConfig, HybridSpace, augment, byol_distance, search_bossnas,
                         train_bossnas)
from nas.cli import app
from nas.datasets import digits_splits
from nas.errors import ConfigError
from tests.docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]
TINY = BossOptions(epochs=3, batch_size=32, paths=2, hidden=16, proj_dim=8, rating_views=1, retrain_epochs=1)


@pytest.fixture(scope="module")
def data():
    return {k: (x[:128], y[:128]) for k, (x, y) in digits_splits(0).items()}


def small() -> HybridSpace:
    return HybridSpace(HybridConfig(channels=8))


def test_the_space_its_supernet_and_standalone_networks_agree(one_thread):
    space = small()
    assert space.size() == 144 and len(space.block_paths(0)) == 12
    arch = space.validate({"b0_l0": "attn", "b0_l1": "conv", "b0_down": "l1", "b1_l0": "conv", "b1_l1": "attn",
                           "b1_down": "l0"})
    x = torch.randn(5, 1, 8, 8)
    torch.manual_seed(0)
    supernet = space.supernet().eval()
    assert supernet.features(x, arch).shape == (5, 8, 2, 2)  # halved twice
    assert torch.allclose(supernet.subnet(arch).eval()(x), supernet(x, arch), atol=1e-5)
    assert space.build(arch)(x).shape == (5, 10)
    assert space.block_key(arch, 1) == "conv-attn@l0"
    flat = space.validate({**arch.to_dict(), "b0_down": "none", "b1_down": "none"})
    assert space.count(flat)["flops"] > space.count(arch)["flops"]  # downsampling earlier costs less
    with pytest.raises(ConfigError, match="heads"):
        HybridConfig(channels=6, heads=4)
    with pytest.raises(ConfigError, match="blocks"):
        HybridConfig(blocks=4)


def test_views_and_the_distance(one_thread):
    x = torch.randn(6, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    v1, v2 = augment(x, TINY, g), augment(x, TINY, g)
    assert v1.shape == x.shape and not torch.allclose(v1, v2)
    still = BossOptions(shift=0, rotate=0, scale=0, noise=0)
    assert torch.allclose(augment(x, still, g), x, atol=1e-5)
    z = torch.randn(4, 8)
    assert torch.allclose(byol_distance(z, 3 * z), torch.zeros(4), atol=1e-6)
    assert torch.allclose(byol_distance(z, -z), torch.full((4,), 4.0), atol=1e-5)


def test_training_loss_falls_and_uses_no_labels(data, one_thread):
    """train_bossnas takes inputs only: there is no way to hand it labels."""
    space = small()
    boss = train_bossnas(space, data["train"][0], data["valid"][0], TINY, seed=0)
    assert [len(block) for block in boss.losses] == [3, 3]
    assert all(block[-1] < block[0] for block in boss.losses)
    assert [len(d) for d in boss.distances] == [12, 12]
    best = space.validate(boss.best)
    rated = [boss.rate(a)["ssl_distance"] for a in space]
    assert boss.rate(best)["ssl_distance"] == pytest.approx(min(rated))  # block by block = the best overall
    with pytest.raises(ConfigError, match="x_rate"):
        train_bossnas(space, data["train"][0], data["valid"][0][:, :, :4], TINY)


class Constant(nn.Module):
    """A broken layer: its output does not depend on its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_the_rating_ranks_a_broken_path_behind_every_working_one(data, one_thread, monkeypatch):
    """A layer whose output ignores its input (every block-0 path starting with attention) cannot predict the
    ensemble target of another view: all 6 such paths rate worse than all 6 working ones (one block, so only
    block 0 trains; the margin is wide: about 1.9 against 1.4-1.5)."""
    space = HybridSpace(HybridConfig(channels=8, blocks=1))
    make = HybridSpace.supernet

    def broken(self):
        net = make(self)
        net.blocks[0][0]["attn"] = Constant()
        return net

    monkeypatch.setattr(HybridSpace, "supernet", broken)
    x = digits_splits(0)["train"][0]
    options = BossOptions(**{**TINY.to_dict(), "epochs": 6})
    boss = train_bossnas(space, x[:256], data["valid"][0], options, seed=0)
    bad = [d for key, d in boss.distances[0].items() if key.startswith("attn")]
    good = [d for key, d in boss.distances[0].items() if key.startswith("conv")]
    assert len(bad) == len(good) == 6 and max(good) < min(bad)


def test_search_journals_ratings_retrains_the_front_and_exports(data, tmp_path, one_thread):
    space, wd = small(), tmp_path / "boss"
    result = search_bossnas(space, data, 6, TINY, seed=2, workdir=wd)
    assert len(result.trials) == 6 and {"ssl_distance", "block1_distance", "params", "flops"} <= set(
        result.trials[0].metrics)
    state = json.loads((wd / "bossnas.json").read_text())
    front = {t.arch_id for t in result.pareto_front()}
    assert set(state["retrained"]) == front and all(0 <= r["valid_accuracy"] <= 1 for r in state["retrained"].values())

    unlabelled = {k: x for k, (x, _) in data.items()}  # the same inputs without labels: the same ratings
    blind = search_bossnas(space, unlabelled, 6, TINY, seed=2, workdir=tmp_path / "blind")
    assert [t.metrics for t in blind.trials] == [t.metrics for t in result.trials]
    assert json.loads((tmp_path / "blind" / "bossnas.json").read_text())["retrained"] == {}

    again = search_bossnas(space, data, 6, TINY, seed=2, workdir=wd)  # all rated: nothing added
    assert [t.arch_id for t in again.trials] == [t.arch_id for t in result.trials]
    assert nas.load(wd).best().arch_id == result.best().arch_id
    runner = CliRunner()
    for command in (["status", str(wd)], ["pareto", str(wd)]):
        out = runner.invoke(app, command)
        assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["export", str(wd), "--out", str(tmp_path / "models"), "--top", "1", "--no-onnx"])
    assert out.exit_code == 0, out.output
    index = json.loads((tmp_path / "models" / "export.json").read_text())
    model = nas.load_subnet(tmp_path / "models" / index["models"][0]["path"])
    assert index["models"][0]["arch_id"] == result.pareto_front()[0].arch_id
    assert model(data["test"][0][:3]).shape == (3, 10)


def test_bad_settings_name_the_field(data):
    with pytest.raises(ConfigError, match="paths"):
        BossOptions(paths=0)
    with pytest.raises(ConfigError, match="retrain_epochs"):
        BossOptions(retrain_epochs=-1)
    with pytest.raises(ConfigError, match="valid"):
        search_bossnas(small(), {"train": data["train"]}, 2, TINY)
    with pytest.raises(ConfigError, match="space"):
        train_bossnas(object(), data["train"][0], data["valid"][0], TINY)


QUICK = BossOptions(epochs=1, batch_size=32, paths=2, hidden=16, proj_dim=8, rating_views=1, retrain_epochs=1)


def test_a_kill_while_retraining_loses_no_result(data, tmp_path, one_thread, monkeypatch):
    """bossnas.json of a run killed while retraining, then rerun, equals an uninterrupted run's."""
    import nas.bossnas as bossnas

    space = small()
    search_bossnas(space, data, 4, QUICK, seed=1, workdir=tmp_path / "whole")
    whole = json.loads((tmp_path / "whole" / "bossnas.json").read_text())

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while retraining")

    with monkeypatch.context() as m:
        m.setattr(bossnas, "save_trial_weights", killed)
        with pytest.raises(KeyboardInterrupt):
            search_bossnas(space, data, 4, QUICK, seed=1, workdir=tmp_path / "killed")
    state = json.loads((tmp_path / "killed" / "bossnas.json").read_text())  # written before retraining
    assert {"best", "losses", "distances", "seconds"} <= set(state) and state["retrained"] == {}
    search_bossnas(space, data, 4, QUICK, seed=1, workdir=tmp_path / "killed")
    resumed = json.loads((tmp_path / "killed" / "bossnas.json").read_text())
    assert sorted(resumed) == sorted(whole) == ["best", "distances", "labels_sha1", "losses", "retrained", "seconds"]
    assert all(resumed[k] == whole[k] for k in ("best", "distances", "labels_sha1", "losses", "retrained"))

    # a workdir an older run left with `retrained` alone gets the supernet's results back
    (tmp_path / "killed" / "bossnas.json").write_text(json.dumps({"retrained": whole["retrained"]}))
    search_bossnas(space, data, 4, QUICK, seed=1, workdir=tmp_path / "killed")
    healed = json.loads((tmp_path / "killed" / "bossnas.json").read_text())
    assert all(healed[k] == whole[k] for k in ("best", "distances", "losses", "retrained"))


def test_a_label_free_workdir_says_there_is_no_model_to_export(data, tmp_path, one_thread, caplog):
    unlabelled = {k: x for k, (x, _) in data.items()}
    wd = tmp_path / "blind"
    with caplog.at_level("WARNING", logger="nas.bossnas"):
        search_bossnas(small(), unlabelled, 2, QUICK, seed=0, workdir=wd)
    assert "the data has no labels" in caplog.text
    state = json.loads((wd / "bossnas.json").read_text())
    assert state["retrained"] == {} and "no labels" in state["not_retrained"] and "nas export" in state["not_retrained"]
    assert not (wd / "model.json").exists()  # no model spec claims trained weights that were never made
    out = CliRunner().invoke(app, ["export", str(wd), "--out", str(tmp_path / "models"), "--no-onnx"])
    assert out.exit_code != 0 and "save_trial_weights" not in out.output
    search_bossnas(small(), data, 2, QUICK, seed=0, workdir=wd)  # labels given later: retrained, exportable
    state = json.loads((wd / "bossnas.json").read_text())
    assert state["retrained"] and "not_retrained" not in state and (wd / "model.json").is_file()


@pytest.mark.parametrize("change, match", [
    (lambda d: {k: (x, y.float()) for k, (x, y) in d.items()}, r"data\['train'\]: labels must be integer"),
    (lambda d: {**d, "train": (d["train"][0], d["train"][1][:10])}, r"data\['train'\]: labels must be one class"),
    (lambda d: {**d, "valid": d["valid"][0][:0]}, r"data\['valid'\]: the split is empty"),
    (lambda d: {"train": d["train"], "valid": d["valid"], "tset": d["test"]}, r"data: unknown split 'tset'"),
    (lambda d: {"train": d["train"][0][:8], "valid": d["valid"][0]}, r"batch_size: 32 exceeds the 8 samples"),
    (lambda d: {k: x[:, :, :4] for k, (x, _) in d.items()}, r"data\['train'\]: inputs shaped \(1, 4, 8\)"),
])
def test_bad_data_is_refused_before_any_training(data, monkeypatch, change, match):
    import nas.bossnas as bossnas

    monkeypatch.setattr(bossnas, "train_bossnas", lambda *a, **k: pytest.fail("trained on bad data"))
    with pytest.raises(ConfigError, match=match):
        search_bossnas(small(), change(data), 2, QUICK)


def test_a_negative_seed_is_refused(data, monkeypatch):
    with pytest.raises(ConfigError, match="seed: expected a non-negative int, got -1"):
        search_bossnas(small(), data, 2, QUICK, seed=-1)
    with pytest.raises(ConfigError, match="seed: expected a non-negative int, got -1"):
        train_bossnas(small(), data["train"][0], data["valid"][0], QUICK, seed=-1)


def test_the_docs_example_runs(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "bossnas_doc"}
    for block in python_blocks(ROOT / "docs" / "bossnas.md"):
        exec(compile(block, "docs/bossnas.md", "exec"), namespace)
    assert len(nas.load(tmp_path / "runs" / "bossnas-example").trials) == 8


def test_the_experiment_runs_reduced(tmp_path, one_thread, capsys):
    """experiments/bossnas.py end to end at toy size: truth cached, both methods per seed, the table."""
    import sys

    sys.path.insert(0, str(ROOT / "experiments"))
    import bossnas as experiment

    argv = ["--archs", "4", "--gt-seeds", "2", "--gt-epochs", "1", "--seeds", "2", "--epochs", "1",
            "--train-size", "96", "--results-dir", str(tmp_path)]
    assert experiment.main(argv) == 0
    doc = json.loads((tmp_path / "bossnas_4archs.json").read_text())  # --archs other than 12: named by it
    assert len(doc["runs"]) == 4 and doc["analysis"]["seeds"] == [0, 1]
    assert set(doc["analysis"]["methods"]) == {"BossNAS (no labels)", "SPOS (labels)", "Params", "FLOPs"}
    assert "| BossNAS (no labels) |" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "bossnas_ground_truth.json").read_text())["records"]) == 8
