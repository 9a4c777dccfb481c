"""Executors by name or plain data: "local", "processes" (local worker processes), "ray" (actor pool),
"ray-tune" (Tune trials), or {"name": ..., **options}.

The CLI records an executor as plain data in the journal header (`executor_spec`), and `nas.search`
builds it (`make_executor`); Ray is imported only when a Ray executor is asked for.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from nas.errors import ConfigError
from nas.executors import Executor, LocalExecutor

NAMES = ("local", "processes", "ray", "ray-tune")


def make_executor(executor: str | Mapping[str, object] | Executor, timeout_s: float | None = None) -> Executor:
    """"local", "processes", "ray" (actor pool), "ray-tune", {"name": ..., **options} or an Executor instance;
    `timeout_s` stops each evaluation after that many seconds (executors that cannot stop one refuse it)."""
    if isinstance(executor, Executor):
        runner = executor
    elif executor == "local":
        runner = LocalExecutor()
    elif executor in NAMES or isinstance(executor, Mapping):
        runner = executor_from_spec({"name": executor} if isinstance(executor, str) else executor)
    else:
        raise ConfigError(f"unknown executor {executor!r}; use {', '.join(map(repr, NAMES))} or pass an Executor "
                          "instance (e.g. SimulatedClockExecutor(workers=4))")
    runner.set_timeout(timeout_s)
    return runner


def executor_from_spec(spec: Mapping[str, Any]) -> Executor:
    """An executor from plain data, as `nas run --executor` records it: {"name": "processes", "workers": 2, ...}."""
    opts = dict(spec)
    name = opts.pop("name", None)
    if name == "local" and not opts:
        return LocalExecutor()
    if name == "processes":
        from nas.processes import ProcessExecutor

        cls: Any = ProcessExecutor
    elif name == "ray":
        from nas.ray.executor import RayExecutor  # imports Ray only when asked for

        cls = RayExecutor
    elif name == "ray-tune":
        from nas.ray.tune import RayTuneExecutor

        cls = RayTuneExecutor
    else:
        raise ConfigError(f"executor: unknown name {name!r} (use {', '.join(map(repr, NAMES))})")
    params = inspect.signature(cls.__init__).parameters
    unknown = [k for k in opts if k not in params or k in ("self", "timeout_s")]
    if unknown:
        allowed = [p for p in params if p not in ("self", "timeout_s")]
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
    if spec["name"] not in NAMES:
        raise ConfigError(f"--executor: unknown executor {spec['name']!r} (use {', '.join(NAMES)})")
    allowed = {"local": (), "processes": ("workers",)}.get(spec["name"])
    extra = [k for k in spec if k != "name" and allowed is not None and k not in allowed]
    if extra:
        raise ConfigError(f"--executor {spec['name']} takes no {', '.join('--' + k for k in extra)} "
                          "(use --executor ray)")
    return "local" if spec["name"] == "local" else spec
