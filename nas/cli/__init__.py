"""The `nas` command line: run a search script, inspect a workdir, plot its front, resume it.

    nas run SCRIPT.py|RUN.toml|RUN.yaml [--strategy NAME] [--strategy-option KEY=VALUE ...] [--budget N]
            [--seed S] [--workdir DIR] [--objective NAME:max ...] [--constraint "m <= x" ...] [--fidelity F]
            [--timeout S] [--max-time S] [--enqueue FILE.jsonl] [--warm-start DIR] [--fresh] [--lower-budget]
            [--stop-after N] [--stop-at "m >= x" ...]
            [--executor local|processes|ray|ray-tune] [--workers N] [--address A] [--cpus/gpus-per-trial X]
    nas status DIR
    nas pareto DIR [--plot front.png] [--objectives a,b,metric:min] [--csv FILE|-] [--json FILE|-]
    nas history DIR [--plot history.png] [--objectives a,b] [--curves curves.png] [--parallel p.png] [--timeline t.png]
    nas trials DIR [--csv FILE|-] [--json FILE|-]
    nas resume DIR [--budget N] [--lower-budget] [--stop-after N] [--stop-at "m >= x" ...]
    nas export DIR --out models/ [--top N] [--constraint "m <= x" ...] [--verify] [--quantize int8]
    nas verify models/
    nas dashboard DIR [DIR ...] [--port 8080]     nas report DIR [DIR ...] --out report.html
    nas to-optuna DIR --out optuna-journal.log
    nas compare DIR [DIR ...] [--at N] [--metric NAME] [--by strategy|KEY] [--baseline NAME] [--plot c.png] [--json c.json]
    nas ask DIR [-n N]     nas tell DIR ARCH_ID (--metric NAME=VALUE ... | --metrics JSON | --error TEXT) [--attr K=V]
    nas epoch DIR ARCH_ID --metric NAME=VALUE ...   (one epoch's report; exit code 4: the pruner says stop)
    nas enqueue DIR ARCH_JSON ...                  (handed out first by the next nas ask calls)
    nas strategies | nas spaces | nas --version | nas -h

A script for `nas run` is a Python file that defines `space` and `evaluate`, and optionally
`objectives`, `constraints`, `strategy`, `strategy_options`, `budget` and `seed` (flags override them).
While it runs (and in its worker processes) the environment variable NAS_WORKDIR holds the absolute
workdir, which `nas.run_workdir()` returns: where the script records its model spec and trial weights.
Errors meant for users (`nas.errors.NASError`, a missing file) print as one red line and exit with 2;
`nas verify` and `nas export --verify` exit with 1 when any pick is flagged (`VERIFY_FLAGGED`).
Only this module, `nas.report`, `nas.plot` and `nas.console` print.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, Optional

import click
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from typer.core import TyperGroup

from nas.console import (check_output, check_path, given_path_text, make_console, named_flags, path_argument,
                         path_option, user_errors)
from nas.errors import ConfigError, JournalError, check_count, check_int, check_number
from nas.executor_spec import executor_spec
from nas.objectives import OPTUNA_DIRECTIONS, Problem
from nas.cli.runfile import RunSpec, is_run_file, parse_options, read_enqueue, read_run_file
from nas.experiment import check_workdir, settle_budget
from nas.scripts import load_file, workdir_env
from nas.report import (SearchProgress, export_table, fmt, importance_table, show_front, spaces_table,
                        strategies_table, summary, trials_table, verify_table)
from nas.result import SearchResult, outcome
from nas.spaces import Space
from nas.stopping import StopRule, check_rule, from_settings, rule_met
from nas.store import JOURNAL, Journal, Trial, writer_exited, writer_since
from nas.strategies import STRATEGIES

if TYPE_CHECKING:
    from nas.verify import VerifyReport

LAZY_GROUPS = {"hardware": "nas.cli.hardware", "predictors": "nas.cli.predictors"}
"""The sub-command groups, each the `app` of its module, imported when the command line names or lists one, not
when nas.cli is imported: `python -m nas.cli.hardware` (which imports nas.cli first) then runs that module without
runpy's RuntimeWarning that it was imported already, and `nas run` does not import the hardware code."""


class _Commands(TyperGroup):
    """The `nas` group: its own commands, then the `LAZY_GROUPS`, built from their modules on first use."""

    def _mount(self, names: Iterable[str]) -> None:
        for name in names:
            if name in LAZY_GROUPS and name not in self.commands:
                self.add_command(typer.main.get_group(importlib.import_module(LAZY_GROUPS[name]).app), name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._mount(LAZY_GROUPS)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._mount([cmd_name])
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                           list[str]]:
        if args and args[0] not in self.commands:  # a group's name, or a typo: suggestions include the groups
            self._mount(LAZY_GROUPS)
        return super().resolve_command(ctx, args)


