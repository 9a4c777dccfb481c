"""The weights a search was scored with stay the ones it exports: record_model refuses to replace supernet.pt under
scored trials, and verify flags an accuracy that does not re-measure as searched (found trying a user's model end to
end: a second record_model silently swapped the weights, and verify called a -80 point error 'ok')."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nas
from nas import nn as nnn
from nas.datasets import digits_splits
from nas.errors import JournalError
from nas.export import export
from nas.measure import accuracy_metric
from nas.modelspec import DataRef, SUPERNET, load_model_spec, load_supernet, record_model
from nas.spaces.training import SandwichRule
from nas.verify import verify

pytestmark = pytest.mark.usefixtures("one_thread")


class Mlp(nnn.ModelSpace):
    input_shape = (1, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        width = nnn.Choice("width", [16, 32])
        self.body = nn.Sequential(nn.Flatten(), nnn.Linear(64, width), nn.ReLU(), nnn.Linear(width, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.fixture
def searched(tmp_path):
    """A two-architecture search scored with a briefly trained supernet (about 90 % valid accuracy)."""
    data = digits_splits(seed=0)
    space = Mlp.space()
    torch.manual_seed(0)
    supernet = Mlp.supernet()
    SandwichRule(epochs=3, n_random=1, batch_size=32, seed=0).fit(supernet, *data["train"])
    kw = dict(data=DataRef.of(digits_splits, seed=0), metrics={"accuracy": accuracy_metric("valid", scale=1)})
    wd = tmp_path / "wd"
    spec = record_model(wd, space, supernet=supernet.eval(), **kw)
    nas.search(space, spec.evaluator(supernet, data), {"accuracy": "max"}, strategy="random", budget=2, seed=0,
               workdir=wd, progress=False)
    return wd, space, supernet, data, kw


def test_record_model_keeps_the_weights_the_trials_were_scored_with(searched):
    wd, space, supernet, data, kw = searched
    before = (wd / SUPERNET).read_bytes()
    torch.manual_seed(1)
    with pytest.raises(JournalError, match=r"holds 2 trial\(s\) scored with the weights in .*these weights differ"):
        record_model(wd, space, supernet=Mlp.supernet(), **kw)
    assert (wd / SUPERNET).read_bytes() == before
    record_model(wd, space, supernet=supernet, **kw)  # the same weights: a resume re-running its script
    record_model(wd, space, supernet=load_supernet(load_model_spec(wd), wd), **kw)  # the weights as recorded


def test_verify_flags_an_accuracy_that_does_not_re_measure_as_searched(searched, tmp_path, caplog):
    wd, space, supernet, data, kw = searched
    assert verify(export(wd, tmp_path / "ok", top=1, onnx=False, data=data).out, data=data).ok
    sliced = {k: (x[:50], y[:50]) for k, (x, y) in data.items()}  # not the recorded dataset
    export(wd, tmp_path / "sliced", top=1, onnx=False, data=sliced)
    assert "(is `data` the recorded dataset?)" in caplog.text
    torch.manual_seed(1)
    torch.save(Mlp.supernet().state_dict(), wd / SUPERNET)  # replaced by hand, past record_model
    report = verify(export(wd, tmp_path / "swapped", top=1, onnx=False, data=data).out, data=data)
    assert not report.ok
    assert "accuracy re-measures exactly, so the weights, data or recipe differ" in report.checks[0].flags[0]


def test_record_model_keeps_where_the_scored_trials_weights_come_from(searched, tmp_path):
    """Trials scored with a supernet's weights are not re-recorded as per-trial weights (which they never saved),
    and the other way round; before any trial is scored, either may replace the other."""
    wd, space, supernet, data, kw = searched
    before = {p.name: p.read_bytes() for p in wd.iterdir() if p.is_file()}
    with pytest.raises(JournalError, match=r"holds 2 trial\(s\) scored with a supernet's .* weights, and this record "
                                           r"would export them from each trial's own \(weights/<arch_id>\.pt\)"):
        record_model(wd, space, **kw)
    assert load_model_spec(wd).weights == "supernet"
    assert {p.name: p.read_bytes() for p in wd.iterdir() if p.is_file()} == before
    fresh = tmp_path / "fresh"
    record_model(fresh, space, **kw)  # nothing scored yet: free to change
    assert record_model(fresh, space, supernet=supernet, **kw).weights == "supernet"
