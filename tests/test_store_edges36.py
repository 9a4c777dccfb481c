"""Damaged or odd workdirs and enqueue lists (exploratory report 36): a strategy snapshot whose fields do not
restore, a trial record whose metrics are not an object, workdir paths that cannot hold a journal, a journaled
architecture outside the space, and enqueued architectures the budget or a duplicate leaves out. Each is a
`nas.NASError` (or a warning) naming the file and line or field, never a raw Python exception or silence."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import nas
from nas.errors import ConfigError, JournalError
from nas.spaces import Choice, Integer, Space
from nas.store import Journal

SPACE = Space(depth=Choice([2, 3, 4]), w=Integer(1, 100))
OBJECTIVES = {"acc": "max", "lat": "min"}


def evaluate(arch):
    return {"acc": arch["depth"] + arch["w"] / 100, "lat": float(arch["depth"])}


def run(workdir, budget: int = 12, **kw):
    return nas.search(SPACE, evaluate, OBJECTIVES, strategy="evolution", budget=budget, seed=0, workdir=workdir,
                      snapshot_interval_s=0, snapshot_every=4, **kw)


def edit_snapshot(workdir: Path, **changes) -> None:
    """Rewrite strategy.json with `changes` (a value of ... removes the field)."""
    path = workdir / "strategy.json"
    snap = json.loads(path.read_text())
    for key, value in changes.items():
        if value is ...:
            del snap[key]
        else:
            snap[key] = value
    path.write_text(json.dumps(snap))


def edit_trial(workdir: Path, number: int, **changes) -> None:
    """Rewrite trial `number`'s journal record with `changes`."""
    path = workdir / "journal.jsonl"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if rec.get("type") == "trial" and rec["number"] == number:
            rec.update(changes)
            lines[i] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")


# 1. a strategy snapshot that parses but does not restore

@pytest.mark.parametrize("changes, field", [({"state": ...}, "state is missing"),
                                            ({"state": None}, "state is null"),
                                            ({"pending": ...}, "pending is missing"),
                                            ({"pending": [3]}, "pending holds a number"),
                                            ({"state": {}}, "its state does not restore the evolution strategy"),
                                            ({"after_trial": -5}, "after_trial -5")])
def test_a_snapshot_whose_fields_do_not_restore_is_a_journal_error_saying_deleting_it_is_safe(tmp_path, changes,
                                                                                               field):
    run(tmp_path)
    edit_snapshot(tmp_path, **changes)
    before = (tmp_path / "journal.jsonl").read_bytes()
    with pytest.raises(JournalError, match="strategy.json: ") as e:
        run(tmp_path, budget=16)
    assert field in str(e.value) and "deleting strategy.json is safe" in str(e.value)
    if "does not restore" not in field:  # a state the strategy refuses is found once the workdir is claimed
        assert (tmp_path / "journal.jsonl").read_bytes() == before  # refused before a resume record was written
    (tmp_path / "strategy.json").unlink()  # as the message says: the resume then replays the journal
    assert run(tmp_path, budget=16).used == 16


def test_a_snapshot_of_another_schema_says_deleting_it_is_safe(tmp_path):
    run(tmp_path)
    edit_snapshot(tmp_path, schema=0)
    with pytest.raises(JournalError, match=r"schema 0 is not supported.*deleting strategy.json is safe"):
        Journal(tmp_path).load_snapshot()


# 2. a trial record whose metrics are not an object

@pytest.mark.parametrize("metrics", [["x"], "x", 3, [["acc", 1.0]]])
def test_a_trial_whose_metrics_are_not_an_object_is_a_journal_error_naming_the_line(tmp_path, metrics):
    run(tmp_path, budget=4)
    edit_trial(tmp_path, 2, metrics=metrics)
    with pytest.raises(JournalError, match=r"journal.jsonl:4: malformed trial record \(metrics is .*not an object"):
        nas.load(tmp_path)


# 3. workdir paths that cannot hold a journal

def test_a_workdir_below_a_file_is_a_config_error_naming_the_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"workdir: .*afile is a file, so the folder .*afile/sub cannot be made"):
        run(tmp_path / "afile" / "sub")


def test_a_journal_that_is_a_folder_is_a_journal_error_for_search_and_load(tmp_path):
    (tmp_path / "journal.jsonl").mkdir()
    with pytest.raises(JournalError, match=r"journal.jsonl: a folder, not a file"):
        run(tmp_path)
    with pytest.raises(JournalError, match=r"journal.jsonl: a folder, not a file"):
        nas.load(tmp_path)


def test_a_workdir_that_is_not_a_path_is_a_config_error():
    with pytest.raises(ConfigError, match=r"workdir: expected a folder path .*got int 5"):
        run(5)
    with pytest.raises(ConfigError, match=r"workdir: expected a folder path"):
        nas.load(5)


# 4. a journaled architecture outside the space

@pytest.mark.parametrize("after_trial", [None, 1])
def test_a_resume_refuses_to_replay_a_journaled_architecture_outside_the_space(tmp_path, after_trial):
    """The trials a resume tells the strategy again: all without a snapshot, those after it otherwise."""
    run(tmp_path, budget=6)
    if after_trial is None:
        (tmp_path / "strategy.json").unlink()
    else:  # as a search killed after trial 5 with its last snapshot at trial 1 leaves it
        edit_snapshot(tmp_path, after_trial=after_trial)
    edit_trial(tmp_path, 2, arch={"depth": 9, "w": -7})
    before = (tmp_path / "journal.jsonl").read_bytes()
    with pytest.raises(JournalError, match=r"journal.jsonl:4: trial 2's architecture is outside this search's space "
                                           r"\(depth: 9 is not one of"):
        run(tmp_path, budget=8)
    assert (tmp_path / "journal.jsonl").read_bytes() == before  # refused before a resume record was written


# 5. enqueued architectures the budget or a duplicate leaves out

ENQUEUE = [{"depth": d, "w": w} for d in (2, 3) for w in (10, 20, 30)]


def test_enqueued_architectures_beyond_the_budget_are_named_in_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="nas.search"):
        result = nas.search(SPACE, evaluate, OBJECTIVES, budget=4, seed=0, enqueue=ENQUEUE)
    assert result.used == 4
    warned = [r.getMessage() for r in caplog.records if "budget leaves 4 evaluations" in r.getMessage()]
    assert len(warned) == 1 and "enqueue[4], enqueue[5] are not evaluated" in warned[0]


def test_no_warning_when_the_budget_covers_the_enqueue(caplog):
    with caplog.at_level(logging.WARNING, logger="nas.search"):
        nas.search(SPACE, evaluate, OBJECTIVES, budget=6, seed=0, enqueue=ENQUEUE)
    assert not [r for r in caplog.records if "enqueue" in r.getMessage()]


def test_a_duplicate_enqueue_entry_is_named_in_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="nas.search"):
        result = nas.search(SPACE, evaluate, OBJECTIVES, budget=3, seed=0, enqueue=[ENQUEUE[0], ENQUEUE[1], ENQUEUE[0]])
    assert [t.arch for t in result.trials[:2]] == ENQUEUE[:2]
    warned = [r.getMessage() for r in caplog.records if "enqueue[2] (= enqueue[0]) repeats" in r.getMessage()]
    assert len(warned) == 1
    assert not [r for r in caplog.records if "budget leaves" in r.getMessage()]  # the twin needs no evaluation
