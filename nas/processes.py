"""Local worker processes: evaluations in parallel on one machine, each in its own process, without Ray.

`ProcessExecutor(workers=N)` runs evaluations in a pebble `ProcessPool` (a well-kept pool with per-task
timeouts). A timed-out evaluation's worker process is killed and replaced and the trial fails with
"timed out after N s"; a worker that dies (a crash, out of memory, `os._exit`) fails its trial after
`max_retries` retries on fresh workers. Workers are killed with the driver (Linux `PR_SET_PDEATHSIG`),
so a killed search leaves no worker behind, and resume replays the journal as with any executor.

Programs that `evaluate` starts (`subprocess.run(["python", "train.py"])`) run in their worker's process group (each
worker leads its own, on POSIX), and that whole group is killed when the worker is stopped: on timeout and when the
search ends or is interrupted. Limits: a program that leaves the group (`start_new_session=True`, `setsid`, a
daemon) is not killed; nor are the group's programs when the worker dies without being stopped (the driver killed
with `kill -9`, `evaluate` calling `os._exit`) or when `evaluate` replaces the worker's SIGTERM handler (it is then
killed with SIGKILL, which it cannot catch). An `evaluate` that starts such programs should clean them up itself.

The evaluate function reaches the workers once, at their start: inherited with `start_method="fork"`
(the default on Linux, so functions defined in a script or a closure work), or cloudpickled for
"spawn"/"forkserver". With those, an evaluate that cannot be pickled is refused when the search is prepared, before
anything is journaled, and one that a worker cannot load (or a worker that cannot start) stops the search with an
error naming the cause; the evaluations in flight are not journaled, so a resume runs them. Each worker runs torch
on `threads` threads (default: the CPUs divided by workers), also when `evaluate` imports torch itself, and sets
OMP_NUM_THREADS and MKL_NUM_THREADS to it. `sys.exit` in `evaluate` fails its trial, as any exception does. Under a
pruner (`nas.search(..., pruner=...)`) each job carries a copy of the pruning history as it stood when the job was
submitted; the worker judges the evaluation's reports against it and the outcome joins the history when it returns.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import importlib.abc
import importlib.machinery
import importlib.util
import multiprocessing
import os
import signal
import sys
import time
import types
from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError, NASError, check_count, check_limit
from nas.executors import Completed, EvaluateFn, Executor, Job, exit_call, run_judged
from nas.pruning import Pruning
from nas.spaces import Architecture

START_METHODS = ("fork", "spawn", "forkserver")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # read by torch's (and numpy's MKL) thread pools on load


class _NotLoaded(Exception):
    """Raised in a worker that could not load the evaluate function (its text says why); the driver turns it into
    an error that stops the search, since every evaluation in that worker would fail the same way."""


@dataclass
class _Running:
    job: Job
    attempts: int
    slot: int | None = None  # its entry in the pool's worker pid table (None: more jobs than entries)


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
        self._pids: Any = None  # shared table: pid of the worker running the job in each slot (0: not started yet)
        self._running: dict[concurrent.futures.Future[Any], _Running] = {}
        self._pickled: tuple[EvaluateFn, bytes] | None = None  # check_evaluate's payload, reused by start
        self._broken: NASError | None = None  # the pool cannot run evaluations: raised by the next submit or wait

    def set_timeout(self, timeout_s: float | None) -> None:
        self.timeout_s = check_limit(timeout_s, "timeout_s")  # float("inf"), as None: no timeout

    def check_evaluate(self, evaluate: EvaluateFn) -> None:
        """With "spawn"/"forkserver", `evaluate` must pickle (it is sent to each worker): one holding a lock, an open
        file or a connection is refused here, naming the cause, before the journal is written."""
        if self.start_method != "fork":
            self._pickled = (evaluate, self._pickle(evaluate))

    def _pickle(self, evaluate: EvaluateFn) -> bytes:
        import cloudpickle

        try:
            return cloudpickle.dumps(evaluate)  # by value where needed: script functions, closures
        except Exception as e:  # noqa: BLE001 - whatever pickling raises, the user must change evaluate
            raise ConfigError(f"evaluate cannot be sent to worker processes (start_method={self.start_method!r}): "
                              f"{type(e).__name__}: {e}; define it at module level of an importable file and create "
                              "what cannot be pickled (locks, open files, connections) inside it, or use "
                              "start_method='fork'") from None

    def start(self, evaluate: EvaluateFn) -> None:
        from pebble import ProcessPool

        payload: Any = evaluate
        if self.start_method != "fork":
            cached = self._pickled
            payload = cached[1] if cached is not None and cached[0] is evaluate else self._pickle(evaluate)
        self._broken = None
        context = multiprocessing.get_context(self.start_method)
        self._pids = context.RawArray("q", self.workers)  # inherited by each worker (Process args), under spawn too
        self._pool = ProcessPool(max_workers=self.workers, initializer=_init_worker,
                                 initargs=(payload, self.threads, self._pids), context=context)

    def free_slots(self) -> int:
        return self.workers - len(self._running)

    def submit(self, job: Job) -> None:
        self._schedule(job, 0)

    def _schedule(self, job: Job, attempts: int) -> None:
        assert self._pool is not None, "start() first"
        if self._broken is not None:
            raise self._broken
        judge = self._pruning.snapshot() if self._pruning is not None else None
        held = {run.slot for run in self._running.values()}
        slot = next((i for i in range(self.workers) if i not in held), None)
        if slot is not None:
            self._pids[slot] = 0  # the worker that takes the job writes its pid here
        try:
            future = self._pool.schedule(_evaluate_in_worker, args=(job.arch.to_dict(), judge, slot),
                                         timeout=self.timeout_s)
        except RuntimeError as e:  # pebble's "Unexpected error within the Pool": it broke while no job was running
            raise self._break(e) from None
        self._running[future] = _Running(job, attempts, slot)

    def wait(self) -> list[Completed]:
        """At least one completion; when the pool broke (a worker that cannot load evaluate or start), the
        completions that came back before are returned first and the error is raised by the next call."""
        out: list[Completed] = []
        while not out:
            if self._broken is not None:
                raise self._broken
            done, _ = concurrent.futures.wait(list(self._running), timeout=1.0,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            if not done and not self._pool.active:  # it broke before taking a job: that job would never complete
                raise self._break(None)
            out.extend(c for c in map(self._collect, done) if c is not None)
        return out

    def _break(self, cause: BaseException | None) -> NASError:
        """The error that ends the search now that the pool cannot run evaluations (the first cause is kept): the
        jobs in flight never ran, so none is journaled as failed and a resume runs them."""
        if self._broken is None:
            what = f"{type(cause).__name__}: {cause or 'the pool broke'}" if cause is not None else "the pool broke"
            hint = (f"; with start_method={self.start_method!r} each worker imports the main script again, so guard "
                    "the search with `if __name__ == \"__main__\":`" if self.start_method != "fork" else "")
            self._broken = NASError(f"worker processes stopped working ({what}): a worker could not start or died "
                                    f"between evaluations{hint}; the evaluations in flight are not journaled, so a "
                                    "resume runs them")
        return self._broken

    def poll(self) -> list[Completed]:
        """The evaluations already finished, without waiting or retrying (the search is stopping on Ctrl-C): a
        worker that died stays pending, so the resume runs it again."""
        done = [future for future in self._running if future.done()]
        return [c for c in (self._collect(future, retry=False) for future in done) if c is not None]

    def _collect(self, future: concurrent.futures.Future[Any], retry: bool = True) -> Completed | None:
        """One finished future's completion; None when its worker died and it was resubmitted (or, without
        `retry`, left for the resume), or when it never ran because the pool broke (`_broken` says why)."""
        from concurrent.futures.process import BrokenProcessPool

        from pebble import ProcessExpired

        run = self._running.pop(future)
        arch, now = run.job.arch, time.time()
        try:
            metrics, error, started, finished, worker, extra = future.result()
        except _NotLoaded as e:  # not journaled: the architecture stays pending and a fixed resume evaluates it
            self._broken = self._broken or ConfigError(
                f"evaluate cannot be loaded in a worker process (start_method={self.start_method!r}): {e}; define "
                "it, and what it holds, at module level of an importable file, or use start_method='fork'")
            return None
        except BrokenProcessPool as e:  # every job in flight is aborted unrun: none is journaled as failed
            self._break(e)
            return None
        except concurrent.futures.TimeoutError:
            return Completed(arch, None, f"timed out after {self.timeout_s:g} s (its worker process was killed and "
                             "replaced)", now - (self.timeout_s or 0), now, self._worker_of(run))
        except ProcessExpired as e:
            if not retry or self._broken is not None:  # left for the resume
                return None
            if run.attempts < self.max_retries:
                self._schedule(run.job, run.attempts + 1)
                return None
            return Completed(arch, None, f"worker process died (exit code {e.exitcode}) {run.attempts + 1} "
                             "time(s)", now, now, f"process-{e.pid}")
        except SystemExit as e:  # raised outside evaluate in the worker (run_job fails a trial that calls it)
            return Completed(arch, None, f"SystemExit: the worker called {exit_call(e.code)}", now, now,
                             self._worker_of(run))
        except Exception as e:  # noqa: BLE001 - e.g. a result that cannot be pickled back
            return Completed(arch, None, f"{type(e).__name__}: {e}", now, now, self._worker_of(run))
        return self._returned(arch, metrics, error, started, finished, worker, extra)

    def _worker_of(self, run: _Running) -> str:
        """The worker of a job that returned no result (timed out, or failed outside evaluate) as its own results
        name it, "process-<pid>", from the pid it wrote when it took the job (pebble does not say): a timeline
        draws the trial on that worker's lane. "process" when it never wrote one."""
        pid = self._pids[run.slot] if run.slot is not None and self._pids is not None else 0
        return f"process-{pid}" if pid else "process"

    def close(self) -> None:
        """Stop every worker (a running evaluation is abandoned; the search loop keeps it as pending)."""
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
            self._pool = None
        self._running = {}


