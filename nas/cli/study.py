"""`nas ask DIR`, `nas epoch DIR ARCH`, `nas tell DIR ARCH` and `nas enqueue DIR ARCH`: a journaled study
(`nas.Study`) driven from the shell, e.g. by the job scripts of a cluster's queue (Optuna's `optuna ask` /
`optuna tell`; `nas epoch` is `trial.report` + `should_prune`, judged by the pruner the study was made with;
`nas enqueue` is `study.enqueue_trial`).

The study is made once in Python (`nas.Study(space, objectives, ..., workdir=DIR).close()`); after that these
commands need only its workdir: the space is rebuilt from the journal (a plain `Space`, or a built-in space made
with its defaults), the objectives, strategy, options, seed and budget are the recorded ones. Each call holds the
workdir for a moment, waiting up to `--wait` seconds while another call holds it, so jobs finishing together queue.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nas.console import make_console, path_argument, user_errors
from nas.errors import ConfigError, WorkdirBusy, check_count, check_int, check_number
from nas.executors import metric_value
from nas.objectives import Problem
from nas.spaces import Space
from nas.store import Journal, Trial, evaluations_used
from nas.pruning import report_error
from nas.study import Study, check_error, judged_metric, pending_id, pruner_instance, told_typo

NOTHING_LEFT = 3
"""`nas ask`'s exit code when nothing is left to hand out (the budget is told or pending, or the strategy has
nothing new), so a job script can end its loop on it."""
WAIT = 5
"""`nas ask`'s exit code when nothing can be handed out now but may be once the pending architectures are told (a
population waiting for its results): tell them, then ask again."""
PRUNE = 4
"""`nas epoch`'s exit code when the study's pruner says to stop the training (then `nas tell DIR ID`)."""

WorkdirArg = Annotated[Path, path_argument(help="The study's workdir (made by nas.Study in Python).")]
WaitFlag = Annotated[float, typer.Option(help="Seconds to wait while another process holds the workdir.")]


@dataclass
class Recorded:
    """What a study's workdir holds, read without opening it: a command checks its arguments against this before
    `Study` opens the workdir, which journals a resume record, so a refused call writes nothing."""

    space: Space
    config: dict[str, Any]
    trials: list[Trial]
    pending: dict[str, dict[str, Any]]  # arch id -> {"arch_id", "arch", "since"}: asked and not told
    reports: dict[str, dict[str, Any]]  # arch id -> its `nas epoch` reports so far ("prune": the pruner said stop)

    @classmethod
    def read(cls, workdir: Path, space: Space) -> "Recorded":
        journal = Journal(workdir)
        contents = journal.read()
        pending = journal.pending({t.arch_id for t in contents.trials})
        reports = (journal.load_snapshot() or {}).get("reports", {})
        return cls(space, contents.config, contents.trials, {p["arch_id"]: p for p in pending}, dict(reports))

    def pending_id(self, text: str) -> str:
        """The id of the one pending architecture whose id starts with `text`; ConfigError as `Study` says it."""
        return pending_id(text, list(self.pending))

    def pruned(self, arch_id: str) -> bool:
        """Whether the study's pruner said to stop this pending architecture's training at its last report."""
        return bool(self.reports.get(arch_id, {}).get("prune")) if arch_id in self.pending else False


def open_study(workdir: Path, wait: float = 30.0, budget: int | None = None, judge: bool = False,
               check: Callable[[Recorded], None] | None = None) -> Study:
    """The study recorded in `workdir`, reopened from its journal alone (`wait`: seconds to wait for its lock;
    `budget`: a larger one than recorded, to go on; `judge`: its pruner will judge a report, so one the journal
    cannot rebuild is refused). `check` sees what the workdir holds once no other call holds it (or the wait is
    over), and refuses the command's arguments before anything is written. The study is built once the workdir is
    free, not on every try (building it warns, e.g. about a pruner judging one of several objectives)."""
    from nas.cli import driver, resume_hint
    from nas.dashboard.views import rebuild_space

    if math.isnan(wait) or wait < 0:  # a typo: checked as --fail-stale is, not silently taken as 0
        raise ConfigError(f"--wait: expected a number >= 0 (seconds), got {wait!r}")
    journal = Journal(workdir)
    if not journal.exists():
        raise ConfigError(f"{workdir}: no search journal here; make the study in Python first: "
                          f"nas.Study(space, objectives, ..., workdir={str(workdir)!r}).close()")
    config = journal.read().config
    call = driver(config)
    if call is not None:  # its strategy ('darts', 'eas') is no strategy a Study knows: say what the workdir is
        raise ConfigError(f"{workdir} is not a study: it holds a {call} search, which nas ask, tell, epoch and "
                          f"enqueue cannot drive; to continue it, {resume_hint(Path(workdir), config)}")
    if not (config.get("metadata") or {}).get("study"):  # nas run's or nas.search's: asking would turn it into a study
        raise ConfigError(f"{workdir} is not a study: it holds a search run by "
                          f"{'`nas run`' if (config.get('metadata') or {}).get('script') else 'nas.search'}, which nas "
                          f"ask, tell, epoch and enqueue cannot drive; to continue it, "
                          f"{resume_hint(Path(workdir), config)}")
    if "strategy_instance" in config:
        raise ConfigError(f"{workdir}: this search was run with a Strategy instance, which the journal cannot "
                          "rebuild; drive it from Python with nas.Study(..., strategy=<the same kind of instance>)")
    space = rebuild_space(Path(workdir), config)
    if space is None:
        raise ConfigError(f"{workdir}: its space cannot be rebuilt from the journal (a Space subclass, or a built-in "
                          "space made with arguments); drive it from Python with nas.Study(space, ...)")
    problem = config["problem"]
    if judge and pruner_instance(config) is not None:
        raise ConfigError(f"{workdir}: this study was made with an optuna.pruners.{pruner_instance(config)} instance, "
                          "which the shell cannot rebuild, so nas epoch cannot judge its trainings; report from "
                          "Python (nas.Study(..., pruner=<the same pruner>).report), or make the study with a pruner "
                          "name (median, percentile, asha, hyperband)")
    if budget is not None:
        check_count(budget, "--budget", " (number of evaluations)")  # before comparing it with the recorded one
        if budget < int(config["budget"]):
            make_console(stderr=True).print(
                f"--budget {budget} is below the study's {config['budget']}: keeping {config['budget']} (nas ask only "
                f"raises a budget; to lower it, open the study in Python with nas.Study(..., budget={budget}, "
                f"lower_budget=True, workdir={str(workdir)!r}))", style="yellow", soft_wrap=True)
            budget = None
    deadline = time.monotonic() + wait
    while True:
        if journal.writer() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
            continue
        if check is not None:
            check(Recorded.read(Path(workdir), space))  # what the last call left, as the study will find it
        try:
            return Study(space, problem["objectives"], problem["constraints"], strategy=str(config["strategy"]),
                         workdir=workdir, strategy_options=config.get("strategy_options") or None,
                         budget=budget if budget is not None else int(config["budget"]))  # its pruner: recorded
        except WorkdirBusy:  # taken between the look and the open
            if time.monotonic() >= deadline:
                raise


@user_errors
def ask(workdir: WorkdirArg,
        n: Annotated[int, typer.Option("-n", help="How many architectures to hand out.")] = 1,
        budget: Annotated[Optional[int], typer.Option(help="Raise the study's budget to N evaluations.")] = None,
        fail_stale: Annotated[Optional[float], typer.Option(
            help="First fail the pending architectures asked more than this many seconds ago (dead jobs).")] = None,
        wait: WaitFlag = 30.0) -> None:
    """Hand out the study's next architecture(s), one JSON line each: {"id": ..., "arch": {...}}. Exit code 3
    when nothing is left (the budget is told or pending, or the strategy has nothing new); 5 when nothing is
    left for now (the strategy waits for the pending results: tell them, then ask again)."""
    if n < 1:
        raise ConfigError(f"-n: expected an integer >= 1, got {n}")
    if fail_stale is not None:
        check_number(fail_stale, "--fail-stale", positive=False, unit=" (seconds)")
    def finished(recorded: Recorded) -> None:  # nothing to hand out: said without opening (a study's open writes)
        total, used = max(budget or 0, int(recorded.config["budget"])), evaluations_used(recorded.trials)
        if fail_stale is None and used + len(recorded.pending) >= total and not Journal(workdir).search_running():
            _nothing_left(used, len(recorded.pending), total)

    with open_study(workdir, wait, budget, check=finished) as study:
        for trial in study.fail_stale(fail_stale) if fail_stale is not None else []:
            typer.echo(f"trial {trial.number}: failed ({trial.error})", err=True)
        asked = []
        for _ in range(n):
            arch = study.ask()
            if arch is None:
                break
            asked.append(arch)
        used, pending, budget, waiting = study.used, len(study.pending), study.budget, study.waiting
    for arch in asked:  # printed once the study is closed, so what was handed out is pending in its snapshot
        sys.stdout.write(json.dumps({"id": arch.id, "arch": arch.to_dict()}) + "\n")
    if not asked and waiting:
        typer.echo(f"nothing to ask now: {used} told and {pending} pending of a budget of {budget}; the strategy "
                   "waits for the pending results: tell them, then ask again", err=True)
        raise typer.Exit(WAIT)
    if not asked:
        _nothing_left(used, pending, budget)


def _nothing_left(used: int, pending: int, budget: int) -> None:
    """`nas ask` found nothing to hand out: say why, exit with NOTHING_LEFT."""
    typer.echo(f"nothing to ask: {used} told and {pending} pending of a budget of {budget}"
               + ("" if used + pending >= budget else "; the strategy proposes nothing new"), err=True)
    raise typer.Exit(NOTHING_LEFT)


@user_errors
def tell(workdir: WorkdirArg,
         arch: Annotated[str, typer.Argument(help="A pending architecture's id (or a prefix of it), or an "
                                                  "architecture as a JSON object (a result evaluated elsewhere).")],
         metric: Annotated[Optional[list[str]], typer.Option(help="NAME=VALUE, e.g. accuracy=91.2; repeat for "
                                                                  "each metric.")] = None,
         metrics: Annotated[Optional[str], typer.Option(help="The metrics as one JSON object ('-': read it from "
                                                             "standard input).")] = None,
         error: Annotated[Optional[str], typer.Option(help="The evaluation failed: why.")] = None,
         attr: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE kept with the trial (a checkpoint path, a "
                                                                "note); VALUE is read as JSON when it is JSON, else "
                                                                "as text. Repeat for each.")] = None,
         wait: WaitFlag = 30.0) -> None:
    """Journal the result of one architecture and tell the study's strategy."""
    values = _metrics(metric or [], metrics)
    attrs: dict[str, Any] = {}
    for item in attr or []:
        key, value = _attr(item)
        if key in attrs:
            raise ConfigError(f"--attr: {key!r} is given twice")
        attrs[key] = value
    if error is not None:
        check_error(error, "--error")
    target: Any = arch
    if arch.lstrip().startswith("{"):
        try:
            target = json.loads(arch)
        except json.JSONDecodeError as e:
            raise ConfigError(f"ARCH: not a JSON object ({e.msg} at character {e.pos})") from None

    def check(recorded: Recorded) -> None:
        """What `Study.tell` would refuse, refused before the workdir is opened."""
        if isinstance(target, str):
            arch_id = recorded.pending_id(target)
        else:
            arch_id = recorded.space.validate(target).id
            told = next((t for t in recorded.trials if t.arch_id == arch_id and t.is_evaluation), None)
            if told is not None and arch_id not in recorded.pending:
                raise ConfigError(f"tell: architecture {arch_id[:12]} was told already (trial {told.number})")
        stopped = recorded.pruned(arch_id)
        if not values and error is None and not stopped:
            raise ConfigError("tell: give the evaluation's metrics (--metric NAME=VALUE or --metrics JSON), or "
                              "--error TEXT when it failed")
        if values and error is None and not stopped:
            problem = recorded.config["problem"]
            typo = told_typo(Problem.make(problem["objectives"], problem["constraints"]), recorded.trials, values)
            if typo is not None:
                raise ConfigError(f"tell: {typo}; nothing was journaled, tell it again with the objectives' names")

    with open_study(workdir, wait, check=check) as study:
        trial = study.tell(target, values or None, error=error, user_attrs=attrs or None)
    shown = ", ".join(f"{k}={v:g}" for k, v in trial.metrics.items())
    typer.echo(f"trial {trial.number}: {trial.status}" + (f" ({shown})" if shown else "")
               + (f": {trial.error}" if trial.error else ""))


