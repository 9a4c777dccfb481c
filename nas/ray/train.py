"""Distributed supernet training on Ray Train: the BigNAS sandwich rule under `TorchTrainer` and DDP.

Every worker trains on its own shard of the data but samples the *same* subnets at every step: the
sampler is seeded by (seed, global step), so no communication is needed to agree, and a check gathers
each worker's subnet ids every step and fails the run on any disagreement. DDP averages the gradients of
the sandwich's backward passes (largest on labels, smallest and `n_random` random subnets distilled from
the largest). Torch's random stream (dropout) is seeded by (seed, step, rank) at every step, so a resumed run
continues exactly as an uninterrupted one. Rank 0 saves a checkpoint (supernet, optimizer, schedule, step) after
every epoch; running `train_supernet` again with the same `name` and `storage_path` resumes from the latest one,
and only with the same settings (data, space, schedule but its epochs, workers): a run folder records them, and
another run's settings are refused, naming what differs. A resume with more (or fewer) `epochs` continues on the
cosine schedule of the new length, from the step reached. Each worker trains with `cpus_per_worker` torch
threads, and a local Ray instance started here is shut down at the end (one the caller connected to is left
running).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import ConfigError
from nas.spaces.spec_difference import first_difference
from nas.jsonio import read_json, read_jsonl, write_bytes, write_json
from nas.ray.executor import RayOptions, connect
from nas.spaces.ofa import OFAConfig, OFASpace, OFASupernet
from nas.spaces.training import check_sandwich

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "supernet.pt"
SETTINGS_FILE = "nas_settings.json"
"""In a run folder (`storage_path/name`): the settings of the run whose checkpoints it holds."""


@dataclass(frozen=True)
class DistributedSandwich:
    """Hyper-parameters of `nas.spaces.training.SandwichRule`, per worker (`batch_size` is per worker)."""

    epochs: int = 2
    batch_size: int = 64
    n_random: int = 2
    lr: float = 3e-3
    weight_decay: float = 1e-4
    temperature: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_sandwich("DistributedSandwich", self)  # SandwichRule's checks, errors naming DistributedSandwich.<field>


@dataclass
class SupernetRun:
    """What a distributed run left: rank 0's last metrics, every epoch's metrics and the latest checkpoint."""

    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: str | None = None
    path: str | None = None

    def supernet(self, config: OFAConfig | None = None) -> OFASupernet:
        """The trained supernet, loaded from the checkpoint on this machine (an `OFASpace(config)` supernet)."""
        if self.checkpoint is None:
            raise ConfigError("this run saved no checkpoint")
        return load_supernet(self.checkpoint, config)


def load_supernet(checkpoint_dir: str | os.PathLike[str], config: OFAConfig | None = None) -> OFASupernet:
    """An `OFASupernet` holding the weights of a checkpoint written by `train_supernet`."""
    state = torch.load(Path(checkpoint_dir) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    cfg = config or OFAConfig(**state["space"])
    supernet = OFASpace(cfg).supernet()
    supernet.load_state_dict(state["model"])
    return supernet


def _digest(text: str) -> int:
    """A 63-bit digest of `text` (fits an int64 tensor for all_gather)."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:15], 16)


def subnet_digest(archs: list[Any]) -> int:
    """A 63-bit digest of the ids of a step's subnets, compared across workers."""
    return _digest(",".join(a.id for a in archs))


def gather_ints(value: int, world: int) -> list[int]:
    """`value` from every worker (all_gather of one int64), in rank order; just `[value]` with one worker."""
    if world == 1:
        return [value]
    import torch.distributed as dist

    mine = torch.tensor([value], dtype=torch.int64)
    gathered = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    return [int(g) for g in gathered]


def _trim_log(path: Path | None, keep: Callable[[dict[str, Any]], bool]) -> None:
    """Drop the lines of a worker's log that `keep` rejects: on a resume, the entries of work done after the
    checkpoint it resumes from (that work runs again, so the log would hold it twice). A torn last line (a
    worker killed mid-write, before that work's checkpoint) goes too."""
    if path is None or not path.exists():
        return
    lines = read_jsonl(path, "worker log")
    kept = [rec for _, rec in lines.records if keep(rec)]
    if len(kept) < len(lines.records) or lines.torn:
        write_bytes(path, "".join(json.dumps(rec) + "\n" for rec in kept).encode())


