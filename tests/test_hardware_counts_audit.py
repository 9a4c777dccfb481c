"""Counts of attention, RNN and message-passing networks, seq-first and parameter-holding `nas.nn` models, and
thread-checked lookup tables (audit session 22, defects 1, 2, 3 and 5). Every test here fails on the code
before the fix; `test_conv_linear_bn_pool_counts_are_unchanged` pins the counts recorded figures rest on."""

from __future__ import annotations

import hashlib
import json
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nas.counts
from nas import nn as nnn
from nas.counts import UncountedFlopsWarning, count, count_flops, count_leaves
from nas.errors import ConfigError
from nas.gym.environments import CNN1dSpace
from nas.hardware import CostModel, adapter_for, build_table, check_decomposition
from nas.spaces.cell import DartsSpace, NasBench201Space
from nas.spaces.gnn import GNNSpace
from nas.spaces.ofa import OFAConfig, OFASpace
from nas.spaces.transformer import ElasticTransformerConfig, ElasticTransformerSpace
from tests.test_nn_lut import Net  # its convolutional nas.nn space: a recorded-figure case below

pytestmark = pytest.mark.usefixtures("one_thread")


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _attention_flops(length: int, width: int) -> int:
    """Self-attention of one sequence: q, k, v and output projections, QK^T and AV (a multiply-add is 2)."""
    return 4 * 2 * length * width * width + 2 * 2 * length * length * width


# ------------------------------------------------------------------------------- defect 1: attention in nas.nn
class SelfAttention(nn.Module):
    def __init__(self, width: nnn.Choice, heads: nnn.Choice) -> None:
        super().__init__()
        self.att = nnn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        t = h.transpose(1, 2)
        return self.att(t, t, t)[0].transpose(1, 2)


class Cell(nnn.ModelSpace):
    """docs/model_space.md's Cell: a conv, attention or skip op between a conv stem and a linear head."""

    input_shape = (6, 16)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("w", [8, 16])
        self.inp = nnn.Conv1d(6, w, 1)
        self.op = nnn.LayerChoice({"conv": nnn.Conv1d(w, w, nnn.Choice("k", [3, 5, 7]), padding="same"),
                                   "attn": SelfAttention(w, nnn.Choice("heads", [1, 2])),
                                   "skip": nn.Identity()}, label="op")
        self.pick = nnn.InputChoice(3, 2, reduction="sum")
        self.norm = nnn.LayerNorm(w)
        self.head = nnn.Linear(w, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        o = self.op(h)
        return self.head(self.norm(self.pick([h, o, h * o]).transpose(1, 2)).mean(1))


def test_attention_counts_agree_across_space_count_cost_model_and_the_decomposition():
    space = Cell.space()
    skip = space.validate({"w": 16, "op": "skip", "pick": [0, 1]})
    attn = space.validate({"w": 16, "op": "attn", "heads": 2, "pick": [0, 1]})
    expected_flops = space.count(skip)["flops"] + _attention_flops(16, 16)      # 3,168 + 49,152
    net = space.build(attn)
    cost = CostModel(space, device="cpu")(attn)
    assert space.count(attn) == {"params": _params(net), "flops": expected_flops, "macs": expected_flops / 2}
    assert (cost["params"], cost["flops"]) == (_params(net), expected_flops) == (1283, 52320)
    assert check_decomposition(adapter_for(space), attn).exact
    assert check_decomposition(adapter_for(space), attn, batch_size=3).exact


class Scaled(nnn.ModelSpace):
    """Multiplies by its own [16, 1] parameter: held by no layer, and carrying no batch."""

    input_shape = (8, 32)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nnn.Conv1d(8, 16, nnn.Choice("k", [3, 5]), padding="same")
        self.scale = nn.Parameter(torch.ones(16, 1))
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((self.conv(x) * self.scale).mean(-1))


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_models_own_parameter_counts_and_keeps_its_shape_at_any_batch_size(batch_size):
    space = Scaled.space()
    arch = space.validate({"k": 3})
    net, x = space.build(arch), space.example_input(arch, batch_size)
    metrics = CostModel(space, batch_size=batch_size)(arch)      # batch 4 raised a RuntimeError ([batch, 1] scale)
    assert (metrics["params"], metrics["flops"]) == (_params(net), count(net, x)["flops"]) == (450, 24640 * batch_size)
    assert check_decomposition(adapter_for(space), arch, batch_size=batch_size).exact
    (mul,) = [layer for layer in adapter_for(space).layers(arch) if layer.kind == "fn:_operator.mul"]
    assert json.loads(dict(mul.options)["call"]) == [{"shape": [1, 16, 32]}, {"shape": [16, 1], "batch": None}]


def test_parameters_of_non_layer_modules_form_one_entry_and_each_parameter_counts_once():
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)
            self.b.weight = self.a.weight
            self.gain = nn.Parameter(torch.ones(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x)) * self.gain

    net = Tied()
    leaves = count_leaves(net, torch.zeros(2, 4))
    assert [(x.type, x.params) for x in leaves] == [("Linear", 16), ("Linear", 0), ("parameters", 4)]
    assert sum(x.params for x in leaves) == _params(net) == 20
    assert leaves[-1].weight_bytes == 16


