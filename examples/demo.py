"""The end-to-end demo: train a small OFA/BigNAS supernet on MNIST-1D, search accuracy against CPU latency,
then export the Pareto-optimal subnets as standalone models and verify them.

    ./dev.sh demo                  # or: .venv/bin/python examples/demo.py [--quick] [--epochs 10] [--budget 60] [--seed 0]
    nas export runs/demo --out runs/demo/models --verify     # export again later, from the workdir alone

1. MNIST-1D (generated locally by the `mnist1d` package, nothing downloaded): 3,500 train / 500 valid /
   1,000 test signals of length 40, 10 classes.
2. A weight-sharing supernet (`nas.spaces.ofa`: elastic resolution, depth, width, kernel, expand) trained
   with BigNAS's sandwich rule: per step the largest, the smallest and one random subnet.
3. A per-layer latency lookup table for this CPU (batch 1, one thread), built by timing each distinct layer,
   then calibrated on 16 whole subnets timed end to end (few-shot onboarding).
4. NSGA-II over the space: `accuracy_pct` is the subnet's validation accuracy with inherited weights (batch
   norm recalibrated, no training), `latency_ms` the lookup-table latency; `test_accuracy_pct` is reported
   but never optimised.
5. The Pareto front as a table and a plot, every front member exported (weights, ONNX, model card) and
   verified: reloaded from its files, accuracy re-measured, latency measured end to end on this CPU.

Everything goes to runs/demo (replaced on every run; a folder the demo did not write is refused, never deleted). `nas run examples/demo.py` runs step 4 alone on a
supernet trained on first use (that workdir cannot be exported: it records no model spec).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

import nas
from nas.spaces.ofa import OFAConfig, OFASpace

ROOT = Path(__file__).resolve().parents[1]
THREADS = 1  # small and fixed: latencies stay comparable, and two cores are enough
EPOCHS = 10
ONBOARD = 16  # whole subnets timed to calibrate the per-layer table

space = OFASpace(OFAConfig(resolutions=(32, 40), expands=(2, 4), widths=(0.5, 1.0)))
objectives = {"accuracy_pct": "max", "latency_ms": "min"}
strategy = "nsga2"
strategy_options = {"population_size": 12}
budget = 60
CALIBRATION = {"split": "train", "size": 1000, "batch_size": 250}


def metric_recipes(rounds: int = 20) -> dict[str, dict[str, Any]]:
    """How each metric is (re-)measured: accuracies on held-out splits, latency on this CPU (batch 1; all
    exported models timed together in `rounds` interleaved rounds of 5 runs)."""
    from nas.measure import accuracy_metric, latency_metric

    return {"accuracy_pct": accuracy_metric("valid"), "test_accuracy_pct": accuracy_metric("test"),
            "latency_ms": latency_metric(batch_size=1, threads=THREADS, statistic="round_min", warmup=2, repeats=5,
                                         rounds=rounds)}


def train_supernet(data: dict, epochs: int, seed: int, train_size: int | None = None) -> tuple[torch.nn.Module, float]:
    """A supernet trained with the sandwich rule (largest + smallest + 1 random subnet per step); (net, seconds)."""
    from nas.spaces.training import SandwichRule

    torch.manual_seed(seed)
    supernet = space.supernet()
    x, y = data["train"]
    if train_size:
        x, y = x[:train_size], y[:train_size]
    log = SandwichRule(epochs=epochs, batch_size=256, n_random=1, lr=5e-3, seed=seed).fit(supernet, x, y)
    return supernet.eval(), log.seconds


def lut_latency_evaluator(path: Path, warmup: int = 2, repeats: int = 3, progress: Any = None,
                          onboard: int = ONBOARD) -> nas.Evaluator:
    """Build (or resume) the per-layer latency table of `space` on this CPU; a cheap `latency_ms` evaluator.

    A sum of per-layer times misses what whole networks add (about -11 % here), so the table is calibrated
    on `onboard` whole subnets timed end to end (few-shot onboarding, docs/hardware.md).
    """
    import numpy as np

    from nas.hardware import adapter_for, build_table, lut_latency
    from nas.measure import time_architectures

    adapter = adapter_for(space)
    table = build_table(adapter, path, device="cpu", batch_size=1, threads=THREADS, warmup=warmup,
                        repeats=repeats, progress=progress).with_statistic("round_min")
    latency = lut_latency(table, adapter)
    if onboard:
        rng = np.random.default_rng(0)
        archs = list({a.id: a for a in (space.sample(rng) for _ in range(4 * onboard))}.values())[:onboard]
        # timed as export and `nas verify` re-measure them: the recipe's input, threads, rounds and statistic
        latency = latency.onboard(archs, time_architectures(space, archs, metric_recipes()["latency_ms"]))
    return nas.cheap(lambda arch: {"latency_ms": latency.latency_ms(arch)})


def evaluate(arch: Any) -> dict[str, float]:
    """`nas run` entry point: inherited accuracy from a supernet trained on first use, plus LUT latency."""
    accuracy, latency = _run_evaluators()
    return {**accuracy(arch), **latency(arch)}


@lru_cache(maxsize=1)
def _run_evaluators() -> tuple[Any, Any]:
    from nas.datasets import mnist1d_splits
    from nas.modelspec import DataRef, ModelSpec, space_to_json

    torch.set_num_threads(THREADS)
    data = _data(0)
    supernet, _ = train_supernet(data, EPOCHS, 0)
    spec = ModelSpec(space_to_json(space), "supernet", DataRef.of(mnist1d_splits, seed=0), CALIBRATION,
                     metric_recipes())
    cache = ROOT / "runs" / "luts" / "demo-ofa-cpu-b1-t1-round-min.jsonl"
    return spec.evaluator(supernet, data), lut_latency_evaluator(cache).fn


@lru_cache(maxsize=2)
def _data(seed: int) -> dict:
    from nas.datasets import mnist1d_splits

    return mnist1d_splits(seed=seed)


def _positive(text: str) -> int:
    """An argparse type: an int >= 1 (a budget or epoch count), refused in one `error:` line before any work."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return value


