"""Black-box strategies of issue 4: rl, bayesian, the Optuna adapter and multi-fidelity promotion."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import nas
from nas.objectives import Problem
from nas.pareto import non_dominated_sort
from nas.spaces import Choice, Conditional, Integer, Repeat, Space
from nas.strategies import STRATEGIES, TrialResult, make_strategy
from nas.strategies.multifidelity import FidelitySpace

TARGET = [3, 1, 4, 1, 0, 2, 2, 3]
SEPARABLE = Space({f"x{i}": Choice([0, 1, 2, 3, 4]) for i in range(len(TARGET))})


def separable(arch) -> dict[str, float]:
    """Matches with a hidden target, plus a smooth pull towards it: a problem with learnable structure."""
    hits = sum(arch[f"x{i}"] == t for i, t in enumerate(TARGET))
    dist = sum(abs(arch[f"x{i}"] - t) for i, t in enumerate(TARGET))
    return {"score": hits - 0.1 * dist, "cost": float(sum(arch[f"x{i}"] for i in range(len(TARGET))))}


NESTED = Space(
    depth=Choice([0, 1, 2, 3]),
    blocks=Repeat(count="depth", k=Choice([3, 5, 7]), act=Choice(["relu", "gelu"])),
    op=Choice(["a", "b"]),
    extra=Conditional("op", "a", Integer(1, 8)),
    flag=Choice([True, 1, "x"]),
)


def nested(arch) -> dict[str, float]:
    return {"acc": sum(b["k"] for b in arch["blocks"]) + arch.get("extra", 0) + (arch["flag"] == "x")}


FAST_BAYES = {"epochs": 60, "n_random": 40, "rounds": 1, "members": 3, "hidden": 16}


pytestmark = pytest.mark.usefixtures("one_thread")


def best_scores(strategy: str, seeds, budget: int, **options) -> list[float]:
    out = []
    for s in seeds:
        r = nas.search(SEPARABLE, separable, {"score": "max"}, strategy=strategy, strategy_options=options,
                       budget=budget, seed=s, executor=nas.SimulatedClockExecutor())
        out.append(r.best("score").metrics["score"])
    return out


def test_registered_names():
    for name in ("rl", "bayesian", "tpe", "gp", "cmaes", "nsga2-optuna", "qmc", "successive-halving", "hyperband"):
        assert name in STRATEGIES


@pytest.mark.slow
def test_rl_beats_random_on_a_separable_space():
    rl = best_scores("rl", range(3), 120)
    rnd = best_scores("random", range(3), 120)
    assert np.mean(rl) > np.mean(rnd) + 0.5, (rl, rnd)


def test_rl_learns_the_target_distribution():
    problem = Problem.make({"score": "max"})
    strat = make_strategy("rl", SEPARABLE, problem, 0)
    for _ in range(300):
        (a,) = strat.ask(1)
        strat.tell(a, TrialResult(separable(a)))
    probs = strat.probabilities()
    p_target = [p[t] for p, t in zip(probs, TARGET)]
    assert np.mean(p_target) > 0.35  # uniform would be 0.2


WIDE = Space(n=Integer(0, 10**9), act=Choice(["relu", "gelu"]))


def wide(arch) -> dict[str, float]:
    return {"loss": abs(arch["n"] - 9 * 10**8) / 1e9 + (arch["act"] != "gelu")}


def test_rl_draws_a_wide_integer_by_bins_and_learns_where_the_optimum_is():
    """One logit per value would be a 10**9-output policy (128 GB); 32 bins of the range learn its good end."""
    from nas.strategies.rl import SlotTokens

    tk = SlotTokens.of(WIDE.slots()[0])
    assert (tk.cardinality, tk.count) == (10**9 + 1, 32)
    edges = [b * tk.cardinality // 32 for b in range(33)]
    assert tk.tokens(np.array([0, edges[1] - 1, edges[1], 10**9, -1])).tolist() == [0, 0, 1, 31, -1]
    rng = np.random.default_rng(0)
    assert all(edges[5] <= tk.index(5, rng) < edges[6] for _ in range(20))
    strat = make_strategy("rl", WIDE, Problem.make({"loss": "min"}), 0)
    losses = []
    for _ in range(200):
        (a,) = strat.ask(1)
        strat.tell(a, TrialResult(wide(a)))
        losses.append(wide(a)["loss"])
    bins = strat.probabilities()[0]
    assert len(bins) == 32 and abs(int(np.argmax(bins)) - 28) <= 3  # 9e8 lies in bin 28
    assert np.mean(losses[-50:]) < 0.3  # uniform draws average 0.41 + 0.5


@pytest.mark.parametrize("name", ["rl", "autognn", "gp"])
def test_strategies_search_a_billion_value_integer(name):
    r = nas.search(WIDE, wide, {"loss": "min"}, strategy=name, budget=40, seed=0, executor=nas.SimulatedClockExecutor())
    assert len(r.trials) == 40
    assert all(0 <= t.architecture["n"] <= 10**9 and isinstance(t.architecture["n"], int) for t in r.trials)
    if name == "gp":  # a float range to Optuna's GP, snapped to the integers
        assert r.best().metrics["loss"] < 0.02


def test_bayesian_beats_random_on_a_separable_space():
    bo = best_scores("bayesian", range(2), 30, **FAST_BAYES)
    rnd = best_scores("random", range(2), 30)
    assert np.mean(bo) > np.mean(rnd), (bo, rnd)


def test_bayesian_uncertainty_is_split_into_epistemic_and_aleatoric():
    from nas.strategies.bayesian import HeteroscedasticEnsemble

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(200, 4)).astype(float)
    noisy = x[:, 0] == 1
    y = (x[:, 1] + np.where(noisy, rng.normal(0, 1.0, 200), 0.0))[:, None]
    model = HeteroscedasticEnsemble(4, 1, members=4, hidden=16, epochs=300)
    model.fit(x, y, seed=0)
    mean, epi, ale = model.predict(np.array([[1, 1, 0, 0], [0, 1, 0, 0]], dtype=float))
    assert ale[0, 0] > 2 * ale[1, 0]  # the noisy half of the inputs gets the larger aleatoric std
    assert abs(mean[1, 0] - 1.0) < 0.3
    assert np.all(epi >= 0)


def run_steps(strat, steps: int, evaluate) -> list[str]:
    ids = []
    for _ in range(steps):
        for a in strat.ask(1):
            strat.tell(a, TrialResult(evaluate(a)))
            ids.append(a.id)
    return ids


@pytest.mark.parametrize("name,options", [("rl", {"batch_size": 3}), ("bayesian", {**FAST_BAYES, "warmup": 4}),
                                          ("tpe", {}), ("nsga2-optuna", {"sampler_options": {"population_size": 4}}),
                                          ("hyperband", {"inner": "rl"})])
def test_resume_from_state_dict_is_exact(name, options):
    space, evaluate = SEPARABLE, separable
    if name == "hyperband":
        space = FidelitySpace(SEPARABLE, [1, 3, 9])
        evaluate = space.evaluator(lambda a, budget: {**separable(a)})
    problem = Problem.make({"score": "max", "cost": "min"} if name == "nsga2-optuna" else {"score": "max"})
    a = make_strategy(name, space, problem, 7, **options)
    run_steps(a, 12, evaluate)
    state = json.loads(json.dumps(a.state_dict()))  # plain data only
    b = make_strategy(name, space, problem, 7, **options)
    b.load_state_dict(state)
    assert run_steps(a, 10, evaluate) == run_steps(b, 10, evaluate)


def run_with_pending(strat, steps: int, evaluate) -> list[str]:
    """Ask two, tell the first, then the second (so one is pending between steps): the ids asked."""
    ids = []
    for _ in range(steps):
        first, second = strat.ask(2)
        strat.tell(first, TrialResult(evaluate(first)))
        if ids and len(ids) % 3 == 0:
            strat.tell(second, TrialResult({}, "failed"))
        else:
            strat.tell(second, TrialResult(evaluate(second)))
        ids += [first.id, second.id]
    return ids


@pytest.mark.parametrize("name,options,fixed", [
    ("tpe", {}, False), ("tpe", {"sampler_options": {"multivariate": True}}, False),
    ("nsga2-optuna", {"sampler_options": {"population_size": 4}}, False), ("qmc", {}, False), ("cmaes", {}, True),
    ("gp", {}, False), ("gp", {}, True)])  # on a fixed space, GP's next kernel fit starts from the last one's
def test_optuna_strategies_resume_exactly_with_constraints_and_a_pending_trial(name, options, fixed, monkeypatch):
    # the snapshot is taken between an ask and its tell; constraints and failures are in the restored history
    space, evaluate = (SEPARABLE, separable) if fixed else (NESTED, lambda a: {**nested(a), "c": float(a["depth"])})
    problem = Problem.make({"score": "max"} if fixed else {"acc": "max"}, ["cost <= 10"] if fixed else ["c <= 2"])
    a = make_strategy(name, space, problem, 7, **options)
    run_with_pending(a, 8, evaluate)
    (pending,) = a.ask(1)
    state = json.loads(json.dumps(a.state_dict()))  # plain data only
    b = make_strategy(name, space, problem, 7, **options)
    sampler = type(b.study.sampler)
    if b.checkpoints:  # restored without running the sampler: linear in the trials, not a replay
        for method in ("sample_independent", "sample_relative", "before_trial", "after_trial"):
            monkeypatch.setattr(sampler, method, lambda *args, **kw: pytest.fail("the sampler ran during a restore"))
    b.load_state_dict(state)
    monkeypatch.undo()
    assert [t.params for t in b.study.trials] == [t.params for t in a.study.trials]
    assert [t.system_attrs for t in b.study.trials] == [t.system_attrs for t in a.study.trials]
    for s in (a, b):
        s.tell(pending, TrialResult(evaluate(pending)))
    assert run_with_pending(a, 6, evaluate) == run_with_pending(b, 6, evaluate)
    assert [t.values for t in b.study.trials] == [t.values for t in a.study.trials]


def test_optuna_strategy_loads_a_log_written_before_checkpoints():
    problem = Problem.make({"acc": "max"})
    a = make_strategy("tpe", NESTED, problem, 3)
    a.checkpoints = False  # writes its state as before checkpoints: the seed and the log of asks and tells
    run_steps(a, 10, nested)
    old = json.loads(json.dumps(a.state_dict()))
    assert "study" not in old and len(old["log"]) == 20
    b = make_strategy("tpe", NESTED, problem, 3)
    b.load_state_dict(old)
    assert run_steps(a, 5, nested) == run_steps(b, 5, nested)
    assert "study" in b.state_dict()


@pytest.mark.parametrize("name", ["rl", "tpe"])
def test_resumed_search_equals_uninterrupted_one(name, tmp_path):
    kw = dict(objectives={"score": "max"}, strategy=name, seed=3, executor=nas.SimulatedClockExecutor())
    whole = nas.search(SEPARABLE, separable, budget=30, workdir=tmp_path / "whole", **kw)
    nas.search(SEPARABLE, separable, budget=12, workdir=tmp_path / "split", **kw)
    split = nas.search(SEPARABLE, separable, budget=30, workdir=tmp_path / "split", **kw)
    assert [t.arch_id for t in split.trials] == [t.arch_id for t in whole.trials]


def test_optuna_adapter_follows_repeats_and_conditionals():
    problem = Problem.make({"acc": "max"})
    strat = make_strategy("tpe", NESTED, problem, 0)
    result = nas.search(NESTED, nested, {"acc": "max"}, strategy=strat, budget=40, seed=0,
                        executor=nas.SimulatedClockExecutor())
    assert len(result.completed) == 40
    trials = {t.number: t for t in strat.study.trials}
    depths = set()
    for t in result.trials:
        arch = NESTED.validate(t.arch)  # every proposal is a valid member of the space
        depths.add(arch["depth"])
    for ot in trials.values():
        p = ot.params
        depth = NESTED.fields["depth"].options[p["depth"]]  # ordered choices are suggested as indices
        assert {k for k in p if k.startswith("blocks[")} == {f"blocks[{i}].{f}" for i in range(depth) for f in ("k", "act")}
        assert ("extra" in p) == (p["op"] == "a")
    assert len(depths) > 1
    assert result.best().metrics["acc"] >= 20  # 3 blocks of k=7 plus extra: TPE climbs towards 30


def test_optuna_adapter_adds_trials_it_did_not_ask_and_passes_constraints():
    problem = Problem.make({"score": "max"}, ["cost <= 10"])
    strat = make_strategy("tpe", SEPARABLE, problem, 0)
    arch = SEPARABLE.sample(np.random.default_rng(1))
    strat.tell(arch, TrialResult(separable(arch)))
    (t,) = strat.study.trials
    assert t.state.name == "COMPLETE" and t.values == [separable(arch)["score"]]
    assert SEPARABLE.validate({k: v for k, v in t.params.items()}) == arch
    cons = {k: v for k, v in t.system_attrs.items() if k.startswith("constraints")}
    assert list(cons.values()) == [max(0.0, separable(arch)["cost"] - 10)]
    strat.tell(SEPARABLE.sample(np.random.default_rng(2)), TrialResult({}, "failed"))
    assert strat.study.trials[-1].state.name == "FAIL"


SMALL = Space(a=Choice([0, 1, 2, 3, 4, 5]), b=Choice([0, 1, 2, 3, 4, 5]), c=Choice([0, 1, 2, 3]))  # 144 networks


def bowl(arch) -> dict[str, float]:
    return {"loss": float((arch["a"] - 2) ** 2 + (arch["b"] - 3) ** 2 + (arch["c"] - 1) ** 2)}


@pytest.mark.parametrize("name", ["gp", "tpe"])
def test_optuna_sampler_that_repeats_its_optimum_explores_instead_of_stopping(name):
    # GP's acquisition peaked at the seen optimum and every ask repeated it: the search ended "exhausted" after
    # 22 of its 100 evaluations on a 144-network space.
    r = nas.search(SMALL, bowl, {"loss": "min"}, strategy=name, budget=100, seed=0,
                   executor=nas.SimulatedClockExecutor())
    assert r.stop_reason == "budget" and len(r.completed) == 100
    assert len({t.arch_id for t in r.trials}) == 100
    assert r.best("loss").metrics["loss"] == 0.0


def _coin_sampler():
    import random

    import optuna

    class CoinSampler(optuna.samplers.BaseSampler):
        """A sampler of one's own, drawing every decision from a Python random.Random."""

        def __init__(self, seed: int) -> None:
            self.rng = random.Random(seed)

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            if isinstance(param_distribution, optuna.distributions.CategoricalDistribution):
                return self.rng.choice(param_distribution.choices)
            return self.rng.randint(int(param_distribution.low), int(param_distribution.high))

    return CoinSampler


