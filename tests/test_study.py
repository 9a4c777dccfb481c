"""`nas.Study`: ask/tell with a journal. Driven one architecture at a time it is `nas.search`; a reopened study
resumes with its pending architectures; bad results are refused or failed by name; its workdir is a search's."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError, InvalidArchitectureError
from nas.spaces import Choice, Repeat, Space

ROOT = Path(__file__).resolve().parents[1]
SPACE = Space(depth=Choice([1, 2, 3]), blocks=Repeat("depth", k=Choice([3, 5, 7]), e=Choice([2, 4, 6])),
              act=Choice(["relu", "gelu"]))
OBJECTIVES = {"acc": "max", "lat": "min"}


def toy(arch) -> dict[str, float]:
    size = sum(b["k"] * b["e"] for b in arch["blocks"])
    return {"acc": 1 - 1 / (1 + size) + 0.01 * (arch["act"] == "gelu"), "lat": size / 10 + arch["depth"]}


def drive(study: nas.Study, evaluate=toy) -> None:
    while (arch := study.ask()) is not None:
        study.tell(arch, evaluate(arch))


@pytest.mark.parametrize("strategy", ["evolution", "nsga2", "random"])
def test_asking_and_telling_one_at_a_time_is_the_search(strategy, tmp_path):
    kw = dict(strategy=strategy, budget=30, seed=3, strategy_options={"population_size": 8} if strategy != "random"
              else None)
    searched = nas.search(SPACE, toy, OBJECTIVES, **kw)
    with nas.Study(SPACE, OBJECTIVES, workdir=tmp_path, **kw) as study:
        drive(study)
        result = study.result()
    assert [t.arch_id for t in result.trials] == [t.arch_id for t in searched.trials]
    assert [t.metrics for t in result.trials] == [t.metrics for t in searched.trials]
    loaded = nas.load(tmp_path)  # an ordinary search workdir: nas.load, the front, the CLI read it
    assert [t.number for t in loaded.pareto_front()] == [t.number for t in searched.pareto_front()]
    status = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert status.exit_code == 0 and "30 ok" in status.output and "finished (budget used)" in status.output


def test_a_reopened_study_keeps_its_pending_architectures_and_loses_nothing(tmp_path):
    study = nas.Study(SPACE, OBJECTIVES, strategy="evolution", budget=12, seed=1, workdir=tmp_path,
                      snapshot_interval_s=0)
    asked = [study.ask() for _ in range(4)]
    for arch in asked[:2]:
        study.tell(arch, toy(arch))
    assert {a.id for a in study.pending} == {a.id for a in asked[2:]}
    baselines = [{"depth": 3, "blocks": [{"k": 7, "e": 6}] * 3, "act": "gelu"},
                 {"depth": 1, "blocks": [{"k": 3, "e": 2}], "act": "relu"}]
    queued = [study.enqueue(b) for b in baselines]  # not asked before the close: kept in the snapshot
    study.close()
    with pytest.raises(ConfigError, match="closed"):
        study.ask()

    again = nas.Study(SPACE, OBJECTIVES, strategy="evolution", budget=12, seed=1, workdir=tmp_path)
    assert {a.id for a in again.pending} == {a.id for a in asked[2:]}  # their jobs may still be running
    again.tell(asked[3].id[:10], toy(asked[3]))  # by (a prefix of) its id
    again.tell(asked[2], toy(asked[2]))
    assert [again.ask(), again.ask()] == queued  # the enqueued ones first, in order
    again.close()
    third = nas.Study(SPACE, OBJECTIVES, strategy="evolution", budget=12, seed=1, workdir=tmp_path)
    for arch in queued:
        third.tell(arch, toy(arch))
    drive(third)
    third.close()
    trials = nas.load(tmp_path).trials
    assert len(trials) == 12 and len({t.arch_id for t in trials}) == 12 and all(t.status == "ok" for t in trials)
    assert [t.arch_id for t in trials[:6]] == [asked[0].id, asked[1].id, asked[3].id, asked[2].id,
                                               *(a.id for a in queued)]
    assert [bool(t.extra.get("enqueued")) for t in trials[:7]] == [False] * 4 + [True] * 2 + [False]


def test_a_study_copied_mid_run_with_a_later_enqueue_goes_on_as_the_original(tmp_path):
    """A trial queued by `study.enqueue` during the study says so, and is told in its turn on resume (only those
    enqueued before the search began ran first): a copy of the open workdir proposes what the original does."""
    import shutil

    kw = dict(strategy="evolution", budget=16, seed=2, strategy_options={"population_size": 4, "sample_size": 2},
              snapshot_interval_s=3600)
    study = nas.Study(SPACE, OBJECTIVES, workdir=tmp_path / "a", **kw)
    for _ in range(4):
        arch = study.ask()
        study.tell(arch, toy(arch))
    first = study.ask()  # asked (snapshot), then the baseline asked, then both told after the last snapshot
    study.enqueue({"depth": 3, "blocks": [{"k": 7, "e": 6}] * 3, "act": "gelu"})
    baseline = study.ask()
    study.tell(first, toy(first))
    study.tell(baseline, {"acc": 0.2, "lat": 0.5})
    assert study.trials[-1].extra.get("enqueued") is True and not study.trials[-2].extra.get("enqueued")
    shutil.copytree(tmp_path / "a", tmp_path / "b", ignore=shutil.ignore_patterns("journal.lock"))
    drive(study)
    study.close()
    with nas.Study(SPACE, OBJECTIVES, workdir=tmp_path / "b", **kw) as copy:
        drive(copy)
    assert [t.arch_id for t in nas.load(tmp_path / "b").trials] == [t.arch_id for t in nas.load(tmp_path / "a").trials]


def test_a_killed_study_resumes_from_its_journal(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        import nas
        from test_study import OBJECTIVES, SPACE, toy
        study = nas.Study(SPACE, OBJECTIVES, strategy="nsga2", budget=16, seed=2, workdir={str(tmp_path / "w")!r},
                          strategy_options={{"population_size": 4}})  # the default interval: an ask snapshots at once
        for _ in range(7):
            arch = study.ask()
            study.tell(arch, toy(arch))
        study.ask()  # asked, never told: the process dies with its job
        os._exit(1)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    study = nas.Study(SPACE, OBJECTIVES, strategy="nsga2", budget=16, seed=2, workdir=tmp_path / "w",
                      strategy_options={"population_size": 4})
    assert study.used == 7 and len(study.pending) == 1
    lost = study.pending[0]
    study.tell(lost, error="the job died with its driver")  # or evaluate it again: tell(lost, toy(lost))
    drive(study)
    study.close()
    trials = nas.load(tmp_path / "w").trials
    assert len(trials) == 16 and len({t.arch_id for t in trials}) == 16
    assert trials[7].arch_id == lost.id and trials[7].status == "failed"


def test_bad_results_are_refused_or_failed_by_name_and_nothing_is_told_twice(tmp_path):
    study = nas.Study(SPACE, OBJECTIVES, strategy="random", budget=10, seed=0, workdir=tmp_path)
    arch = study.ask()
    with pytest.raises(ConfigError, match="give the evaluation's metrics"):
        study.tell(arch)
    with pytest.raises(ConfigError, match="objective 'acc' is not among the metrics.*nothing was journaled"):
        study.tell(arch, {"accuracy": 0.9, "lat": 1.0})  # a misnamed objective before any result: refused
    with pytest.raises(ConfigError, match=r"metrics\['acc'\] = '0.9': str is not a number"):
        study.tell(arch, {"acc": "0.9", "lat": 1.0})
    assert study.trials == [] and [a.id for a in study.pending] == [arch.id]
    nan = study.tell(arch, {"acc": math.nan, "lat": 1.0})
    assert nan.status == "failed" and "non-finite acc" in nan.error
    with pytest.raises(ConfigError, match="was told already"):
        study.tell(arch, toy(arch))
    with pytest.raises(ConfigError, match="no pending architecture has id .zzz."):
        study.tell("zzz", toy(arch))
    with pytest.raises(InvalidArchitectureError, match="act"):
        study.tell({"depth": 1, "blocks": [{"k": 3, "e": 2}], "act": "tanh"}, {"acc": 0.5, "lat": 1.0})
    baseline = {"depth": 3, "blocks": [{"k": 7, "e": 6}] * 3, "act": "gelu"}  # trained before the study
    told = study.tell(baseline, toy(nas.spaces.Architecture(baseline)))
    assert told.status == "ok" and study.result().best().number == told.number
    later = study.ask()  # after a result completed, a typo is still refused: the real result can be told after
    with pytest.raises(ConfigError, match="objective 'lat' is not among .* no trial has had 'latency'; nothing was"):
        study.tell(later, {"acc": 0.5, "latency": 1.0})
    for bad, field in [({"started": "2024-01-01"}, "started"), ({"finished": math.inf}, "finished"),
                       ({"started": 2000.0, "finished": 1000.0}, "finished"), ({"worker": None}, "worker")]:
        with pytest.raises(ConfigError, match=f"^{field}: "):
            study.tell(later, toy(later), **bad)  # the journal keeps them as given: nas.load would fail on it
    assert later.id in [a.id for a in study.pending]
    assert study.tell(later, {"acc": 0.5}).error.startswith("evaluate did not return 'lat'")  # known names only
    study.close()
    assert nas.load(tmp_path).trials[-1].arch_id == later.id


def test_ask_stops_at_the_budget_counting_pending_and_a_search_goes_on_where_a_study_stopped(tmp_path):
    with nas.Study(SPACE, OBJECTIVES, strategy="evolution", budget=6, seed=5, workdir=tmp_path,
                   enqueue=[{"depth": 1, "blocks": [{"k": 3, "e": 2}], "act": "relu"}]) as study:
        asked = [study.ask() for _ in range(6)]
        assert asked[0].to_dict() == {"depth": 1, "blocks": [{"k": 3, "e": 2}], "act": "relu"}  # enqueued first
        assert study.ask() is None  # six asked, none told: the budget is spoken for
        for arch in asked:
            study.tell(arch, toy(arch))
        assert study.ask() is None and study.used == 6
    hint = " ".join(CliRunner().invoke(app, ["status", str(tmp_path)]).output.split())
    assert f"finished (budget used); to continue with a larger budget: nas ask {tmp_path} --budget N" in hint
    grown = CliRunner().invoke(app, ["ask", str(tmp_path), "--budget", "7"])
    assert grown.exit_code == 0 and len(grown.stdout.splitlines()) == 1
    more = nas.search(SPACE, toy, OBJECTIVES, strategy="evolution", budget=12, seed=5, workdir=tmp_path)
    assert len(more.trials) == 12 and len({t.arch_id for t in more.trials}) == 12
    assert [t.arch_id for t in more.trials[:6]] == [a.id for a in asked]


def test_nas_ask_and_tell_drive_a_study_from_the_shell_with_only_its_workdir(tmp_path):
    import json

    wd = str(tmp_path / "s")
    nas.Study(SPACE, OBJECTIVES, strategy="evolution", budget=5, seed=0, workdir=wd).close()
    runner = CliRunner()
    known = {"depth": 2, "blocks": [{"k": 7, "e": 6}, {"k": 5, "e": 4}], "act": "gelu"}
    queued = runner.invoke(app, ["enqueue", wd, json.dumps(known)])  # handed out first by the next ask
    assert queued.exit_code == 0 and queued.stdout.startswith("enqueued ")
    typo = runner.invoke(app, ["enqueue", wd, json.dumps({**known, "act": "tanh"})])
    assert typo.exit_code == 2 and "act" in typo.output and "tanh" in typo.output
    out = runner.invoke(app, ["ask", wd, "-n", "2"])
    assert out.exit_code == 0, out.output
    first = [json.loads(line) for line in out.stdout.splitlines()]
    assert first[0]["arch"] == known
    again = json.loads(runner.invoke(app, ["ask", wd]).stdout)
    assert len({a["id"] for a in first + [again]}) == 3  # what was handed out stays pending between calls
    arch = nas.spaces.Architecture(first[0]["arch"])
    metric = [f"--metric={k}={v}" for k, v in toy(arch).items()]
    told = runner.invoke(app, ["tell", wd, first[0]["id"][:8], *metric])
    assert told.exit_code == 0 and told.stdout.startswith("trial 0: ok (acc=")
    baseline = {"depth": 1, "blocks": [{"k": 3, "e": 2}], "act": "relu"}
    told = runner.invoke(app, ["tell", wd, json.dumps(baseline), "--metrics", json.dumps({"acc": 0.1, "lat": 2})])
    assert told.exit_code == 0 and told.stdout.startswith("trial 1: ok")
    failed = runner.invoke(app, ["tell", wd, first[1]["id"], "--error", "out of memory"])
    assert failed.stdout.startswith("trial 2: failed: out of memory")
    bad = runner.invoke(app, ["tell", wd, again["id"], "--metric", "acc=high"])
    assert bad.exit_code == 2 and "--metric acc: 'high' is not a number" in bad.output
    last = runner.invoke(app, ["ask", wd, "-n", "3"])  # budget 5: 3 told, 1 pending, so one more
    assert last.exit_code == 0 and len(last.stdout.splitlines()) == 1
    before = {p.name: p.read_bytes() for p in Path(wd).iterdir() if p.is_file()}
    done = runner.invoke(app, ["ask", wd])
    assert done.exit_code == 3 and "nothing to ask: 3 told and 2 pending of a budget of 5" in done.output
    assert {p.name: p.read_bytes() for p in Path(wd).iterdir() if p.is_file()} == before  # a call that hands out
    # nothing writes nothing (it journaled a resume and an end record, and marked a search's workdir a study)
    status = " ".join(runner.invoke(app, ["status", wd]).output.split())
    assert f"pending 2 asked and not told yet ({again['id'][:12]}, " in status
    with nas.Study(SPACE, OBJECTIVES, strategy="evolution", budget=5, seed=0, workdir=wd) as study:
        assert [a.id for a in study.pending] == [again["id"], json.loads(last.stdout)["id"]]
        busy = runner.invoke(app, ["ask", wd, "--wait", "0"])  # the study above holds the workdir
        assert busy.exit_code == 2 and "is being written by another search" in busy.output
    trials = nas.load(wd).trials
    assert [t.worker for t in trials] == ["told"] * 3 and trials[0].duration >= 0
    revived = runner.invoke(app, ["ask", wd, "-n", "2", "--fail-stale", "0", "--budget", "7"])  # two jobs died: fail, go on
    assert revived.exit_code == 0 and len(revived.stdout.splitlines()) == 2, revived.output
    assert "trial 3: failed (stale: no result" in revived.output
    trials = nas.load(wd).trials
    assert [t.status for t in trials] == ["ok", "ok", "failed", "failed", "failed"]
    assert {t.arch_id for t in trials[3:]} == {again["id"], json.loads(last.stdout)["id"]}


def test_a_study_whose_space_the_journal_cannot_rebuild_is_refused_by_the_cli(tmp_path):
    class Mine(Space):
        pass

    mine = Mine(w=Choice([1, 2]))
    nas.Study(mine, {"acc": "max"}, strategy="random", budget=2, seed=0, workdir=tmp_path / "m").close()
    out = CliRunner().invoke(app, ["ask", str(tmp_path / "m")])
    assert out.exit_code == 2 and "drive it from Python" in out.output
    missing = CliRunner().invoke(app, ["ask", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "make the study in Python first" in missing.output


def test_worker_threads_share_one_study(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    study = nas.Study(SPACE, OBJECTIVES, strategy="nsga2", budget=40, seed=4, workdir=tmp_path,
                      strategy_options={"population_size": 8}, snapshot_interval_s=0)

    def worker() -> int:
        done = 0
        while (arch := study.ask()) is not None:
            study.tell(arch, toy(arch))
            done += 1
        return done

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda _: worker(), range(4)))
    study.close()
    trials = nas.load(tmp_path).trials
    assert sum(counts) == 40 and len(trials) == 40 and len({t.arch_id for t in trials}) == 40
    assert [t.number for t in trials] == list(range(40)) and all(t.status == "ok" for t in trials)


def test_docs_coming_from_optuna_examples_run(tmp_path, monkeypatch):
    from tests.docs import python_blocks

    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(ROOT / "docs" / "optuna.md")
    assert blocks
    namespace: dict = {"__name__": "optuna_doc"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/optuna.md python block {i + 1}", "exec"), namespace)
    result = namespace["result"]
    assert any(t.pruned_after is not None for t in result.trials) and result.best().pruned_after is None
    assert result.trials[0].arch == {"op": "conv3", "width": 32, "depth": 2}  # the enqueued baseline first
    assert "pruned_after" in namespace["frame"].columns
    assert len(nas.load(tmp_path / "runs" / "ask-tell").trials) == 10


def climb(arch, epochs: int = 8):
    """Per-epoch accuracy climbing towards `toy`'s, with the latency known from the start."""
    final = toy(arch)
    return [{"acc": final["acc"] * (1 - 0.5 ** (e + 1)), "lat": final["lat"]} for e in range(epochs)]


