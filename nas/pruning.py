"""Pruning: stop unpromising trainings early from their per-epoch reports, with Optuna's pruners.

`evaluate` calls `nas.report_metrics({"accuracy": acc, ...})` after each epoch (the same call Ray Tune's schedulers read
under `executor="ray-tune"`; elsewhere, without a pruner, it does nothing). `nas.search(..., pruner="median")`
(or `"asha"`, `"hyperband"`, `"percentile"`, or any `optuna.pruners.BasePruner`, e.g. `MedianPruner(n_warmup_steps=3)`)
hands each report's value of one metric (`Pruner(metric=...)`, default the first objective) to the pruner over the
reports of every trial so far, kept in an in-memory Optuna study; when it says prune, `report_metrics` raises `Pruned`
inside `evaluate`, and the trial ends with its last report as its metrics (what a Ray Tune scheduler's stop gives,
so every report must carry every objective and constraint metric). The journal keeps each trial's reported values
of that metric (`extra["curve"]`, [report index, value] pairs; `extra["curve_of"]` names the metric) and where it
was pruned (`extra["pruned_after"]`), so a resumed search prunes
against the same history. The in-process executor, local worker processes (`executor="processes"`) and the Ray
actor pool (`executor="ray"`) prune; a worker judges each evaluation against the trials finished when it was sent
there. (`executor="ray-tune"` takes no pruner: its ASHA scheduler reads the same reports.) A pruner applies to the
run it is given to, as a stop rule does: `nas resume` without one trains every trial to the end.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from nas.errors import ConfigError
from nas.objectives import Problem
from nas.store import Trial

log = logging.getLogger(__name__)

Reporter = Callable[[Mapping[str, float]], None]
_REPORTER: ContextVar[Reporter | None] = ContextVar("nas_reporter", default=None)
_JUDGED: ContextVar[bool] = ContextVar("nas_judged", default=False)
NAMES = {"median": "MedianPruner", "percentile": "PercentilePruner", "asha": "SuccessiveHalvingPruner",
         "hyperband": "HyperbandPruner"}


def report_metrics(metrics: Mapping[str, float]) -> None:
    """Report intermediate metrics (after each epoch) to whatever runs this evaluation: a pruner
    (`nas.search(..., pruner=...)`) or a Ray Tune scheduler, either of which may stop the training here (by raising
    `Pruned`). Anywhere else it does nothing, so one `evaluate` serves every executor."""
    if not isinstance(metrics, Mapping):  # Optuna's trial.report(value, step) habit: checked with or without a pruner
        raise ConfigError(f"report_metrics: expected a dict of metric name -> number, e.g. {{'accuracy': acc}}, got "
                          f"{type(metrics).__name__}")
    reporter = _REPORTER.get()
    if reporter is not None:
        reporter(metrics)


@contextmanager
def reporting(reporter: Reporter, judged: bool = False) -> Iterator[None]:
    """`report_metrics` calls inside this block go to `reporter` (executors set it around `evaluate`); `judged`: a
    pruner judges them, so an evaluation that stops itself as pruned (`Pruned`) ends where it last reported."""
    token, judging = _REPORTER.set(reporter), _JUDGED.set(judged)
    try:
        yield
    finally:
        _REPORTER.reset(token)
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


def as_pruner(value: Any) -> Pruner | None:
    """`nas.search`'s `pruner=` as a `Pruner` (None: no pruning)."""
    if value is None or isinstance(value, Pruner):
        return value
    return Pruner(value)