CoinSampler = _coin_sampler()


def test_any_optuna_sampler_instance_is_a_strategy(tmp_path):
    import optuna

    flat = Space(a=Choice([0, 1, 2, 3, 4, 5]), b=Choice([0, 1, 2, 3, 4, 5]), c=Choice(["x", "y"]))  # 72 networks
    loss = lambda a: {"loss": float((a["a"] - 2) ** 2 + (a["b"] - 3) ** 2 + (a["c"] == "y"))}  # noqa: E731
    brute = nas.search(flat, loss, {"loss": "min"}, strategy=optuna.samplers.BruteForceSampler(seed=0), budget=100,
                       seed=0)
    assert brute.stop_reason == "exhausted" and len({t.arch_id for t in brute.trials}) == len(brute.trials) == 72
    assert brute.best().metrics["loss"] == 0.0 and brute.config["strategy"] == "optuna:BruteForceSampler"
    fixed = optuna.samplers.PartialFixedSampler({"c": "y"}, optuna.samplers.TPESampler(seed=1))
    assert {t.arch["c"] for t in nas.search(flat, loss, {"loss": "min"}, strategy=fixed, budget=15, seed=0).trials} == {"y"}
    # a resume takes the same sampler again and continues exactly: the checkpoint is loaded into a copy of it
    kw = dict(objectives={"score": "max"}, seed=3, executor=nas.SimulatedClockExecutor())
    whole = nas.search(SEPARABLE, separable, strategy=optuna.samplers.TPESampler(seed=5, n_startup_trials=5),
                       budget=30, workdir=tmp_path / "whole", **kw)
    nas.search(SEPARABLE, separable, strategy=optuna.samplers.TPESampler(seed=5, n_startup_trials=5), budget=12,
               workdir=tmp_path / "split", **kw)
    split = nas.search(SEPARABLE, separable, strategy=optuna.samplers.TPESampler(seed=5, n_startup_trials=5),
                       budget=30, workdir=tmp_path / "split", **kw)
    assert [t.arch_id for t in split.trials] == [t.arch_id for t in whole.trials]
    two = dict(objectives={"score": "max", "cost": "min"}, seed=3, executor=nas.SimulatedClockExecutor())
    nsga = lambda: optuna.samplers.NSGAIISampler(seed=2, population_size=6)  # noqa: E731 - it holds a lock
    whole2 = nas.search(SEPARABLE, separable, strategy=nsga(), budget=30, workdir=tmp_path / "whole2", **two)
    nas.search(SEPARABLE, separable, strategy=nsga(), budget=13, workdir=tmp_path / "split2", **two)
    split2 = nas.search(SEPARABLE, separable, strategy=nsga(), budget=30, workdir=tmp_path / "split2", **two)
    assert [t.arch_id for t in split2.trials] == [t.arch_id for t in whole2.trials]
    mine = dict(objectives={"score": "max"}, seed=3, executor=nas.SimulatedClockExecutor())
    whole3 = nas.search(SEPARABLE, separable, strategy=CoinSampler(4), budget=20, workdir=tmp_path / "whole3", **mine)
    # split after more than repeat_patience asks: a fresh generator would re-draw the first 12, skipped as repeats
    # for 10 and then replaced by unasked neighbours, so only a restored random.Random continues as the whole run
    nas.search(SEPARABLE, separable, strategy=CoinSampler(4), budget=12, workdir=tmp_path / "split3", **mine)
    split3 = nas.search(SEPARABLE, separable, strategy=CoinSampler(4), budget=20, workdir=tmp_path / "split3", **mine)
    assert [t.arch_id for t in split3.trials] == [t.arch_id for t in whole3.trials]  # its random.Random restored
    with pytest.raises(nas.JournalError, match="its strategy is 'optuna:TPESampler', this run's is 'optuna:Random"):
        nas.search(SEPARABLE, separable, strategy=optuna.samplers.RandomSampler(seed=5), budget=31,
                   workdir=tmp_path / "split", **kw)
    with pytest.raises(nas.ConfigError, match="expected a name, a Strategy or an Optuna sampler, got dict"):
        nas.search(SEPARABLE, separable, {"score": "max"}, strategy={"name": "tpe"}, budget=2)
    with pytest.raises(nas.ConfigError, match="set the sampler's own options"):
        nas.search(SEPARABLE, separable, {"score": "max"}, strategy=optuna.samplers.RandomSampler(),
                   strategy_options={"seed": 1}, budget=2)


