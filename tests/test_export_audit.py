"""Regression tests for the export audit (/tmp/audit_export/REPORT.md, defects 1-8 and its observations)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import nas
from nas.cli import app, next_steps
from nas.errors import ConfigError
from nas.export import OnnxModule, _onnx, export, pick
from nas.measure import accuracy_metric, count_metric, latency_metric
from nas.modelspec import DataRef, load_priced, record_model, save_trial_weights
from nas.scripts import load_file
from nas.spaces import Choice, ModelSpace, Space
from nas.spaces.training import accuracy
from nas.verify import verify


# ------------------------------------------------------------------------------ data and spaces, importable by name
def flat_splits(seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Signals (N, 40): a layout the eager network of SCRIPT takes, while it is traced on (N, 1, 40)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(120, 40, generator=g)
    y = (x[:, :20].sum(1) > 0).long()
    return {"train": (x[:60], y[:60]), "valid": (x[60:], y[60:])}


def text_splits(length: int = 12, vocab: int = 50) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Token ids of 12 tokens: shorter than the space's max_len of 16, which its models accept."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, vocab, (90, length), generator=g)
    y = (x[:, 0] > vocab // 2).long()
    return {"train": (x[:60], y[:60]), "valid": (x[60:], y[60:])}


class Widths(ModelSpace):
    """A tiny importable space of four MLPs (trained weights, no supernet)."""

    def __init__(self) -> None:
        super().__init__(width=Choice([2, 4, 8, 16]))

    def build(self, arch):
        return nn.Sequential(nn.Linear(8, arch["width"]), nn.ReLU(), nn.Linear(arch["width"], 2))

    def example_input(self, arch, batch_size: int = 1):
        return torch.zeros(batch_size, 8)


class Guarded(nn.Module):
    """A forward that branches on the batch size (skips batch norm for one sample): torch.export keeps one branch."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv, self.bn, self.head = nn.Conv1d(1, width, 3, padding=1), nn.BatchNorm1d(width), nn.Linear(width, 2)
        self.bn.running_mean.fill_(3.0)

    def forward(self, x):
        h = self.conv(x).mean(-1)
        if h.shape[0] > 1:
            h = self.bn(h)
        return self.head(h)


class GuardedSpace(ModelSpace):
    def __init__(self) -> None:
        super().__init__(width=Choice([4, 8]))

    def build(self, arch):
        return Guarded(arch["width"])

    def example_input(self, arch, batch_size: int = 1):
        return torch.zeros(batch_size, 1, 40)


