"""Training: one function, readable top to bottom (data -> forward -> loss -> backward -> step ->
eval -> checkpoint), single process or under ``torchrun`` with DDP.

Reproducibility by construction: every random choice of an epoch (shuffle order, crop and
rotation draws, dropout) is derived from ``(seed, epoch, rank)`` rather than from generator state
carried over from earlier epochs, so resuming from ``last.pt`` replays exactly the epochs an
uninterrupted run would have run. ``deterministic=True`` additionally pins torch to deterministic
kernels and a fixed thread count so that two runs with the same seed are bit-identical on CPU.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from skelact.atomic import atomic_write, atomic_write_text
from skelact.engine import distributed as D
from skelact.engine.checkpointing import (
    atomic_save,
    load_own_checkpoint,
    make_checkpoint,
    restore_rng_state,
)
from skelact.engine.evaluate import autocast_context, infer
from skelact.engine.metrics import topk_correct
from skelact.engine.progress import EpochProgress, RunLog
from skelact.engine.recipes import (
    TrainConfig,
    build_optimizer,
    build_scheduler,
    effective_lr,
    resolve_config,
)

# Config fields that define the optimisation trajectory: resuming with other values would not
# continue the same run, so they must match the checkpoint's.
TRAJECTORY_FIELDS = (
    "model", "seed", "batch_size", "base_batch_size", "scale_lr", "lr", "weight_decay",
    "optimizer", "momentum", "nesterov", "lr_steps", "lr_gamma", "clip_len", "train_min_ratio",
    "train_max_ratio", "min_len", "val_clip_ratio", "rotate", "decay_mult", "model_options",
    "amp",
)  # fmt: skip
TIMING_KEYS = ("seconds", "samples_per_s", "epoch_seconds", "val_seconds")


@dataclass
class TrainResult:
    """What a run produced (also written to ``summary.json``)."""

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
    files: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers, well mixed (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]) >> 1


def set_execution_mode(cfg: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Threads, deterministic kernels, cuDNN flags. Returns the previous values to restore."""
    prev = {
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
    }
    threads = cfg.threads or (1 if cfg.deterministic and device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(int(threads))
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # On CUDA a few backward kernels (max pooling) have no deterministic version: warn there
        # rather than refuse to train; on CPU everything used is deterministic, so be strict.
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return prev


def restore_execution_mode(prev: dict[str, Any]) -> None:
    torch.set_num_threads(prev["threads"])
    torch.use_deterministic_algorithms(prev["deterministic"], warn_only=prev["warn_only"])
    torch.backends.cudnn.benchmark = prev["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = prev["cudnn_deterministic"]


def guess_benchmark(path: str, split: str | None) -> str | None:
    """'xsub' from '.../xsub/train.pkl' or from a pyskl split name 'xsub_train'."""
    if split and "_" in split:
        return split.rsplit("_", 1)[0]
    parent = Path(path).parent.name
    return parent or None


def read_metrics_log(path: Path, upto_epoch: int | None = None) -> list[dict]:
    """Records of ``metrics.jsonl`` (optionally only epochs <= upto_epoch)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            if upto_epoch is None or rec["epoch"] <= upto_epoch:
                records.append(rec)
    return records


def write_history(records: list[dict], out_dir: Path) -> None:
    """metrics.jsonl and history.csv (for DVC plots) from the full list of epoch records."""
    atomic_write_text(
        out_dir / "metrics.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ["epoch", "loss", "lr", "val_top1", "val_top5", "samples_per_s"]
    w.writerow(cols)
    for r in records:
        w.writerow(["" if r.get(c) is None else r[c] for c in cols])
    atomic_write_text(out_dir / "history.csv", buf.getvalue())


def plot_curves(records: list[dict], path: Path, title: str) -> None:
    """Training loss and val top-1 per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot([r["epoch"] for r in records], [r["loss"] for r in records], marker=".")
    a.set_xlabel("epoch")
    a.set_ylabel("train loss")
    val = [r for r in records if r.get("val_top1") is not None]
    b.plot([r["epoch"] for r in val], [r["val_top1"] for r in val], marker="o", label="top-1")
    b.plot([r["epoch"] for r in val], [r["val_top5"] for r in val], marker="o", label="top-5")
    b.set_xlabel("epoch")
    b.set_ylabel("val accuracy")
    b.set_ylim(0, 1)
    b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def _check_resume_config(saved: dict, cfg: TrainConfig, path: Path) -> None:
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {getattr(cfg, k)!r}"
        for k in TRAJECTORY_FIELDS
        if k in saved and saved.get(k) != getattr(cfg, k)
    ]
    if diffs:
        raise ValueError(
            f"cannot resume from {path}: the run was started with other settings ("
            + "; ".join(diffs)
            + "). Use the same options, or a new --out-dir."
        )


# ----------------------------------------------------------------------------- train


def train(config: TrainConfig) -> TrainResult:
    """Train ``config.model`` as configured; joins the torchrun job when there is one."""
    cfg = resolve_config(config)
    if cfg.seed < 0:
        raise ValueError(f"seed must be >= 0, not {cfg.seed}")
    was_initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
    env, device = D.init_distributed(cfg.device)
    prev = set_execution_mode(cfg, device)
    try:
        return _train(cfg, env, device)
    finally:
        restore_execution_mode(prev)
        if not was_initialized:
            D.shutdown_distributed(env)


def _train(cfg: TrainConfig, env: D.DistEnv, device: torch.device) -> TrainResult:
    from skelact.data.dataset import SkeletonSet
    from skelact.data.transforms import ClipSampler
    from skelact.models import build_model
    from skelact.tracking import open_run

    t_start = time.perf_counter()
    if device.type != "cuda" and cfg.amp != "none":
        raise ValueError(f"--amp {cfg.amp} needs a CUDA device (this run uses {device})")
    if cfg.batch_size % env.world_size:
        raise ValueError(
            f"global batch size {cfg.batch_size} is not divisible by the world size "
            f"{env.world_size}"
        )
    out_dir = Path(cfg.out_dir)
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    log = RunLog(out_dir, enabled=env.is_main, quiet=cfg.quiet)

    # ---- data: whole sets in memory as ragged arrays (uploaded once when on a GPU)
    train_set = SkeletonSet.from_file(cfg.train_path, cfg.train_split)
    val_set = SkeletonSet.from_file(cfg.val_path, cfg.val_split)
    num_classes = cfg.num_classes or max(train_set.num_classes, val_set.num_classes)
    for name, s in (("train", train_set), ("val", val_set)):
        if s.num_classes > num_classes:
            raise ValueError(
                f"{name} data {s.source}: labels go up to {s.num_classes - 1} but num_classes "
                f"is {num_classes}"
            )
    # labels are read from the host copies, before the frames are uploaded
    train_labels = torch.as_tensor(train_set.labels, dtype=torch.int64, device=device)
    val_labels = np.asarray(val_set.labels)
    if device.type == "cuda":
        train_set, val_set = train_set.to(device), val_set.to(device)
    train_sampler = ClipSampler(
        cfg.clip_len, train=True, rotate=cfg.rotate, min_len=cfg.min_len,
        min_ratio=cfg.train_min_ratio, max_ratio=cfg.train_max_ratio, device=device,
    )  # fmt: skip
    val_sampler = ClipSampler(
        cfg.clip_len, train=False, clip_ratio=cfg.val_clip_ratio, device=device
    )

    # ---- model, optimizer, schedule (the same initial weights on every rank, by seed)
    torch.manual_seed(cfg.seed)
    model = build_model(
        cfg.model, num_classes=num_classes, clip_len=cfg.clip_len,
        num_persons=train_set.num_persons, num_joints=train_set.num_joints,
        in_channels=train_set.num_channels, **cfg.model_options,
    ).to(device)  # fmt: skip
    lr = effective_lr(cfg)
    base_lr = float(cfg.lr)
    optimizer = build_optimizer(model, cfg, lr)
    scheduler = build_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")

    # ---- resume
    start_epoch, best, run_id, records, past_seconds = 0, {}, None, [], 0.0
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if cfg.resume and last_path.is_file():
        ckpt = load_own_checkpoint(last_path)
        _check_resume_config(ckpt.get("config") or {}, cfg, last_path)
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        restore_rng_state(ckpt["rng"])
        start_epoch, best = int(ckpt["epoch"]), dict(ckpt.get("best") or {})
        run_id, past_seconds = ckpt.get("mlflow_run_id"), float(ckpt.get("train_seconds", 0.0))
        saved_world = int(ckpt.get("world_size", env.world_size))
        records = read_metrics_log(out_dir / "metrics.jsonl", upto_epoch=start_epoch)
        log(f"resuming from {last_path} after epoch {start_epoch}", always=True)
        if saved_world != env.world_size:
            log(
                f"warning: checkpoint was written with world size {saved_world}, now "
                f"{env.world_size}: the data order per rank differs from the original run"
            )
    elif cfg.resume:
        log(f"--resume: no {last_path} yet, starting from scratch", always=True)

    # ---- parallel wrappers (the bare `model` is what gets evaluated and saved)
    train_model: torch.nn.Module = model
    if env.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        train_model = torch.compile(train_model)

    per_rank = cfg.batch_size // env.world_size
    val_per_rank = max(1, (cfg.val_batch_size or 2 * cfg.batch_size) // env.world_size)
    run_facts = {
        "effective_batch_size": cfg.batch_size,
        "per_rank_batch_size": per_rank,
        "world_size": env.world_size,
        "effective_lr": lr,
        "base_lr": base_lr,
        "num_classes": num_classes,
        "num_train": len(train_set),
        "num_val": len(val_set),
        "device": str(device),
    }
    log(
        f"{cfg.model}: seed {cfg.seed}, {len(train_set)} train / {len(val_set)} val samples, "
        f"{num_classes} classes | global batch {cfg.batch_size} = {per_rank}/rank x "
        f"{env.world_size} rank(s) | lr {lr:g} (base {base_lr:g} at batch {cfg.base_batch_size}"
        f", linear scaling {'on' if cfg.scale_lr else 'off'}) | {cfg.optimizer}, "
        f"{cfg.epochs} epochs, steps {cfg.lr_steps} | device {device}, amp {cfg.amp}, "
        f"compile {cfg.compile}, deterministic {cfg.deterministic}",
        always=True,
    )
    if env.is_main:
        atomic_write_text(
            out_dir / "config.json",
            json.dumps({"config": cfg.to_dict(), **run_facts}, indent=2, sort_keys=True) + "\n",
        )

    tags = {
        "model": cfg.model,
        "benchmark": cfg.benchmark or guess_benchmark(cfg.train_path, cfg.train_split),
        "seed": cfg.seed,
        "device": str(device),
        "world_size": env.world_size,
    }
    # A readable default run name, so that `mlflow ui` lists "hcn-xsub-seed0", not a random one.
    run_name = cfg.run_name or "-".join(
        str(p) for p in (cfg.model, tags["benchmark"], f"seed{cfg.seed}") if p
    )
    with open_run(
        enabled=cfg.track and env.is_main, experiment=cfg.experiment, run_name=run_name,
        tracking_uri=cfg.tracking_uri, run_id=run_id, tags=tags,
    ) as tracker:  # fmt: skip
        run_id = tracker.run_id
        if start_epoch == 0:
            tracker.log_params({**cfg.to_dict(), **run_facts})
        tracker.log_artifact(str(out_dir / "config.json"))

        epoch = start_epoch
        completed = start_epoch >= cfg.epochs
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            # ---- one epoch of training
            t0 = time.perf_counter()
            train_model.train()
            torch.manual_seed(derived_seed(cfg.seed, epoch, 2, env.rank))  # dropout etc.
            order = np.random.default_rng([cfg.seed, epoch, 0]).permutation(len(train_set))
            steps = D.batches(D.train_shard(order, env), per_rank, train=True)
            aug_rng = np.random.default_rng([cfg.seed, epoch, 1, env.rank])
            lr_now = scheduler.get_last_lr()[0]
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            seen, shown = 0, None
            sync_every = max(1, len(steps) // 50)
            with EpochProgress(
                enabled=env.is_main and not cfg.quiet, epoch=epoch, epochs=cfg.epochs,
                steps=len(steps),
            ) as bar:  # fmt: skip
                for step, idx in enumerate(steps):
                    x = train_sampler(train_set, idx, aug_rng)  # data
                    y = train_labels[torch.from_numpy(idx).to(device)]
                    with autocast_context(device, cfg.amp):
                        logits = train_model(x)  # forward
                    loss = F.cross_entropy(logits.float(), y)  # loss
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()  # backward
                    scaler.step(optimizer)  # step
                    scaler.update()
                    loss_sum += loss.detach().double() * len(idx)
                    seen += len(idx)
                    if bar.active and (step % sync_every == 0 or step == len(steps) - 1):
                        shown = float(loss.detach())
                    bar.update(step + 1, seen * env.world_size, shown)
            scheduler.step()
            loss_total, n_total = D.all_reduce_sum([float(loss_sum), seen], env, device)
            train_seconds = time.perf_counter() - t0
            record: dict[str, Any] = {
                "epoch": epoch,
                "loss": loss_total / max(n_total, 1),
                "lr": lr_now,
                "samples_per_s": n_total / max(train_seconds, 1e-9),
                "epoch_seconds": train_seconds,
                "val_top1": None,
                "val_top5": None,
                "val_loss": None,
            }
            if not math.isfinite(record["loss"]):
                raise FloatingPointError(f"training loss became {record['loss']} in epoch {epoch}")

            # ---- validation (every val_interval epochs and at the last one)
            if epoch % cfg.val_interval == 0 or epoch == cfg.epochs:
                t1 = time.perf_counter()
                if env.distributed:  # evaluate rank 0's BatchNorm statistics everywhere
                    for buf in model.buffers():
                        torch.distributed.broadcast(buf, src=0)
                shard = D.eval_shard(len(val_set), env)
                logits_np = infer(model, val_set, val_sampler, shard, val_per_rank, device, cfg.amp)
                labels_np = val_labels[shard]
                c1, c5 = topk_correct(logits_np, labels_np, (1, 5)) if len(shard) else (0, 0)
                vloss = float(F.cross_entropy(torch.from_numpy(logits_np).double(),
                                              torch.from_numpy(labels_np), reduction="sum")
                              ) if len(shard) else 0.0  # fmt: skip
                c1, c5, vloss, nv = D.all_reduce_sum([c1, c5, vloss, len(shard)], env, device)
                record.update(val_top1=c1 / nv, val_top5=c5 / nv, val_loss=vloss / nv,
                              val_seconds=time.perf_counter() - t1)  # fmt: skip
                if not best or record["val_top1"] > best["top1"]:
                    best = {"top1": record["val_top1"], "top5": record["val_top5"],
                            "epoch": epoch}  # fmt: skip
                    improved = True
                else:
                    improved = False
            else:
                improved = False
            records.append(record)

            # ---- log and checkpoint (rank 0 only)
            elapsed = past_seconds + time.perf_counter() - t_start
            if env.is_main:
                write_history(records, out_dir)
                msg = (
                    f"epoch {epoch}/{cfg.epochs} loss {record['loss']:.4f} lr {lr_now:.3g} "
                    f"{record['samples_per_s']:,.0f} samples/s"
                )
                if record["val_top1"] is not None:
                    msg += f" | val top1 {record['val_top1']:.4f} top5 {record['val_top5']:.4f}" + (
                        " (best)" if improved else ""
                    )
                log(msg)
                tracker.log_metrics(
                    {k: v for k, v in record.items() if v is not None and k != "epoch"},
                    step=epoch,
                )
                ckpt = make_checkpoint(
                    model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, epoch=epoch,
                    config=cfg.to_dict(), best=best, mlflow_run_id=run_id,
                )  # fmt: skip
                ckpt["world_size"] = env.world_size
                ckpt["train_seconds"] = elapsed
                if improved:
                    atomic_save(ckpt, best_path)
                if (
                    epoch % cfg.checkpoint_interval == 0
                    or epoch == cfg.epochs
                    or (cfg.stop_after_epoch == epoch)
                ):
                    atomic_save(ckpt, last_path)
            if epoch == cfg.epochs:
                completed = True
            if cfg.stop_after_epoch is not None and epoch >= cfg.stop_after_epoch:
                break

        # ---- summary and artifacts
        seconds = past_seconds + time.perf_counter() - t_start
        final = next((r for r in reversed(records) if r.get("val_top1") is not None), {})
        result = TrainResult(
            out_dir=str(out_dir), model=cfg.model, completed=completed, last_epoch=epoch,
            epochs=cfg.epochs, best_top1=best.get("top1"), best_top5=best.get("top5"),
            best_epoch=best.get("epoch"), final_top1=final.get("val_top1"),
            final_top5=final.get("val_top5"),
            final_loss=records[-1]["loss"] if records else None,
            effective_batch_size=cfg.batch_size, per_rank_batch_size=per_rank,
            world_size=env.world_size, lr=lr, base_lr=base_lr, num_classes=num_classes,
            num_train=len(train_set), num_val=len(val_set), seed=cfg.seed, device=str(device),
            seconds=seconds, mlflow_run_id=run_id,
        )  # fmt: skip
        if env.is_main:
            files = {
                k: str(out_dir / f)
                for k, f in (
                    ("last", "last.pt"),
                    ("best", "best.pt"),
                    ("metrics", "metrics.jsonl"),
                    ("history", "history.csv"),
                    ("summary", "summary.json"),
                    ("config", "config.json"),
                    ("curves", "curves.png"),
                    ("log", "train.log"),
                )
            }
            result.files = files
            if records:
                plot_curves(records, out_dir / "curves.png", f"{cfg.model} seed {cfg.seed}")
            atomic_write_text(
                out_dir / "summary.json",
                json.dumps(asdict(result), indent=2, sort_keys=True) + "\n",
            )
            tracker.log_metrics({"best_top1": result.best_top1, "best_epoch": result.best_epoch,
                                 "train_seconds": seconds})  # fmt: skip
            if completed:
                for key in ("metrics", "history", "summary", "curves", "best", "log"):
                    if Path(files[key]).is_file():
                        tracker.log_artifact(files[key])
                example = val_sampler(val_set, np.arange(min(2, len(val_set))))
                tracker.log_model(model, input_example=example.cpu().numpy())
                log(
                    f"done: best val top1 {result.best_top1} at epoch {result.best_epoch}, "
                    f"{seconds:.1f} s -> {out_dir}",
                    always=True,
                )
            else:
                log(f"stopped after epoch {epoch} (resume with --resume)", always=True)
                tracker.finish("KILLED")  # not FINISHED: --resume reopens the same run
        D.barrier(env)
        return result
