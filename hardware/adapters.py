"""Which `LayerAdapter` decomposes which space, and the space names the `nas hardware` CLI accepts.

A space can also supply its own adapter through a `layer_adapter()` method, which `adapter_for` prefers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from nas.errors import ConfigError
from nas.hardware.cell_layers import DartsLayers, NB201Layers
from nas.hardware.layers import LayerAdapter
from nas.hardware.ofa_layers import OFALayers
from nas.spaces.cell import DartsSpace, NasBench201Space
from nas.spaces.model_space import ModelSpace
from nas.spaces.ofa import OFAConfig, OFASpace

ADAPTERS: dict[type, Callable[[Any], LayerAdapter]] = {
    OFASpace: OFALayers,
    NasBench201Space: NB201Layers,
    DartsSpace: DartsLayers,
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


def make_space(name: str, options: Mapping[str, Any] | str | None = None) -> ModelSpace:
    """A space by CLI name with keyword options (a mapping or a JSON object string)."""
    if name not in SPACES:
        raise ConfigError(f"space {name!r}: unknown (known: {', '.join(SPACES)})")
    if isinstance(options, str):
        try:
            options = json.loads(options) if options.strip() else {}
        except json.JSONDecodeError as e:
            raise ConfigError(f"space options: not a JSON object ({e})") from None
    if not isinstance(options or {}, Mapping):
        raise ConfigError(f"space options: expected a JSON object, got {options!r}")
    try:
        return SPACES[name](**dict(options or {}))
    except TypeError as e:
        raise ConfigError(f"space {name!r}: bad options {dict(options or {})!r} ({e})") from None
