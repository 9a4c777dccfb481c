"""Pruning: stop unpromising trainings early from their per-epoch reports, with Optuna's pruners.

`evaluate` calls `nas.report_metrics({"accuracy": acc, ...})` after each epoch (the same call Ray Tune's schedulers read
under `executor="ray-tune"`; elsewhere, without a pruner, it does nothing). `nas.search(..., pruner="median")`
(or `"asha"`, `"hyperband"`, `"percentile"`, or any `optuna.pruners.BasePruner`, e.g. `MedianPruner(n_warmup_steps=3)`)
hands each report's value of one metric (`Pruner(metric=...)`, default the first objective) to the pruner over the
reports of every trial so far, kept in an in-memory Optuna study; when it says prune, `report_metrics` raises `Pruned`
inside `evaluate`, and the trial ends with its last report as its metrics (what a Ray Tune scheduler's stop gives,
so every report must carry every objective and constraint metric; a report lacking one, or the judged metric (nothing
would ever be judged), ends the search with a ConfigError naming it; in a search with `nas.cheap` evaluators only the
judged metric is required, as the cheap metrics join a pruned trial's last report). A NaN or infinite value is judged
too, as in Optuna (a diverged training: Threshold stops it at a NaN report, successive halving and Hyperband at the
next rung, median and percentile once all its reports are NaN; it then fails as non-finite). The journal keeps each
trial's reported values of that metric (`extra["curve"]`, [step, value] pairs, a non-finite value as its string
"nan", "inf" or "-inf", as journaled metrics are; `extra["curve_of"]` names the metric) and where it was pruned
(`extra["pruned_after"]`, after how many reports). A report's step is the one `report_metrics(metrics, step=...)`
gave (Optuna's `trial.report(value, step)`; then `extra["curve_steps"]` is true), else the step after the
previous report's (0, 1, 2, ...: the report index, as journals written before steps were kept read); each step
must be greater than the one before, and a step reported again is ignored (logged), as Optuna's `trial.report`
ignores it. For successive halving and Hyperband the journal also keeps the trial's rungs and its number in the
study (`extra["pruner_attrs"]`, `extra["pruner_trial"]`: Hyperband draws the bracket from it) and the resources the
pruner estimated itself when it first judged (`extra["pruner_estimates"]`: Hyperband's `max_resource="auto"`, which
fixes its brackets, and successive halving's `min_resource="auto"`, from the trials completed then), so a resumed
search prunes against the same history, with the same brackets. The in-process executor, local worker processes
(`executor="processes"`) and the Ray actor pool (`executor="ray"`) prune; a worker judges each evaluation against
the trials finished when it was sent there, under the number it was given then. (`executor="ray-tune"` takes no
pruner: its ASHA scheduler reads the same reports.) A pruner applies to the run it is given to, as a stop rule does:
`nas resume` without one trains every trial to the end. Each search judges with its own copy of the
pruner given, so one instance serves several searches (and a resume) alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from nas.errors import ConfigError, check_int
from nas.objectives import Problem
from nas.store import Trial

log = logging.getLogger(__name__)

Reporter = Callable[[Mapping[str, float], int], None]
"""Takes a report's metrics and its step."""
NAMES = {"median": "MedianPruner", "percentile": "PercentilePruner", "asha": "SuccessiveHalvingPruner",
         "hyperband": "HyperbandPruner"}


@dataclass
class _Channel:
    """Where the `report_metrics` calls of one `reporting` block go, and the step its last report had."""

    reporter: Reporter
    last: int = -1  # -1: nothing reported yet
    given: bool = False  # a report gave its step (the journal then marks its curve's steps as given)


_CHANNEL: ContextVar[_Channel | None] = ContextVar("nas_reporter", default=None)
_JUDGED: ContextVar[bool] = ContextVar("nas_judged", default=False)


