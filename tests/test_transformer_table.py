"""The FlexiBERT Movie Review table: its fixed architecture sequence, a resumable build and the replay
(experiments/build_transformer_table.py, `nas.tabular.transformer_mr_table`)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from nas.errors import ConfigError
from nas.spaces import Space
from nas.spaces.transformer import FlexiBertSpace
from nas.tabular import transformer_mr_table, transformer_table_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import build_transformer_table as build  # noqa: E402
import transformer_table_search as search_script  # noqa: E402
from transformer_mr import TextRecipe  # noqa: E402
from transformer_recipe import ARCHS, BASE  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sequence_starts_with_the_recipe_architectures_and_alternates_strata():
    space = FlexiBertSpace(TextRecipe().config(BASE, 100))
    archs = build.draw_architectures(space, 24)
    assert [a.id for a in archs[:3]] == [space.validate(a).id for a in ARCHS.values()]
    assert len({a.id for a in archs}) == 24
    assert all(build.homogeneous(a) for a in archs[4::2])  # even indices >= 4: every layer the same
    assert sum(build.homogeneous(a) for a in archs[3::2]) <= 1  # odd: uniform draws, almost never homogeneous
    assert len({a["layers"][0]["op"] for a in archs[4::2]}) >= 3  # the homogeneous stratum covers the operations
    assert [a.id for a in build.draw_architectures(space, 10)] == [a.id for a in archs[:10]]  # extending keeps it


def test_quick_build_resumes_and_replays(tmp_path):
    from nas.tabular import data_dir

    if not (data_dir() / "movie-review-polarity").is_dir():
        pytest.skip("Movie Review data not in the shared data folder")
    assert build.main(["--quick", "--archs", "4", "--out", str(tmp_path)])["trained"] == 8
    with open(tmp_path / build.TABLE, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {int(r["seed"]) for r in rows} == {0, 1}
    assert [int(r["homogeneous"]) for r in rows[::2]] == [1, 1, 0, 0]  # attention, conv, conv+attention, a draw
    assert build.main(["--quick", "--archs", "4", "--out", str(tmp_path)])["trained"] == 0  # resumed: nothing left
    table = transformer_mr_table(tmp_path)
    assert len(table) == 4 and table.space.size() == 4
    arch = next(iter(table.space))
    mean = table(arch)["test_acc"]
    one = [transformer_mr_table(tmp_path, seed=s)(arch)["test_acc"] for s in (0, 1)]
    assert mean == pytest.approx(sum(one) / 2)
    assert 0.0 <= table.optimum("valid_acc") <= 1.0
    facts = build.table_facts(tmp_path / build.TABLE)
    assert (facts["architectures"], facts["homogeneous"], facts["heterogeneous"], facts["trainings"]) == (4, 2, 2, 8)
    best = facts["best_homogeneous"]
    assert best["summary"] in {r["summary"] for r in rows if r["homogeneous"] == "1"}
    assert best["valid_acc"] == pytest.approx(max(table(a)["valid_acc"] for a in table.space if table(a)["homogeneous"]))
    if "best_heterogeneous_no_more_params" in facts:
        assert facts["best_heterogeneous_no_more_params"]["params"] <= best["params"]

    import transformer_table_search as search

    doc = search.main(["--root", str(tmp_path), "--budgets", "2", "3", "--seeds", "3", "--out", str(tmp_path / "s.json")])
    assert doc["settings"]["budgets"] == [2]  # 3 is more than half the 4-architecture table: skipped
    runs = doc["results"][0]["runs"]
    assert set(runs) == {"random", "bayesian", "evolution"} and all(len(r) == 3 for r in runs.values())
    for r in runs["random"]:
        pick = next(a for a in table.space if a.id == r["pick_id"])
        assert r["valid_acc"] == pytest.approx(table(pick)["valid_acc"]) and r["regret_valid"] >= 0
    assert (tmp_path / "s.json").exists()


def test_quick_builds_write_their_own_table_and_never_the_package_one(capsys):
    """--quick (700 sentences, 2 epochs) used to append its rows to the package table, where a full build then
    skipped those (architecture, seed) pairs and `transformer_mr_table()` replayed them."""
    assert build.parse_args([]).out == transformer_table_dir()
    assert build.parse_args(["--quick"]).out == build.QUICK_OUT != transformer_table_dir()
    assert build.parse_args(["--quick", "--out", "elsewhere"]).out == Path("elsewhere")
    for out in (transformer_table_dir(), transformer_table_dir() / ".." / "transformer_mr"):
        with pytest.raises(SystemExit):
            build.main(["--quick", "--archs", "1", "--out", str(out)])
        assert "--out: --quick" in capsys.readouterr().err


def test_missing_table_is_named(tmp_path):
    with pytest.raises(ConfigError, match="build_transformer_table"):
        transformer_mr_table(tmp_path)
    with pytest.raises(ConfigError, match=r"movie_review_short\.csv not found .*--recipe short"):
        transformer_mr_table(tmp_path, recipe="short")
    with pytest.raises(ConfigError, match=r"^recipe: unknown transformer table recipe 'long' \(known: bow, short\)"):
        transformer_mr_table(recipe="long")


def test_the_short_recipe_builds_its_own_table(tmp_path):
    """--recipe short trains the plain recipe (no bag-of-words prior, no teacher) into movie_review_short.csv,
    which `transformer_mr_table(recipe="short")` replays and the bag-of-words table's replay never reads."""
    from nas.tabular import data_dir

    if not (data_dir() / "movie-review-polarity").is_dir():
        pytest.skip("Movie Review data not in the shared data folder")
    assert build.SHORT.nb_init == build.SHORT.distill == 0 and build.SHORT.max_epochs == 4
    assert build.main(["--quick", "--recipe", "short", "--archs", "2", "--out", str(tmp_path)])["trained"] == 4
    assert not (tmp_path / build.TABLE).exists()
    table = transformer_mr_table(tmp_path, recipe="short")
    assert len(table) == 2 and table.name == "transformer-mr/movie_review_short"
    with pytest.raises(ConfigError, match="movie_review.csv not found"):
        transformer_mr_table(tmp_path)


