"""Regression tests for the second audit of the search core (ask/tell loop, workdir journal, resume).

Each test names the defect it guards. Interrupts are raised from inside the strategy (deterministic), and a
kill is modelled by a crash image: the workdir's files copied at the instant after the k-th journal append,
which is what a SIGKILL there leaves behind.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import nas
import nas.store
from nas.errors import ConfigError, JournalError, NASError
from nas.spaces import Choice, Repeat, Space
from nas.strategies import STRATEGIES, make_strategy

SPACE = Space(depth=Choice([2, 3, 4]), blocks=Repeat(count="depth", kernel=Choice([3, 5, 7]), expand=Choice([3, 4, 6])),
              resolution=Choice([128, 160, 192]))
REORDERED = Space(resolution=Choice([128, 160, 192]), depth=Choice([2, 3, 4]),
                  blocks=Repeat(count="depth", kernel=Choice([3, 5, 7]), expand=Choice([3, 4, 6])))
TINY = Space(a=Choice([1, 2, 3, 4]), b=Choice([1, 2, 3, 4]), c=Choice([1, 2]))  # 32 architectures
OBJ = {"accuracy": "max", "latency_ms": "min"}


def my_fn(arch: Any) -> dict[str, float]:
    scale = (arch["resolution"] / 128) ** 2
    capacity = sum(b["kernel"] * b["expand"] for b in arch["blocks"]) * scale ** 0.5
    flops = sum(b["kernel"] ** 2 * b["expand"] for b in arch["blocks"]) * scale
    return {"accuracy": 100 - 400 / (8 + capacity), "latency_ms": arch["depth"] + flops / 40}


def tiny_fn(arch: Any) -> dict[str, float]:
    return {"accuracy": arch["a"] * 10 + arch["b"] + arch["c"] * 0.5, "latency_ms": arch["a"] + arch["b"] * 2 + arch["c"]}


def sig(result: Any) -> list[tuple[Any, ...]]:
    return [(t.number, t.arch_id, t.status, json.dumps(t.metrics, sort_keys=True), t.extra.get("rechecked_from"))
            for t in result.trials]


def header(workdir: Path) -> dict[str, Any]:
    with open(workdir / "journal.jsonl") as f:
        return json.loads(f.readline())["config"]


def rewrite_header(workdir: Path, drop: tuple[str, ...]) -> None:
    """Make the journal look written before the header fields `drop` existed."""
    lines = (workdir / "journal.jsonl").read_text().splitlines(keepends=True)
    head = json.loads(lines[0])
    for key in drop:
        head["config"].pop(key, None)
    lines[0] = json.dumps(head) + "\n"
    (workdir / "journal.jsonl").write_text("".join(lines))


def crash_image(monkeypatch: pytest.MonkeyPatch, workdir: Path, image: Path, after_appends: int) -> None:
    """Copy `workdir` to `image` right after its `after_appends`-th trial append: what a SIGKILL there leaves."""
    original = nas.store.JournalWriter.append
    count = {"n": 0}

    def append(self: Any, trial: Any) -> None:
        original(self, trial)
        if Path(self.workdir) == workdir:
            count["n"] += 1
            if count["n"] == after_appends:
                shutil.copytree(workdir, image)

    monkeypatch.setattr(nas.store.JournalWriter, "append", append)


# ------------------------------------------------------------------------------------------------ 1: Ctrl-C in tell
@pytest.mark.parametrize("strategy,options,k", [("evolution", {"population_size": 6}, 9),
                                                ("nsga2", {"population_size": 4}, 11)])
def test_ctrl_c_inside_a_tell_keeps_the_last_snapshot_and_the_resume_is_exact(tmp_path, monkeypatch, strategy,
                                                                               options, k):
    kw = dict(strategy=strategy, strategy_options=options, budget=20, seed=0, snapshot_every=3,
              snapshot_interval_s=0.0)
    ref = nas.search(SPACE, my_fn, OBJ, workdir=tmp_path / "ref", **kw)
    cls = STRATEGIES[strategy]
    original = cls.tell
    count = {"n": 0}

    def tell(self: Any, arch: Any, result: Any) -> None:
        count["n"] += 1
        if count["n"] == k:
            raise KeyboardInterrupt  # Ctrl-C lands as the strategy starts taking the result in
        original(self, arch, result)

    monkeypatch.setattr(cls, "tell", tell)
    with pytest.raises(KeyboardInterrupt):
        nas.search(SPACE, my_fn, OBJ, workdir=tmp_path / "cut", **kw)
    monkeypatch.setattr(cls, "tell", original)
    journaled = len(nas.load(tmp_path / "cut").trials)
    snap = json.loads((tmp_path / "cut" / "strategy.json").read_text())
    assert snap["after_trial"] < journaled - 1  # the half-told trial is not claimed as covered
    resumed = nas.search(SPACE, my_fn, OBJ, workdir=tmp_path / "cut", **kw)
    assert sig(resumed) == sig(ref)


# ------------------------------------------------------------------------------------ 2: fail-fast tells its trial
def test_the_fail_fast_stop_tells_the_third_failure_so_a_fixed_rerun_uses_the_whole_budget(tmp_path):
    def broken(arch: Any) -> dict[str, float]:
        raise RuntimeError("forgot to move the model to the device")

    kw = dict(strategy="evolution", strategy_options={"population_size": 4}, budget=32, seed=0, workdir=tmp_path)
    with pytest.raises(NASError, match="first 3 evaluations all failed"):
        nas.search(TINY, broken, OBJ, **kw)
    snap = json.loads((tmp_path / "strategy.json").read_text())
    assert snap["after_trial"] == 2 and snap["state"]["in_flight"] == {}  # told: nothing left waiting on it
    fixed = nas.search(TINY, tiny_fn, OBJ, **kw)
    assert fixed.stop_reason == "budget" and fixed.used == 32
    assert len({t.arch_id for t in fixed.trials}) == 32  # the failed ones are not evaluated again


# ----------------------------------------------------------------------------- 3: snapshot ahead of the journal
def test_a_snapshot_ahead_of_the_journal_is_ignored_and_the_journal_replayed(tmp_path, caplog):
    kw = dict(strategy="random", budget=20, seed=0)
    ref = nas.search(SPACE, my_fn, OBJ, workdir=tmp_path / "ref", **kw)
    wd = tmp_path / "cut"
    nas.search(SPACE, my_fn, OBJ, workdir=wd, **kw)
    lines = (wd / "journal.jsonl").read_text().splitlines(keepends=True)
    (wd / "journal.jsonl").write_text("".join(lines[:1 + 15]))  # an older copy of the journal: 15 trials
    with caplog.at_level(logging.WARNING, logger="nas.search"):
        resumed = nas.search(SPACE, my_fn, OBJ, workdir=wd, **kw)
    assert "covers 20 trials but the journal holds 15" in caplog.text
    assert [t.arch_id for t in resumed.trials] == [t.arch_id for t in ref.trials]


# ------------------------------------------------------------------------------- 4: warm-start source moved away
def test_a_warm_started_search_resumes_after_its_source_was_moved_or_deleted(tmp_path):
    nas.search(SPACE, my_fn, OBJ, strategy="random", budget=10, seed=1, workdir=tmp_path / "earlier")
    kw = dict(strategy="evolution", strategy_options={"population_size": 6}, budget=10, seed=2)
    nas.search(SPACE, my_fn, OBJ, workdir=tmp_path / "a", warm_start=tmp_path / "earlier", **kw)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    kw["budget"] = 20
    with_source = nas.search(SPACE, my_fn, OBJ, workdir=tmp_path / "a", **kw)
    shutil.move(tmp_path / "earlier", tmp_path / "archived")
    moved = nas.search(SPACE, my_fn, OBJ, workdir=tmp_path / "b", **kw)
    assert [t.arch_id for t in moved.trials] == [t.arch_id for t in with_source.trials]
    shutil.rmtree(tmp_path / "archived")
    assert nas.search(SPACE, my_fn, OBJ, workdir=tmp_path / "b", **{**kw, "budget": 24}).used == 24


def test_a_warm_start_still_needs_its_source_when_no_snapshot_holds_it(tmp_path):
    nas.search(SPACE, my_fn, OBJ, strategy="random", budget=10, seed=1, workdir=tmp_path / "earlier")
    kw = dict(strategy="evolution", budget=10, seed=2, workdir=tmp_path / "warm")
    nas.search(SPACE, my_fn, OBJ, warm_start=tmp_path / "earlier", **kw)
    (tmp_path / "warm" / "strategy.json").unlink()  # killed before its first snapshot
    shutil.rmtree(tmp_path / "earlier")
    with pytest.raises(ConfigError, match="warm_start: .* holds no search journal"):
        nas.search(SPACE, my_fn, OBJ, **{**kw, "budget": 20})


# ------------------------------------------------------------------------------------- 5: Strategy instances
def test_a_strategy_instance_records_its_own_seed_and_refuses_another(tmp_path):
    problem = nas.Problem.make(OBJ)
    with pytest.raises(ConfigError, match=r"^seed: 1 is not the seed .* instance was made with \(0\)"):
        nas.search(SPACE, my_fn, OBJ, strategy=make_strategy("evolution", SPACE, problem, seed=0), budget=4, seed=1)
    inst = nas.search(SPACE, my_fn, OBJ, strategy=make_strategy("evolution", SPACE, problem, seed=3, population_size=6),
                      budget=8, workdir=tmp_path / "inst")
    assert inst.config["seed"] == 3 == header(tmp_path / "inst")["seed"]
    recorded = header(tmp_path / "inst")["strategy_instance"]
    assert recorded["class"].endswith("RegularizedEvolution") and recorded["options"]["population_size"] == 6
    by_name = nas.search(SPACE, my_fn, OBJ, strategy="evolution", strategy_options={"population_size": 6}, budget=8,
                         seed=3)
    assert [t.arch_id for t in by_name.trials] == [t.arch_id for t in inst.trials]  # the recorded seed is the one used


def test_a_search_run_with_an_instance_is_not_resumed_by_name_or_with_another_instance(tmp_path):
    problem = nas.Problem.make(OBJ)
    wd = tmp_path / "c"
    nas.search(SPACE, my_fn, OBJ, strategy=make_strategy("evolution", SPACE, problem, seed=0, population_size=6),
               budget=8, workdir=wd)
    with pytest.raises(JournalError, match="instance"):
        nas.search(SPACE, my_fn, OBJ, strategy="evolution", budget=16, seed=0, workdir=wd)
    with pytest.raises(JournalError, match="population_size"):
        nas.search(SPACE, my_fn, OBJ, strategy=make_strategy("evolution", SPACE, problem, seed=0, population_size=8),
                   budget=16, workdir=wd)
    resumed = nas.search(SPACE, my_fn, OBJ, budget=16, workdir=wd,
                         strategy=make_strategy("evolution", SPACE, problem, seed=0, population_size=6))
    whole = nas.search(SPACE, my_fn, OBJ, budget=16, workdir=tmp_path / "whole",
                       strategy=make_strategy("evolution", SPACE, problem, seed=0, population_size=6))
    assert [t.arch_id for t in resumed.trials] == [t.arch_id for t in whole.trials]


def test_an_instance_that_ran_a_search_is_refused_for_another(tmp_path):
    s = make_strategy("evolution", SPACE, nas.Problem.make(OBJ), seed=0)
    nas.search(SPACE, my_fn, OBJ, strategy=s, budget=8, seed=0, workdir=tmp_path / "a")
    with pytest.raises(ConfigError, match="already ran a search"):
        nas.search(SPACE, my_fn, OBJ, strategy=s, budget=8, seed=0, workdir=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_an_instance_search_journaled_before_instances_were_recorded_still_resumes(tmp_path):
    wd = tmp_path / "old"
    problem = nas.Problem.make(OBJ)
    nas.search(SPACE, my_fn, OBJ, strategy=make_strategy("evolution", SPACE, problem, seed=0), budget=6, workdir=wd)
    rewrite_header(wd, ("strategy_instance",))  # as the previous version wrote it (its seed: drawn, not 0)
    lines = (wd / "journal.jsonl").read_text().splitlines(keepends=True)
    head = json.loads(lines[0])
    head["config"]["seed"] = 12345
    (wd / "journal.jsonl").write_text("".join([json.dumps(head) + "\n"] + lines[1:]))
    r = nas.search(SPACE, my_fn, OBJ, strategy=make_strategy("evolution", SPACE, problem, seed=0), budget=10,
                   workdir=wd)
    assert r.used == 10 and r.config["seed"] == 12345


# --------------------------------------------------------------- 6: a kill after the objective-typo fix (recheck)
def test_a_kill_after_the_typo_fix_resumes_as_the_uninterrupted_corrected_run(tmp_path, monkeypatch):
    kw = dict(strategy="local", budget=20, seed=0, snapshot_interval_s=0.0, snapshot_every=3)
    typo = tmp_path / "typo"
    with pytest.raises(ConfigError, match="objective 'acc'"):
        nas.search(SPACE, my_fn, {"acc": "max", "latency_ms": "min"}, workdir=typo, **kw)
    for k in (2, 4):
        wd, image = tmp_path / f"run{k}", tmp_path / f"image{k}"
        shutil.copytree(typo, wd)
        crash_image(monkeypatch, wd, image, after_appends=k)
        whole = nas.search(SPACE, my_fn, OBJ, workdir=wd, **kw)  # the corrected run, uninterrupted
        monkeypatch.undo()
        assert whole.trials[1].extra.get("rechecked_from") == 0
        resumed = nas.search(SPACE, my_fn, OBJ, workdir=image, **kw)
        assert sig(resumed) == sig(whole), k


# ------------------------------------------------------------------------------- 7: order of objectives and fields
def test_a_resume_with_the_objectives_in_another_order_is_refused_naming_both(tmp_path):
    nas.search(SPACE, my_fn, OBJ, strategy="evolution", budget=10, seed=0, workdir=tmp_path)
    with pytest.raises(JournalError, match="in the order accuracy, latency_ms, this run's in the order latency_ms, "
                                           "accuracy"):
        nas.search(SPACE, my_fn, {"latency_ms": "min", "accuracy": "max"}, strategy="evolution", budget=20, seed=0,
                   workdir=tmp_path)
    assert nas.load(tmp_path).used == 10


def test_a_resume_with_the_space_fields_in_another_order_is_refused_unless_the_journal_predates_the_check(tmp_path):
    assert SPACE.fingerprint() == REORDERED.fingerprint()  # unchanged: existing workdirs keep their identity
    nas.search(SPACE, my_fn, OBJ, strategy="random", budget=10, seed=0, workdir=tmp_path / "new")
    with pytest.raises(JournalError, match="top-level fields in the order depth, blocks, resolution, this run's space "
                                           "in the order resolution, depth, blocks"):
        nas.search(REORDERED, my_fn, OBJ, strategy="random", budget=20, seed=0, workdir=tmp_path / "new")
    nas.search(SPACE, my_fn, OBJ, strategy="random", budget=10, seed=0, workdir=tmp_path / "old")
    rewrite_header(tmp_path / "old", ("space_order",))
    assert nas.search(REORDERED, my_fn, OBJ, strategy="random", budget=12, seed=0, workdir=tmp_path / "old").used == 12


def test_nested_field_order_is_named_by_its_parent(tmp_path):
    swapped = Space(depth=Choice([2, 3, 4]),
                    blocks=Repeat(count="depth", expand=Choice([3, 4, 6]), kernel=Choice([3, 5, 7])),
                    resolution=Choice([128, 160, 192]))
    nas.search(SPACE, my_fn, OBJ, strategy="random", budget=4, seed=0, workdir=tmp_path)
    with pytest.raises(JournalError, match="the fields of blocks in the order kernel, expand, this run's space in "
                                           "the order expand, kernel"):
        nas.search(swapped, my_fn, OBJ, strategy="random", budget=8, seed=0, workdir=tmp_path)


# -------------------------------------------------------------------------------------- 8: an int too large
def test_a_metric_too_large_for_a_float_fails_that_trial_naming_it(tmp_path):
    def ev(arch: Any) -> dict[str, float]:
        return {**my_fn(arch), "macs": 2 ** 1024 if arch["depth"] == 4 else 1000}

    r = nas.search(SPACE, ev, OBJ, strategy="random", budget=10, seed=0, workdir=tmp_path)
    deep = [t for t in r.trials if t.arch["depth"] == 4]
    assert deep and all(t.status == "failed" and "metric 'macs'" in t.error and "too large" in t.error for t in deep)
    assert all(t.status == "ok" for t in r.trials if t.arch["depth"] != 4)


# ------------------------------------------------------------------------------------ 9: constraint bounds
@pytest.mark.parametrize("text", ["latency_ms <= 1e", "latency_ms <= 1..2", "latency_ms <= -", "latency_ms <= ."])
def test_a_constraint_bound_that_is_not_a_number_is_a_config_error_quoting_it(text):
    with pytest.raises(ConfigError, match="^constraint '" + text.replace(".", r"\.") + "' is not of the form"):
        nas.search(SPACE, my_fn, OBJ, constraints=[text], budget=2, seed=0)


# ----------------------------------------------------------------------------------- 10: non-numeric metrics
@pytest.mark.parametrize("extra,key", [({"note": "resnet-like"}, "note"), ({"test_acc": None}, "test_acc"),
                                       ({"macs": "1_000"}, "macs"), ({"pruned": True}, "pruned"),
                                       ({"accuracy": None}, "accuracy")])
def test_a_non_numeric_metric_fails_the_trial_naming_its_key(extra, key):
    r = nas.search(SPACE, lambda a: {**my_fn(a), **extra}, OBJ, strategy="random", budget=2, seed=0)
    assert all(t.status == "failed" and f"metric {key!r}" in t.error for t in r.trials)


def test_an_extra_nan_metric_is_still_kept():
    r = nas.search(SPACE, lambda a: {**my_fn(a), "test_acc": float("nan")}, OBJ, strategy="random", budget=2, seed=0)
    assert all(t.status == "ok" and "test_acc" in t.metrics for t in r.trials)


# --------------------------------------------------------------------------------------------------- smaller
def test_an_empty_workdir_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="^workdir: an empty path"):
        nas.search(SPACE, my_fn, OBJ, budget=2, seed=0, workdir="")
    assert not (tmp_path / "journal.jsonl").exists()


def test_metadata_given_on_resume_is_journaled_and_kept_when_left_out(tmp_path):
    kw = dict(strategy="random", seed=0, workdir=tmp_path)
    nas.search(SPACE, my_fn, OBJ, budget=3, metadata={"purpose": "first"}, **kw)
    live = nas.search(SPACE, my_fn, OBJ, budget=5, metadata={"purpose": "second"}, **kw)
    assert live.config["metadata"] == nas.load(tmp_path).config["metadata"] == {"purpose": "second"}
    again = nas.search(SPACE, my_fn, OBJ, budget=6, **kw)
    assert again.config["metadata"] == nas.load(tmp_path).config["metadata"] == {"purpose": "second"}


@pytest.mark.parametrize("metadata", [{"model": object()}, {"tags": {1, 2}}, [1, 2]])
def test_metadata_that_is_not_plain_json_is_a_config_error_naming_it(tmp_path, metadata):
    with pytest.raises(ConfigError, match="^metadata"):
        nas.search(SPACE, my_fn, OBJ, budget=1, seed=0, metadata=metadata, workdir=tmp_path)
    assert not (tmp_path / "journal.jsonl").exists()


def test_a_torn_last_line_reads_as_still_being_written_only_while_a_search_holds_the_lock(tmp_path):
    nas.search(SPACE, my_fn, OBJ, strategy="random", budget=3, seed=0, workdir=tmp_path)
    with open(tmp_path / "journal.jsonl", "ab") as f:
        f.write(b'{"type": "trial", "numb')  # a crash's remnant
    loaded = nas.load(tmp_path)
    assert loaded.stop_reason == "budget" and len(loaded.trials) == 3
    fd = os.open(tmp_path / "journal.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a writer holds the lock: the line may be being appended
        assert nas.load(tmp_path).stop_reason == "still being written"
    finally:
        os.close(fd)


def _read_only(path: Path) -> list[Path]:
    """Make `path` and its files unwritable (chattr +i as root, who ignores modes); what to undo."""
    paths = [path, *path.iterdir()]
    if os.geteuid() != 0:
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        return paths
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", *map(str, paths)]).returncode != 0:
        pytest.skip("no way to make a folder read-only for root here (chattr)")
    return paths


def _writable(paths: list[Path]) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=False)
    else:
        for p in paths:
            p.chmod(0o755 if p.is_dir() else 0o644)


@pytest.mark.parametrize("which", ["folder", "journal"])
def test_a_read_only_workdir_is_a_journal_error_naming_it_before_anything_is_written(tmp_path, which):
    wd = tmp_path / "ro"
    nas.search(SPACE, my_fn, OBJ, strategy="evolution", budget=4, seed=0, workdir=wd)
    # a lock text no run writes: a refused run that rewrote it would differ even within the same second
    (wd / "journal.lock").write_bytes(b"pid 1 on elsewhere since 2000-01-01T00:00:00+00:00\n")
    before = {p.name: p.read_bytes() for p in wd.iterdir()}
    undo = _read_only(wd) if which == "folder" else _read_only_file(wd / "journal.jsonl")
    try:
        with pytest.raises(JournalError, match=f"^{wd}: this workdir cannot be written"):
            nas.search(SPACE, my_fn, OBJ, strategy="evolution", budget=8, seed=0, workdir=wd)
    finally:
        _writable(undo)
    assert {p.name: p.read_bytes() for p in wd.iterdir()} == before


def _read_only_file(path: Path) -> list[Path]:
    if os.geteuid() != 0:
        path.chmod(0o444)
        return [path]
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
        pytest.skip("no way to make a file read-only for root here (chattr)")
    return [path]
