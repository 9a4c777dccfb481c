"""Recorded tables (`nas.tabular.recorded_table`): malformed cells are named by file, line and column, a failed run
is written `nan`; random search over a table's `TableSpace` covers every recorded architecture."""

from __future__ import annotations

import csv
import hashlib
import json
import logging

import numpy as np
import pytest

import nas
from nas.spaces import Choice, Space
from nas.tabular import TableSpace, recorded_table, transformer_mr_table

BASE = Space({f"x{i}": Choice(list(range(4)), ordered=False) for i in range(3)})  # 64 architectures
RECORDED = [BASE.sample(np.random.default_rng([5, i])) for i in range(6)]


def write_table(path, rows, columns=("arch_id", "seed", "valid_acc", "arch")):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for row in rows:
            w.writerow(row)
    return path


def table_rows(extra=None):
    extra = extra or {}
    return [{"arch_id": a.id, "seed": s, "valid_acc": 0.5 + 0.01 * i + 0.001 * s, "arch": json.dumps(a.to_dict()),
             **extra} for i, a in enumerate(RECORDED) for s in (0, 1)]


def test_a_blank_metric_cell_names_the_file_line_and_column(tmp_path):
    rows = table_rows()
    rows[3]["valid_acc"] = ""  # the fourth data row: line 5 (the header is line 1)
    path = write_table(tmp_path / "blank.csv", rows)
    with pytest.raises(nas.ConfigError, match=r"blank\.csv: line 5, column 'valid_acc': the cell is empty; .*nan"):
        recorded_table(path, BASE)


def test_a_text_column_or_a_bad_seed_or_arch_names_the_file_line_and_column(tmp_path):
    path = write_table(tmp_path / "text.csv", table_rows({"optimizer": "adam"}),
                       ("arch_id", "seed", "valid_acc", "optimizer", "arch"))
    with pytest.raises(nas.ConfigError, match=r"text\.csv: line 2, column 'optimizer': 'adam' is not a number"):
        recorded_table(path, BASE)
    rows = table_rows()
    rows[2]["seed"] = "first"
    with pytest.raises(nas.ConfigError, match=r"seed\.csv: line 4, column 'seed': expected the training seed, an int"):
        recorded_table(write_table(tmp_path / "seed.csv", rows), BASE)
    rows = table_rows()
    rows[1]["arch"] = "{not json"
    with pytest.raises(nas.ConfigError, match=r"json\.csv: line 3, column 'arch': not JSON"):
        recorded_table(write_table(tmp_path / "json.csv", rows), BASE)
    rows = table_rows()
    rows[4]["arch"] = json.dumps({**RECORDED[2].to_dict(), "x0": 9})
    with pytest.raises(nas.ConfigError, match=r"arch\.csv: line 6, column 'arch': .*x0"):
        recorded_table(write_table(tmp_path / "arch.csv", rows), BASE)


def test_a_second_row_of_one_architecture_and_seed_names_both_lines(tmp_path):
    """A duplicate (architecture, seed) row replaced the earlier one silently; now it is an error naming the file,
    both lines, the architecture and the seed. The same architecture at another seed is not a duplicate, and one
    written with its keys in another order is."""
    rows = table_rows()
    again = {**rows[2], "valid_acc": 0.9, "arch": json.dumps(dict(reversed(RECORDED[1].to_dict().items())))}
    path = write_table(tmp_path / "dup.csv", rows[:5] + [again] + rows[5:])  # rows[2]: RECORDED[1], seed 0, line 4
    with pytest.raises(nas.ConfigError, match=rf"dup\.csv: lines 4 and 7: architecture {RECORDED[1].id} .* is "
                                              r"recorded twice with seed 0"):
        recorded_table(path, BASE)
    assert len(recorded_table(write_table(tmp_path / "ok.csv", rows), BASE)) == len(RECORDED)


def test_a_failed_run_written_nan_replays_as_a_failed_trial(tmp_path):
    rows = table_rows()
    rows[0]["valid_acc"] = "nan"  # RECORDED[0], seed 0: a run that failed
    bench = recorded_table(write_table(tmp_path / "nan.csv", rows), BASE)
    assert np.isnan(bench(RECORDED[0])["valid_acc"]) and bench(RECORDED[1])["valid_acc"] == pytest.approx(0.5105)
    result = nas.search(bench.space, bench, {"valid_acc": "max"}, strategy="random", budget=len(bench), seed=0)
    status = {t.arch_id: t.status for t in result.trials}
    assert status[RECORDED[0].id] == "failed" and sum(s == "ok" for s in status.values()) == len(bench) - 1



