"""OFA / BigNAS supernets, export and verify, edge cases (exploration 37): batch-norm recalibration weights each
batch by its size, per-step decisions that hold other decisions are refused, verify checks the int8 ONNX file,
InheritedAccuracy checks its batch size, ProgressiveShrinking names `y` and the architecture, sample_subnet
refuses a bare string, and export checks `evaluate`."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

import nas
from nas.errors import ConfigError
from nas.export import INT8_ONNX_FILE, export
from nas.measure import count_metric
from nas.modelspec import record_model, save_trial_weights
from nas.spaces import Choice, ModelSpace
from nas.spaces.ofa import OFAConfig, OFASpace
from nas.spaces.training import InheritedAccuracy, ProgressiveShrinking, SandwichRule, ofa_phases, recalibrate_bn
from nas.verify import verify

TINY = OFAConfig(stem_channels=4, stage_channels=(4, 6), stage_strides=(2, 2), depths=(1, 2), kernels=(3, 5),
                 expands=(1, 2), widths=(0.5, 1.0), head_channels=8, resolutions=(32, 40))

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n: int = 64, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 40, generator=gen), torch.randint(0, classes, (n,), generator=gen)


# ------------------------------------------------------------------------------ 1: BN recalibration and a short tail
def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Conv1d(3, 3, 3), nn.BatchNorm1d(3))


def test_recalibration_weights_each_batch_by_its_samples_so_a_one_sample_tail_does_not_count_as_much_as_a_batch():
    """It took a plain mean of per-batch statistics: with batches of 6 and 1 samples the 1-sample batch had half
    the weight, so the running mean was not the calibration set's mean."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 2, 10, generator=gen) * 3 + 1
    net = _bn_net()
    recalibrate_bn(net, [x[:6], x[6:]])
    bn = net[1]
    h = net[0](x)  # the first batch norm's input does not depend on how the batches were cut
    assert torch.allclose(bn.running_mean, h.mean(dim=(0, 2)), atol=1e-5)  # the calibration set's exact mean
    # the variance: the average of the per-batch (unbiased) variances, each weighted by its number of values
    parts = [h[:6], h[6:]]
    weights = [p.numel() / p.shape[1] for p in parts]
    pooled = sum(w * p.var(dim=(0, 2)) for w, p in zip(weights, parts)) / sum(weights)
    assert torch.allclose(bn.running_var, pooled, rtol=1e-5)
    assert not net.training and bn.momentum == 0.1  # eval mode, the layer's momentum restored


