"""Auto-GNN on Cora and CiteSeer: the conservative controller with and without parameter sharing, rl and random
at the same number of trainings, beside the 2-layer GCN trained by the same evaluator (issue 25 part 3).

Per dataset and seed s, each method runs `nas.search(space, evaluate, {"valid_acc": "max"}, strategy=...,
budget=B, seed=s)` over `GNNSpace` (default options), B trainings each:
- `autognn+sharing`: the `autognn` strategy (Auto-GNN's action classes, `GNN_ACTION_CLASSES`) with
  `SharedWeightsEvaluator(seed=s)`: a child inherits every layer whose key matches stored weights and then
  trains 10 epochs; a child that inherits nothing trains the full recipe;
- `autognn`: the same strategy with full training (`NodeClassificationEvaluator(seed=s)`);
- `rl` and `random` with full training.
Full training is `gnn_planetoid.py`'s recipe (Adam lr 0.01, weight decay 5e-4, dropout 0.5, at most 200 epochs,
early stop after 20 epochs without a new lowest validation loss, metrics at the best-validation epoch). Every
pick is chosen on validation accuracy only; its test accuracy is that of the full recipe with seed s (the
sharing method's pick is retrained from scratch), beside the 2-layer GCN (`gnn_planetoid.GCN`) trained by the
same evaluator. The same (architecture, seed) is trained once and reused by every method (the evaluator is
deterministic); a method's cost is the sum of its trainings' seconds.

Parameter sharing is also measured on its own: every child of the sharing searches that inherited at least one
layer is trained again from scratch for the same 10 epochs (same seed); paired differences of validation and
test accuracy, inherited minus scratch.

Protocol (experiments/reporting.py): per seed, the random-sampling average (mean test accuracy of random
search's trainings), every method's pick and the GCN, as relative improvement over the random average with
95 % intervals and cost; paired differences (same seeds) pick - GCN and method - random. Runs are cached per
(dataset, method, seed) as JSON lines (`--cache`); a rerun with the same settings resumes. Each training is also
kept as it finishes (`<dataset>_seed<s>.progress.jsonl` beside them, not committed), so a run killed mid-search
retrains nothing on resume.

    .venv/bin/python experiments/autognn.py                       # cora + citeseer, seeds 0..4, budget 10
    .venv/bin/python experiments/autognn.py --datasets cora        # one dataset (run two in parallel)
    .venv/bin/python experiments/autognn.py --cached-only          # the table from the finished seeds, no training
    .venv/bin/python experiments/autognn.py --quick                # smoke run: cora, seed 0, budget 3, 30 epochs
    .venv/bin/python experiments/autognn.py --space appnp-dropout --budget 20 --methods autognn rl random

`--space appnp-dropout` searches `GNNSpace(ops=OPS + EXTRA_OPS, dropouts=(0.5, 0.6, 0.7, 0.8))`: APPNP's
propagation as an op and the dropout rate as a decision (results/autognn_appnp-dropout.json and its own cache
folder). There the GCN row is Kipf's GCN (dropout 0.5) and a second control, `gcn-tuned`, is the same GCN with
its dropout rate picked on validation from the space's four: what a user tunes before searching.

`--reselect K --repeats R`: one validation score (500 nodes) does not separate architectures a point apart, so
each search's top K trials by validation are trained again under R more seeds (seed + 1000 j) and the pick is
the one with the highest validation accuracy averaged over its R + 1 trainings. Every method, the GCN and the
tuned GCN are then reported by their test accuracy averaged over the same R + 1 seeds, and the K R extra
trainings count in each method's cost. A longer search replays a shorter one's trainings from the cache (a
search's proposals do not depend on its budget), so `--budget 40` after `--budget 20` trains only the new ones:

    .venv/bin/python experiments/autognn.py --space appnp-dropout --budget 40 --reselect 3 --methods autognn rl random

`--patience N` (with `--epochs`) changes the recipe's early stopping for every training, GCN included, e.g. GAT's
and APPNP's 100 epochs (experiments/gnn_known_archs.py measured it helps validation pick APPNP on Cora); its runs
go to their own files (`autognn_<space>_patience<N>.json`, cache folder likewise):

    .venv/bin/python experiments/autognn.py --space appnp-dropout --patience 100 --epochs 300 --budget 20 --datasets cora
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

import nas
from nas.spaces.gnn import EXTRA_OPS, OPS, GNNSpace, NodeClassificationEvaluator
from nas.spaces.gnn_sharing import GNN_ACTION_CLASSES, SharedWeightsEvaluator
from gnn_planetoid import GCN, describe  # noqa: E402  (experiments/ is on sys.path)
from gnn_table_search import fmt_diff, paired  # noqa: E402
from reporting import append_cache, git_commit, protocol_report, protocol_table, read_cache  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("cora", "citeseer")
METHODS = ("autognn+sharing", "autognn", "rl", "random")
STRATEGY = {"autognn+sharing": "autognn", "autognn": "autognn", "rl": "rl", "random": "random"}
PATIENCE = 20  # the search recipe's early stopping (NodeClassificationEvaluator's default); `--patience` changes it
# rl's default batch of 10 results would leave rl no policy step before its last proposal at budget 10: both
# REINFORCE methods step every 5 results; random has no options
OPTIONS: dict[str, dict[str, Any]] = {"autognn": {"classes": GNN_ACTION_CLASSES, "batch_size": 5}, "rl": {"batch_size": 5}}
TARGET = 0.01  # the pick should beat the GCN by at least 1 point of mean test accuracy
# The spaces searched (GNNSpace options): Auto-GNN's as built in, and the same with APPNP's propagation as an op
# and the dropout rate as a decision (GraphNAS searches it too); 0.5 is the default rate, so the first is inside.
SPACES: dict[str, dict[str, Any]] = {"default": {},
                                     "appnp-dropout": {"ops": OPS + EXTRA_OPS, "dropouts": (0.5, 0.6, 0.7, 0.8)}}


@dataclass(frozen=True)
class Settings:
    """What a cached run depends on: a run recorded under other settings is not reused."""

    budget: int = 10
    epochs: int = 200
    share_epochs: int = 10
    space: str = "default"
    reselect: int = 0  # the search's top `reselect` trials (by validation) are retrained under `repeats` more seeds
    repeats: int = 0
    patience: int = PATIENCE  # early stop after this many epochs without a new lowest validation loss

    def key(self) -> str:
        fields = asdict(self)
        if self.space == "default":  # runs cached before spaces were named stay valid
            del fields["space"]
        else:
            fields["space_options"] = SPACES[self.space]
        if not self.reselect:  # and those cached before reselection existed
            del fields["reselect"], fields["repeats"]
        if self.patience == PATIENCE:  # and those cached before the patience was a setting
            del fields["patience"]
        return json.dumps({**fields, "options": OPTIONS}, sort_keys=True, default=list)


def make_space(data: Any, name: str) -> GNNSpace:
    """The GNNSpace named `name` (`SPACES`) for the graph `data`."""
    return GNNSpace(data.num_features, int(data.y.max()) + 1, example_graph=data, **SPACES[name])


def gcn_arch(space: GNNSpace) -> dict[str, Any]:
    """Kipf & Welling's 2-layer GCN as an architecture of `space` (dropout 0.5 where dropout is a decision)."""
    return {**GCN, "dropout": 0.5} if "dropout" in space.fields else dict(GCN)


