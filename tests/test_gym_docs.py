"""Every ```python block of docs/gym.md runs, in order, in one namespace (no other test ran them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "gym.md"

pytestmark = pytest.mark.usefixtures("one_thread")


def test_doc_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks(DOC)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)  # the blocks' relative paths ("experiments") resolve against a link to the repo's
    (tmp_path / "experiments").symlink_to(ROOT / "experiments")
    monkeypatch.setattr(sys, "path", list(sys.path))  # block 2 inserts into sys.path: undone after
    namespace: dict = {"__name__": "__doc_example__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/gym.md python block {i + 1}", "exec"), namespace)
    summaries = {s.strategy: s for s in namespace["result"].summaries()}
    assert sorted(summaries) == ["evolution", "random", "tpe"]
    assert max(s.max for s in summaries.values()) == 1  # some run finds the toy's optimum (x=3, y=1, gelu: +1)
    assert namespace["acc"].kendall_tau > 0.8  # the proxy ranks the 276 held-out architectures (0.94 recorded)
