"""Tabular benchmarks as evaluators: look an architecture's recorded metrics up in a table.

With `SimulatedClockExecutor`, a whole search over a recorded benchmark costs seconds, which is how
strategies are tested and benchmarked. NAS-Bench-Graph records its whole space; a table of sampled
architectures (built by an experiments/ script) is searched through `TableSpace`, its set of architectures.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.resources
import json
import logging
import operator
import os
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from nas.architecture import Architecture
from nas.errors import ConfigError, InvalidArchitectureError, SpaceDefinitionError
from nas.jsonio import python_scalar
from nas.objectives import Objective
from nas.pareto import pareto_mask
from nas.spaces import Space
from nas.spaces.nasbench_graph import NASBenchGraphSpace

log = logging.getLogger(__name__)


def data_dir() -> Path:
    """The shared data folder: $NAS_DATA_DIR, else ../shared/data beside the source checkout (a pip-installed
    package has no checkout beside it, so it needs $NAS_DATA_DIR; the loaders' errors say so)."""
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
        """The best recorded `metric` in `direction` ("max" or "min"); rows of failed runs (NaN, or another
        non-finite value such as a diverged run's inf, which a search records as failed too) are left out."""
        if direction not in ("max", "min"):
            raise ConfigError(f"direction: must be 'max' or 'min', got {direction!r}")
        col = self.column(metric)
        col = col[np.isfinite(col)]
        if not col.size:
            raise ConfigError(f"{self.name}: every row's {metric!r} is NaN or infinite (failed runs); there is no "
                              "optimum")
        return float(col.max() if direction == "max" else col.min())

    def pareto_points(self, objectives: Sequence[Objective]) -> np.ndarray:
        """The table's true Pareto front, in minimisation form (for hypervolume fractions); rows with a NaN or
        infinite objective (failed runs, as a search records them) are left out."""
        pts = np.stack([np.array([o.minimised(v) for v in self.column(o.name)]) for o in objectives], axis=1)
        pts = pts[np.isfinite(pts).all(axis=1)]
        return pts[pareto_mask(pts)]


NBG_METRICS = ("valid_acc", "test_acc", "latency_s", "params_m")
NBG_TEXT = (f"NAS-Bench-Graph's metric columns ({', '.join(NBG_METRICS)}) hold numbers (write nan for a run that "
            "failed)")
"""What a text cell in a NAS-Bench-Graph metric column is told (its other columns are text by design)."""


def nas_bench_graph(dataset: str, root: str | Path | None = None) -> TabularBenchmark:
    """NAS-Bench-Graph for 'cora', 'citeseer' or 'pubmed' (metrics: valid_acc, test_acc, latency_s, params_m),
    with `recorded_table`'s checks: bad cells, a `link` or `op1..op4` that is not in `NASBenchGraphSpace` (a row
    no search could look up, which would still count in `optimum` and `pareto_points`), missing columns and
    duplicate rows are ConfigErrors naming the lines."""
    path = Path(root) if root is not None else data_dir() / "nas-bench-graph"
    file = path / f"{dataset}.csv"
    if not file.exists():
        raise ConfigError(f"NAS-Bench-Graph table {file} not found (datasets: cora, citeseer, pubmed; "
                          "set NAS_DATA_DIR to the folder holding nas-bench-graph/)")
    names = ("link", "op1", "op2", "op3", "op4")
    records = _read_records(file, (*names, *NBG_METRICS))
    rows: dict[Hashable, dict[str, float]] = {}
    lines: dict[Hashable, int] = {}
    arch_of = operator.itemgetter(*names)
    space = NASBenchGraphSpace()
    allowed = {n: set(space.fields[n].options) for n in names}  # per column: membership, not a slower validate
    for line, r in records:
        arch = arch_of(r)
        for n, value in zip(names, arch):
            if value not in allowed[n]:
                raise ConfigError(f"{file}: line {line}, column {n!r}: {value!r} is not one of "
                                  f"{list(space.fields[n].options)} (NASBenchGraphSpace's {n}); no search could "
                                  "look this row up")
        _first_line(file, lines, arch, line, lambda: f"architecture {dict(zip(names, arch))} is recorded twice; a "
                    "NAS-Bench-Graph table holds one row per architecture")
        rows[arch] = _metric_cells(file, line, r, NBG_METRICS, NBG_TEXT)

    return TabularBenchmark(f"nas-bench-graph/{dataset}", space, rows, arch_of)


class TableSpace(Space):
    """The architectures of a sampled table as a space, so a search asks only for recorded architectures.

    Slots and encodings are `base`'s (rl, mcts, Bayesian search and predictors see the real decisions);
    `validate` accepts a recorded architecture only (InvalidArchitectureError naming any other); `sample` is
    uniform over the table. Everything else lands on the nearest recorded architecture by Hamming distance
    between `to_vector`s (ties: drawn with the caller's rng, else by a hash of both ids): `mutate` and
    `crossover` vary in `base` and take the nearest architecture other than the parent, `neighbours` are the
    `neighbours` nearest, and a decoded vector (`from_vector`) becomes its nearest. The capability `listed`
    tells generative strategies (rl) to draw among the recorded architectures by their own probabilities
    instead of having their draws snapped to the nearest one.
    """

    def __init__(self, base: Space, archs: Iterable[Mapping[str, Any]], neighbours: int = 8) -> None:
        super().__init__(dict(base.fields))
        if neighbours < 1:
            raise SpaceDefinitionError(f"neighbours: expected >= 1, got {neighbours}")
        self.base, self.k = base, neighbours
        unique = {a.id: a for a in (base.validate(a) for a in archs)}
        if not unique:
            raise SpaceDefinitionError("archs: a table space needs at least one architecture")
        self.archs = list(unique.values())
        self._index = {a.id: i for i, a in enumerate(self.archs)}
        self._vectors = np.stack([base.to_vector(a) for a in self.archs])

    def validate(self, config: Mapping[str, Any]) -> Architecture:
        arch = self.base.validate(config)
        if arch.id not in self._index:
            raise InvalidArchitectureError("", f"architecture {arch.id[:12]} {json.dumps(arch.to_dict())} is not "
                                           f"one of the {len(self.archs)} recorded architectures of this table")
        return arch

    @property
    def capabilities(self) -> frozenset[str]:
        return super().capabilities | {"listed"}

    def size(self) -> int:
        return len(self.archs)

    def __iter__(self) -> Iterator[Architecture]:
        return iter(self.archs)

    def sample(self, rng: np.random.Generator) -> Architecture:
        return self.archs[int(rng.integers(len(self.archs)))]

    def default(self) -> Architecture:
        return self.archs[0]

    def _distances(self, config: Mapping[str, Any], exclude: str | Collection[str] | None = None
                   ) -> tuple[Architecture, np.ndarray]:
        """`config` validated in `base`, and the Hamming distance of every recorded `to_vector` to its own
        (`exclude`, an id or ids, at infinity unless that would leave no architecture)."""
        query = self.base.validate(config)
        dist = (self._vectors != self.base.to_vector(query)).sum(axis=1).astype(float)
        ids = [exclude] if isinstance(exclude, str) else list(exclude or ())
        rows = [self._index[i] for i in ids if i in self._index]
        if rows and len(rows) < len(self.archs):
            dist[rows] = np.inf
        return query, dist

    def _tie_key(self, query: Architecture, i: int) -> bytes:
        return hashlib.sha256((query.id + self.archs[i].id).encode()).digest()

    def nearest(self, config: Mapping[str, Any], rng: np.random.Generator | None = None,
                exclude: str | Collection[str] | None = None) -> Architecture:
        """The recorded architecture nearest to `config` (any architecture of `base`), other than `exclude`."""
        query, dist = self._distances(config, exclude)
        ties = np.flatnonzero(dist == dist.min())
        if rng is not None:
            return self.archs[int(rng.choice(ties))]
        return self.archs[min(ties, key=lambda i: self._tie_key(query, int(i)))]

    def _from_indices(self, lookup: Mapping[Any, Any], prefix: tuple[str | int, ...]) -> dict[str, Any]:
        return self.nearest(super()._from_indices(lookup, prefix)).to_dict()

    def mutate(self, arch: Mapping[str, Any], rng: np.random.Generator,
               guide: Sequence[Mapping[str, Any]] = (), exclude: Collection[str] = ()) -> Architecture:
        """`base`'s mutation of `arch`, landed on the nearest recorded architecture other than `arch` and the ids
        in `exclude` (a strategy's seen architectures: on a small table the nearest are soon all seen, and a
        repeat spends an ask; when every one is excluded, only `arch` is)."""
        parent = self.validate(arch)
        child = self.base.mutate(parent, rng, guide=guide) if guide else self.base.mutate(parent, rng)
        avoid = {parent.id, *(i for i in exclude if i in self._index)}
        return self.nearest(child, rng, exclude=avoid if len(avoid) < len(self.archs) else parent.id)

    def crossover(self, a: Mapping[str, Any], b: Mapping[str, Any], rng: np.random.Generator) -> Architecture:
        return self.nearest(self.base.crossover(self.validate(a), self.validate(b), rng), rng)

    def neighbours(self, arch: Mapping[str, Any]) -> list[Architecture]:
        me = self.validate(arch)
        _, dist = self._distances(me, exclude=me.id)
        order = sorted(range(len(self.archs)), key=lambda i: (dist[i], self._tie_key(me, i)))
        return [self.archs[i] for i in order[:self.k] if self.archs[i].id != me.id]

    def to_graph(self, arch: Mapping[str, Any]) -> nx.DiGraph:
        return self.base.to_graph(self.validate(arch))

    def from_graph(self, graph: nx.DiGraph) -> Architecture:
        return self.validate(self.base.from_graph(graph))

    def canonical_key(self, arch: Mapping[str, Any]) -> str:
        return self.base.canonical_key(self.validate(arch))

    def to_spec(self) -> dict[str, Any]:
        ids = hashlib.sha256(",".join(sorted(self._index)).encode()).hexdigest()[:16]
        return {"type": "TableSpace", "base": self.base.to_spec(), "size": len(self.archs), "archs_sha256": ids}


IDENTITY_COLUMNS = ("arch_index", "arch_id", "dataset", "seed", "summary", "arch")


def recorded_table(path: str | Path, base: Space, name: str | None = None,
                   seed: int | None = None) -> TabularBenchmark:
    """A table built by an experiments/ script, replayed over the `TableSpace` of its architectures.

    The CSV has one row per architecture and training seed: `arch` (JSON), `seed` (an int), and numeric metric
    columns (every column but `IDENTITY_COLUMNS`; at least one, else a ConfigError). The replay returns the
    mean over the seeds (`seed=None`; an architecture missing one of the table's seeds, as a cut-off build leaves
    it, is left out) or the row of one training seed. A run that failed is written as `nan` (its architecture
    replays NaN, which a search records as a failed trial; a diverged run's `inf` is the same, and `optimum` and
    `pareto_points` leave both out); a file that starts with a byte-order mark (a spreadsheet's "CSV UTF-8") is read
    as well; an empty cell or text in a metric column is an error naming the file, the line and the column, and a
    second row of one architecture and seed an error naming both lines.
    """
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"path: table {file} not found")
    records = _read_records(file, ("arch", "seed"))
    metrics = [c for c in records[0][1] if c not in IDENTITY_COLUMNS]
    if not metrics:  # every lookup would return {} and every evaluation of a search fail
        raise ConfigError(f"{file}: line 1: no metric column (every column but {', '.join(IDENTITY_COLUMNS)} is a "
                          f"metric; the header has only {', '.join(records[0][1])})")
    text = f"every column but {', '.join(IDENTITY_COLUMNS)} is read as a numeric metric (remove a text column)"
    parsed = [(line, _cell(file, line, "seed", r["seed"], int), _recorded_arch(file, line, r["arch"], base),
               _metric_cells(file, line, r, metrics, text)) for line, r in records]
    seeds = sorted({s for _, s, _, _ in parsed})
    seed = python_scalar(seed)  # np.int64(0), from a loop over np.unique(df.seed), is training seed 0
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed not in seeds):
        raise ConfigError(f"seed: {seed!r} is not a training seed of {file} (seeds: {seeds}; an int or None)")
    by_arch: dict[str, tuple[Architecture, dict[int, dict[str, float]]]] = {}
    lines: dict[tuple[str, int], int] = {}  # (arch id, seed) -> the line that recorded it
    for line, run_seed, arch, values in parsed:
        _first_line(file, lines, (arch.id, run_seed), line, lambda: f"architecture {arch.id} "
                    f"{json.dumps(arch.to_dict())} is recorded twice with seed {run_seed}; a table holds one row per "
                    "architecture and training seed")
        by_arch.setdefault(arch.id, (arch, {}))[1][run_seed] = values
    wanted = seeds if seed is None else [seed]
    rows = {aid: {m: float(np.mean([runs[s][m] for s in wanted])) for m in metrics}
            for aid, (_, runs) in by_arch.items() if all(s in runs for s in wanted)}
    if len(rows) < len(by_arch):
        log.info("%s: %d architectures lack a training seed of %s and are left out", file, len(by_arch) - len(rows), wanted)
    if not rows:
        raise ConfigError(f"path: {file} has no architecture recorded with every seed of {wanted}")
    space = TableSpace(base, [by_arch[aid][0] for aid in rows])

    def key(arch: Mapping[str, object]) -> Hashable:
        return arch.id if isinstance(arch, Architecture) else base.validate(arch).id

    return TabularBenchmark(name or file.stem, space, rows, key)