class Cache:
    """Finished records as JSON lines, one per (kind, method, seed[, arch]); appended as they finish."""

    def __init__(self, path: Path, dataset: str, settings: Settings) -> None:
        self.path, self.dataset, self.settings = path, dataset, settings.key()
        self.every = read_cache(path)  # every setting's records: a longer search replays a shorter one's trainings
        mine = [r for r in self.every if r.get("dataset") == dataset and r.get("settings") == self.settings]
        self.records: dict[str, dict[str, Any]] = {r["key"]: r for r in mine}
        self.recipe = recipe(self.settings)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        record = {"key": key, "dataset": self.dataset, "settings": self.settings, **record}
        append_cache(self.path, record)
        self.records[key] = record
        return record

    def trainings(self, seed: int) -> dict[str, dict[str, float]]:
        """Single trainings (arch id -> metrics) under `seed` with this recipe, cached under any budget."""
        return {r["id"]: {k: v for k, v in r.items() if isinstance(v, float)} for r in self.every
                if r.get("kind") == "train" and r.get("seed") == seed and r.get("dataset") == self.dataset
                and recipe(r["settings"]) == self.recipe}


def recipe(settings_key: str) -> tuple[Any, Any, Any]:
    """What a training under the settings `settings_key` depends on: epochs, patience and space options (not the
    budget)."""
    fields = json.loads(settings_key)
    return fields.get("epochs"), fields.get("patience", PATIENCE), fields.get("space_options")


