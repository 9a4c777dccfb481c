"""Defects a second audit of the space language and the strategies found, each pinned: small spaces searched to
their last architecture, exact canonical keys for declared cells, unambiguous labels, encodings and `tell` that
name a bad field, numpy scalars and non-finite numbers, and definitions refused at once."""

from __future__ import annotations

import collections
import itertools
import json
import logging
import warnings

import networkx as nx
import numpy as np
import pytest

import nas
from nas.errors import ConfigError, InvalidArchitectureError, SpaceDefinitionError
from nas.objectives import Problem
from nas.spaces import Architecture, CellGraph, Choice, Conditional, Integer, Space
from nas.strategies import STRATEGIES, TrialResult, make_strategy
from nas.strategies.base import SeenArchitectures


def small_space() -> Space:
    """120 architectures, the auditor's."""
    return Space(a=Choice([0, 1, 2, 3]), b=Choice(["x", "y", "z"]), c=Integer(0, 4), d=Choice([True, False]))


# ---------------------------------------------------------------- 1. "exhausted" means every architecture was seen
@pytest.mark.parametrize("strategy", ["random", "evolution", "nsga2", "local"])
def test_a_small_space_is_searched_to_its_last_architecture(strategy):
    """A 120-architecture space with budget 240 stopped "exhausted" after 117-119 evaluations (random with seed 0
    never evaluated {'a': 1, 'b': 'y', 'c': 4, 'd': False}); now every architecture is evaluated, the unique
    optimum included, before the search says exhausted."""
    space = small_space()
    optimum = space.validate({"a": 1, "b": "y", "c": 4, "d": False})
    for seed in range(3):
        r = nas.search(space, lambda x: {"acc": 1.0 if x.id == optimum.id else 0.0}, {"acc": "max"},
                       strategy=strategy, budget=240, seed=seed)
        assert len({t.arch_id for t in r.trials}) == r.used == 120
        assert r.stop_reason == "exhausted"
        assert r.best().metrics["acc"] == 1.0


def test_fresh_sample_lists_the_unseen_architectures_of_a_small_space():
    """Bayesian, smbo, mcts and predictor-search draw unseen architectures with `fresh_sample`: on a plain space it
    returned a repeat when its redraws missed the last unseen one."""
    space = small_space()
    archs = list(space)
    seen = SeenArchitectures(space)
    for a in archs[:-1]:
        seen.add(a)
    assert seen.fresh_sample(np.random.default_rng(0), tries=0).id == archs[-1].id


# ---------------------------------------------------------------- 2. exact canonical keys for declared cells
def inputs_space(nodes: int, ops: tuple[str, ...] = ()) -> Space:
    """Node j reads one or two earlier nodes (`in{j}`), optionally applying an operation (`op{j}`); the nodes no
    other node reads are summed into the output."""
    fields = {}
    for j in range(1, nodes + 1):
        fields[f"in{j}"] = Choice([str(i) for i in range(j)] + [f"{a},{b}" for a, b in itertools.combinations(range(j), 2)])
        if ops:
            fields[f"op{j}"] = Choice(list(ops))
    node_ops = {j: f"op{j}" for j in range(1, nodes + 1)} if ops else {}
    return Space(fields).with_graph(CellGraph(nodes=nodes, node_ops=node_ops,
                                              inputs={j: f"in{j}" for j in range(1, nodes + 1)}))


def reduced(space: Space, arch: Architecture) -> nx.DiGraph:
    """The cell's graph without the nodes that cannot reach the output (what the key describes)."""
    g = space.to_graph(arch)
    return g.subgraph(nx.ancestors(g, "output") | {"output"}).copy()


def same(x, y) -> bool:
    return x.get("label") == y.get("label") and x.get("n", 1) == y.get("n", 1)


