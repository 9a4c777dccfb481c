"""The dashboard and reporting audit (session 23): a replaced journal, the rate after a resume, simulated-clock
dates, infeasible counts, objective names with ':', the hypervolume curve with 4+ objectives, one clock in
`nas status`, and an out-of-range --port. Each test failed on the code before the fix."""

from __future__ import annotations

import fcntl
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import nas
from nas import pareto
from nas.cli import app
from nas.dashboard.server import api, make_server
from nas.dashboard.views import HypervolumeCurve, open_views
from nas.errors import ConfigError
from nas.pareto import hypervolume, pareto_mask
from nas.result import SearchResult
from nas.spaces import Choice, Integer, Space
from nas.store import LOCK, Journal, JournalWriter, Trial

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import dashboard_search  # noqa: E402
import test_dashboard  # noqa: E402

serve, browser = test_dashboard.serve, test_dashboard.browser  # fixtures: a served folder, headless Chromium

PROBLEM = {"objectives": {"acc": "max", "cost": "min"}, "constraints": []}


def search(workdir: Path, budget: int, seed: int = 0, constraints: tuple[str, ...] = ("cost <= 400",)) -> SearchResult:
    return nas.search(dashboard_search.SPACE, dashboard_search.evaluate, objectives={"acc": "max", "cost": "min"},
                      constraints=list(constraints), strategy="nsga2", budget=budget, seed=seed, workdir=workdir)


def simulated(workdir: Path) -> SearchResult:
    """A SimulatedClockExecutor replay: trial times are simulated seconds from 0 on workers sim-0, sim-1."""
    return nas.search(Space(x=Integer(0, 9)), lambda a: {"v": float(a["x"]), "c": 10.0 - a["x"], "secs": 10.0 + a["x"]},
                      {"v": "max", "c": "min"}, budget=6, seed=0, workdir=workdir,
                      executor=nas.SimulatedClockExecutor(workers=2, duration="secs"))


# ------------------------------------------------------------------ 1. a replaced journal
def test_a_replaced_journal_gets_a_new_identity_even_when_it_holds_more_trials(tmp_path) -> None:
    wd = tmp_path / "w"
    search(wd, 30)
    views = open_views([wd])
    first = api(views, "/api/search/s0", {"since": ["0"]})
    assert len(first["trials"]) == 30 and first["summary"]["journal_id"]
    again = api(views, "/api/search/s0", {"since": ["30"]})
    assert again["summary"]["journal_id"] == first["summary"]["journal_id"] and again["trials"] == []
    os.replace(wd, tmp_path / "w.previous")  # what `nas run --fresh` does, then a fresh search with another seed
    fresh = search(wd, 80, seed=1)
    after = api(views, "/api/search/s0", {"since": ["30"]})
    assert after["summary"]["trials"] == 80  # more than the page holds: a shrinking count cannot tell
    assert after["summary"]["journal_id"] != first["summary"]["journal_id"]
    rows = api(views, "/api/search/s0", {"since": ["0"]})["trials"]
    assert [r["arch_id"] for r in rows] == [t.arch_id for t in fresh.trials]


def test_a_journal_replaced_in_the_same_file_is_read_anew(tmp_path) -> None:
    """A search deleted and run again may get the old file's inode back (ext4 reuses it at once): the follower
    kept its byte offset and read the new journal from the middle ('corrupt journal line', or the new trials
    appended to the old rows). Here the file is rewritten in place, so the inode is the same for certain."""
    wd = tmp_path / "w"
    search(wd, 20)
    views = open_views([wd])
    first = api(views, "/api/search/s0", {"since": ["0"]})
    path = wd / "journal.jsonl"
    inode = path.stat().st_ino
    os.replace(wd, tmp_path / "other")
    fresh = search(wd, 25, seed=1)
    text = (wd / "journal.jsonl").read_bytes()
    os.replace(tmp_path / "other", tmp_path / "w.old")
    with open(tmp_path / "w.old" / "journal.jsonl", "r+b") as f:  # the old file, its inode, now the fresh content
        f.truncate(0)
        f.write(text)
    os.replace(tmp_path / "w.old" / "journal.jsonl", path)
    assert path.stat().st_ino == inode and len(text) > 0
    after = api(views, "/api/search/s0", {"since": ["0"]})
    assert after["summary"]["journal_id"] != first["summary"]["journal_id"]
    assert [r["arch_id"] for r in after["trials"]] == [t.arch_id for t in fresh.trials]


