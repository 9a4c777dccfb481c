"""The one place that reads and writes the toolkit's JSON and JSON-lines files.

Shared by the journal, latency tables, model specs, export indexes and device profiles, so every file
gets the same guarantees: strict JSON (no NaN tokens), whole files replaced atomically, appended lines
fsync'd (an append that fails part way, on a full disk, is cut back off), blank lines skipped on read, and
errors that name the file (and line) in one sentence. Readers never write: repairing a torn last line is a
separate call that only a file's single writer makes.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import ConfigError, NASError


def dumps(value: Any, indent: int | None = None, allow_nan: bool = False) -> str:
    """Strict JSON text (NaN and infinity are errors: store them as strings first) unless `allow_nan`, for
    reports whose measured values may be NaN (Python's json reads those tokens back)."""
    return json.dumps(value, allow_nan=allow_nan, indent=indent)


def plain(value: Any, what: str) -> Any:
    """`value` as plain JSON data (dicts, lists, str, numbers); ConfigError naming `what` when it is not."""
    try:
        return json.loads(dumps(value))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: not plain JSON data ({e})") from None


def python_scalar(value: Any) -> Any:
    """A numpy scalar as its Python twin (np.int64(8) -> 8, np.str_ -> str, np.bool_ -> bool), which checks and JSON
    take; anything else as it is (an array too, so the caller's check names it, rather than `.item()` failing)."""
    return value.item() if isinstance(value, np.generic) else value


def plain_value(value: Any) -> Any:
    """`value` with numpy scalars as their Python twins (`python_scalar`), inside dicts, lists and tuples too: they
    mean what those mean, and the journal (JSON) takes only the twins."""
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(plain_value(v) for v in value)
    return python_scalar(value)


def not_a_file(path: Path) -> str:
    """Why `path` cannot be read as a file: a folder is named as one, not as "file not found"."""
    return "a folder, not a file" if path.is_dir() else "file not found"


def read_json(path: str | os.PathLike[str], what: str = "file", error: type[NASError] = ConfigError) -> Any:
    """The JSON value in `path`; `error` naming `what` and the file when it is missing or not JSON."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} {p}: {not_a_file(p)}")
    try:
        return json.loads(p.read_bytes())
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise error(f"{what} {p}: not valid JSON ({e})") from None


def sync(fd: int) -> None:
    """Flush written data to disk (fdatasync also persists a new file size: enough for appends)."""
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def write_json(path: str | os.PathLike[str], value: Any, indent: int | None = 1, allow_nan: bool = False) -> None:
    """Replace `path` with `value` as JSON atomically: a reader sees the old file or the new, never half."""
    write_bytes(path, (dumps(value, indent, allow_nan) + "\n").encode())


def write_bytes(path: str | os.PathLike[str], data: bytes, durable: bool = True) -> None:
    """Write `data` to a temporary sibling, fsync it (unless not `durable`: a status file that only readers
    of a live process need) and rename it over `path`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write (path is a folder, disk full) leaves no stray file
        raise


@dataclass(frozen=True)
class JsonLines:
    """What a JSON-lines file holds now: its records with their 1-based line numbers, and its tail.

    `torn` is the length of an incomplete last line (a write in progress, or a crash mid-write), left out
    of `records`; `unterminated` says the last record is complete but lacks its newline. `last_line` is the
    number of the last line read (blank lines hold no record but count).
    """

    path: Path
    records: list[tuple[int, dict[str, Any]]]
    size: int
    torn: int = 0
    unterminated: bool = False
    last_line: int = 0


def read_jsonl(path: str | os.PathLike[str], what: str = "file", error: type[NASError] = ConfigError,
               start: int = 0, first_line: int = 1) -> JsonLines:
    """Parse a JSON-lines file without changing it; damage before the last line is `error` naming path:line.

    Blank lines (an editor's trailing empty line after a hand edit) are skipped, as JSON-lines readers do.
    `start` (a byte offset where a line begins, numbered `first_line`) reads only what was appended since an
    earlier read: a reader that follows a growing file parses each line once. `size` is the file's size.
    """
    p = Path(path)
    with open(p, "rb") as f:
        f.seek(start)
        raw = f.read()
    lines = raw.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    records: list[tuple[int, dict[str, Any]]] = []
    for i, line in enumerate(lines, start=first_line):
        if line.strip():
            records.append((i, _record(p, i, line, what, error)))
    last = first_line + len(lines) - 1
    torn, unterminated = 0, False
    if tail:
        try:
            records.append((last + 1, _record(p, last + 1, tail, what, error)))
            unterminated, last = True, last + 1
        except error as e:
            damage = _not_a_prefix(tail)
            if damage is not None:  # a torn write is a prefix of one line: anything else is damage, kept as it is
                raise error(f"{e}: {damage}, not a write cut short, so it is not dropped; fix or remove that line "
                            "by hand (or restore the file from a copy)") from None
            torn = len(tail)
    return JsonLines(p, records, start + len(raw), torn, unterminated, last)


_PARTIAL_TOKEN = re.compile(rb"-?[0-9.eE+-]*|t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?|N(aN?)?|-?I(n(f(i(n(i(ty?)?)?)?)?)?)?")
"""What a write cut inside a number or literal leaves where the parser stopped: the start of that token."""


def _not_a_prefix(tail: bytes) -> str | None:
    """Why an incomplete last line `tail` cannot be the start of one JSON object line (a write cut short), or None
    when it can. A crash may leave zeros where appended data never landed; they, and a cut UTF-8 character, are
    part of a torn write."""
    data = tail.rstrip(b"\x00").lstrip(b" \t\r")
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM before a torn first line
        data = data[3:]
    if not data:
        return None
    if not data.startswith(b"{"):
        return "it does not begin with '{' as every record does"
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        if e.reason != "unexpected end of data":
            return f"it is not UTF-8 ({e})"
        text = data[:e.start].decode()
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":
            return f"it holds a complete record followed by other bytes (from column {e.pos + 1})"
        if e.msg.startswith("Unterminated string") or (e.msg.startswith("Invalid \\uXXXX") and len(text) - e.pos <= 6) \
                or _PARTIAL_TOKEN.fullmatch(text[e.pos:].encode()):
            return None  # the input ran out inside a string, an escape, a number or a literal, or between tokens
        return f"it is not JSON from column {e.pos + 1} on ({e.msg})"
    return "it holds a complete record followed by a partial character"


def _record(path: Path, number: int, line: bytes, what: str, error: type[NASError]) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except ValueError as e:
        raise error(f"{path}:{number}: corrupt {what} line ({e})") from None
    if not isinstance(rec, dict):
        raise error(f"{path}:{number}: corrupt {what} line (a {type(rec).__name__}, expected an object)")
    return rec


def append_jsonl(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]], allow_nan: bool = False) -> None:
    """Append records as JSON lines (strict unless `allow_nan`, as `dumps`), then fsync: a crash leaves at most one
    torn line. A write that fails part way (a full disk writes what fits, then refuses the rest) is cut back off
    before the error is raised, so no later append can follow a torn line."""
    data = memoryview("".join(dumps(dict(r), allow_nan=allow_nan) + "\n" for r in records).encode())
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn line its writer did not repair (`repair_tail`)
            raise OSError(errno.EIO, f"{path} ends with an incomplete line; not appending after it")
        try:
            while data:
                written = os.write(fd, data)  # short when the disk fills up: the rest then raises ENOSPC
                if written == 0:
                    raise OSError(errno.EIO, f"{path}: nothing written")
                data = data[written:]
            sync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, size)  # drop the part written
                sync(fd)
            except OSError:  # the check above refuses appending after what is left
                pass
            raise
    finally:
        os.close(fd)


def repair_tail(lines: JsonLines) -> bool:
    """For a file's single writer only: drop a torn last line, or end a complete last record with its newline.

    Returns whether the file changed. Readers never call this: a torn line they see may still be being written.
    """
    if lines.torn:
        with open(lines.path, "r+b") as f:
            f.truncate(lines.size - lines.torn)
            f.flush()
            os.fsync(f.fileno())
        return True
    if lines.unterminated:
        fd = os.open(lines.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"\n")
            sync(fd)
        finally:
            os.close(fd)
        return True
    return False
