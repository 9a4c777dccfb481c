"""The gym (session 38): plain strategies on a fidelity environment get the top level as given (an int for epochs),
as the multi-fidelity strategies do, so one `train(arch, budget)` that loops `range(budget)` serves all of them."""

from __future__ import annotations

from nas.gym import Environment, run_gym
from nas.spaces import Choice, Space

SPACE = Space(width=Choice([8, 16, 32]), depth=Choice([1, 2, 3]))


def test_every_strategy_gets_the_top_level_as_given():
    seen: list[object] = []

    def train(arch, budget):
        seen.append(budget)
        acc = 0.0
        for epoch in range(budget):  # epochs: an int, as the levels were given
            acc = (arch["width"] / 32 + arch["depth"] / 3) * (1 - 0.5 ** (epoch + 1))
        return {"accuracy": acc}

    env = Environment("toy-mf", SPACE, train, objective="accuracy", direction="max", budget=6, fidelity=(1, 3, 9))
    result = run_gym([env], ["random", "successive-halving"], settings=1, seeds=1)
    assert [r.error for r in result.runs] == [None, None]
    assert {type(b) for b in seen} == {int} and 9 in seen
