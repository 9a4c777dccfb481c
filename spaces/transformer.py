"""Transformer spaces for text classification: FlexiBERT-style heterogeneous encoders and an elastic supernet.

* `FlexiBertSpace` (Tuli et al., 2023): every encoder layer picks its own token mixer (multi-head
  self-attention, FNet Fourier mixing, a learned linear mix over positions, or a separable
  convolution), hidden size, head count (attention only), kernel (convolution only) and feed-forward
  stack; linear projections join layers of different widths. Its graph form has a node per attention
  head / mixer / FFN layer, labelled for WL-style graph similarity.
* Attention kinds (MPCViT, Zeng et al., 2023): with `FlexiBertConfig(attentions=...)` every attention layer
  also picks how its weights are formed: `softmax`, `relu` (ReLU-normalised, relu(s) / sum relu(s)) or
  `linear` (scaled, s / number of keys; no exponent, no division by a secret), the choices that change its
  cost under secure multi-party computation (`nas.hardware.mpc`).
* `ElasticTransformerSpace` (LLaMA-NAS / InstaTune style): per-layer heads and FFN width, and depth, are
  elastic choices inside one weight-sharing supernet built on `nas.spaces.dynamic.DynamicLinear`;
  `supernet.subnet(arch)` returns a standalone model with the same outputs. `sample_subnet(rng, elastic)`
  samples the named dimensions (`ELASTIC`), so progressive shrinking's phases apply to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError, InvalidArchitectureError, check_int
from nas.jsonio import python_scalar
from nas.architecture import Architecture
from nas.spaces.dynamic import DynamicLinear
from nas.spaces.model_space import ModelSpace
from nas.spaces.params import Choice, Conditional
from nas.spaces.space import Repeat

MIXERS = ("attention", "fourier", "linear", "conv")
ATTENTIONS = ("softmax", "relu", "linear")  # how attention weights are formed from the scores (MPCViT)
POOLINGS = ("mean", "mean_max")  # how the classifier head pools the tokens (TransformerClassifier)
PAD = 0  # token id of padding; the mask of real tokens is `tokens != PAD`
ELASTIC = frozenset({"depth", "heads", "ffn"})
"""The elastic transformer's dimensions; a progressive-shrinking phase samples some, the rest at their largest."""


def _check_config(cfg: Any) -> None:
    """Each field as its annotation says: a non-empty list of distinct options (`tuple[...]`) or one value; ints
    positive, `vocab_size` at least 2 (PAD and a token), `dropout` a probability. Numpy scalars are taken as their
    Python twins (`np.percentile(lengths, 95).astype(int)` as `max_len`). Errors name the field."""
    for f in fields(cfg):
        v, kind = getattr(cfg, f.name), str(f.type)
        many = kind.startswith("tuple")
        if many:
            if not isinstance(v, (list, tuple)):
                raise ConfigError(f"{f.name}: expected a list of options, got {v!r} (e.g. {f.name}=({v!r},))")
            if not v:
                raise ConfigError(f"{f.name}: give at least one option")
            v = tuple(python_scalar(x) for x in v)
        elif isinstance(v, (list, tuple)):
            raise ConfigError(f"{f.name}: expected one value, got the list {v!r}")
        else:
            v = python_scalar(v)
        object.__setattr__(cfg, f.name, v)
        values = v if many else (v,)
        if "int" in kind and any(not isinstance(x, int) or isinstance(x, bool) or x < 1 for x in values):
            raise ConfigError(f"{f.name}: expected positive ints, got {v!r}")
        if "str" in kind and any(not isinstance(x, str) for x in values):
            raise ConfigError(f"{f.name}: expected names, got {v!r}")
        twice = [x for i, x in enumerate(values) if x in values[:i]] if many else []
        if twice:  # else the space's Choice refuses it later, under its own path (layers[].op)
            raise ConfigError(f"{f.name}: {twice[0]!r} appears twice in {v!r} (give each option once)")
    check_int(cfg.vocab_size, "vocab_size", 2)  # PAD and at least one token (example inputs draw ids 1..vocab-1)
    dropout = cfg.dropout
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout: expected a probability in [0, 1), got {dropout!r}")


