"""`nas.compare.compare_searches` and `nas compare`: repeated runs grouped by strategy, scored at one budget."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.compare import compare_searches
from nas.errors import ConfigError
from nas.pareto import hypervolume
from nas.spaces import Choice, Space

TARGET = [3, 1, 4, 1, 0, 2]
SPACE = Space({f"x{i}": Choice([0, 1, 2, 3, 4]) for i in range(len(TARGET))})


def separable(arch) -> dict[str, float]:
    hits = sum(arch[f"x{i}"] == t for i, t in enumerate(TARGET))
    dist = sum(abs(arch[f"x{i}"] - t) for i, t in enumerate(TARGET))
    return {"score": hits - 0.1 * dist, "cost": float(sum(arch[f"x{i}"] for i in range(len(TARGET))))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    out = {}
    for strategy in ("tpe", "random"):
        for seed in range(5):
            out[strategy, seed] = nas.search(SPACE, separable, {"score": "max", "cost": "min"}, strategy=strategy,
                                             budget=40, seed=seed, workdir=root / f"{strategy}-{seed}",
                                             metadata={"family": "model-based" if strategy == "tpe" else "baseline"})
    return root, out


def best_within(result, metric: str, at: int) -> float:
    return max(t.metrics[metric] for t in result.trials[:at] if t.status == "ok")


def test_one_metric_is_each_runs_best_within_the_budget_with_welch_against_random(runs):
    _, results = runs
    c = compare_searches(list(results.values()), at=30, metric="score")
    assert c.baseline == "random" and c.at == 30 and {g.name for g in c.groups} == {"tpe", "random"}
    tpe, rnd = sorted(c.groups, key=lambda g: g.name != "tpe")
    assert [g.name for g in c.groups] == ([g.name for g in sorted(c.groups, key=lambda g: -g.mean)])  # best first
    assert tpe.scores == [best_within(results["tpe", s], "score", 30) for s in range(5)]
    assert rnd.scores == [best_within(results["random", s], "score", 30) for s in range(5)]
    welch = stats.ttest_ind(tpe.scores, rnd.scores, equal_var=False)
    assert tpe.p_value == pytest.approx(welch.pvalue)
    assert tpe.ri_pct == pytest.approx(100 * (np.mean(tpe.scores) - np.mean(rnd.scores)) / abs(np.mean(rnd.scores)))
    half = stats.t.ppf(0.975, 4) * np.std(tpe.scores, ddof=1) / math.sqrt(5)
    assert (tpe.low, tpe.high) == pytest.approx((np.mean(tpe.scores) - half, np.mean(tpe.scores) + half))
    assert tpe.curve[-1][0] == 30 and tpe.curve[-1][1] == pytest.approx(tpe.mean)
    assert all(a[1] <= b[1] for a, b in zip(tpe.curve, tpe.curve[1:]))  # a best-so-far mean only rises
    cost = compare_searches(list(results.values()), metric="cost:min")  # a metric no run optimised, minimised
    assert cost.direction == "min" and next(g for g in cost.groups if g.name == "tpe").scores[0] == min(
        t.metrics["cost"] for t in results["tpe", 0].trials)


def test_two_objectives_are_scored_by_hypervolume_against_one_reference(runs):
    _, results = runs
    c = compare_searches(list(results.values()), by="family", baseline="baseline")
    assert c.at == 40 and {g.name for g in c.groups} == {"model-based", "baseline"}
    points = {k: np.array([[-t.metrics["score"], t.metrics["cost"]] for t in r.trials]) for k, r in results.items()}
    everything = np.vstack(list(points.values()))
    best, worst = everything.min(axis=0), everything.max(axis=0)
    ref = worst + 0.1 * (worst - best)
    assert c.reference == pytest.approx([-ref[0], ref[1]])  # in the objectives' own directions
    expected = hypervolume(points["tpe", 2], ref) / np.prod(ref - best)
    model_based = next(g for g in c.groups if g.name == "model-based")
    assert model_based.scores[2] == pytest.approx(expected) and 0 < expected < 1


def test_bad_comparisons_name_the_run(runs, tmp_path):
    root, results = runs
    one = list(results.values())
    with pytest.raises(ConfigError, match="at least two"):
        compare_searches(one[:1])
    with pytest.raises(ConfigError, match="spent 40 evaluations; give 1 to 40"):
        compare_searches(one, at=41)
    with pytest.raises(ConfigError, match="records no such metadata key .*family"):
        compare_searches(one, by="lr")
    other = nas.search(SPACE, separable, {"score": "max"}, strategy="random", budget=5, seed=0, workdir=tmp_path / "o")
    with pytest.raises(ConfigError, match="compare runs of one problem"):
        compare_searches([*one, other])


def test_nas_compare_prints_plots_and_writes_json(runs, tmp_path):
    root, _ = runs
    out = CliRunner().invoke(app, ["compare", str(root), "--metric", "score", "--plot", str(tmp_path / "c.png"),
                                   "--json", str(tmp_path / "c.json")], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "best feasible score (max) after 40 evaluations, by strategy; against random" in out.output
    assert (tmp_path / "c.png").stat().st_size > 5000
    saved = json.loads((tmp_path / "c.json").read_text())
    assert {g["name"] for g in saved["groups"]} == {"tpe", "random"} and len(saved["groups"][0]["runs"]) == 5
