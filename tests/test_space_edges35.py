"""Space edge cases from the spacefuzz report: declared-cell rewirings that would put an operation on a node whose
field lacks it (D1), and Conditional controllers with very many values (D2)."""

from __future__ import annotations

import time

import numpy as np

from nas.objectives import Problem
from nas.spaces import CellGraph, Choice, Conditional, Integer, Repeat, Space
from nas.strategies import TrialResult, make_strategy


def _classifier_cell() -> Space:
    """A links cell whose last node is always a classifier: renumbering a node onto node 3 must carry 'fc'."""
    return Space(link=Choice(["0-0-1", "0-1-1"]), op1=Choice(["conv", "pool"]), op2=Choice(["conv", "pool"]),
                 op3=Choice(["fc"])).with_graph(CellGraph(nodes=3, node_ops={1: "op1", 2: "op2", 3: "op3"},
                                                          links="link"))


# ---------------------------------------------------------------- D1
def test_links_rewiring_never_moves_an_op_onto_a_node_lacking_it() -> None:
    space = _classifier_cell()
    arch = space.validate({"link": "0-1-1", "op1": "conv", "op2": "pool", "op3": "fc"})
    nbs = space.neighbours(arch)
    assert all(nb["op3"] == "fc" for nb in nbs)
    assert any(nb["link"] == "0-0-1" for nb in nbs)  # the rewiring itself is still offered
    for seed in range(50):
        m = space.mutate(arch, np.random.default_rng(seed))
        assert space.contains(m.to_dict()) and m["op3"] == "fc" and m.id != arch.id


def test_links_rewiring_tries_another_numbering_when_the_first_lacks_the_op() -> None:
    """Node 2 of '0-1-0-3' reading node 0 gives the wiring 0-0-0-3, not an option: the first numbering that spells
    an option moves 'c' onto a node without it; exchanging nodes 1 and 3 (both 'b') spells '0-0-0-1' and is kept."""
    space = Space(op1=Choice(["b", "a"]), op2=Choice(["c"]), op3=Choice(["b"]), op4=Choice(["c", "a"]),
                  link=Choice(["0-0-0-0", "0-0-0-1", "0-0-1-1", "0-1-0-3"])
                  ).with_graph(CellGraph(nodes=4, node_ops={n: f"op{n}" for n in range(1, 5)}, links="link"))
    arch = space.validate({"op1": "b", "op2": "c", "op3": "b", "op4": "a", "link": "0-1-0-3"})
    values = {"op1": "b", "op2": "c", "op3": "b", "op4": "a"}
    nbs = [nb.to_dict() for nb in space.neighbours(arch)]
    assert {**values, "link": "0-0-0-1"} in nbs
    assert all(space.contains(nb) for nb in nbs)


def test_links_cell_in_a_local_search() -> None:
    space = _classifier_cell()
    st = make_strategy("local", space, Problem.make({"acc": "max"}), seed=0)
    st.tell(space.validate({"link": "0-1-1", "op1": "conv", "op2": "pool", "op3": "fc"}), TrialResult({"acc": 1.0}))
    for _ in range(5):
        for a in st.ask(1):
            assert space.contains(a.to_dict())
            st.tell(a, TrialResult({"acc": 0.5}))


# ---------------------------------------------------------------- D2
def test_wide_conditional_controller_samples_fast_and_counts_exactly() -> None:
    space = Space(units=Integer(1, 3 * 10**6), act=Choice(["relu", "gelu"]),
                  extra=Conditional("units", [1, 7], Choice(["a", "b", "c"])))
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    assert space.size() == ((3 * 10**6 - 2) + 2 * 3) * 2
    archs = [space.sample(rng) for _ in range(3)]
    assert time.perf_counter() - start < 1.0  # was ~3.5 s per call: one Python step per value of `units`
    for a in archs + [space.sample(rng) for _ in range(200)]:
        assert ("extra" in a) == (a["units"] in (1, 7))


