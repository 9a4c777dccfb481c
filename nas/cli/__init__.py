"""The `nas` command line: run a search script, inspect a workdir, plot its front, resume it.

    nas run SCRIPT.py [--strategy NAME] [--budget N] [--seed S] [--workdir DIR]
                      [--objective NAME:max ...] [--constraint "m <= x" ...] [--fresh] [--lower-budget]
    nas status DIR
    nas pareto DIR [--plot front.png] [--objectives a,b]
    nas resume DIR [--budget N] [--lower-budget]
    nas export DIR --out models/ [--top N] [--constraint "m <= x" ...] [--verify]
    nas verify models/

A script for `nas run` is a Python file that defines `space` and `evaluate`, and optionally
`objectives`, `constraints`, `strategy`, `strategy_options`, `budget` and `seed` (flags override them).
Errors meant for users (`nas.errors.NASError`, a missing file) print as one red line and exit with 2.
Only this module, `nas.report`, `nas.plot` and `nas.console` print.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
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
from rich.table import Table

from nas.console import make_console, user_errors
from nas.errors import ConfigError
from nas.executor_spec import executor_spec
from nas.experiment import check_budget, check_seed, check_workdir, search_config
from nas.objectives import Problem
from nas.report import SearchProgress, export_table, fmt, show_front, summary, verify_table
from nas.result import SearchResult
from nas.spaces import Space
from nas.store import JOURNAL, Journal
from nas.strategies import STRATEGIES, Strategy, make_strategy

app = typer.Typer(name="nas", add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_show_locals=False,
                  help="Neural architecture search: run a search script, inspect, plot and resume its workdir.")

STRATEGY_HELP = f"Search strategy, one of: {', '.join(sorted(STRATEGIES))} [default: the script's, else evolution]."


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


def resume_hint(workdir: Path, config: Mapping[str, Any]) -> str:
    """How this search continues: `nas resume DIR` for scripts run by `nas run`, else the Python call again."""
    if (config.get("metadata") or {}).get("script"):
        return f"nas resume {workdir}"
    return f"call nas.search(..., workdir={str(workdir)!r}) again with the same arguments"


def _discard(workdir: Path, console: Console) -> None:
    """`--fresh`: move the workdir's previous search (journal, snapshot, model spec, weights) to DIR.previous."""
    if not workdir.exists():
        return
    holder = Journal(workdir).writer()
    if holder is not None:
        raise ConfigError(f"--fresh: {workdir} is being written by a running search ({holder}); stop it first")
    target = workdir.with_name(workdir.name + ".previous")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(workdir, target)
    console.print(f"--fresh: moved the previous search in {workdir} to {target} (delete it when you no longer "
                  "need it)", soft_wrap=True)


def _run_and_report(module: ModuleType, *, objectives: Any, constraints: Any, strategy: str | Strategy, budget: int,
                    seed: int, workdir: Path, strategy_options: Mapping[str, Any] | None,
                    fidelity: float | None, metadata: Mapping[str, Any], resuming: bool = False,
                    executor: Any = "local", lower_budget: bool = False) -> SearchResult:
    """Check everything that can be checked before anything is printed or written, then search with a progress bar."""
    import nas

    console = _out()
    check_budget(budget)
    check_seed(seed)
    problem = Problem.make(objectives, constraints)
    if not isinstance(module.space, Space):
        raise ConfigError(f"{module.__file__}: `space` is a {type(module.space).__name__}, expected a nas.spaces.Space")
    if isinstance(strategy, str):  # fail on a bad name or option now, not after the progress bar is up
        make_strategy(strategy, module.space, problem, seed, **dict(strategy_options or {}))
        name = strategy
    else:
        name = strategy.name or type(strategy).__name__
    config = search_config(module.space, problem, name, strategy_options or {}, seed, budget, fidelity, metadata)
    contents = check_workdir(workdir, config)  # a different search in the workdir is an error before any output
    before = contents.trials if contents is not None else []
    if contents is not None and not lower_budget:
        budget_shown = max(budget, int(contents.config.get("budget") or 0))
    else:
        budget_shown = budget
    if before:
        console.print(f"{workdir} holds {len(before)} trials of this search: continuing it"
                      + ("" if resuming else " (--fresh starts over)"), soft_wrap=True)
    t0 = time.time()
    try:
        with SearchProgress(console, problem, budget_shown, before) as progress:
            result = nas.search(module.space, module.evaluate, objectives=objectives, constraints=constraints,
                                strategy=strategy, budget=budget, seed=seed, workdir=workdir,
                                strategy_options=strategy_options, fidelity=fidelity, progress=progress,
                                metadata=metadata, executor=executor, lower_budget=lower_budget)
    except KeyboardInterrupt:
        _err().print(f"interrupted; every finished trial is in {workdir / JOURNAL}; continue with: "
                     f"{resume_hint(workdir, config)}", style="yellow", soft_wrap=True)
        raise typer.Exit(130) from None
    summary(console, result, time.time() - t0)
    show_front(console, result)
    where = result.workdir.resolve() if result.workdir else workdir
    console.print(f"workdir: {where}  (journal: {JOURNAL})", soft_wrap=True)
    console.print(f"next: nas status {workdir} | nas pareto {workdir} --plot front.png | "
                  f"nas resume {workdir} --budget {result.used * 2 or budget * 2}", style="dim", soft_wrap=True)
    return result


