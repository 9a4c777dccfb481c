"""`nas.plot.plot_parallel` and `plot_timeline`: which trials and decisions they draw, and `nas history`'s flags."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import nas
from nas.cli import app
from nas.errors import ConfigError
from nas.plot import _axis, _explained, _parallel_rows, plot_parallel, plot_timeline
from nas.spaces import Choice, Conditional, Integer, Repeat, Space

SPACE = Space(depth=Choice([1, 2, 3]), blocks=Repeat("depth", k=Choice([3, 5, 7]), e=Choice([2, 4, 6])),
              act=Choice(["relu", "gelu"]), op=Choice(["a", "b"]), extra=Conditional("op", "a", Integer(1, 8)))


def toy(arch) -> dict[str, float]:
    """`acc` depends on the act alone (plus a little noise from e); `lat` on the blocks."""
    size = sum(b["k"] * b["e"] for b in arch["blocks"])
    return {"acc": 0.8 + 0.1 * (arch["act"] == "gelu") + 0.001 * arch["blocks"][0]["e"], "lat": size / 10}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    wd = tmp_path_factory.mktemp("plots") / "run"
    return nas.search(SPACE, toy, {"acc": "max", "lat": "min"}, constraints=["lat <= 6"], strategy="random",
                      budget=40, seed=0, workdir=wd,
                      executor=nas.SimulatedClockExecutor(workers=3, duration=lambda a, m: 1 + m["lat"]))


def test_parallel_shows_first_the_decisions_that_explain_the_metric(searched, tmp_path):
    rows, _, shown, known = _parallel_rows(searched, "acc", None, top=3)
    assert shown[0] == "act"  # it alone sets acc
    assert len(shown) == 3 and {"depth", "blocks.0.k", "extra", "blocks.2.e"} <= set(known)
    assert {kind for _, kind in rows} == {"feasible", "infeasible"} and len(rows) == len(searched.completed)
    assert _parallel_rows(searched, "lat", ["depth", "extra"], top=3)[2] == ["depth", "extra"]
    with pytest.raises(ConfigError, match="'blocks.9.k'"):
        _parallel_rows(searched, "acc", ["depth", "blocks.9.k"], top=3)
    assert plot_parallel(searched, tmp_path / "p.png").stat().st_size > 5000
    assert plot_parallel(searched, tmp_path / "q.png", metric="lat", decisions=["depth", "extra"]).exists()


def test_parallel_axes_put_absent_decisions_below_and_numbers_in_order():
    missing = __import__("nas.plot", fromlist=["_MISSING"])._MISSING
    col, ticks = _axis([7, 3, missing, 5, 3])
    assert list(col) == [1.0, 0.0, -0.12, 0.5, 0.0]
    assert ticks == [(0.0, "3"), (0.5, "5"), (1.0, "7"), (-0.12, "-")]
    y = np.array([1.0, 1.0, 3.0, 3.0])
    assert _explained(y, ["a", "a", "b", "b"]) == 1.0 and _explained(y, ["a", "b", "a", "b"]) == 0.0


def test_timeline_and_history_flags(searched, tmp_path):
    assert plot_timeline(searched, tmp_path / "t.png").stat().st_size > 5000
    out = CliRunner().invoke(app, ["history", str(searched.workdir), "--plot", str(tmp_path / "h.png"),
                                   "--parallel", str(tmp_path / "p.png"), "--timeline", str(tmp_path / "t2.png")])
    assert out.exit_code == 0, out.output
    assert all((tmp_path / f).stat().st_size > 5000 for f in ("h.png", "p.png", "t2.png"))
    assert "parallel coordinates:" in out.output and "timeline:" in out.output
    few = nas.search(SPACE, toy, {"acc": "max"}, budget=1, seed=0)
    with pytest.raises(ConfigError, match="it needs 2"):
        plot_parallel(few, tmp_path / "x.png")
