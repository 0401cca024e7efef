"""The ``skelact`` command line: options -> settings (:mod:`skelact.config`) -> stage -> print.

Every command is the same few lines: read the options, let ``skelact.config`` merge them with
``params.yaml`` into typed settings, call the stage function, print its result. Stage modules
are imported inside the commands so that ``skelact --help`` stays instant (no torch). User and
environment errors are turned into one ``error: ...`` line in exactly one place,
:class:`_Commands`; ``--debug`` (or ``SKELACT_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

import click
import typer
from typer.core import TyperGroup

from skelact import __version__
from skelact.errors import InterruptedRun, SkelactError

# What the one handler turns into an `error:` line; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (SkelactError, OSError, MemoryError)


def describe(exc: BaseException) -> str:
    """One line for a user or environment error: the message, or what the OS said and where."""
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, SkelactError):
        paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        return f"{exc.strerror}: {paths}" if paths else exc.strerror
    if isinstance(exc, MemoryError):
        return f"out of memory{': ' + str(exc) if str(exc) else ''} (input too large or corrupt?)"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


class _Commands(TyperGroup):
    """Runs a command; the one place that turns user and environment errors into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not isinstance(exc, USER_ERRORS) or _debug(ctx):
                raise
            typer.secho(f"error: {describe(exc)}", fg=typer.colors.RED, err=True)
            code = 128 + exc.signum if isinstance(exc, InterruptedRun) else 1
            raise typer.Exit(code) from None


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.meta.get("skelact.debug")) or os.environ.get("SKELACT_DEBUG") == "1"


app = typer.Typer(
    name="skelact",
    cls=_Commands,
    help="Skeleton action recognition on NTU RGB+D: synth, preprocess, train, test, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"skelact {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of errors (also: SKELACT_DEBUG=1)."
    ),
) -> None:
    """Skeleton-based action recognition on NTU RGB+D."""
    ctx.meta["skelact.debug"] = debug


def _params(path: Path | None):
    """The validated ``params.yaml`` given with ``--params`` (None without it)."""
    from skelact.config import load_params

    return None if path is None else load_params(path)


PARAMS = typer.Option(None, "--params", help="params.yaml: its settings apply (options win).")


