"""Per-layer latency lookup tables (ProxylessNAS / OFA / FBNet style): profile each layer once, sum per architecture.

A table is a JSON Lines file: the first line is a header (format, the adapter's description of the space,
device, batch size, threads, dtype, warm-up and repeats, host, load average), each further line one layer
configuration with its timing statistics and counts. Lines are appended and fsync'd as they are measured,
so an interrupted `build_table` resumes where it stopped (a torn last line is dropped).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas import jsonio
from nas.errors import ConfigError, check_int
from nas.hardware.devices import DeviceProfile, default_device, load_device
from nas.hardware.latency import check_statistic, check_torch_device, host_info, measure_latencies
from nas.hardware.layers import LayerAdapter, LayerConfig, unique

log = logging.getLogger(__name__)

FORMAT = "nas-latency-table"
VERSION = 1
# Header fields that must match for a table to be extended (resumed) with new measurements.
_SAME_BUILD = ("format", "version", "adapter", "torch_device", "device", "batch_size", "threads", "dtype", "warmup",
               "repeats", "rounds")
# Layers timed together in interleaved rounds, then appended: the unit of resumption. Large, so each layer's rounds
# spread over the whole pass of a built-in space (robust to the VM's 10-30 s slow phases); progress moves per round.
CHUNK = 1024


class HostMismatchWarning(UserWarning):
    """A latency table timed on another CPU or GPU model, or another torch version, is used as this machine's."""


_warned_hosts: set[str] = set()  # the host-mismatch messages already given (each once per process)


@dataclass(frozen=True)
class TableEntry:
    """One profiled layer: timing statistics (ms), counts, and the 1-minute load average when it was measured."""

    layer: LayerConfig
    median_ms: float
    min_ms: float
    mean_ms: float
    p10_ms: float
    p90_ms: float
    flops: int
    params: int
    bytes_moved: int
    load: float | None = None
    round_min_ms: float | None = None  # None in tables measured before the statistic existed

    def value(self, statistic: str) -> float:
        v = getattr(self, f"{check_statistic(statistic)}_ms")
        if v is None:
            raise ConfigError(f"layer {self.layer.key}: this table entry has no {statistic} (measured before that "
                              "statistic was recorded); rebuild the table, or use median, min or mean")
        return float(v)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.layer.key, **self.layer.to_dict(), "median_ms": self.median_ms, "min_ms": self.min_ms,
                "mean_ms": self.mean_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms,
                **({"round_min_ms": self.round_min_ms} if self.round_min_ms is not None else {}),
                "flops": self.flops, "params": self.params, "bytes_moved": self.bytes_moved, "load": self.load}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TableEntry":
        """From `to_dict` output; ValueError naming the field when a timing is not a finite number >= 0 (a
        hand-edited or corrupt line would otherwise price architectures at NaN or negative latency), or a count
        (FLOPs, parameters, bytes) not a whole number >= 0 (a learned model takes its log)."""
        rm = d.get("round_min_ms")
        times = [_milliseconds(d, f) for f in ("median_ms", "min_ms", "mean_ms", "p10_ms", "p90_ms")]
        counts = [_count(d, f) for f in ("flops", "params", "bytes_moved")]
        return cls(LayerConfig.from_dict(d), *times, *counts, d.get("load"),
                   None if rm is None else _milliseconds(d, "round_min_ms"))