def _attr(text: str) -> tuple[str, Any]:
    """--attr KEY=VALUE: the value as JSON where it parses (3, true, [1, 2]), else the text itself."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--attr {text!r}: expected KEY=VALUE, e.g. --attr checkpoint=/runs/a.pt")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


@user_errors
def enqueue(workdir: WorkdirArg,
            arch: Annotated[list[str], typer.Argument(help="Architectures as JSON objects, handed out by the next "
                                                           "nas ask calls before the strategy's, in this order.")],
            wait: WaitFlag = 30.0) -> None:
    """Have the next `nas ask` calls hand out these architectures first (a baseline, a known design), each checked
    against the space; one already asked or told is not handed out again. Kept in the study until asked."""
    archs = []
    for i, text in enumerate(arch):
        try:
            archs.append(json.loads(text))
        except json.JSONDecodeError as e:
            raise ConfigError(f"ARCH {i + 1}: not a JSON object ({e.msg} at character {e.pos})") from None
    def check(recorded: Recorded) -> None:
        for i, a in enumerate(archs):
            if not isinstance(a, Mapping):
                raise ConfigError(f"ARCH {i + 1}: expected a JSON object of field -> value, got {json.dumps(a)}")
            recorded.space.validate(a)

    with open_study(workdir, wait, check=check) as study:
        queued = [study.enqueue(a) for a in archs]
    for a in queued:
        typer.echo(f"enqueued {a.id}")


@user_errors
def epoch(workdir: WorkdirArg,
           arch: Annotated[str, typer.Argument(help="A pending architecture's id (or a prefix of it).")],
           metric: Annotated[Optional[list[str]], typer.Option(help="NAME=VALUE, e.g. accuracy=71.3; repeat for "
                                                                    "each metric.")] = None,
           metrics: Annotated[Optional[str], typer.Option(help="The metrics as one JSON object ('-': standard "
                                                               "input).")] = None,
           step: Annotated[Optional[int], typer.Option(
               help="The report's step (Optuna's trial.report step, e.g. the epoch), after the previous report's "
                    "[default: the previous one + 1].")] = None,
           wait: WaitFlag = 30.0) -> None:
    """One epoch's metrics of a pending architecture; prints 'prune' and exits with 4 when the study's pruner says
    to stop its training (then `nas tell DIR ID` journals it with this report), else prints 'continue'. Metrics
    lacking the one the pruner judges, or any objective or constraint metric, are refused (exit code 2) before
    anything is written."""
    values = _metrics(metric or [], metrics)
    if not values:
        raise ConfigError("epoch: give the epoch's metrics (--metric NAME=VALUE or --metrics JSON)")

    def check(recorded: Recorded) -> None:
        """What `Study.report` would refuse, refused before the workdir is opened."""
        recorded.pending_id(arch)
        if step is not None:
            check_int(step, "--step", 0)
        metric = judged_metric(recorded.config)
        if metric is not None:
            problem = recorded.config["problem"]
            refused = report_error(Problem.make(problem["objectives"], problem["constraints"]), metric, values,
                                   "epoch")
            if refused is not None:
                raise ConfigError(refused)

    with open_study(workdir, wait, judge=True, check=check) as study:
        stop = study.report(arch, values, step=step)
    typer.echo("prune" if stop else "continue")
    if stop:
        raise typer.Exit(PRUNE)


def _metrics(items: list[str], text: str | None) -> dict[str, Any]:
    """--metric NAME=VALUE items and a --metrics JSON object, joined (a name given twice is an error)."""
    out: dict[str, Any] = {}
    if text is not None:
        raw = sys.stdin.read() if text == "-" else text
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--metrics: not JSON ({e.msg} at character {e.pos})") from None
        if not isinstance(parsed, dict):
            raise ConfigError(f"--metrics: expected a JSON object of metric name -> number, got {raw.strip()[:60]}")
        for name, value in parsed.items():
            problem = metric_value(value)[1]
            if problem is not None:
                raise ConfigError(f"--metrics: {name!r} = {value!r}: {problem}")
        out.update(parsed)
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--metric: expected NAME=VALUE, got {item!r}")
        if name.strip() in out:
            raise ConfigError(f"--metric: {name.strip()!r} is given twice")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--metric {name.strip()}: {value!r} is not a number") from None
    return out

