"""Executors and search controls at their edges: `sys.exit` in evaluate, a worker that cannot load evaluate or
start, a recorded timeout across executors, torch threads in workers, `snapshot_interval_s`, infinite limits, a run
file's enqueue entries, and which stop rule held."""

from __future__ import annotations

import functools
import logging
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError, NASError, check_limit
from nas.executors import run_job
from nas.processes import ProcessExecutor
from nas.pruning import Pruned, reporting
from nas.spaces import Choice, Space
from nas.stopping import AnyOf, NoImprovement, Target, rule_met
from nas.store import Journal

SPACE = Space(a=Choice(list(range(8))))
ONE = {"name": "processes", "workers": 1, "threads": 1}  # fork on Linux


def score(arch):
    return {"score": float(arch["a"])}


def exits_on_six(arch):
    if arch["a"] == 6:
        sys.exit(2)  # what argparse does on a bad option
    return {"score": float(arch["a"])}


def sleeps(arch):
    time.sleep(30)  # a stuck training
    return {"score": float(arch["a"])}


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str):
    """Import `source` as module `name` from tmp_path (so spawned workers import it by name, as a user's file)."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return __import__(name)


# 1. sys.exit in evaluate --------------------------------------------------------------------------------------

def test_run_job_turns_sys_exit_into_an_error_and_lets_interrupts_through():
    assert run_job(exits_on_six, {"a": 6}) == (None, "SystemExit: evaluate called sys.exit(2)")
    assert run_job(lambda arch: sys.exit(), {"a": 1}) == (None, "SystemExit: evaluate called sys.exit()")
    assert run_job(lambda arch: sys.exit("bad option"), {"a": 1})[1] == \
        "SystemExit: evaluate called sys.exit('bad option')"

    def interrupted(arch):
        raise KeyboardInterrupt

    def pruned(arch):
        raise Pruned("stopped by the pruner")

    with pytest.raises(KeyboardInterrupt):
        run_job(interrupted, {"a": 1})
    with reporting(lambda metrics, step: None, judged=True), pytest.raises(Pruned):  # under a pruner: where it stopped
        run_job(pruned, {"a": 1})
    assert "stopped itself as pruned, but this search has no pruner" in run_job(pruned, {"a": 1})[1]


@pytest.mark.parametrize("executor", ["local", ONE], ids=["local", "processes"])
def test_sys_exit_in_evaluate_fails_one_trial_and_the_search_spends_its_budget(tmp_path, executor):
    wd = tmp_path / "wd"
    r = nas.search(SPACE, exits_on_six, {"score": "max"}, strategy="random", budget=8, seed=0, workdir=wd,
                   executor=executor)
    failed = [t for t in r.trials if t.status == "failed"]
    assert r.used == 8 and r.stop_reason == "budget" and len(nas.load(wd).trials) == 8
    assert [(t.arch["a"], t.error) for t in failed] == [(6, "SystemExit: evaluate called sys.exit(2)")]
    again = nas.search(SPACE, exits_on_six, {"score": "max"}, strategy="random", budget=8, seed=0, workdir=wd,
                       executor=executor)  # a resume does not run it again
    assert len(again.trials) == 8 and again.stop_reason == "budget"


def test_ctrl_c_in_evaluate_still_stops_the_search(tmp_path):
    def interrupted(arch):
        if arch["a"] == 6:
            raise KeyboardInterrupt
        return {"score": float(arch["a"])}

    with pytest.raises(KeyboardInterrupt):
        nas.search(SPACE, interrupted, {"score": "max"}, strategy="random", budget=8, seed=0, workdir=tmp_path)
    assert all(t.arch["a"] != 6 for t in nas.load(tmp_path).trials)  # left for the resume, not failed


# 2. a worker that cannot load evaluate or start ---------------------------------------------------------------

@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_an_evaluate_that_cannot_be_pickled_is_refused_before_the_journal_is_written(tmp_path, method):
    lock = threading.Lock()

    def locked(arch):
        with lock:
            return {"score": float(arch["a"])}

    with pytest.raises(ConfigError, match=rf"evaluate cannot be sent to worker processes \(start_method='{method}'\)"
                                          r": TypeError: cannot pickle '_thread.lock' object"):
        nas.search(SPACE, locked, {"score": "max"}, budget=2, seed=0, workdir=tmp_path / "wd",
                   executor={**ONE, "start_method": method})
    assert not Journal(tmp_path / "wd").exists()


UNLOADABLE = """
    import os

    PARENT = os.getpid()


    def _load(pid):
        if os.getpid() != pid:
            raise RuntimeError("resource cannot be loaded in another process")
        return Resource()


    class Resource:  # a handle that only loads in the process that made it
        def __reduce__(self):
            return _load, (PARENT,)


    def evaluate(arch, res=None):
        return {"score": float(arch["a"])}
