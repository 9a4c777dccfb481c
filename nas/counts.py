"""Parameter, FLOP and memory-traffic counts of a module, via torch's FlopCounterMode (no hand-written counter)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, bmm_flop, flop_registry, sdpa_flop_count

aten = torch.ops.aten


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters (trainable or not) the module holds. A weight stored packed in buffers (a module with
    `weight_shape` and no weight parameter, as `nas.hardware.packing`'s) counts as the weights it holds, so a
    quantized network has the parameter count of its float twin."""
    packed = sum(math.prod(m.weight_shape) for m in module.modules()
                 if hasattr(m, "weight_shape") and m._parameters.get("weight") is None)
    return sum(p.numel() for p in module.parameters()) + packed


def forward(module: torch.nn.Module, inputs: Any) -> Any:
    """Call `module` on `inputs`: a tensor, a tuple of positional args, or a dict of keyword args."""
    if isinstance(inputs, Mapping):
        return module(**inputs)
    if isinstance(inputs, tuple):
        return module(*inputs)
    return module(inputs)


# ---------------------------------------------------------------------------------------------------- FLOP formulas
# FlopCounterMode counts matrix products and convolutions (a multiply-add is 2 FLOPs) and nothing else by
# design: elementwise maths, normalisation, softmax, pooling and data movement count 0. The formulas below
# cover the products and aggregations torch's table misses (`torch.utils.flop_counter.flop_registry`), each
# counting what the op computes; `UncountedFlopsWarning` names any other op that does such arithmetic.
def _rows(shape: Any) -> int:
    """Vectors in a `[..., features]` tensor: the product of every dimension but the last."""
    return math.prod(shape[:-1])


