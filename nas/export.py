"""Export a search's Pareto-optimal architectures as standalone models (`nas export DIR --out models/`).

For every pick (the Pareto front, optionally filtered by `constraint` and cut to the `top` N by the
first objective) `export` writes a directory:

    trial-0012/arch.json     the architecture, its id, the space it belongs to
    trial-0012/model.json    how `nas.load_subnet` rebuilds the module: space class + config, architecture
    trial-0012/weights.pt    the standalone module's state_dict (sliced from the supernet with batch norm
                             recalibrated, or the trial's trained weights), loaded with weights_only=True
    trial-0012/model.pt2     the same module as a torch.export program (batch dimension dynamic): loads with
                             plain torch, `torch.export.load(path).module()`, no model code needed
    trial-0012/model.onnx    the same network as ONNX (onnx.checker passed, run with onnxruntime); a network
                             opset 17 cannot express (FlexiBERT's `fourier` mixer) has none: a warning names
                             the trial and operator, and its card and export.json (`onnx.skipped`) say why
    trial-0012/model.int8.onnx   with `quantize="int8"`: model.onnx dynamically quantized by onnxruntime (weights
                             int8, activations quantized per batch at run time), loadable with onnxruntime alone
    trial-0012/card.md|json  model card: each objective's searched and re-measured value, device, seed, cost;
                             re-measured on the network the search priced (`space.build(arch)` + weights.pt,
                             eager), which `timed` names; for a space you wrote, the torch.export program's
                             own latency (what `nas.load_subnet` returns) is a separate, labelled figure

plus `export.json` (the picks and whether the search was complete) in `out`. The workdir must hold a
model spec (`nas.modelspec.record_model`). A search that is still running or was killed exports the
trials it completed, and the report says so. Of a search over a `FidelitySpace`, model.json records the base
space (the one that builds models), the picks are the top level's (as `best()` ranks them), and each exports
as its architecture without the fidelity field (`FidelitySpace.strip`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import logging
import os
import re
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas import jsonio
from nas.architecture import Architecture
from nas.errors import ConfigError
from nas.spaces.spec_difference import first_difference, space_difference
from nas.measure import Remeasured, Splits, accuracy_mismatches, plus_minus, remeasure_all, split
from nas.modelspec import (PROGRAM, SUBNET, TIMED, WEIGHTS, ModelSpec, OnnxModule, RecordedInput, dtype_name,
                           load_model_spec, load_priced, load_program, load_state_dict, load_subnet, load_supernet,
                           loads_by_build, onnx_session, save_program, save_state_dict, searched_space, standalone,
                           single_input, subnet_json)
from nas.objectives import Constraint
from nas.result import SearchResult
from nas.spaces.model_space import space_settings
from nas.stopping import rule_met
from nas.store import Journal, Trial, process_alive
from nas.strategies.multifidelity import FidelitySpace
from nas.verify import EXPORT_INDEX, VERIFY_REPORT, VerifyReport, disagreement
from nas.verify import verify as verify_export

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
ONNX_OPSET = 17
INT8_ONNX_FILE = "model.int8.onnx"
QUANTIZE = ("int8",)  # the values `quantize` / `nas export --quantize` take
INT8_METHOD = ("onnxruntime.quantization.quantize_dynamic: MatMul / Gemm / Conv / Gather weights int8, activations "
               "quantized to uint8 per batch at run time")


@dataclass
class ModelFile:
    """One file an exported pick ships as (fp32 weights, fp32 ONNX, int8 ONNX): its size and what was measured on it."""

    label: str
    file: str
    bytes: int
    measured: dict[str, float] = field(default_factory=dict)
    repeatability: dict[str, float] = field(default_factory=dict)


@dataclass
class ExportedModel:
    """One exported pick: where it went, its searched and re-measured metrics, and the self-checks."""

    trial: int
    arch_id: str
    path: Path
    searched: dict[str, float]
    measured: dict[str, float]
    checks: dict[str, Any] = field(default_factory=dict)  # supernet / onnx max abs differences
    repeatability: dict[str, float] = field(default_factory=dict)  # per latency metric, relative (nas.measure)
    files: list[ModelFile] = field(default_factory=list)  # with `quantize`: fp32 torch, fp32 ONNX, int8 ONNX
    timed: dict[str, str] = field(default_factory=dict)  # which network `measured` is of (modelspec.load_priced)
    program: dict[str, Any] = field(default_factory=dict)  # a space you wrote: model.pt2's own latency, labelled
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)  # per latency: how it was timed (nas.measure)


@dataclass
class ExportReport:
    """What `export` did: the models, whether the search was complete, and a one-line note saying so."""

    out: Path
    models: list[ExportedModel]
    complete: bool
    note: str
    objectives: list[str] = field(default_factory=list)
    verify: VerifyReport | None = None


# ---------------------------------------------------------------------------------------- picking
def _constraints(constraint: str | Constraint | Sequence[str | Constraint] | None,
                 result: SearchResult) -> list[Constraint]:
    if constraint is None:
        return []
    items = [constraint] if isinstance(constraint, (str, Constraint)) else list(constraint)
    known = {m for t in result.completed for m in t.metrics}
    out = []
    for c in items:
        con = c if isinstance(c, Constraint) else Constraint.parse(str(c))
        if known and con.metric not in known:
            raise ConfigError(f"constraint {str(con)!r}: {con.metric!r} is not a metric of this search "
                              f"({', '.join(sorted(known))})")
        out.append(con)
    return out


def pick(result: SearchResult, top: int | None = None, constraint: Any = None) -> list[Trial]:
    """The Pareto front of `result` (best first objective first), filtered by `constraint`, one trial per
    architecture (a re-evaluated architecture would be exported twice as the same network), cut to `top`."""
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ConfigError(f"top: expected a positive int (number of models to export), got {top!r}")
    extra = _constraints(constraint, result)
    front = result.pareto_front()
    for c in extra:
        lacking = [t.number for t in front if c.metric not in t.metrics]
        if lacking:
            log.warning("constraint %s: left out trial%s %s of the front, which recorded no %r", c,
                        "s" if len(lacking) > 1 else "", ", ".join(map(str, lacking)), c.metric)
    front = [t for t in front if all(c.metric in t.metrics and c.satisfied(t.metrics) for c in extra)]
    first: dict[str, Trial] = {}
    for t in front:
        if t.arch_id in first:
            log.info("trial %d is architecture %s again (trial %d): exported once", t.number, t.arch_id,
                     first[t.arch_id].number)
        first.setdefault(t.arch_id, t)
    front = list(first.values())
    return front[:top] if top is not None else front


def completeness(result: SearchResult) -> tuple[bool, str]:
    """(complete, note): whether the search used its budget (or exhausted its space), in words."""
    used = result.used
    budget = int(result.config.get("budget") or 0)
    if used >= budget or result.stop_reason == "exhausted":
        return True, f"search complete: {used} of {budget} evaluations"
    rule = rule_met(result.stop_reason)
    if rule is not None:
        return True, f"search complete: its stop rule held ({rule}) after {used} of {budget} evaluations"
    return False, (f"search incomplete (still running, or stopped): {used} of {budget} evaluations in the journal; "
                   "exporting the Pareto front of the trials completed so far")


# ---------------------------------------------------------------------------------------- files
def _onnx(module: torch.nn.Module, example: torch.Tensor, path: Path, check_x: torch.Tensor) -> dict[str, Any]:
    """Write ONNX (dynamic batch), run onnx.checker, and compare onnxruntime's outputs with torch's.

    A network the exporter cannot convert (an operator opset 17 lacks, e.g. `aten::fft_fft2` of FlexiBERT's
    `fourier` mixer) or whose file fails the checker gets no `model.onnx`: the result says why under `skipped`
    (and names the operator under `op` when the exporter did), and the pick's other files are written as usual.
    """
    try:
        import onnx
    except ImportError:
        return {"file": None, "skipped": "onnx is not installed"}
    try:
        with warnings.catch_warnings(), _quiet_onnx_log():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              opset_version=ONNX_OPSET)
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    except Exception as e:  # the exporter raises many kinds (unsupported operator, tracing, symbolic, checker)
        path.unlink(missing_ok=True)
        why = _first_line(e)
        op = re.search(r"operator '([^']+)'", str(e))
        return {"file": None, "skipped": f"torch.onnx.export (opset {ONNX_OPSET}) cannot convert this network",
                "error": why, **({"op": op.group(1)} if op else {})}
    info: dict[str, Any] = {"file": path.name, "opset": ONNX_OPSET, "checker": "passed",
                            "input": "input [batch, ...]", "output": "output [batch, classes]"}
    try:
        session = onnx_session(path)
    except ImportError:
        info["onnxruntime"] = "not installed"
        return info
    info["onnxruntime_max_abs_diff"] = _agreement(
        f"{path.parent.name}/{ONNX_FILE}", lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0]),
        module, check_x)
    return info


def _agreement(what: str, run: Callable[[torch.Tensor], torch.Tensor], module: nn.Module, x: torch.Tensor) -> float:
    """Max |run(b) - module(b)| over the check inputs at batch 1 and at all of `x`: an exported file fixes what the
    traced forward did at the traced batch of 2 (a branch on `x.shape[0]`, say), so disagreeing at either batch
    size, or failing there, is an error naming it."""
    worst = 0.0
    for batch in sorted({1, len(x)}):
        xb = x[:batch]
        with torch.no_grad():
            want = module(xb)
            try:
                got = run(xb)
            except Exception as e:  # torch.export's input guards, onnxruntime's shape checks: many kinds
                raise ConfigError(f"{what}: fails at batch size {batch} ({_first_line(e)}), where the network "
                                  f"({type(module).__qualname__}) runs; exported models must take any batch size") from None
        diff, tolerance = disagreement(got, want)
        if not diff <= tolerance:
            raise ConfigError(f"{what}: disagrees with the network ({type(module).__qualname__}) at batch size {batch} "
                              f"(max |diff| {diff:.3g}, above {tolerance:.2g}): its forward depends on the batch size "
                              "(e.g. `if x.shape[0] > 1`), "
                              "which the exported file fixed at the traced batch of 2; make forward the same "
                              "computation for every batch size")
        worst = max(worst, diff)
    return worst


def _warn_no_onnx(trial: Trial, arch: Architecture, info: dict[str, Any]) -> None:
    """Say which pick has no model.onnx and why; the export goes on (no need to rerun it with --no-onnx)."""
    what = f"the operator {info['op']}" if info.get("op") else "this network"
    log.warning("trial %d (%s): no %s: torch.onnx.export (opset %d) cannot convert %s (%s). Its other files "
                "are written and its card.json and export.json say why; the other picks are unaffected, so "
                "--no-onnx is not needed", trial.number, arch.id[:8], ONNX_FILE, ONNX_OPSET, what, info["error"])


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


@contextlib.contextmanager
def _quiet_onnx_log() -> Iterator[None]:
    """Keep the TorchScript exporter from dumping the whole graph to stderr when a conversion fails (it logs
    through `torch._C._jit_onnx_log`, which its own verbosity switch leaves on); the failure is reported instead."""
    real = getattr(torch._C, "_jit_onnx_log", None)
    if real is None:
        yield
        return
    torch._C._jit_onnx_log = lambda *args: None
    try:
        yield
    finally:
        torch._C._jit_onnx_log = real


# What onnxruntime's quantizer logs on the root logger that export drops: that pre-processing (symbolic shape
# inference, 2 s a model here) could help, though quantize_dynamic quantizes every MatMul / Gemm / Gather without
# it; that a tensor it cannot infer the type of (a Slice output of a DARTS cell) stays float, with a many-line
# protobuf dump; and that the model may already be quantized, which `_quantize_int8` checks and says itself.
QUANTIZER_NOISE = ("pre-processing before quantization", "Inference failed or unsupported type to quantize",
                   "Please check if the model is already quantized")
EIGHT_BIT = ("int8", "uint8")  # weights stored as 8-bit codes (packed by nas.hardware, or quantized by onnxruntime)


class _DropQuantizerNoise(logging.Filter):
    """Drops onnxruntime's quantizer messages on the root logger (`QUANTIZER_NOISE`): hints and per-tensor notes
    that say nothing about the file written, whose check export reports instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in QUANTIZER_NOISE)


