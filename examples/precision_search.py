"""Joint architecture x precision one-shot search on digits, exported under a model-size budget.

Each of the MLP's layers picks a width and a number format (int4, int8, fp8-e4m3, fp8-e5m2, fp32): one
weight-sharing supernet is trained once with the sandwich rule over widths and formats (fake quantization,
straight-through), every candidate is scored with inherited weights, and its size in bits and per-format
roofline latency / analytic energy on a device profile are cheap metrics, checked before any evaluation. The
search keeps `size_bits <= BUDGET`; the most accurate pick is exported with the normal export path
(`nas.export`), and its size is measured on the exported files (ONNX initializers and the saved state_dict).

    .venv/bin/python examples/precision_search.py             # ~30 s on one core
    .venv/bin/python examples/precision_search.py --quick     # a smoke run (tests/test_quantization.py)
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

import nas
from nas.datasets import digits_splits
from nas.export import export
from nas.hardware.packing import exported_size
from nas.hardware.precision_space import PrecisionMLPConfig, PrecisionMLPSpace
from nas.measure import accuracy_metric
from nas.modelspec import DataRef, record_model
from nas.spaces.training import SandwichRule, accuracy

DEVICE = "jetson_orin_nano"  # int8 at its tensor-core rate; no fp8 or int4 units: those run at float16 / int8 rates
BUDGET_BITS = 40_000        # the largest network in fp32 stores 283,776 bits (8,832 weights + biases)


def train_supernet(epochs: int = 40, seed: int = 0) -> tuple[PrecisionMLPSpace, dict, torch.nn.Module, float]:
    """(space, digits splits, supernet trained by the sandwich rule over widths and formats, seconds)."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    space = PrecisionMLPSpace(PrecisionMLPConfig(hidden=(64, 64)))
    data = digits_splits(seed=seed)
    supernet = space.supernet()
    log = SandwichRule(epochs=epochs, n_random=2, seed=seed).fit(supernet, *data["train"])
    return space, data, supernet.eval(), log.seconds


def search_and_export(workdir: str | Path, space: PrecisionMLPSpace, data: dict, supernet: torch.nn.Module,
                      budget_bits: int = BUDGET_BITS, trials: int = 60, seed: int = 0, strategy: str = "nsga2",
                      train_seconds: float | None = None) -> dict[str, Any]:
    """Search under `size_bits <= budget_bits`, export the most accurate pick, measure the exported files."""
    workdir = Path(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    spec = record_model(workdir, space, supernet=supernet, data=DataRef.of(digits_splits, seed=seed),
                        metrics={"accuracy_pct": accuracy_metric("valid", scale=100)},
                        notes={"train_seconds": train_seconds, "device": DEVICE})
    costs = nas.cheap(lambda arch: space.cost(arch, DEVICE).metrics())  # size_bits, latency_ms, energy_uj
    result = nas.search(space, [costs, spec.evaluator(supernet, data)], {"accuracy_pct": "max", "energy_uj": "min"},
                        constraints=[f"size_bits <= {budget_bits}"], strategy=strategy, budget=trials, seed=seed,
                        workdir=workdir)
    report = export(result, workdir / "models", top=1, data=data)  # the front's most accurate member
    model = report.models[0]
    pick = next(t for t in result.trials if t.number == model.trial)
    exported = nas.load_subnet(model.path)  # as a user loads it: space.build(arch) + weights.pt
    held_out = 100.0 * accuracy(exported, *data["test"])  # the search selected on "valid"; "test" it never saw
    return {"test_accuracy_pct": held_out, "budget_bits": budget_bits, "strategy": strategy, "seed": seed, "arch": space.validate(pick.arch).to_dict(),
            "searched": model.searched, "measured_accuracy_pct": model.measured["accuracy_pct"],
            "exported": exported_size(model.path).to_dict(), "onnx": model.checks.get("onnx", {}),
            "supernet_max_abs_diff": model.checks.get("supernet_max_abs_diff"),
            "feasible": len(result.feasible), "trials": len(result.trials), "path": str(model.path)}


def main(workdir: str | Path = "runs/precision-search", budget_bits: int = BUDGET_BITS, trials: int = 60,
         epochs: int = 40, seed: int = 0, strategy: str = "nsga2") -> dict[str, Any]:
    """Train the supernet, search under the size budget, export the best pick; returns the figures."""
    space, data, supernet, seconds = train_supernet(epochs, seed)
    out = search_and_export(workdir, space, data, supernet, budget_bits, trials, seed, strategy, seconds)
    largest = space.largest()
    inherited = space_accuracy(space, data, supernet)
    return {**out, "largest_fp32_bits": space.size_bits(largest), "largest_fp32_accuracy_pct": inherited(largest)}


def space_accuracy(space: PrecisionMLPSpace, data: dict, supernet: torch.nn.Module) -> Any:
    """Inherited-weight validation accuracy (%) of any architecture (what the search scores)."""
    def evaluate(arch: Any, split: str = "valid") -> float:
        return 100.0 * accuracy(supernet.subnet(space.validate(arch)), *data[split])

    return evaluate


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 epochs, 12 trials")
    ap.add_argument("--budget-bits", type=int, default=BUDGET_BITS)
    ap.add_argument("--workdir", default="runs/precision-search")
    args = ap.parse_args()
    logging.getLogger("nas").setLevel(logging.ERROR)
    out = main(args.workdir, args.budget_bits, *((12, 3) if args.quick else (60, 40)))
    size = out["exported"]
    print(f"best under {out['budget_bits']:,} bits: {out['arch']}")
    print(f"  validation accuracy {out['searched']['accuracy_pct']:.2f} % searched, {out['measured_accuracy_pct']:.2f} % "
          f"re-measured on the export (test split: {out['test_accuracy_pct']:.2f} %); largest fp32 network "
          f"{out['largest_fp32_accuracy_pct']:.2f} % at {out['largest_fp32_bits']:,} bits")
    print(f"  size: {out['searched']['size_bits']:,.0f} bits searched; exported ONNX initializers "
          f"{size['onnx_parameter_bits']:,} bits (+{size['onnx_other_bits']} bits of decoding constants), "
          f"state_dict tensors {size['state_tensor_bits']:,} bits; files {size['onnx_file_bytes']:,} B (ONNX), "
          f"{size['state_file_bytes']:,} B (weights.pt)")
    print(f"  {DEVICE}: {out['searched']['latency_ms'] * 1e3:.3f} us roofline, {out['searched']['energy_uj']:.4f} uJ; "
          f"onnxruntime vs torch max |diff| {out['onnx'].get('onnxruntime_max_abs_diff')}")
