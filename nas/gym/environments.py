"""The gym's environments: `Environment` and the built-in ones (tables, analytic hardware, real training, proxies)."""

from __future__ import annotations

import functools
import inspect
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError, check_number
from nas.evaluators import Evaluator
from nas.objectives import Problem
from nas.seeding import torch_seeded
from nas.spaces import Architecture, Choice, Repeat, Space
from nas.spaces.model_space import ModelSpace
from nas.strategies.multifidelity import check_levels

if TYPE_CHECKING:
    from nas.gym.proxy import ProxyCostModel

Metrics = Mapping[str, float]


def takes_budget(evaluate: Any) -> bool:
    """Whether `evaluate` accepts `budget=` (as `FidelitySpace.evaluator` requires), so fidelity levels can be used."""
    return (evaluate if isinstance(evaluate, Evaluator) else Evaluator(evaluate)).takes_budget


def _fidelity_levels(name: str, levels: Any) -> tuple[float, ...]:
    """`levels` checked (none, or at least two distinct positive finite numbers) and sorted; a ConfigError naming
    the environment's `fidelity` otherwise, now rather than mid-gym from `FidelitySpace`."""
    if isinstance(levels, (tuple, list)) and not levels:
        return ()
    return tuple(check_levels(levels, f"environment {name!r}: fidelity"))


