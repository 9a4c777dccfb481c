"""The dashboard on a workdir of 10,000 trials: first load, and each poll while the search goes on.

A real search (random search, a plain `Space` written field by field, two objectives and a constraint,
`--trials` evaluations with a cheap analytic `evaluate`) fills a workdir. Then, side by side in one run:

1. First load: what the page requests when it opens (search list, all trial rows, history with the
   hypervolume curve, the front), served by `nas.dashboard`, timed from opening the views; and the same
   page in headless Chromium (Debian's package, when installed) from `goto` until the front and the trial
   table are drawn, beside a page that only loads plotly.js (what any plotly page costs).
2. A poll after the search appended `--append` more trials: the incremental views (only new lines parsed)
   against reading the whole journal again (`SearchResult.load` and the same views from scratch).

torch and BLAS on one thread; every figure is the fastest of `--repeats` (other jobs only slow a run down).

    .venv/bin/python experiments/dashboard_load.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import nas  # noqa: E402
from nas.dashboard.server import api, make_server, to_json, url_of  # noqa: E402
from nas.dashboard.views import open_views  # noqa: E402
from nas.spaces import Choice, Repeat, Space  # noqa: E402
from reporting import git_commit, write_report  # noqa: E402  (experiments/reporting.py)

ROOT = Path(__file__).resolve().parents[1]
SPACE = Space(depth=Choice([2, 3, 4, 5, 6]),
              blocks=Repeat(count="depth", kernel=Choice([3, 5, 7]), width=Choice([16, 24, 32, 48, 64, 96]),
                            expand=Choice([1, 2, 4, 6])),
              resolution=Choice([96, 128, 160, 192]), act=Choice(["relu", "gelu", "swish"]))


def evaluate(arch: Any) -> dict[str, float]:
    """An analytic stand-in for training: accuracy grows with capacity and resolution, latency with cost."""
    cost = sum(b["kernel"] ** 2 * b["width"] * b["expand"] for b in arch["blocks"]) * (arch["resolution"] / 128) ** 2
    acc = 60 + 8 * (1 - 1 / (1 + cost / 20000)) + (arch["act"] != "relu") + arch["depth"] / 3
    return {"accuracy": acc, "latency_ms": cost / 1000, "params_k": cost / 90}


def first_load(workdir: Path) -> tuple[float, int]:
    """Seconds to open the views and answer the page's first requests; bytes sent."""
    t0 = time.perf_counter()
    views = open_views([workdir])
    sent = 0
    for path, query in [("/api/searches", {}), ("/api/search/s0", {"since": ["0"]}),
                        ("/api/search/s0/front", {"objectives": ["accuracy", "latency_ms"]})]:
        sent += len(to_json(api(views, path, query)))
    return time.perf_counter() - t0, sent


def poll_after_append(workdir: Path, views: list, have: int) -> tuple[float, float, int]:
    """(incremental poll seconds, full re-read seconds, new rows) after the journal grew."""
    t0 = time.perf_counter()
    answer = api(views, "/api/search/s0", {"since": [str(have)]})
    api(views, "/api/search/s0/front", {"objectives": ["accuracy", "latency_ms"]})
    to_json(answer)
    incremental = time.perf_counter() - t0
    t0 = time.perf_counter()
    nas.load(workdir).pareto_front()
    fresh = open_views([workdir])
    to_json(api(fresh, "/api/search/s0", {"since": ["0"]}))
    api(fresh, "/api/search/s0/front", {"objectives": ["accuracy", "latency_ms"]})
    full = time.perf_counter() - t0
    return incremental, full, len(answer["trials"])


