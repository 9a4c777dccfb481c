"""Tabular benchmarks as evaluators: look an architecture's recorded metrics up in a table.

With `SimulatedClockExecutor`, a whole search over a recorded benchmark costs seconds, which is how
strategies are tested and benchmarked.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from nas.errors import ConfigError
from nas.objectives import Objective
from nas.pareto import pareto_mask
from nas.spaces import Space
from nas.spaces.nasbench_graph import NASBenchGraphSpace


def data_dir() -> Path:
    """The shared data folder: $NAS_DATA_DIR, else ../shared/data beside the project root."""
    env = os.environ.get("NAS_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


class TabularBenchmark:
    """An evaluator backed by a table: `bench(arch)` returns the recorded metrics of `arch`."""

    def __init__(self, name: str, space: Space, rows: Mapping[Hashable, Mapping[str, float]],
                 key: Callable[[Mapping[str, object]], Hashable]) -> None:
        self.name, self.space, self.rows, self.key = name, space, dict(rows), key

    def __call__(self, arch: Mapping[str, object]) -> dict[str, float]:
        row = self.rows.get(self.key(arch))
        if row is None:
            raise LookupError(f"architecture {dict(arch)} is not in the {self.name} table")
        return dict(row)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.rows)

    def column(self, metric: str) -> np.ndarray:
        try:
            return np.array([row[metric] for row in self.rows.values()], dtype=float)
        except KeyError:
            raise ConfigError(f"{self.name} has no column {metric!r}") from None

    def optimum(self, metric: str, direction: str = "max") -> float:
        col = self.column(metric)
        return float(col.max() if direction == "max" else col.min())

    def pareto_points(self, objectives: Sequence[Objective]) -> np.ndarray:
        """The table's true Pareto front, in minimisation form (for hypervolume fractions)."""
        pts = np.stack([np.array([o.minimised(v) for v in self.column(o.name)]) for o in objectives], axis=1)
        return pts[pareto_mask(pts)]


def nas_bench_graph(dataset: str, root: str | Path | None = None) -> TabularBenchmark:
    """NAS-Bench-Graph for 'cora', 'citeseer' or 'pubmed' (metrics: valid_acc, test_acc, latency_s, params_m)."""
    path = Path(root) if root is not None else data_dir() / "nas-bench-graph"
    file = path / f"{dataset}.csv"
    if not file.exists():
        raise ConfigError(f"NAS-Bench-Graph table {file} not found (datasets: cora, citeseer, pubmed; "
                          "set NAS_DATA_DIR to the folder holding nas-bench-graph/)")
    rows: dict[Hashable, dict[str, float]] = {}
    with open(file, newline="") as f:
        for r in csv.DictReader(f):
            key = (r["link"], r["op1"], r["op2"], r["op3"], r["op4"])
            rows[key] = {m: float(r[m]) for m in ("valid_acc", "test_acc", "latency_s", "params_m")}

    def key(arch: Mapping[str, object]) -> Hashable:
        return (arch["link"], arch["op1"], arch["op2"], arch["op3"], arch["op4"])

    return TabularBenchmark(f"nas-bench-graph/{dataset}", NASBenchGraphSpace(), rows, key)
