"""The one hardware-cost interface: `CostModel(space, ...)(arch_or_module) -> dict[str, float]`.

Metrics (per forward pass of `batch_size` inputs), each always produced by one model fixed when the
`CostModel` is built, never by a per-call fallback:

| metric | model | meaning |
|---|---|---|
| `params`, `flops`, `macs` | count | torch FlopCounterMode; device-free |
| `latency_ms` | measured, lut, learned or e2e | latency on the cost model's device |
| `latency_roofline_ms` | roofline | lower bound from the device profile (reported beside any latency) |
| `energy_mj` | measured (NVML / RAPL) | energy per forward pass, whole device |
| `energy_est_mj` | analytic | estimate from pJ/FLOP and pJ/byte of the profile |

`provenance` maps every metric name to a JSON-ready record (model, device, batch size, threads, table,
...): pass it to `nas.search(..., metadata={"hardware": cost.provenance})` so the journal says where
each number came from. With `qualify=True` the latency and energy names carry model and device
(`latency_ms.lut.local_cpu`), and on a CPU the thread count when it is not 1 (`latency_ms.lut.local_cpu.t4`,
`qualified_name`), so results of different models can sit in one journal or front unmixed.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from nas.errors import ConfigError, check_int, check_number
from nas.evaluators import Evaluator
from nas.counts import count_leaves, count_params
from nas.hardware.devices import DeviceProfile, default_device, list_devices, load_device
from nas.hardware.energy import analytic_energy, default_meter, import_pynvml, measure_energy
from nas.hardware.latency import LatencyMeasurement, check_statistic, check_torch_device, host_info, measure_latency
from nas.hardware.learned import LayerLatencyModel, learned_latency, lut_latency
from nas.hardware.lut import LatencyTable
from nas.hardware.roofline import module_dtype, roofline
from nas.spaces.model_space import ModelSpace


class LatencyModel(Protocol):
    """What `CostModel` needs from a latency source (`MeasuredLatency`, `LayerwiseLatency`)."""

    model: str
    device: str | None
    batch_size: int
    cheap: bool

    def latency_ms(self, arch: Mapping[str, Any]) -> float: ...

    def provenance(self) -> dict[str, Any]: ...


def _timed_threads(latency: Any) -> int | None:
    """The CPU thread count a latency model's figures were timed with, where it records one (a lookup table's
    `threads`; an onboarded model's are those of its end-to-end measurements), else None. Anything else recorded
    (a string "4") is a ConfigError: taking it for unknown would turn the thread check off silently."""
    threads = getattr(latency, "threads", None)
    if threads is None:
        threads = (getattr(latency, "details", None) or {}).get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"latency: the {getattr(latency, 'model', 'latency')} model records threads={threads!r}, "
                          "expected a positive int (the CPU threads it was timed on) or None (unknown)")
    return threads


def qualified_name(metric: str, model: str, device: str, threads: int | None = 1, cpu: bool = True) -> str:
    """`metric.model.device`, plus `.t<threads>` on a CPU timed on other than 1 thread (`.tauto`: torch's own
    setting, threads=None): `latency_ms.lut.local_cpu`, `latency_ms.measured.local_cpu.t4`. One thread, the
    default, adds nothing, so names recorded before threads were named (all on 1 thread unless the journal's
    provenance says otherwise) are still these names."""
    name = f"{metric}.{model}.{device}"
    if not cpu or threads == 1:
        return name
    return f"{name}.t{threads}" if threads is not None else f"{name}.tauto"


def resolve_device(device: str | DeviceProfile) -> tuple[str, DeviceProfile | None]:
    """(torch device, profile) from a torch device string ("cpu", "cuda:0") or a profile name, path or object."""
    if isinstance(device, DeviceProfile):
        return device.torch_device, device
    text = str(device)
    if text == "cpu" or text.startswith("cuda") or text == "mps":
        name = default_device(text)
        return text, load_device(name) if name else None
    if not text.endswith(".json") and text not in list_devices():
        raise ConfigError(f"device {text!r}: neither a torch device (cpu, cuda, cuda:N, mps) nor a device profile "
                          f"(built-in: {', '.join(list_devices())}; or give the path of a .json profile)")
    profile = load_device(text)
    return profile.torch_device, profile


@dataclass
class MeasuredLatency:
    """Latency measured here: build the network, time it (`measure_latency`: `rounds` of `warmup` + `repeats`
    runs), report one statistic. `round_min` (the median of the rounds' minima) needs rounds >= 2: over one round
    it is the plain `min`, the statistic it exists to replace on a shared machine."""

    space: ModelSpace | None
    device: str | None = None  # profile name, for provenance
    torch_device: str = "cpu"
    batch_size: int = 1
    threads: int | None = 1
    warmup: int = 10
    repeats: int = 50
    statistic: str = "median"
    rounds: int = 1
    model: str = "measured"
    cheap: bool = False
    last: LatencyMeasurement | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_statistic(self.statistic)
        check_int(self.warmup, "warmup", 0)
        check_int(self.repeats, "repeats", 1)
        check_int(self.rounds, "rounds", 1)
        if self.statistic == "round_min" and self.rounds == 1:
            raise ConfigError("statistic: 'round_min' over one round is the plain min; give rounds >= 2 (e.g. 20) "
                              "for the median of the rounds' minima, or ask for 'min'")

    def measure(self, module: torch.nn.Module, inputs: Any) -> LatencyMeasurement:
        self.last = measure_latency(module, inputs, device=self.torch_device, warmup=self.warmup,
                                    repeats=self.repeats, threads=self.threads, rounds=self.rounds)
        return self.last

    def latency_ms(self, arch: Mapping[str, Any]) -> float:
        if self.space is None:
            raise ConfigError("measured latency of an architecture needs the space to build it")
        arch = self.space.validate(arch)
        m = self.measure(self.space.build(arch), self.space.example_input(arch, self.batch_size))
        return m.value(self.statistic)

    def provenance(self) -> dict[str, Any]:
        return {"model": "measured", "device": self.device, "torch_device": self.torch_device,
                "host": host_info(self.torch_device).get("gpu" if self.torch_device.startswith("cuda") else "cpu"),
                "batch_size": self.batch_size, "threads": self.threads, "warmup": self.warmup,
                "repeats": self.repeats, "rounds": self.rounds, "statistic": self.statistic}


@dataclass(frozen=True)
class CostReport:
    """Metrics of one architecture or module, the provenance of each, and details (timing spread, bounds)."""

    metrics: dict[str, float]
    provenance: dict[str, dict[str, Any]]
    details: dict[str, Any]


class CostModel:
    """Hardware costs of architectures of `space` (or of modules with explicit inputs) on one device.

    `latency`: None, "measured", a `LatencyTable` (lookup table), a `LayerLatencyModel` (learned), or any
    `LatencyModel` (e.g. an onboarded `LayerwiseLatency`, or an `EndToEndLatency` fitted on measured
    (architecture, latency) pairs of the device: `nas.hardware.e2e_latency`). `energy`: None, "analytic",
    "measured" (NVML on CUDA, RAPL on CPU) or "auto" (measured when this machine can, else analytic; decided here, once).
    `device` is a torch device ("cpu", "cuda") or a profile name ("h100_sxm"); the profile gives the
    roofline bound and analytic energy; `warmup`/`repeats` set measured latency. A call is cheap unless
    latency or energy are measured (cheap results are cached per architecture).
    A space that can neither build networks with inputs (`build` and `example_input`) nor decompose into layers
    (a plain `Space` written field by field) cannot be counted: its architectures get only `latency_ms` from a latency model that needs no
    network (an `EndToEndLatency`), without counts, roofline or energy; asking for more is a ConfigError here.
    """

    def __init__(self, space: ModelSpace | None = None, *, device: str | DeviceProfile = "cpu",
                 latency: Any = None, energy: str | None = None, batch_size: int = 1, threads: int | None = 1,
                 qualify: bool = False, warmup: int = 10, repeats: int = 50, energy_seconds: float = 1.0,
                 cache: int = 4096) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive int, got {batch_size!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads: expected a positive int (or None for torch's setting), got {threads!r}")
        check_int(warmup, "warmup", 0)
        check_int(repeats, "repeats", 1)
        check_int(cache, "cache", 0)
        check_number(energy_seconds, "energy_seconds", unit=" (seconds)")
        self.space, self.batch_size, self.threads, self.qualify = space, batch_size, threads, qualify
        self.warmup, self.repeats = warmup, repeats
        self.torch_device, self.profile = resolve_device(device)
        self.latency = self._latency(latency)
        self.energy = self._energy(energy)
        self.energy_seconds = energy_seconds
        self.cheap = (self.latency is None or self.latency.cheap) and self.energy in (None, "analytic")
        self._cache: OrderedDict[str, CostReport] = OrderedDict()
        self._cache_size = cache if self.cheap else 0
        self._layers = self._optional_adapter()
        self.counted = self._check_countable()
        self.provenance = self._provenance(self.counted)

    # ------------------------------------------------------------------ construction
    @property
    def device_name(self) -> str | None:
        return self.profile.name if self.profile else None

    def _optional_adapter(self) -> Any:
        """The space's layer decomposition (shared with a table/learned latency model), or None."""
        adapter = getattr(self.latency, "adapter", None)
        if adapter is not None or self.space is None:
            return adapter
        try:
            return self._adapter()
        except ConfigError:
            return None

    def _lacks(self) -> list[str]:
        """What the space lacks of `build` and `example_input` (a `ModelSpace` has both) to build networks with inputs."""
        return [a for a in ("build", "example_input") if not callable(getattr(self.space, a, None))]

    def _buildable(self) -> bool:
        """Whether the space builds networks with inputs (`build` and `example_input`, as a `ModelSpace`)."""
        return self.space is None or not self._lacks()

    def _cannot_build(self) -> str:
        """Why the space cannot build networks to time or count, naming what it lacks."""
        return f"space {type(self.space).__name__} cannot build networks with inputs (it lacks {', '.join(self._lacks())})"

    def _check_countable(self) -> bool:
        """Whether architectures can be counted (built or decomposed); refuse what a plain space cannot give."""
        if self._layers is not None or self._buildable():
            return True
        why = self._cannot_build()
        if self.latency is None:
            raise ConfigError(f"latency: {why}, so params, FLOPs, roofline and energy cannot be counted; give a "
                              "latency model that needs no network (an EndToEndLatency fitted on measured samples), "
                              "or use a space with build() and example_input()")
        if self.energy is not None:
            raise ConfigError(f"energy: {self.energy!r} energy needs the network, and {why}; leave energy=None "
                              "(the cost model then reports latency_ms only)")
        return False

    def _adapter(self) -> Any:
        from nas.hardware.adapters import adapter_for

        if self.space is None:
            raise ConfigError("a lookup table or learned latency model needs the space (to decompose architectures)")
        return adapter_for(self.space)

    def _latency(self, latency: Any) -> LatencyModel | None:
        if latency is None:
            return None
        if latency == "measured":
            self._check_local("latency")
            if not self._buildable():
                raise ConfigError(f"latency: 'measured' times built networks, and {self._cannot_build()}; add "
                                  "them, or fit an EndToEndLatency on latencies measured elsewhere")
            threads = None if self.torch_device.startswith("cuda") else self.threads
            return MeasuredLatency(self.space, self.device_name, self.torch_device, self.batch_size, threads,
                                   self.warmup, self.repeats)
        if isinstance(latency, MeasuredLatency):
            latency = self._measured_here(latency)
        elif isinstance(latency, str):
            raise ConfigError(f"latency: expected None, 'measured', a LatencyTable, a LayerLatencyModel or a latency "
                              f"model object, got {latency!r}")
        if isinstance(latency, LatencyTable):
            latency = lut_latency(latency, self._adapter())
        elif isinstance(latency, LayerLatencyModel):
            latency = learned_latency(latency, self._adapter())
        missing = [a for a in ("latency_ms", "provenance", "batch_size", "model", "cheap") if not hasattr(latency, a)]
        if missing:
            raise ConfigError(f"latency: {type(latency).__name__} lacks {', '.join(missing)}")
        if latency.batch_size != self.batch_size:
            raise ConfigError(f"latency: the {latency.model} model is for batch size {latency.batch_size}, "
                              f"this cost model's batch_size is {self.batch_size}")
        timed = _timed_threads(latency)
        here = self.threads if self.threads is not None else torch.get_num_threads()  # None: torch's current count
        if timed is not None and not self.torch_device.startswith("cuda") and timed != here:
            redo = (f"onboard it on measurements taken with threads={here} (onboard(..., threads={here}))"
                    if getattr(latency, "calibration", None) is not None else f"build the table with threads={here}")
            raise ConfigError(f"latency: the {latency.model} model was timed with threads={timed}, this cost model's "
                              f"threads is {self.threads}" + ("" if self.threads is not None else f" (torch's {here})")
                              + f" ({redo}, or give the cost model threads={timed})")
        dev = getattr(latency, "device", None)
        if dev is not None and self.device_name is not None and dev != self.device_name:
            raise ConfigError(f"latency: the {latency.model} model is for device {dev!r}, this cost model is on "
                              f"{self.device_name!r} (onboard it with LayerwiseLatency.onboard, or fit an "
                              "EndToEndLatency on that device's measured samples)")
        return latency

    def _measured_here(self, latency: MeasuredLatency) -> MeasuredLatency:
        """A `MeasuredLatency` given to this cost model: it times on this machine, on this cost model's torch device,
        and is recorded under this cost model's device profile when it names none."""
        self._check_local("latency")
        if latency.torch_device != self.torch_device:
            raise ConfigError(f"latency: the MeasuredLatency times on {latency.torch_device!r}, this cost model is on "
                              f"{self.torch_device!r}; give both the same device")
        return latency if latency.device is not None else dataclasses.replace(latency, device=self.device_name)

    def _energy(self, energy: str | None) -> str | None:
        if energy not in (None, "analytic", "measured", "auto"):
            raise ConfigError(f"energy: expected None, 'analytic', 'measured' or 'auto', got {energy!r}")
        if energy == "measured":
            self._check_local("energy")
        if energy in ("measured", "auto"):
            try:
                self._check_local("energy")
                meter = default_meter(self.torch_device)
                if meter.source == "nvml":
                    import_pynvml()
                return "measured"
            except ConfigError:
                if energy == "measured":
                    raise
                energy = "analytic"
        if energy == "analytic":
            if self.profile is None or self.profile.energy_pj_per_byte is None:
                raise ConfigError(f"energy: the analytic estimate needs a device profile with energy figures; "
                                  f"{self.device_name or self.torch_device!r} has none")
        return energy

    def _check_local(self, what: str) -> None:
        """Measuring is only possible on this machine: refuse a profile of another device, or a GPU not here."""
        check_torch_device(self.torch_device, "device")
        here = default_device(self.torch_device)
        if self.profile is not None and self.profile.name != here:
            raise ConfigError(f"measured {what}: device {self.profile.name!r} is not this machine's "
                              f"{self.torch_device} ({here or 'no profile'}); measure there, or use a table, a learned "
                              "model or the roofline for it")

    def _name(self, metric: str, model: str) -> str:
        if not self.qualify:
            return metric
        threads = None if self.torch_device.startswith("cuda") else self.threads
        return qualified_name(metric, model, self.device_name or self.torch_device, threads,
                              cpu=not self.torch_device.startswith("cuda"))

    def _provenance(self, counted: bool) -> dict[str, dict[str, Any]]:
        """Where each metric comes from; without `counted` (a plain space) only the latency model's record."""
        count = {"model": "count", "tool": "torch.utils.flop_counter.FlopCounterMode", "batch_size": self.batch_size}
        out: dict[str, dict[str, Any]] = {}
        if counted:
            out.update({"params": {"model": "count"}, "flops": count, "macs": count})
        if self.latency is not None:
            out[self._name("latency_ms", self.latency.model)] = self.latency.provenance()
        if self.profile is not None and counted:
            out[self._name("latency_roofline_ms", "roofline")] = {
                "model": "roofline", "device": self.profile.name, "lower_bound": True, "batch_size": self.batch_size,
                "threads": self.threads if self.torch_device == "cpu" else None,
                "memory_bandwidth": self.profile.memory_bandwidth, "peak_flops": dict(self.profile.peak_flops)}
        if self.energy == "measured":
            out[self._name("energy_mj", "measured")] = {
                "model": "measured", "meter": "nvml" if self.torch_device.startswith("cuda") else "rapl",
                "device": self.device_name, "torch_device": self.torch_device, "batch_size": self.batch_size,
                "min_seconds": self.energy_seconds, "scope": "whole device, static power included"}
        elif self.energy == "analytic":
            assert self.profile is not None
            out[self._name("energy_est_mj", "analytic")] = {
                "model": "analytic", "estimate": True, "device": self.profile.name, "batch_size": self.batch_size,
                "pj_per_byte": self.profile.energy_pj_per_byte, "tdp_w": self.profile.tdp_w,
                "energy_pj_per_flop": dict(self.profile.energy_pj_per_flop),
                "static_power_w": self.profile.static_power_w,
                "static_latency": None if not self.profile.static_power_w else
                "latency model" if self.latency is not None else "roofline lower bound"}
        return out

    # ------------------------------------------------------------------ use
    def __call__(self, arch_or_module: Any, inputs: Any = None) -> dict[str, float]:
        """The metrics of an architecture of the space, or of a module run on `inputs`."""
        return dict(self.report(arch_or_module, inputs).metrics)

    def evaluator(self) -> Evaluator:
        """This cost model as a `nas` evaluator, marked cheap when it measures nothing."""
        return Evaluator(self, cheap=self.cheap)

    def report(self, arch_or_module: Any, inputs: Any = None) -> CostReport:
        """Metrics with their provenance and details (latency spread, roofline terms, energy parts)."""
        if isinstance(arch_or_module, torch.nn.Module):
            if inputs is None:
                raise ConfigError("cost of a module: pass its inputs (a tensor, a tuple of args or a dict of kwargs)")
            return self._report(None, arch_or_module, inputs)
        if self.space is None:
            raise ConfigError("cost of an architecture needs the space: CostModel(space, ...)")
        arch = self.space.validate(arch_or_module)
        if arch.id in self._cache:
            self._cache.move_to_end(arch.id)
            return self._cache[arch.id]
        report = self._report(arch, None, None)
        if self._cache_size:
            self._cache[arch.id] = report
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return report

    def _network(self, arch: Any) -> tuple[torch.nn.Module, Any]:
        assert self.space is not None
        return self.space.build(arch), self.space.example_input(arch, self.batch_size)

    def _report(self, arch: Any, module: torch.nn.Module | None, inputs: Any) -> CostReport:
        """Counts come from the space's layer decomposition when it has one (memoised per layer), else the network."""
        if module is None and not self.counted:  # a plain space: only the latency model's figure
            assert self.latency is not None
            metrics = {self._name("latency_ms", self.latency.model): float(self.latency.latency_ms(arch))}
            return CostReport(metrics, self.provenance, {})
        if module is None and self._layers is not None:
            leaves, dtype = self._layers.arch_counts(arch, self.batch_size), "float32"
            params = sum(x.params for x in leaves)
        else:
            if module is None:
                module, inputs = self._network(arch)
            leaves, dtype, params = count_leaves(module, inputs), module_dtype(module), count_params(module)
        flops = sum(x.flops for x in leaves)
        metrics: dict[str, float] = {"params": float(params), "flops": float(flops), "macs": float(flops // 2)}
        details: dict[str, Any] = {}
        latency = None
        if self.latency is not None:
            if arch is not None:
                latency = self.latency.latency_ms(arch)
                if isinstance(self.latency, MeasuredLatency) and self.latency.last is not None:
                    details["latency"] = self.latency.last.to_dict()
            elif isinstance(self.latency, MeasuredLatency):
                m = self.latency.measure(module, inputs)
                latency, details["latency"] = m.value(self.latency.statistic), m.to_dict()
            else:
                raise ConfigError(f"{self.latency.model} latency needs an architecture of the space, not a module "
                                  "(use latency='measured' for modules)")
            metrics[self._name("latency_ms", self.latency.model)] = float(latency)
        if self.profile is not None:
            why = self._no_peak(dtype)
            if why is None:
                bound = roofline(leaves, self.profile, dtype, self.threads if self.torch_device == "cpu" else None)
                metrics[self._name("latency_roofline_ms", "roofline")] = bound.bound_ms
                details["roofline"] = bound.to_dict()
            else:
                details["roofline"] = self._skip("latency_roofline_ms", "roofline", dtype, why)
        if self.energy == "measured":
            if module is None:
                module, inputs = self._network(arch)
            e = measure_energy(module, inputs, device=self.torch_device, min_seconds=self.energy_seconds,
                               threads=self.threads)
            metrics[self._name("energy_mj", "measured")] = e.energy_mj
            details["energy"] = e.to_dict()
        elif self.energy == "analytic":
            assert self.profile is not None
            # pJ/FLOP without the profile's own figure is TDP / peak, and the static part without a latency model
            # takes the roofline: both need the dtype's peak
            needs_peak = (dtype not in self.profile.energy_pj_per_flop
                          or (bool(self.profile.static_power_w) and latency is None))
            why = self._no_peak(dtype) if needs_peak else None
            if why is None:
                e_est = analytic_energy(leaves, self.profile, dtype, latency,
                                        self.threads if self.torch_device == "cpu" else None)
                metrics[self._name("energy_est_mj", "analytic")] = e_est.energy_mj
                details["energy"] = e_est.to_dict()
            else:
                details["energy"] = self._skip("energy_est_mj", "analytic", dtype, why)
        return CostReport(metrics, self.provenance, details)

    def _no_peak(self, dtype: str) -> str | None:
        """Why the device profile cannot price `dtype` (it has no peak FLOP/s for it), else None. No peak is
        assumed in its place: a term that needs one is left out (`_skip`), the counts are still reported."""
        assert self.profile is not None
        if dtype in self.profile.peak_flops:
            return None
        return (f"device {self.profile.name!r} has no peak FLOP/s for dtype {dtype!r} (it has "
                f"{', '.join(sorted(self.profile.peak_flops))}); add a {dtype} peak to the profile to get this term")

    def _skip(self, metric: str, model: str, dtype: str, why: str) -> dict[str, Any]:
        """Leave `metric` out for a `dtype` the profile cannot price: the reason goes to the metric's provenance
        (`skipped`, by dtype; the record every report shares, updated in place) with a warning the first time,
        and to the report's details."""
        record = self.provenance.get(self._name(metric, model))
        skipped = record.setdefault("skipped", {}) if record is not None else {}
        if dtype not in skipped:
            skipped[dtype] = why
            warnings.warn(f"{metric} left out for a {dtype} network: {why}", stacklevel=4)
        return {"skipped": why, "dtype": dtype}


def cost(arch_or_module: Any, space: ModelSpace | None = None, inputs: Any = None, **options: Any) -> dict[str, float]:
    """One-off costs: `CostModel(space, **options)(arch_or_module, inputs)`."""
    return CostModel(space, **options)(arch_or_module, inputs)

