"""nas: neural architecture search. `nas.search(space, evaluate, objectives, ...)` is the entry point."""

import functools
import importlib
import importlib.util
from typing import Any

from nas.errors import ConfigError, InvalidArchitectureError, JournalError, NASError, SpaceDefinitionError
from nas.evaluators import Evaluator, cheap
from nas.executors import Executor, LocalExecutor, SimulatedClockExecutor
from nas.objectives import Constraint, Objective, Problem
from nas.pruning import Pruned, Pruner, report_metrics
from nas.user_attrs import set_user_attr
from nas.result import SearchResult
from nas.search import search as _search
from nas.stopping import NoImprovement, Target
from nas.store import Trial
from nas.study import Study

load = SearchResult.load


@functools.wraps(_search)
def search(*args: Any, **kwargs: Any) -> SearchResult:
    if kwargs.get("progress") is True:  # the bar lives in the reporting layer, above the search loop
        from nas.report import SearchProgress

        kwargs["progress"] = SearchProgress()
    return _search(*args, **kwargs)


def load_subnet(path: Any) -> Any:
    """An exported model (a directory written by `nas export`) as a torch module; see `nas.modelspec.load_subnet`."""
    from nas.modelspec import load_subnet as _load_subnet

    return _load_subnet(path)


def run_workdir(default: Any = None) -> Any:
    """The workdir `nas run SCRIPT --workdir DIR` gave the running script; see `nas.scripts.run_workdir`."""
    from nas.scripts import run_workdir as _run_workdir

    return _run_workdir(default)


def __getattr__(name: str) -> Any:
    """`nas.importance`, `nas.plot`, `nas.to_optuna`, ... after a plain `import nas`: a submodule is imported on first
    use (so `import nas` stays light: no torch, no matplotlib), as the docs write it."""
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ConfigError", "Constraint", "Evaluator", "Executor", "InvalidArchitectureError", "JournalError",
           "LocalExecutor", "NASError", "NoImprovement", "Objective", "Problem", "Pruned", "Pruner", "SearchResult",
           "SimulatedClockExecutor", "SpaceDefinitionError", "Study", "Target", "Trial", "cheap", "load", "load_subnet",
           "report_metrics", "run_workdir", "search", "set_user_attr"]
