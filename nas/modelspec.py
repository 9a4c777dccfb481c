"""How a search's architectures become standalone models: the model spec of a workdir and `load_subnet`.

A workdir whose architectures can be exported holds, beside its journal (see `record_model`):

    model.json            {"format": "nas-model-spec", "version": 1,
                           "space": {"class": "nas.spaces.ofa.OFASpace", "config_class": ..., "config": {...}},
                           "weights": "supernet" | "trained", "data": {"function": ..., "kwargs": {...}},
                           "calibration": {"split": "train", "size": 1000, "batch_size": 250} | null,
                           "metrics": {"accuracy_pct": {"kind": "accuracy", "split": "valid", "scale": 100}, ...},
                           "notes": {...}}
    supernet.pt           the trained supernet's state_dict (weights "supernet"), or
    weights/<arch_id>.pt  each trained network's state_dict (weights "trained", saved by `save_trial_weights`)

The space is a `ModelSpace` named by its class path and rebuilt from JSON (its dataclass `config`, or its
own `to_config()` / `from_config()`); `space.build(arch)` gives the standalone module. Every file is JSON
or a tensor-only state_dict read with `torch.load(..., weights_only=True)`: nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas import jsonio
from nas.architecture import Architecture
from nas.errors import ConfigError
from nas.measure import Splits, check_recipe, split
from nas.spaces.model_space import ModelSpace

SPEC_FORMAT, SUBNET_FORMAT, VERSION = "nas-model-spec", "nas-subnet", 1
MODEL_SPEC = "model.json"          # in a search workdir: how to rebuild its models
SUPERNET = "supernet.pt"           # in a search workdir: the supernet's state_dict
TRIAL_WEIGHTS = "weights"          # in a search workdir: weights/<arch_id>.pt per trained trial
SUBNET = "model.json"              # in an exported model's directory: how to rebuild that module
WEIGHTS = "weights.pt"             # in an exported model's directory: its state_dict
WEIGHT_KINDS = ("supernet", "trained")


# ---------------------------------------------------------------------------------------- import paths
def object_path(obj: Any) -> str:
    """`module.QualName` of a module-level class or function (what `import_object` reads back)."""
    qual = getattr(obj, "__qualname__", "")
    if not qual or "<" in qual or not getattr(obj, "__module__", None):
        raise ConfigError(f"{obj!r} is not importable by name (define it at module level)")
    if obj.__module__ == "__main__" or obj.__module__.startswith("nas_script_"):
        raise ConfigError(f"{qual} is defined in the running script ({obj.__module__}), which another process cannot "
                          "import: move it to an importable module")
    return f"{obj.__module__}.{qual}"


def import_object(path: Any, field_name: str) -> Any:
    """The object at `package.module.Name`; ConfigError naming `field_name` when it cannot be imported."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"{field_name}: expected an import path like 'package.module.Name', got {path!r}")
    module_name, _, name = path.rpartition(".")
    parts = [name]
    while module_name:
        try:
            obj: Any = importlib.import_module(module_name)
            break
        except ModuleNotFoundError:
            module_name, _, outer = module_name.rpartition(".")
            parts.insert(0, outer)
    else:
        raise ConfigError(f"{field_name}: cannot import {path!r} (no such module)")
    try:
        for part in parts:
            obj = getattr(obj, part)
    except AttributeError:
        raise ConfigError(f"{field_name}: cannot import {path!r} ({module_name} has no {'.'.join(parts)})") from None
    return obj


def save_state_dict(module: nn.Module, path: Path) -> None:
    """The module's state_dict (tensors only, on the CPU), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({k: v.detach().cpu().clone() for k, v in module.state_dict().items()}, tmp)
    os.replace(tmp, path)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict saved by `save_state_dict`, read with weights_only=True (no code runs on load)."""
    if not path.is_file():
        raise ConfigError(f"{path}: weights file not found")
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------- spaces
def space_to_json(space: Any) -> dict[str, Any]:
    """{"class", "config"[, "config_class"]}: enough to rebuild `space` with `space_from_json`."""
    if not isinstance(space, ModelSpace):
        raise ConfigError(f"space: {type(space).__name__} is not a nas.spaces.ModelSpace; exporting models needs a "
                          "space whose build(arch) returns the torch module")
    cls = object_path(type(space))
    to_config = getattr(space, "to_config", None)
    if callable(to_config):
        return {"class": cls, "config": jsonio.plain(to_config(), "space.config")}
    cfg = getattr(space, "config", None)
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        data = cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)
        return {"class": cls, "config_class": object_path(type(cfg)), "config": jsonio.plain(data, "space.config")}
    raise ConfigError(f"space: {type(space).__name__} cannot be described as JSON: give it a `to_config()` method "
                      "and a `from_config(config)` classmethod, or a dataclass `config` attribute that its "
                      "constructor takes as its only argument")


