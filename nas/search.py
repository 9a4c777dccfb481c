"""`nas.search`: the loop that joins a space, a strategy, evaluators, an executor and the journal.

One step of the loop: ask the strategy; run the cheap evaluators (params, FLOPs, lookup-table latency)
once, here, and reject the architecture as `infeasible` when they break a constraint; hand the rest to the
executor for the expensive evaluators; merge both metric sets; judge the result (a missing or non-finite
objective or constraint metric fails the trial, saying which); journal it; tell the strategy.

A search in a workdir is durable: every finished trial is fsync'd to the journal before the strategy
hears of it, and the strategy is snapshotted every few trials. Calling `search` again on the same
workdir (or `nas resume DIR`) restores the snapshot and replays the journal's later trials through
ask/tell, so a killed search continues exactly where it stopped, losing and repeating nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.errors import ConfigError, NASError
from nas.evaluators import as_evaluators, merged
from nas.executor_spec import make_executor
from nas.executors import EvaluateFn, Executor, Job, run_job
from nas.experiment import Experiment, check_budget, check_seed, open_experiment, search_config
from nas.objectives import Constraint, Objective, Problem
from nas.result import SearchResult
from nas.spaces import Architecture, Space
from nas.store import Trial
from nas.strategies import Deduplicate, Strategy, TrialResult, make_strategy

log = logging.getLogger(__name__)

ProgressFn = Callable[[Trial, int, int], None]
FAIL_FAST = 3  # this many failed evaluations before any success means evaluate itself is broken
MAX_REJECTIONS = 1000  # consecutive proposals rejected on cheap constraints before the search counts as exhausted


def search(space: Space, evaluate: Any, objectives: Mapping[str, str] | Sequence[Objective] | str,
           constraints: list[str | Constraint] | tuple[str | Constraint, ...] = (),
           strategy: str | Strategy = "evolution", budget: int = 100, seed: int = 0,
           workdir: str | Path | None = None, executor: str | Mapping[str, Any] | Executor = "local",
           strategy_options: Mapping[str, Any] | None = None, fidelity: float | None = None,
           snapshot_every: int = 10, snapshot_interval_s: float = 2.0, progress: ProgressFn | None = None,
           metadata: Mapping[str, Any] | None = None, lower_budget: bool = False) -> SearchResult:
    """Search `space` for architectures optimising `objectives` under `constraints`.

    `evaluate(arch)` gets a read-only mapping and returns a dict of metrics; it may be a list of
    evaluators, where those wrapped in `nas.cheap` run first so constraints on their metrics are checked
    before anything expensive. `budget` bounds the number of evaluations. With `workdir`, results are
    journaled there and an existing journal is resumed (its budget only grows unless `lower_budget`); the
    strategy is snapshotted every `snapshot_every` trials but at most once per `snapshot_interval_s`
    (resume replays the trials after the last one).
    """
    if not isinstance(space, Space):
        raise ConfigError(f"space: expected a nas.spaces.Space, got {type(space).__name__}")
    check_budget(budget)
    check_seed(seed)
    if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int) or snapshot_every < 1:
        raise ConfigError(f"snapshot_every: expected a positive int, got {snapshot_every!r}")
    problem = Problem.make(objectives, constraints)
    evaluators = as_evaluators(evaluate)
    options = dict(strategy_options or {})
    if isinstance(strategy, Strategy):
        if options:
            raise ConfigError("strategy_options: only for strategies given by name")
        strat, strategy_name = strategy, strategy.name or type(strategy).__name__
    elif isinstance(strategy, str):
        strat, strategy_name = make_strategy(strategy, space, problem, seed, **options), strategy
    else:
        raise ConfigError(f"strategy: expected a name or a Strategy, got {type(strategy).__name__}")
    cheap = [e for e in evaluators if e.cheap]
    expensive = [e for e in evaluators if not e.cheap]
    runner = make_executor(executor)
    config = search_config(space, problem, strategy_name, options, seed, budget, fidelity, metadata)
    experiment = open_experiment(workdir, config, lower_budget=lower_budget)  # only once all of the above holds
    try:
        loop = _SearchLoop(problem, Deduplicate(strat), merged(cheap, fidelity) if cheap else None,
                           merged(expensive, fidelity), runner, experiment, snapshot_every,
                           snapshot_interval_s, progress)
        return loop.run()
    finally:
        experiment.close()


class _SearchLoop:
    """One run of the ask → cheap stage → evaluate → journal → tell cycle (a class to share its bookkeeping)."""

    def __init__(self, problem: Problem, strategy: Strategy, cheap: EvaluateFn | None, evaluate: EvaluateFn,
                 executor: Executor, experiment: Experiment, snapshot_every: int, snapshot_interval_s: float,
                 progress: ProgressFn | None) -> None:
        self.problem, self.strategy, self.cheap, self.evaluate = problem, strategy, cheap, evaluate
        self.executor, self.experiment, self.budget = executor, experiment, experiment.budget
        self.snapshot_every, self.snapshot_interval_s, self.progress = snapshot_every, snapshot_interval_s, progress
        self.filtering = cheap is not None and bool(problem.constraints)
        self.replay: dict[str, Trial] = {}
        self.pending: list[Architecture] = []
        self.in_flight: dict[str, tuple[Architecture, dict[str, float]]] = {}  # id -> (arch, cheap metrics)
        self._snapshot_at, self._snapshot_time = 0, time.monotonic()

    @property
    def trials(self) -> list[Trial]:
        return self.experiment.trials

    @property
    def used(self) -> int:
        return self.experiment.used

    @property
    def journaled(self) -> bool:
        return self.experiment.writer is not None

    def run(self) -> SearchResult:
        if self.trials:
            self._restore()
        self.executor.start(self.evaluate)
        checked = any(t.status == "ok" for t in self.trials)
        stop = "budget"
        try:
            while True:
                self._fill()
                if not self.in_flight:
                    stop = "budget" if self.used >= self.budget else "exhausted"
                    break
                for done in self.executor.wait():
                    arch, known = self.in_flight.pop(done.arch.id)
                    metrics, error = _merge(known, done.metrics, done.error)
                    typo = self.problem.names_error(metrics) if metrics is not None and not checked else None
                    if typo is not None:  # journaled with its metrics, so a corrected run counts it (_recheck)
                        self._record(arch, metrics, "failed", done.started, done.finished, done.worker, typo,
                                     {"config_error": True})
                        raise ConfigError(typo)
                    status, metrics, error = self._judge(metrics, error)
                    checked = checked or status == "ok"
                    self._finish(arch, metrics, status, done.started, done.finished, done.worker, error, checked)
        finally:
            self._flush_replay()
            self._snapshot()
            self.executor.close()
        if stop == "exhausted":
            log.warning("the strategy proposed no new feasible architecture after %d evaluations (space exhausted, "
                        "strategy converged, or cheap constraints rejected every proposal); stopping below the "
                        "budget of %d", self.used, self.budget)
        return SearchResult(list(self.trials), self.problem, self.experiment.workdir, stop, self.experiment.config)

    def _judge(self, metrics: dict[str, float] | None, error: str | None) -> tuple[str, dict[str, float], str | None]:
        """(status, metrics, error) of a finished evaluation: ok only with every needed metric, finite."""
        if metrics is None:
            return "failed", {}, error
        problem = self.problem.result_error(metrics)
        return ("failed", metrics, problem) if problem else ("ok", metrics, None)

    def _finish(self, arch: Architecture, metrics: dict[str, float], status: str, started: float, finished: float,
                worker: str, error: str | None, checked: bool) -> None:
        """Journal and tell one finished evaluation (or cheap-stage failure); snapshot now and then."""
        if status == "failed":
            log.warning("evaluation of %s failed: %s", arch.id, error)
            if not checked and sum(t.status == "failed" for t in self.trials) + 1 >= FAIL_FAST:
                self._record(arch, metrics, status, started, finished, worker, error)
                raise NASError(f"the first {FAIL_FAST} evaluations all failed; the last with: {error}")
        self._record(arch, metrics, status, started, finished, worker, error)
        self.strategy.tell(arch, TrialResult(metrics if status == "ok" else {}, status))  # type: ignore[arg-type]
        if (self.journaled and len(self.trials) - self._snapshot_at >= self.snapshot_every
                and time.monotonic() - self._snapshot_time >= self.snapshot_interval_s):
            self._snapshot()

    def _restore(self) -> None:
        snap = self.experiment.snapshot()
        after = -1
        if snap is not None:
            state = snap["state"]
            if set(state) == {"inner"}:  # written before the cheap stage moved from a strategy wrapper into this loop
                state = state["inner"]
            self.strategy.load_state_dict(state)
            after = int(snap["after_trial"])
            self.pending = [Architecture(a) for a in snap["pending"]]
        if self.experiment.problem_changed:
            self._recheck()
        for t in self.trials[after + 1:]:
            if not t.extra.get("config_error"):
                self.replay.setdefault(t.arch_id, t)
        log.info("resuming %s: %d trials in the journal, %d to replay", self.experiment.workdir,
                 len(self.trials), len(self.replay))

    def _recheck(self) -> None:
        """The objectives were corrected: results journaled as failed for a config error count if they now pass."""
        for t in list(self.trials):
            if t.extra.get("config_error") and self.problem.result_error(t.metrics) is None \
                    and not any(u.extra.get("rechecked_from") == t.number for u in self.trials):
                self._record(t.architecture, t.metrics, "ok", t.started, t.finished, t.worker, None,
                             {"rechecked_from": t.number})

    def _fill(self) -> None:
        """Submit work until the executor is full, the budget is committed or the strategy has nothing new."""
        rejected = 0
        while self.executor.free_slots() > 0 and self.used + len(self.in_flight) < self.budget:
            if self.pending:
                arch = self.pending.pop(0)
            else:
                asked = self.strategy.ask(1)
                if not asked:
                    rejected += 1
                    if self.filtering and rejected < MAX_REJECTIONS:
                        continue
                    return
                arch = asked[0]
            if arch.id in self.replay:
                t = self.replay.pop(arch.id)
                self.strategy.tell(arch, TrialResult(t.metrics, t.status))  # type: ignore[arg-type]
                continue
            if self.replay and not self.pending:
                self._flush_replay()  # the strategy no longer retraces the journal: tell it the rest
            known = self._cheap_stage(arch)
            if known is None:
                rejected += 1
                if rejected >= MAX_REJECTIONS:
                    return
                continue
            self.executor.submit(Job(arch, known))
            self.in_flight[arch.id] = (arch, known)

    def _cheap_stage(self, arch: Architecture) -> dict[str, float] | None:
        """The cheap metrics of `arch` (computed once); None when it failed or broke a constraint (journaled)."""
        if self.cheap is None:
            return {}
        started = time.time()
        metrics, error = run_job(self.cheap, arch)
        if metrics is None:
            self._finish(arch, {}, "failed", started, time.time(), "cheap-stage", error,
                         any(t.status == "ok" for t in self.trials))
            return None
        if self.filtering and sum(c.violation(metrics) for c in self.problem.constraints if c.metric in metrics):
            now = time.time()
            self._record(arch, metrics, "infeasible", now, now, "constraint-filter", None)
            self.strategy.tell(arch, TrialResult(metrics, "infeasible"))
            return None
        return metrics

    def _flush_replay(self) -> None:
        for t in sorted(self.replay.values(), key=lambda t: t.number):
            self.strategy.tell(t.architecture, TrialResult(t.metrics, t.status))  # type: ignore[arg-type]
        self.replay.clear()

    def _record(self, arch: Architecture, metrics: Mapping[str, float], status: str, started: float,
                finished: float, worker: str, error: str | None, extra: Mapping[str, Any] | None = None) -> None:
        trial = Trial(len(self.trials), arch.to_dict(), arch.id, dict(metrics), status, started, finished,
                      worker, error, dict(extra or {}))
        self.experiment.record(trial)
        if self.progress is not None:
            self.progress(trial, self.used, self.budget)

    def _snapshot(self) -> None:
        if not self.journaled:
            return
        self._snapshot_at, self._snapshot_time = len(self.trials), time.monotonic()
        self.experiment.save_snapshot({
            "after_trial": len(self.trials) - 1,
            "pending": [a.to_dict() for a in self.pending] + [a.to_dict() for a, _ in self.in_flight.values()],
            "state": self.strategy.state_dict(),
        })


def _merge(known: Mapping[str, float], metrics: Mapping[str, float] | None,
           error: str | None) -> tuple[dict[str, float] | None, str | None]:
    """The cheap stage's metrics joined with the executor's; a metric returned by both is an error."""
    if metrics is None:
        return None, error
    twice = sorted(set(known) & set(metrics))
    if twice:
        return None, f"ValueError: metric {twice[0]!r} is returned by two evaluators"
    return {**known, **metrics}, None
