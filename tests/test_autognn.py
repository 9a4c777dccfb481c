"""Auto-GNN (issue 25 part 3): the conservative controller `autognn`, constrained parameter sharing
(`SharedWeightsEvaluator`) and a reduced run of experiments/autognn.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.datasets import KarateClub

import nas
from nas.errors import ConfigError
from nas.objectives import Problem
from nas.spaces import Choice, Conditional, Integer, Repeat, Space
from nas.spaces.gnn import GNNSpace
from nas.spaces.gnn_sharing import GNN_ACTION_CLASSES, SharedWeightsEvaluator
from nas.strategies import STRATEGIES, TrialResult, make_strategy
from nas.strategies.autognn import ConservativeController, action_classes, changed_classes

ROOT = Path(__file__).resolve().parents[1]


def nested() -> Space:
    """Repeats with a variable count and a conditional field: slots come and go between architectures."""
    return Space(depth=Choice([1, 2, 3]),
                 blocks=Repeat("depth", op=Choice(["conv", "pool", "id"]),
                               k=Conditional("op", ["conv"], Choice([3, 5, 7])), w=Integer(1, 4)),
                 act=Choice(["relu", "gelu", "tanh"]))


def score(arch) -> dict[str, float]:
    """A synthetic table with one optimum: depth 3, every block conv/k=7/w=4, act gelu (score 3 * 17 + 2)."""
    s = sum(b["k"] + 2 * b["w"] + 2 if b["op"] == "conv" else b["w"] if b["op"] == "pool" else 0
            for b in arch["blocks"])
    return {"score": float(s + {"relu": 0, "gelu": 2, "tanh": 1}[arch["act"]])}


@pytest.fixture
def karate():
    data = KarateClub()[0]
    data.val_mask = data.test_mask = ~data.train_mask
    return data


def test_registered_and_groups_slots_into_action_classes():
    assert STRATEGIES["autognn"] is ConservativeController
    space = nested()
    per_slot = action_classes(space)
    assert list(per_slot) == [s.name for s in space.slots()]
    by_name = action_classes(space, "name")
    assert set(by_name) == {"depth", "op", "k", "w", "act"} and len(by_name["op"]) == 3
    named = action_classes(space, {"shape": ["k", "w"], "first": ["blocks[0].op"]})
    assert [space.slots()[i].name for i in named["first"]] == ["blocks[0].op"]
    assert len(named["shape"]) == 6 and "blocks[1].op" in named  # unnamed slots are their own class
    gnn = action_classes(GNNSpace(8, 3), GNN_ACTION_CLASSES)
    assert list(gnn) == list(GNN_ACTION_CLASSES) and len(gnn["aggregation"]) == 3  # 2 hidden layers + output


@pytest.mark.parametrize("classes, message", [
    ({"a": ["k"], "b": ["k"]}, "'k' is in both 'a' and 'b'"),
    ({"a": ["kernel"]}, "'kernel', which is neither a field nor a slot"),
    ({"a": "k"}, "classes['a'] must be a list"),
    ("fields", "classes must be None, 'name' or a mapping"),
])
def test_bad_classes_name_the_problem(classes, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_strategy("autognn", nested(), Problem.make({"score": "max"}), 0, classes=classes)


@pytest.mark.parametrize("space, classes", [(nested(), None), (nested(), "name"),
                                            (GNNSpace(8, 3), GNN_ACTION_CLASSES),
                                            # wide integers: a kept class keeps its value, not only its bin
                                            (Space(n=Integer(0, 10**9), w=Integer(1, 100), act=Choice(["a", "b"])),
                                             None)])
def test_every_proposal_after_the_first_differs_from_the_best_in_at_most_one_class(space, classes, one_thread):
    strat = make_strategy("autognn", space, Problem.make({"score": "max"}), 3, classes=classes, batch_size=4)
    rng = np.random.default_rng(0)
    best, best_score, changed = None, -np.inf, []
    for _ in range(80):
        escapes = strat.escapes
        arch = strat.ask(1)[0]
        if best is not None and strat.escapes == escapes:  # an escape is a full sample (a spent neighbourhood)
            changed.append(changed_classes(space, strat.classes, arch, best))
        s = score(arch)["score"] if "blocks" in arch else float(rng.random())  # GNNSpace: a random table
        strat.tell(arch, TrialResult({"score": s}))
        if s > best_score:
            best, best_score = arch, s
    assert all(len(c) <= 1 for c in changed)
    assert sum(len(c) == 1 for c in changed) >= 40  # nearly all change something
    assert strat.updates > 0
    assert strat.escapes < 40  # full samples only when 21 draws in a row repeat seen architectures


def test_state_round_trips_through_json_and_continues_identically():
    space, problem = nested(), Problem.make({"score": "max"})
    a = make_strategy("autognn", space, problem, 5, classes="name", batch_size=3)
    for _ in range(14):
        for arch in a.ask(1):
            a.tell(arch, TrialResult(score(arch)))
    b = make_strategy("autognn", space, problem, 99, classes="name", batch_size=3)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.best == a.best and b.class_probabilities() == a.class_probabilities()
    for _ in range(12):
        xa, xb = a.ask(1), b.ask(1)
        assert [x.id for x in xa] == [x.id for x in xb]
        for x in xa:
            a.tell(x, TrialResult(score(x)))
            b.tell(x, TrialResult(score(x)))


def test_finds_the_optimum_of_a_small_synthetic_table(one_thread):
    space = Space(depth=Choice([1, 2]), blocks=Repeat("depth", op=Choice(["conv", "pool", "id"]),
                                                      k=Conditional("op", ["conv"], Choice([3, 5, 7])), w=Integer(1, 4)),
                  act=Choice(["relu", "gelu", "tanh"]))
    table = {a.id: score(a) for a in space}
    optimum = max(v["score"] for v in table.values())

    def found(strategy: str, seed: int) -> bool:
        r = nas.search(space, lambda a: table[nas.spaces.Architecture(a).id], {"score": "max"}, strategy=strategy,
                       budget=60, seed=seed)
        return r.best().metrics["score"] == optimum

    assert len(table) == 1260
    assert all(found("autognn", seed) for seed in range(3))
    assert sum(found("random", seed) for seed in range(3)) <= 1  # the same budget is 5 % of the table


def test_a_spent_neighbourhood_falls_back_to_full_samples_and_exhausts_a_tiny_space():
    space = Space(a=Choice([1, 2, 3]), b=Choice(["x", "y"]))
    result = nas.search(space, lambda a: {"v": float(a["a"])}, {"v": "max"}, strategy="autognn", budget=50, seed=0)
    assert len(result.trials) == 6 and result.stop_reason == "exhausted"


# ---------------------------------------------------------------------------------------------- sharing
GCN = {"layers": 1, "hidden_layers": [{"op": "gcn", "hidden": 16, "activation": "relu", "residual": False}],
       "output": {"op": "gcn"}}


def test_children_inherit_only_layers_whose_key_matches(karate, one_thread):
    space = GNNSpace(karate.num_features, 4, hidden=(16, 32))
    ev = SharedWeightsEvaluator(space, karate, epochs=3, scratch_epochs=7, patience=None)
    first = ev(GCN)
    assert first["inherited_layers"] == 0 and first["epochs"] == 7  # nothing to inherit: scratch_epochs
    assert first["inherited.hidden_layers[0]"] == 0.0 and first["inherited.output"] == 0.0
    other_head = {**GCN, "output": {"op": "sage"}}
    second = ev(other_head)
    assert second["epochs"] == 3 and second["inherited_layers"] == 1  # the hidden GCN layer, not the SAGE head
    assert second["inherited.hidden_layers[0]"] == 1.0 and second["inherited.output"] == 0.0
    for change in ({"activation": "elu"}, {"hidden": 32}, {"residual": True}):  # activation, shapes, residual
        child = {**GCN, "hidden_layers": [{**GCN["hidden_layers"][0], **change}]}
        m = ev(child)
        assert m["inherited.hidden_layers[0]"] == 0.0 and m["inherited.output"] == float(change != {"hidden": 32}), change
    assert ev(GCN, budget=2)["epochs"] == 2  # budget sets an inherited child's epochs
    with pytest.raises(ConfigError, match="keep: expected 'best' or 'latest'"):
        SharedWeightsEvaluator(space, karate, keep="first")


def test_inherited_weights_are_the_stored_trained_ones(karate, one_thread):
    space = GNNSpace(karate.num_features, 4, hidden=(16,))
    ev = SharedWeightsEvaluator(space, karate, epochs=1, scratch_epochs=20, patience=None, keep="latest")
    ev(GCN)
    key = next(k for k in ev.store if k[0] == "hidden_layers[0]")
    trained = {k: v.clone() for k, v in ev.store[key][1].items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ev.seed)
        init = space.build(GCN).layers[0].state_dict()
    assert not all(torch.equal(init[k], trained[k]) for k in trained)  # 20 epochs moved them
    ev.lr, ev.weight_decay = 0.0, 0.0  # a child that cannot change its weights
    assert ev({**GCN, "output": {"op": "mlp"}})["inherited_layers"] == 1
    assert all(torch.equal(ev.store[key][1][k], trained[k]) for k in trained)  # it started from the stored ones


def test_a_child_that_learned_nothing_shares_nothing(karate, one_thread):
    """A training that does not beat a constant prediction is never stored: its children would inherit a failure."""
    space = GNNSpace(karate.num_features, 4, hidden=(16,))
    labels = karate.y[karate.val_mask]
    majority = float(torch.bincount(labels).max()) / len(labels)
    ev = SharedWeightsEvaluator(space, karate, epochs=2, scratch_epochs=30, patience=None)
    assert ev.min_valid_acc == pytest.approx(majority)  # the default bar: the majority class's share
    first = ev(GCN)
    assert first["valid_acc"] > majority and len(ev.store) == 2  # it learned: both layers stored
    strict = SharedWeightsEvaluator(space, karate, epochs=2, scratch_epochs=30, patience=None, min_valid_acc=1.0)
    assert strict(GCN)["valid_acc"] < 1.0 and not strict.store  # below the bar: nothing stored
    child = strict({**GCN, "output": {"op": "mlp"}})
    assert child["inherited_layers"] == 0 and child["epochs"] == 30  # so the child trains from scratch
    with pytest.raises(ConfigError, match="min_valid_acc"):
        SharedWeightsEvaluator(space, karate, min_valid_acc=1.5)


# ---------------------------------------------------------------------------------------------- experiment
def test_reduced_experiment_runs_resumes_and_reports(karate, tmp_path, one_thread):
    sys.path.insert(0, str(ROOT / "experiments"))
    import autognn

    settings = autognn.Settings(budget=3, epochs=4, share_epochs=2)
    out = autognn.run_dataset("karate", karate, [0, 1], settings, tmp_path, log=lambda m: None)
    s = out["summary"]
    assert set(s["methods"]) == set(autognn.METHODS)
    for runs in out["runs"].values():
        assert [r["seed"] for r in runs] == [0, 1] and all(len(r["trials"]) == 3 for r in runs)
    assert {m.split(" pick")[0] for m in (x["method"] for x in s["protocol"]["methods"])} >= {"random", "gcn"}
    assert "autognn - random" in s["paired"] and "| autognn pick |" in s["protocol_table"]
    lines = {p.name: p.read_text() for p in tmp_path.iterdir()}
    again = autognn.run_dataset("karate", karate, [0, 1], settings, tmp_path, log=lambda m: None)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == lines  # everything came from the cache
    assert again["summary"]["methods"] == s["methods"]


def test_reduced_experiment_on_the_wider_space_reports_the_tuned_gcn_control(karate, tmp_path, one_thread):
    sys.path.insert(0, str(ROOT / "experiments"))
    import autognn

    assert "space" not in json.loads(autognn.Settings().key())  # caches of the default space stay valid
    assert "patience" not in json.loads(autognn.Settings().key())  # and those of the default patience
    longer = autognn.Settings(patience=100).key()
    assert autognn.recipe(longer) != autognn.recipe(autognn.Settings().key())  # other trainings: never replayed
    settings = autognn.Settings(budget=3, epochs=4, share_epochs=2, space="appnp-dropout")
    assert json.loads(settings.key())["space_options"]["dropouts"] == [0.5, 0.6, 0.7, 0.8]
    out = autognn.run_dataset("karate", karate, [0, 1], settings, tmp_path, methods=["autognn", "random"],
                              log=lambda m: None)
    assert out["space"] == "appnp-dropout" and set(out["runs"]) == {"autognn", "random"}
    for tuned, gcn in zip(out["gcn_tuned"], out["gcn"]):
        assert set(tuned["tried"]) == {"0.5", "0.6", "0.7", "0.8"}
        assert tuned["tried"]["0.5"]["test_acc"] == gcn["test_acc"]  # Kipf's GCN is the 0.5 row, trained once
        best = max(tuned["tried"].values(), key=lambda t: t["valid_acc"])["valid_acc"]
        assert tuned["valid_acc"] == best  # picked on validation
    assert all("dropout" in t["arch"] for r in out["runs"]["random"] for t in r["trials"])
    s = out["summary"]
    assert s["gcn_tuned_test_acc"]["n"] == 2 and s["methods"]["autognn"]["pick_minus_gcn_tuned"] is not None
    assert "gcn, dropout tuned" in {m["method"] for m in s["protocol"]["methods"]}


def test_reselection_retrains_the_top_trials_under_more_seeds_and_a_longer_search_replays_a_shorter(
        karate, tmp_path, one_thread):
    sys.path.insert(0, str(ROOT / "experiments"))
    import autognn

    short = autognn.Settings(budget=3, epochs=4, share_epochs=2, space="appnp-dropout")
    first = autognn.run_dataset("karate", karate, [0], short, tmp_path, methods=["rl"], log=lambda m: None)
    assert "reselect" not in json.loads(short.key())  # runs cached before reselection stay valid
    settings = autognn.Settings(budget=5, epochs=4, share_epochs=2, space="appnp-dropout", reselect=2, repeats=2)
    out = autognn.run_dataset("karate", karate, [0, 1], settings, tmp_path, methods=["rl", "random"], log=lambda m: None)
    rl = out["runs"]["rl"][0]
    assert [t["id"] for t in rl["trials"][:3]] == [t["id"] for t in first["runs"]["rl"][0]["trials"]]
    assert rl["new_full_trainings"] == len({t["id"] for t in rl["trials"][3:]} - {t["id"] for t in rl["trials"][:3]})
    for run in out["runs"]["rl"] + out["runs"]["random"]:
        cands = run["reselection"]
        assert len(cands) == 2 and cands[0]["id"] == run["search_pick"]["id"]  # the top trial by validation
        assert all(len(c["valid_acc_seeds"]) == 3 and len(c["test_acc_seeds"]) == 3 for c in cands)
        best = max(cands, key=lambda c: np.mean(c["valid_acc_seeds"]))
        assert run["pick"]["id"] == best["id"] and run["pick"]["test_acc_seeds"] == best["test_acc_seeds"]
        by_valid = sorted(run["trials"], key=lambda t: -t["valid_acc"])
        assert cands[1]["valid_acc_seeds"][0] == by_valid[1]["valid_acc"]  # seed 0 is the search's own training
    gcn = out["gcn"][0]
    assert len(gcn["test_acc_seeds"]) == 3 and gcn["test_acc_seeds"][0] == gcn["test_acc"]
    assert len(set(gcn["test_acc_seeds"])) > 1  # the extra trainings used other seeds
    s, runs = out["summary"], out["runs"]["rl"]
    assert s["gcn_test_acc"]["mean"] == pytest.approx(np.mean([np.mean(g["test_acc_seeds"]) for g in out["gcn"]]))
    assert s["methods"]["rl"]["pick_test_acc"]["mean"] == pytest.approx(np.mean([r["pick"]["test_acc_seeds"] for r in runs]))
    gain = np.mean([r["pick"]["test_acc_seeds"] for r in runs]) - np.mean([r["reselection"][0]["test_acc_seeds"] for r in runs])
    assert s["methods"]["rl"]["reselection_gain"]["mean"] == pytest.approx(gain)  # against the search's own pick
    files = {p.name: p.read_text() for p in tmp_path.iterdir()}
    autognn.run_dataset("karate", karate, [0, 1], settings, tmp_path, methods=["rl", "random"], log=lambda m: None)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == files  # the extra seeds' trainings are cached


def test_a_killed_run_resumes_without_training_anything_twice(karate, tmp_path, one_thread, monkeypatch):
    """Each training is kept as it finishes (`.progress.jsonl`), so a run killed mid-search retrains nothing on
    resume and ends with the same records as a run never killed."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import autognn

    calls: list[tuple[int, str]] = []
    train = autognn.NodeClassificationEvaluator.__call__

    def counted(self, arch, *args, **kwargs):
        if len(calls) == kill_after:
            raise KeyboardInterrupt
        calls.append((self.seed, self.space.validate(arch).id))
        return train(self, arch, *args, **kwargs)

    monkeypatch.setattr(autognn.NodeClassificationEvaluator, "__call__", counted)
    settings = autognn.Settings(budget=4, epochs=4, share_epochs=2, space="appnp-dropout", reselect=2, repeats=1)
    run = dict(data=karate, seeds=[0], settings=settings, methods=["rl", "random"], log=lambda m: None)
    kill_after = 10**9
    whole = autognn.run_dataset("karate", cache_dir=tmp_path / "whole", **run)
    uninterrupted = len(calls)
    calls.clear()
    kill_after = 9  # past the two GCN controls (five trainings), inside rl's search
    with pytest.raises(KeyboardInterrupt):
        autognn.run_dataset("karate", cache_dir=tmp_path / "killed", **run)
    kill_after = 10**9
    resumed = autognn.run_dataset("karate", cache_dir=tmp_path / "killed", **run)
    assert len(calls) == len(set(calls)) == uninterrupted  # nothing trained twice, nothing skipped

    def same(run):  # what the run found; its seconds differ between processes
        return ([(t["id"], t["valid_acc"], t["test_acc"]) for t in run["trials"]],
                run["pick"]["id"], run["pick"]["test_acc_seeds"], run["new_full_trainings"])

    for method in ("rl", "random"):
        assert same(resumed["runs"][method][0]) == same(whole["runs"][method][0])