def space_from_json(spec: Any, field_name: str = "space") -> ModelSpace:
    """The `ModelSpace` that `space_to_json` described."""
    if not isinstance(spec, Mapping) or "class" not in spec or "config" not in spec:
        raise ConfigError(f"{field_name}: expected {{'class': ..., 'config': ...}}, got {spec!r}")
    cls = import_object(spec["class"], f"{field_name}.class")
    config = spec["config"]
    try:
        if spec.get("config_class"):
            space = cls(import_object(spec["config_class"], f"{field_name}.config_class")(**config))
        elif hasattr(cls, "from_config"):
            space = cls.from_config(config)
        else:
            raise ConfigError(f"{field_name}: {spec['class']} has no from_config(config) and no config_class is given")
    except TypeError as e:
        raise ConfigError(f"{field_name}.config: does not fit {spec['class']} ({e})") from None
    if not isinstance(space, ModelSpace):
        raise ConfigError(f"{field_name}.class: {spec['class']} is not a nas.spaces.ModelSpace")
    return space


# ---------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class DataRef:
    """A dataset by name: `function(**kwargs)` returns {split: (x, y)} (e.g. `nas.datasets.mnist1d_splits`)."""

    function: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, function: Callable[..., Splits] | str, **kwargs: Any) -> "DataRef":
        path = function if isinstance(function, str) else object_path(function)
        return cls(path, jsonio.plain(kwargs, "data.kwargs"))

    def load(self) -> Splits:
        splits = import_object(self.function, "data.function")(**self.kwargs)
        if not isinstance(splits, Mapping):
            raise ConfigError(f"data.function: {self.function} returned {type(splits).__name__}, expected "
                              "{split: (x, y)}")
        return splits

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "kwargs": dict(self.kwargs)}


