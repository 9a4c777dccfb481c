"""Few-shot NAS (nas.few_shot): gradient matching finds the edge whose ops disagree, children are warm-started
copies, the sub-supernets partition the space, the budget is the same for every splitter, and the driver
journals its ratings with weights that `nas export` rebuilds."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import nas
from nas.datasets import digits_splits
from nas.errors import ConfigError
from nas.export import export
from nas.few_shot import (FewShotOptions, PathMixing, SubSupernet, Subspace, best_partition, choose_split,
                          gradient_similarity, phase_steps, search_few_shot, train_few_shot)
from nas.spaces.cell import NB201_EDGES, DartsSpace, NasBench201Space
from nas.spaces.training import recalibrate_bn
from tests.docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return {k: (x[:128], y[:128]) for k, (x, y) in digits_splits(0).items()}


def tiny(ops=None) -> NasBench201Space:
    kw = {"ops": ops} if ops else {}
    return NasBench201Space(input_shape=(1, 8, 8), channels=4, cells_per_stage=1, stages=1, **kw)


def fresh(space: NasBench201Space, seed: int = 0) -> SubSupernet:
    torch.manual_seed(seed)
    net = space.supernet(mixing=PathMixing(len(NB201_EDGES)))
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9, weight_decay=0.0)
    return SubSupernet(Subspace.full(space), net, opt, np.random.default_rng(seed))


def test_best_partition_is_the_minimum_cut_of_the_similarity():
    sim = np.array([[1.0, 0.9, -0.2, -0.1], [0.9, 1.0, -0.3, 0.0], [-0.2, -0.3, 1.0, 0.8], [-0.1, 0.0, 0.8, 1.0]])
    score, groups = best_partition(sim)
    assert {frozenset(g) for g in groups} == {frozenset({0, 1}), frozenset({2, 3})}
    assert score == pytest.approx(np.mean([-0.2, -0.1, -0.3, 0.0]))
    odd = np.ones((3, 3))
    odd[2, :2] = odd[:2, 2] = -1.0  # op 2 disagrees with both others: a 1 | 2 split, balanced or not
    assert {frozenset(g) for g in best_partition(odd)[1]} == {frozenset({2}), frozenset({0, 1})}
    with pytest.raises(ConfigError, match="similarity"):
        best_partition(np.ones((1, 1)))


def test_gradient_matching_picks_the_edge_whose_ops_disagree(data, one_thread):
    """Two ops that compute the same function on every edge but one (conv 3x3 = the 1x1 kernel at its centre;
    on edge 1->2 the negated kernel): the shared weights' gradients agree exactly everywhere else."""
    space = tiny(ops=("nor_conv_1x1", "nor_conv_3x3"))
    sub = fresh(space)
    target = "edge_1_2"
    with torch.no_grad():
        for cell in (m for m, kind in zip(sub.supernet.layers, sub.supernet.kinds) if kind):
            for key, mixed in cell.edges.items():
                one, three = mixed.ops[0][1].weight, mixed.ops[1][1].weight
                three.zero_()
                three[:, :, 1, 1] = -one[:, :, 0, 0] if f"edge_{key}" == target else one[:, :, 0, 0]
    x, y = data["train"]
    for name in (f"edge_{i}_{j}" for i, j in NB201_EDGES):
        sim = gradient_similarity(sub, name, x, y, batches=2, batch_size=32)
        assert sim.shape == (2, 2) and sim[0, 0] == pytest.approx(1.0)
        if name == target:
            assert sim[0, 1] < 0.99
        else:
            assert sim[0, 1] == pytest.approx(1.0, abs=1e-5)
    split = choose_split(sub, x, y, FewShotOptions(gm_batches=2, batch_size=32))
    assert split.edge == target and set(split.groups) == {("nor_conv_1x1",), ("nor_conv_3x3",)}
    assert min(split.edge_scores, key=split.edge_scores.get) == target
    rand = choose_split(fresh(tiny()), x, y, FewShotOptions(splitter="random"))
    assert sorted(map(len, rand.groups)) == [2, 3] and rand.score is None