def assert_keys_equal_iff_isomorphic(space: Space, archs: list[Architecture]) -> None:
    groups: dict[str, list[Architecture]] = collections.defaultdict(list)
    for a in archs:
        groups[space.canonical_key(a)].append(a)
    first = {k: reduced(space, g[0]) for k, g in groups.items()}
    for k, g in groups.items():  # one key: isomorphic cells
        for a in g[1:]:
            assert nx.is_isomorphic(first[k], reduced(space, a), node_match=same, edge_match=same), (g[0], a)
    buckets = collections.defaultdict(list)  # isomorphic graphs share a WL hash: only those need comparing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for k, g in first.items():
            buckets[nx.weisfeiler_lehman_graph_hash(g, node_attr="label")].append(k)
    for ks in buckets.values():  # two keys: cells that are not isomorphic
        for x, y in itertools.combinations(ks, 2):
            assert not nx.is_isomorphic(first[x], first[y], node_match=same, edge_match=same), (groups[x][0],
                                                                                                groups[y][0])


def test_non_isomorphic_cells_get_different_keys():
    """The auditor's pair: a Weisfeiler-Lehman hash gave these two 6-node cells one key, so dedup never evaluated
    one of them; the key is now an exact canonical form."""
    space = inputs_space(6)
    base = {"in1": "0", "in2": "0", "in3": "1", "in4": "2"}
    a = space.validate({**base, "in5": "1,3", "in6": "2,4"})
    b = space.validate({**base, "in5": "1,4", "in6": "2,3"})
    assert not nx.is_isomorphic(reduced(space, a), reduced(space, b), node_match=same, edge_match=same)
    assert space.canonical_key(a) != space.canonical_key(b)
    r = nas.search(space, lambda x: {"acc": 1.0 if x.id == a.id else 0.5}, {"acc": "max"}, strategy="random",
                   budget=5, seed=0, enqueue=[b, a])
    assert r.best().metrics["acc"] == 1.0


def test_canonical_keys_are_equal_iff_the_cells_are_isomorphic():
    """Exhaustively on 2,880 cells with node operations, on 2,700 five-node wirings, and on 1,500 six-node wirings
    drawn at random (the six-node space holds the auditor's collision)."""
    ops = inputs_space(4, ops=("a", "b"))
    assert_keys_equal_iff_isomorphic(ops, list(ops))
    five = inputs_space(5)
    assert_keys_equal_iff_isomorphic(five, list(five))
    six = inputs_space(6)
    rng = np.random.default_rng(0)
    base = {"in1": "0", "in2": "0", "in3": "1", "in4": "2"}
    sample = [six.sample(rng) for _ in range(1500)] + [six.validate({**base, "in5": x, "in6": y})
                                                       for x in ("1,3", "1,4") for y in ("2,3", "2,4")]
    assert_keys_equal_iff_isomorphic(six, sample)


# ---------------------------------------------------------------- 3. values that print alike
@pytest.mark.parametrize("pair", [(1, "1"), (True, "True"), (0.5, "0.5")])
def test_values_that_print_alike_are_not_twins(pair):
    space = Space(op1=Choice(["conv", "pool"]), extra=Choice(list(pair))).with_graph(
        CellGraph(nodes=1, node_ops={1: "op1"}, inputs={1: 0}))
    a, b = (space.validate({"op1": "conv", "extra": v}) for v in pair)
    assert space.canonical_key(a) != space.canonical_key(b)
    labels = [{d["label"] for _, d in space.to_graph(x).nodes(data=True)} for x in (a, b)]
    assert labels[0] != labels[1]  # a graph predictor tells them apart too
    seen = []
    r = nas.search(space, lambda x: seen.append(x.id) or {"score": 1.0}, {"score": "max"}, strategy="random",
                   budget=10, seed=0)
    assert len(set(seen)) == r.used == 4


def test_operations_that_print_alike_are_not_twins():
    space = Space(op1=Choice([1, "1"])).with_graph(CellGraph(nodes=1, node_ops={1: "op1"}, inputs={1: 0}))
    assert space.canonical_key({"op1": 1}) != space.canonical_key({"op1": "1"})


# ---------------------------------------------------------------- 4. encodings name a misspelt or missing field
def test_to_vector_and_to_onehot_name_a_misspelt_or_missing_field():
    space = Space(kernel=Choice([3, 5, 7]), width=Integer(16, 64, step=16), act=Choice(["relu", "gelu"]))
    good = {"kernel": 5, "width": 32, "act": "gelu"}
    assert space.to_vector(good).tolist() == [1.0, 1.0, 1.0]
    assert space.to_onehot(good).tolist() == [0, 1, 0, 0, 1, 0, 0, 0, 1]
    typo = {"kernal": 5, "width": 32, "act": "gelu"}
    for encode in (space.to_vector, space.to_onehot):
        with pytest.raises(InvalidArchitectureError, match="kernal: unknown field"):
            encode(typo)
        with pytest.raises(InvalidArchitectureError, match="kernel: missing"):
            encode({"width": 32, "act": "gelu"})
        with pytest.raises(InvalidArchitectureError, match="kernel: missing"):
            encode(Architecture({"width": 32, "act": "gelu"}))


