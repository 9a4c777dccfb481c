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
  `StrategySearcher` over the architectures the search submits. A search that ends early (Ctrl-C, an
  error) stops the trials still running at once instead of waiting for them.

A scheduler ranks trials on one metric (`metric`, `mode`): name an objective, or have `evaluate` report a
scalarisation (e.g. `score = accuracy - 0.1 * latency_ms`) when several objectives matter. The strategy
still receives every metric of every trial; a stopped trial keeps its last report (`epochs` says how many),
and fails, saying a scheduler stopped it, when that report lacks an objective or constraint metric. A report
that lacks the scheduler's metric ends the search with a ConfigError naming it.
"""

from __future__ import annotations

import logging
import json
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ray.tune.callback import Callback
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper

from nas import jsonio
from nas.errors import ConfigError, check_count, check_int, check_number
from nas.executors import Completed, EvaluateFn, Executor, Job, run_job
from nas.objectives import Problem
from nas.pruning import report_metrics, reporting
from nas.ray.executor import RayOptions, _DropMessage, check_capacity, connect, ship_by_value
from nas.spaces import Architecture, Space
from nas.experiment import Experiment, open_experiment, search_config
from nas.store import Journal, Trial
from nas.strategies import Deduplicate, Strategy, TrialResult
from nas.user_attrs import collecting

log = logging.getLogger(__name__)

EPOCH = "nas_epoch"
"""Result key counting `report` calls; the schedulers' time attribute."""

report = report_metrics  # `nas.report_metrics`: inside a Tune trial its calls go to Tune, whose scheduler may stop it there


def _float_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The user's numeric metrics of a Tune result (Tune's own bookkeeping keys left out)."""
    from ray.tune.result import AUTO_RESULT_KEYS

    skip = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "config", EPOCH, "checkpoint_dir_name",
                                    "should_checkpoint"}
    return {k: float(v) for k, v in result.items()  # "config/arch/a": the trial's config, as Tune flattens it
            if k not in skip and not k.startswith("config/") and isinstance(v, (int, float))
            and not isinstance(v, bool)}


def _timing(result: Mapping[str, Any] | None, nas_part: Mapping[str, Any]) -> tuple[float, float, str]:
    """(started, finished, worker) of a finished trial: from our trainable's record, else from Tune's result
    (its `time_total_s` before now, on `ray-tune-NODE-PID`), else now."""
    now = time.time()
    if nas_part:
        return (float(nas_part.get("started", now)), float(nas_part.get("finished", now)),
                str(nas_part.get("worker", "ray-tune")))
    result = result or {}
    took = result.get("time_total_s")
    started = now - float(took) if isinstance(took, (int, float)) and not isinstance(took, bool) else now
    worker = f"ray-tune-{result['node_ip']}-{result['pid']}" if "node_ip" in result and "pid" in result else "ray-tune"
    return started, now, worker


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


def _attrs_extra(nas_part: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's `set_user_attr`s, which its results carry as JSON text, as journal extra."""
    return {"user_attrs": json.loads(nas_part["user_attrs"])} if nas_part.get("user_attrs") else {}


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
            started, finished, worker = _timing(result, nas_part)
            experiment.record(Trial(len(experiment.trials), arch.to_dict(), arch.id, metrics,
                                    "failed" if failed else "ok", started, finished, worker,
                                    err, {"tune_trial_id": trial_id, **_attrs_extra(nas_part)}))
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


class _MetricMissing(BaseException):
    """Raised by `report` inside a trial when a report lacks the scheduler's metric: it ends the trial at once,
    past `run_job` (which turns user errors into failed trials): a misnamed metric is the search's error."""


class _Stopped(BaseException):
    """Tune stopped the trial inside a report (its `sys.exit(0)` there): carried past `run_job`, which fails a trial
    whose `evaluate` calls `sys.exit` itself, and re-raised as that exit so Tune ends the trial as it meant to."""


def _metric_missing(metric: str, got: Mapping[str, Any], where: str) -> str:
    return (f"metric: the scheduler ranks trials on {metric!r}, which is not among the metrics {where} "
            f"({', '.join(sorted(got)) or 'none'}); name one of those, or report {metric!r} too")


