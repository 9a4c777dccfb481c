"""Ray executors, the Tune searcher, fault tolerance and Ray Train on a 2-node local cluster (loopback).

One `ray.cluster_utils.Cluster` (a head and a worker node, one CPU each) serves the whole module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import nas
from nas.spaces import Choice, Space
from nas.store import Journal

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
SPACE = Space(a=Choice(list(range(8))), b=Choice(list(range(8))), c=Choice([1, 2, 3]))
OBJECTIVES = {"acc": "max", "lat": "min"}
ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
       "RAY_DISABLE_IMPORT_WARNING": "1"}


def toy(arch):
    return {"acc": arch["a"] + 0.5 * arch["b"] - 0.1 * arch["c"], "lat": arch["a"] * arch["c"] + 0.1}


@pytest.fixture(scope="module")
def cluster():
    """A head node and one worker node, one CPU and a 100 MB object store each, no dashboard."""
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as mp:  # ENV for the module's Ray processes, undone however the module ends
        for k, v in ENV.items():
            mp.setenv(k, v)
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                           "object_store_memory": 100 * 2**20})
        c.add_node(num_cpus=1, object_store_memory=100 * 2**20)
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False)
        yield c
        ray.shutdown()
        c.shutdown()


def test_executor_spec_and_errors():
    from nas.executor_spec import executor_spec, make_executor
    from nas.ray.executor import RayExecutor

    assert isinstance(make_executor("ray"), RayExecutor)
    ex = make_executor({"name": "ray", "workers": 3, "cpus": 0.5})
    assert (ex.workers, ex.cpus) == (3, 0.5)
    with pytest.raises(nas.ConfigError, match="no option 'wrokers'"):
        make_executor({"name": "ray", "wrokers": 3})
    with pytest.raises(nas.ConfigError, match="unknown executor"):
        make_executor("dask")
    assert executor_spec("local") == "local"
    assert executor_spec("ray", address="auto", workers=2) == {"name": "ray", "address": "auto", "workers": 2}
    assert executor_spec("ray", workers=4, base={"name": "ray", "address": "h:1", "workers": 2}) == \
        {"name": "ray", "address": "h:1", "workers": 4}
    with pytest.raises(nas.ConfigError, match="--executor local takes no --workers"):
        executor_spec("local", workers=2)
    with pytest.raises(nas.ConfigError, match="scheduler 'asha': give metric="):
        make_executor({"name": "ray-tune", "scheduler": "asha"})


def test_same_trials_in_process_and_on_ray_with_one_worker(cluster):
    from nas.ray.executor import RayExecutor

    local = nas.search(SPACE, toy, OBJECTIVES, strategy="evolution", budget=30, seed=3,
                       strategy_options={"population_size": 8, "sample_size": 3})
    remote = nas.search(SPACE, toy, OBJECTIVES, strategy="evolution", budget=30, seed=3,
                        strategy_options={"population_size": 8, "sample_size": 3}, executor=RayExecutor(workers=1))
    assert [t.arch_id for t in remote.trials] == [t.arch_id for t in local.trials]
    assert [t.metrics for t in remote.trials] == [t.metrics for t in local.trials]
    assert all(t.worker.startswith("ray-") for t in remote.trials)


def test_pools_the_cluster_cannot_place_are_refused_at_once(cluster):
    """Actors Ray cannot place waited for resources forever, and the search hung silently."""
    from nas.ray.executor import RayExecutor
    from nas.ray.tune import RayTuneExecutor

    for executor, message in [(RayExecutor(workers=3), r"workers=3 with cpus=1 and gpus=0 per actor: the Ray cluster "
                                                        r"holds 2 such actor\(s\) at once \(2 node\(s\) with 2 CPU"),
                              (RayExecutor(gpus=1), r"workers \(default\) with cpus=1 and gpus=1 per actor: the Ray "
                                                    r"cluster holds 0"),
                              (RayExecutor(workers=1, cpus=2), "holds 0 such actor"),  # 2 CPUs, but 1 per node
                              (RayTuneExecutor(gpus=0.5), "gpus=0.5 per trial: the Ray cluster holds 0")]:
        t0 = time.monotonic()
        with pytest.raises(nas.ConfigError, match=message):
            nas.search(SPACE, toy, OBJECTIVES, strategy="random", budget=4, seed=0, executor=executor)
        assert time.monotonic() - t0 < 10
    assert ray.is_initialized()  # the cluster this module connected to is left as it was


def slow_toy(arch):
    time.sleep(0.05)
    nas.set_user_attr("slept_s", 0.05)
    return toy(arch)


def test_two_workers_complete_and_journal_reads_back(cluster, tmp_path):
    from typer.testing import CliRunner

    from nas.cli import app

    result = nas.search(SPACE, slow_toy, OBJECTIVES, strategy="nsga2", budget=16, seed=0, workdir=tmp_path,
                        executor={"name": "ray", "workers": 2, "batch_size": 2})
    assert len(result.trials) == 16 and all(t.status == "ok" for t in result.trials)
    assert all(t.user_attrs == {"slept_s": 0.05} for t in result.trials)  # set inside the actors, journaled
    assert len({t.worker for t in result.trials}) == 2  # both actors (one per node) did work
    assert len({t.arch_id for t in result.trials}) == 16
    loaded = nas.load(tmp_path)
    assert [t.arch_id for t in loaded.trials] == [t.arch_id for t in result.trials]
    assert [t.number for t in loaded.pareto_front()] == [t.number for t in result.pareto_front()]
    out = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert out.exit_code == 0 and "16 ok" in out.output


def climbing_toy(arch):
    """A training of 8 epochs whose accuracy climbs towards `toy`'s, reported after each epoch."""
    acc = 0.0
    for epoch in range(8):
        acc = toy(arch)["acc"] * (1 - 0.5 ** (epoch + 1))
        nas.report_metrics({"acc": acc})
    return {"acc": acc}


