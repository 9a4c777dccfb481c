"""Strategy snapshots do not grow with the journal: the dedup cache is rebuilt from the journal on load, older
snapshots holding the whole cache still resume exactly, and the snapshot interval counts from a snapshot's end."""

from __future__ import annotations

import importlib
import json
import time
import types

import nas
from nas.experiment import Experiment
from nas.spaces import Architecture, Choice, Integer, Space
from nas.store import Journal
from nas.strategies import TrialResult
from tests.test_search import toy_eval, toy_space

OBJECTIVES = {"accuracy": "max", "latency_ms": "min"}


def wide_space() -> Space:
    """20 decisions: a snapshot holding every result would grow by hundreds of bytes per trial."""
    return Space(**{f"x{i}": Choice([3, 5, 7]) if i % 2 else Integer(8, 256, step=8) for i in range(20)})


def wide_eval(arch):
    values = [arch[f"x{i}"] for i in range(20)]
    return {"accuracy": float(sum(v ** 0.5 for v in values)), "latency_ms": float(sum(values)) / 100}




def test_the_snapshot_does_not_grow_with_the_trials(tmp_path):
    sizes = {}
    for n in (100, 1000):
        study = nas.Study(wide_space(), OBJECTIVES, strategy="random", budget=n, seed=0, workdir=tmp_path / str(n))
        with study:
            for _ in range(n):
                arch = study.ask()
                study.tell(arch, wide_eval(arch))
        snap = json.loads((tmp_path / str(n) / "strategy.json").read_text())
        assert snap["after_trial"] == n - 1 and snap["state"]["results"] == []
        sizes[n] = (tmp_path / str(n) / "strategy.json").stat().st_size
    assert sizes[1000] < 1.1 * sizes[100], sizes


def _as_old_format(workdir) -> None:
    """Rewrite `workdir`'s snapshot as releases before the journal gave the cache back wrote it: every result
    cached, by canonical key (the first result of each), in the order they were told."""
    path = workdir / "strategy.json"
    snap = json.loads(path.read_text())
    state = snap["state"]
    assert state.pop("journaled") is True and state["results"] == []
    state.pop("aliases")
    space, cached = toy_space(), {}
    for t in Journal(workdir).read().trials[:snap["after_trial"] + 1]:
        cached.setdefault(space.canonical_key(t.arch), [t.arch, TrialResult.of(t.status, t.metrics).to_dict()])
    state["results"] = [[k, a, r] for k, (a, r) in cached.items()]
    path.write_text(json.dumps(snap))


def test_a_snapshot_of_the_older_format_resumes_exactly_and_is_rewritten_small(tmp_path):
    full = nas.search(toy_space(), toy_eval, OBJECTIVES, strategy="evolution", budget=60, seed=5)
    nas.search(toy_space(), toy_eval, OBJECTIVES, strategy="evolution", budget=25, seed=5, workdir=tmp_path,
               snapshot_every=4, snapshot_interval_s=0)
    _as_old_format(tmp_path)
    resumed = nas.search(toy_space(), toy_eval, OBJECTIVES, strategy="evolution", budget=60, seed=5,
                         workdir=tmp_path)
    assert [t.arch_id for t in resumed.trials] == [t.arch_id for t in full.trials]
    assert [t.status for t in resumed.trials] == [t.status for t in full.trials]
    state = json.loads((tmp_path / "strategy.json").read_text())["state"]
    assert state["journaled"] is True and state["results"] == []


def test_a_study_reopened_from_an_older_snapshot_goes_on_as_one_never_closed(tmp_path):
    def drive(study, steps):
        out = []
        for _ in range(steps):
            arch = study.ask()
            if arch is None:
                break
            out.append(arch.id)
            study.tell(arch, toy_eval(arch))
        return out

    with nas.Study(toy_space(), OBJECTIVES, strategy="evolution", budget=80, seed=2) as whole:
        expected = drive(whole, 80)
    with nas.Study(toy_space(), OBJECTIVES, strategy="evolution", budget=80, seed=2, workdir=tmp_path) as first:
        got = drive(first, 30)
    _as_old_format(tmp_path)
    with nas.Study(toy_space(), OBJECTIVES, strategy="evolution", budget=80, seed=2, workdir=tmp_path) as again:
        assert len(again._loop.strategy.results) == len(first._loop.strategy.results)
        got += drive(again, 50)
    assert got == expected


def test_a_warm_start_is_kept_in_the_snapshot_while_the_journal_is_not(tmp_path):
    nas.search(toy_space(), toy_eval, OBJECTIVES, strategy="random", budget=12, seed=1, workdir=tmp_path / "a")
    full = nas.search(toy_space(), toy_eval, OBJECTIVES, strategy="evolution", budget=40, seed=3,
                      warm_start=tmp_path / "a")
    nas.search(toy_space(), toy_eval, OBJECTIVES, strategy="evolution", budget=20, seed=3, workdir=tmp_path / "b",
               warm_start=tmp_path / "a")
    state = json.loads((tmp_path / "b" / "strategy.json").read_text())["state"]
    warm = {t.arch_id for t in nas.load(tmp_path / "a").trials}
    assert {Architecture(r[1]).id for r in state["results"]} == warm  # the warm start's only
    resumed = nas.search(toy_space(), toy_eval, OBJECTIVES, strategy="evolution", budget=40, seed=3,
                         workdir=tmp_path / "b")
    assert [t.arch_id for t in resumed.trials] == [t.arch_id for t in full.trials]


def test_the_snapshot_interval_counts_from_the_end_of_the_last_snapshot(tmp_path, monkeypatch):
    """A fake clock: each evaluation takes 0.5 s and each snapshot 3 s. Counted from a snapshot's start, every trial
    would find 3.5 s >= 2 s passed and snapshot again; counted from its end, one in 4 trials does."""
    clock = [0.0]
    fake = types.SimpleNamespace(monotonic=lambda: clock[0], time=time.time)
    monkeypatch.setattr(importlib.import_module("nas.search"), "time", fake)
    saves = []
    real = Experiment.save_snapshot

    def slow_save(self, snapshot):
        real(self, snapshot)
        saves.append(snapshot["after_trial"])
        clock[0] += 3.0

    def evaluate(arch):
        clock[0] += 0.5
        return toy_eval(arch)

    monkeypatch.setattr(Experiment, "save_snapshot", slow_save)
    nas.search(toy_space(), evaluate, OBJECTIVES, strategy="random", budget=40, seed=0, workdir=tmp_path,
               snapshot_every=1, snapshot_interval_s=2.0)
    gaps = {b - a for a, b in zip(saves, saves[1:-1])}
    assert gaps == {4}, saves