def _onnx_weights(path: Path) -> dict[str, tuple[str, int]]:
    """{initializer name: (numpy dtype name, number of dimensions)} of an ONNX file."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    graph = onnx.load(str(path)).graph
    return {i.name: (tensor_dtype_to_np_dtype(i.data_type).name, len(i.dims)) for i in graph.initializer}


def _quantize_int8(fp32: Path, example: torch.Tensor, x: torch.Tensor) -> dict[str, Any]:
    """Write `model.int8.onnx` beside `fp32` (onnxruntime dynamic quantization) and compare its outputs on `x`.

    Where onnxruntime quantized no weight (weights already packed as 8-bit codes, as `PrecisionMLPSpace`'s are, or
    none of the ops it quantizes) its file would be `model.onnx` relabelled: none is kept, a warning says so, and
    the result says why under `skipped`, as the card does."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = fp32.with_name(INT8_ONNX_FILE)
    noise = _DropQuantizerNoise()
    logging.getLogger().addFilter(noise)
    try:
        quantize_dynamic(fp32, path, weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().removeFilter(noise)
    before, after = _onnx_weights(fp32), _onnx_weights(path)
    quantized = sum(1 for name, (dtype, dims) in after.items() if name not in before and dtype in EIGHT_BIT and dims)
    if not quantized:
        path.unlink()
        packed = sorted({dtype for dtype, dims in before.values() if dtype in EIGHT_BIT and dims})
        why = (f"its weights are already packed as {'/'.join(packed)} codes" if packed else
               "it has no MatMul / Gemm / Conv / Gather weight onnxruntime quantizes")
        skipped = f"onnxruntime quantized no weight of {fp32.name} ({why}), so no int8 copy was written"
        log.warning("%s: %s", fp32.parent.name, skipped)
        return {"file": None, "skipped": skipped, "method": INT8_METHOD}
    shape = tuple(example.shape[1:])
    with torch.no_grad():
        want = OnnxModule(fp32, shape, example.dtype)(x)
        got = OnnxModule(path, shape, example.dtype)(x)
    return {"file": path.name, "format": "int8", "method": INT8_METHOD, "quantized_weights": quantized,
            "bytes": path.stat().st_size, "fp32_onnx_bytes": fp32.stat().st_size,
            "max_abs_diff_vs_fp32": float((got - want).abs().max()),
            "top1_agreement": float((got.argmax(-1) == want.argmax(-1)).float().mean())}


def _number_format(dtypes: set[str]) -> str:
    """A file's number format, from the dtypes of its weights: "fp32", or "packed uint8 codes + fp32" for weights
    stored as 8-bit codes with float scales (`PrecisionMLPSpace`). int64 tensors (batch-norm counters, shapes) are
    not weights."""
    kept = dtypes - {"int64"}
    floats = sorted("fp32" if d == "float32" else d for d in kept if d not in EIGHT_BIT)
    codes = sorted(kept & set(EIGHT_BIT))
    if codes:
        return f"packed {'/'.join(codes)} codes" + (f" + {'/'.join(floats)}" if floats else "")
    return "/".join(floats) or "fp32"


def _check_quantize(quantize: str | None, onnx: bool) -> None:
    if quantize is None:
        return
    if quantize not in QUANTIZE:
        raise ConfigError(f"quantize: expected one of {', '.join(QUANTIZE)}, got {quantize!r}")
    if not onnx:
        raise ConfigError(f"quantize: {quantize} quantizes model.onnx, so it needs onnx=True (drop --no-onnx)")
    if importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError(f"quantize: {quantize} needs onnxruntime (pip install onnxruntime)")


def _program(space_spec: dict[str, Any], module: torch.nn.Module, example: torch.Tensor, path: Path) -> dict[str, Any]:
    """Write `model.pt2`. A model of a toolkit space also reloads from its space, so a program torch.export
    cannot capture is only noted; for any other space the program is how it loads, and its failure is an error."""
    try:
        return save_program(module, example, path)
    except Exception as e:  # torch.export raises many kinds (unsupported op, data-dependent control flow, ...)
        why = _first_line(e)
        if not loads_by_build(space_spec, module):
            raise ConfigError(f"{type(module).__qualname__}: torch.export cannot capture this module, and a model of "
                              f"a space outside the toolkit loads from its program ({why})") from e
        log.warning("%s: no %s (torch.export: %s); nas.load_subnet rebuilds it from its space", path.parent.name,
                    PROGRAM, why)
        return {"file": None, "error": why}


def _warn_frozen_batch_norms(supernet: nn.Module) -> None:
    """Warn when batch norms with frozen parameters will be re-estimated: export rebuilds the supernet from its
    class and weights, so a mode set by hand at search time (`model.train(); model.backbone.eval()`) is not
    known here; a `train()` override that keeps them in eval is (docs/export.md, "Module modes")."""
    supernet.train()  # what batch-norm recalibration runs (through the subnets' own train())
    try:
        frozen = [name for name, m in supernet.named_modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
                  and any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())]
    finally:
        supernet.eval()
    if frozen:
        log.warning("export re-estimates the statistics of batch norms whose parameters are frozen (%s%s): the "
                    "model spec records weights, not module modes, so if the search kept them in eval mode "
                    "(model.train(); backbone.eval()) their pretrained statistics are replaced here. Give the "
                    "model a train() that keeps them in eval (docs/export.md, Module modes)",
                    ", ".join(frozen[:3]), f" and {len(frozen) - 3} more" if len(frozen) > 3 else "")


