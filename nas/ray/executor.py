"""Ray executor for cheap and medium evaluations: a pool of long-lived Ray actors, optionally batched.

A Tune trial costs about a second of fixed overhead here, so evaluations that take milliseconds (table
lookups, predictors, inherited-weight accuracy) run on `workers` long-lived actors that receive the
evaluate function once; `batch_size > 1` sends several architectures per call. When an actor's process
dies (killed, out of memory, its node lost), the actor is replaced by a fresh one and the evaluation in
flight is retried, up to `max_retries` times, after which the trial is marked failed with Ray's error.
(Ray's own `max_task_retries` is not used: a retry sent while the actor restarts can fail at once with
`ActorUnavailableError` and use up the retries.) More actors than the cluster can place at once (workers
times cpus/gpus per actor, counted per node) are refused when the search is prepared, before its workdir is
written (Ray is connected to, or started, then), and work goes only to actors Ray has placed. Under a pruner (`nas.search(..., pruner="median")`) each call carries a copy of the pruning history
as it stood when the call was sent, the actor judges its evaluations' `nas.report_metrics` values against it, and
their curves join the history when the call returns (as local worker processes do). Training trials that want
Ray Tune's schedulers or per-trial GPUs go to `nas.ray.tune.RayTuneExecutor`.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import sysconfig
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from types import FunctionType, MethodType, ModuleType
from typing import Any

from nas.errors import ConfigError, check_count, check_int, check_number
from nas.executors import Completed, EvaluateFn, Executor, Job, run_judged
from nas.pruning import Pruning
from nas.spaces import Architecture

log = logging.getLogger(__name__)

QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_IMPORT_WARNING": "1", "RAY_AIR_NEW_OUTPUT": "0"}
"""Environment defaults applied (unless already set) before Ray starts: no usage statistics sent anywhere, and
Tune's classic output, which honours `verbose=0` (the new engine prints an experiment box regardless)."""


MIN_OBJECT_STORE_MB = 75
"""Ray refuses a smaller object store (its minimum is 75 MiB)."""

PROBE_S = 5.0
"""Seconds a cluster's HOST:PORT gets to accept a connection before `connect` says no cluster answered there (Ray
itself retries such an address for about 3 minutes, then ends the process with SystemExit: 15)."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how big: `address` None starts a local Ray instance (then `num_cpus` caps it), "auto" or
    "HOST:PORT" joins a running cluster; `object_store_mb` sizes a local instance's object store."""

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    object_store_mb: int = 200

    def __post_init__(self) -> None:
        """Checked when the executor is built (a run file's `[executor]` table included), not in `ray.init`,
        which raised a bare TypeError or ValueError after the journal header was written."""
        if self.address is not None and not (isinstance(self.address, str) and _valid_address(self.address)):
            raise ConfigError(f"address: expected None (start a local Ray instance), \"auto\" or \"HOST:PORT\" "
                              f"(e.g. 10.0.0.5:6379, or ray://HOST:10001 for Ray Client), got {self.address!r}")
        if self.num_cpus is not None:
            check_count(self.num_cpus, "num_cpus", " (CPUs of the local Ray instance) or None")
        if self.num_gpus is not None:
            check_int(self.num_gpus, "num_gpus", 0)
        check_int(self.object_store_mb, "object_store_mb", MIN_OBJECT_STORE_MB)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_ADDRESS = re.compile(r"(ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")


def _valid_address(address: str) -> bool:
    """Whether Ray can parse `address`: "auto", "local", or [ray://]HOST:PORT with a port in 1..65535 (Ray's
    "Invalid address format" otherwise came after the journal header was written)."""
    if address in ("auto", "local"):
        return True
    match = _ADDRESS.fullmatch(address)
    return match is not None and 1 <= int(match.group(3)) <= 65535


