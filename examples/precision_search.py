"""Joint architecture x precision one-shot search on digits, exported under a model-size budget.

Each of the MLP's layers picks a width and a number format (int4, int8, fp8-e4m3, fp8-e5m2, fp32): one
weight-sharing supernet is trained once with the sandwich rule over widths and formats (fake quantization,
straight-through), every candidate is scored with inherited weights, and its size in bits and per-format
roofline latency / analytic energy on a device profile are cheap metrics, checked before any evaluation. The
search keeps `size_bits <= BUDGET`; the most accurate pick is exported with the normal export path
(`nas.export`), and its size is measured on the exported files (ONNX initializers and the saved state_dict).

    .venv/bin/python examples/precision_search.py             # ~30 s on one core
    .venv/bin/python examples/precision_search.py --quick     # a smoke run (tests/test_quantization.py)

`--workdir` must be new, empty, or hold a previous run of this example; a previous run is replaced only with
`--overwrite` (its supernet is retrained, so its journal cannot be resumed), and any other folder is refused:
the example never deletes files it did not write.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

import nas
from nas.datasets import digits_splits
from nas.errors import ConfigError
from nas.export import export
from nas.hardware.packing import exported_size
from nas.hardware.precision_space import PrecisionMLPConfig, PrecisionMLPSpace
from nas.measure import accuracy_metric
from nas.modelspec import DataRef, record_model
from nas.spaces.training import SandwichRule, accuracy
from nas.store import MODEL_SPEC, SEARCH_FILES

DEVICE = "jetson_orin_nano"  # int8 at its tensor-core rate; no fp8 or int4 units: those run at float16 / int8 rates
BUDGET_BITS = 40_000        # the largest network in fp32 stores 283,776 bits (8,832 weights + biases)
RUN_FILES = frozenset({*SEARCH_FILES, "models"})  # what a run writes into its workdir (search state, exports)


def prepare_workdir(workdir: str | Path, overwrite: bool = False) -> Path:
    """`workdir` ready for a fresh run: new or empty as it is; a previous run of this example cleared only with
    `overwrite`; anything else refused with a ConfigError (the example never deletes what it did not write)."""
    workdir = Path(workdir)
    if not workdir.exists():
        return workdir
    if not workdir.is_dir():
        raise ConfigError(f"workdir: {str(workdir)!r} is not a folder; give a new or empty folder")
    entries = sorted(p.name for p in workdir.iterdir())
    if not entries:
        return workdir
    foreign = [n for n in entries if n not in RUN_FILES]
    if foreign or not _is_previous_run(workdir):
        what = f"it holds {', '.join(foreign[:5])}, which this example does not write" if foreign else \
            f"no {MODEL_SPEC} of a {PrecisionMLPSpace.__name__} search"
        raise ConfigError(f"workdir: {str(workdir)!r} is not empty and is not a previous run of this example "
                          f"({what}); give a new or empty folder (nothing was deleted)")
    if not overwrite:
        raise ConfigError(f"workdir: {str(workdir)!r} holds a previous run of this example; pass --overwrite "
                          "(overwrite=True) to replace it, or give another --workdir")
    for name in entries:  # only the run's own files: the folder itself and anything else stay
        path = workdir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return workdir


def _is_previous_run(workdir: Path) -> bool:
    """Whether `workdir` records a search of this example's space (its model.json names PrecisionMLPSpace)."""
    try:
        spec = json.loads((workdir / MODEL_SPEC).read_text())
        return spec["space"]["class"] == f"{PrecisionMLPSpace.__module__}.{PrecisionMLPSpace.__name__}"
    except (OSError, ValueError, KeyError, TypeError):
        return False


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
                      train_seconds: float | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Search under `size_bits <= budget_bits`, export the most accurate pick, measure the exported files
    (`workdir` as `prepare_workdir` accepts it)."""
    workdir = prepare_workdir(workdir, overwrite)
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
         epochs: int = 40, seed: int = 0, strategy: str = "nsga2", overwrite: bool = False) -> dict[str, Any]:
    """Train the supernet, search under the size budget, export the best pick; returns the figures."""
    prepare_workdir(workdir, overwrite)  # refused before training, not after
    space, data, supernet, seconds = train_supernet(epochs, seed)
    out = search_and_export(workdir, space, data, supernet, budget_bits, trials, seed, strategy, seconds, overwrite)
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
    ap.add_argument("--workdir", default="runs/precision-search",
                    help="new or empty folder, or a previous run of this example (replaced with --overwrite)")
    ap.add_argument("--overwrite", action="store_true", help="replace a previous run of this example in --workdir")
    args = ap.parse_args()
    logging.getLogger("nas").setLevel(logging.ERROR)
    try:
        prepare_workdir(args.workdir, args.overwrite)
    except ConfigError as e:
        ap.error(str(e))
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
