"""The experiment directory: an append-only, fsync'd JSON-lines journal of trials plus strategy snapshots.

Layout of a workdir:
    journal.jsonl   line 1: {"type": "header", "schema": 1, "config": {...}}; then one {"type": "trial", ...}
                    per trial, and {"type": "resume", "budget": N} / {"type": "config", "problem": {...}}
                    records that update the header's budget and objectives
    strategy.json   the latest strategy snapshot, replaced atomically (write, fsync, rename)
    journal.lock    held (flock) by the one process writing the journal
No pickles: everything is plain JSON, so a journal outlives the code that wrote it.

`Journal` only reads: it never changes a file, so `nas status` or `nas.load` may poll a running search.
`JournalWriter` is the single writer: it holds the workdir's lock from open to close and is the only
code that repairs a torn last line (its own, left by a crash).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas import jsonio
from nas.errors import JournalError
from nas.architecture import Architecture

log = logging.getLogger(__name__)

SCHEMA = 1
JOURNAL = "journal.jsonl"
SNAPSHOT = "strategy.json"
LOCK = "journal.lock"


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

    @property
    def is_evaluation(self) -> bool:
        """Whether the trial spent budget: not rejected on cheap metrics, not a re-checked copy of an earlier one."""
        return self.status != "infeasible" and "rechecked_from" not in self.extra

    def to_json(self) -> dict[str, Any]:
        return {"type": "trial", "number": self.number, "arch_id": self.arch_id, "arch": self.arch,
                "metrics": {k: _json_float(v) for k, v in self.metrics.items()}, "status": self.status,
                "started": self.started, "finished": self.finished, "worker": self.worker,
                "error": self.error, "extra": self.extra}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Trial":
        return cls(number=int(d["number"]), arch=dict(d["arch"]), arch_id=str(d["arch_id"]),
                   metrics={k: float(v) for k, v in d["metrics"].items()}, status=str(d["status"]),
                   started=float(d["started"]), finished=float(d["finished"]), worker=str(d["worker"]),
                   error=d.get("error"), extra=dict(d.get("extra") or {}))


def evaluations_used(trials: Sequence[Trial]) -> int:
    """How much of the budget `trials` spent (every trial except cheap rejections and re-checked copies)."""
    return sum(t.is_evaluation for t in trials)


def _json_float(v: float) -> float | str:
    """JSON has no NaN/inf: store them as strings (float() reads them back)."""
    v = float(v)
    return v if math.isfinite(v) else str(v)


@dataclass(frozen=True)
class JournalContents:
    """What a journal holds now: its header config (with later budget/objective updates applied) and trials.

    `still_writing` says the last line was incomplete and left out: a search is appending it right now,
    or died in the middle of writing it (then its next run drops the line).
    """

    config: dict[str, Any]
    trials: list[Trial]
    still_writing: bool = False


class Journal:
    """Read-only access to a workdir's journal and strategy snapshot; reading never changes a file."""

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        self.workdir = Path(workdir)
        self.path = self.workdir / JOURNAL
        self.snapshot_path = self.workdir / SNAPSHOT

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def read(self) -> JournalContents:
        """The journal's config and trials; damage other than a torn last line is a JournalError naming the line.

        Trial numbers must run 0, 1, 2, ...: an exact duplicate of a record is read once (with a warning),
        a different record under a number already read, or a missing number, is an error.
        """
        if not self.exists():
            raise JournalError(f"{self.workdir} holds no journal ({JOURNAL} is missing or empty)")
        lines = jsonio.read_jsonl(self.path, "journal", JournalError)
        if lines.torn:
            log.info("%s: the last line (%d bytes) is still being written; reading the complete records before it",
                     self.path, lines.torn)
        records = lines.records
        if not records or records[0][1].get("type") != "header":
            raise JournalError(f"{self.path}:1: missing header line")
        header = records[0][1]
        if header.get("schema") != SCHEMA:
            raise JournalError(f"{self.path}: schema {header.get('schema')!r} is not supported (this version reads {SCHEMA})")
        config = dict(header["config"])
        trials: list[Trial] = []
        where: dict[int, tuple[int, dict[str, Any]]] = {}  # trial number -> (line, record)
        for line, rec in records[1:]:
            kind = rec.get("type")
            if kind in ("resume", "config"):  # a raised budget, changed settings, objectives corrected early
                config.update({k: v for k, v in rec.items() if k not in ("type", "time")})
                if kind == "resume":
                    config["resumed"] = config.get("resumed", 0) + 1
            elif kind == "header":
                raise JournalError(f"{self.path}:{line}: a second header line (two journals written into one file?)")
            elif kind == "trial":
                number = rec.get("number")
                if number in where:
                    first, old = where[number]
                    if old == rec:
                        log.warning("%s:%d: a duplicate of trial %s (line %d); reading it once", self.path, line,
                                    number, first)
                        continue
                    raise JournalError(f"{self.path}:{line}: trial {number} appears twice with different contents "
                                       f"(first at line {first})")
                if number != len(trials):
                    raise JournalError(f"{self.path}:{line}: trial {number!r} where trial {len(trials)} was expected "
                                       "(the journal has a gap or is out of order)")
                try:
                    trials.append(Trial.from_json(rec))
                except (KeyError, TypeError, ValueError) as e:
                    raise JournalError(f"{self.path}:{line}: malformed trial record ({e!r})") from e
                where[number] = (line, rec)
        return JournalContents(config, trials, bool(lines.torn))

    def writer(self) -> str | None:
        """Who is writing this journal now ("pid N on HOST since T"), or None: a read-only probe of its lock."""
        try:
            fd = os.open(self.workdir / LOCK, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # held for microseconds; writers retry (see _lock)
            except BlockingIOError:
                return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def load_snapshot(self) -> dict[str, Any] | None:
        if not self.snapshot_path.exists():
            return None
        snap = jsonio.read_json(self.snapshot_path, "strategy snapshot", JournalError)
        if not isinstance(snap, dict) or snap.get("schema") != SCHEMA:
            raise JournalError(f"{self.snapshot_path}: schema {snap.get('schema') if isinstance(snap, dict) else None!r} "
                               "is not supported")
        return snap


class JournalWriter(Journal):
    """The one process writing a workdir: holds `journal.lock` until `close()`; a second writer gets a JournalError.

    Opening repairs the journal's own torn last line (left by a crash of the previous writer).
    """

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        super().__init__(workdir)
        self._lock_fd: int | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.workdir / LOCK)
        try:
            if self.exists():
                lines = jsonio.read_jsonl(self.path, "journal", JournalError)
                if lines.torn:
                    log.warning("%s: dropping a truncated last line (%d bytes): the previous run died mid-write",
                                self.path, lines.torn)
                jsonio.repair_tail(lines)
        except BaseException:
            self.close()
            raise

    def create(self, config: Mapping[str, Any]) -> None:
        if self.exists():
            raise JournalError(f"{self.path} already exists")
        self._append({"type": "header", "schema": SCHEMA, "config": dict(config)})

    def append(self, trial: Trial) -> None:
        self._append(trial.to_json())

    def append_resume(self, budget: int, **settings: Any) -> None:
        """Note that the search was resumed (with this budget and changed settings) so readers see them."""
        self._append({"type": "resume", "budget": budget, **settings, "time": time.time()})

    def append_config(self, **fields: Any) -> None:
        """Replace header fields (the objectives and constraints, before any trial completed) for every reader."""
        self._append({"type": "config", **fields, "time": time.time()})

    def _append(self, record: Mapping[str, Any]) -> None:
        if self._lock_fd is None:
            raise JournalError(f"{self.path}: this writer is closed")
        jsonio.append_jsonl(self.path, [record])

    def save_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        # json.dumps, not strict: a strategy's state may hold inf/NaN, which json reads back as such.
        jsonio.write_bytes(self.snapshot_path, json.dumps({"schema": SCHEMA, **snapshot}).encode())

    def close(self) -> None:
        """Release the workdir's lock (another process may write it from now on)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> "JournalWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _lock(path: Path, attempts: int = 20) -> int:
    """An exclusive flock on `path` (released when the process dies); JournalError when another writer holds it.

    Tries `attempts` times 50 ms apart, so the instant shared lock of a `Journal.writer()` probe (e.g. `nas
    status` polling) never makes a starting search fail; a real writer holds the lock for its whole run.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(0.05)
    else:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise JournalError(f"{path.parent} is being written by another search ({holder}): wait for it to finish, "
                           "or use another workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
              .encode(), 0)
    return fd
