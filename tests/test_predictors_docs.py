"""Every ```python block of docs/predictors.md runs, in order, in one namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs import python_blocks

DOC = Path(__file__).resolve().parents[1] / "docs" / "predictors.md"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_doc_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks(DOC)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace: dict = {"__name__": "__doc_example__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/predictors.md python block {i + 1}", "exec"), namespace)
