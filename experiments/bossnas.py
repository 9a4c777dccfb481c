"""BossNAS (issue 20, part 3): does the label-free, block-wise self-supervised rating of a hybrid CNN/attention
supernet rank architectures like their stand-alone accuracy?

Setting: `nas.bossnas.HybridSpace` on scikit-learn's digits (900 train / 450 valid / 447 test, split seed 0, no
download): a stem and 2 blocks of 2 layers, each layer a residual convolution or self-attention over positions,
each block halving the resolution before one of its layers or not at all (144 architectures).

1. Ground truth: `--archs` distinct random architectures, each trained stand-alone with labels `--gt-seeds`
   times for `--gt-epochs` (AdamW, cosine, batch 64); the truth is the mean test accuracy. Cached in
   experiments/results/bossnas_ground_truth.json after every training (a rerun resumes).
2. Per supernet seed, on the same data and the same number of passes over the training inputs:
   - BossNAS: `nas.bossnas.search_bossnas` (no labels): block-wise ensemble-bootstrapping training, every
     architecture rated by its summed block distances (lower is better); the standard journal is written in a
     temporary workdir;
   - SPOS, the supervised one-shot baseline: the same supernet with a linear head trained with labels by uniform
     single-path sampling (`--blocks` x `--epochs` epochs), rated by inherited valid accuracy (batch norm
     recalibrated per architecture).
3. Spearman(rating, truth) per seed (BossNAS: minus the distance), the mean over seeds with a 95 % t-interval,
   and a bootstrap 95 % interval over the architectures (scipy.stats.bootstrap, paired, on the seed-averaged
   rating); side by side the seed-free baselines params and FLOPs (their Spearman with the truth), the paired
   difference BossNAS - SPOS, and the noise ceiling (Spearman between two stand-alone seeds).

    .venv/bin/python experiments/bossnas.py              # 12 archs x 3 seeds truth, 5 supernet seeds
    .venv/bin/python experiments/bossnas.py --quick      # smoke run
    .venv/bin/python experiments/bossnas.py --recount-flops [--archs 24]   # the FLOPs baseline again, no training

Writes experiments/results/bossnas.json (bossnas_<N>archs.json with --archs N other than 12, bossnas_quick.json
with --quick) after every finished supernet seed; a rerun with the same settings resumes. The stand-alone
trainings are cached by architecture and seed, so a larger --archs reuses the first 12 (the draw is sequential).
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from few_shot import paired  # noqa: E402
from flops_recount import Recount, add_option, read_json, write_json  # noqa: E402
from reporting import git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("BossNAS (no labels)", "SPOS (labels)")


def _key(arch: Mapping[str, Any]) -> str:
    return json.dumps(dict(arch), sort_keys=True)


def _data(train_size: int | None = None) -> dict[str, Any]:
    """digits split 0; `train_size` keeps the first training and validation samples only (for smoke runs)."""
    from nas.datasets import digits_splits

    data = digits_splits(0)
    return {k: (x[:train_size], y[:train_size]) if k in ("train", "valid") else (x, y) for k, (x, y) in data.items()}


def train_one(arch: Mapping[str, Any], seed: int, epochs: int, space: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """One stand-alone training with labels: valid and test accuracy."""
    import torch

    from nas.spaces.training import PlainTraining, accuracy

    torch.manual_seed(seed)
    net = space.build(arch)
    t0 = time.perf_counter()
    PlainTraining(epochs, 64, 3e-3, 1e-4, seed=seed).fit(net, *data["train"])
    net.eval()
    return {"arch": dict(arch), "seed": seed, "valid_acc": accuracy(net, *data["valid"]),
            "test_acc": accuracy(net, *data["test"]), "seconds": round(time.perf_counter() - t0, 2)}


def ground_truth(archs: Sequence[Mapping[str, Any]], args: argparse.Namespace, space: Any, data: Any,
                 path: Path) -> dict[str, Any]:
    settings = {"gt_epochs": args.gt_epochs, "space": space.config.to_dict(), "data": "digits split 0",
                **({"train_size": args.train_size} if args.train_size else {}),
                "training": "PlainTraining: AdamW lr 3e-3, wd 1e-4, cosine, batch 64"}
    cache = json.loads(path.read_text()) if path.is_file() else {}
    if cache.get("settings") != settings:
        cache = {"settings": settings, "records": {}}
    records = cache["records"]
    todo = [(a, s) for a in archs for s in range(args.gt_seeds) if f"{_key(a)}|{s}" not in records]
    print(f"ground truth: {len(archs)} architectures x {args.gt_seeds} seeds, {len(todo)} trainings to run", flush=True)
    for i, (a, s) in enumerate(todo, start=1):
        records[f"{_key(a)}|{s}"] = train_one(a, s, args.gt_epochs, space, data)
        path.write_text(json.dumps(cache, indent=1) + "\n")
        if i % 6 == 0 or i == len(todo):
            print(f"  {i}/{len(todo)} trained", flush=True)
    return cache


def run_bossnas(seed: int, archs: Sequence[Mapping[str, Any]], space: Any, data: Any, epochs: int) -> dict[str, Any]:
    """BossNAS with one seed: every architecture's label-free rating, journaled in a temporary workdir."""
    from nas.bossnas import BossOptions, search_bossnas

    t0 = time.perf_counter()
    unlabelled = {k: x for k, (x, _) in data.items() if k in ("train", "valid")}  # the labels are not even given
    with tempfile.TemporaryDirectory() as tmp:
        result = search_bossnas(space, unlabelled, archs, BossOptions(epochs=epochs, retrain_epochs=0), seed=seed,
                                workdir=Path(tmp) / "run")
        state = json.loads((Path(tmp) / "run" / "bossnas.json").read_text())
    by = {t.arch_id: t.metrics for t in result.trials}
    metrics = [by[space.validate(a).id] for a in archs]
    return {"method": METHODS[0], "seed": seed, "ratings": [-m["ssl_distance"] for m in metrics],
            "block_distances": [[m["block0_distance"], m["block1_distance"]] for m in metrics],
            "best": state["best"], "losses": state["losses"], "seconds": round(time.perf_counter() - t0, 1)}


