"""Edge cases of the dashboard, `nas report` and the plots (session 38): a hypervolume a float cannot hold, the
parallel-coordinates axes of a huge or tiny metric, pruned trials in the page's counts, and huge or tiny values
printed in 4 significant digits by `nas.report.fmt` and the page's `fmt`."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.dashboard.server import api, to_json
from nas.dashboard.static_report import responses, script_json
from nas.dashboard.views import HypervolumeCurve, open_views
from nas.plot import parallel_axes
from nas.report import fmt
from nas.spaces import Choice, Repeat, Space
from tests import test_dashboard

serve, browser = test_dashboard.serve, test_dashboard.browser  # fixtures: a served folder, headless Chromium

GRID = Space(a=Choice([0, 1, 2, 3]), b=Choice([0, 1, 2, 3]))


def huge_search(workdir: Path, scale: float, gain_scale: float | None = None, centre: float = -1.0
                ) -> nas.SearchResult:
    """Two objectives of about `scale` (finite, so the search accepts them): gain = (a - centre) * gain_scale."""
    return nas.search(GRID, lambda x: {"gain": (x["a"] - centre) * (gain_scale or scale), "cost": (x["b"] + 1) * scale},
                      {"gain": "max", "cost": "min"}, strategy="random", budget=12, seed=0, workdir=workdir,
                      progress=False)


def pruned_search(workdir: Path) -> nas.SearchResult:
    """The README's pruning example: a median pruner stops about half of 20 trainings early."""
    space = Space(depth=Choice([2, 3, 4]), blocks=Repeat(count="depth", kernel=Choice([3, 5, 7]),
                                                         expand=Choice([3, 4, 6])),
                  resolution=Choice([128, 160, 192]))

    def train(arch):
        quality = 0.4 + sum(b["kernel"] * b["expand"] for b in arch["blocks"]) / 300
        for epoch in range(8):
            acc = quality * (1 - 0.5 ** (epoch + 1))
            nas.report_metrics({"accuracy": acc, "latency_ms": 2.0 * arch["depth"]})
        return {"accuracy": acc, "latency_ms": 2.0 * arch["depth"]}

    return nas.search(space, evaluate=train, objectives={"accuracy": "max", "latency_ms": "min"}, budget=20, seed=4,
                      pruner="median", workdir=workdir, progress=False)


# ------------------------------------------------------------------ 1. a hypervolume a float cannot hold
@pytest.mark.parametrize("scale, gain_scale, centre", [
    (1e200, None, -1.0),  # 1e200 x 1e200: the volume overflows
    (1.0, 1e308 / 1.5, 1.5),  # gain from -1e308 to 1e308: its range overflows, the reference point does not
    (1.0, 1e308, 1.5)])  # gain from -1.5e308 to 1.5e308: the reference point (plus a tenth of the range) overflows
