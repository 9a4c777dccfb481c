"""`RayExecutor.poll()`: results that already arrived are collected without waiting (the search drains them on
Ctrl-C); a local one-CPU Ray instance, started and shut down by the executor."""

from __future__ import annotations

import pytest

from nas.executors import Job
from nas.spaces import Architecture

ray = pytest.importorskip("ray")


def double(arch):
    return {"y": 2.0 * arch["x"]}


@pytest.mark.skipif(ray.is_initialized(), reason="needs to start its own Ray instance")
def test_poll_collects_a_finished_call_without_waiting():
    from nas.ray.executor import RayExecutor

    ex = RayExecutor(workers=1, num_cpus=1)
    ex.start(double)
    try:
        assert ex.poll() == []  # nothing submitted: nothing to collect, no wait
        ex.submit(Job(Architecture({"x": 3})))
        while not ex._running:  # the actor is placed by the first wait; here by hand, without collecting
            ready, _ = ray.wait(list(ex._starting), num_returns=1)
            ex._idle.append(ex._starting.pop(ready[0]))
            ex._dispatch(flush=True)
        ray.wait(list(ex._running), num_returns=1)  # done, not collected (the moment Ctrl-C may come)
        done = ex.poll()
        assert [(c.arch["x"], c.metrics) for c in done] == [(3, {"y": 6.0})]
        assert ex.poll() == [] and ex.free_slots() == 1
    finally:
        ex.close()
