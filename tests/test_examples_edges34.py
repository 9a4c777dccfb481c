"""A new user's first hour (explore34): the demo's workdir guard and argument checks, `./dev.sh demo` without a
system install, `nas resume` hints and budgets, `--timeout` naming its flag, a feasible column in the trial
exports, and a resumed finished search saying that nothing was evaluated."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app, load_script
from nas.errors import ConfigError
from nas.spaces import Choice, Space
from nas.store import Journal
from tests.test_cli import one_error_line

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = '''
from nas.spaces import Space, Choice
space = Space(x=Choice([1, 2, 3, 4, 5, 6]), y=Choice([1, 2, 3]))
def evaluate(a):
    return {"acc": float(a["x"] * a["y"]), "lat": float(a["x"])}
objectives = {"acc": "max"}
'''


@pytest.fixture(scope="module")
def demo():
    return load_script(ROOT / "examples" / "demo.py")


def test_demo_refuses_a_search_it_did_not_write_and_keeps_it(demo, tmp_path, capsys):
    """#1: the demo deleted any workdir holding a journal.jsonl (a user's own search), with no backup."""
    wd = tmp_path / "mine"
    nas.search(Space(x=Choice([1, 2, 3])), lambda a: {"acc": float(a["x"])}, {"acc": "max"}, budget=2, seed=0,
               workdir=wd, metadata={"owner": "me"})
    with pytest.raises(SystemExit) as stop:
        demo.main(["--quick", "--epochs", "1", "--budget", "2", "--workdir", str(wd)])
    assert stop.value.code == 2 and "did not write" in capsys.readouterr().out
    assert Journal(wd).read().config["metadata"] == {"owner": "me"} and len(nas.load(wd).trials) == 2


def test_demo_recognises_its_own_journal_and_its_interrupted_leftovers(demo, tmp_path):
    """#2: an interrupted demo (model.json and supernet.pt written, no journal yet) blocked every later demo run."""
    from nas.datasets import mnist1d_splits
    from nas.modelspec import DataRef, record_model

    left = tmp_path / "left"
    record_model(left, demo.space, supernet=demo.space.supernet(), data=DataRef.of(mnist1d_splits, seed=0),
                 calibration=demo.CALIBRATION, metrics=demo.metric_recipes(1), notes={"epochs": 1})
    (left / "latency_lut.jsonl").write_text("")  # interrupted while profiling
    (tmp_path / "empty").mkdir()
    assert demo._demo_workdir(left) and demo._demo_workdir(tmp_path / "empty")
    other = tmp_path / "other"  # a model.json of another search, or a stray file: not the demo's
    shutil.copytree(left, other)
    spec = json.loads((other / "model.json").read_text())
    (other / "model.json").write_text(json.dumps({**spec, "data": {"function": "mine.load", "kwargs": {}}}))
    assert not demo._demo_workdir(other)
    (left / "notes.txt").write_text("mine")
    assert not demo._demo_workdir(left)
    marked = tmp_path / "marked"  # a journal whose header names the demo (what main records) may be replaced
    nas.search(Space(x=Choice([1, 2])), lambda a: {"acc": 1.0}, {"acc": "max"}, budget=1, seed=0, workdir=marked,
               metadata={"demo": "examples/demo.py"})
    assert demo._demo_workdir(marked)


@pytest.mark.parametrize("args", [["--budget", "0"], ["--budget", "-5"], ["--epochs", "0"]])
def test_demo_refuses_bad_counts_up_front_in_one_line(demo, tmp_path, capsys, args):
    """#3: --budget 0 / --epochs 0 failed with a traceback after the training, the workdir already deleted."""
    wd = tmp_path / "demo"
    wd.mkdir()
    (wd / "journal.jsonl").write_text("kept")
    with pytest.raises(SystemExit) as stop:
        demo.main(["--quick", "--workdir", str(wd), *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"error: argument {args[0]}: expected an int >= 1" in err
    assert (wd / "journal.jsonl").read_text() == "kept"


def test_example_help_descriptions_are_whole_sentences():
    """Observation: --help cut the description at the docstring's first line break ("... CPU latency,")."""
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "examples" / "demo.py"), "--help"],
                         capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "search accuracy against CPU latency, then export the Pareto-optimal subnets" in out and "--quick" in out


