"""Local worker processes: evaluations in parallel on one machine, each in its own process, without Ray.

`ProcessExecutor(workers=N)` runs evaluations in a pebble `ProcessPool` (a well-kept pool with per-task
timeouts). A timed-out evaluation's worker process is killed and replaced and the trial fails with
"timed out after N s"; a worker that dies (a crash, out of memory, `os._exit`) fails its trial after
`max_retries` retries on fresh workers. Workers are killed with the driver (Linux `PR_SET_PDEATHSIG`),
so a killed search leaves no process behind, and resume replays the journal as with any executor.

The evaluate function reaches the workers once, at their start: inherited with `start_method="fork"`
(the default on Linux, so functions defined in a script or a closure work), or cloudpickled for
"spawn"/"forkserver". Each worker runs torch on `threads` threads (default: the CPUs divided by workers). Under a
pruner (`nas.search(..., pruner=...)`) each job carries a copy of the pruning history as it stood when the job was
submitted; the worker judges the evaluation's reports against it and the outcome joins the history when it returns.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError, check_count, check_seconds
from nas.executors import Completed, EvaluateFn, Executor, Job, run_judged
from nas.pruning import Pruning
from nas.spaces import Architecture

START_METHODS = ("fork", "spawn", "forkserver")


@dataclass
class _Running:
    job: Job
    attempts: int


class ProcessExecutor(Executor):
    """Evaluations in `workers` local processes; `timeout_s` per evaluation, `max_retries` for dead workers. Under a
    pruner each evaluation is judged in its worker, against the trials finished when it was submitted."""

    prunes = True

    def __init__(self, workers: int | None = None, timeout_s: float | None = None, max_retries: int = 1,
                 start_method: str | None = None, threads: int | None = None) -> None:
        cpus = os.cpu_count() or 1
        if workers is not None:
            check_count(workers, "workers")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries: expected an int >= 0, got {max_retries!r}")
        method = start_method or ("fork" if sys.platform == "linux" else "spawn")
        if method not in START_METHODS:
            raise ConfigError(f"start_method: expected one of {', '.join(START_METHODS)}, got {start_method!r}")
        if threads is not None:
            check_count(threads, "threads")
        self.workers = workers or cpus
        self.threads = threads or max(1, cpus // self.workers)
        self.max_retries, self.start_method = max_retries, method
        self.timeout_s: float | None = None
        self.set_timeout(timeout_s)
        self._pool: Any = None
        self._running: dict[concurrent.futures.Future[Any], _Running] = {}

    def set_timeout(self, timeout_s: float | None) -> None:
        self.timeout_s = check_seconds(timeout_s, "timeout_s") if timeout_s is not None else None

    def start(self, evaluate: EvaluateFn) -> None:
        from pebble import ProcessPool

        payload: Any = evaluate
        if self.start_method != "fork":
            import cloudpickle

            payload = cloudpickle.dumps(evaluate)  # by value where needed: script functions, closures
        self._pool = ProcessPool(max_workers=self.workers, initializer=_init_worker,
                                 initargs=(payload, self.threads),
                                 context=multiprocessing.get_context(self.start_method))

    def free_slots(self) -> int:
        return self.workers - len(self._running)

    def submit(self, job: Job) -> None:
        self._schedule(job, 0)

    def _schedule(self, job: Job, attempts: int) -> None:
        assert self._pool is not None, "start() first"
        judge = self._pruning.snapshot() if self._pruning is not None else None
        future = self._pool.schedule(_evaluate_in_worker, args=(job.arch.to_dict(), judge), timeout=self.timeout_s)
        self._running[future] = _Running(job, attempts)

    def wait(self) -> list[Completed]:
        out: list[Completed] = []
        while not out:
            done, _ = concurrent.futures.wait(list(self._running), return_when=concurrent.futures.FIRST_COMPLETED)
            out.extend(c for c in map(self._collect, done) if c is not None)
        return out

    def poll(self) -> list[Completed]:
        """The evaluations already finished, without waiting or retrying (the search is stopping on Ctrl-C): a
        worker that died stays pending, so the resume runs it again."""
        done = [future for future in self._running if future.done()]
        return [c for c in (self._collect(future, retry=False) for future in done) if c is not None]

    def _collect(self, future: concurrent.futures.Future[Any], retry: bool = True) -> Completed | None:
        """One finished future's completion; None when its worker died and it was resubmitted (or, without
        `retry`, left for the resume)."""
        from pebble import ProcessExpired

        run = self._running.pop(future)
        arch, now = run.job.arch, time.time()
        try:
            metrics, error, started, finished, worker, extra = future.result()
        except concurrent.futures.TimeoutError:
            return Completed(arch, None, f"timed out after {self.timeout_s:g} s (its worker process was killed and "
                             "replaced)", now - (self.timeout_s or 0), now, "process")
        except ProcessExpired as e:
            if not retry:
                return None
            if run.attempts < self.max_retries:
                self._schedule(run.job, run.attempts + 1)
                return None
            return Completed(arch, None, f"worker process died (exit code {e.exitcode}) {run.attempts + 1} "
                             "time(s)", now, now, f"process-{e.pid}")
        except Exception as e:  # noqa: BLE001 - e.g. a result that cannot be pickled back
            return Completed(arch, None, f"{type(e).__name__}: {e}", now, now, "process")
        return self._returned(arch, metrics, error, started, finished, worker, extra)

    def close(self) -> None:
        """Stop every worker (a running evaluation is abandoned; the search loop keeps it as pending)."""
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
            self._pool = None
        self._running = {}


_evaluate: EvaluateFn | None = None  # the worker process's evaluate function, set once by _init_worker


def _init_worker(payload: Any, threads: int) -> None:
    """Worker start: die with the driver, ignore Ctrl-C (the driver stops the pool), pin torch threads."""
    global _evaluate
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the driver died before prctl took effect
            os._exit(1)
    _evaluate = payload if callable(payload) else __import__("cloudpickle").loads(payload)
    if "torch" in sys.modules:  # inherited from the driver (fork) or imported by the cloudpickled function
        sys.modules["torch"].set_num_threads(threads)


def _evaluate_in_worker(arch: dict[str, Any], judge: Pruning | None = None
                        ) -> tuple[dict[str, float] | None, str | None, float, float, str, dict[str, Any]]:
    """Evaluate one architecture; under `judge` (a pruner's copy), its reports may stop it early."""
    assert _evaluate is not None, "worker not initialised"
    started = time.time()
    metrics, error, extra = run_judged(_evaluate, Architecture(arch), judge)
    return metrics, error, started, time.time(), f"process-{os.getpid()}", extra