# ---------------------------------------------------------------------------------------- commands
@app.command()
@user_errors
def run(
    script: Annotated[Path, typer.Argument(help="Python file defining `space` and `evaluate`.")],
    strategy: Annotated[Optional[str], typer.Option(help=STRATEGY_HELP)] = None,
    budget: Annotated[Optional[int], typer.Option(help="Number of evaluations (a resumed search keeps a larger "
                                                        "recorded budget).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed of the strategy.")] = None,
    workdir: Annotated[Optional[Path], typer.Option(help="Experiment directory [default: runs/<script stem>].")] = None,
    objective: Annotated[Optional[list[str]], typer.Option(
        help="NAME:max or NAME:min; repeat for several (replaces the script's `objectives`).")] = None,
    constraint: Annotated[Optional[list[str]], typer.Option(
        help="e.g. 'latency_ms <= 20'; repeat for several (replaces the script's `constraints`).")] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Start over: move the workdir's previous search to DIR.previous first.")] = False,
    lower_budget: Annotated[bool, typer.Option(
        "--lower-budget", help="Accept a budget below the one recorded in the workdir.")] = False,
    executor: Annotated[str, typer.Option(help="local, ray (actor pool) or ray-tune (Tune trials).")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (auto or HOST:PORT) [default: start a local one].")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel Ray workers [default: cluster CPUs / cpus-per-trial].")] = None,
    cpus_per_trial: Annotated[Optional[float], typer.Option(help="CPUs per Ray worker/trial (fractions allowed).")] = None,
    gpus_per_trial: Annotated[Optional[float], typer.Option(help="GPUs per Ray worker/trial (fractions allowed).")] = None,
) -> None:
    """Run the search a script defines; print its Pareto front and where the results are."""
    spec = executor_spec(executor, address, workers, cpus_per_trial, gpus_per_trial)
    workdir = workdir if workdir is not None else Path("runs") / Path(script).stem
    if not Path(script).expanduser().is_file():
        raise FileNotFoundError(f"script {script} not found")
    if fresh:  # before the script runs: a script may record its model spec into the workdir
        _discard(workdir, _out())
    module = load_script(script)
    objectives: Any = parse_objectives(objective) if objective else getattr(module, "objectives", None)
    if objectives is None:
        raise ConfigError(f"{script}: no objectives: define `objectives = {{'accuracy': 'max'}}` in the script "
                          "or pass --objective NAME:max")
    constraints = list(constraint) if constraint else list(getattr(module, "constraints", ()) or ())
    script_strategy = getattr(module, "strategy", "evolution")
    # The script's strategy_options belong to the script's strategy: --strategy OTHER drops them.
    options = getattr(module, "strategy_options", None) if strategy in (None, script_strategy) else None
    _run_and_report(
        module, objectives=objectives, constraints=constraints,
        strategy=strategy if strategy is not None else script_strategy,
        budget=budget if budget is not None else getattr(module, "budget", 100),
        seed=seed if seed is not None else getattr(module, "seed", 0),
        workdir=workdir, strategy_options=options, fidelity=None, executor=spec, lower_budget=lower_budget,
        metadata={"script": str(Path(script).resolve()), **({"executor": spec} if spec != "local" else {})})


