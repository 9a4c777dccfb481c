"""EAS (network transformation + REINFORCE controller) on digits against its three controls.

Per seed (its own digits split, 900 train / 450 valid / 447 test) on one thread:
* eas: `nas.eas.search_eas`, `--episodes` episodes of `--steps` Net2Net actions from the best network so far,
  each child trained `--child-epochs` from inherited weights, the seed network (1 conv block of 8, 1 fc block
  of 16) trained `--seed-epochs` first;
* random: the same search with uniformly random transformations (`policy="random"`), same episodes and epochs;
* seed, same epochs: the seed network trained from scratch for the search's total epochs;
* scratch: every network the EAS run visited trained from scratch for the epochs its weights saw along their
  lineage (`scratch_epochs`), the best on validation reported; its cost is the sum of those epochs.
The outcome of each is the validation accuracy of its best network (by validation) and that network's test
accuracy (the unbiased figure: the search's best-of-N validation accuracy is optimistic), reported under the
evaluation protocol of experiments/reporting.py (RI over random transformations, 95 % intervals).

    .venv/bin/python experiments/eas_digits.py             # 10 seeds, about 1 min per seed on 1 idle thread
    .venv/bin/python experiments/eas_digits.py --quick     # smoke test (2 seeds, 3 episodes)

The JSON is written after every seed and a rerun resumes from the finished seeds (same settings; `--fresh`
starts over). Writes experiments/results/eas_digits.json (eas_digits_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `experiments.reporting` when run as a script

from experiments.reporting import git_commit, protocol_report, protocol_table  # noqa: E402
from nas.datasets import digits_splits  # noqa: E402
from nas.darts import StandaloneTraining  # noqa: E402
from nas.eas import EASOptions, epoch_totals, search_eas  # noqa: E402
from nas.modelspec import DataRef  # noqa: E402
from nas.spaces.net2net import StackSpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("eas", "random", "seed, same epochs", "scratch, each visited")


def _best(rows: list[dict]) -> dict:
    """The row with the highest validation accuracy (the first on ties), as the search picks it."""
    top = rows[0]
    for r in rows[1:]:
        if r["accuracy"] > top["accuracy"]:
            top = r
    return top


def _search(seed: int, options: EASOptions, workdir: Path) -> dict:
    t0 = time.perf_counter()
    result = search_eas(DataRef.of(digits_splits, seed=seed), options=options, workdir=workdir, seed=seed)
    seconds = time.perf_counter() - t0
    rows = [{"trial": t.number, "arch": t.arch, "actions": t.extra["actions"], "parent": t.extra["parent"],
             "accuracy": t.metrics["accuracy"], "test_accuracy": t.metrics["test_accuracy"],
             "params": t.metrics["params"], "epochs": t.metrics["epochs"], "scratch_epochs": t.metrics["scratch_epochs"],
             "function_change": t.extra.get("function_change"), "train_seconds": t.metrics["train_seconds"]}
            for t in result.trials]
    totals = epoch_totals(result.trials)
    best = _best(rows)
    return {"trials": rows, "best": best, "accuracy": best["accuracy"], "test_accuracy": best["test_accuracy"],
            "seed_accuracy": rows[0]["accuracy"], "epochs": totals.search, "scratch_epochs": totals.scratch,
            "seconds": seconds, "stop_reason": result.stop_reason}


def eas_options(args: argparse.Namespace) -> EASOptions:
    """The EAS run's options from the command line (after --quick); the random run differs only in its policy."""
    return EASOptions(episodes=args.episodes, steps=args.steps, seed_epochs=args.seed_epochs,
                      child_epochs=args.child_epochs)


def run_seed(seed: int, args: argparse.Namespace, tmp: Path) -> dict:
    """One seed: the EAS run, the random-transformation run and the two from-scratch controls."""
    data = digits_splits(seed=seed)
    space = StackSpace()
    options = eas_options(args)
    rows = {"eas": _search(seed, options, tmp / f"eas-{seed}"),
            "random": _search(seed, replace(options, policy="random"), tmp / f"random-{seed}")}
    eas = rows["eas"]
    t0 = time.perf_counter()
    same = StandaloneTraining(space, data, eas["epochs"], seed=seed)(eas["trials"][0]["arch"])
    rows["seed, same epochs"] = {**same, "epochs": eas["epochs"], "seconds": time.perf_counter() - t0}
    t0, scratch = time.perf_counter(), []
    for r in eas["trials"]:
        again = StandaloneTraining(space, data, int(r["scratch_epochs"]), seed=seed)(r["arch"])
        scratch.append({"trial": r["trial"], "epochs": r["scratch_epochs"], **again,
                        "inherited_accuracy": r["accuracy"], "inherited_test_accuracy": r["test_accuracy"]})
    best = _best(scratch)
    rows["scratch, each visited"] = {"accuracy": best["accuracy"], "test_accuracy": best["test_accuracy"],
                                     "best_trial": best["trial"], "epochs": int(sum(r["epochs"] for r in scratch)),
                                     "seconds": time.perf_counter() - t0, "networks": scratch}
    beats = eas["accuracy"] > eas["seed_accuracy"]
    print(f"seed {seed}: eas valid {eas['accuracy']:.4f} (seed net {eas['seed_accuracy']:.4f}, "
          f"{'higher' if beats else 'NOT higher'}) test {eas['test_accuracy']:.4f} in {eas['epochs']} epochs; random "
          f"{rows['random']['accuracy']:.4f}/{rows['random']['test_accuracy']:.4f}; seed x{eas['epochs']} epochs "
          f"{same['accuracy']:.4f}/{same['test_accuracy']:.4f}; scratch {best['accuracy']:.4f}/"
          f"{best['test_accuracy']:.4f} in {rows['scratch, each visited']['epochs']} epochs", flush=True)
    return {"seed": seed, "rows": rows, "eas_beats_seed": beats,
            "eas_fewer_epochs_than_scratch": eas["epochs"] < eas["scratch_epochs"]}


