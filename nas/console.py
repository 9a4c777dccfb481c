"""Console helpers every `nas ...` command shares: a literal rich console and one-line user errors."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import typer
from rich.console import Console

from nas.errors import ConfigError, NASError

EXIT_USER_ERROR = 2
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


def user_errors(fn: F) -> F:
    """Print NASError and a path the user gave that cannot be used (missing, a folder where a file belongs or
    the reverse, a file where a folder is to be made, not writable) as one red `error: ...` line and exit 2 (no
    traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (NASError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                PermissionError) as e:
            msg = str(e)
            if isinstance(e, OSError) and e.filename and e.strerror:  # not "[Errno 2] No such file or directory: ..."
                msg = f"{e.filename2 or e.filename}: {e.strerror}"  # a rename's target, not its temporary file
            make_console(stderr=True).print(f"error: {one_line(msg or type(e).__name__)}", style="red",
                                            soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            make_console(stderr=True).print("interrupted", style="yellow", soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