@pytest.fixture(scope="module")
def widths_search(tmp_path_factory):
    """A 4-trial search of `Widths` (all four on the front); `latency_ms` recorded only for widths 8 and 16.
    On one torch thread while the module's tests use it (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    wd = tmp_path_factory.mktemp("widths") / "wd"
    space = Widths()
    record_model(wd, space, metrics={"params": count_metric("params")})

    def evaluate(arch):
        torch.manual_seed(arch["width"])
        save_trial_weights(wd, arch, space.build(arch).eval())
        out = {"params": float(space.count(arch)["params"]), "score": float(arch["width"])}
        if arch["width"] >= 8:
            out["latency_ms"] = arch["width"] / 10
        return out

    result = nas.search(space, evaluate, {"score": "max", "params": "min"}, strategy="random", budget=4, seed=0,
                        workdir=wd)
    assert len(result.pareto_front()) == 4
    yield result
    torch.set_num_threads(before)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------ 1: a module class of the user's script
SCRIPT = '''
import torch
from torch import nn
from nas.spaces import Choice, ModelSpace


class MyNet(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv, self.head = nn.Conv1d(1, width, 3, padding=1), nn.Linear(width, 2)

    def forward(self, x):
        if x.dim() == 2:  # takes (N, L) as well as (N, 1, L)
            x = x.unsqueeze(1)
        return self.head(torch.relu(self.conv(x)).mean(-1))


class MySpace(ModelSpace):
    def __init__(self):
        super().__init__(width=Choice([4, 8]))

    def build(self, arch):
        return MyNet(arch["width"])

    def example_input(self, arch, batch_size=1):
        return torch.zeros(batch_size, 1, 40)
'''


@pytest.fixture
def script_module(tmp_path):
    path = tmp_path / "audit_user_job.py"
    path.write_text(SCRIPT)
    module = load_file(path)  # as `nas run` loads it: module nas_script_audit_user_job
    yield path, module
    sys.modules.pop(module.__name__, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_a_script_module_class_is_remeasured_eager_and_its_program_only_labelled(tmp_path, script_module, caplog):
    """The module class MyNet lives in the user's script: export and verify re-measured the torch.export program
    as if the space could not be rebuilt, and accuracy on the (N, L) data the eager network takes crashed."""
    script, module = script_module
    torch.set_num_threads(1)
    space, data, wd = module.MySpace(), flat_splits(), tmp_path / "wd"
    record_model(wd, space, data=DataRef.of(flat_splits),
                 metrics={"acc": accuracy_metric("valid", scale=1), "params": count_metric("params"),
                          "latency_ms": latency_metric(warmup=1, repeats=3)})

    def evaluate(arch):
        torch.manual_seed(0)
        model = space.build(arch).eval()
        save_trial_weights(wd, arch, model)
        return {"acc": accuracy(model, *data["valid"]), "params": float(space.count(arch)["params"]),
                "latency_ms": 1e-6}

    result = nas.search(space, evaluate, {"acc": "max", "params": "min"}, budget=2, seed=0, workdir=wd)
    report = export(result, tmp_path / "models", constraint="latency_ms <= 0.001", data=data, onnx=False)
    for m in report.models:
        card = json.loads((m.path / "card.json").read_text())
        assert card["timed"]["network"] == "eager" and "why" not in card["timed"]
        assert card["program"]["network"] == "program" and card["program"]["measured"]["latency_ms"] > 0
        assert card["checks"]["load"] == "program" and m.measured["acc"] == m.searched["acc"]
    folder = report.models[0].path
    info = json.loads((folder / "model.json").read_text())
    assert info["module"]["class"] == "nas_script_audit_user_job.MyNet"
    info["module"]["class"] = "__main__.MyNet"  # as recorded by `python audit_user_job.py`
    (folder / "model.json").write_text(json.dumps(info))
    assert load_priced(folder)[1]["network"] == "eager"  # the script rebuilds it, whatever its module was named
    checked = verify(tmp_path / "models", data=data)  # the eager network misses the searched 1e-6 ms: flagged
    assert all(c.timed["network"] == "eager" and "breaks latency_ms <= 0.001" in c.flags[0] for c in checked.checks)
    script.rename(script.with_suffix(".gone"))  # the script is gone: the program, labelled and never checked
    sys.modules.pop(module.__name__, None)
    with caplog.at_level(logging.WARNING, logger="nas.verify"):
        checked = verify(tmp_path / "models", data=data)
    assert all(c.timed["network"] == "program" and c.ok and c.error["acc"] == 0 for c in checked.checks)
    assert "latency_ms reported, not checked" in caplog.text


# ------------------------------------------------------------------------------ 2: a failed re-export
def test_a_folder_in_the_way_is_refused_before_anything_changes(widths_search, tmp_path):
    out = tmp_path / "models"
    first = export(widths_search, out, top=1, onnx=False)
    before = _files(out)
    last = widths_search.pareto_front()[-1].number
    mine = out / f"trial-{last:04d}"
    mine.mkdir()
    (mine / "my_notes.txt").write_text("mine\n")
    with pytest.raises(ConfigError, match=f"trial-{last:04d} is in the way"):
        export(widths_search, out, onnx=False)
    assert _files(out) == {**before, f"trial-{last:04d}/my_notes.txt": b"mine\n"}
    assert sorted(p.name for p in out.iterdir()) == sorted(["export.json", first.models[0].path.name, mine.name])


def test_a_re_export_failing_while_moving_in_leaves_the_previous_one(widths_search, tmp_path, monkeypatch):
    import nas.export as export_module

    out = tmp_path / "models"
    export(widths_search, out, top=2, onnx=False)
    (out / "verify.json").write_text("{}")
    (out / "mine.txt").write_text("mine")
    before = _files(out)
    real, calls = export_module.os.replace, []

    def failing(src, dst):  # moving the second new folder in fails
        calls.append(Path(dst))
        if calls[-1].parent == out and calls[-1].name.startswith("trial-") and Path(src).parent.name.startswith(
                ".export-") and sum(p.parent == out and p.name.startswith("trial-") for p in calls) == 2:
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(export_module.os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        export(widths_search, out, onnx=False)
    monkeypatch.setattr(export_module.os, "replace", real)
    assert _files(out) == before and not any(p.name.startswith(".") for p in out.iterdir())
    assert verify(out, write=False).checks


# ------------------------------------------------------------------------------ 3: sentences shorter than max_len
def test_a_transformer_exports_when_the_data_is_shorter_than_max_len(tmp_path):
    from nas.spaces.transformer import ElasticTransformerConfig, ElasticTransformerSpace

    torch.set_num_threads(1)
    torch.manual_seed(0)
    space = ElasticTransformerSpace(ElasticTransformerConfig(vocab_size=50, max_len=16, hidden=16, head_dim=8,
                                                             depths=(1, 2), heads=(1, 2), ffn_dims=(16, 32)))
    data, wd = text_splits(), tmp_path / "wd"
    supernet = space.supernet().eval()
    spec = record_model(wd, space, supernet=supernet, data=DataRef.of(text_splits),
                        metrics={"acc": accuracy_metric("valid"), "params": count_metric("params")})
    inherited = spec.evaluator(supernet, data)
    result = nas.search(space, lambda a: {**inherited(a), "params": float(space.count(a)["params"])},
                        {"acc": "max", "params": "min"}, budget=2, seed=0, workdir=wd)
    report = export(result, tmp_path / "models", data=data)
    for m in report.models:
        assert m.checks["supernet_max_abs_diff"] < 1e-5 and m.checks["onnx"]["onnxruntime_max_abs_diff"] < 1e-4
        assert abs(m.measured["acc"] - m.searched["acc"]) < 1e-6
    onnx_file = report.models[0].path / "model.onnx"
    with pytest.raises(ConfigError, match=r"takes inputs of \[16\] per example .* these have \[12\]"):
        OnnxModule(onnx_file, (16,), torch.long)(data["valid"][0][:2])


# ------------------------------------------------------------------------------ 4: a cell-space supernet
def test_a_nb201_supernet_search_exports_and_matches_its_supernet(tmp_path):
    from nas.datasets import digits_splits
    from nas.spaces.cell import CellSupernet, NasBench201Space

    torch.set_num_threads(1)
    torch.manual_seed(0)
    space = NasBench201Space(channels=4, cells_per_stage=1, stages=2)
    data, wd = digits_splits(), tmp_path / "wd"
    supernet = space.supernet().eval()
    spec = record_model(wd, space, supernet=supernet, data=DataRef.of(digits_splits),
                        calibration={"split": "train", "size": 200, "batch_size": 100},
                        metrics={"acc": accuracy_metric("valid"), "params": count_metric("params")})
    inherited = spec.evaluator(supernet, data)
    result = nas.search(space, lambda a: {**inherited(a), "params": float(space.count(a)["params"])},
                        {"acc": "max", "params": "min"}, budget=2, seed=0, workdir=wd)
    report = export(result, tmp_path / "models", data=data, onnx=False)
    for m in report.models:
        assert m.checks["supernet_max_abs_diff"] < 1e-5 and abs(m.measured["acc"] - m.searched["acc"]) < 1e-6
    from nas.export import _takes_arch  # after export: on the old code, export itself failed (TypeError)

    assert _takes_arch(supernet) and isinstance(supernet, CellSupernet) and not _takes_arch(nn.Linear(2, 2))


# ------------------------------------------------------------------------------ 5: a batch-size-dependent forward
def test_a_forward_that_branches_on_the_batch_size_is_an_error_naming_it(tmp_path):
    wd = tmp_path / "wd"
    space = GuardedSpace()
    record_model(wd, space, metrics={"params": count_metric("params")})

    def evaluate(arch):
        save_trial_weights(wd, arch, space.build(arch).eval())
        return {"params": float(space.count(arch)["params"])}

    result = nas.search(space, evaluate, {"params": "min"}, budget=1, seed=0, workdir=wd)
    with pytest.raises(ConfigError, match=r"model\.pt2: disagrees with the network \(Guarded\) at batch size 1"):
        export(result, tmp_path / "models")
    assert not (tmp_path / "models").exists()
    x = torch.randn(8, 1, 40, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match=r"model\.onnx: disagrees with the network \(Guarded\) at batch size 1"):
        _onnx(Guarded().eval(), torch.zeros(2, 1, 40), tmp_path / "model.onnx", x)


# ------------------------------------------------------------------------------ 6: a constraint on a missing metric
def test_a_constraint_on_a_metric_some_picks_lack_leaves_them_out(widths_search, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="nas.export"):
        picks = pick(widths_search, constraint="latency_ms <= 1")
    assert [t.arch["width"] for t in picks] == [8]
    assert "which recorded no 'latency_ms'" in caplog.text
    result = CliRunner().invoke(app, ["export", str(widths_search.workdir), "--out", str(tmp_path / "models"),
                                      "--no-onnx", "--constraint", "latency_ms <= 1"])
    assert result.exit_code == 0 and result.exception is None, result.output
    assert len(json.loads((tmp_path / "models" / "export.json").read_text())["models"]) == 1


# ------------------------------------------------------------------------------ 7: a plain Space
def test_record_model_refuses_a_plain_space_by_name(tmp_path):
    with pytest.raises(ConfigError, match="space: Space is not a nas.spaces.ModelSpace"):
        record_model(tmp_path / "wd", Space(width=Choice([4, 8])), metrics={"params": count_metric("params")})
    assert not (tmp_path / "wd").exists()


# ------------------------------------------------------------------------------ 8: a relative --out; card threads
def test_a_relative_out_gives_cards_absolute_paths(widths_search, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = export(widths_search, "my models", top=1, onnx=False)
    folder = (tmp_path / "my models").resolve() / report.models[0].path.name
    card = json.loads((folder / "card.json").read_text())
    assert card["path"] == str(folder) and report.out == folder.parent and folder.is_absolute()
    text = (folder / "card.md").read_text()
    assert f'torch.export.load("{folder}/model.pt2")' in text
    assert "None thread" not in text and "thread(s)" not in text  # no latency recipe: no thread count to give


def test_next_steps_quote_a_workdir_with_spaces(widths_search):
    hint = next_steps(widths_search, Path("runs/my run"))
    assert "nas status 'runs/my run' | nas pareto 'runs/my run' --plot" in hint
    assert next_steps(widths_search, Path("runs/x")).startswith("next: nas status runs/x |")


# ------------------------------------------------------------------------------ a re-evaluated architecture
def test_an_architecture_evaluated_twice_is_picked_once(widths_search, caplog):
    first = widths_search.pareto_front()[1]
    again = replace(first, number=len(widths_search.trials), metrics=dict(first.metrics))
    result = replace(widths_search, trials=[*widths_search.trials, again])
    assert again in result.pareto_front()  # equal metrics: both are non-dominated
    with caplog.at_level(logging.INFO, logger="nas.export"):
        picks = pick(result)
    assert [t.number for t in picks] == [t.number for t in widths_search.pareto_front()]
    assert f"trial {again.number} is architecture {first.arch_id} again (trial {first.number})" in caplog.text
