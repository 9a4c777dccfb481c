"""Does plain DARTS collapse toward parameter-free ops on NAS-Bench-201, and do PC-DARTS / DARTS-ES avoid it?

On scikit-learn's digits (8x8, 900 train / 450 valid / 447 test) and a small NB201 supernet, each method
searches for `--epochs` epochs; per epoch we record the share of parameter-free ops (none, skip,
avg_pool) and of skip connections in the derived cell, the op weights (alpha trajectories) and the
dominant Hessian eigenvalue of the valid loss in the alphas. The derived cells, plus an all-conv3x3 and
an all-skip reference, are trained stand-alone for `--retrain-epochs` and their accuracy reported.

    .venv/bin/python experiments/darts_collapse.py                # 10 seeds x 30 epochs (~10 min a seed, loaded)
    .venv/bin/python experiments/darts_collapse.py --epochs 60 --out experiments/results/darts_collapse_60.json
    .venv/bin/python experiments/darts_collapse.py --epochs 60 --first-seed 1 \
        --out experiments/results/darts_collapse_60_seed1.json   # another seed (and another digits split)
    .venv/bin/python experiments/darts_collapse.py --quick        # smoke test (about a minute)
    .venv/bin/python experiments/darts_collapse.py --replot       # redraw the PNG from the JSON at --out

Each seed draws its own digits split; `--random` random cells per seed, trained the same way, are the
random-sampling baseline of the evaluation protocol (experiments/reporting.py: relative improvement over
random, 95 % intervals, search cost). The JSON is written after every seed; a rerun with the same settings
resumes from the finished seeds (`--fresh` starts over).

Writes experiments/results/darts_collapse.json and darts_collapse.png (op weights over epochs);
darts_collapse_quick.json and .png with --quick.
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
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `experiments.reporting` when run as a script

from experiments.reporting import git_commit, protocol_report, protocol_table  # noqa: E402
from nas.spaces.cell import NasBench201Space  # noqa: E402
from nas.datasets import digits_splits  # noqa: E402
from nas.darts import DartsOptions, StandaloneTraining, search_darts  # noqa: E402
from nas.strategies.oneshot import PARAMETER_FREE, EpochRecord, cell_ops, darts_es_stop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def mean_op_weights(alphas: list[list[float]], ops: tuple[str, ...]) -> dict[str, float]:
    """softmax(alpha) of each op averaged over the cell's edges (the alpha trajectory that is plotted)."""
    w = torch.softmax(torch.tensor(alphas), dim=-1)
    return {op: float(w[:, i].mean()) for i, op in enumerate(ops)}


