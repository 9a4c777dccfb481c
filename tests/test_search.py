"""The search loop: budget, constraints, cheap filtering, failures, bad input, exact resume after kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import nas
from nas.errors import ConfigError, JournalError, NASError
from nas.objectives import Problem
from nas.spaces import Choice, Integer, Repeat, Space
from nas.strategies import STRATEGIES, Deduplicate, TrialResult, make_strategy


def toy_space() -> Space:
    return Space(depth=Choice([1, 2, 3]), blocks=Repeat("depth", k=Choice([3, 5, 7]), w=Integer(1, 4)),
                 act=Choice(["relu", "gelu"]))


def toy_eval(arch):
    acc = sum(b["k"] * b["w"] for b in arch["blocks"]) + (arch["act"] == "gelu")
    lat = sum(b["k"] + 2 * b["w"] for b in arch["blocks"])
    return {"accuracy": float(acc), "latency_ms": float(lat)}


class Counter:
    def __init__(self, fn=toy_eval):
        self.calls: list[str] = []
        self.fn = fn

    def __call__(self, arch):
        self.calls.append(nas.spaces.Architecture(arch).id)
        return self.fn(arch)


def _builds_on_a_plain_space(name: str) -> bool:
    """Strategies that need more than a plain space (successive halving needs a FidelitySpace) are tested apart."""
    try:
        make_strategy(name, toy_space(), Problem.make({"accuracy": "max", "latency_ms": "min"}), seed=0)
    except ConfigError:
        return False
    return True


SLOW_STRATEGIES = {"gp"}  # Optuna's GP sampler refits a Gaussian process on every ask: seconds each
GENERIC = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_STRATEGIES else n
           for n in sorted(STRATEGIES) if _builds_on_a_plain_space(n)]


@pytest.mark.parametrize("strategy", GENERIC)
def test_budget_bounds_evaluate_calls_and_no_architecture_is_evaluated_twice(strategy):
    ev = Counter()
    r = nas.search(toy_space(), ev, {"accuracy": "max", "latency_ms": "min"}, strategy=strategy, budget=40, seed=1)
    assert len(ev.calls) == 40 == len(r.trials)
    assert len(set(ev.calls)) == 40
    assert all(t.status == "ok" for t in r.trials)


def test_small_space_is_exhausted_without_repeats():
    space = Space(a=Choice([1, 2, 3]), b=Choice(["x", "y"]))
    ev = Counter(lambda a: {"v": float(a["a"])})
    r = nas.search(space, ev, {"v": "max"}, strategy="random", budget=50, seed=0)
    assert sorted(ev.calls) == sorted(a.id for a in space)  # each of the 6 exactly once
    assert r.stop_reason == "exhausted"
    assert r.best().metrics["v"] == 3.0


def test_constrained_single_objective_reports_only_feasible_best():
    r = nas.search(toy_space(), toy_eval, {"accuracy": "max"}, constraints=["latency_ms <= 25"],
                   strategy="evolution", budget=60, seed=0)
    best = r.best()
    assert best.metrics["latency_ms"] <= 25
    assert any(t.metrics["latency_ms"] > 25 for t in r.trials)  # infeasible ones were seen, not reported
    assert max(t.metrics["accuracy"] for t in r.trials) > best.metrics["accuracy"]
    assert all(t.metrics["latency_ms"] <= 25 for t in r.pareto_front())


def test_cheap_constraints_are_checked_before_expensive_evaluation():
    expensive = Counter(lambda a: {"accuracy": toy_eval(a)["accuracy"]})
    lat = nas.cheap(lambda a: {"latency_ms": toy_eval(a)["latency_ms"]})
    r = nas.search(toy_space(), [lat, expensive], {"accuracy": "max"}, constraints=["latency_ms <= 20"],
                   strategy="random", budget=30, seed=0)
    infeasible = [t for t in r.trials if t.status == "infeasible"]
    assert infeasible and all(t.metrics["latency_ms"] > 20 for t in infeasible)
    assert len(expensive.calls) == 30  # the budget counts expensive evaluations only
    assert {t.arch_id for t in r.trials if t.status == "ok"} == set(expensive.calls)
    assert not set(expensive.calls) & {t.arch_id for t in infeasible}
    assert all(t.metrics["latency_ms"] <= 20 for t in r.trials if t.status == "ok")


@pytest.mark.parametrize("kwargs, message", [
    (dict(strategy="annealing"), "unknown strategy 'annealing'; available: "),
    (dict(constraints=["energy_mj <= 3"]), "constraint 'energy_mj <= 3' names metric 'energy_mj', which evaluate did not return"),
    (dict(objectives={"acc": "max"}), "objective 'acc' is not among the metrics evaluate returned"),
    (dict(objectives={"accuracy": "up"}), "objective 'accuracy': direction must be 'min' or 'max'"),
    (dict(constraints=["latency_ms < twenty"]), "constraint 'latency_ms < twenty' is not of the form"),
    (dict(budget=0), "budget: expected a positive int"),
    (dict(strategy="evolution", strategy_options={"popsize": 3}), "strategy 'evolution' has no option 'popsize'"),
    (dict(space={"a": [1, 2]}), "space: expected a nas.spaces.Space"),
])
def test_bad_input_gives_one_clear_error(kwargs, message):
    args = dict(space=toy_space(), evaluate=toy_eval, objectives={"accuracy": "max"}, budget=5)
    args.update(kwargs)
    with pytest.raises(NASError) as e:
        nas.search(**args)
    assert message in str(e.value)


def test_failing_evaluations_are_recorded_and_a_broken_evaluate_stops_early():
    def flaky(arch):
        if arch["blocks"][0]["k"] == 7:
            raise RuntimeError("out of memory")
        return toy_eval(arch)

    r = nas.search(toy_space(), flaky, {"accuracy": "max"}, strategy="random", budget=40, seed=0)
    failed = [t for t in r.trials if t.status == "failed"]
    assert failed and all("RuntimeError: out of memory" in t.error for t in failed)
    assert all(t.architecture["blocks"][0]["k"] == 7 for t in failed)
    assert r.best() is not None and len(r.trials) == 40
    with pytest.raises(NASError, match="the first 3 evaluations all failed; the last with: ZeroDivisionError"):
        nas.search(toy_space(), lambda a: 1 / 0, {"accuracy": "max"}, budget=10)


def test_a_resume_whose_evaluate_is_broken_stops_after_three_failures_too(tmp_path):
    """Fail-fast holds per run: a resume in a broken environment (data gone, out of memory) spent the rest of its
    budget on failures, which deduplication then never evaluated again."""
    nas.search(toy_space(), toy_eval, {"accuracy": "max"}, budget=10, seed=0, workdir=tmp_path)

    def missing(arch):
        raise FileNotFoundError("/data/train.npy")

    with pytest.raises(NASError, match="the first 3 evaluations of this run all failed; the last with: FileNotFound"):
        nas.search(toy_space(), missing, {"accuracy": "max"}, budget=60, seed=0, workdir=tmp_path)
    assert [t.status for t in nas.load(tmp_path).trials] == ["ok"] * 10 + ["failed"] * 3
    healed = nas.search(toy_space(), toy_eval, {"accuracy": "max"}, budget=60, seed=0, workdir=tmp_path)
    assert healed.used == 60 and sum(t.status == "failed" for t in healed.trials) == 3


@pytest.mark.parametrize("strategy", GENERIC)
def test_state_dict_round_trips_through_json_and_continues_identically(strategy):
    space, problem = toy_space(), Problem.make({"accuracy": "max", "latency_ms": "min"})
    a = Deduplicate(make_strategy(strategy, space, problem, seed=3))
    for _ in range(30):
        for arch in a.ask(1):
            a.tell(arch, TrialResult(toy_eval(arch)))
    b = Deduplicate(make_strategy(strategy, space, problem, seed=99))
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for _ in range(20):
        xa, xb = a.ask(1), b.ask(1)
        assert [x.id for x in xa] == [x.id for x in xb]
        for x in xa:
            a.tell(x, TrialResult(toy_eval(x)))
            b.tell(x, TrialResult(toy_eval(x)))


@pytest.mark.parametrize("drop_snapshot", [False, True])
@pytest.mark.parametrize("strategy", GENERIC)
def test_resuming_a_workdir_continues_exactly(tmp_path, strategy, drop_snapshot):
    objectives = {"accuracy": "max", "latency_ms": "min"}
    full = nas.search(toy_space(), toy_eval, objectives, strategy=strategy, budget=50, seed=7)
    ev = Counter()
    nas.search(toy_space(), ev, objectives, strategy=strategy, budget=23, seed=7, workdir=tmp_path, snapshot_every=6, snapshot_interval_s=0)
    assert json.loads((tmp_path / "strategy.json").read_text())["after_trial"] == 22
    if drop_snapshot:  # no snapshot at all: the whole journal is replayed through ask/tell
        (tmp_path / "strategy.json").unlink()
    resumed = nas.search(toy_space(), ev, objectives, strategy=strategy, budget=50, seed=7, workdir=tmp_path)
    assert [t.arch_id for t in resumed.trials] == [t.arch_id for t in full.trials]
    assert len(ev.calls) == 50 and len(set(ev.calls)) == 50


def test_resume_replays_trials_journaled_after_the_last_snapshot(tmp_path):
    objectives = {"accuracy": "max"}
    full = nas.search(toy_space(), toy_eval, objectives, strategy="evolution", budget=40, seed=2,
                      strategy_options={"population_size": 10, "sample_size": 3})
    ev = Counter()
    opts = {"population_size": 10, "sample_size": 3}
    nas.search(toy_space(), ev, objectives, strategy="evolution", budget=12, seed=2, workdir=tmp_path,
               snapshot_every=5, snapshot_interval_s=0, strategy_options=opts)
    nas.search(toy_space(), ev, objectives, strategy="evolution", budget=25, seed=2, workdir=tmp_path,
               snapshot_every=5, snapshot_interval_s=0, strategy_options=opts)
    # roll the snapshot back to an older one, as if the process died between snapshots
    state_at_10 = nas.search(toy_space(), toy_eval, objectives, strategy="evolution", budget=10, seed=2,
                             workdir=tmp_path / "ref", strategy_options=opts)
    with nas.store.JournalWriter(tmp_path) as j:
        j.save_snapshot(nas.store.Journal(tmp_path / "ref").load_snapshot())
    resumed = nas.search(toy_space(), ev, objectives, strategy="evolution", budget=40, seed=2, workdir=tmp_path,
                         strategy_options=opts)
    assert len(state_at_10.trials) == 10
    assert [t.arch_id for t in resumed.trials] == [t.arch_id for t in full.trials]
    assert len(ev.calls) == 40 == len(set(ev.calls))


def test_resume_with_different_settings_is_refused(tmp_path):
    nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=5, workdir=tmp_path)
    with pytest.raises(JournalError, match="holds a different search: its strategy is 'random'"):
        nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="evolution", budget=5, workdir=tmp_path)
    other = tmp_path / "evolution"
    nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="evolution", budget=5, workdir=other,
               strategy_options={"population_size": 10})
    with pytest.raises(JournalError, match="its option population_size is 10, this run's is 12") as e:
        nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="evolution", budget=5, workdir=other,
                   strategy_options={"population_size": 12})
    assert "{" not in str(e.value)  # the option named, not both option dicts


def test_simulated_clock_executor_is_parallel_and_deterministic():
    def run():
        ex = nas.SimulatedClockExecutor(workers=4, duration=lambda arch, m: m["latency_ms"])
        return nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="evolution", budget=60, seed=4,
                          executor=ex), ex

    (a, ex), (b, _) = run(), run()
    assert [t.arch_id for t in a.trials] == [t.arch_id for t in b.trials]
    finished = [t.finished for t in a.trials]
    assert finished == sorted(finished)  # journal order is completion order on the simulated clock
    total = sum(t.duration for t in a.trials)
    assert ex.clock < total / 2  # four workers overlap their evaluations
    assert max(sum(1 for u in a.trials if u.started <= t.started < u.finished) for t in a.trials) <= 4


def test_a_search_with_warm_start_and_enqueue_resumes_exactly_without_a_snapshot(tmp_path):
    """Killed before its first snapshot, a rerun told the enqueued trials before the warm-start ones, the reverse
    of the run that wrote the journal, and evolution then proposed other architectures."""
    from nas.store import SNAPSHOT

    source = tmp_path / "source"
    nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="evolution", strategy_options={"population_size": 8},
               budget=20, seed=3, workdir=source)
    seen = {t.arch_id for t in nas.load(source).trials}
    rng, queue = np.random.default_rng(123), []
    while len(queue) < 3:
        a = toy_space().sample(rng)
        if a.id not in seen and a.to_dict() not in queue:
            queue.append(a.to_dict())

    def run(workdir, budget):
        return nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="evolution",
                          strategy_options={"population_size": 8}, budget=budget, seed=4, workdir=workdir,
                          warm_start=source, enqueue=queue, snapshot_every=10**6)

    whole = run(tmp_path / "whole", 30)
    run(tmp_path / "killed", 12)
    (tmp_path / "killed" / SNAPSHOT).unlink()  # as if killed before the first snapshot
    resumed = run(tmp_path / "killed", 30)
    assert [t.arch_id for t in resumed.trials] == [t.arch_id for t in whole.trials]


def test_a_resumed_search_continues_the_simulated_clock(tmp_path):
    """Extended in its workdir, the clock goes on from the journal's last finish (it restarted at 0)."""
    def run(budget):
        ex = nas.SimulatedClockExecutor(workers=2, duration=lambda arch, m: m["latency_ms"])
        return nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=budget, seed=4,
                          executor=ex, workdir=tmp_path)

    first = run(20)
    end = max(t.finished for t in first.trials)
    later = run(40).trials[len(first.trials):]
    assert later and min(t.started for t in later) >= end
    finished = [t.finished for t in nas.load(tmp_path).trials]
    assert finished == sorted(finished)


