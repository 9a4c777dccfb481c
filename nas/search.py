"""`nas.search`: the loop that joins a space, a strategy, evaluators, an executor and the journal.

One step of the loop: ask the strategy; run the cheap evaluators (params, FLOPs, lookup-table latency)
once, here, and reject the architecture as `infeasible` when they break a constraint; hand the rest to the
executor for the expensive evaluators; merge both metric sets; judge the result (a missing or non-finite
objective or constraint metric fails the trial, saying which); journal it; tell the strategy.

A search in a workdir is durable: every finished trial is fsync'd to the journal before the strategy
hears of it, and the strategy is snapshotted every few trials. Calling `search` again on the same
workdir (or `nas resume DIR`) restores the snapshot and replays the journal's later trials through
ask/tell, so a killed search continues exactly where it stopped, losing and repeating nothing. An executor that
`replays` (the simulated clock) instead re-runs the schedule from the snapshot: journaled trials are submitted
where and when they ran and told as they finish there, so the tells and asks interleave as they did, with several
workers in flight too. On Ctrl-C the evaluations that already finished are collected without waiting and
journaled before it stops; an interrupt inside the strategy's ask or tell keeps the last snapshot (the strategy's
state is half updated), so the resume replays the journal after it, as after a kill.
Evaluators with a `begin(workdir, trials)` hook hear of each run's start (see `nas.evaluators`).
"""

from __future__ import annotations

import inspect
import logging
import math
import sys
import time
from os import PathLike
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas import jsonio
from nas.errors import (ConfigError, InvalidArchitectureError, JournalError, NASError, check_count, check_limit,
                        check_number, check_seed)
from nas.evaluators import TWICE, Evaluator, as_evaluators, begin_search, merged, twice
from nas.executor_spec import make_executor
from nas.executors import Completed, EvaluateFn, Executor, Job, SimulatedClockExecutor, run_job, stopped_error
from nas.user_attrs import collecting
from nas.experiment import Experiment, check_workdir_arg, open_experiment, resolve_seed, search_config
from nas.objectives import Constraint, Objective, Problem
from nas.pruning import Pruning, as_pruner
from nas.result import SearchResult
from nas.spaces import Architecture, Space
from nas.spaces.spec_difference import first_difference, space_path
from nas.stopping import StopRule, check_rule, reason
from nas.store import Journal, Trial
from nas.strategies import Deduplicate, Strategy, TrialResult, make_strategy, plain_options
from nas.strategies.multifidelity import FidelitySpace
from nas.strategies.optuna_sampler import OptunaSampler

log = logging.getLogger(__name__)

ProgressFn = Callable[[Trial, int, int], None]
FAIL_FAST = 3  # this many failed evaluations before any success (ok, or a cheap rejection) means evaluate is broken
MAX_REJECTIONS = 1000  # consecutive proposals rejected on cheap constraints before the search counts as exhausted


def search(space: Space, evaluate: Any, objectives: Mapping[str, str] | Sequence[Objective] | str,
           constraints: list[str | Constraint] | tuple[str | Constraint, ...] = (),
           strategy: str | Strategy = "evolution", budget: int = 100, seed: int | None = None,
           workdir: str | Path | None = None, executor: str | Mapping[str, Any] | Executor = "local",
           strategy_options: Mapping[str, Any] | None = None, fidelity: float | None = None,
           snapshot_every: int = 10, snapshot_interval_s: float = 2.0, progress: ProgressFn | None = None,
           metadata: Mapping[str, Any] | None = None, lower_budget: bool = False, timeout_s: float | None = None,
           max_time: float | None = None, enqueue: Sequence[Mapping[str, Any]] | None = None,
           warm_start: str | Path | None = None, stop_when: StopRule | None = None,
           pruner: Any = None) -> SearchResult:
    """Search `space` for architectures optimising `objectives` under `constraints`.

    `strategy` is a registered name (`nas strategies`), a `Strategy` instance, or any Optuna sampler instance
    (`optuna.samplers.BruteForceSampler()`, an OptunaHub sampler: `OptunaSampler`). `evaluate(arch)` gets a
    read-only mapping and returns a dict of metrics; it may be a list of evaluators, where those wrapped in
    `nas.cheap` run first so constraints on their metrics are checked before anything expensive. `budget` bounds the
    number of evaluations. With `workdir`, results are journaled there and an existing journal is resumed (its
    budget only grows unless `lower_budget`); the strategy is snapshotted every `snapshot_every` trials but at most
    once per `snapshot_interval_s` after the last one ended (resume replays the trials after the last one).
    `seed=None` draws a seed, recorded in the journal. `progress(trial, used, budget)` is called after each trial;
    `nas.search(..., progress=True)` shows a rich progress bar (`nas.report.SearchProgress`), starting from the
    journal's trials when resuming; `progress=False`, as None, shows nothing.

    `timeout_s` fails an evaluation that runs longer (its worker is killed: executor "processes");
    `max_time` stops submitting evaluations after that many seconds of this run (on a `SimulatedClockExecutor`:
    simulated seconds from the search's start, so a time-limited replay is deterministic and resumes exactly, and a
    resume of a search it stopped starts nothing unless given a larger one). `enqueue` evaluates
    these architectures first (a baseline, an earlier front; a warning names the `enqueue[i]` that repeat an earlier
    entry, or that the budget leaves out); `warm_start` (another search's workdir over
    the same space) tells the strategy that search's completed results without spending budget on them.
    A resumed run keeps the recorded seed, timeout, max_time, enqueue and warm start unless given anew
    (`timeout_s=float("inf")` or `max_time=float("inf")` lifts a recorded limit); a resume on an executor that
    cannot stop an evaluation runs without the recorded timeout but keeps it recorded for later resumes.
    `stop_when` (`nas.NoImprovement(patience)`, `nas.Target("valid_acc >= 0.95")` or any callable taking the
    `SearchResult` so far) ends the search below its budget once it holds; it applies to this run only.
    `pruner` ("median", "percentile", "asha", "hyperband", an `optuna.pruners` instance or `nas.Pruner(...)`)
    stops trainings whose `nas.report_metrics(...)` values fall behind (`nas.pruning`; executors "local",
    "processes" and "ray"); this run only.
    """
    return run(prepare(space, evaluate, objectives, constraints, strategy, budget, seed, workdir, executor,
                       strategy_options, fidelity, snapshot_every, snapshot_interval_s, progress, metadata,
                       lower_budget, timeout_s, max_time, enqueue, warm_start, stop_when, pruner))


@dataclass
class PreparedSearch:
    """A search checked and ready to run: all `search` validates before it touches the workdir.

    Drivers that report before they start (the CLI) prepare, check the workdir with
    `nas.experiment.check_workdir(prepared.workdir, prepared.config)`, then `run(prepared)`.
    """

    problem: Problem
    strategy: Deduplicate
    cheap: EvaluateFn | None
    evaluate: EvaluateFn
    executor: Executor
    config: dict[str, Any]
    workdir: Path | None
    lower_budget: bool
    snapshot_every: int
    snapshot_interval_s: float
    progress: ProgressFn | None
    enqueue: list[Architecture]
    warm: list[Trial]
    max_time: float | None
    evaluators: list[Evaluator] = field(default_factory=list)  # their `begin` hooks are called when it runs
    stop_when: StopRule | None = None