def test_dev_sh_demo_installs_no_system_package(tmp_path):
    """#4: `./dev.sh demo` ran apt-get install chromium (and apt-get update) as root; only `test` needs a browser."""
    shutil.copy(ROOT / "dev.sh", tmp_path / "dev.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    stubs, venv = tmp_path / "stubs", tmp_path / ".venv" / "bin"
    stubs.mkdir()
    venv.mkdir(parents=True)
    digest = subprocess.run(["sha256sum"], input=(tmp_path / "pyproject.toml").read_bytes(), capture_output=True,
                            check=True).stdout.split()[0].decode()
    (tmp_path / ".venv" / ".installed").write_text(digest + "\n")  # the venv is up to date: no pip
    for name, body in [("apt-get", f'echo "apt-get $*" >> {tmp_path}/apt.log; exit 1'), ("id", "echo 0")]:
        (stubs / name).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / name).chmod(0o755)
    (venv / "python").write_text("#!/bin/sh\necho ran \"$@\"\n")
    (venv / "python").chmod(0o755)
    for tool in ["bash", "sh", "env", "cat", "sha256sum", "cut", "dirname"]:
        (stubs / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(stubs)}
    demo = subprocess.run([str(tmp_path / "dev.sh"), "demo"], capture_output=True, text=True, env=env)
    assert demo.returncode == 0 and "ran examples/demo.py" in demo.stdout and not (tmp_path / "apt.log").exists()
    test = subprocess.run([str(tmp_path / "dev.sh"), "test"], capture_output=True, text=True, env=env)
    assert "ran -m pytest" in test.stdout and "install -y -q chromium" in (tmp_path / "apt.log").read_text()
    assert "ran -m pytest -q\n" == test.stdout  # no nproc here: one process
    workers = subprocess.run([str(tmp_path / "dev.sh"), "test", "-x"], capture_output=True, text=True,
                             env={**env, "NAS_TEST_WORKERS": "2"})
    assert workers.stdout == "ran -m pytest -q -n 2 --dist loadfile -x\n"  # one worker per core, each file on one


def test_resume_of_a_moved_run_file_search_suggests_a_command_that_works(tmp_path, monkeypatch):
    """#5: the hint `nas run PATH/TO/s.py --workdir W` was refused: the run file's strategy differs from the script's."""
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "s.py").write_text(SCRIPT)
    (proj / "s.toml").write_text('script = "s.py"\nstrategy = "nsga2"\nbudget = 6\nseed = 0\nworkdir = "../runs/s"\n'
                                 "[strategy_options]\npopulation_size = 4\n")
    assert runner.invoke(app, ["run", "proj/s.toml"]).exit_code == 0
    proj.rename(tmp_path / "moved")
    line = one_error_line(runner.invoke(app, ["resume", "runs/s", "--budget", "10"]))
    hint = line.split("`")[1]
    assert hint == "nas run PATH/TO/s.toml --workdir runs/s"
    again = runner.invoke(app, [*hint.replace("PATH/TO/", "moved/").split()[1:], "--budget", "10"])
    assert again.exit_code == 0, again.output
    assert len(nas.load("runs/s").trials) == 10


def test_run_timeout_error_names_the_flags(tmp_path):
    """#8: `nas run s.py --timeout 5` answered in API names (timeout_s, executor='processes')."""
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    line = one_error_line(CliRunner().invoke(app, ["run", str(script), "--timeout", "5", "--workdir",
                                                   str(tmp_path / "w")]))
    assert line.startswith("error: --timeout: ") and "--executor processes" in line and "timeout_s" not in line