def _run_trial(config: dict[str, Any], evaluate: EvaluateFn, metric: str | None = None) -> None:
    """The Tune function trainable: evaluate one architecture, forwarding its `report` calls to Tune.

    `metric` (the scheduler's) is checked on every report: a report without it ends the trial with a
    `config_error` the executor raises as a ConfigError. Tune always sees it (a failed evaluation's result
    carries the last reported value, or NaN), so a failing trial never stops the whole Tune run.
    """
    import ray
    from ray import tune

    arch = Architecture(config["arch"])
    worker = f"ray-tune-{ray.util.get_node_ip_address()}-{os.getpid()}"
    started, epochs, last = time.time(), 0, math.nan

    attrs: dict[str, Any] = {}  # its set_user_attr calls so far: each result carries them (a stopped trial's last)

    def send(metrics: Mapping[str, float], final: bool, error: str | None = None,
             config_error: str | None = None) -> None:
        m = {k: float(v) for k, v in metrics.items()}
        if epochs:
            m.setdefault("epochs", float(epochs))
        shown = {**m, metric: m.get(metric, last)} if metric is not None else m
        tune.report({**shown, EPOCH: max(epochs, 1),
                     "nas": {"metrics": m, "error": error, "started": started, "finished": time.time(),
                             "worker": worker, "final": final,
                             **({"config_error": config_error} if config_error else {}),
                             **({"user_attrs": json.dumps(attrs)} if attrs else {})}})  # text: Tune flattens dicts

    def reporter(metrics: Mapping[str, float], step: int) -> None:  # Tune's scheduler counts reports, not steps
        nonlocal epochs, last
        if metric is not None and metric not in metrics:
            raise _MetricMissing(_metric_missing(metric, metrics, "report() got"))
        epochs += 1
        try:
            send(metrics, final=False)
        except SystemExit as e:  # a scheduler stopped the trial here
            raise _Stopped(e.code) from None
        if metric is not None:
            last = float(metrics[metric])

    try:
        with reporting(reporter), collecting() as attrs:
            metrics, error = run_job(evaluate, arch)
    except _MetricMissing as e:
        send({}, final=True, config_error=str(e))
        return
    except _Stopped as e:
        raise SystemExit(e.args[0] if e.args else 0) from None
    missing = None
    if metric is not None and epochs == 0 and metrics is not None and metric not in metrics:
        missing = _metric_missing(metric, metrics, "evaluate returned")  # it never reported: nothing to rank on
    send(metrics or {}, final=True, error=error, config_error=missing)


class FinishingASHA(AsyncHyperBandScheduler):
    """ASHA (`brackets > 1`: asynchronous Hyperband) that stops no trial at or after `max_t`.

    Tune's stops a trial at its `max_t`-th report (and may at a rung there): with `max_t` = the epochs
    `evaluate` trains, every trial that trained them all would end at its last `report`, before `evaluate`
    returns its final metrics. Here a trial that reached `max_t` has nothing left to save, so it finishes.
    """

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if result.get(self._time_attr, 0) >= self._max_t:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


def make_scheduler(scheduler: Any, metric: str | None, mode: str | None, max_epochs: int,
                   grace_period: int = 1, reduction_factor: float = 2) -> Any:
    """None, "asha", "hyperband" (asynchronous, 3 brackets; both `FinishingASHA`) or a Tune `TrialScheduler`
    instance (given `metric`/`mode` unless it has its own). Every option is checked here, by name."""
    if mode is not None and mode not in ("min", "max"):
        raise ConfigError(f"mode: expected 'min' or 'max', got {mode!r}")
    check_count(max_epochs, "max_epochs", " (the scheduler's max_t: the epochs a trial trains at most)")
    check_count(grace_period, "grace_period", " (epochs every trial trains before it can be stopped)")
    if grace_period > max_epochs:
        raise ConfigError(f"grace_period: {grace_period} exceeds max_epochs={max_epochs}: no trial could be stopped "
                          "before the end")
    if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, (int, float)) \
            or not reduction_factor > 1 or not math.isfinite(reduction_factor):
        raise ConfigError(f"reduction_factor: expected a number > 1 (each rung keeps 1/reduction_factor of the "
                          f"trials), got {reduction_factor!r}")
    if scheduler is None:
        return None
    if isinstance(scheduler, TrialScheduler):
        return _with_metric(scheduler, metric, mode)
    if scheduler not in ("asha", "hyperband"):
        raise ConfigError(f"scheduler: expected 'asha', 'hyperband' or a Tune TrialScheduler, got {scheduler!r}")
    if metric is None or mode is None:
        raise ConfigError(f"scheduler {scheduler!r}: give metric= (the reported metric it ranks trials on) and "
                          f"mode='min' or 'max' (got metric={metric!r}, mode={mode!r})")
    return FinishingASHA(time_attr=EPOCH, metric=metric, mode=mode, max_t=max_epochs, grace_period=grace_period,
                         reduction_factor=reduction_factor, brackets=3 if scheduler == "hyperband" else 1)


