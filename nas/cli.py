"""The `nas` command line: run a search script, inspect a workdir, plot its front, resume it.

    nas run SCRIPT.py [--strategy NAME] [--budget N] [--seed S] [--workdir DIR]
                      [--objective NAME:max ...] [--constraint "m <= x" ...] [--fresh]
    nas status DIR
    nas pareto DIR [--plot front.png] [--objectives a,b]
    nas resume DIR [--budget N]
    nas export DIR --out models/ [--top N] [--constraint "m <= x" ...] [--verify]
    nas verify models/

A script for `nas run` is a Python file that defines `space` and `evaluate`, and optionally
`objectives`, `constraints`, `strategy`, `strategy_options`, `budget` and `seed` (flags override them).
Errors meant for users (`nas.errors.NASError`, a missing file) print as one red line and exit with 2.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from nas.console import make_console, user_errors
from nas.errors import ConfigError
from nas.objectives import Problem
from nas.result import SearchResult
from nas.spaces import Space
from nas.store import JOURNAL, SNAPSHOT, Journal, Trial
from nas.strategies import make_strategy

app = typer.Typer(name="nas", add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_show_locals=False,
                  help="Neural architecture search: run a search script, inspect, plot and resume its workdir.")

_user_errors = user_errors


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
    if not script.is_file():
        raise FileNotFoundError(f"script {script} not found")
    script = script.resolve()
    name = "nas_script_" + re.sub(r"\W", "_", script.stem)
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{script}: cannot be imported as a Python module (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    folder = str(script.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    missing = [n for n in ("space", "evaluate") if not hasattr(module, n)]
    if missing:
        what = " and ".join(f"`{n}`" for n in missing)
        raise ConfigError(f"{script} defines no {what}: a search script must define `space` "
                          "(a nas.spaces.Space) and `evaluate` (architecture -> dict of metrics)")
    return module


def parse_objectives(items: Sequence[str]) -> dict[str, str]:
    """["accuracy:max", "latency_ms:min"] -> {"accuracy": "max", "latency_ms": "min"}."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, direction = item.rpartition(":")
        if not sep or not name.strip() or direction.strip() not in ("min", "max"):
            raise ConfigError(f"--objective {item!r}: expected NAME:max or NAME:min (e.g. accuracy:max)")
        if name.strip() in out:
            raise ConfigError(f"--objective {name.strip()!r} is given twice")
        out[name.strip()] = direction.strip()
    return out


