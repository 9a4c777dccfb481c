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
    # seeded: with a random seed the first 3 evaluations all failed (fail-fast) about once in 125 runs
    assert runner.invoke(app, ["run", str(script), "--budget", "20", "--workdir", str(wd), "--seed", "0"]).exit_code == 0
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
    assert runner.invoke(app, ["run", str(script), "--budget", "5", "--workdir", str(wd), "--seed", "0"]).exit_code == 0
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


# ------------------------------------------------------------------------------------ session 35, fixes D1-D6
import builtins  # noqa: E402
import errno  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from nas.store import Journal  # noqa: E402
from tests.test_cli import TOY, one_error_line  # noqa: E402


def _run(runner, tmp_path, name="wd", budget=4, script_text=TOY) -> Path:
    script = tmp_path / f"{name}.py"
    script.write_text(script_text)
    wd = tmp_path / name
    result = runner.invoke(app, ["run", str(script), "--budget", str(budget), "--workdir", str(wd)])
    assert result.exit_code == 0, result.output
    return wd


def _read_only(monkeypatch, below: Path) -> None:
    """Every file made or opened for writing under `below` fails as on a read-only mount (EROFS, a plain OSError;
    as root, chmod cannot show it)."""
    real_open, real_mkdir, real_builtin_open = os.open, Path.mkdir, builtins.open

    def ro_open(path, flags, *args, **kwargs):
        if below in Path(path).absolute().parents and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    def ro_builtin_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and below in Path(file).absolute().parents and set(mode) & set("wax+"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_builtin_open(file, mode, *args, **kwargs)

    def ro_mkdir(self, *args, **kwargs):
        if below == self.absolute() or below in self.absolute().parents:
            if not self.is_dir():
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(os, "open", ro_open)
    monkeypatch.setattr(builtins, "open", ro_builtin_open)
    monkeypatch.setattr(Path, "mkdir", ro_mkdir)


def test_a_workdir_on_a_read_only_file_system_is_one_error_line_naming_it(runner, tmp_path, monkeypatch):
    """D1: EROFS is a plain OSError, not a PermissionError: `nas resume` and `nas run --workdir` printed a
    traceback (exit 1). Now the JournalError names the workdir, before anything is written."""
    wd = _run(runner, tmp_path)
    before = (wd / "journal.jsonl").read_bytes()
    _read_only(monkeypatch, wd)
    for args in (["resume", str(wd), "--budget", "8"],
                 ["run", str(tmp_path / "wd.py"), "--workdir", str(wd), "--budget", "8"]):
        line = one_error_line(runner.invoke(app, args))
        assert line.startswith(f"error: {wd}: this workdir cannot be written (Read-only file system"), line
    assert (wd / "journal.jsonl").read_bytes() == before


def test_an_output_path_on_a_read_only_file_system_is_one_error_line_naming_its_flag(runner, tmp_path, monkeypatch):
    """D1: `nas trials --csv`, `nas history --plot` on a read-only mount were tracebacks (exit 1)."""
    wd = _run(runner, tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    for flag, name in (("--csv", "t.csv"), ("--json", "t.jsonl")):
        out = ro / "sub" / name
        line = one_error_line(runner.invoke(app, ["trials", str(wd), flag, str(out)]))
        assert line.startswith(f"error: {flag} {out}: cannot be written (Read-only file system"), line
    # the folder exists; the file itself cannot be made
    line = one_error_line(runner.invoke(app, ["trials", str(wd), "--csv", str(ro / "t.csv")]))
    assert line.startswith(f"error: --csv {ro / 't.csv'}: cannot be written (Read-only file system"), line
    line = one_error_line(runner.invoke(app, ["history", str(wd), "--plot", str(ro / "sub" / "h.png")]))
    assert line.startswith(f"error: --plot {ro / 'sub' / 'h.png'}: cannot be written"), line


@pytest.mark.parametrize("args", [["trials", "{wd}", "--csv", "{out}"], ["trials", "{wd}", "--json", "{out}"],
                                  ["importance", "{wd}", "--json", "{out}"], ["report", "{wd}", "--out", "{out}"],
                                  ["compare", "{wd}", "{wd2}", "--json", "{out}"],
                                  ["to-optuna", "{wd}", "--out", "{out}"]])
def test_a_reader_command_refuses_to_write_over_a_file_of_the_search_it_reads(runner, tmp_path, args):
    """D2: `nas trials r2 --csv r2/journal.jsonl` (and --json, importance --json, report --out, compare --json)
    replaced the journal: the search was lost. The output is refused, naming the flag, and nothing changes."""
    wd = _run(runner, tmp_path)
    wd2 = _run(runner, tmp_path, "wd2")
    flag = args[-2]
    for target in (wd / "journal.jsonl", wd2 / "strategy.json", wd / "journal.lock", tmp_path / "alias"):
        if target.name == "alias":
            target.symlink_to(wd / "journal.jsonl")  # the same file by another name
        saved = {p: p.read_bytes() for p in (*wd.iterdir(), *wd2.iterdir())}
        argv = [a.format(wd=wd, wd2=wd2, out=target) for a in args]
        if target.parent == wd2 and "{wd2}" not in args:
            continue  # wd2 is not read by this command
        line = one_error_line(runner.invoke(app, argv))
        assert line.startswith(f"error: {flag} {target}: that is the "), (argv, line)
        assert "which this command reads" in line, line
        assert {p: p.read_bytes() for p in (*wd.iterdir(), *wd2.iterdir())} == saved
    Journal(wd).read()  # still a journal


def test_a_reader_command_still_writes_beside_the_search_files(runner, tmp_path):
    """D2: only the search's own files are refused: a CSV inside the workdir, or written twice, is fine."""
    wd = _run(runner, tmp_path)
    for _ in range(2):
        result = runner.invoke(app, ["trials", str(wd), "--csv", str(wd / "trials.csv")])
        assert result.exit_code == 0, result.output
    assert (wd / "trials.csv").read_text().startswith("number,")


@pytest.mark.parametrize("flag", ["--cpus-per-trial", "--gpus-per-trial"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_ray_resources_per_trial_are_checked_naming_the_flag(runner, tmp_path, flag, value):
    """D3: nan and inf were blamed on "metadata" (the journal header's JSON check), -1 on the keyword `cpus`."""
    script = tmp_path / "toy.py"
    script.write_text(TOY)
    wd = tmp_path / "wd"
    line = one_error_line(runner.invoke(app, ["run", str(script), "--workdir", str(wd), "--executor", "ray",
                                              flag, value]))
    assert line.startswith(f"error: {flag}: expected a finite number >= 0"), line
    assert not wd.exists()


def test_importance_says_a_subset_was_fitted_only_when_one_was_drawn(runner, tmp_path):
    """D4: a search with exactly --max-trials evaluated trials was said to be fitted on a subset."""
    wd = _run(runner, tmp_path, budget=12)
    used = sum(t.status == "ok" for t in Journal(wd).read().trials)
    assert used == 12
    whole = runner.invoke(app, ["importance", str(wd), "--max-trials", "12"], env={"COLUMNS": "200"})
    assert whole.exit_code == 0, whole.output
    assert "seeded subset" not in whole.output
    part = runner.invoke(app, ["importance", str(wd), "--max-trials", "10"], env={"COLUMNS": "200"})
    assert part.exit_code == 0, part.output
    assert "fitted on a seeded subset of 10 evaluated trials, of 12" in part.output


@pytest.mark.parametrize("args, expect", [
    (["--budget", "-1"], "error: --budget: expected a positive int"),
    (["--seed", "-1"], "error: --seed: expected a non-negative int"),
    (["--fidelity", "nan"], "error: --fidelity: expected a positive number"),
    (["--pruner", "nope"], "error: --pruner: unknown name 'nope'"),
    (["--warm-start", "{empty}"], "error: --warm-start: "),
    (["--timeout", "5"], "error: --timeout: LocalExecutor cannot stop a running evaluation; use --executor processes"),
])
def test_run_errors_name_the_flag_the_user_typed(runner, tmp_path, args, expect):
    """D5: `nas run` named the library's keywords (budget:, seed:, fidelity:, pruner:), --timeout alone its flag."""
    script = tmp_path / "toy.py"
    script.write_text(TOY)
    (tmp_path / "empty").mkdir()
    argv = ["run", str(script), "--workdir", str(tmp_path / "wd"), *[a.format(empty=tmp_path / "empty") for a in args]]
    line = one_error_line(runner.invoke(app, argv))
    assert line.startswith(expect), line


def test_a_value_from_the_script_keeps_its_keyword_and_resume_names_its_flags(runner, tmp_path):
    """D5: only a flag the user typed is named as one; a script's `seed = -1` is the script's `seed`."""
    script = tmp_path / "bad.py"
    script.write_text(TOY + "\nseed = -1\n")
    line = one_error_line(runner.invoke(app, ["run", str(script), "--workdir", str(tmp_path / "bad")]))
    assert line.startswith("error: seed: expected a non-negative int"), line
    wd = _run(runner, tmp_path)
    line = one_error_line(runner.invoke(app, ["resume", str(wd), "--budget", "8", "--pruner", "nope"]))
    assert line.startswith("error: --pruner: unknown name 'nope'"), line


def test_importance_hardware_and_predictors_errors_name_their_flags(runner, tmp_path):
    """D5: importance --max-trials, hardware measure --seed, predictors eval --metric, --rows and --data-root."""
    wd = _run(runner, tmp_path)
    assert one_error_line(runner.invoke(app, ["importance", str(wd), "--max-trials", "5"])).startswith(
        "error: --max-trials: expected an integer >= 10, got 5")
    assert one_error_line(runner.invoke(app, ["hardware", "measure", "nb201", "--random", "1", "--seed", "-1"])
                          ).startswith("error: --seed: expected a non-negative int")
    none = tmp_path / "none"
    assert one_error_line(runner.invoke(app, ["predictors", "eval", "--data-root", str(none)])) == \
        f"error: --data-root {none}: no such folder"
    (tmp_path / "tables").mkdir()
    line = one_error_line(runner.invoke(app, ["predictors", "eval", "--data-root", str(tmp_path / "tables")]))
    assert line.startswith(f"error: --data-root {tmp_path / 'tables'}: no NAS-Bench-Graph table cora.csv"), line
    (tmp_path / "tables" / "cora.csv").write_text("")  # the checks below come before the table is read
    for args, expect in ((["--metric", "nope"], "error: --metric: unknown 'nope'"),
                         (["--rows", "5"], "error: --rows: 5 is fewer than n_test + the largest size")):
        line = one_error_line(runner.invoke(app, ["predictors", "eval", "--data-root", str(tmp_path / "tables"),
                                                  *args]))
        assert line.startswith(expect), line


def test_ask_refuses_a_search_that_is_not_a_study_and_writes_nothing(runner, tmp_path):
    """D6: `nas ask` on a `nas run` workdir handed out an architecture and journaled it as a study's."""
    wd = _run(runner, tmp_path)
    saved = {p.name: p.read_bytes() for p in wd.iterdir() if p.name != "journal.lock"}
    for args in (["ask", str(wd)], ["ask", str(wd), "--budget", "21"]):
        line = one_error_line(runner.invoke(app, args))
        assert line.startswith(f"error: {wd} is not a study: it holds a search run by `nas run`"), line
        assert line.endswith(f"to continue it, nas resume {wd}"), line
    assert {p.name: p.read_bytes() for p in wd.iterdir() if p.name != "journal.lock"} == saved
    from nas.spaces import Choice, Space

    py = tmp_path / "py"
    nas.search(Space(x=Choice([1, 2, 3])), lambda a: {"s": float(a["x"])}, {"s": "max"}, budget=2, workdir=py)
    line = one_error_line(runner.invoke(app, ["ask", str(py)]))
    assert line.startswith(f"error: {py} is not a study: it holds a search run by nas.search"), line
    assert "call nas.search(" in line, line


def test_the_search_files_readers_protect_are_the_names_the_drivers_write():
    """`nas.store.SEARCH_FILES` spells the drivers' state files out (they sit above the store in the import layers):
    each driver's own constant must be in it, so a renamed file cannot slip past `check_output`."""
    from nas import bossnas, darts, few_shot, modelspec, store
    from nas.ray import train

    written = {modelspec.SUPERNET, modelspec.SUBNET, darts.CHECKPOINT, darts.HISTORY, darts.TABLE,
               bossnas.STATE_FILE, few_shot.SPLITS_FILE, train.CHECKPOINT_FILE, train.SETTINGS_FILE,
               train.ONESHOT_FILE, store.JOURNAL, store.SNAPSHOT, store.LOCK, store.RUNNING}
    assert written <= set(store.SEARCH_FILES), sorted(written - set(store.SEARCH_FILES))
