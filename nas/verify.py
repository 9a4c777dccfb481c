"""Re-measuring exported models: accuracy on held-out data, latency on the device, against the search's values.

`verify(out)` reloads every model of an export directory as the network the search priced
(`nas.modelspec.load_priced`: `space.build(arch)` + weights.pt, eager; for a space you wrote, its script is
run to rebuild the space, as `nas export` does, and where that is no longer possible the model's `model.pt2`
program is timed instead, labelled so in `Check.timed`, its latencies reported but not checked), re-measures it
with its recipes (`nas.measure.remeasure_all`, exactly as export did: same input, threads, mode, warm-up,
repeats, rounds and statistic, recorded per latency in `Check.conditions`; where export.json recorded other
conditions, `Check.differs` names the fields), reports predicted-vs-measured error per objective, and flags
picks that break a constraint or are dominated by another pick once the measured values replace the
searched ones, whose accuracy or count (exact) re-measures otherwise than searched, or whose model.json holds
another architecture than export.json lists for the trial. The files a pick ships as (`model.pt2`,
`model.onnx`, and `model.int8.onnx` where export quantized) are each loaded and run once on the recorded input
against that network (`Check.files`): one that is missing, does not load or disagrees by more than `AGREEMENT` is
flagged (the quantized file's top-1 agreement and max |diff| are recorded, as export records them, not bounded).
A pick that cannot be loaded (its folder, model.json or weights missing or unreadable) is flagged with why, and the
others are still checked; the previous verify.json is removed first, so a run that stops short never leaves an
earlier pass behind.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas import jsonio
from nas.architecture import Architecture
from nas.errors import ConfigError, NASError
from nas.measure import Remeasured, Splits, accuracy_mismatches, count_mismatches, remeasure_all
from nas.modelspec import (SUBNET, WEIGHTS, DataRef, OnnxModule, RecordedInput, load_priced, load_program,
                           moved_aside, read_subnet_json)
from nas.objectives import Constraint, Objective
from nas.pareto import pareto_mask

log = logging.getLogger(__name__)

EXPORT_INDEX = "export.json"
VERIFY_REPORT = "verify.json"
AGREEMENT = 1e-3  # largest |exported file - network| allowed, relative to the outputs' magnitude (at least 1)


@dataclass
class Check:
    """One exported model, re-measured: searched and measured values, their error, and what went wrong."""

    trial: int
    path: str
    searched: dict[str, float]
    measured: dict[str, float]
    error: dict[str, float]          # measured - searched, per metric measured
    rel_error: dict[str, float]      # (measured - searched) / |searched|
    flags: list[str] = field(default_factory=list)
    repeatability: dict[str, float] = field(default_factory=dict)  # per latency: this measurement's own, relative
    export_pass: dict[str, float] = field(default_factory=dict)    # per latency: export's earlier measurement
    timed: dict[str, str] = field(default_factory=dict)  # which network was re-measured (modelspec.load_priced)
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)  # per latency: how verify timed it
    differs: dict[str, list[str]] = field(default_factory=dict)  # per latency: conditions export's pass had otherwise
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # per shipped file: its output check (_check_files)

    @property
    def ok(self) -> bool:
        return not self.flags


@dataclass
class VerifyReport:
    """`verify`'s result: one `Check` per exported model, the objectives and constraints checked."""

    out: Path
    checks: list[Check]
    objectives: list[Objective]
    constraints: list[Constraint]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def flagged(self) -> list[Check]:
        return [c for c in self.checks if c.flags]

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "ok": self.ok,
                "objectives": {o.name: o.direction for o in self.objectives},
                "constraints": [str(c) for c in self.constraints],
                "models": [asdict(c) for c in self.checks]}


