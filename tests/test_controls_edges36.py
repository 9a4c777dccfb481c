"""Everyday controls (Optuna parity) edges: a diverged training's NaN reports reach the pruner as in Optuna and stay
in its curve (`nas.search`, `nas.Study.report`, `nas epoch`); `NoImprovement(min_delta>0)` is refused with several
objectives rather than ignored; a rule inside `AnyOf` that cannot be called is refused before anything is written."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.spaces import Choice, Integer, Space
from nas.stopping import AnyOf, check_rule
from nas.to_optuna import to_optuna

SPACE = Space(op=Choice(["conv3", "conv5", "mbconv", "broken"]), width=Integer(16, 64, step=16))
EPOCHS = 9
ORDER = [{"op": op, "width": w} for w in (16, 32, 48) for op in ("conv5", "mbconv", "conv3", "broken")]


def accuracy(op: str, width: int, epoch: int) -> float:
    """A rising curve; `mbconv` diverges (NaN) from its third epoch on, `broken` from its first."""
    if (op == "mbconv" and epoch >= 2) or op == "broken":
        return math.nan
    return (0.7 + width / 1000 + (op == "conv5") * 0.05) * (1 - 0.6 ** (epoch + 1))


def train(arch) -> dict[str, float]:
    for epoch in range(EPOCHS):
        nas.report_metrics({"accuracy": accuracy(arch["op"], arch["width"], epoch)})
    return {"accuracy": accuracy(arch["op"], arch["width"], EPOCHS - 1)}


def optuna_pruned(make) -> list[int | None]:
    """After how many reports Optuna's own study prunes each training of ORDER (None: not pruned)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial: optuna.Trial) -> float:
        op, width = trial.suggest_categorical("op", ["conv3", "conv5", "mbconv", "broken"]), \
            trial.suggest_int("width", 16, 64, step=16)
        for epoch in range(EPOCHS):
            trial.report(accuracy(op, width, epoch), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy(op, width, EPOCHS - 1)

    # the name nas's pruning study has: Hyperband draws each trial's bracket from it
    study = optuna.create_study(study_name="nas-pruning", direction="maximize", pruner=make())
    for params in ORDER:
        study.enqueue_trial(params)
    study.optimize(objective, n_trials=len(ORDER))
    return [len(t.intermediate_values) if t.state == optuna.trial.TrialState.PRUNED else None for t in study.trials]


PRUNERS = {
    "threshold": lambda: optuna.pruners.ThresholdPruner(lower=0.1),
    "asha": lambda: optuna.pruners.SuccessiveHalvingPruner(),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS),
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2),
    "percentile": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=2),
}


# ---------------------------------------------------------------- defect 1: NaN reports reach the pruner
@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_a_diverged_training_is_pruned_as_optuna_prunes_it(name):
    """The reporter returned before the pruner at a NaN, so a diverged training used its whole budget."""
    r = nas.search(SPACE, train, {"accuracy": "max"}, strategy="random", budget=len(ORDER), seed=0,
                   enqueue=ORDER, pruner=PRUNERS[name]())
    assert [dict(t.arch) for t in r.trials] == ORDER
    ours = [t.pruned_after for t in r.trials]
    assert ours == optuna_pruned(PRUNERS[name])
    assert any(n is not None for n, a in zip(ours, ORDER) if a["op"] in ("mbconv", "broken"))


