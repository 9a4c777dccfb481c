"""GNN space on Cora and CiteSeer: the best of 20 random architectures against a 2-layer GCN, same recipe.

Per dataset and seed s: `nas.search(space, evaluate, {"valid_acc": "max"}, strategy="random", budget=20,
seed=s)` over `GNNSpace` (default options), where `evaluate` = `NodeClassificationEvaluator(seed=s)`:
Adam lr 0.01, weight decay 5e-4, dropout 0.5, at most 200 epochs, early stopping once validation loss
has not improved for 20 epochs, metrics at the epoch of best validation accuracy (Planetoid public
split, row-normalised features). The search's pick is chosen on validation accuracy only; its test
accuracy is reported beside the 2-layer GCN (hidden 16, ReLU; Kipf & Welling) trained by the same
evaluator in the same run.

Acceptance checks, per dataset, on the mean over seeds:
1. sampled architectures train well above chance: the median test accuracy of all sampled architectures
   is at least twice the majority-class rate of the test nodes;
2. the pick's test accuracy is at least the GCN baseline's minus 1 point.

Evaluation protocol (experiments/reporting.py): per seed, the random-sampling average (mean test accuracy of
that seed's sampled architectures), random search's pick and the GCN baseline, as relative improvement over
the random average with 95 % intervals and search cost. The JSON is written after every seed; a rerun with
the same settings resumes from the finished seeds (`--fresh` starts over).

    .venv/bin/python experiments/gnn_planetoid.py                     # cora + citeseer, seeds 0..9 (resumes)
    .venv/bin/python experiments/gnn_planetoid.py --quick             # smoke run: cora, 1 seed, budget 3
    .venv/bin/python experiments/gnn_planetoid.py --recount-flops     # flops_dense of the recorded runs again, no training
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch_geometric

import nas
from nas.datasets import planetoid
from nas.spaces.gnn import GNNSpace, NodeClassificationEvaluator
from flops_recount import Recount, add_option, read_json, write_json  # noqa: E402  (experiments/ is on sys.path)
from reporting import git_commit, protocol_report, protocol_table  # noqa: E402  (experiments/ is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("cora", "citeseer")
PUBLISHED_GCN = {"cora": 0.815, "citeseer": 0.703}  # Kipf & Welling (ICLR 2017), public split
GCN = {"layers": 1, "hidden_layers": [{"op": "gcn", "hidden": 16, "activation": "relu", "residual": False}],
       "output": {"op": "gcn"}}
TOLERANCE = 0.01  # the pick may trail the GCN baseline by at most 1 point of test accuracy
RESUME_KEYS = ("budget", "epochs", "strategy", "objective", "space", "recipe", "baseline", "features")  # same runs
CHANCE_FACTOR = 2.0  # "well above chance": median sampled test accuracy >= 2 x majority-class rate
FLOPS_DENSE = ("nas.counts on the full graph: matmuls plus the scatter/index_add aggregations of message passing "
               "(counted since session 22; earlier runs: dense matmuls only)")


def describe(arch: Mapping[str, Any]) -> str:
    """A one-line summary: 'gat(v2,4h,64,elu,res) > gcn(16,relu) > out:sage' (then ', dropout 0.8' if searched)."""
    parts = []
    for layer in arch["hidden_layers"]:
        opts = []
        if layer["op"] == "gat":
            opts += [layer["attention"], f"{layer['heads']}h"]
        if layer["op"] != "skip":
            opts += [str(layer["hidden"]), layer["activation"]] + (["res"] if layer["residual"] else [])
        parts.append(f"{layer['op']}({','.join(opts)})" if opts else layer["op"])
    out = arch["output"]
    head = f"{out['op']}({out['attention']},{out['heads']}h)" if out["op"] == "gat" else out["op"]
    return " > ".join(parts + [f"out:{head}"]) + (f", dropout {arch['dropout']}" if "dropout" in arch else "")


def run_seed(space: GNNSpace, data: Any, seed: int, budget: int, epochs: int) -> dict[str, Any]:
    evaluate = NodeClassificationEvaluator(space, data, epochs=epochs, seed=seed)
    t0 = time.perf_counter()
    result = nas.search(space, evaluate, {"valid_acc": "max"}, strategy="random", budget=budget, seed=seed)
    search_s = time.perf_counter() - t0
    best = result.best("valid_acc")
    assert best is not None
    t0 = time.perf_counter()
    gcn = evaluate(GCN)
    gcn_s = time.perf_counter() - t0
    trials = [{"arch": t.architecture.to_dict(), "id": t.arch_id, "summary": describe(t.architecture),
               **{k: t.metrics[k] for k in ("valid_acc", "test_acc", "train_acc", "epochs", "best_epoch",
                                              "train_seconds", "params")}}
              for t in result.completed]
    counts = {name: space.count(arch) for name, arch in (("pick", best.architecture), ("gcn", GCN))}
    return {"seed": seed, "search_seconds": search_s, "gcn_seconds": gcn_s, "trials": trials,
            "pick": {"id": best.arch_id, "arch": best.architecture.to_dict(), "summary": describe(best.architecture),
                     **dict(best.metrics), "flops_dense": counts["pick"]["flops"]},
            "gcn": {**gcn, "flops_dense": counts["gcn"]["flops"]}}


def summarize(values: Sequence[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def dataset_summary(name: str, data: Any, runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    test_y = data.y[data.test_mask]
    majority = float(torch.bincount(test_y).max()) / len(test_y)
    sampled = [t["test_acc"] for r in runs for t in r["trials"]]
    above = sum(a >= CHANCE_FACTOR * majority for a in sampled) / len(sampled)
    pick = summarize([r["pick"]["test_acc"] for r in runs])
    gcn = summarize([r["gcn"]["test_acc"] for r in runs])
    return {
        "num_classes": int(data.y.max()) + 1, "majority_class_test_rate": majority,
        "sampled_test_acc": {"median": statistics.median(sampled), **summarize(sampled),
                             "fraction_above_2x_majority": above},
        "pick_valid_acc": summarize([r["pick"]["valid_acc"] for r in runs]),
        "pick_test_acc": pick,
        "gcn_valid_acc": summarize([r["gcn"]["valid_acc"] for r in runs]),
        "gcn_test_acc": gcn,
        "pick_minus_gcn_test": summarize([r["pick"]["test_acc"] - r["gcn"]["test_acc"] for r in runs]),
        "published_gcn_test_acc": PUBLISHED_GCN[name],
        "criteria": {
            "sampled_well_above_chance": statistics.median(sampled) >= CHANCE_FACTOR * majority,
            "pick_within_1_point_of_gcn": pick["mean"] >= gcn["mean"] - TOLERANCE,
        },
    }


def protocol(runs: Sequence[Mapping[str, Any]], name: str) -> Any:
    """Yang et al.'s protocol per seed: the random-sampling average (mean test accuracy of the seed's sampled
    architectures, same recipe), random search's pick after `budget` trainings, and the GCN baseline."""
    values = {"random": [statistics.fmean(t["test_acc"] for t in r["trials"]) for r in runs],
              "random search pick": [r["pick"]["test_acc"] for r in runs],
              "gcn": [r["gcn"]["test_acc"] for r in runs]}
    costs = {"random search pick": [r["search_seconds"] for r in runs], "gcn": [r["gcn_seconds"] for r in runs]}
    return protocol_report(values, direction="max", baseline="random", costs=costs, label=f"gnn_planetoid {name}")


