"""Export of Pareto-optimal subnets: standalone weights, ONNX, model cards, load_subnet, verify, CLI, docs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.export import export
from nas.measure import accuracy_metric, count_metric, latency_metric
from nas.modelspec import (DataRef, load_model_spec, load_subnet,
                           record_model, save_trial_weights)
from nas.objectives import Constraint, Objective
from nas.spaces.ofa import OFAConfig, OFASpace
from nas.spaces.training import SandwichRule, recalibrate_bn
from nas.spaces.transformer import FlexiBertConfig, FlexiBertSpace
from nas.store import JOURNAL
from nas.verify import Check, _flags
from tests.docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]
CONFIG = OFAConfig(stage_channels=(8, 8, 8), head_channels=16, num_classes=4, resolutions=(32, 40))
CALIBRATION = {"split": "train", "size": 256, "batch_size": 128}


def synthetic_splits(seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Four classes of noisy 40-sample sine waves told apart by their frequency (learnable in a few epochs)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (900,), generator=g)
    t = torch.arange(40.0) / 40
    phase = torch.rand(900, 1, generator=g) * 6.2832
    x = torch.sin(6.2832 * (1.0 + 1.5 * y[:, None]) * t + phase) + 0.8 * torch.randn(900, 40, generator=g)
    return {"train": (x[:600], y[:600]), "valid": (x[600:], y[600:])}


def _search(workdir: Path, budget: int = 10) -> nas.SearchResult:
    torch.manual_seed(0)
    space = OFASpace(CONFIG)
    data = synthetic_splits()
    supernet = space.supernet()
    SandwichRule(epochs=4, batch_size=50, n_random=1, lr=1e-2).fit(supernet, *data["train"])
    spec = record_model(workdir, space, supernet=supernet, data=DataRef.of(synthetic_splits),
                        calibration=CALIBRATION,
                        metrics={"acc": accuracy_metric("valid", batch_size=100), "params": count_metric("params"),
                                 "latency_ms": latency_metric(repeats=5, warmup=1, statistic="min")},
                        notes={"train_seconds": 1.0})
    inherited = spec.evaluator(supernet, data)

    def evaluate(arch):
        return {**inherited(arch), "params": space.count(arch)["params"]}

    return nas.search(space, evaluate, {"acc": "max", "params": "min"}, strategy="nsga2", budget=budget, seed=0,
                      workdir=workdir)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Iterator[tuple[nas.SearchResult, Path]]:
    """One search for the module, on one torch thread while the module's tests use it (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    wd = tmp_path_factory.mktemp("export") / "wd"
    yield _search(wd), wd
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def exported(searched, tmp_path_factory):
    result, wd = searched
    out = tmp_path_factory.mktemp("models") / "models"
    return export(result, out, data=synthetic_splits(), verify=True), wd


def test_every_pick_gets_its_files_and_a_card(exported, searched):
    report, wd = exported
    result = searched[0]
    front = result.pareto_front()
    assert [m.trial for m in report.models] == [t.number for t in front] and report.complete
    assert "search complete: 10 of 10" in report.note
    for m in report.models:
        names = {p.name for p in m.path.iterdir()}
        assert {"arch.json", "model.json", "weights.pt", "model.onnx", "card.md", "card.json"} <= names
        card = json.loads((m.path / "card.json").read_text())
        assert card["arch"] == result.trials[m.trial].arch and card["search"]["seed"] == 0
        assert card["search"]["evaluations"] == 10 and card["search"]["training_seconds"] == 1.0
        assert card["device"]["torch_device"] == "cpu" and card["device"]["threads"] == 1
        by_name = {o["name"]: o for o in card["objectives"]}
        assert set(by_name) == {"acc", "params"}
        assert by_name["params"]["searched"] == by_name["params"]["measured"]  # counted again, same network
        assert card["measured"]["latency_ms"] > 0  # re-measured on this CPU (not searched here)
        assert "| acc (max) |" in (m.path / "card.md").read_text()
    index = json.loads((report.out / "export.json").read_text())
    assert index["complete"] and [e["trial"] for e in index["models"]] == [m.trial for m in report.models]


