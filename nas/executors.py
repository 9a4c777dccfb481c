"""Executors run evaluations: in-process (default) or on a simulated clock that replays a benchmark.

Contract: `check_evaluate(evaluate)` when the search is prepared (refuse what cannot run, before anything is
written), `start(evaluate)`, `submit(job)` while `free_slots() > 0`, `wait()` for at least one completion,
`poll()` for the completions already there without waiting (the search drains them on Ctrl-C).
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import ConfigError, check_count, check_limit
from nas.jsonio import python_scalar
from nas.pruning import NO_PRUNER, Pruned, judged
from nas.spaces import Architecture
from nas.store import Trial
from nas.user_attrs import collecting

if TYPE_CHECKING:
    from nas.pruning import Pruning

log = logging.getLogger(__name__)

EvaluateFn = Callable[[Architecture], Mapping[str, float]]


@dataclass(frozen=True)
class Job:
    """One architecture to evaluate, with the metrics the search's cheap stage already computed for it."""

    arch: Architecture
    known: Mapping[str, float] = field(default_factory=dict)
    replay: Trial | None = None  # journaled before a hard kill: re-placed as it ran, not evaluated (`replays`)


@dataclass(frozen=True)
class Completed:
    """The outcome of one job: metrics, or the error text when evaluation raised."""

    arch: Architecture
    metrics: dict[str, float] | None
    error: str | None
    started: float
    finished: float
    worker: str
    stopped_after: int | None = None  # a scheduler stopped it after this many reports: metrics are the last one's
    extra: Mapping[str, Any] = field(default_factory=dict)  # journaled with the trial (a pruner's curve)


def run_job(evaluate: EvaluateFn, arch: Architecture) -> tuple[dict[str, float] | None, str | None]:
    """Call `evaluate`, turning exceptions and malformed returns into an error string.

    `sys.exit` inside `evaluate` (a training script's argparse on a bad option) fails that trial too: left to
    propagate it ended the search before the trial was journaled, so every resume ran it first and died again.
    KeyboardInterrupt (Ctrl-C stops the search) and, under a pruner, `Pruned` still propagate; Optuna's
    `TrialPruned` means `Pruned`, and either fails the trial, saying why, where no pruner records where it stopped."""
    try:
        out = evaluate(arch)
    except SystemExit as e:
        return None, f"SystemExit: evaluate called {exit_call(e.code)}"
    except Pruned:
        if judged():
            raise
        return None, NO_PRUNER
    except Exception as e:  # noqa: BLE001 - any failure of user code is a failed trial, not a crash
        if type(e).__name__ == "TrialPruned" and type(e).__module__.startswith("optuna"):
            if judged():
                raise Pruned(f"evaluate raised optuna.TrialPruned{': ' + str(e) if str(e) else ''}") from None
            return None, NO_PRUNER
        return None, "".join(traceback.format_exception_only(type(e), e)).strip()
    if not isinstance(out, Mapping):
        return None, f"evaluate returned {type(out).__name__}, expected a dict of metric name -> number"
    metrics: dict[str, float] = {}
    for key, value in out.items():
        number, problem = metric_value(value)
        if problem is not None:  # every metric, objective or not: the journal stores numbers only
            hint = "; attach other data with nas.set_user_attr(key, value)" if isinstance(value, str) else ""
            return None, f"evaluate returned metric {str(key)!r} = {_short(value)}: {problem}{hint}"
        metrics[str(key)] = number
    return metrics, None


def run_judged(evaluate: EvaluateFn, arch: Architecture, judge: Pruning | None
               ) -> tuple[dict[str, float] | None, str | None, dict[str, Any]]:
    """`run_job`, under a pruner's `judge` when there is one (its reports may stop the evaluation early):
    (metrics, error, the journal extra holding the judged curve, where it was pruned and the `set_user_attr`s)."""
    with collecting() as attrs:
        if judge is None:
            metrics, error = run_job(evaluate, arch)
            extra: dict[str, Any] = {}
        else:
            metrics, error, extra = judge.run(lambda: run_job(evaluate, arch))
    return metrics, error, {**extra, "user_attrs": attrs} if attrs else extra


