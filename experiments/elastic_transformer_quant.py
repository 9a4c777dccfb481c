"""Quantization after elastic-transformer search (issue 21 part 4, the LLaMA-NAS / InstaTune direction).

One elastic transformer supernet (`ElasticTransformerSpace`: depth 1-4, per layer 1/2/4 heads and an FFN of
64..512) is trained once per seed on Movie Review polarity with the sandwich rule (largest on labels, smallest
and two random subnets distilled from it). NSGA-II then searches accuracy (inherited weights, no retraining, on
a validation split held out of the training sentences) against parameters (`nas.cheap`). From the front the
script picks, among the front's subnets with at most 1/1.5 of the full model's parameters, the most accurate on
validation whose accuracy is within 1 point of the full model's (or the most accurate, when none is), and measures on the test split and on this CPU:

- test accuracy of the full model (the supernet's largest subnet) and of the pick;
- CPU throughput (sentences/s at batch 64, one thread, min over interleaved rounds: `measure_latencies`);
- the pick after dynamic int8 quantization of its Linear layers and embeddings (`torch.ao.quantization.quantize_dynamic`):
  size of the saved state_dict, test accuracy, throughput.

Claims checked per seed: params ratio <= 1/1.5, throughput ratio >= 1.3, test accuracy within 1 point of the
full model's; quantized size < the pick's, quantized accuracy within 1 point of the pick's. The pick of each
seed gets a model card (card.md) with both rows. Resumable per seed.

    .venv/bin/python experiments/elastic_transformer_quant.py            # 5 seeds, 12 epochs, 300 evaluations
    .venv/bin/python experiments/elastic_transformer_quant.py --quick    # smoke: 1 seed, 1 epoch, 20 evaluations
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

import nas
from nas.datasets import movie_reviews
from nas.hardware import measure_latencies
from nas.hardware.quantization import dynamic_int8, state_dict_bytes
from nas.spaces.training import InheritedAccuracy, SandwichRule, accuracy
from nas.spaces.transformer import ElasticTransformerConfig, ElasticTransformerSpace
from reporting import git_commit, write_report  # experiments/reporting.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "elastic_transformer_quant.json"
RUNS = ROOT / "runs" / "elastic_transformer_quant"
PARAMS_RATIO, SPEEDUP, POINTS = 1.5, 1.3, 0.01  # the targets


@dataclass(frozen=True)
class Settings:
    seeds: int = 5
    epochs: int = 12
    budget: int = 300
    vocab_size: int = 2000
    max_len: int = 48
    valid_fraction: float = 0.1
    batch_size: int = 64        # sentences per forward when timing throughput
    rounds: int = 20            # interleaved timing rounds
    lr: float = 2e-3


def make_space(s: Settings) -> ElasticTransformerSpace:
    return ElasticTransformerSpace(ElasticTransformerConfig(vocab_size=s.vocab_size, max_len=s.max_len, hidden=64,
                                                            head_dim=16, depths=(1, 2, 3, 4), heads=(1, 2, 4),
                                                            ffn_dims=(64, 128, 256, 512), dropout=0.1))


def card(path: Path, seed: int, rows: list[dict[str, Any]]) -> None:
    """A model card for the pick: its architecture and both the float and the int8 model's figures."""
    lines = [f"# Elastic transformer subnet, Movie Review polarity (seed {seed})", "",
             f"Architecture: `{json.dumps(rows[1]['arch'])}`", "",
             "| model | params | state_dict bytes | test acc. | sentences/s (batch 64, 1 thread) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params']:,} | {r['bytes']:,} | {100 * r['test_acc']:.2f} % | "
                     f"{r['throughput']:.0f} |")
    lines += ["", "Weights inherited from the sandwich-trained supernet (no retraining); the int8 row is "
              "`torch.ao.quantization.quantize_dynamic`: Linear layers int8 (dynamic), embeddings int8 per row."]
    path.write_text("\n".join(lines) + "\n")


