"""NEAS (nas.neas): the chain space and its ensembles, the potential + diversity scores, shrinking, export, a run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nas
from nas.errors import ConfigError
from nas.neas import (ChainConfig, ChainSpace, EnsembleConfig, EnsembleSpace, EnsembleSupernet, NeasOptions,
                      load_ensemble, save_ensemble, score_candidates, search_neas, shrink)
from tests.docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]
TINY = ChainConfig(stem_channels=4, channels=(4, 4, 8), strides=(2, 1, 2), kernels=(3, 5), expands=(1, 2),
                   head_channels=8)


def _data(n: int = 96, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Signals whose class is the position of a bump (learnable in a few steps), three splits."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for split in ("train", "valid", "test"):
        y = torch.randint(0, 4, (n,), generator=g)
        x = 0.3 * torch.randn(n, 40, generator=g)
        for i, c in enumerate(y.tolist()):
            x[i, 10 * c:10 * c + 6] += 2.0
        out[split] = (x, y)
    return out


def test_the_chain_space_knows_its_candidates_flops_and_subnets(one_thread):
    space = ChainSpace(TINY)
    assert [len(TINY.layer_ops(i)) for i in range(3)] == [4, 5, 4]  # skip only where the shape is kept
    assert TINY.layer_ops(1)[0] == "skip" and "skip" not in TINY.layer_ops(0)
    rng = np.random.default_rng(0)
    supernet = space.supernet()
    x = torch.randn(5, 40)
    for _ in range(4):
        arch = space.sample(rng)
        assert space.flops(arch) == space.count(arch)["flops"]  # the per-layer table adds up
        sub = supernet.subnet(arch)
        for mode in (True, False):
            supernet.train(mode), sub.train(mode)
            assert torch.allclose(supernet(x, arch), sub(x), atol=1e-5)
    shrunk = space.shrunk([["k3e1"], ["skip", "k5e2"], ["k5e1", "k3e2"]])
    assert shrunk.size() == 4 and shrunk.supernet().state_dict().keys() == supernet.state_dict().keys()
    with pytest.raises(ConfigError, match=r"allowed\[1\]"):
        ChainConfig(**{**TINY.to_dict(), "allowed": [["k3e1"], ["k9e9"], ["k3e1"]]})


def test_diversity_is_higher_for_a_candidate_whose_predictions_differ():
    """Layer0's op "b" is used by paths predicting class 1 while all the others predict class 0: its paths
    disagree with any ensemble of the rest, so its diversity is higher (and its potential lower: y is 0)."""
    y = torch.zeros(20, dtype=torch.long)
    one_hot = {c: F.one_hot(torch.full((20,), c), 3).float() * 0.8 + 0.2 / 3 for c in (0, 1)}
    archs = [{"layer0": op, "layer1": other} for op, other in
             [("a", "x"), ("a", "y"), ("a", "x"), ("a", "y"), ("c", "x"), ("c", "y"), ("b", "x"), ("b", "y")]]
    probs = [one_hot[1 if a["layer0"] == "b" else 0] for a in archs]
    scores = score_candidates(archs, probs, y, members=3, groups=6, diversity_weight=1.0,
                              rng=np.random.default_rng(0))
    s = scores["layer0"]
    assert s["b"].diversity > s["a"].diversity and s["b"].diversity > s["c"].diversity
    assert s["b"].diversity == 1.0 and s["a"].diversity < 0.5
    assert s["b"].potential == 0.0 and s["a"].potential == 1.0 and s["a"].paths == 4
    # with a strong diversity weight, the diverse candidate outscores equally accurate redundant ones
    strong = score_candidates(archs, probs, y, members=3, groups=6, diversity_weight=10.0,
                              rng=np.random.default_rng(0))["layer0"]
    assert strong["b"].score > strong["a"].score


def test_shrinking_removes_the_lowest_scores_of_every_layer():
    space = ChainSpace(TINY)
    archs = space.sample_balanced(np.random.default_rng(1), 20)
    for i in range(3):  # every candidate of every layer rated at least 20 // 5 times
        counts = [sum(a[f"layer{i}"] == op for a in archs) for op in TINY.layer_ops(i)]
        assert min(counts) >= 20 // len(counts)
    y = torch.randint(0, 3, (30,), generator=torch.Generator().manual_seed(0))
    probs = [F.softmax(torch.randn(30, 3, generator=torch.Generator().manual_seed(j)), -1) for j in range(20)]
    scores = score_candidates(archs, probs, y, 3, 2, 0.5, np.random.default_rng(0))
    shrunk, removed = shrink(space, scores, drop=2)
    for i in range(3):
        name = f"layer{i}"
        worst = sorted(scores[name], key=lambda op: scores[name][op].score)[:2]
        assert sorted(removed[name]) == sorted(worst)
        assert set(shrunk.config.candidates(i)) == set(TINY.layer_ops(i)) - set(worst)
    with pytest.raises(ConfigError, match="drop"):
        shrink(shrunk, scores, drop=2)
    # under a FLOPs budget each layer's cheapest candidate stays, whatever its score
    kept, removed = shrink(space, {n: {op: replace(sc, score=-sc.potential if op in ("k3e1", "skip") else 0.0)
                                       for op, sc in ops.items()} for n, ops in scores.items()},
                           drop=2, keep_cheapest=True)
    assert all(len(r) == 2 for r in removed.values())
    assert [kept.config.candidates(i)[0] for i in range(3)] == ["k3e1", "skip", "k3e1"]
    assert kept.flops({f"layer{i}": kept.config.candidates(i)[0] for i in range(3)}) == min(
        space.flops(a) for a in space)


def test_the_exported_ensemble_is_the_mean_of_its_members_softmax(tmp_path, one_thread):
    torch.manual_seed(0)
    space = EnsembleSpace(EnsembleConfig(TINY, members=3))
    supernet = EnsembleSupernet(space)
    arch = space.sample(np.random.default_rng(0))
    ensemble = supernet.subnet(arch).eval()
    x = torch.randn(6, 40)
    members = [supernet.chain.subnet(m).eval() for m in arch["members"]]
    expected = torch.stack([F.softmax(m(x), -1) for m in members]).mean(0)
    assert torch.allclose(ensemble(x), expected, atol=1e-6)
    assert torch.allclose(supernet.eval()(x, arch), expected, atol=1e-5)
    assert torch.allclose(ensemble(x).sum(-1), torch.ones(6), atol=1e-6)
    folder = save_ensemble(ensemble, space, arch, tmp_path / "ensemble")
    for loaded in (load_ensemble(folder), nas.load_subnet(folder)):  # its model.json is an exported model's
        assert torch.allclose(loaded(x), expected, atol=1e-6)
    exported = torch.export.export(ensemble, (x,))  # one traceable graph: members + averaging
    assert torch.allclose(exported.module()(x), expected, atol=1e-6)
    import onnx

    onnx.checker.check_model(onnx.load(str(folder / "model.onnx")))
    # an ensemble is one ensemble whatever the order of its members
    swapped = space.validate({"members": list(reversed([dict(m) for m in arch["members"]]))})
    assert space.canonical_key(swapped) == space.canonical_key(arch)
    assert space.flops(arch) == pytest.approx(sum(space.member_space.count(m)["flops"] for m in arch["members"]))


def test_bad_options_name_the_field():
    with pytest.raises(ConfigError, match="drop"):
        NeasOptions(drop=0)
    with pytest.raises(ConfigError, match="members"):
        NeasOptions(members=1)
    with pytest.raises(ConfigError, match="rounds, drop"):
        search_neas(_data(8), TINY, rounds=3, drop=2)  # 4 candidates cannot lose 6
    with pytest.raises(ConfigError, match="valid"):
        search_neas({"train": _data(8)["train"]}, TINY)


def test_a_tiny_neas_run_shrinks_journals_and_resumes(tmp_path, one_thread):
    data = _data()
    space = ChainSpace(TINY)
    flops_budget = 3 * float(np.median([space.flops(a) for a in space]))
    opts = dict(warmup_epochs=1, epochs_per_round=1, rounds=2, drop=1, paths=10, groups=2, batch_size=32,
                calib_size=64, budget=6, flops_budget=flops_budget)
    result = search_neas(data, TINY, seed=0, workdir=tmp_path / "run", **opts)
    assert [r.removed_per_layer for r in result.rounds] == [[1, 1, 1], [1, 1, 1]]
    assert result.space.flops(result.best) <= flops_budget
    assert [result.space.member_space.config.candidates(i)[0] for i in range(3)] == ["k3e1", "skip", "k3e1"]
    removed = {(layer, op) for r in result.rounds for layer, ops in r.removed.items() for op in ops}
    for t in result.search.completed:  # the final search only uses candidates that survived
        assert not any((layer, op) in removed for m in t.arch["members"] for layer, op in m.items())
    assert result.space.member_space.size() == 2 * 3 * 2
    assert result.best is not None and len(result.best["members"]) == 3
    loaded = nas.load(tmp_path / "run")  # the standard journal: nas.load / nas status read it
    assert len(loaded.completed) == 6 and loaded.config["metadata"]["neas"]["rounds"][0]["removed"]
    best = loaded.best()
    assert best.metrics["accuracy"] == pytest.approx(
        result.evaluator.ensemble_accuracy([nas.architecture.Architecture(m) for m in best.arch["members"]]))
    again = search_neas(data, TINY, seed=0, workdir=tmp_path / "run", **opts)  # resumes: nothing retrained
    assert again.train_seconds == result.train_seconds and again.search.used == 6
    assert len(again.search.trials) == len(result.search.trials)
    assert [r.kept for r in again.rounds] == [r.kept for r in result.rounds]
    with pytest.raises(ConfigError, match=r"^options\.paths: the workdir .* has 10, this call 12"):
        search_neas(data, TINY, seed=0, workdir=tmp_path / "run", **{**opts, "paths": 12})


def test_the_neas_page_runs(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "neas_doc"}
    for block in python_blocks(ROOT / "docs" / "neas.md"):
        exec(compile(block, "docs/neas.md", "exec"), namespace)


def test_a_neas_search_given_a_dataref_records_its_model_spec_and_exports(tmp_path, one_thread):
    from nas.export import export
    from nas.modelspec import DataRef, load_model_spec

    opts = dict(warmup_epochs=2, epochs_per_round=1, rounds=1, drop=1, paths=10, groups=2, batch_size=32,
                calib_size=64, budget=4)
    result = search_neas(DataRef.of(_data, seed=0), TINY, seed=0, workdir=tmp_path / "run", **opts)
    spec = load_model_spec(tmp_path / "run")
    assert spec.weights == "supernet" and spec.notes == {"search": "neas"}
    assert spec.build_space().fingerprint() == result.space.fingerprint()
    report = export(tmp_path / "run", tmp_path / "models", top=1, onnx=False)
    model = report.models[0]
    assert model.arch_id == nas.architecture.Architecture(result.best).id
    exported = nas.load_subnet(model.path)
    assert type(exported).__name__ == "Ensemble"
    # the recorded supernet is the trained one: the same slice of the in-memory supernet, recalibrated as
    # export does, gives the exported outputs
    data = _data(seed=0)
    mine = spec.calibrated(EnsembleSupernet(result.space, result.supernet).subnet(result.best), data)
    x = data["valid"][0][:16]
    with torch.no_grad():
        assert torch.allclose(exported(x), mine(x), atol=1e-5)
    # re-measured on the spec's data: the search calibrated batch norm as the spec says (same samples, batches)
    assert model.measured["accuracy"] == pytest.approx(model.searched["accuracy"], abs=1e-9)
    from typer.testing import CliRunner

    from nas.cli import app

    out = CliRunner().invoke(app, ["status", str(tmp_path / "run")])
    assert out.exit_code == 0, out.stdout
    assert "nas.neas.search_neas(" in " ".join(out.stdout.split())  # how to continue: its own driver
    plain = search_neas(_data(), TINY, seed=0, workdir=tmp_path / "plain", **opts)  # no DataRef: no spec
    assert plain.best == result.best and not (tmp_path / "plain" / "model.json").exists()
    # one copy of the weights per workdir: the spec's supernet.pt replaces the resume file, and resuming reads it
    assert not (tmp_path / "run" / "neas_supernet.pt").exists() and (tmp_path / "plain" / "neas_supernet.pt").exists()
    again = search_neas(DataRef.of(_data, seed=0), TINY, seed=0, workdir=tmp_path / "run", **opts)
    assert again.best == result.best
    resumed = dict(again.supernet.named_parameters())  # (batch-norm buffers move when rated: parameters only)
    for k, v in result.supernet.named_parameters():
        assert torch.equal(resumed[k], v), k


def _no_training(monkeypatch):
    """Make any K-path training fail the test: the checks must come first."""
    def train(*args, **kwargs):
        raise AssertionError("search_neas trained before refusing its arguments")
    monkeypatch.setattr("nas.neas.search.train_kpath", train)


def test_bad_data_seeds_and_options_are_refused_before_any_training(tmp_path, monkeypatch):
    _no_training(monkeypatch)
    data = _data(16)
    opts = dict(rounds=1, drop=1, batch_size=8, workdir=tmp_path / "run")
    images = {k: (x[:, :36].reshape(-1, 1, 6, 6), y) for k, (x, y) in data.items()}
    bad = [
        (images, {}, r"data\['train'\]: inputs shaped \(1, 6, 6\), the space expects \(40,\)"),
        ({**data, "valid": (data["valid"][0], data["valid"][1].float())}, {},
         r"data\['valid'\]: labels must be integer"),
        ({**data, "valid": (data["valid"][0][:0], data["valid"][1][:0])}, {}, r"data\['valid'\]: the split is empty"),
        ({"train": data["train"], "valid": data["valid"], "tset": data["test"]}, {}, "unknown split 'tset'"),
        ({**data, "test": (data["test"][0], data["test"][1] + 10)}, {}, r"data\['test'\]: label 1[0-3] .*num_classes"),
        (data, {"seed": -1}, "seed: expected a non-negative int"),
        (data, {"warmup_epoch": 1}, "warmup_epoch: not a NEAS option"),
        (data, {"batch_size": 17}, "batch_size: 17 exceeds the 16 samples of 'train'"),
        (data, {"calib_size": 1}, "calib_size"),
        (data, {"flops_budget": 1.0}, "flops_budget: .* below the 3 smallest members"),
        (data, {"strategy": "evolutoin"}, "unknown strategy 'evolutoin'"),
        (data, {"budget": 0}, "budget"),
    ]
    for given, extra, message in bad:
        with pytest.raises(ConfigError, match=message):
            search_neas(given, TINY, **{**opts, **extra})
    assert not (tmp_path / "run").exists()
    # (N, 1, L) signals are what the chain takes too: they pass the checks (and reach the strategy's)
    with pytest.raises(ConfigError, match="unknown strategy"):
        search_neas({k: (x.unsqueeze(1), y) for k, (x, y) in data.items()}, TINY, strategy="evolutoin", **opts)


def test_a_neas_workdir_continues_with_a_larger_budget_and_names_a_changed_option(tmp_path, monkeypatch, one_thread):
    """`budget` and `strategy` shape only the final search: the trained supernet stages are reused."""
    from nas.errors import JournalError

    data = _data(48)
    opts = dict(warmup_epochs=1, epochs_per_round=1, rounds=1, drop=1, paths=8, groups=1, batch_size=16,
                calib_size=32, seed=0, workdir=tmp_path / "run")
    first = search_neas(data, TINY, budget=3, **opts)
    assert first.search.used == 3
    _no_training(monkeypatch)  # from here on nothing may retrain
    more = search_neas(data, TINY, budget=5, **opts)  # as `nas status` advises: same call, larger budget
    assert more.search.used == 5 and more.train_seconds == first.train_seconds
    assert [t.arch for t in more.search.trials[:3]] == [t.arch for t in first.search.trials]
    for changed, message in [({"epochs_per_round": 2}, r"^options\.epochs_per_round: .* has 1, this call 2"),
                             ({"seed": 1}, r"^seed: the workdir .* has 0, this call 1"),
                             ({"calib_size": 16}, r"^options\.calib_size: .* has 32, this call 16")]:
        with pytest.raises(ConfigError, match=message):
            search_neas(data, TINY, budget=5, **{**opts, **changed})
    with pytest.raises(ConfigError, match=r"^frame\.head_channels: the workdir .* has 8, this call 16"):
        search_neas(data, replace(TINY, head_channels=16), budget=5, **opts)
    with pytest.raises(JournalError, match="strategy"):  # the final search has trials: its journal refuses it
        search_neas(data, TINY, budget=5, strategy="random", **opts)


def test_the_strategy_may_change_until_the_final_search_starts(tmp_path, monkeypatch, one_thread):
    import nas.neas.search as neas_search

    data = _data(48)
    opts = dict(warmup_epochs=1, epochs_per_round=1, rounds=1, drop=1, paths=8, groups=1, batch_size=16,
                calib_size=32, budget=3, seed=0, workdir=tmp_path / "run")

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # killed after the supernet stages, before the final search opened its journal
    with monkeypatch.context() as m:
        m.setattr(neas_search, "_final_search", stopped)
        with pytest.raises(KeyboardInterrupt):
            search_neas(data, TINY, **opts)
    _no_training(monkeypatch)
    result = search_neas(data, TINY, **{**opts, "strategy": "random"})
    assert result.search.used == 3 and nas.load(tmp_path / "run").config["strategy"] == "random"


def test_the_searched_accuracy_is_what_the_model_spec_remeasures(tmp_path, one_thread):
    """The search recalibrates batch norm as its recorded spec says (the first calib_size training samples, in
    batches of batch_size), so every journaled ensemble re-measures to the same accuracy, and `nas export` too."""
    from nas.export import export
    from nas.modelspec import DataRef, load_model_spec

    opts = dict(warmup_epochs=4, epochs_per_round=1, rounds=1, drop=1, paths=10, groups=2, batch_size=32,
                calib_size=48, budget=4)
    result = search_neas(DataRef.of(_data, n=160, seed=0), TINY, seed=0, workdir=tmp_path / "run", **opts)
    spec = load_model_spec(tmp_path / "run")
    assert spec.calibration == {"split": "train", "size": 48, "batch_size": 32}
    remeasure = spec.evaluator(EnsembleSupernet(result.space, result.supernet), _data(n=160, seed=0))
    trials = nas.load(tmp_path / "run").completed
    assert len(trials) == 4
    for t in trials:
        assert remeasure(t.arch)["accuracy"] == pytest.approx(t.metrics["accuracy"], abs=1e-9), t.arch
    model = export(tmp_path / "run", tmp_path / "models", top=1, onnx=False).models[0]
    assert model.measured["accuracy"] == pytest.approx(model.searched["accuracy"], abs=1e-9)
