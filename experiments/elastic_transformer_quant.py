"""Quantization after elastic-transformer search (issue 21 part 4, the LLaMA-NAS / InstaTune direction).

One elastic transformer supernet (`ElasticTransformerSpace`: depth 1-4, per layer 1/2/4 heads and an FFN of
64..512) is trained once per seed on Movie Review polarity with the sandwich rule (largest on labels, smallest
and two random subnets distilled from it). NSGA-II then searches accuracy (inherited weights, no retraining, on
a validation split held out of the training sentences) against parameters (`nas.cheap`). Per seed, on the test
split and this CPU (sentences/s at batch 64, one thread, min over interleaved rounds: `measure_latencies`):

- the acceptance check, literally: every front member against the full model (the supernet's largest subnet),
  timed together in the same interleaved rounds; a member qualifies with <= 1/1.5 of the full model's
  parameters, >= 1.3x its throughput and test accuracy at most 1 point below it. Test accuracy picks nothing;
- the deployable selection, which sees validation accuracy only: among the front's subnets with <= 1/1.5 of
  the full model's parameters the most accurate on validation (`nas export --top 1 --constraint "params <= .."`
  picks exactly that), and whether it meets the same three targets on test;
- that pick exported with `nas.export.export(..., quantize="int8")`: weights.pt, model.pt2, model.onnx and
  model.int8.onnx (onnxruntime dynamic int8) with a model card holding a row per file (bytes, validation and
  test accuracy passed in through `evaluate=`, latency by the model spec's recipe), under seedN/export/;
- the pick in torch's dynamic int8 too (`nas.hardware.quantization.dynamic_int8`: state_dict bytes, test
  accuracy, throughput, timed with the others).

Resumable per seed; a seed whose supernet.pt is saved is never trained again (the journal resumes, or replays
when complete), so re-analysing seeds costs about a minute each.

    .venv/bin/python experiments/elastic_transformer_quant.py              # 10 seeds, 12 epochs, 300 evaluations
    .venv/bin/python experiments/elastic_transformer_quant.py --seeds 12   # adds seeds 10-11 (each trains a supernet)
    .venv/bin/python experiments/elastic_transformer_quant.py --quick      # smoke: 1 seed, 1 epoch, 20 evaluations
    .venv/bin/python experiments/elastic_transformer_quant.py --recount-flops   # FLOPs and flops_ratio again, no training
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

import nas
from nas.architecture import Architecture
from nas.datasets import movie_reviews
from nas.export import export
from nas.hardware import measure_latencies
from nas.hardware.quantization import dynamic_int8, state_dict_bytes
from nas.measure import count_metric, latency_metric
from nas.modelspec import SUPERNET, record_model
from nas.spaces.training import SandwichRule, accuracy
from nas.spaces.transformer import ElasticTransformerConfig, ElasticTransformerSpace
from flops_recount import Recount, add_option, read_json, write_json  # experiments/ is on sys.path
from reporting import git_commit, write_report  # experiments/reporting.py (the script folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "elastic_transformer_quant.json"
RUNS = ROOT / "runs" / "elastic_transformer_quant"
PARAMS_RATIO, SPEEDUP, POINTS = 1.5, 1.3, 0.01  # the issue's targets
TRAINING = "training.json"  # beside supernet.pt: the seconds and losses of its training
ANALYSIS = 3  # version of the per-seed analysis: records of an older one are redone (reusing supernet and journal)


@dataclass(frozen=True)
class Settings:
    seeds: int = 10
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


def trained_supernet(seed: int, s: Settings, space: ElasticTransformerSpace, workdir: Path, tx: torch.Tensor,
                     ty: torch.Tensor, earlier: dict[str, Any] | None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The seed's supernet and its training record (seconds, losses): loaded from workdir/supernet.pt and
    training.json when a run saved them (a record of an older run's JSON is moved there), else trained and saved."""
    supernet = space.supernet()
    path, record = workdir / SUPERNET, workdir / TRAINING
    if path.is_file():
        supernet.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        print(f"seed {seed}: supernet loaded from {path.relative_to(ROOT)} (not retrained)", flush=True)
        if not record.is_file():
            record.write_text(json.dumps({k: (earlier or {}).get(k) for k in ("train_seconds", "train_losses")}))
        return supernet.eval(), json.loads(record.read_text())
    print(f"seed {seed}: training the supernet ({s.epochs} epochs)", flush=True)
    t0 = time.time()
    log = SandwichRule(epochs=s.epochs, n_random=2, batch_size=128, lr=s.lr, seed=seed).fit(supernet, tx, ty)
    workdir.mkdir(parents=True, exist_ok=True)
    training = {"train_seconds": time.time() - t0, "train_losses": log.phases[0].epoch_losses}
    record.write_text(json.dumps(training))
    torch.save(supernet.state_dict(), path)  # to re-analyse a seed without retraining
    return supernet.eval(), training