def prepare(space: Space, evaluate: Any, objectives: Mapping[str, str] | Sequence[Objective] | str,
            constraints: Sequence[str | Constraint] = (), strategy: str | Strategy = "evolution", budget: int = 100,
            seed: int | None = None, workdir: str | Path | None = None,
            executor: str | Mapping[str, Any] | Executor = "local", strategy_options: Mapping[str, Any] | None = None,
            fidelity: float | None = None, snapshot_every: int = 10, snapshot_interval_s: float = 2.0,
            progress: ProgressFn | None = None, metadata: Mapping[str, Any] | None = None,
            lower_budget: bool = False, timeout_s: float | None = None, max_time: float | None = None,
            enqueue: Sequence[Mapping[str, Any]] | None = None,
            warm_start: str | Path | None = None, stop_when: StopRule | None = None,
            pruner: Any = None) -> PreparedSearch:
    """`search`'s arguments checked (each error names its field) and resolved against the workdir's record."""
    if not isinstance(space, Space):
        raise ConfigError(f"space: expected a nas.spaces.Space, got {type(space).__name__}")
    check_count(budget, "budget", " (number of evaluations)")
    if progress is False:  # a verbosity flag passed through: no progress, as None
        progress = None
    if progress is not None and not _takes_three(progress):
        raise ConfigError(f"progress: expected a callable (trial, used, budget), or True through nas.search, "
                          f"got {progress!r}")
    check_count(snapshot_every, "snapshot_every")
    snapshot_interval_s = check_number(snapshot_interval_s, "snapshot_interval_s", positive=False, unit=" (seconds)")
    fidelity = jsonio.python_scalar(fidelity)  # np.int64(3) -> 3, np.float32(2.5) -> 2.5: as every sibling option
    if fidelity is not None and (isinstance(fidelity, bool) or not isinstance(fidelity, (int, float))
                                 or not math.isfinite(fidelity) or fidelity <= 0):
        raise ConfigError(f"fidelity: expected a positive number (the budget each evaluation is given, e.g. epochs), "
                          f"got {fidelity!r}")
    _check_workdir_path(workdir)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ConfigError(f"metadata: expected a dict of plain JSON data, got {type(metadata).__name__}")
    if metadata is not None:
        jsonio.plain(dict(metadata), "metadata")
    if warm_start is not None and not isinstance(warm_start, (str, PathLike)):
        raise ConfigError(f"warm_start: expected the workdir of an earlier search (a path), got {warm_start!r}")
    # None keeps a recorded limit; infinity lifts it (no limit, and none recorded from now on)
    timeout_given, max_time_given = timeout_s is not None, max_time is not None
    timeout_s, max_time = check_limit(timeout_s, "timeout_s"), check_limit(max_time, "max_time")
    journal = Journal(workdir) if workdir is not None else None
    contents = journal.read() if journal is not None and journal.exists() else None
    recorded = contents.config if contents is not None else {}
    if recorded.get("space") != space.fingerprint():
        recorded = {}  # another search's settings are not inherited (opening the workdir will refuse it)
    elif journal is not None and contents is not None:  # checked before a resume writes anything
        snapshot = journal.load_snapshot()
        _check_snapshot_fields(journal, snapshot)
        _check_snapshot_archs(journal, space, snapshot)
        usable = snapshot is not None and _snapshot_usable(snapshot, len(contents.trials))
        replayed = int(snapshot["after_trial"]) + 1 if snapshot is not None and usable else 0
        _check_journaled_archs(space, journal, contents.trials[replayed:])  # those the resume tells the strategy
    if metadata is None:
        metadata = recorded.get("metadata")  # a resumed run keeps the recorded metadata unless given anew
    if isinstance(strategy, Strategy):
        seed = _instance_seed(strategy, seed, recorded)
    seed = resolve_seed(seed, recorded)
    inherited_timeout = not timeout_given and recorded.get("timeout_s") is not None
    timeout_s = timeout_s if timeout_given else check_limit(recorded.get("timeout_s"), "timeout_s")
    max_time = max_time if max_time_given else check_limit(recorded.get("max_time"), "max_time")
    queued = _enqueued(space, enqueue if enqueue is not None else recorded.get("enqueue"), warn=enqueue is not None)
    covered = recorded.get("warm_start") is not None and _snapshot_restores(workdir)
    warm = _warm_start(space, warm_start, recorded.get("warm_start"), covered)
    problem = Problem.make(objectives, constraints)
    stop_when = check_rule(stop_when, problem.metrics_needed, problem.names)
    given = as_pruner(pruner)
    pruning = Pruning.make(given, problem) if given is not None else None
    if warm is not None:
        _check_warm_metrics(problem, warm)
        _warn_enqueued_warm(queued, warm, problem)
    evaluators = as_evaluators(evaluate)
    if fidelity is not None and not any(e.takes_budget for e in evaluators) and isinstance(space, FidelitySpace):
        raise ConfigError(f"fidelity={fidelity}: this search's space is a FidelitySpace, which passes the fidelity "
                          f"level to the evaluators through each architecture (its {space.field!r} field, one of "
                          f"{space.levels}), so fidelity= does not apply; leave it out")
    if fidelity is not None and not any(e.takes_budget for e in evaluators):
        names = ", ".join(repr(getattr(e.fn, "__name__", e.fn)) for e in evaluators)
        raise ConfigError(f"fidelity={fidelity}: no evaluator takes a budget= argument ({names}), so every evaluation "
                          "would ignore it while the journal records it; add a `budget` parameter to the evaluator "
                          "that trains")
    if strategy_options is not None and not isinstance(strategy_options, Mapping):
        raise ConfigError(f"strategy_options: expected a dict of option -> value, got {strategy_options!r}")
    options = plain_options(strategy_options)  # numpy scalars as their Python twins, before journaling
    if isinstance(strategy, Strategy):
        if options:
            raise ConfigError("strategy_options: only for strategies given by name")
        strat, strategy_name = strategy, strategy.name or type(strategy).__name__
        made_for = getattr(strat, "problem", problem)
        if made_for != problem:  # it would optimise what it was built for, not this search's objectives
            raise ConfigError(f"strategy: the {strategy_name!r} instance was made for {made_for.to_dict()}, this "
                              f"search has {problem.to_dict()}; make it with the same objectives and constraints")
        if getattr(strat, "space", space).fingerprint() != space.fingerprint():
            raise ConfigError(f"strategy: the {strategy_name!r} instance was made for another space; make it with "
                              "this search's space")
        if _ran_before(strat):
            raise ConfigError(f"strategy: this {strategy_name!r} instance already ran a search and holds its results; "
                              "make a new instance for each search (a resume too), or give the strategy by name")
    elif isinstance(strategy, str):
        strat, strategy_name = make_strategy(strategy, space, problem, seed, **options), strategy
        for key, value in options.items():  # journaled: a function (a predictor's proxy) cannot be
            try:
                jsonio.plain(value, f"strategy_options.{key}")
            except ConfigError as e:
                raise ConfigError(f"{e}: options given by name are journaled, so they must be JSON data; pass an "
                                  "instance (nas.strategies.make_strategy(...)) as strategy= instead") from None
    elif _optuna_sampler(strategy):
        if options:
            raise ConfigError("strategy_options: only for strategies given by name (set the sampler's own options)")
        strat = OptunaSampler(space, problem, seed, sampler=strategy)
        strategy_name = f"optuna:{type(strategy).__qualname__}"
    else:
        raise ConfigError(f"strategy: expected a name, a Strategy or an Optuna sampler, got {type(strategy).__name__}")
    cheap = [e for e in evaluators if e.cheap]
    expensive = [e for e in evaluators if not e.cheap]
    strat.use_cheap(merged(cheap, fidelity) if cheap else None)
    try:
        # timeout_s=inf (None after check_limit) lifts an executor instance's own timeout too
        runner = make_executor(executor, math.inf if timeout_given and timeout_s is None else timeout_s)
    except ConfigError:
        if not inherited_timeout:
            raise
        # the timeout is the journal's, not this call's: run on, without it, rather than blame an argument not given;
        # it stays recorded (timeout_s goes into the header as it was), so a later resume on processes applies it
        log.warning("%s: the recorded timeout_s=%s is not applied in this run: this executor cannot stop a running "
                    "evaluation (it stays recorded; resume with executor='processes' to apply it)", workdir,
                    recorded["timeout_s"])
        runner = make_executor(executor, None)
    if timeout_s is None:  # an executor instance's own timeout (ProcessExecutor(timeout_s=...)) is recorded too
        timeout_s = getattr(runner, "timeout_s", None)
    if pruning is not None and cheap:  # the cheap stage supplies some metrics, which no report need carry: reports
        pruning.problem = None  # need the judged metric, and a pruned trial's last report joins the cheap metrics
    runner.set_pruning(pruning)
    expensive_fn = merged(expensive, fidelity)
    runner.check_evaluate(expensive_fn)  # one a worker process cannot be sent is refused before the journal is written
    config = search_config(space, problem, strategy_name, options, seed, budget, fidelity, metadata,
                           timeout_s=timeout_s, max_time=max_time,
                           enqueue=[a.to_dict() for a in queued] or None, warm_start=warm.record if warm else None)
    if isinstance(runner, SimulatedClockExecutor):  # a resume re-runs the journaled schedule: same workers only
        _check_simulated_workers(runner.workers, recorded, contents.trials if recorded and contents else [])
        config["simulated_clock"] = {"workers": runner.workers}  # in the header of a new journal
    if isinstance(strategy, Strategy):  # a resume by name, or with an instance made otherwise, is another search
        config["strategy_instance"] = _instance_record(strat)
    elif isinstance(strat, OptunaSampler):
        config["strategy_instance"] = {**_instance_record(strat), "sampler": strat.sampler_class}
    return PreparedSearch(problem, Deduplicate(strat), merged(cheap, fidelity) if cheap else None,
                          expensive_fn, runner, config,
                          Path(workdir) if workdir is not None else None, lower_budget, snapshot_every,
                          snapshot_interval_s, progress, queued, warm.trials if warm else [], max_time, evaluators,
                          stop_when)


