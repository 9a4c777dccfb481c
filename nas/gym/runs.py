"""The gym's runs: one search per (environment, strategy, setting, seed), `run_gym` and its `GymResult`."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import multiprocessing
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import ConfigError, check_count, check_seed
from nas.gym.environments import ENVIRONMENTS, Environment, environment, takes_budget
from nas.gym.settings import Hyperparameters, Setting, draw_settings, same_as_defaults, user_grids
from nas.objectives import Problem
from nas.result import SearchResult
from nas.search import search
from nas.spaces import Architecture, Space
from nas.store import Journal, evaluations_used
from nas.strategies import STRATEGIES, FidelitySpace, make_strategy


# ---------------------------------------------------------------------------------------- results
@dataclass
class RunRecord:
    """One search: which environment, strategy, setting and seed, and what it found."""

    environment: str
    strategy: str
    setting: int
    options: dict[str, Any]
    seed: int
    budget: int                      # in full evaluations (fidelity environments: l / top per evaluation at level l)
    value: float | None = None       # best feasible objective value found (at the top fidelity)
    final: float | None = None       # the environment's `final` of the returned architecture
    arch: dict[str, Any] | None = None
    evaluations: int = 0             # evaluations spent, at any fidelity
    budget_used: float = 0.0         # the same in full-evaluation equivalents
    failed: int = 0
    infeasible: int = 0
    seconds: float = 0.0             # wall time of the whole search (strategy + evaluations)
    cost_s: float = 0.0              # evaluation cost: `cost_metric` summed, else the trials' wall time
    stop_reason: str = ""
    fidelity: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Skip:
    """A strategy that does not apply to an environment, and why."""

    environment: str
    strategy: str
    reason: str


@dataclass(frozen=True)
class Summary:
    """The distribution of one strategy's outcomes on one environment over all its settings x seeds."""

    environment: str
    strategy: str
    direction: str
    n: int                  # runs with a value
    missing: int            # runs without one (no feasible architecture found, or an error)
    median: float
    q1: float
    q3: float
    min: float
    max: float
    mean: float
    default_median: float | None   # setting 0 (the defaults, when included) alone
    best_setting_median: float     # what picking the best setting after the fact would report
    worst_setting_median: float
    final_median: float | None
    seconds_mean: float
    cost_s_mean: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