def run_seed(seed: int, s: Settings, earlier: dict[str, Any] | None) -> dict[str, Any]:
    t0 = time.time()
    torch.manual_seed(seed)
    data = movie_reviews(seed=seed, max_len=s.max_len, vocab_size=s.vocab_size)
    n_valid = int(round(s.valid_fraction * len(data.train_x)))
    order = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(seed))
    valid_idx, train_idx = order[:n_valid], order[n_valid:]
    tx, ty = data.train_x[train_idx], data.train_y[train_idx]
    vx, vy = data.train_x[valid_idx], data.train_y[valid_idx]
    space = make_space(s)
    workdir = RUNS / f"seed{seed}"
    supernet, training = trained_supernet(seed, s, space, workdir, tx, ty, earlier)

    def params(arch: Any) -> dict[str, float]:
        return {"params": float(space.count(arch)["params"])}

    print(f"seed {seed}: searching ({s.budget} evaluations; a complete journal replays)", flush=True)
    def inherited(arch: Any) -> dict[str, float]:  # layer norm only: no batch-norm statistics to recalibrate
        return {"accuracy": accuracy(supernet.subnet(arch).eval(), vx, vy, 250)}

    result = nas.search(space, [nas.cheap(params), inherited],
                        {"accuracy": "max", "params": "min"}, strategy="nsga2", budget=s.budget, seed=seed,
                        workdir=workdir, enqueue=[space.largest()])
    full_arch = space.largest()
    full_params = params(full_arch)["params"]
    front = sorted(result.pareto_front(), key=lambda t: t.metrics["params"])
    small = [t for t in front if t.metrics["params"] <= full_params / PARAMS_RATIO]
    pick = max(small or front, key=lambda t: (t.metrics["accuracy"], -t.metrics["params"]))

    # every front member and the full model, timed together; the pick's torch int8 copy with them
    full, subs = supernet.subnet(full_arch).eval(), [supernet.subnet(t.arch).eval() for t in front]
    qpick = dynamic_int8(subs[front.index(pick)])
    example = space.example_input(full_arch, s.batch_size)
    print(f"seed {seed}: timing the full model, {len(front)} front members and the int8 pick "
          f"({s.rounds} interleaved rounds)", flush=True)
    load = os.getloadavg()[0]  # other jobs on the machine: the min over rounds favours short forwards under load
    timed = measure_latencies([(m, example) for m in [full, *subs, qpick]], rounds=s.rounds, seed=seed)

    def row(name: str, model: torch.nn.Module, arch: Any, t: Any, valid: float | None) -> dict[str, Any]:
        counts = space.count(arch)
        return {"model": name, "arch": space.validate(arch).to_dict(), "params": int(counts["params"]),
                "flops": int(counts["flops"]), "bytes": state_dict_bytes(model), "valid_acc": valid,
                "test_acc": accuracy(model, data.test_x, data.test_y),
                "min_ms": t.min_ms, "throughput": 1000.0 * s.batch_size / t.min_ms}

    f = row("full (largest subnet)", full, full_arch, timed[0], accuracy(full, vx, vy))
    members = [row(f"front #{i}", m, tr.arch, t, tr.metrics["accuracy"])
               for i, (tr, m, t) in enumerate(zip(front, subs, timed[1:-1]))]
    for m in members:
        m.update(_targets(f, m))
        m["qualifies"] = all(m[k] for k in ("params_ok", "speed_ok", "acc_ok"))
    p = members[front.index(pick)]
    q = row("pick, torch dynamic int8", qpick, pick.arch, timed[-1], None)

    card = export_pick(seed, s, space, supernet, workdir, f, pick, small, full_params, (vx, vy),
                       (data.test_x, data.test_y), training)
    fp32_onnx, int8_onnx = card["files_measured"][1], card["files_measured"][2]
    qualifying = [m for m in members if m["qualifies"]]
    return {"seed": seed, "analysis": ANALYSIS, **training, "seconds": time.time() - t0,
            "evaluations": result.used, "front_size": len(front), "load_average": load, "full": f, "front": members,
            "front_qualifying": len(qualifying), "front_qualifying_archs": [m["arch"] for m in qualifying],
            "pick": {**p, "model": "validation pick (deployable selection)"}, "pick_int8_torch": q,
            "card": card["path"], "card_files": card["files_measured"],
            "params_ratio": f["params"] / p["params"], "speedup": p["throughput"] / f["throughput"],
            "flops_ratio": f["flops"] / p["flops"],
            "acc_drop_pts": 100 * (f["test_acc"] - p["test_acc"]),
            "int8_size_ratio": p["bytes"] / q["bytes"], "int8_acc_drop_pts": 100 * (p["test_acc"] - q["test_acc"]),
            "int8_speedup": q["throughput"] / p["throughput"],
            "onnx_int8_size_ratio": fp32_onnx["bytes"] / int8_onnx["bytes"],
            "onnx_int8_acc_drop_pts": 100 * (fp32_onnx["measured"]["test_accuracy"]
                                             - int8_onnx["measured"]["test_accuracy"]),
            "onnx_int8_speedup": fp32_onnx["measured"]["latency_ms"] / int8_onnx["measured"]["latency_ms"]}


