"""Constrained single objective on a Repeat-based supernet space (issue 19, third acceptance point).

Maximise the inherited validation accuracy of `OFASpace()` subnets on MNIST-1D subject to a lookup-table latency
bound declared cheap (`nas.cheap`: computed, and the constraint checked, before the expensive evaluation, so an
infeasible proposal costs no query). Question: does `predictor-search` reach at 1,000 queries the mean best
feasible accuracy plain `evolution` reaches at 5,000? Random search at 1,000 is the protocol's baseline.

1. Supernet: `OFASpace()` (4.4e10 architectures: resolution x 4 stages of depth 2-4, width, per-block kernel and
   expansion) trained once with BigNAS's sandwich rule on MNIST-1D's 3,500 training signals (`mnist1d_splits(seed=0)`),
   one thread; cached in runs/constrained_ofa/supernet.pt (deterministic for the seed).
2. Accuracy of a query: `InheritedAccuracy` on the 500 validation signals (weights sliced from the supernet, batch
   norm recalibrated on 500 training signals, no training): deterministic, so it is memoised per architecture.
   The picks' accuracy on the 1,000 test signals is reported beside.
3. Latency: a lookup table of this CPU's layer timings (`nas.hardware.build_table(OFALayers)`, batch 1, one
   thread, min statistic), committed as results/constrained_ofa_lut.jsonl so the bound and every figure replay
   on any machine. The bound is the 25th percentile of the table latency of 2,000 uniform draws (`space.sample`),
   so three quarters of the space is infeasible and the bound binds the best architectures.
4. Searches through `nas.search` (simulated clock, one worker, every strategy's defaults): `evolution` for 5,000
   queries (its best at 1,000 is the same run's), `predictor-search` and `random` for 1,000, seeds 0-9.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/constrained_ofa.py --jobs 2      # everything (resumes)
    .venv/bin/python experiments/constrained_ofa.py --report                         # tables from the recorded runs
    .venv/bin/python experiments/constrained_ofa.py --report --rescore 10000         # + the picks on fresh signals
    .venv/bin/python experiments/constrained_ofa.py --quick                          # smoke run (tests)

Runs are kept in results/constrained_ofa_runs.json as they finish; the report goes to results/constrained_ofa.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas import jsonio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import git_commit, protocol_report, protocol_table  # noqa: E402  (experiments/ is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
WORK = ROOT / "runs" / "constrained_ofa"
LUT = RESULTS / "constrained_ofa_lut.jsonl"
BUDGETS = {"evolution": 5000, "predictor-search": 1000, "random": 1000}
CHECKPOINTS = (100, 300, 1000, 5000)
SEEDS = tuple(range(10))
BOUND_QUANTILE = 25.0
SUPERNET_EPOCHS = 40


def space_and_data(quick: bool) -> tuple[Any, dict[str, Any]]:
    from nas.datasets import mnist1d_splits
    from nas.spaces.ofa import OFASpace

    data = mnist1d_splits(seed=0)
    if quick:
        data = {k: (x[:400], y[:400]) for k, (x, y) in data.items()}
    return OFASpace(), data


def trained_supernet(space: Any, data: Mapping[str, Any], epochs: int, path: Path) -> Any:
    """The sandwich-trained supernet, trained once and cached at `path`."""
    from nas.spaces.training import SandwichRule

    torch.manual_seed(0)
    net = space.supernet()
    if path.exists():
        net.load_state_dict(torch.load(path))
        return net
    x, y = data["train"]
    t0 = time.perf_counter()
    SandwichRule(epochs=epochs, n_random=2, lr=3e-3, seed=0).fit(net, x, y)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    jsonio.write_bytes(path, buffer.getvalue())  # a temporary sibling renamed over it: never a torn file
    print(f"supernet: {epochs} sandwich epochs in {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
    return net


def latency_model(space: Any, lut: Path) -> Any:
    """Table latency (ms) of a subnet: the committed lookup table, built here if it is missing."""
    from nas.hardware import CostModel, build_table
    from nas.hardware.ofa_layers import OFALayers

    table = build_table(OFALayers(space), lut, device="cpu", batch_size=1, threads=1)
    return CostModel(space, device="cpu", latency=table, batch_size=1, threads=1)


def latency_bound(space: Any, cost: Any, n: int = 2000) -> float:
    rng = np.random.default_rng(12345)
    lat = [cost(space.sample(rng))["latency_ms"] for _ in range(n)]
    return float(np.percentile(lat, BOUND_QUANTILE))


class Setting:
    """What a worker process needs: the space, the supernet's evaluators, the cost model and the bound."""

    def __init__(self, quick: bool, work: Path = WORK, valid_signals: int = 0) -> None:
        from nas.datasets import mnist1d_splits
        from nas.spaces.training import InheritedAccuracy

        torch.set_num_threads(1)
        logging.getLogger("nas").setLevel(logging.ERROR)
        self.quick, self.work, self.valid_signals = quick, work, valid_signals
        self.space, data = space_and_data(quick)
        work = work / ("quick" if quick else "full")
        net = trained_supernet(self.space, data, 1 if quick else SUPERNET_EPOCHS, work / "supernet.pt")
        self.calib_x = data["train"][0][:500]
        valid = mnist1d_splits(seed=0, extra_valid=valid_signals)["extra_valid"] if valid_signals else data["valid"]
        self.valid = InheritedAccuracy(net, *valid, calib_x=self.calib_x, metric="valid_acc")
        self.test = InheritedAccuracy(net, *data["test"], calib_x=self.calib_x, metric="test_acc")
        self.cost = latency_model(self.space, work / "lut.jsonl" if quick else LUT)
        self.bound = latency_bound(self.space, self.cost, 200 if quick else 2000)
        self.memo: dict[str, float] = {}

    def latency(self, arch: Any) -> dict[str, float]:
        return {"latency_ms": float(self.cost(arch)["latency_ms"])}

    def accuracy(self, arch: Any) -> dict[str, float]:
        key = self.space.validate(arch).id
        if key not in self.memo:
            self.memo[key] = float(self.valid(arch)["valid_acc"])
        return {"valid_acc": self.memo[key]}


