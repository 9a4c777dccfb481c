"""A user's torch model as a search space: `ModelSpace` (the module users subclass), `ModuleSpace` (the space
derived from it) and `Supernet` (its weight-sharing supernet).

`Net.space()` is a `nas.spaces.ModelSpace` like every built-in model space (one concept: a space whose
architectures build into modules): any strategy searches it, `build(arch)` freezes an architecture into
plain torch modules, `supernet()` gives the weight-sharing network the one-shot trainers
(`nas.spaces.training.SandwichRule`, `InheritedAccuracy`) use as they use the built-in OFA supernet:
`supernet(x, arch)`, `supernet.subnet(arch)`, `space.largest()` / `smallest()` / `sample_subnet(rng)`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ConfigError, SpaceDefinitionError
from nas.nn.derive import bind, derive, freeze, probe_shapes
from nas.nn.mutable import Context
from nas.nn.values import PLAIN_HINT, plain_error
from nas.scripts import class_from_json, class_to_json
from nas.spaces.model_space import ModelSpace as SpaceWithModels
from nas.spaces.params import Choice as ChoiceField, Conditional, Integer, Subset, is_number
from nas.spaces.space import Repeat as RepeatField, Space

__all__ = ["ModelSpace", "ModuleSpace", "Supernet"]

log = logging.getLogger(__name__)


class ModelSpace(nn.Module):
    """Subclass it and write an ordinary torch module with choice points (`nas.nn.Choice`, `LayerChoice`,
    `InputChoice`, `Repeat`, the mutable layers). Set `input_shape` (one sample's shape) so that the space
    can count FLOPs and check at derivation that a LayerChoice's candidates agree on their output shape."""

    input_shape: ClassVar[tuple[int, ...] | None] = None

    @classmethod
    def example_input(cls, batch_size: int = 1) -> Any:
        """An input batch (zeros of `input_shape`); override it, as a classmethod, for other inputs (a tuple of
        tensors is passed as positional arguments)."""
        if cls.input_shape is None:
            raise ConfigError(f"{cls.__name__}.input_shape: set it (one sample's shape, e.g. (1, 28, 28)) or "
                              "override example_input(batch_size)")
        return torch.zeros(batch_size, *cls.input_shape)

    @classmethod
    def space(cls, *args: Any, **kwargs: Any) -> "ModuleSpace":
        """The search space of this model (`args`/`kwargs` go to the constructor)."""
        return ModuleSpace(cls, args, kwargs)

    @classmethod
    def build(cls, arch: Mapping[str, Any], *args: Any, **kwargs: Any) -> nn.Module:
        """A freshly initialised module of plain torch layers for `arch`."""
        return cls.space(*args, **kwargs).build(arch)

    @classmethod
    def supernet(cls, *args: Any, **kwargs: Any) -> "Supernet":
        """A freshly initialised weight-sharing supernet over every architecture."""
        return cls.space(*args, **kwargs).supernet()


class ModuleSpace(SpaceWithModels):
    """The `Space` derived from a `ModelSpace` subclass: a field per label (a `Repeat` field per repeated
    block holding choices of its own, `Conditional` fields for choices inside LayerChoice candidates)."""

    def __init__(self, model: type[ModelSpace], args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                 probe: bool = True) -> None:
        if not (isinstance(model, type) and issubclass(model, nn.Module)):
            raise ConfigError(f"model: expected a nas.nn.ModelSpace subclass, got {model!r}")
        self.model, self.args, self.kwargs = model, tuple(args), dict(kwargs or {})
        net = self._instance()
        derivation = derive(net, defer=True)
        super().__init__(derivation.fields)
        self._model_ref = _model_ref(model, net)
        self.ranks, self.defaults = derivation.ranks, derivation.defaults
        if probe and (getattr(model, "input_shape", None) is not None
                      or getattr(model.example_input, "__func__", None) is not ModelSpace.example_input.__func__):
            try:
                ran = probe_shapes(net, [self.largest().to_dict(), self.smallest().to_dict()],
                                   self.example_input({}, 2), self.defaults)
            except SpaceDefinitionError:
                raise
            except Exception as e:  # the model does not run on its own example input: say which input
                given = (f"input_shape {tuple(model.input_shape)}" if getattr(model, "input_shape", None) is not None
                         else f"{model.__name__}.example_input()")
                plain = plain_error(e) if isinstance(e, TypeError) else None
                if derivation.stored is not None:  # which choice (and the forward line reading it)
                    line = str(plain).split(f"; {PLAIN_HINT}")[0] if plain is not None else ""
                    raise SpaceDefinitionError(derivation.stored + (f"; in forward, {line}" if line else "")) from e
                if plain is not None:  # a choice given to a functional call or plain layer in forward: say where
                    raise SpaceDefinitionError(f"{model.__name__}: {plain} (run on {given} while deriving the "
                                               "space; a choice read in forward needs a Mutable of your own, see "
                                               "docs/model_space.md)") from e
                said = str(e).splitlines()[0] if str(e) else ""
                raise SpaceDefinitionError(f"{model.__name__}: the model fails on {given} (a batch of 2, run while "
                                           f"deriving the space to check shapes): {type(e).__name__}: {said}") from e
            else:
                if derivation.stored is None:  # else refused below
                    _warn_unused(model.__name__, derivation.points, ran)
        if derivation.stored is not None:
            raise SpaceDefinitionError(derivation.stored)

    def _instance(self) -> nn.Module:
        try:
            return self.model(*self.args, **self.kwargs)
        except TypeError as e:
            error = plain_error(e)
            if error is None:
                raise
            raise error from e

    # -- models
    def build(self, arch: Mapping[str, Any]) -> nn.Module:
        """A freshly initialised module of plain torch layers for `arch` (choice points frozen)."""
        arch = self.validate(arch)
        net = self._instance()
        derive(net)  # labels and module paths of this instance
        return freeze(net, Context(arch.to_dict()), fresh=True)

    def supernet(self) -> "Supernet":
        """A freshly initialised weight-sharing supernet."""
        return Supernet(self._instance(), self)

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> Any:
        return self.model.example_input(batch_size)

    # -- the one-shot trainers' architectures
    def largest(self) -> Architecture:
        """Every size at its largest option (whatever the order of its options), each LayerChoice at its candidate
        with most parameters."""
        return self.validate(_pick(self, lambda name, node, scope: _extreme(name, node, scope, self.ranks, last=False)))

    def smallest(self) -> Architecture:
        """Every size at its smallest option, each LayerChoice at its candidate with fewest parameters."""
        return self.validate(_pick(self, lambda name, node, scope: _extreme(name, node, scope, self.ranks, last=True)))

    def sample_subnet(self, rng: np.random.Generator, elastic: Any = None) -> Architecture:
        """Each decision uniform on its own (every depth equally likely), the sandwich rule's random subnets."""
        if elastic is not None:
            raise ConfigError("elastic: progressive-shrinking phases name the OFA space's dimensions; a user "
                              "model's supernet trains with the sandwich rule (SandwichRule)")
        return self.validate(_pick(self, lambda name, node, scope: _uniform(node, rng)))

    # -- description (model specs rebuild the space from this)
    def to_config(self) -> dict[str, Any]:
        """The model class by import path, or by script path and name for one defined in a `nas run` script,
        so that another process (`nas export`) can rebuild the space. A class no other process can load (a
        notebook's, a factory function's) is described by name and network (`_model_ref`), which the journal
        header records and `from_config` refuses."""
        return {"model": dict(self._model_ref), "args": list(self.args), "kwargs": dict(self.kwargs)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], field_name: str = "config") -> "ModuleSpace":
        """The space `to_config` described; `field_name` is where `config` is in the JSON read (model.json's
        `space.config`), which errors name: `space.config.model.script: ... not found`."""
        ref = config["model"]
        if isinstance(ref, Mapping) and ref.get("importable") is False:
            raise ConfigError(f"{field_name}.model: {ref.get('class')} is defined where no other process can load it "
                              "(in a notebook or interactive session, or inside a function): define it at the top "
                              "level of a module, or of the script `nas run` runs")
        model = class_from_json(ref if isinstance(ref, Mapping) else {"class": ref}, f"{field_name}.model")
        return cls(model, config.get("args", ()), config.get("kwargs", {}))

    def to_spec(self) -> dict[str, Any]:
        """The decisions and the model class (as `to_config` names it): the journal's fingerprint tells two model
        classes apart by it, and needs no other process to load the class."""
        return {**super().to_spec(), "model": dict(self._model_ref)}


