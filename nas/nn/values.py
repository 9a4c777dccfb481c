"""Value choices: `Choice("width", [16, 32])` and the expressions derived from them (`width * 2`).

A value choice stands in for a number in a layer's arguments; the space derivation turns every distinct
label into one decision. Expressions record arithmetic on choices and are evaluated once the labels have
values. Anything that needs a plain value at definition time (a plain torch layer, `if`, `%`, comparisons)
raises `SpaceDefinitionError` saying where, instead of an obscure torch error.
"""

from __future__ import annotations

import itertools
import operator
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

import numpy as np

from nas.errors import SpaceDefinitionError
from nas.jsonio import python_scalar as plain_number  # a numpy scalar as its Python twin (public name kept)

__all__ = ["Choice", "Expr", "Value", "always_equal", "evaluate", "is_value", "plain_number", "possible_values"]


PLAIN_HINT = ("plain torch layers and Python control flow need plain numbers: use the layers of nas.nn (Conv2d, "
              "Linear, BatchNorm2d, ...) or arithmetic (+ - * // /) on the choice")


class Value:
    """A number to be decided by the search: a `Choice` or an `Expr` over choices."""

    def leaves(self) -> tuple["Choice", ...]:
        """The choices this value depends on (each object once)."""
        raise NotImplementedError

    def evaluate(self, lookup: Callable[["Choice"], Any]) -> Any:
        """The value, given each leaf's value by `lookup(leaf)`."""
        raise NotImplementedError

    # -- arithmetic builds expressions
    def _op(self, fn: Callable[..., Any], symbol: str, other: Any, reverse: bool = False) -> "Expr":
        args = (other, self) if reverse else (self, other)
        return Expr(fn, args, f"({_text(args[0])} {symbol} {_text(args[1])})")

    def __add__(self, o: Any) -> "Expr": return self._op(operator.add, "+", o)
    def __radd__(self, o: Any) -> "Expr": return self._op(operator.add, "+", o, True)
    def __sub__(self, o: Any) -> "Expr": return self._op(operator.sub, "-", o)
    def __rsub__(self, o: Any) -> "Expr": return self._op(operator.sub, "-", o, True)
    def __mul__(self, o: Any) -> "Expr": return self._op(operator.mul, "*", o)
    def __rmul__(self, o: Any) -> "Expr": return self._op(operator.mul, "*", o, True)
    def __floordiv__(self, o: Any) -> "Expr": return self._op(operator.floordiv, "//", o)
    def __rfloordiv__(self, o: Any) -> "Expr": return self._op(operator.floordiv, "//", o, True)
    def __truediv__(self, o: Any) -> "Expr": return self._op(operator.truediv, "/", o)
    def __rtruediv__(self, o: Any) -> "Expr": return self._op(operator.truediv, "/", o, True)
    def __pow__(self, o: Any) -> "Expr": return self._op(operator.pow, "**", o)
    def __neg__(self) -> "Expr": return Expr(operator.neg, (self,), f"-{_text(self)}")

    # -- what needs a plain value fails loudly, naming the caller
    def _plain(self, what: str) -> Any:
        raise SpaceDefinitionError(f"{_text(self)}: a choice is used {what}{called_at()}; {PLAIN_HINT}")

    def __bool__(self) -> bool: return self._plain("as a truth value")
    def __index__(self) -> int: return self._plain("as an integer")
    def __int__(self) -> int: return self._plain("as an integer")
    def __float__(self) -> float: return self._plain("as a float")
    def __iter__(self) -> Iterator[Any]: return self._plain("as a sequence")
    def __len__(self) -> int: return self._plain("as a sequence")
    def __mod__(self, o: Any) -> Any: return self._plain("with %")
    def __rmod__(self, o: Any) -> Any: return self._plain("with %")
    def __lt__(self, o: Any) -> bool: return self._plain("in a comparison")
    def __le__(self, o: Any) -> bool: return self._plain("in a comparison")
    def __gt__(self, o: Any) -> bool: return self._plain("in a comparison")
    def __ge__(self, o: Any) -> bool: return self._plain("in a comparison")
    # `width == 32` would otherwise compare identity and silently take one branch for every architecture
    def __eq__(self, o: object) -> bool: return o is self or self._plain("in a comparison (==, != or in)")
    def __ne__(self, o: object) -> bool: return o is not self and self._plain("in a comparison (==, != or in)")

    __hash__ = object.__hash__  # identity: values are keys of the derivation's tables (dicts test `is` first)


class Choice(Value):
    """One decision among `options`: `Choice("width", [16, 32, 48])`. The same label ties every use of it
    (in one scope; a choice created inside a `Repeat`'s factory is one decision per block)."""

    def __init__(self, label: str | None, options: Iterable[Any]) -> None:
        self.label = label
        self.options = _options(label, options)
        if self.options == ():
            raise SpaceDefinitionError(f"Choice({label!r}): options are empty{called_at()}; give at least one option")

    def leaves(self) -> tuple["Choice", ...]:
        return (self,)

    def evaluate(self, lookup: Callable[["Choice"], Any]) -> Any:
        return lookup(self)

    def __repr__(self) -> str:
        return f"Choice({self.label!r}, {list(self.options) if isinstance(self.options, tuple) else self.options!r})"


