"""The `nas` command line, `plot_pareto`, the examples and the README's Python blocks, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app, load_script
from nas.plot import plot_pareto
from nas.spaces import Choice, Integer, Space
from nas.store import Journal

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# A toy search script: analytic metrics; every call of `evaluate` appends the architecture to calls.txt
# beside the script, so tests can count evaluations across separate `nas` invocations.
TOY = '''
from pathlib import Path
from nas.spaces import Space, Choice, Integer, Repeat

CALLS = Path(__file__).with_name("calls.txt")
space = Space(depth=Choice([1, 2, 3]), blocks=Repeat(count="depth", k=Choice([3, 5, 7]), w=Integer(1, 8)))
objectives = {"acc": "max", "cost": "min"}
strategy = "evolution"
strategy_options = {"population_size": 8, "sample_size": 3}
budget = 50


def evaluate(arch):
    with open(CALLS, "a") as f:
        f.write(repr(dict(arch)) + "\\n")
    cost = sum(b["k"] * b["w"] for b in arch["blocks"])
    return {"acc": 1 - 1 / (2 + cost) - 0.02 * arch["depth"], "cost": float(cost)}
'''

# Failures and cheap-constraint rejections, to check that `nas status` counts every status.
MIXED = '''
import nas
from nas.spaces import Space, Integer

space = Space(x=Integer(0, 9), y=Integer(0, 9))
objectives = {"score": "max", "x": "min"}
constraints = ["x <= 7"]


def size(arch):
    return {"x": float(arch["x"])}


def train(arch):
    if arch["y"] % 4 == 3:
        raise ValueError("diverged")
    return {"score": float(arch["x"] * arch["y"])}


evaluate = [nas.cheap(size), train]
'''


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return write(tmp_path / "toy.py", TOY)


def calls(script: Path) -> list[str]:
    f = script.with_name("calls.txt")
    return f.read_text().splitlines() if f.exists() else []


def one_error_line(result) -> str:
    """The CLI's error output must be exactly one `error: ...` line and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_run_journals_exactly_the_budget_and_prints_the_front(runner, toy, tmp_path):
    wd = tmp_path / "wd"
    result = runner.invoke(app, ["run", str(toy), "--budget", "12", "--workdir", str(wd)])
    assert result.exit_code == 0, result.output
    contents = Journal(wd).read()
    config, trials = contents.config, contents.trials
    assert len(trials) == 12 and all(t.status == "ok" for t in trials)
    assert len(calls(toy)) == 12
    assert config["metadata"]["script"] == str(toy.resolve())
    assert config["strategy"] == "evolution" and config["strategy_options"] == {"population_size": 8, "sample_size": 3}
    assert config["budget"] == 12  # the flag overrides the script's budget = 50
    front = nas.load(wd).pareto_front()
    assert front and f"Pareto front: {len(front)} of 12 feasible trials" in result.stdout
    assert "acc (max)" in result.stdout and "cost (min)" in result.stdout
    for t in front:  # every front member is a row: its trial number and its architecture
        assert re.search(rf"│\s+{t.number} │", result.stdout)
    assert str(wd.resolve()) in result.stdout


def test_run_flags_override_the_script(runner, toy, tmp_path):
    wd = tmp_path / "wd"
    result = runner.invoke(app, ["run", str(toy), "--budget", "5", "--workdir", str(wd), "--strategy", "random",
                                 "--seed", "3", "--objective", "cost:min", "--constraint", "cost <= 20"])
    assert result.exit_code == 0, result.output
    contents = Journal(wd).read()
    config, trials = contents.config, contents.trials
    assert (config["strategy"], config["seed"], len(trials)) == ("random", 3, 5)
    assert config["problem"] == {"objectives": {"cost": "min"}, "constraints": ["cost <= 20"]}


def test_run_defaults_to_runs_slash_script_stem(runner, toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["run", str(toy), "--budget", "3"]).exit_code == 0
    assert len(Journal(tmp_path / "runs" / "toy").read().trials) == 3
    again = runner.invoke(app, ["run", str(toy), "--budget", "3", "--fresh"])  # starts over, evaluates anew
    assert again.exit_code == 0 and len(calls(toy)) == 6


