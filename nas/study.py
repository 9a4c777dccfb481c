"""`nas.Study`: ask/tell with a journal, for evaluations you run yourself (Optuna's ask-and-tell interface).

When the evaluations run somewhere `nas.search` cannot call (jobs on a cluster's queue, trainings started by hand,
a notebook), a `Study` hands out architectures and takes their results back:

    study = nas.Study(space, {"accuracy": "max", "latency_ms": "min"}, strategy="evolution", budget=50,
                      workdir="runs/manual")
    arch = study.ask()                         # None once the budget is asked for, or nothing new is left
    study.tell(arch, {"accuracy": 91.2, "latency_ms": 3.4})   # or study.tell(arch, error="out of memory")

It is the search loop without the executor: the same strategies (de-duplicated), the same checks of the
arguments and of each result (a missing or non-finite objective fails the trial, saying which; a misnamed
objective is refused before anything is journaled), the same journal. So `nas status`, `nas pareto`, the
dashboard and `nas export` read a study's workdir as any search's, and `nas.search` with an `evaluate` can go
on where a study stopped (and the other way round). Opening a study on its workdir again resumes it: the strategy
is restored from its snapshot and told the results journaled after it; architectures asked and not yet told
then are `pending` (tell them when their jobs finish). Each `ask` and `enqueue` writes the snapshot before it
returns, so what was handed out or queued survives a crash; tells are journaled at once and reports snapshotted
at most every `snapshot_interval_s`. A result may also be told for an architecture the study did
not hand out (a baseline trained earlier): it is journaled and the strategy learns from it.

With a pruner (`Study(..., pruner="median")`, Optuna's `trial.report` / `should_prune` in ask/tell form), a job
reports each epoch with `study.report(arch, {"accuracy": acc, "latency_ms": lat})`, which says whether to stop;
`study.tell(arch)` then journals the trial as pruned with its last report, as `nas.search(..., pruner=...)` would.
Each reported training is a running trial of the pruner's study from its first report to its tell, as in Optuna
(trainings in flight compete at ASHA's rungs; a trial keeps its number, so its Hyperband bracket); a report lacking
an objective or constraint metric is refused (the pruned trial's result would lack it).
The reports of pending architectures are kept in the snapshot, so `nas epoch` calls from separate processes build
one curve.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.errors import ConfigError, check_number
from nas.executors import metric_value
from nas.experiment import open_experiment, recorded_config
from nas.objectives import Constraint, Objective, Problem
from nas.pruning import Pruner, Pruning, as_pruner, next_step, point, report_error
from nas.result import SearchResult
from nas.search import _mark_ran, _SearchLoop, prepare
from nas.spaces import Architecture, Space
from nas.store import Trial
from nas.strategies import Strategy, TrialResult
from nas.user_attrs import checked

log = logging.getLogger(__name__)

def _told_not_run(arch: Architecture) -> dict[str, float]:
    """A study's evaluate: never called (its results are told), present so the journal reads as a search's."""
    raise RuntimeError("a nas.Study's architectures are evaluated by you: tell() their results")


def pending_id(text: str, pending: Sequence[str]) -> str:
    """The one id among `pending` (the architectures asked and not told) that starts with `text`; ConfigError naming
    the pending ones when none or several do."""
    found = [i for i in pending if i.startswith(text)] if text else []
    if len(found) == 1:
        return found[0]
    which = "several pending architectures have ids starting with" if found else "no pending architecture has id"
    hint = "" if found else ("; an architecture that is not pending is told as itself (its dict, or its JSON object "
                             "in nas tell)")
    raise ConfigError(f"{which} {text!r}; pending: {', '.join(i[:12] for i in pending) or 'none'}{hint}")


def told_typo(problem: Problem, trials: Sequence[Trial], metrics: Mapping[str, Any]) -> str | None:
    """Why a told result lacking an objective or constraint metric is most likely a typo, to refuse before anything
    is journaled: no result has completed yet, or it names a metric no trial has had. None otherwise (such a result
    is journaled as failed, saying what it lacks)."""
    typo = problem.names_error(metrics)
    if typo is None or not any(t.status == "ok" for t in trials):
        return typo
    seen = {name for t in trials for name in t.metrics}
    unknown = sorted(set(metrics) - seen)
    return f"{typo}; no trial has had {', '.join(map(repr, unknown))}" if unknown else None


FUTURE_S = 300.0
"""How far in the future a told `started` or `finished` may be: the clock of the machine that ran the job may be a
little ahead of this one's, not more (a later time is a unit or arithmetic slip, and an absurd duration)."""


