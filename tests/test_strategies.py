"""Strategies find what they should: known optima of a synthetic space, and beat random on NAS-Bench-Graph."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nas
from nas.objectives import Objective
from nas.pareto import hypervolume
from nas.spaces import Choice, Space

WEIGHTS = np.array([[0.3, 1.0, 0.1, 0.7, 0.5], [0.9, 0.2, 0.4, 0.0, 0.6], [0.1, 0.3, 0.8, 0.5, 0.2],
                    [0.6, 0.6, 0.9, 0.1, 0.3], [0.2, 0.7, 0.5, 0.4, 1.0], [0.8, 0.1, 0.3, 0.6, 0.4]])
SPACE = Space({f"x{i}": Choice(list(range(5)), ordered=False) for i in range(6)})


def separable(arch):
    return {"score": float(sum(WEIGHTS[i, arch[f"x{i}"]] for i in range(6)))}


OPTIMUM = float(WEIGHTS.max(axis=1).sum())


@pytest.mark.parametrize("strategy", ["evolution", "local"])
def test_finds_the_known_optimum_of_a_separable_space(strategy):
    # 15,625 architectures, one optimum; random search with 300 queries finds it with p ~ 2 %
    found = [nas.search(SPACE, separable, {"score": "max"}, strategy=strategy, budget=300, seed=s).best().metrics["score"]
             for s in range(5)]
    assert all(abs(f - OPTIMUM) < 1e-9 for f in found), found


def regrets(bench, strategy, seeds, budget=300, **kw):
    best = bench.optimum("valid_acc")
    return np.array([best - nas.search(bench.space, bench, {"valid_acc": "max"}, strategy=strategy, budget=budget,
                                       seed=s, executor=nas.SimulatedClockExecutor(), **kw).best().metrics["valid_acc"]
                     for s in seeds])


def test_evolution_and_local_beat_random_on_nas_bench_graph(cora):
    seeds = range(10)
    rnd = regrets(cora, "random", seeds).mean()
    assert rnd > 0.005  # the table is not trivial at this budget
    assert regrets(cora, "evolution", seeds).mean() < 0.8 * rnd
    assert regrets(cora, "local", seeds).mean() < rnd


def test_constrained_search_returns_feasible_best_and_beats_random(cora):
    median = float(np.median(cora.column("latency_s")))
    feasible_best = max(r["valid_acc"] for r in cora.rows.values() if r["latency_s"] <= median)
    out = {}
    for strategy in ("random", "evolution"):
        reg = []
        for s in range(8):
            r = nas.search(cora.space, cora, {"valid_acc": "max"}, constraints=[f"latency_s <= {median}"],
                           strategy=strategy, budget=200, seed=s, executor=nas.SimulatedClockExecutor())
            assert r.best().metrics["latency_s"] <= median
            reg.append(feasible_best - r.best().metrics["valid_acc"])
        out[strategy] = np.mean(reg)
    assert out["evolution"] < out["random"], out


def test_nsga2_front_beats_random_in_hypervolume(cora):
    objs = [Objective("valid_acc", "max"), Objective("latency_s", "min")]
    ref = [-np.percentile(cora.column("valid_acc"), 5), np.percentile(cora.column("latency_s"), 95)]
    true_hv = hypervolume(cora.pareto_points(objs), ref)

    def hv(strategy, seed):
        r = nas.search(cora.space, cora, {"valid_acc": "max", "latency_s": "min"}, strategy=strategy, budget=300,
                       seed=seed, executor=nas.SimulatedClockExecutor())
        return r.hypervolume([-ref[0], ref[1]]) / true_hv

    nsga2 = np.mean([hv("nsga2", s) for s in range(6)])
    rnd = np.mean([hv("random", s) for s in range(6)])
    assert 0 < rnd < nsga2 <= 1.0


def test_evolution_tournament_defaults_to_half_the_population_and_ties_go_to_the_youngest():
    from nas.objectives import Problem
    from nas.strategies.base import TrialResult
    from nas.strategies.evolution import RegularizedEvolution, tournament

    space = Space(a=Choice(list(range(10))))
    problem = Problem.make({"acc": "max"})
    assert RegularizedEvolution(space, problem, population_size=10).sample_size == 5
    assert RegularizedEvolution(space, problem).sample_size == 25
    population = [(space.validate({"a": i}), TrialResult({"acc": 1.0 if i in (2, 7) else 0.0}, "ok"))
                  for i in range(10)]  # oldest first: members 2 and 7 tie for the best
    rng = np.random.default_rng(0)
    winners = {tournament(problem, population, 10, rng)["a"] for _ in range(20)}
    assert winners == {7}  # the whole population in the tournament: the younger of the two, always


def test_evolution_biases_mutation_toward_values_of_its_best_quarter():
    from nas.errors import ConfigError
    from nas.objectives import Problem
    from nas.strategies.base import TrialResult
    from nas.strategies.evolution import RegularizedEvolution, best_quarter

    space = Space(**{f"x{i}": Choice(list(range(10))) for i in range(4)})
    problem = Problem.make({"acc": "max"})
    evo = RegularizedEvolution(space, problem, seed=0, population_size=20, mutation_bias=1.0)
    rng = np.random.default_rng(0)
    for i in range(40):  # the 10 best results (old, outside the population of 20) hold x0 = 9; no other does
        a = space.validate({**space.sample(rng).to_dict(), "x0": 9 if i < 10 else int(rng.integers(9))})
        evo.tell(a, TrialResult({"acc": 1.0 if i < 10 else 0.1 * rng.random()}, "ok"))
    assert [a["x0"] for a in evo._elite()] == [9] * 10
    assert evo._elite() == best_quarter(problem, evo.history)  # the incremental ranking equals the plain one
    evo.random_asked = evo.population_size
    uniform = RegularizedEvolution(space, problem, seed=0, population_size=20, mutation_bias=0.0)
    uniform.load_state_dict(json.loads(json.dumps(evo.state_dict())))
    biased = sum(c["x0"] == 9 for c in evo.ask(400))  # x0 mutates in 1/4 of children, always to 9
    plain = sum(c["x0"] == 9 for c in uniform.ask(400))  # 1/4 x 1/9 of children
    assert 70 < biased < 130 and plain < 25, (biased, plain)
    with pytest.raises(ConfigError, match="mutation_bias"):
        RegularizedEvolution(space, problem, mutation_bias=1.5)


def test_evolution_keeps_uniform_mutation_for_spaces_whose_mutate_takes_no_guide():
    from nas.objectives import Problem
    from nas.strategies.evolution import RegularizedEvolution

    class Plain(Space):
        def mutate(self, arch, rng):  # a user's override written against the two-argument contract
            return super().mutate(arch, rng)

    space = Plain(a=Choice(list(range(5))), b=Choice(list(range(5))))
    evo = RegularizedEvolution(space, Problem.make({"acc": "max"}), population_size=4)
    assert evo.mutation_bias == 0.0
    r = nas.search(space, lambda a: {"acc": a["a"] + a["b"]}, {"acc": "max"}, strategy=evo, budget=20, seed=0)
    assert r.best().metrics["acc"] >= 6


def test_evolution_beats_random_on_nas_bench_graph_written_as_a_plain_space(cora):
    """The same table searched through `plain_space()` (one Choice per decision, no canonical ids, label
    mutation): the gain must not come from the built-in graph-aware encoding."""
    from nas.spaces.nasbench_graph import plain_space

    space = plain_space()
    assert space.size() == 9 * 9 ** 4 and "graph" not in type(space).__name__.lower()
    best = cora.optimum("valid_acc")

    def regret(strategy: str, seed: int) -> float:
        r = nas.search(space, cora, {"valid_acc": "max"}, strategy=strategy, budget=300, seed=seed,
                       executor=nas.SimulatedClockExecutor())
        return best - r.best().metrics["valid_acc"]

    rnd = np.mean([regret("random", s) for s in range(10)])
    evo = np.mean([regret("evolution", s) for s in range(10)])
    assert rnd > 0.005 and evo < rnd, (evo, rnd)


def _rugged(arch) -> dict[str, float]:
    """A deterministic score with no structure (a hash of the architecture), so evolution's elite goes stale."""
    import hashlib

    digest = hashlib.sha256(json.dumps(arch.to_dict(), sort_keys=True).encode()).digest()
    return {"acc": int.from_bytes(digest[:4], "big") / 2**32}