def test_the_nan_reports_stay_in_the_journaled_curve_as_strict_json(tmp_path):
    def strict(token: str) -> None:
        raise AssertionError(f"journal line holds a bare {token} (not JSON)")

    run = tmp_path / "run"
    r = nas.search(SPACE, train, {"accuracy": "max"}, strategy="random", budget=len(ORDER), seed=0,
                   enqueue=ORDER, pruner=optuna.pruners.ThresholdPruner(lower=0.1), workdir=run)
    diverged = r.trials[1]
    assert diverged.arch["op"] == "mbconv" and diverged.pruned_after == 3 and diverged.status == "failed"
    assert diverged.extra["curve"] == [[0, accuracy("mbconv", 16, 0)], [1, accuracy("mbconv", 16, 1)], [2, "nan"]]
    assert r.trials[3].extra["curve"] == [[0, "nan"]] and r.trials[3].pruned_after == 1  # "broken"
    for line in (run / "journal.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=strict)
    assert nas.load(run).trials[1].extra["curve"] == diverged.extra["curve"]
    more = nas.search(SPACE, train, {"accuracy": "max"}, strategy="random", budget=len(ORDER) + 2, seed=0,
                      pruner=optuna.pruners.ThresholdPruner(lower=0.1), workdir=run)  # the curves replay
    assert len(more.trials) == len(ORDER) + 2
    report = to_optuna(run, tmp_path / "optuna.log")
    study = optuna.load_study(study_name=report.study_name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.log"))))
    values = study.get_trials()[1].intermediate_values
    assert sorted(values) == [0, 1, 2] and math.isnan(values[2])


def test_study_report_and_nas_epoch_judge_a_nan_report(tmp_path):
    """`Study.report` kept a NaN out of the pruner, so `nas epoch --metric acc=nan` said 'continue'."""
    with nas.Study(SPACE, {"acc": "max"}, strategy="random", budget=10, seed=0, workdir=tmp_path / "s",
                   pruner="median") as study:
        for _ in range(5):  # the median pruner's startup trials, trained to the end
            arch = study.ask()
            for epoch in range(3):
                assert study.report(arch, {"acc": 0.2 * (epoch + 1)}) is False
            study.tell(arch, {"acc": 0.6})
        arch = study.ask()
        assert study.report(arch, {"acc": math.nan}) is True  # all its reports NaN: pruned, as Optuna's median does
        trial = study.tell(arch)
        assert trial.pruned_after == 1 and trial.extra["curve"] == [[0, "nan"]] and trial.status == "failed"
    runner = CliRunner()
    asked = json.loads(runner.invoke(app, ["ask", str(tmp_path / "s")]).stdout)
    out = runner.invoke(app, ["epoch", str(tmp_path / "s"), asked["id"], "--metric", "acc=nan"])
    assert out.exit_code == 4 and out.stdout.strip() == "prune", out.output


# ---------------------------------------------------------------- defect 2: min_delta with several objectives
def test_no_improvement_with_min_delta_is_refused_with_several_objectives(tmp_path):
    """Any new Pareto point counted as an improvement, so min_delta was ignored while the stop reason named it."""
    rule = nas.NoImprovement(patience=3, min_delta=0.5)
    with pytest.raises(ConfigError, match=r"stop_when: NoImprovement\(min_delta=0.5\) applies to one objective "
                                          r"only, and this search has 2 \(accuracy, params_k\)"):
        check_rule(AnyOf((nas.Target("accuracy >= 0.9"), rule)), ["accuracy", "params_k"],
                   ["accuracy", "params_k"])
    assert check_rule(rule, ["accuracy", "params_k"], ["accuracy"]) is rule  # one objective, a constraint metric
    assert check_rule(nas.NoImprovement(3), ["accuracy", "params_k"], ["accuracy", "params_k"]) is not None

    def evaluate(arch) -> dict[str, float]:
        return {"accuracy": 0.5 + arch["width"] / 1e5, "params_k": 1.0}

    with pytest.raises(ConfigError, match=r"NoImprovement\(min_delta=0.5\) applies to one objective only"):
        nas.search(SPACE, evaluate, {"accuracy": "max", "params_k": "min"}, strategy="random", budget=10, seed=0,
                   stop_when=nas.NoImprovement(patience=3, min_delta=0.5), workdir=tmp_path / "w")
    assert not (tmp_path / "w" / "journal.jsonl").exists()  # refused when the search starts, before any evaluation
    one = nas.search(SPACE, evaluate, {"accuracy": "max"}, strategy="random", budget=10, seed=0,
                     stop_when=nas.NoImprovement(patience=3, min_delta=0.5))
    assert one.used == 4 and one.stop_reason == "stop_when: no improvement by more than 0.5 in the last 3 evaluations"


# ---------------------------------------------------------------- defect 3: AnyOf's rules checked at the start
@pytest.mark.parametrize("rule, where", [
    (AnyOf((nas.NoImprovement(3), "accuracy >= 0.9")), r"stop_when\.rules\[1\]: expected NoImprovement\(\.\.\.\), "
                                                       r"Target\(\.\.\.\) or a callable \(result\) -> bool, got "
                                                       r"'accuracy >= 0\.9'"),
    (AnyOf((nas.NoImprovement(3), AnyOf((42,)))), r"stop_when\.rules\[1\]\.rules\[0\]: expected .*got 42"),
    (AnyOf(nas.NoImprovement(3)), r"stop_when\.rules: expected a tuple of rules"),
])
def test_a_rule_inside_any_of_that_cannot_be_asked_is_refused_before_anything_is_journaled(tmp_path, rule, where):
    """It passed the start, a trial was journaled, then the search died with a bare TypeError."""
    with pytest.raises(ConfigError, match=where):
        nas.search(SPACE, lambda a: {"accuracy": a["width"] / 100}, {"accuracy": "max"}, strategy="random",
                   budget=6, seed=0, stop_when=rule, workdir=tmp_path / "run")
    assert not (tmp_path / "run" / "journal.jsonl").exists()