def test_status_reports_counts_budget_and_best(runner, tmp_path):
    script = write(tmp_path / "mixed.py", MIXED)
    wd = tmp_path / "wd"
    # a fixed seed: a random one failed 3 first evaluations in a row (fail-fast) about once in 250 runs
    assert runner.invoke(app, ["run", str(script), "--budget", "20", "--workdir", str(wd), "--seed", "0"]).exit_code == 0
    trials = Journal(wd).read().trials
    n = Counter(t.status for t in trials)
    assert n["failed"] > 0 and n["infeasible"] > 0 and n["ok"] + n["failed"] == 20
    result = runner.invoke(app, ["status", str(wd)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    counts = nas.load(wd).counts()  # infeasible: cheap rejections and evaluated violators alike
    assert counts.rejected == n["infeasible"] and counts.feasible + counts.violating == n["ok"]
    assert (f"{len(trials)} in the journal: {n['ok']} ok, {n['failed']} failed, {n['infeasible']} rejected by a cheap "
            f"constraint; {counts.feasible} feasible, {counts.infeasible} infeasible ({counts.violating} evaluated, "
            f"{n['infeasible']} rejected)") in " ".join(out.split()), out
    assert "20 of 20 evaluations used" in out
    best = nas.load(wd).best("score")
    assert re.search(rf"best score\s+{best.metrics['score']:g} \(trial {best.number}\)", out)
    assert "last trial" in out and "finished" in out


def test_pareto_prints_the_table_and_writes_a_png(runner, toy, tmp_path):
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(toy), "--budget", "10", "--workdir", str(wd)]).exit_code == 0
    png = tmp_path / "plots" / "front.png"
    result = runner.invoke(app, ["pareto", str(wd), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "Pareto front" in result.stdout and str(png.resolve()) in result.stdout
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC
    single = runner.invoke(app, ["pareto", str(wd), "--objectives", "acc"])
    accs = [t.metrics["acc"] for t in Journal(wd).read().trials]
    ties = accs.count(max(accs))  # the run's seed is fresh: two networks of one depth and cost can tie on acc
    assert single.exit_code == 0 and f"Pareto front: {ties} of 10" in single.stdout
    bad = runner.invoke(app, ["pareto", str(wd), "--objectives", "acc,speed"])
    assert "'speed' is not an objective" in one_error_line(bad)


def test_resume_continues_to_the_new_budget_without_reevaluating(runner, toy, tmp_path):
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(toy), "--budget", "6", "--workdir", str(wd), "--seed", "5"]).exit_code == 0
    assert len(calls(toy)) == 6
    result = runner.invoke(app, ["resume", str(wd), "--budget", "15"])  # the recorded seed 5
    assert result.exit_code == 0, result.output
    trials = Journal(wd).read().trials
    assert len(trials) == 15 and len(calls(toy)) == 15  # 9 new evaluations, none repeated
    assert len({t.arch_id for t in trials}) == 15
    # Stopping at 6 and resuming to 15 is the same search as running to 15 at once.
    other = tmp_path / "other"
    other.mkdir()
    straight = write(other / "toy.py", TOY)
    assert runner.invoke(app, ["run", str(straight), "--budget", "15", "--workdir", str(other / "wd"),
                               "--seed", "5"]).exit_code == 0
    assert [t.arch_id for t in Journal(other / "wd").read().trials] == [t.arch_id for t in trials]
    # Without --budget, a search that already used its budget evaluates nothing more.
    again = runner.invoke(app, ["resume", str(wd)])
    assert again.exit_code == 0 and len(calls(toy)) == 15


def test_resume_needs_a_recorded_script(runner, tmp_path):
    space = Space(x=Integer(0, 5))
    nas.search(space, lambda a: {"v": float(a["x"])}, objectives={"v": "max"}, budget=3, workdir=tmp_path / "wd")
    assert "records no script" in one_error_line(runner.invoke(app, ["resume", str(tmp_path / "wd")]))