@dataclass
class GymResult:
    """Every run, every skip, the settings used and the environments' facts; `summaries()` per pair."""

    runs: list[RunRecord]
    skipped: list[Skip]
    settings: dict[str, list[Setting]]
    environments: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def values(self, environment: str, strategy: str, what: str = "value") -> list[float]:
        """The outcomes of one pair (runs without one left out), in run order."""
        return [getattr(r, what) for r in self.runs if r.environment == environment and r.strategy == strategy
                and getattr(r, what) is not None]

    def strategies(self, environment: str | None = None) -> list[str]:
        seen = dict.fromkeys(r.strategy for r in self.runs if environment in (None, r.environment))
        return list(seen)

    def summaries(self) -> list[Summary]:
        out = []
        for env, facts in self.environments.items():
            direction = facts["direction"]
            for strat in self.strategies(env):
                runs = [r for r in self.runs if r.environment == env and r.strategy == strat]
                vals = np.array([r.value for r in runs if r.value is not None], dtype=float)
                if not len(vals):
                    continue
                per_setting: dict[int, list[float]] = {}
                for r in runs:
                    if r.value is not None:
                        per_setting.setdefault(r.setting, []).append(r.value)
                medians = [float(np.median(v)) for v in per_setting.values()]
                pick = max if direction == "max" else min
                other = min if direction == "max" else max
                finals = [r.final for r in runs if r.final is not None]
                q1, med, q3 = np.percentile(vals, [25, 50, 75])
                defaults = 0 in per_setting and self.include_default(strat)  # setting 0 is the defaults when included
                out.append(Summary(env, strat, direction, len(vals), len(runs) - len(vals), float(med), float(q1),
                                   float(q3), float(vals.min()), float(vals.max()), float(vals.mean()),
                                   float(np.median(per_setting[0])) if defaults else None,
                                   pick(medians), other(medians), float(np.median(finals)) if finals else None,
                                   float(np.mean([r.seconds for r in runs])), float(np.mean([r.cost_s for r in runs]))))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [asdict(r) for r in self.runs], "skipped": [asdict(s) for s in self.skipped],
                "settings": {k: [asdict(s) for s in v] for k, v in self.settings.items()},
                "environments": self.environments, "notes": list(self.notes), "config": dict(self.config),
                "summaries": [asdict(s) for s in self.summaries()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GymResult":
        return cls([RunRecord(**r) for r in data["runs"]], [Skip(**s) for s in data["skipped"]],
                   {k: [Setting(**s) for s in v] for k, v in data["settings"].items()},
                   dict(data["environments"]), list(data.get("notes", [])), dict(data.get("config", {})))

    def pairs(self) -> set[tuple[str, str]]:
        """The (environment, strategy) pairs this result holds runs or a skip of."""
        return {(r.environment, r.strategy) for r in self.runs} | {(s.environment, s.strategy) for s in self.skipped}

    def merge(self, other: "GymResult") -> "GymResult":
        """This result and `other` (other environments, or other strategies) as one; each part's summaries stay
        what they were. A ConfigError names what the two cannot share: an (environment, strategy) pair both hold
        (its runs would be pooled, a repeated seed counted twice), an environment with other facts (a budget), or
        a strategy with other settings. A config value that differs is kept per strategy (`include_default`:
        {strategy: value}), or per environment for `budget`."""
        both = sorted(self.pairs() & other.pairs())
        if both:
            raise ConfigError(f"merge: both results hold runs of {', '.join(f'({e!r}, {s!r})' for e, s in both)}; "
                              "merge results of other environments or other strategies (pooling them would count "
                              "repeated seeds as independent runs)")
        for env in self.environments.keys() & other.environments.keys():
            a, b = self.environments[env], other.environments[env]
            if a != b:
                key = next(k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k))
                raise ConfigError(f"merge: environment {env!r} differs between the results ({key} {a.get(key)!r} "
                                  f"and {b.get(key)!r}); their runs are not comparable")
        for strat in self.settings.keys() & other.settings.keys():
            if self.settings[strat] != other.settings[strat]:
                raise ConfigError(f"merge: strategy {strat!r} ran with other settings in each result (drawn with "
                                  "another seed, count or grid); setting indices would mean two things")
        return GymResult(self.runs + other.runs, self.skipped + other.skipped, {**self.settings, **other.settings},
                         {**self.environments, **other.environments}, self.notes + [n for n in other.notes
                                                                                   if n not in self.notes],
                         _merged_config(self, other))

    def include_default(self, strategy: str) -> bool:
        """Whether `strategy`'s setting 0 is its defaults (config `include_default`: one value, or one per strategy)."""
        value = self.config.get("include_default", True)
        return bool(value.get(strategy, True) if isinstance(value, Mapping) else value)


def _merged_config(a: GymResult, b: GymResult) -> dict[str, Any]:
    """The configs of two results with disjoint pairs as one: `strategies` joined, a value both share kept, one
    that differs held per strategy (per environment for `budget`), since each part's runs were made under its
    own; a strategy (or environment) of both parts with two values is a ConfigError naming it."""
    out: dict[str, Any] = {}
    for key in list(dict.fromkeys([*a.config, *b.config])):
        if key == "strategies":
            out[key] = list(dict.fromkeys([*a.config.get(key, a.strategies()), *b.config.get(key, b.strategies())]))
            continue
        if key in a.config and key in b.config and a.config[key] == b.config[key]:
            out[key] = a.config[key]
            continue
        by = "environment" if key == "budget" else "strategy"
        merged: dict[str, Any] = {}
        for part in (a, b):
            if key not in part.config:  # a config without it (a hand-made result) says nothing of its names
                continue
            names = list(part.environments) if by == "environment" else \
                list(dict.fromkeys([*part.config.get("strategies", []), *part.settings, *part.strategies()]))
            value = part.config[key]
            for name in names:
                v = value.get(name) if isinstance(value, Mapping) else value  # a mapping: from an earlier merge
                if name in merged and merged[name] != v:
                    raise ConfigError(f"merge: {by} {name!r} has config {key} {merged[name]!r} in one result and "
                                      f"{v!r} in the other")
                merged[name] = v
        out[key] = merged
    return out