def test_loaded_module_equals_the_supernet_and_onnx_matches(exported):
    """Acceptance: standalone == supernet for that architecture (1e-5); ONNX within 1e-4; accuracy within 0.5 pt."""
    import onnxruntime as ort

    report, wd = exported
    spec = load_model_spec(wd)
    space = spec.build_space()
    supernet = space.supernet()
    supernet.load_state_dict(torch.load(wd / "supernet.pt", weights_only=True))
    data = synthetic_splits()
    x = data["valid"][0][:50]
    calib = data["train"][0][:CALIBRATION["size"]].split(CALIBRATION["batch_size"])
    for m in report.models:
        arch = space.validate(json.loads((m.path / "arch.json").read_text())["arch"])
        recalibrate_bn(supernet, calib, call=lambda b: supernet(b, arch))  # the supernet's own BN, for arch
        module = load_subnet(m.path)
        with torch.no_grad():
            want, got = supernet.eval()(x, arch), module(x)
        assert torch.allclose(got, want, atol=1e-5, rtol=0), float((got - want).abs().max())
        session = ort.InferenceSession(str(m.path / "model.onnx"), providers=["CPUExecutionProvider"])
        onnx_out = session.run(None, {"input": x.unsqueeze(1).numpy()})[0]
        assert np.abs(onnx_out - got.numpy()).max() < 1e-4
        assert abs(m.measured["acc"] - m.searched["acc"]) <= 0.5
        assert m.checks["supernet_max_abs_diff"] < 1e-5 and m.checks["onnx"]["onnxruntime_max_abs_diff"] < 1e-4


def test_verify_remeasures_and_reports_errors(exported):
    report, _ = exported
    v = report.verify
    assert v is not None and [c.trial for c in v.checks] == [m.trial for m in report.models]
    for c, m in zip(v.checks, report.models):
        assert abs(c.error["acc"]) <= 0.5 and c.error["params"] == 0 and c.measured["latency_ms"] > 0
        # latency: printed with its repeatability, and export's own (earlier) pass kept beside verify's
        assert set(c.repeatability) == set(m.repeatability) == {"latency_ms"} and c.repeatability["latency_ms"] >= 0
        assert c.export_pass == {"latency_ms": m.measured["latency_ms"]}
    saved = json.loads((report.out / "verify.json").read_text())
    assert [m["trial"] for m in saved["models"]] == [c.trial for c in v.checks]
    assert saved["objectives"] == {"acc": "max", "params": "min"}


def test_remeasure_all_times_models_together_and_rejects_bad_rounds(exported):
    from nas.measure import remeasure_all

    report, _ = exported
    space = OFASpace(CONFIG)
    models = [(load_subnet(m.path), space, space.validate(json.loads((m.path / "arch.json").read_text())["arch"]))
              for m in report.models[:2]]
    recipes = {"latency_ms": latency_metric(warmup=1, repeats=2, rounds=4, statistic="min"),
               "params": count_metric("params")}
    out = remeasure_all(models, recipes, None)
    assert len(out) == len(models)
    for again, (module, sp, arch) in zip(out, models):
        assert again.values["latency_ms"] > 0 and again.values["params"] == sp.count(arch)["params"]
        assert set(again.repeatability) == {"latency_ms"}  # counts are exact: only timings carry a repeatability
    with pytest.raises(nas.ConfigError, match=r"metrics\.latency_ms\.rounds"):
        record_model(report.out / "bad", space, supernet=None, data=None,
                     metrics={"latency_ms": {**latency_metric(), "rounds": 0}})


def test_verify_flags_constraint_breaks_and_picks_that_left_the_front():
    objectives = [Objective("acc", "max"), Objective("latency_ms", "min")]
    checks = [Check(1, "a", {"acc": 90, "latency_ms": 1.0}, {"acc": 90, "latency_ms": 1.6}, {}, {}),
              Check(2, "b", {"acc": 80, "latency_ms": 0.8}, {"acc": 80, "latency_ms": 0.7}, {}, {}),
              Check(3, "c", {"acc": 85, "latency_ms": 0.9}, {"acc": 79, "latency_ms": 0.95}, {}, {})]
    _flags(checks, objectives, [Constraint.parse("latency_ms <= 1.5")])
    assert checks[0].flags == ["breaks latency_ms <= 1.5 after re-measurement (latency_ms = 1.6)"]
    assert checks[1].flags == []
    assert checks[2].flags == ["left the Pareto front after re-measurement (dominated by trial 2)"]


