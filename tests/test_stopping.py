"""Stop rules (`nas.search(..., stop_when=...)`, `nas run --stop-after / --stop-at`): a search ends below its budget
exactly when its rule holds, says why in the journal, and resumes to the budget without the rule."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.export import completeness
from nas.spaces import Choice, Space
from nas.stopping import AnyOf, NoImprovement, Target, from_settings

SPACE = Space({f"x{i}": Choice(list(range(5))) for i in range(4)})  # 625 architectures


def score(arch) -> dict[str, float]:
    return {"score": float(sum(arch[f"x{i}"] for i in range(4))), "cost": float(arch["x0"] * 3 - arch["x1"])}


def best_so_far(result: nas.SearchResult) -> np.ndarray:
    return np.maximum.accumulate([t.metrics["score"] for t in result.trials])


def test_no_improvement_stops_exactly_after_patience_evaluations_without_a_better_result():
    r = nas.search(SPACE, score, {"score": "max"}, strategy="random", budget=400, seed=3,
                   stop_when=NoImprovement(15))
    best = best_so_far(r)
    assert r.stop_reason == "stop_when: no improvement in the last 15 evaluations" and 16 <= r.used < 400
    assert best[-1] == best[-16] and best[-16] > best[-17]  # the last improvement, then 15 without one
    assert all(NoImprovement(15).stale(nas.SearchResult(r.trials[:n], r.problem)) < 15 for n in range(1, r.used))


def test_min_delta_ignores_small_gains_and_two_objectives_count_new_front_points():
    problem = nas.Problem.make({"score": "max"})
    trials = [nas.Trial(k, f"a{k}", {"x0": k}, {"score": v}, "ok", 0.0, 0.0, "w")
              for k, v in enumerate([1.0, 1.05, 1.08, 2.0, 2.01])]
    assert NoImprovement(2, min_delta=0.1).stale(nas.SearchResult(trials, problem)) == 1  # 2.0 was the last gain
    assert NoImprovement(2).stale(nas.SearchResult(trials, problem)) == 0
    r = nas.search(SPACE, score, {"score": "max", "cost": "min"}, strategy="random", budget=400, seed=1,
                   stop_when=NoImprovement(10))
    assert 11 <= r.used < 400
    last_new = max(i for i, t in enumerate(r.trials) if not any(
        u.metrics["score"] >= t.metrics["score"] and u.metrics["cost"] <= t.metrics["cost"] for u in r.trials[:i]))
    assert last_new == r.used - 11  # the last new front point, then 10 evaluations that dominate nothing new


def test_target_stops_at_the_first_feasible_result_that_meets_it():
    infeasible_hits = 0
    for seed in range(6):
        r = nas.search(SPACE, score, {"score": "max"}, constraints=["cost <= 2"], strategy="random", budget=400,
                       seed=seed, stop_when=Target("score >= 13"))
        hits = [t for t in r.trials if t.metrics["score"] >= 13 and t.metrics["cost"] <= 2]
        assert r.stop_reason == "stop_when: target reached: score >= 13" and hits == [r.trials[-1]]
        infeasible_hits += sum(t.metrics["score"] >= 13 for t in r.trials[:-1])
    assert infeasible_hits  # results that met the target but broke the constraint did not stop the search


def test_the_stop_is_journaled_and_a_resume_without_the_rule_continues_to_the_budget(tmp_path):
    wd = tmp_path / "wd"
    first = nas.search(SPACE, score, {"score": "max"}, strategy="evolution", budget=120, seed=2, workdir=wd,
                       stop_when=AnyOf((NoImprovement(12), Target("score >= 16"))))
    assert first.used < 120 and nas.load(wd).stop_reason == first.stop_reason
    complete, note = completeness(nas.load(wd))  # the user's rule said done: the export is not "incomplete"
    assert complete and "its stop rule held" in note
    assert first.stop_reason == "stop_when: no improvement in the last 12 evaluations"  # the rule that held alone
    again = nas.search(SPACE, score, {"score": "max"}, strategy="evolution", budget=120, seed=2, workdir=wd,
                       stop_when=NoImprovement(12))
    assert again.used == first.used  # the rule still holds: nothing new starts
    rest = nas.search(SPACE, score, {"score": "max"}, strategy="evolution", budget=120, seed=2, workdir=wd)
    assert rest.used == 120 and rest.stop_reason == "budget"
    assert [t.arch_id for t in rest.trials[:first.used]] == [t.arch_id for t in first.trials]


def test_bad_rules_are_refused_naming_the_field():
    with pytest.raises(ConfigError, match="'accuracy', which is not an objective or constraint metric"):
        nas.search(SPACE, score, {"score": "max"}, budget=5, stop_when=Target("accuracy >= 0.9"))
    with pytest.raises(ConfigError, match="stop_when: expected"):
        nas.search(SPACE, score, {"score": "max"}, budget=5, stop_when=20)
    with pytest.raises(ConfigError, match="patience must be an int >= 1"):
        NoImprovement(0)
    with pytest.raises(ConfigError, match="at least one condition"):
        Target()
    with pytest.raises(ConfigError, match="min_delta must be a finite number"):
        NoImprovement(5, min_delta="0.1")
    with pytest.raises(ConfigError, match="^stop_after: NoImprovement: patience must be an int >= 1"):
        from_settings(0, None)
    with pytest.raises(ConfigError, match="^stop_at: constraint 'score >> 3' is not of the form"):
        from_settings(None, ["score >> 3"])


def test_run_flags_stop_after_and_stop_at(tmp_path):
    (tmp_path / "job.py").write_text(
        "from nas.spaces import Space, Choice\n"
        "space = Space({f'x{i}': Choice(list(range(5))) for i in range(4)})\n"
        "objectives = {'score': 'max'}\nstrategy = 'random'\n"
        "def evaluate(arch):\n    return {'score': float(sum(arch[f'x{i}'] for i in range(4)))}\n")
    runner = CliRunner()
    out = runner.invoke(app, ["run", str(tmp_path / "job.py"), "--budget", "300", "--seed", "0", "--workdir",
                              str(tmp_path / "a"), "--stop-after", "10"])
    assert out.exit_code == 0, out.output
    assert "no improvement in the last 10 evaluations" in out.output and nas.load(tmp_path / "a").used < 300
    status = runner.invoke(app, ["status", str(tmp_path / "a")])
    assert "finished below its budget: no improvement in the last 10 evaluations" in " ".join(status.output.split())
    out = runner.invoke(app, ["run", str(tmp_path / "job.py"), "--budget", "300", "--seed", "0", "--workdir",
                              str(tmp_path / "b"), "--stop-at", "score >= 15"])
    assert out.exit_code == 0, out.output
    result = nas.load(tmp_path / "b")
    assert result.trials[-1].metrics["score"] >= 15 and all(t.metrics["score"] < 15 for t in result.trials[:-1])
    assert "target reached: score >= 15" in out.output
    (tmp_path / "run.toml").write_text('script = "job.py"\nbudget = 300\nseed = 0\nworkdir = "c"\nstop_after = 12\n')
    out = runner.invoke(app, ["run", str(tmp_path / "run.toml")])
    assert out.exit_code == 0, out.output
    assert nas.load(tmp_path / "c").stop_reason == "stop_when: no improvement in the last 12 evaluations"
    more = runner.invoke(app, ["resume", str(tmp_path / "c"), "--budget", "620", "--stop-at", "score >= 15"])
    assert more.exit_code == 0, more.output
    resumed = nas.load(tmp_path / "c")
    assert resumed.trials[-1].metrics["score"] >= 15 and resumed.used < 620
    assert all(t.metrics["score"] < 15 for t in resumed.trials[:-1])
