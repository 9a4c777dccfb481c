"""Everyday controls: enqueue, warm start, max_time, the default seed, progress=True, data export, history,
run files and the CLI's flags and listings."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError, InvalidArchitectureError
from nas.spaces import Choice, Integer, Repeat, Space
from nas.store import Journal

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def space() -> Space:
    return Space(depth=Choice([1, 2, 3]), blocks=Repeat("depth", k=Choice([3, 5, 7]), w=Integer(1, 4)),
                 act=Choice(["relu", "gelu"]))


class Evaluate:
    """Toy metrics; remembers every architecture it evaluated."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, arch):
        self.calls.append(nas.spaces.Architecture(arch).id)
        acc = sum(b["k"] * b["w"] for b in arch["blocks"]) + (arch["act"] == "gelu")
        return {"accuracy": float(acc), "latency_ms": float(sum(b["k"] + 2 * b["w"] for b in arch["blocks"]))}


BASELINES = [{"depth": 1, "blocks": [{"k": 3, "w": 1}], "act": "relu"},
             {"depth": 2, "blocks": [{"k": 7, "w": 4}, {"k": 7, "w": 4}], "act": "gelu"}]


# ------------------------------------------------------------------------------------------ enqueue
def test_enqueued_architectures_are_evaluated_first_and_resume_finishes_them(tmp_path):
    ev = Evaluate()
    r = nas.search(space(), ev, {"accuracy": "max"}, strategy="evolution", budget=6, seed=0, enqueue=BASELINES,
                   workdir=tmp_path)
    ids = [space().validate(a).id for a in BASELINES]
    assert [t.arch_id for t in r.trials[:2]] == ids and all(t.extra == {"enqueued": True} for t in r.trials[:2])
    assert ev.calls.count(ids[0]) == 1 and len(set(ev.calls)) == 6 == r.used  # never proposed again
    # a resumed run with one more enqueued architecture evaluates only the new one first
    more = BASELINES + [{"depth": 1, "blocks": [{"k": 5, "w": 2}], "act": "gelu"}]
    again = nas.search(space(), ev, {"accuracy": "max"}, strategy="evolution", budget=9, seed=0, enqueue=more,
                       workdir=tmp_path)
    assert again.trials[6].arch_id == space().validate(more[2]).id and again.trials[6].extra == {"enqueued": True}
    assert len(ev.calls) == 9 == len(set(ev.calls)) and again.config["enqueue"] == [dict(a) for a in more]


def test_an_enqueued_architecture_outside_the_space_names_its_index_and_field():
    with pytest.raises(InvalidArchitectureError, match=r"enqueue\[1\]\.blocks\[0\]\.k: 4 is not one of \[3, 5, 7\]"):
        nas.search(space(), Evaluate(), {"accuracy": "max"}, budget=3, seed=0,
                   enqueue=[BASELINES[0], {"depth": 1, "blocks": [{"k": 4, "w": 1}], "act": "relu"}])


# ------------------------------------------------------------------------------------------ warm start
def test_warm_start_tells_the_earlier_results_without_spending_budget_or_repeating_them(tmp_path):
    first = Evaluate()
    earlier = nas.search(space(), first, {"accuracy": "max"}, strategy="evolution", budget=20, seed=1,
                         workdir=tmp_path / "earlier")
    ev = Evaluate()
    warm = nas.search(space(), ev, {"accuracy": "max"}, strategy="evolution", budget=15, seed=2,
                      workdir=tmp_path / "warm", warm_start=tmp_path / "earlier")
    assert warm.used == 15 == len(ev.calls) and not set(ev.calls) & set(first.calls)
    assert warm.config["warm_start"] == {"workdir": str((tmp_path / "earlier").resolve()), "trials": 20}
    # resumed without the argument: the recorded warm start is applied again, exactly
    resumed = nas.search(space(), ev, {"accuracy": "max"}, strategy="evolution", budget=25, seed=2,
                         workdir=tmp_path / "warm")
    assert resumed.used == 25 and not set(ev.calls) & {t.arch_id for t in earlier.trials}
    other = Space(depth=Choice([1, 2]), blocks=Repeat("depth", k=Choice([3, 5, 7]), w=Integer(1, 4)),
                  act=Choice(["relu", "gelu"]))
    with pytest.raises(ConfigError, match=r"warm_start: .* searched a different space \(it differs at field depth\)"):
        nas.search(other, Evaluate(), {"accuracy": "max"}, budget=3, seed=0, warm_start=tmp_path / "earlier")


