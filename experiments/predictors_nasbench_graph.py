"""Surrogate predictors on NAS-Bench-Graph (cora, citeseer, pubmed), side by side with two baselines.

For every dataset, seed (10) and training size N in {10, 20, 50, 100, 200, 500}: N architectures are
drawn from the table, each predictor is fitted on their valid_acc, and Kendall tau, Spearman rho,
MAE and the precision of the predicted top 5 % are measured on 1,000 held-out architectures (see
`nas.predictors.harness`: one per isomorphism class by `space.canonical_key`, and no class of the test
set is ever trained on). Baselines computed here: `params_m` as the score, and scikit-learn's
`RandomForestRegressor(200 trees)` on the plain one-hot encoding with raw targets. `average` is the
mean prediction of `gcn` and `wl-gp` (what `AveragePredictor(members=["gcn", "wl-gp"])` predicts).

Pretraining (FBNetV3): `mlp-pretrained` and `gcn-pretrained` pretrain on `params_m` of 1,000 sampled
architectures (a cheap, accuracy-free proxy) before fine-tuning; compare them with `mlp-ensemble`
and `gcn` at the same N. Pretraining is done once per seed and shared across N (`pretrain_cache`).

`--transfer` runs only a second pretraining study, with a proxy that does correlate with accuracy:
each dataset's predictors pretrain on another table's valid_acc (cora <- citeseer, citeseer <- cora,
pubmed <- cora), as if a related, cheaper task had been measured, at N in {10, 20, 50}, 10 seeds.

Cost (a 2-core machine shared by several jobs): the neural ensembles run with fewer members than the
predictors' defaults (MLPs 3 members and 200 epochs, the GCN 2 members), the pretrained GCN (1 member) pretrains for 50 epochs and fine-tunes for
100 (the plain GCN trains for 200), and the scikit-learn GP fits without optimizer restarts. The same options hold for every
dataset (`OPTIONS`; nothing is tuned per dataset).

Each dataset writes `results/predictors_nasbench_graph_<dataset>.json` (every record) and `.png`; the
run then merges whatever per-dataset files exist into `results/predictors_nasbench_graph.json` (summary,
best predictor, acceptance), so the three datasets can run as three processes:

    .venv/bin/python experiments/predictors_nasbench_graph.py                      # all three datasets
    .venv/bin/python experiments/predictors_nasbench_graph.py --datasets pubmed    # one, then merge
    .venv/bin/python experiments/predictors_nasbench_graph.py --merge              # only merge
    .venv/bin/python experiments/predictors_nasbench_graph.py --resume             # finish the missing seeds
    .venv/bin/python experiments/predictors_nasbench_graph.py --quick    # cora, 2 seeds, N in {20, 100}
    .venv/bin/python experiments/predictors_nasbench_graph.py --transfer # pretraining on another table
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread: a shared machine
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json
import platform
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nas.predictors import make_predictor
from nas.predictors.harness import SIZES, Record, evaluate, format_table, plot, to_json
from nas.spaces import Architecture
from nas.tabular import TabularBenchmark, nas_bench_graph

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from reporting import git_commit  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
DATASETS = ("cora", "citeseer", "pubmed")
PREDICTORS = ("rf", "gbm", "gp", "mlp-ensemble", "mlp-pretrained", "gcn", "gcn-pretrained", "wl-gp")
# the same options on every dataset; cheaper than the predictors' defaults (see the docstring)
OPTIONS: dict[str, dict] = {
    "gp": {"restarts": 0},
    "mlp-ensemble": {"members": 3, "epochs": 200},
    "mlp-pretrained": {"members": 3, "epochs": 200, "pretrain_epochs": 100},
    "gcn": {"members": 2},
    "gcn-pretrained": {"members": 1, "pretrain_epochs": 50, "epochs": 100},
}
AVERAGES = {"average": ("gcn", "wl-gp")}
BASELINES = ("params_m", "rf-onehot-200")
TARGET_GAIN = 0.05  # tau over the forest at N = 100
TRANSFER_FROM = {"cora": "citeseer", "citeseer": "cora", "pubmed": "cora"}
TRANSFER_SIZES = (10, 20, 50)


def provenance(argv: Sequence[str] | None) -> dict:
    """Command, date, commit, machine and load: where a figure came from."""
    import torch

    return {"command": " ".join(["experiments/" + Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_commit": git_commit(),
            "python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cpus": os.cpu_count(), "load_average": list(os.getloadavg()), "torch_threads": torch.get_num_threads()}


class ColumnScore:
    """Baseline: a table column as the prediction (fit does nothing)."""

    def __init__(self, bench: TabularBenchmark, column: str) -> None:
        self.bench, self.column = bench, column

    def fit(self, archs: Sequence[Architecture], y: Sequence[float]) -> "ColumnScore":
        return self

    def predict(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        v = np.array([self.bench(a)[self.column] for a in archs])
        return v, np.zeros(len(v))


class PlainForest:
    """Baseline: sklearn's RandomForestRegressor(200 trees) on the one-hot encoding, raw targets."""

    def __init__(self, bench: TabularBenchmark, seed: int) -> None:
        self.space, self.seed = bench.space, seed

    def fit(self, archs: Sequence[Architecture], y: Sequence[float]) -> "PlainForest":
        from sklearn.ensemble import RandomForestRegressor

        x = np.array([self.space.to_onehot(a) for a in archs])
        self.model = RandomForestRegressor(n_estimators=200, random_state=self.seed, n_jobs=1).fit(x, y)
        return self

    def predict(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        p = self.model.predict(np.array([self.space.to_onehot(a) for a in archs]))
        return p, np.zeros(len(p))


def column_proxy(bench: TabularBenchmark, column: str = "params_m"):
    """arch -> a column of `bench` (0 for the 9 all-skip architectures the table omits)."""

    def proxy(arch: Architecture) -> float:
        try:
            return bench(arch)[column]
        except LookupError:
            return 0.0

    return proxy


def factories(bench: TabularBenchmark, names: Sequence[str], baselines: bool = True, proxy=None) -> dict:
    space = bench.space
    proxy = proxy or column_proxy(bench)
    out: dict = {}
    if baselines:
        out = {"params_m": lambda seed: ColumnScore(bench, "params_m"), "rf-onehot-200": lambda seed: PlainForest(bench, seed)}
    for name in names:
        opts = dict(OPTIONS.get(name, {}))
        if name.endswith("-pretrained"):
            opts.update(proxy=proxy, pretrain_cache={})  # one cache per predictor: pretrained once per seed
        out[name] = lambda seed, name=name, opts=opts: make_predictor(name, space, seed, **opts)
    return out


def table_data(bench: TabularBenchmark) -> tuple[list[Architecture], np.ndarray, list[str]]:
    """Every row of the table as (architecture, valid_acc, isomorphism class key)."""
    space = bench.space
    archs = [Architecture(dict(zip(space.fields, key))) for key in bench.rows]
    assert all(bench.key(a) == k for a, k in zip(archs, bench.rows))
    y = np.array([row["valid_acc"] for row in bench.rows.values()])
    return archs, y, [space.canonical_key(a) for a in archs]


def acceptance(summary: dict, best: str) -> dict:
    """Does `best` beat the forest at every N >= 50, and by how much at N = 100? (summary keyed by str(N))"""
    forest = summary["rf-onehot-200"]
    beats = {int(n): summary[best][n]["kendall_tau_mean"] - forest[n]["kendall_tau_mean"] for n in forest if int(n) >= 50}
    return {"best": best, "tau_gain_over_forest": beats, "beats_forest_at_every_N>=50": all(v > 0 for v in beats.values()),
            "gain_at_100": beats.get(100), "target_gain_at_100_met": (beats.get(100) or -1) >= TARGET_GAIN}


def transfer(datasets: Sequence[str], seeds: Sequence[int], argv: Sequence[str] | None) -> int:
    """Pretraining on another table's valid_acc (a proxy correlated with the target) against no pretraining."""
    from scipy.stats import kendalltau

    t_start = time.perf_counter()
    report: dict = {"meta": {**provenance(argv), "sizes": list(TRANSFER_SIZES), "seeds": list(seeds),
                             "source": TRANSFER_FROM, "options": OPTIONS}, "datasets": {}}
    for ds in datasets:
        bench, source = nas_bench_graph(ds), nas_bench_graph(TRANSFER_FROM[ds])
        archs, y, groups = table_data(bench)
        proxy_tau = float(kendalltau([source(a)["valid_acc"] for a in archs], y)[0])
        names = ("mlp-ensemble", "mlp-pretrained", "gcn", "gcn-pretrained")
        recs = evaluate(factories(bench, names, baselines=False, proxy=column_proxy(source, "valid_acc")), archs, y,
                        TRANSFER_SIZES, seeds, n_test=1000, groups=groups)
        print(f"\n=== {ds}: pretraining on {TRANSFER_FROM[ds]} valid_acc (tau with {ds} valid_acc over the table: "
              f"{proxy_tau:.3f})")
        print(format_table(recs), format_table(recs, "top_precision"), sep="\n\n", flush=True)
        report["datasets"][ds] = {"proxy_tau_with_target": proxy_tau, **to_json(recs)}
        report["meta"]["wall_seconds"] = time.perf_counter() - t_start
        path = RESULTS / "predictors_pretraining_transfer.json"
        path.write_text(json.dumps(report, indent=1))  # after each dataset
    print(f"\nwall time {report['meta']['wall_seconds']:.0f} s; wrote {path.relative_to(ROOT)}")
    return 0


def run_dataset(ds: str, seeds: Sequence[int], sizes: Sequence[int], out_name: str, argv: Sequence[str] | None,
                resume: bool = False) -> Path:
    """Every predictor and baseline on one table; writes `<out_name>_<ds>.json` after each seed."""
    t0 = time.perf_counter()
    bench = nas_bench_graph(ds)
    archs, y, groups = table_data(bench)
    print(f"\n=== {ds}: {len(archs)} rows, {len(set(groups))} isomorphism classes", flush=True)
    meta = {**provenance(argv), "dataset": ds, "seeds": list(seeds), "sizes": list(sizes), "n_test": 1000,
            "top_fraction": 0.05, "target": "valid_acc", "options": OPTIONS, "averages": AVERAGES,
            "test_dedup": "one architecture per space.canonical_key class; training rows exclude those classes"}
    path = RESULTS / f"{out_name}_{ds}.json"

    def progress(rec) -> None:
        if rec.predictor == "average":  # the last of each (seed, N) cell
            print(f"  {ds} seed {rec.seed} N={rec.n_train} done ({time.perf_counter() - t0:.0f} s)", flush=True)

    recs: list[Record] = []
    if resume and path.exists():  # keep the finished seeds of an earlier run with the same options
        old = json.loads(path.read_text())
        if old["meta"].get("options") == json.loads(json.dumps(OPTIONS)) and old["meta"].get("sizes") == list(sizes):
            recs = [Record(**r) for r in old["records"] if r["seed"] in seeds]
            print(f"  resuming: seeds {sorted({r.seed for r in recs})} already done", flush=True)
    facs = factories(bench, PREDICTORS)
    for seed in seeds:  # one seed at a time, saved as it completes (a cut-off run keeps its finished seeds)
        if any(r.seed == seed for r in recs):
            continue
        recs += evaluate(facs, archs, y, sizes, [seed], n_test=1000, groups=groups, averages=AVERAGES,
                         progress=progress)
        meta.update(seeds_done=sorted({r.seed for r in recs}), wall_seconds=time.perf_counter() - t0,
                    load_average_end=list(os.getloadavg()))
        path.write_text(json.dumps(to_json(recs, meta), indent=1))
    print(*(format_table(recs, m) for m in ("kendall_tau", "spearman_rho", "top_precision", "mae", "fit_seconds")),
          sep="\n\n", flush=True)
    print(f"[{ds}: {meta['wall_seconds']:.0f} s; wrote {path}]", flush=True)
    return path


def merge(out_name: str, argv: Sequence[str] | None) -> Path | None:
    """Combine the per-dataset files: summaries, one best predictor for all datasets, acceptance, plots."""
    parts = {ds: json.loads((RESULTS / f"{out_name}_{ds}.json").read_text())
             for ds in DATASETS if (RESULTS / f"{out_name}_{ds}.json").exists()}
    if not parts:
        print("nothing to merge")
        return None
    candidates = [*PREDICTORS, *AVERAGES]

    def mean_tau(name: str) -> float:  # highest mean tau over datasets and N >= 50: one choice for all datasets
        return float(np.mean([c["kendall_tau_mean"] for p in parts.values()
                              for n, c in p["summary"][name].items() if int(n) >= 50]))

    best = max(candidates, key=mean_tau)
    for ds, p in parts.items():  # the plots, from the records (also those of a cut-off run)
        plot([Record(**r) for r in p["records"]], RESULTS / f"{out_name}_{ds}.png",
             title=f"NAS-Bench-Graph {ds}: held-out 1,000, seeds {p['meta'].get('seeds_done', p['meta']['seeds'])}")
    report = {"meta": {**provenance(argv), "datasets": list(parts),
                       "per_dataset": {ds: {k: p["meta"].get(k) for k in ("date", "command", "seeds", "seeds_done", "sizes",
                                                                           "wall_seconds", "load_average", "load_average_end")}
                                       for ds, p in parts.items()},
                       "best_rule": "highest mean Kendall tau over the datasets and N >= 50",
                       "mean_tau_N>=50": {n: mean_tau(n) for n in candidates}},
              "acceptance": {ds: acceptance(p["summary"], best) for ds, p in parts.items()},
              "summary": {ds: p["summary"] for ds, p in parts.items()}}
    print(f"\nbest predictor over datasets (mean tau, N >= 50): {best}")
    for ds, acc in report["acceptance"].items():
        gains = ", ".join(f"N={n}: {g:+.3f}" for n, g in sorted(acc["tau_gain_over_forest"].items()))
        print(f"  {ds}: tau gain over rf-onehot-200 {gains}; beats at every N>=50: {acc['beats_forest_at_every_N>=50']}; "
              f"target +{TARGET_GAIN} at N=100 met: {acc['target_gain_at_100_met']}")
    path = RESULTS / f"{out_name}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="cora only, 2 seeds, N in {20, 100}")
    ap.add_argument("--transfer", action="store_true", help="only the pretraining study on another table's accuracy")
    ap.add_argument("--merge", action="store_true", help="only merge the per-dataset result files")
    ap.add_argument("--datasets", nargs="*", default=None, choices=DATASETS)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--resume", action="store_true", help="skip the seeds already in the per-dataset files")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    out_name = "predictors_nasbench_graph_quick" if args.quick else "predictors_nasbench_graph"
    if args.merge:
        return 0 if merge(out_name, argv) else 1
    datasets = args.datasets or (["cora"] if args.quick else list(DATASETS))
    seeds = range(args.seeds if args.seeds is not None else (2 if args.quick else 10))
    if args.transfer:
        return transfer(datasets, seeds, argv)
    sizes = (20, 100) if args.quick else SIZES
    for ds in datasets:
        run_dataset(ds, seeds, sizes, out_name, argv, args.resume)
    merge(out_name, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