def report_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Report intermediate metrics (after each epoch) to whatever runs this evaluation: a pruner
    (`nas.search(..., pruner=...)`) or a Ray Tune scheduler, either of which may stop the training here (by raising
    `Pruned`). Anywhere else it does nothing, so one `evaluate` serves every executor. `step` (Optuna's
    `trial.report(value, step)`: the epoch, or samples seen) is what the pruner judges the report at; it must
    increase from report to report (a repeated one is ignored, as Optuna ignores it); None: the last step + 1."""
    if not isinstance(metrics, Mapping):  # Optuna's trial.report(value, step) habit: checked with or without a pruner
        raise ConfigError(f"report_metrics: expected a dict of metric name -> number, e.g. {{'accuracy': acc}}, got "
                          f"{type(metrics).__name__}")
    if step is not None:
        check_int(step, "step", 0)
    channel = _CHANNEL.get()
    if channel is None:
        return
    at = next_step(step, channel.last, "report_metrics")
    if at is None:
        return
    channel.given = channel.given or step is not None  # also for a report that is then pruned
    channel.reporter(metrics, at)
    channel.last = at


def next_step(step: Any, last: int, where: str, logger: logging.Logger = log) -> int | None:
    """The step of a report following one at step `last` (-1: none yet): `step` as given, or `last` + 1 when None.
    None for `last` given again (a retried report), which is ignored and logged, as Optuna's `trial.report` ignores
    a step it holds; a lower step is a ConfigError naming `step` (the curve keeps reports in step order)."""
    if step is None:
        return last + 1
    at = check_int(step, "step", 0)
    if at == last:
        logger.warning("%s: step %d was reported already; this report is ignored (the first report of a step is "
                       "kept, as Optuna's trial.report keeps it)", where, at)
        return None
    if at < last:
        raise ConfigError(f"step: {at} is not after the previous report's step {last}; each report's step must "
                          "be greater than the one before")
    return at


@contextmanager
def reporting(reporter: Reporter, judged: bool = False) -> Iterator[_Channel]:
    """`report_metrics` calls inside this block go to `reporter` (executors set it around `evaluate`); `judged`: a
    pruner judges them, so an evaluation that stops itself as pruned (`Pruned`) ends where it last reported.
    Yields the channel (whether a step was given)."""
    channel = _Channel(reporter)
    token, judging = _CHANNEL.set(channel), _JUDGED.set(judged)
    try:
        yield channel
    finally:
        _CHANNEL.reset(token)
        _JUDGED.reset(judging)


def judged() -> bool:
    """Whether a pruner judges the reports of the evaluation running here (`Pruning.run`)."""
    return _JUDGED.get()


NO_PRUNER = ("evaluate stopped itself as pruned, but this search has no pruner to record where it stopped: pass "
             "pruner=... (and report each epoch with nas.report_metrics), or return the metrics it reached")


class Pruned(BaseException):
    """Raised by `report_metrics` when the pruner stops the training. A BaseException, as KeyboardInterrupt is, so that an
    `except Exception` in training code does not swallow it; `finally` blocks still run."""


@dataclass
class Pruner:
    """An Optuna pruner (or its name: median, percentile, asha, hyperband) judging `metric` (default: the first
    objective, in its direction); `nas.search(pruner=...)` takes either this or the pruner alone."""

    pruner: Any = "median"
    metric: str | None = None
    _pruner: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        import optuna

        if isinstance(self.pruner, str):
            if self.pruner not in NAMES:
                raise ConfigError(f"pruner: unknown name {self.pruner!r}; use one of {', '.join(NAMES)} or an "
                                  "optuna.pruners instance")
            options = {"percentile": {"percentile": 25.0}}.get(self.pruner, {})
            self._pruner = getattr(optuna.pruners, NAMES[self.pruner])(**options)
        elif isinstance(self.pruner, optuna.pruners.BasePruner):
            self._pruner = self.pruner
        else:
            raise ConfigError(f"pruner: expected a name ({', '.join(NAMES)}), an optuna.pruners instance or "
                              f"nas.Pruner(...), got {type(self.pruner).__name__}")

    def describe(self) -> str:
        return type(self._pruner).__name__ + (f" on {self.metric}" if self.metric else "")


def _state(curve: Sequence[Any], pruned: bool, final: float | None) -> Any:
    """The Optuna state of a finished trial: pruned, complete with its final value, or failed (also when it
    reported nothing to judge, as a resume or a worker's copy sees it: only curves are journaled)."""
    from optuna.trial import TrialState

    if not curve:
        return TrialState.FAIL
    return TrialState.PRUNED if pruned else TrialState.COMPLETE if final is not None else TrialState.FAIL


def _ranks_trials(pruner: Any) -> bool:
    """Whether `pruner` keeps state on each trial (successive halving's rungs, Hyperband's brackets of them): a
    copy of the history needs each trial's system attributes, not only its reports."""
    import optuna

    return isinstance(pruner, (optuna.pruners.SuccessiveHalvingPruner, optuna.pruners.HyperbandPruner))


def _estimated(pruner: Any) -> list[tuple[str, str]]:
    """(attribute, name) of each resource `pruner` was left to estimate itself ("auto"): Optuna fixes Hyperband's
    max_resource (and with it the brackets) and successive halving's min_resource the first time the pruner judges,
    from the trials completed then. A resume adds the whole journal before judging, so estimating again would see
    more of them (a multi-fidelity search's longer trainings) and judge with other brackets: they are restored."""
    import optuna

    out = []
    if isinstance(pruner, optuna.pruners.HyperbandPruner) and pruner._max_resource == "auto":
        out.append(("_max_resource", "max_resource"))
    if isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner) and pruner._min_resource is None:
        out.append(("_min_resource", "min_resource"))
    return out


