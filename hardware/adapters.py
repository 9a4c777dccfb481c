"""Which `LayerAdapter` decomposes which space, and the space names the `nas hardware` CLI accepts.

A space can also supply its own adapter through a `layer_adapter()` method, which `adapter_for` prefers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nas.errors import ConfigError
from nas.hardware.cell_layers import DartsLayers, NB201Layers
from nas.hardware.layers import LayerAdapter
from nas.hardware.nn_layers import NNLayers
from nas.hardware.ofa_layers import OFALayers
from nas.nn.model_space import ModelSpace as UserModel, ModuleSpace
from nas.scripts import import_object, load_file
from nas.spaces.cell import DartsSpace, NasBench201Space
from nas.spaces.model_space import ModelSpace
from nas.spaces.ofa import OFAConfig, OFASpace

ADAPTERS: dict[type, Callable[[Any], LayerAdapter]] = {
    OFASpace: OFALayers,
    NasBench201Space: NB201Layers,
    DartsSpace: DartsLayers,
    ModuleSpace: NNLayers,
}

SPACES: dict[str, Callable[..., ModelSpace]] = {
    "ofa": lambda **options: OFASpace(OFAConfig(**options)),
    "nb201": NasBench201Space,
    "darts": DartsSpace,
}
"""CLI space names -> factories taking the space's options as keyword arguments (OFAConfig fields for "ofa")."""


def adapter_for(space: ModelSpace) -> LayerAdapter:
    """The layer decomposition of `space`: its own `layer_adapter()` if it has one, else a registered adapter."""
    own = getattr(space, "layer_adapter", None)
    if callable(own):
        return own()
    for cls in type(space).__mro__:
        if cls in ADAPTERS:
            return ADAPTERS[cls](space)
    raise ConfigError(f"space {type(space).__name__}: no layer decomposition for lookup tables or learned models "
                      f"(known: {', '.join(c.__name__ for c in ADAPTERS)}); use measured latency, or write a "
                      "nas.hardware.layers.LayerAdapter for it")


def _options(options: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if isinstance(options, str):
        try:
            options = json.loads(options) if options.strip() else {}
        except json.JSONDecodeError as e:
            raise ConfigError(f"space options: not a JSON object ({e})") from None
    if not isinstance(options or {}, Mapping):
        raise ConfigError(f"space options: expected a JSON object, got {options!r}")
    return dict(options or {})


def _user_space(name: str, options: Mapping[str, Any] | str | None) -> ModuleSpace:
    where, _, cls_name = name.rpartition(":")
    if where.endswith(".py"):
        if not Path(where).is_file():
            raise ConfigError(f"space {name!r}: {where} not found")
        module: Any = load_file(where, reuse=True)
        model = getattr(module, cls_name, None)
    else:
        model = import_object(f"{where}.{cls_name}", "space")
    if not (isinstance(model, type) and issubclass(model, UserModel)):
        raise ConfigError(f"space {name!r}: {cls_name} is not a nas.nn.ModelSpace subclass defined there")
    options = _options(options)
    try:
        return model.space(**options)
    except TypeError as e:
        raise ConfigError(f"space {name!r}: bad options {options!r} ({e})") from None


def make_space(name: str, options: Mapping[str, Any] | str | None = None) -> ModelSpace:
    """A space by CLI name with keyword options (a mapping or a JSON object string); or the space of a
    `nas.nn.ModelSpace` class you wrote, named `path/to/script.py:Net` or `package.module:Net` (the options
    go to its constructor)."""
    if ":" in name:
        return _user_space(name, options)
    if name not in SPACES:
        raise ConfigError(f"space {name!r}: unknown (known: {', '.join(SPACES)}, or a nas.nn model as "
                          "path/to/script.py:Net or package.module:Net)")
    options = _options(options)
    try:
        return SPACES[name](**options)
    except TypeError as e:
        raise ConfigError(f"space {name!r}: bad options {options!r} ({e})") from None
