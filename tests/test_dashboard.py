"""The dashboard: incremental journal reading, its views against `nas pareto`, the read-only server, the
static report, bad input, and the page itself in a real headless Chromium against a running search."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import nas
from nas import jsonio
from nas.cli import app
from nas.dashboard.server import make_server, url_of
from nas.dashboard.static_report import write_report
from nas.dashboard.views import check_views, find_workdirs, open_views
from nas.importance import decision_importances
from nas.errors import ConfigError, JournalError
from nas.pareto import hypervolume
from nas.result import SearchResult
from nas.store import Journal, JournalFollower, JournalWriter, Trial

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import dashboard_search  # noqa: E402  (the search the browser test runs in another process)


def search(workdir: Path, budget: int = 40) -> SearchResult:
    return nas.search(dashboard_search.SPACE, dashboard_search.evaluate, objectives={"acc": "max", "cost": "min"},
                      constraints=["cost <= 400"], strategy="nsga2", budget=budget, seed=0, workdir=workdir)


def files_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def pareto_cli(workdir: Path, objectives: str | None = None) -> list[int]:
    """The trial numbers `nas pareto` prints, in its order."""
    args = ["pareto", str(workdir)] + (["--objectives", objectives] if objectives else [])
    out = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    return [int(m) for m in re.findall(r"^│\s+(\d+) │", out.stdout, flags=re.M)]


# ------------------------------------------------------------------ following a journal
def test_follower_reads_only_what_was_appended_and_equals_a_full_read(tmp_path, monkeypatch) -> None:
    wd = tmp_path / "w"
    writer = JournalWriter(wd)
    writer.create({"budget": 10, "problem": {"objectives": {"acc": "max"}, "constraints": []}})
    follower = JournalFollower(Journal(wd))
    starts: list[int] = []
    real = jsonio.read_jsonl
    monkeypatch.setattr(jsonio, "read_jsonl", lambda *a, **k: starts.append(k.get("start", 0)) or real(*a, **k))
    assert follower.poll() is False and follower.trials == []
    for n in range(5):
        writer.append(Trial(n, {"w": n}, f"id{n}", {"acc": float(n)}, "ok"))
    follower.poll()
    size_before = follower.offset
    writer.append(Trial(5, {"w": 5}, "id5", {"acc": 5.0}, "ok"))
    follower.poll()
    assert starts[-1] == size_before > 0  # the second read began where the first ended
    assert follower.poll() is False and len(starts) == 3  # nothing new: no read at all
    assert follower.trials == Journal(wd).read().trials and len(follower.trials) == 6
    # a torn last line is left for later, then read once complete
    line = json.dumps(Trial(6, {"w": 6}, "id6", {"acc": 6.0}, "ok").to_json()) + "\n"
    with open(wd / "journal.jsonl", "a") as f:
        f.write(line[:10])
    follower.poll()
    assert follower.still_writing and len(follower.trials) == 6
    with open(wd / "journal.jsonl", "a") as f:
        f.write(line[10:])
    follower.poll()
    assert not follower.still_writing and [t.number for t in follower.trials] == list(range(7))
    writer.close()
    # a fresh search replaces the file: read from its start, and said so
    os.replace(wd, tmp_path / "old")
    fresh = JournalWriter(wd)
    fresh.create({"budget": 3, "problem": {"objectives": {"acc": "max"}, "constraints": []}})
    fresh.append(Trial(0, {"w": 9}, "id9", {"acc": 9.0}, "ok"))
    assert follower.poll() is True and [t.arch_id for t in follower.trials] == ["id9"]
    fresh.close()


def test_running_file_names_the_evaluations_in_flight_only_while_the_search_runs(tmp_path) -> None:
    seen: list[dict] = []

    def evaluate(arch):
        seen.append(Journal(tmp_path / "w").running())
        return dashboard_search.evaluate(arch)

    nas.search(dashboard_search.SPACE, evaluate, objectives={"acc": "max", "cost": "min"}, strategy="random",
               budget=5, seed=0, workdir=tmp_path / "w")
    assert all(s is not None and s["slots"] == 1 and len(s["in_flight"]) == 1 for s in seen)
    assert {s["in_flight"][0]["arch_id"] for s in seen} == {t.arch_id for t in SearchResult.load(tmp_path / "w").trials}
    assert Journal(tmp_path / "w").running() is None and not (tmp_path / "w" / "running.json").exists()


# ------------------------------------------------------------------ views
def test_views_front_history_and_hypervolume_agree_with_the_result(tmp_path) -> None:
    result = search(tmp_path / "w")
    (view,) = open_views([tmp_path / "w"])
    summary = view.summary()
    assert summary["used"] == result.used == 40 and summary["state"] == "finished"
    assert summary["counts"]["failed"] == sum(t.status == "failed" for t in result.trials) > 0
    assert view.front()["numbers"] == [t.number for t in result.pareto_front()] == pareto_cli(tmp_path / "w")
    assert view.front(["params_k:min", "acc"])["numbers"] == pareto_cli(tmp_path / "w", "params_k:min,acc")
    history = view.history()
    assert history["best"]["acc"] == result.history("acc")
    hv = history["hypervolume"]
    assert [v for _, v in hv] == sorted(v for _, v in hv)  # the front only improves
    pts = np.array([[-t.metrics["acc"], t.metrics["cost"]] for t in result.feasible])
    ref = [-history["reference"][0], history["reference"][1]]
    assert hv[-1][1] == pytest.approx(hypervolume(pts, ref))
    trial = view.trial(result.pareto_front()[0].number)
    assert trial["arch_tree"] == result.pareto_front()[0].arch and "<svg" in trial["graph_svg"]
    with pytest.raises(ConfigError, match="no trial 99"):
        view.trial(99)
    imp = view.importance()  # the panel: nas.importance's figures for the first objective
    assert imp == decision_importances(result, trees=100, max_trials=1000).to_dict() and imp["metric"] == "acc"
    assert view.importance() is imp  # kept while the trials have not grown by a tenth
    assert view.importance("cost")["metric"] == "cost"
    assert "no trial recorded it" in view.importance("loss")["error"]


def test_plain_space_is_rebuilt_from_the_journal_for_its_drawing(tmp_path) -> None:
    search(tmp_path / "w", budget=5)
    (view,) = open_views([tmp_path / "w"])
    assert view.space().fingerprint() == dashboard_search.SPACE.fingerprint()


# ------------------------------------------------------------------ bad input, one message each
def test_bad_input_gives_one_clear_message(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        find_workdirs([tmp_path / "missing"])
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        find_workdirs([tmp_path / "file.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a search workdir"):
        find_workdirs([tmp_path / "empty"])
    search(tmp_path / "w", budget=5)
    lines = (tmp_path / "w" / "journal.jsonl").read_text().splitlines()
    lines[2] = lines[2][:-5] + "oops"
    (tmp_path / "w" / "journal.jsonl").write_text("\n".join(lines) + "\n")
    views = open_views([tmp_path / "w"])
    with pytest.raises(JournalError, match=r"journal.jsonl:3: corrupt journal line"):
        check_views(views)
    runner = CliRunner()
    for args, message in [(["dashboard", str(tmp_path / "empty")], "not a search workdir"),
                          (["report", str(tmp_path / "w"), "--out", str(tmp_path / "r.html")], "journal.jsonl:3"),
                          (["dashboard", str(tmp_path / "w")], "journal.jsonl:3")]:
        out = runner.invoke(app, args)
        assert out.exit_code == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    server = make_server([], port=0)
    try:
        with pytest.raises(ConfigError, match=rf"port {server.server_address[1]} .* is in use"):
            make_server([], port=server.server_address[1])
    finally:
        server.server_close()


# ------------------------------------------------------------------ the server
@pytest.fixture
def serve() -> Iterator:
    servers = []

    def start(paths):
        server = make_server(open_views(paths), port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return url_of(server)

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_server_answers_reads_and_refuses_writes_and_changes_no_file(tmp_path, serve) -> None:
    search(tmp_path / "runs" / "a", budget=20)
    search(tmp_path / "runs" / "b", budget=10)
    before = {d: files_digest(tmp_path / "runs" / d) for d in "ab"}
    url = serve([tmp_path / "runs"])
    status, body = get(url + "api/searches")
    listed = json.loads(body)
    assert status == 200 and [s["name"] for s in listed] == ["a", "b"] and [s["used"] for s in listed] == [20, 10]
    status, body = get(url + "api/search/s0?since=15")
    assert [t["number"] for t in json.loads(body)["trials"]] == [15, 16, 17, 18, 19]
    status, body = get(url + "api/search/s0?since=abc")
    assert status == 400 and "since: expected a trial number" in json.loads(body)["error"]
    status, body = get(url + "api/search/s0/front?objectives=acuracy:max,cost:min")  # a typo: not an empty front
    assert status == 400 and "'acuracy' is not a metric any trial recorded" in json.loads(body)["error"]
    assert json.loads(get(url + "api/search/s0/front?objectives=acc,cost")[1])["numbers"] == pareto_cli(tmp_path / "runs" / "a")
    assert get(url + "api/search/s0/trial/3")[0] == 200 and get(url + "api/search/s9")[0] == 404
    status, body = get(url + "api/search/s0/importance?metric=acc")
    evaluated = sum(t.status == "ok" for t in SearchResult.load(tmp_path / "runs" / "a").trials)
    assert status == 200 and json.loads(body)["trials"] == evaluated and json.loads(body)["decisions"]
    assert get(url + "static/plotly.min.js")[0] == 200 and b"<script src=\"static/app.js\">" in get(url)[1]
    request = urllib.request.Request(url + "api/searches", data=b"{}", method="POST")
    assert get(request)[0] == 405  # type: ignore[arg-type]
    out = CliRunner().invoke(app, ["report", str(tmp_path / "runs"), "--out", str(tmp_path / "r.html")])
    assert out.exit_code == 0 and "2 searches" in out.stdout, out.output
    page = (tmp_path / "r.html").read_text()
    assert "window.NAS_STATIC" in page and "static/plotly.min.js" not in page  # everything inlined
    assert {d: files_digest(tmp_path / "runs" / d) for d in "ab"} == before


# ------------------------------------------------------------------ in a real browser
def chromium() -> str:
    path = os.environ.get("NAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium on this machine (./dev.sh setup installs Debian's chromium package)")
    return path


@pytest.fixture
def browser() -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        page = b.new_page(viewport={"width": 1300, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        b.close()
        assert not errors, errors


def used(page) -> int:
    text = page.locator("#progress-used").inner_text()
    return int(text.split("/")[0]) if "/" in text else -1


def front_numbers(page) -> list[int]:
    return page.evaluate("""() => document.getElementById('front-plot').data
        .find(t => t.name.startsWith('Pareto front')).customdata""")


@pytest.mark.timeout(300)
def test_page_follows_a_running_search_and_its_front_equals_nas_pareto(tmp_path, serve, browser) -> None:
    wd = tmp_path / "w"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    gates = tmp_path / "gates"  # the search waits at its 10th evaluation for go1, at its 40th for go2
    gates.mkdir()
    proc = subprocess.Popen([sys.executable, str(HERE / "dashboard_search.py"), str(wd), "60", "0.05",
                             str(gates)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (wd / "journal.jsonl").exists() or not Journal(wd).read().trials:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        url = serve([wd])
        browser.goto(url + "?poll=300")
        browser.wait_for_function("document.getElementById('progress-used').innerText.includes('/')")
        first = used(browser)
        seen = (wd / "journal.jsonl").read_bytes()
        (gates / "go1").touch()  # on to the 40th evaluation, where the search waits again: it still runs
        browser.wait_for_function(f"parseInt(document.getElementById('progress-used').innerText) > {first}",
                                  timeout=60_000)
        assert used(browser) > first and "running" in browser.locator("#progress-detail").inner_text()
        now = (wd / "journal.jsonl").read_bytes()
        assert now.startswith(seen[:seen.rfind(b"\n") + 1])  # the journal only grew under the reader
        (gates / "go2").touch()
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
    browser.wait_for_function("parseInt(document.getElementById('progress-used').innerText) === 60", timeout=30_000)
    browser.wait_for_function("document.getElementById('progress-detail').innerText.includes('finished')")
    before = files_digest(wd)
    assert front_numbers(browser) == pareto_cli(wd)
    # click the front's first point: its trial page opens with its architecture
    number = front_numbers(browser)[0]
    box = browser.locator("#front-plot .scatterlayer .trace").last.locator("path.point").first.bounding_box()
    browser.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    browser.wait_for_selector("#trial-title")
    assert browser.url.endswith(f"#/s/s0/trial/{number}")
    trial = SearchResult.load(wd).trials[number]
    assert f"trial {number}" in browser.locator("#trial-title").inner_text()
    tree = browser.locator("#arch-tree").inner_text()
    assert all(f"k = {b['k']}" in tree for b in trial.arch["blocks"]) and "<svg" in browser.locator("#arch-graph").inner_html()
    assert files_digest(wd) == before  # a finished search's files, byte for byte, after the page read them
    browser.goto(url + "#/")
    browser.goto(url + "?poll=300#/s/s0")
    bars = "() => (document.getElementById('importance-plot')?.data || [{}])[0]?.y"
    browser.wait_for_function(f"({bars})() && ({bars})().length > 0")
    # the importances and parallel coordinates as this server holds them (kept while the trials grew by less than a
    # tenth, so possibly from before the search ended): the page draws what it serves
    served = json.loads(get(url + "/api/search/s0/importance?metric=" + browser.evaluate("el('imp-metric').value"))[1])
    assert browser.evaluate(bars) == [d["decision"] for d in served["decisions"]][::-1]  # the most important on top
    expected = [d["decision"] for d in open_views([wd])[0].importance()["decisions"]][::-1]  # the report's, fresh
    status, body = get(url + "/api/search/s0/parallel?metric=" + browser.evaluate("el('par-metric').value"))
    axes = json.loads(body)
    assert status == 200 and axes["decisions"] and axes["metric"] == browser.evaluate("el('par-metric').value")
    if browser.evaluate("WEBGL"):
        lanes = "() => (document.getElementById('parallel-plot')?.data || [{}])[0]"
        browser.wait_for_function(f"({lanes})().dimensions")
        drawn = browser.evaluate(lanes)
        assert [d["label"] for d in drawn["dimensions"]] == [*axes["decisions"], axes["metric"]]
        assert drawn["customdata"] == [n for n, f in zip(axes["numbers"], axes["feasible"]) if f]
    else:  # plotly draws them with WebGL: the page says so and where to get the PNG
        browser.wait_for_function("document.getElementById('par-note').innerText.includes('WebGL')")

    report = write_report(open_views([wd]), tmp_path / "report.html")
    browser.goto(report.as_uri())
    browser.wait_for_function("document.getElementById('front-plot') && document.getElementById('front-plot').data")
    assert front_numbers(browser) == pareto_cli(wd) and used(browser) == 60
    browser.wait_for_function(f"({bars})() && ({bars})().length > 0")
    assert browser.evaluate(bars) == expected
    assert files_digest(wd) == before


@pytest.mark.timeout(120)
def test_a_pruned_trial_page_draws_its_learning_curve_and_the_front_draws_pruned_trials_apart(tmp_path, serve,
                                                                                               browser) -> None:
    from nas.spaces import Choice, Space

    space = Space(lr=Choice([0.001, 0.01, 0.1, 0.3]), width=Choice([8, 16, 32, 64]))

    def train(arch):
        quality = {0.001: 0.5, 0.01: 0.8, 0.1: 0.9, 0.3: 0.55}[arch["lr"]] + arch["width"] / 640
        cost = arch["width"] / 8 + 100 * arch["lr"]
        for epoch in range(8):
            acc = quality * (1 - 0.5 ** (epoch + 1))
            nas.set_user_attr("epochs", epoch + 1)
            nas.report_metrics({"acc": acc, "cost": cost})
        return {"acc": acc, "cost": cost}

    result = nas.search(space, train, {"acc": "max", "cost": "min"}, strategy="random", budget=16, seed=0,
                        workdir=tmp_path / "w", pruner="median")
    pruned = next(t for t in result.trials if t.pruned_after is not None)
    url = serve([tmp_path / "w"])
    browser.goto(url + "#/s/s0")
    browser.wait_for_function("document.getElementById('front-plot')?.data")
    drawn = browser.evaluate("""() => document.getElementById('front-plot').data
        .find(t => t.name.startsWith('pruned')).customdata""")
    assert sorted(drawn) == [t.number for t in result.trials if t.pruned_after is not None]
    assert front_numbers(browser) == [t.number for t in result.pareto_front()] and not set(front_numbers(browser)) & set(drawn)
    browser.goto(url + f"#/s/s0/trial/{pruned.number}")
    browser.wait_for_function("document.getElementById('curve-plot')?.data")
    ys = browser.evaluate("document.getElementById('curve-plot').data[0].y")
    assert ys == [v for _, v in pruned.extra["curve"]] and len(ys) == pruned.extra["pruned_after"]
    assert browser.locator("#trial-attrs").inner_text().split() == ["epochs", str(pruned.pruned_after)]
    assert "(pruned after" in table_status(browser, url, pruned.number)


@pytest.mark.timeout(120)
def test_a_study_between_nas_ask_and_nas_tell_shows_its_pending_jobs(tmp_path, serve, browser) -> None:
    """Between CLI calls no process holds a study's workdir, but its jobs run: not 'stopped below its budget'."""
    from nas.spaces import Choice, Space

    space = Space(w=Choice([8, 16, 32]), d=Choice([1, 2, 3]))
    with nas.Study(space, {"acc": "max"}, strategy="random", budget=6, seed=0, workdir=tmp_path / "s") as study:
        jobs = [study.ask() for _ in range(3)]
        study.tell(jobs[0], {"acc": 0.5})
    url = serve([tmp_path / "s"])
    browser.goto(url + "#/s/s0")
    browser.wait_for_function("document.getElementById('progress-detail').innerText.includes('waiting for')")
    text = browser.locator("#progress-detail").inner_text()
    assert "waiting for 2 result(s): asked, not told yet" in text and "pending: 2 asked" in text
    assert all(job.id in text for job in jobs[1:]) and jobs[0].id not in text


