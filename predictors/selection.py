"""The default predictor: a prior from the structure the space declares, overruled only on clear out-of-fold evidence.

`default_candidates(space)` orders the candidates. A space that declares its structure (a cell declared with
`Space.with_graph(CellGraph(...))`, or a class that draws its own DAG: the built-in cell, GNN, transformer and
NAS-Bench-Graph spaces) puts `wl-gp` (a GP on the Weisfeiler-Lehman graph kernel) first; a plain space, whose
graph is one node per architecture, puts the forest first: 200 trees, a third of the features per split, on the
one-hot and index codes side by side (`encoding="onehot+vector"`). `choose` keeps that first candidate; the
other family (`fallback`) competes only when the prior's fit is degenerate (a GP whose predicted means collapsed
towards a constant), and candidates that refine the prior (transfer from a related task) compete always; either
replaces the prior only when its out-of-fold Kendall tau (5 folds of the results so far, over pairs within a
fold) is higher by more than one standard error of the paired difference (bootstrap over the results): the
one-standard-error rule, in favour of the prior. Letting the other family compete always cost the searches up to 0.01-0.02 hypervolume at 75
evaluations on NAS-Bench-Graph's graph spaces (experiments/README.md, session 18). Measured on NAS-Bench-Graph (experiments/predictors_user_space.py,
seeds 0-9): with the cell declared `wl-gp` beats a 200-tree forest on one-hot by tau +0.04 to +0.12 at N = 50-200
on all three tables, while a plain 5-fold argmax picked the forest in 6-8 of 10 seeds at N = 50 on noise alone;
on a plain space `wl-gp` and the forest are level, and the forest is cheaper and does not collapse at N <= 20.
The forest's two codes let a split take one option against the rest or the options in their declared order; on
the plain space that lifts tau over the one-hot forest from -0.02..+0.05 (50 trees, one-hot only) to
+0.005..+0.075 at N = 50-200 on all three tables (seeds 0-9, where it was chosen). On fresh seeds 10-19
(experiments/results/predictors_user_space.json) the default is ahead of the one-hot forest by tau +0.009 to +0.090
with the cell declared and +0.009 to +0.063 on the plain space.
The rule still drops a prior that fails (a GP collapsed to a constant ranks nothing, and the other model wins).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.predictors.base import as_architectures, finite_targets
from nas.spaces import Architecture, Space

logger = logging.getLogger(__name__)

FOREST = ("rf", {"n_estimators": 200, "max_features": 1 / 3, "encoding": "onehot+vector"})
GRAPH_GP = ("wl-gp", {})
FOLDS = 5
SUBSET = 200  # at most this many results (a seeded subset) cross-validate the choice: its cost is bounded at any N
DRAWS = 200  # bootstrap draws for the standard error of a tau difference


def declares_structure(space: Any) -> bool:
    """True when `space.to_graph` gives a real DAG: a declared `CellGraph`, or a class that draws its own graph
    (not the plain `Space`'s one node per (sub)space)."""
    if getattr(space, "cell_graph", None) is not None:
        return True
    to_graph = getattr(type(space), "to_graph", None)
    if to_graph is None or to_graph is Space.to_graph or "graph" not in space.capabilities:
        return False
    base = getattr(space, "base", None)  # a wrapper that hands on its base's graph (nas.tabular.TableSpace)
    return declares_structure(base) if base is not None and hasattr(base, "to_graph") else True


def default_candidates(space: Any) -> dict[str, dict[str, Any]]:
    """{registry name: options}, the prior first: `wl-gp` where the space declares its structure, else the forest."""
    order = (GRAPH_GP, FOREST) if declares_structure(space) else (FOREST, GRAPH_GP)
    return {name: dict(options) for name, options in order}


@dataclass(frozen=True)
class Selection:
    """The outcome of `choose`: the chosen name, the prior, each candidate's out-of-fold Kendall tau (tau-b) and
    the standard error of its difference to the prior's, on `n` results."""

    name: str
    prior: str
    taus: Mapping[str, float]
    standard_errors: Mapping[str, float]
    n: int
    fitted: Any = None  # the chosen predictor already fitted on all of (archs, y), when `choose` did that fit


def _signs(v: np.ndarray) -> np.ndarray:
    return np.sign(v[:, None] - v[None, :])


def weighted_taus(y: np.ndarray, preds: Mapping[str, np.ndarray], weights: np.ndarray,
                  groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Kendall tau-b of each prediction against `y`, per row of `weights` (counts of a bootstrap draw; a row of
    ones gives scipy's tau-b), over the pairs within one group only when `groups` is given. A constant
    prediction has tau 0: it ranks nothing."""
    sy = _signs(y)
    within = np.ones_like(sy) if groups is None else (groups[:, None] == groups[None, :]).astype(float)
    sy = sy * within
    w = np.atleast_2d(weights).astype(float)
    ny = np.einsum("bi,ij,bj->b", w, np.abs(sy), w)
    out = {}
    for name, p in preds.items():
        sp = _signs(np.asarray(p, dtype=float)) * within  # tau-b's ties are counted over the same pairs
        conc = np.einsum("bi,ij,bj->b", w, sy * sp, w)
        den = np.sqrt(ny * np.einsum("bi,ij,bj->b", w, np.abs(sp), w))
        out[name] = np.divide(conc, den, out=np.zeros_like(conc), where=den > 0)
    return out


def one_standard_error(y: np.ndarray, preds: Mapping[str, np.ndarray], prior: str, rng: np.random.Generator,
                       groups: np.ndarray | None = None, draws: int = DRAWS) -> Selection:
    """Keep `prior` unless a candidate's tau (over the pairs within a group, if given) beats it by more than one
    bootstrap standard error of the paired difference; among several such, the one with the highest tau."""
    if prior not in preds:
        raise ConfigError(f"prior: {prior!r} is not among the candidates {sorted(preds)}")
    y = np.asarray(y, dtype=float)
    point = {k: float(v[0]) for k, v in weighted_taus(y, preds, np.ones(len(y)), groups).items()}
    boot = weighted_taus(y, preds, rng.multinomial(len(y), np.full(len(y), 1.0 / len(y)), size=draws), groups)
    se = {k: float(np.std(boot[k] - boot[prior], ddof=1)) for k in preds if k != prior}
    better = [k for k in se if point[k] - point[prior] > se[k]]
    name = max(better, key=lambda k: point[k]) if better else prior
    return Selection(name, prior, point, se, len(y))


def out_of_fold(make: Callable[[str], Any], names: Sequence[str], archs: Sequence[Architecture], y: np.ndarray,
                rng: np.random.Generator, folds: int = FOLDS) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each candidate's out-of-fold predicted means (`folds` folds; `make(name)` gives a predictor to fit), and
    each result's fold."""
    split = np.array_split(rng.permutation(len(y)), min(folds, len(y)))
    fold = np.zeros(len(y), dtype=int)
    for k, test in enumerate(split):
        fold[test] = k
    out = {}
    for name in names:
        oof = np.zeros(len(y))
        for test in split:
            train = np.setdiff1d(np.arange(len(y)), test)
            if np.ptp(y[train]) == 0:
                continue  # nothing to learn from this fold: its predictions stay tied (tau counts them as such)
            p = make(name).fit([archs[i] for i in train], y[train])
            oof[test] = p.predict([archs[i] for i in test])[0]
        out[name] = oof
    return out, fold


def _said_once(make: Callable[[str], Any]) -> Callable[[str], Any]:
    """`make`, but each predictor it builds after one of the same name has logged a warning (a collapsed GP) logs it
    at DEBUG: `choose` builds one per fold and one on all results, and the docs promise it once per predictor."""
    last: dict[str, Any] = {}

    def built(name: str) -> Any:
        predictor = make(name)
        if getattr(last.get(name), "warned", False) and hasattr(predictor, "warned"):
            predictor.warned = True
        last[name] = predictor
        return predictor

    return built


def choose(make: Callable[[str], Any], candidates: Sequence[str], archs: Sequence[Architecture],
           y: Sequence[float], seed: int = 0, fallback: Sequence[str] = ()) -> Selection:
    """The default predictor for (archs, y): `candidates[0]` is the prior, kept unless another candidate's 5-fold
    out-of-fold Kendall tau beats it by more than one standard error. `fallback` candidates (another model family)
    compete only when the prior, fitted on all of (archs, y), is `degenerate` (a GP whose means collapsed towards a
    constant): a challenger that wins the out-of-fold choice on noise cost the searches more than it gained (experiments/README.md,
    predictor_search.py, session 18). Tau counts the pairs within a fold only:
    across folds, predictions come from different fits, and a fit's shift towards its own training mean (the
    held-out values' opposite) makes a model that predicts the mean look anti-correlated (tau -0.5 at N = 10).
    Works from 2 results (at N = 10: 5 folds of 2, 5 pairs, so the prior stays unless the other candidate is far
    ahead); beyond `SUBSET` results a seeded subset of that size is used, so the cost does not grow with N."""
    names = list(candidates)
    if not names:
        raise ConfigError("candidates: give at least one predictor name")
    make = _said_once(make)
    first = make(names[0])
    y_arr = finite_targets(y, "choose: targets")  # as `fit` checks them: the one-candidate shortcut fits nothing
    space = getattr(first, "space", None)
    if space is not None:
        archs = as_architectures(space, archs)
    if len(archs) != len(y_arr) or len(y_arr) < 2:
        raise ConfigError(f"choose: need matching architectures and targets, at least 2 (got {len(archs)} and "
                          f"{len(y_arr)})")
    if isinstance(fallback, str):
        raise ConfigError(f"fallback: expected a list of predictor names, got the string {fallback!r}")
    for f in fallback:  # built once here, so a misspelt name is refused now, not only when the prior degenerates
        try:
            make(f)
        except ConfigError as e:
            raise ConfigError(f"fallback: {f!r}: {e}") from None
    fallback = [f for f in fallback if f not in names]
    prior = first.fit(archs, y_arr) if fallback else None
    if prior is not None and getattr(prior, "degenerate", False):
        logger.debug("default predictor: the prior %s is degenerate on %d results; %s compete", names[0], len(y_arr),
                     fallback)
        names += fallback
    if len(names) == 1:  # no out-of-fold fits follow: the prior's fit on all results is the one to use
        return Selection(names[0], names[0], {}, {}, len(y_arr), prior)
    rng = np.random.default_rng([seed, len(y_arr)])
    if len(y_arr) > SUBSET:
        keep = np.sort(rng.choice(len(y_arr), SUBSET, replace=False))
        archs, y_arr = [archs[i] for i in keep], y_arr[keep]
    preds, fold = out_of_fold(make, names, archs, y_arr, rng)
    selection = one_standard_error(y_arr, preds, names[0], rng, fold)
    logger.debug("default predictor: %s (prior %s; out-of-fold tau %s; SE of the difference %s; N = %d)",
                 selection.name, selection.prior, selection.taus, selection.standard_errors, selection.n)
    return selection