def test_recalibration_with_equal_batches_is_bitwise_the_plain_average_as_before():
    """Equal-sized batches (a calibration size a multiple of the batch size) give exactly the statistics of
    torch's cumulative average (momentum=None), so recorded figures calibrated that way do not change."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(12, 2, 10, generator=gen)
    space = OFASpace(TINY)
    torch.manual_seed(0)
    supernet = space.supernet()
    arch = space.sample_subnet(np.random.default_rng(0))
    xs = torch.randn(12, 40, generator=gen)
    cases = [(_bn_net(), x, None), (supernet, xs, lambda net: lambda b: net(b, arch))]  # plain; DynamicBatchNorm
    for net, data, call in cases:
        ref = copy.deepcopy(net)
        recalibrate_bn(net, data.split(4), call(net) if call else None)
        ref.train()
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.reset_running_stats()
                m.momentum = None
        with torch.no_grad():
            for b in data.split(4):
                (call(ref) if call else ref)(b)
        for a, b in zip(net.modules(), ref.modules()):
            if isinstance(a, nn.BatchNorm1d):
                assert torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)


def test_a_wrapped_batch_norm_of_the_supernet_weights_a_short_tail_batch_by_its_size_too():
    """The supernet's DynamicBatchNorm reads its batch norm's momentum instead of calling it (ModelSpec.calibrated
    with `call`, export's supernet check): it too averages the batches by their number of samples."""
    from nas.spaces.dynamic import DynamicBatchNorm

    space = OFASpace(TINY)
    torch.manual_seed(0)
    supernet = space.supernet()
    x, _ = _data(9)
    arch = space.smallest()
    layer = next(m for m in supernet.modules() if isinstance(m, DynamicBatchNorm))
    means: list[torch.Tensor] = []
    hook = layer.register_forward_pre_hook(lambda m, args: means.append(args[0].mean(dim=(0, 2))))
    try:
        recalibrate_bn(supernet, [x[:8], x[8:]], call=lambda b: supernet(b, arch))
    finally:
        hook.remove()
    assert len(means) == 2
    c = len(means[0])
    assert torch.allclose(layer.bn.running_mean[:c], (8 * means[0] + means[1]) / 9, atol=1e-5)


def test_inherited_accuracy_with_one_extra_calibration_row_keeps_the_stem_statistics():
    """InheritedAccuracy cuts calib_x into batch_size chunks: 9 rows in batches of 8 left a 1-row batch with half
    the weight of the 8-row one."""
    space = OFASpace(TINY)
    torch.manual_seed(0)
    supernet = space.supernet()
    x, y = _data(16)
    arch = space.smallest()
    stats = {}
    for name, batch_size in (("chunked", 8), ("whole", 9)):
        seen = []
        ev = InheritedAccuracy(supernet, x, y, calib_x=x[:9], batch_size=batch_size)
        real = supernet.subnet

        def spy(a, real=real, seen=seen):
            seen.append(real(a))
            return seen[-1]

        supernet.subnet = spy
        try:
            ev(arch)
        finally:
            del supernet.subnet
        bn = next(m for m in seen[0].modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
        stats[name] = bn.running_mean.clone()
    assert torch.allclose(stats["chunked"], stats["whole"], atol=1e-5)


# ------------------------------------------------------------------------------ 2: per_step decisions holding others
@pytest.mark.parametrize("make", [
    lambda: SandwichRule(epochs=1, batch_size=32, n_random=1, per_step={"stages"}),
    lambda: ProgressiveShrinking(ofa_phases(1, 1, 1, 1), batch_size=32, per_step={"stages"}),
])
def test_a_per_step_decision_holding_other_decisions_is_refused_before_training(make):
    """`stages` (a Repeat with a fixed count) was accepted: every subnet of a step then got the same random
    stages, so the "largest" teacher was not the largest network and the smallest was never trained."""
    net = OFASpace(TINY).supernet()
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ConfigError, match=r"per_step: decision 'stages' holds other decisions .*resolution"):
        make().fit(net, *_data())
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


# ------------------------------------------------------------------------------ 3: verify and model.int8.onnx
class Mlp(ModelSpace):
    """Two small MLPs: Linear weights onnxruntime quantizes to int8."""

    def __init__(self) -> None:
        super().__init__(width=Choice([8, 16]))

    def build(self, arch):
        return nn.Sequential(nn.Linear(8, arch["width"]), nn.ReLU(), nn.Linear(arch["width"], 3))

    def example_input(self, arch, batch_size: int = 1):
        return torch.zeros(batch_size, 8)


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    wd, space = root / "wd", Mlp()
    record_model(wd, space, metrics={"params": count_metric("params")})

    def evaluate(arch):
        torch.manual_seed(arch["width"])
        save_trial_weights(wd, arch, space.build(arch).eval())
        return {"params": float(space.count(arch)["params"]), "score": float(arch["width"])}

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = nas.search(space, evaluate, {"score": "max", "params": "min"}, strategy="random", budget=2, seed=0,
                            workdir=wd)
        report = export(result, root / "models", top=1, quantize="int8")
    finally:
        torch.set_num_threads(before)
    assert len(report.models) == 1 and (report.models[0].path / INT8_ONNX_FILE).is_file()
    return root / "models"


def test_verify_loads_and_runs_the_int8_file_export_wrote(int8_export):
    report = verify(int8_export, write=False)
    assert report.ok
    for c in report.checks:
        assert set(c.files) == {"model.pt2", "model.onnx", INT8_ONNX_FILE}
        got = c.files[INT8_ONNX_FILE]
        assert 0.0 <= got["top1_agreement"] <= 1.0 and got["max_abs_diff"] >= 0.0 and "tolerance" not in got


def test_verify_flags_a_missing_or_damaged_int8_file(int8_export, tmp_path):
    """Deleting one pick's model.int8.onnx and overwriting the other's with garbage left verify ok (exit 0)."""
    gone, garbage = tmp_path / "gone", tmp_path / "garbage"
    for copy_ in (gone, garbage):
        shutil.copytree(int8_export, copy_)
    (pick,) = (e["path"] for e in json.loads((gone / "export.json").read_text())["models"])
    (gone / pick / INT8_ONNX_FILE).unlink()
    (garbage / pick / INT8_ONNX_FILE).write_bytes(b"not an onnx file")
    (flags,) = (c.flags for c in verify(gone).checks)
    assert flags == [f"{INT8_ONNX_FILE}: missing (export wrote it; export the model again)"]
    written = json.loads((gone / "verify.json").read_text())
    assert not written["ok"] and written["models"][0]["files"][INT8_ONNX_FILE] == {"error": "missing"}
    (flags,) = (c.flags for c in verify(garbage, write=False).checks)
    assert len(flags) == 1 and flags[0].startswith(f"{INT8_ONNX_FILE}: does not load or run (")


# ------------------------------------------------------------------------------ 4: InheritedAccuracy.batch_size
@pytest.mark.parametrize("batch_size", [0, -5, 2.5, 1, True, "8"])
def test_inherited_accuracy_refuses_a_bad_batch_size_when_made(batch_size):
    """0 failed every evaluation with "range() arg 3 must not be zero", -5 blamed an empty calibration set."""
    net = OFASpace(TINY).supernet()
    x, y = _data(16)
    with pytest.raises(ConfigError, match=r"^InheritedAccuracy\.batch_size: expected an int >= 2"):
        InheritedAccuracy(net, x, y, calib_x=x, batch_size=batch_size)


def test_inherited_accuracy_takes_a_numpy_batch_size_as_a_python_int():
    space = OFASpace(TINY)
    x, y = _data(16)
    ev = InheritedAccuracy(space.supernet(), x, y, calib_x=x, batch_size=np.int64(8))
    assert type(ev.batch_size) is int and ev.batch_size == 8
    assert 0.0 <= ev(space.smallest())["accuracy"] <= 1.0


# ------------------------------------------------------------------------------ 5: ProgressiveShrinking's failures
def test_progressive_shrinking_names_y_for_a_label_the_network_has_no_output_for():
    """It crashed with cross entropy's bare "IndexError: Target 10 is out of bounds"."""
    x, y = _data(64)
    y[0] = 10  # a 10-class network
    net = OFASpace(TINY).supernet()
    with pytest.raises(ConfigError, match=r"^y: label 10 is out of range for a network with 10 outputs"):
        ProgressiveShrinking(ofa_phases(1, 1, 1, 1), batch_size=32).fit(net, x, y)


def test_progressive_shrinking_names_the_phase_and_architecture_of_a_failing_forward():
    net = OFASpace(TINY).supernet()

    def broken(xb, arch):
        raise ValueError("boom")

    net.forward = broken
    with pytest.raises(RuntimeError, match=r"^ProgressiveShrinking phase 'full': training architecture \{.*\} "
                                           r"failed: ValueError: boom"):
        ProgressiveShrinking(ofa_phases(1, 1, 1, 1), batch_size=32).fit(net, *_data())


# ------------------------------------------------------------------------------ 6: sample_subnet(rng, "depth")
@pytest.mark.parametrize("elastic", ["depth", 3])
def test_sample_subnet_refuses_a_bare_string_or_a_non_collection(elastic):
    """"depth" was read as the letters d, e, p, t, h: "unknown dimensions ['d', 'e', 'h', 'p', 't']"."""
    with pytest.raises(ConfigError, match=r"^elastic: expected a collection of dimension names such as "
                                          r"\{'depth'\}, got"):
        OFASpace(TINY).sample_subnet(np.random.default_rng(0), elastic)


def test_sample_subnet_still_takes_a_list_of_names():
    arch = OFASpace(TINY).sample_subnet(np.random.default_rng(0), ["depth"])
    assert all(b == {"kernel": 5, "expand": 2} for s in arch["stages"] for b in s["blocks"])


# ------------------------------------------------------------------------------ 7: export(evaluate=...)
@pytest.mark.parametrize("evaluate", [5, "accuracy", {"a": 1}])
def test_export_refuses_an_evaluate_that_is_not_callable_before_anything_is_read_or_written(evaluate, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"^evaluate: expected a callable module -> \{metric: value\} or None, got"):
        export(tmp_path / "no-workdir", out, evaluate=evaluate)
    assert not out.exists()
