"""Session 39b: `nas pareto` on a large front prints a bounded, evenly spaced sample of it (the title says how many
of how many, and how to get all) and writes the whole front with --csv/--json; `nas run` and `nas resume` stopped
by SIGTERM (a scheduler's time limit) drain and exit as on Ctrl-C, with 143."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas import report
from nas.cli import app
from nas.result import SearchResult
from nas.spaces import Integer, Space

ROOT = Path(__file__).resolve().parents[1]
SPACE = Space(w=Integer(1, 60))


def rising(arch) -> dict[str, float]:
    """Accuracy rises with cost: every trial is on the front."""
    return {"acc": arch["w"] / 100, "lat": float(arch["w"])}


@pytest.fixture(scope="module")
def big_front(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("edges39b") / "wd"
    nas.search(SPACE, rising, {"acc": "max", "lat": "min"}, strategy="random", budget=30, seed=0, workdir=wd)
    return wd


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _title(output: str) -> str:
    """The table's title, which rich wraps to the table's width, on one line."""
    lines = output.splitlines()
    return " ".join(line.strip() for line in lines[:next(i for i, line in enumerate(lines) if line.startswith("┏"))])


def _rows(output: str) -> list[int]:
    """The trial numbers of a printed front table, in their order."""
    return [int(m.group(1)) for m in re.finditer(r"^│\s*(\d+)\s*│", output, re.MULTILINE)]


# ------------------------------------------------------------------------------------------ item 1: a big front
def test_a_front_larger_than_the_cap_prints_an_evenly_spaced_sample_and_says_so(big_front, runner, monkeypatch):
    monkeypatch.setattr(report, "FRONT_ROWS", 7)
    front = [t.number for t in SearchResult.load(big_front).pareto_front()]
    assert len(front) == 30
    out = runner.invoke(app, ["pareto", str(big_front)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    shown = _rows(out.stdout)
    assert shown == [front[i] for i in (0, 5, 10, 14, 19, 24, 29)]  # both ends, in the front's order
    title = _title(out.stdout)
    assert title.startswith("Pareto front: 30 of 30 feasible trials (30 in all); 7 shown")
    assert "--csv" in title and "--json" in title


def test_a_front_within_the_cap_prints_every_row_and_the_title_as_before(big_front, runner, monkeypatch):
    monkeypatch.setattr(report, "FRONT_ROWS", 30)
    out = runner.invoke(app, ["pareto", str(big_front)], env={"COLUMNS": "200"})
    assert len(_rows(out.stdout)) == 30
    assert _title(out.stdout) == "Pareto front: 30 of 30 feasible trials (30 in all)"


def test_pareto_writes_the_whole_front_as_csv_and_json_lines(big_front, runner, monkeypatch, tmp_path):
    monkeypatch.setattr(report, "FRONT_ROWS", 7)
    front = [t.number for t in SearchResult.load(big_front).pareto_front()]
    out = runner.invoke(app, ["pareto", str(big_front), "--csv", str(tmp_path / "f.csv"), "--json",
                              str(tmp_path / "f.jsonl")])
    assert out.exit_code == 0, out.output
    assert out.stdout == ""  # the files and a line each on stderr, no table
    assert f"wrote 30 front trials to {(tmp_path / 'f.csv').resolve()}" in out.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "f.csv").read_text())))
    assert [int(r["number"]) for r in rows] == front
    # the same columns and cells as `nas trials --csv` writes for these trials
    every = {r["number"]: r for r in csv.DictReader(io.StringIO(runner.invoke(app, ["trials", str(big_front),
                                                                                    "--csv", "-"]).stdout))}
    assert rows == [every[r["number"]] for r in rows]
    lines = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [r["number"] for r in lines] == front and all(r["feasible"] for r in lines)
    alltrials = {r["number"]: r for r in map(json.loads, runner.invoke(app, ["trials", str(big_front), "--json",
                                                                             "-"]).stdout.splitlines())}
    assert lines == [alltrials[n] for n in front]


def test_pareto_csv_to_standard_output_holds_the_csv_alone_and_follows_the_objectives(big_front, runner, tmp_path):
    out = runner.invoke(app, ["pareto", str(big_front), "--csv", "-", "--objectives", "lat:min",
                              "--plot", str(tmp_path / "h.png")])
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    best = min(SearchResult.load(big_front).trials, key=lambda t: t.metrics["lat"])
    assert [int(r["number"]) for r in rows] == [best.number]  # one objective: its best alone
    assert "plot:" in out.stderr and (tmp_path / "h.png").exists()


def test_pareto_refuses_csv_and_json_to_one_target(big_front, runner, tmp_path):
    out = runner.invoke(app, ["pareto", str(big_front), "--csv", "-", "--json", "-"])
    assert out.exit_code == 2 and "--csv and --json both write to standard output" in out.stderr
    out = runner.invoke(app, ["pareto", str(big_front), "--csv", str(tmp_path / "x"), "--plot", str(tmp_path / "x")])
    assert out.exit_code == 2 and "both write to" in out.stderr and not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------------ item 2: SIGTERM
SLOW = """\
import time
from nas.spaces import Integer, Space

space = Space(w=Integer(1, 40))
objectives = {"acc": "max"}
strategy = "random"
budget = 6
seed = 0


def evaluate(arch):
    time.sleep(0.4)
    return {"acc": arch["w"] / 100}
"""


def _trials(journal: Path) -> list[dict]:
    if not journal.exists():
        return []
    records = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("type") == "trial"]


def _nas(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas.cli", *args]


def test_sigterm_stops_nas_run_as_ctrl_c_does_and_resume_finishes_the_budget(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW)
    wd = tmp_path / "wd"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(_nas("run", "slow.py", "--workdir", str(wd)), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not _trials(wd / "journal.jsonl"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial journaled in 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, (stdout, stderr)
    assert f"interrupted (SIGTERM); every finished trial is in {wd / 'journal.jsonl'}" in " ".join(stderr.split())
    assert "nas resume" in stderr
    assert not (wd / "running.json").exists()  # the journal writer closed: no stale "in flight" for readers
    before = _trials(wd / "journal.jsonl")
    assert 1 <= len(before) < 6
    done = subprocess.run(_nas("resume", str(wd)), cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = _trials(wd / "journal.jsonl")
    assert after[:len(before)] == before  # nothing finished before the signal is lost or rewritten
    assert [r["number"] for r in after] == list(range(6))
    assert len({r["arch_id"] for r in after}) == 6  # nothing evaluated twice


def test_the_sigterm_handler_is_restored_after_the_search(tmp_path, monkeypatch):
    (tmp_path / "quick.py").write_text(SLOW.replace("time.sleep(0.4)", "pass"))
    monkeypatch.chdir(tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    out = CliRunner().invoke(app, ["run", "quick.py", "--workdir", "wd", "--budget", "2"])
    assert out.exit_code == 0, out.output
    assert signal.getsignal(signal.SIGTERM) is before


def test_pareto_help_gives_the_dash_to_the_text_outputs_only(runner):
    text = " ".join(runner.invoke(app, ["pareto", "-h"], env={"COLUMNS": "300"}).stdout.split())
    for flag in ("--csv", "--json"):
        assert re.search(flag + r" <path> Write every front trial as [^(]*\('-': standard output\)", text), flag
    plot_help = text.split("--plot <path>", 1)[1].split("--objectives", 1)[0]
    assert "standard output" not in plot_help
