"""Pruning edges (multi-fidelity audit): a report lacking the judged metric is a ConfigError, not a pruner that never
prunes; `nas.Study` with several trainings in flight judges on a live study, as Optuna does (running trials compete at
ASHA's rungs, each trial keeps one number, so one Hyperband bracket), at a cost per report that does not grow with the
finished trials; worker processes keep the number their job was sent with."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.objectives import Problem
from nas.pruning import Pruning
from nas.spaces import Integer, Space

SPACE = Space(x=Integer(0, 10**6))
EPOCHS = 6


def curve(x: int) -> list[float]:
    """A learning curve that rises towards a quality drawn from `x`."""
    q = np.random.default_rng(x).uniform(0.3, 1.0)
    return [float(q * (1 - 0.7 ** (e + 1))) for e in range(EPOCHS)]


def misnamed(arch) -> dict[str, float]:
    """Reports 'accuracy' each epoch where the objective is 'acc' (a typo)."""
    for value in curve(arch["x"]):
        nas.report_metrics({"accuracy": value})
    return {"acc": curve(arch["x"])[-1]}


# ---------------------------------------------------------------- a report lacking the judged metric
@pytest.mark.parametrize("executor", [None, {"name": "processes", "workers": 1, "threads": 1}])
def test_a_search_whose_reports_lack_the_judged_metric_ends_with_a_config_error(tmp_path, executor):
    """The pruner never saw a value, so it pruned nothing, said nothing and journaled no curve: every trial trained
    to the end while the user believed it was pruned (Ray Tune's executor already refuses such a report)."""
    kw = {} if executor is None else {"executor": executor}
    with pytest.raises(ConfigError, match=r"report_metrics: the pruner judges 'acc', which this report lacks "
                                          r"\(it has: accuracy\)"):
        nas.search(SPACE, misnamed, {"acc": "max"}, strategy="random", budget=6, seed=0, pruner="median",
                   workdir=tmp_path / "run", **kw)
    assert nas.load(tmp_path / "run").trials == []  # nothing journaled: a corrected resume evaluates it


def test_a_report_with_a_nan_value_of_the_judged_metric_is_judged_as_optuna_judges_it():
    """A NaN report reaches the pruner, as in Optuna (whose MedianPruner prunes a trial whose reports are all NaN);
    before session 36 it counted but was not judged, so a diverged training was never pruned."""
    def evaluate(arch):
        nas.report_metrics({"acc": math.nan})
        for value in curve(arch["x"]):
            nas.report_metrics({"acc": value})
        return {"acc": curve(arch["x"])[-1]}

    r = nas.search(SPACE, evaluate, {"acc": "max"}, strategy="random", budget=12, seed=0, pruner="median")
    assert all(t.extra["curve"][0] == [0, "nan"] for t in r.trials)  # kept in the curve, as strict JSON
    assert [t.pruned_after for t in r.trials] == [None] * 5 + [1] * 7  # after the median's 5 startup trials


def test_study_report_and_nas_epoch_refuse_a_report_lacking_the_judged_metric(tmp_path):
    with nas.Study(SPACE, {"acc": "max"}, strategy="random", budget=5, seed=0, workdir=tmp_path / "py",
                   pruner="median") as study:
        arch = study.ask()
        with pytest.raises(ConfigError, match=r"report: the pruner judges 'acc', which this report lacks \(it has: "
                                              r"accuracy\)"):
            study.report(arch, {"accuracy": 0.1})
        assert study.report(arch, {"acc": 0.1}) is False  # the refused report was not counted
        assert study.tell(arch, {"acc": 0.2}).extra["curve"] == [[0, 0.1]]
    nas.Study(SPACE, {"acc": "max"}, strategy="random", budget=5, seed=0, workdir=tmp_path / "sh",
              pruner="median").close()
    runner = CliRunner()
    asked = json.loads(runner.invoke(app, ["ask", str(tmp_path / "sh")]).stdout)
    journal = (tmp_path / "sh" / "journal.jsonl").read_bytes()
    out = runner.invoke(app, ["epoch", str(tmp_path / "sh"), asked["id"], "--metric", "accuracy=0.1"])
    assert out.exit_code == 2 and "the pruner judges 'acc', which this report lacks" in out.output, out.output
    assert (tmp_path / "sh" / "journal.jsonl").read_bytes() == journal  # refused before the workdir was opened
    without = nas.Study(SPACE, {"acc": "max"}, strategy="random", budget=5, seed=0)  # no pruner: nothing judged
    assert without.report(without.ask(), {"accuracy": 0.1}) is False
    without.close()


# ---------------------------------------------------------------- several trainings in flight, as Optuna
N, K = 24, 4


def schedule(start, report, finish) -> dict[int, int | None]:
    """K trainings in flight, one epoch each per round; each ends when pruned (the epoch it stopped at) or after
    EPOCHS (None)."""
    xs = [int(v) for v in np.random.default_rng(1).integers(0, 10**6, N)]
    running, nxt, out = [], 0, {}
    while nxt < N or running:
        while len(running) < K and nxt < N:
            running.append([xs[nxt], 0, start(xs[nxt])])
            nxt += 1
        for job in list(running):
            x, e, handle = job
            stop = report(handle, curve(x)[e], e)
            job[1] = e + 1
            if stop or job[1] == EPOCHS:
                finish(handle, stop, curve(x)[e])
                out[x] = job[1] if stop else None
                running.remove(job)
    return out


def optuna_decisions(pruner: str) -> dict[int, int | None]:
    """Optuna's own pruner, live ask/tell, on the same reports in the same order."""
    make = {"asha": optuna.pruners.SuccessiveHalvingPruner, "hyperband": optuna.pruners.HyperbandPruner}[pruner]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ref = optuna.create_study(study_name="nas-pruning", direction="maximize", pruner=make())

    def report(trial, value, epoch):
        trial.report(value, epoch)
        return trial.should_prune()

    def finish(trial, stop, value):
        ref.tell(trial, state=optuna.trial.TrialState.PRUNED) if stop else ref.tell(trial, value)

    return schedule(lambda x: ref.ask(), report, finish)


@pytest.mark.parametrize("pruner", ["asha", "hyperband"])
def test_a_study_with_trainings_in_flight_prunes_as_optunas_pruner(tmp_path, pruner):
    """Each report was judged on a copy of the finished trials numbered by how many had finished: ASHA never saw
    the running trials' rung values, and a trial's Hyperband bracket changed during its training."""
    started: list[str] = []
    with nas.Study(SPACE, {"acc": "max"}, strategy="random", budget=N, seed=0, workdir=tmp_path,
                   pruner=pruner) as study:
        def start(x):
            study.enqueue({"x": x})
            started.append(study.ask().id)
            return started[-1]

        def report(arch_id, value, epoch):
            return study.report(arch_id, {"acc": value})

        def finish(arch_id, stop, value):
            study.tell(arch_id) if stop else study.tell(arch_id, {"acc": value})

        ours = schedule(start, report, finish)
    assert ours == optuna_decisions(pruner)
    assert sum(v is not None for v in ours.values()) >= 8
    # each trial kept the number Optuna's ask gave it, from its first report to its tell (Hyperband's bracket)
    assert {t.arch_id: t.extra["pruner_trial"] for t in nas.load(tmp_path).trials} == \
        {arch_id: i for i, arch_id in enumerate(started)}


def test_a_study_reopened_between_reports_judges_its_running_trials_as_one_left_open(tmp_path):
    """`nas epoch` reopens the study for every report: the running trials come back under their numbers with their
    rungs, so the decisions are those of one study left open (and of Optuna's pruner)."""
    wd = tmp_path / "reopened"
    kw = dict(strategy="random", budget=N, seed=0, workdir=wd, pruner="hyperband")
    nas.Study(SPACE, {"acc": "max"}, **kw).close()

    def start(x):
        with nas.Study(SPACE, {"acc": "max"}, **kw) as study:
            study.enqueue({"x": x})
            return study.ask().id

    def report(arch_id, value, epoch):
        with nas.Study(SPACE, {"acc": "max"}, **kw) as study:
            return study.report(arch_id, {"acc": value})

    def finish(arch_id, stop, value):
        with nas.Study(SPACE, {"acc": "max"}, **kw) as study:
            study.tell(arch_id) if stop else study.tell(arch_id, {"acc": value})

    assert schedule(start, report, finish) == optuna_decisions("hyperband")


def test_a_report_does_not_rebuild_the_pruning_history(monkeypatch):
    """Each report rebuilt an Optuna study from every finished trial (hundreds of ms at a few thousand): its cost
    grew with the search. Now it is judged on the live study: no trial is created or added for it."""
    with nas.Study(SPACE, {"acc": "max"}, strategy="random", budget=300, seed=0, pruner="median") as study:
        for _ in range(200):
            arch = study.ask()
            for value in curve(arch["x"])[:2]:
                study.report(arch, {"acc": value})
            study.tell(arch, {"acc": curve(arch["x"])[1]})
        made = []
        monkeypatch.setattr(optuna, "create_study", lambda *a, **k: made.append("study"))
        monkeypatch.setattr(optuna.study.Study, "add_trial", lambda *a, **k: made.append("trial"))
        arch = study.ask()
        for value in curve(arch["x"]):
            study.report(arch, {"acc": value})
        assert made == []


# ---------------------------------------------------------------- worker copies keep their job's number
def test_worker_copies_judge_under_the_number_their_job_keeps_and_a_resume_rebuilds_the_same_study():
    """A worker's copy numbered its trial by the finished count and `record` added it under another number: with
    jobs returning out of order a trial's Hyperband bracket was not the one it was judged in."""
    problem = Problem.make({"acc": "max"})
    main = Pruning.make(nas.Pruner("hyperband"), problem)
    xs = [int(v) for v in np.random.default_rng(2).integers(0, 10**6, 30)]

    def training(x):
        def evaluate():
            for value in curve(x):
                nas.report_metrics({"acc": value})
            return {"acc": curve(x)[-1]}, None
        return evaluate

    sent, extras = [], []
    for i, x in enumerate(xs):  # two jobs out at a time; the later one comes back first
        sent.append((main.snapshot(), x, i))
        if len(sent) == 2 or i == len(xs) - 1:
            for copy, x_, i_ in reversed(sent):
                metrics, error, extra = copy.run(training(x_))
                assert extra["pruner_trial"] == i_  # numbered when it was sent, as Optuna's ask numbers a trial
                main.record(metrics, error, extra)
                extras.append((metrics, extra))
            sent = []
    assert any(e.get("pruned_after") for _, e in extras)

    def frozen(p):
        return [(t.number, t.state, t.intermediate_values, t.system_attrs) for t in p.study.get_trials()]

    resumed = Pruning.make(nas.Pruner("hyperband"), problem)
    resumed.replay([nas.store.Trial(i, {"x": 0}, str(i), m, "ok", 0.0, 1.0, "w", None, e)
                    for i, (m, e) in enumerate(extras)])
    assert frozen(resumed) == frozen(main)
