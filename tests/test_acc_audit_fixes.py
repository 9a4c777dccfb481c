"""Fixes from the audit of MPC latency, accelerator co-exploration, precision search and the DARTS family: functional
ops the MPC model cannot see, MultiheadAttention's projections and the model's state in `module_workloads`, DARTS
settings refused before training (warm-up, batch size, a zero latency cost, labels) and an evaluator's metric names,
activations simulated at the width they are priced at, HAWQ leaving the modes alone, BatchNorm's counter in
`model_size`, and `CoExploration`'s metric names and all-skip networks."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nas
from nas import nn as nnn
from nas.darts import DartsOptions, _to_record, search_darts
from nas.datasets import digits_splits
from nas.errors import ConfigError
from nas.hardware import (CoExploration, FakeQuant, hessian_top_eigenvalue, hessian_trace, layer_sensitivity,
                          model_size, pack_model, quantize, quantize_model)
from nas.hardware.accelerator import module_workloads
from nas.hardware.hawq import hessian_vector_product
from nas.hardware.mpc import MPCLatency, mpc_ops
from nas.hardware.quantization import FORMATS
from nas.spaces.cell import NasBench201Space
from nas.spaces.transformer import SelfAttention
from nas.strategies.oneshot import OneShotTrainer
from nas.strategies.oneshot_latency import EdgeCosts
from nas.strategies.oneshot_modules import ModuleOneShotTrainer

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = DartsOptions(batch_size=16, retrain_epochs=1, a_lr=3e-3)


@pytest.fixture(scope="module")
def data():
    return {k: (x[:32], y[:32]) for k, (x, y) in digits_splits(seed=0).items()}


def tiny_nb201(**kw) -> NasBench201Space:
    return NasBench201Space(channels=4, cells_per_stage=1, stages=2, **kw)


def modes(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


# ---------------------------------------------------------------------------------------- 1. MPC functional ops
class Tokens(nn.Module):
    """Token ids -> embeddings -> a block (MPCLatency feeds token ids)."""

    def __init__(self, block: nn.Module, d: int = 16) -> None:
        super().__init__()
        self.tokens, self.block = nn.Embedding(10, d), block

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.block(self.tokens(t))


class HandAttention(nn.Module):
    """q/k/v/o projections and a functional softmax over q k^T."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.softmax(self.q(x) @ self.k(x).transpose(-2, -1) / 4.0, dim=-1)
        return self.o(w @ self.v(x))


class Gated(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(d, 64), nn.Linear(64, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.up(x)))


class Product(nn.Module):
    """A gated unit: the product of two secret values, and a division by one."""

    def __init__(self, d: int = 16, divide: bool = False) -> None:
        super().__init__()
        self.a, self.b, self.divide = nn.Linear(d, d), nn.Linear(d, d), divide

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) / self.b(x) if self.divide else self.a(x) * self.b(x)


