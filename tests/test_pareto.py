"""Tests for nas.pareto against brute-force definitions and hand-computed values."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nas import pareto
from nas.pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_contributions,
    non_dominated_sort,
    pareto_mask,
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- brute-force references


def brute_dominance(p: np.ndarray) -> np.ndarray:
    """D[i, j] is True when row i dominates row j, straight from the definition."""
    le = np.all(p[:, None, :] <= p[None, :, :], axis=2)
    lt = np.any(p[:, None, :] < p[None, :, :], axis=2)
    return le & lt


def brute_ranks(p: np.ndarray) -> np.ndarray:
    """Front rank by repeatedly removing the rows that no remaining row dominates."""
    dom = brute_dominance(p)
    rank = np.full(len(p), -1)
    left = np.ones(len(p), dtype=bool)
    k = 0
    while left.any():
        front = left & ~dom[left].any(axis=0)
        rank[front] = k
        left &= ~front
        k += 1
    return rank


def cell_count(p: np.ndarray, ref: np.ndarray) -> int:
    """Hypervolume of integer points with an integer reference, by counting dominated unit cells."""
    if len(p) == 0:
        return 0
    lo = np.minimum(p.min(axis=0), ref).astype(int)
    axes = [np.arange(lo[j], int(ref[j])) for j in range(len(ref))]
    if any(len(a) == 0 for a in axes):
        return 0
    cells = np.array(list(itertools.product(*axes)), dtype=float)  # lower corners of unit cells
    covered = np.any(np.all(p[None, :, :] <= cells[:, None, :], axis=2), axis=1)
    return int(covered.sum())


def inclusion_exclusion_hv(p: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume as the inclusion-exclusion sum over intersections of the points' boxes."""
    p = p[np.all(p < ref, axis=1)]
    total = 0.0
    for r in range(1, len(p) + 1):
        for subset in itertools.combinations(range(len(p)), r):
            corner = p[list(subset)].max(axis=0)
            total += (-1) ** (r + 1) * float(np.prod(ref - corner))
    return total


def int_points(min_n: int = 0, max_n: int = 25, dims: tuple[int, int] = (2, 4), hi: int = 4):
    """Small integer-valued float arrays, so that ties and duplicate rows are common."""
    return st.tuples(st.integers(min_n, max_n), st.integers(*dims)).flatmap(
        lambda nd: hnp.arrays(np.int64, nd, elements=st.integers(0, hi)).map(lambda a: a.astype(float))
    )


# --------------------------------------------------------------------------- dominance and sorting


def test_dominates_basic() -> None:
    assert dominates([1, 2], [1, 3])
    assert dominates([0, 0, 0], [1, 1, 1])
    assert not dominates([1, 2], [1, 2])  # equal rows do not dominate each other
    assert not dominates([1, 3], [2, 2])  # incomparable
    assert not dominates([2, 2], [1, 3])
    assert not dominates([1, 3], [1, 2])
    with pytest.raises(ValueError):
        dominates([1, 2], [1, 2, 3])


@SETTINGS
@given(int_points())
def test_pareto_mask_matches_definition(p: np.ndarray) -> None:
    expected = ~brute_dominance(p).any(axis=0)
    np.testing.assert_array_equal(pareto_mask(p), expected)


@SETTINGS
@given(int_points())
def test_non_dominated_sort_matches_definition(p: np.ndarray) -> None:
    fronts = non_dominated_sort(p)
    n = len(p)
    if n == 0:
        assert fronts == []
        return
    # A partition of all rows, in ascending index order within each front.
    allidx = np.concatenate(fronts)
    assert sorted(allidx.tolist()) == list(range(n))
    assert all(len(f) > 0 and np.all(np.diff(f) > 0) for f in fronts)
    rank = np.empty(n, dtype=int)
    for k, f in enumerate(fronts):
        rank[f] = k
    np.testing.assert_array_equal(rank, brute_ranks(p))

    dom = brute_dominance(p)
    np.testing.assert_array_equal(np.sort(fronts[0]), np.flatnonzero(pareto_mask(p)))
    for k, f in enumerate(fronts):
        assert not dom[np.ix_(f, f)].any(), "a point dominates another in the same front"
        if k + 1 < len(fronts):
            nxt = fronts[k + 1]
            assert dom[np.ix_(f, nxt)].any(axis=0).all(), "front k+1 point not dominated by front k"
    # Identical rows always share a front.
    for i, j in itertools.combinations(range(n), 2):
        if np.array_equal(p[i], p[j]):
            assert rank[i] == rank[j]


