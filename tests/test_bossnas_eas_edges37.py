"""Edge cases of BossNAS, EAS and Net2Net found by testing from the outside: one-sample BatchNorm statistics,
modes left as given, unchecked configs and options, label-free (x, None) splits, and doc claims."""

from __future__ import annotations

import ast
import builtins
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.bossnas import BossOptions, HybridConfig, HybridSpace, search_bossnas
from nas.datasets import digits_splits
from nas.errors import ConfigError
from nas.spaces.net2net import Action, StackConfig, StackSpace, deepen, max_output_change, widen
from tests.docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]
TINY = BossOptions(epochs=1, batch_size=16, paths=1, hidden=8, proj_dim=4, rating_views=1, retrain_epochs=1)


@pytest.fixture(scope="module")
def digits():
    """The digits splits; and the first optimizer built, which imports torch's compiler (seconds) once here."""
    torch.optim.AdamW([nn.Parameter(torch.zeros(1))])
    return digits_splits(0)


def fc_stack() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).eval()


def conv_stack() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(64, 3))


def modes(stack: nn.Module) -> list[bool]:
    return [m.training for m in stack.modules()]


# 1 ------------------------------------------------------------------------------------------------------------
def test_deepen_refuses_one_sample_per_unit_for_an_fc_batch_norm():
    """One input row gave an unbiased variance of NaN, and a network that outputs NaN."""
    stack, x = fc_stack(), torch.randn(10, 1, 8, 8)
    with pytest.raises(ConfigError, match=r"^inputs: .*2"):
        deepen(stack, 3, inputs=x[:1])
    deeper = deepen(stack, 3, inputs=x[:2])  # two rows are enough
    assert torch.isfinite(deeper[5].weight).all()
    assert max_output_change(stack, deeper, x) <= 1e-5
    conv = conv_stack().eval()  # one conv input still has H x W values per channel
    assert max_output_change(conv, deepen(conv, 2, inputs=x[:1]), x) <= 1e-5


def test_deepen_refuses_inputs_whose_statistics_are_not_finite():
    stack, x = fc_stack(), torch.randn(4, 1, 8, 8)
    x[0, 0, 0, 0] = math.inf
    with pytest.raises(ConfigError, match=r"^inputs: "):
        deepen(stack, 3, inputs=x)


# 2 ------------------------------------------------------------------------------------------------------------
def test_search_bossnas_takes_x_none_splits_as_label_free(digits, tmp_path, one_thread):
    data = {k: (digits[k][0][:32], None) for k in ("train", "valid")}
    space = HybridSpace(HybridConfig(channels=4, heads=1))
    result = search_bossnas(space, data, 2, TINY, workdir=tmp_path)
    assert len(result.trials) == 2
    state = json.loads((tmp_path / "bossnas.json").read_text())
    assert "no labels" in state["not_retrained"] and state["retrained"] == {}


# 3 ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("kernel", -1), ("kernel", True), ("kernel", 2.0), ("num_classes", True),
                                          ("pool", True), ("max_conv", 2.5), ("min_width", 0),
                                          ("input_shape", (1, 8.0, 8)), ("input_shape", (1, "8", 8)),
                                          ("input_shape", (1, True, 8)), ("input_shape", 8)])
def test_stack_config_refuses_non_int_and_negative_fields(field, value):
    with pytest.raises(ConfigError, match=rf"^StackConfig\.{field}: "):
        StackConfig(**{field: value})


def test_stack_config_takes_numpy_ints_as_python_ints():
    cfg = StackConfig(input_shape=(np.int64(1), 8, 8), kernel=np.int64(5), max_conv=np.int32(2))
    assert cfg.input_shape == (1, 8, 8) and cfg.kernel == 5 and cfg.max_conv == 2
    assert type(cfg.kernel) is int and all(type(v) is int for v in cfg.input_shape)


def test_search_eas_refuses_a_bad_kernel_before_the_workdir(tmp_path):
    with pytest.raises(ConfigError, match=r"StackConfig\.kernel"):
        StackSpace(StackConfig(kernel=-1))
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kernel", [-1, True, 2, 1.0])
def test_deepen_refuses_a_bad_kernel(kernel):
    with pytest.raises(ConfigError, match=r"^kernel: "):
        deepen(conv_stack(), 2, kernel=kernel)


# 4 ------------------------------------------------------------------------------------------------------------
def test_transformations_leave_every_module_mode_as_given():
    x = torch.randn(10, 1, 8, 8)
    stack = conv_stack()
    stack.train()
    stack[1].eval()  # a frozen BatchNorm inside a training stack
    given = modes(stack)
    deeper = deepen(stack, 2, inputs=x)
    assert modes(stack) == given
    assert deeper[1].training is False and deeper[0].training is True  # the copy keeps the modes too
    wider = widen(stack, 0, 8, np.random.default_rng(0))
    assert modes(stack) == given and modes(wider) == given
    max_output_change(stack, wider, x)
    assert modes(stack) == given and modes(wider) == given


