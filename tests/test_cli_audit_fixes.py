"""The command-line audit (run files, --fresh, resume, status): a refused run kept the workdir's model.json, a run
file's strategy drops the script's options, the processes executor's options in a run file, an [executor] table
without a name, --fresh on a folder holding no search, Ray specs of the wrong type, and pasteable commands. Each
test failed on the code before the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nas.cli import app
from nas.errors import ConfigError
from nas.store import Journal

# A ModelSpace script as docs/export.md writes one: it records its model spec at the top, into nas.run_workdir().
RECORDS = '''
import torch
from torch import nn

import nas
from nas.modelspec import record_model
from nas.spaces import Choice, ModelSpace


class Tiny(ModelSpace):
    def __init__(self):
        super().__init__(width=Choice([2, 4]))

    def build(self, arch):
        return nn.Linear(3, arch["width"])

    def example_input(self, arch, batch_size=1):
        return torch.zeros(batch_size, 3)


space = Tiny()
objectives = {"w": "max"}
record_model(nas.run_workdir(), space, notes={"tag": "first"})


def evaluate(arch):
    return {"w": float(arch["width"])}
'''

TOY = '''
from nas.spaces import Space, Choice, Integer

space = Space(a=Choice([1, 2, 3]), b=Integer(0, 9))
objectives = {"acc": "max", "cost": "min"}
strategy = "evolution"
strategy_options = {"population_size": 6}


def evaluate(arch):
    return {"acc": float(arch["a"] * arch["b"]), "cost": float(arch["a"] + arch["b"])}
'''


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def one_error_line(result) -> str:
    """Exactly one `error: ...` line on stderr, exit status 2, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def run(runner: CliRunner, *args: str):
    return runner.invoke(app, ["run", *map(str, args)], env={"COLUMNS": "400"})


# ------------------------------------------------------------------ 1. a refused run writes nothing
def test_a_refused_run_or_resume_leaves_the_model_spec_and_a_same_search_or_fresh_run_records_it(runner, tmp_path):
    script, wd = write(tmp_path / "tiny.py", RECORDS), tmp_path / "wd"
    assert run(runner, script, "--budget", "1", "--workdir", wd, "--seed", "0").exit_code == 0
    spec = (wd / "model.json").read_bytes()
    assert json.loads(spec)["notes"] == {"tag": "first"}
    write(script, RECORDS.replace("Choice([2, 4])", "Choice([2, 4, 8])").replace('"first"', '"edited"'))
    line = one_error_line(run(runner, script, "--budget", "2", "--workdir", wd, "--seed", "0"))
    assert "holds a different search: its space differs at field width" in line
    assert (wd / "model.json").read_bytes() == spec  # the refused run's record_model did not replace it
    line = one_error_line(runner.invoke(app, ["resume", str(wd), "--budget", "2"]))  # the script edited since
    assert "holds a different search" in line and (wd / "model.json").read_bytes() == spec
    assert not any(p.name.endswith(".tmp") for p in wd.iterdir())

    write(script, RECORDS.replace('"first"', '"same search"'))  # the same space: continued, its spec recorded
    assert run(runner, script, "--budget", "2", "--workdir", wd, "--seed", "0").exit_code == 0
    assert json.loads((wd / "model.json").read_text())["notes"] == {"tag": "same search"}
    assert len(Journal(wd).read().trials) == 2
    write(script, RECORDS.replace("Choice([2, 4])", "Choice([2, 4, 8])").replace('"first"', '"fresh"'))
    assert run(runner, script, "--budget", "1", "--workdir", wd, "--fresh").exit_code == 0
    assert json.loads((wd / "model.json").read_text())["notes"] == {"tag": "fresh"}
    assert json.loads(Path(f"{wd}.previous/model.json").read_text())["notes"] == {"tag": "same search"}
    assert sorted(p.name for p in wd.iterdir()) == ["journal.jsonl", "journal.lock", "model.json", "strategy.json"]