def test_children_are_warm_started_independent_copies(data, one_thread):
    sub = fresh(tiny(), seed=1)
    x, y = data["train"]
    for _ in range(2):  # some momentum in the optimiser
        sub.use(sub.subspace.sample(sub.rng))
        sub.optimizer.zero_grad()
        torch.nn.functional.cross_entropy(sub.supernet(x[:32]), y[:32]).backward()
        sub.optimizer.step()
    sub.steps = 2
    left, right = sub.subspace.split("edge_0_1", [("none", "skip_connect"), ("nor_conv_1x1", "nor_conv_3x3",
                                                                            "avg_pool_3x3")])
    child = sub.child(left, (0, 1, 0), "edge_0_1")
    parent_state = {k: v.clone() for k, v in sub.supernet.state_dict().items()}
    assert child.supernet is not sub.supernet and child.steps == 2 and child.lineage == ("edge_0_1",)
    assert all(torch.equal(parent_state[k], v) for k, v in child.supernet.state_dict().items())
    mine, theirs = sub.optimizer.state_dict()["state"], child.optimizer.state_dict()["state"]
    assert mine and mine.keys() == theirs.keys()  # momentum of the params on the paths trained so far
    assert all(torch.equal(mine[i]["momentum_buffer"], theirs[i]["momentum_buffer"]) for i in mine)
    with torch.no_grad():
        for p in child.supernet.parameters():
            p.add_(1.0)
    assert all(torch.equal(parent_state[k], v) for k, v in sub.supernet.state_dict().items())
    assert left.ops("edge_0_1") == ("none", "skip_connect") and right.size() + left.size() == 5 ** 6
    with pytest.raises(ConfigError, match="groups"):
        sub.subspace.split("edge_0_1", [("none",), ("skip_connect",)])


@pytest.mark.parametrize("splitter", ["gradient", "random"])
def test_every_architecture_maps_to_exactly_one_sub_supernet(data, splitter, one_thread):
    space = tiny()
    nets = train_few_shot(space, data, FewShotOptions(splitter=splitter, levels=2, epochs=1, batch_size=32,
                                                      gm_batches=1), seed=0)
    assert len(nets.subs) == 4 and len(nets.splits) == 3 and all(len(s.lineage) == 2 for s in nets.subs)
    names = [f"edge_{i}_{j}" for i, j in NB201_EDGES]
    counts = np.zeros(5 ** 6, dtype=int)
    for k, ops in enumerate(itertools.product(space.ops, repeat=6)):
        arch = dict(zip(names, ops))
        counts[k] = sum(s.subspace.contains(arch) for s in nets.subs)
    assert (counts == 1).all()
    assert sum(s.subspace.size() for s in nets.subs) == 5 ** 6
    assert nets.owner(dict(zip(names, space.ops[:1] * 6))) in range(4)


