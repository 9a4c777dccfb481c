"""The ask/tell contract every strategy follows, and the result record strategies are told."""

from __future__ import annotations

import logging
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

import numpy as np

from nas.errors import ConfigError, check_int
from nas.objectives import Problem
from nas.pareto import non_dominated_sort
from nas.spaces import Architecture, Space

log = logging.getLogger(__name__)

Status = Literal["ok", "failed", "infeasible"]
STATUSES: tuple[str, ...] = get_args(Status)


@dataclass(frozen=True)
class TrialResult:
    """What a strategy learns about one architecture: metrics, status, and whether it came from a cache."""

    metrics: Mapping[str, float] = field(default_factory=dict)
    status: Status = "ok"
    cached: bool = False

    def __post_init__(self) -> None:
        if self.status not in STATUSES:  # a misspelt "faild" was ranked as a success
            raise ConfigError(f"TrialResult.status: expected one of {', '.join(map(repr, STATUSES))}, "
                              f"got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": dict(self.metrics), "status": self.status, "cached": self.cached}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrialResult":
        return cls(dict(data["metrics"]), data["status"], bool(data.get("cached", False)))

    @classmethod
    def of(cls, status: str, metrics: Mapping[str, float]) -> "TrialResult":
        """What a strategy is told of a journaled trial, the same live and on replay: a failed trial's metrics
        (a NaN, a partial result) stay in the journal but are not told."""
        return cls(dict(metrics) if status != "failed" else {}, status)  # type: ignore[arg-type]


def judged(problem: Problem, arch: Architecture, result: TrialResult) -> TrialResult:
    """`result` as `nas.search` takes it: one not failed whose objective or constraint metric is NaN or infinite is
    failed, its metrics dropped (as `TrialResult.of` does), with a warning naming the metric; others unchanged. So a
    strategy driven by hand never ranks a NaN as a success or keeps one in its state."""
    if result.status == "failed":
        return result
    bad = problem.non_finite(result.metrics)
    if bad is None:
        return result
    log.warning("result of %s taken as failed (tell it with status=\"failed\"): %s", arch.id, bad)
    return TrialResult({}, "failed", result.cached)


def check_count(n: Any) -> int:
    """`ask`'s `n` as an int >= 0 (a numpy integer too); a ConfigError naming it otherwise (-1 gave [] silently)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ConfigError(f"ask: n (how many architectures to propose) must be an int >= 0, got {n!r}")
    return int(n)


def scalar_key(problem: Problem, result: TrialResult) -> tuple[float, float]:
    """Sort key for single-objective comparison (lower is better): (constraint violation, first objective)."""
    if result.status == "failed" or problem.objectives[0].name not in result.metrics:
        return (math.inf, math.inf)
    return (problem.violation(result.metrics), problem.vector(result.metrics)[0])


def on_front(problem: Problem, result: TrialResult) -> bool:
    """Whether `pareto_ranks` puts `result` on a Pareto front: not failed, feasible, every objective measured (the
    others rank after the fronts, by violation)."""
    return (result.status != "failed" and problem.feasible(result.metrics)
            and all(o.name in result.metrics for o in problem.objectives))


def pareto_ranks(problem: Problem, results: Sequence[TrialResult]) -> np.ndarray:
    """Constraint-domination rank per result (0 = best front): feasible fronts first, then by violation."""
    n = len(results)
    ranks = np.zeros(n, dtype=float)
    feas = [i for i, r in enumerate(results) if on_front(problem, r)]
    if feas:
        pts = np.array([problem.vector(results[i].metrics) for i in feas], dtype=float)
        for k, front in enumerate(non_dominated_sort(pts)):
            ranks[[feas[j] for j in front]] = k
    base = (ranks.max() + 1) if feas else 0.0
    fset = set(feas)
    infeasible = sorted((i for i in range(n) if i not in fset),
                        key=lambda i: scalar_key(problem, results[i])[0])
    for k, i in enumerate(infeasible):
        ranks[i] = base + k
    return ranks


ENUMERABLE = 20_000  # spaces up to this many architectures are listed once random draws stop finding new ones


def enumerable(space: Space) -> bool:
    """Whether `space` may be listed to find its last unseen architectures: a space that lists them anyway
    (capability `listed`, a table), or one of at most `ENUMERABLE` architectures."""
    if "listed" in space.capabilities:
        return True
    size = getattr(space, "size", None)
    return callable(size) and hasattr(space, "__iter__") and size() <= ENUMERABLE


class Unseen:
    """The last unseen architectures of an enumerable space, drawn uniformly once random draws stop finding any:
    so a search ends "exhausted" only when every architecture (every canonical class) was seen, not when 100
    draws happened to miss the last few. The listing is made on first need and kept (a cache, not state: the
    draws depend only on the rng and on what `unknown` accepts, so a resumed search draws the same)."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self._all: list[Architecture] | None = None
        self._pool: list[Architecture] = []  # the unknown ones at the last draw (what is seen stays seen)

    def draw(self, rng: np.random.Generator, unknown: Callable[[Architecture], bool]) -> Architecture | None:
        """A uniform pick among the architectures `unknown` accepts, None when there is none (or the space is
        too large to list); the whole listing is rescanned before answering None."""
        if self._all is None:
            if not enumerable(self.space):
                return None
            self._all = self._pool = list(self.space)
        pool = [a for a in self._pool if unknown(a)]
        if not pool and self._pool is not self._all:
            pool = [a for a in self._all if unknown(a)]
        self._pool = pool if pool else self._all
        return pool[int(rng.integers(len(pool)))] if pool else None

    @property
    def listed(self) -> bool:
        """Whether the space was listed (it is enumerable and a draw needed the listing)."""
        return self._all is not None

    def reset(self) -> None:
        """Forget the shrunken pool (what `unknown` accepts changed otherwise than by growing: a loaded state)."""
        if self._all is not None:
            self._pool = self._all


