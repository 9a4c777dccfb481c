"""Exporting a space the user wrote in a `nas run` script: workdir from the CLI, self-contained .pt2 / ONNX."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import nas
import nas.nn as nnn
from nas.cli import app
from nas.errors import ConfigError
from nas.modelspec import load_program, load_subnet, record_model, space_from_json, space_to_json
from nas.scripts import WORKDIR_ENV, run_workdir
from tests.docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]
# What a new user writes, as docs/export.md shows it: a CNN for scikit-learn's digits as a ModelSpace, in the
# script `nas run` runs; each architecture trained briefly from scratch, its model spec and weights recorded
# in the workdir `nas run --workdir` gave it (nas.run_workdir()).
(SCRIPT,) = [b for b in python_blocks(ROOT / "docs" / "export.md") if b.startswith("# digits_job.py")]

# A fresh interpreter with plain torch: -I ignores PYTHONPATH and the user site, and runs from a folder
# without the script; it must not import the toolkit or the user's module to run the program.
PLAIN_TORCH = '''
import sys, torch
x = torch.load(sys.argv[1], weights_only=True)
for i, path in enumerate(sys.argv[2:]):
    program = torch.export.load(path)
    with torch.no_grad():
        torch.save(program.module()(x), f"y{i}.pt")
loaded = sorted(m for m in sys.modules if m == "nas" or m.startswith(("nas.", "nas_script", "digits_job")))
assert not loaded, loaded
'''


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != WORKDIR_ENV}
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**env, "COLUMNS": "200"}, timeout=600)


@pytest.fixture(scope="module")
def user_export(tmp_path_factory):
    """`nas run digits_job.py --workdir runs/other`, then `nas export runs/other --out models`, each its own process."""
    root = tmp_path_factory.mktemp("user")
    script = root / "digits_job.py"
    script.write_text(SCRIPT)
    run = _cli(["run", str(script), "--workdir", "runs/other", "--budget", "3", "--strategy", "random",
                "--seed", "0"], root)
    assert run.returncode == 0, run.stdout + run.stderr
    wd = root / "runs" / "other"
    before = {p.relative_to(wd): p.read_bytes() for p in wd.rglob("*") if p.is_file() and p.name != "journal.lock"}
    exported = _cli(["export", "runs/other", "--out", "models"], root)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    after = {p.relative_to(wd): p.read_bytes() for p in wd.rglob("*") if p.is_file() and p.name != "journal.lock"}
    assert after == before  # export loaded the script to rebuild the space, and wrote nothing into the workdir
    return root, script, wd, root / "models"


def test_nas_run_puts_journal_spec_and_weights_in_the_workdir_it_was_given(user_export):
    root, script, wd, _ = user_export
    assert not (root / "runs" / "digits_job").exists()  # not the default workdir: the one passed by --workdir
    spec = json.loads((wd / "model.json").read_text())
    assert spec["space"] == {"class": "DigitsCNN", "script": str(script.resolve()), "config": None}
    assert spec["weights"] == "trained"
    trials = nas.load(wd).trials
    assert len(trials) == 3 and all(t.status == "ok" for t in trials)
    assert {p.stem for p in (wd / "weights").glob("*.pt")} == {nas.spaces.Architecture(t.arch).id for t in trials}


def test_exported_program_runs_with_plain_torch_in_a_fresh_process(user_export, tmp_path):
    import onnxruntime as ort

    root, script, wd, models = user_export
    index = json.loads((models / "export.json").read_text())
    assert len(index["models"]) >= 2
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # batch 5: not the traced batch of 2
    torch.save(x, tmp_path / "x.pt")
    folders = [models / entry["path"] for entry in index["models"]]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-I", "-c", PLAIN_TORCH, str(tmp_path / "x.pt"),
                           *[str(f / "model.pt2") for f in folders]], capture_output=True, text=True,
                          cwd=elsewhere, timeout=300, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr
    for i, folder in enumerate(folders):
        info = json.loads((folder / "model.json").read_text())
        assert info["load"] == "program" and info["program"]["dynamic_batch"]
        assert info["input"] == {"shape": [1, 8, 8], "dtype": "float32", "batch_dim": 0}
        assert {"weights.pt", "model.pt2", "model.onnx", "card.md", "card.json"} <= {p.name for p in folder.iterdir()}
        # the exported module: the user's class built for the architecture, with the trial's trained weights
        space = space_from_json(info["space"])
        module = space.build(space.validate(info["arch"]))
        module.load_state_dict(torch.load(wd / "weights" / f"{info['arch_id']}.pt", weights_only=True))
        with torch.no_grad():
            want = module.eval()(x)
        torch.testing.assert_close(torch.load(elsewhere / f"y{i}.pt", weights_only=True), want, rtol=0, atol=1e-5)
        session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        assert np.abs(session.run(None, {"input": x.numpy()})[0] - want.numpy()).max() < 1e-4
        card = json.loads((folder / "card.json").read_text())
        assert card["checks"]["program_max_abs_diff"] < 1e-5 and card["checks"]["load"] == "program"
        assert abs(card["measured"]["accuracy"] - card["searched"]["accuracy"]) < 1e-9  # the same trained network


def test_load_subnet_and_verify_need_neither_the_script_nor_the_workdir(user_export, tmp_path):
    root, script, wd, models = user_export
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    entry = json.loads((copy / "export.json").read_text())["models"][0]
    gone = script.with_suffix(".moved")
    script.rename(gone)  # the user's code is gone: the exported models still load and re-measure
    try:
        model = load_subnet(copy / entry["path"])
        x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = load_program(models / entry["path"] / "model.pt2")(x)
            assert torch.equal(model(x), want) and model.eval() is model
        with pytest.raises(ConfigError, match="captured in eval mode and cannot be trained"):
            model.train()
        result = CliRunner().invoke(app, ["verify", str(copy)], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        report = json.loads((copy / "verify.json").read_text())
        assert report["ok"] and all(abs(m["error"]["accuracy"]) < 1e-9 and m["error"]["params"] == 0
                                    for m in report["models"])
    finally:
        gone.rename(script)


def test_run_workdir_comes_from_nas_run_and_resume_and_is_restored(tmp_path, monkeypatch):
    monkeypatch.delenv(WORKDIR_ENV, raising=False)
    with pytest.raises(ConfigError, match="NAS_WORKDIR is not set"):
        run_workdir()
    assert run_workdir(default="runs/x") == Path("runs/x")
    script = tmp_path / "where.py"
    script.write_text("import nas\nfrom nas.spaces import Space, Integer\n"
                      "seen = [str(nas.run_workdir())]\n"
                      "space = Space(x=Integer(0, 3))\nobjectives = {'v': 'max'}\n"
                      "def evaluate(arch):\n"
                      "    seen.append(str(nas.run_workdir()))\n"
                      "    return {'v': float(arch['x'])}\n")
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", str(script), "--budget", "2", "--workdir", "some/where"])
    assert result.exit_code == 0, result.output
    module = sys.modules.pop("nas_script_where")
    assert set(module.seen) == {str((tmp_path / "some" / "where").resolve())} and len(module.seen) == 3
    assert WORKDIR_ENV not in os.environ  # set for the run only
    result = runner.invoke(app, ["resume", "some/where", "--budget", "3"])
    assert result.exit_code == 0, result.output
    module = sys.modules.pop("nas_script_where")
    assert set(module.seen) == {str((tmp_path / "some" / "where").resolve())} and WORKDIR_ENV not in os.environ


def test_a_script_space_needs_a_file_and_a_json_description(tmp_path):
    from nas.spaces import Integer, ModelSpace

    class NeedsArgs(ModelSpace):
        def __init__(self, n):
            super().__init__(x=Integer(0, n))

    with pytest.raises(ConfigError, match="not importable by name"):
        space_to_json(NeedsArgs(3))  # defined inside a function
    main = type(sys)("__main__")  # an interactive session: no file to load the class from again
    Interactive = type("Interactive", (ModelSpace,), {"__module__": "__main__", "__qualname__": "Interactive"})
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = main
    try:
        with pytest.raises(ConfigError, match="interactive session"):
            record_model(tmp_path / "wd", Interactive(x=Integer(0, 3)))
    finally:
        sys.modules["__main__"] = saved


def test_a_module_torch_export_cannot_capture(tmp_path, caplog):
    """Data-dependent Python control flow: an error for a user's space (its models load from the program),
    a warning for a toolkit space (load_subnet rebuilds those from their space)."""
    from nas.export import _program

    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x * 2 if float(x.sum()) > 0 else -x

    example = torch.ones(2, 3)
    with pytest.raises(ConfigError, match="Branchy: torch.export cannot capture this module"):
        _program({"class": "Mine", "script": "/x/job.py", "config": None}, Branchy(), example, tmp_path / "a.pt2")
    info = _program({"class": "nas.spaces.ofa.OFASpace", "config": {}}, torch.nn.Sequential(torch.nn.ReLU()),
                    example, tmp_path / "b.pt2")
    assert info["file"] == "b.pt2" and info["dynamic_batch"]
    Branchy.__module__ = "nas.spaces.fake"  # as if a toolkit layer
    with caplog.at_level("WARNING", logger="nas.export"):
        info = _program({"class": "nas.spaces.ofa.OFASpace", "config": {}}, Branchy(), example, tmp_path / "c.pt2")
    assert info["file"] is None and "no model.pt2" in caplog.text and not (tmp_path / "c.pt2").exists()


# ------------------------------------------------------------------------------ hw22 #4: re-measure what was priced
class TinyUserSpace(nas.spaces.ModelSpace):
    """A space outside the toolkit (importable, not `nas.*`): its exported models load from model.pt2."""

    def __init__(self) -> None:
        super().__init__(width=nas.spaces.Choice([4, 8, 16]))

    def build(self, arch):
        return torch.nn.Sequential(torch.nn.Linear(6, arch["width"]), torch.nn.ReLU(), torch.nn.Linear(arch["width"], 3))

    def example_input(self, arch, batch_size: int = 1):
        return torch.randn(batch_size, 6, generator=torch.Generator().manual_seed(0))


def test_export_and_verify_time_the_network_the_search_priced_not_the_program(tmp_path, monkeypatch, caplog):
    """The card and verify used to time `load_subnet`'s torch.export GraphModule (1.7-2x slower than the eager
    network the search priced), flagging picks that meet their latency constraint. Now they time
    `space.build(arch)` + weights.pt, say so, and give the program's own latency as a separate, labelled figure."""
    import nas.hardware.latency as latency
    from nas.export import export
    from nas.measure import count_metric, latency_metric
    from nas.modelspec import save_trial_weights
    from nas.verify import Check, _flags, verify
    from nas.objectives import Constraint

    space, wd = TinyUserSpace(), tmp_path / "wd"
    record_model(wd, space, metrics={"latency_ms": latency_metric(warmup=1, repeats=3, rounds=2, statistic="min"),
                                     "params": count_metric("params")})

    def evaluate(arch):
        torch.manual_seed(0)
        save_trial_weights(wd, arch, space.build(arch))
        return {"params": float(sum(p.numel() for p in space.build(arch).parameters())),
                "latency_ms": 0.001 * (20 - arch["width"])}  # conflicting objectives: several picks

    result = nas.search(space, evaluate, {"params": "min", "latency_ms": "min"}, strategy="random", budget=3, seed=0,
                        workdir=wd)
    timed: list[list[str]] = []
    real = latency.measure_latencies

    def spy(items, **kwargs):
        timed.append([type(m).__name__ for m, _ in items])
        return real(items, **kwargs)

    monkeypatch.setattr(latency, "measure_latencies", spy)
    report = export(result, tmp_path / "models", onnx=False)
    n = len(report.models)
    assert n >= 2
    assert timed == [["Sequential"] * n + ["GraphModule"] * n]  # priced networks and programs, in the same rounds
    index = json.loads((tmp_path / "models" / "export.json").read_text())
    for m, entry in zip(report.models, index["models"]):
        card = json.loads((m.path / "card.json").read_text())
        assert card["checks"]["load"] == "program" and card["timed"]["network"] == "eager"
        assert "the network the search priced" in card["timed"]["how"] and entry["timed"] == "eager"
        assert card["program"]["network"] == "program" and card["program"]["measured"]["latency_ms"] > 0
        assert entry["program"]["measured"] == card["program"]["measured"] and m.measured["latency_ms"] > 0
        text = (m.path / "card.md").read_text()
        assert "Re-measured on space.build(arch) + weights.pt" in text and "not what the search priced" in text
        assert card["checks"]["priced_max_abs_diff"] < 1e-6
    timed.clear()
    checks = verify(tmp_path / "models").checks
    assert timed == [["Sequential"] * n] and all(c.timed["network"] == "eager" for c in checks)
    # Where the space can no longer be rebuilt, verify times the program and says so, in the report and flags.
    for entry in index["models"]:
        path = tmp_path / "models" / entry["path"] / "model.json"
        info = json.loads(path.read_text())
        info["space"]["class"] = "tests.no_such_module.Gone"
        path.write_text(json.dumps(info))
    timed.clear()
    with caplog.at_level("WARNING", logger="nas.verify"):
        checks = verify(tmp_path / "models").checks
    assert timed == [["GraphModule"] * n] and "not the network the search priced" in caplog.text
    assert all(c.timed["network"] == "program" and "could not be rebuilt" in c.timed["why"] for c in checks)
    # the program's latency is reported, labelled, but never checked against a constraint (audit: export #1)
    check = Check(1, "p", {"latency_ms": 1.0}, {"latency_ms": 2.0}, {}, {}, timed=checks[0].timed,
                  conditions={"latency_ms": {}})
    _flags([check], [], [Constraint.parse("latency_ms <= 1.5")])
    assert check.ok and "latency_ms reported, not checked" in caplog.text


class TwoInputs(nnn.ModelSpace):
    """Image + side features: example_input returns a tuple (passed as positional arguments), as documented."""

    @classmethod
    def example_input(cls, batch_size=1):
        return torch.zeros(batch_size, 1, 8, 8), torch.zeros(batch_size, 5)

    def __init__(self):
        super().__init__()
        w = nnn.Choice("w", [4, 8])
        self.conv, self.side, self.head = nnn.Conv2d(1, w, 3, padding=1), nnn.Linear(5, w), nnn.Linear(w, 4)

    def forward(self, img, feats):
        return self.head(torch.relu(self.conv(img)).mean((2, 3)) + self.side(feats))


def test_a_model_of_two_inputs_searches_but_is_refused_for_export_before_the_search(tmp_path):
    # export assumed one input tensor: the search ran, then export crashed with AttributeError ('tuple' object ...)
    space = TwoInputs.space()
    arch = space.sample(np.random.default_rng(0))
    assert space.supernet().subnet(arch)(*space.example_input(arch, 2)).shape == (2, 4)
    with pytest.raises(ConfigError, match="export takes models of one input tensor, and ModuleSpace's example_input "
                                          "returns tuple"):
        record_model(tmp_path, space)