def _takes_arch(supernet: nn.Module) -> bool:
    """Whether the supernet runs one architecture as `supernet(x, arch)` (OFA, transformer, cell and nas.nn ones do)."""
    try:
        params = list(inspect.signature(supernet.forward).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _supernet_diff(spec: ModelSpec, supernet: torch.nn.Module, arch: Architecture, module: torch.nn.Module,
                   data: Splits | None, x: torch.Tensor) -> float:
    """Max |supernet(x, arch) - module(x)| with the supernet's batch norm calibrated for `arch` like the module's."""
    if spec.calibration is not None and data is not None:
        spec.calibrated(supernet, data, call=lambda b: supernet(b, arch))
    with torch.no_grad():
        return float((supernet.eval()(x, arch) - module(x)).abs().max())


def _card_md(card: dict[str, Any]) -> str:
    lines = [f"# Model card: trial {card['trial']} ({card['arch_id']})", "",
             f"Exported {card['exported']} from `{card['search']['workdir']}`; {card['search']['note']}.", "",
             "| objective | searched | re-measured | error |", "|---|---|---|---|"]
    for o in card["objectives"]:
        m = "n/a" if o["measured"] is None else f"{o['measured']:.4g}" + plus_minus(card["repeatability"].get(o["name"]))
        e = "n/a" if o["measured"] is None else f"{o['measured'] - o['searched']:+.4g}"
        lines.append(f"| {o['name']} ({o['direction']}) | {o['searched']:.4g} | {m} | {e} |")
    others = {k: v for k, v in card["measured"].items() if k not in {o["name"] for o in card["objectives"]}}
    if others:
        lines += ["", "Other measured metrics: " + ", ".join(f"{k} = {v:.4g}" for k, v in others.items())]
    if card.get("user_attrs"):
        lines += ["", "Attached by its evaluation (`nas.set_user_attr`): "
                  + ", ".join(f"{k} = `{json.dumps(v)}`" for k, v in card["user_attrs"].items())]
    s, d = card["search"], card["device"]
    timed = card.get("timed") or {}
    if timed:
        lines += ["", f"Re-measured on {timed['how']}" + (f"; {timed['why']}" if timed.get("why") else "") + "."]
    for name, c in (card.get("conditions") or {}).items():
        lines.append(f"`{name}` timed as `nas verify` times it: {c['statistic']} over {c['rounds']} interleaved round(s) "
                     f"of {c['warmup']} warm-up + {c['repeats']} runs, {c['threads']} thread(s) on {c['device']}, "
                     f"input {c['input_shapes']} ({c['input']}), {c['mode']} mode under {c['autograd']}.")
    prog = card.get("program") or {}
    if prog.get("measured"):
        lines.append("The torch.export program `" + PROGRAM + "` (what `nas.load_subnet` returns for this space), "
                     "timed in the same rounds, not what the search priced: " + ", ".join(
                         f"{k} = {v:.4g}{plus_minus(prog['repeatability'].get(k))}" for k, v in prog["measured"].items())
                     + ".")
    threads = f", {d['threads']} thread(s)" if d.get("threads") is not None else ""
    lines += ["", f"* device: {d['torch_device']} ({d.get('cpu') or d.get('gpu')}){threads}, torch {d['torch']}",
              f"* weights: {card['weights']['source']}"
              + (", batch norm recalibrated on " + json.dumps(card['weights']['calibration'])
                 if card["weights"].get("calibration") else ""),
              f"* search: strategy {s['strategy']}, seed {s['seed']}, {s['evaluations']} evaluations, "
              f"{s['evaluation_seconds']:.1f} s evaluating" + (f" + {s['training_seconds']:.1f} s supernet training"
                                                            if s.get("training_seconds") else ""),
              f"* constraints: {', '.join(card['constraints']) or 'none'}",
              f"* architecture: `{json.dumps(card['arch'])}`"]
    notes = {k: v for k, v in card["notes"].items() if k != "train_seconds"}
    if notes:
        lines.append(f"* notes: `{json.dumps(notes)}`")
    skipped = card["checks"].get("onnx") or {}
    if skipped.get("file") is None and skipped.get("skipped"):
        lines.append(f"* ONNX: no `{ONNX_FILE}`: {skipped['skipped']}"
                     + (f" ({skipped['error']})" if skipped.get("error") else ""))
    lines += _files_md(card)
    lines += ["",
              "Load it: " + (f"`torch.export.load(\"{card['path']}/{PROGRAM}\").module()` (plain torch, no model "
                             "code), " if PROGRAM in card["files"] else "")
              + f"`nas.load_subnet(\"{card['path']}\")`"
              + (f", or `{ONNX_FILE}` (onnxruntime)" if ONNX_FILE in card["files"] else "")
              + (f"; `{INT8_ONNX_FILE}` loads the same way (onnxruntime)." if INT8_ONNX_FILE in card["files"] else ".")]
    return "\n".join(lines) + "\n"


def _files_md(card: dict[str, Any]) -> list[str]:
    """The card's table of the files a pick ships as (with `quantize`): size and what was measured on each."""
    rows = card.get("files_measured") or []
    if not rows:
        return []
    names = list(rows[-1]["measured"])  # what the quantized file was measured by: accuracy, latency, `evaluate`
    lines = ["", "| " + " | ".join(["file", "runtime, format", "bytes", *names]) + " |",
             "|---" * (3 + len(names)) + "|"]
    for r in rows:
        cells = [("n/a" if n not in r["measured"] else f"{r['measured'][n]:.4g}"
                  + plus_minus(r["repeatability"].get(n))) for n in names]
        lines.append("| " + " | ".join([f"`{r['file']}`", r["label"], f"{r['bytes']:,}", *cells]) + " |")
    q = card["quantized"]
    if not q.get("file"):
        return lines + ["", f"No `{INT8_ONNX_FILE}`: {q['skipped']}."]
    ratio = q["fp32_onnx_bytes"] / q["bytes"]
    size = (f"{ratio:.2f}x smaller than `{ONNX_FILE}`" if ratio >= 1 else f"{1 / ratio:.2f}x larger than "
            f"`{ONNX_FILE}` (in a model this small the quantize nodes outweigh the bytes int8 weights save)")
    lines += ["", f"`{q['file']}` is {size} ({q['method']}); its top-1 agrees with the fp32 model's on "
              f"{q['top1_agreement']:.1%} of the check inputs (max |Δ logit| {q['max_abs_diff_vs_fp32']:.2g}). "
              "Parameter counts do not change."]
    return lines


# ---------------------------------------------------------------------------------------- export
@torch.random.fork_rng(devices=[])  # the caller's global torch RNG is left as it was (building modules draws from it)
def export(result_or_workdir: SearchResult | str | Path, out: str | Path, top: int | None = None,
           constraint: str | Constraint | Sequence[str | Constraint] | None = None, *, data: Splits | None = None,
           onnx: bool = True, verify: bool = False, quantize: str | None = None,
           evaluate: Callable[[nn.Module], Mapping[str, float]] | None = None,
           progress: Callable[[int, int, Trial], None] | None = None) -> ExportReport:
    """Export the Pareto-optimal trials of a search (a `SearchResult` or its workdir) to `out` (see module doc).

    `top` keeps the N best by the first objective, `constraint` ("latency_ms <= 2", or several) filters
    the front first. `data` (the spec's {split: (x, y)}) saves loading the dataset again. With
    `verify`, `nas.verify.verify(out)` runs on the written models and its report is attached.
    `quantize="int8"` also writes each pick as `model.int8.onnx` (onnxruntime dynamic quantization of
    `model.onnx`) and measures fp32 and int8 ONNX files together by the spec's accuracy and latency recipes;
    the card gets a row per file with its size. `evaluate(module) -> {metric: value}` measures what the spec
    cannot (e.g. accuracy on data it does not name): it is called on each reloaded model and, with
    `quantize`, on each ONNX file (as a torch module running it in onnxruntime), and its values go on the card.
    `progress(done, total, trial)` is called after each model. The global torch RNG is as it was before the call.
    """
    _check_quantize(quantize, onnx)
    if evaluate is not None and not callable(evaluate):  # before the picks are built, not when first called
        raise ConfigError(f"evaluate: expected a callable module -> {{metric: value}} or None, got {evaluate!r}")
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"out: {out} is a file; exported models go into a folder")
    if isinstance(result_or_workdir, SearchResult):
        result = result_or_workdir
        if result.workdir is None:
            raise ConfigError("result_or_workdir: this SearchResult has no workdir, and exporting needs the workdir's "
                              "model spec (run nas.search with workdir=...)")
        spec = load_model_spec(result.workdir)
    else:  # model.json first: a workdir without one is refused before its journal is read (17 s at 20,000 trials)
        if not Path(result_or_workdir).is_dir():
            raise ConfigError(f"result_or_workdir: {result_or_workdir}: no such directory")
        if not Journal(result_or_workdir).exists():
            SearchResult.load(result_or_workdir)  # its error: no search there
        spec = load_model_spec(result_or_workdir)
        result = SearchResult.load(result_or_workdir)
    space = spec.build_space()
    searched = searched_space(result.config, space)
    if result.config.get("space") and searched.fingerprint() != result.config["space"]:
        raise ConfigError(f"{result.workdir}/model.json: space: {spec.space['class']} with this config is not the "
                          f"space the journal's search used ({_space_difference(result.config, searched)}); export "
                          "with the model code and config the search ran")
    complete, note = completeness(result)  # said once: in the report (the CLI's table title) and every card
    extra = _constraints(constraint, result)
    picks = pick(result, top, extra)
    if not picks:
        counts = Counter(t.status for t in result.trials)
        held = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no trials"
        raise ConfigError(f"nothing to export from {result.workdir}: no completed feasible trial"
                          + (" satisfies " + ", ".join(map(str, extra)) if extra else "") + f" (the journal holds {held})")
    needs_data = spec.calibration is not None or any(r["kind"] == "accuracy" for r in spec.metrics.values())
    if data is None and needs_data:
        data = spec.load_data()
    supernet = load_supernet(spec, result.workdir, space) if spec.weights == "supernet" else None
    _check_settings(result, spec, space)  # after supernet.pt is checked against model.json (weights that do not fit)
    if supernet is not None and spec.calibration is not None:
        _warn_frozen_batch_norms(supernet)
    out = Path(out).resolve()  # the cards name their folder: absolute, wherever they are read from
    inside = _exported_model_around(out)
    if inside is not None:
        raise ConfigError(f"out: {out} is inside {inside}, a model exported to {inside.parent} (exporting there "
                          "again replaces that folder whole, and this export with it); export to a folder outside it")
    _check_in_the_way(out, picks)  # before anything is written: a folder of the user's where a pick goes
    made = not out.exists()
    _remove_dead_stages(out)
    stage = out / f".export-{os.getpid()}"  # everything is written here first: a failed export leaves nothing
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        report = _export(result, spec, space, searched, picks, extra, complete, note, data, supernet, out, stage,
                         onnx, quantize, evaluate, progress)
        _move_in(stage, out, report)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # not even the folder: it did not exist before
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if verify:
        report.verify = verify_export(out, data)
    return report


