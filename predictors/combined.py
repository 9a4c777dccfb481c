"""An average of several predictors (e.g. a GCN and the WL-kernel GP): their errors differ, so the mean ranks better.

Members are given by registry name (default options) or as {"name": ..., "options": {...}}, so the
configuration stays plain data. The std combines the members' own variances with their disagreement.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.spaces import Architecture, Space
from nas.predictors.base import Predictor

MemberSpec = str | Mapping[str, Any]
logger = logging.getLogger(__name__)


def member_specs(members: Sequence[MemberSpec]) -> list[dict[str, Any]]:
    """Each member as {"name": str, "options": dict}; ConfigError naming the member and key otherwise (a typo such as
    "option" was dropped silently, so the member ran with its default options)."""
    if isinstance(members, (str, Mapping)) or not isinstance(members, Sequence):
        raise ConfigError(f"members: expected a list of predictor names or {{'name': ..., 'options': {{...}}}} specs, "
                          f"got {members!r}")
    specs = []
    for i, m in enumerate(members):
        if isinstance(m, str):
            specs.append({"name": m, "options": {}})
            continue
        if not isinstance(m, Mapping):
            raise ConfigError(f"members[{i}]: expected a predictor name or {{'name': ..., 'options': {{...}}}}, "
                              f"got {m!r}")
        unknown = [k for k in m if k not in ("name", "options")]
        if unknown:
            raise ConfigError(f"members[{i}]: unknown key {unknown[0]!r} (keys: 'name', 'options')")
        if not isinstance(m.get("name"), str):
            raise ConfigError(f"members[{i}]: 'name' must be a predictor name, got {m.get('name')!r}")
        options = m.get("options", {})
        if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
            raise ConfigError(f"members[{i}]: 'options' must be a mapping of option names to values, got {options!r}")
        specs.append({"name": m["name"], "options": dict(options)})
    return specs


class AveragePredictor(Predictor):
    """Mean of the members' predicted means; var = mean of their variances + variance of their means."""

    name = "average"
    needs_text = "its members'"  # what `nas predictors list` shows: `needs` is set per instance from the members

    def __init__(self, space: Space, seed: int = 0, members: Sequence[MemberSpec] = ("gcn", "wl-gp")) -> None:
        from nas.predictors import make_predictor, predictor_class
        from nas.predictors.encodings import single_node_graphs
        from nas.predictors.graph import GCNPredictor

        specs = member_specs(members)
        if not specs:
            raise ConfigError("members: give at least one predictor")
        live = specs
        if single_node_graphs(space):  # a plain Space: a graph network would predict a constant; say so, average the rest
            live = [s for s in specs if not issubclass(predictor_class(s["name"]), GCNPredictor)]
            for s in specs:
                if s not in live:
                    logger.warning("average: member %r left out: %s.to_graph gives one node per architecture, so it "
                                   "would predict a constant (declare its cell: Space.with_graph)", s["name"],
                                   type(space).__name__)
            if not live:
                raise ConfigError(f"members: {[s['name'] for s in specs]} all need a graph with structure, which "
                                  f"{type(space).__name__} does not give; use 'rf', 'gp' or 'wl-gp'")
        self._members = [make_predictor(s["name"], space, seed, **s["options"]) for s in live]
        self.needs = frozenset().union(*(m.needs for m in self._members))  # type: ignore[misc]
        super().__init__(space, seed)
        self.members = specs

    def _fit(self, archs: list[Architecture], y: np.ndarray) -> None:
        for m in self._members:
            m.fit(archs, y)

    def _predict(self, archs: list[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        outs = [m.predict(archs) for m in self._members]
        means = np.stack([o[0] for o in outs])
        var = np.stack([o[1] ** 2 for o in outs]).mean(axis=0) + means.var(axis=0)
        return means.mean(axis=0), np.sqrt(var)