def _demo_workdir(workdir: Path) -> bool:
    """Whether `workdir` may be deleted: empty, a search the demo journaled (its header's metadata names the demo),
    or what an interrupted demo left before its journal existed (its model.json, supernet and latency table)."""
    import json

    from nas.errors import NASError
    from nas.modelspec import MODEL_SPEC, SUPERNET, space_to_json
    from nas.store import JOURNAL, Journal

    names = {p.name for p in workdir.iterdir()} if workdir.is_dir() else {"?"}
    if JOURNAL in names:
        try:
            return bool((Journal(workdir).read().config.get("metadata") or {}).get("demo"))
        except (NASError, OSError, ValueError):
            return False
    if not names:
        return True
    if not names <= {MODEL_SPEC, SUPERNET, "latency_lut.jsonl"} or MODEL_SPEC not in names:
        return False
    try:
        spec = json.loads((workdir / MODEL_SPEC).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(spec, dict) and (spec.get("data") or {}).get("function") == "nas.datasets.mnist1d_splits"
            and spec.get("space") == json.loads(json.dumps(space_to_json(space))))


class _EpochBar(logging.Handler):
    """Advances a rich progress task on each "epoch i/n" record the training schedule logs."""

    def __init__(self, progress: Any, task: Any) -> None:
        super().__init__(logging.INFO)
        self.progress, self.task = progress, task

    def emit(self, record: logging.LogRecord) -> None:
        if "epoch" in str(record.msg) and record.args and len(record.args) >= 4:
            _, epoch, epochs, loss = record.args[:4]
            self.progress.update(self.task, completed=epoch, total=epochs, info=f"loss {loss:.3f}")


