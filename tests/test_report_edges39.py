"""`nas report` of a large workdir (session 39): the architecture drawings are bounded to an evenly spaced subset of
each front (a 13,000-trial front drew one matplotlib SVG per trial for minutes), and the export folders are looked
for once per search, not once per trial."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nas
from nas.dashboard import static_report, views
from nas.dashboard.static_report import responses, write_report
from nas.dashboard.views import open_views
from nas.spaces import Choice, Space
from tests import test_dashboard

browser = test_dashboard.browser  # fixture: headless Chromium (skipped without one)

N = 42  # x = 0..41, each once; x = 41 fails, so the front is the 41 others (acc = cost = x: all a trade-off)
CAP = 5  # 41 front trials, 5 drawings: every 10th along the front, both ends kept


def long_front(workdir: Path) -> nas.SearchResult:
    def evaluate(arch):
        if arch["x"] == N - 1:
            raise RuntimeError("this one fails")
        return {"acc": float(arch["x"]), "cost": float(arch["x"])}

    return nas.search(Space(x=Choice(list(range(N)))), evaluate, {"acc": "max", "cost": "min"}, budget=N, seed=0,
                      workdir=workdir, progress=False)


@pytest.fixture
def drawn(monkeypatch) -> list[dict]:
    """The architectures `draw_architecture` was asked to draw, with the report's cap lowered to `CAP`."""
    calls: list[dict] = []
    draw = views.draw_architecture

    def counting(space, arch):
        calls.append(arch)
        return draw(space, arch)

    monkeypatch.setattr(views, "draw_architecture", counting)
    monkeypatch.setattr(static_report, "FRONT_GRAPHS", CAP)
    return calls


def test_a_report_draws_at_most_the_cap_of_a_long_front_evenly_spaced_and_every_trial_s_page(tmp_path,
                                                                                             drawn) -> None:
    result = long_front(tmp_path / "w")
    front = [t.number for t in result.pareto_front()]
    assert len(front) == N - 1 and len(result.trials) == N
    answers = responses(open_views([tmp_path / "w"]))
    assert len(drawn) == CAP  # not one per front trial
    picked = {front[i] for i in range(0, N - 1, 10)}  # both ends and every 10th between, along the front's order
    assert {result.trials[n].arch["x"] for n in picked} == {a["x"] for a in drawn}
    assert [r["number"] for r in answers["/api/search/s0"]["trials"]] == list(range(N))  # every trial's row, front or not
    for n in range(N):
        page = answers[f"/api/search/s0/trial/{n}"]  # every trial's page
        assert page["number"] == n and page["arch_tree"] == result.trials[n].arch
        if n in picked:
            assert page["graph_note"].startswith("Space.to_graph") and "<svg" in page["graph_svg"]
        elif n in front:  # on the front, not drawn: says so, and where it is drawn
            assert page["graph_svg"] is None and "nas dashboard" in page["graph_note"], page
            assert f"{CAP} of the {N - 1}" in page["graph_note"]
        else:  # off every front: as before (the page says the report draws front trials only)
            assert "graph_svg" not in page and "graph_note" not in page
    assert json.loads(static_report.script_json(answers))  # strict JSON: the page's data


def test_a_report_of_a_front_within_the_cap_draws_every_front_trial(tmp_path, monkeypatch) -> None:
    result = long_front(tmp_path / "w")
    monkeypatch.setattr(static_report, "FRONT_GRAPHS", N - 1)
    answers = responses(open_views([tmp_path / "w"]))
    for t in result.pareto_front():
        assert "<svg" in answers[f"/api/search/s0/trial/{t.number}"]["graph_svg"]


def test_the_report_page_shows_a_front_trial_without_a_drawing(tmp_path, drawn, browser) -> None:
    result = long_front(tmp_path / "w")
    front = [t.number for t in result.pareto_front()]
    report = write_report(open_views([tmp_path / "w"]), tmp_path / "r.html")
    for number, svg in ((front[1], False), (front[10], True)):
        browser.goto(report.as_uri() + f"#/s/s0/trial/{number}")
        browser.wait_for_function(f"document.getElementById('trial-title')?.innerText.startsWith('trial {number} ')")
        assert ("<svg" in browser.locator("#arch-graph").inner_html()) is svg
        note = browser.locator("#arch-graph + p").inner_text()
        assert ("nas dashboard" in note) is not svg, note


def fake_export(folder: Path, workdir: Path, number: int) -> None:
    """What `nas export` leaves for the dashboard: export.json naming the workdir, and trial-N/card.json."""
    (folder / f"trial-{number}").mkdir(parents=True)
    (folder / "export.json").write_text(json.dumps({"workdir": str(workdir.resolve())}))
    (folder / f"trial-{number}" / "card.json").write_text(json.dumps({"trial": number}))


def test_a_report_looks_for_exports_once_per_search_and_finds_their_cards(tmp_path, monkeypatch) -> None:
    long_front(tmp_path / "w")
    monkeypatch.setattr(static_report, "FRONT_GRAPHS", CAP, raising=False)  # fewer drawings: a faster test
    fake_export(tmp_path / "models", tmp_path / "w", 3)  # beside the workdir: found without --models
    looked: list[Path] = []
    indexes = views.export_indexes
    monkeypatch.setattr(views, "export_indexes", lambda wd, models=(): looked.append(wd) or indexes(wd, models))
    answers = responses(open_views([tmp_path / "w"]))
    assert len(looked) == 1  # not once per trial (20,000 globs of the workdir and its parent for 20,000 trials)
    assert answers["/api/search/s0/trial/3"]["card"]["json"] == {"trial": 3}
    assert all(answers[f"/api/search/s0/trial/{n}"]["card"] is None for n in range(N) if n != 3)


def test_the_live_view_still_sees_an_export_made_after_it_was_opened(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(static_report, "FRONT_GRAPHS", CAP, raising=False)
    long_front(tmp_path / "w")
    (view,) = open_views([tmp_path / "w"])
    assert view.trial(3, graph=False)["card"] is None
    responses([view])  # a report built from the view caches nothing the live page reads later
    fake_export(tmp_path / "models", tmp_path / "w", 3)
    assert view.trial(3, graph=False)["card"]["json"] == {"trial": 3}
