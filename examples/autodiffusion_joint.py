"""AutoDiffusion's joint search in miniature (Li et al. 2023, "AutoDiffusion: Training-Free Optimization of Time
Steps and Architectures for Automated Diffusion Model Acceleration"): which K of T = 1000 time steps a
few-step sampler keeps, and which blocks of its noise-prediction network it skips at each kept step, scored
training-free by comparing generated samples with true ones.

    nas run examples/autodiffusion_joint.py --budget 300
    .venv/bin/python examples/autodiffusion_joint.py [--steps 6] [--budget 300] [--seed 0]

Nothing is trained or downloaded; the network is exact by construction, so every difference in quality comes
from the schedule and the skipped blocks:

- Data: a 2-D mixture of 8 Gaussians (std 0.08) in a hierarchy of 2 clusters x 2 sub-clusters x 2 leaves,
  with unequal weights. Forward process: DDPM, T = 1000, betas linear from 1e-4 to 0.02.
- Network: the exact noise prediction eps*(x, t) = -sqrt(1 - abar_t) grad log p_t(x) written as a residual
  stack of 8 blocks. Block 0 (always run) is the eps of one Gaussian moment-matched to the data; block j
  (1..7) adds the change from splitting one component of the mixture into its two halves (coarse to fine,
  root first), so the blocks telescope to the exact 8-component mixture. Skipping block j drops that
  correction: coarse blocks matter from high noise on, fine ones only near the data, which the per-step
  skip masks can exploit.
- Sampler: DDIM (eta = 0) over the kept steps, from x ~ N(0, I) at the largest kept step down to x_0.
- Fitness (pluggable, `evaluator(fitness=...)`): the sliced Wasserstein-2 distance between `n` generated
  samples and `n` true samples over 32 evenly spaced directions (`mmd` is the other one given). The noise
  and the true samples are drawn from fixed seeds, so an architecture always gets the same score.
- Cost: `compute`, the fraction of the K x 8 block evaluations a configuration runs (1.0: no skips).

The space: `steps = Subset(n=1000, k=K)` (the kept time steps, increasing) and `skip`, one mask per kept step
(in sampling order, noisiest first) of booleans b1..b7 (True: block j is skipped at that step).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

import nas
from nas.spaces import Choice, Repeat, Space, Subset

T = 1000
BLOCKS = 8  # block 0 (always run) + 7 skippable refinement blocks
LEAF_STD = 0.08
Fitness = Callable[[np.ndarray, np.ndarray], float]


# ------------------------------------------------------------------------------------------ the data
def leaves() -> tuple[np.ndarray, np.ndarray]:
    """The 8 mixture components: weights (8,) and means (8, 2); leaf index = 4a + 2b + c (cluster a, sub b, leaf c)."""
    w = np.array([0.20, 0.05, 0.15, 0.10, 0.08, 0.12, 0.22, 0.08])
    means = np.array([[(2 * a - 1) * 1.0 + (2 * c - 1) * 0.25, (2 * b - 1) * 0.6]
                      for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    return w / w.sum(), means


def merged(idx: Sequence[int]) -> tuple[float, np.ndarray, np.ndarray]:
    """Weight, mean and covariance of the Gaussian moment-matched to leaves `idx`."""
    w, means = leaves()
    ws = w[list(idx)]
    mu = means[list(idx)]
    m = (ws[:, None] * mu).sum(0) / ws.sum()
    d = mu - m
    cov = LEAF_STD**2 * np.eye(2) + (ws[:, None, None] * np.einsum("ni,nj->nij", d, d)).sum(0) / ws.sum()
    return float(ws.sum()), m, cov


def levels() -> list[list[tuple[int, ...]]]:
    """The mixture after 0..7 splits, each a list of leaf groups: [(0..7)], [(0..3), (4..7)], ... [(0,), ..., (7,)].
    Splits go breadth first (the root, then both clusters, then the four sub-clusters)."""
    out = [[tuple(range(8))]]
    for size in (8, 4, 2):
        for start in range(0, 8, size):
            group = tuple(range(start, start + size))
            cur = list(out[-1])
            i = cur.index(group)
            cur[i:i + 1] = [group[:size // 2], group[size // 2:]]
            out.append(cur)
    return out


def true_samples(n: int, seed: int) -> np.ndarray:
    w, means = leaves()
    rng = np.random.default_rng(seed)
    comp = rng.choice(8, size=n, p=w)
    return means[comp] + LEAF_STD * rng.standard_normal((n, 2))


ALPHA_BAR = np.cumprod(1.0 - np.linspace(1e-4, 0.02, T))
LEVELS = levels()
COMPONENTS = [[merged(g) for g in level] for level in LEVELS]


# ------------------------------------------------------------------------------------------ the network
SIZES = [len(level) for level in LEVELS]  # components per level: 1, 2, ..., 8
STARTS = np.concatenate([[0], np.cumsum(SIZES)[:-1]])


@lru_cache(maxsize=None)
def _step_params(t: int) -> tuple[np.ndarray, ...]:
    """Every level's components at step t, concatenated (36 of them): log weight, scaled mean and the
    precision and log-determinant of the noised marginal N(sqrt(abar) m, abar C + (1 - abar) I)."""
    a = ALPHA_BAR[t]
    comps = [c for level in COMPONENTS for c in level]
    logw = np.log([c[0] for c in comps])
    mean = np.sqrt(a) * np.array([c[1] for c in comps])
    cov = np.array([a * c[2] + (1 - a) * np.eye(2) for c in comps])
    return logw, mean, np.linalg.inv(cov), np.linalg.slogdet(cov)[1]


def eps_levels(x: np.ndarray, t: int) -> np.ndarray:
    """The exact eps-prediction of the mixture at every level, shape (8, n, 2): level 0 is one Gaussian,
    level 7 the data's 8 components (so eps_levels(x, t)[7] = eps*(x, t))."""
    logw, mean, prec, logdet = _step_params(t)
    d0, d1 = x[:, None, 0] - mean[:, 0], x[:, None, 1] - mean[:, 1]  # (n, 36)
    p0 = prec[:, 0, 0] * d0 + prec[:, 0, 1] * d1
    p1 = prec[:, 1, 0] * d0 + prec[:, 1, 1] * d1
    logits = logw - 0.5 * (d0 * p0 + d1 * p1) - 0.5 * logdet
    logits -= np.repeat(np.maximum.reduceat(logits, STARTS, axis=1), SIZES, axis=1)
    r = np.exp(logits)
    r /= np.repeat(np.add.reduceat(r, STARTS, axis=1), SIZES, axis=1)  # responsibilities within each level
    e0, e1 = np.add.reduceat(r * p0, STARTS, axis=1), np.add.reduceat(r * p1, STARTS, axis=1)  # (n, 8)
    return np.sqrt(1 - ALPHA_BAR[t]) * np.stack([e0.T, e1.T], axis=-1)


