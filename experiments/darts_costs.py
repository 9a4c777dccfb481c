"""DARTS-family cost claims on CPU: per-epoch time and activation memory of darts, darts2, pc-darts (K = 4), rarts and
gumbel-hard side by side, the second-order hypergradient against autograd, and PC-DARTS's mixed-op memory.

Every seed draws its own digits split (900 train / 450 valid, 1x8x8) and builds one trainer per method on the
NB201 supernet of experiments/darts_family.py (8 channels, 3 stages); their epochs are interleaved (epoch e of
every method, in an order rotated per seed and epoch) so machine load hits all methods alike. Time is CPU time
of this process (time.process_time, one torch thread) and wall time; ratios are to second-order DARTS within a
seed, then mean and 95 % t-interval over seeds. Memory is counted, not sampled: the bytes of the distinct
tensors autograd saves for backward (`saved_activation_bytes`), parameters excluded.

    .venv/bin/python experiments/darts_costs.py            # 10 seeds x 3 epochs (about 12 min, 1 loaded thread)
    .venv/bin/python experiments/darts_costs.py --quick    # smoke test (2 seeds, 1 epoch, 128 samples)

The JSON is written after every seed and a rerun resumes from the finished seeds (same settings; `--fresh`
starts over). Writes experiments/results/darts_costs.json (darts_costs_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `experiments.reporting` when run as a script

import nas.nn as nnn  # noqa: E402
from experiments.reporting import git_commit, protocol_report  # noqa: E402
from nas.datasets import digits_splits  # noqa: E402
from nas.darts import DartsOptions  # noqa: E402
from nas.spaces.cell import NasBench201Space  # noqa: E402
from nas.strategies.oneshot import OneShotTrainer, saved_activation_bytes  # noqa: E402
from nas.strategies.oneshot_modules import ModuleOneShotTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("darts", "darts2", "pc-darts", "rarts", "gumbel-hard")
BASELINE = "darts2"


class Toy(nnn.ModelSpace):
    """The hypergradient check's net: one LayerChoice among smooth candidates (finite differences see no kinks)."""

    input_shape = (64,)

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(64, 12)
        self.choice = nnn.LayerChoice({"tanh": nn.Sequential(nn.Linear(12, 12), nn.Tanh()),
                                       "sigmoid": nn.Sequential(nn.Linear(12, 12), nn.Sigmoid()),
                                       "identity": nn.Identity()}, label="op")
        self.out = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.choice(torch.tanh(self.embed(x)))))


def _norm(tensors: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float((t * t).sum()) for t in tensors))


def hypergradient_check(trainer: OneShotTrainer, data: dict, dtype: torch.dtype, flatten: bool) -> dict[str, float]:
    """Relative error of `_unrolled_grads` (finite differences) to `exact_unrolled_grads` (double backward) after
    one real weight step; and how far the first-order gradient is from the exact one (the Hessian term's size)."""
    (xt, yt), (xv, yv) = data["train"], data["valid"]
    xt, xv = (x[:32].flatten(1) if flatten else x[:32] for x in (xt, xv))
    xt, xv, yt, yv = xt.to(dtype), xv.to(dtype), yt[:32], yv[:32]
    trainer.supernet.to(dtype)
    trainer.weight_step(xt, yt)
    exact = trainer.exact_unrolled_grads(xt, yt, xv, yv)
    approx = trainer._unrolled_grads(xt, yt, xv, yv)
    first = torch.autograd.grad(F.cross_entropy(trainer.supernet(xv), yv), trainer.arch)
    return {"relative_error": _norm([a - e for a, e in zip(approx, exact)]) / _norm(exact),
            "first_order_gap": _norm([f - e for f, e in zip(first, exact)]) / _norm(exact)}


def hypergradients(seeds: list[int]) -> dict[str, list[dict]]:
    """The check on the smooth toy (float64 and float32) at DARTS's radius 0.01, and on the (ReLU) NB201 supernet
    at radii 0.01 (DARTS), 1e-4, 1e-5 and 1e-6 (the finite difference's step is radius / ||dL_val/dw'||); xi = 0.5."""
    data = digits_splits(seed=0)
    options = DartsOptions(method="darts2", w_lr=0.5, batch_size=32)
    checks = [("toy", torch.float64, 0.01), ("toy", torch.float32, 0.01)] + \
        [("nb201", dtype, r) for dtype in (torch.float64, torch.float32) for r in (0.01, 1e-4, 1e-5, 1e-6)]
    out: dict[str, list[dict]] = {}
    for seed in seeds:
        for net, dtype, radius in checks:
            opts = replace(options, hvp_radius=radius)
            trainer = ModuleOneShotTrainer(Toy.space(), opts, seed) if net == "toy" else \
                OneShotTrainer(NasBench201Space(channels=4, cells_per_stage=1, stages=2), opts, seed)
            key = f"{net} {str(dtype).removeprefix('torch.')} radius {radius:g}"
            out.setdefault(key, []).append({"seed": seed, **hypergradient_check(trainer, data, dtype, net == "toy")})
    return out


