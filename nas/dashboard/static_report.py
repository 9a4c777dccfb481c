"""`nas report DIR --out report.html`: the dashboard's page as one self-contained file that opens from file://.

The page's script, style, plotly.js and every API answer it needs are inlined, so the file can be mailed or
kept as a CI artifact. Fronts are included for each pair of the search's objectives (the live dashboard
computes any other pair), and the architecture drawing for the front's trials: at most `FRONT_GRAPHS` of each
front, evenly spaced along it (one matplotlib drawing takes a tenth of a second or more, and a front can hold
thousands of trials).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas import jsonio
from nas.dashboard.server import api, plotly_js, static_file
from nas.dashboard.views import SearchView, default_compare
from nas.report import FRONT_ROWS, spread

FRONT_GRAPHS = FRONT_ROWS
"""At most this many trials of each front get an architecture drawing in the report (as many as `nas pareto` shows
rows): a 13,000-trial front drew for over ten minutes, into a file of hundreds of megabytes."""


def responses(views: Sequence[SearchView]) -> dict[str, Any]:
    """API path -> answer, for every request the page makes when it is served from a file."""
    out: dict[str, Any] = {"/api/searches": api(views, "/api/searches", {})}
    for v in views:
        out[f"/api/search/{v.key}"] = api(views, f"/api/search/{v.key}", {"since": ["0"]})
        if v.error is not None or v.problem is None:
            continue
        names = v.problem.names
        pairs = [list(p) for p in itertools.permutations(names, 2)] if len(names) > 1 else [names]
        drawn: set[int] = set()
        undrawn: dict[int, str] = {}  # a front trial left without a drawing -> the page's note saying so
        spread_over: set[frozenset[int]] = set()  # the pair (b, a) has the front of (a, b), in the reverse order
        for pair in [[], *pairs]:
            front = v.front(pair or None)
            out[f"/api/search/{v.key}/front?objectives={','.join(pair)}"] = front
            if frozenset(front["numbers"]) in spread_over:
                continue
            spread_over.add(frozenset(front["numbers"]))
            picked = spread(front["numbers"], FRONT_GRAPHS)
            drawn.update(picked)
            if len(picked) < len(front["numbers"]):
                note = (f"not drawn: this report draws {len(picked)} of the {len(front['numbers'])} trials of each "
                        "front, evenly spaced along it; `nas dashboard` on the workdir draws any trial")
                for n in front["numbers"]:
                    undrawn.setdefault(n, note)  # the note of the first front it is on: the search's objectives
        for name in names:
            out[f"/api/search/{v.key}/importance?metric={name}"] = v.importance(name)
            out[f"/api/search/{v.key}/parallel?metric={name}"] = v.parallel(name)
        cards = v.cards()  # the export folders looked for once, not once per trial
        for n in range(len(v.rows)):
            page = out[f"/api/search/{v.key}/trial/{n}"] = v.trial(n, graph=n in drawn, cards=cards)
            if n in undrawn and n not in drawn:
                page["graph_svg"], page["graph_note"] = None, undrawn[n]
    ok = default_compare(views)  # what the compare page picks at first: the searches of one space and problem
    if len(ok) > 1:  # the compare page with those picked, per objective
        keys = ",".join(v.key for v in ok)
        for name in dict.fromkeys(n for v in ok for n in v.problem.names):  # type: ignore[union-attr]
            out[f"/api/compare?keys={keys}&metric={name}"] = api(views, "/api/compare",
                                                                 {"keys": [keys], "metric": [name]})
    return out


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: every "<" is written as the JSON escape \\u003c, so neither "</script>"
    nor "<!--<script" (which makes the HTML parser swallow the next script) in a string can reach the parser."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")


def write_report(views: Sequence[SearchView], out: str | Path) -> Path:
    """Write the page with its data inlined to `out` (replaced atomically), and the time it was written (the page
    measures durations to it: a snapshot); returns its path."""
    page = static_file("index.html").decode()
    plotly = plotly_js().decode().replace("</script", "<\\/script")
    inline = {
        '<link rel="stylesheet" href="static/app.css">': f"<style>{static_file('app.css').decode()}</style>",
        '<script src="static/plotly.min.js"></script>':
            f"<script>{plotly}</script>",
        '<script src="static/app.js"></script>':
            f"<script>window.NAS_STATIC = {script_json(responses(views))};\n"
            f"window.NAS_SNAPSHOT = {time.time()};</script>\n"
            f"<script>{static_file('app.js').decode()}</script>",
    }
    for tag, body in inline.items():
        if tag not in page:
            raise AssertionError(f"index.html lost {tag!r}")  # the page and this writer are edited together
        page = page.replace(tag, body)
    path = Path(out)
    jsonio.write_bytes(path, page.encode())
    return path
