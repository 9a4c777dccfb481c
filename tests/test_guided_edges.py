"""Edges of predictor-guided search and of the end-to-end latency model found by checking them from outside:
an empty ask at the end of a used-up space, pretrained predictors without a proxy, predictor option errors,
the latency model's ranking test and its settings."""

from __future__ import annotations

import importlib
import math
import warnings

import numpy as np
import pytest

import nas
from nas.errors import ConfigError
from nas.hardware import DegenerateFitError, EndToEndLatency, LatencyFitWarning
from nas.objectives import Problem
from nas.spaces import Choice, Integer, Space
from nas.strategies import Deduplicate, Strategy, TrialResult, make_strategy
from nas.strategies.predictor_search import PredictorSearch


class _Silent(Strategy):
    """Proposes nothing at all: a strategy whose own record says every architecture is known."""

    name = "silent"

    def ask(self, n: int = 1) -> list:
        return []

    def tell(self, arch, result) -> None:
        pass


def test_an_empty_ask_on_a_fully_known_listed_space_is_exhausted() -> None:
    space = Space(a=Choice([0, 1, 2]), b=Choice([0, 1]))
    dedup = Deduplicate(_Silent(space, Problem.make({"s": "max"})), max_rounds=3)
    archs = list(space)
    for arch in archs[:-1]:
        dedup.claim(arch)
        dedup.tell(arch, TrialResult({"s": 1.0}))
    assert dedup.ask(1) == [] and not dedup.exhausted  # one architecture is still unknown
    dedup.claim(archs[-1])
    assert dedup.ask(1) == [] and dedup.exhausted  # the last one is in flight: nothing is left to ask for
    dedup.tell(archs[-1], TrialResult({"s": 1.0}))
    assert dedup.ask(1) == [] and dedup.exhausted


def test_predictor_search_stops_exhausted_right_after_a_used_up_space(monkeypatch) -> None:
    monkeypatch.setattr(importlib.import_module("nas.search"), "MAX_REJECTIONS", 50)  # before the fix: 50 x 100 inner asks after the end
    space = Space({f"x{i}": Choice([0, 1, 2], ordered=False) for i in range(3)})  # 27 architectures
    lat = nas.cheap(lambda a: {"lat": float(a["x0"] + a["x1"])})  # 18 meet lat <= 2
    asks = {"after": 0}
    original = PredictorSearch.ask

    def counting(self, n=1):
        if len(self.known.keys) >= 27:
            asks["after"] += 1
        return original(self, n)

    monkeypatch.setattr(PredictorSearch, "ask", counting)

    def score(a):
        return {"s": float(sum(a.values()))}

    r = nas.search(space, [lat, score], {"s": "max"}, constraints=["lat <= 2"], strategy="predictor-search",
                   strategy_options={"population_size": 8, "generations": 2, "n_init": 4}, budget=100, seed=0)
    assert r.stop_reason == "exhausted"
    assert sum(t.status == "ok" for t in r.trials) == 18 and len(r.trials) == 27
    assert asks["after"] <= 100  # one de-duplicating ask (its max_rounds), not MAX_REJECTIONS of them


# ------------------------------------------------------------------------------------- predictor options
SPACE = Space({f"x{i}": Choice([0, 1, 2, 3], ordered=False) for i in range(4)})
PROBLEM = Problem.make({"acc": "max"})


def test_a_pretrained_predictor_without_proxy_is_refused_when_the_strategy_is_made() -> None:
    with pytest.raises(ConfigError, match="mlp-pretrained.*proxy.*strategy instance"):
        make_strategy("predictor-search", SPACE, PROBLEM, seed=0, predictor="mlp-pretrained")
    made = make_strategy("predictor-search", SPACE, PROBLEM, seed=0, predictor="mlp-pretrained",
                         predictor_options={"proxy": lambda a: float(a["x0"]), "pretrain_size": 10})
    assert made.predictor_name == "mlp-pretrained"


