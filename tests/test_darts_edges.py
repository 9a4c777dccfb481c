"""Edge cases of the one-shot (DARTS-family) search: divergence, an evaluator's bad metrics, option checks, a
one-stage DARTS space, InputChoices that concatenate all inputs or pick k under sampled paths, and the cell
spaces' deterministic example input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import nas
from nas import nn as nnn
from nas.darts import DartsOptions, search_darts
from nas.errors import ConfigError
from nas.spaces.cell import DartsSpace, NasBench201Space
from nas.strategies.oneshot import OneShotTrainer
from nas.strategies.oneshot_modules import ModuleOneShotTrainer

FAST = DartsOptions(batch_size=32, retrain_epochs=1, a_lr=3e-3, latency="off")
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_nb201() -> NasBench201Space:
    return NasBench201Space(channels=4, cells_per_stage=1, stages=2)


class Concat(nnn.ModelSpace):
    """An InputChoice that concatenates both of its inputs (k == n: a trivial decision) after a LayerChoice."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nnn.Conv2d(1, 4, 3, padding=1)
        self.op = nnn.LayerChoice({"conv": nnn.Conv2d(4, 4, 3, padding=1), "skip": nn.Identity()}, label="op")
        self.ic = nnn.InputChoice(2, 2, reduction="concat", label="ic")
        self.head = nnn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.stem(x)
        return self.head(self.ic([a, self.op(a)]).mean(dim=(2, 3)))


