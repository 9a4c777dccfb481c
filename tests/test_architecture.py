"""The layers of docs/architecture.md hold: `lint-imports` keeps the pyproject contracts (layers, no cycles)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"nas": "nas", "spaces": "nas/spaces", "predictors": "nas/predictors", "hardware": "nas/hardware"}


def test_lint_imports_keeps_the_layer_and_acyclic_contracts(tmp_path):
    """import-linter reads packages from disk; the repository maps spaces/, predictors/ and hardware/ into
    `nas` through setuptools' package-dir, so the package is assembled as installed before linting."""
    for source, target in FOLDERS.items():
        shutil.copytree(ROOT / source, tmp_path / target, ignore=shutil.ignore_patterns("__pycache__"))
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), str(ROOT / "pyproject.toml")], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 2 kept, 0 broken." in out.stdout


def test_the_architecture_page_lists_every_layer_of_the_contract():
    """docs/architecture.md describes the layers the contract enforces, in the same order."""
    import tomllib

    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    page = (ROOT / "docs" / "architecture.md").read_text()
    positions = []
    for layer in contract["layers"]:
        for name in layer.split("|"):
            name = f"nas.{name.strip()}"
            assert f"`{name}`" in page, f"docs/architecture.md does not mention {name}"
            positions.append(page.index(f"`{name}`"))
    assert positions == sorted(positions), "docs/architecture.md lists the layers in another order than the contract"


def test_the_architecture_pages_driver_example_runs(tmp_path, monkeypatch):
    from tests.docs import python_blocks

    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "architecture_doc"}
    for block in python_blocks(ROOT / "docs" / "architecture.md"):
        exec(compile(block, "docs/architecture.md", "exec"), namespace)
    import nas

    assert nas.load(tmp_path / "runs" / "driver-doc-2").trials[0].metrics == {"score": 16.0}
