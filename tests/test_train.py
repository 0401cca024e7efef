"""Training loop: determinism, exact resume (in-process stop and a real SIGKILL), learning,
checkpoint format, output files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import make_pickles
from skelact.engine.recipes import TrainConfig
from skelact.engine.safety import TrainingError
from skelact.engine.train import RUN_FILES, TIMING_KEYS, train

SUMMARY_TIMING = ("seconds",)


def base_config(data: tuple[Path, Path], out: Path, **kw) -> TrainConfig:
    values = dict(
        model="tscnn", train_path=str(data[0]), val_path=str(data[1]), out_dir=str(out),
        epochs=4, batch_size=8, lr=3e-3, scale_lr=False, clip_len=16, val_interval=2,
        track=False, quiet=True, deterministic=True, seed=3,
    )  # fmt: skip
    values.update(kw)
    return TrainConfig(**values)


def records(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING_KEYS} for x in lines]


def summary(out: Path) -> dict:
    s = json.loads((out / "summary.json").read_text())
    return {k: v for k, v in s.items() if k not in SUMMARY_TIMING}


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return make_pickles(tmp_path_factory.mktemp("data"), num_train=32, num_val=16)


@pytest.fixture(scope="module")
def full_run(data, tmp_path_factory) -> Path:
    """An uninterrupted 4-epoch run everything else is compared with."""
    out = tmp_path_factory.mktemp("full")
    result = train(base_config(data, out))
    assert result.completed and result.last_epoch == 4
    return out


def test_outputs_and_checkpoint_format(full_run):
    for name in RUN_FILES:
        assert (full_run / name).is_file(), name
    ckpt = torch.load(full_run / "last.pt", weights_only=True)  # no pickled code
    assert ckpt["format"] == "skelact" and ckpt["format_version"] == 1
    assert ckpt["model"]["name"] == "tscnn" and ckpt["epoch"] == 4
    assert set(ckpt) >= {"optimizer", "scheduler", "rng", "config", "best", "mlflow_run_id"}
    assert isinstance(ckpt["rng"]["numpy"]["keys"], list)
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    recs = records(full_run)
    assert [r["epoch"] for r in recs] == [1, 2, 3, 4]
    assert [r["val_top1"] is not None for r in recs] == [False, True, False, True]
    s = json.loads((full_run / "summary.json").read_text())
    assert s["effective_batch_size"] == 8 and s["world_size"] == 1 and s["lr"] == 3e-3
    assert s["best_top1"] == max(r["val_top1"] for r in recs if r["val_top1"] is not None)
    best = torch.load(full_run / "best.pt", weights_only=True)
    assert best["epoch"] == s["best_epoch"]
    history = (full_run / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,loss,lr,samples_per_s" and len(history) == 5
    val_history = (full_run / "val_history.csv").read_text().splitlines()
    assert val_history[0] == "epoch,val_top1,val_top5"
    assert [row.split(",")[0] for row in val_history[1:]] == ["2", "4"]  # no empty cells
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in s.values()), s
    info = json.loads((full_run / "run_info.json").read_text())
    assert info["model"] == "tscnn" and info["benchmark"] == "xsub" and info["completed"]
    log = (full_run / "train.log").read_text()
    assert "global batch 8 = 8/rank x 1 rank(s)" in log and "lr 0.003" in log


def test_deterministic_same_seed_is_bit_identical(data, full_run, tmp_path):
    train(base_config(data, tmp_path / "again"))
    assert records(tmp_path / "again") == records(full_run)
    assert_same_weights(tmp_path / "again" / "last.pt", full_run / "last.pt")
    train(base_config(data, tmp_path / "other", seed=4, epochs=2))
    assert records(tmp_path / "other")[0]["loss"] != records(full_run)[0]["loss"]


def test_resume_after_stop_equals_uninterrupted(data, full_run, tmp_path):
    out = tmp_path / "stopped"
    first = train(base_config(data, out, stop_after_epoch=1))
    assert not first.completed and first.last_epoch == 1
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 1
    second = train(base_config(data, out, resume=True))
    assert second.completed
    assert records(out) == records(full_run)
    assert summary(out) == summary(full_run)
    assert_same_weights(out / "last.pt", full_run / "last.pt")
    assert_same_weights(out / "best.pt", full_run / "best.pt")


def test_resume_refuses_other_settings(data, full_run, tmp_path):
    out = tmp_path / "changed"
    train(base_config(data, out, stop_after_epoch=1, epochs=2))
    with pytest.raises(TrainingError, match="lr: checkpoint 0.003 vs now 0.01"):
        train(base_config(data, out, resume=True, lr=0.01))


def _cli_train(data, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "skelact", "train", "--model", "tscnn", "--train", str(data[0]),
        "--val", str(data[1]), "--out-dir", str(out), "--epochs", "4", "--batch-size", "8",
        "--lr", "3e-3", "--no-scale-lr", "--clip-len", "16", "--val-interval", "2",
        "--no-track", "--quiet", "--deterministic", "--seed", "3", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(data, full_run, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli_train(data, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    metrics = out / "metrics.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "last.pt").is_file() and metrics.is_file() and metrics.read_text().count("\n"):
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    killed_at = torch.load(out / "last.pt", weights_only=True)["epoch"]
    assert 1 <= killed_at < 4
    assert not (out / "summary.json").exists()
    done = subprocess.run(_cli_train(data, out, "--resume"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stderr
    assert records(out) == records(full_run)
    assert summary(out) == summary(full_run)
    assert_same_weights(out / "last.pt", full_run / "last.pt")


def test_tiny_model_learns(data, tmp_path):
    result = train(base_config(data, tmp_path / "learn", epochs=12, batch_size=4, lr=1e-3,
                               val_interval=3, seed=0))  # fmt: skip
    recs = records(tmp_path / "learn")
    assert min(r["loss"] for r in recs[-3:]) < 0.6 * recs[0]["loss"]
    assert result.best_top1 >= 0.75  # chance is 0.25


def test_bad_inputs_have_clear_errors(data, tmp_path):
    with pytest.raises(TrainingError, match="needs a CUDA device"):
        train(base_config(data, tmp_path / "x", amp="bf16", device="cpu"))
    with pytest.raises(ValueError, match="batch_size"):
        train(base_config(data, tmp_path / "y", batch_size=0))
    with pytest.raises((FileNotFoundError, ValueError), match="nope.pkl"):
        train(base_config((tmp_path / "nope.pkl", data[1]), tmp_path / "z"))
