"""Edge cases of the one-shot (DARTS-family) search found in exploration 37: DARTS-ES inside the warm-up and on a
near-zero eigenvalue of either sign, numpy seeds and option values, annealing schedules that run upward, and a
latency table given to a search that uses none."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.darts import DartsOptions, search_darts, search_state
from nas.errors import ConfigError
from nas.spaces.cell import NasBench201Space
from nas.strategies.oneshot import EpochRecord, OneShotTrainer, darts_es_stop

FAST = DartsOptions(batch_size=32, retrain_epochs=1)
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_nb201() -> NasBench201Space:
    return NasBench201Space(channels=4, cells_per_stage=1, stages=2)


def constant(arch: object) -> dict[str, float]:
    """An evaluator that skips the stand-alone retraining (these tests are about the search)."""
    return {"accuracy": 0.5}


# ---------------------------------------------------------------------------------------- 1. DARTS-ES and warm-up
def test_darts_es_skips_the_warm_up_epochs():
    """Old code: a growing eigenvalue during the warm-up (alphas fixed) stopped at epoch 2 and returned epoch 1."""
    options = DartsOptions(epochs=8, warmup_epochs=3, early_stop="eigenvalue", es_window=1, es_lag=1)
    trainer = OneShotTrainer(tiny_nb201(), options, seed=0)
    stops = []
    for epoch, eig in enumerate([1.0, 2.0, 4.0, 8.0, 16.0], start=1):
        trainer.history.append(EpochRecord(epoch, 0, 0, 0, 0, {}, {}, {}, 0, 0, eigenvalue=eig))
        stops.append(trainer.early_stop_epoch())
    assert stops == [None, None, None, None, 4]  # epochs 4 and 5 compared: 8 / 16 < 0.75, return epoch 4
    assert darts_es_stop([1.0, 2.0, 4.0], 1, 1, 0.75, warmup=2) is None  # one epoch after the warm-up
    assert darts_es_stop([1.0, 2.0, 4.0, 8.0], 1, 1, 0.75, warmup=2) == 3


def test_darts_es_search_never_journals_a_warm_up_epoch(digits64, tmp_path, monkeypatch):
    """Old code: journaled epoch 1, whose alphas were the random initial ones, with record="epochs" and "final"."""
    growing = iter(float(2 ** i) for i in range(100))
    monkeypatch.setattr(OneShotTrainer, "hessian_eigenvalue", lambda self, x, y: next(growing))
    init = OneShotTrainer(tiny_nb201(), FAST, seed=0).supernet.alphas["cell"].detach().tolist()
    options = DartsOptions(batch_size=32, a_lr=0.1, early_stop="eigenvalue", es_window=1, es_lag=1,
                           warmup_epochs=2, record="epochs")
    result = search_darts(tiny_nb201(), digits64, epochs=5, workdir=tmp_path, seed=0, options=options,
                          evaluate=constant)
    assert result.stop_reason == "early-stopped at epoch 4"
    assert [t.extra["epoch"] for t in result.trials] == [3]
    assert result.trials[0].extra["alphas"]["cell"] != init
    finished, words = search_state(tmp_path, result.config, result.trials)
    assert finished and "DARTS-ES picked epoch 3" in words


# ---------------------------------------------------------------------------------------- 2. the largest eigenvalue
def test_darts_es_compares_only_positive_smoothed_eigenvalues():
    """Old code: a negative value followed by a smaller positive one (the magnitude shrank) stopped the search."""
    assert darts_es_stop([-1.0, 0.9], 1, 1, 0.75) is None
    assert darts_es_stop([-0.0002, 0.0006], 1, 1, 0.75) is None
    assert darts_es_stop([0.5, 0.9], 1, 1, 0.75) == 1  # growth of a positive curvature still stops


class Saddle(nn.Module):
    """Stands in for a supernet: the loss softplus(a^T A a / 2) has Hessian A / 2 = diag(-3, 1) at a = 0, so the
    eigenvalue of largest magnitude is -3 and the largest is 1."""

    def __init__(self) -> None:
        super().__init__()
        self.alphas = {"cell": nn.Parameter(torch.zeros(1, 2))}
        self.register_buffer("a", torch.tensor([-6.0, 2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alphas["cell"].view(-1)
        q = 0.5 * (alpha * self.a * alpha).sum()
        return torch.stack([q, torch.zeros(())]).expand(len(x), 2)  # label 1: cross entropy = softplus(q)


def test_hessian_eigenvalue_is_the_largest_not_the_largest_in_magnitude():
    """Old code: plain power iteration returned -3, the eigenvalue of largest magnitude."""
    trainer = OneShotTrainer(tiny_nb201(), DartsOptions(hessian_iters=8), seed=0)
    trainer.supernet = Saddle()  # type: ignore[assignment]
    x, y = torch.zeros(4, 1), torch.ones(4, dtype=torch.long)
    assert F.cross_entropy(trainer.supernet(x), y).item() == pytest.approx(float(np.log(2)))
    assert trainer.hessian_eigenvalue(x, y) == pytest.approx(1.0, abs=1e-3)
    trainer.supernet.a.copy_(torch.tensor([6.0, -2.0]))  # largest 3, also the largest in magnitude
    assert trainer.hessian_eigenvalue(x, y) == pytest.approx(3.0, abs=1e-3)


# ---------------------------------------------------------------------------------------- 3. numpy seeds
def test_a_numpy_seed_is_taken_as_its_int(digits64):
    """Old code: TypeError: an integer is required, from torch.Generator().manual_seed(seed + 1)."""
    trainer = OneShotTrainer(tiny_nb201(), FAST, seed=np.arange(4)[3])
    assert type(trainer.seed) is int and trainer.seed == 3
    same = OneShotTrainer(tiny_nb201(), FAST, seed=3)
    assert torch.equal(trainer.supernet.alphas["cell"], same.supernet.alphas["cell"])
    result = search_darts(tiny_nb201(), digits64, epochs=1, seed=np.int64(3), options=FAST, evaluate=constant)
    assert result.config["seed"] == 3 and type(result.config["seed"]) is int
    with pytest.raises(ConfigError, match=r"^seed: expected a non-negative int"):
        OneShotTrainer(tiny_nb201(), FAST, seed=-1)


# ---------------------------------------------------------------------------------------- 4. numpy option values
def test_numpy_numbers_in_the_options_are_taken_as_python_values():
    """Old code: numpy ints were refused ("epochs: expected a positive int, got np.int64(3)") and a float32 was kept,
    failing later as "config: not plain JSON data" without naming the field."""
    options = DartsOptions(epochs=np.int64(3), batch_size=np.int64(32), es_window=np.int32(2), w_lr=np.float32(0.01),
                           warmup_epochs=np.int64(1), track_eigenvalue=np.bool_(True))
    assert (options.epochs, options.batch_size, options.es_window, options.warmup_epochs) == (3, 32, 2, 1)
    assert type(options.epochs) is int and type(options.w_lr) is float and options.track_eigenvalue is True
    assert options.w_lr == pytest.approx(0.01)
    json.dumps(options.to_dict())  # plain JSON, as the journal needs
    with pytest.raises(ConfigError, match=r"^epochs: expected a positive int, got 0"):
        DartsOptions(epochs=np.int64(0))


# ---------------------------------------------------------------------------------------- 5. reversed schedules
def test_schedules_that_anneal_upward_are_refused_naming_both_fields():
    """Old code: accepted, and the temperature and learning rate rose over the search."""
    with pytest.raises(ConfigError, match=r"^tau_max, tau_min: .*tau_max \(0\.1\) < tau_min \(10\)"):
        DartsOptions(method="gumbel-hard", tau_max=0.1, tau_min=10)
    with pytest.raises(ConfigError, match=r"^w_lr, w_lr_min: .*w_lr \(0\.001\) < w_lr_min \(0\.5\)"):
        DartsOptions(w_lr=0.001, w_lr_min=0.5)
    held = DartsOptions(method="gumbel-hard", tau_max=1.0, tau_min=1.0, w_lr=0.01, w_lr_min=0.01)  # constant: fine
    assert (held.tau_max, held.w_lr_min) == (1.0, 0.01)


# ---------------------------------------------------------------------------------------- 6. an unused latency table
@pytest.mark.parametrize("latency", ["auto", "flops", "off"])
def test_a_latency_table_the_search_does_not_use_is_refused(digits64, tmp_path, latency):
    """Old code: ignored (even a path to no file), and no latency_ms was reported."""
    options = DartsOptions(batch_size=32, retrain_epochs=1, latency=latency)
    with pytest.raises(ConfigError, match=rf"^latency_table: given, but .*latency='{latency}'"):
        search_darts(tiny_nb201(), digits64, method="darts", epochs=1, workdir=tmp_path, options=options,
                     latency_table=tmp_path / "nonexistent.jsonl")
    assert not (tmp_path / "journal.jsonl").exists()
