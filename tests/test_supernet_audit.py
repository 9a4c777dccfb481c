"""Regression tests for the supernet-training audit: Ray Train resume (schedule of the new length, exact with
dropout), batch-norm recalibration (frozen statistics kept, no calibration data refused), progressive shrinking
on the elastic transformer, and settings checks (DistributedSandwich, OFAConfig, max_len).

The Ray Train worker loop runs in-process here, with `ray.train`'s context, checkpoint and report stubbed out
(one worker), so these stay fast; tests/test_ray.py runs the same checks through Ray Train (marked slow).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nas.errors import ConfigError
from nas.spaces import training
from nas.spaces.ofa import OFAConfig, OFASpace
from nas.spaces.training import InheritedAccuracy, Phase, ProgressiveShrinking, SandwichRule, recalibrate_bn
from nas.spaces.transformer import (ElasticTransformerConfig, ElasticTransformerSpace, FlexiBertConfig,
                                    FlexiBertSpace)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = OFAConfig(stage_channels=(8, 8, 8), head_channels=16)
_OPTIMIZER = training._optimizer


# ---------------------------------------------------------------------------------------- the Ray Train loop
class _Stored:
    """A checkpoint as `ray.train.get_checkpoint()` hands it to a worker: `as_directory()` gives its folder."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def as_directory(self):
        yield str(self.path)


class _Crash(Exception):
    """The simulated interruption right after a checkpoint."""


def _run_loop(monkeypatch: pytest.MonkeyPatch, folder: Path, epochs: int, dropout: float = 0.0,
              resume: Path | None = None, crash_after: int | None = None) -> tuple[list[Path], list[float]]:
    """`nas.ray.train._train_loop` as one Ray Train worker, in-process: the checkpoint folders it wrote (one per
    epoch) and the learning rate of every optimizer step it took. `resume`: the checkpoint a restarted worker
    gets; `crash_after`: raise after that many checkpoints (as a crash right after one)."""
    import ray.train
    import ray.train.torch

    from nas.ray import train

    ckpts: list[Path] = []
    lrs: list[float] = []

    def report(metrics: dict[str, Any], rank: int, state: Any, file: str) -> None:
        path = folder / f"ckpt{len(ckpts)}"
        path.mkdir(parents=True)
        torch.save(state(), path / file)
        ckpts.append(path)
        if crash_after is not None and len(ckpts) >= crash_after:
            raise _Crash

    def optimizer(*args: Any) -> torch.optim.Optimizer:
        opt = _OPTIMIZER(*args)
        opt.register_step_pre_hook(lambda o, a, k: lrs.append(o.param_groups[0]["lr"]))
        return opt

    class Context:
        def get_world_rank(self) -> int:
            return 0

        def get_world_size(self) -> int:
            return 1

    monkeypatch.setattr(train, "_report", report)
    monkeypatch.setattr(training, "_optimizer", optimizer)
    monkeypatch.setattr(ray.train, "get_context", lambda: Context())
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: _Stored(resume) if resume is not None else None)
    monkeypatch.setattr(ray.train.torch, "prepare_model", lambda model, **kw: model)
    gen = np.random.default_rng(0)
    cfg = {"schedule": asdict(train.DistributedSandwich(epochs=epochs, batch_size=32)),
           "space": OFAConfig(stage_channels=(8, 8, 8), head_channels=16, dropout=dropout).to_dict(),
           "x": gen.standard_normal((128, 40)).astype(np.float32), "y": gen.integers(0, 10, 128), "log_dir": None,
           "threads": 1}
    try:
        train._train_loop(cfg)
    except _Crash:
        pass
    return ckpts, lrs


def _state(ckpt: Path) -> dict[str, Any]:
    from nas.ray.train import CHECKPOINT_FILE

    return torch.load(ckpt / CHECKPOINT_FILE, map_location="cpu", weights_only=False)


def test_raising_epochs_continues_on_the_cosine_schedule_of_the_new_length(monkeypatch, tmp_path):
    """Defect 1: resumed with epochs 1 -> 2, the schedule kept T_max of 1 epoch, so the LR climbed back to its
    peak; now every LR from the resumed step on is a fresh 2-epoch run's, ending at 0."""
    fresh, fresh_lrs = _run_loop(monkeypatch, tmp_path / "fresh", epochs=2)
    short, _ = _run_loop(monkeypatch, tmp_path / "short", epochs=1)
    extended, extended_lrs = _run_loop(monkeypatch, tmp_path / "extended", epochs=2, resume=short[-1])
    assert len(fresh_lrs) == 8 and len(extended_lrs) == 4
    assert extended_lrs == fresh_lrs[4:]  # exactly: the LR at the resumed step and every one after it
    end, expected = _state(extended[-1]), _state(fresh[-1])
    assert end["scheduler"]["T_max"] == 8 and end["step"] == 8
    assert end["optimizer"]["param_groups"][0]["lr"] == expected["optimizer"]["param_groups"][0]["lr"]
    assert end["optimizer"]["param_groups"][0]["lr"] < 1e-12  # annealed to 0, not back at 3e-3


