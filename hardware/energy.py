"""Energy per inference: measured (NVML on NVIDIA GPUs, RAPL on CPUs that expose it) or an analytic estimate.

Measured energy is the whole device's (GPU board for NVML, CPU package for RAPL) over a loop of forward
passes lasting at least `min_seconds`, divided by the number of passes: it includes static power. The
analytic model (`analytic_energy`) charges energy per FLOP and per byte moved from the device profile,
plus static power x latency when the profile gives one; it is an estimate and always labelled so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from nas.errors import ConfigError
from nas.counts import LeafCount, forward
from nas.hardware.devices import DeviceProfile
from nas.hardware.latency import check_materialised, pinned_threads, tensors_in, timing_placement, to_device
from nas.hardware.roofline import roofline

POWERCAP = Path("/sys/class/powercap")


class EnergyMeter(Protocol):
    """Something that measures joules between `start()` and `stop()`."""

    source: str

    def start(self) -> None: ...

    def stop(self) -> float: ...


class RaplMeter:
    """CPU package energy from the Linux powercap RAPL counters (`intel-rapl:N/energy_uj`, wrap-around handled)."""

    source = "rapl"

    def __init__(self, root: str | Path | None = None) -> None:
        self.domains = rapl_domains(root)
        if not self.domains:
            raise ConfigError(f"RAPL: no readable package energy counter under {root or POWERCAP} (absent, or "
                              "readable by root only); use the analytic energy estimate instead")
        self._start: list[int] = []

    def _read(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> float:
        total = 0
        for d, before, after in zip(self.domains, self._start, self._read()):
            delta = after - before
            if delta < 0:
                delta += int((d / "max_energy_range_uj").read_text())
            total += delta
        return total / 1e6


def rapl_domains(root: str | Path | None = None) -> list[Path]:
    """Readable top-level RAPL package domains (`intel-rapl:0`, ...; sub-domains such as `intel-rapl:0:0` are parts)."""
    root = Path(root) if root is not None else POWERCAP
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.glob("intel-rapl:*")):
        if d.name.count(":") != 1:
            continue
        try:
            int((d / "energy_uj").read_text())
        except (OSError, ValueError):
            continue
        out.append(d)
    return out


def import_pynvml() -> Any:
    """The `pynvml` module (package nvidia-ml-py), imported only on GPU paths."""
    try:
        import pynvml
    except ImportError:
        raise ConfigError("NVML energy needs the `nvidia-ml-py` package (pip install nvidia-ml-py)") from None
    return pynvml


class NvmlMeter:
    """NVIDIA GPU energy through NVML: power sampled in a thread and integrated (trapezoids) over the run.

    With `method="counter"` (or "auto" on GPUs that support it, Volta and newer) the board's total-energy
    counter is read at start and stop instead; the samples are still taken for the mean power.
    """

    source = "nvml"

    def __init__(self, index: int = 0, interval_s: float = 0.005, method: str = "auto") -> None:
        if method not in ("auto", "counter", "sampling"):
            raise ConfigError(f"method: expected auto, counter or sampling, got {method!r}")
        self.index, self.interval_s, self.method = index, interval_s, method
        self.samples: list[tuple[float, float]] = []  # (seconds, watts)
        self.used: str | None = None
        self._nvml: Any = None
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._counter_start: int | None = None

    def _power(self) -> float:
        return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0

    def _loop(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.perf_counter(), self._power()))
            self._stop_event.wait(self.interval_s)

    def start(self) -> None:
        self._nvml = import_pynvml()
        self._nvml.nvmlInit()
        self._handle = self._nvml.nvmlDeviceGetHandleByIndex(self.index)
        self._counter_start = None
        if self.method in ("auto", "counter"):
            try:
                self._counter_start = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
            except Exception as e:  # NVMLError_NotSupported on older GPUs
                if self.method == "counter":
                    self._nvml.nvmlShutdown()
                    raise ConfigError(f"NVML: this GPU has no total-energy counter ({e}); "
                                      "use method='sampling'") from None
        self.samples = [(time.perf_counter(), self._power())]  # the integral starts here, not at the thread's first turn
        self._stop_event.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop_event.set()
        assert self._thread is not None
        self._thread.join()
        self.samples.append((time.perf_counter(), self._power()))
        try:
            if self._counter_start is not None:
                self.used = "counter"
                return (int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)) - self._counter_start) / 1e3
            self.used = "sampling"
            return integrate(self.samples)
        finally:
            self._nvml.nvmlShutdown()


def integrate(samples: Sequence[tuple[float, float]]) -> float:
    """Joules from (seconds, watts) samples by the trapezoid rule."""
    return float(sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(samples, samples[1:])))


@dataclass(frozen=True)
class EnergyMeasurement:
    """Measured energy per forward pass (mJ), with the loop it came from."""

    energy_mj: float
    joules: float
    seconds: float
    runs: int
    mean_power_w: float
    source: str
    device: str
    batch_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_meter(device: str) -> EnergyMeter:
    """NVML for a CUDA device, RAPL for the CPU (ConfigError when neither is usable here)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return NvmlMeter(index=dev.index or 0)
    return RaplMeter()


