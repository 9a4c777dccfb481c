"""The documentation as a contract (audit 34): verify's exit status, figures quoted from the recorded JSON, the
README's strategy comparison, EarlyStopRule's settings, the max_time message, nas.pareto's errors, and the public
API the pages show (nas.Pruner, your own Predictor, nas.spaces' exports)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import nas
from nas.errors import ConfigError, NASError

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"


def code_blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / page).read_text(), re.S | re.M)


# 1. nas verify / nas export --verify ------------------------------------------------------------------------------
@pytest.mark.usefixtures("one_thread")
def test_verify_and_export_verify_exit_1_when_a_pick_is_flagged(tmp_path):
    """Both printed the flag and exited 0, so `nas export ... --verify && deploy` deployed a failed verification."""
    from nas.cli import app
    from nas.measure import count_metric
    from nas.modelspec import record_model, save_trial_weights
    from nas.spaces.cell import NasBench201Space

    space = NasBench201Space(channels=4, cells_per_stage=1, stages=1)
    wd = tmp_path / "wd"

    def searched(workdir, share):  # share 0.5: the searched parameter count is half the network's
        def evaluate(arch):
            save_trial_weights(workdir, arch, space.build(arch))
            return {"params": space.count(arch)["params"] * share}
        record_model(workdir, space, metrics={"params": count_metric("params")})
        nas.search(space, evaluate, {"params": "min"}, constraints=["params <= 1e9"], budget=2, seed=0,
                   workdir=workdir)

    searched(tmp_path / "right", 1.0)
    runner = CliRunner()
    ok = runner.invoke(app, ["export", str(tmp_path / "right"), "--out", str(tmp_path / "ok"), "--no-onnx", "--top",
                             "1", "--verify"], env={"COLUMNS": "200"})
    assert ok.exit_code == 0 and "0 flagged" in ok.stdout, ok.output  # nothing broke: the exit status stays 0
    searched(wd, 0.5)  # re-counted, it breaks the bound below (and no longer matches its searched count)
    counted = 2 * nas.load(wd).best().metrics["params"]
    bound = f"params <= {counted * 0.75:g}"  # between the searched (half) and the re-counted value
    flagged = runner.invoke(app, ["export", str(wd), "--out", str(tmp_path / "m"), "--no-onnx", "--top", "1",
                                  "--constraint", bound, "--verify"], env={"COLUMNS": "200"})
    assert flagged.exit_code == 1, flagged.output
    assert "1 flagged" in flagged.stdout and "breaks params <=" in flagged.stdout.replace("\n", " ")
    assert "verify failed: 1 of 1 exported models flagged" in flagged.stderr
    assert (tmp_path / "m" / "verify.json").exists() and "models:" in flagged.stdout  # everything still written
    again = runner.invoke(app, ["verify", str(tmp_path / "m")], env={"COLUMNS": "200"})
    assert again.exit_code == 1 and not json.loads((tmp_path / "m" / "verify.json").read_text())["ok"]
    assert "verify failed" in again.stderr


def test_docs_export_says_verify_exits_1_when_flagged():
    page = " ".join((ROOT / "docs" / "export.md").read_text().split())
    assert "`nas verify` and `nas export --verify` exit with status 1 when any pick is flagged" in page


# 2, 3. figures quoted from the recorded JSON ----------------------------------------------------------------------
def _section(page: str, start: str, end: str) -> str:
    return (ROOT / page).read_text().split(start)[1].split(end)[0]


def test_predictors_md_user_space_table_and_gains_are_the_recorded_json():
    """The page had the session-12 figures the session-18 rerun (the JSON) replaced: 7 cells, a range and a date."""
    data = json.loads((RESULTS / "predictors_user_space.json").read_text())
    sec = _section("docs/predictors.md", "### Predictors on a plain user `Space`", "### Predictor-guided evolution")
    prose = " ".join(sec.split())
    rows = {"`rf-onehot-200`": "rf-onehot-200", "plain `default`": "plain/default", "plain `wl-gp`": "plain/wl-gp",
            "declared `default` (= built-in)": "declared/default", "declared `wl-gp` (= built-in)": "declared/wl-gp"}
    seen = 0
    for line in sec.splitlines():
        m = re.match(r"\| (.+?) \| (.+) \|$", line)
        if not m or m.group(1) not in rows:
            continue
        for table, cell in zip(("cora", "citeseer", "pubmed"), m.group(2).split(" | ")):
            doc = [float(v) for v in re.findall(r"\d\.\d+", cell)]
            recorded = [data["summary"][table][rows[m.group(1)]][n]["kendall_tau_mean"] for n in ("50", "100", "200")]
            assert doc == pytest.approx(recorded, abs=5e-4), (m.group(1), table)
            seen += 1
    assert seen == 15
    gains = [data["comparison"]["cora"]["plain/default"]["vs_forest"][n]["kendall_tau"]["mean"]
             for n in ("50", "100", "200")]
    quoted = re.search(r"plain τ ([+-]\d\.\d+) to ([+-]\d\.\d+)\s*\(cora\)", prose)
    assert [float(quoted.group(1)), float(quoted.group(2))] == pytest.approx([min(gains), max(gains)], abs=5e-4)
    dates = {v["date"][:10] for v in data["meta"]["per_dataset"].values()}
    (date,) = dates  # the page names the date of the recorded run
    assert date in sec and "2026-12-04" not in sec


def test_strategies_md_quotes_the_recorded_json():
    """Transfer @38, declared/undeclared default vs the forest, and the TPE reopen time were superseded figures."""
    page = " ".join((ROOT / "docs" / "strategies.md").read_text().split())
    multi = json.loads((RESULTS / "predictor_search.json").read_text())["multi"]
    gains = [w["methods"]["predictor-search+transfer"]["38"]["mean"] - w["methods"]["predictor-search"]["38"]["mean"]
             for v in multi.values() for w in v.values()]
    m = re.search(r"at 38 evaluations by ([+-]\d\.\d+) to ([+-]\d\.\d+)", page)
    assert [float(m.group(1)), float(m.group(2))] == pytest.approx([min(gains), max(gains)], abs=5e-4)
    comparison = json.loads((RESULTS / "predictors_user_space.json").read_text())["comparison"]

    def span(key: str) -> list[float]:
        taus = [comparison[t][key]["vs_forest"][n]["kendall_tau"]["mean"] for t in comparison
                for n in ("50", "100", "200")]
        return [min(taus), max(taus)]

    m = re.search(r"Kendall τ ([+-]\d\.\d+) to ([+-]\d\.\d+)\s+over a forest on one-hot at N = 50-200, where "
                  r"undeclared it is ([+-]\d\.\d+) to ([+-]\d\.\d+)", page)
    assert [float(g) for g in m.groups()] == pytest.approx(span("declared/default") + span("plain/default"), abs=5e-4)
    reopen = json.loads((RESULTS / "study_overhead.json").read_text())["fastest"]["tpe|1000"]["reopen"]
    m = re.search(r"a reopen costs\s+([\d.]+) s at 1,000 TPE trials", page)
    assert float(m.group(1)) == pytest.approx(reopen, abs=0.05)


# 4. the README's strategy comparison -------------------------------------------------------------------------------
def test_readme_compare_searches_example_compares_two_searches_and_its_comment_holds(tmp_path, monkeypatch):
    """nsga2 had budget 20 = its population: its 20 trials were random's, and both groups scored the same."""
    blocks = code_blocks("README.md")
    (compare,) = [b for b in blocks if "compare_searches(runs)" in b]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    first = blocks[0]
    exec(compile(first[:first.index("def callback")], "README.md block 1", "exec"), namespace)  # space, my_fn
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(compare, "README.md compare block", "exec"), namespace)
    runs = namespace["runs"]
    nsga2 = [r for r in runs if r.config["strategy"] == "nsga2"]
    random = [r for r in runs if r.config["strategy"] == "random"]
    assert all(n.used > 20 for n in nsga2)  # beyond nsga2's default population_size of 20
    assert all([t.arch_id for t in n.trials] != [t.arch_id for t in r.trials] for n, r in zip(nsga2, random))
    printed = out.getvalue().strip().splitlines()[0]
    comment = re.search(r"# best first: (\[.*?\])", compare).group(1)
    assert printed == comment
    assert namespace["c"].groups[0].name == "nsga2" and namespace["c"].groups[0].ri_pct > 0


