"""MPC latency model (nas.hardware.mpc) and the attention kinds of the transformer space: primitive costs
against hand counts, a model's rounds summed by hand, replacing softmax never costs more (property test),
attention kinds that respect padding and round-trip through vectors and graphs, and the docs example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn
from tests.docs import python_blocks

from nas.errors import ConfigError
from nas.hardware.mpc import (CRYPTEN, MPCLatency, NetworkProfile, Protocol, attention_weights, compare, exp, gelu,
                              layer_norm, matmul, mpc_ops, reciprocal, row_max)
from nas.spaces.transformer import ATTENTIONS, FlexiBertConfig, FlexiBertSpace, SelfAttention

pytestmark = pytest.mark.usefixtures("one_thread")
DOC = Path(__file__).resolve().parents[1] / "docs" / "mpc.md"
CFG = FlexiBertConfig(vocab_size=50, max_len=8, depths=(1, 2, 3), hidden=(8, 16), heads=(1, 2), kernels=(3,),
                      ffn_depths=(1,), ffn_dims=(8, 16), dropout=0.0, attentions=ATTENTIONS)
LONG = FlexiBertConfig(**{**CFG.__dict__, "max_len": 64, "depths": (1, 2)})


def attention_layer(kind: str, hidden: int = 16, heads: int = 2, ffn: int = 16) -> dict:
    return {"op": "attention", "hidden": hidden, "heads": heads, "attn": kind, "ffn_depth": 1, "ffn": [{"dim": ffn}]}


def test_primitive_costs_match_hand_counts():
    p = CRYPTEN  # 64-bit ring: 8-byte words
    m = matmul(p, 8, 4, 3)
    assert (m.rounds, m.bytes, m.ops) == (1, (8 * 4 + 4 * 3) * 8, 6 * 8 * 4 * 3)
    c = compare(p, 10)  # log2(64) = 6 adder levels + the first AND round + bit-to-arithmetic round
    assert c.rounds == 8 and c.bytes == 10 * (2 * 13 + 1) * 8
    e = exp(p, 10)  # 8 squarings, each opening one word per element
    assert (e.rounds, e.bytes) == (8, 8 * 10 * 8)
    r = reciprocal(p, 10)  # exp start + 10 Newton steps of (square, product)
    assert (r.rounds, r.bytes) == (8 + 20, (8 + 10 * 3) * 10 * 8)
    assert row_max(p, 1, 32).rounds == 5 * 9 and row_max(p, 1, 5).rounds == 3 * 9  # ceil(log2 L) levels
    assert row_max(p, 3, 5).bytes == compare(p, 3 * 4).bytes + 2 * 3 * 4 * 8  # L - 1 compare-and-selects a row
    assert gelu(p, 1).rounds == 1 + 8 + 1 and layer_norm(p, 1, 4).rounds == 1 + (8 + 9) + 1 + 1
    assert attention_weights(p, "linear", 100, 32).rounds == 0
    with pytest.raises(ConfigError, match="kind"):
        attention_weights(p, "sigmoid", 1, 4)


def test_model_rounds_are_the_sum_of_its_operations():
    """A 2-layer model, every operation in sequence: the totals by hand."""
    cfg = FlexiBertConfig(vocab_size=50, max_len=32, depths=(2,), hidden=(16,), heads=(2,), ffn_depths=(1,),
                          ffn_dims=(16,), attentions=ATTENTIONS)
    space = FlexiBertSpace(cfg)
    mpc = MPCLatency(space, "wan")
    ln, gelu_rounds = 1 + 17 + 2, 10
    frame = 1 + ln + 1  # token embedding (positions are public), final layer norm, classifier
    layer = ln + 3 + 1 + 1 + 1 + ln + 1 + gelu_rounds + 1  # LN, q k v, q k^T, weights x v, o, LN, FFN
    softmax = 5 * 9 + 8 + 28 + 1  # max over 32 keys, exp, 1/sum, normalise
    relu = 9 + 28 + 1
    for kinds, extra in [(("linear", "linear"), 0), (("softmax", "linear"), softmax), (("relu", "softmax"), relu + softmax)]:
        arch = {"depth": 2, "layers": [attention_layer(k) for k in kinds]}
        report = mpc.report(arch)
        assert report.total.rounds == frame + 2 * layer + extra
        kinds_seen = [op.kind for op in report.ops]
        assert kinds_seen.count("layer_norm") == 5 and kinds_seen.count("gelu") == 2
        assert kinds_seen.count("embedding") == 1 and [k for k in kinds_seen if k in ATTENTIONS] == list(kinds)
        t, prof = report.total, mpc.profile
        assert report.latency_s == pytest.approx(t.rounds * prof.round_latency_s + t.bytes / prof.bandwidth_bytes_s
                                                 + t.ops / prof.ops_per_s)
        assert sum(report.by_kind().values()) == pytest.approx(report.latency_s)
    arch = {"depth": 2, "layers": [attention_layer("softmax")] * 2}
    assert mpc.with_profile("lan")(arch)["mpc_latency_s"] < mpc(arch)["mpc_latency_s"]
    assert mpc(arch) == mpc(space.build(arch))  # an architecture or its built module


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), seq_len=st.integers(1, 64), kind=st.sampled_from(["relu", "linear"]),
       rtt=st.floats(1e-6, 1.0), bandwidth=st.floats(1e5, 1e11), rate=st.floats(1e6, 1e12),
       exp_iterations=st.integers(1, 12))
def test_replacing_a_softmax_never_increases_latency(seed, seq_len, kind, rtt, bandwidth, rate, exp_iterations):
    """Any architecture, any attention layer, any network: linear attention at any length; ReLU-normalised from
    2 tokens on (at 1 there is no row maximum: see the test below) with seq_len x exp_iterations >= 29 (a
    comparison-and-select opens 29 words, an exp `exp_iterations`; CrypTen's 8 iterations: 4 tokens)."""
    assume(kind == "linear" or (seq_len >= 2 and seq_len * exp_iterations >= 29))
    space = FlexiBertSpace(LONG)
    rng = np.random.default_rng(seed)
    arch = space.sample(rng).to_dict()
    arch["layers"][0] = {**attention_layer("softmax", hidden=arch["layers"][0]["hidden"]), "heads": 1}
    profile = NetworkProfile("drawn", rtt, bandwidth, rate)
    mpc = MPCLatency(space, profile, Protocol(exp_iterations=exp_iterations), seq_len=seq_len)
    for i, layer in enumerate(arch["layers"]):
        if layer["op"] != "attention" or layer["attn"] != "softmax":
            continue
        replaced = {**arch, "layers": [*arch["layers"][:i], {**layer, "attn": kind}, *arch["layers"][i + 1:]]}
        before, after = mpc.report(arch), mpc.report(replaced)
        assert after.latency_s <= before.latency_s * (1 + 1e-12)
        assert after.total.rounds < before.total.rounds and after.total.bytes <= before.total.bytes


def test_relu_attention_can_cost_more_bytes_on_very_short_sequences():
    """Why the property needs L x exp_iterations >= 29: a softmax row max over L keys takes L - 1
    compare-and-selects (29 words each), a ReLU row L, and the exp opens exp_iterations words per key; with
    CrypTen's 8 iterations the ReLU-normalised row opens fewer bytes from L = 4 on, and takes fewer rounds from
    L = 2 on. At L = 1 a softmax row has no maximum, and the ReLU's comparison (9 rounds) outweighs the exp's 8
    squarings: one more round, and more latency on any network."""
    p = CRYPTEN
    for length, relu_dearer in [(1, True), (2, True), (3, True), (4, False), (32, False)]:
        soft, relu_ = attention_weights(p, "softmax", 1, length), attention_weights(p, "relu", 1, length)
        assert (relu_.bytes > soft.bytes) is relu_dearer
        assert relu_.rounds == soft.rounds + 1 if length == 1 else relu_.rounds < soft.rounds
    space = FlexiBertSpace(LONG)
    for profile in ("wan", "lan"):
        mpc = MPCLatency(space, profile, seq_len=1)
        soft, relu_ = (mpc.report({"depth": 1, "layers": [attention_layer(k)]}) for k in ("softmax", "relu"))
        assert relu_.total.rounds == soft.total.rounds + 1 and relu_.latency_s > soft.latency_s


def test_unknown_modules_and_bad_settings_name_the_field():
    with pytest.raises(ConfigError, match=r"1: no MPC cost for module type Tanh"):
        mpc_ops(nn.Sequential(nn.Embedding(10, 4), nn.Tanh()), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ConfigError, match="bandwidth_bytes_s"):
        NetworkProfile("x", 0.01, 0.0)
    with pytest.raises(ConfigError, match="exp_iterations"):
        Protocol(exp_iterations=0)
    with pytest.raises(ConfigError, match="profile"):
        MPCLatency(FlexiBertSpace(CFG), "satellite")
    with pytest.raises(ConfigError, match="seq_len"):
        MPCLatency(None)
    with pytest.raises(ConfigError, match="seq_len"):
        MPCLatency(FlexiBertSpace(CFG), seq_len=9)  # longer than the space's position table
    with pytest.raises(ConfigError, match="attentions"):
        FlexiBertConfig(attentions=("softmax", "sigmoid"))
    with pytest.raises(ConfigError, match="kind"):
        SelfAttention(8, 2, 4, kind="sigmoid")


def test_default_space_is_unchanged_and_kinds_round_trip():
    default = FlexiBertSpace(FlexiBertConfig(vocab_size=50, max_len=8))
    assert "attn" not in str(default.to_spec())  # the default space has no attention-kind field
    space = FlexiBertSpace(CFG)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        arch = space.sample(rng)
        for layer in arch["layers"]:
            assert ("attn" in layer) == (layer["op"] == "attention")
            seen.add(layer.get("attn"))
        assert space.from_vector(space.to_vector(arch)) == arch
        assert space.from_graph(space.to_graph(arch)) == arch
    assert set(ATTENTIONS) <= seen
    a = space.validate({"depth": 1, "layers": [attention_layer("relu")]})
    assert sum(d["label"] == "attention/relu:16" for _, d in space.to_graph(a).nodes(data=True)) == 2


def test_attention_kinds_respect_padding_and_differ():
    """Every kind ignores padded keys; the kinds compute different functions of the same weights."""
    space = FlexiBertSpace(CFG)
    short = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0]])
    long = torch.tensor([[5, 6, 7] + [0] * 5])
    outputs = {}
    for kind in ATTENTIONS:
        torch.manual_seed(0)
        model = space.build({"depth": 2, "layers": [attention_layer(kind)] * 2}).eval()
        padded = model(torch.tensor([[5, 6, 7, 0, 0, 0]]))
        torch.testing.assert_close(model(short), padded, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(long), padded, atol=1e-5, rtol=1e-5)
        outputs[kind] = model(short)
        model(short).sum().backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    assert not torch.allclose(outputs["softmax"], outputs["relu"])
    assert not torch.allclose(outputs["softmax"], outputs["linear"])


