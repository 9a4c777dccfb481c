"""The search loop on Ctrl-C (finished evaluations are journaled, not re-run), the evaluator `begin` hook, and
the error of a trial a scheduler stopped at a report lacking an objective."""

from __future__ import annotations

import pytest

import nas
from nas.errors import ConfigError
from nas.executors import Completed, Executor, Job, run_job
from nas.spaces import Architecture
from tests.test_search import toy_eval, toy_space


class Counted:
    """`toy_eval`, counting its calls per architecture."""

    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, arch):
        self.calls.append(Architecture(arch).id)
        return toy_eval(arch)


class Uncollected(Executor):
    """Evaluates each job when it is submitted; `wait()` returns the oldest result (all of them with `batch`),
    but its `interrupt_at`-th call raises KeyboardInterrupt instead: Ctrl-C while results are done but not yet
    collected, as when a trial finishes just before the interrupt. Deterministic: no threads, no sleeps."""

    def __init__(self, workers: int = 1, interrupt_at: int | None = None, batch: bool = False) -> None:
        self.workers, self.interrupt_at, self.batch = workers, interrupt_at, batch
        self.done: list[Completed] = []
        self.waits = 0

    def start(self, evaluate):
        self.evaluate = evaluate

    def free_slots(self) -> int:
        return self.workers - len(self.done)

    def submit(self, job: Job) -> None:
        metrics, error = run_job(self.evaluate, job.arch)
        self.done.append(Completed(job.arch, metrics, error, 1.0, 2.0, "fake"))

    def wait(self) -> list[Completed]:
        self.waits += 1
        if self.waits == self.interrupt_at:
            raise KeyboardInterrupt
        if self.batch:
            out, self.done = self.done, []
            return out
        return [self.done.pop(0)]

    def poll(self) -> list[Completed]:
        out, self.done = self.done, []
        return out


def run(workdir, evaluate, executor, strategy="evolution", budget=20, progress=None):
    return nas.search(toy_space(), evaluate, {"accuracy": "max", "latency_ms": "min"}, strategy=strategy,
                      budget=budget, seed=3, workdir=workdir, executor=executor, progress=progress)


def key(result):
    return [(t.arch_id, t.status, t.metrics) for t in result.trials]


@pytest.mark.parametrize("workers, strategy", [(1, "evolution"), (3, "random")])
def test_ctrl_c_journals_evaluations_that_finished_but_were_not_collected(tmp_path, workers, strategy):
    """They were pending in the snapshot, so the resumed search evaluated them again."""
    whole = run(tmp_path / "whole", Counted(), Uncollected(workers), strategy)
    evaluate = Counted()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", evaluate, Uncollected(workers, interrupt_at=7), strategy)
    assert len(nas.load(tmp_path / "cut").trials) == 6 + workers  # every finished evaluation is journaled
    resumed = run(tmp_path / "cut", evaluate, Uncollected(workers), strategy)
    assert len(evaluate.calls) == len(set(evaluate.calls)) == 20  # none evaluated twice
    assert key(resumed) == key(whole)


def test_ctrl_c_journals_the_rest_of_a_collected_batch(tmp_path):
    """Ctrl-C while the loop journaled the first of several completions `wait()` returned lost the others
    (evaluated again on resume)."""
    stopped = []

    def ctrl_c_once(trial, used, budget):
        if trial.number == 4 and not stopped:
            stopped.append(trial.number)
            raise KeyboardInterrupt

    whole = run(tmp_path / "whole", Counted(), Uncollected(3, batch=True), "random")
    evaluate = Counted()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", evaluate, Uncollected(3, batch=True), "random", progress=ctrl_c_once)
    assert len(nas.load(tmp_path / "cut").trials) == 6  # trial 4 and the one collected with it
    resumed = run(tmp_path / "cut", evaluate, Uncollected(3, batch=True), "random")
    assert len(evaluate.calls) == len(set(evaluate.calls)) == 20
    assert key(resumed) == key(whole)