def test_a_hypervolume_beyond_a_float_is_left_out_with_a_note_and_the_answer_stays_strict_json(
        tmp_path, scale, gain_scale, centre) -> None:
    huge_search(tmp_path / "w", scale, gain_scale, centre)
    views = open_views([tmp_path / "w"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # handled, not leaked as numpy's overflow warnings
        answer = api(views, "/api/search/s0", {"since": ["0"]})
    history = answer["history"]
    sent = json.loads(to_json(answer))  # what GET /api/search/s0 sends: strict JSON, no 400
    assert sent["history"] == json.loads(json.dumps(history)) and sent["summary"]["pareto_size"] >= 1
    assert all(v is None or math.isfinite(v) for _, v in history["hypervolume"])
    assert all(v is None or math.isfinite(v) for v in history["reference"] or [])
    assert "too large for a float" in history["hypervolume_note"], history
    assert json.loads(script_json(responses(views)))  # the static report's data
    out = CliRunner().invoke(app, ["report", str(tmp_path / "w"), "--out", str(tmp_path / "r.html")])
    assert out.exit_code == 0 and (tmp_path / "r.html").exists(), out.output


def test_a_curve_that_overflows_part_way_keeps_its_finite_start_and_says_from_where() -> None:
    curve = HypervolumeCurve()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        points = curve.update(np.array([[1.3e154, 1.3e154], [0.0, 0.0], [1e153, 1e153]]), [1, 2, 3])
    assert points == [(1, pytest.approx(1.69e306)), (2, None)]  # the reference is 1.43e154 on both objectives
    assert curve.note is not None and "from evaluation 2 on" in curve.note


def test_an_ordinary_hypervolume_curve_has_no_note_and_equals_the_result_s(tmp_path) -> None:
    r = huge_search(tmp_path / "w", 1.0)
    history = open_views([tmp_path / "w"])[0].history()
    assert history["hypervolume_note"] is None and history["hypervolume"]
    assert history["hypervolume"][-1][1] == pytest.approx(r.hypervolume(history["reference"]))


# ------------------------------------------------------------------ 2. parallel axes of a huge or tiny metric
def test_parallel_axes_do_not_depend_on_the_metric_s_scale(tmp_path) -> None:
    space = Space(**{f"d{i}": Choice([0, 1, 2]) for i in range(14)})

    def fn(a):
        v = 1.0 + 5 * a["d13"] + 2 * a["d12"] + 0.01 * a["d0"]
        return {"small": v, "huge": v * 1e300, "tiny": v * 1e-300}

    r = nas.search(space, fn, {"small": "min", "huge": "min", "tiny": "min"}, strategy="random", budget=60, seed=0,
                   workdir=tmp_path / "w", progress=False)
    small = parallel_axes(r, "small").decisions
    assert small[:2] == ["d13", "d12"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert parallel_axes(r, "huge").decisions == small
        assert parallel_axes(r, "tiny").decisions == small


# ------------------------------------------------------------------ 3. pruned trials in the page's counts
def test_the_summary_counts_every_trial_as_nas_status_does_pruned_included(tmp_path) -> None:
    r = pruned_search(tmp_path / "w")
    counts = r.counts()
    pruned = counts.other.get("pruned", 0)
    assert pruned > 0
    c = api(open_views([tmp_path / "w"]), "/api/searches", {})[0]["counts"]
    assert c["pruned"] == pruned and c["other"] == {}
    assert c["ok"] == counts.feasible + counts.violating + pruned  # the "N ok" of `nas status`
    assert c["feasible"] + c["infeasible"] + c["failed"] + c["pruned"] + sum(c["other"].values()) == len(r.trials)
    assert c["ok"] + c["failed"] + c["rejected"] + sum(c["other"].values()) == len(r.trials)


# ------------------------------------------------------------------ 4. huge and tiny values
def test_fmt_writes_huge_and_tiny_values_in_4_significant_digits() -> None:
    assert fmt(7.3125e300) == "7.312e+300" and fmt(-7.3125e300) == "-7.312e+300"
    assert fmt(1.5e16) == "1.5e+16" and fmt(10 ** 20) == "1e+20" and fmt(1.23456e-7) == "1.235e-07"
    assert fmt(123456.789) == "123,456.8" and fmt(15000) == "15,000" and fmt(0.5) == "0.5"  # as before
    assert fmt(999_999_999_999_999.0) == "999,999,999,999,999"  # below 1e15: still every digit, exact


# ------------------------------------------------------------------ the page
FMT_VALUES = [7.3125e300, -7.3125e300, 1.5e16, 2.5e15, 1.23456e-7, 1e-5, 0.0001, 123456.789, 15000, 0.5, 0, 42,
              -3.14159, 999_999_999_999_999.0]


def test_the_page_formats_as_fmt_counts_pruned_trials_and_notes_an_unrepresentable_hypervolume(
        tmp_path, serve, browser) -> None:
    counts = pruned_search(tmp_path / "runs" / "pruned").counts()
    huge_search(tmp_path / "runs" / "huge", 1e150)  # a best value of 4e150: 4 significant digits on the page
    huge_search(tmp_path / "runs" / "huge2", 1e200)
    url = serve([tmp_path / "runs"])  # s0 huge, s1 huge2, s2 pruned
    browser.goto(f"{url}#/s/s0")
    browser.wait_for_function("document.getElementById('progress-used')?.innerText.includes('/')")
    assert browser.evaluate(f"{json.dumps(FMT_VALUES)}.map(fmt)") == [fmt(v) for v in FMT_VALUES]
    best = browser.locator("#best").inner_text()
    assert "4e+150" in best and "1e+150" in best and len(best) < 200, best
    browser.goto(f"{url}#/s/s1")  # the 1e200 search: the page shows, its hypervolume chart says why it is empty
    browser.wait_for_function("(document.getElementById('hv-plot').layout || {}).title !== undefined")
    title = browser.evaluate("document.getElementById('hv-plot').layout.title.text")
    assert "too large for a float" in title, title
    assert browser.locator("#page-error").inner_text() == ""
    browser.goto(f"{url}#/s/s2")
    browser.wait_for_function("document.getElementById('progress-counts')?.innerText.includes('pruned')")
    text = " ".join(browser.locator("#progress-counts").inner_text().split())
    pruned = counts.other["pruned"]
    assert (f"20 trials: 20 ok, 0 failed, 0 rejected by a cheap constraint; {counts.feasible} feasible, "
            f"0 infeasible; {pruned} pruned") in text, text