def _targets(full: dict[str, Any], m: dict[str, Any]) -> dict[str, bool]:
    """The issue's three targets for a subnet against the full model (test accuracy, interleaved throughput)."""
    return {"params_ok": m["params"] <= full["params"] / PARAMS_RATIO,
            "speed_ok": m["throughput"] >= SPEEDUP * full["throughput"],
            "acc_ok": m["test_acc"] >= full["test_acc"] - POINTS - 1e-12}


def export_pick(seed: int, s: Settings, space: ElasticTransformerSpace, supernet: torch.nn.Module, workdir: Path,
                full: dict[str, Any], pick: Any, small: list[Any], full_params: float,
                valid: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                training: dict[str, Any]) -> dict[str, Any]:
    """`nas export` of the validation pick with `quantize="int8"`: its files and model card under workdir/export.

    The model spec names no dataset (the validation split is carved out of the training sentences here), so
    accuracy reaches the card through `evaluate`: validation ("accuracy", the searched objective) and test."""
    notes = {"train_seconds": training.get("train_seconds"),
             "data": f"Movie Review polarity, nas.datasets.movie_reviews(seed={seed}, vocab_size={s.vocab_size}, "
                     f"max_len={s.max_len}); accuracy: {s.valid_fraction:.0%} of the training sentences held out "
                     "(validation), test_accuracy: its test split; both measured by "
                     "experiments/elastic_transformer_quant.py through export(evaluate=...)",
             "latency_ms": f"one forward of {s.batch_size} sentences, 1 thread, min over {s.rounds} interleaved rounds",
             "full model (largest subnet)": {"params": full["params"], "test_accuracy": round(full["test_acc"], 4),
                                             "sentences_per_s": round(full["throughput"])}}
    record_model(workdir, space, supernet=supernet,
                 metrics={"params": count_metric("params"),
                          "latency_ms": latency_metric(batch_size=s.batch_size, threads=1, statistic="min", warmup=2,
                                                       repeats=3, rounds=s.rounds)},
                 notes=notes)

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        return {"accuracy": accuracy(model, *valid), "test_accuracy": accuracy(model, *test)}

    constraint = f"params <= {full_params / PARAMS_RATIO:.1f}" if small else None
    report = export(workdir, workdir / "export", top=1, constraint=constraint, quantize="int8", evaluate=evaluate)
    (model,) = report.models
    if model.arch_id != Architecture(pick.arch).id:
        raise RuntimeError(f"seed {seed}: export picked {model.arch_id}, the script's rule "
                           f"{Architecture(pick.arch).id}")
    (workdir / "card.md").unlink(missing_ok=True)  # the card an earlier version of this script wrote by hand
    card = json.loads((model.path / "card.json").read_text())
    card["path"] = str((model.path / "card.md").relative_to(ROOT))
    return card


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return float(a.mean()), math.nan, math.nan
    half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a))
    return float(a.mean()), float(a.mean() - half), float(a.mean() + half)