def _with_metric(scheduler: Any, metric: str | None, mode: str | None) -> Any:
    """A scheduler instance ranking on `metric`/`mode` (given to it unless it has its own, which must agree);
    a ConfigError when it would have none (Tune would fail only once trials run)."""
    from ray.tune.result import DEFAULT_METRIC

    if type(scheduler) is FIFOScheduler:  # (Tune's other schedulers subclass it)
        return scheduler  # ranks nothing
    name = type(scheduler).__name__
    own_metric = scheduler.metric if scheduler.metric not in (None, DEFAULT_METRIC) else None
    own_mode = getattr(scheduler, "_mode", None)
    for field, own, given in (("metric", own_metric, metric), ("mode", own_mode, mode)):
        if own is not None and given is not None and own != given:
            raise ConfigError(f"{field}: the {name} given as scheduler has {field}={own!r}, the executor "
                              f"{field}={given!r}; give it once, or the same in both")
    if (own_metric is None and metric is not None) or (own_mode is None and mode is not None):
        scheduler.set_search_properties(metric if own_metric is None else None, mode if own_mode is None else None)
    if scheduler.metric in (None, DEFAULT_METRIC) or getattr(scheduler, "_mode", None) is None:
        raise ConfigError(f"scheduler: the {name} has no metric or mode to rank trials on; give RayTuneExecutor "
                          f"metric= and mode='min' or 'max' (got metric={metric!r}, mode={mode!r})")
    return scheduler


def settle(cpus: float, timeout_s: float = 10.0) -> float:
    """Wait (at most `timeout_s`) until `cpus` CPUs are free again: Tune releases its trial actors
    asynchronously after `fit()` returns, and a search started at once would otherwise find fewer free
    CPUs and run fewer trials at a time. Returns the seconds waited."""
    import ray

    t0 = time.monotonic()
    while ray.available_resources().get("CPU", 0.0) < cpus and time.monotonic() - t0 < timeout_s:
        time.sleep(0.1)
    return time.monotonic() - t0


class _StopAll(Stopper):
    """Tune's stopper for `RayTuneExecutor.close`: once `stopped`, Tune stops every running trial and ends."""

    def __init__(self) -> None:
        self.stopped = False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.stopped


class _TrialActors(Callback):
    """Notes the actor of every trial Tune starts, so `RayTuneExecutor.close` can kill the ones still running an
    evaluation (Tune's own stop waits behind the running evaluation, then kills after 10 s)."""

    def __init__(self) -> None:
        self.actors: dict[str, Any] = {}

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        actor = getattr(getattr(trial, "temporary_state", None), "ray_actor", None)
        if actor is not None:
            self.actors[trial.trial_id] = actor

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.actors.pop(trial.trial_id, None)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.actors.pop(trial.trial_id, None)

    def __getstate__(self) -> dict[str, Any]:
        return {"actors": {}}  # live handles stay with this driver


