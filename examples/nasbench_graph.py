"""A `nas run` script over the NAS-Bench-Graph table for Cora: every evaluation is a table lookup.

    nas run examples/nasbench_graph.py --budget 100
    nas run examples/nasbench_graph.py --strategy random --seed 1 --workdir runs/nbg-random

The space is the benchmark's GNN macro space (a link pattern and one operation per node, 9 x 9^4
architectures); `valid_acc` (validation accuracy, 0..1) is traded against `latency_s` (the
benchmark's measured inference latency, seconds). The table lives in shared/data/nas-bench-graph
(or $NAS_DATA_DIR/nas-bench-graph). Report `test_acc`, which the search never looks at.
"""

from nas.tabular import nas_bench_graph

bench = nas_bench_graph("cora")

space = bench.space
evaluate = bench  # a TabularBenchmark is an evaluator: bench(arch) -> the recorded metrics
objectives = {"valid_acc": "max", "latency_s": "min"}
strategy = "nsga2"
budget = 100
