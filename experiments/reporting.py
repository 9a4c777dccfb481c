"""Shared bits of the experiment scripts: provenance of a run (commit, machine, load), the evaluation protocol
(relative improvement over random sampling, >= 10 seeds, 95 % intervals, search cost, with warnings when a result
is reported outside it) and the gym's table and plot."""

from __future__ import annotations

import math
import subprocess
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas import jsonio

ROOT = Path(__file__).resolve().parents[1]


def write_report(path: Path, report: dict, started: float) -> None:
    """Write an experiment's JSON beside its printed table (atomically: a run killed mid-write leaves the old
    file, which a resume can still read) and say where."""
    import json
    import time

    jsonio.write_bytes(path, json.dumps(report, indent=1).encode())
    print(f"total {time.time() - started:.0f} s; wrote {path}")


def read_cache(path: Path) -> list[dict[str, Any]]:
    """The records of an experiment's JSON-lines cache (none when it does not exist yet), for its one writer: a
    line torn by a kill mid-write is dropped from the file, so the rerun appends after whole records."""
    if not path.exists():
        return []
    lines = jsonio.read_jsonl(path, "cache")
    jsonio.repair_tail(lines)
    return [record for _, record in lines.records]


def append_cache(path: Path, record: Mapping[str, Any]) -> None:
    """Append one finished record to an experiment's JSON-lines cache and fsync (measured values may be NaN)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    jsonio.append_jsonl(path, [record], allow_nan=True)


def git_commit() -> str | None:
    """HEAD of the repository the experiment ran from (None outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# ---------------------------------------------------------------------------------------- evaluation protocol
# "NAS evaluation is frustratingly hard" (Yang et al., ICLR 2020): report every method against random
# sampling under the same protocol (space, budget, training), as the relative improvement
# RI = 100 (m - r) / r over the random average r, over at least 10 seeds, with confidence intervals and
# the search cost. The code below computes that and warns when a result is reported outside it.
MIN_SEEDS = 10


class ProtocolWarning(UserWarning):
    """A result reported outside the evaluation protocol: no random baseline, or fewer than 10 seeds."""


def relative_improvement(value: float, random_mean: float, direction: str = "max") -> float:
    """RI in % of `value` over the random-sampling average (Yang et al. 2020); positive means better, also
    for an objective that is minimised (then RI = 100 (r - value) / |r|)."""
    if random_mean == 0:
        raise ValueError("relative improvement over a random average of 0 is undefined")
    diff = value - random_mean if direction == "max" else random_mean - value
    return 100.0 * diff / abs(random_mean)


@dataclass(frozen=True)
class MethodReport:
    """One method under the protocol: mean with its 95 % t-interval, median, RI over random with the 95 %
    Welch interval of the difference of means (scaled to %), Welch's two-sided p and the mean search cost."""

    method: str
    n: int
    mean: float
    std: float
    ci95_low: float
    ci95_high: float
    median: float
    ri_pct: float | None = None
    ri_ci95_low: float | None = None
    ri_ci95_high: float | None = None
    p_value: float | None = None
    cost_s: float | None = None
    budget: float | None = None


@dataclass
class ProtocolReport:
    """All methods of one comparison (one environment / dataset) and the protocol warnings it raised."""

    label: str
    direction: str
    baseline: str
    baseline_mean: float | None
    methods: list[MethodReport]
    warnings: list[str] = field(default_factory=list)

    def method(self, name: str) -> MethodReport:
        return next(m for m in self.methods if m.method == name)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "direction": self.direction, "baseline": self.baseline,
                "baseline_mean": self.baseline_mean, "methods": [asdict(m) for m in self.methods],
                "warnings": list(self.warnings)}


def _warn(message: str, collected: list[str]) -> None:
    collected.append(message)
    warnings.warn(message, ProtocolWarning, stacklevel=3)


