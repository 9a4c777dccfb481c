"""Ray Tune for training trials: our strategies as a Tune `Searcher`, and an executor running trials on Tune.

* `report(metrics)`: called inside `evaluate` once per epoch; Tune schedulers (ASHA, async Hyperband)
  read these reports and stop poor trials early. Outside a Tune trial it does nothing, so the same
  evaluate runs in-process unchanged.
* `StrategySearcher`: any ask/tell `Strategy` as a Tune `Searcher` (suggest / on_trial_complete, and
  save / restore as plain JSON), optionally journaling every finished trial to a workdir so `nas status`,
  `nas pareto` and `nas.load` read a Tune-driven run like any other search.
* `RayTuneExecutor`: the `nas.Executor` contract on one long-running Tune experiment (per-trial
  cpus/gpus, fractional too, concurrency = `workers`, a scheduler, `max_retries` restarts of a trial whose
  worker died). `nas.search` stays the driver and writes the journal; the Tune experiment is fed by a
  `StrategySearcher` over the architectures the search submits.

A scheduler ranks trials on one metric (`metric`, `mode`): name an objective, or have `evaluate` report a
scalarisation (e.g. `score = accuracy - 0.1 * latency_ms`) when several objectives matter. The strategy
still receives every metric of every trial; a stopped trial keeps its last report (`epochs` says how many).
"""

from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from nas import jsonio
from nas.errors import ConfigError
from nas.executors import Completed, EvaluateFn, Executor, Job, run_job
from nas.objectives import Problem
from nas.ray.executor import RayOptions, connect, ship_by_value
from nas.spaces import Architecture, Space
from nas.experiment import Experiment, open_experiment, search_config
from nas.store import Journal, Trial
from nas.strategies import Deduplicate, Strategy, TrialResult

log = logging.getLogger(__name__)

EPOCH = "nas_epoch"
"""Result key counting `report` calls; the schedulers' time attribute."""

_REPORTER: ContextVar[Callable[[Mapping[str, float]], None] | None] = ContextVar("nas_tune_reporter", default=None)


def report(metrics: Mapping[str, float]) -> None:
    """Report intermediate metrics (e.g. after each epoch) to the Tune trial running this evaluation.

    A scheduler may stop the trial at this call. Outside a Tune trial (in-process search, actor pool) it
    is a no-op.
    """
    reporter = _REPORTER.get()
    if reporter is not None:
        reporter(metrics)


def _float_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The user's numeric metrics of a Tune result (Tune's own bookkeeping keys left out)."""
    from ray.tune.result import AUTO_RESULT_KEYS

    skip = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "config", EPOCH, "checkpoint_dir_name",
                                    "should_checkpoint"}
    return {k: float(v) for k, v in result.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _nas_part(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The "nas" record of a trial's result, nested or as Tune flattens it for searchers ("nas/metrics/acc")."""
    if not result:
        return {}
    if isinstance(result.get("nas"), Mapping):
        return dict(result["nas"])
    part: dict[str, Any] = {}
    for key, value in result.items():
        if key.startswith("nas/metrics/"):
            part.setdefault("metrics", {})[key[len("nas/metrics/"):]] = value
        elif key.startswith("nas/"):
            part[key[len("nas/"):]] = value
    if part:
        part.setdefault("metrics", {})
    return part


