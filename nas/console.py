"""Console helpers every `nas ...` command shares: a literal rich console and one-line user errors."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from nas.errors import NASError

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


def user_errors(fn: F) -> F:
    """Print NASError and a path the user gave that cannot be used (missing, a folder where a file belongs or
    the reverse, not writable) as one red `error: ...` line and exit 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (NASError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
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