class Memo:
    """The full-recipe evaluator of one (dataset, seed), training each architecture once for every method.

    `recorded` (arch id -> metrics) holds trainings made before with the same recipe and seed (gnn_planetoid.py's
    JSON): the evaluator is deterministic, so they are read instead of trained again. `cache` keeps each new
    training as it finishes and hands back those of earlier processes (any budget, same recipe), so a killed run
    loses at most the training under way. `trained` counts trainings not replayed from `recorded`.
    """

    def __init__(self, space: GNNSpace, data: Any, seed: int, epochs: int,
                 recorded: Mapping[str, Mapping[str, float]] | None = None, cache: Cache | None = None,
                 patience: int = PATIENCE) -> None:
        self.evaluate = NodeClassificationEvaluator(space, data, epochs=epochs, seed=seed, patience=patience)
        self.done: dict[str, dict[str, float]] = {k: dict(v) for k, v in (recorded or {}).items()}
        self.cache = cache
        self.kept = {k: v for k, v in (cache.trainings(seed) if cache is not None else {}).items() if k not in self.done}
        self.trained = 0

    def __call__(self, arch: Any, budget: float | None = None) -> dict[str, float]:
        arch = self.evaluate.space.validate(arch)
        if arch.id in self.kept:  # trained by an earlier process that did not finish its run
            self.done[arch.id] = self.kept.pop(arch.id)
            self.trained += 1
        if arch.id not in self.done:
            self.done[arch.id] = self.evaluate(arch)
            self.trained += 1
            if self.cache is not None:
                self.cache.put(f"train/{self.evaluate.seed}/{arch.id}",
                               {"kind": "train", "seed": self.evaluate.seed, "id": arch.id, **self.done[arch.id]})
        return dict(self.done[arch.id])


RECORDED_KEYS = ("train_acc", "valid_acc", "test_acc", "best_epoch", "epochs", "train_seconds", "params")


def recorded_trainings(path: Path | None, dataset: str, seed: int, epochs: int, patience: int = PATIENCE
                       ) -> tuple[dict[str, dict[str, float]], dict[str, float] | None]:
    """gnn_planetoid.py's trainings of `dataset` under `seed`, if made with `epochs` and `patience` (it records no
    patience: it trains with the default): its random search's (arch id -> metrics) and its GCN's metrics (None
    when absent)."""
    if path is None or not path.exists():
        return {}, None
    doc = json.loads(path.read_text())
    recorded = doc.get("settings", {})
    if recorded.get("epochs") != epochs or recorded.get("patience", PATIENCE) != patience:
        return {}, None
    for run in doc.get("results", {}).get(dataset, {}).get("runs", []):
        if run["seed"] == seed:
            trials = {t["id"]: {k: t[k] for k in RECORDED_KEYS} for t in run["trials"] if all(k in t for k in RECORDED_KEYS)}
            return trials, run.get("gcn")
    return {}, None


def earlier_trainings(cache: Cache) -> dict[str, dict[str, float]]:
    """Full-recipe trainings (arch id -> metrics) recorded in `cache`'s file by searches of the same space, epochs
    and dataset under any budget: a search's proposals do not depend on its budget, so a longer search replays a
    shorter one's trainings before it trains anything new."""
    out: dict[str, dict[str, float]] = {}
    for r in cache.every:
        if r.get("kind") != "run" or r.get("dataset") != cache.dataset or r.get("method") == "autognn+sharing":
            continue
        if recipe(r["settings"]) == cache.recipe:
            out.update({t["id"]: {k: t[k] for k in ("valid_acc", "test_acc", "epochs", "train_seconds", "params")}
                        for t in r["trials"]})
    return out


