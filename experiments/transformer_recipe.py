"""A from-scratch training recipe for FlexiBERT encoders on Movie Review, beside TF-IDF + LR and Kim's CNN.

Issue 25 part 2, first step: how close do FlexiBERT-space encoders trained from scratch (no pretrained
embeddings offline) get to the classical baselines, and which recipe levers matter?

Split protocol (the same for every row): `movie_reviews(seed=0)`'s fixed 90/10 train/test split
(1,066 test sentences); a seeded 10 % of its training split (seed 0, 960 sentences) is the validation
split, the remaining 8,636 are training data. Everything that is chosen (TF-IDF's C, early-stopping
epochs, the recipe itself) is chosen on validation; test is reported. 10-fold CV would cost 10x.

Rows, each trained with seeds 0..n-1 (initialisation and batch order; the split stays fixed):
* `tfidf_lr`: TF-IDF of word 1-2-grams (sublinear tf) + logistic regression, C picked on validation from
  a grid; deterministic, so one run.
* `cnn`: Kim-style CNN (random 128-d embeddings, filters 3/4/5 x 100, max-over-time, dropout 0.5) trained
  with the same `TextRecipe` budget (epochs, early stopping, optimiser) as the encoders.
* `current/<arch>`: the recipe of experiments/transformer_mr.py (`train`: top-5,000 vocabulary, 48 tokens,
  dropout 0.1, AdamW lr 2e-3 wd 0.01, one-cycle, 3 epochs, no validation).
* `recipe/<arch>`: `TextRecipe()` (min-count-2 vocabulary, 40 tokens ~ 95th percentile, dropout 0.3, word
  dropout 0.1, AdamW lr 2e-3 wd 0.1, label smoothing 0.1, mean+max pooling, batch 64, warm-up + cosine,
  up to 15 epochs with early stopping on validation, patience 3).
* `ablation/<lever>/<arch>`: the recipe with one lever put back to the current setting (`schedule`: 3 epochs,
  no early stopping, as the current recipe); `ablation/bow-nb_init`, `ablation/bow-distill`: the bag-of-words
  recipe below without one of its two levers.
* `recipe+bow/<arch>` and `cnn+bow`: the recipe with a bag-of-words prior (`BOW`): token embeddings start with
  the Naive Bayes log-count ratio of each word along one direction (`nb_init` 3) and half the loss is
  distillation from TF-IDF + LR's cross-fitted (5-fold, C of the `tfidf_lr` row) probabilities on the
  training sentences (`distill` 0.5). Set once (the first values tried), not tuned on test.
* `recipe+bow/found` (`--found`): the recorded FlexiBERT table's best architecture by mean validation accuracy
  (nas/tables/transformer_mr, built with this recipe by build_transformer_table.py), retrained with `BOW`: the
  "best architecture found" row of issue 25 part 2, beside the baselines in the same table.
* `recipe+bow2/found` and `cnn+bow2` (`--found`): the same with the bigram prior as well (`nb_bigrams` 3, the
  unigram prior's scale: each training bigram's Naive Bayes log-count ratio, a learnt scalar added along the
  same direction at the pair's second word; NBSVM-bi's feature).
* `cv/recipe+bow/found`, `cv/recipe+bow2/found` (`--lever-cv K`): the found architecture with and without the
  bigram prior on K resampled validation splits (split k and training seed k): whether to use the lever is
  decided on their paired validation accuracy, never on test.

Every finished training is appended to a JSON-lines cache, so a killed run resumes where it stopped;
`--budget-min` stops starting new trainings after that many minutes (rerun to continue).

    nice -n 15 .venv/bin/python experiments/transformer_recipe.py                 # 3 seeds, full table
    nice -n 15 .venv/bin/python experiments/transformer_recipe.py --quick         # smoke run (~1 min)
    nice -n 15 .venv/bin/python experiments/transformer_recipe.py --found         # + the table's best, retrained
    nice -n 15 .venv/bin/python experiments/transformer_recipe.py --lever-cv 5    # the bigram lever, 5 splits
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from nas.datasets import TextSplits, movie_reviews
from nas.spaces.transformer import PAD, FlexiBertConfig, FlexiBertSpace
from nas.tabular import TRANSFORMER_TABLE_OPTIONS, transformer_mr_table
from reporting import append_cache, git_commit, protocol_report, read_cache  # experiments/reporting.py (on sys.path)
from transformer_mr import RecipeSplits, TextRecipe, describe, recipe_splits, train, train_recipe

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"

BASE = FlexiBertConfig(**TRANSFORMER_TABLE_OPTIONS)
"""The CPU-sized space of experiments/transformer_mr.py (`space_for`); vocabulary, length, dropout and
pooling come from the recipe."""


def _layer(op: str, **extra: Any) -> dict[str, Any]:
    return {"op": op, "hidden": 64, **extra, "ffn_depth": 1, "ffn": [{"dim": 128}]}


ARCHS: dict[str, dict[str, Any]] = {
    "attention": {"depth": 2, "layers": [_layer("attention", heads=2), _layer("attention", heads=2)]},
    "conv": {"depth": 2, "layers": [_layer("conv", kernel=3), _layer("conv", kernel=3)]},
    "conv+attention": {"depth": 2, "layers": [_layer("conv", kernel=3), _layer("attention", heads=2)]},
}
"""Fixed architectures: homogeneous attention, homogeneous convolution, and a heterogeneous mix (same widths)."""
FOUND = "found"
"""The arch name of the recorded table's best architecture by validation (`table_best`): `--found` rows."""


