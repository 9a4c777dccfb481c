"""End-to-end latency predictor (`EndToEndLatency`) against the baselines, on measured and generated latencies.

Sources (each a fixed pool of architectures with one latency each; training sets are drawn per seed, the rest
of the pool is the test set):

* `nb201/cpu`, `ofa/cpu`: `NasBench201Space()` (uniform samples) and `OFASpace()` (`sample_subnet`) measured
  once on this CPU, batch 1, one thread, min statistic over interleaved rounds (`measure_latencies`), cached
  in experiments/results/latency_predictor_pool.json (resumable, chunk by chunk).
* `nb201/pixel4`, `ofa/pixel4`: generated: the `pixel4_a76` profile's roofline bound plus 5 µs per leaf call
  (a launch overhead the roofline leaves out), times log-normal noise (sigma 0.05).
* `nb201/cpu+glitch`, `ofa/cpu+glitch`: the measured latencies with 5 % of each training set replaced by
  near-zero values (1e-4 of the true latency: measurement glitches); the test set is clean.

Predictors, all fitted on the same N training architectures: a FLOPs/params line (least squares on FLOPs
and parameters), ridge and a random forest on the one-hot encoding, today's onboarded table (the per-layer
table timed on this CPU, `lut_latency(...).onboard`), and the new `EndToEndLatency` with the encoding only
and with the table's sum and log FLOPs/params as extra features (`cost_features`). Metrics on the test set:
Kendall tau, the fraction within +-10 % and MAPE; means with 95 % t-intervals over seeds (the shared
protocol code, against the FLOPs/params line), and per source the paired difference between the new
predictor and the best baseline at each N.

    .venv/bin/python experiments/latency_predictor.py              # 10 seeds, N = 20 and 100, pool 300
    .venv/bin/python experiments/latency_predictor.py --quick      # smoke run (2 seeds, pool 60)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import git_commit, protocol_report, write_report  # noqa: E402

from nas.hardware import (DegenerateFitError, EndToEndLatency, LatencyFitWarning,  # noqa: E402
                          adapter_for, build_table, cost_features, fit_calibration, load_device, lut_latency,
                          measure_latencies, roofline)
from nas.hardware.latency import host_info  # noqa: E402
from nas.spaces.cell import NasBench201Space  # noqa: E402
from nas.spaces.ofa import OFASpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
BASELINES = ("flops-params line", "ridge one-hot", "rf one-hot", "onboarded table")
NEW = ("e2e (encoding)", "e2e (+table, counts)")
METRICS = {"kendall_tau": "max", "within_10pct": "max", "mape": "min"}


def make_space(name: str) -> Any:
    return NasBench201Space() if name == "nb201" else OFASpace()


def draw_pool(space: Any, name: str, n: int, seed: int) -> list[Any]:
    """n distinct architectures: uniform for NB201, OFA's training distribution (`sample_subnet`) for OFA."""
    rng = np.random.default_rng(seed)
    seen: dict[str, Any] = {}
    for _ in range(100 * n):
        a = space.sample_subnet(rng) if name == "ofa" else space.sample(rng)
        seen.setdefault(a.id, a)
        if len(seen) == n:
            break
    return list(seen.values())