def _remove_dead_stages(out: Path) -> None:
    """Clean up after exports killed in `out`: remove their staging folders (`.export-<pid>`), and put back what one
    killed while swapping models in had moved aside (`.previous-<pid>`: each file or folder the swap had not yet
    replaced goes back under its name, the rest is removed). Those of live processes (another export into the same
    folder) stay."""
    for left in out.glob(".export-*") if out.is_dir() else []:
        if _dead(left.name.removeprefix(".export-")):
            shutil.rmtree(left, ignore_errors=True)
    for aside in out.glob(".previous-*") if out.is_dir() else []:
        if not _dead(aside.name.removeprefix(".previous-")):
            continue
        for item in aside.iterdir():
            if not (out / item.name).exists():
                os.replace(item, out / item.name)
                log.info("%s: put back %s, which an export killed while swapping models in had moved aside", out,
                         item.name)
        shutil.rmtree(aside, ignore_errors=True)


def _dead(pid: str) -> bool:
    """Whether `pid` (a stage folder's suffix) names a process of this machine that is gone (not this one)."""
    return pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid))


def _model_arch(searched: Any, trial: Trial) -> Architecture:
    """The architecture of `trial` that model.json's space builds: of a multi-fidelity search, without its fidelity."""
    return searched.strip(trial.arch) if isinstance(searched, FidelitySpace) else searched.validate(trial.arch)


