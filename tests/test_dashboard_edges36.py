"""Edge cases of the dashboard and `nas compare` (session 36): runs over different spaces, an unknown trial number,
a Unicode digit in `since`, searches started after the server, a finished search's importance panel, and a search
named twice in a comparison."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.compare import compare_searches
from nas.dashboard.server import api, make_server, url_of
from nas.dashboard.static_report import responses
from nas.dashboard.views import open_views
from nas.errors import ConfigError
from nas.spaces import Choice, Space
from nas.store import JournalWriter
from tests import test_dashboard
from tests.test_dashboard_edges34 import get

serve, browser = test_dashboard.serve, test_dashboard.browser  # fixtures: a served folder, headless Chromium

A = Space(w=Choice([8, 16, 32]), d=Choice([1, 2, 3]))
B = Space(k=Choice([3, 5, 7]), act=Choice(["relu", "gelu"]))


def on_a(a) -> dict[str, float]:
    return {"acc": float(a["w"] * a["d"]), "lat": float(a["w"] + a["d"])}


def on_b(a) -> dict[str, float]:
    return {"acc": float(a["k"] * (2 if a["act"] == "gelu" else 1)), "lat": float(a["k"])}


def run(space: Space, fn, workdir: Path, strategy: str = "random", seed: int = 0, budget: int = 6) -> nas.SearchResult:
    return nas.search(space, fn, {"acc": "max", "lat": "min"}, strategy=strategy, budget=budget, seed=seed,
                      workdir=workdir, progress=False)


# ------------------------------------------------------------------ 1. runs over different spaces
def test_compare_refuses_runs_of_different_spaces_naming_both_and_the_field(tmp_path) -> None:
    ra, rb = run(A, on_a, tmp_path / "a"), run(B, on_b, tmp_path / "b", "evolution")
    with pytest.raises(ConfigError, match=r"b searched a different space from .*a \(it differs at field w: .*a has "
                                          r"\{'choice': \[8, 16, 32\].*\}, .*b no such field\); compare runs of one space"):
        compare_searches([ra, rb])
    run(Space(w=Choice([8, 16]), d=Choice([1, 2, 3])), on_a, tmp_path / "sub", "evolution")  # a subspace
    out = CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "sub")])
    assert out.exit_code == 2 and "it differs at field w" in out.output and "[8, 16]" in out.output, out.output
    again = run(A, on_a, tmp_path / "a2", "evolution", seed=1)  # one space, two strategies: compared as before
    assert {g.name for g in compare_searches([ra, again]).groups} == {"random", "evolution"}


def test_the_dashboard_compares_searches_of_one_space_only_and_says_which_it_left_out(tmp_path) -> None:
    from nas.dashboard.views import default_compare

    run(A, on_a, tmp_path / "runs" / "a-random")
    run(A, on_a, tmp_path / "runs" / "a-evolution", "evolution", seed=1)
    run(B, on_b, tmp_path / "runs" / "b-evolution", "evolution")
    views = open_views([tmp_path / "runs"])
    by_name = {v.name: v for v in views}
    mixed = api(views, "/api/compare", {"keys": [f"{by_name['a-random'].key},{by_name['b-evolution'].key}"]})
    assert "searched a different space" in mixed["error"] and "b-evolution" in mixed["error"], mixed
    groups = {s["name"]: s["compare_group"] for s in api(views, "/api/searches", {})}
    assert groups["a-random"] == groups["a-evolution"] != groups["b-evolution"]
    assert {v.name for v in default_compare(views)} == {"a-random", "a-evolution"}
    static = [v for k, v in responses(views).items() if k.startswith("/api/compare")]  # the report's comparison
    assert static and all("error" not in c and sum(len(g["runs"]) for g in c["groups"]) == 2 for c in static)


@pytest.mark.timeout(120)
def test_the_compare_page_picks_searches_of_one_space_and_names_the_others(tmp_path, serve, browser) -> None:
    run(A, on_a, tmp_path / "runs" / "a-random")
    run(A, on_a, tmp_path / "runs" / "a-evolution", "evolution", seed=1)
    run(B, on_b, tmp_path / "runs" / "b-evolution", "evolution")
    browser.goto(serve([tmp_path / "runs"]) + "#/compare")
    browser.wait_for_function("document.querySelectorAll('#cmp-groups tbody tr').length === 2")
    picked = browser.evaluate("() => [...document.querySelectorAll('.pick')].map(c => [c.parentNode.innerText.trim(), "
                              "c.checked])")
    assert dict(picked) == {"a-random": True, "a-evolution": True, "b-evolution": False}, picked
    assert "not picked: b-evolution" in browser.locator("#cmp-others").inner_text()


# ------------------------------------------------------------------ 2. an unknown trial, a Unicode digit
def test_a_trial_the_journal_lacks_is_404_and_a_unicode_digit_since_is_the_clear_400(tmp_path, serve) -> None:
    run(A, on_a, tmp_path / "s", budget=3)
    url = serve([tmp_path / "s"])
    assert get(url + "api/search/s0/trial/2")[0] == 200
    for n in (3, 999999):
        status, body = get(url + f"api/search/s0/trial/{n}")
        assert status == 404 and body["error"] == f"s: no trial {n} (the journal holds 3)", body
    status, body = get(url + "api/search/s0?since=%C2%B2")
    assert status == 400 and body["error"] == "since: expected a trial number (0, 1, ...), got '²'", body


# ------------------------------------------------------------------ 3. searches started after the server
def test_a_search_started_in_the_folder_after_the_server_is_listed(tmp_path) -> None:
    space = Space(w=Choice([8, 16, 32]))
    fn = lambda a: {"acc": float(a["w"]), "lat": float(-a["w"])}  # noqa: E731
    run(space, fn, tmp_path / "runs" / "seed0", budget=3)
    server = make_server(open_views([tmp_path / "runs"]), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = url_of(server)
        assert [s["name"] for s in get(url + "api/searches")[1]] == ["seed0"]
        run(space, fn, tmp_path / "runs" / "seed1", seed=1, budget=3)
        listed = get(url + "api/searches")[1]
        assert [(s["key"], s["name"], s["trials"]) for s in listed] == [("s0", "seed0", 3), ("s1", "seed1", 3)]
        assert get(url + "api/search/s1/trial/2")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------ 4. a finished search's importance panel
def test_the_importance_panel_is_recomputed_once_nothing_writes_the_journal(tmp_path) -> None:
    full = tmp_path / "full"
    space = Space({f"x{i}": Choice([0, 1, 2, 3, 4]) for i in range(3)})
    run(space, lambda a: {"acc": float(a["x0"] * 2 + a["x1"]), "lat": float(a["x2"] + a["x0"])}, full, budget=20)
    lines = (full / "journal.jsonl").read_text().splitlines(True)
    trials = [i for i, line in enumerate(lines) if json.loads(line).get("type") == "trial"]
    live = tmp_path / "live"
    live.mkdir()
    cut = trials[-2] + 1  # opened with 19 of the 20 trials
    (live / "journal.jsonl").write_text("".join(lines[:cut]))
    views = open_views([live])
    for path in ("/api/search/s0/importance", "/api/search/s0/parallel"):
        api(views, path, {})
    with JournalWriter(live):  # a search holds the lock and writes its last trial: the panels are kept
        with open(live / "journal.jsonl", "a") as fh:
            fh.write("".join(lines[cut:]))
        assert api(views, "/api/search/s0/importance", {})["trials"] == 19
    fresh = open_views([live])
    for path in ("/api/search/s0/importance", "/api/search/s0/parallel"):  # finished: what a fresh server says
        assert api(views, path, {}) == api(fresh, path, {}), path
    assert api(views, "/api/search/s0/importance", {})["trials"] == 20


# ------------------------------------------------------------------ 5. a search named twice
def test_a_search_named_twice_in_a_comparison_is_one_run(tmp_path) -> None:
    run(A, on_a, tmp_path / "r")
    run(A, on_a, tmp_path / "e", "evolution", seed=1)
    views = open_views([tmp_path])
    c = api(views, "/api/compare", {"keys": ["s0,s0,s1", "s1"]})
    assert sorted(len(g["runs"]) for g in c["groups"]) == [1, 1], c
    assert all(g["low"] is None and g["p_value"] in (None, 1.0) for g in c["groups"]), c
