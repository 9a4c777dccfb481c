"""Few-shot NAS with gradient-matching splits (issue 20, part 1): does splitting the NB201 supernet where the
candidate ops' gradients disagree rank architectures better than one supernet, or than random splits?

Setting: the NAS-Bench-201 cell in a 2-stage network (`--cells` cells per stage, `--channels` channels) on
`--dataset digits` (scikit-learn's, 1x8x8, 900 train / 450 valid / 447 test, split seed 0) or `mnist1d`
(generated locally, 1x40, 3,500 train / 500 valid / 1,000 test, split seed 0; the 1-D cell); no download.

1. Ground truth: `--archs` distinct random cells whose output is connected to the input, each trained
   stand-alone `--gt-seeds` times for `--gt-epochs` (experiments/depth_gap.py's `train_one`); the truth is
   the mean test accuracy (MNIST-1D: the same protocol, `train_standalone`). Cached in
   experiments/results/few_shot_ground_truth.json (few_shot_mnist1d_ground_truth.json) after every training
   (a rerun resumes).
2. Per seed, three supernet methods at the same total supernet-training budget (`--epochs` epochs of
   single-path steps summed over all sub-supernets), through `nas.few_shot.search_few_shot` (each writes
   the standard journal in a temporary workdir):
   - one-shot: one supernet, uniform single-path sampling;
   - random split: `--levels` rounds, each sub-supernet split on a random edge into a random balanced
     partition of its ops;
   - gradient matching: the same rounds, each split on the edge (and partition) with the lowest mean
     cross-group cosine similarity of the shared weights' gradients.
   Each architecture is rated by its sub-supernet's valid accuracy (batch norm recalibrated).
3. Kendall tau (rating vs ground truth) per seed and method, the mean over seeds with 95 % t-intervals
   (experiments/reporting.py's protocol, random split as the random baseline), and the paired differences
   gm - one-shot and gm - random split with 95 % t-intervals and Wilcoxon's signed-rank p.

    .venv/bin/python experiments/few_shot.py              # 50 archs x 3 seeds truth, 10 supernet seeds
    .venv/bin/python experiments/few_shot.py --quick      # smoke run (8 archs, 2 seeds, tiny budgets)
    .venv/bin/python experiments/few_shot.py --dataset mnist1d --gt-epochs 4 --jobs 1   # ~50 min on one core

    .venv/bin/python experiments/few_shot.py --dataset mnist1d --gt-epochs 4 --channels 32   # wider cells (~12 min)

Writes experiments/results/few_shot.json (few_shot_mnist1d.json with `--dataset mnist1d`; `_c<N>` with
`--channels N` other than 8, truth included; `_quick` with --quick) after every finished run; a rerun with the
same settings resumes.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from depth_gap import connected, kendall, train_cell, train_one  # noqa: E402
from reporting import git_commit, protocol_report, protocol_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHANNELS = 8  # the width of the recorded digits and MNIST-1D runs
METHODS = {"one-shot": ("none", 0), "random split": ("random", None), "gradient matching": ("gradient", None)}
_DATA: dict[str, Any] = {}
DATASETS = {"digits": ("digits split 0", (1, 8, 8)),
            "mnist1d": ("mnist1d_splits(0): 3500 train / 500 valid / 1000 test, as (N, 1, 40)", (1, 40))}


def load_splits(dataset: str) -> dict[str, Any]:
    """The dataset's train / valid / test splits (split seed 0) shaped (N, *input shape), loaded once per process."""
    from nas.datasets import digits_splits, mnist1d_splits

    if dataset not in _DATA:
        _DATA[dataset] = (digits_splits(0) if dataset == "digits"
                          else {k: (x.unsqueeze(1), y) for k, (x, y) in mnist1d_splits(0).items()})
    return _DATA[dataset]


def train_standalone(task: tuple[str, dict[str, str], int, int, int, int]) -> dict[str, Any]:
    """One stand-alone training of a cell with a seed: digits through depth_gap.train_one (its cached truth),
    any other dataset by the same recipe (depth_gap.train_cell)."""
    dataset, arch, cells, seed, epochs, channels = task
    if dataset == "digits":
        return train_one((arch, cells, seed, epochs, channels, 2))
    return train_cell(arch, cells, seed, epochs, channels, 2, load_splits(dataset), DATASETS[dataset][1])