_SETTING: Setting | None = None


def setting(quick: bool, work: Path = WORK, valid_signals: int = 0) -> Setting:
    global _SETTING  # one per worker process: the supernet and the table are loaded once
    if _SETTING is None or (_SETTING.quick, _SETTING.work, _SETTING.valid_signals) != (quick, work, valid_signals):
        _SETTING = Setting(quick, work, valid_signals)
    return _SETTING


def run_task(task: tuple[str, int, int, bool, Path, dict[str, Any], int]) -> tuple[str, dict[str, Any]]:
    """One search -> its best-feasible curve over queries, the pick and its test accuracy. The task's last items are
    `predictor-search`'s options (`--options`; the other strategies keep their defaults) and `--valid-signals`."""
    import nas

    method, seed, budget, quick, work, options, valid_signals = task
    s = setting(quick, work, valid_signals)
    t0 = time.perf_counter()
    r = nas.search(s.space, [nas.cheap(s.latency), s.accuracy], {"valid_acc": "max"},
                   constraints=[f"latency_ms <= {s.bound!r}"], strategy=method, budget=budget, seed=seed,
                   executor=nas.SimulatedClockExecutor(workers=1),
                   strategy_options=options if method == "predictor-search" else None)
    queries = [t for t in r.trials if t.status == "ok"]
    curve, best, pick = [], -np.inf, None
    for t in queries:
        if t.metrics["valid_acc"] > best:
            best, pick = t.metrics["valid_acc"], t
        curve.append(float(best))
    test = s.test(pick.architecture)["test_acc"] if pick is not None else None
    rec = {"curve": curve, "queries": len(queries), "rejected_by_bound": sum(t.status == "infeasible" for t in r.trials),
           "pick": pick.architecture.to_dict() if pick is not None else None,
           "pick_latency_ms": pick.metrics["latency_ms"] if pick is not None else None, "pick_test_acc": test,
           "seconds": time.perf_counter() - t0, "bound_ms": s.bound}
    return f"{method}|{seed}", rec


def rescore(runs: dict[str, Any], quick: bool, work: Path, n: int, valid_signals: int = 0) -> None:
    """Each recorded pick's inherited accuracy on `n` fresh MNIST-1D signals (`extra_test`), in place: whether a
    validation lead of a few of 500 signals is real accuracy."""
    from nas.datasets import mnist1d_splits
    from nas.spaces.training import InheritedAccuracy

    s = setting(quick, work, valid_signals)
    xe, ye = mnist1d_splits(seed=0, extra_test=n)["extra_test"]
    extra = InheritedAccuracy(s.valid.supernet, xe, ye, calib_x=s.calib_x, metric="extra_acc")
    for rec in runs.values():
        if rec["pick"] is not None and rec.get("pick_extra_n") != n:
            rec["pick_extra_acc"], rec["pick_extra_n"] = float(extra(rec["pick"])["extra_acc"]), n


def at(curve: Sequence[float], n: int) -> float:
    return float(curve[min(n, len(curve)) - 1])


