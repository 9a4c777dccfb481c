"""Edges of the search and export API found by trying them from outside: a constraint on a metric whose name is
not an identifier (`top-1`), a resume whose strategy options spell out a default, and a workdir whose model.json
was about to describe another network than the one its journal searched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import nas
from nas import nn as nnn
from nas.cli import app
from nas.errors import ConfigError, JournalError
from nas.export import export
from nas.modelspec import MODEL_SPEC, SUPERNET, record_model, staged_records
from nas.objectives import Constraint
from nas.spaces import Choice, Integer, Space

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ constraints on any metric name
def _top1(arch: dict) -> dict[str, float]:
    return {"top-1": float(arch["a"])}


@pytest.mark.parametrize("constraint", [Constraint("top-1", "<=", 3), "top-1 <= 3", "top-1<=3"])
def test_a_workdir_constrained_on_top_1_loads_reports_and_enforces_it(tmp_path, constraint):
    """The journal stores "top-1 <= 3" (as it always did: workdirs journaled before the fix hold the same text);
    reading it back re-parses that text, which took only identifier-like names."""
    space = Space(a=Choice([1, 2, 3, 4, 5]))
    wd = tmp_path / "w"
    searched = nas.search(space, _top1, {"top-1": "max"}, constraints=[constraint], strategy="random", budget=5,
                          seed=0, workdir=wd)
    assert searched.config["problem"]["constraints"] == ["top-1 <= 3"]
    loaded = nas.load(wd)
    assert loaded.problem.constraints == (Constraint("top-1", "<=", 3),)
    assert loaded.best().metrics == {"top-1": 3.0}  # 4 and 5 were evaluated, and are infeasible
    assert sorted(t.metrics["top-1"] for t in loaded.feasible) == [1.0, 2.0, 3.0]
    assert len(loaded.completed) == 5
    status = CliRunner().invoke(app, ["status", str(wd)], env={"COLUMNS": "200"})
    assert status.exit_code == 0, status.output
    assert "top-1 <= 3" in status.stdout
    resumed = nas.search(space, _top1, {"top-1": "max"}, constraints=["top-1 <= 3"], strategy="random", budget=5,
                         seed=0, workdir=wd)  # the string form is the same search as the object
    assert [t.arch_id for t in resumed.trials] == [t.arch_id for t in searched.trials]


@pytest.mark.parametrize("text,metric,op,bound", [
    ("top-1 <= 3", "top-1", "<=", 3.0), ("acc@1>=0.5", "acc@1", ">=", 0.5), ("val acc < 2", "val acc", "<", 2.0),
    ("a<b <= 1e3", "a<b", "<=", 1000.0), ("latency_ms > -inf", "latency_ms", ">", float("-inf")),
    ("  params_k <= 40 ", "params_k", "<=", 40.0)])
def test_constraint_text_takes_any_metric_name_an_objective_may_have(text, metric, op, bound):
    c = Constraint.parse(text)
    assert (c.metric, c.op, c.bound) == (metric, op, bound)
    assert Constraint.parse(str(c)) == c


@pytest.mark.parametrize("metric", ["top-1", "a<", "a=", "a >", "x<=y", "val acc"])
@pytest.mark.parametrize("op", ["<=", ">=", "<", ">"])
def test_every_constraint_reads_back_from_the_text_the_journal_stores(metric, op):
    c = Constraint(metric, op, 2.5)
    assert Constraint.parse(str(c)) == c


@pytest.mark.parametrize("text,why", [
    ("x => 3", "the metric name 'x =' runs into the operator '>'"),
    ("x=<3", "the metric name 'x=' runs into the operator '<'"),
    ("score >> 3", "the metric name 'score >' runs into the operator '>'"),
    ("<= 3", "no metric name before '<='"),
    ("latency_ms 20", "it has no comparison operator"),
    ("latency_ms == 20", "it has no comparison operator \\('=' and '==' are not ones\\)"),
    ("top-1 <= fast", "the bound 'fast' after '<=' is not a number"),
    ("top-1 < = 3", "the bound '= 3' after '<' is not a number")])
def test_a_malformed_constraint_names_the_part_that_is_wrong(text, why):
    with pytest.raises(ConfigError, match=f"^constraint '{text}' is not of the form 'metric <= number' "
                                          rf"\(also >=, <, >\): {why}"):
        nas.search(Space(a=Choice([1, 2])), _top1, {"top-1": "max"}, constraints=[text], budget=2, seed=0)


# ------------------------------------------------------------------ strategy options at their defaults
SPACE = Space(x=Integer(0, 99))


def _acc(arch: dict) -> dict[str, float]:
    return {"acc": float(arch["x"])}


def _evolution(options: dict, budget: int, workdir: Path | None) -> nas.SearchResult:
    return nas.search(SPACE, _acc, {"acc": "max"}, strategy="evolution", strategy_options=options, budget=budget,
                      seed=0, workdir=workdir)


@pytest.mark.parametrize("first,second", [({}, {"population_size": 50}), ({"population_size": 50}, {}),
                                          ({"mutation_bias": 0.5}, {"population_size": 50, "sample_size": None}),
                                          ({"population_size": 50}, {"population_size": 50})])
def test_a_resume_spelling_out_a_default_option_or_leaving_it_out_continues_exactly(tmp_path, first, second):
    wd = tmp_path / "w"
    _evolution(first, 6, wd)
    resumed = _evolution(second, 14, wd)
    straight = _evolution(first, 14, None)
    assert resumed.used == 14
    assert [t.arch_id for t in resumed.trials] == [t.arch_id for t in straight.trials]
    assert nas.load(wd).config["strategy_options"] == first  # recorded as given: plain JSON, as before


@pytest.mark.parametrize("first,second,message", [
    ({}, {"population_size": 20}, "its option population_size is 50 \\(the default\\), this run's is 20"),
    ({"population_size": 20}, {}, "its option population_size is 20, this run's is 50 \\(the default\\)"),
    ({"population_size": 50}, {"population_size": 20}, "its option population_size is 50, this run's is 20")])
def test_a_resume_with_another_option_value_is_still_refused_naming_it(tmp_path, first, second, message):
    wd = tmp_path / "w"
    _evolution(first, 4, wd)
    before = (wd / "journal.jsonl").read_bytes()
    with pytest.raises(JournalError, match=message):
        _evolution(second, 8, wd)
    assert (wd / "journal.jsonl").read_bytes() == before


# ------------------------------------------------------------------ model.json belongs to the journal's search
class Tiny(nnn.ModelSpace):
    """Two widths; `out` is a setting of the space (its constructor's), not a decision: the fingerprint of
    Tiny.space(out=2) and Tiny.space(out=3) is the same, their networks are not."""

    input_shape = (4,)

    def __init__(self, out: int = 2) -> None:
        super().__init__()
        width = nnn.Choice("width", [3, 5])
        self.body = nn.Sequential(nnn.Linear(4, width), nn.ReLU(), nnn.Linear(width, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _record_and_search(wd: Path, out: int) -> nas.SearchResult:
    torch.manual_seed(out)
    space = Tiny.space(out=out)
    record_model(wd, space, supernet=space.supernet())
    return nas.search(space, lambda a: {"width": float(a["width"])}, {"width": "min"}, strategy="random", budget=2,
                      seed=0, workdir=wd)


def _files(wd: Path) -> dict[str, bytes]:
    return {name: (wd / name).read_bytes() for name in (MODEL_SPEC, SUPERNET)}


def test_record_model_refuses_another_space_setting_and_leaves_the_searched_files(tmp_path):
    wd = tmp_path / "w"
    _record_and_search(wd, 2)  # no journal yet when record_model runs: written
    held = _files(wd)
    other = Tiny.space(out=3)
    assert other.fingerprint() == Tiny.space(out=2).fingerprint()
    with pytest.raises(JournalError, match=r"^record_model: .* space settings differ at kwargs\.out \(the journal "
                                           r"has 2, this run 3\).*nothing was written"):
        record_model(wd, other, supernet=other.supernet())
    assert _files(wd) == held
    with pytest.raises(JournalError, match=r"space settings differ at kwargs\.out"):
        _record_and_search(wd, 3)  # the whole second run of a script: refused before anything is written
    assert _files(wd) == held
    resumed = _record_and_search(wd, 2)  # the same space again (a resume): recorded and resumed
    assert resumed.used == 2 and _files(wd)[MODEL_SPEC] == held[MODEL_SPEC]
    report = export(wd, tmp_path / "models", onnx=False)
    assert report.models and all(m.path.is_dir() for m in report.models)


class Wider(nnn.ModelSpace):
    """Tiny with a third width: another decision, so another fingerprint."""

    input_shape = (4,)

    def __init__(self, out: int = 2) -> None:
        super().__init__()
        width = nnn.Choice("width", [3, 5, 7])
        self.body = nn.Sequential(nnn.Linear(4, width), nn.ReLU(), nnn.Linear(width, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_record_model_refuses_a_space_with_other_decisions(tmp_path):
    wd = tmp_path / "w"
    _record_and_search(wd, 2)
    held = _files(wd)
    with pytest.raises(JournalError, match=r"^record_model: .* its space differs at field width \(the journal has "
                                           r"choice \[3, 5\], this run \[3, 5, 7\]\)"):
        record_model(wd, Wider.space(), supernet=Wider.supernet())
    assert _files(wd) == held


def test_record_model_staged_by_nas_run_writes_the_staging_folder_unchecked(tmp_path):
    """`nas run` imports the script with record_model staged, and checks the workdir itself before the files
    move in: the staged call neither refuses nor touches the workdir."""
    wd, stage = tmp_path / "w", tmp_path / "stage"
    _record_and_search(wd, 2)
    held = _files(wd)
    other = Tiny.space(out=3)
    with staged_records(wd, stage):
        record_model(wd, other, supernet=other.supernet())
    assert _files(wd) == held
    assert (stage / MODEL_SPEC).is_file() and (stage / SUPERNET).is_file()


def test_export_refuses_a_model_json_of_other_space_settings_than_the_search(tmp_path):
    """A model.json replaced by one of another network with the same decisions (as record_model did before it
    checked the journal, or a copy): export named no difference and shipped that network under the search's name."""
    wd, elsewhere = tmp_path / "w", tmp_path / "elsewhere"
    _record_and_search(wd, 2)
    other = Tiny.space(out=3)
    record_model(elsewhere, other, supernet=other.supernet())
    for name in (MODEL_SPEC, SUPERNET):
        shutil.copyfile(elsewhere / name, wd / name)
    with pytest.raises(ConfigError, match=r"model\.json: space: its settings differ from those of the journal's "
                                          r"search at kwargs\.out \(model\.json has 3, the search used 2\)"):
        export(wd, tmp_path / "models", onnx=False)
    assert not (tmp_path / "models").exists()


def test_export_and_verify_read_a_top_1_constraint_back(tmp_path):
    """export loads the workdir (its journal's constraint text) and verify reads export.json's the same way."""
    wd = tmp_path / "w"
    torch.manual_seed(0)
    space = Tiny.space()
    record_model(wd, space, supernet=space.supernet())
    nas.search(space, lambda a: {"width": float(a["width"]), "top-1": float(a["width"])}, {"width": "max"},
               constraints=[Constraint("top-1", "<=", 4)], strategy="random", budget=2, seed=0, workdir=wd)
    report = export(wd, tmp_path / "models", onnx=False, verify=True)
    assert [m.searched["width"] for m in report.models] == [3.0]  # width 5 breaks top-1 <= 4: not exported
    assert report.verify.constraints == [Constraint("top-1", "<=", 4)]
    assert not report.verify.flagged
