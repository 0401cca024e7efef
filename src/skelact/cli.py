"""The ``skelact`` command line: one command per pipeline stage.

This module only parses options and calls stage functions; it imports them lazily so that
``skelact --help`` stays instant (no torch import) and so that no other module imports Typer.
"""

from __future__ import annotations

from pathlib import Path

import typer

from skelact import __version__

app = typer.Typer(
    name="skelact",
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
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """Skeleton-based action recognition on NTU RGB+D."""


def _fail(message: str) -> None:
    """Print a user-facing error (no traceback) and exit non-zero."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


# --- synth (owner: data generation) ---


@app.command()
def synth(
    out_dir: Path = typer.Option(..., "--out-dir", help="Folder for the .skeleton files."),
    num_classes: int = typer.Option(10, "--num-classes", help="Action classes A001..A<N> (2-120)."),
    samples_per_class: int = typer.Option(
        30, "--samples-per-class", help="Files per class (>= 2)."
    ),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
    frames_min: int = typer.Option(40, "--frames-min", help="Shortest sequence, frames."),
    frames_max: int = typer.Option(100, "--frames-max", help="Longest sequence, frames."),
    noise: float = typer.Option(0.004, "--noise", help="Joint noise std in metres."),
    workers: int = typer.Option(1, "--workers", help="Processes (0 = all cores)."),
    clean: bool = typer.Option(
        False, "--clean", help="Delete other .skeleton files already in --out-dir."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write synthetic NTU RGB+D .skeleton files (exact format, learnable classes, all splits)."""
    from skelact.data.synth import SynthSettings, synthesize

    settings = SynthSettings(
        out_dir=out_dir,
        num_classes=num_classes,
        samples_per_class=samples_per_class,
        seed=seed,
        frames_min=frames_min,
        frames_max=frames_max,
        noise=noise,
        workers=workers,
        clean=clean,
    )
    try:
        if quiet:
            result = synthesize(settings)
        else:
            from skelact.progress import file_progress

            with file_progress("synth", transient=True) as bar:
                task = bar.add_task("synth", total=num_classes * samples_per_class)
                result = synthesize(settings, lambda done, _total: bar.update(task, completed=done))
    except (ValueError, OSError) as exc:
        _fail(str(exc))
        return
    if not quiet:
        counts = ", ".join(f"{k} {v['train']}/{v['val']}" for k, v in result.split_counts.items())
        typer.echo(
            f"wrote {result.files_written} files ({result.bytes_written / 1e6:.1f} MB) to "
            f"{result.out_dir} in {result.seconds:.1f} s ({result.files_per_s:.0f} files/s); "
            f"train/val: {counts}"
        )


# --- end synth ---

# --- preprocess (owner: preprocessing) ---


@app.command("preprocess")
def preprocess_cmd(
    dataset: str = typer.Option(
        "ntu60", "--dataset", help="ntu60 (xsub, xview) or ntu120 (xsub, xset)."
    ),
    raw_dir: Path = typer.Option(..., "--raw-dir", help="Folder of raw NTU .skeleton files."),
    out_dir: Path = typer.Option(..., "--out-dir", help="Where the pickles and the report go."),
    benchmark: list[str] = typer.Option(
        None, "--benchmark", help="Benchmark to write (repeatable; default: all of the dataset)."
    ),
    fmt: str = typer.Option(
        "mmaction",
        "--format",
        help="mmaction: <bench>/{train,val}.pkl; pyskl: one <dataset>_3danno.pkl.",
    ),
    workers: int = typer.Option(0, "--workers", help="Worker processes (0: all cores)."),
    on_error: str = typer.Option(
        "fail", "--on-error", help="fail: stop at a bad file; skip: skip and report it."
    ),
    missing_list: Path = typer.Option(
        None, "--missing-list", help="Extra list of sample names to skip (one per line)."
    ),
    no_default_missing_list: bool = typer.Option(
        False,
        "--no-default-missing-list",
        help="Do not skip the dataset's missing-skeleton samples.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
) -> None:
    """Raw NTU RGB+D .skeleton files -> normalised per-benchmark pickles (reference-exact)."""
    import sys

    from skelact.data.preprocess import (
        PreprocessError,
        PreprocessSettings,
        main_summary,
        preprocess,
    )
    from skelact.data.skeleton_file import SkeletonFormatError

    if workers < 0:
        _fail("--workers must be >= 0")
    settings = PreprocessSettings(
        dataset=dataset,
        raw_dir=raw_dir,
        out_dir=out_dir,
        benchmarks=tuple(benchmark) if benchmark else None,
        format=fmt,  # type: ignore[arg-type]
        workers=workers or None,
        on_error=on_error,  # type: ignore[arg-type]
        missing_list=missing_list,
        default_missing_list=not no_default_missing_list,
        progress=not quiet and sys.stderr.isatty(),
    )
    try:
        result = preprocess(settings)
    except (PreprocessError, SkeletonFormatError) as exc:
        _fail(f"{exc} (nothing was written)")
        return
    if not quiet:
        typer.echo(main_summary(result))
    if result.skipped_bad:
        typer.secho(
            f"{len(result.skipped_bad)} bad files were skipped; reasons in {result.report_path}",
            fg=typer.colors.YELLOW,
            err=True,
        )


# --- end preprocess ---

# --- validate (owner: data path) ---


@app.command("validate")
def validate_cmd(
    pkl: Path = typer.Argument(..., help="A preprocessed skeleton pickle (either format)."),
    split: str | None = typer.Option(
        None, "--split", help="Subset of a PYSKL/MMAction2 1.x file, e.g. xsub_val."
    ),
) -> None:
    """Check a skeleton pickle safely and summarise it; exit 1 listing the problems if any."""
    from skelact.data.dataset import validate_file

    report = validate_file(pkl, split=split)
    if report.num_samples and not report.joints:  # no sample was readable: nothing to summarise
        typer.echo(f"file       {report.path}\nformat     {report.format}")
        typer.echo(f"samples    {report.num_samples} (none usable)")
    elif report.num_samples:
        persons = ", ".join(f"M={m}: {n}" for m, n in report.persons.items()) or "-"
        gaps = report.missing_labels
        gap_text = "none" if not gaps else f"{len(gaps)} class(es) without samples: {gaps[:20]}"
        if len(gaps) > 20:
            gap_text += " ..."
        counts = list(report.label_counts.values())
        lines = [
            f"file       {report.path}" + (f" (split {report.split})" if report.split else ""),
            f"format     {report.format}",
            f"samples    {report.num_samples}",
            f"classes    {report.num_classes} (labels 0..{report.num_classes - 1}); "
            f"samples per class min {min(counts, default=0)} max {max(counts, default=0)}",
            f"frames     min {report.frames_min}  median {report.frames_median:g}  "
            f"max {report.frames_max}",
            f"persons    {persons}",
            f"joints     {report.joints}",
            f"channels   {report.channels}",
            f"NaN        {report.nan_count} value(s) in {report.samples_with_nan} sample(s)",
            f"label gaps {gap_text}",
        ]
        typer.echo("\n".join(lines))
    if report.problems:
        shown = report.problems[:50]
        more = len(report.problems) - len(shown)
        body = "\n  ".join(shown) + (f"\n  ... and {more} more" if more else "")
        _fail(f"{pkl}: {len(report.problems)} problem(s):\n  {body}")
    typer.secho("OK", fg=typer.colors.GREEN)


# --- end validate ---

# --- flops (owner: models) ---


@app.command("flops")
def flops(
    model: str | None = typer.Option(
        None, "--model", "-m", help="One model (tscnn, hcn, hcnb, tacnn, dgcn); default all."
    ),
    num_classes: int = typer.Option(60, "--num-classes", min=1, help="Classes of the head."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """Parameters and GFLOPs (mmcv-style MACs) of the models for one 1 x 3 x T x 25 x 2 sample."""
    import json

    from skelact.models import MODEL_NAMES
    from skelact.models.complexity import complexity_table, format_table

    if model is not None and model not in MODEL_NAMES:
        _fail(f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
    rows = complexity_table(None if model is None else [model], num_classes=num_classes)
    typer.echo(json.dumps(rows, indent=2) if as_json else format_table(rows))


# --- end flops ---

# --- train, test, predict (owner: engine) ---


def _parse_model_options(items: list[str] | None) -> dict:
    """``--model-option key=value`` pairs; values parsed as JSON when they parse (1, 0.5, true)."""
    import json

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--model-option expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@app.command("train")
def train_cmd(
    model: str = typer.Option(..., "--model", "-m", help="tscnn, hcn, hcnb, tacnn or dgcn."),
    train_path: Path = typer.Option(..., "--train", help="Training pickle."),
    val_path: Path = typer.Option(..., "--val", help="Validation pickle."),
    out_dir: Path = typer.Option(..., "--out-dir", help="Checkpoints, logs and metrics go here."),
    seed: int | None = typer.Option(None, "--seed", help="Run seed (default: 0)."),
    epochs: int | None = typer.Option(None, "--epochs", help="(default: recipe)"),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Global batch over all ranks (default: 64)."
    ),
    lr: float | None = typer.Option(
        None, "--lr", help="LR at the reference batch of 64 (default: recipe)."
    ),
    scale_lr: bool | None = typer.Option(
        None,
        "--scale-lr/--no-scale-lr",
        help="Scale the LR linearly with the global batch (default: on).",
    ),
    weight_decay: float | None = typer.Option(None, "--weight-decay", help="(default: recipe)"),
    optimizer: str | None = typer.Option(None, "--optimizer", help="adam | sgd (default: recipe)"),
    clip_len: int | None = typer.Option(None, "--clip-len", help="Frames per clip [recipe]."),
    val_interval: int | None = typer.Option(
        None, "--val-interval", help="Validate every k epochs (default: recipe)."
    ),
    val_batch_size: int | None = typer.Option(None, "--val-batch-size", help="Global."),
    num_classes: int | None = typer.Option(None, "--num-classes", help="(default: from data)"),
    model_option: list[str] | None = typer.Option(
        None, "--model-option", help="Model builder option KEY=VALUE (repeatable)."
    ),
    train_split: str | None = typer.Option(None, "--train-split", help="pyskl: e.g. xsub_train"),
    val_split: str | None = typer.Option(None, "--val-split", help="pyskl: e.g. xsub_val"),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda (default: auto)"),
    deterministic: bool | None = typer.Option(
        None, "--deterministic/--no-deterministic", help="Deterministic kernels, fixed threads."
    ),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    amp: str | None = typer.Option(None, "--amp", help="none | bf16 | fp16 (CUDA only)."),
    compile_: bool | None = typer.Option(
        None, "--compile/--no-compile", help="torch.compile the model."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT_DIR/last.pt."),
    stop_after_epoch: int | None = typer.Option(
        None, "--stop-after-epoch", help="Stop (resumably) after this epoch."
    ),
    checkpoint_interval: int | None = typer.Option(
        None, "--checkpoint-interval", help="Write last.pt every k epochs (default: 1)."
    ),
    track: bool | None = typer.Option(
        None, "--track/--no-track", help="Log to MLflow (default: on)."
    ),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow URI."),
    experiment: str | None = typer.Option(None, "--experiment", help="MLflow experiment."),
    run_name: str | None = typer.Option(None, "--run-name", help="MLflow run name."),
    benchmark: str | None = typer.Option(
        None, "--benchmark", help="Benchmark tag (default: the pickle's folder name)."
    ),
    params: Path | None = typer.Option(
        None, "--params", help="params.yaml: recipe overrides (CLI options win)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the start and end lines."),
) -> None:
    """Train a model with its reference recipe (works under torchrun for DDP)."""
    import json
    import os

    from skelact.engine.recipes import TrainConfig, apply_overrides
    from skelact.engine.train import guess_benchmark, train

    overrides: dict = {}
    if params is not None:
        from skelact.config import load_train_overrides

        try:
            overrides.update(
                load_train_overrides(
                    params, model, benchmark or guess_benchmark(str(train_path), train_split)
                )
            )
        except Exception as exc:
            _fail(f"{params}: {exc}")
    cli = {
        "seed": seed, "epochs": epochs, "batch_size": batch_size, "lr": lr, "scale_lr": scale_lr,
        "weight_decay": weight_decay, "optimizer": optimizer, "clip_len": clip_len,
        "val_interval": val_interval, "val_batch_size": val_batch_size,
        "num_classes": num_classes, "train_split": train_split, "val_split": val_split,
        "device": device, "deterministic": deterministic, "threads": threads, "amp": amp,
        "compile": compile_, "stop_after_epoch": stop_after_epoch,
        "checkpoint_interval": checkpoint_interval, "track": track,
        "tracking_uri": tracking_uri, "experiment": experiment, "run_name": run_name,
        "benchmark": benchmark,
    }  # fmt: skip
    overrides.update({k: v for k, v in cli.items() if v is not None})
    if model_option:
        overrides["model_options"] = {
            **overrides.get("model_options", {}),
            **_parse_model_options(model_option),
        }
    overrides.update(model=model, train_path=str(train_path), val_path=str(val_path),
                     out_dir=str(out_dir), resume=resume, quiet=quiet)  # fmt: skip
    for path in (train_path, val_path):
        if not path.is_file():
            _fail(f"data file not found: {path}")
    try:
        config = apply_overrides(TrainConfig(), overrides)
        result = train(config)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        if type(exc).__name__ not in ("TrackingError",) and isinstance(exc, RuntimeError):
            raise
        _fail(str(exc))
    if not quiet and int(os.environ.get("RANK", "0")) == 0:
        typer.echo(json.dumps({k: getattr(result, k) for k in (
                "best_top1", "best_epoch", "final_top1", "final_top5", "last_epoch",
                "completed", "seconds", "mlflow_run_id")}, indent=2))  # fmt: skip


@app.command("test")
def test_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Own or SkelAct/MMAction2 .pth."),
    data: Path = typer.Option(..., "--data", help="Pickle to evaluate on."),
    out_dir: Path = typer.Option(..., "--out-dir", help="Where metrics and tables go."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model name (required for SkelAct/MMAction2 checkpoints)."
    ),
    split: str | None = typer.Option(None, "--split", help="pyskl files: e.g. xsub_val."),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    clip_len: int | None = typer.Option(None, "--clip-len", help="(default: checkpoint/recipe)"),
    clip_ratio: float | None = typer.Option(
        None, "--clip-ratio", help="Center-crop ratio (default: checkpoint/recipe)."
    ),
    amp: str = typer.Option("none", "--amp", help="none | bf16 | fp16 (CUDA only)."),
    track: bool | None = typer.Option(
        None, "--track/--no-track", help="Log into MLflow (default: on, or params.yaml's)."
    ),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri"),
    experiment: str = typer.Option("skelact", "--experiment", help="For untracked checkpoints."),
    child_run: bool = typer.Option(
        False, "--child-run", help="Log to a new run linked to the training run."
    ),
    params: Path | None = typer.Option(
        None, "--params", help="params.yaml: its tracking settings apply (CLI options win)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Evaluate a checkpoint: metrics.json, per-class, confusion matrix, predictions."""
    import json

    from skelact.engine.evaluate import EvalConfig, evaluate

    for path in (checkpoint, data):
        if not path.is_file():
            _fail(f"file not found: {path}")
    if params is not None:
        from skelact.config import ConfigError, load_params

        try:
            tracking = load_params(params).tracking
        except (ConfigError, FileNotFoundError) as exc:
            _fail(str(exc))
        track = tracking.enabled if track is None else track
        tracking_uri = tracking_uri or tracking.uri
    track = True if track is None else track
    cfg = EvalConfig(
        checkpoint=str(checkpoint), data=str(data), out_dir=str(out_dir), model=model,
        split=split, batch_size=batch_size, device=device, clip_len=clip_len,
        clip_ratio=clip_ratio, amp=amp, track=track, tracking_uri=tracking_uri,
        experiment=experiment, child_run=child_run, quiet=quiet,
    )  # fmt: skip
    try:
        result = evaluate(cfg)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    summary = {k: getattr(result, k) for k in ("top1", "top5", "mean_class_accuracy",
                                                 "num_samples", "out_dir")}  # fmt: skip
    typer.echo(json.dumps(summary) if quiet else json.dumps(summary, indent=2))


@app.command("predict")
def predict_cmd(
    file: Path = typer.Argument(..., help="One raw NTU .skeleton file."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Own or SkelAct/MMAction2 .pth."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model name (required for SkelAct/MMAction2 checkpoints)."
    ),
    top_k: int = typer.Option(5, "--top-k", min=1),
    device: str = typer.Option("auto", "--device"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Top-k actions for one raw .skeleton file (same preprocessing and val sampling)."""
    import json

    from skelact.engine.predict import predict_file

    for path in (file, checkpoint):
        if not path.is_file():
            _fail(f"file not found: {path}")
    try:
        result = predict_file(file, checkpoint, model=model, top_k=top_k, device=device)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    typer.echo(f"{result.sample} ({result.model}, {result.num_frames} frames)")
    if result.label is not None and result.label >= 0:
        typer.echo(f"label: A{result.label + 1:03d} {result.label_name}")
    for rank, (cls, name, prob) in enumerate(result.top, start=1):
        typer.echo(f"{rank}. A{cls + 1:03d} {name:<45} {prob:7.2%}")


# --- end train ---

# --- report (owner: pipeline) ---


@app.command("report")
def report_cmd(
    params: Path | None = typer.Option(
        None,
        "--params",
        help="params.yaml: report exactly its models x benchmarks x seeds (a missing one is an "
        "error). Without it, every run found under --eval-dir is reported.",
    ),
    eval_dir: Path = typer.Option(
        Path("eval"), "--eval-dir", help="Evaluation results: <benchmark>/<model>/seed<N>/."
    ),
    runs_dir: Path = typer.Option(
        Path("runs"), "--runs-dir", help="Training outputs (for training times)."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out-dir", help="Where results.md/.json and the chart go (default: reports)."
    ),
    source: str | None = typer.Option(
        None, "--source", help="Data source named in the report (default: from --params)."
    ),
) -> None:
    """Collect evaluated runs into reports/results.md, results.json and an accuracy/GFLOPs chart."""
    from skelact.config import ConfigError, load_params
    from skelact.report import ReportError, make_report

    models = benchmarks = seeds = None
    out = out_dir
    if params is not None:
        try:
            settings = load_params(params)
        except ConfigError as exc:
            _fail(str(exc))
            return
        models, benchmarks, seeds = settings.models, settings.benchmarks, settings.seeds
        source = source or settings.data.source
        out = out or Path(settings.report.out_dir)
    try:
        result = make_report(
            eval_root=eval_dir,
            out_dir=out or Path("reports"),
            source=source or "synthetic",
            models=models,
            benchmarks=benchmarks,
            seeds=seeds,
            runs_root=runs_dir,
        )
    except ReportError as exc:
        _fail(str(exc))
        return
    for row in result.rows:
        typer.echo(
            f"{row['benchmark']:6s} {row['model']:6s} top-1 {row['top1_mean']:6.2f} +- "
            f"{row['top1_std']:.2f} over {len(row['seeds'])} seed(s)"
        )
    typer.echo(f"wrote {result.markdown}, {result.json}, {result.chart}")


# --- end report ---


# --- grid command ---


@app.command("grid")
def grid_cmd(
    launcher: str = typer.Option("slurm", "--launcher", help="slurm (sbatch) | local (bash here)."),
    stages: str = typer.Option("train,evaluate", "--stages", help="Matrix stages per element."),
    partition: str | None = typer.Option(None, "--partition", help="SLURM partition."),
    gpus_per_task: int = typer.Option(0, "--gpus-per-task", help="GPUs per element (--gres)."),
    cpus_per_task: int | None = typer.Option(None, "--cpus-per-task", help="CPUs per element."),
    time_limit: str | None = typer.Option(None, "--time", help="Per element, HH:MM:SS."),
    max_parallel: int | None = typer.Option(None, "--max-parallel", help="Elements at once (%N)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the sbatch scripts only."),
    wait: bool = typer.Option(False, "--wait", help="Return when the grid has finished."),
    status: bool = typer.Option(False, "--status", help="Show the newest grid's summary."),
    root: Path = typer.Option(Path("."), "--root", help="The DVC project."),
) -> None:
    """Run the stale train/evaluate stages of the grid as a SLURM job array, then the report."""
    from skelact import grid
    from skelact.errors import SkelactError

    try:
        if status:
            lines = grid.grid_status(root)
        else:
            settings = grid.GridSettings(
                root=root, launcher=launcher, partition=partition,
                stages=tuple(s.strip() for s in stages.split(",") if s.strip()),
                gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task, time=time_limit,
                max_parallel=max_parallel, dry_run=dry_run, wait=wait,
            )  # fmt: skip
            result = grid.run_grid(settings)
            lines = result.lines
            if result.summary and result.summary["failed"]:
                typer.echo("\n".join(lines))
                raise typer.Exit(1)
    except SkelactError as exc:
        _fail(str(exc))
        return
    typer.echo("\n".join(lines))


# --- end grid command ---


def main() -> None:
    app()


if __name__ == "__main__":
    main()
