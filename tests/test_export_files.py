"""The files an export ships (model.pt2, model.onnx) are checked where they are read: a damaged program is a
ConfigError naming it, `verify` loads and runs every shipped file against the network it re-measures, errors of
a space whose script is gone name model.json and the field's real path, and export leaves the global RNG alone."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import nas
from nas.errors import ConfigError
from nas.export import export
from nas.measure import count_metric
from nas.modelspec import load_model_spec, load_program, load_subnet, record_model, save_trial_weights
from nas.scripts import load_file
from nas.spaces import Choice, ModelSpace
from nas.verify import verify


class Tiny(ModelSpace):
    """Two MLPs, importable by name but not toolkit code: its models load from their model.pt2 ("program")."""

    def __init__(self) -> None:
        super().__init__(width=Choice([2, 4]))

    def build(self, arch):
        return nn.Sequential(nn.Linear(8, arch["width"]), nn.ReLU(), nn.Linear(arch["width"], 3))

    def example_input(self, arch, batch_size: int = 1):
        return torch.zeros(batch_size, 8)


def _search(wd: Path) -> nas.SearchResult:
    space = Tiny()
    record_model(wd, space, metrics={"params": count_metric("params")})

    def evaluate(arch):
        torch.manual_seed(arch["width"])
        save_trial_weights(wd, arch, space.build(arch).eval())
        return {"params": float(space.count(arch)["params"]), "score": float(arch["width"])}

    return nas.search(space, evaluate, {"score": "max", "params": "min"}, strategy="random", budget=2, seed=0,
                      workdir=wd)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Both architectures of `Tiny` exported (weights.pt, model.pt2, model.onnx), on one torch thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("files")
    result = _search(root / "wd")
    report = export(result, root / "models")
    assert len(report.models) == 2
    yield result, root / "models"
    torch.set_num_threads(before)


def _copy(models: Path, tmp_path: Path) -> tuple[Path, list[Path]]:
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    entries = json.loads((copy / "export.json").read_text())["models"]
    return copy, [copy / e["path"] for e in entries]


# ------------------------------------------------------------------------------ defect 1: a damaged model.pt2
@pytest.mark.parametrize("damage", ["empty", "garbage", "cut short"])
def test_a_damaged_program_is_a_config_error_naming_it(exported, tmp_path, damage, caplog):
    _, models = exported
    _, (folder, _) = _copy(models, tmp_path)
    program = folder / "model.pt2"
    data = program.read_bytes()
    program.write_bytes({"empty": b"", "garbage": b"PK\x03\x04garbage" * 10, "cut short": data[:len(data) // 2]}[damage])
    assert json.loads((folder / "model.json").read_text())["load"] == "program"
    for load in (load_program, load_subnet):
        with pytest.raises(ConfigError, match=f"^{program}: not a readable torch.export program") as e:
            load(program if load is load_program else folder)
        assert "\n" not in str(e.value)
    assert not [r for r in caplog.records if r.exc_info]  # torch's own traceback is not logged beside the error


def test_verify_with_the_space_gone_and_a_damaged_program_is_one_error_naming_both(exported, tmp_path):
    _, models = exported
    copy, (folder, _) = _copy(models, tmp_path)
    info = json.loads((folder / "model.json").read_text())
    info["space"] = {"class": "Tiny", "script": str(tmp_path / "gone.py"), "config": None}
    (folder / "model.json").write_text(json.dumps(info))
    (folder / "model.pt2").write_bytes(b"")
    report = verify(copy, write=False)  # that pick flagged, not re-measured; the other still checked
    (flag,) = next(c.flags for c in report.checks if c.path == folder.name)
    assert re.search(r"model\.pt2: not a readable torch.export program \(empty file\).*"
                     r"model\.json: space\.script: .*gone\.py not found", flag)


def test_verify_checks_every_shipped_file_against_the_network_it_re_measures(exported, tmp_path):
    _, models = exported
    report = verify(models, write=False)
    assert report.ok
    for c in report.checks:
        assert set(c.files) == {"model.pt2", "model.onnx"}
        assert c.files["model.pt2"]["max_abs_diff"] == 0.0 and c.files["model.onnx"]["max_abs_diff"] < 1e-5
        assert c.files["model.onnx"]["tolerance"] >= 1e-3  # nas.verify.AGREEMENT, relative to outputs of at least 1

    copy, (a, b) = _copy(models, tmp_path)
    (a / "model.pt2").write_bytes(b"")                              # damaged
    (b / "model.onnx").unlink()                                     # gone
    report = verify(copy)
    flags = {c.path: c.flags for c in report.checks}
    assert flags[a.name] == ["model.pt2: not a readable torch.export program (empty file); export the model again"]
    assert flags[b.name] == ["model.onnx: missing (export wrote it; export the model again)"]
    written = json.loads((copy / "verify.json").read_text())
    assert not written["ok"] and written["models"][0]["files"]["model.pt2"]["error"].startswith("not a readable")

    copy2, (a, b) = _copy(models, tmp_path / "2")
    (a / "model.onnx").write_bytes(b"garbage" * 20)                 # not ONNX
    shutil.copy(a / "model.pt2", b / "model.pt2")                   # another pick's network: loads, disagrees
    flags = {c.path: c.flags for c in verify(copy2, write=False).checks}
    assert len(flags[a.name]) == 1 and flags[a.name][0].startswith("model.onnx: does not load or run (")
    assert len(flags[b.name]) == 1 and flags[b.name][0].startswith(
        "model.pt2: disagrees with the network re-measured on the recorded input (max |diff|")


# ------------------------------------------------------------------------------ defect 2: export and the global RNG
def test_export_leaves_the_global_torch_rng_as_it_was(exported, tmp_path):
    result, _ = exported
    torch.manual_seed(123)
    export(result, tmp_path / "again", onnx=False)
    after_export = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after_export, torch.rand(3))


# ------------------------------------------------------------------------------ defect 3: the script gone
NN_SCRIPT = '''
from nas import nn as nnn

class Net(nnn.ModelSpace):
    input_shape = (8,)

    def __init__(self):
        super().__init__()
        self.fc = nnn.Linear(8, nnn.Choice("width", [2, 4]))

    def forward(self, x):
        return self.fc(x)
'''

PLAIN_SCRIPT = '''
import torch
from torch import nn
from nas.spaces import Choice, ModelSpace

class Plain(ModelSpace):
    def __init__(self):
        super().__init__(width=Choice([2, 4]))

    def build(self, arch):
        return nn.Linear(8, arch["width"])

    def example_input(self, arch, batch_size=1):
        return torch.zeros(batch_size, 8)
'''


@pytest.mark.parametrize("script, field", [(NN_SCRIPT, "space.config.model.script"), (PLAIN_SCRIPT, "space.script")])
def test_a_gone_script_is_named_with_model_json_and_the_fields_path(tmp_path, script, field):
    path = tmp_path / f"files_{field.replace('.', '_')}_job.py"
    path.write_text(textwrap.dedent(script))
    module = load_file(path)
    space = module.Net.space() if hasattr(module, "Net") else module.Plain()
    wd = tmp_path / "wd"
    record_model(wd, space)
    spec = json.loads((wd / "model.json").read_text())
    at = spec
    for key in field.split(".")[:-1]:  # the field the error names is where model.json holds the script's path
        at = at[key]
    assert at["script"] == str(path.resolve())
    path.rename(path.with_suffix(".moved"))
    with pytest.raises(ConfigError, match=f"^{wd / 'model.json'}: {field}: {path.resolve()} not found"):
        load_model_spec(wd).build_space()