def print_report(results: Mapping[str, Any]) -> None:
    for name, res in results.items():
        print(f"\n{name}: per seed (test accuracy in %, the pick chosen on validation accuracy only)")
        print(f"{'seed':>4}  {'pick valid':>10}  {'pick test':>9}  {'GCN valid':>9}  {'GCN test':>8}  "
              f"{'search s':>8}  pick")
        for r in res["runs"]:
            print(f"{r['seed']:>4}  {100 * r['pick']['valid_acc']:>10.1f}  {100 * r['pick']['test_acc']:>9.1f}  "
                  f"{100 * r['gcn']['valid_acc']:>9.1f}  {100 * r['gcn']['test_acc']:>8.1f}  "
                  f"{r['search_seconds']:>8.0f}  {r['pick']['summary']}")
    print("\nsummary (mean ± std over seeds, test accuracy in %)")
    print(f"{'dataset':<9} {'pick':>12} {'GCN (ours)':>12} {'GCN (paper)':>11} {'pick-GCN':>9} "
          f"{'sampled median':>14} {'majority':>8}  criteria")
    for name, res in results.items():
        s = res["summary"]
        ok = ", ".join(f"{k}={'PASS' if v else 'FAIL'}" for k, v in s["criteria"].items())
        print(f"{name:<9} {100 * s['pick_test_acc']['mean']:>6.1f} ± {100 * s['pick_test_acc']['std']:<3.1f} "
              f"{100 * s['gcn_test_acc']['mean']:>6.1f} ± {100 * s['gcn_test_acc']['std']:<3.1f} "
              f"{100 * s['published_gcn_test_acc']:>11.1f} {100 * s['pick_minus_gcn_test']['mean']:>+9.1f} "
              f"{100 * s['sampled_test_acc']['median']:>14.1f} {100 * s['majority_class_test_rate']:>8.1f}  {ok}")