def _own_copy(pruner: Any) -> Any:
    """A search's own copy of the pruner given: Optuna's pruners keep state on themselves (successive halving's and
    Hyperband's `min_resource="auto"` estimate), which would carry from one search (or an interrupted run) into the
    next one given the same instance."""
    from nas.strategies.optuna_sampler import fresh_copy

    try:
        return fresh_copy(pruner)
    except (TypeError, AttributeError, RecursionError) as e:  # what deepcopy raises for an object it cannot copy
        raise ConfigError(f"pruner: cannot copy {type(pruner).__name__} ({e}); each search judges with its own copy, "
                          "so that the instance given is left as it is") from None


def as_pruner(value: Any) -> Pruner | None:
    """`nas.search`'s `pruner=` as a `Pruner` (None: no pruning)."""
    if value is None or isinstance(value, Pruner):
        return value
    return Pruner(value)


Entry = tuple[list[list[float]], bool, float | None, dict[str, Any] | None]
"""One finished trial of a pruning history: (curve, pruned, final value, the pruner's attributes of it)."""


def point(step: int, value: float) -> list[Any]:
    """One curve point [step, value] as the journal keeps it: a NaN or infinite value (a diverged training,
    which the pruner judged) as its string ("nan", "inf", "-inf"; JSON has none), as journaled metrics are."""
    return [step, value if math.isfinite(value) else str(value)]


def missing_metric(metric: str, got: Iterable[str], where: str) -> str:
    """Why a report lacking the judged metric is refused (most likely a typo: nothing would ever be judged)."""
    return (f"{where}: the pruner judges {metric!r}, which this report lacks (it has: "
            f"{', '.join(sorted(got)) or 'nothing'}); every report must carry it, so fix its name in the report or "
            "in the objectives (nas.Pruner(..., metric=...) judges another objective)")


def report_error(problem: Problem, judged: str, metrics: Mapping[str, Any], where: str) -> str | None:
    """Why a report to a study with a pruner is refused before anything is written: it lacks the judged metric (a
    typo: nothing would ever be judged), or an objective or constraint metric (the pruner may stop the training at
    any report, and the pruned trial is journaled with that report as its result). None when it has them all."""
    if judged not in metrics:
        return missing_metric(judged, metrics, where)
    missing = problem.missing(metrics)
    if not missing:
        return None
    return (f"{where}: this report lacks {', '.join(map(repr, missing))} (it has: {', '.join(sorted(metrics))}); "
            "the pruner may stop the training at any report, and the trial is then journaled with that report as "
            f"its result, so every report must carry every objective and constraint metric "
            f"({', '.join(problem.metrics_needed)})")


