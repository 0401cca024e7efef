"""Training, single process or under ``torchrun`` with DDP: ``setup`` -> per epoch
``train_one_epoch`` -> ``validate`` -> ``save`` -> ``finish``. :func:`train` reads top to bottom.

Reproducibility by construction: every random choice of an epoch (shuffle order, crop and
rotation draws, dropout) is derived from ``(seed, epoch, rank)`` rather than from generator state
carried over from earlier epochs, so resuming from ``last.pt`` replays exactly the epochs an
uninterrupted run would have run. ``deterministic=True`` additionally pins torch to deterministic
kernels and a fixed thread count so that two runs with the same seed are bit-identical on CPU.

Speed without changing results: each epoch's augmentation draws and batch plan are made and
uploaded once before its first step, batches are gathered from the device-resident set, the
optimizer update is fused on CUDA, and device values (the loss for the progress bar, the
non-finite flags) are read every few steps only, so a GPU step never waits for the host. TF32,
bf16 (``amp``), ``compile``, ``cuda_graphs`` and ``drop_last`` are options, off by default.

Trust: one writer per output folder (a lock), the first non-finite loss stops the run naming
epoch and step, no checkpoint with non-finite weights is ever written, and SIGINT/SIGTERM stop
the run at a step boundary with ``last.pt`` left at the last complete epoch (``--resume``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from signal import SIGTERM
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from skelact.atomic import atomic_write_text, remove_stale_temps
from skelact.engine import distributed as D
from skelact.engine.checkpointing import (
    atomic_save,
    check_resume_config,
    load_own_checkpoint,
    make_checkpoint,
    read_metrics_log,
    restore_rng_state,
)
from skelact.engine.determinism import derived_seed, restore_execution_mode, set_execution_mode
from skelact.engine.evaluate import autocast_context, infer
from skelact.engine.metrics import topk_correct
from skelact.engine.optim import (
    build_optimizer,
    build_scheduler,
    effective_lr,
    use_implementation,
)
from skelact.engine.progress import EpochProgress, RunLog
from skelact.engine.recipes import TrainConfig, resolve_config
from skelact.engine.safety import (
    NonFiniteError,
    StopRequest,
    TrainingError,
    check_finite_weights,
    stop_on_signals,
)
from skelact.errors import InterruptedRun
from skelact.locking import output_lock

# Per-epoch record keys that measure time, not the trajectory (they differ between reruns).
TIMING_KEYS = ("seconds", "samples_per_s", "epoch_seconds", "val_seconds")


# What a finished run leaves in its folder (keys of TrainResult.files: the stems).
RUN_FILES = (
    "last.pt", "best.pt", "metrics.jsonl", "history.csv", "val_history.csv", "summary.json",
    "run_info.json", "config.json", "curves.png", "train.log",
)  # fmt: skip
INFO_FIELDS = ("model", "benchmark", "device", "completed", "mlflow_run_id", "out_dir", "files",
               "layout", "dims", "with_score", "stream")  # fmt: skip


@dataclass
class TrainResult:
    """What a run produced: the numbers go to ``summary.json``, the rest to ``run_info.json``."""

    out_dir: str
    model: str
    completed: bool  # False when stopped early by stop_after_epoch
    last_epoch: int
    epochs: int
    best_top1: float | None
    best_top5: float | None
    best_epoch: int | None
    final_top1: float | None
    final_top5: float | None
    final_loss: float | None
    effective_batch_size: int
    per_rank_batch_size: int
    world_size: int
    lr: float
    base_lr: float
    num_classes: int
    num_train: int
    num_val: int
    seed: int
    device: str
    seconds: float
    mlflow_run_id: str | None = None
    benchmark: str | None = None
    layout: str = "ntu25"  # the data's joint layout
    dims: int = 3  # coordinates per joint: 2 (x, y) or 3 (x, y, z)
    with_score: bool = False  # whether the joint score was an input channel
    stream: str = "joint"  # what the model saw of each clip (skelact.data.streams)
    files: dict[str, str] = field(default_factory=dict)

    def metrics(self) -> dict[str, float | int]:
        """The numeric results (``summary.json``, a DVC metrics file: numbers only)."""
        return {
            k: v
            for k, v in asdict(self).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k not in INFO_FIELDS
        }

    def info(self) -> dict[str, Any]:
        """Names, paths, ids and flags (``run_info.json``)."""
        values = asdict(self)
        return {k: values[k] for k in INFO_FIELDS}


@dataclass
class Run:
    """Everything a training run holds between epochs (built by :func:`setup`)."""

    cfg: TrainConfig
    env: D.DistEnv
    device: torch.device
    out_dir: Path
    log: RunLog
    benchmark: str | None
    train_set: Any
    val_set: Any
    class_names: list[str] | None  # from classes.txt beside the training data, when present
    train_labels: torch.Tensor
    val_labels: np.ndarray
    train_sampler: Any
    val_sampler: Any
    num_classes: int
    model: torch.nn.Module  # the bare model: what is validated and saved
    train_model: torch.nn.Module  # the model wrapped for DDP / torch.compile
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    lr: float
    per_rank: int
    val_per_rank: int
    t_start: float
    start_epoch: int = 0
    saved_epoch: int = 0  # the epoch last.pt holds
    best: dict = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)
    run_id: str | None = None
    past_seconds: float = 0.0

    def elapsed(self) -> float:
        return self.past_seconds + time.perf_counter() - self.t_start


# ----------------------------------------------------------------------------- the run


def train(config: TrainConfig) -> TrainResult:
    """Train ``config.model`` as configured; joins the torchrun job when there is one."""
    cfg = resolve_config(config)
    if cfg.seed < 0:
        raise TrainingError(f"seed must be >= 0, not {cfg.seed}")
    was_initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
    env, device = D.init_distributed(cfg.device)
    prev = set_execution_mode(cfg, device)
    try:
        announce = _announce_stop if env.is_main else None
        with (
            fp32_precision(cfg, device),
            _output_folder(Path(cfg.out_dir), env),
            stop_on_signals(announce) as stop,
        ):
            return _train(cfg, env, device, stop)
    finally:
        restore_execution_mode(prev)
        if not was_initialized:
            D.shutdown_distributed(env)


def _train(cfg: TrainConfig, env: D.DistEnv, device: torch.device, stop: StopRequest):
    from skelact.tracking import open_run

    run = setup(cfg, env, device)
    with open_run(
        enabled=cfg.track and env.is_main, experiment=cfg.experiment, run_name=_run_name(run),
        tracking_uri=cfg.tracking_uri, run_id=run.run_id, tags=_tags(run), quiet=cfg.quiet,
    ) as tracker:  # fmt: skip
        run.run_id = tracker.run_id
        start_tracking(run, tracker)
        epoch = run.start_epoch
        for epoch in range(run.start_epoch + 1, cfg.epochs + 1):
            record = train_one_epoch(run, epoch, stop)
            if record is None:  # a signal came mid-epoch: the partial epoch is dropped
                interrupt(run, tracker, stop)
            if epoch % cfg.val_interval == 0 or epoch == cfg.epochs:
                record.update(validate(run))
            improved = update_best(run, record)
            run.records.append(record)
            stopping = _any_rank(run, stop.signum is not None)
            save(run, tracker, record, improved, stopping=stopping)
            if stopping and epoch < cfg.epochs:
                interrupt(run, tracker, stop)
            if cfg.stop_after_epoch is not None and epoch >= cfg.stop_after_epoch:
                break
        return finish(run, tracker, epoch)


# ----------------------------------------------------------------------------- setup


def setup(
    cfg: TrainConfig, env: D.DistEnv, device: torch.device, sets: tuple[Any, Any] | None = None
) -> Run:
    """Data, model, optimizer and schedule; then the checkpoint's state when resuming.

    ``sets``: (train, val) host `SkeletonSet`s to use instead of reading ``cfg.train_path`` /
    ``cfg.val_path`` (the throughput benchmark's in-memory data).
    """
    from skelact.data.annotations import DEFAULT_LAYOUT
    from skelact.data.dataset import SkeletonSet
    from skelact.data.transforms import ClipSampler
    from skelact.models import build_model, built_layout
    from skelact.models.tuning import keep_training_memory, tune_memory_format

    t_start = time.perf_counter()
    keep_training_memory()  # before the first batch: no page faults per step (values unchanged)
    if device.type != "cuda" and cfg.amp != "none":
        raise TrainingError(f"--amp {cfg.amp} needs a CUDA device (this run uses {device})")
    for flag in ("cuda_graphs", "tf32"):
        if device.type != "cuda" and getattr(cfg, flag):
            raise TrainingError(f"{flag} needs a CUDA device (this run uses {device})")
    if cfg.batch_size % env.world_size:
        raise TrainingError(
            f"global batch size {cfg.batch_size} is not divisible by the world size "
            f"{env.world_size}"
        )
    out_dir = Path(cfg.out_dir)
    log = RunLog(out_dir, enabled=env.is_main, quiet=cfg.quiet)

    # data: whole sets in memory as ragged arrays (uploaded once when on a GPU); labels are read
    # from the host copies, before the frames are uploaded
    # labels outside [0, num_classes) are refused here, naming the sample
    names = None
    if sets is None:
        names = data_class_names(cfg.train_path, cfg.num_classes)
        declared = cfg.num_classes or (len(names) if names else None)
        train_set = SkeletonSet.from_file(cfg.train_path, cfg.train_split, num_classes=declared,
                                          with_score=cfg.with_score)  # fmt: skip
        val_set = SkeletonSet.from_file(cfg.val_path, cfg.val_split, num_classes=declared,
                                        with_score=cfg.with_score)  # fmt: skip
    else:
        train_set, val_set = sets
        declared = cfg.num_classes
    check_same_data(train_set, val_set)
    num_classes = class_count(declared, train_set, val_set, log)
    train_labels = torch.as_tensor(train_set.labels, dtype=torch.int64, device=device)
    val_labels = np.asarray(val_set.labels)
    if device.type == "cuda":
        train_set, val_set = train_set.to(device), val_set.to(device)

    # model, optimizer, schedule (the same initial weights on every rank, by seed)
    torch.manual_seed(cfg.seed)
    # the graph (DGCN) and the checkpoint follow the data's layout; ntu25 is build_model's default
    layout = model_layout(train_set, cfg.layout_file)
    layout_arg = {} if layout == DEFAULT_LAYOUT else {"layout": layout}
    model = build_model(
        cfg.model, num_classes=num_classes, clip_len=cfg.clip_len,
        num_persons=train_set.num_persons, num_joints=train_set.num_joints,
        in_channels=train_set.num_channels, **layout_arg, **cfg.model_options,
    ).to(device)  # fmt: skip
    if env.world_size == 1:  # DDP needs the same weight strides on every rank: no per-rank choice
        batch = (cfg.batch_size, train_set.num_channels, cfg.clip_len, train_set.num_joints,
                 train_set.num_persons)  # fmt: skip
        memory_format = tune_memory_format(model, batch, deterministic=cfg.deterministic)
        log(f"weight layout: {memory_format}")
    lr = effective_lr(cfg)
    optimizer = build_optimizer(model, cfg, lr)
    stream = {"stream": cfg.stream, "parents": built_layout(model).parents}
    run = Run(
        cfg=cfg, env=env, device=device, out_dir=out_dir, log=log,
        benchmark=cfg.benchmark or guess_benchmark(cfg.train_path, cfg.train_split),
        train_set=train_set, val_set=val_set, class_names=names, train_labels=train_labels,
        val_labels=val_labels,
        train_sampler=ClipSampler(
            cfg.clip_len, train=True, rotate=cfg.rotate, dims=train_set.dims,
            scale_range=tuple(cfg.scale_range) if cfg.scale_range else None, min_len=cfg.min_len,
            min_ratio=cfg.train_min_ratio, max_ratio=cfg.train_max_ratio, device=device,
            **stream,
        ),
        val_sampler=ClipSampler(
            cfg.clip_len, train=False, clip_ratio=cfg.val_clip_ratio, dims=train_set.dims,
            device=device, **stream,
        ),
        num_classes=num_classes, model=model, train_model=model, optimizer=optimizer,
        scheduler=build_scheduler(optimizer, cfg),
        scaler=torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16"), lr=lr,
        per_rank=cfg.batch_size // env.world_size,
        val_per_rank=max(1, (cfg.val_batch_size or 2 * cfg.batch_size) // env.world_size),
        t_start=t_start,
    )  # fmt: skip
    if cfg.resume:
        resume(run)

    # parallel wrappers (the bare `model` is what gets evaluated and saved)
    if env.distributed:
        run.train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile or cfg.cuda_graphs:
        # static shapes: a run has two batch sizes at most (full, and the same last batch every
        # epoch), each compiled once; "reduce-overhead" replays CUDA graphs of both passes
        mode = "reduce-overhead" if cfg.cuda_graphs else None
        run.train_model = torch.compile(run.train_model, mode=mode, dynamic=False)
    log(
        f"{cfg.model}: seed {cfg.seed}, {cfg.stream} stream, {len(train_set)} train / "
        f"{len(val_set)} val samples, {num_classes} classes | {train_set.layout}, "
        f"{train_set.dims}-D"
        f"{' + score' if train_set.with_score else ''}, V={train_set.num_joints} | global batch "
        f"{cfg.batch_size} = {run.per_rank}/rank x "
        f"{env.world_size} rank(s) | lr {lr:g} (base {float(cfg.lr):g} at batch "
        f"{cfg.base_batch_size}, linear scaling {'on' if cfg.scale_lr else 'off'}) | "
        f"{cfg.optimizer}, {cfg.epochs} epochs, "
        f"{'cosine' if cfg.lr_schedule == 'cosine' else f'steps {cfg.lr_steps}'} | "
        f"device {device}, amp "
        f"{cfg.amp}, tf32 {cfg.tf32}, compile {cfg.compile}, cuda graphs {cfg.cuda_graphs}, "
        f"drop_last {cfg.drop_last}, deterministic {cfg.deterministic}",
        always=True,
    )
    if env.is_main:
        atomic_write_text(
            out_dir / "config.json",
            json.dumps({"config": _config_dict(run), **run_facts(run)}, indent=2, sort_keys=True)
            + "\n",
        )
    return run


def data_class_names(train_path: str, num_classes: int | None) -> list[str] | None:
    """The names in the ``classes.txt`` beside the training data (None without one); their
    count must equal ``num_classes`` when that is set."""
    from skelact.data.classes import find_classes, read_classes

    path = find_classes(train_path)
    return None if path is None else read_classes(path, num_classes)


def model_layout(data: Any, layout_file: str | None) -> Any:
    """What the model is built for: the data's built-in layout name, or the `Layout` of
    ``layout_file`` (a user layout, which the samples know only by name)."""
    from skelact.layouts import BUILTIN_LAYOUTS, load_layout

    if layout_file is None:
        if data.layout not in BUILTIN_LAYOUTS:
            raise TrainingError(
                f"{data.source}: the samples' layout {data.layout!r} is not built in "
                f"({', '.join(BUILTIN_LAYOUTS)}); set layout_file to its YAML file"
            )
        return data.layout
    layout = load_layout(layout_file)
    if layout.name != data.layout or layout.num_joints != data.num_joints:
        raise TrainingError(
            f"{layout_file}: layout {layout.name!r} with {layout.num_joints} joints, but the "
            f"samples of {data.source} are {data.layout!r} with V = {data.num_joints}"
        )
    return layout


def check_same_data(train_set: Any, val_set: Any) -> None:
    """Train and val sets of the same layout, joints, coordinates and channels, else an error
    naming both files: the model is built for the training data and would misread the other."""
    facts = ("layout", "num_joints", "dims", "num_channels")
    a = {k: getattr(train_set, k) for k in facts}
    b = {k: getattr(val_set, k) for k in facts}
    if a != b:
        differ = "; ".join(f"{k} {a[k]!r} vs {b[k]!r}" for k in facts if a[k] != b[k])
        raise TrainingError(
            f"{val_set.source or 'val set'}: the validation data differs from the training data "
            f"{train_set.source or ''} ({differ}); both must come from the same layout and format"
        )


def class_count(declared: int | None, train_set: Any, val_set: Any, log: RunLog) -> int:
    """The declared count (``num_classes``, or the lines of classes.txt), against which the sets
    have checked every label.

    Without one the count falls back to the largest label + 1, and the log says so: a class
    count guessed from labels silently grows with a stray label (999 -> a 1000-class model).
    """
    if declared is not None:
        return int(declared)
    num_classes = max(train_set.num_classes, val_set.num_classes)
    log(
        f"num_classes is not set: using {num_classes} (largest label + 1 in the data); set "
        f"num_classes to the dataset's class count to have the labels checked",
        always=True,
    )
    return int(num_classes)


def resume(run: Run) -> None:
    """Continue from ``last.pt``: weights, optimizer, schedule, RNG, best and history so far."""
    last_path = run.out_dir / "last.pt"
    if not last_path.is_file():
        run.log(f"--resume: no {last_path} yet, starting from scratch", always=True)
        return
    ckpt = load_own_checkpoint(last_path)
    check_resume_config(ckpt.get("config") or {}, run.cfg, last_path)
    run.model.load_state_dict(ckpt["state_dict"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    use_implementation(run.optimizer, run.model)  # this device's update, not the writer's
    run.scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    restore_rng_state(ckpt["rng"])
    run.start_epoch = run.saved_epoch = int(ckpt["epoch"])
    run.best = dict(ckpt.get("best") or {})
    run.run_id = ckpt.get("mlflow_run_id")
    run.past_seconds = float(ckpt.get("train_seconds", 0.0))
    run.records = read_metrics_log(run.out_dir / "metrics.jsonl", upto_epoch=run.start_epoch)
    run.log(f"resuming from {last_path} after epoch {run.start_epoch}", always=True)
    saved_world = int(ckpt.get("world_size", run.env.world_size))
    if saved_world != run.env.world_size:
        run.log(
            f"warning: checkpoint was written with world size {saved_world}, now "
            f"{run.env.world_size}: the data order per rank differs from the original run"
        )


def start_tracking(run: Run, tracker: Any) -> None:
    """Params and datasets once per run (not again on resume); the config file every time."""
    if run.start_epoch == 0 and run.cfg.track and run.env.is_main:
        tracker.log_params({**_config_dict(run), **run_facts(run)})
        for split, data, context in (
            (run.cfg.train_split or "train", run.cfg.train_path, "training"),
            (run.cfg.val_split or "val", run.cfg.val_path, "validation"),
        ):
            num = len(run.train_set if context == "training" else run.val_set)
            tracker.log_input_dataset(path=data, digest=_file_digest(data), split=split,
                                      num_samples=num, context=context)  # fmt: skip
    tracker.log_artifact(str(run.out_dir / "config.json"))


# ----------------------------------------------------------------------------- one epoch


def train_one_epoch(run: Run, epoch: int, stop: StopRequest) -> dict | None:
    """One pass over the training set; the epoch's record, or None when a signal stopped it.

    The loss is checked for finiteness before its backward pass: on the CPU at every step (a
    free read), on a GPU every ``check_every`` steps (one sync), from flags kept on the device,
    so the error still names the first bad step. A stop request is honoured at the same points.
    """
    cfg, env, device = run.cfg, run.env, run.device
    t0 = time.perf_counter()
    run.train_model.train()
    torch.manual_seed(derived_seed(cfg.seed, epoch, 2, env.rank))  # dropout etc.
    steps, plan, labels = plan_epoch(run, epoch)
    bounds = np.cumsum([0] + [len(idx) for idx in steps]).tolist()
    lr_now = run.scheduler.get_last_lr()[0]
    losses = torch.zeros(len(steps), dtype=torch.float32, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    seen, shown, checked = 0, None, 0
    sync_every = max(1, len(steps) // 50)
    check_every = 1 if device.type == "cpu" else sync_every
    with EpochProgress(
        enabled=env.is_main and not cfg.quiet, epoch=epoch, epochs=cfg.epochs, steps=len(steps)
    ) as bar:
        for step, idx in enumerate(steps):
            a, b = bounds[step], bounds[step + 1]
            x = run.train_sampler.gather(run.train_set, plan[a:b])  # data
            y = labels[a:b]
            if cfg.cuda_graphs:  # a new iteration: the previous replay's outputs may be reused
                torch.compiler.cudagraph_mark_step_begin()
            with autocast_context(device, cfg.amp):
                logits = run.train_model(x)  # forward
            loss = F.cross_entropy(logits.float(), y)  # loss
            losses[step] = loss.detach()
            if step % check_every == 0 or step == len(steps) - 1:
                if _stop_or_raise(run, losses, checked, step, epoch, len(steps), stop):
                    return None
                checked = step + 1
            run.optimizer.zero_grad(set_to_none=True)
            run.scaler.scale(loss).backward()  # backward
            run.scaler.step(run.optimizer)  # step
            run.scaler.update()
            loss_sum += loss.detach().double() * len(idx)
            seen += len(idx)
            if bar.active and (step % sync_every == 0 or step == len(steps) - 1):
                shown = float(loss.detach())
            bar.update(step + 1, seen * env.world_size, shown)
    run.scheduler.step()
    check_finite_weights(run.model, f"epoch {epoch}")
    loss_total, n_total = D.all_reduce_sum([float(loss_sum), seen], env, device)
    seconds = time.perf_counter() - t0
    return {
        "epoch": epoch,
        "loss": loss_total / max(n_total, 1),
        "lr": lr_now,
        "samples_per_s": n_total / max(seconds, 1e-9),
        "epoch_seconds": seconds,
        "val_top1": None,
        "val_top5": None,
        "val_loss": None,
    }


def plan_epoch(run: Run, epoch: int) -> tuple[list[np.ndarray], Any, torch.Tensor]:
    """This rank's batches of ``epoch``, their gather plan and labels, on the run's device.

    Every random choice comes from ``(seed, epoch[, rank])``: the shuffle, then the crop and
    rotation draws, made batch after batch before the first step (the same stream as drawing at
    each step) and uploaded in one copy with the labels. ``drop_last`` leaves out the last
    partial batch (the samples differ per epoch: the order is reshuffled) so that every step
    has one static shape; by default every sample is trained on.
    """
    cfg, env = run.cfg, run.env
    order = np.random.default_rng([cfg.seed, epoch, 0]).permutation(len(run.train_set))
    shard = D.train_shard(order, env)
    if cfg.drop_last and len(shard) >= run.per_rank:
        shard = shard[: len(shard) // run.per_rank * run.per_rank]
    steps = D.batches(shard, run.per_rank, train=True)
    aug_rng = np.random.default_rng([cfg.seed, epoch, 1, env.rank])
    lengths = run.train_set.lengths
    draws = run.train_sampler.draw_batches([lengths[idx] for idx in steps], aug_rng)
    flat = np.concatenate(steps) if steps else np.zeros(0, dtype=np.int64)
    plan = run.train_sampler.plan(run.train_set, flat, draws)
    labels = run.train_labels[_index(flat, run.device)]
    return steps, plan, labels


def _index(indices: np.ndarray, device: torch.device) -> torch.Tensor:
    """Sample indices on ``device`` in one (asynchronous, on CUDA) copy."""
    host = torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64))
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def _stop_or_raise(
    run: Run, losses: torch.Tensor, start: int, step: int, epoch: int, steps: int,
    stop: StopRequest,
) -> bool:  # fmt: skip
    """Raise at the first non-finite loss in ``losses[start:step + 1]``; True to stop now.

    Under DDP the ranks agree (one all-reduce) so that all of them raise or stop together.
    """
    window = losses[start : step + 1]
    if len(window) == 1:  # the CPU path: one scalar read, no reduction kernels
        local_bad = 0 if math.isfinite(float(window[0])) else 1
    else:
        local_bad = int((~torch.isfinite(window)).sum())
    total_bad, stops = local_bad, int(stop.signum is not None)
    if run.env.distributed:
        total_bad, stops = D.all_reduce_sum([total_bad, stops], run.env, run.device)
    if total_bad:
        if local_bad:
            first = start + int((~torch.isfinite(window)).nonzero()[0])
            where = f"the training loss is {float(losses[first])}"
        else:
            first, where = step, "another rank's training loss is not finite"
        raise NonFiniteError(
            f"epoch {epoch} step {first + 1}/{steps}: {where}; stopping (lower the lr, or check "
            f"the data); no checkpoint of this epoch was written"
        )
    return bool(stops)


def update_best(run: Run, record: dict) -> bool:
    """Whether this epoch's val top-1 beats the best so far (the first validation always does)."""
    if record.get("val_top1") is None or (run.best and record["val_top1"] <= run.best["top1"]):
        return False
    run.best = {"top1": record["val_top1"], "top5": record["val_top5"], "epoch": record["epoch"]}
    return True


def _any_rank(run: Run, flag: bool) -> bool:
    """True on every rank when it is true on one (ranks must take the same branch)."""
    return bool(D.all_reduce_sum([int(flag)], run.env, run.device)[0])


def validate(run: Run) -> dict[str, float]:
    """Top-1/top-5 and mean loss on the val set, each sample counted once over the ranks."""
    t1 = time.perf_counter()
    if run.env.distributed:  # evaluate rank 0's BatchNorm statistics everywhere
        for buf in run.model.buffers():
            torch.distributed.broadcast(buf, src=0)
    shard = D.eval_shard(len(run.val_set), run.env)
    logits = infer(run.model, run.val_set, run.val_sampler, shard, run.val_per_rank, run.device,
                   run.cfg.amp)  # fmt: skip
    labels = run.val_labels[shard]
    c1, c5, vloss = 0, 0, 0.0
    if len(shard):
        c1, c5 = topk_correct(logits, labels, (1, 5))
        vloss = float(F.cross_entropy(torch.from_numpy(logits).double(),
                                      torch.from_numpy(labels), reduction="sum"))  # fmt: skip
    c1, c5, vloss, nv = D.all_reduce_sum([c1, c5, vloss, len(shard)], run.env, run.device)
    return {"val_top1": c1 / nv, "val_top5": c5 / nv, "val_loss": vloss / nv,
            "val_seconds": time.perf_counter() - t1}  # fmt: skip


# ----------------------------------------------------------------------------- save / finish


def save(run: Run, tracker: Any, record: dict, improved: bool, *, stopping: bool) -> None:
    """Rank 0: history files, the epoch's log line and metrics, best.pt and (when due) last.pt."""
    from skelact.report import write_train_history

    cfg, epoch = run.cfg, record["epoch"]
    due = (epoch % cfg.checkpoint_interval == 0 or epoch == cfg.epochs
           or cfg.stop_after_epoch == epoch or stopping)  # fmt: skip
    if not run.env.is_main:
        run.saved_epoch = epoch if due else run.saved_epoch
        return
    atomic_write_text(
        run.out_dir / "metrics.jsonl",
        "".join(json.dumps(r, sort_keys=True) + "\n" for r in run.records),
    )
    write_train_history(run.records, run.out_dir)
    msg = (
        f"epoch {epoch}/{cfg.epochs} loss {record['loss']:.4f} lr {record['lr']:.3g} "
        f"{record['samples_per_s']:,.0f} samples/s"
    )
    if record["val_top1"] is not None:
        msg += f" | val top1 {record['val_top1']:.4f} top5 {record['val_top5']:.4f}"
        msg += " (best)" if improved else ""
    run.log(msg)
    tracker.log_metrics({k: v for k, v in record.items() if v is not None and k != "epoch"},
                        step=epoch)  # fmt: skip
    if not (improved or due):
        return
    ckpt = make_checkpoint(
        run.model, optimizer=run.optimizer, scheduler=run.scheduler, scaler=run.scaler,
        epoch=epoch, config=_config_dict(run), best=run.best, mlflow_run_id=run.run_id,
    )  # fmt: skip
    ckpt["world_size"] = run.env.world_size
    ckpt["train_seconds"] = run.elapsed()
    if run.class_names is not None:
        ckpt["class_names"] = list(run.class_names)  # what predict names the classes
    if improved:
        atomic_save(ckpt, run.out_dir / "best.pt")
    if due:
        atomic_save(ckpt, run.out_dir / "last.pt")
        run.saved_epoch = epoch


def interrupt(run: Run, tracker: Any, stop: StopRequest) -> None:
    """End the run for a signal: tracking marked KILLED, :class:`InterruptedRun` raised."""
    kept = (
        f"last.pt holds epoch {run.saved_epoch}: continue with --resume"
        if run.saved_epoch
        else "no checkpoint was written yet"
    )
    why = stop.name or "a signal to another rank"
    run.log(f"stopped by {why}; {kept}", always=True)
    tracker.finish("KILLED")  # not FAILED: --resume reopens the same run
    raise InterruptedRun(f"{run.out_dir}: stopped by {why}; {kept}", stop.signum or SIGTERM)


def finish(run: Run, tracker: Any, epoch: int) -> TrainResult:
    """summary.json (numbers), run_info.json, curves.png; artifacts and model when complete."""
    from skelact.report import plot_training_curves, run_title

    cfg, out_dir, records = run.cfg, run.out_dir, run.records
    completed = epoch >= cfg.epochs
    seconds = run.elapsed()
    final = next((r for r in reversed(records) if r.get("val_top1") is not None), {})
    facts = run_facts(run)
    result = TrainResult(
        out_dir=str(out_dir), model=cfg.model, completed=completed, last_epoch=epoch,
        epochs=cfg.epochs, best_top1=run.best.get("top1"), best_top5=run.best.get("top5"),
        best_epoch=run.best.get("epoch"), final_top1=final.get("val_top1"),
        final_top5=final.get("val_top5"), final_loss=records[-1]["loss"] if records else None,
        effective_batch_size=cfg.batch_size, per_rank_batch_size=run.per_rank,
        world_size=run.env.world_size, lr=run.lr, base_lr=facts["base_lr"],
        num_classes=run.num_classes, num_train=facts["num_train"], num_val=facts["num_val"],
        seed=cfg.seed, device=str(run.device), seconds=seconds, mlflow_run_id=run.run_id,
        benchmark=run.benchmark, layout=facts["layout"], dims=facts["dims"],
        with_score=cfg.with_score, stream=cfg.stream,
    )  # fmt: skip
    if run.env.is_main:
        result.files = {Path(n).stem: str(out_dir / n) for n in RUN_FILES}
        if records:
            plot_training_curves(records, out_dir / "curves.png",
                                 run_title(cfg.model, run.benchmark, cfg.seed))  # fmt: skip
        atomic_write_text(out_dir / "summary.json", _json(result.metrics()))
        atomic_write_text(out_dir / "run_info.json", _json(result.info()))
        tracker.log_metrics({"best_top1": result.best_top1, "best_epoch": result.best_epoch,
                             "train_seconds": seconds})  # fmt: skip
        if completed:
            for key, path in result.files.items():
                if key != "last" and Path(path).is_file():  # last.pt equals best.pt or is stale
                    tracker.log_artifact(path)
            example = run.val_sampler(run.val_set, np.arange(min(2, len(run.val_set))))
            tracker.log_model(best_model(run), input_example=example.cpu().numpy())
            run.log(f"done: best val top1 {result.best_top1} at epoch {result.best_epoch}, "
                    f"{seconds:.1f} s -> {out_dir}", always=True)  # fmt: skip
        else:
            run.log(f"stopped after epoch {epoch} (resume with --resume)", always=True)
            tracker.finish("KILLED")  # not FINISHED: --resume reopens the same run
    D.barrier(run.env)
    return result


def best_model(run: Run) -> torch.nn.Module:
    """A CPU copy of the network with ``best.pt``'s weights: the checkpoint that ``best_top1``
    (and the evaluation stage's ``eval_top1``) describe, so the model MLflow logs and serves is
    that one and not the last epoch's (``last.pt`` stays an artifact of its own)."""
    import copy

    from skelact.models.checkpoint import read_checkpoint, unwrap

    net = copy.deepcopy(unwrap(run.model)).cpu()
    net.load_state_dict(read_checkpoint(run.out_dir / "best.pt")["state_dict"])
    return net.eval()


# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _output_folder(out_dir: Path, env: D.DistEnv):
    """Rank 0 holds the folder's lock for the whole run and first clears dead writers' temps."""
    if not env.is_main:
        yield
        return
    with output_lock(out_dir, "train"):
        remove_stale_temps(out_dir)
        yield


@contextlib.contextmanager
def fp32_precision(cfg: TrainConfig, device: torch.device):
    """On CUDA, float32 matmuls and convolutions in TF32 only with ``tf32`` (it rounds the
    inputs to 10 mantissa bits); otherwise strict IEEE fp32, cuDNN's TF32 default included.
    The previous settings come back afterwards."""
    if device.type != "cuda":
        yield
        return
    backends = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    prev = [b.fp32_precision for b in backends]
    for b in backends:
        b.fp32_precision = "tf32" if cfg.tf32 else "ieee"
    try:
        yield
    finally:
        for b, value in zip(backends, prev, strict=True):
            b.fp32_precision = value


def _announce_stop(stop: StopRequest) -> None:
    print(f"{stop.name} received: stopping at the next step, keeping last.pt (send it again to "
          f"stop at once)", file=sys.stderr, flush=True)  # fmt: skip


def _json(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _config_dict(run: Run) -> dict[str, Any]:
    """The resolved config, with the benchmark filled in (the MLflow param equals the tag)."""
    return {**run.cfg.to_dict(), "benchmark": run.benchmark}


def run_facts(run: Run) -> dict[str, Any]:
    """What the run derived from its config and its environment."""
    return {
        "effective_batch_size": run.cfg.batch_size,
        "per_rank_batch_size": run.per_rank,
        "world_size": run.env.world_size,
        "effective_lr": run.lr,
        "base_lr": float(run.cfg.lr),
        "num_classes": run.num_classes,
        "num_train": len(run.train_set),
        "num_val": len(run.val_set),
        "device": str(run.device),
        "layout": run.train_set.layout,
        "dims": run.train_set.dims,
    }


def _tags(run: Run) -> dict[str, Any]:
    return {"model": run.cfg.model, "benchmark": run.benchmark, "seed": run.cfg.seed,
            "device": str(run.device), "world_size": run.env.world_size,
            "layout": run.train_set.layout, "stream": run.cfg.stream}  # fmt: skip


def _run_name(run: Run) -> str:
    """A readable default, so that `mlflow ui` lists "hcn-xsub-seed0", not a random name."""
    stream = None if run.cfg.stream == "joint" else run.cfg.stream
    parts = (run.cfg.model, stream, run.benchmark, f"seed{run.cfg.seed}")
    return run.cfg.run_name or "-".join(str(p) for p in parts if p)


def _file_digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:16]


def guess_benchmark(path: str, split: str | None) -> str | None:
    """'xsub' from '.../xsub/train.pkl' or from a pyskl split name 'xsub_train'."""
    if split and "_" in split:
        return split.rsplit("_", 1)[0]
    parent = Path(path).parent.name
    return parent or None
