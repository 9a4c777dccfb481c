"""EAS on digits, reduced to 2 episodes: children inherit the best network's function, the journal counts
epochs both ways, the workdir loads, exports and resumes exactly, and the controller follows its rewards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nas
from nas.datasets import digits_splits
from nas.darts import StandaloneTraining
from nas.eas import Controller, EASOptions, epoch_totals, search_eas
from nas.errors import ConfigError
from nas.export import export
from nas.modelspec import DataRef
from nas.spaces.net2net import StackSpace
from tests.docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]
FAST = EASOptions(episodes=2, steps=2, seed_epochs=3, child_epochs=1, noise=0.0)


@pytest.fixture(scope="module")
def digits():
    return digits_splits(seed=0)


def test_two_episodes_grow_the_best_network_from_inherited_weights(one_thread, tmp_path):
    wd = tmp_path / "eas"
    result = search_eas(DataRef.of(digits_splits, seed=0), options=FAST, workdir=wd, seed=0)
    seed, *children = result.trials
    assert [t.number for t in result.trials] == [0, 1, 2] and seed.extra["actions"] == []
    space = StackSpace()
    for child in children:
        parent = result.trials[child.extra["parent"]]
        assert len(child.extra["actions"]) == 2 and child.arch_id != parent.arch_id
        assert space.count(child.arch)["params"] > space.count(parent.arch)["params"]  # both actions grow it
        assert child.extra["function_change"] <= 1e-4  # without noise a child starts as its parent's function
        assert child.metrics["epochs"] == 1 and child.metrics["scratch_epochs"] == parent.metrics["scratch_epochs"] + 1
    totals = epoch_totals(result.trials)
    assert totals.search == 3 + 1 + 1 and totals.networks == 3
    assert totals.scratch == sum(t.metrics["scratch_epochs"] for t in result.trials) > totals.search

    loaded = nas.load(wd)  # what `nas status` and `nas pareto` read
    assert loaded.config["strategy"] == "eas" and [t.metrics for t in loaded.trials] == [t.metrics for t in result.trials]
    assert loaded.best().metrics["accuracy"] == max(t.metrics["accuracy"] for t in result.trials)
    assert seed in loaded.pareto_front()  # the smallest network is never dominated on params
    report = export(wd, tmp_path / "models", onnx=False)
    measured = {m.trial: m.measured["accuracy"] for m in report.models}
    assert measured == {m.trial: result.trials[m.trial].metrics["accuracy"] for m in report.models}


def test_a_resumed_search_continues_exactly(one_thread, tmp_path):
    data = DataRef.of(digits_splits, seed=1)
    straight = search_eas(data, options=FAST, workdir=tmp_path / "a", seed=3)
    search_eas(data, options=EASOptions(**{**FAST.to_dict(), "episodes": 1}), workdir=tmp_path / "b", seed=3)
    resumed = search_eas(data, options=FAST, workdir=tmp_path / "b", seed=3)
    assert [(t.arch_id, t.metrics["accuracy"], t.extra.get("controller")) for t in resumed.trials] == \
        [(t.arch_id, t.metrics["accuracy"], t.extra.get("controller")) for t in straight.trials]


def test_random_policy_and_in_memory_search(one_thread, digits):
    result = search_eas(digits, options=EASOptions(**{**FAST.to_dict(), "policy": "random"}), seed=0)
    assert len(result.trials) == 3 and result.workdir is None
    assert all(t.extra["controller"]["logits"] == [0.0] * 14 for t in result.trials[1:])  # 2 kinds x (4 conv + 3 fc)
    scratch = StandaloneTraining(StackSpace(), digits, epochs=1)(result.trials[2].arch)  # the scratch control
    assert 0.0 < scratch["accuracy"] <= 1.0 and "test_accuracy" in scratch


def test_reinforce_moves_probability_towards_rewarded_actions():
    space = StackSpace()
    arch = space.make([8], [16])
    controller = Controller(space, lr=1.0, decay=0.5)
    controller.baseline = 0.5
    actions, grad = controller.sample(arch, 1, np.random.default_rng(0), set(), 2.0)
    allowed = space.actions(arch)
    before = controller.probabilities(allowed)[allowed.index(actions[0])]
    assert controller.update(0.9, grad) == pytest.approx(0.4)
    after = controller.probabilities(allowed)[allowed.index(actions[0])]
    assert after > before and controller.baseline == pytest.approx(0.7)
    assert controller.update(0.1, grad) == pytest.approx(-0.6)  # below the baseline: the action loses probability
    assert controller.probabilities(allowed)[allowed.index(actions[0])] < after


def test_bad_settings_name_the_field(digits):
    with pytest.raises(ConfigError, match="options.policy"):
        EASOptions(policy="greedy")
    with pytest.raises(ConfigError, match="options.child_epochs"):
        EASOptions(child_epochs=0)
    with pytest.raises(ConfigError, match="data: missing the 'valid' split"):
        search_eas({"train": digits["train"]}, options=FAST)
    with pytest.raises(ConfigError, match="inputs shaped"):
        search_eas({k: (x.flatten(1), y) for k, (x, y) in digits.items()}, options=FAST)


def test_docs_examples_run(one_thread, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}  # the blocks build on each other, as in a reader's session
    for block in python_blocks(ROOT / "docs" / "eas.md"):
        exec(compile(block, "docs/eas.md", "exec"), namespace)
    assert namespace["report"].models


def test_bad_data_and_seeds_are_refused_before_training(digits, tmp_path):
    """A negative seed was numpy's ValueError; float labels and empty or misspelt splits name the split."""
    with pytest.raises(ConfigError, match="seed: expected a non-negative int"):
        search_eas(digits, options=FAST, seed=-1, workdir=tmp_path)
    with pytest.raises(ConfigError, match="labels must be integer"):
        search_eas({k: (x, y.float()) for k, (x, y) in digits.items()}, options=FAST, workdir=tmp_path)
    with pytest.raises(ConfigError, match=r"data\['valid'\]: the split is empty"):
        search_eas({**digits, "valid": (digits["valid"][0][:0], digits["valid"][1][:0])}, options=FAST)
    with pytest.raises(ConfigError, match="unknown split 'tset'"):
        search_eas({"train": digits["train"], "valid": digits["valid"], "tset": digits["test"]}, options=FAST)
    assert not (tmp_path / "journal.jsonl").exists()
