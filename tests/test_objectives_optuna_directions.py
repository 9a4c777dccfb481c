"""Optuna's direction names ('maximize', 'minimize') are taken as ours, and recorded as 'max' / 'min', so a search
started with one spelling resumes with the other."""

from __future__ import annotations

import pytest

import nas
from nas.errors import ConfigError
from nas.objectives import Objective, Problem
from nas.spaces import Choice, Space

SPACE = Space(w=Choice([1, 2, 3, 4]))


def evaluate(arch):
    return {"acc": float(arch["w"]), "lat": float(arch["w"]) ** 2}


def test_optuna_directions_read_as_ours() -> None:
    assert Objective("acc", "maximize") == Objective("acc", "max")
    assert Problem.make({"acc": "maximize", "lat": "minimize"}) == Problem.make({"acc": "max", "lat": "min"})
    for bad in ("up", "Maximize", None, 1):
        with pytest.raises(ConfigError, match="direction must be 'min' or 'max'"):
            Objective("acc", bad)


def test_a_search_started_with_optuna_spellings_resumes_with_ours(tmp_path) -> None:
    first = nas.search(SPACE, evaluate, {"acc": "maximize", "lat": "minimize"}, budget=2, seed=0, workdir=tmp_path)
    assert first.config["problem"]["objectives"] == {"acc": "max", "lat": "min"}
    again = nas.search(SPACE, evaluate, {"acc": "max", "lat": "min"}, budget=4, seed=0, workdir=tmp_path)
    assert len(again.trials) == 4 and again.best("acc").metrics["acc"] == 4.0


def test_the_cli_takes_optuna_directions_wherever_it_takes_min_and_max(tmp_path) -> None:
    """`--objective NAME:maximize` (nas run) and `--objectives NAME:minimize` (pareto, history) were refused."""
    from typer.testing import CliRunner

    from nas.cli import app, parse_objectives

    assert parse_objectives(["acc:maximize", "lat:minimize"]) == {"acc": "max", "lat": "min"}
    nas.search(SPACE, evaluate, {"acc": "max", "lat": "min"}, budget=4, seed=0, workdir=tmp_path / "wd")
    result = nas.load(tmp_path / "wd")
    assert result.objective("lat:maximize") == Objective("lat", "max")
    out = CliRunner().invoke(app, ["pareto", str(tmp_path / "wd"), "--objectives", "acc:maximize,lat:maximize",
                                   "--csv", "-"])
    assert out.exit_code == 0 and len(out.stdout.strip().splitlines()) == 2, out.output  # header + w=4, alone
