"""Few-shot NAS and NEAS edge cases (exploration 37): numpy option values and seeds are taken as the Python values
they stand for, seeds that `check_seed` accepts train, a diverged few-shot supernet stops with a ConfigError naming
`lr`, and bad `archs` or option types are refused naming the field."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from nas.errors import ConfigError, JournalError
from nas.few_shot import (FewShotOptions, PathMixing, SubSupernet, Subspace, gradient_similarity, search_few_shot,
                          train_few_shot)
from nas.neas import ChainConfig, ChainSpace, NeasOptions, search_neas, train_kpath
from nas.spaces.cell import NB201_EDGES, NasBench201Space

TINY = ChainConfig(stem_channels=4, channels=(4, 4, 8), strides=(2, 1, 2), kernels=(3, 5), expands=(1, 2),
                   head_channels=8)
NEAS = dict(warmup_epochs=1, epochs_per_round=0, rounds=1, drop=1, paths=8, groups=1, batch_size=16, calib_size=16,
            budget=2, strategy="random")
FEW = FewShotOptions(splitter="none", levels=0, epochs=1, batch_size=32, gm_batches=1, calibration_size=32)


@pytest.fixture(scope="module")
def images():
    """8x8 one-channel images, 10 classes, 64 per split."""
    g = torch.Generator().manual_seed(0)
    return {split: (torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g))
            for split in ("train", "valid", "test")}


def _signals(n: int = 32) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Signals for the chain space (4 classes), three splits."""
    g = torch.Generator().manual_seed(0)
    return {split: (torch.randn(n, 40, generator=g), torch.randint(0, 4, (n,), generator=g))
            for split in ("train", "valid", "test")}


def _cell() -> NasBench201Space:
    return NasBench201Space(input_shape=(1, 8, 8), channels=4, cells_per_stage=1, stages=1)


# ---------------------------------------------------------------------------------------- 1: a numpy flops_budget
def test_a_numpy_flops_budget_is_a_float_and_the_search_runs(one_thread):
    """`3 * np.median(flops)` was written into the constraint as 'np.float64(...)', which the parser refused."""
    space = ChainSpace(TINY)
    budget = np.float64(3.5) * space.flops(space.smallest())  # as np.median(...) of the subnets' FLOPs gives it
    assert type(NeasOptions(flops_budget=budget).flops_budget) is float
    result = search_neas(_signals(), TINY, seed=0, flops_budget=budget, **{**NEAS, "warmup_epochs": 0})
    assert result.best is not None and result.space.flops(result.best) <= budget


# ---------------------------------------------------------------------------------------- 2: a diverged supernet
def test_a_diverged_few_shot_supernet_stops_at_once_naming_lr(images, tmp_path, one_thread):
    """It trained the whole budget, then failed writing NaN split scores with a raw ValueError."""
    options = FewShotOptions(splitter="gradient", levels=1, epochs=20, batch_size=32, gm_batches=1,
                             calibration_size=32, lr=1e12, grad_clip=1e30, momentum=0.0)
    with pytest.raises(ConfigError, match=r"^lr: .*training loss is (nan|inf).* at step \d+") as caught:
        search_few_shot(_cell(), images, 2, options, workdir=tmp_path / "run")
    step = int(re.search(r"at step (\d+)", str(caught.value)).group(1))
    assert step < 10  # of 40: it stops at the first non-finite loss, not after the budget
    assert "1000000000000.0" in str(caught.value) and not (tmp_path / "run" / "few_shot.json").exists()
    lower = replace(options, lr=0.05)  # the rerun with a lower lr: the workdir holds no trial, and says so
    with pytest.raises(JournalError, match=r"holds a different search: its option lr is 1000000000000.0, this run's "
                                           r"is 0.05 .*; it holds no trial yet, so to run this search there, delete "
                                           r"it first$"):
        search_few_shot(_cell(), images, 2, lower, workdir=tmp_path / "run")


