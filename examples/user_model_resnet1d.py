"""A user's own model searched end to end: a small 1-D ResNet on MNIST-1D written with `nas.nn`.

Choices: the width of the network (one label ties every layer's channels), the number of residual blocks,
and per block its type (a basic two-conv block or an inverted bottleneck with a depthwise conv) and kernel.
The script goes from the model to exported Pareto subnets in one run:

1. train the weight-sharing supernet with the sandwich rule (in-place distillation);
2. record how to rebuild its subnets (`record_model`: supernet weights, data, batch-norm calibration);
3. profile a per-layer latency lookup table of this CPU (`build_table` on the space's `NNLayers`);
4. NSGA-II over inherited accuracy (subnet sliced, BN recalibrated, no training) x LUT latency (ms);
5. export every Pareto pick (`nas.export.export`, what `nas export WORKDIR --out WORKDIR/models` does):
   weights, a `torch.export` program `model.pt2`, ONNX, a model card with latency re-measured end to end;
6. check each export in a fresh process against the supernet with the pick active (BN recalibrated the
   same way): `model.pt2` with plain torch and the ONNX file with onnxruntime before the toolkit is
   imported (`python -I`: no PYTHONPATH, no script folder on the path), then `nas.load_subnet`.

    python examples/user_model_resnet1d.py            # the full run (see docs/model_space.md for its time)
    python examples/user_model_resnet1d.py --quick    # a smoke run of well under a minute (what the test runs)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import nas
from nas import nn as nnn
from nas.datasets import mnist1d_splits
from nas.export import export
from nas.hardware import adapter_for, build_table, lut_latency
from nas.measure import accuracy_metric, count_metric, latency_metric
from nas.modelspec import DataRef, record_model
from nas.spaces.training import SandwichRule


class Basic(nn.Module):
    """conv k -> BN -> ReLU -> conv k -> BN, added to the input."""

    def __init__(self, width: nnn.Choice, kernel: nnn.Choice) -> None:
        super().__init__()
        self.body = nn.Sequential(nnn.Conv1d(width, width, kernel, padding="same", bias=False), nnn.BatchNorm1d(width),
                                  nn.ReLU(), nnn.Conv1d(width, width, kernel, padding="same", bias=False),
                                  nnn.BatchNorm1d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class Inverted(nn.Module):
    """1x1 expand (x2) -> depthwise k -> 1x1 project, added to the input (MobileNetV2-style)."""

    def __init__(self, width: nnn.Choice, kernel: nnn.Choice) -> None:
        super().__init__()
        mid = width * 2
        self.body = nn.Sequential(nnn.Conv1d(width, mid, 1, bias=False), nnn.BatchNorm1d(mid), nn.ReLU(),
                                  nnn.Conv1d(mid, mid, kernel, padding="same", groups=mid, bias=False),
                                  nnn.BatchNorm1d(mid), nn.ReLU(), nnn.Conv1d(mid, width, 1, bias=False),
                                  nnn.BatchNorm1d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet1d(nnn.ModelSpace):
    """Stem (stride 2) -> `depth` residual blocks -> global average pool -> linear classifier."""

    input_shape = (40,)

    def __init__(self) -> None:
        super().__init__()
        width = nnn.Choice("width", [16, 24, 32])
        self.stem = nn.Sequential(nnn.Conv1d(1, width, 5, stride=2, padding=2, bias=False), nnn.BatchNorm1d(width),
                                  nn.ReLU())

        def block(i: int) -> nn.Module:  # one kernel and one type decision per block
            kernel = nnn.Choice("kernel", [3, 5, 7])
            return nnn.LayerChoice({"basic": Basic(width, kernel), "inverted": Inverted(width, kernel)}, label="type")

        self.blocks = nnn.Repeat(block, depth=nnn.Choice("depth", [1, 2, 3, 4]))
        self.head = nnn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x.unsqueeze(1)))
        return self.head(x.mean(dim=-1))


# Run in a fresh `python -I` (no PYTHONPATH, no script folder on the path). First plain torch and onnxruntime
# only (the toolkit is not imported), then what a user who loads the models with `nas.load_subnet` gets.
FRESH_CHECK = """
import json, sys, torch
folders, x_file, out_file = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
x = torch.load(x_file, weights_only=True)
out = {}
with torch.no_grad():
    for folder in folders:
        out[folder + ":program"] = torch.export.load(folder + "/model.pt2").module()(x)
        try:
            import onnxruntime
        except ImportError:
            continue
        session = onnxruntime.InferenceSession(folder + "/model.onnx")
        out[folder + ":onnx"] = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    assert not any(m == "nas" or m.startswith("nas.") for m in sys.modules), "the toolkit was imported"
    import nas
    for folder in folders:
        out[folder + ":load_subnet"] = nas.load_subnet(folder)(x)