class SeenArchitectures:
    """The architectures a strategy asked or was told, by canonical key: what it must not propose again.

    The id is checked before the canonical key (which some spaces compute at a cost); keys are cached by id.
    """

    def __init__(self, space: Space) -> None:
        self.space = space
        self.ids: set[str] = set()
        self.keys: set[str] = set()
        self._key_of: dict[str, str] = {}  # arch id -> canonical key (a cache, not state)
        self._unseen = Unseen(space)

    def key(self, arch: Architecture) -> str:
        k = self._key_of.get(arch.id)
        if k is None:
            k = self._key_of[arch.id] = self.space.canonical_key(arch)
        return k

    def __contains__(self, arch: Architecture) -> bool:
        return arch.id in self.ids or self.key(arch) in self.keys

    def add(self, arch: Architecture) -> None:
        self.ids.add(arch.id)
        self.keys.add(self.key(arch))

    def clear(self) -> None:
        self.ids, self.keys = set(), set()
        self._unseen.reset()

    def fresh_sample(self, rng: np.random.Generator, tries: int = 100) -> Architecture:
        """A uniform sample not seen before: up to `tries` uniform redraws, then, on an enumerable space (a
        table, or at most `ENUMERABLE` architectures), a uniform pick among the unseen ones (`Unseen`), so the
        space is covered to its last architecture. A repeat only when every one is seen, or when a larger space's
        redraws all missed. The pick comes after the redraws, so draws that find an unseen one are unchanged."""
        arch = self.space.sample(rng)
        for _ in range(tries):
            if arch not in self:
                return arch
            arch = self.space.sample(rng)
        if arch in self:
            arch = self._unseen.draw(rng, lambda a: a not in self) or arch
        return arch


