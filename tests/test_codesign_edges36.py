"""Edge cases of the hardware co-design tools (co-design review 36): the precision example's workdir, negative HAWQ
sensitivities, co-exploration tables / designs / fields, PrecisionMLPConfig types, MPCLatency on a feature
module, and the accelerator workload helpers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.errors import ConfigError
from nas.hardware import CoExploration, allocate
from nas.hardware.accelerator import as_workloads, conv_gemm
from nas.hardware.coexplore import GRAPHS
from nas.hardware.mpc import MPCLatency
from nas.hardware.precision_space import PrecisionMLPConfig

ROOT = Path(__file__).resolve().parents[1]


def _example():
    """examples/precision_search.py as a module (its __main__ block not run)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("precision_search_edges36", ROOT / "examples" / "precision_search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- 1: the example never deletes a folder it did not write
def test_precision_example_refuses_a_foreign_workdir_and_keeps_its_files(tmp_path):
    """Old code: shutil.rmtree(workdir) on whatever folder --workdir named, then went on."""
    example = _example()
    mine = tmp_path / "my_results"
    mine.mkdir()
    (mine / "important.txt").write_text("three weeks of results")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=r"workdir: .*not a previous run of this example.*important\.txt"):
            example.search_and_export(mine, None, {}, None, overwrite=overwrite)  # refused before space/data are used
    assert (mine / "important.txt").read_text() == "three weeks of results"


def test_precision_example_replaces_a_previous_run_only_with_overwrite(tmp_path):
    """A folder holding only a previous run's files: refused naming --overwrite; with it, cleared (folder kept)."""
    example = _example()
    run = tmp_path / "run"
    (run / "models" / "trial-0001").mkdir(parents=True)
    space_class = "nas.hardware.precision_space.PrecisionMLPSpace"
    (run / "model.json").write_text(json.dumps({"format": "nas-model-spec", "space": {"class": space_class}}))
    (run / "journal.jsonl").write_text("{}\n")
    with pytest.raises(ConfigError, match=r"previous run of this example; pass --overwrite"):
        example.prepare_workdir(run)
    assert (run / "journal.jsonl").exists()
    assert example.prepare_workdir(run, overwrite=True) == run
    assert run.is_dir() and not any(run.iterdir())
    (run / "journal.jsonl").write_text("{}\n")  # a journal of some other search (no model.json of this space)
    with pytest.raises(ConfigError, match=r"not a previous run of this example \(no model\.json"):
        example.prepare_workdir(run, overwrite=True)
    assert (run / "journal.jsonl").exists()


# -- 2: a negative Hessian sensitivity does not reward quantization error
def test_allocate_takes_a_negative_sensitivity_as_zero_with_a_warning_naming_the_layer():
    """Old code: Omega = negative x error was minimised by the largest error (int2 under a budget that fits int8)."""
    gen = torch.Generator().manual_seed(0)
    weights = {"0": torch.randn(16, 8, generator=gen), "1": torch.randn(4, 16, generator=gen)}
    budget = 8 * sum(w.numel() for w in weights.values())
    with pytest.warns(UserWarning, match=r"sensitivity: negative for layer\(s\) '0'"):
        plan = allocate(weights, {"0": -0.5, "1": 1.0}, ["int2", "int4", "int8"], budget)
    assert plan.clamped == ("0",)
    assert plan.omega >= 0 and all(v["omega"] == 0 for v in plan.candidates["0"].values())
    assert plan.formats["1"] == "int8"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert allocate(weights, {"0": 0.5, "1": 1.0}, ["int2", "int8"], budget).clamped == ()


# -- 3, 4, 5: CoExploration
class _Table:
    """A stand-in NAS-Bench-Graph table: its name and a constant row."""

    def __init__(self, dataset: str) -> None:
        self.name = f"nas-bench-graph/{dataset}"

    def __call__(self, net):
        return {"valid_acc": 0.5, "test_acc": 0.5}


