"""PNGs of a search: `plot_pareto` (the trials on two objectives, the Pareto front as a step line), `plot_history`
(each objective per evaluation, best so far), `plot_curves` (each training's per-epoch reports, where a pruner
stopped it: Optuna's intermediate-values plot), `plot_importance` (which decisions matter, `nas.importance`),
`plot_parallel` (Optuna's parallel coordinates over the decisions) and `plot_timeline` (each trial on its worker's
lane over time).
Trials a pruner stopped are drawn apart (open circles), as are a multi-fidelity search's trials below its top
fidelity (open diamonds): their metrics are a partial training's.

Uses matplotlib's Agg canvas directly (no pyplot), so it never changes the backend of the caller's
session and works on machines without a display.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import ConfigError
from nas.spaces.params import is_number

if TYPE_CHECKING:
    from nas.compare import Comparison
    from nas.importance import DecisionImportances
    from nas.result import SearchResult
    from nas.store import Trial


def plot_pareto(result: "SearchResult", path: str | Path, objectives: Sequence[str] | None = None) -> Path:
    """Scatter the trials of `result` on two objectives and highlight their Pareto front; returns `path`.

    Feasible trials are grey dots, infeasible ones (constraint violated, or rejected on cheap metrics
    before evaluation) light x markers, the front red dots joined by a step line (the boundary of what
    it dominates). `objectives` picks the two to plot (default: the search's first two); with more than
    two objectives the front shown is the one over the plotted pair, and the title says so. Of a multi-fidelity
    search, the trials below the top fidelity are open diamonds apart: their metrics are a shorter training's.
    """
    names = list(objectives) if objectives else list(result.problem.names)
    objs = [result.objective(n) for n in names]  # any recorded metric with its direction: "params_m:min"
    if len(objs) < 2:
        raise ConfigError(f"plot_pareto needs two objectives; this plot would have one ({', '.join(names)})")
    ox, oy = objs[0], objs[1]
    front = result.pareto_front([ox, oy])
    front_ids = {t.number for t in front}
    feasible = result.feasible_with([ox, oy])
    feasible_ids = {t.number for t in feasible}

    def has_xy(t: "Trial") -> bool:
        return all(math.isfinite(t.metrics.get(o.name, math.nan)) for o in (ox, oy))

    def breaks_constraint(t: "Trial") -> bool:  # evaluated (or rejected on cheap metrics) outside the constraints
        return t.status == "infeasible" or (t.status == "ok" and not result.problem.feasible(t.metrics))

    lower = _lower_fidelity(result)
    dominated = [t for t in feasible if t.number not in front_ids]
    pruned = [t for t in result.trials if t.pruned_after is not None and t.status == "ok" and has_xy(t)]
    partial = [t for t in result.trials if t.pruned_after is None and lower(t)]  # evaluated at a lower fidelity
    short = [t for t in partial if has_xy(t)]
    unpruned = [t for t in result.trials if t.pruned_after is None and not lower(t)]
    infeasible = [t for t in unpruned if breaks_constraint(t) and has_xy(t)]
    n_failed = sum(t.status == "failed" for t in result.trials)
    n_infeasible = sum(breaks_constraint(t) for t in unpruned)
    n_unplotted = sum(t.status == "ok" and not breaks_constraint(t) and t.number not in feasible_ids
                      for t in unpruned) + len(partial) - len(short)  # a plotted metric missing or not finite

    fig = _figure(7.0, 5.0)
    ax = fig.add_subplot()

    def xs(ts: Sequence["Trial"]) -> list[float]:
        return [t.metrics[ox.name] for t in ts]

    def ys(ts: Sequence["Trial"]) -> list[float]:
        return [t.metrics[oy.name] for t in ts]

    if dominated:
        ax.scatter(xs(dominated), ys(dominated), s=18, color="0.6", alpha=0.8, label="dominated", zorder=2)
    if infeasible:
        ax.scatter(xs(infeasible), ys(infeasible), s=22, marker="x", color="#e8a0a0", linewidths=1.0,
                   label="infeasible", zorder=1)
    if pruned:
        ax.scatter(xs(pruned), ys(pruned), s=18, facecolors="none", edgecolors="0.5", linewidths=0.8,
                   label="pruned (partial training)", zorder=1)
    if short:
        ax.scatter(xs(short), ys(short), s=18, marker="D", facecolors="none", edgecolors="#2e86c1", linewidths=0.8,
                   label=_lower_label(result), zorder=1)
    if front:
        # In minimisation form the front sorted by x has y decreasing; the dominated region's boundary
        # runs right from each point to the next one's x, then down to it (same vertices in real units).
        pts = sorted(front, key=lambda t: (ox.minimised(t.metrics[ox.name]), oy.minimised(t.metrics[oy.name])))
        line_x, line_y = [], []
        for i, t in enumerate(pts):
            x, y = t.metrics[ox.name], t.metrics[oy.name]
            if i:
                line_x.append(x)
                line_y.append(line_y[-1])
            line_x.append(x)
            line_y.append(y)
        ax.plot(line_x, line_y, color="#c0392b", linewidth=1.5, zorder=3)
        ax.scatter(xs(pts), ys(pts), s=36, color="#c0392b", edgecolors="black", linewidths=0.5,
                   label=f"Pareto front ({len(pts)})", zorder=4)
    ax.set_xlabel(_axis_label(ox.name, ox.direction, 70))
    ax.set_ylabel(_axis_label(oy.name, oy.direction, 40))
    parts = [f"{len(feasible)} feasible"]
    if pruned:
        parts.append(f"{len(pruned)} pruned")
    if short:
        parts.append(f"{len(short)} at a lower fidelity")
    if n_infeasible:
        parts.append(f"{n_infeasible} infeasible")
    if n_failed:
        parts.append(f"{n_failed} failed")
    if n_unplotted:
        parts.append(f"{n_unplotted} without finite {ox.name} and {oy.name}")
    title = f"Pareto front: {len(front)} of {len(result.trials)} trials ({', '.join(parts)})"
    total = len(result.problem.objectives)
    if len(objs) > 2 or (objectives is None and total > 2):
        title += f"\nshowing the first 2 of {len(objs)} objectives; front over {ox.name} and {oy.name} only"
    elif total > 2:
        title += f"\nshowing 2 of the search's {total} objectives; front over these two only"
    ax.set_title(title, fontsize=10)
    ax.grid(True, color="0.9", zorder=0)
    if front or dominated or infeasible or pruned or short:
        ax.legend(loc="best", fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no trial has both metrics yet", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


def plot_history(result: "SearchResult", path: str | Path, objectives: Sequence[str] | None = None) -> Path:
    """The optimisation history: each objective's value per evaluation (feasible trials as dots, infeasible
    ones as light crosses, pruned ones open circles, a multi-fidelity search's lower-fidelity ones open diamonds) and
    its best feasible value so far as a step line (`result.history`: full trainings only); one panel per objective."""
    objs = [result.objective(n) for n in (objectives or result.problem.names)]
    lower = _lower_fidelity(result)
    fig = _figure(7.0, 2.0 + 2.4 * len(objs))
    axes = fig.subplots(len(objs), 1, sharex=True, squeeze=False)[:, 0]
    for ax, o in zip(axes, objs):
        feasible = {t.number for t in result.feasible_with([o])}  # as result.history ranks them
        used, good, bad, cut, short = 0, ([], []), ([], []), ([], []), ([], [])
        for t in result.trials:
            used += t.is_evaluation
            v = t.metrics.get(o.name)
            if not _finite(v) or t.status == "failed":
                continue
            kind = (good if t.number in feasible else cut if t.pruned_after is not None else
                    short if lower(t) else bad)
            kind[0].append(used)
            kind[1].append(v)
        if good[0]:
            ax.scatter(*good, s=12, color="0.55", label="feasible trial", zorder=2)
        if bad[0]:
            ax.scatter(*bad, s=16, marker="x", color="#e8a0a0", linewidths=1.0, label="infeasible", zorder=1)
        if cut[0]:
            ax.scatter(*cut, s=12, facecolors="none", edgecolors="0.55", linewidths=0.8,
                       label="pruned (partial training)", zorder=1)
        if short[0]:
            ax.scatter(*short, s=14, marker="D", facecolors="none", edgecolors="#2e86c1", linewidths=0.8,
                       label=_lower_label(result), zorder=1)
        steps = result.history(o)
        if steps:
            xs = [u for u, _ in steps] + [max(used, steps[-1][0])]
            ys = [v for _, v in steps] + [steps[-1][1]]
            ax.step(xs, ys, where="post", color="#c0392b", linewidth=1.6, label="best so far", zorder=3)
        ax.set_ylabel(_axis_label(o.name, o.direction, 24))
        ax.grid(True, color="0.9", zorder=0)
        if good[0] or bad[0] or cut[0] or short[0]:
            ax.legend(loc="best", fontsize=8, frameon=False)
        else:
            ax.text(0.5, 0.5, f"no trial has a value of {o.name}", ha="center", va="center", transform=ax.transAxes)
    axes[-1].set_xlabel("evaluations")
    axes[0].set_title(f"optimisation history: {result.used} evaluations, {len(result.trials)} trials", fontsize=10)
    return _save(fig, path)


NO_CURVES = ("no trial of this search recorded per-epoch reports (they are kept when the search runs with a pruner "
             "and evaluate calls nas.report_metrics)")
"""Why `plot_curves` cannot draw a search (also what `nas history --curves` says before drawing anything)."""


def plot_curves(result: "SearchResult", path: str | Path) -> Path:
    """Each trial's per-epoch reports of the metric its pruner judged (`nas.search(..., pruner=...)`), one line per
    training: those trained to the end in blue, those the pruner stopped in grey, ending in a cross where it
    stopped them, failed ones (a diverged training) in red, ending in a dot at their last finite report (Optuna's
    intermediate-values plot)."""
    curved = [t for t in result.trials if t.extra.get("curve")]
    if not curved:
        raise ConfigError(f"plot_curves: {NO_CURVES}")
    metric = str(curved[0].extra.get("curve_of", "reported value"))
    fig = _figure(7.0, 4.6)
    ax = fig.add_subplot()
    stopped = failed = 0
    for t in curved:
        shift = 0 if t.extra.get("curve_steps") else 1  # the steps report_metrics was given, or report numbers
        steps = [int(step) + shift for step, _ in t.extra["curve"]]
        values = [float(v) for _, v in t.extra["curve"]]
        if t.status == "failed":  # e.g. diverged: its reports turned NaN and it failed as non-finite
            failed += 1
            ax.plot(steps, values, color="#c0392b", alpha=0.7, linewidth=0.8, zorder=2)
            last = [(s, v) for s, v in zip(steps, values) if math.isfinite(v)][-1:]
            if last:
                ax.scatter([last[0][0]], [last[0][1]], marker="o", s=14, color="#c0392b", zorder=3)
        elif t.pruned_after is None:
            ax.plot(steps, values, color="#1f5fbf", alpha=0.55, linewidth=1.0, zorder=2)
        else:
            stopped += 1
            ax.plot(steps, values, color="0.6", alpha=0.7, linewidth=0.8, zorder=1)
            ax.scatter(steps[-1:], values[-1:], marker="x", s=14, color="0.35", linewidths=0.8, zorder=3)
    ax.plot([], [], color="#1f5fbf", label=f"trained to the end ({len(curved) - stopped - failed})")
    ax.plot([], [], color="0.6", marker="x", markeredgecolor="0.35", label=f"stopped by the pruner ({stopped})")
    if failed:
        ax.plot([], [], color="#c0392b", marker="o", label=f"failed ({failed})")
    ax.set_xlabel("step" if any(t.extra.get("curve_steps") for t in curved) else "report (epoch)")
    ax.set_ylabel(metric)
    ax.set_title(f"learning curves of {len(curved)} trainings", fontsize=10)
    ax.grid(True, color="0.9", zorder=0)
    ax.legend(loc="best", fontsize=8, frameon=False)
    return _save(fig, path)


def plot_importance(imp: "DecisionImportances", path: str | Path) -> Path:
    """Horizontal bars of each decision's share of the importances (`nas.importance`), most important on top,
    with the fold-to-fold standard deviation as an error bar; the title gives the forest's held-out R^2."""
    rows = list(imp.decisions)[::-1]
    total = sum(max(d.increase, 0.0) for d in rows) or 1.0
    fig = _figure(7.0, 1.2 + 0.32 * max(len(rows), 1))
    ax = fig.subplots()
    ax.barh([d.decision for d in rows], [100 * d.share for d in rows], xerr=[100 * d.std / total for d in rows],
            color="#2e86c1", ecolor="0.4", capsize=2)
    ax.set_xlabel("share of the importance (%)")
    ax.set_xlim(left=0)
    ax.grid(True, axis="x", color="0.9")
    ax.set_axisbelow(True)
    ax.set_title(f"which decisions matter for {imp.metric} ({imp.trials} trials, held-out R\u00b2 {imp.r2:.2f})",
                 fontsize=10)
    return _save(fig, path)


def plot_decision_effects(result: "SearchResult", imp: "DecisionImportances", path: str | Path, top: int = 4) -> Path:
    """For the `top` most important decisions of `imp`, the metric's mean per value with its 95 % interval
    (`nas.importance.decision_effects`): which values of the decisions that matter are the good ones."""
    from nas.importance import decision_effects

    _check_top("plot_decision_effects", top)
    shown = [d.decision for d in imp.decisions[:top]]
    if not shown:
        raise ConfigError("plot_decision_effects: the importances hold no decision")
    fig = _figure(3.2 * len(shown), 3.2)
    axes = fig.subplots(1, len(shown), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, shown):
        effects = decision_effects(result, name, imp.metric, by=imp.by)  # type: ignore[arg-type]
        xs = range(len(effects))
        means = [e.mean for e in effects]
        err = [[e.mean - e.low if e.count > 1 else 0.0 for e in effects],
               [e.high - e.mean if e.count > 1 else 0.0 for e in effects]]
        ax.errorbar(xs, means, yerr=err, fmt="o", color="#2e86c1", ecolor="0.5", capsize=3)
        ax.set_xticks(list(xs), [str(e.value) for e in effects], rotation=30 if len(effects) > 4 else 0, fontsize=8)
        share = next(d.share for d in imp.decisions if d.decision == name)
        ax.set_title(f"{name}\n({100 * share:.0f} % of the importance)", fontsize=9)
        ax.grid(True, axis="y", color="0.9")
    axes[0].set_ylabel(f"{imp.metric}, mean and 95 % interval")
    return _save(fig, path)


@dataclass(frozen=True)
class ParallelAxes:
    """What a parallel-coordinate plot draws (`parallel_axes`): per shown decision its trials' positions in [0, 1]
    and tick labels, then the metric's axis (its values and range), for trials `numbers`."""

    metric: str
    direction: str
    decisions: list[str]  # left to right
    positions: list[list[float]]  # per decision, per trial
    ticks: list[list[tuple[float, str]]]  # per decision: (position, label)
    values: list[float]  # the metric, per trial
    numbers: list[int]  # trial numbers
    feasible: list[bool]  # per trial (infeasible ones are drawn apart)
    all_decisions: int  # how many decisions the trials have (more than shown: the rest were left out)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parallel_axes(result: "SearchResult", metric: str | None = None, decisions: Sequence[str] | None = None,
                  top: int = 10) -> ParallelAxes:
    """The axes of `plot_parallel` (and of the dashboard's panel): its completed trials, the decisions it shows and
    where each trial crosses each axis. ConfigError for fewer than 2 trials, an unknown decision or nothing that
    varies."""
    o = result.objective(metric)
    rows, values, shown, known = _parallel_rows(result, o.name, decisions, top)
    positions, ticks = [], []
    for d in shown:
        col, tick = _axis([v.get(d, _MISSING) for v in values])
        positions.append([float(p) for p in col])
        ticks.append(tick)
    return ParallelAxes(o.name, o.direction, shown, positions, ticks, [float(t.metrics[o.name]) for t, _ in rows],
                        [t.number for t, _ in rows], [kind == "feasible" for _, kind in rows], len(known))


