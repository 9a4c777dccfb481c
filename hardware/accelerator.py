"""An analytic model of heterogeneous systolic-array accelerators: per-layer latency, energy and area from GEMM shapes.

After NASAIC (Yang et al., DAC 2020), an accelerator is a set of sub-accelerators that share a budget of
processing elements (PEs) and of DRAM bandwidth; each sub-accelerator is a systolic array of one dataflow
template and runs the networks assigned to it. The cycle model is SCALE-Sim's analytic one (Samajdar et al.,
ISPASS 2020); the traffic model is the usual reuse analysis of a tiled loop nest. Every layer is a GEMM.

Workload. A layer is `count` independent GEMMs C[M x N] = A[M x K] . B[K x N] with `b` bytes per element
(a Linear layer on rows x in: M = rows, K = in, N = out; a convolution: M = batch x output positions,
K = in/groups x kernel positions, N = out/groups, count = groups). MACs = count M N K.

Template (dataflow). A template puts two GEMM dimensions on the array's rows and columns and streams the third
in time: weight stationary (ws) rows = K, cols = N, time = M (B held in the PEs); output stationary (os)
rows = M, cols = N, time = K (C accumulated in the PEs); input stationary (is) rows = K, cols = M, time = N.
Call the sizes of the mapped dimensions S_r, S_c and T.

Tiles and folds. An R x C array runs the layer in tiles of r x c PEs (r <= R, c <= C):
    folds  f_r = ceil(S_r / r),  f_c = ceil(S_c / c)
    cycles = count * f_r * f_c * (2 r + c + T - 2)
(a fold loads its stationary tile in r cycles, streams T operands with r + c - 2 cycles of skew, SCALE-Sim's
2 S_R + S_C + T - 2; fill and drain run over the tile in use, so a larger array can always run a smaller
one's tiling and is never slower). The mapper tries every tile that is the smallest for its fold count
(r = ceil(S_r / f) for f >= ceil(S_r / R)), both loop orders below, and keeps the fastest (then the least
energy).

Buffer reuse and DRAM traffic. The stationary operand X_s (the one without the time dimension) moves
between DRAM and the array once: |X_s| b bytes. The sub-accelerator's SRAM buffer of Q bytes is split in
halves between the two streamed operands. A streamed operand X holds one spatial dimension d and the time
dimension; its elements are used once per fold of the *other* spatial dimension (f_o of them). With the
loop over d's folds outermost, X's current tile (a tile / S_d share of X: r / S_r or c / S_c) is reused across
the inner loop if it fits in Q / 2; with d innermost the whole of X must fit. Otherwise X is fetched f_o times:
    passes(X) = 1 if (tile or whole of X) * b <= Q / 2 else f_o
    DRAM bytes of an input X  = count * passes * |X| * b
    DRAM bytes of the output  = count * (2 passes - 1) * |C| * b   (partial sums written, read back, ...)
On-chip traffic: every operand element enters (or leaves) the array once per fold of the other spatial
dimension, plus every DRAM byte passes through the buffer:
    SRAM bytes = count * b * (|X_s| + f_o(X_in) |X_in| + (2 f_o(C) - 1) |C|) + DRAM bytes
(for the output-stationary template both streamed operands are inputs and C leaves the array once).

Latency, energy, area. Per layer, a roofline: latency = max(cycles / clock, DRAM bytes / bandwidth), where the
bandwidth is the sub-accelerator's share of the DRAM bandwidth; layers on a sub-accelerator run one after
another and sub-accelerators run in parallel. Energy = MACs e_mac + SRAM bytes e_sram + DRAM bytes e_dram
(dynamic energy only: no leakage, idle PEs cost nothing). Area = sum over sub-accelerators of
PEs a_pe + buffer KB a_kb (DRAM and interconnect excluded).

Simplifications: partial sums are stored at the operands' width; a tile's edge folds are charged at the full
tile; non-GEMM layers (activations, norms, pooling, softmax) are not modelled. The default constants
(`Technology`) are order-of-magnitude 45 nm figures (Horowitz, ISSCC 2014): rank designs with them, do not
quote them as a chip's.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from nas.errors import ConfigError, check_count, check_number

log = logging.getLogger(__name__)

DIMS = ("m", "n", "k")
OPERANDS = {"a": frozenset("mk"), "b": frozenset("kn"), "c": frozenset("mn")}  # the output is "c"


# ---------------------------------------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Gemm:
    """One layer as `count` GEMMs C[m x n] = A[m x k] . B[k x n] of `bytes_per_element`-byte operands.

    `b_elements` is B's size in memory when B is not a dense k x n matrix shared by all rows: a sparse
    aggregation reads a gathered feature matrix (nodes x features) as its B (see `nas.hardware.coexplore`).
    """

    m: int
    n: int
    k: int
    bytes_per_element: int = 1
    count: int = 1
    name: str = ""
    b_elements: int | None = None

    def __post_init__(self) -> None:
        for f in ("m", "n", "k", "bytes_per_element", "count"):
            object.__setattr__(self, f, check_count(getattr(self, f), f"Gemm.{f}"))
        if self.b_elements is not None:
            object.__setattr__(self, "b_elements", check_count(self.b_elements, "Gemm.b_elements"))

    @property
    def macs(self) -> int:
        return self.count * self.m * self.n * self.k

    def size(self, dim: str) -> int:
        """The size of GEMM dimension `dim` ("m", "n" or "k")."""
        return {"m": self.m, "n": self.n, "k": self.k}[dim]

    def elements(self, operand: str) -> int:
        """Elements of operand "a" (m x k), "b" (k x n, or `b_elements`) or "c" (m x n), one GEMM of `count`."""
        if operand == "b" and self.b_elements is not None:
            return self.b_elements
        d1, d2 = sorted(OPERANDS[operand])
        return self.size(d1) * self.size(d2)

    def shape(self) -> tuple[int, int, int, int, int, int | None]:
        """What the cost depends on (the name excluded): the cache key of `map_gemm`."""
        return (self.m, self.n, self.k, self.bytes_per_element, self.count, self.b_elements)


def linear_gemm(in_features: int, out_features: int, rows: int = 1, bytes_per_element: int = 1,
                name: str = "") -> Gemm:
    """A Linear layer applied to `rows` input rows: m = rows, k = in_features, n = out_features."""
    return Gemm(rows, out_features, in_features, bytes_per_element, 1, name)


def conv_gemm(in_channels: int, out_channels: int, kernel: Sequence[int], output: Sequence[int], batch: int = 1,
              groups: int = 1, bytes_per_element: int = 1, name: str = "") -> Gemm:
    """A convolution (any number of spatial dimensions) as `groups` GEMMs (im2col): m = batch x output positions,
    k = in_channels / groups x kernel positions, n = out_channels / groups."""
    groups = check_count(groups, "groups")
    for what, c in (("in_channels", in_channels), ("out_channels", out_channels)):
        if check_count(c, what) % groups:
            raise ConfigError(f"{what}: {c} is not divisible by groups={groups}")
    for what, sizes in (("kernel", kernel), ("output", output)):  # math.prod(()) would price 1 position
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
            raise ConfigError(f"{what}: expected a non-empty sequence of positive ints (one per spatial "
                              f"dimension), got {sizes!r}")
    m = check_count(batch, "batch") * math.prod(check_count(o, "output") for o in output)
    k = in_channels // groups * math.prod(check_count(x, "kernel") for x in kernel)
    return Gemm(m, out_channels // groups, k, bytes_per_element, groups, name)


def as_workloads(shapes: Iterable[Gemm | Sequence[int] | Mapping[str, Any]], bytes_per_element: int = 1) -> list[Gemm]:
    """Workloads from an explicit list: `Gemm`s, (m, n, k) tuples or {"m", "n", "k", ...} dicts."""
    out = []
    for i, s in enumerate(shapes):
        if isinstance(s, Gemm):
            out.append(s)
        elif isinstance(s, Mapping):
            known = [f.name for f in fields(Gemm)]
            unknown = [k for k in s if k not in known]
            missing = [k for k in ("m", "n", "k") if k not in s]
            if unknown or missing:
                raise ConfigError(f"shapes[{i}]: " + "; ".join(
                    ([f"unknown key(s) {unknown}"] if unknown else []) + ([f"missing key(s) {missing}"] if missing else []))
                    + f" (keys: m, n, k required; {', '.join(known[3:])} optional), got {dict(s)!r}")
            out.append(Gemm(**{"bytes_per_element": bytes_per_element, "name": f"layer{i}", **s}))
        elif isinstance(s, Sequence) and len(s) == 3:
            out.append(Gemm(*s, bytes_per_element=bytes_per_element, name=f"layer{i}"))
        else:
            raise ConfigError(f"shapes[{i}]: expected a Gemm, an (m, n, k) tuple or a dict, got {s!r}")
    return out


def module_workloads(module: Any, example_input: Any, bytes_per_element: int = 1) -> list[Gemm]:
    """The weight GEMMs of a torch module's forward pass on `example_input`, in call order: every Linear and
    Conv1d/2d/3d called, and each nn.MultiheadAttention's input projection (one q|k|v GEMM when query, key and
    value are one tensor, else three) and output projection.

    Other layers (activations, norms, pooling, attention's score and weighting matmuls) are left out: the
    systolic array model prices the layers that hold weights; a called module whose weights it has no mapping
    for (recurrent, transposed convolution, bilinear) is named in a warning. The pass runs in eval mode without
    gradients (BatchNorm statistics untouched) and every module's train/eval mode is restored.
    """
    import torch
    from torch import nn

    found: list[Gemm] = []

    def hook(mod: Any, args: tuple, output: Any) -> None:
        name = names.get(mod, type(mod).__name__)
        if isinstance(mod, nn.Linear):
            rows = output.numel() // mod.out_features
            found.append(linear_gemm(mod.in_features, mod.out_features, rows, bytes_per_element, name))
        else:  # output (batch..., channels, *positions); torch also takes an unbatched (channels, *positions)
            dims = len(mod.kernel_size)
            batch = math.prod(output.shape[:-dims - 1])
            found.append(conv_gemm(mod.in_channels, mod.out_channels, mod.kernel_size, tuple(output.shape[-dims:]),
                                   batch, mod.groups, bytes_per_element, name))

    def attention_hook(mod: Any, args: tuple, kwargs: dict, output: Any) -> None:
        found.extend(_attention_gemms(mod, names.get(mod, type(mod).__name__), args, kwargs, bytes_per_element))

    def unpriced_hook(mod: Any, args: tuple, output: Any) -> None:
        log.warning("module_workloads: %s (%s) holds weights the accelerator model does not map to GEMMs; its "
                    "work is left out", names.get(mod, type(mod).__name__), type(mod).__name__)

    names = {m: n or type(m).__name__ for n, m in module.named_modules()}
    inside_attention = {id(m) for a in module.modules() if isinstance(a, nn.MultiheadAttention)
                        for m in a.modules() if m is not a}  # its out_proj: priced by attention_hook
    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and id(m) not in inside_attention]
    handles += [m.register_forward_hook(attention_hook, with_kwargs=True) for m in module.modules()
                if isinstance(m, nn.MultiheadAttention)]
    unmapped = (nn.RNNBase, nn.RNNCellBase, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Bilinear)
    handles += [m.register_forward_hook(unpriced_hook) for m in module.modules() if isinstance(m, unmapped)]
    modes = {m: m.training for m in module.modules()}
    try:
        module.eval()
        with torch.no_grad():
            module(*example_input) if isinstance(example_input, tuple) else module(example_input)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return found


def _attention_gemms(mod: Any, name: str, args: tuple, kwargs: Mapping[str, Any], b: int) -> list[Gemm]:
    """nn.MultiheadAttention's weight GEMMs: the q, k, v projections (one fused GEMM when query, key and value
    are one tensor with packed weights, as torch computes it) and out_proj, each over all rows of its input."""
    given = dict(zip(("query", "key", "value"), args))
    query, key, value = (given.get(k, kwargs.get(k)) for k in ("query", "key", "value"))
    e = mod.embed_dim
    rows_q, rows_k, rows_v = (int(t.numel() // t.shape[-1]) for t in (query, key, value))
    if mod._qkv_same_embed_dim and query is key and key is value:
        gemms = [linear_gemm(e, 3 * e, rows_q, b, f"{name}.in_proj")]
    else:
        gemms = [linear_gemm(e, e, rows_q, b, f"{name}.q_proj"), linear_gemm(mod.kdim, e, rows_k, b, f"{name}.k_proj"),
                 linear_gemm(mod.vdim, e, rows_v, b, f"{name}.v_proj")]
    return gemms + [linear_gemm(e, e, rows_q, b, f"{name}.out_proj")]


# ---------------------------------------------------------------------------------------------- templates
@dataclass(frozen=True)
class Template:
    """A dataflow: which GEMM dimension goes on the array's rows, which on its columns, which is streamed in time."""

    name: str
    rows: str
    cols: str
    time: str
    description: str = ""

    def __post_init__(self) -> None:
        if sorted((self.rows, self.cols, self.time)) != sorted(DIMS):
            raise ConfigError(f"Template {self.name!r}: rows, cols and time must be m, n and k once each, "
                              f"got {self.rows!r}, {self.cols!r}, {self.time!r}")

    @property
    def stationary(self) -> str:
        """The operand held in the PEs: the one without the time dimension."""
        return next(o for o, dims in OPERANDS.items() if self.time not in dims)

    def streamed(self, spatial: str) -> str:
        """The streamed operand holding spatial dimension `spatial` (self.rows or self.cols) and time."""
        return next(o for o, dims in OPERANDS.items() if dims == {spatial, self.time})