def test_from_onehot_refuses_nan_scores():
    space = Space(kernel=Choice([3, 5, 7]), act=Choice(["relu", "gelu"]))
    scores = np.array([0.1, 0.5, 0.2, np.nan, np.nan])
    with pytest.raises(InvalidArchitectureError, match="act: one-hot column 3 is NaN"):
        space.from_onehot(scores)
    assert space.from_onehot([0.1, 0.5, 0.2, 0.0, 1.0]) == {"kernel": 5, "act": "gelu"}


# ---------------------------------------------------------------- 5. tell refuses an architecture outside the space
def plain_strategies() -> list[str]:
    space, problem = Space(kernel=Choice([3, 5, 7]), width=Integer(16, 64, step=16)), Problem.make({"acc": "max"})
    out = []
    for name in sorted(STRATEGIES):
        try:
            make_strategy(name, space, problem, seed=0)
        except ConfigError:  # successive halving needs a FidelitySpace, cmaes its package
            continue
        out.append(name)
    return out


@pytest.mark.parametrize("name", plain_strategies())
def test_tell_refuses_an_architecture_outside_the_space(name):
    """evolution, nsga2, random, local, tpe and rl took it and failed later inside ask (or kept it as a parent)."""
    logging.getLogger("nas").setLevel(logging.ERROR)
    space, problem = Space(kernel=Choice([3, 5, 7]), width=Integer(16, 64, step=16)), Problem.make({"acc": "max"})
    options = {"evolution": {"population_size": 4, "sample_size": 2}, "nsga2": {"population_size": 4}}
    s = make_strategy(name, space, problem, seed=0, **options.get(name, {}))
    with pytest.raises(InvalidArchitectureError, match=r"kernel: 9 is not one of \[3, 5, 7\]"):
        s.tell(Architecture({"kernel": 9, "width": 32}), TrialResult({"acc": 99.0}))
    with pytest.raises(InvalidArchitectureError, match="width: missing"):
        s.tell(Architecture({"kernel": 3}), TrialResult({"acc": 99.0}))
    for _ in range(3):  # the refusals left the strategy working
        for a in s.ask(2):
            assert space.contains(a)
            s.tell(a, TrialResult({"acc": float(a["kernel"])}))


# ---------------------------------------------------------------- 6. NaN and inf for an Integer
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_an_integer_field_names_nan_and_inf(bad):
    space = Space(width=Integer(16, 64, step=16), act=Choice(["relu", "gelu"]))
    with pytest.raises(InvalidArchitectureError, match="width: .* is not an integer"):
        space.validate({"width": bad, "act": "relu"})
    assert space.contains({"width": bad, "act": "relu"}) is False


# ---------------------------------------------------------------- 7. numpy scalars, bools included
def test_numpy_scalars_are_their_python_values():
    space = Space(bn=Choice([True, False]), width=Integer(16, 64, step=16), act=Choice(["relu", "gelu"]))
    plain = space.validate({"bn": True, "width": 32, "act": "gelu"})
    row = {"bn": np.bool_(True), "width": np.int64(32), "act": np.str_("gelu")}  # a row read from a DataFrame
    assert space.validate(row).id == plain.id
    assert space.to_vector(row).tolist() == space.to_vector(plain).tolist()
    options = Choice([np.int64(1), np.float64(2.5), np.bool_(False), np.str_("x")]).options
    assert options == (1, 2.5, False, "x") and [type(o) for o in options] == [int, float, bool, str]
    gated = Space(mode=Choice(["x", "y"]), extra=Conditional("mode", np.str_("x"), Integer(1, 3)))
    assert gated.size() == 4 and gated.contains({"mode": "x", "extra": 2})
    mixed = Space(k=Choice(np.array([3, 5, 7])), w=Integer(np.int64(0), np.int64(4)))
    assert mixed.validate({"k": 5, "w": 2}).id == Space(k=Choice([3, 5, 7]), w=Integer(0, 4)).validate(
        {"k": 5, "w": 2}).id


