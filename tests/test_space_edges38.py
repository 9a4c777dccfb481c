"""Edges of the space language found in round 38: a nested block's hash carried across processes by pickle,
numpy and pandas inputs (Conditional values, Choice options, Architecture leaves) and non-numeric vectors."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import nas
from nas.architecture import FrozenDict
from nas.spaces import Architecture, Choice, Conditional, Integer, Repeat, Space, Subset

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ 1. FrozenDict hash across processes

_PICKLER = """
import pickle, sys
from nas.spaces import Space, Choice, Repeat
space = Space(n=Choice([2]), blocks=Repeat(count="n", k=Choice([3, 5])))
arch = space.validate({"n": 2, "blocks": [{"k": 3}, {"k": 5}]})
block = arch["blocks"][0]
hash(block)  # cached in this process (e.g. the driver put blocks in a set)
sys.stdout.buffer.write(pickle.dumps((arch, block)))
"""

_UNPICKLER = """
import pickle, sys
from nas.architecture import FrozenDict
from nas.spaces import Space, Choice, Repeat
arch, block = pickle.loads(sys.stdin.buffer.read())
fresh = FrozenDict({"k": 3})
space = Space(n=Choice([2]), blocks=Repeat(count="n", k=Choice([3, 5])))
again = space.validate({"n": 2, "blocks": [{"k": 3}, {"k": 5}]})
print(block == fresh, hash(block) == hash(fresh), block in {fresh}, {fresh: "hit"}.get(block, "miss"),
      arch["blocks"][0] in {fresh}, arch.id, again.id, arch == again, arch in {again})
"""


def _python(code: str, seed: str, data: bytes = b"") -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, env=env, cwd=ROOT,
                         timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def test_a_block_unpickled_in_another_process_hashes_like_an_equal_block():
    """Pickled under one str-hash seed and read under another, a nested block still finds its equal in a set and a
    dict, and the architecture keeps the id journals hold on disk."""
    data = _python(_PICKLER, "1")
    words = _python(_UNPICKLER, "2", data).decode().split()
    assert words == ["True", "True", "True", "hit", "True", "1c495e7c4c91058d", "1c495e7c4c91058d", "True", "True"]


class _OldPickle:
    """Pickles exactly as a FrozenDict did before the fix: its slots, the cached hash of the pickling process too."""

    def __init__(self, cls: type, slots: dict[str, Any]) -> None:
        self.cls, self.slots = cls, slots

    def __reduce_ex__(self, protocol: Any) -> Any:
        return object.__new__, (self.cls,), (None, self.slots)


def test_an_old_pickle_with_a_stale_hash_hashes_afresh():
    """Pickles written before the fix carry another process's hash; reading one recomputes it."""
    stale = hash(FrozenDict({"k": 3})) + 1
    block = pickle.loads(pickle.dumps(_OldPickle(FrozenDict, {"_data": {"k": 3}, "_hash": stale})))
    assert block == FrozenDict({"k": 3}) and hash(block) == hash(FrozenDict({"k": 3}))
    arch = pickle.loads(pickle.dumps(_OldPickle(Architecture, {"id": "0123456789abcdef", "_data": {"k": 3},
                                                               "_hash": stale})))
    assert arch.id == "0123456789abcdef" and arch["k"] == 3


def test_pickle_and_copy_keep_blocks_and_ids():
    space = Space(n=Choice([2]), blocks=Repeat(count="n", k=Choice([3, 5])))
    arch = space.validate({"n": 2, "blocks": [{"k": 3}, {"k": 5}]})
    hash(arch["blocks"][0])
    for copied in (pickle.loads(pickle.dumps(arch)), copy.copy(arch), copy.deepcopy(arch)):
        assert type(copied) is Architecture and copied.id == arch.id == "1c495e7c4c91058d"
        assert copied == arch and copied.to_dict() == arch.to_dict()
        assert hash(copied["blocks"][1]) == hash(FrozenDict({"k": 5}))


# ------------------------------------------------------------------ 2. Conditional values from numpy and others

def test_conditional_values_as_a_numpy_array_mean_the_list():
    as_list = Space(w=Choice(np.array([16, 32, 64])), big=Conditional("w", [32, 64], Choice([1, 2])))
    as_array = Space(w=Choice(np.array([16, 32, 64])), big=Conditional("w", np.array([32, 64]), Choice([1, 2])))
    assert as_array.size() == as_list.size() == 5
    assert as_array.fingerprint() == as_list.fingerprint()
    assert as_array.fields["big"].values == (32, 64) and all(type(v) is int for v in as_array.fields["big"].values)
    as_series = Space(op=Choice(["a", "b", "c"]), x=Conditional("op", pd.Series(["a", "c"]), Integer(1, 3)))
    assert as_series.size() == 7
    assert Space(w=Choice([1, 2]), x=Conditional("w", np.int64(2), Choice([0, 1]))).size() == 3