def mixed_op_memory(batch: int = 64, channels: int = 16) -> dict[str, dict[str, int]]:
    """Saved-activation bytes of one NB201 MixedOp and of one search cell (6 mixed ops), K = 1 (DARTS), 2 and 4."""
    out = {}
    x = torch.randn(batch, channels, 8, 8)
    for k in (1, 2, 4):
        torch.manual_seed(0)
        supernet = NasBench201Space(channels=channels, cells_per_stage=1, stages=1).supernet(partial_channels=k)
        cell, params = supernet.layers[0], list(supernet.parameters())
        weights = supernet.mixing(supernet.alphas["cell"])
        out[f"K={k}"] = {
            "mixed_op": saved_activation_bytes(lambda: cell.edges["0_1"](x, weights.weights[0]), exclude=params),
            "cell": saved_activation_bytes(lambda: cell(x, supernet.mixing(supernet.alphas["cell"]), None),
                                           exclude=params)}
    return out


def run_seed(seed: int, args: argparse.Namespace, space: NasBench201Space) -> dict:
    """Every method's trainer on this seed's split, epochs interleaved; CPU and wall seconds per epoch, memory."""
    data = digits_splits(seed=seed)
    if args.quick:
        data = {k: (x[:128], y[:128]) for k, (x, y) in data.items()}
    base = DartsOptions(epochs=args.epochs, a_lr=args.a_lr, batch_size=args.batch_size, partial_channels=4)
    trainers = {m: OneShotTrainer(space, replace(base, method=m), seed) for m in METHODS}
    x, y = data["train"][0][:args.batch_size], data["train"][1][:args.batch_size]
    memory = {m: saved_activation_bytes(lambda t=t: F.cross_entropy(t.supernet(x), y), exclude=t.weights + t.arch)
              for m, t in trainers.items()}
    cpu: dict[str, list[float]] = {m: [] for m in METHODS}
    wall: dict[str, list[float]] = {m: [] for m in METHODS}
    for epoch in range(args.epochs):
        shift = (seed + epoch) % len(METHODS)
        for m in METHODS[shift:] + METHODS[:shift]:
            c0, w0 = time.process_time(), time.perf_counter()
            trainers[m].train_epoch(data)
            cpu[m].append(time.process_time() - c0)
            wall[m].append(time.perf_counter() - w0)
    rows = {}
    for m, t in trainers.items():
        rec = t.history[-1]
        rows[m] = {"cpu_s_per_epoch": sum(cpu[m]) / len(cpu[m]), "wall_s_per_epoch": sum(wall[m]) / len(wall[m]),
                   "cpu_s": cpu[m], "wall_s": wall[m], "saved_bytes_per_forward": memory[m],
                   "supernet_valid_acc": rec.valid_acc, "derived": space.to_string(rec.derived),
                   "parameter_free": rec.parameter_free}
        print(f"  seed {seed} {m:<12} CPU {rows[m]['cpu_s_per_epoch']:6.2f} s/epoch, wall "
              f"{rows[m]['wall_s_per_epoch']:6.2f}, saved {memory[m] / 2**20:6.2f} MiB, {rows[m]['derived']}",
              flush=True)
    return {"seed": seed, "data": {k: len(v[0]) for k, v in data.items()}, "rows": rows}