def run(prepared: PreparedSearch) -> SearchResult:
    """Claim the workdir (create or resume its journal) and run the prepared search to its end."""
    try:
        experiment = open_experiment(prepared.workdir, prepared.config, lower_budget=prepared.lower_budget)
    except BaseException:
        prepared.executor.close()  # e.g. the Ray instance its `check_evaluate` started is not left running
        raise
    _mark_ran(prepared.strategy.inner)
    try:
        loop = _SearchLoop(prepared.problem, prepared.strategy, prepared.cheap, prepared.evaluate, prepared.executor,
                           experiment, prepared.snapshot_every, prepared.snapshot_interval_s, prepared.progress,
                           prepared.evaluators, prepared.stop_when)
        return loop.run(prepared.enqueue, prepared.warm, prepared.max_time)
    except BaseException:
        prepared.executor.close()  # failed before the loop's own close (begin hooks, a snapshot restore); idempotent
        raise
    finally:
        experiment.close()


def _check_workdir_path(workdir: Any) -> None:
    """ConfigError naming `workdir` when it cannot hold a journal: not a path, empty, a file, or below a file (a
    `journal.jsonl` that is a folder is the JournalError of `Journal.exists`)."""
    if workdir is None:
        return
    if not isinstance(workdir, (str, PathLike)):
        raise ConfigError(f"workdir: expected a folder path (str or pathlib.Path), got {type(workdir).__name__} "
                          f"{workdir!r}")
    check_workdir_arg(workdir)
    path = Path(workdir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"workdir: {workdir} is a file, not a folder")
    above = next((p for p in path.parents if p.exists()), None)  # the nearest folder (or file) that exists
    if not path.exists() and above is not None and not above.is_dir():
        raise ConfigError(f"workdir: {above} is a file, so the folder {workdir} cannot be made inside it; give a "
                          "path whose existing part is a folder")


def _check_journaled_archs(space: Space, journal: Journal, trials: Sequence[Trial]) -> None:
    """JournalError naming file:line and the field when the architecture of one of `trials` (those a resume replays
    to the strategy) is outside `space` (a hand edit, a journal written by another search): the strategy would learn
    from, and vary, a model the space cannot build. The trials a strategy snapshot covers are not validated again
    (`Deduplicate.recall`): on a 1,000-decision space that costs 4 ms a trial, on every resume."""
    for t in trials:
        try:
            space.validate(t.arch)
        except InvalidArchitectureError as e:
            line = journal.line_of(t.number)
            raise JournalError(f"{journal.path}:{line if line is not None else '?'}: trial {t.number}'s architecture "
                               f"is outside this search's space ({e}); restore the journal from a copy, or fix that "
                               "line by hand") from None


def _check_snapshot_archs(journal: Journal, space: Space, snap: Mapping[str, Any] | None) -> None:
    """JournalError (deleting the snapshot is safe) naming the field and the architecture when one the snapshot `snap`
    holds as pending or queued is not an architecture of `space` (hand-edited, or an older space's): a resume would
    evaluate it. Architectures inside the strategy's own state are for its `load_state_dict` to check."""
    for key in ("pending", "queued"):
        for arch in (snap or {}).get(key, []):
            try:
                space.validate(arch)
            except InvalidArchitectureError as e:
                raise journal.damaged_snapshot(f"{key} holds {arch!r:.200}, which is not an architecture of this "
                                               f"search's space ({e})") from None


def _check_simulated_workers(workers: int, recorded: Mapping[str, Any], trials: Sequence[Trial]) -> None:
    """ConfigError naming `workers` when a simulated-clock search resumes with another worker count than its journal
    ran with (its header's record, or for a journal written before that was recorded, its highest `sim-N` lane): the
    resume places the journaled trials on the workers and at the times they ran, which holds for that count only;
    another count journals one worker running two trials at once, or trials a worker the run does not have. A
    simulated search costs seconds, so a new workdir loses nothing."""
    record = recorded.get("simulated_clock")
    ran = record.get("workers") if isinstance(record, Mapping) else None
    if ran is not None and ran != workers:
        raise ConfigError(f"workers: this search ran on a SimulatedClockExecutor with {ran} workers, this run has "
                          f"{workers}; a resume re-runs the journaled schedule, which holds for {ran} workers only "
                          f"(resume with SimulatedClockExecutor(workers={ran}), or use a new workdir)")
    lanes = [int(t.worker[4:]) for t in trials if t.worker.startswith("sim-") and t.worker[4:].isdigit()]
    if ran is None and lanes and max(lanes) >= workers:
        raise ConfigError(f"workers: this search's journal has trials on simulated worker sim-{max(lanes)}, so it ran "
                          f"with at least {max(lanes) + 1} workers; this run has {workers}; a resume re-runs the "
                          "journaled schedule, which holds for the same workers only (resume with as many as it ran "
                          "with, or use a new workdir)")