def test_gcn_pretrained_without_proxy_is_refused_too() -> None:
    from nas.spaces.cell import NasBench201Space

    space = NasBench201Space(channels=4, cells_per_stage=1, stages=2)
    with pytest.raises(ConfigError, match="gcn-pretrained.*proxy"):
        make_strategy("predictor-search", space, PROBLEM, seed=0, predictor="gcn-pretrained")


def test_a_seed_in_predictor_options_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="predictor_options.*'seed'.*strategy's seed"):
        make_strategy("predictor-search", SPACE, PROBLEM, seed=0, predictor="rf", predictor_options={"seed": 3})


def test_a_function_in_strategy_options_given_by_name_is_refused_naming_it() -> None:
    """It failed as 'config: not plain JSON data', naming neither the option nor the way out."""
    def proxy(arch):
        return 0.0

    with pytest.raises(ConfigError, match=r"strategy_options.predictor_options: not plain JSON .* pass an instance"):
        nas.search(SPACE, lambda a: {"acc": 1.0}, {"acc": "max"}, strategy="predictor-search", budget=2,
                   strategy_options={"predictor": "mlp-pretrained", "predictor_options": {"proxy": proxy}})


# ------------------------------------------------------------------------------------- end-to-end latency
LAT_SPACE = Space(w=Choice([16, 32, 64, 128]), d=Integer(1, 6), k=Choice([3, 5, 7]), act=Choice(["relu", "gelu"]))


def _exact(a) -> float:
    return 0.2 + 0.01 * a["w"] * a["d"] * (a["k"] / 3) + (0.3 if a["act"] == "gelu" else 0.0)


def _distinct(seed: int, n: int) -> list:
    rng = np.random.default_rng(seed)
    return list({a.id: a for a in (LAT_SPACE.sample(rng) for _ in range(400))}.values())[:n], rng


def test_noise_latencies_that_chance_ranks_above_a_fixed_tau_are_refused() -> None:
    archs, rng = _distinct(0, 40)
    noise = rng.lognormal(0, 0.3, 40)  # unrelated to the architectures; a fixed tau of 0.05 accepted this draw
    model = EndToEndLatency(LAT_SPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatencyFitWarning)
        with pytest.raises(DegenerateFitError, match="does not rank the samples.*one-sided p.*40 samples"):
            model.fit(archs, noise)
    assert model.chosen is None and all(c.cv_tau_p >= 0.05 or c.cv_tau <= 0.05 for c in model.cv.values())


def test_exact_latencies_at_small_n_are_fitted_by_a_candidate_that_ranks() -> None:
    archs, _ = _distinct(1, 11)
    model = EndToEndLatency(LAT_SPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatencyFitWarning)  # an unseen value below is an extrapolation: warned
        model.fit(archs, [_exact(a) for a in archs])  # refused before: the lowest-MAPE candidate did not rank
        assert model.latency_ms({"w": 128, "d": 6, "k": 7, "act": "gelu"}) > \
            model.latency_ms({"w": 16, "d": 1, "k": 3, "act": "relu"})
    lowest = min(model.cv.values(), key=lambda c: c.cv_mape)
    chosen = model.cv[model.chosen]
    assert lowest.name != chosen.name and chosen.cv_tau > 0.05 and chosen.cv_tau_p < 0.05


@pytest.mark.parametrize("setting, value", [("min_tau", math.nan), ("max_mape", math.nan),
                                            ("outlier_factor", math.nan), ("min_tau", 1.0), ("max_mape", 0),
                                            ("batch_size", 0), ("batch_size", 1.5), ("seed", -1), ("seed", None),
                                            ("seed", 2**32)])
def test_latency_model_settings_are_checked_naming_them(setting, value) -> None:
    with pytest.raises(ConfigError, match=f"^{setting}: "):
        EndToEndLatency(LAT_SPACE, **{setting: value})
