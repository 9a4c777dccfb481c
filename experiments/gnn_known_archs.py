"""How far above the 2-layer GCN do well-known designs in the GNN space get, under the search's own evaluator?

Issue 25 part 3 asks a search's pick to beat the GCN by >= 1 point of mean test accuracy on Cora and CiteSeer.
This script measures the ceiling a search can reach by picking a published design the space holds, with no
selection noise: each named architecture below is built by `GNNSpace(ops=OPS + EXTRA_OPS, dropouts=...)` (the
`autognn.py --space appnp-dropout` space) and trained by `NodeClassificationEvaluator` under seeds 0..S-1,
with the search's recipe and three variants a user would try:

- `search`: the recipe every search in autognn.py uses (Adam lr 0.01, weight decay 5e-4 on every parameter,
  at most 200 epochs, early stop after 20 epochs without a new lowest validation loss);
- `patience100`: early stop after 100 epochs (GAT's and APPNP's papers), at most 300;
- `lr0.005`: `patience100` with GAT's learning rate 0.005;
- `wd5e-3`: APPNP's weight decay 5e-3, here on every parameter (APPNP applies it to the first layer only).

Architectures: `gcn` (Kipf & Welling: gcn 16 > out:gcn, dropout 0.5), `appnp` (mlp 64 > out:appnp, K 10,
alpha 0.1, dropout 0.5), `appnp-d0.8` (the same at dropout 0.8), `gat` (gat 8 heads x 8 > out:gat 1 head,
elu, dropout 0.6 on inputs and attention). Reported: mean valid and test accuracy over the seeds, and test
minus the GCN under the search recipe, paired by seed. Trainings are cached as JSON lines
(results/gnn_known_archs_cache.jsonl): a rerun resumes.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/gnn_known_archs.py                    # cora + citeseer, seeds 0-2
    OMP_NUM_THREADS=1 .venv/bin/python experiments/gnn_known_archs.py --datasets citeseer # one data set per process
    .venv/bin/python experiments/gnn_known_archs.py --report                             # the table from the cache
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from autognn import make_space, mean_ci  # noqa: E402  (experiments/ is on sys.path)
from gnn_planetoid import GCN  # noqa: E402
from gnn_table_search import paired  # noqa: E402
from reporting import append_cache, git_commit, read_cache  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
DATASETS = ("cora", "citeseer")
SPACE = "appnp-dropout"  # autognn.py's space holding APPNP, with the dropout rate searched


def _layer(op: str, hidden: int, activation: str = "relu", **extra: Any) -> dict[str, Any]:
    return {"op": op, "hidden": hidden, "activation": activation, "residual": False, **extra}


ARCHS: dict[str, dict[str, Any]] = {
    "gcn": {**GCN, "dropout": 0.5},
    "appnp": {"layers": 1, "hidden_layers": [_layer("mlp", 64)], "output": {"op": "appnp"}, "dropout": 0.5},
    "appnp-d0.8": {"layers": 1, "hidden_layers": [_layer("mlp", 64)], "output": {"op": "appnp"}, "dropout": 0.8},
    "gat": {"layers": 1, "hidden_layers": [_layer("gat", 64, "elu", attention="gat", heads=8)],
            "output": {"op": "gat", "attention": "gat", "heads": 1}, "dropout": 0.6},
}
RECIPES: dict[str, dict[str, Any]] = {
    "search": {"lr": 0.01, "weight_decay": 5e-4, "patience": 20, "epochs": 200},
    "patience100": {"lr": 0.01, "weight_decay": 5e-4, "patience": 100, "epochs": 300},
    "lr0.005": {"lr": 0.005, "weight_decay": 5e-4, "patience": 100, "epochs": 300},
    "wd5e-3": {"lr": 0.01, "weight_decay": 5e-3, "patience": 20, "epochs": 200},
}


def train_all(dataset: str, data: Any, seeds: Sequence[int], cache: Path,
              archs: Mapping[str, Mapping[str, Any]] = ARCHS, recipes: Mapping[str, Mapping[str, Any]] = RECIPES,
              log: Any = print) -> None:
    """Train every (architecture, recipe, seed) of `dataset` not yet in `cache`, appending each as it finishes."""
    from nas.spaces.gnn import NodeClassificationEvaluator

    done = {(r["dataset"], r["arch"], r["recipe"], r["seed"]) for r in read_cache(cache)}
    space = make_space(data, SPACE)
    for arch_name, arch in archs.items():
        for recipe_name, recipe in recipes.items():
            for seed in seeds:
                if (dataset, arch_name, recipe_name, seed) in done:
                    continue
                metrics = NodeClassificationEvaluator(space, data, seed=seed, **recipe)(arch)
                append_cache(cache, {"dataset": dataset, "arch": arch_name, "recipe": recipe_name, "seed": seed,
                                     **metrics})
                log(f"{dataset} {arch_name:10s} {recipe_name:11s} seed {seed}: valid {metrics['valid_acc']:.3f} "
                    f"test {metrics['test_acc']:.3f} ({metrics['train_seconds']:.0f} s)")


def summarize(records: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    """Per data set, architecture and recipe: valid / test over the seeds every row has, and test - GCN (search
    recipe) paired by seed."""
    by = {(r["dataset"], r["arch"], r["recipe"], r["seed"]): r for r in records}
    out: dict[str, Any] = {}
    for dataset in sorted({r["dataset"] for r in records}):
        base = {s: by[(dataset, "gcn", "search", s)]["test_acc"] for s in seeds if (dataset, "gcn", "search", s) in by}
        rows = []
        for arch in ARCHS:
            for recipe in RECIPES:
                got = [by[(dataset, arch, recipe, s)] for s in seeds if (dataset, arch, recipe, s) in by]
                if not got:
                    continue
                both = [r for r in got if r["seed"] in base]
                rows.append({"arch": arch, "recipe": recipe, "seeds": [r["seed"] for r in got],
                             "valid_acc": mean_ci([r["valid_acc"] for r in got]),
                             "test_acc": mean_ci([r["test_acc"] for r in got]),
                             "test_minus_gcn": paired([r["test_acc"] for r in both], [base[r["seed"]] for r in both])
                             if both else None,
                             "seconds": float(np.mean([r["train_seconds"] for r in got]))})
        picks = {}
        for recipe in RECIPES:  # a search that trained exactly these designs once per seed, picking on validation
            per_seed = []
            for s in seeds:
                got = [by[(dataset, a, recipe, s)] for a in ARCHS if (dataset, a, recipe, s) in by]
                if len(got) == len(ARCHS) and s in base:
                    best = max(got, key=lambda r: (r["valid_acc"], -r["valid_loss"]))
                    per_seed.append({"seed": s, "arch": best["arch"], "test_acc": best["test_acc"],
                                     "best_test_acc": max(r["test_acc"] for r in got), "gcn_test_acc": base[s]})
            if per_seed:
                gcn = [p["gcn_test_acc"] for p in per_seed]
                picks[recipe] = {"per_seed": per_seed,
                                 "test_minus_gcn": paired([p["test_acc"] for p in per_seed], gcn),
                                 "best_test_minus_gcn": paired([p["best_test_acc"] for p in per_seed], gcn)}
        out[dataset] = {"rows": rows, "validation_picks": picks}
    return out


def _points(d: Mapping[str, float]) -> str:
    return f"{100 * d['mean']:+.2f} [{100 * d['ci95_low']:+.2f}, {100 * d['ci95_high']:+.2f}]"


def print_table(summary: Mapping[str, Any]) -> None:
    for dataset, result in summary.items():
        rows = result["rows"]
        print(f"\n{dataset}: test - GCN is paired by seed against the GCN under the search recipe")
        print(f"{'architecture':12s} {'recipe':11s} {'n':>2s} {'valid %':>8s} {'test %':>8s} {'test - GCN [95 % CI]':>26s}")
        for r in rows:
            diff = "" if r["test_minus_gcn"] is None else _points(r["test_minus_gcn"])
            print(f"{r['arch']:12s} {r['recipe']:11s} {len(r['seeds']):2d} {100 * r['valid_acc']['mean']:8.2f} "
                  f"{100 * r['test_acc']['mean']:8.2f} {diff:>26s}")
        print(f"\n{dataset}: per seed, the design with the highest validation accuracy (what a search that tried "
              "exactly these designs picks), test - GCN")
        for recipe, p in result["validation_picks"].items():
            chosen = ", ".join(x["arch"] for x in p["per_seed"])
            print(f"  {recipe:11s} picked {_points(p['test_minus_gcn']):>26s}   best on test "
                  f"{_points(p['best_test_minus_gcn']):>26s}   ({chosen})")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1")
    ap.add_argument("--report", action="store_true", help="only the table from the cached trainings")
    ap.add_argument("--cache", type=Path, default=RESULTS / "gnn_known_archs_cache.jsonl")
    ap.add_argument("--out", type=Path, default=RESULTS / "gnn_known_archs.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    if not args.report:
        from nas.datasets import planetoid

        for dataset in args.datasets:
            train_all(dataset, planetoid(dataset), seeds, args.cache, log=lambda m: print(m, flush=True))
    summary = summarize(read_cache(args.cache), seeds)
    print_table(summary)
    doc = {"script": "experiments/gnn_known_archs.py",
           "command": "python experiments/gnn_known_archs.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "git_commit": git_commit(),
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                       "torch_threads": torch.get_num_threads(), "load_average": list(os.getloadavg())},
           "settings": {"archs": ARCHS, "recipes": RECIPES, "seeds": seeds, "space": SPACE},
           "results": summary, "total_seconds": time.perf_counter() - started}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return doc


if __name__ == "__main__":
    main()