def measured_pool(name: str, args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    """The pool's architectures and measured min latencies, resumed from `cache` chunk by chunk."""
    space = make_space(name)
    data = json.loads(cache.read_text()) if cache.exists() else {}
    settings = {"pool": args.pool, "seed": 0, "warmup": 2, "repeats": 3, "rounds": args.rounds, "threads": 1,
                "batch_size": 1}
    entry = data.get(name)
    if entry is None or entry.get("settings") != settings:
        entry = {"settings": settings, "archs": [a.to_dict() for a in draw_pool(space, name, args.pool, 0)],
                 "min_ms": [], "median_ms": [], "host": host_info("cpu")}
    archs = [space.validate(a) for a in entry["archs"]]
    while len(entry["min_ms"]) < len(archs):
        lo = len(entry["min_ms"])
        chunk = archs[lo:lo + args.chunk]
        t0 = time.time()
        timed = measure_latencies([(space.build(a), space.example_input(a, 1)) for a in chunk], warmup=2, repeats=3,
                                  rounds=args.rounds, threads=1, seed=lo)
        entry["min_ms"] += [m.min_ms for m in timed]
        entry["median_ms"] += [m.median_ms for m in timed]
        data[name] = entry
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(data, indent=1))
        print(f"  {name}: measured {lo + len(chunk)}/{len(archs)} ({time.time() - t0:.0f} s, load "
              f"{os.getloadavg()[0]:.2f})", flush=True)
    return {"space": space, "archs": archs, "min_ms": np.array(entry["min_ms"]),
            "median_ms": np.array(entry["median_ms"])}


def roofline_latency(space: Any, archs: list[Any], seed: int) -> np.ndarray:
    """pixel4_a76 roofline bound + 5 µs per leaf call, times log-normal noise (sigma 0.05)."""
    adapter, device = adapter_for(space), load_device("pixel4_a76")
    rng = np.random.default_rng(seed)
    out = []
    for a in archs:
        leaves = adapter.arch_counts(a, 1)
        out.append(roofline(leaves, device, "float32", 1).bound_ms + 0.005 * len(leaves))
    return np.array(out) * rng.lognormal(0.0, 0.05, len(out))


def scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    rel = np.abs(pred / truth - 1)
    tau = stats.kendalltau(pred, truth).statistic
    return {"kendall_tau": float(tau) if math.isfinite(tau) else 0.0, "within_10pct": float(np.mean(rel <= 0.1)),
            "mape": float(np.mean(rel))}


