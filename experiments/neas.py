"""NEAS on MNIST-1D: is the searched 3-member ensemble better than its best member and than 3 random subnets
of equal total FLOPs? With the ensemble of the 3 individually best subnets as the control.

Per seed (its own MNIST-1D valid split and initialisation): `nas.neas.search_neas` trains the chain supernet
K = 3 paths at a time, shrinks it twice (2 candidates removed from every layer per round, by potential +
diversity), then searches 3-member ensembles in the shrunk space under a total-FLOPs budget of 3 x the median
subnet's FLOPs (evolution, 50 ensembles). Every accuracy is inherited from the final supernet (batch norm
recalibrated on 500 training signals, no retraining). Columns, on "valid" (the search's data) and "test"
(held out, 1,000 signals):

* NEAS ensemble: the best ensemble the final search found (by valid accuracy, within the budget);
* its best member: the member with the highest valid accuracy;
* random equal-FLOPs: mean over 5 draws of 3 subnets drawn uniformly from the full (unshrunk) space whose
  total FLOPs is within 5 % of the NEAS ensemble's; also drawn from the shrunk space (random shrunk);
* top-3 individually best: the 3 best subnets by valid accuracy among every member the final search rated,
  taken best first while the total stays within the budget, ensembled;
* single best: the best of those subnets alone.

Resumable per seed (finished seeds are kept in the JSON; an interrupted seed resumes from its workdir).
    .venv/bin/python experiments/neas.py              # 10 seeds
    .venv/bin/python experiments/neas.py --quick      # 2 seeds, tiny budgets (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `experiments.reporting` when run as a script
from experiments.reporting import git_commit, protocol_report, protocol_table  # noqa: E402
from nas.architecture import Architecture  # noqa: E402
from nas.datasets import mnist1d_splits  # noqa: E402
from nas.neas import ChainConfig, ChainSpace, NeasOptions, search_neas  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOL = 0.005  # "NEAS >= X within tolerance": NEAS >= X - 0.5 percentage points (strict counts reported too)
FLOPS_TOL = 0.05  # random ensembles: total FLOPs within 5 % of the NEAS ensemble's
COLUMNS = ("neas", "best_member", "random_full", "random_shrunk", "top3", "single_best")


def median_flops(space: ChainSpace, n: int = 2000) -> float:
    rng = np.random.default_rng(0)
    return float(np.median([space.flops(space.sample(rng)) for _ in range(n)]))


def random_equal_flops(space: ChainSpace, target: float, rng: np.random.Generator, members: int = 3,
                       tries: int = 20000) -> tuple[list[Architecture], float]:
    """`members` uniform subnets whose total FLOPs is within FLOPS_TOL of `target` (the closest draw otherwise)."""
    best, gap = None, float("inf")
    for _ in range(tries):
        archs = [space.sample(rng) for _ in range(members)]
        g = abs(sum(space.flops(a) for a in archs) / target - 1)
        if g < gap:
            best, gap = archs, g
        if gap <= FLOPS_TOL:
            break
    return best, gap


def run_seed(seed: int, args: argparse.Namespace, options: NeasOptions, workdir: Path) -> dict:
    torch.manual_seed(seed)
    data = mnist1d_splits(seed)
    t0 = time.perf_counter()
    result = search_neas(data, ChainConfig(), options, seed=seed, workdir=workdir)
    search_s = time.perf_counter() - t0
    ev, ens_space = result.evaluator, result.space
    full, shrunk = ChainSpace(ChainConfig()), ens_space.member_space
    neas = [Architecture(m) for m in result.best["members"]]
    target = ens_space.flops(result.best)

    def row(members: list[Architecture]) -> dict:
        return {"valid": ev.ensemble_accuracy(members), "test": ev.ensemble_accuracy(members, "test"),
                "flops": sum(full.flops(m) for m in members), "members": [dict(m) for m in members]}

    rows = {"neas": row(neas)}
    rows["best_member"] = row([max(neas, key=ev.accuracy)])
    rng = np.random.default_rng([seed, 7])
    for name, space in (("random_full", full), ("random_shrunk", shrunk)):
        draws = []
        for _ in range(args.random):
            archs, gap = random_equal_flops(space, target, rng)
            draws.append({**row(archs), "flops_gap": gap})
        rows[name] = {"valid": float(np.mean([d["valid"] for d in draws])),
                      "test": float(np.mean([d["test"] for d in draws])),
                      "flops": float(np.mean([d["flops"] for d in draws])), "draws": draws}
    pool = {Architecture(m).id: Architecture(m) for t in result.search.completed for m in t.arch["members"]}
    ranked = sorted(pool.values(), key=ev.accuracy, reverse=True)
    top3: list[Architecture] = []
    for a in ranked:
        if len(top3) < options.members and (options.flops_budget is None or
                                            sum(full.flops(m) for m in top3 + [a]) <= options.flops_budget):
            top3.append(a)
    rows["top3"] = row(top3)
    rows["single_best"] = row(ranked[:1])
    return {"seed": seed, "search_seconds": search_s, "train_seconds": result.train_seconds,
            "rounds": [{"round": r.round, "removed": r.removed, "kept": r.kept, "removed_per_layer": r.removed_per_layer}
                       for r in result.rounds],
            "pool": len(pool), "space_size": result.info, "target_flops": target, "rows": rows,
            "trials": len(result.search.trials)}


def paired_diff(diffs: list[float]) -> dict:
    """Mean of the per-seed differences NEAS - X with its 95 % t interval (paired over seeds)."""
    from scipy import stats

    d = np.asarray(diffs)
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"mean_diff": float(d.mean()), "diff_ci95": [float(d.mean()) - half, float(d.mean()) + half]}


def summarise(per_seed: list[dict]) -> dict:
    out: dict = {"counts": {}, "protocol": {}, "protocol_tables": {}}
    for split in ("valid", "test"):
        values = {c: [r["rows"][c][split] for r in per_seed] for c in COLUMNS}
        rep = protocol_report(values, direction="max", baseline="random_full", label=f"neas {split}")
        out["protocol"][split] = rep.to_dict()
        out["protocol_tables"][split] = protocol_table(rep)
        out["counts"][split] = {
            c: {"strict": sum(r["rows"]["neas"][split] >= r["rows"][c][split] for r in per_seed),
                "within_tol": sum(r["rows"]["neas"][split] >= r["rows"][c][split] - TOL for r in per_seed),
                **paired_diff([r["rows"]["neas"][split] - r["rows"][c][split] for r in per_seed])}
            for c in COLUMNS if c != "neas"}
    out["removed_per_round"] = {r["seed"]: [x["removed_per_layer"] for x in r["rounds"]] for r in per_seed}
    out["every_round_removed_at_least_one_per_layer"] = all(
        min(x["removed_per_layer"]) >= 1 for r in per_seed for x in r["rounds"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--random", type=int, default=5, help="random equal-FLOPs ensembles per seed")
    p.add_argument("--quick", action="store_true", help="2 seeds, 1 epoch per stage, 12 ensembles")
    p.add_argument("--fresh", action="store_true", help="ignore finished seeds in --out")
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "neas")
    p.add_argument("--out", type=Path, default=None,
                   help="report JSON (default experiments/results/neas.json; neas_quick.json with --quick)")
    args = p.parse_args()
    args.out = args.out or ROOT / "experiments" / "results" / ("neas_quick.json" if args.quick else "neas.json")
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    budget = ChainSpace(ChainConfig())
    options = NeasOptions(flops_budget=3 * median_flops(budget))
    if args.quick:
        options = NeasOptions(flops_budget=options.flops_budget, warmup_epochs=1, epochs_per_round=1, paths=14,
                              budget=12)
        args.seeds, args.random = 2, 2
    settings = {"options": options.to_dict(), "random": args.random, "quick": args.quick, "tol": TOL,
                "flops_tol": FLOPS_TOL, "chain": ChainConfig().to_dict()}
    previous = json.loads(args.out.read_text()) if args.out.exists() and not args.fresh else {}
    done = {r["seed"]: r for r in previous.get("per_seed", [])} if previous.get("settings") == settings else {}
    if done:
        print(f"resuming: seeds {sorted(done)} already in {args.out}", flush=True)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    started = time.perf_counter()
    per_seed = [done[s] for s in seeds if s in done]
    report = {"what": "NEAS (diversity-guided shrinking + ensemble search) vs its best member, random equal-FLOPs "
                      "ensembles and the top-3 individually best subnets, MNIST-1D, inherited weights",
              "command": " ".join([".venv/bin/python", "experiments/neas.py", *sys.argv[1:]]),
              "git_commit": git_commit(), "settings": settings,
              "machine": {"platform": platform.platform(), "torch_threads": 1, "torch": torch.__version__}}
    for seed in seeds:
        if seed in done:
            continue
        wd = args.workdir / ("quick" if args.quick else "full") / f"seed-{seed}"
        rec = run_seed(seed, args, options, wd)
        per_seed.append(rec)
        per_seed.sort(key=lambda r: r["seed"])
        print(f"seed {seed}: " + "  ".join(f"{c} {rec['rows'][c]['valid']:.3f}/{rec['rows'][c]['test']:.3f}"
                                          for c in COLUMNS) + f"  ({rec['search_seconds']:.0f} s)", flush=True)
        report.update({"seeds_done": [r["seed"] for r in per_seed], "per_seed": per_seed, "summary": summarise(per_seed),
                       "seconds": previous.get("seconds", 0.0) * bool(done) + time.perf_counter() - started})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    summary = summarise(per_seed)
    if per_seed:  # also after a resumed, already complete run: the summary follows the script
        report.update({"seeds_done": [r["seed"] for r in per_seed], "per_seed": per_seed, "summary": summary,
                       "seconds": report.get("seconds", previous.get("seconds", 0.0))})
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{'seed':<5}" + "".join(f"{c:>15}" for c in COLUMNS) + "   (valid / test accuracy)")
    for r in per_seed:
        print(f"{r['seed']:<5}" + "".join(f"{r['rows'][c]['valid']:>8.3f}/{r['rows'][c]['test']:.3f}" for c in COLUMNS))
    for split in ("valid", "test"):
        print(f"\n{split} accuracy over {len(per_seed)} seeds (RI over random_full, 95 % CI):")
        print(summary["protocol_tables"][split])
        print(f"seeds where NEAS >= X ({split}; strict, within {TOL}) and NEAS - X [paired 95 % CI]:")
        for c, v in summary["counts"][split].items():
            lo, hi = v["diff_ci95"]
            print(f"  {c:<14}{v['strict']:>3}/{len(per_seed)} {v['within_tol']:>3}/{len(per_seed)}   "
                  f"{v['mean_diff']:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    print(f"\ncandidates removed per layer per round: {summary['removed_per_round']}")
    print(f"every round removed >= 1 candidate from every layer: {summary['every_round_removed_at_least_one_per_layer']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
