"""Pruning (`nas.pruning`): Optuna's pruners stop trainings from their `nas.report_metrics` values, in-process; a pruned
trial keeps its last report, the journal keeps the curves, and a resume prunes against the same history."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.spaces import Choice, Space

SPACE = Space(lr=Choice([0.001, 0.003, 0.01, 0.03, 0.1, 0.3]), width=Choice([8, 16, 32, 64]))
EPOCHS = 10


def quality(arch) -> float:
    return {0.001: 0.5, 0.003: 0.6, 0.01: 0.8, 0.03: 0.85, 0.1: 0.9, 0.3: 0.55}[arch["lr"]] + arch["width"] / 640


class Training:
    """A training whose accuracy rises towards the architecture's quality; counts the epochs it ran."""

    def __init__(self, latency: bool = False) -> None:
        self.epochs, self.latency = 0, latency

    def __call__(self, arch) -> dict[str, float]:
        acc = 0.0
        for epoch in range(EPOCHS):
            self.epochs += 1
            acc = quality(arch) * (1 - 0.5 ** (epoch + 1))
            try:
                nas.report_metrics({"accuracy": acc})  # an `except Exception` in training code does not swallow a prune
            except Exception:  # noqa: BLE001
                pytest.fail("Pruned is caught by `except Exception`")
        return {"accuracy": acc, **({"latency_ms": arch["width"] / 8} if self.latency else {})}


def test_median_pruner_saves_epochs_and_finds_the_same_best():
    plain, pruned = Training(), Training()
    full = nas.search(SPACE, plain, {"accuracy": "max"}, strategy="random", budget=20, seed=0)
    cut = nas.search(SPACE, pruned, {"accuracy": "max"}, strategy="random", budget=20, seed=0, pruner="median")
    assert [t.arch_id for t in cut.trials] == [t.arch_id for t in full.trials]  # random asks the same
    assert plain.epochs == 20 * EPOCHS and pruned.epochs <= 0.7 * plain.epochs
    assert cut.best().arch_id == full.best().arch_id
    stopped = [t for t in cut.trials if t.extra.get("pruned_after") is not None]
    assert stopped and all(t.status == "ok" for t in stopped)
    for t in stopped:  # its metrics are its last report; the curve holds every report of the judged metric
        assert len(t.extra["curve"]) == t.extra["pruned_after"] < EPOCHS
        assert t.metrics["accuracy"] == t.extra["curve"][-1][1]
        assert t.metrics["accuracy"] < cut.best().metrics["accuracy"]
    assert all(len(t.extra["curve"]) == EPOCHS for t in cut.trials if t not in stopped)


def test_a_resume_prunes_against_the_journaled_curves(tmp_path):
    kw = dict(objectives={"accuracy": "max"}, strategy="random", seed=1, pruner=nas.Pruner("median"))
    nas.search(SPACE, Training(), budget=6, workdir=tmp_path / "split", **kw)
    split = nas.search(SPACE, Training(), budget=16, workdir=tmp_path / "split", **kw)
    whole = nas.search(SPACE, Training(), budget=16, workdir=tmp_path / "whole", **kw)
    assert [(t.arch_id, t.extra.get("pruned_after")) for t in split.trials] == \
        [(t.arch_id, t.extra.get("pruned_after")) for t in whole.trials]
    fresh = nas.search(SPACE, Training(), budget=16, workdir=tmp_path / "fresh", objectives={"accuracy": "max"},
                       strategy="random", seed=1)  # no pruner: every training runs to the end
    assert not any(t.extra.get("pruned_after") for t in fresh.trials)


def test_worker_processes_prune_each_evaluation_against_the_trials_finished_before_it():
    def pruned(result):
        return [(t.arch_id, t.extra.get("pruned_after"), t.extra.get("curve")) for t in result.trials]

    kw = dict(objectives={"accuracy": "max"}, strategy="random", budget=16, seed=2, pruner="median")
    local = nas.search(SPACE, Training(), **kw)
    one = nas.search(SPACE, Training(), executor={"name": "processes", "workers": 1, "threads": 1}, **kw)
    assert pruned(one) == pruned(local)  # one worker: each job sees every earlier trial, as in-process
    two = nas.search(SPACE, Training(), executor={"name": "processes", "workers": 2, "threads": 1}, **kw)
    stopped = [t for t in two.trials if t.extra.get("pruned_after") is not None]
    assert stopped and all(t.metrics["accuracy"] == t.extra["curve"][-1][1] for t in stopped)
    assert sum(len(t.extra["curve"]) for t in two.trials) < 16 * EPOCHS


