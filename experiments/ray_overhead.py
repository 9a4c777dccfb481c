"""Overhead of the Ray executors: per-trial cost on a trivial objective, and throughput with 1 vs 2 workers.

One local Ray instance (2 CPUs, no dashboard, 200 MB object store) serves every measurement, side by side:

1. Per-trial cost on a no-op objective (returns at once), wall time of the whole search / trials:
   in-process `LocalExecutor` (reference), our `RayExecutor` actor pool (2 workers; batch 1 and batch 8),
   our `RayTuneExecutor` (each evaluation a Tune trial, 2 concurrent) and plain Ray Tune + `OptunaSearch`
   (2 concurrent) on the same space and objective.
2. Throughput on a sleep objective: trials/s of `RayExecutor` with 1 and 2 workers (`--sleep` 0.2 s per
   trial; ideal speed-up 2x), and of `RayTuneExecutor` with 1 and 2 workers on training-like trials
   (`--tune-sleep` 1 s: Tune's driver spends ~0.1-0.2 s per trial, so shorter trials do not scale).

Ray start-up (a few seconds) is excluded: it happens once before the clock starts; actor/trial-process
start-up inside each search is included, as a user would pay it.

    .venv/bin/python experiments/ray_overhead.py            # ~4 minutes on 2 shared cores
    .venv/bin/python experiments/ray_overhead.py --quick    # fewer trials, ~1.5 minutes
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _k, _v in {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_IMPORT_WARNING": "1"}.items():
    os.environ.setdefault(_k, _v)

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

import nas  # noqa: E402
from reporting import git_commit  # noqa: E402  experiments/reporting.py (the script folder is on sys.path)
from nas.spaces import Choice, Space  # noqa: E402

SPACE = Space(a=Choice(list(range(10))), b=Choice(list(range(10))), c=Choice(list(range(10))))
OBJECTIVES = {"score": "max"}


def noop(arch: Any) -> dict[str, float]:
    return {"score": float(arch["a"] + arch["b"] + arch["c"])}


def make_sleeper(seconds: float) -> Callable[[Any], dict[str, float]]:
    def sleeper(arch: Any) -> dict[str, float]:
        time.sleep(seconds)
        return noop(arch)

    return sleeper


def timed_search(evaluate: Callable[[Any], dict[str, float]], budget: int, executor: Any) -> dict[str, Any]:
    settled()
    t0 = time.perf_counter()
    result = nas.search(SPACE, evaluate, OBJECTIVES, strategy="random", budget=budget, seed=0, executor=executor)
    wall = time.perf_counter() - t0
    ok = sum(t.status == "ok" for t in result.trials)
    return {"trials": len(result.trials), "ok": ok, "wall_s": wall, "per_trial_ms": 1000 * wall / len(result.trials),
            "trials_per_s": len(result.trials) / wall, "workers": len({t.worker for t in result.trials}),
            **steady([t.finished for t in result.trials])}


def steady(finished: list[float]) -> dict[str, float]:
    """Steady-state rate from completion times: (n - 1) / (last - first completion); start-up excluded."""
    span = max(finished) - min(finished)
    rate = (len(finished) - 1) / span if span > 0 else float("inf")
    return {"steady_trials_per_s": rate, "steady_ms_per_trial": 1000 / rate}


def settled() -> None:
    """Start each measurement with both CPUs free (Ray frees a finished search's actors asynchronously)."""
    import ray

    from nas.ray.tune import settle

    if ray.is_initialized():
        waited = settle(2.0, timeout_s=60.0)
        if waited > 0.5:
            print(f"(waited {waited:.1f} s for the previous run's actors to free their CPUs)")


def tune_optuna(budget: int, concurrent: int) -> dict[str, Any]:
    """Ray Tune + OptunaSearch on the same space and no-op objective."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    def trainable(config: dict[str, Any]) -> dict[str, float]:
        return noop(config)

    space = {k: tune.choice(list(range(10))) for k in ("a", "b", "c")}
    settled()
    t0 = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}), param_space=space,
        tune_config=tune.TuneConfig(search_alg=OptunaSearch(metric="score", mode="max", seed=0), num_samples=budget,
                                    max_concurrent_trials=concurrent),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="nas-overhead-"), verbose=0))
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    ok = sum(r.error is None for r in grid)
    return {"trials": len(grid), "ok": ok, "wall_s": wall, "per_trial_ms": 1000 * wall / len(grid),
            "trials_per_s": len(grid) / wall, "workers": concurrent,
            **steady([float(r.metrics["timestamp"]) for r in grid if r.metrics])}  # 1 s resolution


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds per trial of the sleep objective (actors)")
    parser.add_argument("--tune-sleep", type=float, default=1.0,
                        help="seconds per trial of the sleep objective for RayTuneExecutor (training-like trials)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default experiments/results/ray_overhead.json; ray_overhead_quick.json "
                             "with --quick)")
    args = parser.parse_args(argv)
    args.out = args.out or ROOT / "experiments" / "results" / (
        "ray_overhead_quick.json" if args.quick else "ray_overhead.json")
    torch.set_num_threads(1)
    n_pool, n_tune, n_sleep, n_sleep_tune = (100, 16, 16, 8) if args.quick else (400, 30, 40, 16)

    import ray

    from nas.ray.executor import RayExecutor
    from nas.ray.tune import RayTuneExecutor

    load_before = os.getloadavg()
    t_start = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20,
             log_to_driver=False)
    startup = time.perf_counter() - t_start
    tune_dir = tempfile.mkdtemp(prefix="nas-overhead-tune-")
    rows: dict[str, dict[str, Any]] = {}
    rows["in-process LocalExecutor"] = timed_search(noop, n_pool, "local")
    rows["RayExecutor, 2 actors, batch 1"] = timed_search(noop, n_pool, RayExecutor(workers=2))
    rows["RayExecutor, 2 actors, batch 8"] = timed_search(noop, n_pool, RayExecutor(workers=2, batch_size=8))
    rows["RayTuneExecutor, 2 concurrent trials"] = timed_search(noop, n_tune, RayTuneExecutor(workers=2, storage_path=tune_dir))
    rows["Ray Tune + OptunaSearch, 2 concurrent"] = tune_optuna(n_tune, 2)
    sleeper = make_sleeper(args.sleep)
    throughput: dict[str, dict[str, Any]] = {}
    throughput["RayExecutor, 1 worker"] = timed_search(sleeper, n_sleep, RayExecutor(workers=1))
    throughput["RayExecutor, 2 workers"] = timed_search(sleeper, n_sleep, RayExecutor(workers=2))
    long_sleeper = make_sleeper(args.tune_sleep)
    throughput["RayTuneExecutor, 1 worker"] = timed_search(long_sleeper, n_sleep_tune, RayTuneExecutor(workers=1, storage_path=tune_dir))
    throughput["RayTuneExecutor, 2 workers"] = timed_search(long_sleeper, n_sleep_tune, RayTuneExecutor(workers=2, storage_path=tune_dir))
    ray.shutdown()

    print(f"Ray start-up (excluded below): {startup:.1f} s; load average before {load_before[0]:.1f}")
    print("(wall: the whole search incl. worker start-up; steady: (n-1) / (last - first completion))")
    print("\n1. per-trial cost, no-op objective")
    print(f"{'executor':40s} {'trials':>6s} {'wall s':>8s} {'ms/trial':>9s} {'steady ms/trial':>16s}")
    for name, r in rows.items():
        print(f"{name:40s} {r['trials']:6d} {r['wall_s']:8.2f} {r['per_trial_ms']:9.1f} {r['steady_ms_per_trial']:16.1f}")
    ours, theirs = rows["RayExecutor, 2 actors, batch 1"], rows["Ray Tune + OptunaSearch, 2 concurrent"]
    ratio = {"wall": theirs["per_trial_ms"] / ours["per_trial_ms"],
             "steady": theirs["steady_ms_per_trial"] / ours["steady_ms_per_trial"]}
    print(f"Tune + Optuna costs {ratio['wall']:.0f}x (wall) / {ratio['steady']:.0f}x (steady) RayExecutor's per trial")
    print(f"\n2. throughput, objective sleeps {args.sleep} s (RayExecutor) / {args.tune_sleep} s (RayTuneExecutor)")
    print(f"{'executor':40s} {'trials':>6s} {'wall s':>8s} {'trials/s':>9s} {'steady trials/s':>16s} {'ideal':>6s}")
    for name, r in throughput.items():
        workers = 2 if "2 worker" in name else 1
        per = args.tune_sleep if name.startswith("RayTune") else args.sleep
        print(f"{name:40s} {r['trials']:6d} {r['wall_s']:8.2f} {r['trials_per_s']:9.2f} "
              f"{r['steady_trials_per_s']:16.2f} {workers / per:6.2f}")
    speedups = {f"{kind} {how}": throughput[f"{kind}, 2 workers"][key] / throughput[f"{kind}, 1 worker"][key]
                for kind in ("RayExecutor", "RayTuneExecutor")
                for how, key in (("wall", "trials_per_s"), ("steady", "steady_trials_per_s"))}
    for kind, s in speedups.items():
        print(f"{kind}: 2 workers give {s:.2f}x the trials/s of 1 (ideal 2x)")

    doc = {
        "script": "experiments/ray_overhead.py",
        "command": "python experiments/ray_overhead.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "versions": {"ray": ray.__version__, "torch": torch.__version__},
        "settings": {"ray": "ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200MB), local",
                     "space": "3 x Choice(range(10))", "strategy": "random, seed 0", "sleep_s": args.sleep, "tune_sleep_s": args.tune_sleep,
                     "ray_startup_s_excluded": startup},
        "per_trial_noop": rows,
        "throughput_sleep": throughput,
        "speedup_2_vs_1_workers": speedups,
        "tune_optuna_over_ray_executor_per_trial": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
