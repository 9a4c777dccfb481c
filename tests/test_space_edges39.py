"""Session 39 edges of `Space`/`Subset`: neighbours of a large Subset cost O(1) validations (not two per
neighbour) and are exactly those of before, in the same order (pinned on small cases); a guided Subset mutation
builds its item set once; `from_vector` ignores inactive slots, which `to_vector` writes as -1."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.spaces import Architecture, Choice, Conditional, Repeat, Space, Subset
from nas.spaces.params import SubsetBit
from nas.spaces.space import _ABSENT, _set_path, get_path
from tests.test_subset import subset_spaces


def mixed() -> Space:
    """Subsets at the top level, in repeated blocks and of strings, beside choices, a count and a conditional."""
    return Space(depth=Choice([1, 2, 3]), blocks=Repeat("depth", k=Choice([3, 5]), skip=Subset(n=6, k=2)),
                 steps=Subset(n=8, k=3), act=Conditional("depth", [2, 3], Choice(["relu", "gelu"])),
                 lr=Choice([0.1, 0.01, 0.001]), tags=Subset(["a", "b", "c", "d", "e"], k=2))


def digest(archs: list[Architecture]) -> str:
    return hashlib.sha256(",".join(a.id for a in archs).encode()).hexdigest()[:16]


# ------------------------------------------------------------------ pinned outputs (recorded before the change)
def test_neighbours_of_a_small_subset_are_pinned():
    space = Space(steps=Subset(n=8, k=3))
    arch = space.sample(np.random.default_rng(3))
    assert arch.to_dict() == {"steps": [0, 1, 4]}
    assert [list(b["steps"]) for b in space.neighbours(arch)] == [
        [0, 2, 4], [0, 1, 3], [0, 1, 2], [0, 1, 5], [0, 1, 6]]
    assert Subset(n=8, k=3).neighbours([0, 4, 7]) == [
        [1, 4, 7], [2, 4, 7], [0, 3, 7], [0, 2, 7], [0, 5, 7], [0, 4, 6], [0, 4, 5]]


@pytest.mark.parametrize("seed,count,pinned,arch_id", [
    (0, 22, "67ec0f9eefb5220f", "0c15d6f12e6086d3"),
    (1, 28, "ec144c4fb5d55d70", "2cd7363c61e4ef5a"),
    (2, 26, "d66bbf4dc463e2d9", "87961521f5c4480f")])
def test_neighbours_of_a_mixed_space_are_pinned(seed, count, pinned, arch_id):
    space = mixed()
    arch = space.sample(np.random.default_rng(seed))
    assert arch.id == arch_id
    nbs = space.neighbours(arch)
    assert len(nbs) == count and digest(nbs) == pinned
    for nb in nbs:  # each one is what validation makes of it (its frozen data and its id)
        assert nb == space.validate(nb.to_dict()) and nb.__getstate__() == space.validate(nb.to_dict()).__getstate__()


def test_neighbours_of_a_mixed_space_in_order():
    ids = [b.id for b in mixed().neighbours(mixed().sample(np.random.default_rng(0)))]
    assert ids == ['24ecb4dee51ce61f', 'c6085fc48d8f7264', 'bab0b3073ff4913c', '2d225216ed7abfcc', 'd205e016cac2e073',
                   '0b273b55b05a92ed', 'cec8abb2305a28e5', '1e0da77bc51fb284', '06d26275cdf5df4c', 'af63e61170d9a0e8',
                   '90a4dc3c5635c6c5', '9b1a69031dc84390', '22f962f978d5283d', '916c5c2a4a19c803', 'be0fc67e18eca42a',
                   '1f538dab10aaf8d6', 'd2924d308cae4f51', '4455b8b60401cd85', '3c6182132074b214', '74f361d4738f4b35',
                   'ada31e11aaec28e7', '289b7f5fcc248d3b']


def test_neighbours_of_a_larger_subset_are_pinned():
    space = Space(steps=Subset(n=200, k=100), lr=Choice([0.1, 0.01]))
    nbs = space.neighbours(space.sample(np.random.default_rng(1)))
    assert len(nbs) == 129 and digest(nbs) == "e00c9801a83df7de"


def test_subset_mutations_are_pinned():
    sub, rng = Subset(n=50, k=20), np.random.default_rng(5)
    p, g = sub.sample(rng), sub.sample(rng)
    outs = [sub.mutate(p, rng, toward=g) for _ in range(5)] + [sub.mutate(p, rng) for _ in range(5)]
    assert hashlib.sha256(json.dumps(outs).encode()).hexdigest()[:16] == "386bd4455999913c"
    space, rng = mixed(), np.random.default_rng(7)
    xs = [space.sample(rng) for _ in range(4)]
    outs = [space.mutate(xs[0], rng, guide=xs[1:]).id for _ in range(10)]
    assert hashlib.sha256(",".join(outs).encode()).hexdigest()[:16] == "7c137b2427ec995f"


def reference_neighbours(space: Space, arch) -> list[Architecture]:
    """`Space.neighbours` as it was before session 39: every neighbour repaired and validated on its own."""
    base = space.validate(arch).to_dict()
    seen: dict[str, Architecture] = {}
    for slot in space.decision_slots():
        value = get_path(base, slot.path)
        if value is _ABSENT:
            continue
        if isinstance(slot.leaf, SubsetBit):
            sub = slot.leaf.subset
            p = sub.positions(value, "")
            values = []
            for i, x in enumerate(p):
                lo = p[i - 1] + 1 if i > 0 else 0
                hi = p[i + 1] - 1 if i < len(p) - 1 else sub.n - 1
                for y in dict.fromkeys((x - 1, (lo + x - 1) // 2, x + 1, (x + 1 + hi) // 2)):
                    if lo <= y <= hi and y != x:
                        values.append(sub.value(p[:i] + [y] + p[i + 1:]))
        else:
            values = [slot.leaf.value(j) for j in slot.leaf.adjacent(slot.leaf.index(value, slot.name))]
        for v in values:
            cfg = space.validate(base).to_dict()
            _set_path(cfg, slot.path, v)
            space._repair(cfg, None)
            nb = space.validate(cfg)
            seen.setdefault(nb.id, nb)
    return list(seen.values())


@settings(max_examples=60, deadline=None)
@given(space=subset_spaces(), seed=st.integers(0, 2 ** 16))
def test_neighbours_equal_the_validated_ones_in_order_on_random_spaces(space, seed):
    arch = space.sample(np.random.default_rng(seed))
    got, want = space.neighbours(arch), reference_neighbours(space, arch)
    assert [a.id for a in got] == [a.id for a in want]
    assert [a.__getstate__() for a in got] == [a.__getstate__() for a in want]  # the frozen data too


# ------------------------------------------------------------------ cost: counted, not timed
class Counting:
    """Counts calls of a `Subset` method: `positions` (a validation of a subset value) and `value` (positions to
    items) each cost O(k) Python steps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str = "positions") -> None:
        self.calls = 0
        real = getattr(Subset, name)

        def counted(sub, *args, **kwargs):
            self.calls += 1
            return real(sub, *args, **kwargs)

        monkeypatch.setattr(Subset, name, counted)


