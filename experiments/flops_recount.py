"""Recount recorded FLOPs with the current `nas.counts`, without retraining: what the `--recount-flops` option of
transformer_mr.py, build_transformer_table.py, elastic_transformer_quant.py, bossnas.py, gnn_planetoid.py and
zero_cost.py shares. FLOPs depend only on the architecture and the input shape, so each script rebuilds its recorded
architectures untrained and counts them the way it does when it runs; before session 22 (2026-12-06) `nas.counts`
counted 0 for CPU attention, MultiheadAttention's fused path, scatter / index_add aggregations and RNNs."""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas import jsonio
from reporting import git_commit

RECOUNTED_ON = "2026-12-06"
HELP = ("train nothing: rebuild every architecture recorded in this script's results untrained, count its FLOPs "
        "again with the current nas.counts (attention and message passing counted since 2026-12-06), write the "
        "figures back and reprint the tables")


def add_option(ap: argparse.ArgumentParser) -> None:
    """The `--recount-flops` flag, worded the same in every script."""
    ap.add_argument("--recount-flops", action="store_true", help=HELP)


def _key(arch: Any) -> str:
    return json.dumps(arch.to_dict() if hasattr(arch, "to_dict") else arch, sort_keys=True)


class Recount:
    """FLOPs of recorded architectures counted again by `count` (arch -> {"params", "flops", ...}), once per
    architecture; every recorded figure it replaces is kept (old, new) for the summary."""

    def __init__(self, script: str, count: Callable[[Any], Mapping[str, float]],
                 argv: Sequence[str] | None = None) -> None:
        self.script, self.count = script, count
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.cache: dict[str, Mapping[str, float]] = {}
        self.changes: list[tuple[float, float]] = []

    def flops(self, arch: Any, old: float, params: float | None = None) -> float:
        """The FLOPs of `arch` now (recorded: `old`). A recorded `params` that differs from the rebuilt network's
        means the architecture was not rebuilt as it was trained: an error, never a silent new figure."""
        key = _key(arch)
        if key not in self.cache:
            self.cache[key] = self.count(arch)
        counts = self.cache[key]
        if params is not None and float(counts["params"]) != float(params):
            raise RuntimeError(f"{self.script}: the rebuilt architecture has {counts['params']:.0f} parameters, the "
                               f"record {float(params):.0f}; it is not the network that was trained: {key}")
        self.changes.append((float(old), float(counts["flops"])))
        return float(counts["flops"])

    def summary(self) -> dict[str, Any]:
        """Provenance and size of the recount, for the results file (key `flops_recount`)."""
        ratios = [new / old for old, new in self.changes if old > 0]
        return {"date": RECOUNTED_ON, "command": " ".join([f"experiments/{self.script}", *self.argv]),
                "git_commit": git_commit(), "counter": "nas.counts (attention, MultiheadAttention's fused path, "
                "scatter / index_add aggregations and RNNs counted since session 22)",
                "figures": len(self.changes), "changed": sum(old != new for old, new in self.changes),
                "architectures": len(self.cache),
                "new_over_old": {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios)}
                if ratios else None}

    def describe(self) -> str:
        """One line: how many figures changed and by what factor."""
        s = self.summary()
        r = s["new_over_old"]
        spread = f"; new / old {r['min']:.3f} (min), {r['median']:.3f} (median), {r['max']:.3f} (max)" if r else ""
        return (f"FLOPs recounted: {s['changed']} of {s['figures']} recorded figures changed "
                f"({s['architectures']} architectures){spread}")


def read_json(path: Path) -> dict[str, Any]:
    """A results file to recount; a missing one is an error that names it."""
    if not path.is_file():
        raise SystemExit(f"--recount-flops: no recorded results at {path}")
    return json.loads(path.read_text())


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Write a recounted results file as its script writes it (indent 1; a final newline kept if it had one)."""
    end = "\n" if path.is_file() and path.read_text().endswith("\n") else ""
    jsonio.write_bytes(path, (json.dumps(doc, indent=1) + end).encode())
    print(f"wrote {path}")


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The columns and rows (strings) of a recorded CSV table."""
    if not path.is_file():
        raise SystemExit(f"--recount-flops: no recorded table at {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    """Rewrite a CSV table atomically, formatted as `csv.DictWriter` appended it (unchanged cells stay byte-identical)."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    jsonio.write_bytes(path, buf.getvalue().encode())
    print(f"wrote {path}")
