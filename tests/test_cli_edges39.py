"""Session 39: '-' given to an option that writes an image, an HTML page, a folder or a model file is refused naming
the option (it wrote a file named '-'), while the text outputs keep it as standard output; `python -m
nas.cli.hardware` runs without runpy's RuntimeWarning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.spaces import Choice, Integer, Space
from tests.test_cli import one_error_line

ROOT = Path(__file__).resolve().parents[1]
SPACE = Space(k=Choice([3, 5, 7]), w=Integer(1, 8))


def toy(arch) -> dict[str, float]:
    return {"acc": arch["k"] / 10 + arch["w"] / 100, "lat": float(arch["k"] * arch["w"])}


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory) -> tuple[Path, Path]:
    """Two searches whose workdirs have the same name in different folders (a name alone does not tell them apart)."""
    root = tmp_path_factory.mktemp("edges39")
    dirs = (root / "one" / "wd", root / "two" / "wd")
    for seed, wd in enumerate(dirs):
        nas.search(SPACE, toy, {"acc": "max", "lat": "min"}, strategy="random", budget=12, seed=seed, workdir=wd)
    return dirs


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------------------------------------- item 1: '-'
REFUSED = [  # (arguments after the workdir, the flag the error names)
    (["pareto", "{wd}", "--plot", "-"], "--plot"),
    (["history", "{wd}", "--plot", "-"], "--plot"),
    (["history", "{wd}", "--plot", "h.png", "--parallel", "-"], "--parallel"),
    (["history", "{wd}", "--plot", "h.png", "--timeline", "-"], "--timeline"),
    (["history", "{wd}", "--plot", "h.png", "--curves", "-"], "--curves"),
    (["history", "{wd}", "--plot", "-", "--timeline", "-"], "--plot"),  # not "--plot and --timeline both write to -"
    (["importance", "{wd}", "--plot", "-"], "--plot"),
    (["importance", "{wd}", "--effects", "-"], "--effects"),
    (["importance", "{wd}", "--effects", "-", "--json", "-"], "--effects"),
    (["compare", "{wd}", "--plot", "-"], "--plot"),
    (["compare", "{wd}", "--plot", "-", "--json", "-"], "--plot"),
    (["report", "{wd}", "--out", "-"], "--out"),
    (["to-optuna", "{wd}", "--out", "-"], "--out"),
    (["export", "{wd}", "--out", "-"], "--out"),
    (["hardware", "build-lut", "nb201", "--out", "-"], "--out"),
    (["hardware", "fit-latency", "nb201", "{wd}/samples.csv", "--out", "-"], "--out"),
    (["predictors", "eval", "--out", "-"], "--out"),
]


@pytest.mark.parametrize("args,flag", REFUSED, ids=[" ".join(a).replace("{wd}", "DIR") for a, _ in REFUSED])
def test_dash_for_a_file_or_folder_output_is_refused_naming_the_flag(workdirs, in_tmp, args, flag):
    out = CliRunner().invoke(app, [a.replace("{wd}", str(workdirs[0])) for a in args])
    line = one_error_line(out)
    assert line.startswith(f"error: {flag} -: ") and "standard output" in line, line
    assert out.stdout == ""  # refused before anything was printed
    assert not (in_tmp / "-").exists() and list(in_tmp.iterdir()) == []  # nothing written: no '-', no h.png


def test_dash_keeps_meaning_standard_output_for_the_text_outputs(workdirs, in_tmp):
    runner = CliRunner()
    out = runner.invoke(app, ["trials", str(workdirs[0]), "--csv", "-"])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0].startswith("number,") and len(out.stdout.splitlines()) == 13
    out = runner.invoke(app, ["importance", str(workdirs[0]), "--json", "-"])
    assert out.exit_code == 0, out.output
    assert out.stdout.lstrip().startswith("{") and '"metric": "acc"' in out.stdout
    assert list(in_tmp.iterdir()) == []


def test_help_says_which_outputs_take_a_dash():
    runner = CliRunner()
    for args, flag in ((["trials", "-h"], "--csv"), (["importance", "-h"], "--json"), (["compare", "-h"], "--json")):
        text = " ".join(runner.invoke(app, args).stdout.split())
        assert "'-': standard output" in text, (args, flag)
    for args in (["history", "-h"], ["report", "-h"], ["hardware", "build-lut", "-h"]):
        assert "'-': standard output" not in " ".join(runner.invoke(app, args).stdout.split()), args


# --------------------------------------------------------------------------- item 2: python -m nas.cli.hardware
def _python_m(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)


def test_python_m_nas_cli_hardware_runs_without_runpys_warning():
    done = _python_m("nas.cli.hardware", "devices")
    assert done.returncode == 0, done.stderr
    assert "RuntimeWarning" not in done.stderr and done.stderr.strip() == "", done.stderr
    assert "device profiles" in done.stdout and "h100_sxm" in done.stdout


def test_python_m_nas_cli_predictors_lists_without_runpys_warning():
    done = _python_m("nas.cli.predictors", "list")
    assert done.returncode == 0, done.stderr
    assert "RuntimeWarning" not in done.stderr and done.stderr.strip() == "", done.stderr
    assert "wl-gp" in done.stdout  # it ran (it used to exit 0 having done nothing)


def test_python_m_groups_take_dash_h_as_nas_does():
    for module in ("nas.cli.hardware", "nas.cli.predictors"):  # "No such option: -h" run as modules
        done = _python_m(module, "-h")
        assert done.returncode == 0 and "Show this message and exit" in done.stdout, done.stderr


def test_the_nas_command_still_lists_and_runs_its_sub_command_groups():
    runner = CliRunner()
    listing = runner.invoke(app, ["-h"]).stdout
    names = [ln.split()[0] for ln in listing.split("Commands:")[1].splitlines() if ln.strip()]
    assert names[-6:] == ["ask", "tell", "epoch", "enqueue", "hardware", "predictors"]
    assert "build-lut" in runner.invoke(app, ["hardware", "-h"]).stdout
    assert "h100_sxm" in runner.invoke(app, ["hardware", "devices"]).stdout
    assert "Did you mean 'hardware'?" in runner.invoke(app, ["hardwar"]).output  # a typo is still suggested
