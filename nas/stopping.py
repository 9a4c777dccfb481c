"""Stop rules: end a search before its budget once more evaluations are not worth it (Optuna's `study.stop()` in a
callback, Ray Tune's plateau stoppers).

`nas.search(..., stop_when=rule)` asks `rule(result)` after each evaluation; when it says yes, no new evaluation is
started, the ones running finish, and the search ends with `stop_reason` "stop_when: <the rule>" (of an `AnyOf`, the
rule or rules that held, joined by "; "). `NoImprovement` and `Target` judge the results `best()` ranks: completed,
feasible and, of a multi-fidelity search, at the top level (`SearchResult.feasible_with`). A rule is
`NoImprovement`, `Target`, or any callable taking the `SearchResult` so far and returning a bool. It applies to the
run it is given to: it is not journaled, so `nas resume` without it continues to the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import ConfigError
from nas.objectives import Constraint
from nas.pareto import extend_front

if TYPE_CHECKING:
    from nas.result import SearchResult
    from nas.store import Trial

StopRule = Callable[["SearchResult"], bool]
PREFIX = "stop_when: "  # how the journal's stop reason of a search its rule ended begins


@dataclass
class _Progress:
    """What a rule has read of a search's trials: how many, the last one read (to tell the same search growing
    from another one), and the rule's running state."""

    read: int = 0
    last: Any = None
    state: Any = None


def _unread(memo: dict[str, _Progress], result: "SearchResult", start: Callable[[], Any]) -> tuple[_Progress, list]:
    """The rule's progress on `result` and its trials not read yet: a search asks after each evaluation, so each
    trial is read once (a different or shorter trial list starts over)."""
    p = memo.get("p")
    trials = result.trials
    if p is None or p.read > len(trials) or (p.read and trials[p.read - 1] is not p.last):
        p = memo["p"] = _Progress(state=start())
    new = trials[p.read:]
    if new:
        p.read, p.last = len(trials), trials[-1]
    return p, new


def _results(result: "SearchResult", trials: list["Trial"]) -> set[int]:
    """The numbers of those of `trials` (the ones not read yet) that count as results of the search: feasible and, of
    a multi-fidelity search, at the top level (`SearchResult.feasible_with`, which best() and the front rank), as a
    lower level's metrics are a shorter training's."""
    return {t.number for t in replace(result, trials=trials).feasible_with(())}


@dataclass(frozen=True)
class NoImprovement:
    """Stop after `patience` evaluations in a row without a feasible result that improves the front: with one
    objective, a value better than the best so far by more than `min_delta`; with several, a point no earlier
    feasible result weakly dominates (`min_delta` applies to one objective: a search with several refuses one above
    0). Failed evaluations and evaluated ones that break a constraint count towards
    the patience; proposals rejected on cheap metrics spend no budget and do not. Of a multi-fidelity search only
    top-level results can improve the front; evaluations at the lower levels count towards the patience."""

    patience: int
    min_delta: float = 0.0
    _memo: dict[str, _Progress] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.patience, int) or isinstance(self.patience, bool) or self.patience < 1:
            raise ConfigError(f"NoImprovement: patience must be an int >= 1, got {self.patience!r}")
        if isinstance(self.min_delta, bool) or not isinstance(self.min_delta, (int, float)) \
                or not np.isfinite(self.min_delta) or self.min_delta < 0:
            raise ConfigError(f"NoImprovement: min_delta must be a finite number >= 0, got {self.min_delta!r}")

    def stale(self, result: "SearchResult") -> int:
        """Evaluations since the last one that improved the front (every evaluation if none did)."""
        problem = result.problem
        if self.min_delta and len(problem.names) > 1:  # `check_rule` refuses it where a search starts
            raise ConfigError(min_delta_error(self, problem.names))
        progress, new = _unread(self._memo, result, lambda: ([], 0))
        front, stale = progress.state
        results = _results(result, new)
        for t in new:
            stale += t.is_evaluation  # a cheap rejection spends no budget; a re-checked copy was counted once
            if t.number not in results:
                continue
            v = np.asarray(problem.vector(t.metrics), dtype=float)
            if len(v) == 1:  # one objective: better by more than min_delta
                if front and not v[0] < front[0][0] - self.min_delta:
                    continue
                front[:] = [v]
            elif not extend_front(front, v):
                continue
            stale = 0
        progress.state = (front, stale)
        return stale

    def __call__(self, result: "SearchResult") -> bool:
        return self.stale(result) >= self.patience

    def __str__(self) -> str:
        delta = f" by more than {self.min_delta:g}" if self.min_delta else ""
        return f"no improvement{delta} in the last {self.patience} evaluations"


@dataclass(frozen=True)
class Target:
    """Stop once one feasible result meets every condition, e.g. `Target("valid_acc >= 0.95", "latency_ms <= 5")`; of
    a multi-fidelity search, a result at the top level."""

    conditions: tuple[Constraint, ...] = field(default=())
    _memo: dict[str, _Progress] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __init__(self, *conditions: str | Constraint) -> None:
        if not conditions:
            raise ConfigError("Target: give at least one condition, e.g. Target('valid_acc >= 0.95')")
        parsed = tuple(c if isinstance(c, Constraint) else Constraint.parse(c) for c in conditions)
        object.__setattr__(self, "conditions", parsed)
        object.__setattr__(self, "_memo", {})

    def __call__(self, result: "SearchResult") -> bool:
        progress, new = _unread(self._memo, result, lambda: False)
        results = _results(result, new) if new and not progress.state else set()
        progress.state = progress.state or any(
            t.number in results and all(c.metric in t.metrics and c.satisfied(t.metrics) for c in self.conditions)
            for t in new)
        return progress.state

    def __str__(self) -> str:
        return "target reached: " + " and ".join(map(str, self.conditions))