# ------------------------------------------------------------------ 2. a run file's strategy and the script's options
def test_a_run_file_strategy_drops_the_script_options_and_keeps_its_own(runner, tmp_path):
    write(tmp_path / "search.py", TOY)
    nsga = write(tmp_path / "nsga.yaml", "script: search.py\nstrategy: nsga2\nbudget: 4\nseed: 0\n")
    assert run(runner, nsga, "--workdir", tmp_path / "a").exit_code == 0
    config = Journal(tmp_path / "a").read().config
    assert (config["strategy"], config["strategy_options"]) == ("nsga2", {})  # not evolution's population_size
    rnd = write(tmp_path / "random.yaml", "script: search.py\nstrategy: random\nbudget: 3\nseed: 0\n")
    result = run(runner, rnd, "--workdir", tmp_path / "b")  # was: strategy 'random' has no option 'population_size'
    assert result.exit_code == 0, result.output
    own = write(tmp_path / "own.yaml", "script: search.py\nstrategy: nsga2\nstrategy_options: {population_size: 4}\n"
                                       "budget: 4\nseed: 0\n")
    assert run(runner, own, "--workdir", tmp_path / "c").exit_code == 0
    assert Journal(tmp_path / "c").read().config["strategy_options"] == {"population_size": 4}
    assert run(runner, own, "--workdir", tmp_path / "d", "--strategy", "random").exit_code == 0
    assert Journal(tmp_path / "d").read().config["strategy_options"] == {}
    same = write(tmp_path / "same.yaml", "script: search.py\nstrategy: evolution\nbudget: 4\nseed: 0\n")
    assert run(runner, same, "--workdir", tmp_path / "e").exit_code == 0  # the script's own strategy: its options
    assert Journal(tmp_path / "e").read().config["strategy_options"] == {"population_size": 6}


# ------------------------------------------------------------------ 3. the processes executor's options in a run file
def test_a_run_file_executor_table_takes_the_processes_options_and_flag_errors_name_the_flag(runner, tmp_path):
    write(tmp_path / "search.py", TOY)
    toml = write(tmp_path / "run.toml", 'script = "search.py"\nbudget = 2\nseed = 0\n[executor]\nname = "processes"\n'
                                        'workers = 1\nmax_retries = 1\nstart_method = "spawn"\nthreads = 1\n')
    result = run(runner, toml, "--workdir", tmp_path / "a")  # spawn: the script's functions travel by value
    assert result.exit_code == 0, result.output
    contents = Journal(tmp_path / "a").read()
    assert contents.config["metadata"]["executor"] == {"name": "processes", "workers": 1, "max_retries": 1,
                                                        "start_method": "spawn", "threads": 1}
    assert len(contents.trials) == 2 and all(t.worker.startswith("process-") for t in contents.trials)
    yaml = write(tmp_path / "run.yaml", "script: search.py\nbudget: 2\nexecutor: {name: processes, workers: 2}\n")
    line = one_error_line(run(runner, yaml, "--workdir", tmp_path / "b", "--address", "h:1"))
    assert "the executor 'processes' takes no --address (--address is for --executor ray or ray-tune)" in line
    line = one_error_line(run(runner, tmp_path / "search.py", "--executor", "processes", "--cpus-per-trial", "1",
                              "--workdir", tmp_path / "c"))
    assert "--executor processes takes no --cpus-per-trial" in line and "use --executor ray" not in line
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


# ------------------------------------------------------------------ 4. an executor table without a name
@pytest.mark.parametrize("table, named", [
    ('[executor]\nnam = "processes"\nworkers = 2\n', "executor: no name (it has 'nam', 'workers')"),
    ("[executor]\nworkers = 2\n", "executor: no name (it has 'workers')"),
    ('[executor]\nname = "processes"\nwrkers = 2\n', "executor 'processes' has no option 'wrkers'"),
    ('executor = "proc"\n', "executor: unknown name 'proc'"),
])
def test_an_executor_table_without_a_name_or_with_an_unknown_key_is_named(runner, tmp_path, table, named):
    write(tmp_path / "search.py", TOY)
    toml = write(tmp_path / "run.toml", f'script = "search.py"\nbudget = 2\n{table}')
    line = one_error_line(run(runner, toml, "--workdir", tmp_path / "wd"))
    assert line.startswith(f"error: {toml}: ") and named in line, line
    assert not (tmp_path / "wd").exists()  # refused before anything ran in-process


