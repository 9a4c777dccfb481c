"""What the dashboard shows of one search, as plain JSON: progress, trial rows, fronts, curves, a trial page.

A `SearchView` follows its workdir's journal (`JournalFollower`: each refresh parses only appended lines)
and derives every view from the same `SearchResult` the CLI uses, so the page's front is `nas pareto`'s.
It only reads: the journal, `running.json` and export folders are never written.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas import jsonio
from nas.errors import ConfigError, JournalError, NASError
from nas.compare import compare_searches
from nas.importance import decision_importances
from nas.plot import parallel_axes
from nas.objectives import Problem
from nas.pareto import HypervolumeTracker, MonteCarloHypervolume
from nas.report import compact
from nas.result import SearchResult, outcome
from nas.stopping import rule_met
from nas.store import JOURNAL, Journal, JournalFollower, Trial, writer_exited, writer_since

log = logging.getLogger(__name__)

RATE_WINDOW = 50  # evaluations the rate and ETA are measured over (the recent ones: a search speeds up/slows)
IMPORTANCE_TRIALS = 1000  # the importance panel's forest learns from a seeded subset of at most this many trials
SIMULATED = "sim-"  # the worker prefix of a simulated-clock replay's trials: their times are simulated seconds


def finite(v: float) -> float | None:
    """A metric for JSON: NaN and infinity become null (strict JSON has neither)."""
    return v if math.isfinite(v) else None


def nonfinite(metrics: dict[str, float]) -> dict[str, str]:
    """The metrics `finite` makes null, as the text the page shows for them ("NaN", "inf", "-inf"): a NaN or an
    infinity recorded must not look like a metric never recorded."""
    return {k: "NaN" if math.isnan(v) else "inf" if v > 0 else "-inf"
            for k, v in metrics.items() if not math.isfinite(v)}


def find_workdirs(paths: Sequence[str | Path], depth: int = 3) -> list[Path]:
    """The search workdirs in `paths`: each path that holds a journal, else the workdirs below it (to `depth`).

    A path that does not exist, or holds no journal at any depth, is a ConfigError naming it.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ConfigError(f"{p}: no such file or directory")
        if not p.is_dir():
            raise ConfigError(f"{p}: not a directory (give a search's workdir, or a folder of workdirs)")
        if (p / JOURNAL).exists():
            found.append(p)
            continue
        below = sorted({j.parent for d in range(1, depth + 1) for j in p.glob("/".join(["*"] * d) + "/" + JOURNAL)})
        if not below:
            raise ConfigError(f"{p}: not a search workdir (no {JOURNAL} in it or in its sub-folders to depth {depth})")
        found.extend(below)
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