def run_seed(seed: int, s: Settings) -> dict[str, Any]:
    t0 = time.time()
    torch.manual_seed(seed)
    print(f"seed {seed}: training the supernet ({s.epochs} epochs)", flush=True)
    data = movie_reviews(seed=seed, max_len=s.max_len, vocab_size=s.vocab_size)
    n_valid = int(round(s.valid_fraction * len(data.train_x)))
    order = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(seed))
    valid_idx, train_idx = order[:n_valid], order[n_valid:]
    tx, ty = data.train_x[train_idx], data.train_y[train_idx]
    vx, vy = data.train_x[valid_idx], data.train_y[valid_idx]
    space = make_space(s)
    supernet = space.supernet()
    log = SandwichRule(epochs=s.epochs, n_random=2, batch_size=128, lr=s.lr, seed=seed).fit(supernet, tx, ty)
    supernet.eval()
    train_s = time.time() - t0
    workdir = RUNS / f"seed{seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    torch.save(supernet.state_dict(), workdir / "supernet.pt")  # to re-analyse a seed without retraining

    print(f"seed {seed}: trained in {train_s:.0f} s; searching ({s.budget} evaluations)", flush=True)

    def params(arch: Any) -> dict[str, float]:
        return {"params": float(space.count(arch)["params"])}

    result = nas.search(space, [nas.cheap(params), InheritedAccuracy(supernet, vx, vy, vx[:0])],
                        {"accuracy": "max", "params": "min"}, strategy="nsga2", budget=s.budget, seed=seed,
                        workdir=workdir, enqueue=[space.largest()])
    full_arch = space.largest()
    full_valid = InheritedAccuracy(supernet, vx, vy, vx[:0])(full_arch)["accuracy"]
    full_params = params(full_arch)["params"]
    front = sorted(result.pareto_front(), key=lambda t: t.metrics["params"])
    ok = [t for t in front if t.metrics["params"] <= full_params / PARAMS_RATIO
          and t.metrics["accuracy"] >= full_valid - POINTS]
    small = [t for t in front if t.metrics["params"] <= full_params / PARAMS_RATIO]
    pick = max(ok or small or front, key=lambda t: (t.metrics["accuracy"], -t.metrics["params"]))

    full, sub = supernet.subnet(full_arch).eval(), supernet.subnet(pick.arch).eval()
    qsub = dynamic_int8(sub)
    example = space.example_input(full_arch, s.batch_size)
    timed = measure_latencies([(full, example), (sub, example), (qsub, example)], rounds=s.rounds, seed=seed)
    rows = []
    for name, model, arch, t in (("full (largest subnet)", full, full_arch, timed[0]),
                                 ("pick (fp32)", sub, pick.arch, timed[1]),
                                 ("pick (dynamic int8)", qsub, pick.arch, timed[2])):
        rows.append({"model": name, "arch": space.validate(arch).to_dict(), "params": int(space.count(arch)["params"]),
                     "bytes": state_dict_bytes(model), "test_acc": accuracy(model, data.test_x, data.test_y),
                     "min_ms": t.min_ms, "throughput": 1000.0 * s.batch_size / t.min_ms})
    card_path = workdir / "card.md"
    card(card_path, seed, rows)
    f, p, q = rows
    return {"seed": seed, "train_seconds": train_s, "seconds": time.time() - t0,
            "train_losses": log.phases[0].epoch_losses, "evaluations": result.used, "front_size": len(front),
            "full_valid": full_valid, "pick_valid": pick.metrics["accuracy"], "qualifying_on_front": len(ok),
            "rows": rows, "card": str(card_path.relative_to(ROOT)),
            "params_ratio": f["params"] / p["params"], "speedup": p["throughput"] / f["throughput"],
            "acc_drop_pts": 100 * (f["test_acc"] - p["test_acc"]),
            "int8_size_ratio": p["bytes"] / q["bytes"], "int8_acc_drop_pts": 100 * (p["test_acc"] - q["test_acc"]),
            "int8_speedup": q["throughput"] / p["throughput"]}


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return float(a.mean()), math.nan, math.nan
    half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a))
    return float(a.mean()), float(a.mean() - half), float(a.mean() + half)