def measure_energy(module: torch.nn.Module, inputs: Any, *, device: str = "cpu", meter: EnergyMeter | None = None,
                   min_seconds: float = 1.0, warmup: int = 10, threads: int | None = 1) -> EnergyMeasurement:
    """Run `module(inputs)` for at least `min_seconds` under `meter`; energy per run in mJ. The module runs in eval
    mode on `device`; its device and each submodule's train/eval mode are restored afterwards."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available on this machine")
    check_materialised(module, inputs)
    meter = meter if meter is not None else default_meter(device)
    inputs = to_device(inputs, dev)
    shapes = [tuple(t.shape) for t in tensors_in(inputs)]
    sync: Callable[[], None] = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with timing_placement([module], dev), torch.inference_mode(), \
            pinned_threads(threads if dev.type == "cpu" else None):
        for _ in range(warmup):
            forward(module, inputs)
        sync()
        runs = 0
        meter.start()
        t0 = time.perf_counter()
        while True:
            forward(module, inputs)
            runs += 1
            if runs % 8 == 0 or dev.type == "cpu":
                if time.perf_counter() - t0 >= min_seconds:
                    sync()
                    if time.perf_counter() - t0 >= min_seconds:
                        break
        seconds = time.perf_counter() - t0
        joules = meter.stop()
    batch = int(shapes[0][0]) if shapes and shapes[0] else 1
    return EnergyMeasurement(joules * 1e3 / runs, joules, seconds, runs, joules / seconds, meter.source, str(dev),
                             batch)


@dataclass(frozen=True)
class AnalyticEnergy:
    """An estimate (mJ per forward pass): compute + memory traffic (+ static power x latency when known)."""

    energy_mj: float
    compute_mj: float
    memory_mj: float
    static_mj: float
    device: str
    dtype: str
    estimate: bool = True
    static_latency_ms: float | None = None  # the latency static power was charged over
    static_latency_from: str | None = None  # "latency model", or "roofline lower bound" when none was given

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def analytic_energy(leaves: Sequence[LeafCount], device: DeviceProfile, dtype: str = "float32",
                    latency_ms: float | None = None, threads: int | None = None) -> AnalyticEnergy:
    """FLOPs x pJ/FLOP + bytes moved x pJ/byte (+ static power x latency) from the device profile; without
    `latency_ms`, static power is charged over the roofline lower bound (labelled so: a lower bound too)."""
    if device.energy_pj_per_byte is None:
        raise ConfigError(f"device {device.name!r}: no energy_pj_per_byte in its profile, so no analytic energy "
                          "estimate (add energy_pj_per_byte and tdp_w or energy_pj_per_flop to the profile)")
    compute = sum(x.flops for x in leaves) * device.pj_per_flop(dtype) * 1e-9
    memory = sum(x.bytes_moved for x in leaves) * device.energy_pj_per_byte * 1e-9
    source = None
    if device.static_power_w:
        source = "latency model"
        if latency_ms is None:
            latency_ms, source = roofline(leaves, device, dtype, threads).bound_ms, "roofline lower bound"
    static = (device.static_power_w or 0.0) * (latency_ms or 0.0)  # W x ms = mJ
    return AnalyticEnergy(compute + memory + static, compute, memory, static, device.name, dtype,
                          static_latency_ms=latency_ms if source else None, static_latency_from=source)
