"""Pareto dominance, non-dominated sorting, crowding distance and hypervolume.

Every function takes ``points`` as a 2-D float array of shape ``(n, d)`` in
which EVERY column is minimised; callers negate maximised objectives first.
Any array-like is accepted and converted with ``np.asarray(points, dtype=float)``.
NaN is rejected with `nas.errors.ConfigError` (a ``ValueError`` and a ``NASError``,
naming the argument: dominance is undefined for it); +/-inf is allowed and ordered as usual.

Exact hypervolume: a sweep in 2-D, slicing in 3-D, and from 4-D on Optuna's WFG
(``optuna._hypervolume``, exact; 2-12x faster than slicing in 4-6 dimensions);
`HypervolumeTracker` keeps the hypervolume of a growing set up to date point by point.
"""

from __future__ import annotations

import bisect
import functools
import logging
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from nas.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "crowding_distance",
    "dominates",
    "HypervolumeTracker",
    "MonteCarloHypervolume",
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
        raise ConfigError(f"points: expected a 2-D array of shape (n, d), got shape {arr.shape}")
    if np.isnan(arr).any():
        row = int(np.flatnonzero(np.isnan(arr).any(axis=1))[0])
        raise ConfigError(f"points: row {row} holds NaN; dominance is undefined for NaN objectives (drop or fill "
                          "such rows first)")
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
        raise ConfigError(f"a, b: cannot compare shapes {av.shape} and {bv.shape}")
    return bool(np.all(av <= bv) and np.any(av < bv))


def extend_front(front: list[np.ndarray], point: np.ndarray) -> bool:
    """Add `point` (minimisation form) to the mutually non-dominated `front`, in place, dropping the points it
    dominates; False, and `front` unchanged, when a point of `front` weakly dominates it (no improvement)."""
    if any(np.all(f <= point) for f in front):
        return False
    front[:] = [f for f in front if not np.all(point <= f)] + [point]
    return True


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


class ParetoFronts:
    """The fronts of `non_dominated_sort` kept up to date as points arrive one at a time (rows in minimisation form).

    Adding a point never lowers a rank and raises a rank by at most one: the point joins the first front holding no
    dominator of it (a binary search: only the fronts before its own hold one), the rows of that front it dominates
    move one front down, and so in turn do the rows of each next front that a moved row dominates. A point costs
    comparisons against log(fronts) fronts plus the fronts it shifts, instead of a sort of every point, so a strategy
    that ranks a growing history on every ask stays flat. `ids[k]` lists front k's keys ascending, `points[k]` their
    rows in the same order; with keys 0..n-1 in row order `ids` equals `non_dominated_sort` of the rows.
    """

    def __init__(self, points: ArrayLike = (), keys: list[int] | None = None) -> None:
        p = _as_points(points)
        keys = list(range(len(p))) if keys is None else list(keys)
        fronts = non_dominated_sort(p) if len(p) else []
        self.ids: list[list[int]] = [[keys[i] for i in f] for f in fronts]
        self.points: list[np.ndarray] = [p[f] for f in fronts]
        self.touched = range(0)  # the fronts whose rows the last `add` changed

    def rank_of(self, point: ArrayLike) -> int:
        """The front `point` would join: the number of fronts holding a row that dominates it."""
        p = _as_points(np.reshape(np.asarray(point, dtype=float), (1, -1)))
        lo, hi = 0, len(self.points)
        while lo < hi:
            mid = (lo + hi) // 2
            if _dominated_by(p, self.points[mid])[0]:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def add(self, point: ArrayLike, key: int) -> int:
        """Add `point` under `key` (keys are distinct); its front. The fronts that changed are in `touched`."""
        p = _as_points(np.reshape(np.asarray(point, dtype=float), (1, -1)))
        rank = k = self.rank_of(p)
        ids, pts = [key], p
        while ids:  # rows moving into front k (the new point, then the rows it pushed down)
            if k == len(self.points):
                self.ids.append([])
                self.points.append(np.empty((0, p.shape[1])))
            out = _dominated_by(self.points[k], pts)
            keep = [i for i, o in zip(self.ids[k], out.tolist()) if not o]
            merged_ids = keep + ids
            merged = np.concatenate([self.points[k][~out], pts])
            order = np.argsort(merged_ids, kind="stable")
            ids, pts = [i for i, o in zip(self.ids[k], out.tolist()) if o], self.points[k][out]
            self.ids[k], self.points[k] = [merged_ids[i] for i in order], merged[order]
            k += 1
        self.touched = range(rank, k)
        return rank


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
        raise ConfigError(f"reference: expected a non-empty 1-D point, got shape {ref.shape}")
    if np.isnan(ref).any():
        raise ConfigError(f"reference: expected numbers without NaN, got {ref.tolist()}")
    p = _as_points(points, d=ref.size)
    if p.shape[1] != ref.size:
        raise ConfigError(f"reference: has length {ref.size} but points have {p.shape[1]} columns (one value per "
                          "objective)")
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
    if d >= 4 and np.isfinite(p).all() and np.isfinite(ref).all() and _wfg() is not None:
        return float(_wfg()(p, ref))
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


