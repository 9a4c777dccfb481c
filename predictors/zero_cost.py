"""Zero-cost proxies: scores of an untrained `torch.nn.Module` from one minibatch, for any model.

Proxies (Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS"; Mellor et al. 2021):
- `grad_norm`: sum over parameter tensors of the L2 norm of the loss gradient;
- `snip`: sum |theta * dL/dtheta| (Lee et al. 2019), the loss's sensitivity to removing each weight;
- `synflow`: sum theta * dR/dtheta with |theta| and all-ones inputs of the given shape, R = sum of
  outputs (Tanaka et al. 2020): label- and data-free, computed in float64 on a copy in eval mode (float32, with a
  warning, for a model that does not run in float64, e.g. one making float32 tensors in its forward);
- `jacov`: Jacobian covariance (NASWOT v1): -sum(log(v + k) + 1/(v + k)) over the eigenvalues v of the
  correlation matrix of per-row input gradients;
- `naswot`: log|K + jitter I| of the Hamming kernel K of binary activation codes (NASWOT v2), codes
  taken at the inputs of the activation modules (a unit is 'on' when its pre-activation is positive) whose first
  dimension is the rows of the inputs (an activation after a readout, one row per graph, is left out);
  `jitter=0` is the paper's log|K|, which is -inf as soon as K is singular (two rows with one code, or
  fewer units than rows, as in narrow GNNs scored on many nodes); the default 1 keeps such networks
  comparable;
- `params`, `flops`: baselines (FLOPs via torch's FlopCounterMode, `nas.counts`).

`inputs` is a tensor, a tuple of positional arguments (e.g. `(x, edge_index)` for a GNN) or a dict of
keyword arguments. The model is never changed: gradients are taken with `torch.autograd.grad`, the
forward pass of `grad_norm` / `snip` (in the model's own mode) has its buffers restored and runs on a forked,
seeded RNG (dropout draws the same masks every call), `jacov` / `naswot` put every submodule back in its own
mode, and SynFlow runs on a deep copy. Rows of the first floating input (samples, or nodes of a graph) are the
units that Jacobian and activation-code proxies compare; at most `max_rows` (>= 2) of them are used, and they warn
when those rows are all identical (all-zeros inputs) and the score therefore cannot tell networks apart. The
proxies that read the input values (`jacov`, `naswot`, `grad_norm`, `snip`) refuse floating inputs holding NaN or
inf (a ConfigError naming `inputs`): on those every network gets an uninformative score.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.errors import ConfigError, check_count, check_int
from nas.seeding import torch_seeded
from nas.spaces import Architecture, Space
from nas.predictors.base import Predictor, RankTarget, check_seed

if TYPE_CHECKING:
    import torch

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
LABEL_FREE = ("synflow", "jacov", "naswot", "params", "flops")
NEEDS_LABELS = ("grad_norm", "snip")
PROXIES = NEEDS_LABELS + LABEL_FREE
_ACTIVATIONS = ("ReLU", "ReLU6", "LeakyReLU", "ELU", "CELU", "SELU", "GELU", "SiLU", "Mish", "Softplus",
                "Tanh", "Hardswish", "PReLU")
ROW_PROXIES = ("jacov", "naswot")  # the proxies that compare the rows of the first floating input


def call(model: "torch.nn.Module", inputs: Any) -> "torch.Tensor":
    """Run `model` on a tensor, a tuple of positional args or a dict of kwargs; the first tensor output."""
    import torch

    out = model(**inputs) if isinstance(inputs, Mapping) else model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    if isinstance(out, Mapping):
        out = next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"model output: expected a tensor (or a tuple/dict starting with one), got {type(out).__name__}")
    return out


def _map_tensors(inputs: Any, fn: Callable[["torch.Tensor"], "torch.Tensor"]) -> Any:
    import torch

    if isinstance(inputs, torch.Tensor):
        return fn(inputs) if inputs.is_floating_point() else inputs
    if isinstance(inputs, tuple):
        return tuple(_map_tensors(v, fn) for v in inputs)
    if isinstance(inputs, Mapping):
        return {k: _map_tensors(v, fn) for k, v in inputs.items()}
    return inputs


def _floats(inputs: Any) -> list["torch.Tensor"]:
    found: list[torch.Tensor] = []
    _map_tensors(inputs, lambda t: found.append(t) or t)
    return found


def _first_float(inputs: Any) -> "torch.Tensor":
    found = _floats(inputs)
    if not found:
        raise ConfigError("inputs: the Jacobian proxy needs a floating-point input tensor")
    return found[0]


def _input_rows(inputs: Any) -> int | None:
    """The number of rows `naswot` compares: the first dimension of the first floating input, else of the first tensor
    input (token ids); None when no input tensor has a dimension."""
    import torch

    found: list[torch.Tensor] = []

    def visit(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            if v.dim() >= 1:
                found.append(v)
        elif isinstance(v, tuple):
            for item in v:
                visit(item)
        elif isinstance(v, Mapping):
            for item in v.values():
                visit(item)

    visit(inputs)
    floats = [t for t in found if t.is_floating_point()]
    first = floats[0] if floats else found[0] if found else None
    return None if first is None else int(first.shape[0])


def _same_rows(t: "torch.Tensor") -> bool:
    """Whether `t` has fewer than two rows or all of them equal: nothing a row-comparing proxy could tell apart."""
    return t.dim() == 0 or t.shape[0] < 2 or bool((t == t[:1]).all())


def _warn_same_rows(proxy: str, rows: int, consequence: str) -> None:
    what = "only one row" if rows < 2 else f"all {rows} rows identical"
    warnings.warn(f"{proxy}: the first floating input has {what} (all-zeros inputs, say), so {consequence}: pass "
                  "inputs whose rows differ (e.g. torch.randn of the same shape)", stacklevel=3)


def _distinct_rows(inputs: Any) -> Any:
    """`inputs` with its first floating tensor replaced by standard normal values of its shape and dtype (from torch's
    RNG) where its two or more rows are all identical, as the all-zeros `example_input` of `nas.nn` model spaces and
    OFASpace are: `jacov` and `naswot` compare rows, and on identical rows score every network alike."""
    import torch

    floats = _floats(inputs)
    first = floats[0] if floats else None
    if first is None or first.dim() == 0 or first.shape[0] < 2 or not _same_rows(first):
        return inputs
    fresh = torch.randn(first.shape, dtype=first.dtype, device=first.device)
    return _map_tensors(inputs, lambda t: fresh if t is first else t)


def _check_finite(inputs: Any, proxy: str) -> None:
    """ConfigError naming `inputs` when a floating input holds NaN or inf: `proxy` reads the input values, and on
    those it scores every network alike (jacov: one large negative number) instead of failing."""
    import torch

    floats = _floats(inputs)
    for i, t in enumerate(floats):
        bad = ~torch.isfinite(t.detach())
        if not bool(bad.any()):
            continue
        which = "the floating input" if len(floats) == 1 else f"floating input {i}"
        row = f", first at row {int(bad.reshape(t.shape[0], -1).any(dim=1).nonzero()[0])}" if t.dim() else ""
        raise ConfigError(f"inputs: {int(bad.sum())} of the {t.numel()} values of {which} are not finite (NaN or "
                          f"inf{row}): {proxy} scores a network by its response to the input values, and on these it "
                          "cannot tell networks apart; pass finite inputs")


def _params(model: "torch.nn.Module") -> list["torch.Tensor"]:
    return [p for p in model.parameters() if p.requires_grad]


def _trainable(model: "torch.nn.Module", proxy: str) -> list["torch.Tensor"]:
    """The parameters `proxy` takes gradients of; ConfigError naming `model` when there are none."""
    params = _params(model)
    if not params:
        raise ConfigError(f"model: {proxy} takes gradients of the trainable parameters, and this "
                          f"{type(model).__name__} has none (every parameter frozen with requires_grad=False, or no "
                          "parameters)")
    return params


@contextlib.contextmanager
def _untouched(model: "torch.nn.Module", seed: int) -> Iterator[None]:
    """Run a forward pass in the model's own mode without leaving a trace: its buffers (BatchNorm running statistics)
    are put back afterwards, and torch's RNG (CPU, and the CUDA devices the model is on) is forked and seeded with
    `seed`, so dropout draws the same masks on every call and the caller's RNG is not advanced."""
    import torch

    saved = [(b, b.detach().clone()) for b in model.buffers()]
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices):
            torch.random.default_generator.manual_seed(seed)
            for d in devices:
                torch.cuda.default_generators[d].manual_seed(seed)
            yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)


