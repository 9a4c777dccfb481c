"""Optuna controls (audit 39): `report_metrics(metrics, step=...)` and `Study.report(..., step=...)` as Optuna's
`trial.report(value, step)` (the pruner judges at the step given, the journal keeps it, a resume prunes alike),
and `Study.enqueue` of an architecture evaluated already says so."""

from __future__ import annotations

import logging

import optuna
import pytest

import nas
from nas.errors import ConfigError
from nas.spaces import Choice, Space

SPACE = Space(lr=Choice([0.001, 0.003, 0.01, 0.03, 0.1, 0.3]), width=Choice([8, 16, 32, 64]))
EPOCHS = 8


def quality(arch) -> float:
    return {0.001: 0.5, 0.003: 0.6, 0.01: 0.8, 0.03: 0.85, 0.1: 0.9, 0.3: 0.55}[arch["lr"]] + arch["width"] / 640


def accuracy(arch, epoch: int) -> float:
    return quality(arch) * (1 - 0.5 ** (epoch + 1))


def every_other(arch) -> dict[str, float]:
    """Reports at steps 0, 2, 4, ... (every second epoch of a training of 2 * EPOCHS)."""
    for epoch in range(EPOCHS):
        nas.report_metrics({"accuracy": accuracy(arch, epoch)}, step=2 * epoch)
    return {"accuracy": accuracy(arch, EPOCHS - 1)}


def every_other_result(arch) -> dict[str, float]:
    return {"accuracy": accuracy(arch, EPOCHS - 1)}


def by_index(arch) -> dict[str, float]:
    for epoch in range(EPOCHS):
        nas.report_metrics({"accuracy": accuracy(arch, epoch)})
    return {"accuracy": accuracy(arch, EPOCHS - 1)}


def outcome(result):
    return [(t.arch_id, t.status, t.extra.get("pruned_after"), t.extra.get("curve")) for t in result.trials]


# ------------------------------------------------------------------------------ report_metrics(step=...)
def test_the_pruner_judges_at_the_step_given_and_the_journal_keeps_it():
    """Warm-up counts steps, not reports: with steps 0, 2, 4, ... MedianPruner(n_warmup_steps=5) judges from the
    4th report (step 6) on; numbered by report it judges from the 6th."""
    pruner = nas.Pruner(optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=5))
    kw = dict(objectives={"accuracy": "max"}, strategy="random", budget=16, seed=0, pruner=pruner)
    stepped, indexed = nas.search(SPACE, every_other, **kw), nas.search(SPACE, by_index, **kw)
    cut = [t.pruned_after for t in stepped.trials if t.pruned_after is not None]
    assert cut and min(cut) == 4  # judged first at step 6
    assert min(t.pruned_after for t in indexed.trials if t.pruned_after is not None) == 6
    for t in stepped.trials:
        assert [s for s, _ in t.extra["curve"]] == [2 * i for i in range(len(t.extra["curve"]))]
        assert t.extra["curve_steps"] is True  # the plot reads the steps as given, not as report numbers
    assert all("curve_steps" not in t.extra for t in indexed.trials)  # without steps: the journal as before


def test_a_pruned_search_with_steps_resumes_exactly(tmp_path):
    kw = dict(objectives={"accuracy": "max"}, strategy="random", seed=1, pruner="median")
    whole = nas.search(SPACE, every_other, budget=16, workdir=tmp_path / "whole", **kw)
    assert any(t.pruned_after is not None for t in whole.trials) and all(t.status == "ok" for t in whole.trials)
    nas.search(SPACE, every_other, budget=6, workdir=tmp_path / "split", **kw)
    split = nas.search(SPACE, every_other, budget=16, workdir=tmp_path / "split", **kw)
    assert outcome(split) == outcome(whole)
    assert outcome(nas.load(tmp_path / "split")) == outcome(whole)  # as journaled
    one = nas.search(SPACE, every_other, budget=16, executor={"name": "processes", "workers": 1, "threads": 1}, **kw)
    assert outcome(one) == outcome(whole)  # a worker process judges at the same steps


