"""Executor edges (round 39): a Ray search refused for capacity or for an address where no cluster answers leaves the
workdir as it was, `timeout_s=inf` means no timeout wherever a timeout is taken, and a timed-out trial under local
worker processes is journaled on its worker's lane (`process-<pid>`)."""

from __future__ import annotations

import hashlib
import math
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import nas
from nas.errors import ConfigError
from nas.executor_spec import make_executor
from nas.executors import Job, LocalExecutor
from nas.processes import ProcessExecutor
from nas.spaces import Architecture, Choice, Space

SPACE = Space(a=Choice([1, 2, 3, 4]))


def score(arch: Architecture) -> dict[str, float]:
    return {"y": float(arch["a"])}


def naps(arch: Architecture) -> dict[str, float]:
    """0.6 s: past a 0.3 s timeout, well inside none."""
    time.sleep(0.6)
    return {"y": float(arch["a"])}


def stuck(arch: Architecture) -> dict[str, float]:
    """Quick for a=1, stuck for the others (a training that hangs)."""
    if arch["a"] != 1:
        time.sleep(30)
    return {"y": float(arch["a"])}


def _files(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256 of its bytes); {} when it does not exist."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# 2. timeout_s=inf means no timeout --------------------------------------------------------------------------------
def test_inf_means_no_timeout_for_every_executor_that_takes_a_timeout() -> None:
    """inf was refused by the executors that cannot stop an evaluation ("LocalExecutor cannot stop a running
    evaluation"), though it asks for no timeout at all."""
    assert isinstance(make_executor(LocalExecutor(), math.inf), LocalExecutor)
    assert isinstance(make_executor("local", math.inf), LocalExecutor)
    assert make_executor(ProcessExecutor(workers=1, threads=1, timeout_s=3), math.inf).timeout_s is None
    with pytest.raises(ConfigError, match="^timeout_s: LocalExecutor cannot stop a running evaluation"):
        make_executor("local", 5)  # a real timeout is still refused where it cannot be applied
    with pytest.raises(ConfigError, match=r"^timeout_s: expected a positive number of seconds \(inf or None"):
        LocalExecutor().set_timeout(-1)  # a bad one is named as such, not as one the executor cannot apply


def test_inf_means_no_timeout_for_the_ray_executors() -> None:
    pytest.importorskip("ray")
    from nas.ray.executor import RayExecutor
    from nas.ray.tune import RayTuneExecutor

    for ex in (RayExecutor(workers=1), RayTuneExecutor(workers=1)):
        assert make_executor(ex, math.inf) is ex
        with pytest.raises(ConfigError, match=f"^timeout_s: {type(ex).__name__} cannot stop"):
            make_executor(ex, 5)


def test_search_timeout_inf_lifts_an_executor_instances_own_timeout() -> None:
    """`nas.search(..., timeout_s=inf)` turned inf into None before building the executor, and None keeps an
    instance's own timeout: the 0.3 s cap stayed, timed the trial out, and was recorded in the header."""
    r = nas.search(SPACE, naps, {"y": "max"}, budget=1, seed=0, timeout_s=math.inf,
                   executor=ProcessExecutor(workers=1, threads=1, timeout_s=0.3))
    assert [t.status for t in r.trials] == ["ok"] and r.config.get("timeout_s") is None


# 3. a timed-out trial keeps its worker's lane ---------------------------------------------------------------------
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_timed_out_trial_is_journaled_on_its_workers_lane(method: str) -> None:
    """pebble's timeout does not say which worker it killed: the trial was journaled on worker "process", a lane of
    its own in plot_timeline, apart from the worker that ran it."""
    ex = ProcessExecutor(workers=1, threads=1, timeout_s=0.5, start_method=method)
    ex.check_evaluate(stuck)
    ex.start(stuck)
    try:
        ex.submit(Job(Architecture({"a": 1})))
        [quick] = ex.wait()
        ex.submit(Job(Architecture({"a": 2})))
        [timed_out] = ex.wait()
    finally:
        ex.close()
    assert quick.error is None and re.fullmatch(r"process-\d+", quick.worker)
    assert timed_out.error is not None and timed_out.error.startswith("timed out after 0.5 s")
    assert timed_out.worker == quick.worker  # the one worker ran (and was killed running) both


def test_timed_out_trials_of_several_workers_each_keep_their_own_lane(tmp_path: Path) -> None:
    r = nas.search(SPACE, stuck, {"y": "max"}, strategy="random", budget=4, seed=0, timeout_s=0.5,
                   executor={"name": "processes", "workers": 2, "threads": 1}, workdir=tmp_path / "wd")
    timed_out = [t for t in r.trials if t.status == "failed"]
    assert len(timed_out) == 3 and all(re.fullmatch(r"process-\d+", t.worker) for t in r.trials)
    assert len({t.worker for t in timed_out}) == 3  # each killed worker is replaced: a new pid, a new lane