@pytest.mark.parametrize("pruner", ["median", "asha", "hyperband"])
def test_a_study_with_a_pruner_prunes_as_the_search_does_and_from_the_shell(tmp_path, pruner):
    """asha and hyperband rank trials at rungs kept on each trial: a study (judging each report on a copy of the
    finished trials) pruned none of them before those were kept, and hyperband drew its brackets at random."""
    import json

    def train(arch):
        for m in climb(arch):
            nas.report_metrics(m)
        return m

    searched = nas.search(SPACE, train, OBJECTIVES, strategy="random", budget=20, seed=6, pruner=pruner)
    with nas.Study(SPACE, OBJECTIVES, strategy="random", budget=20, seed=6, pruner=pruner,
                   workdir=tmp_path / "py") as study:
        while (arch := study.ask()) is not None:
            stop = False
            for m in climb(arch):
                if study.report(arch, m):  # trial.report + should_prune
                    stop = True
                    break
            study.tell(arch) if stop else study.tell(arch, m)  # pruned: journaled with its last report
        result = study.result()
    assert [(t.arch_id, t.pruned_after, t.extra.get("curve")) for t in result.trials] == \
        [(t.arch_id, t.pruned_after, t.extra.get("curve")) for t in searched.trials]
    assert [t.number for t in result.pareto_front()] == [t.number for t in searched.pareto_front()]
    assert sum(t.pruned_after is not None for t in searched.trials) >= 5

    wd = str(tmp_path / "sh")  # the same from the shell: each call another process's view of one study
    nas.Study(SPACE, OBJECTIVES, strategy="random", budget=20, seed=6, pruner=pruner, workdir=wd).close()
    runner = CliRunner()
    for _ in range(20):
        (asked,) = [json.loads(line) for line in runner.invoke(app, ["ask", wd]).stdout.splitlines()]
        for m in climb(nas.spaces.Architecture(asked["arch"])):
            out = runner.invoke(app, ["epoch", wd, asked["id"], "--metrics", json.dumps(m)])
            assert out.exit_code in (0, 4), out.output
            if out.exit_code == 4:
                assert out.stdout.strip() == "prune"
                break
        told = runner.invoke(app, ["tell", wd] + ([asked["id"]] if out.exit_code == 4 else
                                                  [asked["id"], "--metrics", json.dumps(m)]))
        assert told.exit_code == 0, told.output
    shell = nas.load(wd).trials
    assert [(t.arch_id, t.pruned_after, t.extra.get("curve")) for t in shell] == \
        [(t.arch_id, t.pruned_after, t.extra.get("curve")) for t in searched.trials]


