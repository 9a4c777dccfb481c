"""OFA's and BigNAS's headline claims on `OFASpace()` / MNIST-1D (issue 25, part 4), per seed, side by side.

1. Progressive shrinking (full -> kernel -> depth -> width, distilling from the frozen full network): test
   accuracy of the largest subnet after the `full` phase ("before") and after all phases ("after"); OFA
   claims shrinking costs the largest network little (target: drop <= 2 points). Two variants in the same
   run: OFA's sampling (random subnets only) and `include_largest=True` (the largest joins every step's
   sample, as in BigNAS's sandwich rule); the smallest and 5 sampled subnets are measured too, so a variant
   that keeps the largest by not shrinking shows.
2. Sandwich rule (BigNAS), no retraining, from BigNAS's initialisation (`OFAConfig(zero_init_residual=True)`:
   residual blocks start as the identity) and, as the control, from the default one: 10 children evenly
   spaced across the FLOPs range (`space.smallest()`, `space.largest()` and, between them, the subnet nearest
   to each of 8 evenly spaced FLOPs targets among 400 graded draws), inherited accuracy with BN recalibrated;
   Spearman(FLOPs, accuracy) (target >= 0.8; also over 10 children at FLOPs quantiles of 400 uniform
   `sample_subnet` draws, which bunch in the middle of the range), and the smallest child against the same
   architecture trained stand-alone (`PlainTraining`) for the supernet's epochs (target: within 3 points).
3. Batch-norm recalibration: the same 10 children evaluated with the supernet's running statistics as
   they are, paired with the recalibrated ones (help, or unnecessary, with a CI over seeds).

Each seed draws its own train/valid split, children and initialisation; the test sets are MNIST-1D's
standard 1,000 signals and `--extra-test` fresh ones (10,000; the headline figures). One thread per seed
(`--jobs` seeds at once); results go to experiments/results/ofa_claims.json after every seed, and a rerun
with the same settings resumes.

    .venv/bin/python experiments/ofa_claims.py --seeds 10 --jobs 2   # recorded; about 12 min per seed per core
    .venv/bin/python experiments/ofa_claims.py --quick      # smoke run (seconds), JSON to ofa_claims_quick.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ofa_kendall import draw_subnets, jsonable, load, schedules, train_log_dict  # noqa: E402
from reporting import git_commit  # noqa: E402

from nas import jsonio  # noqa: E402
from nas.datasets import mnist1d_splits  # noqa: E402
from nas.spaces.ofa import OFAConfig, OFASpace  # noqa: E402
from nas.spaces.training import (InheritedAccuracy, Phase, PlainTraining, ProgressiveShrinking, accuracy,  # noqa: E402
                                 ofa_phases, recalibrate_bn)

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"ps_largest_drop_points": 2.0, "spearman_flops_accuracy": 0.8, "smallest_gap_points": 3.0}
CHILDREN = 10
CALIB = 1000


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean with its 95 % t-interval over seeds (nan bounds for one value)."""
    x = np.asarray(values, dtype=float)
    n, mean = len(x), float(x.mean())
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "ci95_low": mean - half, "ci95_high": mean + half,
            "min": float(x.min()), "max": float(x.max())}


