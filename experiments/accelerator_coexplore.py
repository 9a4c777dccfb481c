"""Accelerator co-exploration (issue 21 part 1, after NASAIC, Yang et al. DAC 2020): Cora + CiteSeer GNNs and their
two-way heterogeneous accelerator, searched jointly, against "NAS first, then fit the hardware" and "hardware first,
then hardware-aware NAS".

Setting (`nas.hardware.coexplore.CoExploration()` defaults, docs/hardware.md): task a = NAS-Bench-Graph on Cora,
task b = on CiteSeer; 4,096 PEs, 25.6 GB/s of DRAM bandwidth, 500 MHz; per task a weight- or output-stationary
systolic array; the PE and bandwidth splits (a's share 0.25 .. 0.75 in steps of 1/8) and each array's buffer
(128 .. 1024 KB): 1,600 hardware designs; with 9 x 9^4 architectures per task, 5.6e12 joint designs (the tables
hold 59,040 architectures per task: all but the 9 all-skip ones, which fail as trials if proposed).
Specs (constructed so that the two most accurate networks fit no hardware design of the space):

    latency_a_ms <= 10, latency_b_ms <= 7, energy_mj <= 40 (both inferences), area_mm2 <= 8

Methods, each run with seeds 0..9 and `--budget` evaluations (accuracy valid_acc = mean of the two tasks' validation
accuracies; test accuracy reported for the returned design only):
- `nas-first (table optimum)`: each task's best-validation architecture (every tie), then every one of the 1,600
  hardware designs: none meets the specs (the closest miss is reported);
- `nas-first`: evolution over the two architectures on valid_acc alone (same budget), then the exhaustive
  hardware fit of its best pair;
- `hw-first`: the hardware a designer fixes without the networks (even PE and bandwidth split, weight stationary
  for both, the largest equal buffers inside the area spec), then evolution over the architectures under the specs;
- `random`, `evolution`, `nsga2` over the joint space under the specs (nsga2 maximises both tasks' accuracies; its
  pick is the feasible design with the best mean). One evaluator prices the hardware and looks the accuracies up,
  so every proposal counts as one evaluation and the strategies see how far an infeasible design misses: feasible
  designs are ~0.5 % of the joint space, and a search filtering proposals on cheap constraints gives up after 1000
  consecutive rejections.
- the exact optimum: every hardware design x every architecture pair, by per-design energy/accuracy fronts.

Every design a method returns is checked against the specs (assert), the searches' wall time is recorded (the claim:
each well under 5 minutes), and methods are compared under experiments/reporting.py's protocol (relative improvement
over random search with Welch intervals).

    .venv/bin/python experiments/accelerator_coexplore.py            # full: 10 seeds, budget 1000 (~1 min)
    .venv/bin/python experiments/accelerator_coexplore.py --quick    # smoke: 3 seeds, budget 300, no exact optimum
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads: one thread
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import itertools  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import git_commit, protocol_report, protocol_table, write_report  # noqa: E402

import nas  # noqa: E402
from nas.hardware.coexplore import ARCH_FIELDS, TASKS, CoExploration  # noqa: E402
from nas.tabular import TabularBenchmark, nas_bench_graph  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "accelerator_coexplore.json"
DATASETS = ("cora", "citeseer")
SPECS = {"latency_a_ms": 10.0, "latency_b_ms": 7.0, "energy_mj": 40.0, "area_mm2": 8.0}
HW_METRICS = ("latency_a_ms", "latency_b_ms", "energy_mj", "area_mm2")
JOINT = ("random", "evolution", "nsga2")


def constraints(specs: Mapping[str, float]) -> list[str]:
    return [f"{k} <= {v:g}" for k, v in specs.items()]


def feasible(metrics: Mapping[str, float], specs: Mapping[str, float]) -> bool:
    return all(metrics[k] <= v for k, v in specs.items())


def summarize(values: Sequence[float]) -> dict[str, float] | None:
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if not len(x):
        return None
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
    return {"n": int(len(x)), "mean": float(x.mean()), "ci95_half": half, "min": float(x.min()), "max": float(x.max())}


def hw_first_design(co: CoExploration, specs: Mapping[str, float]) -> dict[str, Any]:
    """What a designer fixes before the networks exist: even splits, weight stationary (TPU-like) for both, and the
    largest equal buffers the area spec allows."""
    fits = [b for b in co.buffers_kb
            if co.pe_budget * co.tech.area_pe_mm2 + 2 * b * co.tech.area_kb_mm2 <= specs["area_mm2"]]
    buffer = max(fits) if fits else min(co.buffers_kb)
    return {"a_template": "ws", "b_template": "ws", "pe_split": 0.5, "bw_split": 0.5, "a_buffer_kb": buffer,
            "b_buffer_kb": buffer}


def record(arch: Mapping[str, Any], metrics: Mapping[str, float]) -> dict[str, Any]:
    keep = ("valid_acc", "test_acc", "valid_acc_a", "valid_acc_b", "test_acc_a", "test_acc_b", *HW_METRICS,
            "energy_a_mj", "energy_b_mj")
    return {"arch": dict(arch), "metrics": {k: float(metrics[k]) for k in keep if k in metrics}}


def best_mean(result: Any) -> Any:
    """The feasible trial with the best mean validation accuracy (nsga2 optimises the two accuracies)."""
    ok = result.feasible
    return max(ok, key=lambda t: (t.metrics["valid_acc"], -t.number)) if ok else None


# ---------------------------------------------------------------------------------------------- methods
def run_joint(co: CoExploration, tables: Sequence[TabularBenchmark], method: str, seed: int, budget: int,
              specs: Mapping[str, float]) -> dict[str, Any]:
    objectives = {"valid_acc_a": "max", "valid_acc_b": "max"} if method == "nsga2" else {"valid_acc": "max"}
    t0 = time.perf_counter()
    r = nas.search(co.space(), co.evaluator(tables), objectives, constraints(specs), strategy=method, budget=budget,
                   seed=seed)
    seconds = time.perf_counter() - t0
    best = best_mean(r)
    ok = {t.number for t in r.feasible}
    out = {"seed": seed, "seconds": seconds, "evaluations": r.used, "feasible_trials": len(ok),
           "first_feasible": next((i for i, t in enumerate(r.trials, 1) if t.number in ok), None)}
    if best is not None:
        assert feasible(best.metrics, specs), (method, seed, best.metrics)
        out.update(record(best.arch, best.metrics))
    return out


def run_nas_first(co: CoExploration, tables: Sequence[TabularBenchmark], seed: int, budget: int,
                  specs: Mapping[str, float]) -> dict[str, Any]:
    """Accuracy-only evolution over both architectures, then the exhaustive hardware fit of its best pair."""
    acc = co.accuracy(tables)
    t0 = time.perf_counter()
    r = nas.search(co.architecture_space(), acc, {"valid_acc": "max"}, strategy="evolution", budget=budget, seed=seed)
    best = r.best()
    design, metrics, n_ok = co.fit_hardware(best.arch, constraints(specs))
    seconds = time.perf_counter() - t0
    out = {"seed": seed, "seconds": seconds, "evaluations": r.used, "nas_pick": record(best.arch, best.metrics),
           "feasible_designs": n_ok}
    if design is not None:
        metrics = {**metrics, **acc(design)}
        assert feasible(metrics, specs)
        out.update(record(design, metrics))
    else:
        out["closest_miss"] = closest_miss(co, best.arch, specs)
    return out


def run_hw_first(co: CoExploration, tables: Sequence[TabularBenchmark], seed: int, budget: int,
                 specs: Mapping[str, float]) -> dict[str, Any]:
    design = hw_first_design(co, specs)
    t0 = time.perf_counter()
    r = nas.search(co.architecture_space(), co.evaluator(tables, design), {"valid_acc": "max"}, constraints(specs),
                   strategy="evolution", budget=budget, seed=seed)
    seconds = time.perf_counter() - t0
    best = r.best()
    out = {"seed": seed, "seconds": seconds, "evaluations": r.used, "feasible_trials": len(r.feasible),
           "design": design}
    if best is not None:
        assert feasible(best.metrics, specs)
        out.update(record({**best.arch, **design}, best.metrics))
    return out


def closest_miss(co: CoExploration, archs: Mapping[str, Any], specs: Mapping[str, float]) -> dict[str, Any]:
    """The hardware design that misses the specs by the least (sum of relative excesses), and what it misses."""
    best = None
    for design in co.hardware_designs():
        arch = {**{k: v for k, v in archs.items() if k.startswith(("a_", "b_"))}, **design}
        m = co.hardware(arch)
        excess = {k: m[k] / v - 1 for k, v in specs.items() if m[k] > v}
        total = sum(excess.values())
        if best is None or total < best[0]:
            best = (total, design, m, excess)
    total, design, m, excess = best
    return {"design": design, "metrics": {k: float(m[k]) for k in HW_METRICS},
            "excess_pct": {k: round(100 * v, 2) for k, v in excess.items()}}


def nas_first_oracle(co: CoExploration, tables: Sequence[TabularBenchmark], specs: Mapping[str, float]) -> dict:
    """Every pair of table optima (ties included): feasible hardware designs (expected: none) and the closest miss."""
    tops = []
    for table in tables:
        col = {k: row["valid_acc"] for k, row in table.rows.items()}
        top = max(col.values())
        tops.append([k for k, v in col.items() if v == top])
    pairs = []
    for ka, kb in itertools.product(*tops):
        archs = {**{f"a_{f}": v for f, v in zip(ARCH_FIELDS, ka)}, **{f"b_{f}": v for f, v in zip(ARCH_FIELDS, kb)}}
        design, metrics, n_ok = co.fit_hardware(archs, constraints(specs))
        acc = co.accuracy(tables)(archs)
        pairs.append({"archs": archs, "valid_acc": acc["valid_acc"], "test_acc": acc["test_acc"],
                      "feasible_designs": n_ok, "closest_miss": closest_miss(co, archs, specs)})
    return {"pairs": pairs, "designs": len(co.hardware_designs()),
            "feasible": any(p["feasible_designs"] for p in pairs)}


# ---------------------------------------------------------------------------------------------- the exact optimum
def exact_optimum(co: CoExploration, tables: Sequence[TabularBenchmark], specs: Mapping[str, float]) -> dict:
    """The best feasible mean validation accuracy over the whole joint space.

    Per task, per distinct layer shape and per sub-accelerator choice the model is run once; an architecture's
    latency and energy are sums over its layers (a count matrix times the per-shape costs). Per hardware design,
    each task's latency-feasible architectures form an energy-ascending front of running-best accuracy; for every
    point of a's front the best b point within the remaining energy is found by bisection."""
    per_task = []
    for i, (task, table) in enumerate(zip(TASKS, tables)):
        keys = list(table.rows)
        shapes: dict[tuple, Any] = {}
        counts = []
        for key in keys:
            arch = {f"{task}_{f}": v for f, v in zip(ARCH_FIELDS, key)}
            c: dict[tuple, int] = {}
            for g in co.workloads(arch, task):
                shapes.setdefault(g.shape(), g)
                c[g.shape()] = c.get(g.shape(), 0) + 1
            counts.append(c)
        index = {s: j for j, s in enumerate(shapes)}
        mat = np.zeros((len(keys), len(shapes)))
        for r, c in enumerate(counts):
            for s, n in c.items():
                mat[r, index[s]] = n
        valid = np.array([table.rows[k]["valid_acc"] for k in keys])
        test = np.array([table.rows[k]["test_acc"] for k in keys])
        per_task.append({"keys": keys, "mat": mat, "shapes": list(shapes.values()), "valid": valid, "test": test,
                         "cache": {}})

    def front(i: int, design: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        t = TASKS[i]
        sub_key = (design[f"{t}_template"], design["pe_split"], design["bw_split"], design[f"{t}_buffer_kb"])
        cache = per_task[i]["cache"]
        if sub_key not in cache:
            acc = co.accelerator({**{f"{u}_{f}": "skip" for u in TASKS for f in ARCH_FIELDS}, **design})
            costs = acc.network(i, per_task[i]["shapes"]).layers
            lat = per_task[i]["mat"] @ np.array([c.latency_s * 1e3 for c in costs])
            en = per_task[i]["mat"] @ np.array([c.energy_j * 1e3 for c in costs])
            ok = np.flatnonzero(lat <= specs[f"latency_{t}_ms"])
            if not len(ok):
                cache[sub_key] = None
            else:
                order = ok[np.argsort(en[ok], kind="stable")]
                acc_sorted = per_task[i]["valid"][order]
                run = np.maximum.accumulate(acc_sorted)
                arg = np.array([order[j] for j in _running_argmax(acc_sorted)])
                cache[sub_key] = (en[order], run, arg)
        return cache[sub_key]

    best: tuple[float, dict, int, int] | None = None
    for design in co.hardware_designs():
        area = co.accelerator({**{f"{u}_{f}": "skip" for u in TASKS for f in ARCH_FIELDS}, **design}).area_mm2
        if area > specs["area_mm2"]:
            continue
        fa, fb = front(0, design), front(1, design)
        if fa is None or fb is None:
            continue
        k = np.searchsorted(fb[0], specs["energy_mj"] - fa[0], side="right") - 1
        ok = np.flatnonzero(k >= 0)
        if not len(ok):
            continue
        total = fa[1][ok] + fb[1][k[ok]]
        j = int(np.argmax(total))
        if best is None or total[j] / 2 > best[0]:
            best = (float(total[j] / 2), design, int(fa[2][ok[j]]), int(fb[2][k[ok[j]]]))
    if best is None:
        return {"valid_acc": None}
    value, design, ia, ib = best
    archs = {**{f"a_{f}": v for f, v in zip(ARCH_FIELDS, per_task[0]["keys"][ia])},
             **{f"b_{f}": v for f, v in zip(ARCH_FIELDS, per_task[1]["keys"][ib])}, **design}
    metrics = {**co.hardware(archs), **co.accuracy(tables)(archs)}
    assert feasible(metrics, specs) and abs(metrics["valid_acc"] - value) < 1e-9
    return record(archs, metrics)


def _running_argmax(values: np.ndarray) -> list[int]:
    out, best = [], 0
    for j, v in enumerate(values):
        if v >= values[best]:
            best = j
        out.append(best)
    return out


# ---------------------------------------------------------------------------------------------- report
def method_rows(results: Mapping[str, list[dict]]) -> dict[str, dict]:
    rows = {}
    for m, runs in results.items():
        vals = [r["metrics"]["valid_acc"] if "metrics" in r else None for r in runs]
        tests = [r["metrics"]["test_acc"] if "metrics" in r else None for r in runs]
        rows[m] = {"seeds": len(runs), "feasible_seeds": sum(v is not None for v in vals),
                   "valid_acc": summarize(vals), "test_acc": summarize(tests),
                   "hardware": {k: summarize([r["metrics"][k] for r in runs if "metrics" in r]) for k in HW_METRICS},
                   "seconds": summarize([r["seconds"] for r in runs]),
                   "max_seconds": max(r["seconds"] for r in runs),
                   "evaluations": summarize([r["evaluations"] for r in runs])}
    return rows


def _ci(s: dict | None, digits: int = 4) -> str:
    if s is None:
        return "none feasible"
    return f"{s['mean']:.{digits}f} ± {s['ci95_half']:.{digits}f}" if s["n"] > 1 else f"{s['mean']:.{digits}f}"


def table(report: dict) -> str:
    lines = ["| method | feasible seeds | valid acc (mean of 2) ± 95 % CI | test acc ± 95 % CI | latency a / b ms | "
             "energy mJ | area mm2 | evaluations | wall s (max) |", "|---|---|---|---|---|---|---|---|---|"]
    oracle = report["nas_first_oracle"]
    miss = oracle["pairs"][0]["closest_miss"]
    lines.append(f"| nas-first (table optimum, {len(oracle['pairs'])} tied pair(s)) | "
                 f"{'yes' if oracle['feasible'] else 'no'} (0 of {oracle['designs']} designs) | "
                 f"{oracle['pairs'][0]['valid_acc']:.4f} (infeasible) | {oracle['pairs'][0]['test_acc']:.4f} | "
                 f"{miss['metrics']['latency_a_ms']:.2f} / {miss['metrics']['latency_b_ms']:.2f} | "
                 f"{miss['metrics']['energy_mj']:.1f} | {miss['metrics']['area_mm2']:.2f} | - | - |")
    for m, row in report["methods"].items():
        hw = row["hardware"]
        lat = "-" if hw["latency_a_ms"] is None else f"{hw['latency_a_ms']['mean']:.2f} / {hw['latency_b_ms']['mean']:.2f}"
        en = "-" if hw["energy_mj"] is None else f"{hw['energy_mj']['mean']:.1f}"
        ar = "-" if hw["area_mm2"] is None else f"{hw['area_mm2']['mean']:.2f}"
        only = " (feasible seeds)" if 0 < row["feasible_seeds"] < row["seeds"] else ""
        lines.append(f"| {m} | {row['feasible_seeds']}/{row['seeds']} | {_ci(row['valid_acc'])}{only} | {_ci(row['test_acc'])} "
                     f"| {lat} | {en} | {ar} | {row['evaluations']['mean']:.0f} | {row['seconds']['mean']:.1f} "
                     f"({row['max_seconds']:.1f}) |")
    opt = report.get("exact_optimum")
    if opt and opt.get("metrics"):
        mm = opt["metrics"]
        lines.append(f"| exact optimum (every design x every pair) | yes | {mm['valid_acc']:.4f} | {mm['test_acc']:.4f} "
                     f"| {mm['latency_a_ms']:.2f} / {mm['latency_b_ms']:.2f} | {mm['energy_mj']:.1f} "
                     f"| {mm['area_mm2']:.2f} | {report['space']['designs']:,} x all | {opt['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--methods", default="nas-first,hw-first,random,evolution,nsga2")
    ap.add_argument("--no-exact", action="store_true", help="skip the exact optimum (~15 s)")
    ap.add_argument("--quick", action="store_true", help="3 seeds, budget 300, no exact optimum; writes *_quick.json")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.budget, args.no_exact = 3, 300, True
    out_path = args.out or (OUT.with_name("accelerator_coexplore_quick.json") if args.quick else OUT)
    logging.getLogger("nas").setLevel(logging.ERROR)
    started = time.time()
    co = CoExploration()
    tables = tuple(nas_bench_graph(d) for d in DATASETS)
    specs = dict(SPECS)
    seeds = list(range(args.seeds))
    methods = args.methods.split(",")

    oracle = nas_first_oracle(co, tables, specs)
    print(f"nas-first (table optimum): {len(oracle['pairs'])} pair(s), feasible on any of {oracle['designs']} "
          f"designs: {oracle['feasible']}; closest miss {oracle['pairs'][0]['closest_miss']['excess_pct']}", flush=True)
    assert not oracle["feasible"], "the scenario's specs must rule out the table optima"

    results: dict[str, list[dict]] = {}
    for m in methods:
        runs = []
        for s in seeds:
            if m == "nas-first":
                runs.append(run_nas_first(co, tables, s, args.budget, specs))
            elif m == "hw-first":
                runs.append(run_hw_first(co, tables, s, args.budget, specs))
            else:
                runs.append(run_joint(co, tables, m, s, args.budget, specs))
            r = runs[-1]
            acc = f"{r['metrics']['valid_acc']:.4f}" if "metrics" in r else "no feasible design"
            print(f"  {m:10s} seed {s}: {acc} ({r['seconds']:.1f} s, {r['evaluations']} evaluations)", flush=True)
        results[m] = runs
    report: dict[str, Any] = {
        "experiment": "accelerator_coexplore", "issue": "21 part 1 (NASAIC accelerator co-exploration)",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "commit": git_commit(),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
                    "cpus": os.cpu_count(), "threads": os.environ.get("OMP_NUM_THREADS"),
                    "load_average": list(os.getloadavg())},
        "settings": {"datasets": list(DATASETS), "specs": specs, "seeds": seeds, "budget": args.budget,
                     "methods": methods, "pe_budget": co.pe_budget, "dram_bandwidth": co.dram_bandwidth,
                     "technology": vars(co.tech), "templates": list(co.templates),
                     "pe_fractions": list(co.pe_fractions), "bw_fractions": list(co.bw_fractions),
                     "buffers_kb": list(co.buffers_kb), "hw_first_design": hw_first_design(co, specs)},
        "space": {"designs": len(co.hardware_designs()), "size": str(co.space().size())},
        "nas_first_oracle": oracle, "runs": results, "methods": method_rows(results),
    }
    if not args.no_exact:
        t0 = time.perf_counter()
        report["exact_optimum"] = {**exact_optimum(co, tables, specs), "seconds": time.perf_counter() - t0}
    values = {m: [r["metrics"]["valid_acc"] for r in results[m] if "metrics" in r] for m in methods
              if m in JOINT + ("hw-first",) and all("metrics" in r for r in results[m])}
    if "random" in values and len(values) > 1:
        costs = {m: [r["seconds"] for r in results[m]] for m in values}
        budgets = {m: float(args.budget) for m in values}
        prot = protocol_report(values, direction="max", baseline="random", costs=costs, budgets=budgets,
                               label="cora+citeseer valid_acc", min_seeds=min(10, len(seeds)))
        report["protocol"] = prot.to_dict()
        report["protocol_table"] = protocol_table(prot)
    report["table"] = table(report)
    report["claims"] = claims(report)
    print(f"\nCora + CiteSeer co-exploration, specs {', '.join(constraints(specs))}; budget {args.budget} evaluations, "
          f"seeds 0..{len(seeds) - 1}; valid acc = mean of the two tasks' validation accuracies (search objective)")
    print(report["table"])
    if "protocol_table" in report:
        print("\nProtocol (relative improvement over random search, valid acc):")
        print(report["protocol_table"])
    print("\nclaims:", report["claims"])
    write_report(out_path, report, started)
    return report


