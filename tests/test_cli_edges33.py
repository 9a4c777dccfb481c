"""The `nas` command line at its edges (report /tmp/explore33/cli): seeds and output folders checked before any
work, study commands that write nothing when they refuse their input, workdirs that are no study, empty paths,
paths of the wrong kind, errors naming the flag typed, budget advice that leads somewhere, `nas trials`' targets,
and a pruner warning said once while a call waits for the workdir."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.spaces import Choice, Integer, Space
from nas.store import Journal, JournalWriter
from tests.test_cli import one_error_line as error

SPACE = Space(x=Choice([0, 1, 2, 3, 4]), y=Integer(0, 9), act=Choice(["relu", "gelu"]))
TOY = '''from nas.spaces import Space, Choice, Integer
space = Space(x=Choice([0, 1, 2, 3, 4]), y=Integer(0, 9), act=Choice(["relu", "gelu"]))
def evaluate(a):
    return {"acc": -abs(a["x"] - 3) - abs(a["y"] - 1) + (a["act"] == "gelu"), "lat": a["x"] + a["y"] * 0.1}
objectives = {"acc": "max", "lat": "min"}
strategy = "random"
budget = 4
seed = 0
'''


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def files(folder: Path) -> dict[str, str]:
    """Every file under `folder` by its digest: what a command that writes nothing leaves byte for byte."""
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def study(workdir: Path, **kwargs) -> Path:
    nas.Study(SPACE, {"acc": "max", "lat": "min"}, strategy="random", budget=6, seed=0, workdir=workdir,
              **kwargs).close()
    return workdir


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    path = tmp_path / "toy.py"
    path.write_text(TOY)
    return path


# 1 ------------------------------------------------------------------------------------------------ seeds
def test_hardware_seeds_are_checked_before_any_work(runner, tmp_path):
    """numpy's and scikit-learn's ValueErrors were tracebacks (exit 1), fit-latency's after reading the samples."""
    line = error(runner.invoke(app, ["hardware", "measure", "nb201", "--random", "1", "--repeats", "1",
                                     "--warmup", "0", "--seed", "-1"]))
    assert "seed: expected a non-negative int, got -1" in line
    samples = tmp_path / "not-read.jsonl"  # the seed is refused first: the samples are not even looked for
    assert "seed: expected a non-negative int" in error(
        runner.invoke(app, ["hardware", "fit-latency", "nb201", str(samples), "--seed", "-1"]))
    assert "seed: expected an int below 2**32, got 4294967296" in error(
        runner.invoke(app, ["hardware", "fit-latency", "nb201", str(samples), "--seed", str(2**32)]))


# 2 ------------------------------------------------------------------------------------- predictors eval --out
def test_predictors_eval_refuses_a_file_as_its_out_folder_before_evaluating(runner, tmp_path):
    """The whole evaluation ran, then a FileExistsError traceback; no table is read now (no data here)."""
    afile = tmp_path / "afile.txt"
    afile.write_text("mine\n")
    result = runner.invoke(app, ["predictors", "eval", "--out", str(afile), "--data-root", str(tmp_path / "none")])
    assert f"--out: {afile} is a file, not a folder" in error(result)
    assert "held out" not in result.stdout  # refused before the header line
    from nas.errors import ConfigError
    from nas.predictors.harness import main_eval

    with pytest.raises(ConfigError, match="out_dir: .* is a file, not a folder"):
        main_eval(out_dir=afile, data_root=tmp_path / "none")
    assert afile.read_text() == "mine\n"


# 3 ------------------------------------------------------------------------------------------- nothing written
def test_study_commands_refused_for_their_input_write_nothing(runner, tmp_path):
    """Each refusal journaled a resume record (and rewrote the lock's text) before the arguments were checked."""
    wd = study(tmp_path / "study")
    asked = runner.invoke(app, ["ask", str(wd)])
    assert asked.exit_code == 0, asked.output
    pending = json.loads(asked.stdout)["id"]
    before = files(wd)
    outside = '{"x": 9, "y": 1, "act": "relu"}'
    for args, expect in [
        (["tell", str(wd), "typo", "--metric", "acc=1", "--metric", "lat=1"], "no pending architecture has id 'typo'"),
        (["epoch", str(wd), "typo", "--metric", "acc=1"], "no pending architecture has id 'typo'"),
        (["enqueue", str(wd), outside], "x: 9 is not one of"),
        (["tell", str(wd), outside, "--metric", "acc=1", "--metric", "lat=1"], "x: 9 is not one of"),
        (["tell", str(wd), pending], "give the evaluation's metrics"),
        (["tell", str(wd), pending, "--metric", "accuracy=1", "--metric", "lat=1"], "objective 'acc' is not among"),
        (["tell", str(wd), pending, "--metrics", '{"acc": "high", "lat": 1}'], "'acc' = 'high': str is not a number"),
        (["ask", str(wd), "--fail-stale", "-1"], "--fail-stale: expected a finite number >= 0"),
    ]:
        assert expect in error(runner.invoke(app, args)), args
        assert files(wd) == before, args
    told = runner.invoke(app, ["tell", str(wd), pending[:8], "--metric", "acc=1", "--metric", "lat=1"])
    assert told.exit_code == 0 and "trial 0: ok" in told.stdout, told.output
    again = runner.invoke(app, ["tell", str(wd), json.dumps(json.loads(asked.stdout)["arch"]), "--metric", "acc=1",
                                "--metric", "lat=2"])
    assert "was told already (trial 0)" in error(again)


