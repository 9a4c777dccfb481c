"""`predictor-search` (issue 19) against `nsga2`, `evolution`, Optuna's NSGA-II and random search on NAS-Bench-Graph.

Every table (cora, citeseer, pubmed) is searched through the built-in graph-aware space, through
`plain_space()` (the same decisions written as a user's plain `Space`, field by field) and through
`plain_space(graph=True)` (that plain space with its cell declared, `declared`), with the same
settings everywhere (every strategy's defaults; no per-table tuning). Each search runs through `nas.search`
(simulated clock, one worker, deduplication); an evaluation is one table lookup (the 9 all-skip
architectures absent from the table fail and count, as in core_benchmark.py).

1. Two objectives (max valid_acc, min latency_s, both read from the table, so both predicted; core_benchmark.py's
   hypervolume fraction of the true front and reference point). The target is 98 % of plain `nsga2`'s mean
   hypervolume after 300 evaluations; reported: the first budget at which `predictor-search`'s mean curve (over
   seeds) reaches it (acceptance <= 75, stretch <= 38), per-seed budgets, and every method's mean HV with its
   95 % t-interval at 38, 75, 100 (and nsga2 at 300), with the protocol's RI over random at 75.
2. One objective (max valid_acc): the first budget at which `predictor-search`'s mean best-so-far curve reaches
   plain `evolution`'s mean best at 300 (acceptance <= 100), with evolution and random at the same budgets.
3. Seconds per ask of `predictor-search` after 1,000 results (cora, two objectives; one thread).
4. Transfer (issue 19 part 4): `predictor-search+transfer` is `predictor-search` given the other two tables' rows
   as a related task (`PredictorSearch(transfer=...)`; cora <- citeseer + pubmed, and so on), in the same tables.
   The tables share their architectures; their validation accuracies agree to Kendall tau 0.32-0.39 (and not at
   all within each table's top 10 %), their latencies to 0.65-0.78.
5. `--structure`: how much of each table's valid_acc the five decisions explain with (nearly) the whole table to
   learn from, within the top 100 rows especially, where both acceptance targets lie (`accuracy_structure`).

    .venv/bin/python experiments/predictor_search.py                 # everything (resumes from the runs file)
    .venv/bin/python experiments/predictor_search.py --seeds 3 --datasets cora --spaces plain   # a smaller run
    .venv/bin/python experiments/predictor_search.py --report        # tables from the recorded runs only

Runs are appended to results/predictor_search_runs.json as they finish (a cut-off run keeps them; re-running
skips them); the report goes to results/predictor_search.json. Seeds 100..109 (the defaults were chosen on
cora, seeds 0..4).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread: a shared machine
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools
import json
import logging
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core_benchmark as cb  # noqa: E402  (the NAS-Bench-Graph protocol: facts, hypervolume fraction)
from reporting import git_commit, protocol_report, protocol_table  # noqa: E402
from strategies_blackbox import _bench as bench  # noqa: E402  (a table and its facts, built-in or plain space)

from nas.predictors.selection import FOREST  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
RUNS = RESULTS / "predictor_search_runs.json"
DATASETS = ("cora", "citeseer", "pubmed")
SPACES = ("builtin", "plain", "declared")
SEEDS = tuple(range(100, 110))
TRANSFER = "predictor-search+transfer"  # predictor-search with the other two tables' results as a transfer prior
BUDGETS = {"multi": {"predictor-search": 100, TRANSFER: 100, "nsga2": 300, "optuna-nsga2": 100, "random": 300},
           "single": {"predictor-search": 100, TRANSFER: 100, "evolution": 300, "random": 300}}
FIELDS = ("link", "op1", "op2", "op3", "op4")
_PRIORS: dict[tuple[str, str], Any] = {}  # (dataset, space) -> TransferPrior, built once per worker process
CHECKPOINTS = {"multi": (38, 75, 100), "single": (38, 75, 100)}
TARGET_FRACTION = 0.98
OBJECTIVES = {"multi": {"valid_acc": "max", "latency_s": "min"}, "single": {"valid_acc": "max"}}

def share_declared(runs: dict[str, Any]) -> None:
    """Give the `declared` space the `plain` space's Optuna runs (in place): Optuna's study samples the table's
    fields whatever the space declares. Every other strategy runs on the declared space itself, since the
    declared cell also gives canonical keys (twins answered from the cache, not evaluated)."""
    for key, rec in list(runs.items()):
        kind, sp, ds, method, seed = key.split("|")
        if sp == "plain" and method == "optuna-nsga2":
            runs.setdefault("|".join((kind, "declared", ds, method, seed)), rec)


def curve(kind: str, trials: Sequence[Mapping[str, float] | None], budget: int, facts: Mapping[str, Any]) -> list[float]:
    """After each evaluation: the HV fraction of the completed points so far (multi) or the best valid_acc."""
    out, done = [], []
    best = -np.inf
    for m in trials[:budget]:
        if m is not None:
            done.append(m)
            best = max(best, m["valid_acc"])
        out.append(cb.hv_fraction(done, facts) if kind == "multi" and done else
                   (0.0 if kind == "multi" else float(best)))
    out += [out[-1]] * (budget - len(out))
    return out


def run_task(task: tuple[str, str, str, str, int], options: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """One search -> its curve and seconds."""
    import torch

    import nas

    torch.set_num_threads(1)
    logging.getLogger("nas").setLevel(logging.ERROR)
    kind, space, ds, method, seed = task
    b, facts = bench(ds, space)
    budget = BUDGETS[kind][method]
    t0 = time.perf_counter()
    if method == "optuna-nsga2":
        trials = optuna_trials(b, seed, budget)
    else:
        opts = dict(options or {}) if method.startswith("predictor-search") else {}
        strategy: Any = method
        if method == TRANSFER:  # the prior is built once per worker: a live object, so the strategy is one too
            from nas.objectives import Problem
            from nas.strategies.predictor_search import PredictorSearch

            strategy = PredictorSearch(b.space, Problem.make(OBJECTIVES[kind]), seed, transfer=transfer_prior(ds, space),
                                       **opts)
            opts = {}
        r = nas.search(b.space, b, OBJECTIVES[kind], strategy=strategy, budget=budget, seed=seed,
                       executor=nas.SimulatedClockExecutor(workers=1), strategy_options=opts)
        trials = [dict(t.metrics) if t.status == "ok" else None for t in r.trials if t.status != "infeasible"]
    sec = time.perf_counter() - t0
    return "|".join(map(str, task)), {"curve": curve(kind, trials, budget, facts), "seconds": sec,
                                      "evaluations": len(trials)}


def transfer_prior(ds: str, space: str) -> Any:
    """The other two tables' rows (every metric) as `ds`'s transfer prior, as if those data sets had been searched
    before: what `PredictorSearch(transfer=...)` reads from their workdirs, built in memory here."""
    from nas.predictors.transfer import TransferPrior

    if (ds, space) not in _PRIORS:
        b, _ = bench(ds, space)
        others = [d for d in DATASETS if d != ds]
        sources = [[(dict(zip(FIELDS, k)), row) for k, row in bench(d, space)[0].rows.items()] for d in others]
        _PRIORS[(ds, space)] = TransferPrior(b.space, sources, others)
    return _PRIORS[(ds, space)]


def optuna_trials(b: Any, seed: int, budget: int) -> list[dict[str, float] | None]:
    """Optuna's NSGAIISampler on the same lookup (core_benchmark.py's suggest), metrics per trial in order."""
    optuna = cb._optuna()
    out: list[dict[str, float] | None] = []

    def objective(trial: Any) -> tuple[float, float]:
        try:
            m = b(cb._suggest(trial))
        except LookupError:
            out.append(None)
            raise
        out.append(m)
        return m["valid_acc"], m["latency_s"]

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=seed))
    study.optimize(objective, n_trials=budget, catch=(LookupError,))
    return out


def ask_seconds(results: int = 1000, asks: int = 12) -> dict[str, Any]:
    """Seconds per ask (+ tell) of predictor-search after `results` random results (cora, two objectives)."""
    import torch

    from nas.objectives import Problem
    from nas.strategies import TrialResult, make_strategy

    torch.set_num_threads(1)
    b, _ = bench("cora", "plain")
    strat = make_strategy("predictor-search", b.space, Problem.make(OBJECTIVES["multi"]), 0)
    rng = np.random.default_rng(0)
    while len(strat.history) < results:
        a = b.space.sample(rng)
        try:
            strat.tell(a, TrialResult(b(a)))
        except LookupError:
            continue
    times = []
    for _ in range(asks):
        t0 = time.perf_counter()
        (a,) = strat.ask(1)
        times.append(time.perf_counter() - t0)
        try:
            strat.tell(a, TrialResult(b(a)))
        except LookupError:
            strat.tell(a, TrialResult({}, "failed"))
    return {"results": results, "asks": asks, "mean_s": float(np.mean(times)), "max_s": float(np.max(times)),
            "times_s": times, "load_average": list(os.getloadavg())}


# the plain space's default forest as `nas.predictors.selection` builds it (figures recorded before session 12 used
# a 50-tree forest on one-hot), beside a one-hot GP and the WL graph GP
PREDICTOR_CANDIDATES = {"rf": FOREST, "gp": ("gp", {}), "wl-gp": ("wl-gp", {})}
PREDICTOR_SIZES = (10, 20, 50, 100)


def predictor_figures(seeds: int = 5, n_test: int = 500) -> dict[str, Any]:
    """Why `rf` is the default: Kendall tau / Spearman / top-5 % precision on the plain space (valid_acc and
    latency_s, 500 held-out random architectures) at N = 10..100, and seconds per fit + predict at N = 1,000."""
    import torch

    from nas.predictors import make_predictor
    from nas.predictors.harness import scores

    torch.set_num_threads(1)
    logging.getLogger("nas").setLevel(logging.ERROR)
    out: dict[str, Any] = {"sizes": list(PREDICTOR_SIZES), "seeds": seeds, "n_test": n_test, "tables": {}}
    for ds in DATASETS:
        b, _ = bench(ds, "plain")
        keys = list(b)
        for metric in ("valid_acc", "latency_s"):
            cell: dict[str, Any] = {}
            for name, (registered, options) in PREDICTOR_CANDIDATES.items():
                per_n: dict[str, list[dict[str, float]]] = {str(n): [] for n in PREDICTOR_SIZES}
                for seed in range(seeds):
                    rng = np.random.default_rng(seed)
                    order = rng.permutation(len(keys))
                    archs = [b.space.validate(dict(zip(("link", "op1", "op2", "op3", "op4"), keys[i]))) for i in order[: n_test + max(PREDICTOR_SIZES)]]
                    y = np.array([b(a)[metric] for a in archs])
                    for n in PREDICTOR_SIZES:
                        p = make_predictor(registered, b.space, seed, **options).fit(archs[n_test:n_test + n], y[n_test:n_test + n])
                        per_n[str(n)].append(scores(y[:n_test], p.predict(archs[:n_test])[0]))
                cell[name] = {n: {k: float(np.mean([r[k] for r in rs])) for k in ("kendall_tau", "spearman_rho", "top_precision")}
                              for n, rs in per_n.items()}
            out["tables"][f"{ds}/{metric}"] = cell
    b, _ = bench("cora", "plain")
    rng = np.random.default_rng(0)
    archs = [b.space.sample(rng) for _ in range(1200)]
    archs = [a for a in archs if b.key(a) in b.rows][:1000]
    y = np.array([b(a)["valid_acc"] for a in archs])
    out["seconds_fit_predict_at_1000"] = {}
    for name, (registered, options) in PREDICTOR_CANDIDATES.items():
        t0 = time.perf_counter()
        make_predictor(registered, b.space, 0, **options).fit(archs, y).predict(archs[:500])
        out["seconds_fit_predict_at_1000"][name] = time.perf_counter() - t0
    return out


def print_predictors(fig: Mapping[str, Any]) -> None:
    print(f"\npredictors on the plain space: Kendall tau on {fig['n_test']} held-out architectures, mean of "
          f"{fig['seeds']} seeds (N = {', '.join(map(str, fig['sizes']))})")
    for table, cell in fig["tables"].items():
        print(f"  {table:<20}" + "  ".join(f"{name} " + "/".join(f"{cell[name][str(n)]['kendall_tau']:.2f}" for n in fig["sizes"])
                                          for name in cell))
    print("  seconds per fit + predict at N = 1,000: " + ", ".join(f"{k} {v:.2f}" for k, v in fig["seconds_fit_predict_at_1000"].items()))


def accuracy_structure(folds: int = 5, top: int = 100) -> dict[str, Any]:
    """How much of each table's valid_acc the five decisions explain, with the whole table to learn from (a ceiling
    for any predictor on this encoding): a ridge on the one-hot codes (main effects), the same with link x op
    interactions (both in-sample), and a 100-tree forest out of fold (`folds`-fold, 80 % of the table to train on).
    Per model: R^2 (in-sample models), Kendall tau over every row and within the table's `top` rows, the true
    accuracy of the model's highest-rated row and the best true accuracy among its `top` highest-rated rows (what
    spending `top` evaluations on its ranking finds), and how many rows the model rates above the table's best."""
    from scipy.stats import kendalltau
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import OneHotEncoder

    out: dict[str, Any] = {"folds": folds, "top": top, "tables": {}}
    for ds in DATASETS:
        b, _ = bench(ds, "plain")
        keys = [k for k in b if k in b.rows]
        rows = np.array([[str(v) for v in k] for k in keys])
        y = np.array([b(b.space.validate(dict(zip(FIELDS, k))))["valid_acc"] for k in keys])
        best, best_top = int(np.argmax(y)), np.argsort(-y)[:top]
        pairs = np.column_stack([rows] + [np.char.add(np.char.add(rows[:, 0], "|"), rows[:, i]) for i in range(1, 5)])
        onehot = OneHotEncoder().fit_transform(rows)
        preds: dict[str, tuple[np.ndarray, float | None]] = {}
        for name, x in (("additive", onehot), ("additive + link x op", OneHotEncoder().fit_transform(pairs))):
            model = Ridge(alpha=1.0).fit(x, y)
            preds[name] = (model.predict(x), float(model.score(x, y)))
        x = onehot
        oof = np.zeros(len(y))
        for train, test in KFold(folds, shuffle=True, random_state=0).split(x):
            forest = RandomForestRegressor(100, min_samples_leaf=2, random_state=0, n_jobs=1).fit(x[train], y[train])
            oof[test] = forest.predict(x[test])
        preds[f"forest, out of fold ({folds}-fold)"] = (oof, None)
        cell: dict[str, Any] = {"rows": len(y), "best_valid_acc": float(y[best])}
        for name, (p, r2) in preds.items():
            cell[name] = {"r2": r2, "kendall_tau": float(kendalltau(p, y)[0]),
                          f"kendall_tau_top{top}": float(kendalltau(p[best_top], y[best_top])[0]),
                          "valid_acc_of_argmax": float(y[int(np.argmax(p))]),
                          f"best_valid_acc_of_its_top{top}": float(y[np.argsort(-p)[:top]].max()),
                          "rows_rated_above_the_best": int((p > p[best]).sum())}
        out["tables"][ds] = cell
    return out


