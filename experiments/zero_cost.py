"""Zero-cost proxies on 200 GNNs of the GNN space on Cora, against their trained accuracy; learning curves.

Architectures: 200 distinct samples (seed 0) of `GNNSpace(1433, 7, hidden=(16, 32), heads=(1, 2),
layers=(1, 2))`, a small version of the default space (every op; narrower widths keep 200 trainings in
minutes). Each is built with torch seed 0 and
1. scored by every proxy of `nas.predictors.zero_cost` on the untrained model with one minibatch: the
   whole Cora graph, cross-entropy on the 140 training nodes (grad_norm, snip; the others need no labels);
2. trained with `train_node_classifier` (Adam lr 0.01, weight decay 5e-4) for at most 100 epochs with
   patience 10 (`NodeClassificationEvaluator` uses 200 and 20; halved so that 200 trainings fit a shared
   2-core machine), with a forward hook recording validation accuracy at each evaluation pass, which
   gives the learning curve for free.
Reported: Spearman rho and Kendall tau of each proxy with the trained valid_acc and test_acc, next to
parameter count and FLOPs; and learning-curve extrapolation (`LearningCurveModel`): from the best-so-far
validation accuracy of the first k epochs, predict the final best valid_acc, compared with simply
taking the best of those k epochs.

    .venv/bin/python experiments/zero_cost.py            # 200 architectures
    .venv/bin/python experiments/zero_cost.py --quick    # 12 architectures

Rows are saved every 5 architectures; the correlations are computed on the rows done so far. To use
two processes, start a second one on the later architectures and merge the rows afterwards:

    .venv/bin/python experiments/zero_cost.py --offset 100   # architectures 100-199 -> zero_cost_from100.json
    .venv/bin/python experiments/zero_cost.py --merge        # rows of zero_cost*.json -> zero_cost.json

`--resume` continues a cut-off run from the rows its output file holds. `--recount-flops` trains nothing: it
counts the FLOPs proxy of every recorded row again with the current `nas.counts` (message passing counted since
2026-12-06) in zero_cost.json and the zero_cost_from*.json parts, and redoes their correlation tables;
`--rescore PROXY` does the same for one label-free proxy (naswot was rescored on 2026-12-07).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread: a shared machine
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json
import math
import platform
import sys
import time
from datetime import datetime, timezone
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from nas.datasets import planetoid
from nas.predictors.learning_curves import LearningCurveModel
from nas.predictors.zero_cost import PROXIES, compute_proxies
from nas.spaces.gnn import GNNSpace, train_node_classifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from flops_recount import Recount, add_option, read_json, write_json  # noqa: E402
from reporting import git_commit  # noqa: E402

CURVE_POINTS = (10, 20)
CURVE_TARGET_EPOCH = 100
EPOCHS, PATIENCE = 100, 10


def sample_distinct(space: GNNSpace, n: int, seed: int = 0) -> list:
    rng, out, keys = np.random.default_rng(seed), [], set()
    for _ in range(100 * n):
        if len(out) == n:
            break
        a = space.sample(rng)
        if space.canonical_key(a) not in keys:
            keys.add(space.canonical_key(a))
            out.append(a)
    return out


def train_with_curve(space: GNNSpace, arch, data, seed: int = 0) -> tuple[dict, list[float]]:
    """`train_node_classifier` (EPOCHS, PATIENCE) on a model built with torch seed `seed`, plus the per-epoch validation accuracy."""
    curve: list[float] = []

    def record(module, _inputs, out) -> None:
        if not module.training:  # the evaluation pass train_node_classifier makes after each step
            curve.append(float((out[data.val_mask].argmax(-1) == data.y[data.val_mask]).float().mean()))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = space.build(arch)
        handle = model.register_forward_hook(record)
        try:
            metrics = train_node_classifier(model, data, EPOCHS, 0.01, 5e-4, PATIENCE)
        finally:
            handle.remove()
    return metrics, curve


def untrained(space: GNNSpace, arch, seed: int = 0) -> torch.nn.Module:
    """`arch` built with torch seed `seed` (the global generator left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return space.build(arch)


def proxies_of(space: GNNSpace, arch, data, seed: int = 0) -> tuple[dict[str, float], float]:
    mask = data.train_mask

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out[mask], y[mask])

    model = untrained(space, arch, seed)
    t0 = time.perf_counter()
    scores = compute_proxies(model, (data.x, data.edge_index), data.y, loss)
    return scores, time.perf_counter() - t0


