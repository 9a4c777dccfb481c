"""The space language: exact size, uniform sampling, validation errors, encodings and variation operators."""

from __future__ import annotations

import hashlib
import itertools
import json

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from nas.errors import InvalidArchitectureError, SpaceDefinitionError
from nas.spaces import Architecture, Choice, Conditional, Integer, Repeat, Space
from tests.spaces_strategies import spaces

SETTINGS = settings(max_examples=60, deadline=None)


def demo_space() -> Space:
    return Space(depth=Choice([2, 3, 4]), blocks=Repeat(count="depth", kernel=Choice([3, 5, 7]), expand=Choice([3, 4, 6])),
                 resolution=Choice([128, 160, 192]))


def test_issue_example_mapping_contract():
    space = demo_space()
    arch = space.sample(np.random.default_rng(1))
    assert len(arch["blocks"]) == arch["depth"]
    assert arch["blocks"][0]["kernel"] in (3, 5, 7)
    assert dict(arch).keys() == {"depth", "blocks", "resolution"}
    with pytest.raises(TypeError):
        arch["depth"] = 3  # read-only
    assert space.size() == 3 * (9**2 + 9**3 + 9**4)


@SETTINGS
@given(space=spaces(), seed=st.integers(0, 2**32 - 1))
def test_sample_mutate_crossover_neighbours_are_valid(space, seed):
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)
    for arch in (a, b, space.mutate(a, rng), space.crossover(a, b, rng), space.default()):
        assert space.validate(arch) == arch
    for nb in space.neighbours(a):
        assert space.validate(nb) == nb
        assert nb != a


@SETTINGS
@given(space=spaces(), seed=st.integers(0, 2**32 - 1))
def test_round_trips(space, seed):
    arch = space.sample(np.random.default_rng(seed))
    assert space.from_dict(json.loads(json.dumps(space.to_dict(arch)))) == arch
    assert Architecture.from_json(arch.to_json()).id == arch.id
    vec = space.to_vector(arch)
    assert vec.shape == (len(space.slots()),)
    assert space.from_vector(vec) == arch
    onehot = space.to_onehot(arch)
    assert onehot.shape == (space.onehot_size(),) and onehot.sum() == len(space.slots())
    assert space.from_onehot(onehot) == arch
    assert space.from_graph(space.to_graph(arch)) == arch


@settings(max_examples=40, deadline=None)
@given(space=spaces())
def test_size_is_exact(space):
    if space.size() > 3000:
        return
    archs = list(space)
    assert len(archs) == space.size()
    assert len({a.id for a in archs}) == len(archs)
    for a in archs[:50]:
        assert space.validate(a) == a


@SETTINGS
@given(space=spaces(), seed=st.integers(0, 2**32 - 1))
def test_mutation_changes_exactly_one_decision_when_structure_is_fixed(space, seed):
    rng = np.random.default_rng(seed)
    a = space.sample(rng)
    m = space.mutate(a, rng)
    if space.size() > 1 and any(s.leaf.cardinality > 1 for s in space.slots()):
        assert m != a
    va, vm = space.to_vector(a), space.to_vector(m)
    changed = np.flatnonzero(va != vm)
    if not any(s.optional for s in space.slots()):
        assert len(changed) <= 1


def test_sampling_is_uniform_over_architectures():
    space = Space(n=Choice([0, 1, 2]), blocks=Repeat("n", k=Choice(["a", "b"])), mode=Choice(["x", "y"]),
                  extra=Conditional("mode", "x", Integer(1, 3)))
    archs = {a.id: i for i, a in enumerate(space)}
    assert len(archs) == space.size() == (1 + 2 + 4) * (3 + 1)
    rng = np.random.default_rng(0)
    counts = np.zeros(len(archs))
    for _ in range(14000):
        counts[archs[space.sample(rng).id]] += 1
    assert stats.chisquare(counts).pvalue > 0.001


def test_architecture_id_is_stable_and_order_independent():
    a = Architecture({"x": 1, "y": [{"k": 3}], "z": "s"})
    b = Architecture({"z": "s", "y": [{"k": 3}], "x": 1})
    assert a.id == b.id and a == b and hash(a) == hash(b)
    expected = hashlib.sha256(b'{"x":1,"y":[{"k":3}],"z":"s"}').hexdigest()[:16]
    assert a.id == expected  # id = first 16 hex chars of sha256 of the canonical JSON
    assert Architecture({"x": 2}).id != Architecture({"x": 1}).id