app = typer.Typer(name="nas", cls=_Commands, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_show_locals=False, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Neural architecture search: run a search script, inspect, plot and resume its workdir.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        _out().print(f"nas-toolkit {version('nas-toolkit')}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Neural architecture search: run a search script, inspect, plot and resume its workdir."""

STRATEGY_HELP = f"Search strategy, one of: {', '.join(sorted(STRATEGIES))} [default: the script's, else evolution]."
# the stop rule flags of `nas run` and `nas resume` (nas.stopping.from_settings)
StopAfter = Annotated[Optional[int], typer.Option(
    help="Stop after N evaluations in a row without improving the best (or the Pareto front).")]
StopAt = Annotated[Optional[list[str]], typer.Option(
    help="Stop once a feasible result meets this, e.g. 'accuracy >= 0.97'; repeat for several (all must hold).")]
PrunerFlag = Annotated[Optional[str], typer.Option(
    help="Stop trainings early on their nas.report_metrics() values: median, percentile, asha or hyperband (Optuna's "
         "pruners, on the first objective; in-process, --executor processes or ray; this run only).")]


def _out() -> Console:
    return make_console()


def _err() -> Console:
    return make_console(stderr=True)


def _setup_logging() -> None:
    """Warnings from the search (failed evaluations, an exhausted space) go to stderr via rich.

    Called by `main()` only, so importing or testing the app leaves the caller's logging alone.
    """
    logger = logging.getLogger("nas")
    if not any(getattr(h, "_nas_cli", False) for h in logger.handlers):
        handler = RichHandler(console=_err(), show_time=False, show_path=False, markup=False)
        handler._nas_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------- scripts
def load_script(path: str | Path) -> ModuleType:
    """Import a search script from its path (its folder is put on sys.path, so it can import siblings)."""
    script = Path(path).expanduser()
    module = load_file(script)
    missing = [n for n in ("space", "evaluate") if not hasattr(module, n)]
    if missing:
        what = " and ".join(f"`{n}`" for n in missing)
        raise ConfigError(f"{script.resolve()} defines no {what}: a search script must define `space` "
                          "(a nas.spaces.Space) and `evaluate` (architecture -> dict of metrics)")
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)  # no worker can import nas_script_<stem> by name ("spawn")
    return module


def parse_objectives(items: Sequence[str]) -> dict[str, str]:
    """["accuracy:max", "latency_ms:min"] -> {"accuracy": "max", "latency_ms": "min"}."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, direction = item.rpartition(":")
        direction = OPTUNA_DIRECTIONS.get(direction.strip(), direction.strip())  # Optuna's maximize / minimize too
        if not sep or not name.strip() or direction not in ("min", "max"):
            raise ConfigError(f"--objective {item!r}: expected NAME:max or NAME:min (e.g. accuracy:max)")
        if name.strip() in out:
            raise ConfigError(f"--objective {name.strip()!r} is given twice")
        out[name.strip()] = direction
    return out


DRIVERS = {"bossnas": "nas.bossnas.search_bossnas", "eas": "nas.eas.search_eas"}  # strategy -> its own entry point
GROW = {"nas.eas.search_eas": "a larger options['episodes']", "nas.few_shot.search_few_shot": "more archs",
        "nas.bossnas.search_bossnas": "more archs"}  # what a driver without a budget argument takes to go on


def driver(config: Mapping[str, Any]) -> str | None:
    """The entry point of a search that runs its own loop (one-shot, few-shot, NEAS, BossNAS, EAS), which neither
    `nas resume` nor the study commands can drive; None for a `nas.search` or a study."""
    meta = config.get("metadata") or {}
    strategy = str(config.get("strategy", ""))
    if strategy in DRIVERS:
        return DRIVERS[strategy]
    if meta.get("study"):
        return None
    if meta.get("few_shot"):
        return "nas.few_shot.search_few_shot"
    if meta.get("neas"):
        return "nas.neas.search_neas"
    if meta.get("one_shot"):
        return "nas.darts.search_darts"
    return None


def pasted(path: str | os.PathLike[str]) -> str:
    """`path` as a command printed to paste should hold it: quoted for the shell, and with ./ before a relative path
    that starts with '-', which the option parser would otherwise read as an option."""
    text = str(path)
    return shlex.quote("./" + text if text.startswith("-") else text)


def resume_hint(workdir: Path, config: Mapping[str, Any]) -> str:
    """How this search continues: `nas resume DIR` for scripts run by `nas run`, else the Python call that wrote the
    workdir again (`nas.search`, or the driver of a one-shot, few-shot, NEAS, BossNAS or EAS search)."""
    meta = config.get("metadata") or {}
    if meta.get("script"):
        return f"nas resume {pasted(workdir)}"
    call = driver(config)
    if call is None and meta.get("study"):
        return f"nas ask {pasted(workdir)}"
    return f"call {call or 'nas.search'}(..., workdir={str(workdir)!r}) again with the same arguments"


def moved_hint(workdir: Path, config: Mapping[str, Any]) -> str:
    """How a `nas run` search whose script moved goes on: `nas run` of its run file, or of its script with the first
    run's flags (a plain `nas run SCRIPT` would use the script's settings, and be refused as a different search)."""
    meta = config.get("metadata") or {}
    where = f"--workdir {pasted(workdir)}"
    if meta.get("run_file"):
        return (f"if the project moved, continue with `nas run PATH/TO/{Path(meta['run_file']).name} {where}` (the "
                "run file it was started from; it records the new path)")
    return (f"if the project moved, continue with `nas run PATH/TO/{Path(meta['script']).name} {where}` plus the "
            f"flags of its first run, if any (its strategy is {config.get('strategy')!r}); it records the new path")


def stop_rule(stop_after: Any, stop_at: Any, metrics: Sequence[str], names: tuple[str, str]) -> StopRule | None:
    """The stop rule of --stop-after N and --stop-at COND (or a run file's stop_after and stop_at), an error naming
    what the user wrote (`names`: the flags, or the run file's keys); a --stop-at metric must be one of `metrics`
    (the search's objective and constraint metrics)."""
    if stop_after is not None and names[0].startswith("--"):
        check_int(stop_after, names[0], 1)
    # the library names its keywords: stop_after, stop_at, stop_when (a Target's metric)
    with named_flags({"stop_after": names[0], "stop_at": names[1], "stop_when": names[1]}):
        return check_rule(from_settings(stop_after, stop_at), metrics)


FLAGS = {"budget": "--budget", "seed": "--seed", "fidelity": "--fidelity", "timeout_s": "--timeout",
         "max_time": "--max-time", "warm_start": "--warm-start", "pruner": "--pruner"}
"""The flag of `nas run` and `nas resume` for each keyword of `nas.search` an error may name (`named_flags`: an
error about a value the user typed names the flag, one from a script or run file its keyword)."""
EXECUTOR_WORDS = {"executor='processes'": "--executor processes", "executor='ray'": "--executor ray"}
"""How the executors' errors name an executor (Python's keyword) and how the command line says it."""


def _limit(value: float | None, flag: str) -> float | None:
    """A time-limit flag (--timeout, --max-time): positive seconds, or inf for no limit (lifting one the workdir
    recorded); ConfigError naming the flag."""
    if value is not None and value != math.inf:
        check_number(value, flag, unit=" (seconds, or inf for no limit)")
    return value


def _discard(workdir: Path, script: Path, console: Console) -> None:
    """`--fresh`: move the workdir's previous search (journal, snapshot, model spec, weights) to DIR.previous.

    Only a folder holding a journal is moved, and never one holding the script or the current directory: the
    user's project folder given as --workdir once went to DIR.previous, script, notes and all."""
    if not workdir.exists() or (workdir.is_dir() and not any(workdir.iterdir())):
        return  # nothing to move
    where = workdir.resolve()
    if not Journal(workdir).exists():
        raise ConfigError(f"--fresh: {workdir} holds no previous search (no {JOURNAL}), so there is nothing to "
                          "move aside; pick a new --workdir for this search, or move the folder yourself")
    for inside, what in ((script.expanduser().resolve(), "the script being run"),
                         (Path.cwd(), "the current directory")):
        if inside == where or where in inside.parents:  # `--workdir .` too
            raise ConfigError(f"--fresh: {workdir} holds {what}, so it is not moved; give the search a folder of "
                              "its own (--workdir runs/NAME), or move the previous search's files aside yourself")
    holder = Journal(workdir).writer()
    if holder is not None:
        raise ConfigError(f"--fresh: {workdir} is being written by a running search ({holder}); stop it first")
    named = workdir if workdir.name not in ("", "..") else where  # the path as the user wrote it, where it has a name
    target, n = named.with_name(named.name + ".previous"), 1
    while target.exists():  # an earlier --fresh's search stays: a typo'd run then its fix must not lose it
        n += 1
        target = named.with_name(f"{named.name}.previous{n}")
    os.replace(workdir, target)
    console.print(f"--fresh: moved the previous search in {workdir} to {target} (delete it when you no longer "
                  "need it)", soft_wrap=True)


def _load_staged(script: Path, workdir: Path, staged: Path) -> ModuleType:
    """Import the script with what it records into the workdir (`record_model`: model.json, supernet.pt) written
    into `staged` instead, until `_run_and_report` has checked that the workdir holds this search: a refused run
    once overwrote the model.json of the search there, which then no longer exported."""
    from nas.modelspec import staged_records

    with staged_records(workdir, staged):
        return load_script(script)


def _commit_staged(staged: Path | None, workdir: Path) -> None:
    """Move the files `_load_staged` held back into the checked workdir, each replaced atomically, model.json last."""
    from nas.modelspec import MODEL_SPEC

    files = sorted((p for p in staged.iterdir() if p.is_file()), key=lambda p: p.name == MODEL_SPEC) \
        if staged is not None and staged.is_dir() else []
    for path in files:
        workdir.mkdir(parents=True, exist_ok=True)
        part = workdir / f"{path.name}.tmp"
        shutil.move(path, part)  # a copy when the staging folder is on another file system
        os.replace(part, workdir / path.name)


def _run_and_report(spec: RunSpec, resuming: bool = False) -> SearchResult:
    """Check everything that can be checked before anything is printed or written, then search with a progress bar."""
    from nas.search import prepare, run as run_search

    console = _out()
    module = spec.module
    if not isinstance(module.space, Space):
        raise ConfigError(f"{module.__file__}: `space` is a {type(module.space).__name__}, expected a nas.spaces.Space")
    prepared = prepare(module.space, module.evaluate, spec.objectives, spec.constraints, spec.strategy, spec.budget,
                       spec.seed, spec.workdir, spec.executor, spec.strategy_options, spec.fidelity,
                       metadata=spec.metadata, lower_budget=spec.lower_budget, timeout_s=spec.timeout_s,
                       max_time=spec.max_time, enqueue=spec.enqueue, warm_start=spec.warm_start,
                       stop_when=spec.stop_when, pruner=spec.pruner)
    contents = check_workdir(spec.workdir, prepared.config)  # a different search is an error before any output
    holder = Journal(spec.workdir).writer() if spec.workdir.is_dir() else None
    if holder is not None and writer_exited(holder):  # no search runs: a process it forked keeps the lock
        raise JournalError(f"{spec.workdir} is locked by a process left by a search that exited ({holder}): the "
                           "lock is free once that process exits (stop it), or use another workdir")
    if holder is not None:  # refused before "continuing it" and a progress bar are printed
        raise JournalError(f"{spec.workdir} is being written by another search ({holder}): wait for it to finish, "
                           "or use another workdir")
    _commit_staged(spec.staged, spec.workdir)  # checked: what the script recorded may now replace the workdir's
    if contents is not None and contents.trials:
        console.print(f"{spec.workdir} holds {len(contents.trials)} trials of this search: continuing it"
                      + ("" if resuming else " (--fresh starts over)"), soft_wrap=True)
    t0 = time.time()
    terminated: list[int] = []
    try:
        with _sigterm_interrupts(terminated), SearchProgress(console) as progress:
            prepared.progress = progress
            result = run_search(prepared)
    except KeyboardInterrupt:
        _err().print(f"interrupted{' (SIGTERM)' if terminated else ''}; every finished trial is in "
                     f"{spec.workdir / JOURNAL}; continue with: {resume_hint(spec.workdir, prepared.config)}",
                     style="yellow", soft_wrap=True)
        raise typer.Exit(128 + signal.SIGTERM if terminated else 130) from None
    summary(console, result, time.time() - t0)
    show_front(console, result)
    where = result.workdir.resolve() if result.workdir else spec.workdir
    console.print(f"workdir: {where}  (journal: {JOURNAL})", soft_wrap=True)
    console.print(next_steps(result, spec.workdir), style="dim", soft_wrap=True)
    return result


@contextmanager
def _sigterm_interrupts(received: list[int]) -> Iterator[None]:
    """While the search runs, SIGTERM (what Slurm or Kubernetes send at a time limit) raises KeyboardInterrupt, so
    the search drains and snapshots as on Ctrl-C instead of dying mid-write; each one is appended to `received`.
    Only in this process (a forked worker keeps the default) and only from the main thread; restored after."""
    if threading.current_thread() is not threading.main_thread():  # signal.signal would raise ValueError
        yield
        return
    owner = os.getpid()

    def interrupt(signum: int, frame: Any) -> None:
        if os.getpid() != owner:  # a process forked by the search, which inherited this handler: die as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def next_steps(result: SearchResult, workdir: Path) -> str:
    """What to run after a search: look at it, and continue it when it can go on (to its budget when it stopped
    below it, e.g. at max_time; else with twice the budget, or the evaluations used where a lowered budget is below
    them), but not when its strategy had nothing new."""
    budget = int(result.config.get("budget", result.used))
    wd = pasted(workdir)  # a path with spaces (or starting with -) is copied and pasted as one argument
    more = ("" if result.stop_reason == "exhausted" else f" | nas resume {wd}" if result.used < budget else
            f" | nas resume {wd} --budget {max(budget, result.used) * 2}")
    return f"next: nas status {wd} | nas pareto {wd} --plot front.png{more}"


# ---------------------------------------------------------------------------------------- commands
@app.command()
@user_errors
def run(
    script: Annotated[Path, path_argument(help="Python file defining `space` and `evaluate`, or a TOML/YAML run "
                                                "file naming one (see nas.cli.runfile).")],
    strategy: Annotated[Optional[str], typer.Option(help=STRATEGY_HELP)] = None,
    strategy_option: Annotated[Optional[list[str]], typer.Option(
        "--strategy-option", help="KEY=VALUE for the strategy (value read as JSON); repeat for several.")] = None,
    budget: Annotated[Optional[int], typer.Option(help="Number of evaluations (a resumed search keeps a larger "
                                                        "recorded budget).")] = None,
    seed: Annotated[Optional[int], typer.Option(
        help="Random seed of the strategy [default: the script's, else a fresh one, recorded in the journal].")] = None,
    workdir: Annotated[Optional[Path], path_option(help="Experiment directory [default: runs/<script stem>].")] = None,
    objective: Annotated[Optional[list[str]], typer.Option(
        help="NAME:max or NAME:min; repeat for several (replaces the script's `objectives`).")] = None,
    constraint: Annotated[Optional[list[str]], typer.Option(
        help="e.g. 'latency_ms <= 20'; repeat for several (replaces the script's `constraints`).")] = None,
    fidelity: Annotated[Optional[float], typer.Option(help="Passed to evaluators as budget= (e.g. epochs).")] = None,
    timeout: Annotated[Optional[float], typer.Option(
        help="Seconds per evaluation before it fails and its worker is killed (needs --executor processes).")] = None,
    max_time: Annotated[Optional[float], typer.Option(
        help="Seconds after which this run starts no new evaluation.")] = None,
    enqueue: Annotated[Optional[Path], path_option(
        help="JSON-lines file of architectures to evaluate first (or trial records, e.g. from nas trials --json).")] = None,
    warm_start: Annotated[Optional[Path], path_option(
        help="Workdir of an earlier search over the same space: its results are told to the strategy.")] = None,
    stop_after: StopAfter = None,
    stop_at: StopAt = None,
    pruner: PrunerFlag = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Start over: move the workdir's previous search to DIR.previous first.")] = False,
    lower_budget: Annotated[bool, typer.Option(
        "--lower-budget", help="Accept a budget below the one recorded in the workdir.")] = False,
    executor: Annotated[Optional[str], typer.Option(
        help="local, processes (local worker processes), ray (actor pool) or ray-tune (Tune trials).")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (auto or HOST:PORT) [default: start a local one].")] = None,
    workers: Annotated[Optional[int], typer.Option(
        help="Parallel workers (processes or Ray) [default: CPUs, or cluster CPUs / cpus-per-trial].")] = None,
    cpus_per_trial: Annotated[Optional[float], typer.Option(help="CPUs per Ray worker/trial (fractions allowed).")] = None,
    gpus_per_trial: Annotated[Optional[float], typer.Option(help="GPUs per Ray worker/trial (fractions allowed).")] = None,
) -> None:
    """Run the search a script (or a run file) defines; print its Pareto front and where the results are."""
    run_file = script if is_run_file(script) else None
    settings = read_run_file(script) if run_file is not None else {"script": str(script)}
    script = Path(settings["script"])
    spec = executor_spec(executor, address, workers, cpus_per_trial, gpus_per_trial, base=settings.get("executor"))
    workdir = workdir or (Path(settings["workdir"]) if "workdir" in settings else Path("runs") / script.stem)
    check_path(script.expanduser(), "script", "file", missing=f"script {script} not found")
    _limit(timeout, "--timeout")
    _limit(max_time, "--max-time")
    if fresh:  # before the script runs: a script may record its model spec into the workdir
        if strategy is not None and strategy not in STRATEGIES:  # what can be checked before moving anything
            raise ConfigError(f"unknown strategy {strategy!r}; available: {', '.join(sorted(STRATEGIES))}")
        _discard(workdir, script, _out())
    # the script and its workers learn the workdir (nas.run_workdir()); what it records there waits in `staged`
    with workdir_env(workdir), tempfile.TemporaryDirectory(prefix="nas-run-") as staged:
        module = _load_staged(script, workdir, Path(staged))

        def pick(flag: Any, key: str, default: Any = None) -> Any:
            """A setting: the flag, else the run file's, else the script's attribute, else the default."""
            if flag is not None:
                return flag
            return settings[key] if key in settings else getattr(module, key, default)

        objectives = parse_objectives(objective) if objective else pick(None, "objectives")
        if objectives is None:
            raise ConfigError(f"{script}: no objectives: define `objectives = {{'accuracy': 'max'}}` in the script "
                              "or the run file, or pass --objective NAME:max")
        chosen = pick(strategy, "strategy", "evolution")
        # Strategy options belong to the strategy of the file giving them (the run file's, else the script's):
        # another strategy, by --strategy OTHER or a run file's strategy over the script's, drops them.
        script_strategy = getattr(module, "strategy", "evolution")
        if "strategy_options" in settings:
            owner, options = settings.get("strategy", script_strategy), settings["strategy_options"]
        else:
            owner, options = script_strategy, getattr(module, "strategy_options", None)
        if chosen != owner:
            options = None
        if strategy_option:
            options = {**(options or {}), **parse_options(strategy_option)}
        queue = pick(str(enqueue) if enqueue is not None else None, "enqueue")
        warm = pick(warm_start, "warm_start")
        constraints = list(constraint) if constraint else list(pick(None, "constraints", ()) or ())
        rule = stop_rule(pick(stop_after, "stop_after"), pick(stop_at, "stop_at"),
                         Problem.make(objectives, constraints).metrics_needed,
                         ("--stop-after" if stop_after is not None else "stop_after",
                          "--stop-at" if stop_at else "stop_at"))
        typed = {"budget": budget, "seed": seed, "fidelity": fidelity, "timeout_s": timeout, "max_time": max_time,
                 "warm_start": warm_start, "pruner": pruner}  # the library's keyword of each flag -> its value
        with named_flags({key: FLAGS[key] for key, value in typed.items() if value is not None}, EXECUTOR_WORDS):
            _run_and_report(RunSpec(
                module, objectives, constraints,
                chosen, pick(budget, "budget", 100), pick(seed, "seed"), workdir, options, spec,
                pick(fidelity, "fidelity"), pick(timeout, "timeout_s"), pick(max_time, "max_time"),
                read_enqueue(queue, module.space, "--enqueue" if enqueue is not None else "enqueue")
                if queue is not None else None, Path(warm) if warm is not None else None,
                lower_budget, rule, pick(pruner, "pruner"),
                {"script": str(script.resolve()), **({"executor": spec} if spec != "local" else {}),
                 **({"run_file": str(run_file.resolve())} if run_file is not None else {})}, staged=Path(staged)))


@app.command()
@user_errors
def resume(
    workdir: Annotated[Path, path_argument(help="Experiment directory of a search started with `nas run`.")],
    budget: Annotated[Optional[int], typer.Option(help="New total budget [default: the recorded one].")] = None,
    lower_budget: Annotated[bool, typer.Option(
        "--lower-budget", help="Accept a --budget below the recorded one.")] = False,
    executor: Annotated[Optional[str], typer.Option(help="local, processes, ray or ray-tune [default: as recorded].")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join [default: as recorded].")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel workers [default: as recorded].")] = None,
    stop_after: StopAfter = None,
    stop_at: StopAt = None,
    pruner: PrunerFlag = None,
) -> None:
    """Continue a killed or finished search with the same settings (optionally a larger budget). A stop rule
    (--stop-after, --stop-at) and a pruner apply to this run only; without one the search goes on to its budget,
    and without a pruner every training runs to its end."""
    loaded = _load(workdir)
    config = loaded.config
    recorded = (config.get("metadata") or {}).get("executor") or "local"
    spec = executor_spec(executor, address, workers, base=recorded)
    script = (config.get("metadata") or {}).get("script")
    if not script:
        raise ConfigError(f"{workdir} records no script (it was not started by `nas run`); to resume it, "
                          f"{resume_hint(workdir, config)}")
    if not Path(script).is_file():  # the project moved (another folder, a cluster node): `nas run` takes it anew
        raise ConfigError(f"script {script}, recorded by {workdir}, not found; {moved_hint(workdir, config)}")
    problem = config["problem"]
    old = int(config["budget"])
    used = loaded.used
    if budget is not None:
        check_count(budget, "--budget", " (number of evaluations)")  # before advice about lowering it
    if budget is not None and budget < old and not lower_budget:  # kept, with a warning, as `nas run` does
        budget = settle_budget(workdir, old, budget, used, False)
    rule = stop_rule(stop_after, stop_at, loaded.problem.metrics_needed, ("--stop-after", "--stop-at"))
    total = budget if budget is not None else old
    if used >= total and (budget is None or budget == old):
        console = _out()
        console.print(f"{workdir} has used its budget ({used} evaluations); pass --budget N with N > {used} "
                      "to continue it", style="yellow", soft_wrap=True)
        show_front(console, loaded)
        return
    typed = {"budget": budget, "pruner": pruner}
    with workdir_env(workdir), tempfile.TemporaryDirectory(prefix="nas-run-") as staged, \
            named_flags({key: FLAGS[key] for key, value in typed.items() if value is not None}, EXECUTOR_WORDS):
        module = _load_staged(script, workdir, Path(staged))  # as `nas run` does
        _run_and_report(RunSpec(module, problem["objectives"], problem["constraints"], config["strategy"], total,
                                config["seed"], workdir, config.get("strategy_options") or None, spec,
                                config.get("fidelity"), lower_budget=lower_budget,
                                stop_when=rule, pruner=pruner,
                                metadata=config.get("metadata") or {}, staged=Path(staged)), resuming=True)


def _pending(workdir: Path, trials: Sequence[Trial]) -> list[str]:
    """Ids of the architectures the workdir's last snapshot holds as asked but not journaled (`Journal.pending`);
    none while a process writes the workdir (its snapshot lags)."""
    journal = Journal(workdir)
    try:
        waiting = journal.pending({t.arch_id for t in trials}) if journal.writer() is None else []
    except JournalError:
        return []
    return [p["arch_id"] for p in waiting]


def _lowered_from(workdir: Path, budget: int) -> bool:
    """Whether the journal once recorded a budget above `budget` (its header's or a resume's): the budget was
    lowered, rather than results told to a study beyond it."""
    from nas import jsonio

    records = jsonio.read_jsonl(Journal(workdir).path, "journal", JournalError).records
    recorded = [rec.get("config", {}).get("budget") if rec.get("type") == "header" else rec.get("budget")
                for _, rec in records if rec.get("type") in ("header", "resume")]
    return any(isinstance(b, int) and b > budget for b in recorded)


def _load(workdir: Path) -> SearchResult:
    check_path(workdir, "workdir", "folder", missing=f"{workdir}: no such directory")
    return SearchResult.load(workdir)


def _names(objectives: str | None, result: SearchResult) -> list[str] | None:
    """--objectives a,b,metric:min as a list (None: the search's own objectives). A name holding a comma ("lat
    ms,p50"), as an objective or recorded metric of `result` may, is taken whole (the longest such run of parts)
    before the rest is split on commas."""
    if not objectives:
        return None
    known = set(result.problem.names) | {m for t in result.trials for m in t.metrics}

    def named(text: str) -> bool:  # a known name, or one with its direction (NAME:min)
        metric, sep, direction = text.rpartition(":")
        return text in known or bool(sep) and direction in ("min", "max") and metric.strip() in known

    parts = objectives.split(",")
    names: list[str] = []
    i = 0
    while i < len(parts):
        end = next((j for j in range(len(parts), i + 1, -1) if named(",".join(parts[i:j]).strip())), i + 1)
        if ",".join(parts[i:end]).strip():
            names.append(",".join(parts[i:end]).strip())
        i = end
    return names


def _distinct_outputs(targets: Sequence[tuple[str, Path | None]]) -> None:
    """ConfigError when two of a command's output flags name one file: the second would replace the first, and
    both be reported written. '-' is no file: `_output_file` takes it as standard output or refuses it."""
    seen: dict[Path, str] = {}
    for flag, target in targets:
        if target is None or str(target) == "-":
            continue
        where = target.resolve()
        if where in seen:
            raise ConfigError(f"{seen[where]} and {flag} both write to {where}; give each its own file")
        seen[where] = flag


def not_stdout(target: str | os.PathLike[str] | None, flag: str, what: str) -> None:
    """ConfigError naming `flag` when `target` is "-": standard output for the text outputs (--csv, --json), but
    `what` (an image, an HTML page, a folder, ...) has no place there, and a file named '-' was written instead."""
    if target is not None and str(target) == "-":
        raise ConfigError(f"{flag} -: {what} cannot go to standard output ('-' is taken by the text outputs, "
                          "--csv and --json, only); give a path")


def _output_file(target: Path | None, flag: str, workdirs: Iterable[str | os.PathLike[str]],
                 plot: bool = False, stdout: bool = False) -> None:
    """ConfigError naming `flag` when the file output `target` cannot be written as asked (a file one of the
    `workdirs` read keeps its search in, `check_output`; a folder; for a `plot`, a suffix no plot can be written
    in; "-" unless `stdout`, a text output that standard output takes), checked before any output is written. None
    passes, and "-" where `stdout`."""
    if not stdout:
        not_stdout(target, flag, "an image" if plot else "this file")
    check_output(target, flag, workdirs)
    if target is None or str(target) == "-":
        return
    if Path(target).is_dir():  # the errno text user_errors would print, with the flag named
        raise ConfigError(f"{flag} {target}: Is a directory (give the path of a file)")
    if plot:
        from nas.plot import plot_format

        try:
            plot_format(target)
        except ConfigError as e:  # "PATH: .xyz is not an image format ..."
            raise ConfigError(f"{flag} {e}") from None


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def _local_time(t: float) -> str:
    """A Unix time in the reader's local time, its zone named (every time `nas status` shows is on one clock)."""
    at = datetime.fromtimestamp(t).astimezone()
    return at.strftime("%Y-%m-%d %H:%M:%S ") + (at.strftime("%Z") or at.strftime("UTC%z"))


def _time_rows(trials: Sequence[Trial]) -> list[tuple[str, str]]:
    """`nas status`'s time rows. Trials of a simulated-clock replay (workers `sim-*`) carry simulated seconds from
    0, not Unix times: they are shown as simulated seconds, never as dates; any other trial (wall clock: real
    evaluations, or cheap-stage and constraint-filter records of a replay) by its dates."""
    sim = [t for t in trials if t.worker.startswith("sim-")]
    wall = [t for t in trials if not t.worker.startswith("sim-")]
    rows = []
    if wall:
        first, last = min(t.started for t in wall), max(t.finished for t in wall)
        which = " (wall clock)" if sim else ""
        rows += [(f"first trial{which}", _local_time(first)),
                 (f"last trial{which}", _local_time(last) + f" ({_ago(time.time() - last)})")]
    if sim:
        workers = len({t.worker for t in sim})
        rows.append(("simulated clock", f"{len(sim)} trials replayed on {workers} simulated worker"
                     + ("s" if workers > 1 else "") + f", from {min(t.started for t in sim):.1f} s to "
                     f"{max(t.finished for t in sim):.1f} s simulated (no wall-clock dates)"))
    for label, group in (("evaluation time", wall), ("evaluation time (simulated)", sim)):
        evals = [t.duration for t in group if t.is_evaluation]
        if evals:
            rows.append((label, f"{sum(evals):.1f} s in all, {sum(evals) / len(evals):.2f} s per trial"))
    return rows


@app.command()
@user_errors
def status(workdir: Annotated[Path, path_argument(help="Experiment directory.")]) -> None:
    """Trials by status, budget used, best value per objective and the time of the last trial."""
    result = _load(workdir)
    config, trials = result.config, result.trials
    console = _out()
    counts = result.counts()
    used = result.used
    budget = int(config.get("budget", 0))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("workdir", str(Path(workdir).resolve()))
    script = (config.get("metadata") or {}).get("script")
    study = bool((config.get("metadata") or {}).get("study"))  # driven by nas ask / nas tell
    if script:
        grid.add_row("script", str(script))
    grid.add_row("strategy", f"{config.get('strategy')} (seed {config.get('seed')}"
                 + (f", options {json.dumps(config['strategy_options'])}" if config.get("strategy_options") else "")
                 + ")")
    grid.add_row("objectives", ", ".join(f"{o.name} ({o.direction})" for o in result.problem.objectives))
    grid.add_row("constraints", ", ".join(str(c) for c in result.problem.constraints) or "none")
    # infeasible: every trial that breaks a constraint, whether evaluated (status ok) or rejected before
    why = f" ({counts.violating} evaluated, {counts.rejected} rejected)" if counts.infeasible else ""
    pruned = counts.other.get("pruned", 0)
    grid.add_row("trials", f"{len(trials)} in the journal: {counts.feasible + counts.violating + pruned} ok, "
                 f"{counts.failed} failed, {counts.rejected} rejected by a cheap constraint"
                 + "".join(f", {n} {s}" for s, n in counts.other.items() if s != "pruned")
                 + f"; {counts.feasible} feasible, {counts.infeasible} infeasible{why}"
                 + (" (the next is being written)" if result.stop_reason == "still being written" else ""))
    if pruned:
        grid.add_row("pruned", f"{pruned} of the ok trials were stopped early by a pruner (their metrics are their "
                     "last report's, so they count neither as feasible nor on the front)")
    if used > budget and _lowered_from(Path(workdir), budget):
        grid.add_row("budget", f"{used} evaluations used; the budget was lowered to {budget} (reached)")
    elif used > budget:  # a study's results told after it was reached (a baseline): journaled, and counted
        grid.add_row("budget", f"{used} evaluations used of a budget of {budget} (reached; {used - budget} told "
                     "after it was reached)")
    else:
        grid.add_row("budget", f"{used} of {budget} evaluations used "
                     f"({'budget reached' if used >= budget else f'{budget - used} left'})")
    waiting = _pending(Path(workdir), trials)
    if waiting:
        shown = ", ".join(arch_id[:12] for arch_id in waiting[:5]) + (", ..." if len(waiting) > 5 else "")
        grid.add_row("pending", f"{len(waiting)} asked and not told yet ({shown}): nas tell {pasted(workdir)} "
                     "ID ..." if study else
                     f"{len(waiting)} evaluations were running when it stopped ({shown}); a resume runs them first")
    for o in result.problem.objectives:
        best = result.best(o.name)
        grid.add_row(f"best {o.name}", f"{fmt(best.metrics[o.name])} (trial {best.number})" if best else "-")
    grid.add_row("pareto front", f"{len(result.pareto_front())} trials (nas pareto {pasted(workdir)})")
    for label, value in _time_rows(trials):
        grid.add_row(label, value)
    writer = Journal(workdir).writer()
    hint = resume_hint(Path(workdir), config)
    one_shot = None
    if (config.get("metadata") or {}).get("one_shot"):  # nas.darts (and torch) only for a one-shot workdir
        from nas.darts import search_state

        one_shot = search_state(Path(workdir), config, trials, result.stop_reason)  # DARTS: epochs, not a budget
    if writer is not None:
        who, since = writer_since(writer)  # a lock from before zones were recorded: as written, said so
        zone = ", the search machine's local time" if since is None and " since " in writer else ""
        state = "locked by a process left by a search that exited" if writer_exited(writer) else "running"
        grid.add_row("state", f"{state} ({who} since {_local_time(since)})" if since is not None
                     else f"{state} ({writer}{zone})")
    elif one_shot is not None:
        grid.add_row("state", one_shot[1] if one_shot[0] else f"{one_shot[1]}; to continue: {hint}")
    elif used >= budget:
        grid.add_row("state", "finished (budget used); to continue with a larger budget: "
                     + (f"{hint} --budget N" if script or study else
                        f"{hint} and {GROW.get(driver(config) or '', 'a larger budget')}"))
    elif study and waiting and used + len(waiting) >= budget:  # nas ask would hand out nothing (exit code 3)
        grid.add_row("state", f"waiting for {len(waiting)} pending result{'s' if len(waiting) > 1 else ''} (the rest "
                     f"of the budget is told): nas tell {pasted(workdir)} ID ...; to ask for more: {hint} --budget N")
    elif rule_met(result.stop_reason) is not None:
        grid.add_row("state", f"finished below its budget: {rule_met(result.stop_reason)}; to go on to the budget: "
                     f"{hint}")
    elif result.stop_reason == "exhausted":  # resuming would evaluate nothing new
        grid.add_row("state", "finished below its budget: the strategy proposed no new architecture (the space "
                     "is exhausted, the strategy converged, or cheap constraints rejected every proposal)")
    else:
        grid.add_row("state", f"stopped below its budget; to continue: {hint}")
    console.print(grid)


@app.command()
@user_errors
def pareto(
    workdir: Annotated[Path, path_argument(help="Experiment directory.")],
    plot: Annotated[Optional[Path], path_option(help="Write a plot of the trials and the front here (PNG; SVG, PDF, ... by the suffix).")] = None,
    objectives: Annotated[Optional[str], typer.Option(
        help="Comma-separated objectives to use, any recorded metric as NAME:min or NAME:max (default: the "
             "search's; the plot shows the first two, or the history of a single one).")] = None,
    csv: Annotated[Optional[Path], path_option(
        help="Write every front trial as CSV here ('-': standard output), instead of the table.")] = None,
    json_out: Annotated[Optional[Path], path_option(
        "--json", help="Write every front trial as JSON lines here ('-': standard output), instead of the table.")] = None,
) -> None:
    """Print the Pareto front as a table (of a long front, an evenly spaced sample; --csv/--json write all of it);
    with --plot also draw it (PNG, or the format the suffix names)."""
    _rows_targets(csv, json_out)
    _distinct_outputs((("--plot", plot), ("--csv", csv), ("--json", json_out)))
    result = _load(workdir)
    _output_file(plot, "--plot", [workdir], plot=True)  # before the table is printed
    _output_file(csv, "--csv", [workdir], stdout=True)
    _output_file(json_out, "--json", [workdir], stdout=True)
    names = _names(objectives, result)
    console = _err() if "-" in (str(csv), str(json_out)) else _out()  # standard output holds the rows alone
    if csv is None and json_out is None:
        show_front(console, result, names)
    else:
        _write_rows(result, result.pareto_front(names), csv, json_out, "front trials")
    if plot is not None:
        from nas.plot import plot_history, plot_pareto

        if len(names or result.problem.names) < 2:  # one objective has no front to draw: its history instead
            path = plot_history(result, plot, names)
            console.print(f"plot: {path.resolve()} (one objective: its optimisation history)", soft_wrap=True)
        else:
            path = plot_pareto(result, plot, names)
            console.print(f"plot: {path.resolve()}", soft_wrap=True)


@app.command()
@user_errors
def history(
    workdir: Annotated[Path, path_argument(help="Experiment directory.")],
    plot: Annotated[Path, path_option(help="Write the plot here (PNG; SVG, PDF, ... by the suffix).")] = Path("history.png"),
    objectives: Annotated[Optional[str], typer.Option(
        help="Comma-separated objectives (any recorded metric as NAME:min or NAME:max) [default: the search's].")] = None,
    curves: Annotated[Optional[Path], path_option(
        help="Also write each training's per-epoch reports here (a search run with a pruner).")] = None,
    parallel: Annotated[Optional[Path], path_option(
        help="Also write a parallel-coordinate plot of the decisions and the first objective here.")] = None,
    timeline: Annotated[Optional[Path], path_option(
        help="Also write each trial's start and finish on its worker's lane here.")] = None,
) -> None:
    """Plot the optimisation history: every evaluation and the best feasible value so far, per objective."""
    from nas.plot import NO_CURVES, plot_curves, plot_history, plot_parallel, plot_timeline

    outputs = (("--plot", plot), ("--curves", curves), ("--parallel", parallel), ("--timeline", timeline))
    _distinct_outputs(outputs)
    result = _load(workdir)
    names = _names(objectives, result)
    for flag, target in outputs:
        _output_file(target, flag, [workdir], plot=True)  # a format no plot can be written in: before any is written
    if curves is not None and not any(t.extra.get("curve") for t in result.trials):  # as plot_curves would refuse
        raise ConfigError(f"--curves {curves}: {NO_CURVES}")
    for o in [result.objective(n) for n in (names or result.problem.names)]:
        steps = result.history(o)
        best = (f"{fmt(steps[-1][1])} after {steps[-1][0]} evaluations" if steps else "no feasible trial yet"
                if not result.feasible else f"no trial has a finite {o.name} ({len(result.feasible)} feasible trials)")
        _out().print(f"best {o.name} ({o.direction}): {best}", soft_wrap=True)
    plots: list[tuple[str, str, Path | None, Callable[[Path], Path]]] = [
        ("plot", "--plot", plot, lambda p: plot_history(result, p, names)),
        ("learning curves", "--curves", curves, lambda p: plot_curves(result, p)),
        ("parallel coordinates", "--parallel", parallel,
         lambda p: plot_parallel(result, p, names[0] if names else None)),
        ("timeline", "--timeline", timeline, lambda p: plot_timeline(result, p))]
    failed: list[str] = []
    for what, flag, target, draw in plots:  # each that can be drawn is, and said; one that cannot fails the command
        if target is not None:
            try:
                _out().print(f"{what}: {draw(target).resolve()}", soft_wrap=True)
            except ConfigError as e:
                failed.append(f"{flag}: {e}")
    if failed:
        raise ConfigError("; ".join(failed))


@app.command()
@user_errors
def importance(
    workdir: Annotated[Path, path_argument(help="Experiment directory.")],
    metric: Annotated[Optional[str], typer.Option(help="A recorded metric [default: the first objective].")] = None,
    by: Annotated[str, typer.Option(help="name: a repeated decision pooled over its blocks (blocks.*.k); path: each "
                                         "block's own (blocks.2.k).")] = "name",
    scale: Annotated[str, typer.Option(help="rank: fit the normal scores of the metric's ranks (a few collapsed "
                                               "networks do not dominate); value: fit the values.")] = "rank",
    plot: Annotated[Optional[Path], path_option(help="Also write a bar chart here (PNG; SVG, PDF, ... by the suffix).")] = None,
    effects: Annotated[Optional[Path], path_option(
        help="Also write a plot of the metric per value of the four most important decisions here.")] = None,
    json_out: Annotated[Optional[Path], path_option(
        "--json", help="Also write the figures as JSON here ('-': standard output, the table then on stderr).")] = None,
    max_trials: Annotated[int, typer.Option(help="Fit on a seeded subset of at most N evaluated trials (the cost "
                                                 "grows with N: about 30 s at 2,000 on 20 decisions).")] = 2000,
) -> None:
    """Which decisions matter for a metric: permutation importance of a random forest, out of fold."""
    from nas.importance import decision_importances

    outputs = (("--plot", plot), ("--effects", effects), ("--json", json_out))
    _distinct_outputs(outputs)
    result = _load(workdir)
    for flag, target in outputs:
        _output_file(target, flag, [workdir], plot=flag != "--json", stdout=flag == "--json")
    to_stdout = json_out is not None and str(json_out) == "-"
    console = _err() if to_stdout else _out()  # with --json -, standard output holds the JSON alone
    with console.status(f"fitting a forest per fold to the decisions of at most {max_trials} of the "
                        f"{len(result.trials)} trials"), named_flags({"max_trials": "--max-trials", "by": "--by",
                                                      "scale": "--scale"}):
        imp = decision_importances(result, metric, by=by, scale=scale,  # type: ignore[arg-type]
                                   max_trials=max_trials)
    console.print(importance_table(imp))
    fitted = [t for t in result.trials if t.status == "ok" and t.pruned_after is None  # the trials it may fit on
              and math.isfinite(t.metrics.get(imp.metric, math.nan))]
    if len(fitted) > imp.trials:  # a subset was drawn (every one of exactly --max-trials trials is no subset)
        console.print(f"(fitted on a seeded subset of {imp.trials} evaluated trials, of {len(fitted)}; --max-trials N "
                      "for more)", soft_wrap=True)
    if plot is not None:
        from nas.plot import plot_importance

        console.print(f"plot: {plot_importance(imp, plot).resolve()}", soft_wrap=True)
    if effects is not None:
        from nas.plot import plot_decision_effects

        console.print(f"effects: {plot_decision_effects(result, imp, effects).resolve()}", soft_wrap=True)
    if json_out is not None:
        from nas import jsonio

        if to_stdout:
            sys.stdout.write(jsonio.dumps(imp.to_dict(), indent=1) + "\n")
        else:
            jsonio.write_json(json_out, imp.to_dict())
            console.print(f"json: {json_out.resolve()}", soft_wrap=True)


@app.command()
@user_errors
def compare(
    workdirs: Annotated[list[Path], path_argument(help="Search workdirs of one problem, or folders of them.")],
    at: Annotated[Optional[int], typer.Option(help="Score each run after N evaluations [default: the fewest any "
                                                   "run spent].")] = None,
    metric: Annotated[Optional[str], typer.Option(help="Score by this metric's best feasible value (NAME:min or "
                                                       "NAME:max for one no run optimised) [default: the objective; "
                                                       "the hypervolume for several].")] = None,
    by: Annotated[str, typer.Option(help="Group runs by 'strategy' or by a key of their metadata.")] = "strategy",
    baseline: Annotated[Optional[str], typer.Option(help="The group the others are set against [default: random, "
                                                        "where there is such a group].")] = None,
    plot: Annotated[Optional[Path], path_option(help="Also write each group's mean curve with its band here.")] = None,
    json_out: Annotated[Optional[Path], path_option(
        "--json", help="Also write the comparison as JSON here ('-': standard output, the table then on stderr).")] = None,
) -> None:
    """Which strategy does better on this problem: repeated runs grouped, each scored at the same budget, with 95 %
    intervals and the improvement over random search (Welch's t-test)."""
    from nas.compare import compare_searches
    from nas.dashboard.views import find_workdirs
    from nas.plot import plot_comparison
    from nas.report import comparison_table

    _distinct_outputs((("--plot", plot), ("--json", json_out)))
    found = find_workdirs(workdirs)
    results = [_load(wd) for wd in found]
    _output_file(plot, "--plot", found, plot=True)
    _output_file(json_out, "--json", found, stdout=True)
    to_stdout = json_out is not None and str(json_out) == "-"
    console = _err() if to_stdout else _out()  # with --json -, standard output holds the JSON alone
    c = compare_searches(results, at, metric, by, baseline)
    console.print(comparison_table(c))
    if plot is not None:
        console.print(f"plot: {plot_comparison(c, plot).resolve()}", soft_wrap=True)
    if json_out is not None:
        from nas import jsonio

        if to_stdout:
            sys.stdout.write(jsonio.dumps(c.to_dict(), indent=1, allow_nan=True) + "\n")
        else:
            jsonio.write_json(json_out, c.to_dict(), allow_nan=True)  # atomic, as every file the CLI writes
            console.print(f"wrote {json_out.resolve()}", soft_wrap=True)


@app.command()
@user_errors
def trials(
    workdir: Annotated[Path, path_argument(help="Experiment directory.")],
    csv: Annotated[Optional[Path], path_option(help="Write every trial as CSV here ('-': standard output).")] = None,
    json_out: Annotated[Optional[Path], path_option(
        "--json", help="Write every trial as JSON lines here ('-': standard output).")] = None,
) -> None:
    """Every trial of a search as a table (one flat row per trial, architecture decisions as arch.<path>)."""
    _rows_targets(csv, json_out)
    result = _load(workdir)
    _output_file(csv, "--csv", [workdir], stdout=True)
    _output_file(json_out, "--json", [workdir], stdout=True)
    if csv is None and json_out is None:
        _out().print(trials_table(result))
        return
    _write_rows(result, result.trials, csv, json_out, "trials")


def _rows_targets(csv: Path | None, json_out: Path | None) -> None:
    """ConfigError when --csv and --json name one target, which would hold neither a CSV nor JSON lines."""
    targets = ["standard output" if str(p) == "-" else str(p.resolve()) for p in (csv, json_out) if p is not None]
    if len(targets) == 2 and targets[0] == targets[1]:  # rows then JSON lines in one stream, or JSON over the CSV
        raise ConfigError(f"--csv and --json both write to {targets[0]}, which would hold neither a CSV nor JSON "
                          "lines; give each its own target")


def _write_rows(result: SearchResult, trials: Sequence[Trial], csv: Path | None, json_out: Path | None,
                noun: str) -> None:
    """Write `trials` of `result` as CSV (`SearchResult.to_dataframe`'s columns) and as JSON lines (journal records
    with `feasible`, which `nas run --enqueue` reads), each to its file or to standard output ("-")."""
    from nas import jsonio

    if csv is not None:
        subset = SearchResult(list(trials), result.problem, result.workdir, result.stop_reason, result.config)
        text = subset.to_dataframe().to_csv(index=False)
        sys.stdout.write(text) if str(csv) == "-" else jsonio.write_bytes(csv, text.encode())  # its folder made
    if json_out is not None:
        text = "".join(json.dumps({**t.to_json(), "feasible": outcome(result.problem, t) == "feasible"}) + "\n"
                       for t in trials)  # journal records (nas run --enqueue reads them), feasible as in the CSV
        sys.stdout.write(text) if str(json_out) == "-" else jsonio.write_bytes(json_out, text.encode())
    for path in (csv, json_out):
        if path is not None and str(path) != "-":
            _err().print(f"wrote {len(trials)} {noun} to {path.resolve()}", soft_wrap=True)


@app.command()
@user_errors
def dashboard(
    workdirs: Annotated[list[Path], path_argument(help="Search workdirs, or folders of them (each search in "
                                                        "them is listed).")],
    port: Annotated[int, typer.Option(help="Port to serve on (0: any free one).")] = 8080,
    host: Annotated[str, typer.Option(help="Address to bind; the default serves this machine only.")] = "127.0.0.1",
    models: Annotated[Optional[list[Path]], path_option(
        help="A folder `nas export` wrote, for the model cards (those inside or beside a workdir are found "
             "without it); repeatable.")] = None,
) -> None:
    """Serve a live, read-only web page of one or several searches (progress, fronts, trials) until Ctrl-C."""
    from nas.dashboard.server import check_port, make_server, url_of
    from nas.dashboard.views import check_views, open_views

    if not host.strip():  # --host "$HOST" with HOST unset: "" binds every interface, not this machine only
        raise ConfigError("--host: empty address (it would serve every interface); give 127.0.0.1 for this machine "
                          "only, or 0.0.0.0 to serve every interface on purpose")
    check_port(port)  # before reading the searches, which may take a while
    views = open_views(workdirs, models or ())
    check_views(views)
    server = make_server(views, host, port)
    console = _out()
    console.print(f"serving {len(views)} search{'es' if len(views) > 1 else ''} at {url_of(server)} "
                  "(read-only; Ctrl-C stops)", soft_wrap=True)
    for v in views:
        if v.error:
            console.print(f"  {v.name}: {v.error}", style="yellow", soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command("report")
@user_errors
def report_command(
    workdirs: Annotated[list[Path], path_argument(help="Search workdirs, or folders of them.")],
    out: Annotated[str, typer.Option(
        parser=given_path_text, metavar="<path>",
        help="The HTML file to write (a folder, or a path ending in /: report.html inside it).")] = "report.html",
    models: Annotated[Optional[list[Path]], path_option(
        help="A folder `nas export` wrote, for the model cards; repeatable.")] = None,
) -> None:
    """Write the dashboard's views as one static HTML file that opens without a server (to share, or keep
    as a CI artifact)."""
    not_stdout(out, "--out", "an HTML report")  # before the searches are read
    target = Path(out) / "report.html" if out.endswith(("/", os.sep)) or Path(out).is_dir() else Path(out)
    from nas.dashboard.static_report import write_report
    from nas.dashboard.views import check_views, open_views

    views = open_views(workdirs, models or ())
    check_views(views)
    check_output(target, "--out", [v.workdir for v in views])
    path = write_report(views, target)
    _out().print(f"report: {path.resolve()} ({len(views)} search{'es' if len(views) > 1 else ''}, "
                 f"{path.stat().st_size / 1e6:.1f} MB; open it in a browser)", soft_wrap=True)


@app.command("to-optuna")
@user_errors
def to_optuna_command(
    workdir: Annotated[Path, path_argument(help="Experiment directory.")],
    out: Annotated[Path, path_option(help="The Optuna journal file to write.")] = Path("optuna-journal.log"),
    study_name: Annotated[Optional[str], typer.Option(help="The study's name [default: the workdir's].")] = None,
) -> None:
    """Write the search as an Optuna journal storage, to open in optuna-dashboard."""
    from nas.to_optuna import to_optuna

    not_stdout(out, "--out", "an Optuna journal file")
    _load(workdir)  # the same one-line errors as every other command for a folder that is not a workdir
    check_output(out, "--out", [workdir])
    with named_flags({"study_name": "--study-name", "out": "--out"}):  # checked before the workdir is converted
        report = to_optuna(workdir, out, study_name)
    _out().print(f"wrote study {report.study_name!r} ({report.trials} trials: {report.complete} complete, "
                 f"{report.fail} failed, {report.pruned} pruned) to {report.out.resolve()}; view it with: "
                 f"optuna-dashboard {pasted(report.out)}", soft_wrap=True)


@app.command()
@user_errors
def strategies() -> None:
    """The registered strategies: what each needs of a space, its options and their defaults."""
    _out().print(strategies_table())


@app.command()
@user_errors
def spaces() -> None:
    """The built-in search spaces and how to make one (your own: a nas.spaces.Space in your script)."""
    _out().print(spaces_table())


@app.command("export")
@user_errors
def export_command(
    workdir: Annotated[Path, path_argument(help="Experiment directory holding a model spec (model.json).")],
    out: Annotated[Path, path_option(help="Folder for the exported models (one sub-folder per pick).")],
    top: Annotated[Optional[int], typer.Option(help="Export only the N best by the first objective.")] = None,
    constraint: Annotated[Optional[list[str]], typer.Option(
        help="Export only picks satisfying e.g. 'latency_ms <= 2'; repeat for several.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Then reload and re-measure every exported model; exit "
                                                          "status 1 if any is flagged.")] = False,
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx", help="Also write and check model.onnx.")] = True,
    quantize: Annotated[Optional[str], typer.Option(
        help="Also write each model quantized: int8 (model.int8.onnx, onnxruntime dynamic quantization), "
             "measured beside fp32 on its card.")] = None,
) -> None:
    """Export the Pareto-optimal models of a search: weights, ONNX, architecture JSON and model card."""
    from nas.export import export

    not_stdout(out, "--out", "a folder of exported models")
    result = _load(workdir)
    script = (result.config.get("metadata") or {}).get("script")
    if script and str(Path(script).parent) not in sys.path:  # a model module beside the `nas run` script imports
        sys.path.append(str(Path(script).parent))  # as it did when the script ran (nas resume does the same)
    console = _out()
    report = export(result, out, top, constraint or None, onnx=onnx, verify=verify, quantize=quantize)
    console.print(report.note, style=None if report.complete else "yellow", soft_wrap=True)  # said once
    console.print(export_table(report))
    if report.verify is not None:
        console.print(verify_table(report.verify))
    console.print(f"models: {report.out.resolve()}  (load one with torch.export.load(PATH/model.pt2).module(), "
                  "plain torch, or nas.load_subnet(PATH))", soft_wrap=True)
    if report.verify is not None:
        _exit_if_flagged(report.verify)


@app.command("verify")
@user_errors
def verify_command(out: Annotated[Path, path_argument(help="Folder written by `nas export`.")]) -> None:
    """Reload and re-measure exported models; flag those that left the front or broke a constraint (exit status 1
    when any is flagged)."""
    from nas.verify import VERIFY_REPORT, verify

    check_path(out, "out", "folder", missing=f"{out}: no such directory")
    report = verify(out)
    console = _out()
    console.print(verify_table(report))
    console.print(f"report: {(Path(out) / VERIFY_REPORT).resolve()}", soft_wrap=True)
    _exit_if_flagged(report)


VERIFY_FLAGGED = 1
"""The exit code of `nas verify` and `nas export --verify` when any pick is flagged, so that a script's
`nas export ... --verify && deploy` stops on a failed verification as it would on a failed test."""


def _exit_if_flagged(report: VerifyReport) -> None:
    """Say how many picks the verification flagged and exit with `VERIFY_FLAGGED`; nothing when none is."""
    if report.ok:
        return
    _err().print(f"verify failed: {len(report.flagged)} of {len(report.checks)} exported models flagged "
                 f"(exit status {VERIFY_FLAGGED}); see the flags column", style="yellow", soft_wrap=True)
    raise typer.Exit(VERIFY_FLAGGED)


def _mount_subcommands() -> None:
    """The study commands (`nas ask ...`), which live beside the code they drive; the sub-command groups
    (`nas hardware ...`) are `LAZY_GROUPS`."""
    from nas.cli.study import ask, enqueue, epoch, tell

    app.command("ask")(ask)
    app.command("tell")(tell)
    app.command("epoch")(epoch)
    app.command("enqueue")(enqueue)


_mount_subcommands()


def main() -> None:
    """Console-script entry point (`nas`)."""
    _setup_logging()
    if os.getcwd() not in sys.path:  # a model class in a module beside the user's script imports from its folder,
        sys.path.append(os.getcwd())  # as `python train.py` found it there (after installed packages: no shadowing)
    app(prog_name="nas")


if __name__ == "__main__":
    main()