def _report(metrics: dict[str, Any], rank: int, state: Callable[[], Any], file: str) -> None:
    """`ray.train.report(metrics)`, with rank 0's `state()` saved as the epoch's checkpoint (`file` in it)."""
    import ray.train

    with tempfile.TemporaryDirectory() as d:
        ckpt = None
        if rank == 0:
            torch.save(state(), Path(d) / file)
            ckpt = ray.train.Checkpoint.from_directory(d)
        ray.train.report(metrics, checkpoint=ckpt)


def data_digest(*arrays: Any) -> str:
    """A short digest of arrays or tensors (dtype, shape and bytes): which data a run trained on."""
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def claim_run(run_dir: str | os.PathLike[str], settings: dict[str, Any]) -> None:
    """Record `settings` as those of the run in `run_dir`, or refuse (a ConfigError naming each difference) when
    it holds checkpoints of a run with other settings, or with none recorded: Ray Train would resume from them,
    silently, and return that run's weights."""
    run_dir = Path(run_dir)
    settings = json.loads(json.dumps(settings))  # as it reads back
    record = run_dir / SETTINGS_FILE
    resumable = (run_dir / "checkpoint_manager_snapshot.json").exists() or any(run_dir.glob("checkpoint_*"))
    advice = f"pass another name= (or storage_path=), or delete {run_dir} to start afresh"
    if resumable and not record.exists():
        raise ConfigError(f"name: {run_dir} holds checkpoints of a Ray Train run whose settings were not recorded "
                          f"(an older version wrote it), which this call would resume; {advice}")
    if resumable:
        before = read_json(record, "Ray Train run settings").get("settings", {})
        diffs = []
        for key in sorted(set(before) | set(settings)):
            path, was, now = first_difference(before.get(key, "<absent>"), settings.get(key, "<absent>"), (key,))
            if path is not None:
                diffs.append(f"{'.'.join(path)} {was!r} there, {now!r} now")
        if diffs:
            raise ConfigError(f"name: {run_dir} holds checkpoints of another run, which this call would resume "
                              f"(settings differ: {'; '.join(diffs)}); {advice}")
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(record, {"settings": settings})


def _fit(loop: Any, loop_config: dict[str, Any], *, num_workers: int, use_gpu: bool, cpus_per_worker: float,
         storage_path: str | os.PathLike[str] | None, name: str, log_dir: str | os.PathLike[str] | None,
         address: str | None, max_failures: int, settings: dict[str, Any]) -> SupernetRun:
    """Run `loop` on `num_workers` Ray Train workers (`TorchTrainer`, gloo or NCCL) and collect what it left.

    `loop_config` gets the absolute `log_dir` (created here) and `threads` (torch threads per worker:
    `cpus_per_worker`); checkpoints go to `storage_path/name`, and the same both resume from the latest one,
    if the run there had the same `settings` (`claim_run`). A local Ray instance started here is shut down
    at the end. An error in any worker is raised here.
    """
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage = os.path.abspath(storage_path or os.path.join(tempfile.gettempdir(), "nas-train"))
    claim_run(Path(storage) / name, {**settings, "num_workers": num_workers})
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
    loop_config = {**loop_config, "log_dir": os.path.abspath(log_dir) if log_dir else None,
                   "threads": max(1, int(cpus_per_worker))}
    owns_ray = connect(RayOptions(address))
    try:
        trainer = TorchTrainer(
            loop, train_loop_config=loop_config, torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                         resources_per_worker={"CPU": cpus_per_worker}),
            run_config=RunConfig(name=name, storage_path=storage,
                                 failure_config=FailureConfig(max_failures=max_failures)))
        result = trainer.fit()
        if result.error is not None:
            raise result.error
        history = [dict(m) for _, m in (result.best_checkpoints or [])]
        checkpoint = result.checkpoint.path if result.checkpoint is not None else None
        return SupernetRun(dict(result.metrics or {}), history, checkpoint, str(getattr(result, "path", storage)))
    finally:
        if owns_ray:
            ray.shutdown()