def test_a_run_resumed_after_a_crash_equals_the_uninterrupted_one_with_dropout(monkeypatch, tmp_path):
    """Defect 2: a restarted worker re-seeded torch, so the resumed epoch replayed epoch 1's dropout masks; now
    dropout is seeded by (seed, step, rank) and the resumed run is bit-identical."""
    whole, whole_lrs = _run_loop(monkeypatch, tmp_path / "whole", epochs=2, dropout=0.3)
    crashed, first_lrs = _run_loop(monkeypatch, tmp_path / "crashed", epochs=2, dropout=0.3, crash_after=1)
    assert len(crashed) == 1
    resumed, rest_lrs = _run_loop(monkeypatch, tmp_path / "resumed", epochs=2, dropout=0.3, resume=crashed[0])
    assert first_lrs + rest_lrs == whole_lrs
    a, b = _state(whole[-1])["model"], _state(resumed[-1])["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # tolerance 0
    # and the masks did change between steps (the test would prove nothing without dropout at work)
    c, _ = _run_loop(monkeypatch, tmp_path / "nodrop", epochs=2, dropout=0.0)
    assert not all(torch.equal(a[k], _state(c[-1])["model"][k]) for k in a)


# ---------------------------------------------------------------------------------------- batch-norm recalibration
def _frozen_bn_model(extra_trainable_bn: bool) -> nn.Sequential:
    torch.manual_seed(0)
    layers = [nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Conv1d(4, 4, 1)]
    if extra_trainable_bn:
        layers.append(nn.BatchNorm1d(4))
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(32, 2))
    with torch.no_grad():
        model[1].running_mean.fill_(5.0)
        model[1].running_var.fill_(9.0)
    model.train()
    model[1].eval()  # the fine-tuning idiom: the pretrained batch norm frozen
    return model


@pytest.mark.parametrize("extra_trainable_bn", [True, False])
def test_recalibration_keeps_a_frozen_batch_norm_even_when_no_other_one_trains(extra_trainable_bn):
    """Defect 3: with no batch norm in train mode, the frozen one was reset and re-estimated."""
    model = _frozen_bn_model(extra_trainable_bn)
    out = recalibrate_bn(model, [torch.randn(16, 1, 10)])
    assert torch.equal(out[1].running_mean, torch.full((4,), 5.0))
    assert torch.equal(out[1].running_var, torch.full((4,), 9.0))
    assert not out.training
    if extra_trainable_bn:  # the batch norm that trains is re-estimated
        assert int(out[4].num_batches_tracked) == 1
    # a wrapper made around modules in eval mode (containers in train mode, as made; every leaf in eval mode, as
    # nas.neas's Ensemble of subnets) is a model in eval mode: every batch norm is re-estimated
    members = [_frozen_bn_model(extra_trainable_bn).eval() for _ in range(2)]
    wrapper = nn.Sequential(nn.ModuleList(members))
    recalibrate_bn(wrapper, [torch.randn(16, 1, 10)], lambda b: [m(b) for m in wrapper[0]])
    assert not any(torch.equal(m[1].running_mean, torch.full((4,), 5.0)) for m in members)


def _trained_ofa() -> tuple[Any, OFASpace, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    space = OFASpace(SMALL)
    x, y = torch.randn(128, 40), torch.randint(0, 10, (128,))
    supernet = space.supernet()
    SandwichRule(epochs=1, batch_size=64, n_random=1).fit(supernet, x, y)
    return supernet, space, x, y


def test_no_calibration_data_is_refused_before_any_statistic_is_reset():
    """Defect 5: no batches (or an empty calib_x) reset the statistics to 0/1 and scored the subnet anyway."""
    supernet, space, x, y = _trained_ofa()
    sub = supernet.subnet(space.smallest())
    before = {k: v.clone() for k, v in sub.state_dict().items()}
    mode = [m.training for m in sub.modules()]
    for inputs in ([], iter(()), x[:0].split(64)):
        with pytest.raises(ConfigError, match=r"^inputs: no calibration batch"):
            recalibrate_bn(sub, inputs)
        assert all(torch.equal(before[k], v) for k, v in sub.state_dict().items())
        assert [m.training for m in sub.modules()] == mode
    with pytest.raises(ConfigError, match=r"^InheritedAccuracy\.calib_x: no calibration inputs \(0 rows\)"):
        InheritedAccuracy(supernet, x, y, calib_x=x[:0])
    assert 0 <= InheritedAccuracy(supernet, x, y, calib_x=x[:64])(space.smallest())["accuracy"] <= 1
    # a generator of batches is still read once, in full
    got = recalibrate_bn(supernet.subnet(space.smallest()), (b for b in x[:96].split(32)))
    ref = recalibrate_bn(supernet.subnet(space.smallest()), list(x[:96].split(32)))
    assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), ref.state_dict().values()))