@pytest.mark.parametrize("space", ["builtin", "plain"])
def test_bayesian_finds_the_short_tables_validation_optimum_where_random_misses_it(space):
    """The committed short-recipe table separates architectures beyond its seed noise, so a surrogate has
    something to learn: BOSHNAS-style `bayesian` reaches the table's best mean validation accuracy within 50
    evaluations (it did on all 30 recorded seeds, experiments/transformer_table_search.py --recipe short), where
    random search at 50 does not on average. The same holds over `plain_space()`, the space written field by field
    as a user would (`--space plain`), whose one-hot layout differs from the built-in class's."""
    import nas

    bench = search_script.table("short", None, space)
    assert len(bench) == 200 and set(bench.rows) == set(transformer_mr_table(recipe="short").rows)
    assert (space == "plain") == (type(bench.space.base) is Space)
    facts = build.table_facts(transformer_table_dir() / build.RECIPES["short"][1])
    assert facts["architectures"] >= 200 and facts["seed_noise"]["valid_acc"]["kendall_tau"] > 0.3
    regret: dict[str, list[float]] = {"bayesian": [], "random": []}
    for strategy in regret:
        for seed in (0, 1, 2):
            result = nas.search(bench.space, bench, {"valid_acc": "max"}, strategy=strategy, budget=50, seed=seed)
            regret[strategy].append(bench.optimum("valid_acc") - result.best("valid_acc").metrics["valid_acc"])
    assert regret["bayesian"] == [0.0, 0.0, 0.0]
    assert sum(regret["random"]) > 0.0