def claims(report: dict) -> dict[str, Any]:
    """(a) every returned design feasible (asserted as they are made), (b) nas-first infeasible while the joint
    search is feasible on every seed and beats hardware-first, (c) every search under 5 minutes."""
    rows = report["methods"]
    joint = [m for m in JOINT if m in rows]
    out: dict[str, Any] = {"a_every_returned_design_feasible": True,
                           "b_nas_first_table_optimum_infeasible": not report["nas_first_oracle"]["feasible"]}
    if "nas-first" in rows:
        out["b_nas_first_search_feasible_seeds"] = rows["nas-first"]["feasible_seeds"]
    for m in joint:
        out[f"b_{m}_feasible_seeds"] = f"{rows[m]['feasible_seeds']}/{rows[m]['seeds']}"
    if "hw-first" in rows and rows["hw-first"]["valid_acc"] and "evolution" in rows and rows["evolution"]["valid_acc"]:
        out["b_evolution_minus_hw_first_valid_acc"] = rows["evolution"]["valid_acc"]["mean"] - rows["hw-first"]["valid_acc"]["mean"]
    out["c_max_search_seconds"] = max(r["max_seconds"] for r in rows.values())
    out["c_under_5_minutes"] = out["c_max_search_seconds"] < 300
    return out


if __name__ == "__main__":
    main()
