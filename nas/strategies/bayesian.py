"""`bayesian`: BOSHNAS-style Bayesian optimisation over any space's one-hot encoding (`space.to_features`: a wide
ordered decision such as `Integer(1, 100000)` is one scaled column instead of a one-hot block).

Surrogate: a deep ensemble (Lakshminarayanan et al. 2017) of heteroscedastic MLPs (numpy, batched over
members), one output pair (mean, log-variance) per objective and per constraint, trained with the
Gaussian NLL. The spread of
the members' means is the epistemic uncertainty, the mean of their predicted variances the aleatoric
one (Tuli et al., BOSHNAS). Objectives are modelled after a rank-to-normal-score transform (robust to
collapsed architectures), constraints on their own scale so `g <= 0` still means feasible.

Acquisition, in minimisation form: `ei` (default) = expected improvement over the best feasible result
under the total std; `ucb` = mean - kappa * epistemic std - kappa_aleatoric * aleatoric std. Constraints
multiply EI by the probability of feasibility (UCB adds a penalty of 1 - that). With several
objectives the acquisition is the hypervolume improvement of the optimistic (UCB) vector over the
observed front (SMS-EGO style); dominated candidates score minus their additive-epsilon distance to
the front, so the local search still has a slope to climb.

The acquisition is maximised by mutation-based local search: `n_random` uniform samples plus the best
observed architectures seed it, then `rounds` times the top `n_starts` candidates are expanded by their
whole one-step neighbourhood (`space.neighbours`). Architectures already asked or told (by the space's
canonical key) are never proposed again, nor (under `nas.search`, through `use_cheap`) one that breaks a
constraint on a `nas.cheap` metric: the cheap stage would only reject it, and its result teaches the surrogate
nothing. The surrogate is refitted from a seeded initialisation before
an ask whenever new results arrived, so the state is just the results and the RNG: a resumed search
refits and continues exactly. Defaults (EI, 5 members of 32-32 units, 100 epochs, refit every 10 %
more results) come from a pilot on the cora table with seeds 100..105, where EI beat UCB (kappa=1).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from nas.errors import ConfigError, check_int, check_number
from nas.objectives import Constraint, Problem
from nas.pareto import hypervolume, pareto_mask
from nas.spaces import Architecture, Space
from nas.strategies.base import (SeenArchitectures, Strategy, TrialResult, arch_record, check_count, from_record,
                                 pareto_ranks, scalar_key)


SCREEN_TRIES = 1000  # uniform draws screened by the cheap constraints before one is proposed regardless
CHEAP_CACHE = 200_000  # screened architectures remembered


def constraint_gap(c: Constraint, value: float) -> float:
    """Signed distance to the bound: <= 0 when satisfied."""
    return value - c.bound if c.op in ("<=", "<") else c.bound - value


def normal_scores(y: np.ndarray) -> np.ndarray:
    """Rank -> standard normal quantile (ties share their mean rank)."""
    from scipy.stats import norm, rankdata

    return norm.ppf((rankdata(y) - 0.5) / len(y))


class HeteroscedasticEnsemble:
    """`members` two-hidden-layer MLPs trained jointly in numpy (batched weights, full-batch Adam on the
    Gaussian NLL); each predicts a mean and a log-variance per target. numpy, not torch: these nets are
    tiny, so framework overhead would dominate, and a fit stays a few milliseconds."""

    def __init__(self, width_in: int, targets: int, members: int = 5, hidden: int = 32, epochs: int = 200,
                 lr: float = 0.01, weight_decay: float = 1e-4) -> None:
        self.width_in, self.targets, self.members, self.hidden = width_in, targets, members, hidden
        self.epochs, self.lr, self.weight_decay = epochs, lr, weight_decay
        self.params: list[np.ndarray] = []

    def _init(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        dims = [self.width_in, self.hidden, self.hidden, 2 * self.targets]
        self.params = []
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(a)
            self.params += [rng.uniform(-bound, bound, (self.members, a, b)),
                            rng.uniform(-bound, bound, (self.members, 1, b))]

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        w1, b1, w2, b2, w3, b3 = self.params
        z1 = x @ w1 + b1
        h1 = np.maximum(z1, 0.0)
        z2 = h1 @ w2 + b2
        h2 = np.maximum(z2, 0.0)
        return h2 @ w3 + b3, [z1, h1, z2, h2]

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> None:
        """Train from a seeded initialisation on `y` (n, targets), already scaled."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):  # threaded BLAS only slows these small products down
            self._train(x, y, seed)

    def _train(self, x: np.ndarray, y: np.ndarray, seed: int) -> None:
        self._init(seed)
        x = np.ascontiguousarray(x, dtype=float)  # (n, width); matmul broadcasts it over the members
        y = np.asarray(y, dtype=float)[None]
        k, scale = self.targets, 1.0 / (y.shape[1] * self.targets)
        m = [np.zeros_like(p) for p in self.params]
        v = [np.zeros_like(p) for p in self.params]
        b1, b2, eps = 0.9, 0.999, 1e-8
        xt = np.ascontiguousarray(x.T)
        for step in range(1, self.epochs + 1):
            out, (z1, h1, z2, h2) = self._forward(x)
            mean, raw = out[..., :k], out[..., k:]
            logvar = np.clip(raw, -8.0, 4.0)
            inv = np.exp(-logvar)
            err = y - mean
            d_mean = -err * inv * scale
            d_logvar = 0.5 * (1.0 - err ** 2 * inv) * scale * ((raw > -8.0) & (raw < 4.0))
            d_out = np.concatenate([d_mean, d_logvar], axis=-1)
            w1, _, w2, _, w3, _ = self.params
            d_z2 = (d_out @ w3.transpose(0, 2, 1)) * (z2 > 0)
            d_z1 = (d_z2 @ w2.transpose(0, 2, 1)) * (z1 > 0)
            grads = [xt @ d_z1, d_z1.sum(1, keepdims=True), np.swapaxes(h1, 1, 2) @ d_z2,
                     d_z2.sum(1, keepdims=True), np.swapaxes(h2, 1, 2) @ d_out, d_out.sum(1, keepdims=True)]
            c1, c2 = 1 - b1 ** step, 1 - b2 ** step
            for i, (p, g) in enumerate(zip(self.params, grads)):
                if i % 2 == 0:
                    g = g + self.weight_decay * p
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                p -= self.lr * (m[i] / c1) / (np.sqrt(v[i] / c2) + eps)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, epistemic std and aleatoric std per (row, target)."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            out, _ = self._forward(np.ascontiguousarray(x, dtype=float))
        k = self.targets
        mean, var = out[..., :k], np.exp(np.clip(out[..., k:], -8.0, 4.0))
        return mean.mean(0), mean.std(0), np.sqrt(var.mean(0))