"""


def test_an_evaluate_a_worker_cannot_load_stops_the_search_and_journals_no_trial(tmp_path, monkeypatch):
    mod = _module(tmp_path, monkeypatch, "nas_test_unloadable", UNLOADABLE)
    wd, kw = tmp_path / "wd", dict(strategy="random", budget=4, seed=0)
    with pytest.raises(ConfigError, match=r"evaluate cannot be loaded in a worker process \(start_method='spawn'\): "
                                          "RuntimeError: resource cannot be loaded in another process"):
        nas.search(SPACE, functools.partial(mod.evaluate, res=mod.Resource()), {"score": "max"}, workdir=wd,
                   executor={**ONE, "start_method": "spawn"}, **kw)
    assert nas.load(wd).trials == []  # the architecture it was given never ran: not journaled as failed
    fixed = nas.search(SPACE, mod.evaluate, {"score": "max"}, workdir=wd, **kw)
    assert [t.status for t in fixed.trials] == ["ok"] * 4
    assert [t.arch_id for t in fixed.trials] == \
        [t.arch_id for t in nas.search(SPACE, mod.evaluate, {"score": "max"}, **kw).trials]


DIES = """
    import multiprocessing
    import os

    if multiprocessing.parent_process() is not None:  # a worker cannot start: it dies importing this file
        os._exit(3)


    def evaluate(arch):
        return {"score": float(arch["a"])}
"""


def test_a_worker_that_cannot_start_stops_the_search_with_an_error_naming_it(tmp_path, monkeypatch):
    mod = _module(tmp_path, monkeypatch, "nas_test_dies_in_worker", DIES)
    wd = tmp_path / "wd"
    with pytest.raises(NASError, match="worker processes stopped working .*All workers expired.*guard the search"):
        nas.search(SPACE, mod.evaluate, {"score": "max"}, strategy="random", budget=3, seed=0, workdir=wd,
                   executor={**ONE, "start_method": "spawn"})
    assert nas.load(wd).trials == []


# 3. the recorded timeout survives a resume that cannot apply it ------------------------------------------------

def test_a_resume_in_process_keeps_the_recorded_timeout_for_the_next_resume_on_processes(tmp_path, caplog):
    wd, kw = tmp_path / "wd", dict(strategy="random", seed=0, workdir=tmp_path / "wd")
    nas.search(SPACE, score, {"score": "max"}, budget=2, executor=ONE, timeout_s=1, **kw)
    with caplog.at_level(logging.WARNING, logger="nas"):
        local = nas.search(SPACE, score, {"score": "max"}, budget=3, **kw)
    assert "the recorded timeout_s=1 is not applied in this run" in caplog.text and "stays recorded" in caplog.text
    assert local.config["timeout_s"] == 1 and nas.load(wd).config["timeout_s"] == 1
    later = nas.search(SPACE, sleeps, {"score": "max"}, budget=4, executor=ONE, **kw)
    assert later.trials[-1].error.startswith("timed out after 1 s")  # applied again, without being given


# 4. torch threads in worker processes ----------------------------------------------------------------------------

THREADS = """
    import sys

    import nas
    from nas.spaces import Choice, Space

    space = Space(a=Choice([1, 2, 3]))


    def evaluate(arch):
        import torch  # imported by evaluate itself, not by the driver
        return {"score": float(arch["a"]), "threads": float(torch.get_num_threads())}


    if __name__ == "__main__":
        for method in ("fork", "spawn"):
            r = nas.search(space, evaluate, {"score": "max"}, strategy="random", budget=2, seed=0,
                           executor={"name": "processes", "workers": 1, "threads": 3, "start_method": method})
            print(method, "torch" in sys.modules, sorted({t.metrics["threads"] for t in r.trials}))