def step_subnets(space: OFASpace, seed: int, step: int, n_random: int) -> list[Any]:
    """The sandwich's subnets at `step`: largest, smallest, `n_random` random, sharing one input resolution.

    Seeded by (seed, step) alone, so every worker, and a resumed run, draws exactly the same ones.
    """
    from nas.spaces.training import sandwich_subnets

    return sandwich_subnets(space, np.random.default_rng([seed, step]), n_random)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed of a worker's training step (its dropout masks): a function of (seed, step, rank) alone, so
    a resumed run draws what the uninterrupted one drew, with no random state in the checkpoint."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0])


def cosine_schedule(opt: torch.optim.Optimizer, total: int, step: int = 0,
                    saved: dict[str, Any] | None = None) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """The cosine schedule over `total` steps, at `step`: a fresh one, or one resumed from `saved` (a checkpoint's
    scheduler state). When the saved schedule ran over another length (`epochs` was raised or lowered), it is
    rebuilt for `total` and replayed to `step`, so every learning rate from here on, the one at `step` included,
    is what a fresh run of the new length has there (and the last one is 0)."""
    if saved is not None and int(saved.get("T_max", -1)) == total:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
        sched.load_state_dict(saved)
        return sched
    if saved is not None:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    with warnings.catch_warnings():  # stepping the schedule alone, without optimizer steps, is the point here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(step):
            sched.step()
    return sched