class BayesianOptimisation(Strategy):
    """Deep-ensemble surrogate with aleatoric and epistemic uncertainty; UCB/EI/HVI by local search."""

    name = "bayesian"
    requires = frozenset({"sample", "encode", "neighbours"})

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0, acquisition: str = "ei",
                 kappa: float = 1.0, kappa_aleatoric: float = 0.0, warmup: int = 10, members: int = 5,
                 hidden: int = 32, epochs: int = 100, refit_fraction: float = 0.1, n_random: int = 100,
                 n_starts: int = 5, rounds: int = 3) -> None:
        super().__init__(space, problem, seed)
        # each error names the option, its rule and the value given, as evolution's, nsga2's and mcts's do
        if acquisition not in ("ucb", "ei"):
            raise ConfigError(f"bayesian: invalid acquisition: expected 'ucb' or 'ei', got {acquisition!r}")
        kappa = check_number(kappa, "bayesian: invalid kappa", positive=False)
        kappa_aleatoric = check_number(kappa_aleatoric, "bayesian: invalid kappa_aleatoric", positive=False)
        warmup = check_int(warmup, "bayesian: invalid warmup", 2)
        members = check_int(members, "bayesian: invalid members", 2)
        hidden = check_int(hidden, "bayesian: invalid hidden", 1)
        epochs = check_int(epochs, "bayesian: invalid epochs", 1)
        if isinstance(refit_fraction, bool) or not isinstance(refit_fraction, numbers.Real) \
                or not 0 <= refit_fraction < 1:
            raise ConfigError(f"bayesian: invalid refit_fraction: expected a number in [0, 1), got {refit_fraction!r}")
        n_random = check_int(n_random, "bayesian: invalid n_random", 1)
        n_starts = check_int(n_starts, "bayesian: invalid n_starts", 1)
        rounds = check_int(rounds, "bayesian: invalid rounds", 0)
        self.acquisition, self.kappa, self.kappa_aleatoric = acquisition, kappa, kappa_aleatoric
        self.warmup, self.n_random, self.n_starts, self.rounds = warmup, n_random, n_starts, rounds
        self.refit_fraction = refit_fraction
        self.model_seed = 0 if seed is None else int(seed)
        n_targets = len(problem.objectives) + len(problem.constraints)
        self.model = HeteroscedasticEnsemble(space.features_size(), n_targets, members, hidden, epochs)
        self.history: list[tuple[Architecture, TrialResult]] = []
        self.asked: list[dict[str, Any]] = []  # architectures asked, in order
        self.known = SeenArchitectures(space)  # asked or told: never proposed again
        self.fitted_on = 0  # the surrogate was last fitted on history[:fitted_on]
        self._fitted = False
        self._features: dict[str, np.ndarray] = {}
        self._neighbours: dict[str, list[Architecture]] = {}
        self._cheap: Callable[[Architecture], Mapping[str, float]] | None = None
        self._cheap_ok: dict[str, bool] = {}  # arch id -> passes the constraints on cheap metrics (not state)

    # ------------------------------------------------------------------ helpers
    def _encode(self, archs: Sequence[Architecture]) -> np.ndarray:
        rows = []
        for a in archs:
            v = self._features.get(a.id)
            if v is None:
                v = self._features[a.id] = self.space.to_features(a)
            rows.append(v)
        return np.stack(rows)

    def neighbours(self, arch: Architecture) -> list[Architecture]:
        nbs = self._neighbours.get(arch.id)
        if nbs is None:
            nbs = self._neighbours[arch.id] = self.space.neighbours(arch)
        return nbs

    def _usable(self, upto: int | None = None) -> list[tuple[Architecture, TrialResult]]:
        names = self.problem.metrics_needed
        return [(a, r) for a, r in self.history[:upto]
                if r.status != "failed" and all(n in r.metrics and math.isfinite(float(r.metrics[n])) for n in names)]

    # ------------------------------------------------------------------ cheap screening
    def use_cheap(self, evaluate: Callable[[Architecture], Mapping[str, float]] | None) -> None:
        """Screen candidates with the search's `nas.cheap` evaluators: one that breaks a constraint on a cheap metric,
        or that they cannot measure, is never proposed (the cheap stage would only reject it)."""
        self._cheap, self._cheap_ok = evaluate, {}

    def _passes_cheap(self, arch: Architecture) -> bool:
        """False when the cheap evaluators fail on `arch` or its cheap metrics break a constraint."""
        if self._cheap is None or not self.problem.constraints:
            return True
        ok = self._cheap_ok.get(arch.id)
        if ok is None:
            try:
                metrics = {k: float(v) for k, v in self._cheap(arch).items()}
            except Exception:  # noqa: BLE001 - the cheap stage would fail it too: not proposed
                ok = False
            else:
                ok = all(math.isfinite(metrics[c.metric]) and not c.violation(metrics)
                         for c in self.problem.constraints if c.metric in metrics)
            if len(self._cheap_ok) > CHEAP_CACHE:
                self._cheap_ok.clear()
            self._cheap_ok[arch.id] = ok
        return ok

    def _fresh(self) -> Architecture:
        """A uniform sample never asked or told that passes the cheap constraints (the last draw after SCREEN_TRIES)."""
        arch = self.known.fresh_sample(self.rng)
        for _ in range(SCREEN_TRIES if self._cheap is not None and self.problem.constraints else 0):
            if self._passes_cheap(arch):
                break
            arch = self.known.fresh_sample(self.rng)
        return arch

    # ------------------------------------------------------------------ ask/tell
    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        out: list[Architecture] = []
        for _ in range(n):
            if len(self._usable()) < self.warmup:
                arch = self._fresh()
            else:
                arch = self._optimise()
            self.asked.append(arch.to_dict())
            self.known.add(arch)
            out.append(arch)
        return out

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = self.told(arch, result)
        if result.cached:
            return
        self.history.append((arch, result))
        self.known.add(arch)

    # ------------------------------------------------------------------ surrogate
    def _fit(self) -> None:
        """Refit once the results grew by `refit_fraction` (at least one new result) since the last fit."""
        n = len(self.history)
        if self._fitted and n - self.fitted_on < max(1, int(self.refit_fraction * n)):
            return
        self._fit_on(n)

    def _fit_on(self, n: int) -> None:
        usable = self._usable(n)
        x = self._encode([a for a, _ in usable])
        cols = []
        for o in self.problem.objectives:
            cols.append(normal_scores(np.array([o.minimised(float(r.metrics[o.name])) for _, r in usable])))
        for c in self.problem.constraints:
            g = np.array([constraint_gap(c, float(r.metrics[c.metric])) for _, r in usable])
            cols.append(g / (np.std(g) or 1.0))
        self._y = np.stack(cols, axis=1)
        self._feasible = np.all(self._y[:, len(self.problem.objectives):] <= 0, axis=1)
        self.model.fit(x, self._y, self.model_seed * 100_003 + n)
        self.fitted_on, self._fitted = n, True

    def _scores(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Acquisition value per architecture (higher is better)."""
        from scipy.stats import norm

        mean, epi, ale = self.model.predict(self._encode(archs))
        k = len(self.problem.objectives)
        pof = np.ones(len(archs))
        for j in range(k, mean.shape[1]):
            sd = np.sqrt(epi[:, j] ** 2 + ale[:, j] ** 2) + 1e-9
            pof *= norm.cdf(-mean[:, j] / sd)
        lcb = mean[:, :k] - self.kappa * epi[:, :k] - self.kappa_aleatoric * ale[:, :k]
        if k == 1:
            if self.acquisition == "ei":
                feas = self._y[self._feasible, 0]
                best = feas.min() if len(feas) else self._y[:, 0].max()
                sd = np.sqrt(epi[:, 0] ** 2 + ale[:, 0] ** 2) + 1e-9
                z = (best - mean[:, 0]) / sd
                return (sd * (z * norm.cdf(z) + norm.pdf(z))) * pof
            return -lcb[:, 0] - 3.0 * (1.0 - pof)
        return self._hvi(lcb, pof)

    def _hvi(self, lcb: np.ndarray, pof: np.ndarray) -> np.ndarray:
        """Hypervolume improvement of optimistic vectors over the feasible observed front (or -epsilon)."""
        k = lcb.shape[1]
        pts = self._y[self._feasible, :k] if self._feasible.any() else self._y[:, :k]
        front = pts[pareto_mask(pts)]
        ref = self._y[:, :k].max(axis=0) + 1.0
        base = hypervolume(front, ref)
        # additive epsilon: how much a candidate must improve in its worst column to escape domination
        eps = np.min(np.max(lcb[:, None, :] - front[None, :, :], axis=2), axis=1)
        out = np.empty(len(lcb))
        for i, p in enumerate(lcb):
            if eps[i] >= 0:
                out[i] = -eps[i]
            else:
                out[i] = hypervolume(np.vstack([front, p]), ref) - base
        return np.where(out > 0, out * pof, out - (1.0 - pof))

    def surrogate(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The current fit's mean, epistemic and aleatoric std per architecture and target (objectives in
        minimisation form as normal scores, then constraint gaps scaled by their std)."""
        self._fit()
        return self.model.predict(self._encode(archs))

    def _best_observed(self) -> list[Architecture]:
        usable = self._usable()
        if len(self.problem.objectives) == 1:
            order = sorted(range(len(usable)), key=lambda i: scalar_key(self.problem, usable[i][1]))
        else:
            ranks = pareto_ranks(self.problem, [r for _, r in usable])
            order = list(np.argsort(ranks, kind="stable"))
        return [usable[int(i)][0] for i in order[: self.n_starts]]

    def _optimise(self) -> Architecture:
        """Maximise the acquisition by local search from random samples and the best observed architectures."""
        self._fit()
        pool: dict[str, Architecture] = {}
        for _ in range(self.n_random):
            a = self.space.sample(self.rng)
            pool.setdefault(a.id, a)
        starts = self._best_observed()
        for s in starts:
            for nb in self.neighbours(s):
                pool.setdefault(nb.id, nb)
        scored: dict[str, float] = {}
        frontier = self._score_new(pool, scored)
        for _ in range(self.rounds):
            new: dict[str, Architecture] = {}
            for a in frontier:
                for nb in self.neighbours(a):
                    if nb.id not in scored:
                        new.setdefault(nb.id, nb)
            if not new:
                break
            pool.update(new)
            frontier = self._score_new(new, scored)
        for i in sorted(scored, key=lambda i: -scored[i]):  # stable: first of ties, deterministic
            if pool[i] not in self.known and scored[i] > -math.inf:
                return pool[i]
        return self._fresh()

    def _score_new(self, cands: Mapping[str, Architecture], scored: dict[str, float]) -> list[Architecture]:
        """Score `cands` into `scored`; return the best `n_starts` unseen ones (the next frontier)."""
        ids = [i for i in cands if i not in scored]
        if not ids:
            return []
        vals = self._scores([cands[i] for i in ids])
        if self._cheap is not None and self.problem.constraints:  # screened out: never picked, never expanded
            vals = np.where([self._passes_cheap(cands[i]) for i in ids], vals, -np.inf)
        for i, v in zip(ids, vals):
            scored[i] = float(v)
        order = np.argsort(-vals, kind="stable")
        out = []
        for j in order:
            a = cands[ids[int(j)]]
            if a not in self.known and vals[int(j)] > -np.inf:
                out.append(a)
                if len(out) >= self.n_starts:
                    break
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": [arch_record(a, r) for a, r in self.history],
                "asked": list(self.asked), "fitted_on": self.fitted_on if self._fitted else None,
                "model_seed": self.model_seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = [from_record(r) for r in state["history"]]
        self.asked = [dict(a) for a in state["asked"]]
        self.model_seed = int(state["model_seed"])
        self.known.clear()
        for a in [Architecture(a) for a in self.asked] + [a for a, _ in self.history]:
            self.known.add(a)
        self._fitted = False
        if state["fitted_on"] is not None:
            self._fit_on(int(state["fitted_on"]))
