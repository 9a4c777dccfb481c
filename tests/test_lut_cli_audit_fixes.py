"""Regression tests for the audit of `nas hardware build-lut / measure / fit-latency` and lookup tables: settings
checked before anything is written, option names in errors, device profiles checked, default paths per setting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nas.cli import app
from nas.cli.hardware import default_table_path
from nas.errors import ConfigError
from nas.hardware import LatencyTable, adapter_for, build_table
from nas.spaces.cell import NasBench201Space

TINY = {"channels": 4, "cells_per_stage": 1, "stages": 2}
FAST = ["--warmup", "0", "--repeats", "1", "--rounds", "1"]


def lut(*args: str, options: dict | None = None) -> list[str]:
    return ["hardware", "build-lut", "nb201", "--options", json.dumps(options or TINY), *args]


def invoke(args: list[str]):
    return CliRunner().invoke(app, args, env={"COLUMNS": "250"})


def one_error_line(result, *needles: str) -> None:
    """Exit 2 with a single `error:` line that holds every needle, and no traceback."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------------------- 4: no poisoned header
@pytest.mark.parametrize("bad", [["--rounds", "0"], ["--threads", "0"], ["--warmup", "-1"], ["--repeats", "0"]])
def test_a_refused_build_lut_writes_nothing_and_a_valid_rerun_succeeds(tmp_path, bad):
    out = tmp_path / "t.jsonl"
    settings = dict(zip(FAST[::2], FAST[1::2])) | dict(zip(bad[::2], bad[1::2]))
    refused = invoke(lut("--out", str(out), "--limit", "2", *[x for kv in settings.items() for x in kv]))
    one_error_line(refused, bad[0])
    assert not out.exists()
    ok = invoke(lut("--out", str(out), "--limit", "2", *FAST))
    assert ok.exit_code == 0 and "2 layers measured" in ok.output, ok.output


def test_build_table_checks_settings_before_touching_the_file(tmp_path):
    adapter, path = adapter_for(NasBench201Space(**TINY)), tmp_path / "t.jsonl"
    with pytest.raises(ConfigError, match="rounds: expected an int >= 1, got 0"):
        build_table(adapter, path, rounds=0, limit=1)
    with pytest.raises(ConfigError, match="device 'cuda:99'"):
        build_table(adapter, path, device="cuda:99", limit=1)
    assert not path.exists()


# ------------------------------------------------------------------------------------------- 5: --device typo
@pytest.mark.parametrize("device", ["cpuu", "cuda:99"])
def test_build_lut_device_typo_is_one_line_naming_device(tmp_path, device):
    out = tmp_path / "t.jsonl"
    one_error_line(invoke(lut("--out", str(out), "--device", device, "--limit", "1", *FAST)), "--device", device)
    assert not out.exists()


# ------------------------------------------------------------------------------------------- 6: nonsense counts
@pytest.mark.parametrize("bad", [["--batch-size", "0"], ["--limit", "-1"]])
def test_build_lut_refuses_nonsense_counts(tmp_path, bad):
    out = tmp_path / "t.jsonl"
    one_error_line(invoke(lut("--out", str(out), *bad, *FAST)), bad[0])
    assert not out.exists()


@pytest.mark.parametrize("random", ["-2", "0"])
def test_measure_refuses_a_nonpositive_random_count(random):
    one_error_line(invoke(["hardware", "measure", "nb201", "--options", json.dumps(TINY), "--random", random]),
                   "--random")


# ------------------------------------------------------------------------------------------- 7: --profile checked
def test_build_lut_refuses_an_unknown_profile_and_records_a_known_one(tmp_path):
    out = tmp_path / "t.jsonl"
    one_error_line(invoke(lut("--out", str(out), "--profile", "local_cpuu", "--limit", "1", *FAST)),
                   "--profile", "local_cpuu", "local_cpu")
    assert not out.exists()
    ok = invoke(lut("--out", str(out), "--profile", "local_cpu", "--limit", "1", *FAST))
    assert ok.exit_code == 0, ok.output
    assert LatencyTable.load(out).device == "local_cpu"


