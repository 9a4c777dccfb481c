"""A deep ensemble of MLPs (Lakshminarayanan et al. 2017) on the one-hot encoding, and the torch training loop
the neural predictors share (mean-squared or pairwise ranking loss, full batch, Adam).

Members differ only in their initialisation; the predictive std is the spread of their outputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from nas.errors import ConfigError, check_count, check_number
from nas.spaces import Architecture, Space
from nas.predictors.base import Predictor, RankTarget
from nas.predictors.encodings import encoder, encoding_width

if TYPE_CHECKING:
    import torch

Loss = Literal["mse", "pairwise"]


def pairwise_loss(pred: "torch.Tensor", target: "torch.Tensor") -> "torch.Tensor":
    """Logistic ranking loss over all ordered pairs: log(1 + exp(-(p_i - p_j))) where y_i > y_j (BRP-NAS style)."""
    import torch.nn.functional as F

    diff_p = pred[:, None] - pred[None, :]
    better = (target[:, None] - target[None, :]) > 0
    if not bool(better.any()):
        return pred.sum() * 0.0
    return F.softplus(-diff_p[better]).mean()


def train_regressor(net: "torch.nn.Module", inputs: Sequence["torch.Tensor"], target: "torch.Tensor",
                    epochs: int, lr: float, weight_decay: float, loss: Loss = "mse") -> "torch.nn.Module":
    """Full-batch Adam on `net(*inputs)` against `target` (standardised); returns the net in eval mode."""
    import torch
    import torch.nn.functional as F

    losses: dict[str, Callable[[Any, Any], Any]] = {"mse": F.mse_loss, "pairwise": pairwise_loss}
    if loss not in losses:
        raise ConfigError(f"loss: unknown {loss!r} (known: {', '.join(losses)})")
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1))
    net.train()
    for _ in range(epochs):
        opt.zero_grad()
        value = losses[loss](net(*inputs).squeeze(-1), target)
        value.backward()
        opt.step()
        sched.step()
    return net.eval()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread for the duration (restored after): small predictor nets gain nothing from more, and on a
    busy 2-core machine one `mlp-ensemble` fit took 135 s at the default thread count instead of 3.6 s on one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def mlp(width_in: int, hidden: Sequence[int]) -> "torch.nn.Module":
    import torch.nn as nn

    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(width_in, h), nn.ReLU()]
        width_in = h
    layers.append(nn.Linear(width_in, 1))
    return nn.Sequential(*layers)


class _TorchPredictor(Predictor):
    """Shared plumbing for neural predictors: rank targets, seeded members, score calibration.

    With the pairwise loss the outputs are scores, not targets: they are mapped to the target scale by
    their quantile among the training set's scores (monotone, so rankings are untouched).
    """

    def __init__(self, space: Space, seed: int = 0, members: int = 5, epochs: int = 300, lr: float = 1e-3,
                 weight_decay: float = 1e-4, loss: Loss = "mse") -> None:
        super().__init__(space, seed)
        check_count(members, f"{self.name}: members")
        check_count(epochs, f"{self.name}: epochs")
        check_number(lr, f"{self.name}: lr")
        check_number(weight_decay, f"{self.name}: weight_decay", positive=False)
        if loss not in ("mse", "pairwise"):
            raise ConfigError(f"loss: expected 'mse' or 'pairwise', got {loss!r}")
        self.members, self.epochs, self.lr, self.weight_decay, self.loss = members, epochs, lr, weight_decay, loss

    # subclasses: tensors for a list of architectures, and a fresh network
    def _tensors(self, archs: Sequence[Architecture]) -> list["torch.Tensor"]:
        raise NotImplementedError

    def _network(self) -> "torch.nn.Module":
        raise NotImplementedError

    def _prepare(self, archs: list[Architecture]) -> None:
        """Hook before the first `_tensors` call of a fit (e.g. to build a vocabulary)."""

    def _init_member(self, k: int, net: "torch.nn.Module") -> None:
        """Hook to initialise member `k` before fine-tuning (pretraining overrides it)."""

    def _fit(self, archs: list[Architecture], y: np.ndarray) -> None:
        with one_thread():
            self._fit_nets(archs, y)

    def _fit_nets(self, archs: list[Architecture], y: np.ndarray) -> None:
        import torch

        self._prepare(archs)
        self._rank = RankTarget().fit(y)
        t = self._rank.transform(y)
        target = torch.tensor((t - t.mean()) / (t.std() or 1.0), dtype=torch.float32)
        inputs = self._tensors(archs)
        self._nets = []
        with torch.random.fork_rng(devices=[]):
            for k in range(self.members):
                torch.manual_seed(self.seed * 7919 + k)
                net = self._network()
                self._init_member(k, net)
                self._nets.append(train_regressor(net, inputs, target, self.epochs, self.lr, self.weight_decay,
                                                  self.loss))
        train_out = self._raw(inputs)
        self._train_scores = np.sort(train_out.mean(axis=0))
        self._t_mean, self._t_std = float(t.mean()), float(t.std() or 1.0)

    def _raw(self, inputs: list["torch.Tensor"]) -> np.ndarray:
        import torch

        with torch.no_grad():
            return np.stack([net(*inputs).squeeze(-1).numpy() for net in self._nets]).astype(float)

    def _predict(self, archs: list[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        with one_thread():
            out = self._raw(self._tensors(archs))
        if self.loss == "mse":
            q = out * self._t_std + self._t_mean  # back to quantiles
            mean, std = q.mean(axis=0), q.std(axis=0)
        else:  # scores -> quantile among the training scores
            grid = (np.arange(len(self._train_scores)) + 0.5) / len(self._train_scores)
            q = np.stack([np.interp(o, self._train_scores, grid) for o in out])
            mean, std = q.mean(axis=0), q.std(axis=0)
        return self._rank.inverse(mean), self._rank.inverse_std(mean, std)


class MLPEnsemble(_TorchPredictor):
    """`members` MLPs on the space's one-hot (or another: `encoding`) code; std = spread across members."""

    name = "mlp-ensemble"
    needs = frozenset({"vector"})

    def __init__(self, space: Space, seed: int = 0, members: int = 5, hidden: Sequence[int] = (128, 128),
                 epochs: int = 300, lr: float = 1e-3, weight_decay: float = 1e-4, loss: Loss = "mse",
                 encoding: str = "onehot") -> None:
        super().__init__(space, seed, members, epochs, lr, weight_decay, loss)
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise ConfigError(f"{self.name}: hidden: expected a list of layer widths, e.g. [128, 128], got {hidden!r}")
        self.hidden = [check_count(h, f"{self.name}: hidden[{i}]", " (a layer width)") for i, h in enumerate(hidden)]
        self.encoding = encoding
        self._encode = encoder(space, encoding)
        self._width = encoding_width(space, encoding)  # the network's input: as wide as the chosen code

    def _tensors(self, archs: Sequence[Architecture]) -> list["torch.Tensor"]:
        import torch

        return [torch.tensor(self._encode(archs), dtype=torch.float32)]

    def _network(self) -> "torch.nn.Module":
        return mlp(self._width, self.hidden)