def test_the_actor_pool_prunes_each_evaluation_against_the_trials_finished_before_its_call(cluster, tmp_path):
    from nas.ray.executor import RayExecutor

    def pruned(result):
        return [(t.arch_id, t.extra.get("pruned_after"), t.extra.get("curve")) for t in result.trials]

    kw = dict(objectives={"acc": "max"}, strategy="random", budget=16, seed=2, pruner="median")
    local = nas.search(SPACE, climbing_toy, **kw)
    assert any(t.extra.get("pruned_after") for t in local.trials)
    one = nas.search(SPACE, climbing_toy, executor=RayExecutor(workers=1), **kw)
    assert pruned(one) == pruned(local)  # one actor: each call sees every earlier trial, as in-process
    two = nas.search(SPACE, climbing_toy, executor=RayExecutor(workers=2, batch_size=2), workdir=tmp_path, **kw)
    stopped = [t for t in two.trials if t.extra.get("pruned_after") is not None]
    assert stopped and all(t.metrics["acc"] == t.extra["curve"][-1][1] for t in stopped)
    assert sum(len(t.extra["curve"]) for t in two.trials) < 16 * 8
    assert [t.extra.get("pruned_after") for t in nas.load(tmp_path).trials] == \
        [t.extra.get("pruned_after") for t in two.trials]  # journaled


def make_killer(folder: Path, kill_once: int):
    """An evaluate that SIGKILLs its own worker process: always for the first architecture it sees (the
    doomed one), and once each for the next `kill_once` architectures."""

    def evaluate(arch):
        doomed = folder / "doomed"
        if not doomed.exists():
            doomed.write_text(arch.id)
        marker, doomed_id = folder / f"{arch.id}.killed", doomed.read_text()
        others = [p for p in folder.glob("*.killed") if p.stem != doomed_id]
        if doomed_id == arch.id or (not marker.exists() and len(others) < kill_once):
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return toy(arch)

    return evaluate


def test_killed_worker_is_retried_then_failed_with_the_error(cluster, tmp_path):
    from nas.ray.executor import RayExecutor

    marks = tmp_path / "marks"
    marks.mkdir()
    result = nas.search(SPACE, make_killer(marks, kill_once=2), OBJECTIVES, strategy="random", budget=8, seed=1,
                        workdir=tmp_path / "run", executor=RayExecutor(workers=2, max_retries=1))
    doomed = (marks / "doomed").read_text()
    by_id = {t.arch_id: t for t in result.trials}
    assert len(result.trials) == 8  # the search completed its budget
    assert by_id[doomed].status == "failed" and "retries" in by_id[doomed].error
    killed_once = {p.name.split(".")[0] for p in marks.glob("*.killed")} - {doomed}
    assert len(killed_once) >= 2  # (two workers may race past the count once)
    assert all(by_id[i].status == "ok" for i in killed_once)  # each retried on a restarted worker
    assert sum(t.status == "ok" for t in result.trials) == 7  # all but the doomed one
    assert len(nas.load(tmp_path / "run").trials) == 8


SCRIPT = """
import time
from nas.spaces import Choice, Space

space = Space(a=Choice(list(range(8))), b=Choice(list(range(8))), c=Choice([1, 2, 3]))
objectives = {"acc": "max", "lat": "min"}
strategy = "evolution"
strategy_options = {"population_size": 8, "sample_size": 3}


def evaluate(arch):
    time.sleep(0.15)
    return {"acc": arch["a"] + 0.5 * arch["b"] - 0.1 * arch["c"], "lat": arch["a"] * arch["c"] + 0.1}
"""


