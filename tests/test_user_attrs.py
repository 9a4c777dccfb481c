"""`nas.set_user_attr` inside an evaluation and `Study.tell(user_attrs=)`: journaled with the trial, shown in the
table of trials, Optuna's export and the model card's data, on the in-process, process and simulated executors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.spaces import Choice, Space

SPACE = Space(a=Choice([0, 1, 2, 3]), b=Choice([0, 1, 2]))
OBJECTIVES = {"acc": "max"}


def evaluate(arch):
    nas.set_user_attr("checkpoint", f"/runs/{arch['a']}-{arch['b']}.pt")
    nas.set_user_attr("epochs", 3)
    nas.set_user_attr("epochs", 5)  # a later call replaces it
    if arch["a"] == 3:
        nas.set_user_attr("bad", {1, 2})  # a set is not JSON: this trial fails, saying why
    return {"acc": arch["a"] + 0.1 * arch["b"]}


@pytest.mark.parametrize("executor", [None, nas.SimulatedClockExecutor(workers=2),
                                      {"name": "processes", "workers": 2}])
def test_attributes_set_during_an_evaluation_are_journaled_with_its_trial(executor, tmp_path):
    kw = {"executor": executor} if executor is not None else {}
    result = nas.search(SPACE, evaluate, OBJECTIVES, strategy="random", budget=12, seed=0, workdir=tmp_path, **kw)
    for t in nas.load(tmp_path).trials:
        if t.arch["a"] == 3:
            assert t.status == "failed" and "user attribute 'bad' must be JSON data" in t.error
        else:
            assert t.user_attrs == {"checkpoint": f"/runs/{t.arch['a']}-{t.arch['b']}.pt", "epochs": 5}
    table = CliRunner().invoke(app, ["trials", str(tmp_path)], terminal_width=250)
    assert table.exit_code == 0 and "user attributes" in table.output and 'epochs=5' in table.output
    frame = result.to_dataframe()
    ok = frame[frame.status == "ok"]
    assert list(ok["user_attrs.epochs"]) == [5] * len(ok)
    assert all(c.endswith(".pt") for c in ok["user_attrs.checkpoint"])


def test_a_text_metric_fails_its_trial_pointing_at_set_user_attr():
    with pytest.raises(nas.NASError, match=r"metric 'ckpt' = '/x.pt': str is not a number .*; attach other data "
                                           r"with nas.set_user_attr\(key, value\)"):
        nas.search(SPACE, lambda a: {"acc": 1.0, "ckpt": "/x.pt"}, OBJECTIVES, strategy="random", budget=3, seed=0)


def test_outside_an_evaluation_it_does_nothing_and_bad_keys_are_refused():
    nas.set_user_attr("note", "nothing collects this")
    with pytest.raises(ConfigError, match="non-empty string"):
        nas.set_user_attr("", 1)
    with pytest.raises(ConfigError, match="'x' must be JSON data"):
        nas.set_user_attr("x", float("nan"))


def test_a_pruned_training_keeps_what_it_set_before_the_pruner_stopped_it():
    def training(arch):
        for epoch in range(6):
            nas.set_user_attr("last_epoch", epoch)
            nas.report_metrics({"acc": (arch["a"] + 0.1 * arch["b"]) * (epoch + 1) / 6})
        return {"acc": arch["a"] + 0.1 * arch["b"]}

    result = nas.search(SPACE, training, OBJECTIVES, strategy="random", budget=12, seed=1, pruner="median")
    pruned = [t for t in result.trials if t.pruned_after is not None]
    assert pruned and all(t.user_attrs == {"last_epoch": t.pruned_after - 1} for t in pruned)
    assert all(t.user_attrs == {"last_epoch": 5} for t in result.trials if t.pruned_after is None)


def test_a_study_takes_them_with_a_result_and_from_the_shell(tmp_path):
    with nas.Study(SPACE, OBJECTIVES, strategy="random", budget=4, seed=0, workdir=tmp_path) as study:
        first, second = study.ask(), study.ask()
        with pytest.raises(ConfigError, match="'when' must be JSON data"):
            study.tell(first, {"acc": 1.0}, user_attrs={"when": object()})
        assert study.used == 0  # refused before anything was journaled
        study.tell(first, {"acc": 1.0}, user_attrs={"checkpoint": "/a.pt"})
    out = CliRunner().invoke(app, ["tell", str(tmp_path), second.id, "--metric", "acc=2", "--attr", "checkpoint=/b.pt",
                                   "--attr", "epochs=7", "--attr", 'tags=["x", "y"]'])
    assert out.exit_code == 0, out.output
    trials = nas.load(tmp_path).trials
    assert [t.user_attrs for t in trials] == [{"checkpoint": "/a.pt"},
                                              {"checkpoint": "/b.pt", "epochs": 7, "tags": ["x", "y"]}]
    bad = CliRunner().invoke(app, ["tell", str(tmp_path), json.dumps({"a": 0, "b": 0}), "--metric", "acc=0",
                                   "--attr", "no-equals-sign"])
    assert bad.exit_code == 2 and "expected KEY=VALUE" in bad.output


def test_optuna_export_holds_them_as_user_attrs(tmp_path):
    import optuna

    nas.search(SPACE, evaluate, OBJECTIVES, strategy="random", budget=6, seed=2, workdir=tmp_path / "run")
    out = CliRunner().invoke(app, ["to-optuna", str(tmp_path / "run"), "--out", str(tmp_path / "o.log")])
    assert out.exit_code == 0, out.output
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "o.log")))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done and all(t.user_attrs["epochs"] == 5 and t.user_attrs["checkpoint"].endswith(".pt") for t in done)


def test_a_cheap_evaluators_attributes_join_the_trials_it_rejects_or_passes_on(tmp_path):
    """`set_user_attr` in a `nas.cheap` evaluator (which table priced it) is journaled with the trial, merged with
    the expensive stage's (whose value wins a clash); it was dropped."""
    space = Space(width=Choice([16, 32, 48, 64]), depth=Choice([2, 3, 4]))

    def count(a):
        nas.set_user_attr("lut", "cpu-b1")
        nas.set_user_attr("note", "cheap")
        return {"lat": a["width"] * a["depth"] / 10}

    def train(a):
        nas.set_user_attr("note", "trained")
        return {"accuracy": a["width"] / 64 + a["depth"] / 10}

    r = nas.search(space, [nas.cheap(count), train], {"accuracy": "max"}, constraints=["lat <= 15"], budget=6,
                   seed=0, strategy="random", workdir=tmp_path)
    statuses = {t.status for t in nas.load(tmp_path).trials}
    assert statuses == {"ok", "infeasible"}
    for t in nas.load(tmp_path).trials:
        assert t.user_attrs == ({"lut": "cpu-b1", "note": "trained"} if t.status == "ok" else
                                {"lut": "cpu-b1", "note": "cheap"}), (t.number, t.status)
    assert r.used == 6
