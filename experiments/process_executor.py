"""The local process executor against in-process evaluation, side by side in one run.

1. Throughput: `--trials` evaluations of a CPU-bound `evaluate` that burns `--work` seconds of CPU time
   (a stand-in for a small training run), in-process vs `executor={"name": "processes", "workers": N}`
   for N = 1 and 2. On 2 cores the ideal speed-up with 2 workers is 2x.
2. Overhead: `--noop` evaluations of a no-op `evaluate`; wall time per trial for each executor, and the
   process executor's extra per trial over in-process (target <= 5 ms).

Searches are random search over a small plain space, no workdir (the journal's fsync is not measured here),
fork start method, torch pinned to 1 thread in the workers. Each configuration runs `--repeats` times,
interleaved, and the fastest is reported (other jobs on a shared machine only ever slow a run down).

    .venv/bin/python experiments/process_executor.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import nas
from nas.spaces import Choice, Integer, Space
from reporting import git_commit, write_report  # experiments/reporting.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
SPACE = Space(a=Integer(0, 999), b=Choice(list(range(50))), c=Choice(["x", "y", "z"]))


def burn(seconds: float) -> Any:
    """An evaluate that spends `seconds` of its process's CPU time (CPU-bound, like training)."""

    def evaluate(arch: Any) -> dict[str, float]:
        t0 = time.process_time()
        x = 0
        while time.process_time() - t0 < seconds:
            x += 1
        return {"score": float(arch["a"] + arch["b"])}

    return evaluate


def noop(arch: Any) -> dict[str, float]:
    return {"score": float(arch["a"])}


EXECUTORS: dict[str, Any] = {"in-process": "local", "processes x1": {"name": "processes", "workers": 1},
                             "processes x2": {"name": "processes", "workers": 2}}


def timed(evaluate: Any, executor: Any, trials: int, seed: int) -> float:
    t0 = time.perf_counter()
    result = nas.search(SPACE, evaluate, {"score": "max"}, strategy="random", budget=trials, seed=seed,
                        executor=executor)
    seconds = time.perf_counter() - t0
    assert result.used == trials and all(t.status == "ok" for t in result.trials)
    return seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=16, help="CPU-bound evaluations per run (default 16)")
    ap.add_argument("--work", type=float, default=0.5, help="CPU seconds per CPU-bound evaluation (default 0.5)")
    ap.add_argument("--noop", type=int, default=400, help="no-op evaluations per run (default 400)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "process_executor.json")
    args = ap.parse_args(argv)
    t0 = time.time()
    work: dict[str, list[float]] = {name: [] for name in EXECUTORS}
    idle: dict[str, list[float]] = {name: [] for name in EXECUTORS}
    for repeat in range(args.repeats):  # interleaved: a slow phase of the machine hits every executor alike
        for name, executor in EXECUTORS.items():
            work[name].append(timed(burn(args.work), executor, args.trials, repeat))
            idle[name].append(timed(noop, executor, args.noop, repeat))
    best = {name: min(v) for name, v in work.items()}
    per_trial = {name: min(v) / args.noop * 1000 for name, v in idle.items()}
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; fastest of {args.repeats} interleaved runs")
    print(f"{'executor':<15}{f'{args.trials} x {args.work:g} s CPU (s)':>22}{'speed-up':>10}"
          f"{f'{args.noop} no-ops: ms/trial':>24}{'extra vs in-process':>22}")
    for name in EXECUTORS:
        print(f"{name:<15}{best[name]:>22.2f}{best['in-process'] / best[name]:>9.2f}x{per_trial[name]:>24.3f}"
              f"{per_trial[name] - per_trial['in-process']:>19.3f} ms")
    report = {"script": "experiments/process_executor.py", "command": " ".join(["python", *sys.argv]),
              "git_commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
              "load_at_end": os.getloadavg()[0], "settings": vars(args) | {"out": str(args.out)},
              "cpu_bound_seconds": work, "noop_seconds": idle, "fastest_cpu_bound_s": best,
              "speedup": {n: best["in-process"] / b for n, b in best.items()}, "noop_ms_per_trial": per_trial,
              "overhead_ms_per_trial": {n: v - per_trial["in-process"] for n, v in per_trial.items()},
              "overhead_target_ms": 5.0, "seconds": round(time.time() - t0, 1)}
    write_report(args.out, report, t0)
    return report


if __name__ == "__main__":
    main()
