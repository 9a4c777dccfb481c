"""Errors the toolkit raises on bad input: each names the offending field or value in one line."""

from __future__ import annotations

import math
import numbers


class NASError(Exception):
    """Base class: the CLI prints these as one line, without a traceback."""


class SpaceDefinitionError(NASError):
    """A search space is declared wrongly (empty choice, bad reference, ...)."""


class InvalidArchitectureError(NASError, ValueError):
    """A config does not belong to its space; `path` names the offending field."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path or '<architecture>'}: {message}")


class ConfigError(NASError, ValueError):
    """Bad arguments to a search (unknown strategy, constraint on a missing metric, ...)."""


class JournalError(NASError):
    """An experiment journal is corrupt or belongs to a different search."""


class WorkdirBusy(JournalError):
    """Another process holds the workdir's lock (it is writing the journal); waiting may help, unlike other
    JournalErrors."""


def _is_int(value: object) -> bool:
    """An integer of any kind (Python's, numpy's: `numbers.Integral`) that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_count(value: object, name: str, what: str = "") -> int:
    """`value` as a positive Python int (numpy ints taken, bools refused); ConfigError naming `name` otherwise (`what`
    says what it counts)."""
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise ConfigError(f"{name}: expected a positive int{what}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def check_int(value: object, name: str, minimum: int) -> int:
    """`value` as a Python int >= `minimum` (numpy ints taken, bools refused); ConfigError naming `name` otherwise (a
    count that may be 0, or must leave room, such as batch norm's 2 samples)."""
    if not _is_int(value) or value < minimum:  # type: ignore[operator]
        raise ConfigError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


MAX_SEED = 2 ** 63  # seeds below it, and the few offsets derived from them, fit torch.manual_seed's 64 bits


def check_seed(seed: object) -> int:
    """`seed` as an int (a numpy integer, as `np.arange` gives, too) in [0, 2**63); ConfigError naming the field
    otherwise (a larger one passed numpy and failed inside torch's one-shot, DARTS and BossNAS trainers)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < MAX_SEED:
        below = " below 2**63" if isinstance(seed, numbers.Integral) and seed >= MAX_SEED else ""
        raise ConfigError(f"seed: expected a non-negative int{below}, got {seed!r}")
    return int(seed)


def check_number(value: object, name: str, *, positive: bool = True, unit: str = "") -> float:
    """`value` as a finite real number (bools and strings refused), > 0 when `positive` else >= 0; ConfigError
    naming `name` otherwise (`unit` says what it measures, e.g. " (Hz)")."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):  # type: ignore[operator]
        raise ConfigError(f"{name}: expected a finite number {'> 0' if positive else '>= 0'}{unit}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_limit(value: object, name: str) -> float | None:
    """A time limit in seconds: None or infinity for no limit (None returned), else a positive finite number, returned
    as given (an int stays one, as the journal header records it); ConfigError naming `name` otherwise. Infinity is
    the natural way to lift a limit a journal recorded (None keeps the recorded one), and is never written there (the
    header holds plain JSON only)."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == math.inf):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a positive number of seconds (inf or None for no limit), got {value!r}")
    return value
