"""Measured latency of one forward pass: warm-up, repeated timed runs, median and spread.

CPU runs are timed with `time.perf_counter_ns` under a pinned thread count (restored afterwards);
CUDA runs with CUDA events, synchronising before reading them. Batch size and input shapes are explicit
in every `LatencyMeasurement`, so a figure never travels without the conditions it was taken under.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from nas.errors import ConfigError, check_int
from nas.counts import eval_mode, forward


@dataclass(frozen=True)
class LatencyMeasurement:
    """Timing statistics of `repeats` forward passes (milliseconds), and the conditions they were taken under."""

    median_ms: float
    min_ms: float
    mean_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    warmup: int
    batch_size: int
    input_shapes: tuple[tuple[int, ...], ...]
    device: str
    threads: int | None
    timer: str
    rounds: int = 1  # `repeats` timed runs per round; rounds of several networks interleave (measure_latencies)
    times_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)  # every timed run, in time order

    @property
    def spread_ms(self) -> float:
        """p90 - p10: the width of the central 80 % of the timed runs."""
        return self.p90_ms - self.p10_ms

    @property
    def round_min_ms(self) -> float:
        """The median over rounds of each round's fastest run (`min_ms` with one round; nan without the runs)."""
        if not self.times_ms:
            return self.min_ms if self.rounds == 1 else float("nan")
        return _round_min(np.asarray(self.times_ms, dtype=float), self.rounds)

    def value(self, statistic: str = "median") -> float:
        """The latency by `statistic` (`STATISTICS`: "median", "min", "mean", "round_min")."""
        check_statistic(statistic)
        return float(getattr(self, f"{statistic}_ms"))

    def repeatability(self, statistic: str = "median") -> float:
        """How far a second measurement may land, relative: the timed runs cut in two halves in time (whole
        rounds when there are several), `statistic` of each, |a - b| / min(a, b); nan under 2 runs kept.

        A lower bound: a slow phase of the machine that lasts longer than the whole measurement slows both
        halves alike; only passes taken further apart (export's and verify's) show that."""
        check_statistic(statistic)
        t = np.asarray(self.times_ms, dtype=float)
        if t.size < 2:
            return float("nan")
        half = self.rounds // 2
        cut = half * (t.size // self.rounds) if self.rounds > 1 else t.size // 2
        if statistic == "round_min" and self.rounds > 1:
            a, b = _round_min(t[:cut], half), _round_min(t[cut:], self.rounds - half)
        elif statistic == "round_min":  # one round: round_min is the min, so its halves are compared
            a, b = float(np.min(t[:cut])), float(np.min(t[cut:]))
        else:
            a, b = float(_STATISTICS[statistic](t[:cut])), float(_STATISTICS[statistic](t[cut:]))
        return abs(a - b) / min(a, b) if min(a, b) > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["times_ms"]
        d["round_min_ms"] = self.round_min_ms
        d["repeatability"] = self.repeatability()
        d["input_shapes"] = [list(s) for s in self.input_shapes]
        return d


_STATISTICS = {"median": np.median, "min": np.min, "mean": np.mean}
# The statistics a latency can be read by. "round_min" (the median over interleaved rounds of each round's
# fastest run) is the one that holds on a contended machine: see docs/hardware.md, "Which statistic".
STATISTICS = ("median", "min", "mean", "round_min")


def check_statistic(statistic: Any, name: str = "statistic") -> str:
    """`statistic` when it is one of `STATISTICS`; ConfigError naming `name` otherwise."""
    if statistic not in STATISTICS:
        raise ConfigError(f"{name}: expected one of {', '.join(STATISTICS)}, got {statistic!r}")
    return str(statistic)


def _round_min(t: np.ndarray, rounds: int) -> float:
    """Median over `rounds` consecutive slices of `t` (the rounds, in time order) of each slice's minimum."""
    return float(np.median([c.min() for c in np.array_split(t, max(1, min(rounds, t.size)))]))


def summarise(times_ms: np.ndarray | list[float], *, warmup: int, batch_size: int,
              input_shapes: tuple[tuple[int, ...], ...], device: str, threads: int | None,
              timer: str, rounds: int = 1) -> LatencyMeasurement:
    """A `LatencyMeasurement` from raw per-run times in milliseconds (`rounds` rounds pooled)."""
    t = np.asarray(times_ms, dtype=float)
    if t.size == 0:
        raise ConfigError("repeats: at least one timed run is needed")
    p10, p50, p90 = np.percentile(t, [10, 50, 90])
    return LatencyMeasurement(float(p50), float(t.min()), float(t.mean()), float(p10), float(p90),
                              int(t.size) // rounds, warmup, batch_size, input_shapes, device, threads, timer, rounds,
                              tuple(float(v) for v in t))


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `torch.set_num_threads(threads)` (unchanged when None), restoring the old count."""
    if threads is None:
        yield
        return
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"threads: expected a positive int, got {threads!r}")
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def timing_placement(modules: Sequence[torch.nn.Module], device: torch.device) -> Iterator[None]:
    """Put each module on `device` in eval mode for the block, then give it back as it came, also after an error.

    Timing must not change the caller's model: one timed mid-training would otherwise go on with dropout off
    and batch norm frozen, or find itself on another device. Restored: every submodule's train/eval mode, and
    the device of each module's parameters and buffers (one `to()` back when they shared a device; per submodule
    when the module was spread over several). Nothing moves, and nothing is copied, when they are on `device`.
    """
    distinct = list({id(m): m for m in modules}.values())
    for m in distinct:
        check_materialised(m)
    homes = [(m, _own_devices(m)) for m in distinct]
    with contextlib.ExitStack() as modes:
        for m in distinct:
            modes.enter_context(eval_mode(m))
        try:
            for m in distinct:
                m.to(device)
            yield
        finally:
            for m, own in homes:
                _restore_devices(m, own, device)


def check_materialised(module: torch.nn.Module | None = None, inputs: Any = None) -> None:
    """ConfigError when `module`'s parameters or buffers, or a tensor of `inputs`, are on the `meta` device: they
    hold no data, so they cannot be run or timed (counting them works). torch's own error, from the copy to the
    timing device, was a NotImplementedError naming no parameter."""
    if module is not None:
        named = [*module.named_parameters(remove_duplicate=True), *module.named_buffers(remove_duplicate=True)]
        meta = [name for name, t in named if t.is_meta]
        if meta:
            raise ConfigError(f"module has {len(meta)} parameter(s)/buffer(s) on 'meta' (no data: {', '.join(meta[:3])}"
                              f"{', ...' if len(meta) > 3 else ''}): it cannot be run or timed; materialise it first "
                              "(module.to_empty(device='cpu'), then initialise or load its weights)")
    if any(t.is_meta for t in tensors_in(inputs)):
        raise ConfigError("inputs: a tensor is on 'meta' (no data): it cannot be run or timed; give real tensors "
                          "(e.g. torch.randn of the same shape)")


def _own_devices(module: torch.nn.Module) -> dict[int, tuple[torch.nn.Module, set[torch.device]]]:
    """For each submodule (by id), the devices its own parameters and buffers are on."""
    out: dict[int, tuple[torch.nn.Module, set[torch.device]]] = {}
    for sub in module.modules():
        own = {t.device for t in (*sub.parameters(recurse=False), *sub.buffers(recurse=False))}
        if own:
            out[id(sub)] = (sub, own)
    return out


def _restore_devices(module: torch.nn.Module, own: Mapping[int, tuple[torch.nn.Module, set[torch.device]]],
                     moved_to: torch.device) -> None:
    """Move `module`'s tensors back to the devices `_own_devices` recorded (no-op when none moved)."""
    homes = {d for _, devices in own.values() for d in devices}
    if not homes or homes == {moved_to}:
        return
    if len(homes) == 1:
        module.to(next(iter(homes)))
        return
    for sub, devices in own.values():  # a module spread over devices: each submodule back where it was
        if len(devices) == 1:
            home = next(iter(devices))
            sub._apply(lambda t, home=home: t.to(home), recurse=False)


