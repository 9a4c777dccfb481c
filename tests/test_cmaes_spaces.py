"""cmaes and spaces whose decisions vary: Optuna's CMA-ES searches a fixed number of dimensions, so it refuses a
space whose active decisions change between architectures (a `Repeat` whose count is a field, a `Conditional`)."""

from __future__ import annotations

import pytest

import nas
from nas.errors import ConfigError
from nas.gym import Environment, applicability
from nas.objectives import Problem
from nas.spaces import Choice, Conditional, Integer, Repeat, Space
from nas.strategies import TrialResult, make_strategy

PROBLEM = Problem.make({"acc": "max"})
DEPTH = Space(depth=Choice([1, 2, 3]), layers=Repeat("depth", width=Choice([16, 32, 64]), k=Integer(1, 4)),
              lr=Choice([0.001, 0.01, 0.1]))
FIXED = Space(layers=Repeat(3, width=Choice([16, 32, 64]), k=Integer(1, 4)), lr=Choice([0.001, 0.01, 0.1]))
ONE_DEPTH = Space(depth=Choice([2]), layers=Repeat("depth", width=Choice([16, 32, 64]), k=Integer(1, 4)))
CONDITIONAL = Space(op=Choice(["a", "b"]), extra=Conditional("op", "a", Integer(1, 8)), w=Choice([1, 2, 3]))
NESTED = Space(stages=Repeat(2, depth=Choice([1, 2]), blocks=Repeat("depth", k=Choice([3, 5, 7]))),
               w=Choice([1, 2, 3]))


def acc(arch) -> dict[str, float]:
    return {"acc": float(sum(b["width"] * b["k"] for b in arch["layers"]))}


def run(strategy, steps: int) -> list:
    archs = []
    for _ in range(steps):
        (a,) = strategy.ask(1)
        strategy.tell(a, TrialResult(acc(a)))
        archs.append(a)
    return archs


@pytest.mark.parametrize("options", [{}, {"with_margin": True}, {"use_separable_cma": True}])
def test_cmaes_refuses_a_depth_dependent_space_naming_the_field(options):
    """Before: CMA-ES accepted it; with_margin then crashed mid-search (a generation asked at one dimension is
    told to an optimizer of another: "inhomogeneous shape"), and without it the optimizer restarted or fell back
    to random sampling whenever the decisions common to all trials changed."""
    with pytest.raises(ConfigError) as e:
        make_strategy("cmaes", DEPTH, PROBLEM, 0, sampler_options=options)
    msg = str(e.value)
    assert "strategy 'cmaes' needs space capabilities ['fixed-slots']" in msg
    assert "'layers' (1-3 blocks, count field 'depth')" in msg
    assert "use tpe or evolution" in msg


def test_cmaes_refuses_conditional_and_nested_varying_fields():
    with pytest.raises(ConfigError, match=r"'extra' \(a Conditional on 'op'\)"):
        make_strategy("cmaes", CONDITIONAL, PROBLEM, 0)
    with pytest.raises(ConfigError, match=r"'stages\[0\].blocks' \(1-2 blocks, count field 'stages\[0\].depth'\), "
                                          r"'stages\[1\].blocks'"):
        make_strategy("cmaes", NESTED, PROBLEM, 0)


@pytest.mark.parametrize("space", [DEPTH, CONDITIONAL, NESTED])
def test_fixed_slots_is_what_the_slots_say(space):
    """The capability and the fields named agree with the encoding: no slot is optional exactly when fixed."""
    assert "fixed-slots" not in space.capabilities
    assert any(s.optional for s in space.slots()) and space.varying_fields()
    for fixed in (FIXED, ONE_DEPTH, Space(w=Choice([1, 2]))):
        assert "fixed-slots" in fixed.capabilities
        assert not any(s.optional for s in fixed.slots()) and fixed.varying_fields() == []


@pytest.mark.parametrize("options", [{}, {"with_margin": True}])
def test_cmaes_searches_a_fixed_depth_space_relatively(options):
    strategy = make_strategy("cmaes", FIXED, PROBLEM, 0, sampler_options=options)
    archs = run(strategy, 30)
    assert all(FIXED.validate(a) == a for a in archs)
    relative = [t for t in strategy.study.trials if any(k.endswith("generation") for k in t.system_attrs)]
    assert len(relative) >= 25  # CMA-ES proposes, not the independent fallback sampler
    make_strategy("cmaes", ONE_DEPTH, PROBLEM, 0).ask(1)  # a count field with one option does not vary


def test_other_optuna_samplers_still_follow_a_varying_depth():
    for name in ("tpe", "qmc"):
        strategy = make_strategy(name, DEPTH, PROBLEM, 0)
        assert {a["depth"] for a in run(strategy, 12)} > {1}


def test_the_gym_skips_cmaes_where_the_depth_varies():
    env = Environment("depth", DEPTH, acc, "acc")
    space, why = applicability(env, "cmaes")
    assert space is None and "fixed-slots" in why
    assert applicability(Environment("fixed", FIXED, acc, "acc"), "cmaes") == (FIXED, "")
    r = nas.search(FIXED, acc, {"acc": "max"}, strategy="cmaes", budget=8, seed=0)
    assert len(r.completed) == 8
