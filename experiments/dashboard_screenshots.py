"""The dashboard's screenshots in docs/, taken from real searches in headless Chromium.

- `docs/dashboard-search.png` and `docs/dashboard-trial.png`: the demo's workdir (`./dev.sh demo` makes
  `runs/demo`: an OFA supernet on MNIST-1D, NSGA-II on accuracy vs lookup-table latency, models exported);
  the trial page is the front's most accurate member, with its model card.
- `docs/dashboard-compare.png`: random search, evolution and NSGA-II, 150 evaluations each, on the
  NAS-Bench-Graph Cora table (`../shared/data`), overlaid.

    .venv/bin/python experiments/dashboard_screenshots.py [--demo runs/demo]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
from pathlib import Path

import nas
from nas.dashboard.server import make_server, url_of
from nas.dashboard.views import open_views

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]


def shoot(paths: list[Path], shots: list[tuple[str, str, Path]], height: int = 1000) -> None:
    """Serve `paths` and save a screenshot of each (route, JS condition for "drawn", file)."""
    from playwright.sync_api import sync_playwright

    server = make_server(open_views(paths), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": height})
            for route, ready, out in shots:
                page.goto(url_of(server) + route)
                page.wait_for_function(ready, timeout=60_000)
                page.wait_for_timeout(800)  # plotly's transitions settle
                page.screenshot(path=str(out), full_page=False)
                print(f"wrote {out}")
            browser.close()
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    result = nas.load(args.demo)
    best = result.pareto_front()[0].number if result.problem.objectives[0].direction == "min" \
        else max(result.pareto_front(), key=lambda t: t.metrics[result.problem.names[0]]).number
    shoot([args.demo], [
        ("#/s/s0", "document.getElementById('front-plot')?.data && document.querySelectorAll('#trials tbody tr').length"
                   " && (document.getElementById('importance-plot')?.data || [{}])[0]?.y",
         args.out / "dashboard-search.png")], height=1300)
    shoot([args.demo], [(f"#/s/s0/trial/{best}", "document.getElementById('trial-title')",
                         args.out / "dashboard-trial.png")], height=1300)
    from nas.tabular import nas_bench_graph

    bench = nas_bench_graph("cora")
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in ("random", "evolution", "nsga2"):
            nas.search(bench.space, bench, {"valid_acc": "max", "latency_s": "min"}, strategy=strategy, budget=150,
                       seed=0, workdir=Path(tmp) / f"cora-{strategy}")
        shoot([Path(tmp)], [("#/compare", "document.getElementById('cmp-front')?.data",
                             args.out / "dashboard-compare.png")])


if __name__ == "__main__":
    main()
