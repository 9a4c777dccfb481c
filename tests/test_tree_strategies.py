"""DeepArchitect's searchers (issue 22): `mcts` (Monte-Carlo tree search) and `smbo` (random-forest SMBO)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import nas
from nas.objectives import Problem
from nas.spaces import Choice, Conditional, Integer, Repeat, Space
from nas.strategies import STRATEGIES, MonteCarloTreeSearch, SequentialModelBasedOptimisation, TrialResult, make_strategy

OPS = ["conv3", "conv5", "pool", "skip"]
# a plain user space written field by field, 4^5 = 1,024 architectures
PLAIN = Space(link=Choice(["chain", "star", "pair", "tree"]), op1=Choice(OPS), op2=Choice(OPS), op3=Choice(OPS),
              op4=Choice(OPS))
WEIGHTS = np.random.default_rng(123).normal(size=(5, 4))


def additive(arch) -> dict[str, float]:
    """A fixed weight per (decision, option): one known optimum, and a second objective that conflicts."""
    idx = PLAIN.to_vector(arch).astype(int)
    return {"acc": float(WEIGHTS[np.arange(5), idx].sum()), "cost": float(idx.sum())}


OPTIMUM = max(additive(a)["acc"] for a in PLAIN)

# controllers declared after the fields they switch, a Repeat inside a Conditional space, an Integer
NESTED = Space(
    blocks=Repeat(count="depth", k=Choice([3, 5, 7]), act=Choice(["relu", "gelu"])),
    depth=Choice([0, 1, 2]),
    head=Conditional("kind", "mlp", Space(width=Integer(1, 3), extra=Repeat(2, p=Choice([0, 1])))),
    kind=Choice(["mlp", "linear"]),
)


def nested(arch) -> dict[str, float]:
    head = arch.get("head", {"width": 0, "extra": []})
    return {"acc": sum(b["k"] for b in arch["blocks"]) + head["width"] + sum(e["p"] for e in head["extra"]),
            "size": float(len(arch["blocks"]))}


FAST_SMBO = {"trees": 10, "n_random": 50, "n_local": 30}
OPTIONS = {"mcts": {}, "smbo": FAST_SMBO}

pytestmark = pytest.mark.usefixtures("one_thread")


def hits(strategy: str, budget: int, seeds, **options) -> int:
    """Seeds on which a search through `nas.search` evaluated the optimum within `budget`."""
    found = 0
    for s in seeds:
        r = nas.search(PLAIN, additive, {"acc": "max"}, strategy=strategy, strategy_options=options, budget=budget,
                       seed=s, executor=nas.SimulatedClockExecutor())
        assert len({t.arch_id for t in r.trials}) == len(r.trials) == budget  # no architecture twice
        found += r.best().metrics["acc"] >= OPTIMUM - 1e-9
    return found


def test_registered_and_listed_by_the_cli():
    from typer.testing import CliRunner

    from nas.cli import app

    assert STRATEGIES["mcts"] is MonteCarloTreeSearch and STRATEGIES["smbo"] is SequentialModelBasedOptimisation
    out = CliRunner().invoke(app, ["strategies"], env={"COLUMNS": "400"})
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert any("mcts" in line and "exploration=0.1" in line for line in lines), out.stdout
    assert any("smbo" in line and "n_init=10" in line for line in lines), out.stdout


def test_mcts_finds_the_optimum_random_search_usually_misses():
    # 150 of 1,024 architectures: random search holds the optimum on ~15 % of seeds (3 of 20 expected)
    mcts, rnd = hits("mcts", 150, range(20)), hits("random", 150, range(20))
    assert mcts >= 10 and rnd <= 7 and mcts >= rnd + 6, (mcts, rnd)


def test_smbo_finds_the_optimum_random_search_usually_misses():
    # 60 of 1,024: random search ~6 % of seeds
    smbo, rnd = hits("smbo", 60, range(8), **FAST_SMBO), hits("random", 60, range(8))
    assert smbo >= 5 and rnd <= 2, (smbo, rnd)


def test_mcts_decision_order_puts_controllers_first():
    strat = make_strategy("mcts", NESTED, Problem.make({"acc": "max"}), 0)
    names = [NESTED.slots()[i].name for i in strat.decisions.order]
    assert names.index("depth") < names.index("blocks[0].k") and names.index("kind") < names.index("head.width")


@pytest.mark.parametrize("name", ["mcts", "smbo"])
def test_repeats_and_conditionals_give_only_valid_architectures(name):
    result = nas.search(NESTED, nested, {"acc": "max"}, strategy=name, strategy_options=OPTIONS[name], budget=40,
                        seed=0, executor=nas.SimulatedClockExecutor())
    assert len(result.trials) == 40 and all(t.status == "ok" for t in result.trials)
    for t in result.trials:
        assert NESTED.validate(t.arch) == t.arch
    assert len({t.arch_id for t in result.trials}) == 40
    assert {len(t.arch["blocks"]) for t in result.trials} == {0, 1, 2}
    assert {"head" in t.arch for t in result.trials} == {True, False}


def test_mcts_enumerates_a_small_space_once_then_stops():
    space = Space(depth=Choice([0, 1, 2]), blocks=Repeat(count="depth", k=Choice([3, 5])),
                  op=Choice(["a", "b"]), rate=Conditional("op", "a", Integer(1, 3)))  # 7 x 4 = 28
    strat = make_strategy("mcts", space, Problem.make({"acc": "max"}), 0)
    seen = []
    for _ in range(40):
        asked = strat.ask(1)
        if not asked:
            break
        seen += [a.id for a in asked]
        for a in asked:
            strat.tell(a, TrialResult({"acc": float(len(a["blocks"]))}))
    assert len(seen) == len(set(seen)) == space.size() == 28
    assert set(seen) == {a.id for a in space} and strat.root["d"] and strat.ask(3) == []


def run_steps(strat, steps: int, evaluate, hold: int = 0) -> list[str]:
    """Ask `steps` times (2 at a time); the last `hold` asks of the run stay untold (pending)."""
    ids, untold = [], []
    for i in range(steps):
        for a in strat.ask(2):
            ids.append(a.id)
            if i >= steps - hold:
                untold.append(a)
            else:
                status = "failed" if a["op1"] == "pool" and a["op2"] == "skip" else "ok"
                strat.tell(a, TrialResult(additive(a) if status == "ok" else {}, status))
    return ids


@pytest.mark.parametrize("name", ["mcts", "smbo"])
@pytest.mark.parametrize("objectives", [{"acc": "max"}, {"acc": "max", "cost": "min"}])
def test_resume_from_json_state_equals_uninterrupted_run(name, objectives):
    problem = Problem.make(objectives, ["cost <= 9"])
    a = make_strategy(name, PLAIN, problem, 5, **OPTIONS[name])
    a.tell(PLAIN.default(), TrialResult(additive(PLAIN.default())))  # one result it did not ask for
    run_steps(a, 10, additive, hold=1)
    state = json.loads(json.dumps(a.state_dict()))  # plain data only
    b = make_strategy(name, PLAIN, problem, 5, **OPTIONS[name])
    b.load_state_dict(state)
    assert json.loads(json.dumps(b.state_dict())) == state
    assert run_steps(a, 8, additive) == run_steps(b, 8, additive)


@pytest.mark.parametrize("name", ["mcts", "smbo"])
def test_resumed_search_equals_uninterrupted_one(name, tmp_path):
    kw = dict(objectives={"acc": "max"}, strategy=name, strategy_options=OPTIONS[name], seed=3,
              executor=nas.SimulatedClockExecutor())
    whole = nas.search(PLAIN, additive, budget=24, workdir=tmp_path / "whole", **kw)
    nas.search(PLAIN, additive, budget=14, workdir=tmp_path / "split", **kw)
    split = nas.search(PLAIN, additive, budget=24, workdir=tmp_path / "split", **kw)
    assert [t.arch_id for t in split.trials] == [t.arch_id for t in whole.trials]


@pytest.mark.parametrize("name", ["mcts", "smbo"])
def test_two_objectives_constraints_and_failures(name):
    logging.getLogger("nas").setLevel(logging.ERROR)

    def evaluate(arch):
        if arch["op1"] == "skip" and arch["link"] == "star":
            raise RuntimeError("diverged")  # a failed trial: the strategies treat it as the worst result
        return additive(arch)

    r = nas.search(PLAIN, evaluate, {"acc": "max", "cost": "min"}, constraints=["cost <= 8"], strategy=name,
                   strategy_options=OPTIONS[name], budget=40, seed=0, executor=nas.SimulatedClockExecutor())
    assert len(r.trials) == 40 and len({t.arch_id for t in r.trials}) == 40
    front = r.pareto_front()
    assert front and all(t.metrics["cost"] <= 8 for t in front)
    assert len(r.feasible) > len(r.trials) / 2  # the search learns where the constraint holds


def test_mcts_scores_failed_and_infeasible_results_worst():
    problem = Problem.make({"acc": "max"}, ["cost <= 5"])
    strat = make_strategy("mcts", PLAIN, problem, 0)
    asked = {a["link"]: a for a in strat.ask(4)}  # one new child of the root (the link decision) per ask
    assert sorted(asked) == ["chain", "pair", "star", "tree"]
    for link, metrics, status in [("tree", {"acc": 0.0, "cost": 0.0}, "ok"), ("chain", {"acc": 1.0, "cost": 1.0}, "ok"),
                                  ("star", {"acc": 9.0, "cost": 9.0}, "ok"), ("pair", {}, "failed")]:
        strat.tell(asked[link], TrialResult(metrics, status))
    leaf = PLAIN.slots()[0].leaf
    value = {k: strat.value(strat.root["c"][leaf.index(k, "link")]) for k in asked}
    assert value["chain"] == 1.0 and value["tree"] == 0.5  # beats every feasible result / half of them
    assert value["star"] == value["pair"] == 0.0  # infeasible (cost 9 > 5) and failed: the worst
    assert strat.root["n"] == 4


def test_mcts_refuses_a_space_whose_slots_are_not_independent():
    subset = pytest.importorskip("nas.spaces.params").__dict__.get("Subset")
    if subset is None:
        pytest.skip("no Subset field in this version of nas.spaces")
    space = Space(steps=subset(n=10, k=3), w=Choice([1, 2]))
    with pytest.raises(nas.ConfigError, match="independent-slots"):
        make_strategy("mcts", space, Problem.make({"acc": "max"}), 0)
    make_strategy("smbo", space, Problem.make({"acc": "max"}), 0)  # smbo samples and mutates: no slot-wise choices


def test_options_are_checked():
    problem = Problem.make({"acc": "max"})
    with pytest.raises(nas.ConfigError, match="exploration"):
        make_strategy("mcts", PLAIN, problem, 0, exploration=-1)
    with pytest.raises(nas.ConfigError, match="greed"):
        make_strategy("mcts", PLAIN, problem, 0, greed=2)
    with pytest.raises(nas.ConfigError, match="acquisition"):
        make_strategy("smbo", PLAIN, problem, 0, acquisition="pi")
