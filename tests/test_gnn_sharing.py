"""`SharedWeightsEvaluator`'s store follows the search through the evaluator `begin` hook: it lives under the
search's workdir, a resumed search restores it exactly, and each new search starts its own."""

from __future__ import annotations

import pytest
from torch_geometric.datasets import KarateClub

import nas
from nas.errors import ConfigError
from nas.spaces.gnn import GNNSpace
from nas.spaces.gnn_sharing import GNN_ACTION_CLASSES, STORE_DIR, SharedWeightsEvaluator

pytestmark = pytest.mark.usefixtures("one_thread")


def karate_split():
    data = KarateClub()[0]
    data.val_mask = data.test_mask = ~data.train_mask
    return data


DATA = karate_split()
SPACE = GNNSpace(DATA.num_features, 4, hidden=(16, 32))


def make(**kwargs) -> SharedWeightsEvaluator:
    return SharedWeightsEvaluator(SPACE, DATA, epochs=3, scratch_epochs=15, **kwargs)


def sharing_search(evaluate, budget=5, workdir=None, stop_after=None, executor="local"):
    def progress(trial, used, budget):
        if stop_after is not None and trial.number + 1 == stop_after:
            raise KeyboardInterrupt

    return nas.search(SPACE, evaluate, {"valid_acc": "max"}, strategy="autognn", budget=budget, seed=0,
                      workdir=workdir, strategy_options={"classes": GNN_ACTION_CLASSES}, progress=progress,
                      executor=executor)


def outcomes(result):
    """Each trial's architecture and metrics but its wall time."""
    return [(t.arch_id, {k: v for k, v in t.metrics.items() if k != "train_seconds"}) for t in result.trials]


class CtrlCAfterEvaluating:
    """The evaluator, but Ctrl-C arrives right after its `at`-th evaluation (done, its weights stored, not
    journaled)."""

    def __init__(self, inner: SharedWeightsEvaluator, at: int) -> None:
        self.inner, self.at, self.calls = inner, at, 0

    def begin(self, workdir, trials):
        self.inner.begin(workdir, trials)

    def __call__(self, arch):
        metrics = self.inner(arch)
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return metrics


def test_a_resumed_search_restores_the_store_without_a_workdir_argument(tmp_path):
    """Without `workdir=` the resumed search started with an empty store: its children inherited less than
    in the uninterrupted run, and their results differed."""
    whole = outcomes(sharing_search(make(), workdir=tmp_path / "whole"))
    assert any(m["inherited_layers"] > 0 for _, m in whole[3:])  # the trials after the cut inherit something
    assert len(list((tmp_path / "whole" / STORE_DIR).glob("*.pt"))) == 5  # the store lives in the workdir
    assert outcomes(sharing_search(make())) == whole  # without a workdir: in memory, same results
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        sharing_search(make(), workdir=cut, stop_after=3)
    assert outcomes(sharing_search(make(), workdir=cut)) == whole  # a new process: a new evaluator
    again = tmp_path / "again"  # the same evaluator object resumed in this process
    evaluate = make()
    with pytest.raises(KeyboardInterrupt):
        sharing_search(evaluate, workdir=again, stop_after=2)
    assert outcomes(sharing_search(evaluate, workdir=again)) == whole


def test_an_evaluation_finished_but_not_journaled_leaves_no_trace_in_the_resumed_store(tmp_path):
    """Ctrl-C after an evaluation stored its weights, before the search journaled it: the resumed search
    evaluates it again, with the store the journaled evaluations left (not one holding its own weights)."""
    whole = outcomes(sharing_search(make(), workdir=tmp_path / "whole"))
    evaluate = make()
    with pytest.raises(KeyboardInterrupt):
        sharing_search(CtrlCAfterEvaluating(evaluate, 4), workdir=tmp_path / "cut")
    assert len(nas.load(tmp_path / "cut").trials) == 3
    assert outcomes(sharing_search(evaluate, workdir=tmp_path / "cut")) == whole


def test_each_search_starts_its_own_store(caplog):
    """A second search with the same evaluator inherited the first search's weights (a warning said so); now
    `nas.search` starts each search's store, so it equals the first. A store given at construction is where
    every search starts."""
    evaluate = make()
    first = outcomes(sharing_search(evaluate))
    assert first[0][1]["inherited_layers"] == 0
    with caplog.at_level("WARNING", logger="nas.spaces.gnn_sharing"):
        assert outcomes(sharing_search(evaluate)) == first
    assert not caplog.records
    evaluate.reset()
    assert outcomes(sharing_search(evaluate)) == first
    primed = make(store=dict(evaluate.store))  # weights from elsewhere: the first child inherits them
    warm = outcomes(sharing_search(primed))
    assert warm[0][1]["inherited_layers"] > 0
    assert outcomes(sharing_search(primed)) == warm
    with caplog.at_level("WARNING", logger="nas.spaces.gnn_sharing"):  # called directly, a repeat is still named
        fresh = make()
        fresh(SPACE.default())
        fresh(SPACE.default())
    assert "store is reused" in caplog.text


def test_the_deprecated_workdir_argument_still_works_and_is_checked(tmp_path):
    with pytest.warns(DeprecationWarning, match=r"workdir=\.\.\.\) is deprecated .* drop workdir="):
        old = make(workdir=tmp_path / "cut")
    whole = outcomes(sharing_search(make(), workdir=tmp_path / "whole"))
    with pytest.raises(KeyboardInterrupt):
        sharing_search(old, workdir=tmp_path / "cut", stop_after=3)
    with pytest.warns(DeprecationWarning):
        assert outcomes(sharing_search(make(workdir=tmp_path / "cut"), workdir=tmp_path / "cut")) == whole
    with pytest.warns(DeprecationWarning):
        elsewhere = make(workdir=tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=r"workdir: the evaluator was given .*elsewhere, but the search runs in "
                                          r".*other; drop workdir="):
        sharing_search(elsewhere, workdir=tmp_path / "other")
    assert not (tmp_path / "other" / STORE_DIR).exists()  # refused before any evaluation
    with pytest.raises(ConfigError, match="but the search runs in no workdir"):
        sharing_search(elsewhere)
    with pytest.raises(ConfigError, match="workdir: .* holds no journal"):  # called directly, outside a search
        elsewhere(SPACE.default())
    with pytest.raises(ConfigError, match="workdir: expected a folder"):
        make(workdir=3)


def test_worker_processes_start_from_the_journaled_store(tmp_path):
    """Each worker process gets the store `begin` restored in the driver and writes its layers to the
    workdir, so a resume rebuilds from every journaled evaluation."""
    workers = {"name": "processes", "workers": 2}
    first = sharing_search(make(), budget=3, workdir=tmp_path, executor=workers)
    assert all(t.status == "ok" for t in first.trials)
    assert {p.stem for p in (tmp_path / STORE_DIR).glob("*.pt")} == {t.arch_id for t in first.trials}
    evaluate = make()
    more = sharing_search(evaluate, budget=5, workdir=tmp_path, executor=workers)
    assert all(t.status == "ok" for t in more.trials) and len(more.trials) == 5
    assert evaluate._applied == [t.arch_id for t in first.trials]  # the driver's copy: what begin restored
    assert any(t.metrics["inherited_layers"] > 0 for t in more.trials[3:])
