"""An average of several predictors (e.g. a GCN and the WL-kernel GP): their errors differ, so the mean ranks better.

Members are given by registry name (default options) or as {"name": ..., "options": {...}}, so the
configuration stays plain data: runtime options a member keeps out of its own state (a pretraining `proxy`, a
`pretrain_cache`, zero-cost's `batch` and `loss_fn`) are kept out of the average's too, and each member's own extra
state (a pretraining set) is part of the average's. The std combines the members' own variances with their
disagreement.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.errors import ConfigError
from nas.spaces import Architecture, Space
from nas.predictors.base import Predictor, check_state

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
        if "seed" in options:  # make_predictor takes it positionally
            raise ConfigError(f"members[{i}].options: may not hold 'seed': every member is seeded from the average's "
                              "seed")
        specs.append({"name": m["name"], "options": dict(options)})
    return specs


def _json_ready(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


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
        live = list(range(len(specs)))  # the indices of the members averaged
        if single_node_graphs(space):  # a plain Space: a graph network would predict a constant; say so, average the rest
            live = [i for i, s in enumerate(specs) if not issubclass(predictor_class(s["name"]), GCNPredictor)]
            for i, s in enumerate(specs):
                if i not in live:
                    logger.warning("average: member %r left out: %s.to_graph gives one node per architecture, so it "
                                   "would predict a constant (declare its cell: Space.with_graph)", s["name"],
                                   type(space).__name__)
            if not live:
                raise ConfigError(f"members: {[s['name'] for s in specs]} all need a graph with structure, which "
                                  f"{type(space).__name__} does not give; use 'rf', 'gp' or 'wl-gp'")
        self._live = live
        self._members = [make_predictor(specs[i]["name"], space, seed, **specs[i]["options"]) for i in live]
        self.needs = frozenset().union(*(m.needs for m in self._members))  # type: ignore[misc]
        super().__init__(space, seed)
        # plain data: each member's options less those it keeps out of its own state (runtime objects); a member left
        # out cannot be built, and is never fitted: it keeps its JSON-ready options
        kept = {i: set(m.config()) for i, m in zip(live, self._members)}
        self.members = [{"name": s["name"], "options": {k: v for k, v in s["options"].items()
                                                        if (k in kept[i] if i in kept else _json_ready(v))}}
                        for i, s in enumerate(specs)]

    def check_pretraining(self) -> None:
        """Each member's `check_pretraining` (a pretrained member without its proxy), for predictor-search to refuse
        such an average when it is made rather than at its first fit; ConfigError naming the member otherwise."""
        for i, m in zip(self._live, self._members):
            check = getattr(m, "check_pretraining", None)
            if check is not None:
                try:
                    check()
                except ConfigError as e:
                    raise ConfigError(f"members[{i}]: {e}") from None

    def state_dict(self) -> dict[str, Any]:
        """The average's state, with each averaged member's own (less its training set, the average's): a pretrained
        member's pretraining set, which a restored average needs in place of the proxy it does not keep."""
        return {**super().state_dict(),
                "member_states": [{k: v for k, v in m.state_dict().items() if k != "train"} for m in self._members]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        check_state(self.space, state)  # before the members load theirs
        saved = state.get("member_states")
        if saved is not None and state.get("type") == self.name:  # a state from before member states: none to restore
            if len(saved) != len(self._members):
                raise ConfigError(f"predictor 'average': state holds {len(saved)} member states for "
                                  f"{len(self._members)} averaged members")
            for m, member_state in zip(self._members, saved):
                m.load_state_dict({**member_state, "train": {"archs": [], "y": []}})  # restored, not fitted
        super().load_state_dict(state)

    def _fit(self, archs: list[Architecture], y: np.ndarray) -> None:
        for m in self._members:
            m.fit(archs, y)

    def _predict(self, archs: list[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        outs = [m.predict(archs) for m in self._members]
        means = np.stack([o[0] for o in outs])
        var = np.stack([o[1] ** 2 for o in outs]).mean(axis=0) + means.var(axis=0)
        return means.mean(axis=0), np.sqrt(var)