def _sdpa_flop(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """Attention kernels torch's table lacks (the CPU one above all): QK^T and AV, as torch counts them for the
    CUDA kernels (`sdpa_flop_count`; a causal mask is not discounted there either)."""
    return sdpa_flop_count(query, key, value)


def _mha_flop(query: Any, key: Any, value: Any, embed_dim: int, num_head: int, qkv_weight: Any, *args: Any,
              out_shape: Any = None, **kwargs: Any) -> int:
    """nn.MultiheadAttention's fused inference kernel: the q, k, v projections, QK^T and AV over all heads, and
    the output projection (what its decomposed forward counts; `query` is [batch, L, E] or [L, E])."""
    e, lq, lk = embed_dim, _rows(query), _rows(key)
    per_batch = query[-2] if len(query) == 3 else lq
    batch = lq // per_batch
    projections = 2 * lq * e * e + 2 * 2 * lk * e * e + 2 * lq * e * e
    attention = 2 * bmm_flop((batch, per_batch, e), (batch, e, lk // batch))
    return projections + attention


def _rnn_layer_flop(input: Any, weight0: Any, weight1: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """One oneDNN RNN layer (nn.LSTM / nn.GRU on CPU): every time step of every sequence multiplies its input by
    W_ih ([gates x hidden, input]) and its state by W_hh ([gates x hidden, hidden]). Gate nonlinearities are
    elementwise (0, as everywhere)."""
    return 2 * _rows(input) * (math.prod(weight0) + math.prod(weight1))


def _rnn_flop(input: Any, weight: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """A whole cuDNN / MIOpen RNN: each matrix of `weight` (W_ih, W_hh, W_hr of every layer and direction) is
    applied once per time step of every sequence."""
    return 2 * _rows(input) * sum(math.prod(w) for w in weight if len(w) == 2)


def _scatter_add_flop(self: Any, dim: int, index: Any, src: Any, *args: Any, out_shape: Any = None,
                      **kwargs: Any) -> int:
    """Scatter-add (message passing's sum aggregation): one addition per scattered element."""
    return math.prod(index)


def _scatter_reduce_flop(self: Any, dim: int, index: Any, src: Any, reduce: str, *args: Any, out_shape: Any = None,
                         **kwargs: Any) -> int:
    """Scatter-reduce: one addition (sum, mean) or multiplication (prod) per scattered element; amax / amin only
    compare, which count 0 like max pooling."""
    return math.prod(index) if reduce in ("sum", "mean", "prod") else 0


def _index_add_flop(self: Any, dim: int, index: Any, source: Any, *args: Any, out_shape: Any = None,
                    alpha: Any = 1, **kwargs: Any) -> int:
    """index_add: one addition per source element (and a multiplication when scaled by `alpha`)."""
    return math.prod(source) * (1 if alpha == 1 else 2)


def _index_reduce_flop(self: Any, dim: int, index: Any, source: Any, reduce: str, *args: Any, out_shape: Any = None,
                       **kwargs: Any) -> int:
    return math.prod(source) if reduce in ("prod", "mean") else 0


def _segment_reduce_flop(data: Any, reduce: str, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return math.prod(data) if reduce in ("sum", "mean", "prod") else 0


def _mv_flop(mat: Any, vec: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """Matrix-vector product [M, N] @ [N]: 2 M N."""
    return 2 * mat[0] * mat[1]


def _addmv_flop(self: Any, mat: Any, vec: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return _mv_flop(mat, vec)


def _dot_flop(a: Any, b: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * a[0]


def _addbmm_flop(self: Any, a: Any, b: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """addbmm: a batch of [n, m] @ [m, p] products summed into one [n, p]."""
    return 2 * a[0] * a[1] * a[2] * b[2]


def _fft_flop(shape: Any, dim: Any, per_point: float) -> int:
    """Radix-2 FFT count over `dim` of a tensor of `shape`: `per_point` · N · log2(n) for N points in all, n the
    points of one transform (5 for complex input, 2.5 for real; Cooley-Tukey, as FFTW's benchmarks count it)."""
    points = math.prod(shape[d] for d in dim)
    return round(per_point * math.prod(shape) * math.log2(points)) if points > 1 else 0


def _fft_c2c_flop(self: Any, dim: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """A complex FFT (fft, fft2, fftn and inverses): 5 N log2 n."""
    return _fft_flop(self, dim, 5.0)


def _fft_r2c_flop(self: Any, dim: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """A real-input FFT (rfft): half a complex one, 2.5 N log2 n over the real input's N points."""
    return _fft_flop(self, dim, 2.5)


def _fft_c2r_flop(self: Any, dim: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """A real-output inverse FFT (irfft): 2.5 N log2 n over the real output's N points."""
    return _fft_flop(out_shape, dim, 2.5)


def _extra_formulas() -> dict[Any, Callable[..., int]]:
    """The formulas above by op, plus each counted op's in-place variant (`addmm_`, `baddbmm_`)."""
    wanted: dict[str, Callable[..., int]] = {
        "_scaled_dot_product_flash_attention_for_cpu": _sdpa_flop,
        "_scaled_dot_product_fused_attention_overrideable": _sdpa_flop,
        "_scaled_dot_product_attention_math_for_mps": _sdpa_flop,
        "_native_multi_head_attention": _mha_flop,
        "mkldnn_rnn_layer": _rnn_layer_flop, "_cudnn_rnn": _rnn_flop, "miopen_rnn": _rnn_flop,
        "scatter_add": _scatter_add_flop, "scatter_add_": _scatter_add_flop,
        "scatter_reduce": _scatter_reduce_flop, "scatter_reduce_": _scatter_reduce_flop,
        "index_add": _index_add_flop, "index_add_": _index_add_flop,
        "index_reduce": _index_reduce_flop, "index_reduce_": _index_reduce_flop,
        "segment_reduce": _segment_reduce_flop,
        "mv": _mv_flop, "addmv": _addmv_flop, "addmv_": _addmv_flop, "dot": _dot_flop, "vdot": _dot_flop,
        "addbmm": _addbmm_flop, "addbmm_": _addbmm_flop,
        "_fft_c2c": _fft_c2c_flop, "_fft_r2c": _fft_r2c_flop, "_fft_c2r": _fft_c2r_flop,
    }
    out: dict[Any, Callable[..., int]] = {getattr(aten, name): f for name, f in wanted.items() if hasattr(aten, name)}
    for op, f in list(flop_registry.items()):  # an in-place twin computes what its functional op does
        name = str(getattr(op, "_qualified_op_name", "")).partition("::")[2]
        twin = getattr(aten, f"{name}_", None) if name else None
        if isinstance(twin, torch._ops.OpOverloadPacket) and twin not in flop_registry and twin not in out:
            out[twin] = _raw(f)  # torch's formula is already shape-wrapped
    return {op: f for op, f in out.items() if op not in flop_registry}


def _raw(formula: Callable[..., int]) -> Callable[..., int]:
    def raw(*args: Any, **kwargs: Any) -> int:
        return formula(*args, **kwargs)

    raw._get_raw = True  # type: ignore[attr-defined]  # FlopCounterMode: pass the tensors, do not wrap again
    return raw


# Ops that count 0 FLOPs by torch's convention (elementwise, normalisation, softmax, pooling and resampling,
# reductions, data movement, factories), besides those torch tags pointwise, reduction or as views.
_UNCOUNTED = frozenset("""
add sub rsub mul div true_divide floor_divide remainder fmod where masked_fill eq ne lt le gt ge equal
logical_and logical_or logical_not logical_xor bitwise_and bitwise_or bitwise_xor bitwise_not bitwise_left_shift
bitwise_right_shift __lshift__ __rshift__ __and__ __or__ __xor__ minimum maximum fmax fmin clamp clamp_min
clamp_max hardswish hardsigmoid hardtanh silu mish softplus sigmoid tanh gelu elu leaky_relu relu relu6 prelu
_prelu_kernel log_sigmoid_forward threshold lerp addcmul addcdiv pow square neg abs exp exp2 log log2 log1p sqrt
rsqrt reciprocal sign sgn erf sin cos round floor ceil trunc nan_to_num isnan isinf isfinite copysign xlogy glu
native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training _native_batch_norm_legit_functional
_batch_norm_with_update _batch_norm_no_update cudnn_batch_norm miopen_batch_norm native_layer_norm
native_group_norm _fused_rms_norm native_dropout _fused_dropout _softmax _log_softmax _safe_softmax
grid_sampler_2d grid_sampler_3d im2col col2im
sum mean amax amin max min aminmax argmax argmin prod var std var_mean std_mean norm linalg_vector_norm cumsum
cumprod logcumsumexp logsumexp all any count_nonzero sort topk kthvalue median mode
_to_copy copy clone cat stack index index_put _index_put_impl index_select gather scatter masked_scatter
masked_select embedding repeat repeat_interleave expand constant_pad_nd reflection_pad1d reflection_pad2d
reflection_pad3d replication_pad1d replication_pad2d replication_pad3d flip roll zeros zeros_like ones ones_like
empty empty_like empty_strided full full_like arange linspace scalar_tensor new_zeros new_ones new_empty new_full
new_empty_strided fill zero rand randn randint rand_like randn_like uniform normal bernoulli randperm _unsafe_view
view reshape _reshape_alias contiguous t transpose permute select slice split split_with_sizes unbind chunk
narrow unsqueeze squeeze alias detach lift_fresh lift_fresh_copy as_strided nonzero unique _unique2 tril triu
diag diagonal one_hot _local_scalar_dense item resize set view_as_real view_as_complex _conj conj _neg_view
pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle bucketize searchsorted unfold
_pin_memory _assert_async _assert_tensor_metadata _functional_assert_async sym_constrain_range complex real imag
_efficientzerotensor _thnn_fused_lstm_cell _thnn_fused_gru_cell unsafe_split unsafe_split_with_sizes unsafe_chunk
_unsafe_index _unsafe_index_put slice_scatter select_scatter diagonal_scatter as_strided_scatter index_fill
masked_fill _reshape_copy to_dense _to_dense coalesce _coalesce _indices _values indices values
sparse_coo_tensor _sparse_coo_tensor_with_dims_and_tensors _sparse_coo_tensor_unsafe
""".split())
_UNCOUNTED_PREFIXES = ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool", "_adaptive_avg_pool",
                       "fractional_max_pool", "max_unpool", "upsample_", "_upsample_", "_foreach_")
_TAGS_UNCOUNTED = (torch.Tag.pointwise, torch.Tag.reduction, torch.Tag.view_copy)
_warned: set[str] = set()


class UncountedFlopsWarning(UserWarning):
    """An op that does arithmetic ran with no FLOP formula, so it counted 0 FLOPs (warned once per op)."""


def _op_name(op: Any) -> str:
    return str(getattr(op, "_qualified_op_name", op)).replace("::", ".")


def _uncounted_by_convention(op: Any) -> bool:
    """Whether an op with no formula counts 0 FLOPs by design (see `_UNCOUNTED`); an unknown op does not."""
    name = _op_name(op)
    if name not in _conventional:
        _conventional[name] = _classify(op)
    return _conventional[name]


_conventional: dict[str, bool] = {}


def _classify(op: Any) -> bool:
    if not isinstance(op, torch._ops.OpOverloadPacket):
        return False
    namespace, _, name = op._qualified_op_name.partition("::")
    if namespace == "prim":
        return True
    if namespace != "aten":
        return False
    base = name[:-1] if name.endswith("_") and not name.endswith("__") else name  # an in-place op: its own maths
    if base in _UNCOUNTED or base.startswith(_UNCOUNTED_PREFIXES):
        return True
    packet = getattr(aten, base, op)
    for overload in packet.overloads():
        o = getattr(packet, overload)
        if any(tag in o.tags for tag in _TAGS_UNCOUNTED):
            return True
        if o._schema.returns and all(r.alias_info is not None and not r.alias_info.is_write
                                     for r in o._schema.returns):
            return True  # a view
    return False


class _Counter(FlopCounterMode):
    """FlopCounterMode with the formulas torch lacks, noting each op that ran with no formula."""

    def __init__(self) -> None:
        super().__init__(display=False, custom_mapping=_FORMULAS)
        self.uncounted: set[Any] = set()

    def _count_flops(self, func_packet: Any, out: Any, args: Any, kwargs: Any) -> Any:
        if func_packet not in self.flop_registry:
            self.uncounted.add(func_packet)
        return super()._count_flops(func_packet, out, args, kwargs)


_FORMULAS = _extra_formulas()


def _warn_uncounted(ops: set[Any]) -> None:
    for op in sorted(ops, key=_op_name):
        name = _op_name(op)
        if name not in _warned and not _uncounted_by_convention(op):
            _warned.add(name)
            warnings.warn(f"FLOPs: {name} does arithmetic but has no FLOP formula, so it counts 0 FLOPs and the "
                          "totals are low (warned once per op)", UncountedFlopsWarning, stacklevel=4)


@contextmanager
def _decomposed_attention() -> Iterator[None]:
    """Turn off nn.MultiheadAttention / TransformerEncoderLayer's fused inference path while counting: the
    decomposed forward computes the same products, as ops every counter knows, and a layer counted alone with
    other inputs (separate query, key and value) counts the same as inside its network."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    was = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(was)


@contextmanager
def _no_grad_leaves(module: torch.nn.Module) -> Iterator[None]:
    """While counting, no parameter or buffer of `module` requires grad (each flag is restored afterwards).

    Under `torch.no_grad()` a view of a tensor that requires grad (a learned positional embedding returning
    `self.weight[:, :L]`) still says `requires_grad=True` yet has no `grad_fn`, and the module tracker inside
    FlopCounterMode asserts on such a tensor ("Expected gradient function to be set"). Counting never runs
    backward, so switching the flags off for the forward changes no count and leaves no autograd state.
    """
    leaves = [t for t in (*module.parameters(), *module.buffers()) if t.requires_grad and t.is_leaf]
    for t in leaves:
        t.requires_grad_(False)
    try:
        yield
    finally:
        for t in leaves:
            t.requires_grad_(True)


def _detached(value: Any) -> Any:
    """`value` with every tensor that requires grad detached (the same storage, no autograd history), inside a plain
    tuple, list or dict too: a view of such an input made under no_grad trips the module tracker, as above. Other
    containers (a PackedSequence, a user class) are passed as they are."""
    if isinstance(value, torch.Tensor):
        return value.detach() if value.requires_grad else value
    if type(value) in (tuple, list):
        return type(value)(_detached(v) for v in value)
    if type(value) is dict:
        return {k: _detached(v) for k, v in value.items()}
    return value


@contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """`module` in eval mode for the block, then every submodule back in its own mode: a BatchNorm the caller froze
    inside a training model stays frozen (`module.train(was)` would unfreeze it)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.train(training)


def _counted_forward(module: torch.nn.Module, inputs: Any, counter: FlopCounterMode | None = None) -> FlopCounterMode:
    """One no-grad, eval-mode forward pass under torch's FlopCounterMode (with the formulas above; `counter`, a
    `_Counter`, when the caller reads it during the pass); the module's mode and its parameters' `requires_grad`
    are restored. Warns once per op that does arithmetic without a formula."""
    counter = counter if counter is not None else _Counter()
    with eval_mode(module), torch.no_grad(), _no_grad_leaves(module), _decomposed_attention(), counter:
        forward(module, _detached(inputs))
    _warn_uncounted(counter.uncounted)
    return counter


def count_flops(module: torch.nn.Module, inputs: Any, per_module: bool = False) -> dict[str, Any]:
    """FLOPs of one forward pass on `inputs` (a tensor, a tuple of args or a dict of kwargs).

    FLOPs count a multiply-add as 2 (torch's convention); MACs = FLOPs / 2. With `per_module`, also a
    {module name: flops} breakdown.
    """
    counter = _counted_forward(module, inputs)
    total = int(counter.get_total_flops())
    out: dict[str, Any] = {"flops": total, "macs": total // 2}
    if per_module:
        out["per_module"] = {name: int(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}
    return out


def count(module: torch.nn.Module, inputs: Any) -> dict[str, float]:
    """{"params", "flops", "macs"} for a module and an example input."""
    flops = count_flops(module, inputs)
    return {"params": float(count_params(module)), "flops": float(flops["flops"]), "macs": float(flops["macs"])}


def _tensor_bytes(value: Any) -> int:
    """Bytes held by the tensors in `value` (a tensor, or a tuple/list/dict nesting them)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Mapping):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _same_tensor(a: Any, b: Any) -> bool:
    first = a[0] if isinstance(a, tuple) and len(a) == 1 else a
    return isinstance(first, torch.Tensor) and first is b


@dataclass(frozen=True)
class LeafCount:
    """Counts of one leaf module's forward call: FLOPs (FlopCounterMode), parameters, and bytes it reads/writes.

    `bytes_moved` = weight bytes (parameters and buffers) + input bytes + output bytes: the traffic if every
    operand comes from and goes to main memory once (a roofline's memory term). Identity-like calls move 0.
    """

    name: str
    type: str
    flops: int
    params: int
    weight_bytes: int
    input_bytes: int
    output_bytes: int

    @property
    def bytes_moved(self) -> int:
        return self.weight_bytes + self.input_bytes + self.output_bytes


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def is_layer(module: nn.Module) -> bool:
    """Whether a module is counted (and timed) as one layer: one without children, or a `torch.nn` layer that has
    some (`MultiheadAttention`, `TransformerEncoderLayer`: their forward uses their children's weights directly)."""
    if next(module.children(), None) is None:
        return True
    return type(module).__module__.startswith("torch.nn.") and not isinstance(module, _CONTAINERS)


def layer_modules(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of every layer (`is_layer`) of `module`, each once, in `named_modules` order; the modules
    inside a layer are part of it."""
    out: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()

    def walk(m: nn.Module, path: str) -> None:
        if id(m) in seen:
            return
        seen.add(id(m))
        if is_layer(m):
            out.append((path, m))
            return
        for name, child in m.named_children():
            walk(child, f"{path}.{name}" if path else name)

    walk(module, "")
    return out


def count_leaves(module: torch.nn.Module, inputs: Any) -> list[LeafCount]:
    """Per layer call (in execution order): FLOPs, parameters and bytes moved, for one forward in eval mode.

    A layer is a module without children or a `torch.nn` layer with some (`is_layer`: `MultiheadAttention`
    counts as one, its projection weights included). FLOPs that FlopCounterMode attributes to no layer (a
    functional matmul inside a composite module) form one entry of type "functional" with no bytes, so the
    FLOPs add up to the network's total. Parameters no called layer holds (a model's own `nn.Parameter`, a
    weight used functionally) form one entry of type "parameters" with their bytes, so the parameters add up to
    the network's (each parameter once, at its first use, also when two layers share it). Bytes of work outside
    layers (functional adds, `x.mean`, concatenation) are left out, keeping roofline bounds low.
    """
    layers = layer_modules(module)
    names = {id(m): n for n, m in layers}
    counter = _Counter()
    started: list[int] = []  # the counter's total when each running layer call began (a stack: calls may nest)
    calls: list[tuple[str, torch.nn.Module, int, int, int]] = []

    def pre_hook(mod: torch.nn.Module, args: Any) -> None:
        started.append(int(counter.get_total_flops()))

    def hook(mod: torch.nn.Module, args: Any, output: Any) -> None:
        # FLOPs of this call: the counter's total now less at its start (a layer called twice on inputs of
        # different sizes gets each call's own FLOPs, not the average of its calls)
        flops = int(counter.get_total_flops()) - started.pop()
        moved_nothing = _same_tensor(args, output)
        calls.append((names[id(mod)], mod, flops, 0 if moved_nothing else _tensor_bytes(args),
                      0 if moved_nothing else _tensor_bytes(output)))

    handles = [h for _, m in layers for h in (m.register_forward_pre_hook(pre_hook), m.register_forward_hook(hook))]
    try:
        _counted_forward(module, inputs, counter)
    finally:
        for h in handles:
            h.remove()
    total = int(counter.get_total_flops())
    counted: set[int] = set()  # ids of parameters already counted
    out = []
    for name, mod, flops, in_bytes, out_bytes in calls:
        fresh = [p for p in mod.parameters() if id(p) not in counted]
        counted.update(id(p) for p in fresh)
        out.append(LeafCount(name, type(mod).__name__, flops, sum(p.numel() for p in fresh),
                             sum(_tensor_bytes(t) for t in (*mod.parameters(), *mod.buffers())),
                             in_bytes, out_bytes))
    rest = total - sum(x.flops for x in out)
    if rest > 0:  # FLOPs of functional calls inside non-leaf modules (e.g. attention matmuls): one pseudo-leaf
        out.append(LeafCount("", "functional", rest, 0, 0, 0, 0))
    held = parameters_entry([p for p in module.parameters() if id(p) not in counted])
    if held is not None:
        out.append(held)
    return out


def parameters_entry(params: list[torch.Tensor]) -> LeafCount | None:
    """The pseudo-leaf of parameters no called layer holds (see `count_leaves`), or None when there are none."""
    if not params:
        return None
    return LeafCount("", "parameters", 0, sum(p.numel() for p in params), sum(_tensor_bytes(p) for p in params), 0, 0)


def count_bytes(module: torch.nn.Module, inputs: Any) -> int:
    """Bytes moved by one forward pass, summed over leaf modules (see `LeafCount.bytes_moved`)."""
    return sum(leaf.bytes_moved for leaf in count_leaves(module, inputs))
