"""BOSHNAS-style `bayesian` vs `random` (and `evolution`) on the recorded FlexiBERT Movie Review table (issue 25 part 2).

Per budget and seed s: `nas.search(bench.space, bench, {"valid_acc": "max"}, strategy=..., budget=..., seed=s,
executor=SimulatedClockExecutor(duration="train_seconds"))` over `nas.tabular.transformer_mr_table()` (metrics:
the mean over the table's two training seeds). A search's pick is its best validation accuracy; its test
accuracy is reported, beside the random-sampling average (the mean test accuracy of what random search
evaluated), the table's facts (size, range, seed noise, best heterogeneous vs best homogeneous architecture:
`build_transformer_table.table_facts`) and TF-IDF + LR's test accuracy on the same split (77.20 %,
experiments/transformer_recipe.py). Paired differences over the same seeds answer "bayesian beats random
after N evaluations". Budgets above half the table are skipped (a search that sees most of the table
compares nothing). Strategy settings are the defaults, except evolution's population (4, as in
gnn_table_search.py: the default 50 would be random sampling at these budgets). `--recipe short` runs the same on
the short-recipe table (movie_review_short.csv: the plain recipe cut to 4 epochs, where architectures differ
beyond seed noise); TF-IDF + LR is not a baseline for its 4-epoch accuracies and is left out there. `--space plain`
replays the same table over `plain_space()`, the space written field by field as a user would (a plain `Space`
with `Repeat` and `Conditional`, its fields and options in another order), instead of the built-in
`FlexiBertSpace`: the figure must not lean on the built-in class.

    .venv/bin/python experiments/transformer_table_search.py                  # 30 seeds, budgets 10 25 50
    .venv/bin/python experiments/transformer_table_search.py --recipe short   # the same on the short-recipe table
    .venv/bin/python experiments/transformer_table_search.py --recipe short --space plain   # on a user's Space
    .venv/bin/python experiments/transformer_table_search.py --quick          # 3 seeds, budget 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import nas
from build_transformer_table import RECIPES, results_suffix, table_facts  # noqa: E402  (experiments/ is on sys.path)
from gnn_table_search import fmt_diff, paired  # noqa: E402
from nas.spaces import Choice, Conditional, Repeat, Space
from nas.tabular import TabularBenchmark, recorded_table, transformer_mr_table, transformer_table_dir
from reporting import git_commit, protocol_report, protocol_table, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("random", "bayesian", "evolution")
OPTIONS: dict[str, dict[str, Any]] = {"evolution": {"population_size": 4}}
TFIDF_LR_TEST = 0.7720  # experiments/results/transformer_recipe.json, row tfidf_lr (deterministic)


def plain_space() -> Space:
    """The table's space as a user writes it, field by field: a plain `Space` (no built-in class, no graph form),
    its fields and options in another order than `FlexiBertSpace`'s, so its one-hot layout differs too."""
    return Space(
        depth=Choice([2, 3]),
        layers=Repeat("depth",
                      ffn_depth=Choice([1, 2]),
                      ffn=Repeat("ffn_depth", dim=Choice([64, 128])),
                      op=Choice(["conv", "attention", "linear", "fourier"]),
                      kernel=Conditional("op", ["conv"], Choice([3, 7])),
                      heads=Conditional("op", ["attention"], Choice([2, 4])),
                      hidden=Choice([32, 64])))


def table(recipe: str, root: Path | None, space: str) -> TabularBenchmark:
    """The recorded table of `recipe`, over the built-in `FlexiBertSpace` ("builtin") or `plain_space()` ("plain")."""
    if space == "builtin":
        return transformer_mr_table(root, recipe=recipe)
    file = (root or transformer_table_dir()) / RECIPES[recipe][1]
    return recorded_table(file, plain_space(), f"transformer-mr/{file.stem} (plain Space)")


def run_one(bench: TabularBenchmark, strategy: str, budget: int, seed: int) -> dict[str, Any]:
    """One search; its pick (best mean validation accuracy) and what it evaluated."""
    result = nas.search(bench.space, bench, {"valid_acc": "max"}, strategy=strategy, budget=budget, seed=seed,
                        strategy_options=OPTIONS.get(strategy),
                        executor=nas.SimulatedClockExecutor(duration="train_seconds"))
    best = result.best("valid_acc")
    assert best is not None
    return {"seed": seed, "pick_id": best.arch_id, "valid_acc": best.metrics["valid_acc"],
            "test_acc": best.metrics["test_acc"], "params": best.metrics["params"],
            "homogeneous": bool(best.metrics["homogeneous"]),
            "regret_valid": bench.optimum("valid_acc") - best.metrics["valid_acc"],
            "sampled_test_mean": statistics.fmean(t.metrics["test_acc"] for t in result.completed)}


