"""A small real search for the dashboard tests, run as its own process: `python dashboard_search.py WORKDIR
BUDGET DELAY_S [GATES]` (each evaluation sleeps DELAY_S, so a test can watch the search while it runs). With a
GATES folder, the 10th evaluation waits for GATES/go1 to exist and the 40th for GATES/go2: a test reads the
search at those points whatever the machine's speed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nas
from nas.spaces import Choice, Repeat, Space

SPACE = Space(depth=Choice([1, 2, 3]), blocks=Repeat(count="depth", k=Choice([3, 5, 7]), w=Choice([8, 16, 32])),
              act=Choice(["relu", "gelu"]))


def evaluate(arch: dict) -> dict[str, float]:
    """Accuracy grows with depth and width, cost with kernel × width; one family fails (simulated OOM)."""
    time.sleep(DELAY)
    CALLS.append(1)
    gate = {10: "go1", 40: "go2"}.get(len(CALLS))
    while GATES is not None and gate is not None and not (GATES / gate).exists():
        time.sleep(0.02)
    cost = sum(b["k"] * b["w"] for b in arch["blocks"])
    if arch["depth"] == 3 and arch["blocks"][0]["k"] == 7 and arch["act"] == "relu":
        raise RuntimeError("out of memory (simulated)")
    acc = 50 + 10 * arch["depth"] ** 0.5 + sum(b["w"] for b in arch["blocks"]) / 10 + (arch["act"] == "gelu")
    return {"acc": acc, "cost": float(cost), "params_k": cost / 3}


CALLS: list[int] = []
if __name__ == "__main__":
    DELAY = float(sys.argv[3])
    GATES = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    nas.search(SPACE, evaluate, objectives={"acc": "max", "cost": "min"}, constraints=["cost <= 400"],
               strategy="nsga2", budget=int(sys.argv[2]), seed=0, workdir=sys.argv[1])
else:
    DELAY, GATES = 0.0, None