class InterruptOnCall:
    """Raises KeyboardInterrupt (Ctrl-C) on its `at`-th call, once; otherwise calls `fn`."""

    def __init__(self, fn, at: int):
        self.fn, self.at, self.calls = fn, at, 0

    def __call__(self, arch):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.fn(arch)


def _ids(result):
    return [(t.arch_id, t.status) for t in result.trials]


@pytest.mark.parametrize("where", ["cheap", "simulated"])
def test_ctrl_c_between_ask_and_submit_loses_no_architecture(tmp_path, where):
    # Ctrl-C in the cheap stage (or in a simulated clock's evaluation, which runs inside submit) lost the asked
    # architecture: not pending in the snapshot, yet in flight in the strategy, so never evaluated on resume.
    def run(workdir, lat, ev):
        return nas.search(toy_space(), [nas.cheap(lat), ev], {"accuracy": "max"}, constraints=["latency_ms <= 30"],
                          strategy="evolution", budget=25, seed=2, workdir=workdir,
                          executor=nas.SimulatedClockExecutor(workers=1))

    lat = lambda a: {"latency_ms": toy_eval(a)["latency_ms"]}  # noqa: E731
    acc = lambda a: {"accuracy": toy_eval(a)["accuracy"]}  # noqa: E731
    whole = run(tmp_path / "whole", lat, acc)
    cut_lat, cut_acc = (InterruptOnCall(lat, 9), acc) if where == "cheap" else (lat, InterruptOnCall(acc, 9))
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", cut_lat, cut_acc)
    resumed = run(tmp_path / "cut", cut_lat, cut_acc)
    assert _ids(resumed) == _ids(whole)