def _summary(e: BaseException) -> str:
    """One line for an error Tune raised: a TuneError carries a whole traceback as text; its last line says what."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[-1] if lines and lines[0].startswith("Traceback") else " ".join(lines)
    return f"{type(e).__name__}: {text[:500]}"


class RayTuneExecutor(Executor):
    """Evaluations as Ray Tune trials: per-trial `cpus`/`gpus` (fractional allowed), at most `workers` at
    once, an optional `scheduler` ("asha", "hyperband" or a Tune scheduler) on `metric`/`mode` over
    `max_epochs` reports, and `max_retries` restarts of a trial whose worker process died.

    `address`: None starts a local Ray instance, "auto" or "HOST:PORT" joins a cluster. Tune's own files go
    under `storage_path` (default: a temporary folder); the search's results are in its journal. When the
    search ends early (Ctrl-C, an error), `close` stops the running trials at once: they were not completed,
    so the search's snapshot keeps them pending and a resume evaluates them.
    """

    grace_s = 1.0
    """Seconds `close` gives Tune to end by itself (it does at once after a normal end) before it kills the actors
    of trials still running."""
    stop_timeout_s = 30.0
    """Seconds `close` then waits for Tune to end."""

    def __init__(self, address: str | None = None, workers: int | None = None, cpus: float = 1.0,
                 gpus: float = 0.0, scheduler: Any = None, metric: str | None = None, mode: str | None = None,
                 max_epochs: int = 100, grace_period: int = 1, reduction_factor: float = 2, max_retries: int = 2,
                 storage_path: str | None = None, num_cpus: int | None = None) -> None:
        if workers is not None:  # checked before anything compares them: a run file's "2" is named, no TypeError
            check_count(workers, "workers")
        cpus, gpus = check_number(cpus, "cpus", positive=False), check_number(gpus, "gpus", positive=False)
        check_int(max_retries, "max_retries", 0)  # Tune's -1 would restart a trial whose worker dies forever
        self.options = RayOptions(address, num_cpus)
        self.workers, self.cpus, self.gpus, self.max_retries = workers, cpus, gpus, max_retries
        self.scheduler = make_scheduler(scheduler, metric, mode, max_epochs, grace_period, reduction_factor)
        from ray.tune.result import DEFAULT_METRIC

        ranked = getattr(self.scheduler, "metric", None)
        self.metric = ranked if ranked not in (None, DEFAULT_METRIC) else None  # checked on every report
        self.storage_path = storage_path
        self._feed = _Feed()
        self._done: queue.Queue[Completed | BaseException] = queue.Queue()
        self._error: BaseException | None = None  # raised by wait() once the completions before it are returned
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._stopper = _StopAll()
        self._actors = _TrialActors()
        self._owns_ray = False
        self._searcher: StrategySearcher | None = None
        self._free_at_start = 0.0

    def check_evaluate(self, evaluate: EvaluateFn) -> None:
        """Connect to Ray (or start it, kept for `start`) and refuse trials no node can place, before the search writes
        its journal; a Ray this executor started is shut down again on a refusal."""
        self._owns_ray = connect(self.options) or self._owns_ray
        try:
            check_capacity(self.workers, self.cpus, self.gpus, "trial", all_at_once=False)
        except BaseException:
            self.close()
            raise

    def start(self, evaluate: EvaluateFn) -> None:
        import ray
        from ray import tune

        self._owns_ray = connect(self.options) or self._owns_ray  # check_evaluate may have started it
        try:
            self.workers = check_capacity(self.workers, self.cpus, self.gpus, "trial", all_at_once=False)
        except ConfigError:
            self.close()
            raise
        ship_by_value(evaluate)
        self._free_at_start = ray.available_resources().get("CPU", 0.0)
        self._searcher = StrategySearcher(self._feed, finish_when_empty=False, on_complete=self._completed)
        self._stopper, self._actors = _StopAll(), _TrialActors()
        trainable = tune.with_resources(tune.with_parameters(_run_trial, evaluate=evaluate, metric=self.metric),
                                        {"cpu": self.cpus, "gpu": self.gpus})
        storage = self.storage_path or os.path.join(tempfile.gettempdir(), "nas-tune")
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=self._searcher, scheduler=self.scheduler, num_samples=-1,
                                        max_concurrent_trials=self.workers, reuse_actors=True),
            run_config=tune.RunConfig(name=f"nas-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
                                      storage_path=os.path.abspath(storage), verbose=0, stop=self._stopper,
                                      callbacks=[self._actors],
                                      failure_config=tune.FailureConfig(max_failures=self.max_retries),
                                      checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)))
        stopper = self._stopper

        def fit() -> None:
            # trials stopped by close() wrote no result file, which Tune's summary at the end warns about
            quiet = _DropMessage("Failed to fetch metrics for")
            logging.getLogger("ray.tune.analysis.experiment_analysis").addFilter(quiet)
            try:
                tuner.fit()
                if not stopper.stopped:
                    self._done.put(RuntimeError("Ray Tune's experiment ended while the search still had trials "
                                                "running"))
            except BaseException as e:  # noqa: BLE001 - handed to the search thread in wait()
                self._done.put(e)
            finally:
                logging.getLogger("ray.tune.analysis.experiment_analysis").removeFilter(quiet)

        self._thread = threading.Thread(target=fit, name="nas-ray-tune", daemon=True)
        self._thread.start()

    def _completed(self, trial_id: str, arch: Architecture, result: Mapping[str, Any] | None, error: bool) -> None:
        nas_part = _nas_part(result)
        if nas_part.get("config_error"):  # the scheduler's metric is misnamed: the search stops
            self._done.put(ConfigError(str(nas_part["config_error"])))
            return
        metrics = nas_part.get("metrics") if nas_part and not nas_part.get("error") else None
        err = nas_part.get("error")
        if error:
            metrics, err = None, (f"Ray Tune trial {trial_id} failed after {self.max_retries} retries "
                                  "(its worker died or Tune raised); see the Tune logs under "
                                  f"{self.storage_path or os.path.join(tempfile.gettempdir(), 'nas-tune')}")
        started, finished, worker = _timing(result, nas_part)
        stopped = None  # its last result is a report, not evaluate's return: the scheduler stopped it there
        if metrics is not None and "final" in nas_part and not nas_part["final"]:
            stopped = int(float(metrics.get("epochs", 1)))
        self._done.put(Completed(arch, dict(metrics) if metrics is not None else None,
                                 err or (None if metrics is not None else "trial returned no result"),
                                 started, finished, worker, stopped, _attrs_extra(nas_part)))

    def free_slots(self) -> int:
        assert self.workers is not None, "start() first"
        return self.workers - self._in_flight

    def submit(self, job: Job) -> None:
        self._feed.put(job.arch)
        self._in_flight += 1

    def wait(self) -> list[Completed]:
        if self._error is None:
            items = [self._done.get()]
            while True:
                try:
                    items.append(self._done.get_nowait())
                except queue.Empty:
                    break
            out = [c for c in items if isinstance(c, Completed)]
            errors = [c for c in items if not isinstance(c, Completed)]
            self._error = errors[0] if errors else None
            if out:  # what completed first is returned (and journaled); the error comes with the next wait()
                self._in_flight -= len(out)
                return out
        error = self._error
        assert error is not None
        if isinstance(error, ConfigError):
            raise error
        raise RuntimeError(f"Ray Tune stopped: {_summary(error)}") from error

    def poll(self) -> list[Completed]:
        """The trials already completed, without waiting (an error Tune raised is kept for the next wait())."""
        out: list[Completed] = []
        while True:
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Completed):
                out.append(item)
            elif self._error is None:
                self._error = item
        self._in_flight -= len(out)
        return out

    def close(self) -> None:
        """End the Tune experiment: nothing new starts, and trials still running (the search was interrupted or
        failed: after a normal end none are) are stopped now rather than awaited, their actors killed."""
        import ray

        self._stopper.stopped = True
        self._feed.ask(len(self._feed.todo))
        if self._searcher is not None:
            self._searcher.finish_when_empty = True
        if self._thread is not None:
            self._thread.join(self.grace_s)
            if self._thread.is_alive():  # trials still running: their results would be discarded anyway
                for actor in list(self._actors.actors.values()):
                    try:
                        ray.kill(actor, no_restart=True)
                    except Exception:  # noqa: BLE001 - already gone
                        pass
                self._thread.join(self.stop_timeout_s)
            if self._thread.is_alive():
                log.warning("Ray Tune did not stop within %.0f s; leaving it to end in the background",
                            self.stop_timeout_s)
            else:
                settle(self._free_at_start)
            self._thread = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
