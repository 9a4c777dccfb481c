"""Workdir edges (exploratory report 39): a deleted `journal.lock` no longer lets a second search in (the writer also
holds a flock on the workdir folder itself); a strategy snapshot holding pending or queued architectures outside the
space is refused before the resume writes anything."""

from __future__ import annotations

import errno
import fcntl
import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

import nas
from nas import store
from nas.errors import JournalError, WorkdirBusy
from nas.spaces import Choice, Integer, Space
from nas.store import Journal, JournalWriter, Trial

HEADER = {"problem": {"objectives": {"acc": "max"}, "constraints": []}, "budget": 5}


def make_trial(n: int) -> Trial:
    return Trial(n, {"a": n}, f"id{n}", {"acc": 0.5 + n}, "ok", 1.0, 2.0, "w")


def files(workdir: Path) -> dict[str, bytes]:
    """Every file of `workdir` (the lock's text aside: a refused writer may have opened it) and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(workdir.iterdir()) if p.is_file() and p.name != "journal.lock"}


# 1. a deleted journal.lock does not let a second writer in

def test_a_second_writer_is_refused_even_when_the_lock_file_was_deleted(tmp_path):
    with JournalWriter(tmp_path) as first:
        first.create(HEADER)
        before = files(tmp_path)
        os.remove(tmp_path / "journal.lock")  # "a stale lock", as with git's index.lock
        with pytest.raises(WorkdirBusy, match=rf"^{tmp_path} is being written by another search .*journal.lock was "
                                              r"deleted.*wait for it to finish, or use another workdir"):
            JournalWriter(tmp_path)
        assert files(tmp_path) == before
        assert (tmp_path / "journal.lock").read_bytes() == b""  # the refused writer claimed nothing
    with JournalWriter(tmp_path) as third:  # closing the first released the folder too
        third.append(make_trial(0))
    assert [t.number for t in Journal(tmp_path).read().trials] == [0]


def test_the_folder_lock_is_released_on_close(tmp_path):
    first = JournalWriter(tmp_path)
    first.create(HEADER)
    first.close()
    with JournalWriter(tmp_path) as second:  # the lock file as it was: the folder's lock alone would refuse this
        second.append(make_trial(0))
    os.remove(tmp_path / "journal.lock")
    with JournalWriter(tmp_path) as third:  # a lock file deleted after its writer closed: nothing holds the folder
        third.append(make_trial(1))
    assert [t.number for t in Journal(tmp_path).read().trials] == [0, 1]


def test_a_writer_still_open_in_this_process_is_named_as_today(tmp_path):
    with JournalWriter(tmp_path) as first:
        first.create(HEADER)
        with pytest.raises(WorkdirBusy, match="another search open in this process"):
            JournalWriter(tmp_path)


def _hold(workdir: str, ready) -> None:  # a child process: open a writer, say so, wait to be killed
    writer = JournalWriter(workdir)
    ready.send("open")
    signal.pause()
    writer.close()


def test_the_folder_lock_is_released_when_its_process_is_killed(tmp_path):
    with JournalWriter(tmp_path) as j:
        j.create(HEADER)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_hold, args=(str(tmp_path), child))
    proc.start()
    try:
        assert parent.poll(30) and parent.recv() == "open"
        os.remove(tmp_path / "journal.lock")
        with pytest.raises(WorkdirBusy, match="journal.lock was deleted"):
            JournalWriter(tmp_path)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    with JournalWriter(tmp_path) as j:  # the kill released the folder's lock
        j.append(make_trial(0))
    assert Journal(tmp_path).writer() is None


def test_a_folder_that_cannot_be_flocked_falls_back_to_the_lock_file(tmp_path, monkeypatch):
    real = fcntl.flock

    def no_folder_locks(fd, op):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, op)

    monkeypatch.setattr(fcntl, "flock", no_folder_locks)
    with JournalWriter(tmp_path) as first:
        first.create(HEADER)
        with pytest.raises(WorkdirBusy, match="being written by another search open in this process"):
            JournalWriter(tmp_path)  # the lock file still refuses it
    with JournalWriter(tmp_path) as again:
        again.append(make_trial(0))


def test_a_reader_probing_the_lock_does_not_make_a_starting_writer_fail(tmp_path, monkeypatch):
    with JournalWriter(tmp_path) as j:
        j.create(HEADER)
        assert Journal(tmp_path).writer() is not None and Journal(tmp_path).search_running()
    fd = os.open(tmp_path / "journal.lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a reader's probe, held across the writer's first tries
    monkeypatch.setattr(store.time, "sleep", lambda s: fcntl.flock(fd, fcntl.LOCK_UN))
    try:
        with JournalWriter(tmp_path) as j:
            j.append(make_trial(0))
    finally:
        os.close(fd)
    assert Journal(tmp_path).writer() is None


# 2 and 3. a snapshot whose architectures are outside the space, or whose state does not restore, is refused before
# the resume writes anything

SPACE = Space(depth=Choice([2, 3, 4]), w=Integer(1, 100))
OBJECTIVES = {"acc": "max", "lat": "min"}
OUTSIDE = {"depth": 5, "w": 7}  # depth 5 is not a choice


def evaluate(arch):
    return {"acc": arch["depth"] + arch["w"] / 100, "lat": float(arch["depth"])}


def search(workdir, budget: int = 12, strategy="evolution", **kw):
    return nas.search(SPACE, evaluate, OBJECTIVES, strategy=strategy, budget=budget, seed=0, workdir=workdir,
                      snapshot_interval_s=0, snapshot_every=4, **kw)


def edit_snapshot(workdir: Path, edit) -> None:
    """Rewrite strategy.json as `edit(snapshot)` leaves it."""
    path = workdir / "strategy.json"
    snap = json.loads(path.read_text())
    edit(snap)
    path.write_text(json.dumps(snap))


def test_a_state_that_restores_still_resumes_exactly(tmp_path):
    whole = search(tmp_path / "whole", budget=16)
    search(tmp_path / "parts", budget=12)
    parts = search(tmp_path / "parts", budget=16)
    assert [t.arch_id for t in parts.trials] == [t.arch_id for t in whole.trials]


@pytest.mark.parametrize("key", ["pending", "queued"])
def test_an_architecture_outside_the_space_in_the_snapshot_is_refused_naming_it(tmp_path, key):
    search(tmp_path)
    edit_snapshot(tmp_path, lambda s: s.update({key: [*s.get(key, []), OUTSIDE]}))
    before = files(tmp_path)
    with pytest.raises(JournalError, match=rf"strategy.json: {key} holds {{'depth': 5, 'w': 7}}, which is not an "
                                           r"architecture of this search's space \(depth: 5 is not one of \[2, 3, 4\]"
                                           r"\).*deleting strategy.json is safe") as e:
        search(tmp_path, budget=16)
    assert str(tmp_path / "strategy.json") in str(e.value)
    assert files(tmp_path) == before
    with pytest.raises(JournalError, match=f"{key} holds"):  # a study restores the same snapshot
        nas.Study(SPACE, OBJECTIVES, strategy="evolution", budget=16, seed=0, workdir=tmp_path)
    assert files(tmp_path) == before
