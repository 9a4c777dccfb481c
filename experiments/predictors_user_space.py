"""Predictors on a user's plain `Space`, with and without its cell declared (`CellGraph`), on NAS-Bench-Graph.

The same table seen through three spaces: (a) `builtin`, the graph-aware `NASBenchGraphSpace`; (b) `plain`, the
space as a user writes it field by field (`Space(link=Choice(...), op1=Choice(...), ...)`), whose `to_graph` is
one node; (c) `declared`, the same plain space with `.with_graph(CellGraph(nodes=4, node_ops=..., links="link"))`.
On each: `default` (what `predictor-search` uses by default, chosen exactly as the strategy chooses it:
`nas.predictors.selection`'s prior from the space's structure, `wl-gp` on `builtin` and `declared`, a 50-tree
forest on `plain`, kept unless the other one's 5-fold out-of-fold Kendall tau is ahead by more than one standard
error; the picks are recorded), `wl-gp`, and with `--gcn` the GCN (not on `plain`, where it refuses). Beside
them, in the same run, the baseline: scikit-learn's random forest (200 trees) on the one-hot code (`rf-onehot-200`;
the one-hot code is the same in the three spaces).

Protocol (`nas.predictors.harness.evaluate`): per seed, 1,000 held-out architectures, one per isomorphism class,
training sets of N in {50, 100, 200} nested and drawn outside the test classes; Kendall tau, Spearman rho and
precision of the predicted top 5 % on valid_acc. Each predictor's difference to the forest is paired by seed
(same training and test sets): its mean with a 95 % t-interval. Threads pinned to one.

Each dataset writes `results/predictors_user_space_<dataset>.json` after every seed (`--resume` keeps the seeds
done); the run then merges them into `results/predictors_user_space.json` (with `--gcn`: `..._gcn_<dataset>.json`
and `predictors_user_space_gcn.json`):

    .venv/bin/python experiments/predictors_user_space.py                       # 3 tables, 10 seeds, N 50/100/200
    .venv/bin/python experiments/predictors_user_space.py --first-seed 10       # seeds 10-19 (recorded: the plain
                                                         # space's forest was chosen on seeds 0-9 of these tables)
    .venv/bin/python experiments/predictors_user_space.py --datasets cora --seeds 3 --sizes 50 100   # a part
    .venv/bin/python experiments/predictors_user_space.py --resume              # finish what is missing
    .venv/bin/python experiments/predictors_user_space.py --merge               # only merge
    .venv/bin/python experiments/predictors_user_space.py --ask                 # seconds per ask at 1,000 results

`--ask` times `predictor-search`'s ask after 1,000 random results of the cora table, two objectives (valid_acc,
latency_s: both predicted, so two fits per batch), on the declared and the plain space, one thread; CPU seconds of
this process (the wall clock on a shared machine counts the other jobs too) and wall seconds, written to
`results/predictors_user_space_ask.json`. The first ask re-chooses the predictor (as at every doubling of the
results), then one ask in 5 refits the chosen one and takes a batch, the others hand out the queued batch.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread: a shared machine
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.objectives import Problem
from nas.predictors import make_predictor
from nas.predictors.harness import METRICS, Record, evaluate, format_table, to_json
from nas.spaces import Architecture, Space
from nas.spaces.nasbench_graph import PLAIN_CELL, NASBenchGraphSpace, plain_space
from nas.strategies.predictor_search import PredictorSearch
from nas.tabular import nas_bench_graph

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from predictors_nasbench_graph import DATASETS, PlainForest, provenance, table_data  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
OUT = "predictors_user_space"
SIZES = (50, 100, 200)
BASELINE = "rf-onehot-200"
GCN_OPTIONS = {"members": 2}  # as in predictors_nasbench_graph.py
CELL = PLAIN_CELL  # NAS-Bench-Graph's cell, declared over the plain space's fields


def spaces() -> dict[str, Space]:
    return {"builtin": NASBenchGraphSpace(), "plain": plain_space(), "declared": plain_space(graph=True)}


class DefaultPredictor:
    """`predictor-search`'s default predictor: its own choice (`_choose`: the prior unless beaten out of fold by
    more than a standard error), then that model's fit."""

    def __init__(self, space: Space, seed: int, choices: list[dict[str, Any]], label: str) -> None:
        self.strategy = PredictorSearch(space, Problem.make({"valid_acc": "max"}), seed)
        self.choices, self.label, self.seed = choices, label, seed

    def fit(self, archs: Sequence[Architecture], y: Sequence[float]) -> "DefaultPredictor":
        y = np.asarray(y, dtype=float)
        selection = self.strategy._choose("valid_acc", list(archs), y)
        name = selection.name
        self.choices.append({"space": self.label, "seed": self.seed, "n": len(y), "choice": name})
        self.model = selection.fitted if selection.fitted is not None else \
            self.strategy._predictor("valid_acc", name).fit(list(archs), y)  # as the strategy does
        return self

    def predict(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        return self.model.predict(archs)


def factories(bench: Any, gcn: bool, choices: list[dict[str, Any]]) -> dict:
    out: dict = {BASELINE: lambda seed: PlainForest(bench, seed)}
    for label, space in spaces().items():
        out[f"{label}/default"] = lambda seed, s=space, lab=label: DefaultPredictor(s, seed, choices, lab)
        out[f"{label}/wl-gp"] = lambda seed, s=space: make_predictor("wl-gp", s, seed)
        if gcn and label != "plain":
            out[f"{label}/gcn"] = lambda seed, s=space: make_predictor("gcn", s, seed, **GCN_OPTIONS)
    return out


def paired(records: Sequence[Record], name: str, metric: str, n: int) -> dict[str, float] | None:
    """Mean of `name` minus the forest on `metric` at N = n, paired by seed, with its 95 % t-interval."""
    from scipy import stats

    mine = {r.seed: getattr(r, metric) for r in records if r.predictor == name and r.n_train == n}
    base = {r.seed: getattr(r, metric) for r in records if r.predictor == BASELINE and r.n_train == n}
    d = np.array([mine[s] - base[s] for s in sorted(set(mine) & set(base))])
    if len(d) == 0:
        return None
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "ci95_low": float(d.mean() - half), "ci95_high": float(d.mean() + half),
            "seeds": len(d), "wins": int((d > 0).sum())}