def test_a_converged_strategy_explores_unknown_neighbours_instead_of_ending_below_its_budget(tmp_path):
    """Evolution on a 3-op NB201 cell (408 distinct networks) re-proposed known networks for 100 rounds and ended
    the search as exhausted at 163 of 200; it now gets unknown neighbours of its repeats, and resumes exactly."""
    from nas.spaces import NasBench201Space

    space = NasBench201Space(ops=("none", "skip_connect", "nor_conv_3x3"), channels=4, cells_per_stage=1)
    run = dict(strategy="evolution", objectives={"acc": "max"}, budget=200, seed=0)
    full = nas.search(space, _rugged, **run)
    assert full.stop_reason == "budget" and len(full.trials) == 200
    assert len({space.canonical_key(t.architecture) for t in full.trials}) == 200

    calls = 0

    def interrupted(arch):
        nonlocal calls
        calls += 1
        if calls == 180:
            raise KeyboardInterrupt
        return _rugged(arch)

    with pytest.raises(KeyboardInterrupt):
        nas.search(space, interrupted, workdir=tmp_path / "run", **run)
    resumed = nas.search(space, _rugged, workdir=tmp_path / "run", **run)
    assert [t.arch_id for t in resumed.trials] == [t.arch_id for t in full.trials]


def test_a_space_smaller_than_the_budget_still_ends_when_every_network_is_evaluated():
    space = Space(a=Choice([1, 2]), b=Choice(["x", "y"]))
    for strategy in ("evolution", "random", "nsga2"):
        result = nas.search(space, _rugged, strategy=strategy, objectives={"acc": "max"}, budget=20, seed=0)
        assert result.stop_reason == "exhausted" and len(result.trials) == 4, strategy


def test_successive_halving_is_not_handed_unasked_fidelity_levels_when_it_runs_out():
    """The de-duplication fallback proposed neighbours in the FidelitySpace, whose fidelity field changed: all 27
    (architecture, level) pairs of 9 architectures were trained, the worst one at 9 epochs."""
    from nas.strategies.multifidelity import FidelitySpace

    fs = FidelitySpace(Space(x=Choice(list(range(9)))), [1, 3, 9], field="epochs")
    result = nas.search(fs, fs.evaluator(lambda a, budget: {"acc": a["x"] + 0.1 * budget}), {"acc": "max"},
                        strategy="successive-halving", budget=30, seed=0)
    levels = [t.arch["epochs"] for t in result.trials]
    assert result.stop_reason == "exhausted" and levels.count(1) == 9 and levels.count(9) == 1
    assert levels.count(3) <= 4