# ---------------------------------------------------------------------------------------- progressive shrinking
TINY_T = ElasticTransformerConfig(vocab_size=50, max_len=12, hidden=16, head_dim=4, heads=(1, 2, 4),
                                  ffn_dims=(8, 16, 32), dropout=0.0)


def _recorded(space: ElasticTransformerSpace) -> tuple[Any, list[Any]]:
    """A fresh supernet of `space` recording the architecture of every forward call."""
    supernet, seen = space.supernet(), []
    forward = supernet.forward
    supernet.forward = lambda t, arch=None: (seen.append(space.validate(arch)), forward(t, arch))[1]
    return supernet, seen


def test_progressive_shrinking_honours_the_phases_on_the_elastic_transformer():
    """Defect 4: without sample_subnet the phases' `elastic` was dropped (a phase with nothing elastic trained
    random architectures, never the largest)."""
    space = ElasticTransformerSpace(TINY_T)
    torch.manual_seed(0)
    tokens, y = torch.randint(1, 50, (64, 12)), torch.randint(0, 2, (64,))
    supernet, seen = _recorded(space)
    phases = (Phase("full", frozenset(), 1, 1e-3), Phase("heads", frozenset({"heads"}), 1, 1e-3))
    ProgressiveShrinking(phases, subnets_per_step=2, kd_ratio=0.0, batch_size=16).fit(supernet, tokens, y)
    full, heads = seen[:4], seen[4:]
    assert all(a == space.largest() for a in full)
    assert len(heads) == 8 and len({a.id for a in heads}) > 1
    assert all(a["depth"] == 3 and all(layer["ffn"] == 32 for layer in a["layers"]) for a in heads)
    rng = np.random.default_rng(0)
    depths = {space.sample_subnet(rng, {"depth"})["depth"] for _ in range(40)}
    assert depths == {1, 2, 3}
    # without `elastic` it draws as `sample` did, so SandwichRule / SinglePath runs repeat exactly
    assert [space.sample_subnet(np.random.default_rng(s)) for s in range(5)] == \
        [space.sample(np.random.default_rng(s)) for s in range(5)]


def test_unknown_or_unsupported_elastic_dimensions_are_refused_for_every_space():
    space = ElasticTransformerSpace(TINY_T)
    supernet = space.supernet()
    before = [p.detach().clone() for p in supernet.parameters()]
    tokens, y = torch.randint(1, 50, (32, 12)), torch.randint(0, 2, (32,))
    phases = (Phase("full", frozenset(), 1, 1e-3), Phase("heads", frozenset({"no_such_dimension"}), 1, 1e-3))
    with pytest.raises(ConfigError, match=r"Phase 'heads': elastic: unknown dimensions \['no_such_dimension'\] "
                                          r"\(known: \['depth', 'ffn', 'heads'\]\)"):
        ProgressiveShrinking(phases, batch_size=16).fit(supernet, tokens, y)
    with pytest.raises(ConfigError, match=r"Phase 'width'\.sort_channels: ElasticTransformer has no sort_channels"):
        ProgressiveShrinking((Phase("width", frozenset({"ffn"}), 1, 1e-3, sort_channels=True),),
                             batch_size=16).fit(supernet, tokens, y)
    assert all(torch.equal(a, b) for a, b in zip(before, supernet.parameters()))  # refused before training

    class NoElastic:  # a space whose sample_subnet takes no `elastic`, and one with no sample_subnet
        def __init__(self, inner: OFASpace, with_sampler: bool) -> None:
            self.inner = inner
            if with_sampler:
                self.sample_subnet = lambda rng: inner.sample_subnet(rng)

        def largest(self):
            return self.inner.largest()

        def sample(self, rng):
            return self.inner.sample(rng)

    for with_sampler in (True, False):
        net = OFASpace(SMALL).supernet()
        net.space = NoElastic(net.space, with_sampler)
        with pytest.raises(ConfigError, match=r"Phase 'full': elastic: NoElastic has no sample_subnet\(rng, elastic\)"):
            ProgressiveShrinking((Phase("full", frozenset({"resolution"}), 1, 1e-3),), batch_size=32).fit(
                net, torch.randn(32, 40), torch.randint(0, 10, (32,)))


