"""`nas.search`: the loop that joins a space, a strategy, evaluators, an executor and the journal.

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

from nas.errors import ConfigError, JournalError, NASError
from nas.evaluators import as_evaluators, merged
from nas.executors import Executor, Job, make_executor
from nas.objectives import Constraint, Objective, Problem
from nas.result import SearchResult
from nas.spaces import Architecture, Space
from nas.store import Journal, Trial
from nas.strategies import ConstraintFilter, Deduplicate, Strategy, TrialResult, make_strategy

log = logging.getLogger(__name__)

ProgressFn = Callable[[Trial, int, int], None]
FAIL_FAST = 3  # this many failed evaluations before any success means evaluate itself is broken


def search(space: Space, evaluate: Any, objectives: Mapping[str, str] | Sequence[Objective] | str,
           constraints: list[str | Constraint] | tuple[str | Constraint, ...] = (),
           strategy: str | Strategy = "evolution", budget: int = 100, seed: int = 0,
           workdir: str | Path | None = None, executor: str | Mapping[str, Any] | Executor = "local",
           strategy_options: Mapping[str, Any] | None = None, fidelity: float | None = None,
           snapshot_every: int = 10, snapshot_interval_s: float = 2.0, progress: ProgressFn | None = None,
           metadata: Mapping[str, Any] | None = None) -> SearchResult:
    """Search `space` for architectures optimising `objectives` under `constraints`.

    `evaluate(arch)` gets a read-only mapping and returns a dict of metrics; it may be a list of
    evaluators, where those wrapped in `nas.cheap` run first so constraints on their metrics are checked
    before anything expensive. `budget` bounds the number of evaluations. With `workdir`, results are
    journaled there and an existing journal is resumed; the strategy is snapshotted every `snapshot_every`
    trials but at most once per `snapshot_interval_s` (resume replays the trials after the last one).
    """
    if not isinstance(space, Space):
        raise ConfigError(f"space: expected a nas.spaces.Space, got {type(space).__name__}")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"budget: expected a positive int (number of evaluations), got {budget!r}")
    if snapshot_every < 1:
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

    wrapped: Strategy = Deduplicate(strat)
    cheap = [e for e in evaluators if e.cheap]
    if cheap and problem.constraints:
        wrapped = ConstraintFilter(wrapped, merged(cheap, fidelity), problem)

    config = {"space": space.fingerprint(), "space_spec": space.to_spec(), "problem": problem.to_dict(),
              "strategy": strategy_name, "strategy_options": options, "seed": seed, "budget": budget,
              "fidelity": fidelity, "metadata": dict(metadata or {})}
    loop = _SearchLoop(problem, wrapped, merged(evaluators, fidelity), make_executor(executor),
                       Journal(workdir) if workdir is not None else None, budget, snapshot_every,
                       snapshot_interval_s, progress)
    return loop.run(config)


_SAME_SEARCH = ("space", "problem", "strategy", "strategy_options", "seed", "fidelity")


def _check_same_search(journal: Journal, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    for key in _SAME_SEARCH:
        if old.get(key) != new.get(key):
            raise JournalError(f"{journal.workdir} holds a different search: its {key} is {old.get(key)!r}, "
                               f"this one's is {new.get(key)!r} (use a new workdir)")


class _SearchLoop:
    """One run of the ask → evaluate → journal → tell cycle (a class only to share its bookkeeping)."""

    def __init__(self, problem: Problem, strategy: Strategy, evaluate: Callable[[Architecture], Mapping[str, float]],
                 executor: Executor, journal: Journal | None, budget: int, snapshot_every: int,
                 snapshot_interval_s: float, progress: ProgressFn | None) -> None:
        self.problem, self.strategy, self.evaluate = problem, strategy, evaluate
        self.executor, self.journal, self.budget = executor, journal, budget
        self.snapshot_every, self.snapshot_interval_s, self.progress = snapshot_every, snapshot_interval_s, progress
        self.trials: list[Trial] = []
        self.replay: dict[str, Trial] = {}
        self.pending: list[Architecture] = []
        self.in_flight: dict[str, Architecture] = {}
        self._snapshot_at, self._snapshot_time = 0, time.monotonic()

    @property
    def used(self) -> int:
        return sum(t.status != "infeasible" for t in self.trials)

    def run(self, config: dict[str, Any]) -> SearchResult:
        config = {**config, "budget": self.budget}
        if self.journal is not None:
            if self.journal.exists():
                self._restore(config)
            else:
                self.journal.create(config)
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
                    self.in_flight.pop(done.arch.id, None)
                    status = "ok" if done.metrics is not None else "failed"
                    if status == "ok" and not checked:
                        self.problem.check_metrics(done.metrics)
                        checked = True
                    if status == "failed":
                        log.warning("evaluation of %s failed: %s", done.arch.id, done.error)
                        if not checked and sum(t.status == "failed" for t in self.trials) + 1 >= FAIL_FAST:
                            raise NASError(f"the first {FAIL_FAST} evaluations all failed; the last with: {done.error}")
                    self._record(done.arch, done.metrics or {}, status, done.started, done.finished,
                                 done.worker, done.error)
                    self.strategy.tell(done.arch, TrialResult(done.metrics or {}, status))
                    if (self.journal is not None and len(self.trials) - self._snapshot_at >= self.snapshot_every
                            and time.monotonic() - self._snapshot_time >= self.snapshot_interval_s):
                        self._snapshot()
        finally:
            self._flush_replay()
            if self.journal is not None:
                self._snapshot()
            self.executor.close()
        if stop == "exhausted":
            log.warning("the strategy proposed no new feasible architecture after %d evaluations (space exhausted, "
                        "strategy converged, or cheap constraints rejected every proposal); stopping below the "
                        "budget of %d", self.used, self.budget)
        return SearchResult(list(self.trials), self.problem,
                            self.journal.workdir if self.journal else None, stop, config)

    def _restore(self, config: Mapping[str, Any]) -> None:
        assert self.journal is not None
        old, self.trials = self.journal.read()
        _check_same_search(self.journal, old, config)
        self.journal.append_resume(self.budget)
        snap = self.journal.load_snapshot()
        after = -1
        if snap is not None:
            self.strategy.load_state_dict(snap["state"])
            after = int(snap["after_trial"])
            self.pending = [Architecture(a) for a in snap["pending"]]
        for t in self.trials[after + 1:]:
            self.replay.setdefault(t.arch_id, t)
        log.info("resuming %s: %d trials in the journal, %d to replay", self.journal.workdir,
                 len(self.trials), len(self.replay))

    def _fill(self) -> None:
        """Submit work until the executor is full or the budget is committed."""
        while self.executor.free_slots() > 0 and self.used + len(self.in_flight) < self.budget:
            if self.pending:
                arch = self.pending.pop(0)
            else:
                asked = self.strategy.ask(1)
                self._record_rejected()
                if not asked:
                    return
                arch = asked[0]
            if arch.id in self.replay:
                t = self.replay.pop(arch.id)
                self.strategy.tell(arch, TrialResult(t.metrics, t.status))  # type: ignore[arg-type]
                continue
            if self.replay and not self.pending:
                self._flush_replay()  # the strategy no longer retraces the journal: tell it the rest
            self.executor.submit(Job(arch))
            self.in_flight[arch.id] = arch

    def _record_rejected(self) -> None:
        if not isinstance(self.strategy, ConstraintFilter):
            return
        for arch, result in self.strategy.drain_rejected():
            old = self.replay.get(arch.id)
            if old is not None and old.status == "infeasible":
                del self.replay[arch.id]  # journaled before the crash
                continue
            now = time.time()
            self._record(arch, dict(result.metrics), "infeasible", now, now, "constraint-filter", None)

    def _flush_replay(self) -> None:
        for t in sorted(self.replay.values(), key=lambda t: t.number):
            self.strategy.tell(t.architecture, TrialResult(t.metrics, t.status))  # type: ignore[arg-type]
        self.replay.clear()

    def _record(self, arch: Architecture, metrics: Mapping[str, float], status: str, started: float,
                finished: float, worker: str, error: str | None) -> None:
        trial = Trial(len(self.trials), arch.to_dict(), arch.id, dict(metrics), status, started, finished,
                      worker, error)
        if self.journal is not None:
            self.journal.append(trial)
        self.trials.append(trial)
        if self.progress is not None:
            self.progress(trial, self.used, self.budget)

    def _snapshot(self) -> None:
        assert self.journal is not None
        self._snapshot_at, self._snapshot_time = len(self.trials), time.monotonic()
        self.journal.save_snapshot({
            "after_trial": len(self.trials) - 1,
            "pending": [a.to_dict() for a in self.pending + list(self.in_flight.values())],
            "state": self.strategy.state_dict(),
        })
