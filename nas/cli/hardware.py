"""`nas hardware ...`: build latency lookup tables, measure architectures, list and check device profiles, fit
end-to-end latency models on measured samples.

    nas hardware build-lut SPACE [--device cpu] [--batch-size 1] [--threads 1] [--out FILE] [--limit N]
    nas hardware measure SPACE [--arch JSON | --random N] [--table FILE] [--device cpu]
    nas hardware devices
    nas hardware calibrate [--threads 1]
    nas hardware fit-latency SPACE SAMPLES [--table FILE] [--profile NAME|PATH] [--out FILE]

SPACE is a name from `nas.hardware.adapters.SPACES` (ofa, nb201, darts) with `--options` a JSON object
of the space's constructor options, or a `nas.nn` model class as `path/to/script.py:Net` or
`package.module:Net`. Errors meant for users print as one red line and exit with 2.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from nas.cli import not_stdout
from nas.console import check_path, make_console, named_flags, path_argument, path_option, user_errors
from nas.errors import ConfigError, check_int, check_number, check_seed

app = typer.Typer(name="hardware", add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_show_locals=False, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Hardware costs: build latency lookup tables, measure architectures, list device profiles.")

SpaceArg = Annotated[str, typer.Argument(help="Space name: ofa, nb201 or darts; or a nas.nn model as "
                                             "path/to/script.py:Net or package.module:Net.")]
OptionsOpt = Annotated[str, typer.Option("--options", help="Space constructor options as a JSON object.")]
DeviceOpt = Annotated[str, typer.Option(help="Torch device to measure on (cpu, cuda, cuda:1).")]
BatchOpt = Annotated[int, typer.Option(help="Batch size of every timed forward pass.")]
ThreadsOpt = Annotated[int, typer.Option(help="CPU threads (torch.set_num_threads) while timing.")]
WarmupOpt = Annotated[int, typer.Option(help="Untimed runs before timing.")]
RepeatsOpt = Annotated[int, typer.Option(help="Timed runs of each layer per round (see --rounds).")]
MeasureRepeatsOpt = Annotated[int, typer.Option("--repeats", help="Timed runs per architecture.")]
RoundsOpt = Annotated[int, typer.Option(help="Interleaved rounds: every layer of a chunk is timed once per round "
                                             "and its runs pooled (robust to slow phases of a shared machine).")]


def _console(stderr: bool = False) -> Console:
    return make_console(stderr)


_user_errors = user_errors

LUT_WARMUP, LUT_REPEATS, LUT_ROUNDS = 2, 3, 20  # build-lut's default measurement settings


def default_table_path(space: str, device: str, batch_size: int, threads: int, warmup: int = LUT_WARMUP,
                       repeats: int = LUT_REPEATS, rounds: int = LUT_ROUNDS) -> Path:
    """Where `build-lut` writes by default: runs/luts/SPACE-DEVICE-bB-tT.jsonl (a model `file.py:Net`: Net), with
    -wWrRxN added when warm-up, repeats or rounds differ from the defaults (a table holds one setting only)."""
    name = space.rpartition(":")[2]
    timing = "" if (warmup, repeats, rounds) == (LUT_WARMUP, LUT_REPEATS, LUT_ROUNDS) else \
        f"-w{warmup}r{repeats}x{rounds}"
    return Path("runs") / "luts" / f"{name}-{device.replace(':', '')}-b{batch_size}-t{threads}{timing}.jsonl"


def _check_counts(batch_size: int, threads: int, warmup: int, repeats: int, rounds: int = 1) -> None:
    """ConfigError naming the option of the first count out of range, before anything is measured or written."""
    check_int(batch_size, "--batch-size", 1)
    check_int(threads, "--threads", 1)
    check_int(warmup, "--warmup", 0)
    check_int(repeats, "--repeats", 1)
    check_int(rounds, "--rounds", 1)


@app.command("build-lut")
@_user_errors
def build_lut(
    space: SpaceArg,
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 1,
    threads: ThreadsOpt = 1,
    warmup: WarmupOpt = LUT_WARMUP,
    repeats: RepeatsOpt = LUT_REPEATS,
    rounds: RoundsOpt = LUT_ROUNDS,
    out: Annotated[Optional[Path], path_option(
        help="Table file [default: runs/luts/SPACE-DEVICE-bB-tT.jsonl, with -wWrRxN added when --warmup, --repeats "
             "or --rounds differ from their defaults].")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Measure at most this many new layers in this call.")] = None,
    profile: Annotated[Optional[str], typer.Option(
        help="Device profile recorded in the table: a built-in name or the path of a .json profile.")] = None,
    options: OptionsOpt = "{}",
) -> None:
    """Profile every distinct layer configuration of SPACE once; resumes an existing table file."""
    from nas.hardware.adapters import adapter_for, make_space
    from nas.hardware.latency import check_torch_device
    from nas.hardware.lut import LatencyTable, build_table, check_profile

    not_stdout(out, "--out", "a latency table (a file it resumes)")
    check_torch_device(device, "--device")
    _check_counts(batch_size, threads, warmup, repeats, rounds)
    if limit is not None:
        check_int(limit, "--limit", 0)
    if profile is not None:  # checked here; passed on as given (a .json path's bare name is no built-in profile)
        check_profile(profile, "--profile")
    adapter = adapter_for(make_space(space, options))
    path = out if out is not None else default_table_path(space, device, batch_size, threads, warmup, repeats, rounds)
    check_path(path, "--out", "file")  # a folder: "is a folder", not the table's "file not found"
    total = len(adapter.distinct_layers())
    before = len(LatencyTable.load(path)) if path.exists() else 0
    console = _console()
    console.print(f"{space}: {total} distinct layer configurations; {before} already in {path}", soft_wrap=True)
    t0 = time.time()
    progress = Progress(TextColumn("[bold]profiling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=console)
    with progress:
        task = progress.add_task("layers", total=min(total - before, limit) if limit is not None else total - before)
        table = build_table(adapter, path, device=device, batch_size=batch_size, threads=threads, warmup=warmup,
                            repeats=repeats, rounds=rounds, profile=profile, limit=limit,
                            progress=lambda done, n: progress.update(task, completed=done, total=n))
    console.print(f"{len(table) - before} layers measured in {time.time() - t0:.1f} s; the table holds "
                  f"{len(table)} of {total} ({path})", soft_wrap=True)


@app.command()
@_user_errors
def measure(
    space: SpaceArg,
    arch: Annotated[Optional[str], typer.Option(help="An architecture as a JSON object.")] = None,
    random: Annotated[int, typer.Option(help="Measure this many random architectures (ignored with --arch).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the random architectures.")] = 0,
    table: Annotated[Optional[Path], path_option(help="A lookup table to predict with, side by side.")] = None,
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 1,
    threads: ThreadsOpt = 1,
    warmup: WarmupOpt = 10,
    repeats: MeasureRepeatsOpt = 50,
    options: OptionsOpt = "{}",
) -> None:
    """Measure latency of architectures (median, p10-p90), next to FLOPs, roofline bound and LUT prediction."""
    from nas.hardware.adapters import make_space
    from nas.hardware.cost import CostModel
    from nas.hardware.lut import LatencyTable

    _check_counts(batch_size, threads, warmup, repeats)
    if arch is None:
        check_int(random, "--random", 1)
        with named_flags({"seed": "--seed"}):
            check_seed(seed)  # numpy's "expected non-negative integer" was a traceback
    if table is not None:
        check_path(table, "--table", "file")
    sp = make_space(space, options)
    if arch is not None:
        try:
            archs = [sp.validate(json.loads(arch))]
        except json.JSONDecodeError as e:
            raise ConfigError(f"--arch: not a JSON object ({e})") from None
    else:
        rng = np.random.default_rng(seed)
        archs = [sp.sample(rng) for _ in range(random)]
    measured = CostModel(sp, device=device, latency="measured", batch_size=batch_size, threads=threads,
                         warmup=warmup, repeats=repeats)
    lut = CostModel(sp, device=device, latency=LatencyTable.load(table), batch_size=batch_size,
                    threads=threads) if table else None
    out = Table(title=f"{space} on {device}, batch {batch_size}, {threads} thread(s), load {os.getloadavg()[0]:.2f}",
                title_justify="left")
    for col in ("arch id", "MFLOPs", "params", "median ms", "p10-p90 ms", "roofline ms") + (("LUT ms",) if lut else ()):
        out.add_column(col, justify="right")
    for a in archs:
        r = measured.report(a)
        m = r.details["latency"]
        row = [a.id[:10], f"{r.metrics['flops'] / 1e6:.3f}", f"{r.metrics['params']:,.0f}", f"{m['median_ms']:.4f}",
               f"{m['p10_ms']:.4f}-{m['p90_ms']:.4f}", f"{r.metrics.get('latency_roofline_ms', float('nan')):.2e}"]
        if lut:
            row.append(f"{lut(a)['latency_ms']:.4f}")
        out.add_row(*row)
    _console().print(out)


@app.command()
@_user_errors
def devices() -> None:
    """List the built-in device profiles (your own: a JSON profile passed by its path, see docs/hardware.md)."""
    from nas.hardware.devices import list_devices, load_device

    out = Table(title="device profiles", title_justify="left")
    for col in ("name", "kind", "FP32 TFLOP/s", "FP16 TFLOP/s", "bandwidth GB/s", "TDP W", "description"):
        out.add_column(col, justify="left" if col in ("name", "kind", "description") else "right")
    for name in list_devices():
        d = load_device(name)
        fp16 = d.peak_flops.get("float16")
        out.add_row(name, d.kind, f"{d.peak_flops.get('float32', float('nan')) / 1e12:.3g}",
                    f"{fp16 / 1e12:.3g}" if fp16 else "-", f"{d.memory_bandwidth / 1e9:.4g}",
                    f"{d.tdp_w:g}" if d.tdp_w else "-", d.description)
    _console().print(out)


@app.command()
@_user_errors
def calibrate(
    threads: ThreadsOpt = 1,
    seconds: Annotated[float, typer.Option(help="How long to measure.")] = 2.0,
) -> None:
    """Measure this CPU's best FP32 matmul FLOP/s and copy bandwidth, next to the local_cpu profile's peaks."""
    from nas.hardware.devices import calibrate_cpu, load_device

    check_int(threads, "--threads", 1)  # named as build-lut and measure name it
    check_number(seconds, "--seconds", unit=" (seconds)")
    got = calibrate_cpu(threads, seconds)
    prof = load_device("local_cpu")
    console = _console()
    console.print(f"measured on {threads} thread(s), load {os.getloadavg()[0]:.2f}: "
                  f"{got['float32_flops'] / 1e9:.1f} GFLOP/s FP32 (profile peak for {threads}: "
                  f"{prof.peak('float32', threads) / 1e9:.1f}), "
                  f"copy bandwidth {got['memory_bandwidth'] / 1e9:.1f} GB/s "
                  f"(profile: {prof.memory_bandwidth / 1e9:.1f})", soft_wrap=True)


@app.command("fit-latency")
@_user_errors
def fit_latency(
    space: SpaceArg,
    samples: Annotated[Path, path_argument(help="Measured samples: CSV with latency_ms and an arch JSON column (or "
                                                 "one column per field), or JSON Lines of {arch, latency_ms}.")],
    table: Annotated[Optional[Path], path_option(
        help="A lookup table whose sum becomes a feature (beside MFLOPs and parameters).")] = None,
    counts: Annotated[bool, typer.Option(help="Use MFLOPs and parameters as features.")] = True,
    profile: Annotated[Optional[str], typer.Option(
        help="Device the samples were measured on (recorded): a built-in profile name or a .json profile's "
             "path.")] = None,
    batch_size: BatchOpt = 1,
    seed: Annotated[int, typer.Option(help="Seed of the folds and forests.")] = 0,
    out: Annotated[Optional[Path], path_option(help="Write the fitted model's samples and choice as JSON.")] = None,
    options: OptionsOpt = "{}",
) -> None:
    """Fit an end-to-end latency model on measured (architecture, latency) pairs; print its cross-validation."""
    import warnings

    from nas.hardware.adapters import adapter_for, make_space
    from nas.hardware.e2e_latency import EndToEndLatency, cost_features, load_samples
    from nas.hardware.learned import LatencyFitWarning, lut_latency
    from nas.hardware.lut import LatencyTable, check_profile

    not_stdout(out, "--out", "a fitted latency model (a JSON file to load)")
    check_int(batch_size, "--batch-size", 1)
    with named_flags({"seed": "--seed"}):
        check_seed(seed)
    if seed >= 2**32:  # scikit-learn's random_state range; checked before the samples are read
        raise ConfigError(f"--seed: expected an int below 2**32, got {seed}")
    if profile is not None:  # recorded in the model: a typo would make it unusable; passed on as given (a path
        check_profile(profile, "--profile")  # stays a path: its bare name is no built-in profile)
    if table is not None:
        check_path(table, "--table", "file")
    if out is not None:
        check_path(out, "--out", "file")  # before the fit, not after it
    sp = make_space(space, options)
    archs, ms = load_samples(samples, sp)
    lut = lut_latency(LatencyTable.load(table), adapter_for(sp)) if table else None
    sources = {}
    if lut is not None:
        if lut.batch_size != batch_size:
            raise ConfigError(f"--table: {table} was timed at batch size {lut.batch_size}, --batch-size is "
                              f"{batch_size} (build a table at batch size {batch_size}, or pass --batch-size "
                              f"{lut.batch_size})")
        sources["table_ms"] = {"table": str(table), "batch_size": lut.batch_size, "device": lut.device,
                               "threads": lut.details.get("threads"), "statistic": lut.details.get("statistic"),
                               "entries": lut.details.get("entries"), "built": lut.details.get("built")}
    feats = cost_features(sp, batch_size, lut) if counts or lut else {}
    if not counts:
        feats = {k: v for k, v in feats.items() if k == "table_ms"}
    console = _console()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LatencyFitWarning)
        model = EndToEndLatency(sp, profile, batch_size, feats, seed=seed,
                                feature_sources=sources if "table_ms" in feats else {}).fit(archs, ms)
    for w in caught:
        console.print(f"warning: {w.message}", style="yellow", soft_wrap=True)
    out_table = Table(title=f"{space}: {len(archs)} samples from {samples} (features: one-hot/vector"
                            f"{', ' + ', '.join(feats) if feats else ''}); {len(model.screened)} screened",
                      title_justify="left")
    for col in ("regressor", "CV MAPE", "CV tau", "tau p", "CV within 10 %", "chosen"):
        out_table.add_column(col, justify="left" if col == "regressor" else "right")
    for c in model.cv.values():  # a candidate ranks (may be chosen) when its tau is significant: p below TAU_LEVEL
        out_table.add_row(c.name, f"{c.cv_mape:.3f}", f"{c.cv_tau:.3f}", f"{c.cv_tau_p:.2g}",
                          f"{c.cv_within_10pct:.2f}", "*" if c.name == model.chosen else "")
    console.print(out_table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(model.to_dict(), indent=1))
        console.print(f"wrote {out}", soft_wrap=True)


if __name__ == "__main__":
    app(prog_name="nas hardware")
