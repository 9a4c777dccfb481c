"""Core-search benchmark on NAS-Bench-Graph: our strategies against random search and Optuna, side by side.

Measures the acceptance criteria of the search-core issue:

1. single objective (max valid_acc, budget 300): mean validation regret of `random`, `evolution`, `local`
   and Optuna's `TPESampler`; `evolution` must reach <= 0.75 x random's regret on every dataset and
   beat TPE on the mean over the datasets;
2. two objectives (max valid_acc, min latency_s): hypervolume as a fraction of the table's true front
   (reference point: 5th-percentile valid_acc, 95th-percentile latency_s of the table) for `random`,
   `evolution`, `nsga2` and Optuna's `NSGAIISampler`; `nsga2` must be at least Optuna's on every dataset;
3. constrained (max valid_acc subject to latency_s < the table's median): regret against the best
   feasible valid_acc; every reported best must be feasible and `evolution` must beat `random`;
4. the wall time of one replayed 1,000-query search (simulated clock, journal in a temp dir): < 10 s.

Then the evaluation protocol (issue 22, `experiments/reporting.py`): per dataset x kind, every method
against `random` at the same budget and seeds, as the relative improvement RI = 100 (m - r) / r over
random's mean r with Welch's 95 % interval of the difference, and the mean search seconds per seed:
single objective on the best valid_acc found and the test_acc of the returned architecture (RI on the
regret itself would be 100 (1 - ratio), the evo/rnd column), two objectives on the hypervolume fraction,
constrained on the best feasible valid_acc and its test_acc; all maximised. Printed as tables and stored
under "protocol" in the JSON. `--from-json PATH` recomputes them (and the tables above) from an earlier
run's per-seed records, without searching, and writes them back into that file.

Every search runs through `nas.search` with `SimulatedClockExecutor(workers=1)`; Optuna studies call the
same table lookup, one objective call per unit of budget. The all-skip architectures, absent from the
table, fail their trial in both (they count against the budget and never become the best).
95 % confidence intervals are Student-t intervals over seeds: mean +- t(0.975, n-1) * std / sqrt(n).

    .venv/bin/python experiments/core_benchmark.py                 # full: 3 datasets x 20 seeds x 300
    .venv/bin/python experiments/core_benchmark.py --quick         # smoke run (cora, 2 seeds)
    .venv/bin/python experiments/core_benchmark.py --kinds single --seeds 300 \
        --out experiments/results/core_benchmark_single_300seeds.json  # how noisy 20 seeds are
    .venv/bin/python experiments/core_benchmark.py --from-json experiments/results/core_benchmark.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import inspect
import json
import logging
import math
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

import nas
from nas.objectives import Constraint, Objective
from nas.pareto import hypervolume
from nas.spaces.nasbench_graph import LINKS, OPS
from nas.strategies import STRATEGIES
from nas.tabular import TabularBenchmark, nas_bench_graph
from reporting import git_commit, protocol_report, protocol_table, ri_matrix  # experiments/reporting.py
# (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("cora", "citeseer", "pubmed")
SINGLE = ("random", "evolution", "local", "optuna-tpe")
MULTI = ("random", "evolution", "nsga2", "optuna-nsga2")
CONSTRAINED = ("random", "evolution", "local", "nsga2")
MO_OBJECTIVES = (Objective("valid_acc", "max"), Objective("latency_s", "min"))
KINDS = ("single", "multi", "constrained")
EVO_MAX_RATIO = 0.75  # evolution's mean regret must be at most this fraction of random's
TIMING_QUERIES = 1000
TIMING_LIMIT_S = 10.0

Metrics = Mapping[str, float]


# ---------------------------------------------------------------------------------------- statistics
def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample std and the Student-t 95 % confidence interval of the mean."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else 0.0
    return {"n": n, "mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half,
            "ci95_half": half, "median": float(np.median(x)), "min": float(x.min()), "max": float(x.max())}


# ---------------------------------------------------------------------------------------- the table
def table_facts(bench: TabularBenchmark) -> dict[str, float]:
    """Optima, the feasibility bound and the hypervolume reference of one table (over all its rows)."""
    valid, test, lat = bench.column("valid_acc"), bench.column("test_acc"), bench.column("latency_s")
    median_lat = float(np.median(lat))
    feasible = lat < median_lat
    ref = [float(np.percentile(valid, 5)), float(np.percentile(lat, 95))]
    ref_min = [MO_OBJECTIVES[0].minimised(ref[0]), MO_OBJECTIVES[1].minimised(ref[1])]
    front = bench.pareto_points(list(MO_OBJECTIVES))
    return {
        "rows": len(bench),
        "best_valid_acc": float(valid.max()),
        "test_acc_of_best_valid_rows": sorted({float(x) for x in test[valid == valid.max()]}),
        "latency_median_s": median_lat,
        "feasible_rows": int(feasible.sum()),
        "best_feasible_valid_acc": float(valid[feasible].max()),
        "hv_reference": ref,  # in the objectives' own units: [valid_acc (max), latency_s (min)]
        "hv_reference_minimised": ref_min,
        "true_front_size": int(len(front)),
        "true_front_hv": float(hypervolume(front, ref_min)),
    }


def hv_fraction(points: Sequence[Metrics], facts: Mapping[str, Any]) -> float:
    """Hypervolume of evaluated (valid_acc, latency_s) points over the true front's, same reference."""
    pts = np.array([[o.minimised(m[o.name]) for o in MO_OBJECTIVES] for m in points], dtype=float)
    return hypervolume(pts.reshape(-1, 2), facts["hv_reference_minimised"]) / facts["true_front_hv"]