def comparison(records: Sequence[Record]) -> dict[str, Any]:
    """{predictor: {N: {metric: paired difference to the forest}}}, and whether each beats it at every N."""
    names = sorted({r.predictor for r in records} - {BASELINE})
    sizes = sorted({r.n_train for r in records})
    out: dict[str, Any] = {}
    for name in names:
        cells = {str(n): {m: paired(records, name, m, n) for m in ("kendall_tau", "spearman_rho", "top_precision")}
                 for n in sizes}
        beats = {m: all((c[m] or {}).get("mean", -1) > 0 for c in cells.values())
                 for m in ("kendall_tau", "spearman_rho", "top_precision")}
        out[name] = {"vs_forest": cells, "beats_forest_at_every_N": beats}
    return out


def run_dataset(ds: str, seeds: Sequence[int], sizes: Sequence[int], gcn: bool, resume: bool,
                argv: Sequence[str] | None) -> Path:
    t0 = time.perf_counter()
    bench = nas_bench_graph(ds)
    archs, y, groups = table_data(bench)  # groups: the built-in space's isomorphism classes (test dedup only)
    path = RESULTS / f"{out_name(gcn)}_{ds}.json"
    meta = {**provenance(argv), "dataset": ds, "seeds": list(seeds), "sizes": list(sizes), "n_test": 1000,
            "top_fraction": 0.05, "target": "valid_acc", "gcn": gcn, "gcn_options": GCN_OPTIONS,
            "cell": CELL.spec(), "baseline": BASELINE}
    recs: list[Record] = []
    choices: list[dict[str, Any]] = []
    if resume and path.exists():
        old = json.loads(path.read_text())
        if old["meta"].get("sizes") == list(sizes) and old["meta"].get("gcn") == gcn:
            recs = [Record(**r) for r in old["records"] if r["seed"] in seeds]
            choices = [c for c in old.get("choices", []) if c["seed"] in seeds]
            print(f"  {ds}: resuming, seeds {sorted({r.seed for r in recs})} already done", flush=True)
    facs = factories(bench, gcn, choices)
    for seed in seeds:
        if any(r.seed == seed for r in recs):
            continue
        recs += evaluate(facs, archs, y, sizes, [seed], n_test=1000, groups=groups)
        meta.update(seeds_done=sorted({r.seed for r in recs}), wall_seconds=time.perf_counter() - t0,
                    load_average_end=list(os.getloadavg()))
        report = {**to_json(recs, meta), "choices": choices, "comparison": comparison(recs)}
        path.write_text(json.dumps(report, indent=1))
        print(f"  {ds} seed {seed} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\n=== {ds}", *(format_table(recs, m) for m in (*METRICS, "fit_seconds")), sep="\n\n", flush=True)
    return path


def out_name(gcn: bool) -> str:
    """The results' file name: a run with the GCN writes beside the run without it (it costs ~20x more)."""
    return f"{OUT}_gcn" if gcn else OUT