def _model_ref(model: type, net: nn.Module) -> dict[str, Any]:
    """How `to_config` / `to_spec` name the model class: `class_to_json`'s import or script reference where another
    process can load the class (unchanged, so existing workdirs resume); else its module and qualified name,
    `importable: False` and a digest of its network (the module tree of `net` and `input_shape`), so that two
    classes of one name built by a factory function for other networks are two searches, while a notebook cell
    run again is the same one. Only another process (model.json, export) needs the class importable."""
    try:
        return class_to_json(model)
    except ConfigError:
        pass
    tree = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(net))  # no memory addresses: the same network, the same digest
    shape = getattr(model, "input_shape", None)
    network = hashlib.sha256(f"{tree}\ninput_shape={shape!r}".encode()).hexdigest()[:16]
    return {"class": f"{model.__module__}.{model.__qualname__}", "network": network, "importable": False}


def _warn_unused(name: str, points: Mapping[str, list[tuple[str, nn.Module]]], ran: set[int]) -> None:
    """Warn about labels whose choice points never ran in the probe: such a field changes nothing, so a search
    would spend evaluations on architectures that are one network (a layer left out of forward, or called only in
    training mode)."""
    unused = {label: sorted({path for path, _ in uses}) for label, uses in points.items()
              if not any(id(module) in ran for _, module in uses)}
    if unused:
        said = "; ".join(f"{label!r} (at {', '.join(paths)})" for label, paths in unused.items())
        log.warning("%s: the choice points of %s never ran in forward on the example input (eval mode, the largest "
                    "and smallest architectures): their fields change nothing there, so a search spends evaluations "
                    "on duplicates (call them in forward, or remove them)", name, said)


