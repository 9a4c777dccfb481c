"""Defects an outside audit of the built-in spaces found, each pinned: Optuna samplers on recorded tables, a
changed network skeleton resumed as the same search, DARTS graphs that could not tell the cells apart, and
constructor arguments of the wrong type."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import nas
from nas.errors import ConfigError, InvalidArchitectureError, JournalError, SpaceDefinitionError
from nas.spaces.cell import DartsSpace, NasBench201Space
from nas.spaces.gnn import GNNSpace
from nas.spaces.transformer import ElasticTransformerConfig, FlexiBertConfig
from nas.tabular import gnn_planetoid_table


@pytest.mark.parametrize("strategy", ["tpe", "qmc", "nsga2-optuna"])
def test_optuna_samplers_search_a_recorded_table_to_their_budget(strategy):
    """They proposed architectures the table does not hold and the search aborted; now each ask is the nearest
    recorded architecture not asked yet, and the sampler is told about that one."""
    bench = gnn_planetoid_table("cora")
    r = nas.search(bench.space, bench, {"valid_acc": "max"}, strategy=strategy, budget=30, seed=0)
    assert r.used == 30 and len({t.arch_id for t in r.trials}) == 30


def test_a_resumed_search_with_another_network_skeleton_is_refused(tmp_path):
    def evaluate(arch):
        return {"params": 1.0}

    nas.search(NasBench201Space(channels=4), evaluate, {"params": "min"}, strategy="random", budget=3, seed=0,
               workdir=tmp_path)
    with pytest.raises(JournalError, match=r"its space settings differ at channels \(the journal has 4, this run 8\)"):
        nas.search(NasBench201Space(channels=8), evaluate, {"params": "min"}, strategy="random", budget=6, seed=0,
                   workdir=tmp_path)
    # the fingerprint still covers the decisions only, so journals written before settings were recorded resume
    assert NasBench201Space(channels=4).fingerprint() == NasBench201Space(channels=8).fingerprint()
    again = nas.search(NasBench201Space(channels=4), evaluate, {"params": "min"}, strategy="random", budget=6,
                       seed=0, workdir=tmp_path)
    assert again.used == 6


def test_darts_graphs_tell_the_normal_cell_from_the_reduction_cell():
    space = DartsSpace(channels=4, cells_per_stage=1, stages=2)
    a = space.sample(np.random.default_rng(0))
    b = space.validate({"normal": a["reduce"], "reduce": a["normal"]})
    assert a != b and space.count(a)["params"] != space.count(b)["params"]

    def wl(arch):
        return nx.weisfeiler_lehman_graph_hash(space.to_graph(arch), node_attr="label", edge_attr="op")

    assert wl(a) != wl(b)
    assert space.from_graph(space.to_graph(a)) == a


def test_from_genotype_names_a_missing_cell_and_a_bad_pair():
    space = DartsSpace(channels=4)
    genotype = space.to_genotype(space.default())
    with pytest.raises(InvalidArchitectureError, match="reduce: missing from the genotype"):
        space.from_genotype({"normal": genotype["normal"]})
    with pytest.raises(InvalidArchitectureError, match=r"normal\[0\]: expected an \(op name, input index\) pair"):
        space.from_genotype({"normal": [("skip_connect", "0"), *genotype["normal"][1:]], "reduce": genotype["reduce"]})


@pytest.mark.parametrize("make, error, message", [
    (lambda: FlexiBertConfig(hidden=64), ConfigError, "hidden: expected a list of options, got 64"),
    (lambda: FlexiBertConfig(dropout="0.1"), ConfigError, "dropout: expected a probability in [0, 1), got '0.1'"),
    (lambda: ElasticTransformerConfig(hidden=(64, 128)), ConfigError, "hidden: expected one value, got the list"),
    (lambda: GNNSpace(8, 3, layers=2), SpaceDefinitionError, "layers: expected a list of options, got 2"),
    (lambda: GNNSpace(8, 3, dropouts=0.5), SpaceDefinitionError, "dropouts: expected a list of options, got 0.5"),
    (lambda: DartsSpace(stem_multiplier=0), SpaceDefinitionError, "stem_multiplier: expected a positive int, got 0"),
    (lambda: DartsSpace(stem_multiplier=1.5), SpaceDefinitionError, "stem_multiplier: expected a positive int"),
])
def test_constructor_arguments_of_the_wrong_type_name_the_field(make, error, message):
    """These were bare TypeErrors, or accepted and failed later inside torch."""
    with pytest.raises(error) as info:
        make()
    assert message in str(info.value)