torch.save(out, out_file)
"""


def fresh_process_checks(report, supernet, spec, data, x: torch.Tensor) -> list[dict]:
    """Max |output - supernet(x, arch)| of every exported model loaded three ways in a fresh process, the
    supernet's batch norm recalibrated for the pick exactly as the export's (and the search's) subnet."""
    folders = [str(m.path.resolve()) for m in report.models]
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(x, Path(tmp) / "x.pt")
        subprocess.run([sys.executable, "-I", "-c", FRESH_CHECK, json.dumps(folders), str(Path(tmp) / "x.pt"),
                        str(Path(tmp) / "out.pt")], check=True, cwd=tmp)
        outs = torch.load(Path(tmp) / "out.pt", weights_only=True)
    rows = []
    for m, folder in zip(report.models, folders):
        arch = json.loads((m.path / "arch.json").read_text())["arch"]
        spec.calibrated(supernet, data, call=lambda b: supernet(b, arch))
        with torch.no_grad():
            ref = supernet.eval()(x, arch)
        diff = {k: float((outs[f"{folder}:{k}"] - ref).abs().max())
                for k in ("program", "load_subnet", "onnx") if f"{folder}:{k}" in outs}
        rows.append({"trial": m.trial, "arch": arch, "path": str(m.path),
                     **{f"{k}_max_abs_diff": v for k, v in diff.items()}})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny training, search and checks")
    parser.add_argument("--epochs", type=int, default=20, help="sandwich-rule epochs over the training split")
    parser.add_argument("--budget", type=int, default=60, help="NSGA-II evaluations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="runs/resnet1d-example",
                        help="journal, model spec, latency table and exported models (must hold no search yet)")
    args = parser.parse_args(argv)
    epochs, budget, n_train, n_valid = (1, 6, 256, None) if args.quick else (args.epochs, args.budget, None, None)
    workdir = Path(args.workdir)
    if (workdir / "journal.jsonl").exists():
        raise SystemExit(f"{workdir} holds a search already: pass another --workdir (or remove that folder)")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    t0, c0 = time.perf_counter(), time.process_time()

    data = {k: (x[:n_train], y[:n_train]) if k == "train" else (x[:n_valid], y[:n_valid])
            for k, (x, y) in mnist1d_splits(seed=args.seed).items()}        # None: the whole split
    x, y = data["train"]
    space = ResNet1d.space()
    print(f"space: {space.size()} architectures, fields {list(space.fields)}")

    # 1. the supernet, trained once with the sandwich rule
    supernet = ResNet1d.supernet()
    SandwichRule(epochs=epochs, n_random=2, batch_size=128, lr=3e-3, seed=args.seed).fit(supernet, x, y)
    train_s = time.perf_counter() - t0
    print(f"supernet trained with the sandwich rule: {epochs} epochs in {train_s:.0f} s "
          f"({time.process_time() - c0:.0f} CPU s)")

    # 2. how export rebuilds a subnet: the supernet's slices, BN recalibrated on the first training signals
    spec = record_model(workdir, space, supernet=supernet.eval(), data=DataRef.of(mnist1d_splits, seed=args.seed),
                        calibration={"split": "train", "size": min(1000, len(x)), "batch_size": 250},
                        metrics={"accuracy": accuracy_metric("valid", scale=1),
                                 "latency_ms": latency_metric(statistic="min", warmup=2,
                                                              repeats=5 if args.quick else 10,
                                                              rounds=2 if args.quick else 10),
                                 "params": count_metric("params")},
                        notes={"train_seconds": round(train_s, 1), "epochs": epochs})

    # 3. a per-layer latency table of this CPU (`nas hardware build-lut examples/user_model_resnet1d.py:ResNet1d`)
    t = time.perf_counter()
    adapter = adapter_for(space)
    table = build_table(adapter, workdir / "lut.jsonl", rounds=1 if args.quick else 10).with_statistic("min")
    latency = lut_latency(table, adapter)
    print(f"latency table: {len(table)} distinct layers profiled in {time.perf_counter() - t:.0f} s "
          f"({workdir / 'lut.jsonl'})")

    # 4. NSGA-II over inherited accuracy x LUT latency (cheap: computed first)
    inherited = spec.evaluator(supernet, data)                 # {"accuracy": ...} of the recalibrated subnet
    lut_ms = nas.cheap(lambda arch: {"latency_ms": latency.latency_ms(arch)})
    t = time.perf_counter()
    result = nas.search(space, [lut_ms, inherited], {"accuracy": "max", "latency_ms": "min"}, strategy="nsga2",
                        budget=budget, seed=args.seed, workdir=workdir)
    print(f"NSGA-II: {len(result.trials)} architectures evaluated in {time.perf_counter() - t:.0f} s")

    # 5. export the front (the same as `nas export WORKDIR --out WORKDIR/models`)
    t = time.perf_counter()
    report = export(result, workdir / "models", data=data)
    print(f"exported {len(report.models)} Pareto subnets to {report.out} in {time.perf_counter() - t:.0f} s; "
          f"{report.note}")

    # 6. a fresh process: model.pt2 with plain torch, ONNX, nas.load_subnet; against the supernet
    t = time.perf_counter()
    checks = fresh_process_checks(report, supernet, spec, data, data["valid"][0][:64])
    print(f"fresh-process checks in {time.perf_counter() - t:.0f} s")
    print(f"Pareto front ({len(report.models)} of {len(result.trials)} evaluated; {time.perf_counter() - t0:.0f} s, "
          f"{time.process_time() - c0:.0f} CPU s in this process):")
    print(f"{'trial':>5} {'LUT ms':>7} {'measured ms':>11} {'accuracy':>8}  {'max |Δ| pt2 / load_subnet / onnx':<34}"
          "architecture")
    front = []
    for m, c in zip(report.models, checks):
        blocks = " ".join(f"{b['type'][0]}{b['kernel']}" for b in c["arch"]["blocks"])
        diffs = " / ".join(f"{c.get(k + '_max_abs_diff', float('nan')):.1e}"
                           for k in ("program", "load_subnet", "onnx"))
        print(f"{m.trial:5d} {m.searched['latency_ms']:7.3f} {m.measured['latency_ms']:11.3f} "
              f"{m.searched['accuracy']:8.3f}  {diffs:<34}width {c['arch']['width']}, blocks [{blocks}]")
        front.append({**c, "accuracy": m.searched["accuracy"], "measured_accuracy": m.measured["accuracy"],
                      "latency_ms": m.searched["latency_ms"], "measured_latency_ms": m.measured["latency_ms"]})
    worst = {k: max(c[f"{k}_max_abs_diff"] for c in checks) for k in ("program", "load_subnet", "onnx")
             if all(f"{k}_max_abs_diff" in c for c in checks)}
    if worst["program"] > 1e-5 or worst["load_subnet"] > 1e-5 or worst.get("onnx", 0.0) > 1e-4:
        raise SystemExit(f"an exported model differs from the supernet: max |Δ| {worst}")
    onnx = f"ONNX {worst['onnx']:.1e} (atol 1e-4)" if "onnx" in worst else "ONNX not run (no onnxruntime)"
    print(f"a fresh process agrees with the supernet: max |Δ| model.pt2 {worst['program']:.1e}, nas.load_subnet "
          f"{worst['load_subnet']:.1e} (atol 1e-5), {onnx}; {time.perf_counter() - t0:.0f} s in all")
    return {"front": front, "worst": worst, "seconds": time.perf_counter() - t0, "workdir": str(workdir),
            "evaluated": len(result.trials)}


if __name__ == "__main__":
    main()