def network(x: np.ndarray, t: int, skip: Sequence[bool] = ()) -> np.ndarray:
    """The residual stack: block 0 plus every block j >= 1 not skipped (skip[j - 1] True skips block j).
    Block j's output is eps_levels[j] - eps_levels[j - 1], so with no skips the sum is exactly eps*(x, t)."""
    eps = eps_levels(x, t)
    keep = [True] + [not s for s in skip] + [True] * (BLOCKS - 1 - len(skip))
    out = eps[0].copy()
    for j in range(1, BLOCKS):
        if keep[j]:
            out += eps[j] - eps[j - 1]
    return out


def ddim(steps: Sequence[int], skips: Sequence[Sequence[bool]], n: int, seed: int) -> np.ndarray:
    """DDIM (eta = 0) through the kept `steps` (any order given; run largest first) from N(0, I) noise drawn
    with `seed`; `skips[i]` is the mask of the i-th step run."""
    order = sorted(steps, reverse=True)
    x = np.random.default_rng(seed).standard_normal((n, 2))
    for i, t in enumerate(order):
        a_t = ALPHA_BAR[t]
        a_prev = ALPHA_BAR[order[i + 1]] if i + 1 < len(order) else 1.0
        eps = network(x, t, skips[i] if i < len(skips) else ())
        x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        x = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps
    return x


# ------------------------------------------------------------------------------------------ fitness
def sliced_wasserstein(x: np.ndarray, y: np.ndarray, directions: int = 32) -> float:
    """Sliced Wasserstein-2 distance between two equal-size 2-D samples over evenly spaced directions."""
    theta = np.pi * np.arange(directions) / directions
    u = np.stack([np.cos(theta), np.sin(theta)])
    px, py = np.sort(x @ u, axis=0), np.sort(y @ u, axis=0)
    return float(np.sqrt(((px - py) ** 2).mean()))