class LocalOnly(nn.Module):
    """Residual, public scaling, public masking and mean pooling around costed layers: all local."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.lin, self.norm, self.act = nn.Linear(d, d), nn.LayerNorm(d), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(x.shape[:2], dtype=torch.bool)
        y = x + 0.5 * self.act(self.lin(self.norm(x)))
        y = y.masked_fill(~mask[..., None], 0.0)
        return (y * mask[..., None].float()).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)


class Wrap(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.attn = SelfAttention(d, 1, d, kind="softmax")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, torch.ones(x.shape[:2], dtype=torch.bool))


@pytest.mark.parametrize("block, op", [(HandAttention(), "aten.bmm"), (Gated(), "aten.silu"),
                                       (Product(), "aten.mul"), (Product(divide=True), "aten.div")])
def test_mpc_refuses_arithmetic_no_costed_module_accounts_for(block, op):
    """Old code: F.softmax, F.silu, secret products cost nothing (5 rounds for a hand-written attention)."""
    with pytest.raises(ConfigError, match=rf"^block \({type(block).__name__}\.forward\): no MPC cost for {op}\b"):
        MPCLatency(None, "wan", seq_len=8)(Tokens(block))


def test_a_floating_point_input_is_secret_too():
    with pytest.raises(ConfigError, match=r"^model \(Gated\.forward\): no MPC cost for aten\.silu"):
        mpc_ops(Gated(), torch.randn(1, 4, 16))


def test_mpc_still_prices_local_arithmetic_and_the_builtin_attention_and_keeps_modes():
    mpc = MPCLatency(None, "wan", seq_len=8)
    local = mpc.report(Tokens(LocalOnly()))
    assert [op.kind for op in local.ops] == ["embedding", "layer_norm", "matmul", "relu"]
    assert mpc(Tokens(Wrap()))["mpc_rounds"] > 50  # the package's SelfAttention: its softmax is costed
    model = Tokens(Wrap()).train()
    model.block.attn.eval()  # a caller's mixed modes come back as they were
    before = modes(model)
    mpc_ops(model, torch.ones(1, 4, dtype=torch.long))
    assert modes(model) == before


# ---------------------------------------------------------------------------------------- 2, 5. module_workloads
def test_module_workloads_prices_multihead_attention_projections():
    """Old code: in_proj and out_proj missing (only linear1 / linear2 of a TransformerEncoderLayer)."""
    d, ff, n = 64, 256, 16
    layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=ff, batch_first=True)
    gemms = module_workloads(layer, torch.randn(1, n, d))
    assert [(g.name, g.m, g.n, g.k) for g in gemms] == [("self_attn.in_proj", n, 3 * d, d),
                                                        ("self_attn.out_proj", n, d, d),
                                                        ("linear1", n, ff, d), ("linear2", n, d, ff)]
    assert sum(g.macs for g in gemms) == n * (3 * d * d + d * d + 2 * d * ff)
    cross = nn.MultiheadAttention(d, 4, kdim=32, vdim=48, batch_first=True)
    q, k, v = torch.randn(2, 5, d), torch.randn(2, 7, 32), torch.randn(2, 7, 48)
    assert [(g.name, g.m, g.n, g.k) for g in module_workloads(cross, (q, k, v))] == [
        ("MultiheadAttention.q_proj", 10, d, d), ("MultiheadAttention.k_proj", 14, d, 32),
        ("MultiheadAttention.v_proj", 14, d, 48), ("MultiheadAttention.out_proj", 10, d, d)]


def test_module_workloads_names_weights_it_cannot_map(caplog):
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
    net.add_module("rnn", nn.GRUCell(8, 8))
    with caplog.at_level(logging.WARNING, logger="nas.hardware.accelerator"):
        gemms = module_workloads(net, torch.randn(2, 4))
    assert [g.name for g in gemms] == ["0"] and "rnn (GRUCell)" in caplog.text


def test_module_workloads_leaves_batch_norm_statistics_and_modes_alone():
    """Old code: a model in training mode had its running statistics overwritten by the example input."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    net.train()
    net(torch.randn(16, 3, 8, 8) * 2 + 1)
    net[4].eval()
    state, before = {k: v.clone() for k, v in net.state_dict().items()}, modes(net)
    module_workloads(net, torch.zeros(4, 3, 8, 8))
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert modes(net) == before


# ---------------------------------------------------------------------------------------- 3. warm-up
def test_warmup_of_all_epochs_is_refused_before_training(data, tmp_path):
    """Old code: the alphas never moved, and their random initial argmax was journaled as the result."""
    with pytest.raises(ConfigError, match=r"^warmup_epochs: 3 >= epochs \(3\)"):
        DartsOptions(epochs=3, warmup_epochs=3)
    with pytest.raises(ConfigError, match=r"^warmup_epochs: 15 >= epochs \(2\)"):
        search_darts(tiny_nb201(), data, epochs=2, workdir=tmp_path / "w", options=DartsOptions(warmup_epochs=15))
    assert DartsOptions(epochs=3, warmup_epochs=2).warmup_epochs == 2


def test_record_epochs_leaves_out_the_warm_up_epochs():
    history = list(range(1, 6))  # epochs 1..5
    assert _to_record(history, "epochs", None, 2) == [3, 4, 5]  # old code: all five
    assert _to_record(history, "epochs", 2, 3) == [2]  # DARTS-ES picked a warm-up epoch: that one
    assert _to_record(history, "final", None, 2) == [5]


# ---------------------------------------------------------------------------------------- 4. metric names
def test_an_evaluator_without_the_objective_is_refused_and_the_workdir_resumes(data, tmp_path):
    """Old code: journaled 'ok' without accuracy; the search counted as finished with an empty front."""
    wd, epochs = tmp_path / "typo", []
    with pytest.raises(ConfigError, match=r"objective 'accuracy' is not among the metrics evaluate returned "
                                          r"\(acc, "):
        search_darts(tiny_nb201(), data, epochs=1, seed=0, workdir=wd, options=FAST,
                     evaluate=lambda arch: {"acc": 0.5}, progress=epochs.append)
    assert len(epochs) == 1 and nas.load(wd).trials == []
    result = search_darts(tiny_nb201(), data, epochs=1, seed=0, workdir=wd, options=FAST,
                          evaluate=lambda arch: {"accuracy": 0.5}, progress=epochs.append)
    assert len(epochs) == 1  # resumed from the checkpoint, not retrained
    assert result.best() is not None and result.best().metrics["accuracy"] == 0.5