# ---------------------------------------------------------------------------------------- display
def fmt(value: Any) -> str:
    """A metric value for a table: integers with thousands separators, else 4 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        return str(v)
    if v.is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.1f}"
    return f"{v:.4g}"


def compact(value: Any) -> str:
    """An architecture on one line: `depth=2 layers=[(width=64 act=relu), (width=32 act=tanh)]`."""
    if isinstance(value, Mapping):
        return " ".join(f"{k}={compact(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(f"({compact(v)})" if isinstance(v, Mapping) else compact(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) and (" " in value or not value) else str(value)


def pareto_table(result: SearchResult, objectives: Sequence[str] | None = None) -> Table:
    """The Pareto front of `result` as a rich table: trial, objectives, other metrics, architecture."""
    front = result.pareto_front(objectives)
    names = list(objectives) if objectives else result.problem.names
    directions = {o.name: o.direction for o in result.problem.objectives}
    others = sorted({m for t in front for m in t.metrics} - set(names))
    table = Table(title=f"Pareto front: {len(front)} of {len(result.feasible)} feasible trials "
                        f"({len(result.trials)} in all)", title_justify="left")
    table.add_column("trial", justify="right")
    for n in names:
        table.add_column(f"{n} ({directions[n]})", justify="right", style="bold")
    for m in others:
        table.add_column(m, justify="right")
    table.add_column("architecture", overflow="fold")
    for t in front:
        table.add_row(str(t.number), *(fmt(t.metrics[n]) for n in names),
                      *(fmt(t.metrics[m]) if m in t.metrics else "" for m in others), compact(t.arch))
    return table


class SearchProgress:
    """A rich progress bar usable as `nas.search(progress=...)`: evaluations / budget and the best so far.

    `trials` are those already in the journal when a search resumes (the bar starts from them).
    """

    def __init__(self, console: Console, problem: Problem, budget: int, trials: Sequence[Trial] = ()) -> None:
        self.problem, self.budget = problem, budget
        self.first = problem.objectives[0]
        self.best: float | None = None
        self.failed = 0
        self.progress = Progress(TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[best]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console)
        used = 0
        for t in trials:
            self._see(t)
            used += t.status != "infeasible"
        self.task = self.progress.add_task("search", total=budget, completed=min(used, budget), best=self._text())

    def _see(self, trial: Trial) -> None:
        self.failed += trial.status == "failed"
        m = trial.metrics
        if trial.status != "ok" or self.first.name not in m or not self.problem.feasible(m):
            return
        v = m[self.first.name]
        if v == v and (self.best is None or self.first.minimised(v) < self.first.minimised(self.best)):
            self.best = v

    def _text(self) -> str:
        best = f"best {self.first.name} {fmt(self.best)}" if self.best is not None else f"best {self.first.name} -"
        return best + (f"  ({self.failed} failed)" if self.failed else "")

    def __call__(self, trial: Trial, used: int, budget: int) -> None:
        self._see(trial)
        self.progress.update(self.task, completed=used, total=max(budget, used), best=self._text())

    def __enter__(self) -> "SearchProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()


def _summary(console: Console, result: SearchResult, seconds: float) -> None:
    counts = Counter(t.status for t in result.trials)
    used = sum(n for s, n in counts.items() if s != "infeasible")
    extra = [f"{counts[s]} {s}" for s in ("failed", "infeasible") if counts.get(s)]
    console.print(f"{used} evaluations{' (' + ', '.join(extra) + ')' if extra else ''} "
                  f"in the journal; this run took {seconds:.1f} s", soft_wrap=True)
    if result.stop_reason == "exhausted":
        console.print("the strategy proposed no new architecture (space exhausted or strategy converged), "
                      "so the search stopped below its budget", style="yellow", soft_wrap=True)


def _show_front(console: Console, result: SearchResult, objectives: Sequence[str] | None = None) -> None:
    if not result.feasible:
        console.print("no feasible trial yet: nothing is on the Pareto front", style="yellow")
        return
    console.print(pareto_table(result, objectives))


def _run_and_report(module: ModuleType, *, objectives: Any, constraints: Any, strategy: Any, budget: int,
                    seed: int, workdir: Path, strategy_options: Mapping[str, Any] | None,
                    fidelity: float | None, metadata: Mapping[str, Any], resuming: bool = False,
                    executor: Any = "local") -> SearchResult:
    import nas

    console = _out()
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"budget: expected a positive int (number of evaluations), got {budget!r}")
    problem = Problem.make(objectives, constraints)
    if not isinstance(module.space, Space):
        raise ConfigError(f"{module.__file__}: `space` is a {type(module.space).__name__}, expected a nas.spaces.Space")
    if isinstance(strategy, str):  # fail on a bad name or option now, not after the progress bar is up
        make_strategy(strategy, module.space, problem, seed, **dict(strategy_options or {}))
    journal = Journal(workdir)
    before = journal.read()[1] if journal.exists() else []
    if before:
        console.print(f"{workdir} holds {len(before)} trials of this search: continuing it"
                      + ("" if resuming else " (--fresh starts over)"), soft_wrap=True)
    t0 = time.time()
    with SearchProgress(console, problem, budget, before) as progress:
        result = nas.search(module.space, module.evaluate, objectives=objectives, constraints=constraints,
                            strategy=strategy, budget=budget, seed=seed, workdir=workdir,
                            strategy_options=strategy_options, fidelity=fidelity, progress=progress,
                            metadata=metadata, executor=executor)
    _summary(console, result, time.time() - t0)
    _show_front(console, result)
    where = result.workdir.resolve() if result.workdir else workdir
    console.print(f"workdir: {where}  (journal: {JOURNAL})", soft_wrap=True)
    console.print(f"next: nas status {workdir} | nas pareto {workdir} --plot front.png | "
                  f"nas resume {workdir} --budget {budget * 2}", style="dim", soft_wrap=True)
    return result


# ---------------------------------------------------------------------------------------- commands
@app.command()
@_user_errors
def run(
    script: Annotated[Path, typer.Argument(help="Python file defining `space` and `evaluate`.")],
    strategy: Annotated[Optional[str], typer.Option(help="Search strategy (random, evolution, nsga2, local).")] = None,
    budget: Annotated[Optional[int], typer.Option(help="Number of evaluations.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed of the strategy.")] = None,
    workdir: Annotated[Optional[Path], typer.Option(help="Experiment directory [default: runs/<script stem>].")] = None,
    objective: Annotated[Optional[list[str]], typer.Option(
        help="NAME:max or NAME:min; repeat for several (replaces the script's `objectives`).")] = None,
    constraint: Annotated[Optional[list[str]], typer.Option(
        help="e.g. 'latency_ms <= 20'; repeat for several (replaces the script's `constraints`).")] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Delete the workdir's journal and snapshot first instead of continuing them.")] = False,
    executor: Annotated[str, typer.Option(help="local, ray (actor pool) or ray-tune (Tune trials).")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (auto or HOST:PORT) [default: start a local one].")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel Ray workers [default: cluster CPUs / cpus-per-trial].")] = None,
    cpus_per_trial: Annotated[Optional[float], typer.Option(help="CPUs per Ray worker/trial (fractions allowed).")] = None,
    gpus_per_trial: Annotated[Optional[float], typer.Option(help="GPUs per Ray worker/trial (fractions allowed).")] = None,
) -> None:
    """Run the search a script defines; print its Pareto front and where the results are."""
    from nas.ray_executor import executor_spec

    spec = executor_spec(executor, address, workers, cpus_per_trial, gpus_per_trial)
    module = load_script(script)
    objectives: Any = parse_objectives(objective) if objective else getattr(module, "objectives", None)
    if objectives is None:
        raise ConfigError(f"{script}: no objectives: define `objectives = {{'accuracy': 'max'}}` in the script "
                          "or pass --objective NAME:max")
    constraints = list(constraint) if constraint else list(getattr(module, "constraints", ()) or ())
    workdir = workdir if workdir is not None else Path("runs") / Path(script).stem
    script_strategy = getattr(module, "strategy", "evolution")
    # The script's strategy_options belong to the script's strategy: --strategy OTHER drops them.
    options = getattr(module, "strategy_options", None) if strategy in (None, script_strategy) else None
    if fresh:
        for name in (JOURNAL, SNAPSHOT, SNAPSHOT + ".tmp"):
            (workdir / name).unlink(missing_ok=True)
    _run_and_report(
        module, objectives=objectives, constraints=constraints,
        strategy=strategy if strategy is not None else script_strategy,
        budget=budget if budget is not None else getattr(module, "budget", 100),
        seed=seed if seed is not None else getattr(module, "seed", 0),
        workdir=workdir, strategy_options=options, fidelity=None, executor=spec,
        metadata={"script": str(Path(script).resolve()), **({"executor": spec} if spec != "local" else {})})


@app.command()
@_user_errors
def resume(
    workdir: Annotated[Path, typer.Argument(help="Experiment directory of a search started with `nas run`.")],
    budget: Annotated[Optional[int], typer.Option(help="New total budget [default: the one it started with].")] = None,
    executor: Annotated[Optional[str], typer.Option(help="local, ray or ray-tune [default: as recorded].")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join [default: as recorded].")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel Ray workers [default: as recorded].")] = None,
) -> None:
    """Continue a killed or finished search with the same settings (optionally a larger budget)."""
    from nas.ray_executor import executor_spec

    loaded = _load(workdir)
    config, trials = loaded.config, loaded.trials
    recorded = (config.get("metadata") or {}).get("executor") or "local"
    spec = executor_spec(executor or (recorded if isinstance(recorded, str) else recorded["name"]), address,
                         workers, base=recorded)
    script = (config.get("metadata") or {}).get("script")
    if not script:
        raise ConfigError(f"{workdir} records no script (it was not started by `nas run`); resume it by calling "
                          f"nas.search(..., workdir={str(workdir)!r}) again with the same arguments")
    problem = config["problem"]
    total = budget if budget is not None else int(config["budget"])
    used = sum(t.status != "infeasible" for t in trials)
    if budget is None and used >= total:
        console = _out()
        console.print(f"{workdir} has used its budget ({used} evaluations); pass --budget N with N > {used} "
                      "to continue it", style="yellow", soft_wrap=True)
        _show_front(console, loaded)
        return
    module = load_script(script)
    _run_and_report(module, objectives=problem["objectives"], constraints=problem["constraints"],
                    strategy=config["strategy"], budget=total, seed=config["seed"], workdir=workdir,
                    strategy_options=config.get("strategy_options") or None, fidelity=config.get("fidelity"),
                    metadata=config.get("metadata") or {}, resuming=True, executor=spec)


def _load(workdir: Path) -> SearchResult:
    if not Path(workdir).is_dir():
        raise FileNotFoundError(f"{workdir}: no such directory")
    return SearchResult.load(workdir)


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


@app.command()
@_user_errors
def status(workdir: Annotated[Path, typer.Argument(help="Experiment directory.")]) -> None:
    """Trials by status, budget used, best value per objective and the time of the last trial."""
    result = _load(workdir)
    config, trials = result.config, result.trials
    console = _out()
    counts = Counter(t.status for t in trials)
    used = sum(n for s, n in counts.items() if s != "infeasible")
    budget = int(config.get("budget", 0))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("workdir", str(Path(workdir).resolve()))
    script = (config.get("metadata") or {}).get("script")
    if script:
        grid.add_row("script", str(script))
    grid.add_row("strategy", f"{config.get('strategy')} (seed {config.get('seed')}"
                 + (f", options {json.dumps(config['strategy_options'])}" if config.get("strategy_options") else "")
                 + ")")
    grid.add_row("objectives", ", ".join(f"{o.name} ({o.direction})" for o in result.problem.objectives))
    grid.add_row("constraints", ", ".join(str(c) for c in result.problem.constraints) or "none")
    grid.add_row("trials", f"{len(trials)} in the journal: "
                 + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "failed", "infeasible"))
                 + "".join(f", {n} {s}" for s, n in counts.items() if s not in ("ok", "failed", "infeasible")))
    note = "budget reached" if used >= budget else f"{budget - used} left"
    grid.add_row("budget", f"{used} of {budget} evaluations used ({note})")
    for o in result.problem.objectives:
        best = result.best(o.name)
        grid.add_row(f"best {o.name}", f"{fmt(best.metrics[o.name])} (trial {best.number})" if best else "-")
    grid.add_row("pareto front", f"{len(result.pareto_front())} trials (nas pareto {workdir})")
    if trials:
        first = min(t.started for t in trials)
        last = max(t.finished for t in trials)
        grid.add_row("first trial", datetime.fromtimestamp(first).strftime("%Y-%m-%d %H:%M:%S"))
        grid.add_row("last trial", datetime.fromtimestamp(last).strftime("%Y-%m-%d %H:%M:%S")
                     + f" ({_ago(time.time() - last)})")
        evals = [t.duration for t in trials if t.status != "infeasible"]
        if evals:
            grid.add_row("evaluation time", f"{sum(evals):.1f} s in all, {sum(evals) / len(evals):.2f} s per trial")
    if used >= budget:
        grid.add_row("state", "finished (budget used); nas resume DIR --budget N continues it")
    else:
        grid.add_row("state", "below budget: still running, or stopped (nas resume DIR continues it)")
    console.print(grid)


@app.command()
@_user_errors
def pareto(
    workdir: Annotated[Path, typer.Argument(help="Experiment directory.")],
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG of the trials and the front here.")] = None,
    objectives: Annotated[Optional[str], typer.Option(
        help="Comma-separated objectives to use (default: all the search's; the plot shows the first two).")] = None,
) -> None:
    """Print the Pareto front as a table; with --plot also write it as a PNG."""
    result = _load(workdir)
    names = [n.strip() for n in objectives.split(",") if n.strip()] if objectives else None
    console = _out()
    _show_front(console, result, names)
    if plot is not None:
        from nas.plot import plot_pareto

        path = plot_pareto(result, plot, names)
        console.print(f"plot: {path.resolve()}", soft_wrap=True)


@app.command("export")
@_user_errors
def export_command(
    workdir: Annotated[Path, typer.Argument(help="Experiment directory holding a model spec (model.json).")],
    out: Annotated[Path, typer.Option(help="Folder for the exported models (one sub-folder per pick).")],
    top: Annotated[Optional[int], typer.Option(help="Export only the N best by the first objective.")] = None,
    constraint: Annotated[Optional[list[str]], typer.Option(
        help="Export only picks satisfying e.g. 'latency_ms <= 2'; repeat for several.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Then reload and re-measure every exported model.")] = False,
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx", help="Also write and check model.onnx.")] = True,
) -> None:
    """Export the Pareto-optimal models of a search: weights, ONNX, architecture JSON and model card."""
    from nas.export import export, export_table
    from nas.verify import verify_table

    result = _load(workdir)
    console = _out()
    report = export(result, out, top, constraint or None, onnx=onnx, verify=verify)
    if not report.complete:
        console.print(report.note, style="yellow", soft_wrap=True)
    console.print(export_table(report))
    if report.verify is not None:
        console.print(verify_table(report.verify))
    console.print(f"models: {report.out.resolve()}  (load one with nas.load_subnet(PATH))", soft_wrap=True)


@app.command("verify")
@_user_errors
def verify_command(out: Annotated[Path, typer.Argument(help="Folder written by `nas export`.")]) -> None:
    """Reload and re-measure exported models; flag those that left the front or broke a constraint."""
    from nas.verify import VERIFY_REPORT, verify, verify_table

    if not Path(out).is_dir():
        raise FileNotFoundError(f"{out}: no such directory")
    report = verify(out)
    console = _out()
    console.print(verify_table(report))
    console.print(f"report: {(Path(out) / VERIFY_REPORT).resolve()}", soft_wrap=True)


def _mount_subcommands() -> None:
    """Sub-command groups that live beside the code they drive (`nas hardware ...`)."""
    from nas.hardware.cli import app as hardware_app

    app.add_typer(hardware_app, name="hardware")
    from nas.predictors.cli import app as predictors_app

    app.add_typer(predictors_app, name="predictors")


_mount_subcommands()


def main() -> None:
    """Console-script entry point (`nas`)."""
    _setup_logging()
    app(prog_name="nas")


if __name__ == "__main__":
    main()
