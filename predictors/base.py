"""The predictor contract: `fit(archs, y)`, `predict(archs) -> (mean, std)`, declared needs, plain-data state.

State is plain data (the configuration and the training set); `load_state_dict` refits from it, so
nothing live is ever pickled and a restored predictor predicts exactly what the original did.
"""

from __future__ import annotations

import inspect
import logging
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from nas.errors import ConfigError
from nas.jsonio import plain, plain_value
from nas.spaces import Architecture, Space
from nas.spaces.spec_difference import space_difference

logger = logging.getLogger(__name__)

Need = Literal["vector", "graph", "model"]
Target = Literal["rank", "raw"]


def one_blas_thread() -> Any:
    """BLAS / OpenMP on one thread for a fit or predict (threadpoolctl): the matrices are small, and on a busy 2-core
    machine threads only contend (an L-BFGS step of the kernel GP took 10 ms instead of well under 1 ms)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


VALID_CACHE = 100_000  # ids a predictor remembers as validated (searches predict the same candidates many times)


def as_architectures(space: Space, archs: Sequence[Mapping[str, Any]],
                     valid: set[str] | None = None) -> list[Architecture]:
    """Validated architectures (InvalidArchitectureError naming the bad field otherwise). `Architecture` objects are
    validated too: one from another space, or missing a field, would otherwise be encoded into the wrong slots.
    `valid` holds ids already validated in `space` (an id is a hash of the content): those pass unchecked. One
    architecture (a mapping) where the list is expected is refused: iterating over it would give its field names."""
    if isinstance(archs, (Mapping, str)):
        what = "one architecture" if isinstance(archs, Mapping) else f"the str {archs!r}"
        raise ConfigError(f"archs: expected a list of architectures, got {what} (pass [arch] for a single one)")
    out = []
    for a in archs:
        if valid is not None and isinstance(a, Architecture) and a.id in valid:
            out.append(a)
            continue
        arch = space.validate(a)
        if valid is not None:
            if len(valid) >= VALID_CACHE:
                valid.clear()
            valid.add(arch.id)
        out.append(arch)
    return out


def finite_targets(y: Any, what: str = "fit: targets") -> np.ndarray:
    """`y` as a new 1-d float array (the caller may reuse its own; the state must not change); ConfigError naming the
    indices and values of the entries that are not finite numbers (NaN, None, a str, a bool) otherwise. Bools are
    refused as `check_seed` refuses them: True and False taken as 1.0 and 0.0 hide a mask passed for the values."""
    try:
        y_arr = np.array(y, dtype=float).ravel()
    except (TypeError, ValueError):
        y_arr = None
    if y_arr is not None and np.all(np.isfinite(y_arr)) and not _holds_bools(y):
        return y_arr
    values = np.array(y, dtype=object).ravel()
    bad = [i for i, v in enumerate(values) if not _finite_number(v)]
    shown = ", ".join(_show(values[i]) for i in bad[:5])
    bools = any(isinstance(values[i], (bool, np.bool_)) for i in bad)
    hint = "a bool is not a target value: pass numbers" if bools else "drop failed evaluations first"
    raise ConfigError(f"{what} {bad[:5]}{' (and more)' if len(bad) > 5 else ''} are not finite numbers ({shown}): "
                      f"{hint}")


def _holds_bools(y: Any) -> bool:
    """Whether `y` is a bool array or holds a bool (Python's or numpy's) among its values."""
    if isinstance(y, np.ndarray) and y.dtype != object:
        return y.dtype == np.bool_
    return any(isinstance(v, (bool, np.bool_)) for v in np.array(y, dtype=object).ravel())


def _show(v: Any) -> str:
    """A target as the message shows it: a number as a plain float (nan, not np.float64(nan)), anything else repr."""
    return repr(float(v)) if isinstance(v, numbers.Real) and not isinstance(v, bool) else repr(v)


def _finite_number(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    try:
        return bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False


def _where(spec: Any, space: Space) -> str:
    """Where a recorded `Space.to_spec()` differs from `space`'s, for a message."""
    found = (space_difference(plain(spec, "space_spec"), plain(space.to_spec(), "space spec"))
             if isinstance(spec, Mapping) else None)
    return f"{found[0]} was {found[1]}, is {found[2]}" if found else "its description is not recorded"