def _milliseconds(d: Mapping[str, Any], name: str) -> float:
    """`d[name]` as a finite number of milliseconds >= 0 (0 allowed: a layer that launches no work can time at 0 on
    a GPU's event timer); ValueError naming the field otherwise."""
    value = d[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number of milliseconds >= 0, got {value!r}")
    return float(value)


def _count(d: Mapping[str, Any], name: str) -> int:
    """`d[name]` as a count >= 0 (an int, or a float with no fraction); ValueError naming the field otherwise."""
    value = d[name]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a whole number >= 0, got {value!r}")
    return value


class LatencyTable:
    """A lookup table: `header` (how it was measured) and `entries` by layer key; `statistic` picks the value summed."""

    def __init__(self, header: Mapping[str, Any], entries: Iterable[TableEntry] = (), path: Path | None = None,
                 statistic: str = "median") -> None:
        check_statistic(statistic)
        check_header(header, f"latency table {path or '(in memory)'}")
        self.header = dict(header)
        self.entries: dict[str, TableEntry] = {}
        for e in entries:
            if self.entries.setdefault(e.layer.key, e) != e:
                raise ConfigError(f"latency table {path or '(in memory)'}: two entries for layer {e.layer.key} with "
                                  "different values; give each layer once")
        old = next((e for e in self.entries.values() if getattr(e, f"{statistic}_ms") is None), None)
        if old is not None:
            raise ConfigError(f"statistic: latency table {path or '(in memory)'} has no {statistic} for "
                              f"{old.layer.key} (measured before that statistic was recorded); rebuild the table "
                              "(or the layers lacking it), or use median, min or mean")
        self.path = path
        self.statistic = statistic

    @property
    def batch_size(self) -> int:
        return int(self.header["batch_size"])

    @property
    def device(self) -> str | None:
        """The device profile name the table was measured on (None when the machine has no profile)."""
        return self.header.get("device")

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, layer: LayerConfig) -> bool:
        return layer.key in self.entries

    def with_statistic(self, statistic: str) -> "LatencyTable":
        """The same table summing another statistic (median, min or mean)."""
        return LatencyTable(self.header, self.entries.values(), self.path, statistic)

    def layer_ms(self, layer: LayerConfig) -> float:
        """The table's latency for one layer; ConfigError naming the layer when it was never profiled."""
        entry = self.entries.get(layer.key)
        if entry is None:
            raise ConfigError(f"layer {layer.key} is not in the latency table {self.path or '(in memory)'}: build it "
                              f"with `nas hardware build-lut` (resumable) or `build_table(..., layers=...)`")
        return entry.value(self.statistic)

    def predict(self, layers: Iterable[LayerConfig]) -> float:
        """Latency (ms) of a network made of `layers`: the sum of their table values."""
        return float(sum(self.layer_ms(layer) for layer in layers))

    def missing(self, layers: Iterable[LayerConfig]) -> list[LayerConfig]:
        return [layer for layer in unique(layers) if layer.key not in self.entries]

    def check_host(self) -> None:
        """Warn (`HostMismatchWarning`, once per table and machine) when the table claims this machine's device
        profile (every CPU's tables say `local_cpu`; an unlisted GPU's none) but its header's `host` names another
        CPU model (GPU model on CUDA) or torch major.minor version than this machine's. A warning, not a refusal:
        identical machines share tables. Headers without `host` (made in code) are not checked."""
        torch_device = str(self.header.get("torch_device") or "cpu")
        if self.device is not None and self.device != default_device(torch_device):
            return  # a table of another device, used as that device's
        diff = host_differences(self.header.get("host"), torch_device)
        if not diff:
            return
        text = (f"latency table {self.path or '(in memory)'} was timed on another machine ({'; '.join(diff)}), yet "
                f"is used for this one's {self.device or torch_device}: its figures are that machine's (rebuild it "
                "here, or onboard it on this machine's measurements)")
        if text not in _warned_hosts:
            _warned_hosts.add(text)
            warnings.warn(text, HostMismatchWarning, stacklevel=3)

    def check_adapter(self, adapter: LayerAdapter) -> None:
        """ConfigError naming the differing fields when the table was built for another space frame than `adapter`."""
        diff = adapter_differences(self.header.get("adapter"), adapter.describe(),
                                   getattr(adapter, "training_only", ()))
        if diff:
            raise ConfigError(f"latency table {self.path or '(in memory)'} was built for another space: {diff}")

    @classmethod
    def load(cls, path: str | Path, statistic: str = "median") -> "LatencyTable":
        header, entries, _ = _read(Path(path))
        return cls(header, entries, Path(path), statistic)


_ABSENT = object()


