"""Export edges found in exploration 35: a cell supernet built with documented arguments exports (model.json records
them), a supernet export could not rebuild is refused when recorded; readers of an export interrupted mid-swap say
where its previous models are; `--quantize int8` of already packed weights says nothing was quantized, quietly."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys

import pytest
import torch

import nas
from nas.errors import ConfigError
from nas.export import INT8_ONNX_FILE, export
from nas.measure import count_metric
from nas.modelspec import MODEL_SPEC, SUPERNET, load_model_spec, load_subnet, load_supernet, record_model
from nas.spaces.cell import DartsSpace, NasBench201Space
from nas.spaces.ofa import OFAConfig, OFASpace
from nas.verify import verify

pytestmark = pytest.mark.usefixtures("one_thread")

METRICS = {"params": count_metric("params")}


def _nb201() -> NasBench201Space:
    return NasBench201Space(channels=4, cells_per_stage=1, stages=1)


def _search(space, wd, budget: int = 2) -> nas.SearchResult:
    return nas.search(space, lambda a: {"params": float(space.count(a)["params"])}, {"params": "min"},
                      budget=budget, seed=0, workdir=wd, progress=False)


# ---------------------------------------------------------------------------------------- D1: supernet arguments
@pytest.mark.parametrize("kwargs", [{"affine": True}, {"edge_normalisation": True}])
def test_cell_supernet_built_with_arguments_exports_as_searched(tmp_path, kwargs):
    torch.manual_seed(0)
    space = _nb201()
    supernet = space.supernet(**kwargs).eval()
    record_model(tmp_path / "wd", space, supernet=supernet, metrics=METRICS)
    assert json.loads((tmp_path / "wd" / MODEL_SPEC).read_text())["supernet_kwargs"].items() >= kwargs.items()
    rebuilt = load_supernet(load_model_spec(tmp_path / "wd"), tmp_path / "wd")
    assert all(torch.equal(v, supernet.state_dict()[k]) for k, v in rebuilt.state_dict().items())
    report = export(_search(space, tmp_path / "wd"), tmp_path / "out", onnx=False)
    assert report.models and all(m.checks["supernet_max_abs_diff"] < 1e-5 for m in report.models)


def test_record_model_refuses_a_supernet_export_cannot_slice(tmp_path):
    space = DartsSpace(input_shape=(1, 16), channels=4, cells_per_stage=1, stages=2)
    with pytest.raises(ConfigError, match=r"supernet: .*partial_channels"):
        record_model(tmp_path / "wd", space, supernet=space.supernet(partial_channels=2).eval(), metrics=METRICS)
    assert not (tmp_path / "wd" / SUPERNET).exists() and not (tmp_path / "wd" / MODEL_SPEC).exists()


def test_record_model_refuses_a_supernet_of_another_config(tmp_path):
    space = OFASpace(OFAConfig(stage_channels=(8, 8), stage_strides=(2, 2), head_channels=16))
    other = OFASpace(OFAConfig(stage_channels=(8, 16), stage_strides=(2, 2), head_channels=16))
    supernet, mine = other.supernet().eval(), space.supernet().eval()
    before = torch.random.get_rng_state()
    at = r"other settings than this OFASpace \(at stage_channels\.1: 16 there, 8 in the space given"
    with pytest.raises(ConfigError, match=rf"supernet: .*{at}"):
        record_model(tmp_path / "wd", space, supernet=supernet, metrics=METRICS)
    assert not (tmp_path / "wd").exists()
    record_model(tmp_path / "wd", space, supernet=mine, metrics=METRICS)
    assert torch.equal(torch.random.get_rng_state(), before)  # the check leaves the caller's RNG alone
    assert "supernet_kwargs" not in json.loads((tmp_path / "wd" / MODEL_SPEC).read_text())  # built without any


def test_old_model_json_without_supernet_kwargs_still_loads_and_a_mismatch_says_what_differs(tmp_path):
    space, wd = _nb201(), tmp_path / "wd"
    record_model(wd, space, supernet=space.supernet().eval(), metrics=METRICS)
    spec = json.loads((wd / MODEL_SPEC).read_text())
    spec.pop("supernet_kwargs", None)  # as written before the arguments were recorded
    (wd / MODEL_SPEC).write_text(json.dumps(spec))
    load_supernet(load_model_spec(wd), wd)
    torch.save(space.supernet(affine=True).state_dict(), wd / SUPERNET)  # weights of a supernet built otherwise
    with pytest.raises(ConfigError, match=r"space\.supernet\(\) .*other arguments.*Unexpected key"):
        load_supernet(load_model_spec(wd), wd)


# ---------------------------------------------------------------------------------------- D2: interrupted swap
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_readers_of_an_export_interrupted_mid_swap_say_where_the_previous_models_are(tmp_path):
    space, wd, out = _nb201(), tmp_path / "wd", tmp_path / "out"
    record_model(wd, space, supernet=space.supernet().eval(), metrics=METRICS)
    report = export(_search(space, wd), out, onnx=False)
    folder = report.models[0].path
    pid = _dead_pid()
    aside = out / f".previous-{pid}"  # what a SIGKILL inside _move_in leaves: a model and export.json moved aside
    aside.mkdir()
    os.replace(folder, aside / folder.name)
    with pytest.raises(ConfigError, match=rf"interrupted.*\.previous-{pid}.*nas export"):
        load_subnet(folder)
    flags = [f for c in verify(out, write=False).checks for f in c.flags]  # that pick flagged, saying where it is
    assert any(re.search(rf"{folder.name}.*interrupted.*\.previous-{pid}.*nas export", f) for f in flags), flags
    os.replace(out / "export.json", aside / "export.json")
    with pytest.raises(ConfigError, match=rf"interrupted.*\.previous-{pid}.*nas export"):
        verify(out, write=False)
    assert (aside / folder.name).is_dir() and (aside / "export.json").is_file()  # readers move nothing
    export(wd, out, onnx=False)  # the next export puts it back, then replaces it
    assert not aside.exists() and verify(out, write=False).ok


# ---------------------------------------------------------------------------------------- D3, D4: int8
def test_quantize_int8_of_packed_weights_says_nothing_was_quantized(tmp_path, caplog):
    from nas.hardware import PrecisionMLPConfig, PrecisionMLPSpace

    torch.manual_seed(0)
    space = PrecisionMLPSpace(PrecisionMLPConfig(hidden=(16,)))
    wd = tmp_path / "wd"
    record_model(wd, space, supernet=space.supernet().eval(), metrics=METRICS)
    result = nas.search(space, lambda a: {"params": float(space.count(a)["params"])}, {"params": "min"},
                        budget=1, seed=0, workdir=wd, progress=False)
    root = logging.getLogger()
    with caplog.at_level(logging.WARNING):
        m = export(result, tmp_path / "out", quantize="int8").models[0]
    assert not (m.path / INT8_ONNX_FILE).exists()
    assert "quantized no weight" in m.checks["int8"]["skipped"]
    assert any("quantized no weight" in r.getMessage() and r.name.startswith("nas") for r in caplog.records)
    assert not [r for r in caplog.records if r.name == root.name]  # onnxruntime's "already quantized" hint dropped
    labels = [f.label for f in m.files]
    assert len(labels) == 2 and all(lb.startswith("packed uint8 codes") for lb in labels), labels
    md = (m.path / "card.md").read_text()
    assert "quantize nodes" not in md and "quantized no weight" in md


def test_quantize_int8_of_a_darts_pick_logs_nothing_from_onnxruntime(tmp_path, caplog):
    torch.manual_seed(0)
    space = DartsSpace(input_shape=(1, 40), channels=4, cells_per_stage=1, stages=2)
    wd = tmp_path / "wd"
    record_model(wd, space, supernet=space.supernet().eval(), metrics=METRICS)
    with caplog.at_level(logging.WARNING):
        m = export(_search(space, wd, budget=1), tmp_path / "out", quantize="int8").models[0]
    assert (m.path / INT8_ONNX_FILE).is_file() and m.checks["int8"]["quantized_weights"] > 0
    assert [f.label for f in m.files] == ["fp32, torch", "fp32, onnxruntime", "int8 dynamic, onnxruntime"]
    assert not [r.getMessage()[:80] for r in caplog.records if r.name == "root"]