class _MetricMissing(BaseException):
    """Raised by a judged report that lacks the judged metric: a BaseException, so that it passes `run_job` (which
    fails the trial on user errors) and `Pruning.run` ends the search with a ConfigError."""


class Pruning:
    """One search's pruning: a live in-memory Optuna study of every trial's reports of the judged metric, each trial
    under one number from its start (or first report) to its end, as in Optuna (Hyperband draws a trial's bracket
    from its number). Trainings run here (`run`) or reported from outside (`judge`, `nas.Study.report`) are running
    trials of it; worker processes and Ray actors judge each evaluation under a copy (`snapshot`) holding the trials
    finished when it was sent and the number it keeps, and its outcome is `record`ed here when it comes back."""

    def __init__(self, pruner: Any, metric: str, direction: str, describe: str, history: Sequence[Entry] = (),
                 numbers: Sequence[int] | None = None, reserved: int | None = None) -> None:
        import optuna

        from nas.strategies.optuna_sampler import quiet_optuna

        self.pruner, self.metric, self.direction, self.describe = pruner, metric, direction, describe
        self.problem: Problem | None = None  # set by `make`: every report must carry its objectives and constraints
        self.history: list[Entry] = []  # the finished trials, in the order they were added
        self.numbers: list[int] = []  # each one's trial number
        self.ranks = _ranks_trials(pruner)
        self.estimated = _estimated(pruner)  # what the pruner estimates itself when it first judges here
        self.reserved, self.lent = reserved, reserved is not None  # a worker's copy: the number its job keeps
        self._made = 0  # trials in the study (numbered 0, 1, ...)
        self._open: dict[int, Any] = {}  # running trials held for a number still to come (a gap, a job sent out)
        self._keyed: dict[str, Any] = {}  # running trials reported from outside, by key (a study's arch id)
        self._reported: dict[str, int] = {}  # how many of a keyed trial's curve points it holds
        with quiet_optuna():  # a fixed name: Hyperband draws each trial's bracket from it and the trial's number
            self.study = optuna.create_study(study_name="nas-pruning", pruner=pruner,
                                             direction="maximize" if direction == "max" else "minimize",
                                             sampler=optuna.samplers.RandomSampler(seed=0))
        self._extend([(*entry, None if numbers is None else numbers[i]) for i, entry in enumerate(history)])

    @classmethod
    def make(cls, pruner: Pruner, problem: Problem) -> "Pruning":
        """The search's pruning: `pruner` judging its metric (default: the first objective) in its direction."""
        objective = problem.objectives[0] if pruner.metric is None else next(
            (o for o in problem.objectives if o.name == pruner.metric), None)
        if objective is None:
            raise ConfigError(f"pruner: metric {pruner.metric!r} is not an objective of this search "
                              f"({', '.join(problem.names)}); the pruner needs its direction")
        if len(problem.objectives) > 1:
            log.warning("pruner: %s judges %s alone; the trials it stops keep a partial training's metrics and stay "
                        "out of the Pareto front, so architectures that are cheap on %s but learn slowly may be "
                        "missing from it", pruner.describe(), objective.name,
                        ", ".join(n for n in problem.names if n != objective.name))
        pruning = cls(_own_copy(pruner._pruner), objective.name, objective.direction, pruner.describe())
        pruning.problem = problem
        return pruning

    def snapshot(self) -> "Pruning":
        """A copy holding the trials finished so far, to judge one evaluation in a worker process (pickled there).
        Its trial is numbered now, as Optuna numbers a trial when it starts, and for a pruner that ranks trials
        (Hyperband's bracket is drawn from the number) keeps that number when its outcome is `record`ed."""
        number = self._made
        if self.ranks:  # Hyperband draws its bracket from it: held open here until the job's outcome comes back
            self._open[number] = self._place(None)
        copy = Pruning(self.pruner, self.metric, self.direction, self.describe, self.history, self.numbers,
                       reserved=number)
        copy.problem = self.problem
        return copy

    def judge(self, curve: Sequence[Sequence[float]], key: str | None = None) -> tuple[bool, dict[str, Any]]:
        """Whether the pruner stops a training whose reports so far are `curve` ([step, value] pairs),
        and the pruner's attributes of it (to journal with its result): for trainings that report from outside
        the search (`nas.Study.report`). The training `key` is a running trial of the live study from its first
        judgement until it is `record`ed, so it competes at the rungs as it runs and keeps its number (None: a
        training of its own, left running); only the points it does not hold yet are reported, a pruner that
        ranks trials at rungs judging each in turn."""
        from nas.strategies.optuna_sampler import quiet_optuna

        with quiet_optuna():
            trial = self._keyed.get(key) if key is not None else None
            if trial is None:
                trial = self._place(None)
                if key is not None:
                    self._keyed[key] = trial
            done = self._reported.get(key, 0) if key is not None else 0
            stop = False
            for i in range(done, len(curve)):
                step, value = curve[i]
                trial.report(float(value), int(step))
                if self.ranks or i == len(curve) - 1:
                    stop = bool(trial.should_prune()) or stop
            if key is not None:
                self._reported[key] = len(curve)
            return stop, self._attrs(trial)

    def number(self, key: str) -> int | None:
        """The trial number of the training `key` judged so far (None: not judged yet)."""
        trial = self._keyed.get(key)
        return None if trial is None else int(trial.number)

    def resume(self, key: str, curve: Sequence[Sequence[float]], attrs: dict[str, Any] | None,
               number: int | None) -> None:
        """A training reported from outside before this study was rebuilt (a reopened `nas.Study`): running again
        under its number with its reports and the pruner's attributes of it (None: judged again, in turn)."""
        from nas.strategies.optuna_sampler import quiet_optuna

        with quiet_optuna():
            trial = self._place(number)
            self._fill(trial, curve, attrs)
        self._keyed[key], self._reported[key] = trial, len(curve)

    def estimates(self) -> dict[str, int]:
        """The resources the pruner has estimated itself so far ({"max_resource": 9}; {} before it first judged or
        when it was given them), journaled with each trial judged here so that a resume judges with them too."""
        values = {name: getattr(self.pruner, attr) for attr, name in self.estimated}
        return {name: v for name, v in values.items() if isinstance(v, int) and not isinstance(v, bool)}

    def _restore(self, estimates: Mapping[str, Any]) -> None:
        """Give the pruner the resources it estimated in the run that wrote the journal (`estimates`), before it
        judges here: Optuna keeps an estimate once made, so it judges as that run went on to."""
        for attr, name in self.estimated:
            value = estimates.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1 and name not in self.estimates():
                setattr(self.pruner, attr, value)

    def _attrs(self, trial: Any) -> dict[str, Any]:
        """The pruner's attributes of a live trial (its rungs), as plain data."""
        # Optuna's own pruners read and write them through the storage, by the trial's id
        return dict(trial.storage.get_trial_system_attrs(trial._trial_id)) if self.ranks else {}

    def __getstate__(self) -> dict[str, Any]:  # the study is rebuilt from the history where it is unpickled
        return {"pruner": self.pruner, "metric": self.metric, "direction": self.direction, "describe": self.describe,
                "history": self.history, "numbers": self.numbers, "reserved": self.reserved}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def _place(self, number: int | None) -> Any:
        """A running trial numbered `number`: the one held open for it, or a new one; a new one numbered next when
        `number` is None or taken."""
        if number is not None and number in self._open:
            return self._open.pop(number)
        self._hold_until(number)
        self._made += 1
        return self.study.ask()

    def _hold_until(self, number: int | None) -> None:
        """Hold the free numbers below `number` open (running trials) for the trials they belong to, still to come
        (a job still out, a trial added later): the next trial made is then numbered `number`."""
        while number is not None and self._made < number:
            self._open[self._made] = self.study.ask()
            self._made += 1

    def _fill(self, trial: Any, curve: Sequence[Sequence[float]], attrs: dict[str, Any] | None) -> None:
        """Report `curve` to a running trial and set the pruner's attributes of it (None: judged again, in turn,
        for a pruner that ranks trials: a journal from before they were kept)."""
        for step, v in curve:
            trial.report(float(v), int(step))
            if attrs is None and self.ranks:
                trial.should_prune()
        for name, value in (attrs or {}).items():
            trial.storage.set_trial_system_attr(trial._trial_id, name, value)

    def _extend(self, entries: Sequence[tuple[list[list[float]], bool, float | None, dict[str, Any] | None,
                                              int | None]]) -> None:
        """Add finished trials, those with numbers in number order (each then lands in place, not in a gap held
        open); those without (a journal from before numbers were kept) first, in their order."""
        from nas.strategies.optuna_sampler import quiet_optuna

        with quiet_optuna():  # once for them all: setting Optuna's verbosity costs as much as adding a trial
            for entry in sorted(entries, key=lambda e: -1 if e[4] is None else e[4]):
                self._add(*entry)

    def _add(self, curve: list[list[float]], pruned: bool, final: float | None,
             attrs: dict[str, Any] | None = None, number: int | None = None) -> None:
        """One finished trial: pruned, complete (with its final value) or failed, numbered `number` (None: next);
        `attrs`, the pruner's attributes of it (None: not recorded, a journal from before they were; a pruner
        that needs them judges its reports again, in turn). Callers quiet Optuna around it."""
        from optuna.trial import TrialState, create_trial

        state = _state(curve, pruned, final)
        value = final if state == TrialState.COMPLETE else None
        if number not in self._open and not (attrs is None and self.ranks and curve):  # added as it ended
            self._hold_until(number)
            self.study.add_trial(create_trial(state=state, value=value, system_attrs=attrs or {},
                                              intermediate_values={int(k): float(v) for k, v in curve}))
            placed = self._made
            self._made += 1
        else:
            trial = self._place(number)
            self._fill(trial, curve, attrs)
            self.study.tell(trial, value, state=state)
            attrs, placed = self._attrs(trial), trial.number
        self.history.append((curve, pruned, final, attrs or {}))
        self.numbers.append(placed)

    def _final(self, metrics: Mapping[str, float] | None, error: str | None) -> float | None:
        value = (metrics or {}).get(self.metric)
        return float(value) if error is None and value is not None and math.isfinite(value) else None

    def record(self, metrics: Mapping[str, float] | None, error: str | None, extra: Mapping[str, Any],
               key: str | None = None) -> None:
        """An evaluation judged elsewhere (a worker process, or reported from outside as `key`) ended: add it to
        the history, under the number it was judged with. A worker's report that lacked the judged metric is
        raised here as the search's ConfigError."""
        if extra.get("pruner_error"):
            raise ConfigError(str(extra["pruner_error"]))
        curve = list(extra.get("curve") or [])
        pruned = extra.get("pruned_after") is not None  # a Trial's extra, or a worker's before it is journaled
        final = None if pruned else self._final(metrics, error)
        trial = self._keyed.pop(key, None) if key is not None else None
        if trial is not None:
            self._reported.pop(key, None)  # type: ignore[arg-type]
            self._end(trial, curve, pruned, final)
        elif curve or "pruner_trial" in extra:
            self._extend([(curve, pruned, final, extra.get("pruner_attrs", {} if not self.ranks else None),
                           extra.get("pruner_trial"))])

    def _end(self, trial: Any, curve: list[list[float]], pruned: bool, final: float | None) -> None:
        """Tell a running trial of the live study how it ended, and keep it in the history."""
        from optuna.trial import TrialState

        from nas.strategies.optuna_sampler import quiet_optuna

        state = _state(curve, pruned, final)
        with quiet_optuna():
            self.study.tell(trial, final if state == TrialState.COMPLETE else None, state=state)
        self.history.append((curve, pruned, final, self._attrs(trial)))
        self.numbers.append(trial.number)

    def replay(self, trials: Sequence[Trial]) -> None:
        """Add journaled trials' curves (a resume), so pruning goes on against the same history, each under its
        number, and with the resources the pruner estimated in the run that judged them (`estimates`)."""
        journaled = next((t.extra["pruner_estimates"] for t in trials
                          if isinstance((t.extra or {}).get("pruner_estimates"), Mapping)), None)
        if journaled is not None:
            self._restore(journaled)
        entries = []
        for t in trials:
            extra = t.extra or {}
            if extra.get("curve") or "pruner_trial" in extra:
                pruned = extra.get("pruned_after") is not None
                final = None if pruned else self._final(t.metrics, None if t.status == "ok" else t.error or "failed")
                entries.append((list(extra.get("curve") or []), pruned, final,
                                extra.get("pruner_attrs", {} if not self.ranks else None), extra.get("pruner_trial")))
        self._extend(entries)

    def run(self, evaluate: Callable[[], tuple[dict[str, float] | None, str | None]]
            ) -> tuple[dict[str, float] | None, str | None, dict[str, Any]]:
        """Run one evaluation under a reporter: (metrics, error, journal extra). A pruned one returns its last
        report's metrics; the extra holds the curve of the judged metric and, if pruned, after how many reports.
        A report lacking the judged metric, or an objective or constraint metric, ends the search (ConfigError; a
        worker's copy returns it to `record`)."""
        from nas.strategies.optuna_sampler import quiet_optuna

        with quiet_optuna():
            if self.reserved is not None:  # a worker's copy: its job's number (a batch's later jobs take new ones)
                trial, kept = self._place(self.reserved), True
                self.reserved = None
            else:
                trial, kept = self._place(None), not self.lent
        curve: list[list[float]] = []
        last: dict[str, float] = {}
        reports = 0
        channel: _Channel | None = None

        def reporter(metrics: Mapping[str, float], step: int) -> None:
            nonlocal last, reports
            clean: dict[str, float] = {}
            for key, value in metrics.items():
                if isinstance(value, (str, bytes, bool)) or value is None:
                    raise TypeError(f"report() got metric {str(key)!r} = {value!r}: not a number")
                clean[str(key)] = float(value)
            refused = (report_error(self.problem, self.metric, clean, "report_metrics") if self.problem is not None
                       else missing_metric(self.metric, clean, "report_metrics") if self.metric not in clean else None)
            if refused is not None:
                raise _MetricMissing(refused)
            reports += 1
            last = clean
            value = clean[self.metric]
            curve.append(point(step, value))
            trial.report(value, step)  # NaN too: Optuna's pruners stop a diverged training at it
            if trial.should_prune():
                raise Pruned(f"{self.describe} after {reports} report(s): {self.metric} = {value:g}")

        pruned = False
        try:
            with reporting(reporter, judged=True) as channel:
                metrics, error = evaluate()
        except Pruned:
            pruned, metrics, error = True, dict(last), None
        except _MetricMissing as e:
            self._close(trial)
            if self.lent:  # raised where the search runs, when `record` sees it
                return None, str(e), {"pruner_error": str(e)}
            raise ConfigError(str(e)) from None
        extra: dict[str, Any] = {"curve": curve, "curve_of": self.metric} if curve else {}
        if curve and channel is not None and channel.given:  # the plot reads them as steps, not report numbers
            extra["curve_steps"] = True
        final = None if pruned else self._final(metrics, error)
        if pruned:
            extra["pruned_after"] = reports
        if curve or (self.ranks and kept):
            self._end(trial, curve, pruned, final)
        else:
            self._close(trial)
        if self.ranks and curve:
            extra["pruner_attrs"] = self.history[-1][3]  # journaled: a copy or a resume ranks it at its rungs again
        if self.ranks and kept:
            extra["pruner_trial"] = trial.number  # and keeps its number (Hyperband's bracket)
        if curve and not self.lent and self.estimates():  # judged here (a worker's copy estimates anew from the
            extra["pruner_estimates"] = self.estimates()  # history sent with its job, as on a resume)
        return metrics, error, extra

    def _close(self, trial: Any) -> None:
        """End a trial that reported nothing to judge as failed, outside the history (there is nothing in it)."""
        from optuna.trial import TrialState

        from nas.strategies.optuna_sampler import quiet_optuna

        with quiet_optuna():
            self.study.tell(trial, state=TrialState.FAIL)