class Strategy(ABC):
    """Proposes architectures (`ask`) and learns from results (`tell`); state is plain data.

    Strategies must accept `tell` for architectures they did not ask (warm starts, replay, caches) and
    must never wait for a specific asked architecture: a wrapper may drop it.
    """

    name: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset({"sample"})
    # Whether `Deduplicate` may hand it an unknown architecture it did not ask for when it keeps proposing known
    # ones (False where what is asked is the method: successive halving's fidelity levels)
    explore_on_repeats: ClassVar[bool] = True

    def __init__(self, space: Space, problem: Problem, seed: int | None = 0) -> None:
        missing = self.requires - space.capabilities
        if missing:
            hint = ""
            if "independent-slots" in missing:
                subsets = sorted({s.name.split("@")[0] for s in space.slots() if "@" in s.name}) \
                    if callable(getattr(space, "slots", None)) else []
                hint = (f" (a Subset field{', ' + ', '.join(repr(n) for n in subsets) if subsets else ''}, whose picks "
                        "are one decision: use random, evolution, nsga2, local, bayesian, smbo or predictor-search)")
            if "fixed-slots" in missing:
                varying = space.varying_fields() if hasattr(space, "varying_fields") else []
                hint += (" (decisions that vary between architectures, which a sampler of fixed dimension cannot "
                         f"follow: {', '.join(varying) or 'some slots are optional'}; use tpe or evolution)")
            raise ConfigError(f"strategy {self.name or type(self).__name__!r} needs space capabilities "
                              f"{sorted(missing)}, which {type(space).__name__} lacks{hint}")
        self.space = space
        self.problem = problem
        # None: fresh entropy; any int >= 0 (numpy's too), even past torch's range (torch_seed wraps it for torch)
        self.rng = np.random.default_rng(None if seed is None else check_int(seed, "seed", 0))

    @abstractmethod
    def ask(self, n: int = 1) -> list[Architecture]:
        """Up to `n` architectures to evaluate next (fewer, even none, when the strategy is exhausted)."""

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        """Record the result of evaluating `arch` (every strategy's `tell` first calls `told`, and every `ask`
        `check_count`)."""
        self.told(arch, result)

    def told(self, arch: Architecture, result: TrialResult) -> TrialResult:
        """`check_told(arch)`, then `result` as the search takes it (`judged`: a NaN objective is a failure)."""
        self.check_told(arch)
        return judged(self.problem, arch, result)

    def check_told(self, arch: Architecture) -> None:
        """InvalidArchitectureError naming the field unless `arch` is an architecture of the space: `tell` refuses
        one the space cannot hold (a hand-written baseline with a typo) instead of keeping it as a parent and
        failing later inside `ask`."""
        self.space.validate(arch)

    def use_cheap(self, evaluate: Callable[[Architecture], Mapping[str, float]] | None) -> None:
        """Called by `nas.search` with its cheap (`nas.cheap`) evaluators; a strategy that can compute those
        metrics for candidates before asking (instead of predicting them) overrides this. Default: ignored."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: plain JSON-serialisable data, no live objects."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


TORCH_SEEDS = 2 ** 64  # torch.manual_seed takes [0, 2**64); nas.search takes any non-negative int


def torch_seed(seed: int | None) -> int:
    """`seed` (None: 0) reduced into torch's range: unchanged below 2**64, so runs recorded with such a seed replay
    exactly, while a larger one (2**70) no longer fails inside torch with "Overflow when unpacking long long"."""
    return 0 if seed is None else int(seed) % TORCH_SEEDS


def unknown_near(space: Space, arch: Architecture, rng: np.random.Generator,
                 unknown: Callable[[Architecture], bool], tries: int = 100,
                 unseen: Unseen | None = None) -> Architecture | None:
    """An architecture `unknown` accepts near `arch`: a random one of its neighbours (one decision away) where the
    space lists neighbours, else a uniform sample, else (after `tries` samples) a uniform pick among the unknown
    ones of an enumerable space (`unseen`, the caller's listing, kept across calls). None only when every
    architecture is known, or a space too large to list had no unknown one in `tries` samples. What a strategy
    converged on known architectures explores instead."""
    if "neighbours" in space.capabilities:
        near = [a for a in space.neighbours(arch) if unknown(a)]
        if near:
            return near[int(rng.integers(len(near)))]
    for _ in range(tries):
        sample = space.sample(rng)
        if unknown(sample):
            return sample
    return (unseen or Unseen(space)).draw(rng, unknown)


def arch_record(arch: Architecture, result: TrialResult) -> list[Any]:
    """[architecture dict, result dict]: how strategies store (arch, result) pairs in their state."""
    return [arch.to_dict(), result.to_dict()]


def from_record(record: Sequence[Any]) -> tuple[Architecture, TrialResult]:
    return Architecture(record[0]), TrialResult.from_dict(record[1])