def table(per_seed: list[dict[str, Any]]) -> str:
    def cell(key: str, fmt: str) -> str:
        m, lo, hi = mean_ci([r[key] for r in per_seed])
        return f"{m:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"

    out = ["| quantity | mean [95 % CI] | target | seeds meeting it |", "|---|---|---|---|"]
    for key, fmt, target, ok in (
            ("params_ratio", ".2f", f"≥ {PARAMS_RATIO}", lambda v: v >= PARAMS_RATIO),
            ("speedup", ".2f", f"≥ {SPEEDUP}", lambda v: v >= SPEEDUP),
            ("acc_drop_pts", "+.2f", "≤ 1 point", lambda v: v <= 1.0),
            ("int8_size_ratio", ".2f", "> 1", lambda v: v > 1.0),
            ("int8_acc_drop_pts", "+.2f", "≤ 1 point", lambda v: v <= 1.0),
            ("int8_speedup", ".2f", "(reported)", lambda v: True)):
        n = sum(ok(r[key]) for r in per_seed)
        out.append(f"| {key} | {cell(key, fmt)} | {target} | {n}/{len(per_seed)} |")
    out += ["", "| seed | full test acc. | pick | pick params | pick test acc. | int8 test acc. | full / pick / int8 "
            "sentences/s | int8 bytes / fp32 bytes |", "|---|---|---|---|---|---|---|---|"]
    for r in per_seed:
        f, p, q = r["rows"]
        arch = p["arch"]
        desc = f"d{arch['depth']} " + " ".join(f"h{c['heads']}f{c['ffn']}" for c in arch["layers"])
        out.append(f"| {r['seed']} | {100 * f['test_acc']:.2f} | {desc} | {p['params']:,} | {100 * p['test_acc']:.2f} | "
                   f"{100 * q['test_acc']:.2f} | {f['throughput']:.0f} / {p['throughput']:.0f} / {q['throughput']:.0f} | "
                   f"{q['bytes']:,} / {p['bytes']:,} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=Settings.seeds)
    ap.add_argument("--epochs", type=int, default=Settings.epochs)
    ap.add_argument("--budget", type=int, default=Settings.budget)
    ap.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, 20 evaluations, 3 rounds")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    s = Settings(seeds=args.seeds, epochs=args.epochs, budget=args.budget)
    if args.quick:
        s = Settings(seeds=1, epochs=1, budget=20, rounds=3)
        args.out = args.out.with_name(args.out.stem + "_quick.json")
    torch.set_num_threads(1)
    started = time.time()
    done: dict[int, dict[str, Any]] = {}
    if args.out.exists():
        old = json.loads(args.out.read_text())
        if old.get("settings") == asdict(s):
            done = {r["seed"]: r for r in old["per_seed"]}
    for seed in range(s.seeds):
        if seed in done:
            print(f"seed {seed}: already in {args.out}")
            continue
        r = done[seed] = run_seed(seed, s)
        print(f"seed {seed}: pick {r['rows'][1]['params']:,} params ({r['params_ratio']:.2f}x fewer), "
              f"{r['speedup']:.2f}x throughput, accuracy drop {r['acc_drop_pts']:+.2f} pts; int8 "
              f"{r['int8_size_ratio']:.2f}x smaller, drop {r['int8_acc_drop_pts']:+.2f} pts ({r['seconds']:.0f} s)")
        per_seed = [done[k] for k in sorted(done)]
        report = {"what": __doc__.split("\n")[0], "command": "experiments/elastic_transformer_quant.py",
                  "git_commit": git_commit(), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "machine": {"platform": platform.platform(), "torch": torch.__version__, "torch_threads": 1},
                  "settings": asdict(s),
                  "per_seed": per_seed, "table": table(per_seed)}
        write_report(args.out, report, started)
    print(table([done[k] for k in sorted(done)]))


if __name__ == "__main__":
    main()