def report(runs: Mapping[str, Any], seeds: Sequence[int], budgets: Mapping[str, int] = BUDGETS,
           checkpoints: Sequence[int] = CHECKPOINTS) -> dict[str, Any]:
    """Mean best feasible valid_acc per method at each checkpoint; the target; evaluations to reach it."""
    from scipy import stats

    methods = [m for m in budgets if all(f"{m}|{s}" in runs for s in seeds)]
    evo, short = budgets["evolution"], min(budgets.values())
    out: dict[str, Any] = {"methods": {}, "seeds": list(seeds), "checkpoints": list(checkpoints)}

    def summary(values: Sequence[float]) -> dict[str, float]:
        v = np.asarray(values, dtype=float)
        half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
        return {"mean": float(v.mean()), "ci95_low": float(v.mean() - half), "ci95_high": float(v.mean() + half)}

    for m in methods:
        recs = [runs[f"{m}|{s}"] for s in seeds]
        out["methods"][m] = {
            **{f"@{c}": summary([at(r["curve"], c) for r in recs]) for c in checkpoints if c <= budgets[m]},
            "pick_test_acc": summary([r["pick_test_acc"] for r in recs]),
            **({"pick_extra_acc": summary([r["pick_extra_acc"] for r in recs]), "pick_extra_n": recs[0]["pick_extra_n"]}
               if all("pick_extra_acc" in r for r in recs) else {}),
            "seconds_per_run": float(np.mean([r["seconds"] for r in recs])),
            "rejected_by_bound_per_run": float(np.mean([r["rejected_by_bound"] for r in recs]))}
    if "evolution" in methods:
        target = float(np.mean([at(runs[f"evolution|{s}"]["curve"], evo) for s in seeds]))
        out["target"] = {"rule": f"plain evolution's mean best feasible valid_acc at {evo} queries", "value": target}
        for m in methods:
            mean_curve = np.mean([[at(runs[f"{m}|{s}"]["curve"], n) for n in range(1, budgets[m] + 1)] for s in seeds],
                                 axis=0)
            hit = np.flatnonzero(mean_curve >= target - 1e-12)
            out["methods"][m]["queries_to_target_mean_curve"] = int(hit[0]) + 1 if len(hit) else None
            out["methods"][m]["queries_to_target_per_seed"] = [
                next((i + 1 for i, v in enumerate(runs[f"{m}|{s}"]["curve"]) if v >= target - 1e-12), None)
                for s in seeds]
        if "predictor-search" in methods:
            ps = [at(runs[f"predictor-search|{s}"]["curve"], short) for s in seeds]
            ev = [at(runs[f"evolution|{s}"]["curve"], evo) for s in seeds]
            d = np.array(ps) - np.array(ev)
            if all("pick_extra_acc" in runs[f"{m}|{s}"] for m in ("predictor-search", "evolution") for s in seeds):
                e = np.array([runs[f"predictor-search|{s}"]["pick_extra_acc"] - runs[f"evolution|{s}"]["pick_extra_acc"]
                              for s in seeds])
                out["picks_on_fresh_signals_predictor_search_minus_evolution"] = {
                    **summary(e), "wins": int((e > 0).sum()), "ties": int((e == 0).sum()), "losses": int((e < 0).sum())}
            out["predictor_search_short_minus_evolution_long"] = {"budgets": [short, evo],**summary(d), "wins": int((d > 0).sum()),
                                                                 "ties": int((d == 0).sum()), "losses": int((d < 0).sum())}
    if "random" in methods:
        rep = protocol_report({m: [at(runs[f"{m}|{s}"]["curve"], short) for s in seeds] for m in methods},
                              direction="max", baseline="random", label=f"best feasible valid_acc @{short}",
                              budgets={m: float(short) for m in methods})
        out[f"protocol@{short}"] = {**rep.to_dict(), "table": protocol_table(rep)}
    return out


