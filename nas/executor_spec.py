"""Executors by name or plain data: "local", "processes" (local worker processes), "ray" (actor pool),
"ray-tune" (Tune trials), or {"name": ..., **options}.

The CLI records an executor as plain data in the journal header (`executor_spec`), and `nas.search`
builds it (`make_executor`); Ray is imported only when a Ray executor is asked for.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from nas.errors import ConfigError, check_number
from nas.executors import Executor, LocalExecutor

NAMES = ("local", "processes", "ray", "ray-tune")


def make_executor(executor: str | Mapping[str, object] | Executor, timeout_s: float | None = None) -> Executor:
    """"local", "processes", "ray" (actor pool), "ray-tune", {"name": ..., **options} or an Executor instance;
    `timeout_s` stops each evaluation after that many seconds (executors that cannot stop one refuse it). An
    instance keeps its own timeout (`ProcessExecutor(timeout_s=...)`) unless `timeout_s` is given (inf lifts it: no
    timeout): the search's default None must not silently lift the cap its user set."""
    if isinstance(executor, Executor):
        if timeout_s is not None:
            executor.set_timeout(timeout_s)
        return executor
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
    cls = executor_class(name, opts)
    return cls(**opts)


def executor_class(name: Any, opts: Mapping[str, Any]) -> Any:
    """The executor class `name` gives, once every key of `opts` is one of its options (ConfigError naming the key
    otherwise: an executor table's typo must not be dropped). Ray is imported only for a Ray executor."""
    if name == "local":
        if opts:
            raise ConfigError(f"executor 'local' has no option {next(iter(opts))!r} (options: none; workers run "
                              "with 'processes', 'ray' or 'ray-tune')")
        return LocalExecutor
    if name == "processes":
        from nas.processes import ProcessExecutor

        cls: Any = ProcessExecutor
    elif name == "ray":
        from nas.ray.executor import RayExecutor  # imports Ray only when asked for

        cls = RayExecutor
    elif name == "ray-tune":
        from nas.ray.tune import RayTuneExecutor

        cls = RayTuneExecutor
    elif name is None:
        raise ConfigError(f"executor: no name (it has {', '.join(map(repr, opts)) or 'no keys'}); name one of "
                          f"{', '.join(map(repr, NAMES))}, e.g. {{\"name\": \"processes\", \"workers\": 2}}")
    else:
        raise ConfigError(f"executor: unknown name {name!r} (use {', '.join(map(repr, NAMES))})")
    params = inspect.signature(cls.__init__).parameters
    unknown = [k for k in opts if k not in params or k in ("self", "timeout_s")]
    if unknown:
        allowed = [p for p in params if p not in ("self", "timeout_s")]
        raise ConfigError(f"executor {name!r} has no option {unknown[0]!r} (options: {', '.join(allowed)})")
    return cls


FLAGS = {"address": "--address", "workers": "--workers", "cpus": "--cpus-per-trial", "gpus": "--gpus-per-trial"}
TAKES = {"address": ("ray", "ray-tune"), "workers": ("processes", "ray", "ray-tune"), "cpus": ("ray", "ray-tune"),
         "gpus": ("ray", "ray-tune")}
"""The command-line flags of `nas run` / `nas resume` that set an executor option, and the executors taking each."""


def executor_spec(name: str | None = None, address: str | None = None, workers: int | None = None,
                  cpus: float | None = None, gpus: float | None = None,
                  base: Mapping[str, Any] | str | None = None) -> str | dict[str, Any]:
    """The plain-data executor `nas run` records in the journal header: "local" or {"name": "ray", ...}.

    `name` is the --executor flag (None: `base`'s) and the other arguments its flags; `base` is the run file's
    executor or the recorded one, whose options stay unless the flag names another executor. An error names
    what the user wrote: a flag, or a key of `base`.
    """
    old = dict(base) if isinstance(base, Mapping) else {"name": base or "local"}
    if old.get("name") not in NAMES:  # a run file's table without a name (or with `nam`) is not dropped
        executor_class(old.get("name"), {k: v for k, v in old.items() if k != "name"})
    if name is not None and name not in NAMES:
        raise ConfigError(f"--executor: unknown executor {name!r} (use {', '.join(NAMES)})")
    if name is not None and name != old["name"]:
        old = {"name": name}  # the base's options are those of the executor it names, not of this one
    else:
        executor_class(old["name"], {k: v for k, v in old.items() if k != "name"})  # each key an option
    given = {k: v for k, v in {"address": address, "workers": workers, "cpus": cpus, "gpus": gpus}.items()
             if v is not None}
    wrong = [k for k in given if old["name"] not in TAKES[k]]
    if wrong:
        where = f"--executor {name}" if name is not None else f"the executor {old['name']!r}"
        *first, last = TAKES[wrong[0]]
        raise ConfigError(f"{where} takes no {', '.join(FLAGS[k] for k in wrong)} ({FLAGS[wrong[0]]} is for "
                          f"--executor {', '.join(first)} or {last})")
    if workers is not None and workers < 1:  # checked here, not only where an executor is built (a finished resume)
        raise ConfigError(f"--workers: expected a number of workers >= 1, got {workers}")
    for key, value in (("cpus", cpus), ("gpus", gpus)):  # nan reached the journal header's JSON check ("metadata")
        if value is not None:
            check_number(value, FLAGS[key], positive=False)
    spec = {**old, **given}
    return "local" if spec == {"name": "local"} else spec
