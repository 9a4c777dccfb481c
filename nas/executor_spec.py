"""Executors by name or plain data: "local", "ray" (actor pool), "ray-tune" (Tune trials), {"name": ..., **options}.

The CLI records an executor as plain data in the journal header (`executor_spec`), and `nas.search`
builds it (`make_executor`); Ray is imported only when a Ray executor is asked for.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from nas.errors import ConfigError
from nas.executors import Executor, LocalExecutor


def make_executor(executor: str | Mapping[str, object] | Executor) -> Executor:
    """"local", "ray" (actor pool), "ray-tune", {"name": "ray", **options} or an Executor instance."""
    if isinstance(executor, Executor):
        return executor
    if executor == "local":
        return LocalExecutor()
    if executor in ("ray", "ray-tune") or isinstance(executor, Mapping):
        return executor_from_spec({"name": executor} if isinstance(executor, str) else executor)
    raise ConfigError(f"unknown executor {executor!r}; use 'local', 'ray', 'ray-tune' or pass an Executor "
                      "instance (e.g. SimulatedClockExecutor(workers=4))")


def executor_from_spec(spec: Mapping[str, Any]) -> Executor:
    """An executor from plain data, as `nas run --executor` records it: {"name": "ray" | "ray-tune", ...options}."""
    opts = dict(spec)
    name = opts.pop("name", None)
    if name == "ray":
        from nas.ray.executor import RayExecutor  # imports Ray only when asked for

        cls: Any = RayExecutor
    elif name == "ray-tune":
        from nas.ray.tune import RayTuneExecutor

        cls = RayTuneExecutor
    else:
        raise ConfigError(f"executor: unknown name {name!r} (use 'local', 'ray' or 'ray-tune')")
    params = inspect.signature(cls.__init__).parameters
    unknown = [k for k in opts if k not in params or k == "self"]
    if unknown:
        allowed = [p for p in params if p != "self"]
        raise ConfigError(f"executor {name!r} has no option {unknown[0]!r} (options: {', '.join(allowed)})")
    return cls(**opts)


def executor_spec(name: str = "local", address: str | None = None, workers: int | None = None,
                  cpus: float | None = None, gpus: float | None = None,
                  base: Mapping[str, Any] | str | None = None) -> str | dict[str, Any]:
    """The plain-data executor `nas run` records in the journal header: "local" or {"name": "ray", ...}.

    Options left None keep those of `base` (the recorded spec, when `nas resume` overrides some of them).
    """
    old = dict(base) if isinstance(base, Mapping) else {"name": base or "local"}
    if name != old.get("name"):
        old = {"name": name}
    given = {"address": address, "workers": workers, "cpus": cpus, "gpus": gpus}
    spec = {**old, **{k: v for k, v in given.items() if v is not None}}
    if spec["name"] == "local":
        if len(spec) > 1:
            raise ConfigError(f"--executor local takes no {', '.join('--' + k for k in spec if k != 'name')} "
                              "(use --executor ray)")
        return "local"
    if spec["name"] not in ("ray", "ray-tune"):
        raise ConfigError(f"--executor: unknown executor {spec['name']!r} (use local, ray or ray-tune)")
    return spec