@functools.cache
def _wfg() -> Any:
    """Optuna's exact WFG hypervolume (a private module of a declared dependency), or None when it moved."""
    try:
        from optuna._hypervolume import compute_hypervolume
    except ImportError:  # an Optuna that renamed it: the slicing in `_hv` is exact too, only slower
        log.info("optuna._hypervolume.compute_hypervolume not found: hypervolume in 4+ dimensions by slicing")
        return None
    return compute_hypervolume


def hypervolume(points: ArrayLike, reference: ArrayLike) -> float:
    """Exact volume dominated by ``points`` and bounded by the worst corner ``reference``.

    Rows that do not strictly beat ``reference`` in every column add nothing. d == 2 is an
    O(n log n) sweep; d == 3 recursive slicing; d >= 4 Optuna's WFG (slicing without Optuna).
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


def added_hypervolume(front: np.ndarray, point: np.ndarray, reference: np.ndarray) -> float:
    """The volume `point` would add to the hypervolume of `front` (minimised rows, inside `reference`): its box less
    the front clipped to that box (the WFG step), so one small hypervolume, not HV(front + point) - HV(front) over
    the whole front. Exactly that difference, up to rounding."""
    if not np.all(point < reference):
        return 0.0
    clipped = np.maximum(front, point)
    if len(clipped) > 1:
        clipped = clipped[pareto_mask(clipped)]
    with np.errstate(invalid="ignore"):
        return max(float(np.prod(reference - point)) - (_hv(_inside(clipped, reference), reference)
                                                         if len(clipped) else 0.0), 0.0)


class HypervolumeTracker:
    """The exact hypervolume of a growing set of points against a fixed reference, updated per added point.

    Each point adds its exclusive volume: its box less the front's hypervolume clipped to that box (the
    WFG step), so a point costs one small hypervolume and a dominated one a dominance check; nothing is
    recomputed. `front` holds the non-dominated points inside the reference box.
    """

    def __init__(self, reference: ArrayLike) -> None:
        ref = np.asarray(reference, dtype=float)
        if ref.ndim != 1 or ref.size == 0 or np.isnan(ref).any():
            raise ConfigError(f"reference: expected a non-empty 1-D point without NaN, got {reference!r}")
        self.reference = ref
        self.front = np.empty((0, ref.size))
        self.volume = 0.0
        self.evaluations = 0  # hypervolumes computed (one per point that entered the front)

    def add(self, point: ArrayLike) -> float:
        """Add one point (minimised columns); returns the volume it added (0 when dominated or outside)."""
        p = np.asarray(point, dtype=float)
        if p.shape != self.reference.shape or np.isnan(p).any():
            raise ConfigError(f"point: expected {self.reference.size} numbers without NaN, got {point!r}")
        ref, front = self.reference, self.front
        if ref.size == 2:
            return self._add_2d(p) if np.all(p < ref) and not self._covered(p[None, :])[0] else 0.0
        if not np.all(p < ref) or self._covered(p[None, :])[0]:
            return 0.0
        clipped = np.maximum(front, p)  # the part of the front's region inside p's box
        if len(clipped) > 1 and ref.size > 2:
            clipped = clipped[pareto_mask(clipped)]
        self.evaluations += 1
        with np.errstate(invalid="ignore"):
            gain = float(np.prod(ref - p)) - (_hv(clipped, ref) if len(clipped) else 0.0)
        self.front = np.vstack([front[~np.all(p <= front, axis=1)], p])
        self.volume += gain
        return gain

    def _covered(self, pts: np.ndarray) -> np.ndarray:
        """Which rows of `pts` a front point weakly dominates (in 2-D by binary search on the sorted front)."""
        f = self.front
        if len(f) == 0:
            return np.zeros(len(pts), dtype=bool)
        if f.shape[1] == 2:  # the front point with the largest x <= the row's x has the lowest y among them
            k = np.searchsorted(f[:, 0], pts[:, 0], side="right") - 1
            return (k >= 0) & (f[np.maximum(k, 0), 1] <= pts[:, 1])
        out = np.zeros(len(pts), dtype=bool)
        for r in range(0, len(f), _chunk_rows(len(pts) * f.shape[1])):
            out |= np.all(f[None, r : r + _chunk_rows(len(pts) * f.shape[1])] <= pts[:, None, :], axis=2).any(axis=1)
        return out

    def _add_2d(self, p: np.ndarray) -> float:
        """`add` in 2-D, the front kept sorted by x (so y descends): p's box less the staircase of the front
        points it dominates, found by binary search; O(log n) plus the points it removes."""
        f, ref = self.front, self.reference
        x, y = f[:, 0], f[:, 1]
        i = int(np.searchsorted(x, p[0], side="left"))  # f[:i]: left of p (each higher than p: p is not covered)
        j = i + int(np.searchsorted(-y[i:], -p[1], side="right"))  # f[i:j]: dominated by p, then f[j:] below p
        top = y[i - 1] if i > 0 else ref[1]
        right = x[j] if j < len(f) else ref[0]
        gone = f[i:j]
        widths = np.diff(np.append(gone[:, 0], right))
        with np.errstate(invalid="ignore"):
            gain = float((right - p[0]) * (top - p[1]) - np.sum(widths * (top - gone[:, 1])))
        self.front = np.vstack([f[:i], p[None, :], f[j:]])
        self.evaluations += 1
        self.volume += gain
        return gain

    def extend(self, points: ArrayLike) -> np.ndarray:
        """Add the rows of `points` in order; returns the volume after each. Rows the front already covers
        are found block by block with one vectorised check and cost nothing more."""
        p = _as_points(points, d=self.reference.size)
        if p.shape[1] != self.reference.size:
            raise ConfigError(f"points: have {p.shape[1]} columns, the reference {self.reference.size}")
        out = np.empty(len(p))
        for s in range(0, len(p), _BLOCK_ROWS):
            blk = p[s : s + _BLOCK_ROWS]
            covered = ~np.all(blk < self.reference, axis=1) | self._covered(blk)
            for i in range(len(blk)):  # a covered row stays covered: the front only gains ground
                if not covered[i]:
                    self.add(blk[i])
                out[s + i] = self.volume
        return out


class MonteCarloHypervolume(HypervolumeTracker):
    """`HypervolumeTracker` estimated by Monte Carlo, for many objectives (exact hypervolume grows
    exponentially with the dimension): `samples` uniform points in the box [`lower`, `reference`] (seeded,
    so the same points give the same estimate); the volume is the box times the share of them some added
    point dominates, with standard error `error`. Every added point must lie in that box."""

    def __init__(self, reference: ArrayLike, lower: ArrayLike, samples: int = 1 << 16, seed: int = 0) -> None:
        super().__init__(reference)
        lo = np.asarray(lower, dtype=float)
        if lo.shape != self.reference.shape or not np.all(np.isfinite(lo)) or not np.all(lo < self.reference) \
                or not np.all(np.isfinite(self.reference)) or samples < 1:
            raise ConfigError(f"lower, samples: lower must be finite and below a finite reference in every column, "
                              f"and samples positive: got lower {lower!r}, reference {self.reference!r}, samples "
                              f"{samples!r}")
        self.lower, self.samples = lo, int(samples)
        self.box = float(np.prod(self.reference - lo))
        rows = lo + np.random.default_rng(seed).random((self.samples, lo.size)) * (self.reference - lo)
        self._free = np.ascontiguousarray(rows.T)  # column by column: the samples no added point dominates yet
        self._hit = 0  # samples dominated so far

    @property
    def error(self) -> float:
        """The estimate's standard error (binomial: box * sqrt(q (1 - q) / samples), q the share dominated)."""
        q = self._hit / self.samples
        return self.box * float(np.sqrt(q * (1.0 - q) / self.samples))

    def add(self, point: ArrayLike) -> float:
        """Add one point (minimised columns); returns the estimated volume it added."""
        p = np.asarray(point, dtype=float)
        if p.shape != self.reference.shape or np.isnan(p).any() or np.any(p < self.lower):
            raise ConfigError(f"point: expected {self.reference.size} numbers, none below lower {self.lower!r}; "
                              f"got {point!r}")
        if not np.all(p < self.reference) or self._covered(p[None, :])[0]:
            return 0.0
        hit = self._free[0] >= p[0]
        for j in range(1, p.size):
            hit &= self._free[j] >= p[j]
        self._hit += int(np.count_nonzero(hit))
        self._free = self._free[:, ~hit]
        front = np.vstack([self.front[~np.all(p <= self.front, axis=1)], p])
        self.front = front[np.argsort(front[:, 0], kind="stable")] if front.shape[1] == 2 else front
        self.evaluations += 1
        before, self.volume = self.volume, self.box * self._hit / self.samples
        return self.volume - before
