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


def test_a_nan_side_metric_is_counted_apart_from_infeasible_trials(tmp_path, monkeypatch):
    """The search had no constraint, yet the title said '6 infeasible' for trials whose plotted side metric is NaN."""
    from nas import plot

    titles: list[str] = []
    real = plot._save
    monkeypatch.setattr(plot, "_save", lambda fig, path: (titles.append(fig.axes[0].get_title()), real(fig, path))[1])
    result = nas.search(Space(a=Choice(list(range(8)))), lambda a: {"acc": float(a["a"]),
                        "params_k": float("nan") if a["a"] % 2 else float(a["a"])}, {"acc": "max"}, budget=8, seed=0)
    plot.plot_pareto(result, tmp_path / "p.png", ["acc", "params_k:min"])
    assert "infeasible" not in titles[0] and "4 feasible" in titles[0]
    assert "4 without finite acc and params_k" in titles[0]


def test_plots_take_the_format_their_suffix_names_and_refuse_one_they_cannot_write(searched, tmp_path):
    runner = CliRunner()
    wd = str(searched.workdir)
    out = runner.invoke(app, ["pareto", wd, "--plot", str(tmp_path / "front.svg")])
    assert out.exit_code == 0 and (tmp_path / "front.svg").read_bytes().startswith(b"<?xml")
    out = runner.invoke(app, ["history", wd, "--plot", str(tmp_path / "h.pdf")])
    assert out.exit_code == 0 and (tmp_path / "h.pdf").read_bytes().startswith(b"%PDF")
    out = runner.invoke(app, ["history", wd, "--plot", str(tmp_path / "h2.png"), "--timeline", str(tmp_path / "t.xyz")])
    assert out.exit_code == 2 and ".xyz is not an image format" in out.output
    assert not (tmp_path / "h2.png").exists()  # refused before any plot was written


def test_nas_history_refuses_curves_it_cannot_draw_before_writing_any_plot(searched, tmp_path):
    """--curves of a search without a pruner failed after the history plot was written, which was never named,
    and stopped the plots after it; now it is refused up front, naming --curves, and no plot is half done."""
    out = CliRunner().invoke(app, ["history", str(searched.workdir), "--plot", str(tmp_path / "h.png"),
                                   "--curves", str(tmp_path / "c.png"), "--timeline", str(tmp_path / "t.png")])
    assert out.exit_code == 2 and f"error: --curves {tmp_path / 'c.png'}: no trial of this search recorded" in \
        out.output.replace("\n", "")
    assert not any((tmp_path / name).exists() for name in ("h.png", "c.png", "t.png"))


def test_a_group_of_one_run_has_no_interval(tmp_path):
    """One run gave a zero-width '95 % interval' [mean, mean]."""
    from nas.compare import compare_searches
    from nas.report import comparison_table

    space = Space(a=Choice(list(range(30))))
    runs = [nas.search(space, lambda a: {"v": float(a["a"])}, {"v": "max"}, strategy=s, budget=6, seed=k,
                       workdir=tmp_path / f"{s}{k}") for s, k in (("random", 0), ("evolution", 0), ("evolution", 1))]
    c = compare_searches(runs)
    single = next(g for g in c.groups if g.name == "random")
    assert len(single.runs) == 1 and np.isnan(single.low) and np.isnan(single.high)
    pair = next(g for g in c.groups if g.name == "evolution")
    assert pair.low < pair.mean < pair.high or pair.low == pair.high == pair.mean  # two equal scores: no spread
    from rich.console import Console
    console = Console(width=200, record=True)
    console.print(comparison_table(c))
    assert "(one run: no interval)" in console.export_text()


def test_the_history_of_a_search_without_a_feasible_trial_names_no_feasible_trial(tmp_path, monkeypatch):
    from nas import plot

    legends: list[list[str]] = []
    real = plot._save
    monkeypatch.setattr(plot, "_save", lambda fig, path: (legends.append(
        [t.get_text() for t in fig.axes[0].get_legend().get_texts()]), real(fig, path))[1])
    result = nas.search(Space(a=Choice(list(range(8)))), lambda a: {"v": float(a["a"])}, {"v": "max"},
                        constraints=["v >= 100"], budget=5, seed=0)
    plot.plot_history(result, tmp_path / "h.png")
    assert legends == [["infeasible"]]


def test_a_timeline_of_trials_that_took_no_time_says_so(tmp_path):
    """A replay on a simulated clock of duration 0 was told 'no trial recorded when it started and finished'."""
    from nas.executors import SimulatedClockExecutor

    result = nas.search(SPACE, toy, {"acc": "max"}, budget=3, seed=0,
                        executor=SimulatedClockExecutor(duration=0.0))
    with pytest.raises(ConfigError, match="every trial took no time, as on a simulated clock of duration 0"):
        plot_timeline(result, tmp_path / "t.png")
