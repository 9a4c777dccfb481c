"""Convert a search workdir's journal into an Optuna journal-storage study (`to_optuna(workdir, out)`), so
`optuna-dashboard out` shows the search: trials, Pareto front, feasibility and per-decision plots.

The workdir is only read. Each trial becomes one Optuna trial: ok -> COMPLETE (objective values in order),
failed -> FAIL, infeasible (rejected on a cheap constraint, never evaluated) and stopped by a pruner -> PRUNED;
a pruned search's reported curves become intermediate values (the dashboard's learning curves). Architecture
decisions become params named by dotted path ("blocks.0.k"), each with a categorical distribution over
every value seen for that path in the whole journal, so the dashboard's plots have a common axis.

Each trial's user attrs hold its `arch_id`, `worker`, `error`, `nas_trial_number` and `nas_status`, every recorded
metric (objectives too), its `extra.*` records and the user attributes it was given. A metric or user attribute
named as one already there is kept under `metric.NAME` or `user.NAME` (a metric "error", the top-1 error, is
`metric.error`; "error" is the trial's error message).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError
from nas.objectives import Problem
from nas.result import SearchResult
from nas.store import Trial
from nas.strategies.optuna_sampler import quiet_optuna

if TYPE_CHECKING:
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

ParamValue = str | int | float | bool | None


@dataclass(frozen=True)
class ToOptunaReport:
    """What `to_optuna` wrote: the journal file, the study's name, and its trials by Optuna state."""

    out: Path
    study_name: str
    trials: int
    complete: int
    fail: int
    pruned: int


def to_optuna(workdir: str | Path, out: str | Path, study_name: str | None = None) -> ToOptunaReport:
    """Write the search in `workdir` as one Optuna study (default name: the workdir's folder name) to a new
    Optuna journal file `out`, readable with `optuna-dashboard out` or
    `optuna.load_study(study_name=..., storage=JournalStorage(JournalFileBackend(out)))`.

    `out` must be a new file (Optuna would add a second study to an existing one): a ConfigError says so, as
    for an empty `study_name`. The workdir is read, never written; a search still running is converted as far as
    its journal goes.
    """
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    workdir = Path(workdir)
    out = Path(out)
    if study_name == "":
        raise ConfigError(f"study_name: expected a name, got {study_name!r}")
    if out.is_dir():
        raise ConfigError(f"out: {out} is a folder: give the path of a new file for the Optuna journal "
                          f"(e.g. {out / 'optuna-journal.log'})")
    if out.exists() or out.is_symlink():
        raise ConfigError(f"out: {out} already exists (Optuna would add a second study to it): remove it or "
                          "choose another file")
    result = SearchResult.load(workdir)
    if result.stop_reason == "still being written":
        log.info("%s: the search is still writing its journal; converting its %d trials so far",
                 workdir, len(result.trials))
    name = study_name if study_name is not None else workdir.resolve().name
    if not name:
        raise ConfigError(f"{workdir}: cannot name the study after this folder; pass study_name")
    problem = result.problem
    params = [_params(t.arch) for t in result.trials]
    distributions = _distributions(params)
    frozen = [_frozen_trial(t, p, distributions, problem) for t, p in zip(result.trials, params)]

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(out, "x"):  # claim the name: a concurrent writer of the same file fails here, not later
            pass
    except FileExistsError:
        raise ConfigError(f"{out} already exists (Optuna would add a second study to it): remove it or choose "
                          "another file") from None
    try:
        with quiet_optuna(logging.WARNING):  # no "A new study created ..." on stderr
            storage = JournalStorage(JournalFileBackend(str(out)))
            directions = ["minimize" if o.direction == "min" else "maximize" for o in problem.objectives]
            study = optuna.create_study(storage=storage, study_name=name, directions=directions)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(problem.names)  # the dashboard labels its axes with these
            for key, value in _study_attrs(result, workdir).items():
                study.set_user_attr(key, value)
            study.add_trials(frozen)
    except BaseException:
        out.unlink(missing_ok=True)
        raise

    states = [t.state for t in frozen]
    report = ToOptunaReport(out, name, len(frozen), states.count(optuna.trial.TrialState.COMPLETE),
                            states.count(optuna.trial.TrialState.FAIL), states.count(optuna.trial.TrialState.PRUNED))
    log.info("wrote study %r (%d trials) to %s", name, report.trials, out)
    return report


def _study_attrs(result: SearchResult, workdir: Path) -> dict[str, Any]:
    config = result.config
    return {"strategy": config.get("strategy"), "seed": config.get("seed"), "budget": config.get("budget"),
            "workdir": str(workdir.resolve()),
            "objectives": {o.name: o.direction for o in result.problem.objectives},
            "constraints": [str(c) for c in result.problem.constraints]}