# 6. EarlyStopRule ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, name", [({"z": math.nan}, "z"), ({"z": math.inf}, "z"), ({"z": "1"}, "z"),
                                            ({"direction": "up"}, "direction"), ({"min_points": "4"}, "min_points")])
def test_early_stop_rule_refuses_bad_settings_when_made(settings, name):
    """z=NaN never stopped anything; direction='up' failed only inside should_stop."""
    from nas.predictors.learning_curves import EarlyStopRule

    with pytest.raises(ConfigError, match=rf"^{name}: "):
        EarlyStopRule(target_epoch=50, **settings)


@pytest.mark.parametrize("incumbent", [math.nan, math.inf, "0.9", True])
def test_early_stop_rule_refuses_an_incumbent_that_is_not_a_finite_number(incumbent):
    from nas.predictors.learning_curves import EarlyStopRule

    epochs = np.arange(1, 11)
    acc = 0.9 - 0.5 * epochs ** -0.7
    rule = EarlyStopRule(target_epoch=50)
    with pytest.raises(ConfigError, match=r"^incumbent: expected a finite number or None"):
        rule.should_stop(epochs, acc, incumbent=incumbent)
    assert rule.should_stop(epochs, acc, incumbent=0.95) and not rule.should_stop(epochs, acc, incumbent=None)
    assert EarlyStopRule(target_epoch=50, z=0, min_points=3, direction="min").z == 0