def test_an_executor_without_poll_leaves_the_finished_evaluation_pending(tmp_path):
    class NoPoll(Uncollected):
        def poll(self):
            return Executor.poll(self)

    evaluate = Counted()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", evaluate, NoPoll(interrupt_at=5))
    assert len(nas.load(tmp_path / "cut").trials) == 4  # the finished one stays pending and runs again
    assert nas.SimulatedClockExecutor(workers=2).poll() == []


# ------------------------------------------------------------------------------------------- the begin hook
class Hooked:
    """An evaluator with state: `begin` notes each call; each result carries how many trials were journaled."""

    def __init__(self):
        self.began: list[tuple[object, list[str]]] = []
        self.offset: float | None = None

    def begin(self, workdir, trials):
        self.began.append((workdir, [t.arch_id for t in trials]))
        self.offset = float(len(trials))

    def __call__(self, arch):
        assert self.offset is not None, "evaluated before begin()"
        return {**toy_eval(arch), "offset": self.offset}


def test_begin_is_called_once_per_run_with_the_workdir_and_the_journaled_trials(tmp_path):
    hooked = Hooked()
    plain = lambda arch: {"other": 1.0}  # noqa: E731 - an evaluator without the hook works as before
    first = run(tmp_path, [hooked, plain], "local", budget=4)
    assert hooked.began == [(tmp_path, [])]
    assert {t.metrics["offset"] for t in first.trials} == {0.0}
    more = run(tmp_path, [hooked, plain], "local", budget=7)  # resumed: told what the journal holds
    assert hooked.began[1] == (tmp_path, [t.arch_id for t in first.trials])
    assert [t.metrics["offset"] for t in more.trials[4:]] == [4.0] * 3


def test_a_cheap_evaluators_hook_is_called_and_one_object_given_twice_hears_once():
    from nas.evaluators import Evaluator, begin_search

    hooked = Hooked()

    def latency(arch):
        return {"latency_ms": toy_eval(arch)["latency_ms"]}

    latency.begin = hooked.begin  # type: ignore[attr-defined]
    nas.search(toy_space(), [nas.cheap(latency), lambda a: {"accuracy": toy_eval(a)["accuracy"]}],
               {"accuracy": "max"}, strategy="random", budget=2, seed=0)
    assert hooked.began == [(None, [])]  # no workdir: None, and nothing journaled
    twice = Hooked()
    begin_search([Evaluator(twice, cheap=True), Evaluator(twice)], None, [])
    assert twice.began == [(None, [])]


def test_worker_processes_get_the_evaluator_as_begin_left_it(tmp_path):
    """`begin` runs in the driver before the executor copies the evaluator into its workers."""
    first = run(tmp_path, Hooked(), {"name": "processes", "workers": 2}, strategy="random", budget=3)
    assert {t.metrics["offset"] for t in first.trials} == {0.0}
    more = run(tmp_path, Hooked(), {"name": "processes", "workers": 2}, strategy="random", budget=5)
    assert [t.metrics["offset"] for t in more.trials[3:]] == [3.0, 3.0]


# --------------------------------------------------------------------------- a scheduler stopped the trial
class Stopped(Executor):
    """Returns each evaluation as a scheduler-stopped trial's last report: only `accuracy`, after 2 reports."""

    def start(self, evaluate):
        self.evaluate, self.queue = evaluate, []

    def free_slots(self):
        return 1 - len(self.queue)

    def submit(self, job):
        self.queue.append(job)

    def wait(self):
        job = self.queue.pop(0)
        metrics = self.evaluate(job.arch)
        return [Completed(job.arch, {"accuracy": metrics["accuracy"], "epochs": 2.0}, None, 1.0, 2.0, "tune",
                          stopped_after=2)]