# ---------------------------------------------------------------------------------------- running
def applicability(env: Environment, strategy: str) -> tuple[Space | None, str]:
    """(the space `strategy` runs on in `env`, or None; why not). A strategy whose `requires` the space lacks
    is skipped; one that refuses the space at construction (a multi-fidelity strategy on a space without a
    fidelity) gets the environment's `FidelitySpace` when it declares fidelity levels and its evaluator takes
    `budget=`, else is skipped.
    The environment's own errors (a malformed constraint) are raised as ConfigErrors, not reported as skips."""
    problem = env.problem  # outside the try: a bad constraint is no strategy's inapplicability
    cls = STRATEGIES[strategy]
    missing = cls.requires - env.space.capabilities
    if missing:
        return None, f"needs space capabilities {sorted(missing)}, which {type(env.space).__name__} lacks"
    try:
        make_strategy(strategy, env.space, problem, 0)
        return env.space, ""
    except ConfigError as e:
        reason = str(e)
    if env.fidelity and not takes_budget(env.evaluate):
        reason += " (this environment's evaluator takes no budget=, so its fidelity levels cannot be used)"
    elif env.fidelity:
        fspace = FidelitySpace(env.space, env.fidelity, env.fidelity_field)
        try:
            make_strategy(strategy, fspace, problem, 0)
            return fspace, ""
        except ConfigError as e:
            reason = str(e)
    elif _takes_fidelity(env, strategy, problem):
        reason += " (this environment has no fidelity levels)"
    return None, reason


def _refusal(strategy: str, runs_on: Sequence[tuple[Environment, Space]], options: Mapping[str, Any]) -> str | None:
    """Why one of the environments `strategy` runs on refuses it with `options` (hyperband's `brackets` beyond an
    environment's fidelity levels), or None: such a setting would only record errors there, so the strategy would
    get fewer settings than the others. A setting that runs there as the defaults (hyperband's brackets=3 on three
    fidelity levels, `same_as_defaults`) is refused too: it would be setting 0 again under another index."""
    for env, space in runs_on:
        try:
            make_strategy(strategy, space, env.problem, 0, **options)
        except Exception as e:  # what running it would record as the run's error
            return f"environment {env.name!r}: {type(e).__name__}: {e}"
        if same_as_defaults(strategy, options, space):
            return f"environment {env.name!r}: {dict(options)} runs as the defaults there"
    return None


def _takes_fidelity(env: Environment, strategy: str, problem: Problem) -> bool:
    """Whether `strategy` would run on `env` given fidelity levels (so their absence is why it is skipped)."""
    try:
        make_strategy(strategy, FidelitySpace(env.space, (1.0, 2.0), env.fidelity_field), problem, 0)
        return True
    except ConfigError:
        return False