def test_on_a_listed_space_each_proposal_is_a_recorded_one_class_step_from_the_best(one_thread):
    """On a sampled table the conservative step draws among recorded architectures one class away from the
    best (no snapping, which would break the one-class rule); a full draw only when none is left."""
    from nas.tabular import TableSpace

    base = Space(a=Choice([0, 1, 2, 3]), b=Choice([0, 1, 2, 3]), c=Choice([0, 1, 2, 3]))
    table = TableSpace(base, [base.sample(np.random.default_rng([5, i])) for i in range(60)])
    ids = {a.id for a in table}
    strat = make_strategy("autognn", table, Problem.make({"score": "max"}), 0, batch_size=4)
    best, best_score, steps = None, -np.inf, []
    for _ in range(len(ids)):
        escapes = strat.escapes
        arch = strat.ask(1)[0]
        assert arch.id in ids
        if best is not None and strat.escapes == escapes:
            steps.append(changed_classes(table, strat.classes, arch, best))
        s = float(arch["a"] + 2 * arch["b"] - arch["c"])
        strat.tell(arch, TrialResult({"score": s}))
        if s > best_score:
            best, best_score = arch, s
    assert len(strat.seen) == len(ids)  # every recorded architecture once, none twice
    assert all(len(c) == 1 for c in steps) and len(steps) >= 10