@pytest.mark.timeout(300)
def test_the_page_drops_the_rows_of_a_replaced_search(tmp_path, serve, browser) -> None:
    runs = tmp_path / "runs"
    search(runs / "a", 30)
    url = serve([runs / "a"])
    browser.goto(url + "?poll=300#/s/s0")
    browser.wait_for_function("document.getElementById('progress-used').innerText.startsWith('30 /')")
    search(tmp_path / "fresh", 80, seed=1)
    os.replace(runs / "a", tmp_path / "a.previous")
    os.replace(tmp_path / "fresh", runs / "a")
    browser.wait_for_function("document.getElementById('progress-used').innerText.startsWith('80 /')", timeout=60_000)
    browser.wait_for_function("data.s0.rows.length === 80 && document.getElementById('front-plot').data")
    journal = {t.number: t for t in SearchResult.load(runs / "a").trials}
    rows = browser.evaluate("data.s0.rows.map(r => [r.number, r.arch_id])")
    assert [a for _, a in rows] == [journal[n].arch_id for n, _ in rows] == [t.arch_id for t in journal.values()]
    drawn = browser.evaluate("""() => { const t = document.getElementById('front-plot').data
        .find(t => t.name.startsWith('Pareto front')); return t.customdata.map((n, i) => [n, t.x[i], t.y[i]]); }""")
    assert drawn and all([x, y] == [journal[n].metrics["acc"], journal[n].metrics["cost"]] for n, x, y in drawn)


def test_a_last_record_completed_by_the_next_writer_is_not_taken_for_a_replaced_journal(tmp_path) -> None:
    """A search killed after a record but before its newline: the next writer adds the newline, and the reader
    steps over it. Its check of the bytes it had parsed must step with it (it read anew, dropping the rows)."""
    from nas.store import JournalFollower

    wd = tmp_path / "w"
    search(wd, 5)
    path = wd / "journal.jsonl"
    text = path.read_bytes()
    path.write_bytes(text[:-1])  # the last record without its newline
    follower = JournalFollower(Journal(wd))
    assert follower.poll() is False and len(follower.trials) == 5
    with open(path, "ab") as f:
        f.write(b"\n")
    assert [follower.poll(), follower.poll(), follower.poll()] == [False, False, False]
    assert len(follower.trials) == 5


@pytest.mark.timeout(300)
def test_the_page_of_a_search_still_writing_its_header_says_it_is_starting(tmp_path, serve, browser) -> None:
    """It drew the axes from a summary without objectives: 'Cannot read properties of undefined' in the error box."""
    wd = tmp_path / "w"
    wd.mkdir()
    (wd / "journal.jsonl").write_text('{"type": "header", "schema": 1, "config": {"space": ')  # torn header
    browser.goto(serve([wd]) + "?poll=200#/s/s0")
    browser.wait_for_function("document.getElementById('progress-detail').innerText.includes('starting')")
    browser.wait_for_timeout(600)  # a few polls
    assert browser.locator("#page-error").inner_text() == ""


# ------------------------------------------------------------------ 2. rate and ETA after a resume
def test_rate_and_eta_after_a_resume_count_only_the_running_run(tmp_path) -> None:
    wd = tmp_path / "w"
    config = {"budget": 400, "problem": PROBLEM, "strategy": "random", "seed": 0}
    day_ago = time.time() - 86400  # the first run: 60 evaluations of 0.05 s, a day ago
    with JournalWriter(wd) as writer:
        writer.create(config)
        for n in range(60):
            t0 = day_ago + 0.05 * n
            writer.append(Trial(n, {"x": n}, f"id{n}", {"acc": float(n), "cost": 1.0}, "ok", t0, t0 + 0.05, "local-1"))
        writer.append_end("max_time")
    with JournalWriter(wd) as writer:  # resumed now, still running (it holds the lock): 12 evaluations so far
        writer.append_resume(400)
        now = time.time()
        for n in range(60, 72):
            t0 = now + 0.05 * (n - 60)
            writer.append(Trial(n, {"x": n}, f"id{n}", {"acc": float(n), "cost": 1.0}, "ok", t0, t0 + 0.05, "local-2"))
        (view,) = open_views([wd])
        summary = view.summary()
    assert summary["running"] and summary["used"] == 72
    assert summary["rate_per_min"] == pytest.approx(60 / 0.05, rel=0.01)  # 12 evaluations in 0.6 s
    assert summary["eta_s"] == pytest.approx(328 * 0.05, rel=0.01)  # not a day: the pause is not a slow evaluation