def test_a_study_reopened_without_its_pruner_keeps_and_uses_it(tmp_path):
    """Reopening a pruned study in Python without `pruner=` dropped the pruner from its journal, so every later job
    (and `nas epoch`) trained to the end."""
    def train(arch):
        for m in climb(arch):
            nas.report_metrics(m)
        return m

    kw = dict(strategy="random", budget=20, seed=6)
    searched = nas.search(SPACE, train, OBJECTIVES, pruner="median", **kw)
    wd = tmp_path / "study"
    nas.Study(SPACE, OBJECTIVES, pruner="median", workdir=wd, **kw).close()
    for _ in range(20):  # each job reopens the study, as separate processes would, never naming the pruner
        with nas.Study(SPACE, OBJECTIVES, workdir=wd, **kw) as study:
            arch = study.ask()
            stop = False
            for m in climb(arch):
                if study.report(arch, m):
                    stop = True
                    break
            study.tell(arch) if stop else study.tell(arch, m)
    assert nas.load(wd).config["metadata"]["pruner"] == {"name": "median", "metric": None}
    assert [(t.arch_id, t.pruned_after) for t in nas.load(wd).trials] == \
        [(t.arch_id, t.pruned_after) for t in searched.trials]


def test_nas_epoch_refuses_a_study_made_with_a_pruner_instance_the_shell_cannot_rebuild(tmp_path, caplog):
    import json

    import optuna

    wd = str(tmp_path)
    nas.Study(SPACE, OBJECTIVES, strategy="random", budget=5, seed=0, workdir=wd,
              pruner=optuna.pruners.MedianPruner(n_startup_trials=1)).close()
    runner = CliRunner()
    asked = json.loads(runner.invoke(app, ["ask", wd]).stdout)
    out = runner.invoke(app, ["epoch", wd, asked["id"], "--metric", "acc=0.5", "--metric", "lat=1"])
    assert out.exit_code == 2 and "optuna.pruners.MedianPruner instance" in out.output
    with nas.Study(SPACE, OBJECTIVES, strategy="random", budget=5, seed=0, workdir=wd) as study:
        study.report(asked["id"], {"acc": 0.5, "lat": 1.0})  # kept, not judged, and said so
    assert "pass it again" in caplog.text