def run_spos(seed: int, archs: Sequence[Mapping[str, Any]], space: Any, data: Any, epochs: int) -> dict[str, Any]:
    """The supervised one-shot baseline: uniform single-path training with labels, inherited valid accuracy."""
    import torch

    from nas.spaces.training import InheritedAccuracy, SinglePath

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    supernet = space.supernet()
    x, y = data["train"]
    phase, = SinglePath(epochs=epochs, batch_size=64, lr=3e-3, weight_decay=1e-4, seed=seed).fit(supernet, x, y).phases
    rate = InheritedAccuracy(supernet, *data["valid"], calib_x=x[:500])
    return {"method": METHODS[1], "seed": seed, "ratings": [rate(a)["accuracy"] for a in archs],
            "losses": phase.epoch_losses, "seconds": round(time.perf_counter() - t0, 1)}


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    return float(stats.spearmanr(a, b).statistic)


def bootstrap_ci(a: Sequence[float], b: Sequence[float], seed: int = 0, n: int = 2000) -> list[float]:
    """95 % percentile interval of Spearman(a, b) over the architectures resampled with replacement (resamples
    where either side is constant, e.g. tied parameter counts, have no Spearman and are left out)."""
    a, b, rng = np.asarray(a, dtype=float), np.asarray(b, dtype=float), np.random.default_rng(seed)
    idx = rng.integers(len(a), size=(n, len(a)))
    ra, rb = stats.rankdata(a[idx], axis=1), stats.rankdata(b[idx], axis=1)  # Spearman = Pearson of the ranks
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    norm = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    rhos = (ra * rb).sum(1)[norm > 0] / norm[norm > 0]
    return [float(np.percentile(rhos, 2.5)), float(np.percentile(rhos, 97.5))] if len(rhos) else [float("nan")] * 2


def t_interval(values: Sequence[float]) -> list[float]:
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return [float("nan"), float("nan")]
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return [float(v.mean() - half), float(v.mean() + half)]


