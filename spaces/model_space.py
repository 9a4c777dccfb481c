"""`ModelSpace`: a space whose architectures build into `torch.nn.Module`s (the "model" capability).

Subclasses implement `build(arch)` and `example_input(arch, batch_size)`; `count(arch)` then gives
parameters and FLOPs for any architecture, which hardware cost models and cheap objectives build on.
A subclass whose constructor takes no arguments (or that has a dataclass `config`, or `to_config()` /
`from_config()`) can be recorded for export (`nas.modelspec.record_model`), even when it is defined in
the script `nas run` runs; see docs/export.md.
A torch module written with choice points (`nas.nn.ModelSpace`) derives one: `Net.space()` is a `ModelSpace`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from nas import jsonio

from nas.spaces.space import Space


class ModelSpace(Space):
    """A `Space` plus `build(arch) -> nn.Module` and `example_input(arch, batch_size) -> inputs`."""

    def build(self, arch: Mapping[str, Any]) -> Any:
        """A freshly initialised `torch.nn.Module` for `arch`."""
        raise NotImplementedError(f"{type(self).__name__}.build")

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> Any:
        """An input batch the built module accepts (a tensor, a tuple of args or a dict of kwargs)."""
        raise NotImplementedError(f"{type(self).__name__}.example_input")

    def count(self, arch: Mapping[str, Any], batch_size: int = 1) -> dict[str, float]:
        """{"params", "flops", "macs"} of the built module for one forward pass of `batch_size` inputs."""
        from nas.counts import count  # torch, imported where a model is built: `nas status` and the CLI start without it

        arch = self.validate(arch)
        return count(self.build(arch), self.example_input(arch, batch_size))



def space_settings(space: Any) -> dict[str, Any] | None:
    """A space's constructor settings as plain data (`to_config()` or a dataclass `config`), or None. Journals
    record them beside the fingerprint, which covers only the decisions: two `NasBench201Space`s with 4 and 16
    channels have the same fields, but their networks differ."""
    to_config = getattr(space, "to_config", None)
    if callable(to_config):
        return jsonio.plain(to_config(), "space.config")
    cfg = getattr(space, "config", None)
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return jsonio.plain(cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg), "space.config")
    return None