def mmd(x: np.ndarray, y: np.ndarray, bandwidths: Sequence[float] = (0.05, 0.2, 1.0)) -> float:
    """Maximum mean discrepancy (biased, sum of RBF kernels) between two samples."""
    def k(a: np.ndarray, b: np.ndarray) -> float:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return float(sum(np.exp(-d2 / (2 * h * h)).mean() for h in bandwidths))

    return math.sqrt(max(k(x, x) + k(y, y) - 2 * k(x, y), 0.0))


def compute(arch: Mapping[str, Any]) -> float:
    """The fraction of the K x 8 block evaluations that run."""
    skips = [[bool(m[f"b{j}"]) for j in range(1, BLOCKS)] for m in arch["skip"]]
    return sum(BLOCKS - sum(s) for s in skips) / (BLOCKS * len(skips))


def masks(arch: Mapping[str, Any]) -> list[list[bool]]:
    return [[bool(m[f"b{j}"]) for j in range(1, BLOCKS)] for m in arch["skip"]]


def evaluator(fitness: Fitness = sliced_wasserstein, n: int = 2048, noise_seed: int = 0,
              data_seed: int = 1) -> Callable[[Mapping[str, Any]], dict[str, float]]:
    """arch -> {"distance": fitness(generated, true), "compute": ...}; deterministic (fixed seeds)."""
    reference = true_samples(n, data_seed)

    def evaluate(arch: Mapping[str, Any]) -> dict[str, float]:
        x = ddim(arch["steps"], masks(arch), n, noise_seed)
        dist = fitness(x, reference)
        return {"distance": dist if math.isfinite(dist) else 1e9, "compute": compute(arch)}

    return evaluate


# ------------------------------------------------------------------------------------------ space and baselines
def joint_space(steps: int = 6, t: int = T) -> Space:
    """Kept time steps x per-step skip masks: `steps` is a Subset(n=t, k=steps), `skip[i].bj` skips block j at
    the i-th step run (noisiest first)."""
    return Space(steps=Subset(n=t, k=steps),
                 skip=Repeat(count=steps, block=Space({f"b{j}": Choice([False, True]) for j in range(1, BLOCKS)})))


def uniform(steps: int, kind: str = "ddim") -> dict[str, Any]:
    """Evenly spaced steps and no skips: "ddim" is DDIM's `range(0, T, T // K)`, "linspace" spans 0..T-1,
    "quadratic" is DDIM's quadratic spacing (denser near the data)."""
    if kind == "ddim":
        kept = list(range(0, T, T // steps))[:steps]
    elif kind == "linspace":
        kept = [int(round(v)) for v in np.linspace(0, T - 1, steps)]
    elif kind == "quadratic":
        kept = sorted({int(v) for v in np.linspace(0, np.sqrt(T * 0.8), steps) ** 2})
    else:
        raise ValueError(f"unknown spacing {kind!r}")
    if len(kept) != steps:
        raise ValueError(f"{kind} spacing gives {len(kept)} distinct steps for K={steps}")
    return {"steps": kept, "skip": [{f"b{j}": False for j in range(1, BLOCKS)} for _ in range(steps)]}


# `nas run` reads these
space = joint_space(6)
evaluate = evaluator()
objectives = {"distance": "min"}
constraints = ["compute <= 0.75"]
strategy = "evolution"
budget = 300


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """One seed of evolution and random search against the uniform baselines; prints a small table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-compute", type=float, default=0.75)
    args = ap.parse_args(argv)
    sp, ev = joint_space(args.steps), evaluator()
    rows: dict[str, Any] = {}
    for kind in ("ddim", "linspace", "quadratic"):
        arch = sp.validate(uniform(args.steps, kind))
        rows[f"uniform-{kind}"] = (arch, ev(arch))
    for method in ("random", "evolution"):
        r = nas.search(sp, ev, objectives, constraints=[f"compute <= {args.max_compute}"], strategy=method,
                       budget=args.budget, seed=args.seed)
        best = r.best()
        rows[method] = (best.arch, dict(best.metrics))
    print(f"K = {args.steps} kept steps of {T}; compute <= {args.max_compute} for the searches")
    print(f"{'method':20s} {'distance':>9s} {'compute':>8s}  steps")
    for name, (arch, m) in rows.items():
        print(f"{name:20s} {m['distance']:9.4f} {m['compute']:8.3f}  {list(arch['steps'])}")
    return rows


if __name__ == "__main__":
    main()
