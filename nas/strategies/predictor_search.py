"""`predictor-search`: predictor-in-the-loop search (DyNAS-T / LINAS style) for any space, objectives and constraints.

After `n_init` uniform samples, each batch of `batch_size` true evaluations is chosen in three steps:

1. Refit: one predictor per expensive metric (every objective and constraint metric that no cheap evaluator
   gives) on every result so far. Metrics a cheap evaluator returns (`nas.cheap`: params, FLOPs, LUT
   latency) are computed for each candidate, never predicted (`nas.search` hands the strategy its cheap
   evaluators through `use_cheap`).
2. Inner search: NSGA-II (`generations` x `population_size`, binary tournaments on constraint-domination
   rank and crowding, crossover, mutation) over optimistic predicted objectives, mean - `kappa` x std in
   minimisation form, started from the best results so far and uniform samples; with `local`, the whole
   one-step neighbourhood of up to five results on the observed front is scored too. Every candidate it
   scores and that was never asked or told is kept.
3. Acquisition: picks are taken one at a time by the hypervolume they would add to the front of the results
   so far (objectives scaled by the front's extent, reference 10 % beyond its nadir), each pick joining that
   front at its optimistic value (so the next pick is valued for what it adds beside it: diversity across the
   front); candidates that add nothing are ranked by how far they are from the front (additive epsilon). With
   one objective this is "lowest optimistic value first", and a pick must differ from the batch's earlier
   picks in at least two decisions. Candidates predicted infeasible come after feasible ones.

The predictor (`predictor="auto"`, the default) is chosen per metric by `nas.predictors.selection.choose`: a
prior from the structure the space declares (`wl-gp`, a GP on the Weisfeiler-Lehman graph kernel, where the space
gives a real DAG: a declared `CellGraph` or a built-in graph-aware class; a 200-tree forest on the one-hot and
index codes on a plain space), kept unless its fit is degenerate (a GP collapsed to a constant); only then does the
other one replace it, if its out-of-fold Kendall tau (5 folds, pairs within a fold) is higher by more than one
standard error. Letting the other family win on that lead at any time cost the searches up to 0.01-0.02
hypervolume at 75 evaluations on the graph spaces (experiments/README.md, session 18). It is re-chosen
whenever the number of results has doubled (at 10, 20, 40, ...; on a seeded subset of 200 beyond that). Figures
behind it: experiments/predictors_user_space.py and experiments/README.md. Any registered predictor can be named
instead, with `predictor_options`.

`transfer` (workdirs of earlier searches, or JSON-lines files of {"config", "metrics"} records, over the same space)
adds two candidates for each metric those results hold: the chosen prior fitted on what the related task leaves
unexplained, and the related task's ranking alone (`nas.predictors.transfer`). Each is used only while its
out-of-fold Kendall tau beats the prior's by more than one standard error, so a related task is used when it helps.

Restarts (`restart_after=N`; off by default): a predictor fitted on one basin can rate a distant, better basin like an
average architecture, so once the search has converged its batches stay where the model has data. After N results
without a feasible one that improves the current run's front, the search starts afresh, as IPOP-CMA-ES and TuRBO do:
uniform samples, then predictors fitted, fronts and elites taken on the results since the restart only. No
architecture is asked twice, and the search's result keeps every trial. Off by default because it did not pay on the
one long benchmark we have (`constrained_ofa.py`, 1,000 queries, N = 100: mean best +0.0006, the stalled worst run
+0.010, two runs cut off while still improving lower; experiments/README.md).

State is plain data (results, asks, the pending batch, the predictor choice, the restarts, the RNG); on load the predictors
are refitted on the results the batch was chosen from, so a resumed search asks what the uninterrupted one
would have.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nas.errors import ConfigError, check_int, check_number
from nas.objectives import Problem
from nas.predictors.selection import Selection, choose, default_candidates
from nas.predictors.transfer import TransferPredictor, TransferPrior
from nas.pareto import (added_hypervolume, crowding_distance, extend_front, hypervolume, non_dominated_sort,
                        pareto_mask)
from nas.spaces import Architecture, Space
from nas.strategies.base import (SeenArchitectures, Strategy, TrialResult, arch_record, check_count, from_record,
                                 pareto_ranks)

logger = logging.getLogger(__name__)

CheapFn = Callable[[Architecture], Mapping[str, float]]
CACHE_SIZE = 200_000
PROBES = 10  # architectures use_cheap tries before it leaves the cheap metric names to the first measured result
TRANSFER = "+transfer"  # suffix of a candidate fitted on top of the transfer prior
PRIOR_ONLY = "transfer"  # the candidate that ranks by the transfer prior alone
LOCAL_STARTS = 5  # results of the observed front whose whole one-step neighbourhood is scored per batch


class PredictorSearch(Strategy):
    """Batches of true evaluations chosen by an NSGA-II over predicted objectives; predictors refit per batch."""

    name = "predictor-search"
    requires = frozenset({"sample", "mutate", "crossover"})

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0, n_init: int = 10, batch_size: int = 5,
                 population_size: int = 40, generations: int = 6, kappa: float = 0.5, crossover_prob: float = 0.9,
                 local: bool = True, predictor: str = "auto", predictor_options: Mapping[str, Any] | None = None,
                 transfer: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | TransferPrior | None = None,
                 restart_after: int | None = None) -> None:
        super().__init__(space, problem, seed)
        # each error names the option, its rule and the value given, as evolution's, nsga2's and mcts's do
        n_init = check_int(n_init, "predictor-search: invalid n_init", 2)
        batch_size = check_int(batch_size, "predictor-search: invalid batch_size", 1)
        population_size = check_int(population_size, "predictor-search: invalid population_size", 4)
        generations = check_int(generations, "predictor-search: invalid generations", 1)
        kappa = check_number(kappa, "predictor-search: invalid kappa", positive=False)
        if isinstance(crossover_prob, bool) or not isinstance(crossover_prob, numbers.Real) \
                or not 0 <= crossover_prob <= 1:
            raise ConfigError(f"predictor-search: invalid crossover_prob: expected a number in [0, 1], "
                              f"got {crossover_prob!r}")
        whole = isinstance(restart_after, numbers.Integral) and not isinstance(restart_after, bool)
        if restart_after is not None and (not whole or restart_after < 1):
            raise ConfigError(f"predictor-search: invalid restart_after: expected an int >= 1 (None: never restart), "
                              f"got {restart_after!r}")
        restart_after = None if restart_after is None else int(restart_after)
        self.restart_after = restart_after
        self.n_init, self.batch_size, self.population_size = n_init, batch_size, population_size
        self.generations, self.kappa, self.crossover_prob = generations, float(kappa), crossover_prob
        self.local = bool(local)
        if predictor == "auto" and predictor_options:
            raise ConfigError("predictor-search: predictor_options need a named predictor, not 'auto'")
        if predictor_options and "seed" in predictor_options:  # make_predictor takes it positionally
            raise ConfigError("predictor-search: predictor_options may not hold 'seed': the predictor is seeded "
                              "from the strategy's seed (give seed= to the strategy)")
        self.predictor_name, self.predictor_options = predictor, dict(predictor_options or {})
        self.model_seed = 0 if seed is None else int(seed)
        # candidates: name -> options; a ConfigError now, not mid-search, if the space lacks what a named one needs
        self._candidates: dict[str, dict[str, Any]] = {}
        auto = default_candidates(space)  # the prior first (selection.py)
        for name, options in (auto.items() if predictor == "auto" else [(predictor, self.predictor_options)]):
            try:
                self._check_pretraining(self._make_predictor(name, options))
            except ConfigError:
                if predictor != "auto":
                    raise
                continue
            self._candidates[name] = dict(options)
        if not self._candidates:
            raise ConfigError(f"predictor-search: none of {sorted(auto)} can predict on {type(space).__name__}")
        self.transfer: TransferPrior | None = None
        if transfer is not None:
            self.transfer = transfer if isinstance(transfer, TransferPrior) else TransferPrior.load(space, transfer)
            if not self.transfer.metrics & set(problem.metrics_needed):
                raise ConfigError(f"transfer: the sources hold none of this search's metrics "
                                  f"{sorted(problem.metrics_needed)} (they hold {sorted(self.transfer.metrics)})")
        self.choice: dict[str, str] = {}  # metric -> the candidate chosen by cross-validation (plain data)
        self.chosen_at = 0  # results when the choice was last made
        self.history: list[tuple[Architecture, TrialResult]] = []  # every result told (not cached), in order
        self.restarts: list[int] = []  # len(history) at each restart: the current run uses history[restarts[-1]:]
        self.asked: list[dict[str, Any]] = []
        self.queue: list[dict[str, Any]] = []  # the current batch, not yet handed out
        self.known = SeenArchitectures(space)
        self._cheap: CheapFn | None = None
        self._cheap_names: frozenset[str] | None = frozenset()  # None: not known yet (every probe failed)
        self._cheap_cache: dict[str, dict[str, float]] = {}
        self._features: dict[str, np.ndarray] = {}
        self._empty_at: int | None = None  # results when the last batch came back empty: no new batch until more
        self._predictors: dict[tuple[str, str], Any] = {}  # (metric, name) -> predictor (refitted; not state)

    # ------------------------------------------------------------------ cheap metrics
    def use_cheap(self, evaluate: CheapFn | None) -> None:
        """Compute the metrics `evaluate` returns (cheap ones: params, FLOPs, LUT latency) for every candidate
        instead of predicting them. `nas.search` calls this with the search's `nas.cheap` evaluators; their metric
        names come from the first of `PROBES` seeded samples they measure, else from the first measured result."""
        self._cheap, self._cheap_cache = evaluate, {}
        self._cheap_names = frozenset() if evaluate is None else None
        if evaluate is not None:  # learnt from the first probe it can measure (a LUT may lack a probe's block)
            rng = np.random.default_rng(self.model_seed)
            self._learn_cheap_names(self.space.sample(rng) for _ in range(PROBES))

    def _learn_cheap_names(self, archs: Iterable[Architecture]) -> None:
        """Set the cheap metric names from the first of `archs` the cheap evaluator measures (else leave them unknown)."""
        for arch in archs:
            if self._cheap_names is not None:
                return
            self._cheap_metrics(arch)  # learns the names on its first success

    @property
    def predicted_metrics(self) -> list[str]:
        """The objective and constraint metrics this search predicts (those no cheap evaluator gives)."""
        return [m for m in self.problem.metrics_needed if m not in (self._cheap_names or ())]

    def _cheap_metrics(self, arch: Architecture) -> dict[str, float]:
        out = self._cheap_cache.get(arch.id)
        if out is None:
            if len(self._cheap_cache) > CACHE_SIZE:
                self._cheap_cache.clear()
            try:
                out = {k: float(v) for k, v in self._cheap(arch).items()} if self._cheap else {}  # type: ignore[misc]
                if self._cheap_names is None:
                    self._cheap_names = frozenset(out)
            except Exception as e:  # noqa: BLE001 - a candidate the cheap stage cannot measure is not proposed
                logger.debug("cheap metrics of %s failed: %s", arch.id, e)
                out = {k: math.nan for k in self._cheap_names or ()}
            self._cheap_cache[arch.id] = out
        return out

    # ------------------------------------------------------------------ ask/tell
    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        out: list[Architecture] = []
        while len(out) < n:
            if not self.queue and self.restart_after is not None and (stale := self._stale()) >= self.restart_after:
                self._restart(stale)
            if (not self.queue and len(self._run()) >= self.n_init and self._usable()
                    and self._empty_at != len(self.history)):
                self.queue = [a.to_dict() for a in self._batch(max(self.batch_size, n - len(out)))]
                self._empty_at = None if self.queue else len(self.history)  # no new candidate: wait for results
            if self.queue:
                arch = Architecture(self.queue.pop(0))
                if arch in self.known:
                    continue  # told meanwhile (a warm start, a cache)
            else:
                arch = self.known.fresh_sample(self.rng)
                if arch in self.known:
                    break  # uniform samples keep repeating: the space is exhausted
            self.known.add(arch)
            self.asked.append(arch.to_dict())
            out.append(arch)
        return out

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        self.known.add(arch)
        if not result.cached:
            self.history.append((arch, result))

    # ------------------------------------------------------------------ the model
    def _make_predictor(self, name: str, options: Mapping[str, Any]) -> Any:
        from nas.predictors import make_predictor

        return make_predictor(name, self.space, self.model_seed, **options)

    @staticmethod
    def _check_pretraining(predictor: Any) -> None:
        """A pretrained predictor without its proxy (alone or as a member of 'average') fails at its first fit, after
        `n_init` evaluations: refuse it now."""
        check = getattr(predictor, "check_pretraining", None)
        if check is None:
            return
        where = ("predictor_options={'members': [{'name': ..., 'options': {'proxy': fn}}, ...]}"
                 if getattr(predictor, "name", None) == "average" else "predictor_options={'proxy': fn}")
        try:
            check()
        except ConfigError as e:
            raise ConfigError(f"predictor-search: {e}: {where}, on a strategy instance (make_strategy(...) or "
                              "PredictorSearch(...), passed as strategy=); a search's strategy_options are plain JSON "
                              "data, which holds no function") from None

    def _predictor(self, metric: str, name: str) -> Any:
        """The predictor `name` for `metric`, kept across refits (its caches too); every fit starts afresh.
        `<candidate>+transfer` is that candidate fitted on what the transfer prior leaves unexplained."""
        predictor = self._predictors.get((metric, name))
        if predictor is None:
            if name == PRIOR_ONLY:
                predictor = TransferPredictor(self.space, 0, None, self.transfer, metric)
            else:
                base = name.removesuffix(TRANSFER)
                predictor = self._make_predictor(base, self._candidates[base])
                if name != base:
                    predictor = TransferPredictor(self.space, 0, predictor, self.transfer, metric)
            self._predictors[(metric, name)] = predictor
        predictor.seed = (self.model_seed * 1_000_003 + len(self.history)) % 2 ** 31
        return predictor

    def _candidate_names(self, metric: str) -> list[str]:
        """The candidates for `metric`, the prior first; with a transfer source for it, also the prior fitted on top
        of the transfer prior, and the transfer prior alone: each used only when it ranks clearly better out of fold
        (when it helps). The prior alone matters where the base adds noise to a strong prior's fine distinctions
        (a forest's residual predictions do)."""
        names = list(self._candidates)[:1]
        if self.transfer is not None and metric in self.transfer.metrics:
            names += [names[0] + TRANSFER, PRIOR_ONLY]
        return names

    def _fallback(self) -> list[str]:
        """The other model family: it competes only when the prior's fit is degenerate (`selection.choose`)."""
        return list(self._candidates)[1:]

    def _choose(self, metric: str, archs: list[Architecture], y: np.ndarray) -> Selection:
        """The candidate `selection.choose` keeps: the first (the space's prior) unless another one's out-of-fold
        Kendall tau beats it by more than one standard error; the other family competes only if the prior's fit is
        degenerate."""
        return choose(lambda name: self._predictor(metric, name), self._candidate_names(metric), archs, y,
                      self.model_seed, self._fallback())

    def _run(self) -> list[tuple[Architecture, TrialResult]]:
        """The results since the last restart (every result if there was none)."""
        return self.history[self.restarts[-1] if self.restarts else 0:]

    def _usable(self) -> list[tuple[Architecture, TrialResult]]:
        return [(a, r) for a, r in self._run() if r.status != "failed"]

    def _stale(self) -> int:
        """Results of the current run since the last feasible one that improved its front (all of them if none did):
        a result improves the front when no earlier feasible result of the run weakly dominates it."""
        front: list[np.ndarray] = []
        stale = 0
        for _, r in self._run():
            stale += 1
            if r.status == "failed" or not self.problem.feasible(r.metrics) or \
                    not all(o.name in r.metrics for o in self.problem.objectives):
                continue
            v = np.asarray(self.problem.vector(r.metrics), dtype=float)
            if np.all(np.isfinite(v)) and extend_front(front, v):
                stale = 0
        return stale

    def _restart(self, stale: int) -> None:
        """Start a fresh run: uniform samples, then predictors and fronts on the new run's results only."""
        logger.info("predictor-search: %d results without improving the front; restart %d after %d results, "
                    "from uniform samples", stale, len(self.restarts) + 1, len(self.history))
        self.restarts.append(len(self.history))
        self.choice, self.chosen_at, self._empty_at = {}, 0, None

    def _fit(self) -> dict[str, Any]:
        """One predictor per predicted metric, fitted on every result that has it (seeded by the result count)."""
        models: dict[str, Any] = {}
        n = len(self._run())
        choose = not self.chosen_at or n >= 2 * self.chosen_at  # at N = 10, 20, 40, 80, ... results of this run
        for metric in self.predicted_metrics:
            data = [(a, r.metrics[metric]) for a, r in self._usable()
                    if metric in r.metrics and np.isfinite(r.metrics[metric])]
            if len(data) < 2:
                return {}
            y = np.array([v for _, v in data], dtype=float)
            if np.ptp(y) == 0:
                y = y + np.linspace(0.0, 1e-12, len(y))  # constant targets: keep the fit well-posed
            archs = [a for a, _ in data]
            fitted = None
            if choose or self.choice.get(metric) not in self._candidate_names(metric) + self._fallback():
                selection = self._choose(metric, archs, y)
                self.choice[metric], fitted = selection.name, selection.fitted  # fitted here already: same seed
            models[metric] = fitted if fitted is not None else self._predictor(metric, self.choice[metric]).fit(archs, y)
        if choose:
            self.chosen_at = n
        return models

    def _predict(self, models: Mapping[str, Any], archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """(optimistic objective vectors in minimisation form, optimistic total violation) per architecture."""
        preds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for metric, model in models.items():
            mean, std = model.predict(archs)
            preds[metric] = (np.asarray(mean, dtype=float), np.asarray(std, dtype=float))
        cheap = [self._cheap_metrics(a) for a in archs] if self._cheap_names else [{} for _ in archs]
        n = len(archs)
        vec = np.empty((n, len(self.problem.objectives)))
        for k, o in enumerate(self.problem.objectives):
            if o.name in preds:
                mean, std = preds[o.name]
                vec[:, k] = np.array([o.minimised(v) for v in mean]) - self.kappa * std
            else:
                vec[:, k] = [o.minimised(c.get(o.name, math.nan)) for c in cheap]
        viol = np.zeros(n)
        for c in self.problem.constraints:
            if c.metric in preds:
                mean, std = preds[c.metric]
                sign = -1.0 if c.op in ("<", "<=") else 1.0  # the optimistic side of the bound
                vals = mean + sign * self.kappa * std
            else:
                vals = np.array([m.get(c.metric, math.nan) for m in cheap])
            viol += np.array([c.violation({c.metric: float(v)}) if np.isfinite(v) else math.inf for v in vals])
        vec[~np.isfinite(vec)] = np.inf
        return vec, viol

    # ------------------------------------------------------------------ inner NSGA-II
    @staticmethod
    def _rank(vec: np.ndarray, viol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Constraint-domination rank (feasible fronts first, then by violation) and crowding per point."""
        n = len(vec)
        rank, crowd = np.zeros(n), np.zeros(n)
        feas = np.flatnonzero((viol == 0) & np.all(np.isfinite(vec), axis=1))
        if len(feas):
            for k, front in enumerate(non_dominated_sort(vec[feas])):
                idx = feas[front]
                rank[idx] = k
                crowd[idx] = crowding_distance(vec[idx]) if len(idx) > 2 else np.inf
        base = rank[feas].max() + 1 if len(feas) else 0.0
        rest = np.setdiff1d(np.arange(n), feas)
        order = rest[np.argsort(viol[rest], kind="stable")]
        rank[order] = base + np.arange(len(order))
        return rank, crowd

    def _inner_search(self, models: Mapping[str, Any]) -> tuple[list[Architecture], np.ndarray, np.ndarray]:
        """NSGA-II on the predictions; returns every scored candidate never asked or told, with its scores."""
        scored: dict[str, int] = {}
        archs: list[Architecture] = []
        vecs: list[np.ndarray] = []
        viols: list[np.ndarray] = []

        def score(batch: Sequence[Architecture]) -> None:
            new, ids = [], set()
            for a in batch:
                if a.id not in scored and a.id not in ids:
                    ids.add(a.id)
                    new.append(a)
            if not new:
                return
            v, c = self._predict(models, new)
            for a in new:
                scored[a.id] = len(archs)
                archs.append(a)
            vecs.append(v)
            viols.append(c)

        told = [a for a, _ in self._usable()]
        ranks = pareto_ranks(self.problem, [r for _, r in self._usable()])
        elite = [told[int(i)] for i in np.argsort(ranks, kind="stable")[: self.population_size // 2]]
        start = elite + [self.space.sample(self.rng) for _ in range(self.population_size - len(elite))]
        score(start)
        if self.local and "neighbours" in self.space.capabilities:  # every one-step edit of the best results
            front = np.flatnonzero(ranks == ranks.min())
            picked = self.rng.choice(front, size=min(LOCAL_STARTS, len(front)), replace=False)
            score([n for i in picked for n in self.space.neighbours(told[int(i)])])
        population = list(dict.fromkeys(scored[a.id] for a in start))
        for _ in range(self.generations):
            vec, viol = np.vstack(vecs), np.concatenate(viols)
            rank, crowd = self._rank(vec[population], viol[population])
            children = []
            for _ in range(self.population_size):
                a = self._binary(population, rank, crowd, archs)
                if self.rng.random() < self.crossover_prob:
                    a = self.space.crossover(a, self._binary(population, rank, crowd, archs), self.rng)
                children.append(self.space.mutate(a, self.rng))
            score(children)
            pool = list(dict.fromkeys(population + [scored[c.id] for c in children]))
            vec, viol = np.vstack(vecs), np.concatenate(viols)
            rank, crowd = self._rank(vec[pool], viol[pool])
            order = np.lexsort((-crowd, rank))[: self.population_size]
            population = [pool[int(i)] for i in order]
        vec, viol = np.vstack(vecs), np.concatenate(viols)
        keep = [i for i, a in enumerate(archs) if a.id not in self.known.ids]  # twins: checked when picked
        return [archs[i] for i in keep], vec[keep], viol[keep]

    def _binary(self, population: list[int], rank: np.ndarray, crowd: np.ndarray,
                archs: list[Architecture]) -> Architecture:
        i, j = (int(x) for x in self.rng.integers(len(population), size=2))
        better = i if (rank[i], -crowd[i]) <= (rank[j], -crowd[j]) else j
        return archs[population[better]]

    # ------------------------------------------------------------------ acquisition
    def _observed(self) -> np.ndarray:
        """Objective vectors (minimisation form) of the feasible results so far."""
        pts = [self.problem.vector(r.metrics) for _, r in self._usable()
               if self.problem.feasible(r.metrics) and all(o.name in r.metrics for o in self.problem.objectives)]
        return np.array(pts, dtype=float).reshape(-1, len(self.problem.objectives))

    def _batch(self, size: int) -> list[Architecture]:
        """The next `size` true evaluations: refit, search the predictions, take picks by added hypervolume."""
        if self._cheap_names is None:  # every probe failed: the results the cheap stage measured tell the names
            self._learn_cheap_names(a for a, r in self.history if r.status != "failed")
            if self._cheap_names is None:
                logger.warning("predictor-search: the cheap evaluator measured none of %d probes and results; "
                               "its metrics are predicted for now", PROBES)
        models = self._fit()
        if not models and self.predicted_metrics:
            return []
        cands, vec, viol = self._inner_search(models)
        if not cands:
            return []
        observed = self._observed()
        observed = observed[np.all(np.isfinite(observed), axis=1)]
        front = observed[pareto_mask(observed)] if len(observed) else np.zeros((0, vec.shape[1]))
        if len(front) > 1:  # scaled by the front's own extent; reference just beyond its nadir (the usual MOBO choice)
            lo, hi = front.min(axis=0), front.max(axis=0)
        elif len(observed):
            lo, hi = observed.min(axis=0), observed.max(axis=0)
        else:
            finite = vec[np.all(np.isfinite(vec), axis=1)]
            lo, hi = (finite.min(axis=0), finite.max(axis=0)) if len(finite) else (np.zeros(vec.shape[1]),) * 2
        scale = np.where(hi - lo > 0, hi - lo, np.maximum(np.abs(hi), 1e-12))
        z = (vec - lo) / scale
        front = (front - lo) / scale
        ref = np.full(vec.shape[1], 1.1)
        single = vec.shape[1] == 1
        picks: list[int] = []
        keys: set[str] = set()
        available = np.ones(len(cands), dtype=bool)
        while len(picks) < size and available.any():
            key = self._acquisition(z, viol, front, ref, available)
            order = np.lexsort((key[:, 1], -key[:, 0], key[:, 2]))
            chosen = None
            for i in order:
                if not available[i]:
                    continue
                if cands[i] in self.known or self.known.key(cands[i]) in keys:  # an isomorphic twin
                    available[i] = False
                    continue
                if single and any(self._distance(cands[i], cands[p]) < 2 for p in picks):
                    continue
                chosen = int(i)
                break
            if chosen is None:  # every remaining candidate is next to a pick: take the best of them
                rest = [int(i) for i in order if available[i]]
                if not rest:
                    break
                chosen = rest[0]
            picks.append(chosen)
            keys.add(self.known.key(cands[chosen]))
            available[chosen] = False
            if viol[chosen] == 0 and np.all(np.isfinite(z[chosen])):
                front = np.vstack([front, z[chosen]])
        return [cands[i] for i in picks]

    @staticmethod
    def _acquisition(z: np.ndarray, viol: np.ndarray, front: np.ndarray, ref: np.ndarray,
                     available: np.ndarray) -> np.ndarray:
        """Per candidate: (hypervolume it adds to `front`, additive epsilon to reach the front, violation)."""
        n = len(z)
        out = np.zeros((n, 3))
        out[:, 2] = viol
        finite = np.all(np.isfinite(z), axis=1)
        out[~finite, 1] = np.inf
        if not len(front):
            out[finite, 1] = z[finite].sum(axis=1)  # no feasible result yet: closest to the ideal point
            return out
        eps = np.max(z[:, None, :] - front[None, :, :], axis=2).min(axis=1)  # > 0: dominated by `front`
        out[:, 1] = np.where(finite, eps, np.inf)
        gain = np.flatnonzero(available & finite & (viol == 0) & (eps < 0))
        if front.shape[1] == 2:  # the sweep over the whole front is cheap (and what the recorded runs used)
            base = hypervolume(front, ref)
            for i in gain:
                out[i, 0] = hypervolume(np.vstack([front, np.minimum(z[i], ref)]), ref) - base
        else:  # 3+ objectives: each candidate's exclusive volume, one small hypervolume (10-20 s per batch before)
            for i in gain:
                out[i, 0] = added_hypervolume(front, np.minimum(z[i], ref), ref)
        return out

    def _distance(self, a: Architecture, b: Architecture) -> float:
        """Decisions in which two architectures differ (half the L1 distance of their one-hot codes, `to_features`: a
        wide ordered decision counts half its scaled distance)."""
        if "encode" not in self.space.capabilities:
            return math.inf
        codes = []
        for arch in (a, b):
            v = self._features.get(arch.id)
            if v is None:
                if len(self._features) > CACHE_SIZE:
                    self._features.clear()
                v = self._features[arch.id] = self.space.to_features(arch)
            codes.append(v)
        return 0.5 * float(np.abs(codes[0] - codes[1]).sum())

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": [arch_record(a, r) for a, r in self.history],
                "asked": list(self.asked), "queue": list(self.queue), "model_seed": self.model_seed,
                "choice": dict(self.choice), "chosen_at": self.chosen_at, "empty_at": self._empty_at,
                "restarts": list(self.restarts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = [from_record(r) for r in state["history"]]
        self.asked = [dict(a) for a in state["asked"]]
        self.queue = [dict(a) for a in state["queue"]]
        self.model_seed = int(state["model_seed"])
        self.choice, self.chosen_at = dict(state["choice"]), int(state["chosen_at"])
        self._empty_at = state.get("empty_at")
        self.restarts = [int(n) for n in state.get("restarts", [])]  # older snapshots: no restart yet
        self.known.clear()
        for a in [Architecture(a) for a in self.asked] + [a for a, _ in self.history]:
            self.known.add(a)