# ---------------------------------------------------------------------------------------- token mixers
class SelfAttention(nn.Module):
    """Multi-head self-attention with `heads` heads of `head_dim` each (padding keys masked out); `kind` is
    one of `ATTENTIONS` (see `attend`)."""

    def __init__(self, hidden: int, heads: int, head_dim: int, kind: str = "softmax") -> None:
        super().__init__()
        if kind not in ATTENTIONS:
            raise ConfigError(f"kind: unknown attention {kind!r} (known: {', '.join(ATTENTIONS)})")
        self.heads, self.head_dim, self.kind = heads, head_dim, kind
        inner = heads * head_dim
        self.q, self.k, self.v = nn.Linear(hidden, inner), nn.Linear(hidden, inner), nn.Linear(hidden, inner)
        self.o = nn.Linear(inner, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.o(attend(self.q(x), self.k(x), self.v(x), mask, self.heads, self.kind))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, heads: int,
           kind: str = "softmax") -> torch.Tensor:
    """Scaled dot-product attention of [B, L, heads*d] projections; `mask` [B, L] marks real tokens.

    With s = q k^T / sqrt(d) over the real keys, the weights are softmax(s) (`softmax`), relu(s) / sum relu(s)
    (`relu`; a row whose scores are all <= 0 attends to nothing), or s / (number of real keys) (`linear`:
    MPCViT's scaling attention; the count is public, so secure computation needs no exponent or division).
    """
    b, n, inner = q.shape

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(b, n, heads, inner // heads).transpose(1, 2)

    keys = mask[:, None, None, :]
    if kind == "softmax":
        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=keys)
    else:
        scores = (split(q) @ split(k).transpose(-2, -1)) * (inner // heads) ** -0.5
        scores = scores.masked_fill(~keys, 0.0)
        if kind == "relu":
            weights = F.relu(scores)
            weights = weights / weights.sum(-1, keepdim=True).clamp(min=1e-6)
        elif kind == "linear":
            weights = scores / keys.sum(-1, keepdim=True).clamp(min=1)
        else:
            raise ConfigError(f"kind: unknown attention {kind!r} (known: {', '.join(ATTENTIONS)})")
        out = weights @ split(v)
    return out.transpose(1, 2).reshape(b, n, inner)


class FourierMix(nn.Module):
    """FNet (Lee-Thorp et al., 2022): the real part of a 2-D FFT over positions and features; no parameters.

    The FFT is orthonormal (`norm="ortho"`) so that, in a pre-LN residual stream, the mixed signal keeps
    the scale of its input instead of growing with sqrt(length x width). It always runs over `max_len`
    positions (the masked input zero-padded to `max_len`, the output cut back to the input's length), so a
    sentence's outputs do not depend on how much padding its batch carries, and equal those of a model
    exported at `max_len`.
    """

    def __init__(self, max_len: int) -> None:
        super().__init__()
        self.max_len = max_len

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        mixed = torch.fft.fft2(x * mask[..., None], s=(self.max_len, x.shape[2]), dim=(-2, -1), norm="ortho")
        return mixed.real[:, :n]


class LinearMix(nn.Module):
    """A learned linear transform over positions (FNet's "linear" baseline, MLP-Mixer's token mixing)."""

    def __init__(self, max_len: int) -> None:
        super().__init__()
        self.mix = nn.Linear(max_len, max_len)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        y = F.linear((x * mask[..., None]).transpose(1, 2), self.mix.weight[:n, :n], self.mix.bias[:n])
        return y.transpose(1, 2)


class SeparableConvMix(nn.Module):
    """A depthwise convolution over positions followed by a pointwise linear map (ConvBERT-style span mixing)."""

    def __init__(self, hidden: int, kernel: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden)
        self.pointwise = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise((x * mask[..., None]).transpose(1, 2)).transpose(1, 2))


def feed_forward(hidden: int, dims: Sequence[int], dropout: float) -> nn.Sequential:
    """hidden -> dims[0] -> ... -> dims[-1] -> hidden with GELU between (the FFN stack of a layer)."""
    layers: list[nn.Module] = []
    widths = [hidden, *dims]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.GELU()]
    return nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(widths[-1], hidden))