def _pick(space: Space, pick: Callable[[str, Any, tuple], Any], scope: tuple = ()) -> dict[str, Any]:
    """An architecture with each active decision chosen by `pick(name, node, scope)` (controllers first; `scope`:
    the (Repeat field, block index) pairs leading to the field)."""
    controllers = {n.on for n in space.fields.values() if isinstance(n, Conditional)} | \
        {n.count for n in space.fields.values() if isinstance(n, RepeatField) and isinstance(n.count, str)}
    out: dict[str, Any] = {}
    for name in sorted(space.fields, key=lambda n: n not in controllers):
        node = space.fields[name]
        if isinstance(node, Conditional):
            if not node.active(out[node.on]):
                continue
            node = node.node
        if isinstance(node, RepeatField):
            count = node.count if isinstance(node.count, int) else out[node.count]
            out[name] = [_pick(node.block, pick, scope + ((name, i),)) for i in range(count)]
        elif isinstance(node, Space):
            out[name] = _pick(node, pick, scope)
        else:
            out[name] = pick(name, node, scope)
    return out


def _extreme(name: str, node: Any, scope: tuple, ranks: Mapping[tuple, list[Any]], last: bool) -> Any:
    """The largest (`last`: smallest) value of one decision: a LayerChoice's candidate by parameters, a number (a
    size, a depth) by value whatever the order its options are listed in (`[32, 16, 64]` is categorical to the
    encodings, still sizes here), else the first option."""
    if isinstance(node, Subset):
        return node.default()
    if (scope, name) in ranks and isinstance(node, ChoiceField):
        order = ranks[scope, name]
        return order[-1] if last else order[0]
    if isinstance(node, Integer) or node.ordered or all(is_number(o) for o in node.options):
        return min(node.options) if last else max(node.options)
    return node.options[0]


def _uniform(node: Any, rng: np.random.Generator) -> Any:
    if isinstance(node, Subset):
        return node.sample(rng)
    return node.value(int(rng.integers(node.cardinality)))


class Supernet(nn.Module):
    """Every architecture of a `ModuleSpace` in one set of weights: `supernet(x, arch)` runs one of them,
    `subnet(arch)` copies it out as plain torch modules."""

    def __init__(self, net: nn.Module, space: ModuleSpace) -> None:
        super().__init__()
        derived = derive(net)
        fields = Space._unchecked(space.fields).to_spec()["fields"]  # the decisions (the class need not be importable)
        if Space._unchecked(derived.fields).to_spec()["fields"] != fields:
            raise ConfigError(f"net: a {type(net).__name__} whose choice points differ from the space's")
        self.net, self.space = net, space

    @contextmanager
    def active(self, arch: Mapping[str, Any]) -> Iterator[nn.Module]:
        """Within the block, `supernet.net` computes `arch` (for models taking several inputs)."""
        bind(self.net, Context(self.space.validate(arch).to_dict()))
        try:
            yield self.net
        finally:
            bind(self.net, None)

    def forward(self, x: Any, arch: Mapping[str, Any]) -> Any:
        with self.active(arch) as net:
            try:
                return net(x)
            except TypeError as e:  # a choice read by forward code (F.avg_pool2d(x, self.k)): name the line
                error = plain_error(e)
                if error is None:
                    raise
                raise error from e

    @torch.no_grad()
    def subnet(self, arch: Mapping[str, Any]) -> nn.Module:
        """A standalone module of plain torch layers holding copies of `arch`'s slices of the shared weights;
        its outputs equal `supernet(x, arch)` (batch norm statistics included: recalibrate them for the
        subnet alone with `nas.spaces.training.recalibrate_bn`). Each module keeps the supernet's module's
        train/eval mode (`model.train(); model.backbone.eval()` carries over)."""
        return freeze(self.net, Context(self.space.validate(arch).to_dict()))