def protocol_report(values: Mapping[str, Sequence[float]], *, direction: str = "max", baseline: str = "random",
                    costs: Mapping[str, Sequence[float]] | None = None,
                    budgets: Mapping[str, float] | None = None, label: str = "",
                    min_seeds: int = MIN_SEEDS) -> ProtocolReport:
    """Every method's outcomes (one value per seed) against `baseline` (random sampling, same protocol).

    Warns (`ProtocolWarning`, also listed in `report.warnings`) when the baseline is missing (then no RI is
    computed), when any method, the baseline included, has fewer than `min_seeds` seeds, and when the
    methods ran with different budgets. `costs` (seconds per seed) give the mean search cost.
    """
    from scipy import stats

    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min', got {direction!r}")
    where = f" [{label}]" if label else ""
    notes: list[str] = []
    clean = {m: [float(v) for v in vs if v is not None and math.isfinite(float(v))] for m, vs in values.items()}
    if baseline not in clean or not clean[baseline]:
        _warn(f"{where.strip()} reported without its random baseline {baseline!r}: relative improvement "
              "cannot be computed; run random sampling under the same protocol".strip(), notes)
    for m, vs in clean.items():
        if len(vs) < min_seeds:
            _warn(f"{where.strip()} {m!r} has {len(vs)} seed(s), fewer than {min_seeds}: its mean and interval are "
                  "not reliable".strip(), notes)
    if budgets and len(set(budgets.values())) > 1:
        _warn(f"{where.strip()} methods ran with different budgets {dict(budgets)}: not the same protocol".strip(), notes)
    base = clean.get(baseline) or []
    r_mean = float(np.mean(base)) if base else None
    out = []
    for m, vs in clean.items():
        if not vs:
            continue
        x = np.asarray(vs)
        n, mean = len(x), float(x.mean())
        std = float(x.std(ddof=1)) if n > 1 else 0.0
        half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else float("nan")
        ri = lo = hi = p = None
        if r_mean is not None and r_mean != 0:
            ri = relative_improvement(mean, r_mean, direction)
            if m == baseline:
                lo, hi, p = ri, ri, 1.0
            elif n > 1 and len(base) > 1 and (std > 0 or np.std(base) > 0):
                with warnings.catch_warnings():  # nearly identical runs (a converged method): precision notes
                    warnings.simplefilter("ignore", RuntimeWarning)
                    t = stats.ttest_ind(x, np.asarray(base), equal_var=False)
                ci = t.confidence_interval(0.95)
                sign = 1.0 if direction == "max" else -1.0
                a, b = sorted((sign * 100.0 * ci.low / abs(r_mean), sign * 100.0 * ci.high / abs(r_mean)))
                lo, hi, p = float(a), float(b), float(t.pvalue)
        cost = float(np.mean(costs[m])) if costs and m in costs and len(costs[m]) else None
        out.append(MethodReport(m, n, mean, std, mean - half, mean + half, float(np.median(x)), ri, lo, hi, p, cost,
                                budgets.get(m) if budgets else None))
    return ProtocolReport(label, direction, baseline, r_mean, out, notes)


