"""A package missing from the environment (session 38): the CLI names it and what to install in one `error:` line
(not a traceback, nor "not a valid YAML file"); the Optuna strategies and the dashboard say so too."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.dashboard.server import make_server
from nas.errors import ConfigError
from nas.spaces import Choice, Space
from tests.test_cli import TOY, one_error_line, write


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_a_yaml_run_file_without_pyyaml_names_the_package(runner, tmp_path, monkeypatch):
    write(tmp_path / "search.py", TOY)
    run = write(tmp_path / "run.yaml", "script: search.py\nbudget: 2\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml: ModuleNotFoundError, as without the package
    line = one_error_line(runner.invoke(app, ["run", str(run), "--workdir", str(tmp_path / "wd")]))
    assert line == "error: the 'yaml' package is not installed (pip install pyyaml)"


def test_trials_csv_without_pandas_names_the_package(runner, tmp_path, monkeypatch):
    script = write(tmp_path / "search.py", TOY)
    assert runner.invoke(app, ["run", str(script), "--budget", "2", "--workdir", str(tmp_path / "wd")]).exit_code == 0
    monkeypatch.setitem(sys.modules, "pandas", None)
    line = one_error_line(runner.invoke(app, ["trials", str(tmp_path / "wd"), "--csv", str(tmp_path / "t.csv")]))
    assert line == "error: the 'pandas' package is not installed (pip install pandas)"


def test_an_optuna_strategy_without_optuna_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"^strategy 'tpe' needs the 'optuna' package \(pip install optuna\)$"):
        nas.search(Space(a=Choice([1, 2])), lambda a: {"y": float(a["a"])}, {"y": "max"}, strategy="tpe", budget=2)


def test_the_dashboard_without_plotly_is_refused_before_it_serves(monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)
    with pytest.raises(ConfigError, match=r"plotly.js from the 'plotly' package, which is not installed"):
        make_server([], port=0)