# 4 ------------------------------------------------------------------------------------------- not a study
@pytest.mark.parametrize("strategy, metadata, call", [
    ("darts", {"one_shot": True}, "nas.darts.search_darts"),
    ("few-shot-gradient", {"few_shot": True}, "nas.few_shot.search_few_shot"),
    ("eas", {}, "nas.eas.search_eas"),
    ("bossnas", {}, "nas.bossnas.search_bossnas"),
])
def test_study_commands_on_a_driver_workdir_say_it_is_not_a_study(runner, tmp_path, strategy, metadata, call):
    """They said "unknown strategy 'darts'; available: ..." although the user typed no strategy."""
    config = Journal(study(tmp_path / "study")).read().config  # a space the journal can rebuild
    wd = tmp_path / strategy
    with JournalWriter(wd) as writer:
        writer.create({**config, "strategy": strategy, "metadata": metadata})
    before = files(wd)
    for args in (["ask", str(wd)], ["enqueue", str(wd), "{}"], ["tell", str(wd), "abc", "--metric", "acc=1"],
                 ["epoch", str(wd), "abc", "--metric", "acc=1"]):
        line = error(runner.invoke(app, args))
        assert f"{wd} is not a study" in line and f"call {call}(..., workdir=" in line, line
        assert "unknown strategy" not in line
    assert files(wd) == before


