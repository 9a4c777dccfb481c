"""The GNN trainer's accuracy is an exact ratio of counts, not a float32 mean (0.81, not 0.8100000023841858)."""
import math

import torch

from nas.spaces.gnn import _accuracy


def test_accuracy_is_the_exact_ratio_of_correct_nodes() -> None:
    y = torch.zeros(100, dtype=torch.long)
    logits = torch.zeros(100, 2)
    logits[81:, 1] = 1.0                                   # 81 nodes predicted class 0 (right), 19 class 1
    mask = torch.ones(100, dtype=torch.bool)
    assert _accuracy(logits, y, mask) == 0.81              # float32's mean gives 0.8100000023841858
    assert float(torch.tensor(0.81, dtype=torch.float32)) != 0.81


def test_accuracy_of_no_nodes_or_non_finite_logits_is_nan() -> None:
    y = torch.zeros(4, dtype=torch.long)
    assert math.isnan(_accuracy(torch.zeros(4, 2), y, torch.zeros(4, dtype=torch.bool)))
    assert math.isnan(_accuracy(torch.full((4, 2), float("nan")), y, torch.ones(4, dtype=torch.bool)))