class Pruning:
    """One search's pruning: an in-memory Optuna study of every trial's reports of the judged metric. In worker
    processes and Ray actors each evaluation runs under a copy (`snapshot`) holding the trials finished
    when it was submitted, and its outcome is `record`ed here when it comes back."""

    def __init__(self, pruner: Any, metric: str, direction: str, describe: str,
                 history: Sequence[tuple[list[list[float]], bool, float | None, dict[str, Any] | None]] = ()) -> None:
        import optuna

        from nas.strategies.optuna_sampler import quiet_optuna

        self.pruner, self.metric, self.direction, self.describe = pruner, metric, direction, describe
        # (curve, pruned, final value, the pruner's attributes of the trial) each
        self.history: list[tuple[list[list[float]], bool, float | None, dict[str, Any] | None]] = []
        self.ranks = _ranks_trials(pruner)
        with quiet_optuna():  # a fixed name: Hyperband draws each trial's bracket from it and the trial's number
            self.study = optuna.create_study(study_name="nas-pruning", pruner=pruner,
                                             direction="maximize" if direction == "max" else "minimize",
                                             sampler=optuna.samplers.RandomSampler(seed=0))
        for curve, pruned, final, attrs in history:
            self._add(curve, pruned, final, attrs)

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
        return cls(pruner._pruner, objective.name, objective.direction, pruner.describe())

    def snapshot(self) -> "Pruning":
        """A copy holding the trials finished so far, to judge one evaluation in a worker process (pickled there)."""
        return Pruning(self.pruner, self.metric, self.direction, self.describe, self.history)

    def judge(self, curve: Sequence[Sequence[float]]) -> tuple[bool, dict[str, Any]]:
        """Whether the pruner stops a training whose reports so far are `curve` ([report index, value] pairs),
        against the trials finished so far, and the pruner's attributes of it (to journal with its result): for
        trainings that report from outside the search (`nas.Study.report`). Judged on a copy, so the history holds
        only finished trials; a pruner that ranks trials at rungs judges each report in turn, as it ran."""
        from nas.strategies.optuna_sampler import quiet_optuna

        copy = self.snapshot()
        with quiet_optuna():
            trial = copy.study.ask()
            stop = False
            for i, (step, value) in enumerate(curve):
                trial.report(float(value), int(step))
                if self.ranks or i == len(curve) - 1:
                    stop = bool(trial.should_prune())
                    if stop:
                        break
            return stop, copy._attrs(trial)

    def _attrs(self, trial: Any) -> dict[str, Any]:
        """The pruner's attributes of a live trial (its rungs), as plain data."""
        return dict(self.study.get_trials(deepcopy=False)[trial.number].system_attrs) if self.ranks else {}

    def __getstate__(self) -> dict[str, Any]:  # the study is rebuilt from the history where it is unpickled
        return {"pruner": self.pruner, "metric": self.metric, "direction": self.direction, "describe": self.describe,
                "history": self.history}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def _add(self, curve: list[list[float]], pruned: bool, final: float | None,
             attrs: dict[str, Any] | None = None) -> None:
        """One finished trial: pruned, complete (with its final value) or failed; `attrs`, the pruner's attributes
        of it (None: not recorded, a journal from before they were; a pruner that needs them judges its reports
        again, in turn)."""
        from optuna.trial import TrialState, create_trial

        from nas.strategies.optuna_sampler import quiet_optuna

        state = _state(curve, pruned, final)
        value = final if state == TrialState.COMPLETE else None
        with quiet_optuna():
            if attrs is None and self.ranks and curve:
                trial = self.study.ask()
                for step, v in curve:
                    trial.report(float(v), int(step))
                    trial.should_prune()
                self.study.tell(trial, value, state=state)
                attrs = self._attrs(trial)
            else:
                self.study.add_trial(create_trial(state=state, value=value, system_attrs=attrs or {},
                                                  intermediate_values={int(k): float(v) for k, v in curve}))
        self.history.append((curve, pruned, final, attrs or {}))

    def _final(self, metrics: Mapping[str, float] | None, error: str | None) -> float | None:
        value = (metrics or {}).get(self.metric)
        return float(value) if error is None and value is not None and math.isfinite(value) else None

    def record(self, metrics: Mapping[str, float] | None, error: str | None, extra: Mapping[str, Any]) -> None:
        """An evaluation judged elsewhere (a worker process) came back: add it to the history."""
        if extra.get("curve"):
            pruned = extra.get("pruned_after") is not None  # a Trial's extra, or a worker's before it is journaled
            self._add(list(extra["curve"]), pruned, None if pruned else self._final(metrics, error),
                      extra.get("pruner_attrs", {} if not self.ranks else None))

    def replay(self, trials: Sequence[Trial]) -> None:
        """Add journaled trials' curves (a resume), so pruning goes on against the same history."""
        for t in trials:
            if t.extra and t.extra.get("curve"):
                self.record(t.metrics, None if t.status == "ok" else t.error or "failed", t.extra)

    def run(self, evaluate: Callable[[], tuple[dict[str, float] | None, str | None]]
            ) -> tuple[dict[str, float] | None, str | None, dict[str, Any]]:
        """Run one evaluation under a reporter: (metrics, error, journal extra). A pruned one returns its last
        report's metrics; the extra holds the curve of the judged metric and, if pruned, after how many reports."""
        from optuna.trial import TrialState

        from nas.strategies.optuna_sampler import quiet_optuna

        with quiet_optuna():
            trial = self.study.ask()
        curve: list[list[float]] = []
        last: dict[str, float] = {}
        reports = 0

        def reporter(metrics: Mapping[str, float]) -> None:
            nonlocal last, reports
            clean: dict[str, float] = {}
            for key, value in metrics.items():
                if isinstance(value, (str, bytes, bool)) or value is None:
                    raise TypeError(f"report() got metric {str(key)!r} = {value!r}: not a number")
                clean[str(key)] = float(value)
            reports += 1
            last = clean
            value = clean.get(self.metric)
            if value is None or not math.isfinite(value):
                return  # nothing to judge at this report
            curve.append([reports - 1, value])
            trial.report(value, reports - 1)
            if trial.should_prune():
                raise Pruned(f"{self.describe} after {reports} report(s): {self.metric} = {value:g}")

        pruned = False
        try:
            with reporting(reporter, judged=True):
                metrics, error = evaluate()
        except Pruned:
            pruned, metrics, error = True, dict(last), None
        extra: dict[str, Any] = {"curve": curve, "curve_of": self.metric} if curve else {}
        final = None if pruned else self._final(metrics, error)
        if pruned:
            extra["pruned_after"] = reports
        state = _state(curve, pruned, final)
        with quiet_optuna():
            self.study.tell(trial, final if state == TrialState.COMPLETE else None, state=state)
        attrs = self._attrs(trial)
        if self.ranks and curve:
            extra["pruner_attrs"] = attrs  # journaled: a copy or a resume ranks this trial at its rungs again
        if curve:
            self.history.append((curve, pruned, final, attrs))
        return metrics, error, extra