def test_multihead_attention_counts_the_same_on_its_fused_and_decomposed_paths():
    mha = nn.MultiheadAttention(16, 2, batch_first=True).eval()
    t = torch.randn(3, 10, 16)
    expected = 3 * _attention_flops(10, 16)
    assert count_flops(mha, (t, t, t))["flops"] == expected   # was 0: the fused kernel had no formula
    (leaf,) = count_leaves(mha, (t, t, t))
    assert (leaf.type, leaf.flops, leaf.params) == ("MultiheadAttention", expected, _params(mha))
    counter = nas.counts._Counter()                          # the fused kernel's own formula, fast path on
    with torch.no_grad(), counter:
        mha(t, t, t)
    assert torch.ops.aten._native_multi_head_attention in counter.get_flop_counts()["Global"]
    assert counter.get_total_flops() == expected


def test_a_transformer_encoder_layer_counts_its_attention_and_feed_forward():
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True).eval()
    x = torch.randn(2, 12, 16)
    assert count_flops(layer, x)["flops"] == 2 * (_attention_flops(12, 16) + 2 * 2 * 12 * 16 * 32)


# ------------------------------------------------------------------------------- defect 3: ops with no formula
def test_cpu_scaled_dot_product_attention_counts_qk_and_av():
    class Sdpa(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    b, h, lq, lk, d = 2, 4, 10, 12, 8
    q, k, v = torch.randn(b, h, lq, d), torch.randn(b, h, lk, d), torch.randn(b, h, lk, d)
    assert count_flops(Sdpa(), (q, k, v))["flops"] == 2 * 2 * b * h * lq * lk * d


@pytest.mark.parametrize("max_len", [48, 512])
def test_the_elastic_transformer_counts_its_attention(max_len):
    space = ElasticTransformerSpace(ElasticTransformerConfig(max_len=max_len))
    arch = space.largest()
    hidden, head_dim, length = 64, 16, max_len
    hand = 2 * hidden * 2 + sum(3 * 2 * length * hidden * layer["heads"] * head_dim
                                + 2 * length * layer["heads"] * head_dim * hidden
                                + 4 * layer["heads"] * length * length * head_dim
                                + 2 * 2 * length * hidden * layer["ffn"] for layer in arch["layers"])
    assert CostModel(space, device="cpu")(arch)["flops"] == space.count(arch)["flops"] == hand
    leaves = count_leaves(space.build(arch), space.example_input(arch, 1))
    assert [x.type for x in leaves].count("functional") == 1      # QK^T and AV: the functional entry


def test_gnn_message_passing_counts_its_aggregations():
    space = GNNSpace(16, 4, ops=["gcn", "mlp", "appnp", "gat"], layers=[1], hidden=[32], heads=[1])

    def arch(op: str):
        extra = {"attention": "gat", "heads": 1} if op == "gat" else {}
        return space.validate({"layers": 1, "hidden_layers": [{"op": op, "hidden": 32, "activation": "relu",
                                                               "residual": False, **extra}], "output": {"op": "mlp"}})

    x, edges = space.example_input(arch("mlp"), 1)
    pairs = edges.shape[1] + x.shape[0]                     # edges and the self-loops GCN and APPNP add
    mlp = space.count(arch("mlp"))["flops"]
    # degree (one add per pair), then one add per pair and feature per aggregation (the edge weights are
    # elementwise products: 0, as everywhere)
    assert space.count(arch("gcn"))["flops"] == mlp + pairs + pairs * 32
    assert space.count(arch("appnp"))["flops"] == mlp + pairs + 10 * pairs * 32
    assert space.count(arch("gat"))["flops"] > mlp                   # softmax sums and the weighted aggregation


def test_lstm_counts_its_gate_products():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(32, 64, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    assert count_flops(Net(), torch.randn(3, 10, 32))["flops"] == 3 * 2 * 10 * 4 * 64 * (32 + 64)


def test_matrix_vector_products_count():
    class Mv(nn.Module):
        def forward(self, a, v):
            return a @ v, torch.dot(v, v)

    assert count_flops(Mv(), (torch.randn(5, 7), torch.randn(7)))["flops"] == 2 * 5 * 7 + 2 * 7


def test_an_op_with_no_formula_warns_once_naming_it(monkeypatch):
    class Distances(nn.Module):
        def forward(self, x):
            return torch.cdist(x, x)

    monkeypatch.setattr(nas.counts, "_warned", set())
    with pytest.warns(UncountedFlopsWarning, match=r"aten\._cdist_forward does arithmetic but has no FLOP formula"):
        count_flops(Distances(), torch.randn(2, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncountedFlopsWarning)
        count_flops(Distances(), torch.randn(2, 16))           # once per op


@pytest.mark.parametrize("transform, expected", [
    (lambda x: torch.fft.fft2(x, norm="ortho").real, 5 * 2 * 48 * 32 * math.log2(48 * 32)),   # complex, 2-D
    (lambda x: torch.fft.fft(x, dim=-1).real, 2.5 * 2 * 48 * 32 * math.log2(32)),           # real input
    (lambda x: torch.fft.irfft(torch.fft.rfft(x, dim=1), n=48, dim=1), 2 * 2.5 * 2 * 48 * 32 * math.log2(48)),
])
def test_ffts_count_n_log2_n(transform, expected):
    """FNet's mixing: 5 N log2 n per complex transform of n points (N in all), half that with real input or output."""
    class Fourier(nn.Module):
        def forward(self, x):
            return transform(x)

    with warnings.catch_warnings():
        warnings.simplefilter("error", UncountedFlopsWarning)
        assert count_flops(Fourier(), torch.randn(2, 48, 32))["flops"] == pytest.approx(expected, abs=2)


@pytest.mark.parametrize("make", [lambda: OFASpace(), lambda: NasBench201Space(channels=4, cells_per_stage=1),
                                  lambda: DartsSpace(), lambda: CNN1dSpace(), lambda: Cell.space(),
                                  lambda: ElasticTransformerSpace(), lambda: GNNSpace(16, 4)])
def test_ops_uncounted_by_convention_do_not_warn(make, monkeypatch):
    """Elementwise maths, normalisation, softmax, pooling and data movement count 0 by design: no warning."""
    monkeypatch.setattr(nas.counts, "_warned", set())
    space = make()
    import numpy as np

    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncountedFlopsWarning)
        for _ in range(4):
            arch = space.sample(rng)
            space.count(arch, 2)


# ------------------------------------------------------------------------------- defect 2: batch dimensions
class SeqFirst(nnn.ModelSpace):
    """A conv stem, then torch's default [L, B, C] layout: attention with batch_first=False and an MLP."""

    input_shape = (6, 64)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("w", [32, 64])
        self.inp = nnn.Conv1d(6, w, 1)
        self.att = nnn.MultiheadAttention(w, nnn.Choice("heads", [1, 2]))
        self.mlp = nnn.Linear(w, w)
        self.head = nnn.Linear(w, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.inp(x).permute(2, 0, 1)
        t = t + self.att(t, t, t)[0]
        t = t + torch.relu(self.mlp(t))
        return self.head(t.mean(0))


def test_seq_first_layers_are_counted_and_timed_at_the_shapes_the_network_runs():
    space = SeqFirst.space()
    adapter = adapter_for(space)
    arch = space.validate({"w": 64, "heads": 2})
    hand = 2 * 64 * 6 * 64 + _attention_flops(64, 64) + 2 * 64 * 64 * 64 + 2 * 64 * 3
    assert CostModel(space)(arch)["flops"] == space.count(arch)["flops"] == hand == 3719552   # was 90,752
    for batch in (1, 3):
        assert check_decomposition(adapter, arch, batch_size=batch).exact
    (att,) = [layer for layer in adapter.layers(arch) if layer.kind == "MultiheadAttention"]
    assert att.input_shape == (64, 64)                                  # [L, C] of one sequence; was (1, 64)
    assert json.loads(dict(att.options)["call"])[0] == {"shape": [64, 1, 64], "batch": 1}
    q, k, v = adapter.layer_input(att, batch_size=3)
    assert q.shape == (64, 3, 64) and k is q and v is q                 # the fused self-attention path, as run


class Folded(nnn.ModelSpace):
    """Folds the batch into the rows of a Linear's input: [B * 5, 8]."""

    input_shape = (5, 8)

    def __init__(self) -> None:
        super().__init__()
        self.lin = nnn.Linear(8, nnn.Choice("w", [4, 6]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.reshape(-1, 8))


def test_a_batch_folded_into_a_dimension_scales_that_dimension():
    space = Folded.space()
    arch = space.validate({"w": 6})
    (_, lin) = adapter_for(space).layers(arch)
    assert json.loads(dict(lin.options)["call"]) == [{"shape": [5, 8]}]     # dim 0: 5 rows per sample
    assert check_decomposition(adapter_for(space), arch, batch_size=3).exact
    assert CostModel(space, batch_size=3)(arch)["flops"] == 2 * 3 * 5 * 8 * 6


class Gram(nnn.ModelSpace):
    """A [B, B] Gram matrix: both of its dimensions carry the batch."""

    input_shape = (8,)

    def __init__(self) -> None:
        super().__init__()
        self.lin = nnn.Linear(8, nnn.Choice("w", [4, 6]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return torch.softmax(h @ h.t(), -1)


def test_a_layer_whose_batch_dimension_cannot_be_told_is_refused():
    space = Gram.space()
    with pytest.raises(ConfigError, match=r"softmax.*\[1, 1\] at batch size 1 and \[2, 2\] at batch size 2"):
        adapter_for(space).layers(space.validate({"w": 4}))


# ------------------------------------------------------------------------------- defect 5: thread counts
def test_a_table_timed_with_other_threads_is_refused(tmp_path):
    space = NasBench201Space(channels=4, cells_per_stage=1, stages=2)
    adapter = adapter_for(space)
    two = build_table(adapter, tmp_path / "t2.jsonl", threads=2, warmup=0, repeats=1, rounds=1)
    with pytest.raises(ConfigError, match="threads=2, this cost model's threads is 1"):
        CostModel(space, device="cpu", latency=two, threads=1)
    with pytest.raises(ConfigError, match="threads"):
        CostModel(space, device="cpu", latency=two, threads=1, qualify=True)
    cost = CostModel(space, device="cpu", latency=two, threads=2, qualify=True)
    assert cost.provenance["latency_ms.lut.local_cpu.t2"]["threads"] == 2  # qualified names carry threads != 1


# ------------------------------------------------------------------------------- recorded figures unchanged


def _darts(op_a: str, op_b: str, last: bool) -> tuple[DartsSpace, dict]:
    space = DartsSpace()
    cell = {k: {"inputs": f.fields["inputs"].options[-1 if last else 0], "op_a": op_a, "op_b": op_b}
            for k, f in space.fields["normal"].fields.items()}
    return space, {"normal": cell, "reduce": cell}


def _cases() -> dict:
    cnn = CNN1dSpace()
    block = cnn.fields["blocks"]
    nb201 = NasBench201Space()
    return {
        "ofa/largest": (OFASpace(OFAConfig()), "largest"), "ofa/smallest": (OFASpace(OFAConfig()), "smallest"),
        "nb201/conv3": (nb201, {e: "nor_conv_3x3" for e in nb201.fields}),
        "nb201/pool": (nb201, {e: "avg_pool_3x3" for e in nb201.fields}),
        "darts/sep5": _darts("sep_conv_5x5", "dil_conv_5x5", True),
        "darts/pool": _darts("max_pool_3x3", "skip_connect", False),
        "cnn1d/largest": (cnn, "largest"),
        "cnn1d/smallest": (cnn, {"blocks": [{n: min(f.options) for n, f in block.block.fields.items()}] * block.count}),
        "nn_net/wide": (Net.space(), {"width": 96, "depth": 4, "mix": "conv", "blocks": [{"kernel": 7}] * 4}),
        "nn_net/narrow": (Net.space(), {"width": 4, "depth": 1, "mix": "pool", "blocks": [{"kernel": 3}]}),
    }


# Computed with the code before this change (git HEAD 99b67a2's nas/counts.py and hardware/{cost,layers,nn_layers}.py):
# params, then per batch size 1 and 2: FLOPs, roofline ms and analytic energy mJ on jetson_orin_nano; then
# a hash of the lookup-table keys of the architecture's layers (None: no layer adapter). Session 36: an architecture's
# roofline and energy leave out the bytes of layers that are no module call (cell sums and concats, OFA's resample,
# nas.nn function calls), as the built network's count does; FLOPs, parameters and keys unchanged.
BEFORE = {
    "ofa/largest": (51818, 923200, 0.010716588235294122, 0.03996787, 1846400, 0.018158588235294103, 0.07102886,
                    "6ae6603a5c0aa76c"),
    "ofa/smallest": (4218, 72768, 0.0013892941176470587, 0.00463163, 145536, 0.0024985882352941175,
                     0.008501660000000001, "c868f76420d52a2f"),
    "nb201/conv3": (1531258, 27479296, 0.11056399999999997, 0.62275708, 54958592, 0.13314529411764695, 0.99931992,
                    "2eedc96365027ee1"),
    "nb201/pool": (73018, 937216, 0.011729882352941196, 0.04288828, 1874432, 0.01913188235294121, 0.07400472000000001,
                   "d744575fd4bd881d"),
    "darts/sep5": (394522, 8209408, 0.05947717647058807, 0.25798192000000003, 16418816, 0.09517094117647071,
                   0.45127296000000006, "411cb05f222eb0b8"),
    "darts/pool": (121626, 2714624, 0.021789647058823528, 0.09107984, 5429248, 0.03626552941176468, 0.16226624,
                   "bad741a0b8ebc7c6"),
    "cnn1d/largest": (75530, 2259200, 0.006328588235294117, 0.04368876000000001, 4518400, 0.008191294117647059,
                      0.07523032, None),
    "cnn1d/smallest": (570, 13600, 0.0002721176470588235, 0.000899535, 27200, 0.0005075294117647059,
                       0.0016992300000000001, None),
    "nn_net/wide": (306339, 39002688, 0.03671762352941176, 0.53277955, 78005376, 0.07328777647058823, 1.0164207,
                    "212a6c1353362620"),
    "nn_net/narrow": (103, 9240, 0.00015011764705882353, 0.0005166012500000001, 18480, 0.00029358823529411764,
                      0.0010151225, "50a6b05321251549"),
}


@pytest.mark.parametrize("name", list(BEFORE))
def test_conv_linear_bn_pool_counts_are_unchanged(name):
    """Recorded benchmark figures (OFA, NB201, DARTS, CNN1d, nas.nn conv spaces) rest on these: bit-identical."""
    space, arch = _cases()[name]
    arch = space.validate(getattr(space, arch)() if isinstance(arch, str) else arch)
    params, *per_batch, keys = BEFORE[name]
    for batch, (flops, roofline_ms, energy_mj) in zip((1, 2), (per_batch[:3], per_batch[3:])):
        assert space.count(arch, batch) == {"params": params, "flops": flops, "macs": flops / 2}
        metrics = CostModel(space, device="jetson_orin_nano", energy="analytic", batch_size=batch)(arch)
        assert metrics == {"params": params, "flops": flops, "macs": flops / 2,
                           "latency_roofline_ms": roofline_ms, "energy_est_mj": energy_mj}
    if keys is not None:
        layers = adapter_for(space).layers(arch)
        assert hashlib.sha256("\n".join(layer.key for layer in layers).encode()).hexdigest()[:16] == keys