def test_ctrl_c_with_several_simulated_workers_resumes_exactly(tmp_path):
    # the jobs in flight restarted at the journal's last finish on other workers: order and clock changed
    def run(workdir, progress=None):
        ex = nas.SimulatedClockExecutor(workers=3, duration=lambda arch, m: m["latency_ms"])
        return nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="evolution", budget=30, seed=1,
                          executor=ex, workdir=workdir, progress=progress)

    def stop_after_12(trial, used, budget):
        if trial.number == 11:
            raise KeyboardInterrupt

    whole = run(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", stop_after_12)
    resumed = run(tmp_path / "cut")
    key = lambda r: [(t.arch_id, t.started, t.finished, t.worker) for t in r.trials]  # noqa: E731
    assert key(resumed) == key(whole)


class CopyWorkdirOnCall:
    """On its `at`-th call, copies the workdir to `to`: what a hard kill (SIGKILL, OOM) at that instant leaves (the
    journal is fsync'd line by line, the snapshot replaced atomically); otherwise calls `fn`."""

    def __init__(self, fn, at: int, workdir: Path, to: Path):
        self.fn, self.at, self.workdir, self.to, self.calls = fn, at, workdir, to, 0

    def __call__(self, arch):
        self.calls += 1
        if self.calls == self.at:
            import shutil
            shutil.copytree(self.workdir, self.to)
        return self.fn(arch)


@pytest.mark.parametrize("variant", ["plain", "cheap_enqueue_failures"])
def test_a_hard_kill_with_several_simulated_workers_resumes_exactly(tmp_path, variant):
    """Killed with jobs in flight after its last snapshot, the resume told the journaled trials as the strategy
    re-asked them (not as they finished) and restarted the in-flight jobs at the last finish: other trials, another
    clock. Every kill point of the run is tried; each resume equals the uninterrupted search, start and finish times
    and workers included."""
    lat = lambda a: {"latency_ms": toy_eval(a)["latency_ms"]}  # noqa: E731

    def acc(arch):
        m = toy_eval(arch)
        if variant != "plain" and int(m["accuracy"]) % 11 == 0:
            raise RuntimeError("diverged")
        return {"accuracy": m["accuracy"]} if variant != "plain" else m

    rng, enqueue = np.random.default_rng(9), []
    while variant != "plain" and len(enqueue) < 4:
        a = toy_space().sample(rng).to_dict()
        enqueue += [a] if a not in enqueue else []

    def run(workdir, ev):
        ex = nas.SimulatedClockExecutor(workers=3, duration=lambda arch, m: toy_eval(arch)["latency_ms"])
        return nas.search(toy_space(), [nas.cheap(lat), ev] if variant != "plain" else ev, {"accuracy": "max"},
                          constraints=["latency_ms <= 40"] if variant != "plain" else [], strategy="evolution",
                          budget=30, seed=1, executor=ex, workdir=workdir, snapshot_every=4, snapshot_interval_s=0,
                          strategy_options={"population_size": 8}, enqueue=enqueue or None)

    def key(r):  # a cheap-stage trial is timed on the wall clock
        return [(t.arch_id, t.status, t.worker) + ((t.started, t.finished) if t.worker.startswith("sim-") else ())
                for t in r.trials]

    whole = key(run(tmp_path / "whole", acc))
    assert {"infeasible", "failed", "ok"} <= {t[1] for t in whole} or variant == "plain"
    for at in range(1, 1 + sum(t[2].startswith("sim-") for t in whole)):
        killed = tmp_path / f"killed{at}"
        run(tmp_path / f"run{at}", CopyWorkdirOnCall(acc, at, tmp_path / f"run{at}", killed))
        assert killed.exists() and key(run(killed, acc)) == whole, f"killed at evaluation {at}"

def test_a_duration_metric_the_evaluation_lacks_is_an_error_naming_it():
    ex = nas.SimulatedClockExecutor(duration="latncy_ms")  # silently charged 1 s per evaluation
    with pytest.raises(ConfigError, match="duration 'latncy_ms' is not a metric of the evaluation; it returned "
                                          "accuracy, latency_ms"):
        nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=5, seed=0, executor=ex)