def search_header(space: Space, problem: Problem, strategy: str, seed: int, budget: int,
                  metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The journal header `nas.search` writes, for Tune-driven runs journaled by `StrategySearcher`."""
    return search_config(space, problem, strategy, {}, seed, budget, None, metadata)


class StrategySearcher(Searcher):
    """A `nas.strategies.Strategy` as a Tune `Searcher`: each suggested config is `{"arch": plain dict}`.

    The strategy is wrapped in `Deduplicate` (as `nas.search` does) unless `deduplicate=False`.
    With `workdir` (and the `header` from `search_header`), every finished trial is appended to the
    journal there. `save`/`restore` write the strategy's plain-data state and the live trials as JSON, so
    `Tuner.restore` continues the same search. When the strategy has nothing to propose, Tune is told the
    search is finished (`finish_when_empty`) or asked again later.
    """

    def __init__(self, strategy: Strategy, metric: str | None = None, mode: str | None = None,
                 workdir: str | Path | None = None, header: Mapping[str, Any] | None = None,
                 finish_when_empty: bool = True, deduplicate: bool = True,
                 on_complete: Callable[[str, Architecture, Mapping[str, Any] | None, bool], None] | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self.strategy = Deduplicate(strategy) if deduplicate and not isinstance(strategy, (_Feed, Deduplicate)) \
            else strategy
        self.finish_when_empty = finish_when_empty
        self.on_complete = on_complete
        self.live: dict[str, Architecture] = {}
        self.workdir = Path(workdir) if workdir is not None else None
        self.header = dict(header) if header is not None else None
        self.experiment: Experiment | None = None
        self.journaled: set[str] = set()  # Tune trial ids already in the journal
        if self.workdir is not None:
            self._open()

    def _open(self) -> Experiment:
        """Claim the workdir (`nas.experiment.open_experiment`: lock, same-search check) and note the Tune ids
        journaled there: after `Tuner.restore` Tune reruns the trials that finished after its last experiment
        checkpoint, and those must not be journaled twice."""
        assert self.workdir is not None
        if self.experiment is None:
            journal = Journal(self.workdir)
            if self.header is None and not journal.exists():
                raise ConfigError("header: a new journal needs its header (see nas.ray.tune.search_header)")
            config = self.header if self.header is not None else journal.read().config
            self.experiment = open_experiment(self.workdir, config)
            self.journaled = {str(t.extra["tune_trial_id"]) for t in self.experiment.trials
                              if "tune_trial_id" in t.extra}
        return self.experiment

    def close(self) -> None:
        """Release the workdir (its lock), e.g. before another search writes it from this process."""
        if self.experiment is not None:
            self.experiment.close()
            self.experiment = None

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        archs = self.strategy.ask(1)
        if not archs:
            return Searcher.FINISHED if self.finish_when_empty else None
        self.live[trial_id] = archs[0]
        return {"arch": archs[0].to_dict()}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        arch = self.live.pop(trial_id, None)
        if arch is None:
            return
        nas_part = _nas_part(result)
        metrics = dict(nas_part.get("metrics") or {}) if nas_part else _float_metrics(result or {})
        err = nas_part.get("error") or ("Tune reported the trial as errored" if error else None)
        if err is None and self.strategy.problem is not None:
            err = self.strategy.problem.result_error(metrics)  # a missing or non-finite objective fails the trial
        failed = err is not None
        self.strategy.tell(arch, TrialResult.of("failed" if failed else "ok", metrics))
        experiment = self._open() if self.workdir is not None else None
        if experiment is not None and trial_id not in self.journaled:
            now = time.time()
            experiment.record(Trial(len(experiment.trials), arch.to_dict(), arch.id, metrics,
                                    "failed" if failed else "ok", float(nas_part.get("started", now)),
                                    float(nas_part.get("finished", now)), str(nas_part.get("worker", "ray-tune")),
                                    err, {"tune_trial_id": trial_id}))
            self.journaled.add(trial_id)
        if self.on_complete is not None:
            self.on_complete(trial_id, arch, result, error)

    def save(self, checkpoint_path: str) -> None:
        state = {"strategy": self.strategy.state_dict(), "live": {k: a.to_dict() for k, a in self.live.items()}}
        jsonio.write_json(checkpoint_path, state, indent=None, allow_nan=True)

    def restore(self, checkpoint_path: str) -> None:
        state = jsonio.read_json(checkpoint_path, "Tune searcher checkpoint")
        self.strategy.load_state_dict(state["strategy"])
        self.live = {k: Architecture(a) for k, a in state["live"].items()}
        if self.workdir is not None:
            self._open()  # the journal may be ahead of this checkpoint: its Tune ids are what counts

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its config (with this searcher) for `Tuner.restore`: leave out live callbacks."""
        state = self.__dict__.copy()
        state["on_complete"] = None
        state["experiment"] = None  # the workdir's lock stays with this process; a restored copy reopens it
        if isinstance(self.strategy, _Feed):
            state["strategy"] = _Feed()
        return state


class _Feed(Strategy):
    """An ask/tell source fed by `RayTuneExecutor.submit`: `ask` pops submitted architectures."""

    name = "feed"
    problem = None  # type: ignore[assignment]  # the search loop that feeds it judges the results

    def __init__(self) -> None:  # noqa: D107 - no space or problem: it proposes what it is given
        self.todo: list[Architecture] = []
        self.lock = threading.Lock()

    def ask(self, n: int = 1) -> list[Architecture]:
        with self.lock:
            out, self.todo = self.todo[:n], self.todo[n:]
        return out

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        pass

    def put(self, arch: Architecture) -> None:
        with self.lock:
            self.todo.append(arch)

    def state_dict(self) -> dict[str, Any]:
        return {"todo": [a.to_dict() for a in self.todo]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.todo = [Architecture(a) for a in state["todo"]]

    def __getstate__(self) -> dict[str, Any]:
        return {"todo": list(self.todo)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.todo, self.lock = state["todo"], threading.Lock()


def _run_trial(config: dict[str, Any], evaluate: EvaluateFn) -> None:
    """The Tune function trainable: evaluate one architecture, forwarding its `report` calls to Tune."""
    import ray
    from ray import tune

    arch = Architecture(config["arch"])
    worker = f"ray-tune-{ray.util.get_node_ip_address()}-{os.getpid()}"
    started, epochs = time.time(), 0

    def send(metrics: Mapping[str, float], final: bool, error: str | None = None) -> None:
        m = {k: float(v) for k, v in metrics.items()}
        if epochs:
            m.setdefault("epochs", float(epochs))
        tune.report({**m, EPOCH: max(epochs, 1), "nas": {"metrics": m, "error": error, "started": started,
                                                         "finished": time.time(), "worker": worker,
                                                         "final": final}})

    def reporter(metrics: Mapping[str, float]) -> None:
        nonlocal epochs
        epochs += 1
        send(metrics, final=False)

    token = _REPORTER.set(reporter)
    try:
        metrics, error = run_job(evaluate, arch)
    finally:
        _REPORTER.reset(token)
    send(metrics or {}, final=True, error=error)


def make_scheduler(scheduler: Any, metric: str | None, mode: str | None, max_epochs: int,
                   grace_period: int = 1, reduction_factor: float = 2) -> Any:
    """None, "asha", "hyperband" (asynchronous, 3 brackets) or a Tune `TrialScheduler` instance."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    if scheduler is None or isinstance(scheduler, TrialScheduler):
        return scheduler
    if scheduler not in ("asha", "hyperband"):
        raise ConfigError(f"scheduler: expected 'asha', 'hyperband' or a Tune TrialScheduler, got {scheduler!r}")
    if metric is None or mode not in ("min", "max"):
        raise ConfigError(f"scheduler {scheduler!r}: give metric= (the reported metric it ranks trials on) and "
                          f"mode='min' or 'max' (got metric={metric!r}, mode={mode!r})")
    return ASHAScheduler(time_attr=EPOCH, metric=metric, mode=mode, max_t=max_epochs, grace_period=grace_period,
                         reduction_factor=reduction_factor, brackets=3 if scheduler == "hyperband" else 1)


def settle(cpus: float, timeout_s: float = 10.0) -> float:
    """Wait (at most `timeout_s`) until `cpus` CPUs are free again: Tune releases its trial actors
    asynchronously after `fit()` returns, and a search started at once would otherwise find fewer free
    CPUs and run fewer trials at a time. Returns the seconds waited."""
    import ray

    t0 = time.monotonic()
    while ray.available_resources().get("CPU", 0.0) < cpus and time.monotonic() - t0 < timeout_s:
        time.sleep(0.1)
    return time.monotonic() - t0


class RayTuneExecutor(Executor):
    """Evaluations as Ray Tune trials: per-trial `cpus`/`gpus` (fractional allowed), at most `workers` at
    once, an optional `scheduler` ("asha", "hyperband" or a Tune scheduler) on `metric`/`mode` over
    `max_epochs` reports, and `max_retries` restarts of a trial whose worker process died.

    `address`: None starts a local Ray instance, "auto" or "HOST:PORT" joins a cluster. Tune's own files go
    under `storage_path` (default: a temporary folder); the search's results are in its journal.
    """

    def __init__(self, address: str | None = None, workers: int | None = None, cpus: float = 1.0,
                 gpus: float = 0.0, scheduler: Any = None, metric: str | None = None, mode: str | None = None,
                 max_epochs: int = 100, grace_period: int = 1, reduction_factor: float = 2, max_retries: int = 2,
                 storage_path: str | None = None, num_cpus: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"workers: expected a positive int, got {workers!r}")
        if cpus < 0 or gpus < 0:
            raise ConfigError(f"cpus/gpus: expected non-negative numbers, got cpus={cpus!r} gpus={gpus!r}")
        self.options = RayOptions(address, num_cpus)
        self.workers, self.cpus, self.gpus, self.max_retries = workers, cpus, gpus, max_retries
        self.scheduler = make_scheduler(scheduler, metric, mode, max_epochs, grace_period, reduction_factor)
        self.storage_path = storage_path
        self._feed = _Feed()
        self._done: queue.Queue[Completed] = queue.Queue()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._owns_ray = False
        self._searcher: StrategySearcher | None = None
        self._free_at_start = 0.0

    def start(self, evaluate: EvaluateFn) -> None:
        import ray
        from ray import tune

        self._owns_ray = connect(self.options)
        ship_by_value(evaluate)
        if self.workers is None:
            cpus = ray.cluster_resources().get("CPU", 1.0)
            self.workers = max(1, int(cpus // self.cpus)) if self.cpus > 0 else max(1, int(cpus))
        self._free_at_start = ray.available_resources().get("CPU", 0.0)
        self._searcher = StrategySearcher(self._feed, finish_when_empty=False, on_complete=self._completed)
        trainable = tune.with_resources(tune.with_parameters(_run_trial, evaluate=evaluate),
                                        {"cpu": self.cpus, "gpu": self.gpus})
        storage = self.storage_path or os.path.join(tempfile.gettempdir(), "nas-tune")
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=self._searcher, scheduler=self.scheduler, num_samples=-1,
                                        max_concurrent_trials=self.workers, reuse_actors=True),
            run_config=tune.RunConfig(name=f"nas-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
                                      storage_path=os.path.abspath(storage), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=self.max_retries),
                                      checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)))

        def fit() -> None:
            try:
                tuner.fit()
            except BaseException as e:  # noqa: BLE001 - handed to the search thread in wait()
                self._failure = e
                self._done.put(None)  # type: ignore[arg-type]

        self._thread = threading.Thread(target=fit, name="nas-ray-tune", daemon=True)
        self._thread.start()

    def _completed(self, trial_id: str, arch: Architecture, result: Mapping[str, Any] | None, error: bool) -> None:
        nas_part = _nas_part(result)
        metrics = nas_part.get("metrics") if nas_part and not nas_part.get("error") else None
        err = nas_part.get("error")
        if error:
            metrics, err = None, (f"Ray Tune trial {trial_id} failed after {self.max_retries} retries "
                                  "(its worker died or Tune raised); see the Tune logs under "
                                  f"{self.storage_path or os.path.join(tempfile.gettempdir(), 'nas-tune')}")
        now = time.time()
        self._done.put(Completed(arch, dict(metrics) if metrics is not None else None,
                                 err or (None if metrics is not None else "trial returned no result"),
                                 float(nas_part.get("started", now)), float(nas_part.get("finished", now)),
                                 str(nas_part.get("worker", "ray-tune"))))

    def free_slots(self) -> int:
        assert self.workers is not None, "start() first"
        return self.workers - self._in_flight

    def submit(self, job: Job) -> None:
        self._feed.put(job.arch)
        self._in_flight += 1

    def wait(self) -> list[Completed]:
        first = self._done.get()
        out = [first]
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                break
        if any(c is None for c in out):
            raise RuntimeError(f"Ray Tune stopped: {self._failure!r}") from self._failure
        self._in_flight -= len(out)
        return out

    def close(self) -> None:
        import ray

        self._feed.ask(len(self._feed.todo))  # nothing new starts; Tune ends once the running trials are done
        if self._searcher is not None:
            self._searcher.finish_when_empty = True
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            settle(self._free_at_start)
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