# ---------------------------------------------------------------------------------------- 6. batch size
def test_batch_size_one_is_refused_before_training_with_the_default_evaluator(data, tmp_path):
    """Old code: every epoch trained, then PlainTraining.batch_size failed and the workdir was stuck."""
    epochs = []
    with pytest.raises(ConfigError, match=r"^batch_size: .*at least 2"):
        search_darts(tiny_nb201(), data, epochs=1, workdir=tmp_path / "b1", progress=epochs.append,
                     options=DartsOptions(batch_size=1, retrain_epochs=1))
    assert epochs == [] and not (tmp_path / "b1" / "oneshot.pt").exists()
    result = search_darts(tiny_nb201(), data, epochs=1, workdir=tmp_path / "b1", options=FAST)
    assert result.best() is not None  # the same workdir takes the corrected run


# ---------------------------------------------------------------------------------------- 8. zero latency cost
@pytest.mark.parametrize("method", ["darts", "proxyless"])
def test_a_latency_loss_over_free_ops_is_refused_before_training(data, tmp_path, method):
    """Old code: NaN alphas, then a JSON error (darts) or torch.multinomial's (proxyless) after training."""
    epochs = []
    options = DartsOptions(batch_size=16, retrain_epochs=1, latency="flops", latency_weight=1.0)
    with pytest.raises(ConfigError, match=r"^latency_weight: 1.0 .*every candidate op costs 0 by latency='flops'"):
        search_darts(tiny_nb201(ops=("none", "skip_connect")), data, method=method, epochs=1,
                     workdir=tmp_path / method, options=options, progress=epochs.append)
    assert epochs == []
    zero = EdgeCosts({"cell": torch.zeros(6, 2)}, "flops", "mflops")
    with pytest.raises(ConfigError, match="latency_weight"):
        OneShotTrainer(tiny_nb201(ops=("none", "skip_connect")), options, costs=zero)
    unweighted = OneShotTrainer(tiny_nb201(ops=("none", "skip_connect")), FAST, costs=zero)
    assert unweighted.cost_scale == 0.0  # no latency loss, nothing divided


# ---------------------------------------------------------------------------------------- labels
def test_labels_beyond_the_models_classes_are_refused_before_training(data, tmp_path):
    """Old code: torch's IndexError at the first step."""
    bad = {**data, "valid": (data["valid"][0], torch.full_like(data["valid"][1], 10))}
    epochs = []
    with pytest.raises(ConfigError, match=r"^data\['valid'\]: labels must be class indices 0\.\.9 \(the model has "
                                          r"10 outputs\), got labels from 10 to 10"):
        search_darts(tiny_nb201(), bad, epochs=1, workdir=tmp_path / "l", options=FAST, progress=epochs.append)
    assert epochs == []
    negative = {**data, "train": (data["train"][0], data["train"][1] - 1)}
    with pytest.raises(ConfigError, match=r"^data\['train'\]: labels must be class indices .* from -1 to"):
        search_darts(tiny_nb201(), negative, epochs=1, options=FAST)


class SevenClasses(nnn.ModelSpace):
    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.mix = nnn.LayerChoice({"conv": nn.Conv2d(1, 2, 3, padding=1), "wide": nn.Conv2d(1, 2, 5, padding=2)},
                                   label="mix")
        self.head = nn.Linear(2 * 64, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.mix(x), 1))


def test_a_user_models_class_count_comes_from_a_copy_of_its_supernet(data):
    with pytest.raises(ConfigError, match=r"^data\['train'\]: labels must be class indices 0\.\.6 "):
        search_darts(SevenClasses.space(), data, epochs=1, options=FAST)  # digits has labels 7, 8, 9
    trainer = ModuleOneShotTrainer(SevenClasses.space(), DartsOptions(method="proxyless", batch_size=8), seed=0)
    gates, state = trainer.gate_generator.get_state(), {k: v.clone() for k, v in trainer.supernet.state_dict().items()}
    assert trainer.num_classes() == 7
    assert torch.equal(gates, trainer.gate_generator.get_state())
    assert all(torch.equal(state[k], v) for k, v in trainer.supernet.state_dict().items())


# ---------------------------------------------------------------------------------------- 7. activation width
@pytest.mark.parametrize("fmt, act", [("int2", "int8"), ("int4", "int8"), ("int8", "int8"), ("fp8-e4m3", "fp8-e4m3"),
                                      ("fp8-e5m2", "fp8-e5m2"), ("fp32", "fp32")])