WEIGHT_STATIONARY = Template("ws", rows="k", cols="n", time="m",
                             description="weight stationary (TPU, NVDLA-like): B held, A streamed, partial sums out")
OUTPUT_STATIONARY = Template("os", rows="m", cols="n", time="k",
                             description="output stationary (ShiDianNao-like): C accumulated in the PEs")
INPUT_STATIONARY = Template("is", rows="k", cols="m", time="n",
                            description="input stationary: A held, B streamed, partial sums out")
TEMPLATES = {t.name: t for t in (WEIGHT_STATIONARY, OUTPUT_STATIONARY, INPUT_STATIONARY)}


def template(name: str | Template) -> Template:
    """A template by name ("ws", "os", "is") or itself."""
    if isinstance(name, Template):
        return name
    if name not in TEMPLATES:
        raise ConfigError(f"template: expected one of {', '.join(TEMPLATES)}, got {name!r}")
    return TEMPLATES[name]


# ---------------------------------------------------------------------------------------------- hardware
@dataclass(frozen=True)
class Technology:
    """Clock, energies and areas shared by every sub-accelerator (defaults: 45 nm, 8-bit, Horowitz 2014, order
    of magnitude): 8-bit multiply 0.2 pJ + add 0.03 pJ; 8 KB SRAM 10 pJ per 64-bit read; DRAM 1.3-2.6 nJ per
    64 bits (the low end); a PE (8-bit MAC, registers) ~ 0.0006 mm2; SRAM ~ 0.006 mm2 per KB with periphery."""

    clock_hz: float = 500e6
    e_mac_pj: float = 0.23
    e_sram_pj_per_byte: float = 1.25
    e_dram_pj_per_byte: float = 160.0
    area_pe_mm2: float = 0.0006
    area_kb_mm2: float = 0.006

    def __post_init__(self) -> None:
        check_number(self.clock_hz, "Technology.clock_hz", unit=" (Hz)")
        for f in ("e_mac_pj", "e_sram_pj_per_byte", "e_dram_pj_per_byte", "area_pe_mm2", "area_kb_mm2"):
            check_number(getattr(self, f), f"Technology.{f}", positive=False)