def test_non_dominated_sort_small_example() -> None:
    p = [[1, 4], [2, 2], [4, 1], [3, 3], [2, 2], [5, 5], [4, 4]]
    fronts = non_dominated_sort(p)
    assert [f.tolist() for f in fronts] == [[0, 1, 2, 4], [3], [6], [5]]


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_sort_and_mask_larger_random(d: int) -> None:
    rng = np.random.default_rng(d)
    p = rng.integers(0, 12, size=(1500, d)).astype(float)  # > one internal block; many ties
    rank = brute_ranks(p)
    np.testing.assert_array_equal(pareto_mask(p), rank == 0)
    fronts = non_dominated_sort(p)
    got = np.empty(len(p), dtype=int)
    for k, f in enumerate(fronts):
        got[f] = k
    np.testing.assert_array_equal(got, rank)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_small_chunks_and_blocks_give_same_answer(monkeypatch: pytest.MonkeyPatch, d: int) -> None:
    rng = np.random.default_rng(10 + d)
    p = rng.integers(0, 6, size=(300, d)).astype(float)
    monkeypatch.setattr(pareto, "_CHUNK_CELLS", 7)  # forces one-row reference chunks
    monkeypatch.setattr(pareto, "_BLOCK_ROWS", 13)
    rank = brute_ranks(p)
    np.testing.assert_array_equal(pareto_mask(p), rank == 0)
    got = np.empty(len(p), dtype=int)
    for k, f in enumerate(non_dominated_sort(p)):
        got[f] = k
    np.testing.assert_array_equal(got, rank)


def test_pareto_mask_2d_sweep_agrees_with_pairwise_path_on_large_input() -> None:
    rng = np.random.default_rng(0)
    p = rng.integers(0, 300, size=(20_000, 2)).astype(float)
    p[:, 1] -= p[:, 0]  # correlated so the front is not tiny
    sweep = pareto_mask(p)
    pairwise = pareto_mask(np.column_stack([p, np.zeros(len(p))]))  # d == 3 takes the chunked path
    np.testing.assert_array_equal(sweep, pairwise)
    assert sweep.sum() > 1
    big = rng.random((100_000, 2))
    assert pareto_mask(big).sum() >= 1


