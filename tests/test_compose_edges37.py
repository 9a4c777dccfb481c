"""Compose/resume probe 37: an enqueue file's architecture outside the space is named by flag, file and line
(`read_enqueue`); smbo, bayesian and predictor-search option errors name the option, its rule and the value given,
as evolution, nsga2 and mcts do."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from nas.cli.runfile import read_enqueue
from nas.errors import ConfigError
from nas.objectives import Problem
from nas.spaces import Choice, Integer, Space
from nas.strategies import make_strategy
from nas.strategies.bayesian import BayesianOptimisation
from nas.strategies.predictor_search import PredictorSearch
from nas.strategies.smbo import SequentialModelBasedOptimisation

SPACE = Space(a=Integer(0, 30), b=Choice(["x", "y"]))
PROBLEM = Problem.make({"score": "max"})


# ------------------------------------------------------------------------ finding 3: nas run --enqueue FILE
def test_enqueue_file_outside_the_space_names_the_flag_the_file_and_the_line(tmp_path):
    path = tmp_path / "baseline.jsonl"
    # line 1 an architecture, line 2 blank (skipped, still counted), line 3 a trial record (nas trials --json)
    path.write_text(json.dumps({"a": 3, "b": "x"}) + "\n\n"
                    + json.dumps({"number": 7, "arch": {"a": 4, "b": "z"}, "status": "ok"}) + "\n")
    with pytest.raises(ConfigError) as e:
        read_enqueue(path, SPACE, "--enqueue")
    assert str(e.value).startswith(f"--enqueue {path}:3: b: ")  # not "enqueue[1].b": the second record read
    assert "'z'" in str(e.value)


def test_enqueue_file_named_by_its_setting_and_read_as_before(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"a": 31, "b": "x"}) + "\n")
    with pytest.raises(ConfigError, match=re.escape(f"enqueue {path}:1: a: ")):  # a run file's `enqueue = "q.jsonl"`
        read_enqueue(path, SPACE)
    path.write_text(json.dumps({"a": 3, "b": "y"}) + "\n" + json.dumps({"arch": {"a": 0, "b": "x"}}) + "\n")
    assert read_enqueue(path, SPACE, "--enqueue") == [{"a": 3, "b": "y"}, {"a": 0, "b": "x"}]
    assert read_enqueue(path) == [{"a": 3, "b": "y"}, {"a": 0, "b": "x"}]  # without a space: not validated


def test_enqueue_file_torn_last_line_named_by_its_own_number(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"a": 3, "b": "x"}) + "\n\n" + '{"a": 4')  # a blank line before the torn one
    with pytest.raises(ConfigError, match=re.escape(f"{path}:3: corrupt enqueue file line (incomplete JSON)")):
        read_enqueue(path, SPACE, "--enqueue")


# ------------------------------------------------------------- finding 4: option errors name the value given
@pytest.mark.parametrize("cls, options, message", [
    (SequentialModelBasedOptimisation, {"top": 0}, "smbo: invalid top: expected an int >= 1, got 0"),
    (SequentialModelBasedOptimisation, {"max_features": 1.5},
     "smbo: invalid max_features: expected a number in (0, 1], got 1.5"),
    (SequentialModelBasedOptimisation, {"acquisition": "hvi"},
     "smbo: invalid acquisition: expected 'ei' or 'ucb', got 'hvi'"),
    (SequentialModelBasedOptimisation, {"n_random": 0, "n_local": 0},
     "smbo: invalid n_random + n_local: expected at least 1 candidate, got 0 + 0"),
    (BayesianOptimisation, {"acquisition": "hvi"},
     "bayesian: invalid acquisition: expected 'ucb' or 'ei', got 'hvi'"),
    (BayesianOptimisation, {"refit_fraction": 1.0},
     "bayesian: invalid refit_fraction: expected a number in [0, 1), got 1.0"),
    (BayesianOptimisation, {"warmup": 1}, "bayesian: invalid warmup: expected an int >= 2, got 1"),
    (PredictorSearch, {"batch_size": 0}, "predictor-search: invalid batch_size: expected an int >= 1, got 0"),
    (PredictorSearch, {"crossover_prob": 2.0},
     "predictor-search: invalid crossover_prob: expected a number in [0, 1], got 2.0"),
    (PredictorSearch, {"restart_after": 0},
     "predictor-search: invalid restart_after: expected an int >= 1 (None: never restart), got 0"),
])
def test_option_errors_name_the_option_its_rule_and_the_value(cls, options, message):
    with pytest.raises(ConfigError) as e:
        cls(SPACE, PROBLEM, 0, **options)
    assert str(e.value) == message


def test_option_errors_by_name_and_numpy_integers_taken():
    with pytest.raises(ConfigError, match=re.escape("smbo: invalid n_init: expected an int >= 2, got 1")):
        make_strategy("smbo", SPACE, PROBLEM, 0, n_init=1)
    s = SequentialModelBasedOptimisation(SPACE, PROBLEM, 0, n_init=np.int64(3), top=np.int32(2))
    assert (s.n_init, s.top) == (3, 2) and type(s.n_init) is int and type(s.top) is int
    p = PredictorSearch(SPACE, PROBLEM, 0, n_init=np.int64(4), batch_size=np.int64(2), population_size=8,
                        generations=1, restart_after=np.int64(5), predictor="rf",
                        predictor_options={"n_estimators": 5})
    assert (p.n_init, p.batch_size, p.restart_after) == (4, 2, 5) and type(p.batch_size) is int
    with pytest.raises(ConfigError, match=re.escape("invalid n_init: expected an int >= 2, got True")):  # no bool
        PredictorSearch(SPACE, PROBLEM, 0, n_init=True)


def test_nas_run_enqueue_file_outside_the_space_names_the_flag_file_and_line(tmp_path):
    """The CLI said `enqueue[0]: ...`, naming neither the flag nor the file the architecture came from."""
    from typer.testing import CliRunner

    from nas.cli import app

    script = tmp_path / "toy.py"
    script.write_text("from nas.spaces import Space, Choice\n"
                      "space = Space(a=Choice([1, 2, 3]))\n"
                      "objectives = {'score': 'max'}\n"
                      "def evaluate(arch):\n"
                      "    return {'score': float(arch['a'])}\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n\n{"a": 4}\n')
    out = CliRunner().invoke(app, ["run", str(script), "--budget", "2", "--workdir", str(tmp_path / "wd"),
                                   "--enqueue", str(bad)])
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert re.search(r"--enqueue \S*bad\.jsonl:3: a: 4 is not one of \[1, 2, 3\]", out.output), out.output
    assert not (tmp_path / "wd" / "journal.jsonl").exists()
