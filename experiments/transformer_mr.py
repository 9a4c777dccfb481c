"""FlexiBERT-style heterogeneous transformers on Movie Review polarity: do sampled architectures learn?

Acceptance criterion of the transformer part of the spaces issue: at least 3 different sampled
heterogeneous architectures (each mixing at least two token-mixer types across its layers) train end to
end and beat the majority-class baseline (50 % on this balanced dataset). Every architecture is trained
from scratch with the same recipe (AdamW, fixed epochs, one CPU thread) on a fixed seeded 90/10 split
(vocabulary from the training split); the table reports test accuracy next to the majority-class
baseline, parameters, FLOPs per sentence and training time.

    .venv/bin/python experiments/transformer_mr.py             # 4 architectures x 3 epochs
    .venv/bin/python experiments/transformer_mr.py --quick     # smoke run: 3 architectures x 1 epoch
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.datasets import TextSplits, movie_reviews
from nas.spaces import Architecture
from nas.spaces.transformer import FlexiBertConfig, FlexiBertSpace
from reporting import git_commit  # experiments/reporting.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
MAX_TRIES = 1000  # bound on draws while looking for heterogeneous architectures


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
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(chunk).argmax(1) for chunk in x.split(512)])
    return float((pred == y).float().mean())


def train(space: FlexiBertSpace, arch: Architecture, data: TextSplits, epochs: int, seed: int,
          batch_size: int, lr: float) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = space.build(arch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * -(-len(data.train_y) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    start, losses = time.perf_counter(), []
    for _ in range(epochs):
        model.train()
        total, count = 0.0, 0
        for idx in torch.randperm(len(data.train_y), generator=g).split(batch_size):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
        losses.append(total / count)
    seconds = time.perf_counter() - start
    return {"train_loss": losses, "train_accuracy": accuracy(model, data.train_x, data.train_y),
            "test_accuracy": accuracy(model, data.test_x, data.test_y), "train_seconds": seconds}


def describe(arch: Architecture) -> str:
    parts = []
    for layer in arch["layers"]:
        extra = f"/h{layer['heads']}" if "heads" in layer else f"/k{layer['kernel']}" if "kernel" in layer else ""
        ffn = "-".join(str(f["dim"]) for f in layer["ffn"])
        parts.append(f"{layer['op']}{extra}@{layer['hidden']}[{ffn}]")
    return " | ".join(parts)


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
    args = ap.parse_args(argv)
    if args.quick:
        args.archs, args.epochs = 3, 1
    name = "transformer_mr_quick.json" if args.quick else "transformer_mr.json"
    out = args.out or ROOT / "experiments" / "results" / name
    torch.set_num_threads(1)

    data = movie_reviews(seed=args.seed, max_len=args.max_len, vocab_size=args.vocab_size)
    majority = int(data.train_y.float().mean() >= 0.5)
    baseline = float((data.test_y == majority).float().mean())
    space = space_for(data, args.max_len)
    rows = []
    print(f"Movie Review polarity: {len(data.train_y)} train / {len(data.test_y)} test sentences, vocabulary "
          f"{len(data.vocab)}, max_len {args.max_len}; majority-class baseline {100 * baseline:.2f} %")
    print(f"{'#':>2} {'test acc %':>10} {'train acc %':>11} {'params':>9} {'MFLOPs':>7} {'train s':>8}  architecture")
    for i, arch in enumerate(heterogeneous_samples(space, args.archs, args.seed)):
        counts = space.count(arch)
        result = train(space, arch, data, args.epochs, args.seed, args.batch_size, args.lr)
        row = {"arch_id": arch.id, "arch": arch.to_dict(), "summary": describe(arch), "params": counts["params"],
               "flops_per_sentence": counts["flops"], **result, "beats_baseline": result["test_accuracy"] > baseline}
        rows.append(row)
        print(f"{i:>2} {100 * row['test_accuracy']:>10.2f} {100 * row['train_accuracy']:>11.2f} {row['params']:>9.0f} "
              f"{row['flops_per_sentence'] / 1e6:>7.2f} {row['train_seconds']:>8.1f}  {row['summary']}", flush=True)
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
