"""The journal: readers never write, one locked writer repairs its own torn tail, trial numbers are checked,
and a workdir written by an older version still reads and resumes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas.errors import JournalError
from nas.store import Journal, JournalWriter, Trial

DATA = Path(__file__).parent / "data" / "journal-v1"


def make_trial(n: int) -> Trial:
    return Trial(n, {"a": n}, f"id{n}", {"acc": 0.5 + n, "lat": float("inf")}, "ok", 1.0, 2.0, "w")


HEADER = {"problem": {"objectives": {"acc": "max"}, "constraints": []}, "budget": 5}


def written(path: Path, n: int = 2) -> JournalWriter:
    """A journal with a header and trials 0..n-1; the writer is returned open."""
    j = JournalWriter(path)
    j.create(HEADER)
    for k in range(n):
        j.append(make_trial(k))
    return j


def test_round_trip_and_non_finite_metrics(tmp_path):
    with written(tmp_path, 3):
        contents = Journal(tmp_path).read()
    assert contents.config == HEADER and not contents.still_writing
    assert contents.trials == [make_trial(n) for n in range(3)]
    assert all(json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines())  # strict JSON


def test_a_reader_leaves_a_torn_last_line_alone_and_only_the_writer_repairs_it(tmp_path, caplog):
    written(tmp_path).close()
    path = tmp_path / "journal.jsonl"
    torn = path.read_bytes()[:-25]  # trial 1 is being written (or its writer died mid-write)
    path.write_bytes(torn)
    contents = Journal(tmp_path).read()
    assert [t.number for t in contents.trials] == [0] and contents.still_writing
    assert path.read_bytes() == torn  # the reader changed nothing: a writer may be appending right now
    result = nas.load(tmp_path)
    # no search holds the lock, so the torn line is a crash's remnant, not one being written (audit 2)
    assert result.stop_reason == "loaded" and path.read_bytes() == torn
    with caplog.at_level(logging.WARNING), JournalWriter(tmp_path) as j:  # the writer resumes: its own tail
        assert "truncated last line" in caplog.text
        j.append(make_trial(1))
    assert [t.number for t in Journal(tmp_path).read().trials] == [0, 1]


def test_complete_last_record_without_newline_is_read_and_terminated_by_the_writer(tmp_path):
    written(tmp_path, 1).close()
    path = tmp_path / "journal.jsonl"
    path.write_bytes(path.read_bytes()[:-1])
    before = path.read_bytes()
    assert [t.number for t in Journal(tmp_path).read().trials] == [0] and path.read_bytes() == before
    with JournalWriter(tmp_path) as j:
        j.append(make_trial(1))
    assert [t.number for t in Journal(tmp_path).read().trials] == [0, 1]


def test_corruption_before_the_last_line_is_an_error_naming_the_line(tmp_path):
    written(tmp_path).close()
    path = tmp_path / "journal.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:10] + "\n"
    path.write_text("".join(lines))
    with pytest.raises(JournalError, match=r"journal.jsonl:2: corrupt journal line"):
        Journal(tmp_path).read()


def test_an_exact_duplicate_line_is_read_once_with_a_warning(tmp_path, caplog):
    written(tmp_path, 3).close()
    path = tmp_path / "journal.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3] + [lines[2]] + lines[3:]))  # trial 1 twice, as a copy-paste would
    with caplog.at_level(logging.WARNING):
        trials = Journal(tmp_path).read().trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert "journal.jsonl:4: a duplicate of trial 1 (line 3)" in caplog.text


def test_a_different_record_under_a_used_number_or_a_gap_is_an_error_naming_the_line(tmp_path):
    written(tmp_path, 3).close()
    path = tmp_path / "journal.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    other = json.loads(lines[2])
    other["metrics"]["acc"] = 9.0
    path.write_text("".join(lines + [json.dumps(other) + "\n"]))
    with pytest.raises(JournalError, match=r"journal.jsonl:5: trial 1 appears twice with different contents "
                                           r"\(first at line 3\)"):
        Journal(tmp_path).read()
    path.write_text("".join(lines[:2] + lines[3:]))  # trial 1 missing
    with pytest.raises(JournalError, match=r"journal.jsonl:3: trial 2 where trial 1 was expected"):
        Journal(tmp_path).read()


def test_schema_version_is_checked(tmp_path):
    (tmp_path / "journal.jsonl").write_text(json.dumps({"type": "header", "schema": 99, "config": {}}) + "\n")
    with pytest.raises(JournalError, match="schema 99 is not supported"):
        Journal(tmp_path).read()


def test_snapshot_is_replaced_atomically(tmp_path):
    with written(tmp_path) as j:
        j.save_snapshot({"after_trial": 3, "state": {"x": [1, 2]}})
        j.save_snapshot({"after_trial": 4, "state": {"x": [3]}})
    assert Journal(tmp_path).load_snapshot()["after_trial"] == 4
    assert not list(tmp_path.glob("*.tmp"))


HOLD = textwrap.dedent("""
    import sys
    from nas.store import JournalWriter
    w = JournalWriter(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.read()
""")


def test_a_second_writer_gets_a_clear_error_until_the_first_one_ends(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(JournalError, match=r"is being written by another search \(pid \d+ on "):
            JournalWriter(tmp_path)
        assert Journal(tmp_path).writer().startswith(f"pid {holder.pid} on ")
        with pytest.raises(JournalError, match="is being written by another search"):
            nas.search(nas.spaces.Space(a=nas.spaces.Choice([1, 2])), lambda a: {"acc": a["a"]}, {"acc": "max"},
                       budget=1, workdir=tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed writer releases its lock with its process
        holder.wait()
    assert Journal(tmp_path).writer() is None
    with JournalWriter(tmp_path) as j:
        j.create({})
        assert Journal(tmp_path).writer().startswith(f"pid {os.getpid()} ")
    assert Journal(tmp_path).writer() is None


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import nas
    from nas.spaces import Choice, Space

    workdir, release, budget = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    space = Space(a=Choice(list(range(20))), b=Choice(list(range(20))), c=Choice(list(range(3))))
    calls = 0

    def evaluate(arch):
        global calls
        calls += 1
        if calls == budget:  # the last evaluation waits until the reader has polled 1,000 times
            deadline = time.monotonic() + 300
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return {"acc": float(arch["a"] * 3 + arch["b"] + arch["c"]), "size": float(arch["a"] + arch["c"])}

    nas.search(space, evaluate, {"acc": "max", "size": "min"}, strategy="random", budget=budget, seed=0,
               workdir=workdir, snapshot_every=5, snapshot_interval_s=0.0)
""")