def test_hetero_search_edits_one_layer_of_the_homogeneous_best_at_no_more_parameters():
    """experiments/transformer_hetero.py's candidates: the short table's best homogeneous architecture with one
    layer replaced, every one heterogeneous, one layer away and no larger; a larger sample extends a smaller one."""
    import transformer_hetero as hetero

    space = FlexiBertSpace(TextRecipe().config(BASE, 9095))
    layers = hetero.layer_configs(space, draws=3000)
    assert len(layers) == 72  # 12 operation x width x heads/kernel settings x 6 FFN stacks
    home = hetero.best_homogeneous(transformer_table_dir() / build.RECIPES["short"][1], space)
    assert build.homogeneous(home)
    found = hetero.edits(space, home, layers)
    limit = space.count(home)["params"]
    assert 100 < len(found) < 3 * 71 and len({a.id for a in found}) == len(found)
    for arch in found:
        assert not build.homogeneous(arch) and space.count(arch)["params"] <= limit
        assert sum(a != b for a, b in zip(arch["layers"], home["layers"])) == 1
    small, large = hetero.sample_edits(found, 5), hetero.sample_edits(found, 15)
    assert len(large) == 15 and [a.id for a in large[:5]] == [a.id for a in small]
    facts = build.table_facts(transformer_table_dir() / build.RECIPES["short"][1])
    assert build.describe(home) == facts["best_homogeneous"]["summary"]  # the pick table_facts reports
    # the heterogeneity (layers differing in operation or width) is narrower than "not every layer equal"
    mixed = [a for a in found if hetero.mixes_op_or_width(a)]
    assert not hetero.mixes_op_or_width(home) and 0 < len(mixed) < len(found)
    assert all(any((x["op"], x["hidden"]) != (y["op"], y["hidden"]) for x, y in zip(a["layers"], home["layers"]))
               for a in mixed)


def test_hetero_full_recipe_stage_replays_from_its_committed_cache():
    """Stage 4 of experiments/transformer_hetero.py from its committed cache: the winner is the stage's best mean
    validation edit, it mixes operation or width and has no more parameters than the homogeneous best, and its
    confirmation pairs the fresh seeds 7-21 only."""
    import statistics

    import transformer_hetero as hetero

    space = FlexiBertSpace(TextRecipe().config(BASE, 9095))
    home = hetero.best_homogeneous(transformer_table_dir() / build.RECIPES["short"][1], space)
    found = hetero.edits(space, home, hetero.layer_configs(space, draws=3000))
    by_id = {a.id: a for a in found}
    runs = build.table_runs(hetero.FULL_CACHE)
    picks = [by_id[i] for i in runs if i in by_id]
    assert len(picks) == 3 and all(hetero.mixes_op_or_width(a) for a in picks)
    full = hetero.full_report(space, home, picks)
    winner = hetero.full_winner(full, picks)
    assert winner is not None and space.count(winner)["params"] <= space.count(home)["params"]
    assert statistics.fmean(next(e for e in full["edits"] if e["arch_id"] == winner.id)["valid_acc"]) == max(
        statistics.fmean(e["valid_acc"]) for e in full["edits"])
    confirm = hetero.full_report(space, home, [winner], hetero.FULL_CONFIRM_SEEDS)
    assert confirm["seeds"] == list(range(7, 22)) and len(confirm["edits"][0]["valid_acc"]) == 15
    assert not set(confirm["seeds"]) & set(full["seeds"])
    assert hetero.full_report(space, home, picks, seeds=(99,)) is None  # a seed not trained: nothing to report
    homos = hetero.top_homogeneous(transformer_table_dir() / build.RECIPES["short"][1], space, 5)
    assert homos[0].id == home.id and len({a.id for a in homos}) == 5 and all(build.homogeneous(a) for a in homos)


def test_a_row_torn_by_a_kill_is_retrained_not_read_half_written(tmp_path):
    """A kill mid-write leaves a last line without its newline: readers skip it, the next append cuts it off."""
    import build_gnn_table as gnn

    path = tmp_path / "cache.csv"
    columns = ("arch_id", "seed", "valid_acc")
    gnn.append_row(path, {"arch_id": "a", "seed": 0, "valid_acc": 0.5}, columns)
    with open(path, "a") as f:
        f.write("b,1,0.")  # the kill: a row cut off mid-number
    assert gnn.done_trainings(path) == {("a", 0)}
    gnn.append_row(path, {"arch_id": "b", "seed": 1, "valid_acc": 0.75}, columns)
    assert gnn.done_trainings(path) == {("a", 0), ("b", 1)}
    assert gnn.table_runs(path)["b"][1]["valid_acc"] == "0.75"
    torn_header = tmp_path / "header.csv"
    torn_header.write_text("arch_id,se")
    gnn.append_row(torn_header, {"arch_id": "c", "seed": 2, "valid_acc": 1.0}, columns)
    assert gnn.done_trainings(torn_header) == {("c", 2)}
