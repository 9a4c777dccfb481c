"""Device profiles: small JSON files of spec-sheet figures (peak FLOP/s per dtype, memory bandwidth, energy).

A profile feeds the roofline lower bound and the analytic energy estimate. Built-in profiles live in
`hardware/devices/NAME.json`; adding a device is writing one such file (or passing the path of one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas import jsonio
from nas.errors import ConfigError

DEVICES_DIR = Path(__file__).resolve().parent / "devices"

DTYPES: tuple[str, ...] = ("float64", "float32", "tf32", "float16", "bfloat16", "float8", "int8", "int4")
"""The dtype names a profile's `peak_flops` and `energy_pj_per_flop` may use: those the cost models ask for
(`roofline.module_dtype`, `quantization.NumberFormat.compute_dtypes`). Any other key is a typo that would be
silently ignored (energy falls back to TDP / peak), so it is refused at load."""


@dataclass(frozen=True)
class DeviceProfile:
    """What a roofline and an analytic energy model need to know about one device.

    `peak_flops` maps a dtype name (float32, tf32, float16, bfloat16, int8) to the peak dense FLOP/s
    (ops/s for int8) of the whole device; `cores` is how many compute units that peak is spread over
    (CPU cores; 1 for a GPU), so a CPU run on fewer threads gets its share. `memory_bandwidth` is in
    bytes/s. Energies are in picojoules per FLOP (per dtype) and per byte of main-memory traffic.
    """

    name: str
    description: str
    kind: str  # "cpu", "gpu", "mobile-cpu", "edge-gpu", ...
    peak_flops: dict[str, float]
    memory_bandwidth: float
    torch_device: str = "cpu"
    cores: int = 1
    tdp_w: float | None = None
    energy_pj_per_flop: dict[str, float] = field(default_factory=dict)
    energy_pj_per_byte: float | None = None
    static_power_w: float | None = None
    source: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        for text in ("name", "description", "kind", "torch_device", "source", "notes"):
            if not isinstance(getattr(self, text), str):
                raise ConfigError(f"device {self.name!r}: {text} must be a string, got {getattr(self, text)!r}")
        if (not isinstance(self.peak_flops, Mapping) or not self.peak_flops
                or any(not isinstance(k, str) or not _number(v, positive=True) for k, v in self.peak_flops.items())):
            raise ConfigError(f"device {self.name!r}: peak_flops needs positive FLOP/s per dtype "
                              f"(e.g. {{\"float32\": 2e12}}), got {self.peak_flops!r}")
        if not _number(self.memory_bandwidth, positive=True):
            raise ConfigError(f"device {self.name!r}: memory_bandwidth must be positive bytes/s, "
                              f"got {self.memory_bandwidth!r}")
        if isinstance(self.cores, bool) or not isinstance(self.cores, int) or self.cores < 1:
            raise ConfigError(f"device {self.name!r}: cores must be a positive int, got {self.cores!r}")
        if self.tdp_w is not None and not _number(self.tdp_w, positive=True):
            raise ConfigError(f"device {self.name!r}: tdp_w must be positive watts, got {self.tdp_w!r}")
        for fname in ("energy_pj_per_byte", "static_power_w"):
            value = getattr(self, fname)
            if value is not None and not _number(value, positive=False):
                raise ConfigError(f"device {self.name!r}: {fname} must be a non-negative number, got {value!r}")
        if (not isinstance(self.energy_pj_per_flop, Mapping)
                or any(not isinstance(k, str) or not _number(v, positive=False)
                       for k, v in self.energy_pj_per_flop.items())):
            raise ConfigError(f"device {self.name!r}: energy_pj_per_flop needs non-negative pJ per dtype "
                              f"(e.g. {{\"float32\": 1.5}}), got {self.energy_pj_per_flop!r}")
        for fname in ("peak_flops", "energy_pj_per_flop"):
            unknown = sorted(k for k in getattr(self, fname) if k not in DTYPES)
            if unknown:
                raise ConfigError(f"device {self.name!r}: {fname} has unknown dtype name(s) "
                                  f"{', '.join(map(repr, unknown))} (known: {', '.join(DTYPES)})")

    def peak(self, dtype: str, threads: int | None = None) -> float:
        """Peak FLOP/s for `dtype` on `threads` cores (all cores when None)."""
        if dtype not in self.peak_flops:
            raise ConfigError(f"device {self.name!r}: no peak FLOP/s for dtype {dtype!r} "
                              f"(it has {', '.join(sorted(self.peak_flops))})")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads: expected a positive int (or None for all cores), got {threads!r}")
        share = 1.0 if threads is None else min(threads, self.cores) / self.cores
        return self.peak_flops[dtype] * share

    def pj_per_flop(self, dtype: str) -> float:
        """Energy per FLOP in pJ: the profile's figure, else TDP / peak (the energy of a FLOP at full load)."""
        if dtype in self.energy_pj_per_flop:
            return self.energy_pj_per_flop[dtype]
        if self.tdp_w is None:
            raise ConfigError(f"device {self.name!r}: no energy_pj_per_flop for {dtype!r} and no tdp_w to derive it")
        return self.tdp_w / self.peak(dtype) * 1e12

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DeviceProfile":
        if not isinstance(data, Mapping):
            raise ConfigError(f"device profile: expected a JSON object of fields, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"device profile: unknown field(s) {unknown} (known: {sorted(known)})")
        missing = [f for f in ("name", "description", "kind", "peak_flops", "memory_bandwidth") if f not in data]
        if missing:
            raise ConfigError(f"device profile: missing field(s) {missing}")
        return cls(**data)


def _number(value: Any, positive: bool) -> bool:
    """Whether `value` is a finite real number (not a bool or a string), > 0 when `positive`, else >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value > 0 if positive else value >= 0


def list_devices() -> list[str]:
    """Names of the built-in device profiles."""
    return sorted(p.stem for p in DEVICES_DIR.glob("*.json"))


def load_device(device: str | Path | DeviceProfile) -> DeviceProfile:
    """A profile by built-in name (`h100_sxm`), or from a JSON file path; profiles pass through."""
    if isinstance(device, DeviceProfile):
        return device
    path = Path(device)
    if path.suffix != ".json":
        path = DEVICES_DIR / f"{device}.json"
        if not path.is_file():
            raise ConfigError(f"device {str(device)!r}: no such profile (built-in: {', '.join(list_devices())}; "
                              "or give the path of a .json profile)")
    elif not path.is_file():
        raise ConfigError(f"device {str(device)!r}: file not found")
    try:
        return DeviceProfile.from_dict(jsonio.read_json(path, "device profile"))
    except ConfigError as e:
        text = str(e).removeprefix("device profile: ")
        raise ConfigError(f"device profile {path}: {text}") from None


def default_device(torch_device: str) -> str | None:
    """The built-in profile name for a torch device here: `local_cpu` for cpu; by GPU name for cuda."""
    if torch_device.startswith("cpu"):
        return "local_cpu"
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(torch.device(torch_device)).lower()
    for key, profile in (("h100", "h100_sxm"), ("a100", "a100_sxm")):
        if key in name:
            return profile
    return None


def calibrate_cpu(threads: int = 1, seconds: float = 2.0) -> dict[str, float]:
    """Measured best-case FP32 matmul FLOP/s and copy bandwidth of this CPU on `threads` threads.

    For checking a profile against the machine (achievable figures are below spec-sheet peaks); the
    best of several runs is kept, since contention only ever slows a run down.
    """
    import time

    import torch

    from nas.hardware.latency import pinned_threads

    n, mb = 512, 64
    a, b = torch.randn(n, n), torch.randn(n, n)
    src, dst = torch.empty(mb * 2**18), torch.empty(mb * 2**18)
    best_flops, best_bw = 0.0, 0.0
    deadline = time.perf_counter() + seconds
    with pinned_threads(threads):
        while time.perf_counter() < deadline or best_bw == 0.0:
            t = time.perf_counter()
            torch.mm(a, b)
            best_flops = max(best_flops, 2 * n**3 / (time.perf_counter() - t))
            t = time.perf_counter()
            dst.copy_(src)
            best_bw = max(best_bw, 2 * src.numel() * 4 / (time.perf_counter() - t))
    return {"float32_flops": best_flops, "memory_bandwidth": best_bw, "threads": float(threads)}
