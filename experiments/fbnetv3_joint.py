"""FBNetV3-style joint architecture-and-recipe search on MNIST-1D (issue 25 part 5).

Claim tested: searching the training recipe (learning rate, weight decay, epochs, label smoothing, mixup, EMA;
`nas.spaces.recipe.recipe_fields`) in the same space as the architecture beats searching the architecture
alone with the default recipe, at the same number of trainings (Dai et al. 2021, FBNetV3).

Protocol, per seed s (the search seed and every training's seed: initial weights, batch order, mixup draws):
* data: `mnist1d_splits(seed=0)` (3,500 train / 500 valid / 1,000 test signals) plus 4,000 fresh test signals
  from the same generator (`extra_test`); the objective is validation accuracy, the pick is the search's best
  on validation, and its accuracy on all 5,000 held-out test signals is reported (the standard 1,000 apart too).
* architecture: a plain user `nas.Space`, a 1-D CNN: 1-4 blocks (conv of width 8/16/32 and kernel 3/5/7,
  batch norm, activation; max-pool after the first two), one activation (relu/gelu), global average pool,
  linear head; every candidate trained from scratch (`train_with_recipe`).
* arch-only: `evolution` over the architecture space, each candidate trained with `Recipe()` (AdamW lr 1e-2,
  weight decay 1e-4, cosine, batch 64, 10 epochs: the recipe of the repository's MNIST-1D trainers).
* joint: the same `evolution` settings over architecture + `recipe_fields()` (3 values per knob, the default's
  among them; epochs 8/10/12, so the joint search cannot win by training much longer: its epochs are reported).
* random: random sampling of the joint space, the protocol's baseline (relative improvement over it).
* arch-only+epochs: the control for training length. The joint search may pick longer recipes (12 epochs)
  and so spend more epochs than the arch-only search at the same number of trainings; this is the same
  arch-only evolution (same seed, so it proposes the same first candidates) run on until it has spent at
  least the joint search's epochs of that seed (ceil(joint epochs / 10) trainings).
Same budget (trainings per search) and strategy settings for every method; `population_size` is scaled down
with the budget (the default 50 would make a 30-training evolution pure random sampling), the same for both.

Every training is appended to a JSON-lines cache keyed by (architecture, recipe, seed, data), shared by the
three searches of a seed, so a killed run resumes (the search journals in --workdir resume too; `nas status`,
`nas pareto`, `nas export` work on them).

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python experiments/fbnetv3_joint.py            # 10 seeds x 3 x 30
    .venv/bin/python experiments/fbnetv3_joint.py --quick                                 # smoke run, seconds
"""

from __future__ import annotations

import argparse
import functools
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nas  # noqa: E402
from few_shot import paired  # noqa: E402
from nas.architecture import Architecture, canonical_json  # noqa: E402
from nas.datasets import mnist1d_splits  # noqa: E402
from nas.spaces import Choice, Repeat, Space  # noqa: E402
from nas.spaces.recipe import Recipe, recipe_fields, train_with_recipe  # noqa: E402
from nas.spaces.training import accuracy  # noqa: E402
from reporting import (append_cache, git_commit, protocol_report, protocol_table, read_cache,  # noqa: E402
                       write_report)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = Recipe()
RECIPE_KEYS = tuple(recipe_fields())
METHODS = ("arch-only", "joint", "random", "arch-only+epochs")


def arch_fields() -> dict[str, Any]:
    """The architecture decisions, as a user writes them."""
    return {"depth": Choice([1, 2, 3, 4]),
            "block": Repeat(count="depth", width=Choice([8, 16, 32]), kernel=Choice([3, 5, 7])),
            "act": Choice(["relu", "gelu"])}


def spaces() -> dict[str, Space]:
    """The space each method searches: the architecture alone, or architecture + recipe."""
    joint = Space(**arch_fields(), **recipe_fields())
    return {"arch-only": Space(**arch_fields()), "joint": joint, "random": joint}


