"""`nas predictors ...`: evaluate registered predictors on a NAS-Bench-Graph table, list the registry.

    nas predictors eval [--dataset cora] [--predictors wl-gp,gcn,rf] [--sizes 10,20,50,100,200,500]
                        [--seeds 10] [--n-test 1000] [--target valid_acc] [--out DIR] [--metric kendall_tau]
                        [--rows N]
    nas predictors list

`eval` trains each predictor on N sampled architectures per seed and scores it on held-out ones
(`nas.predictors.harness.main_eval`): a table of the metric, and JSON plus a PNG under `--out`.
Errors meant for users print as one red line and exit with 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nas.cli import not_stdout
from nas.console import check_path, make_console, named_flags, path_option, user_errors
from nas.errors import ConfigError, check_int

app = typer.Typer(name="predictors", add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_show_locals=False, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Performance predictors: evaluate them on NAS-Bench-Graph, list the registry.")

def _split(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{what}: give a comma-separated list, got {text!r}")
    return items


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in _split(text, "--sizes")]
    except ValueError:
        raise ConfigError(f"--sizes: expected comma-separated integers, got {text!r}") from None
    for n in sizes:
        check_int(n, "--sizes", 2)  # a predictor needs two architectures to rank
    return sizes


@app.command("eval")
@user_errors
def eval_(
    dataset: Annotated[str, typer.Option(help="NAS-Bench-Graph table: cora, citeseer or pubmed.")] = "cora",
    predictors: Annotated[str, typer.Option(help="Comma-separated registry names (see `nas predictors list`).")]
    = "wl-gp,gcn,rf",
    sizes: Annotated[str, typer.Option(help="Comma-separated training-set sizes N.")] = "10,20,50,100,200,500",
    seeds: Annotated[int, typer.Option(help="Repetitions (seeds 0..seeds-1), each with its own held-out set.")] = 10,
    n_test: Annotated[int, typer.Option("--n-test", help="Held-out architectures per seed.")] = 1000,
    target: Annotated[str, typer.Option(help="Table column to predict.")] = "valid_acc",
    out: Annotated[Optional[Path], path_option(help="Folder for predictors_<dataset>.json and .png.")]
    = Path("runs/predictors"),
    metric: Annotated[str, typer.Option(help="Metric of the printed table: kendall_tau, spearman_rho, mae, "
                                             "top_precision.")] = "kendall_tau",
    data_root: Annotated[Optional[Path], path_option(help="Folder holding the NAS-Bench-Graph CSVs "
                                                           "(default: $NAS_DATA_DIR/nas-bench-graph).")] = None,
    rows: Annotated[Optional[int], typer.Option(help="Use only this many random rows of the table (a quick look).")]
    = None,
) -> None:
    """Train predictors on N architectures per seed; Kendall tau, Spearman rho, MAE, top-5% precision."""
    from nas.predictors.harness import main_eval

    not_stdout(out, "--out", "a folder of results")
    console = make_console()
    names = _split(predictors, "--predictors")
    n_train = _sizes(sizes)
    check_int(seeds, "--seeds", 1)
    check_int(n_test, "--n-test", 2)
    if out is not None:
        check_path(out, "--out", "folder")  # before the evaluation, which may run for minutes
    if data_root is not None:  # not the library's advice to set NAS_DATA_DIR: the folder typed holds no table
        check_path(data_root, "--data-root", "folder", missing=f"--data-root {data_root}: no such folder")
        if not (data_root / f"{dataset}.csv").is_file():
            raise ConfigError(f"--data-root {data_root}: no NAS-Bench-Graph table {dataset}.csv in it (datasets: "
                              "cora, citeseer, pubmed)")
    console.print(f"{dataset}: {', '.join(names)} at N = {sizes}, {seeds} seeds, {n_test} held out", soft_wrap=True)
    with named_flags({"metric": "--metric", "rows": "--rows", "target": "--target", "sizes": "--sizes",
                      "n_test": "--n-test", "predictors": "--predictors", "out_dir": "--out"}):
        result = main_eval(dataset, names, n_train, seeds, n_test, target, out, data_root, metric, rows)
    console.print(result["table"], soft_wrap=True)
    if result["json"] is not None:
        console.print(f"json: {Path(result['json']).resolve()}\nplot: {Path(result['plot']).resolve()}", soft_wrap=True)


@app.command("list")
def list_() -> None:
    """The registered predictors and what each needs (vector encoding, graph, live model)."""
    from nas.predictors import PREDICTORS, predictor_class

    console = make_console()
    for name in sorted(PREDICTORS):
        cls = predictor_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        needs = getattr(cls, "needs_text", None) or ",".join(sorted(cls.needs))
        console.print(f"{name:<16}{needs:<16}{doc}", soft_wrap=True)


if __name__ == "__main__":
    app(prog_name="nas predictors")