def test_huge_conditional_controller_draws_the_condition_with_its_weight() -> None:
    """Integer(0, 10**9) with a Conditional: size() and sample() in microseconds, and the conditional value drawn
    as often as its architectures' share (10**9 of 2 * 10**9: one half)."""
    big = 10**9
    space = Space(units=Integer(0, big), extra=Conditional("units", [3], Integer(0, big - 1)))
    assert space.size() == big + big  # the other 10**9 values of units, and 10**9 of extra at units=3
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    archs = [space.sample(rng) for _ in range(400)]
    assert time.perf_counter() - start < 2.0
    hits = sum(a["units"] == 3 for a in archs)
    assert 150 < hits < 250  # Binomial(400, 0.5)
    others = [a["units"] for a in archs if a["units"] != 3]
    assert len(set(others)) == len(others) and max(others) > big // 2 and all("extra" not in a for a in archs
                                                                               if a["units"] != 3)


def test_wide_repeat_count_controller_keeps_exact_size() -> None:
    space = Space(depth=Integer(0, 40), blocks=Repeat("depth", k=Choice([3, 5, 7])),
                  tail=Conditional("depth", [0], Choice(["z", "w"])))
    assert space.size() == 2 + sum(3**d for d in range(1, 41))
    rng = np.random.default_rng(2)
    for _ in range(50):
        a = space.sample(rng)
        assert len(a["blocks"]) == a["depth"] and a["depth"] > 30  # nearly all the mass is at the largest counts


def _old_draw(space: Space, ctrl: str, rng: np.random.Generator) -> int:
    """The controller draw before grouping: one weight per option, numpy's weighted choice."""
    leaf = space.fields[ctrl]
    w = []
    for v in leaf.options:
        x = 1
        for d in space._controllers[ctrl]:
            node = space.fields[d]
            x *= (node.node.cardinality if node.active(v) else 1) if isinstance(node, Conditional) \
                else node.block.size() ** int(v)
        w.append(x)
    total = sum(w)
    p = np.array([x / total for x in w], dtype=float)
    return int(rng.choice(len(w), p=p / p.sum()))


def test_controller_draws_stay_those_of_the_weighted_choice() -> None:
    """Recorded experiments depend on the draws: a controller with up to 2**20 values is drawn with the very same
    floats as numpy's weighted choice over every option."""
    spaces = [Space(units=Integer(1, 2000), e=Conditional("units", [1, 1500], Choice(["a", "b", "c"])),
                    f=Conditional("units", [1500], Integer(0, 6))),
              Space(kind=Choice(["a", "b", 1, 1.5, True]), x=Conditional("kind", ["a", True], Integer(0, 4))),
              Space(depth=Choice([0, 1, 2, 3]), blocks=Repeat("depth", k=Choice([3, 5, 7])),
                    tail=Conditional("depth", [0], Choice(["z", "w"])))]
    for space in spaces:
        ctrl = next(iter(space._controllers))
        new, old = np.random.default_rng(5), np.random.default_rng(5)
        for _ in range(300):
            a = space.sample(new)
            want = space.fields[ctrl].value(_old_draw(space, ctrl, old))
            assert a[ctrl] == want and type(a[ctrl]) is type(want)
            for name, node in space.fields.items():  # the rest of the architecture, drawn as sample() does
                if name == ctrl:
                    continue
                if isinstance(node, Conditional):
                    if node.active(want):
                        old.integers(node.node.cardinality)
                elif isinstance(node, Repeat):
                    for _ in range(int(want)):
                        old.integers(node.block.fields["k"].cardinality)
            assert new.random() == old.random()


def test_grouped_draw_is_proportional_to_each_options_architectures(monkeypatch) -> None:
    """The grouped draw (used above `EXACT_DRAW_MAX` options; here for every controller): each condition value
    with its architectures' share, every other option uniformly among the rest."""
    import nas.spaces.space as space_module

    monkeypatch.setattr(space_module, "EXACT_DRAW_MAX", 0)
    space = Space(units=Integer(0, 9), e=Conditional("units", [2, 5], Choice(["a", "b", "c"])),
                  f=Conditional("units", [5], Choice(["x", "y"])))
    weights = [1] * 10
    weights[2], weights[5] = 3, 6  # 24 architectures
    assert space.size() == sum(weights)
    rng = np.random.default_rng(4)
    n = 24_000
    counts = np.bincount([space.sample(rng)["units"] for _ in range(n)], minlength=10)
    expected = n * np.array(weights) / sum(weights)
    assert space._draw_cache[1]["units"].grouped
    assert float(((counts - expected) ** 2 / expected).sum()) < 30  # chi-square, 9 dof: p < 0.001 above 28