class PickTwo(nnn.ModelSpace):
    """An InputChoice summing 2 of 3 inputs."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nnn.Conv2d(1, 4, 3, padding=1)
        self.op = nnn.LayerChoice({"conv": nnn.Conv2d(4, 4, 3, padding=1), "skip": nn.Identity()}, label="op")
        self.ic = nnn.InputChoice(3, 2, reduction="sum", label="ic")
        self.head = nnn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.stem(x)
        b = self.op(a)
        return self.head(self.ic([a, b, torch.relu(b)]).mean(dim=(2, 3)))


# -- (1) divergence
def test_non_finite_inputs_stop_the_search_naming_the_split_and_epoch(digits64, tmp_path):
    x, y = digits64["train"]
    x = x.clone()
    x[0, 0, 0, 0] = math.nan
    with pytest.raises(ConfigError, match=r"^data\['train'\]: the inputs hold NaN or infinite values \(clean"):
        search_darts(tiny_nb201(), {**digits64, "train": (x, y)}, epochs=2, workdir=tmp_path, options=FAST)
    assert not (tmp_path / "oneshot.pt").exists()  # refused before training
    trainer = OneShotTrainer(tiny_nb201(), FAST, seed=0)  # a trainer driven directly checks what it trains on
    with pytest.raises(ConfigError, match=r"^data\['train'\]: the inputs hold NaN .* diverged at epoch 1, batch \d"):
        trainer.train_epoch({**digits64, "train": (x, y)})


def test_diverged_alphas_stop_the_epoch_naming_it_and_the_step_sizes(digits64):
    trainer = OneShotTrainer(tiny_nb201(), FAST, seed=0)
    trainer.train_epoch(digits64)
    with torch.no_grad():
        trainer.supernet.alphas["cell"][0, 0] = math.nan
    with pytest.raises(ConfigError, match=r"diverged at epoch 2, batch 1 \(the train loss is nan and the architecture "
                                          r"parameters are not finite\); lower w_lr"):
        trainer.train_epoch(digits64)
    assert len(trainer.history) == 1


# -- (2) an evaluator's metrics
@pytest.mark.parametrize("value, error", [
    (math.nan, "non-finite accuracy = nan"), (math.inf, "non-finite accuracy = inf"),
    ("0.5", "'accuracy' = '0.5': str is not a number"), (None, "'accuracy' = None: NoneType is not a number")])
def test_an_evaluators_bad_metric_fails_the_trial_as_in_nas_search(digits64, tmp_path, value, error):
    result = search_darts(tiny_nb201(), digits64, epochs=1, workdir=tmp_path, options=FAST,
                          evaluate=lambda arch: {"accuracy": value})
    (trial,) = result.trials
    assert trial.status == "failed" and error in trial.error and result.best() is None
    assert trial.metrics["flops"] > 0  # the search's own counts are kept
    again = nas.load(tmp_path).trials
    assert [t.status for t in again] == ["failed"] and error in again[0].error


# -- (3) a one-stage DARTS space
def test_a_one_stage_darts_space_is_refused_naming_stages():
    with pytest.raises(ConfigError, match=r"^stages: a DartsSpace needs stages >= 2"):
        DartsSpace(channels=4, cells_per_stage=1, stages=1)
    assert list(DartsSpace(channels=4, cells_per_stage=1, stages=2).supernet().alphas) == ["normal", "reduce"]


# -- (4) an InputChoice concatenating all its inputs
@pytest.mark.parametrize("method", ["darts", "gumbel-hard", "proxyless"])
def test_an_input_choice_concatenating_all_inputs_is_searched(digits64, method):
    trainer = ModuleOneShotTrainer(Concat.space(), DartsOptions(method=method, batch_size=32, latency="off"))
    assert trainer.supernet(digits64["train"][0][:4]).shape == (4, 10)
    record = trainer.train_epoch(digits64)
    assert record.derived["ic"] == [0, 1]


# -- (5) gumbel-hard on an InputChoice picking k
def test_gumbel_hard_samples_k_inputs_for_an_input_choice_picking_k():
    trainer = ModuleOneShotTrainer(PickTwo.space(), DartsOptions(method="gumbel-hard", batch_size=32))
    alpha = trainer.supernet.alphas["ic"]
    mixes = [trainer.supernet.mix("ic", alpha) for _ in range(30)]
    assert {int(m.active.sum()) for m in mixes} == {2}  # as derive() keeps 2 (and proxyless samples 2)
    assert len({tuple(m.active[0].tolist()) for m in mixes}) > 1  # sampled, not fixed
    (mixes[0].weights * torch.arange(3.0)).sum().backward()
    assert alpha.grad is not None and bool(alpha.grad.abs().sum() > 0)  # straight through
    one = trainer.supernet.mixing(alpha)  # a LayerChoice / cell edge: still one path
    assert int(one.active.sum()) == 1


def test_every_method_but_pc_darts_runs_on_a_user_model():
    for method in ("darts", "darts2", "proxyless", "rarts", "gumbel-hard"):
        ModuleOneShotTrainer(PickTwo.space(), DartsOptions(method=method))
    with pytest.raises(ConfigError, match="'darts', 'darts2', 'proxyless', 'rarts', 'gumbel-hard'"):
        ModuleOneShotTrainer(PickTwo.space(), DartsOptions(method="pc-darts"))


# -- (6) the Hessian eigenvalue of a sampling method
@pytest.mark.parametrize("method", ["proxyless", "gumbel-hard"])
def test_track_eigenvalue_is_refused_for_sampling_methods(method):
    with pytest.raises(ConfigError, match=f"^track_eigenvalue: .*{method} samples paths"):
        DartsOptions(method=method, track_eigenvalue=True)
    DartsOptions(method="darts", track_eigenvalue=True)


# -- (7) option values
@pytest.mark.parametrize("field, value", [
    ("grad_clip", math.inf), ("a_lr", math.inf), ("w_lr", math.inf), ("tau_max", math.inf),
    ("latency_weight", math.nan), ("schedule_power", math.inf), ("w_momentum", -0.5), ("w_momentum", "0.9"),
    ("w_momentum", 1.0), ("w_weight_decay", -1e-4), ("a_weight_decay", -1e-3), ("a_weight_decay", math.nan),
    ("relax_penalty", math.inf), ("hvp_radius", math.nan), ("es_ratio", "0.5")])
def test_bad_option_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"^{field}: "):
        DartsOptions(**{field: value})


# -- example inputs
@pytest.mark.parametrize("space", [tiny_nb201(), DartsSpace(channels=4, cells_per_stage=1, stages=2)])
def test_example_input_is_deterministic_and_leaves_the_global_generator_alone(space):
    before = torch.get_rng_state()
    first = space.example_input({}, 3)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(123)
    assert torch.equal(space.example_input({}, 3), first) and first.shape == (3, 1, 8, 8)
    assert first.std() > 0.5  # still a standard-normal batch
