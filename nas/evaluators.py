"""The evaluator contract `evaluate(arch, budget=None) -> dict[str, float]`, cost classes and composition.

An evaluator that keeps state across evaluations (a weight store, a cache) may define
`begin(workdir, trials)`: `nas.search` calls it once per run, in the driver, before any evaluation, with
the search's workdir (None without one) and the trials already journaled there ([] for a new search), so
a resumed search can restore exactly what the journaled evaluations left. Executors that copy the
evaluator into workers (processes, Ray) copy it after `begin`. Evaluators without it work unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import ConfigError
from nas.spaces import Architecture
from nas.store import Trial


@dataclass(frozen=True)
class Evaluator:
    """A metric function with a cost class: cheap ones (params, FLOPs, LUT latency) run first."""

    fn: Callable[..., Mapping[str, float]]
    cheap: bool = False

    @property
    def takes_budget(self) -> bool:
        try:
            params = inspect.signature(self.fn).parameters
        except (TypeError, ValueError):
            return False
        return "budget" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())

    def __call__(self, arch: Architecture, budget: float | None = None) -> Mapping[str, float]:
        if budget is not None and self.takes_budget:
            return self.fn(arch, budget=budget)
        return self.fn(arch)

    def begin(self, workdir: Path | None, trials: Sequence[Trial]) -> None:
        """The search starts or resumes: `fn.begin(workdir, trials)` where `fn` defines it (else nothing)."""
        hook = getattr(self.fn, "begin", None)
        if callable(hook):
            hook(workdir, trials)


def cheap(fn: Callable[..., Mapping[str, float]]) -> Evaluator:
    """Mark `fn` as cheap: its metrics are computed, and constraints on them checked, before expensive ones."""
    return Evaluator(fn, cheap=True)


def as_evaluators(evaluate: Any) -> list[Evaluator]:
    """One callable, an Evaluator, or a list of them -> list of Evaluators (plain callables are expensive)."""
    items: Sequence[Any] = evaluate if isinstance(evaluate, (list, tuple)) else [evaluate]
    if not items:
        raise ConfigError("evaluate: give at least one evaluator")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Evaluator):
            out.append(item)
        elif callable(item):
            out.append(Evaluator(item))
        else:
            raise ConfigError(f"evaluate[{i}]: {item!r} is not callable")
    return out


def begin_search(evaluators: Sequence[Evaluator], workdir: Path | None, trials: Sequence[Trial]) -> None:
    """Call the `begin` hook of each distinct evaluator once (one object given twice is told once)."""
    seen: set[int] = set()
    for ev in evaluators:
        if id(ev.fn) not in seen:
            seen.add(id(ev.fn))
            ev.begin(workdir, trials)


TWICE = "is returned by two evaluators"  # how a clash reads in a failed evaluation's error: the search refuses it


def twice(metric: str, first: str, second: str) -> str:
    """The message of a metric two evaluators return (`nas.search` ends on it as a configuration error)."""
    return (f"metric {metric!r} {TWICE} ({first} and {second}); each metric must come from one of them, rename or "
            "drop one")


def merged(evaluators: Sequence[Evaluator], budget: float | None = None) -> Callable[[Architecture], dict[str, float]]:
    """One function returning the union of all evaluators' metrics (a metric given twice is an error)."""

    def run(arch: Architecture) -> dict[str, float]:
        out: dict[str, float] = {}
        source: dict[str, str] = {}
        for ev in evaluators:
            metrics = ev(arch, budget)
            name = repr(getattr(ev.fn, "__name__", ev.fn))
            if not isinstance(metrics, Mapping):
                raise TypeError(f"{name} returned {type(metrics).__name__}, expected a dict")
            for k, v in metrics.items():
                if k in out:
                    raise ValueError(twice(k, source[k], name))
                out[k], source[k] = v, name
        return out

    return run