def _read_records(file: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """A table's rows with the line each ends on (a quoted cell may span lines), or a ConfigError naming the file
    and the `required` columns its header lacks."""
    with open(file, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's "CSV UTF-8" starts with a BOM
        reader = csv.DictReader(f)
        records = [(reader.line_num, r) for r in reader]
        header = reader.fieldnames or []
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:  # csv.DictReader keeps the last of two same-named columns, silently
        raise ConfigError(f"{file}: line 1: the column {', '.join(map(repr, twice))} appears more than once")
    missing = [c for c in required if c not in header]
    if missing:
        raise ConfigError(f"{file}: line 1: no column {', '.join(map(repr, missing))} (the table needs the columns "
                          f"{', '.join(map(repr, required))})")
    if not records:
        raise ConfigError(f"{file}: the table has no rows")
    for line, row in records:
        if None in row:  # cells beyond the header's columns (csv.DictReader's restkey), silently dropped otherwise
            raise ConfigError(f"{file}: line {line}: {len(row[None])} cell(s) more than the header's {len(header)} "
                              "columns")
    return records


def _metric_cells(file: Path, line: int, row: Mapping[str, str | None], metrics: Sequence[str],
                  text: str) -> dict[str, float]:
    """The numeric `metrics` of one row (`nan` for a failed run), or a ConfigError naming the file, line and column
    (`text`: what a text cell is told, after "is not a number; ")."""
    try:
        values = {m: float(row[m]) for m in metrics}  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        values = None
    if values is None or any("_" in row[m] for m in metrics):  # type: ignore[operator]
        return {m: _cell(file, line, m, row.get(m), float, text) for m in metrics}
    return values


def _first_line(file: Path, lines: dict[Any, int], key: Hashable, line: int, duplicate: Callable[[], str]) -> None:
    """Record that `line` holds `key`, or a ConfigError naming both lines and `duplicate()` when an earlier line did."""
    first = lines.setdefault(key, line)
    if first != line:
        raise ConfigError(f"{file}: lines {first} and {line}: {duplicate()} (remove one of them)")


def _cell(file: Path, line: int, column: str, text: str | None, kind: type[int] | type[float],
          hint: str = "") -> Any:
    """One cell of a recorded table as `kind`, or a ConfigError naming the file, line and column (`hint`: what a
    text cell in a metric column is told). A digit separator ("0_9", which int() and float() read as 9) is text."""
    try:
        if text is None or "_" not in text:
            return kind(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    where = f"{file}: line {line}, column {column!r}"
    if kind is int:
        raise ConfigError(f"{where}: expected the training seed, an int, got {text!r}")
    if text is None or not text.strip():
        raise ConfigError(f"{where}: the cell is empty; a metric needs a number (write nan for a run that failed)")
    raise ConfigError(f"{where}: {text!r} is not a number" + (f"; {hint}" if hint else ""))


def _recorded_arch(file: Path, line: int, text: str | None, base: Space) -> Architecture:
    """The `arch` cell of a recorded table, validated by `base`, or a ConfigError naming the file and line."""
    try:
        return base.validate(json.loads(text or ""))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{file}: line {line}, column 'arch': not JSON ({e.msg})") from e
    except (ConfigError, InvalidArchitectureError) as e:
        raise ConfigError(f"{file}: line {line}, column 'arch': {e}") from e


PLANETOID_SHAPES = {"cora": (1433, 7), "citeseer": (3703, 6), "pubmed": (500, 3)}  # (features, classes)


def gnn_table_dir() -> Path:
    """The folder of the committed GNN tables: package data (nas/tables/gnn_planetoid), so an installed wheel
    replays them too; experiments/build_gnn_table.py extends them."""
    return Path(str(importlib.resources.files("nas") / "tables" / "gnn_planetoid"))


def gnn_planetoid_table(dataset: str, root: str | Path | None = None, seed: int | None = None) -> TabularBenchmark:
    """The GNNSpace table of 'cora' or 'citeseer' (experiments/build_gnn_table.py): valid_acc, test_acc,
    train_acc, valid_loss, best_epoch, epochs, train_seconds and params, mean over training seeds 0 and 1
    (or one `seed`'s), searched over its `TableSpace`."""
    from nas.spaces.gnn import GNNSpace

    if dataset not in PLANETOID_SHAPES:
        raise ConfigError(f"dataset: unknown Planetoid graph {dataset!r} (known: {', '.join(PLANETOID_SHAPES)})")
    file = Path(root if root is not None else gnn_table_dir()) / f"{dataset}.csv"
    if not file.exists():
        raise ConfigError(f"GNN table {file} not found (build it with experiments/build_gnn_table.py)")
    features, classes = PLANETOID_SHAPES[dataset]
    return recorded_table(file, GNNSpace(features, classes), f"gnn-planetoid/{dataset}", seed)


def transformer_table_dir() -> Path:
    """The folder of the committed FlexiBERT Movie Review table (package data, nas/tables/transformer_mr);
    experiments/build_transformer_table.py builds and extends it."""
    return Path(str(importlib.resources.files("nas") / "tables" / "transformer_mr"))


TRANSFORMER_TABLES: dict[str, str] = {"bow": "movie_review", "short": "movie_review_short"}
"""`transformer_mr_table`'s recipes -> the table's file name (without .csv) in `transformer_table_dir()`."""


def transformer_mr_table(root: str | Path | None = None, seed: int | None = None,
                         recipe: str = "bow") -> TabularBenchmark:
    """The FlexiBERT table on Movie Review (experiments/build_transformer_table.py): valid_acc, test_acc,
    best_epoch, epochs, train_seconds, params, flops and homogeneous (1 when every layer is the same), mean
    over training seeds 0 and 1 (or one `seed`'s), searched over its `TableSpace`. `recipe`: "bow" (the
    competitive recipe with its bag-of-words prior) or "short" (the plain recipe cut to 4 epochs, where
    architectures differ beyond seed noise)."""
    from nas.spaces.transformer import FlexiBertConfig, FlexiBertSpace

    if recipe not in TRANSFORMER_TABLES:
        raise ConfigError(f"recipe: unknown transformer table recipe {recipe!r} (known: {', '.join(TRANSFORMER_TABLES)})")
    name = TRANSFORMER_TABLES[recipe]
    file = Path(root if root is not None else transformer_table_dir()) / f"{name}.csv"
    if not file.exists():
        raise ConfigError(f"transformer table {file} not found (build it with experiments/build_transformer_table.py"
                          f"{'' if recipe == 'bow' else ' --recipe ' + recipe})")
    space = FlexiBertSpace(FlexiBertConfig(**TRANSFORMER_TABLE_OPTIONS))
    return recorded_table(file, space, f"transformer-mr/{name}", seed)


TRANSFORMER_TABLE_OPTIONS: dict[str, Any] = {
    "num_classes": 2, "depths": (2, 3), "hidden": (32, 64), "heads": (2, 4), "kernels": (3, 7), "ffn_depths": (1, 2),
    "ffn_dims": (64, 128)}
"""The per-layer options of the table's space (experiments/transformer_recipe.py `BASE`; vocabulary, length,
dropout and pooling only matter for building a model)."""
