"""NB201 and OFA written in `nas.nn` (nas.nn.builtin_spaces) against the built-in classes: same space size,
and with the same weights the same outputs on 20 random architectures (built networks and supernets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas.nn.builtin_spaces import (NB201Net, OFANet, nb201_weights, ofa_arch_from_nn, ofa_arch_to_nn,
                                   ofa_subnet_weights, ofa_weights)
from nas.spaces.cell import NB201_EDGES, MixWeights, NasBench201Space
from nas.spaces.ofa import OFAConfig, OFASpace

N_ARCHS = 20
NB201_SMALL = [dict(input_shape=(1, 8, 8), channels=4, cells_per_stage=1, stages=2),
               dict(input_shape=(2, 12), channels=4, cells_per_stage=2, stages=2,
                    ops=("skip_connect", "nor_conv_3x3", "avg_pool_3x3", "max_pool_3x3"))]
OFA_SMALL = [OFAConfig(in_length=20, resolutions=(16, 20), stem_channels=4, stage_channels=(4, 8),
                       stage_strides=(2, 2), depths=(1, 2), kernels=(3, 5, 7), expands=(2, 3),
                       widths=(0.5, 1.0), head_channels=8),
             # widest multiplier below 1: OFANet allocates less than OFASupernet (weights map by leading slice)
             OFAConfig(in_length=20, in_channels=2, resolutions=(12, 20), stem_channels=6, stage_channels=(8, 12),
                       stage_strides=(2, 1), depths=(2, 3), kernels=(3, 5), expands=(1, 2),
                       widths=(0.5, 0.75), head_channels=8)]


@torch.no_grad()
def _randomise(module: nn.Module, seed: int) -> None:
    """Non-trivial weights and batch-norm statistics (fresh ones would hide a wrong mapping: BN at 1/0,
    kernel transforms at the identity)."""
    gen = torch.Generator().manual_seed(seed)
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_floating_point():
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5 if name.endswith("running_var")
                    else 0.3 * torch.randn(t.shape, generator=gen))


def _one_hot(space: NasBench201Space, arch) -> MixWeights:
    hot = torch.zeros(len(NB201_EDGES), len(space.ops))
    for e, (i, j) in enumerate(NB201_EDGES):
        hot[e, space.ops.index(arch[f"edge_{i}_{j}"])] = 1.0
    return MixWeights(hot, hot.bool())


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return float((a - b).detach().abs().max())


# ---------------------------------------------------------------------------------------- NAS-Bench-201
@pytest.mark.parametrize("kwargs", [{}] + NB201_SMALL)
def test_nb201_same_space(kwargs):
    old, new = NasBench201Space(**kwargs), NB201Net.space(**kwargs)
    assert new.size() == old.size() == len(old.ops) ** 6
    assert new.to_spec()["fields"] == old.to_spec()["fields"]  # same field names and options: no conversion
    arch = old.sample(np.random.default_rng(0))
    assert new.validate(arch) == arch


@pytest.mark.parametrize("kwargs", NB201_SMALL)
def test_nb201_build_same_outputs(kwargs, one_thread):
    old, new = NasBench201Space(**kwargs), NB201Net.space(**kwargs)
    rng, x = np.random.default_rng(1), torch.randn(3, *old.net.input_shape)
    archs = [old.sample(rng) for _ in range(N_ARCHS)]
    assert len(set(archs)) > 15
    for k, arch in enumerate(archs):
        mine, theirs = new.build(arch).eval(), old.build(arch).eval()
        _randomise(theirs, k)
        mine.load_state_dict(theirs.state_dict())  # same module paths: no mapping
        assert not any("LayerChoice" in type(m).__name__ for m in mine.modules())
        assert _max_diff(mine(x), theirs(x)) <= 1e-5, arch


@pytest.mark.parametrize("kwargs", NB201_SMALL)
@pytest.mark.parametrize("affine", [False, True])
def test_nb201_supernet_same_outputs(kwargs, affine, one_thread):
    old = NasBench201Space(**kwargs)
    theirs = old.supernet(affine=affine)
    _randomise(theirs, 0)
    mine = NB201Net.supernet(**kwargs, affine=affine)
    mine.load_state_dict(nb201_weights(theirs.state_dict(), old.ops))  # strict: every weight has its place
    rng, x = np.random.default_rng(2), torch.randn(3, *old.net.input_shape)
    for mode in ("eval", "train"):
        mine.train(mode == "train"), theirs.train(mode == "train")
        for _ in range(N_ARCHS if mode == "eval" else 3):
            arch = old.sample(rng)
            theirs.mixing = lambda alpha, hot=_one_hot(old, arch): hot
            assert _max_diff(mine(x, arch), theirs(x)) <= 1e-5, (mode, arch)
            if mode == "eval":
                assert _max_diff(mine.subnet(arch)(x), theirs.subnet(arch).eval()(x)) <= 1e-5, arch


def test_nb201net_has_the_built_in_canonical_key_so_a_search_skips_isomorphic_twins():
    """NB201Net.space() declares NB201's cell: its canonical key is NasBench201Space's (before, the id, so twins
    such as nodes 1 and 2 exchanged were evaluated twice), and a search over it asks what one over the built-in
    class asks, architecture for architecture. The key survives the JSON description exports rebuild it from."""
    from nas.modelspec import space_from_json, space_to_json

    kwargs = dict(channels=4, cells_per_stage=1, stages=2, ops=("none", "skip_connect", "nor_conv_3x3"))
    old, new = NasBench201Space(**kwargs), NB201Net.space(**kwargs)
    arch = {"edge_0_1": "nor_conv_3x3", "edge_0_2": "skip_connect", "edge_1_2": "none", "edge_0_3": "none",
            "edge_1_3": "skip_connect", "edge_2_3": "nor_conv_3x3"}
    twin = {**arch, "edge_0_1": "skip_connect", "edge_0_2": "nor_conv_3x3", "edge_1_3": "nor_conv_3x3",
            "edge_2_3": "skip_connect"}  # nodes 1 and 2 exchanged: one network
    assert new.validate(twin) != new.validate(arch) and new.canonical_key(twin) == new.canonical_key(arch)
    rng = np.random.default_rng(5)
    assert all(new.canonical_key(a) == old.canonical_key(a) for a in (old.sample(rng) for _ in range(300)))
    rebuilt = space_from_json(space_to_json(new))
    assert rebuilt.fingerprint() == new.fingerprint() and rebuilt.canonical_key(twin) == new.canonical_key(arch)

    def evaluate(a):
        return {"acc": float(int(old.canonical_key(a)[:8], 16) % 1000)}

    for strategy in ("random", "evolution"):
        runs = [nas.search(space, evaluate, {"acc": "max"}, strategy=strategy, budget=60, seed=1).trials
                for space in (old, new)]
        keys = [old.canonical_key(t.arch) for t in runs[1]]
        assert len(keys) == len(set(keys)) == 60
        assert [t.arch_id for t in runs[1]] == [t.arch_id for t in runs[0]]


# ---------------------------------------------------------------------------------------- Once-for-All
@pytest.mark.parametrize("cfg", [OFAConfig()] + OFA_SMALL)
def test_ofa_same_space(cfg):
    old, new = OFASpace(cfg), OFANet.space(cfg)
    assert new.size() == old.size() == OFANet.space(cfg.to_dict()).size()  # a JSON config (model specs)
    rng = np.random.default_rng(3)
    for _ in range(N_ARCHS):
        arch = old.sample(rng)
        assert old.validate(ofa_arch_from_nn(new.validate(ofa_arch_to_nn(arch)))) == arch
        back = new.sample(rng)
        assert new.validate(ofa_arch_to_nn(old.validate(ofa_arch_from_nn(back)))) == back
    assert new.largest() == ofa_arch_to_nn(old.largest()) and new.smallest() == ofa_arch_to_nn(old.smallest())


@pytest.mark.parametrize("cfg", OFA_SMALL)
def test_ofa_build_same_outputs(cfg, one_thread):
    old, new = OFASpace(cfg), OFANet.space(cfg)
    rng, x = np.random.default_rng(4), torch.randn(3, cfg.in_channels, cfg.in_length)
    for k in range(N_ARCHS):
        arch = old.sample(rng)
        theirs, mine = old.build(arch).eval(), new.build(ofa_arch_to_nn(arch)).eval()
        _randomise(theirs, k)
        mine.load_state_dict(ofa_subnet_weights(theirs.state_dict(), arch))
        assert _max_diff(mine(x), theirs(x)) <= 1e-5, arch


@pytest.mark.parametrize("cfg", OFA_SMALL)
def test_ofa_supernet_same_outputs(cfg, one_thread):
    old = OFASpace(cfg)
    theirs, mine = old.supernet(), OFANet.supernet(cfg)
    _randomise(theirs, 0)
    assert any(".transforms." in k for k in theirs.state_dict())  # elastic kernels with transform matrices
    mine.load_state_dict(ofa_weights(theirs.state_dict(), mine.state_dict()))
    rng, x = np.random.default_rng(5), torch.randn(3, cfg.in_channels, cfg.in_length)
    for mode in ("eval", "train"):
        mine.train(mode == "train"), theirs.train(mode == "train")
        for _ in range(N_ARCHS if mode == "eval" else 3):
            arch = old.sample_subnet(rng)
            assert _max_diff(mine(x, ofa_arch_to_nn(arch)), theirs(x, arch)) <= 1e-5, (mode, arch)
            if mode == "eval":
                sub = mine.subnet(ofa_arch_to_nn(arch))
                assert _max_diff(sub(x), theirs.subnet(arch)(x)) <= 1e-5, arch