def test_resume_of_a_moved_project_says_how_to_go_on(runner, toy, tmp_path):
    """The recorded script path is gone (the project was copied elsewhere): `nas run SCRIPT --workdir DIR` goes on,
    and the refusal says so (it said only 'not found')."""
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(toy), "--budget", "4", "--workdir", str(wd), "--seed", "1"]).exit_code == 0
    moved = tmp_path / "moved.py"
    toy.rename(moved)
    line = one_error_line(runner.invoke(app, ["resume", str(wd), "--budget", "6"]))
    assert f"script {toy}, recorded by {wd}, not found" in line and f"nas run PATH/TO/toy.py --workdir {wd}" in line
    assert "flags of its first run" in line and "'evolution'" in line
    assert len(Journal(wd).read().trials) == 4


def test_script_without_evaluate_is_one_line_error(runner, tmp_path):
    script = write(tmp_path / "noeval.py", "from nas.spaces import Space, Choice\nspace = Space(a=Choice([1, 2]))\n")
    line = one_error_line(runner.invoke(app, ["run", str(script), "--objective", "acc:max"]))
    assert "`evaluate`" in line and "`space`" in line  # names what is missing and what is needed
    both = write(tmp_path / "empty.py", "x = 1\n")
    assert "no `space` and `evaluate`" in one_error_line(runner.invoke(app, ["run", str(both)]))


def test_unknown_strategy_is_one_line_error_and_writes_nothing(runner, toy, tmp_path):
    wd = tmp_path / "wd"
    line = one_error_line(runner.invoke(app, ["run", str(toy), "--strategy", "nope", "--workdir", str(wd)]))
    assert "unknown strategy 'nope'" in line and "nsga2" in line
    assert not Journal(wd).exists() and calls(toy) == []


@pytest.mark.parametrize("args, expect", [
    (["run", "no_such_script.py"], "no_such_script.py not found"),
    (["status", "no_such_dir"], "no_such_dir: no such directory"),
    (["pareto", "no_such_dir"], "no_such_dir: no such directory"),
    (["resume", "no_such_dir"], "no_such_dir: no such directory"),
])
def test_missing_files_are_one_line_errors(runner, tmp_path, monkeypatch, args, expect):
    monkeypatch.chdir(tmp_path)
    assert expect in one_error_line(runner.invoke(app, args))


def test_output_paths_of_the_wrong_kind_are_one_line_errors(runner, toy, tmp_path):
    """A folder where a file goes, or a file where a folder goes: tracebacks before (and a stray .tmp file)."""
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(toy), "--budget", "3", "--workdir", str(wd)]).exit_code == 0
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("mine")
    for args, expect in [(["trials", str(wd), "--csv", str(tmp_path / "adir")], "adir: Is a directory"),
                         (["pareto", str(wd), "--plot", str(tmp_path / "adir")], "adir: Is a directory"),
                         (["export", str(wd), "--out", str(tmp_path / "afile")], "afile is a file")]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and expect in one_error_line(result), (args, result.output)
    assert not list(tmp_path.glob("*.tmp")) and not list((tmp_path / "adir").iterdir())  # no adir.tmp left
    for out in (str(tmp_path / "adir"), f"{tmp_path / 'newdir'}/"):  # a folder, or a path ending in /: report.html in it
        assert runner.invoke(app, ["report", str(wd), "--out", out]).exit_code == 0
    assert (tmp_path / "adir" / "report.html").is_file() and (tmp_path / "newdir" / "report.html").is_file()
    assert (tmp_path / "afile").read_text() == "mine"


def test_bad_objective_flag_and_different_search_in_workdir(runner, toy, tmp_path):
    assert "NAME:max or NAME:min" in one_error_line(runner.invoke(app, ["run", str(toy), "--objective", "acc"]))
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(toy), "--budget", "3", "--workdir", str(wd)]).exit_code == 0
    line = one_error_line(runner.invoke(app, ["run", str(toy), "--budget", "3", "--workdir", str(wd), "--seed", "9"]))
    assert "holds a different search" in line


