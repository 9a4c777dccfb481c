"""Multi-fidelity searches (`FidelitySpace`): only top-level results count as results of the search, in stop rules,
`compare_searches`, the progress bar and export as in `best()`; and a hyperband pruner's own estimate of its
resources is journaled, so a resumed search prunes as the uninterrupted one."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from rich.console import Console
from torch import nn

import nas
from nas.compare import compare_searches
from nas.export import export
from nas.measure import count_metric
from nas.modelspec import load_subnet, record_model, save_trial_weights
from nas.report import SearchProgress
from nas.spaces import Choice, ModelSpace, Space
from nas.stopping import NoImprovement, Target
from nas.strategies.multifidelity import FidelitySpace

SPACE = Space(width=Choice([8, 16, 32, 64]), depth=Choice([1, 2, 3]), act=Choice(["relu", "gelu"]))  # 24
FSPACE = FidelitySpace(SPACE, levels=[1, 3, 9], field="epochs")


def train(arch, budget):
    """docs/strategies.md's toy training: a short one is a noisy estimate (std 3 / budget) of the accuracy."""
    noise = np.random.default_rng(int(arch.id[:8], 16)).normal(0, 3.0 / budget)
    return {"accuracy": 80 + arch["width"] / 8 + arch["depth"] + (arch["act"] == "gelu") + noise}


def _search(strategy: str = "hyperband", seed: int = 1, budget: int = 40, **kw) -> nas.SearchResult:
    return nas.search(FSPACE, FSPACE.evaluator(train), {"accuracy": "max"}, strategy=strategy, budget=budget,
                      seed=seed, **kw)


def _low_beats_top(r: nas.SearchResult) -> float:
    """The best accuracy below the top level, checked to beat every top-level one (what the tests rely on)."""
    low = max(t.metrics["accuracy"] for t in r.completed if t.arch["epochs"] != 9)
    assert r.top_fidelity == ("epochs", 9) and low > r.best().metrics["accuracy"]
    return low


# ------------------------------------------------------------------------------ defect 1: stop rules
def test_a_target_only_a_shorter_training_meets_does_not_stop_the_search():
    r = _search()
    low, top = _low_beats_top(r), r.best().metrics["accuracy"]
    between = f"accuracy >= {(low + top) / 2}"
    assert not Target(between)(r)  # met at 1 or 3 epochs only
    assert Target(f"accuracy >= {top}")(r)  # met at the top level
    stopped = _search(stop_when=Target(between))
    assert stopped.stop_reason == "budget" and stopped.used == 40
    reached = _search(stop_when=Target(f"accuracy >= {top}"))
    assert reached.stop_reason == f"stop_when: target reached: accuracy >= {top}"
    assert reached.best().metrics["accuracy"] >= top and reached.trials[-1] is reached.best()


def test_no_improvement_counts_the_evaluations_since_the_last_top_level_improvement():
    r = _search(budget=60)
    _low_beats_top(r)
    last = r.history()[-1][0]  # evaluations used at the last top-level improvement
    assert NoImprovement(1000).stale(r) == r.used - last
    # asked after each evaluation, as a search does: a lower level's better result resets nothing
    rule, stale = NoImprovement(1000), []
    for n in range(1, len(r.trials) + 1):
        stale.append(rule.stale(nas.SearchResult(r.trials[:n], r.problem, config=r.config)))
    assert stale[-1] == r.used - last and stale[last - 1] == 0


# ------------------------------------------------------------------------------ defect 3: compare
def test_compare_scores_each_run_by_its_top_level_best():
    runs = [_search("hyperband", 0), _search("hyperband", 1), _search("successive-halving", 0),
            _search("successive-halving", 1)]
    for r in runs:
        _low_beats_top(r)
    c = compare_searches(runs)  # at the fewest evaluations a run spent (one ended "exhausted")
    for g in c.groups:
        mine = [r for r in runs if r.config["strategy"] == g.name]
        assert g.scores == [max(v for used, v in r.history() if used <= c.at) for r in mine]
    at_end = compare_searches(runs[:2])  # both spent the budget: each scores its best()
    assert at_end.at == 40 and at_end.groups[0].scores == [r.best().metrics["accuracy"] for r in runs[:2]]


# ------------------------------------------------------------------------------ defect 5: progress bar
def test_the_progress_bar_shows_the_top_level_best():
    r = _search()
    _low_beats_top(r)
    bar = SearchProgress(Console(file=io.StringIO()))
    bar.begin(r.problem, 40, [], config=r.config)  # what nas.search passes: the journal header
    for i, t in enumerate(r.trials):
        bar(t, i + 1, 40)
    assert bar.best == r.best().metrics["accuracy"]
    resumed = SearchProgress(Console(file=io.StringIO()), r.problem, 40, r.trials, config=r.config)
    assert resumed.best == r.best().metrics["accuracy"]
    plain = SearchProgress(Console(file=io.StringIO()), r.problem, 40, r.trials)  # no header: every level
    assert plain.best == max(t.metrics["accuracy"] for t in r.completed)


def test_nas_search_gives_its_progress_bar_the_header_and_keeps_a_begin_without_it():
    bar = SearchProgress(Console(file=io.StringIO()))
    r = _search(progress=bar)
    _low_beats_top(r)
    assert bar.best == r.best().metrics["accuracy"]  # nas.search passed the header: the top level's best

    class Plain:  # a user's progress object whose begin() takes no header
        def begin(self, problem, budget, trials):
            self.begun = budget

        def __call__(self, trial, used, budget):
            pass

        def close(self):
            pass

    plain = Plain()
    _search(progress=plain)
    assert plain.begun == 40