def _fmt(v: float | None, digits: int = 4) -> str:
    """Numbers for tables: 4 decimals for accuracies and other small values, thousands separators for counts."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a == 0:
        return "0"
    if a >= 10 ** -(digits - 1):
        return f"{v:.{digits}f}"
    return f"{v:.{digits - 1}e}"


def protocol_table(report: ProtocolReport) -> str:
    """The report as a markdown table (RI = relative improvement over random, 95 % CIs)."""
    head = "| method | n | mean [95 % CI] | median | RI % [95 % CI] | p (Welch) | search cost s |"
    rows = [head, "|" + "---|" * 7]
    for m in report.methods:
        ri = "-" if m.ri_pct is None else f"{m.ri_pct:+.2f} [{_fmt(m.ri_ci95_low, 2) if m.ri_ci95_low is not None else '-'}, " \
                                          f"{_fmt(m.ri_ci95_high, 2) if m.ri_ci95_high is not None else '-'}]"
        rows.append(f"| {m.method} | {m.n} | {_fmt(m.mean)} [{_fmt(m.ci95_low)}, {_fmt(m.ci95_high)}] | "
                    f"{_fmt(m.median)} | {ri} | {_fmt(m.p_value, 2)} | {_fmt(m.cost_s, 3)} |")
    return "\n".join(rows)


def ri_matrix(reports: Mapping[str, ProtocolReport]) -> str:
    """Markdown: one row per method, one column per report (environment), RI % over random in each cell, in
    bold where the 95 % interval excludes 0; methods sorted by their mean rank over the columns they ran in. Equal
    RIs share their average rank (`scipy.stats.rankdata`), so the ranks do not depend on the order methods are
    listed in (evolution with a population beyond its budget samples exactly as random does)."""
    from scipy import stats

    envs = list(reports)
    cells: dict[str, dict[str, MethodReport]] = {}
    ranks: dict[str, list[float]] = {}
    for env, rep in reports.items():
        scored = [m for m in rep.methods if m.ri_pct is not None]
        for m in rep.methods:
            cells.setdefault(m.method, {})[env] = m
        if scored:
            for r, m in zip(stats.rankdata([-m.ri_pct for m in scored]), scored):
                ranks.setdefault(m.method, []).append(float(r))
    mean_rank = {name: float(np.mean(ranks[name])) if name in ranks else math.inf for name in cells}
    rows = ["| method | " + " | ".join(envs) + " | mean rank |", "|" + "---|" * (len(envs) + 2)]
    for name in sorted(cells, key=lambda n: mean_rank[n]):
        out = []
        for env in envs:
            m = cells[name].get(env)
            if m is None or m.ri_pct is None:
                out.append("-")
                continue
            text = f"{m.ri_pct:+.2f}"
            significant = m.ri_ci95_low is not None and (m.ri_ci95_low > 0 or m.ri_ci95_high < 0)
            out.append(f"**{text}**" if significant and name != reports[env].baseline else text)
        rows.append(f"| {name} | " + " | ".join(out) + f" | {mean_rank[name]:.1f} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------- the gym
def gym_reports(result: Any, baseline: str = "random", min_seeds: int = MIN_SEEDS) -> dict[str, ProtocolReport]:
    """The protocol report of every environment of a `nas.gym.GymResult` (every run of a strategy, its
    settings x seeds, counts as one seed: each run has its own seed). The search cost is each run's `cost_s`
    (the environment's `cost_metric` summed, else the trials' durations), not its wall time, so a repeat
    served from a memo is charged its original training time and the order strategies ran in does not matter."""
    out = {}
    for env, facts in result.environments.items():
        strategies = result.strategies(env)
        if not strategies:
            continue
        values = {s: result.values(env, s) for s in strategies}
        costs = {s: [r.cost_s for r in result.runs if r.environment == env and r.strategy == s] for s in strategies}
        budgets = {s: float(next(r.budget for r in result.runs if r.environment == env and r.strategy == s))
                   for s in strategies}
        out[env] = protocol_report(values, direction=facts["direction"], baseline=baseline, costs=costs,
                                   budgets=budgets, label=env, min_seeds=min_seeds)
    return out


def gym_table(result: Any, reports: Mapping[str, ProtocolReport] | None = None) -> str:
    """Markdown: per environment, each strategy's outcome distribution over settings x seeds (median, IQR,
    min-max), the defaults' and the best setting's median, RI over random with its 95 % CI, the reported
    final metric, the search cost (`cost_s`, as in the protocol) and the wall time; then what was skipped and why."""
    reports = reports if reports is not None else gym_reports(result)
    lines = []
    for env, facts in result.environments.items():
        sums = [s for s in result.summaries() if s.environment == env]
        if not sums:
            continue
        rep = reports.get(env)
        sums.sort(key=lambda s: -s.median if facts["direction"] == "max" else s.median)
        cons = f" s.t. {', '.join(facts['constraints'])}" if facts["constraints"] else ""
        lines += [f"**{env}**: {facts['direction']} {facts['objective']}{cons}, budget {facts['budget']}"
                  + (f", optimum {_fmt(facts['optimum'])}" if facts.get("optimum") is not None else ""), "",
                  f"| strategy | runs | median | IQR | min – max | defaults | best setting | RI % [95 % CI] | "
                  f"{facts['final']} (median) | search cost s | wall s |", "|" + "---|" * 11]
        for s in sums:
            ri = "-"
            if rep is not None:
                m = rep.method(s.strategy)
                if m.ri_pct is not None:
                    ci = f" [{m.ri_ci95_low:+.2f}, {m.ri_ci95_high:+.2f}]" if m.ri_ci95_low is not None else ""
                    ri = f"{m.ri_pct:+.2f}{ci}"
            miss = f" ({s.missing} none)" if s.missing else ""
            lines.append(f"| {s.strategy} | {s.n}{miss} | {_fmt(s.median)} | {_fmt(s.iqr)} | {_fmt(s.min)} – {_fmt(s.max)} | "
                         f"{_fmt(s.default_median)} | {_fmt(s.best_setting_median)} | {ri} | {_fmt(s.final_median)} | "
                         f"{s.cost_s_mean:.2f} | {s.seconds_mean:.2f} |")
        lines.append("")
    if result.skipped:
        grouped: dict[tuple[str, str], list[str]] = {}
        for s in result.skipped:
            grouped.setdefault((s.strategy, s.reason.split(" (")[0]), []).append(s.environment)
        lines.append("Skipped: " + "; ".join(f"{strat} on {', '.join(envs)} ({reason})"
                                             for (strat, reason), envs in grouped.items()))
    errors = [r for r in result.runs if r.error]
    if errors:
        lines.append(f"Runs that raised: {len(errors)}: " + "; ".join(
            sorted({f'{r.strategy} on {r.environment}: {r.error[:120]}' for r in errors})))
    return "\n".join(lines)


def plot_gym(result: Any, path: str | Path) -> Path:
    """A box plot per environment of every strategy's outcomes over settings x seeds (points overlaid,
    random's median dashed), strategies sorted by median, best at the top. Returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = [e for e in result.environments if result.strategies(e)]
    cols = min(3, len(envs)) or 1
    rows = -(-len(envs) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 0.32 * max(len(result.strategies()), 4) * rows + 1.5),
                             squeeze=False)
    for ax, env in zip(axes.flat, envs):
        facts = result.environments[env]
        data = {s: result.values(env, s) for s in result.strategies(env)}
        data = {s: v for s, v in data.items() if v}
        order = sorted(data, key=lambda s: np.median(data[s]), reverse=facts["direction"] == "min")
        ax.boxplot([data[s] for s in order], orientation="horizontal", widths=0.6, showfliers=False)
        for i, s in enumerate(order, start=1):
            y = np.random.default_rng(i).uniform(-0.15, 0.15, len(data[s])) + i
            ax.scatter(data[s], y, s=6, alpha=0.5, color="tab:blue")
        ax.set_yticks(range(1, len(order) + 1), order, fontsize=7)
        if "random" in data:
            ax.axvline(float(np.median(data["random"])), color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(f"{env}: {facts['direction']} {facts['objective']}", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    for ax in list(axes.flat)[len(envs):]:
        ax.axis("off")
    fig.suptitle("outcome over hyper-parameter settings x seeds (box: IQR, line: median; dashed: random's median)",
                 fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