def test_resume_with_a_smaller_budget_keeps_the_recorded_one_with_a_warning(tmp_path, caplog):
    """#9: `nas run --budget 3` kept the recorded 6 with a warning; `nas resume --budget 3` exited 2."""
    script, wd = tmp_path / "s.py", tmp_path / "w"
    script.write_text(SCRIPT)
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(script), "--budget", "6", "--workdir", str(wd)]).exit_code == 0
    with caplog.at_level(logging.WARNING, logger="nas"):
        result = runner.invoke(app, ["resume", str(wd), "--budget", "3"])
    assert result.exit_code == 0 and "budget 3 is below the 6 recorded" in caplog.text
    assert Journal(wd).read().config["budget"] == 6 and len(nas.load(wd).trials) == 6
    assert runner.invoke(app, ["resume", str(wd), "--budget", "8"]).exit_code == 0 and len(nas.load(wd).trials) == 8


def test_trial_exports_have_a_feasible_column(tmp_path):
    """#7: a trial evaluated but breaking a constraint had status "ok" and nothing else to tell it apart."""
    wd = tmp_path / "w"
    cheap = nas.cheap(lambda a: {"size": float(a["x"])})
    r = nas.search(Space(x=Choice(list(range(10)))), [cheap, lambda a: {"acc": float(a["x"]), "lat": float(a["x"])}],
                   {"acc": "max"}, constraints=["size <= 7", "lat <= 4"], budget=10, seed=0, workdir=wd,
                   strategy="random")
    feasible = {t.number for t in r.feasible}
    assert {row["number"] for row in r.to_records() if row["feasible"]} == feasible
    frame = r.to_dataframe()
    assert list(frame.columns[:4]) == ["number", "status", "arch_id", "feasible"]
    assert {int(n) for n in frame[frame["feasible"]]["number"]} == feasible
    assert any(t.status == "ok" and t.number not in feasible for t in r.trials)  # an evaluated violator
    runner = CliRunner()
    csv = runner.invoke(app, ["trials", str(wd), "--csv", "-"]).stdout.splitlines()
    column = csv[0].split(",").index("feasible")
    assert {int(line.split(",")[0]) for line in csv[1:] if line.split(",")[column] == "True"} == feasible
    lines = [json.loads(line) for line in runner.invoke(app, ["trials", str(wd), "--json", "-"]).stdout.splitlines()]
    assert {d["number"] for d in lines if d["feasible"]} == feasible and all("arch" in d for d in lines)


def test_a_resumed_finished_search_warns_that_nothing_was_evaluated(tmp_path, caplog):
    """#10: re-running a script after fixing `evaluate` returned the old results, noted only at INFO."""
    space, wd = Space(x=Choice(list(range(8)))), tmp_path / "w"
    nas.search(space, lambda a: {"acc": -float(a["x"])}, {"acc": "max"}, budget=5, seed=0, workdir=wd)
    with caplog.at_level(logging.INFO, logger="nas"):
        nas.search(space, lambda a: {"acc": float(a["x"])}, {"acc": "max"}, budget=7, seed=0, workdir=wd)
    assert "resuming" in caplog.text and not [r for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    r = nas.search(space, lambda a: {"acc": 0.0}, {"acc": "max"}, budget=7, seed=0, workdir=wd)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(r.trials) == 7 and any("nothing evaluated" in m and "a changed evaluate is not re-run" in m
                                      for m in warned)


def test_a_script_data_function_error_names_record_model_and_the_fix():
    """#6 (message only): the refusal named neither data=DataRef.of nor record_model, nor where to move it."""
    from nas.modelspec import DataRef

    def my_data():
        return {}

    my_data.__module__, my_data.__qualname__ = "nas_script_job", "my_data"
    with pytest.raises(ConfigError, match=r"record_model\(\.\.\., data=DataRef\.of\(my_data\)\).*beside the script"):
        DataRef.of(my_data)