def _loss_grads(model: "torch.nn.Module", inputs: Any, targets: "torch.Tensor", loss_fn: LossFn,
                seed: int = 0, proxy: str = "grad_norm/snip") -> list["torch.Tensor"]:
    import torch

    seed = check_seed(seed)
    params = _trainable(model, proxy)
    _check_finite(inputs, proxy)
    with _untouched(model, seed):
        loss = loss_fn(call(model, inputs), targets)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def grad_norm(model: "torch.nn.Module", inputs: Any, targets: "torch.Tensor", loss_fn: LossFn, seed: int = 0) -> float:
    """Sum over parameter tensors of ||dL/dtheta||_2 (forward in the model's mode; dropout seeded by `seed`)."""
    return float(sum(float(g.norm()) for g in _loss_grads(model, inputs, targets, loss_fn, seed, "grad_norm")))


def snip(model: "torch.nn.Module", inputs: Any, targets: "torch.Tensor", loss_fn: LossFn, seed: int = 0) -> float:
    """Sum over weights of |theta * dL/dtheta| (forward in the model's mode; dropout seeded by `seed`)."""
    grads = _loss_grads(model, inputs, targets, loss_fn, seed, "snip")
    return float(sum(float((p.detach() * g).abs().sum()) for p, g in zip(_params(model), grads)))


