"""The benchmark gym (issue 22, parts 3 and 4): every registered strategy on every environment, equal tuning.

After ArchGym (Krishnan et al., ISCA 2023) and "NAS evaluation is frustratingly hard" (Yang et al., ICLR 2020):

1. Environments: NAS-Bench-Graph cora / citeseer / pubmed (table lookup; skipped, saying so, when the tables
   are absent), `hw-cnn1d` (the analytic `nas.hardware.CostModel` on a plain 1-D CNN space: max params
   subject to a roofline-latency bound on a Jetson Orin Nano profile), `digits-mlp` (real training of MLPs
   on scikit-learn's digits, seconds per evaluation, fidelity = epochs) and `hw-cnn1d-proxy` (hw-cnn1d with
   its cost model replaced by a random-forest proxy).
2. Every strategy in `nas.strategies.STRATEGIES` that applies runs `--settings` hyper-parameter settings
   (its defaults, then draws from its declared grid, `nas.gym.HYPERPARAMETERS`) x `--seeds` seeds on every
   environment: the same number of runs for every strategy, every run with its own seed, run k of every
   strategy on the same seed. Reported: the distribution over all runs (median, IQR, min-max), the
   defaults' and the best setting's median (what a tuned report would show), relative improvement over
   random sampling with its 95 % Welch interval, and the search cost (`experiments/reporting.py`, which
   warns when a method lacks its random baseline or has fewer than 10 seeds).
3. Proxy cost model: random forests trained on the logged trials (the journals of every hw-cnn1d search
   of the gym, plus a random-search journal of `--proxy-random` evaluations), RMSE in % of the held-out
   truth's range on 1,000 architectures that no journal holds, and the cost per query of the proxy against
   the analytic model and against measured latency; optionally (`--measured N`) a second proxy trained on
   N measured CPU latencies (batch 32), with the measurement's own repeatability as the floor.

    .venv/bin/python experiments/gym.py                 # full run (~20 min on 2 busy cores)
    .venv/bin/python experiments/gym.py --quick         # smoke run (~2 min)
    .venv/bin/python experiments/gym.py --envs hw-cnn1d digits-mlp --strategies random evolution tpe

Writes experiments/results/gym.json and gym.png (gym_quick.* with --quick).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import (ProtocolWarning, git_commit, gym_reports, gym_table, plot_gym,  # noqa: E402
                       protocol_table, ri_matrix)

import nas  # noqa: E402
from nas.gym import (GymResult, ProxyCostModel, RunRecord, environment, hardware_environment,  # noqa: E402
                     proxy_environment, run_gym, time_per_query, training_environment)
from nas.strategies import STRATEGIES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALL_ENVS = ("nbg-cora", "nbg-citeseer", "nbg-pubmed", "hw-cnn1d", "digits-mlp", "hw-cnn1d-proxy")
BUDGETS = {"nbg": 60, "hw-cnn1d": 60, "digits-mlp": 30}
PROXY_METRICS = ("params", "latency_roofline_ms")


def log_line(text: str) -> None:
    print(text, flush=True)


def progress(label: str):
    started = time.perf_counter()

    def report(rec: RunRecord, done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            log_line(f"  {label}: {done}/{total} runs, {time.perf_counter() - started:.0f} s"
                     + (f" (last error: {rec.strategy}: {rec.error[:80]})" if rec.error else ""))

    return report


# ---------------------------------------------------------------------------------------- the proxy
def build_proxy(hw: Any, journals: Path, n_random: int, n_test: int, seed: int,
                trees: int = 10) -> tuple[ProxyCostModel, dict[str, Any]]:
    """Random forests on every logged hw-cnn1d trial, checked on held-out architectures; cost per query."""
    from nas.hardware import CostModel, measure_latencies

    real = CostModel(hw.space, device="jetson_orin_nano", energy="analytic", cache=0)
    t0 = time.perf_counter()
    if n_random:
        nas.search(hw.space, hw.evaluate, {hw.objective: hw.direction}, list(hw.constraints), strategy="random",
                   budget=n_random, seed=seed, workdir=journals / "proxy-random")
    logged_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    proxy = ProxyCostModel.from_journals(hw.space, [journals], PROXY_METRICS, n_estimators=trees)
    fit_s = time.perf_counter() - t0
    logged = _logged(journals)
    seen = set(logged)
    rng = np.random.default_rng(seed + 1)
    held: dict[str, Any] = {}
    while len(held) < n_test:                       # fresh architectures no journal holds (space >> test)
        a = hw.space.sample(rng)
        if a.id not in seen:
            held.setdefault(a.id, a)
    test = list(held.values())
    truth_rows = [real(a) for a in test]
    truth = {m: [r[m] for r in truth_rows] for m in PROXY_METRICS}
    accuracy = proxy.accuracy(test, truth)
    # learning curve on the same held-out set: forests fitted on the first n logged architectures (random order)
    order = [logged[k] for k in np.random.default_rng(0).permutation(list(logged))]
    curve = []
    for n in (500, 1000, 2000, 4000, 8000):
        if n >= proxy.n_train:
            break
        sub = ProxyCostModel.fit(hw.space, [hw.space.validate(a) for a, _ in order[:n]],
                                 {m: [v[m] for _, v in order[:n]] for m in PROXY_METRICS}, n_estimators=trees)
        curve.append({"n_train": n, **{a.metric: a.rmse_pct_of_range for a in sub.accuracy(test, truth)}})
    curve.append({"n_train": proxy.n_train, **{a.metric: a.rmse_pct_of_range for a in accuracy}})
    # cost per query: one architecture at a time, as a search asks; the proxy and the analytic model timed in
    # alternating blocks so that a busy phase of the shared machine hits both
    proxy(test[0])
    real(test[0])
    proxy_t, analytic_t = [], []
    for k in range(4):
        proxy_t.append(time_per_query(proxy, test[75 * k:75 * (k + 1)]))
        analytic_t.append(time_per_query(real, test[300 + 25 * k:300 + 25 * (k + 1)]))
    proxy_s, analytic_s = float(np.median(proxy_t)), float(np.median(analytic_t))
    # the forest's size trades accuracy for cost per query (onnxruntime walks every tree)
    forest_sizes = []
    for n_trees in sorted({10, 20, 50} | {trees}):
        alt = proxy if n_trees == trees else ProxyCostModel.from_journals(hw.space, [journals], PROXY_METRICS,
                                                                        n_estimators=n_trees)
        alt(test[0])
        forest_sizes.append({"trees": n_trees, "us_per_query": 1e6 * time_per_query(alt, test[:200]),
                             **{a.metric: a.rmse_pct_of_range for a in alt.accuracy(test, truth)}})
    measured = CostModel(hw.space, device="cpu", latency="measured", cache=0)   # warmup 10, repeats 50, median
    measured(test[0])
    measured_s = time_per_query(measured, test[400:430])

    def rounds(a: Any) -> float:
        return measure_latencies([(hw.space.build(a), hw.space.example_input(a))], warmup=2, repeats=3, rounds=20)[0].min_ms

    rounds_s = time_per_query(rounds, test[430:460])
    report = {
        "target": "nas.hardware.CostModel(CNN1dSpace(), device='jetson_orin_nano', energy='analytic') at batch 1",
        "features": "space.to_vector (option index per decision)",
        "forest": f"scikit-learn RandomForestRegressor per metric, {trees} trees, min_samples_leaf 1, max_features 1.0; "
                  "queries through nas.gym.OnnxForests (skl2onnx + onnxruntime, one thread; same predictions up to float32)",
        "logged_trials": proxy.source, "n_train": proxy.n_train, "n_random_logged": n_random,
        "n_test": len(test), "test": "random architectures in no journal; truth from the analytic model",
        "accuracy": [a.__dict__ for a in accuracy], "learning_curve": curve, "forest_sizes": forest_sizes,
        "timing": "median of 4 alternating blocks (75 proxy queries, 25 analytic queries each), one call per query",
        "seconds": {"random_journal": logged_s, "fit": fit_s},
        "cost_per_query_s": {"proxy": proxy_s, "analytic_costmodel": analytic_s,
                             "measured_latency_10_warmup_50_repeats": measured_s,
                             "measured_latency_20_interleaved_rounds": rounds_s},
        "speedup": {"vs_analytic": analytic_s / proxy_s, "vs_measured": measured_s / proxy_s,
                    "vs_measured_rounds": rounds_s / proxy_s},
    }
    return proxy, report


def _logged(journals: Path) -> dict[str, tuple[dict[str, Any], dict[str, float]]]:
    """Every distinct logged architecture with its metrics (first seen, over the journals in path order)."""
    out: dict[str, tuple[dict[str, Any], dict[str, float]]] = {}
    for d in sorted(journals.rglob("journal.jsonl")):
        for t in nas.load(d.parent).trials:
            if t.status != "failed" and all(m in t.metrics for m in PROXY_METRICS):
                out.setdefault(t.arch_id, (t.arch, {m: float(t.metrics[m]) for m in PROXY_METRICS}))
    return out


def measured_proxy(hw: Any, n_train: int, n_test: int, seed: int, batch: int = 32) -> dict[str, Any]:
    """A proxy of measured CPU latency (batch `batch`, min over 5 interleaved rounds of 3 runs): RMSE on
    held-out architectures and the same held-out architectures measured again (the measurement's floor)."""
    from nas.hardware import measure_latencies

    rng = np.random.default_rng(seed)
    archs: dict[str, Any] = {}
    while len(archs) < n_train + n_test:
        a = hw.space.sample(rng)
        archs.setdefault(a.id, a)
    items = list(archs.values())

    def measure(batch_archs: Sequence[Any]) -> list[float]:
        out = []
        for i in range(0, len(batch_archs), 50):
            chunk = batch_archs[i:i + 50]
            nets = [(hw.space.build(a), hw.space.example_input(a, batch)) for a in chunk]
            out += [m.min_ms for m in measure_latencies(nets, warmup=1, repeats=3, rounds=5)]
        return out

    t0 = time.perf_counter()
    lat = measure(items)
    seconds = time.perf_counter() - t0
    again = measure(items[n_train:])
    train, test = items[:n_train], items[n_train:]
    proxy = ProxyCostModel.fit(hw.space, train, {"latency_ms": lat[:n_train]})
    (acc,) = proxy.accuracy(test, {"latency_ms": lat[n_train:]})
    y, y2 = np.array(lat[n_train:]), np.array(again)
    floor = float(np.sqrt(np.mean((y2 - y) ** 2)))
    proxy_s = time_per_query(proxy, test[:200])
    return {"batch_size": batch, "statistic": "min over 5 interleaved rounds of 1 warm-up + 3 runs",
            "n_train": n_train, "n_test": n_test, "accuracy": acc.__dict__,
            "remeasured_rmse_pct_of_range": 100 * floor / float(y.max() - y.min()),
            "latency_range_ms": [float(y.min()), float(y.max())], "seconds_measuring": seconds,
            "measure_s_per_arch": seconds / len(items), "proxy_s_per_query": proxy_s,
            "speedup": seconds / len(items) / proxy_s}


# ---------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", default=list(ALL_ENVS), choices=ALL_ENVS)
    ap.add_argument("--strategies", nargs="+", default=None, help="default: every registered strategy")
    ap.add_argument("--settings", type=int, default=5, help="hyper-parameter settings per strategy (default 5)")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per setting (default 2: 10 runs per strategy)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-scale", type=float, default=1.0, help="multiply every environment's budget")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--proxy-random", type=int, default=6000, help="random-search trials logged for the proxy")
    ap.add_argument("--proxy-test", type=int, default=1000)
    ap.add_argument("--proxy-trees", type=int, default=10, help="trees per metric in the proxy's forests")
    ap.add_argument("--measured", type=int, default=1000, help="train a proxy on N measured latencies (0: skip)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 strategies, 2 settings x 1 seed, small budgets")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.strategies = args.strategies or ["random", "evolution", "tpe", "hyperband"]
        args.settings, args.seeds, args.budget_scale = 2, 1, 0.34
        args.proxy_random, args.proxy_test, args.measured = 600, 500, 0
        args.envs = [e for e in args.envs if e != "nbg-citeseer" and e != "nbg-pubmed"]
    stem = "gym_quick" if args.quick else "gym"
    args.out = args.out or ROOT / "experiments" / "results" / f"{stem}.json"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("nas").setLevel(logging.ERROR)
    warnings.simplefilter("always", ProtocolWarning)
    # said once here instead of once per CMA-ES run: Optuna's CmaEsSampler ignores constraints (hw-cnn1d has one)
    warnings.filterwarnings("ignore", message="Constraints have been set, but CmaEsSampler", category=UserWarning)
    started, load0 = time.perf_counter(), os.getloadavg()
    strategies = args.strategies or sorted(STRATEGIES)
    scale = args.budget_scale

    def budget(key: str) -> int:
        return max(5, int(round(BUDGETS[key] * scale)))

    envs, notes = [], []
    for name in [e for e in args.envs if e.startswith("nbg-")]:
        try:
            envs.append(environment(name, budget=budget("nbg")))
        except nas.ConfigError as e:
            notes.append(f"{name} skipped: {e}")
            log_line(f"SKIPPED {name}: {e}")
    hw = hardware_environment(budget=budget("hw-cnn1d")) if {"hw-cnn1d", "hw-cnn1d-proxy"} & set(args.envs) else None
    if "digits-mlp" in args.envs:
        envs.append(training_environment(budget=budget("digits-mlp")))
    log_line(f"gym: {len(strategies)} strategies x {args.settings} settings x {args.seeds} seeds; environments "
             f"{[e.name for e in envs] + ([hw.name] if hw else [])}{' + proxy' if 'hw-cnn1d-proxy' in args.envs else ''};"
             f" {args.jobs} jobs; load {load0[0]:.1f}")
    result: GymResult | None = None
    proxy_report: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="gym-journals-") as tmp:
        journals = Path(tmp)
        if hw is not None:
            t0 = time.perf_counter()
            result = run_gym([hw], strategies, args.settings, args.seeds, args.seed, jobs=args.jobs,
                             workdir=journals / "gym", progress=progress(hw.name))
            log_line(f"  {hw.name}: {time.perf_counter() - t0:.0f} s")
        if hw is not None and "hw-cnn1d-proxy" in args.envs:
            t0 = time.perf_counter()
            proxy, proxy_report = build_proxy(hw, journals, args.proxy_random, args.proxy_test, args.seed + 1000,
                                              args.proxy_trees)
            log_line(f"  proxy: {proxy.n_train} logged architectures, {time.perf_counter() - t0:.0f} s")
            from nas.hardware import CostModel

            real = CostModel(hw.space, device="jetson_orin_nano", energy="analytic", cache=1 << 16)
            envs.append(proxy_environment(hw, proxy, real))
    if envs:
        t0 = time.perf_counter()
        rest = run_gym(envs, strategies, args.settings, args.seeds, args.seed, jobs=args.jobs,
                       progress=progress("tabular/training/proxy"))
        log_line(f"  other environments: {time.perf_counter() - t0:.0f} s")
        result = rest if result is None else result.merge(rest)
    if result is None:
        log_line("nothing to run")
        return 1
    result.notes += notes
    if "cmaes" in strategies and hw is not None:
        result.notes.append("cmaes: Optuna's CmaEsSampler does not use constraints (hw-cnn1d and its proxy have one)")
    if args.measured and hw is not None:
        t0 = time.perf_counter()
        measured = measured_proxy(hw, args.measured, 300, args.seed + 2000)
        proxy_report = {**(proxy_report or {}), "measured_latency_proxy": measured}
        log_line(f"  measured-latency proxy: {time.perf_counter() - t0:.0f} s")

    # ------------------------------------------------------------------ report
    reports = gym_reports(result)
    print()
    print(gym_table(result, reports))
    for note in result.notes:
        print(f"note: {note}")
    lottery = hyperparameter_lottery(result)
    print("\nHyper-parameter lottery: ranking strategies by their best setting's median vs by the median over "
          "all settings x seeds")
    print("| environment | winner, best setting | winner, all runs | Kendall tau of the two rankings |\n|---|---|---|---|")
    for env, row in lottery.items():
        print(f"| {env} | {row['winner_best_setting']} | {row['winner_all_runs']} | {row['tau']:.2f} |")
    if proxy_report:
        print_proxy(proxy_report, result)
    print("\nRelative improvement over random sampling, % (bold: the 95 % Welch interval excludes 0):")
    print(ri_matrix(reports))
    print("\nProtocol (relative improvement over random sampling, every run one seed):")
    for env, rep in reports.items():
        print(f"\n{env}\n{protocol_table(rep)}")
    warned = [w for rep in reports.values() for w in rep.warnings]
    print(f"\nprotocol warnings: {len(warned)}" + ("".join(f"\n  - {w}" for w in warned)))
    total = time.perf_counter() - started
    png = plot_gym(result, args.out.with_suffix(".png"))
    doc = {
        "script": "experiments/gym.py", "command": "python experiments/gym.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "git_commit": git_commit(),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "load_average_start": load0, "load_average_end": os.getloadavg()},
        "settings": {**vars(args), "out": str(args.out), "envs": args.envs, "strategies": strategies},
        "gym": result.to_dict(), "protocol": {k: v.to_dict() for k, v in reports.items()},
        "lottery": lottery, "proxy": proxy_report, "total_seconds": total,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    log_line(f"total {total:.0f} s; wrote {_rel(args.out)} and {_rel(png)}")
    return 0


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def hyperparameter_lottery(result: GymResult) -> dict[str, dict[str, Any]]:
    """Per environment: the winner when each strategy is represented by its best setting (what tuning each
    strategy separately and reporting its best would show) and when by all its runs, and how far the two
    rankings agree (Kendall tau)."""
    from scipy.stats import kendalltau

    out = {}
    for env, facts in result.environments.items():
        sums = [s for s in result.summaries() if s.environment == env]
        if len(sums) < 2:
            continue
        sign = 1.0 if facts["direction"] == "max" else -1.0
        best = {s.strategy: sign * s.best_setting_median for s in sums}
        med = {s.strategy: sign * s.median for s in sums}
        names = list(best)
        tau = kendalltau([best[n] for n in names], [med[n] for n in names]).statistic
        out[env] = {"winner_best_setting": max(names, key=lambda n: best[n]),
                    "winner_all_runs": max(names, key=lambda n: med[n]), "tau": float(tau)}
    return out


def print_proxy(rep: dict[str, Any], result: GymResult) -> None:
    from scipy.stats import kendalltau

    if "accuracy" in rep:
        print(f"\nProxy cost model ({rep['logged_trials']}; {rep['n_train']} distinct architectures) on "
              f"{rep['n_test']} held-out architectures:")
        print("| metric | RMSE | range | RMSE % of range | Kendall tau |\n|---|---|---|---|---|")
        for a in rep["accuracy"]:
            print(f"| {a['metric']} | {a['rmse']:.4g} | {a['target_range']:.4g} | {a['rmse_pct_of_range']:.2f} | "
                  f"{a['kendall_tau']:.3f} |")
        print("learning curve (RMSE % of range): " + "; ".join(
            f"n={c['n_train']}: " + ", ".join(f"{m} {c[m]:.2f}" for m in PROXY_METRICS) for c in rep["learning_curve"]))
        q = rep["cost_per_query_s"]
        print(f"cost per query: proxy {1e3 * q['proxy']:.3f} ms; analytic CostModel {1e3 * q['analytic_costmodel']:.2f} ms "
              f"({rep['speedup']['vs_analytic']:.0f}x); measured latency, 10 + 50 runs "
              f"{1e3 * q['measured_latency_10_warmup_50_repeats']:.1f} ms ({rep['speedup']['vs_measured']:.0f}x), "
              f"20 interleaved rounds {1e3 * q['measured_latency_20_interleaved_rounds']:.1f} ms "
              f"({rep['speedup']['vs_measured_rounds']:.0f}x)")
        print("forest size vs accuracy and cost: " + "; ".join(
            f"{f['trees']} trees: {f['us_per_query']:.0f} us, " + ", ".join(f"{m} {f[m]:.2f} %" for m in PROXY_METRICS)
            for f in rep.get("forest_sizes", [])))
        real = {s.strategy: s.median for s in result.summaries() if s.environment == "hw-cnn1d"}
        prox = {s.strategy: s.final_median for s in result.summaries() if s.environment == "hw-cnn1d-proxy"}
        common = [n for n in real if n in prox and prox[n] is not None]
        if len(common) > 2:
            tau = kendalltau([real[n] for n in common], [prox[n] for n in common]).statistic
            rep["strategy_ranking_tau_real_vs_proxy"] = float(tau)
            print(f"strategies ranked by median on hw-cnn1d vs by the real value of their proxy-searched picks: "
                  f"Kendall tau {tau:.2f} over {len(common)} strategies")
    if "measured_latency_proxy" in rep:
        m = rep["measured_latency_proxy"]
        a = m["accuracy"]
        print(f"proxy of measured CPU latency (batch {m['batch_size']}, {m['statistic']}; {m['n_train']} measured "
              f"architectures): RMSE {a['rmse_pct_of_range']:.2f} % of range on {m['n_test']} held-out "
              f"(remeasuring them: {m['remeasured_rmse_pct_of_range']:.2f} %), tau {a['kendall_tau']:.3f}; "
              f"measuring {1e3 * m['measure_s_per_arch']:.1f} ms per architecture vs proxy "
              f"{1e3 * m['proxy_s_per_query']:.3f} ms ({m['speedup']:.0f}x)")


if __name__ == "__main__":
    sys.exit(main())
