"""Export's pass, verify's pass and onboarding measurements time the same thing under the same conditions.

No timing thresholds: the conditions in effect at every timed forward call (input, threads, mode, autograd)
are captured and compared between the paths; statistics are checked on constructed run times.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import nas
import nas.hardware.latency as latency_module
from nas.errors import ConfigError
from nas.export import _warn_frozen_batch_norms, export
from nas.hardware import CostModel, LayerLatencyModel, adapter_for, build_table, qualified_name
from nas.hardware.latency import STATISTICS, summarise
from nas.hardware.lut import LatencyTable
from nas.measure import TimingInput, check_recipe, count_metric, latency_metric, time_architectures
from nas.modelspec import RecordedInput, record_model
from nas.spaces.cell import NasBench201Space
from nas.spaces.ofa import OFAConfig, OFASpace
from nas.verify import verify

CONFIG = OFAConfig(stage_channels=(8, 8, 8), head_channels=16, num_classes=4, resolutions=(32, 40))
RECIPE = latency_metric(warmup=1, repeats=2, rounds=2, statistic="round_min")
EXPORT_RECIPE = latency_metric(warmup=1, repeats=2, rounds=2, statistic="min")  # what the demo's recipe reads


@pytest.fixture
def forward_calls(monkeypatch) -> Iterator[list[dict[str, Any]]]:
    """Every forward call a latency measurement times, with the conditions in effect at that moment."""
    calls: list[dict[str, Any]] = []
    real = latency_module.forward

    def spy(module: torch.nn.Module, inputs: Any) -> Any:
        x = inputs if isinstance(inputs, torch.Tensor) else inputs[0]
        calls.append({"threads": torch.get_num_threads(), "inference": torch.is_inference_mode_enabled(),
                      "grad": torch.is_grad_enabled(), "training": any(m.training for m in module.modules()),
                      "class": type(module).__name__, "input": x.detach().clone(), "format": x.is_contiguous()})
        return real(module, inputs)

    monkeypatch.setattr(latency_module, "forward", spy)
    yield calls


def _conditions(calls: list[dict[str, Any]]) -> set[tuple]:
    """The distinct conditions of a pass: threads, inference mode, grad, train mode, class, contiguity, input."""
    return {(c["threads"], c["inference"], c["grad"], c["training"], c["class"], c["format"],
             tuple(c["input"].shape), str(c["input"].dtype), c["input"].numpy().tobytes()) for c in calls}


@pytest.fixture
def searched(tmp_path) -> Path:
    """A tiny OFA search whose model spec re-measures latency (interleaved rounds) and params."""
    torch.manual_seed(0)
    space = OFASpace(CONFIG)
    supernet = space.supernet().eval()
    wd = tmp_path / "wd"
    record_model(wd, space, supernet=supernet, metrics={"latency_ms": EXPORT_RECIPE, "params": count_metric("params")})
    nas.search(space, lambda a: {"params": space.count(a)["params"], "depth": float(sum(
        len(s["blocks"]) for s in a["stages"]))}, {"params": "min", "depth": "max"}, budget=4, seed=0, workdir=wd)
    return wd


def test_export_and_verify_time_the_same_input_under_the_same_conditions(searched, tmp_path, forward_calls):
    before = torch.get_num_threads()
    report = export(searched, tmp_path / "models", top=2, onnx=False)
    exported = list(forward_calls)
    forward_calls.clear()
    checked = verify(tmp_path / "models")
    assert torch.get_num_threads() == before  # pinned for the timing only
    assert exported and forward_calls
    # one thread, eval mode, inference mode, the same class and the very same input tensors in both passes
    assert {(c["threads"], c["inference"], c["grad"], c["training"]) for c in exported} == {(1, True, False, False)}
    assert _conditions(exported) == _conditions(forward_calls)
    recorded = {json.dumps(TimingInput(tuple(json.loads((m.path / "model.json").read_text())["input"]["shape"]))
                           .example_input(None, 1).numpy().tolist()) for m in report.models}
    assert {json.dumps(c["input"].numpy().tolist()) for c in exported} == recorded  # the model.json input
    # and both passes record the conditions they timed under, which verify compares: equal here
    index = json.loads((tmp_path / "models" / "export.json").read_text())
    for entry, check in zip(index["models"], checked.checks):
        assert entry["conditions"]["latency_ms"] == check.conditions["latency_ms"]
        assert check.conditions["latency_ms"]["threads"] == 1
        assert check.conditions["latency_ms"]["statistic"] == "min"
        assert check.conditions["latency_ms"]["input_shapes"] == [[1, 1, 40]]
        assert check.differs == {}
    card = (tmp_path / "models" / index["models"][0]["path"] / "card.md").read_text()
    assert "min over 2 interleaved round(s)" in card and "1 thread(s)" in card


def test_verify_names_conditions_that_differ_from_export_pass(searched, tmp_path, caplog):
    export(searched, tmp_path / "models", top=1, onnx=False)
    path = tmp_path / "models" / "export.json"
    index = json.loads(path.read_text())
    index["models"][0]["conditions"]["latency_ms"]["threads"] = 2  # as if export's pass ran on 2 threads
    path.write_text(json.dumps(index))
    with caplog.at_level(logging.WARNING, logger="nas.verify"):
        check = verify(tmp_path / "models", write=False).checks[0]
    assert check.differs == {"latency_ms": ["threads: 2 -> 1"]}
    assert "other conditions in export's pass (threads: 2 -> 1)" in caplog.text


def test_onboarding_measurements_time_what_verify_times(forward_calls):
    space = OFASpace(CONFIG)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(3)]
    got = time_architectures(space, archs, RECIPE)
    assert len(got) == 3 and all(v > 0 for v in got)
    want = TimingInput(tuple(space.example_input(archs[0], 1).shape[1:])).example_input(archs[0], 1)
    assert torch.equal(want, RecordedInput(want.shape[1:]).example_input(archs[0], 1))  # what verify rebuilds
    assert {(c["threads"], c["inference"], c["training"]) for c in forward_calls} == {(1, True, False)}
    assert all(torch.equal(c["input"], want) for c in forward_calls)  # not the space's zeros: verify's input
    with pytest.raises(ConfigError, match="latency recipe"):
        time_architectures(space, archs, count_metric("params"))


def test_round_min_is_the_median_of_each_round_minimum():
    # 4 rounds of 3 runs; one round caught a fast moment of the machine, one a preemption
    times = [2.0, 2.1, 2.2, 1.0, 2.0, 2.0, 2.05, 9.0, 2.1, 2.0, 2.2, 2.3]
    m = summarise(times, warmup=1, batch_size=1, input_shapes=((1, 4),), device="cpu", threads=1,
                  timer="perf_counter", rounds=4)
    assert m.min_ms == 1.0 and m.value("round_min") == pytest.approx(2.0)
    assert m.repeatability("round_min") == pytest.approx((2.025 - 1.5) / 1.5)  # halves: rounds 1-2, 3-4
    assert m.to_dict()["round_min_ms"] == pytest.approx(2.0)
    one = summarise([3.0, 1.0, 2.0], warmup=0, batch_size=1, input_shapes=((1,),), device="cpu", threads=1,
                    timer="perf_counter")
    assert one.value("round_min") == one.min_ms == 1.0
    assert "round_min" in STATISTICS
    assert check_recipe("latency_ms", RECIPE)["statistic"] == "round_min"
    with pytest.raises(ConfigError, match="statistic"):
        check_recipe("latency_ms", latency_metric(statistic="p50"))


def test_tables_record_round_min_and_old_tables_say_they_lack_it(tmp_path):
    space = NasBench201Space(channels=4, cells_per_stage=1, stages=2)
    table = build_table(adapter_for(space), tmp_path / "t.jsonl", warmup=0, repeats=2, rounds=2, limit=3)
    reread = LatencyTable.load(tmp_path / "t.jsonl", statistic="round_min")
    assert all(e.round_min_ms is not None for e in reread.entries.values())
    assert reread.predict([e.layer for e in table.entries.values()]) > 0
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    old = [lines[0]] + [json.dumps({k: v for k, v in json.loads(line).items() if k != "round_min_ms"})
                        for line in lines[1:]]
    (tmp_path / "old.jsonl").write_text("\n".join(old) + "\n")
    assert LatencyTable.load(tmp_path / "old.jsonl", statistic="min").predict([]) == 0.0
    with pytest.raises(ConfigError, match="has no round_min"):
        LatencyTable.load(tmp_path / "old.jsonl", statistic="round_min")


def test_learned_models_record_threads_and_are_thread_checked_like_tables(tmp_path):
    pytest.importorskip("sklearn")
    space = NasBench201Space(channels=4, cells_per_stage=1, stages=2)
    two = build_table(adapter_for(space), tmp_path / "t2.jsonl", threads=2, warmup=0, repeats=1, rounds=1)
    model = LayerLatencyModel.from_table(two.with_statistic("min"), n_estimators=5)
    assert model.threads == 2 and model.source["threads"] == 2
    with pytest.raises(ConfigError, match="threads=2, this cost model's threads is 1"):
        CostModel(space, device="cpu", latency=model, threads=1)
    cost = CostModel(space, device="cpu", latency=model, threads=2, qualify=True)
    assert cost.provenance["latency_ms.learned.local_cpu.t2"]["threads"] == 2


def test_qualified_names_carry_threads_and_keep_the_one_thread_names():
    space = NasBench201Space(channels=4, cells_per_stage=1, stages=2)
    one = CostModel(space, device="cpu", latency="measured", threads=1, qualify=True, warmup=0, repeats=1)
    assert "latency_ms.measured.local_cpu" in one.provenance  # as recorded before threads were named
    four = CostModel(space, device="cpu", latency="measured", threads=4, qualify=True, warmup=0, repeats=1)
    assert "latency_ms.measured.local_cpu.t4" in four.provenance
    unpinned = CostModel(space, device="cpu", latency="measured", threads=None, qualify=True, warmup=0, repeats=1)
    assert "latency_ms.measured.local_cpu.tauto" in unpinned.provenance
    assert qualified_name("latency_ms", "lut", "h100_sxm", 8, cpu=False) == "latency_ms.lut.h100_sxm"
    plain = CostModel(space, device="cpu", latency="measured", threads=4, warmup=0, repeats=1)
    assert "latency_ms" in plain.provenance  # unqualified names never change


def test_export_warns_when_frozen_batch_norms_lose_a_hand_set_eval_mode(caplog):
    from tests.test_nn_audit_fixes import FrozenBackbone, KeepsBackboneEval

    with caplog.at_level(logging.WARNING, logger="nas.export"):
        _warn_frozen_batch_norms(KeepsBackboneEval.supernet().eval())  # its train() keeps the backbone in eval
    assert "frozen" not in caplog.text
    sup = FrozenBackbone.supernet().eval()
    with caplog.at_level(logging.WARNING, logger="nas.export"):
        _warn_frozen_batch_norms(sup)
    assert "batch norms whose parameters are frozen (net.backbone.bn)" in caplog.text
    assert not any(m.training for m in sup.modules())  # left in eval, as load_supernet gave it


def test_round_min_of_one_round_has_the_repeatability_of_its_min():
    """The demo's quick settings time one round: round_min is then the min, and its repeatability compares the
    halves' minima (it was nan, which export.json could not hold)."""
    one = summarise([1.0, 1.2, 1.1, 1.3], warmup=0, batch_size=1, input_shapes=((1,),), device="cpu", threads=1,
                    timer="perf_counter")
    assert one.repeatability("round_min") == one.repeatability("min") == pytest.approx(0.1)