def table_best(root: Path | None = None) -> dict[str, Any]:
    """The architecture of the FlexiBERT table (`transformer_mr_table(root)`, default the committed one) with
    the highest validation accuracy, mean over its training seeds: what a search spending the whole table picks."""
    bench = transformer_mr_table(root)
    return max(bench.space.archs, key=lambda arch: bench(arch)["valid_acc"]).to_dict()


def arch_spec(name: str) -> dict[str, Any]:
    """The architecture a row trains: one of `ARCHS`, or `FOUND`."""
    return table_best() if name == FOUND else ARCHS[name]

def with_bow(recipe: TextRecipe) -> TextRecipe:
    """`recipe` plus the bag-of-words prior: Naive Bayes embedding direction and TF-IDF + LR distillation."""
    return replace(recipe, nb_init=3.0, distill=0.5)


BOW = with_bow(TextRecipe())
"""The recipe with the bag-of-words prior."""
BIGRAMS = 3.0
"""`nb_bigrams` of the `+bow2` rows: the bigram prior at the unigram prior's scale (set before any run)."""


def with_bow2(recipe: TextRecipe) -> TextRecipe:
    """`with_bow(recipe)` plus the bigram Naive Bayes prior (`TextRecipe.nb_bigrams`)."""
    return replace(with_bow(recipe), nb_bigrams=BIGRAMS)

LEVER_CV = "cv/"
"""Row prefix of the bigram lever's check on resampled validation splits (`--lever-cv`): `cv/recipe+bow` and
`cv/recipe+bow2` on the found architecture, seed k = validation split k (and training seed k)."""
TEACHER_TOKENS = TextRecipe(min_count=1, max_len=64)
"""The tokenisation TF-IDF + LR (the baseline row and the teacher) reads: every training word, 64 tokens."""
TEACHER_FOLDS = 5

CURRENT_TOKENS = TextRecipe(min_count=1, vocab_size=5000, max_len=48)
"""The tokenisation of experiments/transformer_mr.py (top-5,000 words, 48 tokens)."""

ABLATIONS: dict[str, TextRecipe] = {
    "tokenisation": replace(TextRecipe(), min_count=1, vocab_size=5000, max_len=48),
    "dropout": replace(TextRecipe(), dropout=0.1),
    "word_dropout": replace(TextRecipe(), word_dropout=0.0),
    "weight_decay": replace(TextRecipe(), weight_decay=0.01),
    "label_smoothing": replace(TextRecipe(), label_smoothing=0.0),
    "pooling": replace(TextRecipe(), pooling="mean"),
    "schedule": replace(TextRecipe(), max_epochs=3, patience=0),
    "bow-nb_init": replace(BOW, nb_init=0.0),
    "bow-distill": replace(BOW, distill=0.0),
}
"""The recipe with one lever put back to experiments/transformer_mr.py's setting; `bow-<lever>`: the
bag-of-words recipe without that lever (compared with the `recipe+bow` row)."""

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