# ---------------------------------------------------------------------------------------- our searches
def run_nas(bench: TabularBenchmark, strategy: str, objectives: Mapping[str, str], seed: int, budget: int,
            constraints: Sequence[Constraint] = ()) -> tuple[nas.SearchResult, float]:
    t0 = time.perf_counter()
    result = nas.search(bench.space, bench, dict(objectives), constraints=list(constraints), strategy=strategy,
                        budget=budget, seed=seed, executor=nas.SimulatedClockExecutor(workers=1))
    return result, time.perf_counter() - t0


def single_record(best: Metrics | None, n_evals: int, seconds: float, optimum: float, seed: int) -> dict[str, Any]:
    if best is None:
        return {"seed": seed, "best_valid_acc": None, "regret": None, "test_acc": None,
                "evaluations": n_evals, "seconds": seconds}
    return {"seed": seed, "best_valid_acc": best["valid_acc"], "regret": optimum - best["valid_acc"],
            "test_acc": best["test_acc"], "latency_s": best["latency_s"], "evaluations": n_evals,
            "seconds": seconds}


def nas_single(bench: TabularBenchmark, strategy: str, seed: int, budget: int, facts: Mapping[str, Any]) -> dict[str, Any]:
    r, sec = run_nas(bench, strategy, {"valid_acc": "max"}, seed, budget)
    best = r.best("valid_acc")
    n = sum(t.status != "infeasible" for t in r.trials)
    return single_record(best.metrics if best else None, n, sec, facts["best_valid_acc"], seed)


def nas_multi(bench: TabularBenchmark, strategy: str, seed: int, budget: int, facts: Mapping[str, Any]) -> dict[str, Any]:
    r, sec = run_nas(bench, strategy, {"valid_acc": "max", "latency_s": "min"}, seed, budget)
    pts = [t.metrics for t in r.completed]
    return {"seed": seed, "hv_fraction": hv_fraction(pts, facts), "front_size": len(r.pareto_front()),
            "evaluations": sum(t.status != "infeasible" for t in r.trials), "seconds": sec}


def nas_constrained(bench: TabularBenchmark, strategy: str, seed: int, budget: int,
                    facts: Mapping[str, Any]) -> dict[str, Any]:
    bound = Constraint("latency_s", "<", facts["latency_median_s"])
    r, sec = run_nas(bench, strategy, {"valid_acc": "max"}, seed, budget, [bound])
    best = r.best("valid_acc")
    rec = single_record(best.metrics if best else None, sum(t.status != "infeasible" for t in r.trials), sec,
                        facts["best_feasible_valid_acc"], seed)
    rec["best_feasible"] = best is not None and best.metrics["latency_s"] < facts["latency_median_s"]
    rec["feasible_trials"] = len(r.feasible)
    return rec


# ---------------------------------------------------------------------------------------- Optuna
def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def _suggest(trial: Any) -> dict[str, str]:
    """The NAS-Bench-Graph space as one categorical per field, in the space's own option order."""
    return {"link": trial.suggest_categorical("link", list(LINKS)),
            **{f"op{i}": trial.suggest_categorical(f"op{i}", list(OPS)) for i in range(1, 5)}}