def test_empty_and_degenerate_inputs() -> None:
    assert non_dominated_sort([]) == []
    assert non_dominated_sort(np.empty((0, 3))) == []
    assert pareto_mask([]).shape == (0,)
    assert crowding_distance([]).shape == (0,)
    assert hypervolume([], [1.0, 1.0]) == 0.0
    np.testing.assert_array_equal(hypervolume_contributions([], [1.0, 1.0]), np.zeros(0))
    assert [f.tolist() for f in non_dominated_sort([[1.0, 1.0]])] == [[0]]
    assert pareto_mask([[3.0, 3.0], [3.0, 3.0]]).tolist() == [True, True]
    with pytest.raises(ValueError, match="2-D"):
        pareto_mask([1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        non_dominated_sort([[1.0, np.nan], [0.0, 0.0]])


def test_infinite_values_are_ordered() -> None:
    p = [[-np.inf, 5.0], [0.0, 0.0], [np.inf, -np.inf], [np.inf, np.inf], [-np.inf, 5.0]]
    assert pareto_mask(p).tolist() == [True, True, True, False, True]
    assert [f.tolist() for f in non_dominated_sort(p)] == [[0, 1, 2, 4], [3]]


# --------------------------------------------------------------------------- crowding distance


def test_crowding_distance_hand_computed() -> None:
    p = np.array([[0.0, 5.0], [1.0, 3.0], [2.0, 2.0], [4.0, 0.0]])
    # column 0 (range 4): row1 (2-0)/4 = 0.5, row2 (4-1)/4 = 0.75
    # column 1 (range 5): row1 (5-2)/5 = 0.6, row2 (3-0)/5 = 0.6
    expected = np.array([np.inf, 1.1, 1.35, np.inf])
    np.testing.assert_allclose(crowding_distance(p), expected)
    # A constant column adds nothing, and row order does not matter.
    with_const = np.column_stack([p, np.full(4, 7.0)])
    np.testing.assert_allclose(crowding_distance(with_const), expected)
    perm = [2, 0, 3, 1]
    np.testing.assert_allclose(crowding_distance(p[perm]), expected[perm])


def test_crowding_distance_small_and_constant() -> None:
    np.testing.assert_array_equal(crowding_distance([[1.0, 2.0]]), [np.inf])
    np.testing.assert_array_equal(crowding_distance([[1.0, 2.0], [2.0, 1.0]]), [np.inf, np.inf])
    np.testing.assert_array_equal(crowding_distance(np.ones((4, 3))), np.zeros(4))


# --------------------------------------------------------------------------- hypervolume


def test_hypervolume_known_values() -> None:
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == 6.0
    # 3-D: three boxes of volume 2, pairwise and triple intersections all the cube [2,3]^3.
    pts3 = [[1, 2, 2], [2, 1, 2], [2, 2, 1]]
    assert hypervolume(pts3, [3, 3, 3]) == pytest.approx(2 + 2 + 2 - 1 - 1 - 1 + 1)
    # 3-D: boxes 2*2*1 and 1*1*2 overlapping in a unit cube.
    assert hypervolume([[1, 1, 2], [2, 2, 1]], [3, 3, 3]) == pytest.approx(5.0)
    assert hypervolume([[0.5, 1.0, 2.0, 0.0]], [1.0, 2.0, 4.0, 0.25]) == pytest.approx(0.5 * 1 * 2 * 0.25)
    assert hypervolume([[0.2, 0.3]], [1.0, 1.0]) == pytest.approx(0.8 * 0.7)
    assert hypervolume([[2.0]], [5.0]) == 3.0


def test_hypervolume_ignores_points_not_strictly_inside_reference() -> None:
    ref = [4.0, 4.0]
    assert hypervolume([[4.0, 1.0], [5.0, 0.0], [1.0, 4.0]], ref) == 0.0
    assert hypervolume([[1, 3], [2, 2], [3, 1], [4.0, 0.0], [0.0, 9.0]], ref) == 6.0
    c = hypervolume_contributions([[1, 3], [4.0, 0.0], [2, 2]], ref)
    np.testing.assert_allclose(c, [1.0, 0.0, 2.0])  # HV 5: without row 0 it is 3*1, without row 2 it is 3*1


def test_hypervolume_errors() -> None:
    with pytest.raises(ValueError, match="reference"):
        hypervolume([[1.0, 2.0]], [3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        hypervolume([[1.0, np.nan]], [3.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        hypervolume([[1.0, 1.0]], [3.0, np.nan])
    with pytest.raises(ValueError, match="reference"):
        hypervolume_contributions([[1.0, 2.0]], [3.0])


@SETTINGS
@given(int_points(max_n=12, dims=(1, 4), hi=5))
def test_hypervolume_equals_unit_cell_count(p: np.ndarray) -> None:
    ref = np.full(p.shape[1], 5.0)  # some points sit on the reference and must count for nothing
    assert hypervolume(p, ref) == cell_count(p, ref)


@SETTINGS
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 7), st.integers(2, 4)),
               elements=st.floats(0.0, 1.0, allow_subnormal=False))
)
def test_hypervolume_equals_inclusion_exclusion(p: np.ndarray) -> None:
    ref = np.full(p.shape[1], 1.1)
    assert hypervolume(p, ref) == pytest.approx(inclusion_exclusion_hv(p, ref), rel=1e-9, abs=1e-12)


def test_hypervolume_monte_carlo_3d() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((60, 2))
    p = np.column_stack([x, 1.0 - x.sum(axis=1) / 2])  # a curved-ish 3-D front
    ref = np.array([1.0, 1.0, 1.0])
    samples = rng.random((200_000, 3))
    covered = np.zeros(len(samples), dtype=bool)
    for q in p:
        covered |= np.all(samples >= q, axis=1)
    assert hypervolume(p, ref) == pytest.approx(covered.mean(), abs=0.005)


@SETTINGS
@given(int_points(min_n=1, max_n=15, dims=(2, 3), hi=6), st.randoms(use_true_random=False))
def test_hypervolume_invariant_to_dominated_points_and_order(p: np.ndarray, rnd: random.Random) -> None:
    ref = np.full(p.shape[1], 7.0)
    hv = hypervolume(p, ref)
    perm = list(range(len(p)))
    rnd.shuffle(perm)
    assert hypervolume(p[perm], ref) == hv
    worse = p[[rnd.randrange(len(p)) for _ in range(5)]] + np.array(
        [[rnd.choice([0.0, 0.5, 2.0]) for _ in range(p.shape[1])] for _ in range(5)]
    )
    assert hypervolume(np.vstack([p, worse, p[:2]]), ref) == hv


def test_hypervolume_scales_with_objectives() -> None:
    rng = np.random.default_rng(2)
    p = rng.random((40, 3))
    ref = np.array([1.2, 1.3, 1.4])
    scale = np.array([2.0, 0.5, 3.0])
    assert hypervolume(p * scale, ref * scale) == pytest.approx(3.0 * hypervolume(p, ref), rel=1e-12)


def test_hypervolume_3d_few_hundred_points_is_fast() -> None:
    rng = np.random.default_rng(3)
    v = rng.standard_normal((300, 3))
    p = np.abs(v) / np.linalg.norm(v, axis=1, keepdims=True)  # all on the unit sphere: non-dominated
    hv = hypervolume(p, [1.0, 1.0, 1.0])
    # Bounded between the union of boxes' biggest member and the cube minus the sphere's octant.
    assert max(np.prod(1.0 - p, axis=1)) < hv < 1.0 - np.pi / 6


# --------------------------------------------------------------------------- contributions


def test_contributions_hand_computed_2d() -> None:
    p = [[1.0, 5.0], [2.0, 3.0], [4.0, 2.0]]
    ref = [6.0, 6.0]
    # HV = 1*1 + 2*3 + 2*4 = 15. Exclusive boxes: (2-1)*(6-5), (4-2)*(5-3), (6-4)*(3-2).
    assert hypervolume(p, ref) == 15.0
    c = hypervolume_contributions(p, ref)
    np.testing.assert_allclose(c, [1.0, 4.0, 2.0])
    assert c.sum() == pytest.approx(7.0)  # the other 8 units are covered by two or more boxes
    np.testing.assert_allclose(hypervolume_contributions([[1, 3], [2, 2], [3, 1]], [4, 4]), [1, 1, 1])


def test_contributions_dominated_and_duplicates_are_zero() -> None:
    p = [[1.0, 3.0], [2.0, 2.0], [2.0, 2.0], [3.0, 3.0], [3.0, 1.0]]
    np.testing.assert_allclose(hypervolume_contributions(p, [4, 4]), [1, 0, 0, 0, 1])
    p3 = [[1, 1, 2], [1, 1, 2], [2, 2, 2], [2, 2, 1]]
    np.testing.assert_allclose(hypervolume_contributions(p3, [3, 3, 3]), [0, 0, 0, 1])


def test_contributions_2d_account_for_points_dominated_by_one_front_point() -> None:
    # (1, 1) is dominated only by (0, 1); removing (0, 1) leaves its 3x3 box: 12 - 9 = 3.
    np.testing.assert_allclose(hypervolume_contributions([[0, 1], [1, 1]], [4, 4]), [3, 0])
    # (2.5, 2.5) sits inside the exclusive rectangle of (2, 2): [2, 3) x [2, 3) minus [2.5, 3)^2.
    p = [[1, 3], [2, 2], [3, 1], [2.5, 2.5]]
    np.testing.assert_allclose(hypervolume_contributions(p, [4, 4]), [1, 0.75, 1, 0])


@SETTINGS
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.just(2)),
               elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.75, 3.0]))
)
def test_contributions_2d_fast_path_matches_general_path(p: np.ndarray) -> None:
    ref = np.array([3.0, 3.0])
    padded = np.column_stack([p, np.zeros(len(p))])  # d == 3 takes the leave-one-out-box path
    np.testing.assert_allclose(
        hypervolume_contributions(p, ref),
        hypervolume_contributions(padded, np.array([3.0, 3.0, 1.0])),
        atol=1e-12,
    )


@SETTINGS
@given(int_points(min_n=1, max_n=10, dims=(1, 4), hi=4))
def test_contributions_match_leave_one_out(p: np.ndarray) -> None:
    ref = np.full(p.shape[1], 4.0)
    total = hypervolume(p, ref)
    expected = [total - hypervolume(np.delete(p, i, axis=0), ref) for i in range(len(p))]
    np.testing.assert_allclose(hypervolume_contributions(p, ref), expected, atol=1e-9)


def test_module_exports() -> None:
    assert set(pareto.__all__) == {
        "crowding_distance", "dominates", "hypervolume", "hypervolume_contributions",
        "non_dominated_sort", "pareto_mask", "HypervolumeTracker", "MonteCarloHypervolume",
    }