# 7. max_time --------------------------------------------------------------------------------------------------------
def test_the_max_time_message_names_inf_as_no_limit():
    """It said 'a positive, finite number of seconds (None for no limit)' while inf is the documented no limit."""
    from nas.spaces import Integer, Space

    space = Space(x=Integer(0, 9))
    score = lambda a: {"acc": float(a["x"])}  # noqa: E731
    assert nas.search(space, score, {"acc": "max"}, budget=2, seed=0, max_time=math.inf).used == 2
    with pytest.raises(ConfigError, match=r"^max_time: expected a positive number of seconds \(inf or None for no "
                                          r"limit\), got -1$"):
        nas.search(space, score, {"acc": "max"}, budget=2, seed=0, max_time=-1)


# 8. nas.pareto's errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, name", [
    (lambda p: p.hypervolume([[1.0, 4.0], [2.0, 2.0]], [5.0, math.nan]), "reference"),
    (lambda p: p.hypervolume([[1.0, 4.0], [2.0, 2.0]], [5.0]), "reference"),
    (lambda p: p.hypervolume_contributions([[1.0, 2.0]], [[3.0]]), "reference"),
    (lambda p: p.pareto_mask([[1.0, math.nan]]), "points"),
    (lambda p: p.non_dominated_sort([1.0, 2.0]), "points"),
    (lambda p: p.dominates([1.0, 2.0], [1.0]), "a, b"),
    (lambda p: p.HypervolumeTracker([1.0, math.nan]), "reference"),
    (lambda p: p.HypervolumeTracker([3.0, 3.0]).add([1.0]), "point"),
    (lambda p: p.MonteCarloHypervolume([3.0, 3.0], lower=[4.0, 0.0]), "lower"),
])
def test_pareto_utilities_raise_config_errors_naming_the_argument(call, name):
    """They raised plain ValueError, which the documented `except nas.NASError` does not catch."""
    import nas.pareto as pareto

    with pytest.raises(ConfigError, match=rf"^{re.escape(name)}[:,]") as caught:
        call(pareto)
    assert isinstance(caught.value, NASError) and isinstance(caught.value, ValueError)  # old callers still catch it