def host_differences(recorded: Any, torch_device: str = "cpu") -> list[str]:
    """How the machine in a table header's `host` differs from this one: the CPU model (the GPU model on CUDA) and
    torch's major.minor version, each as `what: table X, here Y`; [] when nothing recorded differs."""
    if not isinstance(recorded, Mapping):
        return []
    here = host_info(torch_device)
    out = []
    what = "gpu" if torch_device.startswith("cuda") else "cpu"
    if recorded.get(what) is not None and recorded[what] != here.get(what):
        out.append(f"{what}: table {recorded[what]!r}, here {here.get(what) or 'none'!r}")
    table_torch, this_torch = _major_minor(recorded.get("torch")), _major_minor(here["torch"])
    if table_torch is not None and table_torch != this_torch:
        out.append(f"torch: table {table_torch}, here {this_torch}")
    return out


def _major_minor(version: Any) -> str | None:
    """`2.3` of a torch version such as `2.3.1+cpu` (None when none is recorded)."""
    return ".".join(str(version).split("+")[0].split(".")[:2]) if version else None


def adapter_differences(table: Any, space: Any, ignore: Iterable[str] = ()) -> str:
    """The fields where two adapter descriptions differ, as `field: table X, space Y; ...` ('' when equal), leaving
    out the dotted fields `ignore` (an adapter's `training_only`, which tables of older builds recorded)."""
    ignore = tuple(ignore)
    return "; ".join(_differences(_without(jsonio.plain(table, "adapter"), ignore),
                                  _without(jsonio.plain(space, "adapter"), ignore), ""))


def _without(description: Any, fields: Sequence[str], where: str = "") -> Any:
    """`description` (nested dicts) without the dotted `fields`."""
    if not isinstance(description, dict) or not fields:
        return description
    out = {}
    for k, v in description.items():
        path = f"{where}.{k}" if where else str(k)
        if path not in fields:
            out[k] = _without(v, fields, path)
    return out


def _differences(table: Any, space: Any, where: str) -> list[str]:
    """One `field: table X, space Y` per differing leaf (nested dict fields dotted), so a mismatch names its field."""
    if isinstance(table, dict) and isinstance(space, dict):
        keys = list(table) + [k for k in space if k not in table]
        return [line for k in keys
                for line in _differences(table.get(k, _ABSENT), space.get(k, _ABSENT), f"{where}.{k}" if where else k)]
    if table == space:
        return []
    return [f"{where or 'adapter'}: table {_show(table)}, space {_show(space)}"]


def _show(value: Any) -> str:
    return "absent" if value is _ABSENT else jsonio.dumps(value)


def check_local_profile(profile: str | Path | None, device: str, name: str = "profile") -> str | None:
    """The profile a table measured here may be recorded under: this machine's (`default_device(device)`).

    A table holds timings taken on this machine, so naming another device's profile would label them as
    that device's (x86 timings as "pixel4_a76"); like `CostModel(latency="measured")`, that is refused. Where
    this machine has no built-in profile (an unlisted GPU), a profile of the same kind of torch device is
    accepted (the user's own file for it)."""
    here = default_device(device)
    if profile is None:
        return here
    chosen = check_profile(profile, name)
    if chosen == here:
        return chosen
    if here is None and load_device(profile).torch_device.split(":")[0] == device.split(":")[0]:
        return chosen
    raise ConfigError(f"{name}: device {chosen!r} is not this machine's {device} ({here or 'no profile'}): a table "
                      f"records layers timed here; build it on that device, or price that device with a learned "
                      f"model or the roofline")


def check_profile(profile: str | Path | DeviceProfile, name: str = "profile") -> str:
    """The name of device profile `profile` (built-in name, .json path or `DeviceProfile`); ConfigError naming
    `name` if unknown."""
    try:
        return load_device(profile).name
    except ConfigError as e:
        raise ConfigError(f"{name}: {e}") from None


