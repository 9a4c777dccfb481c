"""Edges of the seed systems (few-shot, NEAS, BossNAS, EAS): labels outside the classes and non-finite options are
ConfigErrors naming them before the workdir is touched, and BossNAS binds a workdir to labels only once they
have retrained a network."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from nas.bossnas import BossOptions, HybridConfig, HybridSpace, search_bossnas, train_bossnas
from nas.eas import EASOptions, search_eas
from nas.errors import ConfigError
from nas.few_shot import FewShotOptions, search_few_shot, train_few_shot
from nas.neas import ChainConfig, NeasOptions, search_neas
from nas.spaces.cell import NasBench201Space
from nas.splits import check_splits

INF, NAN = math.inf, math.nan
BOSS = BossOptions(epochs=1, batch_size=16, paths=2, hidden=8, proj_dim=4, rating_views=1, retrain_epochs=1)
FEW = FewShotOptions(splitter="none", levels=0, epochs=1, batch_size=16, calibration_size=16)
EAS = EASOptions(episodes=1, steps=1, seed_epochs=1, child_epochs=1, batch_size=16)


def _images(n: int = 32, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(N, 1, 8, 8) inputs with labels in 0..9, the shape every default space here takes."""
    g = torch.Generator().manual_seed(seed)
    return {s: (torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))
            for s in ("train", "valid")}


def _boss_space() -> HybridSpace:
    return HybridSpace(HybridConfig(channels=4, blocks=1, layers=1))


def _cell_space() -> NasBench201Space:
    return NasBench201Space(channels=4, cells_per_stage=1, stages=1)


# ------------------------------------------------------------------------- labels outside the classes
RUNS = {
    "few_shot": (lambda d, wd: search_few_shot(_cell_space(), d, 2, FEW, workdir=wd), "space.net.num_classes"),
    "bossnas": (lambda d, wd: search_bossnas(_boss_space(), d, None, BOSS, workdir=wd), "HybridConfig.num_classes"),
    "eas": (lambda d, wd: search_eas(d, options=EAS, workdir=wd), "StackConfig.num_classes"),
}