def test_optuna_sampler_still_stops_on_an_exhausted_space():
    tiny = Space(a=Choice([0, 1]), b=Choice([0, 1]))
    r = nas.search(tiny, lambda a: {"s": float(a["a"] + a["b"])}, {"s": "max"}, strategy="tpe", budget=10, seed=0,
                   executor=nas.SimulatedClockExecutor())
    assert r.stop_reason == "exhausted" and len(r.completed) == 4


def test_optuna_exploration_after_repeats_follows_nested_decisions_and_resumes_exactly(monkeypatch, tmp_path):
    from nas.strategies.optuna_sampler import OptunaTPE

    monkeypatch.setattr(OptunaTPE, "repeat_patience", 1)  # every repeat is replaced: the enqueue path on each
    kw = dict(objectives={"acc": "max"}, strategy="tpe", seed=3, executor=nas.SimulatedClockExecutor())
    whole = nas.search(NESTED, nested, budget=60, workdir=tmp_path / "whole", **kw)
    assert len({t.arch_id for t in whole.trials}) == 60
    for t in whole.trials:
        NESTED.validate(t.arch)
    nas.search(NESTED, nested, budget=25, workdir=tmp_path / "split", **kw)
    split = nas.search(NESTED, nested, budget=60, workdir=tmp_path / "split", **kw)
    assert [t.arch_id for t in split.trials] == [t.arch_id for t in whole.trials]