def _space_difference(config: Mapping[str, Any], space: Any) -> str:
    """Where the space model.json rebuilds differs from the journal's, named as resume and record_model name it: "it
    differs at field w: the journal has choice [4, 8], model.json's space [4, 8, 16]" (a model file edited
    since the search); "fingerprints differ" for a journal without a space spec."""
    recorded = config.get("space_spec")
    found = space_difference(recorded, space.to_spec()) if recorded is not None else None
    if found is None:
        return "fingerprints differ"
    field_name, was, now = found
    return f"it differs at {field_name}: the journal has {was}, model.json's space {now}"


def _check_settings(result: SearchResult, spec: ModelSpec, space: Any) -> None:
    """ConfigError naming the setting when the space model.json rebuilds has other constructor settings than the
    journal's search (`space_settings`, e.g. `head_channels`): the fingerprint covers only the decisions, so a
    model.json recorded for another network would export that network under the search's name. Journals from
    before settings were recorded are not checked."""
    searched = result.config.get("space_settings")
    recorded = spec.space.get("config")  # what record_model wrote: space_settings of the space it was given
    if searched is None or searched in (recorded, space_settings(space)):
        return
    where, was, now = first_difference(searched, recorded if recorded is not None else space_settings(space))
    at = f" at {'.'.join(where)}" if where else ""
    raise ConfigError(f"{result.workdir}/model.json: space: its settings differ from those of the journal's "
                      f"search{at} (model.json has {now!r}, the search used {was!r}), so it would export another "
                      f"network than the one searched; record the searched space with record_model again, or export "
                      f"the workdir that searched this {spec.space['class']}")


