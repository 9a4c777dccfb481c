"""FlexiBERT-style heterogeneous transformers on Movie Review polarity: do sampled architectures learn?

Acceptance criterion of the transformer part of the spaces issue: at least 3 different sampled
heterogeneous architectures (each mixing at least two token-mixer types across its layers) train end to
end and beat the majority-class baseline (50 % on this balanced dataset). Every architecture is trained
from scratch with the same recipe (AdamW, fixed epochs, one CPU thread) on a fixed seeded 90/10 split
(vocabulary from the training split); the table reports test accuracy next to the majority-class
baseline, parameters, FLOPs per sentence and training time.

    .venv/bin/python experiments/transformer_mr.py             # 4 architectures x 3 epochs
    .venv/bin/python experiments/transformer_mr.py --quick     # smoke run: 3 architectures x 1 epoch
    .venv/bin/python experiments/transformer_mr.py --recount-flops   # FLOPs of the recorded rows again, no training
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.datasets import TextSplits, movie_reviews
from nas.errors import ConfigError, check_count, check_int, check_number
from nas.spaces import Architecture
from nas.spaces.training import accuracy as training_accuracy
from nas.spaces.training import diverged
from nas.spaces.transformer import POOLINGS, FlexiBertConfig, FlexiBertSpace, check_text_data
from flops_recount import Recount, add_option, read_json, write_json  # experiments/ is on sys.path
from reporting import git_commit  # experiments/reporting.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
MAX_TRIES = 1000  # bound on draws while looking for heterogeneous architectures
HEADER = f"{'#':>2} {'test acc %':>10} {'train acc %':>11} {'params':>9} {'MFLOPs':>7} {'train s':>8}  architecture"


def space_for(data: TextSplits, max_len: int) -> FlexiBertSpace:
    """The CPU-sized search space of this experiment (widths 32/64, FFN 64/128, 2-3 layers)."""
    return FlexiBertSpace(FlexiBertConfig(vocab_size=len(data.vocab), num_classes=2, max_len=max_len,
                                          depths=(2, 3), hidden=(32, 64), heads=(2, 4), kernels=(3, 7),
                                          ffn_depths=(1, 2), ffn_dims=(64, 128), dropout=0.1))


def heterogeneous_samples(space: FlexiBertSpace, n: int, seed: int) -> list[Architecture]:
    """`n` distinct uniform samples whose layers use at least two different token mixers."""
    rng, out = np.random.default_rng(seed), []
    for _ in range(MAX_TRIES):
        arch = space.sample(rng)
        if len({layer["op"] for layer in arch["layers"]}) >= 2 and arch not in out:
            out.append(arch)
            if len(out) == n:
                return out
    raise RuntimeError(f"found only {len(out)} heterogeneous architectures in {MAX_TRIES} draws")


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of `model` in eval mode (`nas.spaces.training.accuracy`: NaN when some logits are not finite,
    a diverged network), as the float32 value the recorded tables hold (so resumed tables stay comparable)."""
    model.eval()
    acc = training_accuracy(model, x, y, batch_size=512)
    return acc if math.isnan(acc) else float(np.float32(acc))


def check_finite_loss(loss: torch.Tensor, epoch: int, step: int, lr: float) -> float:
    """The value of `loss`; ConfigError naming `lr` when it is NaN or infinite (the training diverged: every later
    step, and the accuracy of its weights, would be meaningless), raised before the optimiser steps on it."""
    value = loss.item()
    if not math.isfinite(value):
        raise diverged("lr", value, f"epoch {epoch}, step {step}", lr)
    return value


