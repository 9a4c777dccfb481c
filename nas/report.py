"""Reporting: every rich table, progress bar and one-line summary the CLI and the demo print.

The only layer (with `nas.plot`, `nas.console` and `nas.cli`) that formats results for people; everything
below it returns dataclasses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from nas.compare import DEFAULT_BASELINE, Comparison
from nas.console import make_console
from nas.importance import DecisionImportances
from nas.objectives import Problem
from nas.result import SearchResult, outcome
from nas.stopping import rule_met
from nas.store import Trial, evaluations_used

if TYPE_CHECKING:  # the export and verify layers import torch: the CLI starts without it (`nas status` in 0.6 s)
    from nas.export import ExportReport
    from nas.verify import Check, VerifyReport


SCIENTIFIC = 1e15  # `fmt` writes values this large as 7.312e+300, not as hundreds of digits


def fmt(value: Any) -> str:
    """A metric value for a table: integers with thousands separators, else 4 significant digits; from `SCIENTIFIC`
    on, or below 1e-4, in scientific notation (7.312e+300: a float's digits past the 17th are made up)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        return str(v)
    if abs(v) >= SCIENTIFIC:
        return f"{v:.4g}"
    if v.is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.1f}"
    return f"{v:.4g}"


def compact(value: Any) -> str:
    """An architecture on one line: `depth=2 layers=[(width=64 act=relu), (width=32 act=tanh)]`."""
    if isinstance(value, str):
        return json.dumps(value) if " " in value or not value else value
    if isinstance(value, (int, float)) or value is None:  # the leaves first: most of an architecture
        return str(value)
    if isinstance(value, Mapping):
        return " ".join(f"{k}={compact(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(f"({compact(v)})" if isinstance(v, Mapping) else compact(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) and (" " in value or not value) else str(value)


Item = TypeVar("Item")

FRONT_ROWS = 200
"""At most this many front trials in `pareto_table` (`nas pareto --csv/--json` writes all): a front of 13,000 trials
(accuracy rising with cost) printed 40,000 lines, and rich took 30 s to lay the table out."""


def spread(items: Sequence[Item], limit: int) -> list[Item]:
    """At most `limit` of `items` (a front's trials, or their numbers), evenly spaced along their order with both ends
    kept: a long front sorted by its first objective keeps its whole trade-off, not only its best end."""
    if len(items) <= limit:
        return list(items)
    if limit < 2:
        return list(items[:limit])
    step = (len(items) - 1) / (limit - 1)  # > 1: the rounded positions are distinct
    return [items[round(i * step)] for i in range(limit)]


def pareto_table(result: SearchResult, objectives: Sequence[str] | None = None, limit: int | None = None) -> Table:
    """The Pareto front of `result` as a rich table: trial, objectives, other metrics, architecture; of a front
    longer than `limit` (default `FRONT_ROWS`) that many rows, evenly spaced (`spread`), the title saying so."""
    objs = [result.objective(n) for n in objectives] if objectives else list(result.problem.objectives)
    front = result.pareto_front(objs)
    names = [o.name for o in objs]
    rows = spread(front, FRONT_ROWS if limit is None else limit)
    others = sorted({m for t in rows for m in t.metrics} - set(names))
    title = f"Pareto front: {len(front)} of {len(result.feasible)} feasible trials ({len(result.trials)} in all)"
    if len(rows) < len(front):
        title += (f"; {len(rows)} shown, evenly spaced from best to worst {objs[0].name} (nas pareto DIR --csv FILE "
                  "or --json FILE writes all)")
    table = Table(title=title, title_justify="left")
    table.add_column("trial", justify="right")
    for o in objs:
        table.add_column(f"{o.name} ({o.direction})", justify="right", style="bold")
    for m in others:
        table.add_column(m, justify="right")
    table.add_column("architecture", overflow="fold")
    for t in rows:
        table.add_row(str(t.number), *(fmt(t.metrics[n]) for n in names),
                      *(fmt(t.metrics[m]) if m in t.metrics else "" for m in others), compact(t.arch))
    return table


class SearchProgress:
    """A rich progress bar usable as `nas.search(progress=...)`: evaluations / budget and the best so far.

    `nas.search` calls `begin(problem, budget, trials, config=header)` with the trials already in the journal and
    its header, so a resumed search's bar starts where it stopped, and `end()` when it returns;
    `nas.search(progress=True)` makes one. The best is `best()`'s: of a multi-fidelity search (the header says so),
    at the top level only.
    """

    def __init__(self, console: Console | None = None, problem: Problem | None = None, budget: int = 0,
                 trials: Sequence[Trial] = (), config: Mapping[str, Any] | None = None) -> None:
        self.progress = Progress(TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[best]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console or make_console())
        self.task = self.progress.add_task("search", total=budget or None, best="")
        self.problem: Problem | None = None
        self._owned = False  # started by begin() (progress=True), not by a `with` block
        if problem is not None:
            self._reset(problem, budget, trials, config)

    def _reset(self, problem: Problem, budget: int, trials: Sequence[Trial],
               config: Mapping[str, Any] | None = None) -> None:
        self.problem, self.budget, self.config = problem, budget, dict(config or {})
        self.first = problem.objectives[0]
        self.best: float | None = None
        self.failed = 0
        for t in trials:
            self._see(t)
        used = evaluations_used(trials)
        self.progress.update(self.task, total=max(budget, used), completed=used, best=self._text())

    def begin(self, problem: Problem, budget: int, trials: Sequence[Trial],
              config: Mapping[str, Any] | None = None) -> None:
        """The search starts (or resumes with `trials` already journaled; `config`, its journal header): show its
        budget and best so far."""
        self._reset(problem, budget, trials, config)
        if not self.progress.live.is_started:
            self.progress.start()
            self._owned = True

    def end(self) -> None:
        """The search returned: stop a bar that `begin` started."""
        if self._owned:
            self.progress.stop()
            self._owned = False

    def _see(self, trial: Trial) -> None:
        assert self.problem is not None, "begin() first"
        self.failed += trial.status == "failed"
        # a result as best() ranks it: feasible, and of a multi-fidelity search at the top level
        if not SearchResult([trial], self.problem, config=self.config).feasible_with([self.first]):
            return
        v = trial.metrics[self.first.name]
        if self.best is None or self.first.minimised(v) < self.first.minimised(self.best):
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


def summary(console: Console, result: SearchResult, seconds: float) -> None:
    """How many evaluations, how they ended, the seed, and why the search stopped below its budget."""
    counts = result.counts()  # infeasible: rejected by a cheap constraint or evaluated and violating one
    pruned = sum(t.pruned_after is not None for t in result.trials)
    extra = [f"{n} {s}" for s, n in (("failed", counts.failed), ("infeasible", counts.infeasible),
                                     ("stopped early by the pruner", pruned)) if n]
    console.print(f"{result.used} evaluations{' (' + ', '.join(extra) + ')' if extra else ''} "
                  f"in the journal; seed {result.config.get('seed')}; this run took {seconds:.1f} s", soft_wrap=True)
    if result.stop_reason == "exhausted":
        console.print("the strategy proposed no new architecture (space exhausted or strategy converged), "
                      "so the search stopped below its budget", style="yellow", soft_wrap=True)
    elif result.stop_reason == "max_time":
        console.print(f"max_time ({result.config.get('max_time')} s) reached: no new evaluation was started",
                      style="yellow", soft_wrap=True)
    elif rule_met(result.stop_reason) is not None:
        console.print(f"stopped below the budget, {rule_met(result.stop_reason)}; `nas resume` continues to the "
                      "budget", style="yellow", soft_wrap=True)


def show_front(console: Console, result: SearchResult, objectives: Sequence[str] | None = None) -> None:
    if not result.feasible:
        console.print("no feasible trial yet: nothing is on the Pareto front", style="yellow")
        return
    console.print(pareto_table(result, objectives))


def export_table(report: ExportReport) -> Table:
    """The exported models as a rich table: per objective searched -> re-measured, and the self-checks."""
    from nas.measure import plus_minus

    measured = report.models[0].measured if report.models else {}
    objs = [n for n in report.objectives if n in measured] + sorted(set(measured) - set(report.objectives))
    objs = [n for n in objs if n in report.models[0].searched]
    table = Table(title=f"exported {len(report.models)} models to {report.out}", title_justify="left")
    table.add_column("trial", justify="right")
    for n in objs:
        table.add_column(f"{n}\nsearched → measured", justify="right")
    table.add_column("max |Δ| vs supernet / onnx", justify="right")
    quantized = any(m.files for m in report.models)  # `--quantize`: fp32 torch, fp32 ONNX, quantized ONNX
    if quantized:
        table.add_column("quantized ONNX bytes\n(vs fp32 ONNX)", justify="right")
    table.add_column("folder", overflow="fold")
    for m in report.models:
        onnx = m.checks.get("onnx", {}).get("onnxruntime_max_abs_diff")
        sup = m.checks.get("supernet_max_abs_diff")
        files = [] if not quantized else ["-"] if len(m.files) < 3 else \
            [f"{m.files[-1].bytes:,} ({_size_ratio(m.files[1].bytes, m.files[-1].bytes)})"]  # no ONNX: torch only
        table.add_row(str(m.trial), *(f"{fmt(m.searched[n])} → {fmt(m.measured[n])}"
                                      f"{plus_minus(m.repeatability.get(n))}" for n in objs),
                      f"{'-' if sup is None else f'{sup:.1e}'} / {'-' if onnx is None else f'{onnx:.1e}'}",
                      *files, m.path.name)
    return table


def verify_table(report: VerifyReport) -> Table:
    """The report as a rich table: per model and objective, searched -> measured (error), then flags."""
    from nas.measure import plus_minus

    names = [o.name for o in report.objectives]
    extra = sorted({k for c in report.checks for k in c.measured} - set(names))
    measured = sum(bool(c.measured) for c in report.checks)
    title = f"verify: {len(report.checks)} exported models, {measured} re-measured, {len(report.flagged)} flagged"
    if not measured:
        title += " (model.json records no metric recipe: nothing could be re-measured, only reloaded)"
    table = Table(title=title, title_justify="left")
    table.add_column("trial", justify="right")
    for n in names + extra:
        table.add_column(f"{n}\nsearched → measured", justify="right")
    table.add_column("flags", overflow="fold")

    def cell(c: Check, n: str) -> str:
        if n not in c.measured:
            return fmt(c.searched.get(n, float("nan"))) + " (not re-measured)"
        pm = plus_minus(c.repeatability.get(n))
        if n in c.export_pass:  # export timed it too, earlier: a second, independent pass
            pm += f"; export {fmt(c.export_pass[n])} ({c.measured[n] / c.export_pass[n] - 1:+.0%})"
        if n not in c.searched:
            return fmt(c.measured[n]) + pm
        return f"{fmt(c.searched[n])} → {fmt(c.measured[n])} ({c.rel_error[n]:+.1%}){pm}"

    for c in report.checks:
        table.add_row(str(c.trial), *(cell(c, n) for n in names + extra),
                      "; ".join(c.flags) or ("ok" if c.measured else "reloaded; nothing re-measured"))
    return table


def trials_table(result: SearchResult, limit: int = 200) -> Table:
    """Every trial (the last `limit`): number, status, whether it meets the constraints (a search that has some:
    "yes", "no", or blank where it has no result to judge), objectives and other metrics, time, architecture, and
    the user attributes (`nas.set_user_attr`) where any trial has some."""
    names = result.problem.names
    others = sorted({m for t in result.trials for m in t.metrics} - set(names))
    attrs = any(t.user_attrs for t in result.trials[-limit:])
    constrained = bool(result.problem.constraints)
    table = Table(title=f"{len(result.trials)} trials ({result.used} evaluations)"
                        + (f"; the last {limit}" if len(result.trials) > limit else ""), title_justify="left")
    for column in ["trial", "status", *(["feasible"] if constrained else []), *names, *others, "seconds"]:
        table.add_column(column, justify="left" if column in ("status", "feasible") else "right")
    table.add_column("architecture / error", overflow="fold")
    if attrs:
        table.add_column("user attributes", overflow="fold")
    for t in result.trials[-limit:]:
        judged = {"feasible": "yes", "infeasible": "no"}.get(outcome(result.problem, t), "")
        status = t.status if t.pruned_after is None else f"{t.status} (pruned after {t.pruned_after})"
        row = [str(t.number), status, *([judged] if constrained else []),
               *(fmt(t.metrics[m]) if m in t.metrics else "" for m in names + others),
               f"{t.duration:.2f}", t.error if t.error else compact(t.arch)]
        if attrs:
            row.append(" ".join(f"{k}={json.dumps(v)}" for k, v in t.user_attrs.items()))
        table.add_row(*row)
    return table


def comparison_table(c: Comparison) -> Table:
    """Groups of runs scored at the same budget (`nas.compare`): mean with its 95 % interval, and the relative
    improvement over the baseline group with its interval and Welch's p (bold where the interval is above 0); with
    no baseline group (none named and none called "random"), the means alone."""
    table = Table(title=f"{c.score} after {c.at} evaluations, by {c.by}"
                        + (f"; against {c.baseline}" if c.baseline else
                           f"; no baseline to set against (no group is named {DEFAULT_BASELINE!r}: --baseline NAME "
                           "names one)"),
                  title_justify="left")
    columns = ["group", "runs", "mean [95 % CI]"]
    if c.baseline:
        columns += [f"improvement over {c.baseline} [95 % CI]", "p"]
    for column in columns:
        table.add_column(column, justify="left" if column == "group" else "right")
    for g in c.groups:
        missing = sum(v != v for v in g.scores)
        runs = f"{len(g.runs)}" + (f" ({missing} without a feasible trial)" if missing else "")
        interval = f"[{fmt(g.low)}, {fmt(g.high)}]" if g.low == g.low else "(one run: no interval)"
        mean = "- (no run has a feasible trial)" if g.mean != g.mean else f"{fmt(g.mean)} {interval}"
        row: list[str | Text] = [g.name, runs, mean]
        if c.baseline:
            ri = "" if g.ri_pct is None else f"{g.ri_pct:+.2f} %" + (
                f" [{g.ri_low:+.2f}, {g.ri_high:+.2f}]" if g.ri_low is not None and g.name != c.baseline else "")
            row += [Text(ri, style="bold" if g.better else ""),
                    "" if g.p_value is None or g.name == c.baseline else f"{g.p_value:.2g}"]
        table.add_row(*row)
    return table


def importance_table(imp: DecisionImportances, width: int = 24) -> Table:
    """Decisions by importance: share of the summed importances (with a bar) and the held-out error rise."""
    table = Table(title=f"which decisions matter for {imp.metric}: {imp.trials} trials, held-out R\u00b2 {imp.r2:.2f} "
                        f"(on {'ranks' if imp.scale == 'rank' else 'values'})"
                        + (" (the decisions explain little: these shares describe noise)" if imp.r2 < 0.1 else ""),
                  title_justify="left")
    table.add_column("decision")
    table.add_column("share", justify="right")
    table.add_column("")
    table.add_column("error rise when permuted", justify="right")
    for d in imp.decisions:
        table.add_row(d.decision, f"{100 * d.share:.1f} %", "\u2588" * round(width * d.share),
                      f"{fmt(d.increase)} \u00b1 {fmt(d.std)}")
    return table


def strategies_table() -> Table:
    """The strategy registry: name, the space capabilities it needs, its options with defaults, what it is."""
    import inspect

    from nas.strategies import STRATEGIES

    table = Table(title=f"{len(STRATEGIES)} strategies (nas run --strategy NAME --strategy-option KEY=VALUE)",
                  title_justify="left")
    for column in ("name", "needs", "options (default)", "what"):
        table.add_column(column, overflow="fold")
    for name in sorted(STRATEGIES):
        cls = STRATEGIES[name]
        params = [p for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name not in ("self", "space", "problem", "seed") and p.kind is p.POSITIONAL_OR_KEYWORD]
        options = ", ".join(f"{p.name}={p.default!r}" if p.default is not p.empty else p.name for p in params)
        doc = (inspect.getdoc(cls) or "").split("\n")[0]
        table.add_row(name, ", ".join(sorted(cls.requires)), options or "-", doc)
    return table


def spaces_table() -> Table:
    """The built-in spaces (`nas.spaces.BUILTIN`): name, class and what each is."""
    import inspect

    from nas.spaces import BUILTIN, Space
    from nas.scripts import import_object

    table = Table(title=f"{len(BUILTIN)} built-in spaces (or write your own: Space(field=Choice([...]), ...))",
                  title_justify="left")
    for column in ("name", "class", "what"):
        table.add_column(column, overflow="fold")
    for name, path in BUILTIN.items():
        cls = import_object(path, name)
        assert issubclass(cls, Space)
        table.add_row(name, path, (inspect.getdoc(cls) or "").split("\n")[0])
    return table


def _size_ratio(fp32: int, quantized: int) -> str:
    """'2.10x smaller' or '1.62x larger': the quantized file against the fp32 one, as the model card says it."""
    return f"{fp32 / quantized:.2f}x smaller" if fp32 >= quantized else f"{quantized / fp32:.2f}x larger"
