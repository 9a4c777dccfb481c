"""Cross-cutting behaviour as strategies wrapping strategies: deduplication (cheap constraints are a step of the
search loop, `nas.search`, so each cheap evaluator runs once per architecture)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any

import numpy as np

from nas.spaces import Architecture, Space
from nas.strategies.base import Strategy, TrialResult, Unseen, check_count, from_record, judged, unknown_near

class Wrapper(Strategy):
    """A strategy that forwards to `inner`; subclasses add behaviour around ask/tell."""

    def __init__(self, inner: Strategy, max_rounds: int = 100) -> None:
        # No Strategy.__init__: the wrapper has no rng or space checks of its own.
        self.inner = inner
        self.space = inner.space
        self.problem = inner.problem
        self.max_rounds = max_rounds

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        self.inner.tell(arch, result)

    def use_cheap(self, evaluate: Callable[[Architecture], Mapping[str, float]] | None) -> None:
        self.inner.use_cheap(evaluate)

    def _gather(self, n: int, admit: Callable[[Architecture], bool]) -> list[Architecture]:
        """Ask the inner strategy until `n` proposals pass `admit`, at most `max_rounds` times."""
        out: list[Architecture] = []
        for _ in range(self.max_rounds):
            if len(out) >= n:
                break
            out.extend(arch for arch in self.inner.ask(n - len(out)) if admit(arch))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])


class Deduplicate(Wrapper):
    """Never hands out an architecture twice: repeats are answered from the cache (told as `cached`).

    Twins are recognised by `space.canonical_key`, so isomorphic encodings of one network count as one.
    Asks the inner strategy again, at most `max_rounds` times per call. When every round repeats a known
    architecture and nothing is in flight (the search would end far below its budget: evolution around an
    exhausted elite), it proposes an unknown neighbour of the last repeat, else an unknown uniform sample, and
    tells the inner strategy its result like an enqueued one; the search ends only when those run out too: on a
    space of at most `ENUMERABLE` architectures (or a table) that means every canonical class was evaluated, as
    the last unknown ones are then listed (`Unseen`). An ask the inner strategy answers with nothing at all is
    checked the same way (`exhausted`).

    A search loop snapshots it with `state_dict(journaled=True)`: the results its journal holds are left out (the
    snapshot's size does not grow with the search) and given back on load with `recall`; only the first `kept`
    results, told before the journal's (a warm start's), are written.
    """

    def __init__(self, inner: Strategy, max_rounds: int = 100) -> None:
        super().__init__(inner, max_rounds)
        self.results: dict[str, tuple[Architecture, TrialResult]] = {}  # canonical key -> first result
        self.in_flight: dict[str, int] = {}  # canonical key -> duplicate asks waiting for its result
        self._keys: dict[str, str] = {}  # arch id -> canonical key (memo)
        self._repeat: Architecture | None = None  # the last proposal refused as known, this ask
        self._unseen = Unseen(self.space)  # a small space's listing, made when samples stop finding unknown ones
        self.exhausted = False  # the last ask found every architecture of a listed space known: none is left
        self.kept = 0  # the first results no journal holds (a warm start's): `state_dict(journaled=True)` keeps them
        self._aliases: dict[str, str] = {}  # arch id -> its canonical key where they differ, on a space keyed by id
        self._ids_are_keys = False  # loaded from a `journaled` state, whose `_aliases` are complete

    def key(self, arch: Architecture) -> str:
        k = self._keys.get(arch.id)
        if k is None:
            k = self._keys[arch.id] = self.space.canonical_key(arch)
            if k != arch.id and self._keyed_by_id():
                self._aliases[arch.id] = k  # a non-canonical form: `recall` cannot take its id for its key
        return k

    def _keyed_by_id(self) -> bool:
        """Whether the space's canonical key is the validated architecture's id (no cell graph, no override), so a
        journaled architecture's recorded id is its key unless `_aliases` says otherwise."""
        return type(self.space).canonical_key is Space.canonical_key and getattr(self.space, "cell_graph", None) is None

    def ask(self, n: int = 1) -> list[Architecture]:
        n = check_count(n)
        self._repeat = None
        out = self._gather(n, self._admit)
        if not out and not self.in_flight and self._repeat is not None and self.inner.explore_on_repeats:
            fresh = self._unknown_near(self._repeat)
            if fresh is not None and self._admit(fresh):
                out = [fresh]
        # checked after a repeat (the space was listed then), or when the inner strategy proposed nothing at all
        # (its own known architectures ran out: predictor-search), so the search ends at once, not after retries
        self.exhausted = (not out and (self._unseen.listed or self._repeat is None)
                          and self._unseen.draw(np.random.default_rng(0), self._unknown) is None
                          and self._unseen.listed)
        return out

    def _unknown(self, arch: Architecture) -> bool:
        """Neither evaluated nor in flight (by canonical key)."""
        k = self.key(arch)
        return k not in self.results and k not in self.in_flight

    def _unknown_near(self, arch: Architecture) -> Architecture | None:
        """`unknown_near` with an unknown key, drawn from the inner strategy's generator (saved with its state, so a
        resumed search draws the same), or seeded by the count of results for a strategy without one."""
        rng = getattr(self.inner, "rng", None)
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(len(self.results))
        return unknown_near(self.space, arch, rng, self._unknown, self.max_rounds, self._unseen)

    def _admit(self, arch: Architecture) -> bool:
        """New architectures pass; repeats are answered from the cache or wait for their twin in flight."""
        k = self.key(arch)
        if k in self.results:
            self.inner.tell(arch, self._cached(k))
            self._repeat = arch
            return False
        if k in self.in_flight:
            self.in_flight[k] += 1
            self._repeat = arch
            return False
        self.in_flight[k] = 0
        return True

    def claim(self, arch: Architecture) -> bool:
        """Mark `arch`, which the caller evaluates without asking for it (an enqueued architecture), as in flight:
        a twin the strategy proposes meanwhile waits for its result. False when it is known or in flight."""
        k = self.key(arch)
        if k in self.results or k in self.in_flight:
            return False
        self.in_flight[k] = 0
        return True

    def _cached(self, key: str) -> TrialResult:
        r = self.results[key][1]
        return TrialResult(r.metrics, r.status, cached=True)

    def tell(self, arch: Architecture, result: TrialResult) -> None:
        result = judged(self.problem, arch, result)  # a NaN objective is a failure here too (its cache, its state)
        k = self.key(arch)
        waiting = self.in_flight.pop(k, 0)
        if k in self.results and not result.cached:
            result = TrialResult(result.metrics, result.status, cached=True)
        if not result.cached:
            self.results[k] = (arch, result)
        self.inner.tell(arch, result)
        for _ in range(waiting):
            self.inner.tell(arch, self._cached(k))

    def keep(self, n: int | None = None) -> None:
        """Keep the first `n` results (all so far when None) in every `state_dict(journaled=True)`: no journal holds
        them (a warm start's). The results told after them are the caller's journal, which `recall` gives back."""
        self.kept = len(self.results) if n is None else n

    def recall(self, arch_id: str, arch: Mapping[str, Any], result: TrialResult) -> None:
        """Cache a journaled result the restored state covers (`arch_id` as journaled), as its `tell` did, without
        telling the inner strategy. After a `journaled` state, on a space keyed by id, the journaled id is the key
        (it was validated when told; `_aliases` holds the exceptions), so nothing is validated again."""
        k = self._keys.get(arch_id)
        if k is None and self._ids_are_keys and self._keyed_by_id():
            k = self._keys[arch_id] = arch_id
        if k is not None and k in self.results:
            return
        a = Architecture(arch)
        self.results.setdefault(self.key(a) if k is None else k, (a, result))

    def state_dict(self, journaled: bool = False) -> dict[str, Any]:
        """The whole state; `journaled`: without the results after the first `kept` (the caller's journal holds
        them and `recall`s them on load), so its size does not grow with the results."""
        cached = islice(self.results.items(), self.kept) if journaled else self.results.items()
        return {"inner": self.inner.state_dict(), "in_flight": dict(self.in_flight),
                "results": [[k, a.to_dict(), r.to_dict()] for k, (a, r) in cached],
                **({"journaled": True, "aliases": dict(self._aliases)} if journaled else {})}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state` (a `journaled` one then needs the journal's results `recall`ed); its results are `kept`."""
        super().load_state_dict(state)
        self.in_flight = dict(state["in_flight"])
        self.results = {}
        self._unseen.reset()
        self._aliases = dict(state.get("aliases", {}))
        self._keys.update(self._aliases)
        self._ids_are_keys = bool(state.get("journaled"))  # an older snapshot's: `recall` recomputes unknown keys
        for _, arch, res in state["results"]:  # keys recomputed: a space's canonical key may have changed since
            a, r = from_record([arch, res])
            self.results.setdefault(self.key(a), (a, r))
        self.kept = len(self.results)