def protocol(per_seed: list[dict]) -> dict[str, dict]:
    """Validation and test accuracy of every method against random transformations (Yang et al.'s protocol)."""
    out = {}
    for metric in ("test_accuracy", "accuracy"):
        values = {m: [rec["rows"][m][metric] for rec in per_seed] for m in METHODS}
        costs = {m: [rec["rows"][m]["seconds"] for rec in per_seed] for m in METHODS}
        out[metric] = protocol_report(values, direction="max", baseline="random", costs=costs,
                                      label=f"eas_digits {metric}")
    return out


def summary(per_seed: list[dict]) -> dict:
    """The acceptance figures: seeds where EAS ends above its seed network, and the epochs both ways."""
    eas = [rec["rows"]["eas"] for rec in per_seed]
    return {"seeds": len(per_seed), "eas_beats_seed_network": sum(rec["eas_beats_seed"] for rec in per_seed),
            "eas_fewer_epochs_than_scratch": sum(rec["eas_fewer_epochs_than_scratch"] for rec in per_seed),
            "mean_eas_epochs": sum(r["epochs"] for r in eas) / len(eas),
            "mean_scratch_epochs": sum(r["scratch_epochs"] for r in eas) / len(eas),
            "mean_seed_accuracy": sum(r["seed_accuracy"] for r in eas) / len(eas),
            "inherited_minus_scratch_accuracy": sum(n["inherited_accuracy"] - n["accuracy"] for rec in per_seed
                                                    for n in rec["rows"]["scratch, each visited"]["networks"][1:])
            / max(1, sum(len(rec["rows"]["scratch, each visited"]["networks"]) - 1 for rec in per_seed))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--steps", type=int, default=2, help="transformations per episode")
    p.add_argument("--seed-epochs", type=int, default=10)
    p.add_argument("--child-epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=10, help="seeds (each: its own digits split, every method)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="ignore the finished seeds in --out (default: resume)")
    p.add_argument("--quick", action="store_true", help="3 episodes, 3 seed epochs, 1 child epoch, 2 seeds")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON output (default experiments/results/eas_digits.json; eas_digits_quick.json with --quick)")
    args = p.parse_args()
    args.out = args.out or ROOT / "experiments" / "results" / (
        "eas_digits_quick.json" if args.quick else "eas_digits.json")
    torch.set_num_threads(1)
    if args.quick:
        args.episodes, args.seed_epochs, args.child_epochs, args.seeds = 3, 3, 1, 2
    settings = {"episodes": args.episodes, "steps": args.steps, "seed_epochs": args.seed_epochs,
                "child_epochs": args.child_epochs, "options": eas_options(args).to_dict(), "quick": args.quick}
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    t_start = time.perf_counter()
    previous = json.loads(args.out.read_text()) if args.out.exists() and not args.fresh else {}
    done = {r["seed"]: r for r in previous.get("per_seed", [])} if previous.get("settings") == settings else {}
    if done:
        print(f"resuming: seeds {sorted(done)} already in {args.out}", flush=True)
    results = {
        "what": "EAS (Net2Net widen/deepen + REINFORCE controller) on sklearn digits vs random transformations, the "
                "seed network trained for the same total epochs, and every visited network trained from scratch",
        "command": " ".join([".venv/bin/python", "experiments/eas_digits.py", *sys.argv[1:]]),
        "git_commit": git_commit(), "settings": settings,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "load_average_start": [round(v, 2) for v in os.getloadavg()]},
        "space": {"name": "StackSpace", "config": StackSpace().to_spec()["config"]},
    }
    per_seed = [done[s] for s in seeds if s in done]
    with tempfile.TemporaryDirectory(prefix="eas-digits-") as tmp:
        for seed in seeds:
            if seed in done:
                continue
            per_seed.append(run_seed(seed, args, Path(tmp)))
            per_seed.sort(key=lambda r: r["seed"])
            reports = protocol(per_seed)
            results.update({"date": _dt.datetime.now().isoformat(timespec="seconds"),
                            "seconds": round(time.perf_counter() - t_start, 1) + previous.get("seconds", 0.0) * bool(done),
                            "seeds_done": [r["seed"] for r in per_seed], "summary": summary(per_seed),
                            "per_seed": per_seed, "protocol": {k: v.to_dict() for k, v in reports.items()},
                            "protocol_tables": {k: protocol_table(v) for k, v in reports.items()}})
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")  # after every seed: a cut-off run resumes
    reports = protocol(per_seed)
    print(f"\n{'seed':<5}{'method':<23}{'epochs':>7}{'valid':>8}{'test':>8}{'seconds':>9}")
    for rec in per_seed:
        for name in METHODS:
            r = rec["rows"][name]
            print(f"{rec['seed']:<5}{name:<23}{r['epochs']:>7}{r['accuracy']:>8.4f}{r['test_accuracy']:>8.4f}"
                  f"{r['seconds']:>9.1f}")
    for metric, rep in reports.items():
        print(f"\n{metric} over {len(per_seed)} seeds, RI over random transformations (%):\n{protocol_table(rep)}")
    print("\nsummary:", json.dumps(summary(per_seed), indent=1))
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