def _read(path: Path) -> tuple[dict[str, Any], list[TableEntry], jsonio.JsonLines]:
    """Header, entries, and the file's lines (a torn last line is left out: it may still be being written). A layer
    key on two lines is a ConfigError naming both when their values differ (the later would silently win); an
    identical repeat changes no value and is read once (`build_table` never writes one: it skips the keys it has)."""
    if not path.is_file():
        raise ConfigError(f"latency table {path}: {jsonio.not_a_file(path)}")
    lines = jsonio.read_jsonl(path, "latency table")
    if not lines.records:
        raise ConfigError(f"latency table {path}: empty (no header line)")
    header = lines.records[0][1]
    if header.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a latency table (format {header.get('format')!r}, expected {FORMAT!r})")
    if header.get("version") != VERSION:
        raise ConfigError(f"latency table {path}: version {header.get('version')!r}, this toolkit reads {VERSION}")
    check_header(header, f"latency table {path}", require_adapter=True)
    entries: dict[str, tuple[int, TableEntry]] = {}  # key -> (line, entry)
    for n, record in lines.records[1:]:
        try:
            entry = TableEntry.from_dict(record)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"latency table {path}: line {n} is not a valid entry ({e})") from None
        first = entries.setdefault(entry.layer.key, (n, entry))
        if first[1] != entry:
            raise ConfigError(f"latency table {path}: lines {first[0]} and {n} both hold layer {entry.layer.key} "
                              "with different values (two tables joined, or a hand edit?); keep one of them")
    return header, [entry for _, entry in entries.values()], lines