# 9. the public API the pages show -----------------------------------------------------------------------------------
def test_nas_spaces_star_exports_leave_the_internal_helpers_out_but_they_still_import():
    import nas.spaces as spaces

    internal = {"FrozenDict", "Slot", "canonical_json", "path_str"}
    assert not internal & set(spaces.__all__)
    assert all(getattr(spaces, name) is not None for name in internal)  # `from nas.spaces import Slot` still works
    assert {"Space", "Choice", "Integer", "Subset", "Repeat", "Conditional", "CellGraph", "Architecture",
            "BUILTIN"} <= set(spaces.__all__)


def test_a_predictor_class_registered_by_itself_is_made_restored_and_searched_with(monkeypatch):
    """PREDICTORS took only "module:Class" strings, so a predictor defined in a script or notebook could not join."""
    from nas.objectives import Problem
    from nas.predictors import PREDICTORS, Predictor, make_predictor, predictor_class, predictor_from_state
    from nas.spaces import Choice, Space
    from nas.strategies import make_strategy

    class Mean(Predictor):
        """Predicts the training mean (a stand-in for a user's model)."""

        name = "mean-test"

        def __init__(self, space, seed=0, shift=0.0):
            super().__init__(space, seed)
            self.shift = shift

        def _fit(self, archs, y):
            self.mean = float(np.mean(y)) + self.shift

        def _predict(self, archs):
            return np.full(len(archs), self.mean), np.ones(len(archs))

    monkeypatch.setitem(PREDICTORS, "mean-test", Mean)
    space = Space(a=Choice([0, 1, 2]), b=Choice([0, 1, 2]))
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(6)]
    p = make_predictor("mean-test", space, 0, shift=1.0).fit(archs, np.arange(6.0))
    assert predictor_class("mean-test") is Mean and p.predict(archs[:2])[0].tolist() == [3.5, 3.5]
    again = predictor_from_state(space, json.loads(json.dumps(p.state_dict())))
    assert isinstance(again, Mean) and again.shift == 1.0
    strategy = make_strategy("predictor-search", space, Problem.make({"s": "max"}), seed=0, population_size=4,
                             generations=1, predictor="mean-test")
    assert nas.search(space, lambda a: {"s": float(a["a"] + a["b"])}, {"s": "max"}, strategy=strategy, budget=6,
                      seed=0).used == 6


def test_the_pages_show_pruner_and_your_own_predictor_in_code():
    readme = "\n".join(code_blocks("README.md"))
    assert re.search(r"nas\.Pruner\(optuna\.pruners\.\w+\(.*\), metric=", readme)
    predictors = "\n".join(code_blocks("docs/predictors.md"))
    assert re.search(r"class \w+\(Predictor\):", predictors) and re.search(r"PREDICTORS\[\"\w+\"\] = ", predictors)
    assert "RankTarget()" in predictors


def test_the_readme_says_nas_bench_graph_neighbours_are_up_to_38():
    text = " ".join((ROOT / "README.md").read_text().split())
    assert "`bench.space.neighbours(arch)`: up to 38 architectures" in text


# minor: one collapse warning per candidate and call ------------------------------------------------------------------
def test_choose_logs_a_collapsed_gp_once_per_candidate_not_once_per_fold(caplog):
    """choose builds a predictor per fold and one on all results: a collapsing GP warned about 6 times per call."""
    from nas.predictors import make_predictor
    from nas.predictors.selection import choose
    from nas.spaces import Choice, Space

    space = Space({f"x{i}": Choice(list(range(4)), ordered=False) for i in range(5)})
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(10)]
    y = rng.normal(size=10)  # unrelated to the architectures: the GP collapses
    make = lambda name: make_predictor(name, space, 0, **({"restarts": 0} if name == "gp" else {}))  # noqa: E731
    with caplog.at_level(logging.DEBUG, logger="nas.predictors"):
        choose(make, ["gp"], archs, y, fallback=["rf"])
    said = [r for r in caplog.records if "collapsed" in r.getMessage()]
    assert len(said) > 1  # the prior's fit and its folds' all collapse ...
    assert [r.levelno for r in said].count(logging.WARNING) == 1  # ... and the call says so once