def reselect(run: Mapping[str, Any], memo: Memo, extra: Sequence[Memo], top: int) -> dict[str, Any]:
    """The final pick of `run` when one validation score is too noisy to choose by: its `top` trials by validation
    accuracy, each trained under `memo`'s seed and every `extra` seed, and the one whose validation accuracy is
    highest averaged over those seeds (ties: the search's order). Test accuracy is never looked at to choose."""
    ranked = sorted(run["trials"], key=lambda t: -t["valid_acc"])[:top]  # stable: best() breaks ties by order
    candidates = []
    for t in ranked:
        seeds = over_seeds(t["arch"], memo, extra)
        candidates.append({"id": t["id"], "summary": t["summary"], "arch": t["arch"],
                           "valid_acc_seeds": [x["valid_acc"] for x in seeds],
                           "test_acc_seeds": [x["test_acc"] for x in seeds],
                           "train_seconds": sum(x["train_seconds"] for x in seeds[1:])})
    chosen = max(candidates, key=lambda c: statistics.fmean(c["valid_acc_seeds"]))
    pick = {**run["pick"], **{k: chosen[k] for k in ("id", "summary", "arch", "valid_acc_seeds", "test_acc_seeds")},
            "valid_acc": chosen["valid_acc_seeds"][0], "test_acc": chosen["test_acc_seeds"][0]}
    return {**run, "search_pick": run["pick"], "pick": pick, "reselection": candidates,
            "cost_seconds": run["cost_seconds"] + sum(c["train_seconds"] for c in candidates)}


def over_seeds(arch: Mapping[str, Any], memo: Memo, extra: Sequence[Memo]) -> list[dict[str, float]]:
    """`arch`'s full-recipe metrics under `memo`'s seed, then under each `extra` seed."""
    return [memo(arch)] + [m(arch) for m in extra]


def reported_test(record: Mapping[str, Any]) -> float:
    """A pick's or a control's test accuracy: the mean over its training seeds where it was reselected."""
    return statistics.fmean(record["test_acc_seeds"]) if "test_acc_seeds" in record else record["test_acc"]


def _trial(t: Any) -> dict[str, Any]:
    keep = ("valid_acc", "test_acc", "epochs", "train_seconds", "params", "inherited_layers", "layers")
    return {"id": t.arch_id, "summary": describe(t.architecture), **{k: t.metrics[k] for k in keep if k in t.metrics},
            "arch": t.architecture.to_dict()}


def run_method(space: GNNSpace, data: Any, method: str, seed: int, settings: Settings, memo: Memo) -> dict[str, Any]:
    """One search of `settings.budget` trainings; the pick (by validation) and its full-recipe metrics."""
    if method == "autognn+sharing":
        evaluate: Any = SharedWeightsEvaluator(space, data, epochs=settings.share_epochs,
                                               scratch_epochs=settings.epochs, seed=seed, patience=settings.patience)
    else:
        evaluate = memo
    t0 = time.perf_counter()
    result = nas.search(space, evaluate, {"valid_acc": "max"}, strategy=STRATEGY[method], budget=settings.budget,
                        seed=seed, strategy_options=OPTIONS.get(STRATEGY[method]))
    wall = time.perf_counter() - t0
    best = result.best("valid_acc")
    assert best is not None
    full = memo(best.architecture)
    trials = [_trial(t) for t in result.completed]
    cost = sum(t["train_seconds"] for t in trials) + (full["train_seconds"] if method == "autognn+sharing" else 0.0)
    return {"kind": "run", "method": method, "seed": seed, "trials": trials, "wall_seconds": wall,
            "cost_seconds": cost,
            "pick": {"id": best.arch_id, "summary": describe(best.architecture), "arch": best.architecture.to_dict(),
                     "search_valid_acc": best.metrics["valid_acc"], "search_test_acc": best.metrics["test_acc"],
                     "valid_acc": full["valid_acc"], "test_acc": full["test_acc"],
                     "train_seconds": full["train_seconds"]}}


def finished(cache: Cache, methods: Sequence[str]) -> bool:
    """Whether the cache holds a seed's GCN, every method's run and every inherited child's scratch training."""
    runs = [cache.get(f"run/{m}") for m in methods]
    if cache.get("gcn") is None or any(r is None for r in runs):
        return False
    children = [t["id"] for r in runs if r is not None and r["method"] == "autognn+sharing" for t in r["trials"]
                if t.get("inherited_layers", 0) >= 1]
    return all(cache.get(f"scratch/{i}") is not None for i in children)


