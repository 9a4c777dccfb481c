"""experiments/ofa_claims.py (issue 25, part 4) in its quick mode, and the progressive-shrinking phase hook
it measures the largest subnet with (and its option to train the largest in every step): the recorded figures are real accuracies of the right subnets, the
children span the FLOPs range, recalibration changes BN statistics, the summary follows from the seeds."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.spaces.ofa import OFAConfig, OFASpace
from nas.spaces.training import ProgressiveShrinking, accuracy, ofa_phases

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import ofa_claims  # noqa: E402


def test_after_phase_sees_each_phase_and_does_not_change_training(one_thread) -> None:
    space = OFASpace(OFAConfig(stage_channels=(8, 8, 8), head_channels=16, depths=(1, 2), kernels=(3, 5)))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 40, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    seen: list[tuple[str, float]] = []

    def hook(phase, supernet) -> None:
        seen.append((phase.name, accuracy(supernet.subnet(space.largest()).eval(), x, y)))

    nets = []
    for after_phase in (hook, None):
        torch.manual_seed(0)
        net = space.supernet()
        ProgressiveShrinking(ofa_phases(1, 1, 1, 1), batch_size=32, after_phase=after_phase).fit(net, x, y)
        nets.append(net)
    assert [name for name, _ in seen] == ["full", "kernel", "depth", "width"]
    # the last call saw the trained supernet: its figure is the final largest subnet's accuracy
    assert seen[-1][1] == accuracy(nets[0].subnet(space.largest()).eval(), x, y)
    # measuring inside the hook consumed no randomness and changed no weight: identical training without it
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()):
        assert torch.equal(a, b)


def test_include_largest_trains_the_largest_in_every_later_step(one_thread) -> None:
    space = OFASpace(OFAConfig(stage_channels=(8, 8, 8), head_channels=16, depths=(1, 2), kernels=(3, 5)))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 40, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    for include_largest in (False, True):
        torch.manual_seed(0)
        net = space.supernet()
        calls: list[tuple[bool, bool]] = []  # (grad enabled, architecture is the largest but for resolution)
        forward = net.forward

        def spy(xb, arch, forward=forward):
            calls.append((torch.is_grad_enabled(), arch["stages"] == space.largest()["stages"]))
            return forward(xb, arch)

        net.forward = spy
        ProgressiveShrinking(ofa_phases(1, 1, 1, 1), batch_size=32, include_largest=include_largest,
                             kd_ratio=0.0).fit(net, x, y)
        per_step = 3 if include_largest else 2
        steps = [calls[i:i + per_step] for i in range(2, len(calls), per_step)]
        assert len(calls) == 2 + 3 * 2 * per_step  # full: 2 steps of 1 subnet; 3 later phases x 2 steps
        # with the option, each later step's first trained subnet is the largest; without it, only by chance
        assert all(step[0] == (True, True) for step in steps) == include_largest


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Iterator[dict]:
    """The --quick run, on one torch thread (restored after the module's tests)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ofa_claims") / "quick.json"
    report = ofa_claims.main(["--quick", "--out", str(out)])
    assert json.loads(out.read_text())["settings"] == report["settings"]
    yield report
    torch.set_num_threads(before)


def test_quick_run_records_real_figures(quick: dict) -> None:
    run = quick["seeds"]["0"]
    space = OFASpace()
    ps = run["progressive"]
    assert list(ps["largest_by_phase"]) == ["full", "kernel", "depth", "width"]
    assert ps["before"] == ps["largest_by_phase"]["full"] and ps["after"] == ps["largest_by_phase"]["width"]
    for figures in ps["largest_by_phase"].values():  # accuracies on the 1,000-signal test set: k / 1000
        for k, v in figures.items():  # (the probes' figure: a mean over 5 subnets, k / 5000)
            n = 5000 if k.startswith("probes_") else 1000
            assert 0.0 <= v <= 1.0 and abs(v * n - round(v * n)) < 1e-6
    for key in ("progressive", "progressive_with_largest"):  # both shrinking variants, every phase measured
        assert run[key]["config"]["include_largest"] == (key == "progressive_with_largest")
        assert {"test_recal", "smallest_test_recal", "probes_test_recal"} <= set(run[key]["after"])
    # the headline sandwich starts from BigNAS's initialisation; the control from the default one, same children
    assert run["sandwich"]["zero_init_residual"] and not run["sandwich_default_init"]["zero_init_residual"]
    assert [c["id"] for c in run["sandwich"]["children"]] == [c["id"] for c in run["sandwich_default_init"]["children"]]
    children = run["sandwich"]["children"]
    flops = [c["flops"] for c in children]
    assert len(children) == 10 and flops == sorted(flops) and len(set(flops)) >= 8
    # evenly spaced in FLOPs: no gap more than twice the even step; the quantile control bunches in the middle
    step = (flops[-1] - flops[0]) / 9
    assert max(np.diff(flops)) < 2 * step
    q_flops = [c["flops"] for c in run["sandwich"]["quantile_children"]]
    assert len(q_flops) == 10 and max(np.diff(q_flops)) > 2 * step
    assert flops[0] == space.count(space.smallest())["flops"] and flops[-1] == space.count(space.largest())["flops"]
    assert children[0]["id"] == space.smallest().id and children[-1]["id"] == space.largest().id
    # recalibration re-estimates every child's BN statistics, and that changes what some child predicts
    assert all(c["bn_running_mean_shift"] > 0 for c in children)
    assert any(c["test_recal"] != c["test_no_recal"] for c in children)
    alone = run["standalone_smallest"]
    assert alone["recipe"]["epochs"] == quick["settings"]["supernet_epochs"] == run["sandwich"]["config"]["epochs"]


def test_summary_follows_from_the_seed(quick: dict) -> None:
    run, s = quick["seeds"]["0"], quick["summary"]["test"]
    ps = s["progressive_shrinking"]
    drop = 100 * (run["progressive"]["before"]["test_recal"] - run["progressive"]["after"]["test_recal"])
    assert ps["drop_points"]["mean"] == pytest.approx(drop)
    assert ps["holds"] == (drop <= 2.0)
    children = run["sandwich"]["children"]
    gap = 100 * (run["standalone_smallest"]["test"] - children[0]["test_recal"])
    assert s["smallest_child"]["gap_points"]["mean"] == pytest.approx(gap)
    ctl = 100 * (run["standalone_smallest"]["test"] - run["sandwich_default_init"]["children"][0]["test_recal"])
    assert s["smallest_child"]["default_init_gap_points"]["mean"] == pytest.approx(ctl)
    with_largest = run["progressive_with_largest"]
    drop = 100 * (with_largest["before"]["test_recal"] - with_largest["after"]["test_recal"])
    assert s["progressive_shrinking_with_largest"]["drop_points"]["mean"] == pytest.approx(drop)
    gain = np.mean([100 * (c["test_recal"] - c["test_no_recal"]) for c in children])
    assert s["bn_recalibration"]["gain_points"]["mean"] == pytest.approx(gain)
    assert s["sandwich_spearman"]["recal"]["mean"] == pytest.approx(run["sandwich"]["spearman_flops"]["test_recal"])
    assert "PS: largest subnet drop" in ofa_claims.table(s)


def test_rerun_resumes_finished_seeds(quick: dict, tmp_path: Path) -> None:
    out = tmp_path / "resume.json"
    out.write_text(json.dumps({"settings": quick["settings"], "seeds": quick["seeds"]}))
    again = ofa_claims.main(["--quick", "--out", str(out)])  # nothing left to train: only the summary
    assert again["seeds"] == quick["seeds"]
    assert json.dumps(again["summary"]) == json.dumps(quick["summary"])  # (one seed: nan interval bounds)
