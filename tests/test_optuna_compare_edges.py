"""Edges of the analysis outputs: decision importances with conditional and repeated decisions, `to_optuna`'s user
attrs and output checks, and `compare_searches` / `nas compare` with a named baseline or a run with no evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.compare import Comparison, GroupResult, compare_searches
from nas.errors import ConfigError
from nas.importance import decision_importances
from nas.report import comparison_table
from nas.spaces import Choice, Conditional, Integer, Repeat, Space

pytestmark = pytest.mark.usefixtures("one_thread")

NESTED = Space(op=Choice(["conv", "pool"]), kernel=Conditional("op", "conv", Choice([3, 5])),
               width=Choice([8, 16, 32]), act=Choice(["relu", "gelu"]),
               depth=Choice([1, 2, 3, 4]), blocks=Repeat(count="depth", k=Choice([3, 5, 7])))
SHARE_OF_THE_FIELD = 0.9  # the one field the metric depends on gets at least this share
INERT = 0.03  # an inert child (present only for some values of that field) gets at most this share


def _noise(arch) -> float:
    return int(arch.id[:8], 16) % 1000 / 1000 * 0.3  # deterministic per architecture


def _shares(result, **kwargs) -> dict[str, float]:
    return {d.decision: d.share for d in decision_importances(result, "m", trees=100, repeats=2, **kwargs).decisions}


def test_an_inert_conditional_child_gets_none_of_its_parents_effect():
    """The metric depends only on `op`; `kernel` (present only when op == "conv") has no effect. Its "absent"
    column was a copy of `op`, so permuting `kernel` took op's effect: kernel 0.52, op 0.47."""
    result = nas.search(NESTED, lambda a: {"m": float(a["op"] == "conv") + _noise(a)}, {"m": "max"},
                        strategy="random", budget=120, seed=3)
    for scale in ("value", "rank"):
        share = _shares(result, scale=scale)
        assert share["op"] >= SHARE_OF_THE_FIELD and share["kernel"] <= INERT, (scale, share)


def test_the_count_of_a_repeat_keeps_its_effect_from_the_blocks():
    """The metric depends only on `depth`; the blocks' `k` has no effect. The blocks' "absent" columns, pooled by
    name, encoded depth exactly: blocks.*.k 0.74, depth 0.26."""
    result = nas.search(NESTED, lambda a: {"m": float(a["depth"]) + _noise(a)}, {"m": "max"},
                        strategy="random", budget=120, seed=3)
    for scale in ("value", "rank"):
        share = _shares(result, scale=scale)
        assert share["depth"] >= SHARE_OF_THE_FIELD and share["blocks.*.k"] <= INERT, (scale, share)
    by_path = _shares(result, scale="value", by="path")
    assert by_path["depth"] >= SHARE_OF_THE_FIELD
    assert all(by_path[f"blocks.{i}.k"] <= INERT for i in range(4)), by_path


def test_a_conditional_child_that_matters_keeps_its_share():
    result = nas.search(NESTED, lambda a: {"m": float(a.get("kernel") == 5) + _noise(a)}, {"m": "max"},
                        strategy="random", budget=120, seed=3)
    share = _shares(result, scale="value")
    assert share["kernel"] > 0.3 and share["kernel"] + share["op"] >= SHARE_OF_THE_FIELD, share


def _optuna_trials(workdir, out):
    import optuna

    from nas.to_optuna import to_optuna

    to_optuna(workdir, out)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out)))
    return optuna.load_study(study_name=None, storage=storage).trials


def test_to_optuna_keeps_metrics_named_as_its_own_user_attrs(tmp_path):
    """A metric "error" (top-1 error) was replaced by the trial's error message (None): lost from the study."""
    fixed = ("error", "worker", "arch_id", "nas_trial_number", "nas_status")

    def evaluate(arch):
        nas.set_user_attr("error", "a user note")
        return {"acc": arch["w"] / 40, **{name: 0.5 + i for i, name in enumerate(fixed)}}

    result = nas.search(Space(w=Choice([8, 16, 32])), evaluate, {"acc": "max"}, strategy="random", budget=3, seed=0,
                        workdir=tmp_path / "wd")
    for ours, theirs in zip(result.trials, _optuna_trials(tmp_path / "wd", tmp_path / "study.log"), strict=True):
        attrs = theirs.user_attrs
        assert {name: attrs[f"metric.{name}"] for name in fixed} == {name: ours.metrics[name] for name in fixed}
        assert attrs["acc"] == ours.metrics["acc"]
        assert (attrs["error"], attrs["worker"], attrs["arch_id"]) == (None, ours.worker, ours.arch_id)
        assert (attrs["nas_trial_number"], attrs["nas_status"]) == (ours.number, "ok")
        assert attrs["user.error"] == "a user note"


