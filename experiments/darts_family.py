"""The DARTS family on CPU: darts, darts2, pc-darts and proxyless (with and without latency loss) on digits.

Each method searches a small NAS-Bench-201 supernet on scikit-learn's digits (900 train / 450 valid /
447 test, 1x8x8) for `--epochs` epochs on one thread; the derived cell is trained stand-alone for
`--retrain-epochs` and reported with its valid/test accuracy, parameters, FLOPs and lookup-table latency
(one table profiled at the start and shared by all runs). Random cells trained the same way give the
baseline.

    .venv/bin/python experiments/darts_family.py            # 10 seeds, about 10 min per seed on 1 idle thread
    .venv/bin/python experiments/darts_family.py --quick    # smoke test (2 seeds, tiny)

Each seed draws its own digits split and runs every method from that seed; `--random` random cells per seed
(their mean) are the random-sampling baseline of the evaluation protocol (experiments/reporting.py:
relative improvement over random, 95 % intervals, search cost). The JSON is written after every seed and a
rerun resumes from the finished seeds (same settings; `--fresh` starts over).

Writes experiments/results/darts_family.json (darts_family_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `experiments.reporting` when run as a script

from experiments.reporting import git_commit, protocol_report, protocol_table  # noqa: E402
from nas.hardware import adapter_for, lut_latency  # noqa: E402
from nas.spaces.cell import NasBench201Space  # noqa: E402
from nas.datasets import digits_splits  # noqa: E402
from nas.darts import DartsOptions, StandaloneTraining, search_darts  # noqa: E402
from nas.strategies.oneshot import PARAMETER_FREE, cell_ops  # noqa: E402
from nas.strategies.oneshot_latency import ensure_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def run_seed(seed: int, args: argparse.Namespace, space: NasBench201Space, table: object, tmp: Path) -> dict:
    """One seed: a digits split, every method searched from that seed, `--random` random cells trained the
    same way (their mean is the seed's random-sampling baseline)."""
    data = digits_splits(seed=seed)
    if args.quick:
        data = {k: (x[:256], y[:256]) for k, (x, y) in data.items()}
    latency_ms = lut_latency(table, adapter_for(space)).latency_ms
    base = DartsOptions(epochs=args.epochs, a_lr=args.a_lr, retrain_epochs=args.retrain_epochs, latency="lut")
    methods = {
        "darts": replace(base, method="darts"),
        "darts2": replace(base, method="darts2"),
        "pc-darts": replace(base, method="pc-darts"),
        "proxyless": replace(base, method="proxyless"),
        "proxyless λ=1": replace(base, method="proxyless", latency_weight=1.0),
    }
    rows: dict[str, dict] = {}
    for name, options in methods.items():
        t0 = time.perf_counter()
        result = search_darts(space, data, workdir=tmp / f"{seed}-{name.replace(' ', '_')}", seed=seed,
                              options=options, latency_table=table)
        trial = result.trials[0]
        seconds = time.perf_counter() - t0
        rows[name] = {"options": options.to_dict(), "derived": space.to_string(trial.arch), "ops": trial.extra["ops"],
                      "parameter_free": trial.extra["parameter_free"], "metrics": trial.metrics,
                      "search_seconds": round(seconds - trial.metrics["train_seconds"], 1)}
        print(f"  seed {seed} {name}: {rows[name]['search_seconds']:.0f} s, {rows[name]['derived']}, "
              f"test acc {trial.metrics['test_accuracy']:.3f}", flush=True)
    rng = np.random.default_rng(seed)
    for i in range(args.random):
        arch = space.sample(rng)
        m = StandaloneTraining(space, data, args.retrain_epochs, base.retrain_lr, base.batch_size, seed)(arch)
        ops = cell_ops(space, arch)
        rows[f"random #{i}"] = {"derived": space.to_string(arch), "ops": ops,
                                "parameter_free": sum(o in PARAMETER_FREE for o in ops) / len(ops),
                                "metrics": {**m, **space.count(arch), "latency_ms": latency_ms(arch)},
                                "search_seconds": None}
    return {"seed": seed, "data": {k: len(v[0]) for k, v in data.items()}, "rows": rows}


def protocol(per_seed: list[dict]) -> dict[str, dict]:
    """Test and validation accuracy of every method against random cells (mean per seed), Yang et al.'s protocol."""
    out = {}
    for metric in ("test_accuracy", "accuracy"):
        values: dict[str, list[float]] = {"random": []}
        costs: dict[str, list[float]] = {}
        for rec in per_seed:
            randoms = [r["metrics"][metric] for k, r in rec["rows"].items() if k.startswith("random")]
            if randoms:
                values["random"].append(statistics.mean(randoms))
            for k, r in rec["rows"].items():
                if not k.startswith("random"):
                    values.setdefault(k, []).append(r["metrics"][metric])
                    costs.setdefault(k, []).append(r["search_seconds"])
        out[metric] = protocol_report(values, direction="max", baseline="random", costs=costs,
                                      label=f"darts_family {metric}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--a-lr", type=float, default=1e-2)
    p.add_argument("--retrain-epochs", type=int, default=20)
    p.add_argument("--random", type=int, default=2, help="random cells per seed, trained as the baseline")
    p.add_argument("--seeds", type=int, default=10, help="seeds (each: its own digits split, every method)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="ignore the finished seeds in --out (default: resume)")
    p.add_argument("--quick", action="store_true", help="2 epochs, 1 retraining epoch, 256 samples per split, 2 seeds")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON output (default experiments/results/darts_family.json; darts_family_quick.json "
                        "with --quick)")
    args = p.parse_args()
    args.out = args.out or ROOT / "experiments" / "results" / (
        "darts_family_quick.json" if args.quick else "darts_family.json")
    torch.set_num_threads(1)
    if args.quick:
        args.epochs, args.retrain_epochs, args.random, args.seeds = 2, 1, 1, 2
    settings = {"epochs": args.epochs, "a_lr": args.a_lr, "retrain_epochs": args.retrain_epochs,
                "random": args.random, "quick": args.quick}
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    load_start, t_start = load(), time.perf_counter()
    previous = json.loads(args.out.read_text()) if args.out.exists() and not args.fresh else {}
    done = {r["seed"]: r for r in previous.get("per_seed", [])} if previous.get("settings") == settings else {}
    if done:
        print(f"resuming: seeds {sorted(done)} already in {args.out}", flush=True)
    space = NasBench201Space(channels=8, cells_per_stage=1, stages=3)
    tmp = tempfile.TemporaryDirectory(prefix="darts-family-")
    t0 = time.perf_counter()
    table = ensure_table(adapter_for(space), Path(tmp.name) / "lut.jsonl")
    table_seconds = time.perf_counter() - t0
    results = {
        "what": "DARTS-family searches on CPU (digits 8x8, NB201 cell) and the derived cells' stand-alone accuracy, "
                "against random cells trained the same way, one digits split per seed",
        "command": " ".join([".venv/bin/python", "experiments/darts_family.py", *sys.argv[1:]]),
        "git_commit": git_commit(), "settings": settings,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "data": {"dataset": "sklearn digits, 1x8x8, standardised; split drawn per seed"},
        "space": {"name": "NasBench201Space", "net": repr(space.net)},
        "latency_table": {"entries": len(table), "seconds": round(table_seconds, 1), "threads": 1, "batch_size": 1,
                          "device": table.device},
    }
    per_seed = [done[s] for s in seeds if s in done]
    for seed in seeds:
        if seed in done:
            continue
        per_seed.append(run_seed(seed, args, space, table, Path(tmp.name)))
        per_seed.sort(key=lambda r: r["seed"])
        reports = protocol(per_seed)
        results.update({"date": _dt.datetime.now().isoformat(timespec="seconds"),
                        "load_average": {"start": load_start, "end": load()},
                        "seconds": round(time.perf_counter() - t_start, 1) + previous.get("seconds", 0.0) * bool(done),
                        "seeds_done": [r["seed"] for r in per_seed], "per_seed": per_seed,
                        "protocol": {k: v.to_dict() for k, v in reports.items()},
                        "protocol_tables": {k: protocol_table(v) for k, v in reports.items()}})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")  # after every seed: a cut-off run resumes
    tmp.cleanup()
    reports = protocol(per_seed)
    print(f"\n{'seed':<5}{'method':<15}{'search s':>9}{'valid':>7}{'test':>7}{'params':>8}{'MFLOPs':>8}{'lat ms':>8}"
          f"{'p-free':>7}  derived cell")
    for rec in per_seed:
        for name, r in rec["rows"].items():
            m = r["metrics"]
            s = "-" if r["search_seconds"] is None else f"{r['search_seconds']:.0f}"
            print(f"{rec['seed']:<5}{name:<15}{s:>9}{m['accuracy']:>7.3f}{m['test_accuracy']:>7.3f}{m['params']:>8.0f}"
                  f"{m['flops'] / 1e6:>8.3f}{m['latency_ms']:>8.3f}{r['parameter_free']:>7.2f}  {r['derived']}")
    for metric, rep in reports.items():
        print(f"\n{metric} over {len(per_seed)} seeds, RI over random cells (%):\n{protocol_table(rep)}")
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