def check_header(header: Any, where: str, require_adapter: bool = False) -> None:
    """ConfigError naming `where` and the field when a header field a table's users rely on is missing or mistyped:
    `batch_size` a positive int, `threads` a positive int or null (unknown), `device` and `torch_device` strings or
    null, `adapter` an object (required of a table file: `build_table` always writes one). A string `threads` would
    silently turn off a cost model's thread check, a missing `batch_size` fail later as a bare KeyError."""
    if not isinstance(header, Mapping):
        raise ConfigError(f"{where}: the header must be an object of fields, got {type(header).__name__}")
    bs = header.get("batch_size")
    if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
        raise ConfigError(f"{where}: header field batch_size must be a positive int (the batch every layer was "
                          f"timed at), got {'nothing' if 'batch_size' not in header else repr(bs)}")
    threads = header.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"{where}: header field threads must be a positive int (the CPU threads the layers were "
                          f"timed on) or null (unknown, or a GPU), got {threads!r}")
    for name in ("device", "torch_device"):
        if header.get(name) is not None and not isinstance(header[name], str):
            raise ConfigError(f"{where}: header field {name} must be a string or null, got {header[name]!r}")
    if ("adapter" in header or require_adapter) and not isinstance(header.get("adapter"), Mapping):
        raise ConfigError(f"{where}: header field adapter must be an object (the space description the table was "
                          f"built for), got {'nothing' if 'adapter' not in header else repr(header['adapter'])}")


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def build_table(adapter: LayerAdapter, path: str | Path, *, device: str = "cpu", batch_size: int = 1,
                threads: int | None = 1, warmup: int = 2, repeats: int = 3, rounds: int = 20,
                profile: str | None = None, layers: Iterable[LayerConfig] | None = None, limit: int | None = None,
                progress: Callable[[int, int], None] | None = None) -> LatencyTable:
    """Profile every distinct layer of `adapter`'s space (or just `layers`) on `device`; append to `path`.

    Layers are timed CHUNK at a time in `rounds` interleaved rounds of `warmup` + `repeats` runs each
    (`measure_latencies`: robust to slow phases of a shared machine), then appended. An existing table at
    `path` is resumed: its layers are skipped, and its measurement settings must equal these. `limit` caps
    the number of new layers measured in this call; `profile` names the device profile recorded in the
    header (default: the machine's, e.g. `local_cpu`); another device's profile is refused, since the
    timings are this machine's (`check_local_profile`). `progress(done, total)` is called after each round
(`done` counts a chunk's layers in proportion to its rounds) and after each chunk is written.
    Every setting is checked before the file is touched, and a new table's header is written together with
    its first measured chunk, so a refused or failed build leaves no file behind to block the next one.
    """
    path = Path(path)
    check_build_settings(device=device, batch_size=batch_size, threads=threads, warmup=warmup, repeats=repeats,
                         rounds=rounds, limit=limit)
    profile = check_local_profile(profile, device)
    header = {"format": FORMAT, "version": VERSION, "adapter": jsonio.plain(adapter.describe(), "adapter"), "torch_device": device,
              "device": profile, "batch_size": batch_size,
              "threads": (threads or torch.get_num_threads()) if not device.startswith("cuda") else None, "dtype": "float32", "warmup": warmup,
              "repeats": repeats, "rounds": rounds, "host": host_info(device),
              "created": _dt.datetime.now().isoformat(timespec="seconds"), "load_at_start": _load()}
    done: dict[str, TableEntry] = {}
    unwritten: list[dict[str, Any]] = [header]  # a new table's header goes out with its first measurements
    if path.exists():
        old, entries, lines = _read(path)
        old.setdefault("rounds", 1)  # tables from before interleaved rounds
        for key in _SAME_BUILD:
            if key == "adapter":
                diff = adapter_differences(old.get(key), header[key], getattr(adapter, "training_only", ()))
                if diff:
                    raise ConfigError(f"latency table {path} was built for another space ({diff}): use another path, "
                                      "or delete the file to start over")
                continue
            if key == "threads" and old.get(key) is None and threads is None:
                continue  # a table from before the count used was recorded, resumed the same way
            if old.get(key) != header[key]:
                raise ConfigError(f"latency table {path} was built with {key}={old.get(key)!r}, this build has "
                                  f"{header[key]!r}: use another path, or delete the file to start over")
        if lines.torn:
            log.warning("latency table %s: dropping a torn last line", path)
        jsonio.repair_tail(lines)  # this build is the table's writer
        header, done, unwritten = old, {e.layer.key: e for e in entries}, []
    todo = [layer for layer in unique(layers if layers is not None else adapter.distinct_layers())
            if layer.key not in done]
    if limit is not None:
        todo = todo[:limit]
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        def round_done(r: int, start: int = start, size: int = len(chunk)) -> None:
            if progress is not None and r < rounds:  # the last round's is reported once the chunk is written
                progress(start + size * r // rounds, len(todo))

        entries = measure_layers(adapter, chunk, device=device, batch_size=batch_size, threads=threads,
                                 warmup=warmup, repeats=repeats, rounds=rounds, seed=start, on_round=round_done)
        path.parent.mkdir(parents=True, exist_ok=True)
        jsonio.append_jsonl(path, unwritten + [entry.to_dict() for entry in entries])  # one fsync'd write per chunk
        unwritten = []
        done.update((entry.layer.key, entry) for entry in entries)
        if progress is not None:
            progress(start + len(chunk), len(todo))
    if unwritten:  # nothing to measure (limit 0): the new table is its header alone
        path.parent.mkdir(parents=True, exist_ok=True)
        jsonio.append_jsonl(path, unwritten)
    return LatencyTable(header, done.values(), path)


def check_build_settings(*, device: str, batch_size: int, threads: int | None, warmup: int, repeats: int,
                         rounds: int, limit: int | None = None) -> None:
    """ConfigError naming the first bad setting of `build_table`, checked before anything is written."""
    check_torch_device(device)
    check_int(batch_size, "batch_size", 1)
    if threads is not None:
        check_int(threads, "threads", 1)
    check_int(warmup, "warmup", 0)
    check_int(repeats, "repeats", 1)
    check_int(rounds, "rounds", 1)
    if limit is not None:
        check_int(limit, "limit", 0)


def measure_layers(adapter: LayerAdapter, layers: Sequence[LayerConfig], *, device: str = "cpu",
                   batch_size: int = 1, threads: int | None = 1, warmup: int = 2, repeats: int = 3,
                   rounds: int = 20, seed: int = 0,
                   on_round: Callable[[int], None] | None = None) -> list[TableEntry]:
    """Time layers on their own, in interleaved rounds (`measure_latencies`, `on_round(rounds done)` after each),
    and count them (FLOPs, parameters, bytes moved)."""
    items = [(adapter.build_layer(layer), adapter.layer_input(layer, batch_size)) for layer in layers]
    times = measure_latencies(items, device=device, warmup=warmup, repeats=repeats, rounds=rounds,
                              threads=threads, seed=seed, on_round=on_round)
    out = []
    for layer, m in zip(layers, times):
        leaves = adapter.layer_counts(layer, batch_size)
        out.append(TableEntry(layer, m.median_ms, m.min_ms, m.mean_ms, m.p10_ms, m.p90_ms,
                              sum(x.flops for x in leaves), sum(x.params for x in leaves),
                              sum(x.bytes_moved for x in leaves), _load(), m.round_min_ms))
    return out