def test_optimum_and_the_pareto_front_leave_failed_rows_out_and_a_direction_is_max_or_min(tmp_path):
    """A row written `nan` (a failed run) made optimum() NaN and pareto_points() raise; a direction other than
    'max' ('MAX', 'maximize', a typo) silently returned the minimum."""
    rows = table_rows()
    rows[10]["valid_acc"] = rows[11]["valid_acc"] = "nan"  # RECORDED[5], the best, failed at both seeds
    bench = recorded_table(write_table(tmp_path / "nan.csv", rows), BASE)
    assert bench.optimum("valid_acc") == pytest.approx(0.5405) and bench.optimum("valid_acc", "min") == pytest.approx(0.5005)
    front = bench.pareto_points([nas.Objective("valid_acc", "max")])
    assert front.tolist() == [[pytest.approx(-0.5405)]]
    for direction in ("MAX", "maximize", "mni"):
        with pytest.raises(nas.ConfigError, match=f"direction: must be 'max' or 'min', got '{direction}'"):
            bench.optimum("valid_acc", direction)
    rows = table_rows({"valid_acc": "nan"})
    with pytest.raises(nas.ConfigError, match="every row's 'valid_acc' is NaN"):
        recorded_table(write_table(tmp_path / "all_nan.csv", rows), BASE).optimum("valid_acc")


NBG_HEADER = "link,op1,op2,op3,op4,canonical_id,valid_acc,test_acc,latency_s,params_m"
NBG_ROWS = ["0-0-0-0,gat,gat,gat,gat,0,0.7733,0.797,0.0059,1.7367", "0-0-0-0,gat,gat,gat,gcn,1,0.7726,0.7966,0.0056,1.7361",
            "0-0-0-0,gat,gat,gcn,gcn,2,0.7801,0.7912,0.0051,1.5002"]


def write_nbg(folder, lines):
    (folder / "nas-bench-graph").mkdir(parents=True)
    (folder / "nas-bench-graph" / "cora.csv").write_text("\n".join(lines) + "\n")
    return folder / "nas-bench-graph"


def test_nas_bench_graph_checks_its_table_as_recorded_tables_are_checked(tmp_path):
    """A damaged NAS-Bench-Graph table gave a bare ValueError or KeyError naming nothing, a NaN optimum (the nbg-*
    gym regret), and a duplicated architecture silently replaced the first row."""
    from nas.tabular import nas_bench_graph

    blank = NBG_ROWS[:1] + [NBG_ROWS[1].replace(",0.7966,", ",,")] + NBG_ROWS[2:]
    with pytest.raises(nas.ConfigError, match=r"cora\.csv: line 3, column 'test_acc': the cell is empty"):
        nas_bench_graph("cora", write_nbg(tmp_path / "blank", [NBG_HEADER, *blank]))
    text = NBG_ROWS[:2] + [NBG_ROWS[2].replace(",1.5002", ",big")]
    with pytest.raises(nas.ConfigError, match=r"cora\.csv: line 4, column 'params_m': 'big' is not a number"):
        nas_bench_graph("cora", write_nbg(tmp_path / "text", [NBG_HEADER, *text]))
    cut = [line.rsplit(",", 1)[0] for line in [NBG_HEADER, *NBG_ROWS]]
    with pytest.raises(nas.ConfigError, match=r"cora\.csv: line 1: no column 'params_m'"):
        nas_bench_graph("cora", write_nbg(tmp_path / "cut", cut))
    again = NBG_ROWS + [NBG_ROWS[1].replace("0.7726", "0.999")]
    with pytest.raises(nas.ConfigError, match=r"cora\.csv: lines 3 and 5: architecture .*'op4': 'gcn'.* is "
                                              "recorded twice"):
        nas_bench_graph("cora", write_nbg(tmp_path / "dup", [NBG_HEADER, *again]))
    failed = NBG_ROWS[:2] + [NBG_ROWS[2].replace("0.7801", "nan")]
    bench = nas_bench_graph("cora", write_nbg(tmp_path / "nan", [NBG_HEADER, *failed]))
    assert bench.optimum("valid_acc") == 0.7733 and len(bench) == 3

@pytest.fixture(scope="module")
def table():
    return transformer_mr_table()