def _chunks(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    return (x[i:i + batch_size] for i in range(0, len(x), batch_size))


# ---------------------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild a workdir's models: the space, where weights come from, the data, the metric recipes."""

    space: dict[str, Any]
    weights: str = "supernet"
    data: DataRef | None = None
    calibration: dict[str, Any] | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.weights not in WEIGHT_KINDS:
            raise ConfigError(f"weights: expected one of {', '.join(WEIGHT_KINDS)}, got {self.weights!r}")
        for name, recipe in self.metrics.items():
            check_recipe(name, recipe)
        cal = self.calibration
        if cal is not None:
            if not isinstance(cal, Mapping) or not isinstance(cal.get("split"), str):
                raise ConfigError(f"calibration.split: name the split batch norm is recalibrated on, got {cal!r}")
            for key in ("size", "batch_size"):
                if not isinstance(cal.get(key), int) or cal[key] < 2:
                    raise ConfigError(f"calibration.{key}: expected an int >= 2, got {cal.get(key)!r}")
        needs_data = cal is not None or any(r["kind"] == "accuracy" for r in self.metrics.values())
        if needs_data and self.data is None:
            raise ConfigError("data: the calibration and accuracy recipes need a dataset (DataRef.of(function, ...))")

    def to_json(self) -> dict[str, Any]:
        return {"format": SPEC_FORMAT, "version": VERSION, "space": self.space, "weights": self.weights,
                "data": self.data.to_json() if self.data else None, "calibration": self.calibration,
                "metrics": self.metrics, "notes": self.notes}

    @classmethod
    def from_json(cls, d: Any, where: str = MODEL_SPEC) -> "ModelSpec":
        if not isinstance(d, Mapping) or d.get("format") != SPEC_FORMAT:
            raise ConfigError(f"{where}: format: not a model spec (expected {SPEC_FORMAT!r})")
        if d.get("version") != VERSION:
            raise ConfigError(f"{where}: version {d.get('version')!r} is not supported (this toolkit reads {VERSION})")
        for key in ("space", "weights", "metrics"):
            if key not in d:
                raise ConfigError(f"{where}: field {key!r} is missing")
        data = d.get("data")
        if data is not None and (not isinstance(data, Mapping) or "function" not in data):
            raise ConfigError(f"{where}: data: expected {{'function': ..., 'kwargs': {{...}}}}, got {data!r}")
        return cls(dict(d["space"]), d["weights"], DataRef(data["function"], dict(data.get("kwargs") or {}))
                   if data else None, d.get("calibration"), dict(d["metrics"]), dict(d.get("notes") or {}))

    def build_space(self) -> ModelSpace:
        return space_from_json(self.space)

    def load_data(self) -> Splits:
        if self.data is None:
            raise ConfigError("data: this model spec names no dataset")
        return self.data.load()

    def calibrated(self, module: nn.Module, data: Splits, call: Callable[[Any], Any] | None = None) -> nn.Module:
        """`module` with batch-norm statistics re-estimated on the calibration batches, in eval mode."""
        from nas.spaces.training import recalibrate_bn

        if self.calibration is None:
            return module.eval()
        x, _ = split(data, self.calibration["split"], "calibration.split")
        batches = _chunks(x[:self.calibration["size"]], self.calibration["batch_size"])
        return recalibrate_bn(module, batches, call)

    def evaluator(self, supernet: nn.Module, data: Splits) -> Callable[[Mapping[str, Any]], dict[str, float]]:
        """Weight inheritance exactly as `export` rebuilds it: every accuracy metric of the spec of
        `supernet.subnet(arch)` after batch-norm recalibration. Use it as (part of) the search's `evaluate`."""
        from nas.spaces.training import accuracy

        recipes = {n: r for n, r in self.metrics.items() if r["kind"] == "accuracy"}
        if not recipes:
            raise ConfigError("metrics: the spec has no accuracy metric to evaluate")

        def evaluate(arch: Mapping[str, Any]) -> dict[str, float]:
            sub = self.calibrated(supernet.subnet(arch), data)
            out = {}
            for name, r in recipes.items():
                x, y = split(data, r["split"], f"metrics.{name}.split")
                out[name] = accuracy(sub, x, y, r.get("batch_size", 250)) * float(r.get("scale", 1.0))
            return out

        return evaluate


def record_model(workdir: str | Path, space: ModelSpace, *, supernet: nn.Module | None = None,
                 data: DataRef | None = None, calibration: Mapping[str, Any] | None = None,
                 metrics: Mapping[str, Mapping[str, Any]] | None = None,
                 notes: Mapping[str, Any] | None = None) -> ModelSpec:
    """Write `model.json` (and `supernet.pt` when `supernet` is given) to `workdir`, so `nas.export` can
    rebuild any architecture of the search as a standalone model. Without a supernet, the weights are
    those `save_trial_weights` stores per trial (a search that trains every architecture from scratch).
    `calibration` ({"split", "size", "batch_size"}) re-estimates batch-norm statistics of supernet subnets.
    """
    spec = ModelSpec(space_to_json(space), "supernet" if supernet is not None else "trained", data,
                     dict(calibration) if calibration is not None else None,
                     {k: dict(v) for k, v in (metrics or {}).items()}, jsonio.plain(dict(notes or {}), "notes"))
    if space_from_json(spec.space).fingerprint() != space.fingerprint():
        raise ConfigError(f"space: {spec.space['class']} rebuilt from its JSON config is not the same space")
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    if supernet is not None:
        save_state_dict(supernet, wd / SUPERNET)
    jsonio.write_json(wd / MODEL_SPEC, spec.to_json())
    return spec


def load_model_spec(workdir: str | Path) -> ModelSpec:
    """The `ModelSpec` recorded in `workdir` (ConfigError saying how to record one when there is none)."""
    path = Path(workdir) / MODEL_SPEC
    if not path.is_file():
        raise ConfigError(f"{workdir} has no {MODEL_SPEC}: record how to rebuild the search's models with "
                          "nas.modelspec.record_model(workdir, space, supernet=..., data=..., metrics=...)")
    return ModelSpec.from_json(jsonio.read_json(path, "model spec"), str(path))


def save_trial_weights(workdir: str | Path, arch: Mapping[str, Any], module: nn.Module) -> Path:
    """Store a trained network's weights as weights/<arch_id>.pt (for searches that train from scratch)."""
    path = Path(workdir) / TRIAL_WEIGHTS / f"{Architecture(arch).id}.pt"
    save_state_dict(module, path)
    return path


def load_supernet(spec: ModelSpec, workdir: str | Path, space: ModelSpace | None = None) -> nn.Module:
    """The workdir's trained supernet (weights "supernet"), in eval mode."""
    space = space or spec.build_space()
    make = getattr(space, "supernet", None)
    if not callable(make):
        raise ConfigError(f"space.class: {spec.space['class']} has no supernet(); weights 'supernet' needs one")
    supernet = make()
    try:
        supernet.load_state_dict(load_state_dict(Path(workdir) / SUPERNET), strict=True)
    except RuntimeError as e:
        raise ConfigError(f"{Path(workdir) / SUPERNET}: does not fit the space in {MODEL_SPEC} ({_first(e)})") from None
    return supernet.eval()


def standalone(spec: ModelSpec, workdir: str | Path, arch: Mapping[str, Any], data: Splits | None,
               space: ModelSpace | None = None, supernet: nn.Module | None = None) -> nn.Module:
    """The standalone module of `arch`: sliced from the supernet with batch norm recalibrated, or the
    trial's own trained weights. Eval mode."""
    space = space or spec.build_space()
    arch = space.validate(arch)
    if spec.weights == "supernet":
        supernet = supernet if supernet is not None else load_supernet(spec, workdir, space)
        module = supernet.subnet(arch)
        return spec.calibrated(module, data) if spec.calibration is not None and data is not None else module.eval()
    path = Path(workdir) / TRIAL_WEIGHTS / f"{arch.id}.pt"
    if not path.is_file():
        raise ConfigError(f"trial weights {path} not found: the search must call nas.modelspec.save_trial_weights "
                          "for every architecture it trains")
    module = space.build(arch)
    module.load_state_dict(load_state_dict(path), strict=True)
    return module.eval()


# ---------------------------------------------------------------------------------------- exported subnets
def subnet_json(space_spec: Mapping[str, Any], arch: Architecture, module: nn.Module,
                input_shape: list[int], evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The `model.json` of an exported model: how `load_subnet` rebuilds the module (space + arch)."""
    return {"format": SUBNET_FORMAT, "version": VERSION, "space": dict(space_spec), "arch": arch.to_dict(),
            "arch_id": arch.id, "module": {"class": object_path(type(module)), "built_by": "space.build(arch)"},
            "weights": WEIGHTS, "input": {"shape": input_shape, "dtype": "float32", "batch_dim": 0},
            "evaluation": dict(evaluation)}


def read_subnet_json(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(directory, model.json contents) of an exported model, given its directory or its model.json."""
    p = Path(path)
    folder = p.parent if p.is_file() else p
    file = folder / SUBNET
    if not file.is_file():
        raise ConfigError(f"{path}: no exported model here ({SUBNET} not found)")
    d = jsonio.read_json(file, "exported model spec")
    if not isinstance(d, Mapping) or d.get("format") != SUBNET_FORMAT:
        raise ConfigError(f"{file}: format: not an exported model (expected {SUBNET_FORMAT!r})")
    if d.get("version") != VERSION:
        raise ConfigError(f"{file}: version {d.get('version')!r} is not supported (this toolkit reads {VERSION})")
    for key in ("space", "arch", "module", "weights"):
        if key not in d:
            raise ConfigError(f"{file}: field {key!r} is missing")
    return folder, dict(d)


def _first(e: Exception) -> str:
    """The first problem torch's load_state_dict reports (its message lists every tensor)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return " ".join(lines[:2]) + (f" ... and {len(lines) - 2} more" if len(lines) > 2 else "")


def load_subnet(path: str | Path) -> nn.Module:
    """The exported model in `path` (a directory written by `nas.export`) as a torch module in eval mode.

    Rebuilt from its JSON (space class + config + architecture) and its state_dict, read with
    weights_only=True; the supernet and the search are not needed.
    """
    folder, d = read_subnet_json(path)
    space = space_from_json(d["space"], f"{folder / SUBNET}: space")
    module = space.build(space.validate(d["arch"]))
    want = d["module"].get("class") if isinstance(d["module"], Mapping) else None
    if want != object_path(type(module)):
        raise ConfigError(f"{folder / SUBNET}: module.class is {want!r} but the space builds "
                          f"{object_path(type(module))}")
    try:
        module.load_state_dict(load_state_dict(folder / str(d["weights"])), strict=True)
    except RuntimeError as e:
        raise ConfigError(f"{folder / str(d['weights'])}: does not fit the architecture in {SUBNET} ({_first(e)})") from None
    return module.eval()