def test_console_script_prints_one_red_line_without_traceback(tmp_path):
    exe = Path(sys.executable).with_name("nas")
    if not exe.exists():
        pytest.skip("the `nas` console script is not installed in this environment")
    script = write(tmp_path / "noeval.py", "from nas.spaces import Space, Choice\nspace = Space(a=Choice([1]))\n")
    proc = subprocess.run([str(exe), "run", str(script)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "60"}, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "`evaluate`" in proc.stderr


def test_a_different_search_is_refused_before_anything_is_printed_and_names_the_space_field(runner, toy, tmp_path):
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(toy), "--budget", "3", "--workdir", str(wd)]).exit_code == 0
    before = (wd / "journal.jsonl").read_bytes()
    write(toy, TOY.replace("k=Choice([3, 5, 7])", "k=Choice([3, 5])"))
    result = runner.invoke(app, ["run", str(toy), "--budget", "5", "--workdir", str(wd)])
    line = one_error_line(result)
    assert "its space differs at field blocks.k (the journal has choice [3, 5, 7], this run [3, 5])" in line
    assert "continuing" not in result.stdout and result.stdout.strip() == ""  # no progress bar, no "continuing"
    assert (wd / "journal.jsonl").read_bytes() == before and len(calls(toy)) == 3


def test_resume_keeps_a_larger_budget_than_asked_and_a_plain_run_keeps_the_raised_one(runner, toy, tmp_path, caplog):
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(toy), "--budget", "6", "--workdir", str(wd)]).exit_code == 0
    assert runner.invoke(app, ["resume", str(wd), "--budget", "10"]).exit_code == 0
    lower = runner.invoke(app, ["resume", str(wd), "--budget", "4"])  # kept with a warning, as `nas run` does
    assert lower.exit_code == 0 and "has used its budget (10 evaluations)" in lower.stdout
    assert "budget 4 is below the 10 recorded" in caplog.text and "--lower-budget" in caplog.text
    # a plain run of the script (budget 50 in the script, 8 on the command line) keeps the raised 10
    assert runner.invoke(app, ["run", str(toy), "--budget", "8", "--workdir", str(wd)]).exit_code == 0
    assert Journal(wd).read().config["budget"] == 10 and len(calls(toy)) == 10
    assert runner.invoke(app, ["resume", str(wd), "--budget", "7", "--lower-budget"]).exit_code == 0
    status = runner.invoke(app, ["status", str(wd)])
    assert status.exit_code == 0 and "10 evaluations used; the budget was lowered to 7 (reached)" in status.stdout


def test_status_says_how_a_python_search_continues_and_when_one_is_running(runner, tmp_path):
    wd = tmp_path / "wd"
    nas.search(Space(x=Integer(0, 9)), lambda a: {"v": float(a["x"])}, {"v": "max"}, budget=3, workdir=wd)
    out = runner.invoke(app, ["status", str(wd)], env={"COLUMNS": "400"}).stdout
    assert "nas.search(..., workdir=" in out and "nas resume" not in out
    from nas.store import JournalWriter

    with JournalWriter(wd):
        assert f"running (pid {os.getpid()} on " in runner.invoke(app, ["status", str(wd)],
                                                                  env={"COLUMNS": "400"}).stdout