class EncoderLayer(nn.Module):
    """(projection) -> x + mixer(LN(x)) -> x + FFN(LN(x)); pre-LN, so heterogeneous stacks train stably."""

    def __init__(self, in_hidden: int, hidden: int, mixer: nn.Module, ffn_dims: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.proj = nn.Linear(in_hidden, hidden) if in_hidden != hidden else None
        self.norm1, self.mixer = nn.LayerNorm(hidden), mixer
        self.norm2, self.ffn = nn.LayerNorm(hidden), feed_forward(hidden, ffn_dims, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            x = self.proj(x)
        x = x + self.drop(self.mixer(self.norm1(x), mask))
        return x + self.drop(self.ffn(self.norm2(x)))


class TransformerClassifier(nn.Module):
    """Token + position embeddings -> encoder layers -> LN -> masked pool over tokens -> linear classifier.

    `pooling` is one of `POOLINGS`: "mean" (the default) or "mean_max" (the masked mean and the masked max
    concatenated, so the head sees 2 x out_dim features; max pooling is what Kim's CNN uses on short text).
    """

    def __init__(self, vocab_size: int, max_len: int, num_classes: int, layers: Sequence[EncoderLayer],
                 embed_dim: int, out_dim: int, dropout: float, pooling: str = "mean") -> None:
        super().__init__()
        self.pooling = _check_pooling(pooling)
        self.tokens = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.positions = nn.Embedding(max_len, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(layers)
        pooled = 2 * out_dim if pooling == "mean_max" else out_dim
        self.norm, self.head = nn.LayerNorm(out_dim), nn.Linear(pooled, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _check_length(tokens, self.positions)
        mask = tokens != PAD
        x = self.drop(self.tokens(tokens) + self.positions(torch.arange(tokens.shape[1], device=tokens.device)))
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x)
        if self.pooling == "mean_max":
            return self.head(torch.cat([_pool(x, mask), _max_pool(x, mask)], dim=-1))
        return self.head(_pool(x, mask))


def _check_length(tokens: torch.Tensor, positions: nn.Embedding) -> None:
    """Refuse input that is not [batch, length] token ids, or sentences longer than the position embedding (a
    ConfigError naming `tokens` / `max_len`, not an IndexError)."""
    if tokens.dim() != 2:
        raise ConfigError(f"tokens: expected token ids [batch, length], got shape {tuple(tokens.shape)} (a single "
                          "sentence is tokens[None])")
    if tokens.shape[1] > positions.num_embeddings:
        raise ConfigError(f"max_len: the model has {positions.num_embeddings} positions, but the input holds "
                          f"sentences of {tokens.shape[1]} tokens (build the space with max_len={tokens.shape[1]} "
                          "or more, or cut the sentences)")


def _check_pooling(pooling: str) -> str:
    """`pooling` if it is one of `POOLINGS`; a ConfigError naming the field otherwise."""
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling: unknown pooling {pooling!r} (known: {', '.join(POOLINGS)})")
    return pooling


def _pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def _max_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked max over real tokens (an all-padding row gives zeros instead of -inf)."""
    out = x.masked_fill(~mask[..., None], float("-inf")).amax(1)
    return torch.where(mask.any(1, keepdim=True), out, torch.zeros_like(out))


def check_text_data(model: nn.Module, splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Check, before training, that every `{name: (token ids [n, length], labels [n])}` split fits `model`.

    Each split holds at least one sentence of integer token ids >= 0 and one integer label >= 0 per sentence.
    For a model with a token embedding `tokens`, position embedding `positions` and classifier `head` (as
    `TransformerClassifier`; a model without one skips that check): every id is below the embedding's size
    (`vocab_size`), no sentence is longer than the positions (`max_len`), and every label is below the head's
    outputs (`num_classes`). Each error is a ConfigError naming the field (`data.<name>_x` / `_y` for the data).
    One pass over the data: call it once per training, not per batch.
    """
    tokens, positions, head = (getattr(model, name, None) for name in ("tokens", "positions", "head"))
    for name, (x, y) in splits.items():
        if (not isinstance(x, torch.Tensor) or x.dim() != 2 or x.dtype.is_floating_point or x.dtype.is_complex
                or x.dtype == torch.bool):
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ConfigError(f"data.{name}_x: expected integer token ids [sentences, length], got {got}")
        if len(x) == 0:
            raise ConfigError(f"data.{name}_x: the split holds no sentence")
        if (not isinstance(y, torch.Tensor) or y.shape != (len(x),) or y.dtype.is_floating_point
                or y.dtype.is_complex or y.dtype == torch.bool):
            got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise ConfigError(f"data.{name}_y: expected one integer label per sentence ({len(x)}), got {got}")
        low, high = int(x.min()), int(x.max())
        if low < 0:
            raise ConfigError(f"data.{name}_x: token id {low} (ids are >= 0; {PAD} is padding)")
        if isinstance(tokens, nn.Embedding) and high >= tokens.num_embeddings:
            raise ConfigError(f"vocab_size: the model embeds {tokens.num_embeddings} token ids, but data.{name}_x "
                              f"holds id {high} (build the space with vocab_size={high + 1} or more: the size of the "
                              "data's vocabulary)")
        if isinstance(positions, nn.Embedding) and x.shape[1] > positions.num_embeddings:
            raise ConfigError(f"max_len: the model has {positions.num_embeddings} positions, but data.{name}_x holds "
                              f"sentences of {x.shape[1]} tokens (build the space with max_len={x.shape[1]} or "
                              "more, or cut the sentences)")
        low, high = int(y.min()), int(y.max())
        if low < 0:
            raise ConfigError(f"data.{name}_y: label {low} (class indices are >= 0)")
        if isinstance(head, nn.Linear) and high >= head.out_features:
            raise ConfigError(f"num_classes: the model predicts {head.out_features} classes, but data.{name}_y holds "
                              f"label {high} (build the space with num_classes={high + 1} or more)")


def _example_tokens(vocab_size: int, max_len: int, batch_size: int) -> torch.Tensor:
    """Token ids with random lengths 1..max_len, padded with PAD (so masking is exercised)."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, vocab_size, (batch_size, max_len), generator=g)
    lengths = torch.randint(1, max_len + 1, (batch_size, 1), generator=g)
    return tokens.masked_fill(torch.arange(max_len)[None, :] >= lengths, PAD)


# ---------------------------------------------------------------------------------------- FlexiBERT space
@dataclass(frozen=True)
class FlexiBertConfig:
    """Task frame (vocabulary, classes, sequence length) and the options of every per-layer decision."""

    vocab_size: int = 5000
    num_classes: int = 2
    max_len: int = 48
    depths: tuple[int, ...] = (2, 3, 4)
    ops: tuple[str, ...] = MIXERS
    hidden: tuple[int, ...] = (64, 128)
    heads: tuple[int, ...] = (2, 4)
    kernels: tuple[int, ...] = (5, 9)
    ffn_depths: tuple[int, ...] = (1, 2)
    ffn_dims: tuple[int, ...] = (128, 256)
    dropout: float = 0.1
    attentions: tuple[str, ...] = ("softmax",)
    pooling: str = "mean"

    def __post_init__(self) -> None:
        _check_config(self)
        _check_pooling(self.pooling)
        unknown = [o for o in self.ops if o not in MIXERS]
        if unknown:
            raise ConfigError(f"ops: unknown token mixer {unknown[0]!r} (known: {', '.join(MIXERS)})")
        unknown = [o for o in self.attentions if o not in ATTENTIONS]
        if unknown:
            raise ConfigError(f"attentions: unknown attention {unknown[0]!r} (known: {', '.join(ATTENTIONS)})")
        # heads and kernels only constrain the spaces that use them (as GNNSpace checks heads only with gat)
        bad = [(h, d) for h in self.heads for d in self.hidden if d % h] if "attention" in self.ops else []
        if bad:
            raise ConfigError(f"heads: {bad[0][0]} heads do not divide hidden size {bad[0][1]}")
        if "conv" in self.ops and any(k % 2 == 0 for k in self.kernels):
            raise ConfigError(f"kernels: expected odd sizes ('same' padding), got {self.kernels}")


class FlexiBertSpace(ModelSpace):
    """Heterogeneous encoders: `depth`, then per layer `op`, `hidden`, `heads` (attention), `kernel` (conv), FFN stack.

    An architecture: {"depth": 2, "layers": [{"op": "attention", "hidden": 64, "heads": 2, "ffn_depth": 1,
    "ffn": [{"dim": 128}]}, {"op": "conv", "hidden": 128, "kernel": 5, "ffn_depth": 2, "ffn": [...]}]}.
    Unless `attentions` is the default `("softmax",)`, attention layers also carry `attn` (one of them).
    """

    def __init__(self, config: FlexiBertConfig | None = None) -> None:
        self.config = cfg = config or FlexiBertConfig()
        layer: dict[str, Any] = {"op": Choice(list(cfg.ops), ordered=False), "hidden": Choice(list(cfg.hidden))}
        if "attention" in cfg.ops:
            layer["heads"] = Conditional("op", ["attention"], Choice(list(cfg.heads)))
            if cfg.attentions != ("softmax",):
                layer["attn"] = Conditional("op", ["attention"], Choice(list(cfg.attentions), ordered=False))
        if "conv" in cfg.ops:
            layer["kernel"] = Conditional("op", ["conv"], Choice(list(cfg.kernels)))
        layer["ffn_depth"] = Choice(list(cfg.ffn_depths))
        layer["ffn"] = Repeat(count="ffn_depth", dim=Choice(list(cfg.ffn_dims)))
        super().__init__(depth=Choice(list(cfg.depths)), layers=Repeat(count="depth", **layer))

    def _mixer(self, layer: Mapping[str, Any]) -> nn.Module:
        op, hidden = layer["op"], layer["hidden"]
        if op == "attention":
            return SelfAttention(hidden, layer["heads"], hidden // layer["heads"], layer.get("attn", "softmax"))
        if op == "conv":
            return SeparableConvMix(hidden, layer["kernel"])
        return LinearMix(self.config.max_len) if op == "linear" else FourierMix(self.config.max_len)

    def build(self, arch: Mapping[str, Any]) -> TransformerClassifier:
        a, cfg = self.validate(arch), self.config
        layers, width = [], a["layers"][0]["hidden"]
        for layer in a["layers"]:
            layers.append(EncoderLayer(width, layer["hidden"], self._mixer(layer), [f["dim"] for f in layer["ffn"]],
                                       cfg.dropout))
            width = layer["hidden"]
        return TransformerClassifier(cfg.vocab_size, cfg.max_len, cfg.num_classes, layers,
                                     a["layers"][0]["hidden"], width, cfg.dropout, cfg.pooling)

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> torch.Tensor:
        return _example_tokens(self.config.vocab_size, self.config.max_len, batch_size)

    # -- graph form
    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        """The computation graph: input -> per layer [projection] -> heads / mixer -> add&norm -> FFNs -> add&norm.

        `label` (what WL hashing compares) is the op with its width, e.g. "attention:64" per head (so the
        head count is the number of such nodes), "conv:128:k5", "fourier:64", "ffn:256", "add_norm:64";
        the other attributes (`layer`, `role`, ...) are what `from_graph` reads back. A non-softmax attention
        kind shows in the label ("attention/relu:64").
        """
        a = self.validate(arch)
        g = nx.DiGraph()
        g.add_node("input", label="input", role="input")
        prev, width = "input", a["layers"][0]["hidden"]
        for i, layer in enumerate(a["layers"]):
            op, h = layer["op"], layer["hidden"]
            if h != width:
                g.add_node(f"L{i}.proj", label=f"proj:{width}>{h}", role="proj", layer=i)
                g.add_edge(prev, f"L{i}.proj")
                prev = f"L{i}.proj"
            add = f"L{i}.add_mix"
            g.add_node(add, label=f"add_norm:{h}", role="add_mix", layer=i)
            if op == "attention":
                kind = f"/{layer['attn']}" if layer.get("attn", "softmax") != "softmax" else ""
                extra = {"attn": layer["attn"]} if "attn" in layer else {}
                mixers = [(f"L{i}.head{k}", {"label": f"attention{kind}:{h}", "role": "head", "index": k, **extra})
                          for k in range(layer["heads"])]
            else:
                suffix = f":k{layer['kernel']}" if op == "conv" else ""
                mixers = [(f"L{i}.mix", {"label": f"{op}:{h}{suffix}", "role": "mix", "kernel": layer.get("kernel")})]
            for name, attrs in mixers:
                g.add_node(name, op=op, hidden=h, layer=i, **attrs)
                g.add_edge(prev, name)
                g.add_edge(name, add)
            g.add_edge(prev, add)  # residual
            last = add
            for j, f in enumerate(layer["ffn"]):
                g.add_node(f"L{i}.ffn{j}", label=f"ffn:{f['dim']}", role="ffn", layer=i, index=j, dim=f["dim"])
                g.add_edge(last, f"L{i}.ffn{j}")
                last = f"L{i}.ffn{j}"
            out = f"L{i}.add_ffn"
            g.add_node(out, label=f"add_norm:{h}", role="add_ffn", layer=i)
            g.add_edge(last, out)
            g.add_edge(add, out)  # residual
            prev, width = out, h
        g.add_node("output", label="output", role="output")
        g.add_edge(prev, "output")
        return g

    def from_graph(self, graph: nx.DiGraph) -> Architecture:
        """Inverse of `to_graph` (reads the `layer`/`role` attributes of head, mixer and FFN nodes)."""
        by_layer: dict[int, list[dict[str, Any]]] = {}
        for _, data in graph.nodes(data=True):
            if "layer" in data:
                by_layer.setdefault(int(data["layer"]), []).append(data)
        if sorted(by_layer) != list(range(len(by_layer))):
            raise InvalidArchitectureError("layers", f"graph layers are {sorted(by_layer)}, "
                                                     f"expected 0..{len(by_layer) - 1}")
        layers = []
        for i in range(len(by_layer)):
            nodes = by_layer[i]
            heads = [d for d in nodes if d["role"] == "head"]
            mixers = heads or [d for d in nodes if d["role"] == "mix"]
            if not mixers:
                raise InvalidArchitectureError(f"layers[{i}]", "has no attention head or mixer node")
            layer: dict[str, Any] = {"op": mixers[0]["op"], "hidden": mixers[0]["hidden"]}
            if heads:
                layer["heads"] = len(heads)
                if heads[0].get("attn") is not None:
                    layer["attn"] = heads[0]["attn"]
            if mixers[0].get("kernel") is not None:
                layer["kernel"] = mixers[0]["kernel"]
            ffn = sorted((d for d in nodes if d["role"] == "ffn"), key=lambda d: d["index"])
            layer["ffn_depth"], layer["ffn"] = len(ffn), [{"dim": d["dim"]} for d in ffn]
            layers.append(layer)
        return self.validate({"depth": len(layers), "layers": layers})


# ---------------------------------------------------------------------------------------- elastic transformer
@dataclass(frozen=True)
class ElasticTransformerConfig:
    """Fixed hidden size and head width; the options of the elastic depth, heads and FFN width."""

    vocab_size: int = 5000
    num_classes: int = 2
    max_len: int = 48
    hidden: int = 64
    head_dim: int = 16
    depths: tuple[int, ...] = (1, 2, 3)
    heads: tuple[int, ...] = (1, 2, 4)
    ffn_dims: tuple[int, ...] = (64, 128, 256)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        _check_config(self)


class ElasticLayer(nn.Module):
    """An encoder layer of the elastic supernet: attention with the first h heads, FFN with the first f units."""

    def __init__(self, cfg: ElasticTransformerConfig) -> None:
        super().__init__()
        inner, self.head_dim = max(cfg.heads) * cfg.head_dim, cfg.head_dim
        self.norm1, self.norm2 = nn.LayerNorm(cfg.hidden), nn.LayerNorm(cfg.hidden)
        self.q, self.k, self.v = (DynamicLinear(cfg.hidden, inner) for _ in range(3))
        self.o = DynamicLinear(inner, cfg.hidden)
        self.up, self.down = DynamicLinear(cfg.hidden, max(cfg.ffn_dims)), DynamicLinear(max(cfg.ffn_dims), cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, heads: int, ffn: int) -> torch.Tensor:
        h, inner = self.norm1(x), heads * self.head_dim
        x = x + self.drop(self.o(attend(self.q(h, inner), self.k(h, inner), self.v(h, inner), mask, heads)))
        return x + self.drop(self.down(self.drop(F.gelu(self.up(self.norm2(x), ffn)))))

    def export(self, heads: int, ffn: int) -> EncoderLayer:
        """The standalone `EncoderLayer` of this configuration, holding copies of the sliced weights."""
        hidden, inner = self.norm1.normalized_shape[0], heads * self.head_dim
        attention = SelfAttention(hidden, heads, self.head_dim)
        attention.q, attention.k, attention.v = (m.export(hidden, inner) for m in (self.q, self.k, self.v))
        attention.o = self.o.export(inner, hidden)
        layer = EncoderLayer(hidden, hidden, attention, [ffn], self.drop.p)
        layer.ffn[0], layer.ffn[3] = self.up.export(hidden, ffn), self.down.export(ffn, hidden)
        layer.norm1.load_state_dict(self.norm1.state_dict())
        layer.norm2.load_state_dict(self.norm2.state_dict())
        return layer


class ElasticTransformer(nn.Module):
    """The weight-sharing supernet: `model(tokens, arch)` runs the first `depth` layers at the arch's heads/FFN."""

    def __init__(self, space: "ElasticTransformerSpace") -> None:
        super().__init__()
        self.space, cfg = space, space.config
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.hidden, padding_idx=PAD)
        self.positions = nn.Embedding(cfg.max_len, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(ElasticLayer(cfg) for _ in range(max(cfg.depths)))
        self.norm, self.head = nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, cfg.num_classes)

    def forward(self, tokens: torch.Tensor, arch: Mapping[str, Any] | None = None) -> torch.Tensor:
        a = self.space.validate(arch) if arch is not None else self.space.largest()
        _check_length(tokens, self.positions)
        mask = tokens != PAD
        x = self.drop(self.tokens(tokens) + self.positions(torch.arange(tokens.shape[1], device=tokens.device)))
        for layer, choice in zip(self.layers, a["layers"]):
            x = layer(x, mask, choice["heads"], choice["ffn"])
        return self.head(_pool(self.norm(x), mask))

    def subnet(self, arch: Mapping[str, Any]) -> TransformerClassifier:
        """A standalone `TransformerClassifier` for `arch` whose outputs equal `self(tokens, arch)`."""
        a = self.space.validate(arch)
        net = self.space.build(a)
        net.layers = nn.ModuleList(layer.export(c["heads"], c["ffn"]) for layer, c in zip(self.layers, a["layers"]))
        for name in ("tokens", "positions", "norm", "head"):
            getattr(net, name).load_state_dict(getattr(self, name).state_dict())
        return net.train(self.training)


class ElasticTransformerSpace(ModelSpace):
    """Elastic depth and, per layer, heads and FFN width over one supernet (`supernet()`)."""

    def __init__(self, config: ElasticTransformerConfig | None = None) -> None:
        self.config = cfg = config or ElasticTransformerConfig()
        super().__init__(depth=Choice(list(cfg.depths)),
                         layers=Repeat(count="depth", heads=Choice(list(cfg.heads)), ffn=Choice(list(cfg.ffn_dims))))

    def build(self, arch: Mapping[str, Any]) -> TransformerClassifier:
        a, cfg = self.validate(arch), self.config
        layers = [EncoderLayer(cfg.hidden, cfg.hidden, SelfAttention(cfg.hidden, c["heads"], cfg.head_dim), [c["ffn"]],
                               cfg.dropout) for c in a["layers"]]
        return TransformerClassifier(cfg.vocab_size, cfg.max_len, cfg.num_classes, layers, cfg.hidden, cfg.hidden,
                                     cfg.dropout)

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> torch.Tensor:
        return _example_tokens(self.config.vocab_size, self.config.max_len, batch_size)

    def supernet(self) -> ElasticTransformer:
        return ElasticTransformer(self)

    def sample_subnet(self, rng: np.random.Generator, elastic: Any = None) -> Architecture:
        """A random subnet for the one-shot trainers. `elastic` None: `sample(rng)` (uniform over architectures,
        as the sandwich rule always drew here); a collection of `ELASTIC` names: each of those dimensions uniform
        on its own (per layer for heads and FFN), the others at their largest, as `OFASpace.sample_subnet`."""
        if elastic is None:
            return self.sample(rng)
        if isinstance(elastic, str) or not isinstance(elastic, Iterable):
            raise ConfigError(f"elastic: expected a collection of dimension names, got {elastic!r}")
        unknown = set(elastic) - ELASTIC
        if unknown:
            raise ConfigError(f"elastic: unknown dimensions {sorted(map(str, unknown))} (known: {sorted(ELASTIC)})")
        cfg = self.config

        def pick(name: str, options: tuple[int, ...]) -> int:
            return options[int(rng.integers(len(options)))] if name in elastic else max(options)

        depth = pick("depth", cfg.depths)
        return self.validate({"depth": depth, "layers": [{"heads": pick("heads", cfg.heads),
                                                          "ffn": pick("ffn", cfg.ffn_dims)} for _ in range(depth)]})

    def largest(self) -> Architecture:
        cfg = self.config
        return self.validate({"depth": max(cfg.depths), "layers": [{"heads": max(cfg.heads), "ffn": max(cfg.ffn_dims)}]
                              * max(cfg.depths)})

    def smallest(self) -> Architecture:
        cfg = self.config
        return self.validate({"depth": min(cfg.depths), "layers": [{"heads": min(cfg.heads), "ffn": min(cfg.ffn_dims)}]
                              * min(cfg.depths)})
