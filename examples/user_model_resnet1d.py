"""A user's own model searched end to end: a small 1-D ResNet on MNIST-1D written with `nas.nn`.

Choices: the width of the network (one label ties every layer's channels), the number of residual blocks,
and per block its type (a basic two-conv block or an inverted bottleneck with a depthwise conv) and kernel.
The script trains the weight-sharing supernet with the sandwich rule (in-place distillation), then runs
NSGA-II over inherited accuracy (BN recalibrated, no training) x MFLOPs, and prints the Pareto front.

    python examples/user_model_resnet1d.py            # about 5 CPU minutes on one thread
    python examples/user_model_resnet1d.py --quick    # a smoke run of seconds (what the test runs)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import nas
from nas import nn as nnn
from nas.datasets import mnist1d_splits
from nas.spaces.training import InheritedAccuracy, SandwichRule


class Basic(nn.Module):
    """conv k -> BN -> ReLU -> conv k -> BN, added to the input."""

    def __init__(self, width: nnn.Choice, kernel: nnn.Choice) -> None:
        super().__init__()
        self.body = nn.Sequential(nnn.Conv1d(width, width, kernel, padding="same", bias=False), nnn.BatchNorm1d(width),
                                  nn.ReLU(), nnn.Conv1d(width, width, kernel, padding="same", bias=False),
                                  nnn.BatchNorm1d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class Inverted(nn.Module):
    """1x1 expand (x2) -> depthwise k -> 1x1 project, added to the input (MobileNetV2-style)."""

    def __init__(self, width: nnn.Choice, kernel: nnn.Choice) -> None:
        super().__init__()
        mid = width * 2
        self.body = nn.Sequential(nnn.Conv1d(width, mid, 1, bias=False), nnn.BatchNorm1d(mid), nn.ReLU(),
                                  nnn.Conv1d(mid, mid, kernel, padding="same", groups=mid, bias=False),
                                  nnn.BatchNorm1d(mid), nn.ReLU(), nnn.Conv1d(mid, width, 1, bias=False),
                                  nnn.BatchNorm1d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet1d(nnn.ModelSpace):
    """Stem (stride 2) -> `depth` residual blocks -> global average pool -> linear classifier."""

    input_shape = (40,)

    def __init__(self) -> None:
        super().__init__()
        width = nnn.Choice("width", [16, 24, 32])
        self.stem = nn.Sequential(nnn.Conv1d(1, width, 5, stride=2, padding=2, bias=False), nnn.BatchNorm1d(width),
                                  nn.ReLU())

        def block(i: int) -> nn.Module:  # one kernel and one type decision per block
            kernel = nnn.Choice("kernel", [3, 5, 7])
            return nnn.LayerChoice({"basic": Basic(width, kernel), "inverted": Inverted(width, kernel)}, label="type")

        self.blocks = nnn.Repeat(block, depth=nnn.Choice("depth", [1, 2, 3, 4]))
        self.head = nnn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x.unsqueeze(1)))
        return self.head(x.mean(dim=-1))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: tiny training and search")
    parser.add_argument("--epochs", type=int, default=20, help="sandwich-rule epochs over the training split")
    parser.add_argument("--budget", type=int, default=60, help="NSGA-II evaluations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="journal folder (default: a temporary one)")
    args = parser.parse_args(argv)
    epochs, budget, n_train, n_valid = (1, 6, 256, 250) if args.quick else (args.epochs, args.budget, None, None)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    data = mnist1d_splits(seed=args.seed)
    (x, y), (xv, yv) = data["train"], data["valid"]
    x, y, xv, yv = x[:n_train], y[:n_train], xv[:n_valid], yv[:n_valid]  # None: the whole split
    space = ResNet1d.space()
    print(f"space: {space.size()} architectures, fields {list(space.fields)}")

    t0, c0 = time.perf_counter(), time.process_time()
    supernet = ResNet1d.supernet()
    SandwichRule(epochs=epochs, n_random=2, batch_size=128, lr=3e-3, seed=args.seed).fit(supernet, x, y)
    print(f"supernet trained with the sandwich rule: {epochs} epochs in {time.perf_counter() - t0:.0f} s "
          f"({time.process_time() - c0:.0f} CPU s)")

    accuracy = InheritedAccuracy(supernet, xv, yv, calib_x=x[:1000])
    mflops = nas.cheap(lambda arch: {"mflops": space.count(arch)["flops"] / 1e6})
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or Path(tmp) / "resnet1d")
        result = nas.search(space, [mflops, accuracy], {"accuracy": "max", "mflops": "min"}, strategy="nsga2",
                            budget=budget, seed=args.seed, workdir=workdir)
    front = sorted(({"accuracy": t.metrics["accuracy"], "mflops": t.metrics["mflops"], "arch": dict(t.arch)}
                    for t in result.pareto_front()), key=lambda p: p["mflops"])
    print(f"Pareto front ({len(front)} of {len(result.trials)} evaluated; {time.perf_counter() - t0:.0f} s, "
          f"{time.process_time() - c0:.0f} CPU s in all):")
    print(f"{'MFLOPs':>8} {'accuracy':>9}  architecture")
    for p in front:
        blocks = " ".join(f"{b['type'][0]}{b['kernel']}" for b in p["arch"]["blocks"])
        print(f"{p['mflops']:8.3f} {p['accuracy']:9.3f}  width {p['arch']['width']}, blocks [{blocks}]")
    return front


if __name__ == "__main__":
    main()
