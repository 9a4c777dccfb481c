"""Does a CPU-trained OFA/BigNAS supernet rank subnets like training them from scratch does? (MNIST-1D)

`--space resnet1d` asks the same of a user's own model: the 1-D ResNet of examples/user_model_resnet1d.py,
written with `nas.nn` (its supernet derived automatically), sandwich rule only, the subnets picked at evenly
spaced FLOPs quantiles of 400 random draws so that they span the FLOPs range (issue 18).

1. Train a weight-sharing supernet over `OFASpace()` on MNIST-1D's training split with BigNAS's sandwich
   rule and/or OFA's progressive shrinking (one thread, wall time and load average recorded).
2. Draw N distinct random subnets with `OFASpace.sample_subnet` (every decision uniform on its own, so
   each stage depth is equally likely; uniform sampling over architectures would give almost only the
   deepest ones), and measure their inherited test accuracy (`InheritedAccuracy`: weights sliced from the
   supernet, BN recalibrated on 1,000 training signals, no training).
3. Train each of the same N subnets from scratch with one fixed recipe (`PlainTraining`, same epochs),
   `--standalone-seeds` times with different seeds, and take its mean accuracy (one training run ranks
   subnets like another only up to a noise ceiling, reported as the seed-vs-seed tau).
4. Accuracies are measured on MNIST-1D's standard 1,000-signal test set and on `--extra-test` fresh
   signals from the same generator (10,000: less sampling noise). Report Kendall tau and Spearman rho of
   inherited vs stand-alone accuracy for both, side by side with two cheap rankers (FLOPs, parameters)
   and against each single seed, and write JSON to experiments/results/.

    .venv/bin/python experiments/ofa_kendall.py                       # both schedules, 24 subnets
    .venv/bin/python experiments/ofa_kendall.py --schedule sandwich   # BigNAS only
    .venv/bin/python experiments/ofa_kendall.py --quick               # smoke run (minutes)
    .venv/bin/python experiments/ofa_kendall.py --space resnet1d --subnets 20 --supernet-epochs 40
"""

from __future__ import annotations

import argparse
import importlib.util
import datetime as _dt
import json
import os
import platform
import sys
import time
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from nas.datasets import mnist1d_splits
from nas.spaces.ofa import OFASpace
from nas.spaces.training import (InheritedAccuracy, PlainTraining, ProgressiveShrinking, SandwichRule, TrainLog,
                                 accuracy, ofa_phases)

