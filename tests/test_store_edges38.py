"""Journal edges (exploratory report 38): a complete last record followed by stray bytes is damage, not a torn
write; a full disk names the workdir and the file; a writer whose `journal.lock` was deleted and recreated stops
before it writes again."""

from __future__ import annotations

import errno
import json
import logging
import os

import pytest

from nas import jsonio
from nas.errors import JournalError, WorkdirBusy
from nas.store import Journal, JournalWriter, Trial

HEADER = {"problem": {"objectives": {"acc": "max"}, "constraints": []}, "budget": 5}


def make_trial(n: int) -> Trial:
    return Trial(n, {"a": n}, f"id{n}", {"acc": 0.5 + n}, "ok", 1.0, 2.0, "w", extra={"note": "x\u00e9y"})


def journal(tmp_path, trials: int = 2) -> bytes:
    """A journal with a header and `trials` trials, no end line (as after a kill); its bytes."""
    with JournalWriter(tmp_path) as j:
        j.create(HEADER)
        for n in range(trials):
            j.append(make_trial(n))
    return (tmp_path / "journal.jsonl").read_bytes()


# 2. a tail that is not a prefix of one JSON line is damage, refused naming the line

@pytest.mark.parametrize("suffix", [b" # checked", b"x", b"{}", b'{"type": "trial"'])
def test_a_complete_last_record_followed_by_stray_bytes_is_refused_naming_its_line(tmp_path, suffix):
    data = journal(tmp_path)[:-1] + suffix  # trial 1's line (line 3) is complete, then stray bytes, no newline
    path = tmp_path / "journal.jsonl"
    path.write_bytes(data)
    with pytest.raises(JournalError, match=r"journal\.jsonl:3: .*not a write cut short"):
        Journal(tmp_path).read()
    with pytest.raises(JournalError, match=r"journal\.jsonl:3: "):
        JournalWriter(tmp_path)  # the resume refuses it rather than cutting the completed trial
    assert path.read_bytes() == data


@pytest.mark.parametrize("tail", [b"garbage", b"\x00\x00garbage", b"[1, 2", b'{"a": 1 garbage'])
def test_a_last_line_that_no_json_object_begins_with_is_refused(tmp_path, tail):
    data = journal(tmp_path) + tail
    (tmp_path / "journal.jsonl").write_bytes(data)
    with pytest.raises(JournalError, match=r"journal\.jsonl:4: "):
        JournalWriter(tmp_path)
    assert (tmp_path / "journal.jsonl").read_bytes() == data


def test_every_prefix_of_a_record_is_a_torn_write_and_the_writer_drops_only_it(tmp_path, caplog):
    data = journal(tmp_path, trials=1)
    record = {**make_trial(1).to_json(), "metrics": {"acc": -1.5e-07, "n": None, "ok": True, "no": False}}
    line = json.dumps({**record, "worker": "w\u00e9\u2603\\\"q\x01"}, ensure_ascii=False).encode()  # cut UTF-8 too
    path = tmp_path / "journal.jsonl"
    for cut in range(1, len(line)):  # every cut: inside a string, an escape, a number, a literal, between tokens
        path.write_bytes(data + line[:cut])
        assert Journal(tmp_path).read().still_writing, line[:cut]
    path.write_bytes(data + line[:40] + b"\x00" * 30)  # a crash may leave zeros where the data never landed
    assert Journal(tmp_path).read().still_writing
    with caplog.at_level(logging.WARNING, "nas.store"):
        JournalWriter(tmp_path).close()
    assert path.read_bytes() == data
    assert "journal.jsonl:3: dropping a truncated last line" in caplog.text


# 3. a full disk names the workdir and the file, and leaves the journal whole

def test_a_full_disk_on_append_names_the_workdir_and_the_journal_in_one_line(tmp_path, monkeypatch):
    data = journal(tmp_path)
    with JournalWriter(tmp_path) as j:
        with monkeypatch.context() as m:
            m.setattr(os, "write", lambda fd, b: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
            with pytest.raises(JournalError) as info:
                j.append(make_trial(2))
        message = str(info.value)
        assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
        assert str(tmp_path) in message and "journal.jsonl" in message and "disk is full" in message
        assert "\n" not in message
        assert (tmp_path / "journal.jsonl").read_bytes() == data
        j.append(make_trial(2))  # space freed: it goes on
    assert [t.number for t in Journal(tmp_path).read().trials] == [0, 1, 2]


@pytest.mark.parametrize("method, file", [("save_running", "running.json"), ("save_snapshot", "strategy.json")])
def test_a_full_disk_on_a_status_file_names_that_file(tmp_path, monkeypatch, method, file):
    journal(tmp_path)
    with JournalWriter(tmp_path) as j:
        monkeypatch.setattr(jsonio, "write_bytes",
                            lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
        with pytest.raises(JournalError, match=rf"{tmp_path}: the disk is full \(writing {file}: No space left on device\); free space"):
            if method == "save_running":
                j.save_running(1, [])
            else:
                j.save_snapshot({"after_trial": 1, "state": {}, "pending": []})


# 1. a writer whose lock file was replaced stops

def test_a_writer_whose_lock_file_was_deleted_and_recreated_stops_before_writing(tmp_path):
    data = journal(tmp_path)
    first = JournalWriter(tmp_path)
    os.remove(tmp_path / "journal.lock")  # "a stale lock", as with git's index.lock
    try:
        with pytest.raises(WorkdirBusy, match="journal.lock was deleted"):
            JournalWriter(tmp_path)  # refused by the folder's lock (session 39); its open recreated journal.lock
        with pytest.raises(JournalError, match="journal.lock.*(deleted|replaced)"):
            first.append(make_trial(2))
        with pytest.raises(JournalError, match="journal.lock"):
            first.save_snapshot({"after_trial": 1, "state": {}, "pending": []})
        assert (tmp_path / "journal.jsonl").read_bytes() == data
    finally:
        first.close()
    with JournalWriter(tmp_path) as second:
        second.append(make_trial(2))
    assert [t.number for t in Journal(tmp_path).read().trials] == [0, 1, 2]


def test_a_deleted_lock_file_stops_its_writer_even_before_anyone_else_comes(tmp_path):
    journal(tmp_path)
    with JournalWriter(tmp_path) as j:
        os.remove(tmp_path / "journal.lock")
        with pytest.raises(JournalError, match="journal.lock"):
            j.append(make_trial(2))
