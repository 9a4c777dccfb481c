"""The depth gap (issue 22, part 4): do cells ranked at search depth keep their rank at evaluation depth?

One-shot and proxy searches rank cells in a shallow network and then deploy them stacked deeper (DARTS
searches with 8 cells and evaluates with 20). Yang et al. ("NAS evaluation is frustratingly hard", ICLR 2020)
found the ranking at one depth says little about the other. Here the same NAS-Bench-201 cells (6 edges, ops
none / skip / conv 1x1 / conv 3x3 / avg-pool 3x3) are trained from scratch on scikit-learn's digits (900
train / 450 valid / 447 test, 1x8x8, no download) at two depths of the same 2-stage network, `--shallow`
cells per stage (search depth) and `--deep` (evaluation depth), `--seeds` seeds each, and the rankings are
compared by Kendall tau (scipy), beside how well a depth agrees with itself across seeds (the noise ceiling).

Architectures: `--archs` distinct random cells whose output is connected to the input (a cell with no path
of non-`none` edges outputs zeros at any depth; such cells would tie at the bottom of both rankings and
inflate tau).

    .venv/bin/python experiments/depth_gap.py              # 20 cells x 2 depths x 3 seeds (~6-10 min on 2 cores)
    .venv/bin/python experiments/depth_gap.py --quick      # 6 cells x 2 seeds x 2 epochs (~1 min)

Writes experiments/results/depth_gap.json (depth_gap_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NB201_EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
_DATA: dict[str, Any] = {}


def connected(arch: Mapping[str, str]) -> bool:
    """Whether node 3 (the cell's output) is reachable from node 0 through edges that are not `none`."""
    reach = {0}
    for j in (1, 2, 3):
        if any(i in reach and arch[f"edge_{i}_{j}"] != "none" for i in range(j)):
            reach.add(j)
    return 3 in reach


def train_one(task: tuple[dict[str, str], int, int, int, int, int]) -> dict[str, Any]:
    """Train one cell at one depth with one seed on digits; valid and test accuracy."""
    from nas.datasets import digits_splits

    arch, cells, seed, epochs, channels, stages = task
    if "splits" not in _DATA:
        _DATA["splits"] = digits_splits(0)
    return train_cell(arch, cells, seed, epochs, channels, stages, _DATA["splits"], (1, 8, 8))


def train_cell(arch: dict[str, str], cells: int, seed: int, epochs: int, channels: int, stages: int,
               data: dict[str, Any], input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Train one NB201 cell network stand-alone (AdamW lr 1e-2, cosine, batch 64, one thread) on `data`'s
    train split; its valid and test accuracy, training seconds and parameter count."""
    import torch

    from nas.spaces.cell import NasBench201Space
    from nas.spaces.training import PlainTraining, accuracy

    torch.set_num_threads(1)
    space = NasBench201Space(input_shape=input_shape, channels=channels, cells_per_stage=cells, stages=stages)
    torch.manual_seed(seed)
    model = space.build(arch)
    t0 = time.perf_counter()
    PlainTraining(epochs=epochs, batch_size=64, lr=1e-2, seed=seed).fit(model, *data["train"])
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        return {"arch": arch, "cells_per_stage": cells, "seed": seed, "seconds": seconds,
                "valid_acc": accuracy(model, *data["valid"]), "test_acc": accuracy(model, *data["test"]),
                "params": int(sum(p.numel() for p in model.parameters()))}


def kendall(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    res = stats.kendalltau(a, b)
    return float(res.statistic), float(res.pvalue)


def bootstrap_tau(a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of Kendall tau over architectures resampled with replacement."""
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(n):
        idx = rng.integers(0, len(a), len(a))
        t = stats.kendalltau(a[idx], b[idx]).statistic
        if np.isfinite(t):
            taus.append(t)
    return float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5))