def run_one(env: Environment, strategy: str, setting: Setting, seed: int, budget: int | None = None,
            workdir: str | Path | None = None) -> RunRecord:
    """One `nas.search` of `strategy` with `setting` on `env`; errors are recorded, not raised (the environment's
    own, the strategy's, the evaluator's and `env.final`'s), so one run cannot end a whole gym. `budget` (a
    positive int) overrides the environment's; a bad one is a ConfigError, and so is a `workdir` whose journal
    already spent more than `budget` (a longer run's: resuming it would report that run's result as this
    budget's). On an environment with fidelity levels, a strategy that runs on the plain space evaluates at the
    top level (`budget=` the last level)."""
    budget = env.budget if budget is None else check_count(budget, "budget")
    rec = RunRecord(env.name, strategy, setting.index, setting.options, seed, budget)
    try:
        space, why = applicability(env, strategy)
    except Exception as e:  # the environment's own error (a constraint broken after construction)
        rec.error = f"{type(e).__name__}: {e}"
        return rec
    if space is None:
        rec.error = f"not applicable: {why}"
        return rec
    fid = isinstance(space, FidelitySpace) and space is not env.space
    longer = _longer_journal(workdir, budget, space if fid else None)
    if longer is not None:
        raise ConfigError(longer)
    t0 = time.perf_counter()
    try:
        evaluate = space.evaluator(env.evaluate) if fid else env.evaluate
        if fid:
            result, rec.budget_used = _fidelity_search(env, space, evaluate, strategy, setting, seed, budget, workdir)
        else:
            # on a fidelity environment every evaluation trains at the top level, as multi-fidelity runs' outcomes do
            top = env.fidelity[-1] if env.fidelity else None  # as the levels were given: range(budget) works
            result = search(space, evaluate, {env.objective: env.direction}, list(env.constraints), strategy=strategy,
                            strategy_options=setting.options, budget=budget, seed=seed, workdir=workdir, fidelity=top)
            rec.budget_used = float(result.used)
    except Exception as e:  # a strategy's bug must not end the whole gym: it is recorded with the run
        rec.seconds, rec.error = time.perf_counter() - t0, f"{type(e).__name__}: {e}"
        return rec
    rec.seconds = time.perf_counter() - t0
    rec.fidelity, rec.stop_reason, rec.evaluations = fid, result.stop_reason, result.used
    rec.failed = sum(t.status == "failed" for t in result.trials)
    candidates = result.feasible
    if fid:
        top = space.levels[-1]
        candidates = [t for t in candidates if float(t.arch[space.field]) == float(top)]
    rec.infeasible = len(result.completed) - len(result.feasible)
    if env.cost_metric:
        rec.cost_s = float(sum(t.metrics.get(env.cost_metric, 0.0) for t in result.trials))
    else:
        rec.cost_s = float(sum(t.duration for t in result.trials))
    if candidates:
        pick = max if env.direction == "max" else min
        best = pick(candidates, key=lambda t: t.metrics[env.objective])
        arch = space.strip(best.arch) if fid else Architecture(best.arch)
        rec.value, rec.arch = float(best.metrics[env.objective]), arch.to_dict()
        try:  # the search stands; only what is reported of its pick is missing
            final = env.final(arch) if env.final is not None else rec.value
            rec.final = None if final is None else float(final)
        except Exception as e:
            rec.error = f"final: {type(e).__name__}: {e}"
    return rec


def _longer_journal(workdir: str | Path | None, budget: int, fidelity: FidelitySpace | None) -> str | None:
    """Why the journal already in `workdir` cannot be resumed as a run of `budget`, or None: it spent more than
    `budget` (evaluations; on a multi-fidelity run's `FidelitySpace`, full-evaluation equivalents beyond the
    less-than-one overshoot a run of `budget` leaves), so it is a longer run's, and resuming it would report that
    run's result as `budget`'s. An unreadable journal is left to the search, which records its error."""
    if workdir is None or not Journal(workdir).exists():
        return None
    try:
        trials = Journal(workdir).read().trials
    except Exception:  # a damaged journal: the run records the search's own error about it
        return None
    if fidelity is not None:
        top = float(fidelity.levels[-1])
        spent = sum(float(t.arch[fidelity.field]) / top for t in trials if t.is_evaluation)
        if spent < budget + 1 - 1e-9:
            return None
        held = f"{spent:.2f} full-evaluation equivalents (a run of budget {budget} spends less than {budget + 1})"
    else:
        used = evaluations_used(trials)
        if used <= budget:
            return None
        held = f"{used} evaluations"
    return (f"workdir: {workdir} holds the journal of a longer run, {held}, more than budget {budget}; resuming "
            f"it would report that run's result as budget {budget}'s. Use another workdir, or at least that "
            "run's budget")


