"""The shared argument checks in nas.errors: numpy integers (what np.arange and DataFrames hand out) are ints and come
back as Python ints (the journal is JSON), bools and floats are refused naming the field."""

import json

import numpy as np
import pytest

from nas.errors import ConfigError, check_count, check_int
from nas.hardware.accelerator import Gemm


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_numpy_ints_are_ints_and_come_back_as_python_ints(value):
    for out in (check_count(value, "n"), check_int(value, "n", 0)):
        assert out == 3 and type(out) is int
        assert json.dumps({"n": out}) == '{"n": 3}'


@pytest.mark.parametrize("value", [True, np.bool_(True), 3.0, np.float64(3.0), "3", None])
def test_bools_floats_and_strings_are_refused_naming_the_field(value):
    with pytest.raises(ConfigError, match=r"^width: expected a positive int"):
        check_count(value, "width")
    with pytest.raises(ConfigError, match=r"^seed: expected an int >= 0"):
        check_int(value, "seed", 0)


def test_bounds_hold_for_numpy_ints_too():
    with pytest.raises(ConfigError, match=r"expected a positive int, got np.int64\(0\)"):
        check_count(np.int64(0), "n")
    with pytest.raises(ConfigError, match=r"expected an int >= 2"):
        check_int(np.int64(1), "n", 2)


def test_a_callers_fields_read_from_an_array_are_taken():
    """Before: the accelerator's own copy of the check; now the shared one, same message."""
    dims = np.array([8, 16, 4])
    gemm = Gemm(m=dims[0], n=dims[1], k=dims[2])
    assert (gemm.m, gemm.n, gemm.k) == (8, 16, 4) and type(gemm.m) is int
    with pytest.raises(ConfigError, match=r"^Gemm.k: expected a positive int, got 0"):
        Gemm(m=8, n=16, k=0)


def test_python_scalar_converts_numpy_scalars_only_and_leaves_an_array_to_the_callers_check():
    """Before: an array went through `.item()`, so np.array([5]) became 5 and np.array([1, 2]) raised numpy's
    ValueError instead of the field check's ConfigError."""
    from nas.jsonio import plain_value, python_scalar

    assert [type(python_scalar(v)) for v in (np.int64(3), np.float32(0.5), np.bool_(True), np.str_("a"))] == \
        [int, float, bool, str]
    array = np.array([1, 2])
    assert python_scalar(array) is array
    with pytest.raises(ConfigError, match=r"^n: expected a positive int"):
        check_count(python_scalar(array), "n")
    assert plain_value({"a": [np.int64(1), (np.float64(2.0),)]}) == {"a": [1, (2.0,)]}