def test_coexploration_refuses_tables_of_other_data_sets_than_its_graphs():
    """Old code: PubMed hardware with Cora / CiteSeer accuracies was accepted silently."""
    co = CoExploration(graphs=(GRAPHS["pubmed"], GRAPHS["cora"]))
    wrong = (_Table("cora"), _Table("citeseer"))
    for call in (co.accuracy, co.evaluator, co.evaluators):
        with pytest.raises(ConfigError, match=r"tables\[0\]: 'nas-bench-graph/cora' .* graphs\[0\] 'pubmed'"):
            call(wrong)
    with pytest.raises(ConfigError, match=r"tables\[1\]: 'nas-bench-graph/citeseer'"):
        co.accuracy((_Table("pubmed"), _Table("citeseer")))
    arch = co.space().sample(np.random.default_rng(0))
    assert co.evaluator((_Table("pubmed"), _Table("cora")))(arch)["valid_acc"] == 0.5
    assert co.accuracy([lambda net: {"valid_acc": 1, "test_acc": 1}] * 2)(arch)["valid_acc"] == 1  # unnamed: as before


def test_coexploration_evaluator_checks_an_empty_design():
    """Old code: design={} meant "no design"; every trial then died with KeyError 'pe_split'."""
    co = CoExploration()
    with pytest.raises(ConfigError, match=r"design: a_template: missing"):
        co.evaluator((_Table("cora"), _Table("citeseer")), {})


@pytest.mark.parametrize("kw, field", [(dict(hidden=0), "hidden"), (dict(hidden=-3), "hidden"),
                                       (dict(bytes_per_element=0), "bytes_per_element"),
                                       (dict(bytes_per_element=1.5), "bytes_per_element")])
def test_coexploration_checks_hidden_and_bytes_per_element_at_construction(kw, field):
    """Old code: accepted; the first co.hardware(arch) blamed the internal Gemm.n / Gemm.bytes_per_element."""
    with pytest.raises(ConfigError, match=rf"^{field}: expected a positive int"):
        CoExploration(**kw)


# -- 6: PrecisionMLPConfig field types
@pytest.mark.parametrize("kw, field", [(dict(input_shape=("8", 8)), "input_shape"),
                                       (dict(input_shape=(8, 8.0)), "input_shape"),
                                       (dict(num_classes=2.5), "num_classes"), (dict(num_classes=True), "num_classes"),
                                       (dict(hidden=(True,)), "hidden"), (dict(hidden=(64.6,)), "hidden")])
def test_precision_mlp_config_refuses_values_that_are_not_ints(kw, field):
    """Old code: validated int(x) but kept x: in_features '88888888', widths of 1 and 65, TypeErrors at build."""
    with pytest.raises(ConfigError, match=rf"PrecisionMLPConfig\.{field}: expected"):
        PrecisionMLPConfig(**kw)
    assert PrecisionMLPConfig(input_shape=[8, 8], hidden=[32]).in_features == 64


# -- 7: MPCLatency on a module that takes features
def test_mpc_latency_says_what_input_it_feeds_a_module():
    """Old code: RuntimeError 'mat1 and mat2 must have the same dtype' from inside torch."""
    with pytest.raises(ConfigError, match=r"module: MPCLatency feeds a \[1, seq_len=8\] tensor of token ids.*mpc_ops"):
        MPCLatency(None, "lan", seq_len=8)(nn.Sequential(nn.Linear(8, 8), nn.ReLU()))
    tokens = nn.Sequential(nn.Embedding(4, 8), nn.Linear(8, 8), nn.ReLU())
    assert MPCLatency(None, "lan", seq_len=8)(tokens)["mpc_rounds"] > 0


# -- 8: workload helpers
def test_as_workloads_names_the_entry_with_an_unknown_or_missing_key():
    """Old code: bare TypeErrors from Gemm.__init__."""
    with pytest.raises(ConfigError, match=r"shapes\[1\]: unknown key\(s\) \['K'\]; missing key\(s\) \['k'\]"):
        as_workloads([(4, 4, 4), {"m": 4, "n": 4, "K": 4}])
    with pytest.raises(ConfigError, match=r"shapes\[0\]: missing key\(s\) \['k'\]"):
        as_workloads([{"m": 4, "n": 4}])
    assert as_workloads([{"m": 4, "n": 4, "k": 4, "count": 2}])[0].count == 2


def test_conv_gemm_refuses_empty_kernel_or_output():
    """Old code: an empty output priced m = 1, an empty kernel k = in_channels (no kernel positions)."""
    with pytest.raises(ConfigError, match=r"^output: expected a non-empty"):
        conv_gemm(16, 32, (3, 3), ())
    with pytest.raises(ConfigError, match=r"^kernel: expected a non-empty"):
        conv_gemm(16, 32, (), (8, 8))
    assert conv_gemm(16, 32, (3, 3), (8, 8)).k == 144