# ---------------------------------------------------------------------------------------- settings
@pytest.mark.parametrize("field, value, match", [
    ("n_random", -1, r"DistributedSandwich\.n_random: expected an int >= 0, got -1"),
    ("temperature", 0.0, r"DistributedSandwich\.temperature: expected a finite number > 0, got 0\.0"),
    ("lr", "fast", r"DistributedSandwich\.lr: expected a finite number > 0, got 'fast'"),
    ("lr", float("nan"), r"DistributedSandwich\.lr"),
    ("weight_decay", -1e-4, r"DistributedSandwich\.weight_decay: expected a finite number >= 0"),
    ("seed", -1, r"DistributedSandwich\.seed: expected an int >= 0, got -1"),
    ("seed", 1.5, r"DistributedSandwich\.seed"),
    ("epochs", 2.5, r"DistributedSandwich\.epochs: expected an int >= 1, got 2\.5"),
    ("epochs", 0, r"DistributedSandwich\.epochs"),
    ("batch_size", 1, r"DistributedSandwich\.batch_size: expected an int >= 2, got 1"),
    ("batch_size", True, r"DistributedSandwich\.batch_size"),
])
def test_distributed_sandwich_refuses_what_sandwich_rule_refuses(field, value, match):
    """Defect 6: only epochs and batch_size were checked (with int(...), so 2.5 passed)."""
    from nas.ray.train import DistributedSandwich

    with pytest.raises(ConfigError, match=match):
        DistributedSandwich(**{field: value})
    with pytest.raises(ConfigError, match=match.replace("DistributedSandwich", "SandwichRule")):
        SandwichRule(**{field: value})


@pytest.mark.parametrize("field, value", [
    ("expands", (2.5, 3)), ("stage_channels", (8.5, 8, 8)), ("resolutions", (32.5,)), ("stem_channels", 8.5),
    ("kernels", (3.0, 5.0)), ("num_classes", 2.7), ("head_channels", True), ("in_length", "40"),
    ("depths", "123"), ("depths", ()), ("stage_strides", (True, 2, 2)), ("widths", ("half", 1.0)),
    ("widths", 0.5), ("widths", (0.0, 1.0)), ("dropout", True),
])
def test_ofa_config_refuses_non_int_sizes_bools_and_strings(field, value):
    """Defect 7: floats and bools passed `int(x) < 1` and failed later inside torch, naming no field."""
    with pytest.raises(ConfigError, match=rf"^OFAConfig\.{field}: "):
        OFAConfig(**{field: value})


def test_ofa_config_still_takes_lists_and_json_round_trips():
    cfg = OFAConfig(stage_channels=[8, 8], stage_strides=[2, 2], widths=[0.5, 1], dropout=0)
    assert cfg.stage_channels == (8, 8) and cfg.widths == (0.5, 1)
    assert OFAConfig(**cfg.to_dict()) == cfg


def test_inputs_longer_than_max_len_are_refused_naming_max_len():
    """Defect 8: a bare IndexError from the position embedding."""
    space = ElasticTransformerSpace(TINY_T)
    supernet, tokens = space.supernet(), torch.randint(1, 50, (4, 20))
    match = r"^max_len: the model has 12 positions, but the input holds sentences of 20 tokens"
    with pytest.raises(ConfigError, match=match):
        supernet(tokens)
    with pytest.raises(ConfigError, match=match):
        supernet.subnet(space.smallest())(tokens)
    with pytest.raises(ConfigError, match=match):
        SandwichRule(epochs=1, batch_size=2).fit(supernet, tokens, torch.zeros(4, dtype=torch.long))
    flexi = FlexiBertSpace(FlexiBertConfig(vocab_size=50, max_len=12, depths=(1,), hidden=(8,), heads=(1,),
                                           ffn_depths=(1,), ffn_dims=(8,), dropout=0.0))
    with pytest.raises(ConfigError, match=match):
        flexi.build(flexi.default())(tokens)
    assert supernet(tokens[:, :12]).shape == (4, 2)  # max_len tokens are fine
