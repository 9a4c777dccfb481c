"""Offline datasets for the built-in spaces, read from the shared data folder (never downloaded)."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import ConfigError, check_int
from nas.tabular import data_dir

if TYPE_CHECKING:
    import torch
    from torch_geometric.data import Data

log = logging.getLogger(__name__)

PLANETOID_NAMES = ("Cora", "CiteSeer", "PubMed")


def planetoid(name: str, root: str | Path | None = None, normalize_features: bool = True) -> "Data":
    """A Planetoid citation graph (Cora, CiteSeer, PubMed) with its public split, as one PyG `Data`.

    `root` holds `<Name>/raw/` (default: `<shared data>/planetoid`); the tree is copied to a temporary
    folder first because PyG writes `processed/` beside `raw/`. Features are row-normalised to sum 1
    (PyG's `NormalizeFeatures`, as in Kipf & Welling's GCN) unless `normalize_features` is False.
    """
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import NormalizeFeatures

    canonical = {n.lower(): n for n in PLANETOID_NAMES}.get(str(name).lower())
    if canonical is None:
        raise ConfigError(f"name: unknown Planetoid graph {name!r} (known: {', '.join(PLANETOID_NAMES)})")
    base = Path(root) if root is not None else data_dir() / "planetoid"
    raw = base / canonical / "raw"
    if not raw.is_dir():
        raise ConfigError(f"planetoid {canonical}: raw files not found under {raw} "
                          "(set NAS_DATA_DIR to the folder holding planetoid/, or pass root)")
    with tempfile.TemporaryDirectory(prefix="nas-planetoid-") as tmp:
        shutil.copytree(raw, Path(tmp) / canonical / "raw")
        messages = io.StringIO()
        with contextlib.redirect_stderr(messages):  # PyG prints "Processing... Done!" while processing
            data = Planetoid(tmp, canonical, split="public")[0]
    log.debug("planetoid %s loaded from %s: %s %s", canonical, base, data, messages.getvalue().strip())
    return NormalizeFeatures()(data) if normalize_features else data


# ---------------------------------------------------------------------------------------- movie reviews
MR_FILES = {"rt-polarity.neg": 0, "rt-polarity.pos": 1}
PAD_ID, UNK_ID = 0, 1


@dataclass(frozen=True)
class TextSplits:
    """Token ids [n, max_len] (PAD_ID = 0 pads, UNK_ID = 1 is out of vocabulary), labels, and the vocabulary."""

    train_x: "torch.Tensor"
    train_y: "torch.Tensor"
    test_x: "torch.Tensor"
    test_y: "torch.Tensor"
    vocab: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return int(self.train_y.max()) + 1


def movie_reviews(root: str | Path | None = None, seed: int = 0, max_len: int = 48, vocab_size: int = 5000,
                  test_fraction: float = 0.1) -> TextSplits:
    """Movie Review polarity (10,662 sentences, 0 = negative, 1 = positive) as a fixed seeded 90/10 split.

    The sentences come tokenised and lower-cased, so tokens are whitespace-separated words; the
    vocabulary is the `vocab_size - 2` most frequent training tokens (ties by spelling) after PAD and UNK.
    """
    import numpy as np
    import torch

    if vocab_size < 3:
        raise ConfigError(f"vocab_size: expected at least 3 (PAD, UNK and one word), got {vocab_size}")
    if max_len < 1:
        raise ConfigError(f"max_len: expected a positive int, got {max_len}")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction: expected a fraction in (0, 1), got {test_fraction}")
    base = Path(root) if root is not None else data_dir() / "movie-review-polarity"
    sentences: list[list[str]] = []
    labels: list[int] = []
    for name, label in MR_FILES.items():
        path = base / name
        if not path.is_file():
            raise ConfigError(f"movie_reviews: {path} not found (set NAS_DATA_DIR to the folder holding "
                              "movie-review-polarity/, or pass root)")
        # split on "\n" only: str.splitlines would also break at Latin-1 control characters such as \x85
        lines = [line.split() for line in path.read_text(encoding="latin-1").split("\n") if line.strip()]
        sentences += lines
        labels += [label] * len(lines)
    order = np.random.default_rng(seed).permutation(len(sentences))
    n_test = int(round(test_fraction * len(sentences)))
    test, train = order[:n_test], order[n_test:]
    counts = Counter(tok for i in train for tok in sentences[i])
    words = sorted(counts, key=lambda w: (-counts[w], w))[: vocab_size - 2]
    vocab = ("<pad>", "<unk>", *words)
    index = {w: i for i, w in enumerate(vocab)}

    def encode(rows: np.ndarray) -> "torch.Tensor":
        out = np.full((len(rows), max_len), PAD_ID, dtype=np.int64)
        for r, i in enumerate(rows):
            ids = [index.get(tok, UNK_ID) for tok in sentences[i][:max_len]]
            out[r, : len(ids)] = ids
        return torch.from_numpy(out)

    y = torch.tensor(labels, dtype=torch.long)
    log.debug("movie reviews: %d train, %d test sentences, vocabulary %d", len(train), len(test), len(vocab))
    return TextSplits(encode(train), y[train], encode(test), y[test], vocab)


# ---------------------------------------------------------------------------------------- MNIST-1D
def mnist1d_splits(seed: int = 0, valid_size: int = 500, extra_test: int = 0,
                   extra_valid: int = 0) -> dict[str, tuple["torch.Tensor", "torch.Tensor"]]:
    """MNIST-1D generated locally (the standard 4,000 train / 1,000 test signals of length 40, 10 classes).

    Returns {"train", "valid", "test"} -> (x float32 [n, 40], y int64 [n]); `valid_size` training signals
    chosen at random by `seed` form "valid", the test set is the standard one. With `extra_test` > 0 an
    "extra_test" split of that many fresh signals from the same generator (generator seed 43 instead of 42)
    is added, for accuracy estimates with less sampling noise; `extra_valid` > 0 adds an "extra_valid" split of
    fresh signals from generator seed 44, disjoint from it, for a search's selection with less noise. Nothing is
    written to disk, and the global random state that mnist1d's generator seeds is restored afterwards.
    """
    import random

    import numpy as np
    import torch
    from mnist1d.data import get_dataset_args, make_dataset

    seed, valid_size = check_int(seed, "seed", 0), check_int(valid_size, "valid_size", 0)
    extra_test, extra_valid = check_int(extra_test, "extra_test", 0), check_int(extra_valid, "extra_valid", 0)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        args = get_dataset_args()
        data = make_dataset(args)  # never get_dataset: it may download
        extras = {}
        for name, n, offset in (("extra_test", extra_test, 1), ("extra_valid", extra_valid, 2)):
            if n:
                extra_args = get_dataset_args()
                extra_args.num_samples = 10 * -(-n // 10)  # mnist1d makes equal counts per class
                extra_args.train_split, extra_args.seed = 0.0, args.seed + offset
                extras[name] = make_dataset(extra_args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x, y = data["x"], data["y"]
    if not 0 <= valid_size < len(x):
        raise ConfigError(f"valid_size: expected 0..{len(x) - 1}, got {valid_size}")
    order = np.random.default_rng(seed).permutation(len(x))
    valid, train = order[:valid_size], order[valid_size:]

    def pair(xs: np.ndarray, ys: np.ndarray) -> tuple["torch.Tensor", "torch.Tensor"]:
        return torch.as_tensor(xs, dtype=torch.float32), torch.as_tensor(ys, dtype=torch.long)

    out = {"train": pair(x[train], y[train]), "valid": pair(x[valid], y[valid]),
           "test": pair(data["x_test"], data["y_test"])}
    for name, n in (("extra_test", extra_test), ("extra_valid", extra_valid)):
        if n:  # standardised by its own mean/std like every mnist1d set (same distribution, same scale)
            out[name] = pair(extras[name]["x_test"][:n], extras[name]["y_test"][:n])
    return out


def digits_splits(seed: int = 0, valid_size: int = 450, test_size: int = 447
                  ) -> dict[str, tuple["torch.Tensor", "torch.Tensor"]]:
    """scikit-learn's bundled digits (1,797 8x8 images, no download) as standardised 1x8x8 tensors.

    Returns {"train", "valid", "test"} -> (x float32 [n, 1, 8, 8], y int64 [n]), split at random by `seed`
    (900 / 450 / 447 by default); the search trains weights on "train" and alphas on "valid".
    """
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    seed, valid_size = check_int(seed, "seed", 0), check_int(valid_size, "valid_size", 0)
    test_size = check_int(test_size, "test_size", 0)
    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.as_tensor(digits.target, dtype=torch.long)
    if valid_size < 1 or test_size < 0 or valid_size + test_size >= len(x):
        raise ConfigError(f"valid_size, test_size: expected positive sizes leaving training data, got "
                          f"{valid_size}, {test_size} of {len(x)}")
    order = torch.as_tensor(np.random.default_rng(seed).permutation(len(x)))
    test, valid, train = order[:test_size], order[test_size:test_size + valid_size], order[test_size + valid_size:]
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    out = {"train": (x[train], y[train]), "valid": (x[valid], y[valid])}
    if test_size:
        out["test"] = (x[test], y[test])
    return out
