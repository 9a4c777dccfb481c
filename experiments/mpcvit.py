"""MPCViT on Movie Review: attention kinds per layer under a secure-computation (MPC) latency model.

Issue 21 part 2. A 2-layer, width-64 FlexiBERT-space transformer on Movie Review polarity, every layer
choosing its attention kind (softmax, ReLU-normalised, linear/scaled), its head count (2, 4) and its FFN
width (64, 128): 144 architectures. Two objectives: test accuracy after a short real training (AdamW,
`--epochs` epochs, one CPU thread, training seed = the run's seed) and the modelled 2-party MPC latency
(`nas.hardware.mpc.MPCLatency`, CrypTen-style costs, the WAN profile; LAN figures are reported too).

Side by side, at the same budget per seed: NSGA-II (`nas.search`, strategy "nsga2") and random search; and
the homogeneous baselines all-softmax (the reference), all-ReLU and all-linear, trained on every seed. Both
searches start from those three configurations (`enqueue`, counted in the budget), as a user seeds a search
with the models they already know (`--no-enqueue` turns it off).
The acceptance check: a front member with >= 2x lower modelled latency than all-softmax whose accuracy is
within 1 point of it; the chosen configuration is retrained on every seed and compared with the
all-softmax reference (mean difference with its 95 % Welch interval).

Every training is cached (one JSON line per training, per seed, under experiments/results/mpcvit_cache/),
so a killed run resumes where it stopped and two runs on disjoint --seeds can fill the cache in parallel.

    .venv/bin/python experiments/mpcvit.py                                  # 10 seeds, 10 searches each (recorded)
    .venv/bin/python experiments/mpcvit.py --seeds 0-4 --search-seeds 0,1   # a reduced run
    .venv/bin/python experiments/mpcvit.py --quick                          # smoke run (seconds per training)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

import nas
from nas.datasets import TextSplits, movie_reviews
from nas.hardware.mpc import MPCLatency
from nas.pareto import pareto_mask
from nas.spaces import Architecture
from nas.spaces.transformer import FlexiBertConfig, FlexiBertSpace
from reporting import git_commit, protocol_report, protocol_table, write_report  # experiments/reporting.py
from transformer_mr import train  # experiments/transformer_mr.py: the same training recipe

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("softmax", "relu", "linear")
LATENCY = "mpc_latency_s"


def parse_seeds(text: str) -> list[int]:
    """"0-4" or "0,2,5" -> seeds."""
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def make_space(data: TextSplits, max_len: int, hidden: int) -> FlexiBertSpace:
    return FlexiBertSpace(FlexiBertConfig(vocab_size=len(data.vocab), num_classes=2, max_len=max_len, ops=("attention",),
                                          depths=(2,), hidden=(hidden,), heads=(2, 4), ffn_depths=(1,),
                                          ffn_dims=(64, 128), attentions=KINDS, dropout=0.1))


def homogeneous(space: FlexiBertSpace, kind: str) -> Architecture:
    """The reference shape (2 heads, FFN 128 in both layers) with every layer's attention `kind`."""
    layer = {"op": "attention", "hidden": space.config.hidden[0], "heads": 2, "attn": kind, "ffn_depth": 1,
             "ffn": [{"dim": 128}]}
    return space.validate({"depth": 2, "layers": [layer, layer]})


def describe(arch: Mapping[str, Any]) -> str:
    return " + ".join(f"{lay['attn']}/h{lay['heads']}/ffn{lay['ffn'][0]['dim']}" for lay in arch["layers"])


