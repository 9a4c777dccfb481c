"""The session-22 audit of user models (`nas.nn`): per-scope largest/smallest, batch-norm recalibration that
keeps a frozen backbone's statistics, parameter tying, choices read by forward code or kept by plain torch
layers, one-shot search with frozen weights and tuple outputs, per-module train/eval modes in subnets,
InputChoice shape checks and inline depthwise expressions. Each test fails on the code before the fix."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas import nn as nnn
from nas.darts import DartsOptions, search_darts
from nas.errors import ConfigError, SpaceDefinitionError
from nas.spaces.cell import softmax_mixing
from nas.spaces.training import _BN, InheritedAccuracy, recalibrate_bn
from nas.strategies.oneshot_modules import MixedModuleSupernet

pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # a shared tensor counts once


def splits(n: int = 96, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return {name: (torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g))
            for name in ("train", "valid")}


# ---------------------------------------------------------------------------------------- 1. per-scope ranks
def _stage(cands):
    return nnn.Repeat(lambda i: nnn.LayerChoice(cands(), label="op"), depth=2)


class TwoStages(nnn.ModelSpace):
    """Two Repeats whose blocks each hold a LayerChoice labelled 'op' with other keys (a decision per block)."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.s1 = _stage(lambda: {"conv": nn.Conv2d(8, 8, 3, padding=1), "skip": nn.Identity()})
        self.s2 = _stage(lambda: {"pool": nn.MaxPool2d(3, 1, 1), "big": nn.Conv2d(8, 8, 5, padding=2)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s2(self.s1(self.stem(x))).mean((1, 2, 3))


class _Blk(nn.Module):
    def __init__(self, big_first: bool) -> None:
        super().__init__()
        cands = [nn.Conv2d(8, 8, 3, padding=1), nn.Identity()] if big_first else \
            [nn.Identity(), nn.Conv2d(8, 8, 5, padding=2)]
        self.op = nnn.LayerChoice(cands)  # auto-labelled 'op' in both Repeats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Unlabelled(nnn.ModelSpace):
    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.s1 = nnn.Repeat(lambda i: _Blk(True), depth=nnn.Choice("d1", [1, 2]))
        self.s2 = nnn.Repeat(lambda i: _Blk(False), depth=nnn.Choice("d2", [1, 2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s2(self.s1(self.stem(x))).mean((1, 2, 3))


def test_largest_and_smallest_rank_each_repeats_own_layerchoice_candidates():
    space = TwoStages.space()  # with input_shape: the probe ran largest() and smallest() (it raised before)
    assert space.largest().to_dict() == {"s1": [{"op": "conv"}] * 2, "s2": [{"op": "big"}] * 2}
    assert space.smallest().to_dict() == {"s1": [{"op": "skip"}] * 2, "s2": [{"op": "pool"}] * 2}
    space = Unlabelled.space()
    sizes = [space.count(a)["params"] for a in space]
    big, small = space.largest(), space.smallest()
    assert big.to_dict() == {"d1": 2, "d2": 2, "s1": [{"op": 0}] * 2, "s2": [{"op": 1}] * 2}
    assert space.count(big)["params"] == max(sizes) == 4464 and space.count(small)["params"] == min(sizes)
    # the sandwich rule's teacher is the largest network
    sup = Unlabelled.supernet()
    assert n_params(sup.subnet(big)) == 4464


# ---------------------------------------------------------------------------------------- 2. BN recalibration
class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class FrozenBackbone(nnn.ModelSpace):
    """A pretrained backbone, frozen (requires_grad=False) and with its own batch-norm statistics."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.backbone = Backbone()
        with torch.no_grad():
            self.backbone.bn.running_mean.copy_(torch.linspace(-1, 1, 8))
            self.backbone.bn.running_var.copy_(torch.linspace(0.5, 2, 8))
        self.backbone.requires_grad_(False)
        w = nnn.Choice("w", [4, 8])
        self.neck = nnn.Conv2d(8, w, nnn.Choice("k", [1, 3]), padding="same")
        self.bn = nnn.BatchNorm2d(w)
        self.head = nnn.Linear(w, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.bn(self.neck(self.backbone(x)))).mean((2, 3)))


class KeepsBackboneEval(FrozenBackbone):
    def train(self, mode: bool = True) -> "KeepsBackboneEval":
        super().train(mode)
        self.backbone.eval()
        return self


def _old_recalibrate_bn(module: nn.Module, inputs) -> nn.Module:
    """The algorithm before the fix (every batch norm reset and re-estimated), the reference for models whose
    batch norms all train."""
    bns = [m for m in module.modules() if isinstance(m, _BN)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    with torch.no_grad():
        for batch in inputs:
            module(batch)
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
    return module.eval()


def test_recalibration_keeps_the_statistics_of_batch_norms_the_model_keeps_in_eval_mode():
    x = splits()["train"][0]
    pretrained = FrozenBackbone().backbone.bn.running_mean.clone()
    arch = {"w": 8, "k": 3}
    # the model's train() keeps the backbone in eval: a subnet of a supernet in eval mode
    torch.manual_seed(0)
    sup = KeepsBackboneEval.supernet().eval()
    sub = recalibrate_bn(sup.subnet(arch), [x[:48], x[48:]])
    assert torch.equal(sub.backbone.bn.running_mean, pretrained)
    assert not torch.equal(sub.bn.running_mean, sup.subnet(arch).bn.running_mean)  # the searched BN is re-estimated
    assert not sub.training
    # the idiom model.train(); model.backbone.eval() (a subnet keeps the modes, defect 7)
    sup = FrozenBackbone.supernet().train()
    sup.net.backbone.eval()
    sub = recalibrate_bn(sup.subnet(arch), [x[:48], x[48:]])
    assert torch.equal(sub.backbone.bn.running_mean, pretrained)
    assert float(sub.bn.running_var.sub(1).abs().max()) > 1e-3
    # a backbone in train mode (no override, the model in eval mode) is re-estimated, as every batch norm was
    sup = FrozenBackbone.supernet().eval()
    sub = recalibrate_bn(sup.subnet(arch), [x])
    assert not torch.equal(sub.backbone.bn.running_mean, pretrained)
    # what a search measures (InheritedAccuracy) scores the subnet with the pretrained statistics
    sup = KeepsBackboneEval.supernet().eval()
    xv, yv = splits()["valid"]
    sub = sup.subnet(arch)
    sub.bn.reset_running_stats()
    with torch.no_grad():  # the exact statistics of the searched BN on x, the backbone's kept
        h = sub.neck(sub.backbone(x))
        sub.bn.running_mean.copy_(h.mean((0, 2, 3)))
        sub.bn.running_var.copy_(h.var((0, 2, 3)))
        expected = float((sub.eval()(xv).argmax(-1) == yv).float().mean())
    assert InheritedAccuracy(sup, xv, yv, calib_x=x, batch_size=len(x))(arch)["accuracy"] == pytest.approx(expected)


def test_recalibration_of_a_model_whose_batch_norms_all_train_is_unchanged():
    x = splits()["train"][0]
    torch.manual_seed(0)
    sup = FrozenBackbone.supernet().eval()
    for arch in ({"w": 8, "k": 3}, {"w": 4, "k": 1}):
        for mode in ("eval", "train"):
            sub = getattr(sup.subnet(arch), mode)()
            ref = _old_recalibrate_bn(copy.deepcopy(sub), [x[:48], x[48:]])
            got = recalibrate_bn(sub, [x[:48], x[48:]])
            assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), ref.state_dict().values()))
            assert [m.momentum for m in got.modules() if isinstance(m, _BN)] == [0.1, 0.1]
    # a new wrapper (in train mode, as modules are made) around subnets in eval mode: every batch norm trains
    members = [sup.subnet({"w": 8, "k": 3}).eval(), sup.subnet({"w": 4, "k": 1}).eval()]
    wrapper, ref = nn.ModuleList(members), nn.ModuleList(copy.deepcopy(members)).eval()

    def run(m: nn.ModuleList):
        return lambda b: [member(b) for member in m]

    recalibrate_bn(wrapper, [x], run(wrapper))
    ref.train()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, _BN):
                m.reset_running_stats()
                m.momentum = None
        run(ref)(x)
    assert all(torch.equal(a, b) for a, b in zip(wrapper.state_dict().values(), ref.state_dict().values()))


# ---------------------------------------------------------------------------------------- 3. parameter tying
class TiedLM(nnn.ModelSpace):
    @classmethod
    def example_input(cls, batch_size: int = 1) -> torch.Tensor:
        return torch.zeros(batch_size, 6, dtype=torch.long)

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.mix = nnn.LayerChoice({"lin": nn.Linear(16, 16), "skip": nn.Identity()}, label="mix")
        self.decoder = nn.Linear(16, 50, bias=False)
        self.decoder.weight = self.embed.weight  # tied by parameter

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.mix(self.embed(ids))).mean(1)


def test_a_parameter_shared_by_two_modules_stays_one_tensor_in_subnets_and_built_models():
    space, sup, arch = TiedLM.space(), TiedLM.supernet(), {"mix": "lin"}
    by_hand = 50 * 16 + 16 * 16 + 16
    for model in (sup.subnet(arch), TiedLM.build(arch)):
        assert model.decoder.weight is model.embed.weight
        assert n_params(model) == by_hand
    assert space.count(arch)["params"] == by_hand
    sub = sup.subnet(arch)
    assert sub.embed.weight is not sup.net.embed.weight  # a copy, not the supernet's tensor
    assert torch.equal(sub.embed.weight, sup.net.embed.weight)


class _SharedBlk(nn.Module):
    def __init__(self, shared: nn.Module) -> None:
        super().__init__()
        self.shared = shared
        self.own = nnn.Conv2d(4, 4, nnn.Choice("k", [1, 3]), padding="same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.own(self.shared(x))


class SharedAcrossBlocks(nnn.ModelSpace):
    input_shape = (4, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        shared = nn.Conv2d(4, 4, 3, padding=1)
        self.blocks = nnn.Repeat(lambda i: _SharedBlk(shared), depth=nnn.Choice("d", [1, 2, 3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).mean((1, 2, 3))


def test_a_module_shared_by_the_blocks_of_a_repeat_is_one_module_in_every_subnet():
    """It was one copy or three, as temporary contexts' ids happened to be reused."""
    space, sup = SharedAcrossBlocks.space(), SharedAcrossBlocks.supernet()
    arch = {"d": 3, "blocks": [{"k": 1}, {"k": 3}, {"k": 1}]}
    by_hand = (4 * 4 * 9 + 4) + (4 * 4 * 1 + 4) * 2 + (4 * 4 * 9 + 4)
    assert space.count(arch)["params"] == by_hand
    for _ in range(5):
        for model in (sup.subnet(arch), SharedAcrossBlocks.build(arch)):
            assert model.blocks[0].shared is model.blocks[1].shared is model.blocks[2].shared
            assert n_params(model) == by_hand


# ---------------------------------------------------------------------------------------- 4. choices read by forward
class PoolInForward(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nnn.Conv2d(1, nnn.Choice("w", [4, 8]), 3, padding=1)
        self.pool_k = nnn.Choice("pool_k", [1, 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(x), self.pool_k).mean((1, 2, 3))


class PlainPool(nnn.ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nnn.Conv2d(1, nnn.Choice("w", [4, 8]), 3, padding=1)
        self.pool = nn.Sequential(nn.ReLU(), nn.MaxPool2d(nnn.Choice("pool_k", [1, 2])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x)).mean((1, 2, 3))


class WidthInForward(nnn.ModelSpace):
    """The choice is also a layer's: it is a decision, and the forward line that misuses it is named."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.w = nnn.Choice("w", [1, 2])
        self.conv = nnn.Conv2d(1, self.w, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(x), self.w).mean((1, 2, 3))  # the line named


class StoredAndUsed(nnn.ModelSpace):
    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.width = nnn.Choice("width", [4, 8])  # kept for the constructor's convenience: fine
        self.conv = nnn.Conv2d(1, self.width, 3, padding=1)
        self.head = nnn.Linear(self.width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean((2, 3)))


@pytest.mark.parametrize("shape", [None, (1, 8, 8)])
def test_a_choice_given_to_a_functional_call_or_a_plain_pool_is_refused_naming_label_and_place(shape, monkeypatch):
    for cls in (PoolInForward, PlainPool):
        monkeypatch.setattr(cls, "input_shape", shape)
    with pytest.raises(SpaceDefinitionError, match=r"^PoolInForward\.pool_k: Choice\('pool_k', \[1, 2\]\) is kept "
                                                   "on a plain module and no choice point uses it"):
        PoolInForward.space()
    if shape is not None:  # the model ran: the forward line is named too
        with pytest.raises(SpaceDefinitionError, match=r"; in forward, a choice is used as a plain number \(at .*"
                                                       r"test_nn_audit_fixes\.py:\d+\) \(torch: avg_pool2d"):
            PoolInForward.space()
    with pytest.raises(SpaceDefinitionError, match=r"^pool\.1\.kernel_size: Choice\('pool_k', \[1, 2\]\) is an "
                                                   r"argument of a plain torch\.nn\.MaxPool2d"):
        PlainPool.space()


def test_a_choice_read_by_forward_and_used_by_a_layer_names_the_forward_line():
    with pytest.raises(SpaceDefinitionError, match=r"^WidthInForward: a choice is used as a plain number "
                                                   r"\(at .*test_nn_audit_fixes\.py:\d+\) \(torch: avg_pool2d"):
        WidthInForward.space()
    assert StoredAndUsed.space().size() == 2


# ---------------------------------------------------------------------------------------- 5. darts2, frozen weights
class FrozenLC(nnn.ModelSpace):
    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.backbone = Backbone().requires_grad_(False)
        self.op = nnn.LayerChoice({"conv": nn.Conv2d(8, 8, 3, padding=1), "skip": nn.Identity()}, label="op")
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.op(self.backbone(x)).mean((2, 3)))


def test_second_order_darts_searches_a_model_with_frozen_weights():
    result = search_darts(FrozenLC.space(), splits(), method="darts2", epochs=1, seed=0,
                          options=DartsOptions(batch_size=32, retrain_epochs=1))
    assert result.best().arch["op"] in ("conv", "skip")
    mixed = MixedModuleSupernet(FrozenLC.supernet(), softmax_mixing)
    assert all(p.requires_grad for p in mixed.weight_parameters())
    assert sum(p.numel() for p in mixed.weight_parameters()) == (8 * 8 * 9 + 8) + (8 * 4 + 4)  # op.conv, head


# ---------------------------------------------------------------------------------------- 6. tuple outputs
class RNNChoice(nnn.ModelSpace):
    input_shape = (12, 3)

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nnn.LayerChoice({"gru": nn.GRU(3, 8, batch_first=True), "rnn": nn.RNN(3, 8, batch_first=True)},
                                   label="cell")
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class LSTMOrGRU(RNNChoice):
    input_shape = None  # no probe: the structures differ, (out, (h, c)) against (out, h)

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nnn.LayerChoice({"gru": nn.GRU(3, 8, batch_first=True), "lstm": nn.LSTM(3, 8, batch_first=True)},
                                   label="cell")


def seq_splits(n: int = 64) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return {name: (torch.randn(n, 12, 3, generator=g), torch.randint(0, 4, (n,), generator=g))
            for name in ("train", "valid")}


@pytest.mark.parametrize("method", ["darts", "gumbel-hard"])
def test_one_shot_search_mixes_candidates_that_return_tuples(method):
    result = search_darts(RNNChoice.space(), seq_splits(), method=method, epochs=1, seed=0,
                          options=DartsOptions(batch_size=32, retrain_epochs=1))
    assert result.best().arch["cell"] in ("gru", "rnn")


def test_tuple_outputs_are_mixed_element_wise_and_other_structures_refused_naming_the_layerchoice():
    torch.manual_seed(0)
    mixed = MixedModuleSupernet(RNNChoice.supernet(), softmax_mixing)
    x = torch.randn(2, 12, 3)
    w = F.softmax(mixed.alphas["cell"].detach(), -1)[0]
    rnn = mixed.inner.net.rnn
    (og, _), (orr, _) = rnn.candidate("gru")(x), rnn.candidate("rnn")(x)
    with torch.no_grad():
        assert torch.allclose(mixed(x), mixed.inner.net.head((w[0] * og + w[1] * orr)[:, -1]))
    mixed = MixedModuleSupernet(LSTMOrGRU.supernet(), softmax_mixing)
    with pytest.raises(ConfigError, match=r"^rnn: LayerChoice candidate 'lstm' returns a tuple \(tensor, tuple"):
        mixed(x)


# ---------------------------------------------------------------------------------------- 7. modes in subnets
def test_a_subnet_keeps_each_modules_train_or_eval_mode():
    torch.manual_seed(0)
    sup = FrozenBackbone.supernet().train()
    sup.net.backbone.eval()
    arch = {"w": 8, "k": 3}
    sub = sup.subnet(arch)
    assert not sub.backbone.training and not sub.backbone.bn.training
    assert sub.training and sub.bn.training and sub.neck.training  # exported layers take their choice point's
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(sub(x), sup(x, arch))
    sup.eval()
    assert not any(m.training for m in sup.subnet(arch).modules())
    sup.train()
    assert all(m.training for m in sup.subnet(arch).modules())


# ---------------------------------------------------------------------------------------- 8. InputChoice shapes
class Picks(nnn.ModelSpace):
    input_shape = (1, 8, 8)
    stride = 2
    reduction = "sum"
    n_chosen = 2

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 4 if self.reduction == "concat" else 8, 3, stride=self.stride, padding=1)
        self.pick = nnn.InputChoice(3, self.n_chosen, reduction=self.reduction, label="pick")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.a(x))
        b = F.relu(self.b(a))
        return self.pick([a, b, F.relu(self.c(b))]).mean((1, 2, 3))


def test_inputchoice_inputs_of_different_shapes_are_refused_when_the_space_is_derived(monkeypatch):
    with pytest.raises(SpaceDefinitionError, match=r"^pick: InputChoice 'pick' inputs have different shapes: "
                                                   r"0 -> \(2, 8, 8, 8\), 1 -> \(2, 8, 8, 8\), 2 -> \(2, 8, 4, 4\)"):
        Picks.space()
    monkeypatch.setattr(Picks, "stride", 1)
    assert Picks.space().size() == 3
    monkeypatch.setattr(Picks, "reduction", "concat")  # 8, 8 and 4 channels
    monkeypatch.setattr(Picks, "n_chosen", 3)
    assert Picks.space().size() == 1                    # all of them: channels may differ
    monkeypatch.setattr(Picks, "n_chosen", 2)
    with pytest.raises(SpaceDefinitionError, match="the channel counts must agree too"):
        Picks.space()


# ---------------------------------------------------------------------------------------- 10. depthwise
class Depthwise(nnn.ModelSpace):
    """A depthwise conv whose channels are `w * 2`, written inline three times."""

    input_shape = (4, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("w", [4, 8])
        self.pw = nnn.Conv2d(4, w * 2, 1)
        self.dw = self.depthwise(w)

    def depthwise(self, w: nnn.Choice) -> nn.Module:
        return nnn.Conv2d(w * 2, w * 2, 3, padding=1, groups=w * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(self.pw(x)).mean((1, 2, 3))


class DepthwiseSeparateChoices(Depthwise):
    def depthwise(self, w: nnn.Choice) -> nn.Module:  # one label, separate objects, other expressions
        return nnn.Conv2d(nnn.Choice("w", [4, 8]) * 2, 2 * nnn.Choice("w", [4, 8]), 3, padding=1, groups=w + w)


class Grouped(Depthwise):
    def depthwise(self, w: nnn.Choice) -> nn.Module:  # not depthwise: groups w, channels 2 w
        return nnn.Conv2d(w * 2, w * 2, 3, padding=1, groups=w)


@pytest.mark.parametrize("cls", [Depthwise, DepthwiseSeparateChoices])
def test_a_depthwise_conv_written_inline_is_accepted(cls):
    space, sup = cls.space(), cls.supernet().eval()
    x = torch.randn(2, 4, 8, 8)
    for w in (4, 8):
        sub = sup.subnet({"w": w}).eval()
        assert sub.dw.groups == sub.dw.in_channels == sub.dw.out_channels == 2 * w
        with torch.no_grad():
            assert torch.equal(sub(x), sup(x, {"w": w}))
    assert space.size() == 2
    with pytest.raises(SpaceDefinitionError, match="^dw.groups: a choice can set groups only for a depthwise conv"):
        Grouped.space()


def test_rng_draws_of_sample_subnet_are_unchanged():
    """sample_subnet feeds the sandwich rule: the per-scope ranks must not change its draws (pinned values)."""
    rng = np.random.default_rng(0)
    draws = [Unlabelled.space().sample_subnet(rng).to_dict() for _ in range(3)]
    rng = np.random.default_rng(0)
    space = Unlabelled.space()
    again = []
    for _ in range(3):  # the same draws, by the order the space's fields are visited (controllers first)
        d1, d2 = (int(rng.integers(2)) + 1 for _ in range(2))
        s1 = [{"op": int(rng.integers(2))} for _ in range(d1)]
        s2 = [{"op": int(rng.integers(2))} for _ in range(d2)]
        again.append({"d1": d1, "d2": d2, "s1": s1, "s2": s2})
    assert draws == again and space.validate(draws[0])


def test_a_choice_read_by_forward_fails_in_the_supernet_naming_the_line_without_input_shape(monkeypatch):
    monkeypatch.setattr(WidthInForward, "input_shape", None)
    sup = WidthInForward.supernet()  # derived: the label is a layer's decision
    with pytest.raises(SpaceDefinitionError, match=r"a choice is used as a plain number \(at .*test_nn_audit_fixes"):
        sup(torch.zeros(2, 1, 8, 8), {"w": 2})