def draw_archs(n: int, seed: int) -> list[dict[str, str]]:
    """`n` distinct random NB201 cells with the output connected to the input (as experiments/depth_gap.py)."""
    from nas.spaces.cell import NasBench201Space

    space, rng, chosen = NasBench201Space(), np.random.default_rng(seed), {}
    for _ in range(100 * n):  # bounded: about 3 in 4 random cells are connected
        a = space.sample(rng)
        if connected(a):
            chosen.setdefault(a.id, a.to_dict())
        if len(chosen) == n:
            break
    return list(chosen.values())


def _key(arch: Mapping[str, str]) -> str:
    return json.dumps(dict(arch), sort_keys=True)


def ground_truth(archs: Sequence[Mapping[str, str]], args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """Every (arch, seed) stand-alone training, from the cache at `path` where its settings match; the rest run."""
    training = "depth_gap.train_one" if args.dataset == "digits" else "few_shot.train_standalone"
    settings = {"gt_epochs": args.gt_epochs, "channels": args.channels, "cells_per_stage": args.cells, "stages": 2,
                "data": DATASETS[args.dataset][0], "training": f"{training}: AdamW lr 1e-2, cosine, batch 64"}
    cache = json.loads(path.read_text()) if path.is_file() else {}
    if cache.get("settings") != settings:
        cache = {"settings": settings, "records": {}}
    records: dict[str, Any] = cache["records"]
    tasks = [(args.dataset, dict(a), args.cells, s, args.gt_epochs, args.channels) for a in archs
             for s in range(args.gt_seeds) if f"{_key(a)}|{s}" not in records]
    print(f"ground truth: {len(archs)} cells x {args.gt_seeds} seeds, {len(tasks)} trainings to run", flush=True)
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        for i, rec in enumerate(pool.map(train_standalone, tasks, chunksize=1), start=1):
            records[f"{_key(rec['arch'])}|{rec['seed']}"] = rec
            if i % 10 == 0 or i == len(tasks):
                path.write_text(json.dumps(cache, indent=1) + "\n")
                print(f"  {i}/{len(tasks)} trained", flush=True)
    return cache


def run_method(task: tuple[str, int, list[dict[str, str]], dict[str, Any]]) -> dict[str, Any]:
    """One supernet method with one seed: rate every architecture (journaled in a temporary workdir)."""
    import torch

    from nas.few_shot import FewShotOptions, search_few_shot
    from nas.spaces.cell import NasBench201Space

    method, seed, archs, s = task
    torch.set_num_threads(1)
    dataset = s.get("dataset", "digits")
    data = load_splits(dataset)
    space = NasBench201Space(input_shape=DATASETS[dataset][1], channels=s["channels"], cells_per_stage=s["cells"],
                             stages=2)
    splitter, levels = METHODS[method]
    options = FewShotOptions(splitter=splitter, levels=s["levels"] if levels is None else levels, epochs=s["epochs"],
                             gm_batches=s["gm_batches"],
                             parent_fraction=None if levels == 0 else s.get("parent_fraction"))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = search_few_shot(space, data, archs, options, seed=seed, workdir=Path(tmp) / "run")
        splits = json.loads((Path(tmp) / "run" / "few_shot.json").read_text())
    by = {t.arch_id: t for t in result.trials}
    ratings = [by[space.validate(a).id].metrics["supernet_accuracy"] for a in archs]
    losses = [by[space.validate(a).id].metrics["supernet_loss"] for a in archs]
    owners = [int(by[space.validate(a).id].extra["sub_supernet"]) for a in archs]
    return {"method": method, "seed": seed, "ratings": ratings, "losses": losses, "owners": owners,
            "steps": splits["steps"],
            "splits": splits["splits"], "sub_supernets": [(x["size"], x["steps"]) for x in splits["sub_supernets"]],
            "seconds": round(time.perf_counter() - t0, 1), "train_seconds": splits["seconds"]}


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean of a - b over seeds with its 95 % t-interval and Wilcoxon's signed-rank p."""
    d = np.asarray(a) - np.asarray(b)
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    p = float(stats.wilcoxon(d).pvalue) if len(d) > 1 and np.any(d != 0) else float("nan")
    return {"mean": float(d.mean()), "ci95": [float(d.mean() - half), float(d.mean() + half)],
            "wins": int((d > 0).sum()), "ties": int((d == 0).sum()), "losses": int((d < 0).sum()), "wilcoxon_p": p}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    ap.add_argument("--archs", type=int, default=50)
    ap.add_argument("--gt-seeds", type=int, default=3)
    ap.add_argument("--gt-epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=10, help="supernet seeds per method")
    ap.add_argument("--epochs", type=int, default=48, help="total supernet epochs, all sub-supernets together")
    ap.add_argument("--levels", type=int, default=2, help="split rounds (<= 2 edges per sub-supernet)")
    ap.add_argument("--gm-batches", type=int, default=4)
    ap.add_argument("--parent-fraction", type=float, default=None,
                    help="share of the budget before the first split (default: levels + 1 equal phases)")
    ap.add_argument("--channels", type=int, default=DEFAULT_CHANNELS,
                    help="cell width, supernet and stand-alone truth alike (default 8; others write *_c<N>.json)")
    ap.add_argument("--cells", type=int, default=1, help="cells per stage (2 stages)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--arch-seed", type=int, default=0, help="draws the architectures")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--results-dir", type=Path, default=ROOT / "experiments" / "results")
    args = ap.parse_args(argv)
    if args.quick:
        args.archs, args.gt_seeds, args.gt_epochs, args.seeds, args.epochs = 8, 2, 2, 2, 6
    name = ("few_shot" if args.dataset == "digits" else f"few_shot_{args.dataset}") + ("_quick" if args.quick else "")
    late = "" if args.parent_fraction is None else f"_parent{round(100 * args.parent_fraction)}"
    if args.channels != DEFAULT_CHANNELS:  # another width is another truth: its own files, the 8-channel ones kept
        name += f"_c{args.channels}"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out, gt_path = args.results_dir / f"{name}{late}.json", args.results_dir / f"{name}_ground_truth.json"
    started, load0 = time.perf_counter(), os.getloadavg()
    archs = draw_archs(args.archs, args.arch_seed)
    truth_doc = ground_truth(archs, args, gt_path)
    recs = truth_doc["records"]
    gt = np.array([[recs[f"{_key(a)}|{s}"]["test_acc"] for s in range(args.gt_seeds)] for a in archs])
    gt_valid = np.array([[recs[f"{_key(a)}|{s}"]["valid_acc"] for s in range(args.gt_seeds)] for a in archs])
    truth = gt.mean(1)

    settings = {"archs": len(archs), "arch_seed": args.arch_seed, "epochs": args.epochs, "levels": args.levels,
                "gm_batches": args.gm_batches, "channels": args.channels, "cells": args.cells,
                "ground_truth": truth_doc["settings"] | {"seeds": args.gt_seeds}}
    if args.dataset != "digits":  # digits is the default (and the settings of its stored results)
        settings["dataset"] = args.dataset
    if args.parent_fraction is not None:  # likewise: equal phases are the default
        settings["parent_fraction"] = args.parent_fraction
    doc = json.loads(out.read_text()) if out.is_file() else {}
    runs: list[dict[str, Any]] = doc.get("runs", []) if doc.get("settings") == settings else []
    done = {(r["method"], r["seed"]) for r in runs}
    tasks = [(m, seed, archs, {**settings}) for seed in range(args.seeds) for m in METHODS if (m, seed) not in done]
    print(f"supernets: {len(METHODS)} methods x {args.seeds} seeds, {args.epochs} epochs each, {len(tasks)} to run "
          f"(load {load0[0]:.1f})", flush=True)

    def save(final: bool = False) -> None:
        doc = report(runs, settings, truth, gt, gt_valid, archs, args, started, load0, argv, final)
        out.write_text(json.dumps(doc, indent=1) + "\n")

    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        for r in pool.map(run_method, tasks, chunksize=1):
            runs.append(r)
            tau = kendall(r["ratings"], truth)[0]
            print(f"  seed {r['seed']} {r['method']}: tau {tau:+.3f}, {r['steps']} steps, {r['seconds']:.0f} s"
                  + "".join(f"; split {s['edge']} {list(map(list, s['groups']))}" for s in r["splits"][:1]), flush=True)
            save()
    save(final=True)
    print_tables(json.loads(out.read_text()))
    print(f"total {time.perf_counter() - started:.0f} s; wrote {out}")
    return 0


def owners_of(run: Mapping[str, Any], archs: Sequence[Mapping[str, str]]) -> list[int]:
    """The sub-supernet rating each architecture: recorded, or rebuilt from the run's splits (children are
    numbered in the order `train_few_shot` creates them: by parent, then by group)."""
    if "owners" in run:
        return list(run["owners"])
    subs: list[dict[str, set[str]]] = [{}]
    for level in sorted({sp["level"] for sp in run["splits"]}):
        children = []
        for k, sub in enumerate(subs):
            made = [sp for sp in run["splits"] if sp["level"] == level and sp["parent"] == k]
            children += [{**sub, made[0]["edge"]: set(g)} for g in made[0]["groups"]] if made else [sub]
        subs = children
    return [next(k for k, sub in enumerate(subs) if all(a[e] in ops for e, ops in sub.items())) for a in archs]


def concordance_by_pairs(by: Mapping[tuple[str, int], Mapping[str, Any]], method: str, seeds: Sequence[int],
                         archs: Sequence[Mapping[str, str]], truth: np.ndarray) -> dict[str, Any]:
    """Where splitting loses or gains: the mean pair concordance (sign agreement with the truth, tau-a) over
    pairs rated by one sub-supernet ("within") and by two ("across"), for the split method and for the same
    seed's one-shot supernet on the same pairs. Means over seeds."""
    out: dict[str, list[float]] = {"within": [], "within_one_shot": [], "across": [], "across_one_shot": []}
    for seed in seeds:
        owner = owners_of(by[(method, seed)], archs)
        for name, same in (("within", True), ("across", False)):
            pairs = [(i, j) for i in range(len(archs)) for j in range(i + 1, len(archs))
                     if (owner[i] == owner[j]) == same and truth[i] != truth[j]]
            for key, ratings in ((name, by[(method, seed)]["ratings"]),
                                 (f"{name}_one_shot", by[("one-shot", seed)]["ratings"])):
                out[key].append(float(np.mean([np.sign(ratings[i] - ratings[j]) * np.sign(truth[i] - truth[j])
                                               for i, j in pairs])) if pairs else float("nan"))
    return {k: float(np.nanmean(v)) for k, v in out.items()} | {"per_seed": out}


def report(runs: list[dict[str, Any]], settings: dict[str, Any], truth: np.ndarray, gt: np.ndarray,
           gt_valid: np.ndarray, archs: list[dict[str, str]], args: argparse.Namespace, started: float,
           load0: tuple[float, ...], argv: Sequence[str] | None, final: bool = True) -> dict[str, Any]:
    """The JSON document: settings, ground truth, every run, and (when `final`) the analysis over the seeds all
    methods finished."""
    seeds = [] if not final else sorted({r["seed"] for r in runs if all((m, r["seed"]) in {(x["method"], x["seed"]) for x in runs}
                                                     for m in METHODS)})
    by = {(r["method"], r["seed"]): r for r in runs}
    taus = {m: [kendall(by[(m, s)]["ratings"], truth)[0] for s in seeds] for m in METHODS}
    taus_loss = {m: [kendall([-v for v in by[(m, s)]["losses"]], truth)[0] for s in seeds] for m in METHODS}
    analysis: dict[str, Any] = {"seeds": seeds}
    if seeds:
        rep = protocol_report(taus, baseline="random split", label="Kendall tau vs stand-alone truth",
                              costs={m: [by[(m, s)]["seconds"] for s in seeds] for m in METHODS},
                              budgets={m: float(by[(m, seeds[0])]["steps"]) for m in METHODS})
        gm = taus["gradient matching"]
        analysis |= {"kendall_tau": taus, "kendall_tau_negative_loss": taus_loss, "protocol": rep.to_dict(),
                     "paired": {"gm - one-shot": paired(gm, taus["one-shot"]),
                                "gm - random split": paired(gm, taus["random split"])},
                     "paired_negative_loss": {
                         "gm - one-shot": paired(taus_loss["gradient matching"], taus_loss["one-shot"]),
                         "gm - random split": paired(taus_loss["gradient matching"], taus_loss["random split"])}}
        analysis["pair_concordance"] = {m: concordance_by_pairs(by, m, seeds, archs, truth)
                                        for m in ("random split", "gradient matching")}
        analysis["target_gm_ge_both"] = bool(np.mean(gm) >= np.mean(taus["one-shot"])
                                             and np.mean(gm) >= np.mean(taus["random split"]))
    pairs = [(i, j) for i in range(gt.shape[1]) for j in range(i + 1, gt.shape[1])]
    return {"script": "experiments/few_shot.py",
            "command": "python experiments/few_shot.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "git_commit": git_commit(),
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpu_count": os.cpu_count(), "load_average_start": load0, "load_average_end": os.getloadavg()},
            "dataset": settings.get("dataset", "digits"), "settings": settings,
            "methods": {m: {"splitter": s, "levels": settings["levels"] if lv is None else lv}
                        for m, (s, lv) in METHODS.items()},
            "ground_truth": {"archs": archs, "test_acc_mean": truth.tolist(), "test_acc": gt.tolist(),
                             "valid_acc": gt_valid.tolist(),
                             "seed_vs_seed_tau": [kendall(gt[:, i], gt[:, j])[0] for i, j in pairs],
                             "tau_valid_vs_test_mean": kendall(gt_valid.mean(1), truth)[0]},
            "analysis": analysis, "runs": runs, "total_seconds": round(time.perf_counter() - started, 1)}


def print_tables(doc: Mapping[str, Any]) -> None:
    from reporting import ProtocolReport, MethodReport

    a = doc["analysis"]
    if not a.get("seeds"):
        print("no seed finished every method yet")
        return
    p = a["protocol"]
    rep = ProtocolReport(p["label"], p["direction"], p["baseline"], p["baseline_mean"],
                         [MethodReport(**m) for m in p["methods"]], p["warnings"])
    print(f"\nKendall tau (supernet valid accuracy vs mean stand-alone test accuracy over {len(doc['ground_truth']['test_acc'][0])} "
          f"seeds), {doc.get('dataset', 'digits')}, {len(doc['ground_truth']['archs'])} architectures, "
          f"{len(a['seeds'])} supernet seeds; RI is over random splitting\n")
    print(protocol_table(rep))
    print("\n| paired difference over seeds | mean [95 % CI] | wins / ties / losses | Wilcoxon p |\n|---|---|---|---|")
    for label, kind in (("", "paired"), (" (rating: -loss)", "paired_negative_loss")):
        for name, d in a[kind].items():
            print(f"| {name}{label} | {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] | "
                  f"{d['wins']} / {d['ties']} / {d['losses']} | {d['wilcoxon_p']:.3f} |")
    if "pair_concordance" in a:
        print("\n| pair concordance (tau-a), mean over seeds | split method | one-shot, same pairs |\n|---|---|---|")
        for m, c in a["pair_concordance"].items():
            for where in ("within", "across"):
                pairs = "rated by one sub-supernet" if where == "within" else "rated by two sub-supernets"
                print(f"| {m}: pairs {pairs} | {c[where]:+.3f} | {c[where + '_one_shot']:+.3f} |")
    g = doc["ground_truth"]
    print(f"\nnoise ceiling: stand-alone seed vs seed tau {np.mean(g['seed_vs_seed_tau']):.3f} (truth spans "
          f"{100 * min(g['test_acc_mean']):.1f}-{100 * max(g['test_acc_mean']):.1f} % test accuracy); "
          f"target (gm >= one-shot and >= random split, means): {'holds' if a['target_gm_ge_both'] else 'does NOT hold'}")


if __name__ == "__main__":
    sys.exit(main())