def table(per_seed: list[dict[str, Any]]) -> str:
    def cell(key: str, fmt: str) -> str:
        m, lo, hi = mean_ci([r[key] for r in per_seed])
        return f"{m:{fmt}} (one seed: no CI)" if math.isnan(lo) else f"{m:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"

    n = len(per_seed)
    out = ["| quantity | mean [95 % CI] | target | seeds meeting it |", "|---|---|---|---|",
           f"| acceptance: front members with ≤ 1/{PARAMS_RATIO} params, ≥ {SPEEDUP}× throughput, "
           f"test acc. ≥ full − 1 pt (of front size) | {cell('front_qualifying', '.1f')} "
           f"(of {cell('front_size', '.1f')}) | ≥ 1 | {sum(r['front_qualifying'] >= 1 for r in per_seed)}/{n} |"]
    for key, fmt, target, ok in (
            ("params_ratio", ".2f", f"≥ {PARAMS_RATIO}", lambda v: v >= PARAMS_RATIO),
            ("speedup", ".2f", f"≥ {SPEEDUP}", lambda v: v >= SPEEDUP),
            ("flops_ratio", ".2f", "(reported)", lambda v: True),
            ("acc_drop_pts", "+.2f", "≤ 1 point", lambda v: v <= 1.0),
            ("onnx_int8_size_ratio", ".2f", "> 1", lambda v: v > 1.0),
            ("onnx_int8_acc_drop_pts", "+.2f", "≤ 1 point", lambda v: v <= 1.0),
            ("onnx_int8_speedup", ".2f", "(reported)", lambda v: True),
            ("int8_size_ratio", ".2f", "> 1", lambda v: v > 1.0),
            ("int8_acc_drop_pts", "+.2f", "≤ 1 point", lambda v: v <= 1.0),
            ("int8_speedup", ".2f", "(reported)", lambda v: True)):
        label = {"params_ratio": "validation pick: params_ratio (full / pick)",
                 "speedup": "validation pick: speedup (measured throughput)",
                 "flops_ratio": "validation pick: FLOPs ratio (full / pick)",
                 "acc_drop_pts": "validation pick: acc_drop_pts (full − pick, test)",
                 "onnx_int8_size_ratio": "exported int8 ONNX: size ratio (model.onnx / model.int8.onnx)",
                 "onnx_int8_acc_drop_pts": "exported int8 ONNX: acc. drop vs fp32 ONNX (test, pts)",
                 "onnx_int8_speedup": "exported int8 ONNX: speedup vs fp32 ONNX (onnxruntime)",
                 "int8_size_ratio": "torch dynamic int8: state_dict size ratio",
                 "int8_acc_drop_pts": "torch dynamic int8: acc. drop vs fp32 (test, pts)",
                 "int8_speedup": "torch dynamic int8: speedup vs fp32 torch"}[key]
        out.append(f"| {label} | {cell(key, fmt)} | {target} | {sum(ok(r[key]) for r in per_seed)}/{n} |")
    out += ["", "| seed | full test acc. | front (qualifying) | validation pick | pick params | pick test acc. | "
            "full / pick sentences/s | int8 ONNX test acc. | model.int8.onnx / model.onnx bytes |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in per_seed:
        f, p = r["full"], r["pick"]
        fp32, int8 = r["card_files"][1], r["card_files"][2]
        out.append(f"| {r['seed']} | {100 * f['test_acc']:.2f} | {r['front_size']} ({r['front_qualifying']}) | "
                   f"{describe(p['arch'])} | {p['params']:,} | {100 * p['test_acc']:.2f} | "
                   f"{f['throughput']:.0f} / {p['throughput']:.0f} | {100 * int8['measured']['test_accuracy']:.2f} | "
                   f"{int8['bytes']:,} / {fp32['bytes']:,} |")
    return "\n".join(out)


def describe(arch: dict[str, Any]) -> str:
    return f"d{arch['depth']} " + " ".join(f"h{c['heads']}f{c['ffn']}" for c in arch["layers"])


def recount_flops(path: Path) -> None:
    """`--recount-flops`: every recorded model row (full, front, pick, int8 pick) rebuilt untrained on the recorded
    settings' space and its FLOPs counted again as `run_seed` counts them; `flops_ratio` and the table follow."""
    doc = read_json(path)
    space = make_space(Settings(**doc["settings"]))
    recount = Recount("elastic_transformer_quant.py", space.count)
    for r in doc["per_seed"]:
        for m in (r["full"], *r["front"], r["pick"], r["pick_int8_torch"]):
            m["flops"] = int(recount.flops(m["arch"], m["flops"], m["params"]))
        r["flops_ratio"] = r["full"]["flops"] / r["pick"]["flops"]
    doc["table"] = table(doc["per_seed"])
    doc["flops_recount"] = recount.summary()
    print(recount.describe())
    write_json(path, doc)
    print(doc["table"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=Settings.seeds)
    ap.add_argument("--epochs", type=int, default=Settings.epochs)
    ap.add_argument("--budget", type=int, default=Settings.budget)
    ap.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, 20 evaluations, 3 rounds")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"JSON output (default {OUT.relative_to(OUT.parents[2])}; its _quick twin with --quick)")
    add_option(ap)
    args = ap.parse_args()
    s = Settings(seeds=args.seeds, epochs=args.epochs, budget=args.budget)
    global RUNS
    if args.quick:
        s = Settings(seeds=1, epochs=1, budget=20, rounds=3)
        args.out = args.out or OUT.with_name(OUT.stem + "_quick.json")  # an --out given is used as given
        RUNS = RUNS.with_name(RUNS.name + "_quick")
    args.out = args.out or OUT
    torch.set_num_threads(1)
    if args.recount_flops:
        return recount_flops(args.out)
    started = time.time()
    same = {k: v for k, v in asdict(s).items() if k != "seeds"}  # more seeds extend a run; other changes restart it
    earlier: dict[int, dict[str, Any]] = {}
    if args.out.exists():
        old = json.loads(args.out.read_text())
        if {k: v for k, v in old.get("settings", {}).items() if k != "seeds"} == same:
            earlier = {r["seed"]: r for r in old["per_seed"]}
    done = {k: r for k, r in earlier.items() if r.get("analysis") == ANALYSIS and k < s.seeds}
    for seed in range(s.seeds):
        if seed in done:
            print(f"seed {seed}: already in {args.out}")
            continue
        r = done[seed] = run_seed(seed, s, earlier.get(seed))
        print(f"seed {seed}: {r['front_qualifying']} of {r['front_size']} front members meet all three targets; "
              f"validation pick {r['pick']['params']:,} params ({r['params_ratio']:.2f}x fewer), "
              f"{r['speedup']:.2f}x throughput, test accuracy drop {r['acc_drop_pts']:+.2f} pts; int8 ONNX "
              f"{r['onnx_int8_size_ratio']:.2f}x smaller, drop {r['onnx_int8_acc_drop_pts']:+.2f} pts "
              f"({r['seconds']:.0f} s)", flush=True)
        per_seed = [done[k] for k in sorted(done)]
        report = {"what": __doc__.split("\n")[0], "command": "experiments/elastic_transformer_quant.py",
                  "git_commit": git_commit(), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "machine": {"platform": platform.platform(), "torch": torch.__version__, "torch_threads": 1},
                  "settings": {**asdict(s), "seeds": len(per_seed)},
                  "targets": {"params_ratio": PARAMS_RATIO, "speedup": SPEEDUP, "accuracy_points": 100 * POINTS},
                  "per_seed": per_seed, "table": table(per_seed)}
        write_report(args.out, report, started)
    print(table([done[k] for k in sorted(done)]))


if __name__ == "__main__":
    main()