def _fidelity_search(env: Environment, space: FidelitySpace, evaluate: Any, strategy: str, setting: Setting,
                     seed: int, budget: int, workdir: str | Path | None) -> tuple[SearchResult, float]:
    """A search whose budget counts full-fidelity evaluations: one at level l costs l / top. `nas.search`
    budgets count evaluations, so the search is resumed (its own journal, the toolkit's resume) with more
    evaluations until `budget` full-evaluation equivalents are spent (overshooting by less than one)."""
    top = float(space.levels[-1])

    def spent(res: SearchResult) -> float:
        return sum(float(t.arch[space.field]) / top for t in res.trials if t.is_evaluation)

    with contextlib.ExitStack() as stack:
        wd = workdir if workdir is not None else stack.enter_context(tempfile.TemporaryDirectory(prefix="nas-gym-"))
        evaluations = budget
        while True:
            result = search(space, evaluate, {env.objective: env.direction}, list(env.constraints), strategy=strategy,
                            strategy_options=setting.options, budget=evaluations, seed=seed, workdir=wd)
            cost = spent(result)
            if cost >= budget - 1e-9 or result.stop_reason != "budget":
                return result, cost
            evaluations = result.used + max(1, math.ceil(budget - cost))


_POOL_ENVS: list[Environment] = []  # inherited by forked workers (environments need not pickle)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    logging.getLogger("nas").setLevel(logging.ERROR)


def _pool_task(task: tuple[int, str, Setting, int, int | None, str | None]) -> RunRecord:
    env_i, strategy, setting, seed, budget, workdir = task
    return run_one(_POOL_ENVS[env_i], strategy, setting, seed, budget, workdir)


def _listed(value: object, name: str) -> list[Any]:
    """`value` as a list; a single string or environment is refused (it would be iterated letter by letter)."""
    if isinstance(value, (str, bytes, Environment)) or not isinstance(value, Iterable):
        raise ConfigError(f"{name}: pass a list, e.g. [{value!r}], got {value!r}")
    return list(value)


def _refuse_duplicates(named: Sequence[tuple[int, str]], field: str) -> None:
    """A ConfigError naming the first (index, name) whose name came before: results are kept by name, so its runs
    would be pooled with the other's (and a strategy's repeated seeds counted as independent ones)."""
    first: dict[str, int] = {}
    for i, name in named:
        if name in first:
            raise ConfigError(f"{field}[{i}]: name {name!r} is also that of {field}[{first[name]}]; "
                              "each needs its own name")
        first[name] = i


def _strategy_names(strategies: Sequence[str] | None) -> list[str]:
    """The strategies to run (default: all registered), each a registered name listed once."""
    if strategies is None:
        return sorted(STRATEGIES)
    names = _listed(strategies, "strategies")
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in STRATEGIES:
            raise ConfigError(f"strategies[{i}]: unknown strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}")
    _refuse_duplicates(list(enumerate(names)), "strategies")
    return names


def _environments(environments: Sequence[Environment | str], notes: list[str]) -> list[Environment]:
    """The environments, names built with `environment(name)`: an unknown name is a ConfigError, one that cannot
    be built (a missing table) is skipped with its error in `notes`; names must be distinct."""
    envs: list[tuple[int, Environment]] = []
    for i, e in enumerate(_listed(environments, "environments")):
        if isinstance(e, Environment):
            e.check()  # a constraint made malformed after construction is a ConfigError before anything runs
            envs.append((i, e))
        elif not isinstance(e, str) or e not in ENVIRONMENTS:
            raise ConfigError(f"environments[{i}]: unknown environment {e!r}; available: {', '.join(ENVIRONMENTS)} "
                              "or an Environment")
        else:
            try:
                envs.append((i, environment(e)))
            except ConfigError as err:
                notes.append(f"environment {e!r} skipped: {err}")
    _refuse_duplicates([(i, env.name) for i, env in envs], "environments")
    return [env for _, env in envs]