ROOT = Path(__file__).resolve().parents[1]
TAU_TARGET = 0.6
TIME_LIMIT_S = 15 * 60


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def jsonable(value: Any) -> Any:
    """JSON form of what schedules hold: frozensets as sorted lists, dataclasses (phases) as dicts."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if is_dataclass(value):
        return asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def rank_stats(proxy: list[float], truth: list[float]) -> dict[str, float]:
    tau = stats.kendalltau(proxy, truth)
    rho = stats.spearmanr(proxy, truth)
    return {"kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
            "spearman_rho": float(rho.statistic), "spearman_p": float(rho.pvalue)}


def schedules(args: argparse.Namespace) -> dict[str, Any]:
    s = args.supernet_epochs
    out: dict[str, Any] = {}
    if args.schedule in ("sandwich", "both"):
        out["sandwich"] = SandwichRule(epochs=s, n_random=2, lr=3e-3, seed=args.seed)
    if args.schedule in ("progressive", "both"):
        # epochs split 25/20/20/35 % over full, kernel, depth, width (the last phase has the most to learn)
        n = args.ps_epochs
        full, kernel, depth = (max(1, round(f * n)) for f in (0.25, 0.2, 0.2))
        out["progressive"] = ProgressiveShrinking(ofa_phases(full, kernel, depth, max(1, n - full - kernel - depth),
                                                             lr=3e-3), subnets_per_step=2, seed=args.seed)
    return out


def user_model_space() -> Any:
    """The `nas.nn` space of examples/user_model_resnet1d.py (a user's own model, loaded from its script)."""
    path = ROOT / "examples" / "user_model_resnet1d.py"
    spec = importlib.util.spec_from_file_location("user_model_resnet1d", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.ResNet1d.space()


def draw_subnets(space: Any, n: int, rng: np.random.Generator, span_flops: bool) -> list[Any]:
    """n distinct subnets from `space.sample_subnet`; with `span_flops`, those at evenly spaced FLOPs
    quantiles of 400 draws (so a small space's subnets cover its range instead of clustering)."""
    archs: dict[str, Any] = {}
    pool = 400 if span_flops else n
    for _ in range(100 * pool):
        if len(archs) >= pool:
            break
        a = space.sample_subnet(rng)
        archs.setdefault(a.id, a)
    drawn = list(archs.values())
    if not span_flops:
        return drawn[:n]
    drawn.sort(key=lambda a: (space.count(a)["flops"], a.id))
    picks = np.unique(np.linspace(0, len(drawn) - 1, n).round().astype(int))
    return [drawn[i] for i in picks]


def train_log_dict(log: TrainLog) -> dict[str, Any]:
    return {"seconds": round(log.seconds, 1), "cpu_seconds": round(log.cpu_seconds, 1),
            "phases": [{"name": p.name, "epochs": p.epochs, "steps": p.steps, "seconds": round(p.seconds, 1),
                        "final_loss": round(p.epoch_losses[-1], 4)} for p in log.phases]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", choices=["ofa", "resnet1d"], default="ofa",
                    help="OFASpace() or the user model of examples/user_model_resnet1d.py (sandwich rule only)")
    ap.add_argument("--schedule", choices=["sandwich", "progressive", "both"], default="both")
    ap.add_argument("--subnets", type=int, default=24)
    ap.add_argument("--supernet-epochs", type=int, default=60, help="sandwich-rule epochs")
    ap.add_argument("--ps-epochs", type=int, default=60, help="progressive-shrinking epochs over all phases")
    ap.add_argument("--standalone-epochs", type=int, default=15)
    ap.add_argument("--standalone-seeds", type=int, default=3,
                    help="train every subnet this many times (seeds); its stand-alone accuracy is the mean")
    ap.add_argument("--extra-test", type=int, default=10_000,
                    help="fresh MNIST-1D signals for a second, less noisy test set (0: standard test set only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: 6 subnets, few epochs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        args.subnets, args.supernet_epochs, args.ps_epochs, args.standalone_epochs = 6, 2, 4, 2
        args.standalone_seeds, args.extra_test = 2, 2000
    if args.space == "resnet1d":
        args.schedule = "sandwich"  # progressive shrinking's phases name OFA's dimensions
    stem = "ofa_kendall" if args.space == "ofa" else "user_model_kendall"
    out_path = args.out or ROOT / "experiments" / "results" / (f"{stem}_quick.json" if args.quick else f"{stem}.json")
    torch.set_num_threads(1)

    data = mnist1d_splits(seed=args.seed, extra_test=args.extra_test)
    (x, y), (xv, yv) = data["train"], data["valid"]
    test_sets = {"test": data["test"], **({"extra_test": data["extra_test"]} if args.extra_test else {})}
    space = OFASpace() if args.space == "ofa" else user_model_space()
    rng = np.random.default_rng(10_000 + args.seed)
    subnets = draw_subnets(space, args.subnets, rng, span_flops=args.space != "ofa")
    rows: list[dict[str, Any]] = [{"id": a.id, "arch": a.to_dict(), **{k: space.count(a)[k] for k in ("params", "flops")}}
                                  for a in subnets]

    results: dict[str, Any] = {"schedules": {}}
    for name, schedule in schedules(args).items():
        torch.manual_seed(args.seed)
        supernet = space.supernet()
        load_before = load()
        log = schedule.fit(supernet, x, y)
        info = {"config": {"class": type(schedule).__name__, **vars(schedule)},
                "train": train_log_dict(log), "load_before": load_before, "load_after": load(),
                "within_time_limit": log.seconds <= TIME_LIMIT_S}
        evaluators = {e: InheritedAccuracy(supernet, xe, ye, calib_x=x[:1000])
                      for e, (xe, ye) in {**test_sets, "valid": (xv, yv)}.items()}
        t0 = time.perf_counter()
        for row, a in zip(rows, subnets):
            for e, evaluate in evaluators.items():
                row[f"{name}_inherited_{e}"] = evaluate(a)["accuracy"]
        info["eval_seconds"] = round(time.perf_counter() - t0, 1)
        for extreme in ("largest", "smallest"):
            info[f"{extreme}_inherited_test"] = evaluators["test"](getattr(space, extreme)())["accuracy"]
        results["schedules"][name] = info
        print(f"{name}: trained in {log.seconds:.0f} s wall ({log.cpu_seconds:.0f} s CPU), load {load_before} -> "
              f"{info['load_after']}; largest {info['largest_inherited_test']:.3f}, "
              f"smallest {info['smallest_inherited_test']:.3f}", flush=True)

    recipe = PlainTraining(epochs=args.standalone_epochs)
    t0 = time.perf_counter()
    for i, (row, a) in enumerate(zip(rows, subnets)):
        for e in test_sets:
            row[f"standalone_{e}_seeds"] = []
        for k in range(args.standalone_seeds):
            seed = 100_000 * k + 1000 * args.seed + i
            torch.manual_seed(seed)
            model = space.build(a)
            replace(recipe, seed=seed).fit(model, x, y)
            for e, (xe, ye) in test_sets.items():
                row[f"standalone_{e}_seeds"].append(accuracy(model.eval(), xe, ye))
        for e in test_sets:
            row[f"standalone_{e}"] = float(np.mean(row[f"standalone_{e}_seeds"]))
        print(f"  standalone {i + 1}/{len(rows)} {a.id}: test {row['standalone_test_seeds']}", flush=True)
    standalone_seconds = time.perf_counter() - t0

    ranking: dict[str, Any] = {}
    for e in test_sets:
        truth = [r[f"standalone_{e}"] for r in rows]
        table = {"flops": rank_stats([r["flops"] for r in rows], truth),
                 "params": rank_stats([r["params"] for r in rows], truth)}
        for name in results["schedules"]:
            table[f"{name}_inherited"] = rank_stats([r[f"{name}_inherited_{e}"] for r in rows], truth)
            table[f"{name}_inherited_valid"] = rank_stats([r[f"{name}_inherited_valid"] for r in rows], truth)
        seeds = [[r[f"standalone_{e}_seeds"][k] for r in rows] for k in range(args.standalone_seeds)]
        for k in range(1, args.standalone_seeds):  # how well one training run ranks like another: the noise ceiling
            table[f"standalone_seed0_vs_seed{k}"] = rank_stats(seeds[0], seeds[k])
        for name in results["schedules"]:
            for k, truth_k in enumerate(seeds):
                table[f"{name}_inherited_vs_seed{k}"] = rank_stats([r[f"{name}_inherited_{e}"] for r in rows], truth_k)
        ranking[e] = table

    for e, table in ranking.items():
        print(f"\n{'vs stand-alone ' + e + ' accuracy (seed mean)':<44} {'Kendall tau':>11} {'Spearman':>9}")
        for name, r in table.items():
            print(f"{name:<44} {r['kendall_tau']:>11.3f} {r['spearman_rho']:>9.3f}")
    main_set = "extra_test" if args.extra_test else "test"
    print(f"\n{'subnet':<18}{'FLOPs':>9}{'params':>8}{'alone':>7}" +
          "".join(f"{n[:8]:>10}" for n in results["schedules"]) + f"   ({main_set})")
    for r in sorted(rows, key=lambda r: r[f"standalone_{main_set}"]):
        print(f"{r['id']:<18}{r['flops']:>9.0f}{r['params']:>8.0f}{r[f'standalone_{main_set}']:>7.3f}" +
              "".join(f"{r[f'{n}_inherited_{main_set}']:>10.3f}" for n in results["schedules"]))

    results.update({
        "what": "Kendall tau / Spearman of inherited (supernet) vs stand-alone-trained test accuracy on MNIST-1D",
        "command": " ".join([".venv/bin/python", "experiments/ofa_kendall.py", *sys.argv[1:]]),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "data": {"train": len(x), "valid": len(xv), **{e: len(xe) for e, (xe, _) in test_sets.items()},
                 "bn_calibration": 1000,
                 "extra_test": "fresh signals from mnist1d's generator (seed 43; the standard set uses 42)"},
        "space": {"name": args.space, "size": space.size(),
                  "config": space.config.to_dict() if args.space == "ofa" else space.to_config(),
                  "sampling": "sample_subnet: each decision uniform on its own (stage depths uniform)" +
                  ("; the subnets at evenly spaced FLOPs quantiles of 400 draws" if args.space != "ofa" else "")},
        "standalone": {"recipe": vars(recipe) | {"seed": "100000*k + 1000*seed + subnet index, k < seeds"},
                       "seeds": args.standalone_seeds, "accuracy": "mean accuracy over the seeds",
                       "seconds": round(standalone_seconds, 1)},
        "targets": {"kendall_tau": TAU_TARGET, "supernet_seconds": TIME_LIMIT_S},
        "ranking": ranking, "subnets": rows,
    })
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1, default=jsonable) + "\n")
    print(f"\nwrote {out_path.relative_to(ROOT) if out_path.is_relative_to(ROOT) else out_path}")


if __name__ == "__main__":
    main()