@pytest.mark.filterwarnings("ignore:.*fewer than 10")  # one search seed: the protocol says so
def test_experiment_smoke_run(tmp_path):
    """experiments/mpcvit.py --quick: baselines, both searches, fronts and the chosen configuration."""
    import sys

    from nas.tabular import data_dir

    if not (data_dir() / "movie-review-polarity").is_dir():
        pytest.skip("Movie Review data not present")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import mpcvit

    out = tmp_path / "mpcvit.json"
    mpcvit.main(["--quick", "--out", str(out)])
    doc = __import__("json").loads(out.read_text())
    rows = {r["config"]: r for r in doc["configs"]}
    assert {"all-softmax", "all-relu", "all-linear"} <= set(rows)
    assert rows["all-linear"]["mpc_latency_s"] < rows["all-relu"]["mpc_latency_s"] < rows["all-softmax"]["mpc_latency_s"]
    for method in ("nsga2", "random"):
        trials = doc["search_trials"][method]["0"]
        assert len(trials) == doc["settings"]["budget"]
        front = [t for t in trials if t["on_front"]]
        assert front and not any(o["accuracy"] >= t["accuracy"] and o["mpc_latency_s"] <= t["mpc_latency_s"]
                                 and o != t and (o["accuracy"], o["mpc_latency_s"]) != (t["accuracy"], t["mpc_latency_s"])
                                 for t in front for o in trials)
    assert set(doc["hypervolume"]) == {"nsga2", "random"}


def test_doc_examples_run():
    blocks = python_blocks(DOC)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {"__name__": "__doc_example__"})


@pytest.mark.parametrize("conv", [nn.Conv1d(4, 6, 3), nn.Conv1d(4, 4, 3, padding=1, groups=4),
                                  nn.Conv1d(4, 8, 3, stride=2, groups=2)])
def test_convolution_local_ops_count_every_output_product(conv):
    """Each output element takes in_channels / groups x kernel products: 6 local ops each (the opened
    masked input and weights are one round). A full convolution was priced off its input size."""
    x = torch.randn(2, 4, 10)
    (op,) = mpc_ops(conv, x)
    macs = conv(x).numel() * (conv.in_channels // conv.groups) * conv.kernel_size[0]
    assert op.kind == "conv" and op.cost.ops == 6.0 * macs
    assert (op.cost.rounds, op.cost.bytes) == (1, (x.numel() + conv.weight.numel()) * CRYPTEN.word)
