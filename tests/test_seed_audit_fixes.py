"""The seed-system audit (session 23): EAS dead ends, data fingerprints on resume, NEAS `allowed`, unrated NEAS
candidates, checks before the workdir is claimed, the NEAS stage commit, tight NEAS FLOPs budgets, few-shot step
accounting, explicit `archs` budgets, and options given as a dict. Each test failed on the code the audit read."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import nas
import nas.neas.search as neas_search
from nas.bossnas import BossOptions, HybridConfig, HybridSpace, search_bossnas
from nas.datasets import digits_splits
from nas.eas import Controller, EASOptions, search_eas
from nas.errors import ConfigError, JournalError
from nas.few_shot import FewShotOptions, search_few_shot, train_few_shot
from nas.neas import ChainConfig, ChainSpace, NeasOptions, search_neas
from nas.spaces.cell import NasBench201Space
from nas.spaces.net2net import StackConfig, StackSpace
from tests.test_neas import _data as neas_data

TINY_CHAIN = ChainConfig(stem_channels=4, channels=(4, 4, 8), strides=(2, 1, 2), kernels=(3, 5), expands=(1, 2),
                         head_channels=8)  # 4, 5 and 4 candidates per layer
NEAS_FAST = dict(warmup_epochs=1, epochs_per_round=0, rounds=1, drop=1, paths=5, groups=1, batch_size=16,
                 calib_size=32, budget=2)
FEW_SHOT = FewShotOptions(levels=1, epochs=1, batch_size=32, gm_batches=1, calibration_size=64)
BOSS = BossOptions(epochs=1, batch_size=32, paths=2, hidden=16, proj_dim=8, rating_views=1, retrain_epochs=0)
EAS = EASOptions(episodes=1, steps=1, seed_epochs=1, child_epochs=1)


@pytest.fixture(scope="module")
def digits():
    return {k: (x[:128], y[:128]) for k, (x, y) in digits_splits(seed=0).items()}


@pytest.fixture(scope="module")
def other_digits():
    """Other digits of the same sizes (another split seed)."""
    return {k: (x[:128], y[:128]) for k, (x, y) in digits_splits(seed=1).items()}


def signals(n: int = 64, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Signals whose class is the position of a bump, three splits (the chain's 40-sample input)."""
    return neas_data(n, seed)


def cell() -> NasBench201Space:
    return NasBench201Space(channels=4, cells_per_stage=1, stages=1)


def hybrid() -> HybridSpace:
    return HybridSpace(HybridConfig(channels=8))


def smallest_flops(space: ChainSpace, fixed: dict[str, str] | None = None) -> float:
    """FLOPs of the cheapest architecture of `space` whose layers in `fixed` take the ops given."""
    fixed = fixed or {}
    return space.flops({f"layer{i}": fixed.get(f"layer{i}") or min(space.config.candidates(i),
                                                                    key=lambda op, i=i: space.op_flops(i, op))
                        for i in range(space.num_layers)})


def no_training(*args, **kwargs):
    raise AssertionError("trained although the call should have been refused before any training")


# ---------------------------------------------------------------------------------------- 1. EAS dead ends
def test_eas_sample_avoids_a_dead_end_first_action_and_stops_only_when_every_child_is_visited():
    space = StackSpace(StackConfig(max_conv=2, max_fc=2, min_width=4, max_width=16))
    arch = space.make([4], [4])
    firsts = space.actions(arch)
    children = {a: {space.transformed(space.transformed(arch, a), b).id
                    for b in space.actions(space.transformed(arch, a))} for a in firsts}
    keep = firsts[-1]  # only this first action still leads to an unvisited network (two of them)
    everything = set().union(*children.values())
    visited = set().union(*(c for a, c in children.items() if a != keep))
    assert len(everything - visited) == 2
    for seed in range(12):
        sampled = Controller(space, learn=False).sample(arch, 2, np.random.default_rng(seed), visited, 2.0)
        assert sampled is not None, f"seed {seed}: stopped although 2 networks are unvisited"
        actions, _ = sampled
        end = space.transformed(space.transformed(arch, actions[0]), actions[1])
        assert actions[0] == keep and end.id not in visited
    assert Controller(space, learn=False).sample(arch, 2, np.random.default_rng(0), everything, 2.0) is None


def test_eas_draws_without_a_dead_end_are_the_policys_plain_draws():
    """No dead end: the same two rng draws over every admitted action as before the fix (recorded runs hold)."""
    space = StackSpace()
    arch = space.make([8], [16])
    controller = Controller(space)
    controller.logits = np.linspace(-1.0, 1.0, len(controller.table))
    for seed in range(5):
        actions, _ = controller.sample(arch, 2, np.random.default_rng(seed), set(), 2.0)
        rng, a, expected = np.random.default_rng(seed), arch, []
        for _ in range(2):
            allowed = space.actions(a)
            expected.append(allowed[int(rng.choice(len(allowed), p=controller.probabilities(allowed)))])
            a = space.transformed(a, expected[-1])
        assert actions == expected