"""


def test_threads_applies_to_torch_imported_by_evaluate_under_fork_and_spawn(tmp_path):
    script = tmp_path / "threads.py"
    script.write_text(textwrap.dedent(THREADS))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the driver's setting: workers are told 3 all the same
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["fork False [3.0]", "spawn False [3.0]"], out.stdout


# 5. snapshot_interval_s ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["2", -1, math.nan, math.inf, None, True])
def test_a_bad_snapshot_interval_is_refused_naming_it_before_anything_runs(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"snapshot_interval_s: expected a finite number >= 0 \(seconds\)"):
        nas.search(SPACE, score, {"score": "max"}, budget=15, seed=0, workdir=tmp_path / "wd",
                   snapshot_interval_s=bad)
    assert not (tmp_path / "wd").exists()


def test_a_zero_snapshot_interval_is_taken(tmp_path):
    r = nas.search(SPACE, score, {"score": "max"}, budget=3, seed=0, workdir=tmp_path, snapshot_interval_s=0)
    assert r.used == 3


# 6. infinite limits ----------------------------------------------------------------------------------------------

def test_infinite_limits_mean_no_limit_and_lift_recorded_ones(tmp_path):
    r = nas.search(SPACE, score, {"score": "max"}, budget=2, seed=0, max_time=math.inf)
    assert r.used == 2 and r.config.get("max_time") is None
    r = nas.search(SPACE, score, {"score": "max"}, budget=2, seed=0, timeout_s=math.inf)  # in-process: no timeout
    assert r.used == 2 and r.config.get("timeout_s") is None
    assert ProcessExecutor(workers=1, threads=1, timeout_s=math.inf).timeout_s is None
    kw = dict(strategy="random", seed=0, workdir=tmp_path / "wd")
    first = nas.search(SPACE, score, {"score": "max"}, budget=2, max_time=3600, executor=ONE, timeout_s=60, **kw)
    assert (first.config["max_time"], first.config["timeout_s"]) == (3600, 60)
    lifted = nas.search(SPACE, score, {"score": "max"}, budget=3, max_time=math.inf, timeout_s=math.inf, **kw)
    assert lifted.used == 3 and "max_time" not in lifted.config and "timeout_s" not in lifted.config
    recorded = nas.load(tmp_path / "wd").config
    assert recorded.get("max_time") is None and recorded.get("timeout_s") is None
    after = nas.search(SPACE, score, {"score": "max"}, budget=4, **kw)  # nothing recorded to inherit any more
    assert after.used == 4 and after.config.get("max_time") is None


@pytest.mark.parametrize("name", ["max_time", "timeout_s"])
@pytest.mark.parametrize("bad", [-math.inf, math.nan, 0, "60"])
def test_a_bad_limit_is_refused_naming_it(name, bad):
    with pytest.raises(ConfigError, match=rf"{name}: expected a positive number of seconds \(inf or None for no "
                                          "limit\\)"):
        nas.search(SPACE, score, {"score": "max"}, budget=2, seed=0, executor=ONE, **{name: bad})
    assert check_limit(None, name) is None and check_limit(math.inf, name) is None and check_limit(5, name) == 5


# 7. a run file's enqueue entries ----------------------------------------------------------------------------------

def test_a_run_file_enqueue_entry_that_is_not_a_table_is_one_error_line(tmp_path):
    (tmp_path / "job.py").write_text("from nas.spaces import Space, Choice\nspace = Space(a=Choice([1, 2, 3]))\n"
                                     "def evaluate(arch):\n    return {'score': float(arch['a'])}\n"
                                     "objectives = {'score': 'max'}\nbudget = 3\nseed = 0\n")
    (tmp_path / "job.toml").write_text('script = "job.py"\nenqueue = [{ a = 2 }, 1]\n')
    result = CliRunner().invoke(app, ["run", str(tmp_path / "job.toml"), "--workdir", str(tmp_path / "wd")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "enqueue[1]: expected an architecture" in lines[0]
    (tmp_path / "job.toml").write_text('script = "job.py"\nenqueue = [{ a = 2 }]\nmax_time = inf\n')
    ok = CliRunner().invoke(app, ["run", str(tmp_path / "job.toml"), "--workdir", str(tmp_path / "wd")])
    assert ok.exit_code == 0, ok.output
    assert nas.load(tmp_path / "wd").trials[0].arch == {"a": 2}


# 8. the stop rule that held ---------------------------------------------------------------------------------------

def test_any_of_names_the_rule_that_held_in_the_stop_reason(tmp_path):
    space = Space(a=Choice(list(range(10))), b=Choice(list(range(10))))

    def total(arch):
        return {"score": float(arch["a"] + arch["b"])}

    rule = AnyOf((NoImprovement(patience=30), Target("score >= 0")))  # the target holds at once
    r = nas.search(space, total, {"score": "max"}, budget=50, seed=0, workdir=tmp_path, stop_when=rule)
    assert r.used == 1 and r.stop_reason == "stop_when: target reached: score >= 0"
    assert nas.load(tmp_path).stop_reason == r.stop_reason and rule_met(r.stop_reason) == "target reached: score >= 0"

    def enough(result):  # a callable rule: named by its __name__
        return result.used >= 2

    nested = AnyOf((NoImprovement(patience=30), AnyOf((enough, Target("score >= 100")))))
    r = nas.search(space, total, {"score": "max"}, budget=50, seed=0, stop_when=nested)
    assert r.used == 2 and r.stop_reason == "stop_when: enough"
    assert str(nested) == "no improvement in the last 30 evaluations or enough or target reached: score >= 100"
    both = AnyOf((NoImprovement(patience=30), AnyOf((enough, Target("score >= 0")))))
    r = nas.search(space, total, {"score": "max"}, budget=50, seed=0, stop_when=both, enqueue=[{"a": 0, "b": 0}])
    assert r.used == 1 and r.stop_reason == "stop_when: target reached: score >= 0"
    both = AnyOf((Target("score >= 0"), NoImprovement(patience=30), enough))
    r = nas.search(space, lambda arch: {"score": -1.0 if arch["a"] == 0 else 1.0}, {"score": "max"}, budget=50,
                   seed=0, stop_when=both, enqueue=[{"a": 0, "b": 0}, {"a": 1, "b": 0}])
    assert r.used == 2 and r.stop_reason == "stop_when: target reached: score >= 0; enough"  # every rule that held


def test_a_misnamed_target_inside_a_nested_any_of_is_refused():
    with pytest.raises(ConfigError, match="stop_when: Target names 'acc'"):
        nas.search(SPACE, score, {"score": "max"}, budget=2, stop_when=AnyOf((NoImprovement(3),
                                                                                 AnyOf((Target("acc >= 1"),)))))


# minor: warm_start and progress ----------------------------------------------------------------------------------

def test_a_warm_start_that_is_not_a_path_is_refused_naming_it():
    with pytest.raises(ConfigError, match="warm_start: expected the workdir of an earlier search"):
        nas.search(SPACE, score, {"score": "max"}, budget=2, seed=0, warm_start=3)


def test_progress_false_means_no_progress():
    assert nas.search(SPACE, score, {"score": "max"}, budget=2, seed=0, progress=False).used == 2


def test_workers_below_one_are_refused_where_the_flags_are_read():
    """`nas resume DIR --workers 0` of a search that used its budget only printed 'has used its budget'."""
    from nas.executor_spec import executor_spec

    assert executor_spec("processes", workers=2) == {"name": "processes", "workers": 2}
    with pytest.raises(ConfigError, match="--workers: expected a number of workers >= 1, got 0"):
        executor_spec(None, workers=0, base={"name": "processes"})


def test_an_enqueued_architecture_the_warm_start_holds_is_named_in_a_warning(tmp_path, caplog):
    """It was skipped silently: the warm start's result is used and the enqueue never evaluated."""
    space = Space(a=Choice([1, 2, 3]), b=Choice([1, 2, 3]))

    def score(arch):
        return {"s": float(arch["a"] * arch["b"])}

    first = nas.search(space, score, {"s": "max"}, budget=3, seed=0, workdir=tmp_path / "a", progress=False)
    again = first.trials[0].arch
    result = nas.search(space, score, {"s": "max"}, budget=2, seed=1, workdir=tmp_path / "b", progress=False,
                        warm_start=tmp_path / "a", enqueue=[again])
    assert f"enqueue[0]: the warm start {tmp_path / 'a'} already holds a result for it" in caplog.text
    assert again not in [t.arch for t in result.trials]