def _train_loop(cfg: dict[str, Any]) -> None:
    """One Ray Train worker: DDP sandwich-rule training with per-epoch checkpoints and the agreement check."""
    import ray.train
    import ray.train.torch
    import torch.nn.functional as F

    from nas.spaces.training import _optimizer, distillation_loss

    torch.set_num_threads(int(cfg.get("threads", 1)))
    sch = DistributedSandwich(**cfg["schedule"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    space = OFASpace(OFAConfig(**cfg["space"]))
    torch.manual_seed(sch.seed)
    supernet = space.supernet()
    model = ray.train.torch.prepare_model(supernet, parallel_strategy_kwargs={"find_unused_parameters": True})
    x, y = torch.as_tensor(cfg["x"], dtype=torch.float32), torch.as_tensor(cfg["y"], dtype=torch.long)
    shard = torch.arange(rank, len(x), world)
    per_epoch = len(shard) // sch.batch_size
    if per_epoch < 1:
        raise ConfigError(f"batch_size: {sch.batch_size} exceeds a worker's shard of {len(shard)} examples")
    opt = _optimizer(supernet, sch.lr, sch.weight_decay)
    total = max(1, sch.epochs * per_epoch)
    start_epoch, step, saved = 0, 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(Path(d) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
        supernet.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, step, saved = int(state["epoch"]), int(state["step"]), state["scheduler"]
    sched = cosine_schedule(opt, total, step, saved)
    log_path = Path(cfg["log_dir"]) / f"subnets-rank{rank}.jsonl" if cfg.get("log_dir") else None
    _trim_log(log_path, lambda line: line["step"] < step)
    model.train()
    for epoch in range(start_epoch, sch.epochs):
        order = shard[torch.randperm(len(shard), generator=torch.Generator().manual_seed(sch.seed * 100003 + epoch))]
        total, agreed, lines = 0.0, 0, []
        for b in range(per_epoch):
            idx = order[b * sch.batch_size:(b + 1) * sch.batch_size]
            xb, yb = x[idx], y[idx]
            archs = step_subnets(space, sch.seed, step, sch.n_random)
            digests = gather_ints(subnet_digest(archs), world)
            if len(set(digests)) > 1:
                raise RuntimeError(f"workers sampled different subnets at step {step}: {digests}")
            agreed += 1
            lines.append(json.dumps({"step": step, "epoch": epoch, "subnets": [a.id for a in archs]}))
            torch.manual_seed(step_seed(sch.seed, step, rank))
            opt.zero_grad(set_to_none=True)
            logits = model(xb, archs[0])
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            soft, step_loss = logits.detach(), float(loss.detach())
            for arch in archs[1:]:
                kd = distillation_loss(model(xb, arch), soft, sch.temperature)
                kd.backward()
                step_loss += float(kd.detach())
            opt.step()
            sched.step()
            total += step_loss
            step += 1
        if log_path is not None:
            with open(log_path, "a") as f:
                f.write("".join(line + "\n" for line in lines))
        metrics = {"epoch": epoch + 1, "step": step, "loss": total / per_epoch, "agreed_steps": agreed,
                   "workers": world, "threads": torch.get_num_threads()}
        _report(metrics, rank, lambda: {"model": supernet.state_dict(), "optimizer": opt.state_dict(),
                                        "scheduler": sched.state_dict(), "epoch": epoch + 1, "step": step,
                                        "space": space.config.to_dict(), "schedule": asdict(sch)}, CHECKPOINT_FILE)


def train_supernet(x: Any, y: Any, schedule: DistributedSandwich | None = None, config: OFAConfig | None = None,
                   num_workers: int = 2, use_gpu: bool = False, cpus_per_worker: float = 1.0,
                   storage_path: str | os.PathLike[str] | None = None, name: str = "ofa-sandwich",
                   log_dir: str | os.PathLike[str] | None = None, address: str | None = None,
                   max_failures: int = 0) -> SupernetRun:
    """Train an `OFASpace(config)` supernet with the sandwich rule on `num_workers` Ray Train workers (DDP).

    `x`, `y`: the training data (arrays; each worker takes every `num_workers`-th example). Checkpoints go
    to `storage_path/name`; calling again with the same both resumes from the latest checkpoint, exactly
    (raise `schedule.epochs` to train further: the cosine schedule continues as one of the new length, ending
    at 0); a run there with other data, config, schedule (epochs aside) or
    `num_workers` is refused, naming what differs. `log_dir` receives each worker's sampled subnet ids per
    step (`subnets-rank{r}.jsonl`). `max_failures` restarts the workers from the latest checkpoint after a
    crash. Each worker trains with `cpus_per_worker` torch threads.
    """
    if num_workers < 1:
        raise ConfigError(f"num_workers: expected a positive int, got {num_workers!r}")
    sch = schedule or DistributedSandwich()
    cfg = config or OFAConfig()
    loop_config = {"schedule": asdict(sch), "space": cfg.to_dict(), "x": np.asarray(x, dtype=np.float32),
                   "y": np.asarray(y, dtype=np.int64)}
    settings = {"schedule": {k: v for k, v in asdict(sch).items() if k != "epochs"}, "space": cfg.to_dict(),
                "data": "sha1:" + data_digest(loop_config["x"], loop_config["y"])}
    return _fit(_train_loop, loop_config, num_workers=num_workers, use_gpu=use_gpu, cpus_per_worker=cpus_per_worker,
                storage_path=storage_path, name=name, log_dir=log_dir, address=address, max_failures=max_failures,
                settings=settings)


# ---------------------------------------------------------------------------------------- one-shot (DARTS family)
ONESHOT_FILE = "oneshot.pt"


class DistributedSync:
    """`nas.strategies.oneshot.Synchroniser` over torch.distributed: mean gradients and scalars, rank 0's buffers."""

    def __init__(self, world: int) -> None:
        self.world = world

    def gradients(self, params: list[torch.Tensor]) -> None:
        import torch.distributed as dist

        have = [p for p in params if p.grad is not None]
        counts = gather_ints(len(have), self.world)
        if len(set(counts)) > 1:  # the workers ran different paths: they diverged
            raise RuntimeError(f"workers hold gradients for different parameters: {counts}")
        if not have:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in have])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in have:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n

    def buffers(self, module: torch.nn.Module) -> None:
        import torch.distributed as dist

        for b in module.buffers():
            dist.broadcast(b, 0)

    def mean(self, value: float) -> float:
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.world


def oneshot_digest(derived_id: str, alphas: dict[str, list[Any]]) -> int:
    """A 63-bit digest of an epoch's derived architecture and alphas, compared across workers."""
    return _digest(derived_id + json.dumps(alphas, sort_keys=True))


def _shard(data: Any, rank: int, world: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Every `world`-th example from `rank`, the same count on every worker (so batch counts agree)."""
    out = {}
    for split, (x, y) in data.items():
        n = len(x) // world
        idx = torch.arange(rank, n * world, world)
        out[split] = (x[idx], y[idx])
    return out


def _oneshot_loop(cfg: dict[str, Any]) -> None:
    """One Ray Train worker of a one-shot search: sharded data, averaged gradients, per-epoch agreement check."""
    import ray.train

    from nas.strategies.oneshot import OneShotTrainer

    torch.set_num_threads(int(cfg.get("threads", 1)))
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    trainer = OneShotTrainer(cfg["space"], cfg["options"], cfg["seed"], cfg["costs"])
    if world > 1:
        trainer.sync = DistributedSync(world)
    checkpoint = ray.train.get_checkpoint()  # a restart after a failure, or an interrupted earlier fit
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            trainer.load_state_dict(torch.load(Path(d) / ONESHOT_FILE, map_location="cpu", weights_only=True))
    elif cfg["state"] is not None:
        trainer.load_state_dict(cfg["state"])
    data = _shard(cfg["data"], rank, world)
    log_path = Path(cfg["log_dir"]) / f"derived-rank{rank}.jsonl" if cfg.get("log_dir") else None
    _trim_log(log_path, lambda line: line["epoch"] <= trainer.epoch)
    while trainer.early_stop_epoch() is None and trainer.epoch < trainer.options.epochs:
        record = trainer.train_epoch(data)
        digest = oneshot_digest(trainer.space.validate(record.derived).id, record.alphas)
        if len(set(gather_ints(digest, world))) > 1:
            raise RuntimeError(f"workers derived different architectures at epoch {record.epoch}")
        if log_path is not None:
            with open(log_path, "a") as f:
                f.write(json.dumps({"epoch": record.epoch, "derived": record.derived, "digest": digest}) + "\n")
        metrics = {"epoch": record.epoch, "valid_acc": record.valid_acc, "train_loss": record.train_loss,
                   "workers": world, "threads": torch.get_num_threads()}
        _report(metrics, rank, trainer.state_dict, ONESHOT_FILE)


def train_oneshot(trainer: Any, data: Any, num_workers: int = 2, storage_path: str | os.PathLike[str] | None = None,
                  name: str = "oneshot", log_dir: str | os.PathLike[str] | None = None, address: str | None = None,
                  use_gpu: bool = False, cpus_per_worker: float = 1.0, max_failures: int = 0) -> SupernetRun:
    """Continue `trainer` (a `OneShotTrainer`, from its current epoch) on `num_workers` Ray Train workers.

    Each worker starts from `trainer`'s state, trains on its shard of every split and averages gradients
    of weights and alphas with the others, so all derive the same architecture; a check compares each
    epoch's derived architecture and alphas across workers and fails the run on any difference. When the
    run ends `trainer` holds rank 0's final state. Used by `search_darts(..., workers=N)`.
    """
    if num_workers < 1:
        raise ConfigError(f"workers: expected a positive int, got {num_workers!r}")
    for split, (x, _) in data.items():
        if len(x) // num_workers < trainer.options.batch_size and split in ("train", "valid"):
            raise ConfigError(f"workers: {num_workers} shards of the {len(x)} {split!r} samples are smaller "
                              f"than batch_size {trainer.options.batch_size}")
    loop_config = {"space": trainer.space, "options": trainer.options, "seed": trainer.seed, "costs": trainer.costs,
                   "state": trainer.state_dict() if trainer.epoch > 0 else None, "data": dict(data)}
    costs = trainer.costs
    settings = {"space": trainer.space.fingerprint(), "seed": trainer.seed,
                "options": {k: v for k, v in trainer.options.to_dict().items() if k != "epochs"},
                "costs": getattr(costs, "source", None) if costs is not None else None,
                "data": "sha1:" + data_digest(*[t for split in sorted(data) for t in data[split]])}
    run = _fit(_oneshot_loop, loop_config, num_workers=num_workers, use_gpu=use_gpu, cpus_per_worker=cpus_per_worker,
               storage_path=storage_path, name=name, log_dir=log_dir, address=address, max_failures=max_failures,
               settings=settings)
    if run.checkpoint is not None:
        trainer.load_state_dict(torch.load(Path(run.checkpoint) / ONESHOT_FILE, map_location="cpu", weights_only=True))
    return run