_evaluate: EvaluateFn | None = None  # the worker process's evaluate function, set once by _init_worker
_pids: Any = None  # the pool's shared pid table (`ProcessExecutor._pids`), set by _init_worker
_not_loaded: str | None = None  # why _init_worker could not load it: each job then raises _NotLoaded


def _init_worker(payload: Any, threads: int, pids: Any = None) -> None:
    """Worker start: die with the driver, ignore Ctrl-C (the driver stops the pool), pin threads, load evaluate.

    `threads` reaches torch however it is imported: set now where it is (inherited from the driver under fork,
    imported by the main script or the cloudpickled function under spawn), else as soon as something imports it
    (`_PinTorchThreads`: an evaluate that imports torch itself); OMP_NUM_THREADS and MKL_NUM_THREADS say it to other
    libraries loaded later and to programs evaluate starts. A load that fails is remembered, not raised: pebble
    would log it, restart the worker and, with no job taken, abort every job in flight as "All workers expired"
    (journaled as failed trials that never ran)."""
    global _evaluate, _not_loaded, _pids
    _pids = pids
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the driver died before prctl took effect
            os._exit(1)
    if hasattr(os, "setpgid"):
        _lead_process_group()
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "torch" not in sys.modules:
        sys.meta_path.insert(0, _PinTorchThreads(threads))
    try:
        _evaluate = payload if callable(payload) else __import__("cloudpickle").loads(payload)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - reported by each job, then by the driver
        _not_loaded = _one_line(e)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(threads)