def read_index(out: str | Path) -> dict[str, Any]:
    """The `export.json` of an export directory."""
    path = Path(out) / EXPORT_INDEX
    if not path.is_file():
        aside = moved_aside(Path(out), EXPORT_INDEX) or "; run `nas export` first"
        raise ConfigError(f"{out}: not an export directory ({EXPORT_INDEX} not found{aside})")
    index = jsonio.read_json(path, "export index")
    if not isinstance(index, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    for key in ("objectives", "constraints", "models"):
        if key not in index:
            raise ConfigError(f"{path}: field {key!r} is missing")
    return index


def _checked(c: Check) -> dict[str, float]:
    """The values `c`'s constraints and domination are checked on: measured, searched where not re-measured; and
    searched for a latency timed on the torch.export program (the script gone), which is not the network the
    search priced (a slower GraphModule) and so is reported, labelled, but never checked."""
    program = c.timed.get("network") == "program"
    return {**c.searched, **{k: v for k, v in c.measured.items() if not (program and k in c.conditions)}}


def _flags(checks: Sequence[Check], objectives: Sequence[Objective], constraints: Sequence[Constraint]) -> None:
    """Constraint breaks and domination among the picks, on re-measured values (`_checked`)."""
    values = [_checked(c) for c in checks]
    for c, v in zip(checks, values):
        for con in constraints:
            if con.metric in v and not con.satisfied(v):
                c.flags.append(f"breaks {con} after re-measurement ({con.metric} = {v[con.metric]:.4g})")
    usable = [i for i, v in enumerate(values) if all(o.name in v for o in objectives)]
    if len(usable) < 2 or not objectives:
        return
    pts = np.array([[o.minimised(values[i][o.name]) for o in objectives] for i in usable], dtype=float)
    mask = pareto_mask(pts)
    for k, i in enumerate(usable):
        if mask[k]:
            continue
        by = [j for j in range(len(usable)) if j != k and np.all(pts[j] <= pts[k]) and np.any(pts[j] < pts[k])]
        noise = all(_within_noise(checks[i], checks[usable[j]], values[i], values[usable[j]]) for j in by)
        checks[i].flags.append("left the Pareto front after re-measurement (dominated by trial "
                               + ", ".join(str(checks[usable[j]].trial) for j in by) + ")"
                               + (" by less than the latency measurement's repeatability: a near-tie" if noise else ""))


def _within_noise(a: Check, b: Check, va: dict[str, float], vb: dict[str, float]) -> bool:
    """Whether `b` beats `a` on its re-measured latencies by less than either measurement's repeatability."""
    names = [n for n in a.repeatability if n in b.repeatability and math.isfinite(a.repeatability[n])]
    return bool(names) and all(abs(va[n] - vb[n]) <= max(a.repeatability[n], b.repeatability[n]) * abs(va[n])
                               for n in names)


def disagreement(got: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    """(max |got - want|, the largest difference `AGREEMENT` allows for outputs of `want`'s magnitude)."""
    return float((got - want).abs().max()), AGREEMENT * max(1.0, float(want.abs().max()))


def _shipped(sub: dict[str, Any], entry: dict[str, Any]) -> dict[str, str]:
    """{file: kind} of the files export wrote a pick's network into besides weights.pt (which `load_priced`
    reads): its torch.export program (model.json `program.file`), its ONNX model (export.json `onnx.file`) and
    any quantized copy of it (the other files of export.json `files`, written with `quantize`: model.int8.onnx)."""
    program = sub.get("program") if isinstance(sub.get("program"), dict) else {}
    onnx = entry.get("onnx") if isinstance(entry.get("onnx"), dict) else {}
    out = {**({str(program["file"]): "program"} if program.get("file") else {}),
           **({str(onnx["file"]): "onnx"} if onnx.get("file") else {})}
    for row in entry.get("files") or []:
        name = row.get("file") if isinstance(row, dict) else None
        if name and name != WEIGHTS and name not in out:
            out[str(name)] = "quantized"
    return out


def _check_files(folder: Path, files: dict[str, str], module: nn.Module, shape: RecordedInput,
                 arch: Any) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each shipped file loaded and run once on the recorded input (at the traced batch of 2, which every file
    takes) against `module`, the network re-measured: ({file: {"max_abs_diff", "tolerance"}, or why it was not
    compared}, a flag per file that is missing, does not load or run, or disagrees beyond `AGREEMENT`). A quantized
    file cannot agree within `AGREEMENT`: as export, which records its top-1 agreement but checks no bound on it,
    verify records {"max_abs_diff", "top1_agreement"} and flags only outputs of another shape or not finite. An
    ONNX file is not compared where onnxruntime is not installed, as export does."""

    x = shape.example_input(arch, 2)
    with torch.no_grad():
        want = module(x)
    results: dict[str, dict[str, Any]] = {}
    flags: list[str] = []
    for name, kind in files.items():
        path = folder / name
        if not path.is_file():
            results[name] = {"error": "missing"}
            flags.append(f"{name}: missing (export wrote it; export the model again)")
            continue
        try:
            run = load_program(path) if kind == "program" else OnnxModule(path, shape.shape, x.dtype)
            with torch.no_grad():
                got = run(x)
        except ImportError:
            results[name] = {"skipped": "onnxruntime is not installed"}
            continue
        except ConfigError as e:  # load_program's: names the file and says why
            results[name] = {"error": str(e).removeprefix(f"{path}: ")}
            flags.append(f"{name}: {results[name]['error']}")
            continue
        except Exception as e:  # onnxruntime's errors on a damaged file, a program that fails to run: many kinds
            results[name] = {"error": f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"}
            flags.append(f"{name}: does not load or run ({results[name]['error']}); export the model again")
            continue
        if kind == "quantized":  # int8: agrees in its predictions, not within AGREEMENT
            if got.shape != want.shape or not bool(torch.isfinite(got).all()):
                what = (f"outputs of shape {tuple(got.shape)}, the network's {tuple(want.shape)}"
                        if got.shape != want.shape else "outputs that are not finite")
                results[name] = {"error": f"gives {what}"}
                flags.append(f"{name}: gives {what} on the recorded input; export the model again")
            else:
                results[name] = {"max_abs_diff": float((got - want).abs().max()),
                                 "top1_agreement": float((got.argmax(-1) == want.argmax(-1)).float().mean())}
            continue
        diff, tolerance = disagreement(got, want)
        results[name] = {"max_abs_diff": diff, "tolerance": tolerance}
        if not diff <= tolerance:
            flags.append(f"{name}: disagrees with the network re-measured on the recorded input (max |diff| "
                         f"{diff:.3g}, above {tolerance:.2g}); export the model again")
    return results, flags


def _other_model(sub: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    """A flag when the architecture in a pick's model.json is not the one export.json lists for its trial (its
    folder holds another model's files); nothing for an export.json that lists no arch_id."""
    want = entry.get("arch_id")
    arch = sub.get("arch")
    got = Architecture(arch).id if isinstance(arch, dict) else None
    if not want or got == want:
        return []
    return [f"model.json holds architecture {got}, not trial {entry.get('trial')}'s {want} (export.json): the "
            "folder's files belong to another model; export the model again"]


def _differences(export: dict[str, Any], now: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Per latency metric, the condition fields export.json recorded with other values than this pass's
    (`device: cpu -> cuda`); nothing for an export that recorded none (written before conditions were)."""
    out = {}
    for name, cond in now.items():
        before = export.get(name)
        if isinstance(before, dict):
            keys = [f"{k}: {before.get(k)!r} -> {v!r}" for k, v in cond.items() if k in before and before[k] != v]
            if keys:
                out[name] = keys
    return out


def verify(out: str | Path, data: Splits | None = None, write: bool = True) -> VerifyReport:
    """Reload every model of the export directory `out`, re-measure it, and check it (see module doc).

    `data` (the spec's {split: (x, y)}) saves loading the dataset again; the report goes to
    `out/verify.json` unless `write` is False.
    """
    out = Path(out)
    if write and out.is_dir():  # a run that stops short (an error below) must not leave an earlier pass behind
        (out / VERIFY_REPORT).unlink(missing_ok=True)
    index = read_index(out)
    objectives = [Objective(n, d) for n, d in index["objectives"].items()]
    constraints = [Constraint.parse(c) for c in index["constraints"]]
    loaded: list[tuple[dict[str, Any], nn.Module, Any, Any, dict[str, Any]]] = []
    timed: list[dict[str, str]] = []
    shipped: list[tuple[dict[str, dict[str, Any]], list[str]]] = []  # per model: its files' checks and flags
    unloaded: dict[int, list[str]] = {}  # position in export.json -> why that pick could not be loaded (its flags)
    for position, entry in enumerate(index["models"]):
        other: list[str] = []  # a flag when its model.json holds another architecture than export.json lists
        try:
            folder, sub = read_subnet_json(out / entry["path"])
            other = _other_model(sub, entry)
            evaluation = sub.get("evaluation") or {}
            recipes = evaluation.get("metrics") or {}
            if data is None and any(r["kind"] == "accuracy" for r in recipes.values()):
                ref = evaluation.get("data")
                if not ref:
                    raise ConfigError(f"{folder}: evaluation.data is missing, so accuracy cannot be re-measured")
                data = DataRef(ref["function"], dict(ref.get("kwargs") or {})).load()
            shape = RecordedInput.of(sub.get("input"), str(folder / SUBNET))  # latency and counts: the traced input
            module, label = load_priced(folder)
            files = _check_files(folder, _shipped(sub, entry), module, shape, sub["arch"])
        except Exception as e:  # a missing or damaged folder, weights or model.json; a space that no longer builds
            first = (str(e).strip().splitlines() or [""])[0]
            why = str(e) if isinstance(e, NASError) else f"{type(e).__name__}: {first}"
            unloaded[position] = other + [f"could not be loaded, so nothing was re-measured: {why}"]
            continue
        if label["network"] == "program":
            latencies = [n for n, r in recipes.items() if r["kind"] == "latency"]
            log.warning("trial %s: re-measuring its torch.export program %s, not the network the search priced%s: %s",
                        entry.get("trial"), folder.name, f" (its {', '.join(latencies)} reported, not checked against "
                        "the constraints or the front)" if latencies else "", label["why"])
        timed.append(label)
        loaded.append((entry, module, shape, sub["arch"], recipes))
        shipped.append((files[0], other + files[1]))
    groups: dict[str, list[int]] = {}  # models sharing recipes are re-measured (timed) together
    for i, x in enumerate(loaded):
        groups.setdefault(json.dumps(x[4], sort_keys=True), []).append(i)
    measured: list[Remeasured] = [Remeasured({}) for _ in loaded]
    for idx in groups.values():
        for i, m in zip(idx, remeasure_all([loaded[i][1:4] for i in idx], loaded[idx[0]][4], data)):
            measured[i] = m
    checks: list[Check] = []
    for (entry, *_, recipes), again, label, (files, broken) in zip(loaded, measured, timed, shipped):
        values = again.values
        searched = {k: float(v) for k, v in entry["searched"].items()}
        error = {k: values[k] - searched[k] for k in values if k in searched}
        rel = {k: (e / abs(searched[k]) if searched[k] else math.inf if e else 0.0) for k, e in error.items()}
        earlier = {k: float(v) for k, v in (entry.get("measured") or {}).items() if k in again.repeatability}
        differs = _differences(entry.get("conditions") or {}, again.conditions)
        for name, keys in differs.items():
            log.warning("trial %s: %s was timed under other conditions in export's pass (%s), so its export figure "
                        "does not compare", entry.get("trial"), name, ", ".join(keys))
        checks.append(Check(int(entry["trial"]), entry["path"], searched, values, error, rel,
                            repeatability=again.repeatability, export_pass=earlier, timed=label,
                            conditions=again.conditions, differs=differs, files=files))
        checks[-1].flags += (broken + accuracy_mismatches(recipes, searched, values)
                             + count_mismatches(recipes, searched, values))
    _flags(checks, objectives, constraints)  # among the picks re-measured: an unloaded one's values are unchecked
    for position, flags in unloaded.items():  # in export.json's order, each flagged with why it was not re-measured
        entry = index["models"][position]
        checks.insert(position, Check(int(entry["trial"]), str(entry["path"]),
                                      {k: float(v) for k, v in entry["searched"].items()}, {}, {}, {}, flags=flags))
    report = VerifyReport(out, checks, objectives, constraints)
    if write:
        jsonio.write_json(out / VERIFY_REPORT, report.to_json(), allow_nan=True)
    for c in report.flagged:
        log.warning("trial %d: %s", c.trial, "; ".join(c.flags))
    return report
