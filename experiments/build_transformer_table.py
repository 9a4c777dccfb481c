"""Build the FlexiBERT tabular benchmark on Movie Review: a fixed, seeded sample of architectures of the
CPU-sized FlexiBERT space (experiments/transformer_recipe.py `BASE`), each trained with 2 seeds by the text
recipe with its bag-of-words prior (`transformer_recipe.BOW`), one CSV row per training (issue 25 part 1).

The sample: architectures 0-2 are transformer_recipe.py's fixed `attention`, `conv` and `conv+attention`
encoders. Architecture i >= 3 is homogeneous for even i (a depth and one layer drawn uniformly, every layer
that layer: BERT-like) and a uniform draw of the whole space for odd i (heterogeneous almost always), from
the generator `numpy.random.default_rng([SAMPLE_SEED, i])`, redrawn while it repeats an earlier one. The
homogeneous stratum is what the "best heterogeneous vs best homogeneous" comparison needs (uniform draws are
homogeneous with probability ~1e-4); each index has its own generator, so `--archs 200` continues the
sequence of `--archs 100` exactly.

Data and recipe are transformer_recipe.py's: `movie_reviews(seed=0)`'s fixed 90/10 split, 10 % of its training
part (seed 0) as validation, `TextRecipe()` tokenisation (min count 2, 40 tokens), the recipe with
`nb_init` 3 and `distill` 0.5 (the teacher: TF-IDF + LR's 5-fold cross-fitted probabilities on the training
sentences, C picked on validation), early stopping on validation; test accuracy at the best validation epoch.
Training seeds 0 and 1 (initialisation, dropout and batch order), one torch thread.

Rows are appended (and fsync'd) one training at a time to nas/tables/transformer_mr/movie_review.csv
(package data); a rerun skips the (architecture, seed) pairs already there. Replay:
`nas.tabular.transformer_mr_table()`. A `--quick` smoke run (other data, other recipe) writes to
experiments/results/transformer_table_quick/ instead, and refuses the package table as `--out`, so its rows
never mix with (and are never mistaken for) recorded ones.

    nice -n 19 .venv/bin/python experiments/build_transformer_table.py --archs 120                # build / resume
    nice -n 19 .venv/bin/python experiments/build_transformer_table.py --archs 120 --shard 1/2    # 1 of 2 processes
    .venv/bin/python experiments/build_transformer_table.py --summary    # the table's facts -> results/transformer_table.json
    .venv/bin/python experiments/build_transformer_table.py --recount-flops   # the flops column again, no training
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from build_gnn_table import append_row, arch_json, done_trainings, parse_shard, seed_noise, table_runs  # noqa: E402  (experiments/ is on sys.path)
from flops_recount import Recount, add_option, read_csv, write_csv
from nas.architecture import Architecture
from nas.datasets import TextSplits, movie_reviews
from nas.spaces.transformer import FlexiBertSpace
from nas.tabular import TRANSFORMER_TABLES, transformer_table_dir
from transformer_mr import RecipeSplits, TextRecipe, describe, recipe_splits, train_recipe
from reporting import git_commit, write_report
from transformer_recipe import ARCHS, BASE, BOW, TEACHER_TOKENS, tfidf_lr, tfidf_teacher

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_OUT = RESULTS / "transformer_table_quick"  # --quick's default folder: never the package table
SEEDS = (0, 1)
SAMPLE_SEED = 2026
TABLE = f"{TRANSFORMER_TABLES['bow']}.csv"  # the bag-of-words table
SHORT = replace(TextRecipe(), max_epochs=4, patience=0)
"""The short recipe: the plain text recipe (no bag-of-words prior) cut to 4 epochs (warm-up and cosine over 4),
no early stopping. A low-fidelity table in NAS-Bench-201's sense: cheap, and architectures differ beyond seed
noise there, where the `BOW` recipe's table has them within it."""
RECIPES: dict[str, tuple[TextRecipe, str]] = {"bow": (BOW, TABLE), "short": (SHORT, f"{TRANSFORMER_TABLES['short']}.csv")}
"""`--recipe` name -> (recipe, the table's file in the package folder; `nas.tabular.TRANSFORMER_TABLES`)."""
METRICS = ("valid_acc", "test_acc", "best_epoch", "epochs", "train_seconds", "params", "flops")
COLUMNS = ("arch_index", "arch_id", "dataset", "seed", *METRICS, "homogeneous", "summary", "arch")


def homogeneous(arch: Architecture) -> bool:
    """Every layer the same (operation, width, heads or kernel, FFN stack)."""
    return all(layer == arch["layers"][0] for layer in arch["layers"])


