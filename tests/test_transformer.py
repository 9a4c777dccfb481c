"""Transformer spaces: FlexiBERT-style heterogeneous encoders (fields, models, counts, graphs), the elastic
supernet (subnets equal the supernet to 1e-5), and the Movie Review loader."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn
from tests.docs import python_blocks

from nas.errors import ConfigError, InvalidArchitectureError
from nas.spaces.transformer import (ElasticTransformerConfig, ElasticTransformerSpace, FlexiBertConfig,
                                    FlexiBertSpace, SelfAttention)
from nas.tabular import data_dir

pytestmark = pytest.mark.usefixtures("one_thread")
DOC = Path(__file__).resolve().parents[1] / "docs" / "transformer.md"
SMALL = FlexiBertConfig(vocab_size=50, max_len=12, depths=(1, 2, 3), hidden=(8, 16), heads=(1, 2), kernels=(3, 5),
                        ffn_depths=(1, 2), ffn_dims=(8, 16), dropout=0.0)


def layer(op: str, hidden: int = 8, ffn=(8,), **extra) -> dict:
    return {"op": op, "hidden": hidden, **extra, "ffn_depth": len(ffn), "ffn": [{"dim": d} for d in ffn]}


def test_flexibert_size_matches_enumeration():
    cfg = FlexiBertConfig(vocab_size=10, ops=("attention", "conv", "fourier"), depths=(1, 2), hidden=(8,),
                          heads=(1, 2), kernels=(3,), ffn_depths=(1,), ffn_dims=(8, 16))
    space = FlexiBertSpace(cfg)
    per_layer = (2 + 1 + 1) * 2  # attention x 2 head counts, conv x 1 kernel, fourier; x 2 FFN widths
    assert space.size() == per_layer + per_layer ** 2 == len(list(space))


def test_conditional_fields_follow_the_op():
    space = FlexiBertSpace(SMALL)
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = space.sample(rng)
        assert len(arch["layers"]) == arch["depth"]
        for lay in arch["layers"]:
            assert ("heads" in lay) == (lay["op"] == "attention")
            assert ("kernel" in lay) == (lay["op"] == "conv")
            assert len(lay["ffn"]) == lay["ffn_depth"]
        assert space.from_vector(space.to_vector(arch)) == arch
    with pytest.raises(InvalidArchitectureError) as err:
        space.validate({"depth": 1, "layers": [layer("conv", kernel=3, heads=2)]})
    assert err.value.path == "layers[0].heads"
    with pytest.raises(InvalidArchitectureError) as err:
        space.validate({"depth": 1, "layers": [layer("attention")]})
    assert err.value.path == "layers[0].heads"
    with pytest.raises(ConfigError, match="heads"):
        FlexiBertConfig(hidden=(6,), heads=(4,))
    with pytest.raises(ConfigError, match="ops"):
        FlexiBertConfig(ops=("attention", "lstm"))


def test_random_heterogeneous_models_forward_backward():
    space = FlexiBertSpace(SMALL)
    rng = np.random.default_rng(1)
    torch.manual_seed(0)
    seen_ops = set()
    for _ in range(6):
        arch = space.sample(rng)
        seen_ops |= {lay["op"] for lay in arch["layers"]}
        model = space.build(arch)
        tokens = space.example_input(arch, 5)
        out = model(tokens)
        assert out.shape == (5, 2)
        out.square().sum().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert space.count(arch)["params"] == sum(p.numel() for p in model.parameters())
    assert seen_ops == {"attention", "fourier", "linear", "conv"}


def test_projection_joins_widths_and_counts_are_exact():
    space = FlexiBertSpace(SMALL)
    arch = space.validate({"depth": 2, "layers": [layer("fourier", 8, (16,)), layer("fourier", 16, (8,))]})
    model = space.build(arch)
    assert model.layers[0].proj is None and model.layers[1].proj.weight.shape == (16, 8)
    v, n, h1, h2 = SMALL.vocab_size, SMALL.max_len, 8, 16
    expected = (v * h1 + n * h1                          # embeddings
                + 4 * h1 + (h1 * 16 + 16 + 16 * h1 + h1)  # layer 0: two LNs, FFN 8-16-8
                + (h1 * h2 + h2) + 4 * h2 + (h2 * 8 + 8 + 8 * h2 + h2)  # layer 1: projection, LNs, FFN 16-8-16
                + 2 * h2 + h2 * 2 + 2)                   # final LN, classifier
    assert space.count(arch)["params"] == expected
    one = space.validate({"depth": 1, "layers": [layer("attention", 8, (8,), heads=2)]})
    two = space.validate({"depth": 2, "layers": [layer("attention", 8, (8,), heads=2)] * 2})
    flops1, flops2 = space.count(one, batch_size=2)["flops"], space.count(two, batch_size=2)["flops"]
    assert flops2 > flops1 > 0
    # attention heads split the same width: the head count changes no parameter
    assert space.count(one)["params"] == space.count(
        space.validate({"depth": 1, "layers": [layer("attention", 8, (8,), heads=1)]}))["params"]


def test_padding_does_not_change_the_output():
    """A sentence gives the same logits whether the padded tail is short or long (masks everywhere).

    Not for `fourier`: FNet's FFT runs over the whole padded length by design."""
    space = FlexiBertSpace(SMALL)
    torch.manual_seed(0)
    for op, extra in [("attention", {"heads": 2}), ("conv", {"kernel": 5}), ("linear", {})]:
        arch = space.validate({"depth": 2, "layers": [layer(op, 8, **extra), layer("attention", 16, heads=2)]})
        model = space.build(arch).eval()
        short = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0]])
        long = torch.tensor([[5, 6, 7] + [0] * 9])
        torch.testing.assert_close(model(short), model(long), atol=1e-5, rtol=1e-5)


