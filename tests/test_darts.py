"""One-shot strategies (DARTS, second-order DARTS, PC-DARTS, ProxylessNAS) on tiny cell supernets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import nas
from nas.errors import ConfigError, JournalError
from nas.hardware import adapter_for
from nas.spaces.cell import DartsSpace, NasBench201Space
from nas.darts import DartsOptions, load_history, search_darts
from nas.strategies.oneshot import EpochRecord, OneShotTrainer
from nas.strategies.oneshot_latency import ensure_table, lut_costs
from tests.docs import python_blocks

ROOT = Path(__file__).resolve().parents[1]
FAST = DartsOptions(batch_size=32, retrain_epochs=1, a_lr=3e-3)
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_nb201() -> NasBench201Space:
    return NasBench201Space(channels=4, cells_per_stage=1, stages=2)


def test_alphas_get_gradients_and_change(digits64):
    trainer = OneShotTrainer(tiny_nb201(), FAST, seed=0)
    before = {k: a.detach().clone() for k, a in trainer.supernet.alphas.items()}
    xv, yv = digits64["valid"]
    F.cross_entropy(trainer.supernet(xv[:32]), yv[:32]).backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in trainer.supernet.alphas.values())
    record = trainer.train_epoch(digits64)
    moved = max(float((trainer.supernet.alphas[k].detach() - before[k]).abs().max()) for k in before)
    assert moved > 1e-3  # 2 Adam steps of lr 3e-3
    assert record.epoch == 1 and len(record.alphas["cell"]) == 6 and len(record.alphas["cell"][0]) == 5


def test_second_order_gradient_matches_first_order_as_xi_vanishes(digits64):
    (xt, yt), (xv, yv) = digits64["train"], digits64["valid"]
    xt, yt, xv, yv = xt[:32], yt[:32], xv[:32], yv[:32]
    tiny = OneShotTrainer(tiny_nb201(), DartsOptions(method="darts2", w_lr=1e-9, w_lr_min=1e-10), seed=0)
    unrolled = tiny._unrolled_grads(xt, yt, xv, yv)
    first = torch.autograd.grad(F.cross_entropy(tiny.supernet(xv), yv), tiny.arch)
    for u, f in zip(unrolled, first):
        torch.testing.assert_close(u, f, rtol=1e-3, atol=1e-6)
    real = OneShotTrainer(tiny_nb201(), DartsOptions(method="darts2", w_lr=0.5), seed=0)
    unrolled = real._unrolled_grads(xt, yt, xv, yv)
    assert max(float((u - f).abs().max()) for u, f in zip(unrolled, first)) > 1e-4  # the Hessian term matters
    before = real.supernet.alphas["cell"].detach().clone()
    real.arch_step(xt, yt, xv, yv)
    assert not torch.equal(before, real.supernet.alphas["cell"])
    assert all(p.grad is None for p in real.weights)


@pytest.mark.parametrize("method", ["darts", "darts2", "pc-darts", "proxyless"])
def test_each_method_derives_a_valid_architecture_and_journals_it(digits64, tmp_path, method):
    space = tiny_nb201()
    result = search_darts(space, digits64, method=method, epochs=1, workdir=tmp_path, options=FAST)
    assert len(result.trials) == 1
    trial = result.trials[0]
    assert space.validate(trial.arch).id == trial.arch_id
    assert {"accuracy", "test_accuracy", "params", "flops", "supernet_accuracy"} <= set(trial.metrics)
    loaded = nas.load(tmp_path)
    assert [t.arch for t in loaded.trials] == [trial.arch]
    assert loaded.best().arch_id == trial.arch_id and loaded.pareto_front()[0].arch_id == trial.arch_id
    assert loaded.config["strategy"] == method
    if method == "proxyless":  # a lookup table was built in the workdir and priced the architecture
        assert (tmp_path / "latency_table.jsonl").exists() and trial.metrics["latency_ms"] > 0
        assert loaded.problem.names == ["accuracy", "latency_ms"]


def test_darts_space_supernet_derives_two_inputs_per_node(digits64):
    space = DartsSpace(channels=4, cells_per_stage=1, stages=2, nodes=2)
    trainer = OneShotTrainer(space, DartsOptions(method="pc-darts", batch_size=32), seed=0)
    (xt, yt), (xv, yv) = digits64["train"], digits64["valid"]
    trainer.arch_step(xt[:32], yt[:32], xv[:32], yv[:32])
    trainer.weight_step(xt[:32], yt[:32])
    assert {k: tuple(a.shape) for k, a in trainer.supernet.alphas.items()} == {"normal": (5, 8), "reduce": (5, 8)}
    arch = space.validate(trainer.supernet.derive())  # 2 nodes: 2 + 3 edges; 7 ops + none
    assert all(len(space.edge_ops(arch)[kind]) == 4 for kind in ("normal", "reduce"))


def test_latency_loss_lowers_expected_latency(digits64, tmp_path):
    space = tiny_nb201()
    table = ensure_table(adapter_for(space), tmp_path / "lut.jsonl", warmup=1, repeats=5)
    costs = {}
    for weight in (0.0, 5.0):
        opts = DartsOptions(batch_size=32, retrain_epochs=1, a_lr=0.1, latency="lut", latency_weight=weight)
        result = search_darts(space, digits64, method="proxyless", epochs=3, options=opts, latency_table=table, seed=0)
        trainer = OneShotTrainer(space, opts, seed=0)
        lut = lut_costs(trainer.supernet, table)
        assert result.trials[0].metrics["latency_ms"] > 0
        probs = {k: torch.softmax(torch.tensor(a), -1) for k, a in result.trials[0].extra["alphas"].items()}
        costs[weight] = float(lut.expected(probs))
    assert costs[5.0] < 0.8 * costs[0.0]


class Killed(Exception):
    pass


@pytest.mark.parametrize("method", ["darts", "proxyless"])
def test_resume_after_a_kill_continues_identically(digits64, tmp_path, method):
    space = tiny_nb201()
    opts = DartsOptions(batch_size=32, retrain_epochs=1, a_lr=3e-3, latency="flops")
    whole = search_darts(space, digits64, method=method, epochs=2, workdir=tmp_path / "whole", options=opts)

    def kill(record: EpochRecord) -> None:
        if record.epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        search_darts(space, digits64, method=method, epochs=2, workdir=tmp_path / "killed", options=opts, progress=kill)
    state = torch.load(tmp_path / "killed" / "oneshot.pt", weights_only=True)
    assert state["epoch"] == 1 and nas.load(tmp_path / "killed").trials == []
    assert [r.epoch for r in load_history(tmp_path / "killed")] == [1]
    resumed = search_darts(space, digits64, method=method, epochs=2, workdir=tmp_path / "killed", options=opts)
    assert resumed.trials[0].extra["alphas"] == whole.trials[0].extra["alphas"]
    assert resumed.trials[0].arch == whole.trials[0].arch
    assert resumed.trials[0].metrics["accuracy"] == whole.trials[0].metrics["accuracy"]
    again = search_darts(space, digits64, method=method, epochs=2, workdir=tmp_path / "killed", options=opts)
    assert len(nas.load(tmp_path / "killed").trials) == 1 and again.trials[0].arch_id == whole.trials[0].arch_id


def test_a_different_search_in_the_same_workdir_is_refused(digits64, tmp_path):
    search_darts(tiny_nb201(), digits64, epochs=1, workdir=tmp_path, options=FAST)
    with pytest.raises(JournalError, match="strategy"):
        search_darts(tiny_nb201(), digits64, method="pc-darts", epochs=1, workdir=tmp_path, options=FAST)


def test_record_epochs_journals_each_distinct_derived_architecture(digits64, tmp_path):
    opts = DartsOptions(batch_size=32, retrain_epochs=1, a_lr=0.1, record="epochs")
    result = search_darts(tiny_nb201(), digits64, epochs=3, workdir=tmp_path, options=opts)
    ids = [t.arch_id for t in result.trials]
    assert 1 <= len(ids) <= 3 and len(set(ids)) == len(ids)
    assert [t.extra["epoch"] for t in result.trials] == sorted(t.extra["epoch"] for t in result.trials)


def test_darts_es_stops_when_the_smoothed_eigenvalue_grows():
    trainer = OneShotTrainer(tiny_nb201(), DartsOptions(early_stop="eigenvalue", es_window=2, es_lag=2), seed=0)
    for epoch, eig in enumerate([1.0, 1.0, 1.0, 1.1, 1.6, 2.0], start=1):
        trainer.history.append(EpochRecord(epoch, 0, 0, 0, 0, {}, {}, {}, 0, 0, eigenvalue=eig))
        stop = trainer.early_stop_epoch()
        if stop is not None:
            break
    assert (epoch, stop) == (5, 3)  # (1.0 + 1.1) / 2 / ((1.1 + 1.6) / 2) = 0.78 > 0.75 at 4; 0.62 at 5


def test_hessian_eigenvalue_is_finite(digits64):
    trainer = OneShotTrainer(tiny_nb201(), DartsOptions(hessian_iters=3), seed=0)
    value = trainer.hessian_eigenvalue(*[t[:32] for t in digits64["valid"]])
    assert value == value and abs(value) < 1e6


@pytest.mark.parametrize("field, value", [("method", "enas"), ("epochs", 0), ("latency", "energy"),
                                          ("early_stop", "sometimes"), ("record", "all"), ("latency_weight", -1.0)])
def test_bad_options_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        DartsOptions(**{field: value})


def test_a_space_without_a_cell_supernet_is_refused():
    from nas.spaces import Choice, Space

    with pytest.raises(ConfigError, match="space"):
        OneShotTrainer(Space(x=Choice([1, 2])), DartsOptions())


def test_bad_data_names_the_split(digits64):
    with pytest.raises(ConfigError, match="valid"):
        search_darts(tiny_nb201(), {"train": digits64["train"]}, epochs=1, options=FAST)
    with pytest.raises(ConfigError, match="input"):
        search_darts(NasBench201Space(input_shape=(1, 40), channels=4, cells_per_stage=1, stages=2), digits64, epochs=1,
                     options=FAST)


def test_docs_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}  # the blocks build on each other, as in a reader's session
    for block in python_blocks(ROOT / "docs" / "darts.md"):
        exec(compile(block, "docs/darts.md", "exec"), namespace)


def test_a_cell_space_workdir_exports_the_retrained_network(digits64, tmp_path):
    """The default evaluator's retrained weights and a model spec are kept, so `nas export` of a NB201 DARTS
    workdir writes the network the journal measured (it had no model.json)."""
    from nas.darts import StandaloneTraining
    from nas.export import export

    space, wd = tiny_nb201(), tmp_path / "darts"
    trial = search_darts(space, digits64, epochs=1, workdir=wd, seed=0, options=FAST).trials[0]
    report = export(wd, tmp_path / "models", onnx=False)
    assert [m.trial for m in report.models] == [0]
    module = nas.load_subnet(report.models[0].path)
    StandaloneTraining(space, digits64, FAST.retrain_epochs, FAST.retrain_lr, FAST.batch_size, 0,
                       tmp_path / "again")(trial.arch)  # the same deterministic retraining, kept elsewhere
    again = space.build(trial.arch)
    again.load_state_dict(torch.load(tmp_path / "again" / "weights" / f"{trial.arch_id}.pt", weights_only=True))
    x, y = digits64["valid"]
    with torch.no_grad():
        out = module(x)
        assert torch.equal(out, again.eval()(x))
    assert float((out.argmax(1) == y).float().mean()) == pytest.approx(trial.metrics["accuracy"], abs=1e-9)


def _status(wd: Path) -> str:
    from typer.testing import CliRunner

    from nas.cli import app

    out = CliRunner().invoke(app, ["status", str(wd)])
    assert out.exit_code == 0, out.stdout
    return " ".join(out.stdout.split())


def test_status_says_a_darts_search_is_finished_or_how_it_resumes(digits64, tmp_path):
    """Finished once every epoch is recorded (record="epochs" journals only distinct architectures, so it was
    "stopped below its budget"); no "larger budget" advice; a killed run is told to call again."""
    opts = DartsOptions(batch_size=32, retrain_epochs=1, a_lr=0.1, record="epochs")
    result = search_darts(tiny_nb201(), digits64, epochs=3, workdir=tmp_path / "done", options=opts)
    text = _status(tmp_path / "done")
    assert "finished: all 3 epochs trained" in text and "budget" not in text.split("state")[1]
    n = len(result.trials)
    assert f"{n} of {n} evaluations used" in text and nas.load(tmp_path / "done").config["budget"] == n

    def kill(record: EpochRecord) -> None:
        raise Killed

    with pytest.raises(Killed):
        search_darts(tiny_nb201(), digits64, epochs=2, workdir=tmp_path / "killed", options=FAST, progress=kill)
    text = _status(tmp_path / "killed")
    assert "stopped after epoch 1 of 2" in text and "nas.darts.search_darts(" in text and "larger" not in text


def test_a_changed_option_is_refused_naming_it(digits64, tmp_path):
    search_darts(tiny_nb201(), digits64, epochs=1, workdir=tmp_path, options=FAST)
    with pytest.raises(JournalError, match=r"option epochs is 1, this run's is 2") as e:
        search_darts(tiny_nb201(), digits64, epochs=2, workdir=tmp_path, options=FAST)
    assert "{" not in str(e.value)  # not both option dicts


@pytest.mark.parametrize("change, field", [
    (lambda d: {k: (x, y.float()) for k, (x, y) in d.items()}, "labels must be integer"),
    (lambda d: {**d, "test": (d["test"][0][:0], d["test"][1][:0])}, r"data\['test'\]: the split is empty"),
    (lambda d: {"train": d["train"], "valid": d["valid"], "tset": d["test"]}, "unknown split 'tset'"),
])
def test_bad_data_is_refused_before_training(digits64, change, field):
    def trained(record: EpochRecord) -> None:
        raise AssertionError("trained before refusing the data")

    with pytest.raises(ConfigError, match=field):
        search_darts(tiny_nb201(), change(digits64), epochs=1, options=FAST, progress=trained)


def test_a_negative_seed_is_refused(digits64, tmp_path):
    with pytest.raises(ConfigError, match="seed"):
        search_darts(tiny_nb201(), digits64, epochs=1, seed=-1, workdir=tmp_path, options=FAST)
    assert not (tmp_path / "journal.jsonl").exists()
