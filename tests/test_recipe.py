"""Training recipes as search decisions (`nas.spaces.recipe`), docs/recipe.md and experiments/fbnetv3_joint.py."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas.errors import ConfigError
from nas.spaces import Choice, Space
from nas.spaces.recipe import DEFAULT_OPTIONS, EMA, Recipe, recipe_fields, train_with_recipe
from nas.spaces.training import accuracy

from tests.docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]


def blobs(n: int = 240, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three well-separated Gaussian blobs in 4-D: a problem a small MLP solves exactly."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.tensor([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]])
    return centres[y] + 0.5 * torch.randn(n, 4, generator=g), y


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def fast(**kw) -> Recipe:
    return Recipe(**{"epochs": 6, "batch_size": 16, **kw})


@pytest.mark.parametrize("field, value", [("lr", 0.0), ("lr", float("nan")), ("weight_decay", -1e-4),
                                          ("epochs", 0), ("epochs", 2.5), ("label_smoothing", 1.0),
                                          ("mixup", -0.1), ("ema", 1.0), ("ema", -0.5), ("batch_size", 1),
                                          ("lr", "fast"), ("epochs", True)])
def test_invalid_recipe_names_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        Recipe(**{field: value})


def test_recipe_fields_round_trip_through_a_space_sample():
    space = Space(width=Choice([8, 16]), **recipe_fields())
    assert set(recipe_fields()) == set(DEFAULT_OPTIONS) and space.size() == 2 * 3 ** 6
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        recipe = Recipe.from_arch(arch)
        assert {k: getattr(recipe, k) for k in DEFAULT_OPTIONS} == {k: arch[k] for k in DEFAULT_OPTIONS}
        assert recipe.batch_size == Recipe().batch_size  # not searched: the base's value
    default = Recipe()
    assert space.contains({"width": 8, **{k: getattr(default, k) for k in DEFAULT_OPTIONS}})  # default in the space
    assert Recipe.from_arch({"width": 8}, base=Recipe(lr=0.5)).lr == 0.5  # the architecture's fields are ignored


def test_recipe_fields_check_their_options():
    assert recipe_fields({"epochs": [4, 2]})["epochs"].options == (2, 4)  # kept ordered
    with pytest.raises(ConfigError, match=r"^ema: "):
        recipe_fields({"ema": [0.0, 1.5]})
    with pytest.raises(ConfigError, match=r"^options: unknown recipe field 'dropout'"):
        recipe_fields({"dropout": [0.1]})


def test_default_recipe_learns_a_separable_problem_and_is_deterministic():
    x, y = blobs()
    run = train_with_recipe(mlp(), (x, y), fast(), seed=0)
    assert run.ema is None and run.final is run.model and not run.model.training
    assert accuracy(run.final, x, y) >= 0.95
    again = train_with_recipe(mlp(), (x, y), fast(), seed=0).model
    assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(), again.state_dict().values()))
    other = train_with_recipe(mlp(), (x, y), fast(), seed=1).model  # another batch order
    assert not all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(), other.state_dict().values()))


def test_ema_copy_differs_from_the_raw_weights_and_is_evaluated():
    x, y = blobs()
    run = train_with_recipe(mlp(), (x, y), fast(ema=0.9), seed=0)
    assert run.ema is not None and run.final is run.ema
    raw, avg = run.model.state_dict(), run.ema.state_dict()
    assert not torch.allclose(raw["0.weight"], avg["0.weight"])
    assert torch.equal(raw["1.num_batches_tracked"], avg["1.num_batches_tracked"])  # integer buffers copied
    assert accuracy(run.final, x, y) >= 0.95
    plain = train_with_recipe(mlp(), (x, y), fast(), seed=0).model  # EMA off: the same raw training
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), raw.values()))


def test_ema_averages_towards_the_current_weights():
    module = nn.Linear(2, 1)
    ema = EMA(module, decay=0.5)
    start = ema.module.weight.detach().clone()
    ema.update(module)  # unchanged weights: the average stays where it is
    assert torch.equal(ema.module.weight, start)
    with torch.no_grad():
        module.weight.add_(1.0)
    ema.update(module)  # warm-up decay min(0.5, 2/11): most of the way, not all of it
    assert torch.allclose(ema.module.weight, start + 1.0 - 2 / 11)
    with pytest.raises(ConfigError, match=r"^ema: "):
        EMA(module, decay=0.0)


def test_label_smoothing_raises_the_minimal_loss():
    x, y = blobs()
    eps, k = 0.3, 3
    sharp = train_with_recipe(mlp(), (x, y), fast(epochs=10), seed=0).log.phases[0].epoch_losses[-1]
    smooth = train_with_recipe(mlp(), (x, y), fast(epochs=10, label_smoothing=eps), seed=0).log.phases[0].epoch_losses[-1]
    target = np.full(k, eps / k)
    target[0] += 1 - eps
    floor = float(-(target * np.log(target)).sum())  # the entropy of the smoothed target: no model goes below it
    assert smooth >= floor - 1e-6 and floor > 0.5
    assert sharp < 0.2 < floor


def test_mixup_trains_on_mixed_targets():
    x, y = blobs()
    plain = train_with_recipe(mlp(), (x, y), fast(epochs=10), seed=0)
    mixed = train_with_recipe(mlp(), (x, y), fast(epochs=10, mixup=1.0), seed=0)
    # mixed inputs with mixed targets cannot be fit as exactly as the clean problem
    assert mixed.log.phases[0].epoch_losses[-1] > 2 * plain.log.phases[0].epoch_losses[-1]
    assert accuracy(mixed.final, x, y) >= 0.95  # and the clean problem is still learnt
    again = train_with_recipe(mlp(), (x, y), fast(epochs=10, mixup=1.0), seed=0)  # mixup draws come from the seed
    assert math.isclose(again.log.phases[0].epoch_losses[-1], mixed.log.phases[0].epoch_losses[-1])


def test_docs_recipe_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    blocks = python_blocks(ROOT / "docs" / "recipe.md")
    assert blocks
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/recipe.md python block {i + 1}", "exec"), namespace)


def test_fbnetv3_quick_runs_end_to_end_and_resumes(tmp_path):
    sys.path.insert(0, str(ROOT / "experiments"))
    import fbnetv3_joint

    out = tmp_path / "quick.json"
    args = ["--quick", "--out", str(out), "--workdir", str(tmp_path / "runs")]
    with pytest.warns(Warning):  # the protocol warns that 2 seeds are fewer than 10
        assert fbnetv3_joint.main(args) == 0
    report = json.loads(out.read_text())
    summary = report["summary"]
    assert {m["method"] for m in summary["test"]["methods"]} == {"arch-only", "joint", "random", "arch-only+epochs"}
    assert {"joint - arch-only", "joint - arch-only+epochs"} <= set(summary["paired_test"])
    for seed in ("0", "1"):
        runs = report["runs"][seed]
        assert runs["arch-only"]["pick_recipe"] == Recipe().to_dict()  # arch-only keeps the default
        assert all(runs[m]["trainings"] == 3 for m in ("arch-only", "joint", "random"))
        # the epoch-matched control trains on until it has spent the joint search's epochs
        matched = runs["arch-only+epochs"]
        assert matched["trainings"] == max(3, math.ceil(runs["joint"]["epochs_total"] / Recipe().epochs))
        assert matched["epochs_total"] >= runs["joint"]["epochs_total"]
        first = [t.arch for t in nas.load(tmp_path / "runs" / f"seed{seed}" / "arch-only").completed]
        again = [t.arch for t in nas.load(tmp_path / "runs" / f"seed{seed}" / "arch-only+epochs").completed]
        assert again[: len(first)] == first  # the same evolution, run on
    assert nas.load(tmp_path / "runs" / "seed0" / "joint").trials  # the standard journal
    cache = tmp_path / "quick_cache.jsonl"
    lines = len(cache.read_text().splitlines())
    with pytest.warns(Warning):
        assert fbnetv3_joint.main(args) == 0  # a rerun reuses every training
    assert len(cache.read_text().splitlines()) == lines
