"""Fixes from the hardware audit: a plain `Space` in `CostModel`, onboarding on one architecture, repeated
timings in `EndToEndLatency`, `threads` validation and device-profile field checks. Nothing here is timed."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from nas.counts import count_leaves
from nas.errors import ConfigError
from nas.hardware import (CostModel, DegenerateFitError, DeviceProfile, EndToEndLatency, cost, fit_calibration,
                          load_device, roofline)
from nas.spaces import Choice, Space
from nas.spaces.cell import NasBench201Space
from nas.spaces.ofa import OFAConfig, OFASpace
from tests.synthetic_lut import synthetic_lut

OP_MS = {"none": 0.0, "skip_connect": 0.02, "nor_conv_1x1": 0.3, "nor_conv_3x3": 0.9, "avg_pool_3x3": 0.15}


def plain_space() -> Space:
    return Space(depth=Choice([1, 2, 3]), width=Choice([16, 32, 64]), act=Choice(["relu", "gelu"]))


def plain_ms(a) -> float:
    return 0.1 + 0.05 * a["depth"] * a["width"] / 16 + (0.02 if a["act"] == "gelu" else 0)


def nb201_pool(n: int) -> tuple[NasBench201Space, list]:
    space = NasBench201Space(channels=4, cells_per_stage=1, stages=2)
    rng = np.random.default_rng(0)
    return space, list({a.id: a for a in (space.sample(rng) for _ in range(300))}.values())[:n]


def nb201_ms(a) -> float:
    return 0.5 + sum(OP_MS[v] for v in a.values())


# ---------------------------------------------------------------------------------------------- 1: plain space
def test_costmodel_on_a_plain_space_reports_the_e2e_latency_only():
    space = plain_space()
    archs = list(space)
    model = EndToEndLatency(space, device="pixel4_a76").fit(archs[:12], [plain_ms(a) for a in archs[:12]])
    cm = CostModel(space, device="pixel4_a76", latency=model)
    assert cm(archs[15]) == {"latency_ms": pytest.approx(model.latency_ms(archs[15]))}
    assert set(cm.provenance) == {"latency_ms"} and cm.provenance["latency_ms"]["model"] == "e2e"
    # what a plain space cannot give is refused at construction, naming the field
    with pytest.raises(ConfigError, match=r"^latency: space Space cannot build networks"):
        CostModel(space, device="pixel4_a76")
    with pytest.raises(ConfigError, match=r"^energy: 'analytic' energy needs the network"):
        CostModel(space, device="jetson_orin_nano", latency=EndToEndLatency(space).fit(
            archs[:12], [plain_ms(a) for a in archs[:12]]), energy="analytic")
    with pytest.raises(ConfigError, match=r"^latency: 'measured' times built networks"):
        CostModel(space, device="cpu", latency="measured")


# ---------------------------------------------------------------------------------------------- 2: onboarding
def test_calibration_on_one_architecture_is_refused():
    parts = {"conv": 0.2, "head": 0.05}
    with pytest.raises(DegenerateFitError, match="one uncalibrated latency"):
        fit_calibration([parts], [0.8])
    with pytest.raises(DegenerateFitError, match="measure at least 2 different architectures"):
        fit_calibration([parts] * 4, [0.8, 0.81, 0.79, 0.82])  # one network timed 4 times
    cal = fit_calibration([parts, {"conv": 0.4, "head": 0.05}], [0.8, 1.3])  # 2 distinct: fitted
    assert cal.apply({"conv": 0.4, "head": 0.05}) == pytest.approx(1.3, rel=1e-3)


def test_onboard_on_one_architecture_is_refused():
    space = OFASpace(OFAConfig(stage_channels=(8, 8, 8), head_channels=16, expands=(2, 3), kernels=(3, 5),
                               widths=(0.5, 1.0), resolutions=(32, 40)))
    lut = synthetic_lut(space)
    a = space.sample_subnet(np.random.default_rng(0))
    base = 2.5 * lut.latency_ms(a) + 0.1
    with pytest.raises(DegenerateFitError, match="onboarding"):
        lut.onboard([a], [base])
    with pytest.raises(DegenerateFitError, match="onboarding"):
        lut.onboard([a] * 4, [base + d for d in (0.0, 0.01, -0.01, 0.02)])


# ---------------------------------------------------------------------------------------------- 3: e2e repeats
def test_e2e_minimum_counts_distinct_architectures():
    space, pool = nb201_pool(5)
    rng = np.random.default_rng(1)
    archs = [pool[0]] * 5 + [pool[1]] * 5  # 2 networks, each timed 5 times
    with pytest.raises(DegenerateFitError, match=r"2 distinct architectures \(10 samples\)"):
        EndToEndLatency(space).fit(archs, [nb201_ms(a) * rng.lognormal(0, 0.01) for a in archs])


def test_group_folds_keep_copies_together_and_match_kfold_when_distinct():
    from sklearn.model_selection import KFold

    from nas.hardware.e2e_latency import group_folds

    ids = np.array(["a", "b", "a", "c", "d", "b", "e", "f", "a"])
    folds = group_folds(ids, 5, 0)
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(len(ids)))
    for tr, te in folds:
        assert not set(ids[tr]) & set(ids[te])
    distinct = np.array([f"x{i}" for i in range(11)])
    plain = KFold(5, shuffle=True, random_state=3).split(distinct)
    for (tr, te), (tr0, te0) in zip(group_folds(distinct, 5, 3), plain):
        assert tr.tolist() == tr0.tolist() and te.tolist() == te0.tolist()


def test_e2e_cross_validation_does_not_train_on_copies_of_the_test_architecture():
    space, pool = nb201_pool(6)
    rng = np.random.default_rng(0)
    archs = [a for a in pool for _ in range(4)]  # 6 networks, each timed 4 times
    ms = [nb201_ms(a) * rng.lognormal(0, 0.01) for a in archs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = EndToEndLatency(space, device="pixel4_a76").fit(archs, ms)
    # leaky folds (copies in training) scored about 0.005: the copies were memorised, not predicted
    assert model.cv[model.chosen].cv_mape > 0.05
    assert model.n_archs == 6 and model.provenance()["architectures"] == 6


# ---------------------------------------------------------------------------------------------- 9: threads
@pytest.mark.parametrize("threads", [0, -1, True, 1.5, "2"])
def test_costmodel_threads_must_be_a_positive_int(threads):
    net, x = torch.nn.Sequential(torch.nn.Linear(8, 4)), torch.randn(2, 8)
    with pytest.raises(ConfigError, match=r"^threads: expected a positive int"):
        cost(net, inputs=x, device="cpu", threads=threads)
    leaves = count_leaves(net, x)
    with pytest.raises(ConfigError, match=r"^threads: expected a positive int"):
        roofline(leaves, load_device("local_cpu"), "float32", threads)


def test_costmodel_threads_none_and_positive_still_work():
    net, x = torch.nn.Sequential(torch.nn.Linear(8, 4)), torch.randn(2, 8)
    one = cost(net, inputs=x, device="cpu", threads=1)["latency_roofline_ms"]
    assert one > 0 and cost(net, inputs=x, device="cpu", threads=None)["latency_roofline_ms"] <= one


# ---------------------------------------------------------------------------------------------- 10: profiles
BASE = {"name": "my_npu", "description": "an NPU", "kind": "npu", "peak_flops": {"float32": 2e12},
        "memory_bandwidth": 5e10}


@pytest.mark.parametrize("field, value", [
    ("peak_flops", {"float32": "2e12"}), ("peak_flops", 2e12), ("peak_flops", {"float32": -1.0}),
    ("memory_bandwidth", "5e10"), ("cores", True), ("tdp_w", -5), ("tdp_w", "5"),
    ("energy_pj_per_byte", -1.0), ("energy_pj_per_flop", {"float32": -0.5}), ("energy_pj_per_flop", 3.0),
    ("static_power_w", -2), ("kind", 3)])
def test_profile_fields_are_type_and_sign_checked(tmp_path, field, value):
    path = tmp_path / "my_npu.json"
    path.write_text(json.dumps({**BASE, field: value}))
    with pytest.raises(ConfigError, match=rf"^device profile {path}: .*\b{field}\b"):
        load_device(path)
    with pytest.raises(ConfigError, match=rf"\b{field}\b"):
        DeviceProfile.from_dict({**BASE, field: value})


def test_valid_profiles_still_load(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({**BASE, "tdp_w": 5, "energy_pj_per_byte": 20, "static_power_w": 0,
                                "energy_pj_per_flop": {"float32": 1.5}, "cores": 4}))
    assert load_device(path).pj_per_flop("float32") == 1.5
    path.write_text(json.dumps([BASE]))
    with pytest.raises(ConfigError, match=rf"^device profile {path}: expected a JSON object"):
        load_device(path)


# ---------------------------------------------------------------------------------------------- hw22 #7: dtype keys
@pytest.mark.parametrize("field, value", [("energy_pj_per_flop", {"fp32": 50.0}), ("peak_flops", {"fp32": 2e12}),
                                          ("peak_flops", {"float32": 2e12, "fp16": 4e12})])
def test_profile_dtype_key_typo_is_refused_at_load(tmp_path, field, value):
    """A misspelt dtype key used to load; energy then fell back to TDP / peak (6.4x low), a peak failed later."""
    path = tmp_path / "my_npu.json"
    path.write_text(json.dumps({**BASE, "tdp_w": 5, "energy_pj_per_byte": 20, field: value}))
    bad = sorted(set(value) - {"float32"})[0]
    with pytest.raises(ConfigError, match=rf"^device profile {path}: .*\b{field}\b.*'{bad}'.*known: .*float32"):
        load_device(path)
