"""Shared fixtures: torch thread settings and the `nas` loggers' levels (restored after every test) and the shared
data folder (tests that need it skip when it is absent)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nas.tabular import data_dir


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`./dev.sh test` runs one worker per core) each worker's torch gets its share of the
    cores, not every core, and every process can import the experiments' modules (tests import them from
    experiments/; a warning class defined there, such as reporting.ProtocolWarning, is rebuilt in the controller)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    experiments = str(Path(__file__).resolve().parents[1] / "experiments")
    if experiments not in sys.path:
        sys.path.append(experiments)


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI output does not depend on the caller's $COLUMNS (pytest-xdist's workers set it to 80): piped output is
    160 columns wide, as nas.console gives it when $COLUMNS is unset. A test of the width sets it itself."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(autouse=True)
def _torch_threads_restored() -> Iterator[None]:
    """Thread settings never leak between tests: torch's intra-op thread count is put back after each test.

    (The inter-op count cannot be changed once torch has run a parallel op, so nothing sets it.)
    """
    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _log_levels_restored() -> Iterator[None]:
    """Log levels never leak between tests: an experiment or example run in-process may quiet the `nas` loggers
    (setLevel(ERROR)), which would hide the warnings later tests assert on (caplog)."""
    loggers = {name: logging.getLogger(name) for name in ["nas", *logging.root.manager.loggerDict]
               if name == "nas" or name.startswith(("nas.", "experiments"))}
    before = {name: logger.level for name, logger in loggers.items()}
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)
    for name in logging.root.manager.loggerDict:  # loggers created during the test start from NOTSET
        if name not in before and (name == "nas" or name.startswith(("nas.", "experiments"))):
            logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread for the test (timings and results stay comparable), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


@pytest.fixture(scope="session")
def digits64() -> dict:
    """The first 64 examples of each digits split (2 batches of 32 an epoch): the one-shot tests' data."""
    from nas.datasets import digits_splits

    return {k: (x[:64], y[:64]) for k, (x, y) in digits_splits().items()}
