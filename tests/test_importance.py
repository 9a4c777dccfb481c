"""Which decisions matter (`nas.importance`): the ranking follows the effects, agrees with Optuna's fANOVA on
the decisions both see, pools repeated decisions, flags a metric the decisions do not explain, and the CLI."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.importance import decision_effects, decision_group, decision_importances
from nas.spaces import Choice, Integer, Repeat, Space

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = Space(a=Choice(["x", "y", "z"]), b=Integer(1, 8), c=Choice([1, 2, 3, 4]), d=Choice([1, 2]),
              blocks=Repeat("d", k=Choice([3, 5, 7]), noise=Choice(["p", "q"])))


def searched(workdir=None, noise_only: bool = False) -> nas.SearchResult:
    """150 random trials of a metric driven by a (strongly), b (linearly) and every block's k == 7 (weakly)."""
    rng = np.random.default_rng(0)

    def evaluate(arch):
        effect = ({"x": 0.0, "y": 1.0, "z": 2.0}[arch["a"]] + 0.2 * arch["b"]
                  + 0.3 * sum(blk["k"] == 7 for blk in arch["blocks"]))
        return {"acc": float(rng.normal()) if noise_only else effect + float(rng.normal(0, 0.05)), "other": 1.0}

    return nas.search(SPACE, evaluate, {"acc": "max"}, strategy="random", budget=150, seed=0, workdir=workdir)


def test_ranks_decisions_by_their_effect_and_pools_repeated_ones():
    result = searched()
    for scale in ("rank", "value"):
        imp = decision_importances(result, scale=scale)
        names = [d.decision for d in imp.decisions]
        assert names[:3] == ["a", "b", "blocks.*.k"], (scale, names)
        share = {d.decision: d.share for d in imp.decisions}
        assert share["a"] > 0.5 and share["b"] > 0.1
        assert all(share[n] < 0.02 for n in ("c", "d", "blocks.*.noise")), share
        assert imp.r2 > 0.85 and imp.trials == 150 and abs(sum(share.values()) - 1) < 1e-9
    by_path = [d.decision for d in decision_importances(result, by="path").decisions]
    assert {"blocks.0.k", "blocks.1.k", "blocks.0.noise", "blocks.1.noise"} <= set(by_path)
    assert decision_group("stages.1.blocks.12.kernel", "name") == "stages.*.blocks.*.kernel"


def test_effects_give_the_metric_per_value_of_a_decision():
    result = searched()
    a = decision_effects(result, "a")
    assert [e.value for e in a] == ["x", "y", "z"] and a[0].mean < a[1].mean < a[2].mean  # the effect built in
    assert sum(e.count for e in a) == 150 and all(e.low < e.mean < e.high for e in a)
    k = decision_effects(result, "blocks.*.k", "acc:max")  # pooled: a trial counts once per block
    blocks = sum(len(t.arch["blocks"]) for t in result.trials)
    assert [e.value for e in k] == [3, 5, 7] and sum(e.count for e in k) == blocks and k[2].mean > k[0].mean
    with pytest.raises(ConfigError, match="decision 'kernel': no evaluated trial"):
        decision_effects(result, "kernel")


def test_agrees_with_optunas_fanova_on_the_decisions_every_trial_has(tmp_path):
    import optuna

    from nas.to_optuna import to_optuna

    result = searched(tmp_path / "wd")
    to_optuna(tmp_path / "wd", tmp_path / "study.log")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")))
    study = optuna.load_study(study_name=None, storage=storage)
    fanova = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    ours = [d.decision for d in decision_importances(result).decisions]
    assert list(fanova)[:2] == ours[:2] == ["a", "b"]
    assert "blocks.1.k" not in fanova  # fANOVA drops what not every trial has; we keep it (pooled)


def test_a_metric_the_decisions_do_not_explain_is_flagged(caplog):
    with caplog.at_level(logging.WARNING, logger="nas.importance"):
        imp = decision_importances(searched(noise_only=True))
    assert imp.r2 < 0.1
    assert "explain little of acc" in caplog.text


def test_bad_input_is_named():
    result = searched()
    with pytest.raises(ConfigError, match="metric 'accuracy': no trial recorded it"):
        decision_importances(result, "accuracy")
    assert decision_importances(result, "acc:max").metric == "acc"  # a direction, as other commands take, is fine
    with pytest.raises(ConfigError, match="by: expected 'name' or 'path'"):
        decision_importances(result, by="field")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="folds: expected an integer >= 2"):
        decision_importances(result, folds=1)
    with pytest.raises(ConfigError, match="max_trials: expected an integer >= 10"):
        decision_importances(result, max_trials=5)
    subset = decision_importances(result, max_trials=60)  # a seeded subset: the dashboard's cap on long searches
    assert subset.trials == 60 and subset.decisions[0].decision == "a"
    few = nas.search(SPACE, lambda a: {"acc": 1.0}, {"acc": "max"}, strategy="random", budget=6, seed=0)
    with pytest.raises(ConfigError, match="need at least 10 evaluated trials with a finite value; this search has 6"):
        decision_importances(few)


def test_cli_prints_the_table_and_writes_the_plot_and_json(tmp_path):
    searched(tmp_path / "wd")
    out = CliRunner().invoke(app, ["importance", str(tmp_path / "wd"), "--plot", str(tmp_path / "imp.png"),
                                   "--effects", str(tmp_path / "effects.png"), "--json", str(tmp_path / "imp.json")])
    assert out.exit_code == 0, out.output
    assert "which decisions matter for acc: 150 trials" in out.output and "blocks.*.k" in out.output
    assert (tmp_path / "imp.png").read_bytes()[:4] == b"\x89PNG" == (tmp_path / "effects.png").read_bytes()[:4]
    data = json.loads((tmp_path / "imp.json").read_text())
    assert data["decisions"][0]["decision"] == "a" and data["scale"] == "rank"
    bad = CliRunner().invoke(app, ["importance", str(tmp_path / "wd"), "--metric", "loss"])
    assert bad.exit_code == 2 and "no trial recorded it" in bad.output
    assert "seeded subset" not in out.output  # 150 trials: all of them, under the default bound
    capped = CliRunner().invoke(app, ["importance", str(tmp_path / "wd"), "--max-trials", "60"])
    assert capped.exit_code == 0 and "which decisions matter for acc: 60 trials" in capped.output  # unbounded, it
    assert "fitted on a seeded subset of 60 evaluated trials" in capped.output  # took 310 s at 20,000 trials