def analyse(runs: list[dict[str, Any]], truth: np.ndarray, counts: Mapping[str, list[float]]) -> dict[str, Any]:
    """Spearman per method and seed (over the seeds every method finished), CIs, baselines, paired difference."""
    seeds = sorted({r["seed"] for r in runs if all(any(x["method"] == m and x["seed"] == r["seed"] for x in runs)
                                                  for m in METHODS)})
    by = {(r["method"], r["seed"]): r for r in runs}
    out: dict[str, Any] = {"seeds": seeds, "methods": {}}
    if not seeds:
        return out
    for m in METHODS:
        rhos = [spearman(by[(m, s)]["ratings"], truth) for s in seeds]
        mean_rating = np.mean([by[(m, s)]["ratings"] for s in seeds], axis=0)
        out["methods"][m] = {"spearman": rhos, "mean": float(np.mean(rhos)), "t_ci95": t_interval(rhos),
                             "seed_averaged_rating_spearman": spearman(mean_rating, truth),
                             "bootstrap_ci95": bootstrap_ci(mean_rating, truth),
                             "seconds_mean": float(np.mean([by[(m, s)]["seconds"] for s in seeds]))}
    for name, values in counts.items():
        out["methods"][name] = {"spearman": [spearman(values, truth)], "mean": spearman(values, truth),
                                "t_ci95": [float("nan")] * 2, "seed_averaged_rating_spearman": spearman(values, truth),
                                "bootstrap_ci95": bootstrap_ci(values, truth), "seconds_mean": 0.0}
    boss = out["methods"][METHODS[0]]
    out["paired"] = {"BossNAS - SPOS": paired(boss["spearman"], out["methods"][METHODS[1]]["spearman"])}
    out["target_spearman_gt_0.3"] = bool(boss["mean"] > 0.3)
    return out


def print_tables(doc: Mapping[str, Any]) -> None:
    a = doc["analysis"]
    if not a.get("seeds"):
        print("no seed finished every method yet")
        return
    g = doc["ground_truth"]
    print(f"\nSpearman(rating, mean stand-alone test accuracy over {len(g['test_acc'][0])} seeds), "
          f"{len(g['archs'])} architectures, {len(a['seeds'])} supernet seeds {a['seeds']}\n")
    print("| rating | Spearman mean over seeds [95 % t-CI] | seed-averaged rating [bootstrap 95 % CI over archs] | "
          "per seed | s / seed |\n|---|---|---|---|---|")
    for name, m in a["methods"].items():
        t = "" if np.isnan(m["t_ci95"][0]) else f" [{m['t_ci95'][0]:+.2f}, {m['t_ci95'][1]:+.2f}]"
        print(f"| {name} | {m['mean']:+.3f}{t} | {m['seed_averaged_rating_spearman']:+.3f} "
              f"[{m['bootstrap_ci95'][0]:+.2f}, {m['bootstrap_ci95'][1]:+.2f}] | "
              f"{' '.join(f'{v:+.2f}' for v in m['spearman'])} | {m['seconds_mean']:.0f} |")
    print("\n| paired over seeds | mean [95 % CI] | wins / ties / losses | Wilcoxon p |\n|---|---|---|---|")
    for name, d in a["paired"].items():
        print(f"| {name} | {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] | "
              f"{d['wins']} / {d['ties']} / {d['losses']} | {d['wilcoxon_p']:.3f} |")
    print(f"\nnoise ceiling: Spearman between stand-alone seeds {np.mean(g['seed_vs_seed_spearman']):+.3f}; "
          f"truth spans {min(g['test_acc_mean']):.3f}-{max(g['test_acc_mean']):.3f}; target (BossNAS Spearman > 0.3, "
          f"mean over seeds): {'holds' if a['target_spearman_gt_0.3'] else 'does NOT hold'}")