# ---------------------------------------------------------------------------------------- 2. other data, same size
def test_few_shot_eas_and_bossnas_refuse_other_data_of_the_same_size(digits, other_digits, tmp_path, one_thread,
                                                                      monkeypatch):
    search_few_shot(cell(), digits, 2, FEW_SHOT, seed=0, workdir=tmp_path / "fs")
    search_eas(digits, options=EAS, workdir=tmp_path / "eas", seed=0)
    search_bossnas(hybrid(), digits, 2, BOSS, seed=0, workdir=tmp_path / "boss")
    import nas.bossnas
    import nas.eas
    import nas.few_shot
    monkeypatch.setattr(nas.few_shot, "train_few_shot", no_training)
    monkeypatch.setattr(nas.eas, "PlainTraining", no_training)
    monkeypatch.setattr(nas.bossnas, "train_bossnas", no_training)
    calls = {"fs": lambda: search_few_shot(cell(), other_digits, 4, FEW_SHOT, seed=0, workdir=tmp_path / "fs"),
             "eas": lambda: search_eas(other_digits, options=EASOptions(**{**EAS.to_dict(), "episodes": 3}),
                                       workdir=tmp_path / "eas", seed=0),
             "boss": lambda: search_bossnas(hybrid(), other_digits, 4, BOSS, seed=0, workdir=tmp_path / "boss")}
    for name, call in calls.items():
        before = (tmp_path / name / "journal.jsonl").read_text()
        with pytest.raises(JournalError, match=r"other data: data\['train'\]"):
            call()
        assert (tmp_path / name / "journal.jsonl").read_text() == before, name


def test_neas_refuses_other_data_of_the_same_size(tmp_path, one_thread, monkeypatch):
    search_neas(signals(seed=0), TINY_CHAIN, seed=0, workdir=tmp_path / "n", **NEAS_FAST)
    monkeypatch.setattr(neas_search, "train_kpath", no_training)
    with pytest.raises(ConfigError, match=r"data\.train: the workdir"):
        search_neas(signals(seed=1), TINY_CHAIN, seed=0, workdir=tmp_path / "n", **{**NEAS_FAST, "budget": 4})


