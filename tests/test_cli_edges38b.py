"""The command line's promises (session 38, cli3 report): `--json -` is standard output for every command that takes
--json; output-path errors name their flag and come before any output is written; `nas status` of a study whose
budget is told or pending says to tell, not to ask; printed commands for a workdir starting with '-' work when
pasted; `--wait` is checked like `--fail-stale`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.spaces import Choice, Space
from tests.test_cli import TOY, one_error_line


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _run(runner: CliRunner, tmp_path: Path, name: str = "wd", budget: int = 6, *extra: str) -> Path:
    script = tmp_path / "toy.py"
    script.write_text(TOY)
    wd = tmp_path / name
    result = runner.invoke(app, ["run", str(script), "--budget", str(budget), "--workdir", str(wd), *extra])
    assert result.exit_code == 0, result.output
    return wd


def _study(tmp_path: Path, budget: int = 3) -> Path:
    wd = tmp_path / "st"
    nas.Study(Space(a=Choice([1, 2, 3, 4, 5, 6])), {"y": "max"}, strategy="random", budget=budget, seed=0,
              workdir=wd).close()
    return wd


# ------------------------------------------------------------------ defect 2: --json - is standard output
def test_importance_and_compare_json_dash_write_json_to_stdout_and_no_file(runner, tmp_path, monkeypatch, one_thread):
    a = _run(runner, tmp_path, "a", 12)
    b = _run(runner, tmp_path, "b", 12, "--strategy", "random")
    monkeypatch.chdir(tmp_path)
    imp = runner.invoke(app, ["importance", str(a), "--json", "-"])
    assert imp.exit_code == 0, imp.output
    assert json.loads(imp.stdout)["metric"] == "acc"  # stdout holds the JSON alone: a pipe reads it
    cmp = runner.invoke(app, ["compare", str(a), str(b), "--json", "-"])
    assert cmp.exit_code == 0, cmp.output
    assert isinstance(json.loads(cmp.stdout), dict)
    assert not (tmp_path / "-").exists()


# ------------------------------------------------------------------ defect 4: output errors name the flag, first
def test_trials_csv_into_a_folder_names_the_flag(runner, tmp_path):
    wd = _run(runner, tmp_path)
    (tmp_path / "out").mkdir()
    for flag in ("--csv", "--json"):
        line = one_error_line(runner.invoke(app, ["trials", str(wd), flag, str(tmp_path / "out")]))
        assert line == f"error: {flag} {tmp_path / 'out'}: Is a directory (give the path of a file)"


def test_pareto_refuses_an_unknown_plot_format_before_printing_the_front(runner, tmp_path):
    wd = _run(runner, tmp_path)
    result = runner.invoke(app, ["pareto", str(wd), "--plot", str(tmp_path / "front.xyz")])
    assert one_error_line(result).startswith("error: --plot ")
    assert result.stdout == ""


def test_history_curves_without_reports_is_refused_before_any_plot(runner, tmp_path):
    wd = _run(runner, tmp_path)
    result = runner.invoke(app, ["history", str(wd), "--plot", str(tmp_path / "h.png"),
                                 "--curves", str(tmp_path / "c.png")])
    assert one_error_line(result).startswith("error: --curves")
    assert not (tmp_path / "h.png").exists()


def test_to_optuna_over_an_existing_file_names_out(runner, tmp_path):
    wd = _run(runner, tmp_path)
    (tmp_path / "o.log").write_text("")
    line = one_error_line(runner.invoke(app, ["to-optuna", str(wd), "--out", str(tmp_path / "o.log")]))
    assert line == f"error: --out: {tmp_path / 'o.log'} already exists (Optuna would add a second study to it): remove " \
                   "it or choose another file"
    (tmp_path / "o.log").unlink()
    (tmp_path / "o.log").mkdir()
    line = one_error_line(runner.invoke(app, ["to-optuna", str(wd), "--out", str(tmp_path / "o.log")]))
    assert line.startswith(f"error: --out: {tmp_path / 'o.log'} is a folder: give the path of a new file")


# ------------------------------------------------------------------ defect 3: a study all told or pending
def test_status_of_a_study_with_its_budget_pending_says_to_tell(runner, tmp_path):
    wd = _study(tmp_path, budget=2)
    with nas.Study(Space(a=Choice([1, 2, 3, 4, 5, 6])), {"y": "max"}, strategy="random", budget=2, seed=0,
                   workdir=wd) as study:
        first = study.ask()
        study.tell(first, {"y": 1.0})
        study.ask()  # the last of the budget: pending
    out = runner.invoke(app, ["status", str(wd)])
    assert out.exit_code == 0, out.output
    state = next(ln for ln in out.stdout.splitlines() if ln.startswith("state"))
    assert "nas ask" not in state and "nas tell" in state
    assert runner.invoke(app, ["ask", str(wd)]).exit_code == 3  # what `nas ask` would say


# ------------------------------------------------------------------ defect 1: workdirs starting with '-'
def test_printed_commands_for_a_dash_workdir_run_when_pasted(runner, tmp_path, monkeypatch):
    script = tmp_path / "toy.py"
    script.write_text(TOY)
    monkeypatch.chdir(tmp_path)
    ran = runner.invoke(app, ["run", "toy.py", "--budget", "3", "--workdir=-dash wd"])
    assert ran.exit_code == 0, ran.output
    line = ran.stdout.strip().splitlines()[-1]
    assert line.startswith("next: ")
    pasted = [shlex.split(cmd) for cmd in line[len("next: "):].split(" | ")]
    pasted.append(shlex.split(next(ln for ln in runner.invoke(app, ["status", "--", "-dash wd"]).stdout.splitlines()
                                   if ln.startswith("pareto front")).split("(", 1)[1].strip().rstrip(")")))
    for words in pasted:
        assert words[0] == "nas"
        if words[1] == "pareto" and "--plot" in words:
            words[words.index("--plot") + 1] = str(tmp_path / "front.png")
        result = runner.invoke(app, words[1:])
        assert result.exit_code == 0, (words, result.output)
    # pasted into a shell, as a user would
    first = line[len("next: "):].split(" | ")[0]  # nas status '...'
    binary = shlex.quote(str(Path(sys.executable).with_name("nas")))
    status = subprocess.run(["bash", "-c", binary + first[len("nas"):]], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert status.returncode == 0, status.stderr
    assert str(tmp_path / "-dash wd") in status.stdout


def test_the_resume_hint_of_a_dash_workdir_runs_when_pasted(runner, tmp_path, monkeypatch):
    from nas.cli import resume_hint

    script = tmp_path / "toy.py"
    script.write_text(TOY)
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["run", "toy.py", "--budget", "2", "--workdir=-w"]).exit_code == 0
    hint = resume_hint(Path("-w"), nas.load(tmp_path / "-w").config)
    result = runner.invoke(app, shlex.split(hint)[1:] + ["--budget", "3"])
    assert result.exit_code == 0, result.output
    assert len(nas.load(tmp_path / "-w").trials) == 3


# ------------------------------------------------------------------ defect 5: --wait checked like --fail-stale
@pytest.mark.parametrize("value", ["-1", "nan"])
def test_ask_refuses_a_negative_or_nan_wait_and_hands_out_nothing(runner, tmp_path, value):
    wd = _study(tmp_path)
    result = runner.invoke(app, ["ask", str(wd), "--wait", value])
    assert one_error_line(result).startswith("error: --wait: ")
    assert result.stdout == ""
    assert runner.invoke(app, ["tell", str(wd), "0" * 12, "--metric", "y=1", "--wait", value]).exit_code == 2
