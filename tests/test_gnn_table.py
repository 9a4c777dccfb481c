"""Recorded tables of sampled architectures: `TableSpace` keeps searches on the recorded architectures, the
replay returns the recorded numbers, and the committed GNN tables (experiments/build_gnn_table.py; package
data) replay."""

from __future__ import annotations

import csv
import json
import statistics

import numpy as np
import pytest

import nas
from nas.spaces import Choice, Space
from nas.tabular import TableSpace, TabularBenchmark, gnn_planetoid_table, gnn_table_dir, recorded_table

WEIGHTS = np.random.default_rng(7).random((6, 5))
BASE = Space({f"x{i}": Choice(list(range(5)), ordered=False) for i in range(6)})  # 15,625 architectures
RECORDED = [BASE.sample(np.random.default_rng([3, i])) for i in range(60)]


def score(arch):
    return {"score": float(sum(WEIGHTS[i, arch[f"x{i}"]] for i in range(6)))}


@pytest.fixture(scope="module")
def toy() -> TabularBenchmark:
    space = TableSpace(BASE, RECORDED)
    return TabularBenchmark("toy", space, {a.id: score(a) for a in space.archs}, lambda a: BASE.validate(a).id)


def test_every_operator_of_the_table_space_returns_a_recorded_architecture(toy):
    space, ids = toy.space, {a.id for a in RECORDED}
    rng = np.random.default_rng(0)
    assert space.size() == len(ids) == len(list(space))
    for _ in range(50):
        a, b = space.sample(rng), space.sample(rng)
        child = space.mutate(a, rng)
        guided = space.mutate(a, rng, guide=[b])
        assert {a.id, b.id, child.id, guided.id, space.crossover(a, b, rng).id} <= ids
        assert child.id != a.id and guided.id != a.id
        anywhere = BASE.sample(rng)
        assert space.from_vector(BASE.to_vector(anywhere)).id in ids
        assert space.from_onehot(BASE.to_onehot(anywhere)).id in ids
    nbs = space.neighbours(RECORDED[0])
    assert len(nbs) == space.k and RECORDED[0].id not in {n.id for n in nbs} and {n.id for n in nbs} <= ids


def test_nearest_is_the_recorded_architecture_of_fewest_differing_decisions(toy):
    rng = np.random.default_rng(1)
    for _ in range(20):
        query = BASE.sample(rng)
        dist = [int((BASE.to_vector(a) != BASE.to_vector(query)).sum()) for a in RECORDED]
        assert int((BASE.to_vector(toy.space.nearest(query)) != BASE.to_vector(query)).sum()) == min(dist)
    assert toy.space.nearest(RECORDED[5]).id == RECORDED[5].id
    neighbour_dist = [int((BASE.to_vector(n) != BASE.to_vector(RECORDED[0])).sum()) for n in toy.space.neighbours(RECORDED[0])]
    assert neighbour_dist == sorted(neighbour_dist)


def test_an_architecture_outside_the_table_is_named_in_the_error(toy):
    outside = next(a for a in BASE if a.id not in {r.id for r in RECORDED})
    with pytest.raises(nas.InvalidArchitectureError, match=outside.id[:12]):
        toy.space.validate(outside)
    with pytest.raises(LookupError, match="not in the toy table"):
        toy(outside)
    assert not toy.space.contains(outside) and toy.space.contains(RECORDED[0].to_dict())


@pytest.mark.parametrize("strategy", ["random", "rl", "evolution", "local", "bayesian"])
def test_a_search_over_the_table_asks_only_for_recorded_architectures(toy, strategy, one_thread):
    result = nas.search(toy.space, toy, {"score": "max"}, strategy=strategy, budget=25, seed=0,
                        executor=nas.SimulatedClockExecutor())
    assert len(result.completed) >= 20 and not [t for t in result.trials if t.status == "failed"]
    assert {t.arch_id for t in result.trials} <= {a.id for a in RECORDED}


def test_a_cut_off_table_keeps_architectures_recorded_with_every_seed(tmp_path):
    path = tmp_path / "t.csv"
    rows = [(RECORDED[0], 0, 0.5), (RECORDED[0], 1, 0.7), (RECORDED[1], 0, 0.9), (RECORDED[1], 1, 0.8),
            (RECORDED[2], 0, 0.99)]  # RECORDED[2] lacks seed 1: a build cut off mid-architecture
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["arch_id", "seed", "valid_acc", "arch"])
        w.writeheader()
        for a, s, v in rows:
            w.writerow({"arch_id": a.id, "seed": s, "valid_acc": v, "arch": json.dumps(a.to_dict())})
    mean = recorded_table(path, BASE)
    assert len(mean) == mean.space.size() == 2
    assert mean(RECORDED[0])["valid_acc"] == pytest.approx(0.6) and mean(RECORDED[1]) == {"valid_acc": pytest.approx(0.85)}
    with pytest.raises(LookupError):
        mean(RECORDED[2])
    first = recorded_table(path, BASE, seed=0)
    assert len(first) == 3 and first(RECORDED[2])["valid_acc"] == pytest.approx(0.99)
    with pytest.raises(nas.ConfigError, match="seed: 5"):
        recorded_table(path, BASE, seed=5)


# ------------------------------------------------------------------------------------- committed GNN tables
def csv_rows(dataset: str) -> dict[str, dict[int, dict[str, float]]]:
    out: dict[str, dict[int, dict[str, float]]] = {}
    with open(gnn_table_dir() / f"{dataset}.csv", newline="") as f:
        for r in csv.DictReader(f):
            out.setdefault(r["arch_id"], {})[int(r["seed"])] = {"valid_acc": float(r["valid_acc"]),
                                                                 "test_acc": float(r["test_acc"])}
    return out


