"""random vs rl vs evolution vs autognn on the recorded GNN tables (Cora, CiteSeer), beside the GCN reference row.

Per dataset, budget and seed s: `nas.search(bench.space, bench, {"valid_acc": "max"}, strategy=..., budget=...,
seed=s, executor=SimulatedClockExecutor(duration="train_seconds"))` over `nas.tabular.gnn_planetoid_table`
(metrics: the mean over the table's two training seeds). A search's pick is its best validation accuracy;
its test accuracy is what is reported. Beside them: the random-sampling average (mean test accuracy of the
architectures random search evaluated, Yang et al.'s baseline), the 2-layer GCN's row of the same table,
and the table's own facts (size, best, seed-vs-seed noise). Protocol tables (experiments/reporting.py) give
means with 95 % intervals and the relative improvement over the random-sampling average; the paired
differences rl - random, evolution - random, autognn - random and autognn - rl (same seeds) answer issue 25
part 3's "rl beats random at equal budget on the benchmark tables"; `autognn` is the conservative controller
with Auto-GNN's action classes (`GNN_ACTION_CLASSES`). On a table space rl and autognn draw among the listed
architectures not yet seen, weighted by the policy (no snapping to the nearest); an autognn proposal is a listed
architecture that differs from the best in exactly one action class, or a full listed draw (counted in `escapes`)
when none is left. A run costs seconds: the trainings are in the table.

    .venv/bin/python experiments/gnn_table_search.py                      # cora + citeseer, 30 seeds, budgets 5 and 10
    .venv/bin/python experiments/gnn_table_search.py --quick              # cora, 3 seeds, budget 10
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

import nas
from nas.spaces.gnn_sharing import GNN_ACTION_CLASSES
from nas.tabular import TabularBenchmark, gnn_planetoid_table, gnn_table_dir
from build_gnn_table import seed_noise  # noqa: E402  (experiments/ is on sys.path)
from gnn_planetoid import GCN, describe  # noqa: E402
from reporting import git_commit, protocol_report, protocol_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("cora", "citeseer")
STRATEGIES = ("random", "rl", "evolution", "autognn")
# evolution's default population (50) would make every search of <= 50 evaluations pure random sampling; 4
# (tournament of 2) lets it evolve from the 5th evaluation on, the same for every dataset and budget
OPTIONS: dict[str, dict[str, Any]] = {"evolution": {"population_size": 4}, "autognn": {"classes": GNN_ACTION_CLASSES}}


def table_facts(bench: TabularBenchmark, dataset: str) -> dict[str, Any]:
    valid, test = bench.column("valid_acc"), bench.column("test_acc")
    archs = list(bench.space)
    best = archs[int(np.argmax(valid))]
    gcn = bench(GCN)
    return {"architectures": len(bench), "best_valid": {"summary": describe(best), **bench(best)},
            "best_test_acc": float(test.max()), "median_test_acc": float(np.median(test)),
            "min_test_acc": float(test.min()), "mean_test_acc": float(test.mean()),
            "gcn": {**gcn, "rank_by_valid": int((valid > gcn["valid_acc"]).sum()) + 1,
                    "rank_by_test": int((test > gcn["test_acc"]).sum()) + 1},
            "params": {"min": float(bench.column("params").min()), "max": float(bench.column("params").max())},
            "seed_noise": seed_noise(gnn_table_dir() / f"{dataset}.csv")}


def run_one(bench: TabularBenchmark, strategy: str, budget: int, seed: int) -> dict[str, Any]:
    result = nas.search(bench.space, bench, {"valid_acc": "max"}, strategy=strategy, budget=budget, seed=seed,
                        strategy_options=OPTIONS.get(strategy), executor=nas.SimulatedClockExecutor(duration="train_seconds"))
    best = result.best("valid_acc")
    assert best is not None
    return {"seed": seed, "pick_id": best.arch_id, "pick": describe(best.architecture),
            "valid_acc": best.metrics["valid_acc"], "test_acc": best.metrics["test_acc"],
            "regret_valid": bench.optimum("valid_acc") - best.metrics["valid_acc"],
            "found_best": best.metrics["valid_acc"] == bench.optimum("valid_acc"),
            "evaluated": len(result.completed), "sampled_test_mean": statistics.fmean(t.metrics["test_acc"] for t in result.completed),
            "simulated_seconds": max(t.finished for t in result.trials)}


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean of a - b over the same seeds, its 95 % t-interval, the paired t-test's p, wins / ties / losses."""
    d = np.asarray(a) - np.asarray(b)
    out = {"mean": float(d.mean()), "wins": int((d > 0).sum()), "ties": int((d == 0).sum()), "losses": int((d < 0).sum())}
    if d.std() > 0:
        t = stats.ttest_rel(a, b)
        ci = t.confidence_interval(0.95)
        out.update(ci95_low=float(ci.low), ci95_high=float(ci.high), p=float(t.pvalue))
    else:
        out.update(ci95_low=out["mean"], ci95_high=out["mean"], p=1.0)
    return out


