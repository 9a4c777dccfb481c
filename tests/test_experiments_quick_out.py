"""A `--quick` smoke run of an experiment script must not write over the recorded full results.

The scripts are read, not run (a full or even a quick run takes minutes): their argparse calls and the code
after them are inspected with `ast`, so the check holds for every script that has or gains a `--quick` flag.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _add_argument(tree: ast.AST, flag: str) -> list[ast.Call]:
    """The `*.add_argument(flag, ...)` calls of a script."""
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument" and node.args
            and isinstance(node.args[0], ast.Constant) and node.args[0].value == flag]


def _mentions_quick(node: ast.AST) -> bool:
    """Whether an expression reads the quick flag (`args.quick`, a local `quick`, ...)."""
    return any((isinstance(n, ast.Attribute) and "quick" in n.attr) or (isinstance(n, ast.Name) and "quick" in n.id)
               for n in ast.walk(node))


def _rewrites_out_for_quick(tree: ast.AST) -> bool:
    """Whether some `<x>.out = ...` depends on the quick flag, in its value or in an enclosing `if`."""
    def visit(node: ast.AST, under_quick: bool) -> bool:
        if isinstance(node, ast.If):
            inside = under_quick or _mentions_quick(node.test)
            return (any(visit(child, inside) for child in node.body)
                    or any(visit(child, under_quick) for child in node.orelse))
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "out" for t in node.targets):
            if under_quick or _mentions_quick(node.value):
                return True
        return any(visit(child, under_quick) for child in ast.iter_child_nodes(node))
    return visit(tree, False)


def _quick_names(tree: ast.Module) -> list[str]:
    """String literals naming a quick output (`..._quick...`), docstrings and help texts left out."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skipped.add(id(first.value))
        if isinstance(node, ast.keyword) and node.arg in ("help", "description", "epilog"):
            skipped.update(id(n) for n in ast.walk(node.value))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and "_quick" in n.value and id(n) not in skipped]


def _quick_scripts() -> list[Path]:
    return sorted(p for p in EXPERIMENTS.glob("*.py") if _add_argument(ast.parse(p.read_text()), "--quick"))


def quick_out_problems(source: str) -> list[str]:
    """What makes a script's `--quick` default output the same as its full run's (empty when they differ)."""
    tree = ast.parse(source)
    problems = []
    for call in _add_argument(tree, "--out"):
        default = next((k.value for k in call.keywords if k.arg == "default"), None)
        fixed = default is not None and not (isinstance(default, ast.Constant) and default.value is None)
        if fixed and not _rewrites_out_for_quick(tree):
            problems.append(f"--out defaults to {ast.unparse(default)} whether or not --quick is given")
    if not _quick_names(tree):
        problems.append("no '*_quick' output name: --quick writes where the full run does")
    return problems


def test_the_scan_finds_the_quick_scripts() -> None:
    names = {p.stem for p in _quick_scripts()}
    assert {"core_benchmark", "darts_family", "eas_digits", "darts_costs", "darts_collapse", "ray_overhead"} <= names
    assert "study_overhead" not in names  # no --quick flag


def test_the_check_flags_a_fixed_out_default() -> None:
    bad = ('import argparse\np = argparse.ArgumentParser()\np.add_argument("--quick", action="store_true")\n'
           'p.add_argument("--out", default="results/x.json")\nargs = p.parse_args()\n')
    assert len(quick_out_problems(bad)) == 2
    good = bad.replace('default="results/x.json"', "default=None") + (
        'args.out = args.out or ("results/x_quick.json" if args.quick else "results/x.json")\n')
    assert quick_out_problems(good) == []


@pytest.mark.parametrize("script", _quick_scripts(), ids=lambda p: p.stem)
def test_quick_default_out_differs_from_full(script: Path) -> None:
    assert quick_out_problems(script.read_text()) == [], script.name


def test_eas_digits_records_the_options_it_runs_with() -> None:
    """The settings' `options` follow --quick / --episodes (they held EASOptions() defaults: episodes 10 beside 3)."""
    from argparse import Namespace

    from experiments.eas_digits import eas_options

    options = eas_options(Namespace(episodes=3, steps=2, seed_epochs=3, child_epochs=1)).to_dict()
    assert (options["episodes"], options["seed_epochs"], options["child_epochs"]) == (3, 3, 1)