def run_dataset(name: str, data: Any, seeds: Sequence[int], settings: Settings, cache_dir: Path,
                methods: Sequence[str] = METHODS, recorded: Path | None = None, log: Any = print,
                cached_only: bool = False) -> dict[str, Any]:
    """Every method and the GCN per seed (cached in `cache_dir/<name>_seed<s>.jsonl`), then the sharing check on
    the inherited children. `recorded`: gnn_planetoid.py's JSON, whose trainings are reused (see `Memo`).
    `cached_only`: train nothing; seeds the cache does not hold completely are left out."""
    space = make_space(data, settings.space)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    gcn: list[dict[str, Any]] = []
    gcn_tuned: list[dict[str, Any]] = []
    sharing: list[dict[str, Any]] = []
    reuse_check: list[dict[str, Any]] = []
    for seed in seeds:
        cache = Cache(cache_dir / f"{name}_seed{seed}.jsonl", name, settings)
        if cached_only and not finished(cache, methods):
            log(f"{name} seed {seed}: not finished in the cache, left out")
            continue
        before, before_gcn = recorded_trainings(recorded, name, seed, settings.epochs, settings.patience)
        progress = Cache(cache_dir / f"{name}_seed{seed}.progress.jsonl", name, settings)  # not committed
        memo = Memo(space, data, seed, settings.epochs, {**before, **earlier_trainings(cache)}, progress,
                    patience=settings.patience)
        extra = [Memo(space, data, seed + 1000 * j, settings.epochs, cache=cache, patience=settings.patience)
                 for j in range(1, settings.repeats + 1)]

        def seeds_of(arch: Mapping[str, Any]) -> dict[str, Any]:
            """A control's accuracies under every training seed, when the picks are reselected over seeds."""
            if not settings.reselect:
                return {}
            trained = over_seeds(arch, memo, extra)
            return {f"{k}_seeds": [r[k] for r in trained] for k in ("valid_acc", "test_acc")}

        rec = cache.get("gcn") or cache.put("gcn", {"kind": "gcn", "seed": seed, **memo(gcn_arch(space)),
                                                    **seeds_of(gcn_arch(space))})
        gcn.append(rec)
        if "dropout" in space.fields:  # the control: the same GCN with its dropout chosen on validation
            tuned = cache.get("gcn-tuned")
            if tuned is None:
                tuned = tune_gcn_dropout(space, memo, seed)
                tuned = cache.put("gcn-tuned", {**tuned, **seeds_of({**GCN, "dropout": tuned["dropout"]})})
            gcn_tuned.append(tuned)
        if before_gcn is not None:  # the determinism reuse relies on: same (architecture, seed), same numbers
            reuse_check.append({"seed": seed, "recorded_test_acc": before_gcn["test_acc"], "test_acc": rec["test_acc"],
                                "same": all(before_gcn[k] == rec[k] for k in ("valid_acc", "test_acc", "epochs"))})
        for method in methods:
            key = f"run/{method}"
            rec = cache.get(key)
            if rec is None:
                trained = memo.trained
                rec = run_method(space, data, method, seed, settings, memo)
                if settings.reselect:
                    rec = reselect(rec, memo, extra, settings.reselect)
                rec = cache.put(key, {**rec, "new_full_trainings": memo.trained - trained})
                log(f"{name} seed {seed} {method}: pick valid {100 * rec['pick']['valid_acc']:.1f} test "
                    f"{100 * rec['pick']['test_acc']:.1f} (GCN {100 * gcn[-1]['test_acc']:.1f}) "
                    f"{rec['pick']['summary']}; {rec['cost_seconds']:.0f} s of training")
            runs[method].append(rec)
        if "autognn+sharing" in methods:  # the same children from scratch, same epochs and seed
            scratch = NodeClassificationEvaluator(space, data, epochs=settings.share_epochs, seed=seed,
                                                  patience=settings.patience)
            for t in runs["autognn+sharing"][-1]["trials"]:
                if t.get("inherited_layers", 0) < 1:
                    continue
                key = f"scratch/{t['id']}"
                rec = cache.get(key) or cache.put(key, {"kind": "scratch", "seed": seed, "id": t["id"],
                                                        **scratch(t["arch"])})
                sharing.append({"seed": seed, "id": t["id"], "inherited_layers": t["inherited_layers"],
                                "layers": t["layers"], "inherited": {m: t[m] for m in ("valid_acc", "test_acc")},
                                "scratch": {m: rec[m] for m in ("valid_acc", "test_acc")}})
    return {"space": settings.space, "space_size": space.size(), "budget": settings.budget,
            "reselect": settings.reselect, "repeats": settings.repeats, "seeds": [g["seed"] for g in gcn], "runs": runs,
            "gcn": gcn, "gcn_tuned": gcn_tuned, "sharing_children": sharing, "reuse_check": reuse_check,
            "summary": summarize(runs, gcn, sharing, name, gcn_tuned) if gcn else None}