@pytest.mark.timeout(120)
def test_two_loads_in_flight_at_once_keep_each_trial_once(tmp_path, serve, browser) -> None:
    """A slow poll overlapped by the next one asked for rows from the same offset: appending both answers
    duplicated rows and skipped later ones, and the page's front lost trials (seen once in the running-search
    test above)."""
    from nas.spaces import Choice, Space

    space = Space(w=Choice([8, 16, 32, 64]), d=Choice([1, 2, 3, 4]))
    nas.search(space, lambda a: {"acc": a["w"] * a["d"], "cost": a["w"] + a["d"]}, {"acc": "max", "cost": "min"},
               strategy="random", budget=12, seed=0, workdir=tmp_path / "w")
    url = serve([tmp_path / "w"])
    browser.goto(url + "#/s/s0")
    browser.wait_for_function("document.getElementById('front-plot')?.data")
    numbers = browser.evaluate("""async () => {
        delete data["s0"];
        await Promise.all([loadSearch("s0"), loadSearch("s0")]);
        return data["s0"].rows.map(r => r.number);
    }""")
    assert numbers == list(range(12))


def table_status(browser, url: str, number: int) -> str:
    """The status cell of trial `number` in the search page's table."""
    browser.goto(url + "#/s/s0")
    browser.wait_for_selector(f"#trials tbody tr[data-number='{number}']")
    return browser.locator(f"#trials tbody tr[data-number='{number}'] td.status").inner_text()