class TrainingCache:
    """Test accuracy per (architecture, seed), one JSON line per training, a file per seed (resumable)."""

    def __init__(self, folder: Path, settings: Mapping[str, Any]) -> None:
        self.folder, self.settings = folder, dict(settings)
        self.tag = json.dumps(self.settings, sort_keys=True)
        folder.mkdir(parents=True, exist_ok=True)
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}
        for path in sorted(folder.glob("seed*.jsonl")):
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    if row.get("settings") == self.tag:
                        self.rows[(row["arch_id"], row["seed"])] = row

    def accuracy(self, space: FlexiBertSpace, arch: Architecture, data: TextSplits, seed: int) -> float:
        key = (arch.id, seed)
        if key not in self.rows:
            s = self.settings
            result = train(space, arch, data, s["epochs"], seed, s["batch_size"], s["lr"])
            row = {"arch_id": arch.id, "seed": seed, "arch": arch.to_dict(), "settings": self.tag,
                   "test_accuracy": result["test_accuracy"], "train_accuracy": result["train_accuracy"],
                   "train_seconds": result["train_seconds"]}
            with open(self.folder / f"seed{seed}.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            self.rows[key] = row
            print(f"  trained seed {seed} {describe(arch)}: {100 * row['test_accuracy']:.2f} % "
                  f"({row['train_seconds']:.0f} s)", flush=True)
        return float(self.rows[key]["test_accuracy"])


def run_search(method: str, space: FlexiBertSpace, data: TextSplits, cache: TrainingCache, mpc: MPCLatency,
               seed: int, budget: int, workdir: Path, enqueue: Sequence[Architecture] = ()) -> list[dict[str, Any]]:
    """One search (nsga2 or random) with training seed = `seed`; every evaluated trial as a plain record.

    `enqueue`: architectures evaluated first (counted in the budget), as a user seeds a search with the
    configurations they already know (here the homogeneous baselines)."""
    options = {"population_size": max(2, budget // 2)} if method == "nsga2" else {}
    result = nas.search(space, [nas.cheap(lambda a: {LATENCY: mpc(a)[LATENCY]}),
                                lambda a: {"accuracy": cache.accuracy(space, space.validate(a), data, seed)}],
                        {"accuracy": "max", LATENCY: "min"}, strategy=method, budget=budget, seed=seed,
                        workdir=workdir, strategy_options=options, enqueue=[a.to_dict() for a in enqueue] or None)
    front = {t.arch_id for t in result.pareto_front()}
    return [{"arch_id": t.arch_id, "arch": t.arch, "accuracy": t.metrics["accuracy"], LATENCY: t.metrics[LATENCY],
             "on_front": t.arch_id in front} for t in result.completed]


def hypervolume_2d(points: Sequence[tuple[float, float]], ref_latency: float) -> float:
    """Area dominated by (accuracy max, latency min) points above accuracy 0.5 and below `ref_latency`."""
    pts = np.array([[-a, lat] for a, lat in points], dtype=float)
    pts = pts[pareto_mask(pts)]
    pts = pts[np.argsort(pts[:, 1])]
    area, best = 0.0, -0.5
    for acc, lat in pts:  # sweep latencies upward; accuracy gained above the previous best
        if lat < ref_latency and acc < best:
            area += (best - acc) * (ref_latency - lat)
            best = acc
    return area


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean of a - mean of b with its 95 % Welch interval and p (NaN with fewer than 2 values a side)."""
    if min(len(a), len(b)) < 2:
        nan = float("nan")
        return {"diff": float(np.mean(a) - np.mean(b)), "ci95_low": nan, "ci95_high": nan, "p": nan}
    t = stats.ttest_ind(np.asarray(a), np.asarray(b), equal_var=False)
    ci = t.confidence_interval(0.95)
    return {"diff": float(np.mean(a) - np.mean(b)), "ci95_low": float(ci.low), "ci95_high": float(ci.high),
            "p": float(t.pvalue)}


def mean_ci(values: Sequence[float]) -> dict[str, float]:
    x = np.asarray(values, dtype=float)
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
    return {"n": len(x), "mean": float(x.mean()), "ci95_low": float(x.mean() - half), "ci95_high": float(x.mean() + half)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0-9", help="training seeds of the baselines and the chosen configuration")
    ap.add_argument("--search-seeds", default="0-9", help="seeds of the NSGA-II and random searches")
    ap.add_argument("--budget", type=int, default=10, help="trainings per search")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--max-len", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--vocab-size", type=int, default=5000)
    ap.add_argument("--profile", default="wan", help="network profile of the search's latency objective")
    ap.add_argument("--no-enqueue", action="store_true",
                    help="do not seed the searches with the three homogeneous configurations")
    ap.add_argument("--fill-only", action="store_true", help="train baselines and searches for --seeds, no report")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 2 seeds, 1 search seed, budget 4, 1 epoch on 600 sentences, vocabulary 1000")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.search_seeds, args.budget, args.epochs, args.max_len = "0-1", "0", 4, 1, 16
        args.vocab_size = 1000
    seeds, search_seeds = parse_seeds(args.seeds), parse_seeds(args.search_seeds)
    changed = [k for k, v in vars(args).items() if k not in ("out", "fill_only") and v != ap.get_default(k)]
    # only the recorded settings write the recorded report; a reduced or changed run gets its own file
    name = "mpcvit_quick" if args.quick else "mpcvit_reduced" if changed else "mpcvit"
    out = args.out or ROOT / "experiments" / "results" / f"{name}.json"
    torch.set_num_threads(1)
    started = time.time()

    data = movie_reviews(seed=0, max_len=args.max_len, vocab_size=args.vocab_size)
    if args.quick:  # a slice of the data, so the smoke run takes seconds
        data = TextSplits(data.train_x[:600], data.train_y[:600], data.test_x[:300], data.test_y[:300], data.vocab)
    space = make_space(data, args.max_len, args.hidden)
    mpc = MPCLatency(space, args.profile)
    lan = mpc.with_profile("lan" if args.profile != "lan" else "wan")
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "max_len": args.max_len,
                "hidden": args.hidden, "vocab_size": args.vocab_size, "quick": args.quick}
    cache = TrainingCache(out.parent / f"{name}_cache", settings)
    baselines = {kind: homogeneous(space, kind) for kind in KINDS}
    queued = [] if args.no_enqueue else list(baselines.values())
    run_tag = cache.tag + ("" if args.no_enqueue else f" budget={args.budget} enqueue=homogeneous")
    runs = ROOT / "runs" / name / hashlib.sha1(run_tag.encode()).hexdigest()[:8]
    reference_latency = mpc(baselines["softmax"])[LATENCY]
    print(f"Movie Review: {len(data.train_y)} train / {len(data.test_y)} test, max_len {args.max_len}; space of "
          f"{space.size()} architectures; all-softmax modelled latency {reference_latency:.3f} s ({args.profile})")

    searches: dict[str, dict[int, list[dict[str, Any]]]] = {"nsga2": {}, "random": {}}
    for seed in seeds:
        for kind, arch in baselines.items():
            cache.accuracy(space, arch, data, seed)
        if seed in search_seeds:
            for method in searches:
                print(f"search {method} seed {seed}", flush=True)
                searches[method][seed] = run_search(method, space, data, cache, mpc, seed, args.budget,
                                                    runs / f"{method}-seed{seed}", queued)
    if args.fill_only:
        return 0

    # -- the acceptance check: a front member >= 2x faster within 1 point of all-softmax (same seed)
    soft = {s: cache.accuracy(space, baselines["softmax"], data, s) for s in seeds}
    candidates: dict[str, dict[str, Any]] = {}
    for method, per_seed in searches.items():
        for seed, trials in per_seed.items():
            for t in trials:
                if t["on_front"] and t[LATENCY] * 2 <= reference_latency:
                    c = candidates.setdefault(t["arch_id"], {"arch": t["arch"], "gaps": [], "fronts": 0})
                    c["gaps"].append(t["accuracy"] - soft[seed])
                    c["fronts"] += 1
    chosen = max(candidates.values(), key=lambda c: (c["fronts"], np.mean(c["gaps"])), default=None)
    chosen_arch = space.validate(chosen["arch"]) if chosen else None

    # -- per-seed figures of every configuration
    configs = {f"all-{k}": a for k, a in baselines.items()}
    if chosen_arch is not None:
        configs["chosen"] = chosen_arch
    acc = {n: [cache.accuracy(space, a, data, s) for s in seeds] for n, a in configs.items()}
    rows = []
    for n, a in configs.items():
        m = mpc(a)
        rows.append({"config": n, "arch": a.to_dict(), "summary": describe(a), "accuracy": mean_ci(acc[n]),
                     "per_seed": dict(zip(seeds, acc[n])), **m, "speedup": reference_latency / m[LATENCY],
                     f"{lan.profile.name}_latency_s": lan(a)[LATENCY],
                     f"{lan.profile.name}_speedup": lan(baselines["softmax"])[LATENCY] / lan(a)[LATENCY],
                     "vs_softmax": welch(acc[n], acc["all-softmax"]) if n != "all-softmax" else None})
    hv = {m: [hypervolume_2d([(t["accuracy"], t[LATENCY]) for t in trials], reference_latency * 1.1)
              for trials in per_seed.values()] for m, per_seed in searches.items()}
    protocol = protocol_report(hv, direction="max", baseline="random", label="hypervolume (accuracy x MPC latency)",
                               budgets={m: float(args.budget) for m in hv})
    fronts = {m: {str(s): [t for t in trials if t["on_front"]] for s, trials in per_seed.items()}
              for m, per_seed in searches.items()}
    meets = {m: {str(s): any(t[LATENCY] * 2 <= reference_latency and t["accuracy"] >= soft[s] - 0.01
                             for t in trials if t["on_front"]) for s, trials in per_seed.items()}
             for m, per_seed in searches.items()}

    print(f"\n| config | attention/heads/FFN per layer | accuracy % mean [95 % CI] (n) | {args.profile} latency s | "
          f"speedup | {lan.profile.name} speedup | diff vs all-softmax (pts) [95 % CI] |")
    print("|" + "---|" * 7)
    for r in rows:
        a, v = r["accuracy"], r["vs_softmax"]
        diff = "-" if v is None else f"{100 * v['diff']:+.2f} [{100 * v['ci95_low']:+.2f}, {100 * v['ci95_high']:+.2f}]"
        print(f"| {r['config']} | {r['summary']} | {100 * a['mean']:.2f} [{100 * a['ci95_low']:.2f}, "
              f"{100 * a['ci95_high']:.2f}] ({a['n']}) | {r[LATENCY]:.3f} | {r['speedup']:.2f}x | "
              f"{r[lan.profile.name + '_speedup']:.2f}x | {diff} |")
    print(f"\nsearch fronts (budget {args.budget} trainings per search; accuracy %, {args.profile} latency s):")
    for m, per_seed in fronts.items():
        for s, front in per_seed.items():
            pts = ", ".join(f"{100 * t['accuracy']:.1f}@{t[LATENCY]:.2f}" for t in sorted(front, key=lambda t: t[LATENCY]))
            print(f"  {m} seed {s}: {pts}  (all-softmax {100 * soft[int(s)]:.1f}; >= 2x within 1 pt: "
                  f"{'yes' if meets[m][s] else 'no'})")
    print("\n" + protocol_table(protocol))
    chosen_row = next((r for r in rows if r["config"] == "chosen"), None)
    ok = bool(chosen_row and chosen_row["speedup"] >= 2 and chosen_row["vs_softmax"]["diff"] >= -0.01)
    print(f"\nacceptance: chosen front member {chosen_row['summary'] if chosen_row else '-'}: "
          + (f"{chosen_row['speedup']:.2f}x lower {args.profile} latency, accuracy {100 * chosen_row['vs_softmax']['diff']:+.2f}"
             f" pts vs all-softmax over {len(seeds)} seeds" if chosen_row else "none found")
          + f": {'PASS' if ok else 'FAIL'}")
    report = {
        "experiment": "mpcvit", "argv": sys.argv[1:] if argv is None else list(argv),
        "settings": {**settings, "seeds": seeds, "search_seeds": search_seeds, "budget": args.budget,
                     "profile": args.profile, "enqueue_homogeneous": not args.no_enqueue}, "space": space.to_spec(), "space_size": space.size(),
        "profiles": {p.profile.name: vars(p.profile) for p in (mpc, lan)},
        "reference_latency_s": reference_latency, "configs": rows, "fronts": fronts,
        "search_trials": {m: {str(s): v for s, v in per_seed.items()} for m, per_seed in searches.items()},
        "front_meets_criterion": meets, "hypervolume": hv, "protocol": {**protocol.to_dict(), "table": protocol_table(protocol)},
        "chosen": {"arch": chosen["arch"], "fronts": chosen["fronts"], "search_gaps": chosen["gaps"]} if chosen else None,
        "criterion_met": ok, "git_commit": git_commit(),
    }
    write_report(out, report, started)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
