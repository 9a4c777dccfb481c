"""The journal: append-only JSON lines, torn last line tolerated, any other damage a clear error."""

from __future__ import annotations

import json
import logging

import pytest

from nas.errors import JournalError
from nas.store import Journal, Trial


def make_trial(n: int) -> Trial:
    return Trial(n, {"a": n}, f"id{n}", {"acc": 0.5 + n, "lat": float("inf")}, "ok", 1.0, 2.0, "w")


def test_round_trip_and_non_finite_metrics(tmp_path):
    j = Journal(tmp_path)
    j.create({"x": 1})
    for n in range(3):
        j.append(make_trial(n))
    config, trials = j.read()
    assert config == {"x": 1}
    assert trials == [make_trial(n) for n in range(3)]
    assert all(json.loads(line) for line in j.path.read_text().splitlines())  # strict JSON, no NaN tokens


def test_torn_last_line_is_dropped_with_a_warning(tmp_path, caplog):
    j = Journal(tmp_path)
    j.create({})
    j.append(make_trial(0))
    j.append(make_trial(1))
    data = j.path.read_bytes()
    j.path.write_bytes(data[:-25])  # crash in the middle of writing trial 1
    with caplog.at_level(logging.WARNING):
        _, trials = j.read()
    assert [t.number for t in trials] == [0]
    assert "truncated last line" in caplog.text
    j.append(make_trial(1))  # the file was repaired: appends start on a clean line
    assert [t.number for t in j.read()[1]] == [0, 1]


def test_complete_last_record_without_newline_is_kept(tmp_path):
    j = Journal(tmp_path)
    j.create({})
    j.append(make_trial(0))
    j.path.write_bytes(j.path.read_bytes()[:-1])
    assert [t.number for t in j.read()[1]] == [0]
    j.append(make_trial(1))
    assert [t.number for t in j.read()[1]] == [0, 1]


def test_corruption_before_the_last_line_is_an_error(tmp_path):
    j = Journal(tmp_path)
    j.create({})
    j.append(make_trial(0))
    j.append(make_trial(1))
    lines = j.path.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:10] + "\n"
    j.path.write_text("".join(lines))
    with pytest.raises(JournalError, match=r"journal.jsonl:2: corrupt journal line"):
        j.read()


def test_schema_version_is_checked(tmp_path):
    j = Journal(tmp_path)
    (tmp_path / "journal.jsonl").write_text(json.dumps({"type": "header", "schema": 99, "config": {}}) + "\n")
    with pytest.raises(JournalError, match="schema 99 is not supported"):
        j.read()


def test_snapshot_is_replaced_atomically(tmp_path):
    j = Journal(tmp_path)
    j.create({})
    j.save_snapshot({"after_trial": 3, "state": {"x": [1, 2]}})
    j.save_snapshot({"after_trial": 4, "state": {"x": [3]}})
    assert j.load_snapshot()["after_trial"] == 4
    assert not list(tmp_path.glob("*.tmp"))