def test_random_search_with_the_table_size_as_budget_covers_the_whole_table(table, caplog):
    """Uniform redraws miss the last of 120 architectures about 4 times in 10 after 100 tries; random search on
    a listed space then picks among the unseen ones instead of stopping 'exhausted' at 119."""
    for seed in (0, 1):
        with caplog.at_level(logging.WARNING, logger="nas"):
            result = nas.search(table.space, table, {"valid_acc": "max"}, strategy="random", budget=len(table),
                                seed=seed)
        ids = [t.arch_id for t in result.trials]
        assert len(ids) == len(set(ids)) == len(table) and result.stop_reason == "budget"
        assert not [r for r in caplog.records if "exhausted" in r.getMessage()]


def test_random_search_below_the_table_size_draws_as_before(table):
    """The draws are the plain uniform samples, a repeat redrawn from the same generator, as before the listed
    fallback: what the search evaluates equals that sequence."""
    for seed in (0, 3):
        rng, expected = np.random.default_rng(seed), []
        while len(expected) < 60:
            arch = table.space.sample(rng)
            if arch.id not in expected:
                expected.append(arch.id)
        result = nas.search(table.space, table, {"valid_acc": "max"}, strategy="random", budget=60, seed=seed)
        assert [t.arch_id for t in result.trials] == expected


def test_random_search_over_a_whole_table_draws_the_recorded_sequences():
    """Random search's whole-table draws, picks among 2-6 unseen architectures after 100 missed redraws included,
    equal those recorded before (benchmark figures replay them): moving where repeats are skipped (its own seen
    set, `Deduplicate`) must keep them."""
    base = Space({f"x{i}": Choice(list(range(4)), ordered=False) for i in range(5)})
    space = TableSpace(base, [base.sample(np.random.default_rng([11, i])) for i in range(400)])  # 335 distinct
    for seed, digest in ((0, "e245b890eed6f65e"), (1, "37844ba0c13497c6"), (2, "ff3a2be2b9cb83ce")):
        result = nas.search(space, lambda a: {"acc": float(a["x0"] + a["x3"])}, {"acc": "max"}, strategy="random",
                            budget=space.size(), seed=seed)
        ids = [t.arch_id for t in result.trials]
        assert len(set(ids)) == 335 and hashlib.sha256(",".join(ids).encode()).hexdigest()[:16] == digest


def test_random_search_over_a_table_resumes_exactly(table, tmp_path):
    """What random search saw is part of its snapshot: a search continued to the full table equals one run
    straight through, its last architecture a pick among the unseen ones after the resume."""
    straight = nas.search(table.space, table, {"valid_acc": "max"}, strategy="random", budget=len(table), seed=2)
    wd = tmp_path / "wd"
    nas.search(table.space, table, {"valid_acc": "max"}, strategy="random", budget=119, seed=2, workdir=wd)
    resumed = nas.search(table.space, table, {"valid_acc": "max"}, strategy="random", budget=len(table), seed=2,
                         workdir=wd)
    assert [t.arch_id for t in resumed.trials] == [t.arch_id for t in straight.trials]


def test_a_repeated_header_column_or_extra_cells_are_named_not_dropped(tmp_path):
    """csv.DictReader kept the last of two same-named columns and dropped cells beyond the header, silently:
    a hand-merged table then replayed numbers from the wrong column."""
    path = write_table(tmp_path / "ok.csv", table_rows())
    lines = path.read_text().splitlines()
    twice = tmp_path / "twice.csv"
    twice.write_text("\n".join([lines[0] + ",valid_acc"] + [line + ",0.1" for line in lines[1:]]) + "\n")
    with pytest.raises(nas.ConfigError, match=r"twice\.csv: line 1: the column 'valid_acc' appears more than once"):
        recorded_table(twice, BASE)
    extra = tmp_path / "extra.csv"
    extra.write_text("\n".join(lines[:3] + [lines[3] + ",0.9,7"] + lines[4:]) + "\n")
    with pytest.raises(nas.ConfigError, match=r"extra\.csv: line 4: 2 cell\(s\) more than the header's 4 columns"):
        recorded_table(extra, BASE)
    assert recorded_table(path, BASE) is not None  # the well-formed table still loads


@pytest.mark.parametrize("seed", ["0", 7, True])
def test_a_seed_that_is_not_an_int_training_seed_says_so(tmp_path, seed):
    """seed="0" said "0 is not a training seed (seeds: [0, 1])": the string looked like the seed it lacked."""
    path = write_table(tmp_path / "t.csv", table_rows())
    with pytest.raises(nas.ConfigError, match=r"^seed: .* is not a training seed .*\(seeds: \[0, 1\]; an int or None\)"):
        recorded_table(path, BASE, seed=seed)
    assert recorded_table(path, BASE, seed=1) is not None