def _export(result: SearchResult, spec: ModelSpec, space: Any, searched: Any, picks: list[Trial],
            extra: list[Constraint], complete: bool, note: str, data: Splits | None, supernet: torch.nn.Module | None,
            out: Path, stage: Path, onnx: bool, quantize: str | None,
            evaluate: Callable[[nn.Module], Mapping[str, float]] | None,
            progress: Callable[[int, int, Trial], None] | None) -> ExportReport:
    """Write every pick's folder and `export.json` into `stage`; their paths name their final place in `out`.
    `searched`: the space the search ran over (`searched_space`), whose picks `space` builds (`_model_arch`)."""
    check_x = _check_inputs(space, _model_arch(searched, picks[0]), data, spec)
    from nas.hardware.latency import host_info

    threads = {r.get("threads") for r in spec.metrics.values() if r["kind"] == "latency"}
    device = {"torch_device": "cpu", "threads": threads.pop() if len(threads) == 1 else None,
              **{k: v for k, v in host_info("cpu").items() if k in ("cpu", "cpu_count", "torch", "platform")}}
    evaluations = [t for t in result.trials if t.is_evaluation]
    search = {"workdir": str(Path(result.workdir).resolve()), "strategy": result.config.get("strategy"),
              "seed": result.config.get("seed"), "budget": result.config.get("budget"),
              "evaluations": len(evaluations), "complete": complete, "note": note,
              "evaluation_seconds": round(sum(t.duration for t in evaluations), 3),
              "training_seconds": spec.notes.get("train_seconds")}
    objectives = [{"name": o.name, "direction": o.direction} for o in result.problem.objectives]
    constraints = [str(c) for c in list(result.problem.constraints) + extra]
    built: list[tuple[Trial, Architecture, Path, torch.nn.Module, dict[str, Any]]] = []  # priced models and checks
    inputs: list[RecordedInput] = []  # per pick, the input verify rebuilds from its model.json: latencies are timed on it
    programs: list[torch.nn.Module | None] = []  # per pick, the program load_subnet gives, when not the priced one
    for i, trial in enumerate(picks):
        arch = _model_arch(searched, trial)
        folder = stage / _folder_name(trial)
        folder.mkdir()
        module = standalone(spec, result.workdir, arch, data, space, supernet)
        example = space.example_input(arch, 2)
        x = _like(check_x, space, arch)
        checks: dict[str, Any] = {}
        if supernet is not None and _takes_arch(supernet):
            checks["supernet_max_abs_diff"] = _supernet_diff(spec, supernet, arch, module, data, x)
        elif supernet is not None:
            checks["supernet"] = (f"not compared: {type(supernet).__qualname__}.forward takes no architecture; the "
                                  "module is supernet.subnet(arch)")
        save_state_dict(module, folder / WEIGHTS)
        program = _program(spec.space, module, example, folder / PROGRAM)
        evaluation = {"data": spec.data.to_json() if spec.data else None, "metrics": spec.metrics}
        info = subnet_json(spec.space, arch, module, example, evaluation, program)
        jsonio.write_json(folder / SUBNET, info)
        inputs.append(RecordedInput.of(info["input"], str(folder / SUBNET)))
        jsonio.write_json(folder / "arch.json", {"trial": trial.number, "arch_id": arch.id, "arch": arch.to_dict(),
                                                 "space": spec.space})
        loaded = load_subnet(folder)  # everything below uses the files as a user loads them
        priced, timed = load_priced(folder, space)  # what is re-measured: the network the search priced
        with torch.no_grad():
            want = module(x)
            checks["reload_max_abs_diff"] = float((loaded(x) - want).abs().max())
            if priced is not loaded:
                checks["priced_max_abs_diff"] = float((priced(x) - want).abs().max())
        if program.get("file"):
            checks["program_max_abs_diff"] = _agreement(f"{folder.name}/{PROGRAM}", load_program(folder / PROGRAM),
                                                        module, x)
        checks["load"] = info["load"]
        checks["timed"] = timed
        if onnx:
            checks["onnx"] = _onnx(module, example, folder / ONNX_FILE, x)  # eager: a program would fix its batch
            if "error" in checks["onnx"]:
                _warn_no_onnx(trial, arch, checks["onnx"])
        if quantize:
            checks[quantize] = (_quantize_int8(folder / ONNX_FILE, example, x) if checks["onnx"]["file"] else
                                {"file": None, "skipped": f"no {ONNX_FILE} to quantize"})
        built.append((trial, arch, folder, priced, checks))
        programs.append(loaded if timed["network"] == "eager" and info["load"] == "program" else None)
        if progress is not None:
            progress(i + 1, len(picks), trial)
    # all models re-measured together: latencies in interleaved rounds when the recipe asks for rounds
    measured_all, program_all = _remeasure(built, programs, inputs, spec.metrics, data)
    for (_, _, _, module, _), again in zip(built, measured_all):
        again.values.update(_evaluated(evaluate, module, spec.metrics))
    files_all = _measure_files(built, measured_all, inputs, spec.metrics, data, evaluate) if quantize else None
    models: list[ExportedModel] = []
    for i, ((trial, arch, folder, _, checks), again) in enumerate(zip(built, measured_all)):
        measured = again.values
        for line in accuracy_mismatches(spec.metrics, trial.metrics, measured):
            log.warning("trial %d: %s%s", trial.number, line, " (is `data` the recorded dataset?)" if data else "")
        files = files_all[i] if files_all else []
        prog = program_all[i]
        final = out / folder.name
        card = {"trial": trial.number, "arch_id": arch.id, "arch": arch.to_dict(), "path": str(final),
                "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
                "objectives": [{**o, "searched": trial.metrics[o["name"]], "measured": measured.get(o["name"])}
                               for o in objectives],
                "searched": dict(trial.metrics), "measured": measured, "repeatability": again.repeatability,
                "conditions": again.conditions, "timed": checks["timed"], **({"program": prog} if prog else {}),
                **({"user_attrs": trial.user_attrs} if trial.user_attrs else {}),
                "constraints": constraints,
                "recipes": spec.metrics, "device": device, "search": search,
                "weights": {"source": "sliced from the supernet" if supernet is not None else "trained weights",
                            "calibration": spec.calibration if supernet is not None else None},
                "checks": checks, "files": sorted(p.name for p in folder.iterdir()) + ["card.json", "card.md"],
                "notes": spec.notes}
        if quantize:
            card["quantized"] = checks[quantize]
            card["files_measured"] = [asdict(f) for f in files]
        jsonio.write_json(folder / "card.json", card, allow_nan=True)
        jsonio.write_bytes(folder / "card.md", _card_md(card).encode())
        models.append(ExportedModel(trial.number, arch.id, final, dict(trial.metrics), measured, checks,
                                    again.repeatability, files, checks["timed"], prog, again.conditions))
    index = {"workdir": search["workdir"], "complete": complete, "note": note, "exported": time.time(),
             "objectives": {o["name"]: o["direction"] for o in objectives}, "constraints": constraints,
             "models": [{"trial": m.trial, "arch_id": m.arch_id, "path": m.path.name,
                         "searched": dict(m.searched), "measured": m.measured, "repeatability": m.repeatability,
                         "conditions": m.conditions, "timed": m.timed["network"], **({"program": m.program} if m.program else {}),
                         **({"onnx": _onnx_entry(m.checks["onnx"])} if "onnx" in m.checks else {}),
                         **({"files": [asdict(f) for f in m.files]} if m.files else {})}
                        for m in models]}
    jsonio.write_json(stage / EXPORT_INDEX, index)
    return ExportReport(out, models, complete, note, [o["name"] for o in objectives])


