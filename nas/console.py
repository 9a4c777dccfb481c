"""Console helpers every `nas ...` command shares: a literal rich console and one-line user errors."""

from __future__ import annotations

import contextlib
import functools
import os
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import typer
from rich.console import Console

from nas.errors import ConfigError, NASError
from nas.store import SEARCH_FILES, not_writable

EXIT_USER_ERROR = 2
PIP_NAMES = {"yaml": "pyyaml", "sklearn": "scikit-learn", "torch_geometric": "torch-geometric",
             "nvidia_smi": "nvidia-ml-py", "pynvml": "nvidia-ml-py"}
"""The pip name of a module whose import name differs from it (the CLI's advice for a missing package)."""
F = TypeVar("F", bound=Callable[..., Any])


def make_console(stderr: bool = False) -> Console:
    """A rich console that prints text literally (no markup: paths and architectures may hold brackets).

    Piped or logged output gets 160 columns unless $COLUMNS says otherwise.
    """
    console = Console(stderr=stderr, highlight=False, markup=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = 160
    return console


def one_line(text: str) -> str:
    """`text` with its lines joined by single spaces (an error message fits one terminal line)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def given_path(text: str | os.PathLike[str]) -> Path:
    """A path typed on the command line (typer's `parser=` of every path a command takes), refusing an empty one:
    Path("") is the current folder, so `--workdir "$WD"` with WD unset wrote a search into the user's project
    folder. The usage error (exit 2) names the option."""
    if not str(text).strip():
        raise typer.BadParameter("empty path (give . to mean the current folder)")
    return Path(text)


def given_path_text(text: str) -> str:
    """`given_path`'s check for a path option kept as typed (`nas report --out`: a trailing / means a folder, which
    a Path would drop): an empty one is a usage error, never the current folder."""
    given_path(text)
    return text


def file_in_the_way(path: str | os.PathLike[str]) -> Path | None:
    """The nearest of `path` and the folders above it that exists, when it is a file (not a folder): a file where
    a folder must be made, of which mkdir says only "File exists" or "Not a directory"."""
    p = Path(path)
    for above in [p, *p.parents]:
        if above.exists() or above.is_symlink():
            return above if not above.is_dir() else None
    return None


def flag_of(fn: Callable[..., Any], kwargs: dict[str, Any], path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """(the option, e.g. "--plot", or argument of command `fn`; the path typed) for the parameter in `kwargs` whose
    path is `path` or lies below it, the nearest where several do: what an error about `path` should name. None
    when no parameter holds it."""
    target = Path(path)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError):
        hints = {}
    found: list[tuple[int, str, str]] = []  # (how far below `path` the parameter's path is, its name, its path)
    for name, value in kwargs.items():
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            continue
        if Path(value) != target and target not in Path(value).parents:
            continue
        infos = [m for m in getattr(hints.get(name), "__metadata__", ()) if isinstance(m, typer.models.ParameterInfo)]
        # in Annotated[..., typer.Option("--json")] the first declaration is held as the option's `default`
        decls = [d for info in infos for d in (getattr(info, "default", None), *(getattr(info, "param_decls", None)
                 or ())) if isinstance(d, str) and d.startswith("--")]
        if infos and isinstance(infos[0], typer.models.ArgumentInfo):
            found.append((len(Path(value).parts), name.upper(), str(value)))
        else:
            found.append((len(Path(value).parts), decls[0] if decls else "--" + name.replace("_", "-"), str(value)))
    if not found:
        return None
    _, flag, given = min(found, key=lambda f: f[0])  # the first of those equally near
    return flag, given


def path_option(*decls: str, help: str) -> Any:
    """`typer.Option` of a path (`given_path`: an empty one is refused)."""
    return typer.Option(*decls, parser=given_path, metavar="<path>", help=help)


def path_argument(help: str) -> Any:
    """`typer.Argument` of a path (`given_path`: an empty one is refused)."""
    return typer.Argument(parser=given_path, help=help)


def check_path(path: str | os.PathLike[str], name: str, kind: Literal["file", "folder"],
               missing: str | None = None) -> Path:
    """`path`, a path the user gave as `name` (a flag or an argument), as a Path when it is not of the other kind:
    a folder where a file belongs (or the reverse) is a ConfigError saying so, not "not found", which sends the user
    looking for a typo. With `missing` (the message) a path that does not exist is a FileNotFoundError; without, it
    may be made."""
    p = Path(path)
    if kind == "file" and p.is_dir():
        raise ConfigError(f"{name}: {p} is a folder, not a file")
    if kind == "folder" and p.exists() and not p.is_dir():
        raise ConfigError(f"{name}: {p} is a file, not a folder")
    if missing is not None and not p.exists():
        raise FileNotFoundError(missing)
    return p


@contextlib.contextmanager
def named_flags(flags: Mapping[str, str], words: Mapping[str, str] | None = None) -> Iterator[None]:
    """Name the flag the user typed in a ConfigError raised inside that names a library keyword first
    ("budget: ..." -> "--budget: ..."). `flags` maps each keyword to its flag: only flags the user gave, since a
    value from a script or a run file is rightly named by its keyword. `words`: what else such a message says in
    the library's terms, with how the command line says it (executor='processes' -> --executor processes)."""
    try:
        yield
    except ConfigError as e:
        key, sep, rest = str(e).partition(": ")
        if not sep or key not in flags:
            raise
        for said, typed in (words or {}).items():
            rest = rest.replace(said, typed)
        raise ConfigError(f"{flags[key]}: {rest}") from None


def check_output(path: str | os.PathLike[str] | None, flag: str, workdirs: Iterable[str | os.PathLike[str]]) -> None:
    """ConfigError naming `flag` when the output `path` of a command reading `workdirs` is a file one of them keeps
    its search in (its journal, snapshot, lock, model spec, ...: `SEARCH_FILES`): writing it would replace the
    search being read, or, while a search runs, pull its journal from under it. None and "-" (standard output)
    pass."""
    if path is None or str(path) == "-":
        return
    out = Path(path)
    for workdir in map(Path, workdirs):
        for name in SEARCH_FILES:
            own = workdir / name
            same = out.resolve() == own.resolve() or (out.exists() and own.exists() and os.path.samefile(out, own))
            if same:
                raise ConfigError(f"{flag} {path}: that is the {name} of the search in {workdir}, which this command "
                                  "reads; writing it would replace the search: choose another path")


PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
"""The OSErrors of a path the user gave that cannot be used, which `user_errors` prints as one line."""


def user_errors(fn: F) -> F:
    """Print NASError, a path the user gave that cannot be used (missing, a folder where a file belongs or
    the reverse, a file where a folder is to be made, not writable) and a package missing from the environment as
    one red `error: ...` line and exit 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (NASError, OSError) as e:
            if not isinstance(e, (NASError, *PATH_ERRORS)) and not not_writable(e):
                raise  # a full disk, an I/O error: not the user's input, so its traceback is kept
            msg = str(e)
            if isinstance(e, OSError) and e.filename and e.strerror:  # not "[Errno 2] No such file or directory: ..."
                msg = f"{e.filename2 or e.filename}: {e.strerror}"  # a rename's target, not its temporary file
            # an output path under a file: mkdir's errno text names neither the problem nor the path asked for (nas
            # raises no FileExistsError of its own: an exclusive create's is a ConfigError, see nas.to_optuna)
            if isinstance(e, (FileExistsError, NotADirectoryError)) and e.filename:
                blocker = file_in_the_way(e.filename)
                if blocker is not None:
                    flag, given = flag_of(fn, kwargs, blocker) or ("", str(e.filename))
                    msg = f"{flag} {given}".strip() + f": {blocker} is a file, not a folder"
            # a path that cannot be written (no permission, a read-only file system): the option it was given as
            if not_writable(e) and e.filename:
                written = Path(e.filename2 or e.filename)
                if written.name.endswith(".tmp"):  # an atomic write's temporary sibling (nas.jsonio.write_bytes)
                    written = written.with_name(written.name[:-len(".tmp")])
                named = flag_of(fn, kwargs, written)
                if named is not None:
                    msg = f"{named[0]} {named[1]}: cannot be written ({e.strerror}: {e.filename2 or e.filename})"
            make_console(stderr=True).print(f"error: {one_line(msg or type(e).__name__)}", style="red",
                                            soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except ModuleNotFoundError as e:  # a package missing from the environment: what to install, not a traceback
            top = (e.name or "").split(".")[0]
            if not top or top == "nas":
                raise
            make_console(stderr=True).print(f"error: the {top!r} package is not installed (pip install "
                                            f"{PIP_NAMES.get(top, top)})", style="red", soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            make_console(stderr=True).print("interrupted", style="yellow", soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