def print_structure(fig: Mapping[str, Any]) -> None:
    print(f"\nvalid_acc explained by the decisions, whole table (tau within the top {fig['top']} rows; "
          "argmax = true valid_acc of the model's top-rated row)")
    top_tau, top_best = f"kendall_tau_top{fig['top']}", f"best_valid_acc_of_its_top{fig['top']}"
    for ds, cell in fig["tables"].items():
        for name, m in cell.items():
            if isinstance(m, dict):
                r2 = f"R2 {m['r2']:.3f} " if m["r2"] is not None else ""
                print(f"  {ds:<9} {name:<28} {r2}tau {m['kendall_tau']:.3f}  tau top {m[top_tau]:.3f}"
                      f"  argmax {m['valid_acc_of_argmax']:.4f}, best of its top {fig['top']} "
                      f"{m[top_best]:.4f} (table best {cell['best_valid_acc']:.4f}, "
                      f"{m['rows_rated_above_the_best']} rows rated above it)")


# ---------------------------------------------------------------------------------------- the report
def first_reaching(values: np.ndarray, target: float) -> int | None:
    hit = np.flatnonzero(values >= target - 1e-12)
    return int(hit[0]) + 1 if len(hit) else None


def report(runs: Mapping[str, Any], datasets: Sequence[str], spaces: Sequence[str], seeds: Sequence[int]) -> dict:
    out: dict[str, Any] = {}
    for kind in ("multi", "single"):
        ref = "nsga2" if kind == "multi" else "evolution"
        for space in spaces:
            for ds in datasets:
                methods = [m for m in BUDGETS[kind]
                           if all(f"{kind}|{space}|{ds}|{m}|{s}" in runs for s in seeds)]
                if ref not in methods or "predictor-search" not in methods:
                    continue
                arr = {m: np.array([runs[f"{kind}|{space}|{ds}|{m}|{s}"]["curve"] for s in seeds]) for m in methods}
                target = (TARGET_FRACTION if kind == "multi" else 1.0) * float(arr[ref][:, 299].mean())
                ps = arr["predictor-search"]
                entry: dict[str, Any] = {
                    "transfer_evaluations_to_target_mean_curve": (first_reaching(arr[TRANSFER].mean(axis=0), target)
                                                                  if TRANSFER in arr else None),
                    "target": target, "target_rule": (f"{TARGET_FRACTION} x nsga2's mean HV fraction at 300" if kind == "multi"
                                                      else "evolution's mean best valid_acc at 300"),
                    "evaluations_to_target_mean_curve": first_reaching(ps.mean(axis=0), target),
                    "evaluations_to_target_per_seed": [first_reaching(c, target) for c in ps],
                    "reference_at_300": cb.summarize(arr[ref][:, 299]),
                    # how many evaluations the reference's mean curve needs to match predictor-search's at 75 / 100
                    "reference_evaluations_to_match": {str(c): first_reaching(arr[ref].mean(axis=0), float(ps.mean(axis=0)[c - 1]))
                                                       for c in (75, 100)},
                    "methods": {m: {str(c): cb.summarize(a[:, c - 1]) for c in CHECKPOINTS[kind] if c <= a.shape[1]}
                                for m, a in arr.items()},
                    "seconds_per_run": {m: float(np.mean([runs[f"{kind}|{space}|{ds}|{m}|{s}"]["seconds"] for s in seeds]))
                                        for m in methods}}
                c = 75
                rep = protocol_report({m: list(a[:, c - 1]) for m, a in arr.items()}, direction="max",
                                      baseline="random", label=f"{kind} {space} {ds} @{c}",
                                      budgets={m: float(c) for m in arr})
                entry["protocol@75"] = {**rep.to_dict(), "table": protocol_table(rep)}
                out.setdefault(kind, {}).setdefault(space, {})[ds] = entry
    return out