class KimCNN(nn.Module):
    """Kim (2014) CNN-rand: embeddings -> parallel 1-D convolutions -> ReLU -> max over time -> dropout -> linear."""

    def __init__(self, vocab_size: int, num_classes: int = 2, embed: int = 128, kernels: Sequence[int] = (3, 4, 5),
                 maps: int = 100, dropout: float = 0.5) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, embed, padding_idx=PAD)
        self.convs = nn.ModuleList(nn.Conv1d(embed, maps, k, padding=k // 2) for k in kernels)
        self.drop, self.head = nn.Dropout(dropout), nn.Linear(maps * len(kernels), num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tokens(tokens).transpose(1, 2)
        pooled = [torch.relu(conv(x)).amax(-1) for conv in self.convs]
        return self.head(self.drop(torch.cat(pooled, dim=1)))


def tfidf_features(data: RecipeSplits) -> tuple[Any, Any, Any]:
    """TF-IDF of word 1-2-grams (sublinear tf) fitted on the training split: train, valid, test matrices."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+")
    return vec.fit_transform(data.texts("train")), vec.transform(data.texts("valid")), vec.transform(data.texts("test"))


def tfidf_lr(data: RecipeSplits) -> dict[str, Any]:
    """TF-IDF (1-2-grams, sublinear tf) + logistic regression with C picked on the validation split."""
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    xtr, xva, xte = tfidf_features(data)
    scores = {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000).fit(xtr, data.train_y.numpy())
        scores[c] = (model.score(xva, data.valid_y.numpy()), model)
    best_c = max(C_GRID, key=lambda c: scores[c][0])
    valid, model = scores[best_c]
    return {"valid_accuracy": float(valid), "test_accuracy": float(model.score(xte, data.test_y.numpy())),
            "C": best_c, "features": xtr.shape[1], "train_seconds": time.perf_counter() - start}


def tfidf_teacher(data: RecipeSplits, c: float, folds: int = TEACHER_FOLDS) -> torch.Tensor:
    """TF-IDF + LR class probabilities for every training sentence, each from a model that did not see it
    (`folds`-fold cross-fitting), so the soft targets carry the teacher's uncertainty, not its memory."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    xtr, _, _ = tfidf_features(data)
    probs = cross_val_predict(LogisticRegression(C=c, max_iter=2000), xtr, data.train_y.numpy(), cv=folds,
                              method="predict_proba")
    return torch.tensor(probs, dtype=torch.float32)


def as_text_splits(data: RecipeSplits) -> TextSplits:
    """The train / test part of a recipe split in the form `transformer_mr.train` takes."""
    return TextSplits(data.train_x, data.train_y, data.test_x, data.test_y, data.vocab)


def jobs(seeds: Sequence[int], archs: Sequence[str], ablation_archs: Sequence[str],
         found: bool = False, lever_cv: int = 0) -> list[tuple[str, str, int]]:
    """(row, arch, seed) in the order they run: baselines and the main rows seed by seed, then ablations,
    then (`found`) the table's best architecture retrained with the bag-of-words recipe, with and without
    bigrams (and the CNN with bigrams), then (`lever_cv`) the bigram lever's check on that many resampled
    validation splits."""
    out = [("tfidf_lr", "-", 0)]
    for seed in seeds:
        out.append(("cnn", "-", seed))
        for arch in archs:
            out += [("current", arch, seed), ("recipe", arch, seed)]
    for seed in seeds:
        out.append(("cnn+bow", "-", seed))
        out += [("recipe+bow", arch, seed) for arch in archs]
    for seed in seeds:
        for arch in ablation_archs:
            out += [(f"ablation/{lever}", arch, seed) for lever in ABLATIONS]
    if found:
        out += [("recipe+bow", FOUND, seed) for seed in seeds]
        for seed in seeds:
            out += [("recipe+bow2", FOUND, seed), ("cnn+bow2", "-", seed)]
    for fold in range(1, lever_cv + 1):
        out += [(f"{LEVER_CV}recipe+bow", FOUND, fold), (f"{LEVER_CV}recipe+bow2", FOUND, fold)]
    return out


def lever_check(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The bigram lever on resampled validation splits (`cv/` rows): validation accuracy with minus without,
    paired by split, mean and 95 % t-interval; None without such rows. Test accuracy is not used."""
    by = {(r["row"], r["seed"]): r["valid_accuracy"] for r in records if r["row"].startswith(LEVER_CV)}
    folds = sorted(k for (row, k) in by if row == f"{LEVER_CV}recipe+bow" and (f"{LEVER_CV}recipe+bow2", k) in by)
    if not folds:
        return None
    diff = np.array([by[f"{LEVER_CV}recipe+bow2", k] - by[f"{LEVER_CV}recipe+bow", k] for k in folds])
    half = float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else np.nan
    return {"splits": folds, "valid_without": [by[f"{LEVER_CV}recipe+bow", k] for k in folds],
            "valid_with": [by[f"{LEVER_CV}recipe+bow2", k] for k in folds], "valid_gain_mean": float(diff.mean()),
            "valid_gain_ci95": [float(diff.mean()) - half, float(diff.mean()) + half]}


def run_job(row: str, arch_name: str, seed: int, split: Callable[[TextRecipe, int], RecipeSplits],
            recipe: TextRecipe, teacher: Callable[[int], torch.Tensor]) -> dict[str, Any]:
    """One training (or the TF-IDF fit) of `row` on `arch_name` with `seed`; `split(recipe, k)` tokenises
    validation split k (0 everywhere but the `cv/` rows, where k = seed) and `teacher(k)` gives the
    distillation targets of the `+bow` rows on it. Parameters count every trained weight (the bigram
    prior's scalars too)."""
    fold = seed if row.startswith(LEVER_CV) else 0
    row = row.removeprefix(LEVER_CV)
    if row == "tfidf_lr":
        return tfidf_lr(split(TEACHER_TOKENS, fold))
    if row.endswith("+bow2"):
        row, recipe = row.removesuffix("+bow2"), with_bow2(recipe)
    elif row.endswith("+bow"):
        row, recipe = row.removesuffix("+bow"), with_bow(recipe)
    if row == "cnn":
        data = split(recipe, fold)
        torch.manual_seed(seed)
        model = KimCNN(len(data.vocab))
        soft = teacher(fold) if recipe.distill else None
        return {**train_recipe(model, data, recipe, seed, soft), "params": sum(p.numel() for p in model.parameters())}
    if row == "current":
        data = split(CURRENT_TOKENS, fold)
        space = FlexiBertSpace(replace(BASE, vocab_size=len(data.vocab), max_len=CURRENT_TOKENS.max_len))
        arch = space.validate(ARCHS[arch_name])
        return {**train(space, arch, as_text_splits(data), epochs=3, seed=seed, batch_size=64, lr=2e-3),
                "params": space.count(arch)["params"]}
    rec = ABLATIONS[row.split("/", 1)[1]] if row.startswith("ablation/") else recipe
    soft = teacher(fold) if rec.distill else None
    data = split(rec, fold)
    space = FlexiBertSpace(rec.config(BASE, len(data.vocab)))
    arch = space.validate(arch_spec(arch_name))
    torch.manual_seed(seed)
    model = space.build(arch)
    result = train_recipe(model, data, rec, seed, soft)
    return {**result, "params": sum(p.numel() for p in model.parameters()), "summary": describe(arch)}


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean test accuracy with its 95 % t-interval per row (protocol report against `tfidf_lr`)."""
    keys = sorted({(r["row"], r["arch"]) for r in records}, key=lambda k: (k[0] != "tfidf_lr", k[0] != "cnn", k))
    name = {k: k[0] if k[1] == "-" else f"{k[0]}/{k[1]}" for k in keys}
    values = {name[k]: [r["test_accuracy"] for r in records if (r["row"], r["arch"]) == k] for k in keys}
    with warnings.catch_warnings():  # TF-IDF + LR is deterministic: one run, flagged by the protocol
        warnings.simplefilter("ignore")
        rep = protocol_report(values, direction="max", baseline="tfidf_lr", min_seeds=3, label="movie_reviews")
    rows = []
    for k in keys:
        rs = [r for r in records if (r["row"], r["arch"]) == k]
        m = rep.method(name[k])
        rows.append({"row": name[k], "n": m.n, "test_mean": m.mean, "test_ci95": [m.ci95_low, m.ci95_high],
                     "valid_mean": float(np.mean([r["valid_accuracy"] for r in rs])) if "valid_accuracy" in rs[0]
                     else None, "seconds_mean": float(np.mean([r["train_seconds"] for r in rs])),
                     "epochs_mean": float(np.mean([r["epochs"] for r in rs])) if "epochs" in rs[0] else None,
                     "params": rs[0].get("params"), "ri_vs_tfidf_pct": m.ri_pct,
                     "ri_ci95": [m.ri_ci95_low, m.ri_ci95_high]})
    return {"rows": rows, "protocol": rep.to_dict()}


def ablation_deltas(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per lever and architecture: what the lever adds, recipe minus ablation, paired on the seeds both ran."""
    by = {(r["row"], r["arch"], r["seed"]): r for r in records}
    out = []
    for row, arch in sorted({(r, a) for r, a, _ in by if r.startswith("ablation/")}):
        lever = row.split("/", 1)[1]
        ref = "recipe+bow" if lever.startswith("bow-") else "recipe"
        seeds = [s for (r, a, s) in by if (r, a) == (row, arch) and (ref, arch, s) in by]
        if not seeds:
            continue
        diff = lambda key: float(np.mean([by[ref, arch, s][key] - by[row, arch, s][key] for s in seeds]))  # noqa: E731
        out.append({"lever": lever, "reference": ref, "arch": arch, "seeds": sorted(seeds),
                    "test_gain": diff("test_accuracy"), "valid_gain": diff("valid_accuracy")})
    return out


def table(rows: Sequence[dict[str, Any]]) -> str:
    fmt = lambda v: "-" if v is None or v != v else f"{100 * v:.2f}"  # noqa: E731
    lines = [f"{'row':<38} {'n':>2} {'test %':>7} {'95% CI':>15} {'valid %':>7} {'epochs':>6} {'params':>9} {'s/train':>8}"]
    for r in rows:
        lo, hi = r["test_ci95"]
        ci = "-" if lo != lo else f"[{fmt(lo)}, {fmt(hi)}]"
        ep = "-" if r["epochs_mean"] is None else f"{r['epochs_mean']:.1f}"
        params = "-" if r["params"] is None else f"{int(r['params']):,}"
        lines.append(f"{r['row']:<38} {r['n']:>2} {fmt(r['test_mean']):>7} {ci:>15} {fmt(r['valid_mean']):>7} "
                     f"{ep:>6} {params:>9} {r['seconds_mean']:>8.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="run only seeds >= this (e.g. in a second process beside the first seeds; same cache)")
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    ap.add_argument("--ablation-archs", nargs="*", default=["attention"], choices=list(ARCHS))
    ap.add_argument("--ablations-only", action="store_true",
                    help="run only the ablation rows (e.g. in a second process beside the main rows; same cache)")
    ap.add_argument("--found", action="store_true",
                    help="also retrain the recorded table's best architecture by validation with the bag-of-words "
                         "recipe (rows recipe+bow/found)")
    ap.add_argument("--lever-cv", type=int, default=0, metavar="K",
                    help="check the bigram lever on K resampled validation splits (the found architecture with "
                         "and without it, validation accuracy only; rows cv/...)")
    ap.add_argument("--budget-min", type=float, default=None, help="start no training after this many minutes")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 seed, 1 architecture, 600 training sentences, 2 epochs, no ablations")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    recipe = TextRecipe()
    if args.quick:
        args.seeds, args.archs, args.ablation_archs = 1, ["conv+attention"], []
        recipe = replace(recipe, max_epochs=2, patience=0)
    stem = "transformer_recipe_quick" if args.quick else "transformer_recipe"
    out = args.out or RESULTS / f"{stem}.json"
    cache = out.with_name(f"{stem}_cache.jsonl")

    full = movie_reviews(seed=0, max_len=64, vocab_size=10**6)  # every training word; re-tokenised per recipe
    if args.quick:
        full = TextSplits(full.train_x[:700], full.train_y[:700], full.test_x[:300], full.test_y[:300], full.vocab)
    memo: dict[TextRecipe, RecipeSplits] = {}

    def split(rec: TextRecipe, fold: int = 0) -> RecipeSplits:
        key = (replace(rec, dropout=0.0, pooling="mean", word_dropout=0.0, lr=0.0, weight_decay=0.0,
                       label_smoothing=0.0, warmup=0.0, max_epochs=1, patience=0, batch_size=1, nb_init=0.0,
                       nb_bigrams=0.0, distill=0.0), fold)  # tokenisation and validation split only
        if key not in memo:
            memo[key] = recipe_splits(rec, full, valid_fraction=0.1, seed=fold)
        return memo[key]

    done = {(r["row"], r["arch"], r["seed"]): r for r in read_cache(cache)}
    soft: dict[int, torch.Tensor] = {}

    def teacher(fold: int = 0) -> torch.Tensor:
        """Cross-fitted TF-IDF + LR probabilities on validation split `fold`'s training part, with the C the
        `tfidf_lr` row picked on the main validation split."""
        if fold not in soft:
            base = done.get(("tfidf_lr", "-", 0)) or tfidf_lr(split(TEACHER_TOKENS))
            soft[fold] = tfidf_teacher(split(TEACHER_TOKENS, fold), base["C"])
        return soft[fold]

    todo = jobs(range(args.seeds), args.archs, args.ablation_archs, args.found, args.lever_cv)
    if args.ablations_only:
        todo = [job for job in todo if job[0].startswith("ablation/")]
    todo = [job for job in todo if job[2] >= args.first_seed or job[0] == "tfidf_lr"]
    start = time.perf_counter()
    main_split = split(recipe)
    print(f"Movie Review: {len(main_split.train_y)} train / {len(main_split.valid_y)} valid / "
          f"{len(main_split.test_y)} test sentences; recipe vocabulary {len(main_split.vocab)}, max_len {recipe.max_len}")
    for row, arch, seed in todo:
        if (row, arch, seed) in done:
            continue
        if args.budget_min is not None and time.perf_counter() - start > 60 * args.budget_min:
            print(f"budget of {args.budget_min} min spent: stopping before {row}/{arch} seed {seed} (rerun to resume)")
            break
        result = run_job(row, arch, seed, split, recipe, teacher)
        rec = {"row": row, "arch": arch, "seed": seed, **result}
        done[(row, arch, seed)] = rec
        append_cache(cache, rec)
        print(f"{row:<24} {arch:<16} seed {seed}: test {100 * result['test_accuracy']:.2f} %  "
              f"({result['train_seconds']:.0f} s)", flush=True)

    records = [done[k] for k in todo if k in done]
    main_records = [r for r in records if not r["row"].startswith(LEVER_CV)]
    summary = {**summarise(main_records), "ablation_gains": ablation_deltas(main_records),
               "bigram_lever": lever_check(records)}
    print(table(summary["rows"]))
    for d in summary["ablation_gains"]:
        print(f"lever {d['lever']:<16} on {d['arch']:<15} seeds {d['seeds']}: {d['reference']} minus ablation "
              f"test {100 * d['test_gain']:+.2f}, valid {100 * d['valid_gain']:+.2f} points")
    if summary["bigram_lever"]:
        lev = summary["bigram_lever"]
        lo, hi = lev["valid_gain_ci95"]
        print(f"bigram lever on {len(lev['splits'])} resampled validation splits (found architecture): valid "
              f"{100 * lev['valid_gain_mean']:+.2f} points [{100 * lo:+.2f}, {100 * hi:+.2f}] with minus without")
    complete = all(k in done for k in todo)
    doc = {
        "experiment": "transformer_recipe", "argv": sys.argv[1:] if argv is None else list(argv),
        "complete": complete, "protocol_note": "fixed split: movie_reviews(seed=0) 90/10 train/test, 10 % of train "
        "(seed 0) as validation; seeds vary initialisation and batch order only",
        "recipe": asdict(recipe), "bow_recipe": asdict(with_bow(recipe)), "bow2_recipe": asdict(with_bow2(recipe)),
        "teacher": {"model": "TF-IDF 1-2-grams + LR, C of the tfidf_lr row", "folds": TEACHER_FOLDS}, "ablations": {k: asdict(v) for k, v in ABLATIONS.items()},
        "archs": {**ARCHS, **({FOUND: table_best()} if args.found or args.lever_cv else {})}, "space": asdict(BASE),
        "data": {"train": len(main_split.train_y), "valid": len(main_split.valid_y), "test": len(main_split.test_y),
                 "vocab": len(main_split.vocab)},
        **summary, "records": records,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "git_commit": git_commit(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}" + ("" if complete else " (incomplete: rerun to finish)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