def test_optuna_strategy_errors_are_clear():
    problem = Problem.make({"score": "max"})
    with pytest.raises(nas.ConfigError, match="sampler_options"):
        make_strategy("tpe", SEPARABLE, problem, 0, sampler_options={"bogus": 1})
    with pytest.raises(nas.ConfigError, match="'cmaes' optimises one objective; got 2"):
        make_strategy("cmaes", SEPARABLE, Problem.make({"score": "max", "latency_ms": "min"}), 0)
    assert make_strategy("cmaes", SEPARABLE, problem, 0).ask(1)  # the cmaes package is a dependency
    with pytest.raises(nas.ConfigError, match="FidelitySpace"):
        make_strategy("hyperband", SEPARABLE, problem, 0)
    with pytest.raises(nas.ConfigError, match="kappa"):
        make_strategy("bayesian", SEPARABLE, problem, 0, kappa=-1)


def noisy_fidelity(arch, budget):
    """Low budgets see the score through noise that shrinks as budget grows (deterministic per arch)."""
    rng = np.random.default_rng(int(arch.id[:8], 16))
    m = separable(arch)
    return {**m, "score": m["score"] + rng.normal(0, 2.0 / budget)}


def test_successive_halving_promotes_the_best():
    space = FidelitySpace(SEPARABLE, [1, 3, 9])
    evaluate = space.evaluator(noisy_fidelity)
    result = nas.search(space, evaluate, {"score": "max"}, strategy="successive-halving", budget=130, seed=0,
                        executor=nas.SimulatedClockExecutor())
    by_level = {lv: [t for t in result.completed if t.arch["budget"] == lv] for lv in space.levels}
    assert all(t.metrics["budget"] == t.arch["budget"] for t in result.completed)
    n1, n3, n9 = (len(by_level[lv]) for lv in space.levels)
    assert n1 > n3 > n9 >= 3
    low = {space.strip(t.arch).id: t.metrics["score"] for t in by_level[1]}
    promoted = [low[space.strip(t.arch).id] for t in by_level[3]]
    assert np.mean(promoted) > np.quantile(list(low.values()), 0.6)  # promotion picks the top of a rung
    top = max(by_level[9], key=lambda t: t.metrics["score"])
    assert top.metrics["score"] >= np.quantile([t.metrics["score"] for t in by_level[3]], 0.5)