def test_status_of_a_simulated_clock_search_shows_simulated_seconds_not_1970_dates(runner, tmp_path):
    """A SimulatedClockExecutor replay journals simulated seconds from 0 (workers sim-*): status labels them as
    simulated and never reads them as Unix times; the replay's wall-clock records (a cheap constraint's rejections)
    keep their dates."""
    space = Space(x=Integer(0, 9))
    slow = lambda a: {"v": float(a["x"]), "secs": 10.0 + a["x"]}  # noqa: E731
    wd = tmp_path / "sim"
    nas.search(space, slow, {"v": "max"}, budget=4, seed=0, workdir=wd,
               executor=nas.SimulatedClockExecutor(workers=2, duration="secs"))
    trials = nas.load(wd).trials
    assert {t.worker for t in trials} <= {"sim-0", "sim-1"}
    total = sum(t.duration for t in trials)
    out = runner.invoke(app, ["status", str(wd)], env={"COLUMNS": "300"}).stdout
    assert "1970" not in out and "days ago" not in out and "first trial" not in out, out
    end = max(t.finished for t in trials)
    assert re.search(rf"simulated clock\s+4 trials replayed on 2 simulated workers, from 0\.0 s to {end:.1f} s "
                     r"simulated \(no wall-clock dates\)", out), out
    assert re.search(rf"evaluation time \(simulated\)\s+{total:.1f} s in all, {total / 4:.2f} s per trial", out), out

    mixed = tmp_path / "mixed"  # cheap-constraint rejections are journaled on the wall clock
    nas.search(space, [nas.cheap(lambda a: {"c": float(a["x"])}), slow], {"v": "max"}, ["c <= 4"], budget=3,
               seed=0, workdir=mixed, executor=nas.SimulatedClockExecutor(duration="secs"))
    assert {t.worker for t in nas.load(mixed).trials} == {"sim-0", "constraint-filter"}
    out = runner.invoke(app, ["status", str(mixed)], env={"COLUMNS": "300"}).stdout
    assert "1970" not in out and "simulated clock" in out and "evaluation time (simulated)" in out, out
    assert re.search(r"last trial \(wall clock\)\s+20\d\d-", out), out

    plain = tmp_path / "plain"  # an ordinary search: dates, as before
    nas.search(space, slow, {"v": "max"}, budget=2, seed=0, workdir=plain)
    out = runner.invoke(app, ["status", str(plain)], env={"COLUMNS": "300"}).stdout
    assert re.search(r"first trial\s+20\d\d-", out) and "simulated clock" not in out and "(simulated)" not in out, out


INTERRUPTED = TOY.replace("def evaluate(arch):", """def evaluate(arch):
    if len(open(CALLS).read().splitlines() if CALLS.exists() else []) == 4:
        raise KeyboardInterrupt""")


def test_ctrl_c_names_the_workdir_and_the_command_that_continues_it(runner, tmp_path):
    script, wd = write(tmp_path / "toy.py", INTERRUPTED), tmp_path / "wd"
    result = runner.invoke(app, ["run", str(script), "--budget", "9", "--workdir", str(wd)])
    assert result.exit_code == 130
    assert f"every finished trial is in {wd / 'journal.jsonl'}; continue with: nas resume {wd}" in result.stderr
    assert "DIR" not in result.stderr and len(Journal(wd).read().trials) == 4


def test_fresh_moves_the_previous_search_with_its_weights_and_model_spec_aside(runner, toy, tmp_path):
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(toy), "--budget", "3", "--workdir", str(wd)]).exit_code == 0
    (wd / "weights").mkdir()
    (wd / "weights" / "x.pt").write_bytes(b"old")
    (wd / "model.json").write_text("{}")
    result = runner.invoke(app, ["run", str(toy), "--budget", "2", "--workdir", str(wd), "--fresh"])
    assert result.exit_code == 0, result.output
    assert f"moved the previous search in {wd} to {wd}.previous" in result.stdout
    assert sorted(p.name for p in wd.iterdir()) == ["journal.jsonl", "journal.lock", "strategy.json"]
    assert len(Journal(wd).read().trials) == 2 and len(Journal(f"{wd}.previous").read().trials) == 3
    assert (Path(f"{wd}.previous") / "weights" / "x.pt").read_bytes() == b"old"


def test_a_second_fresh_keeps_the_first_previous_and_a_bad_strategy_moves_nothing(runner, toy, tmp_path):
    """A typo'd --fresh run and then its fix once lost the good search: the fix's --fresh deleted DIR.previous."""
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(toy), "--budget", "3", "--workdir", str(wd)]).exit_code == 0
    typo = runner.invoke(app, ["run", str(toy), "--budget", "2", "--workdir", str(wd), "--fresh", "--strategy",
                               "evolutoin"])
    assert typo.exit_code == 2 and "unknown strategy 'evolutoin'" in typo.output
    assert len(Journal(wd).read().trials) == 3 and not Path(f"{wd}.previous").exists()  # checked before moving
    for budget in (2, 1):
        assert runner.invoke(app, ["run", str(toy), "--budget", str(budget), "--workdir", str(wd), "--fresh"]).exit_code == 0
    assert [len(Journal(p).read().trials) for p in (f"{wd}.previous", f"{wd}.previous2", wd)] == [3, 2, 1]