def test_a_study_whose_strategy_has_nothing_new_ends_exhausted(tmp_path):
    space = Space(a=Choice([1, 2, 3]))
    with nas.Study(space, {"acc": "max"}, strategy="random", budget=10, seed=0, workdir=tmp_path) as study:
        while (arch := study.ask()) is not None:
            study.tell(arch, {"acc": float(arch["a"])})
        assert study.result().stop_reason == "exhausted"
    assert nas.load(tmp_path).stop_reason == "exhausted"
    status = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert "nas ask" not in status.output and "exhausted" in status.output


def test_the_dashboard_rate_of_a_study_counts_trials_across_its_reopenings(tmp_path):
    """Every `nas ask` / `nas tell` reopens the study and journals a resume line; the rate was taken over the last
    such 'run', one trial in a few milliseconds."""
    from nas.dashboard.views import SearchView

    t0 = 1.7e9
    for i in range(4):
        with nas.Study(SPACE, OBJECTIVES, strategy="random", budget=10, seed=0, workdir=tmp_path) as study:
            arch = study.ask()
        with nas.Study(SPACE, OBJECTIVES, strategy="random", budget=10, seed=0, workdir=tmp_path) as study:
            study.tell(arch, toy(arch), started=t0 + 60 * i, finished=t0 + 60 * i + 50)
    view = SearchView(tmp_path, "s", "s")
    view.refresh()
    rate, clock = view._rate()
    assert clock == "wall" and rate == pytest.approx(4 / (3 * 60 + 50))