def test_polling_a_running_search_1000_times_loses_and_duplicates_no_trial(tmp_path):
    """A real writer process and this process reading it (nas.load, and nas status every 10th poll)."""
    from nas.cli import app

    workdir, release, budget = tmp_path / "wd", tmp_path / "release", 300
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(workdir), str(release), str(budget)],
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    runner = CliRunner()
    seen: list[list[str]] = []
    try:
        while not (workdir / "journal.jsonl").exists() and writer.poll() is None:
            pass
        for poll in range(1000):
            result = nas.load(workdir)
            seen.append([t.arch_id for t in result.trials])
            if poll % 10 == 0:
                out = runner.invoke(app, ["status", str(workdir)])
                assert out.exit_code == 0, out.output
                assert "evaluations used" in out.output
    finally:
        release.touch()
        assert writer.wait(timeout=300) == 0
    final = nas.load(workdir)
    ids = [t.arch_id for t in final.trials]
    assert [t.number for t in final.trials] == list(range(budget)) and len(set(ids)) == budget
    assert all(ids[:len(s)] == s for s in seen)  # every poll saw a prefix of the final journal
    assert len(seen[0]) < budget  # the polls overlapped the search


def test_a_journal_and_snapshot_written_by_the_first_version_read_and_resume(tmp_path):
    """tests/data/journal-v1 was written by commit 074add2 (tests/journal_v1.py); the continuation the old
    version produced from it is recorded beside it, and this version must produce the same."""
    sys.path.insert(0, str(Path(__file__).parent))
    import journal_v1

    loaded = nas.load(DATA)
    assert len(loaded.trials) == 21 and loaded.used == 16 and loaded.config["budget"] == 16
    assert {t.status for t in loaded.trials} == {"ok", "failed", "infeasible"}
    assert loaded.trials[15].metrics["loss_ratio"] == float("inf")
    assert loaded.best("accuracy") is not None and loaded.pareto_front()
    work = tmp_path / "copy"
    shutil.copytree(DATA, work)
    resumed = journal_v1.run(str(work), 24)
    expected = json.loads((DATA / "continuation.json").read_text())
    assert [{"number": t.number, "arch_id": t.arch_id, "status": t.status} for t in resumed.trials[21:]] == \
        expected["trials"]
    assert [t.to_json() for t in resumed.trials[:21]] == [t.to_json() for t in loaded.trials]