@dataclass(frozen=True)
class SubAccelerator:
    """One systolic array: a template, rows x cols PEs, its share of the DRAM bandwidth and an SRAM buffer."""

    template: Template
    rows: int
    cols: int
    bandwidth_share: float
    buffer_kb: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "template", template(self.template))
        check_count(self.rows, "SubAccelerator.rows")
        check_count(self.cols, "SubAccelerator.cols")
        share = check_number(self.bandwidth_share, "SubAccelerator.bandwidth_share", unit=" in (0, 1]")
        if share > 1:
            raise ConfigError(f"SubAccelerator.bandwidth_share: expected a fraction in (0, 1], got {share!r}")
        check_number(self.buffer_kb, "SubAccelerator.buffer_kb", unit=" (KB)")

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @classmethod
    def with_pes(cls, template_name: str | Template, pes: int, bandwidth_share: float,
                 buffer_kb: float) -> "SubAccelerator":
        """A sub-accelerator of `pes` PEs in the shape `array_shape(pes)`."""
        rows, cols = array_shape(pes)
        return cls(template(template_name), rows, cols, bandwidth_share, buffer_kb)


def array_shape(pes: int) -> tuple[int, int]:
    """rows x cols for `pes` PEs: rows the largest power of two <= sqrt(pes), cols = pes // rows (so 1024 -> 32 x 32,
    1536 -> 32 x 48, 2048 -> 32 x 64); ConfigError unless rows divides pes."""
    pes = check_count(pes, "pes")
    rows = 1 << int(math.floor(math.log2(math.sqrt(pes))))
    if pes % rows:
        raise ConfigError(f"pes: {pes} PEs do not fill a {rows}-row array (give a multiple of {rows})")
    return rows, pes // rows