def merge(gcn: bool, argv: Sequence[str] | None) -> Path | None:
    parts = {ds: json.loads((RESULTS / f"{out_name(gcn)}_{ds}.json").read_text())
             for ds in DATASETS if (RESULTS / f"{out_name(gcn)}_{ds}.json").exists()}
    if not parts:
        print("nothing to merge")
        return None
    verdict = {}
    for ds, p in parts.items():
        cmp = p["comparison"]
        print(f"\n{ds} (seeds {p['meta'].get('seeds_done')}): difference to {BASELINE}, paired by seed, 95 % CI")
        for name, c in cmp.items():
            for n, cell in c["vs_forest"].items():
                row = "  ".join(f"{m.split('_')[0]} {v['mean']:+.3f} [{v['ci95_low']:+.3f}, {v['ci95_high']:+.3f}]"
                                for m, v in cell.items() if v)
                print(f"  {name:18s} N={n:>4s}  {row}")
        builtin_gain = {n: c["kendall_tau"]["mean"] for n, c in cmp["builtin/default"]["vs_forest"].items()}
        declared_gain = {n: c["kendall_tau"]["mean"] for n, c in cmp["declared/default"]["vs_forest"].items()}
        verdict[ds] = {"declared_default_beats_forest_at_every_N": cmp["declared/default"]["beats_forest_at_every_N"],
                       "plain_default_beats_forest_at_every_N": cmp["plain/default"]["beats_forest_at_every_N"],
                       "tau_gain_builtin_default": builtin_gain, "tau_gain_declared_default": declared_gain}
    report = {"meta": {**provenance(argv), "per_dataset": {ds: p["meta"] for ds, p in parts.items()}},
              "verdict": verdict, "summary": {ds: p["summary"] for ds, p in parts.items()},
              "comparison": {ds: p["comparison"] for ds, p in parts.items()},
              "choices": {ds: p["choices"] for ds, p in parts.items()}}
    path = RESULTS / f"{out_name(gcn)}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"\nverdict: {json.dumps(verdict, indent=1)}\nwrote {path.relative_to(ROOT)}")
    return path


def ask_seconds(argv: Sequence[str] | None, results: int = 1000, asks: int = 16, dataset: str = "cora") -> Path:
    """Seconds per ask (+ tell) of `predictor-search` (defaults) after `results` random results, per space."""
    from nas.strategies import TrialResult

    bench = nas_bench_graph(dataset)
    out: dict[str, Any] = {}
    for label, space in spaces().items():
        if label == "builtin":
            continue  # its figures equal the declared space's (same WL features)
        strat = PredictorSearch(space, Problem.make({"valid_acc": "max", "latency_s": "min"}), 0)
        rng = np.random.default_rng(0)
        while len(strat.history) < results:
            a = space.sample(rng)
            try:
                strat.tell(a, TrialResult(bench(a)))
            except LookupError:
                continue
        times, cpu = [], []
        for _ in range(asks):
            t0, c0 = time.perf_counter(), time.process_time()
            (a,) = strat.ask(1)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            try:
                strat.tell(a, TrialResult(bench(a)))
            except LookupError:
                strat.tell(a, TrialResult({}, "failed"))
        refit = [i for i in range(1, asks) if cpu[i] > 0.01]  # the asks that refitted (the others pop the queue)
        out[label] = {"results": results, "asks": asks, "choice": dict(strat.choice),
                      "choose_step_s": times[0], "choose_step_cpu_s": cpu[0],
                      "batch_steps_s": [times[i] for i in refit], "batch_steps_cpu_s": [cpu[i] for i in refit],
                      "mean_s": float(np.mean(times)), "mean_cpu_s": float(np.mean(cpu)),
                      "mean_after_choice_cpu_s": float(np.mean(cpu[1:]))}
        print(f"  {label}: choice {strat.choice}; re-choosing step {cpu[0]:.2f} s CPU ({times[0]:.2f} s wall), "
              f"refit steps {', '.join(f'{cpu[i]:.2f}' for i in refit)} s CPU "
              f"({', '.join(f'{times[i]:.2f}' for i in refit)} s wall), mean per ask {np.mean(cpu):.2f} s CPU",
              flush=True)
    path = RESULTS / f"{OUT}_ask.json"
    meta = {**provenance(argv), "dataset": dataset, "objectives": ["valid_acc", "latency_s"], "threads": 1,
            "load_average_end": list(os.getloadavg())}
    path.write_text(json.dumps({"meta": meta, "spaces": out}, indent=1))
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds first-seed .. first-seed + seeds - 1 (10: seeds the defaults were not chosen on)")
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    ap.add_argument("--gcn", action="store_true", help="also the GCN on the built-in and declared spaces")
    ap.add_argument("--resume", action="store_true", help="keep the seeds already in the per-dataset files")
    ap.add_argument("--merge", action="store_true", help="only merge the per-dataset files")
    ap.add_argument("--ask", action="store_true", help="only time predictor-search's ask at 1,000 results")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    if args.ask:
        ask_seconds(argv)
        return 0
    if not args.merge:
        for ds in args.datasets:
            run_dataset(ds, range(args.first_seed, args.first_seed + args.seeds), sorted(args.sizes), args.gcn,
                        args.resume, argv)
    return 0 if merge(args.gcn, argv) else 1


if __name__ == "__main__":
    raise SystemExit(main())
