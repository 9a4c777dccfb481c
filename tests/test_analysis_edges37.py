"""Analysis and output commands at their edges: `nas verify` reports a pick it cannot load as a failed check (and
never leaves an earlier pass behind), flags a count that re-measures otherwise and a folder holding another pick's
model; output flags of one command may not share a file; objective names holding a comma are selectable; the
`next:` hint after a lowered budget resumes something; `fidelity=` takes numpy numbers; docs/optuna.md's pruning
reports carry every objective."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import nas
from nas.cli import app, next_steps
from nas.errors import ConfigError
from nas.export import export
from nas import measure
from nas.measure import accuracy_metric, count_metric, latency_metric
from nas.modelspec import record_model, save_trial_weights
from nas.spaces import Choice, Space
from nas.spaces.cell import NasBench201Space
from nas.verify import VERIFY_REPORT, verify

ROOT = Path(__file__).resolve().parents[1]
NB = NasBench201Space(channels=4, cells_per_stage=1, stages=1)
TOY = Space(width=Choice([1, 2, 3, 4]), depth=Choice([1, 2, 3]))  # 12 architectures


# ---------------------------------------------------------------------------------------- nas verify
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Three trained NB201 cells exported (params counted; every trial on the front), with a passing verify.json."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("verify")
    wd = root / "wd"
    record_model(wd, NB, metrics={"params": count_metric("params")})

    def train(arch):
        torch.manual_seed(0)
        save_trial_weights(wd, arch, NB.build(arch))
        params = float(NB.count(arch)["params"])
        return {"params": params, "score": params}  # a trade-off: no trial dominates another

    nas.search(NB, train, {"params": "min", "score": "max"}, strategy="random", budget=3, seed=0, workdir=wd)
    out = root / "models"
    export(wd, out, onnx=False)
    assert verify(out).ok and json.loads((out / VERIFY_REPORT).read_text())["ok"] is True
    yield out
    torch.set_num_threads(before)


def _copy(models: Path, tmp_path: Path) -> tuple[Path, list[Path]]:
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    entries = json.loads((copy / "export.json").read_text())["models"]
    assert len(entries) >= 2 and len({e["searched"]["params"] for e in entries}) == len(entries)
    return copy, [copy / e["path"] for e in entries]


def _change_arch(folder: Path, other: Path) -> None:
    info = json.loads((folder / "model.json").read_text())
    info["arch"] = json.loads((other / "model.json").read_text())["arch"]
    (folder / "model.json").write_text(json.dumps(info))


DAMAGE = {
    "weights deleted": (lambda f, o: (f / "weights.pt").unlink(), "weights.pt: weights file not found"),
    "weights garbage": (lambda f, o: (f / "weights.pt").write_bytes(b"garbage"),
                        "weights.pt: not a readable weights file"),
    "folder deleted": (lambda f, o: shutil.rmtree(f), "no exported model here"),
    "arch changed": (_change_arch, "does not fit the architecture in model.json"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_verify_flags_a_pick_it_cannot_load_checks_the_others_and_rewrites_verify_json(exported, tmp_path, damage):
    """It raised for the whole directory: the other picks went unchecked and the earlier verify.json (ok: true)
    stayed as it was."""
    copy, folders = _copy(exported, tmp_path)
    assert json.loads((copy / VERIFY_REPORT).read_text())["ok"] is True
    spoil, said = DAMAGE[damage]
    spoil(folders[0], folders[1])
    report = verify(copy)
    assert not report.ok and len(report.checks) == len(folders)
    bad, *others = report.checks
    assert bad.measured == {} and any(said in f for f in bad.flags), bad.flags
    assert all(c.ok and c.measured for c in others)  # still re-measured and checked
    written = json.loads((copy / VERIFY_REPORT).read_text())
    assert written["ok"] is False and written["models"][0]["flags"] == bad.flags


def test_nas_verify_of_an_unloadable_pick_exits_non_zero_with_a_failed_report(exported, tmp_path):
    copy, folders = _copy(exported, tmp_path)
    (folders[0] / "weights.pt").unlink()
    out = CliRunner().invoke(app, ["verify", str(copy)])
    assert out.exit_code == 1, out.output
    assert f"verify failed: 1 of {len(folders)} exported models flagged" in out.output
    written = json.loads((copy / VERIFY_REPORT).read_text())
    assert written["ok"] is False and "weights file not found" in written["models"][0]["flags"][0]


def test_a_verify_that_cannot_read_the_export_leaves_no_earlier_pass_behind(exported, tmp_path):
    copy, _ = _copy(exported, tmp_path)
    (copy / "export.json").write_text("{not json")
    with pytest.raises(ConfigError):
        verify(copy)
    assert not (copy / VERIFY_REPORT).exists()


def test_verify_flags_a_count_that_re_measures_otherwise(exported, tmp_path):
    """Only accuracy mismatches were flagged: searched params 100 against 5712 measured passed."""
    copy, _ = _copy(exported, tmp_path)
    index = json.loads((copy / "export.json").read_text())
    index["models"][1]["searched"]["params"] = 100.0
    (copy / "export.json").write_text(json.dumps(index))
    report = verify(copy, write=False)
    assert report.checks[0].ok and not report.checks[1].ok
    assert any(f.startswith("params re-measured") and "searched 100" in f for f in report.checks[1].flags)


def test_verify_flags_a_folder_holding_another_picks_model(exported, tmp_path):
    """Every file of one pick copied over another's: export.json still names the first, and it passed where no
    accuracy recipe could catch it."""
    copy, folders = _copy(exported, tmp_path)
    for f in folders[1].iterdir():
        shutil.copy(f, folders[0] / f.name)
    index = json.loads((copy / "export.json").read_text())
    first, second = index["models"][0], index["models"][1]
    report = verify(copy, write=False)
    flags = report.checks[0].flags
    assert any(second["arch_id"] in f and first["arch_id"] in f for f in flags), flags
    assert any(f.startswith("params re-measured") for f in flags), flags
    assert all(c.ok for c in report.checks[1:])


def test_count_mismatches_are_exact_and_only_for_counts():
    recipes = {"p": count_metric("params"), "acc": accuracy_metric(), "ms": latency_metric()}
    assert measure.count_mismatches(recipes, {"p": 10.0, "acc": 1.0, "ms": 1.0}, {"p": 10.0, "acc": 2.0, "ms": 9.0}) == []
    lines = measure.count_mismatches(recipes, {"p": 10.0}, {"p": 11.0})
    assert len(lines) == 1 and lines[0].startswith("p re-measured 11, searched 10")


# ---------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def toy_wd(tmp_path_factory):
    """12 evaluations of a toy space, objectives with a ':' and a ',' in their names."""
    wd = tmp_path_factory.mktemp("toy") / "wd"

    def evaluate(arch):
        return {"val:acc": arch["width"] + arch["depth"] / 10, "lat ms,p50": float(arch["width"] * arch["depth"])}

    nas.search(TOY, evaluate, {"val:acc": "max", "lat ms,p50": "min"}, strategy="random", budget=12, seed=0,
               workdir=wd)
    return wd


@pytest.mark.parametrize("command, flags", [
    ("importance", ["--plot", "--json"]), ("importance", ["--effects", "--plot"]),
    ("history", ["--plot", "--curves"]), ("history", ["--parallel", "--timeline"]),
])
def test_two_output_flags_naming_one_file_are_refused_before_anything_is_written(toy_wd, tmp_path, command, flags):
    """The second output silently replaced the first, and both were reported written (exit 0)."""
    target = tmp_path / "same.png"
    args = [command, str(toy_wd)] + [x for flag in flags for x in (flag, str(target))]
    if command == "importance":
        args += ["--metric", "val:acc"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 2, out.output
    said = " ".join(out.output.split())
    assert "both write to" in said and all(f"{flag} " in said for flag in flags), said
    assert not target.exists()


def test_compare_refuses_plot_and_json_naming_one_file(toy_wd, tmp_path):
    target = tmp_path / "same.png"
    out = CliRunner().invoke(app, ["compare", str(toy_wd), "--plot", str(target), "--json", str(target)])
    assert out.exit_code == 2 and "--plot and --json both write to" in " ".join(out.output.split())
    assert not target.exists()


def test_objectives_holding_a_comma_are_selectable(toy_wd, tmp_path):
    """"lat ms,p50,val:acc" was split into 'lat ms', 'p50', 'val:acc': no way to name that objective."""
    runner = CliRunner()
    out = runner.invoke(app, ["pareto", str(toy_wd), "--objectives", "lat ms,p50,val:acc"])
    assert out.exit_code == 0, out.output
    plot = tmp_path / "c.png"
    out = runner.invoke(app, ["history", str(toy_wd), "--objectives", "lat ms,p50:max", "--plot", str(plot)])
    assert out.exit_code == 0 and plot.is_file(), out.output
    assert "best lat ms,p50 (max)" in " ".join(out.output.split())
    out = runner.invoke(app, ["pareto", str(toy_wd), "--objectives", "lat ms,val:acc"])  # a real typo still fails
    assert out.exit_code == 2 and "'lat ms' is not an objective" in " ".join(out.output.split())


def test_the_next_hint_after_a_lowered_budget_resumes_beyond_the_evaluations_used(tmp_path):
    """It said --budget 2 x the recorded budget, which after `--lower-budget` is below the evaluations used."""
    wd = tmp_path / "wd"

    def evaluate(arch):
        return {"score": float(arch["width"])}

    nas.search(TOY, evaluate, {"score": "max"}, strategy="random", budget=6, seed=0, workdir=wd)
    result = nas.search(TOY, evaluate, {"score": "max"}, strategy="random", budget=2, seed=0, workdir=wd,
                        lower_budget=True)
    assert result.config["budget"] == 2 and result.used == 6
    hint = next_steps(result, wd)
    budget = int(re.search(r"nas resume \S+ --budget (\d+)", hint).group(1))
    assert budget > result.used


# ---------------------------------------------------------------------------------------- fidelity=
@pytest.mark.parametrize("given, want", [(np.int64(3), 3), (np.float32(2.5), 2.5), (np.int32(2), 2), (4, 4)])
def test_fidelity_takes_numpy_numbers_as_their_python_twins(tmp_path, given, want):
    """np.int64(3) was refused as 'not a positive number'."""
    seen = []

    def train(arch, budget):
        seen.append(budget)
        return {"score": float(arch["width"])}

    result = nas.search(TOY, train, {"score": "max"}, strategy="random", budget=2, seed=0, fidelity=given,
                        workdir=tmp_path / "wd")
    assert seen and all(b == want and type(b) is type(want) for b in seen)
    recorded = result.config["fidelity"]
    assert recorded == want and type(recorded) is type(want)


@pytest.mark.parametrize("given", [np.bool_(True), np.int64(0), np.float64("nan")])
def test_fidelity_still_refuses_numpy_values_that_are_no_positive_number(given):
    with pytest.raises(ConfigError, match="^fidelity: expected a positive number"):
        nas.search(TOY, lambda arch, budget: {"score": 1.0}, {"score": "max"}, budget=2, seed=0, fidelity=given)


# ---------------------------------------------------------------------------------------- docs/optuna.md
def test_docs_optuna_pruning_reports_carry_every_objective_of_their_study(tmp_path):
    """The ask/tell pruning example reported only accuracy, which a study with a pruner now refuses unless
    accuracy is its only objective; the shell example likewise."""
    text = (ROOT / "docs" / "optuna.md").read_text()
    row = next(line for line in text.splitlines() if "study.report(arch" in line)
    objectives = eval(re.search(r"nas\.Study\(space, (\{[^}]*\}), pruner=\"median\"\)", row).group(1))
    report = re.search(r"study\.report\(arch, (\{[^}]*\})\)", row).group(1)
    epoch = re.search(r"nas epoch DIR ID ((?:--metric \w+=\.\.\. ?)+)", row).group(1)
    assert set(re.findall(r"--metric (\w+)=", epoch)) == set(objectives)
    with nas.Study(TOY, objectives, strategy="random", budget=2, seed=0, workdir=tmp_path / "s",
                   pruner="median") as study:
        arch = study.ask()
        metrics = eval(report, {"acc": 0.5, "lat": 3.0, "accuracy": 0.5, "latency_ms": 3.0})
        study.report(arch, metrics)  # refused with a ConfigError when it lacks an objective
        study.tell(arch, metrics)


# ---------------------------------------------------------------------------------------- README
def count_params(arch):
    """The README's cheap evaluator, by name (its repr shows the name)."""
    return {}


def test_readme_shows_the_repr_python_prints_for_a_cheap_evaluator():
    """README said `Evaluator(fn=count_params, cheap=True)`; the dataclass prints the function object."""
    shown = re.sub(r" at 0x[0-9a-f]+>", " at 0x...>", repr(nas.cheap(count_params)))
    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.startswith("nas.cheap(count_params)"))
    assert line.split("# ", 1)[1] == shown
