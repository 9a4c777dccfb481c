"""Shared bits of the experiment scripts: provenance of a run (commit, machine, load)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_report(path: Path, report: dict, started: float) -> None:
    """Write an experiment's JSON beside its printed table and say where."""
    import json
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"total {time.time() - started:.0f} s; wrote {path}")


def git_commit() -> str | None:
    """HEAD of the repository the experiment ran from (None outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