def tune_gcn_dropout(space: GNNSpace, memo: Memo, seed: int) -> dict[str, Any]:
    """The GCN under every dropout rate of `space`, the rate picked on validation accuracy (the baseline a user
    tunes first); its metrics and every rate's (valid, test)."""
    rates = list(space.fields["dropout"].options)
    tried = {rate: memo({**GCN, "dropout": rate}) for rate in rates}
    best = max(rates, key=lambda r: (tried[r]["valid_acc"], -tried[r].get("valid_loss", 0.0)))
    return {"kind": "gcn-tuned", "seed": seed, "dropout": best, **tried[best],
            "tried": {str(r): {k: tried[r][k] for k in ("valid_acc", "test_acc")} for r in rates},
            "train_seconds": sum(t["train_seconds"] for t in tried.values())}


def mean_ci(values: Sequence[float]) -> dict[str, float]:
    """Mean, std and 95 % t-interval over seeds."""
    a = np.asarray(values, dtype=float)
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "ci95_low": float(a.mean()) - half, "ci95_high": float(a.mean()) + half, "n": len(a)}


def summarize(runs: Mapping[str, Sequence[Mapping[str, Any]]], gcn: Sequence[Mapping[str, Any]],
              sharing: Sequence[Mapping[str, Any]], name: str,
              gcn_tuned: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    gcn_test = [reported_test(g) for g in gcn]
    tuned_test = [reported_test(g) for g in gcn_tuned]
    out: dict[str, Any] = {"gcn_test_acc": mean_ci(gcn_test), "methods": {}, "paired": {}}
    if tuned_test:
        out["gcn_tuned_test_acc"] = mean_ci(tuned_test)
        out["gcn_tuned_dropouts"] = [g["dropout"] for g in gcn_tuned]
    for m, rs in runs.items():
        test = [reported_test(r["pick"]) for r in rs]
        out["methods"][m] = {"pick_test_acc": mean_ci(test), "pick_valid_acc": mean_ci([r["pick"]["valid_acc"] for r in rs]),
                             "cost_seconds": statistics.fmean(r["cost_seconds"] for r in rs),
                             "pick_minus_gcn": paired(test, gcn_test) if len(rs) > 1 else None,
                             "pick_minus_gcn_tuned": paired(test, tuned_test) if len(rs) > 1 and tuned_test else None,
                             "beats_gcn_by_1_point": statistics.fmean(test) - statistics.fmean(gcn_test) >= TARGET,
                             # where the search spent its trainings, and the best test among them (an oracle pick:
                             # what perfect selection among the same trainings would have scored)
                             "trained_test_mean": mean_ci([statistics.fmean(t["test_acc"] for t in r["trials"]) for r in rs]),
                             "best_trained_test": mean_ci([max(t["test_acc"] for t in r["trials"]) for r in rs])}
        if all("reselection" in r for r in rs) and len(rs) > 1:  # what reselecting added: the same seeds' mean
            unselected = [statistics.fmean(r["reselection"][0]["test_acc_seeds"]) for r in rs]  # the search's pick
            out["methods"][m]["search_pick_test_acc"] = mean_ci(unselected)
            out["methods"][m]["reselection_gain"] = paired(test, unselected)
            out["methods"][m]["search_pick_minus_gcn"] = paired(unselected, gcn_test)
    for a, b in (("autognn+sharing", "random"), ("autognn", "random"), ("rl", "random"), ("autognn", "rl"),
                 ("autognn+sharing", "autognn")):
        if a in runs and b in runs and len(runs[a]) > 1:
            out["paired"][f"{a} - {b}"] = paired([reported_test(r["pick"]) for r in runs[a]],
                                                 [reported_test(r["pick"]) for r in runs[b]])
    if "random" in runs:
        values = {"random": [statistics.fmean(t["test_acc"] for t in r["trials"]) for r in runs["random"]],
                  **{f"{m} pick": [reported_test(r["pick"]) for r in rs] for m, rs in runs.items()}, "gcn": gcn_test}
        costs = {f"{m} pick": [r["cost_seconds"] for r in rs] for m, rs in runs.items()}
        costs["gcn"] = [g["train_seconds"] for g in gcn]
        if tuned_test:
            values["gcn, dropout tuned"], costs["gcn, dropout tuned"] = tuned_test, [g["train_seconds"] for g in gcn_tuned]
        report = protocol_report(values, direction="max", baseline="random", costs=costs, label=f"autognn {name}")
        out["protocol"], out["protocol_table"] = report.to_dict(), protocol_table(report)
    if len(sharing) > 1:
        out["sharing"] = {"children": len(sharing),
                          **{f"{w}_{m}": statistics.fmean(c[w][m] for c in sharing)
                             for w in ("inherited", "scratch") for m in ("valid_acc", "test_acc")},
                          **{f"diff_{m}": paired([c["inherited"][m] for c in sharing], [c["scratch"][m] for c in sharing])
                             for m in ("valid_acc", "test_acc")}}
    return out


def _diff(d: Mapping[str, float] | None) -> str:
    return "-" if d is None else fmt_diff(d)


def print_report(results: Mapping[str, Any]) -> None:
    for name, res in results.items():
        s = res["summary"]
        if s is None:
            print(f"\n{name}: no finished seed")
            continue
        g = s["gcn_test_acc"]
        how = (f"top {res['reselect']} reselected on mean validation over {res['repeats'] + 1} training seeds, test "
               f"averaged over them" if res.get("reselect") else "chosen on validation")
        print(f"\n{name} ({res.get('space', 'default')} space, budget {res.get('budget', '?')}): test accuracy % of the "
              f"pick ({how}; full recipe), {g['n']} seeds; GCN {100 * g['mean']:.2f} [{100 * g['ci95_low']:.2f}, "
              f"{100 * g['ci95_high']:.2f}]")
        if "gcn_tuned_test_acc" in s:
            t = s["gcn_tuned_test_acc"]
            print(f"GCN with dropout tuned on validation: {100 * t['mean']:.2f} [{100 * t['ci95_low']:.2f}, "
                  f"{100 * t['ci95_high']:.2f}] (rates {s['gcn_tuned_dropouts']})")
        print(f"{'method':<16} {'pick test [95 % CI]':>24} {'pick - GCN [95 % CI] p (W/T/L)':>44} {'>= +1':>6} "
              f"{'train s':>8}")
        for m, v in s["methods"].items():
            t = v["pick_test_acc"]
            print(f"{m:<16} {100 * t['mean']:>8.2f} [{100 * t['ci95_low']:.2f}, {100 * t['ci95_high']:.2f}] "
                  f"{_diff(v['pick_minus_gcn']):>44} {'yes' if v['beats_gcn_by_1_point'] else 'no':>6} "
                  f"{v['cost_seconds']:>8.0f}")
        for m, v in s["methods"].items():
            if "trained_test_mean" in v:
                print(f"{m}: mean test of its trainings {100 * v['trained_test_mean']['mean']:.2f}, best test among "
                      f"them (oracle pick) {100 * v['best_trained_test']['mean']:.2f}")
        for m, v in s["methods"].items():
            if "reselection_gain" in v:
                print(f"{m}: the search's own pick {100 * v['search_pick_test_acc']['mean']:.2f} (minus GCN "
                      f"{_diff(v['search_pick_minus_gcn'])}); reselection adds {_diff(v['reselection_gain'])}")
        for m, v in s["methods"].items():
            if v.get("pick_minus_gcn_tuned") is not None:
                print(f"paired {m} - GCN with dropout tuned: {_diff(v['pick_minus_gcn_tuned'])}")
        for k, d in s["paired"].items():
            print(f"paired {k}: {_diff(d)}")
        if "sharing" in s:
            sh = s["sharing"]
            print(f"sharing, {sh['children']} inherited children, {res['settings_share_epochs']} epochs: valid "
                  f"{100 * sh['inherited_valid_acc']:.2f} vs scratch {100 * sh['scratch_valid_acc']:.2f}, diff "
                  f"{_diff(sh['diff_valid_acc'])}; test {100 * sh['inherited_test_acc']:.2f} vs "
                  f"{100 * sh['scratch_test_acc']:.2f}, diff {_diff(sh['diff_test_acc'])}")
        if "protocol_table" in s:
            print(s["protocol_table"])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--seeds", nargs="+", type=int, default=list(range(5)))
    ap.add_argument("--budget", type=int, default=Settings.budget, help="trainings per search (default 10)")
    ap.add_argument("--epochs", type=int, default=Settings.epochs)
    ap.add_argument("--share-epochs", type=int, default=Settings.share_epochs)
    ap.add_argument("--patience", type=int, default=PATIENCE,
                    help=f"early stop after N epochs without a new lowest validation loss (default {PATIENCE})")
    ap.add_argument("--space", default=Settings.space, choices=list(SPACES),
                    help="default: Auto-GNN's space as built in; appnp-dropout: with APPNP and dropout searched")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--reselect", type=int, default=0, metavar="K",
                    help="retrain each search's top K (by validation) under --repeats more seeds; pick by mean validation")
    ap.add_argument("--repeats", type=int, default=2, help="extra training seeds per reselected candidate (default 2)")
    ap.add_argument("--cache", type=Path, default=None, help="folder of JSON lines of finished runs (default beside --out)")
    ap.add_argument("--recorded", type=Path, default=ROOT / "experiments" / "results" / "gnn_planetoid.json",
                    help="gnn_planetoid.py's JSON: its trainings (same recipe and seed) are reused, not repeated")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--cached-only", action="store_true",
                    help="train nothing: report the seeds the cache holds completely (a cut-off run's figures)")
    ap.add_argument("--quick", action="store_true", help="smoke run: cora, seed 0, budget 3, 30 epochs")
    args = ap.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.budget, args.epochs = ["cora"], [0], min(args.budget, 3), min(args.epochs, 30)
    if args.reselect < 0 or args.repeats < 1:
        ap.error("--reselect must be >= 0 and --repeats >= 1")
    if args.patience < 1:
        ap.error("--patience must be >= 1")
    space = ("" if args.space == "default" else f"_{args.space}") + ("" if args.patience == PATIENCE else
                                                                      f"_patience{args.patience}")
    quick = "_quick" if args.quick else ""
    reselected = f"_b{args.budget}_reselect{args.reselect}x{args.repeats}" if args.reselect else ""
    if args.out is None:
        args.out = ROOT / "experiments" / "results" / f"autognn{space}{reselected}{quick}.json"
    if args.cache is None:  # reselected runs share the plain runs' cache: their trainings are replayed
        args.cache = ROOT / "experiments" / "results" / f"autognn{space}{quick}_runs"
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from nas.datasets import planetoid

    args = parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    settings = Settings(args.budget, args.epochs, args.share_epochs, args.space, args.reselect,
                        args.repeats if args.reselect else 0, args.patience)
    recorded = args.recorded if args.space == "default" else None  # gnn_planetoid.py trained the default space
    results: dict[str, Any] = {}
    for name in args.datasets:
        data = planetoid(name)
        results[name] = {**run_dataset(name, data, args.seeds, settings, args.cache, methods=args.methods,
                                       recorded=recorded, log=lambda m: print(m, flush=True),
                                       cached_only=args.cached_only),
                         "settings_share_epochs": settings.share_epochs}
    previous = json.loads(args.out.read_text()).get("results", {}) if args.out.exists() else {}
    doc = {"script": "experiments/autognn.py",
           "command": "python experiments/autognn.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "git_commit": git_commit(),
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                       "torch_threads": torch.get_num_threads(), "load_average": list(os.getloadavg())},
           "settings": {**asdict(settings), "space_options": SPACES[args.space], "datasets": args.datasets,
                        "seeds": args.seeds, "methods": args.methods,
                        "strategies": STRATEGY, "strategy_options": OPTIONS, "objective": {"valid_acc": "max"},
                        "baseline": GCN, "target": "pick - GCN >= +1 point of mean test accuracy",
                        "cached_only": args.cached_only},
           "results": {**previous, **results}, "total_seconds": time.perf_counter() - started}
    print_report(doc["results"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\ntotal {doc['total_seconds']:.0f} s; wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return doc


if __name__ == "__main__":
    main()