@dataclass(frozen=True)
class LayerCost:
    """One GEMM on one sub-accelerator, at the mapper's choice of tile and loop order."""

    name: str
    macs: int
    tile_rows: int
    tile_cols: int
    folds: int
    cycles_per_fold: int
    cycles: int
    loop_order: str  # "rows-outer" or "cols-outer"
    dram_bytes: int
    sram_bytes: int
    compute_s: float
    memory_s: float
    latency_s: float
    energy_j: float
    utilization: float  # MACs / (cycles x PEs of the array)

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bound": self.bound}


def tile_candidates(size: int, limit: int) -> np.ndarray:
    """Tile sizes worth trying for a dimension of `size` on `limit` PEs: ceil(size / f) for every fold count f
    with ceil(size / f) <= limit (any other tile is beaten by the smallest one with its fold count)."""
    f_min = -(-size // limit)
    folds = np.arange(f_min, size + 1)
    return np.unique(-(-size // folds))


@functools.lru_cache(maxsize=1 << 16)
def _map(shape: tuple, tmpl: Template, rows: int, cols: int, buffer_bytes: float, bandwidth: float,
         tech: Technology) -> tuple:
    m, n, k, b, count, b_elements = shape
    g = Gemm(m, n, k, b, count, "", b_elements)
    s_r, s_c, t = g.size(tmpl.rows), g.size(tmpl.cols), g.size(tmpl.time)
    r = tile_candidates(s_r, rows)[:, None].astype(np.float64)
    c = tile_candidates(s_c, cols)[None, :].astype(np.float64)
    f_r, f_c = np.ceil(s_r / r), np.ceil(s_c / c)
    per_fold = 2 * r + c + t - 2
    cycles = count * f_r * f_c * per_fold
    half = buffer_bytes / 2
    x_s, x_r, x_c = tmpl.stationary, tmpl.streamed(tmpl.rows), tmpl.streamed(tmpl.cols)
    size = {o: g.elements(o) for o in OPERANDS}
    best = None
    for order in ("rows-outer", "cols-outer"):
        dram = np.full(cycles.shape, count * size[x_s] * b, dtype=np.float64)
        sram = np.full(cycles.shape, count * size[x_s] * b, dtype=np.float64)
        for op, tile, span, other_folds, outer in ((x_r, r, s_r, f_c, order == "rows-outer"),
                                                   (x_c, c, s_c, f_r, order == "cols-outer")):
            held = size[op] * b * tile / span if outer else np.full(cycles.shape, size[op] * b, dtype=np.float64)
            passes = np.where(held <= half, 1.0, other_folds)
            if op == "c":  # partial sums: written every pass, read back on every pass but the first
                dram = dram + count * (2 * passes - 1) * size[op] * b
                sram = sram + count * (2 * other_folds - 1) * size[op] * b
            else:
                dram = dram + count * passes * size[op] * b
                sram = sram + count * other_folds * size[op] * b
        sram = sram + dram
        compute_s = cycles / tech.clock_hz
        memory_s = dram / bandwidth
        latency = np.maximum(compute_s, memory_s)
        energy = (g.macs * tech.e_mac_pj + sram * tech.e_sram_pj_per_byte + dram * tech.e_dram_pj_per_byte) * 1e-12
        i = np.lexsort((energy.ravel(), latency.ravel()))[0]
        key = (float(latency.flat[i]), float(energy.flat[i]))
        if best is None or key < best[0]:
            ri, ci = np.unravel_index(i, cycles.shape)
            best = (key, order, int(r[ri, 0]), int(c[0, ci]), int(f_r[ri, 0] * f_c[0, ci]), int(per_fold[ri, ci]),
                    int(cycles[ri, ci]), int(dram[ri, ci]), int(sram[ri, ci]), float(compute_s[ri, ci]),
                    float(memory_s[ri, ci]))
    (latency_s, energy_j), order, tr, tc, folds, cpf, cyc, dram_b, sram_b, comp, mem = best
    return tr, tc, folds, cpf, cyc, order, dram_b, sram_b, comp, mem, latency_s, energy_j


def map_gemm(gemm: Gemm, sub: SubAccelerator, bandwidth: float, tech: Technology = Technology()) -> LayerCost:
    """The cost of `gemm` on `sub` given its absolute DRAM bandwidth (bytes/s): the best tile and loop order."""
    bandwidth = check_number(bandwidth, "bandwidth", unit=" (bytes/s)")
    tr, tc, folds, cpf, cyc, order, dram, sram, comp, mem, lat, energy = _map(
        gemm.shape(), sub.template, sub.rows, sub.cols, sub.buffer_kb * 1024, bandwidth, tech)
    return LayerCost(gemm.name, gemm.macs, tr, tc, folds, cpf, cyc, order, dram, sram, comp, mem, lat, energy,
                     gemm.macs / (cyc * sub.pes))


@dataclass(frozen=True)
class NetworkCost:
    """A network's layers run one after another on one sub-accelerator."""

    layers: tuple[LayerCost, ...]

    @property
    def latency_s(self) -> float:
        return sum(x.latency_s for x in self.layers)

    @property
    def energy_j(self) -> float:
        return sum(x.energy_j for x in self.layers)

    @property
    def macs(self) -> int:
        return sum(x.macs for x in self.layers)

    @property
    def dram_bytes(self) -> int:
        return sum(x.dram_bytes for x in self.layers)

    @property
    def cycles(self) -> int:
        return sum(x.cycles for x in self.layers)


@dataclass(frozen=True)
class AcceleratorReport:
    """Per task: latency (its sub-accelerator's whole schedule: tasks sharing one run one after another) and
    energy; in total: energy and area. Units: seconds, joules, mm2."""

    latency_s: dict[str, float]
    energy_j: dict[str, float]
    area_mm2: float
    networks: dict[str, NetworkCost] = field(repr=False)

    @property
    def total_energy_j(self) -> float:
        return sum(self.energy_j.values())

    def metrics(self, suffixes: Mapping[str, str] | None = None) -> dict[str, float]:
        """Flat metrics: latency_<task>_ms, energy_<task>_mj, energy_mj (total), area_mm2 (`suffixes` renames tasks)."""
        sfx = dict(suffixes or {})
        out = {}
        for task in self.latency_s:
            s = sfx.get(task, task)
            out[f"latency_{s}_ms"] = self.latency_s[task] * 1e3
            out[f"energy_{s}_mj"] = self.energy_j[task] * 1e3
        out["energy_mj"] = self.total_energy_j * 1e3
        out["area_mm2"] = self.area_mm2
        return out


@dataclass(frozen=True)
class HeterogeneousAccelerator:
    """Sub-accelerators sharing `pe_budget` PEs and `dram_bandwidth` bytes/s (their shares sum to at most 1)."""

    subs: tuple[SubAccelerator, ...]
    pe_budget: int
    dram_bandwidth: float
    tech: Technology = Technology()

    def __post_init__(self) -> None:
        object.__setattr__(self, "subs", tuple(self.subs))
        if not self.subs or not all(isinstance(s, SubAccelerator) for s in self.subs):
            raise ConfigError(f"HeterogeneousAccelerator.subs: expected one or more SubAccelerators, got {self.subs!r}")
        check_count(self.pe_budget, "HeterogeneousAccelerator.pe_budget")
        check_number(self.dram_bandwidth, "HeterogeneousAccelerator.dram_bandwidth", unit=" (bytes/s)")
        if not isinstance(self.tech, Technology):
            raise ConfigError(f"HeterogeneousAccelerator.tech: expected a Technology, got {self.tech!r}")
        pes = sum(s.pes for s in self.subs)
        if pes > self.pe_budget:
            raise ConfigError(f"HeterogeneousAccelerator.subs: {pes} PEs exceed pe_budget {self.pe_budget}")
        share = sum(s.bandwidth_share for s in self.subs)
        if share > 1 + 1e-9:
            raise ConfigError(f"HeterogeneousAccelerator.subs: bandwidth shares sum to {share:g} > 1")

    @property
    def area_mm2(self) -> float:
        return sum(s.pes * self.tech.area_pe_mm2 + s.buffer_kb * self.tech.area_kb_mm2 for s in self.subs)

    def network(self, sub: int, workloads: Sequence[Gemm]) -> NetworkCost:
        """The cost of `workloads` run alone on sub-accelerator `sub` (its index)."""
        if isinstance(sub, bool) or not isinstance(sub, int) or not 0 <= sub < len(self.subs):
            raise ConfigError(f"sub: expected a sub-accelerator index in 0..{len(self.subs) - 1}, got {sub!r}")
        s = self.subs[sub]
        bw = s.bandwidth_share * self.dram_bandwidth
        return NetworkCost(tuple(map_gemm(g, s, bw, self.tech) for g in workloads))

    def run(self, tasks: Mapping[str, tuple[int, Sequence[Gemm]]]) -> AcceleratorReport:
        """Each task is (sub-accelerator index, its network's workloads); sub-accelerators run in parallel."""
        if not tasks:
            raise ConfigError("tasks: give at least one task (name -> (sub-accelerator index, workloads))")
        nets = {name: self.network(sub, w) for name, (sub, w) in tasks.items()}
        busy: dict[int, float] = {}
        for name, (sub, _) in tasks.items():
            busy[sub] = busy.get(sub, 0.0) + nets[name].latency_s
        latency = {name: busy[sub] for name, (sub, _) in tasks.items()}
        return AcceleratorReport(latency, {n: c.energy_j for n, c in nets.items()}, self.area_mm2, nets)