def print_report(rep: Mapping[str, Any]) -> None:
    for kind, by_space in rep.items():
        if kind not in ("multi", "single"):
            continue
        figure = "HV fraction" if kind == "multi" else "best valid_acc"
        for space, by_ds in by_space.items():
            for ds, e in by_ds.items():
                print(f"\n=== {kind} / {space} space / {ds}: {figure}, mean [95 % CI] over {len(e['evaluations_to_target_per_seed'])} seeds")
                cps = CHECKPOINTS[kind]
                print(f"{'method':<26}" + "".join(f"{'@' + str(c):>26}" for c in cps))
                for m, by_c in e["methods"].items():
                    cells = [f"{by_c[str(c)]['mean']:.4f} [{by_c[str(c)]['ci95_low']:.4f}, {by_c[str(c)]['ci95_high']:.4f}]"
                             if str(c) in by_c else "" for c in cps]
                    print(f"{m:<26}" + "".join(f"{x:>26}" for x in cells))
                r = e["reference_at_300"]
                print(f"reference at 300: {r['mean']:.4f} [{r['ci95_low']:.4f}, {r['ci95_high']:.4f}]; target "
                      f"({e['target_rule']}) = {e['target']:.4f}; predictor-search's mean curve reaches it after "
                      f"{e['evaluations_to_target_mean_curve']} evaluations; per seed {e['evaluations_to_target_per_seed']}; "
                      f"the reference's mean curve needs {e['reference_evaluations_to_match']['75']} / "
                      f"{e['reference_evaluations_to_match']['100']} evaluations to match predictor-search's at 75 / 100; "
                      f"with transfer: {e.get('transfer_evaluations_to_target_mean_curve')}")
    if "ask_seconds" in rep:
        a = rep["ask_seconds"]
        print(f"\nseconds per ask after {a['results']} results: mean {a['mean_s']:.3f}, max {a['max_s']:.3f} "
              f"(load average {a['load_average'][0]:.1f})")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--spaces", nargs="*", default=list(SPACES), choices=SPACES)
    ap.add_argument("--kinds", nargs="*", default=["multi", "single"], choices=["multi", "single"])
    ap.add_argument("--seeds", type=int, default=len(SEEDS), help="how many seeds (default 10)")
    ap.add_argument("--first-seed", type=int, default=SEEDS[0], help="100 (reported); the pilot used 0")
    ap.add_argument("--options", type=json.loads, default={},
                    help="predictor-search options as JSON (pilots only: the reported runs use the defaults)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="only the tables from the recorded runs")
    ap.add_argument("--runs", type=Path, default=RUNS)
    ap.add_argument("--no-ask", action="store_true", help="skip the seconds-per-ask measurement")
    ap.add_argument("--only-extras", action="store_true",
                    help="no searches: the report from the recorded runs, plus the ask timing and --predictors figures")
    ap.add_argument("--predictors", action="store_true", help="also the predictor figures behind the default")
    ap.add_argument("--structure", action="store_true",
                    help="also how much of valid_acc the decisions explain with the whole table to learn from")
    args = ap.parse_args(argv)
    started = time.time()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    runs: dict[str, Any] = json.loads(args.runs.read_text()) if args.runs.exists() else {}
    if not args.report and not args.only_extras:
        share_declared(runs)
        tasks = [(k, sp, ds, m, s) for k in args.kinds for sp in args.spaces for ds in args.datasets
                 for m in BUDGETS[k] for s in seeds
                 if not (m == "optuna-nsga2" and sp != "builtin")  # Optuna sees one encoding: its runs are shared
                 and "|".join(map(str, (k, sp, ds, m, s))) not in runs]
        tasks.sort(key=lambda t: not t[3].startswith("predictor-search"))  # the long runs first
        with ProcessPoolExecutor(args.jobs) as pool:
            for key, rec in pool.map(functools.partial(run_task, options=args.options), tasks):
                runs[key] = rec
                if key.split("|")[3] == "optuna-nsga2":  # the same study for both encodings
                    runs[key.replace("|builtin|", "|plain|")] = rec
                share_declared(runs)
                args.runs.write_text(json.dumps(runs))
                print(f"  {key}: final {rec['curve'][-1]:.4f} ({rec['seconds']:.1f} s)", flush=True)
    rep = report(runs, args.datasets, args.spaces, seeds)
    if args.predictors:
        rep["predictors"] = predictor_figures()
    if args.structure:
        rep["accuracy_structure"] = accuracy_structure()
    if (not args.report or args.only_extras) and not args.no_ask:
        rep["ask_seconds"] = ask_seconds()
    if (RESULTS / "predictor_search.json").exists():
        old = json.loads((RESULTS / "predictor_search.json").read_text())
        rep.update({k: old[k] for k in ("ask_seconds", "predictors", "accuracy_structure") if k in old and k not in rep})
    rep["meta"] = {"command": " ".join(["experiments/predictor_search.py", *(sys.argv[1:] if argv is None else argv)]),
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_commit": git_commit(),
                   "python": platform.python_version(), "cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
                   "seeds": seeds, "budgets": BUDGETS, "wall_seconds": time.time() - started,
                   "settings": "every strategy's defaults on every table and space"}
    print_report(rep)
    if "predictors" in rep:
        print_predictors(rep["predictors"])
    if "accuracy_structure" in rep:
        print_structure(rep["accuracy_structure"])
    if args.runs == RUNS:  # pilots (another runs file) print only
        (RESULTS / "predictor_search.json").write_text(json.dumps(rep, indent=1))
        print(f"\nwrote {RESULTS / 'predictor_search.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