@app.command()
def synth(
    out_dir: Path = typer.Option(..., "--out-dir", help="Folder for the .skeleton files."),
    num_classes: int | None = typer.Option(None, help="Classes A001..A<N> [synth.num_classes]."),
    samples_per_class: int | None = typer.Option(None, help="Files per class [synth...]."),
    seed: int | None = typer.Option(None, help="Same seed, same bytes [synth.seed]."),
    frames_min: int | None = typer.Option(None, help="Shortest sequence [synth.frames_min]."),
    frames_max: int | None = typer.Option(None, help="Longest sequence [synth.frames_max]."),
    noise: float | None = typer.Option(None, help="Joint noise std in metres [synth.noise]."),
    workers: int | None = typer.Option(None, help="Processes, 0 = all cores [synth.workers]."),
    clean: bool = typer.Option(False, help="Delete other .skeleton (or clip) files in --out-dir."),
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="Instead of .skeleton files: a format of `skelact import` (with --layout, --dims).",
    ),
    layout: str | None = typer.Option(
        None, help="With --format: a built-in layout (`skelact layouts`; default coco17)."
    ),
    dims: int | None = typer.Option(
        None, help="With --format: 2 (pixels + scores, default) or 3 (metres)."
    ),
    params: Path | None = PARAMS,
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write synthetic NTU RGB+D .skeleton files (exact format, learnable classes, all splits).

    With --format, the same samples retargeted to --layout in an outside format instead.
    """
    from skelact.config import synth_format, synth_options
    from skelact.data.synth import SynthSettings, synthesize

    loaded = _params(params)
    options = synth_options(loaded, num_classes=num_classes, seed=seed, noise=noise,
                            samples_per_class=samples_per_class, frames_min=frames_min,
                            frames_max=frames_max, workers=workers)  # fmt: skip
    settings = SynthSettings(out_dir=out_dir, clean=clean, **options)
    outside = synth_format(loaded, fmt, layout, dims)

    def run(progress: Any = None) -> Any:
        if outside is None:
            return synthesize(settings, progress)
        from skelact.data.synth.formats import FormatSettings, write_synthetic

        return write_synthetic(settings, FormatSettings(*outside), progress)

    if quiet:
        result = run()
    else:
        from skelact.progress import file_progress

        with file_progress("synth", transient=True) as bar:
            task = bar.add_task("synth", total=settings.num_classes * settings.samples_per_class)
            result = run(lambda done, _total: bar.update(task, completed=done))
        counts = ", ".join(f"{k} {v['train']}/{v['val']}" for k, v in result.split_counts.items())
        typer.echo(
            f"wrote {result.files_written} files ({result.bytes_written / 1e6:.1f} MB) to "
            f"{result.out_dir} in {result.seconds:.1f} s ({result.files_per_s:.0f} files/s); "
            f"train/val: {counts}"
        )


@app.command("preprocess")
def preprocess_cmd(
    dataset: str | None = typer.Option(None, help="ntu60 (xsub, xview) or ntu120 (xsub, xset)."),
    raw_dir: Path | None = typer.Option(None, help="Raw .skeleton files [data.raw_dir]."),
    out_dir: Path | None = typer.Option(None, help="Pickles and report [data.prepared_dir]."),
    benchmark: list[str] | None = typer.Option(
        None, help="Benchmark to write (repeatable; default: all of the dataset)."
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="mmaction: <bench>/{train,val}.pkl; pyskl: <dataset>_3danno.pkl; npz: <bench>.npz "
        "(CTR-GCN/SGN layout).",
    ),
    raw: bool = typer.Option(
        False, "--raw", help="pyskl: coordinates as read (PYSKL's convention), not normalised."
    ),
    float16: bool = typer.Option(False, "--float16", help="pyskl --raw: float16 coordinates."),
    workers: int | None = typer.Option(None, help="Worker processes (0: all cores)."),
    on_error: str | None = typer.Option(None, help="fail: stop at a bad file; skip: report it."),
    missing_list: Path | None = typer.Option(None, help="Extra sample names to skip."),
    recursive: bool = typer.Option(False, help="Also read .skeleton files in subfolders."),
    no_default_missing_list: bool = typer.Option(
        False,
        "--no-default-missing-list",
        help="Do not skip the dataset's missing-skeleton samples.",
    ),
    params: Path | None = PARAMS,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
) -> None:
    """Raw NTU RGB+D .skeleton files -> normalised per-benchmark pickles (reference-exact).

    With ``--params`` of ``data.source: custom`` (or a data set: kinetics, nwucla) it runs
    ``skelact import`` instead (the pipeline's preprocess stage of such data)."""
    from skelact.config import IMPORT_SOURCES, ConfigError, preprocess_options
    from skelact.data.preprocess import PreprocessSettings, main_summary, preprocess

    loaded = _params(params)
    if loaded is not None and loaded.data.source in IMPORT_SOURCES:
        ntu_only = {"--dataset": dataset, "--benchmark": benchmark, "--format": fmt,
                    "--raw": raw or None, "--float16": float16 or None, "--workers": workers,
                    "--on-error": on_error, "--missing-list": missing_list,
                    "--recursive": recursive or None,
                    "--no-default-missing-list": no_default_missing_list or None}  # fmt: skip
        given = [flag for flag, value in ntu_only.items() if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: NTU preprocessing options, but data.source "
                              f"is {loaded.data.source!r} (see params.yaml's `import` "
                              "section)")  # fmt: skip
        _import(loaded, quiet, src=raw_dir, out_dir=out_dir)
        return
    options = preprocess_options(loaded, dataset=dataset, raw_dir=raw_dir,
                                 out_dir=out_dir, format=fmt, workers=workers,
                                 on_error=on_error)  # fmt: skip
    result = preprocess(PreprocessSettings(
        **options, benchmarks=tuple(benchmark) if benchmark else None, missing_list=missing_list,
        default_missing_list=not no_default_missing_list, recursive=recursive,
        progress=not quiet and sys.stderr.isatty(), raw=raw, float16=float16,
    ))  # fmt: skip
    if not quiet:
        typer.echo(main_summary(result))
    elif result.ignored_in_subfolders:
        typer.secho(f"warning: {result.ignored_in_subfolders} .skeleton files in subfolders of "
                    f"{options['raw_dir']} were ignored; use --recursive", err=True)  # fmt: skip
    if result.skipped_bad:
        typer.secho(
            f"{len(result.skipped_bad)} bad files were skipped; reasons in {result.report_path}",
            fg=typer.colors.YELLOW,
            err=True,
        )


@app.command("import")
def import_cmd(
    src: Path | None = typer.Argument(
        None, help="A folder (openpose, csv) or a file (npz, pyskl) [data.raw_dir]."
    ),
    fmt: str | None = typer.Option(
        None,
        "--from",
        help="openpose|csv|npz|pyskl|mmpose|yolo|alphapose|kinetics|nwucla [data.format].",
    ),
    layout: str | None = typer.Option(
        None, help="Joint layout: a built-in name or a layout .yaml file [data.layout]."
    ),
    out_dir: Path | None = typer.Option(
        None, help="Pickles, classes.txt, import_report.json [data.prepared_dir]."
    ),
    labels: Path | None = typer.Option(
        None, help="CSV clip,label[,split] (openpose, csv) [data.labels]."
    ),
    classes: Path | None = typer.Option(None, help="Class names in index order, one a line."),
    split_by: str | None = typer.Option(
        None, help="Labels column of each clip's split (train/val) [default: 'split' if present]."
    ),
    val_fraction: float | None = typer.Option(
        None, help="Without a split column: val share of each class [import.val_fraction]."
    ),
    seed: int | None = typer.Option(None, help="Seed of the val draw [import.seed]."),
    on_error: str | None = typer.Option(
        None, help="fail: stop at a bad clip; skip: report it [import.on_error]."
    ),
    normalise: str | None = typer.Option(
        None, help="body: centre + body size; image: frame size [import.normalise]."
    ),
    img_shape: str | None = typer.Option(
        None, help="Frame HEIGHTxWIDTH: --normalise image; yolo's pixels [import.img_shape]."
    ),
    num_persons: int | None = typer.Option(
        None, help="Persons per sample, most active first [import.num_persons]."
    ),
    benchmark: str | None = typer.Option(None, help="pyskl: the <benchmark>_train/_val pair."),
    params: Path | None = PARAMS,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary."),
) -> None:
    """Your own skeletons (OpenPose JSON, CSV, CTR-GCN npz, PYSKL) -> the project's pickles."""
    _import(_params(params), quiet, src=src, fmt=fmt, layout=layout, out_dir=out_dir,
            labels=labels, classes=classes, split_by=split_by, val_fraction=val_fraction,
            seed=seed, on_error=on_error, normalise=normalise, img_shape=img_shape,
            num_persons=num_persons, benchmark=benchmark)  # fmt: skip


def _import(params: Any, quiet: bool, **command_line: Any) -> None:
    """``skelact import``, also run by ``skelact preprocess`` for ``data.source: custom``."""
    from skelact.config import import_options
    from skelact.data.importer import ImportSettings, import_data, import_summary, parse_img_shape

    options = import_options(params, **command_line)
    if options.get("img_shape") is not None:
        options["img_shape"] = parse_img_shape(options["img_shape"])
    result = import_data(ImportSettings(**options))
    if not quiet:
        typer.echo(import_summary(result))
    if result.dropped:
        typer.secho(
            f"{len(result.dropped)} clips were dropped; reasons in {result.report_path}",
            fg=typer.colors.YELLOW,
            err=True,
        )


@app.command("validate")
def validate_cmd(
    pkl: Path = typer.Argument(..., help="A preprocessed skeleton pickle (either format)."),
    split: str | None = typer.Option(None, help="Subset of a PYSKL file, e.g. xsub_val."),
) -> None:
    """Check a skeleton pickle safely and summarise it; exit 1 listing the problems if any."""
    from skelact.data.annotations import dims_text
    from skelact.data.dataset import validate_file

    report = validate_file(pkl, split=split)
    if report.num_samples and not report.joints:  # no sample was readable: nothing to summarise
        typer.echo(f"file       {report.path}\nformat     {report.format}")
        typer.echo(f"samples    {report.num_samples} (none usable)")
    elif report.num_samples:
        persons = ", ".join(f"M={m}: {n}" for m, n in report.persons.items()) or "-"
        gaps = report.missing_labels
        gap_text = "none" if not gaps else f"{len(gaps)} class(es) without samples: {gaps[:20]}"
        gap_text += " ..." if len(gaps) > 20 else ""
        counts = list(report.label_counts.values())
        scores = (f"keypoint_score in {report.samples_with_score} of {report.num_samples} "
                  "sample(s)" if report.samples_with_score else "none")  # fmt: skip
        typer.echo("\n".join([
            f"file       {report.path}" + (f" (split {report.split})" if report.split else ""),
            f"format     {report.format}",
            f"samples    {report.num_samples}",
            f"classes    {report.num_classes} (labels 0..{report.num_classes - 1}); "
            f"samples per class min {min(counts, default=0)} max {max(counts, default=0)}",
            f"frames     min {report.frames_min}  median {report.frames_median:g}  "
            f"max {report.frames_max}",
            f"persons    {persons}",
            f"layout     {report.layout}"
            + ("" if report.layout_given else " (no 'layout' key: the NTU default)"),
            f"joints     {report.joints}",
            f"channels   {report.channels}",
            f"dims       {dims_text(report.channels)}",
            f"scores     {scores}",
            f"NaN        {report.nan_count} value(s) in {report.samples_with_nan} sample(s)",
            f"inf        {report.inf_count} value(s) in {report.samples_with_inf} sample(s)",
            f"label gaps {gap_text}",
        ]))  # fmt: skip
    if report.problems:
        shown = report.problems[:50]
        more = f"\n  ... and {len(report.problems) - 50} more" if len(report.problems) > 50 else ""
        typer.echo("problems:\n  " + "\n  ".join(shown) + more, err=True)
        raise SkelactError(f"{pkl}: {len(report.problems)} problem(s), listed above")
    typer.secho("OK", fg=typer.colors.GREEN)


@app.command("layouts")
def layouts_cmd(
    as_json: bool = typer.Option(False, "--json", help="JSON rows instead of a table."),
) -> None:
    """Every built-in joint layout: joints, centre, the coordinates its sources give, sources."""
    from skelact.layouts import layout_table

    rows = layout_table()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'layout':<16} {'joints':>6}  {'centre':<16} {'dims':<20} source")
    for r in rows:
        typer.echo(f"{r['name']:<16} {r['joints']:>6}  {r['center']:<16} {r['dims']:<20} "
                   f"{r['source']}")  # fmt: skip
    typer.echo("A layout .yaml file of your own works wherever a name does (--layout, "
               "data.layout).")  # fmt: skip


