"""The journal under a full disk, a lock kept by a forked child, hand edits and misuse: no torn line is ever left
before later records, blank lines are skipped, and every refusal says what actually holds the workdir."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import nas
from nas import jsonio
from nas.errors import ConfigError, JournalError, WorkdirBusy
from nas.store import Journal, JournalFollower, JournalWriter, Trial, writer_exited, writer_since

HEADER = {"problem": {"objectives": {"acc": "max"}, "constraints": []}, "budget": 5}


def make_trial(n: int, note: str = "") -> Trial:
    return Trial(n, {"a": n}, f"id{n}", {"acc": 0.5 + n}, "ok", 1.0, 2.0, "w", extra={"note": note} if note else {})


def disk_fills_up(monkeypatch, path, fits: int) -> None:
    """Writes to `path` behave as on a full disk: `fits` bytes go in, then ENOSPC (as Linux does)."""
    real = os.write
    inode = os.stat(path).st_ino

    def write(fd, data):
        if os.fstat(fd).st_ino != inode:
            return real(fd, data)
        if getattr(write, "full", False):
            raise OSError(errno.ENOSPC, "No space left on device")
        write.full = True
        return real(fd, bytes(data[:fits]))

    monkeypatch.setattr(os, "write", write)


def test_an_append_the_disk_holds_only_part_of_raises_and_leaves_no_torn_line(tmp_path, monkeypatch):
    with JournalWriter(tmp_path) as j:
        j.create(HEADER)
        j.append(make_trial(0))
        before = j.path.read_bytes()
        with monkeypatch.context() as m:
            disk_fills_up(m, j.path, fits=100)
            with pytest.raises(OSError, match="No space left"):
                j.append(make_trial(1, "epoch ok; " * 800))
        assert j.path.read_bytes() == before  # the part written was cut off again
        j.append(make_trial(1))  # space freed: the search (or its resume) goes on
    assert [t.number for t in Journal(tmp_path).read().trials] == [0, 1]


def test_a_torn_line_that_cannot_be_cut_off_refuses_later_appends(tmp_path, monkeypatch):
    j = JournalWriter(tmp_path)
    j.create(HEADER)
    with monkeypatch.context() as m:
        disk_fills_up(m, j.path, fits=100)
        m.setattr(os, "ftruncate", lambda fd, size: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
        with pytest.raises(OSError, match="No space left"):
            j.append(make_trial(0, "x" * 500))
    with pytest.raises(OSError, match="ends with an incomplete line"):  # never a record after the torn bytes
        j.append(make_trial(0))
    j.close()
    with JournalWriter(tmp_path) as j:  # the next run repairs its torn last line, as after a crash
        j.append(make_trial(0))
    assert [t.number for t in Journal(tmp_path).read().trials] == [0]


def test_blank_lines_are_skipped_and_later_lines_keep_their_numbers(tmp_path):
    with JournalWriter(tmp_path) as j:
        j.create(HEADER)
        j.append(make_trial(0))
    path = tmp_path / "journal.jsonl"
    follower = JournalFollower(Journal(tmp_path))
    follower.poll()
    with open(path, "ab") as f:
        f.write(b"\n   \r\n")  # an editor's empty lines after a hand edit
    follower.poll()
    with JournalWriter(tmp_path) as j:  # a resume appends after them
        j.append(make_trial(1))
    follower.poll()
    assert [t.number for t in follower.trials] == [0, 1]
    assert [t.number for t in Journal(tmp_path).read().trials] == [0, 1]
    assert jsonio.read_jsonl(path).last_line == 5
    with open(path, "ab") as f:
        f.write(b"{oops\n")
    for read in (lambda: Journal(tmp_path).read(), follower.poll):  # line 6 counted from the file's start
        with pytest.raises(JournalError, match=r"journal.jsonl:6: corrupt journal line"):
            read()


HOLD_AND_FORK = textwrap.dedent("""
    import os, sys
    from nas.store import JournalWriter
    w = JournalWriter(sys.argv[1])
    w.create({"problem": {"objectives": {"acc": "max"}, "constraints": []}, "budget": 5})
    w.save_running(1, [{"arch_id": "x", "arch": {}, "since": 0}])
    child = os.fork()  # a helper its evaluate started: it shares the lock's open file
    if child == 0:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.read(0, 1)  # lives until the test closes its stdin
        os._exit(0)
    print(child, flush=True)
    os._exit(0)  # the search dies without closing anything, as under SIGKILL