def plot_parallel(result: "SearchResult", path: str | Path, metric: str | None = None,
                  decisions: Sequence[str] | None = None, top: int = 10) -> Path:
    """Optuna's parallel-coordinate plot: one axis per decision and one for `metric` (default: the first objective;
    any recorded metric as "NAME:min"), each completed trial a line through its values, coloured by the metric with
    the best brightest and on top; infeasible trials light grey. A decision an architecture lacks (an inactive
    `Conditional`, a block beyond a `Repeat`'s count) sits at "-" below its axis. Without `decisions` (dotted paths,
    as `result.to_records()` names them without "arch."), the `top` varying decisions that alone explain most of the
    metric's variance (the between-value share, eta squared) are shown, left to right (`parallel_axes`)."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    axes = parallel_axes(result, metric, decisions, top)
    y = np.array(axes.values)
    lo, hi = float(y.min()), float(y.max())
    columns = [np.array(p) for p in axes.positions] + [(y - lo) / (hi - lo) if hi > lo else np.full(len(y), 0.5)]
    ticks = axes.ticks + [[(0.0, _fmt(lo)), (1.0, _fmt(hi))] if hi > lo else [(0.5, _fmt(lo))]]
    xs = np.arange(len(columns), dtype=float)
    lines = np.stack([np.column_stack([xs, [c[i] for c in columns]]) for i in range(len(y))])
    fig = _figure(1.6 + 1.1 * len(columns), 4.8)
    ax = fig.add_subplot()
    feasible = np.array(axes.feasible)
    if (~feasible).any():
        ax.add_collection(LineCollection(list(lines[~feasible]), colors="0.85", linewidths=0.8, zorder=1))
    order = np.flatnonzero(feasible)[np.argsort(y[feasible] if axes.direction == "max" else -y[feasible])]
    cmap = colormaps["viridis" if axes.direction == "max" else "viridis_r"]
    norm = Normalize(lo, hi if hi > lo else lo + 1)
    ax.add_collection(LineCollection(list(lines[order]), colors=cmap(norm(y[order])), linewidths=1.0, alpha=0.8,
                                     zorder=2))
    for x, tick in zip(xs, ticks):
        ax.axvline(x, color="0.3", linewidth=0.8, zorder=0)
        for pos, label in tick:
            ax.text(x - 0.04, pos, label, ha="right", va="center", fontsize=7, zorder=3,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})
    ax.set_xlim(-0.6, xs[-1] + 0.3)
    ax.set_ylim(-0.2, 1.08)
    many = len(axes.decisions) > 5
    ax.set_xticks(xs, [*axes.decisions, axes.metric], rotation=30 if many else 0, ha="right" if many else "center",
                  fontsize=8)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(_mappable(cmap, norm), ax=ax, label=f"{axes.metric} ({axes.direction})", pad=0.02)
    hidden = "" if decisions is not None or axes.all_decisions <= len(axes.decisions) else \
        f"; {len(axes.decisions)} of {axes.all_decisions} decisions"
    grey = f", {int((~feasible).sum())} infeasible in grey" if (~feasible).any() else ""
    ax.set_title(f"{len(y)} completed trials{grey}{hidden}", fontsize=10)
    return _save(fig, path)


def plot_comparison(comparison: "Comparison", path: str | Path) -> Path:
    """Each group's mean score along the evaluations (`nas.compare.compare_searches`) with its 95 % band, the
    baseline dashed: which strategy gets there first, and whether the bands part."""
    from matplotlib import colormaps

    fig = _figure(7.0, 4.4)
    ax = fig.add_subplot()
    colours = colormaps["tab10"]
    for i, g in enumerate(comparison.groups):
        curve = np.array(g.curve, dtype=float)
        dashed = g.name == comparison.baseline
        ax.plot(curve[:, 0], curve[:, 1], color=colours(i % 10), linestyle="--" if dashed else "-", linewidth=1.6,
                label=f"{g.name} ({len(g.runs)} runs)")
        ax.fill_between(curve[:, 0], curve[:, 2], curve[:, 3], color=colours(i % 10), alpha=0.15, linewidth=0)
    ax.set_xlabel("evaluations")
    ax.set_ylabel(comparison.score if len(comparison.score) < 40 else "score")
    ax.set_title("\n".join(textwrap.wrap(f"{comparison.score}: mean and 95 % interval", 80)), fontsize=9)
    ax.grid(True, color="0.9")
    ax.legend(loc="best", fontsize=8, frameon=False)
    return _save(fig, path)


def plot_timeline(result: "SearchResult", path: str | Path) -> Path:
    """Optuna's timeline plot, by worker: each trial a bar from its start to its finish on its worker's lane,
    coloured by how it ended; the title gives the share of the workers' time spent evaluating (idle gaps are what a
    slow strategy, an unbalanced batch or a waiting driver cost)."""
    from nas.result import outcome

    timed = [t for t in result.trials if t.finished > 0 and t.finished >= t.started]  # 0: no time recorded
    if not timed:
        raise ConfigError("plot_timeline: no trial of this search has a start and finish time to draw (none was "
                          "recorded, or every trial took no time, as on a simulated clock of duration 0)")
    t0 = min(t.started for t in timed)
    span = max(t.finished for t in timed) - t0
    workers = sorted({t.worker for t in timed}, key=_natural)
    lane = {w: i for i, w in enumerate(workers)}
    colours = {"feasible": "#1f5fbf", "infeasible": "#e67e22", "pruned": "0.6", "failed": "#c0392b"}
    fig = _figure(8.0, 1.6 + 0.35 * len(workers))
    ax = fig.add_subplot()
    counts: dict[str, int] = {}
    width = max(span, 1e-9) / 400  # a zero-length trial (a cheap rejection) is still a visible tick
    for t in timed:
        kind = outcome(result.problem, t)
        kind = kind if kind in colours else "failed" if t.status == "failed" else "infeasible"
        counts[kind] = counts.get(kind, 0) + 1
        ax.broken_barh([(t.started - t0, max(t.duration, width))], (lane[t.worker] - 0.4, 0.8),
                       facecolors=colours[kind], edgecolors="white", linewidth=0.3)
    from matplotlib.patches import Patch  # legend keys only (a bar at x=0 widened the axis to -0.4 s)

    handles = [Patch(color=colours[kind], label=f"{kind} ({n})") for kind, n in counts.items()]
    busy = sum(t.duration for t in timed) / (len(workers) * span) if span > 0 else 1.0
    ax.set_yticks(range(len(workers)), workers, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first trial started")
    ax.set_title(f"{len(timed)} trials on {len(workers)} worker(s) over {_fmt(span)} s; busy {100 * busy:.0f} % "
                 "of the workers' time", fontsize=10)
    ax.grid(True, axis="x", color="0.9")
    ax.set_axisbelow(True)
    # right of the lanes: below them it lands on the x label of a figure only a few lanes tall
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    return _save(fig, path)


_MISSING = object()  # a decision the architecture lacks


def _parallel_rows(result: "SearchResult", metric: str, decisions: Sequence[str] | None, top: int
                   ) -> tuple[list[tuple["Trial", str]], list[dict[str, Any]], list[str], list[str]]:
    """`plot_parallel`'s trials (with "feasible" or "infeasible"; pruned ones are "pruned", left out), their
    decisions, the decisions it shows and every decision any of them has; ConfigError for fewer than 2 trials, an
    unknown decision or nothing that varies."""
    from nas.result import decisions as decisions_of
    from nas.result import outcome

    _check_top("plot_parallel", top)
    rows = [(t, outcome(result.problem, t)) for t in result.trials if t.status == "ok"]
    rows = [(t, kind) for t, kind in rows if kind in ("feasible", "infeasible") and _finite(t.metrics.get(metric))]
    if len(rows) < 2:
        raise ConfigError(f"plot_parallel: {len(rows)} completed trial(s) with {metric!r}; it needs 2")
    values = [decisions_of(t.arch) for t, _ in rows]
    y = np.array([float(t.metrics[metric]) for t, _ in rows])
    known = list(dict.fromkeys(k for v in values for k in v))
    if decisions is not None:
        unknown = [d for d in decisions if d not in known]
        if unknown:
            raise ConfigError(f"plot_parallel: no trial has decision {unknown[0]!r}; decisions: {', '.join(known)}")
        return rows, values, list(decisions), known
    keys = {d: [_value_key(v.get(d, _MISSING)) for v in values] for d in known}
    varying = [d for d in known if len(set(keys[d])) > 1]
    if not varying:
        raise ConfigError("plot_parallel: every completed trial has the same decisions")
    return rows, values, sorted(varying, key=lambda d: -_explained(y, keys[d]))[:top], known


def _check_top(where: str, top: Any) -> None:
    """ConfigError unless `top` (how many decisions to show) is a positive integer: a negative one would slice
    from the end and 0 show none."""
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ConfigError(f"{where}: top must be a positive integer (how many decisions to show), got {top!r}")


def _lower_fidelity(result: "SearchResult") -> Callable[["Trial"], bool]:
    """A test for the evaluated trials of a multi-fidelity search below its top fidelity (`result.top_fidelity`):
    their metrics are a shorter training's, so best, front and history leave them out; always False otherwise."""
    top = result.top_fidelity
    if top is None:
        return lambda t: False
    return lambda t: t.status == "ok" and t.arch.get(top[0]) != top[1]