@pytest.mark.parametrize("pruner", ["asha", "hyperband"])
def test_rung_pruners_read_the_steps_as_their_resource_and_resume_alike(tmp_path, pruner):
    def sparse(arch):  # steps 1, 3, 9, 27: a rung pruner's resource schedule
        for i, step in enumerate((1, 3, 9, 27)):
            nas.report_metrics({"accuracy": accuracy(arch, i)}, step=step)
        return {"accuracy": accuracy(arch, 3)}

    kw = dict(objectives={"accuracy": "max"}, strategy="random", seed=3, pruner=pruner)
    whole = nas.search(SPACE, sparse, budget=16, **kw)
    assert any(t.pruned_after is not None for t in whole.trials)
    assert all([s for s, _ in t.extra["curve"]] == [1, 3, 9, 27][:len(t.extra["curve"])] for t in whole.trials)
    nas.search(SPACE, sparse, budget=6, workdir=tmp_path / "split", **kw)
    assert outcome(nas.search(SPACE, sparse, budget=16, workdir=tmp_path / "split", **kw)) == outcome(whole)


def test_steps_must_increase_and_a_repeated_one_is_ignored_as_optuna_ignores_it(caplog):
    def reports(*steps):
        def evaluate(arch):
            for i, step in enumerate(steps):
                nas.report_metrics({"accuracy": 0.1 * (i + 1)}, step=step)
            return {"accuracy": 1.0}
        return evaluate

    kw = dict(objectives={"accuracy": "max"}, strategy="random", budget=1, seed=0,
              pruner=nas.Pruner(optuna.pruners.NopPruner()))
    with caplog.at_level(logging.WARNING, logger="nas.pruning"):
        repeated = nas.search(SPACE, reports(0, 3, 3, 5), **kw).trials[0]
    assert repeated.status == "ok" and repeated.extra["curve"] == [[0, 0.1], [3, 0.2], [5, 0.4]]  # first kept
    assert "step 3 was reported already" in caplog.text
    down = nas.search(SPACE, reports(0, 4, 2), **kw).trials[0]
    assert down.status == "failed" and "step: 2 is not after the previous report's step 4" in down.error
    for bad in (-1, 1.5, True, "2"):
        failed = nas.search(SPACE, reports(bad), **kw).trials[0]
        assert failed.status == "failed" and "step: expected an int >= 0" in failed.error, bad
    with pytest.raises(ConfigError, match="^step: expected an int >= 0, got -1"):
        nas.report_metrics({"accuracy": 1.0}, step=-1)  # checked outside a search too, as the metrics are
    nas.report_metrics({"accuracy": 1.0}, step=3)  # and otherwise nothing happens there


def test_reports_without_a_step_go_on_from_the_last_step_given():
    def mixed(arch):
        nas.report_metrics({"accuracy": 0.1}, step=4)
        nas.report_metrics({"accuracy": 0.2})
        nas.report_metrics({"accuracy": 0.3}, step=10)
        return {"accuracy": 0.3}

    t = nas.search(SPACE, mixed, {"accuracy": "max"}, budget=1, seed=0,
                   pruner=nas.Pruner(optuna.pruners.NopPruner())).trials[0]
    assert t.status == "ok" and t.extra["curve"] == [[4, 0.1], [5, 0.2], [10, 0.3]]


def test_a_study_reports_at_the_steps_given_across_a_reopen(tmp_path, caplog):
    kw = dict(strategy="random", budget=4, seed=0, workdir=tmp_path, snapshot_interval_s=0)
    study = nas.Study(SPACE, {"accuracy": "max"}, pruner="median", **kw)
    arch = study.ask()
    assert study.report(arch, {"accuracy": 0.2}, step=0) is False
    study.report(arch, {"accuracy": 0.3}, step=5)
    study.close()
    study = nas.Study(SPACE, {"accuracy": "max"}, **kw)  # reopened by another process (`nas epoch`)
    with caplog.at_level(logging.WARNING, logger="nas.study"):
        study.report(arch, {"accuracy": 0.9}, step=5)  # a retried job reporting its epoch again: ignored
    assert "step 5 was reported already" in caplog.text
    with pytest.raises(ConfigError, match="^step: 4 is not after the previous report's step 5"):
        study.report(arch, {"accuracy": 0.4}, step=4)
    with pytest.raises(ConfigError, match="^step: expected an int >= 0"):
        study.report(arch, {"accuracy": 0.4}, step=-2)
    study.report(arch, {"accuracy": 0.5}, step=9)
    study.report(arch, {"accuracy": 0.6})  # the next step, 10
    trial = study.tell(arch, {"accuracy": 0.6})
    study.close()
    assert trial.extra["curve"] == [[0, 0.2], [5, 0.3], [9, 0.5], [10, 0.6]] and trial.extra["curve_steps"] is True
    assert nas.load(tmp_path).trials[0].extra["curve"] == trial.extra["curve"]