def _completed(study: Any) -> list[dict[str, float]]:
    """Metrics of the study's completed trials, in trial order (failed ones -- all-skip -- left out)."""
    state = _optuna().trial.TrialState.COMPLETE
    return [dict(t.user_attrs["metrics"]) for t in sorted(study.trials, key=lambda t: t.number) if t.state == state]


def optuna_single(bench: TabularBenchmark, seed: int, budget: int, facts: Mapping[str, Any]) -> dict[str, Any]:
    optuna = _optuna()

    def objective(trial: Any) -> float:
        m = bench(_suggest(trial))  # all-skip: LookupError -> the trial fails (caught below)
        trial.set_user_attr("metrics", m)
        return m["valid_acc"]

    t0 = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=budget, catch=(LookupError,))
    sec = time.perf_counter() - t0
    done = _completed(study)
    best = max(done, key=lambda m: m["valid_acc"]) if done else None  # max() keeps the earliest of ties
    return single_record(best, len(study.trials), sec, facts["best_valid_acc"], seed)


def optuna_multi(bench: TabularBenchmark, seed: int, budget: int, facts: Mapping[str, Any]) -> dict[str, Any]:
    optuna = _optuna()

    def objective(trial: Any) -> tuple[float, float]:
        m = bench(_suggest(trial))
        trial.set_user_attr("metrics", m)
        return m["valid_acc"], m["latency_s"]

    t0 = time.perf_counter()
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=seed))
    study.optimize(objective, n_trials=budget, catch=(LookupError,))
    sec = time.perf_counter() - t0
    return {"seed": seed, "hv_fraction": hv_fraction(_completed(study), facts),
            "front_size": len(study.best_trials), "evaluations": len(study.trials), "seconds": sec}


# ---------------------------------------------------------------------------------------- experiments
Runner = Callable[[TabularBenchmark, int, int, Mapping[str, Any]], dict[str, Any]]


def runners(kind: str) -> dict[str, Runner]:
    if kind == "single":
        out: dict[str, Runner] = {m: (lambda b, s, n, f, m=m: nas_single(b, m, s, n, f)) for m in SINGLE[:-1]}
        out["optuna-tpe"] = optuna_single
    elif kind == "multi":
        out = {m: (lambda b, s, n, f, m=m: nas_multi(b, m, s, n, f)) for m in MULTI[:-1]}
        out["optuna-nsga2"] = optuna_multi
    else:
        out = {m: (lambda b, s, n, f, m=m: nas_constrained(b, m, s, n, f)) for m in CONSTRAINED}
    return out


SUMMARY_FIELDS = {"single": ("regret", "test_acc"), "multi": ("hv_fraction",), "constrained": ("regret", "test_acc")}


def run_kind(kind: str, bench: TabularBenchmark, facts: Mapping[str, Any], seeds: Sequence[int], budget: int,
             log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method, run in runners(kind).items():
        t0 = time.perf_counter()
        per_seed = [run(bench, s, budget, facts) for s in seeds]
        summary = {f: summarize([r[f] for r in per_seed]) for f in SUMMARY_FIELDS[kind]
                   if all(r.get(f) is not None for r in per_seed)}
        out[method] = {"per_seed": per_seed, "summary": summary}
        log(f"  {kind:<11} {method:<13} {time.perf_counter() - t0:6.1f} s")
    return out


def timing(bench: TabularBenchmark, queries: int, repeats: int = 3) -> dict[str, Any]:
    """Wall time of a replayed `queries`-query evolution search, simulated clock, journal in a temp dir.

    Run `repeats` times; the criterion uses the fastest (the machine is shared, so the slower runs
    mostly measure other people's load), and every run's time is recorded.
    """
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="nas-core-bench-") as tmp:
            t0 = time.perf_counter()
            r = nas.search(bench.space, bench, {"valid_acc": "max"}, strategy="evolution", budget=queries, seed=0,
                           workdir=Path(tmp) / "run", executor=nas.SimulatedClockExecutor(workers=1))
            runs.append(time.perf_counter() - t0)
    return {"strategy": "evolution", "queries": queries, "trials": len(r.trials), "seconds": min(runs),
            "runs_s": runs, "journal": True, "limit_s": TIMING_LIMIT_S}


