"""Built-in spaces at their edges, found by trying them from outside: a standalone OFA subnet of an invalid
architecture, and a per-step shared decision that another field depends on."""

from __future__ import annotations

import pytest
import torch

from nas.errors import ConfigError, InvalidArchitectureError
from nas.spaces.ofa import OFAConfig, OFASpace, OFASubnet
from nas.spaces.training import Phase, ProgressiveShrinking, SandwichRule
from nas.spaces.transformer import ElasticTransformerConfig, ElasticTransformerSpace

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("change, field", [
    (lambda a: a["stages"][0].update(depth=1), r"stages\[0\]\.blocks: has \d blocks but depth=1"),
    (lambda a: a["stages"][0]["blocks"][0].update(kernel=4), r"stages\[0\]\.blocks\[0\]\.kernel: 4 is not one of"),
    (lambda a: a.update(resolution=33), r"resolution: 33 is not one of"),
    (lambda a: a["stages"].pop(), r"stages: has 2 blocks but the fixed count 3"),
])
def test_a_standalone_ofa_subnet_refuses_an_architecture_of_another_space_naming_the_field(change, field):
    """`OFASubnet(arch, config)` built a network for these (a depth its blocks ignored, an even kernel, a
    resolution or a stage count the config does not have) where every other path refuses them."""
    arch = OFASpace(OFAConfig()).largest().to_dict()
    assert OFASubnet(arch)(torch.zeros(2, 1, 40)).shape == (2, 10)
    change(arch)
    with pytest.raises(InvalidArchitectureError, match=field):
        OFASubnet(arch)


def test_a_per_step_decision_that_sets_another_fields_block_count_is_refused_before_training():
    """It was accepted, then the first step whose subnets differ in depth failed with 'layers: has 1 blocks but
    depth=3 requires 3', not naming per_step."""
    space = ElasticTransformerSpace(ElasticTransformerConfig(vocab_size=50, max_len=8, hidden=16, head_dim=4))
    x, y = torch.randint(1, 50, (32, 8)), torch.randint(0, 2, (32,))
    for schedule in (SandwichRule(epochs=1, batch_size=32, per_step=("depth",)),
                     ProgressiveShrinking([Phase("depth", {"depth"}, 1, 1e-3, False)], batch_size=32,
                                          per_step=("depth",))):
        with pytest.raises(ConfigError, match=r"per_step decision 'depth' decides how many blocks 'layers' has"):
            schedule.fit(space.supernet(), x, y)
