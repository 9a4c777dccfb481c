"""The `nas` command line, session 35: the trials table says which trials meet the constraints."""

from __future__ import annotations

import re

import nas
from nas.cli import app
from nas.result import outcome
from tests import test_cli
from tests.test_cli import MIXED, write

runner = test_cli.runner  # fixture


def test_trials_table_has_a_feasible_column_for_a_constrained_search(runner, tmp_path):
    """A constraint on the evaluated score: a violating trial's status is "ok", so only the feasible column tells
    the table's reader it does not count."""
    script = write(tmp_path / "mixed.py", MIXED.replace('constraints = ["x <= 7"]', 'constraints = ["score <= 30"]'))
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(script), "--budget", "20", "--workdir", str(wd)]).exit_code == 0
    result = nas.load(wd)
    judged = {t.number: outcome(result.problem, t) for t in result.trials}
    assert "feasible" in judged.values() and "infeasible" in judged.values()  # evaluated violators: status ok
    out = runner.invoke(app, ["trials", str(wd)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    header = next(line for line in out.stdout.splitlines() if "trial" in line and "status" in line)
    assert re.search(r"status\s+┃\s+feasible", header), header
    for number, verdict in judged.items():
        want = {"feasible": "yes", "infeasible": "no"}.get(verdict, "")
        row = re.search(rf"│\s+{number} │ (\w+)\s+│ (\w*)\s+│", out.stdout)
        assert row and row.group(2) == want, (number, verdict, row and row.group(0))


def test_trials_table_of_an_unconstrained_search_has_no_feasible_column(runner, tmp_path):
    script = write(tmp_path / "mixed.py", MIXED.replace('constraints = ["x <= 7"]', "constraints = []"))
    wd = tmp_path / "wd"
    assert runner.invoke(app, ["run", str(script), "--budget", "5", "--workdir", str(wd)]).exit_code == 0
    out = runner.invoke(app, ["trials", str(wd)], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "feasible" not in out.stdout, out.output


def test_status_of_a_finished_eas_search_names_the_argument_that_goes_on(runner, tmp_path, digits64):
    """`search_eas` has no budget argument: the hint names what continues it (more episodes), not "a larger budget"."""
    from nas.eas import search_eas

    search_eas(digits64, options=dict(episodes=0, seed_epochs=1, batch_size=32), workdir=tmp_path / "eas")
    out = runner.invoke(app, ["status", str(tmp_path / "eas")], env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    state = next(line for line in out.stdout.splitlines() if line.startswith("state"))
    assert "nas.eas.search_eas(" in state and "a larger options['episodes']" in state, state
    assert "larger budget:" in state and not state.rstrip().endswith("a larger budget"), state