# ---------------------------------------------------------------------------------------- criteria
def criteria(results: Mapping[str, Any], datasets: Sequence[str], timed: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []

    def mean(ds: str, kind: str, method: str, field: str) -> float:
        return results[ds][kind][method]["summary"][field]["mean"]

    kinds = set(results[datasets[0]]) - {"table"}
    for ds in datasets if "single" in kinds else ():
        evo, rnd = mean(ds, "single", "evolution", "regret"), mean(ds, "single", "random", "regret")
        ratio = evo / rnd if rnd > 0 else math.inf
        checks.append({"name": f"{ds}: evolution regret <= {EVO_MAX_RATIO} x random", "value": ratio,
                       "target": f"<= {EVO_MAX_RATIO}", "passed": ratio <= EVO_MAX_RATIO})
    if "single" in kinds:
        evo3 = float(np.mean([mean(ds, "single", "evolution", "regret") for ds in datasets]))
        tpe3 = float(np.mean([mean(ds, "single", "optuna-tpe", "regret") for ds in datasets]))
        checks.append({"name": f"mean over {len(datasets)} datasets: evolution regret < Optuna TPE",
                       "value": evo3, "target": f"< {tpe3:.5f}", "passed": evo3 < tpe3})
    for ds in datasets if "multi" in kinds else ():
        ours, theirs = mean(ds, "multi", "nsga2", "hv_fraction"), mean(ds, "multi", "optuna-nsga2", "hv_fraction")
        checks.append({"name": f"{ds}: nsga2 HV fraction >= Optuna NSGA-II", "value": ours,
                       "target": f">= {theirs:.4f}", "passed": ours >= theirs})
    for ds in datasets if "constrained" in kinds else ():
        con = results[ds]["constrained"]
        all_feasible = all(r["best_feasible"] for m in con.values() for r in m["per_seed"])
        checks.append({"name": f"{ds}: every constrained best is feasible", "value": all_feasible,
                       "target": "True", "passed": all_feasible})
        evo, rnd = mean(ds, "constrained", "evolution", "regret"), mean(ds, "constrained", "random", "regret")
        checks.append({"name": f"{ds}: constrained evolution regret < random", "value": evo,
                       "target": f"< {rnd:.5f}", "passed": evo < rnd})
    if timed is not None:
        checks.append({"name": f"{timed['queries']}-query replayed search (journal, fastest of "
                               f"{len(timed['runs_s'])}) under {TIMING_LIMIT_S:g} s",
                       "value": timed["seconds"], "target": f"< {TIMING_LIMIT_S:g}",
                       "passed": timed["seconds"] < TIMING_LIMIT_S})
    return checks


# ---------------------------------------------------------------------------------------- protocol
# The figure each kind is reported on under the protocol (all maximised), and how to read it off a record.
PROTOCOL_FIGURES = {
    "single": ("best_valid_acc", "test_acc"),
    "multi": ("hv_fraction",),
    "constrained": ("best_valid_acc", "test_acc"),
}


def protocol_value(kind: str, figure: str, record: Mapping[str, Any]) -> float | None:
    """One seed's figure; a constrained best that is not feasible counts as missing (never happens in the
    recorded runs: the criteria check it)."""
    if kind == "constrained" and not record.get("best_feasible", False):
        return None
    return record.get(figure)


def protocol_reports(results: Mapping[str, Any], datasets: Sequence[str], kinds: Sequence[str],
                     budget: int) -> dict[str, Any]:
    """Per dataset x kind x figure: every method against `random` (same budget, same seeds) under the
    protocol; returns {"<dataset>/<kind>/<figure>": ProtocolReport}."""
    out: dict[str, Any] = {}
    for ds in datasets:
        for kind in kinds:
            if kind not in results[ds]:
                continue
            methods = results[ds][kind]
            for figure in PROTOCOL_FIGURES[kind]:
                values = {m: [protocol_value(kind, figure, r) for r in v["per_seed"]] for m, v in methods.items()}
                costs = {m: [r["seconds"] for r in v["per_seed"] if r.get("seconds") is not None]
                         for m, v in methods.items()}
                label = f"{ds}/{kind}/{figure}"
                out[label] = protocol_report(values, direction="max", baseline="random", costs=costs,
                                             budgets={m: float(budget) for m in methods}, label=label)
    return out


def protocol_doc(reports: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form: each report's dict and its markdown table, by label."""
    return {label: {**rep.to_dict(), "table": protocol_table(rep)} for label, rep in reports.items()}


def print_protocol(p: Printer, reports: Mapping[str, Any], datasets: Sequence[str], kinds: Sequence[str],
                   budget: int, seeds: Sequence[int]) -> None:
    p.text(f"\nprotocol (issue 22): RI % = relative improvement of the mean over random's mean (same budget "
           f"{budget}, seeds {seeds[0]}..{seeds[-1]}), 95 % Welch interval of the difference; search cost = mean "
           f"seconds per seed")
    for kind in kinds:
        for figure in PROTOCOL_FIGURES[kind]:
            by_ds = {ds: reports[f"{ds}/{kind}/{figure}"] for ds in datasets if f"{ds}/{kind}/{figure}" in reports}
            if not by_ds:
                continue
            p.text(f"\n{kind}: {figure}, RI % over random (bold: the 95 % interval excludes 0)\n{ri_matrix(by_ds)}")
            for ds, rep in by_ds.items():
                p.text(f"\n{ds} / {kind} / {figure}\n{protocol_table(rep)}")
            p.text("")


# ---------------------------------------------------------------------------------------- printing
class Printer:
    """rich tables when rich is importable (and not --plain), else aligned plain text."""

    def __init__(self, plain: bool) -> None:
        self.console = None
        if not plain:
            try:
                from rich.console import Console

                self.console = Console(width=max(180, Console().width))
            except ImportError:
                pass

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if self.console is not None:
            from rich.table import Table

            t = Table(title=title, title_justify="left")
            for i, h in enumerate(header):
                t.add_column(h, justify="left" if i == 0 else "right")
            for r in rows:
                t.add_row(*r)
            self.console.print(t)
            return
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print(f"\n{title}")
        print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
        print("  ".join("-" * w for w in widths))
        for r in rows:
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))

    def line(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)
        else:
            print(text)

    def text(self, text: str) -> None:
        """Verbatim text (markdown tables: no rich markup, no wrapping)."""
        if self.console is not None:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text)


