"""Warm start on NAS-Bench-Graph: does telling a new search an earlier search's results save evaluations?

For each table and seed s: an earlier `evolution` search (seed s, budget 100) runs first. Then, side by
side, the same new search (`evolution`, seed 1000 + s, budget 300) runs cold and warm-started from the
earlier workdir (`nas.search(..., warm_start=DIR)`: the earlier results are told to the strategy, cost no
budget and are never evaluated again). Reported per table, mean and median over seeds:

- new evaluations until a new evaluation reaches the earlier search's best valid_acc (300 when never:
  counted, not dropped; the warm search cannot re-evaluate the earlier best itself, so where that best is
  the table's optimum it has to find a tie);
- the best valid_acc among the first 50 new evaluations (what the new evaluations found);
- the regret after 50 new evaluations of what each search knows (warm: its own trials and the earlier
  results; cold: its own trials).

Random search from the same seed (1000 + s) at the same budget (300) is the baseline of the evaluation
protocol (issue 22, `experiments/reporting.py`): per table x space, the best valid_acc among the first 50
and among all 300 new evaluations of the warm, cold and random searches, as the relative improvement over
random's mean (RI %) with Welch's 95 % interval, and the mean seconds of the new search. The warm search's
figure counts only its own new evaluations (not the earlier search's 100, which it was told for free).

Every search runs through `nas.search` on the simulated clock. Defaults are the strategy's own, the
same for every table. The space is the built-in graph-aware one and, as a user would write it, a plain
`Space` field by field (`--plain`), so the figure does not lean on a built-in encoding.

    .venv/bin/python experiments/warm_start.py            # 3 tables x 10 seeds, built-in and plain space
    .venv/bin/python experiments/warm_start.py --quick    # smoke run: cora, 2 seeds
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import nas
from nas.spaces import Space
from nas.spaces.nasbench_graph import plain_space  # noqa: F401  (NAS-Bench-Graph as a user writes it)
from nas.tabular import TabularBenchmark, nas_bench_graph
# experiments/reporting.py (the script folder is on sys.path)
from reporting import git_commit, protocol_report, protocol_table, ri_matrix, write_report

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("cora", "citeseer", "pubmed")
EARLIER, BUDGET, WINDOW = 100, 300, 50


def evaluations_to(result: nas.SearchResult, target: float) -> int:
    used = 0
    for t in result.trials:
        used += t.is_evaluation
        if t.status == "ok" and t.metrics["valid_acc"] >= target:
            return used
    return BUDGET


def best_within(result: nas.SearchResult, n: int) -> float:
    used, best = 0, -np.inf
    for t in result.trials:
        used += t.is_evaluation
        if used > n:
            break
        if t.status == "ok":
            best = max(best, t.metrics["valid_acc"])
    return float(best)


def timed(**kwargs: Any) -> tuple[nas.SearchResult, float]:
    t0 = time.perf_counter()
    result = nas.search(**kwargs)
    return result, time.perf_counter() - t0


def one_seed(bench: TabularBenchmark, space: Space, seed: int, tmp: Path) -> dict[str, Any]:
    """Earlier search, then the new search warm and cold, and random search from the same seed at the same
    budget (the protocol's baseline)."""
    run = dict(objectives={"valid_acc": "max"}, strategy="evolution", executor=nas.SimulatedClockExecutor())
    earlier = nas.search(space, bench, budget=EARLIER, seed=seed, workdir=tmp / "earlier", **run)
    target = earlier.best().metrics["valid_acc"]
    warm, warm_s = timed(space=space, evaluate=bench, budget=BUDGET, seed=1000 + seed, workdir=tmp / "warm",
                         warm_start=tmp / "earlier", **run)
    cold, cold_s = timed(space=space, evaluate=bench, budget=BUDGET, seed=1000 + seed, workdir=tmp / "cold", **run)
    optimum = max(r["valid_acc"] for r in bench.rows.values())
    row = {"seed": seed, "earlier_best": target, "earlier_best_is_optimum": target >= optimum,
           "warm_to_target": evaluations_to(warm, target), "cold_to_target": evaluations_to(cold, target),
           "warm_best_50": best_within(warm, WINDOW), "cold_best_50": best_within(cold, WINDOW),
           "warm_regret_50": optimum - max(best_within(warm, WINDOW), target),
           "cold_regret_50": optimum - best_within(cold, WINDOW),
           "warm_best_300": best_within(warm, BUDGET), "cold_best_300": best_within(cold, BUDGET),
           "warm_seconds": warm_s, "cold_seconds": cold_s}
    rnd, rnd_s = timed(space=space, evaluate=bench, budget=BUDGET, seed=1000 + seed, workdir=tmp / "random",
                       **{**run, "strategy": "random"})
    row.update(random_to_target=evaluations_to(rnd, target), random_best_50=best_within(rnd, WINDOW),
               random_best_300=best_within(rnd, BUDGET), random_seconds=rnd_s)
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("warm_to_target", "cold_to_target", "random_to_target", "warm_best_50", "cold_best_50",
                "random_best_50", "warm_regret_50", "cold_regret_50", "warm_best_300", "cold_best_300",
                "random_best_300"):
        values = np.array([r[key] for r in rows], dtype=float)
        out[key] = {"mean": float(values.mean()), "median": float(np.median(values))}
    out["warm_fewer_evaluations"] = sum(r["warm_to_target"] < r["cold_to_target"] for r in rows)
    out["ties"] = sum(r["warm_to_target"] == r["cold_to_target"] for r in rows)
    return out


METHODS = ("warm", "cold", "random")


def protocol(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """Best valid_acc within WINDOW and within BUDGET new evaluations, warm and cold evolution against
    random search (same seeds, same budget); ProtocolReports by "best_valid_acc@<n>"."""
    costs = {m: [r[f"{m}_seconds"] for r in rows] for m in METHODS}
    return {f"best_valid_acc@{n}": protocol_report({m: [r[f"{m}_best_{n}"] for r in rows] for m in METHODS},
                                                   direction="max", baseline="random", costs=costs,
                                                   budgets={m: float(n) for m in METHODS},
                                                   label=f"{label} best_valid_acc@{n}")
            for n in (WINDOW, BUDGET)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default results/warm_start.json; warm_start_quick.json with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke run: cora, 2 seeds (the protocol warns: < 10)")
    args = ap.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds = ["cora"], min(args.seeds, 2)
    if args.out is None:
        args.out = ROOT / "experiments" / "results" / ("warm_start_quick.json" if args.quick else "warm_start.json")
    t0 = time.time()
    results: dict[str, Any] = {}
    print(f"warm start vs cold start: evolution, earlier search {EARLIER} evaluations, new search {BUDGET}; "
          f"{args.seeds} seeds; mean (median)")
    print(f"{'table':<9}{'space':<9}{'evals to earlier best: warm':>30}{'cold':>16}{'random':>16}"
          f"{'warm fewer':>12}{'best of first 50: warm':>25}{'cold':>16}{'regret@50 known: warm':>24}{'cold':>16}")
    reports: dict[str, dict[str, Any]] = {}
    for dataset in args.datasets:
        bench = nas_bench_graph(dataset)
        for kind, space in (("built-in", bench.space), ("plain", plain_space())):
            rows = []
            for seed in range(args.seeds):
                with tempfile.TemporaryDirectory() as tmp:
                    rows.append(one_seed(bench, space, seed, Path(tmp)))
            s = summarise(rows)
            label = f"{dataset}/{kind}"
            reports[label] = protocol(rows, label)
            results[label] = {"summary": s, "per_seed": rows,
                              "protocol": {k: {**rep.to_dict(), "table": protocol_table(rep)}
                                           for k, rep in reports[label].items()}}

            def cell(key: str, fmt: str) -> str:
                return f"{s[key]['mean']:{fmt}} ({s[key]['median']:{fmt}})"

            print(f"{dataset:<9}{kind:<9}{cell('warm_to_target', '.1f'):>30}{cell('cold_to_target', '.1f'):>16}"
                  f"{cell('random_to_target', '.1f'):>16}{s['warm_fewer_evaluations']:>9}/{args.seeds:<2}"
                  f"{cell('warm_best_50', '.4f'):>25}"
                  f"{cell('cold_best_50', '.4f'):>16}{cell('warm_regret_50', '.4f'):>24}"
                  f"{cell('cold_regret_50', '.4f'):>16}")
    print("\nprotocol (issue 22): best valid_acc of the new evaluations, RI % over random search from the same "
          "seeds at the same budget, Welch 95 % interval; search cost = mean seconds of the new search")
    ri_tables = {}
    for n in (WINDOW, BUDGET):
        key = f"best_valid_acc@{n}"
        ri_tables[key] = ri_matrix({label: r[key] for label, r in reports.items()})
        print(f"\n{key}: RI % over random (bold: the 95 % interval excludes 0)\n{ri_tables[key]}")
    for label, by_key in reports.items():
        for key, rep in by_key.items():
            print(f"\n{label} {key}\n{protocol_table(rep)}")
    report = {"script": "experiments/warm_start.py", "command": " ".join(["python", *sys.argv]),
              "git_commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "settings": {"earlier_budget": EARLIER, "budget": BUDGET, "window": WINDOW, "seeds": args.seeds,
                           "strategy": "evolution (defaults)", "executor": "SimulatedClockExecutor(workers=1)",
                           "baseline": "random search, seed 1000 + s, budget 300, same space and executor"},
              "results": results, "ri_tables": ri_tables, "seconds": round(time.time() - t0, 1)}
    write_report(args.out, report, t0)
    return report


if __name__ == "__main__":
    main()