def test_a_trial_stopped_by_a_scheduler_without_every_objective_says_so(tmp_path):
    stopped = "a scheduler or pruner stopped this trial after 2 report(s), and its last report lacks 'latency_ms'"
    must = "every report() must carry every objective and constraint metric"
    with pytest.raises(ConfigError) as first:  # on the first result: not taken for a misnamed objective
        run(tmp_path / "first", toy_eval, Stopped(), budget=3)
    assert stopped in str(first.value) and must in str(first.value) and "misnamed" not in str(first.value)
    trial = nas.load(tmp_path / "first").trials[0]
    assert trial.status == "failed" and stopped in trial.error

    class AfterOneFull(Stopped):
        def wait(self):
            if not hasattr(self, "full"):
                self.full = True
                job = self.queue.pop(0)
                return [Completed(job.arch, dict(self.evaluate(job.arch)), None, 1.0, 2.0, "tune")]
            return super().wait()

    result = run(tmp_path / "later", toy_eval, AfterOneFull(), budget=3)
    assert [t.status for t in result.trials] == ["ok", "failed", "failed"]
    assert all(stopped in t.error and must in t.error for t in result.trials[1:])


def test_the_tune_executor_marks_a_trial_the_scheduler_stopped():
    pytest.importorskip("ray")
    from nas.ray.tune import RayTuneExecutor

    ex = RayTuneExecutor()
    arch = Architecture({"a": 1})
    last_report = {"metrics": {"acc": 0.5, "epochs": 3.0}, "error": None, "started": 1.0, "finished": 2.0,
                   "worker": "w", "final": False}
    ex._in_flight = 3
    ex._completed("t1", arch, {"acc": 0.5, "nas": last_report}, False)
    ex._completed("t2", arch, {"acc": 0.7, "nas": {**last_report, "final": True}}, False)
    ex._completed("t3", arch, {f"nas/{k}": v for k, v in last_report.items() if k != "metrics"}
                  | {"nas/metrics/acc": 0.5, "nas/metrics/epochs": 2.0}, False)  # as Tune flattens it
    done = ex.poll()
    assert [c.stopped_after for c in done] == [3, None, 2]
    assert ex.poll() == [] and ex._in_flight == 0


def test_ctrl_c_in_a_progress_callback_leaves_no_journaled_trial_untold(tmp_path):
    """The trial was journaled, then the callback's Ctrl-C skipped telling the strategy, and the snapshot
    claimed it: the resumed strategy never heard of it, and its later proposals differed."""
    def search(workdir, progress=None):
        return nas.search(toy_space(), toy_eval, {"accuracy": "max", "latency_ms": "min"}, strategy="evolution",
                          strategy_options={"population_size": 4, "sample_size": 2}, budget=24, seed=5,
                          workdir=workdir, progress=progress)

    def ctrl_c_at_6(trial, used, budget):
        if trial.number == 6:
            raise KeyboardInterrupt

    whole = search(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path / "cut", ctrl_c_at_6)
    assert key(search(tmp_path / "cut")) == key(whole)


def test_the_process_pool_polls_finished_evaluations_without_waiting():
    """`ProcessExecutor.poll` hands back what its workers finished (the search journals it on Ctrl-C instead of
    re-running it on resume), once each, and nothing while nothing has finished."""
    import concurrent.futures

    from nas.processes import ProcessExecutor

    space = toy_space()
    archs = [space.default(), space.validate({"depth": 1, "blocks": [{"k": 5, "w": 2}], "act": "gelu"})]
    executor = ProcessExecutor(workers=2)
    executor.start(toy_eval)
    try:
        assert executor.poll() == []
        for arch in archs:
            executor.submit(Job(arch))
        concurrent.futures.wait(list(executor._running))  # both done, not collected
        got = executor.poll()
        assert sorted(c.arch.id for c in got) == sorted(a.id for a in archs)
        assert all(c.metrics == toy_eval(c.arch) and c.error is None for c in got)
        assert executor.poll() == [] and executor.free_slots() == 2
    finally:
        executor.close()
