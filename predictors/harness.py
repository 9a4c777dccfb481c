"""One evaluation harness for every predictor: train on N sampled architectures, score on a held-out set.

Per seed, `n_test` test architectures are drawn first, one per `group` (by default the architecture's values,
equal numbers alike, so a network measured twice is one group; with `space.canonical_key` isomorphic twins share
one), so the test set holds distinct networks; training sets are then drawn from the architectures whose group is
not in the test set and are nested (the first N of one permutation), so no test network, nor any twin of one, is
ever trained on.
Scores: Kendall tau (tau-b), Spearman rho, MAE, and the precision of the predicted top fraction (the part of the
ranking a search acts on).
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import stats

from nas import jsonio
from nas.errors import ConfigError, check_int, check_seed
from nas.spaces import Architecture, canonical_json

log = logging.getLogger(__name__)

SIZES = (10, 20, 50, 100, 200, 500)
METRICS = ("kendall_tau", "spearman_rho", "mae", "top_precision")


class Scorer(Protocol):
    """Anything with `fit(archs, y)` and `predict(archs) -> (mean, std)`: predictors and baselines alike."""

    def fit(self, archs: Sequence[Architecture], y: Sequence[float]) -> Any: ...

    def predict(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]: ...


Factory = Callable[[int], Scorer]  # seed -> a fresh, unfitted predictor


@dataclass(frozen=True)
class Record:
    """The scores of one predictor trained on `n_train` architectures with one seed."""

    predictor: str
    n_train: int
    seed: int
    kendall_tau: float
    spearman_rho: float
    mae: float
    top_precision: float
    fit_seconds: float
    predict_seconds: float


def scores(y_true: np.ndarray, y_pred: np.ndarray, top_fraction: float = 0.05) -> dict[str, float]:
    """Rank correlations, MAE and precision@top-fraction, none of them dependent on the order of the rows.

    Precision: the share of the predicted top k whose true value is at least the k-th largest true value (a pick
    tied with the k-th best is as good as it, so it is a hit); predictions tied at the cut count at their tied
    group's share of hits. Tau and rho are 0.0 where either side is constant (no ranking to compare), not NaN.
    """
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    k = max(1, int(math.ceil(top_fraction * len(y_true))))
    hit = y_true >= np.sort(y_true)[-k]
    cut = np.sort(y_pred)[-k]  # the k-th largest prediction: all above it are picked, those equal to it share the rest
    above, tied = y_pred > cut, y_pred == cut
    hits = hit[above].sum() + (k - above.sum()) * hit[tied].mean() if tied.any() else math.nan  # NaN predictions
    constant = np.ptp(y_pred) == 0 or np.ptp(y_true) == 0
    return {"kendall_tau": 0.0 if constant else float(stats.kendalltau(y_pred, y_true)[0]),
            "spearman_rho": 0.0 if constant else float(stats.spearmanr(y_pred, y_true)[0]),
            "mae": float(np.mean(np.abs(y_pred - y_true))),
            "top_precision": float(hits) / k}


def held_out_split(n: int, n_test: int, rng: np.random.Generator,
                   groups: Sequence[Hashable] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(test indices, training candidates in random order): one test row per group, no group on both sides."""
    groups = list(range(n)) if groups is None else list(groups)
    if len(groups) != n:
        raise ConfigError(f"groups: {len(groups)} given for {n} architectures")
    order = rng.permutation(n)
    test, seen = [], set()
    for i in order:
        if groups[i] not in seen:
            seen.add(groups[i])
            test.append(int(i))
            if len(test) == n_test:
                break
    if len(test) < n_test:
        raise ConfigError(f"n_test: only {len(test)} distinct groups, {n_test} asked")
    train = np.array([int(i) for i in order if groups[i] not in seen], dtype=int)
    return np.array(test, dtype=int), train


def default_group(arch: Mapping[str, Any], what: str = "arch") -> str:
    """An architecture's canonical JSON with equal numbers written alike (1, 1.0 and np.int64(1) as 1), bools kept
    apart (True is not 1): the harness has no space to validate with, which would make {"lr": 1} and {"lr": 1.0}
    one architecture, so its default groups do the same for numbers."""
    try:
        return canonical_json(_numbers_alike(arch))
    except (TypeError, ValueError) as e:  # NaN, inf, a set: no JSON, so no id either
        raise ConfigError(f"{what}: not a JSON architecture ({e}): {arch!r}") from None


