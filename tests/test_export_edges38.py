"""Export edges (session 38): an export into another export's model folder is refused before anything is written
(re-exporting the outer export replaced that folder whole, and the inner export with it, without a word)."""

from __future__ import annotations

import pytest
import torch

import nas
from nas.errors import ConfigError
from nas.export import export
from nas.measure import count_metric
from nas.modelspec import record_model
from nas.spaces.cell import NasBench201Space

pytestmark = pytest.mark.usefixtures("one_thread")


def test_an_export_inside_an_exported_model_folder_is_refused(tmp_path):
    space = NasBench201Space(channels=4, cells_per_stage=1, stages=1)
    torch.manual_seed(0)
    record_model(tmp_path / "wd", space, supernet=space.supernet().eval(), metrics={"params": count_metric("params")})
    result = nas.search(space, lambda a: {"params": float(space.count(a)["params"])}, {"params": "min"},
                        budget=2, seed=0, workdir=tmp_path / "wd", progress=False)
    outer = export(result, tmp_path / "out", onnx=False)
    pick = outer.models[0].path
    for inner in (pick, pick / "again"):
        with pytest.raises(ConfigError, match=rf"^out: {inner} is inside {pick}, a model exported to "
                                              rf"{tmp_path / 'out'} \(exporting there again replaces"):
            export(result, inner, onnx=False)
    assert sorted(p.name for p in pick.iterdir()) == sorted(p.name for p in outer.models[0].path.iterdir())
    assert not (pick / "again").exists() and not (pick / "export.json").exists()
    again = export(result, tmp_path / "out", onnx=False)  # the outer export itself, and the workdir's own folder
    assert [m.path for m in again.models] == [m.path for m in outer.models]
    assert export(result, tmp_path / "wd" / "models", onnx=False).models