def test_neighbours_of_a_large_subset_validate_each_neighbour_once(monkeypatch):
    space = Space(steps=Subset(n=400, k=200), lr=Choice([0.1, 0.01]))
    arch = space.sample(np.random.default_rng(0))
    expected = [space.validate({"steps": v, "lr": arch["lr"]}).id
                for v in Subset(n=400, k=200).neighbours(arch["steps"])]  # the slow way, one validation each
    counter = Counting(monkeypatch)
    nbs = space.neighbours(arch)
    assert [b.id for b in nbs[:len(expected)]] == expected and len(nbs) == len(expected) + 1  # + the lr change
    assert counter.calls <= len(nbs) + 2  # the base once, each neighbour once (old: 2 per neighbour, ~530)


def test_subset_neighbours_validate_and_convert_once(monkeypatch):
    sub = Subset(n=400, k=200)
    value = sub.sample(np.random.default_rng(0))
    validations, conversions = Counting(monkeypatch), Counting(monkeypatch, "value")
    out = sub.neighbours(value)
    assert validations.calls == 1 and conversions.calls <= 1 and len(out) > 200  # old: one conversion per neighbour
    for v in out:  # one item moved, the order kept
        assert len(v) == 200 and all(a < b for a, b in zip(v, v[1:])) and len(set(v) - set(value)) == 1


# ------------------------------------------------------------------ item 3: inactive slots in vectors
def test_from_vector_ignores_inactive_slots_which_to_vector_writes_as_minus_one():
    space = mixed()
    arch = space.validate({"depth": 1, "blocks": [{"k": 3, "skip": [0, 1]}], "steps": [0, 1, 2], "lr": 0.1,
                           "tags": ["a", "b"]})
    vec = space.to_vector(arch)
    inactive = [i for i, s in enumerate(space.slots()) if vec[i] == -1]
    assert inactive and all(space.slots()[i].optional for i in inactive)
    filled = vec.copy()
    filled[inactive] = [1 if s.leaf.cardinality > 1 else 0 for s in (space.slots()[i] for i in inactive)]
    assert space.from_vector(filled) == arch  # what a sampler filling every slot (cmaes) gives decodes alike
    assert "inactive" in (Space.from_vector.__doc__ or "") and "ignored" in Space.from_vector.__doc__