def plain_accuracy(supernet: Any, arch: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    """Inherited accuracy with the supernet's running BN statistics as they are (no recalibration)."""
    return accuracy(supernet.subnet(arch).eval(), x, y)


def bn_shift(supernet: Any, arch: Any, calib_x: torch.Tensor) -> float:
    """Mean |running mean| change over the subnet's BN layers when recalibrated on `calib_x` (0: no effect)."""
    sub = supernet.subnet(arch)
    before = [m.running_mean.clone() for m in sub.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    recalibrate_bn(sub, calib_x.split(250))
    after = [m.running_mean for m in sub.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    return float(np.mean([float((a - b).abs().mean()) for a, b in zip(after, before)]))


def quantile_children(space: OFASpace, pool: int, rng: np.random.Generator) -> list[Any]:
    """`space.smallest()`, the subnets at 8 evenly spaced inner FLOPs quantiles of `pool` distinct
    `sample_subnet` draws, and `space.largest()` (uniform draws bunch in the middle of the FLOPs range)."""
    drawn = sorted(draw_subnets(space, pool, rng, span_flops=False), key=lambda a: (space.count(a)["flops"], a.id))
    picks = np.linspace(0, len(drawn) - 1, CHILDREN).round().astype(int)[1:-1]
    return [space.smallest(), *(drawn[i] for i in picks), space.largest()]


def graded_subnet(space: OFASpace, rng: np.random.Generator, u: float) -> Any:
    """A subnet whose every decision sits near the fraction `u` of its sorted options (0: all smallest,
    1: all largest), jittered by one option's width, so that draws with `u` ~ U(0, 1) cover all sizes."""
    cfg = space.config

    def pick(options: tuple[Any, ...]) -> Any:
        ordered = sorted(options)
        i = int(np.clip(np.rint(u * (len(ordered) - 1) + rng.normal(0.0, 0.5)), 0, len(ordered) - 1))
        return ordered[i]

    stages = []
    for _ in cfg.stage_channels:
        depth = pick(cfg.depths)
        stages.append({"depth": depth, "width": pick(cfg.widths),
                       "blocks": [{"kernel": pick(cfg.kernels), "expand": pick(cfg.expands)} for _ in range(depth)]})
    return space.validate({"resolution": pick(cfg.resolutions), "stages": stages})


def spanning_children(space: OFASpace, pool: int, rng: np.random.Generator) -> list[Any]:
    """10 children evenly spaced across the FLOPs range: `space.smallest()`, `space.largest()`, and between
    them the distinct `graded_subnet` draw (of `pool`) nearest to each of 8 evenly spaced FLOPs targets."""
    flops = lambda a: space.count(a)["flops"]  # noqa: E731
    lo, hi = space.smallest(), space.largest()
    drawn = {a.id: a for a in (graded_subnet(space, rng, float(rng.uniform())) for _ in range(pool))}
    drawn.pop(lo.id, None), drawn.pop(hi.id, None)
    cost = {k: flops(a) for k, a in drawn.items()}
    picks: list[Any] = []
    for target in np.linspace(flops(lo), flops(hi), CHILDREN)[1:-1]:
        best = min((k for k in cost if k not in {a.id for a in picks}), key=lambda k: (abs(cost[k] - target), k))
        picks.append(drawn[best])
    return [lo, *sorted(picks, key=lambda a: (cost[a.id], a.id)), hi]


PS_VARIANTS = {"progressive": False, "progressive_with_largest": True}  # key -> ProgressiveShrinking.include_largest
SANDWICH_INITS = {"sandwich": True, "sandwich_default_init": False}  # key -> OFAConfig.zero_init_residual
PROBES = 5


def shrink(seed: int, args: argparse.Namespace, x: torch.Tensor, y: torch.Tensor, tests: dict[str, Any],
           calib_x: torch.Tensor, include_largest: bool) -> dict[str, Any]:
    """Progressive shrinking with the largest, the smallest and `PROBES` sampled subnets measured after each phase."""
    space = OFASpace()
    probes = [space.sample_subnet(np.random.default_rng(20_000 + seed + i)) for i in range(PROBES)]
    ps = ProgressiveShrinking(ofa_phases(*args.ps_phases, lr=3e-3), subnets_per_step=2,
                              include_largest=include_largest, seed=seed)
    by_phase: dict[str, dict[str, float]] = {}

    def measure(phase: Phase, supernet: Any) -> None:
        row: dict[str, float] = {}
        for e, (xe, ye) in tests.items():
            rate = InheritedAccuracy(supernet, xe, ye, calib_x)
            row[f"{e}_recal"] = rate(space.largest())["accuracy"]
            row[f"{e}_no_recal"] = plain_accuracy(supernet, space.largest(), xe, ye)
            row[f"smallest_{e}_recal"] = rate(space.smallest())["accuracy"]
            row[f"probes_{e}_recal"] = float(np.mean([rate(a)["accuracy"] for a in probes]))
        by_phase[phase.name] = row

    ps.after_phase = measure
    torch.manual_seed(seed)
    ps_log = ps.fit(space.supernet(), x, y)
    ps.after_phase = None
    return {"config": {k: v for k, v in vars(ps).items() if k != "after_phase"}, "train": train_log_dict(ps_log),
            "probes": [a.id for a in probes], "largest_by_phase": by_phase,
            "before": by_phase["full"], "after": by_phase[ps.phases[-1].name]}


def rate_children(supernet: Any, archs: list[Any], counts: dict[str, dict[str, Any]], tests: dict[str, Any],
                  calib_x: torch.Tensor) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Each child's FLOPs, params (`counts`, by id) and inherited accuracy (BN recalibrated, and as is);
    Spearman with FLOPs."""
    rows = []
    for a in archs:
        row = {"id": a.id, "arch": a.to_dict(), "flops": counts[a.id]["flops"], "params": counts[a.id]["params"],
               "bn_running_mean_shift": bn_shift(supernet, a, calib_x)}
        for e, (xe, ye) in tests.items():
            row[f"{e}_recal"] = InheritedAccuracy(supernet, xe, ye, calib_x)(a)["accuracy"]
            row[f"{e}_no_recal"] = plain_accuracy(supernet, a, xe, ye)
        rows.append(row)
    rho = {f"{e}_{k}": float(stats.spearmanr([r["flops"] for r in rows], [r[f"{e}_{k}"] for r in rows]).statistic)
           for e in tests for k in ("recal", "no_recal")}
    return rows, rho


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One seed: progressive shrinking with and without the largest in every step (before/after), sandwich
    children spaced across the FLOPs range and at FLOPs quantiles (recalibrated or not), stand-alone smallest."""
    torch.set_num_threads(1)
    data = mnist1d_splits(seed=seed, extra_test=args.extra_test)
    x, y = data["train"]
    if args.train_subset:
        x, y = x[:args.train_subset], y[:args.train_subset]
    tests = {"test": data["test"], **({"extra_test": data["extra_test"]} if args.extra_test else {})}
    calib_x = x[:CALIB]
    space = OFASpace()
    children = spanning_children(space, args.pool, np.random.default_rng(10_000 + seed))
    quantiles = quantile_children(space, args.pool, np.random.default_rng(10_000 + seed))
    counts = {a.id: space.count(a) for a in (*children, *quantiles)}  # the same for both supernets
    built = schedules(argparse.Namespace(schedule="sandwich", supernet_epochs=args.supernet_epochs, seed=seed))
    out: dict[str, Any] = {"seed": seed, "load_before": load()}

    # 1. progressive shrinking, as OFA samples (random subnets only) and with the largest in every step
    for key, include_largest in PS_VARIANTS.items():
        out[key] = shrink(seed, args, x, y, tests, calib_x, include_largest)

    # 2. sandwich rule with BigNAS's initialisation (residual blocks start as the identity), and with the
    #    default one as the control: children with and without BN recalibration
    for key, zero_init in SANDWICH_INITS.items():
        torch.manual_seed(seed)
        supernet = OFASpace(OFAConfig(zero_init_residual=zero_init)).supernet()
        sw_log = built["sandwich"].fit(supernet, x, y)
        rows, spearman = rate_children(supernet, children, counts, tests, calib_x)
        q_rows, q_spearman = rate_children(supernet, quantiles, counts, tests, calib_x)
        out[key] = {"config": vars(built["sandwich"]), "zero_init_residual": zero_init, "train": train_log_dict(sw_log),
                    "children": rows, "spearman_flops": spearman, "quantile_children": q_rows,
                    "quantile_spearman_flops": q_spearman}

    # 3. the smallest child trained stand-alone for the supernet's epochs
    recipe = PlainTraining(epochs=args.supernet_epochs, seed=seed)
    torch.manual_seed(seed)
    model = space.build(space.smallest())
    alone_log = recipe.fit(model, x, y)
    model.eval()
    out["standalone_smallest"] = {"recipe": vars(recipe), "seconds": round(alone_log.seconds, 1),
                                  **{e: accuracy(model, xe, ye) for e, (xe, ye) in tests.items()}}
    out["load_after"] = load()
    return out


def timed_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """`run_seed` in a worker, JSON-normalised (phases as dicts) so a finished and a resumed run hold the same objects."""
    t0 = time.perf_counter()
    out = json.loads(json.dumps(run_seed(seed, args), default=jsonable))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def save(path: Path, report: dict[str, Any]) -> None:
    """The report as JSON, atomically (`nas.jsonio.write_bytes`): a run killed mid-write leaves the last
    complete file, so a rerun still resumes from it."""
    jsonio.write_bytes(path, (json.dumps(report, indent=1, default=jsonable) + "\n").encode())


def summarise(seeds: dict[str, dict[str, Any]], main_set: str) -> dict[str, Any]:
    """Per-claim figures over the seeds (points = 100 x accuracy), with 95 % t-intervals and verdicts."""
    runs = [seeds[k] for k in sorted(seeds, key=int)]
    pts = lambda v: 100.0 * v  # noqa: E731

    def shrinking(key: str) -> dict[str, Any]:
        before = [pts(r[key]["before"][f"{main_set}_recal"]) for r in runs]
        after = [pts(r[key]["after"][f"{main_set}_recal"]) for r in runs]
        d = mean_ci([b - a for b, a in zip(before, after)])
        return {"largest_before": mean_ci(before), "largest_after": mean_ci(after), "drop_points": d,
                "smallest_after": mean_ci([pts(r[key]["after"][f"smallest_{main_set}_recal"]) for r in runs]),
                "probes_after": mean_ci([pts(r[key]["after"][f"probes_{main_set}_recal"]) for r in runs]),
                "target": TARGETS["ps_largest_drop_points"], "holds": d["mean"] <= TARGETS["ps_largest_drop_points"]}

    rho = [r["sandwich"]["spearman_flops"][f"{main_set}_recal"] for r in runs]
    rho_q = [r["sandwich"]["quantile_spearman_flops"][f"{main_set}_recal"] for r in runs]
    rho_no = [r["sandwich"]["spearman_flops"][f"{main_set}_no_recal"] for r in runs]
    small = [pts(r["sandwich"]["children"][0][f"{main_set}_recal"]) for r in runs]
    alone = [pts(r["standalone_smallest"][main_set]) for r in runs]
    gap = [a - s for a, s in zip(alone, small)]  # stand-alone minus inherited: > 0 means the supernet is behind
    ctl = "sandwich_default_init"  # the control: the same sandwich training from the default initialisation
    ctl_gap = [a - pts(r[ctl]["children"][0][f"{main_set}_recal"]) for a, r in zip(alone, runs)]
    ctl_rho = [r[ctl]["spearman_flops"][f"{main_set}_recal"] for r in runs]
    gain = [float(np.mean([pts(c[f"{main_set}_recal"] - c[f"{main_set}_no_recal"]) for c in r["sandwich"]["children"]]))
            for r in runs]
    recal = [float(np.mean([pts(c[f"{main_set}_recal"]) for c in r["sandwich"]["children"]])) for r in runs]
    no_recal = [float(np.mean([pts(c[f"{main_set}_no_recal"]) for c in r["sandwich"]["children"]])) for r in runs]
    g = mean_ci(gain)
    verdict = ("helps" if g["ci95_low"] > 0 else "hurts" if g["ci95_high"] < 0 else
               "unnecessary" if max(abs(g["ci95_low"]), abs(g["ci95_high"])) <= 0.5 else "inconclusive")
    r, s = mean_ci(rho), mean_ci(gap)
    return {
        "test_set": main_set, "seeds": len(runs),
        "progressive_shrinking": shrinking("progressive"),
        "progressive_shrinking_with_largest": shrinking("progressive_with_largest"),
        "sandwich_spearman": {"recal": r, "no_recal": mean_ci(rho_no), "quantile_children": mean_ci(rho_q),
                              "default_init": mean_ci(ctl_rho),
                              "target": TARGETS["spearman_flops_accuracy"],
                              "holds": r["mean"] >= TARGETS["spearman_flops_accuracy"]},
        "smallest_child": {"inherited": mean_ci(small), "standalone": mean_ci(alone), "gap_points": s,
                           "default_init_gap_points": mean_ci(ctl_gap),
                           "target": TARGETS["smallest_gap_points"],
                           "holds": s["mean"] <= TARGETS["smallest_gap_points"]},
        "bn_recalibration": {"children_mean_recal": mean_ci(recal), "children_mean_no_recal": mean_ci(no_recal),
                             "gain_points": g, "verdict": verdict,
                             "rule": "helps if the 95 % CI of the paired gain is > 0; unnecessary if it lies "
                                     "within +-0.5 points"},
    }


def fmt(m: dict[str, float], digits: int = 2) -> str:
    lo, hi = m["ci95_low"], m["ci95_high"]
    ci = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if math.isfinite(lo) else ""
    return f"{m['mean']:.{digits}f}{ci}"


def table(summary: dict[str, Any]) -> str:
    sw, sc, bn = (summary[k] for k in ("sandwich_spearman", "smallest_child", "bn_recalibration"))
    rows = [f"| claim ({summary['seeds']} seeds, {summary['test_set']}; mean [95 % CI]) | measured | baseline | target | holds |",
            "|---|---|---|---|---|"]
    for key, label in (("progressive_shrinking", "PS: largest subnet drop, points"),
                       ("progressive_shrinking_with_largest", "PS, largest in every step: largest subnet drop, points")):
        ps = summary[key]
        rows.append(f"| {label} | {fmt(ps['drop_points'])} (after {fmt(ps['largest_after'])}; smallest "
                    f"{fmt(ps['smallest_after'])}, {PROBES} sampled {fmt(ps['probes_after'])}) | "
                    f"before shrinking {fmt(ps['largest_before'])} | <= {ps['target']:g} | {ps['holds']} |")
    rows += [
            f"| sandwich: Spearman(FLOPs, acc), 10 children evenly spaced in FLOPs | {fmt(sw['recal'], 3)} "
            f"(min {sw['recal']['min']:.3f}) | without BN recalibration {fmt(sw['no_recal'], 3)}; children at FLOPs "
            f"quantiles of sampled subnets {fmt(sw['quantile_children'], 3)}; default initialisation "
            f"{fmt(sw['default_init'], 3)} | >= {sw['target']:g} | {sw['holds']} |",
            f"| sandwich: smallest child, stand-alone minus inherited, points | {fmt(sc['gap_points'])} "
            f"(inherited {fmt(sc['inherited'])}) | stand-alone {fmt(sc['standalone'])}; default initialisation's "
            f"gap {fmt(sc['default_init_gap_points'])} | <= {sc['target']:g} | {sc['holds']} |",
            f"| BN recalibration gain over 10 children, points | {fmt(bn['gain_points'])} "
            f"(recalibrated {fmt(bn['children_mean_recal'])}) | running stats as is {fmt(bn['children_mean_no_recal'])} | "
            f"help or unnecessary | {bn['verdict']} |"]
    return "\n".join(rows)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {**{k: (list(v) if isinstance(v := getattr(args, k), tuple) else v)
               for k in ("supernet_epochs", "ps_phases", "extra_test", "train_subset", "pool")},
            "ps_variants": list(PS_VARIANTS), "children": "evenly spaced in FLOPs; FLOPs quantiles as control"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--supernet-epochs", type=int, default=30,
                    help="sandwich-rule epochs (and the stand-alone smallest child's)")
    ap.add_argument("--ps-phases", type=lambda s: tuple(int(v) for v in s.split(",")), default=(15, 6, 6, 10),
                    help="progressive-shrinking epochs of the full, kernel, depth and width phases")
    ap.add_argument("--pool", type=int, default=400, help="sample_subnet draws the children are picked from")
    ap.add_argument("--extra-test", type=int, default=10_000, help="fresh MNIST-1D test signals (0: standard set only)")
    ap.add_argument("--train-subset", type=int, default=0, help="train on the first N training signals (0: all)")
    ap.add_argument("--jobs", type=int, default=1, help="seeds trained at once, one process and one thread each")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 1,000 signals, a few epochs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.supernet_epochs, args.ps_phases, args.extra_test, args.train_subset = 1, 2, (1, 1, 1, 1), 0, 1000
        args.pool = 40  # the children: 10 of 40 draws, the ends smallest() and largest()
    out_path = args.out or ROOT / "experiments" / "results" / ("ofa_claims_quick.json" if args.quick else "ofa_claims.json")
    torch.set_num_threads(1)
    started = time.time()

    report: dict[str, Any] = {"settings": settings(args), "seeds": {}}
    if out_path.exists():
        old = json.loads(out_path.read_text())
        if old.get("settings") == report["settings"]:
            report["seeds"] = old.get("seeds", {})
            print(f"resuming: seeds {sorted(report['seeds'], key=int)} already done", flush=True)
    todo = [seed for seed in range(args.seeds) if str(seed) not in report["seeds"]]
    with ProcessPoolExecutor(max(1, min(args.jobs, len(todo) or 1)), mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {pool.submit(timed_seed, seed, args): seed for seed in todo}
        for future in as_completed(futures):
            seed = futures[future]
            report["seeds"][str(seed)] = future.result()
            print(f"seed {seed}: {report['seeds'][str(seed)]['seconds']:.0f} s, load {load()}", flush=True)
            save(out_path, report)

    main_set = "extra_test" if args.extra_test else "test"
    report["summary"] = {e: summarise(report["seeds"], e) for e in dict.fromkeys((main_set, "test"))}
    report.update({
        "what": "OFA progressive shrinking (largest subnet before/after), BigNAS sandwich children (Spearman with "
                "FLOPs, smallest child vs stand-alone), BN recalibration, on OFASpace() / MNIST-1D",
        "command": " ".join([".venv/bin/python", "experiments/ofa_claims.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": _dt.datetime.now().isoformat(timespec="seconds"), "commit": git_commit(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "targets": TARGETS,
        "protocol": {"children": f"space.smallest(), space.largest() and 8 at evenly spaced FLOPs quantiles of "
                                 f"{args.pool} sample_subnet draws (seed 10000 + seed)",
                     "bn_calibration": f"first {CALIB} training signals", "points": "100 x accuracy",
                     "ci": "95 % t-interval over seeds", "data": "mnist1d_splits(seed): 3,500 train / 500 valid"},
    })
    save(out_path, report)
    for e, summary in report["summary"].items():
        print(f"\n{table(summary)}")
    print(f"\ntotal {time.time() - started:.0f} s; wrote "
          f"{out_path.relative_to(ROOT) if out_path.is_relative_to(ROOT) else out_path}")
    return report


if __name__ == "__main__":
    main()