def recount_flops(path: Path, argv: Sequence[str] | None) -> dict[str, Any]:
    """`--recount-flops`: every recorded pick and GCN baseline rebuilt untrained on its dataset's space, its
    `flops_dense` counted again as `run_seed` counts it; the results file is rewritten."""
    doc = read_json(path)
    doc["flops_recount"] = {}
    for name, res in doc["results"].items():
        data = planetoid(name)
        space = GNNSpace(data.num_features, int(data.y.max()) + 1, example_graph=data)
        recount = Recount("gnn_planetoid.py", space.count, argv)
        print(f"\n{name}: FLOPs of one forward pass on the full graph (millions), recorded -> now")
        print(f"{'seed':>4}  {'pick':>21}  {'GCN':>17}  pick")
        for r in res["runs"]:
            old = r["pick"]["flops_dense"], r["gcn"]["flops_dense"]
            r["pick"]["flops_dense"] = recount.flops(r["pick"]["arch"], old[0], r["pick"]["params"])
            r["gcn"]["flops_dense"] = recount.flops(doc["settings"]["baseline"], old[1], r["gcn"]["params"])
            print(f"{r['seed']:>4}  {old[0] / 1e6:>9.1f} -> {r['pick']['flops_dense'] / 1e6:>8.1f}  "
                  f"{old[1] / 1e6:>6.1f} -> {r['gcn']['flops_dense'] / 1e6:>6.1f}  {r['pick']['summary']}")
        print(recount.describe())
        doc["flops_recount"][name] = recount.summary()
    doc["settings"]["flops_dense"] = FLOPS_DENSE
    write_json(path, doc)
    return doc


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    ap.add_argument("--fresh", action="store_true", help="ignore the finished seeds in --out (default: resume)")
    ap.add_argument("--budget", type=int, default=20, help="architectures per search (default 20)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default experiments/results/gnn_planetoid.json, _quick with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke run: cora, seed 0, budget 3")
    add_option(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.budget = ["cora"], [0], min(args.budget, 3)
    if args.out is None:
        args.out = ROOT / "experiments" / "results" / f"gnn_planetoid{'_quick' if args.quick else ''}.json"
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.recount_flops:
        return recount_flops(args.out, argv)
    started = time.perf_counter()
    doc: dict[str, Any] = {
        "script": "experiments/gnn_planetoid.py",
        "command": "python experiments/gnn_planetoid.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_at_start": list(os.getloadavg())},
        "versions": {"torch": torch.__version__, "torch_geometric": torch_geometric.__version__},
        "git_commit": git_commit(),
        "settings": {"datasets": args.datasets, "seeds": args.seeds, "budget": args.budget, "epochs": args.epochs,
                     "strategy": "random", "objective": {"valid_acc": "max"}, "space": "GNNSpace defaults",
                     "recipe": "Adam lr 0.01, weight decay 5e-4 (all parameters), dropout 0.5 before every layer "
                               "(also GAT attention dropout), full batch, early stop after 20 epochs without a "
                               "new lowest validation loss, metrics at the best-validation-accuracy epoch",
                     "baseline": GCN, "features": "row-normalised (NormalizeFeatures)",
                     "flops_dense": FLOPS_DENSE},
        "results": {},
    }
    previous = json.loads(args.out.read_text()) if args.out.exists() and not args.fresh else {}
    same = {k: previous.get("settings", {}).get(k) for k in RESUME_KEYS} == {k: doc["settings"][k] for k in RESUME_KEYS}
    for name in args.datasets:
        data = planetoid(name)
        space = GNNSpace(data.num_features, int(data.y.max()) + 1, example_graph=data)
        done = {r["seed"]: r for r in previous.get("results", {}).get(name, {}).get("runs", [])} if same else {}
        runs = [done[s] for s in args.seeds if s in done]
        if runs:
            print(f"{name}: resuming, seeds {[r['seed'] for r in runs]} already in {args.out}", flush=True)
        for seed in args.seeds:
            if seed in done:
                continue
            run = run_seed(space, data, seed, args.budget, args.epochs)
            runs.append(run)
            print(f"{name} seed {seed}: pick {100 * run['pick']['test_acc']:.1f} % test "
                  f"(valid {100 * run['pick']['valid_acc']:.1f}) {run['pick']['summary']}; GCN "
                  f"{100 * run['gcn']['test_acc']:.1f} % test; search {run['search_seconds']:.0f} s", flush=True)
            runs.sort(key=lambda r: r["seed"])
            doc["results"][name] = {"space_size": space.size(), "runs": runs}
            args.out.parent.mkdir(parents=True, exist_ok=True)  # after every seed: a cut-off run resumes
            args.out.write_text(json.dumps({**doc, "results": {**previous.get("results", {}), **doc["results"]}},
                                           indent=1) + "\n")
        doc["results"][name] = {"space_size": space.size(), "runs": runs, "summary": dataset_summary(name, data, runs)}
        report = protocol(runs, name)
        doc["results"][name]["protocol"] = report.to_dict()
        doc["results"][name]["protocol_table"] = protocol_table(report)
    print_report(doc["results"])
    for name, res in doc["results"].items():
        print(f"\n{name}: test accuracy, RI over the random-sampling average (%):\n{res['protocol_table']}")
    doc["all_passed"] = all(all(r["summary"]["criteria"].values()) for r in doc["results"].values())
    doc["total_seconds"] = time.perf_counter() - started
    print(f"\nall criteria passed: {doc['all_passed']}; total {doc['total_seconds']:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return doc


if __name__ == "__main__":
    main()