def _lower_label(result: "SearchResult") -> str:
    """The legend label of the lower-fidelity trials: "lower fidelity (epochs < 9)"."""
    top = result.top_fidelity
    return f"lower fidelity ({top[0]} < {top[1]})" if top else "lower fidelity"


def _axis_label(name: str, direction: str, width: int, lines: int = 3) -> str:
    """"NAME (direction)" wrapped to `width` characters a line, at most `lines` lines (a longer name shortened with
    "…", the direction kept): a long metric name would otherwise run off the figure or over the next panel."""
    suffix, keep = f" ({direction})", len(name)
    while True:
        text = name if keep == len(name) else name[:keep] + "…"
        wrapped = textwrap.wrap(text + suffix, width, break_long_words=True, break_on_hyphens=False)
        if len(wrapped) <= lines or keep <= 1:
            return "\n".join(wrapped)
        keep = min(keep, width * lines - len(suffix)) - 1


def _finite(v: Any) -> bool:
    return is_number(v) and math.isfinite(v)


def _value_key(v: Any) -> str:
    return "\0absent" if v is _MISSING else json.dumps(v, sort_keys=True)


def _explained(y: np.ndarray, groups: list[str]) -> float:
    """Eta squared: the share of `y`'s variance between the groups' means (0 when `y` is constant). `y` is scaled by a
    power of two (exact) to below 1 first: eta squared does not depend on scale, but squares of 1e300 overflow and
    of 1e-300 vanish."""
    size = float(np.abs(y).max()) if len(y) else 0.0
    if size == 0:
        return 0.0
    y = np.ldexp(y, -int(np.frexp(size)[1]))
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return 0.0
    keys = np.array(groups)
    return sum(float((keys == g).sum() * (y[keys == g].mean() - y.mean()) ** 2) for g in set(groups)) / total


