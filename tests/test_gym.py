"""The benchmark gym (nas.gym), the evaluation protocol of experiments/reporting.py and the proxy cost model."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import nas
from nas.gym import (CNN1dSpace, Environment, GymResult, OnnxForests, ProxyCostModel, Setting, draw_settings,
                     proxy_environment, run_gym)
from nas.spaces import Choice, Space

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from reporting import (ProtocolWarning, append_cache, gym_reports, gym_table, plot_gym, protocol_report,  # noqa: E402
                       read_cache, relative_improvement, ri_matrix)

TARGET = [3, 1, 4, 1, 0, 2]
TOY = Space({f"x{i}": Choice([0, 1, 2, 3, 4]) for i in range(len(TARGET))})


def toy(arch, budget=None) -> dict[str, float]:
    """A closed-form landscape; with a budget (fidelity) a short evaluation adds a deterministic error."""
    dist = sum(abs(arch[f"x{i}"] - t) for i, t in enumerate(TARGET))
    noise = 0.0 if budget is None else 2.0 / budget * ((sum(arch.values()) * 7919) % 13 / 13 - 0.5)
    return {"score": -dist + noise, "size": float(sum(arch.values()))}


def envs() -> list[Environment]:
    plain = Environment("toy", TOY, toy, "score", "max", budget=12)
    fid = Environment("toy-fidelity", TOY, toy, "score", "max", constraints=("size <= 14",), budget=12,
                      fidelity=(1.0, 3.0, 9.0))
    return [plain, fid]


def test_reduced_gym_gives_every_pair_the_same_number_of_settings():
    result = run_gym(envs(), ["random", "evolution", "hyperband"], settings=3, seeds=1, seed=5)
    # every strategy: 3 settings, each run once; the defaults first, then distinct draws from its own grid
    assert {k: len(v) for k, v in result.settings.items()} == {"random": 3, "evolution": 3, "hyperband": 3}
    assert [s.options for s in result.settings["random"]] == [{}, {}, {}]
    evo = [s.options for s in result.settings["evolution"]]
    assert evo[0] == {} and evo[1] != evo[2] and all(set(o) <= {"population_size", "mutation_bias"} for o in evo)
    # hyperband needs fidelity levels: skipped on the plain environment (saying why), run on the other
    assert [(s.environment, s.strategy) for s in result.skipped] == [("toy", "hyperband")]
    assert "FidelitySpace" in result.skipped[0].reason
    pairs = {(r.environment, r.strategy) for r in result.runs}
    assert pairs == {("toy", "random"), ("toy", "evolution"), ("toy-fidelity", "random"),
                     ("toy-fidelity", "evolution"), ("toy-fidelity", "hyperband")}
    for env, strat in pairs:
        runs = [r for r in result.runs if (r.environment, r.strategy) == (env, strat)]
        assert len(runs) == 3 and sorted(r.seed for r in runs) == [5, 6, 7]   # same seeds for every strategy
        assert all(r.error is None and r.value is not None and 12 - 1e-6 <= r.budget_used < 13 for r in runs)
    hb = [r for r in result.runs if r.strategy == "hyperband"]
    assert all(r.fidelity and "epochs" not in r.arch for r in hb)           # judged at the top fidelity only
    assert all(r.evaluations > 12 for r in hb)     # the budget counts full evaluations: a 1-epoch one costs 1/9
    assert all(toy(r.arch)["size"] <= 14 for r in result.runs if r.environment == "toy-fidelity")
    sums = {(s.environment, s.strategy): s for s in result.summaries()}
    assert set(sums) == pairs
    s = sums[("toy", "evolution")]
    assert s.n == 3 and s.min <= s.q1 <= s.median <= s.q3 <= s.max and s.default_median is not None
    again = GymResult.from_dict(result.to_dict())                          # JSON round trip
    assert again.summaries() == result.summaries()
    with pytest.warns(ProtocolWarning, match="fewer than 10"):             # 3 runs per strategy
        table = gym_table(result)
    assert "| evolution | 3 |" in table and "hyperband on toy" in table


def test_gym_in_worker_processes_and_the_plot(tmp_path):
    result = run_gym(envs()[:1], ["random"], settings=2, seeds=1, jobs=2)
    assert len(result.runs) == 2 and all(r.value is not None for r in result.runs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProtocolWarning)
        path = plot_gym(result, tmp_path / "gym.png")
    assert path.stat().st_size > 1000


def test_settings_are_drawn_from_the_declared_grid_only():
    settings, notes = draw_settings("tpe", 4, seed=1)
    assert settings[0] == Setting("tpe", 0, {}) and len(settings) == 4
    assert all(set(s.options) == {"sampler_options"} for s in settings[1:])
    qmc, _ = draw_settings("qmc", 6, seed=1)                               # a grid of 4 is cycled to 6
    assert len(qmc) == 6
    local, notes = draw_settings("local", 3)
    assert [s.options for s in local] == [{}, {}, {}] and notes == []


def test_protocol_warns_without_random_baseline_and_with_few_seeds():
    ten = [0.8 + 0.01 * i for i in range(10)]
    with pytest.warns(ProtocolWarning, match="without its random baseline"):
        rep = protocol_report({"evolution": ten}, label="cora")
    assert rep.method("evolution").ri_pct is None and any("baseline" in w for w in rep.warnings)
    with pytest.warns(ProtocolWarning, match="'evolution' has 5 seed"):
        rep = protocol_report({"random": ten, "evolution": ten[:5]})
    assert len(rep.warnings) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProtocolWarning)                    # a clean report raises nothing
        assert protocol_report({"random": ten, "evolution": ten}).warnings == []


def test_relative_improvement_on_a_hand_made_example():
    random = [0.78, 0.80, 0.82, 0.79, 0.81, 0.80, 0.78, 0.82, 0.80, 0.80]  # mean 0.80
    method = [0.83, 0.85, 0.84, 0.83, 0.85, 0.84, 0.84, 0.83, 0.85, 0.84]  # mean 0.84
    rep = protocol_report({"random": random, "method": method}, costs={"method": [2.0, 4.0]})
    m = rep.method("method")
    assert rep.baseline_mean == pytest.approx(0.80)
    assert m.ri_pct == pytest.approx(5.0)                                   # 100 (0.84 - 0.80) / 0.80
    assert rep.method("random").ri_pct == pytest.approx(0.0)
    # the 95 % interval is Welch's for the difference of means, in % of the random mean
    diff, se = 0.04, math.sqrt(np.var(method, ddof=1) / 10 + np.var(random, ddof=1) / 10)
    v1, v2 = np.var(method, ddof=1) / 10, np.var(random, ddof=1) / 10
    dof = (v1 + v2) ** 2 / (v1 ** 2 / 9 + v2 ** 2 / 9)
    half = stats.t.ppf(0.975, dof) * se
    assert m.ri_ci95_low == pytest.approx(100 * (diff - half) / 0.8) and m.ri_ci95_high == pytest.approx(100 * (diff + half) / 0.8)
    assert m.mean == pytest.approx(0.84) and m.ci95_low < m.mean < m.ci95_high and m.cost_s == pytest.approx(3.0)
    assert m.p_value < 1e-4
    # minimised objectives: lower is better, so a lower mean is a positive improvement
    assert relative_improvement(8.0, 10.0, "min") == pytest.approx(20.0)
    rep = protocol_report({"random": [10.0 + 0.1 * i for i in range(10)], "m": [8.0 + 0.1 * i for i in range(10)]},
                          direction="min")
    m = rep.method("m")
    assert m.ri_pct == pytest.approx(100 * 2.0 / 10.45) and 0 < m.ri_ci95_low < m.ri_pct < m.ri_ci95_high


def cnn_params(arch) -> dict[str, float]:
    """The exact parameter count of a CNN1dSpace network, in closed form (a cheap analytic cost)."""
    c, total = 1, 0
    for b in arch["blocks"]:
        total += c * b["width"] * b["kernel"] + b["width"] + 2 * b["width"]   # conv weight + bias, batch norm
        c = b["width"]
    return {"params": float(total + c * 10 + 10)}


def test_proxy_cost_model_learns_a_cheap_analytic_target_from_journals(tmp_path):
    space = CNN1dSpace(blocks=2)                                             # 576 architectures
    net = space.build(space.largest())
    assert cnn_params(space.largest())["params"] == sum(p.numel() for p in net.parameters())
    logged = nas.search(space, cnn_params, {"params": "max"}, strategy="random", budget=400, seed=0,
                        workdir=tmp_path / "journal")
    proxy = ProxyCostModel.from_journals(space, [tmp_path], ["params"], n_estimators=50)
    assert proxy.n_train == 400 and proxy.metrics == ["params"]
    seen = {t.arch_id for t in logged.trials}
    held_out = [a for a in space if a.id not in seen]                      # the 176 never logged
    (acc,) = proxy.accuracy(held_out, {"params": [cnn_params(a)["params"] for a in held_out]})
    assert acc.n_test == 176 and acc.rmse_pct_of_range < 2.5 and acc.kendall_tau > 0.95   # measured: 1.6 %, 0.97
    x = proxy.features(held_out[:20])                                       # the compiled trees are the forest
    assert np.allclose(proxy.compiled.predict(x)[:, 0], proxy.forests[0].predict(x), rtol=1e-5, atol=0)
    assert proxy(held_out[0])["params"] == pytest.approx(proxy.forests[0].predict(x[:1])[0])
    # a drop-in environment: the gym searches the proxy and reports each pick's real value
    base = Environment("cnn-params", space, cnn_params, "params", "max", constraints=("params <= 20000",), budget=15)
    env = proxy_environment(base, proxy)
    result = run_gym([env], ["random"], settings=1, seeds=2)
    for r in result.runs:
        real = cnn_params(r.arch)["params"]
        assert r.final == (real if real <= 20000 else None)


def test_compiled_forests_match_scikit_learn_on_several_outputs_and_survive_pickling():
    import pickle

    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32).astype(np.float64)  # scikit-learn compares float32
    forests = [RandomForestRegressor(10, random_state=0).fit(x, y) for y in (x[:, 0] * x[:, 1], np.sin(x[:, 2]))]
    compiled = OnnxForests(forests, 4)
    want = np.stack([f.predict(x[:50]) for f in forests], axis=1)
    assert np.allclose(compiled.predict(x[:50]), want, rtol=1e-5, atol=1e-6)   # float32 sums in onnxruntime
    assert np.allclose(compiled.predict(x[7]), want[7], rtol=1e-5, atol=1e-6)
    again = pickle.loads(pickle.dumps(compiled))                               # process pools send it
    assert np.array_equal(again.predict(x[:50]), compiled.predict(x[:50]))


def test_protocol_reports_of_a_gym_result_use_every_run_as_a_seed():
    result = run_gym(envs()[:1], ["random", "local"], settings=5, seeds=2, budget=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProtocolWarning)                     # 10 runs each: no warning
        reports = gym_reports(result)
    rep = reports["toy"]
    assert [m.n for m in rep.methods] == [10, 10] and rep.method("random").ri_pct == 0.0
    matrix = ri_matrix(reports)
    assert matrix.splitlines()[0] == "| method | toy | mean rank |" and "| random | +0.00 |" in matrix


def test_an_experiment_cache_survives_a_kill_mid_write(tmp_path):
    """A torn last line (a kill mid-write) is dropped on the next read, the rerun appends after the whole
    records, and measured NaNs round-trip."""
    import math

    path = tmp_path / "runs" / "cache.jsonl"
    assert read_cache(path) == []
    append_cache(path, {"key": "a", "valid": 0.5})
    append_cache(path, {"key": "b", "valid": float("nan")})
    with open(path, "a") as f:
        f.write('{"key": "c", "val')  # the kill
    records = read_cache(path)
    assert [r["key"] for r in records] == ["a", "b"] and math.isnan(records[1]["valid"])
    append_cache(path, {"key": "c", "valid": 0.7})
    assert [r["key"] for r in read_cache(path)] == ["a", "b", "c"]
