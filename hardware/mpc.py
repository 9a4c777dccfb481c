"""Latency of transformer inference under secure two-party computation (MPC), modelled per operation.

MPCViT (Zeng et al., ICCV 2023) and MPCFormer (Li et al., ICLR 2023) observe that under secret sharing
the cost of a transformer is not its FLOPs but its communication: every multiplication of two secret
values opens masked values (Beaver triples, one round), and non-linear functions are iterative
approximations built from many such rounds, comparisons being the most expensive. An operation costs

    latency = rounds x round_latency + bytes / bandwidth + local_ops / ops_per_second

with the rounds, bytes (sent per party) and local ops of its protocol taken from `Protocol` (CrypTen's
default approximations, docs/mpc.md) and the network from `NetworkProfile` (LAN and WAN presets, or
your own). `MPCLatency(space, profile="wan")(arch_or_module)` walks a built model's modules in execution
order (forward hooks on one example sentence of `seq_len` tokens) and sums its operations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from nas.counts import eval_mode
from nas.errors import ConfigError, check_count

# ---------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class NetworkProfile:
    """The network and the parties' machines: one round's latency, bandwidth per party, local ring-op rate."""

    name: str
    round_latency_s: float
    bandwidth_bytes_s: float
    ops_per_s: float = 5e9

    def __post_init__(self) -> None:
        for f in ("round_latency_s", "bandwidth_bytes_s", "ops_per_s"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{f}: expected a positive finite number, got {v!r}")


# Illustrative settings in the range secure-inference papers use, not measurements of one system:
# LAN 1 Gbit/s with 0.5 ms per round, WAN 100 Mbit/s with 40 ms per round.
PROFILES: dict[str, NetworkProfile] = {
    "lan": NetworkProfile("lan", round_latency_s=0.5e-3, bandwidth_bytes_s=1e9 / 8),
    "wan": NetworkProfile("wan", round_latency_s=40e-3, bandwidth_bytes_s=100e6 / 8),
}


@dataclass(frozen=True)
class Protocol:
    """Costs of the primitives of 2-party arithmetic secret sharing, defaults after CrypTen (Knott et al. 2021).

    Values live in a ring of `ring_bits` bits; multiplications use Beaver triples from a trusted dealer
    (offline, not counted), so a product opens two masked operands in one round; a square opens one.
    `ring_bits` is a multiple of 8 (shares are sent as whole bytes).
    A comparison converts shares to binary (a ceil(log2 ring_bits)-level carry-lookahead adder of AND gates,
    each AND opening two words) and the sign bit back to arithmetic (one more round). exp is the limit
    approximation (1 + x/2^n)^(2^n) by `exp_iterations` squarings; the reciprocal starts from an exp and
    takes `reciprocal_iterations` Newton steps (a square and a product each); the inverse square root
    starts from an exp and takes `inv_sqrt_iterations` Newton steps (a square and two products); GELU is
    x (1 + erf(x / sqrt 2)) / 2 with erf's Taylor series of `erf_iterations` terms; the maximum of a row
    is a tree of comparisons and selections. `local_ops_per_element` prices local work per opened element.
    """

    ring_bits: int = 64
    exp_iterations: int = 8
    reciprocal_iterations: int = 10
    inv_sqrt_iterations: int = 3
    erf_iterations: int = 8
    local_ops_per_element: int = 4

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{f.name}: expected a positive int, got {v!r}")
        if self.ring_bits % 8:  # shares travel as whole bytes: `word` would drop the remainder
            raise ConfigError(f"ring_bits: expected a multiple of 8 (a ring element is sent as whole bytes), "
                              f"got {self.ring_bits}")

    @property
    def word(self) -> int:
        """Bytes of one ring element."""
        return self.ring_bits // 8


CRYPTEN = Protocol()


# ---------------------------------------------------------------------------------------- primitives
@dataclass(frozen=True)
class Cost:
    """Rounds, bytes sent per party and local ring operations of a protocol step; `+` runs them in sequence."""

    rounds: int = 0
    bytes: float = 0.0
    ops: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.rounds + other.rounds, self.bytes + other.bytes, self.ops + other.ops)

    def latency(self, profile: NetworkProfile) -> float:
        return (self.rounds * profile.round_latency_s + self.bytes / profile.bandwidth_bytes_s
                + self.ops / profile.ops_per_s)


def _opened(p: Protocol, elements: float, rounds: int = 1) -> Cost:
    """`rounds` rounds that open `elements` masked ring elements in total."""
    return Cost(rounds, elements * p.word, elements * p.local_ops_per_element)


def mul(p: Protocol, n: float) -> Cost:
    """n element-wise products of two secret values (Beaver: open x - a and y - b)."""
    return _opened(p, 2 * n)


def square(p: Protocol, n: float) -> Cost:
    return _opened(p, n)


def matmul(p: Protocol, m: int, k: int, n: int) -> Cost:
    """A secret [m, k] x [k, n] product: open both masked operands in one round; three local matmuls."""
    return Cost(1, (m * k + k * n) * p.word, 6.0 * m * k * n)


def compare(p: Protocol, n: float) -> Cost:
    """n sign tests: arithmetic to binary (1 + ceil(log2 bits) AND rounds, 1 + 2 ceil(log2 bits) ANDs), bit to
    arithmetic."""
    levels = (p.ring_bits - 1).bit_length()  # ceil(log2 ring_bits): the adder's levels
    ands = 1 + 2 * levels
    return Cost(levels + 2, n * (2 * ands + 1) * p.word, n * (2 * ands + 1) * p.local_ops_per_element)


def relu(p: Protocol, n: float) -> Cost:
    """x * [x > 0]: a comparison and a product."""
    return compare(p, n) + mul(p, n)


def exp(p: Protocol, n: float) -> Cost:
    return sum((square(p, n) for _ in range(p.exp_iterations)), Cost())


def reciprocal(p: Protocol, n: float) -> Cost:
    newton = sum((square(p, n) + mul(p, n) for _ in range(p.reciprocal_iterations)), Cost())
    return exp(p, n) + newton


def inv_sqrt(p: Protocol, n: float) -> Cost:
    newton = sum((square(p, n) + mul(p, n) + mul(p, n) for _ in range(p.inv_sqrt_iterations)), Cost())
    return exp(p, n) + newton


def row_max(p: Protocol, rows: float, length: int) -> Cost:
    """The maximum of each of `rows` rows of `length`: a tree of ceil(log2 length) compare-and-select levels."""
    cost, m = Cost(), length
    while m > 1:
        pairs = m // 2
        cost += compare(p, rows * pairs) + mul(p, rows * pairs)
        m -= pairs
    return cost


def gelu(p: Protocol, n: float) -> Cost:
    taylor = sum((mul(p, n) for _ in range(p.erf_iterations)), Cost())
    return square(p, n) + taylor + mul(p, n)


def layer_norm(p: Protocol, rows: float, width: int) -> Cost:
    """Mean (local), variance (a square), 1/sqrt per row, normalise and scale by the secret gain (two products)."""
    return square(p, rows * width) + inv_sqrt(p, rows) + mul(p, rows * width) + mul(p, rows * width)


def attention_weights(p: Protocol, kind: str, rows: float, length: int) -> Cost:
    """Turn `rows` rows of `length` scores into weights: softmax, ReLU-normalised or linear (scaled)."""
    if kind == "softmax":  # exp(s - max s) / sum
        return row_max(p, rows, length) + exp(p, rows * length) + reciprocal(p, rows) + mul(p, rows * length)
    if kind == "relu":  # relu(s) / sum relu(s)
        return relu(p, rows * length) + reciprocal(p, rows) + mul(p, rows * length)
    if kind == "linear":  # s / (number of keys): a public divisor, local truncation
        return Cost()
    raise ConfigError(f"kind: unknown attention {kind!r} (known: softmax, relu, linear)")


# ---------------------------------------------------------------------------------------- the model walk
@dataclass(frozen=True)
class MPCOp:
    """One operation of the model: the module it comes from, what it is, and its cost."""

    module: str
    kind: str
    cost: Cost


@dataclass(frozen=True)
class MPCReport:
    """Every operation in execution order, its totals and the latency under `profile`."""

    ops: tuple[MPCOp, ...]
    profile: NetworkProfile
    seq_len: int

    @property
    def total(self) -> Cost:
        return sum((op.cost for op in self.ops), Cost())

    @property
    def latency_s(self) -> float:
        return self.total.latency(self.profile)

    def by_kind(self) -> dict[str, float]:
        """Seconds per operation kind (matmul, softmax, layer_norm, gelu, ...)."""
        out: dict[str, float] = {}
        for op in self.ops:
            out[op.kind] = out.get(op.kind, 0.0) + op.cost.latency(self.profile)
        return out

    def metrics(self) -> dict[str, float]:
        t = self.total
        return {"mpc_latency_s": self.latency_s, "mpc_rounds": float(t.rounds), "mpc_megabytes": t.bytes / 1e6}


FREE = (nn.Dropout, nn.Identity)  # no secure computation


def _rows(x: torch.Tensor) -> int:
    return int(x.numel() // x.shape[-1])


def _linear(p: Protocol, m: nn.Linear, x: torch.Tensor, _out: torch.Tensor) -> tuple[str, Cost]:
    return "matmul", matmul(p, _rows(x), m.in_features, m.out_features)


def _conv(p: Protocol, m: nn.Conv1d, x: torch.Tensor, out: torch.Tensor) -> tuple[str, Cost]:
    """Open the masked input and weights once; the products are local: each output element takes
    in_channels / groups x kernel of them."""
    return "conv", Cost(1, (x.numel() + m.weight.numel()) * p.word, 6.0 * out.numel() * m.weight[0].numel())


def _layer_norm(p: Protocol, m: nn.LayerNorm, x: torch.Tensor, _out: torch.Tensor) -> tuple[str, Cost]:
    return "layer_norm", layer_norm(p, _rows(x), x.shape[-1])


def _attention(p: Protocol, m: Any, x: torch.Tensor, _out: torch.Tensor) -> tuple[str, Cost]:
    """The attention core per head, heads in parallel (same rounds): q k^T, the weights, weights x v."""
    b, n = x.shape[0], x.shape[1]
    rows, d = b * m.heads, m.head_dim
    products = Cost(1, rows * 2 * n * d * p.word, rows * 6.0 * n * d * n)  # q k^T: open q and k
    weigh = Cost(1, rows * (n * n + n * d) * p.word, rows * 6.0 * n * n * d)  # weights x v
    return m.kind, products + attention_weights(p, m.kind, rows * n, n) + weigh


def _linear_mix(p: Protocol, m: Any, x: torch.Tensor, _out: torch.Tensor) -> tuple[str, Cost]:
    n = x.shape[1]
    return "matmul", matmul(p, _rows(x.transpose(1, 2)), n, n)


def _fourier(p: Protocol, m: Any, x: torch.Tensor, _out: torch.Tensor) -> tuple[str, Cost]:
    """A public DFT is linear: local on shares."""
    n, d = x.shape[1], x.shape[2]
    return "fourier", Cost(0, 0.0, 2.0 * x.shape[0] * n * d * (n + d))


Handler = Callable[[Protocol, Any, torch.Tensor, torch.Tensor], tuple[str, Cost]]


@cache
def handlers() -> dict[type, Handler]:
    """The costed module types (imported on first use: `import nas.hardware` stays light)."""
    from nas.spaces.transformer import FourierMix, LinearMix, SelfAttention

    return {nn.Linear: _linear, nn.Conv1d: _conv, nn.LayerNorm: _layer_norm, SelfAttention: _attention,
            LinearMix: _linear_mix, FourierMix: _fourier,
            nn.GELU: lambda p, m, x, _out: ("gelu", gelu(p, x.numel())),
            nn.ReLU: lambda p, m, x, _out: ("relu", relu(p, x.numel()))}


def _max_pool(p: Protocol, x: torch.Tensor) -> Cost:
    """The masked maximum over the tokens of x [batch, tokens, features]: a row maximum per sentence and feature
    (masking by public lengths is local)."""
    b, n, d = x.shape
    return row_max(p, b * d, n)


def _poolings(model: nn.Module, names: Mapping[nn.Module, str]) -> dict[nn.Module, tuple[str, nn.Module]]:
    """{final norm: (name of the max-pool op, the classifier)} for the classifiers that max-pool their tokens
    (`pooling="mean_max"`).

    The pooling is a functional call inside the classifier's forward, so it is costed on the output of the
    norm right before it; a pooling this module does not know raises `ConfigError` naming the classifier."""
    from nas.spaces.transformer import TransformerClassifier

    out: dict[nn.Module, tuple[str, nn.Module]] = {}
    for m, name in names.items():
        if not isinstance(m, TransformerClassifier):
            continue
        if m.pooling not in ("mean", "mean_max"):
            raise ConfigError(f"{name}: no MPC cost for pooling {m.pooling!r}")
        if m.pooling == "mean_max":
            out[m.norm] = ("max_pool" if m is model else f"{name}.max_pool", m)
    return out


def _embedding(p: Protocol, m: nn.Embedding, x: torch.Tensor) -> tuple[str, Cost]:
    """A secret token lookup as one-hot [tokens, vocab] x table [vocab, dim]."""
    return "embedding", matmul(p, int(x.numel()), m.num_embeddings, m.embedding_dim)


# What a module's own forward may do to secret values outside the costed modules (aten op names, in-place
# forms included): local on additive shares whatever their secret operands (additions, public-index moves,
# selections by public masks, public linear maps such as the DFT) ...
LOCAL_OPS = frozenset({
    "add", "sub", "rsub", "neg", "sum", "mean", "cumsum", "cat", "stack", "view", "_unsafe_view", "reshape",
    "_reshape_alias", "transpose", "t", "permute", "expand", "expand_as", "squeeze", "unsqueeze", "slice", "select",
    "index_select", "index", "gather", "clone", "copy", "contiguous", "alias", "detach", "lift_fresh",
    "lift_fresh_copy", "_to_copy", "to", "split", "split_with_sizes", "chunk", "unbind", "flatten", "narrow",
    "repeat", "constant_pad_nd", "as_strided", "unfold", "roll", "flip", "masked_fill", "where", "fill", "zero",
    "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "_adaptive_avg_pool2d", "_fft_r2c", "_fft_c2c", "_fft_c2r",
    "real", "imag", "view_as_real", "view_as_complex", "conj", "_conj", "dropout"})
# ... that read only the shape of their input (their output is public) ...
SHAPE_OPS = frozenset({"empty_like", "zeros_like", "ones_like", "full_like", "new_empty", "new_zeros", "new_ones",
                       "new_full", "sym_size", "sym_stride", "sym_numel", "size", "stride", "dim"})
# ... and products, local when at most one operand is secret (a public scaling or a public linear map).
PRODUCT_OPS = frozenset({"mul", "mm", "bmm", "matmul", "addmm", "baddbmm", "addbmm", "addmv", "mv", "dot", "vdot",
                         "einsum", "linear", "convolution", "_convolution", "conv1d", "conv2d", "outer",
                         "tensordot"})


def _op_name(func: Any) -> str:
    name = func.overloadpacket.__name__
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


class _SecretTracker(TorchDispatchMode):
    """Follows which tensors hold secret values (the parameters, a floating-point input and everything computed
    from them) through one forward pass, and refuses arithmetic on them that no costed module accounts for: a
    non-linear function, a product of two secret values or a division by one, made by a module's own forward.
    Token ids are public here: their values reach the computation only through costed embedding lookups, and
    what is derived from them otherwise (the mask of real tokens, lengths) is public by the model's assumption."""

    def __init__(self, model: nn.Module, example: torch.Tensor, names: Mapping[nn.Module, str],
                 costed: Callable[[nn.Module], bool], allowed: Mapping[nn.Module, frozenset[str]]) -> None:
        super().__init__()
        self.names, self.costed, self.allowed = names, costed, allowed
        self.secret = {id(p): p for p in model.parameters()}  # kept alive, so no id is reused mid-pass
        if example.is_floating_point():
            self.secret[id(example)] = example
        self.stack: list[nn.Module] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flat, _ = tree_flatten((args, kwargs))
        secret = [isinstance(t, torch.Tensor) and id(t) in self.secret for t in flat]
        if not any(secret):
            return out
        name = _op_name(func)
        if name in SHAPE_OPS:
            return out
        if not any(self.costed(m) for m in self.stack):
            self._check(name, func, args, secret, [isinstance(t, torch.Tensor) for t in flat])
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.secret[id(t)] = t
        return out

    def _check(self, name: str, func: Any, args: tuple, secret: list[bool], tensors: list[bool]) -> None:
        owner = self.stack[-1] if self.stack else None
        if name in LOCAL_OPS or (owner is not None and name in self.allowed.get(owner, frozenset())):
            return
        what = "a non-linear function of a secret value"
        if name == "div":
            if not (isinstance(args[1], torch.Tensor) and id(args[1]) in self.secret):
                return
            what = "a division by a secret value"
        elif name in PRODUCT_OPS:
            operands = [s for s, t in zip(secret, tensors) if t]
            if name in ("addmm", "baddbmm", "addbmm", "addmv"):
                operands = operands[1:]  # the added term is local
            if sum(operands) <= 1:
                return
            what = "a product of two secret values"
        where = f"{self.names[owner]} ({type(owner).__name__}.forward)" if owner is not None else "the model"
        raise ConfigError(f"{where}: no MPC cost for {func.overloadpacket} ({what}) computed outside the costed "
                          "modules: add a handler for the module rather than let it cost nothing")