def analyse(records: Sequence[Mapping[str, Any]], archs: Sequence[Mapping[str, str]], shallow: int, deep: int,
            seeds: Sequence[int], metric: str) -> dict[str, Any]:
    def table(cells: int) -> np.ndarray:  # [arch, seed]
        by = {(json.dumps(r["arch"], sort_keys=True), r["seed"]): r[metric] for r in records if r["cells_per_stage"] == cells}
        return np.array([[by[(json.dumps(a, sort_keys=True), s)] for s in seeds] for a in archs])

    lo, hi = table(shallow), table(deep)
    tau, p = kendall(lo.mean(1), hi.mean(1))
    ci = bootstrap_tau(lo.mean(1), hi.mean(1))
    pairs = list(itertools.combinations(range(len(seeds)), 2))
    within_lo = [kendall(lo[:, i], lo[:, j])[0] for i, j in pairs]
    within_hi = [kendall(hi[:, i], hi[:, j])[0] for i, j in pairs]
    across = [kendall(lo[:, i], hi[:, j])[0] for i in range(len(seeds)) for j in range(len(seeds))]
    k = max(1, len(archs) // 4)
    top_lo, top_hi = set(np.argsort(-lo.mean(1))[:k]), set(np.argsort(-hi.mean(1))[:k])
    return {"metric": metric, "tau_mean_over_seeds": tau, "p_value": p, "tau_bootstrap_ci95": ci,
            "spearman": float(stats.spearmanr(lo.mean(1), hi.mean(1)).statistic),
            "tau_single_seed_across_depths_mean": float(np.mean(across)),
            "tau_seed_vs_seed_shallow_mean": float(np.mean(within_lo)) if pairs else None,
            "tau_seed_vs_seed_deep_mean": float(np.mean(within_hi)) if pairs else None,
            "top_k": k, "top_k_overlap": len(top_lo & top_hi),
            "best_shallow_rank_deep": int(np.argsort(np.argsort(-hi.mean(1)))[int(np.argmax(lo.mean(1)))]) + 1,
            "mean_shallow": float(lo.mean()), "mean_deep": float(hi.mean())}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--shallow", type=int, default=1, help="cells per stage at search depth (2 stages)")
    ap.add_argument("--deep", type=int, default=4, help="cells per stage at evaluation depth (2 stages)")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="draws the architectures")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.archs, args.seeds, args.epochs = 6, 2, 2
    out = args.out or ROOT / "experiments" / "results" / ("depth_gap_quick.json" if args.quick else "depth_gap.json")
    from nas.spaces.cell import NasBench201Space

    started, load0 = time.perf_counter(), os.getloadavg()
    space = NasBench201Space(input_shape=(1, 8, 8), channels=args.channels, cells_per_stage=args.shallow, stages=2)
    rng = np.random.default_rng(args.seed)
    chosen: dict[str, dict[str, str]] = {}
    for _ in range(100 * args.archs):  # bounded: about 3 in 4 random cells are connected
        a = space.sample(rng)
        if connected(a):
            chosen.setdefault(a.id, a.to_dict())
        if len(chosen) == args.archs:
            break
    archs = list(chosen.values())
    seeds = list(range(args.seeds))
    tasks = [(a, c, s, args.epochs, args.channels, 2) for c in (args.shallow, args.deep) for s in seeds for a in archs]
    print(f"depth gap: {len(archs)} cells x depths {2 * args.shallow} / {2 * args.deep} cells x {len(seeds)} seeds, "
          f"{args.epochs} epochs: {len(tasks)} trainings on {args.jobs} processes (load {load0[0]:.1f})", flush=True)
    records = []
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        for rec in pool.map(train_one, tasks, chunksize=1):
            records.append(rec)
            if len(records) % max(1, len(tasks) // 6) == 0:
                print(f"  {len(records)}/{len(tasks)} trained, {time.perf_counter() - started:.0f} s", flush=True)
    results = {m: analyse(records, archs, args.shallow, args.deep, seeds, m) for m in ("valid_acc", "test_acc")}
    print(f"\n| cell | valid acc, {2 * args.shallow} cells (mean ± sd over {len(seeds)} seeds) | "
          f"valid acc, {2 * args.deep} cells | rank shallow | rank deep |\n|---|---|---|---|---|")
    by = {}
    for r in records:
        by.setdefault((json.dumps(r["arch"], sort_keys=True), r["cells_per_stage"]), []).append(r["valid_acc"])
    lo = np.array([np.mean(by[(json.dumps(a, sort_keys=True), args.shallow)]) for a in archs])
    hi = np.array([np.mean(by[(json.dumps(a, sort_keys=True), args.deep)]) for a in archs])
    rank_lo, rank_hi = stats.rankdata(-lo, method="min"), stats.rankdata(-hi, method="min")
    for i in np.argsort(-lo):
        a = archs[i]
        ops = " ".join(a[f"edge_{p}_{q}"].replace("nor_conv_", "c").replace("avg_pool_3x3", "pool")
                       .replace("skip_connect", "skip") for p, q in NB201_EDGES)
        s_lo = np.std(by[(json.dumps(a, sort_keys=True), args.shallow)])
        s_hi = np.std(by[(json.dumps(a, sort_keys=True), args.deep)])
        print(f"| {ops} | {lo[i]:.4f} ± {s_lo:.4f} | {hi[i]:.4f} ± {s_hi:.4f} | {int(rank_lo[i])} | {int(rank_hi[i])} |")
    print("\n| metric | Kendall tau, shallow vs deep (seed means) [bootstrap 95 % CI] | p | Spearman | "
          "single seeds across depths | seed vs seed, shallow | seed vs seed, deep | top-k overlap |\n|---|---|---|---|---|---|---|---|")
    for m, r in results.items():
        f = (lambda v: "-" if v is None else f"{v:.2f}")
        print(f"| {m} | {r['tau_mean_over_seeds']:.2f} [{r['tau_bootstrap_ci95'][0]:.2f}, {r['tau_bootstrap_ci95'][1]:.2f}] | "
              f"{r['p_value']:.3f} | {r['spearman']:.2f} | {r['tau_single_seed_across_depths_mean']:.2f} | "
              f"{f(r['tau_seed_vs_seed_shallow_mean'])} | {f(r['tau_seed_vs_seed_deep_mean'])} | "
              f"{r['top_k_overlap']} of {r['top_k']} |")
    v = results["valid_acc"]
    print(f"\nthe best cell at {2 * args.shallow} cells ranks {v['best_shallow_rank_deep']} of {len(archs)} at "
          f"{2 * args.deep} cells; mean valid accuracy {v['mean_shallow']:.4f} -> {v['mean_deep']:.4f}")
    total = time.perf_counter() - started
    doc = {"script": "experiments/depth_gap.py", "command": "python experiments/depth_gap.py " + " ".join(
               sys.argv[1:] if argv is None else argv),
           "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "git_commit": git_commit(),
           "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
                       "load_average_start": load0, "load_average_end": os.getloadavg()},
           "settings": {"archs": len(archs), "seeds": seeds, "epochs": args.epochs, "cells_per_stage": [args.shallow, args.deep],
                        "stages": 2, "channels": args.channels, "data": "scikit-learn digits 900/450/447, seed 0",
                        "training": "PlainTraining: AdamW lr 1e-2, cosine, batch 64, weight decay 1e-4",
                        "architectures": "distinct random NB201 cells with the output connected to the input"},
           "results": results, "records": records, "total_seconds": total}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"total {total:.0f} s; wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