def check_torch_device(device: str, name: str = "device") -> torch.device:
    """`device` as a torch device; ConfigError naming `name` when it is malformed or its CUDA GPU is not here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{name} {device!r}: not a torch device (expected cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{name} {device!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{name} {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in a tensor, or in a tuple/list/dict nesting them."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in tensors_in(v)]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_in(v)]
    return []


def to_device(value: Any, device: torch.device) -> Any:
    """`value` with every tensor in it moved to `device`."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(to_device(v, device) for v in value)
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    return value


def time_cpu(fn: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    """Per-run wall times (ms) of `fn` after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def time_cuda(fn: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    """Per-run GPU times (ms) of `fn` from CUDA events, after `warmup` runs; synchronises before reading."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    pairs = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        pairs.append((start, end))
    torch.cuda.synchronize()
    return [float(s.elapsed_time(e)) for s, e in pairs]


def measure_latency(module: torch.nn.Module, inputs: Any, *, device: str = "cpu", warmup: int = 10,
                    repeats: int = 50, threads: int | None = 1, rounds: int = 1) -> LatencyMeasurement:
    """Time `module(inputs)` in eval mode without autograd on `device` (the module is moved there for the run;
    its device and each submodule's train/eval mode are restored afterwards, `timing_placement`).

    `inputs` is a tensor, a tuple of args or a dict of kwargs; its first tensor's leading dimension is
    the recorded batch size. On CPU, `threads` pins torch's intra-op threads for the run (None: as is).
    `rounds` repeats warm-up and `repeats` timed runs that many times, pooling the times.
    """
    return measure_latencies([(module, inputs)], device=device, warmup=warmup, repeats=repeats, threads=threads,
                             rounds=rounds)[0]


def measure_latencies(items: Sequence[tuple[torch.nn.Module, Any]], *, device: str = "cpu", warmup: int = 2,
                      repeats: int = 3, rounds: int = 20, threads: int | None = 1,
                      seed: int = 0, on_round: Callable[[int], None] | None = None) -> list[LatencyMeasurement]:
    """Time several networks in interleaved rounds: each round times every `(module, inputs)` once, in a
    shuffled order (`warmup` untimed then `repeats` timed runs), and each network's runs are pooled.

    On a shared or virtual machine, slow phases (other tenants, frequency changes; 10-30 s and up to 1.7x
    slower on this project's VM) last longer than one network's runs: timing a network in one block can
    catch a whole phase, while its minimum over many rounds spread in time does not. Measured here on 30
    OFA subnets timed twice: one block of 50 runs agreed with itself within +-10 % for 37 % of them,
    interleaved rounds for 100 % (experiments/README.md, docs/hardware.md). More rounds spread further.
    Under sustained contention the machine instead has short fast bursts, which decide a pass's `min`;
    read such passes by `round_min` (docs/hardware.md, "Which statistic"). `on_round(r)` is called after round r.
    """
    check_int(warmup, "warmup", 0)
    check_int(repeats, "repeats", 1)
    check_int(rounds, "rounds", 1)
    dev = check_torch_device(device)
    runs, shapes = [], []
    for module, inputs in items:
        check_materialised(module, inputs)
        moved = to_device(inputs, dev)
        shapes.append(tuple(tuple(t.shape) for t in tensors_in(moved)))
        runs.append(functools.partial(forward, module, moved))
    timed = time_cuda if dev.type == "cuda" else time_cpu
    times: list[list[float]] = [[] for _ in runs]
    order_rng = np.random.default_rng(seed)
    used: int | None = None
    with timing_placement([module for module, _ in items], dev), torch.inference_mode(), \
            pinned_threads(threads if dev.type == "cpu" else None):
        if dev.type == "cpu":
            used = torch.get_num_threads()
        for r in range(rounds):
            for i in order_rng.permutation(len(runs)):
                times[i].extend(timed(runs[i], warmup, repeats))
            if on_round is not None:  # a progress bar: a long pass shows it moves
                on_round(r + 1)
    timer = "cuda_event" if dev.type == "cuda" else "perf_counter"
    return [summarise(t, warmup=warmup, batch_size=int(shape[0][0]) if shape and shape[0] else 1,
                      input_shapes=shape, device=str(dev), threads=used, timer=timer, rounds=rounds)
            for t, shape in zip(times, shapes)]


def host_info(device: str = "cpu") -> dict[str, Any]:
    """Which machine a measurement comes from: CPU model, core count, torch version, GPU name on CUDA."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "torch": torch.__version__, "cpu": _cpu_model(), "cpu_count": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        info["affinity"] = sorted(os.sched_getaffinity(0))
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
