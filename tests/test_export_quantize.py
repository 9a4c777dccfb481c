"""`export(..., quantize="int8")` / `nas export --quantize int8`: an int8 ONNX file per pick, measured on its card."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.export import INT8_ONNX_FILE, export
from nas.measure import accuracy_metric, count_metric, latency_metric
from nas.modelspec import DataRef, record_model
from nas.spaces.transformer import ElasticTransformerConfig, ElasticTransformerSpace

CONFIG = ElasticTransformerConfig(vocab_size=1000, max_len=12, hidden=32, head_dim=8, depths=(1, 2), heads=(1, 2),
                                  ffn_dims=(32, 128), dropout=0.0)

# A fresh interpreter (-I: no PYTHONPATH, no user site) in a folder without the repository: onnxruntime alone
# runs the int8 file, and nothing of the toolkit is imported.
PLAIN_ORT = '''
import sys, numpy as np, onnxruntime as ort
x = np.load(sys.argv[1])
np.save("y.npy", ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"]).run(None, {"input": x})[0])
assert not [m for m in sys.modules if m == "nas" or m.startswith(("nas.", "torch"))]
'''


def token_splits(seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Random token sentences labelled by whether token 7 occurs in them (about half do)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(2, CONFIG.vocab_size, (400, CONFIG.max_len), generator=g)
    x[::2, 3] = 7
    y = (x == 7).any(dim=1).long()
    return {"train": (x[:200], y[:200]), "valid": (x[200:], y[200:])}


def positive_share(model: torch.nn.Module) -> dict[str, float]:
    """A caller's own metric: the share of training sentences predicted positive."""
    return {"positive_share": float((model(token_splits()["train"][0]).argmax(-1) == 1).float().mean())}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """A 6-trial search over a seeded, untrained elastic transformer supernet, its front exported with int8."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    wd = tmp_path_factory.mktemp("quant") / "wd"
    space = ElasticTransformerSpace(CONFIG)
    data = token_splits()
    supernet = space.supernet().eval()
    spec = record_model(wd, space, supernet=supernet, data=DataRef.of(token_splits),
                        metrics={"acc": accuracy_metric("valid"), "params": count_metric("params"),
                                 "latency_ms": latency_metric(batch_size=8, repeats=2, warmup=1, rounds=2)})
    size = nas.cheap(lambda arch: {"params": space.count(arch)["params"]})
    result = nas.search(space, [size, spec.evaluator(supernet, data)], {"acc": "max", "params": "min"},
                        strategy="random", budget=6, seed=0, workdir=wd)
    report = export(result, wd.parent / "models", data=data, quantize="int8", evaluate=positive_share)
    yield report, data, wd
    torch.set_num_threads(before)


def test_every_pick_gets_a_smaller_int8_onnx_file_measured_beside_fp32_on_its_card(quantized):
    report, data, _ = quantized
    x, y = data["valid"]
    for m in report.models:
        card = json.loads((m.path / "card.json").read_text())
        rows = {r["file"]: r for r in card["files_measured"]}
        assert list(rows) == ["weights.pt", "model.onnx", INT8_ONNX_FILE] and INT8_ONNX_FILE in card["files"]
        for name, r in rows.items():
            assert r["bytes"] == (m.path / name).stat().st_size
        # Linear and Embedding weights int8 (a quarter of their bytes); in a model this small the graph's nodes
        # (about 30 KB fp32, 55 KB with the quantize nodes) keep the file at about half
        assert rows[INT8_ONNX_FILE]["bytes"] < 0.6 * rows["model.onnx"]["bytes"]
        # accuracy of each ONNX file as onnxruntime computes it here, independently of export
        for name in ("model.onnx", INT8_ONNX_FILE):
            logits = ort.InferenceSession(str(m.path / name)).run(None, {"input": x.numpy()})[0]
            want = 100 * float((logits.argmax(-1) == y.numpy()).mean())  # accuracy_metric: percent
            assert rows[name]["measured"]["acc"] == pytest.approx(want)
            assert rows[name]["measured"]["latency_ms"] > 0 and "params" not in rows[name]["measured"]
        assert rows["model.onnx"]["measured"]["acc"] == pytest.approx(m.measured["acc"])  # fp32 ONNX == torch
        # the caller's evaluate ran on every file, and on the torch model it joins the re-measured values
        assert m.measured["positive_share"] == rows["weights.pt"]["measured"]["positive_share"]
        assert all(0.0 <= r["measured"]["positive_share"] <= 1.0 for r in rows.values())
        q = card["quantized"]
        assert q["bytes"] == rows[INT8_ONNX_FILE]["bytes"] and q["top1_agreement"] >= 0.9
        md = (m.path / "card.md").read_text()
        assert f"| `{INT8_ONNX_FILE}` | int8 dynamic, onnxruntime | {q['bytes']:,} |" in md
        assert "x smaller than `model.onnx`" in md
    index = json.loads((report.out / "export.json").read_text())
    assert [e["files"][2]["file"] for e in index["models"]] == [INT8_ONNX_FILE] * len(report.models)


def test_the_int8_file_runs_with_onnxruntime_alone_in_a_fresh_process(quantized, tmp_path):
    report, data, _ = quantized
    folder = report.models[0].path
    x = data["valid"][0][:7].numpy()  # batch 7: not the batch the model was exported with
    np.save(tmp_path / "x.npy", x)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-I", "-c", PLAIN_ORT, str(tmp_path / "x.npy"),
                           str(folder / INT8_ONNX_FILE)], capture_output=True, text=True, cwd=elsewhere, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr
    got = np.load(elsewhere / "y.npy")
    want = ort.InferenceSession(str(folder / INT8_ONNX_FILE)).run(None, {"input": x})[0]
    np.testing.assert_array_equal(got, want)
    with torch.no_grad():
        fp32 = nas.load_subnet(folder)(torch.from_numpy(x)).numpy()
    assert np.abs(got - fp32).max() < 0.5 * np.abs(fp32).max()  # quantized, but the same network


def test_an_unknown_quantize_value_or_no_onnx_is_an_error_naming_it(quantized, tmp_path):
    report, data, wd = quantized
    with pytest.raises(ConfigError, match="quantize: expected one of int8, got 'int4'"):
        export(wd, tmp_path / "a", data=data, quantize="int4")
    with pytest.raises(ConfigError, match="quantize: int8 quantizes model.onnx"):
        export(wd, tmp_path / "b", data=data, quantize="int8", onnx=False)
    cli = CliRunner().invoke(app, ["export", str(wd), "--out", str(tmp_path / "c"), "--quantize", "fp4"])
    assert cli.exit_code == 2 and "quantize: expected one of int8, got 'fp4'" in cli.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()  # refused before anything was written


def test_evaluate_may_not_shadow_a_recipe_and_without_quantize_nothing_changes(quantized, tmp_path):
    report, data, wd = quantized
    with pytest.raises(ConfigError, match="evaluate: returned 'acc', which the model spec's recipe metrics.acc"):
        export(wd, tmp_path / "a", top=1, data=data, evaluate=lambda m: {"acc": 1.0})
    plain = export(wd, tmp_path / "b", top=1, data=data)
    card = json.loads((plain.models[0].path / "card.json").read_text())
    assert "quantized" not in card and "files_measured" not in card and not plain.models[0].files
    assert not (plain.models[0].path / INT8_ONNX_FILE).exists()


def test_cli_quantize_prints_the_int8_size(quantized, tmp_path):
    _, _, wd = quantized
    cli = CliRunner().invoke(app, ["export", str(wd), "--out", str(tmp_path / "m"), "--top", "1",
                                   "--quantize", "int8"], env={"COLUMNS": "250"})
    assert cli.exit_code == 0, cli.output
    (entry,) = json.loads((tmp_path / "m" / "export.json").read_text())["models"]
    assert f"{entry['files'][2]['bytes']:,}" in cli.output  # the table's quantized-ONNX column
    assert (tmp_path / "m" / entry["path"] / INT8_ONNX_FILE).is_file()