def test_gradient_matching_on_a_diverged_supernet_names_lr(images, one_thread):
    """NaN weights gave a NaN similarity matrix and split score, which no JSON file takes."""
    space = _cell()
    torch.manual_seed(0)
    net = space.supernet(mixing=PathMixing(len(NB201_EDGES)))
    with torch.no_grad():
        next(iter(net.weight_parameters())).fill_(float("nan"))
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.05)
    sub = SubSupernet(Subspace.full(space), net, opt, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"^lr: .*edge_0_1.*not finite"):
        gradient_similarity(sub, "edge_0_1", *images["train"], 1, 32)


# ---------------------------------------------------------------------------------------- 3 and 4: seeds
def test_a_numpy_seed_searches_as_its_python_int(images, tmp_path, one_thread):
    """Few-shot failed as 'config: not plain JSON data', naming no field."""
    result = search_few_shot(_cell(), images, 2, FEW, seed=np.int64(3), workdir=tmp_path / "run")
    header = json.loads((tmp_path / "run" / "journal.jsonl").read_text().splitlines()[0])
    assert header["config"]["seed"] == 3 and result.config["seed"] == 3
    plain = search_few_shot(_cell(), images, 2, FEW, seed=3)
    assert [t.metrics for t in result.trials] == [t.metrics for t in plain.trials]
    nets = train_few_shot(_cell(), images, FEW, seed=np.int64(3))
    assert nets.summary()["steps"] == 2


def test_a_numpy_seed_trains_neas_as_its_python_int(one_thread):
    """NEAS raised a raw TypeError from torch.Generator().manual_seed(np.int64(1) * 1000)."""
    data = _signals()
    a = search_neas(data, TINY, seed=np.int64(1), **NEAS)
    b = search_neas(data, TINY, seed=1, **NEAS)
    assert a.rounds[0].train_loss == b.rounds[0].train_loss and a.rounds[0].removed == b.rounds[0].removed


def test_every_seed_check_seed_accepts_trains_neas(one_thread):
    """2**62 passed check_seed, then seed * 1000 overflowed torch's generator ('Overflow when unpacking long long')."""
    result = search_neas(_signals(), TINY, seed=2 ** 62, **NEAS)
    assert result.rounds[0].train_loss is not None
    space = ChainSpace(TINY)
    x, y = _signals()["train"]
    options = NeasOptions(**NEAS)
    for seed in (2 ** 64 + 5, 5):  # train_kpath takes any non-negative int (a stage's seed is seed * 1000 + stage)
        torch.manual_seed(0)
        assert len(train_kpath(space.supernet(), space, x, y, 1, options, seed)) == 1


# ---------------------------------------------------------------------------------------- 5 and 7: option values
def test_numpy_few_shot_options_are_converted_and_journaled(images, tmp_path, one_thread):
    """np.float32 lr passed the options and failed at the journal as 'config: not plain JSON data'."""
    options = FewShotOptions(**{**FEW.to_dict(), "lr": np.float32(0.05), "epochs": np.int64(1),
                                "balanced": np.bool_(False)})
    assert (type(options.lr), type(options.epochs), options.balanced) == (float, int, False)
    result = search_few_shot(_cell(), images, 2, options, seed=0, workdir=tmp_path / "run")
    assert len(result.trials) == 2 and result.config["strategy_options"]["lr"] == float(np.float32(0.05))


@pytest.mark.parametrize("field, value", [
    ("momentum", "0.9"), ("parent_fraction", "0.5"), ("balanced", "no"), ("balanced", 1), ("levels", 1.0),
    ("lr_min", 0.5),  # above lr (0.01 below): the cosine schedule would rise
])
def test_a_bad_few_shot_option_type_is_refused_naming_it(field, value):
    """`momentum` and `parent_fraction` strings were raw TypeErrors, `balanced="no"` was taken as True."""
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        FewShotOptions(**{"splitter": "gradient", "levels": 1, "lr": 0.01, field: value})


# ---------------------------------------------------------------------------------------- 6: archs=[]
def test_an_empty_archs_list_is_refused_before_the_workdir_is_touched(images, tmp_path):
    """It journaled a budget of 0 that `nas status` reported as a finished search."""
    with pytest.raises(ConfigError, match=r"^archs: expected a positive number or a non-empty list"):
        search_few_shot(_cell(), images, [], FEW, workdir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    result = search_few_shot(_cell(), images, np.int64(1), FEW)  # a numpy count is a count
    assert len(result.trials) == 1