@dataclass
class HypervolumeCurve:
    """The front's hypervolume over evaluations, for the search's objectives, shown in at most `POINTS` steps.

    The reference point is the worst feasible value of each objective plus a tenth of its range (so the
    extreme points count). Each new feasible trial adds its exclusive volume (`HypervolumeTracker`: one small
    hypervolume for a trial that enters the front, none for a dominated one), so a poll costs only its new
    trials. A trial that moves the reference point (a new worst value or a wider range) makes it one pass
    over the feasible trials again, for the new reference. Up to `EXACT` objectives the curve is exact; with
    more it is a seeded Monte Carlo estimate (`MonteCarloHypervolume`, `SAMPLES` points, its standard error
    in `error`), since exact hypervolume grows exponentially with the number of objectives.

    Objectives of huge (finite) values can make the volume, or the reference point itself, too large for a
    float: the curve then holds None from the evaluation where the volume overflowed on (none at all when the
    reference did), and `note` says why, so the page and the strict JSON it reads never see inf or NaN.
    """

    POINTS = 200
    EXACT = 4
    SAMPLES = 1 << 16
    reference: np.ndarray | None = None
    tracker: HypervolumeTracker | None = None
    done: int = 0  # feasible points added to `tracker`
    changes: list[tuple[int, float]] = field(default_factory=list)  # (evaluations used, hypervolume) per change
    evaluations: int = 0  # hypervolumes computed, over every pass (what the curve costs)

    def update(self, pts: np.ndarray, used: Sequence[int]) -> list[tuple[int, float | None]]:
        """The curve for the feasible points `pts` (minimised, journal order; earlier calls' points first)."""
        n = len(pts)
        if n == 0:
            return []
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is seen below, and said in `note`
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            span = hi - lo  # beyond a float for values near +-1.8e308: a tenth of each end's difference instead
            ref = hi + np.where(hi > lo, np.where(np.isfinite(span), span / 10, hi / 10 - lo / 10), 1.0)
            if not np.all(np.isfinite(ref)):  # no hypervolume against an infinite reference point
                self.reference, self.tracker, self.done, self.changes = ref, None, n, []
                return []
            if self.reference is None or self.tracker is None or np.any(ref != self.reference) or n < self.done \
                    or (isinstance(self.tracker, MonteCarloHypervolume) and np.any(lo < self.tracker.lower)):
                self.reference, self.done, self.changes = ref, 0, []
                self.tracker = (HypervolumeTracker(ref) if len(ref) <= self.EXACT
                                else MonteCarloHypervolume(ref, lo, self.SAMPLES))
            before, last = self.tracker.evaluations, self.tracker.volume
            for i, hv in enumerate(self.tracker.extend(pts[self.done:]), start=self.done):
                if hv != last and (math.isfinite(hv) or math.isfinite(last)):  # once overflowed, it stays so
                    if self.changes and self.changes[-1][0] == used[i]:  # a re-checked copy: no evaluation used
                        self.changes.pop()
                    self.changes.append((int(used[i]), float(hv)))
                    last = hv
        self.evaluations += self.tracker.evaluations - before
        self.done = n
        return self.curve()

    @property
    def reference_finite(self) -> bool:
        """Whether the reference point is a float's (values near +-1.8e308 push it past)."""
        return self.reference is not None and bool(np.all(np.isfinite(self.reference)))

    @property
    def note(self) -> str | None:
        """Why the curve is missing or ends in None (a volume or reference point too large for a float), else None."""
        if self.reference is not None and not self.reference_finite:
            return "not drawn: its reference point (worst value plus a tenth of the range) is too large for a float"
        gone = next((used for used, hv in self.changes if not math.isfinite(hv)), None)
        if gone is None:
            return None
        return f"too large for a float (above 1.8e308) from evaluation {gone} on: not drawn from there"

    @property
    def error(self) -> float | None:
        """The curve's standard error (Monte Carlo, more than `EXACT` objectives), None when it is exact (or too large
        for a float)."""
        return finite(self.tracker.error) if isinstance(self.tracker, MonteCarloHypervolume) else None

    def curve(self) -> list[tuple[int, float | None]]:
        """`changes` in at most about `POINTS` steps: the last change in each equal span of evaluations; a volume too
        large for a float is None (strict JSON)."""
        if len(self.changes) <= self.POINTS:
            return [(used, finite(hv)) for used, hv in self.changes]
        width = -(-self.changes[-1][0] // self.POINTS)
        out: list[tuple[int, float | None]] = []
        for used, hv in self.changes:
            if out and (out[-1][0] - 1) // width == (used - 1) // width:
                out[-1] = (used, finite(hv))
            else:
                out.append((used, finite(hv)))
        return out


class RunFollower(JournalFollower):
    """A `JournalFollower` that also notes where each run of the search began (its journal's "resume" lines)."""

    def _reset(self) -> None:
        super()._reset()
        self.runs: list[tuple[int, float | None]] = [(0, None)]  # (first trial of the run, when it started)

    def _add(self, line: int, rec: dict[str, Any]) -> None:
        super()._add(line, rec)
        if rec.get("type") == "resume":
            when = rec.get("time")
            self.runs.append((len(self.trials), float(when) if isinstance(when, (int, float)) else None))


def simulated(t: Trial) -> bool:
    """Whether `t` was replayed on a simulated clock (its times are simulated seconds from 0, not Unix times)."""
    return t.worker.startswith(SIMULATED)


class SearchView:
    """One workdir as the dashboard shows it; `refresh()` reads what the journal gained since the last call."""

    def __init__(self, workdir: Path, key: str, name: str, models: Sequence[Path] = ()) -> None:
        self.workdir, self.key, self.name, self.models = workdir, key, name, list(models)
        self.journal = Journal(workdir)
        self.follower = RunFollower(self.journal)
        self.revision = 0  # rises whenever the journal gained a record (clients poll with it)
        self.generation = 0  # rises whenever the rows are built anew (a replaced journal, corrected objectives)
        self.journal_id: str | None = None  # which journal the rows describe (see `_identify`)
        self.error: str | None = None  # the journal's damage, shown instead of the search
        self.problem: Problem | None = None
        self.rows: list[dict[str, Any]] = []
        self._used = 0
        self._cache: dict[Any, Any] = {}
        self._importance: dict[str, tuple[int, dict[str, Any]]] = {}  # metric -> (rows when computed, answer)
        self._parallel: dict[str, tuple[int, dict[str, Any]]] = {}  # the same for the parallel coordinates
        self._hv = HypervolumeCurve()
        self._result: SearchResult | None = None
        self._problem_spec: Any = None
        self._waiting: tuple[Any, list[dict[str, Any]]] = (None, [])  # (snapshot's stat, a study's pending jobs)
        self.lock = threading.RLock()  # held for a whole request: the server answers from several threads

    # ------------------------------------------------------------------ reading
    def refresh(self) -> None:
        """Read new journal lines; a damaged journal sets `error` (one sentence) instead of raising."""
        with self.lock:
            lines_before = self.follower.lines
            try:
                if self.follower.poll():
                    self._restart()
                self.error = None
            except NASError as e:
                self.error = str(e)
                return
            config = self.follower.config
            if config is None:  # no complete header (yet, or again: a journal replaced by one still being copied)
                self.problem, self._problem_spec = None, None
                return
            spec = config.get("problem")
            if self.problem is None or spec != self._problem_spec:  # new, or objectives corrected: rows anew
                try:
                    self.problem = Problem.make(spec["objectives"], spec["constraints"])  # type: ignore[index]
                except (KeyError, TypeError, NASError) as e:
                    self.error = f"{self.journal.path}:1: the header names no valid objectives ({e})"
                    return
                if self._problem_spec is not None:
                    self._restart()
                self._problem_spec = spec
                self.rows, self._used, self._hv = [], 0, HypervolumeCurve()
            if self.journal_id is None:
                self._identify()
            trials = self.follower.trials
            if self.follower.lines == lines_before and len(self.rows) == len(trials):
                return
            for t in trials[len(self.rows):]:
                self._used += t.is_evaluation
                self.rows.append(self._row(t, self._used))
            self.revision += 1
            self._cache.clear()

    def _restart(self) -> None:
        """The journal was replaced (or its objectives corrected): every row is built anew, under a new identity."""
        self.rows, self._used, self._hv, self.revision = [], 0, HypervolumeCurve(), self.revision + 1
        self.generation += 1
        self.journal_id = None
        self._cache.clear()
        self._importance.clear()
        self._parallel.clear()

    def _identify(self) -> None:
        """Set `journal_id`: a digest of the journal file (device, inode) and its header line, and the rows'
        generation. A page holding rows of another identity drops them: a replaced search may already hold
        more trials than the page has, so a shrinking trial count cannot be what tells."""
        try:
            with open(self.journal.path, "rb") as f:
                stat = os.fstat(f.fileno())
                head = f.readline()
        except OSError:
            return
        digest = hashlib.sha256(f"{stat.st_dev}:{stat.st_ino}:".encode() + head).hexdigest()[:16]
        self.journal_id = f"{digest}.{self.generation}"

    def _row(self, t: Trial, used: int) -> dict[str, Any]:
        assert self.problem is not None
        kind = outcome(self.problem, t)
        return {"number": t.number, "status": t.status, "outcome": kind, "feasible": kind == "feasible",
                "metrics": {k: finite(v) for k, v in t.metrics.items()}, "nonfinite": nonfinite(t.metrics),
                "arch": compact(t.arch),
                "arch_id": t.arch_id, "duration": t.finished - t.started, "worker": t.worker, "error": t.error,
                "used": used, "pruned_after": t.pruned_after}

    def result(self) -> SearchResult:
        """The trials read so far as the `SearchResult` the CLI uses: one object over the follower's growing
        list, so the work it caches (its completed trials) is only extended by each poll."""
        assert self.problem is not None and self.follower.config is not None
        if self._result is None or self._result.trials is not self.follower.trials \
                or self._result.problem is not self.problem:
            self._result = SearchResult(self.follower.trials, self.problem, self.workdir)
        self._result.config = self.follower.config
        writing = self.follower.still_writing and self.follower.journal.search_running()
        self._result.stop_reason = "still being written" if writing else self.follower.stop_reason or "loaded"
        return self._result

    def _cached(self, key: Any, make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    # ------------------------------------------------------------------ views
    def summary(self) -> dict[str, Any]:
        """Name, state, progress (used / budget, rate, ETA, failures, busy workers), objectives, best values."""
        base = {"key": self.key, "name": self.name, "workdir": str(self.workdir.resolve()), "revision": self.revision,
                "journal_id": self.journal_id}
        if self.error is not None:
            return {**base, "error": self.error}
        if self.follower.config is None or self.problem is None:
            return {**base, "error": None, "state": "starting", "trials": 0}
        # a torn last line is "being written" only while a search holds the lock: else it is a crash's remnant
        writing = self.follower.still_writing and self.journal.search_running()
        return {**base, **self._cached("summary", self._summary), **self._liveness(), "still_writing": writing}

    def warm(self) -> None:
        """Compute the views the page asks for first, so its first visit does not wait for them."""
        with self.lock:
            if self.error is None and self.problem is not None:
                self.summary()
                self.history()
                self.front()

    def _liveness(self) -> dict[str, Any]:
        """What changes without a journal line: whether a search writes it now, what it evaluates, the ETA."""
        assert self.follower.config is not None
        writer = self.journal.writer()
        running = self.journal.running() if writer else None
        budget = int(self.follower.config.get("budget", 0))
        rate, clock = self._cached("rate", self._rate)
        # below its budget but done: the space or strategy had nothing new, or the user's stop rule held
        done_early = self.follower.stop_reason == "exhausted" or rule_met(self.follower.stop_reason) is not None
        who, since = writer_since(writer) if writer else (None, None)
        if writer and since is None and " since " in writer:  # a lock from before zones were recorded
            who = f"{writer}, the search machine's local time"
        waiting = self._study_waiting() if not writer else []
        if waiting:  # a study driven by nas ask / nas tell: between calls no process holds it, but jobs run
            return {"state": f"waiting for {len(waiting)} result(s): asked, not told yet (nas tell)", "running": False,
                    "running_since": None, "eta_s": None, "workers": {"slots": None, "in_flight": waiting}}
        if writer and writer_exited(writer):  # nothing writes: a process the search forked keeps its lock
            return {"state": f"locked by a process left by a search that exited ({who})", "running": False,
                    "running_since": None, "eta_s": None, "workers": None}
        return {"state": (f"running ({who})" if writer else
                          "finished" if self._used >= budget or done_early else "stopped below its budget"),
                "running": writer is not None, "running_since": since,
                "eta_s": (None if rate is None or writer is None or clock == "simulated"
                          else max(budget - self._used, 0) / rate),
                "workers": None if running is None else {"slots": running.get("slots"),
                                                         "in_flight": running.get("in_flight", [])}}

    def _study_waiting(self) -> list[dict[str, Any]]:
        """A study's architectures asked and not told, from its snapshot ({"arch_id", "arch", "since"}, as
        running.json lists a search's evaluations); read again only when the snapshot file changed."""
        config = self.follower.config or {}
        if not (config.get("metadata") or {}).get("study"):
            return []
        path = self.journal.snapshot_path
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size, len(self.rows))
        except OSError:
            return []
        if key != self._waiting[0]:
            try:
                waiting = self.journal.pending({r["arch_id"] for r in self.rows})
            except NASError:
                waiting = []
            self._waiting = (key, [{**p, "arch": compact(p["arch"])} for p in waiting])
        return self._waiting[1]

    def _rate(self) -> tuple[float | None, str]:
        """(evaluations per second over the last `RATE_WINDOW` evaluations of the current run, its clock).

        Only this run's trials count (a resumed search's "resume" line starts a run), so the pause before a
        resume is not taken for slow evaluations; a study's jobs ask and tell through reopenings, so all its trials
        count. The clock is "simulated" for a simulated-clock replay (its
        rate is per simulated second; no ETA follows from it), else "wall". None before two evaluations (one
        when the run's start time is known).
        """
        trials = self.follower.trials
        study = bool(((self.follower.config or {}).get("metadata") or {}).get("study"))
        start, began = (0, None) if study else self.follower.runs[-1]  # a study reopens per ask and tell: one run
        recent = [t for t in trials[max(start, len(trials) - 4 * RATE_WINDOW):] if t.is_evaluation][-RATE_WINDOW:]
        clock = "simulated" if recent and all(simulated(t) for t in recent) else "wall"
        first = min((t.started for t in recent), default=0.0)
        if len(recent) == 1 and began is not None and clock == "wall":
            first = began  # the one evaluation of a fresh run: from the run's start
        elif len(recent) < 2:
            return None, clock
        span = max(t.finished for t in recent) - first
        return (len(recent) / span if span > 0 else None), clock

    def _summary(self) -> dict[str, Any]:
        assert self.problem is not None and self.follower.config is not None
        config, trials, problem = self.follower.config, self.follower.trials, self.problem
        result = self.result()
        counts = result.counts()
        pruned = counts.other.get("pruned", 0)
        budget = int(config.get("budget", 0))
        best = {}
        for o in problem.objectives:
            b = result.best(o.name)
            best[o.name] = None if b is None else {"trial": b.number, "value": finite(b.metrics[o.name])}
        metrics = sorted({m for t in trials for m in t.metrics})
        rate, clock = self._cached("rate", self._rate)
        wall = [t for t in trials if not simulated(t)]
        sim = [t for t in trials if simulated(t)]
        return {"error": None, "strategy": config.get("strategy"), "compare_group": compare_group(config),
                "seed": config.get("seed"), "strategy_options": config.get("strategy_options") or {},
                "objectives": [{"name": o.name, "direction": o.direction} for o in problem.objectives],
                "constraints": [str(c) for c in problem.constraints], "metrics": metrics,
                "trials": len(trials), "used": self._used, "budget": budget,
                # as `nas status` counts (`SearchResult.counts()`), so every trial is in one count: infeasible is
                # every trial that breaks a constraint, rejected by a cheap one before evaluation (status
                # "infeasible") or evaluated and found violating; pruned: stopped early by a pruner (ok, but
                # neither feasible nor on the front); other: an incomplete result, any other status
                "counts": {"ok": counts.feasible + counts.violating + pruned, "failed": counts.failed,
                           "infeasible": counts.infeasible, "rejected": counts.rejected, "violating": counts.violating,
                           "feasible": counts.feasible, "pruned": pruned,
                           "other": {k: n for k, n in counts.other.items() if k != "pruned"}},
                "feasible": counts.feasible,
                "rate_per_min": None if rate is None else rate * 60, "rate_clock": clock,
                # wall-clock trials only: a simulated-clock replay's times are seconds from 0, never dates
                "first": min((t.started for t in wall), default=None),
                "last": max((t.finished for t in wall), default=None),
                "simulated": None if not sim else {
                    "trials": len(sim), "workers": len({t.worker for t in sim}),
                    "from": min(t.started for t in sim), "to": max(t.finished for t in sim)},
                "best": best, "pareto_size": len(result.pareto_front())}

    def trials_since(self, start: int) -> list[dict[str, Any]]:
        """The trial rows from number `start` on (a polling client asks only for the ones it lacks)."""
        return self.rows[max(start, 0):]

    def front(self, objectives: Sequence[str] | None = None) -> dict[str, Any]:
        """The Pareto front on `objectives` (default: the search's; any metric as NAME:min/max): what
        `nas pareto DIR --objectives ...` prints, as trial numbers in its order."""
        key = ("front", tuple(objectives or ()))

        def make() -> dict[str, Any]:
            result = self.result()
            objs = [result.objective(n) for n in objectives] if objectives else list(result.problem.objectives)
            front = result.pareto_front(objs)
            return {"objectives": [{"name": o.name, "direction": o.direction} for o in objs],
                    "numbers": [t.number for t in front]}

        return self._cached(key, make)

    def history(self) -> dict[str, Any]:
        """Per objective, the best feasible value after each improving evaluation; and the hypervolume curve."""
        def make() -> dict[str, Any]:
            assert self.problem is not None
            result = self.result()
            curves = {o.name: result.history(o) for o in self.problem.objectives}
            hv: list[tuple[int, float | None]] = []
            if len(self.problem.objectives) >= 2:
                objs = self.problem.objectives
                rows = [r for r in self.rows if r["feasible"] and r["pruned_after"] is None
                        and all(r["metrics"].get(o.name) is not None for o in objs)]
                pts = np.array([[o.minimised(r["metrics"][o.name]) for o in objs] for r in rows], dtype=float)
                hv = list(self._hv.update(pts.reshape(-1, len(objs)), [r["used"] for r in rows]))
            return {"best": curves, "hypervolume": hv, "hypervolume_error": self._hv.error,
                    "hypervolume_samples": self._hv.SAMPLES if self._hv.error is not None else None,
                    "hypervolume_note": self._hv.note,  # why the curve is missing or stops: too large for a float
                    "reference": self._unminimise(self._hv.reference) if self._hv.reference_finite else None}

        return self._cached("history", make)

    def importance(self, metric: str | None = None) -> dict[str, Any]:
        """Which decisions matter for `metric` (default: the first objective; `nas.importance`, 100 trees on a seeded
        subset of at most `IMPORTANCE_TRIALS` trials), or {"error": why not}. Kept until the trials grew by a tenth:
        a forest per poll of a running search would hold the page up."""
        return self._until_grown(self._importance, metric, lambda: decision_importances(
            self.result(), metric, trees=100, max_trials=IMPORTANCE_TRIALS).to_dict())

    def parallel(self, metric: str | None = None) -> dict[str, Any]:
        """The parallel coordinates of `metric` (`nas.plot.parallel_axes`: the decisions that alone explain most of
        it), or {"error": why not}; kept until the trials grew by a tenth, as the importances are."""
        return self._until_grown(self._parallel, metric, lambda: parallel_axes(self.result(), metric).to_dict())

    def _until_grown(self, held: dict[str, tuple[int, dict[str, Any]]], metric: str | None,
                     make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """`make()` (a ConfigError as {"error": ...}), computed again once the trials grew by a tenth, or changed at
        all while no search writes the journal: a finished search's panel must be what `nas importance` says."""
        kept = held.get(metric or "")
        n = len(self.rows)
        if kept is None or not kept[0] <= n < kept[0] * 1.1 + 1 \
                or (n != kept[0] and not self.journal.search_running()):
            try:
                answer = make()
            except ConfigError as e:
                answer = {"error": str(e)}
            kept = held[metric or ""] = (n, answer)
        return kept[1]

    def _unminimise(self, ref: np.ndarray) -> list[float]:
        assert self.problem is not None
        return [float(-v if o.direction == "max" else v) for o, v in zip(self.problem.objectives, ref)]

    def trial(self, number: int, graph: bool = True, cards: Mapping[int, Path] | None = None) -> dict[str, Any]:
        """One trial's page: its row, architecture (nested), the `to_graph` drawing (SVG) and model card (found in
        `cards` when given: a report of every trial looks for the export folders once, see `cards()`)."""
        if not 0 <= number < len(self.rows):
            raise ConfigError(f"{self.name}: no trial {number} (the journal holds {len(self.rows)})")
        t = self.follower.trials[number]
        out = {**self.rows[number], "arch_tree": t.arch, "started": t.started, "finished": t.finished,
               "extra": t.extra, "card": self.card(number, cards)}
        if graph:
            out["graph_svg"], out["graph_note"] = self._cached(("graph", number), lambda: draw_architecture(
                self.space(), t.arch))
        return out

    # ------------------------------------------------------------------ what lies beside the journal
    def space(self) -> Any:
        """The search's space, rebuilt without running user code: a built-in space from the workdir's model
        spec or `nas.spaces.BUILTIN`, a plain `Space` from the header's spec (each checked against the
        journal's fingerprint); None when none fits."""
        return self._cached("space", lambda: rebuild_space(self.workdir, self.follower.config or {}))

    def cards(self) -> dict[int, Path]:
        """Trial number -> card.json of each model `nas export` wrote for this workdir, as the export folders inside
        the workdir, beside it and in `models` hold them now: looked for on every call (never cached for good)."""
        indexes = export_indexes(self.workdir, self.models)  # an export made (or redone) while the page is open
        stamp = tuple((str(i), i.stat().st_mtime_ns) for i in indexes if i.exists())  # shows without a restart
        return self._cached(("cards", stamp), lambda: find_cards(self.workdir, indexes))

    def card(self, number: int, cards: Mapping[int, Path] | None = None) -> dict[str, Any] | None:
        """The model card of trial `number` when `nas export` wrote one for this workdir: in `cards` (a `cards()`
        answer reused for many trials), else looked for now."""
        path = (self.cards() if cards is None else cards).get(number)
        if path is None:
            return None
        try:
            card = jsonio.read_json(path, "model card")
        except NASError as e:
            return {"error": str(e)}
        md = path.with_suffix(".md")
        return {"path": str(path.parent), "json": card, "markdown": md.read_text() if md.exists() else None}


def export_indexes(workdir: Path, models: Sequence[Path] = ()) -> list[Path]:
    """The export.json files in a folder inside `workdir`, beside it, or in `models` (`--models` folders)."""
    return list(workdir.glob("*/export.json")) + list(workdir.glob("*/*/export.json")) \
        + [p for p in workdir.parent.glob("*/export.json") if p.parent != workdir] \
        + [p for m in models for p in [m / "export.json", *m.glob("*/export.json")] if p.exists()]


def find_cards(workdir: Path, indexes: Sequence[Path]) -> dict[int, Path]:
    """Trial number -> card.json of every model exported from `workdir` (its export.json names the workdir)
    listed by the export indexes `indexes`."""
    me = workdir.resolve()
    cards: dict[int, Path] = {}
    for index in indexes:
        try:
            data = jsonio.read_json(index, "export index")
            if Path(str(data.get("workdir"))).resolve() != me:
                continue
        except (NASError, AttributeError, OSError):
            continue
        for card in index.parent.glob("trial-*/card.json"):
            try:
                cards[int(card.parent.name.split("-", 1)[1])] = card
            except ValueError:
                continue
    return cards


def rebuild_space(workdir: Path, config: dict[str, Any]) -> Any:
    """The space a journal header describes (see `SearchView.space`), or None; a workdir's model spec
    (`model.json`) names a built-in space's class and configuration exactly."""
    from nas.scripts import import_object
    from nas.spaces import BUILTIN, Space
    from nas.store import MODEL_SPEC

    if (workdir / MODEL_SPEC).exists():  # modelspec (and torch) imported only for workdirs that record a model
        from nas.modelspec import load_model_spec, space_from_json

        try:
            described = load_model_spec(workdir).space
            if str(described.get("class", "")).startswith("nas."):  # never imports a user's module
                space = space_from_json(described)
                if space.fingerprint() == config.get("space"):
                    return space
        except NASError as e:
            log.info("%s: the space in %s cannot be rebuilt: %s", workdir, MODEL_SPEC, e)
    spec = config.get("space_spec")
    if not isinstance(spec, dict):
        return None
    if spec.get("type") == "Space":
        try:
            return Space.from_spec(spec)
        except NASError as e:
            log.info("the space in the journal cannot be rebuilt: %s", e)
            return None
    for name, path in BUILTIN.items():
        if path.rsplit(".", 1)[1] != spec.get("type"):
            continue
        try:
            space = import_object(path, name)()
        except Exception as e:  # a built-in that needs arguments (a dataset, a supernet): no drawing
            log.info("built-in space %s not rebuilt with its defaults: %s", name, e)
            return None
        return space if space.fingerprint() == config.get("space") else None
    return None


def draw_architecture(space: Any, arch: dict[str, Any]) -> tuple[str | None, str]:
    """`space.to_graph(arch)` drawn as SVG (matplotlib, layered left to right), and a note on what it shows."""
    if space is None:
        return None, "the space could not be rebuilt from the journal (a user-defined subclass): tree only"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    try:
        g = space.to_graph(arch)
    except Exception as e:  # the architecture no longer fits the rebuilt space
        return None, f"to_graph failed: {e}"
    if g.number_of_nodes() == 0:
        return None, "the graph is empty"
    for layer, nodes in enumerate(nx.topological_generations(g) if nx.is_directed_acyclic_graph(g)
                                  else [list(g.nodes)]):
        for n in nodes:
            g.nodes[n]["_layer"] = layer
    pos = nx.multipartite_layout(g, subset_key="_layer")
    labels = {n: str(d.get("label") or d.get("op") or n) for n, d in g.nodes(data=True)}
    layers = 1 + max(d["_layer"] for _, d in g.nodes(data=True))
    widest = max(Counter(d["_layer"] for _, d in g.nodes(data=True)).values())
    fig, ax = plt.subplots(figsize=(min(2.2 + 2.4 * layers, 18), min(1.5 + 0.9 * widest, 12)))
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=12, node_size=2500, edge_color="#6b7586")
    nx.draw_networkx_labels(g, pos, ax=ax, labels=labels, font_size=9,
                            bbox={"boxstyle": "round,pad=0.4", "fc": "#dbe8f6", "ec": "#3b6ea8"})
    edge_labels = {(u, v): str(d.get("op") or d.get("label")) for u, v, d in g.edges(data=True)
                   if d.get("op") or d.get("label")}
    if edge_labels:
        nx.draw_networkx_edge_labels(g, pos, edge_labels=edge_labels, ax=ax, font_size=7)
    ax.set_axis_off()
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):], f"{type(space).__name__}.to_graph: {g.number_of_nodes()} nodes, " \
        f"{g.number_of_edges()} edges"


