"""Tabular benchmarks and the simulated clock, from the round-37 exploratory reports: a reused
SimulatedClockExecutor starts clean, `max_time` counts simulated seconds on it, a resume with another worker count is
refused, digit separators and text in table cells are named, numpy seeds and bad durations are handled; a
FidelitySpace search's `fidelity=` refusal says why."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

import nas
from nas.errors import ConfigError
from nas.spaces import Choice, Integer, Repeat, Space
from nas.tabular import nas_bench_graph, recorded_table


def toy_space() -> Space:
    return Space(depth=Choice([1, 2, 3]), blocks=Repeat("depth", k=Choice([3, 5, 7]), w=Integer(1, 4)),
                 act=Choice(["relu", "gelu"]))


def toy_eval(arch):
    acc = sum(b["k"] * b["w"] for b in arch["blocks"]) + (arch["act"] == "gelu")
    lat = sum(b["k"] + 2 * b["w"] for b in arch["blocks"])
    return {"accuracy": float(acc), "latency_ms": float(lat)}


class InterruptOnCall:
    """Raises KeyboardInterrupt (Ctrl-C) on its `at`-th call, once; otherwise calls `fn`."""

    def __init__(self, fn, at: int):
        self.fn, self.at, self.calls = fn, at, 0

    def __call__(self, arch):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.fn(arch)


def key(result):
    return [(t.arch_id, t.worker, t.started, t.finished) for t in result.trials]


def sim_search(ev=toy_eval, executor=None, workers=3, **kw):
    kw = {"strategy": "evolution", "budget": 24, "seed": 1, "strategy_options": {"population_size": 6}, **kw}
    ex = executor if executor is not None else nas.SimulatedClockExecutor(workers=workers, duration="latency_ms")
    return nas.search(toy_space(), ev, {"accuracy": "max"}, executor=ex, **kw)


# 1. a reused executor instance starts from a clean state


def test_a_reused_simulated_executor_starts_each_search_at_clock_zero():
    """The second search on one instance started at the first one's final clock (its times the sum of both)."""
    ex = nas.SimulatedClockExecutor(workers=2, duration="latency_ms")
    first, second = sim_search(executor=ex), sim_search(executor=ex)
    fresh = sim_search(workers=2)
    assert key(second) == key(first) == key(fresh)
    assert min(t.started for t in second.trials) == 0.0


def test_rerunning_a_search_after_ctrl_c_with_the_same_executor_resumes_exactly(tmp_path):
    """The interrupted run's jobs stayed queued in the instance: the rerun got one back from wait() (KeyError)."""
    whole = sim_search(workdir=tmp_path / "whole", snapshot_interval_s=0)
    ex = nas.SimulatedClockExecutor(workers=3, duration="latency_ms")
    with pytest.raises(KeyboardInterrupt):
        sim_search(InterruptOnCall(toy_eval, 11), executor=ex, workdir=tmp_path / "cut", snapshot_interval_s=0)
    assert ex._running  # the interrupted jobs are still held: the next start() must drop them
    resumed = sim_search(executor=ex, workdir=tmp_path / "cut", snapshot_interval_s=0)
    assert key(resumed) == key(whole)


# 2. max_time counts simulated seconds on the simulated clock


def test_max_time_counts_simulated_seconds_on_the_simulated_clock():
    """max_time counted wall-clock seconds: 25 s let all 40 ten-second trials run; the count depended on the host."""
    def run(max_time):
        ex = nas.SimulatedClockExecutor(workers=2, duration=10)
        return nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=40, seed=0,
                          executor=ex, max_time=max_time)

    r = run(25)
    # submitted at simulated 0, 10 and 20 (two workers each); at 30 nothing new starts, what runs finishes
    assert r.stop_reason == "max_time" and len(r.trials) == 6
    assert sorted(t.started for t in r.trials) == [0, 0, 10, 10, 20, 20]
    assert run(1e9).stop_reason == "budget"


