"""Audit fixes in nas.gym: deterministic digits-mlp training, checked fidelity levels, malformed constraints."""

from __future__ import annotations

import pytest
import torch

from nas.errors import ConfigError
from nas.gym import DigitsMLPTraining, Environment, applicability, digits_mlp_space, run_gym, training_environment
from nas.spaces import Choice, Space
from nas.strategies import STRATEGIES
from nas.strategies.base import Strategy

SMALL = {"depth": 1, "layers": [{"width": 16}], "act": "relu", "lr": 0.01}
BIG = {"depth": 3, "layers": [{"width": 128}] * 3, "act": "gelu", "lr": 0.03}


@pytest.fixture(scope="module")
def trainer() -> DigitsMLPTraining:
    return DigitsMLPTraining(epochs=1)


def test_digits_mlp_builds_every_layer_from_its_seed_whatever_was_built_before(trainer: DigitsMLPTraining) -> None:
    torch.manual_seed(123)
    first = trainer.build(SMALL).state_dict()
    trainer.build(BIG)
    torch.manual_seed(456)
    again = trainer.build(SMALL).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_digits_mlp_leaves_the_global_rng_untouched(trainer: DigitsMLPTraining) -> None:
    torch.manual_seed(7)
    state = torch.random.get_rng_state()
    trainer.build(BIG)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_digits_mlp_scores_an_architecture_the_same_after_another_was_trained() -> None:
    space = digits_mlp_space()
    a, b = space.validate(SMALL), space.validate(BIG)
    alone = DigitsMLPTraining(epochs=1)(a)["valid_acc"]
    later = DigitsMLPTraining(epochs=1)
    later(b)
    assert later(a)["valid_acc"] == alone


def test_training_environment_trains_fully_at_the_largest_level_in_any_order() -> None:
    env = training_environment(budget=2, levels=(9, 3, 1))
    assert env.fidelity == (1.0, 3.0, 9.0)
    assert env.evaluate.epochs == 9
    assert "for 9 epochs" in env.description


@pytest.mark.parametrize("levels", [(), (0, 3), (1, -3), (1.5, 3), (True, 3), (3, 3, 9), "139", 9])
def test_training_environment_refuses_bad_levels_naming_them(levels: object) -> None:
    with pytest.raises(ConfigError, match="levels"):
        training_environment(budget=2, levels=levels)  # type: ignore[arg-type]


def score(arch) -> dict[str, float]:
    return {"score": float(arch["x"]), "lat": 1.0}


def test_a_malformed_constraint_is_refused_when_the_environment_is_built() -> None:
    with pytest.raises(ConfigError, match="environment 'toy': constraint 'lat =< 2'"):
        Environment("toy", Space(x=Choice([0, 1, 2])), score, "score", constraints=("lat =< 2",), budget=3)


def test_one_constraint_may_be_given_as_a_string() -> None:
    env = Environment("toy", Space(x=Choice([0, 1, 2])), score, "score", constraints="lat <= 2", budget=3)
    assert env.constraints == ("lat <= 2",)


def test_run_gym_raises_a_malformed_constraint_before_running_anything() -> None:
    calls: list[int] = []

    def counted(arch) -> dict[str, float]:
        calls.append(1)
        return score(arch)

    good = Environment("good", Space(x=Choice([0, 1, 2])), counted, "score", budget=3)
    bad = Environment("toy", Space(x=Choice([0, 1, 2])), counted, "score", budget=3)
    bad.constraints = ("lat =< 2",)   # broken after construction
    with pytest.raises(ConfigError, match="lat =< 2"):
        run_gym([good, bad], ["random"], settings=1, seeds=1)
    assert calls == []


class Picky(Strategy):
    """A strategy that refuses every space at construction, for a reason unrelated to fidelity."""

    name = "picky"

    def __init__(self, space, problem, seed=0) -> None:
        raise ConfigError("strategy 'picky' refuses this space")

    def ask(self, n: int = 1) -> list:
        return []


def test_skip_reasons_mention_missing_fidelity_levels_only_where_they_are_the_reason(monkeypatch) -> None:
    monkeypatch.setitem(STRATEGIES, "picky", Picky)
    env = Environment("plain", Space(x=Choice([0, 1, 2])), score, "score")
    assert applicability(env, "picky") == (None, "strategy 'picky' refuses this space")
    space, why = applicability(env, "hyperband")
    assert space is None and why.endswith("(this environment has no fidelity levels)")
