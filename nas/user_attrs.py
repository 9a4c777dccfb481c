"""`set_user_attr`: what an evaluation attaches to its trial besides metrics (Optuna's `trial.set_user_attr`): a
checkpoint path, the epochs it trained, a note. Journaled with the trial (`Trial.user_attrs`), never ranked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from nas.errors import ConfigError

_ATTRS: ContextVar[dict[str, Any] | None] = ContextVar("nas_user_attrs", default=None)


def set_user_attr(key: str, value: Any) -> None:
    """Attach `value` (any JSON data) under `key` to the trial `evaluate` is running, on every executor; a later
    call with the same key replaces it. Outside an evaluation it does nothing, so `evaluate` runs on its own too.
    A key that is not a non-empty string, or a value JSON cannot hold, is a ConfigError naming it (the trial fails
    with it)."""
    key, value = checked(key, value, "set_user_attr")
    attrs = _ATTRS.get()
    if attrs is not None:
        attrs[key] = value


def checked(key: Any, value: Any, where: str) -> tuple[str, Any]:
    """The key and a copy of the value as the journal will read them back; ConfigError naming a bad one."""
    if not isinstance(key, str) or not key:
        raise ConfigError(f"{where}: a user attribute's key must be a non-empty string, got {key!r}")
    try:
        return key, json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: user attribute {key!r} must be JSON data (str, number, bool, None, list, "
                          f"dict): {e}") from None


@contextmanager
def collecting() -> Iterator[dict[str, Any]]:
    """The `set_user_attr` calls inside this block fill the dict it yields (executors wrap `evaluate` in it)."""
    attrs: dict[str, Any] = {}
    token = _ATTRS.set(attrs)
    try:
        yield attrs
    finally:
        _ATTRS.reset(token)