def test_a_duration_function_times_a_failed_evaluation_as_one_second_and_names_its_own_failure():
    """A failed evaluation has no metrics: `lambda arch, m: m["latency_ms"]` raised KeyError out of the search,
    with nothing journaled; it is charged 1 s, as with a metric name. A function failing on a result is named."""
    def evaluate(arch):
        if toy_eval(arch)["accuracy"] % 5 < 1:
            raise RuntimeError("out of memory")
        return toy_eval(arch)

    ex = nas.SimulatedClockExecutor(workers=2, duration=lambda arch, m: m["latency_ms"])
    r = nas.search(toy_space(), evaluate, {"accuracy": "max"}, strategy="random", budget=20, seed=0, executor=ex)
    failed = [t for t in r.trials if t.status == "failed"]
    assert r.used == 20 and failed and all(t.finished - t.started == 1.0 for t in failed)
    ex = nas.SimulatedClockExecutor(duration=lambda arch, m: m["latency"])
    with pytest.raises(ConfigError, match=r"duration function failed on architecture \w+ with metrics accuracy, "
                                          r"latency_ms: KeyError: 'latency'"):
        nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=3, seed=0, executor=ex)


@pytest.mark.parametrize("duration", ["seconds", lambda arch, m: m["seconds"]])
def test_a_nan_or_negative_duration_is_charged_as_a_failed_evaluation_once_warned(duration, caplog):
    """A failed run recorded as nan (or a negative time) made its worker's simulated clock NaN for every later trial."""
    def evaluate(arch):
        m = toy_eval(arch)
        bad = {0: float("nan"), 1: float("-inf"), 2: -3.0}.get(int(m["accuracy"]) % 7)
        return {**m, "seconds": m["latency_ms"] if bad is None else bad}

    with caplog.at_level("WARNING", logger="nas.executors"):
        r = nas.search(toy_space(), evaluate, {"accuracy": "max"}, strategy="random", budget=40, seed=0,
                       executor=nas.SimulatedClockExecutor(workers=2, duration=duration))
    charged = [t for t in r.trials if int(t.metrics["accuracy"]) % 7 in (0, 1, 2)]
    assert charged and all(t.finished - t.started == 1.0 for t in charged)
    assert all(np.isfinite([t.started, t.finished]).all() for t in r.trials)
    warned = [rec.getMessage() for rec in caplog.records if "charged 1 simulated second" in rec.getMessage()]
    assert len(warned) == 1 and ("metric 'seconds'" in warned[0]) == isinstance(duration, str)
    with pytest.raises(ConfigError, match="duration must be a finite number"):
        nas.SimulatedClockExecutor(duration=float("nan"))

KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import nas
    from nas.spaces import Choice, Integer, Repeat, Space
    space = Space(depth=Choice([1, 2, 3]), blocks=Repeat("depth", k=Choice([3, 5, 7]), w=Integer(1, 4)),
                  act=Choice(["relu", "gelu"]))
    def evaluate(arch):
        time.sleep(0.01)
        with open(sys.argv[2], "a") as f:
            f.write(nas.spaces.Architecture(arch).id + "\\n")
        acc = sum(b["k"] * b["w"] for b in arch["blocks"]) + (arch["act"] == "gelu")
        return {"accuracy": float(acc), "latency_ms": float(sum(b["k"] for b in arch["blocks"]))}
    executor = {"name": "processes", "workers": 2} if sys.argv[4] == "processes" else "local"
    nas.search(space, evaluate, {"accuracy": "max", "latency_ms": "min"}, strategy=sys.argv[3], budget=120,
               seed=5, workdir=sys.argv[1], snapshot_every=7, snapshot_interval_s=0, executor=executor)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.parametrize("strategy, executor", [("evolution", "local"), ("nsga2", "local"),
                                                ("evolution", "processes")])
def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path, strategy, executor):
    """Kill the driver anywhere; every completed trial stays, none repeats. In-process, the resumed search is
    the uninterrupted one, trial for trial; with two worker processes (completion order depends on timing)
    the workers die with their driver, and the journal ends with 120 distinct trials."""
    script = tmp_path / "search.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def run(workdir: Path, calls: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(workdir), str(calls), strategy, executor],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    reference: list[str] = []
    if executor == "local":
        ref = run(tmp_path / "ref", tmp_path / "ref_calls")
        assert ref.wait(timeout=120) == 0, ref.stderr.read().decode()
        reference = [t.arch_id for t in nas.load(tmp_path / "ref").trials]
        assert len(reference) == 120

    rng = np.random.default_rng(0)
    workdir, calls, kills = tmp_path / "run", tmp_path / "calls", 0
    journal = workdir / "journal.jsonl"
    seen_before: list[str] = []
    for attempt in range(40):
        proc = run(workdir, calls)
        # kill after a random number of new trials plus a random few milliseconds: anywhere in the loop,
        # including mid-write of the journal or of a snapshot
        target = len(seen_before) + int(rng.integers(3, 30))
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            if journal.exists() and journal.read_bytes().count(b"\n") - 1 >= target:
                break
            time.sleep(0.002)
        time.sleep(float(rng.uniform(0, 0.03)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        loaded = nas.load(workdir).trials
        now = [t.arch_id for t in loaded]
        assert now[: len(seen_before)] == seen_before  # completed trials are never lost or rewritten
        seen_before = now
        workers = {int(t.worker.split("-")[1]) for t in loaded if t.worker.startswith("process-")}
        deadline = time.time() + 30
        while any(_alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.05)  # the kernel kills the workers of a killed driver (PR_SET_PDEATHSIG)
        assert not any(_alive(pid) for pid in workers), "a worker process outlived its driver"
        if proc.returncode == 0:
            break
    assert proc.returncode == 0 and kills >= 3
    final = [t.arch_id for t in nas.load(workdir).trials]
    assert len(final) == len(set(final)) == 120
    if reference:
        assert final == reference  # same trials in the same order as an uninterrupted run


SIM_KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import nas
    from nas.spaces import Choice, Integer, Repeat, Space
    space = Space(depth=Choice([1, 2, 3]), blocks=Repeat("depth", k=Choice([3, 5, 7]), w=Integer(1, 4)),
                  act=Choice(["relu", "gelu"]))
    calls = [0]
    def evaluate(arch):
        calls[0] += 1
        if calls[0] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
        acc = sum(b["k"] * b["w"] for b in arch["blocks"]) + (arch["act"] == "gelu")
        return {"accuracy": float(acc), "latency_ms": float(sum(b["k"] + 2 * b["w"] for b in arch["blocks"]))}
    nas.search(space, evaluate, {"accuracy": "max"}, strategy="evolution", budget=40, seed=3, workdir=sys.argv[1],
               executor=nas.SimulatedClockExecutor(workers=4, duration="latency_ms"), snapshot_every=5,
               snapshot_interval_s=0)
""")


def test_a_sigkilled_search_on_the_simulated_clock_resumes_exactly(tmp_path):
    """SIGKILL with four simulated workers busy: the resumed search is the uninterrupted one, clock included."""
    script = tmp_path / "search.py"
    script.write_text(SIM_KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    killed = subprocess.run([sys.executable, str(script), str(tmp_path / "cut"), "23"], env=env)
    assert killed.returncode == -signal.SIGKILL

    def run(workdir):
        return nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="evolution", budget=40, seed=3,
                          workdir=workdir, executor=nas.SimulatedClockExecutor(workers=4, duration="latency_ms"))

    assert 0 < len(nas.load(tmp_path / "cut").trials) < 22
    key = lambda r: [(t.arch_id, t.started, t.finished, t.worker) for t in r.trials]  # noqa: E731
    assert key(run(tmp_path / "cut")) == key(run(tmp_path / "whole"))

def test_isomorphic_twins_are_evaluated_once(cora):
    space = cora.space
    a = {"link": "0-0-1-2", "op1": "gcn", "op2": "gat", "op3": "sage", "op4": "fc"}
    twin = {"link": "0-0-1-2", "op1": "gat", "op2": "gcn", "op3": "fc", "op4": "sage"}  # the two branches swapped
    skip = {"link": "0-1-2-3", "op1": "gcn", "op2": "skip", "op3": "gat", "op4": "fc"}  # skip contracted away
    skip_twin = {"link": "0-1-2-3", "op1": "gcn", "op2": "gat", "op3": "skip", "op4": "fc"}
    assert space.canonical_key(a) == space.canonical_key(twin) != space.canonical_key(skip)
    assert space.canonical_key(skip) == space.canonical_key(skip_twin)
    assert cora(a) == cora(twin) and cora(skip) == cora(skip_twin)  # the table agrees they are one network
    ev = Counter(cora)
    r = nas.search(space, ev, {"valid_acc": "max"}, strategy="evolution", budget=300, seed=0)
    keys = [space.canonical_key(t.arch) for t in r.trials]
    assert len(keys) == len(set(keys)) == 300 == len(ev.calls)


def test_resume_records_the_raised_budget(tmp_path):
    nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=5, workdir=tmp_path)
    nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=9, workdir=tmp_path)
    loaded = nas.load(tmp_path)
    assert loaded.config["budget"] == 9 and loaded.config["resumed"] == 1
    assert len(loaded.trials) == 9


def test_simulated_workers_are_labelled_by_slot():
    ex = nas.SimulatedClockExecutor(workers=3, duration=lambda arch, m: 1.0 + m["latency_ms"] % 3)
    r = nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=30, seed=0, executor=ex)
    assert {t.worker for t in r.trials} == {"sim-0", "sim-1", "sim-2"}
    for w in ("sim-0", "sim-1", "sim-2"):  # one job at a time per worker
        spans = sorted((t.started, t.finished) for t in r.trials if t.worker == w)
        assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))


def test_non_finite_objective_values_fail_the_trial_naming_the_metric(tmp_path):
    """NaN and inf are never `ok`: the trial fails saying which metric, and best/front/status work on the rest."""
    from typer.testing import CliRunner

    from nas.cli import app

    def broken(arch):
        out = toy_eval(arch)
        if arch["depth"] == 2:
            out["accuracy"] = float("nan")
        if arch["depth"] == 3 and arch["act"] == "gelu":
            out["latency_ms"] = float("inf")
        return out

    r = nas.search(toy_space(), broken, {"accuracy": "max", "latency_ms": "min"}, strategy="random", budget=30,
                   seed=0, workdir=tmp_path)
    nan = [t for t in r.trials if t.architecture["depth"] == 2]
    inf = [t for t in r.trials if t.architecture["depth"] == 3 and t.architecture["act"] == "gelu"]
    assert nan and inf and all(t.status == "failed" for t in nan + inf)
    assert all("non-finite accuracy = nan" in t.error for t in nan)
    assert all("non-finite latency_ms = inf" in t.error for t in inf)
    best = r.best()
    assert best is not None and np.isfinite(best.metrics["accuracy"]) and best.architecture["depth"] != 2
    loaded = nas.load(tmp_path)
    assert [t.status for t in loaded.trials] == [t.status for t in r.trials]
    assert loaded.pareto_front() == r.pareto_front() and r.hypervolume([0.0, 100.0]) > 0
    runner = CliRunner()
    for args in (["status", str(tmp_path)], ["pareto", str(tmp_path), "--plot", str(tmp_path / "front.png")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output


def test_an_evaluate_that_stops_returning_an_objective_fails_those_trials():
    calls = []

    def forgetful(arch):
        calls.append(arch)
        out = toy_eval(arch)
        if len(calls) > 3:
            del out["latency_ms"]
        return out

    r = nas.search(toy_space(), forgetful, {"accuracy": "max", "latency_ms": "min"}, strategy="random", budget=8,
                   seed=0)
    assert [t.status for t in r.trials] == ["ok"] * 3 + ["failed"] * 5
    assert all("evaluate did not return 'latency_ms' (it returned: accuracy)" in t.error for t in r.trials[3:])
    assert r.completed == r.trials[:3]


def test_a_typo_in_an_objective_keeps_the_evaluation_and_does_not_lock_the_workdir(tmp_path):
    """The first result reveals `acc` is not a metric: that evaluation is journaled (failed, metrics kept) and,
    once the objective is corrected, counted instead of being run again."""
    ev = Counter()
    with pytest.raises(ConfigError, match="objective 'acc' is not among the metrics evaluate returned"):
        nas.search(toy_space(), ev, {"acc": "max"}, strategy="evolution", budget=12, seed=4, workdir=tmp_path)
    first = nas.load(tmp_path).trials
    assert len(first) == 1 and first[0].status == "failed" and first[0].extra == {"config_error": True}
    assert "objective 'acc' is not among" in first[0].error and set(first[0].metrics) == {"accuracy", "latency_ms"}
    r = nas.search(toy_space(), ev, {"accuracy": "max"}, strategy="evolution", budget=12, seed=4, workdir=tmp_path,
                   progress=True)  # with the bar nas run shows: the recheck reports to it (it once ran before begin)
    assert r.trials[1].status == "ok" and r.trials[1].extra == {"rechecked_from": 0}
    assert r.trials[1].arch_id == first[0].arch_id and r.trials[1].metrics == first[0].metrics
    assert r.used == 12 and len(ev.calls) == 12 == len(set(ev.calls))  # the first evaluation was not repeated
    assert nas.load(tmp_path).problem.names == ["accuracy"]
    with pytest.raises(JournalError, match="objectives and constraints .* can only be changed before the first"):
        nas.search(toy_space(), ev, {"accuracy": "min"}, strategy="evolution", budget=12, seed=4, workdir=tmp_path)


def test_a_constraint_bound_is_journaled_exactly_so_a_reload_judges_feasibility_alike(tmp_path):
    def size(arch):
        return {"accuracy": float(arch["width"]), "mem_bytes": 1234560.0 + arch["width"]}

    space = Space(width=Choice([1, 3, 5, 7, 9]))
    live = nas.search(space, size, {"accuracy": "max"}, ["mem_bytes <= 1234567"], strategy="random", budget=5,
                      seed=0, workdir=tmp_path)
    again = nas.load(tmp_path)  # the bound once came back as 1.23457e+06 = 1234570: width 9 feasible too
    assert str(again.problem.constraints[0]) == "mem_bytes <= 1234567"
    assert [t.number for t in again.feasible] == [t.number for t in live.feasible]
    assert again.best().metrics["accuracy"] == live.best().metrics["accuracy"] == 7.0
    with pytest.raises(JournalError, match="objectives and constraints"):  # a different bound is another search
        nas.search(space, size, {"accuracy": "max"}, ["mem_bytes <= 1234569"], strategy="random", budget=5, seed=0,
                   workdir=tmp_path)


def test_a_cheap_evaluator_returning_nan_for_a_bound_metric_fails_naming_it():
    """NaN compared against a bound read as infeasible for every proposal: a search of nothing but rejections."""
    cheap = nas.cheap(lambda arch: {"params_k": float("nan")})
    with pytest.raises(NASError, match="the cheap evaluator returned non-finite params_k = nan"):
        nas.search(toy_space(), [cheap, toy_eval], {"accuracy": "max"}, ["params_k <= 40"], strategy="random",
                   budget=20, seed=0)


def test_the_budget_only_grows_unless_lowered_explicitly(tmp_path, caplog):
    ev = Counter()
    args = dict(space=toy_space(), evaluate=ev, objectives={"accuracy": "max"}, strategy="random", seed=1,
                workdir=tmp_path)
    nas.search(budget=20, **args)
    with caplog.at_level("WARNING"):
        again = nas.search(budget=10, **args)
    assert again.config["budget"] == 20 and again.used == 20 and len(ev.calls) == 20
    assert "budget 10 is below the 20 recorded for this search" in caplog.text
    assert nas.load(tmp_path).config["budget"] == 20
    assert nas.search(budget=30, **args).used == 30 and len(ev.calls) == 30
    lowered = nas.search(budget=25, lower_budget=True, **args)
    assert lowered.config["budget"] == 25 == nas.load(tmp_path).config["budget"] and lowered.used == 30


def test_a_workdir_of_another_space_is_refused_naming_the_field(tmp_path):
    nas.search(toy_space(), toy_eval, {"accuracy": "max"}, budget=3, workdir=tmp_path)
    other = Space(depth=Choice([1, 2, 3]), blocks=Repeat("depth", k=Choice([3, 5]), w=Integer(1, 4)),
                  act=Choice(["relu", "gelu"]))
    with pytest.raises(JournalError, match=r"its space differs at field blocks\.k \(the journal has choice "
                                           r"\[3, 5, 7\], this run \[3, 5\]\)"):
        nas.search(other, toy_eval, {"accuracy": "max"}, budget=3, workdir=tmp_path)
    with pytest.raises(JournalError, match="its strategy is 'evolution', this run's is 'random'"):
        nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=3, workdir=tmp_path)
    assert len(nas.load(tmp_path).trials) == 3


def test_each_cheap_evaluator_runs_once_per_architecture_and_its_errors_fail_the_trial():
    cheap_calls: list[str] = []

    def params(arch):
        cheap_calls.append(nas.spaces.Architecture(arch).id)
        if arch["act"] == "gelu" and arch["blocks"][0]["k"] == 7:
            raise RuntimeError("cannot count")
        return {"params": float(sum(b["w"] for b in arch["blocks"]))}

    expensive = Counter()
    r = nas.search(toy_space(), [nas.cheap(params), expensive], {"accuracy": "max"}, constraints=["params <= 8"],
                   strategy="evolution", budget=25, seed=3)
    assert sorted(cheap_calls) == sorted(t.arch_id for t in r.trials)  # once each, never again in the executor
    broken = [t for t in r.trials if t.architecture["act"] == "gelu" and t.architecture["blocks"][0]["k"] == 7]
    assert broken and all(t.status == "failed" and "RuntimeError: cannot count" in t.error for t in broken)
    assert all(t.metrics["params"] > 8 for t in r.trials if t.status == "infeasible")
    assert {t.arch_id for t in r.trials if t.status == "ok"} == set(expensive.calls)
    assert all("params" in t.metrics and "accuracy" in t.metrics for t in r.trials if t.status == "ok")



HANGS = textwrap.dedent("""
    import time
    import nas
    from nas.spaces import Choice, Space

    space = Space(a=Choice(list(range(12))), b=Choice([0, 1, 2, 3, 4, 5]))

    def evaluate(arch):
        if arch["b"] == 5:
            while True:  # hangs, holding its CPU, until its worker is killed
                pass
        return {"acc": float(arch["a"] * arch["b"])}
""")


def test_hung_evaluations_time_out_on_process_workers_and_leave_no_process(tmp_path):
    import multiprocessing

    (tmp_path / "hangs.py").write_text(HANGS)
    sys.path.insert(0, str(tmp_path))
    try:
        import hangs
    finally:
        sys.path.remove(str(tmp_path))
    r = nas.search(hangs.space, hangs.evaluate, {"acc": "max"}, strategy="random", budget=14, seed=1,
                   executor={"name": "processes", "workers": 2}, timeout_s=2, workdir=tmp_path / "wd")
    hung = [t for t in r.trials if t.architecture["b"] == 5]
    assert r.used == 14 and r.stop_reason == "budget" and len(hung) >= 1
    assert all(t.status == "failed" and "timed out after 2 s" in t.error for t in hung)
    assert all(t.status == "ok" for t in r.trials if t.architecture["b"] != 5)
    assert {t.worker for t in r.trials if t.status == "ok"} <= {t.worker for t in r.trials}
    assert multiprocessing.active_children() == []  # every worker stopped and reaped
    assert nas.load(tmp_path / "wd").config["timeout_s"] == 2
    with pytest.raises(ConfigError, match="timeout_s: LocalExecutor cannot stop a running evaluation"):
        nas.search(hangs.space, hangs.evaluate, {"acc": "max"}, budget=2, seed=1, timeout_s=2)


def test_running_a_timed_search_again_without_its_executor_goes_on_without_the_timeout(tmp_path, caplog):
    """The journal's timeout_s was inherited by a call that never gave it, and the local executor then refused it,
    blaming an argument the caller had not passed."""
    nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=2, seed=1,
               executor={"name": "processes", "workers": 1}, timeout_s=30, workdir=tmp_path)
    with caplog.at_level("WARNING"):
        again = nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=4, seed=1,
                           workdir=tmp_path)
    assert again.used == 4 and "the recorded timeout_s=30 is not applied" in caplog.text
    with pytest.raises(ConfigError, match="timeout_s: LocalExecutor cannot stop"):  # given here: still an error
        nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=6, seed=1,
                   workdir=tmp_path, timeout_s=30)


@pytest.mark.parametrize("cheap", [True, False])
def test_a_metric_two_evaluators_return_ends_the_search_naming_both_and_journals_nothing(cheap, tmp_path):
    """The evaluators' fault, not an architecture's: it failed every trial (a bare ValueError), three of them were
    journaled for good and the search stopped on 'the first 3 evaluations all failed'."""
    def count(a):
        return {"latency_ms": toy_eval(a)["latency_ms"], "accuracy": 0.0}

    first = nas.cheap(count) if cheap else count
    with pytest.raises(ConfigError, match=r"metric 'accuracy' is returned by two evaluators \(.* and .*\); each "
                                          r"metric must come from one .* nothing was journaled"):
        nas.search(toy_space(), [first, toy_eval], {"accuracy": "max"}, budget=5, seed=0, workdir=tmp_path)
    assert nas.load(tmp_path).trials == []
    fixed = nas.cheap(lambda a: {"latency_ms": toy_eval(a)["latency_ms"]})
    r = nas.search(toy_space(), [fixed, lambda a: {"accuracy": toy_eval(a)["accuracy"]}], {"accuracy": "max"},
                   budget=5, seed=0, workdir=tmp_path)
    assert r.used == 5 and all(t.status == "ok" for t in r.trials)
