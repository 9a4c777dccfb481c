"""Net2Wider / Net2Deeper preserve the function of random conv/fc stacks (with BatchNorm and ReLU), and
`StackSpace` keeps its architectures, built modules and transformed stacks in step."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from nas.errors import ConfigError, InvalidArchitectureError
from nas.spaces.net2net import Action, StackConfig, StackSpace, deepen, max_output_change, widen

TOLERANCE = 1e-4


@st.composite
def stacks(draw: st.DrawFn) -> tuple[nn.Sequential, tuple[int, ...]]:
    """A random stack: conv blocks (kernel 1 or 3, bias and BatchNorm optional, ReLU), an optional pooling,
    Flatten, fc blocks likewise, a Linear output; BatchNorm statistics and affine parameters randomised."""
    channels, side = draw(st.integers(1, 3)), draw(st.sampled_from([4, 8]))
    layers: list[nn.Module] = []
    c = channels
    for _ in range(draw(st.integers(0, 3))):
        out, k = draw(st.integers(1, 6)), draw(st.sampled_from([1, 3]))
        layers.append(nn.Conv2d(c, out, k, padding=k // 2, bias=draw(st.booleans())))
        if draw(st.booleans()):
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU())
        c = out
    pool = draw(st.sampled_from([None, nn.MaxPool2d, nn.AvgPool2d])) if layers else None
    if pool is not None:
        layers.append(pool(2))
        side //= 2
    layers.append(nn.Flatten())
    f = c * side * side
    for _ in range(draw(st.integers(0, 3))):
        out = draw(st.integers(1, 6))
        layers.append(nn.Linear(f, out, bias=draw(st.booleans())))
        if draw(st.booleans()):
            layers.append(nn.BatchNorm1d(out))
        layers.append(nn.ReLU())
        f = out
    stack = nn.Sequential(*layers, nn.Linear(f, draw(st.integers(1, 4))))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    with torch.no_grad():
        for m in stack.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen))
    return stack.eval(), (channels, side * (2 if pool is not None else 1), side * (2 if pool is not None else 1))


def _targets(stack: nn.Sequential) -> tuple[list[int], list[int]]:
    """(indices Net2Wider may widen: every Conv2d/Linear but the output, indices Net2Deeper may follow: ReLUs and
    the pools after them)."""
    layers = [i for i, m in enumerate(stack) if isinstance(m, (nn.Conv2d, nn.Linear))]
    after = [i for i, m in enumerate(stack) if isinstance(m, (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d))]
    return layers[:-1], after


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stacks(), st.data())
def test_random_transformations_preserve_the_function(one_thread, built, data):
    stack, shape = built
    x = torch.randn(100, *shape, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 1000))))
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    current = stack
    for _ in range(data.draw(st.integers(1, 4))):
        wide, deep = _targets(current)
        kinds = (["widen"] if wide else []) + (["deepen"] if deep else [])
        if not kinds:
            break
        if data.draw(st.sampled_from(kinds)) == "widen":
            i = data.draw(st.sampled_from(wide))
            units = current[i].out_channels if isinstance(current[i], nn.Conv2d) else current[i].out_features
            new = widen(current, i, units + data.draw(st.integers(1, 7)), rng)
            assert len(new) == len(current)
            # copies see their originals' batch statistics: equal in train mode too. In float64, since a channel of
            # almost constant batch values divides float32 rounding by its tiny batch std (3.9e-4 seen once)
            train_before, train_after = copy.deepcopy(current).double().train(), copy.deepcopy(new).double().train()
            with torch.no_grad():
                assert float((train_after(x.double()) - train_before(x.double())).abs().max()) <= TOLERANCE
        else:
            i = data.draw(st.sampled_from(deep))
            new = deepen(current, i, x[:50] if data.draw(st.booleans()) else None)
            assert len(new) == len(current) + 2 + isinstance(new[i + 2], (nn.BatchNorm1d, nn.BatchNorm2d))
        assert max_output_change(current, new, x) <= TOLERANCE
        assert max_output_change(stack, new, x) <= TOLERANCE
        current = new
    assert not stack.training  # the given stack is left as it was


def test_widen_copies_units_and_their_batch_norm(one_thread):
    stack = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.ReLU(), nn.Linear(2, 1)).eval()
    with torch.no_grad():
        stack[1].running_mean.copy_(torch.tensor([0.5, -1.0]))
    new = widen(stack, 0, 5, np.random.default_rng(0))
    assert new[0].weight.shape == (5, 3) and new[3].weight.shape == (1, 5)
    copied = [int(torch.nonzero((stack[0].weight == row).all(dim=1))[0]) for row in new[0].weight]
    assert copied[:2] == [0, 1]  # originals first, then copies of random units
    assert torch.equal(new[1].running_mean, stack[1].running_mean[copied])
    for unit in (0, 1):  # the outgoing weights of a unit and its copies add up to the original
        total = new[3].weight[0, [i for i, c in enumerate(copied) if c == unit]].sum()
        assert torch.isclose(total, stack[3].weight[0, unit])
    assert stack[0].weight.shape == (2, 3)  # the given stack is unchanged


def test_widen_noise_breaks_symmetry_at_a_small_function_change(one_thread):
    space = StackSpace()
    arch = space.make([4], [8])
    torch.manual_seed(0)
    stack = space.build(arch).eval()
    x = torch.randn(100, 1, 8, 8)
    exact = widen(stack, 0, 8, np.random.default_rng(1))
    noisy = widen(stack, 0, 8, np.random.default_rng(1), noise=0.01)
    assert max_output_change(stack, exact, x) <= TOLERANCE
    assert TOLERANCE < max_output_change(stack, noisy, x) < 0.5
    assert not torch.equal(noisy[0].weight[4:], exact[0].weight[4:])
    assert torch.equal(noisy[0].weight[:4], exact[0].weight[:4])


def test_deepen_sets_batch_norm_statistics_from_the_inputs(one_thread):
    stack = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(48, 2)).eval()
    x = torch.randn(64, 1, 4, 4)
    new = deepen(stack, 2, x)
    h = stack[:3](x)
    assert isinstance(new[3], nn.Conv2d) and isinstance(new[4], nn.BatchNorm2d) and isinstance(new[5], nn.ReLU)
    assert torch.allclose(new[4].running_mean, h.mean(dim=(0, 2, 3)))
    block = new[3:6].train()  # batch statistics of these inputs are the running ones: ~identity in train mode too
    with torch.no_grad():
        assert float((block(h) - h).abs().max()) <= 1e-2 * float(h.abs().max())


def test_transformations_name_the_bad_argument():
    stack = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="index: stack\\[4\\] has no Conv2d/Linear after it"):
        widen(stack, 4, 6, rng)
    with pytest.raises(ConfigError, match="index: stack\\[1\\] is a ReLU"):
        widen(stack, 1, 6, rng)
    with pytest.raises(ConfigError, match="width: 1 is narrower"):
        widen(stack, 0, 1, rng)
    with pytest.raises(ConfigError, match="index: Net2Deeper inserts after a ReLU"):
        deepen(stack, 0)
    with pytest.raises(ConfigError, match="index: a Flatten lies between"):
        deepen(stack, 3)
    with pytest.raises(ConfigError, match="index: 9 is outside"):
        deepen(stack, 9)
    assert len(deepen(stack, 2)) == len(stack) + 2  # after the pool that follows the ReLU: conv + ReLU, no BN


def test_stack_space_transforms_architectures_and_modules_together(one_thread):
    space = StackSpace(StackConfig(max_conv=2, max_fc=2, max_width=16))
    arch = space.make([4], [8])
    assert {str(a) for a in space.actions(arch)} == {"widen conv[0]", "deepen conv[0]", "widen fc[0]", "deepen fc[0]"}
    torch.manual_seed(0)
    stack, x, rng = space.build(arch).eval(), torch.randn(100, 1, 8, 8), np.random.default_rng(0)
    for action in (Action("widen", "conv", 0), Action("deepen", "conv", 0), Action("deepen", "fc", 0),
                   Action("widen", "fc", 1), Action("widen", "conv", 1)):
        new_arch, new = space.apply(arch, stack, action, rng, x)
        assert new_arch == space.transformed(arch, action)
        assert max_output_change(stack, new, x) <= TOLERANCE
        space.build(new_arch).load_state_dict(new.state_dict(), strict=True)  # the layout build() makes
        arch, stack = new_arch, new
    assert arch == space.make([8, 16], [8, 16])
    assert Action("widen", "fc", 1) not in space.actions(arch)  # at max_width
    assert not [a for a in space.actions(arch) if a.kind == "deepen"]  # at max depth
    with pytest.raises(InvalidArchitectureError, match="action: deepen conv\\[0\\] does not apply"):
        space.transformed(arch, Action("deepen", "conv", 0))
    with pytest.raises(ConfigError, match="kernel"):
        StackConfig(kernel=2)