def recount_flops(path: Path, argv: Sequence[str] | None) -> int:
    """`--recount-flops`: the recorded architectures rebuilt untrained, their FLOPs counted again as a run counts
    them, and the analysis (whose FLOPs row is the only one that can move) redone from the recorded ratings."""
    from nas.bossnas import HybridSpace

    doc, space = read_json(path), HybridSpace()
    if doc["settings"]["space"] != space.config.to_dict():
        raise SystemExit(f"--recount-flops: {path} was recorded on another space than this script builds")
    g, recount = doc["ground_truth"], Recount("bossnas.py", space.count, argv)
    g["flops"] = [recount.flops(a, old, params) for a, old, params in zip(g["archs"], g["flops"], g["params"])]
    doc["analysis"] = analyse(doc["runs"], np.asarray(g["test_acc_mean"]), {"Params": g["params"], "FLOPs": g["flops"]})
    doc["flops_recount"] = recount.summary()
    print(recount.describe())
    write_json(path, doc)
    print_tables(doc)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from nas.bossnas import HybridSpace

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", type=int, default=12)
    ap.add_argument("--arch-seed", type=int, default=0, help="draws the architectures")
    ap.add_argument("--gt-seeds", type=int, default=3)
    ap.add_argument("--gt-epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=5, help="supernet seeds per method")
    ap.add_argument("--epochs", type=int, default=12, help="BossNAS epochs per block (SPOS: blocks x epochs)")
    ap.add_argument("--train-size", type=int, default=None, help="use only this many training and validation samples (smoke runs)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--results-dir", type=Path, default=ROOT / "experiments" / "results")
    add_option(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.archs, args.gt_seeds, args.gt_epochs, args.seeds, args.epochs = 6, 2, 2, 2, 1
    torch.set_num_threads(1)
    name = "bossnas_quick" if args.quick else "bossnas"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    gt_path = args.results_dir / f"{name}_ground_truth.json"  # records by architecture and seed: shared by --archs
    out = args.results_dir / (f"{name}.json" if args.archs == 12 else f"{name}_{args.archs}archs.json")
    if args.recount_flops:
        return recount_flops(out, argv)
    started, load0 = time.perf_counter(), os.getloadavg()
    space, data = HybridSpace(), _data(args.train_size)
    rng, chosen = np.random.default_rng(args.arch_seed), {}
    while len(chosen) < args.archs:  # the space has 144 architectures
        a = space.sample(rng)
        chosen.setdefault(a.id, a.to_dict())
    archs = list(chosen.values())
    truth_doc = ground_truth(archs, args, space, data, gt_path)
    recs = truth_doc["records"]
    gt = np.array([[recs[f"{_key(a)}|{s}"]["test_acc"] for s in range(args.gt_seeds)] for a in archs])
    truth = gt.mean(1)
    counts = {k: [float(space.count(a)[k.lower()]) for a in archs] for k in ("Params", "FLOPs")}
    settings = {"archs": len(archs), "arch_seed": args.arch_seed, "epochs_per_block": args.epochs,
                "spos_epochs": space.config.blocks * args.epochs, "space": space.config.to_dict(),
                **({"train_size": args.train_size} if args.train_size else {}),
                "ground_truth": truth_doc["settings"] | {"seeds": args.gt_seeds}}
    doc = json.loads(out.read_text()) if out.is_file() else {}
    runs: list[dict[str, Any]] = doc.get("runs", []) if doc.get("settings") == settings else []
    done = {(r["method"], r["seed"]) for r in runs}
    pairs = [(i, j) for i in range(gt.shape[1]) for j in range(i + 1, gt.shape[1])]

    def save() -> None:
        doc = {"script": "experiments/bossnas.py",
               "command": "python experiments/bossnas.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "git_commit": git_commit(),
               "machine": {"platform": platform.platform(), "python": platform.python_version(),
                           "cpu_count": os.cpu_count(), "threads": 1, "load_average_start": load0,
                           "load_average_end": os.getloadavg()},
               "settings": settings,
               "ground_truth": {"archs": archs, "test_acc_mean": truth.tolist(), "test_acc": gt.tolist(),
                                "seed_vs_seed_spearman": [spearman(gt[:, i], gt[:, j]) for i, j in pairs],
                                "params": counts["Params"], "flops": counts["FLOPs"]},
               "analysis": analyse(runs, truth, counts), "runs": runs,
               "total_seconds": round(time.perf_counter() - started, 1)}
        out.write_text(json.dumps(doc, indent=1) + "\n")

    for seed in range(args.seeds):
        for method, run in zip(METHODS, (run_bossnas, run_spos)):
            if (method, seed) in done:
                continue
            epochs = args.epochs if method == METHODS[0] else space.config.blocks * args.epochs
            r = run(seed, archs, space, data, epochs)
            runs.append(r)
            print(f"  seed {seed} {method}: Spearman {spearman(r['ratings'], truth):+.3f}, {r['seconds']:.0f} s",
                  flush=True)
            save()
    save()
    print_tables(json.loads(out.read_text()))
    print(f"total {time.perf_counter() - started:.0f} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
