"""The experiment directory: an append-only, fsync'd JSON-lines journal of trials plus strategy snapshots.

Layout of a workdir:
    journal.jsonl   line 1: {"type": "header", "schema": 1, "config": {...}}; then one {"type": "trial", ...} per trial
    strategy.json   the latest strategy snapshot, replaced atomically (write, fsync, rename)
No pickles: everything is plain JSON, so a journal outlives the code that wrote it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import JournalError
from nas.spaces import Architecture

log = logging.getLogger(__name__)

SCHEMA = 1
JOURNAL = "journal.jsonl"
SNAPSHOT = "strategy.json"


@dataclass(frozen=True)
class Trial:
    """One evaluated (or rejected) architecture: plain-dict config, metrics, status and timings."""

    number: int
    arch: dict[str, Any]
    arch_id: str
    metrics: dict[str, float]
    status: str  # "ok" | "failed" | "infeasible" (rejected on cheap metrics, never evaluated)
    started: float = 0.0
    finished: float = 0.0
    worker: str = "local"
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> Architecture:
        return Architecture(self.arch)

    @property
    def duration(self) -> float:
        return self.finished - self.started

    def to_json(self) -> dict[str, Any]:
        return {"type": "trial", "number": self.number, "arch_id": self.arch_id, "arch": self.arch,
                "metrics": {k: _json_float(v) for k, v in self.metrics.items()}, "status": self.status,
                "started": self.started, "finished": self.finished, "worker": self.worker,
                "error": self.error, "extra": self.extra}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Trial":
        return cls(number=int(d["number"]), arch=dict(d["arch"]), arch_id=str(d["arch_id"]),
                   metrics={k: _from_json_float(v) for k, v in d["metrics"].items()}, status=str(d["status"]),
                   started=float(d["started"]), finished=float(d["finished"]), worker=str(d["worker"]),
                   error=d.get("error"), extra=dict(d.get("extra") or {}))


def _sync(fd: int) -> None:
    """Flush an appended record to disk (fdatasync also persists the new file size: enough for appends)."""
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _json_float(v: float) -> float | str:
    """JSON has no NaN/inf: store them as strings."""
    v = float(v)
    return v if math.isfinite(v) else str(v)


def _from_json_float(v: float | str) -> float:
    return float(v)


class Journal:
    """Append-only trial journal in `workdir`; `read()` tolerates a truncated last line (crash mid-write)."""

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        self.workdir = Path(workdir)
        self.path = self.workdir / JOURNAL
        self.snapshot_path = self.workdir / SNAPSHOT

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def create(self, config: Mapping[str, Any]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.exists():
            raise JournalError(f"{self.path} already exists")
        self._append({"type": "header", "schema": SCHEMA, "config": dict(config)})

    def read(self) -> tuple[dict[str, Any], list[Trial]]:
        """(header config, trials). A torn last line is dropped with a warning; other damage is an error."""
        if not self.exists():
            raise JournalError(f"{self.workdir} holds no journal ({JOURNAL} is missing or empty)")
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        torn = lines[-1] != b""  # the file should end with a newline
        if not torn:
            lines = lines[:-1]
        records: list[dict[str, Any]] = []
        for i, line in enumerate(lines, start=1):
            last = i == len(lines)
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or "type" not in rec:
                    raise ValueError("not a journal record")
            except ValueError as e:
                if last and torn:
                    log.warning("%s: dropping a truncated last line (%d bytes): the process died mid-write",
                                self.path, len(line))
                    self._truncate(len(raw) - len(line))
                    break
                raise JournalError(f"{self.path}:{i}: corrupt journal line ({e}); "
                                   "only a truncated last line can be recovered") from e
            if last and torn:
                self._truncate(len(raw) - len(line))  # complete record missing its newline: keep it
                with open(self.path, "ab") as f:
                    f.write(json.dumps(rec).encode() + b"\n")
            records.append(rec)
        if not records or records[0].get("type") != "header":
            raise JournalError(f"{self.path}:1: missing header line")
        header = records[0]
        if header.get("schema") != SCHEMA:
            raise JournalError(f"{self.path}: schema {header.get('schema')!r} is not supported (this version reads {SCHEMA})")
        config = dict(header["config"])
        trials = []
        for i, rec in enumerate(records[1:], start=2):
            if rec["type"] == "resume":  # a resumed search may raise its budget
                config["budget"] = rec.get("budget", config.get("budget"))
                config["resumed"] = config.get("resumed", 0) + 1
            if rec["type"] != "trial":
                continue
            try:
                trials.append(Trial.from_json(rec))
            except (KeyError, TypeError, ValueError) as e:
                raise JournalError(f"{self.path}:{i}: malformed trial record ({e!r})") from e
        return config, trials

    def _truncate(self, size: int) -> None:
        with open(self.path, "r+b") as f:
            f.truncate(size)
            f.flush()
            os.fsync(f.fileno())

    def append(self, trial: Trial) -> None:
        self._append(trial.to_json())

    def append_resume(self, budget: int) -> None:
        """Note that the search was resumed (with this budget) so readers see the current budget."""
        self._append({"type": "resume", "budget": budget, "time": time.time()})

    def _append(self, record: Mapping[str, Any]) -> None:
        data = (json.dumps(record, allow_nan=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)  # one write: a crash leaves at most one torn last line
            _sync(fd)
        finally:
            os.close(fd)

    def save_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        tmp = self.snapshot_path.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps({"schema": SCHEMA, **snapshot}))  # dumps uses the C encoder; NaN/inf read back fine
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.snapshot_path)

    def load_snapshot(self) -> dict[str, Any] | None:
        if not self.snapshot_path.exists():
            return None
        try:
            snap = json.loads(self.snapshot_path.read_text())
        except ValueError as e:
            raise JournalError(f"{self.snapshot_path}: unreadable snapshot ({e})") from e
        if snap.get("schema") != SCHEMA:
            raise JournalError(f"{self.snapshot_path}: schema {snap.get('schema')!r} is not supported")
        return snap