WL_WARNING = "ignore:The hashes produced for directed graphs"  # networkx >= 3.5 notes its changed digraph hashes


@pytest.mark.filterwarnings(WL_WARNING)
def test_graph_round_trip_and_wl_labels():
    space = FlexiBertSpace(SMALL)
    rng = np.random.default_rng(2)
    for _ in range(30):
        arch = space.sample(rng)
        assert space.from_graph(space.to_graph(arch)) == arch
    a = space.validate({"depth": 2, "layers": [layer("attention", 8, heads=2), layer("conv", 16, kernel=5)]})
    g = space.to_graph(a)
    labels = sorted(d["label"] for _, d in g.nodes(data=True))
    assert labels.count("attention:8") == 2 and "conv:16:k5" in labels and "proj:8>16" in labels
    assert nx.is_directed_acyclic_graph(g)

    def wl(arch):
        return nx.weisfeiler_lehman_graph_hash(space.to_graph(arch), node_attr="label")

    variants = [a,
                space.validate({**a.to_dict(), "layers": [layer("attention", 8, heads=1), a["layers"][1]]}),
                space.validate({**a.to_dict(), "layers": [layer("fourier", 8), a["layers"][1]]}),
                space.validate({**a.to_dict(), "layers": [a["layers"][0], layer("conv", 16, kernel=3)]}),
                space.validate({**a.to_dict(), "layers": [a["layers"][0], layer("conv", 16, (16,), kernel=5)]})]
    assert len({wl(v) for v in variants}) == len(variants)
    assert wl(space.from_graph(g)) == wl(a)

    def features(arch) -> Counter:  # WL subtree features: the basis of a WL graph kernel
        hashes = nx.weisfeiler_lehman_subgraph_hashes(space.to_graph(arch), node_attr="label", iterations=2)
        return Counter(h for hs in hashes.values() for h in hs)

    def similarity(x, y) -> float:
        fx, fy = features(x), features(y)
        return sum(fx[k] * fy[k] for k in fx) / (sum(v * v for v in fx.values()) * sum(v * v for v in fy.values())) ** 0.5

    far = space.validate({"depth": 3, "layers": [layer("linear", 16, (16, 16)), layer("fourier", 8),
                                                 layer("linear", 8, (16,))]})
    assert similarity(a, variants[1]) > similarity(a, variants[2]) > similarity(a, far)


# ------------------------------------------------------------------------------------------- elastic
ELASTIC = ElasticTransformerConfig(vocab_size=60, max_len=10, hidden=16, head_dim=4, depths=(1, 2, 3),
                                   heads=(1, 2, 4), ffn_dims=(8, 16, 32), dropout=0.0)


