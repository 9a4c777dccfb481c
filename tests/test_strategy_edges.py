"""Strategies at their edges, found by checking them on problems with known answers: a space used up under a
cheap constraint, infinite option values, and a study whose strategy waits for pending results."""

from __future__ import annotations


import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.spaces import Choice, Conditional, Integer, Repeat, Space
from nas.strategies.wrappers import Deduplicate

SPACE = Space(depth=Choice([1, 2]), blocks=Repeat(count="depth", k=Choice([3, 5, 7]), e=Choice([1, 2])),
              act=Choice(["relu", "gelu"]), drop=Choice([False, True]), rate=Conditional("drop", True, Integer(1, 2)))


def cap(a) -> int:
    return sum(b["k"] * b["e"] for b in a["blocks"])


def acc(a) -> dict[str, float]:
    return {"acc": 90 - 300 / (6 + cap(a)) + (a["act"] == "gelu") - 0.2 * a.get("rate", 0), "lat": 1 + 0.05 * cap(a)}


def test_a_search_whose_space_is_used_up_under_a_cheap_constraint_ends_at_once(monkeypatch):
    """An empty ask was retried up to 1,000 times (each a full de-duplicated ask) as if a cheap rejection: a
    252-architecture tpe search ran for minutes after its last trial."""
    asks = []
    real = Deduplicate.ask
    monkeypatch.setattr(Deduplicate, "ask", lambda self, n=1: (asks.append(n), real(self, n))[1])
    lat = nas.cheap(lambda a: {"lat": 1 + 0.05 * cap(a)})
    result = nas.search(SPACE, [lat, lambda a: {"acc": acc(a)["acc"]}], {"acc": "max"}, constraints=["lat <= 2.2"],
                        strategy="random", budget=300, seed=0)
    assert result.stop_reason == "exhausted" and len({t.arch_id for t in result.trials}) == SPACE.size() == 252
    assert len(asks) < 300  # one ask per architecture and a few more, not a thousand retries


@pytest.mark.parametrize("strategy, option", [("bayesian", "kappa"), ("smbo", "kappa"), ("rl", "lr")])
def test_an_infinite_option_is_refused_naming_it(strategy, option):
    """It failed later as 'config: not plain JSON data', naming neither the option nor strategy_options."""
    with pytest.raises(ConfigError, match=f"strategy '{strategy}': option {option} must be a finite number"):
        nas.search(SPACE, acc, {"acc": "max"}, strategy=strategy, budget=2,
                   strategy_options={option: float("inf")})


def test_a_study_whose_strategy_waits_for_pending_results_says_so(tmp_path):
    """ask() returned None with results pending, like a finished study, though the next ask had new work; nas ask
    exited 3 ('nothing is left', which ends a job script's loop)."""
    kw = dict(strategy="nsga2", budget=252, seed=0, strategy_options={"population_size": 6})  # waits near the end
    waited = 0
    with nas.Study(SPACE, {"acc": "max", "lat": "min"}, workdir=tmp_path / "py", **kw) as study:
        while True:  # four jobs on a queue, as in the README
            jobs = [study.ask() for _ in range(4)]
            if None in jobs and study.waiting:
                waited += 1
                assert study.pending and study.result().stop_reason == "running"
            for a in study.pending:
                study.tell(a, acc(a))
            if None in jobs and not study.waiting and study.ask() is None:
                break
        assert study.used == 252 and not study.waiting
    assert waited



def test_nas_ask_exits_5_when_the_study_waits_for_pending_results(tmp_path, monkeypatch):
    """The shell's side of `Study.waiting` (each `nas ask` reopens the study, which may restore it past the wait, so
    the state is set directly here)."""
    wd = str(tmp_path)
    with nas.Study(SPACE, {"acc": "max", "lat": "min"}, strategy="nsga2", budget=20, seed=0, workdir=wd) as study:
        study.ask()
    monkeypatch.setattr(nas.Study, "ask", lambda self: None)
    monkeypatch.setattr(nas.Study, "waiting", property(lambda self: True))
    out = CliRunner().invoke(app, ["ask", wd])
    assert out.exit_code == 5 and "1 pending of a budget of 20; the strategy waits for the pending results" in \
        " ".join(out.output.split())
    monkeypatch.setattr(nas.Study, "waiting", property(lambda self: False))
    assert CliRunner().invoke(app, ["ask", wd]).exit_code == 3
