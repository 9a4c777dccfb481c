"""Transfer from a related task's results (issue 19 part 4): the prior, the predictor on top of it, predictor-search."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import kendalltau

import nas
from nas.errors import ConfigError
from nas.objectives import Problem
from nas.predictors import make_predictor
from nas.predictors.transfer import TransferPredictor, TransferPrior
from nas.spaces import Choice, Space
from nas.strategies import TrialResult
from nas.strategies.predictor_search import PredictorSearch

SPACE = Space({f"x{i}": Choice(list(range(4)), ordered=False) for i in range(6)})
W = np.random.default_rng(3).normal(size=(6, 4))


def score(arch) -> float:
    """Additive with two interactions: too much for a forest on 10 results."""
    return float(sum(W[i, arch[f"x{i}"]] for i in range(6)) + 0.8 * (arch["x0"] == arch["x1"])
                 - 0.6 * (arch["x2"] == arch["x3"]))


def related(arch) -> float:
    """The same task on another data set: a monotone transform of the score plus a little noise of its own."""
    return float(np.exp(score(arch)) + 0.05 * W[5, arch["x5"]] * W[4, arch["x4"]])


def all_archs() -> list:
    return list(SPACE)


def test_the_prior_maps_each_source_to_quantiles_and_gives_unknown_architectures_the_median():
    archs = all_archs()[:50]
    low = [(a.to_dict(), {"acc": float(i)}) for i, a in enumerate(archs[:40])]
    high = [(a.to_dict(), {"acc": 1000.0 + 10 * i}) for i, a in enumerate(archs[:40])]  # another scale, same order
    prior = TransferPrior(SPACE, [low, high])
    q = prior.values("acc", archs)
    assert np.all(np.diff(q[:40]) > 0) and q[0] == pytest.approx(0.5 / 40) and q[39] == pytest.approx(39.5 / 40)
    assert np.all(q[40:] == 0.5)  # no source has them
    assert prior.coverage("acc", archs) == pytest.approx(0.8)
    for ask in (prior.values, prior.coverage):
        with pytest.raises(ConfigError, match="no source has metric 'latency'"):
            ask("latency", archs)
    with pytest.raises(ConfigError, match=r"transfer: source 0, record 0: .*x9"):
        TransferPrior(SPACE, [[({"x9": 1}, {"acc": 1.0})]])


def test_the_prior_reads_a_records_file_and_names_a_bad_record(tmp_path):
    from nas import jsonio

    archs = all_archs()[:30]
    path = tmp_path / "other_table.jsonl"
    jsonio.append_jsonl(path, [{"config": a.to_dict(), "metrics": {"acc": score(a)}} for a in archs])
    prior = TransferPrior.load(SPACE, path)
    assert kendalltau(prior.values("acc", archs), [score(a) for a in archs])[0] == pytest.approx(1.0)
    jsonio.append_jsonl(path, [{"config": {"x0": 7}, "metrics": {"acc": 1.0}}])
    with pytest.raises(ConfigError, match=r"other_table.jsonl, record 30: .*x0"):
        TransferPrior.load(SPACE, [path])


def test_isomorphic_twins_share_the_prior_through_the_canonical_key():
    from nas.spaces.nasbench_graph import NASBenchGraphSpace

    space = NASBenchGraphSpace()
    rng = np.random.default_rng(0)
    seen: dict[str, object] = {}
    pair = None
    while pair is None:  # two configurations of one graph (the built-in space's keys merge them)
        a = space.sample(rng)
        k = space.canonical_key(a)
        if k in seen and seen[k].id != a.id:
            pair = (seen[k], a)
        seen[k] = a
    others = [a for a in seen.values() if a.id not in (pair[0].id, pair[1].id)][:20]
    records = [(a.to_dict(), {"acc": float(i)}) for i, a in enumerate(others + [pair[0]])]
    prior = TransferPrior(space, [records])
    twin = prior.values("acc", [pair[1]])[0]
    assert twin == prior.values("acc", [pair[0]])[0] == pytest.approx(20.5 / 21)


def test_a_related_task_lifts_the_ranking_at_ten_results_and_a_useless_one_costs_little():
    archs = all_archs()
    rng = np.random.default_rng(0)
    good = TransferPrior(SPACE, [[(a.to_dict(), {"acc": related(a)}) for a in archs]])
    noise = TransferPrior(SPACE, [[(a.to_dict(), {"acc": float(rng.normal())}) for a in archs]])
    taus: dict[str, list[float]] = {"rf": [], "good": [], "noise": []}
    for seed in range(5):
        r = np.random.default_rng(seed)
        idx = r.permutation(len(archs))
        train, test = [archs[i] for i in idx[:10]], [archs[i] for i in idx[10:510]]
        y = np.array([score(a) for a in train])
        truth = [score(a) for a in test]
        for name, prior in (("rf", None), ("good", good), ("noise", noise)):
            base = make_predictor("rf", SPACE, seed, n_estimators=50)
            model = base if prior is None else TransferPredictor(SPACE, seed, base, prior, "acc")
            taus[name].append(kendalltau(truth, model.fit(train, y).predict(test)[0])[0])
    mean = {k: float(np.mean(v)) for k, v in taus.items()}
    assert mean["good"] > 0.8 and mean["good"] > mean["rf"] + 0.3, mean
    assert mean["noise"] > mean["rf"] - 0.15, mean


def test_predictor_search_reads_a_related_search_and_uses_it_only_where_it_helps(tmp_path):
    source = tmp_path / "related"
    nas.search(SPACE, lambda a: {"score": related(a), "cost": float(W[0, a["x0"]])}, {"score": "max"},
               strategy="random", budget=300, seed=1, workdir=source)
    problem = Problem.make({"score": "max", "cost": "min"})
    s = PredictorSearch(SPACE, problem, 0, predictor="rf", predictor_options={"n_estimators": 30}, transfer=source)
    assert s.transfer is not None and s.transfer.coverage("score", list(SPACE)) == pytest.approx(300 / 4096, abs=0.01)
    rng = np.random.default_rng(5)
    for _ in range(40):
        a = SPACE.sample(rng)
        # the related task's cost is the same as this one's, its score a transform of this one's
        s.tell(a, TrialResult({"score": score(a), "cost": float(sum(W[i, a[f"x{i}"]] for i in (1, 2)))}))
    s._fit()
    # score: its prior ranks the recorded 7 % well and the rest not at all; cost: the related task's is another metric
    assert set(s.choice) == {"score", "cost"} and s.choice["cost"] == "rf"
    assert json.loads(json.dumps(s.state_dict()))["choice"] == s.choice
    with pytest.raises(ConfigError, match="transfer: expected a workdir or records file path"):
        PredictorSearch(SPACE, problem, 0, transfer=5)
    with pytest.raises(ConfigError, match="transfer: .* does not exist"):
        PredictorSearch(SPACE, problem, 0, transfer=tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"none of this search's metrics \['acc'\]"):
        PredictorSearch(SPACE, Problem.make({"acc": "max"}), 0, transfer=source)


def test_with_a_fully_recorded_related_task_the_search_finds_the_optimum_sooner():
    prior = TransferPrior(SPACE, [[(a.to_dict(), {"score": related(a)}) for a in SPACE]])
    best = max(score(a) for a in SPACE)
    found: dict[str, list[int]] = {"plain": [], "transfer": []}
    for seed in range(3):
        for name, transfer in (("plain", None), ("transfer", prior)):
            s = PredictorSearch(SPACE, Problem.make({"score": "max"}), seed, predictor="rf",
                                predictor_options={"n_estimators": 30}, transfer=transfer)
            r = nas.search(SPACE, lambda a: {"score": score(a)}, {"score": "max"}, strategy=s, budget=40, seed=seed)
            values = [t.metrics["score"] for t in r.trials]
            found[name].append(next((i + 1 for i, v in enumerate(values) if v >= best - 1e-9), 41))
        assert "transfer" in s.choice["score"]
    assert np.mean(found["transfer"]) < np.mean(found["plain"]) and max(found["transfer"]) <= 25, found
