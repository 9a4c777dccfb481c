"""Which decisions matter: `decision_importances(result, "accuracy")`, grouped permutation importance of a forest.

A random forest learns the metric from the decisions of every evaluated trial (a decision's values one-hot, a
numeric decision also as its value). By default it learns the normal scores of the metric's ranks (`scale="rank"`),
as the predictors do: a few collapsed networks at 26 % accuracy among 78 % ones would otherwise be all the forest
fits (on 300 random NAS-Bench-Graph cora trials the held-out R^2 of valid_acc is 0.23 on ranks, -0.04 on values);
`scale="value"` fits the values. Out of fold (5 folds), each decision's columns are permuted together and the rise
in the held-out squared error is that decision's importance: what the forest loses without it, interactions
included. Unlike Optuna's fANOVA (`optuna.importance`), which keeps only the parameters every trial has, a block
that only deep networks have and a field that only one branch of a condition has count too. `by="name"` pools a
repeated decision over its blocks (`blocks.*.kernel`); `by="path"` keeps each block's own (`blocks.2.kernel`). The
held-out R^2 says how much of the metric the decisions explain at all: with an R^2 near 0 the shares describe
noise, and a warning says so.

A decision a condition or a repeat leaves out is absent because of another decision (the Conditional's `on`
field, the Repeat's count field), so whether it is there is that decision's information, not its own: an absent
decision's columns hold a value drawn (seeded) from those it takes where present, which says nothing about its
absence. Permuting it then removes only what its value tells where it is active (an inert `kernel` that only
`op == "conv"` has gets about 0), and the controlling decision keeps the credit for the structure it sets
(`op`, or `depth` for the blocks a Repeat adds). Otherwise `kernel`'s "absent" pattern would be a copy of `op`,
and permuting `kernel` would take `op`'s effect with it.

`decision_effects(result, "blocks.*.kernel")` then gives the metric per value of one decision (mean and 95 %
interval): which values of a decision that matters are the good ones.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from nas.errors import ConfigError
from nas.objectives import OPTUNA_DIRECTIONS
from nas.result import SearchResult, decisions
from nas.spaces.params import is_number
from nas.strategies.bayesian import normal_scores

logger = logging.getLogger(__name__)

MIN_TRIALS = 10
WEAK_R2 = 0.1  # below this held-out R^2 the importances are flagged as noise
ABSENT = object()


@dataclass(frozen=True)
class DecisionImportance:
    """One decision (or a repeated decision pooled over its blocks): its share of the summed importances, and the
    mean rise (with its standard deviation over folds) of the held-out squared error when it is permuted."""

    decision: str
    share: float
    increase: float
    std: float


@dataclass(frozen=True)
class DecisionImportances:
    """The decisions of a search ranked by importance for one metric, with how well the forest predicts it."""

    metric: str
    trials: int
    r2: float  # held-out, on the scale fitted
    by: str
    scale: str
    decisions: tuple[DecisionImportance, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "decisions"},
                "decisions": [asdict(d) for d in self.decisions]}


def decision_group(path: str, by: str) -> str:
    """"blocks.2.kernel" -> "blocks.*.kernel" with by="name" (a repeated decision pooled), unchanged with "path"."""
    return re.sub(r"(?<=\.)\d+(?=\.|$)", "*", path) if by == "name" else path


def metric_name(result: SearchResult, metric: str | None) -> str:
    """The recorded metric `metric` names (default: the first objective); "params:min", as the other commands take a
    metric, is "params" (the direction does not matter here). ConfigError when no trial recorded it."""
    name = metric if metric is not None else result.problem.objectives[0].name
    recorded = sorted({m for t in result.trials for m in t.metrics})
    base, sep, direction = name.rpartition(":")
    if name not in recorded and sep and OPTUNA_DIRECTIONS.get(direction, direction) in ("min", "max"):
        name = base
    if name not in recorded:
        raise ConfigError(f"metric {name!r}: no trial recorded it (recorded: {', '.join(recorded) or 'none'})")
    return name


def encode(rows: Sequence[Mapping[str, Any]], seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Feature matrix of flattened decisions (`nas.result.decisions`) and each column's decision path: one-hot per
    value seen and a numeric decision's value as one more column. Where a trial lacks a decision (a condition or a
    repeat leaves it out), its columns hold a value drawn from the trials that have it: neutral, so that the
    absence, which the controlling decision's own columns carry, is not credited to the absent decision."""
    rng = np.random.default_rng(seed)
    paths = sorted({p for r in rows for p in r})
    columns: list[np.ndarray] = []
    owners: list[str] = []
    for p in paths:
        values = [r.get(p, ABSENT) for r in rows]
        present = [v for v in values if v is not ABSENT]
        seen = sorted({repr(v) for v in present})
        if len(seen) < 2:
            continue  # one value wherever present: nothing to learn from it beyond its presence
        values = [v if v is not ABSENT else present[int(rng.integers(len(present)))] for v in values]
        codes = [repr(v) for v in values]
        for s in seen:
            columns.append(np.array([c == s for c in codes], dtype=float))
            owners.append(p)
        if all(is_number(v) for v in present):
            columns.append(np.array([float(v) for v in values]))
            owners.append(p)
    x = np.column_stack(columns) if columns else np.zeros((len(rows), 0))
    return x, owners