def test_killed_driver_resumes_without_losing_completed_trials(cluster, tmp_path):
    script, workdir = tmp_path / "search.py", tmp_path / "run"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, **ENV}
    cmd = [sys.executable, "-m", "nas.cli", "run", str(script), "--budget", "40", "--workdir", str(workdir),
           "--executor", "ray", "--address", cluster.address, "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = Journal(workdir)
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or len(journal.read().trials) < 10):
        assert proc.poll() is None, "the search ended before it could be killed"
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    contents = journal.read()
    config, before = contents.config, contents.trials
    assert 10 <= len(before) < 40
    assert config["metadata"]["executor"] == {"name": "ray", "address": cluster.address, "workers": 2}
    done = subprocess.run([sys.executable, "-m", "nas.cli", "resume", str(workdir)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    after = nas.load(workdir).trials
    assert len(after) == 40
    assert after[:len(before)] == before  # every completed trial kept, unchanged
    assert len({t.arch_id for t in after}) == 40  # and none repeated


def test_strategy_searcher_save_restore_and_journal(tmp_path):
    from nas.objectives import Problem
    from nas.ray.tune import StrategySearcher, search_header
    from nas.strategies import make_strategy

    problem = Problem.make(OBJECTIVES)

    def searcher(workdir=None):
        strat = make_strategy("evolution", SPACE, problem, seed=5, population_size=4, sample_size=2)
        header = search_header(SPACE, problem, "evolution", 5, budget=12)
        return StrategySearcher(strat, workdir=workdir, header=header)

    a = searcher(tmp_path / "a")
    configs = {f"t{i}": a.suggest(f"t{i}") for i in range(6)}
    for i in range(4):
        arch = configs[f"t{i}"]["arch"]
        a.on_trial_complete(f"t{i}", {"nas": {"metrics": toy(arch), "error": None, "started": 1.0,
                                              "finished": 2.0, "worker": "w"}})
    a.save(str(tmp_path / "searcher.json"))
    b = StrategySearcher(make_strategy("evolution", SPACE, problem, seed=99, population_size=4, sample_size=2))
    b.restore(str(tmp_path / "searcher.json"))
    assert set(b.live) == {"t4", "t5"}
    assert [b.suggest(f"n{i}") for i in range(5)] == [a.suggest(f"n{i}") for i in range(5)]
    # a flattened Tune result and an errored trial are journaled too
    a.on_trial_complete("t4", {"nas/metrics/acc": 1.0, "nas/metrics/lat": 2.0, "nas/error": None,
                               "nas/worker": "w2", "training_iteration": 3})
    a.on_trial_complete("t5", None, error=True)
    loaded = nas.load(tmp_path / "a")
    assert [t.status for t in loaded.trials] == ["ok"] * 5 + ["failed"]
    assert loaded.trials[4].metrics == {"acc": 1.0, "lat": 2.0} and loaded.trials[4].worker == "w2"


def epochs_toy(arch):
    from nas.ray.tune import report

    acc = 0.0
    for epoch in range(1, 5):
        acc = toy(arch)["acc"] * epoch / 4
        report({"acc": acc, "lat": toy(arch)["lat"]})
    return {"acc": acc, "lat": toy(arch)["lat"], "final": 1.0}  # "final": only what evaluate returns has it


@pytest.mark.slow
def test_tune_executor_with_asha_journals_every_trial(cluster, tmp_path):
    from nas.ray.tune import RayTuneExecutor

    ex = RayTuneExecutor(workers=2, scheduler="asha", metric="acc", mode="max", max_epochs=4,
                         storage_path=str(tmp_path / "tune"))
    result = nas.search(SPACE, epochs_toy, OBJECTIVES, strategy="random", budget=8, seed=0,
                        workdir=tmp_path / "run", executor=ex)
    assert len(result.trials) == 8 and all(t.status == "ok" for t in result.trials)
    epochs = [t.metrics["epochs"] for t in result.trials]
    assert max(epochs) == 4 and min(epochs) < 4  # ASHA let the good ones finish and stopped others
    for t in result.trials:  # an early-stopped trial keeps its last report
        assert t.metrics["acc"] == pytest.approx(toy(t.arch)["acc"] * t.metrics["epochs"] / 4)
        # max_epochs = the epochs trained: a trial that trained them all is not stopped at its last report, so
        # evaluate returns and its own metrics are journaled
        assert ("final" in t.metrics) == (t.metrics["epochs"] == 4)
        # stopped early: marked as a pruned trial, so its partial metrics stay out of best() and the front
        assert t.pruned_after == (None if t.metrics["epochs"] == 4 else t.metrics["epochs"])
    assert all(t.pruned_after is None for t in result.pareto_front())
    assert len(nas.load(tmp_path / "run").trials) == 8


@pytest.mark.slow
def test_tune_executor_retries_a_killed_trial_and_fails_a_doomed_one(cluster, tmp_path):
    from nas.ray.tune import RayTuneExecutor

    marks = tmp_path / "marks"
    marks.mkdir()
    ex = RayTuneExecutor(workers=2, max_retries=1, storage_path=str(tmp_path / "tune"))
    result = nas.search(SPACE, make_killer(marks, kill_once=1), OBJECTIVES, strategy="random", budget=5, seed=2,
                        workdir=tmp_path / "run", executor=ex)
    doomed = (marks / "doomed").read_text()
    by_id = {t.arch_id: t for t in result.trials}
    assert len(result.trials) == 5
    assert by_id[doomed].status == "failed" and "retries" in by_id[doomed].error
    assert sum(t.status == "ok" for t in result.trials) == 4  # including the one killed once, then retried


class _Trial:
    def __init__(self, trial_id):
        self.trial_id = trial_id


@pytest.mark.parametrize("kind", ["asha", "hyperband"])
def test_asha_stops_poor_trials_early_but_none_that_reached_max_epochs(kind):
    """With max_epochs = the epochs evaluate trains, Tune's ASHA stopped every trial at its last report, so
    evaluate never returned its final metrics."""
    from nas.ray.tune import EPOCH, make_scheduler

    asha = make_scheduler(kind, "acc", "max", max_epochs=4)
    good, poor = _Trial("good"), _Trial("poor")
    for t in (good, poor):
        asha.on_trial_add(None, t)
    results = {epoch: asha.on_trial_result(None, good, {EPOCH: epoch, "acc": 10.0 + epoch}) for epoch in (1, 2, 3)}
    assert set(results.values()) == {"CONTINUE"}
    brackets = {id(b): b for b in asha._brackets}
    if len(brackets) == 1:  # one ASHA bracket: a poorer trial at the first rung stops there
        assert asha.on_trial_result(None, poor, {EPOCH: 1, "acc": 0.0}) == "STOP"
    assert asha.on_trial_result(None, good, {EPOCH: 4, "acc": 14.0}) == "CONTINUE"  # its last report: it finishes
    assert asha.on_trial_result(None, good, {EPOCH: 5, "acc": 14.0}) == "CONTINUE"


def test_tune_options_are_checked_when_the_executor_is_made():
    from nas.ray.tune import RayTuneExecutor

    asha = {"scheduler": "asha", "metric": "acc", "mode": "max"}
    for options, message in [({"max_retries": -1}, "max_retries: expected an int >= 0, got -1"),
                             ({**asha, "grace_period": 0}, "grace_period: expected a positive int"),
                             ({**asha, "reduction_factor": 1}, "reduction_factor: expected a number > 1"),
                             ({**asha, "max_epochs": 0}, "max_epochs: expected a positive int"),
                             ({**asha, "grace_period": 10, "max_epochs": 4}, "grace_period: 10 exceeds max_epochs=4"),
                             ({**asha, "mode": "maximize"}, "mode: expected 'min' or 'max', got 'maximize'")]:
        with pytest.raises(nas.ConfigError, match=message):
            RayTuneExecutor(**options)


def test_a_tune_scheduler_object_gets_the_executors_metric_and_mode():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from nas.ray.tune import RayTuneExecutor

    ex = RayTuneExecutor(scheduler=ASHAScheduler(max_t=4), metric="acc", mode="max")
    assert (ex.scheduler.metric, ex.scheduler._mode, ex.metric) == ("acc", "max", "acc")
    own = RayTuneExecutor(scheduler=ASHAScheduler(metric="loss", mode="min"))
    assert (own.scheduler.metric, own.metric) == ("loss", "loss")
    assert RayTuneExecutor(scheduler=ASHAScheduler(metric="loss", mode="min"), metric="loss").metric == "loss"
    with pytest.raises(nas.ConfigError, match="has metric='loss', the executor metric='acc'"):
        RayTuneExecutor(scheduler=ASHAScheduler(metric="loss", mode="min"), metric="acc", mode="min")
    with pytest.raises(nas.ConfigError, match="AsyncHyperBandScheduler has no metric or mode.*give RayTuneExecutor "
                                              "metric= and mode="):
        RayTuneExecutor(scheduler=ASHAScheduler(max_t=4))
    assert RayTuneExecutor(scheduler=FIFOScheduler()).metric is None  # ranks nothing, needs nothing


def test_tune_driven_searcher_journals_only_the_trials_metrics_and_its_real_times(tmp_path):
    """Tune passes a Searcher its result flattened, the trial's config included ("config/arch/a"), and no
    record of ours: only the evaluate's metrics are journaled, with the trial's run time and worker."""
    from nas.objectives import Problem
    from nas.ray.tune import StrategySearcher, search_header
    from nas.strategies import make_strategy

    problem = Problem.make(OBJECTIVES)
    searcher = StrategySearcher(make_strategy("random", SPACE, problem, seed=0), workdir=tmp_path,
                                header=search_header(SPACE, problem, "random", 0, budget=2))
    arch = searcher.suggest("t0")["arch"]
    flat = {**toy(arch), **{f"config/arch/{k}": v for k, v in arch.items()}, "time_total_s": 0.5,
            "time_this_iter_s": 0.5, "training_iteration": 1, "timestamp": int(time.time()), "pid": 4321,
            "node_ip": "10.0.0.7", "hostname": "h", "done": True, "trial_id": "t0"}
    before = time.time()
    searcher.on_trial_complete("t0", flat)
    searcher.close()
    (trial,) = nas.load(tmp_path).trials
    assert trial.metrics == toy(arch)
    assert trial.finished >= before and trial.finished - trial.started == pytest.approx(0.5, abs=0.05)
    assert trial.worker == "ray-tune-10.0.0.7-4321"


def first_fast_then_slow(folder: Path):
    """An evaluate whose first call returns once another has started, and every other takes 60 s (each start
    is logged in `folder`)."""

    def evaluate(arch):
        (folder / f"{arch.id}.started").touch()
        try:
            os.close(os.open(folder / "first", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            time.sleep(60)
            return toy(arch)
        deadline = time.time() + 60
        while len(list(folder.glob("*.started"))) < 2 and time.time() < deadline:
            time.sleep(0.05)
        return toy(arch)

    return evaluate


INTERRUPTED: list[float] = []


def interrupt(trial, used, budget):
    INTERRUPTED.append(time.monotonic())
    raise KeyboardInterrupt  # Ctrl-C once the first trial is journaled, while the others still run


def test_an_interrupted_tune_search_stops_its_running_trials_at_once(cluster, tmp_path):
    """Ctrl-C (or an error) waited for every running trial, then threw their results away."""
    from nas.ray.tune import RayTuneExecutor

    marks = tmp_path / "marks"
    marks.mkdir()
    ex = RayTuneExecutor(workers=2, storage_path=str(tmp_path / "tune"))
    INTERRUPTED.clear()
    with pytest.raises(KeyboardInterrupt):
        nas.search(SPACE, first_fast_then_slow(marks), OBJECTIVES, strategy="random", budget=6, seed=0,
                   workdir=tmp_path / "run", executor=ex, progress=interrupt)
    assert time.monotonic() - INTERRUPTED[0] < 20  # not the 60 s of the trial that was running
    assert len(list(marks.glob("*.started"))) >= 2  # a slow trial was running when the search was interrupted
    (done,) = nas.load(tmp_path / "run").trials  # the completed trial is journaled
    pending = json.loads((tmp_path / "run" / "strategy.json").read_text())["pending"]
    assert pending and done.arch not in pending  # the running ones are left for resume to evaluate
    assert ray.available_resources().get("CPU", 0) == 2  # their actors are gone


TYPO_FINISHED = Path(tempfile.gettempdir()) / f"nas-test-tune-typo-{os.getpid()}"  # shipped with the module


def reports_another_name(arch):
    from nas.ray.tune import report

    report({"accuracy": 1.0, "lat": 1.0})
    time.sleep(60)
    TYPO_FINISHED.touch()  # a trial that got here ran past its first report
    return toy(arch)


def fails_on_odd_a(arch):
    from nas.ray.tune import report

    nas.set_user_attr("a", arch["a"])
    if arch["a"] % 2:
        raise ValueError("odd")
    report(toy(arch))
    return toy(arch)


def test_tune_scheduler_metric_typo_fails_at_the_first_report_and_a_raising_trial_fails_alone(cluster, tmp_path):
    """A metric the reports lack surfaced as a multi-KB Tune traceback once trials had run; an evaluate that
    raised under a scheduler ended the whole Tune run (its result lacked the metric)."""
    from nas.ray.tune import RayTuneExecutor

    asha = {"workers": 2, "scheduler": "asha", "metric": "acc", "mode": "max", "max_epochs": 4}
    TYPO_FINISHED.unlink(missing_ok=True)
    with pytest.raises(nas.ConfigError, match=r"metric: the scheduler ranks trials on 'acc', which is not among the "
                                              r"metrics report\(\) got \(accuracy, lat\)"):
        nas.search(SPACE, reports_another_name, OBJECTIVES, strategy="random", budget=4, seed=0,
                   executor=RayTuneExecutor(storage_path=str(tmp_path / "tune"), **asha))
    assert not TYPO_FINISHED.exists()  # refused at the first report, not after the 60 s trials (no timing: loaded CI)
    result = nas.search(SPACE, fails_on_odd_a, OBJECTIVES, strategy="random", budget=6, seed=0,
                        executor=RayTuneExecutor(storage_path=str(tmp_path / "tune2"), **asha))
    assert len(result.trials) == 6
    assert all((t.status == "failed") == bool(t.arch["a"] % 2) for t in result.trials)
    assert all("ValueError: odd" in t.error for t in result.trials if t.status == "failed")
    assert all(t.user_attrs == {"a": t.arch["a"]} for t in result.trials if t.status == "ok")  # through Tune


def test_report_outside_tune_is_a_no_op():
    from nas.ray.tune import report

    report({"acc": 1.0})
    result = nas.search(SPACE, epochs_toy, OBJECTIVES, strategy="random", budget=3, seed=0)
    assert [t.metrics["acc"] for t in result.trials] == [toy(t.arch)["acc"] for t in result.trials]


@pytest.mark.slow  # 40-90 s on 2 cores: the slowest tests of the default run (-m slow runs it)
def test_ray_train_two_workers_train_checkpoint_resume_and_agree(cluster, tmp_path):
    import torch

    from nas.ray.train import DistributedSandwich, load_supernet, step_subnets, train_supernet
    from nas.spaces.ofa import OFAConfig, OFASpace

    cfg = OFAConfig(stage_channels=(8, 8, 8), head_channels=16)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(256, 40)).astype("float32"), rng.integers(0, 10, 256)
    kw = dict(config=cfg, num_workers=2, storage_path=tmp_path / "store", name="sandwich", log_dir=tmp_path / "log")
    first = train_supernet(x, y, DistributedSandwich(epochs=1, batch_size=32), **kw)
    assert first.metrics["epoch"] == 1 and first.metrics["step"] == 4 and first.metrics["agreed_steps"] == 4
    before = load_supernet(first.checkpoint)
    second = train_supernet(x, y, DistributedSandwich(epochs=2, batch_size=32), **kw)
    assert second.metrics["epoch"] == 2 and second.metrics["step"] == 8  # resumed: epoch 2 only
    logs = [[json.loads(line) for line in (tmp_path / "log" / f"subnets-rank{r}.jsonl").read_text().splitlines()]
            for r in (0, 1)]
    assert [e["step"] for e in logs[0]] == list(range(8))  # no step repeated after the resume
    assert logs[0] == logs[1]  # both workers sampled the same subnets at every step, across the resume
    space = OFASpace(cfg)
    assert logs[0][5]["subnets"] == [a.id for a in step_subnets(space, 0, 5, 2)]
    after = second.supernet()
    changed = any(not torch.equal(p, q) for p, q in zip(before.state_dict().values(), after.state_dict().values()))
    assert changed  # the second epoch trained the weights it resumed from
    assert after(torch.zeros(4, 40), space.smallest()).shape == (4, 10)
    assert second.metrics["threads"] == 1  # cpus_per_worker's
    assert ray.is_initialized()  # the cluster the caller connected to is left running
    # another run under the same name is refused (it would resume this one and return its weights)
    with pytest.raises(nas.ConfigError, match=r"settings differ: data 'sha1:\w+' there, 'sha1:\w+' now; "
                                              r"schedule.seed 0 there, 3 now"):
        train_supernet(x[::-1].copy(), y, DistributedSandwich(epochs=2, batch_size=32, seed=3), **kw)


@pytest.mark.slow
def test_ray_train_resumes_exactly_with_dropout_and_extends_on_the_new_schedule(cluster, tmp_path):
    """Through Ray Train: a worker restarted after a crash (max_failures=1) ends with the uninterrupted run's
    weights although dropout is on, and a run extended from 1 to 2 epochs anneals to 0 as a 2-epoch run does
    (it climbed back to the peak LR). tests/test_supernet_audit.py checks the same in-process."""
    from dataclasses import asdict

    import torch

    from nas.ray.train import CHECKPOINT_FILE, DistributedSandwich, _fit, train_supernet
    from nas.spaces.ofa import OFAConfig

    cfg = OFAConfig(stage_channels=(8, 8, 8), head_channels=16, dropout=0.3)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(128, 40)).astype("float32"), rng.integers(0, 10, 128)
    kw = dict(config=cfg, num_workers=1, storage_path=tmp_path / "store")
    whole = train_supernet(x, y, DistributedSandwich(epochs=2, batch_size=32), name="whole", **kw)
    train_supernet(x, y, DistributedSandwich(epochs=1, batch_size=32), name="extended", **kw)
    extended = train_supernet(x, y, DistributedSandwich(epochs=2, batch_size=32), name="extended", **kw)
    marker = tmp_path / "crashed"

    def crash_once(loop_cfg):  # the worker dies right after its first checkpoint, once
        import nas.ray.train as T

        report = T._report

        def crashing(*args):
            report(*args)
            if not marker.exists():
                marker.touch()
                raise RuntimeError("simulated crash after the epoch-1 checkpoint")

        T._report = crashing
        T._train_loop(loop_cfg)

    loop_cfg = {"schedule": asdict(DistributedSandwich(epochs=2, batch_size=32)), "space": cfg.to_dict(),
                "x": x, "y": y.astype("int64")}
    crashed = _fit(crash_once, loop_cfg, num_workers=1, use_gpu=False, cpus_per_worker=1,
                   storage_path=kw["storage_path"], name="crashed", log_dir=None, address=None, max_failures=1,
                   settings={"name": "crashed"})
    assert marker.exists() and crashed.metrics["epoch"] == 2
    state = {name: torch.load(Path(run.checkpoint) / CHECKPOINT_FILE, weights_only=False)
             for name, run in (("whole", whole), ("extended", extended), ("crashed", crashed))}
    a, b = state["whole"]["model"], state["crashed"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    lr = {name: s["optimizer"]["param_groups"][0]["lr"] for name, s in state.items()}
    assert lr["extended"] == lr["whole"] < 1e-12 and state["extended"]["scheduler"]["T_max"] == 8


def test_a_ray_train_run_folder_is_resumed_only_with_its_own_settings(tmp_path):
    from nas.ray.train import SETTINGS_FILE, claim_run

    run = tmp_path / "store" / "ofa-sandwich"
    settings = {"schedule": {"seed": 0, "lr": 0.003}, "data": "sha1:aa", "num_workers": 2}
    claim_run(run, settings)  # a fresh run: its settings are recorded
    assert json.loads((run / SETTINGS_FILE).read_text())["settings"] == settings
    claim_run(run, {**settings, "data": "sha1:bb"})  # no checkpoint yet: nothing to resume, the new run counts
    assert json.loads((run / SETTINGS_FILE).read_text())["settings"]["data"] == "sha1:bb"
    (run / "checkpoint_manager_snapshot.json").write_text("{}")  # Ray Train checkpointed it
    claim_run(run, {**settings, "data": "sha1:bb"})  # the same run again: resumed
    with pytest.raises(nas.ConfigError, match=r"holds checkpoints of another run, which this call would resume "
                                              r"\(settings differ: data 'sha1:bb' there, 'sha1:aa' now; "
                                              r"schedule.seed 0 there, 1 now\); pass another name="):
        claim_run(run, {**settings, "schedule": {"seed": 1, "lr": 0.003}})
    (run / SETTINGS_FILE).unlink()  # checkpoints of a run that recorded no settings
    with pytest.raises(nas.ConfigError, match="whose settings were not recorded"):
        claim_run(run, settings)


class FakeTrainer:
    """Stands in for Ray Train's `TorchTrainer`: records its loop config; `fit` trains nothing."""

    configs: list = []

    def __init__(self, loop, train_loop_config, **kwargs):
        FakeTrainer.configs.append(train_loop_config)

    def fit(self):
        from types import SimpleNamespace

        return SimpleNamespace(error=None, metrics={"epoch": 1}, best_checkpoints=[], checkpoint=None, path="p")


@pytest.mark.parametrize("owns", [True, False])
def test_ray_train_workers_get_their_cpus_as_threads_and_ray_started_for_them_is_shut_down(tmp_path, monkeypatch,
                                                                                         owns):
    """Train workers ran with 1 torch thread whatever cpus_per_worker was, and the local Ray instance a
    train_supernet or search_darts(workers=N) call started stayed up after it returned."""
    import ray.train.torch

    from nas.ray import train
    from nas.ray.train import DistributedSandwich, train_supernet

    shutdowns = []
    monkeypatch.setattr(ray.train.torch, "TorchTrainer", FakeTrainer)
    monkeypatch.setattr(train, "connect", lambda options: owns)  # True: this call started Ray
    monkeypatch.setattr(ray, "shutdown", lambda: shutdowns.append(1))
    FakeTrainer.configs = []
    x, y = np.zeros((64, 40), dtype="float32"), np.zeros(64, dtype="int64")
    train_supernet(x, y, DistributedSandwich(epochs=1, batch_size=32), num_workers=1, cpus_per_worker=3,
                   storage_path=tmp_path)
    assert FakeTrainer.configs[0]["threads"] == 3
    assert shutdowns == ([1] if owns else [])


TRAIN_ALONE = """
import json, sys
import numpy as np
import ray
from nas.ray.train import DistributedSandwich, train_supernet
from nas.spaces.ofa import OFAConfig

x, y = np.random.default_rng(0).normal(size=(64, 40)).astype("float32"), np.arange(64) % 10
run = train_supernet(x, y, DistributedSandwich(epochs=1, batch_size=32), OFAConfig(stage_channels=(8, 8, 8),
                     head_channels=16), num_workers=1, cpus_per_worker=2, storage_path=sys.argv[1])
print(json.dumps({"threads": run.metrics["threads"], "ray": ray.is_initialized()}))
"""


@pytest.mark.slow
def test_train_supernet_on_its_own_ray_trains_with_its_cpus_and_shuts_ray_down(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    proc = subprocess.run([sys.executable, "-c", TRAIN_ALONE, str(tmp_path)], cwd=ROOT, env={**env, **ENV},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["threads"] == 2 and not out["ray"]  # cpus_per_worker's threads; the Ray it started is shut down


@pytest.mark.slow
def test_docs_ray_examples_run(cluster, tmp_path, monkeypatch):
    from tests.docs import python_blocks

    blocks = python_blocks(ROOT / "docs" / "ray.md")
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)  # examples write their runs/ here
    namespace: dict = {"__name__": "ray_docs"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/ray.md python block {i + 1}", "exec"), namespace)
    assert len(namespace["result"].trials) == 8 and len(nas.load(tmp_path / "runs" / "tune-driven").trials) == 6


DARTS_RUN = """
import sys
from nas.datasets import digits_splits
from nas.spaces.cell import NasBench201Space
from nas.darts import DartsOptions, search_darts
space = NasBench201Space(channels=4, cells_per_stage=1, stages=2)
data = {k: (x[:128], y[:128]) for k, (x, y) in digits_splits().items()}  # 2 batches of 32 per worker
options = DartsOptions(epochs=2, batch_size=32, retrain_epochs=1, a_lr=3e-2, track_eigenvalue=True)
search_darts(space, data, workdir=sys.argv[1], options=options, workers=2, ray_address=sys.argv[2])
"""


def checkpointed_epochs(run: Path) -> list[int]:
    """Epochs whose checkpoint Ray Train has registered for the run folder `run` (what a resumed fit starts
    from): read from its checkpoint manager's snapshot; [] before the first, or while one is being written."""
    try:
        snapshot = json.loads((run / "checkpoint_manager_snapshot.json").read_text())
    except (OSError, ValueError):
        return []
    return [int(r["metrics"]["epoch"]) for r in snapshot["checkpoint_results"]]


@pytest.mark.slow  # 40-90 s on 2 cores: the slowest tests of the default run (-m slow runs it)
def test_darts_on_two_ray_train_workers_agrees_and_survives_a_killed_driver(cluster, tmp_path):
    import torch

    from nas.darts import load_history

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", DARTS_RUN, str(straight), cluster.address], env=env, check=True,
                   timeout=600, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-c", DARTS_RUN, str(killed), cluster.address], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = killed / "ray-train" / "oneshot"  # search_darts's Ray Train storage folder and run name
    deadline = time.time() + 300
    while not checkpointed_epochs(run):  # wait for epoch 1's checkpoint to be registered, however long it takes
        assert proc.poll() is None, "the DARTS run ended before it could be killed"
        assert time.time() < deadline, "no epoch checkpoint registered within 300 s"
        time.sleep(0.05)
    proc.kill()  # the driver dies within one 0.05 s poll of epoch 1's checkpoint: during epoch 2, or after epoch 2
    # logged but before its checkpoint registered (then the resume drops that log line and runs epoch 2 again)
    proc.wait()
    assert not (killed / "oneshot.pt").exists()  # killed before the driver saved anything itself
    subprocess.run([sys.executable, "-c", DARTS_RUN, str(killed), cluster.address], env=env, check=True,
                   timeout=600, capture_output=True)
    logs = [[json.loads(line) for line in (killed / "ray-train" / f"derived-rank{r}.jsonl").read_text().splitlines()]
            for r in (0, 1)]
    assert [e["epoch"] for e in logs[0]] == [1, 2]  # resumed from epoch 1's checkpoint: epoch 2 ran once
    assert logs[0] == logs[1]  # the same architecture and alphas on both workers after every epoch
    history = load_history(killed)
    assert [r.derived for r in history] == [e["derived"] for e in logs[0]]
    assert [r.derived for r in load_history(straight)] == [r.derived for r in history]
    trials = nas.load(killed).trials
    assert len(trials) == 1 and trials[0].arch == history[-1].derived == nas.load(straight).trials[0].arch
    state = torch.load(killed / "oneshot.pt", weights_only=True)
    other = torch.load(straight / "oneshot.pt", weights_only=True)
    for k, v in state["supernet"].items():  # resuming reproduces the uninterrupted run's weights
        torch.testing.assert_close(v, other["supernet"][k])
    assert history[-1].eigenvalue is not None and np.isfinite(history[-1].eigenvalue)


TUNE_DRIVER = """
import sys, time
import ray
from ray import tune
from nas.objectives import Problem
from nas.ray.tune import StrategySearcher, search_header
from nas.spaces import Choice, Space
from nas.strategies import make_strategy

workdir, address, storage, mode = sys.argv[1:5]
space = Space(a=Choice(list(range(8))), b=Choice(list(range(8))), c=Choice([1, 2, 3]))


def trainable(config):
    time.sleep(0.3)
    a = config["arch"]
    return {"acc": a["a"] + 0.5 * a["b"] - 0.1 * a["c"], "lat": a["a"] * a["c"] + 0.1}


ray.init(address=address, log_to_driver=False)
if mode == "restore":
    tuner = tune.Tuner.restore(storage + "/driven", trainable, resume_unfinished=True, resume_errored=True)
else:
    problem = Problem.make({"acc": "max", "lat": "min"})
    strategy = make_strategy("evolution", space, problem, seed=3, population_size=4, sample_size=2)
    searcher = StrategySearcher(strategy, workdir=workdir, header=search_header(space, problem, "evolution", 3, 14))
    tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=14,
                                                              max_concurrent_trials=2),
                       run_config=tune.RunConfig(storage_path=storage, name="driven", verbose=0))
tuner.fit()
"""


def test_a_resumed_worker_drops_log_lines_of_work_after_its_checkpoint(tmp_path):
    from nas.ray.train import _trim_log

    log = tmp_path / "derived-rank0.jsonl"
    log.write_text("".join(json.dumps({"epoch": e, "derived": {"op": e}}) + "\n" for e in (1, 2, 3)))
    _trim_log(log, lambda line: line["epoch"] <= 1)  # resumed from epoch 1's checkpoint: epochs 2-3 run again
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1]
    _trim_log(log, lambda line: line["epoch"] <= 1)  # nothing to drop: the file is left as is
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1]
    with open(log, "a") as f:  # a worker killed while writing epoch 2's line
        f.write('{"epoch": 2, "deri')
    _trim_log(log, lambda line: line["epoch"] <= 1)
    assert log.read_text() == json.dumps({"epoch": 1, "derived": {"op": 1}}) + "\n"
    _trim_log(tmp_path / "absent.jsonl", lambda line: False)  # a first start has no log yet
    assert not (tmp_path / "absent.jsonl").exists()


def test_tuner_restore_after_a_killed_driver_loses_and_repeats_no_trial(cluster, tmp_path):
    workdir, storage = tmp_path / "run", str(tmp_path / "tune")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    args = [sys.executable, "-c", TUNE_DRIVER, str(workdir), cluster.address, storage]
    proc = subprocess.Popen(args + ["fit"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    experiment = Path(storage) / "driven"
    deadline = time.time() + 300
    # kill once 5 trials are journaled and Tune has saved an experiment checkpoint (what Tuner.restore needs)
    while time.time() < deadline and (not (workdir / "journal.jsonl").exists()
                                      or len(nas.load(workdir).trials) < 5
                                      or not any(experiment.glob("experiment_state-*.json"))):
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    before = nas.load(workdir).trials
    assert 5 <= len(before) < 14  # killed mid-search
    subprocess.run(args + ["restore"], env=env, check=True, timeout=600, capture_output=True)
    after = nas.load(workdir).trials
    assert [t.arch for t in after[:len(before)]] == [t.arch for t in before]  # nothing completed was lost
    ids = [t.extra["tune_trial_id"] for t in after]
    assert len(ids) == len(set(ids)) == 14  # every Tune trial journaled exactly once
    assert all(t.status == "ok" for t in after)


QUIET = '''
from nas.spaces import Space, Choice
space = Space(a=Choice(list(range(10))), b=Choice(list(range(4))))
objectives = {"acc": "max"}
def evaluate(arch):
    return {"acc": float(arch["a"] + arch["b"])}
'''


def test_a_ray_tune_run_prints_no_ray_or_tune_noise(tmp_path):
    """No token-auth warning and no Tune experiment box: just the search's own output."""
    (tmp_path / "quiet.py").write_text(QUIET)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.run([sys.executable, "-m", "nas.cli", "run", str(tmp_path / "quiet.py"), "--budget", "3",
                           "--seed", "0", "--executor", "ray-tune", "--workers", "1", "--workdir",
                           str(tmp_path / "wd")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Token authentication" not in proc.stderr + proc.stdout
    assert "Number of trials" not in proc.stdout and "View detailed results" not in proc.stdout
    assert "3 evaluations in the journal; seed 0" in proc.stdout