# ------------------------------------------------------------------------------ defect 2: hyperband pruner resume
PRUNED_SPACE = Space(lr=Choice([0.001, 0.003, 0.01, 0.03, 0.1, 0.3]), width=Choice([8, 16, 32, 64]))
PRUNED_FSPACE = FidelitySpace(PRUNED_SPACE, levels=[1, 3, 9], field="epochs")


def reporting_training(arch, budget):
    """Reports the accuracy after each of `budget` epochs (what the pruner judges)."""
    quality = {0.001: 0.5, 0.003: 0.6, 0.01: 0.8, 0.03: 0.85, 0.1: 0.9, 0.3: 0.55}[arch["lr"]] + arch["width"] / 640
    acc = 0.0
    for epoch in range(int(budget)):
        acc = quality * (1 - 0.6 ** (epoch + 1)) + 0.02 * ((int(arch.id[:8], 16) >> epoch) % 3)
        nas.report_metrics({"accuracy": acc})
    return {"accuracy": acc}


def test_a_resumed_search_prunes_with_the_hyperband_brackets_of_the_uninterrupted_one(tmp_path):
    """Optuna's HyperbandPruner fixes max_resource (and so its brackets) from the longest completed curve when it
    first judges: 1 epoch here. A resume added the whole journal before judging, 9-epoch curves too."""
    def run(wd, budget):
        return nas.search(PRUNED_FSPACE, PRUNED_FSPACE.evaluator(reporting_training), {"accuracy": "max"},
                          strategy="successive-halving", budget=budget, seed=0, workdir=wd, pruner="hyperband")

    def pruned(result):
        return [(t.arch_id, t.extra.get("pruned_after")) for t in result.trials]

    whole = run(tmp_path / "whole", 30)
    assert sum(p is not None for _, p in pruned(whole)) >= 3
    assert {t.extra["pruner_estimates"]["max_resource"] for t in whole.trials if "pruner_estimates" in t.extra} == {1}
    run(tmp_path / "split", 8)
    assert pruned(run(tmp_path / "split", 30)) == pruned(whole)


# ------------------------------------------------------------------------------ defect 4: export
class Tiny(ModelSpace):
    """Three MLPs, importable by name: the base space of the FidelitySpace searched."""

    def __init__(self) -> None:
        super().__init__(width=Choice([2, 4, 8]), act=Choice(["relu", "tanh"]))

    def build(self, arch):
        act = nn.ReLU() if arch["act"] == "relu" else nn.Tanh()
        return nn.Sequential(nn.Linear(8, arch["width"]), act, nn.Linear(arch["width"], 3))

    def example_input(self, arch, batch_size: int = 1):
        return torch.zeros(batch_size, 8)


def test_a_fidelity_space_search_exports_its_top_level_picks_as_base_architectures(tmp_path, one_thread):
    base = Tiny()
    fspace = FidelitySpace(base, levels=[1, 3], field="epochs")
    wd = tmp_path / "wd"
    record_model(wd, base, metrics={"params": count_metric("params")})
    trained: dict[tuple[str, int], nn.Module] = {}

    def evaluate(arch, budget):
        torch.manual_seed(arch["width"] * 10 + budget)  # a stand-in for `budget` epochs of training
        model = base.build(arch).eval()
        trained[arch.id, budget] = model
        if budget == fspace.levels[-1]:  # docs/export.md: the top level's weights are the ones exported
            save_trial_weights(wd, arch, model)
        return {"score": float(arch["width"] + budget / 10) + (arch["act"] == "tanh"),
                "params": float(sum(p.numel() for p in model.parameters()))}

    r = nas.search(fspace, fspace.evaluator(evaluate), {"score": "max"},
                   strategy="successive-halving", budget=9, seed=0, workdir=wd)
    front = r.pareto_front()
    assert front and all(t.arch["epochs"] == 3 for t in front)
    report = export(r, tmp_path / "models", onnx=False)
    assert [m.trial for m in report.models] == [t.number for t in front]
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    for m, t in zip(report.models, front):
        arch = fspace.strip(t.arch)
        assert m.arch_id == arch.id and "epochs" not in arch
        with torch.no_grad():
            assert torch.equal(load_subnet(m.path)(x), trained[arch.id, 3](x))


class Wider(Tiny):
    """Another base space (one more width): a workdir of Tiny's search must refuse it."""

    def __init__(self) -> None:
        ModelSpace.__init__(self, width=Choice([2, 4, 8, 16]), act=Choice(["relu", "tanh"]))


def test_record_model_again_on_a_fidelity_space_workdir_is_a_resume(tmp_path):
    """A script that records its base space and searches a FidelitySpace over it is rerun to resume: record_model
    compared the base space with the journal's FidelitySpace and refused ("type 'FidelitySpace', this run 'Tiny'")."""
    base = Tiny()
    fspace = FidelitySpace(base, levels=[1, 3], field="epochs")
    wd = tmp_path / "wd"

    def run(budget):
        record_model(wd, base)
        return nas.search(fspace, fspace.evaluator(lambda arch, budget: {"score": arch["width"] + budget / 10}),
                          {"score": "max"}, strategy="successive-halving", budget=budget, seed=0, workdir=wd)

    run(4)
    assert len(run(9).trials) > 4  # resumed (to where this small space is exhausted), not refused
    with pytest.raises(nas.errors.JournalError, match="width"):
        record_model(wd, Wider())