def _ci(s: Mapping[str, float], digits: int = 4) -> str:
    return f"{s['mean']:.{digits}f} ± {s['ci95_half']:.{digits}f}"


def print_report(p: Printer, results: Mapping[str, Any], datasets: Sequence[str], args: argparse.Namespace,
                 checks: Sequence[Mapping[str, Any]], timed: Mapping[str, Any] | None) -> None:
    sub = f"budget {args.budget}, seeds {args.seed_list[0]}..{args.seed_list[-1]}, mean ± 95 % t-interval"
    if "single" in args.kinds:
        print_single(p, results, datasets, sub)
    if "multi" in args.kinds:
        print_multi(p, results, datasets, sub)
    if "constrained" in args.kinds:
        print_constrained(p, results, datasets, sub)
    if "single" in args.kinds and len(args.seed_list) >= 2 * BLOCK:
        rows = [[ds] + [f"{r:.2f}" for r in block_ratios(results[ds]["single"])] for ds in datasets]
        n = len(rows[0]) - 1
        p.table(f"evolution / random mean regret per block of {BLOCK} consecutive seeds (how noisy a "
                f"{BLOCK}-seed figure is)", ["dataset"] + [f"#{i + 1}" for i in range(n)], rows)
    # 4. timing and criteria
    if timed is not None:
        p.line(f"4. replayed {timed['queries']}-query evolution search (simulated clock, journal in a temp dir): "
               f"{timed['seconds']:.2f} s wall, fastest of {len(timed['runs_s'])} "
               f"({', '.join(f'{x:.2f}' for x in timed['runs_s'])} s)")
    p.table("acceptance criteria", ["criterion", "value", "target", "pass"],
            [[c["name"], f"{c['value']:.4f}" if isinstance(c["value"], float) else str(c["value"]), c["target"],
              "PASS" if c["passed"] else "FAIL"] for c in checks])


BLOCK = 20


def block_ratios(single: Mapping[str, Any]) -> list[float]:
    """Evolution's mean regret over random's, per block of BLOCK consecutive seeds."""
    evo = [r["regret"] for r in single["evolution"]["per_seed"]]
    rnd = [r["regret"] for r in single["random"]["per_seed"]]
    return [float(np.mean(evo[i:i + BLOCK]) / np.mean(rnd[i:i + BLOCK]))
            for i in range(0, len(evo) - BLOCK + 1, BLOCK)]


