"""Black-box strategies on NAS-Bench-Graph (issue 4): rl, bayesian and Optuna samplers against random search.

Measures the black-box acceptance points of the strategies issue:

1. single objective (max valid_acc, budget 100, seeds 0..19): mean validation regret with its 95 %
   t-interval and the test_acc of the returned architecture for `random`, `evolution`, `rl`,
   `bayesian`, `mcts`, `smbo` and `tpe` (our Optuna adapter through `nas.search`), plus `optuna-tpe` (a
   raw Optuna study, core_benchmark.py's protocol) to show the adapter reproduces it; every row also
   gives the relative improvement RI = 100 (acc - acc_rand) / acc_rand over the average random
   architecture (the table's mean), after Yang et al., "NAS evaluation is frustratingly hard", and the
   protocol tables of experiments/reporting.py (RI over random search at the same budget and seeds, Welch
   95 % interval, search cost; `--from-json PATH` recomputes them from a recorded run). Targets:
   bayesian beats random and matches or beats tpe; rl, mcts and smbo beat random.
2. two objectives (max valid_acc, min latency_s, budget 100): hypervolume as a fraction of the true
   front's (core_benchmark.py's reference point) for `random`, `nsga2`, `bayesian` (multi-objective),
   `nsga2-optuna` (adapter) and `optuna-nsga2` (raw study). Target: ours >= Optuna NSGA-II.
3. overhead: wall time of one ask + tell after 1,000 results have been told (random architectures of the
   cora table), for every registered strategy.

Every strategy runs with its default options on every dataset (no per-dataset tuning); rl, bayesian, mcts
and smbo defaults were chosen on cora with seeds 100..119, disjoint from the reported seeds 0..19.

    .venv/bin/python experiments/strategies_blackbox.py                # full run (--jobs 2 by default)
    .venv/bin/python experiments/strategies_blackbox.py --quick        # smoke run: cora, 2 seeds, budget 30
    .venv/bin/python experiments/strategies_blackbox.py --methods rl --merge   # re-run one method in place
    .venv/bin/python experiments/strategies_blackbox.py --space plain --no-overhead   # a user's plain Space

`--space plain` runs every search on `nas.spaces.nasbench_graph.plain_space()` (link, op1..op4 as plain
choices: no canonical ids for isomorphic twins, no graph-aware mutation) and writes
results/strategies_blackbox_plain.json, so that no figure rests on the built-in encoding.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import functools
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core_benchmark as cb  # noqa: E402  (the NAS-Bench-Graph protocol: facts, hypervolume, Optuna baselines)
from reporting import git_commit  # noqa: E402
from nas.spaces.nasbench_graph import plain_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SINGLE = ("random", "evolution", "rl", "bayesian", "mcts", "smbo", "tpe", "optuna-tpe")
MULTI = ("random", "nsga2", "bayesian", "nsga2-optuna", "optuna-nsga2")
OVERHEAD_OBS = 1000
OVERHEAD_PAIRS = 20

_BENCH: dict[tuple[str, str], Any] = {}


def _bench(ds: str, space: str = "builtin") -> tuple[Any, dict[str, Any]]:
    """The table and its facts; with `space="plain"` searches see `plain_space()` (one field per decision)
    instead of the graph-aware built-in class, as a user who writes the space field by field would;
    `space="declared"` is that plain space with its cell declared (`plain_space(graph=True)`)."""
    if (ds, space) not in _BENCH:
        bench = cb.nas_bench_graph(ds)
        if space in ("plain", "declared"):
            bench = copy.copy(bench)
            bench.space = plain_space(graph=space == "declared")
        _BENCH[(ds, space)] = (bench, cb.table_facts(bench))
    return _BENCH[(ds, space)]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    logging.getLogger("nas").setLevel(logging.ERROR)


def run_task(task: tuple[str, str, str, int, int], space: str = "builtin") -> tuple[tuple[str, str, str, int, int], dict[str, Any]]:
    """One search: (kind, dataset, method, seed, budget) -> its record (core_benchmark.py's fields)."""
    _init_worker()
    kind, ds, method, seed, budget = task
    bench, facts = _bench(ds, space)
    if kind == "single":
        rec = cb.optuna_single(bench, seed, budget, facts) if method == "optuna-tpe" else \
            cb.nas_single(bench, method, seed, budget, facts)
    else:
        rec = cb.optuna_multi(bench, seed, budget, facts) if method == "optuna-nsga2" else \
            cb.nas_multi(bench, method, seed, budget, facts)
    return task, rec


# ---------------------------------------------------------------------------------------- overhead
def overhead(name: str, observations: int, pairs: int) -> dict[str, Any]:
    """Seconds per ask + tell once `observations` results (random cora architectures) were told."""
    _init_worker()
    import nas
    from nas.objectives import Problem
    from nas.strategies import STRATEGIES, TrialResult, make_strategy
    from nas.strategies.multifidelity import FidelitySpace

    bench, _ = _bench("cora")
    space = bench.space
    problem = Problem.make({"valid_acc": "max"})
    evaluate = bench
    if name in ("successive-halving", "hyperband"):
        space = FidelitySpace(bench.space, [1, 3, 9])
        evaluate = space.evaluator(lambda a, budget: bench(a))
    try:
        strat = make_strategy(name, space, problem, 0)
    except nas.NASError as e:
        return {"strategy": name, "error": str(e)}
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    told = 0
    while told < observations:
        a = space.sample(rng)
        try:
            m = evaluate(a)
        except LookupError:
            continue
        strat.tell(a, TrialResult(m))
        told += 1
    warm_s = time.perf_counter() - t0
    times = []
    for _ in range(pairs):
        t0 = time.perf_counter()
        asked = strat.ask(1)
        for a in asked:
            try:
                strat.tell(a, TrialResult(evaluate(a)))
            except LookupError:
                strat.tell(a, TrialResult({}, "failed"))
        times.append(time.perf_counter() - t0)
    return {"strategy": name, "class": type(strat).__name__, "observations": observations, "pairs": pairs,
            "tell_warmup_s": warm_s, "first_s": times[0], "mean_s": float(np.mean(times)),
            "median_s": float(np.median(times)), "max_s": float(np.max(times)), "times_s": times,
            "registered": name in STRATEGIES}


# ---------------------------------------------------------------------------------------- analysis
def summarize(values: Sequence[float]) -> dict[str, float]:
    return cb.summarize(values)


def summarise_single(per_seed: Sequence[Mapping[str, Any]], facts: Mapping[str, Any], means: Mapping[str, float]) -> dict[str, Any]:
    out = {f: summarize([r[f] for r in per_seed]) for f in ("regret", "test_acc", "best_valid_acc")}
    out["ri_test"] = 100.0 * (out["test_acc"]["mean"] - means["test_acc"]) / means["test_acc"]
    out["ri_valid"] = 100.0 * (out["best_valid_acc"]["mean"] - means["valid_acc"]) / means["valid_acc"]
    return out


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided Welch t-test p-value for mean(a) < mean(b)."""
    if np.std(a) == 0 and np.std(b) == 0:
        return 0.0 if np.mean(a) < np.mean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False, alternative="less").pvalue)


def criteria(results: Mapping[str, Any], datasets: Sequence[str]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []

    def regrets(ds: str, m: str) -> list[float]:
        return [r["regret"] for r in results[ds]["single"][m]["per_seed"]]

    def mean(ds: str, m: str) -> float:
        return results[ds]["single"][m]["summary"]["regret"]["mean"]

    for ds in datasets:
        for m in ("bayesian", "rl", "mcts", "smbo"):
            p = welch_p(regrets(ds, m), regrets(ds, "random"))
            checks.append({"name": f"{ds}: {m} regret < random", "value": mean(ds, m),
                           "target": f"< {mean(ds, 'random'):.5f} (one-sided Welch p = {p:.3f})",
                           "passed": mean(ds, m) < mean(ds, "random"), "p_value": p})
        b, t = mean(ds, "bayesian"), mean(ds, "tpe")
        half = results[ds]["single"]["tpe"]["summary"]["regret"]["ci95_half"]
        checks.append({"name": f"{ds}: bayesian regret matches or beats tpe (<= tpe mean + its 95 % CI half-width)",
                       "value": b, "target": f"<= {t + half:.5f} (tpe mean {t:.5f})", "passed": b <= t + half,
                       "strictly_better": b < t})
    b3 = float(np.mean([mean(ds, "bayesian") for ds in datasets]))
    t3 = float(np.mean([mean(ds, "tpe") for ds in datasets]))
    checks.append({"name": f"mean over {len(datasets)} datasets: bayesian regret <= tpe", "value": b3,
                   "target": f"<= {t3:.5f}", "passed": b3 <= t3})
    for ds in datasets:
        mo = results[ds]["multi"]
        ref = mo["optuna-nsga2"]["summary"]["hv_fraction"]["mean"]
        for m in ("nsga2", "bayesian"):
            v = mo[m]["summary"]["hv_fraction"]["mean"]
            checks.append({"name": f"{ds}: {m} HV fraction >= Optuna NSGA-II", "value": v,
                           "target": f">= {ref:.4f}", "passed": v >= ref})
    return checks


# ---------------------------------------------------------------------------------------- printing
def _ci(s: Mapping[str, float], digits: int = 4) -> str:
    return f"{s['mean']:.{digits}f} ± {s['ci95_half']:.{digits}f}"


def print_report(p: cb.Printer, results: Mapping[str, Any], datasets: Sequence[str], args: argparse.Namespace,
                 checks: Sequence[Mapping[str, Any]], over: Sequence[Mapping[str, Any]]) -> None:
    sub = f"budget {args.budget}, seeds {args.seed_list[0]}..{args.seed_list[-1]}, mean ± 95 % t-interval"
    rows = []
    for ds in datasets:
        s = results[ds]["single"]
        rnd = s["random"]["summary"]["regret"]["mean"]
        for m in SINGLE:
            sm = s[m]["summary"]
            rows.append([ds, m, _ci(sm["regret"]), f"{sm['regret']['mean'] / rnd:.2f}" if rnd > 0 else "inf",
                         f"{sm['test_acc']['mean']:.4f}", f"{sm['ri_test']:+.2f}", f"{sm['ri_valid']:+.2f}"])
    p.table(f"1. max valid_acc — validation regret, test_acc of the returned architecture, relative improvement "
            f"over the average random architecture (%) ({sub})",
            ["dataset", "method", "regret", "/random", "test_acc", "RI test %", "RI valid %"], rows)
    rows = []
    for m in SINGLE:
        rows.append([m] + [f"{results[ds]['single'][m]['summary']['regret']['mean']:.4f}" for ds in datasets]
                    + [f"{np.mean([results[ds]['single'][m]['summary']['regret']['mean'] for ds in datasets]):.4f}"])
    p.table("   mean regret side by side", ["method"] + list(datasets) + ["mean"], rows)
    rows = []
    for m in MULTI:
        rows.append([m] + [_ci(results[ds]["multi"][m]["summary"]["hv_fraction"]) for ds in datasets])
    p.table(f"2. max valid_acc × min latency_s — hypervolume / true front's ({sub})", ["method"] + list(datasets), rows)
    rows = []
    for o in over:
        if "error" in o:
            rows.append([o["strategy"], "-", "-", "-", o["error"][:70]])
        else:
            rows.append([o["strategy"], f"{1000 * o['median_s']:.1f}", f"{1000 * o['mean_s']:.1f}",
                         f"{1000 * o['first_s']:.1f}", f"{1000 * o['max_s']:.1f}"])
    if rows:  # --no-overhead
        p.table(f"3. ask + tell overhead after {OVERHEAD_OBS} told results (ms; {OVERHEAD_PAIRS} pairs; load-sensitive)",
                ["strategy", "median", "mean", "first", "max"], rows)
    p.table("acceptance criteria", ["criterion", "value", "target", "pass"],
            [[c["name"], f"{c['value']:.4f}", c["target"], "PASS" if c["passed"] else "FAIL"] for c in checks])


# ---------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(cb.DATASETS), choices=cb.DATASETS)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--no-overhead", action="store_true", help="skip the 1,000-observation overhead table")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="smoke run: cora, 2 seeds, budget 30, 200 observations")
    ap.add_argument("--plain", action="store_true", help="plain text output (no colours)")
    ap.add_argument("--space", choices=("builtin", "plain"), default="builtin",
                    help="builtin: the graph-aware NASBenchGraphSpace; plain: the same decisions written field by "
                         "field (nas.spaces.nasbench_graph.plain_space), as a user would (default builtin)")
    ap.add_argument("--methods", nargs="+", default=None,
                    help="run only these methods (of both tables); with --merge, their records replace those in "
                         "the --out JSON and everything else is kept")
    ap.add_argument("--merge", action="store_true", help="update the existing --out JSON (see --methods)")
    ap.add_argument("--from-json", type=Path, default=None, metavar="PATH",
                    help="no search: recompute the protocol reports (RI over random search at the same budget) "
                         "from an earlier run's JSON, print them and write them back into it")
    args = ap.parse_args(argv)
    if args.from_json is not None:
        return args
    if args.merge and not args.methods:
        ap.error("--merge needs --methods")
    if args.quick:
        args.datasets, args.seeds, args.budget = ["cora"], min(args.seeds, 2), min(args.budget, 30)
    if args.seeds < 2:
        ap.error("--seeds: need at least 2 for a confidence interval")
    if args.out is None:
        stem = "strategies_blackbox" + ("_plain" if args.space == "plain" else "") + ("_quick" if args.quick else "")
        args.out = ROOT / "experiments" / "results" / f"{stem}.json"
    args.seed_list = list(range(args.first_seed, args.first_seed + args.seeds))
    return args


def from_json(path: Path, p: cb.Printer, argv: Sequence[str] | None) -> int:
    """The protocol reports of a recorded run, from its per-seed records (no search), written back into it."""
    doc = json.loads(path.read_text())
    settings = doc["settings"]
    reports = cb.protocol_reports(doc["results"], settings["datasets"], ("single", "multi"), settings["budget"])
    cb.print_protocol(p, reports, settings["datasets"], ("single", "multi"), settings["budget"], settings["seeds"])
    doc["protocol"] = cb.protocol_doc(reports)
    doc["protocol_recomputed"] = {
        "command": "python experiments/strategies_blackbox.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "git_commit": git_commit(),
        "note": "protocol computed from the per-seed records above; the searches were not rerun"}
    path.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _init_worker()
    p = cb.Printer(args.plain)
    if args.from_json is not None:
        return from_json(args.from_json, p, argv)
    if args.methods and not args.merge:  # the tables need every method's records: the others come from --out
        raise SystemExit("--methods runs only some methods: add --merge to take the others' records from --out")
    started = time.perf_counter()
    load0 = os.getloadavg()
    chosen = set(args.methods or set(SINGLE) | set(MULTI))
    tasks = [("single", ds, m, s, args.budget) for ds in args.datasets for m in SINGLE if m in chosen for s in args.seed_list]
    tasks += [("multi", ds, m, s, args.budget) for ds in args.datasets for m in MULTI if m in chosen for s in args.seed_list]
    records: dict[tuple[str, str, str, int, int], dict[str, Any]] = {}
    previous: dict[str, Any] = json.loads(args.out.read_text()) if args.merge else {}
    if args.merge:
        old = previous["settings"]
        if (old["datasets"], old["seeds"], old["budget"]) != (args.datasets, args.seed_list, args.budget):
            raise SystemExit(f"--merge: {args.out} has datasets/seeds/budget {old['datasets']}/{old['seeds']}/"
                             f"{old['budget']}, not this run's")
        for ds in args.datasets:
            for kind, methods in (("single", SINGLE), ("multi", MULTI)):
                for m in methods:
                    if m not in chosen:
                        for rec, s in zip(previous["results"][ds][kind][m]["per_seed"], args.seed_list):
                            records[(kind, ds, m, s, args.budget)] = rec
    timer: dict[tuple[str, str, str], float] = {}
    with ProcessPoolExecutor(max_workers=args.jobs, initializer=_init_worker) as pool:
        for task, rec in pool.map(functools.partial(run_task, space=args.space), tasks, chunksize=1):
            records[task] = rec
            key = task[:3]
            timer[key] = timer.get(key, 0.0) + rec.get("seconds", 0.0)
            if sum(1 for t in records if t[:3] == key) == len(args.seed_list):
                p.line(f"  {task[1]:<9} {task[0]:<7} {task[2]:<13} {timer[key]:7.1f} s (sum over seeds)")
    results: dict[str, Any] = {}
    for ds in args.datasets:
        bench, facts = _bench(ds, args.space)
        means = {"valid_acc": float(bench.column("valid_acc").mean()), "test_acc": float(bench.column("test_acc").mean())}
        results[ds] = {"table": {**facts, "mean_valid_acc": means["valid_acc"], "mean_test_acc": means["test_acc"]},
                       "single": {}, "multi": {}}
        for m in SINGLE:
            per = [records[("single", ds, m, s, args.budget)] for s in args.seed_list]
            results[ds]["single"][m] = {"per_seed": per, "summary": summarise_single(per, facts, means)}
        for m in MULTI:
            per = [records[("multi", ds, m, s, args.budget)] for s in args.seed_list]
            results[ds]["multi"][m] = {"per_seed": per, "summary": {"hv_fraction": summarize([r["hv_fraction"] for r in per])}}
    over: list[dict[str, Any]] = list(previous.get("overhead", [])) if args.merge else []
    if args.merge:
        over = [o for o in over if o["strategy"] not in chosen]
    if not args.no_overhead:
        from nas.strategies import STRATEGIES

        n_obs = 200 if args.quick else OVERHEAD_OBS
        for name in sorted(STRATEGIES):
            if args.merge and name not in chosen:
                continue
            o = overhead(name, n_obs, OVERHEAD_PAIRS)
            over.append(o)
            p.line(f"  overhead {name:<20} " + (o["error"] if "error" in o else f"{1000 * o['median_s']:.1f} ms median"))
    checks = criteria(results, args.datasets)
    over.sort(key=lambda o: o["strategy"])
    print_report(p, results, args.datasets, args, checks, over)
    reports = cb.protocol_reports(results, args.datasets, ("single", "multi"), args.budget)
    cb.print_protocol(p, reports, args.datasets, ("single", "multi"), args.budget, args.seed_list)
    total = time.perf_counter() - started

    import optuna
    import torch

    from nas.strategies import STRATEGIES
    defaults = {k: v for k, v in cb.strategy_defaults().items()
                if k in set(SINGLE) | set(MULTI) | {"successive-halving", "hyperband"}}
    command = "python experiments/strategies_blackbox.py " + " ".join(argv if argv is not None else sys.argv[1:])
    doc = {
        "script": "experiments/strategies_blackbox.py",
        "command": command,
        "merged_into": ({"previous_command": previous.get("command"), "previous_date": previous.get("date"),
                         "previous_git_commit": previous.get("git_commit"), "replaced_methods": sorted(chosen),
                         "previous_merges": previous.get("merged_into")} if args.merge else None),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "load_average_start": load0, "load_average_end": os.getloadavg()},
        "versions": {"optuna": optuna.__version__, "numpy": np.__version__, "torch": torch.__version__},
        "git_commit": git_commit(),
        "settings": {"datasets": args.datasets, "seeds": args.seed_list, "budget": args.budget, "jobs": args.jobs,
                     "space": args.space,
                     "executor": "SimulatedClockExecutor(workers=1)", "ci": "Student-t 95 % interval of the mean",
                     "strategy_defaults": defaults, "registered": sorted(STRATEGIES),
                     "relative_improvement": "100 (mean acc of returned archs - mean acc over all table rows) / "
                                             "mean acc over all table rows (Yang et al. 2020)",
                     "raw_optuna": "core_benchmark.py optuna_single / optuna_multi (TPESampler / NSGAIISampler, "
                                   "seed=s, study.optimize over the table)",
                     "hypervolume": "as core_benchmark.py",
                     "overhead": f"{OVERHEAD_OBS} random cora architectures told (not asked), then {OVERHEAD_PAIRS} "
                                 "ask(1)+lookup+tell pairs timed; 'first' includes any refit the tells triggered"},
        "results": results,
        "overhead": over,
        "criteria": checks,
        "protocol": cb.protocol_doc(reports),
        "all_passed": all(c["passed"] for c in checks),
        "total_seconds": total + (previous.get("total_seconds", 0.0) if args.merge else 0.0),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    p.line(f"total {total:.0f} s; wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
