"""Strategies that converge on known architectures still cover a small space before a search ends "exhausted".

Successive halving and Hyperband ended "exhausted" after 50-80 of 84 base architectures (their inner strategy kept
proposing started ones and the search's fallback is off for them); a converged `rl` needed about 100 asks per new
evaluation and took the search's cached repeats as fresh rewards.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import nas
from nas.objectives import Problem
from nas.spaces import Choice, Conditional, Integer, Repeat, Space
from nas.strategies import Deduplicate, TrialResult, make_strategy
from nas.strategies.multifidelity import FidelitySpace

SPACE = Space(depth=Choice([1, 2]), blocks=Repeat(count="depth", k=Choice([3, 5, 7]), e=Choice([1, 2])),
              act=Choice(["relu", "gelu"]))  # 84 architectures
FS = FidelitySpace(SPACE, [1, 3, 9], field="epochs")
WIDE = Space(depth=Choice([1, 2]), blocks=Repeat(count="depth", k=Choice([3, 5, 7]), e=Choice([1, 2])),
             act=Choice(["relu", "gelu"]), drop=Choice([False, True]), rate=Conditional("drop", True, Integer(1, 2)))


def score(arch: Any) -> dict[str, float]:
    cap = sum(b["k"] * b["e"] for b in arch["blocks"])
    acc = 90 - 300 / (6 + cap) + (arch["act"] == "gelu") - 0.2 * arch.get("rate", 0)
    return {"acc": acc, "lat": 1 + 0.05 * cap}


def train(arch: Any, budget: float) -> dict[str, float]:
    """Low fidelity keeps the ranking: an inner strategy converges on the same few architectures."""
    return {"acc": score(arch)["acc"] - 5.0 / budget}


def counted(strategy: Any) -> dict[str, int]:
    """Count the strategy's asks and the cached repeats it is told (instance attributes wrap its methods)."""
    counts = {"asks": 0, "cached": 0}
    ask, tell = strategy.ask, strategy.tell

    def counting_ask(n: int = 1) -> Any:
        counts["asks"] += 1
        return ask(n)

    def counting_tell(arch: Any, result: TrialResult) -> None:
        counts["cached"] += result.cached
        tell(arch, result)

    strategy.ask, strategy.tell = counting_ask, counting_tell
    return counts


# ---------------------------------------------------------------- successive halving, hyperband
@pytest.mark.parametrize("strategy", ["successive-halving", "hyperband"])
@pytest.mark.parametrize("inner", ["evolution", "nsga2"])
def test_multi_fidelity_sees_every_base_architecture_before_it_ends_exhausted(strategy, inner):
    """Before: successive-halving over evolution stopped "exhausted" after 79-90 trials with 50-56 of 84 seen."""
    r = nas.search(FS, FS.evaluator(train), {"acc": "max"}, strategy=strategy, strategy_options={"inner": inner},
                   budget=3 * SPACE.size(), seed=0)
    seen = {FS.strip(t.arch).id for t in r.trials}
    assert r.stop_reason == "budget" or len(seen) == SPACE.size(), (r.stop_reason, len(r.trials), len(seen))
    assert len({t.arch_id for t in r.trials}) == len(r.trials)  # no (architecture, level) evaluated twice


def test_successive_halving_starts_what_it_explores_at_the_lowest_level_and_keeps_the_rungs():
    r = nas.search(FS, FS.evaluator(train), {"acc": "max"}, strategy="successive-halving",
                   strategy_options={"inner": "evolution"}, budget=3 * SPACE.size(), seed=1)
    levels = [t.arch["epochs"] for t in r.trials]
    assert r.stop_reason == "exhausted" and levels.count(1) == SPACE.size()  # before: 50-56 of 84
    assert levels.count(3) >= SPACE.size() // 3 and levels.count(9) >= SPACE.size() // 9  # eta = 3: k of 3k move up
    started = {}
    for t in r.trials:  # every architecture reached a level only after it was evaluated one level below
        started.setdefault(FS.strip(t.arch).id, []).append(t.arch["epochs"])
    assert all(lv == [1, 3, 9][:len(lv)] for lv in started.values())


def drive(strategy: Deduplicate, steps: int) -> list[str]:
    """Ask one, tell it, `steps` times (fewer when the strategy has nothing new): the ids asked."""
    ids = []
    for _ in range(steps):
        asked = strategy.ask(1)
        if not asked:
            break
        strategy.tell(asked[0], TrialResult(FS.evaluator(train)(asked[0])))
        ids.append(asked[0].id)
    return ids


def test_successive_halving_resumes_exactly_once_it_explores():
    problem = Problem.make({"acc": "max"})
    a = Deduplicate(make_strategy("successive-halving", FS, problem, 3, inner="evolution"))
    first = drive(a, 90)
    assert a.inner.repeats >= a.inner.repeat_patience  # the inner strategy converged: SH draws unknown ones
    state = json.loads(json.dumps(a.state_dict()))  # plain data
    b = Deduplicate(make_strategy("successive-halving", FS, problem, 3, inner="evolution"))
    b.load_state_dict(state)
    rest = drive(a, 25)
    assert rest == drive(b, 25) and len(rest) == 25 and len(set(first + rest)) == 115  # before: none left after 79


# ---------------------------------------------------------------- rl
def test_rl_does_not_take_a_cached_repeat_as_a_reward():
    s = make_strategy("rl", SPACE, Problem.make({"acc": "max"}), seed=0, batch_size=2)
    arch = s.ask(1)[0]
    s.tell(arch, TrialResult(score(arch)))
    before = json.dumps(s.state_dict(), sort_keys=True)
    s.tell(arch, TrialResult(score(arch), cached=True))  # what the search's cache answers a repeat with
    assert json.dumps(s.state_dict(), sort_keys=True) == before  # no utility, no batch entry, no update


@pytest.mark.parametrize("space,options,budget", [(SPACE, {"lr": 0.5, "batch_size": 5}, 60), (WIDE, {}, 130)])
def test_a_converged_rl_policy_proposes_a_new_architecture_with_each_ask(space, options, budget):
    """Before: 4,156 asks for 60 evaluations (lr=0.5), 3,810 for 130 with the defaults on 252 architectures."""
    s = make_strategy("rl", space, Problem.make({"acc": "max", "lat": "min"}), seed=0, **options)
    counts = counted(s)
    r = nas.search(space, score, {"acc": "max", "lat": "min"}, strategy=s, budget=budget, seed=0)
    assert r.stop_reason == "budget" and len(r.trials) == budget
    assert counts["asks"] <= budget + 5 and counts["cached"] <= 5


def test_rl_covers_a_small_space_and_resumes_exactly_once_it_explores():
    problem = Problem.make({"acc": "max"})
    a = make_strategy("rl", SPACE, problem, 4, lr=0.5, batch_size=5)

    def steps(s: Any, n: int) -> list[str]:
        ids = []
        for _ in range(n):
            arch = s.ask(1)[0]
            s.tell(arch, TrialResult(score(arch)))
            ids.append(arch.id)
        return ids

    first = steps(a, 50)
    b = make_strategy("rl", SPACE, problem, 4, lr=0.5, batch_size=5)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    rest = steps(a, SPACE.size() - 50)
    assert rest == steps(b, SPACE.size() - 50)
    assert len(set(first + rest)) == SPACE.size()  # every architecture once, though the policy converged
