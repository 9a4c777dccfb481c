"""Executor edge cases from the executors exploratory report (round 36): an instance's timeout kept, Ray's checks of
`evaluate` and of its options, the simulated clock's `workers`, and programs started by `evaluate` killed with their
worker."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nas.errors import ConfigError
from nas.executor_spec import make_executor
from nas.executors import Job, SimulatedClockExecutor
from nas.processes import ProcessExecutor
from nas.spaces import Architecture


def test_instance_timeout_kept_when_search_gives_none() -> None:
    runner = make_executor(ProcessExecutor(workers=1, timeout_s=3), None)
    assert runner.timeout_s == 3  # was wiped to None: no cap, without a word
    assert make_executor(ProcessExecutor(workers=1, timeout_s=3), 5).timeout_s == 5  # the search's own wins


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True, math.nan, 2.0])
def test_simulated_clock_workers_checked(workers: object) -> None:
    with pytest.raises(ConfigError, match="workers: expected a positive int"):
        SimulatedClockExecutor(workers=workers)  # type: ignore[arg-type]


@pytest.mark.parametrize("options, field", [
    ({"num_cpus": -3}, "num_cpus"), ({"num_cpus": 0}, "num_cpus"), ({"num_cpus": 1.5}, "num_cpus"),
    ({"num_cpus": True}, "num_cpus"), ({"object_store_mb": "200"}, "object_store_mb"),
    ({"object_store_mb": 50}, "object_store_mb"), ({"object_store_mb": 100.0}, "object_store_mb"),
    ({"address": 5}, "address"),
])
def test_ray_options_checked_when_built(options: dict[str, object], field: str) -> None:
    pytest.importorskip("ray")
    from nas.ray.executor import RayExecutor

    with pytest.raises(ConfigError, match=f"^{field}: expected"):
        RayExecutor(workers=1, **options)  # type: ignore[arg-type]


def test_ray_options_accepted() -> None:
    pytest.importorskip("ray")
    from nas.ray.executor import RayExecutor

    ex = RayExecutor(workers=1, num_cpus=2, object_store_mb=75, address="auto")
    assert ex.options.to_dict() == {"address": "auto", "num_cpus": 2, "num_gpus": None, "object_store_mb": 75}


def test_ray_refuses_unpicklable_evaluate_before_starting() -> None:
    ray = pytest.importorskip("ray")
    from nas.ray.executor import RayExecutor

    lock = threading.Lock()

    def evaluate(arch: Architecture) -> dict[str, float]:
        with lock:
            return {"acc": 1.0}

    with pytest.raises(ConfigError, match="evaluate cannot be sent to Ray workers: TypeError: cannot pickle"):
        RayExecutor(workers=1).check_evaluate(evaluate)
    assert not ray.is_initialized()


@pytest.mark.slow
def test_ray_start_failure_shuts_down_its_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    from nas.ray.executor import RayExecutor

    if ray.is_initialized():
        pytest.skip("Ray already running in this process")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected failure after connect")

    ex = RayExecutor(workers=1, num_cpus=1)
    monkeypatch.setattr("nas.ray.executor.check_capacity", broken)  # any failure, not only the capacity ConfigError
    try:
        with pytest.raises(RuntimeError, match="injected"):
            ex.start(_acc)
        assert not ray.is_initialized()  # was left running, and reused (and left) by every later search
    finally:
        if ray.is_initialized():
            ray.shutdown()


def _acc(arch: Architecture) -> dict[str, float]:
    return {"acc": 1.0}


def _gone(pid: int) -> bool:
    """No such process, or a zombie (dead, waiting for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _until(condition: object, limit_s: float = 20.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_programs_started_by_evaluate_die_with_their_worker(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"

    def evaluate(arch: Architecture) -> dict[str, float]:
        child = subprocess.Popen(["sleep", "60"])  # a training program that outlives its worker
        marker.write_text(str(child.pid))
        child.wait()
        return {"acc": 1.0}

    ex = ProcessExecutor(workers=1, start_method="fork", threads=1)
    ex.start(evaluate)
    try:
        ex.submit(Job(Architecture({"a": 0})))
        assert _until(lambda: marker.exists() and marker.read_text()), "evaluate never started its program"
        pid = int(marker.read_text())
        assert not _gone(pid)
    finally:
        ex.close()
    try:
        assert _until(lambda: _gone(pid)), "the program evaluate started outlived its stopped worker"
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_to_a_forked_helper_spares_the_worker() -> None:
    def evaluate(arch: Architecture) -> dict[str, float]:
        pid = os.fork()  # a helper forked from the worker keeps the worker's Python SIGTERM handler
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        os.kill(pid, signal.SIGTERM)  # had it stopped the worker's group, this worker would die here
        if not _until(lambda: os.waitpid(pid, os.WNOHANG)[0] == pid, 2.0):
            os.kill(pid, signal.SIGKILL)  # pebble's inherited exit handler can hang in a bare fork (as before)
            os.waitpid(pid, 0)
        return {"acc": 1.0}

    ex = ProcessExecutor(workers=1, start_method="fork", threads=1, max_retries=0)
    ex.start(evaluate)
    try:
        ex.submit(Job(Architecture({"a": 0})))
        done = ex.wait()
    finally:
        ex.close()
    assert [(c.metrics, c.error) for c in done] == [({"acc": 1.0}, None)]