def draw_architectures(space: FlexiBertSpace, n: int) -> list[Architecture]:
    """The first `n` architectures of the table's fixed sequence (see the module docstring)."""
    archs = [space.validate(a) for a in ARCHS.values()][:n]
    seen = {a.id for a in archs}
    for i in range(len(archs), n):
        rng = np.random.default_rng([SAMPLE_SEED, i])

        def draw() -> Architecture:
            arch = space.sample(rng)
            if i % 2:
                return arch
            return space.validate({"depth": arch["depth"], "layers": [arch["layers"][0]] * arch["depth"]})

        arch = draw()
        while arch.id in seen:
            arch = draw()
        seen.add(arch.id)
        archs.append(arch)
    return archs


Runs = dict[int, dict[str, str]]
"""One architecture's table rows by training seed (`build_gnn_table.table_runs`' values)."""


def seed_mean(runs: Runs, metric: str) -> float:
    """`metric` averaged over training seeds 0 and 1."""
    return (float(runs[0][metric]) + float(runs[1][metric])) / 2


def best_on_valid(candidates: Sequence[Runs]) -> Runs:
    """The architecture with the best mean validation accuracy over seeds 0 and 1."""
    return max(candidates, key=lambda v: seed_mean(v, "valid_acc"))


def strata(runs: Mapping[str, Runs]) -> tuple[list[Runs], list[Runs]]:
    """The homogeneous and the heterogeneous architectures recorded with both training seeds."""
    both = [v for v in runs.values() if 0 in v and 1 in v]
    return [v for v in both if v[0]["homogeneous"] == "1"], [v for v in both if v[0]["homogeneous"] == "0"]


def table_facts(path: Path) -> dict[str, Any]:
    """Size, range and seed noise of the table, and the best heterogeneous architecture against the best
    homogeneous one (both picked on mean validation accuracy; the heterogeneous one among those with no more
    parameters than the homogeneous pick)."""
    runs = table_runs(path)
    homo, hetero = strata(runs)
    both = homo + hetero
    entry = lambda v: {"summary": v[0]["summary"], "params": int(v[0]["params"]),  # noqa: E731
                       "valid_acc": seed_mean(v, "valid_acc"), "test_acc": seed_mean(v, "test_acc"),
                       "test_by_seed": [float(v[s]["test_acc"]) for s in (0, 1)]}
    facts: dict[str, Any] = {"architectures": len(both), "homogeneous": len(homo), "heterogeneous": len(hetero),
                             "trainings": sum(len(v) for v in runs.values())}
    if len(both) >= 3:
        facts |= {m.removesuffix("_acc") + "_range": [min(seed_mean(v, m) for v in both),
                                                       max(seed_mean(v, m) for v in both)]
                  for m in ("valid_acc", "test_acc")}
        facts["seed_noise"] = seed_noise(path)
    if homo and hetero:
        best_homo = best_on_valid(homo)
        lighter = [v for v in hetero if int(v[0]["params"]) <= int(best_homo[0]["params"])]
        facts["best_homogeneous"] = entry(best_homo)
        facts["best_heterogeneous"] = entry(best_on_valid(hetero))
        if lighter:
            facts["best_heterogeneous_no_more_params"] = entry(best_on_valid(lighter))
    return facts


def results_suffix(recipe: str) -> str:
    """What a results file's name gains for a table other than the bag-of-words one (`_short`)."""
    return "" if recipe == "bow" else f"_{recipe}"


def recipe_data(quick: bool, name: str = "bow") -> tuple[TextRecipe, TextSplits, RecipeSplits]:
    """The table's recipe (`RECIPES[name]`), Movie Review with every training word, and the recipe's train /
    valid / test tokenisation of it (`quick`: the smoke run's recipe and subset)."""
    recipe = RECIPES[name][0]
    full = movie_reviews(seed=0, max_len=64, vocab_size=10**6)
    if quick:
        full = replace(full, train_x=full.train_x[:700], train_y=full.train_y[:700], test_x=full.test_x[:300],
                       test_y=full.test_y[:300])
        recipe = replace(recipe, max_epochs=2, patience=0)
    return recipe, full, recipe_splits(recipe, full, valid_fraction=0.1, seed=0)


def train_row(space: FlexiBertSpace, data: RecipeSplits, recipe: TextRecipe, teacher: torch.Tensor | None,
              arch: Architecture, seed: int, index: int) -> dict[str, Any]:
    """Train `arch` once (training seed `seed`) and return its table row (`COLUMNS`; `index`: its arch_index)."""
    torch.manual_seed(seed)
    model = space.build(arch)
    out = train_recipe(model, data, recipe, seed, teacher)
    counts = space.count(arch)
    return {"arch_index": index, "arch_id": arch.id, "dataset": "movie_review", "seed": seed,
            "valid_acc": out["valid_accuracy"], "test_acc": out["test_accuracy"], "best_epoch": out["best_epoch"],
            "epochs": out["epochs"], "train_seconds": out["train_seconds"], "params": int(counts["params"]),
            "flops": int(counts["flops"]), "homogeneous": int(homogeneous(arch)), "summary": describe(arch),
            "arch": arch_json(arch)}