def _remeasure(built: Sequence[tuple[Trial, Architecture, Path, nn.Module, dict[str, Any]]],
               programs: Sequence[nn.Module | None], inputs: Sequence[RecordedInput], recipes: Mapping[str, Any],
               data: Splits | None) -> tuple[list[Remeasured], list[dict[str, Any]]]:
    """Every pick's priced network re-measured by `recipes` (`remeasure_all`) on the input recorded in its
    model.json (what verify times), and, for a pick whose `load_subnet` gives the torch.export program instead,
    that program's own latency: timed in the same interleaved rounds as the priced networks, so the two
    figures compare; {} for the other picks."""
    models = [(m, x, a) for (_, a, _, m, _), x in zip(built, inputs)]
    extra = [(p, inputs[i], built[i][1]) for i, p in enumerate(programs) if p is not None]
    latency = {n: r for n, r in recipes.items() if r["kind"] == "latency"}
    if not extra or not latency:
        return remeasure_all(models, recipes, data), [{} for _ in built]
    timed = remeasure_all(models + extra, latency, data)
    rest = remeasure_all(models, {n: r for n, r in recipes.items() if n not in latency}, data)
    merged = [{**t.values, **r.values} for t, r in zip(timed, rest)]
    out = [Remeasured({n: v[n] for n in recipes if n in v}, t.repeatability, t.conditions) for v, t in zip(merged, timed)]
    program_all: list[dict[str, Any]] = [{} for _ in built]
    index = [i for i, p in enumerate(programs) if p is not None]
    for i, t in zip(index, timed[len(models):]):
        program_all[i] = {"network": "program", "how": TIMED["program"], "measured": dict(t.values),
                          "repeatability": dict(t.repeatability)}
    return out, program_all


def _onnx_entry(info: dict[str, Any]) -> dict[str, Any]:
    """export.json's record of a pick's ONNX file: its name, or why there is none."""
    return {k: info[k] for k in ("file", "skipped", "error", "op") if k in info}


def _evaluated(evaluate: Callable[[nn.Module], Mapping[str, float]] | None, module: nn.Module,
               recipes: Mapping[str, Any]) -> dict[str, float]:
    """The caller's `evaluate(module)`, checked: numbers only, and no metric the spec's recipes already measure."""
    if evaluate is None:
        return {}
    with torch.no_grad():
        values = evaluate(module)
    if not isinstance(values, Mapping):
        raise ConfigError(f"evaluate: expected a dict {{metric: value}}, got {type(values).__name__}")
    out = {}
    for name, v in values.items():
        if name in recipes:
            raise ConfigError(f"evaluate: returned {name!r}, which the model spec's recipe metrics.{name} already "
                              "measures; give it another name")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise ConfigError(f"evaluate: {name!r} = {v!r} is not a finite number")
        out[str(name)] = float(v)
    return out