@app.command()
@user_errors
def resume(
    workdir: Annotated[Path, typer.Argument(help="Experiment directory of a search started with `nas run`.")],
    budget: Annotated[Optional[int], typer.Option(help="New total budget [default: the recorded one].")] = None,
    lower_budget: Annotated[bool, typer.Option(
        "--lower-budget", help="Accept a --budget below the recorded one.")] = False,
    executor: Annotated[Optional[str], typer.Option(help="local, ray or ray-tune [default: as recorded].")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join [default: as recorded].")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel Ray workers [default: as recorded].")] = None,
) -> None:
    """Continue a killed or finished search with the same settings (optionally a larger budget)."""
    loaded = _load(workdir)
    config = loaded.config
    recorded = (config.get("metadata") or {}).get("executor") or "local"
    spec = executor_spec(executor or (recorded if isinstance(recorded, str) else recorded["name"]), address,
                         workers, base=recorded)
    script = (config.get("metadata") or {}).get("script")
    if not script:
        raise ConfigError(f"{workdir} records no script (it was not started by `nas run`); to resume it, "
                          f"{resume_hint(workdir, config)}")
    problem = config["problem"]
    old = int(config["budget"])
    if budget is not None and budget < old and not lower_budget:
        raise ConfigError(f"--budget {budget} is below the {old} this search already has (a budget only grows); "
                          "pass --lower-budget to lower it")
    total = budget if budget is not None else old
    used = loaded.used
    if budget is None and used >= total:
        console = _out()
        console.print(f"{workdir} has used its budget ({used} evaluations); pass --budget N with N > {used} "
                      "to continue it", style="yellow", soft_wrap=True)
        show_front(console, loaded)
        return
    module = load_script(script)
    _run_and_report(module, objectives=problem["objectives"], constraints=problem["constraints"],
                    strategy=config["strategy"], budget=total, seed=config["seed"], workdir=workdir,
                    strategy_options=config.get("strategy_options") or None, fidelity=config.get("fidelity"),
                    metadata=config.get("metadata") or {}, resuming=True, executor=spec, lower_budget=lower_budget)


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
@user_errors
def status(workdir: Annotated[Path, typer.Argument(help="Experiment directory.")]) -> None:
    """Trials by status, budget used, best value per objective and the time of the last trial."""
    result = _load(workdir)
    config, trials = result.config, result.trials
    console = _out()
    counts = Counter(t.status for t in trials)
    used = result.used
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
                 + "".join(f", {n} {s}" for s, n in counts.items() if s not in ("ok", "failed", "infeasible"))
                 + (" (the next is being written)" if result.stop_reason == "still being written" else ""))
    if used > budget:
        grid.add_row("budget", f"{used} evaluations used; the budget was lowered to {budget} (reached)")
    else:
        grid.add_row("budget", f"{used} of {budget} evaluations used "
                     f"({'budget reached' if used >= budget else f'{budget - used} left'})")
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
        evals = [t.duration for t in trials if t.is_evaluation]
        if evals:
            grid.add_row("evaluation time", f"{sum(evals):.1f} s in all, {sum(evals) / len(evals):.2f} s per trial")
    writer = Journal(workdir).writer()
    hint = resume_hint(Path(workdir), config)
    if writer is not None:
        grid.add_row("state", f"running ({writer})")
    elif used >= budget:
        grid.add_row("state", "finished (budget used); to continue with a larger budget: "
                     + (f"nas resume {workdir} --budget N" if script else hint + " and a larger budget"))
    else:
        grid.add_row("state", f"stopped below its budget; to continue: {hint}")
    console.print(grid)


@app.command()
@user_errors
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
    show_front(console, result, names)
    if plot is not None:
        from nas.plot import plot_pareto

        path = plot_pareto(result, plot, names)
        console.print(f"plot: {path.resolve()}", soft_wrap=True)


@app.command("export")
@user_errors
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
    from nas.export import export

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
@user_errors
def verify_command(out: Annotated[Path, typer.Argument(help="Folder written by `nas export`.")]) -> None:
    """Reload and re-measure exported models; flag those that left the front or broke a constraint."""
    from nas.verify import VERIFY_REPORT, verify

    if not Path(out).is_dir():
        raise FileNotFoundError(f"{out}: no such directory")
    report = verify(out)
    console = _out()
    console.print(verify_table(report))
    console.print(f"report: {(Path(out) / VERIFY_REPORT).resolve()}", soft_wrap=True)


def _mount_subcommands() -> None:
    """Sub-command groups that live beside the code they drive (`nas hardware ...`)."""
    from nas.cli.hardware import app as hardware_app

    app.add_typer(hardware_app, name="hardware")
    from nas.cli.predictors import app as predictors_app

    app.add_typer(predictors_app, name="predictors")


_mount_subcommands()


def main() -> None:
    """Console-script entry point (`nas`)."""
    _setup_logging()
    app(prog_name="nas")


if __name__ == "__main__":
    main()
