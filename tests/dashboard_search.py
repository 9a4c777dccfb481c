"""A small real search for the dashboard tests, run as its own process: `python dashboard_search.py WORKDIR
BUDGET DELAY_S` (each evaluation sleeps DELAY_S, so a test can watch the search while it runs)."""

from __future__ import annotations

import sys
import time

import nas
from nas.spaces import Choice, Repeat, Space

SPACE = Space(depth=Choice([1, 2, 3]), blocks=Repeat(count="depth", k=Choice([3, 5, 7]), w=Choice([8, 16, 32])),
              act=Choice(["relu", "gelu"]))


def evaluate(arch: dict) -> dict[str, float]:
    """Accuracy grows with depth and width, cost with kernel × width; one family fails (simulated OOM)."""
    time.sleep(DELAY)
    cost = sum(b["k"] * b["w"] for b in arch["blocks"])
    if arch["depth"] == 3 and arch["blocks"][0]["k"] == 7 and arch["act"] == "relu":
        raise RuntimeError("out of memory (simulated)")
    acc = 50 + 10 * arch["depth"] ** 0.5 + sum(b["w"] for b in arch["blocks"]) / 10 + (arch["act"] == "gelu")
    return {"acc": acc, "cost": float(cost), "params_k": cost / 3}


if __name__ == "__main__":
    DELAY = float(sys.argv[3])
    nas.search(SPACE, evaluate, objectives={"acc": "max", "cost": "min"}, constraints=["cost <= 400"],
               strategy="nsga2", budget=int(sys.argv[2]), seed=0, workdir=sys.argv[1])
else:
    DELAY = 0.0