def test_to_optuna_names_an_empty_study_name_and_a_folder_as_out(tmp_path):
    from nas.to_optuna import to_optuna

    nas.search(Space(w=Choice([8, 16])), lambda a: {"acc": 1.0}, {"acc": "max"}, budget=2, workdir=tmp_path / "wd")
    with pytest.raises(ConfigError, match="study_name: expected a name, got ''"):
        to_optuna(tmp_path / "wd", tmp_path / "s.log", study_name="")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match="folder is a folder: give the path of a new file"):
        to_optuna(tmp_path / "wd", tmp_path / "folder")
    assert not (tmp_path / "s.log").exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("edges")
    space = Space(a=Integer(0, 31))
    return root, [nas.search(space, lambda a: {"acc": a["a"] / 31, "lat": 1.0 + a["a"]}, {"acc": "max"},
                             strategy=strategy, budget=6, seed=seed, workdir=root / f"{strategy}{seed}")
                  for strategy in ("random", "local") for seed in (0, 1)]


def _text(c: Comparison) -> str:
    console = Console(width=250, record=True)
    console.print(comparison_table(c))
    return console.export_text()


def test_an_unknown_baseline_is_named_with_the_groups(runs):
    """A baseline no group has was accepted: no improvement column filled, and the title said "(random)"."""
    root, results = runs
    with pytest.raises(ConfigError, match=r"baseline 'randm': no group of runs by strategy has that name "
                                          r"\(the groups: local, random\)"):
        compare_searches(results, baseline="randm")
    out = CliRunner().invoke(app, ["compare", str(root), "--baseline", "Random"])
    assert out.exit_code == 2 and "baseline 'Random'" in out.output and "local, random" in out.output
    local = compare_searches(results, baseline="local")
    assert local.baseline == "local" and "; against local" in _text(local) and "improvement over local" in _text(local)
    assert compare_searches(results).baseline == "random"  # the default, where there is a random group
    without = compare_searches([r for r in results if r.config["strategy"] == "local"])
    assert without.baseline is None and all(g.ri_pct is None for g in without.groups)
    text = _text(without)
    assert "no group is named 'random'" in text and "improvement over" not in text


def test_the_baseline_row_of_a_minimised_score_is_plus_zero(runs):
    _, results = runs
    c = compare_searches(results, metric="lat:min")
    base = next(g for g in c.groups if g.name == "random")
    assert base.ri_pct == 0.0 and not math.copysign(1.0, base.ri_pct) < 0
    assert "+0.00 %" in _text(c) and "-0.00 %" not in _text(c)


def test_a_run_with_no_evaluation_is_named(runs, tmp_path):
    """It gave "--at 0: ... spent 0 evaluations; give 1 to 0" though no --at was given."""
    root, results = runs
    with nas.Study(Space(a=Integer(0, 31)), {"acc": "max"}, strategy="random", budget=5, seed=1,
                   workdir=root / "new_study"):
        pass
    try:
        fresh = nas.load(root / "new_study")
        for at in (None, 3):
            with pytest.raises(ConfigError, match="new_study has no evaluations yet, so no score to compare"):
                compare_searches([*results, fresh], at=at)
        out = CliRunner().invoke(app, ["compare", str(root)])
        assert out.exit_code == 2 and "no evaluations yet" in out.output and "--at 0" not in out.output
    finally:
        import shutil

        shutil.rmtree(root / "new_study")


def test_a_group_with_no_feasible_trial_says_so():
    """It showed "nan (one run: no interval)"."""
    def group(name: str, scores: list[float]) -> GroupResult:
        finite = [s for s in scores if s == s]
        mean = float(np.mean(finite)) if finite else math.nan
        return GroupResult(name, [f"runs/{name}{i}" for i in range(len(scores))], scores, mean, math.nan, math.nan,
                           None, None, None, None, [])

    c = Comparison("best feasible acc (max)", "max", 6, "strategy", None, None,
                   [group("local", [0.5]), group("random", [math.nan, math.nan])])
    text = _text(c)
    assert "- (no run has a feasible trial)" in text and "2 (2 without a feasible trial)" in text
    assert "0.5 (one run: no interval)" in text and "nan" not in text