def mpc_ops(model: nn.Module, example: torch.Tensor, protocol: Protocol = CRYPTEN,
            public_embeddings: tuple[str, ...] = ("positions",)) -> list[MPCOp]:
    """The operations of one forward pass of `model` on `example`, in execution order.

    Modules whose children are all costed (containers, encoder layers, the classifier) cost nothing
    themselves; residual additions, masking by public lengths and mean pooling are local, max pooling over the
    tokens (`pooling="mean_max"`) is a row maximum per feature. Embeddings
    named in `public_embeddings` are indexed by public positions (local); other embeddings are secret
    lookups. A module the model does not know how to price raises `ConfigError` naming it, and so does a
    module whose own forward computes a non-linear function (`F.softmax`, `F.silu`, `torch.exp`, a maximum),
    a product of two secret values or a division by one outside the costed modules (naming the module and op).
    """
    names = {m: name or "model" for name, m in model.named_modules()}
    for m, name in names.items():
        leaf = next(m.children(), None) is None
        own_params = next(m.parameters(recurse=False), None) is not None
        if not isinstance(m, (*handlers(), nn.Embedding, *FREE)) and (leaf or own_params):
            raise ConfigError(f"{name}: no MPC cost for module type {type(m).__name__}")
    ops: list[MPCOp] = []

    def hook(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        name, x = names[m], args[0]
        if isinstance(m, nn.Embedding):
            if name.rsplit(".", 1)[-1] not in public_embeddings:
                ops.append(MPCOp(name, *_embedding(protocol, m, x)))
            return
        handler = next((h for t, h in handlers().items() if isinstance(m, t)), None)
        if handler is not None:
            ops.append(MPCOp(name, *handler(protocol, m, x, out)))

    pooled = _poolings(model, names)

    def pool_hook(m: nn.Module, _args: tuple[Any, ...], out: torch.Tensor) -> None:
        ops.append(MPCOp(pooled[m][0], "max_pool", _max_pool(protocol, out)))

    max_pooling = {classifier: frozenset({"amax"}) for _, classifier in pooled.values()}  # costed by pool_hook
    tracker = _SecretTracker(model, example, names, lambda m: isinstance(m, (*handlers(), nn.Embedding, *FREE)),
                             max_pooling)

    def leave(_m: nn.Module, _args: tuple[Any, ...], _out: Any) -> None:
        tracker.stack.pop()

    handles = [m.register_forward_pre_hook(lambda m, _args: tracker.stack.append(m)) for m in names]
    handles += [m.register_forward_hook(leave) for m in names]
    handles += [m.register_forward_hook(hook) for m in names if not isinstance(m, FREE)]
    handles += [m.register_forward_hook(pool_hook) for m in pooled]  # after the norm's own op
    try:
        with torch.no_grad(), eval_mode(model), tracker:
            model(example)
    finally:
        for h in handles:
            h.remove()
    return ops


class MPCLatency:
    """Modelled secure-inference latency of a space's architectures (or of any costed module that takes token ids).

    `profile` is a `NetworkProfile` or a name in `PROFILES`; `seq_len` (a positive int, numpy's taken) defaults to the
    space's `max_len` (the padded length is public and every sentence is costed at it). Calling it returns the metrics
    `mpc_latency_s`, `mpc_rounds` and `mpc_megabytes` (wrap it in `nas.cheap` for a search). The model is fed
    `[1, seq_len]` token ids; a module that fails on them (one taking features) is a ConfigError saying so: cost
    it with `mpc_ops(module, example)` on an input of your own.
    """

    def __init__(self, space: Any = None, profile: NetworkProfile | str = "wan", protocol: Protocol = CRYPTEN,
                 seq_len: int | None = None) -> None:
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise ConfigError(f"profile: unknown network profile {profile!r} (known: {', '.join(PROFILES)})")
            profile = PROFILES[profile]
        if not isinstance(profile, NetworkProfile):
            raise ConfigError(f"profile: expected a NetworkProfile or one of {', '.join(PROFILES)}, got {profile!r}")
        if not isinstance(protocol, Protocol):
            raise ConfigError(f"protocol: expected a Protocol, got {protocol!r}")
        self.space, self.profile, self.protocol = space, profile, protocol
        config = getattr(space, "config", None)
        if seq_len is not None:  # numpy ints (np.percentile(...).astype(int)) taken as Python ints
            seq_len = check_count(seq_len, "seq_len", " (or None for the space's max_len)")
        self.seq_len = seq_len if seq_len is not None else getattr(config, "max_len", None)
        if isinstance(self.seq_len, bool) or not isinstance(self.seq_len, int) or self.seq_len < 1:
            raise ConfigError(f"seq_len: expected a positive int (or a space whose config has max_len), "
                              f"got {self.seq_len!r}")
        limit = getattr(config, "max_len", None)
        if limit is not None and self.seq_len > limit:
            raise ConfigError(f"seq_len: {self.seq_len} is longer than the space's max_len {limit}")

    def report(self, arch_or_module: Mapping[str, Any] | nn.Module) -> MPCReport:
        if isinstance(arch_or_module, nn.Module):
            model = arch_or_module
        elif self.space is None:
            raise ConfigError("space: give a space to cost architectures (or pass a built module)")
        else:
            model = self.space.build(arch_or_module)
        example = torch.ones(1, self.seq_len, dtype=torch.long)  # every position a real token
        if model is not arch_or_module:
            return MPCReport(tuple(mpc_ops(model, example, self.protocol)), self.profile, self.seq_len)
        try:  # a user's module may not take token ids: say what MPCLatency feeds, not torch's dtype error
            ops = mpc_ops(model, example, self.protocol)
        except (RuntimeError, TypeError, IndexError) as e:
            raise ConfigError(f"module: MPCLatency feeds a [1, seq_len={self.seq_len}] tensor of token ids "
                              f"(torch.long), and {type(model).__name__} failed on it ({type(e).__name__}: {e}); for "
                              "a module that takes other inputs (features), cost it with `mpc_ops(module, example)` "
                              "and `MPCReport(tuple(ops), profile, seq_len)`") from e
        return MPCReport(tuple(ops), self.profile, self.seq_len)

    def __call__(self, arch_or_module: Mapping[str, Any] | nn.Module) -> dict[str, float]:
        return self.report(arch_or_module).metrics()

    def with_profile(self, profile: NetworkProfile | str) -> MPCLatency:
        """The same model under another network."""
        return MPCLatency(self.space, profile, self.protocol, self.seq_len)


__all__ = ["CRYPTEN", "Cost", "MPCLatency", "MPCOp", "MPCReport", "NetworkProfile", "PROFILES", "Protocol",
           "attention_weights", "compare", "exp", "gelu", "inv_sqrt", "layer_norm", "matmul", "mpc_ops", "mul",
           "reciprocal", "relu", "row_max", "square"]