def test_multi_objective_promotion_prefers_non_dominated():
    space = FidelitySpace(SEPARABLE, [1, 3])
    problem = Problem.make({"score": "max", "cost": "min"})
    strat = make_strategy("successive-halving", space, problem, 0, eta=2)
    evaluate = space.evaluator(noisy_fidelity)
    for _ in range(60):
        for a in strat.ask(1):
            strat.tell(a, TrialResult(evaluate(a)))
    rung0 = strat.rungs[0][0]
    pts = np.array([problem.vector(r.metrics) for _, r in rung0])
    rank = np.empty(len(pts))
    for k, f in enumerate(non_dominated_sort(pts)):
        rank[f] = k
    promoted = set(strat.promoted[0][0])
    is_p = np.array([a.id in promoted for a, _ in rung0])
    assert is_p.any() and rank[is_p].mean() < rank[~is_p].mean()


def test_hyperband_runs_brackets_and_bayesian_handles_two_objectives_with_constraints():
    space = FidelitySpace(SEPARABLE, [1, 3, 9])
    r = nas.search(space, space.evaluator(noisy_fidelity), {"score": "max"}, strategy="hyperband",
                   budget=60, seed=1, executor=nas.SimulatedClockExecutor())
    first_levels = {t.arch["budget"] for t in r.trials}
    assert first_levels == {1, 3, 9}
    logging.getLogger("nas").setLevel(logging.ERROR)
    r = nas.search(SEPARABLE, separable, {"score": "max", "cost": "min"}, constraints=["cost <= 14"],
                   strategy="bayesian", strategy_options={**FAST_BAYES, "warmup": 8}, budget=20, seed=0,
                   executor=nas.SimulatedClockExecutor())
    assert len(r.trials) == 20 and len({t.arch_id for t in r.trials}) == 20
    assert r.pareto_front() and all(t.metrics["cost"] <= 14 for t in r.pareto_front())