def test_a_failed_deepen_restores_the_modes():
    stack = conv_stack()
    stack.train()
    stack[1].eval()
    given = modes(stack)
    with pytest.raises(RuntimeError):
        deepen(stack, 2, inputs=torch.randn(3, 2, 8, 8))  # two channels for a one-channel stack
    assert modes(stack) == given


# 5 ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", [-1.0, math.nan, math.inf, "a", True])
def test_widen_refuses_a_noise_that_is_not_a_finite_number_at_least_0(noise):
    with pytest.raises(ConfigError, match=r"^noise: "):
        widen(conv_stack().eval(), 0, 8, np.random.default_rng(0), noise=noise)


def test_widen_takes_a_numpy_noise():
    stack, x = conv_stack().eval(), torch.randn(10, 1, 8, 8)
    change = max_output_change(stack, widen(stack, 0, 8, np.random.default_rng(0), noise=np.float64(0.01)), x)
    assert 0 < change < 0.5


# 6 ------------------------------------------------------------------------------------------------------------
def _free_names(block: str) -> set[str]:
    """Names a code block reads but neither binds nor imports itself (builtins aside)."""
    tree = ast.parse(block)
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
    return read - bound - set(dir(builtins))


@pytest.mark.parametrize("doc", ["eas.md", "bossnas.md"])
def test_every_doc_example_imports_what_it_uses(doc):
    """Each block runs alone, as a reader copies it: the search_eas example used `torch` without importing it."""
    blocks = python_blocks(ROOT / "docs" / doc)
    assert blocks
    for block in blocks:
        assert _free_names(block) == set(), block[:80]


# 7 ------------------------------------------------------------------------------------------------------------
def test_bossnas_doc_states_the_counted_cost_of_attention():
    """The doc called attention the costly choice; the toolkit counts it as the cheaper one in this space."""
    space = HybridSpace()
    base = {"b0_l0": "conv", "b0_l1": "conv", "b0_down": "none", "b1_l0": "conv", "b1_l1": "conv", "b1_down": "none"}
    conv, attn = space.count(base)["macs"], space.count({**base, "b0_l1": "attn"})["macs"]
    assert conv - attn == 23_552  # 294,912 - 271,360 MACs for one layer at 8x8, 16 channels
    text = (ROOT / "docs" / "bossnas.md").read_text()
    assert "attention is\nthe costly choice" not in text and "attention is the costly choice" not in text
    assert "271,360" in text and "294,912" in text


# 8 ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [-3.0, 0.5, 1.0, math.nan, math.inf, "2", True])
def test_stack_space_refuses_a_widen_factor_not_above_1(factor):
    space = StackSpace()
    arch = space.make([8], [16])
    with pytest.raises(ConfigError, match=r"^widen_factor: "):
        space.actions(arch, factor)
    with pytest.raises(ConfigError, match=r"^widen_factor: "):
        space.transformed(arch, Action("widen", "conv", 0), widen_factor=factor)
    with pytest.raises(ConfigError, match=r"^widen_factor: "):
        space.apply(arch, space.build(arch), Action("widen", "conv", 0), np.random.default_rng(0),
                    widen_factor=factor)


def test_stack_space_widens_by_a_numpy_factor():
    space = StackSpace()
    arch = space.make([8], [16])
    assert space.transformed(arch, Action("widen", "conv", 0), widen_factor=np.float64(1.5))["conv"][0]["width"] == 12


# 9 ------------------------------------------------------------------------------------------------------------
def test_search_bossnas_refuses_an_empty_archs_list_before_the_workdir(digits, tmp_path):
    data = {k: digits[k][0][:32] for k in ("train", "valid")}
    with pytest.raises(ConfigError, match=r"^archs: "):
        search_bossnas(HybridSpace(HybridConfig(channels=4, heads=1)), data, [], TINY, workdir=tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_search_bossnas_takes_a_numpy_number_of_archs(digits, tmp_path, one_thread):
    data = {k: digits[k][0][:32] for k in ("train", "valid")}
    result = search_bossnas(HybridSpace(HybridConfig(channels=4, heads=1)), data, np.int64(2), TINY)
    assert len(result.trials) == 2 and result.config["budget"] == 2
    with pytest.raises(ConfigError, match=r"^archs: .*got np\.int64\(0\)|^archs: .*got 0"):
        search_bossnas(HybridSpace(HybridConfig(channels=4, heads=1)), data, np.int64(0), TINY)


# 10 -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 8.5, 8), (1, 8.0, 8), (1, "8", 8), (1, True, 8), (1, 8), 8, (1, 0, 8)])
def test_hybrid_config_refuses_an_input_shape_of_non_ints(shape):
    with pytest.raises(ConfigError, match=r"^HybridConfig\.input_shape: "):
        HybridConfig(input_shape=shape)


def test_hybrid_config_takes_numpy_ints_as_python_ints():
    cfg = HybridConfig(input_shape=(np.int64(1), np.int64(8), 8), channels=np.int64(8))
    assert cfg.input_shape == (1, 8, 8) and type(cfg.input_shape[1]) is int and type(cfg.channels) is int
    assert cfg.to_dict()["channels"] == 8