def check_reachable(address: str, timeout_s: float = PROBE_S) -> None:
    """ConfigError naming `address` when nothing at its [ray://]HOST:PORT accepts a connection within `timeout_s`
    seconds (a closed port says so at once); "auto" and "local" are Ray's to resolve."""
    match = _ADDRESS.fullmatch(address)
    if match is None:
        return
    host, port = match.group(2).strip("[]"), int(match.group(3))
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as e:
        why = f"no answer within {timeout_s:g} s" if isinstance(e, TimeoutError) else e.strerror or str(e)
        raise ConfigError(f"address: no Ray cluster answered at {address} ({why}); start one there (`ray start "
                          "--head` prints its address), give \"auto\" on a node of a running cluster, or None to "
                          "start a local Ray instance") from None


def connect(options: RayOptions | None = None) -> bool:
    """Initialise Ray unless it already is; True when this call started (and so should shut down) it.

    A local instance gets no dashboard, a small object store, and the driver's `sys.path` for its workers,
    so functions from scripts and test modules import on them as they do here.
    """
    import ray

    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        return False
    opts = options or RayOptions()
    path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    runtime_env = {"env_vars": {"PYTHONPATH": path, **{k: os.environ[k] for k in QUIET_ENV}}}
    if opts.address is None:
        # A new local instance gets Ray's secure default (token authentication) without the warning that
        # announces it on every start; any other record of that logger still gets through.
        auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
        quiet = _DropMessage("Token authentication is enabled for this Ray cluster")
        auth_log.addFilter(quiet)
        try:
            ray.init(address="local", num_cpus=opts.num_cpus, num_gpus=opts.num_gpus, include_dashboard=False,
                     object_store_memory=opts.object_store_mb * 2**20, log_to_driver=False,
                     runtime_env=runtime_env, configure_logging=False)
        finally:
            auth_log.removeFilter(quiet)
    else:
        check_reachable(opts.address)
        ray.init(address=opts.address, log_to_driver=False, runtime_env=runtime_env, configure_logging=False)
    return True


def capacity(cpus: float, gpus: float) -> tuple[int | None, str]:
    """How many actors (or trials) of `cpus` CPUs and `gpus` GPUs each the live nodes of the connected Ray
    cluster hold at once (None: no limit, nothing requested), and those nodes' resources in words."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", n.get("alive", False))]
    fits: int | None = None
    if cpus > 0 or gpus > 0:
        fits = 0
        for res in nodes:  # an actor runs on one node: count per node (2 nodes of 1 CPU hold no 2-CPU actor)
            each = [int(res.get(key, 0.0) / need + 1e-9) for key, need in (("CPU", cpus), ("GPU", gpus)) if need > 0]
            fits += min(each)
    total_cpu = sum(res.get("CPU", 0.0) for res in nodes)
    total_gpu = sum(res.get("GPU", 0.0) for res in nodes)
    words = f"{len(nodes)} node(s) with {total_cpu:g} CPU(s) and {total_gpu:g} GPU(s) in all"
    if len(nodes) > 1:
        words += ", per node: " + ", ".join(f"{res.get('CPU', 0.0):g} CPU/{res.get('GPU', 0.0):g} GPU" for res in nodes)
    return fits, words


def check_capacity(workers: int | None, cpus: float, gpus: float, what: str, all_at_once: bool = True) -> int:
    """`workers`, or by default as many as the connected cluster holds at once. A ConfigError naming workers,
    cpus, gpus and the cluster's resources when the cluster cannot place them (`all_at_once`: every worker, as
    an actor pool needs; else at least one, as Tune queues the rest): Ray would otherwise leave them waiting,
    silently, for resources that never come."""
    import ray

    fits, words = capacity(cpus, gpus)
    if fits is None:  # nothing requested per worker: one per CPU by default
        return workers if workers is not None else max(1, int(ray.cluster_resources().get("CPU", 1.0)))
    needed = workers if all_at_once and workers is not None else 1
    if fits < needed:
        asked = f"workers={workers}" if workers is not None else "workers (default)"
        raise ConfigError(f"{asked} with cpus={cpus:g} and gpus={gpus:g} per {what}: the Ray cluster holds {fits} "
                          f"such {what}(s) at once ({words}); lower workers, cpus or gpus, or add nodes")
    return workers if workers is not None else fits


class _DropMessage(logging.Filter):
    """Drops log records whose message starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


# ---------------------------------------------------------------------------------------- shipping code
def _installed_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(str(Path(paths[k]).resolve()) for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)