def run_one(src: dict[str, Any], n: int, seed: int) -> dict[str, Any]:
    """Every predictor on one training draw of one source."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LinearRegression, RidgeCV

    space, archs, y = src["space"], src["archs"], src["y"]
    rng = np.random.default_rng(1000 * seed + n)
    perm = rng.permutation(len(archs))
    tr, te = perm[:n], perm[n:]
    y_tr = y[tr].copy()
    if src["glitch"]:
        bad = rng.choice(n, size=max(1, round(0.05 * n)), replace=False)
        y_tr[bad] *= 1e-4
    onehot, counts = src["onehot"], src["counts"]
    out: dict[str, Any] = {"source": src["name"], "n": n, "seed": seed, "metrics": {}, "notes": {}}
    preds: dict[str, np.ndarray] = {}
    preds["flops-params line"] = LinearRegression().fit(counts[tr], y_tr).predict(counts[te])
    preds["ridge one-hot"] = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(onehot[tr], y_tr).predict(onehot[te])
    preds["rf one-hot"] = RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1).fit(
        onehot[tr], y_tr).predict(onehot[te])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LatencyFitWarning)
        try:
            cal = src["lut"].onboard([archs[i] for i in tr], y_tr)
            preds["onboarded table"] = np.array([cal.latency_ms(archs[i]) for i in te])
            out["notes"]["onboarded table"] = {"excluded": list(cal.calibration.excluded)}
        except DegenerateFitError as e:
            out["notes"]["onboarded table"] = {"refused": str(e)}
        try:  # onboarding as it was before screening: does it collapse?
            fit_calibration([src["by_kind"][i] for i in tr], y_tr, screen=False, max_mape=math.inf)
            out["notes"]["onboarding without screening"] = "fitted"
        except DegenerateFitError as e:
            out["notes"]["onboarding without screening"] = f"refused: {e}"
        for name, feats in (("e2e (encoding)", {}), ("e2e (+table, counts)", src["features"])):
            t0 = time.time()
            try:
                model = EndToEndLatency(space, features=feats, seed=seed).fit([archs[i] for i in tr], y_tr)
                preds[name] = model.predict([archs[i] for i in te])
                out["notes"][name] = {"chosen": model.chosen, "screened": len(model.screened),
                                      "cv_mape": model.cv[model.chosen].cv_mape, "seconds": round(time.time() - t0, 2)}
            except DegenerateFitError as e:
                out["notes"][name] = {"refused": str(e)}
        out["warnings"] = sorted({str(w.message)[:120] for w in caught})
    for name in (*BASELINES, *NEW):
        if name in preds:
            out["metrics"][name] = scores(np.maximum(preds[name], 1e-9), y[te])
    return out


def prepare_sources(args: argparse.Namespace) -> list[dict[str, Any]]:
    sources = []
    cache = RESULTS / ("latency_predictor_pool_quick.json" if args.quick else "latency_predictor_pool.json")
    for name in ("nb201", "ofa"):
        print(f"{name}: pool of {args.pool}", flush=True)
        pool = measured_pool(name, args, cache)
        space, archs = pool["space"], pool["archs"]
        adapter = adapter_for(space)
        t0 = time.time()
        table_path = ROOT / "runs" / "latency_predictor" / f"{name}-cpu-b1-t1-r{args.rounds}.jsonl"
        table = build_table(adapter, table_path, batch_size=1, threads=1, warmup=2, repeats=3, rounds=args.rounds)
        lut = lut_latency(table.with_statistic("min"), adapter)
        print(f"  table: {len(table)} layers ({time.time() - t0:.0f} s, {table_path})", flush=True)
        feats = cost_features(space, 1, lut)
        memo = {k: {a.id: f(a) for a in archs} for k, f in feats.items()}
        features = {k: (lambda a, m=m: m[a.id]) for k, m in memo.items()}
        counts = np.array([[memo["mflops"][a.id], memo["mparams"][a.id]] for a in archs])
        common = {"space": space, "archs": archs, "lut": lut, "features": features, "counts": counts,
                  "onehot": np.array([space.to_onehot(a) for a in archs]),
                  "by_kind": [lut.by_kind(a) for a in archs]}
        measured = pool["min_ms"]
        sources.append({**common, "name": f"{name}/cpu", "y": measured, "glitch": False})
        sources.append({**common, "name": f"{name}/pixel4", "y": roofline_latency(space, archs, 7), "glitch": False})
        sources.append({**common, "name": f"{name}/cpu+glitch", "y": measured, "glitch": True})
    return sources


def summarise(runs: list[dict[str, Any]], sources: list[str], ns: list[int]) -> dict[str, Any]:
    """Means with 95 % CIs per (source, N, metric), and the new predictor against the best baseline."""
    out: dict[str, Any] = {}
    for s in sources:
        for n in ns:
            rs = [r for r in runs if r["source"] == s and r["n"] == n]
            cell: dict[str, Any] = {"seeds": len(rs), "metrics": {}, "vs_best_baseline": {}}
            for metric, direction in METRICS.items():
                values = {m: [r["metrics"][m][metric] for r in rs if m in r["metrics"]] for m in (*BASELINES, *NEW)}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rep = protocol_report(values, direction=direction, baseline="flops-params line",
                                          label=f"{s} N={n} {metric}")
                cell["metrics"][metric] = {m.method: {"mean": m.mean, "ci95": [m.ci95_low, m.ci95_high], "n": m.n}
                                           for m in rep.methods}
                means = {m: float(np.mean(v)) for m, v in values.items() if m in BASELINES and len(v) == len(rs)}
                best = (max if direction == "max" else min)(means, key=means.get)
                for new in NEW:
                    pairs = [(r["metrics"][new][metric], r["metrics"][best][metric]) for r in rs
                             if new in r["metrics"] and best in r["metrics"]]
                    if len(pairs) < 2:
                        continue
                    d = np.array([a - b for a, b in pairs]) * (1 if direction == "max" else -1)
                    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
                    cell["vs_best_baseline"].setdefault(new, {})[metric] = {
                        "best_baseline": best, "advantage_mean": float(d.mean()),
                        "advantage_ci95": [float(d.mean() - half), float(d.mean() + half)],
                        "matches": bool(d.mean() >= 0 or d.mean() + half >= 0)}
            cell["refusals"] = {m: sum("refused" in (r["notes"].get(m) or {}) for r in rs)
                                for m in ("onboarded table", *NEW)}
            cell["onboarding_without_screening_refused"] = sum(
                str(r["notes"].get("onboarding without screening", "")).startswith("refused") for r in rs)
            cell["chosen"] = {m: [r["notes"][m].get("chosen") for r in rs if m in r["notes"]] for m in NEW}
            out[f"{s} N={n}"] = cell
    return out


def print_table(summary: dict[str, Any]) -> None:
    print(f"\n{'source':<18}{'N':>4} {'predictor':<22}{'tau [95% CI]':>22}{'±10 %':>8}{'MAPE':>8}")
    for key, cell in summary.items():
        s, n = key.split(" N=")
        tau = cell["metrics"]["kendall_tau"]
        for m in (*BASELINES, *NEW):
            if m not in tau:
                print(f"{s:<18}{n:>4} {m:<22}{'refused':>22}")
                continue
            lo, hi = tau[m]["ci95"]
            w, e = cell["metrics"]["within_10pct"][m]["mean"], cell["metrics"]["mape"][m]["mean"]
            print(f"{s:<18}{n:>4} {m:<22}{tau[m]['mean']:>8.3f} [{lo:.3f}, {hi:.3f}]{w:>8.3f}{e:>8.3f}")
        for new, per in cell["vs_best_baseline"].items():
            parts = [f"{metric} {v['advantage_mean']:+.3f} [{v['advantage_ci95'][0]:+.3f}, "
                     f"{v['advantage_ci95'][1]:+.3f}] vs {v['best_baseline']}" for metric, v in per.items()]
            print(f"{'':<23}{new} advantage: " + "; ".join(parts))
        refused = {k: v for k, v in cell["refusals"].items() if v}
        if refused or cell["onboarding_without_screening_refused"]:
            print(f"{'':<23}refused fits: {refused}; onboarding without screening refused as degenerate in "
                  f"{cell['onboarding_without_screening_refused']} of {cell['seeds']} seeds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--ns", default="20,100")
    ap.add_argument("--pool", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--chunk", type=int, default=100, help="architectures timed together (interleaved), then saved")
    ap.add_argument("--quick", action="store_true", help="smoke run: pool 60, 2 seeds, N = 20, 5 rounds")
    args = ap.parse_args()
    if args.quick:
        args.pool, args.seeds, args.ns, args.rounds = 60, 2, "20", 5
    torch.set_num_threads(1)
    started = time.time()
    out = RESULTS / ("latency_predictor_quick.json" if args.quick else "latency_predictor.json")
    ns = [int(x) for x in args.ns.split(",")]
    settings = {k: v for k, v in vars(args).items() if k != "chunk"}
    sources = prepare_sources(args)
    old = json.loads(out.read_text()) if out.exists() else {}
    runs = old.get("runs", []) if old.get("settings") == settings else []
    done = {(r["source"], r["n"], r["seed"]) for r in runs}
    for src in sources:
        for n in ns:
            for seed in range(args.seeds):
                if (src["name"], n, seed) in done:
                    continue
                t0 = time.time()
                runs.append(run_one(src, n, seed))
                print(f"  {src['name']} N={n} seed {seed}: {time.time() - t0:.1f} s", flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps({"settings": settings, "runs": runs}, indent=1))
    names = [s["name"] for s in sources]
    summary = summarise(runs, names, ns)
    print_table(summary)
    at_100 = {k: c["vs_best_baseline"] for k, c in summary.items() if k.endswith(f"N={max(ns)}")}
    report = {"experiment": "latency_predictor", "settings": settings, "commit": git_commit(),
              "host": host_info("cpu"), "load_at_end": os.getloadavg()[0], "summary": summary,
              "acceptance_at_max_n": at_100, "runs": runs}
    write_report(out, report, started)


if __name__ == "__main__":
    main()