def costed_training(arch) -> dict[str, float]:
    """Accuracy climbing over the epochs, and a cost known from the start (lowest for the poorest learning rates,
    so cheap trials learn slowly): every report carries both."""
    latency = arch["width"] / 8 + 100 * arch["lr"]
    for epoch in range(EPOCHS):
        acc = quality(arch) * (1 - 0.5 ** (epoch + 1))
        nas.report_metrics({"accuracy": acc, "latency_ms": latency})
    return {"accuracy": acc, "latency_ms": latency}


def test_pruned_trials_are_told_but_stay_out_of_the_front_best_importances_and_the_optuna_study(tmp_path, caplog):
    from optuna.trial import TrialState

    from nas.importance import decision_effects
    from nas.to_optuna import to_optuna

    objectives = {"accuracy": "max", "latency_ms": "min"}
    with caplog.at_level("WARNING", logger="nas.pruning"):
        r = nas.search(SPACE, costed_training, objectives, strategy="random", budget=24, seed=5, pruner="median",
                       workdir=tmp_path / "run")
    assert "judges accuracy alone" in caplog.text and "latency_ms" in caplog.text
    stopped = {t.number for t in r.trials if t.pruned_after is not None}
    assert stopped and all(r.trials[n].status == "ok" for n in stopped)
    naive = [t.number for t in r.trials if t.status == "ok"]
    front = {t.number for t in r.pareto_front()}
    assert front and not front & stopped
    # the exclusion matters here: among all ok trials, partial trainings would sit on the front
    import numpy as np

    from nas.pareto import pareto_mask
    pts = np.array([[-r.trials[n].metrics["accuracy"], r.trials[n].metrics["latency_ms"]] for n in naive])
    assert {naive[i] for i in np.flatnonzero(pareto_mask(pts))} & stopped
    assert r.best().pruned_after is None and len(r.completed) == 24 - len(stopped)
    frame = r.to_dataframe()  # a column, as Optuna's trials_dataframe has the PRUNED state
    assert {int(n) for n in frame["number"][frame["pruned_after"].notna()]} == stopped
    assert str(frame["pruned_after"].dtype) == "Int64"
    loaded = nas.load(tmp_path / "run")
    assert {t.number for t in loaded.pareto_front()} == front
    effects = decision_effects(loaded, "width", "accuracy")  # means over full trainings only
    full = [t for t in r.trials if t.pruned_after is None]
    assert sum(e.count for e in effects) == len(full)
    report = to_optuna(tmp_path / "run", tmp_path / "optuna.log")
    assert report.pruned == len(stopped) and report.complete == 24 - len(stopped)
    import optuna

    study = optuna.load_study(study_name=report.study_name,
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.log"))))
    for ours, theirs in zip(r.trials, study.get_trials()):
        assert (theirs.state == TrialState.PRUNED) == (ours.number in stopped)
        assert sorted(theirs.intermediate_values.items()) == [(int(k), v) for k, v in ours.extra["curve"]]


def test_a_report_lacking_an_objective_is_refused_at_once_under_a_pruner():
    """The pruner may stop the training at any report, and the pruned trial keeps that report as its result: one
    lacking 'latency_ms' (here every report; the final result has it) is refused at the first report, naming it,
    as `nas.Study.report` refuses it, instead of failing each pruned trial later."""
    with pytest.raises(ConfigError, match=r"^report_metrics: this report lacks 'latency_ms' \(it has: accuracy\); "
                                          r"the pruner may stop the training at any report"):
        nas.search(SPACE, Training(latency=True), {"accuracy": "max", "latency_ms": "min"}, strategy="random",
                   budget=20, seed=0, pruner="median")
    r = nas.search(SPACE, Training(latency=True), {"accuracy": "max", "latency_ms": "min"}, strategy="random",
                   budget=4, seed=0)  # without a pruner the reports go nowhere, and the results are whole
    assert all(t.status == "ok" for t in r.trials)


def test_reports_need_not_carry_what_a_cheap_evaluator_gives():
    """`[nas.cheap(cost), train]` with a pruner: the per-epoch reports carry the accuracy only (the cheap stage gives
    latency_ms, and a report carrying it too would be a metric of two evaluators); a pruned trial's result is its last
    report with the cheap metrics, so it is complete, and kept as pruned, not failed."""
    cost = nas.cheap(lambda arch: {"latency_ms": arch["width"] / 8})
    r = nas.search(SPACE, [cost, Training()], {"accuracy": "max", "latency_ms": "min"}, strategy="random",
                   budget=20, seed=0, pruner="median")
    stopped = [t for t in r.trials if t.extra.get("pruned_after") is not None]
    assert stopped and all(t.status == "ok" and set(t.metrics) >= {"accuracy", "latency_ms"} for t in stopped)
    assert all(t.status == "ok" for t in r.trials)


def test_bad_pruners_and_executors_are_refused_by_name():
    with pytest.raises(ConfigError, match="pruner: unknown name 'mean'"):
        nas.search(SPACE, Training(), {"accuracy": "max"}, budget=2, pruner="mean")
    with pytest.raises(ConfigError, match="pruner: metric 'loss' is not an objective"):
        nas.search(SPACE, Training(), {"accuracy": "max"}, budget=2, pruner=nas.Pruner("asha", metric="loss"))
    with pytest.raises(ConfigError, match="pruner: SimulatedClockExecutor cannot judge its evaluations' reports"):
        nas.search(SPACE, Training(), {"accuracy": "max"}, budget=2, pruner="median",
                   executor=nas.SimulatedClockExecutor())
    with pytest.raises(ConfigError, match="pruner: expected a name"):
        nas.search(SPACE, Training(), {"accuracy": "max"}, budget=2, pruner=3)


def test_report_metrics_outside_a_pruned_search_does_nothing_and_ray_tune_reports_through_it():
    nas.report_metrics({"accuracy": 0.5})  # no search: nothing to tell
    training = Training()
    nas.search(SPACE, training, {"accuracy": "max"}, strategy="random", budget=3, seed=0)
    assert training.epochs == 3 * EPOCHS
    tune = pytest.importorskip("nas.ray.tune")
    assert tune.report is nas.report_metrics


def test_cli_run_takes_a_pruner_and_status_counts_the_pruned(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "search.py").write_text(textwrap.dedent('''
        import nas
        from nas.spaces import Choice, Space
        space = Space(lr=Choice([0.001, 0.003, 0.01, 0.03, 0.1, 0.3]), width=Choice([8, 16, 32, 64]))
        objectives = {"accuracy": "max"}

        def evaluate(arch):
            q = {0.001: 0.5, 0.003: 0.6, 0.01: 0.8, 0.03: 0.85, 0.1: 0.9, 0.3: 0.55}[arch["lr"]]
            for epoch in range(10):
                acc = q * (1 - 0.5 ** (epoch + 1))
                nas.report_metrics({"accuracy": acc})
            return {"accuracy": acc}
    '''))
    out = CliRunner().invoke(app, ["run", "search.py", "--strategy", "random", "--budget", "20", "--seed", "0",
                                   "--pruner", "median"])
    assert out.exit_code == 0, out.output
    assert "stopped early by the pruner" in out.output  # the run's summary line counts them
    status = CliRunner().invoke(app, ["status", "runs/search"])
    assert status.exit_code == 0 and "were stopped early by a pruner" in status.output, status.output
    stopped = sum(t.pruned_after is not None for t in nas.load("runs/search").trials)
    line = " ".join(status.output.split())
    assert "20 in the journal: 20 ok" in line and f"; {20 - stopped} feasible, 0 infeasible" in line
    drawn = CliRunner().invoke(app, ["history", "runs/search", "--plot", "h.png", "--curves", "curves.png"])
    assert drawn.exit_code == 0 and (tmp_path / "curves.png").stat().st_size > 10_000 and (tmp_path / "h.png").exists()
    from nas.plot import plot_curves
    with pytest.raises(ConfigError, match="no trial of this search recorded per-epoch reports"):
        plot_curves(nas.search(SPACE, Training(), {"accuracy": "max"}, strategy="random", budget=2, seed=0), "x.png")
    bad = CliRunner().invoke(app, ["run", "search.py", "--budget", "2", "--pruner", "nope", "--workdir", "runs/x"])
    assert bad.exit_code == 2 and "pruner: unknown name 'nope'" in bad.output


def test_reduced_experiment_trains_fewer_epochs_with_a_pruner(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "pruning.json"
    done = subprocess.run([sys.executable, str(root / "experiments" / "pruning.py"), "--quick", "--jobs", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(out.read_text())["summary"]
    for strategy in ("evolution", "random"):
        assert summary[f"{strategy}|none"]["epochs"] == 12 * 4
        assert summary[f"{strategy}|median"]["epochs"] < summary[f"{strategy}|none"]["epochs"]
        assert summary[f"{strategy}|asha"]["pruned"] > 0


@pytest.mark.parametrize("pruner", ["asha", "hyperband"])
def test_rung_pruners_prune_alike_in_one_run_a_resume_and_a_worker_process_and_repeat_exactly(tmp_path, pruner):
    """Successive halving keeps each trial's rung values on the trial: copies of the history (a resume, a worker's)
    held only the reports, so nothing competed at a rung and nothing was pruned there; Hyperband drew each
    trial's bracket from a random study name, so two runs with one seed pruned different trials."""
    def pruned(result):
        return [(t.arch_id, t.extra.get("pruned_after")) for t in result.trials]

    kw = dict(objectives={"accuracy": "max"}, strategy="random", seed=3, pruner=pruner)
    whole = nas.search(SPACE, Training(), budget=20, **kw)
    assert sum(p is not None for _, p in pruned(whole)) >= 5
    assert pruned(nas.search(SPACE, Training(), budget=20, **kw)) == pruned(whole)  # repeats exactly
    nas.search(SPACE, Training(), budget=8, workdir=tmp_path / "split", **kw)
    assert pruned(nas.search(SPACE, Training(), budget=20, workdir=tmp_path / "split", **kw)) == pruned(whole)
    one = nas.search(SPACE, Training(), budget=20, executor={"name": "processes", "workers": 1, "threads": 1}, **kw)
    assert pruned(one) == pruned(whole)


def test_a_journal_without_the_rungs_is_ranked_again_from_its_reports():
    """Journals written before the rungs were kept: each trial's reports are judged again, in turn."""
    from nas.objectives import Problem
    from nas.pruning import Pruning

    live = Pruning.make(nas.Pruner("asha"), Problem.make({"accuracy": "max"}))
    extras = []
    for arch in list(SPACE)[:12]:
        metrics, error, extra = live.run(lambda arch=arch: (Training()(arch), None))
        extras.append((metrics, error, extra))
    assert any(extra["pruner_attrs"] for _, _, extra in extras)
    old = Pruning.make(nas.Pruner("asha"), Problem.make({"accuracy": "max"}))
    for metrics, error, extra in extras:
        old.record(metrics, error, {k: v for k, v in extra.items() if k != "pruner_attrs"})
    assert [attrs for *_, attrs in old.history] == [extra["pruner_attrs"] for *_, extra in extras]


def test_a_training_that_stops_itself_as_pruned_is_pruned_under_a_pruner_and_a_failed_trial_without_one():
    """Optuna's `raise optuna.TrialPruned()` means `nas.Pruned`: under a pruner the trial ends at its last report,
    as one the pruner stopped; without a pruner it fails saying why (it ended the whole search, or was a bare
    failure), and a report that is not a dict of metrics is refused either way."""
    import optuna

    def stops_itself(exc):
        def evaluate(arch):
            nas.report_metrics({"accuracy": quality(arch) / 2})
            if arch["lr"] < 0.01:
                raise exc
            return {"accuracy": quality(arch)}
        return evaluate

    for exc in (optuna.TrialPruned(), nas.Pruned("enough")):
        judged = nas.search(SPACE, stops_itself(exc), {"accuracy": "max"}, strategy="random", budget=12, seed=0,
                            pruner=nas.Pruner(optuna.pruners.NopPruner()))
        stopped = [t for t in judged.trials if t.arch["lr"] < 0.01]
        assert stopped and all(t.status == "ok" and t.extra["pruned_after"] == 1 for t in stopped)
        assert all(t.metrics["accuracy"] == quality(t.arch) / 2 for t in stopped)
        plain = nas.search(SPACE, stops_itself(exc), {"accuracy": "max"}, strategy="random", budget=12, seed=0)
        assert plain.used == 12
        failed = [t for t in plain.trials if t.status == "failed"]
        assert failed == [t for t in plain.trials if t.arch["lr"] < 0.01] and failed
        assert all("stopped itself as pruned, but this search has no pruner" in t.error for t in failed)

    def bare(arch):
        raise optuna.TrialPruned()
    with pytest.raises(ConfigError, match="stopped as pruned before its first report, so it has no metrics"):
        nas.search(SPACE, bare, {"accuracy": "max"}, budget=1, seed=0, pruner="median")  # the first result: a typo?

    def number_report(arch):
        nas.report_metrics(0.5)  # trial.report(value) in Optuna
        return {"accuracy": 1.0}
    for pruner in (None, "median"):
        r = nas.search(SPACE, number_report, {"accuracy": "max"}, budget=1, seed=0, pruner=pruner)
        assert "report_metrics: expected a dict of metric name -> number" in r.trials[0].error
