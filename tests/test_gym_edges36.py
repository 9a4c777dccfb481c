"""Edge cases of the gym, the tabular benchmarks and the RI rank table found by the 36th exploration."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nas.errors import ConfigError
from nas.gym import HYPERPARAMETERS, Environment, Hyperparameters, Setting, draw_settings, run_gym, run_one
from nas.spaces import Choice, Space
from nas.tabular import nas_bench_graph, recorded_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from reporting import protocol_report, ri_matrix  # noqa: E402

SPACE = Space(x=Choice(list(range(12))), y=Choice(list(range(12))))


def score(arch, budget=None) -> dict[str, float]:
    """A closed-form landscape; `budget` (a fidelity level) is accepted and ignored."""
    return {"s": -float((arch["x"] - 7) ** 2 + (arch["y"] - 3) ** 2)}


def toy(budget: int = 3, **kw) -> Environment:
    return Environment("toy", SPACE, score, objective="s", budget=budget, **kw)


# 1. a workdir holding a longer run's journal -----------------------------------------------------------------
def test_a_workdir_holding_a_longer_runs_journal_is_refused_before_anything_runs(tmp_path: Path) -> None:
    run_gym([toy()], ["random"], settings=1, seeds=1, budget=8, workdir=tmp_path)
    journal = tmp_path / "toy" / "random" / "0-0" / "journal.jsonl"
    before = journal.read_bytes()
    with pytest.raises(ConfigError, match=r"workdir: .*0-0 holds the journal of a longer run, 8 evaluations, "
                                          r"more than budget 4"):
        run_gym([toy()], ["random"], settings=1, seeds=1, budget=4, workdir=tmp_path)
    assert journal.read_bytes() == before  # nothing ran
    with pytest.raises(ConfigError, match="more than budget 4"):
        run_one(toy(), "random", Setting("random", 0, {}), 0, 4, tmp_path / "toy" / "random" / "0-0")
    # the same budget resumes (identical result), and a larger one extends the journal
    again = run_gym([toy()], ["random"], settings=1, seeds=1, budget=8, workdir=tmp_path)
    assert again.runs[0].evaluations == 8 and again.runs[0].error is None
    more = run_gym([toy()], ["random"], settings=1, seeds=1, budget=10, workdir=tmp_path)
    assert more.runs[0].evaluations == 10 and more.runs[0].budget == 10


def test_a_fidelity_runs_journal_is_judged_by_full_evaluation_equivalents(tmp_path: Path) -> None:
    env = toy(budget=4, fidelity=(1.0, 3.0))
    first = run_gym([env], ["successive-halving"], settings=1, seeds=1, workdir=tmp_path)
    assert first.runs[0].fidelity and first.runs[0].evaluations > 4  # more calls than the budget: not refused
    again = run_gym([env], ["successive-halving"], settings=1, seeds=1, workdir=tmp_path)
    assert again.runs[0].error is None and again.runs[0].budget_used == first.runs[0].budget_used
    with pytest.raises(ConfigError, match="full-evaluation equivalents .* more than budget 2"):
        run_gym([env], ["successive-halving"], settings=1, seeds=1, budget=2, workdir=tmp_path)


# 2. seed and jobs checked up front ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [-5, "0", 1.5, None, True])
def test_run_gym_refuses_a_bad_seed_before_anything_runs(seed: object) -> None:
    calls: list[object] = []
    env = Environment("toy", SPACE, lambda a: calls.append(a) or score(a), objective="s", budget=3)
    with pytest.raises(ConfigError, match=r"seed: expected a non-negative int, got "):
        run_gym([env], ["random", "evolution"], settings=2, seeds=1, seed=seed)
    assert calls == []
    with pytest.raises(ConfigError, match="seed: expected a non-negative int"):
        draw_settings("evolution", 2, seed=seed)


@pytest.mark.parametrize("jobs", ["2", -3, 0, 1.0])
def test_run_gym_refuses_a_bad_jobs(jobs: object) -> None:
    with pytest.raises(ConfigError, match=r"jobs: expected a positive int"):
        run_gym([toy()], ["random"], settings=1, seeds=1, jobs=jobs)


# 3. NAS-Bench-Graph rows outside the space -------------------------------------------------------------------
NBG_HEADER = "link,op1,op2,op3,op4,valid_acc,test_acc,latency_s,params_m\n"


@pytest.mark.parametrize("row, column", [("0-0-0-0,gat,gat,gat,GCN", "op4"), ("9-9-9-9,gat,gat,gat,gat", "link")])
def test_nas_bench_graph_refuses_a_row_outside_the_space(tmp_path: Path, row: str, column: str) -> None:
    (tmp_path / "cora.csv").write_text(NBG_HEADER + "0-0-0-0,gat,gat,gat,gcn,0.7,0.7,0.005,1.7\n"
                                       + row + ",0.78,0.79,0.005,1.7\n")
    with pytest.raises(ConfigError, match=rf"cora.csv: line 3, column '{column}': .* is not one of"):
        nas_bench_graph("cora", root=tmp_path)


def test_nas_bench_graph_loads_rows_of_the_space(tmp_path: Path) -> None:
    (tmp_path / "cora.csv").write_text(NBG_HEADER + "0-0-0-0,gat,gat,gat,gcn,0.7,0.7,0.005,1.7\n"
                                       "0-1-2-3,skip,fc,sage,arma,0.8,0.7,0.005,1.7\n")
    bench = nas_bench_graph("cora", root=tmp_path)
    assert len(bench) == 2 and bench.optimum("valid_acc") == 0.8
    assert bench({"link": "0-1-2-3", "op1": "skip", "op2": "fc", "op3": "sage", "op4": "arma"})["valid_acc"] == 0.8


# 4. tied RIs share their rank --------------------------------------------------------------------------------
def test_ri_matrix_gives_tied_methods_their_average_rank_whatever_their_order() -> None:
    r = [0.78, 0.80, 0.82, 0.79, 0.81, 0.80, 0.78, 0.82, 0.80, 0.80]
    better = [v + 0.04 for v in r]
    tables = []
    listings = ({"random": r, "evolution": list(r), "tpe": better}, {"evolution": list(r), "random": r, "tpe": better})
    for values in listings:
        reports = {env: protocol_report(values, label=env) for env in ("A", "B")}
        rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in ri_matrix(reports).splitlines()[2:]}
        tables.append(rows)
    assert tables[0] == tables[1] == {"tpe": "1.0", "random": "2.5", "evolution": "2.5"}


# 5. autognn's grid -------------------------------------------------------------------------------------------
def test_autognn_is_tuned_like_rl() -> None:
    assert HYPERPARAMETERS["autognn"].grid == HYPERPARAMETERS["rl"].grid
    settings, notes = draw_settings("autognn", 5)
    options = [s.options for s in settings]
    assert options[0] == {} and all(options[1:]) and len({json.dumps(o, sort_keys=True) for o in options}) == 5
    assert notes == []


# 6. hyperparameters: strategy names and plain mappings -------------------------------------------------------
def test_a_misspelt_strategy_in_hyperparameters_is_refused_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"hyperparameters: 'evolutoin' is not a registered strategy; "
                                          r"available: .*evolution"):
        run_gym([toy()], ["evolution"], settings=2, seeds=1,
                hyperparameters={"evolutoin": Hyperparameters({"population_size": (4,)})})


def test_a_plain_mapping_grid_is_taken_as_the_strategys_grid() -> None:
    result = run_gym([toy()], ["evolution"], settings=2, seeds=1,
                     hyperparameters={"evolution": {"population_size": (4,)}})
    assert result.settings["evolution"][1].options == {"population_size": 4}
    with pytest.raises(ConfigError, match=r"hyperparameters\['evolution'\]: expected Hyperparameters or a mapping"):
        run_gym([toy()], ["evolution"], settings=2, seeds=1, hyperparameters={"evolution": [("population_size", 4)]})
    with pytest.raises(ConfigError, match=r"'population_size': expected a non-empty list or tuple"):
        draw_settings("evolution", 2, hyperparameters={"evolution": {"population_size": 4}})


# 7. a recorded table with no metric column -------------------------------------------------------------------
def test_recorded_table_refuses_a_table_without_a_metric_column(tmp_path: Path) -> None:
    file = tmp_path / "nometrics.csv"
    file.write_text('arch,seed,summary\n"{""x"": 0}",0,first\n"{""x"": 1}",0,second\n')
    with pytest.raises(ConfigError, match=r"nometrics.csv: line 1: no metric column"):
        recorded_table(file, Space(x=Choice([0, 1, 2])))