class SearchViews(list[SearchView]):
    """The views of the workdirs found in some paths; `rescan()` adds the workdirs that appeared below them since
    (a seed or strategy started into `runs/` while the page is open). Keys and views already listed stay."""

    def __init__(self, paths: Sequence[str | Path], models: Sequence[str | Path] = ()) -> None:
        super().__init__()
        self.paths, self.models = [Path(p) for p in paths], [Path(m) for m in models]
        self._lock = threading.Lock()

    def rescan(self, strict: bool = False) -> list[SearchView]:
        """Add a view (read once) for each workdir below the paths not listed yet, and return the new ones; names
        are paths relative to the folder given, told apart where they clash. A path that no longer holds a
        workdir is skipped, unless `strict` (the first scan), where it is the ConfigError of `find_workdirs`."""
        with self._lock:
            found: dict[Path, tuple[Path, str]] = {}  # resolved workdir -> (as given, name): given twice is one
            for root in self.paths:
                try:
                    workdirs = find_workdirs([root])
                except ConfigError:
                    if strict:
                        raise
                    continue
                for wd in workdirs:
                    name = str(wd.relative_to(root)) if wd != root and wd.is_relative_to(root) else wd.name or str(wd)
                    found.setdefault(wd.resolve(), (wd, name if name != "." else wd.resolve().name))
            listed = {v.workdir.resolve(): v for v in self}
            new = [real for real in found if real not in listed]
            if not new:
                return []
            names = distinct_names({**{real: v.name for real, v in listed.items()},
                                    **{real: found[real][1] for real in new}})
            for real, v in listed.items():
                v.name = names[real]
            added = []
            for real in new:
                view = SearchView(found[real][0], f"s{len(self)}", names[real], self.models)
                view.refresh()
                view.warm()
                self.append(view)
                added.append(view)
            return added