def main(argv: list[str] | None = None) -> nas.SearchResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from nas.console import make_console
    from nas.datasets import mnist1d_splits
    from nas.export import export
    from nas.modelspec import DataRef, record_model
    from nas.plot import plot_pareto
    from nas.report import SearchProgress, export_table, pareto_table, verify_table

    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--epochs", type=_positive, default=EPOCHS, help="supernet training epochs")
    parser.add_argument("--budget", type=_positive, default=budget, help="architectures the search evaluates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "demo",
                        help="results folder; deleted and rewritten on every run (only one the demo wrote)")
    parser.add_argument("--lut", type=Path, default=None,
                        help="latency table file, resumed when it exists [default: WORKDIR/latency_lut.jsonl]")
    parser.add_argument("--quick", action="store_true",
                        help="smoke-test settings: 512 training signals, few latency repeats")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    start = time.time()
    console = make_console()
    workdir: Path = args.workdir
    if workdir.exists():
        if not _demo_workdir(workdir):
            console.print(f"error: --workdir {workdir} holds files the demo did not write; the demo replaces only "
                          "its own results: pick another --workdir", style="red", soft_wrap=True)
            raise SystemExit(2)
        shutil.rmtree(workdir)  # every demo run starts fresh
    workdir.mkdir(parents=True)

    def bar(label: str) -> Progress:
        return Progress(TextColumn(f"[bold]{label:<10}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)

    console.print(f"1/5 data: MNIST-1D generated locally (seed {args.seed})", soft_wrap=True)
    data = _data(args.seed)
    console.print(f"2/5 supernet: {space.size():,} architectures in one set of weights; sandwich rule, "
                  f"{args.epochs} epochs on {THREADS} CPU thread", soft_wrap=True)
    train_log = logging.getLogger("nas.spaces.training")
    with bar("train") as progress:
        handler = _EpochBar(progress, progress.add_task("train", total=args.epochs, info=""))
        train_log.addHandler(handler)
        old_level = train_log.level
        train_log.setLevel(logging.INFO)
        try:
            supernet, train_seconds = train_supernet(data, args.epochs, args.seed, 512 if args.quick else None)
        finally:
            train_log.removeHandler(handler)
            train_log.setLevel(old_level)
    spec = record_model(workdir, space, supernet=supernet, data=DataRef.of(mnist1d_splits, seed=args.seed),
                        calibration=CALIBRATION, metrics=metric_recipes(1 if args.quick else 20),
                        notes={"train_seconds": round(train_seconds, 1), "schedule": "SandwichRule",
                               "epochs": args.epochs, "seed": args.seed, "dataset": "MNIST-1D"})

    console.print("3/5 latency lookup table: each distinct layer timed on this CPU (batch 1), calibrated on "
                  f"{ONBOARD} whole subnets", soft_wrap=True)
    with bar("profile") as progress:
        task = progress.add_task("profile", total=None, info="")
        lut = args.lut if args.lut is not None else workdir / "latency_lut.jsonl"
        latency = lut_latency_evaluator(lut, *((1, 3) if args.quick else (3, 15)),
                                        progress=lambda done, total: progress.update(task, completed=done,
                                                                                     total=total, info=""))

    console.print(f"4/5 search: {strategy} over {args.budget} architectures, inherited accuracy vs "
                  "lookup-table latency", soft_wrap=True)
    problem = nas.Problem.make(objectives)
    with SearchProgress(console, problem, args.budget) as progress:
        result = nas.search(space, [latency, spec.evaluator(supernet, data)], objectives=objectives,
                            strategy=strategy, strategy_options=strategy_options, budget=args.budget,
                            seed=args.seed, workdir=workdir, progress=progress,
                            metadata={"demo": str(Path(__file__).resolve()),
                                      "latency": f"lookup table (round_min), calibrated on {ONBOARD} measured subnets"})
    console.print(pareto_table(result))
    plot = plot_pareto(result, workdir / "pareto.png", ["latency_ms", "accuracy_pct"])

    console.print("5/5 export and verify: every front member as a standalone model, reloaded and re-measured",
                  soft_wrap=True)
    report = export(result, workdir / "models", data=data, verify=True)
    console.print(report.note, soft_wrap=True)
    console.print(export_table(report))
    if report.verify is not None:
        console.print(verify_table(report.verify))
    console.print(f"done in {time.time() - start:.0f} s; everything is in {workdir}:", soft_wrap=True)
    for name, what in [("journal.jsonl", f"the search's trials (nas status {workdir})"),
                       ("model.json, supernet.pt", "how to rebuild any subnet: model spec and supernet weights"),
                       (lut.name if lut.parent == workdir else str(lut), "the per-layer latency table of this CPU"),
                       (plot.name, "the Pareto plot (front in red, dominated trials in grey)"),
                       ("models/", f"{len(report.models)} exported models: weights.pt, model.onnx, card.md, "
                                   "card.json, arch.json each; export.json, verify.json")]:
        console.print(f"  {name:<24} {what}", soft_wrap=True)
    first = report.models[0].path if report.models else workdir / "models"
    console.print(f"load one: python -c \"import nas; print(nas.load_subnet('{first}'))\"", soft_wrap=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
