"""Edge cases of the dashboard, `nas report` and the plots: names with commas, bad ?poll=, NaN and infinite
metrics, one-objective searches, long architectures, crash remnants, replaced journals, output paths under a file,
workdirs sharing a name, a static report's clock and the timeline legend."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.console import given_path_text
from nas.dashboard.server import api
from nas.dashboard.static_report import write_report
from nas.dashboard.views import open_views
from nas.spaces import Choice, Space
from tests import test_dashboard


def small(workdir: Path, evaluate, objectives: dict[str, str], n: int = 8) -> nas.SearchResult:
    return nas.search(Space(x=Choice(list(range(n)))), evaluate, objectives, budget=n, seed=0, workdir=workdir)


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


serve, browser = test_dashboard.serve, test_dashboard.browser  # fixtures: a served folder, headless Chromium


# ------------------------------------------------------------------ the server and the views
def test_the_front_of_an_objective_whose_name_holds_a_comma_is_nas_pareto_s(tmp_path, serve) -> None:
    r = small(tmp_path / "w", lambda a: {"acc, top1": float(a["x"]), "cost": float(a["x"] % 3)},
              {"acc, top1": "max", "cost": "min"})
    url = serve([tmp_path / "w"])
    status, body = get(url + "api/search/s0/front?objectives=acc%2C%20top1,cost")  # what the page sends
    assert status == 200 and body["numbers"] == [t.number for t in r.pareto_front()], body


def nan_inf(a) -> dict[str, float]:
    return {"acc": float(a["x"]), "ratio": [float("inf"), -float("inf"), float("nan")][a["x"] % 3]}


def test_nan_and_infinite_metrics_reach_the_page_as_text_not_as_a_missing_value(tmp_path) -> None:
    r = small(tmp_path / "w", nan_inf, {"acc": "max"}, n=3)
    views = open_views([tmp_path / "w"])
    answers = {t.arch["x"]: api(views, f"/api/search/s0/trial/{t.number}", {}) for t in r.trials}
    assert {x: a["nonfinite"] for x, a in answers.items()} == {0: {"ratio": "inf"}, 1: {"ratio": "-inf"},
                                                               2: {"ratio": "NaN"}}
    assert all(a["metrics"]["ratio"] is None for a in answers.values())  # plots skip them; strict JSON holds them


def test_a_crash_s_torn_last_line_is_not_a_trial_being_written(tmp_path) -> None:
    small(tmp_path / "w", lambda a: {"acc": float(a["x"])}, {"acc": "max"}, n=4)
    journal = tmp_path / "w" / "journal.jsonl"
    journal.write_bytes(journal.read_bytes() + b'{"type": "trial", "number": 4, "arch_id": "ab')  # no lock held
    summary = api(open_views([tmp_path / "w"]), "/api/searches", {})[0]
    assert summary["still_writing"] is False and summary["state"] == "finished"


@pytest.mark.parametrize("partial", [40, 0])
def test_a_followed_journal_replaced_by_one_with_an_incomplete_header_answers_starting(tmp_path, partial) -> None:
    small(tmp_path / "w", lambda a: {"acc": float(a["x"])}, {"acc": "max"}, n=3)
    journal = tmp_path / "w" / "journal.jsonl"
    header = journal.read_bytes().split(b"\n")[0]
    views = open_views([tmp_path / "w"])
    assert api(views, "/api/search/s0", {"since": ["0"]})["trials"]
    os.replace(journal, tmp_path / "w" / "old.jsonl")
    journal.write_bytes(header[:partial] if partial else b"\n")  # copied non-atomically, or a blank line
    for path in ("/api/search/s0", "/api/search/s0/front", "/api/searches"):
        answer = api(views, path, {"since": ["3"]})
        summary = answer[0] if isinstance(answer, list) else answer["summary"]
        assert summary["state"] == "starting", summary
    os.replace(tmp_path / "w" / "old.jsonl", journal)  # the header complete again: the search comes back
    assert len(api(views, "/api/search/s0", {"since": ["0"]})["trials"]) == 3


def test_workdirs_sharing_a_name_get_names_that_tell_them_apart_and_one_given_twice_is_listed_once(tmp_path) -> None:
    for d in ("exp1/seed0", "exp2/seed0"):
        small(tmp_path / d, lambda a: {"acc": float(a["x"])}, {"acc": "max"}, n=2)
    views = open_views([tmp_path / "exp1/seed0", tmp_path / "exp2/seed0", tmp_path / "exp1/seed0"])
    assert [v.name for v in views] == ["exp1/seed0", "exp2/seed0"] and [v.key for v in views] == ["s0", "s1"]
    assert [v.name for v in open_views([tmp_path])] == ["exp1/seed0", "exp2/seed0"]  # found below: as before


# ------------------------------------------------------------------ the CLI's output paths
def test_an_output_path_under_a_file_names_the_flag_and_the_file(tmp_path) -> None:
    small(tmp_path / "w", lambda a: {"acc": float(a["x"]), "cost": float(a["x"] % 3)}, {"acc": "max", "cost": "min"})
    (tmp_path / "afile").write_text("x")
    for args, flag in ((["pareto", "--plot"], "--plot"), (["history", "--plot"], "--plot"),
                       (["report", "--out"], "--out")):
        for target in (tmp_path / "afile" / "p.png", tmp_path / "afile" / "deeper" / "p.png"):
            out = CliRunner().invoke(app, [args[0], str(tmp_path / "w"), args[1], str(target)], env={"COLUMNS": "400"})
            assert out.exit_code == 2, out.output
            assert f"error: {flag} {target}: {tmp_path / 'afile'} is a file, not a folder" in out.output, out.output


def test_an_empty_report_path_is_a_usage_error_and_a_folder_s_slash_is_kept(tmp_path, monkeypatch) -> None:
    with pytest.raises(typer.BadParameter, match="empty path"):
        given_path_text("")
    assert given_path_text("out/") == "out/"
    small(tmp_path / "w", lambda a: {"acc": float(a["x"])}, {"acc": "max"}, n=3)
    monkeypatch.chdir(tmp_path)
    refused = CliRunner().invoke(app, ["report", str(tmp_path / "w"), "--out", ""])  # it wrote ./report.html
    assert refused.exit_code == 2 and "empty path" in refused.output and not (tmp_path / "report.html").exists()
    written = CliRunner().invoke(app, ["report", str(tmp_path / "w"), "--out", "out/"])
    assert written.exit_code == 0 and (tmp_path / "out" / "report.html").is_file()


# ------------------------------------------------------------------ plots
def test_the_timeline_legend_does_not_cover_the_x_label_nor_widen_the_axis(tmp_path, monkeypatch) -> None:
    import nas.plot as plot

    def evaluate(a):
        if a["x"] == 1:
            raise RuntimeError("boom")
        return {"acc": float(a["x"])}

    r = small(tmp_path / "w", evaluate, {"acc": "max"}, n=10)
    saved = {}
    real = plot._save
    monkeypatch.setattr(plot, "_save", lambda fig, path: saved.setdefault("fig", fig) and real(fig, path))
    plot.plot_timeline(r, tmp_path / "t.png")
    fig = saved["fig"]
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    assert not ax.get_legend().get_window_extent(renderer).overlaps(ax.xaxis.label.get_window_extent(renderer))
    assert ax.get_xlim()[0] > -0.1 * ax.get_xlim()[1]  # from about 0 s (a margin), not -0.4 s
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["feasible (9)", "failed (1)"]


# ------------------------------------------------------------------ the page
def test_a_poll_value_that_is_not_a_positive_number_keeps_the_default_period(tmp_path, serve, browser) -> None:
    small(tmp_path / "w", lambda a: {"acc": float(a["x"])}, {"acc": "max"}, n=2)
    url = serve([tmp_path / "w"])
    for given, period in (("abc", 2000), ("0", 2000), ("-5", 2000), ("", 2000), ("50", 200), ("5000", 5000)):
        browser.goto(f"{url}?poll={given}#/s/s0")
        browser.wait_for_function("document.getElementById('progress-used')?.innerText.includes('/')")
        assert browser.evaluate("POLL_MS") == period, given


def test_the_page_shows_nonfinite_values_one_objective_without_a_front_and_wraps_long_hover_text(
        tmp_path, serve, browser) -> None:
    r = small(tmp_path / "one", nan_inf, {"acc": "max"}, n=3)
    layers = {f"layer_{i:02d}": Choice(["conv3x3_with_a_long_name", "depthwise_separable"]) for i in range(40)}
    nas.search(Space(**layers), lambda a: {"acc": float(sum(len(v) for v in a.values()) % 7),
                                           "cost": float(sum(len(v) for v in a.values()) % 5)},
               {"acc": "max", "cost": "min"}, budget=12, seed=0, workdir=tmp_path / "long")
    url = serve([tmp_path / "one", tmp_path / "long"])
    # NaN and +-inf: shown as such on the trial page and in the table, not as an empty cell
    by_x = {t.arch["x"]: t.number for t in r.trials}
    for x, text in ((0, "inf"), (1, "−inf"), (2, "NaN")):
        browser.goto(f"{url}#/s/s0/trial/{by_x[x]}")
        browser.wait_for_selector("#trial-metrics")
        rows = dict(browser.evaluate("[...document.querySelectorAll('#trial-metrics tr')].map(tr => "
                                     "[tr.cells[0].innerText, tr.cells[1].innerText])"))
        assert rows["ratio"] == text, rows
    # one objective: no 2-D front over another metric; "on the front" lists what the best card counts
    browser.goto(f"{url}#/s/s0")
    browser.wait_for_function("document.getElementById('front-note').innerText.includes('one objective')")
    assert browser.evaluate("document.getElementById('front-plot').data.length") == 0
    browser.select_option("#status-filter", "front")
    browser.wait_for_function("document.getElementById('table-count').innerText.startsWith('1 of 1')")
    assert "Pareto front: 1 trials" in browser.locator("#best").inner_text()
    browser.select_option("#status-filter", "all")
    table = browser.evaluate("[...document.querySelectorAll('#trials tbody tr')].map(tr => tr.innerText)")
    assert sum(("\tinf\t" in t) + ("\t−inf\t" in t) + ("\tNaN\t" in t) for t in table) == 3, table
    # a 40-layer architecture: every hover line of every trace is at most 80 characters of architecture
    browser.goto(f"{url}#/s/s1")
    browser.wait_for_function("(document.getElementById('front-plot').data || []).length > 0")
    lengths = browser.evaluate("""document.getElementById('front-plot').data.flatMap(t => t.text || [])
        .flatMap(s => s.split('<br>')).map(line => {
          const box = document.createElement('textarea');  // the text as shown, entities decoded
          box.innerHTML = line.replace(/<\\/?b>/g, '');
          return box.value.length; })""")
    assert lengths and max(lengths) <= 80, max(lengths)


def test_a_static_report_measures_durations_to_the_time_it_was_written(tmp_path, browser) -> None:
    small(tmp_path / "w", lambda a: {"acc": float(a["x"])}, {"acc": "max"}, n=2)
    report = write_report(open_views([tmp_path / "w"]), tmp_path / "r.html")
    browser.goto(report.as_uri())
    browser.wait_for_function("document.getElementById('progress-used').innerText.includes('/')")
    assert browser.evaluate("typeof NAS_SNAPSHOT === 'number' && now() === NAS_SNAPSHOT")
    assert "snapshot of" in browser.locator("#mode").inner_text()