def metric_value(value: Any) -> tuple[float, str | None]:
    """`value` as a metric (a float), or why it is not one: a string ("1_000" reads as a number to float()),
    a bool, None, anything float() refuses, or an int too large for a float."""
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
        return math.nan, f"{type(value).__name__} is not a number (a metric must be an int or a float)"
    try:
        return float(value), None
    except OverflowError:
        return math.nan, "too large for a float"
    except (TypeError, ValueError):
        return math.nan, f"{type(value).__name__} is not a number (a metric must be an int or a float)"


def exit_call(code: Any) -> str:
    """How a `SystemExit` with `code` was raised, for an error message: "sys.exit(2)", "sys.exit()"."""
    return "sys.exit()" if code is None else f"sys.exit({_short(code)})"


def _short(value: Any, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters (an int of 300 digits, a long note)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def stopped_error(missing: Sequence[str], metrics: Mapping[str, float], reports: int) -> str:
    """Why a trial that a scheduler stopped early lacks objective or constraint metrics (`missing`)."""
    if not reports:
        return ("this trial stopped as pruned before its first report, so it has no metrics: report each epoch with "
                "nas.report_metrics({...}) (every objective and constraint metric), then stop")
    return (f"a scheduler or pruner stopped this trial after {reports} report(s), and its last report lacks "
            f"{', '.join(map(repr, missing))} (it reported: {', '.join(sorted(metrics)) or 'nothing'}); a scheduler "
            "may stop a trial at any report, so every report() must carry every objective and constraint metric")


class Executor(ABC):
    replays = False  # takes `Job.replay` (its journaled placement and result), so a resume re-runs the schedule
    prunes = False  # judges each evaluation's reports under a pruner (`set_pruning`)
    _pruning: Pruning | None = None

    @abstractmethod
    def start(self, evaluate: EvaluateFn) -> None: ...

    def check_evaluate(self, evaluate: EvaluateFn) -> None:
        """Refuse (ConfigError) an `evaluate` this executor cannot run, before the search writes anything: the
        search calls it when it is prepared. Executors that run it in this process take any callable."""

    @abstractmethod
    def free_slots(self) -> int: ...

    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def wait(self) -> list[Completed]:
        """Block until at least one submitted job completes; return every completion available."""

    def poll(self) -> list[Completed]:
        """The completions already available, without waiting (none: []); the search calls it on Ctrl-C to
        journal what finished, so a resume does not run it again. Executors that cannot tell return []."""
        return []

    def close(self) -> None:
        """Release workers."""

    def now(self) -> float:
        """The clock `max_time` counts on: wall-clock seconds (`time.monotonic`); a simulated clock's own seconds."""
        return time.monotonic()

    def deadline(self, max_time: float) -> float:
        """The `now()` from which a search given `max_time` submits nothing new: `max_time` seconds after this run
        starts (a resume gets `max_time` again)."""
        return self.now() + max_time

    def resume_after(self, trials: Sequence[Trial], placements: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """A resumed search starts after these journaled trials (a simulated clock continues from them; a pruner
        judges against their curves); `placements` are `placement`s of the jobs in flight when the snapshot was
        taken, resubmitted first."""
        if self._pruning is not None:
            self._pruning.replay(trials)

    def placement(self, arch_id: str) -> dict[str, Any] | None:
        """Where and when the running job of `arch_id` started, as plain data for the snapshot, where resuming
        needs it to be exact (a simulated clock); None otherwise."""
        return None

    def set_pruning(self, pruning: Pruning | None) -> None:
        """Run each evaluation under `pruning` (its reports judged by a pruner): the in-process executor, local
        worker processes and the Ray actor pool can (`prunes`); others refuse."""
        if pruning is not None and not self.prunes:
            raise ConfigError(f"pruner: {type(self).__name__} cannot judge its evaluations' reports; use the "
                              "in-process executor (executor='local'), local worker processes "
                              "(executor='processes') or the Ray actor pool (executor='ray'), or "
                              "executor='ray-tune' with its ASHA scheduler")
        self._pruning = pruning

    def _returned(self, arch: Architecture, metrics: dict[str, float] | None, error: str | None, started: float,
                  finished: float, worker: str, extra: Mapping[str, Any]) -> Completed:
        """An evaluation that a worker ran (and judged, under a pruner, against its copy of the history) is back:
        its curve joins the search's pruning history."""
        if self._pruning is not None:
            self._pruning.record(metrics, error, extra)
        return Completed(arch, metrics, error, started, finished, worker, extra.get("pruned_after"), extra)

    def set_timeout(self, timeout_s: float | None) -> None:
        """Stop each evaluation after `timeout_s` seconds (None or inf: no timeout, as `check_limit` reads a limit);
        an executor that cannot stop one refuses a timeout."""
        if check_limit(timeout_s, "timeout_s") is not None:
            raise ConfigError(f"timeout_s: {type(self).__name__} cannot stop a running evaluation; use "
                              "executor='processes' (local worker processes, killed on timeout)")


class LocalExecutor(Executor):
    """Runs one evaluation at a time in this process: no cluster, no server."""

    prunes = True

    def __init__(self) -> None:
        self._evaluate: EvaluateFn | None = None
        self._queue: list[Job] = []
        self.worker = f"local-{os.getpid()}"

    def start(self, evaluate: EvaluateFn) -> None:
        self._evaluate = evaluate

    def free_slots(self) -> int:
        return 0 if self._queue else 1

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def wait(self) -> list[Completed]:
        assert self._evaluate is not None, "start() first"
        job = self._queue.pop(0)
        t0 = time.time()
        metrics, error, extra = run_judged(self._evaluate, job.arch, self._pruning)
        return [Completed(job.arch, metrics, error, t0, time.time(), self.worker, extra.get("pruned_after"), extra)]


class SimulatedClockExecutor(Executor):
    """Replays a recorded benchmark with `workers` parallel workers on a simulated clock.

    Each evaluation is looked up at once but "finishes" `duration(arch, metrics)` simulated seconds after
    it starts (e.g. the benchmark's recorded training time), so asynchronous parallel search is
    reproduced exactly, deterministically and in seconds. Timings in trials are simulated seconds. A resume
    re-runs the schedule from the snapshot, journaled jobs placed as they ran (`Job.replay`), so even a search
    killed with jobs in flight continues as the uninterrupted one; its journal records the worker count, and a
    resume with another is refused (the journaled schedule holds for that count only). `max_time` counts simulated
    seconds from the search's start. One instance may run several searches: each `start` begins at clock 0 with
    every worker free (`clock` keeps the last search's end until then).
    """

    replays = True

    def __init__(self, workers: int = 1, duration: str | float | Callable[[Architecture, Mapping[str, float]], float] = 1.0) -> None:
        workers = check_count(workers, "workers")  # as the other executors: 1.5, "2", True and 2.0 are named
        duration = python_scalar(duration)  # np.float64(3.0) -> 3.0: timestamps stay Python floats
        if not callable(duration) and not isinstance(duration, str) and (
                isinstance(duration, bool) or not isinstance(duration, (int, float))
                or not (math.isfinite(duration) and duration >= 0)):
            raise ConfigError(f"SimulatedClockExecutor: duration must be a finite number of seconds >= 0, a metric "
                              f"name or a function, got {duration!r}")
        self.workers = workers
        self.duration = duration
        self._evaluate: EvaluateFn | None = None
        self._reset()

    def _reset(self) -> None:
        """Clock 0, no job queued, every worker free: a search's start (after an earlier search, or one stopped
        by Ctrl-C with jobs in flight, whose jobs would otherwise come back to the next search)."""
        self.clock = 0.0
        self._running: list[tuple[float, int, Completed]] = []
        self._seq = 0
        self._free = list(range(self.workers))  # worker slots, lowest first
        self._placements: dict[str, dict[str, Any]] = {}  # arch id -> start and worker of a job to resubmit
        self._warned = False  # a non-finite or negative duration metric was charged 1 s

    def start(self, evaluate: EvaluateFn) -> None:
        self._evaluate = evaluate
        self._reset()

    def now(self) -> float:
        return self.clock

    def deadline(self, max_time: float) -> float:
        """Simulated seconds from the search's start (clock 0): a resume continues the clock from the journal, so
        it stops where the uninterrupted search did."""
        return max_time

    def resume_after(self, trials: Sequence[Trial], placements: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        simulated = [t.finished for t in trials if t.worker.startswith("sim-")]
        self.clock = max([self.clock, *simulated])  # timestamps never go back, and the total stays comparable
        self._placements = {k: dict(v) for k, v in (placements or {}).items()}

    def placement(self, arch_id: str) -> dict[str, Any] | None:
        for _, _, c in self._running:
            if c.arch.id == arch_id:
                return {"started": c.started, "worker": c.worker}
        return None

    def free_slots(self) -> int:
        return self.workers - len(self._running)

    def poll(self) -> list[Completed]:
        """Nothing: no simulated time passes while the search stops (a resume restarts the jobs in flight where
        they were placed, which keeps it exact)."""
        return []

    def _duration(self, arch: Architecture, metrics: Mapping[str, float]) -> float:
        """Simulated seconds of one evaluation; a non-finite or negative one (a failed run recorded as nan) is
        charged 1 s, as a failed evaluation is, so the clock never becomes NaN."""
        if not callable(self.duration) and not isinstance(self.duration, str):
            return float(self.duration)
        if callable(self.duration):
            try:
                seconds = float(self.duration(arch, metrics or {}))
            except Exception as e:  # noqa: BLE001 - named below
                if not metrics:  # a failed evaluation has no metrics to time it by: charged 1 s
                    return 1.0
                raise ConfigError(f"SimulatedClockExecutor: duration function failed on architecture {arch.id[:12]} "
                                  f"with metrics {', '.join(sorted(metrics))}: {type(e).__name__}: {e}") from None
        elif not metrics:
            return 1.0  # a failed evaluation
        elif self.duration not in metrics:  # a typo would silently charge 1 s per evaluation
            raise ConfigError(f"SimulatedClockExecutor: duration {self.duration!r} is not a metric of the "
                              f"evaluation; it returned {', '.join(sorted(metrics))}")
        else:
            seconds = float(metrics[self.duration])
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
        if not self._warned:
            source = f"metric {self.duration!r}" if isinstance(self.duration, str) else "the duration function"
            log.warning("SimulatedClockExecutor: duration %s is %s for architecture %s; such evaluations are "
                        "charged 1 simulated second, as a failed one", source, seconds, arch.id[:12])
            self._warned = True
        return 1.0

    def submit(self, job: Job) -> None:
        assert self._evaluate is not None, "start() first"
        placed = self._placements.pop(job.arch.id, None)  # in flight when the search was interrupted: as it was
        if job.replay is not None and job.replay.worker.startswith("sim-"):
            self._place(job.arch, job.replay.metrics, job.replay.error, job.replay.worker, job.replay.started,
                        job.replay.finished, {k: v for k, v in job.replay.extra.items() if k == "user_attrs"})
            return
        metrics, error, extra = run_judged(self._evaluate, job.arch, None)
        start = float(placed["started"]) if placed is not None else self.clock
        end = start + self._duration(job.arch, {**job.known, **(metrics or {})})
        self._place(job.arch, metrics, error, placed["worker"] if placed is not None else None, start, end, extra)

    def _place(self, arch: Architecture, metrics: dict[str, float] | None, error: str | None, worker: str | None,
               start: float, end: float, extra: Mapping[str, Any] | None = None) -> None:
        """Run the job on `worker` (a "sim-N" slot, when it is free) or the lowest free slot, from `start` to `end`."""
        slot = int(worker.split("-")[1]) if worker is not None else -1
        if slot in self._free:
            self._free.remove(slot)
            heapq.heapify(self._free)
        else:
            slot = heapq.heappop(self._free)
        heapq.heappush(self._running, (end, self._seq, Completed(arch, metrics, error, start, end, f"sim-{slot}",
                                                                 extra=dict(extra or {}))))
        self._seq += 1

    def wait(self) -> list[Completed]:
        end, _, done = heapq.heappop(self._running)
        self.clock = end
        heapq.heappush(self._free, int(done.worker.split("-")[1]))
        return [done]
