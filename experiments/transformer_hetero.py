"""Best heterogeneous vs best homogeneous FlexiBERT encoder at no more parameters, on the short-recipe table's
terms (issue 25 part 2): a search around the homogeneous best, confirmed on fresh training seeds.

The short table (nas/tables/transformer_mr/movie_review_short.csv) cannot answer the question by its strata: its
homogeneous half covers 100 of the space's 144 homogeneous architectures, its heterogeneous half 100 uniform
draws of ~378,000, so the two bests compare a near-census with a thin sample. Here the heterogeneous architectures
next to the homogeneous best are searched:

1. H = the table's best homogeneous architecture by mean validation accuracy (seeds 0-1).
2. Its one-layer edits: one layer replaced by another of the space's layer configurations (operation, width,
   heads or kernel, FFN), heterogeneous by construction; those with no more parameters than H; a seeded sample
   of `--edits` of them (the first `--edits` of a seeded permutation), each trained with the table's recipe (`build_transformer_table.SHORT`) under the table's
   seeds 0-1. Selection: the `--confirm` best edits by mean validation accuracy.
3. Confirmation: H and those edits retrained under fresh training seeds 2-6, so neither side keeps the winner's
   curse of its selection; paired per seed (edit − H), validation and test accuracy.

4. (`--full K`) Full training: the homogeneous best and the K best edits whose layers differ in operation or width
   (the issue's sense of heterogeneous), by seeds 0-1 validation, retrained under seeds 2-6 with the plain recipe
   at its full length (`transformer_mr.TextRecipe()`: 15 epochs, early stopping after 3; the short recipe is its
   first 4 epochs), so a lead that is only a matter of learning speed at 4 epochs can show as such. Then the best
   of those K by mean validation accuracy and the homogeneous best once more under fresh seeds 7-21 (the K-way
   selection on seeds 2-6 keeps a winner's curse; seeds 7-21 do not). Cached in
   results/transformer_hetero_full_cache.csv.
5. (`--full-homogeneous K`) The K best homogeneous architectures of the short table (H first) under the full plain
   recipe on seeds 2-6: is H still the best homogeneous one when trained to the end? If another one (H') is ahead
   on validation, H' is trained on seeds 7-21 too and stage 4's winner paired against it there.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python experiments/transformer_hetero.py      # ~3 h on one idle core, resumable
    .venv/bin/python experiments/transformer_hetero.py --report                          # tables from the caches

The defaults are the recorded run (`--edits 60 --confirm 3 --full 3 --full-homogeneous 5`); `--full 0` and
`--full-homogeneous 0` leave out stages 4 and 5.

Trainings are cached (one row each, fsync'd) in results/transformer_hetero_cache.csv; the report goes to
results/transformer_hetero.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from build_gnn_table import append_row, done_trainings, table_runs  # noqa: E402  (experiments/ is on sys.path)
from gnn_table_search import fmt_diff, paired  # noqa: E402
from build_transformer_table import COLUMNS, RECIPES, homogeneous, recipe_data, seed_mean, strata, train_row
from nas.architecture import Architecture
from nas.spaces.transformer import FlexiBertSpace
from nas.tabular import transformer_table_dir
from reporting import git_commit, write_report
from transformer_mr import RecipeSplits, TextRecipe
from transformer_recipe import BASE

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = RESULTS / "transformer_hetero_cache.csv"
FULL_CACHE = RESULTS / "transformer_hetero_full_cache.csv"
SHORT_TABLE = transformer_table_dir() / RECIPES["short"][1]
SELECT_SEEDS = (0, 1)
CONFIRM_SEEDS = (2, 3, 4, 5, 6)
FULL_CONFIRM_SEEDS = tuple(range(7, 22))
SAMPLE_SEED = 2027


def layer_configs(space: FlexiBertSpace, draws: int = 20_000) -> list[dict[str, Any]]:
    """Every layer configuration the space can give (collected from seeded draws; 72 for the table's space)."""
    rng = np.random.default_rng(0)
    found: dict[str, dict[str, Any]] = {}
    for _ in range(draws):
        for layer in space.sample(rng).to_dict()["layers"]:
            found.setdefault(json.dumps(layer, sort_keys=True), layer)
    return [found[k] for k in sorted(found)]


def top_homogeneous(table: Path, space: FlexiBertSpace, k: int) -> list[Architecture]:
    """The table's `k` best homogeneous architectures by mean validation accuracy over seeds 0 and 1 (H first; ties
    in table order, as `best_on_valid` breaks them)."""
    ranked = sorted(strata(table_runs(table))[0], key=lambda v: -seed_mean(v, "valid_acc"))
    return [space.validate(json.loads(v[0]["arch"])) for v in ranked[:k]]


def best_homogeneous(table: Path, space: FlexiBertSpace) -> Architecture:
    """H: the table's best homogeneous architecture (the `best_homogeneous` of `table_facts`)."""
    return top_homogeneous(table, space, 1)[0]


def sample_edits(candidates: Sequence[Architecture], n: int) -> list[Architecture]:
    """The first `n` of a seeded permutation of `candidates`: a larger `n` extends a smaller one's sample."""
    order = np.random.default_rng(SAMPLE_SEED).permutation(len(candidates))
    return [candidates[i] for i in order[:n]]


def edits(space: FlexiBertSpace, base: Architecture, layers: Sequence[dict[str, Any]]) -> list[Architecture]:
    """`base` with one layer replaced by another configuration, those with no more parameters than `base`."""
    limit = space.count(base)["params"]
    out: dict[str, Architecture] = {}
    cfg = base.to_dict()
    for pos in range(cfg["depth"]):
        for layer in layers:
            if layer == cfg["layers"][pos]:
                continue
            arch = space.validate({"depth": cfg["depth"], "layers": [*cfg["layers"][:pos], layer,
                                                                    *cfg["layers"][pos + 1:]]})
            if not homogeneous(arch) and space.count(arch)["params"] <= limit:
                out.setdefault(arch.id, arch)
    return list(out.values())


def train_all(space: FlexiBertSpace, data: RecipeSplits, archs: Sequence[Architecture], seeds: Sequence[int],
              tag: str, recipe: TextRecipe = RECIPES["short"][0], cache: Path = CACHE) -> int:
    """Train every (architecture, seed) not yet in `cache` with `recipe` (the short one); returns how many were trained."""
    done = done_trainings(cache)
    trained, started = 0, time.perf_counter()
    for i, arch in enumerate(archs):
        for seed in seeds:
            if (arch.id, seed) in done:
                continue
            row = train_row(space, data, recipe, None, arch, seed, i)
            append_row(cache, row, COLUMNS)
            trained += 1
            print(f"[{time.perf_counter() - started:6.0f} s] {tag} {i} seed {seed}: valid {100 * row['valid_acc']:.1f} "
                  f"test {100 * row['test_acc']:.1f} ({row['train_seconds']:.0f} s) {row['summary']}", flush=True)
    return trained


def mixes_op_or_width(arch: Architecture) -> bool:
    """Heterogeneous in the issue's sense: the layers differ in operation or width (an edit that changes only
    heads or the FFN stack keeps "the same operation and width in every layer", so it counts as homogeneous there)."""
    return len({(layer["op"], layer["hidden"]) for layer in arch["layers"]}) > 1


def mean_over(runs: dict[int, dict[str, str]], seeds: Sequence[int], metric: str) -> float:
    """The mean of `metric` over those training seeds."""
    return statistics.fmean(float(runs[s][metric]) for s in seeds)


def report(space: FlexiBertSpace, home: Architecture, candidates: Sequence[Architecture], confirm: int,
           available: int) -> dict[str, Any]:
    """Selection on seeds 0-1 among `candidates` (the sampled edits, of `available`), then the confirmation rows
    (fresh seeds) paired against the homogeneous best."""
    runs = table_runs(CACHE)  # the edits' trainings and the fresh seeds; the homogeneous best's seeds 0-1 are the table's
    runs.setdefault(home.id, {}).update(table_runs(SHORT_TABLE)[home.id])
    trained = [a for a in candidates if all(s in runs.get(a.id, {}) for s in SELECT_SEEDS)]
    ranked = sorted(trained, key=lambda a: -mean_over(runs[a.id], SELECT_SEEDS, "valid_acc"))
    entry = lambda a: {"summary": runs[a.id][SELECT_SEEDS[0]]["summary"], "params": int(space.count(a)["params"]),  # noqa: E731
                       "arch_id": a.id, "mixes_op_or_width": mixes_op_or_width(a),
                       "select": {m: mean_over(runs[a.id], SELECT_SEEDS, m) for m in ("valid_acc", "test_acc")},
                       "confirm": ({m: [float(runs[a.id][s][m]) for s in CONFIRM_SEEDS] for m in ("valid_acc", "test_acc")}
                                   if all(s in runs.get(a.id, {}) for s in CONFIRM_SEEDS) else None)}
    doc: dict[str, Any] = {"experiment": "transformer_hetero", "commit": git_commit(),
                           "settings": {"recipe": "short", "select_seeds": list(SELECT_SEEDS),
                                        "confirm_seeds": list(CONFIRM_SEEDS), "edits_trained": len(trained),
                                        "edits_available": available, "sample_seed": SAMPLE_SEED},
                           "homogeneous_best": entry(home), "edits": [entry(a) for a in ranked]}
    doc["edits_better_on_select"] = sum(e["select"]["valid_acc"] > doc["homogeneous_best"]["select"]["valid_acc"]
                                        for e in doc["edits"])
    mixed = [e for e in doc["edits"] if e["mixes_op_or_width"]]
    doc["best_op_or_width_mix"] = mixed[0] if mixed else None
    h = doc["homogeneous_best"]["confirm"]
    doc["confirmed"] = []
    for e in doc["edits"][:confirm]:
        if e["confirm"] is None or h is None:
            continue
        doc["confirmed"].append({"summary": e["summary"], "params": e["params"], "mixes_op_or_width": e["mixes_op_or_width"],
                                 **{f"{m} - homogeneous": paired(e["confirm"][m], h[m]) for m in ("valid_acc", "test_acc")}})
    return doc


def full_report(space: FlexiBertSpace, home: Architecture, picks: Sequence[Architecture],
                seeds: Sequence[int] = CONFIRM_SEEDS) -> dict[str, Any] | None:
    """Stage 4 (or, with `seeds=FULL_CONFIRM_SEEDS`, its confirmation): `picks` against the homogeneous best under the
    full plain recipe on `seeds`, paired per seed; None until the homogeneous best has them all."""
    runs = table_runs(FULL_CACHE) if FULL_CACHE.exists() else {}
    if not all(s in runs.get(home.id, {}) for s in seeds):
        return None
    metrics = ("valid_acc", "test_acc", "best_epoch")
    scores = lambda a: {m: [float(runs[a.id][s][m]) for s in seeds] for m in metrics}  # noqa: E731
    h = scores(home)
    out: dict[str, Any] = {"recipe": "TextRecipe() (plain, 15 epochs, patience 3)", "seeds": list(seeds),
                           "homogeneous_best": {"summary": runs[home.id][seeds[0]]["summary"], **h}, "edits": []}
    for a in picks:
        if not all(s in runs.get(a.id, {}) for s in seeds):
            continue
        e = scores(a)
        out["edits"].append({"summary": runs[a.id][seeds[0]]["summary"], "arch_id": a.id,
                             "params": int(space.count(a)["params"]), **e,
                             **{f"{m} - homogeneous": paired(e[m], h[m]) for m in ("valid_acc", "test_acc")}})
    return out


def full_winner(full: dict[str, Any] | None, picks: Sequence[Architecture]) -> Architecture | None:
    """Of `picks`, the one with the best mean validation accuracy in a stage-4 or stage-5 report (seeds 2-6), once
    every pick has those seeds."""
    if full is None or len(full["edits"]) < len(picks):
        return None
    best = max(full["edits"], key=lambda e: statistics.fmean(e["valid_acc"]))
    return next(a for a in picks if a.id == best["arch_id"])


def full_ahead(full: dict[str, Any], arch: Architecture) -> bool:
    """Whether `arch`'s mean validation accuracy in a stage-4/5 report is above the homogeneous best's."""
    entry = next(e for e in full["edits"] if e["arch_id"] == arch.id)
    return statistics.fmean(entry["valid_acc"]) > statistics.fmean(full["homogeneous_best"]["valid_acc"])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edits", type=int, default=60, help="one-layer edits trained (a seeded permutation's first N)")
    ap.add_argument("--confirm", type=int, default=3, help="best edits retrained on the fresh seeds")
    ap.add_argument("--full", type=int, default=3, help="stage 4: the best N edits mixing operation or width, and the "
                    "homogeneous best, retrained with the full plain recipe on the fresh seeds")
    ap.add_argument("--full-homogeneous", type=int, default=5, help="stage 5: the short table's N best homogeneous "
                    "architectures retrained with the full plain recipe on seeds 2-6")
    ap.add_argument("--report", action="store_true", help="train nothing: the tables from the cache")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    recipe, _, data = recipe_data(False, "short")
    space = FlexiBertSpace(recipe.config(BASE, len(data.vocab)))
    home = best_homogeneous(SHORT_TABLE, space)
    candidates = edits(space, home, layer_configs(space))
    sample = sample_edits(candidates, args.edits)
    print(f"homogeneous best: {home}; {len(candidates)} one-layer edits with no more parameters, {len(sample)} sampled")
    by_id = {a.id: a for a in sample}
    if not args.report:
        train_all(space, data, sample, SELECT_SEEDS, "edit")
        picks = report(space, home, sample, args.confirm, len(candidates))["edits"][:args.confirm]
        train_all(space, data, [home, *(by_id[p["arch_id"]] for p in picks)], CONFIRM_SEEDS, "confirm")
    doc = report(space, home, sample, args.confirm, len(candidates))
    full_picks = [by_id[e["arch_id"]] for e in doc["edits"] if e["mixes_op_or_width"]][:args.full]
    if full_picks and not args.report:
        train_all(space, data, [home, *full_picks], CONFIRM_SEEDS, "full", TextRecipe(), FULL_CACHE)
    doc["full"] = full_report(space, home, full_picks) if full_picks else None
    winner = full_winner(doc["full"], full_picks)
    if winner is not None and not args.report:
        train_all(space, data, [home, winner], FULL_CONFIRM_SEEDS, "full-confirm", TextRecipe(), FULL_CACHE)
    doc["full_confirm"] = full_report(space, home, [winner], FULL_CONFIRM_SEEDS) if winner is not None else None
    homos = top_homogeneous(SHORT_TABLE, space, args.full_homogeneous)[1:] if args.full_homogeneous else []
    if homos and not args.report:
        train_all(space, data, [home, *homos], CONFIRM_SEEDS, "full-homogeneous", TextRecipe(), FULL_CACHE)
    doc["full_homogeneous"] = full_report(space, home, homos) if homos else None
    rival = full_winner(doc["full_homogeneous"], homos)
    doc["full_homogeneous_confirm"] = None
    if rival is not None and winner is not None and full_ahead(doc["full_homogeneous"], rival):
        if not args.report:
            train_all(space, data, [rival], FULL_CONFIRM_SEEDS, "full-rival", TextRecipe(), FULL_CACHE)
        doc["full_homogeneous_confirm"] = full_report(space, rival, [winner], FULL_CONFIRM_SEEDS)
    h = doc["homogeneous_best"]
    print(f"\nhomogeneous best {h['summary']} ({h['params']:,} params): seeds 0-1 valid {100 * h['select']['valid_acc']:.2f} "
          f"test {100 * h['select']['test_acc']:.2f}")
    print(f"{doc['edits_better_on_select']} of {len(doc['edits'])} edits above it on seeds 0-1 validation; best five:")
    for e in doc["edits"][:5]:
        print(f"  valid {100 * e['select']['valid_acc']:.2f} test {100 * e['select']['test_acc']:.2f} "
              f"{e['params']:>9,} {e['summary']}{'' if e['mixes_op_or_width'] else '  (same op and width in every layer)'}")
    m = doc["best_op_or_width_mix"]
    if m is not None:
        print(f"best edit whose layers differ in operation or width: valid {100 * m['select']['valid_acc']:.2f} test "
              f"{100 * m['select']['test_acc']:.2f} {m['params']:>9,} {m['summary']}")
    print(f"\nfresh seeds {list(CONFIRM_SEEDS)}, edit − homogeneous best (points, mean [95 % CI], paired t-test p, wins/ties/losses):")
    print("| edit | params | layers differ in op or width | valid | test |\n|---|---|---|---|---|")
    for c in doc["confirmed"]:
        cells = [fmt_diff(c[f"{m} - homogeneous"]) for m in ("valid_acc", "test_acc")]
        print(f"| {c['summary']} | {c['params']:,} | {'yes' if c['mixes_op_or_width'] else 'no'} | {cells[0]} | {cells[1]} |")
    for f in (doc["full"], doc["full_confirm"], doc["full_homogeneous"], doc["full_homogeneous_confirm"]):
        if f is None:
            continue
        print(f"\nfull plain recipe, fresh seeds {f['seeds']}: {f['homogeneous_best']['summary']} valid "
              f"{100 * statistics.fmean(f['homogeneous_best']['valid_acc']):.2f} test "
              f"{100 * statistics.fmean(f['homogeneous_best']['test_acc']):.2f}; other − it:")
        print("| architecture | params | valid | test |\n|---|---|---|---|")
        for e in f["edits"]:
            cells = [fmt_diff(e[f"{m} - homogeneous"]) for m in ("valid_acc", "test_acc")]
            print(f"| {e['summary']} | {e['params']:,} | {cells[0]} | {cells[1]} |")
    write_report(RESULTS / "transformer_hetero.json", doc, started)
    return doc


if __name__ == "__main__":
    main(sys.argv[1:])
