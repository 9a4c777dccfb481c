"""Build the GNN tabular benchmark on Cora and CiteSeer: a fixed, seeded sample of `GNNSpace`
architectures, each trained with 2 seeds per dataset, one CSV row per training.

The sample: architecture 0 is the 2-layer GCN of Kipf & Welling (`gnn_planetoid.GCN`); architecture i >= 1
is drawn uniformly from `GNNSpace` restricted to `layers = 1` (odd i) or `layers = 2` (even i), from the
generator `numpy.random.default_rng([SAMPLE_SEED, i])`, redrawn (same generator) while it repeats an earlier
architecture. Stratifying on depth keeps one-layer networks in the table (uniform sampling of the full space
gives them under 1 %); each index has its own generator, so `--archs 200` continues the sequence of
`--archs 100` exactly. The recipe is experiments/gnn_planetoid.py's: `NodeClassificationEvaluator(seed=s)`
with its defaults (Adam lr 0.01, weight decay 5e-4, dropout 0.5, at most 200 epochs, early stopping after
20 epochs without a lower validation loss, metrics at the best-validation-accuracy epoch), Planetoid public
split, row-normalised features, training seeds 0 and 1, one torch thread.

Rows are appended (and fsync'd) one training at a time to nas/tables/gnn_planetoid/<dataset>.csv (package data);
a rerun skips the (architecture, dataset, seed) triples already there, so the build resumes where it was
cut off and `--archs N` with a larger N extends it. The loop runs architecture by architecture (both
datasets, both seeds), so a cut-off build leaves the two tables the same size. Replay: `nas.tabular.gnn_planetoid_table`.

    nice -n 19 .venv/bin/python experiments/build_gnn_table.py --archs 100          # build / resume / extend
    nice -n 19 .venv/bin/python experiments/build_gnn_table.py --archs 100 --max-minutes 70
    nice -n 19 .venv/bin/python experiments/build_gnn_table.py --datasets citeseer --shard 1/3   # 1 of 3 processes
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from nas.architecture import Architecture
from nas.datasets import planetoid
from nas.spaces.gnn import LAYERS, GNNSpace, NodeClassificationEvaluator
from nas.tabular import gnn_table_dir
from gnn_planetoid import GCN, describe  # noqa: E402  (experiments/ is on sys.path)

logger = logging.getLogger(__name__)

DATASETS = ("cora", "citeseer")
SEEDS = (0, 1)
SAMPLE_SEED = 2025
METRICS = ("valid_acc", "test_acc", "train_acc", "valid_loss", "best_epoch", "epochs", "train_seconds", "params")
COLUMNS = ("arch_index", "arch_id", "dataset", "seed", *METRICS, "summary", "arch")


def draw_architectures(space: GNNSpace, n: int) -> list[Architecture]:
    """The first `n` architectures of the table's fixed sequence (see the module docstring)."""
    strata = {k: GNNSpace(space.in_channels, space.num_classes, layers=(k,), example_graph=space.example_graph)
              for k in LAYERS}
    archs = [space.validate(GCN)][:n]
    seen = {a.id for a in archs}
    for i in range(1, n):
        rng = np.random.default_rng([SAMPLE_SEED, i])
        stratum = strata[LAYERS[(i - 1) % len(LAYERS)]]
        arch = space.validate(stratum.sample(rng))
        while arch.id in seen:
            arch = space.validate(stratum.sample(rng))
        seen.add(arch.id)
        archs.append(arch)
    return archs


