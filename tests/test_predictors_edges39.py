"""Session 39 edges of the predictors' harness: its default groups are the architectures' values with equal
numbers written alike (1 and 1.0 one network, as a space's validation makes them), bools kept apart from ints."""

from __future__ import annotations

import numpy as np
import pytest

from nas.errors import ConfigError
from nas.predictors.harness import evaluate
from nas.spaces import Architecture, Choice, Space


class Recorder:
    """A scorer that records the `w` values it was trained and tested on (as floats: 3 and 3.0 alike)."""

    log: list[tuple[set[float], list[float]]] = []

    def fit(self, archs, y):
        self.train = {float(a["w"]) for a in archs}
        return self

    def predict(self, archs):
        Recorder.log.append((self.train, [float(a["w"]) for a in archs]))
        return np.arange(len(archs), dtype=float), np.zeros(len(archs))


@pytest.mark.parametrize("twin", [float, np.int64, np.float32], ids=["float", "np.int64", "np.float32"])
def test_an_int_and_an_equal_float_are_one_group(twin):
    """Each network given twice, once as {"w": i} and once as {"w": float(i)}: never both tested, nor tested and
    trained on (old: the two had different ids, so both sides held some)."""
    ws = range(60)
    for wrap in (dict, Architecture):
        archs = [wrap({"w": i}) for i in ws] + [wrap({"w": twin(i)}) for i in ws]
        Recorder.log = []
        evaluate({"rec": lambda seed: Recorder()}, archs, [float(i) for i in ws] * 2, sizes=[30], seeds=[0, 1, 2],
                 n_test=25)
        for train, test in Recorder.log:
            assert len(set(test)) == len(test) == 25
            assert not train & set(test)


def test_the_space_validated_form_groups_as_before():
    """Architectures a space validated keep one group per id (the grouping of distinct networks is unchanged)."""
    space = Space(w=Choice(list(range(40))), lr=Choice([0.1, 1.0]))
    archs = list(space)
    Recorder.log = []
    evaluate({"rec": lambda seed: Recorder()}, archs, [float(a["w"]) for a in archs], sizes=[10], seeds=[0],
             n_test=len(archs) - 10)  # every one of the 80 distinct networks is a group of its own


def test_bools_stay_apart_from_ints():
    """True and 1 (False and 0) are different values to a space (`Choice([True, 1])` holds two options)."""
    archs = [{"on": True}, {"on": 1}, {"on": False}, {"on": 0}, {"on": 2}, {"on": 3}]

    class Constant:
        def fit(self, archs, y):
            return self

        def predict(self, archs):
            return np.zeros(len(archs)), np.zeros(len(archs))

    records = evaluate({"c": lambda seed: Constant()}, archs, [0.0, 1, 2, 3, 4, 5], sizes=[2], seeds=[0], n_test=4)
    assert len(records) == 1
    with pytest.raises(ConfigError, match="only 4 distinct groups"):  # {"on": 1} and {"on": 1.0} would be one
        evaluate({"c": lambda seed: Constant()}, archs[:4] + [{"on": 1.0}, {"on": 0.0}], [0.0] * 6, sizes=[2],
                 seeds=[0], n_test=5)


def test_a_value_json_cannot_hold_is_refused_naming_the_row():
    with pytest.raises(ConfigError, match=r"archs\[1\]"):
        evaluate({"c": lambda seed: Recorder()}, [{"w": 1}, {"w": float("nan")}, {"w": 2}], [0.0, 1, 2], sizes=[2],
                 seeds=[0], n_test=2)
