"""`nas.Study` and `nas ask` / `tell` / `epoch` / `status` at their edges (exploration 37): a report lacking an
objective, results told beyond the budget, `--attr` given twice, and `tell`'s `error=` / `finished=`."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.spaces import Choice, Space

SPACE = Space(x=Choice([1, 2, 3, 4, 5, 6]), y=Choice([1, 2]))
OBJECTIVES = {"acc": "max", "lat": "min"}


def make(wd: Path, budget: int = 10, **kw) -> Path:
    nas.Study(SPACE, OBJECTIVES, strategy="random", budget=budget, seed=0, workdir=wd, **kw).close()
    return wd


def ask(runner: CliRunner, wd: Path) -> dict:
    out = runner.invoke(app, ["ask", str(wd)])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def journal(wd: Path) -> bytes:
    return (wd / "journal.jsonl").read_bytes()


# 1 ------------------------------------------------------------------------- a report lacking an objective
def test_study_report_refuses_a_report_lacking_an_objective_or_constraint_metric(tmp_path):
    """A pruned trial is journaled with its last report: one lacking 'lat' was accepted, then the pruned trial was
    journaled as failed at tell time, when the report could no longer be fixed."""
    with nas.Study(SPACE, OBJECTIVES, constraints=["mem <= 5"], strategy="random", budget=10, seed=0,
                   workdir=tmp_path, pruner="median") as study:
        arch = study.ask()
        with pytest.raises(ConfigError, match=r"^report: .*lacks 'lat', 'mem' \(it has: acc\)"):
            study.report(arch, {"acc": 0.5})
        with pytest.raises(ConfigError, match=r"^report: .*lacks 'mem' \(it has: acc, lat\)"):
            study.report(arch, {"acc": 0.5, "lat": 1.0})
        assert study.report(arch, {"acc": 0.5, "lat": 1.0, "mem": 1.0}) is False  # the refused ones not counted
        trial = study.tell(arch, pruned=True)
        assert trial.pruned_after == 1 and trial.status == "ok" and trial.extra["curve"] == [[0, 0.5]]


def test_a_pruned_training_driven_as_the_readme_shows_is_journaled_as_pruned(tmp_path):
    runner = CliRunner()
    wd = make(tmp_path / "s", pruner="median")
    with nas.Study(SPACE, OBJECTIVES, strategy="random", budget=10, seed=0, workdir=wd) as study:
        for _ in range(5):  # the median pruner's startup trials, trained to the end
            arch = study.ask()
            for epoch in range(3):
                study.report(arch, {"acc": 0.5 + 0.1 * epoch, "lat": 1.0})
            study.tell(arch, {"acc": 0.8, "lat": 1.0})
    asked = ask(runner, wd)
    before = journal(wd)
    out = runner.invoke(app, ["epoch", str(wd), asked["id"], "--metric", "acc=0.01"])
    assert out.exit_code == 2 and "epoch: " in out.output and "lacks 'lat' (it has: acc)" in out.output, out.output
    assert journal(wd) == before  # refused before the workdir was opened
    out = runner.invoke(app, ["epoch", str(wd), asked["id"], "--metric", "acc=0.01", "--metric", "lat=1"])
    assert out.exit_code == 4 and out.stdout.strip() == "prune", out.output
    told = runner.invoke(app, ["tell", str(wd), asked["id"]])
    assert told.exit_code == 0 and "trial 5: ok" in told.stdout, told.output
    assert nas.load(wd).trials[-1].pruned_after == 1


# 2 ------------------------------------------------------------------------- told beyond the budget
def test_status_says_results_were_told_beyond_the_budget_not_that_it_was_lowered(tmp_path, caplog):
    runner = CliRunner()
    wd = make(tmp_path / "s", budget=2)
    for i in (1, 2):
        asked = ask(runner, wd)
        assert runner.invoke(app, ["tell", str(wd), asked["id"], "--metric", f"acc={i}", "--metric", "lat=1"]) \
            .exit_code == 0
    told = {t.arch_id for t in nas.load(wd).trials}
    baseline = next(a for a in ({"x": x, "y": y} for x in range(1, 7) for y in (1, 2))
                    if SPACE.validate(a).id not in told)  # a baseline trained earlier: not one the study asked
    with caplog.at_level(logging.INFO):
        out = runner.invoke(app, ["tell", str(wd), json.dumps(baseline), "--metric", "acc=9", "--metric", "lat=1"])
    assert out.exit_code == 0 and "trial 2: ok" in out.stdout, out.output
    said = caplog.text
    assert "returning the journal's" not in said and "evaluate" not in said  # nas.search's words, not a study's
    assert "this study has used its budget (2 evaluations told, budget 2)" in said
    status = runner.invoke(app, ["status", str(wd)])
    assert status.exit_code == 0, status.output
    assert "was lowered" not in status.stdout
    assert "3 evaluations used of a budget of 2 (reached; 1 told after it was reached)" in " ".join(
        status.stdout.split()), status.stdout


def test_status_still_says_a_lowered_budget_was_lowered(tmp_path):
    runner = CliRunner()
    wd = tmp_path / "s"
    with nas.Study(SPACE, OBJECTIVES, strategy="random", budget=4, seed=0, workdir=wd) as study:
        for _ in range(3):
            arch = study.ask()
            study.tell(arch, {"acc": float(arch["x"]), "lat": 1.0})
    nas.Study(SPACE, OBJECTIVES, strategy="random", budget=2, seed=0, workdir=wd, lower_budget=True).close()
    status = runner.invoke(app, ["status", str(wd)])
    assert "3 evaluations used; the budget was lowered to 2 (reached)" in " ".join(status.stdout.split())


# 3 ------------------------------------------------------------------------- --attr given twice
def test_nas_tell_refuses_an_attr_given_twice_as_it_refuses_a_metric_given_twice(tmp_path):
    runner = CliRunner()
    wd = make(tmp_path / "s")
    asked = ask(runner, wd)
    before = journal(wd)
    out = runner.invoke(app, ["tell", str(wd), asked["id"], "--metric", "acc=1", "--metric", "lat=1",
                              "--attr", "ckpt=/a.pt", "--attr", " ckpt=/b.pt"])
    assert out.exit_code == 2 and "--attr: 'ckpt' is given twice" in out.output, out.output
    assert journal(wd) == before
    out = runner.invoke(app, ["tell", str(wd), asked["id"], "--metric", "acc=1", "--metric", "lat=1",
                              "--attr", "ckpt=/a.pt", "--attr", "note=x"])
    assert out.exit_code == 0, out.output
    assert nas.load(wd).trials[0].user_attrs == {"ckpt": "/a.pt", "note": "x"}


# 4 ------------------------------------------------------------------------- error= and finished=
@pytest.mark.parametrize("error", [123, "", "  ", b"oom"])
def test_tell_refuses_an_error_that_is_not_a_non_empty_string(tmp_path, error):
    with nas.Study(SPACE, OBJECTIVES, strategy="random", budget=5, seed=0, workdir=tmp_path) as study:
        arch = study.ask()
        with pytest.raises(ConfigError, match=r"^error: expected why the evaluation failed \(a non-empty string\)"):
            study.tell(arch, {"acc": 1.0, "lat": 1.0}, error=error)
        assert study.trials == [] and study.tell(arch, error="oom").error == "oom"


def test_nas_tell_refuses_an_empty_error_before_writing(tmp_path):
    runner = CliRunner()
    wd = make(tmp_path / "s")
    asked = ask(runner, wd)
    before = journal(wd)
    out = runner.invoke(app, ["tell", str(wd), asked["id"], "--error", ""])
    assert out.exit_code == 2 and "--error: expected why the evaluation failed" in out.output, out.output
    assert journal(wd) == before


@pytest.mark.parametrize("times", [dict(finished=1e20), dict(started=time.time() + 86400),
                                   dict(started=1.0, finished=time.time() + 3600)])
def test_tell_refuses_times_far_in_the_future(tmp_path, times):
    with nas.Study(SPACE, OBJECTIVES, strategy="random", budget=5, seed=0, workdir=tmp_path) as study:
        arch = study.ask()
        name = "finished" if "finished" in times else "started"
        with pytest.raises(ConfigError, match=rf"^{name}: .* is in the future"):
            study.tell(arch, {"acc": 1.0, "lat": 1.0}, **times)
        assert study.trials == []
        now = time.time()  # a clock a little ahead (another machine's) is fine
        trial = study.tell(arch, {"acc": 1.0, "lat": 1.0}, started=now - 10, finished=now + 5)
        assert trial.finished == now + 5


# follow-up of the multi-fidelity report: a reopened study's Hyperband brackets
def test_a_reopened_study_judges_with_the_hyperband_resources_it_estimated(tmp_path):
    """Optuna's HyperbandPruner fixes max_resource (so its brackets) from the completed curves when it first judges.
    A reopened study replayed the whole journal first and estimated anew from longer curves told since (9 here, 1
    in the run that judged): it judged later trainings in other brackets than the study that was not closed."""
    wd = tmp_path / "s"

    def train(study, epochs):
        arch = study.ask()
        for epoch in range(epochs):
            last = {"acc": 0.1 * epoch, "lat": 1.0}
            if study.report(arch, last):
                return study.tell(arch)  # pruned, with its last report
        return study.tell(arch, last)

    with nas.Study(SPACE, OBJECTIVES, strategy="random", budget=10, seed=0, workdir=wd, pruner="hyperband") as study:
        train(study, 1)  # completed after 1 epoch: what the pruner estimates from when it first judges
        judged = train(study, 3)
        assert judged.extra["pruner_estimates"] == {"max_resource": 1}
        train(study, 9)  # a longer training told after the estimate was fixed
    with nas.Study(SPACE, OBJECTIVES, strategy="random", budget=10, seed=0, workdir=wd, pruner="hyperband") as study:
        assert study._pruning.estimates() == {"max_resource": 1}  # estimated anew from the journal, it was 9
