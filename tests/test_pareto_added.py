"""`added_hypervolume` is HV(front + point) - HV(front), computed as one small hypervolume (what predictor-search's
acquisition takes per candidate with 3+ objectives)."""

from __future__ import annotations

import numpy as np
import pytest

from nas.pareto import added_hypervolume, hypervolume, pareto_mask


@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_added_hypervolume_is_the_difference_of_hypervolumes(d: int) -> None:
    rng = np.random.default_rng(d)
    ref = np.full(d, 1.1)
    for _ in range(30):
        pts = rng.random((int(rng.integers(1, 40)), d))
        front = pts[pareto_mask(pts)]
        point = rng.random(d) * 1.2  # sometimes outside the reference, sometimes dominated
        want = hypervolume(np.vstack([front, np.minimum(point, ref)]), ref) - hypervolume(front, ref)
        assert added_hypervolume(front, np.minimum(point, ref), ref) == pytest.approx(max(want, 0.0), abs=1e-12)


def test_a_point_on_the_reference_or_dominated_adds_nothing() -> None:
    front, ref = np.array([[0.2, 0.2, 0.2]]), np.full(3, 1.1)
    assert added_hypervolume(front, np.array([0.5, 0.5, 0.5]), ref) == 0.0
    assert added_hypervolume(front, np.array([0.1, 1.1, 0.1]), ref) == 0.0
    assert added_hypervolume(np.zeros((0, 3)), np.array([0.1, 0.1, 0.1]), ref) == pytest.approx(1.0)
