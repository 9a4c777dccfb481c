"""Executors run evaluations: in-process (default) or on a simulated clock that replays a benchmark.

Contract: `start(evaluate)`, `submit(job)` while `free_slots() > 0`, `wait()` for at least one completion,
`poll()` for the completions already there without waiting (the search drains them on Ctrl-C).
"""

from __future__ import annotations

import heapq
import os
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas.errors import ConfigError
from nas.spaces import Architecture
from nas.store import Trial

EvaluateFn = Callable[[Architecture], Mapping[str, float]]


@dataclass(frozen=True)
class Job:
    """One architecture to evaluate, with the metrics the search's cheap stage already computed for it."""

    arch: Architecture
    known: Mapping[str, float] = field(default_factory=dict)


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


def run_job(evaluate: EvaluateFn, arch: Architecture) -> tuple[dict[str, float] | None, str | None]:
    """Call `evaluate`, turning exceptions and malformed returns into an error string."""
    try:
        out = evaluate(arch)
    except Exception as e:  # noqa: BLE001 - any failure of user code is a failed trial, not a crash
        return None, "".join(traceback.format_exception_only(type(e), e)).strip()
    if not isinstance(out, Mapping):
        return None, f"evaluate returned {type(out).__name__}, expected a dict of metric name -> number"
    try:
        return {str(k): float(v) for k, v in out.items()}, None
    except (TypeError, ValueError):
        return None, f"evaluate returned non-numeric metrics: {dict(out)!r}"


def stopped_error(missing: Sequence[str], metrics: Mapping[str, float], reports: int) -> str:
    """Why a trial that a scheduler stopped early lacks objective or constraint metrics (`missing`)."""
    return (f"a scheduler stopped this trial after {reports} report(s), and its last report lacks "
            f"{', '.join(map(repr, missing))} (it reported: {', '.join(sorted(metrics)) or 'nothing'}); a scheduler "
            "may stop a trial at any report, so every report() must carry every objective and constraint metric")


class Executor(ABC):
    @abstractmethod
    def start(self, evaluate: EvaluateFn) -> None: ...

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

    def resume_after(self, trials: Sequence[Trial], placements: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """A resumed search starts after these journaled trials (a simulated clock continues from them);
        `placements` are `placement`s of the jobs in flight when the snapshot was taken, resubmitted first."""

    def placement(self, arch_id: str) -> dict[str, Any] | None:
        """Where and when the running job of `arch_id` started, as plain data for the snapshot, where resuming
        needs it to be exact (a simulated clock); None otherwise."""
        return None

    def set_timeout(self, timeout_s: float | None) -> None:
        """Stop each evaluation after `timeout_s` seconds; an executor that cannot stop one refuses a timeout."""
        if timeout_s is not None:
            raise ConfigError(f"timeout_s: {type(self).__name__} cannot stop a running evaluation; use "
                              "executor='processes' (local worker processes, killed on timeout)")


class LocalExecutor(Executor):
    """Runs one evaluation at a time in this process: no cluster, no server."""

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
        metrics, error = run_job(self._evaluate, job.arch)
        return [Completed(job.arch, metrics, error, t0, time.time(), self.worker)]


class SimulatedClockExecutor(Executor):
    """Replays a recorded benchmark with `workers` parallel workers on a simulated clock.

    Each evaluation is looked up at once but "finishes" `duration(arch, metrics)` simulated seconds after
    it starts (e.g. the benchmark's recorded training time), so asynchronous parallel search is
    reproduced exactly, deterministically and in seconds. Timings in trials are simulated seconds.
    """

    def __init__(self, workers: int = 1, duration: str | float | Callable[[Architecture, Mapping[str, float]], float] = 1.0) -> None:
        if workers < 1:
            raise ConfigError(f"SimulatedClockExecutor: workers must be >= 1, got {workers}")
        self.workers = workers
        self.duration = duration
        self.clock = 0.0
        self._evaluate: EvaluateFn | None = None
        self._running: list[tuple[float, int, Completed]] = []
        self._seq = 0
        self._free = list(range(workers))  # worker slots, lowest first
        self._placements: dict[str, dict[str, Any]] = {}  # arch id -> start and worker of a job to resubmit

    def start(self, evaluate: EvaluateFn) -> None:
        self._evaluate = evaluate

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
        if callable(self.duration):
            return float(self.duration(arch, metrics or {}))
        if isinstance(self.duration, str):
            if not metrics:
                return 1.0  # a failed evaluation
            if self.duration not in metrics:  # a typo would silently charge 1 s per evaluation
                raise ConfigError(f"SimulatedClockExecutor: duration {self.duration!r} is not a metric of the "
                                  f"evaluation; it returned {', '.join(sorted(metrics))}")
            return float(metrics[self.duration])
        return float(self.duration)

    def submit(self, job: Job) -> None:
        assert self._evaluate is not None, "start() first"
        metrics, error = run_job(self._evaluate, job.arch)
        placed = self._placements.pop(job.arch.id, None)  # in flight when the search was interrupted: as it was
        slot = int(placed["worker"].split("-")[1]) if placed is not None else -1
        if slot in self._free:
            self._free.remove(slot)
            heapq.heapify(self._free)
        else:
            slot = heapq.heappop(self._free)
        start = float(placed["started"]) if placed is not None else self.clock
        end = start + self._duration(job.arch, {**job.known, **(metrics or {})})
        heapq.heappush(self._running, (end, self._seq, Completed(job.arch, metrics, error, start, end, f"sim-{slot}")))
        self._seq += 1

    def wait(self) -> list[Completed]:
        end, _, done = heapq.heappop(self._running)
        self.clock = end
        heapq.heappush(self._free, int(done.worker.split("-")[1]))
        return [done]