def open_views(paths: Sequence[str | Path], models: Sequence[str | Path] = ()) -> SearchViews:
    """A view per workdir found in `paths`, each read once; names are paths relative to the folder given.
    `models`: further folders where `nas export` wrote models (found by their export.json). The server calls
    `rescan()` on the list to show searches started below `paths` later."""
    for m in map(Path, models):
        if not m.is_dir():
            raise ConfigError(f"--models {m}: not a directory")
    views = SearchViews(paths, models)
    views.rescan(strict=True)
    return views


def distinct_names(names: dict[Path, str]) -> dict[Path, str]:
    """`names` (resolved workdir -> name), where workdirs that share a name (runs/a/seed0 and runs/b/seed0 given
    as paths) are named instead by the shortest end of their path that tells them apart (a/seed0, b/seed0)."""
    out = dict(names)
    for name in {n for n in names.values() if list(names.values()).count(n) > 1}:
        same = [p for p, n in names.items() if n == name]
        for p in same:
            for k in range(1, len(p.parts) + 1):
                if all(q.parts[-k:] != p.parts[-k:] for q in same if q != p):
                    break
            out[p] = str(Path(*p.parts[-k:]))
    return out


def compare_group(config: dict[str, Any]) -> str:
    """A digest of a journal header's space fingerprint and problem: `nas.compare` compares runs of one group only."""
    key = json.dumps([config.get("space"), config.get("problem")], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def default_compare(views: Sequence[SearchView]) -> list[SearchView]:
    """The searches the compare page picks at first: those readable of the largest compare group (ties: the one
    listed first), since runs of different spaces or objectives cannot be compared. The page does the same."""
    ok = [v for v in views if v.error is None and v.problem is not None and v.follower.config is not None]
    groups: dict[str, list[SearchView]] = {}
    for v in ok:
        groups.setdefault(compare_group(v.follower.config or {}), []).append(v)
    return max(groups.values(), key=len, default=[])


def compare_views(views: Sequence[SearchView], metric: str | None) -> dict[str, Any]:
    """`nas.compare` over these searches (grouped by strategy, each scored at the fewest evaluations any spent, by
    `metric`), as strict JSON (NaN as null), or {"error": why not}."""
    results = []
    for v in views:
        with v.lock:
            v.refresh()
            if v.error is None and v.problem is not None:
                results.append(v.result())
    try:
        answer = compare_searches(results, metric=metric).to_dict()
    except ConfigError as e:
        return {"error": str(e)}
    return _strict(answer)


def _strict(value: Any) -> Any:
    """NaN and infinity as null, through dicts and lists."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def check_views(views: Sequence[SearchView]) -> None:
    """A single workdir whose journal is damaged is an error before serving (a folder of many shows it)."""
    if len(views) == 1 and views[0].error is not None:
        raise JournalError(views[0].error)
