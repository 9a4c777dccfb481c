"""Shared fixtures: the shared data folder (tests that need it skip when it is absent)."""

from __future__ import annotations

import pytest

from nas.tabular import data_dir


@pytest.fixture(scope="session")
def nbg_dir():
    path = data_dir() / "nas-bench-graph"
    if not (path / "cora.csv").exists():
        pytest.skip(f"NAS-Bench-Graph tables not found under {path} (../shared/data is absent)")
    return path


@pytest.fixture(scope="session")
def cora(nbg_dir):
    from nas.tabular import nas_bench_graph

    return nas_bench_graph("cora", nbg_dir)