@dataclass
class Environment:
    """One search problem of the gym: `nas.search(space, evaluate, {objective: direction}, constraints)`.

    `fidelity` (at least two distinct positive levels in any order, e.g. epochs; stored sorted) lets
    multi-fidelity strategies run here: `evaluate` must then accept `budget=` (both checked when the
    environment is built) and the gym wraps the space in `FidelitySpace(space, fidelity, fidelity_field)`
    for strategies that need one; their budget counts full-fidelity evaluations (one at level l costs
    l / top), and only trials at the top level count as outcomes. Every other strategy's evaluations get
    `budget=` the top level (`nas.search(..., fidelity=top)`), so a `budget` without a default is fine.
    `final(arch)` is what is reported of the architecture a run returns (test accuracy, the real cost of a
    proxy's pick); None means the objective itself.
    `cost_metric` names a metric holding each evaluation's cost in seconds (e.g. training time charged
    also on a memoised repeat); without it the search cost is the trials' wall time. `optimum` is the
    best objective value of the whole space where known (tabular), for regret.
    """

    name: str
    space: Space
    evaluate: Any
    objective: str
    direction: str = "max"
    constraints: tuple[str, ...] = ()
    budget: int = 50
    fidelity: tuple[float, ...] = ()
    fidelity_field: str = "epochs"
    final: Callable[[Architecture], float | None] | None = None
    final_name: str = ""
    optimum: float | None = None
    cost_metric: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ConfigError(f"environment {self.name!r}: direction must be 'max' or 'min', got {self.direction!r}")
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 1:
            raise ConfigError(f"environment {self.name!r}: budget must be a positive int, got {self.budget!r}")
        self.constraints = (self.constraints,) if isinstance(self.constraints, str) else tuple(self.constraints)
        self.fidelity = _fidelity_levels(self.name, self.fidelity)
        self.check()

    @property
    def problem(self) -> Problem:
        """The objective and constraints as a `Problem`; a malformed constraint is a ConfigError naming it."""
        try:
            return Problem.make({self.objective: self.direction}, list(self.constraints))
        except ConfigError as e:
            raise ConfigError(f"environment {self.name!r}: {e}") from None

    def check(self) -> None:
        """Raise a ConfigError now for a malformed constraint or fidelity (levels, or an evaluator without
        `budget=` beside them), before any strategy runs on the environment."""
        self.problem
        if _fidelity_levels(self.name, self.fidelity) and not takes_budget(self.evaluate):
            fn = getattr(self.evaluate, "__name__", type(self.evaluate).__name__)
            raise ConfigError(f"environment {self.name!r}: fidelity {list(self.fidelity)} needs an evaluator that "
                              f"takes budget=, and {fn} takes none (leave fidelity empty)")

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts about the environment (recorded beside its results)."""
        size = self.space.size() if hasattr(self.space, "size") else None
        return {"name": self.name, "objective": self.objective, "direction": self.direction,
                "constraints": list(self.constraints), "budget": self.budget, "fidelity": list(self.fidelity),
                "final": self.final_name or self.objective, "optimum": self.optimum, "space": type(self.space).__name__,
                "space_size": int(size) if size is not None else None, "description": self.description}


def tabular_environment(dataset: str = "cora", budget: int = 60, root: str | Path | None = None) -> Environment:
    """NAS-Bench-Graph (cora, citeseer, pubmed): max valid_acc; reported: test_acc of the returned architecture.

    Raises ConfigError naming the missing file when the table is absent (set NAS_DATA_DIR)."""
    from nas.tabular import nas_bench_graph

    bench = nas_bench_graph(dataset, root)

    def test_acc(arch: Architecture) -> float | None:
        try:
            return bench(arch)["test_acc"]
        except LookupError:
            return None

    return Environment(f"nbg-{dataset}", bench.space, bench, "valid_acc", "max", budget=budget, final=test_acc,
                       final_name="test_acc", optimum=bench.optimum("valid_acc"),
                       description=f"NAS-Bench-Graph {dataset} table lookup ({len(bench)} rows)")


class CNN1dSpace(ModelSpace):
    """A plain 1-D CNN space written field by field: `blocks` conv blocks (conv, batch norm, ReLU, max-pool 2),
    each with its own width and kernel, then global average pooling and a linear head; MNIST-1D-shaped input."""

    def __init__(self, blocks: int = 3, widths: Sequence[int] = (8, 16, 24, 32, 48, 64),
                 kernels: Sequence[int] = (3, 5, 7, 9), length: int = 40, num_classes: int = 10) -> None:
        super().__init__(blocks=Repeat(blocks, width=Choice(list(widths)), kernel=Choice(list(kernels))))
        self.length, self.num_classes = length, num_classes

    def build(self, arch: Mapping[str, Any]) -> Any:
        from torch import nn

        layers: list[Any] = []
        c = 1
        for b in self.validate(arch)["blocks"]:
            layers += [nn.Conv1d(c, b["width"], b["kernel"], padding=b["kernel"] // 2), nn.BatchNorm1d(b["width"]),
                       nn.ReLU(), nn.MaxPool1d(2)]
            c = b["width"]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(c, self.num_classes))

    def example_input(self, arch: Mapping[str, Any], batch_size: int = 1) -> Any:
        import torch

        return torch.zeros(batch_size, 1, self.length)

    def largest(self) -> Architecture:
        """Every block at its widest and largest kernel."""
        block = self.fields["blocks"]
        top = {name: max(leaf.options) for name, leaf in block.block.fields.items()}
        return self.validate({"blocks": [top] * block.count})


def hardware_environment(device: str = "jetson_orin_nano", budget: int = 60, latency_fraction: float = 0.3,
                         space: "CNN1dSpace | None" = None, name: str = "hw-cnn1d") -> Environment:
    """The analytic hardware cost model: max `params` (a capacity stand-in for accuracy) subject to
    `latency_roofline_ms <= latency_fraction x` that of the largest network, on `device`'s roofline.

    Metrics come from `nas.hardware.CostModel(space, device=device, energy="analytic")` (torch
    FlopCounterMode counts of the built network, the profile's roofline and pJ/FLOP, pJ/byte energy), each
    query building the network and counting it (tens of ms); results are cached per architecture.
    """
    from nas.hardware import CostModel

    check_number(latency_fraction, "latency_fraction")  # <= 0 built a bound no network meets
    space = space if space is not None else CNN1dSpace()
    model = CostModel(space, device=device, energy="analytic", cache=max(4096, int(min(space.size(), 10 ** 6))))
    bound = latency_fraction * model(space.largest())["latency_roofline_ms"]
    return Environment(name, space, model, "params", "max",
                       constraints=(f"latency_roofline_ms <= {bound:.6g}",), budget=budget,
                       description=f"analytic CostModel ({device} roofline + energy) of a {type(space).__name__}, "
                                   f"latency bound {latency_fraction:g} x the largest network's")


class DigitsMLPTraining:
    """Real training: an MLP (arch: depth, per-layer width, activation, learning rate) trained from scratch on
    scikit-learn's digits (900 train / 450 valid / 447 test) for `budget` epochs (AdamW, cosine schedule,
    batch 64, one fixed seed). Training is deterministic, so each (architecture, epochs) is trained once
    per process and repeats return the memoised metrics, with the original `train_seconds` charged again."""

    def __init__(self, epochs: int = 9, seed: int = 0, batch_size: int = 64) -> None:
        from nas.datasets import digits_splits

        self.epochs, self.seed, self.batch_size = epochs, seed, batch_size
        self.data = {k: (x.flatten(1), y) for k, (x, y) in digits_splits(seed).items()}
        self.cache: dict[tuple[str, int], dict[str, float]] = {}
        self.trained = 0
        self._warm_up()

    def _warm_up(self) -> None:
        """One throw-away epoch, so torch's first-call costs are not charged to the first architecture."""
        from nas.spaces.training import PlainTraining

        arch = {"layers": [{"width": 16}], "act": "relu", "lr": 0.01}
        PlainTraining(epochs=1, batch_size=self.batch_size, seed=self.seed).fit(self.build(arch), *self.data["train"])

    def build(self, arch: Mapping[str, Any]) -> Any:
        from torch import nn

        act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[arch["act"]]
        layers: list[Any] = []
        c = self.data["train"][0].shape[1]
        with torch_seeded(self.seed):  # every layer from `seed`, whatever ran before; global RNG untouched
            for layer in arch["layers"]:
                layers += [nn.Linear(c, layer["width"]), act()]
                c = layer["width"]
            return nn.Sequential(*layers, nn.Linear(c, 10))

    def __call__(self, arch: Mapping[str, Any], budget: float | None = None) -> dict[str, float]:
        import torch

        from nas.spaces.training import PlainTraining, accuracy

        epochs = int(budget) if budget is not None else self.epochs
        key = (Architecture(arch).id, epochs)
        if key not in self.cache:
            model = self.build(arch)
            t0 = time.perf_counter()
            PlainTraining(epochs=epochs, batch_size=self.batch_size, lr=float(arch["lr"]), seed=self.seed).fit(
                model, *self.data["train"])
            seconds = time.perf_counter() - t0
            model.eval()
            with torch.no_grad():
                self.cache[key] = {"valid_acc": accuracy(model, *self.data["valid"]),
                                   "test_acc": accuracy(model, *self.data["test"]), "train_seconds": seconds,
                                   "params": float(sum(p.numel() for p in model.parameters()))}
            self.trained += 1
        return dict(self.cache[key])