def complete_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the CSV at `path` that end in a newline: a last line torn by a kill mid-write is left out
    (`append_row` cuts it off before its next append), so it is retrained rather than read half-written."""
    with open(path, newline="") as f:
        text = f.read()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def done_trainings(path: Path) -> set[tuple[str, int]]:
    """(arch id, seed) pairs already recorded in `path`."""
    if not path.exists():
        return set()
    return {(r["arch_id"], int(r["seed"])) for r in complete_rows(path)}


def table_runs(path: Path) -> dict[str, dict[int, dict[str, str]]]:
    """The rows of the table at `path` as arch_id -> training seed -> row (the CSV's strings)."""
    runs: dict[str, dict[int, dict[str, str]]] = {}
    for r in complete_rows(path):
        runs.setdefault(r["arch_id"], {})[int(r["seed"])] = r
    return runs


def seed_noise(path: Path) -> dict[str, Any]:
    """Seed 0 against seed 1 over the architectures of the table at `path` recorded with both: Kendall tau,
    mean and max |difference| of valid_acc and test_acc."""
    pairs = [v for v in table_runs(path).values() if 0 in v and 1 in v]
    out: dict[str, Any] = {"architectures": len(pairs)}
    for m in ("valid_acc", "test_acc"):
        a, b = np.array([float(p[0][m]) for p in pairs]), np.array([float(p[1][m]) for p in pairs])
        out[m] = {"kendall_tau": float(stats.kendalltau(a, b).statistic), "mean_abs_diff": float(np.abs(a - b).mean()),
                  "max_abs_diff": float(np.abs(a - b).max())}
    return out


def arch_json(arch: Architecture) -> str:
    """The architecture as the table's compact, key-sorted JSON (what `recorded_table` reads back)."""
    return json.dumps(arch.to_dict(), sort_keys=True, separators=(",", ":"))


def append_row(path: Path, row: Mapping[str, Any], columns: Sequence[str] = COLUMNS) -> None:
    """Append one row (writing the header first for a new file) and fsync, so a kill loses at most one training.
    A last line torn by such a kill (no final newline) is cut off first, so the new row starts a line of its own."""
    if path.exists():
        drop_torn_tail(path)
    new = not path.exists() or path.stat().st_size == 0  # a header torn by a kill is cut off whole
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        if new:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def drop_torn_tail(path: Path) -> None:
    """Cut a last line that has no newline (a write a kill interrupted) off the file at `path`, in place."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if not size:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        keep = data.rfind(b"\n") + 1
        logger.warning("%s: dropping a torn last line of %d bytes (a write cut off by a kill)", path, size - keep)
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", type=int, default=100, help="table size: the first N architectures of the sequence")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--out", type=Path, default=gnn_table_dir(), help="folder of the <dataset>.csv tables")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (cleanly) after this many minutes")
    ap.add_argument("--shard", default="0/1", help="K/N: train only the architectures whose index is K mod N "
                    "(N processes with K = 0..N-1 build one table in parallel; default 0/1: all)")
    args = ap.parse_args(argv)
    args.shard = parse_shard(ap, args.shard)
    return args


def parse_shard(ap: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    """`--shard K/N` as (K, N), or an argparse error naming the option."""
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
        ap.error(f"--shard: expected K/N with 0 <= K < N, got {text!r}")
    return int(k), int(n)


def main(argv: Sequence[str] | None = None) -> dict[str, int]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    data = {name: planetoid(name) for name in args.datasets}
    spaces = {name: GNNSpace(d.num_features, int(d.y.max()) + 1, example_graph=d) for name, d in data.items()}
    archs = {name: draw_architectures(space, args.archs) for name, space in spaces.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    done = {name: done_trainings(args.out / f"{name}.csv") for name in args.datasets}
    trained = 0
    for i in range(args.shard[0], args.archs, args.shard[1]):
        for name in args.datasets:
            arch = archs[name][i]
            for seed in args.seeds:
                if (arch.id, seed) in done[name]:
                    continue
                if args.max_minutes is not None and time.perf_counter() - started > 60 * args.max_minutes:
                    print(f"stopped after {args.max_minutes} minutes at architecture {i}; rerun to continue")
                    return {"trained": trained, "stopped_at": i}
                metrics = NodeClassificationEvaluator(spaces[name], data[name], seed=seed)(arch)
                append_row(args.out / f"{name}.csv",
                           {"arch_index": i, "arch_id": arch.id, "dataset": name, "seed": seed,
                            **{m: metrics[m] for m in METRICS}, "summary": describe(arch),
                            "arch": arch_json(arch)})
                done[name].add((arch.id, seed))
                trained += 1
                print(f"[{time.perf_counter() - started:6.0f} s] {name} #{i} seed {seed}: "
                      f"valid {100 * metrics['valid_acc']:.1f} test {100 * metrics['test_acc']:.1f} "
                      f"({metrics['train_seconds']:.1f} s) {describe(arch)}", flush=True)
    print(f"complete: {args.archs} architectures x {len(args.datasets)} datasets x {len(args.seeds)} seeds "
          f"({trained} trained in this run, {time.perf_counter() - started:.0f} s)")
    return {"trained": trained, "stopped_at": args.archs}


if __name__ == "__main__":
    main()