def train(space: FlexiBertSpace, arch: Architecture, data: TextSplits, epochs: int, seed: int,
          batch_size: int, lr: float) -> dict[str, Any]:
    check_count(epochs, "epochs")
    check_count(batch_size, "batch_size")
    torch.manual_seed(seed)
    model = space.build(arch)
    check_text_data(model, {"train": (data.train_x, data.train_y), "test": (data.test_x, data.test_y)})
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * -(-len(data.train_y) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    start, losses = time.perf_counter(), []
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for step, idx in enumerate(torch.randperm(len(data.train_y), generator=g).split(batch_size)):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
            value = check_finite_loss(loss, epoch + 1, step + 1, lr)
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + value * len(idx), count + len(idx)
        losses.append(total / count)
    seconds = time.perf_counter() - start
    return {"train_loss": losses, "train_accuracy": accuracy(model, data.train_x, data.train_y),
            "test_accuracy": accuracy(model, data.test_x, data.test_y), "train_seconds": seconds}


# ---------------------------------------------------------------------------------------- the text recipe
@dataclass(frozen=True)
class TextRecipe:
    """How a FlexiBERT encoder (or any tokens -> logits module) is trained from scratch on short text.

    Tokenisation: the vocabulary is every training word seen at least `min_count` times (at most
    `vocab_size` if given); sentences are cut / padded to `max_len` tokens. Model options set on the space's
    config (`config`): `dropout` and `pooling`. Training: AdamW (`lr`, `weight_decay`), `label_smoothing`,
    `word_dropout` (each training token replaced by <unk> with this probability), linear warm-up over the
    first `warmup` fraction of `max_epochs` then cosine decay to 0, early stopping when validation accuracy
    has not improved for `patience` epochs (the best epoch's weights are kept; `patience=0`: never stop).
    The defaults are set from common practice for small from-scratch text models and checked lever by lever
    on Movie Review's validation split (one-lever ablations in experiments/transformer_recipe.py).

    Bag-of-words prior (all off by default): `nb_init` adds each word's Naive Bayes log-count ratio on the
    training split (NBSVM's feature, Wang & Manning 2012), times this scale, to its token embedding along one
    fixed random unit direction; `nb_bigrams` does the same for each pair of adjacent words (a learnt scalar
    per training bigram, started at its log-count ratio times this scale, added at the pair's second word:
    NBSVM-bi's feature); `distill` is the weight of a teacher's soft targets in the loss (the teacher:
    cross-fitted probabilities on the training split, passed to `train_recipe`; the hard-label loss gets
    1 - `distill`).

    Every setting is checked when the recipe is made (a ConfigError names the field): counts positive
    (`min_count`, `max_len`, `max_epochs`, `batch_size`), `vocab_size` None or at least 3 (<pad>, <unk> and
    one word), `patience` >= 0, `lr`, `weight_decay`, `nb_init` and `nb_bigrams` finite and >= 0, `warmup` in [0, 1],
    `dropout` and `word_dropout` in [0, 1), `label_smoothing` and `distill` in [0, 1].
    """

    min_count: int = 2
    vocab_size: int | None = None
    max_len: int = 40
    dropout: float = 0.3
    pooling: str = "mean_max"
    word_dropout: float = 0.1
    lr: float = 2e-3
    weight_decay: float = 0.1
    label_smoothing: float = 0.1
    warmup: float = 0.1
    max_epochs: int = 15
    patience: int = 3
    batch_size: int = 64
    nb_init: float = 0.0
    nb_bigrams: float = 0.0
    distill: float = 0.0

    def __post_init__(self) -> None:
        for name in ("min_count", "max_len", "max_epochs", "batch_size"):
            check_count(getattr(self, name), name)
        if self.vocab_size is not None:
            check_int(self.vocab_size, "vocab_size", 3)  # <pad>, <unk> and at least one word; None: no cap
        check_int(self.patience, "patience", 0)  # 0: never stop early
        for name in ("lr", "weight_decay", "nb_init", "nb_bigrams", "warmup", "dropout", "word_dropout", "label_smoothing",
                     "distill"):
            check_number(getattr(self, name), name, positive=False)
        for name, top, closed in (("warmup", 1.0, True), ("dropout", 1.0, False), ("word_dropout", 1.0, False),
                                  ("label_smoothing", 1.0, True), ("distill", 1.0, True)):
            v = getattr(self, name)
            if v > top or (v == top and not closed):
                raise ConfigError(f"{name}: expected a number in [0, {top:g}{']' if closed else ')'}, got {v!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling: unknown pooling {self.pooling!r} (known: {', '.join(POOLINGS)})")

    def config(self, base: FlexiBertConfig, vocab_size: int) -> FlexiBertConfig:
        """`base` with this recipe's vocabulary size, length, dropout and pooling."""
        return replace(base, vocab_size=vocab_size, max_len=self.max_len, dropout=self.dropout, pooling=self.pooling)


@dataclass(frozen=True)
class RecipeSplits:
    """Token ids [n, max_len] of a train / valid / test split tokenised by a `TextRecipe`, and the vocabulary."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    valid_x: torch.Tensor
    valid_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    vocab: tuple[str, ...]

    def texts(self, part: str) -> list[str]:
        """The sentences of `part` ("train", "valid", "test") as space-joined in-vocabulary words (for TF-IDF)."""
        x = getattr(self, f"{part}_x")
        return [" ".join(self.vocab[i] for i in row if i > 1) for row in x.tolist()]


def recipe_splits(recipe: TextRecipe, data: TextSplits, valid_fraction: float = 0.1, seed: int = 0) -> RecipeSplits:
    """Carve a seeded validation split out of `data`'s training split and re-tokenise all three by `recipe`.

    `data` should be loaded with a vocabulary holding every training word (`movie_reviews(vocab_size=10**6,
    max_len=64)`), so that the recipe's vocabulary, built from the remaining training sentences only, sees
    the true word counts; words outside it become <unk> (id 1). `valid_fraction` must leave at least one
    sentence in both parts (a ConfigError names it otherwise).
    """
    if not isinstance(recipe, TextRecipe):
        raise ConfigError(f"recipe: expected a TextRecipe, got {type(recipe).__name__}")
    check_number(valid_fraction, "valid_fraction")
    n_valid = int(round(valid_fraction * len(data.train_y)))
    if not 1 <= n_valid < len(data.train_y):
        raise ConfigError(f"valid_fraction: {valid_fraction!r} of the {len(data.train_y)} training sentences gives "
                          f"{n_valid} validation sentences; it must leave at least one in each part")
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(data.train_y)))
    valid, train_ = order[:n_valid], order[n_valid:]
    counts = Counter(int(i) for i in data.train_x[train_].flatten().tolist() if i > 1)
    kept = sorted((i for i, c in counts.items() if c >= recipe.min_count), key=lambda i: (-counts[i], data.vocab[i]))
    kept = kept[: recipe.vocab_size - 2] if recipe.vocab_size else kept
    lookup = torch.ones(len(data.vocab), dtype=torch.long)  # everything else -> <unk>
    lookup[0] = 0
    lookup[torch.tensor(kept, dtype=torch.long)] = torch.arange(2, len(kept) + 2)

    def encode(x: torch.Tensor) -> torch.Tensor:
        x = lookup[x[:, : recipe.max_len]]
        return nn.functional.pad(x, (0, recipe.max_len - x.shape[1]))

    vocab = ("<pad>", "<unk>", *(data.vocab[i] for i in kept))
    return RecipeSplits(encode(data.train_x[train_]), data.train_y[train_], encode(data.train_x[valid]),
                        data.train_y[valid], encode(data.test_x), data.test_y, vocab)


def nb_log_ratio(x: torch.Tensor, y: torch.Tensor, vocab_size: int, alpha: float = 1.0,
                 ignore_below: int = 2) -> torch.Tensor:
    """Per token id, log of (share of positive sentences' word presences) / (share of negative ones'), with
    add-`alpha` smoothing (binary labels; ids below `ignore_below`, padding and <unk> by default, get 0)."""
    rows = torch.arange(len(x))[:, None].expand_as(x)
    present = torch.unique(rows.reshape(-1) * vocab_size + x.reshape(-1))  # each word once per sentence
    token, label = present % vocab_size, y[present // vocab_size]
    keep = token >= ignore_below  # <pad> and <unk> carry no evidence
    token, label = token[keep], label[keep]
    pos = alpha + torch.bincount(token[label == 1], minlength=vocab_size).double()
    neg = alpha + torch.bincount(token[label == 0], minlength=vocab_size).double()
    ratio = (pos / pos.sum()).log() - (neg / neg.sum()).log()
    ratio[:ignore_below] = 0.0
    return ratio.float()


def nb_direction(dim: int) -> torch.Tensor:
    """The fixed random unit direction the Naive Bayes priors write along (its own generator, apart from the
    model's initialisation, so the same direction serves every training seed)."""
    u = torch.randn(dim, generator=torch.Generator().manual_seed(1234))
    return u / u.norm()


def add_nb_direction(embedding: nn.Embedding, ratio: torch.Tensor, scale: float) -> None:
    """Add `scale` x `ratio[w]` to every token embedding along `nb_direction`."""
    with torch.no_grad():
        embedding.weight += scale * ratio[:, None] * nb_direction(embedding.embedding_dim)[None, :]


def bigram_keys(x: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Key `prev * vocab_size + word` of each adjacent pair of real words in `x` [n, L] ([n, L - 1]; -1
    where either word is <pad> or <unk>)."""
    prev, word = x[:, :-1], x[:, 1:]
    return torch.where((prev > 1) & (word > 1), prev * vocab_size + word, torch.full_like(prev, -1))


class BigramPrior(nn.Module):
    """A token embedding plus, at each word, a learnt scalar of the bigram it closes (the previous word and
    it) along `nb_direction`: with mean pooling, a Naive Bayes bigram classifier at the start of training.

    `keys`: the sorted bigram keys (`bigram_keys`) seen in training; `ratio`: their Naive Bayes log-count
    ratios, times `scale`, the scalars' starting values. Unseen bigrams add nothing (index 0, fixed at 0).
    """

    def __init__(self, tokens: nn.Embedding, keys: torch.Tensor, ratio: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.tokens = tokens
        self.register_buffer("keys", keys)
        self.register_buffer("direction", nb_direction(tokens.embedding_dim))
        self.bigrams = nn.Embedding(len(keys) + 1, 1, padding_idx=0)
        with torch.no_grad():
            self.bigrams.weight.copy_(torch.cat([torch.zeros(1), scale * ratio])[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = bigram_keys(x, self.tokens.num_embeddings)
        pos = torch.searchsorted(self.keys, key).clamp(max=len(self.keys) - 1)
        index = torch.where(self.keys[pos] == key, pos + 1, torch.zeros_like(pos))
        score = nn.functional.pad(self.bigrams(index).squeeze(-1), (1, 0))  # a bigram counts at its second word
        return self.tokens(x) + score[..., None] * self.direction


def bigram_prior(embedding: nn.Embedding, x: torch.Tensor, y: torch.Tensor, scale: float,
                 alpha: float = 1.0) -> BigramPrior:
    """`BigramPrior` over every bigram of the training sentences `x` with labels `y`, started at its Naive
    Bayes log-count ratio (add-`alpha` smoothing) times `scale`."""
    key = bigram_keys(x, embedding.num_embeddings)
    keys, inverse = torch.unique(key[key >= 0], return_inverse=True)
    compact = torch.zeros_like(key)  # 0: no bigram; else 1 + the index in `keys`
    compact[key >= 0] = inverse + 1
    ratio = nb_log_ratio(compact, y, len(keys) + 1, alpha, ignore_below=1)[1:]
    return BigramPrior(embedding, keys, ratio, scale)


def check_teacher(model: nn.Module, teacher: Any, data: RecipeSplits, distill: float) -> None:
    """ConfigError naming `teacher` unless it is a finite float tensor [n_train, classes] (classes: the model's outputs
    on one training sentence) whose rows are probabilities (>= 0, summing to 1 within 1e-3); a wrong shape would
    broadcast in the soft-target loss and a NaN would train the weights to NaN."""
    n = len(data.train_y)
    if teacher is None:
        raise ConfigError(f"teacher: recipe.distill={distill} needs teacher probabilities for the {n} training "
                          "sentences")
    if not isinstance(teacher, torch.Tensor) or not teacher.is_floating_point():
        got = teacher.dtype if isinstance(teacher, torch.Tensor) else type(teacher).__name__
        raise ConfigError(f"teacher: expected a float tensor of class probabilities (torch.as_tensor) for "
                          f"recipe.distill={distill}, got {got}")
    was_training = model.training
    model.eval()  # no dropout draws: the training's random stream is untouched
    with torch.no_grad():
        classes = model(data.train_x[:1]).shape[-1]
    model.train(was_training)
    if tuple(teacher.shape) != (n, classes):
        raise ConfigError(f"teacher: expected probabilities of shape [{n}, {classes}] (training sentences, the model's "
                          f"classes) for recipe.distill={distill}, got shape {tuple(teacher.shape)}")
    if not bool(torch.isfinite(teacher).all()):
        raise ConfigError(f"teacher: the probabilities hold NaN or infinite values (recipe.distill={distill})")
    low, worst = float(teacher.min()), float((teacher.double().sum(1) - 1).abs().max())
    if low < 0 or worst > 1e-3:
        raise ConfigError(f"teacher: expected rows of class probabilities (>= 0, summing to 1; softmax logits first) "
                          f"for recipe.distill={distill}, got a smallest value {low:g} and a row sum off 1 by "
                          f"{worst:g}")


def train_recipe(model: nn.Module, data: RecipeSplits, recipe: TextRecipe, seed: int,
                 teacher: torch.Tensor | None = None) -> dict[str, Any]:
    """Train `model` (tokens -> logits) by `recipe`, early-stopped on `data`'s validation split.

    `teacher`: class probabilities [n_train, classes] for the training sentences, required when
    `recipe.distill` > 0 (checked first: `check_teacher`). With `recipe.nb_init` the model's token embedding
    (`model.tokens`) gets the Naive Bayes direction before training; with `recipe.nb_bigrams` it is wrapped in a `BigramPrior`
    (the model gains one parameter per training bigram). Returns validation and test accuracy of the best epoch's weights
    (which the model keeps), that epoch, the epochs run, per-epoch training loss and validation accuracy,
    and wall seconds. `data` is checked against the model first (`check_text_data`: token ids below its
    `vocab_size`, sentences no longer than its `max_len`, labels below its `num_classes`, no split empty).
    A step whose loss is NaN or infinite stops the training with a ConfigError naming `lr`, the epoch and the step.
    """
    if not isinstance(recipe, TextRecipe):
        raise ConfigError(f"recipe: expected a TextRecipe, got {type(recipe).__name__}")
    check_text_data(model, {part: (getattr(data, f"{part}_x"), getattr(data, f"{part}_y"))
                            for part in ("train", "valid", "test")})
    if teacher is not None or recipe.distill:
        check_teacher(model, teacher, data, recipe.distill)
    if recipe.nb_init:
        embedding = getattr(model, "tokens", None)
        if not isinstance(embedding, nn.Embedding):
            raise ValueError(f"nb_init: {type(model).__name__} has no token embedding `tokens` to initialise")
        add_nb_direction(embedding, nb_log_ratio(data.train_x, data.train_y, embedding.num_embeddings),
                         recipe.nb_init)
    if recipe.nb_bigrams:
        embedding = getattr(model, "tokens", None)
        if not isinstance(embedding, nn.Embedding):
            raise ValueError(f"nb_bigrams: {type(model).__name__} has no token embedding `tokens` to extend")
        model.tokens = bigram_prior(embedding, data.train_x, data.train_y, recipe.nb_bigrams)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    per_epoch = -(-len(data.train_y) // recipe.batch_size)
    total, warm = recipe.max_epochs * per_epoch, max(1, int(recipe.warmup * recipe.max_epochs * per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    g = torch.Generator().manual_seed(seed)
    start, losses, valid_accs = time.perf_counter(), [], []
    best, best_state, best_epoch = -1.0, None, 0
    for epoch in range(recipe.max_epochs):
        model.train()
        run, count = 0.0, 0
        for step, idx in enumerate(torch.randperm(len(data.train_y), generator=g).split(recipe.batch_size)):
            x = data.train_x[idx]
            if recipe.word_dropout > 0:
                drop = (torch.rand(x.shape, generator=g) < recipe.word_dropout) & (x != 0)
                x = x.masked_fill(drop, 1)
            opt.zero_grad()
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, data.train_y[idx], label_smoothing=recipe.label_smoothing)
            if recipe.distill:
                soft = -(teacher[idx] * logits.log_softmax(1)).sum(1).mean()
                loss = (1 - recipe.distill) * loss + recipe.distill * soft
            value = check_finite_loss(loss, epoch + 1, step + 1, recipe.lr)
            loss.backward()
            opt.step()
            sched.step()
            run, count = run + value * len(idx), count + len(idx)
        losses.append(run / count)
        valid_accs.append(accuracy(model, data.valid_x, data.valid_y))
        if valid_accs[-1] > best:
            best, best_epoch = valid_accs[-1], epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif recipe.patience and epoch + 1 - best_epoch >= recipe.patience:
            break
    seconds = time.perf_counter() - start
    if best_state is None:  # every validation accuracy NaN: the last step's update made the weights non-finite
        raise ConfigError(f"lr: the weights diverged (validation accuracy per epoch: {valid_accs}); lower lr "
                          f"({recipe.lr})")
    model.load_state_dict(best_state)
    return {"valid_accuracy": best, "test_accuracy": accuracy(model, data.test_x, data.test_y),
            "best_epoch": best_epoch, "epochs": len(losses), "train_loss": losses, "valid_curve": valid_accs,
            "train_seconds": seconds}


def describe(arch: Architecture) -> str:
    parts = []
    for layer in arch["layers"]:
        extra = f"/h{layer['heads']}" if "heads" in layer else f"/k{layer['kernel']}" if "kernel" in layer else ""
        ffn = "-".join(str(f["dim"]) for f in layer["ffn"])
        parts.append(f"{layer['op']}{extra}@{layer['hidden']}[{ffn}]")
    return " | ".join(parts)


def row_line(i: int, row: dict[str, Any]) -> str:
    """One line of the printed table (under `HEADER`)."""
    return (f"{i:>2} {100 * row['test_accuracy']:>10.2f} {100 * row['train_accuracy']:>11.2f} {row['params']:>9.0f} "
            f"{row['flops_per_sentence'] / 1e6:>7.2f} {row['train_seconds']:>8.1f}  {row['summary']}")


def recount_flops(path: Path, argv: Sequence[str] | None) -> int:
    """`--recount-flops`: each recorded architecture of `path` rebuilt untrained on the recorded settings' space,
    its FLOPs per sentence counted again as a run counts them; the rows are rewritten and the table reprinted."""
    doc = read_json(path)
    s = doc["settings"]
    space = space_for(movie_reviews(seed=s["seed"], max_len=s["max_len"], vocab_size=s["vocab_size"]), s["max_len"])
    if space.to_spec() != doc["space"]:
        raise SystemExit(f"--recount-flops: {path} was recorded on another space than this script builds")
    recount = Recount("transformer_mr.py", space.count, argv)
    print(HEADER)
    for i, row in enumerate(doc["rows"]):
        row["flops_per_sentence"] = recount.flops(row["arch"], row["flops_per_sentence"], row["params"])
        print(row_line(i, row))
    doc["flops_recount"] = recount.summary()
    print(recount.describe())
    write_json(path, doc)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-len", type=int, default=48)
    ap.add_argument("--vocab-size", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 architectures x 1 epoch")
    ap.add_argument("--out", type=Path, default=None)
    add_option(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.archs, args.epochs = 3, 1
    name = "transformer_mr_quick.json" if args.quick else "transformer_mr.json"
    out = args.out or ROOT / "experiments" / "results" / name
    torch.set_num_threads(1)
    if args.recount_flops:
        return recount_flops(out, argv)

    data = movie_reviews(seed=args.seed, max_len=args.max_len, vocab_size=args.vocab_size)
    majority = int(data.train_y.float().mean() >= 0.5)
    baseline = float((data.test_y == majority).float().mean())
    space = space_for(data, args.max_len)
    rows = []
    print(f"Movie Review polarity: {len(data.train_y)} train / {len(data.test_y)} test sentences, vocabulary "
          f"{len(data.vocab)}, max_len {args.max_len}; majority-class baseline {100 * baseline:.2f} %")
    print(HEADER)
    for i, arch in enumerate(heterogeneous_samples(space, args.archs, args.seed)):
        counts = space.count(arch)
        result = train(space, arch, data, args.epochs, args.seed, args.batch_size, args.lr)
        row = {"arch_id": arch.id, "arch": arch.to_dict(), "summary": describe(arch), "params": counts["params"],
               "flops_per_sentence": counts["flops"], **result, "beats_baseline": result["test_accuracy"] > baseline}
        rows.append(row)
        print(row_line(i, row), flush=True)
    passed = sum(r["beats_baseline"] for r in rows)
    ok = passed >= 3
    print(f"{passed}/{len(rows)} architectures beat the majority-class baseline ({100 * baseline:.2f} %): "
          f"{'PASS' if ok else 'FAIL'} (criterion: at least 3)")
    doc = {
        "experiment": "transformer_mr", "argv": sys.argv[1:] if argv is None else list(argv),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "space": space.to_spec(), "data": {"train": len(data.train_y), "test": len(data.test_y),
                                           "vocab": len(data.vocab), "max_len": args.max_len},
        "majority_baseline": baseline, "rows": rows, "passed": passed, "criterion_met": ok,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "git_commit": git_commit(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