def digits_mlp_space() -> Space:
    """depth 1-3, a width per layer, one activation and a learning rate: 1,008 architectures."""
    return Space(depth=Choice([1, 2, 3]), layers=Repeat(count="depth", width=Choice([16, 32, 64, 128])),
                 act=Choice(["relu", "tanh", "gelu"]), lr=Choice([0.001, 0.003, 0.01, 0.03]))


def _epoch_levels(levels: Sequence[int]) -> tuple[int, ...]:
    """`levels` checked (distinct positive ints, at least one) and sorted, so the last is full training."""
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
        raise ConfigError(f"training_environment: levels must be a non-empty sequence of epochs, got {levels!r}")
    bad = [x for x in levels if isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < 1]
    if bad:
        raise ConfigError(f"training_environment: levels must be positive ints (epochs), got {bad[0]!r} in {levels!r}")
    if len(set(levels)) != len(levels):
        raise ConfigError(f"training_environment: levels must be distinct, got {levels!r}")
    return tuple(sorted(int(x) for x in levels))


def training_environment(budget: int = 30, levels: Sequence[int] = (1, 3, 9), seed: int = 0) -> Environment:
    """Real training on digits (`DigitsMLPTraining`): max valid_acc after `max(levels)` epochs; multi-fidelity
    strategies see `levels` (in any order) as the epochs field. Reported: test accuracy of the returned architecture."""
    levels = _epoch_levels(levels)
    trainer = DigitsMLPTraining(epochs=levels[-1], seed=seed)

    def test_acc(arch: Architecture) -> float:
        return trainer(arch)["test_acc"]

    return Environment("digits-mlp", digits_mlp_space(), trainer, "valid_acc", "max", budget=budget,
                       fidelity=tuple(float(x) for x in levels), final=test_acc, final_name="test_acc",
                       cost_metric="train_seconds",
                       description=f"MLP trained on scikit-learn digits for {levels[-1]} epochs (memoised per process)")


def proxy_environment(base: Environment, proxy: "ProxyCostModel", real: Callable[[Architecture], Metrics] | None = None
                      ) -> Environment:
    """`base` with its evaluator replaced by `proxy`. What a run returns is reported at its real objective
    value (`real`, default `base.evaluate`), or None when the real function says it breaks a constraint or
    cannot score it (an architecture missing from a table). The proxy has no fidelity: `base.fidelity` is dropped."""
    real_fn = real if real is not None else base.evaluate
    problem = base.problem

    def real_value(arch: Architecture) -> float | None:
        try:
            m = real_fn(arch)
        except LookupError:
            return None
        return float(m[base.objective]) if problem.feasible(m) else None

    return Environment(f"{base.name}-proxy", base.space, proxy, base.objective, base.direction, base.constraints,
                       base.budget, (), base.fidelity_field, real_value, f"real {base.objective}",
                       base.optimum, None, f"random-forest proxy of {base.name} ({proxy.n_train} logged trials)")


ENVIRONMENTS: dict[str, Callable[..., Environment]] = {
    "nbg-cora": functools.partial(tabular_environment, "cora"),
    "nbg-citeseer": functools.partial(tabular_environment, "citeseer"),
    "nbg-pubmed": functools.partial(tabular_environment, "pubmed"),
    "hw-cnn1d": hardware_environment,
    "digits-mlp": training_environment,
}
"""Built-in environments by name; each factory takes `budget=` (and its own options)."""


def environment(name: str, **options: Any) -> Environment:
    """A built-in environment by name (see `ENVIRONMENTS`); unknown names and options are ConfigErrors listing
    the valid ones."""
    factory = ENVIRONMENTS.get(name) if isinstance(name, str) else None
    if factory is None:
        raise ConfigError(f"unknown environment {name!r}; available: {', '.join(ENVIRONMENTS)}")
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in options if k not in params]
        if unknown:
            raise ConfigError(f"environment {name!r}: unknown option {unknown[0]!r}; options: {', '.join(params)}")
    return factory(**options)
