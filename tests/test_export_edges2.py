"""Export and verify at their edges, found by walking the README as a new user: weights files that are empty or
hold another network, a one-shot search's model card and recipes, and a verify that re-measured nothing."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.measure import count_metric
from nas.modelspec import record_model, save_trial_weights
from nas.spaces.cell import NasBench201Space

pytestmark = pytest.mark.usefixtures("one_thread")
SPACE = NasBench201Space(channels=4, cells_per_stage=1, stages=1)


@pytest.fixture
def trained(tmp_path):
    """A search that trains every architecture (weights per trial), two trials."""
    wd = tmp_path / "wd"
    record_model(wd, SPACE, metrics={"params": count_metric("params")})

    def train(arch):
        save_trial_weights(wd, arch, SPACE.build(arch))
        return {"params": float(SPACE.count(arch)["params"])}

    result = nas.search(SPACE, train, {"params": "min"}, budget=2, seed=0, workdir=wd)
    return wd, result.best()


def test_a_weights_file_that_is_empty_or_holds_another_network_is_one_error_line(trained, tmp_path):
    """They gave a 78-line traceback (exit 1), or click's bare 'Aborted!' for an empty file."""
    wd, best = trained
    weights = wd / "weights" / f"{best.arch_id}.pt"
    runner = CliRunner()
    torch.save({"x": torch.zeros(3)}, weights)
    out = runner.invoke(app, ["export", str(wd), "--out", str(tmp_path / "m"), "--no-onnx"])
    assert out.exit_code == 2 and f"{best.arch_id}.pt: does not fit architecture {best.arch_id}" in out.output
    weights.write_bytes(b"")
    out = runner.invoke(app, ["export", str(wd), "--out", str(tmp_path / "m"), "--no-onnx"])
    assert out.exit_code == 2 and "not a readable weights file (EOFError (empty or cut short))" in out.output
    torch.save(SPACE.build(best.architecture).state_dict(), weights)
    assert runner.invoke(app, ["export", str(wd), "--out", str(tmp_path / "m"), "--no-onnx"]).exit_code == 0
    (next((tmp_path / "m").glob("trial-*")) / "weights.pt").write_bytes(b"")
    out = runner.invoke(app, ["verify", str(tmp_path / "m")])
    flags = json.loads((tmp_path / "m" / "verify.json").read_text())["models"][0]["flags"]
    assert out.exit_code == 1 and "weights.pt: not a readable weights file" in flags[0]


def test_a_one_shot_search_records_its_training_time_and_what_verify_can_re_measure(tmp_path):
    """search_darts's card said 0.0 s of search (the supernet's training left out), and verify called models
    with no recipe 're-measured ... ok'."""
    import json

    from nas.darts import DartsOptions, search_darts
    from nas.datasets import digits_splits

    data = {k: (x[:64], y[:64]) for k, (x, y) in digits_splits(seed=0).items()}
    space = NasBench201Space(channels=4, cells_per_stage=1, stages=1)
    wd = tmp_path / "darts"
    search_darts(space, data, method="darts", epochs=2, seed=0, workdir=wd,
                 options=DartsOptions(batch_size=32, retrain_epochs=1))
    history = json.loads((wd / "oneshot_history.json").read_text())
    spec = json.loads((wd / "model.json").read_text())
    trained_for = sum(r["seconds"] for r in history)
    assert spec["notes"]["train_seconds"] == pytest.approx(trained_for, abs=0.1) and trained_for > 0
    assert sorted(spec["metrics"]) == ["flops", "params"]
    runner = CliRunner()
    assert runner.invoke(app, ["export", str(wd), "--out", str(tmp_path / "m"), "--no-onnx"]).exit_code == 0
    out = runner.invoke(app, ["verify", str(tmp_path / "m")])
    assert out.exit_code == 0 and "1 re-measured, 0 flagged" in out.output.replace("\n", " ")
    card = json.loads(next((tmp_path / "m").glob("trial-*/card.json")).read_text())
    assert card["search"]["training_seconds"] == spec["notes"]["train_seconds"]


def test_verify_says_so_when_model_json_records_nothing_to_re_measure(tmp_path):
    wd = tmp_path / "wd"
    record_model(wd, SPACE)  # no metric recipe

    def train(arch):
        save_trial_weights(wd, arch, SPACE.build(arch))
        return {"params": float(SPACE.count(arch)["params"])}

    nas.search(SPACE, train, {"params": "min"}, budget=2, seed=0, workdir=wd)
    runner = CliRunner()
    assert runner.invoke(app, ["export", str(wd), "--out", str(tmp_path / "m"), "--no-onnx"]).exit_code == 0
    out = runner.invoke(app, ["verify", str(tmp_path / "m")])
    text = " ".join(out.output.split())
    assert out.exit_code == 0 and "0 re-measured" in text and "nothing could be re-measured" in text
    assert "reloaded; nothing re-measured" in text


def test_an_export_removes_the_staging_folders_that_killed_exports_left(trained, tmp_path):
    import os

    wd, _ = trained
    out = tmp_path / "m"
    dead, live = out / ".export-999999999", out / f".export-{os.getppid()}"  # no such process; a live one
    for stage in (dead, live):
        (stage / "trial-0001").mkdir(parents=True)
    assert CliRunner().invoke(app, ["export", str(wd), "--out", str(out), "--no-onnx"]).exit_code == 0
    assert not dead.exists() and live.exists() and list(out.glob("trial-*/model.json"))


def test_an_export_puts_back_what_one_killed_while_swapping_models_in_had_moved_aside(trained, tmp_path):
    """Killed between moving the previous export aside and moving the new one in, an export left the previous
    models hidden in out/.previous-PID for good (export.json listing folders that were gone); the next export
    puts back what nothing replaced, then exports as usual."""
    import json
    import os

    wd, _ = trained
    out = tmp_path / "m"
    assert CliRunner().invoke(app, ["export", str(wd), "--out", str(out), "--no-onnx"]).exit_code == 0
    listed = [m["path"] for m in json.loads((out / "export.json").read_text())["models"]]
    aside, live = out / ".previous-999999999", out / f".previous-{os.getppid()}"  # a killed export; a live one
    aside.mkdir()
    live.mkdir()
    os.replace(out / listed[0], aside / listed[0])  # the kill came right after the first model was moved aside
    (aside / "stale.json").write_text("{}")
    (out / "stale.json").write_text("{}")  # replaced already: the moved-aside copy is dropped
    assert CliRunner().invoke(app, ["export", str(wd), "--out", str(out), "--no-onnx"]).exit_code == 0
    assert not aside.exists() and live.exists()
    assert all((out / p / "model.json").is_file() for p in listed)