def print_single(p: Printer, results: Mapping[str, Any], datasets: Sequence[str], sub: str) -> None:
    rows = []
    for ds in datasets:
        s = results[ds]["single"]
        rnd = s["random"]["summary"]["regret"]["mean"]
        row = [ds]
        for m in SINGLE:
            row += [_ci(s[m]["summary"]["regret"]), f"{s[m]['summary']['test_acc']['mean']:.4f}"]
        row += [f"{s['evolution']['summary']['regret']['mean'] / rnd:.2f}" if rnd > 0 else "inf",
                f"{s['optuna-tpe']['summary']['regret']['mean'] / rnd:.2f}" if rnd > 0 else "inf"]
        rows.append(row)
    mean_row = ["mean"]
    for m in SINGLE:
        mean_row += [f"{np.mean([results[ds]['single'][m]['summary']['regret']['mean'] for ds in datasets]):.4f}",
                     f"{np.mean([results[ds]['single'][m]['summary']['test_acc']['mean'] for ds in datasets]):.4f}"]
    mean_row += ["", ""]
    rows.append(mean_row)
    header = ["dataset"] + [h for m in SINGLE for h in (f"{m} regret", "test")] + ["evo/rnd", "tpe/rnd"]
    p.table(f"1. max valid_acc — validation regret and test_acc of the returned architecture ({sub})", header, rows)


def print_multi(p: Printer, results: Mapping[str, Any], datasets: Sequence[str], sub: str) -> None:
    rows = []
    for ds in datasets:
        mo = results[ds]["multi"]
        rows.append([ds] + [_ci(mo[m]["summary"]["hv_fraction"]) for m in MULTI]
                    + [f"{results[ds]['table']['true_front_size']}"])
    rows.append(["mean"] + [f"{np.mean([results[ds]['multi'][m]['summary']['hv_fraction']['mean'] for ds in datasets]):.4f}"
                            for m in MULTI] + [""])
    p.table(f"2. max valid_acc × min latency_s — hypervolume / true front's (ref: 5th pct valid_acc, 95th pct latency; {sub})",
            ["dataset"] + list(MULTI) + ["true front"], rows)


def print_constrained(p: Printer, results: Mapping[str, Any], datasets: Sequence[str], sub: str) -> None:
    rows = []
    for ds in datasets:
        c = results[ds]["constrained"]
        feas = all(r["best_feasible"] for m in c.values() for r in m["per_seed"])
        rows.append([ds, f"{results[ds]['table']['latency_median_s']:.4g}", f"{results[ds]['table']['best_feasible_valid_acc']:.4f}"]
                    + [x for m in CONSTRAINED for x in (_ci(c[m]["summary"]["regret"]), f"{c[m]['summary']['test_acc']['mean']:.4f}")]
                    + ["yes" if feas else "NO"])
    p.table(f"3. max valid_acc s.t. latency_s < table median — regret vs best feasible valid_acc ({sub})",
            ["dataset", "median lat", "best feas"] + [h for m in CONSTRAINED for h in (f"{m} regret", "test")]
            + ["all bests feasible"], rows)


# ---------------------------------------------------------------------------------------- main
def strategy_defaults() -> dict[str, dict[str, Any]]:
    """Default options of every registered strategy, recorded so the figures can be tied to settings."""
    out = {}
    for name, cls in STRATEGIES.items():
        params = inspect.signature(cls.__init__).parameters
        out[name] = {k: p.default for k, p in params.items()
                     if k not in ("self", "space", "problem", "seed") and p.default is not inspect.Parameter.empty}
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--seeds", type=int, default=20, help="number of seeds (default 20)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds are FIRST..FIRST+N-1 (default 0; e.g. 100 for a held-out check)")
    ap.add_argument("--budget", type=int, default=300, help="evaluations per search (default 300)")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS,
                    help="which experiments to run (default all three)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default experiments/results/core_benchmark.json; "
                         "core_benchmark_quick.json with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke run: cora only, 2 seeds, a 200-query timing run")
    ap.add_argument("--plain", action="store_true", help="plain-text tables even when rich is installed")
    ap.add_argument("--from-json", type=Path, default=None, metavar="PATH",
                    help="no search: recompute the protocol reports (and print every table) from an earlier "
                         "run's JSON and write them back into it")
    args = ap.parse_args(argv)
    if args.from_json is not None:
        return args
    if args.quick:
        args.datasets, args.seeds = ["cora"], min(args.seeds, 2)
    if args.seeds < 2:
        ap.error("--seeds: need at least 2 for a confidence interval")
    if args.out is None:
        name = "core_benchmark_quick.json" if args.quick else "core_benchmark.json"
        args.out = ROOT / "experiments" / "results" / name
    args.seed_list = list(range(args.first_seed, args.first_seed + args.seeds))
    return args