def recount_flops(args: argparse.Namespace, argv: Sequence[str] | None) -> dict[str, int]:
    """`--recount-flops`: every row's architecture rebuilt untrained on the table's space and its `flops` counted
    again as a training row counts them; the CSV is rewritten with only that column changed."""
    path = args.out / RECIPES[args.recipe][1]
    columns, rows = read_csv(path)
    recipe, _, data = recipe_data(args.quick, args.recipe)
    space = FlexiBertSpace(recipe.config(BASE, len(data.vocab)))
    recount = Recount("build_transformer_table.py", space.count, argv)
    for row in rows:
        row["flops"] = str(int(recount.flops(json.loads(row["arch"]), float(row["flops"]), float(row["params"]))))
    print(recount.describe())
    write_csv(path, columns, rows)
    return {"trained": 0, "stopped_at": 0}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", type=int, default=120, help="table size: the first N architectures of the sequence")
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--out", type=Path, default=None,
                    help="folder of the table's CSV (--recipe's file; default: the package folder, or "
                    f"{QUICK_OUT} with --quick)")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (cleanly) after this many minutes")
    ap.add_argument("--shard", default="0/1", help="K/N: train only the architectures whose index is K mod N")
    ap.add_argument("--quick", action="store_true", help="smoke run: 700 training sentences (70 for validation), "
                    "300 test, 2 epochs; written to its own folder (the package table is refused as --out)")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="bow",
                    help="bow: the competitive recipe (movie_review.csv); short: the plain recipe cut to 4 epochs "
                    "(movie_review_short.csv)")
    ap.add_argument("--summary", action="store_true", help="train nothing: write the table's facts (table_facts) to "
                    "experiments/results/transformer_table.json and print them")
    add_option(ap)
    args = ap.parse_args(argv)
    args.shard = parse_shard(ap, args.shard)
    package = transformer_table_dir()
    if args.out is None:
        args.out = QUICK_OUT if args.quick else package
    elif args.quick and args.out.resolve() == package.resolve():
        ap.error(f"--out: --quick trains on other data with another recipe, so its rows must not enter the "
                 f"package table {package}; leave --out out (it writes {QUICK_OUT}) or give another folder")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, int]:
    args = parse_args(argv)
    started = time.perf_counter()
    table = RECIPES[args.recipe][1]
    if args.summary:
        facts = table_facts(args.out / table)
        report = {"experiment": "build_transformer_table", "recipe": args.recipe, "commit": git_commit(), **facts}
        write_report(RESULTS / f"transformer_table{results_suffix(args.recipe)}.json", report, time.time())
        print(json.dumps(facts, indent=1))
        return {"trained": 0, "stopped_at": 0}
    torch.set_num_threads(1)
    if args.recount_flops:
        return recount_flops(args, argv)
    recipe, full, data = recipe_data(args.quick, args.recipe)
    teacher = None
    if recipe.distill:
        words = recipe_splits(TEACHER_TOKENS, full, valid_fraction=0.1, seed=0)
        teacher = tfidf_teacher(words, tfidf_lr(words)["C"])
    space = FlexiBertSpace(recipe.config(BASE, len(data.vocab)))
    archs = draw_architectures(space, args.archs)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / table
    done = done_trainings(path)
    trained = 0
    for i in range(args.shard[0], args.archs, args.shard[1]):
        arch = archs[i]
        for seed in args.seeds:
            if (arch.id, seed) in done:
                continue
            if args.max_minutes is not None and time.perf_counter() - started > 60 * args.max_minutes:
                print(f"stopped after {args.max_minutes} minutes at architecture {i}; rerun to continue")
                return {"trained": trained, "stopped_at": i}
            row = train_row(space, data, recipe, teacher, arch, seed, i)
            append_row(path, row, COLUMNS)
            done.add((arch.id, seed))
            trained += 1
            print(f"[{time.perf_counter() - started:6.0f} s] #{i} seed {seed}: valid {100 * row['valid_acc']:.1f} "
                  f"test {100 * row['test_acc']:.1f} ({row['train_seconds']:.0f} s) {row['summary']}", flush=True)
    print(f"complete: {args.archs} architectures x {len(args.seeds)} seeds ({trained} trained in this run, "
          f"{time.perf_counter() - started:.0f} s)")
    return {"trained": trained, "stopped_at": args.archs}


if __name__ == "__main__":
    main()