# ------------------------------------------------------------------ 3. simulated-clock dates
def test_a_simulated_clock_search_shows_simulated_seconds_not_1970_dates(tmp_path) -> None:
    result = simulated(tmp_path / "sim")
    (view,) = open_views([tmp_path / "sim"])
    s = view.summary()
    assert s["first"] is None and s["last"] is None  # no wall-clock trial: no dates at all
    assert s["simulated"] == {"trials": 6, "workers": 2, "from": 0.0, "to": max(t.finished for t in result.trials)}
    assert s["rate_clock"] == "simulated" and s["eta_s"] is None
    assert view.trial(0)["worker"].startswith("sim-")  # the page shows its times as simulated seconds
    mixed = tmp_path / "mixed"  # a cheap constraint's rejections are journaled on the wall clock
    nas.search(Space(x=Integer(0, 9)), [nas.cheap(lambda a: {"k": float(a["x"])}), lambda a: {"v": float(a["x"]),
               "secs": 5.0}], {"v": "max"}, ["k <= 4"], budget=3, seed=0, workdir=mixed,
               executor=nas.SimulatedClockExecutor(duration="secs"))
    (view,) = open_views([mixed])
    s = view.summary()
    assert s["simulated"]["trials"] == 3 and s["first"] > 1e9 and s["last"] > 1e9  # dates of wall-clock trials only


