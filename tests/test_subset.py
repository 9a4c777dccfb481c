"""`Subset`: k ordered distinct items out of T as a leaf of the space language (AutoDiffusion's kept time steps):
exact size, uniform sampling, validation errors, the T-bit mask encoding, variation operators that always stay
valid, descriptions, every strategy on a space holding one, and a reduced run of the AutoDiffusion example."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import nas
from nas.cli import load_script
from nas.errors import ConfigError, InvalidArchitectureError, SpaceDefinitionError
from nas.objectives import Problem
from nas.result import SearchResult
from nas.spaces import Architecture, Choice, Conditional, Repeat, Space, Subset
from nas.spaces.params import SubsetBit
from nas.store import Journal
from nas.strategies import STRATEGIES
from tests.spaces_strategies import spaces

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = settings(max_examples=40, deadline=None)


def joint(n: int = 1000, k: int = 10, blocks: int = 8) -> Space:
    return Space(steps=Subset(n=n, k=k), skip=Repeat(count=blocks, on=Choice([True, False])))


def assert_valid(sub: Subset, value) -> list[int]:
    """The positions of `value`, checked without `validate`: sorted, distinct, k of them, all items."""
    pos = [sub.position(x) for x in value]
    assert None not in pos, value
    assert len(pos) == sub.k, value
    assert all(a < b for a, b in zip(pos, pos[1:])), value
    return pos


@st.composite
def subsets(draw, max_n: int = 40) -> Subset:
    n = draw(st.integers(1, max_n))
    k = draw(st.one_of(st.just(1), st.just(n), st.integers(0, n)))
    kind = draw(st.sampled_from(["n", "range", "strings"]))
    if kind == "n":
        return Subset(n=n, k=k)
    if kind == "range":
        start, step = draw(st.integers(-5, 5)), draw(st.integers(1, 3))
        return Subset(range(start, start + n * step, step), k=k)
    return Subset([f"item{j}" for j in range(n)], k=k)


@st.composite
def subset_spaces(draw) -> Space:
    """A random space with one or two Subsets: top level, conditional, in fixed or counted repeats, nested."""
    sub = draw(subsets())
    rest = draw(spaces(depth=1))
    where = draw(st.sampled_from(["top", "cond", "repeat", "counted", "nested", "two"]))
    if where == "top":
        return Space(steps=sub, rest=rest)
    if where == "cond":
        return Space(mode=Choice(["on", "off"]), steps=Conditional("mode", "on", sub), rest=rest)
    if where == "repeat":
        return Space(blocks=Repeat(2, steps=sub, w=Choice([1, 2])), rest=rest)
    if where == "counted":
        return Space(depth=Choice([0, 1, 2]), blocks=Repeat("depth", steps=sub))
    if where == "nested":
        return Space(inner=Space(steps=sub, x=Choice(["a", "b"])))
    return Space(steps=sub, other=draw(subsets(max_n=8)), rest=rest)


def subset_fields(space: Space) -> dict[tuple, Subset]:
    return {s.path: s.leaf.subset for s in space.slots() if isinstance(s.leaf, SubsetBit)}


def present(space: Space, arch):
    from nas.spaces.space import _ABSENT, get_path

    for path, sub in subset_fields(space).items():
        v = get_path(arch, path)
        if v is not _ABSENT:
            yield path, sub, v


# ------------------------------------------------------------------------------------------ the type
def test_issue_example_size_sample_and_display():
    space = joint()
    assert space.size() == math.comb(1000, 10) * 2**8  # exact: 263409560461970212832400 * 256
    assert Subset(n=1000, k=10).cardinality == 263409560461970212832400
    arch = space.sample(np.random.default_rng(0))
    assert_valid(space.fields["steps"], arch["steps"])
    assert isinstance(arch["steps"], tuple) and arch.to_dict()["steps"] == list(arch["steps"])
    assert repr(space.fields["steps"]) == "Subset(n=1000, k=10)"
    label = space.to_graph(arch).nodes["<root>"]["label"]
    assert label == "steps=[" + ",".join(map(str, arch["steps"])) + "] (10 of 1000)"


def test_the_forms_of_one_subset_are_one_space():
    a, b, c = Subset(n=1000, k=10), Subset(range(1000), k=10), Subset(list(range(1000)), k=10)
    assert a == b == c and hash(a) == hash(c)
    assert Space(s=a).fingerprint() == Space(s=c).fingerprint()
    assert Space(s=a).to_spec()["fields"]["s"] == {"subset": {"n": 1000, "k": 10}}
    assert Subset([0, 10, 20], k=2) == Subset(range(0, 30, 10), k=2)
    assert Space(s=Subset([0, 10, 20], k=2)).to_spec()["fields"]["s"] == {"subset": {"range": [0, 30, 10], "k": 2}}
    assert Space(s=Subset([1, 2, 4], k=2)).to_spec()["fields"]["s"] == {"subset": {"items": [1, 2, 4], "k": 2}}
    assert Subset(np.arange(5), k=2) == Subset(n=5, k=2)


@pytest.mark.parametrize("build, message", [
    (lambda: Space(steps=Subset(n=10, k=11)), "steps: Subset k=11 is outside 0..10"),
    (lambda: Space(steps=Subset(n=10, k=-1)), "steps: Subset k=-1 is outside 0..10"),
    (lambda: Space(steps=Subset(n=10, k=2.0)), "steps: Subset k (how many items to keep) must be an int"),
    (lambda: Space(steps=Subset(n=10)), "steps: Subset k (how many items to keep) must be an int, got None"),
    (lambda: Space(steps=Subset(1000, k=10)), "use n=1000 for the items 0..999"),
    (lambda: Space(steps=Subset([], k=0)), "steps: Subset has no items"),
    (lambda: Space(steps=Subset([3, 1, 2], k=1)), "steps: Subset int items must strictly increase; 1 follows 3"),
    (lambda: Space(steps=Subset(["a", "b", "a"], k=1)), "steps: Subset item 'a' appears twice"),
    (lambda: Space(steps=Subset([1, "a"], k=1)), "steps: Subset items must be all ints or all strings"),
    (lambda: Space(steps=Subset(range(10, 0, -1), k=1)), "steps: Subset items must increase"),
    (lambda: Space(b=Repeat(2, steps=Subset(n=3, k=4))), "b[].steps: Subset k=4 is outside 0..3"),
    (lambda: Space(steps=Subset(range(3), n=3, k=1)), "steps: Subset takes its items (a list or range) or n="),
    (lambda: Space(steps=Subset(n=0, k=0)), "steps: Subset n must be a positive int"),
    (lambda: Space(s=Subset(n=3, k=1), b=Repeat("s", x=Choice([1]))), "which is not a plain Choice/Integer field"),
])
def test_bad_definitions_name_the_field(build, message):
    with pytest.raises(SpaceDefinitionError) as e:
        build()
    assert message in str(e.value)


@pytest.mark.parametrize("value, fragment", [
    ([5, 3, 7], "steps: items out of order: 3 comes after 5"),
    ([3, 3, 7], "steps: item 3 appears twice"),
    ([3, 7], "steps: has 2 items but k=3"),
    ([1, 3, 5, 7], "steps: has 4 items but k=3"),
    ([3, 7, 1000], "steps: item 1000 is not one of the 1000 items 0..999"),
    ([-1, 3, 7], "steps: item -1 is not one of the 1000 items 0..999"),
    ([True, 3, 7], "steps: item True is not one of"),
    ([1.0, 3, 7], "steps: item 1.0 is not one of"),
    (5, "steps: expected a list of 3 distinct items out of 1000 items 0..999, got 5"),
    ("357", "steps: expected a list of 3 distinct items"),
])
def test_invalid_values_name_the_field_and_the_problem(value, fragment):
    space = Space(steps=Subset(n=1000, k=3), w=Choice([1, 2]))
    with pytest.raises(InvalidArchitectureError) as e:
        space.validate({"steps": value, "w": 1})
    assert fragment in str(e.value) and e.value.path == "steps"


def test_invalid_values_deep_in_a_space_name_their_path():
    space = Space(blocks=Repeat(2, steps=Subset(["a", "b", "c"], k=2)))
    with pytest.raises(InvalidArchitectureError, match=r"blocks\[1\]\.steps: items out of order: 'a' comes after 'c'"):
        space.validate({"blocks": [{"steps": ["a", "b"]}, {"steps": ["c", "a"]}]})
    arch = space.validate({"blocks": [{"steps": ("a", "b")}, {"steps": ["b", "c"]}]})
    assert arch["blocks"][0]["steps"] == ("a", "b")


# ------------------------------------------------------------------------------------------ size and sampling
@settings(max_examples=60, deadline=None)
@given(n=st.one_of(st.integers(1, 50), st.integers(51, 10**6)), data=st.data())
def test_size_is_the_exact_binomial_times_the_rest(n, data):
    k = data.draw(st.one_of(st.just(1), st.just(n), st.integers(0, min(n, 60))))
    rest = data.draw(spaces(depth=1))
    sub = Subset(n=n, k=k)
    assert sub.cardinality == math.comb(n, k)
    assert Space(steps=sub, rest=rest).size() == math.comb(n, k) * rest.size()
    assert Space(d=Choice([1, 2]), b=Repeat("d", s=sub)).size() == math.comb(n, k) + math.comb(n, k) ** 2


@settings(max_examples=30, deadline=None)
@given(space=subset_spaces())
def test_size_counts_every_architecture_exactly_once(space):
    if space.size() > 2000:
        return
    archs = list(space)
    assert len(archs) == space.size() == len({a.id for a in archs})
    for a in archs[:30]:
        assert space.validate(a) == a


def test_sampling_is_uniform_over_subsets_and_over_the_space():
    rng = np.random.default_rng(0)
    sub = Subset(n=6, k=3)
    counts = {tuple(v): 0 for v in sub}
    for _ in range(10000):
        counts[tuple(sub.sample(rng))] += 1
    assert len(counts) == 20 and stats.chisquare(list(counts.values())).pvalue > 1e-3
    space = Space(mode=Choice(["a", "b"]), s=Conditional("mode", "a", Subset(n=5, k=2)))  # 10 + 1 architectures
    seen = [space.sample(rng).id for _ in range(11000)]
    freq = [seen.count(a.id) for a in space]
    assert len(freq) == space.size() == 11 and stats.chisquare(freq).pvalue > 1e-3


# ------------------------------------------------------------------------------------------ variation operators
@settings(max_examples=80, deadline=None)
@given(n=st.one_of(st.integers(1, 30), st.integers(31, 2000), st.just(10**6)), data=st.data(),
       seed=st.integers(0, 2**32 - 1))
def test_operators_always_keep_values_sorted_distinct_and_of_size_k(n, data, seed):
    k = data.draw(st.one_of(st.just(1), st.just(n), st.just(n - 1), st.integers(0, n)) if n <= 2000 else
                  st.one_of(st.just(1), st.integers(0, 40)))
    sub, rng = Subset(n=n, k=k), np.random.default_rng(seed)
    a, b = sub.sample(rng), sub.sample(rng)
    for _ in range(20):
        pa, pb = set(assert_valid(sub, a)), set(assert_valid(sub, b))
        child = sub.crossover(a, b, rng)
        pc = set(assert_valid(sub, child))
        assert pa & pb <= pc <= pa | pb
        m = sub.mutate(a, rng)
        assert_valid(sub, m)
        assert (m != a) == (sub.cardinality > 1)
        pg = set(assert_valid(sub, sub.mutate(a, rng, toward=b)))  # guided: one item swapped toward b
        if pa != pb:
            assert len(pg ^ pa) == 2 and pg - pa <= pb - pa and pa - pg <= pa - pb
        a, b = m, child
    nbs = sub.neighbours(a)
    assert len(nbs) <= 4 * k and len({tuple(v) for v in nbs}) == len(nbs)
    for v in nbs:
        assert len(set(assert_valid(sub, v)) ^ set(a)) == 2  # one item moved
    if 0 < k < n:
        assert nbs


def test_ten_thousand_mutations_and_crossovers_stay_valid():
    rng = np.random.default_rng(0)
    space = joint()
    sub = space.fields["steps"]
    pop = [space.sample(rng) for _ in range(16)]
    for i in range(5000):  # 5,000 mutations and 5,000 crossovers of an evolving population
        a, b = pop[int(rng.integers(16))], pop[int(rng.integers(16))]
        child = space.crossover(a, b, rng)
        mutant = space.mutate(child if i % 2 else a, rng, guide=pop[:4] if i % 3 == 0 else ())
        for arch in (child, mutant):
            assert_valid(sub, arch["steps"])
            assert len(arch["skip"]) == 8
        pop[int(rng.integers(16))] = mutant
    for n, k, rounds in ((1000, 1, 2500), (1000, 10, 2500), (100, 99, 200), (100, 100, 100), (1, 1, 100),
                         (2, 1, 1000), (10**6, 10, 2600), (50, 25, 1000)):  # 10,000 rounds in all
        s = Subset(n=n, k=k)
        a, b = s.sample(rng), s.sample(rng)
        for _ in range(rounds):
            a, b = s.mutate(a, rng), s.crossover(a, b, rng)
            assert_valid(s, a)
            assert_valid(s, b)


def test_space_mutation_changes_one_item_or_one_other_decision():
    rng = np.random.default_rng(1)
    space = joint(n=100, k=5)
    moved = 0
    for _ in range(400):
        a = space.sample(rng)
        m = space.mutate(a, rng)
        diff_items = len(set(a["steps"]) ^ set(m["steps"]))
        diff_skips = sum(x != y for x, y in zip(a["skip"], m["skip"]))
        assert (diff_items > 0) != (diff_skips > 0) and diff_skips <= 1
        moved += diff_items > 0
    # a Subset weighs as its k = 5 items among 5 + 8 decisions
    assert abs(moved / 400 - 5 / 13) < 0.08
    for nb in space.neighbours(space.default()):
        assert space.validate(nb) != space.default()


def test_guided_mutation_swaps_an_item_toward_the_guide():
    space = Space(steps=Subset(n=20, k=3))
    rng = np.random.default_rng(0)
    guide = [{"steps": [1, 2, 3]}]
    a = space.validate({"steps": [1, 10, 19]})
    for _ in range(20):
        m = space.mutate(a, rng, guide=guide)
        assert set(m["steps"]) - set(a["steps"]) <= {2, 3} and len(set(m["steps"]) ^ set(a["steps"])) == 2
    only = Space(steps=Subset(n=4, k=4))
    assert only.mutate(only.default(), rng) == only.default() and only.neighbours(only.default()) == []


# ------------------------------------------------------------------------------------------ encodings and descriptions
def test_encoding_is_the_t_bit_mask():
    space = Space(w=Choice([3, 5]), steps=Subset(n=1000, k=10))
    arch = space.validate({"w": 5, "steps": list(range(0, 1000, 100))})
    slots = space.slots()
    assert len(slots) == 1 + 1000 and slots[1].name == "steps@0" and slots[-1].name == "steps@999"
    vec = space.to_vector(arch)
    assert vec[0] == 1 and vec[1:].sum() == 10 and all(vec[1 + t] == 1 for t in range(0, 1000, 100))
    onehot = space.to_onehot(arch)
    assert space.onehot_size() == 2 + 1000 and onehot[2:].tolist() == vec[1:].tolist()
    assert space.from_vector(vec) == arch and space.from_onehot(onehot) == arch
    scores = np.random.default_rng(0).random(space.onehot_size())  # a predictor's soft output decodes to top-k
    top = sorted(np.argsort(-scores[2:])[:10].tolist())
    assert list(space.from_onehot(scores)["steps"]) == top
    bad = vec.copy()
    bad[2] = 1  # 11 ones
    with pytest.raises(InvalidArchitectureError, match="steps: mask keeps 11 items but k=10"):
        space.from_vector(bad)
    cond = Space(mode=Choice(["on", "off"]), steps=Conditional("mode", "on", Subset(n=4, k=2)))
    off = cond.validate({"mode": "off"})
    assert cond.to_vector(off).tolist() == [1, -1, -1, -1, -1] and cond.to_onehot(off).tolist() == [0, 1, 0, 0, 0, 0]
    assert cond.from_vector(cond.to_vector(off)) == off and cond.from_onehot(cond.to_onehot(off)) == off
    with pytest.raises(InvalidArchitectureError, match="steps: is active but encoded as inactive"):
        cond.from_vector([0, -1, -1, -1, -1])


@SETTINGS
@given(space=subset_spaces(), seed=st.integers(0, 2**32 - 1))
def test_round_trips_and_operators_on_random_spaces(space, seed):
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)
    for arch in (a, b, space.mutate(a, rng), space.crossover(a, b, rng), space.default(), *space.neighbours(a)):
        assert space.validate(arch) == arch
        for _, sub, v in present(space, arch):
            assert_valid(sub, v)
    assert space.from_dict(json.loads(json.dumps(space.to_dict(a)))) == a
    assert Architecture.from_json(a.to_json()).id == a.id
    vec = space.to_vector(a)
    assert vec.shape == (len(space.slots()),) and space.from_vector(vec) == a
    assert space.from_onehot(space.to_onehot(a)) == a
    assert space.from_graph(space.to_graph(a)) == a
    rebuilt = Space.from_spec(json.loads(json.dumps(space.to_spec())))
    assert rebuilt.fingerprint() == space.fingerprint() and rebuilt.size() == space.size()
    assert rebuilt.validate(a) == a


def test_long_subsets_display_compactly_and_distinctly():
    space = Space(steps=Subset(n=1000, k=100))
    a, b = space.sample(np.random.default_rng(0)), space.sample(np.random.default_rng(1))
    la, lb = (space.to_graph(x).nodes["<root>"]["label"] for x in (a, b))
    assert len(la) < 120 and "…" in la and "(100 of 1000, #" in la and la != lb
    assert repr(Subset(range(0, 1000, 10), k=3)) == "Subset(range(0, 1000, 10), k=3)"
    assert repr(Space(s=Subset(["x", "y"], k=1))) == "Space(s=Subset(['x', 'y'], k=1))"


def test_capabilities_say_slots_are_not_independent():
    assert "independent-slots" in Space(w=Choice([1, 2])).capabilities
    caps = joint().capabilities
    assert "independent-slots" not in caps and {"sample", "mutate", "crossover", "neighbours", "encode"} <= caps


# ------------------------------------------------------------------------------------------ strategies and journals
TARGET = {3, 9, 17, 25}
SMALL = Space(steps=Subset(n=30, k=4), skip=Repeat(count=3, on=Choice([False, True])), w=Choice([1, 2, 3]))


def toy(arch):
    return {"loss": float(len(TARGET ^ set(arch["steps"])) + sum(b["on"] for b in arch["skip"]) + arch["w"])}


SUPPORTED = [s for s in ("random", "evolution", "nsga2", "local", "bayesian", "smbo", "predictor-search")
             if s in STRATEGIES]
SLOT_BY_SLOT = [s for s in STRATEGIES if STRATEGIES[s].__module__.endswith(("rl", "mcts", "optuna_sampler"))]


@pytest.mark.parametrize("strategy", SUPPORTED)
def test_strategies_search_a_space_with_a_subset(strategy):
    budget = 12 if strategy in ("bayesian", "smbo", "predictor-search") else 40
    r = nas.search(SMALL, toy, {"loss": "min"}, strategy=strategy, budget=budget, seed=0)
    assert len(r.trials) == budget and all(SMALL.validate(t.arch) == t.arch for t in r.trials)


@pytest.mark.parametrize("strategy", SLOT_BY_SLOT)
def test_strategies_that_choose_slot_by_slot_refuse_a_subset_at_construction(strategy):
    with pytest.raises(ConfigError, match=f"strategy '{strategy}' needs space capabilities \\['independent-slots'\\]"):
        STRATEGIES[strategy](SMALL, Problem.make({"loss": "min"}), 0)


def test_journal_round_trip_and_resume(tmp_path):
    wd = tmp_path / "run"
    first = nas.search(SMALL, toy, {"loss": "min"}, strategy="evolution", budget=15, seed=0, workdir=wd)
    loaded = SearchResult.load(wd)
    assert [t.arch for t in loaded.trials] == [t.arch for t in first.trials]
    assert all(isinstance(t.arch["steps"], list) and SMALL.validate(t.arch) == t.arch for t in loaded.trials)
    config = Journal(wd).read().config
    assert config["space"] == SMALL.fingerprint() == Space.from_spec(config["space_spec"]).fingerprint()
    more = nas.search(SMALL, toy, {"loss": "min"}, strategy="evolution", budget=25, seed=0, workdir=wd)
    assert len(more.trials) == 25 and [t.arch for t in more.trials[:15]] == [t.arch for t in loaded.trials]


# ------------------------------------------------------------------------------------------ the AutoDiffusion example
@pytest.fixture(scope="module")
def autodiffusion():
    return load_script(ROOT / "examples" / "autodiffusion_joint.py")


def test_the_residual_stack_reproduces_the_exact_noise_prediction(autodiffusion):
    ad = autodiffusion
    x = np.random.default_rng(0).standard_normal((64, 2))
    w, means = ad.leaves()
    for t in (0, 40, 300, 999):
        a = ad.ALPHA_BAR[t]
        var = a * ad.LEAF_STD**2 + 1 - a

        def logp(z):
            d2 = ((z[:, None, :] - np.sqrt(a) * means[None]) ** 2).sum(-1)
            return np.log((w * np.exp(-d2 / (2 * var))).sum(1) / (2 * np.pi * var))

        h = 1e-5
        grad = np.stack([(logp(x + h * e) - logp(x - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
        exact = -np.sqrt(1 - a) * grad
        np.testing.assert_allclose(ad.network(x, t), exact, rtol=1e-5, atol=1e-6)
        assert np.abs(ad.network(x, t, [False] * 6 + [True]) - exact).max() > 0  # skipping a block changes it


def test_reduced_autodiffusion_search_beats_uniform_steps_and_is_deterministic(autodiffusion):
    ad = autodiffusion
    steps, space, ev = 4, autodiffusion.joint_space(4), ad.evaluator(n=512)
    uniform = ev(space.validate(ad.uniform(steps, "ddim")))
    arch = space.sample(np.random.default_rng(0))
    assert ev(arch) == ev(arch) and uniform["compute"] == 1.0
    for seed in (0, 1):
        best = nas.search(space, ev, ad.objectives, constraints=ad.constraints, strategy="evolution", budget=60,
                          seed=seed, strategy_options={"population_size": 20}).best()
        assert best.metrics["compute"] <= 0.75
        assert best.metrics["distance"] < 0.8 * uniform["distance"]
