"""The experiment directory: an append-only, fsync'd JSON-lines journal of trials plus strategy snapshots.

Layout of a workdir:
    journal.jsonl   line 1: {"type": "header", "schema": 1, "config": {...}}; then one {"type": "trial", ...}
                    per trial, and {"type": "resume", "budget": N} / {"type": "config", "problem": {...}}
                    records that update the header's budget and objectives
    strategy.json   the latest strategy snapshot, replaced atomically (write, fsync, rename)
    journal.lock    held (flock) by the one process writing the journal, which also flocks the workdir folder
                    itself: a second writer is refused even when a user deleted journal.lock
    running.json    while a search runs: the evaluations in flight and the executor's slots (not fsync'd;
                    removed when the search ends; trusted only while journal.lock is held)
No pickles: everything is plain JSON, so a journal outlives the code that wrote it.

`Journal` only reads: it never changes a file, so `nas status` or `nas.load` may poll a running search.
`JournalWriter` is the single writer: it holds the workdir's lock from open to close and is the only
code that repairs a torn last line (its own, left by a crash).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import re
import socket
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nas import jsonio
from nas.errors import ConfigError, JournalError, WorkdirBusy
from nas.architecture import Architecture

log = logging.getLogger(__name__)

SCHEMA = 1
JOURNAL = "journal.jsonl"
SNAPSHOT = "strategy.json"
LOCK = "journal.lock"
RUNNING = "running.json"
MODEL_SPEC = "model.json"  # written by `nas.modelspec` (how to rebuild the search's models); named here, with the
                           # workdir's other files, so readers check for it without importing torch
SEARCH_FILES = (JOURNAL, SNAPSHOT, LOCK, RUNNING, MODEL_SPEC, "supernet.pt",  # nas.modelspec.SUPERNET
                "oneshot.pt", "oneshot_history.json", "latency_table.jsonl", "few_shot.json", "bossnas.json",
                "nas_settings.json")
"""The files a workdir keeps its search in (its drivers' state too: nas.darts, few_shot, bossnas, ray.train): an
output path of a command that reads the workdir must not replace one (`nas.console.check_output`)."""
NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
"""The errnos of a path that cannot be written: no permission, or a read-only file system (a `:ro` volume, a
snapshot), which raises a plain OSError, not a PermissionError."""
SNAPSHOT_HINT = (f"; it only caches the strategy's state, so deleting {SNAPSHOT} is safe: a resume then replays the "
                 "journal (a study forgets which architectures it handed out and was not told yet)")
"""How a damaged strategy snapshot's error ends: what the user can do about it."""
_SNAPSHOT_FIELDS: dict[str, tuple[type, type | tuple[type, ...] | None]] = {
    "state": (dict, None), "pending": (list, dict), "placements": (dict, dict), "asked": (dict, (int, float)),
    "reports": (dict, dict), "queued": (list, dict), "enqueued": (list, str)}
"""The fields `_SearchLoop._snapshot` writes (a resume needs `state` and `pending`; the rest are optional): their
JSON type, and the type of each entry or value."""


FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The errnos of a write the disk (or the user's quota) has no room for."""


class DiskFull(JournalError, OSError):
    """A workdir's file could not be written for lack of space: one line naming the workdir and the file. An
    OSError too (errno ENOSPC or EDQUOT, filename set), as the bare error it replaces was."""

    def __str__(self) -> str:
        return str(self.args[0])


def _json_type(value: Any) -> str:
    """How JSON names `value`'s type, for messages about a hand-edited file."""
    return ("null" if value is None else "a boolean" if isinstance(value, bool) else "a number"
            if isinstance(value, (int, float)) else "a string" if isinstance(value, str) else "a list"
            if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__)


def not_writable(e: BaseException) -> bool:
    """Whether `e` says a path cannot be written (`NOT_WRITABLE`), not that it is missing, full or broken."""
    return isinstance(e, OSError) and e.errno in NOT_WRITABLE


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
    def pruned_after(self) -> int | None:
        """After how many reports a pruner or scheduler stopped this trial (None: it trained to the end). A pruned
        trial's metrics are its last report's, so it is left out of `best()`, `pareto_front()` and export."""
        return self.extra.get("pruned_after")

    @property
    def user_attrs(self) -> dict[str, Any]:
        """What its evaluation attached with `nas.set_user_attr` (a checkpoint path, a note), or a study's
        `tell(..., user_attrs=)`: JSON data, never ranked."""
        return dict(self.extra.get("user_attrs", {}))

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
        """The trial a journal record holds; KeyError/TypeError/ValueError naming the field when it is malformed."""
        return cls(number=int(d["number"]), arch=_object(d, "arch"), arch_id=str(d["arch_id"]),
                   metrics={k: float(v) for k, v in _object(d, "metrics").items()}, status=str(d["status"]),
                   started=float(d["started"]), finished=float(d["finished"]), worker=str(d["worker"]),
                   error=d.get("error"), extra=_object(d, "extra", optional=True))


def _object(record: Mapping[str, Any], key: str, optional: bool = False) -> dict[str, Any]:
    """`record[key]` as a dict; a TypeError naming `key` when it is not a JSON object (a list of pairs would
    otherwise pass as one). `optional`: missing or null reads as {}."""
    value = record.get(key) if optional else record[key]
    if optional and value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{key} is {_json_type(value)} ({value!r:.40}), not an object")
    return dict(value)


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
    stop_reason: str | None = None  # why its last run stopped ("budget", "exhausted", "max_time"), when it said


class Journal:
    """Read-only access to a workdir's journal and strategy snapshot; reading never changes a file."""

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        if not isinstance(workdir, (str, os.PathLike)):
            raise ConfigError(f"workdir: expected a folder path (str or pathlib.Path), got {type(workdir).__name__} "
                              f"{workdir!r}")
        self.workdir = Path(workdir)
        self.path = self.workdir / JOURNAL
        self.snapshot_path = self.workdir / SNAPSHOT

    def exists(self) -> bool:
        """Whether the workdir holds a journal (a non-empty file); a JournalError when `journal.jsonl` is something
        else (a folder), which no search can read or append to."""
        if not self.path.exists():
            return False
        if not self.path.is_file():
            raise JournalError(f"{self.path}: {jsonio.not_a_file(self.path)}: a workdir's {JOURNAL} is its search's "
                               "journal; move that away, or use another workdir")
        return self.path.stat().st_size > 0

    def read(self) -> JournalContents:
        """The journal's config and trials; damage other than a torn last line is a JournalError naming the line.

        Trial numbers must run 0, 1, 2, ...: an exact duplicate of a record is read once (with a warning),
        a different record under a number already read, or a missing number, is an error.
        """
        follower = JournalFollower(self)
        follower.poll()
        if follower.config is None:  # only a torn first line
            raise JournalError(f"{self.path}:1: missing header line")
        return JournalContents(follower.config, follower.trials, follower.still_writing, follower.stop_reason)

    def writer(self) -> str | None:
        """Who is writing this journal now ("pid N on HOST since T", T in ISO 8601 with its UTC offset; see
        `writer_since`), or None: a read-only probe of its lock. When pid N has exited on this machine but the lock
        is held (by a process it forked), a note after HOST says so."""
        holder = self._holder()
        if holder is None:
            return None
        gone = _gone(holder, self.workdir / LOCK)
        if gone is None:
            return holder
        who, sep, since = holder.rpartition(" since ")  # the note joins who, so `writer_since` still parses
        return f"{who} ({gone}){sep}{since}" if sep else f"{holder} ({gone})"

    def search_running(self) -> bool:
        """Whether a running search writes this journal: its lock is held, and not only by a process that a search
        which has exited forked. A torn last line is being written only then; otherwise a crash left it."""
        holder = self.writer()
        return holder is not None and not writer_exited(holder)

    def _holder(self) -> str | None:
        """The lock's text when a process holds it (a shared lock for microseconds: writers retry, see _lock)."""
        try:
            fd = os.open(self.workdir / LOCK, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def running(self) -> dict[str, Any] | None:
        """What a running search evaluates now ({"slots": N, "in_flight": [{"arch_id", "arch", "since"}]}), or
        None when no search writes this journal (a killed search's stale file is ignored, also while a process
        it forked keeps the lock)."""
        path = self.workdir / RUNNING
        holder = self._holder()
        if holder is None or writer_exited(holder) or not path.exists():
            return None
        try:
            return json.loads(path.read_bytes())
        except (OSError, ValueError):  # replaced between the check and the read, or an old torn file
            return None

    def load_snapshot(self) -> dict[str, Any] | None:
        """The strategy snapshot, or None; a damaged one is a JournalError saying it may be deleted: it is a cache
        of the strategy's state, and without it a resume replays the journal. Each field it holds is checked for
        its type here (a resume checks that the state restores: `damaged_snapshot`)."""
        if not self.snapshot_path.exists():
            return None
        try:
            snap = jsonio.read_json(self.snapshot_path, "strategy snapshot", JournalError)
        except JournalError as e:
            raise JournalError(f"{e}{SNAPSHOT_HINT}") from None
        if not isinstance(snap, dict) or snap.get("schema") != SCHEMA:
            raise self.damaged_snapshot(f"schema {snap.get('schema') if isinstance(snap, dict) else None!r} is not "
                                        f"supported (this version reads {SCHEMA})")
        after = snap.get("after_trial")
        if isinstance(after, bool) or not isinstance(after, int) or after < -1:
            raise self.damaged_snapshot(f"after_trial {after!r} is not a trial number (or -1)")
        for key, (kind, item) in _SNAPSHOT_FIELDS.items():
            if key not in snap:
                continue
            value = snap[key]
            if not isinstance(value, kind):
                raise self.damaged_snapshot(f"{key} is {_json_type(value)}, not {_json_type(kind())}")
            if item is None:
                continue
            for bad in value.values() if isinstance(value, dict) else value:
                if not isinstance(bad, item) or isinstance(bad, bool):
                    raise self.damaged_snapshot(f"{key} holds {_json_type(bad)} ({bad!r:.40}) where each entry is "
                                                f"{_json_type(item[0]() if isinstance(item, tuple) else item())}")
        return snap

    def line_of(self, number: int) -> int | None:
        """The line of the journal that holds trial `number` (None when none does): for messages about a trial."""
        follower = JournalFollower(self)
        follower.poll()
        where = follower._where.get(number)
        return where[0] if where is not None else None

    def damaged_snapshot(self, reason: str) -> JournalError:
        """The error for a strategy snapshot that cannot be restored (`reason` names the field), saying that
        deleting it is safe."""
        return JournalError(f"{self.snapshot_path}: {reason}{SNAPSHOT_HINT}")

    def pending(self, told: Collection[str]) -> list[dict[str, Any]]:
        """The architectures the last snapshot holds as asked and not among `told` (arch ids): a study's jobs out,
        or a stopped search's evaluations in flight; each {"arch_id", "arch", "since"}, as running.json lists a
        running search's ("since" None where the snapshot did not record it)."""
        snap = self.load_snapshot() or {}
        asked = snap.get("asked", {})
        out = []
        for arch in map(Architecture, snap.get("pending", [])):
            if arch.id not in told:
                out.append({"arch_id": arch.id, "arch": arch.to_dict(), "since": asked.get(arch.id)})
        return out


class JournalFollower:
    """Follows a growing journal: each `poll()` parses only the lines appended since the last one.

    What a dashboard polling a running search needs: reading 10,000 trials once, then a few new lines per
    poll. Reads only; a journal replaced by a fresh search (another file, or a shorter one) is read again
    from its start, and `poll()` says so.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._reset()

    def _reset(self) -> None:
        self.config: dict[str, Any] | None = None
        self.trials: list[Trial] = []
        self.still_writing = False
        self.stop_reason: str | None = None  # from the last "end" line, unless a "resume" line follows it
        self.offset = 0  # bytes parsed: the start of the next line
        self.lines = 0  # lines parsed
        self._unterminated = False  # the last record parsed lacked its newline (the next writer adds it)
        self._file: tuple[int, int] | None = None  # (device, inode) of the file being followed
        self._seen = b""  # the last bytes parsed (before `offset`): a file that no longer holds them was replaced
        self._where: dict[int, tuple[int, dict[str, Any]]] = {}  # trial number -> (line, record)

    def poll(self) -> bool:
        """Read what was appended since the last poll; True when the journal was replaced and read anew.

        Raises JournalError when there is no journal, or for damage other than a torn last line (naming it).
        """
        journal = self.journal
        if not journal.exists():
            raise JournalError(f"{journal.workdir} holds no journal ({JOURNAL} is missing or empty)")
        stat = journal.path.stat()
        replaced = self._file is not None and (self._file != (stat.st_dev, stat.st_ino) or stat.st_size < self.offset
                                               or self._tail() != self._seen)
        if replaced:
            log.info("%s was replaced (a fresh search): reading it from the start", journal.path)
            self._reset()
        self._file = (stat.st_dev, stat.st_ino)
        if self._unterminated:
            with open(journal.path, "rb") as f:
                f.seek(self.offset)
                if f.read(1) == b"\n":
                    self.offset += 1
                    self._unterminated = False
            self._seen = self._tail()  # the parsed bytes now end with that newline
        if stat.st_size <= self.offset:
            return replaced
        lines = jsonio.read_jsonl(journal.path, "journal", JournalError, start=self.offset, first_line=self.lines + 1)
        if lines.torn:
            log.info("%s: the last line (%d bytes) is still being written; reading the complete records before it",
                     journal.path, lines.torn)
        self.still_writing = bool(lines.torn)
        self.offset = lines.size - lines.torn
        self._seen = self._tail()
        self._unterminated = lines.unterminated
        self.lines = lines.last_line
        for line, rec in lines.records:
            self._add(line, rec)
        return replaced

    def _tail(self, size: int = 256) -> bytes:
        """The last `size` bytes parsed. A fresh search written to the same path (deleted and run again, which may
        reuse the inode, and grown past where this reader was) differs there: its records hold other times."""
        with open(self.journal.path, "rb") as f:
            f.seek(max(0, self.offset - size))
            return f.read(min(size, self.offset))

    def _add(self, line: int, rec: dict[str, Any]) -> None:
        path = self.journal.path
        kind = rec.get("type")
        if self.config is None:
            if kind != "header":
                raise JournalError(f"{path}:1: missing header line")
            if rec.get("schema") != SCHEMA:
                raise JournalError(f"{path}: schema {rec.get('schema')!r} is not supported (this version reads {SCHEMA})")
            self.config = dict(rec["config"])
        elif kind in ("resume", "config"):  # a raised budget, changed settings, objectives corrected early
            self.config.update({k: v for k, v in rec.items() if k not in ("type", "time")})
            if kind == "resume":
                self.config["resumed"] = self.config.get("resumed", 0) + 1
                self.stop_reason = None
        elif kind == "end":  # why the last run stopped (a resumed run's trials follow a "resume" line)
            self.stop_reason = rec.get("stop_reason")
        elif kind == "header":
            raise JournalError(f"{path}:{line}: a second header line (two journals written into one file?)")
        elif kind == "trial":
            number = rec.get("number")
            if number in self._where:
                first, old = self._where[number]
                if old == rec:
                    log.warning("%s:%d: a duplicate of trial %s (line %d); reading it once", path, line, number, first)
                    return
                raise JournalError(f"{path}:{line}: trial {number} appears twice with different contents "
                                   f"(first at line {first})")
            if number != len(self.trials):
                raise JournalError(f"{path}:{line}: trial {number!r} where trial {len(self.trials)} was expected "
                                   "(the journal has a gap or is out of order)")
            try:
                self.trials.append(Trial.from_json(rec))
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                what = f"field {e.args[0]!r} is missing" if isinstance(e, KeyError) else str(e)
                raise JournalError(f"{path}:{line}: malformed trial record ({what}); restore the journal from a copy, "
                                   "or fix that line by hand") from e
            self._where[number] = (line, rec)


class JournalWriter(Journal):
    """The one process writing a workdir: holds `journal.lock` and a flock on the workdir folder until `close()`; a
    second writer gets a JournalError (`WorkdirBusy`), also when `journal.lock` was deleted.

    Opening repairs the journal's own torn last line (left by a crash of the previous writer).
    """

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        self._lock_fd: int | None = None  # first: `__del__` closes it even when the workdir is refused
        self._dir_fd: int | None = None  # the workdir folder, flocked (None where folders cannot be flocked)
        super().__init__(workdir)
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.exists()  # a journal.jsonl that is not a file (a folder) is refused before the lock is taken
            self._lock_fd = _lock(self.workdir / LOCK)
            self._dir_fd = _lock_folder(self.workdir)
            self._check_writable()
            _claim(self._lock_fd)  # after the check: a refused run leaves every file as it was, the lock's too
        except OSError as e:
            self.close()
            if e.errno in (errno.ENOTDIR, errno.EEXIST):  # the workdir, or a folder above it, is a file
                raise JournalError(f"{self.workdir}: cannot be a workdir ({e.strerror}: {e.filename}): a file stands "
                                   "where a folder is needed; use another workdir") from None
            if not not_writable(e):
                raise
            raise JournalError(f"{self.workdir}: this workdir cannot be written ({e.strerror}: {e.filename}); make it "
                               "writable or use another workdir (reading it needs no write access: nas.load)") from None
        try:
            if self.exists():
                lines = jsonio.read_jsonl(self.path, "journal", JournalError)
                if lines.torn:
                    log.warning("%s:%d: dropping a truncated last line (%d bytes): the previous run died mid-write",
                                self.path, lines.last_line + 1, lines.torn)
                jsonio.repair_tail(lines)
        except BaseException:
            self.close()
            raise

    def _check_writable(self) -> None:
        """An OSError (`not_writable`) now, before anything is written, when the folder or the journal cannot be
        written (a read-only or immutable workdir, a read-only file system): a resume would otherwise append to the journal, then fail at its snapshot."""
        probe = self.workdir / f".write-test-{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        probe.unlink()
        if self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND))

    def create(self, config: Mapping[str, Any]) -> None:
        """Write the header line as the whole new file, renamed into place: a reader never sees a journal that
        exists but is empty (it read as "missing header line")."""
        if self.exists():
            raise JournalError(f"{self.path} already exists")
        header = {"type": "header", "schema": SCHEMA, "config": dict(config)}
        with self._writing(JOURNAL):
            jsonio.write_bytes(self.path, (jsonio.dumps(header) + "\n").encode())

    def append(self, trial: Trial) -> None:
        self._append(trial.to_json())

    def append_resume(self, budget: int, **settings: Any) -> None:
        """Note that the search was resumed (with this budget and changed settings) so readers see them."""
        self._append({"type": "resume", "budget": budget, **settings, "time": time.time()})

    def append_end(self, stop_reason: str) -> None:
        """Note why the search stopped ("budget", "exhausted", "max_time"), so readers know whether it can go on."""
        self._append({"type": "end", "stop_reason": stop_reason, "time": time.time()})

    def append_config(self, **fields: Any) -> None:
        """Replace header fields (the objectives and constraints, before any trial completed) for every reader."""
        self._append({"type": "config", **fields, "time": time.time()})

    def _append(self, record: Mapping[str, Any]) -> None:
        with self._writing(JOURNAL):
            jsonio.append_jsonl(self.path, [record])

    def save_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        # json.dumps, not strict: a strategy's state may hold inf/NaN, which json reads back as such.
        with self._writing(SNAPSHOT):
            jsonio.write_bytes(self.snapshot_path, json.dumps({"schema": SCHEMA, **snapshot}).encode())

    def save_running(self, slots: int, in_flight: Sequence[Mapping[str, Any]]) -> None:
        """Tell readers (a dashboard) which evaluations run now; cheap: replaced atomically, not fsync'd."""
        data = jsonio.dumps({"slots": slots, "in_flight": list(in_flight), "time": time.time()}).encode()
        with self._writing(RUNNING):
            jsonio.write_bytes(self.workdir / RUNNING, data, durable=False)

    @contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        """Write the workdir's file `name` only while this writer still holds the lock (`_check_lock`); a full disk
        is a `DiskFull` naming the workdir and `name` (the journal is left whole: `jsonio.append_jsonl`)."""
        self._check_lock()
        try:
            yield
        except OSError as e:
            if e.errno not in FULL:
                raise
            full = DiskFull(f"{self.workdir}: the disk is full (writing {name}: {e.strerror}); free space and run "
                            "the same call again to resume")
            full.errno, full.strerror, full.filename = e.errno, e.strerror, str(self.workdir / name)
            raise full from None

    def _owns_lock(self) -> bool:
        """Whether `journal.lock` is still the file this writer locked: a user may delete it (taking it for a
        stale lock, as with git's index.lock), and then a second search locks a new one."""
        if self._lock_fd is None:
            return False
        return _same_file(self._lock_fd, self.workdir / LOCK)

    def _check_lock(self) -> None:
        """A JournalError when this writer is closed or its lock file was deleted (or replaced): another search may
        write the journal now, so this one must not write anything more."""
        if self._lock_fd is None:
            raise JournalError(f"{self.path}: this writer is closed")
        if not self._owns_lock():
            raise JournalError(f"{self.workdir / LOCK} was deleted or replaced while this search held it, so another "
                               "search may write this workdir now; this one stops without writing more. Never delete "
                               f"the lock of a running search (`nas status {self.workdir}` says who holds it)")

    def close(self) -> None:
        """Release the workdir's lock (another process may write it from now on)."""
        if self._lock_fd is not None:
            try:
                if self._owns_lock():  # else running.json may be another search's
                    (self.workdir / RUNNING).unlink(missing_ok=True)
            except OSError:  # a read-only workdir: readers ignore running.json while no search holds the lock
                pass
        if self._dir_fd is not None:  # released first: whoever takes journal.lock next finds the folder free
            os.close(self._dir_fd)
            self._dir_fd = None
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
    for _ in range(attempts):
        if not _flock(fd, attempts):
            break
        if _same_file(fd, path):
            return fd
        os.close(fd)  # deleted (and maybe recreated) between our open and flock: lock what is there now
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
    os.close(fd)
    raise _busy(path, holder)


def _flock(fd: int, attempts: int) -> bool:
    """Whether an exclusive flock on `fd` was taken within `attempts` tries 50 ms apart (a lock held for an instant,
    or by a writer that is exiting, is waited for); an OSError other than "held" propagates."""
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(0.05)
    return False


def _lock_folder(workdir: Path, attempts: int = 20) -> int | None:
    """An exclusive flock on the folder `workdir` itself, held with `journal.lock`: it outlives a deleted lock file,
    so a second writer is refused then too (`WorkdirBusy`). None where folders cannot be flocked (the lock file alone
    guards the workdir then). Tried `attempts` times 50 ms apart: a writer that is exiting releases both locks."""
    try:
        fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:  # a folder that can be written but not read (mode 0o300)
        log.debug("%s: cannot open the folder to lock it (%s); journal.lock alone guards it", workdir, e)
        return None
    try:
        if _flock(fd, attempts):
            return fd
    except OSError as e:  # a file system without flock on folders
        os.close(fd)
        log.debug("%s: the folder cannot be flocked (%s); journal.lock alone guards it", workdir, e)
        return None
    os.close(fd)
    raise _busy(workdir / LOCK, f"its {LOCK} was deleted while it ran, so who it is is not known", deleted=True)


def _busy(path: Path, holder: str, deleted: bool = False) -> WorkdirBusy:
    """The error for a workdir whose lock `path` another writer `holder` ("pid N on HOST since T") holds; `deleted`:
    the lock file was deleted under a running search, which still holds the workdir folder's lock."""
    if not deleted:
        if _holder_pid(holder) == os.getpid():  # waiting would never help
            return WorkdirBusy(f"{path.parent} is being written by another search open in this process, a Study "
                               f"or search not closed yet ({holder}): close it first (study.close(), or open it as "
                               "`with nas.Study(...) as study:`), or use another workdir")
        gone = _gone(holder, path)
        if gone is not None:
            return WorkdirBusy(f"{path.parent} is locked, but no search writes it: the search that locked it "
                               f"({holder}) {gone} (a process a search forks shares its lock); the lock is free "
                               "once that process exits (stop it, or wait), or use another workdir")
    return WorkdirBusy(f"{path.parent} is being written by another search ({holder}): wait for it to finish, "
                       "or use another workdir")


def _same_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open as `fd` (not deleted, not replaced by a new file)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _claim(fd: int) -> None:
    """Write who holds the lock `fd` ("pid N on HOST since T") into the lock file, for `Journal.writer()`."""
    os.ftruncate(fd, 0)
    since = datetime.now().astimezone().isoformat(timespec="seconds")  # with its UTC offset: one instant anywhere
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0)


def _holder_pid(holder: str) -> int | None:
    """The pid a lock's text names ("pid N on HOST since T") when HOST is this machine; None otherwise."""
    match = re.match(r"pid (\d+) on (\S+)", holder)
    return int(match[1]) if match and match[2] == socket.gethostname() else None


def _gone(holder: str, lock: Path) -> str | None:
    """When the writer `holder` names ran on this machine and has exited, yet `lock` is held: a clause saying so,
    naming the processes that have the lock file open where /proc lists them; None otherwise. A process the
    search forked (a helper its evaluate started) shares its lock and keeps it after the search is killed."""
    if not writer_exited(holder):
        return None
    openers = _openers(lock)
    who = f"pid {', '.join(map(str, openers))}, which has {lock.name} open," if openers else "a process it started"
    return f"exited; {who} still holds the lock"


def writer_exited(holder: str) -> bool:
    """Whether the writer `holder` (`Journal.writer()`) names ran on this machine and is gone, so the lock it still
    holds is a process it forked: nothing writes the journal, and the lock is free once that process exits."""
    pid = _holder_pid(holder)
    return pid is not None and pid != os.getpid() and not process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a killed one not yet reaped, a zombie, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS), or it exited just now
        return True
    return stat[stat.rindex(")") + 2:][:1] not in ("Z", "X")


def _openers(path: Path) -> list[int]:
    """The processes other than this one that have `path` open, from /proc (Linux; [] elsewhere). Only asked
    when a lock's writer has exited, so the scan of every process's descriptors is rare."""
    target = os.path.realpath(path)
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    found = []
    for pid in pids:
        if pid == os.getpid():
            continue
        fds = f"/proc/{pid}/fd"
        try:
            if any(os.readlink(f"{fds}/{fd}") == target for fd in os.listdir(fds)):
                found.append(pid)
        except OSError:  # another user's, or it exited meanwhile
            continue
    return found


def writer_since(holder: str) -> tuple[str, float | None]:
    """Split a lock holder ("pid N on HOST since T", see `Journal.writer`) into who and when (Unix time).

    T is ISO 8601 with the writer's UTC offset; a lock written before the offset was recorded (a local time
    of unknown zone) or any other text gives (holder, None).
    """
    who, sep, when = holder.rpartition(" since ")
    if sep:
        try:
            at = datetime.fromisoformat(when.strip())
        except ValueError:
            return holder, None
        if at.tzinfo is not None:
            return who, at.timestamp()
    return holder, None