@dataclass(frozen=True)
class AnyOf:
    """Stop as soon as one of `rules` holds (e.g. a patience and a target together). Every rule is asked each time,
    so `held` names each one that held at the last call: the search's stop reason names those (`reason`), not the
    rules that could not have ended it."""

    rules: tuple[StopRule, ...]
    _held: list[StopRule] = field(default_factory=list, init=False, repr=False, compare=False)

    def __call__(self, result: "SearchResult") -> bool:
        self._held[:] = [rule for rule in self.rules if rule(result)]
        return bool(self._held)

    @property
    def held(self) -> list[StopRule]:
        """The rules that held when the rule was last asked (none: it did not hold, or was never asked)."""
        return list(self._held)

    def __str__(self) -> str:
        return " or ".join(describe(rule).removeprefix(PREFIX) for rule in self.rules)


def from_settings(stop_after: int | None, stop_at: Sequence[str] | None) -> StopRule | None:
    """The rule `nas run --stop-after N --stop-at COND` (or a run file's `stop_after`, `stop_at`) asks for; a bad
    value is a ConfigError naming the setting."""
    rules: list[StopRule] = []
    try:
        if stop_after is not None:
            rules.append(NoImprovement(stop_after))
    except ConfigError as e:
        raise ConfigError(f"stop_after: {e}") from None
    try:
        if stop_at:
            rules.append(Target(*stop_at))
    except ConfigError as e:
        raise ConfigError(f"stop_at: {e}") from None
    return None if not rules else rules[0] if len(rules) == 1 else AnyOf(tuple(rules))


def min_delta_error(rule: NoImprovement, objectives: Sequence[str]) -> str:
    """Why `rule`'s min_delta is refused in a search of several `objectives`: any new Pareto point improves the
    front however small, so it would be ignored while the stop reason names it."""
    return (f"stop_when: NoImprovement(min_delta={rule.min_delta:g}) applies to one objective only, and this search "
            f"has {len(objectives)} ({', '.join(objectives)}), where any new Pareto point counts as an improvement; "
            "drop min_delta (NoImprovement(patience) alone)")


def check_rule(rule: Any, metrics: Sequence[str], objectives: Sequence[str] = ()) -> StopRule | None:
    """`rule` if it can be asked: a callable, and so is every rule inside an `AnyOf`; a `Target` must name recorded
    metrics (objectives or constraints); a `NoImprovement` with min_delta > 0 needs one objective (`objectives`,
    the search's: checked when given). Refused before the search writes anything."""
    if rule is None:
        return None
    for where, leaf in _leaves(rule, "stop_when"):
        if not callable(leaf):
            raise ConfigError(f"{where}: expected NoImprovement(...), Target(...) or a callable (result) -> bool, "
                              f"got {leaf!r}")
        if isinstance(leaf, Target):
            unknown = [c.metric for c in leaf.conditions if c.metric not in metrics]
            if unknown:
                raise ConfigError(f"stop_when: Target names {unknown[0]!r}, which is not an objective or constraint "
                                  f"metric of this search ({', '.join(metrics)})")
        if isinstance(leaf, NoImprovement) and leaf.min_delta and len(objectives) > 1:
            raise ConfigError(min_delta_error(leaf, objectives))
    return rule


def _leaves(rule: Any, where: str) -> list[tuple[str, Any]]:
    """The rules inside `rule` with where each is (`stop_when.rules[1]`), through nested `AnyOf`s, so that each is
    checked as the top-level rule is."""
    if not isinstance(rule, AnyOf):
        return [(where, rule)]
    if not isinstance(rule.rules, (tuple, list)):
        raise ConfigError(f"{where}.rules: expected a tuple of rules, e.g. AnyOf((NoImprovement(20), "
                          f"Target('accuracy >= 0.9'))), got {rule.rules!r}")
    return [leaf for i, r in enumerate(rule.rules) for leaf in _leaves(r, f"{where}.rules[{i}]")]


def describe(rule: StopRule) -> str:
    """How a stop rule reads: PREFIX and the rule (every rule of an `AnyOf`)."""
    text = str(rule) if isinstance(rule, (NoImprovement, Target, AnyOf)) else getattr(rule, "__name__",
                                                                                       type(rule).__name__)
    return PREFIX + text


def reason(rule: StopRule) -> str:
    """The journal's stop reason of a search `rule` ended: `describe(rule)`, but an `AnyOf` that held names only the
    rule(s) that held, joined by "; " (README: the stop reason says which rule held)."""
    def held(r: StopRule) -> str:
        if isinstance(r, AnyOf) and r.held:
            return "; ".join(held(h) for h in r.held)
        return describe(r).removeprefix(PREFIX)

    return PREFIX + held(rule)


def rule_met(stop_reason: str | None) -> str | None:
    """The rule a search's stop reason says ended it (the user's "done"), else None."""
    return stop_reason.removeprefix(PREFIX) if stop_reason and stop_reason.startswith(PREFIX) else None