@pytest.mark.parametrize("build, message", [
    (lambda: Space(a=Choice([])), "a: Choice has no options"),
    (lambda: Space(a=Choice([1, 1])), "a: Choice option 1 appears twice"),
    (lambda: Space(a=Integer(5, 1)), "a: Integer range is empty"),
    (lambda: Space(b=Repeat("n", k=Choice([1]))), "b: refers to sibling 'n', which is not a field"),
    (lambda: Space(n=Choice(["x"]), b=Repeat("n", k=Choice([1]))), "count field 'n' has options ['x']"),
    (lambda: Space(n=Choice([1, 2]), b=Repeat("n", k=Choice([]))), "b[].k: Choice has no options"),
    (lambda: Space(m=Choice(["a"]), c=Conditional("m", "zzz", Choice([1]))), "condition value 'zzz' is not an option"),
    (lambda: Space(a=[1, 2]), "a: [1, 2] is not a Choice"),
    (lambda: Space(), "a space needs at least one field"),
])
def test_bad_space_definitions_name_the_field(build, message):
    with pytest.raises(SpaceDefinitionError) as e:
        build()
    assert message in str(e.value)


@pytest.mark.parametrize("config, path, fragment", [
    ({"depth": 2, "blocks": [{"kernel": 3, "expand": 3}] * 2, "resolution": 100}, "resolution", "not one of"),
    ({"depth": 2, "blocks": [{"kernel": 3, "expand": 3}] * 2, "resolution": 128, "color": 1}, "color", "unknown field"),
    ({"depth": 2, "blocks": [{"kernel": 3, "expand": 3}], "resolution": 128}, "blocks", "requires 2"),
    ({"depth": 2, "blocks": [{"kernel": 3, "expand": 3}, {"kernel": 4, "expand": 3}], "resolution": 128},
     "blocks[1].kernel", "4 is not one of"),
    ({"depth": 2, "blocks": [{"kernel": 3}] * 2, "resolution": 128}, "blocks[0].expand", "missing"),
    ({"depth": True, "blocks": [], "resolution": 128}, "depth", "not one of"),
    ([1, 2], "", "expected a mapping"),
])
def test_invalid_configs_name_the_field(config, path, fragment):
    with pytest.raises(InvalidArchitectureError) as e:
        demo_space().validate(config)
    assert e.value.path == path
    assert fragment in str(e.value)


def test_conditional_field_must_be_absent_when_inactive():
    space = Space(op=Choice(["conv", "attn"]), kernel=Conditional("op", "conv", Choice([3, 5])))
    assert space.size() == 3
    assert space.validate({"op": "attn"}) == {"op": "attn"}
    with pytest.raises(InvalidArchitectureError, match="kernel: is inactive because op='attn'"):
        space.validate({"op": "attn", "kernel": 3})
    with pytest.raises(InvalidArchitectureError, match="kernel: missing"):
        space.validate({"op": "conv"})


def test_repeat_growth_keeps_blocks_consistent_under_mutation():
    space = demo_space()
    rng = np.random.default_rng(3)
    arch = space.sample(rng)
    for _ in range(300):
        arch = space.mutate(arch, rng)
        assert len(arch["blocks"]) == arch["depth"]


def test_neighbours_are_all_one_step_changes():
    space = Space(a=Choice(["x", "y", "z"]), b=Integer(0, 10, 2))
    nbs = {(n["a"], n["b"]) for n in space.neighbours({"a": "x", "b": 4})}
    assert nbs == {("y", 4), ("z", 4), ("x", 2), ("x", 6)}


def test_numbers_are_ordered_only_when_listed_in_order():
    # the list order is the order neighbourhoods, encodings and Optuna's integer index use: 64 < 32 < 128 is none
    assert Choice([32, 64, 128]).ordered and Choice([0.1, 0.01, 0.001]).ordered and Choice([7]).ordered
    assert not Choice([64, 32, 128]).ordered and not Choice(["a", "b"]).ordered
    assert Choice([64, 32, 128], ordered=True).ordered
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from nas.strategies.optuna_sampler import distribution

    assert distribution(Choice([64, 32, 128])) == CategoricalDistribution([64, 32, 128])  # TPE: no order
    assert distribution(Choice([32, 64, 128])) == IntDistribution(0, 2)  # TPE: 32 < 64 < 128, by index


