"""The search behind tests/data/journal-v1/: a workdir written by the toolkit at commit 074add2 (schema 1).

Run `python tests/journal_v1.py DIR` to write it again. The committed copy must stay as the old version
wrote it: tests/test_store.py reads and resumes it, so a format change cannot silently break old workdirs.
It has every kind of record: ok, failed and infeasible (cheap constraint) trials, non-finite metrics
stored as strings, a resume record raising the budget, and an evolution snapshot.
"""

from __future__ import annotations

import sys
from typing import Any

import nas
from nas.spaces import Choice, Repeat, Space

SPACE = Space(depth=Choice([1, 2, 3]), blocks=Repeat(count="depth", k=Choice([3, 5, 7]), w=Choice([8, 16, 32])),
              act=Choice(["relu", "gelu"]))
OBJECTIVES = {"accuracy": "max", "latency_ms": "min"}
CONSTRAINTS = ["latency_ms <= 30", "params <= 2000"]
SEED, FIRST_BUDGET, BUDGET = 3, 10, 16


def params(arch: Any) -> dict[str, float]:
    """Cheap: a parameter count from the widths (constraint `params <= 2000` rejects the widest nets)."""
    return {"params": float(sum(b["k"] * b["w"] * b["w"] // 4 for b in arch["blocks"]))}


def evaluate(arch: Any) -> dict[str, float]:
    """Expensive: deterministic toy metrics; one architecture family fails, one has an infinite extra metric."""
    if arch["act"] == "gelu" and arch["blocks"][0]["k"] == 7:
        raise RuntimeError("diverged")
    cap = sum(b["k"] * b["w"] for b in arch["blocks"])
    return {"accuracy": 100 - 300 / (3 + cap ** 0.5), "latency_ms": 2.0 * arch["depth"] + cap / 20,
            "loss_ratio": float("inf") if arch["depth"] == 1 else 0.5}


def run(workdir: str, budget: int) -> nas.SearchResult:
    return nas.search(SPACE, [nas.cheap(params), evaluate], OBJECTIVES, constraints=CONSTRAINTS,
                      strategy="evolution", strategy_options={"population_size": 6}, budget=budget, seed=SEED,
                      workdir=workdir, snapshot_every=4, snapshot_interval_s=0.0, metadata={"fixture": "journal-v1"})


if __name__ == "__main__":
    run(sys.argv[1], FIRST_BUDGET)
    run(sys.argv[1], BUDGET)