def test_workdirs_from_before_the_data_digest_resume_with_a_warning(digits, tmp_path, one_thread, caplog):
    wd = tmp_path / "fs"
    search_few_shot(cell(), digits, 2, FEW_SHOT, seed=0, workdir=wd)
    lines = (wd / "journal.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    del header["config"]["metadata"]["data_sha1"]  # as an older version wrote it
    (wd / "journal.jsonl").write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    with caplog.at_level(logging.WARNING):
        result = search_few_shot(cell(), digits, 3, FEW_SHOT, seed=0, workdir=wd)
    assert len(result.trials) == 3 and "predates metadata.data_sha1" in caplog.text

    n = tmp_path / "n"
    search_neas(signals(), TINY_CHAIN, seed=0, workdir=n, **NEAS_FAST)
    saved = torch.load(n / neas_search.SUPERNET_FILE, weights_only=True)
    torch.save(saved["weights"], n / neas_search.SUPERNET_FILE)  # the older layout: weights alone, state in JSON
    state = {k: v for k, v in saved["state"].items() if k not in ("data", "allowed")}
    (n / neas_search.STATE_FILE).write_text(json.dumps(state))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = search_neas(signals(), TINY_CHAIN, seed=0, workdir=n, **NEAS_FAST)
    assert "predates data digests" in caplog.text and again.rounds[0].removed == saved["state"]["rounds"][0]["removed"]


# ---------------------------------------------------------------------------------------- 3. NEAS honours `allowed`
def test_neas_searches_the_allowed_candidates_and_a_workdir_remembers_them(tmp_path, one_thread, monkeypatch):
    allowed = (("k3e1", "k5e1", "k3e2"), ("skip", "k3e1", "k5e2"), ("k3e1", "k3e2", "k5e2"))
    config = TINY_CHAIN.shrunk(allowed)
    result = search_neas(signals(), config, seed=0, workdir=tmp_path / "n", **{**NEAS_FAST, "paths": 3})
    for i, ops in enumerate(allowed):
        assert set(result.rounds[0].kept[f"layer{i}"]) <= set(ops)
        assert set(result.rounds[0].scores[f"layer{i}"]) == set(ops)
    used = {(layer, op) for t in result.search.trials for m in t.arch["members"] for layer, op in m.items()}
    assert all(op in allowed[int(layer[-1])] for layer, op in used)
    assert result.info["given_size"] == 27 < result.info["frame_size"]
    monkeypatch.setattr(neas_search, "train_kpath", no_training)
    with pytest.raises(ConfigError, match="allowed: the workdir"):
        search_neas(signals(), TINY_CHAIN, seed=0, workdir=tmp_path / "n", **{**NEAS_FAST, "paths": 5})


# ---------------------------------------------------------------------------------------- 4. unrated candidates
def test_neas_refuses_fewer_paths_than_a_layers_candidates_before_training(monkeypatch):
    monkeypatch.setattr(neas_search, "train_kpath", no_training)
    with pytest.raises(ConfigError, match=r"paths: 4 rated paths cannot rate the 5 candidates of layer1"):
        search_neas(signals(), TINY_CHAIN, seed=0, **{**NEAS_FAST, "paths": 4})


def test_under_a_flops_budget_every_candidate_that_fits_is_rated_before_removal(one_thread):
    space = ChainSpace(TINY_CHAIN)
    cap = 1.6 * smallest_flops(space)  # per member: the balanced draws of seed 0 miss three that fit
    result = search_neas(signals(), TINY_CHAIN, seed=0, flops_budget=3 * cap, **NEAS_FAST)
    record = result.rounds[0]
    for i in range(space.num_layers):
        layer = f"layer{i}"
        fits = {op for op in TINY_CHAIN.candidates(i) if smallest_flops(space, {layer: op}) <= cap}
        assert fits <= set(record.scores[layer]), f"{layer}: {fits - set(record.scores[layer])} removed unrated"


# ---------------------------------------------------------------------------------------- 5. checked before claiming
def test_bad_values_are_refused_before_the_workdir_is_created(digits, tmp_path):
    with pytest.raises(ConfigError, match=r"^batch_size: expected"):
        search_few_shot(cell(), digits, 2, FewShotOptions(levels=1, epochs=1, batch_size=1), workdir=tmp_path / "fs")
    assert not (tmp_path / "fs").exists()
    with pytest.raises(ConfigError, match=r"lr: expected a finite number > 0"):
        search_eas(digits, options=EASOptions(episodes=1, seed_epochs=1, lr=0.0), workdir=tmp_path / "eas")
    assert not (tmp_path / "eas").exists()
    with pytest.raises(ConfigError, match=r"batch_size: expected an int >= 2"):
        search_eas(digits, options=EASOptions(episodes=1, seed_epochs=1, batch_size=1), workdir=tmp_path / "eas")
    assert not (tmp_path / "eas").exists()
    one_valid = {"train": digits["train"], "valid": (digits["valid"][0][:1], digits["valid"][1][:1])}
    with pytest.raises(ConfigError, match=r"^data\['valid'\]: 1 input"):
        search_bossnas(hybrid(), one_valid, 2, BOSS, workdir=tmp_path / "boss")
    assert not (tmp_path / "boss").exists()


def test_a_neas_run_without_warm_up_or_round_training_journals_its_rounds(tmp_path, one_thread):
    """No epoch before a round: its train_loss is None (a NaN made the final search's journal header refuse)."""
    result = search_neas(signals(), TINY_CHAIN, seed=0, workdir=tmp_path / "n",
                         **{**NEAS_FAST, "warmup_epochs": 0})
    assert result.rounds[0].train_loss is None
    assert nas.load(tmp_path / "n").config["metadata"]["neas"]["rounds"][0]["train_loss"] is None


# ---------------------------------------------------------------------------------------- 6. NEAS stage commit
def test_a_stop_between_the_weights_and_the_state_file_resumes_exactly(tmp_path, one_thread, monkeypatch):
    data = signals(96)
    opts = {**NEAS_FAST, "warmup_epochs": 1, "epochs_per_round": 1}
    straight = search_neas(data, TINY_CHAIN, seed=0, workdir=tmp_path / "a", **opts)
    writes = []
    write_json = neas_search.jsonio.write_json

    def stopped(path, *args, **kwargs):
        if str(path).endswith(neas_search.STATE_FILE):
            writes.append(path)
            if len(writes) == 2:  # the last stage's weights are on disk, its state file not yet
                raise KeyboardInterrupt
        return write_json(path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(neas_search.jsonio, "write_json", stopped)
        with pytest.raises(KeyboardInterrupt):
            search_neas(data, TINY_CHAIN, seed=0, workdir=tmp_path / "b", **opts)
    resumed = search_neas(data, TINY_CHAIN, seed=0, workdir=tmp_path / "b", **opts)
    a, b = straight.supernet.state_dict(), resumed.supernet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [(t.arch_id, t.metrics) for t in resumed.search.trials] == [(t.arch_id, t.metrics)
                                                                        for t in straight.search.trials]
    assert json.loads((tmp_path / "b" / neas_search.STATE_FILE).read_text())["done"] == 2


# ---------------------------------------------------------------------------------------- 7. tight FLOPs budget
def test_a_flops_budget_the_up_front_check_accepts_never_fails_after_training(one_thread):
    config = ChainConfig(stem_channels=4, channels=(4, 4, 8, 8, 8, 8), strides=(2, 1, 2, 1, 1, 1), kernels=(3, 5),
                         expands=(1, 2), head_channels=8)
    smallest = smallest_flops(ChainSpace(config))
    with pytest.raises(ConfigError, match="flops_budget"):
        search_neas(signals(), config, seed=0, flops_budget=2.99 * smallest, **NEAS_FAST)
    budget = 3 * 1.02 * smallest  # only near-smallest members fit: the balanced draws find none
    result = search_neas(signals(), config, seed=0, flops_budget=budget, **{**NEAS_FAST, "warmup_epochs": 1})
    assert result.best is not None and result.space.flops(result.best) <= budget
    assert sum(s["paths"] for s in result.rounds[0].scores["layer0"].values()) >= 3


# ---------------------------------------------------------------------------------------- 8. few-shot step budget
def test_few_shot_trains_every_planned_step_when_nothing_can_split(digits, one_thread, caplog):
    space = NasBench201Space(channels=4, cells_per_stage=1, stages=1, ops=("nor_conv_3x3",))
    options = FewShotOptions(levels=2, epochs=3, batch_size=32, gm_batches=1, calibration_size=64)
    with caplog.at_level(logging.WARNING, logger="nas.few_shot"):
        nets = train_few_shot(space, digits, options, seed=0)
    assert nets.steps == sum(s.steps for s in nets.subs) == 3 * (128 // 32) and not nets.splits
    assert "nothing splits" in caplog.text


# ---------------------------------------------------------------------------------------- 9. explicit archs budgets
def test_an_explicit_archs_list_sets_the_budget_to_what_is_rated(digits, tmp_path, one_thread):
    a, b, c = (cell().sample(np.random.default_rng(i)) for i in range(3))
    first = search_few_shot(cell(), digits, [a, b, a], FEW_SHOT, seed=0, workdir=tmp_path / "fs")
    assert len(first.trials) == 2 and first.config["budget"] == 2
    more = search_few_shot(cell(), digits, [c], FEW_SHOT, seed=0, workdir=tmp_path / "fs")
    assert len(more.trials) == 3 and nas.load(tmp_path / "fs").config["budget"] == 3

    h = [hybrid().sample(np.random.default_rng(i)) for i in range(2)]
    boss = search_bossnas(hybrid(), digits, [h[0], h[1], h[0]], BOSS, seed=0, workdir=tmp_path / "boss")
    assert len(boss.trials) == 2 and nas.load(tmp_path / "boss").config["budget"] == 2


# ---------------------------------------------------------------------------------------- 10. options as a dict
def test_options_as_a_dict_are_taken_and_checked_and_a_wrong_space_is_named(digits, one_thread, monkeypatch):
    nets = train_few_shot(cell(), digits, {"levels": 1, "epochs": 1, "batch_size": 32, "gm_batches": 1}, seed=0)
    assert nets.steps == 128 // 32 and len(nets.subs) == 2
    result = search_eas(digits, options={"episodes": 0, "seed_epochs": 1})
    assert len(result.trials) == 1
    for call in (lambda o: search_few_shot(cell(), digits, 2, o), lambda o: search_eas(digits, options=o),
                 lambda o: search_bossnas(hybrid(), digits, 2, o), lambda o: search_neas(signals(), TINY_CHAIN, o)):
        with pytest.raises(ConfigError, match=r"^options\.epoch: not a field of \w+Options"):
            call({"epoch": 1})
        with pytest.raises(ConfigError, match=r"^options: expected a \w+Options or a dict of its fields, got list"):
            call([1])
    with pytest.raises(ConfigError, match=r"^space: EAS transforms conv/fc stacks"):
        search_eas(digits, space=cell())
    monkeypatch.setattr(neas_search, "train_kpath", no_training)
    with pytest.raises(AssertionError, match="trained"):  # the dict was taken: the search got as far as training
        search_neas(signals(), TINY_CHAIN, NeasOptions(**{**NEAS_FAST, "warmup_epochs": 1}).to_dict())
