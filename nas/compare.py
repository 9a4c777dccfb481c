"""Compare repeated searches of one problem by strategy (or any metadata key): which one to use on *your* problem.
Runs of different objectives or spaces (the journal's space fingerprint) are refused: they differ by more than the
strategy.

Each run is scored at the same number of evaluations `at`: its best feasible value of one objective, or, for several
objectives, the hypervolume of its feasible front against one reference for all runs (each objective's worst
feasible value over every run, plus a tenth of its range), divided by the reference box's volume. Of a multi-fidelity
search only the top level's trials count, as in its `best()` (a lower level's metrics are a shorter training's).
Each group's mean has a 95 % t-interval, and each group is set against a baseline group (random search by default)
as the experiments' tables are: the relative improvement of its mean over the baseline's, with the 95 % interval
and p-value of Welch's t-test. The same scores along the evaluations give each group's mean curve with its band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.spaces.spec_difference import space_difference
from nas.objectives import Objective
from nas.pareto import hypervolume, pareto_mask
from nas.result import SearchResult

CURVE_POINTS = 25  # budgets along each group's curve
DEFAULT_BASELINE = "random"  # the group set against the others when no baseline is named (and there is one)


@dataclass(frozen=True)
class GroupResult:
    """One group's runs and their scores at the comparison's budget, against the baseline group."""

    name: str
    runs: list[str]  # workdirs
    scores: list[float]  # per run; NaN where a run has no feasible trial by then
    mean: float
    low: float  # 95 % t-interval of the mean
    high: float
    ri_pct: float | None  # relative improvement of the mean over the baseline's (positive: better)
    ri_low: float | None
    ri_high: float | None
    p_value: float | None  # Welch's t-test against the baseline
    curve: list[list[float]]  # [evaluations, mean, low, high] along the budget

    @property
    def better(self) -> bool:
        """Whether the interval of the improvement over the baseline lies above 0."""
        return self.ri_low is not None and self.ri_low > 0


@dataclass(frozen=True)
class Comparison:
    score: str  # what each run is scored by, in words
    direction: str  # of the score: "max" or "min"
    at: int  # evaluations
    by: str
    baseline: str | None  # the group others are set against (None: none named and no "random" group)
    reference: list[float] | None  # the hypervolume's reference point, in the objectives' own directions
    groups: list[GroupResult]  # best mean first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_searches(results: Sequence[SearchResult], at: int | None = None, metric: str | None = None,
                     by: str = "strategy", baseline: str | None = None) -> Comparison:
    """Group `results` (searches of one problem) by `by` ("strategy", or a key of their metadata) and score each run
    at `at` evaluations (default: the fewest any run spent) on `metric` (any recorded metric, "NAME:min" for one no
    run optimised; default: the objective of a single-objective problem, else the hypervolume of the objectives),
    against the group `baseline` (default: "random" where there is such a group, else none).
    ConfigError for fewer than two runs, runs of different problems or spaces (by the journal's fingerprint), a run
    with no evaluation yet (it has no score at any budget: finish it or leave it out), an `at` beyond a run's
    evaluations, a metadata key some run lacks, each naming the run, or a `baseline` no group has, listing the
    groups."""
    if len(results) < 2:
        raise ConfigError(f"compare: needs at least two searches, got {len(results)}")
    first = results[0]
    for r in results[1:]:
        if r.problem != first.problem:
            raise ConfigError(f"compare: {r.workdir} searched {r.problem.to_dict()}, {first.workdir} "
                              f"{first.problem.to_dict()}; compare runs of one problem")
        _check_space(first, r)
    empty = [str(r.workdir) for r in results if r.used == 0]
    if empty:
        raise ConfigError(f"compare: {', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no evaluations yet, "
                          "so no score to compare at any budget; finish it or leave it out (name the other workdirs)")
    shortest = min(results, key=lambda r: r.used)
    at = shortest.used if at is None else at
    if at < 1 or at > shortest.used:
        raise ConfigError(f"--at {at}: {shortest.workdir} spent {shortest.used} evaluations; give 1 to {shortest.used}")
    groups: dict[str, list[SearchResult]] = {}
    for r in results:
        groups.setdefault(_group_of(r, by), []).append(r)
    if baseline is not None and baseline not in groups:
        raise ConfigError(f"baseline {baseline!r}: no group of runs by {by} has that name (the groups: "
                          f"{', '.join(sorted(groups))})")
    base = baseline if baseline is not None else DEFAULT_BASELINE if DEFAULT_BASELINE in groups else None
    objectives = [first.objective(metric)] if metric is not None or len(first.problem.objectives) == 1 \
        else list(first.problem.objectives)
    points = {id(r): _points(r, objectives) for r in results}  # each run's journal walked once
    box = _box(list(points.values()), objectives, at) if len(objectives) > 1 else None
    budgets = sorted({max(1, round(at * (i + 1) / CURVE_POINTS)) for i in range(CURVE_POINTS)})
    scored = {name: [[_score(*points[id(r)], objectives, b, box) for b in budgets] for r in runs]
              for name, runs in groups.items()}
    reference = None if box is None else [float(v if o.direction == "min" else -v) for o, v in zip(objectives, box[1])]
    direction = objectives[0].direction if len(objectives) == 1 else "max"
    base_scores = _finite([row[-1] for row in scored[base]]) if base is not None else []
    out = []
    for name, runs in groups.items():
        finals = [row[-1] for row in scored[name]]
        mean, low, high = _mean_ci(_finite(finals))
        ri = ri_low = ri_high = p = None
        if base is not None and base_scores and np.mean(base_scores) != 0:
            ri, ri_low, ri_high, p = _against(_finite(finals), base_scores, direction, name == base)
        curve = [[float(b), *_mean_ci(_finite([row[i] for row in scored[name]]))] for i, b in enumerate(budgets)]
        out.append(GroupResult(name, [str(r.workdir) for r in runs], finals, mean, low, high, ri, ri_low, ri_high, p,
                               curve))
    sign = -1.0 if direction == "max" else 1.0  # best group first; one with no score last
    out.sort(key=lambda g: (not math.isfinite(g.mean), sign * g.mean if math.isfinite(g.mean) else 0.0, g.name))
    what = (f"best feasible {objectives[0].name} ({objectives[0].direction})" if len(objectives) == 1 else
            "hypervolume of the feasible front of " + ", ".join(f"{o.name} ({o.direction})" for o in objectives)
            + " (a share of the reference box)")
    return Comparison(what, direction, at, by, base, reference, out)


def _check_space(first: SearchResult, other: SearchResult) -> None:
    """ConfigError naming both runs and the first field where their spaces differ, when their journals record
    different space fingerprints: a strategy searching a poorer space would look worse, not because of itself."""
    was, now = first.config.get("space"), other.config.get("space")
    if was is None or now is None or was == now:  # a result built without a journal header records none
        return
    specs = first.config.get("space_spec"), other.config.get("space_spec")
    found = space_difference(*specs) if all(isinstance(s, dict) for s in specs) else None
    if found is not None:
        field, a, b = (v if v != repr("<absent>") else "no such field" for v in found)
        where = f"it differs at {field}: {first.workdir} has {a}, {other.workdir} {b}"
    else:
        where = f"space fingerprints {was} and {now}"
    raise ConfigError(f"compare: {other.workdir} searched a different space from {first.workdir} ({where}); "
                      "compare runs of one space")


def _group_of(result: SearchResult, by: str) -> str:
    if by == "strategy":
        return str(result.config.get("strategy"))
    meta = result.config.get("metadata") or {}
    if by not in meta:
        raise ConfigError(f"--by {by}: {result.workdir} records no such metadata key "
                          f"(it has: {', '.join(sorted(meta)) or 'none'}); pass metadata={{{by!r}: ...}} to nas.search")
    return str(meta[by])


def _points(result: SearchResult, objectives: Sequence[Objective]) -> tuple[np.ndarray, np.ndarray]:
    """(the evaluations spent when each was journaled, the minimised objectives) of the feasible trials that
    recorded every objective, finite, and, of a multi-fidelity search, are at the top level: the trials `best()`
    and the front rank (`SearchResult.feasible_with`)."""
    feasible = {t.number for t in result.feasible_with(objectives)}
    used, uses, rows = 0, [], []
    for t in result.trials:
        used += t.is_evaluation
        if t.number in feasible:
            uses.append(used)
            rows.append([o.minimised(float(t.metrics[o.name])) for o in objectives])
    return np.array(uses, dtype=int), np.array(rows, dtype=float).reshape(-1, len(objectives))


def _box(points: Sequence[tuple[np.ndarray, np.ndarray]], objectives: Sequence[Objective],
         at: int) -> tuple[np.ndarray, np.ndarray]:
    """(ideal, reference) in minimised form: each objective's best feasible value over every run within `at`, and
    its worst plus a tenth of the range between them."""
    within = np.vstack([p[uses <= at] for uses, p in points])
    if not len(within):
        raise ConfigError(f"compare: no run has a feasible trial with {', '.join(o.name for o in objectives)} "
                          f"within {at} evaluations")
    worst, best = within.max(axis=0), within.min(axis=0)
    return best, worst + 0.1 * np.where(worst > best, worst - best, 1.0)


def _score(uses: np.ndarray, points: np.ndarray, objectives: Sequence[Objective], at: int,
           box: tuple[np.ndarray, np.ndarray] | None) -> float:
    """A run's best value of the one objective within `at` evaluations, or its front's hypervolume as a share of
    the box."""
    points = points[uses <= at]
    if not len(points):
        return math.nan
    if box is None:
        best = float(points[:, 0].min())
        return -best if objectives[0].direction == "max" else best
    ideal, ref = box
    return hypervolume(points[pareto_mask(points)], ref) / float(np.prod(ref - ideal))


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if math.isfinite(v)]


def _mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and its 95 % t-interval (NaN bounds for one value, which gives no interval; all NaN for none)."""
    from scipy import stats

    if not values:
        return math.nan, math.nan, math.nan
    x = np.asarray(values)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def _against(values: Sequence[float], base: Sequence[float], direction: str,
             is_base: bool) -> tuple[float | None, float | None, float | None, float | None]:
    """Relative improvement (%) of the mean of `values` over that of `base`, its 95 % interval and Welch's
    p-value (positive: better in `direction`)."""
    from scipy import stats

    if not values:
        return None, None, None, None
    b = float(np.mean(base))
    sign = 1.0 if direction == "max" else -1.0
    if is_base:
        return 0.0, 0.0, 0.0, 1.0  # exactly 0, not the -0.0 a minimised score's sign would give
    ri = sign * 100.0 * (float(np.mean(values)) - b) / abs(b)
    if len(values) < 2 or len(base) < 2 or (np.std(values) == 0 and np.std(base) == 0):
        return ri, None, None, None
    t = stats.ttest_ind(np.asarray(values), np.asarray(base), equal_var=False)
    ci = t.confidence_interval(0.95)
    low, high = sorted((sign * 100.0 * ci.low / abs(b), sign * 100.0 * ci.high / abs(b)))
    return ri, float(low), float(high), float(t.pvalue)