def test_known_designs_script_trains_each_once_and_picks_on_validation(karate, tmp_path, one_thread):
    sys.path.insert(0, str(ROOT / "experiments"))
    import gnn_known_archs as g

    recipes = {"search": {**g.RECIPES["search"], "epochs": 5}, "lr0.005": {**g.RECIPES["lr0.005"], "epochs": 5}}
    cache = tmp_path / "cache.jsonl"
    g.train_all("karate", karate, [0, 1], cache, recipes=recipes, log=lambda m: None)
    records = g.read_cache(cache)
    assert len(records) == len(g.ARCHS) * 2 * 2
    g.train_all("karate", karate, [0, 1], cache, recipes=recipes, log=lambda m: None)
    assert len(g.read_cache(cache)) == len(records)  # resumed: nothing trained twice
    out = g.summarize(records, [0, 1])["karate"]
    gcn = next(r for r in out["rows"] if r["arch"] == "gcn" and r["recipe"] == "search")
    assert gcn["test_minus_gcn"]["mean"] == 0.0
    assert set(out["validation_picks"]) == set(recipes)
    for recipe, picks in out["validation_picks"].items():
        for p in picks["per_seed"]:
            mine = [r for r in records if r["recipe"] == recipe and r["seed"] == p["seed"]]
            best = max(mine, key=lambda r: (r["valid_acc"], -r["valid_loss"]))
            assert p["arch"] == best["arch"]  # picked on validation only
            assert p["best_test_acc"] >= p["test_acc"]


def test_the_patience_setting_reaches_every_training(karate, tmp_path, one_thread):
    sys.path.insert(0, str(ROOT / "experiments"))
    import autognn

    first = {}
    for patience in (2, 20):  # the first proposal does not depend on results: the same architecture, trained twice
        settings = autognn.Settings(budget=2, epochs=60, share_epochs=2, patience=patience)
        out = autognn.run_dataset("karate", karate, [0], settings, tmp_path / str(patience),
                                  methods=["rl", "autognn+sharing"], log=lambda m: None)
        first[patience] = {m: runs[0]["trials"][0] for m, runs in out["runs"].items()}
    for method in ("rl", "autognn+sharing"):  # full trainings and the sharing search's from-scratch ones
        assert first[2][method]["id"] == first[20][method]["id"]
        assert first[2][method]["epochs"] < first[20][method]["epochs"]