def correlations(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    x = np.where(np.isfinite(x), x, np.nanmin(np.where(np.isfinite(x), x, np.nan)) - 1.0)  # -inf ranks lowest
    return {"spearman": float(stats.spearmanr(x, y)[0]), "kendall": float(stats.kendalltau(x, y)[0])}


def curve_study(curves: list[list[float]], final: np.ndarray) -> dict:
    out = {}
    for k in CURVE_POINTS:
        observed, extrapolated = [], []
        for c in curves:
            best = np.maximum.accumulate(np.asarray(c[:k], dtype=float))
            observed.append(best[-1])
            m, _ = LearningCurveModel().fit(np.arange(1, len(best) + 1), best).predict(CURVE_TARGET_EPOCH)
            extrapolated.append(float(np.clip(m[0], 0.0, 1.0)))
        obs, ext = np.array(observed), np.array(extrapolated)
        out[f"first_{k}_epochs"] = {
            "extrapolated": {**correlations(ext, final), "mae": float(np.mean(np.abs(ext - final)))},
            "observed_best_so_far": {**correlations(obs, final), "mae": float(np.mean(np.abs(obs - final)))}}
    return out


def proxy_table(rows: list[dict]) -> dict:
    """Spearman and Kendall of every proxy with trained valid_acc and test_acc, and its non-finite scores."""
    valid = np.array([r["valid_acc"] for r in rows])
    test = np.array([r["test_acc"] for r in rows])
    table = {}
    for p in PROXIES:
        x = np.array([r["proxies"][p] for r in rows], dtype=float)
        table[p] = {"valid_acc": correlations(x, valid), "test_acc": correlations(x, test),
                    "non_finite": int(np.sum(~np.isfinite(x)))}
    return table


def report(rows: list[dict], n: int, t_start: float, argv: Sequence[str] | None) -> dict:
    """Correlations of every proxy with trained accuracy, the learning-curve study, timings and provenance."""
    valid = np.array([r["valid_acc"] for r in rows])
    timing = {"proxy_seconds_mean": float(np.mean([r["proxy_seconds"] for r in rows])),
              "train_seconds_mean": float(np.mean([r["train_seconds"] for r in rows])),
              "wall_seconds": time.perf_counter() - t_start}
    meta = {"command": " ".join(["experiments/zero_cost.py", *(sys.argv[1:] if argv is None else argv)]),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_commit": git_commit(),
            "python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cpus": os.cpu_count(), "load_average": list(os.getloadavg()), "architectures": n, "done": len(rows),
            "training": f"train_node_classifier, lr 0.01, weight decay 5e-4, {EPOCHS} epochs max, patience {PATIENCE}",
            "space": "GNNSpace(1433, 7, hidden=(16, 32), heads=(1, 2), layers=(1, 2))", **timing}
    return {"meta": meta, "correlations": proxy_table(rows), "learning_curves": curve_study([r["curve"] for r in rows], valid),
            "rows": rows}


def cora_space(data) -> GNNSpace:
    """The experiment's small GNN space on Cora (`data`: the graph every proxy and FLOP count runs on)."""
    return GNNSpace(data.num_features, 7, hidden=(16, 32), heads=(1, 2), layers=(1, 2), example_graph=data)


def result_files(results: Path, name: str) -> list[Path]:
    """The run's output and the parts a second process wrote (`--offset`), those that exist."""
    return [f for f in [results / f"{name}.json", *sorted(results.glob(f"{name}_from*.json"))] if f.exists()]


def redo_proxy(files: list[Path], flag: str, proxy: str,
               update: Callable[[dict, Callable[[dict, list[str]], dict[str, float]]], str]) -> int:
    """Score `proxy` of every recorded row again without training, as a run scores it (the architecture built
    untrained, torch seed 0, on the whole graph); `update(doc, score)` rewrites the rows of one results file with
    `score(arch, proxies)` and returns what it did. Correlation tables redone, each file rewritten."""
    if not files:
        raise SystemExit(f"{flag}: no recorded zero_cost results to score again")
    data = planetoid("cora")
    space, inputs = cora_space(data), (data.x, data.edge_index)

    def score(arch: dict, proxies: list[str]) -> dict[str, float]:
        return compute_proxies(untrained(space, arch), inputs, proxies=proxies)

    for path in files:
        doc = read_json(path)
        before = doc["correlations"][proxy]["valid_acc"]["spearman"]
        done = update(doc, score)
        doc["correlations"] = proxy_table(doc["rows"])
        print(f"{path.name}: {done}; {proxy} rho(valid) {before:.3f} -> "
              f"{doc['correlations'][proxy]['valid_acc']['spearman']:.3f}")
        write_json(path, doc)
    print_summary(read_json(files[0]))
    return 0


def recount_flops(files: list[Path], argv: Sequence[str] | None) -> int:
    """`--recount-flops`: the FLOPs proxy of every recorded row counted again with the current `nas.counts`."""

    def update(doc: dict, score: Callable[[dict, list[str]], dict[str, float]]) -> str:
        recount = Recount("zero_cost.py", lambda arch: score(arch, ["params", "flops"]), argv)
        for r in doc["rows"]:
            r["proxies"]["flops"] = recount.flops(r["arch"], r["proxies"]["flops"], r["proxies"]["params"])
        doc["flops_recount"] = recount.summary()
        return recount.describe()

    return redo_proxy(files, "--recount-flops", "flops", update)


def rescore(files: list[Path], proxy: str) -> int:
    """`--rescore PROXY`: one label-free proxy (those a run computes without the loss) of every recorded row
    scored again with the current code."""
    if proxy not in PROXIES or proxy in ("grad_norm", "snip"):
        raise SystemExit(f"--rescore: {proxy!r} is not a label-free proxy of {sorted(PROXIES)}")

    def update(doc: dict, score: Callable[[dict, list[str]], dict[str, float]]) -> str:
        changed = 0
        for r in doc["rows"]:
            new, old = score(r["arch"], [proxy])[proxy], r["proxies"][proxy]
            changed += not (new == old or (math.isnan(new) and math.isnan(old)))
            r["proxies"][proxy] = new
        doc.setdefault("rescored", []).append({"proxy": proxy, "rows_changed": changed, "rows": len(doc["rows"]),
                                               "git_commit": git_commit(),
                                               "date": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        return f"{proxy} changed on {changed} of {len(doc['rows'])} rows"

    return redo_proxy(files, "--rescore", proxy, update)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="12 architectures")
    ap.add_argument("--offset", type=int, default=0, help="start at this architecture (a second process)")
    ap.add_argument("--merge", action="store_true", help="only merge the rows of zero_cost*.json")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in the output file")
    ap.add_argument("--rescore", metavar="PROXY", help="train nothing: score this label-free proxy of every recorded "
                    "row again with the current code (e.g. naswot after its 2026-12-07 fix)")
    add_option(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    n = 12 if args.quick else 200
    name = "zero_cost_quick" if args.quick else "zero_cost"
    results = ROOT / "experiments" / "results"
    t_start = time.perf_counter()
    if args.recount_flops:
        return recount_flops(result_files(results, name), argv)
    if args.rescore:
        return rescore(result_files(results, name), args.rescore)
    if args.merge:
        rows, seen = [], set()
        for file in result_files(results, name):
            for r in json.loads(file.read_text())["rows"]:
                key = json.dumps(r["arch"], sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    rows.append(r)
        return summarize(rows, n, t_start, argv, results / f"{name}.json")
    path = results / (f"{name}_from{args.offset}.json" if args.offset else f"{name}.json")
    data = planetoid("cora")
    space = cora_space(data)
    archs = sample_distinct(space, n)[args.offset:]
    rows = []
    if args.resume and path.exists():  # keep the rows already measured for these architectures, in order
        for r, arch in zip(json.loads(path.read_text())["rows"], archs):
            if r["arch"] != arch.to_dict():
                break
            rows.append(r)
        print(f"resuming after {len(rows)} architectures", flush=True)
    for i, arch in enumerate(archs):
        if i < len(rows):
            continue
        scores, proxy_s = proxies_of(space, arch, data)
        metrics, curve = train_with_curve(space, arch, data)
        rows.append({"arch": arch.to_dict(), "proxies": scores, "proxy_seconds": proxy_s, "curve": curve,
                     **{k: metrics[k] for k in ("valid_acc", "test_acc", "train_acc", "epochs", "train_seconds")}})
        if (i + 1) % 5 == 0 or i + 1 == len(archs):
            path.write_text(json.dumps(report(rows, n, t_start, argv), indent=1))
            print(f"  {args.offset + i + 1}/{n} trained ({time.perf_counter() - t_start:.0f} s)", flush=True)
    return summarize(rows, n, t_start, argv, path)


def summarize(rows: list[dict], n: int, t_start: float, argv: Sequence[str] | None, path: Path) -> int:
    """Print the correlation table and the learning-curve study; write the report to `path`."""
    out = report(rows, n, t_start, argv)
    print_summary(out)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")
    return 0


def print_summary(out: dict) -> None:
    """Print a report's correlation table, learning-curve study and timings."""
    rows = out["rows"]
    valid = np.array([r["valid_acc"] for r in rows])
    print(f"\nZero-cost proxies on {len(rows)} GNNs (Cora; untrained models, one minibatch = the whole graph)")
    print(f"trained valid_acc: median {np.median(valid):.3f}, range {valid.min():.3f}-{valid.max():.3f}")
    print(f"{'proxy':<10}{'rho(valid)':>12}{'tau(valid)':>12}{'rho(test)':>12}{'tau(test)':>12}{'non-finite':>12}")
    for p, r in out["correlations"].items():
        print(f"{p:<10}{r['valid_acc']['spearman']:>12.3f}{r['valid_acc']['kendall']:>12.3f}"
              f"{r['test_acc']['spearman']:>12.3f}{r['test_acc']['kendall']:>12.3f}{r['non_finite']:>12d}")
    print(f"\nLearning-curve extrapolation to epoch {CURVE_TARGET_EPOCH} vs best-so-far at epoch k (target: final valid_acc)")
    for k, c in out["learning_curves"].items():
        for how, r in c.items():
            print(f"  {k:<16}{how:<22} rho {r['spearman']:.3f}  tau {r['kendall']:.3f}  MAE {r['mae']:.4f}")
    m = out["meta"]
    print(f"\nproxies {m['proxy_seconds_mean']:.2f} s per architecture (all seven), training "
          f"{m['train_seconds_mean']:.1f} s; wall time {m['wall_seconds']:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