def check_error(error: Any, name: str = "error") -> str:
    """`error` (why an evaluation failed), refused with a ConfigError naming `name` unless it is a non-empty string:
    an empty one would read as no error at all."""
    if not isinstance(error, str) or not error.strip():
        raise ConfigError(f"{name}: expected why the evaluation failed (a non-empty string), got {error!r}")
    return error


def _check_times(started: Any, finished: Any, worker: Any) -> None:
    """ConfigError naming `started`, `finished` or `worker` unless the times are epoch seconds (finite numbers,
    `finished` not before `started`, neither more than FUTURE_S in the future) and the worker a name: the journal
    keeps them as given."""
    now = time.time()
    for name, value in (("started", started), ("finished", finished)):
        if value is not None:
            check_number(value, name, positive=False, unit=" of seconds since the epoch (time.time())")
            if value > now + FUTURE_S:
                raise ConfigError(f"{name}: {value!r} is in the future (now is {now:.0f}); expected seconds since "
                                  f"the epoch (time.time()), at most {FUTURE_S:.0f} s ahead")
    if started is not None and finished is not None and finished < started:
        raise ConfigError(f"finished: {finished!r} is before started {started!r}")
    if not isinstance(worker, str) or not worker:
        raise ConfigError(f"worker: expected a name (a non-empty string), got {worker!r}")