def _user_modules(obj: Any, depth: int = 0, seen: set[int] | None = None) -> set[ModuleType]:
    """Modules of the user functions and classes reachable from `obj` (closures, bound methods, dataclass
    fields, containers), for pickling them by value."""
    seen = set() if seen is None else seen
    if depth > 6 or id(obj) in seen:
        return set()
    seen.add(id(obj))
    found: set[ModuleType] = set()
    children: list[Any] = []
    if isinstance(obj, MethodType):
        children += [obj.__func__, obj.__self__]
    elif isinstance(obj, FunctionType):
        mod = sys.modules.get(obj.__module__)
        if mod is not None:
            found.add(mod)
        children += [c.cell_contents for c in (obj.__closure__ or ()) if _has_contents(c)]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children += list(obj)
    elif isinstance(obj, Mapping):
        children += list(obj.values())
    elif not isinstance(obj, type) and (is_dataclass(obj) or callable(obj)) and hasattr(obj, "__dict__"):
        mod = sys.modules.get(type(obj).__module__)
        if mod is not None:
            found.add(mod)
        children += list(vars(obj).values())
    for child in children:
        found |= _user_modules(child, depth + 1, seen)
    return found


def _has_contents(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def ship_by_value(evaluate: Any) -> list[str]:
    """Register with Ray's cloudpickle, by value, the user modules `evaluate` needs (scripts loaded by
    `nas run`, test modules, your own files), which a worker on another node may not be able to import by
    name; installed packages and `nas` are imported on the workers as usual. Returns the names registered."""
    from ray import cloudpickle

    roots = _installed_roots()
    names = []
    for mod in _user_modules(evaluate):
        name, file = mod.__name__, getattr(mod, "__file__", None)
        if name == "__main__" or name.split(".")[0] == "nas" or not file or name in sys.builtin_module_names:
            continue
        if str(Path(file).resolve()).startswith(roots):
            continue
        try:
            cloudpickle.register_pickle_by_value(mod)
            names.append(name)
        except ValueError:
            continue
    return names


# ---------------------------------------------------------------------------------------- the actor
class _Worker:
    """Body of one long-lived actor: holds the evaluate function and runs batches of architectures."""

    def __init__(self, evaluate: EvaluateFn) -> None:
        self.evaluate = evaluate
        self.name = f"ray-{_node_ip()}-{os.getpid()}"

    def run(self, archs: list[dict[str, Any]], judge: Pruning | None = None
            ) -> list[tuple[dict[str, float] | None, str | None, float, float, str, dict[str, Any]]]:
        """Evaluate `archs` in turn; under `judge` (a copy of the search's pruning history, which each finished
        evaluation here joins) their reports may stop them early."""
        out = []
        for a in archs:
            t0 = time.time()
            metrics, error, extra = run_judged(self.evaluate, Architecture(a), judge)
            out.append((metrics, error, t0, time.time(), self.name, extra))
        return out

    def pid(self) -> int:
        return os.getpid()


def _node_ip() -> str:
    import ray

    try:
        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - a name for the journal only
        return "node"


@dataclass
class _Batch:
    jobs: list[Job]
    actor: Any
    attempts: int = 0


class RayExecutor(Executor):
    """`workers` long-lived Ray actors (each `cpus`/`gpus`, fractional allowed) evaluating asynchronously.

    `address`: None starts a local Ray instance for the search (shut down at the end), "auto" or
    "HOST:PORT" joins a cluster. `workers` defaults to as many actors as the cluster holds at once (its CPUs
    divided by `cpus`); more than it holds (they would wait forever) is refused by `check_evaluate`, when the search
    is prepared, and again at `start`. Work goes only to
    actors Ray has placed. `batch_size` architectures travel per call (for sub-millisecond evaluations); a
    batch whose worker process dies is retried up to `max_retries` times, then its trials fail with the error.
    Under a pruner the actors judge each evaluation against the trials finished when its call was sent.
    """

    prunes = True

    placement_warning_s = 60.0
    """Seconds without any actor placed, while work waits for one, before a warning says so (other jobs may
    hold the cluster's resources)."""

    def __init__(self, address: str | None = None, workers: int | None = None, cpus: float = 1.0,
                 gpus: float = 0.0, batch_size: int = 1, max_retries: int = 2, num_cpus: int | None = None,
                 object_store_mb: int = 200) -> None:
        if workers is not None:  # checked before anything compares them: a run file's "2" is named, no TypeError
            check_count(workers, "workers")
        cpus, gpus = check_number(cpus, "cpus", positive=False), check_number(gpus, "gpus", positive=False)
        check_count(batch_size, "batch_size")
        check_int(max_retries, "max_retries", 0)
        self.options = RayOptions(address, num_cpus, None, object_store_mb)
        self.workers, self.cpus, self.gpus = workers, cpus, gpus
        self.batch_size, self.max_retries = batch_size, max_retries
        self._owns_ray = False
        self._idle: list[Any] = []
        self._starting: dict[Any, Any] = {}  # ready probe (ObjectRef) -> actor not yet placed or started
        self._actors: list[Any] = []
        self._queue: list[Job] = []
        self._running: dict[Any, _Batch] = {}  # ObjectRef -> batch
        self._evaluate_ref: Any = None
        self._actor_cls: Any = None
        self._pickled: tuple[EvaluateFn, int] | None = None  # check_evaluate's pickled size, reused by start

    def check_evaluate(self, evaluate: EvaluateFn) -> None:
        """`evaluate` must pickle (it is sent to each actor): one holding a lock, an open file or a connection is
        refused here, naming the cause, before the journal is written or Ray is started. Then Ray is connected to (or
        started, and kept for `start`) and a pool the cluster cannot place is refused, still before the journal is
        written; a Ray this executor started is shut down again on a refusal."""
        self._pickled = (evaluate, self._pickle(evaluate))
        self._owns_ray = connect(self.options) or self._owns_ray
        try:
            check_capacity(self.workers, self.cpus, self.gpus, "actor")
        except BaseException:
            self.close()
            raise

    def _pickle(self, evaluate: EvaluateFn) -> int:
        """The size of `evaluate` pickled as Ray sends it (its user modules by value); ConfigError if it cannot be."""
        from ray import cloudpickle

        shipped = ship_by_value(evaluate)
        if shipped:
            log.info("shipping modules %s to Ray workers by value", shipped)
        try:
            return len(cloudpickle.dumps(evaluate))
        except Exception as e:  # noqa: BLE001 - whatever pickling raises, the user must change evaluate
            raise ConfigError(f"evaluate cannot be sent to Ray workers: {type(e).__name__}: {e}; create what cannot "
                              "be pickled (locks, open files, connections) inside it, or use executor='local' or "
                              "executor='processes' (start_method='fork')") from None

    def start(self, evaluate: EvaluateFn) -> None:
        """Connect to (or start) Ray and create the actors; a failure after connecting closes the pool, so a Ray
        instance this search started is shut down (a later search would otherwise reuse it and leave it running)."""
        import ray

        cached = self._pickled
        size = cached[1] if cached is not None and cached[0] is evaluate else self._pickle(evaluate)
        self._owns_ray = connect(self.options) or self._owns_ray  # check_evaluate may have started it
        try:
            self.workers = check_capacity(self.workers, self.cpus, self.gpus, "actor")
            self._actor_cls = ray.remote(_Worker).options(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0)
            # Small functions travel inline with each actor's creation; large ones (a supernet evaluator) go to
            # the object store once, referenced for the pool's lifetime (replacement actors need them too).
            self._evaluate_ref = ray.put(evaluate) if size > 2**20 else evaluate
            self._actors = [self._actor_cls.remote(self._evaluate_ref) for _ in range(self.workers)]
            self._starting = {a.pid.remote(): a for a in self._actors}  # idle once placed and started
        except BaseException:
            self.close()
            raise

    def _replace(self, actor: Any) -> Any:
        """A fresh actor in place of one whose process died."""
        import ray

        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        new = self._actor_cls.remote(self._evaluate_ref)
        self._actors = [new if a is actor else a for a in self._actors]
        return new

    def free_slots(self) -> int:
        assert self.workers is not None, "start() first"
        busy = sum(len(b.jobs) for b in self._running.values())
        return self.workers * self.batch_size - busy - len(self._queue)

    def submit(self, job: Job) -> None:
        self._queue.append(job)
        self._dispatch(flush=False)

    def _dispatch(self, flush: bool) -> None:
        """Send queued jobs to idle actors: full batches at once, partial ones when `flush`."""
        while self._idle and self._queue and (flush or len(self._queue) >= self.batch_size):
            jobs, self._queue = self._queue[:self.batch_size], self._queue[self.batch_size:]
            self._send(_Batch(jobs, self._idle.pop(0)))

    def _send(self, batch: _Batch) -> None:
        """Call `batch.actor` on the batch's architectures, with a copy of the pruning history so far."""
        judge = self._pruning.snapshot() if self._pruning is not None else None
        self._running[batch.actor.run.remote([j.arch.to_dict() for j in batch.jobs], judge)] = batch

    def wait(self) -> list[Completed]:
        import ray

        out: list[Completed] = []
        waited = 0.0
        while not out:  # a retried batch completes nothing yet
            self._dispatch(flush=True)
            if not self._running and not (self._queue and self._starting):
                raise RuntimeError("wait() with nothing submitted")
            refs = list(self._running) + list(self._starting)
            t0 = time.monotonic()
            ready, _ = ray.wait(refs, num_returns=1, timeout=self.placement_warning_s)
            if not ready:
                waited += time.monotonic() - t0
                if not self._running:
                    log.warning("none of %d Ray actor(s) (cpus=%g, gpus=%g each) placed after %.0f s: waiting for "
                                "the cluster's resources (%s free)", len(self._starting), self.cpus, self.gpus,
                                waited, _free_words())
                continue
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in ready:
                if ref in self._starting:  # placed and started (or failed to: its first call says so)
                    self._idle.append(self._starting.pop(ref))
            out += self._collect([ref for ref in ready if ref in self._running])
        self._dispatch(flush=True)
        return out

    def poll(self) -> list[Completed]:
        """The results of calls already finished, without waiting or retrying (the search is stopping: a batch
        whose worker died stays pending in its snapshot)."""
        import ray

        if not self._running:
            return []
        ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        return self._collect(ready, retry=False)

    def _collect(self, ready: list[Any], retry: bool = True) -> list[Completed]:
        """Results of finished calls; a call whose worker died is retried on a fresh actor (bounded), or with
        `retry=False` left out."""
        import ray

        out: list[Completed] = []
        for ref in ready:
            batch = self._running.pop(ref)
            try:
                results = ray.get(ref)
            except ray.exceptions.RayError as e:  # the worker process died (user errors never get here)
                if not retry:
                    continue
                actor = self._replace(batch.actor)
                text = _one_line(e)
                if batch.attempts < self.max_retries:
                    log.warning("Ray worker died evaluating %d architecture(s); retry %d of %d on a new worker: %s",
                                len(batch.jobs), batch.attempts + 1, self.max_retries, text)
                    self._send(_Batch(batch.jobs, actor, batch.attempts + 1))
                    continue
                self._idle.append(actor)
                now = time.time()
                out += [Completed(j.arch, None, f"Ray worker died {batch.attempts + 1} times (after "
                                  f"{self.max_retries} retries): {text}", now, now, "ray-dead") for j in batch.jobs]
                continue
            self._idle.append(batch.actor)
            for job, (metrics, error, t0, t1, worker, extra) in zip(batch.jobs, results):
                out.append(self._returned(job.arch, metrics, error, t0, t1, worker, extra))
        return out

    def actor_pids(self) -> list[int]:
        """Process ids of the pool's actors (for diagnostics and fault-injection tests)."""
        import ray

        return ray.get([a.pid.remote() for a in self._actors])

    def close(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors, self._idle, self._running, self._queue, self._evaluate_ref = [], [], {}, [], None
        self._starting = {}
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False


def _free_words() -> str:
    import ray

    free = ray.available_resources()
    return f"{free.get('CPU', 0.0):g} CPU(s), {free.get('GPU', 0.0):g} GPU(s)"


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:500]}"