def test_a_time_limited_simulated_search_resumes_as_the_uninterrupted_one(tmp_path):
    """max_time counts from the search's simulated start, and a resume continues the clock: a search interrupted
    and resumed stops where the uninterrupted one did; resumed again it starts nothing more."""
    kw = {"max_time": 60.0, "budget": 40, "snapshot_interval_s": 0, "snapshot_every": 3}
    whole = sim_search(workdir=tmp_path / "whole", **kw)
    assert whole.stop_reason == "max_time" and 6 < len(whole.trials) < 40
    assert all(t.started < 60 for t in whole.trials)
    with pytest.raises(KeyboardInterrupt):
        sim_search(InterruptOnCall(toy_eval, 7), workdir=tmp_path / "cut", **kw)
    resumed = sim_search(workdir=tmp_path / "cut", **kw)
    assert key(resumed) == key(whole) and resumed.stop_reason == "max_time"
    again = sim_search(workdir=tmp_path / "cut", **kw)
    assert key(again) == key(whole) and again.stop_reason == "max_time"


# 3. a resume with another worker count is refused


def test_a_simulated_resume_with_another_worker_count_is_refused(tmp_path):
    """Resumed on 4 workers, a 2-worker journal was replayed with one worker running two trials at once."""
    whole = sim_search(workers=2, workdir=tmp_path / "whole", snapshot_interval_s=0)
    with pytest.raises(KeyboardInterrupt):
        sim_search(InterruptOnCall(toy_eval, 12), workers=2, workdir=tmp_path / "cut", snapshot_interval_s=0)
    journal = (tmp_path / "cut" / "journal.jsonl").read_text()
    for workers in (4, 1):
        with pytest.raises(ConfigError, match=rf"^workers: .* 2 workers.* this run has {workers}"):
            sim_search(workers=workers, workdir=tmp_path / "cut", snapshot_interval_s=0)
    assert (tmp_path / "cut" / "journal.jsonl").read_text() == journal  # refused before anything was written
    assert key(sim_search(workers=2, workdir=tmp_path / "cut", snapshot_interval_s=0)) == key(whole)


def test_a_journal_without_the_worker_record_is_checked_by_its_lanes(tmp_path):
    """A journal written before the count was recorded: a lane beyond this run's workers proves more workers."""
    sim_search(workers=3, workdir=tmp_path, budget=12)
    path = tmp_path / "journal.jsonl"
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["config"].pop("simulated_clock") == {"workers": 3}
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    with pytest.raises(ConfigError, match=r"^workers: .*sim-2.* this run has 2"):
        sim_search(workers=2, workdir=tmp_path, budget=20)
    assert len(sim_search(workers=3, workdir=tmp_path, budget=20).trials) == 20


# 4, 5. table cells


def write_table(path, rows, columns=("arch_id", "seed", "valid_acc", "arch")):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for row in rows:
            w.writerow(row)
    return path


BASE = Space({f"x{i}": Choice(list(range(4)), ordered=False) for i in range(3)})
RECORDED = [BASE.sample(np.random.default_rng([5, i])) for i in range(4)]


def table_rows():
    return [{"arch_id": a.id, "seed": s, "valid_acc": 0.5 + 0.01 * i + 0.001 * s, "arch": json.dumps(a.to_dict())}
            for i, a in enumerate(RECORDED) for s in (0, 1)]


NBG_HEADER = "link,op1,op2,op3,op4,canonical_id,valid_acc,test_acc,latency_s,params_m"
NBG_ROWS = ["0-0-0-0,gat,gat,gat,gat,0,0.7733,0.797,0.0059,1.7367",
            "0-0-0-0,gat,gat,gat,gcn,1,0.7726,0.7966,0.0056,1.7361",
            "0-0-0-0,gat,gat,gcn,gcn,2,0.7801,0.7912,0.0051,1.5002"]


def write_nbg(folder, rows):
    (folder / "nas-bench-graph").mkdir(parents=True)
    (folder / "nas-bench-graph" / "cora.csv").write_text("\n".join([NBG_HEADER, *rows]) + "\n")
    return folder / "nas-bench-graph"