def _measure_files(built: Sequence[tuple[Trial, Architecture, Path, nn.Module, dict[str, Any]]],
                   measured: Sequence[Remeasured], inputs: Sequence[RecordedInput], recipes: Mapping[str, Any],
                   data: Splits | None,
                   evaluate: Callable[[nn.Module], Mapping[str, float]] | None) -> list[list[ModelFile]]:
    """Per pick, its files: fp32 torch (as re-measured), fp32 and int8 ONNX, the ONNX ones of every pick measured
    together by the accuracy and latency recipes (counts do not change with the number format) and `evaluate`."""
    kept = {n: r for n, r in recipes.items() if r["kind"] in ("accuracy", "latency")}
    runs, labels = [], []  # a pick whose network ONNX cannot express has no ONNX files: its torch row only
    for i, (_, arch, folder, _, _) in enumerate(built):
        example = inputs[i].example_input(arch, 1)
        for name in (ONNX_FILE, INT8_ONNX_FILE):
            if (folder / name).is_file():
                runs.append((OnnxModule(folder / name, example.shape[1:], example.dtype), inputs[i], arch))
                form = ("int8 dynamic" if name == INT8_ONNX_FILE else
                        _number_format({d for d, _ in _onnx_weights(folder / name).values()}))
                labels.append((i, f"{form}, onnxruntime"))
    again = remeasure_all(runs, kept, data) if runs else []
    out = [[ModelFile(f"{_number_format({dtype_name(t) for t in load_state_dict(folder / WEIGHTS).values()})}, torch",
                      WEIGHTS, (folder / WEIGHTS).stat().st_size, dict(fp32.values), dict(fp32.repeatability))]
           for (_, _, folder, _, _), fp32 in zip(built, measured)]
    for (i, label), (module, _, _), m in zip(labels, runs, again):
        out[i].append(ModelFile(label, module.path.name, module.path.stat().st_size,
                                {**m.values, **_evaluated(evaluate, module, recipes)}, m.repeatability))
    return out


def _folder_name(trial: Trial) -> str:
    return f"trial-{trial.number:04d}"


def _check_in_the_way(out: Path, picks: Sequence[Trial]) -> None:
    """Refuse, before writing anything, when a pick's folder in `out` exists and is not an exported model (a
    folder of the user's: export replaces only what an export wrote)."""
    for trial in picks:
        folder = out / _folder_name(trial)
        if (folder.exists() or folder.is_symlink()) and not _is_model(out, folder):
            raise _in_the_way(folder, f"trial {trial.number} is exported there, and it is not a model an export wrote")


def _exported_model_around(out: Path) -> Path | None:
    """The exported model folder `out` is (or lies inside), if any: a folder holding model.json inside a folder
    holding export.json (an export's pick, which exporting there again replaces whole)."""
    for folder in (out, *out.parents):
        if (folder.parent / EXPORT_INDEX).is_file() and _is_model(folder.parent, folder):
            return folder
    return None


def _in_the_way(folder: Path, why: str) -> ConfigError:
    """The error for a folder of the user's where a pick goes (export replaces only what an export wrote)."""
    return ConfigError(f"out: {folder} is in the way: {why} (no {SUBNET}); move or rename it, or export to another "
                       "--out")


def _move_in(stage: Path, out: Path, report: ExportReport) -> None:
    """Replace the previous export in `out` (only the folders its export.json lists, and exported models where the
    picks go) with the staged one, `export.json` last, so a directory without it never looks complete. The
    previous files are first moved aside into the stage, and moved back if anything fails: a failed export
    leaves the previous one as it was."""
    index = out / EXPORT_INDEX
    old = jsonio.read_json(index, "export index") if index.is_file() else {}
    entries = old.get("models", []) if isinstance(old, dict) else []
    previous = [out / str(e.get("path", "")) for e in entries if isinstance(e, dict)] + [m.path for m in report.models]
    aside = out / f".previous-{os.getpid()}"  # beside the stage, not in it: it outlives a failed move back
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir()
    moved: list[tuple[Path, Path]] = []  # (where it was, where it is now), to move back on failure
    placed: list[Path] = []
    try:  # moved aside under their own names, so an export killed midway is put back by the next (_recover_dead)
        for path in dict.fromkeys(previous):  # a folder left by an export killed before its export.json, too
            if _is_model(out, path):
                moved.append((path, aside / path.name))
                os.replace(*moved[-1])
        for name in (EXPORT_INDEX, VERIFY_REPORT):
            if (out / name).is_file():
                moved.append((out / name, aside / name))
                os.replace(*moved[-1])
        for m in report.models:
            if m.path.exists() or m.path.is_symlink():
                raise _in_the_way(m.path, "it is not a model an export wrote")
            os.replace(stage / m.path.name, m.path)
            placed.append(m.path)
        os.replace(stage / EXPORT_INDEX, index)
    except BaseException as e:
        for path in reversed(placed):
            shutil.rmtree(path, ignore_errors=True)
        stuck = []
        for was, now in reversed(moved):
            try:
                os.replace(now, was)
            except OSError:
                stuck.append(was.name)
        if stuck:  # keep what could not be moved back, and say where it is
            raise ConfigError(f"out: export failed while moving its models in ({_first_line(e)}), and "
                              f"{', '.join(stuck)} of the previous export could not be moved back: they are in "
                              f"{aside}") from e
        aside.rmdir()
        raise
    shutil.rmtree(aside)


def _is_model(out: Path, folder: Path) -> bool:
    """Whether `folder` is an exported model directly inside `out` (the only folders an export replaces)."""
    return (folder != out and folder.parent == out and not folder.is_symlink() and folder.is_dir()
            and (folder / SUBNET).is_file())


def _check_inputs(space: Any, arch: Architecture, data: Splits | None, spec: ModelSpec) -> torch.Tensor:
    """A few held-out inputs for the output comparisons (random ones when the spec has no data; the space's
    example input when that is not floating point, e.g. token ids, which random normals would not be)."""
    names = [r["split"] for r in spec.metrics.values() if r["kind"] == "accuracy"]
    if data is not None and names:
        return split(data, names[0], "metrics.split")[0][:64]
    example = single_input(space, arch, 64)
    if not example.is_floating_point():
        return example
    return torch.randn(example.shape, generator=torch.Generator().manual_seed(0))


def _like(x: torch.Tensor, space: Any, arch: Architecture) -> torch.Tensor:
    """Held-out inputs `x` in the layout and dtype of the module's example input ((N, L) -> (N, 1, L)). Where they
    do not fit it (sentences shorter than the traced length, say), inputs the module takes: the space's own example
    input where it is not floating point (token ids, which random normals are not), seeded normals otherwise."""
    example = space.example_input(arch, len(x))
    if x.numel() == len(x) * int(np.prod(example.shape[1:])):
        return x.reshape(len(x), *example.shape[1:]).to(example.dtype)
    if not example.is_floating_point():
        return example
    return torch.randn(example.shape, generator=torch.Generator().manual_seed(0)).to(example.dtype)