def test_elastic_subnets_equal_the_supernet():
    space = ElasticTransformerSpace(ELASTIC)
    torch.manual_seed(0)
    supernet = space.supernet()
    with torch.no_grad():  # make LayerNorms non-trivial so copying them matters
        for m in supernet.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0.0, 0.2)
    rng = np.random.default_rng(3)
    archs = [space.sample(rng) for _ in range(6)] + [space.smallest(), space.largest()]
    for arch in archs:
        tokens = space.example_input(arch, 4)
        sub = supernet.subnet(arch)
        for mode in (True, False):
            supernet.train(mode)
            sub.train(mode)
            torch.testing.assert_close(sub(tokens), supernet(tokens, arch), atol=1e-5, rtol=1e-5)
        assert sum(isinstance(m, SelfAttention) for m in sub.modules()) == arch["depth"]
        fresh = space.build(arch)
        fresh.load_state_dict(sub.state_dict())  # standalone: loads without the supernet
        torch.testing.assert_close(fresh.eval()(tokens), supernet.eval()(tokens, arch), atol=1e-5, rtol=1e-5)
        assert space.count(arch)["params"] == sum(p.numel() for p in sub.parameters())
    torch.testing.assert_close(supernet(tokens), supernet(tokens, space.largest()))


def test_elastic_supernet_trains_only_the_active_slices():
    space = ElasticTransformerSpace(ELASTIC)
    torch.manual_seed(0)
    supernet = space.supernet()
    arch = space.validate({"depth": 2, "layers": [{"heads": 1, "ffn": 8}, {"heads": 2, "ffn": 32}]})
    out = supernet(space.example_input(arch, 3), arch)
    assert out.shape == (3, 2)
    out.square().sum().backward()
    first, second, third = supernet.layers
    assert first.up.weight.grad[:8].abs().sum() > 0 and first.up.weight.grad[8:].abs().sum() == 0
    assert first.q.weight.grad[:4].abs().sum() > 0 and first.q.weight.grad[4:].abs().sum() == 0
    assert second.o.weight.grad[:, :8].abs().sum() > 0 and second.o.weight.grad[:, 8:].abs().sum() == 0
    assert third.q.weight.grad is None  # depth 2: the third layer did not run
    with pytest.raises(InvalidArchitectureError):
        supernet(space.example_input(arch, 1), {"depth": 1, "layers": [{"heads": 3, "ffn": 8}]})


def test_a_heterogeneous_model_learns_a_token_rule():
    """Label = whether token 7 occurs: a 2-layer conv+attention model learns it in a few hundred steps."""
    space = FlexiBertSpace(SMALL)
    arch = space.validate({"depth": 2, "layers": [layer("conv", 16, (16,), kernel=3), layer("attention", 16, heads=2)]})
    g = torch.Generator().manual_seed(0)
    x = torch.randint(8, 50, (512, 12), generator=g)
    y = torch.randint(0, 2, (512,), generator=g)
    pos = torch.randint(0, 12, (512,), generator=g)
    x[y == 1, pos[y == 1]] = 7
    torch.manual_seed(0)
    model = space.build(arch)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(6):
        for idx in torch.randperm(384, generator=g).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x[384:]).argmax(1) == y[384:]).float().mean().item()
    assert acc > 0.9


# ------------------------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def mr_dir():
    path = data_dir() / "movie-review-polarity"
    if not (path / "rt-polarity.pos").exists():
        pytest.skip(f"Movie Review files not found under {path} (../shared/data is absent)")
    return path


def test_movie_reviews_split_and_vocabulary(mr_dir):
    from nas.datasets import movie_reviews

    d = movie_reviews(mr_dir, seed=0, max_len=64, vocab_size=2000)
    assert len(d.train_y) + len(d.test_y) == 10662 and len(d.test_y) == 1066
    assert d.train_x.shape == (9596, 64) and d.train_x.dtype == torch.long
    assert abs(float(d.train_y.float().mean()) - 0.5) < 0.01 and d.num_classes == 2
    assert len(d.vocab) == 2000 and d.vocab[:2] == ("<pad>", "<unk>")
    used = set(d.train_x.unique().tolist())
    assert used == set(range(2000))  # every word of the vocabulary occurs in the training split
    assert (d.train_x[:, 0] != 0).all() and (d.test_x[:, 0] != 0).all()
    again = movie_reviews(mr_dir, seed=0, max_len=64, vocab_size=2000)
    assert torch.equal(again.test_x, d.test_x)
    other = movie_reviews(mr_dir, seed=1, max_len=64, vocab_size=2000)
    assert not torch.equal(other.test_y, d.test_y)
    short = movie_reviews(mr_dir, seed=0, max_len=8, vocab_size=2000)
    assert torch.equal(short.train_x, d.train_x[:, :8])
    with pytest.raises(ConfigError, match="vocab_size"):
        movie_reviews(mr_dir, vocab_size=2)


# ------------------------------------------------------------------------------------------- docs
@pytest.mark.filterwarnings(WL_WARNING)
def test_doc_examples_run():
    blocks = python_blocks(DOC)
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {"__name__": "__doc_example__"})