def test_a_workdir_another_search_writes_is_refused_before_anything_is_printed(runner, toy, tmp_path):
    from nas.store import LOCK, _lock

    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(toy), "--budget", "3", "--workdir", str(wd)]).exit_code == 0
    fd = _lock(wd / LOCK)  # another search holds the workdir
    try:
        result = runner.invoke(app, ["run", str(toy), "--budget", "6", "--workdir", str(wd)])
    finally:
        os.close(fd)
    assert result.exit_code == 2 and "is being written by another search" in result.output
    assert "continuing it" not in result.output and "search" not in result.stdout


def test_a_search_that_exhausted_its_space_reads_back_as_finished(runner, tmp_path):
    """The stop reason is journaled: a reload, nas status and export no longer call it incomplete."""
    from nas.export import completeness

    wd = tmp_path / "wd"
    small = Space(a=Choice([1, 2]), b=Choice([1, 2]))
    live = nas.search(small, lambda arch: {"acc": float(arch["a"] + arch["b"])}, {"acc": "max"}, strategy="random",
                      budget=10, seed=0, workdir=wd)
    assert live.stop_reason == "exhausted" and live.used == 4
    loaded = nas.load(wd)
    assert loaded.stop_reason == "exhausted" and completeness(loaded)[0]
    out = runner.invoke(app, ["status", str(wd)], env={"COLUMNS": "300"})
    assert "finished below its budget" in out.stdout and "to continue" not in out.stdout
    nas.search(small, lambda arch: {"acc": 1.0}, {"acc": "max"}, strategy="random", budget=12, seed=0, workdir=wd)
    assert nas.load(wd).stop_reason == "exhausted"  # the resumed run's own end line
    killed = tmp_path / "killed"  # no end line (as after a crash): read back as before
    nas.search(small, lambda arch: {"acc": 1.0}, {"acc": "max"}, strategy="random", budget=2, seed=0, workdir=killed)
    lines = (killed / "journal.jsonl").read_text().splitlines()
    (killed / "journal.jsonl").write_text("\n".join(line for line in lines if '"type": "end"' not in line) + "\n")
    assert nas.load(killed).stop_reason == "loaded"


def test_the_next_step_continues_a_search_the_way_that_works():
    """After a max_time stop, 'nas resume DIR --budget 2 x used' was below the recorded budget and refused."""
    from nas.cli import next_steps
    from nas.objectives import Problem
    from nas.result import SearchResult
    from nas.store import Trial

    trials = [Trial(i, {"a": i}, f"id{i}", {"acc": 1.0}, "ok") for i in range(10)]
    problem = Problem.make({"acc": "max"})
    wd = Path("runs/x")
    stopped = SearchResult(trials, problem, wd, "max_time", {"budget": 60})
    assert next_steps(stopped, wd).endswith("| nas resume runs/x")
    done = SearchResult(trials, problem, wd, "budget", {"budget": 10})
    assert next_steps(done, wd).endswith("| nas resume runs/x --budget 20")
    assert "resume" not in next_steps(SearchResult(trials, problem, wd, "exhausted", {"budget": 60}), wd)


def test_run_help_lists_every_registered_strategy(runner):
    from nas.strategies import STRATEGIES

    out = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "400"}).stdout
    assert all(name in out for name in STRATEGIES), out


# ------------------------------------------------------------------------------------------ plot
def _toy_result(tmp_path: Path, objectives: dict[str, str]) -> nas.SearchResult:
    space = Space(a=Integer(0, 9), b=Choice([1, 2, 3]))

    def evaluate(arch):
        return {"acc": arch["a"] * arch["b"] / 27, "lat": arch["a"] + arch["b"] ** 2, "size": arch["b"]}

    return nas.search(space, evaluate, objectives=objectives, constraints=["lat <= 12"], strategy="random",
                      budget=25, seed=0, workdir=tmp_path / "wd")