# ------------------------------------------------------------------ 4. infeasible counts
def test_constraint_violators_count_as_infeasible_in_status_and_the_dashboard(tmp_path) -> None:
    wd = tmp_path / "w"
    result = search(wd, 12, constraints=("cost <= 1",))  # every evaluated trial breaks it
    ok = sum(t.status == "ok" for t in result.trials)
    failed = sum(t.status == "failed" for t in result.trials)
    assert ok > 0 and not result.feasible
    out = CliRunner().invoke(app, ["status", str(wd)], env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    assert (f"12 in the journal: {ok} ok, {failed} failed, 0 rejected by a cheap constraint; 0 feasible, {ok} "
            f"infeasible ({ok} evaluated, 0 rejected)") in out.stdout, out.stdout
    (view,) = open_views([wd])
    s = view.summary()
    assert s["counts"]["infeasible"] == ok and s["counts"]["violating"] == ok and s["feasible"] == 0
    assert sum(r["outcome"] == "infeasible" for r in view.rows) == ok  # what the page's "infeasible" filter lists
    counts = result.counts()
    assert (counts.feasible, counts.infeasible, counts.violating, counts.rejected) == (0, ok, ok, 0)
    assert counts.failed == failed


def test_cheap_rejections_and_evaluated_violators_are_both_infeasible(tmp_path) -> None:
    wd = tmp_path / "w"
    nas.search(Space(x=Integer(0, 9), y=Integer(0, 9)), [nas.cheap(lambda a: {"k": float(a["x"])}),
               lambda a: {"v": float(a["x"] + a["y"]), "lat": float(a["y"])}], {"v": "max"}, ["k <= 6", "lat <= 5"],
               budget=20, seed=0, workdir=wd)
    result = nas.load(wd)
    counts = result.counts()
    rejected = sum(t.status == "infeasible" for t in result.trials)
    violating = sum(t.status == "ok" and t.metrics["lat"] > 5 for t in result.trials)
    assert rejected > 0 and violating > 0
    assert (counts.rejected, counts.violating, counts.infeasible) == (rejected, violating, rejected + violating)
    assert counts.feasible == len(result.feasible)
    (view,) = open_views([wd])
    assert view.summary()["counts"]["infeasible"] == rejected + violating


@pytest.mark.timeout(300)
def test_the_page_counts_filters_and_draws_infeasible_trials_alike(tmp_path, serve, browser) -> None:
    runs = tmp_path / "runs"
    result = search(runs / "infeasible", 12, constraints=("cost <= 1",))
    ok = sum(t.status == "ok" for t in result.trials)
    simulated(runs / "sim")
    url = serve([runs])
    browser.goto(url + "?poll=300#/s/s0")
    browser.wait_for_function("document.getElementById('front-plot').data"
                              " && document.getElementById('trials').tBodies[0].rows.length")
    progress = browser.locator("#progress-detail").inner_text()
    assert f"0 feasible, {ok} infeasible ({ok} evaluated, 0 rejected)" in progress, progress
    legend = browser.evaluate("document.getElementById('front-plot').data.map(t => t.name)")
    assert f"infeasible ({ok})" in legend, legend
    browser.select_option("#status-filter", "infeasible")
    assert browser.locator("#table-count").inner_text().startswith(f"{ok} of {ok} shown")
    browser.goto(url + "?poll=300#/s/s1")  # the simulated-clock replay
    browser.wait_for_function("document.getElementById('simulated-clock')")
    about, progress = browser.locator("#about").inner_text(), browser.locator("#progress-detail").inner_text()
    assert "1970" not in about and "no wall-clock dates" in about and "/ simulated min" in progress, (about, progress)
    browser.goto(url + "#/s/s1/trial/0")
    browser.wait_for_selector("#trial-title")
    trial = browser.locator("#trial").inner_text()
    assert "simulated clock" in trial and "1970" not in trial, trial


# ------------------------------------------------------------------ 5. objective names with ':'
def test_an_objective_named_with_a_colon_is_readable_everywhere(tmp_path) -> None:
    wd = tmp_path / "w"
    space = Space(a=Choice([1, 2, 3, 4, 5]), b=Choice([1, 2, 3, 4]))
    fn = lambda arch: {"val:acc": arch["a"] * 10.0 + arch["b"], "latency_ms": arch["a"] + arch["b"] * 2.0,  # noqa: E731
                       "params": float(arch["b"])}
    result = nas.search(space, fn, objectives={"val:acc": "max", "latency_ms": "min"}, strategy="random", budget=12,
                        seed=1, workdir=wd)
    best = result.best("val:acc")
    assert best is not None and best.metrics["val:acc"] == max(t.metrics["val:acc"] for t in result.trials)
    assert result.objective("val:acc").direction == "max"
    assert result.objective("val:acc:min").name == "val:acc"  # NAME:direction still parses, colon in NAME or not
    assert result.objective("params:max").name == "params" and result.objective("latency_ms:max").direction == "max"
    with pytest.raises(ConfigError, match="the direction after ':' must be min or max, got 'acc'"):
        result.objective("top1:acc")
    runner = CliRunner()
    for args in (["status", str(wd)], ["pareto", str(wd), "--objectives", "val:acc,params:min"],
                 ["history", str(wd), "--plot", str(tmp_path / "h.png")],
                 ["report", str(wd), "--out", str(tmp_path / "r.html")]):
        out = runner.invoke(app, args, env={"COLUMNS": "300"})
        assert out.exit_code == 0, (args, out.output)
    assert re.search(rf"best val:acc\s+{best.metrics['val:acc']:g} \(trial {best.number}\)",
                     runner.invoke(app, ["status", str(wd)], env={"COLUMNS": "300"}).stdout)
    (view,) = open_views([wd])
    assert view.error is None and view.summary()["best"]["val:acc"]["trial"] == best.number
    assert view.front(["val:acc", "latency_ms"])["numbers"] == [t.number for t in result.pareto_front()]


# ------------------------------------------------------------------ 6. hypervolume with 4+ objectives
def four_objectives(n: int, seed: int = 0) -> np.ndarray:
    """Minimised (1 - accuracy, latency, params, energy) of `n` architectures with trade-offs between them."""
    c = np.random.default_rng(seed).random((n, 3))
    acc = 0.5 + 0.2 * c[:, 0] + 0.2 * c[:, 1] + 0.1 * c[:, 2]
    return np.column_stack([1 - acc, c[:, 0] + 0.3 * c[:, 1], c[:, 1] + 0.2 * c[:, 2], c[:, 2] + 0.5 * c[:, 0]])


def test_hypervolume_by_library_and_by_tracker_agree_with_exact_slicing(monkeypatch) -> None:
    from nas.pareto import HypervolumeTracker

    rng = np.random.default_rng(3)
    cases = []
    for case in range(120):
        d, n = int(rng.integers(2, 6)), int(rng.integers(1, 30))
        pts = rng.integers(0, 5, size=(n, d)).astype(float) if case % 2 else rng.random((n, d))  # ties, duplicates
        cases.append((pts, np.full(d, 4.5 if case % 2 else 1.0)))  # some points on or beyond the reference
    fast = [hypervolume(p, r) for p, r in cases]
    tracked = []
    for p, r in cases:
        tracker = HypervolumeTracker(r)
        steps = tracker.extend(p)
        assert steps[-1] == tracker.volume
        k = len(p) // 2  # the volume after each row is the hypervolume of the rows so far
        assert steps[k] == pytest.approx(hypervolume(p[: k + 1], r), rel=1e-9, abs=1e-12)
        tracked.append(tracker.volume)
    monkeypatch.setattr(pareto, "_wfg", lambda: None)  # the slicing every dimension used before
    exact = [hypervolume(p, r) for p, r in cases]
    np.testing.assert_allclose(fast, exact, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tracked, exact, rtol=1e-9, atol=1e-12)


def test_monte_carlo_hypervolume_is_within_its_stated_error_and_repeatable() -> None:
    from nas.pareto import MonteCarloHypervolume

    rng = np.random.default_rng(5)
    for _ in range(5):
        pts = rng.random((40, 5))
        ref, lo = np.full(5, 1.1), pts.min(axis=0)
        mc = MonteCarloHypervolume(ref, lo, samples=1 << 15)
        mc.extend(pts)
        exact = hypervolume(pts, ref)
        assert abs(mc.volume - exact) <= 4 * mc.error and 0 < mc.error < 0.02 * exact
        again = MonteCarloHypervolume(ref, lo, samples=1 << 15)
        again.extend(pts)
        assert again.volume == mc.volume


def test_the_hypervolume_curve_is_extended_not_recomputed() -> None:
    pts = four_objectives(600)
    curve = HypervolumeCurve()
    first = curve.update(pts[:500], list(range(1, 501)))
    on_front = pareto_mask(pts[:500]).sum()
    # one hypervolume per trial that entered the front as it arrived (no more than the trials, at least the front)
    assert on_front <= curve.evaluations <= 500
    ref = curve.reference.copy()
    inside = pts[500:][np.all((pts[500:] > pts[:500].min(axis=0)) & (pts[500:] < pts[:500].max(axis=0)), axis=1)]
    more = np.vstack([pts[:500], inside])  # new trials inside the range seen: the reference stays
    before = curve.evaluations
    last = curve.update(more, list(range(1, len(more) + 1)))
    assert np.array_equal(curve.reference, ref) and curve.evaluations - before <= len(inside)
    assert last[: len(first) - 1] == first[:-1]  # the earlier curve is kept, not recomputed
    assert last[-1][1] == pytest.approx(hypervolume(more, ref), rel=1e-9)
    assert all(a[1] <= b[1] for a, b in zip(last, last[1:])) and len(last) <= HypervolumeCurve.POINTS + 1


def test_four_objective_dashboard_history_costs_a_few_hypervolumes_not_one_per_point(tmp_path) -> None:
    """The page's first load on 400 trials with 4 objectives: the curve costs a small multiple of one exact
    hypervolume of the final front (measured here, on this machine), not one per curve point (~200x)."""
    pts = four_objectives(400, seed=1)
    names = ["err", "lat", "params", "energy"]
    wd = tmp_path / "w"
    with JournalWriter(wd) as writer:
        writer.create({"budget": 400, "problem": {"objectives": dict.fromkeys(names, "min"), "constraints": []}})
        for n, p in enumerate(pts):
            writer.append(Trial(n, {"x": n}, f"id{n}", dict(zip(names, map(float, p))), "ok", 1e9 + n, 1e9 + n + 1))
    views: list = []
    first_load = _seconds(lambda: views.extend(open_views([wd])))  # reads and warms: summary, history, front
    history = views[0].history()
    ref = history["reference"]  # every objective minimised: the reference as the curve used it
    baseline = min(_seconds(lambda: hypervolume(pts, ref)) for _ in range(3))
    assert history["hypervolume"][-1][1] == pytest.approx(hypervolume(pts, ref), rel=1e-9)
    assert first_load < 25 * baseline + 0.5, (first_load, baseline)


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------ 7. one clock in nas status
@pytest.fixture
def zone(monkeypatch):
    """Set this process's time zone (TZ + tzset); the original is restored after the test."""
    def set_zone(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


def test_status_shows_every_time_in_the_readers_zone_labelled(tmp_path, zone) -> None:
    wd = tmp_path / "w"
    search(wd, 4)
    zone("America/New_York")  # the search runs in New York ...
    before = time.time()
    with JournalWriter(wd):
        after = time.time()
        zone("UTC")  # ... and is read in UTC
        out = CliRunner().invoke(app, ["status", str(wd)], env={"COLUMNS": "300"}).stdout
        (view,) = open_views([wd])
        summary = view.summary()
    since = re.search(r"running \(pid \d+ on \S+ since (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\)", out)
    assert since, out
    at = datetime.strptime(since.group(1) + "+0000", "%Y-%m-%d %H:%M:%S%z").timestamp()
    assert before - 1 <= at <= after + 1  # one instant, not New York's wall time read as UTC
    assert re.search(r"first trial\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", out), out
    assert before - 1 <= summary["running_since"] <= after + 1 and " since " not in summary["state"]


def test_a_lock_written_before_zones_were_recorded_still_reads(tmp_path) -> None:
    wd = tmp_path / "w"
    search(wd, 3)
    fd = os.open(wd / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:  # what an older version wrote: a local time without its zone
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"pid 4242 on oldhost since 2026-12-05 23:23:45\n", 0)
        out = CliRunner().invoke(app, ["status", str(wd)], env={"COLUMNS": "300"}).stdout
        (view,) = open_views([wd])
        summary = view.summary()
    finally:
        os.close(fd)
    assert "running (pid 4242 on oldhost since 2026-12-05 23:23:45, the search machine's local time)" in out, out
    assert summary["running"] and summary["running_since"] is None and "23:23:45" in summary["state"]
    assert Journal(wd).writer() is None


# ------------------------------------------------------------------ 8. --port out of range
def test_a_port_out_of_range_is_one_error_line(tmp_path) -> None:
    search(tmp_path / "w", 3)
    for port in ("99999", "-1", "65536"):
        out = CliRunner().invoke(app, ["dashboard", str(tmp_path / "w"), "--port", port])
        assert out.exit_code == 2, out.output
        assert out.stderr.strip().splitlines() == [f"error: --port {port}: must be 1..65535 (or 0 for any free port)"]
    with pytest.raises(ConfigError, match="--port 70000: must be 1..65535"):
        make_server([], port=70000)


def test_the_end_of_run_summary_counts_evaluated_violators_as_infeasible() -> None:
    """`nas run`'s summary counted only cheap-stage rejections: 10 of 10 trials breaking `lat <= 0.5` read as none."""
    from rich.console import Console

    from nas.report import summary
    from nas.spaces import Choice, Space

    space = Space(a=Choice([1, 2, 3, 4]), b=Choice([1, 2, 3]))
    result = nas.search(space, lambda arch: {"acc": float(arch["a"] * arch["b"]), "lat": 1.0 + arch["a"]},
                        {"acc": "max"}, constraints=["lat <= 0.5"], budget=10, seed=0)
    console = Console(record=True, width=200)
    summary(console, result, 1.0)
    assert "(10 infeasible)" in console.export_text()
