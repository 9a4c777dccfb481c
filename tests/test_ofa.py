"""OFA/BigNAS elastic CNN: dynamic layers, the space, supernet == extracted subnet, schedules, BN recalibration."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError, InvalidArchitectureError
from nas.spaces.dynamic import DynamicBatchNorm, DynamicConv1d, DynamicConv2d, DynamicLinear, importance_order
from nas.spaces.ofa import OFAConfig, OFASpace, OFASubnet
from nas.spaces.training import (InheritedAccuracy, PlainTraining, ProgressiveShrinking, SandwichRule, accuracy,
                                 ofa_phases, recalibrate_bn)

ROOT = Path(__file__).resolve().parents[1]
TINY = OFAConfig(stem_channels=4, stage_channels=(4, 6), stage_strides=(2, 2), depths=(1, 2), kernels=(3, 5),
                 expands=(1, 2), widths=(0.5, 1.0), head_channels=8, resolutions=(32, 40))
SMALL = OFAConfig(stem_channels=8, stage_channels=(8, 8), stage_strides=(2, 2), depths=(1, 2), kernels=(3, 5),
                  expands=(1, 2), widths=(0.5, 1.0), head_channels=16, resolutions=(32, 40))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mnist():
    from nas.datasets import mnist1d_splits

    return mnist1d_splits(seed=0)


def scramble(net: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics/affines and kernel transforms, so that equalities are not vacuous."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.named_parameters():
            if "transforms" in name:
                t.add_(0.2 * torch.randn(t.shape, generator=g))
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))


# ---------------------------------------------------------------------------------------- dynamic layers
def test_dynamic_conv_kernel_transform_is_centre_crop_then_matrix():
    torch.manual_seed(0)
    conv = DynamicConv1d(6, 6, (3, 5, 7), depthwise=True)
    w7 = conv.weight.detach().clone()
    # identity transforms: the 3-kernel is the centre of the 7-kernel
    assert torch.equal(conv.weight_for(6, 6, 3), w7[:, :, 2:5])
    m75, m53 = torch.randn(5, 5), torch.randn(3, 3)
    with torch.no_grad():
        conv.transforms["7to5"].copy_(m75)
        conv.transforms["5to3"].copy_(m53)
    w5 = w7[:, :, 1:6] @ m75.T
    assert torch.allclose(conv.weight_for(6, 6, 5), w5, atol=1e-6)
    assert torch.allclose(conv.weight_for(6, 6, 3), w5[:, :, 1:4] @ m53.T, atol=1e-6)
    assert torch.equal(conv.weight_for(4, 4, 7), w7[:4])
    x = torch.randn(2, 4, 11)
    assert torch.allclose(conv(x, kernel_size=3), F.conv1d(x, w5[:4, :, 1:4] @ m53.T, None, 1, 1, 1, 4), atol=1e-5)
    conv(x, kernel_size=3).sum().backward()
    assert conv.transforms["5to3"].grad.abs().sum() > 0 and conv.transforms["7to5"].grad.abs().sum() > 0


@pytest.mark.parametrize("cls,shape", [(DynamicConv1d, (3, 8, 13)), (DynamicConv2d, (3, 8, 9, 7))])
def test_dynamic_conv_export_matches_forward(cls, shape):
    torch.manual_seed(1)
    conv = cls(8, 12, (1, 3, 5), stride=2, bias=True)
    with torch.no_grad():
        for t in conv.transforms.values():
            t.add_(0.3 * torch.randn_like(t))
    x = torch.randn(*shape)[:, :5]
    for k in (1, 3, 5):
        plain = conv.export(5, 7, k)
        assert type(plain) is (nn.Conv1d if cls is DynamicConv1d else nn.Conv2d)
        assert plain.weight.shape[:2] == (7, 5) and plain.kernel_size[0] == k
        assert torch.allclose(conv(x, 7, k), plain(x), atol=1e-5)
    with pytest.raises(ValueError, match="kernel_size"):
        conv(x, 7, 7)
    with pytest.raises(ValueError, match="out_channels"):
        conv(x, 13, 3)


def test_dynamic_batchnorm_slices_and_updates_only_active_channels():
    dbn = DynamicBatchNorm(6)
    with torch.no_grad():
        dbn.bn.running_mean.copy_(torch.arange(6.0))
        dbn.bn.running_var.fill_(2.0)
    x = torch.randn(16, 4, 5) * 3 + 1
    dbn.eval()
    ref = dbn.export(4).eval()
    assert isinstance(ref, nn.BatchNorm1d) and torch.equal(ref.running_mean, torch.arange(4.0))
    assert torch.allclose(dbn(x), ref(x), atol=1e-6)
    dbn.train()
    dbn.bn.momentum = None  # cumulative average: after one batch the statistics are that batch's
    dbn.bn.reset_running_stats()
    dbn(x)
    assert torch.allclose(dbn.bn.running_mean[:4], x.mean(dim=(0, 2)), atol=1e-5)
    assert torch.allclose(dbn.bn.running_var[:4], x.var(dim=(0, 2), unbiased=True), atol=1e-4)
    assert torch.equal(dbn.bn.running_mean[4:], torch.zeros(2))


def test_dynamic_linear_slices_leading_dims_and_reorders():
    torch.manual_seed(2)
    lin, nxt = DynamicLinear(8, 10), DynamicLinear(10, 3)
    x = torch.randn(2, 5, 6)
    assert torch.allclose(lin(x, 7), F.linear(x, lin.weight[:7, :6], lin.bias[:7]))
    assert torch.allclose(lin.export(6, 7)(x), lin(x, 7), atol=1e-6)
    z = torch.randn(4, 8)
    before = nxt(torch.relu(lin(z)))
    perm = importance_order(nxt.weight, dim=1)
    lin.reorder_out(perm)
    nxt.reorder_in(perm)
    assert torch.allclose(nxt(torch.relu(lin(z))), before, atol=1e-6)
    norms = nxt.weight.abs().sum(dim=0)
    assert torch.all(norms[:-1] >= norms[1:])


# ---------------------------------------------------------------------------------------- the space
def test_space_size_sampling_and_validation():
    space = OFASpace()
    per_stage = 3 * (9 + 9**2 + 9**3)
    assert space.size() == 3 * per_stage**3
    rng = np.random.default_rng(0)
    depths = np.array([[s["depth"] for s in space.sample_subnet(rng)["stages"]] for _ in range(600)])
    share = [(depths == d).mean() for d in (1, 2, 3)]
    assert all(abs(s - 1 / 3) < 0.05 for s in share), share  # OFA's per-decision sampling: depths uniform
    uniform = np.array([[s["depth"] for s in space.sample(rng)["stages"]] for _ in range(300)])
    assert (uniform == 3).mean() > 0.8  # uniform over architectures: mostly the deepest
    kernel_only = space.sample_subnet(rng, {"kernel"})
    assert kernel_only["resolution"] == 40
    assert all(s["depth"] == 3 and s["width"] == 1.0 and all(b["expand"] == 4 for b in s["blocks"])
               for s in kernel_only["stages"])
    with pytest.raises(ConfigError, match="elastic"):
        space.sample_subnet(rng, {"colour"})
    bad = space.largest().to_dict()
    bad["stages"][1]["blocks"][0]["kernel"] = 4
    with pytest.raises(InvalidArchitectureError, match=re.escape("stages[1].blocks[0].kernel")):
        space.validate(bad)
    assert space.capabilities >= {"model", "supernet", "encode", "mutate"}
    a = space.sample_subnet(rng)
    assert space.from_vector(space.to_vector(a)) == a and space.from_graph(space.to_graph(a)) == a


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="OFAConfig.kernels"):
        OFAConfig(kernels=(3, 4))
    with pytest.raises(ConfigError, match="OFAConfig.stage_strides"):
        OFAConfig(stage_channels=(8, 8), stage_strides=(2,))
    with pytest.raises(ConfigError, match="OFAConfig.zero_init_residual: expected True or False, got 'false'"):
        OFAConfig(zero_init_residual="false")  # a string from a hand-edited config would be truthy
    with pytest.raises(ConfigError, match="include_largest: expected True or False, got 1"):
        ProgressiveShrinking(include_largest=1).fit(OFASpace(TINY).supernet(), torch.zeros(4, 40),
                                                    torch.zeros(4, dtype=torch.long))


def expected_counts(arch, cfg: OFAConfig) -> tuple[int, int]:
    """Parameters and forward FLOPs (2 per multiply-add, convs and linears only) written out by hand."""
    length = arch["resolution"]
    params = cfg.in_channels * cfg.stem_channels * 3 + 2 * cfg.stem_channels
    flops = 2 * cfg.stem_channels * length * cfg.in_channels * 3
    cin = cfg.stem_channels
    for s, stage in enumerate(arch["stages"]):
        out = cfg.stage_width(s, stage["width"])
        for i, b in enumerate(stage["blocks"]):
            k, mid = b["kernel"], cin * b["expand"]
            stride = cfg.stage_strides[s] if i == 0 else 1
            l_out = (length - 1) // stride + 1
            params += cin * mid + 2 * mid + mid * k + 2 * mid + mid * out + 2 * out
            flops += 2 * mid * length * cin + 2 * mid * l_out * k + 2 * out * l_out * mid
            cin, length = out, l_out
    params += cin * cfg.head_channels + 2 * cfg.head_channels + cfg.head_channels * cfg.num_classes + cfg.num_classes
    flops += 2 * cfg.head_channels * length * cin + 2 * cfg.head_channels * cfg.num_classes
    return params, flops


def test_build_forward_backward_and_counts():
    space = OFASpace()
    rng = np.random.default_rng(3)
    for arch in [space.largest(), space.smallest(), space.sample(rng), *(space.sample_subnet(rng) for _ in range(2))]:
        torch.manual_seed(0)
        model = space.build(arch)
        x = torch.randn(4, 40)
        out = model(x)
        assert out.shape == (4, 10) and torch.isfinite(out).all()
        F.cross_entropy(out, torch.arange(4)).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        assert model(torch.randn(4, 1, 40)).shape == (4, 10)
        params, flops = expected_counts(arch, space.config)
        counts = space.count(arch)
        assert counts["params"] == params and counts["flops"] == flops
    assert space.count(space.largest())["flops"] > 10 * space.count(space.smallest())["flops"]


# ---------------------------------------------------------------------------------------- supernet
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_subnet_outputs_equal_supernet_outputs(mode):
    space = OFASpace()
    torch.manual_seed(0)
    net = space.supernet()
    scramble(net)
    rng = np.random.default_rng(4)
    x = torch.randn(8, 40)
    for arch in [space.largest(), space.smallest(), *(space.sample_subnet(rng) for _ in range(6))]:
        getattr(net, mode)()
        sub = net.subnet(arch)
        assert sub.training == (mode == "train")
        assert not any("Dynamic" in type(m).__name__ for m in sub.modules())
        with torch.no_grad():
            assert torch.allclose(net(x, arch), sub(x), atol=1e-5)
        assert sum(p.numel() for p in sub.parameters()) == space.count(arch)["params"]
        if mode == "eval":  # rebuilt from the architecture and the state_dict alone
            clone = OFASubnet(arch.to_dict(), space.config)
            clone.load_state_dict(sub.state_dict())
            with torch.no_grad():
                assert torch.equal(clone.eval()(x), sub(x))


def test_zero_init_residual_starts_residual_blocks_as_identity():
    arch = OFASpace().largest()  # depth 3: two residual blocks per stage
    for zero in (True, False):
        space = OFASpace(OFAConfig(zero_init_residual=zero))
        torch.manual_seed(0)
        net = space.supernet().eval()
        residual = [b for stage in net.stages for b in stage if b.residual]
        h = torch.randn(4, space.config.stage_channels[0], 20)
        with torch.no_grad():  # every residual block, at any width, kernel and expand, passes its input through
            same = [torch.equal(b(h[:, :c], c, k, e), h[:, :c]) for b in residual[:2]
                    for c, k, e in ((h.shape[1], 7, 4), (h.shape[1] // 2, 3, 2))]
        assert all(same) == zero and any(same) == zero
        built = space.build(arch).eval()  # the stand-alone network is initialised alike
        blocks = [b for b in built.blocks if b.residual]
        assert len(blocks) == 6
        with torch.no_grad():
            for b in blocks:
                h = torch.randn(2, b.expand[0].in_channels, 9)
                assert torch.equal(b(h), h) == zero


def test_sort_channels_preserves_function_and_orders_importance():
    space = OFASpace()
    torch.manual_seed(5)
    net = space.supernet()
    scramble(net, seed=5)
    net.eval()
    x = torch.randn(8, 40)
    arch = space.largest()
    with torch.no_grad():
        before = net(x, arch)
    net.sort_channels()
    with torch.no_grad():
        assert torch.allclose(net(x, arch), before, atol=1e-5)
    for stage in net.stages:
        for block in stage:
            imp = block.project_conv.weight.abs().sum(dim=(0, 2))
            assert torch.all(imp[:-1] >= imp[1:])
        imp = torch.cat([b.project_conv.weight for b in stage], dim=1).abs().sum(dim=(1, 2))
        assert torch.all(imp[:-1] >= imp[1:])


def test_recalibrate_bn_gives_exact_averages():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv1d(1, 3, 3), nn.BatchNorm1d(3))
    batches = [torch.randn(10, 1, 12) * (i + 1) for i in range(3)]
    recalibrate_bn(model, batches)
    assert not model.training and model[1].momentum == 0.1
    feats = [model[0](b).detach() for b in batches]
    assert torch.allclose(model[1].running_mean, torch.stack([f.mean(dim=(0, 2)) for f in feats]).mean(0), atol=1e-5)
    assert torch.allclose(model[1].running_var, torch.stack([f.var(dim=(0, 2)) for f in feats]).mean(0), atol=1e-4)


# ---------------------------------------------------------------------------------------- schedules
def tiny_data(mnist, n: int = 256):
    x, y = mnist["train"]
    return x[:n], y[:n]


def record_calls(net: nn.Module) -> list:
    """(is the supernet itself, arch) for every supernet call; a deep-copied teacher records too."""
    calls: list = []
    net.register_forward_pre_hook(lambda module, args: calls.append((module is net, args[1])))
    return calls


def test_progressive_shrinking_phases_sample_their_dimensions(mnist, monkeypatch):
    space = OFASpace(TINY)
    torch.manual_seed(0)
    net = space.supernet()
    calls = record_calls(net)
    marks: list[tuple[str, int]] = []
    monkeypatch.setattr(net, "sort_channels", lambda: marks.append(("sorted", len(calls))))
    import nas.spaces.training as training

    run_phase = training.run_phase

    def tracking(name, *args, **kwargs):
        marks.append((name, len(calls)))
        return run_phase(name, *args, **kwargs)

    monkeypatch.setattr(training, "run_phase", tracking)
    x, y = tiny_data(mnist)
    log = ProgressiveShrinking(ofa_phases(1, 1, 1, 1), subnets_per_step=2, batch_size=64).fit(net, x, y)
    assert [p.name for p in log.phases] == ["full", "kernel", "depth", "width"]
    assert [p.steps for p in log.phases] == [4, 4, 4, 4] and all(np.isfinite(p.epoch_losses[0]) for p in log.phases)
    starts = dict(marks)
    assert starts["sorted"] == starts["width"]  # channels sorted once, entering the width phase
    bounds = [starts[n] for n in ("full", "kernel", "depth", "width")] + [len(calls)]
    phase = {n: calls[a:b] for n, a, b in zip(("full", "kernel", "depth", "width"), bounds, bounds[1:])}
    assert len(phase["full"]) == 4 and all(own for own, _ in phase["full"])  # one subnet per step, no teacher yet
    big = space.largest()
    assert all(a["stages"] == big["stages"] for _, a in phase["full"])
    for name in ("kernel", "depth", "width"):
        steps = [phase[name][i:i + 3] for i in range(0, 12, 3)]  # teacher, then two students per step
        assert len(phase[name]) == 12 and all([own for own, _ in st] == [False, True, True] for st in steps)
        assert all(st[0][1]["stages"] == big["stages"] for st in steps)
        assert all(len({a["resolution"] for _, a in st}) == 1 for st in steps)  # one input resolution per step
    students = {n: [a for own, a in phase[n] if own] for n in phase}
    assert all(s["depth"] == 2 and s["width"] == 1.0 and all(b["expand"] == 2 for b in s["blocks"])
               for a in students["kernel"] for s in a["stages"])
    assert all(s["width"] == 1.0 and all(b["expand"] == 2 for b in s["blocks"])
               for a in students["depth"] for s in a["stages"])
    assert len({s["depth"] for a in students["depth"] for s in a["stages"]}) == 2
    assert len({(s["width"], b["expand"]) for a in students["width"] for s in a["stages"] for b in s["blocks"]}) > 1


def test_sandwich_rule_trains_every_subnet_and_evaluator_matches_supernet_path(mnist):
    space = OFASpace(SMALL)
    torch.manual_seed(0)
    net = space.supernet()
    x, y = mnist["train"][0][:1024], mnist["train"][1][:1024]
    xv, yv = mnist["valid"]
    evaluate = InheritedAccuracy(net, xv, yv, calib_x=x[:500])
    before = {name: evaluate(getattr(space, name)())["accuracy"] for name in ("largest", "smallest")}
    calls = record_calls(net)
    log = SandwichRule(epochs=4, n_random=1, batch_size=64, lr=1e-2).fit(net, x, y)
    steps = [[a for _, a in calls[i:i + 3]] for i in range(0, len(calls), 3)]  # largest, smallest, random
    assert len(steps) == 4 * 16 and all(len({a["resolution"] for a in st}) == 1 for st in steps)
    assert all(st[0]["stages"] == space.largest()["stages"] and st[1]["stages"] == space.smallest()["stages"]
               for st in steps)
    assert len({st[0]["resolution"] for st in steps}) == 2
    losses = log.phases[0].epoch_losses
    assert log.phases[0].steps == 4 * 16 and losses[-1] < losses[0]
    after = {name: evaluate(getattr(space, name)())["accuracy"] for name in ("largest", "smallest")}
    assert after["largest"] > 0.35 and after["smallest"] > 0.2, after  # chance is 0.1
    assert all(after[k] > before[k] + 0.1 for k in after), (before, after)
    # the evaluator (extracted subnet) and the supernet itself, recalibrated for the arch, agree exactly
    arch = space.sample_subnet(np.random.default_rng(1))
    copy_net = copy.deepcopy(net)
    chunks = [x[i:i + 250] for i in range(0, 500, 250)]
    recalibrate_bn(copy_net, chunks, call=lambda b: copy_net(b, arch))
    assert evaluate(arch)["accuracy"] == accuracy(lambda b: copy_net(b, arch), xv, yv)


def test_plain_training_learns(mnist):
    space = OFASpace(TINY)
    torch.manual_seed(0)
    model = space.build(space.largest())
    x, y = tiny_data(mnist, 1024)
    xv, yv = mnist["valid"]
    PlainTraining(epochs=4, batch_size=64, lr=1e-2).fit(model, x, y)
    assert accuracy(model.eval(), xv, yv) > 0.3
    with pytest.raises(ConfigError, match="batch_size"):
        PlainTraining(batch_size=1).fit(model, x, y)


def test_mnist1d_splits(mnist):
    from nas.datasets import mnist1d_splits

    (x, y), (xv, _), (xt, _) = mnist["train"], mnist["valid"], mnist["test"]
    assert x.shape == (3500, 40) and xv.shape == (500, 40) and xt.shape == (1000, 40)
    assert x.dtype == torch.float32 and y.dtype == torch.long and set(y.tolist()) == set(range(10))
    state = np.random.get_state()[1].copy()
    other = mnist1d_splits(seed=1, extra_test=55)
    assert np.array_equal(np.random.get_state()[1], state)  # the global RNG is left alone
    assert torch.equal(other["test"][0], xt) and "extra_test" not in mnist
    xe, ye = other["extra_test"]
    assert xe.shape == (55, 40) and ye.dtype == torch.long and len(set(ye.tolist())) > 5
    assert torch.cdist(xe, xt).min() > 1e-3  # fresh signals, not copies of the standard test set
    assert not torch.equal(other["valid"][0], xv)
    all_train = torch.cat([x, xv])
    assert torch.equal(torch.sort(torch.cat([other["train"][0], other["valid"][0]]).sum(1)).values,
                       torch.sort(all_train.sum(1)).values)
    both = mnist1d_splits(seed=1, extra_test=55, extra_valid=60)
    assert torch.equal(both["extra_test"][0], xe) and both["extra_valid"][0].shape == (60, 40)
    assert torch.cdist(both["extra_valid"][0], torch.cat([xe, xt])).min() > 1e-3  # a third fresh set


# ---------------------------------------------------------------------------------------- docs
def test_docs_examples_run():
    text = (ROOT / "docs" / "ofa.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/ofa.md", "exec"), {"__name__": "__docs__"})


@pytest.mark.slow
def test_sandwich_supernet_on_mnist1d_ranks_extremes(mnist):
    space = OFASpace()
    torch.manual_seed(0)
    net = space.supernet()
    (x, y), (xv, yv) = mnist["train"], mnist["valid"]
    SandwichRule(epochs=4).fit(net, x, y)
    evaluate = InheritedAccuracy(net, xv, yv, calib_x=x[:1000])
    big, small = evaluate(space.largest())["accuracy"], evaluate(space.smallest())["accuracy"]
    assert big > 0.45 and big > small
