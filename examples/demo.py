"""A small real search: MLPs on scikit-learn's bundled digits (8x8 images), accuracy against CPU latency.

    ./dev.sh demo                      # or: .venv/bin/python examples/demo.py [--budget 40] [--seed 0]
    nas run examples/demo.py           # the same search through the CLI (this file is also a search script)

Every architecture is trained for a few epochs on the training split; `accuracy` is measured on a
held-out validation split (the search optimises it), `test_accuracy` on a test split it never sees,
and `latency_ms` is the median CPU time of one forward pass over a batch of 64. The search is NSGA-II
over about 40 architectures and takes a minute or two on two CPU cores. Each run starts fresh in
runs/demo: the journal, a Pareto plot and the front end up there.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

import nas
from nas.spaces import Choice, Conditional, Repeat, Space

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 30
THREADS = 1  # small and fixed: timings stay comparable between architectures

space = Space(
    depth=Choice([1, 2, 3]),
    layers=Repeat(count="depth", width=Choice([16, 32, 64, 128]), activation=Choice(["relu", "gelu", "tanh"])),
    use_dropout=Choice([False, True]),
    dropout=Conditional("use_dropout", True, Choice([0.1, 0.2, 0.3])),
)
objectives = {"accuracy": "max", "latency_ms": "min"}
strategy = "nsga2"
strategy_options = {"population_size": 10}
budget = 40

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


@lru_cache(maxsize=1)
def digits() -> dict[str, torch.Tensor]:
    """The 1,797 digits split 60/20/20 (stratified, fixed seed) into train / validation / test tensors."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)  # pixel values are 0..16
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=0)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    t = torch.from_numpy
    return {"x_train": t(x_train), "y_train": t(y_train), "x_val": t(x_val), "y_val": t(y_val),
            "x_test": t(x_test), "y_test": t(y_test)}


def build(arch) -> nn.Sequential:
    """The MLP an architecture describes: 64 inputs, `depth` hidden layers, 10 outputs."""
    layers: list[nn.Module] = []
    width = 64
    for layer in arch["layers"]:
        layers += [nn.Linear(width, layer["width"]), ACTIVATIONS[layer["activation"]]()]
        if arch["use_dropout"]:
            layers.append(nn.Dropout(arch["dropout"]))
        width = layer["width"]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return float((model(x).argmax(1) == y).float().mean()) * 100.0


def latency_ms(model: nn.Module, batch: int = 64, repeats: int = 200) -> float:
    """Median wall time of one forward pass over `batch` inputs, after a warm-up."""
    x = torch.randn(batch, 64)
    times = []
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def evaluate(arch) -> dict[str, float]:
    """Train with Adam for a few epochs (fixed seed), then measure accuracy, size and latency."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    d = digits()
    model = build(arch)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    n = len(d["x_train"])
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(EPOCHS):
        for idx in torch.randperm(n, generator=gen).split(64):
            opt.zero_grad()
            loss_fn(model(d["x_train"][idx]), d["y_train"][idx]).backward()
            opt.step()
    model.eval()
    return {"accuracy": accuracy(model, d["x_val"], d["y_val"]),
            "test_accuracy": accuracy(model, d["x_test"], d["y_test"]),
            "params": float(sum(p.numel() for p in model.parameters())),
            "latency_ms": latency_ms(model)}


def main(argv: list[str] | None = None) -> nas.SearchResult:
    from nas.cli import SearchProgress, make_console, pareto_table
    from nas.plot import plot_pareto

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=budget, help="number of architectures to train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "demo",
                        help="results folder; deleted and rewritten on every run")
    args = parser.parse_args(argv)

    console = make_console()
    workdir: Path = args.workdir
    if workdir.exists():
        if not (workdir / "journal.jsonl").exists():
            console.print(f"error: {workdir} exists and is not a search workdir; pick another --workdir",
                          style="red")
            raise SystemExit(2)
        shutil.rmtree(workdir)  # every demo run starts fresh

    console.print(f"searching {space.size():,} MLPs on digits ({strategy}, budget {args.budget}, "
                  f"{EPOCHS} epochs each)", soft_wrap=True)
    problem = nas.Problem.make(objectives)
    t0 = time.time()
    with SearchProgress(console, problem, args.budget) as progress:
        result = nas.search(space, evaluate, objectives=objectives,
                            strategy=strategy, strategy_options=strategy_options, budget=args.budget,
                            seed=args.seed, workdir=workdir, progress=progress,
                            metadata={"script": str(Path(__file__).resolve())})
    console.print(f"{len(result.trials)} architectures trained in {time.time() - t0:.0f} s")
    console.print(pareto_table(result))
    plot = plot_pareto(result, workdir / "pareto.png")
    console.print(f"journal:  {workdir / 'journal.jsonl'}  (nas status {workdir})", soft_wrap=True)
    console.print(f"plot:     {plot}", soft_wrap=True)
    console.print(f"continue: nas resume {workdir} --budget {2 * args.budget}", soft_wrap=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