# ------------------------------------------------------------------ 5. --fresh on a folder holding no search
def test_fresh_moves_only_a_previous_search_and_never_the_script_folder_or_the_current_one(runner, tmp_path,
                                                                                        monkeypatch):
    proj = tmp_path / "proj"
    script = write(proj / "toy.py", TOY)
    write(proj / "notes.txt", "my notes")
    line = one_error_line(run(runner, script, "--budget", "2", "--workdir", proj, "--fresh"))
    assert "holds no previous search (no journal.jsonl)" in line
    assert sorted(p.name for p in proj.iterdir()) == ["notes.txt", "toy.py"] and not Path(f"{proj}.previous").exists()

    monkeypatch.chdir(proj)  # a search in the script's own folder: `--workdir .`
    assert run(runner, "toy.py", "--budget", "2", "--workdir", ".").exit_code == 0
    line = one_error_line(run(runner, "toy.py", "--budget", "2", "--workdir", ".", "--fresh"))
    assert "--fresh: . holds the script being run, so it is not moved" in line
    assert (proj / "toy.py").exists() and (proj / "journal.jsonl").exists()
    elsewhere = write(tmp_path / "other" / "toy.py", TOY)  # the current folder, though the script is elsewhere
    line = one_error_line(run(runner, elsewhere, "--budget", "2", "--workdir", ".", "--fresh"))
    assert "holds the current directory, so it is not moved" in line and (proj / "journal.jsonl").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(runner, elsewhere, "--budget", "2", "--workdir", empty, "--fresh").exit_code == 0  # nothing to move
    assert len(Journal(empty).read().trials) == 2 and not Path(f"{empty}.previous").exists()


# ------------------------------------------------------------------ 6. Ray specs of the wrong type
def test_ray_executor_specs_of_the_wrong_type_name_the_field_before_ray_starts(runner, tmp_path):
    pytest.importorskip("ray")
    from nas.executor_spec import make_executor

    for spec, named in [({"name": "ray", "workers": "2"}, "workers: expected a positive int, got '2'"),
                        ({"name": "ray", "cpus": "1"}, "cpus: expected a finite number >= 0, got '1'"),
                        ({"name": "ray", "batch_size": 1.5}, "batch_size: expected a positive int, got 1.5"),
                        ({"name": "ray-tune", "gpus": "a"}, "gpus: expected a finite number >= 0, got 'a'"),
                        ({"name": "ray-tune", "workers": 0}, "workers: expected a positive int, got 0")]:
        with pytest.raises(ConfigError, match="^" + named.replace("(", r"\(")):
            make_executor(spec)
    import ray

    assert not ray.is_initialized()
    write(tmp_path / "search.py", TOY)
    yaml = write(tmp_path / "run.yaml", 'script: search.py\nbudget: 2\nexecutor: {name: ray, workers: "2"}\n')
    assert "workers: expected a positive int, got '2'" in one_error_line(run(runner, yaml, "--workdir", tmp_path / "w"))


# ------------------------------------------------------------------ 7. commands to paste quote their paths
def test_printed_commands_quote_a_workdir_with_a_space(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = write(tmp_path / "toy.py", TOY)
    result = run(runner, script, "--budget", "2", "--workdir", "my runs/a", "--seed", "0")
    assert result.exit_code == 0, result.output
    assert "next: nas status 'my runs/a' | nas pareto 'my runs/a' --plot front.png | nas resume 'my runs/a' " \
           "--budget 4" in result.stdout
    status = runner.invoke(app, ["status", "my runs/a"], env={"COLUMNS": "400"}).stdout
    assert "to continue with a larger budget: nas resume 'my runs/a' --budget N" in status
    assert "(nas pareto 'my runs/a')" in status
    stop = write(tmp_path / "stop.py", TOY.replace("def evaluate(arch):", "def evaluate(arch):\n    raise "
                                                                             "KeyboardInterrupt"))
    result = run(runner, stop, "--budget", "2", "--workdir", "my runs/b")
    assert result.exit_code == 130 and "continue with: nas resume 'my runs/b'" in result.stderr, result.output