def compare(bench: TabularBenchmark, budget: int, seeds: Sequence[int], label: str) -> dict[str, Any]:
    runs = {s: [run_one(bench, s, budget, seed) for seed in seeds] for s in STRATEGIES}
    gcn = bench(GCN)["test_acc"]
    values = {"random": [r["sampled_test_mean"] for r in runs["random"]],
              **{f"{s} pick": [r["test_acc"] for r in runs[s]] for s in STRATEGIES},
              "gcn (table row)": [gcn] * len(seeds)}
    costs = {f"{s} pick": [r["simulated_seconds"] for r in runs[s]] for s in STRATEGIES}
    report = protocol_report(values, direction="max", baseline="random", costs=costs, label=label)
    diffs = {f"{s} - random": {m: paired([r[m] for r in runs[s]], [r[m] for r in runs["random"]])
                               for m in ("test_acc", "valid_acc")} for s in ("rl", "evolution", "autognn")}
    diffs["autognn - rl"] = {m: paired([r[m] for r in runs["autognn"]], [r[m] for r in runs["rl"]])
                             for m in ("test_acc", "valid_acc")}
    return {"budget": budget, "runs": runs, "protocol": report.to_dict(), "protocol_table": protocol_table(report),
            "paired": diffs,
            "summary": {s: {"test_acc": statistics.fmean(r["test_acc"] for r in runs[s]),
                            "valid_acc": statistics.fmean(r["valid_acc"] for r in runs[s]),
                            "regret_valid": statistics.fmean(r["regret_valid"] for r in runs[s]),
                            "found_best": sum(r["found_best"] for r in runs[s]) / len(seeds)} for s in STRATEGIES}}


def fmt_diff(d: Mapping[str, float]) -> str:
    return (f"{100 * d['mean']:+.2f} [{100 * d['ci95_low']:+.2f}, {100 * d['ci95_high']:+.2f}] p={d['p']:.2g} "
            f"({d['wins']}/{d['ties']}/{d['losses']})")


def print_report(results: Mapping[str, Any]) -> None:
    for name, res in results.items():
        f = res["table"]
        n = f["seed_noise"]
        print(f"\n{name}: {f['architectures']} architectures; best valid {100 * f['best_valid']['valid_acc']:.1f} "
              f"(test {100 * f['best_valid']['test_acc']:.1f}) {f['best_valid']['summary']}; GCN row valid "
              f"{100 * f['gcn']['valid_acc']:.1f} test {100 * f['gcn']['test_acc']:.1f} (rank {f['gcn']['rank_by_valid']} "
              f"by valid); test median {100 * f['median_test_acc']:.1f}, range {100 * f['min_test_acc']:.1f}-"
              f"{100 * f['best_test_acc']:.1f}; seed noise (valid): tau {n['valid_acc']['kendall_tau']:.2f}, "
              f"mean |diff| {100 * n['valid_acc']['mean_abs_diff']:.2f} points")
        for cmp in res["budgets"]:
            print(f"\n{name}, budget {cmp['budget']} (test accuracy %, pick chosen on validation; "
                  f"{len(cmp['runs']['random'])} seeds)")
            print(f"{'strategy':<10} {'pick test':>9} {'pick valid':>10} {'valid regret':>12} {'found best':>10}")
            for s, v in cmp["summary"].items():
                print(f"{s:<10} {100 * v['test_acc']:>9.2f} {100 * v['valid_acc']:>10.2f} "
                      f"{100 * v['regret_valid']:>12.2f} {100 * v['found_best']:>9.0f}%")
            print(f"{'GCN row':<10} {100 * f['gcn']['test_acc']:>9.2f} {100 * f['gcn']['valid_acc']:>10.2f}")
            for k, d in cmp["paired"].items():
                print(f"paired {k}: test {fmt_diff(d['test_acc'])}; valid {fmt_diff(d['valid_acc'])}")
            print(cmp["protocol_table"])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--seeds", type=int, default=30, help="seeds 0..N-1 (default 30)")
    ap.add_argument("--budgets", nargs="+", type=int, default=[5, 10])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="smoke run: cora, 3 seeds, budget 10")
    args = ap.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.budgets = ["cora"], 3, [10]
    if args.out is None:
        args.out = ROOT / "experiments" / "results" / f"gnn_table_search{'_quick' if args.quick else ''}.json"
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for name in args.datasets:
        bench = gnn_planetoid_table(name)
        budgets = [b for b in args.budgets if b < len(bench)]
        results[name] = {"table": table_facts(bench, name),
                         "budgets": [compare(bench, b, range(args.seeds), f"gnn_table {name} budget {b}") for b in budgets]}
    doc = {"script": "experiments/gnn_table_search.py",
           "command": "python experiments/gnn_table_search.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "git_commit": git_commit(),
           "settings": {"datasets": args.datasets, "seeds": list(range(args.seeds)), "budgets": args.budgets,
                        "strategies": list(STRATEGIES), "strategy_options": OPTIONS, "objective": {"valid_acc": "max"},
                        "replay": "nas.tabular.gnn_planetoid_table: mean over training seeds 0 and 1",
                        "executor": "SimulatedClockExecutor(workers=1, duration='train_seconds')"},
           "results": results, "total_seconds": time.perf_counter() - started}
    print_report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\ntotal {doc['total_seconds']:.0f} s; wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return doc


if __name__ == "__main__":
    main()
