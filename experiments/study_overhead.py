"""What ask/tell through `nas.Study` costs per trial, against `nas.search` on the same strategy, side by side.

For each strategy and journal size N:
1. `nas.search`, a no-op `evaluate`, N trials in a workdir: seconds per trial (the baseline);
2. a `nas.Study` driven in-process to N trials (ask, tell a no-op result): seconds per trial;
3. reopening that study of N trials (restore the snapshot, read the journal) and closing it (snapshot): seconds;
4. `nas ask DIR` then `nas tell DIR ID --metric ...`, each a new process, on the study of N trials: seconds per
   trial through the shell (process start, imports, reopen, close), what a cluster's job script pays;
5. for Optuna's samplers, step 3 with the strategy state written as before checkpoints (the ask/tell log, which a
   reopen replays through the sampler): what the checkpoint saves.

A plain space of three decisions; torch and BLAS pinned to one thread; each timing the fastest of `--repeats`
interleaved runs (other jobs on a shared machine only slow a run down).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/study_overhead.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nas
from nas.spaces import Choice, Integer, Space
from nas.strategies.optuna_sampler import OPTUNA_STRATEGIES, OptunaStrategy
from reporting import git_commit, write_report  # experiments/reporting.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
SPACE = Space(a=Integer(0, 999), b=Choice(list(range(50))), c=Choice(["x", "y", "z"]))
OBJECTIVES = {"score": "max"}
NAS = str(Path(sys.executable).with_name("nas"))


def score(arch: Any) -> dict[str, float]:
    return {"score": float(arch["a"] + arch["b"]) + (arch["c"] == "y")}


def searched(strategy: str, n: int, folder: Path) -> float:
    t0 = time.perf_counter()
    nas.search(SPACE, score, OBJECTIVES, strategy=strategy, budget=n, seed=0, workdir=folder)
    return (time.perf_counter() - t0) / n


def studied(strategy: str, n: int, folder: Path) -> float:
    t0 = time.perf_counter()
    with nas.Study(SPACE, OBJECTIVES, strategy=strategy, budget=n, seed=0, workdir=folder) as study:
        while (arch := study.ask()) is not None:
            study.tell(arch, score(arch))
    return (time.perf_counter() - t0) / n


def reopened(strategy: str, n: int, folder: Path) -> float:
    t0 = time.perf_counter()
    nas.Study(SPACE, OBJECTIVES, strategy=strategy, budget=n + 1, seed=0, workdir=folder).close()
    return time.perf_counter() - t0


def replayed(strategy: str, n: int, folder: Path) -> float | None:
    """Reopening a study whose Optuna strategy state is its ask/tell log (as written before checkpoints)."""
    if strategy not in {s.name for s in OPTUNA_STRATEGIES}:
        return None
    OptunaStrategy.checkpoints = False
    try:
        studied(strategy, n, folder)
        return reopened(strategy, n, folder)
    finally:
        OptunaStrategy.checkpoints = True


def shell(strategy: str, n: int, folder: Path) -> float:
    """One more trial through `nas ask` and `nas tell` (the budget grows by one)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    out = subprocess.run([NAS, "ask", str(folder), "--budget", str(n + 1)], capture_output=True, text=True, env=env,
                         check=True)
    asked = json.loads(out.stdout)
    subprocess.run([NAS, "tell", str(folder), asked["id"], "--metrics", json.dumps(score(asked["arch"]))],
                   capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strategies", nargs="+", default=["random", "evolution", "nsga2", "tpe"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[100, 1000])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "study_overhead.json")
    args = ap.parse_args(argv)
    t0 = time.time()
    rows: dict[str, dict[str, list[float]]] = {}
    for repeat in range(args.repeats):
        for strategy in args.strategies:
            for n in args.sizes:
                key = f"{strategy}|{n}"
                got = rows.setdefault(key, {"search": [], "study": [], "reopen": [], "shell": [], "replay": []})
                with tempfile.TemporaryDirectory() as tmp:
                    got["search"].append(searched(strategy, n, Path(tmp) / "search"))
                    got["study"].append(studied(strategy, n, Path(tmp) / "study"))
                    got["reopen"].append(reopened(strategy, n, Path(tmp) / "study"))
                    got["shell"].append(shell(strategy, n, Path(tmp) / "study"))
                    if (t := replayed(strategy, n, Path(tmp) / "replay")) is not None:
                        got["replay"].append(t)
    best = {key: {what: min(v) if v else None for what, v in got.items()} for key, got in rows.items()}
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; fastest of {args.repeats} interleaved runs")
    print(f"{'strategy':<11}{'N':>6}{'search ms/trial':>17}{'study ms/trial':>16}{'reopen + close s':>18}"
          f"{'nas ask + tell s':>18}{'reopen by replay s':>20}")
    for key, b in best.items():
        strategy, n = key.split("|")
        print(f"{strategy:<11}{n:>6}{b['search'] * 1000:>17.2f}{b['study'] * 1000:>16.2f}{b['reopen']:>18.3f}"
              f"{b['shell']:>18.3f}{'-' if b['replay'] is None else format(b['replay'], '.3f'):>20}")
    report = {"script": "experiments/study_overhead.py", "command": " ".join(["python", *sys.argv]),
              "git_commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
              "load_at_end": os.getloadavg()[0], "settings": vars(args) | {"out": str(args.out)},
              "seconds_each": rows, "fastest": best, "seconds": round(time.time() - t0, 1)}
    write_report(args.out, report, t0)
    return report


if __name__ == "__main__":
    main()
