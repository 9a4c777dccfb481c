"""experiments/dashboard_load.py's API calls against a small search: the script calls the dashboard's `api()`
directly, so a change of the query contract (the front's objectives split by `parse_query`) broke it unnoticed."""

from __future__ import annotations

import nas

import dashboard_load  # experiments/ (tests/conftest.py puts it on the path)


def test_first_load_and_a_poll_answer_the_page_requests(tmp_path):
    wd = tmp_path / "wd"
    nas.search(dashboard_load.SPACE, dashboard_load.evaluate, {"accuracy": "max", "latency_ms": "min"},
               strategy="random", budget=12, seed=0, workdir=wd, progress=False)
    seconds, sent = dashboard_load.first_load(wd)
    assert seconds > 0 and sent > 1000
    views = dashboard_load.open_views([wd])
    dashboard_load.api(views, "/api/search/s0", {"since": ["0"]})
    nas.search(dashboard_load.SPACE, dashboard_load.evaluate, {"accuracy": "max", "latency_ms": "min"},
               strategy="random", budget=15, seed=0, workdir=wd, progress=False)
    incremental, full, new = dashboard_load.poll_after_append(wd, views, 12)
    assert new == 3 and incremental > 0 and full > 0