def _frozen_trial(t: Trial, params: dict[str, ParamValue], distributions: Mapping[str, CategoricalDistribution],
                  problem: Problem) -> FrozenTrial:
    from optuna.trial import TrialState, create_trial

    reason = problem.result_error(t.metrics) if t.status == "ok" else None
    if problem.completed(t):
        state, values = TrialState.COMPLETE, [float(t.metrics[n]) for n in problem.names]
    elif t.status == "infeasible" or (t.status == "ok" and t.pruned_after is not None):
        state, values = TrialState.PRUNED, None
    else:  # failed, an ok record lacking a needed metric, or a status this version does not know
        state, values = TrialState.FAIL, None
    user_attrs: dict[str, Any] = {"arch_id": t.arch_id, "worker": t.worker, "error": t.error or reason,
                                  "nas_trial_number": t.number, "nas_status": t.status}
    for name, v in t.metrics.items():
        _put(user_attrs, name, _attr_float(v), "metric")  # a metric named "error" (top-1 error) too
    for k, v in t.extra.items():
        if k != "user_attrs":
            _put(user_attrs, f"extra.{k}", v, "extra")
    for k, v in t.user_attrs.items():
        _put(user_attrs, k, v, "user")  # as set
    system_attrs: dict[str, Any] = {}
    violations = _violations(t.metrics, problem)
    if violations is not None:
        # The list form, not create_trial(constraints={...}): Optuna reads both, but optuna-dashboard reads
        # only system_attrs["constraints"] as a list when it marks trials feasible or infeasible.
        system_attrs["constraints"] = violations
    curve = {int(step): float(v) for step, v in t.extra.get("curve", [])}
    frozen = create_trial(state=state, values=values, params=params, intermediate_values=curve,
                          distributions={p: distributions[p] for p in params},
                          user_attrs=user_attrs, system_attrs=system_attrs)
    frozen.datetime_start = datetime.fromtimestamp(t.started)
    frozen.datetime_complete = datetime.fromtimestamp(max(t.finished, t.started))
    return frozen


def _put(attrs: dict[str, Any], key: str, value: Any, prefix: str) -> None:
    """Add a user attr without replacing one already there: a clashing key gets `prefix.` in front ("error" ->
    "metric.error"), so no recorded value is lost."""
    while key in attrs:
        key = f"{prefix}.{key}"
    attrs[key] = value


def _violations(metrics: Mapping[str, float], problem: Problem) -> list[float] | None:
    """One violation per constraint (0 when satisfied), or None when the search has no constraints or a
    constraint metric is missing or not finite (the dashboard's JSON cannot carry inf)."""
    if not problem.constraints:
        return None
    if not all(c.metric in metrics and math.isfinite(metrics[c.metric]) for c in problem.constraints):
        return None
    return [c.violation(metrics) for c in problem.constraints]


def _attr_float(value: float) -> float | str:
    """A metric as a user attr: JSON has no NaN or inf, so those become "nan", "inf", "-inf" (as in the journal)."""
    return value if math.isfinite(value) else str(value)


def _params(arch: Mapping[str, Any]) -> dict[str, ParamValue]:
    """The architecture's decisions by dotted path; anything but str/int/float/bool/None as its JSON text."""
    return {path: value if _is_choice(value) else json.dumps(value, sort_keys=True)
            for path, value in _leaves(arch, "")}


def _leaves(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, leaf) for nested dicts and lists; an empty dict or list is a leaf of its own."""
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)) and value:
        for i, item in enumerate(value):
            yield from _leaves(item, f"{prefix}.{i}" if prefix else str(i))
    else:
        yield prefix, value


def _is_choice(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value))


def _order(value: ParamValue) -> tuple[int, float, str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 0, float(value), repr(value)
    return 1, 0.0, repr(value)


def _distributions(params: list[dict[str, ParamValue]]) -> dict[str, CategoricalDistribution]:
    """Per path, a categorical distribution over every value seen for it: numbers in numeric order (so a
    dashboard axis reads 8, 16, 32, not 16, 32, 8), then the rest by repr.

    Optuna finds a choice by equality, so a path whose values include equal ones of different types (1,
    1.0, True) would resolve to the wrong choice: such a path's values all become their JSON text.
    """
    from optuna.distributions import CategoricalDistribution

    seen: dict[str, dict[str, ParamValue]] = {}
    for p in params:
        for path, value in p.items():
            seen.setdefault(path, {})[repr(value)] = value
    out: dict[str, CategoricalDistribution] = {}
    for path, by_repr in seen.items():
        values = sorted(by_repr.values(), key=_order)
        if len(set(values)) < len(values):  # equal under ==, distinct by repr (and type)
            for p in params:
                if path in p:
                    p[path] = json.dumps(p[path])
            values = [json.dumps(v) for v in values]
        out[path] = CategoricalDistribution(values)
    return out
