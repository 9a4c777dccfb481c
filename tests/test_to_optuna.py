"""`nas.to_optuna`: a real search's journal becomes an Optuna journal study with the same trials, states,
values, Pareto front (feasible front under constraints) and flattened architecture params."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import TrialState

import nas
from nas.errors import ConfigError
from nas.spaces import Choice, Repeat, Space
from nas.to_optuna import ToOptunaReport, to_optuna

BROKEN = {"depth": 1, "blocks": [{"k": 3}], "w": 8}  # evaluate raises for this one (enqueued, so always tried)


def space() -> Space:
    return Space(depth=Choice([1, 2, 3]), blocks=Repeat(count="depth", k=Choice([3, 5])), w=Choice([8, 16, 32]))


def acc(arch) -> float:
    return float(sum(b["k"] for b in arch["blocks"]) + arch["w"] / 8)


def lat(arch) -> float:
    return float(arch["depth"] + sum(b["k"] for b in arch["blocks"]) / 2 + arch["w"] / 16)


def evaluate(arch):
    if arch["depth"] == 1 and arch["blocks"][0]["k"] == 3 and arch["w"] == 8:  # BROKEN
        raise RuntimeError("out of memory (on purpose)")
    return {"acc": acc(arch), "lat": lat(arch), "params_k": float(arch["w"] * arch["depth"])}


def flat(arch) -> dict:
    out = {"depth": arch["depth"], "w": arch["w"]}
    out.update({f"blocks.{i}.k": b["k"] for i, b in enumerate(arch["blocks"])})
    return out


def load(path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


def snapshot(workdir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, nas.SearchResult]:
    workdir = tmp_path_factory.mktemp("runs") / "toy-search"
    nas.search(space(), evaluate, objectives={"acc": "max", "lat": "min"}, strategy="random", budget=20, seed=0,
               workdir=workdir, enqueue=[BROKEN])
    return workdir, nas.SearchResult.load(workdir)


def test_study_holds_every_trial_with_its_state_values_attrs_and_times(searched, tmp_path):
    workdir, result = searched
    before = snapshot(workdir)
    out = tmp_path / "optuna.log"
    report = to_optuna(workdir, out)

    assert snapshot(workdir) == before  # the journal (and everything else there) byte-for-byte unchanged
    assert isinstance(report, ToOptunaReport)
    assert report.study_name == "toy-search" and report.out == out  # default name: the workdir's folder
    study = load(out, "toy-search")
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert study.metric_names == ["acc", "lat"]
    assert study.user_attrs["strategy"] == result.config["strategy"] == "random"
    assert study.user_attrs["seed"] == 0 and study.user_attrs["budget"] == 20
    assert study.user_attrs["workdir"] == str(workdir.resolve())

    trials = study.get_trials()
    assert len(trials) == len(result.trials) == report.trials == 20
    failed = [t for t in result.trials if t.status == "failed"]
    assert len(failed) == 1 and failed[0].arch == BROKEN
    assert (report.complete, report.fail, report.pruned) == (19, 1, 0)
    for ours, theirs in zip(result.trials, trials):
        assert theirs.user_attrs["nas_trial_number"] == ours.number == theirs.number
        assert theirs.user_attrs["arch_id"] == ours.arch_id
        assert theirs.user_attrs["worker"] == ours.worker
        assert theirs.user_attrs["error"] == ours.error
        assert {k: theirs.user_attrs[k] for k in ours.metrics} == ours.metrics  # non-objective ones too
        assert theirs.params == flat(ours.arch)
        assert theirs.datetime_start.timestamp() == pytest.approx(ours.started, abs=1e-5)
        assert theirs.datetime_complete.timestamp() == pytest.approx(ours.finished, abs=1e-5)
        assert "constraints" not in theirs.system_attrs and not theirs.constraints  # the search has none
        if ours.status == "ok":
            assert theirs.state == TrialState.COMPLETE
            assert theirs.values == [ours.metrics["acc"], ours.metrics["lat"]]
            assert "params_k" in theirs.user_attrs
        else:
            assert theirs.state == TrialState.FAIL and theirs.values is None
            assert "out of memory" in theirs.user_attrs["error"]

    # Optuna's Pareto front is ours
    assert {t.user_attrs["nas_trial_number"] for t in study.best_trials} == {t.number for t in result.pareto_front()}


def test_params_share_one_distribution_per_path_over_every_value_seen(searched, tmp_path):
    workdir, result = searched
    to_optuna(workdir, tmp_path / "o.log", study_name="named")
    trials = load(tmp_path / "o.log", "named").get_trials()
    seen: dict[str, set] = {}
    for t in result.trials:
        for path, value in flat(t.arch).items():
            seen.setdefault(path, set()).add(value)
    assert "blocks.2.k" in seen and seen["w"] == {8, 16, 32}
    for t in trials:
        for path, dist in t.distributions.items():
            assert isinstance(dist, optuna.distributions.CategoricalDistribution)
            assert dist.choices == tuple(sorted(seen[path]))  # the same axis in every trial, numbers in order
    assert trials[0].distributions["w"].choices == (8, 16, 32)


def test_out_that_exists_is_refused_and_left_alone(searched, tmp_path):
    workdir, _ = searched
    out = tmp_path / "study.log"
    to_optuna(workdir, out)
    written = out.read_bytes()
    with pytest.raises(ConfigError, match=r"study\.log already exists.*remove it or choose another file"):
        to_optuna(workdir, out, study_name="second")
    assert out.read_bytes() == written
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        to_optuna(workdir, other)
    assert other.read_text() == "mine"


def test_constrained_search_gives_optuna_our_feasible_front_and_pruned_rejections(tmp_path):
    workdir = tmp_path / "constrained"
    cheap = nas.cheap(lambda a: {"params_k": float(a["w"] * a["depth"])})
    expensive = lambda a: {"acc": acc(a), "lat": lat(a)}  # noqa: E731
    result = nas.search(space(), [cheap, expensive], objectives={"acc": "max", "lat": "min"},
                        constraints=["params_k <= 48", "lat <= 6"], strategy="random", budget=20, seed=3,
                        workdir=workdir)
    statuses = [t.status for t in result.trials]
    violating = [t for t in result.trials if t.status == "ok" and t.metrics["lat"] > 6]
    assert "infeasible" in statuses and violating  # both kinds of infeasibility occur
    before = snapshot(workdir)

    report = to_optuna(workdir, tmp_path / "c.log")
    assert snapshot(workdir) == before
    study = load(tmp_path / "c.log", "constrained")
    assert study.user_attrs["constraints"] == ["params_k <= 48", "lat <= 6"]
    trials = study.get_trials()
    assert report.pruned == statuses.count("infeasible") == sum(t.state == TrialState.PRUNED for t in trials)
    assert report.complete == statuses.count("ok")
    for ours, theirs in zip(result.trials, trials):
        expected = [max(0.0, ours.metrics["params_k"] - 48)]
        if ours.status == "infeasible":
            assert theirs.state == TrialState.PRUNED and theirs.values is None
            assert "lat" not in ours.metrics and "constraints" not in theirs.system_attrs  # lat never measured
            assert theirs.user_attrs["params_k"] == ours.metrics["params_k"]
        else:
            expected.append(max(0.0, ours.metrics["lat"] - 6))
            # the list form optuna-dashboard reads; Optuna itself reads it too
            assert theirs.system_attrs["constraints"] == pytest.approx(expected)
            assert list(theirs.constraints.values()) == pytest.approx(expected)
            assert (max(expected) == 0) == result.problem.feasible(ours.metrics)

    ours_front = {t.number for t in result.pareto_front()}
    assert ours_front and all(result.problem.feasible(t.metrics) for t in result.pareto_front())
    assert {t.user_attrs["nas_trial_number"] for t in study.best_trials} == ours_front
    unconstrained = {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert ours_front != unconstrained  # the constraint did change the front


def test_equal_choices_of_different_types_stay_apart(tmp_path):
    """Optuna finds a categorical choice by ==, so 1 and True (or 1.0 and 2 vs 2.0) must not share an axis."""
    mixed = Space(a=Choice([1, True, "x", 2.5]), b=Choice([1.0, 2]))
    workdir = tmp_path / "mixed"
    result = nas.search(mixed, lambda a: {"v": float(len(repr(a["a"])))}, {"v": "max"}, strategy="random",
                        budget=8, seed=0, workdir=workdir)
    to_optuna(workdir, tmp_path / "m.log")
    trials = load(tmp_path / "m.log", "mixed").get_trials()
    assert len(trials) == 8
    for ours, theirs in zip(result.trials, trials):
        a = json.loads(theirs.params["a"])  # 1 and True collide, so this path holds JSON text
        assert a == ours.arch["a"] and type(a) is type(ours.arch["a"])
        assert theirs.params["b"] == ours.arch["b"] and type(theirs.params["b"]) is type(ours.arch["b"])
        assert len(theirs.distributions["a"].choices) == 4
    assert all(math.isfinite(t.values[0]) for t in trials)


def test_cli_writes_the_study_and_refuses_a_folder_that_is_not_a_workdir(searched, tmp_path) -> None:
    from typer.testing import CliRunner

    from nas.cli import app

    workdir, result = searched
    out = CliRunner().invoke(app, ["to-optuna", str(workdir), "--out", str(tmp_path / "o.log")])
    assert out.exit_code == 0, out.output
    assert "optuna-dashboard" in out.stdout and len(load(tmp_path / "o.log", workdir.name).trials) == len(result.trials)
    (tmp_path / "empty").mkdir()
    out = CliRunner().invoke(app, ["to-optuna", str(tmp_path / "empty"), "--out", str(tmp_path / "p.log")])
    assert out.exit_code == 2 and len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "p.log").exists()
