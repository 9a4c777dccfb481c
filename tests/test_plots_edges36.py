"""Edge cases of the plots and the static report: a "<!--<script" in the report's data, a multi-fidelity search's
lower-fidelity trials, a diverged training's curve, long metric names, a non-positive `top`, and the CSV of a search
without trials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import nas
from nas import plot
from nas.dashboard.static_report import script_json, write_report
from nas.dashboard.views import open_views
from nas.errors import ConfigError
from nas.spaces import Choice, Space
from nas.strategies.multifidelity import FidelitySpace
from tests import test_dashboard

SPACE = Space(depth=Choice([2, 3, 4]), width=Choice([16, 32, 64, 128]), act=Choice(["relu", "gelu"]))
COMMENT = "HTTP 502 from the data server: <html><!--<script src=cdn.js>"


@pytest.fixture
def figures(monkeypatch) -> list[Any]:
    """The figures the plots lay out and write, in order (each plot returns only its path)."""
    drawn: list[Any] = []
    real = plot._save

    def keep(fig: Any, path: str | Path) -> Path:
        out = real(fig, path)
        drawn.append(fig)
        return out

    monkeypatch.setattr(plot, "_save", keep)
    return drawn


def legend(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def offsets(ax: Any, label: str) -> list[tuple[float, float]]:
    """The points of the scatter labelled `label` (none: [])."""
    return [tuple(p) for c in ax.collections if c.get_label() == label for p in c.get_offsets().tolist()]


# ------------------------------------------------------------------ 1. static report
browser = test_dashboard.browser  # a headless Chromium page; a script error on the page fails the test


def test_script_json_escapes_every_less_than_and_stays_the_same_json() -> None:
    value = {"error": COMMENT, "arch": {"op": "</script><!--<script>"}, "<k>": [1, 2.5, None]}
    text = script_json(value)
    assert "<" not in text and json.loads(text) == value


@pytest.mark.timeout(120)
def test_a_report_whose_data_holds_a_comment_and_script_tag_still_loads(tmp_path, browser) -> None:
    n = [0]

    def evaluate(arch: dict[str, Any]) -> dict[str, float]:
        n[0] += 1
        if n[0] == 3:
            raise RuntimeError(COMMENT)
        return {"acc": arch["width"] / 128, "lat": arch["depth"] * arch["width"] / 10}

    wd = tmp_path / "run"
    nas.search(SPACE, evaluate, {"acc": "max", "lat": "min"}, budget=5, seed=0, workdir=wd)
    report = write_report(open_views([wd]), tmp_path / "report.html")
    page = report.read_text()
    assert "<!--" not in page.split("window.NAS_STATIC", 1)[1].split("</script>", 1)[0]
    browser.goto(report.as_uri())
    browser.wait_for_function("typeof window.NAS_STATIC === 'object' && document.scripts.length === 3")
    browser.wait_for_function("document.body.innerText.includes('<!--<script src=cdn.js>')", timeout=20_000)


# ------------------------------------------------------------------ 2. multi-fidelity
def train(arch: dict[str, Any], budget: float) -> dict[str, float]:
    lat = arch["depth"] * arch["width"] / 16
    return {"accuracy": 100 - 400 / (8 + lat) - 30 / budget, "latency_ms": lat}


@pytest.fixture(scope="module")
def multifidelity(tmp_path_factory) -> nas.SearchResult:
    fspace = FidelitySpace(SPACE, levels=[1, 3, 9], field="epochs")
    return nas.search(fspace, fspace.evaluator(train), {"accuracy": "max", "latency_ms": "min"},
                      strategy="hyperband", budget=30, seed=0, workdir=tmp_path_factory.mktemp("mf") / "run")


def test_lower_fidelity_trials_are_drawn_and_counted_as_such(multifidelity, figures, tmp_path) -> None:
    r = multifidelity
    low = [t for t in r.trials if t.status == "ok" and t.arch["epochs"] != 9]
    top = [t for t in r.trials if t.status == "ok" and t.arch["epochs"] == 9]
    assert low and top
    plot.plot_pareto(r, tmp_path / "p.png")
    plot.plot_history(r, tmp_path / "h.png")
    pareto, history = figures
    title = pareto.axes[0].get_title()
    assert f"{len(low)} at a lower fidelity" in title and "without finite" not in title
    label = "lower fidelity (epochs < 9)"
    assert label in legend(pareto.axes[0])
    assert sorted(offsets(pareto.axes[0], label)) == sorted((t.metrics["accuracy"], t.metrics["latency_ms"])
                                                            for t in low)
    for ax, name in zip(history.axes, ["accuracy", "latency_ms"]):
        assert label in legend(ax)
        assert sorted(v for _, v in offsets(ax, label)) == sorted(t.metrics[name] for t in low)
        assert sorted(v for _, v in offsets(ax, "feasible trial")) == sorted(t.metrics[name] for t in top)


# ------------------------------------------------------------------ 3. a diverged training's curve
def test_a_failed_training_is_drawn_and_counted_apart_from_completed_ones(tmp_path, figures) -> None:
    n = [0]

    def evaluate(arch: dict[str, Any]) -> dict[str, float]:
        n[0] += 1
        acc = 0.0
        for epoch in range(4):
            acc = float("nan") if n[0] == 2 and epoch >= 2 else arch["width"] / 128 * (1 - 0.5 ** (epoch + 1))
            nas.report_metrics({"accuracy": acc})
        return {"accuracy": acc}

    r = nas.search(SPACE, evaluate, {"accuracy": "max"}, budget=5, seed=0, pruner="median", workdir=tmp_path / "w")
    failed = [t for t in r.trials if t.status == "failed"]
    finished = [t for t in r.trials if t.status == "ok" and t.pruned_after is None]
    assert len(failed) == 1
    plot.plot_curves(r, tmp_path / "c.png")
    ax = figures[0].axes[0]
    labels = legend(ax)
    assert "failed (1)" in labels and f"trained to the end ({len(finished)})" in labels
    marker = [c for c in ax.collections if c.get_offsets().tolist() == [[2.0, failed[0].extra["curve"][1][1]]]]
    assert marker  # a dot at the last finite report (epoch 2)


# ------------------------------------------------------------------ 4. long metric names
LONG = "validation_top1_accuracy_after_ninety_epochs_of_cosine_schedule_x"


@pytest.mark.parametrize("kind", ["history", "pareto"])
def test_a_long_metric_name_is_wrapped_inside_the_figure_and_keeps_its_direction(tmp_path, figures, kind) -> None:
    r = nas.search(SPACE, lambda a: {LONG: a["width"] / 128, "latency_ms": float(a["depth"])},
                   {LONG: "max", "latency_ms": "min"}, budget=6, seed=0)
    if kind == "history":
        plot.plot_history(r, tmp_path / "h.png")
        ax = figures[0].axes[0]
    else:
        plot.plot_pareto(r, tmp_path / "p.png", ["latency_ms", LONG])
        ax = figures[0].axes[0]
    fig = figures[0]
    label = ax.yaxis.label
    assert label.get_text().replace("\n", "") == f"{LONG} (max)" and "\n" in label.get_text()
    box = label.get_window_extent(fig.canvas.get_renderer())
    assert box.y0 >= 0 and box.y1 <= fig.bbox.height and box.x0 >= 0


def test_an_overlong_name_is_shortened_but_keeps_its_direction() -> None:
    text = plot._axis_label("x" * 300, "min", 24)
    lines = text.split("\n")
    assert len(lines) <= 3 and all(len(line) <= 24 for line in lines) and text.endswith("\u2026 (min)")


# ------------------------------------------------------------------ 5. top
@pytest.fixture(scope="module")
def twelve() -> nas.SearchResult:
    return nas.search(SPACE, lambda a: {"acc": a["width"] / 128 + 0.1 * (a["act"] == "gelu"), "lat": a["depth"]},
                      {"acc": "max", "lat": "min"}, budget=16, seed=0)


@pytest.mark.parametrize("top", [0, -1, 2.5, True])
def test_a_top_that_is_not_a_positive_integer_is_refused(twelve, tmp_path, top) -> None:
    from nas.importance import decision_importances

    with pytest.raises(ConfigError, match=r"top must be a positive integer.*got"):
        plot.parallel_axes(twelve, top=top)
    with pytest.raises(ConfigError, match="top must be a positive integer"):
        plot.plot_parallel(twelve, tmp_path / "p.png", top=top)
    imp = decision_importances(twelve, "acc", trees=20, folds=2, repeats=1)
    with pytest.raises(ConfigError, match="plot_decision_effects: top must be a positive integer"):
        plot.plot_decision_effects(twelve, imp, tmp_path / "e.png", top=top)
    assert not (tmp_path / "p.png").exists() and not (tmp_path / "e.png").exists()
    assert len(plot.parallel_axes(twelve, top=1).decisions) == 1


# ------------------------------------------------------------------ 6. CSV of a search without trials
def test_the_table_of_a_search_without_trials_keeps_its_columns(tmp_path) -> None:
    wd = tmp_path / "run"
    with nas.Study(Space(width=Choice([16, 32])), {"acc": "max", "duration": "min"}, budget=5, seed=0,
                   workdir=wd) as s:
        s.ask()
    frame = nas.load(wd).to_dataframe()
    assert len(frame) == 0
    assert list(frame.columns) == ["number", "status", "arch_id", "feasible", "started", "finished", "duration",
                                   "worker", "error", "acc", "metric.duration"]
    assert frame.to_csv(index=False).splitlines()[0].startswith("number,status,arch_id")
