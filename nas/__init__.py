"""nas: neural architecture search. `nas.search(space, evaluate, objectives, ...)` is the entry point."""

from nas.errors import ConfigError, InvalidArchitectureError, JournalError, NASError, SpaceDefinitionError
from nas.evaluators import Evaluator, cheap
from nas.executors import Executor, LocalExecutor, SimulatedClockExecutor
from nas.objectives import Constraint, Objective, Problem
from nas.result import SearchResult
from nas.search import search
from nas.store import Trial

load = SearchResult.load

__all__ = ["ConfigError", "Constraint", "Evaluator", "Executor", "InvalidArchitectureError", "JournalError",
           "LocalExecutor", "NASError", "Objective", "Problem", "SearchResult", "SimulatedClockExecutor",
           "SpaceDefinitionError", "Trial", "cheap", "load", "search"]