def _numbers_alike(value: Any) -> Any:
    value = jsonio.python_scalar(value)
    if isinstance(value, Mapping):
        return {str(k): _numbers_alike(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers_alike(v) for v in value]
    return int(value) if isinstance(value, float) and value.is_integer() else value


def evaluate(factories: Mapping[str, Factory], archs: Sequence[Architecture], y: Sequence[float],
             sizes: Sequence[int] = SIZES, seeds: Sequence[int] = range(10), n_test: int = 1000,
             groups: Sequence[Hashable] | None = None, top_fraction: float = 0.05,
             progress: Callable[[Record], None] | None = None,
             averages: Mapping[str, Sequence[str]] | None = None) -> list[Record]:
    """Train every predictor on each size for each seed; score each on that seed's held-out set.

    `groups` (one hashable per row) default to `default_group` of each architecture: a network measured twice
    (1 or 1.0 alike) is one group, so it is never both tested and trained on; with the space at hand, pass
    `groups=[space.canonical_key(a) for a in archs]` (validated, isomorphic twins together). `averages` maps a
    name to predictors of `factories` whose predicted means are averaged, scored like one more predictor without
    refitting anything (what `AveragePredictor` of those members predicts); its fit time is the members' sum.
    """
    averages = dict(averages or {})
    for name, members in averages.items():
        if name in factories:  # its records would be mixed with the predictor's own under one name
            raise ConfigError(f"averages[{name!r}]: the name of a predictor; give the average another name")
        missing = [m for m in members if m not in factories]
        if missing or not members:
            raise ConfigError(f"averages[{name!r}]: members {missing or members} are not among the predictors")
    if isinstance(n_test, bool) or not isinstance(n_test, numbers.Integral) or n_test < 2:
        raise ConfigError(f"n_test: expected an int >= 2 (held-out architectures to rank), got {n_test!r}")
    if isinstance(top_fraction, bool) or not isinstance(top_fraction, numbers.Real) or not 0 < top_fraction <= 1:
        raise ConfigError(f"top_fraction: expected a fraction in (0, 1], got {top_fraction!r}")
    seeds, sizes = list(seeds), list(sizes)
    for what, values in (("sizes", sizes), ("seeds", seeds)):
        if not values:  # nothing would be run, and the table would be a header alone
            raise ConfigError(f"{what}: expected at least one, got none")
    try:
        seeds = [check_seed(s) for s in seeds]
    except ConfigError as e:
        raise ConfigError(f"seeds: {str(e).partition(': ')[2]} (in {seeds!r})") from None
    bad_sizes = [s for s in sizes if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 2]
    if bad_sizes:
        raise ConfigError(f"sizes: expected ints >= 2 (training set sizes), got {bad_sizes}")
    for what, values in (("seeds", seeds), ("sizes", sizes)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:  # each cell would be scored twice on one split and counted as two seeds
            raise ConfigError(f"{what}: {repeated} given more than once")
    y_arr = np.asarray(y, dtype=float)
    if len(archs) != len(y_arr):
        raise ConfigError(f"{len(archs)} architectures but {len(y_arr)} targets")
    if groups is None:
        groups = [default_group(a, f"archs[{i}]") for i, a in enumerate(archs)]
    bad = np.flatnonzero(~np.isfinite(y_arr))
    if len(bad):  # held out, a NaN would be scored silently (tau nan, and ranked as the true best)
        raise ConfigError(f"y: targets {bad[:5].tolist()} are not finite ({y_arr[bad[:5]].tolist()}); drop failed "
                          "evaluations first")
    sizes = sorted(int(s) for s in sizes)
    out: list[Record] = []
    for seed in seeds:
        test, pool = held_out_split(len(archs), n_test, np.random.default_rng(seed), groups)
        if sizes and sizes[-1] > len(pool):
            raise ConfigError(f"sizes: {sizes[-1]} training architectures asked, only {len(pool)} outside the test set")
        test_archs = [archs[i] for i in test]
        for n in sizes:
            train = pool[:n]
            preds: dict[str, tuple[np.ndarray, float, float]] = {}
            for name, factory in factories.items():
                predictor = factory(seed)
                t0 = time.perf_counter()
                predictor.fit([archs[i] for i in train], y_arr[train])
                t1 = time.perf_counter()
                mean, _ = predictor.predict(test_archs)
                preds[name] = (np.asarray(mean, dtype=float), t1 - t0, time.perf_counter() - t1)
            for name, members in averages.items():
                preds[name] = (np.mean([preds[m][0] for m in members], axis=0), sum(preds[m][1] for m in members),
                               sum(preds[m][2] for m in members))
            for name, (mean, fit_s, pred_s) in preds.items():
                rec = Record(name, n, int(seed), **scores(y_arr[test], mean, top_fraction),
                             fit_seconds=fit_s, predict_seconds=pred_s)
                out.append(rec)
                log.info("%s N=%d seed=%d tau=%.3f", name, n, seed, rec.kendall_tau)
                if progress is not None:
                    progress(rec)
    return out


def summarize(records: Sequence[Record]) -> dict[str, dict[int, dict[str, float]]]:
    """{predictor: {N: {metric_mean, metric_std, ..., seeds}}} over seeds."""
    cells: dict[tuple[str, int], list[Record]] = {}
    for r in records:
        cells.setdefault((r.predictor, r.n_train), []).append(r)
    out: dict[str, dict[int, dict[str, float]]] = {}
    for (name, n), recs in cells.items():
        row: dict[str, float] = {"seeds": len(recs)}
        for m in (*METRICS, "fit_seconds"):
            vals = np.array([getattr(r, m) for r in recs], dtype=float)
            row[f"{m}_mean"], row[f"{m}_std"] = float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        out.setdefault(name, {})[n] = row
    return out


def format_table(records: Sequence[Record], metric: str = "kendall_tau") -> str:
    """A text table: one row per predictor, one column per N, 'mean ±std' of `metric`."""
    if metric not in (*METRICS, "fit_seconds"):
        raise ConfigError(f"metric: unknown {metric!r} (known: {', '.join(METRICS)})")
    summary = summarize(records)
    sizes = sorted({r.n_train for r in records})
    width = max([len("predictor")] + [len(n) for n in summary]) + 2
    lines = [f"{metric} (mean ±std over seeds)", "predictor".ljust(width) + "".join(f"N={n}".rjust(14) for n in sizes)]
    for name, cells in summary.items():
        row = name.ljust(width)
        for n in sizes:
            c = cells.get(n)
            row += (f"{c[metric + '_mean']:.3f} ±{c[metric + '_std']:.3f}" if c else "-").rjust(14)
        lines.append(row)
    return "\n".join(lines)


def plot(records: Sequence[Record], path: str | Path, title: str = "",
         metrics: Sequence[str] = ("kendall_tau", "top_precision")) -> Path:
    """A PNG: each metric's mean over seeds against N (log axis), one line per predictor, ±std bands."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = summarize(records)
    fig = Figure(figsize=(5.2 * len(metrics), 4.2))
    FigureCanvasAgg(fig)
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        for name, cells in summary.items():
            ns = sorted(cells)
            mean = np.array([cells[n][f"{metric}_mean"] for n in ns])
            std = np.array([cells[n][f"{metric}_std"] for n in ns])
            (line,) = ax.plot(ns, mean, marker="o", ms=3, label=name)
            ax.fill_between(ns, mean - std, mean + std, color=line.get_color(), alpha=0.12)
        ax.set_xscale("log")
        ax.set_xlabel("training architectures N")
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def to_json(records: Sequence[Record], meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Plain data: metadata, the per-cell summary and every record."""
    return {"meta": dict(meta or {}),
            "summary": {name: {str(n): c for n, c in cells.items()} for name, cells in summarize(records).items()},
            "records": [asdict(r) for r in records]}


def write_json(path: str | Path, records: Sequence[Record], meta: Mapping[str, Any] | None = None) -> Path:
    path = Path(path)
    jsonio.write_json(path, to_json(records, meta), allow_nan=True)  # a NaN prediction scores NaN
    return path


def main_eval(dataset: str = "cora", predictors: Sequence[str] = ("wl-gp", "gcn", "rf"),
              sizes: Sequence[int] = SIZES, seeds: int = 10, n_test: int = 1000, target: str = "valid_acc",
              out_dir: str | Path | None = None, data_root: str | Path | None = None,
              metric: str = "kendall_tau", rows: int | None = None) -> dict[str, Any]:
    """`nas predictors eval`: registered predictors on a NAS-Bench-Graph table (cora, citeseer, pubmed).

    Pretrained predictors pretrain on the table's `params_m` (a cheap proxy). `rows` restricts the
    table to that many random rows (a quick look; default: all 59,040). Returns {"table": text of
    `metric` by predictor and N, "summary": per-cell means/stds, "json": path, "plot": path}; with
    `out_dir`, writes `predictors_<dataset>.json` and `.png` there (else the paths are None).
    """
    from nas.predictors import make_predictor, predictor_class
    from nas.tabular import nas_bench_graph

    check_int(seeds, "seeds", 1)
    check_int(n_test, "n_test", 2)
    if not sizes or min(sizes) < 2:  # a predictor needs two architectures to rank
        raise ConfigError(f"sizes: expected training-set sizes >= 2, got {list(sizes)}")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():  # refused before the work
        raise ConfigError(f"out_dir: {out_dir} is a file, not a folder")
    if metric not in (*METRICS, "fit_seconds"):
        raise ConfigError(f"metric: unknown {metric!r} (known: {', '.join(METRICS)})")
    if isinstance(predictors, str):  # a bare name would be split into letters
        raise ConfigError(f"predictors: expected a list of predictor names (e.g. [{predictors!r}]), got {predictors!r}")
    names = list(predictors)
    if not names:
        raise ConfigError("predictors: name at least one")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # scored once under one name, as if given once
        raise ConfigError(f"predictors: {repeated} given more than once")
    for name in names:  # unknown names fail before the table is read, naming the field
        try:
            predictor_class(name)
        except ConfigError as e:
            raise ConfigError(f"predictors: {e}") from None
    if rows is not None and rows < n_test + max(sizes):
        raise ConfigError(f"rows: {rows} is fewer than n_test + the largest size ({n_test + max(sizes)})")
    bench = nas_bench_graph(dataset, data_root)
    space = bench.space

    def params_m(arch: Architecture) -> float:
        try:
            return float(bench(arch)["params_m"])
        except LookupError:  # the all-skip architectures the table omits
            return 0.0

    def options(name: str) -> dict[str, Any]:
        return {"proxy": params_m, "pretrain_cache": caches[name]} if name.endswith("-pretrained") else {}

    caches: dict[str, dict[str, Any]] = {n: {} for n in names}
    for name in names:  # unfit spaces fail before any work
        try:
            make_predictor(name, space, 0, **options(name))
        except ConfigError as e:
            raise ConfigError(f"predictors: {e}") from None
    keys = list(bench.rows)
    if rows is not None:
        keys = [keys[i] for i in sorted(np.random.default_rng(0).choice(len(keys), min(rows, len(keys)), replace=False))]
    archs = [Architecture(dict(zip(space.fields, key))) for key in keys]
    try:
        y = [bench.rows[k][target] for k in keys]
    except KeyError:
        raise ConfigError(f"target: {bench.name} has no column {target!r}") from None
    groups = [space.canonical_key(a) for a in archs]
    factories = {n: (lambda seed, n=n: make_predictor(n, space, seed, **options(n))) for n in names}
    records = evaluate(factories, archs, y, sizes, range(seeds), n_test=n_test, groups=groups)
    out: dict[str, Any] = {"table": format_table(records, metric), "summary": summarize(records), "json": None,
                           "plot": None}
    if out_dir is not None:
        meta = {"dataset": dataset, "target": target, "predictors": names, "sizes": list(sizes), "seeds": seeds,
                "n_test": n_test, "rows": len(archs)}
        out["json"] = write_json(Path(out_dir) / f"predictors_{dataset}.json", records, meta)
        out["plot"] = plot(records, Path(out_dir) / f"predictors_{dataset}.png", title=f"{bench.name}: held-out {n_test}")
    return out