# 5 ------------------------------------------------------------------------------------------- empty paths
def test_an_empty_path_is_refused_not_read_as_the_current_folder(runner, toy, tmp_path, monkeypatch):
    """`--workdir ""` wrote the journal beside the user's files, and --fresh then refused to move it."""
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, flag in [(["run", str(toy), "--workdir", ""], "--workdir"),
                       (["export", "runs/x", "--out", ""], "--out"),
                       (["trials", "runs/x", "--csv", ""], "--csv"),
                       (["status", ""], "workdir"),
                       (["ask", ""], "workdir"),
                       (["hardware", "build-lut", "nb201", "--out", ""], "--out")]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "empty path" in result.output and flag in result.output, (args, result.output)
    (tmp_path / "run.toml").write_text(f'script = "{toy.name}"\nworkdir = ""\n')
    assert "run.toml: workdir: empty path" in error(runner.invoke(app, ["run", "run.toml"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["run.toml"])  # no journal.jsonl here


def test_dashboard_refuses_an_empty_host(runner, toy, tmp_path):
    """`--host ""` bound every interface, although the help says the default serves this machine only."""
    line = error(runner.invoke(app, ["dashboard", str(tmp_path / "wd"), "--host", ""]))
    assert line.startswith("error: --host: empty address") and "every interface" in line


# 6 ------------------------------------------------------------------------------------------- wrong kinds
def test_a_path_of_the_wrong_kind_is_named_as_such_not_as_missing(runner, toy, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(toy), "--workdir", str(wd)]).exit_code == 0
    for args, expect in [
        (["run", str(folder)], f"script: {folder} is a folder, not a file"),
        (["run", str(toy), "--workdir", str(wd), "--enqueue", str(folder)],
         f"enqueue: {folder} is a folder, not a file"),
        (["status", str(wd / "journal.jsonl")], f"workdir: {wd / 'journal.jsonl'} is a file, not a folder"),
        (["verify", str(toy)], f"out: {toy} is a file, not a folder"),
        (["hardware", "measure", "nb201", "--random", "1", "--table", str(folder)], f"--table: {folder} is a folder"),
        (["hardware", "build-lut", "nb201", "--limit", "1", "--out", str(folder)], f"--out: {folder} is a folder"),
    ]:
        assert expect in error(runner.invoke(app, args)), args
    assert "no_such_dir: no such directory" in error(runner.invoke(app, ["status", str(tmp_path / "no_such_dir")]))


# 7 ------------------------------------------------------------------------------------------- flag names
def test_errors_name_the_flag_the_user_typed(runner, toy, tmp_path):
    wd = str(tmp_path / "wd")
    for args, expect in [
        (["--stop-at", "accuracy >= 1"], "error: --stop-at: Target names 'accuracy'"),
        (["--stop-at", "acc >>= 1"], "error: --stop-at: "),
        (["--timeout", "-1"], "error: --timeout: expected a finite number > 0"),
        (["--max-time", "0"], "error: --max-time: expected a finite number > 0"),
        (["--stop-after", "0"], "error: --stop-after: expected an int >= 1, got 0"),
    ]:
        line = error(runner.invoke(app, ["run", str(toy), "--workdir", wd, *args]))
        assert line.startswith(expect) and "None for no limit" not in line, (args, line)
    assert not Path(wd).exists()
    (tmp_path / "run.toml").write_text(f'script = "{toy.name}"\nstop_at = ["accuracy >= 1"]\n')
    assert error(runner.invoke(app, ["run", str(tmp_path / "run.toml"), "--workdir", wd])).startswith(
        "error: stop_at: Target names 'accuracy'")  # a run file's key, as written there
    assert runner.invoke(app, ["run", str(toy), "--workdir", wd]).exit_code == 0
    assert error(runner.invoke(app, ["resume", wd, "--stop-at", "accuracy >= 1"])).startswith("error: --stop-at: ")
    assert error(runner.invoke(app, ["hardware", "calibrate", "--threads", "0"])).startswith("error: --threads: ")
    for args, flag in [(["--seeds", "0"], "--seeds"), (["--sizes", "10,1"], "--sizes"),
                       (["--n-test", "1"], "--n-test")]:
        result = runner.invoke(app, ["predictors", "eval", "--data-root", str(tmp_path / "none"), *args])
        assert error(result).startswith(f"error: {flag}: expected an int >= "), args
        assert "held out" not in result.stdout  # refused before the header line


# 8 ------------------------------------------------------------------------------------------- budget advice
def test_budget_advice_leads_somewhere(runner, toy, tmp_path):
    wd = study(tmp_path / "study")
    result = runner.invoke(app, ["ask", str(wd), "--budget", "3"])
    assert result.exit_code == 0, result.output
    assert "lower_budget=True" in result.stderr and "nas resume" not in result.stderr  # resume refuses a study
    assert nas.load(wd).config["budget"] == 6
    assert "--budget: expected a positive int" in error(runner.invoke(app, ["ask", str(wd), "--budget", "-5"]))
    run = str(tmp_path / "run")
    assert runner.invoke(app, ["run", str(toy), "--workdir", run]).exit_code == 0
    for extra in ([], ["--lower-budget"]):  # the sign first: --lower-budget would not have helped
        line = error(runner.invoke(app, ["resume", run, "--budget", "-1", *extra]))
        assert "--budget: expected a positive int" in line and "--lower-budget" not in line


# 9 ------------------------------------------------------------------------------------------- nas trials
def test_trials_refuses_two_outputs_on_one_target_and_makes_missing_folders(runner, toy, tmp_path):
    wd = str(tmp_path / "wd")
    assert runner.invoke(app, ["run", str(toy), "--workdir", wd]).exit_code == 0
    result = runner.invoke(app, ["trials", wd, "--csv", "-", "--json", "-"])
    assert "--csv and --json both write to standard output" in error(result) and result.stdout == ""
    same = tmp_path / "t.txt"
    assert "both write to" in error(runner.invoke(app, ["trials", wd, "--csv", str(same), "--json",
                                                        str(tmp_path / "." / "t.txt")]))
    assert not same.exists()
    csv, lines = tmp_path / "new" / "t.csv", tmp_path / "other" / "deep" / "t.jsonl"
    result = runner.invoke(app, ["trials", wd, "--csv", str(csv), "--json", str(lines)])
    assert result.exit_code == 0, result.output
    assert csv.read_text().startswith("number,") and len(lines.read_text().splitlines()) == 4


# 10 ------------------------------------------------------------------------------------------ one warning
def test_the_pruner_warning_is_said_once_while_a_call_waits_for_the_workdir(runner, tmp_path, caplog):
    """`nas ask --wait` rebuilt the study on every try, each warning that the pruner judges one objective."""
    wd = tmp_path / "study"
    with nas.Study(SPACE, {"acc": "max", "lat": "min"}, strategy="random", budget=6, seed=0, workdir=wd,
                   pruner="median"):  # holds the workdir while the call waits
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="nas"):
            result = runner.invoke(app, ["ask", str(wd), "--wait", "1.5"])
        assert result.exit_code == 2 and "being written" in result.output, result.output
    warned = [r for r in caplog.records if "judges acc alone" in r.getMessage()]
    assert len(warned) == 1


def test_a_folder_given_as_a_json_file_or_latency_table_is_named_as_a_folder(tmp_path):
    """Python callers (LatencyTable.load, the JSON readers) said 'file not found' for a folder."""
    from nas import jsonio
    from nas.errors import ConfigError
    from nas.hardware import LatencyTable

    with pytest.raises(ConfigError, match="a folder, not a file"):
        LatencyTable.load(tmp_path)
    with pytest.raises(ConfigError, match=r"model spec .*: a folder, not a file"):
        jsonio.read_json(tmp_path, "model spec")