""")


def test_a_lock_kept_by_a_forked_child_of_a_dead_search_is_named_as_such(tmp_path):
    driver = subprocess.Popen([sys.executable, "-c", HOLD_AND_FORK, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    child = int(driver.stdout.readline())
    try:
        driver.wait()
        holder = Journal(tmp_path).writer()
        assert holder.startswith(f"pid {driver.pid} on ") and "exited" in holder and f"pid {child}," in holder
        assert writer_since(holder)[1] is not None  # still "WHO since T"
        assert writer_exited(holder)  # what nas run/resume, nas status and the dashboard say "locked by" for
        assert Journal(tmp_path).running() is None  # the dead search's running.json is not shown as running
        with pytest.raises(WorkdirBusy) as busy:
            JournalWriter(tmp_path)
        message = str(busy.value)
        assert f"pid {driver.pid} " in message and "exited" in message and f"pid {child}," in message
        assert "wait for it to finish" not in message
        with open(tmp_path / "journal.jsonl", "a") as f:
            f.write('{"type": "trial", "n"')  # torn by the crash: nothing will finish it
        assert Journal(tmp_path).read().still_writing
        assert not Journal(tmp_path).search_running()
        assert nas.SearchResult.load(tmp_path).stop_reason != "still being written"
    finally:
        os.kill(child, signal.SIGKILL)
        driver.stdin.close()


def test_a_workdir_held_in_this_process_says_to_close_it(tmp_path):
    with JournalWriter(tmp_path):
        assert not writer_exited(Journal(tmp_path).writer())  # a live writer
        with pytest.raises(WorkdirBusy, match=r"open in this process, .* close it first") as busy:
            JournalWriter(tmp_path)
    assert "wait for it to finish" not in str(busy.value)
    JournalWriter(tmp_path).close()  # closed: free again


@pytest.fixture(scope="module")
def result():
    space = nas.spaces.Space(a=nas.spaces.Choice(list(range(10))), b=nas.spaces.Choice(list(range(10))))
    return nas.search(space, lambda a: {"accuracy": a["a"], "latency_ms": a["b"] + 1.0},
                      objectives={"accuracy": "max", "latency_ms": "min"}, budget=15, seed=0)


def test_one_objective_name_is_a_list_of_one(result):
    assert result.pareto_front("accuracy") == result.pareto_front(["accuracy"])
    assert result.hypervolume([0.0], "accuracy") == result.hypervolume([0.0], ["accuracy"]) > 0


@pytest.mark.parametrize("reference", [["0", "20"], [math.nan, 20.0], [0.0, math.inf], [True, 20.0], 0.0, "0,20"])
def test_a_bad_reference_is_a_config_error_naming_it(result, reference):
    with pytest.raises(ConfigError, match=r"^reference: expected one finite number per objective"):
        result.hypervolume(reference)


def test_a_damaged_snapshot_says_deleting_it_is_safe(tmp_path):
    with JournalWriter(tmp_path) as j:
        j.create(HEADER)
    snapshot = tmp_path / "strategy.json"
    for text in ("", '{"schema": 1, "after_trial": "3", "state": {}}'):
        snapshot.write_text(text)
        with pytest.raises(JournalError, match="deleting strategy.json is safe"):
            Journal(tmp_path).load_snapshot()
    snapshot.write_text(json.dumps({"schema": 1, "after_trial": 3, "state": {}}))
    assert Journal(tmp_path).load_snapshot()["after_trial"] == 3


def test_a_resume_refused_for_a_damaged_snapshot_leaves_no_resume_record(tmp_path):
    """The refused resume wrote its resume record first, so nas status showed a run that never started."""
    space = nas.spaces.Space(a=nas.spaces.Choice(list(range(10))))
    nas.search(space, lambda a: {"s": float(a["a"])}, {"s": "max"}, budget=3, seed=0, workdir=tmp_path)
    before = (tmp_path / "journal.jsonl").read_bytes()
    (tmp_path / "strategy.json").write_text("{")
    with pytest.raises(JournalError, match="deleting strategy.json is safe"):
        nas.search(space, lambda a: {"s": float(a["a"])}, {"s": "max"}, budget=5, seed=0, workdir=tmp_path)
    assert (tmp_path / "journal.jsonl").read_bytes() == before