def test_plot_pareto_writes_a_png(tmp_path):
    result = _toy_result(tmp_path, {"acc": "max", "lat": "min"})
    assert result.pareto_front() and len(result.feasible) < len(result.trials)  # front, dominated, infeasible
    path = plot_pareto(result, tmp_path / "sub" / "front.png")
    assert path == tmp_path / "sub" / "front.png"
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def test_plot_pareto_with_three_objectives_and_one(tmp_path):
    result = _toy_result(tmp_path, {"acc": "max", "lat": "min", "size": "min"})
    assert plot_pareto(result, tmp_path / "three.png").stat().st_size > 1000
    assert plot_pareto(result, tmp_path / "pick.png", ["size", "acc"]).stat().st_size > 1000
    with pytest.raises(nas.ConfigError, match="two objectives"):
        plot_pareto(result, tmp_path / "one.png", ["acc"])


# ------------------------------------------------------------------------------------------ examples and README
def test_nasbench_graph_example_runs_under_nas_run(runner, nbg_dir, tmp_path):
    wd = tmp_path / "nbg"
    result = runner.invoke(app, ["run", str(ROOT / "examples" / "nasbench_graph.py"), "--budget", "20",
                                 "--workdir", str(wd)])
    assert result.exit_code == 0, result.output
    contents = Journal(wd).read()
    config, trials = contents.config, contents.trials
    assert len(trials) == 20 and config["problem"]["objectives"] == {"valid_acc": "max", "latency_s": "min"}
    assert "valid_acc (max)" in result.stdout


def test_the_example_run_file_runs_with_flags_on_top(runner, nbg_dir, tmp_path):
    wd = tmp_path / "nbg"
    result = runner.invoke(app, ["run", str(ROOT / "examples" / "nasbench_graph.toml"), "--budget", "24",
                                 "--workdir", str(wd), "--strategy-option", "population_size=12"])
    assert result.exit_code == 0, result.output
    config = Journal(wd).read().config
    assert config["strategy"] == "evolution" and config["seed"] == 0 and config["budget"] == 24
    assert config["strategy_options"] == {"population_size": 12, "mutation_bias": 0.5}
    assert config["problem"]["constraints"] == ["latency_s <= 0.01"]
    assert config["metadata"]["executor"] == {"name": "processes", "workers": 2}
    assert all(t.worker.startswith("process-") for t in nas.load(wd).trials if t.status == "ok")


def test_demo_runs_end_to_end_on_small_settings(tmp_path, capsys):
    demo = load_script(ROOT / "examples" / "demo.py")
    wd = tmp_path / "demo"
    quick = ["--quick", "--epochs", "1", "--workdir", str(wd), "--lut", str(tmp_path / "lut.jsonl")]
    result = demo.main([*quick, "--budget", "4"])
    assert len(result.trials) == 4 and (wd / "pareto.png").stat().st_size > 1000
    for t in result.trials:
        assert t.status == "ok" and {"accuracy_pct", "latency_ms", "test_accuracy_pct"} <= set(t.metrics)
        assert 0 <= t.metrics["accuracy_pct"] <= 100 and t.metrics["latency_ms"] > 0
    exported = sorted((wd / "models").glob("trial-*/model.onnx"))
    assert len(exported) == len(result.pareto_front()) and (wd / "models" / "verify.json").exists()
    out = capsys.readouterr().out
    assert "Pareto front" in out and "verify:" in out and f"everything is in {wd}" in out
    assert demo.main([*quick, "--budget", "2"]).trials[-1].number == 1  # a re-run starts fresh (the table is kept)


def readme_python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    """Every ```python block of the README, in order and in one namespace, in a fresh directory."""
    from nas.tabular import data_dir

    blocks = readme_python_blocks()
    assert blocks and "nas.search(space, evaluate=my_fn" in blocks[0]
    have_data = (data_dir() / "nas-bench-graph" / "cora.csv").exists()
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for i, block in enumerate(blocks):
        if "nas_bench_graph" in block and not have_data:
            continue
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
    assert len(nas.load(tmp_path / "runs" / "api-example").trials) == 250  # the first block, then its resume
    assert (tmp_path / "runs" / "front.png").exists()
    out = capsys.readouterr().out
    assert "200/200 evaluations" in out and "rejected before training" in out