def test_a_study_judges_at_the_steps_given():
    """Ask/tell judges as `nas.search` does: the same trials pruned at the same reports."""
    pruner = nas.Pruner(optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=5))
    searched = nas.search(SPACE, every_other, {"accuracy": "max"}, strategy="random", budget=12, seed=0,
                          pruner=pruner)
    with nas.Study(SPACE, {"accuracy": "max"}, strategy="random", budget=12, seed=0, pruner=pruner) as study:
        while (arch := study.ask()) is not None:
            stopped = any(study.report(arch, {"accuracy": accuracy(arch, epoch)}, step=2 * epoch)
                          for epoch in range(EPOCHS))  # any() stops at the first True, as a training would
            if stopped:
                study.tell(arch)  # journaled as pruned, with its last report
            else:
                study.tell(arch, every_other_result(arch))
        told = study.result()
    assert min(t.pruned_after for t in told.trials if t.pruned_after is not None) == 4  # judged first at step 6
    assert [(t.arch_id, t.pruned_after, t.extra["curve"]) for t in told.trials] == \
        [(t.arch_id, t.pruned_after, t.extra["curve"]) for t in searched.trials]


# ------------------------------------------------------------------------------ Study.enqueue of a told one
def test_enqueueing_an_architecture_evaluated_already_says_so(tmp_path, caplog):
    with nas.Study(SPACE, {"accuracy": "max"}, strategy="random", budget=4, seed=0, workdir=tmp_path) as study:
        arch = study.ask()
        study.tell(arch, {"accuracy": 0.5})
        with caplog.at_level(logging.WARNING, logger="nas.study"):
            again = study.enqueue(dict(arch))
        assert again.id == arch.id  # callers keep their architecture back
        assert f"enqueue: architecture {arch.id[:12]} was evaluated already (trial 0, ok)" in caplog.text
        caplog.clear()
        pending = study.ask()
        with caplog.at_level(logging.WARNING, logger="nas.study"):
            study.enqueue(dict(pending))
        assert f"enqueue: architecture {pending.id[:12]} is pending" in caplog.text
        caplog.clear()
        fresh = next(a for a in SPACE if a.id not in {arch.id, pending.id})
        with caplog.at_level(logging.WARNING, logger="nas.study"):
            study.enqueue(dict(fresh))
        assert caplog.text == ""  # a new one is queued quietly
        assert study.ask().id == fresh.id  # the told and pending ones are not handed out again
        assert arch.id not in {a.id for a in study.pending} and len(study.pending) == 2


def test_nas_epoch_takes_a_step_and_history_curves_draw_it(tmp_path):
    """`nas epoch --step` reaches `Study.report(step=)`; a step before the previous one is refused (exit 2) and
    `nas history --curves` draws the steps given."""
    import json as _json

    from typer.testing import CliRunner

    from nas.cli import app
    from nas.plot import plot_curves

    wd = tmp_path / "s"
    with nas.Study(Space(w=Choice([1, 2, 3, 4, 5, 6])), {"acc": "max"}, strategy="random", budget=4, seed=0,
                   workdir=wd, pruner="median"):
        pass
    runner = CliRunner()
    asked = _json.loads(runner.invoke(app, ["ask", str(wd)]).stdout)
    for step in (2, 4):
        out = runner.invoke(app, ["epoch", str(wd), asked["id"], "--metric", f"acc={step / 10}", "--step", str(step)])
        assert out.exit_code == 0 and out.stdout.strip() == "continue", out.output
    out = runner.invoke(app, ["epoch", str(wd), asked["id"], "--metric", "acc=0.5", "--step", "3"])
    assert out.exit_code == 2 and "step: 3 is not after the previous report's step 4" in out.output, out.output
    assert runner.invoke(app, ["epoch", str(wd), asked["id"], "--metric", "acc=0.5", "--step", "-1"]).exit_code == 2
    assert runner.invoke(app, ["tell", str(wd), asked["id"], "--metric", "acc=0.5"]).exit_code == 0, out.output
    trial = nas.load(wd).trials[0]
    assert trial.extra["curve"] == [[2, 0.2], [4, 0.4]] and trial.extra.get("curve_steps") is True
    fig_path = plot_curves(nas.load(wd), tmp_path / "curves.png")
    assert fig_path.is_file()