def _lead_process_group() -> None:
    """Make this worker the leader of its own process group, so that stopping it (pebble sends SIGTERM on timeout
    and on close) kills the programs `evaluate` started too, instead of leaving them running under init. Processes
    forked from the worker inherit the handler and keep the one they had (pebble's exit)."""
    os.setpgid(0, 0)
    leader, previous = os.getpid(), signal.getsignal(signal.SIGTERM)

    def stop_group(signum: int, frame: Any) -> None:
        if os.getpid() == leader and os.getpgrp() == leader:
            os.killpg(leader, signal.SIGKILL)  # this worker included: it is being stopped and holds no state
        if callable(previous):
            previous(signum, frame)
        else:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, stop_group)


class _PinTorchThreads(importlib.abc.MetaPathFinder):
    """Sets torch's thread count as soon as torch is imported in this worker, before any of its code runs (torch
    started from OMP_NUM_THREADS caps it at the machine's cores), then leaves `sys.meta_path`."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != "torch":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)  # the finders after this one: torch's own spec and loader
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module, threads = loader.exec_module, self.threads

        def exec_and_pin(module: types.ModuleType) -> None:
            exec_module(module)
            module.set_num_threads(threads)

        loader.exec_module = exec_and_pin  # type: ignore[method-assign] # this import's loader instance only
        return spec


def _one_line(e: BaseException) -> str:
    """`e` as "Type: message" on one line."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _evaluate_in_worker(arch: dict[str, Any], judge: Pruning | None = None, slot: int | None = None
                        ) -> tuple[dict[str, float] | None, str | None, float, float, str, dict[str, Any]]:
    """Evaluate one architecture; under `judge` (a pruner's copy), its reports may stop it early. This worker's pid
    goes to entry `slot` of the pid table first, so a job it never returns (timed out) is still named by it."""
    if slot is not None and _pids is not None:
        _pids[slot] = os.getpid()  # one aligned 8-byte store: no lock a killed worker could leave held
    if _not_loaded is not None:
        raise _NotLoaded(_not_loaded)
    assert _evaluate is not None, "worker not initialised"
    started = time.time()
    metrics, error, extra = run_judged(_evaluate, Architecture(arch), judge)
    return metrics, error, started, time.time(), f"process-{os.getpid()}", extra