def test_every_splitter_trains_the_same_number_of_steps(data, one_thread):
    assert [sum(p) for p in phase_steps(100, 2)] == [34, 33, 33] and phase_steps(100, 2)[2] == [9, 8, 8, 8]
    assert phase_steps(7, 0) == [[7]]
    assert [sum(p) for p in phase_steps(100, 2, parent_fraction=0.75)] == [75, 13, 12]  # a late split
    for total, levels, late in itertools.product((1, 13, 56, 1000), (0, 1, 2, 3), (None, 0.5, 0.9)):
        assert sum(map(sum, phase_steps(total, levels, late))) == total
    with pytest.raises(ConfigError, match="parent_fraction"):
        FewShotOptions(parent_fraction=1.0)
    space, steps = tiny(), {}
    for splitter, levels in (("none", 0), ("random", 1), ("gradient", 1)):
        nets = train_few_shot(space, data, FewShotOptions(splitter=splitter, levels=levels, epochs=2, batch_size=32,
                                                          gm_batches=1), seed=0)
        # each sub-supernet's steps count its lineage: the parent's once, then its own share
        own = sum(s.steps for s in nets.subs) - (len(nets.subs) - 1) * (nets.steps // (levels + 1) if levels else 0)
        steps[splitter] = (nets.steps, own)
    assert steps["none"] == steps["random"] == steps["gradient"] == (8, 8)


def test_search_few_shot_journals_ratings_that_nas_load_reads(data, tmp_path, one_thread):
    space, wd = tiny(), tmp_path / "few-shot"
    options = FewShotOptions(levels=1, epochs=1, batch_size=32, gm_batches=1, calibration_size=64)
    result = search_few_shot(space, data, 4, options, seed=3, workdir=wd)
    assert len(result.trials) == 4 and len({t.arch_id for t in result.trials}) == 4
    loaded = nas.load(wd)
    assert [t.arch_id for t in loaded.trials] == [t.arch_id for t in result.trials]
    for t in loaded.trials:
        assert 0.0 <= t.metrics["supernet_accuracy"] <= 1.0 and t.metrics["flops"] > 0
        assert Subspace(tuple((k, tuple(v)) for k, v in t.extra["subspace"].items())).contains(t.arch)
    assert (wd / "few_shot.json").is_file() and loaded.best().arch_id in {t.arch_id for t in result.trials}
    again = search_few_shot(space, data, 4, options, seed=3, workdir=wd)  # all rated: nothing retrained or added
    assert len(again.trials) == 4
    from typer.testing import CliRunner

    from nas.cli import app

    out = CliRunner().invoke(app, ["status", str(wd)])
    assert out.exit_code == 0, out.stdout
    assert "nas.few_shot.search_few_shot(" in " ".join(out.stdout.split())  # how to continue: its own driver


def test_nas_export_rebuilds_each_rated_architecture_as_its_sub_supernet_scored_it(data, tmp_path, one_thread):
    """Each journaled architecture keeps its sub-supernet's weights: the exported standalone model gives the
    journaled rating and the supernet path's outputs."""
    space, wd = tiny(), tmp_path / "few-shot"
    options = FewShotOptions(levels=1, epochs=2, batch_size=32, gm_batches=1, calibration_size=64)
    result = search_few_shot(space, data, 5, options, seed=1, workdir=wd)
    report = export(wd, tmp_path / "models", onnx=False)
    assert report.models and {m.trial for m in report.models} <= {t.number for t in result.trials}
    x, y = data["valid"]
    nets = train_few_shot(space, data, options, seed=1)  # deterministic: the same sub-supernets
    for m in report.models:
        trial = result.trials[m.trial]
        module = nas.load_subnet(m.path)
        with torch.no_grad():
            out = module(x)
        assert float((out.argmax(1) == y).float().mean()) == pytest.approx(trial.metrics["supernet_accuracy"], abs=1e-9)
        sub = nets.subs[trial.extra["sub_supernet"]]
        sub.use(trial.arch)
        with torch.no_grad():
            path = recalibrate_bn(sub.supernet, nets.calibration.split(300))(x)
        assert torch.allclose(out, path, atol=1e-5)


def test_bad_settings_name_the_field(data):
    with pytest.raises(ConfigError, match="splitter"):
        FewShotOptions(splitter="greedy")
    with pytest.raises(ConfigError, match="levels"):
        FewShotOptions(splitter="none", levels=1)
    with pytest.raises(ConfigError, match="space"):
        train_few_shot(DartsSpace(), data, FewShotOptions())
    with pytest.raises(ConfigError, match="batch_size"):
        train_few_shot(tiny(), {"train": (data["train"][0][:8], data["train"][1][:8])}, FewShotOptions())


def test_a_1d_space_trains_on_signals_shaped_like_mnist1d(one_thread):
    """The 1-D cell (input (1, 40), MNIST-1D's shape) splits and rates like the 2-D one; inputs without the
    channel axis are refused naming the split."""
    torch.manual_seed(0)
    x, y = torch.randn(96, 1, 40), torch.randint(0, 10, (96,))
    space = NasBench201Space(input_shape=(1, 40), channels=4, cells_per_stage=1, stages=1)
    data = {"train": (x[:64], y[:64]), "valid": (x[64:], y[64:])}
    options = FewShotOptions(levels=1, epochs=1, batch_size=16, gm_batches=1, calibration_size=32)
    nets = train_few_shot(space, data, options, seed=0)
    assert len(nets.subs) == 2 and nets.splits[0].edge in {f"edge_{i}_{j}" for i, j in NB201_EDGES}
    rating = nets.rate(space.sample(np.random.default_rng(0)), *data["valid"])
    assert 0.0 <= rating["supernet_accuracy"] <= 1.0 and np.isfinite(rating["supernet_loss"])
    with pytest.raises(ConfigError, match=r"data\['train'\]: inputs shaped \(40,\)"):
        train_few_shot(space, {"train": (x[:64, 0], y[:64])}, options)
    with pytest.raises(ConfigError, match="labels"):
        train_few_shot(space, {"train": (x[:64], y[:32])}, options)


def test_the_docs_example_runs(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "few_shot_doc"}
    for block in python_blocks(ROOT / "docs" / "few_shot.md"):
        exec(compile(block, "docs/few_shot.md", "exec"), namespace)
    assert len(nas.load(tmp_path / "runs" / "few-shot-example").trials) == 5


@pytest.mark.filterwarnings("ignore::UserWarning")  # the protocol warns about < 10 seeds, as it should here
def test_the_experiment_runs_reduced(tmp_path, one_thread, capsys, monkeypatch):
    """experiments/few_shot.py end to end at toy size: truth cached, every method and seed, the paired table."""
    import json
    import sys

    sys.path.insert(0, str(ROOT / "experiments"))
    import few_shot as experiment

    argv = ["--archs", "4", "--gt-seeds", "2", "--gt-epochs", "1", "--seeds", "2", "--epochs", "1", "--levels", "1",
            "--gm-batches", "1", "--channels", "4", "--jobs", "1", "--results-dir", str(tmp_path)]
    assert experiment.main(argv) == 0
    doc = json.loads((tmp_path / "few_shot_c4.json").read_text())
    assert len(doc["runs"]) == 6 and doc["analysis"]["seeds"] == [0, 1]
    assert len({r["steps"] for r in doc["runs"]}) == 1  # one budget for every method
    assert set(doc["analysis"]["paired"]) == {"gm - one-shot", "gm - random split"}
    out = capsys.readouterr().out
    assert "| gm - random split |" in out and "pairs rated by one sub-supernet" in out
    archs = doc["ground_truth"]["archs"]
    for run in doc["runs"]:  # the recorded owners agree with the ones rebuilt from the splits (older results)
        rebuilt = experiment.owners_of({k: v for k, v in run.items() if k != "owners"}, archs)
        assert rebuilt == run["owners"] and max(rebuilt) < (1 if run["method"] == "one-shot" else 2)  # levels 1
    cached = json.loads((tmp_path / "few_shot_c4_ground_truth.json").read_text())
    assert len(cached["records"]) == 8
    assert "dataset" not in doc["settings"] and doc["dataset"] == "digits"  # digits' stored results stay valid
    # the 1-D cell on MNIST-1D, its own files; a 128-signal slice of each split keeps it fast (workers fork)
    monkeypatch.setitem(experiment._DATA, "mnist1d", {k: (x[:128], y[:128]) for k, (x, y) in
                                                      experiment.load_splits("mnist1d").items()})
    argv[argv.index("--seeds") + 1] = "1"
    assert experiment.main(argv + ["--dataset", "mnist1d"]) == 0
    doc = json.loads((tmp_path / "few_shot_mnist1d_c4.json").read_text())
    assert doc["settings"]["dataset"] == "mnist1d" and len(doc["runs"]) == 3
    assert json.loads((tmp_path / "few_shot_mnist1d_c4_ground_truth.json").read_text())["settings"]["data"].startswith(
        "mnist1d")


@pytest.mark.parametrize("change, field", [
    (lambda d: {k: (x, y.float()) for k, (x, y) in d.items()}, "labels must be integer"),
    (lambda d: {**d, "valid": (d["valid"][0][:0], d["valid"][1][:0])}, r"data\['valid'\]: the split is empty"),
    (lambda d: {"train": d["train"], "valid": d["valid"], "tset": d["test"]}, "unknown split 'tset'"),
    (lambda d: {"train": d["train"]}, "valid"),
])
def test_bad_data_is_refused_before_training(data, tmp_path, change, field):
    """Float labels were a torch error from the loss, an empty valid split a ZeroDivisionError after training."""
    options = FewShotOptions(levels=1, epochs=1, batch_size=32, gm_batches=1, calibration_size=64)
    with pytest.raises(ConfigError, match=field):
        search_few_shot(tiny(), change(data), 2, options, workdir=tmp_path)
    assert not (tmp_path / "journal.jsonl").exists()


def test_a_negative_seed_is_refused(data):
    options = FewShotOptions(levels=1, epochs=1, batch_size=32, gm_batches=1, calibration_size=64)
    with pytest.raises(ConfigError, match="seed: expected a non-negative int"):
        search_few_shot(tiny(), data, 2, options, seed=-1)
    with pytest.raises(ConfigError, match="seed: expected a non-negative int"):
        train_few_shot(tiny(), data, options, seed=-1)