def test_graph_of_nas_bench_graph_space_is_the_dag():
    from nas.spaces.nasbench_graph import NASBenchGraphSpace

    space = NASBenchGraphSpace()
    arch = space.validate({"link": "0-0-1-3", "op1": "gcn", "op2": "gat", "op3": "skip", "op4": "sage"})
    g = space.to_graph(arch)
    assert set(g.edges) == {("input", 1), ("input", 2), (1, 3), (3, 4), (2, "output"), (4, "output")}
    assert space.from_graph(g) == arch
    assert space.size() == 9**5


def _dag(inputs, ops):
    """The network of `inputs` (node i reads inputs[i-1]) drawn directly, without any renumbering."""
    g = nx.DiGraph()
    g.add_node("input", op="input")
    g.add_nodes_from((i, {"op": ops[i - 1]}) for i in range(1, 5))
    g.add_edges_from(("input" if src == 0 else src, i) for i, src in enumerate(inputs, start=1))
    g.add_node("output", op="output")
    g.add_edges_from((i, "output") for i in range(1, 5) if i not in inputs)
    return g


def test_nas_bench_graph_relabel_keeps_every_wiring_and_its_operations():
    from nas.spaces.nasbench_graph import LINKS, NASBenchGraphSpace, relabel

    space = NASBenchGraphSpace()
    rng = np.random.default_rng(0)
    patterns = set()
    for inputs in itertools.product([0], [0, 1], [0, 1, 2], [0, 1, 2, 3]):  # all 24 wirings
        ops = list(rng.choice(["gcn", "gat", "sage", "fc"], size=4))
        cfg = relabel(inputs, ops)
        patterns.add(cfg["link"])
        assert nx.is_isomorphic(space.to_graph(cfg), _dag(inputs, ops),
                                node_match=lambda x, y: x["op"] == y["op"])
    assert patterns == set(LINKS)


def test_nas_bench_graph_mutation_is_one_graph_edit_and_copies_operations_from_the_guide():
    from nas.spaces.nasbench_graph import NASBenchGraphSpace

    space = NASBenchGraphSpace()
    parent = space.validate({"link": "0-0-1-2", "op1": "gat", "op2": "gin", "op3": "gin", "op4": "sage"})
    nbs = space.neighbours(parent)
    assert len(nbs) == 38 and len({n.id for n in nbs}) == 38  # 4 x 8 operations + 1 + 2 + 3 inputs
    # rewiring node 4 from node 2 to node 1 keeps every operation on its node (a new `link` label would not)
    assert {"link": "0-0-1-1", "op1": "gat", "op2": "gin", "op3": "gin", "op4": "sage"} in [dict(n) for n in nbs]
    ids = {n.id for n in nbs}
    rng = np.random.default_rng(1)
    children = [space.mutate(parent, rng) for _ in range(300)]
    assert all(c.id in ids for c in children)
    edits = sum(c["link"] != parent["link"] for c in children) / len(children)
    assert 0.3 < edits < 0.55  # 3 of 7 decisions are inputs (a few rewirings keep the pattern)
    guide = [space.validate({"link": "0-1-2-3", "op1": "cheb", "op2": "cheb", "op3": "cheb", "op4": "cheb"})]
    for _ in range(100):
        child = space.mutate(parent, rng, guide=guide)
        changed = [k for k in ("op1", "op2", "op3", "op4") if child[k] != parent[k]]
        if child["link"] == parent["link"] and changed:
            assert [child[k] for k in changed] == ["cheb"]


def test_guided_mutation_copies_the_new_value_from_a_guide_architecture():
    space = Space(a=Choice(list(range(10))), b=Integer(0, 99))
    rng = np.random.default_rng(0)
    parent = space.validate({"a": 0, "b": 0})
    guide = [space.validate({"a": 7, "b": 42}), space.validate({"a": 0, "b": 42})]
    seen = {(c["a"], c["b"]) for c in (space.mutate(parent, rng, guide=guide) for _ in range(400))}
    # a guide holding the parent's value falls back to a uniform draw, so other values of `a` appear too
    assert (7, 0) in seen and (0, 42) in seen and len({a for a, _ in seen}) > 3
    counts = np.bincount([space.mutate(parent, rng, guide=guide)["b"] for _ in range(400)], minlength=100)
    assert counts[42] > 150 and counts[0] > 100  # b = 42 from the guide; b unchanged when `a` mutates