def from_json(path: Path, p: Printer, argv: Sequence[str] | None) -> int:
    """Recompute the protocol reports from a recorded run's per-seed records, print all tables, write back."""
    doc = json.loads(path.read_text())
    results, settings = doc["results"], doc["settings"]
    datasets = list(settings["datasets"])
    kinds = [k for k in KINDS if k in results[datasets[0]]]
    args = argparse.Namespace(kinds=kinds, budget=settings["budget"], seed_list=list(settings["seeds"]))
    print_report(p, results, datasets, args, doc.get("criteria", []), doc.get("timing"))
    reports = protocol_reports(results, datasets, kinds, args.budget)
    print_protocol(p, reports, datasets, kinds, args.budget, args.seed_list)
    doc["protocol"] = protocol_doc(reports)
    doc["protocol_recomputed"] = {
        "command": "python experiments/core_benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "git_commit": git_commit(),
        "note": "protocol computed from the per-seed records above; the searches were not rerun"}
    path.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    p.line(f"wrote the protocol into {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        return from_json(args.from_json, Printer(args.plain), argv)
    logging.getLogger("nas").setLevel(logging.ERROR)  # the all-skip lookups fail by design; don't warn
    p = Printer(args.plain)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for ds in args.datasets:
        t0 = time.perf_counter()
        bench = nas_bench_graph(ds)
        facts = table_facts(bench)
        p.line(f"{ds}: {facts['rows']} rows loaded in {time.perf_counter() - t0:.1f} s; best valid_acc "
               f"{facts['best_valid_acc']:.6f}, true front {facts['true_front_size']} points")
        results[ds] = {"table": facts}
        for kind in args.kinds:
            results[ds][kind] = run_kind(kind, bench, facts, args.seed_list, args.budget, p.line)
    timed = timing(nas_bench_graph(args.datasets[0]), 200 if args.quick else TIMING_QUERIES)
    checks = criteria(results, args.datasets, timed)
    print_report(p, results, args.datasets, args, checks, timed)
    reports = protocol_reports(results, args.datasets, args.kinds, args.budget)
    print_protocol(p, reports, args.datasets, args.kinds, args.budget, args.seed_list)
    total = time.perf_counter() - started
    p.line(f"total {total:.0f} s")

    import optuna

    doc = {
        "script": "experiments/core_benchmark.py",
        "command": "python experiments/core_benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "cpu_count": __import__("os").cpu_count()},
        "versions": {"optuna": optuna.__version__, "numpy": np.__version__},
        "git_commit": git_commit(),
        "settings": {"datasets": args.datasets, "seeds": args.seed_list, "budget": args.budget, "kinds": args.kinds,
                     "executor": "SimulatedClockExecutor(workers=1)", "ci": "Student-t 95 % interval of the mean",
                     "strategy_defaults": strategy_defaults(),
                     "optuna": {"single": "TPESampler(seed=s)", "multi": "NSGAIISampler(seed=s) (population 50)",
                                "all_skip": "trial fails (LookupError caught), counts against the budget"},
                     "hypervolume": "nas.pareto.hypervolume on [-valid_acc, latency_s] of all completed trials, "
                                    "reference [-p5(valid_acc), p95(latency_s)] over all table rows, "
                                    "divided by the true front's hypervolume",
                     "constraint": "latency_s < median(latency_s) over all table rows"},
        "results": results,
        "evolution_random_block_ratios": ({ds: block_ratios(results[ds]["single"]) for ds in args.datasets}
                                          if "single" in args.kinds and len(args.seed_list) >= 2 * BLOCK else None),
        "timing": timed,
        "criteria": checks,
        "all_passed": all(c["passed"] for c in checks),
        "protocol": protocol_doc(reports),
        "total_seconds": total,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    p.line(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