def _options(label: str | None, options: Any) -> Any:
    """`options` as a tuple of Python values: any ordered iterable (a generator, `map`, `dict.keys()`, a numpy
    array) is read once here, as later reads would find it spent, and numpy scalars mean what their Python twins
    mean. A set or mapping is kept as given, for the derivation to refuse naming the module path (no order)."""
    if isinstance(options, np.ndarray):
        options = options.tolist()
    if options is None or isinstance(options, (set, frozenset, Mapping)):
        return options
    if isinstance(options, (str, bytes)) or not isinstance(options, Iterable):
        raise SpaceDefinitionError(f"Choice({label!r}): options must be a list, got {options!r}{called_at()}")
    return tuple(plain_number(o) for o in options)




class Expr(Value):
    """`fn(*args)` where some args are values: a layer size that follows another's (`width * 2`)."""

    def __init__(self, fn: Callable[..., Any], args: Sequence[Any], text: str) -> None:
        self.fn, self.args, self.text = fn, tuple(args), text

    def leaves(self) -> tuple[Choice, ...]:
        out: dict[int, Choice] = {}
        for a in self.args:
            if isinstance(a, Value):
                out.update((id(leaf), leaf) for leaf in a.leaves())
        return tuple(out.values())

    def evaluate(self, lookup: Callable[[Choice], Any]) -> Any:
        return self.fn(*(a.evaluate(lookup) if isinstance(a, Value) else a for a in self.args))

    def __repr__(self) -> str:
        return self.text


def is_value(x: Any) -> bool:
    return isinstance(x, Value)


def evaluate(x: Any, lookup: Callable[[Choice], Any]) -> Any:
    """`x` itself when plain, else its value under `lookup`."""
    return x.evaluate(lookup) if isinstance(x, Value) else x


def possible_values(x: Any) -> list[Any]:
    """Every value `x` can take (leaves with one label count once: they are one decision)."""
    if not isinstance(x, Value):
        return [x]
    by_label: dict[Any, Choice] = {}
    for leaf in x.leaves():
        by_label.setdefault(leaf.label if leaf.label is not None else id(leaf), leaf)
    keys = list(by_label)
    out = []
    for combo in itertools.product(*(tuple(by_label[k].options) for k in keys)):
        chosen = dict(zip(keys, combo))
        out.append(x.evaluate(lambda leaf: chosen[leaf.label if leaf.label is not None else id(leaf)]))
    return out


def always_equal(*xs: Any, limit: int = 4096) -> bool:
    """Whether the values `xs` are equal under every assignment of their labels (one label, one decision:
    `w * 2` written three times, or separate `Choice("w", ...)` objects). False past `limit` assignments."""
    by_label: dict[Any, Choice] = {}
    for x in xs:
        for leaf in (x.leaves() if isinstance(x, Value) else ()):
            by_label.setdefault(leaf.label if leaf.label is not None else id(leaf), leaf)
    keys = list(by_label)
    n = 1
    for k in keys:
        if not isinstance(by_label[k].options, tuple):
            return False
        n *= len(by_label[k].options)
    if n > limit:
        return False
    for combo in itertools.product(*(by_label[k].options for k in keys)):
        chosen = dict(zip(keys, combo))
        got = [evaluate(x, lambda leaf: chosen[leaf.label if leaf.label is not None else id(leaf)]) for x in xs]
        if any(g != got[0] for g in got[1:]):
            return False
    return True


def _text(x: Any) -> str:
    if isinstance(x, Choice):
        return f"Choice({x.label!r})"
    return repr(x)


def called_at() -> str:
    """' in torch.nn.Conv2d (at file:line)' for messages: the plain torch layer being built, if any, and the first
    line of the call stack outside torch and nas.nn (the user's)."""
    frames, frame = [], sys._getframe(1)
    while frame is not None:
        frames.append((frame, frame.f_lineno))
        frame = frame.f_back
    return _where(frames)


def _where(frames: Sequence[tuple[FrameType, int]]) -> str:
    """' in <torch layer> (at file:line)' from (frame, line) pairs, innermost first: the first plain torch layer
    being built, and the first line outside torch and nas.nn (the user's)."""
    layer, where = "", ""
    for frame, line in frames:
        path = frame.f_code.co_filename
        inside = "/torch/" in path or "/nas/nn/" in path or path.endswith("values.py")
        if not layer and "/torch/" in path and frame.f_code.co_name == "__init__":
            owner = frame.f_locals.get("self")
            if owner is not None:
                layer = f" in {type(owner).__module__.split('.modules')[0]}.{type(owner).__name__}"
        if not inside:
            where = f" (at {path}:{line})"
            break
    return layer + where


def plain_error(error: TypeError) -> SpaceDefinitionError | None:
    """The clear error for a TypeError torch raised on meeting a choice where it needs a plain number (torch's C++
    argument parsing does not call `__index__`, so `Value._plain` never runs; torch's RNNs say "got: Choice"), or
    None for any other TypeError."""
    if not re.search(r"\b(type|not|got):? (Choice|Expr)\b", str(error)):
        return None
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    torch_said = str(error).splitlines()[0] if str(error) else type(error).__name__
    return SpaceDefinitionError(f"a choice is used as a plain number{_where(frames[::-1])} (torch: {torch_said}); "
                                f"{PLAIN_HINT}")