def test_warm_start_reaches_an_earlier_searchs_best_in_fewer_new_evaluations(nbg_dir):
    """experiments/warm_start.py on a few of its seeds, with the space written as a user would."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import warm_start

    bench = nas.tabular.nas_bench_graph("cora", nbg_dir)
    rows = []
    for seed in range(4):
        with __import__("tempfile").TemporaryDirectory() as tmp:
            rows.append(warm_start.one_seed(bench, warm_start.plain_space(), seed, Path(tmp)))
    warm, cold = sum(r["warm_to_target"] for r in rows), sum(r["cold_to_target"] for r in rows)
    assert warm < cold / 2, rows


# ------------------------------------------------------------------------------------------ time and seeds
def test_max_time_stops_submitting_and_resume_continues(tmp_path):
    def slow(arch):
        time.sleep(0.3)
        return {"accuracy": float(arch["depth"])}

    r = nas.search(space(), slow, {"accuracy": "max"}, strategy="random", budget=50, seed=0, max_time=0.5,
                   workdir=tmp_path)
    assert r.stop_reason == "max_time" and 1 <= r.used < 50 and r.config["max_time"] == 0.5
    again = nas.search(space(), slow, {"accuracy": "max"}, strategy="random", budget=50, seed=0, max_time=0.5,
                       workdir=tmp_path)
    assert again.used > r.used and [t.arch_id for t in again.trials[:r.used]] == [t.arch_id for t in r.trials]


def test_the_default_seed_is_fresh_recorded_and_reused_on_resume(tmp_path):
    a = nas.search(space(), Evaluate(), {"accuracy": "max"}, strategy="random", budget=3, workdir=tmp_path / "a")
    b = nas.search(space(), Evaluate(), {"accuracy": "max"}, strategy="random", budget=3, workdir=tmp_path / "b")
    assert isinstance(a.config["seed"], int) and a.config["seed"] != b.config["seed"]
    resumed = nas.search(space(), Evaluate(), {"accuracy": "max"}, strategy="random", budget=6,
                         workdir=tmp_path / "a")
    assert resumed.config["seed"] == a.config["seed"] and resumed.used == 6
    again = nas.search(space(), Evaluate(), {"accuracy": "max"}, strategy="random", budget=6,
                       seed=a.config["seed"], workdir=tmp_path / "c")
    assert [t.arch_id for t in again.trials] == [t.arch_id for t in resumed.trials]  # the recorded seed repeats it


def test_progress_true_shows_a_bar_that_starts_from_the_journal(tmp_path, capsys):
    from nas.report import SearchProgress

    nas.search(space(), Evaluate(), {"accuracy": "max"}, budget=4, seed=0, workdir=tmp_path, progress=True)
    assert "4/4" in capsys.readouterr().out
    bar = SearchProgress()
    nas.search(space(), Evaluate(), {"accuracy": "max"}, budget=7, seed=0, workdir=tmp_path, progress=bar)
    task = bar.progress.tasks[0]
    assert task.total == 7 and task.completed == 7 and not bar.progress.live.is_started
    with pytest.raises(ConfigError, match="progress: expected a callable"):
        nas.search.__wrapped__(space(), Evaluate(), {"accuracy": "max"}, budget=1, progress=True)
    calls = []
    with pytest.raises(ConfigError, match=r"progress: expected a callable \(trial, used, budget\)"):
        nas.search(space(), lambda a: calls.append(a) or {"accuracy": 1.0}, {"accuracy": "max"}, budget=2,
                   progress=lambda study, trial: None)  # Optuna's callback signature: refused before evaluating
    assert calls == []
    nas.search(space(), Evaluate(), {"accuracy": "max"}, budget=1, progress=lambda *args, **kw: None)


# ------------------------------------------------------------------------------------------ data and history
def test_the_trial_table_keeps_its_columns_and_integer_decisions(tmp_path):
    """A metric named like a trial column is metric.<name> (it overwrote the trial numbers), and a decision some
    trials lack (a block past a shallower depth) stays an integer in the CSV (pandas made it 3.0)."""
    deep = Space(depth=Choice([1, 2]), blocks=Repeat("depth", k=Choice([3, 5])))
    r = nas.search(deep, lambda a: {"accuracy": float(a["depth"]), "duration": 123.0, "number": 7.0},
                   {"accuracy": "max"}, strategy="random", budget=3, seed=0, workdir=tmp_path / "wd",
                   enqueue=[{"depth": 1, "blocks": [{"k": 3}]}, {"depth": 2, "blocks": [{"k": 5}, {"k": 3}]}])
    frame = r.to_dataframe()
    assert list(frame["number"]) == [0, 1, 2] and list(frame["metric.number"]) == [7.0] * 3
    assert list(frame["metric.duration"]) == [123.0] * 3 and all(frame["duration"] < 100)
    out = CliRunner().invoke(app, ["trials", str(tmp_path / "wd"), "--csv", "-"])
    header, first, second = out.stdout.splitlines()[:3]
    column = header.split(",").index("arch.blocks.1.k")
    assert first.split(",")[column] == "" and second.split(",")[column] == "3"


def test_trials_as_a_dataframe_csv_json_and_a_history_plot(tmp_path):
    wd = tmp_path / "wd"
    r = nas.search(space(), Evaluate(), {"accuracy": "max"}, constraints=["latency_ms <= 30"], strategy="random",
                   budget=12, seed=3, workdir=wd)
    assert r.feasible and len(r.feasible) < len(r.trials)  # some trials are infeasible: they are not "best"
    frame = r.to_dataframe()
    assert list(frame["number"]) == list(range(12)) and {"accuracy", "latency_ms", "arch.depth",
                                                         "arch.blocks.0.k", "arch.act"} <= set(frame.columns)
    assert frame.loc[0, "arch.blocks.0.k"] == r.trials[0].arch["blocks"][0]["k"]
    runner = CliRunner()
    out = runner.invoke(app, ["trials", str(wd), "--csv", str(tmp_path / "t.csv"), "--json", str(tmp_path / "t.jsonl")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "t.csv").read_text().splitlines()[0].startswith("number,status,arch_id")
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert [json.loads(line)["arch_id"] for line in lines] == [t.arch_id for t in r.trials]
    history = r.history("accuracy")
    assert history[0][0] >= 1 and all(a[1] < b[1] for a, b in zip(history, history[1:]))
    assert history[-1][1] == r.best().metrics["accuracy"]
    plot = runner.invoke(app, ["pareto", str(wd), "--plot", str(tmp_path / "one.png")])  # one objective
    assert plot.exit_code == 0 and "optimisation history" in plot.output
    assert (tmp_path / "one.png").read_bytes()[:8] == PNG_MAGIC
    two = runner.invoke(app, ["pareto", str(wd), "--objectives", "accuracy,latency_ms:min", "--plot",
                              str(tmp_path / "two.png")])
    assert two.exit_code == 0, two.output
    assert [t.number for t in r.pareto_front(["accuracy", "latency_ms:min"])]
    assert "give its direction: latency_ms:min or latency_ms:max" in runner.invoke(app, ["pareto", str(wd), "--objectives",
                                                             "accuracy,latency_ms"]).output.replace("\n", " ")
    with pytest.raises(ConfigError, match="'acuracy' is not a metric any trial recorded"):  # was an empty front
        r.pareto_front(["acuracy:max", "latency_ms:min"])
    with pytest.raises(ConfigError, match="objectives: 'accuracy' is given twice"):  # showed its column twice
        r.pareto_front(["accuracy", "accuracy:max"])
    with pytest.raises(ConfigError, match="the direction after ':' must be min or max, got 'maximise'"):
        r.best("accuracy:maximise")
    # the enqueue file nas run reads can be nas trials' JSON lines
    from nas.cli.runfile import read_enqueue

    assert read_enqueue(tmp_path / "t.jsonl") == [t.arch for t in r.trials]


# ------------------------------------------------------------------------------------------ the command line
SCRIPT = '''
from nas.spaces import Space, Choice, Integer
space = Space(a=Integer(0, 30), b=Choice(["x", "y"]))
objectives = {"score": "max"}

def evaluate(arch, budget=1):
    return {"score": float(arch["a"] * budget + (arch["b"] == "y"))}
'''


def test_a_toml_run_file_with_flags_on_top(tmp_path):
    (tmp_path / "job.py").write_text(SCRIPT)
    (tmp_path / "job.toml").write_text('script = "job.py"\nstrategy = "evolution"\nbudget = 6\nseed = 4\n'
                                       'workdir = "runs/job"\nfidelity = 3\n'
                                       '[strategy_options]\npopulation_size = 4\n')
    runner = CliRunner()
    out = runner.invoke(app, ["run", str(tmp_path / "job.toml"), "--strategy-option", "mutation_bias=0.25",
                              "--budget", "8"])
    assert out.exit_code == 0, out.output
    contents = Journal(tmp_path / "runs" / "job").read()
    config, trials = contents.config, contents.trials
    assert config["strategy_options"] == {"population_size": 4, "mutation_bias": 0.25}
    assert config["fidelity"] == 3 and config["seed"] == 4 and len(trials) == 8
    assert all(t.metrics["score"] == t.arch["a"] * 3 + (t.arch["b"] == "y") for t in trials)  # budget=fidelity
    assert config["metadata"]["run_file"] == str((tmp_path / "job.toml").resolve())


def test_a_yaml_run_file_and_its_errors_name_the_setting(tmp_path):
    (tmp_path / "job.py").write_text(SCRIPT)
    (tmp_path / "job.yaml").write_text("script: job.py\nbudget: 3\nseed: 1\nworkdir: wd\n"
                                       "executor: {name: processes, workers: 2}\ntimeout_s: 30\n")
    runner = CliRunner()
    out = runner.invoke(app, ["run", str(tmp_path / "job.yaml")])
    assert out.exit_code == 0, out.output
    config = Journal(tmp_path / "wd").read().config
    assert config["metadata"]["executor"] == {"name": "processes", "workers": 2} and config["timeout_s"] == 30
    (tmp_path / "bad.toml").write_text('script = "job.py"\nbugdet = 3\n')
    bad = runner.invoke(app, ["run", str(tmp_path / "bad.toml")])
    assert bad.exit_code == 2 and "unknown setting 'bugdet'" in bad.stderr
    (tmp_path / "bad2.toml").write_text('script = "job.py"\nbudget = "ten"\n')
    assert "budget: expected int, got 'ten'" in runner.invoke(app, ["run", str(tmp_path / "bad2.toml")]).stderr


def test_listings_version_and_short_help():
    runner = CliRunner()
    listing = runner.invoke(app, ["strategies"], env={"COLUMNS": "300"})
    assert listing.exit_code == 0 and "population_size=50" in listing.output and "mutation_bias=0.5" in listing.output
    from nas.strategies import STRATEGIES

    assert all(name in listing.output for name in STRATEGIES)
    spaces = runner.invoke(app, ["spaces"], env={"COLUMNS": "300"})
    assert spaces.exit_code == 0 and "nas.spaces.ofa.OFASpace" in spaces.output
    from importlib.metadata import version

    assert runner.invoke(app, ["--version"]).output.strip() == f"nas-toolkit {version('nas-toolkit')}"
    assert "Usage: nas" in runner.invoke(app, ["-h"]).output
    assert "--strategy-option" in runner.invoke(app, ["run", "-h"], env={"COLUMNS": "300"}).output


def test_an_exhausted_space_suggests_no_resume_and_an_incomplete_export_note_is_said_once(tmp_path):
    tiny = tmp_path / "tiny.py"
    tiny.write_text("from nas.spaces import Space, Choice\nspace = Space(a=Choice([1, 2]))\n"
                    "objectives = {'v': 'max'}\ndef evaluate(arch):\n    return {'v': float(arch['a'])}\n")
    out = CliRunner().invoke(app, ["run", str(tiny), "--budget", "5", "--workdir", str(tmp_path / "wd")])
    assert out.exit_code == 0 and "stopped below its budget" in out.output
    assert "nas resume" not in out.output


def test_run_flags_for_timeout_max_time_enqueue_warm_start_and_fidelity(tmp_path):
    (tmp_path / "job.py").write_text(SCRIPT)
    runner = CliRunner()
    earlier = runner.invoke(app, ["run", str(tmp_path / "job.py"), "--budget", "5", "--seed", "1", "--workdir",
                                  str(tmp_path / "earlier")])
    assert earlier.exit_code == 0, earlier.output
    (tmp_path / "first.jsonl").write_text(json.dumps({"a": 30, "b": "y"}) + "\n")
    out = runner.invoke(app, ["run", str(tmp_path / "job.py"), "--budget", "6", "--seed", "2", "--workdir",
                              str(tmp_path / "wd"), "--executor", "processes", "--workers", "2", "--timeout", "60",
                              "--max-time", "600", "--enqueue", str(tmp_path / "first.jsonl"), "--warm-start",
                              str(tmp_path / "earlier"), "--fidelity", "2"])
    assert out.exit_code == 0, out.output
    result = nas.load(tmp_path / "wd")
    config = result.config
    assert config["timeout_s"] == 60 and config["max_time"] == 600 and config["fidelity"] == 2
    assert config["enqueue"] == [{"a": 30, "b": "y"}] and result.trials[0].arch == {"a": 30, "b": "y"}
    assert result.trials[0].metrics["score"] == 61.0  # evaluate(arch, budget=2): 30 * 2 + 1
    assert config["warm_start"]["workdir"] == str((tmp_path / "earlier").resolve())
    assert not {t.arch_id for t in result.trials} & {t.arch_id for t in nas.load(tmp_path / "earlier").trials}
    assert config["metadata"]["executor"] == {"name": "processes", "workers": 2}


def test_numpy_integer_seeds_and_seeds_past_optunas_range_are_seeds():
    """`for seed in np.arange(3)` gives numpy integers, which mean their ints; Optuna's samplers take seeds below
    2**32, so a larger one is folded in rather than blamed on sampler_options nobody gave."""
    import numpy as np

    kw = dict(objectives={"accuracy": "max"}, budget=3)
    as_numpy = nas.search(space(), Evaluate(), seed=np.int64(3), **kw)
    assert as_numpy.config["seed"] == 3 and type(as_numpy.config["seed"]) is int
    assert [t.arch for t in as_numpy.trials] == [t.arch for t in nas.search(space(), Evaluate(), seed=3, **kw).trials]
    folded = nas.search(space(), Evaluate(), strategy="tpe", seed=2**32 + 5, **kw)
    assert [t.arch for t in folded.trials] == [t.arch for t in nas.search(space(), Evaluate(), strategy="tpe",
                                                                          seed=5, **kw).trials]