def plot(runs: dict[str, dict], ops: tuple[str, ...], path: Path) -> None:
    """Top: mean softmax(alpha) per op over epochs; bottom: the derived cell's parameter-free and skip shares
    and the Hessian's dominant eigenvalue (DARTS-ES's signal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(runs), figsize=(4.2 * len(runs), 6.4), sharex="col", squeeze=False)
    for col, (name, run) in enumerate(runs.items()):
        top, bottom = axes[0][col], axes[1][col]
        epochs = [e["epoch"] for e in run["epochs"]]
        for op in ops:
            top.plot(epochs, [mean_op_weights(e["alphas"], ops)[op] for e in run["epochs"]], label=op,
                     linestyle="--" if op in PARAMETER_FREE else "-")
        bottom.step(epochs, [e["parameter_free"] for e in run["epochs"]], where="mid", color="black",
                    label="derived cell: parameter-free share")
        bottom.step(epochs, [e["skip"] for e in run["epochs"]], where="mid", color="tab:orange",
                    label="derived cell: skip_connect share")
        eig = bottom.twinx()
        eig.plot(epochs, [e["eigenvalue"] for e in run["epochs"]], color="tab:blue", alpha=0.5, linewidth=1,
                 label="Hessian eigenvalue (right axis)")
        if run.get("returned_epoch") and run["returned_epoch"] != epochs[-1]:
            for ax in (top, bottom):
                ax.axvline(run["returned_epoch"], color="grey", linestyle=":", label="DARTS-ES returns")
        top.set_title(name)
        bottom.set_xlabel("epoch")
        bottom.set_ylim(-0.05, 1.05)
    axes[0][0].set_ylabel("softmax(alpha), mean over the 6 edges")
    axes[1][0].set_ylabel("share of the derived cell's 6 ops")
    handles = {}
    for ax in fig.axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=5, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def protocol(runs: dict[str, dict], references: dict[str, dict]) -> dict[str, Any]:
    """Each method's derived cell (and the fixed reference cells) against random cells (mean per seed), per
    seed, under Yang et al.'s protocol (experiments/reporting.py): test accuracy and the parameter-free share."""
    out = {}
    for metric in ("test_accuracy", "parameter_free"):
        values: dict[str, list[float]] = {}
        costs: dict[str, list[float]] = {}
        randoms: dict[int, list[float]] = {}
        for r in sorted(runs.values(), key=lambda r: r["seed"]):
            values.setdefault(r["method"], []).append(r["parameter_free"] if metric == "parameter_free"
                                                      else r["metrics"]["test_accuracy"])
            costs.setdefault(r["method"], []).append(r["search_seconds"])
        for r in sorted(references.values(), key=lambda r: r["seed"]):
            v = r["parameter_free"] if metric == "parameter_free" else r["metrics"]["test_accuracy"]
            if r["reference"] == "random":
                randoms.setdefault(r["seed"], []).append(v)
            else:
                values.setdefault(r["reference"], []).append(v)
        values["random"] = [float(np.mean(v)) for _, v in sorted(randoms.items())]
        out[metric] = protocol_report(values, direction="max" if metric == "test_accuracy" else "min",
                                      baseline="random", costs=costs, label=f"darts_collapse {metric}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, default=10, help="seeds (each: its own digits split, every method)")
    p.add_argument("--random", type=int, default=2, help="random cells per seed, trained as the baseline")
    p.add_argument("--fresh", action="store_true", help="ignore the finished seeds in --out (default: resume)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--a-lr", type=float, default=1e-2,
                   help="Adam learning rate of the alphas (DARTS: 3e-4 over ~35x more steps per epoch on CIFAR-10)")
    p.add_argument("--retrain-epochs", type=int, default=20)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--cells-per-stage", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="3 epochs, 1 retraining epoch, 256 samples per split")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON output (default experiments/results/darts_collapse.json; darts_collapse_quick.json "
                        "with --quick); the PNG goes beside it")
    p.add_argument("--replot", action="store_true", help="only redraw the PNG from the JSON at --out")
    args = p.parse_args()
    args.out = args.out or ROOT / "experiments" / "results" / (
        "darts_collapse_quick.json" if args.quick else "darts_collapse.json")
    if args.replot:
        saved = json.loads(args.out.read_text())
        first = min(v["seed"] for v in saved["runs"].values())
        plot({k: v for k, v in saved["runs"].items() if v["seed"] == first}, tuple(saved["space"]["ops"]),
             args.out.with_suffix(".png"))
        return
    torch.set_num_threads(1)
    if args.quick:
        args.epochs, args.retrain_epochs = 3, 1
    load_start, t_start = load(), time.perf_counter()

    space = NasBench201Space(channels=args.channels, cells_per_stage=args.cells_per_stage, stages=3)
    base = DartsOptions(epochs=args.epochs, a_lr=args.a_lr, retrain_epochs=args.retrain_epochs, track_eigenvalue=True)
    methods = {
        "darts": replace(base, method="darts"),
        "pc-darts": replace(base, method="pc-darts"),
        "darts-es": replace(base, method="darts", early_stop="eigenvalue"),
    }
    settings = {"epochs": args.epochs, "a_lr": args.a_lr, "retrain_epochs": args.retrain_epochs,
                "channels": args.channels, "cells_per_stage": args.cells_per_stage, "random": args.random,
                "quick": args.quick}
    previous = json.loads(args.out.read_text()) if args.out.exists() and not args.fresh else {}
    resumed = previous.get("settings") == settings
    runs: dict[str, dict] = dict(previous.get("runs", {})) if resumed else {}
    references: dict[str, dict] = dict(previous.get("references", {})) if resumed else {}
    done = {r["seed"] for r in references.values() if r["reference"] == "random"} if resumed else set()
    if done:
        print(f"resuming: seeds {sorted(done)} already in {args.out}", flush=True)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if seed in done:
            continue
        data = digits_splits(seed=seed)
        if args.quick:
            data = {k: (x[:256], y[:256]) for k, (x, y) in data.items()}
        for name, options in methods.items():
            history: list[EpochRecord] = []
            t0 = time.perf_counter()

            def progress(record: EpochRecord) -> None:
                history.append(record)
                print(f"  {name:<9} seed {seed} epoch {record.epoch:>3}: valid acc {record.valid_acc:.3f}, "
                      f"parameter-free {record.parameter_free:.2f}, skip {record.skip:.2f}, eigenvalue "
                      f"{record.eigenvalue:.3f}  {space.to_string(record.derived)}", flush=True)

            with tempfile.TemporaryDirectory(prefix="darts-collapse-") as wd:
                result = search_darts(space, data, method=options.method, epochs=options.epochs, workdir=wd,
                                      seed=seed, options=options, progress=progress)
            search_seconds = time.perf_counter() - t0 - result.trials[0].metrics["train_seconds"]
            trial = result.trials[0]
            runs[f"{name}/seed{seed}"] = {
                "method": name, "seed": seed, "options": options.to_dict(), "stop_reason": result.stop_reason,
                "epochs_run": len(history), "returned_epoch": trial.extra["epoch"],
                "search_seconds": round(search_seconds, 1),
                "derived": space.to_string(trial.arch), "ops": trial.extra["ops"],
                "parameter_free": trial.extra["parameter_free"], "skip": trial.extra["skip"],
                "metrics": trial.metrics,
                "epochs": [{"epoch": r.epoch, "train_loss": r.train_loss, "train_acc": r.train_acc,
                            "valid_loss": r.valid_loss, "valid_acc": r.valid_acc, "parameter_free": r.parameter_free,
                            "skip": r.skip, "eigenvalue": r.eigenvalue, "derived": space.to_string(r.derived),
                            "mean_op_weight": mean_op_weights(r.alphas["cell"], space.ops), "alphas": r.alphas["cell"],
                            "seconds": round(r.seconds, 2)} for r in history],
            }
        for ref, op in (("all nor_conv_3x3", "nor_conv_3x3"), ("all skip_connect", "skip_connect")):
            arch = space.validate({f: op for f in space.fields})
            m = StandaloneTraining(space, data, args.retrain_epochs, base.retrain_lr, base.batch_size, seed)(arch)
            references[f"{ref}/seed{seed}"] = {"reference": ref, "seed": seed, "derived": space.to_string(arch),
                                                "parameter_free": float(op in PARAMETER_FREE),
                                                "metrics": {**m, **space.count(arch)}}
        rng = np.random.default_rng(seed)
        for i in range(args.random):  # the evaluation protocol's random-sampling baseline, trained the same way
            arch = space.sample(rng)
            m = StandaloneTraining(space, data, args.retrain_epochs, base.retrain_lr, base.batch_size, seed)(arch)
            ops = cell_ops(space, arch)
            references[f"random #{i}/seed{seed}"] = {"reference": "random", "seed": seed,
                                                     "derived": space.to_string(arch),
                                                     "parameter_free": sum(o in PARAMETER_FREE for o in ops) / len(ops),
                                                     "metrics": {**m, **space.count(arch)}}
        checkpoint = {"settings": settings, "runs": runs, "references": references,
                      "seconds": round(time.perf_counter() - t_start, 1) + (previous.get("seconds", 0.0) if resumed else 0.0)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**previous, **checkpoint}, indent=1) + "\n")  # a cut-off run resumes

    # -- table
    print(f"\n{'run':<16}{'epochs':>7}{'used':>5}{'param-free':>11}{'skip':>6}{'supernet':>9}{'valid':>7}"
          f"{'test':>7}{'search s':>9}  derived cell")
    for key, r in runs.items():
        m = r["metrics"]
        print(f"{key:<16}{r['epochs_run']:>7}{r['returned_epoch']:>5}{r['parameter_free']:>11.2f}{r['skip']:>6.2f}"
              f"{m['supernet_accuracy']:>9.3f}{m['accuracy']:>7.3f}{m.get('test_accuracy', float('nan')):>7.3f}"
              f"{r['search_seconds']:>9.0f}  {r['derived']}")
    for key, r in references.items():
        m = r["metrics"]
        print(f"{key:<16}{'-':>7}{'-':>5}{r['parameter_free']:>11.2f}{'':>6}{'-':>9}{m['accuracy']:>7.3f}"
              f"{m.get('test_accuracy', float('nan')):>7.3f}{'':>9}  {r['derived']}")

    # DARTS-ES is plain DARTS plus a stopping rule: replay the rule on the darts run's eigenvalues for
    # other (window, lag) settings to show how sensitive the stopping point is (no retraining).
    sensitivity = []
    for key, r in runs.items():
        if r["method"] != "darts":
            continue
        eig = [e["eigenvalue"] for e in r["epochs"]]
        for window, lag in ((3, 4), (5, 5), (5, 3)):
            stop = next(((n, s) for n in range(1, len(eig) + 1)
                         if (s := darts_es_stop(eig[:n], window, lag, base.es_ratio)) is not None), None)
            picked = r["epochs"][(stop[1] if stop else len(eig)) - 1]
            sensitivity.append({"run": key, "es_window": window, "es_lag": lag, "stops_at": stop and stop[0],
                                "returns_epoch": picked["epoch"], "derived": picked["derived"],
                                "parameter_free": picked["parameter_free"], "skip": picked["skip"]})
    print(f"\nDARTS-ES rule replayed on the darts run (ratio {base.es_ratio}):")
    for s in sensitivity:
        print(f"  window {s['es_window']}, lag {s['es_lag']}: stops at epoch {s['stops_at']}, returns epoch "
              f"{s['returns_epoch']} (parameter-free {s['parameter_free']:.2f}, skip {s['skip']:.2f}) {s['derived']}")

    reports = protocol(runs, references)
    for metric, report in reports.items():
        print(f"\n{metric} over seeds, RI over random cells (%):\n{protocol_table(report)}")

    png = args.out.with_suffix(".png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot({k: v for k, v in runs.items() if v["seed"] == args.first_seed}, space.ops, png)
    results = {
        "what": "DARTS skip/parameter-free collapse on NAS-Bench-201 (digits 8x8) vs PC-DARTS and DARTS-ES",
        "command": " ".join([".venv/bin/python", "experiments/darts_collapse.py", *sys.argv[1:]]),
        "date": _dt.datetime.now().isoformat(timespec="seconds"), "git_commit": git_commit(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "load_average": {"start": load_start, "end": load()},
        "seconds": round(time.perf_counter() - t_start, 1) + (previous.get("seconds", 0.0) if resumed else 0.0),
        "settings": settings, "seeds_done": sorted({r["seed"] for r in runs.values()}),
        "protocol": {k: v.to_dict() for k, v in reports.items()},
        "protocol_tables": {k: protocol_table(v) for k, v in reports.items()},
        "data": {"dataset": "sklearn digits, 1x8x8, standardised", "train": 900, "valid": 450, "test": 447,
                 "quick_subset": 256 if args.quick else None,
                 "roles": "weights on train, alphas on valid; stand-alone retraining on train, accuracy on valid/test"},
        "space": {"name": "NasBench201Space", "net": repr(space.net), "ops": list(space.ops)},
        "parameter_free_ops": sorted(PARAMETER_FREE),
        "plot": str(png.relative_to(ROOT) if png.is_relative_to(ROOT) else png),
        "runs": runs, "references": references, "darts_es_sensitivity": sensitivity,
    }
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} and {png.name} "
          f"in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