@pytest.mark.timeout(120)
def test_the_compare_page_groups_runs_by_strategy_as_nas_compare_does(tmp_path, serve, browser) -> None:
    from nas.compare import compare_searches
    from nas.spaces import Choice, Space

    space = Space({f"x{i}": Choice([0, 1, 2, 3, 4]) for i in range(5)})

    def score(arch):
        return {"score": float(sum(arch[f"x{i}"] == i % 5 for i in range(5))), "cost": float(arch["x0"])}

    runs = [nas.search(space, score, {"score": "max", "cost": "min"}, strategy=name, budget=15, seed=seed,
                       workdir=tmp_path / "runs" / f"{name}-{seed}") for name in ("tpe", "random") for seed in range(3)]
    expected = compare_searches(runs, metric="score")
    url = serve([tmp_path / "runs"])
    for page in (url + "#/compare", write_report(open_views([tmp_path / "runs"]), tmp_path / "r.html").as_uri()
                 + "#/compare"):
        browser.goto(page)
        browser.wait_for_function("document.querySelectorAll('#cmp-groups tbody tr').length === 2")
        rows = browser.evaluate("""() => [...document.querySelectorAll('#cmp-groups tbody tr')]
            .map(r => [...r.cells].map(c => c.innerText))""")
        assert [r[0] for r in rows] == [g.name for g in expected.groups] and all(r[1] == "3" for r in rows)
        assert "best feasible score (max) after 15 evaluations" in browser.locator("#cmp-note").inner_text()
        means = browser.evaluate("""() => document.getElementById('cmp-mean').data
            .filter(t => t.fill !== 'toself').map(t => t.y[t.y.length - 1])""")
        assert means == pytest.approx([g.mean for g in expected.groups])
