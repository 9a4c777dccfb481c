"""Where scripts and classes are found again: the running search's workdir (`NAS_WORKDIR`, set by `nas run`),
import paths of classes and functions, and loading a script by path, so that a class defined in a user's
script can be named in JSON and rebuilt by another process (`class_to_json` / `class_from_json`)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from nas.errors import ConfigError

WORKDIR_ENV = "NAS_WORKDIR"        # set by `nas run` / `nas resume`: the workdir the running script searches in


# ---------------------------------------------------------------------------------------- the running search
def run_workdir(default: str | Path | None = None) -> Path:
    """The workdir of the search this script runs for: `nas run SCRIPT --workdir DIR` passes DIR in the
    environment variable NAS_WORKDIR. Outside `nas run`, `default` (ConfigError when there is none)."""
    value = os.environ.get(WORKDIR_ENV)
    if value:
        return Path(value)
    if default is None:
        raise ConfigError(f"workdir: {WORKDIR_ENV} is not set (the script is not run by `nas run` / `nas resume`): "
                          "run it with `nas run SCRIPT --workdir DIR`, or pass nas.run_workdir(default=DIR)")
    return Path(default)


@contextlib.contextmanager
def workdir_env(workdir: str | Path) -> Iterator[Path]:
    """NAS_WORKDIR set to `workdir` (absolute) inside the block, and restored after it."""
    path = Path(workdir).resolve()
    before = os.environ.get(WORKDIR_ENV)
    os.environ[WORKDIR_ENV] = str(path)
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop(WORKDIR_ENV, None)
        else:
            os.environ[WORKDIR_ENV] = before


# ---------------------------------------------------------------------------------------- import paths
def object_path(obj: Any) -> str:
    """`module.QualName` of a module-level class or function (what `import_object` reads back)."""
    qual = getattr(obj, "__qualname__", "")
    if not qual or "<" in qual or not getattr(obj, "__module__", None):
        raise ConfigError(f"{obj!r} is not importable by name (define it at module level)")
    if _is_script(obj.__module__):
        raise ConfigError(f"{qual} is defined in the running script ({obj.__module__}), which another process cannot "
                          f"import by name (as record_model(..., data=DataRef.of({qual})) needs): move {qual} to a "
                          "module beside the script (e.g. mydata.py) and import it from there")
    return f"{obj.__module__}.{qual}"


def class_name(cls: type) -> str:
    """`module.QualName` of `cls` as recorded in an exported model.json (a script's class too, unlike `object_path`)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def same_class(recorded: Any, cls: type) -> bool:
    """Whether `recorded` (a `class_name`) names `cls`. A class of the user's script is matched by its qualified
    name alone: the script's module is `__main__` or `nas_script_<stem>` depending on how it was run or loaded."""
    if recorded == class_name(cls):
        return True
    module, _, qual = str(recorded).partition(".")
    return _is_script(module) and _is_script(cls.__module__) and qual == cls.__qualname__


def import_object(path: Any, field_name: str) -> Any:
    """The object at `package.module.Name`; ConfigError naming `field_name` when it cannot be imported."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"{field_name}: expected an import path like 'package.module.Name', got {path!r}")
    module_name, _, name = path.rpartition(".")
    parts = [name]
    while module_name:
        try:
            obj: Any = importlib.import_module(module_name)
            break
        except ModuleNotFoundError:
            module_name, _, outer = module_name.rpartition(".")
            parts.insert(0, outer)
    else:
        raise ConfigError(f"{field_name}: cannot import {path!r} (no such module; a module of your own project "
                          "imports from the folder it is in: run from there, or put that folder on PYTHONPATH)")
    try:
        for part in parts:
            obj = getattr(obj, part)
    except AttributeError:
        raise ConfigError(f"{field_name}: cannot import {path!r} ({module_name} has no {'.'.join(parts)})") from None
    return obj


def _is_script(module_name: str) -> bool:
    return module_name == "__main__" or module_name.startswith("nas_script_")


def load_file(path: str | Path, reuse: bool = False) -> ModuleType:
    """The Python file at `path` executed as a module named nas_script_<stem> (its folder goes on sys.path so
    it can import its siblings). With `reuse`, a module already loaded from that file (by `nas run`, or the
    `__main__` of `python file.py`) is returned as it is instead."""
    script = Path(path).expanduser()
    if not script.is_file():
        raise FileNotFoundError(f"script {script} not found")
    script = script.resolve()

    def same_file(module: Any) -> bool:
        file = getattr(module, "__file__", None)
        return bool(file) and Path(file).resolve() == script

    if reuse:
        for module in list(sys.modules.values()):
            if _is_script(getattr(module, "__name__", "")) and same_file(module):
                return module
    name = "nas_script_" + re.sub(r"\W", "_", script.stem)
    if name in sys.modules and not same_file(sys.modules[name]):  # another file of the same name
        name += "_" + hashlib.sha1(str(script).encode()).hexdigest()[:8]
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{script}: cannot be imported as a Python module (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    folder = str(script.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def class_to_json(cls: type) -> dict[str, str]:
    """{"class": "package.module.Name"} for an importable class; {"class": "Name", "script": "/abs/file.py"}
    for one defined in a script (`nas run`'s, or the `__main__` of `python file.py`), loaded again by path."""
    module_name = getattr(cls, "__module__", "") or ""
    if not _is_script(module_name):
        return {"class": object_path(cls)}
    qual = getattr(cls, "__qualname__", "")
    file = getattr(sys.modules.get(module_name), "__file__", None)
    if not qual or "<" in qual:
        raise ConfigError(f"{cls!r} is not importable by name (define it at the top level of the script)")
    if not file:
        raise ConfigError(f"{qual} is defined in an interactive session, which no other process can load: "
                          "put it in a .py file")
    return {"class": qual, "script": str(Path(file).resolve())}


def class_from_json(ref: Mapping[str, Any], field_name: str, key: str = "class") -> Any:
    """The class `class_to_json` described (`key` names its entry: "class" or "config_class"). A script is
    loaded by path with NAS_WORKDIR set to a throw-away folder, so what its top level writes (its model spec,
    say) touches no workdir; reading a workdir never writes to it."""
    script = ref.get("script")
    if not script:
        return import_object(ref[key], f"{field_name}.{key}")
    if not Path(str(script)).is_file():
        raise ConfigError(f"{field_name}.script: {script} not found (the space's class is defined there)")
    with tempfile.TemporaryDirectory(prefix="nas-load-") as sandbox, workdir_env(sandbox):
        module = load_file(str(script), reuse=True)
    obj: Any = module
    try:
        for part in str(ref[key]).split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ConfigError(f"{field_name}.{key}: {script} defines no {ref[key]!r}") from None
    return obj