def browser_load(workdir: Path) -> list[float] | None:
    """Seconds for a page that only loads plotly.js, then from `goto` until the dashboard drew the front and
    the trial table, on the first visit after the server started and on a reload (None without Chromium)."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    server = make_server(open_views([workdir]), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                                 "--disable-background-networking", "--no-first-run"])
            page = b.new_page(viewport={"width": 1300, "height": 900})
            page.goto(url_of(server) + "static/plotly.min.js")  # plotly.js in the cache, as after any visit
            page.goto(url_of(server) + "api/searches")  # a page of the same origin without scripts
            t0 = time.perf_counter()  # the floor: loading plotly.js from the cache into a page
            page.add_script_tag(url=url_of(server) + "static/plotly.min.js")
            page.wait_for_function("window.Plotly !== undefined", polling=20)
            seconds = [time.perf_counter() - t0]
            for _ in range(2):  # the first visit after the server started, then a reload
                t0 = time.perf_counter()
                page.goto(url_of(server) + "#/s/s0")
                page.wait_for_function("document.querySelectorAll('#trials tbody tr').length > 0 && "
                                       "document.getElementById('front-plot')?.data", timeout=60_000, polling=20)
                seconds.append(time.perf_counter() - t0)
                page.goto("about:blank")
            b.close()
            return seconds
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--append", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "dashboard_load.json")
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp) / "w"
        t0 = time.perf_counter()
        nas.search(SPACE, evaluate, {"accuracy": "max", "latency_ms": "min"}, constraints=["latency_ms <= 150"],
                   strategy="random", budget=args.trials, seed=0, workdir=wd)
        search_s = time.perf_counter() - t0
        size = (wd / "journal.jsonl").stat().st_size
        loads = [first_load(wd) for _ in range(args.repeats)]
        browsers = [browser_load(wd) for _ in range(args.repeats)]
        polls = []
        for r in range(args.repeats):
            views = open_views([wd])
            have = len(views[0].rows)
            nas.search(SPACE, evaluate, {"accuracy": "max", "latency_ms": "min"}, constraints=["latency_ms <= 150"],
                       strategy="random", budget=have + args.append, seed=0, workdir=wd)
            polls.append(poll_after_append(wd, views, have))
    load_s = min(s for s, _ in loads)
    plotly_only = min((b[0] for b in browsers if b is not None), default=None)
    browser_first = min((b[1] for b in browsers if b is not None), default=None)
    browser_again = min((b[2] for b in browsers if b is not None), default=None)
    inc_s, full_s = min(p[0] for p in polls), min(p[1] for p in polls)
    rows = [("first load, server (views + JSON of every request)", f"{load_s:.2f} s"),
            ("Chromium: a page that only loads plotly.js (the floor)",
             "no chromium" if plotly_only is None else f"{plotly_only:.2f} s"),
            ("page in Chromium until front and table drawn, first visit",
             "no chromium" if browser_first is None else f"{browser_first:.2f} s"),
            ("the same, reloaded", "no chromium" if browser_again is None else f"{browser_again:.2f} s"),
            (f"poll after {args.append} new trials, incremental", f"{inc_s * 1000:.1f} ms"),
            (f"poll after {args.append} new trials, whole journal again", f"{full_s * 1000:.1f} ms"),
            ("incremental speed-up", f"{full_s / inc_s:.0f}x")]
    print(f"{args.trials:,} trials, journal {size / 1e6:.1f} MB, first JSON answers {loads[0][1] / 1e6:.1f} MB; "
          f"the search itself took {search_s:.0f} s")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    write_report(args.out, {"trials": args.trials, "journal_bytes": size, "json_bytes": loads[0][1],
                            "first_load_s": load_s, "first_load_all_s": [s for s, _ in loads],
                            "plotly_only_s": plotly_only, "browser_first_visit_s": browser_first,
                            "browser_reload_s": browser_again, "browser_all_s": browsers,
                            "append": args.append, "poll_incremental_s": inc_s, "poll_full_s": full_s,
                            "polls": polls, "search_s": search_s, "commit": git_commit(),
                            "python": sys.version.split()[0]}, started)


if __name__ == "__main__":
    main()