def ratios(per_seed: list[dict], key: str) -> dict:
    """Per-seed ratio of each method's `key` to second-order DARTS's, reported as mean [95 % CI] over seeds."""
    values = {m: [r["rows"][m][key] / r["rows"][BASELINE][key] for r in per_seed] for m in METHODS}
    return protocol_report(values, direction="min", baseline=BASELINE,
                           label=f"darts_costs {key} / {BASELINE}").to_dict()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--a-lr", type=float, default=1e-2)
    p.add_argument("--fresh", action="store_true", help="ignore the finished seeds in --out (default: resume)")
    p.add_argument("--quick", action="store_true", help="1 epoch, 128 samples per split, 2 seeds")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON output (default experiments/results/darts_costs.json; darts_costs_quick.json "
                        "with --quick)")
    args = p.parse_args(argv)
    args.out = args.out or ROOT / "experiments" / "results" / (
        "darts_costs_quick.json" if args.quick else "darts_costs.json")
    torch.set_num_threads(1)
    if args.quick:
        args.epochs, args.seeds = 1, 2
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "a_lr": args.a_lr, "quick": args.quick,
                "methods": list(METHODS), "partial_channels": 4}
    seeds = list(range(args.seeds))
    previous = json.loads(args.out.read_text()) if args.out.exists() and not args.fresh else {}
    done = {r["seed"]: r for r in previous.get("per_seed", [])} if previous.get("settings") == settings else {}
    if done:
        print(f"resuming: seeds {sorted(done)} already in {args.out}", flush=True)
    t_start = time.perf_counter()
    hyper = hypergradients(seeds[:2] if args.quick else seeds[:3])  # seconds: recomputed on every run
    memory = mixed_op_memory()
    space = NasBench201Space(channels=8, cells_per_stage=1, stages=3)
    results = {
        "what": "per-epoch CPU/wall time and saved-activation memory of DARTS-family methods (NB201 supernet on "
                "digits, epochs interleaved per seed), the second-order hypergradient against autograd, "
                "PC-DARTS K=4 mixed-op memory",
        "command": " ".join([".venv/bin/python", "experiments/darts_costs.py", *sys.argv[1:]]),
        "git_commit": git_commit(), "settings": settings,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "load_average_start": [round(v, 2) for v in os.getloadavg()]},
        "space": {"name": "NasBench201Space", "net": repr(space.net)},
        "hypergradient": hyper, "mixed_op_memory": memory,
    }
    per_seed = [done[s] for s in seeds if s in done]
    for seed in seeds:
        if seed in done:
            continue
        per_seed.append(run_seed(seed, args, space))
        per_seed.sort(key=lambda r: r["seed"])
        results.update({"date": _dt.datetime.now().isoformat(timespec="seconds"),
                        "seconds": round(time.perf_counter() - t_start, 1), "seeds_done": [r["seed"] for r in per_seed],
                        "per_seed": per_seed, "ratios": {k: ratios(per_seed, k) for k in
                                                         ("cpu_s_per_epoch", "wall_s_per_epoch")}})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    if not results.get("per_seed"):  # every seed resumed: the seeds' figures as they were, the checks anew
        results.update({k: previous[k] for k in ("date", "seconds", "seeds_done", "per_seed", "ratios")})
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    report(results)
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return results


def report(results: dict) -> None:
    """The tables: per-method cost against second-order DARTS, the hypergradient check, PC-DARTS memory."""
    per_seed, n = results["per_seed"], len(results["per_seed"])
    cpu, wall = (results["ratios"][k] for k in ("cpu_s_per_epoch", "wall_s_per_epoch"))
    print(f"\nper-epoch cost over {n} seeds x {results['settings']['epochs']} epochs, ratio to {BASELINE} "
          "(mean [95 % CI])")
    print("| method | CPU s/epoch | CPU ratio | wall s/epoch | wall ratio | saved MiB/forward | memory ratio |")
    print("|---|---|---|---|---|---|---|")
    for m in METHODS:
        c = next(r for r in cpu["methods"] if r["method"] == m)
        w = next(r for r in wall["methods"] if r["method"] == m)
        mem = [r["rows"][m]["saved_bytes_per_forward"] / r["rows"][BASELINE]["saved_bytes_per_forward"]
               for r in per_seed]
        print(f"| {m} | {sum(r['rows'][m]['cpu_s_per_epoch'] for r in per_seed) / n:.2f} | "
              f"{c['mean']:.3f} [{c['ci95_low']:.3f}, {c['ci95_high']:.3f}] | "
              f"{sum(r['rows'][m]['wall_s_per_epoch'] for r in per_seed) / n:.2f} | "
              f"{w['mean']:.3f} [{w['ci95_low']:.3f}, {w['ci95_high']:.3f}] | "
              f"{per_seed[0]['rows'][m]['saved_bytes_per_forward'] / 2**20:.2f} | {sum(mem) / n:.3f} |")
    print("\nsecond-order hypergradient, ||finite differences - autograd|| / ||autograd|| (xi = 0.5, 32 samples)")
    for key, rows in results["hypergradient"].items():
        errors = ", ".join(f"{r['relative_error']:.2e}" for r in rows)
        gaps = ", ".join(f"{r['first_order_gap']:.2f}" for r in rows)
        print(f"  {key:<26} relative error per seed: {errors}; first-order gap: {gaps}")
    mem = results["mixed_op_memory"]
    print("\nsaved activations at batch 64, 16 channels (KiB), ratio to DARTS (K=1)")
    for k, row in mem.items():
        print(f"  {k}: mixed op {row['mixed_op'] / 1024:.0f} ({row['mixed_op'] / mem['K=1']['mixed_op']:.3f}), "
              f"cell {row['cell'] / 1024:.0f} ({row['cell'] / mem['K=1']['cell']:.3f})")


if __name__ == "__main__":
    main()
