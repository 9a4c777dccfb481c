"""The one frozen module torch has no equivalent of: the inputs an `InputChoice` picked, reduced.

Plain torch only (no toolkit import), so a frozen model that holds it needs nothing else of the toolkit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

REDUCTIONS = ("sum", "mean", "concat")


class ChosenInputs(nn.Module):
    """`module([x0, x1, x2])` -> the reduction ("sum", "mean" or "concat" on dim 1) of the inputs at `chosen`."""

    def __init__(self, chosen: Sequence[int], reduction: str = "sum") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
        self.chosen, self.reduction = [int(i) for i in chosen], reduction

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:  # a list, so that torch.jit.script takes it
        return reduce_inputs([inputs[i] for i in self.chosen], self.reduction)

    def extra_repr(self) -> str:
        return f"chosen={self.chosen}, reduction={self.reduction!r}"


def reduce_inputs(picked: list[torch.Tensor], reduction: str) -> torch.Tensor:
    """Sum, mean or channel-concatenation of the picked inputs."""
    if reduction == "concat":
        return torch.cat(picked, dim=1)
    total = picked[0]
    for t in picked[1:]:
        total = total + t
    return total / len(picked) if reduction == "mean" else total