def run_gym(environments: Sequence[Environment | str], strategies: Sequence[str] | None = None, settings: int = 5,
            seeds: int = 2, seed: int = 0, budget: int | None = None, include_default: bool = True,
            hyperparameters: Mapping[str, Hyperparameters | Mapping[str, Sequence[Any]]] | None = None,
            jobs: int = 1,
            workdir: str | Path | None = None,
            progress: Callable[[RunRecord, int, int], None] | None = None) -> GymResult:
    """Run every strategy (default: all registered) on every environment, `settings` x `seeds` runs each.

    Every strategy gets `settings` settings from `draw_settings` (the same ones on every environment, drawn
    among those every environment it runs on accepts; a grid in `hyperparameters` replaces that strategy's
    built-in one, the others keep theirs) and
    each setting `seeds` runs; run k of every strategy uses seed `seed + k`, so all strategies see the same
    seeds. `budget` (a positive int) overrides each environment's own. Names in `environments` are built with
    `environment(name)`; one that cannot be built (a missing table) is skipped with its error in `notes`, while
    an unknown name, a duplicate environment or strategy name, a single string instead of a list, a bad
    `settings`, `seeds`, `budget`, `seed` (a non-negative int) or `jobs` (a positive int), a `hyperparameters`
    key that is not a registered strategy or a grid that is neither `Hyperparameters` nor a mapping, and a
    `workdir` holding a longer run's journal is a ConfigError naming it, raised before anything runs.
    `jobs` > 1 runs searches in forked worker processes (torch on one thread each). With `workdir`, each
    run journals to `workdir/<environment>/<strategy>/<setting>-<seed>` (the logged trials a
    `ProxyCostModel.from_journals` learns from); an existing journal there is resumed, so one that already
    spent more than the run's budget (a longer run's) is refused rather than reported as this budget's.
    `progress(record, done, total)` follows the runs.
    """
    names = _strategy_names(strategies)
    check_count(settings, "settings")
    check_count(seeds, "seeds")
    if budget is not None:
        check_count(budget, "budget", " (or None: each environment's own)")
    seed = check_seed(seed)
    check_count(jobs, "jobs", " (1: run in this process)")
    hyperparameters = user_grids(hyperparameters)
    notes: list[str] = []
    envs = _environments(environments, notes)
    spaces = {(i, name): applicability(env, name) for i, env in enumerate(envs) for name in names}
    drawn: dict[str, list[Setting]] = {}
    for name in names:
        runs_on = [(env, spaces[i, name][0]) for i, env in enumerate(envs) if spaces[i, name][0] is not None]
        drawn[name], extra = draw_settings(name, settings, seed, include_default, hyperparameters,
                                           functools.partial(_refusal, name, runs_on))
        notes += extra
    tasks: list[tuple[int, str, Setting, int, int | None, str | None]] = []
    skipped: list[Skip] = []
    for i, env in enumerate(envs):
        for name in names:
            space, why = spaces[i, name]
            if space is None:
                skipped.append(Skip(env.name, name, why))
                continue
            for s in drawn[name]:
                for k in range(seeds):
                    run_seed = seed + s.index * seeds + k
                    wd = (str(Path(workdir) / env.name / name / f"{s.index}-{run_seed}") if workdir is not None
                          else None)
                    tasks.append((i, name, s, run_seed, budget, wd))
    for i, name, _, _, run_budget, wd in tasks:  # before anything runs: no gym half run, then stopped by one
        space = spaces[i, name][0]
        fid = space if isinstance(space, FidelitySpace) and space is not envs[i].space else None
        longer = _longer_journal(wd, envs[i].budget if run_budget is None else run_budget, fid)
        if longer is not None:
            raise ConfigError(longer)
    runs: list[RunRecord] = []
    if jobs == 1:
        for task in tasks:
            runs.append(run_one(envs[task[0]], *task[1:]))
            if progress:
                progress(runs[-1], len(runs), len(tasks))
    else:
        global _POOL_ENVS
        _POOL_ENVS = envs
        try:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker) as pool:
                for rec in pool.map(_pool_task, tasks, chunksize=1):
                    runs.append(rec)
                    if progress:
                        progress(rec, len(runs), len(tasks))
        finally:
            _POOL_ENVS = []
    config = {"settings": settings, "seeds": seeds, "seed": seed, "budget": budget, "include_default": include_default,
              "strategies": names, "runs_per_pair": settings * seeds,
              "seed_rule": "run k (setting k // seeds) of every strategy uses seed + k"}
    facts = {e.name: {**e.describe(), **({"budget": budget} if budget is not None else {})} for e in envs}
    return GymResult(runs, skipped, drawn, facts, notes, config)