def print_report(rep: Mapping[str, Any]) -> None:
    print(f"\nbest feasible inherited valid_acc, mean [95 % CI] over {len(rep['seeds'])} seeds")
    checkpoints = rep["checkpoints"]
    print(f"{'method':<18}" + "".join(f"{'@' + str(c):>26}" for c in checkpoints) + f"{'pick test_acc':>26}")
    for m, e in rep["methods"].items():
        cells = [f"{e[f'@{c}']['mean']:.4f} [{e[f'@{c}']['ci95_low']:.4f}, {e[f'@{c}']['ci95_high']:.4f}]"
                 if f"@{c}" in e else "" for c in checkpoints]
        t = e["pick_test_acc"]
        print(f"{m:<18}" + "".join(f"{x:>26}" for x in cells) + f"{t['mean']:>17.4f} [{t['ci95_low']:.3f}, {t['ci95_high']:.3f}]")
    if "target" in rep:
        print(f"target ({rep['target']['rule']}): {rep['target']['value']:.4f}")
        for m, e in rep["methods"].items():
            print(f"  {m}: mean curve reaches it after {e['queries_to_target_mean_curve']} queries; per seed "
                  f"{e['queries_to_target_per_seed']}")
    if "predictor_search_short_minus_evolution_long" in rep:
        d = rep["predictor_search_short_minus_evolution_long"]
        print(f"predictor-search@{d['budgets'][0]} - evolution@{d['budgets'][1]}, paired: {d['mean']:+.4f} "
              f"[{d['ci95_low']:+.4f}, "
              f"{d['ci95_high']:+.4f}] ({d['wins']}/{d['ties']}/{d['losses']})")
    if "picks_on_fresh_signals_predictor_search_minus_evolution" in rep:
        d = rep["picks_on_fresh_signals_predictor_search_minus_evolution"]
        n = next(iter(rep["methods"].values())).get("pick_extra_n")
        print("the picks on " + f"{n:,} fresh signals: " + ", ".join(
            f"{m} {e['pick_extra_acc']['mean']:.4f}" for m, e in rep["methods"].items() if "pick_extra_acc" in e)
              + f"; predictor-search - evolution, paired: {d['mean']:+.4f} [{d['ci95_low']:+.4f}, {d['ci95_high']:+.4f}]"
              f" ({d['wins']}/{d['ties']}/{d['losses']})")
    for key in (k for k in rep if k.startswith("protocol@")):
        print(rep[key]["table"])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=len(SEEDS))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--report", action="store_true", help="only the tables from the recorded runs")
    ap.add_argument("--quick", action="store_true", help="smoke run: 400 signals, 1 supernet epoch, 2 seeds, "
                                                          "budgets 60 / 30")
    ap.add_argument("--runs", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=WORK, help="cache folder (supernet; the quick run's table)")
    ap.add_argument("--out", type=Path, default=None, help="report JSON (default results/constrained_ofa.json)")
    ap.add_argument("--options", type=json.loads, default={},
                    help='predictor-search options as JSON, e.g. \'{"restart_after": 100}\' (use with its own --runs)')
    ap.add_argument("--valid-signals", type=int, default=0, metavar="N",
                    help="select on N fresh MNIST-1D signals (generator seed 44) instead of the 500 held-out training "
                         "signals (use with its own --runs)")
    ap.add_argument("--rescore", type=int, default=0, metavar="N",
                    help="also score every recorded pick on N fresh signals (is a validation lead real accuracy?)")
    args = ap.parse_args(argv)
    started = time.time()
    seeds = list(range(2 if args.quick else args.seeds))
    budgets = {m: (60 if m == "evolution" else 30) for m in BUDGETS} if args.quick else dict(BUDGETS)
    runs_file = args.runs or RESULTS / ("constrained_ofa_quick_runs.json" if args.quick else "constrained_ofa_runs.json")
    runs: dict[str, Any] = json.loads(runs_file.read_text()) if runs_file.exists() else {}
    if not args.report:
        setting(args.quick, args.work, args.valid_signals)  # the supernet and the table, built once before any worker
        tasks = [(m, s, budgets[m], args.quick, args.work, args.options, args.valid_signals) for m in BUDGETS
                 for s in seeds if f"{m}|{s}" not in runs]
        tasks.sort(key=lambda t: -t[2])  # the long runs first
        with ProcessPoolExecutor(args.jobs) if args.jobs > 1 else contextlib.nullcontext() as pool:
            for key, rec in (pool.map(run_task, tasks) if pool is not None else map(run_task, tasks)):
                runs[key] = rec
                jsonio.write_json(runs_file, runs, indent=None)  # atomic: a crash keeps the finished runs
                print(f"  {key}: best {rec['curve'][-1] if rec['curve'] else float('nan'):.4f} after "
                      f"{rec['queries']} queries, {rec['rejected_by_bound']} rejected by the bound "
                      f"({rec['seconds']:.0f} s)", flush=True)
    if args.rescore:
        rescore(runs, args.quick, args.work, args.rescore, args.valid_signals)
        jsonio.write_json(runs_file, runs, indent=None)
    rep = report(runs, seeds, budgets, (10, 30, 60) if args.quick else CHECKPOINTS)
    rep["meta"] = {"command": " ".join(["experiments/constrained_ofa.py", *(sys.argv[1:] if argv is None else argv)]),
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_commit": git_commit(),
                   "python": platform.python_version(), "cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
                   "budgets": budgets, "bound_ms": next(iter(runs.values()))["bound_ms"] if runs else None,
                   "bound_rule": f"{BOUND_QUANTILE:g}th percentile of the table latency of uniform draws",
                   "supernet_epochs": 1 if args.quick else SUPERNET_EPOCHS, "wall_seconds": time.time() - started,
                   "settings": "every strategy's defaults",
                   "predictor_search_options": args.options,
                   "validation": (f"{args.valid_signals} fresh signals (generator seed 44)" if args.valid_signals
                                  else "500 held-out training signals")}
    print_report(rep)
    out = args.out or RESULTS / ("constrained_ofa_quick.json" if args.quick else "constrained_ofa.json")
    jsonio.write_json(out, rep)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