def test_fake_quant_activations_use_the_width_the_cost_model_charges(fmt, act):
    """Old code: int4 / int2 layers saw 4-bit / ternary inputs while precision_cost charged 8-bit ones."""
    torch.manual_seed(0)
    layer, x = nn.Linear(16, 4), torch.randn(8, 16)
    fq = FakeQuant(layer, fmt, activations=True)
    xq = quantize(x.reshape(1, -1), act).reshape(x.shape)
    torch.testing.assert_close(fq(x), F.linear(xq, quantize(layer.weight.detach(), fmt), layer.bias))
    model = quantize_model(nn.Sequential(layer), {"0": fmt}, activations=True)
    torch.testing.assert_close(model(x), fq(x))
    from nas.hardware.quantization import activation_format

    assert activation_format(fmt) is FORMATS[act] and FORMATS[fmt].activation_bits == min(FORMATS[act].bits, 32)


# ---------------------------------------------------------------------------------------- 9. HAWQ modes
def test_hawq_functions_restore_every_modules_mode():
    """Old code: the model (its Dropout and BatchNorm) was left in eval mode."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    x, y = torch.randn(32, 16), torch.randint(0, 3, (32,))
    net.train()
    net[4].eval()
    before = modes(net)
    layer_sensitivity(net, F.cross_entropy, (x, y), samples=2, seed=0)
    assert modes(net) == before
    hessian_top_eigenvalue(net, F.cross_entropy, (x, y), iterations=2)
    hessian_trace(net, F.cross_entropy, (x, y), samples=2)
    ps = [net[1].weight]
    hessian_vector_product(net, F.cross_entropy, (x, y), ps, [torch.ones_like(ps[0])])
    assert modes(net) == before


# ---------------------------------------------------------------------------------------- 10. model_size exact
@pytest.mark.parametrize("formats", [{"0": "int8", "4": "int4"}, {"0": "int2"}, {}, {"4": "fp8-e5m2"}])
def test_model_size_is_the_packed_state_dict_of_a_conv_net_with_batch_norm(formats):
    """Old code: 64 bits short per BatchNorm (its int64 num_batches_tracked)."""
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10),
                        nn.BatchNorm1d(10))
    net.register_buffer("scratch", torch.zeros(5), persistent=False)  # not stored, not counted
    size = model_size(net, formats)
    packed = pack_model(net, formats)
    assert size.total_bits == sum(8 * t.numel() * t.element_size() for t in packed.state_dict().values())


# ---------------------------------------------------------------------------------------- co-exploration
ARCHS = {"a_link": "0-1-2-3", "a_op1": "fc", "a_op2": "gat", "a_op3": "fc", "a_op4": "gin",
         "b_link": "0-1-1-2", "b_op1": "gat", "b_op2": "fc", "b_op3": "sage", "b_op4": "arma"}


def test_fit_hardware_names_a_misspelt_metric_or_a_missing_field():
    """Old code: a bare KeyError, or (no feasible design) a misspelt objective silently accepted."""
    co = CoExploration(pe_fractions=(0.5,), bw_fractions=(0.5,), buffers_kb=(256,), templates=("ws",))
    assert co.fit_hardware(ARCHS, ["area_mm2 <= 100"])[2] == 1
    with pytest.raises(ConfigError, match=r"^objective: 'energy' is not a hardware metric \(known: area_mm2, "):
        co.fit_hardware(ARCHS, ["area_mm2 <= 0.1"], objective="energy")
    with pytest.raises(ConfigError, match=r"^constraints: 'latency_ms <= 10' names 'latency_ms'"):
        co.fit_hardware(ARCHS, ["latency_ms <= 10"])
    with pytest.raises(ConfigError, match=r"^archs: b_op4: missing"):
        co.fit_hardware({k: v for k, v in ARCHS.items() if k != "b_op4"}, [])


def test_an_all_skip_network_fails_its_trial_saying_why():
    """Old code: the table's bare 'not in the table' LookupError."""
    co = CoExploration()

    def table(arch):
        if all(arch[f"op{i}"] == "skip" for i in range(1, 5)):
            raise LookupError(f"architecture {arch} is not in the table")
        return {"valid_acc": 0.5, "test_acc": 0.5}

    hardware = {"a_template": "ws", "b_template": "ws", "pe_split": 0.5, "bw_split": 0.5, "a_buffer_kb": 256,
                "b_buffer_kb": 256}
    skip = {**ARCHS, "b_link": "0-0-0-0", **{f"b_op{i}": "skip" for i in range(1, 5)}, **hardware}
    assert co.space().validate(skip)  # in the space, as in NASBenchGraphSpace
    with pytest.raises(LookupError, match=r"^task b: every op is skip, a network without a GNN layer"):
        co.evaluator((table, table))(skip)
    assert co.evaluator((table, table))({**ARCHS, **hardware})["valid_acc"] == 0.5

    def broken(arch):
        raise LookupError("table file missing")

    with pytest.raises(LookupError, match="^table file missing$"):  # any other lookup failure passes unchanged
        co.evaluator((broken, table))({**ARCHS, **hardware})
