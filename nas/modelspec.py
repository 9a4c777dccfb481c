"""How a search's architectures become standalone models: the model spec of a workdir and `load_subnet`.

A workdir whose architectures can be exported holds, beside its journal (see `record_model`):

    model.json            {"format": "nas-model-spec", "version": 1,
                           "space": {"class": "nas.spaces.ofa.OFASpace", "config_class": ..., "config": {...}},
                           "weights": "supernet" | "trained", "data": {"function": ..., "kwargs": {...}},
                           "calibration": {"split": "train", "size": 1000, "batch_size": 250} | null,
                           "metrics": {"accuracy_pct": {"kind": "accuracy", "split": "valid", "scale": 100}, ...},
                           "notes": {...}[, "supernet_kwargs": {"affine": true, ...}]}
    supernet.pt           the trained supernet's state_dict (weights "supernet"), rebuilt as
                          `space.supernet(**supernet_kwargs)` (a supernet's own `supernet_kwargs()`), or
    weights/<arch_id>.pt  each trained network's state_dict (weights "trained", saved by `save_trial_weights`)

The space is a `ModelSpace` named by its class path (or, for a class defined in a script, the script's
path and the class name: {"class": "DigitsCNN", "script": "/abs/job.py"}) and rebuilt from JSON (its
dataclass `config`, its own `to_config()` / `from_config()`, or a constructor without arguments);
`space.build(arch)` gives the standalone module. Every file is JSON or a tensor-only state_dict read
with `torch.load(..., weights_only=True)`: nothing is pickled.

`nas run` tells the script it runs the workdir it was given through the environment variable
`NAS_WORKDIR` (`run_workdir()` reads it), so a script records its model spec and trial weights with
`record_model(nas.run_workdir(), space, ...)` and `save_trial_weights(nas.run_workdir(), arch, model)`.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import pickle
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas import jsonio, store
from nas.architecture import Architecture
from nas.errors import ConfigError, JournalError
from nas.experiment import check_same_search, space_header
from nas.spaces.spec_difference import first_difference
from nas.measure import Splits, check_recipe, split
from nas.result import fidelity_levels
from nas.scripts import class_from_json, class_name, class_to_json, import_object, object_path, same_class
from nas.spaces.model_space import ModelSpace, space_settings
from nas.strategies.multifidelity import FidelitySpace

SPEC_FORMAT, SUBNET_FORMAT, VERSION = "nas-model-spec", "nas-subnet", 1
MODEL_SPEC = store.MODEL_SPEC      # in a search workdir: how to rebuild its models
SUPERNET = "supernet.pt"           # in a search workdir: the supernet's state_dict
TRIAL_WEIGHTS = "weights"          # in a search workdir: weights/<arch_id>.pt per trained trial
SUBNET = "model.json"              # in an exported model's directory: how to rebuild that module
WEIGHTS = "weights.pt"             # in an exported model's directory: its state_dict
PROGRAM = "model.pt2"              # in an exported model's directory: the module as a torch.export program
WEIGHT_KINDS = ("supernet", "trained")
LOAD_KINDS = ("build", "program")  # how load_subnet gets the module: space.build(arch) + weights, or model.pt2
# Which network export and verify re-measure (card.json / export.json / verify.json "timed"): the one the search
# priced when it can be rebuilt, else the torch.export program, labelled as such.
TIMED = {"eager": "space.build(arch) + weights.pt, eager: the network the search priced",
         "program": "model.pt2, the torch.export program nas.load_subnet returns for this space: not the network the "
                    "search priced (a GraphModule with per-call input checks, often 1.5-2x slower on small models)"}
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
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, ValueError, OSError) as e:  # empty, truncated, not torch's
        said = f": {_first(e)}" if str(e) else " (empty or cut short)"
        raise ConfigError(f"{path}: not a readable weights file ({type(e).__name__}{said})") from None
    if not isinstance(state, Mapping):
        raise ConfigError(f"{path}: not a state_dict (expected a dict of tensors, got {type(state).__name__})")
    return dict(state)


# ---------------------------------------------------------------------------------------- spaces
def space_to_json(space: Any) -> dict[str, Any]:
    """{"class"[, "script"], "config"[, "config_class"]}: enough to rebuild `space` with `space_from_json`."""
    check_model_space(space)
    ref = class_to_json(type(space))
    config = space_settings(space)  # to_config(), else a dataclass `config`, as plain data
    if config is not None and callable(getattr(space, "to_config", None)):
        return {**ref, "config": config}
    if config is not None:  # the dataclass is rebuilt from its class too
        cfg_ref = class_to_json(type(space.config))
        if cfg_ref.get("script", ref.get("script")) != ref.get("script"):
            raise ConfigError(f"space: {type(space.config).__qualname__} and {type(space).__qualname__} must be "
                              "defined in the same script")
        return {**ref, "config_class": cfg_ref["class"], "config": config}
    if _no_arguments(type(space)):
        return {**ref, "config": None}  # rebuilt as cls(); record_model checks it is the same space
    raise ConfigError(f"space: {type(space).__name__} cannot be described as JSON: give it a constructor without "
                      "arguments, or a `to_config()` method and a `from_config(config)` classmethod, or a dataclass "
                      "`config` attribute that its constructor takes as its only argument")


def check_model_space(space: Any) -> None:
    """Refuse a space that is not a `ModelSpace`: exporting needs `build(arch)` to return the torch module."""
    if not isinstance(space, ModelSpace):
        raise ConfigError(f"space: {type(space).__name__} is not a nas.spaces.ModelSpace; exporting models needs a "
                          "space whose build(arch) returns the torch module")


def _no_arguments(cls: type) -> bool:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


def space_from_json(spec: Any, field_name: str = "space") -> ModelSpace:
    """The `ModelSpace` that `space_to_json` described."""
    if not isinstance(spec, Mapping) or "class" not in spec or "config" not in spec:
        raise ConfigError(f"{field_name}: expected {{'class': ..., 'config': ...}}, got {spec!r}")
    cls = class_from_json(spec, field_name)
    config = spec["config"]
    try:
        if spec.get("config_class"):
            space = cls(class_from_json(spec, field_name, "config_class")(**config))
        elif config is None:
            space = cls()
        elif hasattr(cls, "from_config"):
            space = _from_config(cls, config, f"{field_name}.config")
        else:
            raise ConfigError(f"{field_name}: {spec['class']} has no from_config(config) and no config_class is given")
    except TypeError as e:
        raise ConfigError(f"{field_name}.config: does not fit {spec['class']} ({e})") from None
    if not isinstance(space, ModelSpace):
        raise ConfigError(f"{field_name}.class: {spec['class']} is not a nas.spaces.ModelSpace")
    return space


def _from_config(cls: Any, config: Any, field_name: str) -> ModelSpace:
    """`cls.from_config(config)`, telling a `from_config` that takes `field_name` (nas.nn's `ModuleSpace`, whose
    config names the model's script) where its config is, so its errors name the field's full path."""
    try:
        takes = "field_name" in inspect.signature(cls.from_config).parameters
    except (TypeError, ValueError):
        takes = False
    return cls.from_config(config, field_name=field_name) if takes else cls.from_config(config)


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
    source: str = field(default=MODEL_SPEC, compare=False)  # the model.json read (`from_json`'s `where`), for errors
    supernet_kwargs: dict[str, Any] = field(default_factory=dict)  # space.supernet(**these) rebuilds supernet.pt's

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
        if not isinstance(self.supernet_kwargs, Mapping) or not all(isinstance(k, str) for k in self.supernet_kwargs):
            raise ConfigError(f"supernet_kwargs: expected {{argument: value}} of space.supernet(), got "
                              f"{self.supernet_kwargs!r}")
        needs_data = cal is not None or any(r["kind"] == "accuracy" for r in self.metrics.values())
        if needs_data and self.data is None:
            raise ConfigError("data: the calibration and accuracy recipes need a dataset (DataRef.of(function, ...))")

    def to_json(self) -> dict[str, Any]:
        return {"format": SPEC_FORMAT, "version": VERSION, "space": self.space, "weights": self.weights,
                "data": self.data.to_json() if self.data else None, "calibration": self.calibration,
                "metrics": self.metrics, "notes": self.notes,
                **({"supernet_kwargs": self.supernet_kwargs} if self.supernet_kwargs else {})}

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
        kwargs = d.get("supernet_kwargs") or {}  # absent in files written before supernets recorded them
        if not isinstance(kwargs, Mapping):
            raise ConfigError(f"{where}: supernet_kwargs: expected {{argument: value}}, got {kwargs!r}")
        return cls(dict(d["space"]), d["weights"], DataRef(data["function"], dict(data.get("kwargs") or {}))
                   if data else None, d.get("calibration"), dict(d["metrics"]), dict(d.get("notes") or {}), where,
                   dict(kwargs))

    def build_space(self) -> ModelSpace:
        """The space, rebuilt from `space`; its errors name the model.json it was read from and the field."""
        return space_from_json(self.space, f"{self.source}: space")

    def load_data(self) -> Splits:
        if self.data is None:
            raise ConfigError("data: this model spec names no dataset")
        return self.data.load()

    def calibrated(self, module: nn.Module, data: Splits, call: Callable[[Any], Any] | None = None) -> nn.Module:
        """`module` with batch-norm statistics re-estimated on the calibration batches (the first `size` samples in
        batches of `batch_size`, each weighted by its number of samples: `recalibrate_bn`), in eval mode."""
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


def single_input(space: Any, arch: Mapping[str, Any] | None = None, batch_size: int = 1) -> torch.Tensor:
    """The space's example input for `arch` (default: its first sample), refused unless it is one tensor: export
    (torch.export, ONNX, the output checks) feeds exported models one input tensor."""
    if arch is None:
        arch = space.sample(np.random.default_rng(0))
    example = space.example_input(arch, batch_size)
    if not isinstance(example, torch.Tensor):
        raise ConfigError(f"space: export takes models of one input tensor, and {type(space).__name__}'s "
                          f"example_input returns {type(example).__name__}; search such a model without "
                          "record_model / nas.export, or wrap its inputs in one tensor")
    return example


_STAGED: dict[Path, Path] = {}
"""A workdir -> the folder `record_model` writes its files to instead, inside `staged_records`."""


@contextlib.contextmanager
def staged_records(workdir: str | Path, staging: str | Path) -> Iterator[None]:
    """Inside the block, `record_model(workdir, ...)` writes into `staging`: `nas run` imports a script so, and moves
    the files into the workdir only once it holds this search (a refused run leaves its model.json as it was)."""
    key = Path(workdir).resolve()
    _STAGED[key] = Path(staging)
    try:
        yield
    finally:
        _STAGED.pop(key, None)


def record_model(workdir: str | Path, space: ModelSpace, *, supernet: nn.Module | None = None,
                 data: DataRef | None = None, calibration: Mapping[str, Any] | None = None,
                 metrics: Mapping[str, Mapping[str, Any]] | None = None,
                 notes: Mapping[str, Any] | None = None) -> ModelSpec:
    """Write `model.json` (and `supernet.pt` when `supernet` is given) to `workdir`, so `nas.export` can
    rebuild any architecture of the search as a standalone model. Without a supernet, the weights are
    those `save_trial_weights` stores per trial (a search that trains every architecture from scratch).
    `calibration` ({"split", "size", "batch_size"}) re-estimates batch-norm statistics of supernet subnets.

    A supernet built with arguments (`space.supernet(affine=True)` of a cell space) says so through its
    `supernet_kwargs()`, recorded in model.json for export to rebuild it. A supernet export could not rebuild
    from the space (one of another config) or slice subnets from (PC-DARTS's `partial_channels`) is refused
    with a ConfigError naming the difference, before the search spends its budget on it.

    A workdir whose journal holds a search over another space (other decisions, field order or settings, e.g.
    `head_channels`) is refused with a JournalError naming the difference, before anything is written: its
    model.json and supernet.pt stay those of the search it holds, which therefore still exports as searched.
    """
    check_model_space(space)  # first: a space that is not a ModelSpace has no example input either
    try:
        single_input(space)
    except NotImplementedError:  # no example input yet: export asks for one, and checks it then
        pass
    spec = ModelSpec(space_to_json(space), "supernet" if supernet is not None else "trained", data,
                     dict(calibration) if calibration is not None else None,
                     {k: dict(v) for k, v in (metrics or {}).items()}, jsonio.plain(dict(notes or {}), "notes"),
                     supernet_kwargs=_supernet_kwargs(supernet))
    rebuilt = space_from_json(spec.space)
    if rebuilt.fingerprint() != space.fingerprint():
        raise ConfigError(f"space: {spec.space['class']} rebuilt from its JSON config is not the same space")
    if supernet is not None:
        _check_rebuilds(spec, rebuilt, supernet)
    wd = _STAGED.get(Path(workdir).resolve())  # `nas run` checks the workdir before the staged files move in
    same_search = True
    if wd is None:
        wd = Path(workdir)
        _check_journal_space(wd, space)
    else:  # `nas run` refuses a workdir of another search itself, once the script is loaded
        try:
            _check_journal_space(Path(workdir), space)
        except JournalError:
            same_search = False
    if same_search:
        _check_weights_kept(Path(workdir), supernet)
    wd.mkdir(parents=True, exist_ok=True)
    if supernet is not None:
        save_state_dict(supernet, wd / SUPERNET)
    jsonio.write_json(wd / MODEL_SPEC, spec.to_json())
    return spec


def _supernet_kwargs(supernet: nn.Module | None) -> dict[str, Any]:
    """The arguments `space.supernet(...)` built `supernet` with, as the supernet says (`supernet_kwargs()`, e.g. a
    cell supernet's `affine`); {} for one that does not say (built without arguments)."""
    say = getattr(supernet, "supernet_kwargs", None)
    if supernet is None or not callable(say):
        return {}
    kwargs = say()
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"supernet: {type(supernet).__name__}.supernet_kwargs() returned {type(kwargs).__name__}, "
                          "expected {argument: value}")
    return jsonio.plain(dict(kwargs), "supernet.supernet_kwargs()")


def _call(kwargs: Mapping[str, Any]) -> str:
    """`space.supernet(affine=True, ...)`: how export rebuilds a supernet, for messages."""
    return "space.supernet(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"


@torch.random.fork_rng(devices=[])  # building the supernet draws its initial weights: the caller's RNG stays as it was
def _check_rebuilds(spec: ModelSpec, space: ModelSpace, supernet: nn.Module) -> None:
    """ConfigError naming the difference when export could not rebuild `supernet` as `load_supernet` does (the space
    from model.json, `space.supernet(**spec.supernet_kwargs)`, its state_dict loaded strictly) or slice an
    architecture from it (`subnet(arch)`): said now, before the search spends its budget, not at export."""
    built_by = getattr(supernet, "space", None)
    if isinstance(built_by, ModelSpace) and type(built_by) is type(space):
        where, was, now = first_difference(space_settings(space), space_settings(built_by))
        if where is not None or built_by.fingerprint() != space.fingerprint():
            at = f"at {'.'.join(where)}: {now!r} there, {was!r} in the space given" if where else "its decisions differ"
            raise ConfigError(f"supernet: it was built by a space of other settings than this {type(space).__name__} "
                              f"({at}), so export could not rebuild it from the space recorded; record the supernet "
                              "this space's supernet() builds, or the space that built it")
    rebuilt = _rebuilt(spec, space, SUPERNET)
    try:
        rebuilt.load_state_dict(supernet.state_dict(), strict=True)
    except RuntimeError as e:
        raise ConfigError(f"supernet: its weights do not fit {_call(spec.supernet_kwargs)} of this "
                          f"{type(space).__name__}, which export rebuilds it as ({_first(e)}); record the supernet "
                          "this space's supernet() builds") from None
    if not callable(getattr(rebuilt, "subnet", None)):
        raise ConfigError(f"supernet: {type(rebuilt).__name__} has no subnet(arch), which export slices each "
                          "architecture with; record without a supernet and save each trial's weights instead")
    try:
        rebuilt.subnet(space.sample(np.random.default_rng(0)))
    except ConfigError as e:
        raise ConfigError(f"supernet: export slices each architecture from it (supernet.subnet(arch)), which it "
                          f"refuses: {e}") from None


def _rebuilt(spec: ModelSpec, space: ModelSpace, where: Any) -> nn.Module:
    """`space.supernet(**spec.supernet_kwargs)`, untrained; ConfigError naming `where` when it cannot be built."""
    make = getattr(space, "supernet", None)
    if not callable(make):
        raise ConfigError(f"space.class: {spec.space['class']} has no supernet(); weights 'supernet' needs one to "
                          f"rebuild {where}")
    try:
        return make(**spec.supernet_kwargs)
    except TypeError as e:
        raise ConfigError(f"{spec.source}: supernet_kwargs: {_call(spec.supernet_kwargs)} does not fit "
                          f"{spec.space['class']}.supernet ({e})") from None


def searched_space(config: Mapping[str, Any], space: Any) -> Any:
    """The space the search of journal header `config` ran over, from the one model.json records: `space`, or of a
    multi-fidelity search the `FidelitySpace` over it with the journal's field and levels (a FidelitySpace builds no
    model, so model.json records its base space). Where `space` already has the field, `space` (a comparison of
    fingerprints then names the difference)."""
    found = fidelity_levels(config)
    if found is None or found[0] in space.fields:
        return space
    field, levels, _ = found
    return FidelitySpace(space, levels, field)


def _check_journal_space(workdir: Path, space: ModelSpace) -> None:
    """Read-only: JournalError naming the field or setting that differs when `workdir`'s journal holds a search
    over another space than `space` (nothing without a journal; the same space, a resume, passes)."""
    journal = store.Journal(workdir)
    if not journal.exists():
        return
    config = journal.read().config
    try:  # only the space: the problem and strategy are the search's, and record_model does not know them
        check_same_search(journal.workdir, config, jsonio.plain(space_header(searched_space(config, space)), "space"),
                          (), ("space",))
    except JournalError as e:
        raise JournalError(f"record_model: {e} (nothing was written: its {MODEL_SPEC} stays that of the search "
                           "it holds)") from None


def _check_weights_kept(workdir: Path, supernet: nn.Module | None) -> None:
    """JournalError when `workdir`'s journal holds scored trials and this record would export them from other
    weights than they were scored with: supernet.pt with other weights than `supernet`'s, or a switch between a
    supernet and per-trial weights (`weights/<arch_id>.pt`). The same weights (a resume that loads them, or
    retrains them bit for bit) pass; so does an unreadable file, which needs replacing."""
    path, journal = workdir / SUPERNET, store.Journal(workdir)
    if not journal.exists():
        return
    try:
        scored = sum(1 for t in journal.read().trials if t.status == "ok")
    except JournalError:
        return  # a damaged journal is refused where it is read
    if not scored:
        return
    kind = "supernet" if supernet is not None else "trained"
    try:
        recorded = load_model_spec(workdir).weights if (workdir / MODEL_SPEC).is_file() else None
    except ConfigError:
        recorded = None  # a damaged model.json needs the new one
    if recorded is not None and recorded != kind:
        what = {"supernet": f"a supernet's ({path})", "trained": "each trial's own (weights/<arch_id>.pt)"}
        raise JournalError(f"record_model: {workdir} holds {scored} trial(s) scored with {what[recorded]} weights, "
                           f"and this record would export them from {what[kind]}: exports would no longer match "
                           f"the search. Record into a new workdir, or record as before "
                           f"({'supernet=...' if recorded == 'supernet' else 'without a supernet'}); nothing was "
                           "written")
    if supernet is None or not path.is_file():
        return
    try:
        old = load_state_dict(path)
    except ConfigError:
        return  # a damaged weights file needs the new one
    new = supernet.state_dict()
    if not (old.keys() == new.keys() and all(torch.equal(old[k], new[k].detach().cpu()) for k in old)):
        raise JournalError(f"record_model: {workdir} holds {scored} trial(s) scored with the weights in {path}, and "
                           "these weights differ: exports would no longer match the search. Record into a new "
                           "workdir, or reuse the recorded weights (nas.modelspec.load_supernet(nas.modelspec."
                           f"load_model_spec(workdir), workdir)) instead of training again; nothing was written")


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
    path = Path(workdir) / SUPERNET
    supernet = _rebuilt(spec, space, path)
    try:
        supernet.load_state_dict(load_state_dict(path), strict=True)
    except RuntimeError as e:
        raise ConfigError(f"{path}: does not fit the space in {MODEL_SPEC} as {_call(spec.supernet_kwargs)} "
                          f"rebuilds it ({spec.source}): the supernet saved was built of another space config or "
                          f"with other arguments than {MODEL_SPEC} records ({_first(e)})") from None
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
    try:
        module.load_state_dict(load_state_dict(path), strict=True)
    except RuntimeError as e:
        raise ConfigError(f"{path}: does not fit architecture {arch.id} ({_first(e)})") from None
    return module.eval()


# ---------------------------------------------------------------------------------------- exported subnets
@dataclass(frozen=True)
class RecordedInput:
    """The input an exported model was traced with (model.json's "input": per-example shape and dtype), giving
    `example_input(arch, batch_size)` as its space would, so an exported model is re-measured without it."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    @classmethod
    def of(cls, info: Any, where: str) -> "RecordedInput":
        dtype = info.get("dtype", "float32") if isinstance(info, Mapping) else None
        shape = info.get("shape") if isinstance(info, Mapping) else None
        if not isinstance(shape, list) or not all(isinstance(n, int) and n > 0 for n in shape):
            raise ConfigError(f"{where}: input.shape: expected a list of positive ints, got {shape!r}")
        if not isinstance(getattr(torch, str(dtype), None), torch.dtype):
            raise ConfigError(f"{where}: input.dtype: {dtype!r} is not a torch dtype")
        return cls(tuple(shape), str(dtype))

    def example_input(self, arch: Mapping[str, Any] | None = None, batch_size: int = 1) -> torch.Tensor:
        dtype = getattr(torch, self.dtype)
        if dtype.is_floating_point:
            return torch.randn(batch_size, *self.shape, generator=torch.Generator().manual_seed(0)).to(dtype)
        return torch.zeros(batch_size, *self.shape, dtype=dtype)


def dtype_name(x: torch.Tensor) -> str:
    """"float32" for torch.float32: the name `getattr(torch, name)` reads back."""
    return str(x.dtype).removeprefix("torch.")


def save_program(module: nn.Module, example: torch.Tensor, path: Path) -> dict[str, Any]:
    """`module` (in eval mode) as a `torch.export` program, batch dimension dynamic, written with
    torch.export.save: it loads with `torch.export.load(path).module()` and needs no code of the model's."""
    module.eval()
    try:
        program = torch.export.export(module, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        dynamic = True
    except Exception:  # code that fixes the batch size (torch raises several kinds): export for the example's
        program = torch.export.export(module, (example,))
        dynamic = False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")  # torch.export.save wants the .pt2 suffix
    torch.export.save(program, tmp)
    os.replace(tmp, path)
    return {"file": path.name, "dynamic_batch": dynamic,
            "load": f"torch.export.load({path.name!r}).module()"}


def _frozen_train(self: nn.Module, mode: bool = True) -> nn.Module:
    if mode:
        raise ConfigError("this exported model is a torch.export program captured in eval mode and cannot be "
                          "trained; to fine-tune it, rebuild it with its space (space.build(arch)) and load weights.pt")
    return self


class _HeldBack(logging.Filter):
    """Drops the traceback torch.export.load logs for a file it cannot read, keeping its error's first sentence
    for the ConfigError that names the file."""

    def __init__(self) -> None:
        super().__init__()
        self.why = ""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        self.why = self.why or f"{type(error).__name__}: {str(error).strip().split('. ')[0]}"
        return False


def onnx_session(path: Path) -> Any:
    """An onnxruntime session on one thread without spin-waiting (latency timed next must not compete with it)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxModule(nn.Module):
    """An ONNX file run by onnxruntime behind a torch module's call (tensor in, tensor out), so the recipes'
    accuracy and latency code and a caller's `evaluate` measure it like the torch model. Inputs are reshaped
    to the per-example `shape` the file was exported with ((N, L) -> (N, 1, L))."""

    def __init__(self, path: Path, shape: Sequence[int], dtype: torch.dtype) -> None:
        super().__init__()
        self.path, self.shape, self.dtype, self.session = path, tuple(shape), dtype, onnx_session(path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() != len(x) * int(np.prod(self.shape)):
            raise ConfigError(f"{self.path}: takes inputs of {list(self.shape)} per example (the traced input), and "
                              f"these have {list(x.shape[1:])}: give data of that length (pad it) to measure this file")
        x = x.reshape(len(x), *self.shape).to(self.dtype)
        return torch.from_numpy(self.session.run(None, {"input": x.numpy()})[0])


def load_program(path: str | Path) -> nn.Module:
    """The module of a `torch.export` program file, in eval mode (it was captured in eval mode; `eval()`
    keeps it there, `train()` is refused)."""
    if not Path(path).is_file():
        raise ConfigError(f"{path}: program file not found")
    held = _HeldBack()  # torch.export.load logs a traceback before it raises on a damaged file: said here instead
    logging.getLogger("torch.export").addFilter(held)
    try:
        module = torch.export.load(str(path)).module()
    except Exception as e:  # a damaged file raises many kinds (BadZipFile, RuntimeError, KeyError, ...)
        why = "empty file" if Path(path).stat().st_size == 0 else held.why or f"{type(e).__name__}: {_first(e)}"
        raise ConfigError(f"{path}: not a readable torch.export program ({why}); export the model again") from None
    finally:
        logging.getLogger("torch.export").removeFilter(held)
    for m in module.modules():
        m.training = False
    module.train = types.MethodType(_frozen_train, module)  # type: ignore[method-assign]
    module.eval = types.MethodType(lambda self: self, module)  # type: ignore[method-assign]
    return module


def loads_by_build(space_spec: Mapping[str, Any], module: nn.Module) -> bool:
    """Whether `load_subnet` can rebuild this module from toolkit code alone: the space, its config class and
    every submodule's class come from `nas` or `torch`. Otherwise it loads the exported program."""
    def ours(path: Any) -> bool:
        return isinstance(path, str) and path.split(".")[0] in ("nas", "torch")

    classes = [space_spec.get("class")] + ([space_spec["config_class"]] if space_spec.get("config_class") else [])
    return ("script" not in space_spec and all(ours(c) for c in classes)
            and all(ours(type(m).__module__) for m in module.modules()))


def subnet_json(space_spec: Mapping[str, Any], arch: Architecture, module: nn.Module, example: torch.Tensor,
                evaluation: Mapping[str, Any], program: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `model.json` of an exported model: how `load_subnet` gets the module back (space + arch + weights,
    or the torch.export program) and the input it takes."""
    load = "build" if loads_by_build(space_spec, module) else "program"
    if load == "program" and not (program and program.get("file")):
        raise ConfigError(f"space: {space_spec.get('class')} is not toolkit code, so its models load from their "
                          "torch.export program, and none was written")
    return {"format": SUBNET_FORMAT, "version": VERSION, "space": dict(space_spec), "arch": arch.to_dict(),
            "arch_id": arch.id, "module": {"class": class_name(type(module)), "built_by": "space.build(arch)"},
            "load": load, "weights": WEIGHTS, "program": dict(program) if program else None,
            "input": {"shape": list(example.shape[1:]), "dtype": dtype_name(example), "batch_dim": 0},
            "evaluation": dict(evaluation)}


def read_subnet_json(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(directory, model.json contents) of an exported model, given its directory or its model.json."""
    p = Path(path)
    folder = p.parent if p.is_file() else p
    file = folder / SUBNET
    if not file.is_file():
        aside = moved_aside(folder.parent, folder.name)  # an export killed while swapping models in moved it
        raise ConfigError(f"{path}: no exported model here ({SUBNET} not found){aside}")
    d = jsonio.read_json(file, "exported model spec")
    if not isinstance(d, Mapping) or d.get("format") != SUBNET_FORMAT:
        raise ConfigError(f"{file}: format: not an exported model (expected {SUBNET_FORMAT!r})")
    if d.get("version") != VERSION:
        raise ConfigError(f"{file}: version {d.get('version')!r} is not supported (this toolkit reads {VERSION})")
    for key in ("space", "arch", "module", "weights"):
        if key not in d:
            raise ConfigError(f"{file}: field {key!r} is missing")
    return folder, dict(d)


def moved_aside(out: Path, name: str) -> str:
    """"; ..." saying where `name` (a model folder or export.json of the export directory `out`) is when an export
    into `out` moved it aside while swapping models in (`.previous-<pid>`, see nas.export): one killed there left
    it until the next export puts it back; "" when no export holds it. Only read: putting it back while another
    export may be swapping is that export's job."""
    for aside in sorted(out.glob(".previous-*")) if out.is_dir() else []:
        if not (aside / name).exists():
            continue
        pid = aside.name.removeprefix(".previous-")
        if pid.isdigit() and store.process_alive(int(pid)):
            return (f"; an export into {out} (process {pid}) is replacing its models and has moved the previous "
                    f"{name} to {aside}: try again when it has finished")
        return (f"; an export into {out} was interrupted while replacing its models (process {pid} is gone) and "
                f"left the previous {name} in {aside}: run `nas export` into {out} again, which puts the previous "
                "models back before it replaces them")
    return ""


def _first(e: Exception) -> str:
    """The first problem torch's load_state_dict reports (its message lists every tensor)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return " ".join(lines[:2]) + (f" ... and {len(lines) - 2} more" if len(lines) > 2 else "")


def load_subnet(path: str | Path) -> nn.Module:
    """The exported model in `path` (a directory written by `nas.export`) as a torch module in eval mode.

    A model of a toolkit space ("load": "build") is rebuilt from its JSON (space class + config +
    architecture) and its state_dict, read with weights_only=True; any other (a space you wrote) loads
    from its torch.export program `model.pt2`, so neither your code nor the search is needed.
    """
    folder, d = read_subnet_json(path)
    load = d.get("load", "build")
    if load not in LOAD_KINDS:
        raise ConfigError(f"{folder / SUBNET}: load: expected one of {', '.join(LOAD_KINDS)}, got {load!r}")
    if load == "program":
        return _program_of(folder, d)
    return _built(folder, d, space_from_json(d["space"], f"{folder / SUBNET}: space"))


def _program_of(folder: Path, d: Mapping[str, Any]) -> nn.Module:
    program = d.get("program") if isinstance(d.get("program"), Mapping) else {}
    return load_program(folder / str(program.get("file") or PROGRAM))


def _built(folder: Path, d: Mapping[str, Any], space: ModelSpace) -> nn.Module:
    """`space.build(arch)` of an exported model's model.json with its weights.pt loaded, in eval mode."""
    module = space.build(space.validate(d["arch"]))
    want = d["module"].get("class") if isinstance(d["module"], Mapping) else None
    if not same_class(want, type(module)):
        raise ConfigError(f"{folder / SUBNET}: module.class is {want!r} but the space builds {class_name(type(module))}")
    try:
        module.load_state_dict(load_state_dict(folder / str(d["weights"])), strict=True)
    except RuntimeError as e:
        raise ConfigError(f"{folder / str(d['weights'])}: does not fit the architecture in {SUBNET} ({_first(e)})") from None
    return module.eval()


def load_priced(path: str | Path, space: ModelSpace | None = None) -> tuple[nn.Module, dict[str, str]]:
    """(module, label): the exported model as the network the search priced, for re-measuring it.

    That is `space.build(arch)` with the exported weights.pt, eager (`space`, or the space rebuilt from
    model.json; for a space you wrote that runs your script, as `nas export` does). `load_subnet` gives the
    same network for a toolkit space, but the torch.export program for yours, which computes the same outputs
    slower (per-call input checks): timing it would misreport what the search priced. Only where `space` is not
    given and cannot be rebuilt from model.json (the script is gone) is the program returned, labelled so (and
    taking inputs of its traced per-example shape in any layout of as many values, as the eager network may).
    The label is {"network": "eager" | "program", "how": what was timed[, "why": why not eager]}.
    """
    folder, d = read_subnet_json(path)
    load = d.get("load", "build")
    if load not in LOAD_KINDS:
        raise ConfigError(f"{folder / SUBNET}: load: expected one of {', '.join(LOAD_KINDS)}, got {load!r}")
    if space is not None:  # the caller has the space (export): its network or an error, never the program
        return _built(folder, d, space), {"network": "eager", "how": TIMED["eager"]}
    try:
        return (_built(folder, d, space_from_json(d["space"], f"{folder / SUBNET}: space")),
                {"network": "eager", "how": TIMED["eager"]})
    except Exception as e:  # the user's script is gone or no longer builds this network: its program still loads
        if load != "program":
            raise
        why = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
        shape = RecordedInput.of(d.get("input"), str(folder / SUBNET)).shape
        try:
            program = _program_of(folder, d)
        except ConfigError as unreadable:  # neither way loads: say both
            raise ConfigError(f"{unreadable} (nor can the network the search priced be rebuilt instead: "
                              f"{why})") from None
        return _reshaping(program, shape), {"network": "program", "how": TIMED["program"],
                                            "why": f"the space could not be rebuilt ({why})"}


def _reshaping(program: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """`program` reshaping its input to the per-example shape it was traced on ((N, L) -> (N, 1, L)) first (a
    pre-hook ahead of its input checks), so data the eager network took in another layout (as the search fed it)
    re-measures the program too."""
    per = int(np.prod(shape))

    def reshape(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.dim() >= 1 and len(x) and tuple(x.shape[1:]) != shape \
                and x[0].numel() == per:
            return (x.reshape(len(x), *shape), *args[1:])
        return None

    program.register_forward_pre_hook(reshape, prepend=True)
    return program