def test_build_table_refuses_another_devices_profile(tmp_path):
    """hw22 #6: timings taken here are never recorded as another device's (x86 layers labelled "pixel4_a76")."""
    adapter, path = adapter_for(NasBench201Space(**TINY)), tmp_path / "px.jsonl"
    with pytest.raises(ConfigError, match=r"'pixel4_a76' is not this machine's cpu \(local_cpu\)"):
        build_table(adapter, path, profile="pixel4_a76", limit=1, warmup=0, repeats=1, rounds=1)
    assert not path.exists()
    one_error_line(invoke(lut("--out", str(path), "--profile", "pixel4_a76", "--limit", "1", *FAST)),
                   "pixel4_a76", "not this machine's")
    assert not path.exists()


def test_fit_latency_refuses_an_unknown_profile(tmp_path):
    space = NasBench201Space()
    rng = np.random.default_rng(0)
    samples = tmp_path / "s.jsonl"
    archs = [dict(space.sample(rng)) for _ in range(40)]
    ms = [1.0 + sum(len(str(op)) for op in a.values()) / 10 for a in archs]  # additive per-op cost: learnable
    samples.write_text("".join(json.dumps({"arch": a, "latency_ms": t}) + "\n" for a, t in zip(archs, ms)))
    one_error_line(invoke(["hardware", "fit-latency", "nb201", str(samples), "--no-counts", "--profile", "pixel4"]),
                   "--profile", "pixel4", "pixel4_a76")


# ------------------------------------------------------------------------------------------- 11: default paths
def test_default_table_path_encodes_non_default_timing_settings():
    assert default_table_path("ofa", "cpu", 1, 1) == Path("runs/luts/ofa-cpu-b1-t1.jsonl")
    assert default_table_path("ofa", "cpu", 1, 1, 2, 3, 20) == Path("runs/luts/ofa-cpu-b1-t1.jsonl")
    assert default_table_path("ofa", "cuda:1", 8, 1, 10, 50, 1) == Path("runs/luts/ofa-cuda1-b8-t1-w10r50x1.jsonl")


def test_two_builds_with_other_timing_settings_use_two_default_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = invoke(lut("--limit", "1", "--warmup", "0", "--repeats", "1"))
    assert first.exit_code == 0, first.output
    second = invoke(lut("--limit", "1", "--warmup", "1", "--repeats", "2", "--rounds", "1"))
    assert second.exit_code == 0, second.output
    assert sorted(p.name for p in (tmp_path / "runs" / "luts").iterdir()) == [
        "nb201-cpu-b1-t1-w0r1x20.jsonl", "nb201-cpu-b1-t1-w1r2x1.jsonl"]


# ------------------------------------------------------------------------------------------- 12a: measure's repeats
def test_measure_help_and_errors_name_only_its_own_options():
    helped = invoke(["hardware", "measure", "--help"])
    assert helped.exit_code == 0 and "--repeats" in helped.output and "--rounds" not in helped.output
    refused = invoke(["hardware", "measure", "nb201", "--options", json.dumps(TINY), "--random", "1",
                      "--repeats", "0"])
    one_error_line(refused, "--repeats")
    assert "rounds" not in refused.output


# ------------------------------------------------------------------------------------------- 12b: differing fields
def test_a_table_for_another_space_names_the_differing_field(tmp_path):
    out = tmp_path / "t.jsonl"
    assert invoke(lut("--out", str(out), "--limit", "1", *FAST)).exit_code == 0
    other = dict(TINY, channels=8)
    table = LatencyTable.load(out)
    with pytest.raises(ConfigError, match=r"was built for another space: channels: table 4, space 8$"):
        table.check_adapter(adapter_for(NasBench201Space(**other)))
    measured = invoke(["hardware", "measure", "nb201", "--options", json.dumps(other), "--random", "1",
                       "--repeats", "1", "--warmup", "0", "--table", str(out)])
    one_error_line(measured, "channels: table 4, space 8")
    assert "{" not in measured.output
    resumed = invoke(lut("--out", str(out), "--limit", "1", *FAST, options=other))
    one_error_line(resumed, "channels: table 4, space 8")
