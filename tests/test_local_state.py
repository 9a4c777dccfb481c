"""`local` snapshots its neighbour queue as a shuffle of positions, not as architectures (11.7 MB after 11 trials on
a 600-field space), and a restored strategy asks exactly what the original would; old snapshots still load."""

from __future__ import annotations

import json

import numpy as np

from nas.objectives import Problem
from nas.spaces import Architecture, Choice, Space
from nas.strategies import make_strategy
from nas.strategies.base import TrialResult

SPACE = Space(**{f"f{i}": Choice([1, 2, 3, 4]) for i in range(60)})
PROBLEM = Problem.make({"y": "max"})


def score(arch) -> TrialResult:
    return TrialResult({"y": float(sum(v * ((i % 3) - 1) for i, v in enumerate(arch.values())))})


def walked(steps: int):
    s = make_strategy("local", SPACE, PROBLEM, seed=0)
    for _ in range(steps):
        (a,) = s.ask(1)
        s.tell(a, score(a))
    return s


def test_a_restored_local_search_asks_what_the_original_would() -> None:
    s = walked(25)
    state = json.loads(json.dumps(s.state_dict()))
    assert "queue" not in state and len(json.dumps(state)) < 20_000  # positions, not 180 architectures
    r = make_strategy("local", SPACE, PROBLEM, seed=0)
    r.load_state_dict(state)
    for _ in range(30):
        (a,), (b,) = s.ask(1), r.ask(1)
        assert a.id == b.id
        s.tell(a, score(a))
        r.tell(b, score(b))


def test_a_snapshot_holding_the_queue_as_architectures_still_loads() -> None:
    s = walked(5)
    state = json.loads(json.dumps(s.state_dict()))
    old = {k: v for k, v in state.items() if k not in ("order", "remaining")}
    old["queue"] = [a.to_dict() for a in s.queue]  # the format written before session 39
    r = make_strategy("local", SPACE, PROBLEM, seed=0)
    r.load_state_dict(old)
    assert [a.id for a in r.queue] == [a.id for a in s.queue] and isinstance(r.queue[0], Architecture)
    assert np.array_equal([a.id for a in r.ask(3)], [a.id for a in s.ask(3)])
