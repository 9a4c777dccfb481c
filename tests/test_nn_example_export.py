"""examples/user_model_resnet1d.py --quick: a user model from definition to exported subnets that a fresh
process loads (plain torch, nas.load_subnet, onnxruntime) with the supernet's outputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from nas.hardware import LatencyTable, adapter_for
from nas.modelspec import load_model_spec
from nas.scripts import load_file
from nas.result import SearchResult

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "user_model_resnet1d.py"
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(scope="module")
def example():
    return load_file(EXAMPLE)  # as `python file.py` / `nas run` load it: its classes are found again by path


def test_the_quick_example_exports_subnets_equal_to_the_supernet(example, tmp_path, capsys, one_thread):
    workdir = tmp_path / "resnet1d"
    run = example.main(["--quick", "--workdir", str(workdir)])
    out = capsys.readouterr().out
    assert "Pareto front" in out and "a fresh process agrees with the supernet" in out
    front = run["front"]
    assert front and len(front) == len(json.loads((workdir / "models" / "export.json").read_text())["models"])
    for p in front:
        assert p["program_max_abs_diff"] <= 1e-5 and p["load_subnet_max_abs_diff"] <= 1e-5
        if HAS_ORT:
            assert p["onnx_max_abs_diff"] <= 1e-4
        assert all((Path(p["path"]) / f).is_file() for f in ("model.pt2", "model.onnx", "weights.pt", "card.json"))
        assert p["measured_accuracy"] == pytest.approx(p["accuracy"], abs=1e-9)  # same slices, same BN statistics
        assert 0.0 <= p["accuracy"] <= 1.0 and p["latency_ms"] > 0 and p["measured_latency_ms"] > 0
    # the search's latency is the lookup table's sum over each architecture's layers, none of them missing
    spec = load_model_spec(workdir)
    space = spec.build_space()
    table = LatencyTable.load(workdir / "lut.jsonl", statistic="min")
    adapter = adapter_for(space)
    table.check_adapter(adapter)
    for trial in SearchResult.load(workdir).completed:
        assert not table.missing(adapter.layers(trial.arch))
        assert trial.metrics["latency_ms"] == pytest.approx(table.predict(adapter.layers(trial.arch)))


def test_the_example_refuses_a_workdir_that_holds_a_search(example, tmp_path):
    (tmp_path / "journal.jsonl").write_text("")
    with pytest.raises(SystemExit, match="holds a search already"):
        example.main(["--quick", "--workdir", str(tmp_path)])
