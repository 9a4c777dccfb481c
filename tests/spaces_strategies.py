"""Hypothesis strategies that build random search spaces (used by the property tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from nas.spaces import Choice, Conditional, Integer, Repeat, Space

names = st.sampled_from(["a", "b", "c", "d", "e"])
scalars = st.one_of(st.integers(-3, 9), st.sampled_from(["x", "y", "z", "w"]), st.booleans(),
                    st.sampled_from([0.5, 1.5, 2.25]))


@st.composite
def choices(draw):
    opts = draw(st.lists(scalars, min_size=1, max_size=4, unique_by=lambda v: (type(v), v)))
    # 1 and True compare equal: keep one of them
    out = []
    for o in opts:
        if not any(o == p and (isinstance(o, bool) or isinstance(p, bool)) for p in out):
            out.append(o)
    return Choice(out)


@st.composite
def integers(draw):
    low, step = draw(st.integers(-5, 5)), draw(st.integers(1, 3))
    return Integer(low, low + step * draw(st.integers(0, 6 // step)), step)  # high on the steps' grid


leaves = st.one_of(choices(), integers())


@st.composite
def spaces(draw, depth: int = 2):
    fields: dict = {}
    n = draw(st.integers(1, 4))
    for i in range(n):
        fields[f"f{i}"] = draw(leaves)
    if depth > 0:
        kind = draw(st.sampled_from(["none", "repeat", "fixed", "cond", "nested"]))
        if kind == "repeat":
            fields["count"] = Choice(draw(st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True)))
            fields["blocks"] = Repeat("count", block=draw(spaces(depth=depth - 1)))
        elif kind == "fixed":
            fields["blocks"] = Repeat(draw(st.integers(0, 2)), block=draw(spaces(depth=depth - 1)))
        elif kind == "cond":
            ctrl = Choice(["on", "off", "maybe"])
            fields["mode"] = ctrl
            inner = draw(st.one_of(leaves, spaces(depth=depth - 1)))
            fields["extra"] = Conditional("mode", draw(st.sampled_from([["on"], ["on", "maybe"]])), inner)
        elif kind == "nested":
            fields["sub"] = draw(spaces(depth=depth - 1))
    return Space(fields)
