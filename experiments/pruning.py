"""Pruning with real training: how many epochs Optuna's pruners save a search, and what they cost its pick.

Space: `nas.gym.digits_mlp_space()` (MLPs of depth 1-3, a width per layer, one activation, a learning rate: 1,008
architectures). A trial trains the MLP from scratch on scikit-learn's digits (900 train / 450 valid / 447 test;
AdamW, batch 64, `EPOCHS` epochs, seeded per architecture, one thread), calling `nas.report_metrics` with the validation
accuracy after each epoch. Per seed, `evolution` (defaults) and `random` search `BUDGET` trials without a pruner,
with `pruner="median"` and with `pruner="asha"`, side by side; the pick (best validation accuracy) is reported with
its test accuracy (a pruned trial's validation accuracy is its last report's, so a pick is always a finished
training unless every better one was pruned).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/pruning.py            # 10 seeds, ~6 min on 2 cores
    .venv/bin/python experiments/pruning.py --quick                        # smoke run (tests)

Writes results/pruning.json and prints the table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import git_commit  # noqa: E402  (experiments/ is on sys.path)

RESULTS = Path(__file__).resolve().parent / "results"
EPOCHS = 12
BUDGET = 100
PRUNERS = (None, "median", "asha")
STRATEGIES = ("evolution", "random")


class Training:
    """Train one MLP epoch by epoch on digits, reporting the validation accuracy after each; counts epochs. The
    model and the data are `nas.gym.DigitsMLPTraining`'s (the gym's digits MLPs, initialised from one seed)."""

    def __init__(self, epochs: int) -> None:
        import torch

        from nas.gym import DigitsMLPTraining

        torch.set_num_threads(1)
        self.epochs_per_trial = epochs
        self.gym = DigitsMLPTraining(epochs)
        self.data = self.gym.data
        self.epochs = 0
        self.test: dict[str, float] = {}  # arch id -> test accuracy of its final model

    def __call__(self, arch: Mapping[str, Any]) -> dict[str, float]:
        import torch
        from torch import nn

        import nas
        from nas.spaces import Architecture
        from nas.spaces.training import accuracy

        x, y = self.data["train"]
        gen = torch.Generator().manual_seed(0)
        model = self.gym.build(arch)
        opt = torch.optim.AdamW(model.parameters(), lr=float(arch["lr"]))
        valid = 0.0
        for _ in range(self.epochs_per_trial):
            self.epochs += 1
            model.train()
            for idx in torch.randperm(len(x), generator=gen).split(64):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                valid = accuracy(model, *self.data["valid"])
            nas.report_metrics({"valid_acc": valid})
        with torch.no_grad():
            self.test[Architecture(arch).id] = accuracy(model, *self.data["test"])
        return {"valid_acc": valid}


def run_one(task: tuple[str, str | None, int, int, int]) -> dict[str, Any]:
    import logging

    import nas
    from nas.gym import digits_mlp_space

    logging.getLogger("nas").setLevel(logging.ERROR)
    strategy, pruner, seed, budget, epochs = task
    training = Training(epochs)
    t0 = time.perf_counter()
    r = nas.search(digits_mlp_space(), training, {"valid_acc": "max"}, strategy=strategy, budget=budget, seed=seed,
                   pruner=pruner)
    pick = r.best()
    return {"strategy": strategy, "pruner": pruner or "none", "seed": seed, "epochs": training.epochs,
            "seconds": time.perf_counter() - t0, "pruned": sum(t.pruned_after is not None for t in r.trials),
            "pick_valid": pick.metrics["valid_acc"], "pick_test": training.test.get(pick.arch_id),
            "pick_pruned": pick.pruned_after is not None}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from scipy import stats

    out: dict[str, Any] = {}
    for strategy in STRATEGIES:
        base = {r["seed"]: r for r in rows if r["strategy"] == strategy and r["pruner"] == "none"}
        for pruner in ("none", "median", "asha"):
            mine = sorted((r for r in rows if r["strategy"] == strategy and r["pruner"] == pruner), key=lambda r: r["seed"])
            if not mine:
                continue
            entry: dict[str, Any] = {k: float(np.mean([r[k] for r in mine])) for k in ("epochs", "seconds", "pruned",
                                                                                         "pick_valid")}
            entry["pick_test"] = float(np.mean([r["pick_test"] for r in mine if r["pick_test"] is not None]))
            entry["picks_pruned"] = int(sum(r["pick_pruned"] for r in mine))
            if pruner != "none":
                for key in ("pick_valid", "pick_test"):
                    d = np.array([r[key] - base[r["seed"]][key] for r in mine if r[key] is not None])
                    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
                    entry[f"{key}_minus_none"] = {"mean": float(d.mean()), "ci95": [float(d.mean() - half),
                                                                                     float(d.mean() + half)]}
                entry["epochs_saved"] = 1.0 - entry["epochs"] / float(np.mean([base[r["seed"]]["epochs"] for r in mine]))
            out[f"{strategy}|{pruner}"] = entry
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="2 seeds, budget 12, 4 epochs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    budget, epochs, seeds = (12, 4, 2) if args.quick else (BUDGET, EPOCHS, args.seeds)
    tasks = [(s, p, seed, budget, epochs) for s in STRATEGIES for p in PRUNERS for seed in range(seeds)]
    started = time.time()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_one, tasks))
    table = summary(rows)
    print(f"\n{seeds} seeds, budget {budget}, {epochs} epochs per training; mean per search")
    print(f"{'strategy | pruner':<20}{'epochs':>8}{'saved':>8}{'pruned':>8}{'pick valid':>12}{'pick test':>11}"
          f"{'test - none [95 % CI]':>26}")
    for key, e in table.items():
        d = e.get("pick_test_minus_none")
        ci = f"{d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]" if d else ""
        print(f"{key:<20}{e['epochs']:>8.0f}{e.get('epochs_saved', 0.0):>8.0%}{e['pruned']:>8.1f}"
              f"{e['pick_valid']:>12.4f}{e['pick_test']:>11.4f}  {ci:>26}")
    out = args.out or RESULTS / ("pruning_quick.json" if args.quick else "pruning.json")
    from nas import jsonio

    jsonio.write_json(out, {"summary": table, "runs": rows, "meta": {
        "command": " ".join(["experiments/pruning.py", *sys.argv[1:]]), "git_commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
        "cpus": os.cpu_count(), "budget": budget, "epochs": epochs, "seeds": seeds,
        "wall_seconds": time.time() - started}})
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