def test_reduced_overhead_experiment_runs(tmp_path):
    out = tmp_path / "overhead.json"
    done = subprocess.run([sys.executable, str(ROOT / "experiments" / "study_overhead.py"), "--strategies", "random",
                           "tpe", "--sizes", "10", "--repeats", "1", "--out", str(out)], capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    fastest = __import__("json").loads(out.read_text())["fastest"]
    assert set(fastest) == {"random|10", "tpe|10"}
    assert fastest["random|10"].pop("replay") is None  # only Optuna's samplers ever replayed a log
    assert set(fastest["tpe|10"]) == {"search", "study", "reopen", "shell", "replay"}
    assert all(v > 0 for timings in fastest.values() for v in timings.values())


@pytest.mark.parametrize("strategy", ["evolution", "tpe"])
def test_the_cli_reads_and_drives_a_plain_space_workdir_without_importing_torch(tmp_path, strategy):
    """torch takes most of a `nas` call's start (0.8 of 1.4 s here); status, pareto, ask and tell do not need it."""
    wd = tmp_path / "s"
    with nas.Study(SPACE, OBJECTIVES, strategy=strategy, budget=5, seed=0, workdir=wd) as study:
        arch = study.ask()  # the snapshot holds a strategy state with a result (an Optuna study's checkpoint)
        study.tell(arch, {"acc": 0.1, "lat": 1.0})
    script = textwrap.dedent(f"""
        import json, sys
        from typer.testing import CliRunner
        from nas.cli import app
        runner = CliRunner()
        asked = json.loads(runner.invoke(app, ["ask", {str(wd)!r}]).stdout)
        told = runner.invoke(app, ["tell", {str(wd)!r}, asked["id"], "--metric", "acc=0.5", "--metric", "lat=2"])
        assert told.exit_code == 0, told.output
        for command in (["status"], ["pareto"], ["trials", "--csv", "-"]):
            out = runner.invoke(app, [command[0], {str(wd)!r}, *command[1:]])
            assert out.exit_code == 0, out.output
        print("torch" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