# ---------------------------------------------------------------- 8. and smaller: definitions refused at once
@pytest.mark.parametrize("make, match", [
    (lambda: Space(seed_offset=Integer(0, 2 ** 64)), "seed_offset: Integer high=18446744073709551616 is outside the int64"),
    (lambda: Space(seed_offset=Integer(0, 2 ** 60)), r"seed_offset: Integer 0..1152921504606846976 .* more than 2\*\*53"),
    (lambda: Space(k=Choice([3, 5], ordered="yes")), "k: Choice ordered must be True or False"),
    (lambda: Space(w=Integer(0, 10, step=3)), "w: Integer high=10 is not reached in steps of 3 from low=0 .* use high=9"),
])
def test_bad_definitions_are_refused_naming_the_field(make, match):
    with pytest.raises(SpaceDefinitionError, match=match):
        make()


def test_an_off_grid_integer_in_an_older_journals_spec_is_read_with_the_same_values(caplog):
    """Journals written before `Integer(0, 10, step=3)` was refused hold it in their space spec; the dashboard rebuilds
    such a space from the spec, as the range's own values 0, 3, 6, 9, with a warning naming the field."""
    spec = {"type": "Space", "fields": {"act": {"choice": ["relu", "gelu"], "ordered": False},
                                        "w": {"integer": [0, 10, 3]}}}
    with caplog.at_level("WARNING", logger="nas.spaces.space"):
        space = Space.from_spec(spec)
    assert [a["w"] for a in space if a["act"] == "relu"] == [0, 3, 6, 9]
    assert "w: Integer(0, 10, step=3) from an older journal read as Integer(0, 9, step=3)" in caplog.text
    with pytest.raises(SpaceDefinitionError, match="w: Integer range is empty"):
        Space.from_spec({"type": "Space", "fields": {"w": {"integer": [5, 1, 1]}}})


def test_a_wide_integer_within_the_limits_samples():
    space = Space(seed_offset=Integer(-2 ** 52, 2 ** 52 - 1))
    arch = space.sample(np.random.default_rng(0))
    assert space.contains(arch) and space.from_vector(space.to_vector(arch)) == arch


def test_a_bad_sampler_option_value_is_a_config_error():
    space = Space(k=Choice([3, 5, 7]))
    with pytest.raises(ConfigError, match="qmc_type='nope'"):
        make_strategy("qmc", space, Problem.make({"acc": "max"}), sampler_options={"qmc_type": "nope"})


# ---------------------------------------------------------------- compatibility: persisted keys
def test_a_workdir_whose_snapshot_holds_keys_of_another_format_resumes(tmp_path):
    """mcts saves the canonical keys it has seen; a workdir written before the keys became exact holds keys of the
    old format, which match no new key. Resuming it spends the budget without evaluating any cell twice (the
    de-duplication recomputes its keys from the architectures), and nothing fails."""
    edges = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    space = Space({f"edge_{i}_{j}": Choice(["none", "skip", "conv"]) for i, j in edges}).with_graph(
        CellGraph(nodes=3, edge_ops={(i, j): f"edge_{i}_{j}" for i, j in edges}, output="last"))

    def evaluate(arch):
        return {"y": float(sum(v == "conv" for v in arch.values()))}

    nas.search(space, evaluate, {"y": "max"}, strategy="mcts", budget=30, seed=0, workdir=tmp_path)
    snapshot = json.loads((tmp_path / "strategy.json").read_text())
    state = snapshot["state"]["inner"]
    assert state["seen"]
    state["seen"] = [f"old-format-{i}" for i in range(len(state["seen"]))]
    (tmp_path / "strategy.json").write_text(json.dumps(snapshot))
    r = nas.search(space, evaluate, {"y": "max"}, strategy="mcts", budget=60, seed=0, workdir=tmp_path)
    assert r.used == 60
    keys = [space.canonical_key(t.architecture) for t in r.trials if not t.extra.get("cached")]
    assert len(keys) == len(set(keys)) == 60