STATE_KEYS = ("type", "config", "train")  # what every `Predictor.state_dict` holds (subclasses add their own)


def check_state(space: Space, state: Any) -> None:
    """ConfigError for a state that is not a `state_dict` (naming the missing key) or that was saved on another space
    (by `space.fingerprint()`, naming the fields that differ): refitted on this space's encoding, it would predict
    something else. A state saved before the fingerprint was recorded loads unchecked."""
    if not isinstance(state, Mapping):
        raise ConfigError(f"predictor state: expected a dict (from state_dict()), got {type(state).__name__}")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise ConfigError(f"predictor state: missing {missing[0]!r} (a state_dict() holds {', '.join(STATE_KEYS)})")
    if not isinstance(state["config"], Mapping):
        raise ConfigError(f"predictor state: 'config' must be a dict, got {type(state['config']).__name__}")
    train = state["train"]
    if not isinstance(train, Mapping) or "archs" not in train or "y" not in train:
        lacks = "a dict" if not isinstance(train, Mapping) else repr("archs" if "archs" not in train else "y")
        raise ConfigError(f"predictor state: 'train' must be a dict of 'archs' and 'y' (the training set), "
                          f"lacks {lacks}")
    recorded = state.get("space")
    if recorded is None:
        logger.debug("predictor state of %r has no space fingerprint (saved before it was recorded): loaded into "
                     "%s unchecked", state["type"], type(space).__name__)
        return
    mine = space.fingerprint()
    if recorded != mine:
        raise ConfigError(f"predictor state: saved on a different space (fingerprint {recorded}; this "
                          f"{type(space).__name__}'s is {mine}): {_where(state.get('space_spec'), space)}; "
                          "load it into the space it was fitted on")