def compare(bench: TabularBenchmark, budget: int, seeds: Sequence[int]) -> dict[str, Any]:
    """Every strategy over `seeds` at `budget`: protocol report and paired differences against random."""
    runs = {s: [run_one(bench, s, budget, seed) for seed in seeds] for s in STRATEGIES}
    values = {"random": [r["sampled_test_mean"] for r in runs["random"]],
              **{f"{s} pick": [r["test_acc"] for r in runs[s]] for s in STRATEGIES}}
    report = protocol_report(values, direction="max", baseline="random",
                             label=f"transformer table, budget {budget}: test accuracy")
    diffs = {f"{s} - random": {m: paired([r[m] for r in runs[s]], [r[m] for r in runs["random"]])
                               for m in ("test_acc", "valid_acc")} for s in STRATEGIES[1:]}
    return {"budget": budget, "runs": runs, "protocol": report.to_dict(), "protocol_table": protocol_table(report),
            "paired": diffs, "summary": {s: {m: statistics.fmean(r[m] for r in runs[s])
                                             for m in ("test_acc", "valid_acc", "regret_valid")} for s in STRATEGIES}}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=30, help="seeds 0..N-1")
    ap.add_argument("--budgets", nargs="+", type=int, default=[10, 25, 50])
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="bow",
                    help="which recorded table: bow (movie_review.csv) or short (movie_review_short.csv)")
    ap.add_argument("--space", choices=["builtin", "plain"], default="builtin",
                    help="the table's space: the built-in FlexiBertSpace or plain_space(), a user's field-by-field Space")
    ap.add_argument("--root", type=Path, default=None, help="folder of the table (default: the committed tables)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 seeds, budget 5")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.budgets = 3, [5]
    suffix = results_suffix(args.recipe) + ("_plain" if args.space == "plain" else "") + ("_quick" if args.quick else "")
    out = args.out or ROOT / "experiments" / "results" / f"transformer_table_search{suffix}.json"
    torch.set_num_threads(1)
    started = time.time()
    bench = table(args.recipe, args.root, args.space)
    facts = table_facts((args.root or transformer_table_dir()) / RECIPES[args.recipe][1])
    budgets = [b for b in args.budgets if 2 * b <= len(bench)]
    print(f"table: {len(bench)} architectures ({facts['homogeneous']} homogeneous), valid "
          f"{100 * facts['valid_range'][0]:.1f}-{100 * facts['valid_range'][1]:.1f} %, test "
          f"{100 * facts['test_range'][0]:.1f}-{100 * facts['test_range'][1]:.1f} %, seed-vs-seed Kendall tau (valid) "
          f"{facts['seed_noise']['valid_acc']['kendall_tau']:.2f}; budgets run: {budgets} (skipped: {sorted(set(args.budgets) - set(budgets))})")
    for key in ("best_homogeneous", "best_heterogeneous", "best_heterogeneous_no_more_params"):
        if key in facts:
            f = facts[key]
            print(f"{key}: valid {100 * f['valid_acc']:.2f} test {100 * f['test_acc']:.2f} params {f['params']:,} "
                  f"{f['summary']}")
    results = [compare(bench, b, range(args.seeds)) for b in budgets]
    for cmp in results:
        baseline = f"; TF-IDF + LR test {100 * TFIDF_LR_TEST:.2f} %" if args.recipe == "bow" else ""
        print(f"\nbudget {cmp['budget']} ({args.seeds} seeds{baseline})")
        for s, v in cmp["summary"].items():
            print(f"{s:<10} pick test {100 * v['test_acc']:.2f}  valid {100 * v['valid_acc']:.2f}  "
                  f"valid regret {100 * v['regret_valid']:.2f}")
        for k, d in cmp["paired"].items():
            print(f"paired {k}: test {fmt_diff(d['test_acc'])}; valid {fmt_diff(d['valid_acc'])}")
        print(cmp["protocol_table"])
    doc = {"experiment": "transformer_table_search", "commit": git_commit(),
           "argv": sys.argv[1:] if argv is None else list(argv),
           "settings": {"recipe": args.recipe, "space": args.space, "seeds": args.seeds, "budgets": budgets, "strategies": list(STRATEGIES), "options": OPTIONS,
                        "objective": {"valid_acc": "max"}, "tfidf_lr_test": TFIDF_LR_TEST if args.recipe == "bow" else None,
                        "replay": "nas.tabular.transformer_mr_table: mean over training seeds 0 and 1"},
           "table": facts, "results": results}
    write_report(out, doc, started)
    return doc


if __name__ == "__main__":
    main()
