"""Mutable versions of the common torch layers: any argument may be a choice (or an expression of choices).

Called with plain values only, each returns the plain torch layer itself. With choices, it holds one weight
of the largest configuration (the elastic layers of `nas.spaces.dynamic`, as in Once-for-All) and slices it
to the active sizes; `export` gives the plain torch layer of one architecture with copies of the slices.
Arguments are those of the torch layer, of three kinds: sizes that slicing covers (channels, features, odd
kernel sizes), free arguments that do not shape a weight (stride, padding, dilation, head count) and fixed
arguments (groups, bias, eps, device, dtype, ...), where a choice is refused when the space is derived, naming
the module path. A torch argument the elastic layer does not implement (MultiheadAttention's kdim) must keep
its default beside a choice.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import SpaceDefinitionError
from nas.nn.mutable import Context, Freeze, Mutable
from nas.nn.values import Expr, Value, always_equal, called_at, plain_number, possible_values
from nas.spaces.dynamic import DynamicBatchNorm, DynamicConv1d, DynamicConv2d, DynamicLinear

__all__ = ["BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "LayerNorm", "Linear", "MultiheadAttention"]


class _Elastic(Mutable):
    """Shared by the mutable layers: binding the torch layer's arguments, the plain-layer shortcut and the refusal
    of choices in fixed arguments. Subclasses name their `plain` torch class, their `elastic`/`free` arguments,
    the plain-valued arguments they implement (`kept`; device and dtype are implemented here) and implement
    `_allocate`, `forward` and `_copy_into`."""

    plain: ClassVar[type[nn.Module]]
    elastic: ClassVar[tuple[str, ...]] = ()
    free: ClassVar[tuple[str, ...]] = ()
    kept: ClassVar[tuple[str, ...]] = ()
    unsupported: ClassVar[dict[str, str]] = {}  # why an argument of the torch layer must keep its default

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:  # copy and pickle rebuild an instance this way
            return super().__new__(cls)
        values = cls._bind_args(args, kwargs)
        if not any(isinstance(v, Value) for v in values.values()):
            return cls.plain(**values)  # nothing to choose: the plain torch layer, with every argument torch takes
        return super().__new__(cls)

    @classmethod
    def _bind_args(cls, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Every argument of the plain torch layer by name (defaults filled in); an argument it does not take is
        a SpaceDefinitionError naming this layer and the caller's line."""
        try:
            bound = inspect.signature(cls.plain).bind(*args, **kwargs)
        except TypeError as e:
            raise SpaceDefinitionError(f"nas.nn.{cls.__name__}{called_at()}: {e} (it takes the arguments of "
                                       f"torch.nn.{cls.plain.__name__})") from None
        bound.apply_defaults()
        return {k: _pack(v) for k, v in bound.arguments.items()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        values = self._bind_args(args, kwargs)
        self.args = values
        self._problem: str | None = None
        fixed = [k for k, v in values.items() if isinstance(v, Value) and k not in self.elastic + self.free]
        if fixed:
            self._problem = (f"{fixed[0]}: a choice cannot set {fixed[0]} of a {self.plain.__name__} (it is not "
                             f"elastic; choices may set {', '.join(self.elastic + self.free)})")
            return
        defaults = inspect.signature(self.plain).parameters
        implemented = self.elastic + self.free + self.kept + ("device", "dtype")
        other = [k for k, v in values.items() if k not in implemented and v != defaults[k].default]
        if other:
            self._problem = (f"{other[0]}: an elastic {self.plain.__name__} takes {other[0]} only at its default "
                             f"{defaults[other[0]].default!r}, not {values[other[0]]!r} "
                             f"({self.unsupported.get(other[0], 'it is not elastic')}; with plain values only, the "
                             f"layer is the plain torch.nn.{self.plain.__name__}, which takes it)")
            return
        for k in self.elastic:
            v = values[k]
            if isinstance(v, (tuple, list)) and v and not any(isinstance(e, Value) for e in v) and len(set(v)) == 1:
                values[k] = v = v[0]  # a plain square kernel given as (3, 3)
            bad = [o for o in possible_values(v) if isinstance(o, bool) or not isinstance(o, int) or o < 1]
            if bad:
                given = f"options {bad} are not" if isinstance(v, Value) else f"{v!r} is not"
                self._problem = f"{k}: {given} positive ints (an elastic {self.plain.__name__} takes one int per {k})"
                return
        self._problem = self._allocate({k: max(possible_values(values[k])) for k in self.elastic},
                                       {k: possible_values(values[k]) for k in self.elastic})
        if self._problem is None and self._placement():
            self.to(**self._placement())  # the weights on the device and of the dtype asked for, as torch's layer

    def _placement(self) -> dict[str, Any]:
        """The `device` / `dtype` given (those not None), for `Module.to`."""
        return {k: self.args[k] for k in ("device", "dtype") if self.args.get(k) is not None}

    def _allocate(self, largest: dict[str, int], options: dict[str, list[int]]) -> str | None:
        """Create the weights of the largest configuration; a problem (str) when the choices cannot share one."""
        raise NotImplementedError

    def value_args(self) -> dict[str, Any]:
        return {k: v for k, v in self.args.items() if isinstance(v, Value)}

    def check(self, path: str) -> None:
        super().check(path)
        if self._problem:
            raise SpaceDefinitionError(f"{path}.{self._problem}")

    def current(self) -> dict[str, Any]:
        """Every argument at its active value."""
        return {**self.args, **self.active()}

    def _expect(self, got: int, name: str, want: int) -> None:
        if got != want:
            raise ValueError(f"{self._path}: input has {got} {name.split('_')[-1]}, but {name} is {want} in the "
                             "active architecture")

    def export(self, ctx: Context, freeze: Freeze, fresh: bool) -> nn.Module:
        values = {k: ctx.resolve(v) for k, v in self.args.items()}
        layer = self.plain(**values)
        if not fresh:
            with torch.no_grad():
                self._copy_into(layer, values)
        return layer

    def _copy_into(self, layer: nn.Module, values: dict[str, Any]) -> None:
        raise NotImplementedError


def _pack(v: Any) -> Any:
    """A tuple or list holding choices as one value: `stride=(s, s)` is `s` (torch layers take an int for a square
    size), `padding=(p, 1)` an expression giving the tuple; a numpy scalar as its Python twin. Anything else as it
    is."""
    if not isinstance(v, (tuple, list)) or not any(isinstance(e, Value) for e in v):
        return plain_number(v)
    if all(e is v[0] for e in v) or always_equal(*v):  # one label is one decision: (Choice("k"), Choice("k"))
        return v[0]
    return Expr(lambda *e: tuple(e), tuple(v), f"({', '.join(map(repr, v))})")


class _ConvNd(_Elastic):
    """Elastic in/out channels and (odd) kernel size over OFA's `DynamicConvNd`; stride, padding and dilation
    may be choices too. Depthwise when groups, in_channels and out_channels are the same choice."""

    elastic = ("in_channels", "out_channels", "kernel_size")
    free = ("stride", "padding", "dilation", "groups")
    kept = ("bias", "padding_mode")
    dynamic_cls: ClassVar[type[nn.Module]]

    def _allocate(self, largest: dict[str, int], options: dict[str, list[int]]) -> str | None:
        a = self.args
        self.depthwise = isinstance(a["groups"], Value) and (
            a["groups"] is a["in_channels"] is a["out_channels"]
            or always_equal(a["groups"], a["in_channels"], a["out_channels"]))  # `w * 2` written inline, three times
        if isinstance(a["groups"], Value) and not self.depthwise:
            return ("groups: a choice can set groups only for a depthwise conv (groups, in_channels and "
                    "out_channels equal in every architecture: the same choice or expression)")
        if not isinstance(a["groups"], Value) and a["groups"] != 1 and (
                isinstance(a["in_channels"], Value) or isinstance(a["out_channels"], Value)):
            return f"groups: a grouped conv (groups={a['groups']}) cannot have elastic channels"
        if a["padding_mode"] != "zeros":
            return f"padding_mode: elastic convs pad with zeros, got {a['padding_mode']!r}"
        groups = 1 if self.depthwise else int(a["groups"])
        try:
            self.dynamic = self.dynamic_cls(largest["in_channels"] // groups, largest["out_channels"],
                                            options["kernel_size"], depthwise=self.depthwise, bias=bool(a["bias"]))
        except ValueError as e:
            return (f"kernel_size: options {options['kernel_size']} cannot share one weight ({e}; a smaller "
                    "kernel is the centre of the largest)")
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.current()
        cin, cout, k = a["in_channels"], a["out_channels"], a["kernel_size"]
        self._expect(x.shape[1], "in_channels", cin)
        groups = cin if self.depthwise else a["groups"]
        w = self.dynamic.weight_for(cin // groups if not self.depthwise else cin, cout, k)
        b = self.dynamic.bias[:cout] if self.dynamic.bias is not None else None
        conv = F.conv1d if self.dynamic.dims == 1 else F.conv2d
        return conv(x, w, b, a["stride"], a["padding"], a["dilation"], groups)

    def _copy_into(self, layer: nn.Module, values: dict[str, Any]) -> None:
        cin, cout, k = values["in_channels"], values["out_channels"], values["kernel_size"]
        per_group = cin if self.depthwise else cin // int(values["groups"])
        layer.weight.copy_(self.dynamic.weight_for(per_group, cout, k))
        if layer.bias is not None:
            layer.bias.copy_(self.dynamic.bias[:cout])


class Conv1d(_ConvNd):
    """`nn.Conv1d` whose channels, kernel size, stride, padding and dilation may be choices."""

    plain, dynamic_cls = nn.Conv1d, DynamicConv1d


class Conv2d(_ConvNd):
    """`nn.Conv2d` whose channels, kernel size, stride, padding and dilation may be choices."""

    plain, dynamic_cls = nn.Conv2d, DynamicConv2d


class Linear(_Elastic):
    """`nn.Linear` with elastic in/out features (OFA's `DynamicLinear`)."""

    plain, elastic, kept = nn.Linear, ("in_features", "out_features"), ("bias",)

    def _allocate(self, largest: dict[str, int], options: dict[str, list[int]]) -> str | None:
        self.dynamic = DynamicLinear(largest["in_features"], largest["out_features"], bias=bool(self.args["bias"]))
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.current()
        self._expect(x.shape[-1], "in_features", a["in_features"])
        return F.linear(x, *self.dynamic.weight_for(a["in_features"], a["out_features"]))

    def _copy_into(self, layer: nn.Module, values: dict[str, Any]) -> None:
        w, b = self.dynamic.weight_for(values["in_features"], values["out_features"])
        layer.weight.copy_(w)
        if b is not None:
            layer.bias.copy_(b)


class _BatchNorm(_Elastic):
    """Batch norm over the first C channels (OFA's `DynamicBatchNorm`; running statistics shared and sliced)."""

    elastic, kept = ("num_features",), ("eps", "momentum", "affine", "track_running_stats")
    dims: ClassVar[int]

    def _allocate(self, largest: dict[str, int], options: dict[str, list[int]]) -> str | None:
        if not (self.args["affine"] and self.args["track_running_stats"]):
            return "num_features: an elastic batch norm needs affine=True and track_running_stats=True"
        self.dynamic = DynamicBatchNorm(largest["num_features"], self.dims, self.args["eps"], self.args["momentum"])
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._expect(x.shape[1], "num_features", self.current()["num_features"])
        return self.dynamic(x)

    def export(self, ctx: Context, freeze: Freeze, fresh: bool) -> nn.Module:
        c = ctx.resolve(self.args["num_features"])
        return super().export(ctx, freeze, fresh) if fresh else self.dynamic.export(c).to(**self._placement())


class BatchNorm1d(_BatchNorm):
    """`nn.BatchNorm1d` with elastic num_features."""

    plain, dims = nn.BatchNorm1d, 1


class BatchNorm2d(_BatchNorm):
    """`nn.BatchNorm2d` with elastic num_features."""

    plain, dims = nn.BatchNorm2d, 2


class LayerNorm(_Elastic):
    """`nn.LayerNorm` over the last dim with elastic size (the first features of the largest weight)."""

    plain, elastic, kept = nn.LayerNorm, ("normalized_shape",), ("eps", "elementwise_affine", "bias")

    def _allocate(self, largest: dict[str, int], options: dict[str, list[int]]) -> str | None:
        ref = nn.LayerNorm(largest["normalized_shape"], self.args["eps"], bool(self.args["elementwise_affine"]),
                           bias=bool(self.args["bias"]))
        self.weight, self.bias = ref.weight, ref.bias
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.current()
        c = a["normalized_shape"]
        self._expect(x.shape[-1], "normalized_shape", c)
        w = self.weight[:c] if self.weight is not None else None
        b = self.bias[:c] if self.bias is not None else None
        return F.layer_norm(x, (c,), w, b, a["eps"])

    def _copy_into(self, layer: nn.Module, values: dict[str, Any]) -> None:
        c = values["normalized_shape"]
        if layer.weight is not None:
            layer.weight.copy_(self.weight[:c])
        if layer.bias is not None:
            layer.bias.copy_(self.bias[:c])


class MultiheadAttention(_Elastic):
    """`nn.MultiheadAttention` (self- or cross-attention of equal widths) with elastic embed_dim: the q, k, v
    and output projections are sliced to the first `embed_dim` rows/columns; num_heads may be a choice too
    (it shapes no weight), as long as it divides embed_dim. kdim, vdim and add_bias_kv keep their defaults
    beside a choice."""

    plain, elastic, free = nn.MultiheadAttention, ("embed_dim",), ("num_heads", "dropout")
    kept = ("bias", "batch_first", "add_zero_attn")
    unsupported = {"kdim": "cross-attention with kdim/vdim is not elastic", "vdim": "cross-attention with "
                   "kdim/vdim is not elastic", "add_bias_kv": "the extra key/value biases are not elastic"}

    def _allocate(self, largest: dict[str, int], options: dict[str, list[int]]) -> str | None:
        problem = self._heads_problem()
        if problem:
            return problem
        ref = nn.MultiheadAttention(largest["embed_dim"], 1, bias=bool(self.args["bias"]))
        self.max_embed = largest["embed_dim"]
        self.in_proj_weight, self.in_proj_bias = ref.in_proj_weight, ref.in_proj_bias
        self.out_proj_weight, self.out_proj_bias = ref.out_proj.weight, ref.out_proj.bias
        return None

    def _heads_problem(self) -> str | None:
        """Why some architecture's num_heads cannot split its embed_dim (the pairs the labels allow, one label one
        decision), so the space holds no architecture that fails to build; None when every pair divides."""
        embed, heads = self.args["embed_dim"], self.args["num_heads"]
        bad = [h for h in possible_values(heads) if isinstance(h, bool) or not isinstance(h, int) or h < 1]
        if bad:
            return f"num_heads: {bad[0]!r} is not a positive int"
        pairs = possible_values(Expr(lambda e, h: (e, h), (embed, heads), "(embed_dim, num_heads)"))
        e, h = next(((e, h) for e, h in pairs if e % h), (None, None))
        if e is None:
            return None
        return (f"num_heads: {h} heads do not divide embed_dim {e} (num_heads must divide embed_dim in every "
                "architecture; give head counts that divide every embed_dim option, or derive one from the other, "
                "e.g. num_heads=embed_dim // 4)")

    def _weights(self, e: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        m = self.max_embed
        w = torch.cat([self.in_proj_weight[i * m:i * m + e, :e] for i in range(3)])
        b = torch.cat([self.in_proj_bias[i * m:i * m + e] for i in range(3)]) if self.in_proj_bias is not None else None
        ob = self.out_proj_bias[:e] if self.out_proj_bias is not None else None
        return w, b, self.out_proj_weight[:e, :e], ob

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        a = self.current()
        e, heads = a["embed_dim"], a["num_heads"]
        self._expect(query.shape[-1], "embed_dim", e)
        if e % heads:
            raise ValueError(f"{self._path}: num_heads {heads} does not divide embed_dim {e}")
        if a["batch_first"]:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        w, b, ow, ob = self._weights(e)
        out, weights = F.multi_head_attention_forward(
            query, key, value, e, heads, w, b, None, None, bool(a["add_zero_attn"]), a["dropout"], ow, ob,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        return (out.transpose(0, 1) if a["batch_first"] else out), weights

    def _copy_into(self, layer: nn.Module, values: dict[str, Any]) -> None:
        w, b, ow, ob = self._weights(values["embed_dim"])
        layer.in_proj_weight.copy_(w)
        layer.out_proj.weight.copy_(ow)
        if b is not None:
            layer.in_proj_bias.copy_(b)
            layer.out_proj.bias.copy_(ob)
