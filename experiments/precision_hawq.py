"""HAWQ allocation on digits (issue 21 part 3): Hessian-ordered per-layer formats vs random allocations of equal size.

Per seed (0..9): an MLP (64-48-48-48-48-10, ReLU; `mlp48`) and a narrow one (64-24-24-24-24-10; `mlp24`) are
trained in fp32 on the digits training split (900 images, `PlainTraining`, 40 epochs, seeded); per layer the
Hessian of the training loss with respect to the layer's weight gives its trace (Hutchinson, Rademacher vectors,
stopped at 5 % standard error or 200 samples) and its top eigenvalue (power iteration). Formats are then allocated
under a budget on code bits (average `bits` per weight) and the network is post-training quantized (weights only,
scales per output channel or per tensor as the setting says, no fine-tuning; Omega uses the same quantizer).
Methods:

- `hawq-trace` (HAWQ-V2): minimise Omega = sum_i Tr(H_i)/n_i * ||Q(W_i) - W_i||^2, solved exactly (knapsack);
- `hawq-eigen` (HAWQ-V1's measure in the same knapsack): the top eigenvalue in place of the average trace;
- `mse-only` (ablation, no Hessian): minimise sum_i ||Q(W_i) - W_i||^2;
- `random`: 20 allocations drawn uniformly (without replacement) among those whose size is within
  [90 %, 100 %] of the budget (equal size), or all of them when there are fewer (10 in `low-bit`);
- references: every layer in one of the setting's formats (no budget).

Outcome: accuracy drop vs fp32 (percentage points) on the held-out valid + test splits (897 images), and the
cross-entropy increase. Reported: per seed whether each method loses strictly less than the mean and than the
median of the random allocations (ties counted separately, never wins), wins with a one-sided sign test (a tie
counts as a non-win), the same count on the cross-entropy increase, per-method mean drop with 95 % t-intervals, the
protocol report (relative improvement over random, Welch intervals; experiments/reporting.py) and how well Omega
ranks the random allocations' drops (Spearman). Settings (`SETTINGS`; every one ever run is listed and reported):

- `issue-formats`: {int4, int8, fp8-e4m3, fp8-e5m2} at 6 bits per weight, per-channel scales, mlp48;
- `low-bit`: {int2, int4, int8} at 3 bits per weight (int2 = ternary: some layers must go below int4, and
  which ones matters; int4 alone is nearly lossless on digits), per channel, mlp48;
- the issue's formats again in a 2 x 2 x 2 grid fixed before running: budget 6 or 5 bits per weight (`-5bit`:
  three quarters of the weights must take int4), per-channel or per-tensor scales (`per-tensor`: one scale
  per weight, as many accelerators have; int4 then costs more), mlp48 or mlp24 (`narrow`).

Width probe (`width_probe`, seeds 0..4): every layer in int4 / fp8-e4m3, per channel and per tensor, for hidden
widths 48, 32, 24 and 16: how much the lowest issue format costs. It was run before any allocation on mlp24;
24 is the widest width whose all-int4 per-tensor model loses more than 3 points (16 costs 7 points of fp32
accuracy). `--first-seed 10` repeats the allocations on fresh seeds 10..19 (the replication run).

Joint search (`joint` in the report; examples/precision_search.py): per seed one supernet over widths x formats
(64-64 hidden, 40 sandwich epochs), then `nsga2` and `random` search (60 evaluations each, objectives
accuracy / energy on jetson_orin_nano, constraint size_bits <= 40,000) each export their most accurate pick
through `nas.export`; the exported ONNX initializers and state_dict are measured against the searched size.
Hand-made baselines, no search: one format everywhere at the widest uniform width that fits the budget.

    .venv/bin/python experiments/precision_hawq.py            # 10 seeds, ~3 min on one core
    .venv/bin/python experiments/precision_hawq.py --first-seed 10 --probe-seeds 0 --joint-seeds 0 \
        --out experiments/results/precision_hawq_replication.json   # seeds 10..19, allocations only
    .venv/bin/python experiments/precision_hawq.py --quick    # 3 seeds, 5 random allocations, fewer samples
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before torch loads: one thread
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import itertools  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from scipy import stats  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import git_commit, protocol_report, protocol_table, write_report  # noqa: E402

from nas.datasets import digits_splits  # noqa: E402
from nas.hardware.hawq import allocate, allocation_size, layer_sensitivity  # noqa: E402
from nas.hardware.quantization import FORMATS, perturbation, quantizable_layers, quantize_model  # noqa: E402
from nas.spaces.training import PlainTraining, accuracy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "precision_hawq.json"
SIZES = (64, 48, 48, 48, 48, 10)
MODELS = {"mlp48": SIZES, "mlp24": (64, 24, 24, 24, 24, 10)}  # mlp24: the narrow model, see width_probe
MAIN_MODEL = "mlp48"
PROBE_WIDTHS = (48, 32, 24, 16)
ISSUE_FORMATS = ["int4", "int8", "fp8-e4m3", "fp8-e5m2"]
SETTINGS = {  # every setting ever run is listed here and reported (none dropped); fixed before running, same per seed
    "issue-formats": {"model": "mlp48", "formats": ISSUE_FORMATS, "bits": 6.0, "granularity": "channel"},
    "low-bit": {"model": "mlp48", "formats": ["int2", "int4", "int8"], "bits": 3.0, "granularity": "channel"},
    "issue-formats-5bit": {"model": "mlp48", "formats": ISSUE_FORMATS, "bits": 5.0, "granularity": "channel"},
    "per-tensor": {"model": "mlp48", "formats": ISSUE_FORMATS, "bits": 6.0, "granularity": "tensor"},
    "per-tensor-5bit": {"model": "mlp48", "formats": ISSUE_FORMATS, "bits": 5.0, "granularity": "tensor"},
    "narrow": {"model": "mlp24", "formats": ISSUE_FORMATS, "bits": 6.0, "granularity": "channel"},
    "narrow-5bit": {"model": "mlp24", "formats": ISSUE_FORMATS, "bits": 5.0, "granularity": "channel"},
    "narrow-per-tensor": {"model": "mlp24", "formats": ISSUE_FORMATS, "bits": 6.0, "granularity": "tensor"},
    "narrow-per-tensor-5bit": {"model": "mlp24", "formats": ISSUE_FORMATS, "bits": 5.0, "granularity": "tensor"},
}
METHODS = ("hawq-trace", "hawq-eigen", "mse-only")
EQUAL_SIZE = 0.9  # random allocations use between 90 % and 100 % of the budget


def mlp(sizes: tuple[int, ...] = SIZES) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def train(seed: int, epochs: int, sizes: tuple[int, ...] = SIZES) -> tuple[nn.Module, dict[str, Any]]:
    data = digits_splits(seed=seed)
    torch.manual_seed(seed)
    model = mlp(sizes)
    PlainTraining(epochs=epochs, seed=seed).fit(model, *data["train"])
    return model.eval(), data


def outcome(model: nn.Module, formats: dict[str, str], x: torch.Tensor, y: torch.Tensor,
            base_acc: float, base_loss: float, granularity: str = "channel") -> dict[str, float]:
    q = quantize_model(model, formats, granularity=granularity).eval()
    with torch.no_grad():
        loss = float(F.cross_entropy(q(x), y))
    return {"drop_pp": 100.0 * (base_acc - accuracy(q, x, y)), "loss_increase": loss - base_loss}


def equal_size_pool(shapes: dict[str, tuple[int, ...]], formats: list[str], budget: float) -> list[dict[str, str]]:
    """Every allocation whose code bits lie in [EQUAL_SIZE * budget, budget] (enumerated: the spaces are small)."""
    names = list(shapes)
    pool = []
    for combo in itertools.product(formats, repeat=len(names)):
        alloc = dict(zip(names, combo))
        if EQUAL_SIZE * budget <= allocation_size(shapes, alloc) <= budget:
            pool.append(alloc)
    return pool


def fitted(seed: int, sizes: tuple[int, ...], args: argparse.Namespace) -> dict[str, Any]:
    """One trained MLP of `sizes` with its fp32 figures on valid + test and its per-layer Hessian sensitivities."""
    t0 = time.time()
    model, data = train(seed, args.epochs, sizes)
    x = torch.cat([data["valid"][0], data["test"][0]])
    y = torch.cat([data["valid"][1], data["test"][1]])
    with torch.no_grad():
        base_loss = float(F.cross_entropy(model(x), y))
    base_acc = accuracy(model, x, y)
    t1 = time.time()
    sens = layer_sensitivity(model, F.cross_entropy, data["train"], samples=args.samples, eigenvalue=True,
                             seed=seed, rtol=args.rtol)
    summary = {"sizes": list(sizes), "fp32_accuracy": base_acc, "fp32_loss": base_loss, "train_s": t1 - t0,
               "hessian_s": time.time() - t1, "sensitivity": {n: s.to_dict() for n, s in sens.items()}}
    return {"model": model, "x": x, "y": y, "acc": base_acc, "loss": base_loss, "sens": sens, "summary": summary}


def run_setting(fit: dict[str, Any], setting: dict[str, Any], seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """HAWQ (trace, eigenvalue), the MSE-only ablation, random equal-size allocations and references, one setting."""
    model, x, y, base_acc, base_loss, sens = (fit[k] for k in ("model", "x", "y", "acc", "loss", "sens"))
    weights = {n: m.weight.detach() for n, m in quantizable_layers(model).items()}
    shapes = {n: tuple(w.shape) for n, w in weights.items()}
    total = sum(w.numel() for w in weights.values())
    fmts, budget, gran = setting["formats"], setting["bits"] * total, setting["granularity"]
    factors = {"hawq-trace": {n: s.mean_trace for n, s in sens.items()},
               "hawq-eigen": {n: float(s.eigenvalue) for n, s in sens.items()},
               "mse-only": {n: 1.0 for n in sens}}
    res: dict[str, Any] = {"budget_bits": budget, "methods": {}}

    def omega(alloc: dict[str, str]) -> float:  # HAWQ-V2's predicted perturbation (trace factors)
        return sum(factors["hawq-trace"][n] * perturbation(weights[n], f, gran) for n, f in alloc.items())

    for method, factor in factors.items():
        alloc = allocate(weights, factor, fmts, budget, granularity=gran)
        res["methods"][method] = {"formats": alloc.formats, "bits_per_weight": alloc.bits / total,
                                  "omega": omega(alloc.formats),
                                  **outcome(model, alloc.formats, x, y, base_acc, base_loss, gran)}
    pool = equal_size_pool(shapes, fmts, budget)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(pool), size=min(args.random, len(pool)), replace=False)
    randoms = []
    for i in picks:
        alloc = pool[int(i)]
        randoms.append({"formats": alloc, "bits_per_weight": allocation_size(shapes, alloc) / total,
                        "omega": omega(alloc), **outcome(model, alloc, x, y, base_acc, base_loss, gran)})
    # the knapsack's check: no allocation of the whole equal-size pool has a smaller Omega than hawq-trace's
    res["hawq_omega_is_pool_minimum"] = bool(res["methods"]["hawq-trace"]["omega"]
                                             <= min(omega(a) for a in pool) * (1 + 1e-9))
    drops = [r["drop_pp"] for r in randoms]
    res["random"] = {"pool": len(pool), "drawn": len(randoms), "allocations": randoms,
                     "mean_drop_pp": float(np.mean(drops)), "median_drop_pp": float(np.median(drops)),
                     "mean_loss_increase": float(np.mean([r["loss_increase"] for r in randoms])),
                     "mean_bits_per_weight": float(np.mean([r["bits_per_weight"] for r in randoms]))}
    if len(randoms) > 2 and len(set(drops)) > 1:
        rho = stats.spearmanr([r["omega"] for r in randoms], drops)
        res["random"]["omega_spearman_drop"] = float(rho.statistic)
    res["references"] = {f"all-{f}": {"bits_per_weight": allocation_size(shapes, {n: f for n in weights}) / total,
                                      **outcome(model, {n: f for n in weights}, x, y, base_acc, base_loss, gran)}
                         for f in sorted(fmts, key=lambda f: FORMATS[f].bits)}
    return res


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.time()
    fits = {name: fitted(seed, sizes, args) for name, sizes in MODELS.items()}
    main_fit = fits[MAIN_MODEL]["summary"]
    out: dict[str, Any] = {"seed": seed, "fp32_accuracy": main_fit["fp32_accuracy"],
                           "fp32_loss": main_fit["fp32_loss"], "sensitivity": main_fit["sensitivity"],
                           "models": {name: f["summary"] for name, f in fits.items()}, "settings": {}}
    for name, setting in SETTINGS.items():
        out["settings"][name] = run_setting(fits[setting["model"]], setting, seed, args)
    out["seconds"] = time.time() - t0
    return out


def width_probe(seeds: int, args: argparse.Namespace) -> dict[str, Any]:
    """Accuracy drop of every layer in int4 / fp8-e4m3 (per channel and per tensor) for 4-hidden-layer MLPs of
    `PROBE_WIDTHS`: how much the lowest issue format costs at each width (the narrow model's justification)."""
    out: dict[str, Any] = {}
    for width in PROBE_WIDTHS:
        rows = []
        for seed in range(seeds):
            model, data = train(seed, args.epochs, (64, *[width] * 4, 10))
            x = torch.cat([data["valid"][0], data["test"][0]])
            y = torch.cat([data["valid"][1], data["test"][1]])
            acc = accuracy(model, x, y)
            row = {"fp32_accuracy_pct": 100 * acc}
            for gran in ("channel", "tensor"):
                for fmt in ("int4", "fp8-e4m3"):
                    q = quantize_model(model, {n: fmt for n in quantizable_layers(model)}, granularity=gran).eval()
                    row[f"all-{fmt} {gran} drop_pp"] = 100 * (acc - accuracy(q, x, y))
            rows.append(row)
        out[str(width)] = {k: summarize([r[k] for r in rows]) for k in rows[0]}
    return out


def probe_table(probe: dict[str, Any]) -> str:
    keys = list(next(iter(probe.values())))
    lines = ["| hidden width | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for width, row in probe.items():
        lines.append(f"| {width} | " + " | ".join(f"{row[k]['mean']:.2f} [{row[k]['ci95_low']:.2f}, "
                                                  f"{row[k]['ci95_high']:.2f}]" for k in keys) + " |")
    return "\n".join(lines)


def load_example() -> Any:
    import importlib.util

    path = ROOT / "examples" / "precision_search.py"
    spec = importlib.util.spec_from_file_location("precision_search_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def uniform_baselines(space: Any, budget: int) -> dict[str, Any]:
    """Per format: every layer in it, at the widest uniform width multiplier whose size fits `budget`."""
    out = {}
    for fmt in space.config.formats:
        for width in sorted(space.config.widths, reverse=True):
            arch = space.validate({"hidden": [{"width": width, "format": fmt} for _ in space.config.hidden],
                                   "head_format": fmt})
            if space.size_bits(arch) <= budget:
                out[f"all-{fmt}"] = arch
                break
    return out


def run_joint(seeds: list[int], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Joint architecture x precision search per seed: nsga2 and random, export, measured sizes; baselines."""
    ex = load_example()
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in args.strategies}
    baselines: dict[str, list[dict[str, Any]]] = {}
    for seed in seeds:
        t0 = time.time()
        space, data, supernet, train_s = ex.train_supernet(args.joint_epochs, seed)
        score = ex.space_accuracy(space, data, supernet)
        for name, arch in uniform_baselines(space, args.budget_bits).items():
            baselines.setdefault(name, []).append({"seed": seed, "arch": arch.to_dict(), "accuracy_pct": score(arch),
                                                   "test_accuracy_pct": score(arch, "test"),
                                                   "size_bits": space.size_bits(arch)})
        line = [f"seed {seed}: supernet {train_s:.0f} s"]
        for strategy in args.strategies:
            t1 = time.time()
            r = ex.search_and_export(workdir / f"{strategy}-{seed}", space, data, supernet, args.budget_bits,
                                     args.trials, seed, strategy, train_s)
            size = r["exported"]
            r.update({"search_s": time.time() - t1, "train_s": train_s,
                      "size_matches_onnx": size["onnx_state_bits"] == r["searched"]["size_bits"]
                      and not size["onnx_missing"],
                      "size_matches_state_dict": size["state_tensor_bits"] == r["searched"]["size_bits"],
                      "within_budget": r["searched"]["size_bits"] <= args.budget_bits})
            runs[strategy].append(r)
            line.append(f"{strategy} {r['test_accuracy_pct']:.2f} % (test) at {r['searched']['size_bits']:,.0f} bits "
                        f"(ONNX {size['onnx_parameter_bits']:,} bits)")
        print("  joint " + "; ".join(line) + f" ({time.time() - t0:.0f} s)", flush=True)
    values = {s: [r["test_accuracy_pct"] for r in rs] for s, rs in runs.items()}  # held out: never selected on
    values.update({name: [b["test_accuracy_pct"] for b in bs] for name, bs in baselines.items()})
    valid = {s: [r["measured_accuracy_pct"] for r in rs] for s, rs in runs.items()}
    valid.update({name: [b["accuracy_pct"] for b in bs] for name, bs in baselines.items()})
    report = protocol_report(values, direction="max", baseline="random", label="joint search",
                             costs={s: [r["search_s"] for r in rs] for s, rs in runs.items()},
                             budgets={s: args.trials for s in runs})
    return {"budget_bits": args.budget_bits, "trials": args.trials, "supernet_epochs": args.joint_epochs,
            "device": ex.DEVICE, "runs": runs, "baselines": baselines,
            "test_accuracy_pct": {m: summarize(v) for m, v in values.items()},
            "valid_accuracy_pct": {m: summarize(v) for m, v in valid.items()},
            "size_bits": {s: summarize([r["searched"]["size_bits"] for r in rs]) for s, rs in runs.items()},
            "all_sizes_match_onnx": all(r["size_matches_onnx"] for rs in runs.values() for r in rs),
            "all_sizes_match_state_dict": all(r["size_matches_state_dict"] for rs in runs.values() for r in rs),
            "all_within_budget": all(r["within_budget"] for rs in runs.values() for r in rs),
            "protocol": report.to_dict(), "protocol_table": protocol_table(report)}


def joint_table(joint: dict[str, Any]) -> str:
    lines = ["| method | test accuracy % [95 % CI] | valid accuracy % (selection) | size bits (mean) | "
             "exported size = searched (ONNX / state_dict) |", "|---|---|---|---|---|"]
    for m, a in joint["test_accuracy_pct"].items():
        v = joint["valid_accuracy_pct"][m]
        if m in joint["runs"]:
            rs = joint["runs"][m]
            sizes = f"{joint['size_bits'][m]['mean']:,.0f}"
            match = (f"{sum(r['size_matches_onnx'] for r in rs)}/{len(rs)} / "
                     f"{sum(r['size_matches_state_dict'] for r in rs)}/{len(rs)}")
        else:
            bs = joint["baselines"][m]
            sizes, match = f"{np.mean([b['size_bits'] for b in bs]):,.0f}", "(not exported)"
            m = f"{m} (widest uniform width that fits, no search)"
        lines.append(f"| {m} | {a['mean']:.2f} [{a['ci95_low']:.2f}, {a['ci95_high']:.2f}] | {v['mean']:.2f} | "
                     f"{sizes} | {match} |")
    return "\n".join(lines)


def summarize(values: list[float]) -> dict[str, float]:
    x = np.asarray(values, dtype=float)
    n = len(x)
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": float(x.mean()), "ci95_low": float(x.mean() - half), "ci95_high": float(x.mean() + half),
            "median": float(np.median(x))}


def compare(seeds: list[dict[str, Any]], setting: str) -> dict[str, Any]:
    """Per method: seeds strictly beating the random mean / median (ties counted and reported, not wins; the
    one-sided sign test counts a tie as a non-win), drop and difference with 95 % CIs, and the same count on the
    cross-entropy increase (finer than accuracy on 897 images)."""
    rows = [s["settings"][setting] for s in seeds]
    rand_mean = [r["random"]["mean_drop_pp"] for r in rows]
    rand_median = [r["random"]["median_drop_pp"] for r in rows]
    rand_loss = [r["random"]["mean_loss_increase"] for r in rows]
    out: dict[str, Any] = {"random": {"drop_pp": summarize(rand_mean),
                                      "loss_increase": summarize([r["random"]["mean_loss_increase"] for r in rows]),
                                      "bits_per_weight": summarize([r["random"]["mean_bits_per_weight"] for r in rows])}}
    for method in METHODS:
        drop = [r["methods"][method]["drop_pp"] for r in rows]
        n = len(drop)
        beats_mean = sum(d < m for d, m in zip(drop, rand_mean))
        beats_median = sum(d < m for d, m in zip(drop, rand_median))
        ties_median = sum(d == m for d, m in zip(drop, rand_median))
        ties_mean = sum(abs(d - m) < 1e-9 for d, m in zip(drop, rand_mean))
        loss = [r["methods"][method]["loss_increase"] for r in rows]
        out[method] = {
            "drop_pp": summarize(drop),
            "loss_increase": summarize([r["methods"][method]["loss_increase"] for r in rows]),
            "bits_per_weight": summarize([r["methods"][method]["bits_per_weight"] for r in rows]),
            "minus_random_mean_pp": summarize([d - m for d, m in zip(drop, rand_mean)]),
            "seeds_beating_random_mean": beats_mean, "seeds_beating_random_median": beats_median,
            "seeds_tied_random_median": ties_median, "seeds_tied_random_mean": ties_mean,
            "seeds_zero_drop": sum(d == 0 for d in drop),
            "seeds_beating_random_mean_loss": sum(a < b for a, b in zip(loss, rand_loss)),
            "sign_test_p_vs_mean": float(stats.binomtest(beats_mean, n, 0.5, alternative="greater").pvalue),
            "beats_mean_in_8_of_10": bool(n >= 10 and beats_mean >= 0.8 * n)}
    values = {m: [r["methods"][m]["drop_pp"] for r in rows] for m in METHODS}
    values["random"] = rand_mean
    report = protocol_report(values, direction="min", baseline="random", label=setting)
    out["protocol"] = report.to_dict()
    out["protocol_table"] = protocol_table(report)
    out["seeds_hawq_omega_is_pool_minimum"] = sum(r["hawq_omega_is_pool_minimum"] for r in rows)
    rhos = [r["random"].get("omega_spearman_drop") for r in rows if r["random"].get("omega_spearman_drop") is not None]
    out["omega_spearman_drop"] = summarize(rhos) if len(rhos) > 1 else None
    return out


def table(seeds: list[dict[str, Any]], comparisons: dict[str, Any]) -> str:
    lines = ["| setting | method | bits/weight | accuracy drop pp [95 % CI] | loss increase | "
             "beats random mean (strict) | beats random median | sign-test p | beats random mean loss increase |",
             "|---|---|---|---|---|---|---|---|---|"]
    for setting, c in comparisons.items():
        n = len(seeds)
        for method in (*METHODS, "random"):
            m = c[method]
            d = m["drop_pp"]
            row = (f"| {setting} | {method} | {m['bits_per_weight']['mean']:.2f} | {d['mean']:.2f} "
                   f"[{d['ci95_low']:.2f}, {d['ci95_high']:.2f}] | {m['loss_increase']['mean']:+.4f} | ")
            if method == "random":
                row += "(mean of the random draws per seed) | | | |"
            else:
                row += (f"{m['seeds_beating_random_mean']}/{n} (ties {m['seeds_tied_random_mean']}) | "
                        f"{m['seeds_beating_random_median']}/{n} "
                        f"(ties {m['seeds_tied_random_median']}) | {m['sign_test_p_vs_mean']:.3f} | "
                        f"{m['seeds_beating_random_mean_loss']}/{n} |")
            lines.append(row)
        for ref, first in seeds[0]["settings"][setting]["references"].items():
            d = summarize([s["settings"][setting]["references"][ref]["drop_pp"] for s in seeds])
            lines.append(f"| {setting} | {ref} (reference, no budget) | {first['bits_per_weight']:.2f} | "
                         f"{d['mean']:.2f} [{d['ci95_low']:.2f}, {d['ci95_high']:.2f}] | | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="allocation seeds are first-seed .. first-seed + seeds - 1 (10: the replication run)")
    ap.add_argument("--random", type=int, default=20, help="random allocations per seed and setting")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--samples", type=int, default=200, help="most Hutchinson samples per layer")
    ap.add_argument("--rtol", type=float, default=0.05, help="stop Hutchinson at this relative standard error")
    ap.add_argument("--probe-seeds", type=int, default=5, help="seeds of the width probe (0: skip it)")
    ap.add_argument("--joint-seeds", type=int, default=10, help="seeds of the joint search (0: skip it)")
    ap.add_argument("--joint-epochs", type=int, default=40, help="sandwich-rule epochs of the joint supernet")
    ap.add_argument("--trials", type=int, default=60, help="evaluations per joint search")
    ap.add_argument("--budget-bits", type=int, default=40_000, help="size budget of the joint search")
    ap.add_argument("--strategies", default="nsga2,random")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "precision-hawq")
    ap.add_argument("--quick", action="store_true",
                    help="3 seeds, 5 random allocations, 50 samples, 20 epochs; probe: 2 seeds; joint: 2 seeds, "
                         "5 epochs, 12 trials")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    args.strategies = args.strategies.split(",")
    if args.quick:
        args.seeds, args.random, args.samples, args.epochs, args.probe_seeds = 3, 5, 50, 20, 2
        args.joint_seeds, args.joint_epochs, args.trials = 2, 5, 12
    out_path = args.out or (OUT.with_name("precision_hawq_quick.json") if args.quick else OUT)
    torch.set_num_threads(1)
    logging.getLogger("nas").setLevel(logging.ERROR)
    started = time.time()
    seeds = []
    seed_ids = list(range(args.first_seed, args.first_seed + args.seeds))
    for seed in seed_ids:
        seeds.append(run_seed(seed, args))
        s = seeds[-1]
        parts = [f"{k}: hawq {v['methods']['hawq-trace']['drop_pp']:.2f} vs random {v['random']['mean_drop_pp']:.2f} pp"
                 for k, v in s["settings"].items()]
        fp32 = ", ".join(f"{k} {100 * m['fp32_accuracy']:.2f} %" for k, m in s["models"].items())
        print(f"seed {seed}: fp32 {fp32}; " + "; ".join(parts)
              + f" ({s['seconds']:.0f} s)", flush=True)
    comparisons = {name: compare(seeds, name) for name in SETTINGS}
    text = table(seeds, comparisons)
    models = ", ".join(f"{k} = {'-'.join(map(str, v))}" for k, v in MODELS.items())
    print(f"\nPost-training quantization of MLPs on digits ({models}), seeds {seed_ids[0]}..{seed_ids[-1]}; "
          "accuracy drop vs fp32 on valid + test (897 images), mean [95 % t-interval]; random = mean over "
          f"{args.random} equal-size allocations per seed (all of them when fewer exist: "
          + ", ".join(f"{k} {seeds[0]['settings'][k]['random']['pool']}" for k in SETTINGS) + ")")
    print(text)
    for name, c in comparisons.items():
        print(f"\n{name}: relative improvement over random (accuracy drop, lower is better)")
        print(c["protocol_table"])
    probe = width_probe(args.probe_seeds, args) if args.probe_seeds else None
    if probe is not None:
        print(f"\nWidth probe: every layer in one format, accuracy drop pp vs fp32 (valid + test), seeds "
              f"0..{args.probe_seeds - 1}, mean [95 % t-interval]")
        print(probe_table(probe))
    joint = run_joint(list(range(args.joint_seeds)), args, args.workdir) if args.joint_seeds else None
    if joint is not None:
        print(f"\nJoint architecture x precision search, size_bits <= {args.budget_bits:,}, {args.trials} evaluations, "
              f"seeds 0..{args.joint_seeds - 1}; accuracy of the exported pick (loaded from its files) on the test "
              "split, mean [95 % t-interval]; the search selected on valid")
        print(joint_table(joint))
        print(joint["protocol_table"])
    report = {
        "experiment": "precision_hawq", "issue": "21 part 3 (HAWQ allocation)",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "commit": git_commit(),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpus": os.cpu_count(), "threads": torch.get_num_threads()},
        "settings": {"mlp": list(SIZES), "models": {k: list(v) for k, v in MODELS.items()}, "epochs": args.epochs,
                     "seeds": seed_ids,
                     "random_allocations": args.random, "equal_size_band": [EQUAL_SIZE, 1.0],
                     "hutchinson": {"max_samples": args.samples, "rtol": args.rtol}, "budgets": SETTINGS,
                     "evaluation": "valid + test splits of nas.datasets.digits_splits(seed)",
                     "hessian_data": "train split (900 images), one full batch"},
        "comparisons": comparisons,
        "seeds": seeds,
        "table": text,
        "width_probe": probe,
        "probe_table": probe_table(probe) if probe is not None else None,
        "joint": joint,
        "joint_table": joint_table(joint) if joint is not None else None,
    }
    write_report(out_path, report, started)
    return report


if __name__ == "__main__":
    main()