def test_a_cell_with_a_digit_separator_is_not_a_number(tmp_path):
    """float('0_9') is 9.0: the table's optimum became an accuracy of 9."""
    rows = NBG_ROWS[:1] + [NBG_ROWS[1].replace("0.7726", "0_9")] + NBG_ROWS[2:]
    with pytest.raises(ConfigError, match=r"cora\.csv: line 3, column 'valid_acc': '0_9' is not a number"):
        nas_bench_graph("cora", write_nbg(tmp_path / "nbg", rows))
    rows = table_rows()
    rows[2]["valid_acc"] = "0_9"
    with pytest.raises(ConfigError, match=r"t\.csv: line 4, column 'valid_acc': '0_9' is not a number"):
        recorded_table(write_table(tmp_path / "t.csv", rows), BASE)
    rows = table_rows()
    rows[2]["seed"] = "1_0"  # int("1_0") is 10
    with pytest.raises(ConfigError, match=r"s\.csv: line 4, column 'seed': expected the training seed, an int, "
                                          r"got '1_0'"):
        recorded_table(write_table(tmp_path / "s.csv", rows), BASE)


def test_a_text_cell_in_nas_bench_graph_does_not_ask_to_remove_a_text_column(tmp_path):
    """NAS-Bench-Graph reads only its four metrics (link, op1..op4, canonical_id are text by design)."""
    rows = NBG_ROWS[:2] + [NBG_ROWS[2].replace("0.7801", "n/a")]
    with pytest.raises(ConfigError, match=r"cora\.csv: line 4, column 'valid_acc': 'n/a' is not a number") as e:
        nas_bench_graph("cora", write_nbg(tmp_path / "nbg", rows))
    assert "remove a text column" not in str(e.value) and "latency_s" in str(e.value)
    with pytest.raises(ConfigError, match="remove a text column"):  # a recorded table's extra column: still said
        rows = [{**r, "optimizer": "adam"} for r in table_rows()]
        recorded_table(write_table(tmp_path / "t.csv", rows, ("arch_id", "seed", "valid_acc", "optimizer", "arch")),
                       BASE)


# 6. duration


@pytest.mark.parametrize("duration", [None, True, [1.0], float("inf")])
def test_a_duration_that_is_not_seconds_a_metric_or_a_function_is_named(duration):
    with pytest.raises(ConfigError, match=re.escape("SimulatedClockExecutor: duration must be a finite number of "
                                                    f"seconds >= 0, a metric name or a function, got {duration!r}")):
        nas.SimulatedClockExecutor(workers=2, duration=duration)


@pytest.mark.parametrize("duration", [np.int64(3), np.float32(3.0), 3])
def test_a_numpy_duration_is_taken_as_seconds(duration):
    r = nas.search(toy_space(), toy_eval, {"accuracy": "max"}, strategy="random", budget=4, seed=0,
                   executor=nas.SimulatedClockExecutor(workers=2, duration=duration))
    assert max(t.finished for t in r.trials) == 6.0
    assert all(type(t.finished) is float for t in r.trials)


# 7. numpy seeds


def test_a_numpy_training_seed_selects_that_seed(tmp_path):
    """seed=np.int64(0) was "not a training seed (seeds: [0, 1])"."""
    path = write_table(tmp_path / "t.csv", table_rows())
    for s in np.unique([0, 1]):
        assert recorded_table(path, BASE, seed=s).rows == recorded_table(path, BASE, seed=int(s)).rows
    with pytest.raises(ConfigError, match=r"^seed: 7 is not a training seed"):
        recorded_table(path, BASE, seed=np.int64(7))


# compose finding 2: fidelity= on a FidelitySpace search


def test_fidelity_on_a_fidelity_space_search_says_the_level_comes_with_the_architecture():
    """The refusal named the evaluators 'run', 'run' and asked for a `budget` parameter the function had."""
    from nas.strategies.multifidelity import FidelitySpace

    fspace = FidelitySpace(toy_space(), [1, 3, 9])

    def train(arch, budget=1):
        return toy_eval(arch)

    with pytest.raises(ConfigError, match=r"^fidelity=5: .*FidelitySpace") as e:
        nas.search(fspace, [fspace.evaluator(train)], {"accuracy": "max"}, strategy="hyperband", budget=5,
                   fidelity=5)
    assert "'run'" not in str(e.value) and "add a `budget` parameter" not in str(e.value)