# 4 and 1. Ray refusals leave the workdir as it was ----------------------------------------------------------------
@pytest.fixture
def ray_down() -> Iterator[object]:
    """Ray, not initialised in this process (a test that starts it shuts it down)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("Ray already running in this process")
    yield ray
    if ray.is_initialized():
        ray.shutdown()


@pytest.mark.parametrize("name", ["ray", "ray-tune"])
@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_address_where_no_cluster_answers_is_refused_at_once_naming_it(tmp_path: Path, ray_down: object,
                                                                           name: str, scheme: str) -> None:
    """ray.init retried a closed port for about 3 minutes, then raised SystemExit: 15 (after the journal header)."""
    address = f"{scheme}127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=rf"^address: no Ray cluster answered at {re.escape(address)} "):
        nas.search(SPACE, score, {"y": "max"}, budget=2, seed=0, workdir=tmp_path / "wd",
                   executor={"name": name, "address": address, "workers": 1})
    assert time.monotonic() - t0 < 60  # Ray's own retries took about 180 s; loaded CI machines need slack
    assert _files(tmp_path / "wd") == {} and not ray_down.is_initialized()  # type: ignore[attr-defined]


@pytest.mark.slow  # starts and stops a Ray instance of its own (about 18 s here)
def test_a_ray_pool_refused_for_capacity_shuts_down_the_ray_it_started_and_writes_nothing(tmp_path: Path,
                                                                                      ray_down: object) -> None:
    """The capacity check ran in `start`, after the journal header was written."""
    from nas.ray.executor import RayExecutor

    with pytest.raises(ConfigError, match=r"^workers=2 with cpus=1 and gpus=0 per actor: the Ray cluster holds 1"):
        nas.search(SPACE, score, {"y": "max"}, budget=2, seed=0, workdir=tmp_path / "wd",
                   executor=RayExecutor(workers=2, num_cpus=1, object_store_mb=75))
    assert _files(tmp_path / "wd") == {} and not ray_down.is_initialized()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def one_cpu_ray() -> Iterator[object]:
    """A local Ray instance of one CPU for the module's remaining tests, as a user's own `ray.init` would be."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("Ray already running in this process")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=1, num_gpus=0, include_dashboard=False, object_store_memory=75 * 2**20,
                 log_to_driver=False)
        yield ray
        ray.shutdown()


def test_ray_searches_refused_for_capacity_leave_a_resumed_workdir_as_it_was(tmp_path: Path,
                                                                            one_cpu_ray: object) -> None:
    from nas.ray.executor import RayExecutor
    from nas.ray.tune import RayTuneExecutor

    wd = tmp_path / "wd"
    nas.search(SPACE, score, {"y": "max"}, strategy="random", budget=2, seed=0, workdir=wd)
    before = _files(wd)
    for executor, message in [(RayExecutor(workers=2), "workers=2 with cpus=1 and gpus=0 per actor: the Ray "
                                                       "cluster holds 1"),
                              (RayTuneExecutor(gpus=1), r"workers \(default\) with cpus=1 and gpus=1 per trial: the "
                                                        "Ray cluster holds 0")]:
        with pytest.raises(ConfigError, match=f"^{message}"):
            nas.search(SPACE, score, {"y": "max"}, strategy="random", budget=4, seed=0, workdir=wd,
                       executor=executor)
        assert _files(wd) == before  # no resume record, no snapshot
        assert one_cpu_ray.is_initialized()  # type: ignore[attr-defined]  # the user's Ray is left as it was
    new = tmp_path / "new"
    with pytest.raises(ConfigError, match="per actor: the Ray cluster holds 1"):
        nas.search(SPACE, score, {"y": "max"}, budget=2, seed=0, workdir=new, executor=RayExecutor(workers=2))
    assert _files(new) == {}


def test_a_ray_pool_the_cluster_holds_still_runs_after_the_early_check(tmp_path: Path, one_cpu_ray: object) -> None:
    from nas.ray.executor import RayExecutor

    r = nas.search(SPACE, score, {"y": "max"}, strategy="random", budget=3, seed=0, workdir=tmp_path / "wd",
                   executor=RayExecutor())
    assert r.used == 3 and all(t.status == "ok" for t in r.trials)
    assert one_cpu_ray.is_initialized()  # type: ignore[attr-defined]
