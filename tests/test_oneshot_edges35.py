"""Edge cases of the one-shot trainers: dropout under a fixed seed and on resume, SPOS / sandwich training on
non-finite inputs or a diverging run, a LayerChoice called twice in the latency loss, resuming on other data,
float64 searches, a bad fixed= value with nothing left to search, and a candidate whose output is NaN."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from nas import nn as nnn
from nas.darts import DartsOptions, search_darts
from nas.errors import ConfigError, JournalError
from nas.hardware.nn_layers import NNLayers
from nas.spaces.cell import NasBench201Space
from nas.spaces.training import SandwichRule, SinglePath
from nas.strategies.oneshot_modules import ModuleOneShotTrainer, candidate_costs, priced_archs

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = DartsOptions(batch_size=32, retrain_epochs=1, a_lr=3e-2, latency="off")


class Drop(nnn.ModelSpace):
    """A LayerChoice followed by dropout: the search draws random masks every step."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.op = nnn.LayerChoice({"conv": nn.Conv2d(4, 4, 3, padding=1), "skip": nn.Identity(),
                                   "pool": nn.AvgPool2d(3, 1, 1)}, label="op")
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.op(self.stem(x)).mean(dim=(2, 3))))


class Elastic(nnn.ModelSpace):
    """A width choice and a LayerChoice, with dropout: what SinglePath / SandwichRule train."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        w = nnn.Choice("w", [4, 8])
        self.stem = nnn.Conv2d(1, w, 3, padding=1)
        self.bn = nnn.BatchNorm2d(w)
        self.op = nnn.LayerChoice({"conv": nnn.Conv2d(w, w, 3, padding=1), "skip": nn.Identity()}, label="op")
        self.drop = nn.Dropout(0.3)
        self.head = nnn.Linear(w, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.op(torch.relu(self.bn(self.stem(x)))).mean(dim=(2, 3))))


class Stop(Exception):
    pass


def _stop(record: object) -> None:
    raise Stop()


# ---------------------------------------------------------------------------------------- D1
def test_dropout_search_is_reproducible_resumable_and_leaves_the_global_generator(digits64, tmp_path):
    runs = []
    for name, global_seed in (("a", 1), ("b", 2)):
        space = Drop.space()
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        r = search_darts(space, digits64, epochs=3, workdir=tmp_path / name, seed=0, options=FAST)
        assert torch.equal(torch.get_rng_state(), before)  # the caller's generator is left as it was
        runs.append(r)
    torch.manual_seed(3)
    with pytest.raises(Stop):
        search_darts(Drop.space(), digits64, epochs=3, workdir=tmp_path / "c", seed=0, options=FAST, progress=_stop)
    torch.manual_seed(4)  # a new process would have another global state
    resumed = search_darts(Drop.space(), digits64, epochs=3, workdir=tmp_path / "c", seed=0, options=FAST)
    histories = [json.loads((tmp_path / n / "oneshot_history.json").read_text()) for n in "abc"]
    assert histories[0][-1]["alphas"] == histories[1][-1]["alphas"] == histories[2][-1]["alphas"]
    assert [h["train_loss"] for h in histories[0]] == [h["train_loss"] for h in histories[2]]
    # the stand-alone retraining (dropout too) journals the same accuracy
    accuracies = {r.trials[0].metrics["accuracy"] for r in (*runs, resumed)}
    assert len(accuracies) == 1


def test_single_path_and_sandwich_with_dropout_are_reproducible(digits64):
    x, y = digits64["train"]
    for schedule in (SinglePath(epochs=1, batch_size=32, seed=0), SandwichRule(epochs=1, batch_size=32, n_random=1)):
        weights = []
        for global_seed in (1, 2):
            torch.manual_seed(0)
            sup = Elastic.supernet()
            torch.manual_seed(global_seed)
            before = torch.get_rng_state()
            schedule.fit(sup, x, y)
            assert torch.equal(torch.get_rng_state(), before)
            weights.append([p.detach().clone() for p in sup.parameters()])
        assert all(torch.equal(a, b) for a, b in zip(*weights)), type(schedule).__name__


# ---------------------------------------------------------------------------------------- D2
@pytest.mark.parametrize("schedule", [SinglePath(epochs=1, batch_size=32), SandwichRule(epochs=1, batch_size=32,
                                                                                        n_random=1)])
def test_spos_and_sandwich_refuse_non_finite_inputs(digits64, schedule):
    x, y = digits64["train"]
    x = x.clone()
    x[3, 0, 2, 2] = float("nan")
    sup = Elastic.supernet()
    saved = [p.detach().clone() for p in sup.parameters()]
    with pytest.raises(ConfigError, match=r"x: the inputs hold NaN or infinite values"):
        schedule.fit(sup, x, y)
    assert all(torch.equal(a, b) for a, b in zip(saved, sup.parameters()))


@pytest.mark.parametrize("owner", ["SinglePath", "SandwichRule"])
def test_spos_and_sandwich_stop_on_a_diverging_run(digits64, owner):
    x, y = digits64["train"]
    schedule = SinglePath(epochs=5, batch_size=32, lr=1e8) if owner == "SinglePath" else \
        SandwichRule(epochs=5, batch_size=32, n_random=1, lr=1e8)
    sup = Elastic.supernet()
    with pytest.raises(ConfigError, match=rf"{owner}: the training loss is (nan|inf|-inf) at epoch \d+, step \d+ "
                                          r"\(architecture .*'op'.*\); lower lr \(100000000.0\)"):
        schedule.fit(sup, x, y)
    assert all(bool(torch.isfinite(p).all()) for p in sup.parameters())  # stopped before the step that broke them


# ---------------------------------------------------------------------------------------- D3
class Twice(nnn.ModelSpace):
    """One LayerChoice module called twice in forward (once per input shape)."""

    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.op = nnn.LayerChoice({"conv": nn.Conv2d(8, 8, 3, padding=1), "skip": nn.Identity()}, label="op")
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.op(self.stem(x))
        return self.head(self.op(torch.nn.functional.avg_pool2d(torch.relu(h), 2)).mean(dim=(2, 3)))


def test_a_layer_choice_called_twice_is_priced_for_both_calls():
    space = Twice.space()
    t = ModuleOneShotTrainer(space, DartsOptions(method="proxyless", latency="flops", latency_weight=1.0), seed=0)
    row = candidate_costs(t.supernet, NNLayers(space, archs=priced_archs(t.supernet))).costs["op"][0].tolist()
    added = space.count(space.validate({"op": "conv"}))["flops"] - space.count(space.validate({"op": "skip"}))["flops"]
    assert added > 0
    assert (row[0] - row[1]) * 1e6 == pytest.approx(added, rel=1e-6)


# ---------------------------------------------------------------------------------------- D4
def _killed_after_epoch_1(data, wd):
    with pytest.raises(Stop):
        search_darts(NasBench201Space(channels=4, cells_per_stage=1, stages=2), data, epochs=2, workdir=wd,
                     options=FAST, progress=_stop)


def test_resume_with_other_data_of_the_same_size_is_refused(tmp_path):
    from nas.datasets import digits_splits

    full = digits_splits(seed=0)
    d0 = {k: (x[:64], y[:64]) for k, (x, y) in full.items()}
    d1 = {k: (x[:64], y[:64]) for k, (x, y) in full.items()}
    d1["valid"] = (full["valid"][0][64:128], full["valid"][1][64:128])
    _killed_after_epoch_1(d0, tmp_path)
    with pytest.raises(JournalError, match=r"other data: data\['valid'\] has digest"):
        search_darts(NasBench201Space(channels=4, cells_per_stage=1, stages=2), d1, epochs=2, workdir=tmp_path,
                     options=FAST)
    r = search_darts(NasBench201Space(channels=4, cells_per_stage=1, stages=2), d0, epochs=2, workdir=tmp_path,
                     options=FAST)
    assert len(r.trials) == 1


def test_a_workdir_journaled_before_the_data_digest_still_resumes(digits64, tmp_path):
    _killed_after_epoch_1(digits64, tmp_path)
    journal = tmp_path / "journal.jsonl"
    lines = journal.read_text().splitlines()
    header = json.loads(lines[0])
    assert "data_sha1" in header["config"]["metadata"]
    del header["config"]["metadata"]["data_sha1"]  # as an older version wrote it
    journal.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    r = search_darts(NasBench201Space(channels=4, cells_per_stage=1, stages=2), digits64, epochs=2,
                     workdir=tmp_path, options=FAST)
    assert len(r.trials) == 1 and len(json.loads((tmp_path / "oneshot_history.json").read_text())) == 2


# ---------------------------------------------------------------------------------------- D5
@pytest.fixture
def float64_default():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def test_a_float64_search_runs_and_float32_data_is_told_the_networks_dtype(digits64, float64_default):
    space = NasBench201Space(channels=4, cells_per_stage=1, stages=2)
    with pytest.raises(ConfigError, match=r"data\['train'\]: inputs are torch.float32, the networks torch.float64 "
                                          r"\(use x.to\(torch.float64\)\)"):
        search_darts(space, digits64, epochs=1, options=FAST)
    data64 = {k: (x.double(), y) for k, (x, y) in digits64.items()}
    for s in (space, Drop.space()):
        r = search_darts(s, data64, epochs=1, options=FAST)
        assert r.trials[0].status == "ok" and 0 <= r.trials[0].metrics["accuracy"] <= 1


# ---------------------------------------------------------------------------------------- D6
class Two(nnn.ModelSpace):
    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.a = nnn.LayerChoice({"conv": nn.Conv2d(4, 4, 3, padding=1), "skip": nn.Identity()}, label="a")
        self.b = nnn.LayerChoice({"conv": nn.Conv2d(4, 4, 3, padding=1), "skip": nn.Identity()}, label="b")
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.b(self.a(self.stem(x))).mean(dim=(2, 3)))


def test_a_bad_fixed_value_is_named_when_every_point_is_fixed():
    with pytest.raises(ConfigError, match=r"fixed: .*'nope'.* is not one of"):
        ModuleOneShotTrainer(Two.space(), FAST, fixed={"a": "nope", "b": "conv"})
    with pytest.raises(ConfigError, match="no LayerChoice or InputChoice left to search"):
        ModuleOneShotTrainer(Two.space(), FAST, fixed={"a": "skip", "b": "conv"})


# ---------------------------------------------------------------------------------------- D7
class Log(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)


class LogNet(nnn.ModelSpace):
    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.op = nnn.LayerChoice({"conv": nn.Conv2d(4, 4, 3, padding=1), "log": Log()}, label="op")
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.op(self.stem(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("method", ["darts", "darts2", "proxyless", "rarts"])
def test_a_candidate_with_non_finite_output_is_named(digits64, method):
    options = DartsOptions(method=method, batch_size=32, w_lr=1e-6, w_lr_min=1e-6, a_lr=1e-6, retrain_epochs=1,
                           latency="off")
    with pytest.raises(ConfigError, match=r"LayerChoice 'op' .*candidate 'log' outputs NaN or infinite values from "
                                          r"finite inputs") as e:
        search_darts(LogNet.space(), digits64, epochs=2, options=options)
    assert "lower w_lr" not in str(e.value)