def _axis(values: list[Any]) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Positions in [0, 1] of a decision's values (distinct values evenly spaced, numbers in order, others by
    name; absent at -0.12) and the tick labels (every value up to 8 of them, else the ends)."""
    present = {_value_key(v): v for v in values if v is not _MISSING}
    numbers = all(is_number(v) for v in present.values())
    keys = sorted(present, key=(lambda k: present[k]) if numbers else str)
    step = 1.0 / max(len(keys) - 1, 1)
    where = {k: (i * step if len(keys) > 1 else 0.5) for i, k in enumerate(keys)}
    where[_value_key(_MISSING)] = -0.12
    col = np.array([where[_value_key(v)] for v in values])
    shown = keys if len(keys) <= 8 else [keys[0], keys[-1]]
    ticks = [(where[k], str(present[k])) for k in shown]
    if any(v is _MISSING for v in values):
        ticks.append((-0.12, "-"))
    return col, ticks


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _natural(name: str) -> list[Any]:
    """"worker-10" after "worker-9"."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _mappable(cmap: Any, norm: Any) -> Any:
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure on its own Agg canvas (no pyplot: the caller's backend is left alone), 120 dpi."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def plot_format(path: str | Path) -> str:
    """The image format `path`'s suffix names (png, svg, pdf, ...; PNG without a suffix), or a ConfigError naming
    the formats matplotlib writes: `history.svg` was written as PNG data under that name."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    supported = FigureCanvasAgg(Figure()).get_supported_filetypes()
    if suffix not in supported:
        raise ConfigError(f"{path}: .{suffix} is not an image format this writes (use one of "
                          f"{', '.join('.' + k for k in sorted(supported))})")
    return suffix


def _save(fig: Any, path: str | Path) -> Path:
    """Lay out `fig` and write it at `path` in the format its suffix names (PNG without one; its folder made if
    missing); returns the path."""
    kind = plot_format(path)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format=kind)
    return out