class Study:
    """A journaled ask/tell search over `space` (arguments as `nas.search`'s, without `evaluate` and executor).
    `ask`, `tell` and `close` may be called from several threads (a pool of workers each asking for its next job)."""

    def __init__(self, space: Space, objectives: Mapping[str, str] | Sequence[Objective] | str,
                 constraints: Sequence[str | Constraint] = (), strategy: str | Strategy = "evolution",
                 budget: int = 100, seed: int | None = None, workdir: str | Path | None = None,
                 strategy_options: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None,
                 lower_budget: bool = False, enqueue: Sequence[Mapping[str, Any]] | None = None,
                 warm_start: str | Path | None = None, snapshot_interval_s: float = 2.0, pruner: Any = None) -> None:
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ConfigError(f"metadata: expected a dict of plain JSON data, got {type(metadata).__name__}")
        recorded = ((recorded_config(workdir) or {}).get("metadata") or {}) if workdir is not None else {}
        if metadata is None:  # a resumed study keeps the recorded metadata, as a resumed search does
            metadata = recorded
        given = as_pruner(pruner)
        record = _pruner_record(given)
        if given is None:  # a study keeps the pruner it was made with (`nas epoch` judges with it too)
            record = recorded.get("pruner") if isinstance(recorded.get("pruner"), dict) else None
            given = _recorded_pruner(record)
        meta = {**{k: v for k, v in metadata.items() if k != "pruner"}, "study": True,
                **({"pruner": record} if record is not None else {})}
        prepared = prepare(space, _told_not_run, objectives, constraints, strategy, budget, seed, workdir,
                           strategy_options=strategy_options, metadata=meta,
                           lower_budget=lower_budget, enqueue=enqueue, warm_start=warm_start,
                           snapshot_interval_s=snapshot_interval_s)
        self.space, self.problem = space, prepared.problem
        self._pruning = Pruning.make(given, prepared.problem) if given is not None else None
        self._unjudged = record.get("instance") if record is not None and given is None else None
        experiment = open_experiment(prepared.workdir, prepared.config, lower_budget=lower_budget)
        try:
            _mark_ran(prepared.strategy.inner)
            self._loop = loop = _SearchLoop(prepared.problem, prepared.strategy, None, prepared.evaluate,
                                            prepared.executor, experiment, 1, snapshot_interval_s, None)
            after = loop._load_snapshot(before_any_trial=True)
            if after is None:  # warm-start results first, as `nas.search` tells them (a snapshot holds them)
                for t in prepared.warm:
                    if t.status == "ok" and self.problem.result_error(t.metrics) is None:
                        loop._tell_strategy(t.architecture, TrialResult.of("ok", t.metrics))
                loop.strategy.keep()  # no journal of this study holds those: snapshots keep them
            if loop.trials:
                loop._restore(-1 if after is None else after, prepared.enqueue, study=True)
                loop._flush_replay()  # told in journal order: nothing re-asks them here
            now = time.time()
            for arch in loop.pending:  # asked before the last snapshot and not told since
                if all(t.arch_id != arch.id for t in loop.trials):
                    loop.in_flight[arch.id] = (arch, {})
                    loop.since.setdefault(arch.id, now)  # restored with the snapshot where it recorded the time
            loop.pending = []
            loop.reports = {i: r for i, r in loop.reports.items() if i in loop.in_flight}
            if self._pruning is not None:
                self._pruning.replay(loop.trials)
                for arch_id, record in loop.reports.items():  # running trials again, under their numbers
                    if record.get("curve"):
                        self._pruning.resume(arch_id, record["curve"], record.get("pruner_attrs")
                                             if self._pruning.ranks else {}, record.get("pruner_trial"))
            done = {t.arch_id for t in loop.trials} | set(loop.in_flight)
            queued = {a.id: a for a in [*loop.queued, *prepared.enqueue] if a.id not in done}  # the snapshot's first
            loop.queued = list(queued.values())
            loop.enqueue_ids |= {a.id for a in [*prepared.enqueue, *loop.queued]}  # and the snapshot's pending ones
            loop.checked = any(t.status == "ok" for t in loop.trials)
            loop._publish_running()
        except BaseException:
            experiment.close()
            raise
        self._closed = False
        # the last ask found the strategy with nothing new, and nothing was asked or told since (so what is pending
        # is what was then): with nothing pending it is exhausted, else it waits for those results (`waiting`)
        self._nothing_new = False
        self._lock = threading.RLock()  # one ask, tell or close at a time: they share the strategy and the journal

    # ------------------------------------------------------------------------------------------ ask and tell
    @property
    def budget(self) -> int:
        return self._loop.budget

    @property
    def used(self) -> int:
        """Evaluations told so far (`nas.store.evaluations_used`)."""
        return self._loop.used

    @property
    def pending(self) -> list[Architecture]:
        """Architectures asked and not yet told (also those a resumed study found asked before it stopped)."""
        return [arch for arch, _ in self._loop.in_flight.values()]

    @property
    def waiting(self) -> bool:
        """Whether the last `ask` returned None only for now: the strategy proposed nothing new while architectures
        were pending (a population waiting for its results), and below the budget; tell them, then ask again."""
        loop = self._loop
        return self._nothing_new and bool(loop.in_flight) and loop.used + len(loop.in_flight) < loop.budget

    @property
    def trials(self) -> list[Trial]:
        return list(self._loop.trials)

    def ask(self) -> Architecture | None:
        """The next architecture to evaluate: an enqueued one first, then the strategy's (never one already asked
        or told). None when the budget is told or pending, or the strategy has nothing new to propose; `waiting`
        then says whether that may change once the pending architectures are told."""
        with self._lock:
            return self._ask()

    def _ask(self) -> Architecture | None:
        self._check_open()
        loop = self._loop
        while True:
            if loop.used + len(loop.in_flight) >= loop.budget:
                return None
            if loop.queued:
                arch = loop.queued.pop(0)
                if not loop.strategy.claim(arch):
                    continue  # a twin was asked or told already
            else:
                loop.asking = True
                proposals = loop.strategy.ask(1)
                loop.asking = False
                if not proposals:
                    self._nothing_new = True
                    return None
                arch = proposals[0]
            loop.in_flight[arch.id], loop.since[arch.id] = (arch, {}), time.time()
            self._nothing_new = False
            loop._publish_running()
            self._snapshot_if_due(now=True)  # handed out: its job may outlive this process
            return arch

    def report(self, arch: Architecture | str, metrics: Mapping[str, Any], step: int | None = None) -> bool:
        """One epoch's metrics of a pending architecture (Optuna's `trial.report` and `should_prune` in one):
        True when the study's pruner says to stop its training (then `tell(arch)` journals it as pruned, with this
        report as its result). With a pruner, a report lacking the metric it judges (most likely a typo: nothing
        would ever be judged) or any objective or constraint metric (the pruned trial's result would lack it) is
        refused with a ConfigError, before anything is written; a NaN or infinite value is judged as Optuna's
        pruners judge it (a diverged training is stopped) and kept in the curve as its string ("nan"). Without a
        pruner it only keeps the curve, journaled with the result. `step` (an int >= 0, greater than the previous
        report's; None: the previous one + 1) is what the pruner judges it at and the curve keeps; a step reported
        already is ignored (logged; the first report of it is kept), as Optuna's `trial.report` ignores it."""
        with self._lock:
            self._check_open()
            held = self._architecture(arch)
            if held.id not in self._loop.in_flight:
                raise ConfigError(f"report: architecture {held.id[:12]} is not pending (ask() it first)")
            if not isinstance(metrics, Mapping):
                raise ConfigError(f"metrics: expected a dict of metric name -> number, got {type(metrics).__name__}")
            values = _numbers(metrics)
            refused = report_error(self.problem, self._judged, values, "report") if self._pruning is not None else None
            if refused is not None:
                raise ConfigError(refused)
            held_record = self._loop.reports.get(held.id)
            previous = -1 if held_record is None else held_record.get("step", held_record["reports"] - 1)
            at = next_step(step, previous, "report", log)
            if at is None:  # a step reported already: ignored, as Optuna ignores it; the pruner's word stands
                return bool(held_record["prune"]) if held_record is not None else False
            record = self._loop.reports.setdefault(held.id, {"reports": 0, "curve": [], "last": {}, "prune": False})
            record["reports"] += 1
            record["last"] = values
            if step is not None or "step" in record:  # kept (in the snapshot) once a step is given: journals
                record["step"] = at  # without steps stay as they were
            value = values.get(self._judged)
            if value is not None:  # NaN too: the pruner judges it, as Optuna's do (a diverged training is stopped)
                record["curve"].append(point(at, value))
                if self._pruning is not None:  # a running trial of the pruner's live study, as in Optuna
                    record["prune"], record["pruner_attrs"] = self._pruning.judge(record["curve"], held.id)
                    if self._pruning.ranks:  # kept with it: a reopened study judges it under the same number
                        record["pruner_trial"] = self._pruning.number(held.id)
                elif self._unjudged is not None:
                    log.warning("this study was made with an optuna.pruners.%s instance, which its journal cannot "
                                "rebuild: pass it again (Study(..., pruner=...)) to judge its trainings; this report "
                                "is kept but not judged", self._unjudged)
            self._snapshot_if_due()
            return bool(record["prune"])

    def enqueue(self, arch: Mapping[str, Any]) -> Architecture:
        """Have `ask` hand out `arch` next, before the strategy's proposals (Optuna's `enqueue_trial`): a baseline
        or a known-good design to evaluate early. Validated against the space (an error names the field); one
        already told or pending is not handed out again (as Optuna's `skip_if_exists=True`), and a warning says
        so, naming its trial. Kept until asked, across a reopen or a crash (in the snapshot, written before this
        returns)."""
        with self._lock:
            self._check_open()
            valid = self.space.validate(arch)
            self._warn_if_known(valid)
            self._loop.queued.append(valid)
            self._loop.enqueue_ids.add(valid.id)  # its trial says so, as those of `Study(enqueue=...)`
            self._snapshot_if_due(now=True)
            return valid

    def _warn_if_known(self, arch: Architecture) -> None:
        """Log that an enqueued `arch` will not be handed out: it was evaluated already, or is pending."""
        loop = self._loop
        told = next((t for t in loop.trials if t.arch_id == arch.id and t.is_evaluation), None)
        if told is not None:
            log.warning("enqueue: architecture %s was evaluated already (trial %d, %s); it is not evaluated again",
                        arch.id[:12], told.number, told.status)
        elif arch.id in loop.in_flight:
            log.warning("enqueue: architecture %s is pending (asked, not told yet); it is not handed out again",
                        arch.id[:12])

    def tell(self, arch: Architecture | Mapping[str, Any] | str, metrics: Mapping[str, Any] | None = None, *,
             error: str | None = None, started: float | None = None, finished: float | None = None,
             worker: str = "told", pruned: bool | None = None, user_attrs: Mapping[str, Any] | None = None) -> Trial:
        """Journal the result of evaluating `arch` (an asked architecture, its id, or any architecture of the space)
        and tell the strategy: `metrics`, or `error=` (why, a non-empty string) for an evaluation that failed. A
        result lacking an objective or constraint metric, or holding a NaN, is journaled as failed, saying which; an
        objective no result has ever had is refused before anything is written (a typo, as `nas.search` refuses
        it). After `report`s, the trial keeps their curve; it is pruned when the last report said to stop (`pruned=`
        decides otherwise), and then `metrics` default to the last report's. `user_attrs` (JSON data: a checkpoint
        path, a note) are journaled with it (`Trial.user_attrs`, as `nas.set_user_attr` inside an evaluation).
        Returns the trial."""
        with self._lock:
            return self._tell(arch, metrics, error, started, finished, worker, pruned, user_attrs)

    def _tell(self, arch: Architecture | Mapping[str, Any] | str, metrics: Mapping[str, Any] | None,
              error: str | None, started: float | None, finished: float | None, worker: str,
              pruned: bool | None, user_attrs: Mapping[str, Any] | None = None) -> Trial:
        self._check_open()
        _check_times(started, finished, worker)
        if error is not None:
            check_error(error)
        if user_attrs is not None and not isinstance(user_attrs, Mapping):
            raise ConfigError(f"user_attrs: expected a dict of name -> JSON data, got {type(user_attrs).__name__}")
        attrs = dict(checked(k, v, "tell") for k, v in (user_attrs or {}).items())
        loop = self._loop
        arch = self._architecture(arch)
        told = next((t for t in loop.trials if t.arch_id == arch.id and t.is_evaluation), None)
        if told is not None and arch.id not in loop.in_flight:
            raise ConfigError(f"tell: architecture {arch.id[:12]} was told already (trial {told.number})")
        record = loop.reports.get(arch.id)
        stopped = bool(record["prune"]) if pruned is None and record is not None else bool(pruned)
        if stopped and record is None:
            raise ConfigError("tell: pruned=True needs the trial's reports (study.report) to keep its curve")
        if metrics is None and error is None and stopped:
            metrics = record["last"]  # type: ignore[index]  # a pruned training ends with its last report
        if metrics is None and error is None:
            raise ConfigError("tell: give the evaluation's metrics, or error='why it failed'")
        if metrics is not None and not isinstance(metrics, Mapping):
            raise ConfigError(f"metrics: expected a dict of metric name -> number, got {type(metrics).__name__}")
        values = _numbers(metrics or {})
        if error is not None:
            status, note = "failed", error
        else:
            typo = told_typo(self.problem, loop.trials, values) if not stopped else None
            if typo is not None:
                raise ConfigError(f"tell: {typo}; nothing was journaled, tell it again with the objectives' names")
            status, values, note = loop._judge(values, None, record["reports"] if stopped else None)  # type: ignore[index]
        extra: dict[str, Any] = {}
        if record is not None and record["curve"]:
            extra = {"curve": record["curve"], "curve_of": self._judged}
            if "step" in record:  # steps given: the plot reads them as steps, not report numbers
                extra["curve_steps"] = True
        if stopped:
            extra["pruned_after"] = record["reports"]  # type: ignore[index]
        if self._pruning is not None and self._pruning.ranks and extra.get("curve"):
            extra["pruner_attrs"] = record.get("pruner_attrs") or {}  # type: ignore[union-attr]  # its rungs
            number = self._pruning.number(arch.id)
            if number is not None:
                extra["pruner_trial"] = number  # and its number (Hyperband's bracket), as `nas.search` journals them
        if self._pruning is not None and extra.get("curve") and self._pruning.estimates():  # the resources the
            extra["pruner_estimates"] = self._pruning.estimates()  # pruner estimated: a reopened study keeps them
        if attrs:
            extra["user_attrs"] = attrs
        if arch.id not in loop.in_flight:
            loop.strategy.claim(arch)  # told without being asked: a twin proposed meanwhile waits for this result
        end = float(finished) if finished is not None else time.time()
        begun = float(started) if started is not None else min(loop.since.get(arch.id, end), end)
        trial = loop._record(arch, values, status, begun, end, worker, note, extra, notify=False)
        loop.since.pop(arch.id, None)
        loop.reports.pop(arch.id, None)
        if self._pruning is not None:
            self._pruning.record(values, None if status == "ok" else note or "failed", extra, key=arch.id)
        loop._tell_strategy(arch, TrialResult.of(status, values))
        self._nothing_new = False  # a result it had not seen: it may have something new to propose
        loop.checked = loop.checked or status == "ok"
        loop._publish_running()
        self._snapshot_if_due()
        return trial

    def fail_stale(self, older_than_s: float) -> list[Trial]:
        """Fail the pending architectures asked more than `older_than_s` seconds ago (jobs that died without a word,
        which would otherwise hold their share of the budget forever; Optuna's `fail_stale_trials`). Returns
        their trials, journaled as failed."""
        if isinstance(older_than_s, bool) or not isinstance(older_than_s, (int, float)) or not older_than_s >= 0:
            raise ConfigError(f"older_than_s: expected a number of seconds >= 0, got {older_than_s!r}")
        with self._lock:
            self._check_open()
            now = time.time()
            stale = [arch for arch, _ in self._loop.in_flight.values()
                     if now - self._loop.since.get(arch.id, now) > older_than_s]
            return [self._tell(arch, None, f"stale: no result {now - self._loop.since[arch.id]:.0f} s after it was "
                               "asked", None, None, "told", False) for arch in stale]

    def _architecture(self, arch: Architecture | Mapping[str, Any] | str) -> Architecture:
        if isinstance(arch, str):
            return self._loop.in_flight[pending_id(arch, list(self._loop.in_flight))][0]
        if isinstance(arch, Architecture) and arch.id in self._loop.in_flight:
            return self._loop.in_flight[arch.id][0]
        if not isinstance(arch, Mapping):
            raise ConfigError(f"tell: expected an architecture (or a pending one's id), got {type(arch).__name__}")
        return self.space.validate(arch)

    @property
    def _judged(self) -> str:
        """The metric whose reports make a trial's curve: the pruner's, else the first objective."""
        return self._pruning.metric if self._pruning is not None else self.problem.names[0]

    def _snapshot_if_due(self, now: bool = False) -> None:
        loop = self._loop
        if loop.journaled and (now or time.monotonic() - loop._snapshot_time >= loop.snapshot_interval_s):
            loop._snapshot()

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("this Study is closed; open it again on its workdir to go on")

    # ------------------------------------------------------------------------------------------ results
    def result(self) -> SearchResult:
        """The trials so far as a `SearchResult`: best(), pareto_front(), to_dataframe(), export."""
        loop = self._loop
        stop = "budget" if loop.used >= loop.budget else "exhausted" if self._done_early() else "running"
        return SearchResult(list(loop.trials), self.problem, loop.experiment.workdir, stop, loop.experiment.config)

    def _done_early(self) -> bool:
        """The last ask found the strategy with nothing new to propose, and nothing was asked or told since."""
        return self._nothing_new and not self._loop.in_flight and not self._loop.queued

    def close(self) -> None:
        """Snapshot the strategy (with the pending architectures) and release the workdir."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._closed:
            return
        loop = self._loop
        try:
            loop._snapshot()
            if loop.used >= loop.budget and not loop.in_flight:
                loop.experiment.end("budget")
            elif self._done_early():  # as `nas.search` ends a search whose strategy has nothing new
                loop.experiment.end("exhausted")
        finally:
            loop.experiment.close()
            self._closed = True

    def __enter__(self) -> "Study":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _pruner_record(pruner: Pruner | None) -> dict[str, Any] | None:
    """The pruner as plain data for the journal's metadata, so a reopened study (and `nas epoch`) rebuilds it; an
    Optuna instance, which the journal cannot hold, only by its class name (`instance`). None: no pruner."""
    if pruner is None:
        return None
    if not isinstance(pruner.pruner, str):
        return {"instance": type(pruner.pruner).__name__, "metric": pruner.metric}
    return {"name": pruner.pruner, "metric": pruner.metric}


def _recorded_pruner(record: Mapping[str, Any] | None) -> Pruner | None:
    """The pruner a study was made with, from its journal's record; None when it had none, or had an Optuna
    instance (which must be given again)."""
    if record is None:
        return None
    if "instance" in record:
        return None  # `report` says so
    return Pruner(record["name"], metric=record.get("metric"))


def pruner_instance(config: Mapping[str, Any]) -> str | None:
    """The class name of the Optuna pruner instance a study recorded in `config` was made with, else None (the
    shell cannot rebuild an instance: `nas epoch` refuses such a study)."""
    record = (config.get("metadata") or {}).get("pruner")
    return str(record["instance"]) if isinstance(record, dict) and "instance" in record else None


def judged_metric(config: Mapping[str, Any]) -> str | None:
    """The metric the pruner of the study recorded in `config` judges (its `metric=`, else the first objective);
    None when it has no pruner."""
    record = (config.get("metadata") or {}).get("pruner")
    if not isinstance(record, dict):
        return None
    return str(record.get("metric") or next(iter(config["problem"]["objectives"])))


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """`metrics` as floats; a value that is not a number is refused, naming it (nothing is journaled)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        number, problem = metric_value(value)
        if problem is not None:
            raise ConfigError(f"metrics[{str(key)!r}] = {value!r}: {problem}")
        out[str(key)] = number  # a NaN is kept: judging the result fails the trial, saying which metric
    return out