@pytest.mark.parametrize("dataset", ["cora", "citeseer"])
def test_the_committed_table_replays_its_recorded_numbers(dataset):
    bench, recorded = gnn_planetoid_table(dataset), csv_rows(dataset)
    complete = {aid: runs for aid, runs in recorded.items() if set(runs) == {0, 1}}
    assert len(bench) == len(complete) >= 15
    for arch in bench.space:
        runs, got = complete[arch.id], bench(arch)
        for m in ("valid_acc", "test_acc"):
            assert got[m] == pytest.approx(statistics.fmean(runs[s][m] for s in (0, 1)))
    seed1 = gnn_planetoid_table(dataset, seed=1)
    arch = bench.space.archs[0]
    assert seed1(arch)["test_acc"] == pytest.approx(complete[arch.id][1]["test_acc"])
    gcn = {"layers": 1, "hidden_layers": [{"op": "gcn", "hidden": 16, "activation": "relu", "residual": False}],
           "output": {"op": "gcn"}}
    assert bench(gcn)["test_acc"] > 0.69  # the reference row: Kipf & Welling's GCN, same recipe


@pytest.mark.parametrize("strategy", ["random", "rl", "evolution"])
def test_a_search_with_enough_budget_finds_the_table_best(strategy, one_thread):
    bench = gnn_planetoid_table("cora")
    result = nas.search(bench.space, bench, {"valid_acc": "max"}, strategy=strategy, budget=len(bench), seed=0,
                        executor=nas.SimulatedClockExecutor(duration="train_seconds"))
    assert result.best("valid_acc").metrics["valid_acc"] == bench.optimum("valid_acc")


def test_the_committed_tables_are_package_data():
    """Every file of the tables folder is matched by pyproject's package-data globs for `nas`, so an installed
    wheel replays the tables without the source tree (the slow test below builds the wheel)."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(nas.__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["nas"]
    files = sorted(p.relative_to(root / "nas").as_posix() for p in gnn_table_dir().iterdir())
    assert {"cora.csv", "citeseer.csv"} <= {Path(f).name for f in files}
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)] == []


@pytest.mark.slow
def test_a_built_wheel_holds_the_tables(tmp_path):
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(nas.__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(root)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"nas/tables/gnn_planetoid/cora.csv", "nas/tables/gnn_planetoid/citeseer.csv"} <= names


def test_rl_draws_listed_architectures_by_its_policy_not_by_snapping(toy, one_thread):
    """On a listed space rl asks only recorded architectures, without repeats until all are seen; an untrained
    (uniform) policy draws them uniformly; and the tokens it reinforces are the evaluated architecture's own
    decisions, not those of a draw snapped onto it."""
    from nas.objectives import Problem
    from nas.strategies import make_strategy

    assert "listed" in toy.space.capabilities and "listed" not in BASE.capabilities
    problem = Problem.make({"score": "max"})
    rl = make_strategy("rl", toy.space, problem, seed=0)
    first = rl.ask(len(RECORDED))
    assert {a.id for a in first} == {a.id for a in RECORDED}  # every one once
    assert rl.ask(1)[0].id in {a.id for a in RECORDED}  # then repeats, still recorded
    for arch in first[:3]:
        assert rl.pending[arch.id][0] == [max(int(v), 0) for v in BASE.to_vector(arch)]
    counts = dict.fromkeys((a.id for a in RECORDED), 0)
    draws = 6000
    for _ in range(draws):
        rl.seen.clear()
        counts[rl.ask(1)[0].id] += 1
    share = np.array(list(counts.values())) / draws
    assert np.abs(share - 1 / len(RECORDED)).max() < 0.008  # uniform: 1/60 each, binomial sd 0.0017


def test_rl_on_a_listed_space_learns_to_draw_the_better_architectures(toy, one_thread):
    """After 40 results (8 policy steps) rl's draws among the listed architectures score above the table's mean."""
    from nas.objectives import Problem
    from nas.strategies import TrialResult, make_strategy

    rl = make_strategy("rl", toy.space, Problem.make({"score": "max"}), seed=0, batch_size=5)
    for _ in range(8):
        for arch in rl.ask(5):
            rl.tell(arch, TrialResult(metrics=toy(arch)))
    draws = []
    for _ in range(2000):
        rl.seen.clear()
        draws.append(toy(rl.ask(1)[0])["score"])
    table = [toy(a)["score"] for a in toy.space]
    assert np.mean(draws) > np.mean(table) + np.std(table)  # 1.8 sd above at seeds 0-2; an lr of 1e-6 gives +0.0


def test_evolution_on_a_listed_space_mutates_into_unseen_recorded_architectures(toy, one_thread):
    """On a table, a mutation lands on the nearest recorded architecture *not yet seen*: until the table is
    exhausted, no ask repeats an architecture (before, the nearest ones were soon all seen, and most asks were
    repeats answered from the cache)."""
    from nas.objectives import Problem
    from nas.strategies import make_strategy

    problem = Problem.make({"score": "max"})
    evo = make_strategy("evolution", toy.space, problem, seed=0, population_size=4)
    asked = []
    for _ in range(40):
        (arch,) = evo.ask(1)
        asked.append(arch.id)
        evo.tell(arch, nas.strategies.TrialResult(toy(arch)))
    assert len(set(asked)) == len(asked), len(set(asked))  # without the exclusion: 19 distinct of 40
    everything = toy.space.mutate(RECORDED[0], np.random.default_rng(0), exclude=[a.id for a in RECORDED])
    assert everything.id != RECORDED[0].id  # every architecture excluded: only the parent is
