"""Regression tests for audit items 3 (precision count), 5 (proxy from_journals) and 7 (MPC max pooling)."""

from pathlib import Path

import pytest

import nas
from nas.counts import count_flops, count_params
from nas.errors import ConfigError
from nas.gym import CNN1dSpace, ProxyCostModel
from nas.hardware import CostModel, PrecisionMLPConfig, PrecisionMLPSpace
from nas.hardware.mpc import CRYPTEN, MPCLatency, row_max
from nas.spaces.transformer import FlexiBertConfig, FlexiBertSpace


# ------------------------------------------------------------------ 3: PrecisionMLPSpace.count
def test_precision_count_includes_packed_weights_whatever_the_format():
    """Every format reports the network's 8970 weights and biases, and the packed network's FLOPs."""
    space = PrecisionMLPSpace(PrecisionMLPConfig(hidden=(64, 64)))
    weights = 64 * 64 + 64 * 64 + 64 * 10 + 64 + 64 + 10
    for fmt in ("fp32", "int8", "int4", "fp8-e4m3"):
        arch = space.validate({"hidden": [{"width": 1.0, "format": fmt}] * 2, "head_format": fmt})
        counts = space.count(arch, batch_size=3)
        assert counts["params"] == weights
        assert counts["flops"] == count_flops(space.build(arch), space.example_input(arch, 3))["flops"]
        assert counts["macs"] == counts["flops"] // 2
        assert count_params(space.build(arch)) == weights  # the packed network itself, as CostModel counts it
        assert CostModel(space, device="jetson_orin_nano")(arch)["params"] == weights


# ------------------------------------------------------------------ 5: ProxyCostModel.from_journals
def _params(arch):
    return {"params": float(sum(b["width"] * b["kernel"] for b in arch["blocks"]))}


@pytest.fixture(scope="module")
def journals(tmp_path_factory):
    """An unrelated journal in `a/old` and the one meant in `abc/run`, below one root."""
    root = tmp_path_factory.mktemp("proxy")
    space = CNN1dSpace(blocks=2)
    nas.search(space, lambda a: {"other": -1.0}, {"other": "max"}, strategy="random", budget=3, seed=1,
               workdir=root / "a" / "old")
    nas.search(space, _params, {"params": "max"}, strategy="random", budget=12, seed=0, workdir=root / "abc" / "run")
    return space, root


def test_from_journals_takes_one_folder_as_a_string_or_path(journals, monkeypatch):
    space, root = journals
    monkeypatch.chdir(root)
    for workdir in ("abc", root / "abc", str(root / "abc")):
        proxy = ProxyCostModel.from_journals(space, workdir, ["params"], n_estimators=5)
        assert proxy.n_train == 12 and proxy.source == "12 trials in 1 journals"
    assert ProxyCostModel.from_journals(space, ["abc"], "params", n_estimators=5).metrics == ["params"]


def test_from_journals_names_a_missing_folder_journal_or_metric(journals, monkeypatch):
    space, root = journals
    monkeypatch.chdir(root)
    (root / "empty").mkdir(exist_ok=True)
    with pytest.raises(ConfigError, match=r"^workdirs: '/nonexistent/logs' is not a folder"):
        ProxyCostModel.from_journals(space, "/nonexistent/logs", ["params"])
    with pytest.raises(ConfigError, match=r"^workdirs\[1\]: no journal.jsonl in or below 'empty'"):
        ProxyCostModel.from_journals(space, ["abc", Path("empty")], ["params"])
    with pytest.raises(ConfigError, match=r"^workdirs: expected at least one folder"):
        ProxyCostModel.from_journals(space, [], ["params"])
    with pytest.raises(ConfigError, match=r"^metrics: no finished trial records 'param' \(recorded: params\)"):
        ProxyCostModel.from_journals(space, "abc", ["param"])
    with pytest.raises(ConfigError, match=r"^metrics: no finished trial records all of 'params', 'other'"):
        ProxyCostModel.from_journals(space, ".", ["params", "other"])
    with pytest.raises(ConfigError, match=r"^metrics: expected one or more metric names"):
        ProxyCostModel.from_journals(space, "abc", [])


# ------------------------------------------------------------------ 7: MPC max pooling and seq_len
KW = dict(vocab_size=100, max_len=16, ops=("attention",), depths=(2,), hidden=(16,), heads=(2,), ffn_depths=(1,),
          ffn_dims=(32,))
LAYER = {"op": "attention", "hidden": 16, "heads": 2, "ffn_depth": 1, "ffn": [{"dim": 32}]}
ARCH = {"depth": 2, "layers": [LAYER, LAYER]}


def test_mpc_costs_the_max_pooling_of_mean_max():
    """mean_max = mean + a row max over the 16 tokens per feature (placed after the final norm) + a wider head."""
    mean = MPCLatency(FlexiBertSpace(FlexiBertConfig(pooling="mean", **KW)), "wan").report(ARCH)
    both = MPCLatency(FlexiBertSpace(FlexiBertConfig(pooling="mean_max", **KW)), "wan").report(ARCH)
    pool = row_max(CRYPTEN, 16, 16)
    assert mean.total.rounds == 284 and both.total.rounds == 284 + pool.rounds == 320
    kinds = [(op.module, op.kind) for op in both.ops]
    assert kinds[-3:] == [("norm", "layer_norm"), ("max_pool", "max_pool"), ("head", "matmul")]
    assert both.ops[-2].cost == pool
    head = both.ops[-1].cost.bytes - mean.ops[-1].cost.bytes  # the head reads 2 x 16 pooled features
    assert both.total.bytes == pytest.approx(mean.total.bytes + pool.bytes + head)
    assert "max_pool" not in mean.by_kind()


@pytest.mark.parametrize("seq_len", [0, -3, 2.0, True, "8"])
def test_mpc_seq_len_must_be_a_positive_int(seq_len):
    with pytest.raises(ConfigError, match=r"^seq_len: expected a positive int"):
        MPCLatency(FlexiBertSpace(FlexiBertConfig(**KW)), seq_len=seq_len)
    assert MPCLatency(FlexiBertSpace(FlexiBertConfig(**KW)), seq_len=None).seq_len == 16