def test_doc_examples_run(tmp_path, monkeypatch):
    from pathlib import Path

    from tests.docs import python_blocks

    doc = Path(__file__).resolve().parents[1] / "docs" / "strategies.md"
    blocks = python_blocks(doc)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/strategies.md python block {i + 1}", "exec"), namespace)


def test_optuna_strategies_leave_the_users_optuna_verbosity_alone(capsys):
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        nas.search(SMALL, bowl, {"loss": "min"}, strategy="tpe", budget=5, seed=0, executor=nas.SimulatedClockExecutor())
        assert optuna.logging.get_verbosity() == optuna.logging.INFO  # was left at ERROR for the whole process
        assert "Trial 0 finished" not in capsys.readouterr().err  # the search's own trials stay quiet
    finally:
        optuna.logging.set_verbosity(before)


def test_fixed_and_grid_values_that_name_no_decision_or_value_are_refused_before_anything_runs(caplog):
    """PartialFixedSampler / GridSampler params are our decisions' Optuna params: a name the space lacks (the
    dataframe's `blocks.0.kernel` for `blocks[0].kernel`) and a value out of range (an ordered choice's parameter is
    its index) are refused naming them; an index that is also an option's value fixes that index, with a warning."""
    import optuna

    space = Space(depth=Choice([2, 3, 4]), blocks=Repeat(count="depth", kernel=Choice(["k3", "k5"])))
    evaluate = lambda a: {"score": float(a["depth"])}  # noqa: E731
    tpe = lambda: optuna.samplers.TPESampler(seed=0)  # noqa: E731
    for sampler, match in [
            (optuna.samplers.PartialFixedSampler({"blocks.0.kernel": "k5"}, tpe()),
             r"PartialFixedSampler: 'blocks.0.kernel' is not a decision of the space .* blocks\[0\].kernel"),
            (optuna.samplers.PartialFixedSampler({"depth": 3}, tpe()),
             r"depth = 3 is not a value of this decision: an ordered choice's parameter is its option index 0..2"),
            (optuna.samplers.GridSampler({"depth": [0, 1], "blocks[0].kernel": ["k3", "k7"]}),
             r"GridSampler: blocks\[0\].kernel = 'k7' is not a value of this decision: expected one of \['k3', 'k5'\]")]:
        with pytest.raises(nas.ConfigError, match=match):
            nas.search(space, evaluate, {"score": "max"}, strategy=sampler, budget=2, seed=0)
    with caplog.at_level(logging.WARNING):
        held = nas.search(space, evaluate, {"score": "max"}, seed=0, budget=1,
                          strategy=optuna.samplers.PartialFixedSampler({"depth": 2}, tpe()))
    assert held.trials[0].arch["depth"] == 4 and "to hold depth = 2 give 0" in caplog.text
    fixed = nas.search(space, evaluate, {"score": "max"}, seed=0, budget=3,
                       strategy=optuna.samplers.PartialFixedSampler({"blocks[0].kernel": "k5"}, tpe()))
    assert {t.arch["blocks"][0]["kernel"] for t in fixed.trials} == {"k5"}
