"""One-shot gradient search on a cell supernet or a user model: DARTS (first/second order), PC-DARTS, ProxylessNAS,
RARTS and hard Gumbel-softmax paths (GDAS); the methods are `nas.strategies.oneshot.METHODS`.

`search_darts(space, data, method=..., epochs=..., workdir=...)` trains the space's supernet
(`nas.strategies.oneshot.OneShotTrainer`; for a user model's `nas.nn` space, `ModuleOneShotTrainer` over
its LayerChoice / InputChoice points, with a model spec recorded for `nas export`), derives the
architecture, evaluates it (stand-alone training by default, plus parameters, FLOPs and lookup-table
latency) and journals it as a trial in the same `journal.jsonl` a black-box `nas.search` writes, so
`nas.load`, `best`, `pareto_front` and export work unchanged (the workdir gets a model spec and the retrained
weights). The trainer is checkpointed to `oneshot.pt` after every epoch; calling again with the same workdir
resumes a killed run exactly (same alphas and weights as an uninterrupted run; other data is refused, naming the
split: the journal records a digest of each). A finished search cannot be
extended: its schedules span `epochs`, so other options are another search (refused, naming the option).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from nas import jsonio
from nas.errors import ConfigError, check_seed
from nas.evaluators import as_evaluators, merged
from nas.executors import run_job
from nas.measure import count_metric
from nas.modelspec import record_model, save_trial_weights
from nas.nn.model_space import ModuleSpace
from nas.objectives import Problem
from nas.result import SearchResult
from nas.seeding import torch_seeded
from nas.spaces import Architecture
from nas.spaces.cell import DartsSpace, NasBench201Space
from nas.splits import DIGEST_KEY, check_splits, splits_digest
from nas.experiment import SAME_SEARCH, check_recorded_digest, open_experiment, search_config
from nas.store import Trial
from nas.strategies.oneshot import METHODS, DartsOptions, EpochRecord, OneShotTrainer, Splits, darts_es_stop
from nas.strategies.oneshot_latency import (EdgeCosts, check_table, ensure_table, flops_costs, latency_scale,
                                             lut_costs)
from nas.strategies.oneshot_modules import ModuleOneShotTrainer, module_costs

log = logging.getLogger(__name__)

CHECKPOINT = "oneshot.pt"
HISTORY = "oneshot_history.json"
TABLE = "latency_table.jsonl"

__all__ = ["DartsOptions", "METHODS", "StandaloneTraining", "load_history", "search_darts", "search_state"]


@dataclass
class StandaloneTraining:
    """The default evaluator: train `space.build(arch)` from scratch on "train"; accuracy on "valid" (and "test")."""

    space: NasBench201Space | DartsSpace | ModuleSpace
    data: Splits
    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 64
    seed: int = 0
    save_to: Path | None = None  # a workdir: keep the trained weights there for `nas export`

    def __post_init__(self) -> None:
        b = self.batch_size
        if isinstance(b, bool) or not isinstance(b, int) or b < 2:
            raise ConfigError(f"batch_size: the stand-alone retraining of the derived architecture needs batches of "
                              f"at least 2 (batch norm), got {b!r}; use batch_size >= 2 or give your own evaluate=")

    def __call__(self, arch: Mapping[str, Any]) -> dict[str, float]:
        from nas.spaces.training import PlainTraining, accuracy

        with torch_seeded(self.seed):
            net = self.space.build(arch)
        t0 = time.perf_counter()
        x, y = self.data["train"]
        PlainTraining(self.epochs, min(self.batch_size, len(x)), self.lr, seed=self.seed).fit(net, x, y)
        net.eval()
        out = {"accuracy": accuracy(net, *self.data["valid"]), "train_seconds": time.perf_counter() - t0}
        if "test" in self.data:
            out["test_accuracy"] = accuracy(net, *self.data["test"])
        if self.save_to is not None:
            save_trial_weights(self.save_to, arch, net)
        return out


def _costs(trainer: OneShotTrainer, options: DartsOptions, workdir: Path | None,
           latency_table: Any) -> tuple[EdgeCosts | None, Callable[[Mapping[str, Any]], float] | None]:
    """The edge costs for the latency loss and the per-architecture latency (lookup table), as the options say."""
    from nas.hardware import LatencyTable, adapter_for, lut_latency

    if isinstance(trainer, ModuleOneShotTrainer):
        return module_costs(trainer.supernet, options, latency_table, workdir / TABLE if workdir else None)
    source = options.latency_source
    if source == "off":
        return None, None
    adapter = adapter_for(trainer.space)
    if source == "flops":
        return flops_costs(trainer.supernet, adapter), None
    if isinstance(latency_table, (str, os.PathLike)):
        latency_table = LatencyTable.load(latency_table)
    if latency_table is None:
        if workdir is None:
            raise ConfigError("latency_table: a lookup-table latency needs a table or a workdir to build one in")
        latency_table = ensure_table(adapter, workdir / TABLE)
    check_table(latency_table, adapter, trainer.supernet)
    return lut_costs(trainer.supernet, latency_table), lut_latency(latency_table, adapter).latency_ms


def _keeps_global_generator(fn: Callable[..., SearchResult]) -> Callable[..., SearchResult]:
    """`fn` under a fork of torch's global generator: what the search draws from it (networks built to count them,
    an evaluator's draws) leaves the caller's generator as it was."""
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> SearchResult:
        with torch.random.fork_rng(devices=[]):
            return fn(*args, **kwargs)
    return wrapped


@_keeps_global_generator
def search_darts(space: NasBench201Space | DartsSpace | ModuleSpace, data: Splits, method: str | None = None,
                 epochs: int | None = None, workdir: str | Path | None = None, seed: int = 0,
                 options: DartsOptions | None = None, evaluate: Any = None, latency_table: Any = None,
                 progress: Callable[[EpochRecord], None] | None = None,
                 metadata: Mapping[str, Any] | None = None, workers: int | None = None,
                 ray_address: str | None = None, fixed: Mapping[str, Any] | None = None) -> SearchResult:
    """Run a one-shot search and journal the derived architecture(s) with their metrics.

    `data` maps "train" and "valid" (and optionally "test") to `(x, y)` tensors; `method` and `epochs`,
    when given, override those fields of `options` (a `DartsOptions`; default: DARTS, 20 epochs).
    `evaluate` follows `nas.search`'s contract (default: `StandaloneTraining` for
    `options.retrain_epochs`); parameters, FLOPs and, with a lookup table
    (`latency_table`: a `LatencyTable` or its path; built in the workdir when absent; refused where the options'
    `latency_source` is not "lut", which would ignore it), `latency_ms` are added. `progress(record)` is called
    after each epoch's checkpoint. The objectives are `accuracy` (max) and `latency_ms` (min; `flops` without a
    table). `workers=N` trains the supernet on N Ray Train workers (data-parallel, averaged gradients; on the Ray
    instance at `ray_address`, else a local one);
    every worker derives the same architecture, checked each epoch. `progress` then runs when training ends.

    A user model's space (`Net.space()`, docs/model_space.md) searches its LayerChoice / InputChoice points;
    every other choice is held at `fixed[label]` or its largest option (the journal's metadata `held`), and
    the workdir gets the model spec `nas export` rebuilds the derived architecture from.

    Random ops of the model (dropout) draw from torch's global generator at states derived from `seed` (an int, a
    numpy one too; the search's checkpointed with it), and the caller's global generator is left as it was. Float
    inputs must have the networks' dtype (float32, or float64 under `torch.set_default_dtype(torch.float64)`).
    """
    seed = check_seed(seed)
    given = {k: v for k, v in (("method", method), ("epochs", epochs)) if v is not None}
    options = replace(options or DartsOptions(), **given)
    if latency_table is not None and options.latency_source != "lut":
        raise ConfigError(f"latency_table: given, but this search uses no lookup table (latency={options.latency!r}, "
                          f"latency_weight={options.latency_weight}, method={options.method!r}): set latency='lut' to "
                          "report latency_ms (and latency_weight > 0 to weigh it), or leave latency_table out")
    if isinstance(space, ModuleSpace):
        if workers is not None:
            raise ConfigError("workers: Ray Train workers run cell supernets; search a nas.nn model in-process")
        trainer: OneShotTrainer = ModuleOneShotTrainer(space, options, seed, fixed=fixed)
    elif fixed:
        raise ConfigError("fixed: holds choices of a nas.nn model's space; a cell space searches every edge")
    else:
        trainer = OneShotTrainer(space, options, seed)  # refuses spaces without a cell supernet
    dtypes = {p.dtype for p in trainer.supernet.parameters() if p.is_floating_point()}
    check_splits(data, input_shape=trainer.input_shape, min_size=options.batch_size, size_field="batch_size",
                 dtype=dtypes.pop() if len(dtypes) == 1 else torch.float32)
    _check_labels(data, trainer.num_classes())
    wd = Path(workdir) if workdir is not None else None
    evaluator = merged(as_evaluators(evaluate if evaluate is not None else StandaloneTraining(
        space, data, options.retrain_epochs, options.retrain_lr, options.batch_size, seed, wd)), None)
    costs, latency_of = _costs(trainer, options, wd, latency_table)
    trainer.costs, trainer.cost_scale = costs, latency_scale(costs, options.latency_weight)
    problem = Problem.make({"accuracy": "max", "latency_ms" if latency_of else "flops": "min"})
    described = {"held": trainer.supernet.held_choices(), "searched": sorted(trainer.supernet.alphas)} \
        if isinstance(trainer, ModuleOneShotTrainer) else {"net": repr(space.net)}
    metadata = {"one_shot": True, **described, "data": {k: len(v[0]) for k, v in data.items()},
                DIGEST_KEY: splits_digest(data), "latency": costs.source if costs else None, **dict(metadata or {})}
    config = search_config(space, problem, options.method, options.to_dict(), seed,
                           options.epochs if options.record == "epochs" else 1, None, metadata)
    check_recorded_digest(wd, config, DIGEST_KEY, "data")  # a journal without the digest (older) resumes
    with open_experiment(wd, config, compare=SAME_SEARCH + ("metadata",)) as experiment:
        if wd is not None and (wd / CHECKPOINT).exists():
            trainer.load_state_dict(torch.load(wd / CHECKPOINT, weights_only=True))
            log.info("resuming %s after epoch %d", wd, trainer.epoch)
        if workers is not None:
            stop_epoch = _train_on_ray(trainer, data, wd, progress, workers, ray_address)
        else:
            stop_epoch = _train(trainer, data, wd, progress)
        chosen = _to_record(trainer.history, options.record, stop_epoch, options.warmup_epochs)
        if wd is not None and (evaluate is None or isinstance(trainer, ModuleOneShotTrainer)):
            _record_model(trainer, wd, evaluate is None, options)
        done = {t.arch_id for t in experiment.trials}
        for record in chosen:
            arch = space.validate(record.derived)
            if arch.id in done:
                continue
            trial = _evaluate(space, arch, record, evaluator, latency_of, len(experiment.trials), options,
                              trainer.chosen_ops(arch))
            typo = problem.names_error(trial.metrics) if trial.error is None else None  # nas.search's name check
            if typo is not None:
                again = f"; nothing was journaled: fix evaluate and call search_darts again on {wd} (the trained " \
                    "supernet is resumed, not retrained)" if wd is not None else ""
                raise ConfigError(typo + again)
            error = trial.error or problem.result_error(trial.metrics)  # nas.search's check: finite objectives
            if error is not None:  # journaled as failed, as nas.search does: best() and the front leave it out
                log.warning("evaluation of %s failed: %s", arch.id, error)
                trial = replace(trial, status="failed", error=error)
            experiment.record(trial)
            done.add(arch.id)
        _finish(experiment)
        reason = f"early-stopped at epoch {trainer.epoch}" if stop_epoch is not None else "epochs"
        return SearchResult(list(experiment.trials), problem, wd, reason, experiment.config)


def _finish(experiment: Any) -> None:
    """Journal that the search is done (every epoch trained, its derived architectures evaluated). The budget of
    record="epochs" is one evaluation per epoch at most; it becomes the distinct architectures journaled, so
    readers (`nas status`, export) see a finished search, not one with evaluations left."""
    if experiment.used < experiment.budget:
        if experiment.writer is not None:
            experiment.writer.append_config(budget=experiment.used)
        experiment.config["budget"] = experiment.used
    experiment.end("budget")


def search_state(workdir: str | Path, config: Mapping[str, Any], trials: list[Trial],
                 stop_reason: str | None = None) -> tuple[bool, str] | None:
    """(finished, in words) for `nas status` of a DARTS-family workdir (None for any other search): finished once
    every epoch is trained (or DARTS-ES stopped) and its derived architectures are journaled; more epochs or
    other options make another search, which needs a new workdir."""
    options = config.get("strategy_options") or {}
    if not (config.get("metadata") or {}).get("one_shot") or config.get("strategy") not in METHODS \
            or not isinstance(options.get("epochs"), int):
        return None
    epochs = options["epochs"]
    history = load_history(workdir) if (Path(workdir) / HISTORY).is_file() else []
    stop = None
    if options.get("early_stop") == "eigenvalue":
        stop = darts_es_stop([r.eigenvalue for r in history], options.get("es_window", 1), options.get("es_lag", 1),
                             options.get("es_ratio", 0.75), int(options.get("warmup_epochs") or 0))
    trained = stop is not None or len(history) >= epochs
    journaled = {t.arch_id for t in trials}
    derived = {Architecture(r.derived).id for r in _to_record(history, str(options.get("record")), stop,
                                                              int(options.get("warmup_epochs") or 0))} \
        if trained else set()
    if stop_reason == "budget" or (trained and derived <= journaled):
        what = f"all {epochs} epochs" if stop is None else f"{len(history)} epochs (DARTS-ES picked epoch {stop})"
        return True, (f"finished: {what} trained and {len(journaled)} derived architecture(s) evaluated; calling "
                      "search_darts again adds nothing, and more epochs or other options are another search (use a "
                      "new workdir)")
    if trained:
        return False, f"all {epochs} epochs trained, {len(derived - journaled)} derived architecture(s) to evaluate"
    return False, f"stopped after epoch {len(history)} of {epochs} (the next run resumes from {CHECKPOINT})"


def load_history(workdir: str | Path) -> list[EpochRecord]:
    """The per-epoch records of a one-shot search in `workdir` (losses, alphas, derived architectures)."""
    path = Path(workdir) / HISTORY
    if not path.is_file():
        raise ConfigError(f"workdir: {path} not found (no one-shot search has finished an epoch there)")
    return [EpochRecord(**r) for r in jsonio.read_json(path, "one-shot history")]


def _train(trainer: OneShotTrainer, data: Splits, wd: Path | None,
           progress: Callable[[EpochRecord], None] | None) -> int | None:
    """Epochs until `options.epochs` or DARTS-ES stops; checkpoint after each; the early-stop epoch or None."""
    stop = trainer.early_stop_epoch()
    while stop is None and trainer.epoch < trainer.options.epochs:
        record = trainer.train_epoch(data)
        stop = trainer.early_stop_epoch()
        _save(trainer, wd)
        if progress is not None:
            progress(record)
    return stop


def _train_on_ray(trainer: OneShotTrainer, data: Splits, wd: Path | None,
                  progress: Callable[[EpochRecord], None] | None, workers: int, address: str | None) -> int | None:
    """`_train` on Ray Train workers (`nas.ray.train.train_oneshot`); Ray's checkpoints live in wd/ray-train."""
    from nas.ray.train import train_oneshot

    before = trainer.epoch
    if trainer.early_stop_epoch() is None and trainer.epoch < trainer.options.epochs:
        storage = wd / "ray-train" if wd is not None else None
        train_oneshot(trainer, data, num_workers=workers, storage_path=storage, log_dir=storage, address=address)
        _save(trainer, wd)
    if progress is not None:
        for record in trainer.history[before:]:
            progress(record)
    return trainer.early_stop_epoch()


def _save(trainer: OneShotTrainer, wd: Path | None) -> None:
    if wd is not None:
        _atomic_save(trainer.state_dict(), wd / CHECKPOINT)
        jsonio.write_json(wd / HISTORY, [r.to_dict() for r in trainer.history], indent=None, allow_nan=True)


def _to_record(history: list[EpochRecord], record: str, stop_epoch: int | None,
               warmup_epochs: int = 0) -> list[EpochRecord]:
    """The epochs whose derived architectures are journaled: the last (or DARTS-ES's pick), or every epoch's
    after the warm-up (whose alphas have not moved: their architecture is the random initial one)."""
    last = stop_epoch if stop_epoch is not None else len(history)
    return history[min(warmup_epochs, last - 1):last] if record == "epochs" else [history[last - 1]]


def _check_labels(data: Splits, classes: int | None) -> None:
    """ConfigError naming the split whose labels are not class indices of the model's `classes` outputs."""
    if classes is None:
        return
    for split, (_, y) in data.items():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= classes:
            raise ConfigError(f"data[{split!r}]: labels must be class indices 0..{classes - 1} (the model has "
                              f"{classes} outputs), got labels from {lo} to {hi}")


def _record_model(trainer: OneShotTrainer, wd: Path, trained: bool, options: DartsOptions) -> None:
    """model.json (and, for a nas.nn model without the stand-alone training's weights, supernet.pt) so `nas export`
    rebuilds the derived architectures; a model class another process cannot import is only warned about."""
    module = isinstance(trainer, ModuleOneShotTrainer)
    notes = {"search": f"search_darts ({options.method})", **({"held": trainer.supernet.held_choices()} if module else {}),
             "weights": "trained from scratch" if trained else "the one-shot supernet's, not retrained",
             "train_seconds": round(sum(r.seconds for r in trainer.history), 1)}  # the supernet's: the search cost
    try:  # what export and verify can re-measure without the data: the counts (accuracy needs the splits)
        record_model(wd, trainer.space, supernet=trainer.supernet.inner if module and not trained else None,
                     notes=notes, metrics={"params": count_metric("params"), "flops": count_metric("flops")})
    except ConfigError as e:
        log.warning("%s: no model spec recorded, so nas export cannot rebuild its models: %s", wd, e)


def _evaluate(space: NasBench201Space | DartsSpace | ModuleSpace, arch: Architecture, record: EpochRecord,
              evaluator: Any, latency_of: Callable[[Mapping[str, Any]], float] | None, number: int,
              options: DartsOptions, ops: Any) -> Trial:
    started = time.time()
    metrics = dict(space.count(arch))
    metrics["supernet_accuracy"] = record.valid_acc
    if latency_of is not None:
        metrics["latency_ms"] = latency_of(arch)
    returned = evaluator(arch)  # an exception propagates: nothing is journaled, and a rerun resumes the supernet
    numbers, error = run_job(lambda _: returned, arch)  # nas.search's check: a dict of numbers, each named if not
    metrics.update(numbers or {})
    extra = {"epoch": record.epoch, "method": options.method, "parameter_free": record.parameter_free,
             "skip": record.skip, "ops": ops, "alphas": record.alphas}
    return Trial(number, arch.to_dict(), arch.id, metrics, "ok", started, time.time(), "local", error, extra)


def _atomic_save(state: Mapping[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(dict(state), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
