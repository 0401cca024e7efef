"""A run that cannot be trusted never looks finished: non-finite losses, labels outside the class
count, a second writer, SIGTERM (with resume to the uninterrupted result), stale temp files."""

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

from helpers import dead_pid, make_pickles
from skelact.data.dataset import DatasetError
from skelact.engine.safety import NonFiniteError, check_finite_weights
from skelact.engine.train import train
from skelact.errors import OutputBusyError
from skelact.locking import LOCK_NAME
from test_train import assert_same_weights, base_config, records, summary

# What the CLI does with an interrupted run (exit 128 + signal number, like a shell).
DRIVER = """
import json, sys
from skelact.engine.recipes import TrainConfig
from skelact.engine.train import train
from skelact.errors import InterruptedRun
try:
    train(TrainConfig(**json.loads(sys.argv[1])))
except InterruptedRun as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(128 + exc.signum)
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return make_pickles(tmp_path_factory.mktemp("data"), num_train=32, num_val=16)


@pytest.fixture(scope="module")
def full_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full")
    train(base_config(data, out))
    return out


def test_first_non_finite_loss_stops_the_run_naming_epoch_and_step(data, tmp_path):
    # Adam moves every weight by ~lr at the first step: with lr 1e30 the second step's logits
    # overflow, so the loss of step 2 of epoch 1 is the first non-finite one.
    out = tmp_path / "diverged"
    with pytest.raises(NonFiniteError, match=r"^epoch 1 step 2/4: the training loss is (nan|inf)"):
        train(base_config(data, out, lr=1e30, checkpoint_interval=1))
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()
    assert not (out / LOCK_NAME).exists()


def test_non_finite_weights_are_named():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    check_finite_weights(model, "here")
    with torch.no_grad():
        model[1].bias[0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"^here: the weights are not finite .*: 1\.bias\)"):
        check_finite_weights(model, "here")


def test_labels_outside_num_classes_name_the_sample(data, tmp_path):
    # the data has 4 classes (labels 0..3); sample 4 of the train set is the first with label 3
    bad = r"train\.pkl: sample 3 \('S001C001P004R001A004'\): label 3 is outside the 3 classes"
    with pytest.raises(DatasetError, match=bad):
        train(base_config(data, tmp_path / "a", num_classes=3))
    train(base_config(data, tmp_path / "b", epochs=1, num_classes=4))
    assert "num_classes is not set" not in (tmp_path / "b" / "train.log").read_text()
    train(base_config(data, tmp_path / "c", epochs=1))
    assert "num_classes is not set: using 4" in (tmp_path / "c" / "train.log").read_text()


def test_stale_temps_of_a_killed_writer_are_removed(data, tmp_path):
    out = tmp_path / "stale"
    out.mkdir()
    stale = out / f".last.pt.abc123.tmp-{dead_pid()}"
    stale.write_bytes(b"half a checkpoint")
    train(base_config(data, out, epochs=1))
    assert not stale.exists()


@pytest.mark.slow
def test_sigterm_stops_cleanly_then_resume_equals_uninterrupted(data, full_run, tmp_path):
    """SLURM preemption: SIGTERM, exit 143 with last.pt consistent, --resume ends identically.

    While the first process runs, a second run into its folder is refused by the lock.
    """
    out = tmp_path / "preempted"
    cfg = base_config(data, out).to_dict()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not (out / "last.pt").is_file():
        time.sleep(0.01)
    with pytest.raises(OutputBusyError, match=rf"another train run \(pid {proc.pid} "):
        train(base_config(data, out))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert "stopped by SIGTERM; last.pt holds epoch" in err.decode()
    stopped_at = torch.load(out / "last.pt", weights_only=True)["epoch"]
    assert 1 <= stopped_at < 4
    assert not list(out.glob(".*.tmp-*")) and not (out / LOCK_NAME).exists()
    assert not (out / "summary.json").exists()
    done = train(base_config(data, out, resume=True))
    assert done.completed
    assert records(out) == records(full_run)
    assert summary(out) == summary(full_run)
    assert_same_weights(out / "last.pt", full_run / "last.pt")
    assert_same_weights(out / "best.pt", full_run / "best.pt")