def build(arch: Mapping[str, Any]) -> nn.Module:
    """The 1-D CNN of an architecture (its recipe fields ignored), for inputs [n, 40]."""
    act = {"relu": nn.ReLU, "gelu": nn.GELU}[arch["act"]]
    layers: list[nn.Module] = [nn.Unflatten(1, (1, -1))]
    channels = 1
    for i, b in enumerate(arch["block"]):
        layers += [nn.Conv1d(channels, b["width"], b["kernel"], padding=b["kernel"] // 2, bias=False),
                   nn.BatchNorm1d(b["width"]), act()]
        if i < 2:
            layers.append(nn.MaxPool1d(2))
        channels = b["width"]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(channels, 10))


@functools.lru_cache(maxsize=2)
def load_data(extra_test: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """`mnist1d_splits(seed=0)` with `extra_test` fresh test signals (an empty split for 0), generated once per
    process (a few seconds)."""
    data = mnist1d_splits(seed=0, extra_test=extra_test)
    if not extra_test:
        data["extra_test"] = (data["test"][0][:0], data["test"][1][:0])
    return data


class Trainings:
    """The evaluator of one seed: trains an architecture with its recipe (the default where the space has no
    recipe fields) and returns valid / test accuracy; every training is cached in a JSON-lines file."""

    def __init__(self, data: Mapping[str, tuple[torch.Tensor, torch.Tensor]], seed: int, cache: Path,
                 data_tag: str) -> None:
        self.data, self.seed, self.cache, self.data_tag = data, seed, cache, data_tag
        self.known: dict[str, dict[str, Any]] = {rec["key"]: rec for rec in read_cache(cache)}

    def key(self, arch: Architecture) -> tuple[str, dict[str, Any], Recipe]:
        plain = {k: v for k, v in arch.to_dict().items() if k not in RECIPE_KEYS}
        recipe = Recipe.from_arch(arch, DEFAULT)
        return canonical_json({"arch": plain, "recipe": recipe.to_dict(), "seed": self.seed,
                               "data": self.data_tag}), plain, recipe

    def __call__(self, arch: Architecture) -> dict[str, float]:
        key, plain, recipe = self.key(arch)
        rec = self.known.get(key)
        if rec is None:
            torch.manual_seed(self.seed)
            model = build(plain)
            t0 = time.perf_counter()
            final = train_with_recipe(model, self.data["train"], recipe, self.seed).final
            seconds = time.perf_counter() - t0
            (tx, ty), (ex, ey) = self.data["test"], self.data["extra_test"]
            rec = {"key": key, "arch": plain, "recipe": recipe.to_dict(), "seed": self.seed,
                   "valid": accuracy(final, *self.data["valid"]), "test_1000": accuracy(final, tx, ty),
                   "test": accuracy(final, torch.cat([tx, ex]), torch.cat([ty, ey])), "seconds": seconds,
                   "params": int(sum(p.numel() for p in model.parameters()))}
            append_cache(self.cache, rec)
            self.known[key] = rec
        return {"accuracy": rec["valid"], "test_accuracy": rec["test"], "test_1000": rec["test_1000"],
                "epochs": float(recipe.epochs), "train_seconds": rec["seconds"]}


def run_search(method: str, space: Space, evaluate: Trainings, args: argparse.Namespace, seed: int,
               workdir: Path, budget: int | None = None) -> dict[str, Any]:
    """One search (`budget` trainings, default `args.budget`); its pick (best valid accuracy), the pick's test
    accuracy and what the search spent."""
    strategy = "random" if method == "random" else "evolution"
    options = {} if method == "random" else {"population_size": args.population}
    result = nas.search(space, evaluate, {"accuracy": "max"}, strategy=strategy, budget=budget or args.budget, seed=seed,
                        workdir=workdir / f"seed{seed}" / method, strategy_options=options,
                        metadata={"experiment": "fbnetv3_joint", "method": method})
    done = result.completed
    best = result.best("accuracy")
    curve = list(np.maximum.accumulate([t.metrics["accuracy"] for t in done]))
    return {"valid": best.metrics["accuracy"], "test": best.metrics["test_accuracy"],
            "test_1000": best.metrics["test_1000"], "pick": best.arch,
            "pick_recipe": Recipe.from_arch(best.arch, DEFAULT).to_dict(), "trainings": len(done),
            "epochs_total": int(sum(t.metrics["epochs"] for t in done)),
            "train_seconds": float(sum(t.metrics["train_seconds"] for t in done)), "best_so_far": curve}


def summarise(runs: Mapping[str, Mapping[str, Any]], budget: int) -> dict[str, Any]:
    """Protocol report on the picks' test accuracy, paired differences, spent epochs and the joint picks' recipes."""
    seeds = sorted(runs, key=int)
    per = {m: [runs[s][m] for s in seeds] for m in METHODS}
    test = {m: [r["test"] for r in per[m]] for m in METHODS}
    budgets = {m: float(np.mean([r["trainings"] for r in per[m]])) for m in METHODS}
    report = protocol_report(test, baseline="random", costs={m: [r["train_seconds"] for r in per[m]] for m in METHODS},
                             budgets=budgets, label="MNIST-1D test accuracy of the pick")
    valid = protocol_report({m: [r["valid"] for r in per[m]] for m in METHODS}, baseline="random",
                            label="MNIST-1D valid accuracy of the pick")
    joint_recipes = [r["pick_recipe"] for r in per["joint"]]
    return {"seeds": [int(s) for s in seeds], "test": report.to_dict(), "valid": valid.to_dict(),
            "paired_test": {"joint - arch-only": paired(test["joint"], test["arch-only"]),
                            "joint - arch-only+epochs": paired(test["joint"], test["arch-only+epochs"]),
                            "joint - random": paired(test["joint"], test["random"]),
                            "arch-only - random": paired(test["arch-only"], test["random"])},
            "paired_valid": {"joint - arch-only": paired([r["valid"] for r in per["joint"]],
                                                         [r["valid"] for r in per["arch-only"]])},
            "epochs_total_mean": {m: float(np.mean([r["epochs_total"] for r in per[m]])) for m in METHODS},
            "pick_epochs_mean": {m: float(np.mean([r["pick_recipe"]["epochs"] for r in per[m]])) for m in METHODS},
            "joint_picks_default_recipe": sum(r == DEFAULT.to_dict() for r in joint_recipes),
            "joint_pick_knobs": {k: sorted(r[k] for r in joint_recipes) for k in RECIPE_KEYS},
            "trainings_mean": budgets,
            "best_so_far_mean": {m: list(np.mean([r["best_so_far"][:budget] for r in per[m]], axis=0)) for m in METHODS}}


def table(summary: Mapping[str, Any]) -> str:
    """The printed markdown: the protocol table, the paired differences and what the searches spent."""
    from reporting import ProtocolReport, MethodReport

    rep = summary["test"]
    report = ProtocolReport(rep["label"], rep["direction"], rep["baseline"], rep["baseline_mean"],
                            [MethodReport(**m) for m in rep["methods"]], rep["warnings"])
    lines = [f"**{rep['label']}** (5,000 held-out signals; baseline: random sampling of the joint space)", "",
             protocol_table(report), "",
             "| paired over seeds (test) | mean [95 % CI] | wins / ties / losses | Wilcoxon p |", "|---|---|---|---|"]
    for name, d in summary["paired_test"].items():
        lines.append(f"| {name} | {100 * d['mean']:+.2f} pp [{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}] | "
                     f"{d['wins']} / {d['ties']} / {d['losses']} | {d['wilcoxon_p']:.3f} |")
    d = summary["paired_valid"]["joint - arch-only"]
    lines += ["", f"valid, joint - arch-only: {100 * d['mean']:+.2f} pp [{100 * d['ci95'][0]:+.2f}, "
              f"{100 * d['ci95'][1]:+.2f}], Wilcoxon p {d['wilcoxon_p']:.3f}", "",
              "| method | trainings per search (mean) | epochs spent per search (mean) | pick's epochs (mean) |",
              "|---|---|---|---|"]
    for m in METHODS:
        lines.append(f"| {m} | {summary['trainings_mean'][m]:.1f} | {summary['epochs_total_mean'][m]:.0f} | "
                     f"{summary['pick_epochs_mean'][m]:.1f} |")
    lines += ["", f"joint picks with the default recipe: {summary['joint_picks_default_recipe']} of "
              f"{len(summary['seeds'])}; joint picks' knobs: {summary['joint_pick_knobs']}"]
    return "\n".join(lines)


def plot(summary: Mapping[str, Any], runs: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Left: mean best-so-far validation accuracy per training; right: the picks' test accuracy per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for m in METHODS[:3]:  # arch-only+epochs repeats arch-only's curve up to the budget
        curve = summary["best_so_far_mean"][m]
        a.plot(range(1, len(curve) + 1), [100 * v for v in curve], label=m)
    a.set_xlabel("trainings")
    a.set_ylabel("best validation accuracy so far (%, mean over seeds)")
    a.legend()
    seeds = sorted(runs, key=int)
    x = [100 * runs[s]["arch-only"]["test"] for s in seeds]
    y = [100 * runs[s]["joint"]["test"] for s in seeds]
    b.scatter(x, y)
    lo, hi = min(x + y) - 0.2, max(x + y) + 0.2
    b.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=0.8)
    b.set_xlabel("arch-only pick: test accuracy (%)")
    b.set_ylabel("joint pick: test accuracy (%)")
    b.set_title("one point per seed (above the diagonal: joint better)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=30, help="trainings per search (every method)")
    ap.add_argument("--population", type=int, default=10, help="evolution's population_size (both evolution runs)")
    ap.add_argument("--train-subset", type=int, default=None, help="train on the first N training signals only")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, budget 3, 128 training signals")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default experiments/results/fbnetv3_joint.json)")
    ap.add_argument("--workdir", type=Path, default=None, help="search journals (default runs/fbnetv3_joint)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.budget, args.population, args.train_subset = 2, 3, 2, 128
    stem = "fbnetv3_joint" + ("_quick" if args.quick else "")
    out = args.out or ROOT / "experiments" / "results" / f"{stem}.json"
    workdir = args.workdir or ROOT / "runs" / stem
    cache = out.with_name(f"{out.stem}_cache.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    started = time.time()

    data = dict(load_data(0 if args.quick else 4000))
    data_tag = "mnist1d_splits(0)+extra_test" + ("" if args.train_subset is None else f", train[:{args.train_subset}]")
    if args.train_subset is not None:
        data["train"] = tuple(t[: args.train_subset] for t in data["train"])
    space = spaces()
    print(f"arch space {space['arch-only'].size():,} architectures; joint {space['joint'].size():,} "
          f"(default recipe {DEFAULT}); {args.seeds} seeds x {len(METHODS)} methods x {args.budget} trainings",
          flush=True)
    runs: dict[str, dict[str, Any]] = {}
    for seed in range(args.seeds):
        evaluate = Trainings(data, seed, cache, data_tag)
        r = {m: run_search(m, space[m], evaluate, args, seed, workdir) for m in METHODS[:3]}
        matched = max(args.budget, -(-r["joint"]["epochs_total"] // DEFAULT.epochs))
        r["arch-only+epochs"] = run_search("arch-only+epochs", space["arch-only"], evaluate, args, seed, workdir, matched)
        runs[str(seed)] = r
        print(f"seed {seed}: test " + ", ".join(f"{m} {100 * r[m]['test']:.2f}" for m in METHODS)
              + f" ({time.time() - started:.0f} s)", flush=True)
    summary = summarise(runs, args.budget)
    report = {"experiment": "fbnetv3_joint", "commit": git_commit(), "machine": platform.platform(),
              "settings": {"seeds": args.seeds, "budget": args.budget, "population_size": args.population,
                           "strategy": "evolution (arch-only, joint), random (joint space)",
                           "train_subset": args.train_subset, "data": data_tag,
                           "default_recipe": DEFAULT.to_dict(),
                           "recipe_options": {k: list(c.options) for k, c in recipe_fields().items()},
                           "arch_space_size": space["arch-only"].size(), "joint_space_size": space["joint"].size(),
                           "test": "pick's accuracy on 5,000 held-out signals (1,000 standard test + 4,000 extra)"},
              "summary": summary, "runs": runs}
    text = table(summary)
    print(text)
    if not args.quick:
        report["figure"] = str(plot(summary, runs, out.with_suffix(".png")))
    write_report(out, report, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