@pytest.mark.parametrize("values", [{32, 64}, {"w": 32}, None], ids=["set", "dict", "none"])
def test_conditional_values_that_are_no_list_are_refused_as_such(values):
    with pytest.raises(nas.SpaceDefinitionError, match="big: Conditional values must be a scalar or a list"):
        Space(w=Choice([16, 32, 64]), big=Conditional("w", values, Choice([1, 2])))


def test_a_condition_value_that_is_no_option_is_still_named():
    with pytest.raises(nas.SpaceDefinitionError, match="big: condition value 48 is not an option of 'w'"):
        Space(w=Choice([16, 32, 64]), big=Conditional("w", np.array([32, 48]), Choice([1, 2])))


# ------------------------------------------------------------------ 3. Architecture from numpy scalars

def test_an_architecture_of_numpy_scalars_is_its_python_twin():
    plain = Architecture({"width": 32, "lr": 0.1, "ok": True, "op": "conv", "ks": [3, 5]})
    twin = Architecture({"width": np.int64(32), "lr": np.float64(0.1), "ok": np.bool_(True), "op": np.str_("conv"),
                         "ks": [np.int32(3), np.int64(5)]})
    assert twin.id == plain.id and twin == plain and hash(twin) == hash(plain)
    assert twin.to_json() == plain.to_json()
    assert type(twin["width"]) is int and type(twin["ok"]) is bool and type(twin["ks"][0]) is int
    # ids of plain data are unchanged (journals on disk key on them)
    assert Architecture({"width": 32, "lr": 0.1, "ok": True, "op": "conv"}).id == "e3d41bd8755b5256"
    space = Space(width=Choice([16, 32]))
    assert Architecture({"width": np.int64(32)}).id == space.validate({"width": np.int64(32)}).id


def test_a_nested_block_of_numpy_scalars_is_frozen_plain():
    block = FrozenDict({"k": np.int64(3), "inner": {"on": np.bool_(False)}})
    assert block == FrozenDict({"k": 3, "inner": {"on": False}})
    assert hash(block) == hash(FrozenDict({"k": 3, "inner": {"on": False}}))


# ------------------------------------------------------------------ 4. Choice options from pandas

def test_choice_takes_a_pandas_string_columns_unique_values():
    df = pd.DataFrame({"width": [16, 32, 16], "op": ["conv", "pool", "conv"]})
    columns = (df["op"].unique(), df["op"].drop_duplicates(), pd.Index(["conv", "pool"]),
               df["op"].astype("category").unique())
    for options in columns:
        choice = Choice(options)
        assert choice.options == ("conv", "pool") and all(type(o) is str for o in choice.options)
        assert Space(op=choice).size() == 2
    assert Choice(df["width"].unique()).options == (16, 32)
    assert Choice(pd.Series([1.0, 0.1])).options == (1.0, 0.1) and Choice(pd.Series([1.0, 0.1])).ordered


def test_choice_still_refuses_a_string_or_a_scalar_as_its_options():
    for options in ("conv", np.int64(3)):
        with pytest.raises(nas.SpaceDefinitionError, match="op: Choice options must be a list"):
            Space(op=Choice(options))


# ------------------------------------------------------------------ 5. from_vector / from_onehot on non-numbers

@pytest.mark.parametrize("bad", ["ab", ["1", "x"], [{"a": 1}, 0]], ids=["str", "strs", "dict"])
def test_a_vector_of_non_numbers_is_an_invalid_architecture(bad):
    space = Space(a=Choice([1, 2]), b=Choice(["x", "y"]))
    with pytest.raises(nas.InvalidArchitectureError, match="vector must be numbers"):
        space.from_vector(bad)
    with pytest.raises(nas.InvalidArchitectureError, match="one-hot must be numbers"):
        space.from_onehot(bad)
    assert space.from_vector([1, 0]) == {"a": 2, "b": "x"}
    assert space.from_onehot([0, 1, 1, 0]) == {"a": 2, "b": "x"}


def test_subset_items_from_a_dataframe_column_mean_their_python_twins():
    column = pd.DataFrame({"t": [0, 10, 20, 30, 40]})["t"]
    for items in (column, column.unique(), pd.Index(column)):
        space = Space(keep=Subset(items, k=2))
        assert space.fields["keep"].items == range(0, 50, 10)
        assert list(space.validate({"keep": [10, 40]})["keep"]) == [10, 40]
