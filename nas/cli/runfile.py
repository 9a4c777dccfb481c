"""What `nas run` runs: a search script or a TOML/YAML run file, with command-line flags on top.

A run file names the script that defines `space` and `evaluate`, and any of the search's settings:

    script = "search.py"                 # paths are relative to the run file
    strategy = "evolution"
    budget = 200
    seed = 1
    workdir = "runs/my-search"
    objectives = { accuracy = "max", latency_ms = "min" }
    constraints = ["latency_ms <= 20"]
    timeout_s = 600                      # per evaluation (executor "processes")
    max_time = 3600                      # this run's wall-clock limit
    fidelity = 5
    enqueue = "baseline.jsonl"           # architectures evaluated first, one JSON object a line
    warm_start = "runs/earlier"          # tell the strategy an earlier search's results
    stop_after = 50                      # stop after 50 evaluations without improvement
    stop_at = ["accuracy >= 0.97"]       # or once a feasible result meets these
    pruner = "median"                    # stop trainings early on their nas.report_metrics() values (this run only)
    [strategy_options]
    population_size = 50
    [executor]                           # as nas.search's executor= dict: a name and its options
    name = "processes"
    workers = 2
    max_retries = 1

Precedence: flags, then the run file, then the script's own attributes, then the defaults. Strategy options
belong to the strategy of the file giving them: a run file's `strategy` (or --strategy) other than the script's
drops the script's `strategy_options`, as --strategy other than the run file's drops the run file's.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from nas import jsonio
from nas.console import check_path
from nas.errors import ConfigError, InvalidArchitectureError
from nas.executor_spec import executor_class
from nas.spaces import Space

RUN_FILE_SUFFIXES = (".toml", ".yaml", ".yml")
KEYS = {"script": str, "strategy": str, "strategy_options": dict, "objectives": dict, "constraints": list,
        "budget": int, "seed": int, "workdir": str, "executor": (str, dict), "timeout_s": (int, float),
        "max_time": (int, float), "fidelity": (int, float), "enqueue": (str, list), "warm_start": str,
        "stop_after": int, "stop_at": list, "pruner": str}
PATHS = ("script", "workdir", "enqueue", "warm_start")


@dataclass
class RunSpec:
    """Everything one `nas run` (or `nas resume`) passes to `nas.search`, after flags, run file and script."""

    module: ModuleType
    objectives: Any
    constraints: list[Any]
    strategy: Any
    budget: int
    seed: int | None
    workdir: Path
    strategy_options: dict[str, Any] | None = None
    executor: Any = "local"
    fidelity: float | None = None
    timeout_s: float | None = None
    max_time: float | None = None
    enqueue: list[dict[str, Any]] | None = None
    warm_start: Path | None = None
    lower_budget: bool = False
    stop_when: Any = None  # a nas.stopping rule, for this run only (not journaled)
    pruner: str | None = None  # a nas.pruning name, for this run only (not journaled)
    metadata: dict[str, Any] = field(default_factory=dict)
    staged: Path | None = None  # what the script recorded while loading, moved into the workdir once it is checked


def is_run_file(path: Path) -> bool:
    return path.suffix.lower() in RUN_FILE_SUFFIXES


def read_run_file(path: Path) -> dict[str, Any]:
    """The settings of a TOML or YAML run file, type-checked, paths made relative to the file's folder."""
    check_path(path, "run file", "file", missing=f"run file {path} not found")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(path.read_text())
        else:
            import yaml

            data = yaml.safe_load(path.read_text()) or {}
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: not a valid {path.suffix[1:].upper()} file ({e})") from None
    except ImportError:  # pyyaml missing: the environment's fault, not the file's
        raise
    except Exception as e:  # yaml.YAMLError and friends
        raise ConfigError(f"{path}: not a valid YAML file ({' '.join(str(e).split())})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a table of settings, got {type(data).__name__}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KEYS:
            raise ConfigError(f"{path}: unknown setting {key!r} (settings: {', '.join(KEYS)})")
        want = KEYS[key]
        if isinstance(value, bool) or not isinstance(value, want):
            names = " or ".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))
            raise ConfigError(f"{path}: {key}: expected {names}, got {value!r}")
        if key == "enqueue" and isinstance(value, list):
            try:
                _architectures(value)
            except ConfigError as e:
                raise ConfigError(f"{path}: {e}") from None
        if key in PATHS and isinstance(value, str) and not value.strip():  # "" would be the run file's folder
            raise ConfigError(f"{path}: {key}: empty path (give \".\" to mean the run file's folder)")
        if key in PATHS and isinstance(value, str):
            value = str((path.parent / value).resolve()) if key != "workdir" else str(path.parent / value)
        out[key] = value
    if "executor" in out:  # a table without `name`, or with a typo'd key, is named here, never dropped
        table = out["executor"] if isinstance(out["executor"], Mapping) else {"name": out["executor"]}
        try:
            executor_class(table.get("name"), {k: v for k, v in table.items() if k != "name"})
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    if "script" not in out:
        raise ConfigError(f"{path}: no script: name the file that defines `space` and `evaluate` "
                          "(script = \"search.py\")")
    return out


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """["population_size=50", "mutation_bias=0.3"] -> {"population_size": 50, "mutation_bias": 0.3}
    (a value is read as JSON when it can be, else kept as text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--strategy-option {item!r}: expected KEY=VALUE (e.g. population_size=50)")
        try:
            out[key.strip()] = json.loads(text)
        except ValueError:
            out[key.strip()] = text
    return out


def read_enqueue(source: str | Path | Sequence[Any], space: Space | None = None,
                 name: str = "enqueue") -> list[dict[str, Any]]:
    """Architectures to evaluate first: a list, or a JSON-lines file of architectures (or of trial records,
    such as `nas trials DIR --json` writes, whose "arch" is taken). With `space`, each line of a file is validated
    here, so an architecture outside it is named by `name` (the flag typed, or the setting), file and line: nas.search
    can only say `enqueue[i]`, an index into the records read."""
    if not isinstance(source, (str, Path)):
        return _architectures(source)
    path = check_path(source, "enqueue", "file", missing=f"enqueue file {source} not found")
    lines = jsonio.read_jsonl(path, "enqueue file")
    if lines.torn:
        raise ConfigError(f"{path}:{lines.last_line + 1}: corrupt enqueue file line (incomplete JSON)")
    out = []
    for line, record in lines.records:
        arch = dict(record["arch"]) if isinstance(record.get("arch"), dict) else record
        if isinstance(space, Space):  # anything else is refused as `space` before the search starts
            try:
                space.validate(arch)
            except InvalidArchitectureError as e:
                raise ConfigError(f"{name} {path}:{line}: {e}") from None
        out.append(arch)
    return out


def _architectures(items: Sequence[Any]) -> list[dict[str, Any]]:
    """`items` as architectures (dicts of field -> value); a ConfigError names the first `enqueue[i]` that is not a
    table (a run file's `enqueue = [1, 2]` crashed `nas run` with a traceback)."""
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ConfigError(f"enqueue[{i}]: expected an architecture (a table of field = value, e.g. "
                              f"{{ depth = 3 }}), got {item!r}")
    return [dict(a) for a in items]