@app.command("flops")
def flops(
    model: str | None = typer.Option(None, "--model", "-m", help="One model; default all."),
    num_classes: int = typer.Option(60, min=1, help="Classes of the head."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """Parameters and GFLOPs (mmcv-style MACs) of the models for one sample."""
    from skelact.config import check_model

    names = None if model is None else [check_model(model)]  # before torch loads
    from skelact.models.complexity import complexity_table, format_table

    rows = complexity_table(names, num_classes=num_classes)
    typer.echo(json.dumps(rows, indent=2) if as_json else format_table(rows))


@app.command("train")
def train_cmd(
    model: str = typer.Option(
        ..., "--model", "-m", help="tscnn, hcn, hcnb, tacnn, dgcn, stgcnpp or ctrgcn."
    ),
    train_path: Path = typer.Option(..., "--train", help="Training pickle."),
    val_path: Path = typer.Option(..., "--val", help="Validation pickle."),
    out_dir: Path = typer.Option(..., help="Checkpoints, logs and metrics go here."),
    seed: int = typer.Option(0, help="Run seed."),
    stream: str | None = typer.Option(
        None, help="Input stream: joint, bone, joint_motion or bone_motion [joint]."
    ),
    epochs: int | None = typer.Option(None, help="[recipe]"),
    batch_size: int | None = typer.Option(None, help="Global batch over all ranks [64]."),
    lr: float | None = typer.Option(None, help="LR at the reference batch of 64 [recipe]."),
    scale_lr: bool | None = typer.Option(None, help="Scale the LR with the global batch."),
    weight_decay: float | None = typer.Option(None, help="[recipe]"),
    optimizer: str | None = typer.Option(None, help="adam | sgd [recipe]"),
    clip_len: int | None = typer.Option(None, help="Frames per clip [model default]."),
    val_interval: int | None = typer.Option(None, help="Validate every k epochs [recipe]."),
    val_batch_size: int | None = typer.Option(None, help="Global [2 x batch size]."),
    num_classes: int | None = typer.Option(None, help="[the data's definition]"),
    model_option: list[str] | None = typer.Option(None, help="Builder option KEY=VALUE."),
    train_split: str | None = typer.Option(None, help="pyskl: e.g. xsub_train"),
    val_split: str | None = typer.Option(None, help="pyskl: e.g. xsub_val"),
    device: str | None = typer.Option(None, help="auto | cpu | cuda[:N] [train.device]"),
    deterministic: bool | None = typer.Option(None, help="Deterministic kernels, fixed threads."),
    threads: int | None = typer.Option(None, help="torch CPU threads."),
    amp: str | None = typer.Option(None, help="none | bf16 | fp16 (CUDA only)."),
    compile_: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile."),
    cuda_graphs: bool | None = typer.Option(None, help="CUDA graphs (compile reduce-overhead)."),
    tf32: bool | None = typer.Option(None, help="TF32 matmuls/convs (CUDA; changes numerics)."),
    drop_last: bool | None = typer.Option(None, help="Skip each epoch's last partial batch."),
    resume: bool = typer.Option(False, help="Continue from OUT_DIR/last.pt."),
    stop_after_epoch: int | None = typer.Option(None, help="Stop (resumably) after this epoch."),
    checkpoint_interval: int | None = typer.Option(None, help="Write last.pt every k epochs."),
    track: bool | None = typer.Option(None, help="Log to MLflow [tracking.enabled]."),
    tracking_uri: str | None = typer.Option(None, help="MLflow URI."),
    experiment: str | None = typer.Option(None, help="MLflow experiment."),
    run_name: str | None = typer.Option(None, help="MLflow run name."),
    benchmark: str | None = typer.Option(None, help="Benchmark tag [the pickle's folder]."),
    params: Path | None = PARAMS,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the start and end lines."),
) -> None:
    """Train a model with its reference recipe (works under torchrun for DDP)."""
    from skelact.config import parse_model_options, train_config

    settings = _params(params)  # a bad params.yaml fails here, before torch loads
    from skelact.engine.train import guess_benchmark, train

    config = train_config(
        model, settings, benchmark or guess_benchmark(str(train_path), train_split),
        train_path=str(train_path), val_path=str(val_path), out_dir=str(out_dir), seed=seed,
        stream=stream, epochs=epochs, batch_size=batch_size, lr=lr, scale_lr=scale_lr,
        weight_decay=weight_decay, optimizer=optimizer, clip_len=clip_len,
        val_interval=val_interval, val_batch_size=val_batch_size, num_classes=num_classes,
        model_options=parse_model_options(model_option), train_split=train_split,
        val_split=val_split, device=device, deterministic=deterministic, threads=threads,
        amp=amp, compile=compile_, cuda_graphs=cuda_graphs, tf32=tf32, drop_last=drop_last,
        resume=resume, stop_after_epoch=stop_after_epoch,
        checkpoint_interval=checkpoint_interval, track=track, tracking_uri=tracking_uri,
        experiment=experiment, run_name=run_name, quiet=quiet,
    )  # fmt: skip
    result = train(config)
    if not quiet and int(os.environ.get("RANK", "0")) == 0:
        keys = ("best_top1", "best_epoch", "final_top1", "final_top5", "last_epoch", "completed",
                "seconds", "mlflow_run_id")  # fmt: skip
        typer.echo(json.dumps({k: getattr(result, k) for k in keys}, indent=2))


@app.command("test")
def test_cmd(
    checkpoint: Path = typer.Option(..., help="Own or SkelAct/MMAction2 .pth."),
    data: Path = typer.Option(..., help="Pickle to evaluate on."),
    out_dir: Path = typer.Option(..., help="Where metrics and tables go."),
    model: str | None = typer.Option(None, "--model", "-m", help="For foreign checkpoints."),
    split: str | None = typer.Option(None, help="pyskl files: e.g. xsub_val."),
    batch_size: int | None = typer.Option(None, help="[evaluate.batch_size]"),
    device: str | None = typer.Option(None, help="auto | cpu | cuda[:N] [evaluate.device]"),
    clip_len: int | None = typer.Option(None, help="[checkpoint, else model default]"),
    clip_ratio: float | None = typer.Option(None, help="Center-crop ratio [checkpoint/recipe]."),
    amp: str = typer.Option("none", help="none | bf16 | fp16 (CUDA only)."),
    track: bool | None = typer.Option(None, help="Log into MLflow [tracking.enabled]."),
    tracking_uri: str | None = typer.Option(None, help="MLflow URI."),
    experiment: str = typer.Option("skelact", help="For untracked checkpoints."),
    child_run: bool = typer.Option(False, help="Log to a new run linked to the training run."),
    params: Path | None = PARAMS,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Evaluate a checkpoint: metrics.json, per-class, confusion matrix, predictions."""
    from skelact.config import evaluate_options
    from skelact.engine.evaluate import EvalConfig, evaluate

    options = evaluate_options(_params(params), batch_size=batch_size, device=device,
                               track=track, tracking_uri=tracking_uri)  # fmt: skip
    result = evaluate(EvalConfig(
        checkpoint=str(checkpoint), data=str(data), out_dir=str(out_dir), model=model,
        split=split, clip_len=clip_len, clip_ratio=clip_ratio, amp=amp, experiment=experiment,
        child_run=child_run, quiet=quiet, **options,
    ))  # fmt: skip
    keys = ("top1", "top5", "mean_class_accuracy", "num_samples", "out_dir")
    summary = {k: getattr(result, k) for k in keys}
    typer.echo(json.dumps(summary) if quiet else json.dumps(summary, indent=2))


@app.command("predict")
def predict_cmd(
    file: Path = typer.Argument(..., help="One raw NTU .skeleton file."),
    checkpoint: Path | None = typer.Option(None, help="Own or SkelAct/MMAction2 .pth."),
    onnx: Path | None = typer.Option(None, help="Or an exported model.onnx (no torch needed)."),
    model: str | None = typer.Option(None, "--model", "-m", help="For foreign checkpoints."),
    top_k: int = typer.Option(5, min=1),
    device: str = typer.Option("auto"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Top-k actions for one raw .skeleton file (same preprocessing and val sampling)."""
    from skelact.deploy.runtime import predict_any

    result = predict_any(file, checkpoint=checkpoint, onnx=onnx, model=model,
                         top_k_classes=top_k, device=device)  # fmt: skip
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    typer.echo(f"{result.sample} ({result.model}, {result.num_frames} frames)")
    if result.label is not None and result.label >= 0:
        typer.echo(f"label: A{result.label + 1:03d} {result.label_name}")
    for rank, (cls, name, prob) in enumerate(result.top, start=1):
        typer.echo(f"{rank}. A{cls + 1:03d} {name:<45} {prob:7.2%}")


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Option(..., help="Own (or SkelAct/MMAction2) checkpoint."),
    out: Path = typer.Option(..., help="File to write, e.g. model.onnx or hcn.pth."),
    fmt: Literal["onnx", "mmaction"] = typer.Option(
        "onnx", "--format", help="onnx: checked against PyTorch; mmaction: SkelAct key names."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="For foreign checkpoints."),
    opset: int = typer.Option(17, help="ONNX opset version."),
    tolerance: float = typer.Option(1e-4, help="Largest relative error ONNX Runtime vs PyTorch."),
    metrics: Path | None = typer.Option(None, help="onnx: also write the parity result here."),
) -> None:
    """Export a checkpoint: ONNX (self-checked; a failing export writes nothing) or MMAction2."""
    if fmt == "mmaction":
        from skelact.models.checkpoint import build_from_checkpoint, export_mmaction_checkpoint

        built = build_from_checkpoint(checkpoint, **({"name": model} if model else {}))
        path = export_mmaction_checkpoint(built, out)
        typer.echo(f"wrote {path} ({built.skelact_spec['name']}, {fmt} format)")
        return
    from skelact.deploy.export import export_model

    result = export_model(checkpoint, out, format=fmt, model=model, opset=opset,
                          tolerance=tolerance, metrics=metrics)  # fmt: skip
    typer.echo(json.dumps(result.to_dict(), indent=2))


@app.command("stream")
def stream_cmd(
    source: str = typer.Argument(..., help="A raw .skeleton file, or - for JSON lines on stdin."),
    checkpoint: Path | None = typer.Option(None, help="A checkpoint (.pth)."),
    onnx: Path | None = typer.Option(None, help="Or an exported model.onnx."),
    model: str | None = typer.Option(None, "--model", "-m", help="For foreign checkpoints."),
    window: int = typer.Option(64, min=1, help="Frames per window."),
    stride: int = typer.Option(8, min=1, help="Frames between window starts."),
    top_k: int = typer.Option(5, min=1),
    smooth: float = typer.Option(0.0, help="EMA of the probabilities: weight of the past, [0, 1)."),
    jsonl: bool = typer.Option(False, help="One JSON object per window."),
    strict: bool = typer.Option(False, help="Stop at the first malformed line."),
) -> None:
    """Sliding-window predictions over a recording or a live JSON-lines stream of frames."""
    from skelact.deploy.stream import run_stream_command

    run_stream_command(source, checkpoint=checkpoint, onnx=onnx, model=model, window=window,
                       stride=stride, top_k_classes=top_k, smooth=smooth, jsonl=jsonl,
                       strict=strict)  # fmt: skip


@app.command("report")
def report_cmd(
    params: Path | None = typer.Option(
        None,
        "--params",
        help="params.yaml: report exactly its models x benchmarks x seeds (a "
        "missing one is an error). Without it, every run found under --eval-dir is reported.",
    ),  # fmt: skip
    eval_dir: Path = typer.Option(
        Path("eval"), help="Results: <benchmark>/<model>/<stream>/seed<N>/."
    ),
    runs_dir: Path = typer.Option(Path("runs"), help="Training outputs (for training times)."),
    fused_dir: Path = typer.Option(Path("fused"), help="Fusions: <benchmark>/<model>/seed<N>/."),
    out_dir: Path | None = typer.Option(None, help="results.md/.json, chart [report.out_dir]."),
    source: str | None = typer.Option(None, help="Data source named [data.source]."),
) -> None:
    """Collect evaluated runs into results.md, results.json and an accuracy/GFLOPs chart."""
    from skelact.config import report_options
    from skelact.report import make_report

    options = report_options(_params(params), out_dir=out_dir, source=source)
    result = make_report(eval_root=eval_dir, runs_root=runs_dir, fused_root=fused_dir, **options)
    for row in result.rows:
        typer.echo(
            f"{row['benchmark']:6s} {row['model']:6s} {row['stream']:12s} top-1 "
            f"{row['top1_mean']:6.2f} +- "
            f"{row['top1_std']:.2f} over {len(row['seeds'])} seed(s)"
        )
    typer.echo(f"wrote {result.markdown}, {result.json}, {result.chart}")
    typer.echo(
        f"next: read {result.markdown}; `mlflow ui --backend-store-uri sqlite:///mlflow.db` for "
        "the runs; `dvc plots show` for the curves and confusion matrices"
    )


@app.command("fuse")
def fuse_cmd(
    scores: list[Path] | None = typer.Option(
        None, "--scores", help="A scores.npz of `skelact test` (repeat: one per stream)."
    ),
    weights: list[float] | None = typer.Option(
        None, "--weights", help="One weight per --scores, in order (repeat)."
    ),
    softmax: bool | None = typer.Option(
        None, "--softmax/--raw", help="Fuse class probabilities, not raw scores [fuse.softmax]."
    ),
    out_dir: Path | None = typer.Option(None, help="Where the fused results go."),
    params: Path | None = typer.Option(
        None, "--params", help="params.yaml: fuse every model's `streams` with `fuse.weights`."
    ),
    eval_dir: Path = typer.Option(
        Path("eval"), help="With --params: <benchmark>/<model>/<stream>/seed<N>/scores.npz."
    ),
    track: bool | None = typer.Option(None, help="Log to MLflow [tracking.enabled]."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Fuse streams: the weighted sum of class scores, with top-1/top-5/confusion like `test`."""
    from skelact.config import ConfigError, fuse_plan
    from skelact.engine.fuse import FuseConfig, fuse

    settings = _params(params)
    if settings is not None:
        if scores or weights:
            raise ConfigError("--params fuses the pipeline's streams: give no --scores/--weights")
        root = out_dir or Path("fused")
        plan = fuse_plan(settings, eval_dir, root)
        (root / "results").mkdir(parents=True, exist_ok=True)  # the stage's output, always
        if not plan:
            typer.echo(f"fuse: one stream ({settings.streams[0]}) in {params}: nothing to fuse")
    else:
        if not scores or out_dir is None:
            raise ConfigError("give --scores (two or more) and --out-dir, or --params")
        if len(weights or []) != len(scores):
            raise ConfigError(f"--weights: {len(weights or [])} given for {len(scores)} --scores")
        plan = [{"scores": [str(p) for p in scores], "weights": list(weights or []),
                 "out_dir": str(out_dir), "softmax": bool(softmax)}]  # fmt: skip
    results = []
    for item in plan:
        if softmax is not None:
            item["softmax"] = softmax
        if track is not None:
            item["track"] = track
        result = fuse(FuseConfig(**item, quiet=quiet))
        results.append(result)
        typer.echo(
            f"{result.out_dir}: top-1 {100 * result.top1:.2f} %, top-5 {100 * result.top5:.2f} % "
            f"over {result.num_samples} samples"
        )
    if settings is not None:
        from skelact.engine.fuse import write_summary

        write_summary(root / "metrics.json", [item["info"] for item in plan], results)


@app.command("grid")
def grid_cmd(
    launcher: Literal["slurm", "local"] = typer.Option("slurm", help="slurm (sbatch) | local."),
    stages: str = typer.Option("train,evaluate", help="Matrix stages per element."),
    partition: str | None = typer.Option(None, help="SLURM partition."),
    gpus_per_task: int = typer.Option(0, help="GPUs per element (--gres=gpu:N)."),
    cpus_per_task: int | None = typer.Option(None, help="CPUs per element."),
    time_limit: str | None = typer.Option(None, "--time", help="Per element, HH:MM:SS."),
    max_parallel: int | None = typer.Option(None, help="Elements at once (the array's %N)."),
    dry_run: bool = typer.Option(False, help="Print the sbatch scripts only."),
    wait: bool = typer.Option(False, help="Return when the grid has finished."),
    status: bool = typer.Option(False, help="Show the newest grid's summary."),
    root: Path = typer.Option(Path("."), help="The DVC project."),
) -> None:
    """Run the stale train/evaluate stages of the grid as a SLURM job array, then the report."""
    from skelact import grid

    if status:
        typer.echo("\n".join(grid.grid_status(root)))
        return
    result = grid.run_grid(grid.GridSettings(
        root=root, launcher=launcher, partition=partition,
        stages=tuple(s.strip() for s in stages.split(",") if s.strip()),
        gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task, time=time_limit,
        max_parallel=max_parallel, dry_run=dry_run, wait=wait,
    ))  # fmt: skip
    typer.echo("\n".join(result.lines))
    if result.summary and result.summary["failed"]:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