def decision_importances(result: SearchResult, metric: str | None = None, by: Literal["name", "path"] = "name",
                         scale: Literal["rank", "value"] = "rank", folds: int = 5, repeats: int = 3, trees: int = 200,
                         seed: int = 0, max_trials: int | None = None) -> DecisionImportances:
    """Rank the decisions of `result`'s evaluated trials by how much a forest needs each to predict `metric`
    (default: the first objective); see the module docstring. Needs at least 10 trials with a finite value;
    `max_trials` uses a seeded subset of a longer search (the dashboard's, so the panel answers in seconds)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold

    if by not in ("name", "path"):
        raise ConfigError(f"by: expected 'name' or 'path', got {by!r}")
    if scale not in ("rank", "value"):
        raise ConfigError(f"scale: expected 'rank' or 'value', got {scale!r}")
    for name, value, low in (("folds", folds, 2), ("repeats", repeats, 1), ("trees", trees, 1),
                             ("max_trials", MIN_TRIALS if max_trials is None else max_trials, MIN_TRIALS)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")
    name = metric_name(result, metric)
    used = [t for t in result.trials if t.status == "ok" and t.pruned_after is None and name in t.metrics
            and isinstance(t.metrics[name], (int, float)) and math.isfinite(t.metrics[name])]
    if len(used) < max(MIN_TRIALS, folds):
        raise ConfigError(f"decision importances of {name!r} need at least {max(MIN_TRIALS, folds)} evaluated trials "
                          f"with a finite value; this search has {len(used)}")
    rng = np.random.default_rng(seed)
    if max_trials is not None and len(used) > max_trials:
        used = [used[int(i)] for i in np.sort(rng.choice(len(used), size=max_trials, replace=False))]
    x, owners = encode([decisions(t.arch) for t in used], seed)
    y = np.array([float(t.metrics[name]) for t in used])
    if scale == "rank":
        y = normal_scores(y)  # ties share a score
    groups: dict[str, list[int]] = {}
    for col, path in enumerate(owners):
        groups.setdefault(decision_group(path, by), []).append(col)
    rises: dict[str, list[float]] = {g: [] for g in groups}  # per fold: mean rise of the held-out squared error
    oof = np.zeros(len(y))
    splitter = KFold(n_splits=min(folds, len(y)), shuffle=True, random_state=seed)
    for train, test in splitter.split(x):
        forest = RandomForestRegressor(n_estimators=trees, max_features=1 / 3, min_samples_leaf=1, random_state=seed,
                                       n_jobs=1).fit(x[train], y[train]) if x.shape[1] else None
        pred = forest.predict(x[test]) if forest is not None else np.full(len(test), y[train].mean())
        oof[test] = pred
        base = float(np.mean((pred - y[test]) ** 2))
        for g, cols in groups.items():
            errors = []
            for _ in range(repeats):
                shuffled = x[test].copy()
                shuffled[:, cols] = shuffled[rng.permutation(len(test))][:, cols]  # rows of the decision, together
                errors.append(float(np.mean((forest.predict(shuffled) - y[test]) ** 2)))  # type: ignore[union-attr]
            rises[g].append(float(np.mean(errors)) - base)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((oof - y) ** 2)) / total if total > 0 else 0.0
    mean_rise = {g: float(np.mean(v)) for g, v in rises.items()}
    positive = sum(max(v, 0.0) for v in mean_rise.values())
    ranked = sorted(groups, key=lambda g: -mean_rise[g])
    out = tuple(DecisionImportance(g, max(mean_rise[g], 0.0) / positive if positive > 0 else 0.0, mean_rise[g],
                                   float(np.std(rises[g], ddof=1)) if len(rises[g]) > 1 else 0.0) for g in ranked)
    if r2 < WEAK_R2:
        logger.warning("the decisions explain little of %s (held-out R^2 %.2f over %d trials): the importances "
                       "describe noise", name, r2, len(y))
    return DecisionImportances(name, len(y), r2, by, scale, out)


@dataclass(frozen=True)
class ValueEffect:
    """One value of a decision: the metric's mean over the evaluated trials holding it (a pooled decision counts a
    trial once per block holding it), its 95 % t-interval and how many there were."""

    value: Any
    mean: float
    low: float
    high: float
    count: int


def decision_effects(result: SearchResult, decision: str, metric: str | None = None,
                     by: Literal["name", "path"] = "name") -> list[ValueEffect]:
    """The metric per value of one decision (as `decision_importances` names it: "blocks.*.kernel" by name), values
    in their sorted order: which values of an important decision are the good ones (Optuna's slice plot, as numbers)."""
    from scipy import stats

    name = metric_name(result, metric)
    groups: dict[str, list[float]] = {}
    keys: dict[str, Any] = {}
    for t in result.trials:
        v = t.metrics.get(name)
        if t.status != "ok" or t.pruned_after is not None or v is None or not math.isfinite(v):
            continue
        for path, value in decisions(t.arch).items():
            if decision_group(path, by) == decision:
                groups.setdefault(repr(value), []).append(float(v))
                keys[repr(value)] = value
    if not groups:
        raise ConfigError(f"decision {decision!r}: no evaluated trial with {name!r} holds it (decisions are named as "
                          "decision_importances names them, e.g. 'blocks.*.kernel')")
    out = []
    for k in sorted(groups, key=lambda k: (not is_number(keys[k]), keys[k] if is_number(keys[k]) else k)):
        ys = np.array(groups[k])
        half = float(stats.t.ppf(0.975, len(ys) - 1) * ys.std(ddof=1) / np.sqrt(len(ys))) if len(ys) > 1 else math.inf
        out.append(ValueEffect(keys[k], float(ys.mean()), float(ys.mean() - half), float(ys.mean() + half), len(ys)))
    return out