def _check_snapshot_fields(journal: Journal, snap: Mapping[str, Any] | None) -> None:
    """JournalError (deleting the snapshot is safe) when the strategy snapshot `snap` lacks a field a resume restores:
    `Journal.load_snapshot` checks the type of each field it holds, this that `state` and `pending` are there."""
    missing = [k for k in ("state", "pending") if snap is not None and k not in snap]
    if missing:
        raise journal.damaged_snapshot(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")


def _enqueued(space: Space, enqueue: Sequence[Mapping[str, Any]] | None, warn: bool = True) -> list[Architecture]:
    """The architectures to evaluate first, validated (an error names `enqueue[i]` and the field); `warn`: about
    entries that repeat an earlier one (each architecture is evaluated once)."""
    if enqueue is None:
        return []
    if isinstance(enqueue, (str, bytes)) or not isinstance(enqueue, Sequence):
        raise ConfigError(f"enqueue: expected a list of architectures, got {type(enqueue).__name__}")
    out = []
    for i, arch in enumerate(enqueue):
        try:
            out.append(space.validate(arch))
        except InvalidArchitectureError as e:
            raise InvalidArchitectureError(f"enqueue[{i}].{e.path}" if e.path else f"enqueue[{i}]",
                                           str(e).split(": ", 1)[-1]) from None
    first: dict[str, int] = {}
    repeats = [f"enqueue[{i}] (= enqueue[{first[a.id]}])" for i, a in enumerate(out)
               if first.setdefault(a.id, i) != i]
    if warn and repeats:
        log.warning("enqueue: %s %s an architecture listed before, which is evaluated once; drop the duplicate%s",
                    ", ".join(repeats), "repeats" if len(repeats) == 1 else "repeat", "" if len(repeats) == 1 else "s")
    return out


def _warn_enqueued_over_budget(queued: Sequence[Architecture], enqueue: Sequence[Architecture], room: int) -> None:
    """Warn when fewer evaluations are left (`room`) than distinct enqueued architectures still to run (`queued`),
    naming the `enqueue[i]` entries the budget leaves out: an enqueue otherwise promises their evaluation."""
    index: dict[str, int] = {}
    for i, a in enumerate(enqueue):
        index.setdefault(a.id, i)
    distinct = list(dict.fromkeys(a.id for a in queued))
    if len(distinct) <= max(room, 0):
        return
    left = [f"enqueue[{index[i]}]" for i in distinct[max(room, 0):] if i in index]
    log.warning("enqueue: %d enqueued architectures wait to be evaluated but the budget leaves %d evaluations, so "
                "%s %s not evaluated (unless cheap constraints reject earlier ones); raise budget by %d to evaluate "
                "them all", len(distinct), max(room, 0), ", ".join(left), "is" if len(left) == 1 else "are",
                len(distinct) - max(room, 0))


def _optuna_sampler(strategy: Any) -> bool:
    """Whether `strategy` is an Optuna sampler instance (Optuna is imported already where one was made)."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(strategy, optuna.samplers.BaseSampler)


def _instance_seed(strategy: Strategy, seed: int | None, recorded: Mapping[str, Any]) -> int | None:
    """The seed a search with a Strategy instance records: the one the instance was made with, read from its numpy
    generator (a `seed=` that differs is a ConfigError: the instance draws from its own generator). A journal
    from before instances were recorded keeps the seed its header holds (None: resolved as usual)."""
    own = None
    seq = getattr(getattr(getattr(strategy, "rng", None), "bit_generator", None), "seed_seq", None)
    if isinstance(seq, np.random.SeedSequence) and isinstance(seq.entropy, int) and not seq.spawn_key:
        own = seq.entropy
    if seed is not None and own is not None and check_seed(seed) != own:
        raise ConfigError(f"seed: {seed} is not the seed the {strategy.name or type(strategy).__name__!r} instance "
                          f"was made with ({own}); an instance draws from its own generator, so leave seed= out or "
                          "pass the seed to make_strategy")
    if seed is None and (not recorded or "strategy_instance" in recorded):
        return own
    return seed


def _instance_record(strategy: Strategy) -> dict[str, Any]:
    """What a Strategy instance shows of how it was made, for the journal header: its class, and the options of
    its constructor that it keeps under their own names (plain JSON values only)."""
    cls = type(strategy)
    options: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "space", "problem", "seed") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if not hasattr(strategy, name):  # an option it does not keep under its own name
            continue
        try:
            options[name] = jsonio.plain(getattr(strategy, name), name)
        except ConfigError:  # a live object (a predictor, a prior): not recorded
            continue
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "options": options}


RAN_MARK = "_nas_ran_search"  # set on a Strategy instance that runs a search: it then holds that search's results


def _ran_before(strategy: Strategy) -> bool:
    """Whether `strategy` (an instance the user passed) already ran a search."""
    return bool(getattr(strategy, RAN_MARK, False))


def _mark_ran(strategy: Strategy) -> None:
    """Mark `strategy` as running a search (an attribute on the instance, so nothing outlives it)."""
    try:
        setattr(strategy, RAN_MARK, True)
    except AttributeError:  # a class with __slots__: not tracked
        pass


def _takes_three(fn: Any) -> bool:
    """Whether `fn` can be called with three positional arguments (a callable whose signature is hidden passes):
    an Optuna-style callback `(study, trial)` is refused before the first evaluation, not after it."""
    if not callable(fn):
        return False
    try:
        inspect.signature(fn).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to read (some builtins)
        return True
    return True


def _snapshot_usable(snapshot: Mapping[str, Any], trials: int) -> bool:
    """Whether a resume restores `snapshot`: the journal holds trials, and every one the snapshot covers (a
    snapshot ahead of the journal, left by restoring an older journal, is ignored and the journal replayed)."""
    return trials > 0 and int(snapshot["after_trial"]) < trials


def _snapshot_restores(workdir: str | Path | None) -> bool:
    """Read-only: whether resuming `workdir` restores its strategy snapshot (so the warm start it holds is not
    read again)."""
    if workdir is None:
        return False
    journal = Journal(workdir)
    try:
        snapshot = journal.load_snapshot() if journal.exists() else None
        return snapshot is not None and _snapshot_usable(snapshot, len(journal.read().trials))
    except (JournalError, KeyError, TypeError, ValueError):  # damaged: the resume reports it
        return False


@dataclass(frozen=True)
class _WarmStart:
    record: dict[str, Any]  # {"workdir", "trials"}: what the journal header records
    trials: list[Trial]


def _warm_start(space: Space, given: str | Path | None, recorded: Mapping[str, Any] | None,
                covered: bool = False) -> _WarmStart | None:
    """The earlier search's trials to tell the strategy: as many as the header recorded when resuming; none read
    when the resume restores a strategy snapshot (`covered`: it holds them), so the earlier search may be gone."""
    if given is None and recorded is None:
        return None
    path = Path(given).resolve() if given is not None else Path(recorded["workdir"])  # type: ignore[index]
    if recorded is not None and path != Path(recorded["workdir"]):
        raise JournalError(f"warm_start: this search was warm-started from {recorded['workdir']}, not {path}")
    if recorded is not None and covered:
        return _WarmStart(dict(recorded), [])
    journal = Journal(path)
    if not journal.exists():
        raise ConfigError(f"warm_start: {path} holds no search journal")
    contents = journal.read()
    if contents.config.get("space") != space.fingerprint():
        where = first_difference(contents.config.get("space_spec"), space.to_spec())[0]
        field = space_path(where)[0] if where is not None else "its type"
        raise ConfigError(f"warm_start: {path} searched a different space (it differs at {field})")
    count = int(recorded["trials"]) if recorded is not None else len(contents.trials)
    if len(contents.trials) < count:
        raise JournalError(f"warm_start: {path} holds {len(contents.trials)} trials, fewer than the {count} this "
                           "search was warm-started with")
    return _WarmStart({"workdir": str(path), "trials": count}, contents.trials[:count])


def _warn_enqueued_warm(queued: Sequence[Architecture], warm: _WarmStart, problem: Problem) -> None:
    """Warn about enqueued architectures the warm start already holds a result for: that result is used (told to
    the strategy, cached), so they are not evaluated again, which an enqueue otherwise promises."""
    known = {t.arch_id for t in warm.trials if t.status == "ok" and problem.result_error(t.metrics) is None}
    twice = [f"enqueue[{i}]" for i, a in enumerate(queued) if a.id in known]
    if twice:
        log.warning("%s: the warm start %s already holds a result for %s, which is used; %s not evaluated again",
                    ", ".join(twice), warm.record["workdir"], "it" if len(twice) == 1 else "them",
                    "it is" if len(twice) == 1 else "they are")


def _check_warm_metrics(problem: Problem, warm: _WarmStart) -> None:
    """Warn when the warm start's completed trials lack this search's metrics (they are not told: it runs colder)."""
    done = [t for t in warm.trials if t.status == "ok"]
    usable = sum(problem.result_error(t.metrics) is None for t in done)
    if usable == len(done):
        return
    missing = sorted({m for t in done for m in problem.missing(t.metrics)})
    have = sorted({m for t in done for m in t.metrics})
    log.warning("warm_start: only %d of the %d completed trials in %s are usable (%s): they lack %s (they have: %s)",
                usable, len(done), warm.record["workdir"],
                "the search starts cold" if usable == 0 else "the others are not told",
                ", ".join(map(repr, missing)) or "finite values", ", ".join(have) or "no metrics")


class _SearchLoop:
    """One run of the ask → cheap stage → evaluate → journal → tell cycle (a class to share its bookkeeping)."""

    strategy: Deduplicate

    def __init__(self, problem: Problem, strategy: Deduplicate, cheap: EvaluateFn | None, evaluate: EvaluateFn,
                 executor: Executor, experiment: Experiment, snapshot_every: int, snapshot_interval_s: float,
                 progress: ProgressFn | None, evaluators: Sequence[Evaluator] = (),
                 stop_when: StopRule | None = None) -> None:
        self.problem, self.strategy, self.cheap, self.evaluate = problem, strategy, cheap, evaluate
        self.evaluators = list(evaluators)
        self.stop_when, self.stopped = stop_when, False  # stopped: the rule held, nothing new is submitted
        self.executor, self.experiment, self.budget = executor, experiment, experiment.budget
        self.snapshot_every, self.snapshot_interval_s, self.progress = snapshot_every, snapshot_interval_s, progress
        self.filtering = cheap is not None and bool(problem.constraints)
        self.replay: dict[str, Trial] = {}
        self.pending: list[Architecture] = []
        self.in_flight: dict[str, tuple[Architecture, dict[str, float]]] = {}  # id -> (arch, cheap metrics)
        self.ready: list[Completed] = []  # collected from the executor, not yet journaled (drained on Ctrl-C)
        # the architecture between its ask and the executor (cheap stage, a simulated clock's evaluation) and the
        # trial count then: an interrupt there keeps it pending in the snapshot, so resume evaluates it
        self.staging: tuple[Architecture, int] | None = None
        # the strategy is inside ask or tell: an interrupt there leaves its state half updated (an advanced RNG, a
        # batch not queued, a result half taken in), so the last snapshot stands (`torn`) and resume replays the
        # journal after it
        self.asking = False
        self.telling = False
        self.torn = False
        self.placements: dict[str, dict[str, Any]] = {}  # id -> where/when a snapshotted in-flight job started
        # the executor re-runs the schedule (`Executor.replays`): journaled trials are resubmitted as they ran
        # (`replaying`, id -> trial) and told when they finish; `ahead` counts the journaled evaluations not yet
        # told, which the budget does not count yet (it did not when the schedule first reached this point)
        self.exact = bool(getattr(executor, "replays", False))
        self.replaying: dict[str, Trial] = {}
        self.ahead = 0
        self.queued: list[Architecture] = []  # enqueued architectures still to submit
        self.enqueue_ids: set[str] = set()  # every enqueued architecture (their trials say so in `extra`)
        self.enqueued: set[str] = set()  # ids of enqueued architectures submitted and not yet finished
        self.deadline = float("inf")  # executor.now() from which nothing new is submitted (max_time)
        self.checked = False  # a trial completed: the objectives' names are right (checked on the first result)
        self.works = False  # an evaluation of this run succeeded (ok, or infeasible: a cheap rejection too): no fail-fast
        self.run_from = 0  # the trials journaled before this run (fail-fast counts this run's failures only)
        self.since: dict[str, float] = {}  # id -> when its evaluation was submitted (running.json)
        self.cheap_attrs: dict[str, dict[str, Any]] = {}  # id -> the cheap stage's `set_user_attr`s, until journaled
        self.reports: dict[str, dict[str, Any]] = {}  # a study's per-epoch reports of its pending architectures
        self.queued: list[Architecture] = []  # a study's enqueued architectures not asked yet (kept in the snapshot)
        self._published: tuple[int, frozenset[str]] | None = None
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

    def run(self, enqueue: Sequence[Architecture] = (), warm: Sequence[Trial] = (),
            max_time: float | None = None) -> SearchResult:
        """Restore, warm-start (unless a snapshot already holds it), then the loop; enqueued architectures first."""
        # evaluators with state restore what the journaled evaluations left, here, before the executor copies them
        begin_search(self.evaluators, self.experiment.workdir, list(self.trials))
        begin = getattr(self.progress, "begin", None)  # a progress bar shows the journal's trials from the start
        if begin is not None:  # before restoring: rechecking a problem's failed trials reports to it
            header = {"config": self.experiment.config} if "config" in inspect.signature(begin).parameters else {}
            begin(self.problem, self.budget, list(self.trials), **header)  # the header: a multi-fidelity top level
        after = self._load_snapshot() if self.trials else None
        start = -1 if after is None else after  # the last trial the strategy's restored state has heard of
        if after is None:  # warm-start results come first, as in the run that wrote the journal (a snapshot has them)
            for t in warm:  # an earlier search's complete results: told, cached, never evaluated again
                if t.status == "ok" and self.problem.result_error(t.metrics) is None:
                    self._tell_strategy(t.architecture, TrialResult.of("ok", t.metrics))
            self.strategy.keep()  # no journal of this search holds those: snapshots keep them
        if self.trials:
            self._restore(start, enqueue)
        told = self.trials[:start + 1] if self.exact else self.trials  # exact: the schedule re-runs from the snapshot
        done = {t.arch_id for t in told} | {a.id for a in self.pending}
        self.queued = [a for a in enqueue if a.id not in done]  # exact: those journaled later are replayed in turn
        self.enqueue_ids |= {a.id for a in enqueue}
        known = self.strategy.results  # a warm start's results: not evaluated (`_warn_enqueued_warm` says so)
        _warn_enqueued_over_budget([a for a in self.queued if self.strategy.key(a) not in known], enqueue,
                                   self.budget - (self.used - self.ahead) - len(self.pending))
        if max_time is not None:  # on the executor's clock: wall-clock seconds of this run, or simulated seconds
            self.deadline = self.executor.deadline(max_time)
        try:
            self.executor.start(self.evaluate)
            self.executor.resume_after(told, self.placements)
        except BaseException:
            self.executor.close()  # e.g. a Ray instance this search started is shut down, not left for later searches
            raise
        self.checked = any(t.status == "ok" for t in self.trials)
        # fail-fast holds per run: a resume in a broken environment (data missing on a new machine) must not spend
        # the rest of the budget on failures, which deduplication would never evaluate again
        self.works, self.run_from = False, len(self.trials)
        stop, ended = "budget", False
        try:
            self._check_stop()  # a resumed search whose results already meet the rule starts nothing
            while True:
                self._fill()
                self._publish_running()
                if not self.in_flight:
                    stop = ("budget" if self.used >= self.budget else
                            reason(self.stop_when) if self.stopped and self.stop_when is not None else
                            "max_time" if self.executor.now() >= self.deadline else "exhausted")
                    break
                self.ready = self.executor.wait()
                while self.ready:
                    self._complete(self.ready[0])
                    self.ready.pop(0)
                self._check_stop()
            ended = True
        except BaseException as e:
            self.torn = self.asking or self.telling
            if isinstance(e, KeyboardInterrupt):
                self._drain()
            raise
        finally:
            if self.torn:
                log.info("interrupted while the strategy %s: its state is not snapshotted (resume restores the last "
                         "snapshot and replays the journal after it)",
                         "chose its next architecture" if self.asking else "took in a result")
            elif ended or not self.exact:  # stopped mid-replay, the last snapshot stands: resume replays again
                self._flush_replay()
            self._snapshot()
            self.executor.close()
            end = getattr(self.progress, "end", None)
            if end is not None:
                end()
        self.experiment.end(stop)
        if stop == "exhausted":
            log.warning("the strategy proposed no new feasible architecture after %d evaluations (space exhausted, "
                        "strategy converged, or cheap constraints rejected every proposal); stopping below the "
                        "budget of %d", self.used, self.budget)
        return SearchResult(list(self.trials), self.problem, self.experiment.workdir, stop, self.experiment.config)

    def _check_stop(self) -> None:
        """Ask the stop rule about the results so far; once it holds nothing new is submitted (what runs finishes)."""
        if self.stop_when is None or self.stopped or not self.trials:
            return
        if self.stop_when(SearchResult(list(self.trials), self.problem, self.experiment.workdir, "running",
                                       self.experiment.config)):
            self.stopped, self.deadline = True, -math.inf
            log.info("%s after %d evaluations: no new evaluation is started", reason(self.stop_when), self.used)

    def _complete(self, done: Completed) -> None:
        """Judge, journal and tell one evaluation the executor returned (`_record` takes it out of flight)."""
        replayed = self.replaying.pop(done.arch.id, None)
        if replayed is not None:  # journaled before the interruption: told now, where the schedule reached it
            self.in_flight.pop(done.arch.id)
            self.enqueued.discard(done.arch.id)
            self._tell(replayed)
            return
        if self.exact and self.replay:  # the schedule left the journal (a strategy not replaying its asks): tell the rest
            log.info("resuming: the re-run schedule left the journal at trial %d; the %d trials not reached are told "
                     "in journal order", len(self.trials), len(self.replay))
            self._flush_replay()
        arch, known = self.in_flight[done.arch.id]
        metrics, error = _merge(known, done.metrics, done.error)
        if error is not None and TWICE in error:  # the evaluators' fault, not this architecture's: nothing journaled
            raise ConfigError(f"evaluate: {error.split(': ', 1)[-1]}; nothing was journaled for architecture "
                              f"{arch.id[:12]}, so a corrected run evaluates it")
        typo = self.problem.names_error(metrics) if metrics is not None and not self.checked else None
        if typo is not None:  # journaled with its metrics, so a corrected run counts it (_recheck)
            if done.stopped_after is not None:  # not a misnamed objective: the reports lack it
                typo = stopped_error(self.problem.missing(metrics), metrics, done.stopped_after)
            self._record(arch, metrics, "failed", done.started, done.finished, done.worker, typo,
                         {"config_error": True})
            raise ConfigError(typo)
        status, metrics, error = self._judge(metrics, error, done.stopped_after)
        self.checked = self.checked or status == "ok"
        self.works = self.works or status == "ok"
        extra = done.extra if done.stopped_after is None else {**done.extra, "pruned_after": done.stopped_after}
        self._finish(arch, metrics, status, done.started, done.finished, done.worker, error, extra)

    def _drain(self) -> None:
        """Ctrl-C: journal the evaluations that already finished, collected or not, without waiting for any
        (a resume would run them again); an error on the way is logged and ends the drain."""
        try:
            ready, self.ready = self.ready + self.executor.poll(), []
        except Exception as e:  # noqa: BLE001 - the interrupt is what propagates
            log.warning("on Ctrl-C, the finished evaluations could not be collected: %s", e)
            ready, self.ready = self.ready, []
        drained = 0
        for done in ready:
            if done.arch.id not in self.in_flight:  # journaled before the interrupt
                continue
            try:
                self._complete(done)
            except Exception as e:  # noqa: BLE001 - a config error, a full disk: the interrupt still propagates
                log.warning("on Ctrl-C, journaling the finished evaluations stopped: %s", e)
                break
            drained += 1
        if drained:
            log.info("interrupted: journaled %d evaluation(s) that had finished", drained)

    def _judge(self, metrics: dict[str, float] | None, error: str | None,
               stopped_after: int | None = None) -> tuple[str, dict[str, float], str | None]:
        """(status, metrics, error) of a finished evaluation: ok only with every needed metric, finite."""
        if metrics is None:
            return "failed", {}, error
        missing = self.problem.missing(metrics)
        if missing and stopped_after is not None:  # a scheduler stopped it at a report lacking them
            return "failed", metrics, stopped_error(missing, metrics, stopped_after)
        problem = self.problem.result_error(metrics)
        return ("failed", metrics, problem) if problem else ("ok", metrics, None)

    def _finish(self, arch: Architecture, metrics: dict[str, float], status: str, started: float, finished: float,
                worker: str, error: str | None, extra: Mapping[str, Any] | None = None) -> None:
        """Journal and tell one finished evaluation (or cheap-stage failure); snapshot now and then."""
        broken = False
        if status == "failed":
            log.warning("evaluation of %s failed: %s", arch.id, error)
            broken = not self.works and sum(t.status == "failed" for t in self.trials[self.run_from:]) + 1 >= FAIL_FAST
        trial = self._record(arch, metrics, status, started, finished, worker, error, extra, notify=False)
        self._tell_strategy(arch, TrialResult.of(status, metrics))  # told even when stopping: the snapshot covers it
        self._notify(trial)  # after the tell: a progress callback that raises (Ctrl-C) leaves no trial untold
        if broken:
            run = " of this run" if self.run_from else ""
            raise NASError(f"the first {FAIL_FAST} evaluations{run} all failed; the last with: {error}")
        if (self.journaled and len(self.trials) - self._snapshot_at >= self.snapshot_every
                and time.monotonic() - self._snapshot_time >= self.snapshot_interval_s):
            self._snapshot()

    def _load_snapshot(self, before_any_trial: bool = False) -> int | None:
        """Restore the strategy from the snapshot, with the architectures it holds as pending (when each was asked,
        and a study's reports of them so far); the last trial it covers, or None when there is none.
        `before_any_trial`: a snapshot taken before the first result counts too (a study's asks were handed out;
        a search's are simply made again)."""
        snap = self.experiment.snapshot()
        if snap is None:
            return None
        first = before_any_trial and not self.trials and int(snap["after_trial"]) == -1
        if not first and not _snapshot_usable(snap, len(self.trials)):
            if not self.trials:
                return None
            log.warning("%s: the strategy snapshot covers %d trials but the journal holds %d (a journal restored from "
                        "an older copy?); ignoring the snapshot and replaying the journal from its start",
                        self.experiment.workdir, int(snap["after_trial"]) + 1, len(self.trials))
            return None
        journal = self.experiment.writer
        assert journal is not None  # a snapshot was read from it
        _check_snapshot_fields(journal, snap)  # `prepare` checked it; a search started since may have replaced it
        _check_snapshot_archs(journal, self.strategy.space, snap)
        state = snap["state"]
        if set(state) == {"inner"}:  # written before the cheap stage moved from a strategy wrapper into this loop
            state = state["inner"]
        try:
            self.strategy.load_state_dict(state)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:  # hand-edited, or another strategy's
            what = f"field {e.args[0]!r} is missing" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            name = self.strategy.inner.name or type(self.strategy.inner).__name__
            raise journal.damaged_snapshot(f"its state does not restore the {name} strategy ({what})") from e
        if not state.get("journaled") and not self.experiment.config.get("warm_start"):
            self.strategy.keep(0)  # an older snapshot's results are all the journal's: the next one leaves them out
        self._recall(int(snap["after_trial"]))
        self.pending = [Architecture(a) for a in snap["pending"]]
        self.placements = dict(snap.get("placements", {}))
        self.since.update({i: float(t) for i, t in snap.get("asked", {}).items()})
        self.reports = {i: dict(r) for i, r in snap.get("reports", {}).items()}
        self.queued = [Architecture(a) for a in snap.get("queued", [])]
        self.enqueue_ids = set(snap.get("enqueued", []))  # pending ones a study's `enqueue` queued: their trials say so
        return int(snap["after_trial"])

    def _recall(self, after: int) -> None:
        """Give the restored strategy's cache back the results of the trials up to `after`, which the snapshot
        leaves out (`Deduplicate.state_dict(journaled=True)`): those told, so not a misnamed objective's."""
        for t in self.trials[:after + 1]:
            if not t.extra.get("config_error"):
                self.strategy.recall(t.arch_id, t.arch, TrialResult.of(t.status, t.metrics))

    def _restore(self, after: int, first: Sequence[Architecture] = (), study: bool = False) -> None:
        """Recheck a corrected problem's trials and queue the journal's trials after `after` for replay; those of
        the architectures enqueued before the search began (`first`) are told first, as they ran first. `study`: a
        `nas.Study` reopens it (which evaluates nothing: its warning at the budget says so in a study's terms)."""
        if self.experiment.problem_changed:
            self._recheck()
        first_ids = {a.id for a in first}
        for t in self.trials[after + 1:]:
            if "rechecked_from" in t.extra:  # told here, before any ask, as in the run that rechecked it
                self._tell_strategy(t.architecture, TrialResult.of(t.status, t.metrics))
            elif t.arch_id in first_ids and t.extra.get("enqueued") and not self.exact:  # evaluated before the
                # strategy asked anything: told first (a study's later `enqueue` ran in turn)
                self._tell_strategy(t.architecture, TrialResult.of(t.status, t.metrics))
            elif not t.extra.get("config_error"):
                self.replay.setdefault(t.arch_id, t)
        self.ahead = sum(t.is_evaluation for t in self.replay.values()) if self.exact else 0
        if self.used >= self.budget and study:  # ask() hands out nothing; a tell (a baseline) is still journaled
            log.warning("%s: this study has used its budget (%d evaluations told, budget %d): ask() hands out "
                        "nothing more (to go on, raise it: nas.Study(..., budget=N) or nas ask --budget N); results "
                        "told now are journaled beyond it", self.experiment.workdir, self.used, self.budget)
        elif self.used >= self.budget:  # nothing will run: say so by default (a fixed `evaluate` would be ignored)
            log.warning("%s already holds this search's %d evaluations (budget %d): returning the journal's %d trials, "
                        "nothing evaluated (a changed evaluate is not re-run; use a new workdir or a larger budget)",
                        self.experiment.workdir, self.used, self.budget, len(self.trials))
        else:
            log.info("resuming %s: %d trials in the journal, %d to replay", self.experiment.workdir,
                     len(self.trials), len(self.replay))

    def _recheck(self) -> None:
        """The objectives were corrected: results journaled as failed for a config error count if they now pass
        (journaled as copies, which `_restore` tells the strategy)."""
        for t in list(self.trials):
            if t.extra.get("config_error") and self.problem.result_error(t.metrics) is None \
                    and not any(u.extra.get("rechecked_from") == t.number for u in self.trials):
                self._record(t.architecture, t.metrics, "ok", t.started, t.finished, t.worker, None,
                             {"rechecked_from": t.number})

    def _fill(self) -> None:
        """Submit work until the executor is full, the budget is committed or the strategy has nothing new."""
        rejected = 0
        while self.executor.free_slots() > 0 and self.used - self.ahead + len(self.in_flight) < self.budget:
            if self.executor.now() >= self.deadline:
                return  # max_time: nothing new starts; what runs finishes
            asked = False
            if self.pending:
                arch = self.pending.pop(0)
            elif self.queued:
                arch = self.queued.pop(0)
                if not self.strategy.claim(arch):
                    continue  # a twin was evaluated already
            elif self.enqueued:
                return  # the strategy asks only once every enqueued architecture is back (so resume is exact)
            else:
                self.asking = True
                proposals = self.strategy.ask(1)
                self.asking = False
                if not proposals:
                    rejected += 1
                    if self.filtering and rejected < MAX_REJECTIONS and not self.strategy.exhausted:
                        continue  # its proposals may have been rejected on cheap metrics: ask again
                    return
                arch, asked = proposals[0], True
            replayed = self.replay.pop(arch.id, None)  # journaled after the snapshot (a pending one may have finished)
            if replayed is not None and not (self.exact and replayed.worker.startswith("sim-")):
                self._tell(replayed)  # a cheap-stage outcome was told when asked; elsewhere the order is not known
                continue
            if replayed is None and asked and self.replay and not self.pending and not self.exact:
                self._flush_replay()  # the strategy no longer retraces the journal: tell it the rest
            if arch.id in self.enqueue_ids:
                self.enqueued.add(arch.id)
            if replayed is not None:  # placed where and when it ran; told when it finishes there
                self.executor.submit(Job(arch, replay=replayed))
                self.in_flight[arch.id] = (arch, {})
                self.replaying[arch.id] = replayed
                self.since[arch.id] = time.time()
                continue
            self.staging = (arch, len(self.trials))
            known = self._cheap_stage(arch)
            if known is None:
                self.staging = None
                rejected += 1
                if rejected >= MAX_REJECTIONS:
                    return
                continue
            self.executor.submit(Job(arch, known))
            self.in_flight[arch.id] = (arch, known)
            self.staging = None
            self.since[arch.id] = time.time()

    def _cheap_stage(self, arch: Architecture) -> dict[str, float] | None:
        """The cheap metrics of `arch` (computed once); None when it failed or broke a constraint (journaled)."""
        if self.cheap is None:
            return {}
        started = time.time()
        with collecting() as attrs:  # its `set_user_attr`s join the trial's, as the expensive stage's do
            metrics, error = run_job(self.cheap, arch)
        if attrs:
            self.cheap_attrs[arch.id] = attrs
        if metrics is None:
            self._finish(arch, {}, "failed", started, time.time(), "cheap-stage", error)
            return None
        bad = self.problem.non_finite(metrics)
        if bad:  # a NaN bound metric would otherwise read as infeasible, for every architecture, with no error
            self._finish(arch, metrics, "failed", started, time.time(), "cheap-stage",
                         f"the cheap evaluator returned {bad}")
            return None
        if self.filtering and sum(c.violation(metrics) for c in self.problem.constraints if c.metric in metrics):
            now = time.time()
            trial = self._record(arch, metrics, "infeasible", now, now, "constraint-filter", None, notify=False)
            self.works = True  # the cheap evaluator measured it: evaluate is not broken
            self._tell_strategy(arch, TrialResult.of("infeasible", metrics))
            self._notify(trial)
            return None
        return metrics

    def _flush_replay(self) -> None:
        for t in sorted(self.replay.values(), key=lambda t: t.number):
            self._tell(t)
        self.replay.clear()

    def _tell(self, t: Trial) -> None:
        """Tell the strategy a journaled trial again (a resume's replay)."""
        self._tell_strategy(t.architecture, TrialResult.of(t.status, t.metrics))
        if self.exact:
            self.ahead -= t.is_evaluation

    def _tell_strategy(self, arch: Architecture, result: TrialResult) -> None:
        """Tell the strategy one result; `telling` stays set when the tell is interrupted (no snapshot then)."""
        self.telling = True
        self.strategy.tell(arch, result)
        self.telling = False

    def _record(self, arch: Architecture, metrics: Mapping[str, float], status: str, started: float,
                finished: float, worker: str, error: str | None, extra: Mapping[str, Any] | None = None,
                notify: bool = True) -> Trial:
        """Journal one trial (it is no longer in flight); `notify`: report it to `progress` now."""
        extra = {**(extra or {}), **({"enqueued": True} if arch.id in self.enqueue_ids else {})}
        cheap = self.cheap_attrs.pop(arch.id, None)
        if cheap:  # the evaluation's own attributes win over the cheap stage's of the same name
            extra["user_attrs"] = {**cheap, **extra.get("user_attrs", {})}
        self.enqueued.discard(arch.id)
        trial = Trial(len(self.trials), arch.to_dict(), arch.id, dict(metrics), status, started, finished,
                      worker, error, extra)
        self.experiment.record(trial)
        self.in_flight.pop(arch.id, None)
        if notify:
            self._notify(trial)
        return trial

    def _notify(self, trial: Trial) -> None:
        if self.progress is not None:
            self.progress(trial, self.used, self.budget)

    def _publish_running(self) -> None:
        """Write running.json for readers when the evaluations in flight changed."""
        if not self.journaled:
            return
        slots = len(self.in_flight) + self.executor.free_slots()
        state = (slots, frozenset(self.in_flight))
        if state == self._published:
            return
        self._published = state
        for done in set(self.since) - set(self.in_flight):
            del self.since[done]
        self.experiment.save_running(slots, [{"arch_id": i, "arch": a.to_dict(), "since": self.since[i]}
                                             for i, (a, _) in self.in_flight.items()])

    def _snapshot(self) -> None:
        if not self.journaled or self.asking or self.torn:  # interrupted inside ask or tell: the last one stands
            return
        if self.replaying or (self.exact and self.replay):  # journaled trials not yet told: the last one stands
            return
        self._snapshot_at = len(self.trials)
        pending = list(self.pending) + [a for a, _ in self.in_flight.values()]
        if self.staging is not None:  # interrupted between ask and submit, and not journaled since (a cheap failure)
            arch, count = self.staging
            if arch.id not in self.in_flight and all(t.arch_id != arch.id for t in self.trials[count:]):
                pending.append(arch)
        placements = {i: p for i in self.in_flight if (p := self.executor.placement(i)) is not None}
        asked = {a.id: self.since[a.id] for a in pending if a.id in self.since}  # a study's jobs: when handed out
        self.experiment.save_snapshot({
            "after_trial": len(self.trials) - 1,
            "pending": [a.to_dict() for a in pending],
            **({"placements": placements} if placements else {}),
            **({"asked": asked} if asked else {}),
            **({"reports": reports} if (reports := {i: r for i, r in self.reports.items()
                                                    if i in asked}) else {}),
            **({"queued": [a.to_dict() for a in self.queued]} if self.queued else {}),
            **({"enqueued": enqueued} if (enqueued := [a.id for a in pending if a.id in self.enqueue_ids]) else {}),
            "state": self.strategy.state_dict(journaled=True),  # the journal gives back its results (`_recall`)
        })
        self._snapshot_time = time.monotonic()  # the interval counts from its end: snapshots stay a bounded share


def _merge(known: Mapping[str, float], metrics: Mapping[str, float] | None,
           error: str | None) -> tuple[dict[str, float] | None, str | None]:
    """The cheap stage's metrics joined with the executor's; a metric returned by both is an error."""
    if metrics is None:
        return None, error
    both = sorted(set(known) & set(metrics))
    if both:
        return None, f"ValueError: {twice(both[0], 'the cheap stage', 'evaluate')}"
    return {**known, **metrics}, None