def test_load_subnet_in_a_fresh_process_without_the_supernet(exported, tmp_path):
    report, _ = exported
    m = report.models[0]
    copy = tmp_path / "elsewhere" / "model"
    shutil.copytree(m.path, copy)  # the model's folder alone: no workdir, no supernet.pt beside it
    x = torch.randn(3, 40, generator=torch.Generator().manual_seed(1))
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        want = load_subnet(m.path)(x)
    code = ("import sys, torch, nas\n"
            f"m = nas.load_subnet({str(copy)!r})\n"
            f"x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)\n"
            "with torch.no_grad():\n    y = m(x)\n"
            f"torch.save(y, {str(tmp_path / 'y.pt')!r})\n"
            "assert 'nas.spaces.training' not in sys.modules and 'nas.export' not in sys.modules\n"
            "print(type(m).__name__, m.training)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OFASubnet False"
    # not bit-equal: the child runs on torch's default thread count, this process on one, and a different
    # number of threads changes the order of float32 sums (observed: 2.4e-7)
    torch.testing.assert_close(torch.load(tmp_path / "y.pt", weights_only=True), want, rtol=0, atol=1e-5)


def test_export_from_an_unfinished_journal_exports_what_is_complete(searched, tmp_path):
    _, wd = searched
    killed = tmp_path / "killed"
    shutil.copytree(wd, killed)
    lines = (killed / JOURNAL).read_text().splitlines(keepends=True)
    # header + 6 trials, then half a record: as if the search was killed mid-write at trial 7 of 10
    (killed / JOURNAL).write_text("".join(lines[:7]) + lines[7][:40])
    (killed / "strategy.json").unlink(missing_ok=True)
    report = export(killed, tmp_path / "out", data=synthetic_splits(), onnx=False)
    assert not report.complete and "incomplete" in report.note and "6 of 10 evaluations" in report.note
    partial = nas.load(killed)
    assert len(partial.trials) == 6 and {m.trial for m in report.models} == {t.number for t in partial.pareto_front()}
    assert json.loads((tmp_path / "out" / "export.json").read_text())["complete"] is False
    card = json.loads((report.models[0].path / "card.json").read_text())
    assert card["search"]["complete"] is False and "incomplete" in card["search"]["note"]
    result = CliRunner().invoke(app, ["export", str(killed), "--out", str(tmp_path / "cli"), "--no-onnx"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("search incomplete (still running, or stopped): 6 of 10 evaluations") == 1
    assert "incomplete" not in result.stderr  # said once, not also as a log warning


def test_top_and_constraint_choose_the_picks(searched, tmp_path):
    result, _ = searched
    front = result.pareto_front()
    one = export(result, tmp_path / "one", top=1, data=synthetic_splits(), onnx=False)
    assert [m.trial for m in one.models] == [front[0].number]
    bound = sorted(t.metrics["params"] for t in front)[len(front) // 2]
    small = export(result, tmp_path / "small", constraint=f"params <= {bound}", data=synthetic_splits(), onnx=False)
    assert [m.trial for m in small.models] == [t.number for t in front if t.metrics["params"] <= bound]
    again = export(result, tmp_path / "one", top=2, data=synthetic_splits(), onnx=False)  # re-export replaces
    assert sorted(p.name for p in (tmp_path / "one").iterdir() if p.is_dir()) == sorted(m.path.name for m in again.models)


def test_cli_export_verify_and_their_output(searched, tmp_path):
    _, wd = searched
    runner = CliRunner()
    out = tmp_path / "models"
    result = runner.invoke(app, ["export", str(wd), "--out", str(out), "--top", "2", "--verify"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "exported 2 models" in result.stdout and "verify: 2 exported models, 2 re-measured" in result.stdout
    assert str(out.resolve()) in result.stdout
    again = runner.invoke(app, ["verify", str(out)], env={"COLUMNS": "200"})
    assert again.exit_code == 0 and "searched → measured" in again.stdout and (out / "verify.json").exists()


@pytest.mark.parametrize("args, expect", [
    (["export", "no_such_dir", "--out", "m"], "no_such_dir: no such directory"),
    (["verify", "no_such_dir"], "no_such_dir: no such directory"),
])
def test_cli_missing_dirs_are_one_line_errors(args, expect, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and expect in result.stderr and "Traceback" not in result.output


def test_bad_inputs_name_the_field(searched, tmp_path):
    result, wd = searched
    with pytest.raises(ConfigError, match="top: expected a positive int"):
        export(result, tmp_path / "o", top=0)
    with pytest.raises(ConfigError, match="'speed' is not a metric of this search"):
        export(result, tmp_path / "o", constraint="speed <= 3")
    with pytest.raises(ConfigError, match="not of the form"):
        export(result, tmp_path / "o", constraint="params small")
    bare = tmp_path / "bare"
    nas.search(OFASpace(CONFIG), lambda a: {"acc": 1.0}, {"acc": "max"}, budget=2, workdir=bare)
    with pytest.raises(ConfigError, match="has no model.json: record how to rebuild"):
        export(bare, tmp_path / "o")
    broken = tmp_path / "broken"
    shutil.copytree(wd, broken)
    spec = json.loads((broken / "model.json").read_text())
    for field, value, message in [("space", {**spec["space"], "class": "nas.spaces.ofa.NoSuchSpace"}, "space.class"),
                                  ("weights", "pickled", "weights: expected one of supernet, trained"),
                                  ("metrics", {"acc": {"kind": "vibes"}}, "metrics.acc.kind"),
                                  ("calibration", {"split": "train", "size": 1}, "calibration.size")]:
        (broken / "model.json").write_text(json.dumps({**spec, field: value}))
        with pytest.raises(ConfigError, match=message):
            export(broken, tmp_path / "o")
    other = {**spec["space"], "config": {**spec["space"]["config"], "kernels": [3, 5]}}
    (broken / "model.json").write_text(json.dumps({**spec, "space": other}))
    with pytest.raises(ConfigError, match="not the space the journal's search used"):
        export(broken, tmp_path / "o")
    wider = {**spec["space"], "config": {**spec["space"]["config"], "head_channels": 32}}
    (broken / "model.json").write_text(json.dumps({**spec, "space": wider}))
    with pytest.raises(ConfigError, match="supernet.pt: does not fit the space in model.json"):
        export(broken, tmp_path / "o")
    with pytest.raises(ConfigError, match="no exported model here"):
        load_subnet(tmp_path)
    with pytest.raises(ConfigError, match="no split 'test'"):
        record_model(tmp_path / "r", OFASpace(CONFIG), data=DataRef.of(synthetic_splits),
                     metrics={"acc": accuracy_metric("test")}).evaluator(OFASpace(CONFIG).supernet(),
                                                                         synthetic_splits())(OFASpace(CONFIG).smallest())
    with pytest.raises(ConfigError, match="data: the calibration and accuracy recipes need a dataset"):
        record_model(tmp_path / "r", OFASpace(CONFIG), metrics={"acc": accuracy_metric()})
    with pytest.raises(ConfigError, match="running script"):
        DataRef.of(type("Local", (), {"__module__": "__main__", "__qualname__": "f"}))


def test_a_broken_export_is_named_on_load(exported, tmp_path):
    report, _ = exported
    folder = tmp_path / "m"
    shutil.copytree(report.models[0].path, folder)
    info = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({k: v for k, v in info.items() if k != "arch"}))
    with pytest.raises(ConfigError, match="field 'arch' is missing"):
        load_subnet(folder)
    other = report.models[-1].path if len(report.models) > 1 else None
    (folder / "model.json").write_text(json.dumps(info))
    if other is not None and json.loads((other / "model.json").read_text())["arch"] != info["arch"]:
        shutil.copy(other / "weights.pt", folder / "weights.pt")
        with pytest.raises(ConfigError, match="does not fit the architecture"):
            load_subnet(folder)


def test_trained_weights_are_exported_without_a_supernet(tmp_path, one_thread):
    """A search that trains every architecture from scratch saves its weights per trial; export uses them."""
    space = OFASpace(CONFIG)
    wd = tmp_path / "wd"
    record_model(wd, space, metrics={"params": count_metric("params")})

    def evaluate(arch):
        torch.manual_seed(0)
        model = space.build(arch)
        with torch.no_grad():
            model.classifier.bias.fill_(0.5)  # stands in for training
        save_trial_weights(wd, arch, model)
        return {"params": space.count(arch)["params"], "neg_depth": -float(sum(s["depth"] for s in arch["stages"]))}

    result = nas.search(space, evaluate, {"params": "min", "neg_depth": "max"}, strategy="random", budget=4,
                        seed=0, workdir=wd)
    report = export(result, tmp_path / "out", onnx=False)
    assert not (wd / "supernet.pt").exists() and report.models
    for m in report.models:
        module = load_subnet(m.path)
        assert torch.equal(module.classifier.bias, torch.full((4,), 0.5))
        assert m.measured["params"] == m.searched["params"]
    shutil.rmtree(wd / "weights")
    with pytest.raises(ConfigError, match="trial weights .* not found"):
        export(result, tmp_path / "out2", onnx=False)


def test_docs_export_blocks_run(tmp_path, monkeypatch):
    """Every ```python block of docs/export.md, in order and in one namespace, in a fresh directory (but the
    `nas run` script, which tests/test_export_user_space.py runs as a script, with `nas run`)."""
    blocks = [b for b in python_blocks(ROOT / "docs" / "export.md") if not b.startswith("# digits_job.py")]
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "export_doc"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/export.md python block {i + 1}", "exec"), namespace)


def test_a_failed_export_leaves_nothing_half_written_and_keeps_the_previous_export(searched, tmp_path, monkeypatch):
    import nas.export as export_module

    result, _ = searched
    out = tmp_path / "models"
    first = export(result, out, top=2, data=synthetic_splits(), onnx=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real, calls = export_module._onnx, []

    def fails_on_the_second_model(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the ONNX exporter crashed")
        return real(*args, **kwargs)

    monkeypatch.setattr(export_module, "_onnx", fails_on_the_second_model)
    with pytest.raises(RuntimeError, match="the ONNX exporter crashed"):
        export(result, out, data=synthetic_splits())
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and len(first.models) == 2  # the earlier export is untouched, nothing was added
    calls.clear()
    with pytest.raises(RuntimeError, match="the ONNX exporter crashed"):
        export(result, tmp_path / "fresh", data=synthetic_splits())
    assert not (tmp_path / "fresh").exists()  # no model folder, no export.json, no staging folder, no empty folder


def test_dashboard_shows_the_model_card_of_an_exported_trial(exported, tmp_path):
    from nas.dashboard.views import open_views

    report, wd = exported
    (view,) = open_views([wd])
    assert view.trial(report.models[0].trial, graph=False)["card"] is None  # exported elsewhere: not found alone
    (with_models,) = open_views([wd], models=[report.out])
    for m in report.models:
        card = with_models.trial(m.trial, graph=False)["card"]
        assert card["json"]["arch"] == view.trial(m.trial, graph=False)["arch_tree"]
        assert card["markdown"] == (m.path / "card.md").read_text()
    beside = wd.parent / "exported-models"
    shutil.copytree(report.out, beside)  # beside the workdir: found without --models
    first = report.models[0]
    try:
        (found,) = open_views([wd])
        assert found.trial(first.trial, graph=False)["card"]["path"] == str(beside / first.path.name)
        # the view opened before the export sees it too, without a restart (its card index was cached for good)
        assert view.trial(first.trial, graph=False)["card"]["path"] == str(beside / first.path.name)
    finally:
        shutil.rmtree(beside)
    assert view.trial(first.trial, graph=False)["card"] is None  # and a removed export goes away


FOURIER = FlexiBertConfig(vocab_size=50, max_len=8, depths=(1,), ops=("fourier", "conv"), hidden=(16,), kernels=(3,),
                          ffn_depths=(1,), ffn_dims=(16,))


def test_a_pick_onnx_cannot_express_is_exported_without_model_onnx_and_the_others_with_it(tmp_path, one_thread,
                                                                                           caplog):
    """FlexiBERT's `fourier` mixer (torch.fft.fft2) has no ONNX opset-17 form: that pick gets weights, program and
    card, its card and export.json say why it has no model.onnx, the warning names the trial and the operator,
    the other pick keeps its ONNX, and verify, --quantize and the CLI cope with the missing file."""
    space = FlexiBertSpace(FOURIER)  # two architectures: one fourier layer, one conv layer
    wd = tmp_path / "wd"
    record_model(wd, space, metrics={"params": count_metric("params")})

    def train(arch):
        torch.manual_seed(0)
        save_trial_weights(wd, arch, space.build(arch))  # stands in for training
        return {"params": space.count(arch)["params"], "conv": float(arch["layers"][0]["op"] == "conv")}

    result = nas.search(space, train, {"params": "min", "conv": "max"}, strategy="random", budget=2, seed=0,
                        workdir=wd)
    with caplog.at_level("WARNING", logger="nas.export"):
        report = export(result, tmp_path / "out", verify=True)
    ops = {m.trial: result.trials[m.trial].arch["layers"][0]["op"] for m in report.models}
    assert sorted(ops.values()) == ["conv", "fourier"]  # both on the front, both exported
    (fourier,) = [m for m in report.models if ops[m.trial] == "fourier"]
    (conv,) = [m for m in report.models if ops[m.trial] == "conv"]
    assert not (fourier.path / "model.onnx").exists() and (fourier.path / "weights.pt").is_file()
    assert (conv.path / "model.onnx").is_file() and conv.checks["onnx"]["onnxruntime_max_abs_diff"] < 1e-4
    skip = fourier.checks["onnx"]
    assert skip["file"] is None and skip["op"] == "aten::fft_fft2" and "cannot convert" in skip["skipped"]
    card = json.loads((fourier.path / "card.json").read_text())
    assert card["checks"]["onnx"] == skip and "model.onnx" not in card["files"]
    md = (fourier.path / "card.md").read_text()
    assert "no `model.onnx`" in md and "aten::fft_fft2" in md and "or `model.onnx`" not in md
    index = {e["trial"]: e for e in json.loads((tmp_path / "out" / "export.json").read_text())["models"]}
    assert index[fourier.trial]["onnx"]["op"] == "aten::fft_fft2" and index[conv.trial]["onnx"]["file"] == "model.onnx"
    (warning,) = [r.getMessage() for r in caplog.records if "model.onnx" in r.getMessage()]
    assert f"trial {fourier.trial} " in warning and "aten::fft_fft2" in warning and "--no-onnx" in warning
    assert report.verify is not None and report.verify.ok and len(report.verify.checks) == 2
    with torch.no_grad():  # the fourier pick loads and runs without its ONNX file
        x = space.example_input(space.validate(card["arch"]), 3)
        assert load_subnet(fourier.path)(x).shape == (3, 2)

    q = export(result, tmp_path / "int8", quantize="int8")
    (qf,) = [m for m in q.models if ops[m.trial] == "fourier"]
    (qc,) = [m for m in q.models if ops[m.trial] == "conv"]
    assert [f.file for f in qf.files] == ["weights.pt"] and qf.checks["int8"]["file"] is None
    assert [f.file for f in qc.files] == ["weights.pt", "model.onnx", "model.int8.onnx"]
    assert "No `model.int8.onnx`" in (qf.path / "card.md").read_text()

    runner = CliRunner()
    cli = runner.invoke(app, ["export", str(wd), "--out", str(tmp_path / "cli")], env={"COLUMNS": "200"})
    assert cli.exit_code == 0, cli.output
    assert "exported 2 models" in cli.stdout
    again = runner.invoke(app, ["verify", str(tmp_path / "cli")], env={"COLUMNS": "200"})
    assert again.exit_code == 0, again.output
    q8 = runner.invoke(app, ["export", str(wd), "--out", str(tmp_path / "cli8"), "--quantize", "int8"],
                       env={"COLUMNS": "200"})  # the table read the int8 file of every pick: IndexError
    assert q8.exit_code == 0, q8.output