def check_seed(seed: Any) -> int:
    """`seed` as a plain int >= 0 (a numpy integer too); ConfigError naming `seed` otherwise.

    Every fit is seeded (a restored predictor must refit to the same model), so None does not mean "draw one":
    callers with an optional seed pick the default themselves (`predictor-search` uses 0). Bools are refused,
    and so are negatives, which numpy's and scikit-learn's generators reject later with an unrelated message.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed: expected an int >= 0 (every predictor fit is seeded, so it is reproducible), "
                          f"got {seed!r}")
    return int(seed)


class RankTarget:
    """Maps targets to their empirical quantiles (robust to outlying failures) and back by interpolation.

    Regressing on ranks rather than raw accuracies keeps a few collapsed architectures from dominating a
    squared loss; `inverse` maps predicted quantiles back onto the training targets' scale.
    """

    def fit(self, y: np.ndarray) -> "RankTarget":
        self.sorted_y = np.sort(np.asarray(y, dtype=float))
        self.q = (np.arange(len(y)) + 0.5) / len(y)  # quantile of each sorted value
        self._tilt = 1e-6 * (float(np.ptp(self.sorted_y)) or 1.0)  # keeps the map strictly increasing
        # each distinct target at the mean quantile of its ties: the quantile `transform` gives it (for `inverse_std`)
        self._knot_y, tie = np.unique(self.sorted_y, return_inverse=True)
        self._knot_q = np.bincount(tie, weights=self.q) / np.bincount(tie)
        return self

    def transform(self, y: np.ndarray) -> np.ndarray:
        from scipy.stats import rankdata

        return (rankdata(y) - 0.5) / len(y)

    def inverse(self, q: np.ndarray) -> np.ndarray:
        """Quantiles -> targets; a tilt of 1e-6 x the target range keeps tied targets from erasing the ranking."""
        return np.interp(q, self.q, self.sorted_y) + self._tilt * (np.asarray(q) - 0.5)

    def inverse_std(self, q: np.ndarray, q_std: np.ndarray) -> np.ndarray:
        """A std on the target scale: half the spread of the interval mean +- std mapped through the distinct targets
        at their tied quantiles (the points `transform` maps them to). `inverse` holds a block of tied targets flat
        over its whole width, which shrank the std of a fit on tied targets to ~1e-6 x its scale; between distinct
        targets this map has the slope from one to the next, and without ties it is `inverse` (less its tilt)."""
        q, q_std = np.asarray(q, dtype=float), np.abs(np.asarray(q_std, dtype=float))
        return 0.5 * np.abs(np.interp(q + q_std, self._knot_q, self._knot_y)
                            - np.interp(q - q_std, self._knot_q, self._knot_y))


class Predictor(ABC):
    """A surrogate: `fit(archs, y)` then `predict(archs) -> (mean, std)` on the scale of `y`.

    `needs` declares the input a predictor consumes: "vector" (the space's fixed-length encodings),
    "graph" (`space.to_graph`) or "model" (a live `torch.nn.Module` from a `ModelSpace`).
    """

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[Need]] = frozenset({"vector"})
    degenerate: bool = False  # set by a fit whose predicted means are (nearly) constant, in value or in scale
    warned: bool = False  # a fit said so at WARNING (`warn_once`): later fits of this predictor say it at DEBUG

    def __init__(self, space: Space, seed: int = 0) -> None:
        missing = {"encode" if n == "vector" else n for n in self.needs} - space.capabilities
        if missing:
            raise ConfigError(f"predictor {self.name!r} needs space capabilities {sorted(missing)}, "
                              f"which {type(space).__name__} lacks")
        self.space = space
        self.seed = check_seed(seed)
        self.train_archs: list[Architecture] = []
        self.train_y = np.zeros(0)
        self._valid_ids: set[str] = set()  # ids `as_architectures` validated in this space

    # -------------------------------------------------------------------------------- contract
    def fit(self, archs: Sequence[Mapping[str, Any]], y: Sequence[float]) -> "Predictor":
        """Train on architectures and their measured targets (higher or lower is better: any scale)."""
        archs = as_architectures(self.space, archs, self._valid_ids)
        y_arr = finite_targets(y)
        if len(archs) != len(y_arr):
            raise ConfigError(f"fit: {len(archs)} architectures but {len(y_arr)} targets")
        if len(archs) < 2:
            raise ConfigError(f"fit: need at least 2 architectures, got {len(archs)}")
        self.train_archs, self.train_y = archs, y_arr
        with one_blas_thread():
            self._fit(archs, y_arr)
        return self

    def predict(self, archs: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mean and standard deviation per architecture."""
        if not self.train_archs:
            raise ConfigError(f"predictor {self.name!r}: call fit before predict")
        archs = as_architectures(self.space, archs, self._valid_ids)
        if not archs:
            return np.zeros(0), np.zeros(0)
        with one_blas_thread():
            mean, std = self._predict(archs)
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)

    @abstractmethod
    def _fit(self, archs: list[Architecture], y: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, archs: list[Architecture]) -> tuple[np.ndarray, np.ndarray]: ...

    def warn_once(self, log: logging.Logger, message: str, *args: object) -> None:
        """Log `message` at WARNING the first time for this predictor (a search refits the same one many times),
        at DEBUG after that, so a search's log says it once."""
        suffix = "" if self.warned else " (later fits of this predictor log it at DEBUG)"
        log.log(logging.DEBUG if self.warned else logging.WARNING, message + suffix, *args)
        self.warned = True

    # -------------------------------------------------------------------------------- state
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments as plain Python data (numpy scalars as their Python twins, which JSON
        takes), read from same-named attributes."""
        params = inspect.signature(type(self).__init__).parameters
        return {k: plain_value(getattr(self, k)) for k in params if k not in ("self", "space")}

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: the configuration, the training set (refitted on load) and the space's fingerprint
        and description (`Space.to_spec()`), so a load into another space is refused naming what differs."""
        return {"type": self.name, "config": self.config(),
                "train": {"archs": [a.to_dict() for a in self.train_archs], "y": self.train_y.tolist()},
                "space": self.space.fingerprint(), "space_spec": plain(self.space.to_spec(), "space spec")}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Refit from `state_dict()`; ConfigError for a state of another predictor, configuration or space."""
        check_state(self.space, state)
        if state.get("type") != self.name:
            raise ConfigError(f"state of predictor {state.get('type')!r} cannot load into {self.name!r}")
        if dict(state["config"]) != self.config():
            raise ConfigError(f"predictor {self.name!r}: state config {dict(state['config'])} differs from "
                              f"this predictor's {self.config()}")
        train = state["train"]
        if train["archs"]:
            self.fit(train["archs"], train["y"])
