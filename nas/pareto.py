"""Pareto dominance, non-dominated sorting, crowding distance and hypervolume.

Every function takes ``points`` as a 2-D float array of shape ``(n, d)`` in
which EVERY column is minimised; callers negate maximised objectives first.
Any array-like is accepted and converted with ``np.asarray(points, dtype=float)``.
NaN is rejected with ``ValueError`` (dominance is undefined for it); +/-inf is
allowed and ordered as usual.
"""

from __future__ import annotations

import bisect

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "crowding_distance",
    "dominates",
    "hypervolume",
    "hypervolume_contributions",
    "non_dominated_sort",
    "pareto_mask",
]

# Upper bound on the number of cells in any temporary (rows x rows) comparison matrix.
_CHUNK_CELLS = 1 << 21
# Rows handled at a time by the pairwise (d != 2) code paths.
_BLOCK_ROWS = 256


# --------------------------------------------------------------------------- helpers


def _as_points(points: ArrayLike, d: int | None = None) -> np.ndarray:
    """Convert to a float (n, d) array; an empty 1-D input becomes (0, d) (d=0 if unknown)."""
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2:
        if arr.size == 0:
            return np.empty((0, 0 if d is None else d))
        raise ValueError(f"points must be a 2-D array of shape (n, d), got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("points contain NaN; dominance is undefined for NaN objectives")
    return arr


def _lex_order(p: np.ndarray) -> np.ndarray:
    """Row indices sorting ``p`` lexicographically (column 0 first); a dominator always sorts earlier."""
    return np.lexsort(p.T[::-1])


def _dominance_matrix(cands: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """M[i, j] is True when ``refs[j]`` dominates ``cands[i]``; built column by column (no 3-D temporaries)."""
    le = np.ones((len(cands), len(refs)), dtype=bool)
    lt = np.zeros_like(le)
    for j in range(cands.shape[1]):
        c, r = cands[:, j, None], refs[None, :, j]
        le &= r <= c
        lt |= r < c
    return le & lt


def _chunk_rows(n_cands: int) -> int:
    """How many reference rows to compare at once with ``n_cands`` rows to stay within the cell budget."""
    return max(1, _CHUNK_CELLS // max(n_cands, 1))


def _dominated_by(cands: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Mask of rows of ``cands`` dominated by at least one row of ``refs`` (chunked over ``refs``)."""
    out = np.zeros(len(cands), dtype=bool)
    if len(cands) == 0 or len(refs) == 0:
        return out
    step = _chunk_rows(len(cands))
    for s in range(0, len(refs), step):
        out |= _dominance_matrix(cands, refs[s : s + step]).any(axis=1)
    return out


def _front0_sorted_2d(sp: np.ndarray) -> np.ndarray:
    """Front-0 mask for lexicographically sorted 2-D rows, by one O(n) sweep."""
    n = len(sp)
    x, y = sp[:, 0], sp[:, 1]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = x[1:] != x[:-1]
    group = np.cumsum(new_group) - 1  # group id of each row (equal x)
    group_min = y[new_group]  # lexicographic order: first row of a group has its smallest y
    best_before = np.empty_like(group_min)  # smallest y over all groups with strictly smaller x
    best_before[0] = np.inf
    best_before[1:] = np.minimum.accumulate(group_min)[:-1]
    g_min, g_best = group_min[group], best_before[group]
    return (y == g_min) & ((group == 0) | (g_best > y))


def _front0_sorted(sp: np.ndarray) -> np.ndarray:
    """Front-0 mask for lexicographically sorted rows: sweep for d == 2, blocked pairwise otherwise."""
    n, d = sp.shape
    if n == 0 or d == 0:
        return np.ones(n, dtype=bool)
    if d == 2:
        return _front0_sorted_2d(sp)
    # Lexicographic order means a row can only be dominated by earlier rows, and by transitivity
    # by an earlier front-0 row; so screen each block against the front so far, then the block's
    # survivors against each other (whatever a screened-out row dominates, the front dominates too).
    keep = np.zeros(n, dtype=bool)
    front = np.empty_like(sp)
    m = 0
    for s in range(0, n, _BLOCK_ROWS):
        blk = sp[s : s + _BLOCK_ROWS]
        alive = np.flatnonzero(~_dominated_by(blk, front[:m]))
        cand = blk[alive]
        alive = alive[~_dominated_by(cand, cand)]
        keep[s + alive] = True
        front[m : m + len(alive)] = blk[alive]
        m += len(alive)
    return keep


def _ranks_sorted(sp: np.ndarray) -> np.ndarray:
    """Front rank of each lexicographically sorted row: 1 + the largest rank among its dominators.

    Dominators precede a row in lexicographic order, so one blocked pass over earlier rows suffices;
    O(d n^2) time with comparison matrices bounded by the chunk budget.
    """
    n = len(sp)
    rank = np.empty(n, dtype=np.intp)
    for s in range(0, n, _BLOCK_ROWS):
        blk = sp[s : s + _BLOCK_ROWS]
        best = np.full(len(blk), -1, dtype=np.intp)  # highest rank of a dominator in earlier blocks
        step = _chunk_rows(len(blk))
        for r in range(0, s, step):
            e = min(r + step, s)
            cand = np.where(_dominance_matrix(blk, sp[r:e]), rank[None, r:e], -1)
            np.maximum(best, cand.max(axis=1), out=best)
        dom = _dominance_matrix(blk, blk)  # lower-triangular: only earlier rows can dominate
        for i in range(len(blk)):
            inside = rank[s : s + i][dom[i, :i]]
            rank[s + i] = max(int(best[i]), int(inside.max()) if inside.size else -1) + 1
    return rank


def _ranks_2d_sorted(sp: np.ndarray) -> np.ndarray:
    """Front rank of each lexicographically sorted 2-D row, O(n log n) by binary search on front minima."""
    n = len(sp)
    y = sp[:, 1].tolist()
    same = np.zeros(n, dtype=bool)
    same[1:] = np.all(sp[1:] == sp[:-1], axis=1)
    same_l = same.tolist()
    rank = [0] * n
    front_min: list[float] = []  # smallest y in each front so far; non-decreasing in the front index
    for i in range(n):
        if same_l[i]:  # exact duplicate of the previous row: same front, never dominated by it
            rank[i] = rank[i - 1]
            continue
        # Every earlier non-duplicate row with y' <= y dominates row i, so its rank is the number
        # of fronts whose minimum y is <= y.
        k = bisect.bisect_right(front_min, y[i])
        if k == len(front_min):
            front_min.append(y[i])
        else:
            front_min[k] = y[i]
        rank[i] = k
    return np.asarray(rank, dtype=np.intp)


def _pad_1d(p: np.ndarray) -> np.ndarray:
    """Append a zero column to 1-D objective data so the 2-D code paths apply unchanged."""
    return np.column_stack([p, np.zeros(len(p))]) if p.shape[1] == 1 else p


# --------------------------------------------------------------------------- dominance


def dominates(a: ArrayLike, b: ArrayLike) -> bool:
    """True if ``a`` is no worse than ``b`` in every column and strictly better in at least one.

    Comparisons involving NaN are false, so a NaN row neither dominates nor is dominated.
    """
    av, bv = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if av.shape != bv.shape:
        raise ValueError(f"cannot compare shapes {av.shape} and {bv.shape}")
    return bool(np.all(av <= bv) and np.any(av < bv))


def pareto_mask(points: ArrayLike) -> np.ndarray:
    """Boolean mask of the non-dominated rows (front 0); duplicates of a front-0 row are all kept.

    d == 2 uses an O(n log n) sort sweep; other d a chunked pairwise filter with bounded memory.
    """
    p = _pad_1d(_as_points(points))
    n = len(p)
    if n == 0 or p.shape[1] == 0:
        return np.ones(n, dtype=bool)
    order = _lex_order(p)
    mask = np.empty(n, dtype=bool)
    mask[order] = _front0_sorted(p[order])
    return mask


def non_dominated_sort(points: ArrayLike) -> list[np.ndarray]:
    """Split rows into Pareto fronts (NSGA-II ranks, Deb et al. 2002); front 0 is non-dominated.

    Each front is an ascending array of row indices; identical rows share a front. Rank k+1 holds
    the rows dominated only by rows of ranks <= k. d == 2 is O(n log n); otherwise a blocked
    pairwise pass, O(d n^2) time with bounded memory.
    """
    p = _pad_1d(_as_points(points))
    n = len(p)
    if n == 0:
        return []
    if p.shape[1] == 0:
        return [np.arange(n, dtype=np.intp)]
    order = _lex_order(p)
    sp = p[order]
    rank_sorted = np.empty(n, dtype=np.intp)
    if p.shape[1] == 2:
        rank_sorted[:] = _ranks_2d_sorted(sp)
    else:
        rank_sorted[:] = _ranks_sorted(sp)
    rank = np.empty(n, dtype=np.intp)
    rank[order] = rank_sorted
    by_rank = np.argsort(rank, kind="stable")
    return np.split(by_rank, np.cumsum(np.bincount(rank))[:-1])


# --------------------------------------------------------------------------- diversity


def crowding_distance(points: ArrayLike) -> np.ndarray:
    """NSGA-II crowding distance of the rows of one front: larger means a less crowded point.

    Per column, the extreme rows get +inf and interior rows add (next - previous) / range; a column
    with zero range contributes nothing (an infinite range only marks its extremes). n <= 2: all +inf.
    """
    p = _as_points(points)
    n, d = p.shape
    if n <= 2:
        return np.full(n, np.inf)
    dist = np.zeros(n)
    for j in range(d):
        col = p[:, j]
        order = np.argsort(col, kind="stable")
        lo, hi = col[order[0]], col[order[-1]]
        if not hi > lo:  # zero range: every row ties, so no row is an extreme of this column
            continue
        dist[order[0]] = dist[order[-1]] = np.inf
        span = hi - lo
        if np.isfinite(span):
            dist[order[1:-1]] += (col[order[2:]] - col[order[:-2]]) / span
    return dist


# --------------------------------------------------------------------------- hypervolume


def _check_hv_args(points: ArrayLike, reference: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate points and reference for the hypervolume functions and return them as float arrays."""
    ref = np.asarray(reference, dtype=float)
    if ref.ndim != 1 or ref.size == 0:
        raise ValueError(f"reference must be a non-empty 1-D point, got shape {ref.shape}")
    if np.isnan(ref).any():
        raise ValueError("reference contains NaN")
    p = _as_points(points, d=ref.size)
    if p.shape[1] != ref.size:
        raise ValueError(
            f"reference has length {ref.size} but points have {p.shape[1]} columns"
        )
    return p, ref


def _inside(p: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rows of ``p`` that strictly dominate ``ref`` in every column (the only ones with volume)."""
    return p[np.all(p < ref, axis=1)]


def _hv2d(p: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume of rows strictly inside ``ref`` by an x-sorted sweep (dominated rows allowed)."""
    if len(p) == 0:
        return 0.0
    order = np.lexsort((p[:, 1], p[:, 0]))
    x, y = p[order, 0], p[order, 1]
    xs = np.append(x, ref[0])
    width = np.diff(xs)
    width[xs[1:] == xs[:-1]] = 0.0  # repeated x adds nothing (and avoids -inf - -inf = nan)
    height = ref[1] - np.minimum.accumulate(y)
    with np.errstate(invalid="ignore"):
        return float(np.sum(np.where(width == 0, 0.0, width * height)))


def _hv(p: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of rows strictly inside ``ref``: 2-D sweep, else slicing along the last column."""
    n, d = p.shape
    if n == 0:
        return 0.0
    if d == 1:
        return float(ref[0] - p[:, 0].min())
    if d == 2:
        return _hv2d(p, ref)
    if n == 1:
        return float(np.prod(ref - p[0]))
    p = p[pareto_mask(p)]
    p = p[np.argsort(p[:, -1], kind="stable")]
    z = p[:, -1]
    upper = np.append(z[1:], ref[-1])
    sub_ref = ref[:-1]
    total = 0.0
    for k in range(len(p)):
        if upper[k] <= z[k]:  # tied z: the slab is accounted for at the last row of the tie
            continue
        # Between z[k] and the next z, the dominated region is the (d-1)-D region of rows 0..k.
        total += (upper[k] - z[k]) * _hv(p[: k + 1, :-1], sub_ref)
    return float(total)


def hypervolume(points: ArrayLike, reference: ArrayLike) -> float:
    """Exact volume dominated by ``points`` and bounded by the worst corner ``reference``.

    Rows that do not strictly beat ``reference`` in every column add nothing. d == 2 is an
    O(n log n) sweep; d >= 3 recursive slicing (fine for a few hundred points in d == 3).
    """
    p, ref = _check_hv_args(points, reference)
    return _hv(_inside(p, ref), ref)


def _contributions_2d(q: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Exclusive 2-D contributions of rows strictly inside ``ref``, in O(n log n) plus one sweep per owner.

    A front point owns the rectangle up to the next front x and the previous front y, less what is
    covered by the rows whose only front dominator it is (they take over once it is removed).
    """
    n = len(q)
    order = np.lexsort((q[:, 1], q[:, 0]))
    sq = q[order]
    on_front = _front0_sorted_2d(sq)
    front_pos = np.flatnonzero(on_front)
    fx, fy = sq[front_pos, 0], sq[front_pos, 1]  # x ascending, y descending
    next_x = np.append(fx[1:], ref[0])
    prev_y = np.insert(fy[:-1], 0, ref[1])
    with np.errstate(invalid="ignore"):
        width = np.where(next_x == fx, 0.0, next_x - fx)  # an exact duplicate gets zero width/height
        height = np.where(prev_y == fy, 0.0, prev_y - fy)
        own = np.where((width == 0) | (height == 0), 0.0, width * height)
    # Front dominators of a dominated row form the index range [lo, hi) of the sorted front.
    rest = sq[~on_front]
    hi = np.searchsorted(fx, rest[:, 0], side="right")
    lo = np.searchsorted(-fy, -rest[:, 1], side="left")
    sole = hi - lo == 1
    owned, owner = rest[sole], lo[sole]
    for k in np.unique(owner):
        if own[k] > 0:
            own[k] -= _hv2d(owned[owner == k], np.array([next_x[k], prev_y[k]]))
    out_sorted = np.zeros(n)
    out_sorted[front_pos] = own
    out = np.empty(n)
    out[order] = out_sorted
    return out


def hypervolume_contributions(points: ArrayLike, reference: ArrayLike) -> np.ndarray:
    """Exclusive hypervolume of each row, HV(all) - HV(all without row i), for SMS-EMOA-style selection.

    Dominated rows, exact duplicates and rows outside the reference box contribute 0.
    """
    p, ref = _check_hv_args(points, reference)
    n, d = p.shape
    contrib = np.zeros(n)
    inside = np.flatnonzero(np.all(p < ref, axis=1))
    if inside.size == 0:
        return contrib
    q = p[inside]
    if d == 2:
        contrib[inside] = _contributions_2d(q, ref)
        return contrib
    # Otherwise: the exclusive part of row i is its box minus the region the others dominate inside it.
    nd = pareto_mask(q)
    for i in np.flatnonzero(nd):
        others = np.delete(q, i, axis=0)
        limited = np.maximum(others, q[i])  # each other box clipped to row i's box
        contrib[inside[i]] = float(np.prod(ref - q[i])) - _hv(_inside(limited, ref), ref)
    return contrib
