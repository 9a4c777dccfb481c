"""FBNetV3-style predictor pretraining: learn a cheap proxy first, then fine-tune on few measured targets.

Each ensemble member is first trained to predict a proxy (parameters, FLOPs or a zero-cost score:
anything cheap per architecture) on `pretrain_size` architectures sampled from the space, then trained
on the measured targets starting from those weights, so the network's architecture representation is
learnt from plentiful cheap labels. The proxy is a runtime callable; the sampled architectures and
their proxy values are plain data in `state_dict`, so a restored predictor needs no proxy.

Pretraining does not depend on the measured data, so predictors refitted on growing training sets
(a search, the evaluation harness) can share it: pass one dict as `pretrain_cache` to predictors of
the same space, proxy and configuration and each member is pretrained once. The input vocabulary of
the GCN comes from the pretraining architectures alone (labels first seen later map to 'unknown').
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import ConfigError, check_count, check_int
from nas.spaces import Architecture, Space
from nas.predictors.base import RankTarget, check_state
from nas.predictors.ensemble import Loss, MLPEnsemble, _TorchPredictor, train_regressor
from nas.predictors.graph import GCNPredictor

if TYPE_CHECKING:
    import torch

Proxy = Callable[[Architecture], float]


class _Pretrained(_TorchPredictor):
    """Mixin: pretrain each member on (sampled architectures, proxy values) before fine-tuning."""

    proxy: Proxy | None
    pretrain_size: int
    pretrain_epochs: int

    def _setup_pretraining(self, proxy: Proxy | None, pretrain_size: int, pretrain_epochs: int,
                           pretrain_cache: dict[str, Any] | None) -> None:
        check_int(pretrain_size, f"{self.name}: pretrain_size", 2)
        check_count(pretrain_epochs, f"{self.name}: pretrain_epochs")
        if proxy is not None and not callable(proxy):
            raise ConfigError(f"{self.name}: proxy: expected a function arch -> float (e.g. a parameter count), "
                              f"got {proxy!r}")
        self.proxy, self.pretrain_size, self.pretrain_epochs = proxy, pretrain_size, pretrain_epochs
        self.pretrain_cache = pretrain_cache
        self.pretrain_archs: list[Architecture] = []
        self.pretrain_values = np.zeros(0)

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg.pop("proxy", None)
        cfg.pop("pretrain_cache", None)
        return cfg

    def check_pretraining(self) -> None:
        """Refuse a predictor that has nothing to pretrain on (no proxy, no restored pretraining set) before it is
        used: a search that builds it now and fits it later would fail only after its first evaluations. Not in
        `__init__`: `predictor_from_state` builds one without its proxy, then restores the pretraining set."""
        if not self.pretrain_archs and self.proxy is None:
            raise ConfigError(f"predictor {self.name!r}: give a proxy (arch -> float) to pretrain on")

    def pretraining_set(self) -> tuple[list[Architecture], np.ndarray]:
        """The sampled architectures and their proxy values (computed once, then kept)."""
        if not self.pretrain_archs:
            self.check_pretraining()
            rng = np.random.default_rng(10_007 + self.seed)
            archs = [self.space.sample(rng) for _ in range(self.pretrain_size)]
            values = np.array([self._proxy_value(i, a) for i, a in enumerate(archs)])
            self.pretrain_archs, self.pretrain_values = archs, values
        return self.pretrain_archs, self.pretrain_values

    def _proxy_value(self, index: int, arch: Architecture) -> float:
        """The proxy's value of pretraining architecture `index` as a finite float; a ConfigError naming it else."""
        raw = self.proxy(arch)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ConfigError(f"proxy: returned {raw!r} for pretraining architecture {index} ({arch.to_dict()}); "
                              "it must return a finite number for every architecture of the space")
        return value

    def _prepare(self, archs: list[Architecture]) -> None:
        import torch

        pre, values = self.pretraining_set()
        super()._prepare(pre)

        t = RankTarget().transform(values)
        self._pre_inputs = self._tensors(pre)
        self._pre_target = torch.tensor((t - t.mean()) / (t.std() or 1.0), dtype=torch.float32)

    def _init_member(self, k: int, net: "torch.nn.Module") -> None:
        digest = hashlib.sha256(np.asarray(self.pretrain_values, dtype=float).tobytes()).hexdigest()[:16]
        key = json.dumps([self.name, self.config(), digest, k], sort_keys=True)
        cache = self.pretrain_cache
        if cache is not None and key in cache:
            net.load_state_dict(cache[key])
        else:
            train_regressor(net, self._pre_inputs, self._pre_target, self.pretrain_epochs, self.lr, self.weight_decay,
                            "mse")
            if cache is not None:
                cache[key] = {name: t.clone() for name, t in net.state_dict().items()}
        net.train()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pretrain": {"archs": [a.to_dict() for a in self.pretrain_archs],
                                                     "values": self.pretrain_values.tolist()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        check_state(self.space, state)  # before the pretraining set is validated in this space
        pre = state.get("pretrain") or {"archs": [], "values": []}
        self.pretrain_archs = [self.space.validate(a) for a in pre["archs"]]
        self.pretrain_values = np.asarray(pre["values"], dtype=float)
        super().load_state_dict(state)


class PretrainedMLP(_Pretrained, MLPEnsemble):
    """`MLPEnsemble` whose members are pretrained on a proxy (FBNetV3)."""

    name = "mlp-pretrained"

    def __init__(self, space: Space, seed: int = 0, proxy: Proxy | None = None, pretrain_size: int = 1000,
                 pretrain_epochs: int = 200, members: int = 5, hidden: Sequence[int] = (128, 128), epochs: int = 300,
                 lr: float = 1e-3, weight_decay: float = 1e-4, loss: Loss = "mse", encoding: str = "onehot",
                 pretrain_cache: dict[str, Any] | None = None) -> None:
        MLPEnsemble.__init__(self, space, seed, members, hidden, epochs, lr, weight_decay, loss, encoding)
        self._setup_pretraining(proxy, pretrain_size, pretrain_epochs, pretrain_cache)


class PretrainedGCN(_Pretrained, GCNPredictor):
    """`GCNPredictor` whose members are pretrained on a proxy (FBNetV3 applied to BRP-NAS's GCN)."""

    name = "gcn-pretrained"

    def __init__(self, space: Space, seed: int = 0, proxy: Proxy | None = None, pretrain_size: int = 1000,
                 pretrain_epochs: int = 100, members: int = 3, hidden: int = 64, layers: int = 3, epochs: int = 200,
                 lr: float = 3e-3, weight_decay: float = 1e-4, loss: Loss = "mse",
                 pretrain_cache: dict[str, Any] | None = None) -> None:
        GCNPredictor.__init__(self, space, seed, members, hidden, layers, epochs, lr, weight_decay, loss)
        self._setup_pretraining(proxy, pretrain_size, pretrain_epochs, pretrain_cache)