@pytest.mark.parametrize("bad", [10, -1])
@pytest.mark.parametrize("driver", sorted(RUNS))
def test_a_label_outside_the_classes_is_refused_before_the_workdir(one_thread, tmp_path, driver, bad):
    """It was torch's bare IndexError mid-run, after the workdir was created (BossNAS: after the whole supernet)."""
    data = _images()
    data["train"][1][5] = bad
    run, field = RUNS[driver]
    with pytest.raises(ConfigError, match=rf"^data\['train'\]: label {bad} is not a class of {field} = 10$"):
        run(data, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_train_few_shot_refuses_a_label_outside_the_classes(one_thread):
    data = _images()
    data["train"][1][0] = 10
    with pytest.raises(ConfigError, match=r"data\['train'\]: label 10 is not a class"):
        train_few_shot(_cell_space(), data, FEW)


def test_check_splits_checks_the_label_range_only_when_asked():
    data = _images()
    data["valid"][1][3] = 99
    check_splits(data)  # other callers keep their behaviour
    with pytest.raises(ConfigError, match=r"^data\['valid'\]: label 99 is not a class of n = 10$"):
        check_splits(data, num_classes=10, classes_field="n")
    unlabelled = {"train": data["train"][0], "valid": data["valid"]}
    with pytest.raises(ConfigError, match=r"data\['valid'\]: label 99"):  # (x, y) splits are checked where given
        check_splits(unlabelled, labels=None, num_classes=10)


# ------------------------------------------------------------------------- non-finite options
@pytest.mark.parametrize("cls, field, value, name", [
    (FewShotOptions, "lr", INF, "lr"), (FewShotOptions, "lr_min", INF, "lr_min"),
    (FewShotOptions, "weight_decay", NAN, "weight_decay"), (FewShotOptions, "weight_decay", INF, "weight_decay"),
    (FewShotOptions, "grad_clip", INF, "grad_clip"), (FewShotOptions, "lr", NAN, "lr"),
    (BossOptions, "lr", INF, "lr"), (BossOptions, "weight_decay", NAN, "weight_decay"),
    (BossOptions, "shift", NAN, "shift"), (BossOptions, "noise", INF, "noise"), (BossOptions, "rotate", INF, "rotate"),
    (EASOptions, "policy_lr", NAN, "options.policy_lr"), (EASOptions, "policy_lr", INF, "options.policy_lr"),
    (EASOptions, "noise", NAN, "options.noise"), (EASOptions, "widen_factor", NAN, "options.widen_factor"),
    (EASOptions, "widen_factor", INF, "options.widen_factor"), (EASOptions, "lr", INF, "options.lr"),
    (NeasOptions, "lr", INF, "lr"), (NeasOptions, "diversity_weight", INF, "diversity_weight"),
    (NeasOptions, "weight_decay", INF, "weight_decay"), (NeasOptions, "flops_budget", INF, "flops_budget"),
])
def test_a_non_finite_option_is_refused_naming_it(cls, field, value, name):
    """They passed and failed later as 'config: not plain JSON data' (NEAS: 'metadata: ...', after all training)."""
    with pytest.raises(ConfigError, match=rf"^{name}: expected a finite number .*got {value!r}$"):
        cls(**{field: value})


def test_the_drivers_refuse_a_non_finite_option_before_training(one_thread, tmp_path):
    data = _images()
    with pytest.raises(ConfigError, match=r"^lr: expected a finite number > 0, got inf$"):
        search_few_shot(_cell_space(), data, 2, {**FEW.to_dict(), "lr": INF}, workdir=tmp_path / "fs")
    with pytest.raises(ConfigError, match=r"^weight_decay: expected a finite number >= 0, got nan$"):
        train_few_shot(_cell_space(), data, {**FEW.to_dict(), "weight_decay": NAN})
    with pytest.raises(ConfigError, match=r"^noise: expected a finite number >= 0, got inf$"):
        search_bossnas(_boss_space(), data, None, {**BOSS.to_dict(), "noise": INF}, workdir=tmp_path / "boss")
    with pytest.raises(ConfigError, match=r"^lr: expected a finite number > 0, got inf$"):
        train_bossnas(_boss_space(), data["train"][0], data["valid"][0], {**BOSS.to_dict(), "lr": INF})
    with pytest.raises(ConfigError, match=r"^options\.policy_lr: expected a finite number >= 0, got nan$"):
        search_eas(data, options={**EAS.to_dict(), "policy_lr": NAN}, workdir=tmp_path / "eas")
    signals = {s: (torch.randn(32, 40), torch.randint(0, 4, (32,))) for s in ("train", "valid")}
    config = ChainConfig(stem_channels=4, channels=(4, 4, 8), strides=(2, 1, 2), kernels=(3, 5), expands=(1, 2),
                         head_channels=8)
    with pytest.raises(ConfigError, match=r"^diversity_weight: expected a finite number >= 0, got inf$"):
        search_neas(signals, config, seed=0, workdir=tmp_path / "neas", warmup_epochs=1, epochs_per_round=1,
                    rounds=1, drop=1, paths=8, groups=2, calib_size=16, batch_size=16, budget=4, diversity_weight=INF)
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------- BossNAS labels digest
class _Crash(Exception):
    pass


def test_bossnas_labels_bind_the_workdir_only_once_a_network_retrained(one_thread, tmp_path, monkeypatch):
    """A run stopped before its first retrained network recorded its labels all the same, so the corrected labels
    were refused as 'labels differ from those that retrained the networks', though none was."""
    import nas.bossnas as bossnas

    first = _images()
    fixed = {k: (x, (y + 1) % 10) for k, (x, y) in first.items()}  # same inputs, other labels
    wd = tmp_path / "run"

    class Crashing(bossnas.PlainTraining):
        def fit(self, *args, **kwargs):
            raise _Crash("stopped before the first retrained network")

    with monkeypatch.context() as m:
        m.setattr(bossnas, "PlainTraining", Crashing)
        with pytest.raises(_Crash):
            search_bossnas(_boss_space(), first, None, BOSS, workdir=wd)
    state = json.loads((wd / "bossnas.json").read_text())
    assert state["retrained"] == {} and bossnas.LABELS_KEY not in state
    # a workdir an older version left (the digest recorded, nothing retrained) takes other labels too
    (wd / "bossnas.json").write_text(json.dumps({**state, bossnas.LABELS_KEY: {"train": "0", "valid": "0"}}))

    search_bossnas(_boss_space(), fixed, None, BOSS, workdir=wd)
    state = json.loads((wd / "bossnas.json").read_text())
    assert state["retrained"] and state[bossnas.LABELS_KEY] != {"train": "0", "valid": "0"}
    search_bossnas(_boss_space(), fixed, None, BOSS, workdir=wd)  # the same labels: nothing to do, accepted
    with pytest.raises(ConfigError, match=r"data\['train'\]: its labels differ from those that retrained"):
        search_bossnas(_boss_space(), first, None, BOSS, workdir=wd)


def test_bossnas_label_free_then_labelled_still_retrains(one_thread, tmp_path):
    """Unchanged: a label-free workdir records no labels; the labelled rerun retrains and records them."""
    data = _images()
    wd = tmp_path / "run"
    search_bossnas(_boss_space(), {k: x for k, (x, _) in data.items()}, None, BOSS, workdir=wd)
    state = json.loads(Path(wd / "bossnas.json").read_text())
    assert state["retrained"] == {} and "labels_sha1" not in state and "not_retrained" in state
    search_bossnas(_boss_space(), data, None, BOSS, workdir=wd)
    state = json.loads(Path(wd / "bossnas.json").read_text())
    assert state["retrained"] and "labels_sha1" in state and "not_retrained" not in state


def test_check_splits_refuses_float64_inputs_and_labels_other_than_int64():
    """numpy's float64 (through torch.from_numpy) and int32 labels passed, then failed inside torch as 'expected
    scalar type Double but found Float' / 'expected target dtype to be Long'."""
    import torch

    from nas.errors import ConfigError
    from nas.splits import check_splits

    x, y = torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)
    check_splits({"train": (x, y), "valid": (x, y)})
    with pytest.raises(ConfigError, match=r"data\['train'\]: inputs are torch.float64.*use x.float\(\)"):
        check_splits({"train": (x.double(), y), "valid": (x, y)})
    with pytest.raises(ConfigError, match=r"data\['valid'\]: labels must be .*int64.*torch.int32 \(use y.long\(\)\)"):
        check_splits({"train": (x, y), "valid": (x, y.int())})
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ConfigError, match=r"data\['train'\]: the inputs hold NaN or infinite values"):
        check_splits({"train": (bad, y), "valid": (x, y)})