def synflow(model: "torch.nn.Module", inputs: Any) -> float:
    """Sum of theta * dR/dtheta for |theta| and all-ones floating inputs, in float64 and eval mode; in float32 (with a
    warning) for a model that fails in float64, e.g. one making float32 tensors in its forward (an RNN's state)."""
    import torch

    _trainable(model, "synflow")
    try:
        return _synflow(model, inputs, torch.float64)
    except RuntimeError as error:  # a dtype mismatch; a model that fails in float32 too raises its own error below
        score = _synflow(model, inputs, torch.float32)
        warnings.warn(f"synflow: the model does not run on its float64 copy ({error}), so it was scored on a float32 "
                      "copy, where a deep network's score can overflow to inf", stacklevel=2)
        return score


def _synflow(model: "torch.nn.Module", inputs: Any, dtype: "torch.dtype") -> float:
    import torch

    net = copy.deepcopy(model).to(dtype).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = _map_tensors(inputs, lambda t: torch.ones_like(t, dtype=dtype))
    params = _params(net)
    out = call(net, ones)
    grads = torch.autograd.grad(out.sum(), params, allow_unused=True)
    return float(sum(float((p.detach() * g).sum()) for p, g in zip(params, grads) if g is not None))


def jacov(model: "torch.nn.Module", inputs: Any, max_rows: int = 256, eps: float = 1e-5) -> float:
    """Jacobian covariance score: -sum(log(v + eps) + 1/(v + eps)) over correlation eigenvalues (higher: better).

    Warns when the rows compared and their gradients are all identical (all-zeros inputs): the score is then the
    same for every network; refuses non-finite inputs (ConfigError naming `inputs`)."""
    import torch

    from nas.counts import eval_mode

    max_rows = check_int(max_rows, "max_rows", 2)
    _check_finite(inputs, "jacov")
    x = _first_float(inputs).detach().clone().requires_grad_(True)
    replaced = [False]

    def swap(t: "torch.Tensor") -> "torch.Tensor":
        if not replaced[0]:
            replaced[0] = True
            return x
        return t

    with eval_mode(model):
        out = call(model, _map_tensors(inputs, swap))
        (jac,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    if jac is None:
        return float("-inf")
    rows = jac.reshape(jac.shape[0], -1)[:max_rows]
    if _same_rows(x.detach()[:max_rows]) and _same_rows(rows):
        _warn_same_rows("jacov", len(rows), "its score is the same for every network")
    j = rows.double().numpy()
    j = j - j.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(j, axis=1, keepdims=True)
    j = j / np.where(norms > 0, norms, 1.0)
    v = np.linalg.eigvalsh(j @ j.T)
    return float(-np.sum(np.log(np.maximum(v, 0) + eps) + 1.0 / (np.maximum(v, 0) + eps)))


def naswot(model: "torch.nn.Module", inputs: Any, max_rows: int = 256, jitter: float = 1.0) -> float:
    """log|K + jitter I|, K = c c^T + (1-c)(1-c)^T over binary codes c of pre-activations of activation modules.

    When a model has no activation modules (functional activations only), the outputs of its
    parametrised leaf modules (linear maps) serve as the pre-activations. The kernel compares the rows of the inputs
    (those of the first floating input, else of the first tensor: samples, or the nodes of a graph), so only the
    codes whose first dimension is that row count are used: an activation after a readout (one row per graph) or
    over a stacked tensor (PyG ARMAConv's (stacks, nodes, channels)) is left out, since its rows are not the
    input's. Warns, and gives -inf, when no code has those rows; warns when the rows of the first floating input and
    their codes are all identical (all-zeros inputs): the score then only counts units. Refuses non-finite inputs
    (ConfigError naming `inputs`).
    """
    import torch

    from nas.counts import eval_mode

    max_rows = check_int(max_rows, "max_rows", 2)
    _check_finite(inputs, "naswot")
    acts = [m for m in model.modules() if type(m).__name__ in _ACTIVATIONS]
    use_inputs = bool(acts)
    if not acts:
        acts = [m for m in model.modules() if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]
    n = _input_rows(inputs)
    codes: list[torch.Tensor] = []
    other = [0]  # codes left out: their first dimension is not the rows of the inputs

    def hook(_m: Any, inp: tuple[Any, ...], out: Any) -> None:
        t = inp[0] if use_inputs else out
        if isinstance(t, torch.Tensor) and t.dim() >= 1:
            if n is not None and t.shape[0] != n:
                other[0] += 1
                return
            codes.append((t.detach().reshape(t.shape[0], -1)[:max_rows] > 0).double())

    handles = [m.register_forward_hook(hook) for m in acts]
    try:
        with eval_mode(model), torch.no_grad():
            call(model, inputs)
    finally:
        for h in handles:
            h.remove()
    if not codes and other[0]:
        warnings.warn(f"naswot: no activation of this {type(model).__name__} has the {n} rows of its inputs (each of "
                      f"its {other[0]} codes has another first dimension: one row per graph after a readout, say), so "
                      "it has no score (-inf)", stacklevel=2)
    rows = min((c.shape[0] for c in codes), default=0)
    if rows == 0:
        return float("-inf")
    c = torch.cat([c[:rows] for c in codes], dim=1)
    floats = _floats(inputs)
    if floats and _same_rows(floats[0][:max_rows]) and _same_rows(c):
        _warn_same_rows("naswot", rows, "its score only counts the network's units")
    k = c @ c.T + (1 - c) @ (1 - c).T + jitter * torch.eye(rows, dtype=c.dtype)
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if float(sign) > 0 else float("-inf")


def param_count(model: "torch.nn.Module") -> float:
    return float(sum(p.numel() for p in model.parameters()))


def flops(model: "torch.nn.Module", inputs: Any) -> float:
    from nas.counts import count_flops

    return float(count_flops(model, inputs)["flops"])


def compute_proxies(model: "torch.nn.Module", inputs: Any, targets: "torch.Tensor | None" = None,
                    loss_fn: LossFn | None = None, proxies: Sequence[str] = PROXIES,
                    max_rows: int = 256, seed: int = 0) -> dict[str, float]:
    """{proxy: score} for one untrained model and one minibatch (labels needed for grad_norm and snip; `seed` seeds
    their forward pass, run in the model's own mode, so dropout gives the same score on every call)."""
    if isinstance(proxies, str) or not isinstance(proxies, Iterable):
        raise ConfigError(f"proxies: expected a list of proxy names (e.g. [{proxies!r}]), got {proxies!r}")
    proxies = list(proxies)
    max_rows = check_int(max_rows, "max_rows", 2)
    seed = check_seed(seed)
    unknown = [p for p in proxies if p not in PROXIES]
    if unknown:
        raise ConfigError(f"proxies: unknown {unknown} (known: {', '.join(PROXIES)})")
    if any(p in NEEDS_LABELS for p in proxies) and (targets is None or loss_fn is None):
        raise ConfigError(f"proxies {[p for p in proxies if p in NEEDS_LABELS]} need targets and a loss_fn")
    fns: dict[str, Callable[[], float]] = {
        "grad_norm": lambda: grad_norm(model, inputs, targets, loss_fn, seed),  # type: ignore[arg-type]
        "snip": lambda: snip(model, inputs, targets, loss_fn, seed),  # type: ignore[arg-type]
        "synflow": lambda: synflow(model, inputs),
        "jacov": lambda: jacov(model, inputs, max_rows),
        "naswot": lambda: naswot(model, inputs, max_rows),
        "params": lambda: param_count(model),
        "flops": lambda: flops(model, inputs),
    }
    return {p: fns[p]() for p in proxies}


Batch = Callable[[Architecture], tuple[Any, Any]]  # arch -> (inputs, targets)


class ZeroCostPredictor(Predictor):
    """Ranks by one proxy of a freshly built model; `fit` only calibrates scores onto the target scale.

    Label-free proxies use `space.example_input(arch, batch_size)` (for `jacov`/`naswot`, which compare its rows,
    random normal values of its shape and dtype instead where its rows are all identical, as all-zeros inputs are);
    `grad_norm`/`snip` need `batch` (arch -> (inputs, targets)) and `loss_fn`, which are runtime objects and not
    part of the state. The whole scoring (building the model, drawing its inputs, the proxy) runs with torch's RNG
    seeded by `seed` (forked, so the caller's RNG is untouched): scores are reproducible. A network the proxy fails
    on (a non-finite score) is predicted below every scored one, whichever direction `fit` calibrated.
    """

    name = "zero-cost"
    needs = frozenset({"model"})

    def __init__(self, space: Space, seed: int = 0, proxy: str = "synflow", batch_size: int = 16,
                 batch: Batch | None = None, loss_fn: LossFn | None = None) -> None:
        super().__init__(space, seed)
        if proxy not in PROXIES:
            raise ConfigError(f"proxy: unknown {proxy!r} (known: {', '.join(PROXIES)})")
        if proxy in NEEDS_LABELS and (batch is None or loss_fn is None):
            raise ConfigError(f"proxy {proxy!r} needs labelled data: pass batch=arch->(inputs, targets) and loss_fn")
        batch_size = check_count(batch_size, "zero-cost: batch_size", " (example inputs per scored network)")
        self.proxy, self.batch_size, self.batch, self.loss_fn = proxy, batch_size, batch, loss_fn
        if proxy == "jacov" and batch is None:
            self._check_floating_input()

    def _check_floating_input(self) -> None:
        """`jacov` differentiates with respect to the first floating input: refuse a space whose example input has
        none (token ids only) now, not at the first score (a search would have spent its first evaluations). One
        sampled architecture stands for all: a space's models take one kind of input."""
        import torch

        arch = self.space.sample(np.random.default_rng(self.seed))
        with torch.random.fork_rng(devices=[]):  # example inputs may be drawn: the caller's RNG is left alone
            inputs = self.space.example_input(arch, self.batch_size)  # type: ignore[attr-defined]
        if not _floats(inputs):
            raise ConfigError(f"proxy: 'jacov' differentiates with respect to a floating-point input, and the example "
                              f"input of {type(self.space).__name__} has none (token ids only): use another proxy, "
                              "e.g. 'naswot'")

    def config(self) -> dict[str, Any]:
        return {"seed": self.seed, "proxy": self.proxy, "batch_size": self.batch_size}

    def score(self, arch: Architecture) -> float:
        """The proxy's value for `arch` (non-finite where the proxy failed, e.g. -inf for a network whose output
        does not depend on its input); reproducible: the model is built, its inputs drawn and the proxy computed on
        torch's RNG forked and seeded from `seed` (the inputs on a stream of their own, the same for every arch)."""
        import torch

        with torch_seeded(self.seed):
            model = self.space.build(arch)  # type: ignore[attr-defined]
            torch.manual_seed(int(np.random.SeedSequence([self.seed, 1]).generate_state(1)[0]))
            if self.batch is not None:
                inputs, targets = self.batch(arch)
            else:
                inputs, targets = self.space.example_input(arch, self.batch_size), None  # type: ignore[attr-defined]
                if self.proxy in ROW_PROXIES:
                    inputs = _distinct_rows(inputs)
            return compute_proxies(model, inputs, targets, self.loss_fn, [self.proxy], seed=self.seed)[self.proxy]

    def _fit(self, archs: list[Architecture], y: np.ndarray) -> None:
        from scipy.stats import spearmanr

        s = np.array([self.score(a) for a in archs])
        ok = np.isfinite(s)  # the direction is calibrated on the networks the proxy could score
        rho = spearmanr(s[ok], y[ok])[0] if ok.sum() > 1 and np.ptp(s[ok]) > 0 else 0.0
        self._sign = -1.0 if np.isfinite(rho) and rho < 0 else 1.0
        self._scores = np.sort(self._sign * s[ok])
        self._rank = RankTarget().fit(y)
        # beyond the training scores, linear in the oriented score (as TransferPredictor maps back beyond the best
        # result): the least-squares slope of the targets per training-score range, at least the rank map's tilt,
        # so candidates scored above everything measured are still told apart, in the proxy's order
        self._span = float(np.ptp(self._scores)) if len(self._scores) else 0.0
        slope = (float(np.polyfit(self._sign * s[ok] / self._span, y[ok], 1)[0]) if self._span > 0 else 0.0)
        self._slope = max(slope, self._rank._tilt)
        self._span = self._span or 1.0
        self._resid = 0.0
        self._resid = float(np.std(y - self._mean(s)[0]))

    def _quantile(self, s: np.ndarray) -> np.ndarray:
        """The quantile of each raw score among the training scores, oriented by the calibrated sign (held at the
        ends beyond them); a failed (non-finite) score gets quantile 0, below every scored network, whichever the
        sign."""
        s = np.asarray(s, dtype=float)
        ok = np.isfinite(s)
        q = np.zeros(len(s))
        if len(self._scores) and ok.any():
            grid = (np.arange(len(self._scores)) + 0.5) / len(self._scores)
            q[ok] = np.interp(self._sign * s[ok], self._scores, grid)
        return q

    def _mean(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, distance beyond the training scores in units of their range) for raw scores. Above the range the
        mean grows linearly; below it, it falls towards (never to) `_slope` under the lowest in-range mean, so a
        failed network (`_predict`) stays below every scored one."""
        mean = self._rank.inverse(self._quantile(s))
        above, below = np.zeros(len(s)), np.zeros(len(s))
        ok = np.isfinite(s)
        if len(self._scores) and ok.any():
            u = self._sign * s[ok]
            above[ok] = np.maximum(u - self._scores[-1], 0.0) / self._span
            below[ok] = np.maximum(self._scores[0] - u, 0.0) / self._span
        mean = mean + self._slope * (above - below / (1.0 + below))
        return mean, above + below

    def _predict(self, archs: list[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        s = np.array([self.score(a) for a in archs])
        mean, beyond = self._mean(s)
        failed = ~np.isfinite(s)
        if failed.any():  # strictly below every scored prediction, even where the tilt is under float precision
            lowest = float(self._rank.inverse(np.array([0.5 / len(self._scores) if len(self._scores) else 0.0]))[0])
            mean[failed] = np.minimum(mean[failed], np.nextafter(lowest - 2.0 * self._slope, -np.inf))
        # the further beyond the scores measured, the less sure: the std grows with the distance, at the slope
        return mean, self._resid + self._slope * beyond
